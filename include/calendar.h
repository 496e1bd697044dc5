/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A request's place in the calendar windows (second, minute, hour, UTC day) from its UTC
 * nanoseconds, with one division: the decision made one for the seconds, one for the
 * milliseconds and one per window longer than a second, and a 64-bit division costs as much
 * as tens of other instructions (BENCHMARKS.md has what they cost here). Here once, so that
 * tests/unit/test_calendar.c checks the very code the data path runs.
 */
#ifndef RLS_CALENDAR_H
#define RLS_CALENDAR_H

#include "rlshape.h"

#ifndef RLS_INLINE
#define RLS_INLINE static inline __attribute__((always_inline))
#endif

/*
 * x / d for x below 2^32, as (x * m) >> shift: m = ceil(2^shift / d), the smallest shift that
 * is exact for every such x (checked at every multiple of d by test_calendar.c; both sides grow
 * with x, so they agree in between), and x * m stays under 2^64.
 */
#define RLS_DIV60_M       0x88888889ull
#define RLS_DIV60_SHIFT   37
#define RLS_DIV3600_M     0x91a2b3c5ull
#define RLS_DIV3600_SHIFT 43
#define RLS_DIV86400_M    0xc22e4507ull
#define RLS_DIV86400_SHIFT 48
/* For x below 10^9: a second's nanoseconds to its milliseconds. */
#define RLS_DIV1E6_M      0x431bde83ull
#define RLS_DIV1E6_SHIFT  50

/* The whole UTC seconds of now_ns: the one division. */
RLS_INLINE __u64 rls_utc_seconds(__u64 now_ns)
{
	return now_ns / RLS_NS_PER_SEC;
}

/* The whole UTC milliseconds of now_ns, whose seconds are now_s. */
RLS_INLINE __u64 rls_utc_ms(__u64 now_ns, __u64 now_s)
{
	__u64 ns_in_second = now_ns - now_s * RLS_NS_PER_SEC; /* below 10^9 */

	return now_s * 1000 + ((ns_in_second * RLS_DIV1E6_M) >> RLS_DIV1E6_SHIFT);
}

/*
 * now_s / rls_window_seconds(window): which window of its kind the second falls in. Past 2^32
 * seconds (the year 2106) it divides.
 */
RLS_INLINE __u32 rls_window_index(__u64 now_s, __u32 window)
{
	if (now_s >> 32)
		return (__u32)(now_s / rls_window_seconds(window));
	switch (window) {
	case RLS_WINDOW_SECOND:
		return (__u32)now_s;
	case RLS_WINDOW_MINUTE:
		return (__u32)((now_s * RLS_DIV60_M) >> RLS_DIV60_SHIFT);
	case RLS_WINDOW_HOUR:
		return (__u32)((now_s * RLS_DIV3600_M) >> RLS_DIV3600_SHIFT);
	default:
		return (__u32)((now_s * RLS_DIV86400_M) >> RLS_DIV86400_SHIFT);
	}
}

/* The UTC day of now_ns, for callers that have not taken its seconds apart already. */
RLS_INLINE __u32 rls_utc_day(__u64 now_ns)
{
	return rls_window_index(rls_utc_seconds(now_ns), RLS_WINDOW_DAY);
}

#endif /* RLS_CALENDAR_H */
