// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The XDP program's admission under BPF_PROG_TEST_RUN: requests admitted up to the limit and
 * then refused, concurrency slots from admission to the request's end, counters kept across a
 * reload, exact counting across CPUs, anonymous clients per address or IPv6 prefix and a full
 * rls_anon_counters.
 */
#include "xdp_suite.h"

/* ---- concurrency: a slot from admission to the end of the request ---- */

static struct rls_counter counter_of(struct env *e, const char *account)
{
	struct rls_counter_key key = { .account = account_id(e, account), .model = RLS_MODEL_OTHER };
	struct rls_counter c;

	memset(&c, 0, sizeof(c));
	CHECK(bpf_map_lookup_elem_flags(e->maps.counters, &key, &c, BPF_F_LOCK) == 0,
	      "no rls_counters entry for %s", account);
	return c;
}

static void expect_slots_held(struct env *e, const char *account, __u32 want, const char *what)
{
	struct rls_counter c = counter_of(e, account);

	if (c.slots_held != want)
		fail_msg("%s: %s holds %u slots, expected %u", what, account, c.slots_held, want);
}

/* The concurrency 429: checksums, headers and the OpenAI-style body. */
static void check_concurrency_429(const struct result *r, long want_limit)
{
	char text[TP_MAX_FRAME + 1], why[256];
	struct reply_429 rep;
	struct tp_parsed p;

	expect_429(r, "request over the concurrency limit");
	CHECK(tp_parse(r->out, r->out_len, &p, why, sizeof(why)) == 0, "the 429 frame: %s", why);
	CHECK(p.ip_csum_ok && p.tcp_csum_ok, "concurrency 429 checksums");
	memcpy(text, p.payload, p.len);
	text[p.len] = '\0';
	CHECK_EQ(header_integer(text, "retry-after"), 1, "retry-after");
	CHECK_EQ(header_integer(text, "retry-after-ms"), 1000, "retry-after-ms");
	CHECK_EQ(header_integer(text, "x-ratelimit-limit-concurrency"), want_limit,
		 "x-ratelimit-limit-concurrency");
	CHECK_EQ(header_integer(text, "x-ratelimit-remaining-concurrency"), 0,
		 "x-ratelimit-remaining-concurrency");
	check_429_id_and_retry(text, &rep);
	CHECK(strstr(text, "\r\n\r\n{\"error\":{\"message\":\"Too many concurrent requests\","
			   "\"type\":\"concurrency\",\"param\":null,"
			   "\"code\":\"rate_limit_exceeded\"}}\n"),
	      "concurrency 429 body: %s", text);
}

static void test_concurrency_limit_and_close(void **state)
{
	struct env *e = need_env(state);
	struct conn a = conn4(41001), b = conn4(41002), c = conn6(41003), d = conn4(41004);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_DUO), "{\"model\":\"m\"}");
	struct result r;
	struct rls_counter counter;

	conn_send(e, &a, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "first request");
	conn_send(e, &b, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "second request");
	expect_slots_held(e, "duo", 2, "two requests in flight");
	conn_send(e, &c, req, len, 0, &r);
	check_concurrency_429(&r, 2);
	CHECK_EQ(stats_of(e, account_id(e, "duo"), RLS_MODEL_OTHER).rejected[RLS_REASON_CONCURRENCY],
		 1, "rls_stats rejected[concurrency]");
	expect_slots_held(e, "duo", 2, "a rejected request takes no slot");

	/* The client's FIN ends its request; so does its RST. */
	conn_send(e, &a, "", 0, TP_ACK | TP_FIN, &r);
	expect_action(&r, XDP_PASS, "client FIN");
	expect_slots_held(e, "duo", 1, "after the client's FIN");
	conn_send(e, &d, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "request after a FIN");
	expect_slots_held(e, "duo", 2, "the freed slot is taken again");
	conn_send(e, &b, "", 0, TP_RST, &r);
	expect_action(&r, XDP_PASS, "client RST");
	expect_slots_held(e, "duo", 1, "after the client's RST");
	/* A second FIN on a closing connection gives nothing back twice. */
	conn_send(e, &a, "", 0, TP_ACK | TP_FIN, &r);
	expect_action(&r, XDP_PASS, "FIN again");
	expect_slots_held(e, "duo", 1, "a repeated FIN");
	counter = counter_of(e, "duo");
	CHECK_EQ(counter.slots_peak, 2, "slots_peak");
	CHECK_EQ(counter.slots_expired, 0, "slots_expired");
}

