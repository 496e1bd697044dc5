/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Internet checksums of the packets XDP writes (reply.h, reset.h, trim.h). They are computed
 * from scratch, not updated: the packets are new, and a received packet's checksum may not
 * even be filled in yet (veth with TX offload).
 */
#ifndef RLS_BPF_CSUM_H
#define RLS_BPF_CSUM_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "packet.h"

#define RLS_CSUM_CHUNK 512 /* bpf_csum_diff() takes at most 512 bytes per call */

static __always_inline __u16 rls_csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* One's-complement addition of 32-bit words: the carry out of bit 31 comes back in. */
static __always_inline __u32 rls_csum_add32(__u32 a, __u32 b)
{
	a += b;
	return a + (a < b);
}

/*
 * A checksum field (as the packet holds it) after a 32-bit word of what it covers goes from
 * from to to (as the packet holds them): RFC 1624's HC' = ~(~HC + ~m + m'), no helper call.
 */
static __always_inline __u16 rls_csum_replace4(__u16 check, __u32 from, __u32 to)
{
	__u32 sum = rls_csum_add32(rls_csum_add32((__u16)~check, ~from), to);

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* A checksum field after a change whose one's-complement difference is diff (RFC 1624). */
static __always_inline __u16 rls_csum_apply_diff(__u16 check, __u32 diff)
{
	return rls_csum_fold((__u64)(__u16)~check + diff);
}

/*
 * One's-complement sum of buf[0, len), len rounded up to 4: the bytes up to there past len
 * must be zero. Only the bytes written are summed, not whole chunks.
 */
static __always_inline __u64 rls_csum_buffer(__u8 *buf, __u32 len, __u64 seed)
{
	__u32 i, n;

	for (i = 0; i < RLS_REPLY_MAX / RLS_CSUM_CHUNK; i++) {
		__u32 off = i * RLS_CSUM_CHUNK;

		if (off >= len)
			break;
		/* At most a chunk, rounded up to 4 (the mask keeps a bound the verifier sees). */
		n = len - off < RLS_CSUM_CHUNK ? (len - off + 3) & (2 * RLS_CSUM_CHUNK - 4)
					       : RLS_CSUM_CHUNK;
		seed = bpf_csum_diff(0, 0, (__be32 *)(buf + off), n, (__u32)seed);
	}
	return seed;
}

/* A 64-bit accumulator of 32-bit words folded to 32 bits: a seed bpf_csum_diff() takes. */
static __always_inline __u32 rls_csum_fold32(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return (__u32)sum;
}

/*
 * Adds the len bytes at p (a multiple of 4, at most 60: a header) to *sum, a 32-bit word at a
 * time; end bounds them (data_end for a packet). A header is a few words: summed here they
 * cost less than the helper call bpf_csum_diff() is. -1 if they pass end.
 */
static __always_inline int rls_csum_add_words(const void *p, __u32 len, const void *end,
					      __u64 *sum)
{
	__u32 i;

	for (i = 0; i < 60 / 4; i++) {
		const __u32 *word = (const __u32 *)p + i;

		if (i * 4 >= len)
			break;
		if ((const void *)(word + 1) > end)
			return -1;
		*sum += *word;
	}
	return 0;
}

struct rls_pseudo_v4 {
	__be32 saddr, daddr;
	__u8 zero, proto;
	__be16 len;
};

struct rls_pseudo_v6 {
	struct in6_addr saddr, daddr;
	__be32 len;
	__u8 zero[3], next;
};

/* The TCP pseudo-header's sum, for the addresses already in the packet; -1 if out of bounds. */
static __always_inline __s64 rls_pseudo_sum(void *data, void *data_end,
					     const struct rls_packet *pkt, __u32 tcp_total)
{
	void *l3 = data + (pkt->l3_off & 0xff);
	__u64 sum = 0;

	if (pkt->ipv6) {
		struct ipv6hdr *ip6 = l3;
		struct rls_pseudo_v6 ph = { .len = bpf_htonl(tcp_total), .next = IPPROTO_TCP_ };

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		ph.saddr = ip6->saddr;
		ph.daddr = ip6->daddr;
		if (rls_csum_add_words(&ph, sizeof(ph), &ph + 1, &sum))
			return -1;
		return rls_csum_fold32(sum);
	} else {
		struct iphdr *ip = l3;
		struct rls_pseudo_v4 ph = { .proto = IPPROTO_TCP_, .len = bpf_htons(tcp_total) };

		if ((void *)(ip + 1) > data_end)
			return -1;
		ph.saddr = ip->saddr;
		ph.daddr = ip->daddr;
		if (rls_csum_add_words(&ph, sizeof(ph), &ph + 1, &sum))
			return -1;
		return rls_csum_fold32(sum);
	}
}

/* The IPv4 header's checksum over hdr_len bytes, options included; -1 if out of bounds. */
static __always_inline int rls_ipv4_header_csum(struct iphdr *ip, void *data_end, __u32 hdr_len)
{
	__u64 sum = 0;

	if ((void *)(ip + 1) > data_end)
		return -1;
	ip->check = 0;
	if (rls_csum_add_words(ip, hdr_len, data_end, &sum))
		return -1;
	ip->check = rls_csum_fold(sum);
	return 0;
}

#endif /* RLS_BPF_CSUM_H */
