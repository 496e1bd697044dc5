// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The fq qdisc shaping needs (user/qdisc.c), on the loopback of a network namespace of the
 * suite's own: put there over the kernel's default and taken away again, an fq set up by hand
 * checked for its horizon, any other root qdisc left alone with the command that would do.
 * Roots set up by hand are made with tc, as an operator would.
 *
 * A kernel without fq (CONFIG_NET_SCH_FQ unset, as on the machines this was written on:
 * 6.18.44-fc has HTB, TBF and FIFO only) cannot shape at all: there the suite checks that
 * the load says so and changes nothing, and skips what needs an fq.
 */
#define _GNU_SOURCE /* unshare(), in own_netns.h */
#include <net/if.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "own_netns.h"
#include "qdisc.h"

#define MS 1000000ull

static int lo;
static bool has_fq; /* the kernel knows the fq qdisc */

static int enter_netns(void **state)
{
	char why[256];

	(void)state;
	if (own_netns(why, sizeof(why))) {
		printf("# %s\n", why);
		return -1;
	}
	lo = (int)if_nametoindex("lo");
	has_fq = system("tc qdisc add dev lo root handle 9: fq 2>/dev/null") == 0;
	if (system("tc qdisc del dev lo root 2>/dev/null; true"))
		return -1;
	printf("# the kernel %s the fq qdisc\n", has_fq ? "has" : "lacks");
	return lo ? 0 : -1;
}

/* Each test leaves the kernel's default root, whatever it did. */
static int default_root(void **state)
{
	(void)state;
	return system("tc qdisc del dev lo root 2>/dev/null; true") == 0 ? 0 : -1;
}

static struct rls_root_qdisc root(void)
{
	struct rls_root_qdisc q;
	char err[256];

	if (rls_root_qdisc(lo, &q, err, sizeof(err)))
		fail_msg("%s", err);
	return q;
}

static void tc(const char *args)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "tc qdisc %s", args);
	if (system(cmd) != 0)
		fail_msg("`%s` failed", cmd);
}

static void expect_refused(__u64 max_delay_ns, const char *part1, const char *part2)
{
	char err[512] = "";

	assert_int_equal(rls_fq_ensure("lo", lo, max_delay_ns, err, sizeof(err)), -1);
	if (!strstr(err, part1) || !strstr(err, part2))
		fail_msg("message '%s' does not say '%s' and '%s'", err, part1, part2);
}

static void test_default_root_replaced_and_restored(void **state)
{
	struct rls_root_qdisc q = root();
	char err[256];

	(void)state;
	assert_string_equal(q.kind, "noqueue");
	assert_int_equal(q.handle, 0);
	if (!has_fq) {
		expect_refused(2000 * MS, "lo: this kernel has no fq qdisc (CONFIG_NET_SCH_FQ",
			       "load sch_fq, or remove \"shape\" from the table");
		q = root();
		assert_string_equal(q.kind, "noqueue");
		assert_int_equal(q.handle, 0);
		return;
	}
	assert_int_equal(rls_fq_ensure("lo", lo, 2000 * MS, err, sizeof(err)), 1);
	q = root();
	assert_string_equal(q.kind, "fq");
	assert_int_equal(q.handle, RLS_FQ_HANDLE);
	/* fq's default horizon, 10 s, is past every max_delay_ms a table may give (5 s). */
	assert_int_equal(q.horizon_us, 10000000);
	/* A reload finds its own fq and keeps it. */
	assert_int_equal(rls_fq_ensure("lo", lo, 5000 * MS, err, sizeof(err)), 0);
	assert_int_equal(rls_fq_remove_ours(lo, err, sizeof(err)), 1);
	q = root();
	assert_string_equal(q.kind, "noqueue");
	assert_int_equal(q.handle, 0);
	assert_int_equal(rls_fq_remove_ours(lo, err, sizeof(err)), 0);
}

static void test_fq_by_hand_checked_and_kept(void **state)
{
	struct rls_root_qdisc q;
	char err[256];

	(void)state;
	if (!has_fq)
		skip();
	tc("add dev lo root handle 7: fq horizon 1s");
	expect_refused(2000 * MS, "lo: fq's horizon is 1000 ms, not past the table's longest "
		       "max_delay_ms 2000: fq would drop delayed requests",
		       "run `tc qdisc change dev lo root fq horizon 10s`");
	assert_int_equal(rls_fq_ensure("lo", lo, 500 * MS, err, sizeof(err)), 0);
	/* Not rlshape's: unload leaves it. */
	assert_int_equal(rls_fq_remove_ours(lo, err, sizeof(err)), 0);
	q = root();
	assert_string_equal(q.kind, "fq");
	assert_int_equal(q.handle, 0x70000);
	assert_int_equal(q.horizon_us, 1000000);
}

static void test_other_root_left_alone(void **state)
{
	char err[256];

	(void)state;
	tc("add dev lo root handle 1: htb");
	expect_refused(2000 * MS, "lo: the root qdisc is htb (handle 1:), not the kernel's default",
		       "run `tc qdisc replace dev lo root fq`, or remove \"shape\" from the table");
	assert_int_equal(rls_fq_remove_ours(lo, err, sizeof(err)), 0);
	assert_string_equal(root().kind, "htb");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_default_root_replaced_and_restored, default_root),
		cmocka_unit_test_teardown(test_fq_by_hand_checked_and_kept, default_root),
		cmocka_unit_test_teardown(test_other_root_left_alone, default_root),
	};

	return cmocka_run_group_tests(tests, enter_netns, NULL);
}