static void test_concurrency_keepalive_one_slot(void **state)
{
	struct env *e = need_env(state);
	struct conn ka = conn4(41101), other = conn4(41102);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_SOLO), "{\"model\":\"m\"}");
	struct result r;
	struct tp_spec again;
	int i;

	for (i = 0; i < 5; i++) {
		conn_send(e, &ka, req, len, 0, &r);
		expect_action(&r, XDP_PASS, "a request after the last on the same connection");
		expect_slots_held(e, "solo", 1, "keep-alive, one request after another");
	}
	/* A retransmission of the request in flight takes no second slot. */
	again = spec_of(&ka, req, len, TP_ACK | TP_PSH);
	again.seq -= (uint32_t)len;
	send_spec(e, &again, &r);
	expect_action(&r, XDP_PASS, "retransmitted request");
	expect_slots_held(e, "solo", 1, "after a retransmission");
	CHECK_EQ(counter_of(e, "solo").slots_peak, 1, "slots_peak on one keep-alive connection");
	conn_send(e, &other, req, len, 0, &r);
	check_concurrency_429(&r, 1);
	/* A new connection on the same ports (SYN) owes nothing to the last one's request. */
	conn_send(e, &ka, "", 0, TP_SYN, &r);
	expect_action(&r, XDP_PASS, "SYN on a reused port");
	expect_slots_held(e, "solo", 0, "after a SYN reused the connection's ports");
}

/* ---- 1, 2: admitted up to the limit, then a 429 ---- */

static void test_ipv4_admit_then_429(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(40001);

	admit_until_limit(e, &c, "alice", NULL);
}

static void test_ipv6_admit_then_429(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn6(40002);
	struct result r;
	struct reply_429 rep;

	leave_room_in_window(60, 5000);
	admit_until_limit(e, &c, "alice", &r);
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
}

/*
 * The suites keep one load from test to test (env_put, then env_open resets its maps): what a
 * test leaves there must be gone for the next, as after a new load. The same account on the
 * same connection is admitted up to its limit again, counted from zero.
 */
static void test_reused_load_starts_anew(void **state)
{
	struct env *e = need_env(state);
	struct rlshape_bpf *skel = e->skel;
	struct conn c = conn4(40011);
	struct rls_flow_key key;

	leave_room_in_window(60, 5000); /* no minute boundary inside a round */
	admit_until_limit(e, &c, "alice", NULL);
	env_put(e);
	CHECK(env_open(e, table_default) == 0, "opening the kept load again: %s", e->why);
	CHECK(e->skel == skel, "env_open loaded the programs anew instead of keeping them");
	CHECK(bpf_map_get_next_key(e->maps.flows, NULL, &key) != 0,
	      "a connection of the last test is still in rls_flows");
	c = conn4(40011);
	admit_until_limit(e, &c, "alice", NULL);
}

static void test_vlan_ipv4_429_keeps_tag(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(40003);
	struct result r;
	struct reply_429 rep;
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	int i;

	c.vlan = 1;
	c.tci = 0x2064; /* PCP 1, VID 100 */
	leave_room_in_window(60, 3000);
	for (i = 0; i < 3; i++) {
		conn_send(e, &c, req, len, 0, &r);
		expect_action(&r, XDP_PASS, "tagged request under the limit");
		expect_untouched(&r, "tagged admitted request");
	}
	CHECK_EQ(stats_of(e, account_id(e, "alice"), 0).admitted, 3, "admitted tagged requests");
	conn_send(e, &c, req, len, 0, &r);
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK_EQ(r.out[12] << 8 | r.out[13], TP_ETH_P_8021Q, "429 TPID");
	CHECK_EQ(r.out[16] << 8 | r.out[17], TP_ETH_P_IP, "429 ethertype inside the tag");
}

static void test_vlan_ipv6_429_keeps_tag(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn6(40004);
	struct result r;
	struct reply_429 rep;
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	int i;

	c.vlan = 1;
	c.tci = 42;
	leave_room_in_window(60, 3000);
	for (i = 0; i < 3; i++) {
		conn_send(e, &c, req, len, 0, &r);
		expect_action(&r, XDP_PASS, "tagged IPv6 request under the limit");
	}
	conn_send(e, &c, req, len, 0, &r);
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK_EQ(r.out[16] << 8 | r.out[17], TP_ETH_P_IPV6, "429 ethertype inside the tag");
}

