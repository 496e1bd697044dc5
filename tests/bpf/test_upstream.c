// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The upstream side's TC egress program (rlshape_upstream) under BPF_PROG_TEST_RUN: a local
 * proxy's requests to the upstream, admitted untouched or refused. A refused request's
 * segment must become the 429 the proxy takes as the upstream's (TC_ACT_REDIRECT, to the
 * interface's ingress; its bytes checked as XDP's are, checksums recomputed), after a copy of
 * it cut to a reset left for the upstream at the sequence number the upstream expects (read
 * back off loopback, where bpf_clone_redirect() sends it under BPF_PROG_TEST_RUN). Each case
 * is a row: how the over-limit request is cut into segments (one, split, a GSO super-packet
 * of several MSS, with timestamps, IPv6), and what must come of each segment.
 */
#include "xdp_suite.h"
#include "loopback_tap.h"

#define TC_ACT_SHOT     2
#define TC_ACT_REDIRECT 7

/* The proxy's connection to the upstream: the proxy is the client of the XDP suites. */
static int upstream_fd(struct env *e)
{
	return bpf_program__fd(e->skel->progs.rlshape_upstream);
}

/*
 * One segment of c through the upstream program; c->seq moves past it. gso_size: the skb is
 * a GSO super-packet of segments of that many bytes (0: none).
 */
static int proxy_sends(struct env *e, struct conn *c, const char *payload, size_t len,
		       uint8_t flags, uint32_t gso_size, struct result *r)
{
	struct tp_spec s = spec_of(c, payload, len, flags);
	struct __sk_buff skb = { 0 };
	int err;

	r->spec = s;
	r->spec.payload = NULL;
	r->in_len = tp_build(&s, r->in, sizeof(r->in));
	CHECK(r->in_len > 0, "test bug: cannot build the frame");
	skb.gso_size = gso_size;
	skb.gso_segs = gso_size ? (uint32_t)((len + gso_size - 1) / gso_size) : 0;
	err = env_run(upstream_fd(e), r->in, r->in_len, r->out, TP_MAX_FRAME, &r->out_len, &skb,
		      sizeof(skb), &r->action);
	if (err)
		fail_msg("bpf_prog_test_run_opts on a %zu-byte frame: %s", r->in_len, strerror(-err));
	c->seq += (uint32_t)len + !!(flags & TP_FIN);
	return r->action;
}

static void expect_tc(const struct result *r, int want, const char *what)
{
	if (r->action != want)
		fail_msg("%s: the upstream program returned %d, expected %d", what, r->action, want);
}

/*
 * The reset that left for the upstream, read off loopback: checked as XDP's is
 * (check_upstream_reset()) against the request's segment r, and without TCP options.
 */
static void expect_upstream_reset(int tap, const struct result *r, const struct conn *c,
				  uint32_t seq)
{
	struct result *sent = calloc(1, sizeof(*sent));
	struct tp_parsed p;

	CHECK(sent, "out of memory");
	memcpy(sent->in, r->in, r->in_len);
	sent->in_len = r->in_len;
	sent->out_len = (uint32_t)tapped(tap, TP_RST, sent->out, sizeof(sent->out), &p);
	check_upstream_reset(sent, c, seq);
	free(sent);
	CHECK_EQ(p.doff, 20, "reset's TCP header (no options)");
}

/* The connection's flow is gone from rls_flows. */
static void expect_flow_gone(struct env *e, const struct conn *c, const char *what)
{
	struct rls_flow_key key = conn_flow_key(c);
	struct rls_flow flow;

	CHECK(bpf_map_lookup_elem(e->maps.flows, &key, &flow) != 0, "%s: the flow is still there",
	      what);
}

static __u64 up_packets(struct env *e, __u32 event)
{
	return packets_of(e, event);
}

/* ---- the rows ---- */

