/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Cutting a client segment short: when one segment ends an admitted request and then starts
 * one that is refused, the admitted bytes go on to the upstream and the refused ones are cut
 * off; the client, never acknowledged for them, sends them again, and they are answered then.
 * Lengths and checksums are computed anew for what is left.
 */
#ifndef RLS_BPF_TRIM_H
#define RLS_BPF_TRIM_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ctx_xdp.h"
#include "packet.h"
#include "scratch.h"
#include "csum.h"

#define RLS_SUM_CHUNK  256
#define RLS_SUM_CHUNKS (9216 / RLS_SUM_CHUNK) /* a jumbo frame's payload */

/* The one's-complement sum of the frame's payload [0, len), read a chunk at a time. */
static __always_inline __s64 rls_payload_sum(struct xdp_md *ctx, struct rls_scratch *s,
					     __u32 payload_off, __u32 len, __u64 sum)
{
	__u32 i, k, off, n;

	for (i = 0; i < RLS_SUM_CHUNKS; i++) {
		off = i * RLS_SUM_CHUNK;
		if (off >= len)
			break;
		n = len - off > RLS_SUM_CHUNK ? RLS_SUM_CHUNK : len - off;
		for (k = 0; k < (RLS_SUM_CHUNK + 8) / 8; k++)
			((__u64 *)s->reply)[k] = 0;
		if (n == 0 || n > RLS_SUM_CHUNK ||
		    bpf_xdp_load_bytes(ctx, payload_off + off, s->reply, n))
			return -1;
		/* Only the last chunk can be odd: its pad byte is zero, as TCP's sum wants. */
		sum = bpf_csum_diff(0, 0, (__be32 *)s->reply, (n + 3) & ~3u, (__u32)sum);
	}
	return (__s64)sum;
}

/*
 * Keep only the first keep bytes of the segment's payload. A global function: verified once.
 * Returns 0, or -1 when the frame cannot be cut (the caller then drops it whole).
 */
__noinline int rls_trim_payload(struct xdp_md *ctx, struct rls_scratch *s,
				const struct rls_packet *pkt, __u32 keep)
{
	__u32 l3 = pkt ? pkt->l3_off & 0xff : 0, l4, tcp_len, end;
	void *data, *data_end;
	struct tcphdr *tcp;
	__s64 pseudo, sum;

	if (!s || !pkt || keep >= pkt->payload_len)
		return -1;
	l4 = pkt->l4_off & 0x1ff;
	tcp_len = pkt->tcp_len & 0x3c;
	end = pkt->payload_off + keep;
	if (bpf_xdp_adjust_tail(ctx, (int)((long)end - rls_xdp_len(ctx))))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (pkt->ipv6) {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		ip6->payload_len = bpf_htons((__u16)(end - l3 - sizeof(*ip6)));
	} else {
		struct iphdr *ip = data + l3;
		__u32 ihl;

		if ((void *)(ip + 1) > data_end)
			return -1;
		ihl = (ip->ihl * 4) & 0x3c;
		if (ihl < sizeof(*ip))
			return -1;
		ip->tot_len = bpf_htons((__u16)(end - l3));
		ip->check = 0;
		/* Summed from a copy, options and all: their length is the packet's to say. */
		if (bpf_xdp_load_bytes(ctx, l3, s->headers, ihl))
			return -1;
		ip->check = rls_csum_fold(bpf_csum_diff(0, 0, (__be32 *)s->headers, ihl, 0));
	}
	tcp = data + l4;
	if ((void *)(tcp + 1) > data_end || tcp_len < sizeof(*tcp))
		return -1;
	tcp->check = 0;
	pseudo = rls_pseudo_sum(data, data_end, pkt, tcp_len + keep);
	/* The header with its options, summed from a copy: its length is the packet's to say. */
	if (pseudo < 0 || bpf_xdp_load_bytes(ctx, l4, s->headers, tcp_len))
		return -1;
	sum = bpf_csum_diff(0, 0, (__be32 *)s->headers, tcp_len, (__u32)pseudo);
	sum = rls_payload_sum(ctx, s, pkt->payload_off, keep, (__u64)sum);
	if (sum < 0)
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	tcp = data + l4;
	if ((void *)(tcp + 1) > data_end)
		return -1;
	tcp->check = rls_csum_fold((__u64)sum);
	return 0;
}

#endif /* RLS_BPF_TRIM_H */
