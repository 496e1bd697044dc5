/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ethernet (one 802.1Q/802.1ad tag), IPv4 without options, IPv6 without extension headers,
 * TCP. Anything else is not ours to judge and is passed.
 */
#ifndef RLS_BPF_PARSE_PACKET_H
#define RLS_BPF_PARSE_PACKET_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rlshape.h"

#define ETH_P_IP     0x0800
#define ETH_P_IPV6   0x86DD
#define ETH_P_8021Q  0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_TCP_ 6
#define IP_MF        0x2000
#define IP_OFFSET    0x1FFF

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_ACK 0x10

struct rls_packet {
	__u32 l3_off;
	__u32 l4_off;
	__u32 payload_off;
	__u32 payload_len; /* from the IP length: Ethernet padding is not payload */
	__u32 seq;         /* host byte order */
	__u32 ack_seq;
	__u8 ipv6;
	__u8 tcp_flags;
	__u16 tcp_len;     /* TCP header bytes */
	struct rls_flow_key flow;
};

enum rls_parse_result {
	RLS_PARSE_OK,
	RLS_PARSE_NOT_TCP, /* not for us at all */
	RLS_PARSE_BAD,     /* TCP we could not follow: truncated, options, fragments */
};

static __always_inline void rls_map_ipv4(__u8 out[16], __be32 addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr, 4);
}

/* ::ffff:0:0/96, as rls_map_ipv4() writes IPv4 addresses. */
static __always_inline bool rls_is_ipv4_mapped(const __u8 addr[16])
{
	__u32 i;

	for (i = 0; i < 10; i++)
		if (addr[i])
			return false;
	return addr[10] == 0xff && addr[11] == 0xff;
}

static __always_inline __u8 rls_tcp_flags(const struct tcphdr *tcp)
{
	return ((const __u8 *)tcp)[13];
}

/* Where a packet's bytes are. XDP frames are linear; an skb's payload may be in fragments. */
struct rls_frame {
	void *data;
	void *data_end;
	bool payload_linear; /* the payload must be between data and data_end too */
};

static __always_inline int rls_parse_tcp(const struct rls_frame *f, struct rls_packet *pkt,
					 __u32 l4_len)
{
	void *data = f->data, *data_end = f->data_end;
	struct tcphdr *tcp = data + pkt->l4_off;
	__u32 doff;

	if ((void *)(tcp + 1) > data_end)
		return RLS_PARSE_BAD;
	doff = tcp->doff * 4;
	if (doff < sizeof(*tcp) || doff > l4_len)
		return RLS_PARSE_BAD;
	pkt->tcp_len = doff;
	pkt->payload_off = pkt->l4_off + doff;
	pkt->payload_len = l4_len - doff;
	if (f->payload_linear && (long)pkt->payload_off + pkt->payload_len > (long)(data_end - data))
		return RLS_PARSE_BAD; /* truncated */
	pkt->seq = bpf_ntohl(tcp->seq);
	pkt->ack_seq = bpf_ntohl(tcp->ack_seq);
	pkt->tcp_flags = rls_tcp_flags(tcp);
	pkt->flow.client_port = tcp->source;
	pkt->flow.server_port = tcp->dest;
	return RLS_PARSE_OK;
}

static __always_inline int rls_parse_ipv4(const struct rls_frame *f, struct rls_packet *pkt)
{
	struct iphdr *ip = f->data + pkt->l3_off;
	void *data_end = f->data_end;
	__u32 tot_len;

	if ((void *)(ip + 1) > data_end)
		return RLS_PARSE_BAD;
	if (ip->protocol != IPPROTO_TCP_)
		return RLS_PARSE_NOT_TCP;
	/* The 429 is written over a 20-byte header; fragments carry no TCP header to trust. */
	if (ip->ihl != 5 || (bpf_ntohs(ip->frag_off) & (IP_MF | IP_OFFSET)))
		return RLS_PARSE_BAD;
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < sizeof(*ip) + sizeof(struct tcphdr))
		return RLS_PARSE_BAD;
	pkt->l4_off = pkt->l3_off + sizeof(*ip);
	rls_map_ipv4(pkt->flow.client, ip->saddr);
	rls_map_ipv4(pkt->flow.server, ip->daddr);
	return rls_parse_tcp(f, pkt, tot_len - sizeof(*ip));
}

static __always_inline int rls_parse_ipv6(const struct rls_frame *f, struct rls_packet *pkt)
{
	struct ipv6hdr *ip6 = f->data + pkt->l3_off;
	void *data_end = f->data_end;

	if ((void *)(ip6 + 1) > data_end)
		return RLS_PARSE_BAD;
	if (ip6->nexthdr != IPPROTO_TCP_)
		return RLS_PARSE_NOT_TCP; /* extension headers included: passed */
	pkt->ipv6 = 1;
	pkt->l4_off = pkt->l3_off + sizeof(*ip6);
	__builtin_memcpy(pkt->flow.client, &ip6->saddr, 16);
	__builtin_memcpy(pkt->flow.server, &ip6->daddr, 16);
	return rls_parse_tcp(f, pkt, bpf_ntohs(ip6->payload_len));
}

static __always_inline int rls_parse_packet(const struct rls_frame *f, struct rls_packet *pkt)
{
	void *data = f->data, *data_end = f->data_end;
	struct ethhdr *eth = data;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return RLS_PARSE_NOT_TCP;
	proto = bpf_ntohs(eth->h_proto);
	pkt->l3_off = sizeof(*eth);
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		struct vlan_hdr *vlan = data + sizeof(*eth);

		if ((void *)(vlan + 1) > data_end)
			return RLS_PARSE_NOT_TCP;
		proto = bpf_ntohs(vlan->h_vlan_encapsulated_proto);
		pkt->l3_off += sizeof(*vlan);
	}
	if (proto == ETH_P_IP)
		return rls_parse_ipv4(f, pkt);
	if (proto == ETH_P_IPV6)
		return rls_parse_ipv6(f, pkt);
	return RLS_PARSE_NOT_TCP;
}

#endif /* RLS_BPF_PARSE_PACKET_H */
