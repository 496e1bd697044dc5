/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The 429 a rejected client receives: its bytes (the headers and the OpenAI-style error body,
 * as much as the frame has room for), written over the client's request and sent back with
 * XDP_TX. Where the connection can go on (seqadj.h) it says "connection: keep-alive";
 * otherwise "connection: close", and the client closes: its FIN is answered with ours
 * (rls_send_fin()). It advertises the upstream's window and echoes the client's timestamps.
 * The other packets XDP writes: reset.h (toward the upstream), trim.h (a segment cut short).
 */
#ifndef RLS_BPF_REPLY_H
#define RLS_BPF_REPLY_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rlshape.h"
#include "decimal.h"
#include "hex_digit.h"
#include "consts.h"
#include "ctx_xdp.h"
#include "packet.h"
#include "scratch.h"
#include "csum.h"
#include "word.h"
#include "tcp_options.h"

#define RLS_REPLY_MASK   (RLS_REPLY_MAX - 1)

_Static_assert((RLS_REPLY_MAX & RLS_REPLY_MASK) == 0, "reply buffer must be a power of two");

struct rls_text {
	struct rls_scratch *s; /* written to s->reply */
	__u32 len;
	__u32 room; /* the most the whole text may take with the -day headers in it */
};

/*
 * Appends n bytes of a string literal eight at a time: each word a constant folded from the
 * literal (word.h), zero past its end (the next piece overwrites them). A word near the
 * buffer's end
 * runs into the next scratch field, in bounds; no 429 comes near that length.
 */
static __always_inline void rls_put_words(struct rls_text *t, const char *lit, __u32 n)
{
	__u32 i;

#pragma clang loop unroll(full)
	for (i = 0; i < n; i += 8)
		*(__u64 *)(void *)&t->s->reply[(t->len + i) & RLS_REPLY_MASK] =
			rls_literal_word(lit, n, i);
	t->len += n;
}

/* Appends a string literal; its length is a constant at every call site. */
#define rls_put_literal(t, lit) rls_put_words(t, lit, sizeof(lit) - 1)

/* The numbers a 429 prints, one slot each in s->numbers. */
enum rls_429_number {
	RLS_NUM_RETRY_S,
	RLS_NUM_RETRY_MS,
	RLS_NUM_LIMIT,
	RLS_NUM_REMAINING,
	RLS_NUM_DAY_LIMIT,
	RLS_NUM_DAY_REMAINING,
	RLS_NUM_DAY_RESET_S,
	RLS_NUM_BODY_LEN,
};

_Static_assert(RLS_NUM_BODY_LEN < RLS_REPLY_NUMBERS, "a slot for every number");
_Static_assert(RLS_DECIMAL_MAX + 4 <= RLS_NUMBER_SLOT, "three words hold any number's digits");

/*
 * Every number of the 429 as decimal digits into its slot, its length beside it: eight digits
 * at once below 10^8, else last to first, without dividing below 2^32 (include/decimal.h).
 * One global function for all of them: a call and its return cost up to 10 ns, and its
 * lengths are opaque to the verifier, which would otherwise follow every digit count of every
 * number as a separate path. Each length goes through memory for the same reason.
 */
__noinline int rls_format_numbers(struct rls_scratch *s)
{
	struct rls_reply_numbers *nums;
	__u32 i, k, n;
	__u64 v, q;

	if (!s)
		return 0;
	nums = &s->numbers;
	for (i = 0; i < RLS_REPLY_NUMBERS; i++) {
		v = nums->value[i];
		if (v < RLS_DECIMAL_WORD_LIMIT) {
			*(__u64 *)(void *)nums->text[i] = rls_decimal_word((__u32)v, &nums->len[i]);
			continue;
		}
		nums->len[i] = rls_decimal_len(v);
		n = *(volatile __u32 *)&nums->len[i];
		for (k = 0; k < RLS_DECIMAL_MAX; k++) {
			if (k >= n)
				break;
			q = rls_div10(v);
			nums->text[i][(n - 1 - k) & (RLS_NUMBER_SLOT - 1)] = '0' + (__u8)(v - q * 10);
			v = q;
		}
	}
	return 0;
}