/* ---- a reload (rls_apply_table again) keeps the counters ---- */

static void test_reload_keeps_counters(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(49001), d = conn4(49002);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct rls_apply_result res;
	__u32 alice = account_id(e, "alice"), zero = 0, before, after;
	struct rls_stats st;
	struct result r;

	leave_room_in_window(60, 5000);
	CHECK(bpf_map_lookup_elem(e->maps.active, &zero, &before) == 0, "rls_active lookup");
	rejected_on(e, &c, req, len, &r);
	CHECK(env_apply(e, table_default, &res) == 0, "reload: %s", e->why);
	CHECK(bpf_map_lookup_elem(e->maps.active, &zero, &after) == 0, "rls_active lookup");
	CHECK_EQ(after, before ^ 1, "live generation after the reload");
	CHECK_EQ(res.generation, after, "rls_apply_result.generation");
	CHECK_EQ(account_id(e, "alice"), alice, "alice's account id across the reload");
	conn_send(e, &d, req, len, 0, &r);
	expect_429(&r, "alice over rpm 3 after a reload");
	st = stats_of(e, alice, 0);
	CHECK_EQ(st.admitted, 3, "alice admitted across the reload");
	CHECK_EQ(rejected_total(&st), 2, "alice rejected across the reload");
	/* The same table under the new generation still identifies everyone. */
	expect_charged(e, 49003, "x-api-key: " KEY_HASHED "\r\n", "hashed");
}

/* The row of rls_stats_rows that (account, "*") counts in; -1: none yet. */
static long stats_row_of(struct env *e, __u32 account)
{
	struct rls_stats_key key = { .account = account, .model = RLS_MODEL_OTHER };
	__u32 row;

	return bpf_map_lookup_elem(e->maps.stats, &key, &row) ? -1 : (long)row;
}

/*
 * A reload that removes an account gives its counts' row back (user/stats_rows.c): zeroed,
 * in rls_stats_free, where the next new (account, model) takes it, counting from zero. The
 * accounts kept keep theirs, and go on counting in them.
 */
static void test_reload_gives_back_removed_rows(void **state)
{
	struct env *e = need_env(state);
	static const char line[] = "  'hashed':  {'tier': 'small',  'keys': ['sha256:" SHA_HASHED "']},";
	char table[sizeof(table_default)];
	const char *at = strstr(table_default, line);
	__u32 alice = account_id(e, "alice"), free_row;
	long alice_row, hashed_row;

	CHECK(at != NULL, "the default table names hashed as expected");
	snprintf(table, sizeof(table), "%.*s%s", (int)(at - table_default), table_default,
		 at + strlen(line));
	leave_room_in_window(60, 3000);
	expect_charged(e, 49101, BEARER(KEY_ALICE), "alice");
	expect_charged(e, 49102, "x-api-key: " KEY_HASHED "\r\n", "hashed");
	alice_row = stats_row_of(e, alice);
	hashed_row = stats_row_of(e, account_id(e, "hashed"));
	CHECK(alice_row >= 0 && hashed_row >= 0 && alice_row != hashed_row,
	      "rows of alice %ld and hashed %ld", alice_row, hashed_row);
	CHECK_EQ(stats_row_of(e, RLS_ACCOUNT_ANONYMOUS), -1, "no anonymous row yet");

	CHECK(env_apply(e, table, NULL) == 0, "reload without hashed: %s", e->why);
	CHECK(bpf_map_lookup_elem(e->maps.stats_free, NULL, &free_row) == 0,
	      "a row given back in rls_stats_free");
	CHECK_EQ(free_row, hashed_row, "the row given back is hashed's");
	CHECK_EQ(stats_row_of(e, alice), alice_row, "alice's row across the reload");
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 1, "alice's count across the reload");

	/* The key hashed had is nobody's now: the default tier's, counted in the row it gave. */
	expect_charged(e, 49103, "x-api-key: " KEY_HASHED "\r\n", NULL);
	CHECK_EQ(stats_row_of(e, RLS_ACCOUNT_ANONYMOUS), hashed_row, "the anonymous row");
	CHECK_EQ(stats_of(e, RLS_ACCOUNT_ANONYMOUS, RLS_MODEL_OTHER).admitted, 1,
		 "the anonymous row counts from zero");
	expect_charged(e, 49104, BEARER(KEY_ALICE), "alice");
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 2, "alice's count goes on");
}

