// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The 429 the XDP program writes, under BPF_PROG_TEST_RUN: its headers for each kind of
 * limit, an honest retry-after, its id, its size; and the connection after it:
 * retransmissions answered alike, later data dropped, the client's ACK of it made a reset.
 */
#include "xdp_suite.h"

static void test_429_request_with_fin(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(45751);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct reply_429 rep;
	struct result r;
	int i;

	leave_room_in_window(60, 5000);
	for (i = 0; i < 3; i++) {
		struct conn o = conn4((uint16_t)(45752 + i));

		conn_send(e, &o, req, len, 0, &r);
		expect_action(&r, XDP_PASS, "request under the limit");
	}
	/* The client sends its request and closes its side at once. */
	conn_send(e, &c, req, len, TP_ACK | TP_PSH | TP_FIN, &r);
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
}

static void test_429_large_request(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(45701);
	char body[3200], req[3600];
	size_t len;
	struct reply_429 rep;
	struct result r;
	int i;

	len = http_request(req, sizeof(req), BEARER(KEY_ALICE),
			   long_body(body, sizeof(body), 2800, "\"model\":\"gpt-x\",", ""));
	CHECK(len > 2900, "test bug: request of %zu bytes", len);
	leave_room_in_window(60, 5000);
	for (i = 0; i < 3; i++) {
		conn_send(e, &c, req, len, 0, &r);
		expect_action(&r, XDP_PASS, "large request under the limit");
		expect_untouched(&r, "large admitted request");
	}
	conn_send(e, &c, req, len, 0, &r);
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK(r.out_len < r.in_len, "the 429 (%u bytes) is not shorter than the %zu-byte request",
	      r.out_len, r.in_len);
}

/* ---- 6: the 429 itself ---- */

