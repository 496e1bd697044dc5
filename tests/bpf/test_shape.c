// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Shaping in the kernel, under BPF_PROG_TEST_RUN.
 *
 * The decision: the policy (bpf/lib/policy.h rls_admit()) run by bpf/admit_probe.bpf.c with
 * limits parsed from a table as `rlshape load` parses them and a decision time the test fixes,
 * so that departures are exact: a burst against the rpm smoothing leaves spaced by its
 * interval, past the table's max_delay_ms it is refused, windows and concurrency still refuse,
 * and two CPUs deciding at once never give two requests the same slot.
 *
 * Its use: the upstream side's TC egress program (bpf/rlshape_upstream.c) on hand-built
 * segments of the proxy's requests, each run reading back the skb's tstamp: a shaped request's
 * segment carries its departure (EDT) and so do the connection's later segments, resends
 * included. The departures there come from the kernel's clocks, read once per run: their
 * spacing is the GCRA's interval up to the time between the two clock reads of a run
 * (microseconds; SPACING_SLACK_NS is the tolerance stated).
 */
#include "harness.h"
#include "own_netns.h"
#include "admit_probe.h"
#include "admit_probe.skel.h"

#define MS 1000000ull
/* A decision time, UTC ns: 2026-01-01T00:00:10Z, 10 s into a minute (windows are calendar). */
#define T0 (1767225600ull * 1000 * MS + 10000 * MS)

struct probe {
	struct admit_probe_bpf *skel;
	struct rls_limits limits;
	__u32 account; /* a counter of its own per test */
};

static int load_probe(void **state)
{
	struct probe *p = calloc(1, sizeof(*p));

	if (!p)
		return -1;
	p->skel = admit_probe_bpf__open_and_load();
	if (!p->skel) {
		free(p);
		return -1;
	}
	*state = p;
	return 0;
}

static int destroy_probe(void **state)
{
	struct probe *p = *state;

	admit_probe_bpf__destroy(p->skel);
	free(p);
	return 0;
}

/* The limits the table's "m" entry parses to, on a counter no other test has used. */
static void use_limits(struct probe *p, const char *entry)
{
	char text[512], err[512];
	struct rls_table t;

	snprintf(text, sizeof(text),
		 "{\"listen\": {\"ports\": [8000]}, \"tiers\": {\"t\": {\"m\": %s}}}", entry);
	if (rls_table_parse("shape.json", text, strlen(text), &t, err, sizeof(err)))
		fail_msg("table %s: %s", entry, err);
	p->limits = t.tiers[0].entries[0].limits;
	rls_table_free(&t);
	p->account++;
}

/* One request decided at now_ns; its outcome in *args. */
static void decide_on(int prog_fd, const struct probe *p, __u64 now_ns, int may_shape,
		      struct rls_admit_probe_args *args)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = sizeof(*args));
	int err;

	memset(args, 0, sizeof(*args));
	args->counter.account = p->account;
	args->limits = p->limits;
	args->now_ns = now_ns;
	args->may_shape = (__u32)may_shape;
	err = bpf_prog_test_run_opts(prog_fd, &opts);
	if (err)
		fail_msg("bpf_prog_test_run_opts: %s", strerror(-err));
	CHECK_EQ(args->result, 0, "the probe found or made the counter");
}

static void decide(const struct probe *p, __u64 now_ns, int may_shape,
		   struct rls_admit_probe_args *args)
{
	decide_on(bpf_program__fd(p->skel->progs.rls_admit_probe), p, now_ns, may_shape, args);
}

static struct rls_stats probe_stats(const struct probe *p)
{
	struct rls_stats_key key = { .account = p->account };
	/* Only the counts' maps, the probe's own (user/stats_rows.c reads no others). */
	struct rls_maps counts = { .stats = bpf_map__fd(p->skel->maps.rls_stats),
				   .stats_rows = bpf_map__fd(p->skel->maps.rls_stats_rows) };
	struct rls_stats total;

	if (rls_stats_read(&counts, &key, &total))
		fail_msg("no rls_stats entry for account %u", p->account);
	return total;
}

/*
 * A burst of 20 at once against rpm 300 (5 a second, 200 ms apart; burst 5 by default): 5
 * leave at once, within the smoothing's tolerance, and each later one 200 ms after the one
 * before: the counter spends the smoothing's slot at the departure, not at the decision.
 */