/*
 * Every row taken: a request of a new pair is decided as ever, and goes uncounted (no entry in
 * rls_stats, no row written, next never past the end); a row given back is then taken.
 */
static void test_no_row_left_not_counted(void **state)
{
	struct env *e = need_env(state);
	__u32 alice = account_id(e, "alice"), zero = 0, all = RLS_MAX_STATS, next, row = 7;
	struct rls_stats *none = calloc((size_t)rls_nr_cpus(), sizeof(*none));

	CHECK(none != NULL, "out of memory");
	CHECK(bpf_map_update_elem(e->maps.stats_next, &zero, &all, BPF_ANY) == 0,
	      "every row handed out");
	leave_room_in_window(60, 3000);
	{
		struct conn c = conn4(49201);
		char req[1024];
		size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
		struct result r;

		conn_send(e, &c, req, len, 0, &r);
		expect_action(&r, XDP_PASS, "alice with no row left");
	}
	CHECK_EQ(stats_row_of(e, alice), -1, "alice has no row");
	CHECK(bpf_map_lookup_elem(e->maps.stats_next, &zero, &next) == 0, "rls_stats_next lookup");
	CHECK_EQ(next, RLS_MAX_STATS, "next after a try with none left");

	CHECK(bpf_map_update_elem(e->maps.stats_rows, &row, none, BPF_ANY) == 0, "row 7 zeroed");
	CHECK(bpf_map_update_elem(e->maps.stats_free, NULL, &row, BPF_ANY) == 0, "row 7 given back");
	free(none);
	expect_charged(e, 49202, BEARER(KEY_ALICE), "alice");
	CHECK_EQ(stats_row_of(e, alice), 7, "alice's row, the one given back");
}

/* ---- 8: exact across CPUs ---- */

#define EXACT_RUNS_PER_CPU 20000

struct worker {
	pthread_t thread;
	int prog_fd;
	int cpu;
	int index;
	int *go; /* 0: wait, 1: run, -1: give up */
	const char *req;
	size_t req_len;
	long pass, tx, other, errors;
	int wrong_cpu;
	char why[256];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t in[TP_MAX_FRAME], out[TP_MAX_FRAME];
	char client[32];
	int i;

	snprintf(client, sizeof(client), "198.18.20.%d", 1 + w->index);
	if (!pin_and_wait(w->cpu, w->go, w->why, sizeof(w->why)))
		return NULL;
	for (i = 0; i < EXACT_RUNS_PER_CPU; i++) {
		/* A connection per request: a rejected connection would drop the rest. */
		struct tp_spec s = {
			.saddr = client, .daddr = SERVER4, .sport = (uint16_t)(1024 + i),
			.dport = PORT, .seq = 1000u + (uint32_t)i * 977u, .ack = 1,
			.payload = w->req, .len = w->req_len,
		};
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_out = out,
			    .data_size_out = sizeof(out), .repeat = 1);
		size_t len = tp_build(&s, in, sizeof(in));

		opts.data_size_in = (__u32)len;
		if (bpf_prog_test_run_opts(w->prog_fd, &opts)) {
			w->errors++;
			continue;
		}
		if (opts.retval == XDP_PASS)
			w->pass++;
		else if (opts.retval == XDP_TX)
			w->tx++;
		else
			w->other++;
		if (sched_getcpu() != w->cpu)
			w->wrong_cpu++;
	}
	return NULL;
}

