// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tpm budget (include/token_budget.h), the same code the BPF programs run under the
 * counter's lock: the refill, the wait a token 429 announces, and settlements. fuzz/settle.c
 * drives it with fuzzed histories; these are the cases it found, kept as tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "token_budget.h"

#define SEC   RLS_NS_PER_SEC
#define START (1800000000ull * SEC)

static struct rls_limits tpm_limits(__u64 tpm, __u64 token_burst)
{
	struct rls_limits l = { .tpm = tpm, .tpd = RLS_TOKENS_UNLIMITED, .token_burst = token_burst };

	return l;
}

/* The counter's first refill fills it; then a response costs deficit tokens beyond it. */
static void spend(struct rls_counter *c, const struct rls_limits *l, __s64 cost)
{
	rls_refill_tokens(c, l, START);
	rls_settle_token_delta(c, cost, 0);
}

/* A request at now: 0 when admitted, else the 429's wait in ms. */
static __u32 ask(struct rls_counter *c, const struct rls_limits *l, __u64 now_ns)
{
	struct rls_rejection v = { 0 };

	rls_check_tokens(c, l, now_ns, rls_utc_day(now_ns), &v);
	return v.reason ? v.reset_ms : 0;
}

/*
 * After the wait a 429 announces, a request is admitted. A deficit of more than 1,000 s of
 * refill (here 2,000,000 tokens at tpm 30,000: 4,000 s) used to refill only 1,000 s at once,
 * so the retry after the announced wait was refused again, with a new wait of 3,000 s.
 */
static void test_admitted_after_the_announced_wait(void **state)
{
	const __u64 tpms[] = { 60, 30000, 2000000, 1ull << 34 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(tpms) / sizeof(tpms[0]); i++) {
		struct rls_limits l = tpm_limits(tpms[i], tpms[i] / 60 ? tpms[i] / 60 : 1);
		struct rls_counter c = { 0 };
		/* The deficit is 67 minutes of refill and a token: that token's time, rounded up. */
		__u32 exact = (__u32)(67 * 60000 + (60000 + tpms[i] - 1) / tpms[i]);

		spend(&c, &l, (__s64)(l.token_burst + 67 * tpms[i]));
		assert_int_equal(ask(&c, &l, START), exact);
		assert_true(ask(&c, &l, START + (__u64)(exact - 1) * 1000000) != 0);
		assert_int_equal(ask(&c, &l, START + (__u64)exact * 1000000), 0);
	}
}

/* The refill is exact for any tpm the table accepts: no product of elapsed time and tpm wraps. */
static void test_refill_never_wraps(void **state)
{
	struct rls_limits l = tpm_limits(INT64_MAX, INT64_MAX);
	struct rls_counter c = { 0 };

	(void)state;
	spend(&c, &l, INT64_MAX); /* down to 0 */
	rls_settle_token_delta(&c, INT64_MAX / 2, 0);
	assert_true(c.token_budget == -(INT64_MAX / 2));
	/* 100 s at 2^63 / 60 tokens a second fills it, where elapsed * tpm wraps 64 bits. */
	rls_refill_tokens(&c, &l, START + 100 * SEC);
	assert_true(c.token_budget == INT64_MAX);
	/* Half a minute at tpm 2^40 gives 2^39 tokens, not what a wrapped product would. */
	l = tpm_limits(1ull << 40, 1ull << 40);
	memset(&c, 0, sizeof(c));
	spend(&c, &l, (__s64)(1ull << 41));
	rls_refill_tokens(&c, &l, START + 30 * SEC);
	assert_true(c.token_budget == -(__s64)(1ull << 40) + (__s64)(1ull << 39));
}

/* A refund never passes token_burst; a charge is exact. */
static void test_settlement(void **state)
{
	struct rls_limits l = tpm_limits(6000, 100);
	struct rls_counter c = { 0 };

	(void)state;
	spend(&c, &l, 30);
	assert_true(c.token_budget == 70);
	rls_settle_token_delta(&c, -500, 0);
	assert_true(c.token_budget == 100);
	rls_settle_token_delta(&c, 250, 0);
	assert_true(c.token_budget == -150);
}

/*
 * The refund ceiling is the counter's own, set by each refill from the limits admitted under:
 * settling needs no copy of the table, and a reload that lowers token_burst caps the next
 * refund at the new one (a burst past 2^63 - 1 is held as 2^63 - 1).
 */
static void test_settlement_ceiling_follows_the_limits(void **state)
{
	struct rls_limits l = tpm_limits(6000, 1000);
	struct rls_counter c = { 0 };

	(void)state;
	spend(&c, &l, 900);
	assert_true(c.token_burst == 1000);
	l = tpm_limits(6000, 200); /* a reload */
	rls_refill_tokens(&c, &l, START);
	assert_true(c.token_burst == 200);
	rls_settle_token_delta(&c, -900, 0);
	assert_true(c.token_budget == 200);
	l = tpm_limits(6000, UINT64_MAX);
	rls_refill_tokens(&c, &l, START);
	rls_settle_token_delta(&c, INT64_MIN + 1, 0);
	assert_true(c.token_budget == INT64_MAX);
}

/*
 * The longest wait reset_ms holds (49.7 days) is said exactly up to its end, not rounded up to
 * it a minute early (found by fuzz/settle.c: a wait of 4,294,966,718 ms said as 4,294,967,295).
 */
static void test_longest_wait(void **state)
{
	(void)state;
	assert_int_equal(rls_refill_wait_ms(2147483359, 30000), 4294966718u);
	assert_int_equal(rls_refill_wait_ms(2147483647, 30000), 4294967294u);
	assert_int_equal(rls_refill_wait_ms(2147483648, 30000), 0xffffffffu);
	assert_int_equal(rls_refill_wait_ms(INT64_MAX, 30000), 0xffffffffu);
	assert_int_equal(rls_refill_wait_ms(1, 0), 0xffffffffu);
	assert_int_equal(rls_refill_wait_ms(0, 30000), 0);
}

/*
 * A refund near the top of the 64-bit range clamps at token_burst instead of wrapping to a
 * budget of about -2^63 (found by fuzz/settle.c with a token_burst of 2^63 - 2^48), and a
 * charge saturates where a wait can still be computed from it.
 */
static void test_settlement_saturates(void **state)
{
	struct rls_limits l = tpm_limits(INT64_MAX, INT64_MAX - 10);
	struct rls_counter c = { 0 };

	(void)state;
	spend(&c, &l, 5);
	rls_settle_token_delta(&c, -1000, 0);
	assert_true(c.token_budget == INT64_MAX - 10);

	l = tpm_limits(60, 1);
	memset(&c, 0, sizeof(c));
	spend(&c, &l, INT64_MAX);
	assert_true(c.token_budget == 1 - INT64_MAX);
	rls_settle_token_delta(&c, INT64_MAX, 0);
	assert_true(c.token_budget == -INT64_MAX);
	assert_int_equal(ask(&c, &l, START), 0xffffffff);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_admitted_after_the_announced_wait),
		cmocka_unit_test(test_refill_never_wraps),
		cmocka_unit_test(test_settlement),
		cmocka_unit_test(test_settlement_ceiling_follows_the_limits),
		cmocka_unit_test(test_settlement_saturates),
		cmocka_unit_test(test_longest_wait),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