/* The 429's HTTP bytes, as a string, from a result that is a 429. */
static const char *http_of(struct result *r, char *buf, size_t cap)
{
	const void *p = memmem(r->out, r->out_len, "HTTP/1.1 429", 12);
	size_t n = p ? r->out_len - (size_t)((const uint8_t *)p - r->out) : 0;

	CHECK(p != NULL, "no HTTP/1.1 429 in the reply");
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

/* SambaNova sends x-ratelimit-*-requests-day whenever an RPD limit applies: so does the 429. */
static void test_429_day_headers_where_rpd_applies(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(47051), d = conn4(47061), g = conn4(47071);
	char req[1024], http[2048], val[64], body[512];
	size_t len;
	struct result r;
	long reset;
	int i;

	/* A request of a realistic size: the -day headers fit the room XDP has to grow it. */
	snprintf(body, sizeof(body), "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
		 "\"content\":\"%0200d\"}]}", 0);
	len = http_request(req, sizeof(req), BEARER(KEY_ALICE), body);
	leave_room_in_window(60, 5000);
	for (i = 0; i < 4; i++)
		conn_send(e, &c, req, len, 0, &r); /* alice: rpm 3 and rpd 1000; the 4th is refused */
	http_of(&r, http, sizeof(http));
	CHECK(header_value(http, "x-ratelimit-limit-requests-day", val, sizeof(val)) &&
	      !strcmp(val, "1000"), "x-ratelimit-limit-requests-day: 1000, got %s", val);
	CHECK(header_value(http, "x-ratelimit-remaining-requests-day", val, sizeof(val)) &&
	      !strcmp(val, "997"), "x-ratelimit-remaining-requests-day: 997, got %s", val);
	CHECK(header_value(http, "x-ratelimit-reset-requests-day", val, sizeof(val)), "reset-day");
	reset = strtol(val, NULL, 10);
	CHECK(reset >= 1 && reset <= 86400 && val[strlen(val) - 1] == 's',
	      "x-ratelimit-reset-requests-day within a day, got %s", val);

	/* A bare GET is too small to grow by that much: the 429 leaves the -day headers out. */
	len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	conn_send(e, &g, req, len, 0, &r);
	http_of(&r, http, sizeof(http));
	CHECK(!strstr(http, "requests-day") && strstr(http, "x-ratelimit-limit-requests: 3"),
	      "a small request's 429: the request headers, no -day headers:\n%s", http);

	/* smooth: rpm 60 and no rpd, so no -day headers. */
	len = http_request(req, sizeof(req), BEARER(KEY_SMOOTH), NULL);
	for (i = 0; i < 2; i++)
		conn_send(e, &d, req, len, 0, &r);
	http_of(&r, http, sizeof(http));
	CHECK(!strstr(http, "requests-day"), "no -day header without rpd:\n%s", http);
}

/*
 * Where the -day headers stop fitting: a 429 carries them exactly when, with them, it is at
 * most RLS_SAFE_GROWTH bytes longer than the request's segment (the room XDP can grow a frame
 * that is an skb's own buffer). Requests of every size across that edge, a byte apart: none
 * with them is longer, and the smallest with them would not have fitted one byte smaller,
 * so none without them could have had them.
 */
static void test_429_day_headers_edge(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(47101);
	char req[1024], body[512], http[2048];
	struct tp_parsed p;
	size_t len, first_with = 0;
	long first_len = 0;
	struct result r;
	int pad, i, with = 0, without = 0;
	char why[256];

	leave_room_in_window(60, 10000);
	len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	for (i = 0; i < 3; i++) /* alice's rpm 3, spent; her rpd of 1000 applies */
		conn_send(e, &c, req, len, 0, &r);
	for (pad = 0; pad <= 320; pad++) {
		struct conn d = conn4((uint16_t)(47200 + pad));
		bool has_day;

		snprintf(body, sizeof(body), "{\"model\":\"m\",\"x\":\"%0*d\"}", pad, 0);
		len = http_request(req, sizeof(req), BEARER(KEY_ALICE), body);
		conn_send(e, &d, req, len, 0, &r);
		expect_action(&r, XDP_TX, "a request over alice's rpm");
		CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0, "429: %s", why);
		http_of(&r, http, sizeof(http));
		has_day = strstr(http, "x-ratelimit-remaining-requests-day: ") != NULL;
		if (has_day) {
			CHECK(p.len <= len + RLS_SAFE_GROWTH,
			      "a %zu-byte request's 429 of %u bytes has the -day headers", len, p.len);
			if (!first_with) {
				first_with = len;
				first_len = p.len;
			}
			with++;
		} else {
			CHECK(!first_with, "a %zu-byte request's 429 lost the -day headers that a "
			      "%zu-byte one had", len, first_with);
			without++;
		}
	}
	CHECK(with && without, "the sweep crossed the edge: %d with the -day headers, %d without",
	      with, without);
	CHECK(first_len > (long)(first_with - 1 + RLS_SAFE_GROWTH),
	      "the first 429 with the -day headers (%ld bytes, for %zu) would have fitted a "
	      "request one byte smaller", first_len, first_with);
	printf("# the -day headers from a %zu-byte request on (its 429: %ld bytes)\n", first_with,
	       first_len);
}

static void test_429_window_limit(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(47001);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct reply_429 rep;
	struct result r;
	struct rls_stats st;
	int i;

	leave_room_in_window(60, 5000);
	for (i = 0; i < 3; i++) {
		conn_send(e, &c, req, len, 0, &r);
		expect_action(&r, XDP_PASS, "request under rpm 3");
	}
	conn_send(e, &c, req, len, 0, &r);
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK_EQ(rep.remaining, 0, "x-ratelimit-remaining-requests at the rpm limit");
	CHECK(rep.retry_after >= 1 && rep.retry_after <= 60, "retry-after %ld for an rpm window",
	      rep.retry_after);
	CHECK(!strcmp(rep.should_retry, "true"), "x-should-retry \"%s\" within a minute",
	      rep.should_retry);
	st = stats_of(e, account_id(e, "alice"), 0);
	CHECK_EQ(st.rejected[RLS_REASON_RPM], 1, "rls_stats rejected[RLS_REASON_RPM]");
}

