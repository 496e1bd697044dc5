/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Word at a time: eight bytes of text in one 64-bit register. Bytes that cannot matter are
 * skipped eight at a time, testing a whole word for the byte that ends the run; the test's
 * lowest flagged byte is exact (a false flag comes only from a borrow out of a true match
 * below it), so the first match's place in the word is read off the mask, never byte by
 * byte. And text known when compiling (a header name, the 429's) becomes words the compiler
 * folds into constants. Little-endian: a word's lowest byte is the text's first.
 */
#ifndef RLS_BPF_WORD_H
#define RLS_BPF_WORD_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "words of text are little-endian");

#define RLS_WORD_ONES  0x0101010101010101ull
#define RLS_WORD_HIGHS 0x8080808080808080ull

/* The high bit of each byte of w that is c; exact for the lowest one. */
static __always_inline __u64 rls_word_has(__u64 w, __u8 c)
{
	__u64 x = w ^ (RLS_WORD_ONES * c);

	return (x - RLS_WORD_ONES) & ~x & RLS_WORD_HIGHS;
}

/*
 * The high bit of each byte of w that is below n (n at most 0x80); exact for the lowest one,
 * as for rls_word_has().
 */
static __always_inline __u64 rls_word_has_below(__u64 w, __u8 n)
{
	return (w - RLS_WORD_ONES * n) & ~w & RLS_WORD_HIGHS;
}

/*
 * Which byte (0-7, from the lowest address) the lowest flag of a nonzero rls_word_has() mask
 * is: the flag isolated is 0x80 << 8k, and multiplying 1 << 8k by 0x0001020304050607 puts
 * k in the top byte. BPF has no count-trailing-zeros instruction.
 */
static __always_inline __u32 rls_word_first(__u64 m)
{
	return (__u32)((((m & -m) >> 7) * 0x0001020304050607ull) >> 56);
}

/* Only the first n bytes of a word (n < 8; 8 or more: all of it). */
static __always_inline __u64 rls_word_bytes(__u32 n)
{
	return n >= 8 ? ~0ull : (1ull << (8 * n)) - 1;
}

/* The high bit of each byte of w that is c or c2; exact for the lowest one. */
static __always_inline __u64 rls_word_has2(__u64 w, __u8 c, __u8 c2)
{
	return rls_word_has(w, c) | rls_word_has(w, c2);
}

/*
 * Bytes i to i + 7 of an n-byte literal as a word, zero past its end. With a literal and
 * constant i and n, the compiler folds it to a constant. (No static array of text: clang 14
 * gives those a wrong offset in the BTF, and the kernel then refuses it.)
 */
static __always_inline __u64 rls_literal_word(const char *lit, __u32 n, __u32 i)
{
	__u64 w = 0;
	__u32 j;

#pragma clang loop unroll(full)
	for (j = 0; j < 8; j++)
		if (i + j < n)
			w |= (__u64)(__u8)lit[i + j] << (8 * j);
	return w;
}

/*
 * The high bit of each byte of v from lo to hi (hi below 0x80). Bytes with the high bit set
 * are none of them: masked first, so that no byte carries into the next.
 */
static __always_inline __u64 rls_word_between(__u64 v, __u8 lo, __u8 hi)
{
	__u64 low = v & ~RLS_WORD_HIGHS;
	__u64 from_lo = low + RLS_WORD_ONES * (0x80 - lo);
	__u64 past_hi = low + RLS_WORD_ONES * (0x80 - hi - 1);

	return from_lo & ~past_hi & ~v & RLS_WORD_HIGHS;
}

/*
 * 0x20 in each byte of v that is a lower-case letter: where a byte | 0x20 equals v's byte
 * exactly when it is that letter in either case.
 */
static __always_inline __u64 rls_word_letters(__u64 v)
{
	return rls_word_between(v, 'a', 'z') >> 2;
}

/* w with its upper-case ASCII letters made lower case, and no other byte changed. */
static __always_inline __u64 rls_word_lower(__u64 w)
{
	return w | rls_word_between(w, 'A', 'Z') >> 2;
}

#endif /* RLS_BPF_WORD_H */
