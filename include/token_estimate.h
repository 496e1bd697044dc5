/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Tokens from bytes, where no count is known: the reservation XDP takes for a request's own
 * bytes, and the daemon's estimate for a response without usage. One rounding (up) and one
 * default for both sides.
 */
#ifndef RLS_TOKEN_ESTIMATE_H
#define RLS_TOKEN_ESTIMATE_H

#include "rlshape.h"

/* ceil(bytes / bytes_per_token); 0 bytes a token means RLS_DEFAULT_BYTES_PER_TOKEN. */
static inline __attribute__((always_inline)) __u64 rls_tokens_for_bytes(__u64 bytes,
									 __u32 bytes_per_token)
{
	__u64 per = bytes_per_token ? bytes_per_token : RLS_DEFAULT_BYTES_PER_TOKEN;

	return bytes / per + (bytes % per != 0);
}

#endif /* RLS_TOKEN_ESTIMATE_H */
