/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The close of a connection whose 429 carried our FIN and was renumbered (rlshape_xdp.c: the
 * client asked to close; seqadj.h). The client's FIN reaches the upstream, which closes in
 * turn; its FIN, renumbered, acknowledges the client's, and the client is done without ever
 * acknowledging the upstream's FIN (it took ours, in its place). So the upstream gets that
 * acknowledgment from here: a copy of its FIN, turned around into the client's ACK, goes in
 * through the interface (bpf_clone_redirect() to its ingress), and the upstream's socket closes
 * at once: no resend, no reset, and neither end keeps TIME_WAIT (both closed second).
 */
#ifndef RLS_BPF_UPSTREAM_FIN_H
#define RLS_BPF_UPSTREAM_FIN_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "ctx.h"
#include "packet.h"
#include "scratch.h"
#include "tcp_options.h"
#include "maps.h"

#define RLS_HDR_MASK (RLS_HEADERS_MAX - 1)

_Static_assert((RLS_HEADERS_MAX & RLS_HDR_MASK) == 0, "header copy must be a power of two");

static __always_inline void rls_hdr_swap(__u8 *h, __u32 a, __u32 b, __u32 n)
{
	__u32 i;
	__u8 t;

	for (i = 0; i < 16; i++) {
		if (i >= n)
			break;
		t = h[(a + i) & RLS_HDR_MASK];
		h[(a + i) & RLS_HDR_MASK] = h[(b + i) & RLS_HDR_MASK];
		h[(b + i) & RLS_HDR_MASK] = t;
	}
}

static __always_inline void rls_hdr_put32(__u8 *h, __u32 off, __u32 v)
{
	off &= RLS_HDR_MASK;
	if (off <= RLS_HEADERS_MAX - 4)
		rls_opt_put_be32(&h[off], v);
}

/*
 * The upstream's bare FIN (in s->pkt, its options in s->opts) becomes, in a copy, the client's
 * ACK of it, sent in through the interface; the segment itself is left as it was. Returns 0,
 * or -1 if nothing was sent. A global function.
 */
__noinline int rls_ack_upstream_fin(struct __sk_buff *skb, struct rls_scratch *s)
{
	struct rls_packet *pkt;
	__u8 *h, *turned;
	__u32 l3, l4, tcp_len, hdrs;
	__s64 diff;

	if (!s)
		return -1;
	pkt = &s->pkt;
	l3 = pkt->l3_off & 0x3f;
	l4 = pkt->l4_off & 0xff;
	tcp_len = pkt->tcp_len & 0x3c;
	hdrs = l4 + tcp_len;
	/* IPv6 extension headers would need turning around too: none on such a connection. */
	if (pkt->payload_len || hdrs == 0 || hdrs > RLS_HEADERS_MAX / 2 ||
	    tcp_len < sizeof(struct tcphdr) ||
	    (pkt->ipv6 && l4 != l3 + sizeof(struct ipv6hdr)))
		return -1;
	h = s->headers;
	turned = s->headers + RLS_HEADERS_MAX / 2;
	if (bpf_skb_load_bytes(skb, 0, h, hdrs) || bpf_skb_load_bytes(skb, 0, turned, hdrs))
		return -1;
	/* The other way: MACs, addresses, ports (none of which changes a checksum). */
	rls_hdr_swap(turned, 0, 6, 6);
	if (pkt->ipv6)
		rls_hdr_swap(turned, l3 + 8, l3 + 24, 16);
	else
		rls_hdr_swap(turned, l3 + 12, l3 + 16, 4);
	rls_hdr_swap(turned, l4, l4 + 2, 2);
	/* The client's next byte, acknowledging the upstream's FIN, in the upstream's numbers. */
	rls_hdr_put32(turned, l4 + 4, pkt->ack_seq);
	rls_hdr_put32(turned, l4 + 8, pkt->seq + 1);
	turned[(l4 + 13) & RLS_HDR_MASK] = TCP_FLAG_ACK;
	/* Its timestamps echo the upstream's, as the client's would. */
	if (s->opts.has_timestamps) {
		rls_hdr_put32(turned, l4 + sizeof(struct tcphdr) + s->opts.ts_off, s->opts.tsecr);
		rls_hdr_put32(turned, l4 + sizeof(struct tcphdr) + s->opts.ts_off + 4,
			      s->opts.tsval);
	}
	diff = bpf_csum_diff((__be32 *)&h[l4 & RLS_HDR_MASK], tcp_len,
			     (__be32 *)&turned[l4 & RLS_HDR_MASK], tcp_len, 0);
	if (diff < 0 || bpf_skb_store_bytes(skb, 0, turned, hdrs, 0) ||
	    bpf_l4_csum_replace(skb, l4 + 16, 0, (__u64)diff, 0))
		goto restore;
	if (bpf_clone_redirect(skb, skb->ifindex, BPF_F_INGRESS) == 0)
		rls_count_packet(RLS_PKT_UPSTREAM_FIN_ACKED);
restore:
	/* The segment as it came, checksum and all (a write after the clone copies first).
	 * Bounded again: the verifier lost hdrs's bounds across the helper calls. */
	asm volatile("" : "+r"(hdrs));
	if (hdrs == 0 || hdrs > RLS_HEADERS_MAX / 2)
		return -1;
	return bpf_skb_store_bytes(skb, 0, h, hdrs, 0) ? -1 : 0;
}

#endif /* RLS_BPF_UPSTREAM_FIN_H */
