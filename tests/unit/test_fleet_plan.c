// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A fleet's lease arithmetic: what admission allows (include/fleet_lease.h, the code XDP runs
 * under the counter's lock), what the daemon asks for and holds (user/fleet_plan.c), and the
 * README's bounds, checked on simulated fleets whose Redis is a model of user/fleet.c's lease
 * script: leasing, Redis away, Redis back empty.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fleet_lease.h"
#include "fleet_plan.h"

#define MAX_HOSTS 8

static struct rls_limits fleet_limits(__u32 rpm, __u32 hosts, __u32 unleased)
{
	struct rls_limits l;

	memset(&l, 0, sizeof(l));
	l.rps = l.rph = l.rpd = RLS_UNLIMITED;
	l.rpm = rpm;
	l.tpm = l.tpd = RLS_TOKENS_UNLIMITED;
	l.fleet_hosts = hosts;
	l.fleet_unleased = unleased;
	return l;
}

static void test_share_is_rounded_up(void **state)
{
	(void)state;
	assert_int_equal(rls_fleet_share(30, 3, RLS_UNLIMITED), 10);
	assert_int_equal(rls_fleet_share(31, 3, RLS_UNLIMITED), 11);
	assert_int_equal(rls_fleet_share(2, 3, RLS_UNLIMITED), 1);
	assert_int_equal(rls_fleet_share(0, 3, RLS_UNLIMITED), 0);
	assert_int_equal(rls_fleet_share(RLS_UNLIMITED, 3, RLS_UNLIMITED), RLS_UNLIMITED);
	assert_int_equal(rls_fleet_share(7, 1, RLS_UNLIMITED), 7);
	assert_int_equal(rls_fleet_share(7, 0, RLS_UNLIMITED), 7);
}

static void test_local_limits_are_shares(void **state)
{
	struct rls_limits l = fleet_limits(30, 3, 1);

	(void)state;
	l.rps = 10;
	l.burst = 30;
	l.smooth_interval_ns = 2 * RLS_NS_PER_SEC;
	l.tpm = 1000;
	l.token_burst = 100;
	rls_fleet_local_limits(&l);
	assert_int_equal(l.rps, 4);
	assert_int_equal(l.burst, 10);
	assert_int_equal(l.smooth_interval_ns, 6 * RLS_NS_PER_SEC);
	assert_int_equal(l.tpm, 334);
	assert_int_equal(l.token_burst, 34);
	assert_true(l.tpd == RLS_TOKENS_UNLIMITED);
	/* leased windows keep the fleet's limit */
	assert_int_equal(l.rpm, 30);
	assert_int_equal(l.rph, RLS_UNLIMITED);
}

static void test_window_limit_before_and_after_a_lease(void **state)
{
	struct rls_limits l = fleet_limits(30, 3, 2);
	struct rls_counter c;

	(void)state;
	memset(&c, 0, sizeof(c));
	/* before a lease of window 100: unleased */
	assert_int_equal(rls_fleet_window_limit(&c, &l, RLS_WINDOW_MINUTE, 100, 30), 2);
	assert_int_equal(c.fleet_asked[RLS_WINDOW_MINUTE], 100);
	assert_int_equal(c.fleet_limit[RLS_WINDOW_MINUTE], 30);
	c.fleet_window[RLS_WINDOW_MINUTE] = 100;
	c.fleet_lease[RLS_WINDOW_MINUTE] = 7;
	assert_int_equal(rls_fleet_window_limit(&c, &l, RLS_WINDOW_MINUTE, 100, 30), 7);
	/* a lease past the limit never raises it */
	c.fleet_lease[RLS_WINDOW_MINUTE] = 70;
	assert_int_equal(rls_fleet_window_limit(&c, &l, RLS_WINDOW_MINUTE, 100, 30), 30);
	/* the next window has no lease yet */
	assert_int_equal(rls_fleet_window_limit(&c, &l, RLS_WINDOW_MINUTE, 101, 30), 2);
	/* the second window is a share, not leased; unlimited stays unlimited */
	assert_int_equal(rls_fleet_window_limit(&c, &l, RLS_WINDOW_SECOND, 6000, 5), 5);
	assert_int_equal(rls_fleet_window_limit(&c, &l, RLS_WINDOW_HOUR, 1, RLS_UNLIMITED),
			 RLS_UNLIMITED);
	assert_int_equal(c.fleet_limit[RLS_WINDOW_HOUR], RLS_UNLIMITED);
	/* no fleet (or an anonymous counter): the limit */
	l.fleet_hosts = 0;
	memset(&c, 0, sizeof(c));
	assert_int_equal(rls_fleet_window_limit(&c, &l, RLS_WINDOW_MINUTE, 100, 30), 30);
	assert_int_equal(c.fleet_asked[RLS_WINDOW_MINUTE], 0);
}