/*
 * Appends number i's digits: three words from its slot (the bytes past its digits are
 * overwritten by what follows, or lie past the text). The new length goes through memory:
 * the verifier then follows one length on, not a range that grows with every number.
 */
static __always_inline void rls_put_number(struct rls_text *t, enum rls_429_number i)
{
	struct rls_reply_numbers *nums = &t->s->numbers;
	__u32 j;

#pragma clang loop unroll(full)
	for (j = 0; j < 3; j++)
		*(__u64 *)(void *)&t->s->reply[(t->len + j * 8) & RLS_REPLY_MASK] =
			*(const __u64 *)(const void *)&nums->text[i][j * 8];
	nums->text_len = t->len + nums->len[i];
	t->len = *(volatile __u32 *)&nums->text_len;
}

/* The OpenAI-style error body, per reason; the Model Studio messages. */
#define RLS_BODY_HEAD "{\"error\":{\"message\":\""
#define RLS_BODY_TAIL_REQUESTS \
	"\",\"type\":\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}\n"
#define RLS_BODY_TAIL_TOKENS \
	"\",\"type\":\"tokens\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}\n"
#define RLS_BODY_TAIL_CONCURRENCY \
	"\",\"type\":\"concurrency\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}\n"
#define RLS_MSG_REQUESTS    "Requests rate limit exceeded"
#define RLS_MSG_BURST       "Request rate increased too quickly"
#define RLS_MSG_TOKENS      "Allocated quota exceeded"
#define RLS_MSG_CONCURRENCY "Too many concurrent requests"

static __always_inline __u32 rls_body_len(__u32 reason)
{
	if (reason == RLS_REASON_TOKENS)
		return sizeof(RLS_BODY_HEAD) - 1 + sizeof(RLS_MSG_TOKENS) - 1 +
		       sizeof(RLS_BODY_TAIL_TOKENS) - 1;
	if (reason == RLS_REASON_CONCURRENCY)
		return sizeof(RLS_BODY_HEAD) - 1 + sizeof(RLS_MSG_CONCURRENCY) - 1 +
		       sizeof(RLS_BODY_TAIL_CONCURRENCY) - 1;
	return sizeof(RLS_BODY_HEAD) - 1 +
	       (reason == RLS_REASON_BURST ? sizeof(RLS_MSG_BURST) : sizeof(RLS_MSG_REQUESTS)) - 1 +
	       sizeof(RLS_BODY_TAIL_REQUESTS) - 1;
}

static __always_inline void rls_put_header_number(struct rls_text *t, enum rls_429_number i)
{
	rls_put_number(t, i);
	rls_put_literal(t, "\r\n");
}

/* v as 16 lower-case hex digits, two words of text (include/hex_digit.h). */
static __always_inline void rls_put_hex64(struct rls_text *t, __u64 v)
{
	*(__u64 *)(void *)&t->s->reply[t->len & RLS_REPLY_MASK] = rls_hex_word((__u32)(v >> 32));
	*(__u64 *)(void *)&t->s->reply[(t->len + 8) & RLS_REPLY_MASK] = rls_hex_word((__u32)v);
	t->len += 16;
}

/*
 * Past a minute the official OpenAI SDKs would sleep out retry-after (hours, for a day window)
 * or retry at once on their own backoff: x-should-retry says whether retrying is worth it.
 */
#define RLS_RETRY_WORTH_MS 60000

/*
 * How much a 429 says. Every 429 has the status, retry-after, x-should-retry and
 * x-request-id; retry-after-ms and the JSON error, the x-ratelimit-* headers and SambaNova's
 * -day headers go where the frame has room for them. A request's last segment may be a single
 * byte, and XDP can grow a frame only as far as its buffer allows: on veth a one-byte
 * segment had room for the bare 429 (151 bytes) but not always for the compact one (324).
 */
