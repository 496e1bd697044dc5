/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ethernet with up to two VLAN tags, IPv4 with or without options, IPv6 with a chain of
 * extension headers, TCP. Anything that is not TCP is not ours to judge and is passed.
 *
 * The IP layer must not let a client hide a request from the parser while the server still
 * reads it: whatever the kernel would reassemble or follow to reach TCP is followed here, or
 * reported (first fragments, urgent data) so that the XDP program can drop it
 * (rls_ip_layer_verdict(), rlshape_xdp.c).
 */
#ifndef RLS_BPF_PACKET_H
#define RLS_BPF_PACKET_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rlshape.h"
#include "ipv4_mapped.h"
#include "consts.h"
#include "ctx.h"

/* 802.1ad outer + 802.1Q inner (QinQ), or two 802.1Q: what a gateway's uplink may carry. */
#define RLS_VLAN_TAGS_MAX 2

/*
 * Extension headers walked before giving up. RFC 8200 (4.1) lets each of the four walked here
 * occur once, destination options twice: five at most in a conforming chain. A longer chain
 * is RLS_PARSE_TOO_DEEP: its TCP header, and so its port, lies past where the parser looked,
 * so it cannot be dropped only when it goes to a watched port. Linux accepts such chains, so
 * passing them would let a raw-socket client hide a request behind nine headers: they are
 * dropped whatever their port (no conforming sender makes one). The bound is what the
 * verifier affords: 8 costs ~270k of its 1M instructions for the XDP program, 16 no longer
 * loads.
 */
#define RLS_IPV6_EXT_MAX 8

struct rls_packet {
	__u32 l3_off;
	__u32 l4_off;      /* past IPv4 options and IPv6 extension headers */
	__u32 payload_off;
	__u32 payload_len; /* from the IP length: Ethernet padding is not payload */
	__u32 seq;         /* host byte order; the upstream's numbering (seqadj.h) */
	__u32 ack_seq;
	__u32 wire_seq;    /* seq and ack_seq as the segment came: seqadj.h renumbers the others */
	__u32 wire_ack;
	__u8 ipv6;
	__u8 tcp_flags;
	__u16 tcp_len;     /* TCP header bytes */
	struct rls_flow_key flow;
	/*
	 * The first fragment of a fragmented datagram: only the addresses and ports are filled
	 * (tcp_flags, seq and payload_len stay zero), because the segment's bytes are spread over
	 * fragments this program never sees together.
	 */
	__u8 first_fragment;
	/* URG is set: the server's stream will lack the urgent byte this segment points at. */
	__u8 urgent;
	__u16 window;      /* the window field as sent, not scaled */
};

enum rls_parse_result {
	RLS_PARSE_OK,
	RLS_PARSE_NOT_TCP, /* not for us at all (later fragments included: they hold no TCP header) */
	RLS_PARSE_BAD,     /* TCP we could not follow: truncated, lengths that do not add up */
	RLS_PARSE_TOO_DEEP, /* an IPv6 extension chain longer than any sender makes: dropped */
};

static __always_inline void rls_map_ipv4(__u8 out[16], __be32 addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr, 4);
}

static __always_inline __u8 rls_tcp_flags(const struct tcphdr *tcp)
{
	return ((const __u8 *)tcp)[13];
}

/*
 * The TCP header at l4_off, l4_len bytes of segment by the IP length. l4_off is bounded here
 * because it is variable now (IPv4 options, IPv6 extension headers).
 */
