/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Hand-built test frames for BPF_PROG_TEST_RUN: Ethernet (up to two VLAN tags), IPv4 (with
 * options) or IPv6 (with a chain of extension headers), TCP, payload, with correct IP and TCP
 * checksums; and a parser that takes a frame the program wrote apart again and verifies its
 * checksums independently of the program's code.
 *
 * Byte offsets are written out by hand on purpose: nothing here shares code or headers with
 * the data path it checks. Addresses come only from 198.18.0.0/15 and 2001:2::/48.
 */
#ifndef RLS_TEST_PACKETS_H
#define RLS_TEST_PACKETS_H

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define TP_ETH_P_IP    0x0800
#define TP_ETH_P_IPV6  0x86DD
#define TP_ETH_P_8021Q 0x8100
#define TP_ETH_P_8021AD 0x88A8

#define TP_FIN 0x01
#define TP_SYN 0x02
#define TP_RST 0x04
#define TP_PSH 0x08
#define TP_ACK 0x10
#define TP_URG 0x20

#define TP_MAX_FRAME 4096

static const uint8_t tp_client_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t tp_server_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 };

/* What to build. flags 0 means ACK|PSH; the deliberate oddities are off when zero. */
struct tp_spec {
	int ipv6;
	int vlan;           /* add one 802.1Q tag carrying vlan_tci */
	uint16_t vlan_tci;
	uint16_t outer_tpid; /* with vlan: an outer tag (0x88a8 or 0x8100) in front of it */
	uint16_t outer_tci;
	const char *saddr;  /* client (source) address, text */
	const char *daddr;  /* server (destination) address, text */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;      /* 0 means ACK|PSH */
	const void *payload;
	size_t len;
	/* Deliberate oddities. */
	int ip_options;     /* IPv4: this many 4-byte words of options, 1 to 10 (ihl 6 to 15) */
	int ipv6_hbh;       /* IPv6: an 8-byte hop-by-hop header before TCP (chain "h") */
	/*
	 * IPv6: extension headers before TCP, one letter each: h hop-by-hop (8 bytes),
	 * d destination options (16), r routing (24, segments left 0), f fragment (8).
	 */
	const char *ipv6_chain;
	uint16_t ipv6_frag;  /* the fragment header's offset/M field (host order): 1 = M */
	uint16_t frag_off;  /* IPv4 frag_off field (host order), e.g. 0x2000 = MF */
	int tcp_options;    /* 12 bytes of TCP options (NOP NOP timestamps): doff 8 */
	uint16_t urg_ptr;   /* TCP urgent pointer (with TP_URG in flags) */
};