enum rls_429_detail {
	RLS_429_BARE,    /* no body, no retry-after-ms: for a frame with almost no room */
	RLS_429_COMPACT,
	RLS_429_LIMITS, /* with the x-ratelimit-* headers */
	RLS_429_FULL,   /* and the -day headers where rpd applies */
};

/* With a detail: the 429 keeps the connection ("connection: keep-alive"). */
#define RLS_429_KEEP_OPEN 0x10

/* SambaNova's -day headers: each followed by its number, the last by "s\r\n" too. */
#define RLS_DAY_LIMIT_HEADER     "x-ratelimit-limit-requests-day: "
#define RLS_DAY_REMAINING_HEADER "x-ratelimit-remaining-requests-day: "
#define RLS_DAY_RESET_HEADER     "x-ratelimit-reset-requests-day: "
#define RLS_LENGTH_HEADER        "content-length: "

/*
 * Would the -day headers, written at t->len, still leave the whole text within t->room? What
 * comes after them is known by now: content-length, its number, the blank line and the body.
 * So the 429 is written once whether or not they go in, never written whole and then again
 * without them.
 */
static __always_inline bool rls_day_headers_fit(const struct rls_text *t, __u32 body_len)
{
	const struct rls_reply_numbers *nums = &t->s->numbers;
	const __u32 crlf = sizeof("\r\n") - 1;
	__u32 day = sizeof(RLS_DAY_LIMIT_HEADER) - 1 + nums->len[RLS_NUM_DAY_LIMIT] + crlf +
		    sizeof(RLS_DAY_REMAINING_HEADER) - 1 + nums->len[RLS_NUM_DAY_REMAINING] + crlf +
		    sizeof(RLS_DAY_RESET_HEADER) - 1 + nums->len[RLS_NUM_DAY_RESET_S] +
		    sizeof("s\r\n") - 1;
	/* content-length's line, the blank line, and the body (which begins RLS_BODY_HEAD). */
	__u32 after = sizeof(RLS_LENGTH_HEADER) - 1 + nums->len[RLS_NUM_BODY_LEN] + 2 * crlf +
		      body_len;

	return t->len + day + after <= t->room;
}

/*
 * The 429's bytes into t; returns its length. detail: enum rls_429_detail, with
 * RLS_429_KEEP_OPEN where the connection goes on.
 */
