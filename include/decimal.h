/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A number's decimal digits without dividing where it can be helped. The 429
 * (bpf/lib/reply.h) prints up to eight numbers, and a 64-bit division costs as much as tens of
 * other instructions. Here once, so that tests/unit/test_decimal.c checks against printf the
 * very code the data path runs.
 */
#ifndef RLS_DECIMAL_H
#define RLS_DECIMAL_H

#include "rlshape.h"

#ifndef RLS_INLINE
#define RLS_INLINE static inline __attribute__((always_inline))
#endif

#define RLS_DECIMAL_MAX 20 /* digits of the largest __u64 */

/* How many decimal digits v has, 1 to 20: compared against powers of ten, never divided. */
RLS_INLINE __u32 rls_decimal_len(__u64 v)
{
	__u64 power = 10;
	__u32 n = 1, i;

	for (i = 1; i < RLS_DECIMAL_MAX; i++) {
		if (v < power)
			break;
		n++;
		power *= 10; /* wraps only after 10^19, the last power compared */
	}
	return n;
}

/*
 * v / 10. Below 2^32 by multiplying with 0xCCCCCCCD = ceil(2^35 / 10) and shifting by 35,
 * which is exact for every 32-bit v (the product's error stays under 2^35 / 10); above, it
 * divides.
 */
RLS_INLINE __u64 rls_div10(__u64 v)
{
	if (v >> 32)
		return v / 10;
	return (v * 0xCCCCCCCDull) >> 35;
}

/* Numbers below this are written by rls_decimal_word(), eight digits at once. */
#define RLS_DECIMAL_WORD_LIMIT 100000000ull

/*
 * v (below 10^8) as text in one little-endian word, first digit in the lowest byte, and *len
 * its digits (1 to 8): no division and no loop. v is cut into two halves of four digits, each
 * half into two pairs, each pair into two digits, every part of a step in its own lane of the
 * same 64-bit register. Each step divides by multiplying with a reciprocal rounded up, exact
 * for the step's whole range (v / 10^4 below 10^8, x / 100 below 10^4, x / 10 below 100: the
 * rounding's error stays under the gap to the next quotient), and masks off what a lane's
 * product pushed into the lane below. The leading zeros are then shifted out: the first
 * nonzero digit's byte is the lowest byte whose value plus 0x7f reaches bit 7, found as
 * word.h's rls_word_first() does (the last digit is always flagged, so 0 is "0").
 */
RLS_INLINE __u64 rls_decimal_word(__u32 v, __u32 *len)
{
	__u64 x, q, y, z, nonzero, first;

	q = ((__u64)v * 109951163ull) >> 40; /* ceil(2^40 / 10^4) */
	x = q | (((__u64)v - q * 10000) << 32);
	q = ((x * 5243) >> 19) & 0x0000007f0000007full; /* ceil(2^19 / 100) */
	y = q | ((x - q * 100) << 16);
	q = ((y * 103) >> 10) & 0x000f000f000f000full; /* x / 10 exact below 179 */
	z = q | ((y - q * 10) << 8);
	nonzero = ((z + 0x7f7f7f7f7f7f7f7full) & 0x8080808080808080ull) | (1ull << 63);
	first = (((nonzero & -nonzero) >> 7) * 0x0001020304050607ull) >> 56;
	*len = 8 - (__u32)first;
	return (z + 0x3030303030303030ull) >> (8 * first);
}

#endif /* RLS_DECIMAL_H */