static void test_429_hourly_limit(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn6(47002);
	char req[1024];
	size_t len = http_request(req, sizeof(req), "x-api-key: " KEY_HOURLY "\r\n",
				  "{\"model\":\"m\",\"messages\":[]}");
	struct reply_429 rep;
	struct result r;

	c.tcp_options = 1; /* the 429 must not keep them */
	leave_room_in_window(3600, 5000);
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "1st request under rph 2");
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "2nd request under rph 2");
	conn_send(e, &c, req, len, 0, &r);
	check_429(&r, "Requests rate limit exceeded", 2, &rep);
	CHECK_EQ(rep.remaining, 0, "x-ratelimit-remaining-requests at the rph limit");
	CHECK(rep.retry_after >= 1 && rep.retry_after <= 3600, "retry-after %ld for an rph window",
	      rep.retry_after);
	if (rep.retry_after_ms > 60000)
		CHECK(!strcmp(rep.should_retry, "false"), "x-should-retry \"%s\" for an hour window "
		      "%ld ms away", rep.should_retry, rep.retry_after_ms);
	CHECK_EQ(stats_of(e, account_id(e, "hourly"), 0).rejected[RLS_REASON_RPH], 1,
		 "rls_stats rejected[RLS_REASON_RPH]");
}

static void test_429_per_second_limit(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(47003);
	char req[1024];
	size_t len = http_request(req, sizeof(req), "api-key: " KEY_PERSEC "\r\n", NULL);
	struct reply_429 rep;
	struct result r;
	int attempt;

	/* Three requests inside one second; retried if a second boundary got in between. */
	for (attempt = 0; attempt < 5; attempt++) {
		__u64 t0;

		leave_room_in_window(1, 600);
		t0 = utc_ms() / 1000;
		conn_send(e, &c, req, len, 0, &r);
		expect_action(&r, XDP_PASS, "1st request under rps 2");
		conn_send(e, &c, req, len, 0, &r);
		conn_send(e, &c, req, len, 0, &r);
		if (utc_ms() / 1000 == t0)
			break;
		usleep(1100 * 1000);
	}
	check_429(&r, "Requests rate limit exceeded", 2, &rep);
	CHECK_EQ(rep.retry_after, 1, "retry-after for an rps window");
	CHECK(rep.retry_after_ms <= 1000, "retry-after-ms %ld for an rps window",
	      rep.retry_after_ms);
	CHECK_EQ(stats_of(e, account_id(e, "persec"), 0).rejected[RLS_REASON_RPS], 1,
		 "rls_stats rejected[RLS_REASON_RPS]");
}

static void test_429_burst_smoothing(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(47004);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_SMOOTH), NULL);
	struct reply_429 rep;
	struct result r;

	c.vlan = 1;
	c.tci = 300;
	/* rpm 60, default burst 1: one request per second; the entry's shape is not XDP's. */
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "1st request under rpm 60");
	conn_send(e, &c, req, len, 0, &r);
	check_429(&r, "Request rate increased too quickly", 60, &rep);
	CHECK_EQ(rep.retry_after, 1, "retry-after under a 1 s smoothing interval");
	CHECK(rep.retry_after_ms <= 1000, "retry-after-ms %ld > the 1 s interval",
	      rep.retry_after_ms);
	CHECK(rep.remaining >= 1, "x-ratelimit-remaining-requests %ld: rpm 60 is not used up",
	      rep.remaining);
	CHECK_EQ(stats_of(e, account_id(e, "smooth"), 0).rejected[RLS_REASON_BURST], 1,
		 "rls_stats rejected[RLS_REASON_BURST]");
}

/*
 * Retry-After must be honest: a client that waits retry-after-ms and retries is admitted
 * (when nothing else was sent in between).
 */