static void test_topping_up_says_a_second(void **state)
{
	struct rls_counter c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_true(rls_fleet_topping_up(&c, RLS_WINDOW_MINUTE, 100, 7, 30));
	assert_false(rls_fleet_topping_up(&c, RLS_WINDOW_MINUTE, 100, 30, 30));
	c.fleet_spent[RLS_WINDOW_MINUTE] = 100;
	assert_false(rls_fleet_topping_up(&c, RLS_WINDOW_MINUTE, 100, 7, 30));
}

static void test_plan(void **state)
{
	struct rls_fleet_window_view v = { .limit = 30, .count = 0, .lease = RLS_UNLIMITED };

	(void)state;
	assert_int_equal(rls_fleet_part(30, 3), 3);
	assert_int_equal(rls_fleet_part(1, 3), 1);
	assert_int_equal(rls_fleet_part(100000, 1), 25000);
	assert_true(rls_fleet_wants_more(&v, 3));
	assert_int_equal(rls_fleet_held(&v), 0);
	assert_int_equal(rls_fleet_fallback_lease(&v, 3), 10);
	v.count = 1; /* admitted unleased */
	assert_int_equal(rls_fleet_held(&v), 1);
	v.lease = 4;
	assert_false(rls_fleet_wants_more(&v, 3)); /* 3 left, more than half a part */
	v.count = 3;
	assert_true(rls_fleet_wants_more(&v, 3));
	v.spent = true;
	assert_false(rls_fleet_wants_more(&v, 3));
	v.spent = false;
	v.lease = 30;
	assert_false(rls_fleet_wants_more(&v, 3)); /* holds the whole limit */
	v.lease = 25;
	assert_int_equal(rls_fleet_fallback_lease(&v, 3), 25); /* never below what it holds */
}

static void test_keys(void **state)
{
	char key[128];

	(void)state;
	rls_fleet_key(key, sizeof(key), "acme", "gpt-4o", RLS_WINDOW_MINUTE, 29935685);
	assert_string_equal(key, "rls:{acme}:gpt-4o:m:29935685");
	rls_fleet_key(key, sizeof(key), "acme", "*", RLS_WINDOW_DAY, 20789);
	assert_string_equal(key, "rls:{acme}:*:d:20789");
	/* to the window's end, and a window more */
	assert_int_equal(rls_fleet_key_ttl(RLS_WINDOW_MINUTE, 10, 600), 120);
	assert_int_equal(rls_fleet_key_ttl(RLS_WINDOW_MINUTE, 10, 659), 61);
	assert_int_equal(rls_fleet_key_ttl(RLS_WINDOW_HOUR, 0, 0), 7200);
}

/* ---- simulated fleets: one minute window, one counter per host ---- */

struct model_redis {
	__u32 field[MAX_HOSTS]; /* what each host holds */
};

/* user/fleet.c's LEASE_SCRIPT. */
static __u32 model_script(struct model_redis *r, int host, __u32 have, __u32 want, __u32 limit,
			  __u32 *total_out)
{
	__u32 total = 0, grant;
	int i;

	if (r->field[host] < have)
		r->field[host] = have;
	for (i = 0; i < MAX_HOSTS; i++)
		total += r->field[i];
	grant = total < limit ? limit - total : 0;
	grant = grant < want ? grant : want;
	r->field[host] += grant;
	*total_out = total + grant;
	return r->field[host];
}

