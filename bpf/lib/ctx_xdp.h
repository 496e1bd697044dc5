/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP context's side of the context layer (ctx.h): where a frame's bytes are and how to
 * read them. An XDP frame is linear, payload included. Code that only XDP runs (the 429, the
 * reset, cutting a segment: they rewrite the frame) calls these directly.
 */
#ifndef RLS_BPF_CTX_XDP_H
#define RLS_BPF_CTX_XDP_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

static __always_inline void *rls_xdp_data(const struct xdp_md *ctx)
{
	return (void *)(long)ctx->data;
}

static __always_inline void *rls_xdp_data_end(const struct xdp_md *ctx)
{
	return (void *)(long)ctx->data_end;
}

/* The frame's length in bytes. */
static __always_inline long rls_xdp_len(const struct xdp_md *ctx)
{
	long len = rls_xdp_data_end(ctx) - rls_xdp_data(ctx);

	/* Keeps clang from folding this into 32-bit pointer arithmetic, which BPF forbids. */
	asm volatile("" : "+r"(len));
	return len;
}

static __always_inline long rls_xdp_load_bytes(struct xdp_md *ctx, __u32 off, void *to, __u32 len)
{
	return bpf_xdp_load_bytes(ctx, off, to, len);
}

static __always_inline long rls_xdp_store_bytes(struct xdp_md *ctx, __u32 off, void *from,
					       __u32 len)
{
	return bpf_xdp_store_bytes(ctx, off, from, len);
}

#endif /* RLS_BPF_CTX_XDP_H */
