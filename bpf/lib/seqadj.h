/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Renumbering a connection after a 429 that kept it open (struct rls_seqadj, include/rlshape.h).
 * The client sent a request the upstream never got, and got a 429 the upstream never sent;
 * from then on, every client segment is renumbered into the upstream's numbering as XDP
 * takes it in (so that everything after works in the upstream's numbers, as the upstream's
 * socket and TC's record of its side do), and every upstream segment back into the client's
 * as TC lets it out: the sequence number, the acknowledgment and the SACK blocks' edges, the
 * checksum following. The timestamps need nothing: the 429 echoes the client's (reply.h).
 */
#ifndef RLS_BPF_SEQADJ_H
#define RLS_BPF_SEQADJ_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rlshape.h"
#include "consts.h"
#include "ctx.h"
#include "packet.h"
#include "csum.h"
#include "tcp_options.h"

static __always_inline bool rls_seq_reached(__u32 seq, __u32 pos)
{
	return (__s32)(seq - pos) >= 0;
}

/* A client byte's number, as the upstream numbers it. */
static __always_inline __u32 rls_client_seq_to_server(const struct rls_seqadj *a, __u32 seq)
{
	return seq - (rls_seq_reached(seq, a->client_pos) ? a->client_after : a->client_before);
}

/* The upstream's acknowledgment of client bytes, as the client numbers them. */
static __always_inline __u32 rls_server_ack_to_client(const struct rls_seqadj *a, __u32 ack)
{
	return ack + (rls_seq_reached(ack, a->client_pos - a->client_after) ? a->client_after
									  : a->client_before);
}

/* An upstream byte's number, as the client numbers it. */
static __always_inline __u32 rls_server_seq_to_client(const struct rls_seqadj *a, __u32 seq)
{
	return seq + (rls_seq_reached(seq, a->server_pos) ? a->server_after : a->server_before);
}

/*
 * The client's acknowledgment of upstream bytes, as the upstream numbers them. Part of the
 * last 429 acknowledged is nothing of the upstream's: its place.
 */
static __always_inline __u32 rls_client_ack_to_server(const struct rls_seqadj *a, __u32 ack)
{
	if (rls_seq_reached(ack, a->server_pos + a->server_after))
		return ack - a->server_after;
	if (rls_seq_reached(ack, a->server_pos + a->server_before))
		return a->server_pos;
	return ack - a->server_before;
}

/* Whose acknowledgment a SACK edge is: the other side's bytes. */
static __always_inline __u32 rls_seqadj_ack(const struct rls_seqadj *a, __u32 ack, bool to_server)
{
	return to_server ? rls_client_ack_to_server(a, ack) : rls_server_ack_to_client(a, ack);
}

/* The SACK blocks' edges in o, renumbered; whether any was there. */
static __always_inline bool rls_seqadj_sack(const struct rls_seqadj *a, struct rls_tcp_options *o,
					    bool to_server)
{
	__u32 i, off;

	if (!o->sack_blocks)
		return false;
	for (i = 0; i < 4; i++) {
		if (i >= o->sack_blocks)
			break;
		off = o->sack_off + i * RLS_TCPOLEN_SACK_BLOCK;
		if (off > RLS_TCP_OPTIONS_MAX - RLS_TCPOLEN_SACK_BLOCK)
			break;
		/* Both edges are read from this checked value, not one clang computes apart. */
		asm volatile("" : "+r"(off));
		rls_opt_put_be32(&o->bytes[off],
				 rls_seqadj_ack(a, rls_opt_be32(&o->bytes[off]), to_server));
		rls_opt_put_be32(&o->bytes[off + 4],
				 rls_seqadj_ack(a, rls_opt_be32(&o->bytes[off + 4]), to_server));
	}
	return true;
}

/* Fold a bpf_csum_diff() result into the TCP checksum at off. */
static __always_inline long rls_ctx_l4_csum_diff(struct rls_ctx ctx, __u32 off, __s64 diff)
{
	__u16 check;

	if (ctx.kind == RLS_CTX_SKB)
		return rls_skb_l4_csum_diff(ctx.ptr, off, diff);
	if (diff < 0 || rls_xdp_load_bytes(ctx.ptr, off, &check, sizeof(check)))
		return -1;
	check = rls_csum_apply_diff(check, (__u32)diff);
	return rls_xdp_store_bytes(ctx.ptr, off, &check, sizeof(check));
}

/*
 * Renumber the segment's header for the other side (to_server: a client segment, in XDP;
 * else the upstream's, in TC), o holding its options (rls_tcp_options_read()). pkt's seq and
 * ack_seq become the new numbers. Returns 0, or -1 if the header could not be rewritten.
 */
static __always_inline int rls_seqadj_rewrite(struct rls_ctx ctx, struct rls_packet *pkt,
					      const struct rls_seqadj *a,
					      struct rls_tcp_options *o, bool to_server)
{
	__u32 l4 = pkt->l4_off & RLS_L4_OFF_MAX, len = o->len & 0x3c;
	__be32 before[2], after[2];
	__u32 seq, ack = pkt->ack_seq;
	__s64 diff;

	seq = to_server ? rls_client_seq_to_server(a, pkt->seq) : rls_server_seq_to_client(a, pkt->seq);
	if (pkt->tcp_flags & TCP_FLAG_ACK)
		ack = rls_seqadj_ack(a, ack, to_server);
	before[0] = bpf_htonl(pkt->seq);
	before[1] = bpf_htonl(pkt->ack_seq);
	after[0] = bpf_htonl(seq);
	after[1] = bpf_htonl(ack);
	diff = bpf_csum_diff(before, sizeof(before), after, sizeof(after), 0);
	if (rls_ctx_store_bytes(ctx, l4 + 4, after, sizeof(after)))
		return -1;
	pkt->seq = seq;
	pkt->ack_seq = ack;
	if (len && len <= RLS_TCP_OPTIONS_MAX) {
		__builtin_memcpy(o->before, o->bytes, RLS_TCP_OPTIONS_MAX);
		if (rls_seqadj_sack(a, o, to_server)) {
			diff = bpf_csum_diff((__be32 *)o->before, len, (__be32 *)o->bytes, len,
					     (__u32)diff);
			if (rls_ctx_store_bytes(ctx, l4 + sizeof(struct tcphdr), o->bytes, len))
				return -1;
		}
	}
	return rls_ctx_l4_csum_diff(ctx, l4 + 16, diff) ? -1 : 0;
}

/*
 * XDP's renumbering of a client segment that has no SACK blocks to renumber: no options, or
 * Linux's NOP, NOP, timestamps and nothing else (what every segment of a healthy connection
 * carries). Its numbers are written and its checksum updated in place, with none of the helper
 * calls rls_seqadj_rewrite() makes. Returns 0 when done, 1 when the segment needs
 * rls_seqadj_rewrite().
 */
static __always_inline int rls_seqadj_rewrite_plain_xdp(struct xdp_md *ctx, struct rls_packet *pkt,
							const struct rls_seqadj *a)
{
	void *data = rls_xdp_data(ctx), *data_end = rls_xdp_data_end(ctx);
	struct tcphdr *tcp = data + (pkt->l4_off & RLS_L4_OFF_MAX);
	__u32 seq, ack = pkt->ack_seq, was;
	__u16 check;

	if ((void *)(tcp + 1) > data_end)
		return 1;
	if (pkt->tcp_len != sizeof(*tcp)) {
		/* 01 01 08 0a: NOP, NOP, timestamps of length 10, filling the options. */
		if (pkt->tcp_len != sizeof(*tcp) + RLS_TCP_TS_OPTION_LEN ||
		    (void *)(tcp + 1) + RLS_TCP_TS_OPTION_LEN > data_end ||
		    *(__u32 *)(void *)(tcp + 1) != bpf_htonl(RLS_TCP_TS_ALIGNED))
			return 1;
	}
	seq = rls_client_seq_to_server(a, pkt->seq);
	if (pkt->tcp_flags & TCP_FLAG_ACK)
		ack = rls_client_ack_to_server(a, ack);
	check = tcp->check;
	was = tcp->seq;
	tcp->seq = bpf_htonl(seq);
	check = rls_csum_replace4(check, was, tcp->seq);
	was = tcp->ack_seq;
	tcp->ack_seq = bpf_htonl(ack);
	tcp->check = rls_csum_replace4(check, was, tcp->ack_seq);
	pkt->seq = seq;
	pkt->ack_seq = ack;
	return 0;
}

/*
 * A 429 kept the connection open: the client's refused request, swallowed bytes ending at
 * client_end (its numbering), never reaches the upstream; the 429, reply_len bytes, went
 * in at server_pos (the upstream's numbering). Offsets add up; the last ones become "before",
 * unless the upstream sent nothing since the last 429: then both 429s are one gap in its
 * numbering, and what it sent before them keeps the offset from before both.
 */
static __always_inline void rls_seqadj_note_429(struct rls_seqadj *a, __u32 client_end,
						__u32 swallowed, __u32 server_pos, __u32 reply_len)
{
	a->client_before = a->client_after;
	a->client_after += swallowed;
	a->client_pos = client_end;
	a->swallowed = swallowed;
	if (!a->active || server_pos != a->server_pos)
		a->server_before = a->server_after;
	a->server_after += reply_len;
	a->server_pos = server_pos;
	a->active = 1;
}

#endif /* RLS_BPF_SEQADJ_H */