static void test_burst_departures_spaced_by_the_gcra(void **state)
{
	struct probe *p = *state;
	struct rls_admit_probe_args a;
	struct rls_stats st;
	char what[64];
	__u64 want, sum = 0;
	int i;

	use_limits(p, "{\"rpm\": 300, \"shape\": {\"max_delay_ms\": 5000}}");
	for (i = 0; i < 20; i++) {
		decide(p, T0, 1, &a);
		want = i < 5 ? 0 : (__u64)(i - 4) * 200 * MS;
		snprintf(what, sizeof(what), "request %d's delay (ns)", i + 1);
		CHECK_EQ(a.reason, RLS_REASON_NONE, what);
		CHECK_EQ(a.delay_ns, want, what);
		sum += want;
	}
	st = probe_stats(p);
	CHECK_EQ(st.admitted, 20, "rls_stats admitted");
	CHECK_EQ(st.shaped, 15, "rls_stats shaped");
	CHECK_EQ(st.shaped_delay_ns, sum, "rls_stats shaped_delay_ns");
	CHECK_EQ(sum, 24000 * MS, "the delays, summed by hand: 200 ms * (1 + ... + 15)");
	/* 3 s later the 20th has not left yet (its slot is at T0 + 3 s): the next waits 200 ms. */
	decide(p, T0 + 3000 * MS, 1, &a);
	CHECK_EQ(a.delay_ns, 200 * MS, "a request 3 s after the burst");
	/* After a pause past every slot, the smoothing admits at once again. */
	decide(p, T0 + 60000 * MS, 1, &a);
	CHECK_EQ(a.reason, RLS_REASON_NONE, "after a pause: admitted");
	CHECK_EQ(a.delay_ns, 0, "after a pause: not delayed");
}

/*
 * Past max_delay_ms the 429 as without shaping, with the retry-after of the smoothing; a
 * refused request spends no slot, so the next one after a wait is shaped again.
 */
static void test_refused_past_the_maximum_delay(void **state)
{
	struct probe *p = *state;
	struct rls_admit_probe_args a;
	struct rls_stats st;
	char what[64];
	int i;

	use_limits(p, "{\"rpm\": 300, \"shape\": {\"max_delay_ms\": 2000}}");
	for (i = 0; i < 20; i++) {
		decide(p, T0, 1, &a);
		snprintf(what, sizeof(what), "request %d", i + 1);
		if (i < 15) {
			CHECK_EQ(a.reason, RLS_REASON_NONE, what);
			CHECK_EQ(a.delay_ns, i < 5 ? 0 : (__u64)(i - 4) * 200 * MS, what);
		} else {
			/* Its slot would be 2200 ms away, more than 2000. */
			CHECK_EQ(a.reason, RLS_REASON_BURST, what);
			CHECK_EQ(a.delay_ns, 0, what);
			CHECK_EQ(a.reset_ms, 2200, what);
		}
	}
	st = probe_stats(p);
	CHECK_EQ(st.admitted, 15, "rls_stats admitted");
	CHECK_EQ(st.rejected[RLS_REASON_BURST], 5, "rls_stats rejected[burst]");
	CHECK_EQ(st.shaped, 10, "rls_stats shaped");
	decide(p, T0 + 1000 * MS, 1, &a);
	CHECK_EQ(a.reason, RLS_REASON_NONE, "1 s later: admitted");
	CHECK_EQ(a.delay_ns, 1200 * MS, "1 s later: after the 15th's slot at T0 + 3 s, less the "
		 "tolerance");
}

/* The 6th of a burst at once against rpm 300 (burst 5) is refused, not delayed. */
static void expect_6th_refused(struct probe *p, int may_shape, const char *what)
{
	struct rls_admit_probe_args a;
	int i;

	for (i = 0; i < 5; i++) {
		decide(p, T0, may_shape, &a);
		CHECK_EQ(a.reason, RLS_REASON_NONE, what);
	}
	decide(p, T0, may_shape, &a);
	CHECK_EQ(a.reason, RLS_REASON_BURST, what);
	CHECK_EQ(a.delay_ns, 0, what);
	CHECK_EQ(a.reset_ms, 200, what);
	CHECK_EQ(probe_stats(p).shaped, 0, what);
}

/* XDP cannot hold a request: it is refused as before, whatever the table says. */
static void test_not_shaped_where_the_hook_cannot_delay(void **state)
{
	use_limits(*state, "{\"rpm\": 300, \"shape\": {\"max_delay_ms\": 5000}}");
	expect_6th_refused(*state, 0, "6th, where the hook cannot delay");
}

