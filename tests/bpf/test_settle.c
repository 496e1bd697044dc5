// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The settlement program (rls_settle, a syscall program the daemon runs with
 * BPF_PROG_TEST_RUN on a struct rls_settle_args) under test runs, as the daemon calls it
 * (user/cmd_daemon.c settle()). A case is data: the counter as it stands before (or none),
 * then up to SETTLE_STEPS settlements, each with the result and the counter's token budget and
 * day total it must leave. Expected figures are worked out by hand in each row.
 */
#include "cases.h"

#define SETTLE_STEPS 3
#define DAY 20000u /* a UTC day number; the program never reads the clock */

static const char table[] =
	"{'listen': {'ports': [8000]}, 'tiers': {'t': {'*': {'tpm': 1000}}}}";

struct settlement {
	__u64 event_id;
	__s64 delta;
	__u32 day;
	int anonymous;   /* look the counter up in rls_anon_counters */
	/* What it must leave. */
	int result;      /* 0 settled, 1 already settled, -1 no such counter */
	__s64 budget;    /* token_budget after it */
	__s64 day_used;  /* token_day_used after it */
};

struct settle_case {
	const char *name;
	int anonymous;                /* the counter lives in rls_anon_counters */
	int no_counter;               /* there is none */
	struct rls_counter counter;   /* its token fields before the first settlement */
	struct settlement steps[SETTLE_STEPS];
};

#define COUNTER(budget, burst, day, used)                                                \
	{ .token_ready = 1, .token_budget = (budget), .token_burst = (burst),            \
	  .token_day = (day), .token_day_used = (used) }

static const struct settle_case settle_cases[] = {
	{ .name = "settle_debit", .counter = COUNTER(1000, 1000, DAY, 500), .steps = {
		/* 200 more used than reserved: off the budget, onto the day. */
		{ .event_id = 1, .delta = 200, .day = DAY, .budget = 800, .day_used = 700 },
	} },
	{ .name = "settle_refund_capped_at_the_burst", .counter = COUNTER(950, 1000, DAY, 500),
	  .steps = {
		/* 950 + 200 would pass the burst of 1000. */
		{ .event_id = 2, .delta = -200, .day = DAY, .budget = 1000, .day_used = 300 },
		/* The day total never goes below zero either. */
		{ .event_id = 3, .delta = -400, .day = DAY, .budget = 1000, .day_used = 0 },
	} },
	{ .name = "settle_refund_into_a_deficit", .counter = COUNTER(-300, 1000, DAY, 900),
	  .steps = {
		{ .event_id = 4, .delta = -100, .day = DAY, .budget = -200, .day_used = 800 },
	} },
	{ .name = "settle_idempotent_on_event_id", .counter = COUNTER(1000, 1000, DAY, 0),
	  .steps = {
		{ .event_id = 5, .delta = 300, .day = DAY, .budget = 700, .day_used = 300 },
		/* The same event again (a daemon killed mid-way): nothing changes. */
		{ .event_id = 5, .delta = 300, .day = DAY, .result = 1, .budget = 700,
		  .day_used = 300 },
		/* Event 0 (a pending drain) is not an event: it always settles. */
		{ .event_id = 0, .delta = 100, .day = DAY, .budget = 600, .day_used = 400 },
	} },
	{ .name = "settle_pending_drains_settle_every_time", .counter = COUNTER(500, 500, DAY, 0),
	  .steps = {
		{ .event_id = 0, .delta = 50, .day = DAY, .budget = 450, .day_used = 50 },
		{ .event_id = 0, .delta = 50, .day = DAY, .budget = 400, .day_used = 100 },
	} },
	{ .name = "settle_another_days_total_untouched", .counter = COUNTER(1000, 1000, DAY, 500),
	  .steps = {
		/* Tokens used yesterday: today's total stays, the budget pays. */
		{ .event_id = 6, .delta = 100, .day = DAY - 1, .budget = 900, .day_used = 500 },
		{ .event_id = 7, .delta = -50, .day = DAY + 1, .budget = 950, .day_used = 500 },
	} },
	{ .name = "settle_unfilled_budget_untouched",
	  .counter = { .token_ready = 0, .token_burst = 1000, .token_day = DAY,
		       .token_day_used = 10 },
	  .steps = {
		/* No tpm refill yet: only the day total moves. */
		{ .event_id = 8, .delta = 40, .day = DAY, .budget = 0, .day_used = 50 },
	} },
	{ .name = "settle_no_counter", .no_counter = 1, .steps = {
		{ .event_id = 9, .delta = 100, .day = DAY, .result = -1 },
	} },
	{ .name = "settle_anonymous_counter", .anonymous = 1,
	  .counter = COUNTER(100, 100, DAY, 20), .steps = {
		{ .event_id = 10, .delta = 30, .day = DAY, .anonymous = 1, .budget = 70,
		  .day_used = 50 },
		/* The same key among the named counters: there is none. */
		{ .event_id = 11, .delta = 30, .day = DAY, .result = -1, .budget = 70,
		  .day_used = 50 },
	} },
};