static __always_inline __u32 rls_write_429(struct rls_text *t, const struct rls_rejection *r,
					   __u32 detail)
{
	__u64 retry_ms = t->s->numbers.value[RLS_NUM_RETRY_MS]; /* rls_429_numbers() */
	bool keep_open = detail & RLS_429_KEEP_OPEN;

	detail &= ~RLS_429_KEEP_OPEN;
	rls_put_literal(t, "HTTP/1.1 429 Too Many Requests\r\n");
	if (detail != RLS_429_BARE)
		rls_put_literal(t, "content-type: application/json\r\n");
	if (keep_open)
		rls_put_literal(t, "connection: keep-alive\r\n");
	else
		rls_put_literal(t, "connection: close\r\n");
	rls_put_literal(t, "x-request-id: req_");
	rls_put_hex64(t, r->request_id);
	rls_put_literal(t, "\r\nretry-after: ");
	rls_put_header_number(t, RLS_NUM_RETRY_S);
	if (detail != RLS_429_BARE) {
		rls_put_literal(t, "retry-after-ms: ");
		rls_put_header_number(t, RLS_NUM_RETRY_MS);
	}
	if (retry_ms > RLS_RETRY_WORTH_MS)
		rls_put_literal(t, "x-should-retry: false\r\n");
	else
		rls_put_literal(t, "x-should-retry: true\r\n");
	if (detail <= RLS_429_COMPACT) {
	} else if (r->reason == RLS_REASON_TOKENS) {
		rls_put_literal(t, "x-ratelimit-limit-tokens: ");
		rls_put_header_number(t, RLS_NUM_LIMIT);
		rls_put_literal(t, "x-ratelimit-remaining-tokens: ");
		rls_put_header_number(t, RLS_NUM_REMAINING);
		rls_put_literal(t, "x-ratelimit-reset-tokens: ");
	} else if (r->reason == RLS_REASON_CONCURRENCY) {
		rls_put_literal(t, "x-ratelimit-limit-concurrency: ");
		rls_put_header_number(t, RLS_NUM_LIMIT);
		rls_put_literal(t, "x-ratelimit-remaining-concurrency: ");
		rls_put_header_number(t, RLS_NUM_REMAINING);
		rls_put_literal(t, "x-ratelimit-reset-concurrency: ");
	} else {
		rls_put_literal(t, "x-ratelimit-limit-requests: ");
		rls_put_header_number(t, RLS_NUM_LIMIT);
		rls_put_literal(t, "x-ratelimit-remaining-requests: ");
		rls_put_header_number(t, RLS_NUM_REMAINING);
		rls_put_literal(t, "x-ratelimit-reset-requests: ");
	}
	if (detail > RLS_429_COMPACT) {
		rls_put_number(t, RLS_NUM_RETRY_S);
		rls_put_literal(t, "s\r\n");
	}
	if (detail == RLS_429_FULL && r->day_limit != RLS_UNLIMITED) {
		if (rls_day_headers_fit(t, (__u32)t->s->numbers.value[RLS_NUM_BODY_LEN])) {
			rls_put_literal(t, RLS_DAY_LIMIT_HEADER);
			rls_put_header_number(t, RLS_NUM_DAY_LIMIT);
			rls_put_literal(t, RLS_DAY_REMAINING_HEADER);
			rls_put_header_number(t, RLS_NUM_DAY_REMAINING);
			rls_put_literal(t, RLS_DAY_RESET_HEADER);
			rls_put_number(t, RLS_NUM_DAY_RESET_S);
			rls_put_literal(t, "s\r\n");
		} else {
			t->s->answer.detail = RLS_429_LIMITS; /* what a resend repeats */
		}
	}
	if (detail == RLS_429_BARE) {
		rls_put_literal(t, RLS_LENGTH_HEADER "0\r\n\r\n");
		return t->len;
	}
	rls_put_literal(t, RLS_LENGTH_HEADER);
	rls_put_header_number(t, RLS_NUM_BODY_LEN);
	rls_put_literal(t, "\r\n" RLS_BODY_HEAD);
	if (r->reason == RLS_REASON_TOKENS) {
		rls_put_literal(t, RLS_MSG_TOKENS);
		rls_put_literal(t, RLS_BODY_TAIL_TOKENS);
		return t->len;
	}
	if (r->reason == RLS_REASON_CONCURRENCY) {
		rls_put_literal(t, RLS_MSG_CONCURRENCY);
		rls_put_literal(t, RLS_BODY_TAIL_CONCURRENCY);
		return t->len;
	}
	if (r->reason == RLS_REASON_BURST)
		rls_put_literal(t, RLS_MSG_BURST);
	else
		rls_put_literal(t, RLS_MSG_REQUESTS);
	rls_put_literal(t, RLS_BODY_TAIL_REQUESTS);
	return t->len;
}

/*
 * The 429's numbers, formatted into their slots (rls_put_number() copies them): once a 429,
 * before its text, however many details are tried for it.
 */
