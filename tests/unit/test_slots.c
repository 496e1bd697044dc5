// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The concurrency slot ring (include/slot_ring.h), the same code the BPF programs run under the
 * counter's lock: slots taken and given back, expiry no earlier than max_hold and no later than
 * max_hold * 8/7, no slot freed twice, and the reload that changes max_hold.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "slot_ring.h"

#define SEC            RLS_NS_PER_SEC
#define HOLD           (7 * SEC) /* epochs of exactly one second */
#define START          (1800000000ull * SEC)

/* Take a slot as rls_admit() does; -1 when all are held. */
static long long take(struct rls_counter *c, __u32 limit, __u64 max_hold_ns, __u64 now_ns)
{
	if (rls_slots_full(c, limit, max_hold_ns, now_ns))
		return -1;
	return (long long)rls_slots_take(c);
}

/* What `rlshape stats` shows: the ring moved to now on a copy. */
static __u32 held_at(const struct rls_counter *c, __u64 now_ns)
{
	struct rls_counter copy = *c;

	rls_slots_expire(&copy, now_ns);
	return copy.slots_held;
}

static void test_limit_is_exact(void **state)
{
	struct rls_counter c = { 0 };
	long long epoch;

	(void)state;
	assert_true(take(&c, 2, HOLD, START) >= 0);
	epoch = take(&c, 2, HOLD, START + 1);
	assert_true(epoch >= 0);
	assert_int_equal(take(&c, 2, HOLD, START + 2), -1);
	assert_int_equal(c.slots_held, 2);
	rls_slots_give_back(&c, (__u64)epoch, c.slot_epoch_ns, START + 3);
	assert_int_equal(c.slots_held, 1);
	assert_true(take(&c, 2, HOLD, START + 4) >= 0);
	assert_int_equal(take(&c, 2, HOLD, START + 5), -1);
	assert_int_equal(c.slots_peak, 2);
	assert_int_equal(c.slots_expired, 0);
}

static void test_zero_admits_nothing(void **state)
{
	struct rls_counter c = { 0 };

	(void)state;
	assert_int_equal(take(&c, 0, HOLD, START), -1);
	assert_int_equal(c.slots_held, 0);
}

/* Sequential requests, each given back before the next: one slot at a time, peak 1. */
static void test_one_at_a_time(void **state)
{
	struct rls_counter c = { 0 };
	__u64 now = START;
	long long epoch;
	int i;

	(void)state;
	for (i = 0; i < 1000; i++, now += SEC / 10) {
		epoch = take(&c, 1, HOLD, now);
		assert_true(epoch >= 0);
		rls_slots_give_back(&c, (__u64)epoch, c.slot_epoch_ns, now + SEC / 20);
	}
	assert_int_equal(c.slots_held, 0);
	assert_int_equal(c.slots_peak, 1);
	assert_int_equal(c.slots_expired, 0);
}

/* Wherever in its epoch a slot is taken, it is held for max_hold and freed by max_hold * 8/7. */
static void test_expiry_bounds(void **state)
{
	__u64 offset, now;

	(void)state;
	for (offset = 0; offset < SEC; offset += SEC / 16) {
		struct rls_counter c = { 0 };

		now = START + offset;
		assert_true(take(&c, 1, HOLD, now) >= 0);
		assert_int_equal(held_at(&c, now + HOLD - 1), 1);
		assert_int_equal(held_at(&c, now + HOLD + HOLD / 7), 0);
		/* Another request finds the slot free once the hold is over. */
		assert_int_equal(take(&c, 1, HOLD, now + HOLD - 1), -1);
		assert_true(take(&c, 1, HOLD, now + HOLD + HOLD / 7) >= 0);
		assert_int_equal(c.slots_expired, 1);
		assert_int_equal(c.slots_held, 1);
	}
}