/* Without "shape" in the entry the upstream side refuses too. */
static void test_not_shaped_without_shape_in_the_table(void **state)
{
	use_limits(*state, "{\"rpm\": 300}");
	expect_6th_refused(*state, 1, "6th, no shape in the entry");
}

/*
 * Only the smoothing shapes: a full window refuses, and so does a concurrency limit, after the
 * smoothing would have shaped the request; neither refusal spends the smoothing's slot.
 */
static void test_windows_and_concurrency_still_refuse(void **state)
{
	struct probe *p = *state;
	struct rls_admit_probe_args a;

	use_limits(p, "{\"rpm\": 300, \"rph\": 3, \"burst\": 1, \"shape\": {\"max_delay_ms\": 5000}}");
	decide(p, T0, 1, &a);
	CHECK_EQ(a.delay_ns, 0, "1st");
	decide(p, T0, 1, &a);
	CHECK_EQ(a.delay_ns, 200 * MS, "2nd");
	decide(p, T0, 1, &a);
	CHECK_EQ(a.delay_ns, 400 * MS, "3rd");
	decide(p, T0, 1, &a);
	CHECK_EQ(a.reason, RLS_REASON_RPH, "4th, over rph 3: refused, not shaped");
	CHECK_EQ(a.delay_ns, 0, "4th's delay");

	use_limits(p, "{\"rpm\": 60, \"concurrency\": 1, \"shape\": {\"max_delay_ms\": 5000}}");
	decide(p, T0, 1, &a);
	CHECK_EQ(a.reason, RLS_REASON_NONE, "1st, takes the only slot");
	decide(p, T0, 1, &a);
	CHECK_EQ(a.reason, RLS_REASON_CONCURRENCY, "2nd, the slot is held");
	CHECK_EQ(a.delay_ns, 0, "2nd's delay");
	CHECK_EQ(probe_stats(p).shaped, 0, "rls_stats shaped");
}

/* ---- exactly once across CPUs ---- */

#define CPU_REQUESTS 50

struct worker {
	pthread_t thread;
	const struct probe *p;
	int prog_fd;
	int cpu;
	int *go; /* 0: wait, 1: run, -1: give up */
	__u64 delay_ns[CPU_REQUESTS];
	int errors, wrong_cpu;
	char why[128];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct rls_admit_probe_args a;
	int i;

	if (!pin_and_wait(w->cpu, w->go, w->why, sizeof(w->why)))
		return NULL;
	for (i = 0; i < CPU_REQUESTS; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &a, .ctx_size_in = sizeof(a));

		memset(&a, 0, sizeof(a));
		a.counter.account = w->p->account;
		a.limits = w->p->limits;
		a.now_ns = T0;
		a.may_shape = 1;
		if (bpf_prog_test_run_opts(w->prog_fd, &opts) || a.result || a.reason)
			w->errors++;
		w->delay_ns[i] = a.delay_ns;
		if (sched_getcpu() != w->cpu)
			w->wrong_cpu++;
	}
	return NULL;
}

/*
 * Two CPUs decide 50 requests each at the same instant on one counter (rpm 6000: 10 ms apart,
 * burst 1): the 100 departures are 0, 10, ..., 990 ms, each once. A slot given twice, or
 * skipped, would show as a repeated or a missing departure.
 */
static void test_each_departure_once_across_cpus(void **state)
{
	struct probe *p = *state;
	struct worker w[2];
	int seen[2 * CPU_REQUESTS] = { 0 };
	int cpus[2], n = 0, cpu, go = 0, i, k, err;
	cpu_set_t allowed;
	__u64 slot;

	use_limits(p, "{\"rpm\": 6000, \"burst\": 1, \"shape\": {\"max_delay_ms\": 5000}}");
	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		fail_msg("sched_getaffinity: %s", strerror(errno));
	for (cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++)
		if (CPU_ISSET(cpu, &allowed))
			cpus[n++] = cpu;
	if (n < 2)
		skip(); /* one CPU: nothing runs at once */
	memset(w, 0, sizeof(w));
	for (i = 0; i < 2; i++) {
		w[i].p = p;
		w[i].prog_fd = bpf_program__fd(p->skel->progs.rls_admit_probe);
		w[i].cpu = cpus[i];
		w[i].go = &go;
		err = pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
		if (err) {
			__atomic_store_n(&go, -1, __ATOMIC_RELEASE);
			for (k = 0; k < i; k++)
				pthread_join(w[k].thread, NULL);
			fail_msg("pthread_create: %s", strerror(err));
		}
	}
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	for (i = 0; i < 2; i++)
		pthread_join(w[i].thread, NULL);
	for (i = 0; i < 2; i++) {
		if (w[i].why[0])
			fail_msg("%s", w[i].why);
		CHECK_EQ(w[i].errors, 0, "runs that failed or were refused");
		CHECK_EQ(w[i].wrong_cpu, 0, "runs on a CPU other than the pinned one");
		for (k = 0; k < CPU_REQUESTS; k++) {
			slot = w[i].delay_ns[k] / (10 * MS);
			if (w[i].delay_ns[k] % (10 * MS) || slot >= 2 * CPU_REQUESTS)
				fail_msg("cpu %d: a departure %llu ns after the decision, not one of "
					 "the 10 ms slots", w[i].cpu,
					 (unsigned long long)w[i].delay_ns[k]);
			if (seen[slot]++)
				fail_msg("the departure at %llu ms was given twice",
					 (unsigned long long)slot * 10);
		}
	}
	/* 100 distinct slots among 100: every one of them, once. */
	CHECK_EQ(probe_stats(p).shaped, 2 * CPU_REQUESTS - 1, "rls_stats shaped (all but the first)");
}