static void retry_after_admits(struct env *e, struct conn *c, const char *req, size_t len,
			       const struct reply_429 *rep, const char *what, const char *bug)
{
	struct result r;

	usleep((useconds_t)(rep->retry_after_ms * 1000 + 30 * 1000));
	conn_send(e, c, req, len, 0, &r);
	if (r.action != XDP_PASS)
		fail_msg("%s%s: retried %ld ms later as retry-after-ms said, the request got %s "
			 "again%s", bug ? "BUG: " : "", what, rep->retry_after_ms, xdp_name(r.action),
			 bug ? bug : "");
}

static void test_retry_after_is_honest(void **state)
{
	struct env *e = need_env(state);
	char req[1024];
	size_t len;
	struct reply_429 rep;
	struct result r;
	struct conn c;

	/* Smoothing: rpm 60, burst 1. */
	c = conn4(47101);
	len = http_request(req, sizeof(req), BEARER(KEY_SMOOTH), NULL);
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "1st request under rpm 60");
	c = conn4(47102);
	conn_send(e, &c, req, len, 0, &r);
	check_429(&r, "Request rate increased too quickly", 60, &rep);
	c = conn4(47103);
	retry_after_admits(e, &c, req, len, &rep, "rpm 60 smoothing", NULL);

	/* A window: rps 2. */
	len = http_request(req, sizeof(req), BEARER(KEY_PERSEC), NULL);
	leave_room_in_window(1, 600);
	c = conn4(47104);
	conn_send(e, &c, req, len, 0, &r);
	conn_send(e, &c, req, len, 0, &r);
	c = conn4(47105);
	conn_send(e, &c, req, len, 0, &r);
	check_429(&r, "Requests rate limit exceeded", 2, &rep);
	c = conn4(47106);
	retry_after_admits(e, &c, req, len, &rep, "rps 2 window", NULL);
}

static void test_retry_after_covers_every_exceeded_window(void **state)
{
	struct env *e = need_env(state);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_TIGHT), NULL);
	struct reply_429 rep;
	struct result r;
	struct conn c;

	/* Tier tight: rps 1, rph 2. Two requests, each in its own second, use up the hour. */
	leave_room_in_window(3600, 10000);
	c = conn4(47201);
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "1st request of tier tight");
	usleep((useconds_t)((1000 - utc_ms() % 1000 + 20) * 1000));
	c = conn4(47202);
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "2nd request of tier tight, a second later");
	/* A third in the same second: over rps 1 and over rph 2. */
	c = conn4(47203);
	conn_send(e, &c, req, len, 0, &r);
	check_429(&r, "Requests rate limit exceeded", -1, &rep);
	if (rep.retry_after <= 1)
		fail_msg("BUG: a request over both rps 1 and rph 2 got retry-after %ld "
			 "(retry-after-ms %ld, x-ratelimit-limit-requests %ld): only the first "
			 "exceeded window is reported (bpf/lib/policy.h rls_admit() keeps the first "
			 "reason and its reset), so a client that obeys it is refused again for "
			 "the rest of the hour; the reset must be the latest over every exceeded "
			 "window and the smoothing", rep.retry_after, rep.retry_after_ms, rep.limit);
	{
		__u64 to_hour_end = 3600000 - utc_ms() % 3600000;

		CHECK(rep.retry_after_ms + 2000 >= (long)to_hour_end &&
		      rep.retry_after_ms <= (long)to_hour_end + 2000,
		      "retry-after-ms %ld, the hour window ends in %llu ms", rep.retry_after_ms,
		      (unsigned long long)to_hour_end);
	}
}

/* ---- 7: retransmissions, and the connection after a 429 ---- */

static void test_retransmit_counted_once(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(48001);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	__u32 alice = account_id(e, "alice");
	struct result r;
	int i;

	for (i = 0; i < 3; i++) {
		struct conn again = c;

		conn_send(e, &again, req, len, 0, &r);
		expect_action(&r, XDP_PASS, "request sent (again) with the same seq");
	}
	CHECK_EQ(stats_of(e, alice, 0).admitted, 1, "admitted for one request sent 3 times");
	CHECK_EQ(packets_of(e, RLS_PKT_RETRANSMIT), 2, "rls_packets[RLS_PKT_RETRANSMIT]");
	/* The next request on the connection is a new one. */
	c.seq += (uint32_t)len;
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "next request on the connection");
	CHECK_EQ(stats_of(e, alice, 0).admitted, 2, "admitted after the next request");
}