static __always_inline int rls_parse_tcp(const struct rls_frame *f, struct rls_packet *pkt,
					 __u32 l4_off, __u32 l4_len)
{
	void *data = f->data, *data_end = f->data_end;
	struct tcphdr *tcp;
	__u32 doff;

	if (l4_off > RLS_L4_OFF_MAX)
		return RLS_PARSE_BAD;
	tcp = data + l4_off;
	if ((void *)(tcp + 1) > data_end)
		return RLS_PARSE_BAD;
	doff = tcp->doff * 4;
	if (doff < sizeof(*tcp) || doff > l4_len)
		return RLS_PARSE_BAD;
	pkt->l4_off = l4_off;
	pkt->tcp_len = doff;
	pkt->payload_off = l4_off + doff;
	pkt->payload_len = l4_len - doff;
	if (f->payload_linear && (long)pkt->payload_off + pkt->payload_len > (long)(data_end - data))
		return RLS_PARSE_BAD; /* truncated */
	pkt->seq = bpf_ntohl(tcp->seq);
	pkt->ack_seq = bpf_ntohl(tcp->ack_seq);
	pkt->wire_seq = pkt->seq;
	pkt->wire_ack = pkt->ack_seq;
	pkt->window = bpf_ntohs(tcp->window);
	pkt->tcp_flags = rls_tcp_flags(tcp);
	pkt->urgent = !!(pkt->tcp_flags & TCP_FLAG_URG);
	pkt->flow.client_port = tcp->source;
	pkt->flow.server_port = tcp->dest;
	return RLS_PARSE_OK;
}

/*
 * A first fragment: the ports are all that is taken from it, so that a caller drops it only
 * when it goes to a watched port. Without the ports (under 4 bytes of TCP) it is malformed
 * and the kernel discards it too: IPv4 reassembly drops a first fragment of under 8 bytes,
 * and IPv6 one whose TCP header is not complete (RFC 8200 4.5, RFC 7112).
 */
static __always_inline int rls_parse_first_fragment(const struct rls_frame *f,
						    struct rls_packet *pkt, __u32 l4_off,
						    __u32 l4_len)
{
	__be16 *ports;

	if (l4_off > RLS_L4_OFF_MAX || l4_len < 4)
		return RLS_PARSE_BAD;
	ports = f->data + l4_off;
	if ((void *)(ports + 2) > f->data_end)
		return RLS_PARSE_BAD;
	pkt->first_fragment = 1;
	pkt->l4_off = l4_off;
	pkt->flow.client_port = ports[0];
	pkt->flow.server_port = ports[1];
	return RLS_PARSE_OK;
}

static __always_inline int rls_parse_ipv4(const struct rls_frame *f, struct rls_packet *pkt)
{
	struct iphdr *ip = f->data + pkt->l3_off;
	void *data_end = f->data_end;
	__u32 tot_len, hdr_len;
	__u16 frag;

	if ((void *)(ip + 1) > data_end)
		return RLS_PARSE_BAD;
	if (ip->protocol != IPPROTO_TCP_)
		return RLS_PARSE_NOT_TCP;
	frag = bpf_ntohs(ip->frag_off);
	/*
	 * A later fragment holds no TCP header, and without its first fragment (which
	 * rls_ip_layer_verdict() drops when it goes to a watched port) it is never reassembled
	 * into anything the server reads: passed.
	 */
	if (frag & IP_OFFSET)
		return RLS_PARSE_NOT_TCP;
	hdr_len = ip->ihl * 4; /* options included: TCP follows them */
	tot_len = bpf_ntohs(ip->tot_len);
	if (hdr_len < sizeof(*ip) || tot_len < hdr_len)
		return RLS_PARSE_BAD;
	rls_map_ipv4(pkt->flow.client, ip->saddr);
	rls_map_ipv4(pkt->flow.server, ip->daddr);
	if (frag & IP_MF)
		return rls_parse_first_fragment(f, pkt, pkt->l3_off + hdr_len, tot_len - hdr_len);
	if (tot_len < hdr_len + sizeof(struct tcphdr))
		return RLS_PARSE_BAD;
	return rls_parse_tcp(f, pkt, pkt->l3_off + hdr_len, tot_len - hdr_len);
}

static __always_inline bool rls_ipv6_ext_walked(__u8 next)
{
	return next == IPPROTO_HOPOPTS_ || next == IPPROTO_ROUTING_ ||
	       next == IPPROTO_FRAGMENT_ || next == IPPROTO_DSTOPTS_;
}