/* How the refused request is cut into segments. */
struct upstream_case {
	const char *name;
	int ipv6;
	int timestamps;       /* TCP timestamp options on every segment */
	size_t body;          /* the request's body, in bytes: its size */
	size_t split_at;      /* > 0: sent as two segments, the first this many bytes */
	uint32_t gso_size;    /* > 0: its last segment a GSO super-packet of this MSS */
	uint16_t sport;
};

static const struct upstream_case rows[] = {
	{ .name = "one segment", .sport = 41001 },
	{ .name = "one segment, IPv6", .ipv6 = 1, .sport = 41011 },
	{ .name = "with timestamps", .timestamps = 1, .sport = 41021 },
	{ .name = "split over two segments", .body = 600, .split_at = 100, .sport = 41031 },
	{ .name = "split inside the body", .body = 600, .split_at = 300, .sport = 41041 },
	{ .name = "GSO super-packet of 3 MSS", .body = 2600, .gso_size = 1000, .sport = 41051 },
	{ .name = "split, then GSO, IPv6, timestamps", .ipv6 = 1, .timestamps = 1, .body = 3000,
	  .split_at = 200, .gso_size = 1200, .sport = 41061 },
};

static struct conn row_conn(const struct upstream_case *row, uint16_t sport)
{
	struct conn c = row->ipv6 ? conn6(sport) : conn4(sport);

	c.tcp_options = row->timestamps;
	return c;
}

/* Three admitted requests of alice (rpm 3, burst 3), then the row's request: refused. */
static void run_row(struct env *e, const struct upstream_case *row)
{
	char body[4096], req[4800], what[128];
	struct reply_429 rep;
	struct result r;
	struct conn c = row_conn(row, row->sport);
	uint32_t start, ack_before;
	size_t len, i;
	int tap = tap_loopback();

	len = http_request(req, sizeof(req), BEARER(KEY_ALICE),
			   row->body ? long_body(body, sizeof(body), row->body,
						 "\"model\":\"gpt-x\",", "")
				     : NULL);
	for (i = 0; i < 3; i++) {
		struct conn o = row_conn(row, (uint16_t)(row->sport + 1 + i));

		proxy_sends(e, &o, req, len, 0, row->gso_size, &r);
		snprintf(what, sizeof(what), "%s: admitted request %zu", row->name, i + 1);
		expect_tc(&r, TC_ACT_OK, what);
		expect_untouched(&r, what);
	}
	start = c.seq;
	if (row->split_at) {
		proxy_sends(e, &c, req, row->split_at, 0, 0, &r);
		snprintf(what, sizeof(what), "%s: first part of the refused request", row->name);
		expect_tc(&r, TC_ACT_OK, what);
		expect_untouched(&r, what);
	}
	ack_before = c.ack;
	proxy_sends(e, &c, req + row->split_at, len - row->split_at, 0, row->gso_size, &r);
	snprintf(what, sizeof(what), "%s: the refused request's last segment", row->name);
	expect_tc(&r, TC_ACT_REDIRECT, what);
	/* The upstream has the first part: its next byte is where the last segment starts. */
	expect_upstream_reset(tap, &r, &c, start + (uint32_t)row->split_at);
	r.spec.seq = start + (uint32_t)row->split_at; /* what check_429_frame() compares with */
	check_429_frame(&r, "Requests rate limit exceeded", 3, &rep);
	{
		struct tp_parsed p;
		char why[256];

		CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0, "%s", why);
		CHECK_EQ(p.seq, ack_before, "429 seq: the upstream's next byte the proxy expects");
		CHECK_EQ(p.ack, c.seq, "429 ack: past the whole request");
		CHECK_EQ(p.flags, TP_ACK | TP_PSH | TP_FIN, "429 flags: ACK|PSH|FIN");
		CHECK_EQ(p.doff, row->timestamps ? 32 : 20, "429 TCP header (timestamps echoed)");
	}
	CHECK_EQ(up_packets(e, RLS_PKT_REPLY_SENT), 1, "reply_sent");
	CHECK_EQ(up_packets(e, RLS_PKT_RESET_UPSTREAM), 1, "reset_upstream");
	close(tap);
}

