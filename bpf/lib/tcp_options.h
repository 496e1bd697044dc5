/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The TCP options rlshape must keep right when it renumbers a connection (seqadj.h: the SACK
 * blocks' edges are sequence numbers), must echo when it answers (reply.h: a connection that
 * uses timestamps gets them on the 429 too), and the window scale of an upstream's SYN-ACK.
 * They are read from a copy in scratch memory, under either hook.
 */
#ifndef RLS_BPF_TCP_OPTIONS_H
#define RLS_BPF_TCP_OPTIONS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ctx.h"
#include "consts.h"
#include "packet.h"

#define RLS_TCP_OPTIONS_MAX   40 /* a 60-byte header's */
#define RLS_TCP_OPT_EOL       0
#define RLS_TCP_OPT_NOP       1
#define RLS_TCP_OPT_WSCALE    3
#define RLS_TCP_OPT_SACK      5
#define RLS_TCP_OPT_TIMESTAMP 8
#define RLS_TCPOLEN_TIMESTAMP 10
#define RLS_TCPOLEN_SACK_BLOCK 8
#define RLS_TCP_TS_OPTION_LEN 12 /* NOP, NOP, the timestamps: as Linux aligns them */
/* Those options' first four bytes (NOP, NOP, kind 8, length 10), read big-endian. */
#define RLS_TCP_TS_ALIGNED    0x0101080au

struct rls_tcp_options {
	/* The segment's option bytes; room past them, so a field read at the last offset a
	 * walk can reach stays inside. */
	__u8 bytes[RLS_TCP_OPTIONS_MAX + 16];
	__u8 before[RLS_TCP_OPTIONS_MAX]; /* as they came: the checksum's difference */
	__u32 len;
	__u32 tsval, tsecr;     /* host byte order */
	__u32 ts_off;           /* where TSval starts in bytes */
	__u32 sack_off;         /* where the first SACK block starts in bytes */
	__u32 sack_blocks;
	__u32 walk_off;         /* the walk's position (rls_tcp_option_step()) */
	__u8 has_timestamps;
	__u8 wscale;            /* a SYN's window scale option; 0 without one */
	__u8 pad[6];
};

static __always_inline __u32 rls_opt_be32(const __u8 *p)
{
	return ((__u32)p[0] << 24) | ((__u32)p[1] << 16) | ((__u32)p[2] << 8) | p[3];
}

static __always_inline void rls_opt_put_be32(__u8 *p, __u32 v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/*
 * One bpf_loop() step of the walk over the options: the option at o->walk_off. Its position
 * is read from scratch memory, whose values the verifier does not track, so this is verified
 * once, not once per way the options before it could be laid out. Options that do not parse
 * end the walk where they start (the kernel ignores the rest alike).
 */
struct rls_tcp_option_walk {
	struct rls_tcp_options *o; /* bpf_loop() hands its callback a pointer to the stack only */
};

static long rls_tcp_option_step(__u32 index, void *ctx)
{
	struct rls_tcp_options *o = ((struct rls_tcp_option_walk *)ctx)->o;
	__u32 off = o->walk_off, len = o->len;
	__u8 kind, olen;

	if (off >= len || off >= RLS_TCP_OPTIONS_MAX)
		return 1;
	kind = o->bytes[off];
	if (kind == RLS_TCP_OPT_EOL)
		return 1;
	if (kind == RLS_TCP_OPT_NOP) {
		o->walk_off = off + 1;
		return 0;
	}
	olen = o->bytes[off + 1];
	if (olen < 2 || off + olen > len)
		return 1;
	if (kind == RLS_TCP_OPT_TIMESTAMP && olen == RLS_TCPOLEN_TIMESTAMP) {
		o->tsval = rls_opt_be32(&o->bytes[off + 2]);
		o->tsecr = rls_opt_be32(&o->bytes[off + 6]);
		o->ts_off = off + 2;
		o->has_timestamps = 1;
	} else if (kind == RLS_TCP_OPT_WSCALE && olen == 3) {
		o->wscale = o->bytes[off + 2] > 14 ? 14 : o->bytes[off + 2]; /* RFC 7323: at most 14 */
	} else if (kind == RLS_TCP_OPT_SACK && olen > 2 &&
		   (olen - 2) % RLS_TCPOLEN_SACK_BLOCK == 0) {
		o->sack_off = off + 2;
		o->sack_blocks = (olen - 2) / RLS_TCPOLEN_SACK_BLOCK;
	}
	o->walk_off = off + olen;
	return 0;
}

/*
 * Copy the segment's options into o and find its timestamps and SACK blocks. Returns 0, or
 * -1 if they could not be read.
 */
static __always_inline int rls_tcp_options_read(struct rls_ctx ctx, const struct rls_packet *pkt,
						 struct rls_tcp_options *o)
{
	__u32 len = (pkt->tcp_len & 0x3c) - sizeof(struct tcphdr);
	struct rls_tcp_option_walk walk = { .o = o };

	o->len = 0;
	o->walk_off = 0;
	o->sack_blocks = 0;
	o->has_timestamps = 0;
	o->wscale = 0;
	if (pkt->tcp_len < sizeof(struct tcphdr) + 4)
		return 0;
	if (len == 0 || len > RLS_TCP_OPTIONS_MAX ||
	    rls_ctx_load_bytes(ctx, (pkt->l4_off & RLS_L4_OFF_MAX) + sizeof(struct tcphdr),
			       o->bytes, len))
		return -1;
	o->len = len;
	/*
	 * NOP, NOP, the timestamps and nothing else: what Linux sends on every segment of an
	 * established connection that uses timestamps (the kernel's own receive path,
	 * tcp_parse_aligned_timestamp(), takes the same shortcut). Read here as the walk would
	 * read it, without the walk's three steps.
	 */
	if (len == RLS_TCP_TS_OPTION_LEN && rls_opt_be32(o->bytes) == RLS_TCP_TS_ALIGNED) {
		o->tsval = rls_opt_be32(&o->bytes[4]);
		o->tsecr = rls_opt_be32(&o->bytes[8]);
		o->ts_off = 4;
		o->has_timestamps = 1;
		return 0;
	}
	bpf_loop(RLS_TCP_OPTIONS_MAX, rls_tcp_option_step, &walk, 0);
	return 0;
}

#endif /* RLS_BPF_TCP_OPTIONS_H */