static void test_exact_across_cpus(void **state)
{
	struct env *e = need_env(state);
	struct rls_counter_key ck = { .model = RLS_MODEL_OTHER };
	struct rls_counter counter;
	struct rls_stats *per_cpu, total = { 0 };
	struct worker w[2];
	cpu_set_t allowed;
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_EXACT), NULL);
	int cpus[2], n = 0, cpu, attempt, i, r, ncpu = nr_cpus(), go, created, err;
	__u32 exact;
	__u64 day_before, day_after;

	CHECK(sched_getaffinity(0, sizeof(allowed), &allowed) == 0, "sched_getaffinity: %s",
	      strerror(errno));
	for (cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++)
		if (CPU_ISSET(cpu, &allowed))
			cpus[n++] = cpu;
	if (n < 2)
		fail_msg("only one CPU is available to this process: exactness across CPUs cannot "
			 "be shown (run on a machine with at least 2 CPUs)");

	for (attempt = 0;; attempt++) {
		CHECK(attempt < 3, "the run spanned a UTC day boundary 3 times");
		if (attempt) {
			env_close(e);
			CHECK(env_open(e, table_default) == 0, "reload: %s", e->why);
		}
		leave_room_in_window(86400, 60 * 1000);
		day_before = utc_ms() / 86400000;
		go = 0;
		err = 0;
		for (created = 0; created < 2; created++) {
			memset(&w[created], 0, sizeof(w[created]));
			w[created].prog_fd = e->prog_fd;
			w[created].cpu = cpus[created];
			w[created].index = created;
			w[created].go = &go;
			w[created].req = req;
			w[created].req_len = len;
			err = pthread_create(&w[created].thread, NULL, worker_main, &w[created]);
			if (err)
				break;
		}
		__atomic_store_n(&go, err ? -1 : 1, __ATOMIC_RELEASE);
		for (i = 0; i < created; i++)
			pthread_join(w[i].thread, NULL);
		CHECK(!err, "pthread_create: %s", strerror(err));
		day_after = utc_ms() / 86400000;
		if (day_after == day_before)
			break;
	}
	for (i = 0; i < 2; i++) {
		CHECK(!w[i].why[0], "worker %d: %s", i, w[i].why);
		CHECK_EQ(w[i].errors, 0, "bpf_prog_test_run_opts failures");
		CHECK_EQ(w[i].other, 0, "verdicts other than XDP_PASS / XDP_TX");
		CHECK_EQ(w[i].wrong_cpu, 0, "runs on a CPU other than the pinned one");
		printf("# worker on cpu %d: %ld admitted, %ld rejected\n", w[i].cpu, w[i].pass,
		       w[i].tx);
	}

	exact = account_id(e, "exact");
	per_cpu = calloc((size_t)ncpu, sizeof(*per_cpu));
	assert_non_null(per_cpu);
	{
		struct rls_stats_key key = { .account = exact, .model = RLS_MODEL_OTHER };
		__u32 row;

		CHECK(bpf_map_lookup_elem(e->maps.stats, &key, &row) == 0,
		      "no rls_stats entry for account exact");
		CHECK(bpf_map_lookup_elem(e->maps.stats_rows, &row, per_cpu) == 0,
		      "no row %u in rls_stats_rows", row);
	}
	for (i = 0; i < ncpu; i++) {
		total.admitted += per_cpu[i].admitted;
		for (r = 0; r < RLS_NR_REASONS; r++)
			total.rejected[r] += per_cpu[i].rejected[r];
	}
	for (i = 0; i < 2; i++) {
		struct rls_stats *s = &per_cpu[cpus[i]];

		unsigned long long seen = s->admitted + rejected_total(s);

		if ((long)seen != w[i].pass + w[i].tx) {
			free(per_cpu);
			fail_msg("cpu %d: rls_stats counts %llu outcomes, its worker saw %ld",
				 cpus[i], seen, w[i].pass + w[i].tx);
		}
	}
	free(per_cpu);
	CHECK_EQ(total.admitted, EXACT_RPD, "admitted over both CPUs (rpd limit)");
	CHECK_EQ(total.admitted + rejected_total(&total), 2 * EXACT_RUNS_PER_CPU,
		 "admitted + rejected over both CPUs (total runs)");
	CHECK_EQ(total.rejected[RLS_REASON_RPD], 2 * EXACT_RUNS_PER_CPU - EXACT_RPD,
		 "rejected[RLS_REASON_RPD]");
	CHECK_EQ(w[0].pass + w[1].pass, EXACT_RPD, "XDP_PASS verdicts");
	CHECK_EQ(w[0].tx + w[1].tx, 2 * EXACT_RUNS_PER_CPU - EXACT_RPD, "XDP_TX verdicts");
	ck.account = exact;
	CHECK(bpf_map_lookup_elem(e->maps.counters, &ck, &counter) == 0,
	      "no rls_counters entry for account exact");
	CHECK_EQ(counter.window_count[RLS_WINDOW_DAY], EXACT_RPD, "counter's day count");
}

/* ---- anonymous clients: per IPv6 prefix, and a full rls_anon_counters ---- */

static struct rls_counter_key anon_key(__u32 model, const char *ipv6)
{
	struct rls_counter_key key = { .account = RLS_ACCOUNT_ANONYMOUS, .model = model };

	if (ipv6)
		CHECK(inet_pton(AF_INET6, ipv6, key.client) == 1, "test bug: %s", ipv6);
	return key;
}