/* The owner of an expired slot gives it back late: nothing is freed twice. */
static void test_late_give_back_is_ignored(void **state)
{
	struct rls_counter c = { 0 };
	long long old, fresh;

	(void)state;
	old = take(&c, 2, HOLD, START);
	fresh = take(&c, 2, HOLD, START + 2 * HOLD);
	assert_true(old >= 0 && fresh >= 0);
	assert_int_equal(c.slots_held, 1);
	assert_int_equal(c.slots_expired, 1);
	rls_slots_give_back(&c, (__u64)old, c.slot_epoch_ns, START + 2 * HOLD + 1);
	assert_int_equal(c.slots_held, 1);
	rls_slots_give_back(&c, (__u64)fresh, c.slot_epoch_ns, START + 2 * HOLD + 2);
	assert_int_equal(c.slots_held, 0);
	assert_int_equal(c.slots_expired, 1);
}

/* An idle gap longer than the ring empties it in one step. */
static void test_long_gap(void **state)
{
	struct rls_counter c = { 0 };
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		assert_true(take(&c, 10, HOLD, START + (__u64)i * SEC) >= 0);
	assert_int_equal(held_at(&c, START + 1000 * HOLD), 0);
	assert_true(take(&c, 10, HOLD, START + 1000 * HOLD) >= 0);
	assert_int_equal(c.slots_held, 1);
	assert_int_equal(c.slots_expired, 5);
	assert_int_equal(c.slot_epoch, (START + 1000 * HOLD) / c.slot_epoch_ns);
}

/* A clock stepped back expires nothing early and still counts. */
static void test_clock_steps_back(void **state)
{
	struct rls_counter c = { 0 };
	long long epoch;

	(void)state;
	assert_true(take(&c, 2, HOLD, START + 100 * SEC) >= 0);
	epoch = take(&c, 2, HOLD, START);
	assert_true(epoch >= 0);
	assert_int_equal(take(&c, 2, HOLD, START), -1);
	rls_slots_give_back(&c, (__u64)epoch, c.slot_epoch_ns, START);
	assert_int_equal(c.slots_held, 1);
	assert_int_equal(c.slots_expired, 0);
}

/* A reload changes max_hold: slots held stay held, and are given back exactly once. */
static void test_rebase_keeps_slots(void **state)
{
	struct rls_counter c = { 0 };
	long long a, b, d;
	__u64 old_ns;

	(void)state;
	a = take(&c, 3, HOLD, START);
	b = take(&c, 3, HOLD, START + SEC);
	old_ns = c.slot_epoch_ns;
	d = take(&c, 3, 2 * HOLD, START + 2 * SEC);
	assert_true(a >= 0 && b >= 0 && d >= 0);
	assert_int_equal(c.slots_held, 3);
	assert_int_equal(take(&c, 3, 2 * HOLD, START + 3 * SEC), -1);
	rls_slots_give_back(&c, (__u64)a, old_ns, START + 4 * SEC);
	rls_slots_give_back(&c, (__u64)b, old_ns, START + 4 * SEC);
	assert_int_equal(c.slots_held, 1);
	rls_slots_give_back(&c, (__u64)d, c.slot_epoch_ns, START + 5 * SEC);
	assert_int_equal(c.slots_held, 0);
	rls_slots_give_back(&c, (__u64)d, c.slot_epoch_ns, START + 6 * SEC);
	assert_int_equal(c.slots_held, 0);
	/* The rebased slots got a fresh hold: not expired 7 s after they were first taken. */
	assert_int_equal(c.slots_expired, 0);
}

/*
 * A counter made anew (its account removed and added back) never goes below zero, and a slot of
 * its former life, from an epoch long gone, frees none of the new one's.
 */
static void test_give_back_to_fresh_counter(void **state)
{
	struct rls_counter c = { 0 };

	(void)state;
	rls_slots_give_back(&c, 12345, rls_slot_epoch_ns(HOLD), START);
	assert_int_equal(c.slots_held, 0);
	assert_true(take(&c, 1, HOLD, START) >= 0);
	rls_slots_give_back(&c, 12345, rls_slot_epoch_ns(HOLD), START + 1);
	assert_int_equal(c.slots_held, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_is_exact),
		cmocka_unit_test(test_zero_admits_nothing),
		cmocka_unit_test(test_one_at_a_time),
		cmocka_unit_test(test_expiry_bounds),
		cmocka_unit_test(test_late_give_back_is_ignored),
		cmocka_unit_test(test_long_gap),
		cmocka_unit_test(test_clock_steps_back),
		cmocka_unit_test(test_rebase_keeps_slots),
		cmocka_unit_test(test_give_back_to_fresh_counter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
