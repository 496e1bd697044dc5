/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The context layer: one API over the hook's context, so that the packet parser (packet.h),
 * the request stream's window (window.h) and the response head (http_response.h) are written
 * once and run under XDP and TC alike, as Cilium's ctx/xdp.h and ctx/skb.h let its code.
 *
 * Cilium compiles each program on its own and picks the context type with a macro; rlshape's
 * programs are one compilation unit (rlshape.bpf.c), so the context travels as a small value,
 * struct rls_ctx, whose kind each program's entry point sets to a constant. Every function
 * that takes one is __always_inline: the compiler then sees the constant and keeps only the
 * hook's own helper calls (the verifier refuses the other hook's helpers on any path it cannot
 * rule out). A global (__noinline) function cannot take a struct rls_ctx (BPF calls pass
 * no aggregates): it takes the hook's own context and wraps it (rls_ctx_xdp(), rls_ctx_skb()).
 */
#ifndef RLS_BPF_CTX_H
#define RLS_BPF_CTX_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "ctx_xdp.h"
#include "ctx_skb.h"

enum rls_ctx_kind {
	RLS_CTX_XDP,
	RLS_CTX_SKB,
};

struct rls_ctx {
	void *ptr; /* struct xdp_md * or struct __sk_buff * */
	enum rls_ctx_kind kind;
};

static __always_inline struct rls_ctx rls_ctx_xdp(struct xdp_md *ctx)
{
	return (struct rls_ctx){ .ptr = ctx, .kind = RLS_CTX_XDP };
}

static __always_inline struct rls_ctx rls_ctx_skb(struct __sk_buff *skb)
{
	return (struct rls_ctx){ .ptr = skb, .kind = RLS_CTX_SKB };
}

/* Where a packet's headers are, for the parser: linear from data to data_end. */
struct rls_frame {
	void *data;
	void *data_end;
	bool payload_linear; /* the payload is between data and data_end too (XDP) */
};

/* The frame to parse; on an skb, the headers are first pulled into its linear part. */
static __always_inline void rls_ctx_frame(struct rls_ctx ctx, struct rls_frame *f)
{
	if (ctx.kind == RLS_CTX_XDP) {
		f->data = rls_xdp_data(ctx.ptr);
		f->data_end = rls_xdp_data_end(ctx.ptr);
		f->payload_linear = true;
		return;
	}
	rls_skb_pull_headers(ctx.ptr);
	f->data = rls_skb_data(ctx.ptr);
	f->data_end = rls_skb_data_end(ctx.ptr);
	f->payload_linear = false;
}

/* Copy len bytes from off in the packet (payload included, wherever it is) to to; 0 or < 0. */
static __always_inline long rls_ctx_load_bytes(struct rls_ctx ctx, __u32 off, void *to, __u32 len)
{
	if (ctx.kind == RLS_CTX_XDP)
		return rls_xdp_load_bytes(ctx.ptr, off, to, len);
	return rls_skb_load_bytes(ctx.ptr, off, to, len);
}

static __always_inline long rls_ctx_store_bytes(struct rls_ctx ctx, __u32 off, void *from,
						__u32 len)
{
	if (ctx.kind == RLS_CTX_XDP)
		return rls_xdp_store_bytes(ctx.ptr, off, from, len);
	return rls_skb_store_bytes(ctx.ptr, off, from, len);
}

#endif /* RLS_BPF_CTX_H */
