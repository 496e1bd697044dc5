/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The payload window: a segment's bytes copied into per-CPU scratch memory (s->payload), where
 * the HTTP scanners read them by index. Every index is masked to the window, so that no
 * computed position can leave it; a run of bytes that cannot matter is skipped a word at a
 * time (word.h). The copy is made through the context layer (ctx.h), under either hook.
 */
#ifndef RLS_BPF_WINDOW_H
#define RLS_BPF_WINDOW_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "ctx.h"
#include "scratch.h"
#include "word.h"

#define RLS_WINDOW_MASK (RLS_PARSE_WINDOW - 1)
#define RLS_RUN_MAX     256 /* bytes one run skips at most */

_Static_assert((RLS_PARSE_WINDOW & RLS_WINDOW_MASK) == 0, "window must be a power of two");

/*
 * Copy len bytes of the packet from off into the window; false when there are none or they
 * cannot be read. The bounds are checked here, next to the load, where the verifier needs
 * them.
 */
static __always_inline bool rls_window_load(struct rls_ctx ctx, struct rls_scratch *s, __u32 off,
					    __u32 len)
{
	if (len == 0 || len > RLS_PARSE_WINDOW)
		return false;
	return rls_ctx_load_bytes(ctx, off, s->payload, len) == 0;
}

static __always_inline __u8 rls_at(const struct rls_scratch *s, __u32 i)
{
	return s->payload[i & RLS_WINDOW_MASK];
}

/*
 * Eight bytes of the window from i. Unaligned, which BPF allows in map memory where the CPU
 * does; a word from near the window's end runs into the next scratch field, which is in
 * bounds and never looked at past the caller's end.
 */
static __always_inline __u64 rls_word_at(const struct rls_scratch *s, __u32 i)
{
	return *(const __u64 *)(const void *)&s->payload[i & RLS_WINDOW_MASK];
}

/*
 * Moves *at to the first c or c2 in [*at, *end), looking at RLS_RUN_MAX bytes at most, or
 * to the last word it looked at past them; *at >= *end when there is none before the end.
 * A word's bytes past the end are tested with the others, not masked off: the lowest match
 * is exact, so where it is past the end none is before it, and *at lands there, as far as
 * the end or past it. (Stale bytes of an earlier segment, or the field after the window.)
 * Two words a turn, the second read only where the first has none: the cursor goes through
 * memory once for sixteen bytes of a long run, and that round trip, not the test, is what a
 * turn waits for, while a short run costs what one word did.
 * Inline, for loops that find many runs: a call and its return can cost more than a short run
 * (up to 10 ns: BENCHMARKS.md, "Issue 13: what a call costs"). The cursor and the end are
 * scratch memory, read where they are used: the verifier does not follow values there, so
 * the paths through each turn meet again at the next, and a caller's loop stays linear.
 */
static __always_inline void rls_word_search(const struct rls_scratch *s, volatile __u32 *at,
					    volatile __u32 *end, __u8 c, __u8 c2)
{
	__u32 p, e, k;
	__u64 m, m2;

	for (k = 0; k < RLS_RUN_MAX / 16; k++) {
		p = *at;
		e = *end;
		if (p >= e)
			break;
		m = rls_word_has2(rls_word_at(s, p), c, c2);
		if (m) {
			*at = p + rls_word_first(m);
			break;
		}
		m2 = rls_word_has2(rls_word_at(s, p + 8), c, c2);
		if (m2) {
			*at = p + 8 + rls_word_first(m2);
			break;
		}
		*at = p + 16;
	}
}

/*
 * Where in [from, from + RLS_RUN_MAX) and before end the first c or c2 is; else there, as
 * rls_word_search() finds it, through the cursor at and the end stop in scratch memory.
 */
static __always_inline __u32 rls_run_end(const struct rls_scratch *s, volatile __u32 *at,
					  volatile __u32 *stop, __u32 from, __u32 end, __u8 c,
					  __u8 c2)
{
	end = from + (end - from < RLS_RUN_MAX ? end - from : RLS_RUN_MAX);
	*at = from;
	*stop = end;
	rls_word_search(s, at, stop, c, c2);
	return *at < end ? *at : end;
}

/*
 * rls_run_end() through s->scan.at and s->scan.end, as a global function: its result is
 * opaque to the verifier, so the paths of a caller's loop meet again whatever it returned.
 */
__noinline int rls_find_run_end(struct rls_scratch *s, __u32 from, __u32 end, __u32 c, __u32 c2)
{
	if (!s)
		return (int)from;
	return (int)rls_run_end(s, &s->scan.at, &s->scan.end, from, end, (__u8)c, (__u8)c2);
}

#endif /* RLS_BPF_WINDOW_H */