/* ---- the upstream side's TC egress program ---- */

#define KEY_SHAPED "sk-test-shaped-0001"
#define SPACING_SLACK_NS (5 * MS)
#define TC_ACT_OK 0

static const char upstream_table[] =
	"{'listen': {'ports': [8000]},"
	" 'tiers': {'shaped': {'*': {'rpm': 300, 'shape': {'max_delay_ms': 2000}}}},"
	" 'accounts': {'shaped': {'tier': 'shaped', 'keys': ['" KEY_SHAPED "']}}}";

/* The skeleton in a network namespace of the test's own: a refusal sends its 429 and reset. */
static int setup_upstream(void **state)
{
	char why[256];

	if (own_netns(why, sizeof(why))) {
		printf("# %s\n", why);
		return -1;
	}
	env_load_upstream = 1;
	return setup_with(state, upstream_table);
}

struct egress {
	int action;
	__u64 tstamp; /* the skb's after the run: 0, or the departure it must wait for */
};

/* One segment of the proxy's connection c through rlshape_upstream, its tstamp read back. */
static struct egress egress_send(struct env *e, struct conn *c, const char *payload, size_t len,
				 uint8_t flags)
{
	struct tp_spec spec = spec_of(c, payload, len, flags);
	uint8_t in[TP_MAX_FRAME], out[TP_MAX_FRAME];
	struct __sk_buff ctx = { 0 };
	size_t in_len = tp_build(&spec, in, sizeof(in));
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = (__u32)in_len,
		    .data_out = out, .data_size_out = sizeof(out), .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .ctx_out = &ctx, .ctx_size_out = sizeof(ctx),
		    .repeat = 1);
	struct egress r;
	int err;

	CHECK(in_len > 0, "test bug: cannot build the frame");
	err = bpf_prog_test_run_opts(e->upstream_fd, &opts);
	if (err)
		fail_msg("bpf_prog_test_run_opts: %s", strerror(-err));
	c->seq += (uint32_t)len;
	r.action = (int)opts.retval;
	r.tstamp = ctx.tstamp;
	return r;
}

static __u64 monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

/*
 * 20 requests at once, a connection each, against rpm 300 with max_delay_ms 2000: 5 leave
 * untouched, the next 10 carry departures 200 ms apart, the first 200 ms after the burst
 * began, and the last 5 (2200 ms and more away) are refused. rls_stats counts 10 shaped.
 */