static __always_inline void rls_429_numbers(struct rls_scratch *s, const struct rls_rejection *r)
{
	__u64 retry_ms = r->reset_ms ? r->reset_ms : 1;

	s->numbers.value[RLS_NUM_RETRY_S] = (retry_ms + 999) / 1000;
	s->numbers.value[RLS_NUM_RETRY_MS] = retry_ms;
	s->numbers.value[RLS_NUM_LIMIT] = r->limit;
	s->numbers.value[RLS_NUM_REMAINING] = r->remaining;
	s->numbers.value[RLS_NUM_DAY_LIMIT] = r->day_limit;
	s->numbers.value[RLS_NUM_DAY_REMAINING] = r->day_remaining;
	s->numbers.value[RLS_NUM_DAY_RESET_S] = r->day_reset_s;
	s->numbers.value[RLS_NUM_BODY_LEN] = rls_body_len(r->reason);
	rls_format_numbers(s);
}

/*
 * A global function: the verifier checks it once, not once per path that reaches a 429.
 * Its numbers are rls_429_numbers()'s, made first. Leaves the word after the text zero, as
 * rls_csum_buffer() needs: only that word, not the whole buffer, which cost more than writing
 * the text. Returns the length.
 */
__noinline int rls_build_429(struct rls_scratch *s, const struct rls_rejection *r, __u32 detail,
			  __u32 room)
{
	struct rls_text text;
	__u32 len;

	if (!s || !r)
		return 0;
	text.s = s;
	text.len = 0;
	text.room = room;
	len = rls_write_429(&text, r, detail);
	*(__u64 *)(void *)&s->reply[len & RLS_REPLY_MASK] = 0;
	return len;
}

static __always_inline void rls_swap_macs(struct ethhdr *eth)
{
	__u8 tmp[6];

	__builtin_memcpy(tmp, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, tmp, 6);
}

/*
 * Turn the addresses around and give the IP header the new length. The header is the fixed
 * one only: rls_strip_ip_extras() has removed IPv4 options and IPv6 extension headers.
 */
static __always_inline int rls_reverse_ip(void *data, void *data_end, const struct rls_packet *pkt,
					  __u32 tcp_total)
{
	void *l3 = data + (pkt->l3_off & 0xff);

	if (pkt->ipv6) {
		struct ipv6hdr *ip6 = l3;
		struct in6_addr tmp;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		tmp = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = tmp;
		ip6->nexthdr = IPPROTO_TCP_; /* the extension headers were stripped */
		ip6->payload_len = bpf_htons(tcp_total);
		ip6->hop_limit = 64;
	} else {
		struct iphdr *ip = l3;
		__be32 tmp;

		if ((void *)(ip + 1) > data_end)
			return -1;
		tmp = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = tmp;
		ip->ihl = 5; /* the options were stripped */
		ip->tot_len = bpf_htons(sizeof(*ip) + tcp_total);
		ip->ttl = 64;
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000); /* DF */
		if (rls_ipv4_header_csum(ip, data_end, sizeof(*ip)))
			return -1;
	}
	return 0;
}

/*
 * Remove IPv4 options or IPv6 extension headers from the front of the frame by moving L2 and
 * the fixed IP header forward over them; returns the TCP header's new offset, or -1. A reply
 * must not echo them: a source route or a routing header would steer the 429 where the client
 * chose, and a fragment header would make it a fragment. rls_reverse_ip() then fixes ihl and
 * nexthdr.
 */
static __always_inline long rls_strip_ip_extras(struct xdp_md *ctx, struct rls_scratch *s,
						const struct rls_packet *pkt)
{
	__u32 l3_off = pkt->l3_off, fixed = pkt->ipv6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	__u32 keep = l3_off + fixed, extra;

	if (l3_off > 64 || pkt->l4_off < keep || pkt->l4_off > RLS_L4_OFF_MAX)
		return -1;
	extra = pkt->l4_off - keep;
	if (extra == 0)
		return keep;
	if (keep > RLS_HEADERS_MAX || bpf_xdp_load_bytes(ctx, 0, s->headers, keep) ||
	    bpf_xdp_adjust_head(ctx, (int)extra) || bpf_xdp_store_bytes(ctx, 0, s->headers, keep))
		return -1;
	return keep;
}