static void test_rejected_retransmit_same_429(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(48101);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	__u32 alice = account_id(e, "alice");
	struct result first, again;
	struct reply_429 rep;
	struct rls_stats st;
	int i;

	leave_room_in_window(60, 5000);
	rejected_on(e, &c, req, len, &first);
	check_429(&first, "Requests rate limit exceeded", 3, &rep);
	for (i = 0; i < 3; i++) {
		struct conn resend = c;

		resend.seq -= (uint32_t)len;
		usleep(20 * 1000); /* time moves on: the stored answer must not */
		conn_send(e, &resend, req, len, 0, &again);
		expect_action(&again, XDP_TX, "retransmitted rejected request");
		CHECK(again.out_len == first.out_len && !memcmp(again.out, first.out, first.out_len),
		      "the retransmission's 429 differs from the first (%u vs %u bytes)",
		      again.out_len, first.out_len);
	}
	st = stats_of(e, alice, 0);
	CHECK_EQ(st.admitted, 3, "admitted");
	CHECK_EQ(rejected_total(&st), 1, "rejected: retransmissions are not charged again");
	CHECK_EQ(packets_of(e, RLS_PKT_REPLY_SENT), 4, "rls_packets[RLS_PKT_REPLY_SENT]");
}

static void test_data_after_429_dropped(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(48201);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	static const char more[] = "{\"more\":\"body bytes of the rejected request\"}";
	struct rls_stats st;
	struct result r;
	__u64 dropped = 0;

	rejected_on(e, &c, req, len, &r);
	/* More of the rejected request, still acknowledging only what it did before. */
	conn_send(e, &c, more, sizeof(more) - 1, 0, &r);
	expect_action(&r, XDP_DROP, "client data after the 429");
	dropped++;
	/* A new request start pipelined behind it: also kept from the upstream. */
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_DROP, "pipelined request after the 429");
	dropped++;
	CHECK_EQ(packets_of(e, RLS_PKT_DROPPED), dropped, "rls_packets[RLS_PKT_DROPPED]");
	st = stats_of(e, account_id(e, "alice"), 0);
	CHECK_EQ(rejected_total(&st), 1, "rejected: dropped data is not charged");
}

/* Our FIN, answering the client's: right after the 429, acknowledging the client's FIN. */
static void check_fin_answer(const struct result *r, const struct conn *c, uint32_t fin_seq)
{
	struct tp_parsed p;
	char why[256];

	expect_action(r, XDP_TX, "the client's FIN after the 429");
	CHECK(tp_parse(r->out, r->out_len, &p, why, sizeof(why)) == 0, "our FIN: %s", why);
	CHECK_EQ(p.flags, TP_ACK | TP_FIN, "our FIN's flags (ACK|FIN)");
	CHECK_EQ(p.seq, fin_seq, "our FIN's seq: right after the 429");
	CHECK_EQ(p.ack, c->seq + 1, "our FIN acknowledges the client's");
	CHECK_EQ(p.len, 0, "our FIN carries no data");
	CHECK(p.ip_csum_ok && p.tcp_csum_ok, "our FIN's checksums are wrong");
	CHECK_EQ(p.sport, c->dport, "our FIN's source port");
}

/*
 * The teardown after a 429 that closes: the client's FIN is answered with ours (so it never
 * sends it again), and the upstream is reset exactly once, whatever order the client's ACK
 * and FIN come in; a client RST resets it too.
 */
