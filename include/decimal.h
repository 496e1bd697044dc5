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

#endif /* RLS_DECIMAL_H */