static void test_upstream_burst_gets_departures(void **state)
{
	struct env *e = need_env(state);
	char req[512], what[96];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_SHAPED), NULL);
	struct egress r[20];
	struct conn c;
	struct rls_stats st;
	__u64 before = monotonic_ns(), after;
	int i;

	for (i = 0; i < 20; i++) {
		c = conn4((uint16_t)(42000 + i));
		r[i] = egress_send(e, &c, req, len, 0);
	}
	after = monotonic_ns();
	for (i = 0; i < 5; i++) {
		snprintf(what, sizeof(what), "request %d, within the burst of 5", i + 1);
		CHECK_EQ(r[i].action, TC_ACT_OK, what);
		CHECK_EQ(r[i].tstamp, 0, what);
	}
	/* The 6th's departure: 200 ms after the 1st was decided, which was in [before, after]. */
	CHECK(r[5].tstamp >= before + 200 * MS && r[5].tstamp <= after + 200 * MS,
	      "request 6 departs %lld ns after the burst began, not 200 ms (to %lld ns later)",
	      (long long)(r[5].tstamp - before), (long long)(after - before));
	for (i = 5; i < 15; i++) {
		snprintf(what, sizeof(what), "request %d, shaped", i + 1);
		CHECK_EQ(r[i].action, TC_ACT_OK, what);
		if (i > 5 && (r[i].tstamp < r[i - 1].tstamp + 200 * MS - SPACING_SLACK_NS ||
			      r[i].tstamp > r[i - 1].tstamp + 200 * MS + SPACING_SLACK_NS))
			fail_msg("request %d departs %lld ns after request %d, not 200 ms (+-%llu ms)",
				 i + 1, (long long)(r[i].tstamp - r[i - 1].tstamp), i,
				 SPACING_SLACK_NS / MS);
	}
	for (i = 15; i < 20; i++) {
		snprintf(what, sizeof(what), "request %d, past max_delay_ms: refused", i + 1);
		CHECK(r[i].action != TC_ACT_OK, "%s (got TC action %d)", what, r[i].action);
		CHECK_EQ(r[i].tstamp, 0, what);
	}
	st = env_stats(e, account_id(e, "shaped"), RLS_MODEL_OTHER);
	CHECK_EQ(st.admitted, 15, "rls_stats admitted");
	CHECK_EQ(st.rejected[RLS_REASON_BURST], 5, "rls_stats rejected[burst]");
	CHECK_EQ(st.shaped, 10, "rls_stats shaped");
	CHECK(st.shaped_delay_ns >= 11000 * MS - 10 * SPACING_SLACK_NS &&
	      st.shaped_delay_ns <= 11000 * MS + 10 * SPACING_SLACK_NS,
	      "rls_stats shaped_delay_ns %llu: 200 ms * (1 + ... + 10) = 11 s",
	      (unsigned long long)st.shaped_delay_ns);
}

/*
 * Later segments of a shaped connection leave no earlier than its request (fq orders a flow's
 * packets by time: one without would overtake it), resends of the request included; another
 * connection's segments are not held.
 */
static void test_upstream_later_segments_wait_behind(void **state)
{
	struct env *e = need_env(state);
	char req[512];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_SHAPED), NULL);
	struct conn c, shaped;
	struct egress r, ack, resend;
	int i;

	for (i = 0; i < 5; i++) {
		c = conn4((uint16_t)(43000 + i));
		egress_send(e, &c, req, len, 0);
	}
	shaped = conn4(43100);
	r = egress_send(e, &shaped, req, len, 0);
	CHECK(r.tstamp > monotonic_ns(), "the 6th request is held (tstamp %llu)",
	      (unsigned long long)r.tstamp);
	ack = egress_send(e, &shaped, NULL, 0, 0x10 /* ACK */);
	CHECK_EQ(ack.action, TC_ACT_OK, "a later ACK on the shaped connection");
	CHECK_EQ(ack.tstamp, r.tstamp, "a later ACK on the shaped connection leaves with it");
	shaped.seq -= (uint32_t)len;
	resend = egress_send(e, &shaped, req, len, 0);
	CHECK_EQ(resend.action, TC_ACT_OK, "the request resent");
	CHECK_EQ(resend.tstamp, r.tstamp, "the request resent waits for its departure too");
	c = conn4(43001);
	ack = egress_send(e, &c, NULL, 0, 0x10);
	CHECK_EQ(ack.tstamp, 0, "an ACK on an unshaped connection");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_burst_departures_spaced_by_the_gcra, load_probe,
						destroy_probe),
		cmocka_unit_test_setup_teardown(test_refused_past_the_maximum_delay, load_probe,
						destroy_probe),
		cmocka_unit_test_setup_teardown(test_not_shaped_where_the_hook_cannot_delay,
						load_probe, destroy_probe),
		cmocka_unit_test_setup_teardown(test_not_shaped_without_shape_in_the_table,
						load_probe, destroy_probe),
		cmocka_unit_test_setup_teardown(test_windows_and_concurrency_still_refuse,
						load_probe, destroy_probe),
		cmocka_unit_test_setup_teardown(test_each_departure_once_across_cpus, load_probe,
						destroy_probe),
		cmocka_unit_test_setup_teardown(test_upstream_burst_gets_departures, setup_upstream,
						teardown),
		cmocka_unit_test_setup_teardown(test_upstream_later_segments_wait_behind,
						setup_upstream, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