static void test_teardown_after_429(void **state)
{
	struct env *e = need_env(state);
	struct conn rounds[3] = { conn6(48301), conn4(48302), conn4(48303) };
	static const char *const what[3] = {
		"ACK of the 429 and FIN in one segment (IPv6)",
		"ACK of the 429, then FIN (IPv4)",
		"client RST after the 429 (IPv4)",
	};
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct result rej, r;
	struct tp_parsed p429;
	char why[256];
	uint32_t request_seq, end_429;
	int round;

	for (round = 0; round < 3; round++) {
		struct conn *cc = &rounds[round];
		struct rls_flow_key k = conn_flow_key(cc);
		struct rls_flow f;

		if (round) {
			/* A fresh budget for the next round: reload. */
			env_close(e);
			CHECK(env_open(e, table_default) == 0, "reload: %s", e->why);
		}
		printf("# %s\n", what[round]);
		request_seq = cc->seq;
		rejected_on(e, cc, req, len, &rej);
		CHECK(tp_parse(rej.out, rej.out_len, &p429, why, sizeof(why)) == 0, "429: %s", why);
		end_429 = p429.seq + (uint32_t)p429.len;
		cc->ack = end_429;
		if (round == 0) {
			conn_send(e, cc, NULL, 0, TP_ACK | TP_FIN, &r);
			check_fin_answer(&r, cc, end_429);
			CHECK_EQ(packets_of(e, RLS_PKT_RESET_UPSTREAM), 0, "no reset before the last ACK");
			/* The client's last ACK, of our FIN: the upstream's reset. */
			cc->seq += 1;
			cc->ack = end_429 + 1;
			conn_send(e, cc, NULL, 0, TP_ACK, &r);
			expect_action(&r, XDP_PASS, "the client's last ACK");
			check_upstream_reset(&r, cc, request_seq);
		} else if (round == 1) {
			conn_send(e, cc, NULL, 0, TP_ACK, &r);
			expect_action(&r, XDP_PASS, "the client's ACK of the 429");
			check_upstream_reset(&r, cc, request_seq);
			conn_send(e, cc, NULL, 0, TP_ACK | TP_FIN, &r);
			check_fin_answer(&r, cc, end_429);
			cc->seq += 1;
			cc->ack = end_429 + 1;
			conn_send(e, cc, NULL, 0, TP_ACK, &r);
			expect_action(&r, XDP_DROP, "the client's last ACK: the upstream is reset already");
		} else {
			conn_send(e, cc, NULL, 0, TP_RST | TP_ACK, &r);
			expect_action(&r, XDP_PASS, "the client's RST");
			check_upstream_reset(&r, cc, request_seq);
		}
		CHECK_EQ(packets_of(e, RLS_PKT_RESET_UPSTREAM), 1, "rls_packets[RESET_UPSTREAM]: once");
		CHECK(bpf_map_lookup_elem(e->maps.flows, &k, &f) != 0, "the flow is gone");
		/* The flow is forgotten: a late ACK passes untouched. */
		conn_send(e, cc, NULL, 0, TP_ACK, &r);
		expect_action(&r, XDP_PASS, "ACK after the teardown");
		expect_untouched(&r, "ACK after the teardown");
	}
}

/* A new connection on c's ports: its SYN, then its first request, admitted (exact's key). */
static void new_connection_admitted(struct env *e, struct conn *c, const char *what)
{
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_EXACT), NULL);
	struct rls_stats before, after;
	struct rls_flow_key k = conn_flow_key(c);
	struct rls_flow f;
	struct result r;

	c->seq += 100000; /* a new connection, a new sequence space */
	c->ack = 0;
	conn_send(e, c, NULL, 0, TP_SYN, &r);
	expect_action(&r, XDP_PASS, what);
	expect_untouched(&r, what);
	CHECK(bpf_map_lookup_elem(e->maps.flows, &k, &f) != 0, "%s: the old flow is gone", what);
	c->seq += 1;
	c->ack = 7777;
	before = stats_of(e, account_id(e, "exact"), RLS_MODEL_OTHER);
	conn_send(e, c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "the new connection's first request, under its limit");
	expect_untouched(&r, "the new connection's first request");
	after = stats_of(e, account_id(e, "exact"), RLS_MODEL_OTHER);
	CHECK_EQ(after.admitted, before.admitted + 1, "the new connection's request is decided");
}