/* Grow the frame by delta bytes at the front, moving its first hdrs bytes there. */
static __always_inline int rls_grow_front(struct xdp_md *ctx, struct rls_scratch *s, __u32 hdrs,
					  long delta)
{
	if (bpf_xdp_load_bytes(ctx, 0, s->headers, hdrs) || bpf_xdp_adjust_head(ctx, (int)-delta))
		return -1;
	return bpf_xdp_store_bytes(ctx, 0, s->headers, hdrs) ? -1 : 0;
}

/*
 * Make the frame len bytes long, keeping its first hdrs bytes (L2 to L4). Growing at the tail
 * fails where the frame is an skb's own buffer (veth, generic XDP) with little room after it,
 * and XDP guarantees only XDP_PACKET_HEADROOM (256) bytes before it: a small request answered
 * with a larger 429 may need both, so the growth is split between the two ends.
 */
static __always_inline int rls_resize_frame(struct xdp_md *ctx, struct rls_scratch *s, __u32 hdrs,
					    __u32 len)
{
	long delta = (long)len - rls_xdp_len(ctx), front;
	__u32 i;

	if (!bpf_xdp_adjust_tail(ctx, (int)delta))
		return 0;
	if (delta <= 0 || hdrs == 0 || hdrs > RLS_HEADERS_MAX)
		return -1;
	for (i = 0; i < 4; i++) {
		front = i == 0 ? delta : 256 - 64 * (long)(i - 1); /* delta, 256, 192, 128 */
		if (front > delta)
			continue;
		if (front < delta && bpf_xdp_adjust_tail(ctx, (int)(delta - front)))
			continue;
		if (!rls_grow_front(ctx, s, hdrs, front))
			return 0;
		if (front < delta)
			bpf_xdp_adjust_tail(ctx, (int)(front - delta)); /* undo the tail */
	}
	return -1;
}

/*
 * The 429's text at a detail, with the connection's fate (s->answer); its length. The -day
 * headers of RLS_429_FULL go in only where the whole text then takes at most room bytes (else
 * s->answer.detail says RLS_429_LIMITS).
 */
static __always_inline __u32 rls_429_text(struct rls_scratch *s, const struct rls_rejection *r,
					  __u32 detail, __u32 room)
{
	s->answer.detail = detail;
	if (s->answer.keep_open)
		detail |= RLS_429_KEEP_OPEN;
	return rls_build_429(s, r, detail, room) & RLS_REPLY_MASK;
}

/*
 * The 429's text, made to fit the frame: the most detail the frame has room for, unless a
 * resend must repeat the first's (s->answer.detail_fixed). Returns its length, 0 if none fits.
 */
static __always_inline __u32 rls_fit_429(struct xdp_md *ctx, struct rls_scratch *s,
					 const struct rls_packet *pkt, const struct rls_rejection *r,
					 __u32 hdrs)
{
	__u32 body_len;

	rls_429_numbers(s, r);
	if (s->answer.detail_fixed) {
		body_len = rls_429_text(s, r, s->answer.detail, RLS_REPLY_MAX);
		return rls_resize_frame(ctx, s, hdrs, hdrs + body_len) ? 0 : body_len;
	}
	/*
	 * The -day headers only where the 429 still fits the room XDP has to grow a frame that
	 * is an skb's own buffer (measured: about 200 bytes). Decided by the request's size
	 * alone, so a retransmitted request gets the same bytes back.
	 */
	body_len = rls_429_text(s, r, RLS_429_FULL, pkt->payload_len + RLS_SAFE_GROWTH);
	/* No room even for that (a frame in a small buffer): a smaller 429, never none. */
	if (!rls_resize_frame(ctx, s, hdrs, hdrs + body_len))
		return body_len;
	body_len = rls_429_text(s, r, RLS_429_COMPACT, 0);
	if (!rls_resize_frame(ctx, s, hdrs, hdrs + body_len))
		return body_len;
	body_len = rls_429_text(s, r, RLS_429_BARE, 0);
	return rls_resize_frame(ctx, s, hdrs, hdrs + body_len) ? 0 : body_len;
}

