/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The client's address a local proxy writes in each request it forwards to the upstream
 * (identify.client_address_header: X-Forwarded-For, X-Real-IP). On the upstream side every
 * request comes from the proxy's own address, which would make all unknown clients one
 * anonymous account: the header's address identifies them instead (CIDR accounts included).
 *
 * The proxy must write the header itself, over any the client sent (nginx: proxy_set_header):
 * the last address of the header's last line is taken, the one the proxy added. The first of
 * an X-Forwarded-For list is whatever the client claimed, and taking it would let a client
 * be a new anonymous client with every request.
 *
 * The head is searched once per request, in the segment where it starts (the proxy writes a
 * head in one piece), at most RLS_PARSE_WINDOW bytes of it and RLS_CLIENT_HEADER_LINES lines:
 * a request whose header is not found there, or does not hold one IPv4 or IPv6 address, is
 * identified by the segment's source, the proxy (counted: client_address_missing).
 */
#ifndef RLS_BPF_CLIENT_ADDRESS_H
#define RLS_BPF_CLIENT_ADDRESS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "consts.h"
#include "ctx.h"
#include "scratch.h"
#include "window.h"
#include "header_names.h"
#include "maps.h"

#define RLS_CLIENT_HEADER_LINES 64
#define RLS_ADDRESS_TEXT_MAX    45 /* the longest IPv6 text, IPv4 in its tail included */
#define RLS_ADDRESS_LISTED_MAX  16 /* addresses of one X-Forwarded-For line looked past */

/* bpf_loop()'s context must be on the stack: it points to the scratch, and to the name. */
struct rls_head_ctx {
	struct rls_scratch *s;
	const struct rls_header_name *name; /* the configuration's client_address_header */
};

/* One step of the head search: the next line; 1 stops (the head's end, or the window's). */
static long rls_head_line_step(__u32 index, void *ctx)
{
	struct rls_scratch *s = ((struct rls_head_ctx *)ctx)->s;
	const struct rls_header_name *h = ((struct rls_head_ctx *)ctx)->name;
	__u32 nl, line, n;

	if (!h)
		return 1;
	n = h->len;
	nl = (__u32)rls_find_run_end(s, s->head.pos, s->head.end, '\n', '\n');
	if (nl >= s->head.end)
		return 1;
	if (rls_at(s, nl) != '\n') {
		s->head.pos = nl; /* a long line: its search goes on */
		return 0;
	}
	line = nl + 1;
	if (line >= s->head.end || rls_at(s, line) == '\r' || rls_at(s, line) == '\n')
		return 1; /* the blank line: the head is over */
	if (n && n < RLS_HEADER_NAME_MAX && line + n < s->head.end && rls_at(s, line + n) == ':' &&
	    rls_name_is(s, line, n, h))
		s->head.value = line + n + 1;
	s->head.pos = line;
	return 0;
}

/* A hex digit's value, or 16. */
static __always_inline __u32 rls_hex_value(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return 16;
}

/*
 * One character of an address's text (s->addr says where, and what came before). 1 stops:
 * the end, or text that is no address (s->addr.bad).
 */