struct sim {
	__u32 hosts, limit, unleased;
	struct rls_limits l;
	struct rls_counter c[MAX_HOSTS];
	struct model_redis redis;
	__u32 admitted;
};

#define WINDOW 1000

static void sim_init(struct sim *s, __u32 hosts, __u32 limit, __u32 unleased)
{
	memset(s, 0, sizeof(*s));
	s->hosts = hosts;
	s->limit = limit;
	s->unleased = unleased;
	s->l = fleet_limits(limit, hosts, unleased);
}

/* One request at host h, decided as rls_admit() decides the minute window. */
static void sim_request(struct sim *s, int h)
{
	struct rls_counter *c = &s->c[h];
	__u32 here = rls_fleet_window_limit(c, &s->l, RLS_WINDOW_MINUTE, WINDOW, s->limit);
	__u32 count = c->window_start[RLS_WINDOW_MINUTE] == WINDOW ? c->window_count[RLS_WINDOW_MINUTE]
								     : 0;

	if (count >= here)
		return;
	c->window_start[RLS_WINDOW_MINUTE] = WINDOW;
	c->window_count[RLS_WINDOW_MINUTE] = count + 1;
	s->admitted++;
}

static struct rls_fleet_window_view sim_view(const struct sim *s, int h)
{
	const struct rls_counter *c = &s->c[h];
	struct rls_fleet_window_view v = {
		.limit = s->limit,
		.count = c->window_start[RLS_WINDOW_MINUTE] == WINDOW ? c->window_count[RLS_WINDOW_MINUTE]
								      : 0,
		.lease = c->fleet_window[RLS_WINDOW_MINUTE] == WINDOW ? c->fleet_lease[RLS_WINDOW_MINUTE]
								      : RLS_UNLIMITED,
		.spent = c->fleet_spent[RLS_WINDOW_MINUTE] == WINDOW,
	};

	return v;
}

/* As rls_fleet_lease sets it: never below what the window admitted. */
static void sim_set_lease(struct sim *s, int h, __u32 lease, bool spent)
{
	struct rls_counter *c = &s->c[h];
	__u32 count = sim_view(s, h).count;

	c->fleet_window[RLS_WINDOW_MINUTE] = WINDOW;
	c->fleet_lease[RLS_WINDOW_MINUTE] = lease > count ? lease : count;
	if (spent)
		c->fleet_spent[RLS_WINDOW_MINUTE] = WINDOW;
}

enum sim_mode { LEASING, FALLBACK, JOINING };

/* One sync of host h's daemon, as user/fleet.c's sync_window() does it. */
static void sim_sync(struct sim *s, int h, enum sim_mode mode)
{
	struct rls_fleet_window_view v = sim_view(s, h);
	__u32 mine, total, share;

	if (s->c[h].fleet_asked[RLS_WINDOW_MINUTE] != WINDOW && v.lease == RLS_UNLIMITED)
		return; /* idle: nothing sent to Redis */
	if (mode == LEASING) {
		if (!rls_fleet_wants_more(&v, s->hosts))
			return;
		mine = model_script(&s->redis, h, rls_fleet_held(&v),
				    rls_fleet_part(s->limit, s->hosts), s->limit, &total);
		sim_set_lease(s, h, mine, total >= s->limit);
		return;
	}
	share = rls_fleet_fallback_lease(&v, s->hosts);
	if (v.lease == RLS_UNLIMITED || v.lease < share)
		sim_set_lease(s, h, share, false);
	if (mode == JOINING)
		model_script(&s->redis, h, share, 0, s->limit, &total);
}

