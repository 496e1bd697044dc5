/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The reset that tells the upstream to forget a connection whose request it never saw (or
 * must not read on), written over the client's next packet: once that packet acknowledges the
 * 429, or in place of data XDP will not let through.
 */
#ifndef RLS_BPF_RESET_H
#define RLS_BPF_RESET_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "ctx_xdp.h"
#include "packet.h"
#include "csum.h"

/*
 * The headers of a bare RST at seq, written over the segment's own (data to data_end, cut to
 * its TCP header already), its TCP checksum left zero for the hook to set. IP options and
 * extension headers stay: the reset goes on the way the segment was going. Returns the TCP
 * header, or NULL if out of bounds.
 */
static __always_inline struct tcphdr *rls_reset_headers(void *data, void *data_end,
							const struct rls_packet *pkt, __u32 seq)
{
	__u32 ip_hdr_len, l3_off, l4_off;
	struct tcphdr *tcp;

	/* Masked, not only checked: the verifier sees these re-read after the helper calls. */
	l3_off = pkt->l3_off & 0x3f;
	l4_off = pkt->l4_off & RLS_L4_OFF_MAX;
	if (l4_off < l3_off + sizeof(struct iphdr))
		return NULL;
	ip_hdr_len = l4_off - l3_off;
	tcp = data + (l4_off & RLS_L4_OFF_MAX);
	if ((void *)(tcp + 1) > data_end)
		return NULL;
	/* rls_reverse_ip() twice would swap back: fix the length in place instead. */
	if (pkt->ipv6) {
		struct ipv6hdr *ip6 = data + (l3_off & 0x3f);

		if ((void *)(ip6 + 1) > data_end || ip_hdr_len < sizeof(*ip6))
			return NULL;
		ip6->payload_len = bpf_htons(ip_hdr_len - sizeof(*ip6) + sizeof(*tcp));
	} else {
		struct iphdr *ip = data + (l3_off & 0x3f);

		if ((void *)(ip + 1) > data_end)
			return NULL;
		ip->tot_len = bpf_htons(ip_hdr_len + sizeof(*tcp));
		if (rls_ipv4_header_csum(ip, data_end, ip_hdr_len))
			return NULL;
	}
	tcp->seq = bpf_htonl(seq);
	tcp->ack_seq = 0;
	((__u8 *)tcp)[12] = (sizeof(*tcp) / 4) << 4;
	((__u8 *)tcp)[13] = TCP_FLAG_RST;
	tcp->window = 0;
	tcp->urg_ptr = 0;
	tcp->check = 0;
	return tcp;
}

/*
 * The client acknowledged the 429: make its packet a bare RST at the sequence number the
 * upstream still expects (the rejected request's), so the upstream closes its socket at once
 * instead of waiting on a request that will never come.
 */
__noinline int rls_reset_upstream(struct xdp_md *ctx, const struct rls_packet *pkt,
				  __u32 request_seq)
{
	void *data, *data_end;
	struct tcphdr *tcp;
	__s64 pseudo;
	__u64 sum;

	if (!pkt)
		return XDP_DROP;
	if (bpf_xdp_adjust_tail(ctx, (int)((long)(pkt->l4_off & RLS_L4_OFF_MAX) +
					   sizeof(struct tcphdr) - rls_xdp_len(ctx))))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	tcp = rls_reset_headers(data, data_end, pkt, request_seq);
	if (!tcp)
		return XDP_DROP;
	pseudo = rls_pseudo_sum(data, data_end, pkt, sizeof(*tcp));
	sum = (__u64)pseudo;
	if (pseudo < 0 || rls_csum_add_words(tcp, sizeof(*tcp), data_end, &sum))
		return XDP_DROP;
	tcp->check = rls_csum_fold(sum);
	return XDP_PASS;
}

#endif /* RLS_BPF_RESET_H */