/* One anonymous GET from client on a new connection. */
static void send_anonymous(struct env *e, const char *client, uint16_t sport, struct result *r)
{
	char req[1024];
	size_t len = http_request(req, sizeof(req), "", NULL);
	struct conn c = strchr(client, ':') ? conn6(sport) : conn4(sport);

	c.client = client;
	conn_send(e, &c, req, len, 0, r);
}

static struct rls_counter anon_counter_of(struct env *e, const struct rls_counter_key *key,
					  const char *what)
{
	struct rls_counter c;

	CHECK(bpf_map_lookup_elem_flags(e->maps.anon_counters, key, &c, BPF_F_LOCK) == 0,
	      "no rls_anon_counters entry for %s", what);
	return c;
}

static __u32 minute_count(struct env *e, const struct rls_counter_key *key, const char *what)
{
	return anon_counter_of(e, key, what).window_count[RLS_WINDOW_MINUTE];
}

/* The default tier's rpm 2 is spent by the first two clients and refuses the third: one counter. */
static void expect_one_budget(struct env *e, const char *const clients[3], uint16_t sport,
			      const char *what)
{
	struct result r;
	int i;

	for (i = 0; i < 3; i++) {
		send_anonymous(e, clients[i], (uint16_t)(sport + i), &r);
		if (i < 2)
			expect_action(&r, XDP_PASS, what);
		else
			expect_429(&r, what);
	}
}

static void test_anonymous_ipv6_per_prefix(void **state)
{
	struct env *e = need_env(state);
	struct rls_counter_key net1 = anon_key(RLS_MODEL_OTHER, "2001:2:0:1::");
	struct rls_counter_key one = anon_key(RLS_MODEL_OTHER, "2001:2:0:1::a");
	struct result r;

	leave_room_in_window(60, 5000);
	expect_one_budget(e, (const char *const[]){ "2001:2:0:1::a", "2001:2:0:1:ffff:ffff:ffff:fffe",
						    "2001:2:0:1::c" },
			  49001, "three addresses of 2001:2:0:1::/64 (default tier rpm 2)");
	send_anonymous(e, "2001:2:0:2::a", 49004, &r);
	expect_action(&r, XDP_PASS, "a request from the next /64 (a budget of its own)");
	CHECK_EQ(minute_count(e, &net1, "2001:2:0:1::/64"), 2, "the /64's minute count");
	CHECK(bpf_map_lookup_elem(e->maps.anon_counters, &one, &(struct rls_counter){}) != 0,
	      "a per-address counter exists for 2001:2:0:1::a");
}

static void test_anonymous_ipv6_prefix_128_per_address(void **state)
{
	struct env *e = need_env(state);
	struct rls_counter_key one = anon_key(RLS_MODEL_OTHER, "2001:2:0:1::a");
	struct result r;
	int i;

	CHECK(env_apply(e, TABLE_HEAD TABLE_TIERS ", 'default_tier': 'anon',"
		       " 'anonymous_ipv6_prefix': 128}", NULL) == 0, "%s", e->why);
	leave_room_in_window(60, 5000);
	for (i = 0; i < 2; i++) {
		send_anonymous(e, "2001:2:0:1::a", (uint16_t)(49101 + i), &r);
		expect_action(&r, XDP_PASS, "request from 2001:2:0:1::a under rpm 2");
	}
	send_anonymous(e, "2001:2:0:1::b", 49103, &r);
	expect_action(&r, XDP_PASS, "the next address of the /64, counted on its own at /128");
	CHECK_EQ(minute_count(e, &one, "2001:2:0:1::a"), 2, "2001:2:0:1::a's own minute count");
}

/* A slot taken on the /64's counter is given back to it: TC and XDP find the same counter. */
static void test_anonymous_ipv6_prefix_slots(void **state)
{
	struct env *e = need_env(state);
	struct rls_counter_key net1 = anon_key(RLS_MODEL_OTHER, "2001:2:0:1::");
	char req[1024];
	size_t len = http_request(req, sizeof(req), "", "{\"model\":\"m\"}");
	struct conn a = conn6(49401), b = conn6(49402), c = conn6(49403);
	struct result r;

	CHECK(env_apply(e, TABLE_HEAD TABLE_TIERS ", 'default_tier': 'pair'}", NULL) == 0, "%s",
	      e->why);
	a.client = "2001:2:0:1::a";
	b.client = "2001:2:0:1::b";
	c.client = "2001:2:0:1::c";
	conn_send(e, &a, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "1st request of the /64 (concurrency 2)");
	conn_send(e, &b, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "2nd request of the /64, another address");
	CHECK_EQ(anon_counter_of(e, &net1, "the /64").slots_held, 2, "slots the /64 holds");
	conn_send(e, &c, req, len, 0, &r);
	check_concurrency_429(&r, 2);
	conn_send(e, &a, "", 0, TP_ACK | TP_FIN, &r);
	expect_action(&r, XDP_PASS, "client FIN");
	CHECK_EQ(anon_counter_of(e, &net1, "the /64").slots_held, 1,
		 "slots the /64 holds after one client's FIN");
}