static void test_rows(void **state)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(rows); i++) {
		struct env *e = need_env(state);

		print_message("# %s\n", rows[i].name);
		leave_room_in_window(60, 5000);
		run_row(e, &rows[i]);
		/* A fresh table for the next row: counters and flows from nothing. */
		teardown(state);
		setup_default(state);
	}
}

/* ---- the connection after the 429 ---- */

/* alice's three requests, then c's refused one; returns c's 429. */
static void refuse_on(struct env *e, struct conn *c, const char *req, size_t len, int tap,
		      struct result *r)
{
	struct result o;
	size_t i;

	leave_room_in_window(60, 5000);
	for (i = 0; i < 3; i++) {
		struct conn other = conn4((uint16_t)(c->sport + 100 + i));

		proxy_sends(e, &other, req, len, 0, 0, &o);
		expect_tc(&o, TC_ACT_OK, "admitted request");
	}
	proxy_sends(e, c, req, len, 0, 0, r);
	expect_tc(r, TC_ACT_REDIRECT, "refused request");
	expect_upstream_reset(tap, r, c, c->seq - (uint32_t)len);
}

static void test_resend_answered_alike(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(42001), again;
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct reply_429 first, second;
	struct result r, r2;
	int tap = tap_loopback();

	refuse_on(e, &c, req, len, tap, &r);
	check_429_frame(&r, "Requests rate limit exceeded", 3, &first);
	/* The 429 was lost: the proxy sends the request again, and gets the same 429. */
	again = c;
	again.seq -= (uint32_t)len;
	proxy_sends(e, &again, req, len, 0, 0, &r2);
	expect_tc(&r2, TC_ACT_REDIRECT, "resent refused request");
	expect_upstream_reset(tap, &r2, &c, c.seq - (uint32_t)len);
	check_429_frame(&r2, "Requests rate limit exceeded", 3, &second);
	CHECK(r.out_len == r2.out_len && !memcmp(r.out, r2.out, r.out_len),
	      "the resend's 429 differs from the first");
	CHECK(!strcmp(first.request_id, second.request_id), "x-request-id %s then %s",
	      first.request_id, second.request_id);
	CHECK_EQ(stats_of(e, account_id(e, "alice"), RLS_MODEL_OTHER).admitted, 3,
		 "alice admitted (the resend is not a request)");
	close(tap);
}

static void test_proxy_close_after_429(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(42101);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct tp_parsed p;
	struct result r;
	char why[256];
	uint32_t fin_seq;
	int tap = tap_loopback();

	refuse_on(e, &c, req, len, tap, &r);
	CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0, "%s", why);
	/* The proxy acknowledges the 429 and its FIN: nothing of it reaches the upstream. */
	c.ack = p.seq + (uint32_t)p.len + 1;
	proxy_sends(e, &c, "", 0, TP_ACK, 0, &r);
	expect_tc(&r, TC_ACT_SHOT, "the proxy's ACK of the 429");
	/* It read "connection: close" and closes: its FIN is acknowledged from here. */
	fin_seq = c.seq;
	proxy_sends(e, &c, "", 0, TP_ACK | TP_FIN, 0, &r);
	expect_tc(&r, TC_ACT_REDIRECT, "the proxy's FIN");
	CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0, "the FIN's ACK: %s", why);
	CHECK(p.tcp_csum_ok && p.ip_csum_ok, "the FIN's ACK: checksums");
	CHECK_EQ(p.flags, TP_ACK, "the FIN's ACK: flags");
	CHECK_EQ(p.seq, c.ack, "the FIN's ACK: seq (past the 429 and its FIN)");
	CHECK_EQ(p.ack, fin_seq + 1, "the FIN's ACK: ack (past the proxy's FIN)");
	CHECK_EQ(p.len, 0, "the FIN's ACK: payload");
	expect_flow_gone(e, &c, "after the proxy closed");
	close(tap);
}