/* rounds of: a random number of requests at random hosts, then every daemon's sync */
static void sim_run(struct sim *s, int rounds, enum sim_mode mode, unsigned *seed)
{
	int r, k, n;

	for (r = 0; r < rounds; r++) {
		n = rand_r(seed) % 12;
		for (k = 0; k < n; k++)
			sim_request(s, rand_r(seed) % (int)s->hosts);
		for (k = 0; k < (int)s->hosts; k++)
			sim_sync(s, k, mode);
	}
}

/* Leasing: at most limit + hosts x unleased, and under steady demand at least the limit. */
static void test_sim_leasing_bound(void **state)
{
	static const __u32 limits[] = { 1, 2, 7, 30, 100, 1000 };
	unsigned seed = 1;
	struct sim s;
	size_t i;
	__u32 hosts, unleased;

	(void)state;
	for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		for (hosts = 1; hosts <= MAX_HOSTS; hosts++)
			for (unleased = 0; unleased <= 2; unleased++) {
				sim_init(&s, hosts, limits[i], unleased);
				sim_run(&s, 2000, LEASING, &seed);
				assert_true(s.admitted <= limits[i] + hosts * unleased);
				assert_true(s.admitted >= limits[i]);
			}
}

/*
 * Redis away mid-window: at most limit + hosts x unleased + (hosts - 1) x share; Redis back
 * empty (a restart): after the joining syncs, no more than that still, never a second window.
 */
static void test_sim_fallback_and_restart_bound(void **state)
{
	static const __u32 limits[] = { 1, 5, 30, 100, 999 };
	unsigned seed = 7;
	struct sim s;
	size_t i;
	int cut, k;
	__u32 hosts, unleased, share, bound;

	(void)state;
	for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		for (hosts = 1; hosts <= MAX_HOSTS; hosts++)
			for (unleased = 0; unleased <= 2; unleased++)
				for (cut = 0; cut < 40; cut += 7) {
					sim_init(&s, hosts, limits[i], unleased);
					share = (__u32)rls_fleet_share(limits[i], hosts, RLS_UNLIMITED);
					bound = limits[i] + hosts * unleased + (hosts - 1) * share;
					if (bound < hosts * share)
						bound = hosts * share;
					sim_run(&s, cut, LEASING, &seed);
					sim_run(&s, 200, FALLBACK, &seed);
					assert_true(s.admitted <= bound);
					memset(&s.redis, 0, sizeof(s.redis)); /* restarted empty */
					for (k = 0; k < 2; k++)
						sim_run(&s, 1, JOINING, &seed);
					sim_run(&s, 500, LEASING, &seed);
					assert_true(s.admitted <= bound);
				}
}

/* All 30 at host 0, Redis restarts empty, then demand at host 1 only. */
static __u32 restart_then_other_host(bool joining)
{
	struct sim s;
	int r, h;

	sim_init(&s, 3, 30, 1);
	for (r = 0; r < 100; r++) {
		sim_request(&s, 0);
		sim_sync(&s, 0, LEASING);
	}
	assert_int_equal(s.admitted, 30);
	memset(&s.redis, 0, sizeof(s.redis));
	if (joining)
		for (h = 0; h < 3; h++)
			sim_sync(&s, h, JOINING);
	for (r = 0; r < 100; r++) {
		sim_request(&s, 1);
		sim_sync(&s, 1, LEASING);
	}
	return s.admitted;
}

/*
 * What the joining syncs are for: without them, a host that asks first after a restart is
 * granted the whole window again; with them, the spent window stays spent (host 1 keeps only
 * its fallback share of 10, which the bound counts).
 */
static void test_sim_restart_needs_joining(void **state)
{
	(void)state;
	assert_int_equal(restart_then_other_host(false), 60);
	assert_true(restart_then_other_host(true) <= 30 + 3 + 2 * 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_share_is_rounded_up),
		cmocka_unit_test(test_local_limits_are_shares),
		cmocka_unit_test(test_window_limit_before_and_after_a_lease),
		cmocka_unit_test(test_topping_up_says_a_second),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_sim_leasing_bound),
		cmocka_unit_test(test_sim_fallback_and_restart_bound),
		cmocka_unit_test(test_sim_restart_needs_joining),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