/* Fill rls_anon_counters with made-up addresses (2001:2:ff00::/40) until it refuses more. */
static void fill_anonymous_counters(struct env *e)
{
	enum { CHUNK = 8192 };
	struct rls_counter_key *keys = calloc(CHUNK, sizeof(*keys));
	struct rls_counter *values = calloc(CHUNK, sizeof(*values));
	__u32 next = 0, i, count;
	int err = 0;

	CHECK(keys && values, "out of memory");
	while (!err) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);

		for (i = 0; i < CHUNK; i++) {
			keys[i] = anon_key(RLS_MODEL_OTHER, "2001:2:ff00::");
			memcpy(keys[i].client + 12, &(__u32){ htonl(next + i) }, 4);
		}
		count = CHUNK;
		err = bpf_map_update_batch(e->maps.anon_counters, keys, values, &count, &opts);
		next += count;
		CHECK(next <= RLS_MAX_ANON_COUNTERS, "rls_anon_counters took %u entries", next);
	}
	free(keys);
	free(values);
	CHECK(errno == E2BIG || errno == ENOMEM, "filling rls_anon_counters stopped at %u: %s",
	      next, strerror(errno));
	CHECK(next > RLS_MAX_ANON_COUNTERS - 64, "rls_anon_counters full after only %u", next);
}

static void test_overflow_counters_made_at_load(void **state)
{
	struct env *e = need_env(state);
	const char *models[] = { "gpt-x", "gpt-y", "gpt-big" };
	struct rls_counter_key key = anon_key(RLS_MODEL_OTHER, NULL);
	size_t i;

	minute_count(e, &key, "the overflow counter of \"*\"");
	for (i = 0; i < ARRAY_SIZE(models); i++) {
		key.model = model_id(e, models[i]);
		minute_count(e, &key, models[i]);
	}
}

static void test_full_anonymous_map_shares_overflow(void **state)
{
	struct env *e = need_env(state);
	struct rls_counter_key overflow = anon_key(RLS_MODEL_OTHER, NULL);
	struct rls_counter_key own = anon_key(RLS_MODEL_OTHER, NULL);
	struct result r;

	fill_anonymous_counters(e);
	leave_room_in_window(60, 5000);
	expect_one_budget(e, (const char *const[]){ "198.18.0.20", "2001:2:0:7::1", "198.18.0.21" },
			  49201, "new IPv4 and IPv6 clients of a full map (the overflow counter's rpm 2)");
	send_anonymous(e, "2001:2:0:8::1", 49204, &r);
	expect_429(&r, "another new IPv6 client: the overflow counter's rpm 2 is spent");
	CHECK_EQ(minute_count(e, &overflow, "the overflow counter"), 2, "overflow minute count");
	own.client[10] = own.client[11] = 0xff;
	inet_pton(AF_INET, "198.18.0.20", own.client + 12);
	CHECK(bpf_map_lookup_elem(e->maps.anon_counters, &own, &(struct rls_counter){}) != 0,
	      "a counter of its own for 198.18.0.20 in a full map");
	CHECK_EQ(packets_of(e, RLS_PKT_COUNTER_FULL), 0, "rls_packets[RLS_PKT_COUNTER_FULL]");
}