/* The timestamp option, echoing the client's: as if the upstream sent it right after its last. */
static __always_inline void rls_put_timestamps(struct tcphdr *tcp, const struct rls_tcp_options *o)
{
	__u8 *opt = (__u8 *)(tcp + 1);

	opt[0] = RLS_TCP_OPT_NOP;
	opt[1] = RLS_TCP_OPT_NOP;
	opt[2] = RLS_TCP_OPT_TIMESTAMP;
	opt[3] = RLS_TCPOLEN_TIMESTAMP;
	/* TSval: the newest of the upstream's the client has (its TSecr), which PAWS accepts. */
	rls_opt_put_be32(opt + 4, o->tsecr);
	rls_opt_put_be32(opt + 8, o->tsval);
}

/*
 * Turn a packet's headers (data to data_end, linear) into those of its reply, whose body,
 * body_len bytes of s->reply, is in place after them: addresses and ports turned around,
 * numbered and flagged as s->answer says, the sender's timestamps echoed where s->opts found
 * them. The TCP header is tcp_len bytes (s->answer.tcp_len, read once by the caller, whose
 * checksum covers as many). The TCP checksum is left zero, for the hook to set. Returns the
 * TCP header, or NULL.
 */
static __always_inline struct tcphdr *rls_turn_headers(void *data, void *data_end,
						       const struct rls_packet *pkt,
						       struct rls_scratch *s, __u32 tcp_len,
						       __u32 body_len)
{
	__u32 l4_off = s->answer.l4_off;
	struct tcphdr *tcp;

	if (l4_off > 128 || tcp_len > sizeof(*tcp) + RLS_TCP_TS_OPTION_LEN ||
	    body_len > RLS_REPLY_MAX)
		return NULL;
	if (data + sizeof(struct ethhdr) > data_end)
		return NULL;
	rls_swap_macs(data);
	if (rls_reverse_ip(data, data_end, pkt, tcp_len + body_len))
		return NULL;
	tcp = data + l4_off;
	if ((void *)(tcp + 1) > data_end ||
	    (tcp_len > sizeof(*tcp) && (void *)tcp + sizeof(*tcp) + RLS_TCP_TS_OPTION_LEN > data_end))
		return NULL;
	{
		__be16 port = tcp->source;

		tcp->source = tcp->dest;
		tcp->dest = port;
	}
	tcp->seq = bpf_htonl(s->answer.seq);
	tcp->ack_seq = bpf_htonl(s->answer.ack);
	((__u8 *)tcp)[12] = (tcp_len / 4) << 4;
	((__u8 *)tcp)[13] = TCP_FLAG_ACK | (body_len ? TCP_FLAG_PSH : 0) |
			    (s->answer.fin ? TCP_FLAG_FIN : 0) | (s->answer.rst ? TCP_FLAG_RST : 0);
	tcp->window = bpf_htons(s->answer.window);
	tcp->urg_ptr = 0;
	tcp->check = 0;
	if (tcp_len > sizeof(*tcp))
		rls_put_timestamps(tcp, &s->opts);
	return tcp;
}

/*
 * The headers of a packet XDP sends back to the client over its own (rls_turn_headers()),
 * checksums computed anew. A global function: the 429 and the FIN share it. XDP_TX, or
 * XDP_DROP.
 */
__noinline int rls_reply_headers(struct xdp_md *ctx, const struct rls_packet *pkt,
				 struct rls_scratch *s, __u32 body_len)
{
	void *data, *data_end;
	struct tcphdr *tcp;
	__u32 tcp_len;
	__s64 pseudo;
	__u64 sum;

