/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Model names a word at a time: copied and compared in 8-byte loads and stores. A name that
 * arrives whole is written so too, not a byte at a time: fewer stores, in the width it is
 * read back in at once. (A word load over narrower stores still in flight may wait for them;
 * the profile did not show that this cost anything measurable: BENCHMARKS.md.)
 */
#ifndef RLS_BPF_MODEL_NAME_H
#define RLS_BPF_MODEL_NAME_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "word.h"

/*
 * A model name's len bytes (len < RLS_MODEL_NAME_MAX) from src to dst, a word at a time; the
 * rest of the last word is zero, and dst's words past it are left as they were.
 */
static __always_inline void rls_copy_name(char *dst, const char *src, __u32 len)
{
	__u64 w;
	__u32 k;

	for (k = 0; k < RLS_MODEL_NAME_MAX / 8; k++) {
		if (k * 8 >= len)
			break;
		__builtin_memcpy(&w, src + k * 8, 8);
		w &= rls_word_bytes(len - k * 8);
		__builtin_memcpy(dst + k * 8, &w, 8);
	}
}

/* Are the first len bytes (len < RLS_MODEL_NAME_MAX) of two model names the same? */
static __always_inline bool rls_same_name(const char *a, const char *b, __u32 len)
{
	__u64 wa, wb;
	__u32 k;

	for (k = 0; k < RLS_MODEL_NAME_MAX / 8; k++) {
		if (k * 8 >= len)
			break;
		__builtin_memcpy(&wa, a + k * 8, 8);
		__builtin_memcpy(&wb, b + k * 8, 8);
		if ((wa ^ wb) & rls_word_bytes(len - k * 8))
			return false;
	}
	return true;
}

#endif /* RLS_BPF_MODEL_NAME_H */