static void test_no_counter_at_all_refused(void **state)
{
	struct env *e = need_env(state);
	struct rls_counter_key overflow = anon_key(RLS_MODEL_OTHER, NULL);
	struct reply_429 rep;
	struct result r;
	struct rls_stats st;

	CHECK(bpf_map_delete_elem(e->maps.anon_counters, &overflow) == 0,
	      "deleting the overflow counter: %s", strerror(errno));
	fill_anonymous_counters(e);
	send_anonymous(e, "198.18.0.30", 49301, &r);
	check_429(&r, "Requests rate limit exceeded", 0, &rep);
	CHECK_EQ(rep.retry_after_ms, 1000, "retry-after-ms without a counter");
	send_anonymous(e, "2001:2:0:9::1", 49302, &r);
	expect_429(&r, "new IPv6 client, no counter to be had");
	CHECK_EQ(packets_of(e, RLS_PKT_COUNTER_FULL), 2, "rls_packets[RLS_PKT_COUNTER_FULL]");
	st = stats_of(e, RLS_ACCOUNT_ANONYMOUS, RLS_MODEL_OTHER);
	CHECK_EQ(st.admitted, 0, "anonymous admitted without a counter");
	CHECK_EQ(st.rejected[RLS_REASON_RPS], 2, "anonymous rejected[RLS_REASON_RPS]");
}

/* rls_counters with room for one counter: full at the second. */
static int one_counter(struct rlshape_bpf *skel)
{
	return bpf_map__set_max_entries(skel->maps.rls_counters, 1);
}

static int setup_one_counter(void **state)
{
	return setup_resized(state, table_default, one_counter);
}

/*
 * A full rls_counters (accounts with keys: no overflow counter to share) refuses the request
 * that needs a new counter, as a spent second would: a 429 without a limit, retry after a
 * second, counted refused_counter_full, never passed uncounted. An account whose counter
 * exists is still admitted.
 */
static void test_full_keyed_counters_refused(void **state)
{
	struct env *e = need_env(state);
	struct conn a = conn4(40701), b = conn4(40702);
	char req_alice[1024], req_hourly[1024];
	size_t alice_len = http_request(req_alice, sizeof(req_alice), BEARER(KEY_ALICE), NULL);
	size_t hourly_len = http_request(req_hourly, sizeof(req_hourly), BEARER(KEY_HOURLY), NULL);
	__u32 alice = account_id(e, "alice"), hourly = account_id(e, "hourly");
	struct reply_429 rep;
	struct rls_stats st;
	struct result r;

	leave_room_in_window(60, 5000);
	conn_send(e, &a, req_alice, alice_len, 0, &r);
	expect_action(&r, XDP_PASS, "alice's request, which takes the one counter");
	expect_untouched(&r, "alice's request");
	conn_send(e, &b, req_hourly, hourly_len, 0, &r);
	check_429(&r, "Requests rate limit exceeded", 0, &rep);
	CHECK_EQ(rep.retry_after_ms, 1000, "retry-after-ms without a counter");
	CHECK_EQ(packets_of(e, RLS_PKT_COUNTER_FULL), 1, "rls_packets[RLS_PKT_COUNTER_FULL]");
	st = stats_of(e, hourly, RLS_MODEL_OTHER);
	CHECK_EQ(st.admitted, 0, "hourly admitted without a counter");
	CHECK_EQ(st.rejected[RLS_REASON_RPS], 1, "hourly rejected[RLS_REASON_RPS]");
	conn_send(e, &a, req_alice, alice_len, 0, &r);
	expect_action(&r, XDP_PASS, "alice's next request, her counter there");
	expect_untouched(&r, "alice's next request");
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 2, "alice admitted");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		XDP_TEST(test_ipv4_admit_then_429),
		XDP_TEST(test_ipv6_admit_then_429),
		XDP_TEST(test_reused_load_starts_anew),
		XDP_TEST(test_vlan_ipv4_429_keeps_tag),
		XDP_TEST(test_vlan_ipv6_429_keeps_tag),
		XDP_TEST(test_concurrency_limit_and_close),
		XDP_TEST(test_concurrency_keepalive_one_slot),
		XDP_TEST(test_reload_keeps_counters),
		XDP_TEST(test_reload_gives_back_removed_rows),
		XDP_TEST(test_no_row_left_not_counted),
		XDP_TEST(test_exact_across_cpus),
		XDP_TEST(test_anonymous_ipv6_per_prefix),
		XDP_TEST(test_anonymous_ipv6_prefix_128_per_address),
		XDP_TEST(test_anonymous_ipv6_prefix_slots),
		XDP_TEST(test_overflow_counters_made_at_load),
		XDP_TEST(test_full_anonymous_map_shares_overflow),
		XDP_TEST(test_no_counter_at_all_refused),
		cmocka_unit_test_setup_teardown(test_full_keyed_counters_refused, setup_one_counter,
						teardown),
	};

	return xdp_suite_main("bpf/test_xdp_admit", NULL, 0, tests, ARRAY_SIZE(tests));
}