static inline uint32_t tp_sum(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static inline uint16_t tp_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static inline void tp_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void tp_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint16_t tp_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t tp_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* TCP checksum over the pseudo-header; addresses are 4 or 16 bytes. */
static inline uint16_t tp_tcp_csum(int ipv6, const uint8_t *saddr, const uint8_t *daddr,
				   const uint8_t *tcp, size_t tcp_len)
{
	uint8_t ph[40] = { 0 };
	size_t ph_len;

	if (ipv6) {
		memcpy(ph, saddr, 16);
		memcpy(ph + 16, daddr, 16);
		tp_put32(ph + 32, (uint32_t)tcp_len);
		ph[39] = 6;
		ph_len = 40;
	} else {
		memcpy(ph, saddr, 4);
		memcpy(ph + 4, daddr, 4);
		ph[9] = 6;
		tp_put16(ph + 10, (uint16_t)tcp_len);
		ph_len = 12;
	}
	return tp_fold(tp_sum(tp_sum(0, ph, ph_len), tcp, tcp_len));
}

/*
 * Build the frame into buf (at least TP_MAX_FRAME bytes). Returns its length, 0 on a bad
 * spec (unparsable address, too long).
 */
/* Bytes of one IPv6 extension header by its letter in tp_spec.ipv6_chain; 0 if unknown. */
static inline size_t tp_ext_len(char kind)
{
	switch (kind) {
	case 'h':
	case 'f':
		return 8;
	case 'd':
		return 16;
	case 'r':
		return 24;
	}
	return 0;
}

static inline uint8_t tp_ext_proto(char kind)
{
	switch (kind) {
	case 'h':
		return 0;
	case 'r':
		return 43;
	case 'f':
		return 44;
	case 'd':
		return 60;
	}
	return 6;
}

/* Write the extension header kind at h, followed by next; returns its length. */
static inline size_t tp_put_ext(uint8_t *h, char kind, uint8_t next, const struct tp_spec *s)
{
	size_t len = tp_ext_len(kind);

	h[0] = next;
	h[1] = (uint8_t)(len / 8 - 1);
	switch (kind) {
	case 'h':
	case 'd':
		h[2] = 1; /* PadN filling the rest */
		h[3] = (uint8_t)(len - 4);
		break;
	case 'r':
		h[2] = 4; /* segment routing header, done: segments left 0 */
		h[3] = 0;
		h[4] = 0; /* last entry */
		memset(h + 8, 0x20, 16); /* one segment, an address nobody routes */
		break;
	case 'f':
		tp_put16(h + 2, s->ipv6_frag);
		tp_put32(h + 4, 0x0badf00d); /* identification */
		break;
	}
	return len;
}

static inline size_t tp_build(const struct tp_spec *s, uint8_t *buf, size_t cap)
{
	uint8_t saddr[16], daddr[16];
	size_t off = 0, l3, l4, ip_hlen, tcp_hlen = s->tcp_options ? 32 : 20, ext = 0, total, i;
	int af = s->ipv6 ? AF_INET6 : AF_INET;
	const char *chain = s->ipv6_chain ? s->ipv6_chain : (s->ipv6_hbh ? "h" : "");

	if (inet_pton(af, s->saddr, saddr) != 1 || inet_pton(af, s->daddr, daddr) != 1)
		return 0;
	if (s->ip_options < 0 || s->ip_options > 10)
		return 0;
	ip_hlen = s->ipv6 ? 40 : 20 + 4 * (size_t)s->ip_options;
	if (s->ipv6)
		for (i = 0; chain[i]; i++) {
			if (!tp_ext_len(chain[i]))
				return 0;
			ext += tp_ext_len(chain[i]);
		}
	total = 14 + (s->vlan ? 4 : 0) + (s->vlan && s->outer_tpid ? 4 : 0) + ip_hlen + ext +
		tcp_hlen + s->len;
	if (total > cap)
		return 0;
	memset(buf, 0, total);

	memcpy(buf, tp_server_mac, 6); /* destination: the gateway */
	memcpy(buf + 6, tp_client_mac, 6);
	off = 12;
	if (s->vlan && s->outer_tpid) {
		tp_put16(buf + off, s->outer_tpid);
		tp_put16(buf + off + 2, s->outer_tci);
		off += 4;
	}
	if (s->vlan) {
		tp_put16(buf + off, TP_ETH_P_8021Q);
		tp_put16(buf + off + 2, s->vlan_tci);
		off += 4;
	}
	tp_put16(buf + off, s->ipv6 ? TP_ETH_P_IPV6 : TP_ETH_P_IP);
	off += 2;
	l3 = off;
	l4 = l3 + ip_hlen + ext;

	if (s->ipv6) {
		buf[l3] = 0x60;
		tp_put16(buf + l3 + 4, (uint16_t)(ext + tcp_hlen + s->len));
		buf[l3 + 6] = tp_ext_proto(chain[0]); /* TCP when the chain is empty */
		buf[l3 + 7] = 64;
		memcpy(buf + l3 + 8, saddr, 16);
		memcpy(buf + l3 + 24, daddr, 16);
		for (i = 0, off = l3 + 40; chain[i]; i++)
			off += tp_put_ext(buf + off, chain[i], tp_ext_proto(chain[i + 1]), s);
	} else {
		buf[l3] = (uint8_t)(0x40 | ip_hlen / 4);
		tp_put16(buf + l3 + 2, (uint16_t)(ip_hlen + tcp_hlen + s->len));
		tp_put16(buf + l3 + 4, 0x1234);
		tp_put16(buf + l3 + 6, s->frag_off);
		buf[l3 + 8] = 64;
		buf[l3 + 9] = 6;
		memcpy(buf + l3 + 12, saddr, 4);
		memcpy(buf + l3 + 16, daddr, 4);
		if (s->ip_options) {
			/*
			 * A loose source route (RFC 791) already followed to its end, then
			 * NOPs: what a reply must not echo.
			 */
			size_t opt_len = ip_hlen - 20;
			uint8_t *o = buf + l3 + 20;

			memset(o, 1, opt_len);
			if (opt_len >= 8) {
				o[0] = 0x83;
				o[1] = 7;
				o[2] = 8; /* pointer past the one address: route complete */
				o[3] = 198;
				o[4] = 18;
				o[5] = 0;
				o[6] = 99;
			}
		}
		tp_put16(buf + l3 + 10, tp_fold(tp_sum(0, buf + l3, ip_hlen)));
	}

	tp_put16(buf + l4, s->sport);
	tp_put16(buf + l4 + 2, s->dport);
	tp_put32(buf + l4 + 4, s->seq);
	tp_put32(buf + l4 + 8, s->ack);
	buf[l4 + 12] = (uint8_t)((tcp_hlen / 4) << 4);
	buf[l4 + 13] = s->flags ? s->flags : (TP_ACK | TP_PSH);
	tp_put16(buf + l4 + 14, 64240);
	tp_put16(buf + l4 + 18, s->urg_ptr);
	if (s->tcp_options) {
		uint8_t *o = buf + l4 + 20;

		o[0] = 1;
		o[1] = 1;
		o[2] = 8; /* timestamps */
		o[3] = 10;
		tp_put32(o + 4, 0x01020304);
		tp_put32(o + 8, 0x05060708);
	}
	if (s->len)
		memcpy(buf + l4 + tcp_hlen, s->payload, s->len);
	tp_put16(buf + l4 + 16, tp_tcp_csum(s->ipv6, saddr, daddr, buf + l4, tcp_hlen + s->len));
	return total;
}

/* A frame taken apart. Addresses: IPv4 in the first 4 bytes. */
struct tp_parsed {
	int ipv6, vlan;        /* vlan: the number of tags, 0 to 2 */
	uint16_t vlan_tci;     /* the inner (last) tag's */
	uint16_t outer_tpid, outer_tci; /* with two tags: the first one */
	uint8_t dmac[6], smac[6];
	uint8_t saddr[16], daddr[16];
	size_t l3_off, l4_off;
	size_t ip_hdr_len;     /* IPv4 ihl * 4, or IPv6 40 + its extension headers */
	int ipv6_exts;         /* IPv6 extension headers walked */
	unsigned ip_len;       /* IPv4 total length or IPv6 payload length, as in the header */
	unsigned ttl;
	uint16_t frag_off;
	int ip_csum_ok;        /* IPv6: always 1 */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	unsigned doff;         /* TCP header bytes */
	uint16_t window;
	int tcp_csum_ok;
	const uint8_t *payload;
	size_t len;
};

/* Returns 0, or -1 with a reason in why. Checks that the IP length matches the frame. */
static inline int tp_parse(const uint8_t *buf, size_t frame_len, struct tp_parsed *p,
			   char *why, size_t why_len)
{
	size_t off = 12, l3, l4, l4_len;
	uint16_t proto;

	memset(p, 0, sizeof(*p));
	if (frame_len < 14) {
		snprintf(why, why_len, "frame of %zu bytes has no Ethernet header", frame_len);
		return -1;
	}
	memcpy(p->dmac, buf, 6);
	memcpy(p->smac, buf + 6, 6);
	proto = tp_get16(buf + off);
	while (proto == TP_ETH_P_8021Q || proto == TP_ETH_P_8021AD) {
		if (p->vlan == 2 || frame_len < off + 6) {
			snprintf(why, why_len, "a third VLAN tag, or a tag cut");
			return -1;
		}
		if (p->vlan == 1) {
			p->outer_tpid = tp_get16(buf + off - 4);
			p->outer_tci = p->vlan_tci;
		}
		p->vlan++;
		p->vlan_tci = tp_get16(buf + off + 2);
		off += 4;
		proto = tp_get16(buf + off);
	}
	off += 2;
	l3 = p->l3_off = off;
	if (proto == TP_ETH_P_IP) {
		unsigned ihl;

		if (frame_len < l3 + 20) {
			snprintf(why, why_len, "IPv4 header cut");
			return -1;
		}
		ihl = (buf[l3] & 0xf) * 4u;
		if ((buf[l3] >> 4) != 4 || ihl < 20 || buf[l3 + 9] != 6) {
			snprintf(why, why_len, "not IPv4/TCP (byte0 %#x, proto %u)", buf[l3],
				 buf[l3 + 9]);
			return -1;
		}
		p->ip_len = tp_get16(buf + l3 + 2);
		p->ttl = buf[l3 + 8];
		p->frag_off = tp_get16(buf + l3 + 6);
		if (l3 + p->ip_len != frame_len) {
			snprintf(why, why_len, "IPv4 total length %u, frame has %zu bytes after L2",
				 p->ip_len, frame_len - l3);
			return -1;
		}
		p->ip_csum_ok = tp_fold(tp_sum(0, buf + l3, ihl)) == 0;
		memcpy(p->saddr, buf + l3 + 12, 4);
		memcpy(p->daddr, buf + l3 + 16, 4);
		p->ip_hdr_len = ihl;
		l4 = l3 + ihl;
		l4_len = p->ip_len - ihl;
	} else if (proto == TP_ETH_P_IPV6) {
		uint8_t next;
		size_t ext = 0;

		p->ipv6 = 1;
		if (frame_len < l3 + 40) {
			snprintf(why, why_len, "IPv6 header cut");
			return -1;
		}
		p->ip_len = tp_get16(buf + l3 + 4);
		p->ttl = buf[l3 + 7];
		if (l3 + 40 + p->ip_len != frame_len) {
			snprintf(why, why_len, "IPv6 payload length %u, frame has %zu bytes after it",
				 p->ip_len, frame_len - l3 - 40);
			return -1;
		}
		/* Hop-by-hop, routing, fragment, destination options: walked to TCP. */
		for (next = buf[l3 + 6]; next == 0 || next == 43 || next == 44 || next == 60;) {
			size_t len;

			if (l3 + 40 + ext + 8 > frame_len) {
				snprintf(why, why_len, "IPv6 extension header %u cut", next);
				return -1;
			}
			len = next == 44 ? 8 : (buf[l3 + 40 + ext + 1] + 1u) * 8u;
			if (ext + len > p->ip_len) {
				snprintf(why, why_len, "IPv6 extension header %u past the payload", next);
				return -1;
			}
			next = buf[l3 + 40 + ext];
			ext += len;
			p->ipv6_exts++;
		}
		if (next != 6) {
			snprintf(why, why_len, "IPv6 next header %u, not TCP", next);
			return -1;
		}
		p->ip_csum_ok = 1;
		memcpy(p->saddr, buf + l3 + 8, 16);
		memcpy(p->daddr, buf + l3 + 24, 16);
		p->ip_hdr_len = 40 + ext;
		l4 = l3 + 40 + ext;
		l4_len = p->ip_len - ext;
	} else {
		snprintf(why, why_len, "ethertype %#x", proto);
		return -1;
	}
	p->l4_off = l4;
	if (l4_len < 20) {
		snprintf(why, why_len, "TCP header cut (%zu bytes)", l4_len);
		return -1;
	}
	p->sport = tp_get16(buf + l4);
	p->dport = tp_get16(buf + l4 + 2);
	p->seq = tp_get32(buf + l4 + 4);
	p->ack = tp_get32(buf + l4 + 8);
	p->doff = (buf[l4 + 12] >> 4) * 4u;
	p->flags = buf[l4 + 13];
	p->window = tp_get16(buf + l4 + 14);
	if (p->doff < 20 || p->doff > l4_len) {
		snprintf(why, why_len, "TCP data offset %u", p->doff);
		return -1;
	}
	p->tcp_csum_ok = tp_tcp_csum(p->ipv6, p->saddr, p->daddr, buf + l4, l4_len) == 0;
	p->payload = buf + l4 + p->doff;
	p->len = l4_len - p->doff;
	return 0;
}

#endif /* RLS_TEST_PACKETS_H */