static __always_inline int rls_parse_ipv6(const struct rls_frame *f, struct rls_packet *pkt)
{
	void *data = f->data, *data_end = f->data_end;
	struct ipv6hdr *ip6 = data + pkt->l3_off;
	bool first_fragment = false;
	__u32 off, end, i;
	__u8 next;

	if ((void *)(ip6 + 1) > data_end)
		return RLS_PARSE_BAD;
	next = ip6->nexthdr;
	if (next != IPPROTO_TCP_ && !rls_ipv6_ext_walked(next))
		return RLS_PARSE_NOT_TCP;
	pkt->ipv6 = 1;
	__builtin_memcpy(pkt->flow.client, &ip6->saddr, 16);
	__builtin_memcpy(pkt->flow.server, &ip6->daddr, 16);
	off = pkt->l3_off + sizeof(*ip6);
	end = off + bpf_ntohs(ip6->payload_len); /* a header past it is cut, whatever the frame */

	for (i = 0; i < RLS_IPV6_EXT_MAX && next != IPPROTO_TCP_; i++) {
		__u8 kind = next, *ext;

		if (!rls_ipv6_ext_walked(kind))
			return RLS_PARSE_NOT_TCP; /* UDP, ESP, no next header... behind the chain */
		if (off > RLS_L4_OFF_MAX)
			return RLS_PARSE_BAD;
		ext = data + off;
		/* Each is at least 8 bytes long and starts with its next header and its length. */
		if ((void *)(ext + 8) > data_end || off + 8 > end)
			return RLS_PARSE_BAD;
		next = ext[0];
		if (kind == IPPROTO_FRAGMENT_) {
			__u16 frag = bpf_ntohs(*(__be16 *)(ext + 2));

			/* A later fragment: no TCP header, as for IPv4 above. */
			if (frag & IP6_OFFSET)
				return RLS_PARSE_NOT_TCP;
			/* Offset 0 without MF is an atomic fragment, a whole packet (RFC 6946). */
			if (frag & IP6_MF)
				first_fragment = true;
			off += 8;
		} else {
			off += (ext[1] + 1) * 8;
		}
	}
	if (next != IPPROTO_TCP_)
		return RLS_PARSE_TOO_DEEP; /* the chain is longer than RLS_IPV6_EXT_MAX */
	if (off > end)
		return RLS_PARSE_BAD; /* the last header runs past the payload length */
	if (first_fragment)
		return rls_parse_first_fragment(f, pkt, off, end - off);
	return rls_parse_tcp(f, pkt, off, end - off);
}

/* The packet under either hook (ctx.h): its headers are read where the frame has them. */
static __always_inline int rls_parse_packet(struct rls_ctx ctx, struct rls_packet *pkt)
{
	struct rls_frame frame, *f = &frame;
	void *data, *data_end;
	struct ethhdr *eth;
	__u16 proto;
	__u32 i;

	rls_ctx_frame(ctx, f);
	data = f->data;
	data_end = f->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return RLS_PARSE_NOT_TCP;
	proto = bpf_ntohs(eth->h_proto);
	pkt->l3_off = sizeof(*eth);
	for (i = 0; i < RLS_VLAN_TAGS_MAX; i++) {
		struct vlan_hdr *vlan = data + pkt->l3_off;

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if ((void *)(vlan + 1) > data_end)
			return RLS_PARSE_NOT_TCP;
		proto = bpf_ntohs(vlan->h_vlan_encapsulated_proto);
		pkt->l3_off += sizeof(*vlan);
	}
	if (proto == ETH_P_IP)
		return rls_parse_ipv4(f, pkt);
	if (proto == ETH_P_IPV6)
		return rls_parse_ipv6(f, pkt);
	return RLS_PARSE_NOT_TCP; /* a third tag included */
}

#endif /* RLS_BPF_PACKET_H */