static long rls_address_step(__u32 index, void *ctx)
{
	struct rls_scratch *s = ((struct rls_head_ctx *)ctx)->s;
	struct rls_address_parse *a = &s->addr;
	__u32 at = a->at, d, group;
	__u8 c;

	if (at >= a->end)
		return 1;
	c = rls_at(s, at);
	a->at = at + 1;
	/* Optional white space around the value (RFC 9110 5.6.1), none inside it. */
	if (c == ' ' || c == '\t') {
		if (a->chars)
			a->trailing = 1;
		return 0;
	}
	if (a->trailing)
		goto bad;
	a->chars++;
	if (!a->ipv6) {
		if (c == '.') {
			if (!a->digits || a->parts >= 3)
				goto bad;
			s->head.address[12 + (a->parts & 3)] = (__u8)a->v;
			a->parts++;
			a->v = a->digits = 0;
			return 0;
		}
		if (c < '0' || c > '9' || ++a->digits > 3)
			goto bad;
		a->v = a->v * 10 + (c - '0');
		return a->v > 255 ? (a->bad = 1) : 0;
	}
	if (c == ':') {
		group = a->digits;
		if (group) {
			if (a->parts >= 8)
				goto bad;
			a->groups[a->parts & 7] = (__u16)a->v;
			a->parts++;
			a->v = a->digits = 0;
		} else if (a->chars != 1) {
			goto bad; /* no group before it, and not the address's leading "::" */
		}
		if (at + 1 < a->end && rls_at(s, at + 1) == ':') {
			if (a->gap != 8)
				goto bad; /* a second "::" */
			a->gap = a->parts;
			a->at = at + 2;
			a->chars++;
		} else if (!group) {
			goto bad; /* a lone leading ":" */
		}
		return 0;
	}
	d = rls_hex_value(c);
	if (d > 15 || ++a->digits > 4)
		goto bad;
	a->v = a->v * 16 + d;
	return 0;
bad:
	a->bad = 1;
	return 1;
}

/*
 * The IPv6 groups s->addr holds, the ones after a "::" moved to the end and zeros between,
 * into s->head.address. 0, or -1 when they are not eight.
 */
static __always_inline int rls_ipv6_out(struct rls_scratch *s)
{
	struct rls_address_parse *a = &s->addr;
	__u32 parts = a->parts, gap = a->gap, k, at;
	__u8 *out = s->head.address;
	__u16 g;

	if (parts > 8 || (gap == 8 && parts != 8) || (gap != 8 && (parts >= 8 || gap > parts)))
		return -1;
	for (k = 0; k < 8; k++) {
		at = 7 - k;
		if (gap == 8 || at >= gap + (8 - parts))
			g = a->groups[(at - (gap == 8 ? 0 : 8 - parts)) & 7];
		else if (at >= gap)
			g = 0;
		else
			g = a->groups[at & 7];
		out[(2 * at) & 15] = (__u8)(g >> 8);
		out[(2 * at + 1) & 15] = (__u8)g;
	}
	return 0;
}

/*
 * The address text in the window's [from, end): IPv4 dotted decimal (into the IPv4-mapped
 * form) or IPv6 (groups, one "::"; an IPv4 tail is refused), into s->head.address. 0, or -1.
 * A global function; the characters are read by a bpf_loop() whose state is in scratch, so
 * that the verifier checks one step, not every text.
 */
__noinline int rls_parse_address(struct rls_scratch *s, __u32 from, __u32 end)
{
	struct rls_head_ctx ctx = { .s = s };
	struct rls_address_parse *a;
	__u8 *out;

	if (!s || end <= from || end - from > RLS_ADDRESS_TEXT_MAX)
		return -1;
	a = &s->addr;
	__builtin_memset(a, 0, sizeof(*a));
	a->at = from;
	a->end = end;
	a->gap = 8;
	a->ipv6 = (__u32)rls_find_run_end(s, from, end, ':', ':') < end;
	bpf_loop(RLS_ADDRESS_TEXT_MAX, rls_address_step, &ctx, 0);
	out = s->head.address;
	if (a->bad || !a->digits)
		return a->ipv6 && !a->bad && a->gap == a->parts && a->gap < 8 ? rls_ipv6_out(s) : -1;
	if (!a->ipv6) {
		if (a->parts != 3)
			return -1;
		__builtin_memset(out, 0, 10);
		out[10] = 0xff;
		out[11] = 0xff;
		out[15] = (__u8)a->v;
		return 0;
	}
	if (a->parts >= 8)
		return -1;
	a->groups[a->parts & 7] = (__u16)a->v;
	a->parts++;
	return rls_ipv6_out(s);
}

/*
 * The address the value from the window's from to its line's end gives: its last
 * comma-separated item. 0 with it in s->head.address, or -1. A global function; the cursor
 * is kept in scratch (s->head.pos), where the verifier does not follow it, so that the loop's
 * paths meet again.
 */