	if (!pkt || !s)
		return XDP_DROP;
	tcp_len = s->answer.tcp_len;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	tcp = rls_turn_headers(data, data_end, pkt, s, tcp_len, body_len);
	if (!tcp)
		return XDP_DROP;
	pseudo = rls_pseudo_sum(data, data_end, pkt, tcp_len + body_len);
	sum = (__u64)pseudo;
	if (pseudo < 0 || rls_csum_add_words(tcp, tcp_len, data_end, &sum))
		return XDP_DROP;
	sum = rls_csum_buffer(s->reply, body_len, rls_csum_fold32(sum));
	tcp->check = rls_csum_fold(sum);
	return XDP_TX;
}

/* Where the reply's TCP header goes, and how long it is (the timestamps where the client's
 * segment has them, read before the frame is reshaped over them); -1 if it cannot be sent. */
static __always_inline long rls_reply_layout(struct xdp_md *ctx, struct rls_scratch *s,
					     const struct rls_packet *pkt, __u32 *tcp_len)
{
	struct rls_tcp_options *o = &s->opts;

	if (rls_tcp_options_read(rls_ctx_xdp(ctx), pkt, o))
		o->has_timestamps = 0;
	*tcp_len = sizeof(struct tcphdr) + (o->has_timestamps ? RLS_TCP_TS_OPTION_LEN : 0);
	return rls_strip_ip_extras(ctx, s, pkt);
}

/*
 * Rewrite the request packet into the 429 from the server, numbered and flagged as s->answer
 * says. The reply's bytes are built in scratch first; returns XDP_TX, or XDP_DROP if the
 * packet cannot be reshaped (the client then retransmits, and the retransmission is
 * answered). *reply_end: the upstream's number past the 429 (and its FIN), pkt->ack_seq on.
 */
__noinline int rls_send_429(struct xdp_md *ctx, const struct rls_packet *pkt,
			    struct rls_scratch *s, const struct rls_rejection *r, __u32 *reply_end)
{
	__u32 hdrs, tcp_len = 0, body_len;
	long l4_off;
	int action;

	if (!pkt || !s || !r || !reply_end)
		return XDP_DROP;
	l4_off = rls_reply_layout(ctx, s, pkt, &tcp_len);
	if (l4_off < 0 || l4_off > 128)
		return XDP_DROP;
	hdrs = l4_off + tcp_len;
	body_len = rls_fit_429(ctx, s, pkt, r, hdrs);
	if (body_len == 0 || bpf_xdp_store_bytes(ctx, hdrs, s->reply, body_len))
		return XDP_DROP;
	s->answer.l4_off = (__u32)l4_off;
	s->answer.tcp_len = tcp_len;
	action = rls_reply_headers(ctx, pkt, s, body_len);
	s->answer.len = body_len;
	*reply_end = pkt->ack_seq + body_len + s->answer.fin;
	return action;
}

/*
 * Rewrite the client's segment into our bare FIN (or ACK), numbered as s->answer says: the
 * answer to the client's FIN after a 429 that closed the connection. XDP_TX, or XDP_DROP.
 */
__noinline int rls_send_fin(struct xdp_md *ctx, const struct rls_packet *pkt,
			    struct rls_scratch *s)
{
	__u32 tcp_len = 0;
	long l4_off;

	if (!pkt || !s)
		return XDP_DROP;
	l4_off = rls_reply_layout(ctx, s, pkt, &tcp_len);
	if (l4_off < 0 || l4_off > 128 ||
	    bpf_xdp_adjust_tail(ctx, (int)((long)l4_off + tcp_len - rls_xdp_len(ctx))))
		return XDP_DROP;
	s->answer.l4_off = (__u32)l4_off;
	s->answer.tcp_len = tcp_len;
	return rls_reply_headers(ctx, pkt, s, 0);
}

#endif /* RLS_BPF_REPLY_H */