/*
 * A SYN on the ports of a connection a closing 429 refused, before the upstream's reset (the
 * client's ACK of the 429 was lost). The upstream still holds the old connection: a client
 * that could clear the flow with a SYN could then send what the upstream reads as the rest of
 * the refused request, past the parser. So the flow stays and refuses what follows; the SYN
 * goes on untouched (the server answers it with a challenge ACK). The client's RST to that
 * resets the upstream, and its next SYN starts a new connection.
 */
static void test_syn_after_429_before_reset(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(48401), old;
	struct rls_flow_key k = conn_flow_key(&c);
	char req[1024], sneak[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	size_t sneak_len = http_request(sneak, sizeof(sneak), BEARER(KEY_EXACT), NULL);
	struct rls_stats before, after;
	uint32_t request_seq = c.seq;
	struct rls_flow f;
	struct result r;

	rejected_on(e, &c, req, len, &r);
	old = c;
	c.seq += 100000;
	c.ack = 0;
	conn_send(e, &c, NULL, 0, TP_SYN, &r);
	expect_action(&r, XDP_PASS, "a SYN on the ports of the refused connection");
	expect_untouched(&r, "the SYN");
	/* More on the old connection, as a request of another key: still refused. */
	before = stats_of(e, account_id(e, "exact"), RLS_MODEL_OTHER);
	conn_send(e, &old, sneak, sneak_len, 0, &r);
	after = stats_of(e, account_id(e, "exact"), RLS_MODEL_OTHER);
	CHECK_EQ(after.admitted, before.admitted, "nothing after the SYN is admitted");
	expect_action(&r, XDP_DROP, "data on the refused connection after the SYN");
	CHECK(bpf_map_lookup_elem(e->maps.flows, &k, &f) == 0 && f.state == RLS_FLOW_REJECTED,
	      "the refused connection's flow stays");
	/* The client's RST, answering the server's challenge ACK: the upstream's reset. */
	old.ack = 0;
	conn_send(e, &old, NULL, 0, TP_RST, &r);
	expect_action(&r, XDP_PASS, "the client's RST");
	check_upstream_reset(&r, &old, request_seq);
	new_connection_admitted(e, &c, "the client's SYN again, after the reset");
}

/*
 * A SYN on the ports of a connection a closing 429 refused, after the upstream's reset: the
 * flow only waited for the client's last ACK, which was lost, and the client (a NAT, or
 * tcp_tw_reuse) reuses the ports. The SYN must reach the server untouched and the new
 * connection be followed afresh: dropped, as data after the 429 is, it would hold every
 * connection on those ports until the flow expired.
 */
static void test_syn_after_upstream_reset_starts_afresh(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(48501);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	uint32_t request_seq = c.seq;
	struct tp_parsed p429;
	struct result r;
	char why[256];

	rejected_on(e, &c, req, len, &r);
	CHECK(tp_parse(r.out, r.out_len, &p429, why, sizeof(why)) == 0, "429: %s", why);
	c.ack = p429.seq + (uint32_t)p429.len;
	conn_send(e, &c, NULL, 0, TP_ACK, &r);
	check_upstream_reset(&r, &c, request_seq);
	CHECK_EQ(packets_of(e, RLS_PKT_RESET_UPSTREAM), 1, "rls_packets[RESET_UPSTREAM]");
	new_connection_admitted(e, &c, "a new connection's SYN on the ports of a refused one");
	CHECK_EQ(packets_of(e, RLS_PKT_RESET_UPSTREAM), 1, "no reset for the new connection");
}

/* ---- the 429's id, and its size for the smallest request ---- */

static void test_429_request_ids_unique(void **state)
{
	struct env *e = need_env(state);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	char ids[4][64];
	struct reply_429 rep;
	struct result r;
	int i, j;

	leave_room_in_window(60, 5000);
	for (i = 0; i < 3; i++) {
		struct conn c = conn4((uint16_t)(48201 + i));

		conn_send(e, &c, req, len, 0, &r);
		expect_action(&r, XDP_PASS, "request under rpm 3");
	}
	for (i = 0; i < 4; i++) {
		struct conn c = conn4((uint16_t)(48211 + i));

		conn_send(e, &c, req, len, 0, &r);
		check_429(&r, "Requests rate limit exceeded", 3, &rep);
		snprintf(ids[i], sizeof(ids[i]), "%s", rep.request_id);
		for (j = 0; j < i; j++)
			CHECK(strcmp(ids[i], ids[j]), "rejections %d and %d share x-request-id %s", j,
			      i, ids[i]);
	}
}

/*
 * The smallest request the parser takes, over a day limit: its 429 is the longest the frame
 * must grow by (a day's wait in every number, x-should-retry: false). Without the -day
 * headers it must fit the headroom plus the tail room XDP has on veth and generic XDP.
 */
static void test_429_tiny_get_fits(void **state)
{
	static const char tiny[] = "GET / HTTP/1.1\r\n\r\n";
	struct env *e = need_env(state);
	struct conn c = conn4(48301);
	char http[TP_MAX_FRAME + 1];
	struct reply_429 rep;
	struct result r;
	long growth;

	c.client = DAY4_CLIENT;
	/* A day's wait: not in the last minute and a half of a UTC day, whose 429 says less. */
	leave_room_in_window(86400, 90 * 1000);
	conn_send(e, &c, tiny, sizeof(tiny) - 1, 0, &r);
	expect_action(&r, XDP_PASS, "tiny GET under rpd 1");
	conn_send(e, &c, tiny, sizeof(tiny) - 1, 0, &r);
	check_429(&r, "Requests rate limit exceeded", 1, &rep);
	CHECK(!strcmp(rep.should_retry, "false"), "x-should-retry \"%s\" for a day window",
	      rep.should_retry);
	CHECK(rep.retry_after > 60, "retry-after %ld for an rpd window", rep.retry_after);
	http_of(&r, http, sizeof(http));
	CHECK(!strstr(http, "requests-day"), "a tiny GET's 429 has -day headers:\n%s", http);
	growth = (long)r.out_len - (long)r.in_len;
	CHECK(growth <= XDP_PACKET_HEADROOM + RLS_SAFE_GROWTH,
	      "the tiny GET's 429 grows the frame by %ld bytes, more than the %d of headroom and "
	      "%d of tail room XDP can give", growth, XDP_PACKET_HEADROOM, RLS_SAFE_GROWTH);
	printf("# tiny GET (%zu bytes): 429 of %u bytes, the frame grows by %ld of %d\n",
	       sizeof(tiny) - 1, r.out_len, growth, XDP_PACKET_HEADROOM + RLS_SAFE_GROWTH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		XDP_TEST(test_429_day_headers_where_rpd_applies),
		XDP_TEST(test_429_day_headers_edge),
		XDP_TEST(test_429_large_request),
		XDP_TEST(test_429_request_with_fin),
		XDP_TEST(test_429_window_limit),
		XDP_TEST(test_429_hourly_limit),
		XDP_TEST(test_429_per_second_limit),
		XDP_TEST(test_429_burst_smoothing),
		XDP_TEST(test_retry_after_is_honest),
		XDP_TEST(test_retry_after_covers_every_exceeded_window),
		XDP_TEST(test_retransmit_counted_once),
		XDP_TEST(test_rejected_retransmit_same_429),
		XDP_TEST(test_data_after_429_dropped),
		XDP_TEST(test_teardown_after_429),
		XDP_TEST(test_syn_after_429_before_reset),
		XDP_TEST(test_syn_after_upstream_reset_starts_afresh),
		XDP_TEST(test_429_request_ids_unique),
		XDP_TEST(test_429_tiny_get_fits),
	};

	return xdp_suite_main("bpf/test_xdp_reply", NULL, 0, tests, ARRAY_SIZE(tests));
}
