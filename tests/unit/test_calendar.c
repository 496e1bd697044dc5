// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * include/calendar.h: the windows and milliseconds the decision (bpf/lib/policy.h) and the
 * token budgets compute by multiplying, against division: at both sides of every window's
 * start below 2^32 seconds, at every millisecond's start within a second, and past 2^32
 * seconds, where they divide.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "calendar.h"

static __u64 next_random(__u64 *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

static void check_index(__u64 now_s, __u32 w)
{
	__u32 want = (__u32)(now_s / rls_window_seconds(w)), got = rls_window_index(now_s, w);

	if (got != want)
		fail_msg("second %llu, window %u: index %u, not %u", (unsigned long long)now_s, w,
			 got, want);
}

/*
 * Both the multiplication and the division only grow with the second, so agreeing on each
 * side of every window's start means agreeing everywhere in between.
 */
static void test_window_index_at_every_start(void **state)
{
	__u64 start, len;
	__u32 w;

	(void)state;
	/* The second's own window needs no arithmetic: it is checked at the others' starts. */
	for (w = RLS_WINDOW_MINUTE; w < RLS_NR_WINDOWS; w++) {
		len = rls_window_seconds(w);
		for (start = len; start <= 0xffffffffull; start += len) {
			check_index(start - 1, w);
			check_index(start, w);
			check_index(start, RLS_WINDOW_SECOND);
		}
		check_index(0, w);
		check_index(0xffffffffull, w);
	}
}

static void test_window_index_past_2_32(void **state)
{
	__u64 x = 0x9e3779b97f4a7c15ull, now_s;
	__u32 w, i;

	(void)state;
	for (w = 0; w < RLS_NR_WINDOWS; w++) {
		check_index(0x100000000ull, w);
		check_index(0x100000000ull + 86399, w);
		for (i = 0; i < 100000; i++) {
			now_s = next_random(&x) >> (i % 32);
			check_index(now_s, w);
		}
	}
}

static void check_ms(__u64 now_ns)
{
	__u64 now_s = rls_utc_seconds(now_ns), got = rls_utc_ms(now_ns, now_s);

	assert_int_equal(now_s, now_ns / RLS_NS_PER_SEC);
	if (got != now_ns / 1000000)
		fail_msg("%llu ns: %llu ms, not %llu", (unsigned long long)now_ns,
			 (unsigned long long)got, (unsigned long long)(now_ns / 1000000));
}

static void test_utc_ms(void **state)
{
	__u64 x = 0x2545f4914f6cdd1dull, second, ms;
	__u32 i;

	(void)state;
	/* Every millisecond's first and last nanosecond, in seconds near 0, today and 2^32. */
	for (i = 0; i < 3; i++) {
		second = i == 0 ? 0 : i == 1 ? 1796083200ull : 0xffffffffull;
		for (ms = 0; ms < 1000; ms++) {
			check_ms(second * RLS_NS_PER_SEC + ms * 1000000);
			check_ms(second * RLS_NS_PER_SEC + ms * 1000000 + 999999);
		}
	}
	for (i = 0; i < 1000000; i++)
		check_ms(next_random(&x) >> (i % 8));
	check_ms(UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_index_at_every_start),
		cmocka_unit_test(test_window_index_past_2_32),
		cmocka_unit_test(test_utc_ms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
