/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The skb context's side of the context layer (ctx.h), for TC. An skb's headers may not be
 * in its linear part, and its payload may be in page fragments: the headers are pulled in
 * when they are not linear, and the payload is only ever read with bpf_skb_load_bytes().
 */
#ifndef RLS_BPF_CTX_SKB_H
#define RLS_BPF_CTX_SKB_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define RLS_SKB_HEADERS_LINEAR 128 /* Ethernet, VLAN, IP and TCP with options */

static __always_inline long rls_skb_linear_len(const struct __sk_buff *skb)
{
	return (long)skb->data_end - (long)skb->data;
}

/*
 * Make the headers linear, to be parsed. Pulls only when they are not: the pull also makes
 * the bytes writable, which for TCP's cloned skbs means a copy of the head, on every packet
 * TC reads and never writes.
 */
static __always_inline void rls_skb_pull_headers(struct __sk_buff *skb)
{
	if (rls_skb_linear_len(skb) < RLS_SKB_HEADERS_LINEAR && rls_skb_linear_len(skb) < (long)skb->len)
		bpf_skb_pull_data(skb, skb->len < RLS_SKB_HEADERS_LINEAR ? skb->len
								  : RLS_SKB_HEADERS_LINEAR);
}

/*
 * The linear part. Read after rls_skb_pull_headers(), which moves it: the barrier keeps clang
 * from reusing a field address computed before the pull (the verifier forbids it).
 */
static __always_inline void *rls_skb_data(struct __sk_buff *skb)
{
	asm volatile("" : "+r"(skb));
	return (void *)(long)skb->data;
}

static __always_inline void *rls_skb_data_end(struct __sk_buff *skb)
{
	asm volatile("" : "+r"(skb));
	return (void *)(long)skb->data_end;
}

static __always_inline long rls_skb_load_bytes(struct __sk_buff *skb, __u32 off, void *to,
					       __u32 len)
{
	return bpf_skb_load_bytes(skb, off, to, len);
}

static __always_inline long rls_skb_store_bytes(struct __sk_buff *skb, __u32 off, void *from,
					       __u32 len)
{
	return bpf_skb_store_bytes(skb, off, from, len, 0);
}

/*
 * Fold diff into the TCP checksum at off. The kernel's helper knows what the field holds: a
 * segment leaving with its checksum to be completed by offload holds only the pseudo-header's
 * sum, which a change of sequence numbers must leave alone.
 */
static __always_inline long rls_skb_l4_csum_diff(struct __sk_buff *skb, __u32 off, __s64 diff)
{
	if (diff < 0)
		return -1;
	return bpf_l4_csum_replace(skb, off, 0, (__u64)diff, 0);
}

/*
 * Set the TCP checksum at off of a segment written whole: sum is the one's-complement sum of
 * its TCP bytes with the field zero, pseudo the pseudo-header's. Through the kernel's helper,
 * which knows what the field must hold: the whole checksum; or, where the segment leaves with
 * its checksum to be completed by offload (CHECKSUM_PARTIAL), the pseudo-header's sum alone,
 * which the helper leaves by ignoring the first diff and folding in the second.
 */
static __always_inline long rls_skb_set_l4_csum(struct __sk_buff *skb, __u32 off, __u32 sum,
						__u32 pseudo)
{
	__u16 zero = 0;

	if (bpf_skb_store_bytes(skb, off, &zero, sizeof(zero), 0) ||
	    bpf_l4_csum_replace(skb, off, 0, sum, 0))
		return -1;
	return bpf_l4_csum_replace(skb, off, 0, pseudo, BPF_F_PSEUDO_HDR);
}

#endif /* RLS_BPF_CTX_SKB_H */