/* The counter every case settles: a named account's, or an anonymous IPv4 client's. */
static struct rls_counter_key settle_key(int anonymous)
{
	struct rls_counter_key k = { .account = anonymous ? RLS_ACCOUNT_ANONYMOUS : 7,
				     .model = RLS_MODEL_OTHER };

	if (anonymous) {
		k.client[10] = k.client[11] = 0xff;
		inet_pton(AF_INET, CLIENT4, k.client + 12);
	}
	return k;
}

struct settle_state {
	struct env env;
	const struct settle_case *c;
};

static int settle_setup(void **state)
{
	struct settle_state *st = calloc(1, sizeof(*st));

	if (!st)
		return -1;
	st->c = *state;
	*state = st;
	if (env_open(&st->env, table))
		env_close(&st->env); /* st->env.why says why; the case fails with it */
	return 0;
}

static int settle_teardown(void **state)
{
	struct settle_state *st = *state;

	if (st) {
		env_put(&st->env);
		free(st);
	}
	*state = NULL;
	return 0;
}

static void settle_run(void **state)
{
	struct settle_state *st = *state;
	const struct settle_case *c = st->c;
	struct env *e = &st->env;
	struct rls_counter_key key = settle_key(c->anonymous);
	int map = c->anonymous ? e->maps.anon_counters : e->maps.counters;
	struct rls_counter now;
	int i, err, ret;

	if (!e->ready)
		fail_msg("%s: cannot load the programs: %s", c->name, e->why);
	if (!c->no_counter)
		CHECK(bpf_map_update_elem(map, &key, &c->counter, BPF_ANY) == 0,
		      "%s: writing the counter: %s", c->name, strerror(errno));
	for (i = 0; i < SETTLE_STEPS && (c->steps[i].delta || c->steps[i].event_id); i++) {
		const struct settlement *s = &c->steps[i];
		struct rls_settle_args args = {
			.counter = key, .event_id = s->event_id, .delta = s->delta, .day = s->day,
			.anonymous = (__u32)s->anonymous, .result = -2,
		};

		err = env_run(e->settle_fd, NULL, 0, NULL, 0, NULL, &args, sizeof(args), &ret);
		if (err)
			fail_msg("%s, settlement %d: test run: %s", c->name, i, strerror(-err));
		CHECK_EQ(ret, 0, "the program's return value");
		if (args.result != s->result)
			fail_msg("%s, settlement %d: result %d, expected %d", c->name, i,
				 args.result, s->result);
		memset(&now, 0, sizeof(now));
		if (bpf_map_lookup_elem_flags(map, &key, &now, BPF_F_LOCK)) {
			CHECK(c->no_counter, "%s, settlement %d: the counter is gone", c->name, i);
			continue;
		}
		CHECK(!c->no_counter, "%s: settlement made a counter", c->name);
		if (now.token_budget != s->budget || now.token_day_used != s->day_used)
			fail_msg("%s, settlement %d: budget %lld, day total %lld; expected %lld and "
				 "%lld", c->name, i, (long long)now.token_budget,
				 (long long)now.token_day_used, (long long)s->budget,
				 (long long)s->day_used);
		CHECK_EQ(now.token_burst, c->counter.token_burst, "token_burst (settlement keeps it)");
		CHECK_EQ(now.token_day, c->counter.token_day, "token_day (settlement keeps it)");
	}
}

int main(void)
{
	struct CMUnitTest tests[ARRAY_SIZE(settle_cases)];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(settle_cases); i++)
		tests[i] = (struct CMUnitTest){
			.name = settle_cases[i].name, .test_func = settle_run,
			.setup_func = settle_setup, .teardown_func = settle_teardown,
			.initial_state = (void *)&settle_cases[i],
		};
	return case_run_suite("bpf/test_settle", NULL, 0, tests, ARRAY_SIZE(tests));
}