/* A keep-alive connection: the upstream answered the first request; the second is refused. */
static void test_keepalive_second_request_refused(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(42201);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct reply_429 rep;
	struct result r;
	struct tp_parsed p;
	char why[256];
	int i, tap = tap_loopback();

	leave_room_in_window(60, 5000);
	for (i = 0; i < 3; i++) {
		proxy_sends(e, &c, req, len, 0, 0, &r);
		expect_tc(&r, TC_ACT_OK, "admitted request on the kept connection");
		conn_upstream_answers(e, &c); /* the upstream's answer, as TC ingress sees it */
	}
	proxy_sends(e, &c, req, len, 0, 0, &r);
	expect_tc(&r, TC_ACT_REDIRECT, "fourth request on the kept connection");
	expect_upstream_reset(tap, &r, &c, c.seq - (uint32_t)len);
	check_429_frame(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0, "%s", why);
	CHECK_EQ(p.seq, c.ack, "429 seq: right after the upstream's last answer");
	close(tap);
}

/* Pipelined behind an admitted request in one segment: no 429 can come in order. */
static void test_pipelined_refusal_resets_both(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(42301);
	char req[1024], two[2048];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct tp_parsed p;
	struct result r;
	char why[256];
	int i, tap = tap_loopback();

	leave_room_in_window(60, 5000);
	for (i = 0; i < 2; i++) {
		struct conn o = conn4((uint16_t)(42311 + i));

		proxy_sends(e, &o, req, len, 0, 0, &r);
		expect_tc(&r, TC_ACT_OK, "admitted request");
	}
	memcpy(two, req, len);
	memcpy(two + len, req, len);
	proxy_sends(e, &c, two, 2 * len, 0, 0, &r);
	expect_tc(&r, TC_ACT_REDIRECT, "two pipelined requests, the second over the limit");
	expect_upstream_reset(tap, &r, &c, c.seq - 2 * (uint32_t)len);
	CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0, "the proxy's reset: %s", why);
	CHECK(p.tcp_csum_ok && p.ip_csum_ok, "the proxy's reset: checksums");
	CHECK_EQ(p.flags, TP_RST | TP_ACK, "the proxy's reset: flags");
	CHECK_EQ(p.seq, c.ack, "the proxy's reset: seq (the upstream's next byte)");
	CHECK_EQ(p.sport, c.dport, "the proxy's reset: from the upstream's port");
	CHECK_EQ(up_packets(e, RLS_PKT_PIPELINED_RESET), 1, "pipelined_reset");
	expect_flow_gone(e, &c, "after both ends were reset");
	close(tap);
}

/* A resend of an admitted request's bytes passes as it is, and is not counted again. */
static void test_admitted_resend_passes(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(42401), again;
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct result r;

	proxy_sends(e, &c, req, len, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "admitted request");
	again = c;
	again.seq -= (uint32_t)len;
	proxy_sends(e, &again, req, len, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "its resend");
	expect_untouched(&r, "its resend");
	CHECK_EQ(stats_of(e, account_id(e, "alice"), RLS_MODEL_OTHER).admitted, 1,
		 "alice admitted (once)");
	CHECK_EQ(up_packets(e, RLS_PKT_RETRANSMIT), 1, "retransmit");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		XDP_TEST(test_rows),
		XDP_TEST(test_resend_answered_alike),
		XDP_TEST(test_proxy_close_after_429),
		XDP_TEST(test_keepalive_second_request_refused),
		XDP_TEST(test_pipelined_refusal_resets_both),
		XDP_TEST(test_admitted_resend_passes),
	};

	return xdp_suite_main("bpf/test_upstream", NULL, 0, tests, ARRAY_SIZE(tests));
}
