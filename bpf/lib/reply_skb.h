/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The packets TC writes on the upstream side (rlshape_upstream.c) over a segment the proxy
 * sends: the reset toward the upstream, and the reply (the 429, an ACK of the proxy's FIN, a
 * reset) that goes in through the interface to the proxy's socket as if the upstream had sent
 * it. Their headers are written by the code XDP's packets use (reset.h, reply.h); here the skb
 * is resized and made writable around them, and the checksum set as the skb needs it
 * (rls_skb_set_l4_csum()).
 */
#ifndef RLS_BPF_REPLY_SKB_H
#define RLS_BPF_REPLY_SKB_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "ctx_skb.h"
#include "packet.h"
#include "scratch.h"
#include "csum.h"
#include "reply.h"
#include "reset.h"

/* Headers an skb reply or reset may have, all pulled into the linear part to be written. */
#define RLS_SKB_REPLY_HEADERS_MAX RLS_SKB_HEADERS_LINEAR

/*
 * The segment (s->pkt) becomes a bare RST at seq, going where it was going: cut to its TCP
 * header, without options. A global function. 0, or -1 (the skb may be half rewritten).
 */
__noinline int rls_skb_make_reset(struct __sk_buff *skb, const struct rls_packet *pkt, __u32 seq)
{
	void *data, *data_end;
	struct tcphdr *tcp;
	__u32 keep;
	__s64 pseudo;
	__u64 sum;

	if (!pkt)
		return -1;
	keep = (pkt->l4_off & RLS_L4_OFF_MAX) + sizeof(*tcp);
	if (keep > RLS_SKB_REPLY_HEADERS_MAX || bpf_skb_change_tail(skb, keep, 0) ||
	    bpf_skb_pull_data(skb, keep))
		return -1;
	data = rls_skb_data(skb);
	data_end = rls_skb_data_end(skb);
	tcp = rls_reset_headers(data, data_end, pkt, seq);
	if (!tcp)
		return -1;
	pseudo = rls_pseudo_sum(data, data_end, pkt, sizeof(*tcp));
	sum = 0;
	if (pseudo < 0 || rls_csum_add_words(tcp, sizeof(*tcp), data_end, &sum))
		return -1;
	sum = rls_csum_fold32(sum);
	return rls_skb_set_l4_csum(skb, keep - sizeof(*tcp) + 16, (__u32)sum, (__u32)pseudo) ? -1 : 0;
}

/*
 * The segment (s->pkt, its options in s->opts) becomes the reply s->answer describes, with
 * body_len bytes of s->reply as its payload: turned around, numbered, flagged. Only over the
 * fixed IP header (rls_reverse_ip() writes no other): a local TCP socket's segment has no IPv4
 * options or IPv6 extension headers unless its program asked for them. A global function.
 * 0, or -1 (the skb may be half rewritten).
 */
__noinline int rls_skb_write_reply(struct __sk_buff *skb, const struct rls_packet *pkt,
				   struct rls_scratch *s, __u32 body_len)
{
	__u32 l4_off, tcp_len, hdrs;
	void *data, *data_end;
	struct tcphdr *tcp;
	__s64 pseudo;
	__u64 sum;

	if (!pkt || !s)
		return -1;
	l4_off = pkt->l4_off & 0xff;
	if (l4_off != pkt->l3_off + (pkt->ipv6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)))
		return -1;
	tcp_len = s->opts.has_timestamps ? sizeof(*tcp) + RLS_TCP_TS_OPTION_LEN : sizeof(*tcp);
	s->answer.l4_off = l4_off;
	s->answer.tcp_len = tcp_len;
	hdrs = l4_off + tcp_len;
	if (hdrs > RLS_SKB_REPLY_HEADERS_MAX || body_len > RLS_REPLY_MAX - 8)
		return -1;
	/*
	 * Masked as well, behind a barrier clang cannot see through: a copy of body_len that
	 * went through the stack still has a bound at the helper calls below.
	 */
	barrier_var(body_len);
	body_len &= RLS_REPLY_MASK;
	if (bpf_skb_change_tail(skb, hdrs + body_len, 0))
		return -1;
	if (body_len && bpf_skb_store_bytes(skb, hdrs, s->reply, body_len, 0))
		return -1;
	if (bpf_skb_pull_data(skb, hdrs))
		return -1;
	data = rls_skb_data(skb);
	data_end = rls_skb_data_end(skb);
	tcp = rls_turn_headers(data, data_end, pkt, s, tcp_len, body_len);
	if (!tcp)
		return -1;
	pseudo = rls_pseudo_sum(data, data_end, pkt, tcp_len + body_len);
	sum = 0;
	if (pseudo < 0 || rls_csum_add_words(tcp, tcp_len, data_end, &sum))
		return -1;
	sum = rls_csum_buffer(s->reply, body_len, rls_csum_fold32(sum));
	return rls_skb_set_l4_csum(skb, l4_off + 16, (__u32)sum, (__u32)pseudo) ? -1 : 0;
}

#endif /* RLS_BPF_REPLY_SKB_H */