__noinline int rls_last_listed_address(struct rls_scratch *s, __u32 from, __u32 end)
{
	__u32 line_end, comma, i;

	if (!s)
		return -1;
	line_end = (__u32)rls_find_run_end(s, from, end, '\r', '\n');
	if (line_end >= end)
		return -1; /* the line's end is not in the window */
	s->head.pos = from;
	for (i = 0; i < RLS_ADDRESS_LISTED_MAX; i++) {
		comma = (__u32)rls_find_run_end(s, s->head.pos, line_end, ',', ',');
		if (comma >= line_end)
			break;
		s->head.pos = comma + 1;
	}
	return rls_parse_address(s, s->head.pos, line_end);
}

/*
 * The request starting at seq start, head_off bytes into this segment's payload: search its
 * head for the client's address, into flow->client_address. The payload window is used, and
 * left as the stream's scan had it. A global function.
 */
__noinline int rls_read_client_address(struct __sk_buff *skb, struct rls_scratch *s,
				       struct rls_flow *flow, const struct rls_config *cfg,
				       __u32 head_off)
{
	struct rls_head_ctx head_ctx = { .s = s };
	struct rls_scan scan;
	__u32 len;

	if (!s || !flow || !cfg)
		return -1;
	head_ctx.name = &cfg->client_address_header;
	scan = s->scan;
	flow->client_address_seq = flow->stream.request_start;
	flow->client_address_read = 1;
	flow->client_address_found = 0;
	len = s->pkt.payload_len - head_off;
	if (len > RLS_PARSE_WINDOW)
		len = RLS_PARSE_WINDOW;
	if (head_off >= s->pkt.payload_len ||
	    !rls_window_load(rls_ctx_skb(skb), s, s->pkt.payload_off + head_off, len))
		goto restore;
	s->head.pos = 0;
	s->head.end = len;
	s->head.value = 0;
	bpf_loop(RLS_CLIENT_HEADER_LINES, rls_head_line_step, &head_ctx, 0);
	if (s->head.value && !rls_last_listed_address(s, s->head.value, s->head.end)) {
		__builtin_memcpy(flow->client_address, s->head.address, sizeof(flow->client_address));
		flow->client_address_found = 1;
	}
restore:
	/* The scan's window as it was, for the scan to go on where it stopped. */
	s->scan = scan;
	if (scan.len && scan.len <= RLS_PARSE_WINDOW)
		rls_window_load(rls_ctx_skb(skb), s, s->pkt.payload_off + s->seg.base, scan.len);
	return flow->client_address_found ? 0 : -1;
}

/*
 * Read the current request's head for the client's address, once: where the head starts in
 * this segment (a head that started in an earlier one was read there, or is past reading).
 */
static __always_inline void rls_note_client_address(struct __sk_buff *skb, struct rls_scratch *s,
						    struct rls_flow *flow,
						    const struct rls_config *cfg)
{
	const struct rls_stream *st = &flow->stream;
	__s32 head_off = (__s32)(st->request_start - s->pkt.seq);

	if (!cfg->client_address_header.len ||
	    (flow->client_address_read && flow->client_address_seq == st->request_start))
		return;
	if (head_off >= 0) {
		rls_read_client_address(skb, s, flow, cfg, (__u32)head_off);
		return;
	}
	flow->client_address_read = 1;
	flow->client_address_seq = st->request_start;
	flow->client_address_found = 0;
}

/*
 * The connection as the decision on its current request identifies it (s->who): the
 * segment's, with the client's address from the proxy's header where the table names one.
 */
static __always_inline void rls_upstream_who(struct __sk_buff *skb, struct rls_scratch *s,
					     struct rls_flow *flow, const struct rls_config *cfg)
{
	s->who = s->pkt.flow;
	if (!cfg->client_address_header.len)
		return;
	rls_note_client_address(skb, s, flow, cfg);
	if (flow->client_address_found)
		__builtin_memcpy(s->who.client, flow->client_address, sizeof(s->who.client));
	else
		rls_count_packet(RLS_PKT_CLIENT_ADDRESS_MISSING);
}

#endif /* RLS_BPF_CLIENT_ADDRESS_H */
