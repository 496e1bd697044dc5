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

		case_send_upstream(e, &o, req, len, 0, row->gso_size, &r);
		snprintf(what, sizeof(what), "%s: admitted request %zu", row->name, i + 1);
		expect_tc(&r, TC_ACT_OK, what);
		expect_untouched(&r, what);
	}
	start = c.seq;
	if (row->split_at) {
		case_send_upstream(e, &c, req, row->split_at, 0, 0, &r);
		snprintf(what, sizeof(what), "%s: first part of the refused request", row->name);
		expect_tc(&r, TC_ACT_OK, what);
		expect_untouched(&r, what);
	}
	ack_before = c.ack;
	case_send_upstream(e, &c, req + row->split_at, len - row->split_at, 0, row->gso_size, &r);
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

		case_send_upstream(e, &other, req, len, 0, 0, &o);
		expect_tc(&o, TC_ACT_OK, "admitted request");
	}
	case_send_upstream(e, c, req, len, 0, 0, r);
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
	case_send_upstream(e, &again, req, len, 0, 0, &r2);
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
	case_send_upstream(e, &c, "", 0, TP_ACK, 0, &r);
	expect_tc(&r, TC_ACT_SHOT, "the proxy's ACK of the 429");
	/* It read "connection: close" and closes: its FIN is acknowledged from here. */
	fin_seq = c.seq;
	case_send_upstream(e, &c, "", 0, TP_ACK | TP_FIN, 0, &r);
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
		case_send_upstream(e, &c, req, len, 0, 0, &r);
		expect_tc(&r, TC_ACT_OK, "admitted request on the kept connection");
		conn_upstream_answers(e, &c); /* the upstream's answer, as TC ingress sees it */
	}
	case_send_upstream(e, &c, req, len, 0, 0, &r);
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

		case_send_upstream(e, &o, req, len, 0, 0, &r);
		expect_tc(&r, TC_ACT_OK, "admitted request");
	}
	memcpy(two, req, len);
	memcpy(two + len, req, len);
	case_send_upstream(e, &c, two, 2 * len, 0, 0, &r);
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

/* A request on a SYN (TCP Fast Open) is dropped: the upstream would read it unread here. */
static void test_request_on_syn_dropped(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(42501);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct result r;

	case_send_upstream(e, &c, req, len, TP_SYN, 0, &r);
	expect_tc(&r, TC_ACT_SHOT, "a request on a SYN");
	CHECK_EQ(up_packets(e, RLS_PKT_OUT_OF_ORDER), 1, "out_of_order_dropped");
	c = conn4(42502);
	case_send_upstream(e, &c, "", 0, TP_SYN, 0, &r);
	expect_tc(&r, TC_ACT_OK, "a SYN without data");
}

/* A resend of an admitted request's bytes passes as it is, and is not counted again. */
static void test_admitted_resend_passes(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(42401), again;
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct result r;

	case_send_upstream(e, &c, req, len, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "admitted request");
	again = c;
	again.seq -= (uint32_t)len;
	case_send_upstream(e, &again, req, len, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "its resend");
	expect_untouched(&r, "its resend");
	CHECK_EQ(stats_of(e, account_id(e, "alice"), RLS_MODEL_OTHER).admitted, 1,
		 "alice admitted (once)");
	CHECK_EQ(up_packets(e, RLS_PKT_RETRANSMIT), 1, "retransmit");
}

/*
 * The proxy's requests leave their keys in no map, as the client's do at XDP (README, "Who is
 * asking"): a key line whole in a segment, and one cut in its middle.
 */
static void test_maps_hold_no_key(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(42601), d = conn4(42602);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), "{\"model\":\"m\"}");
	size_t cut = (size_t)(strstr(req, KEY_ALICE) - req) + 6;
	const char *where;
	struct result r;

	case_send_upstream(e, &c, req, len, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "a request with a key");
	where = map_holding(e, KEY_ALICE);
	CHECK(!where, "the key's text is in %s", where);
	case_send_upstream(e, &d, req, cut, 0, 0, &r);
	case_send_upstream(e, &d, req + cut, len - cut, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "a request with its key line cut");
	where = map_holding(e, KEY_ALICE);
	CHECK(!where, "its key line cut: the key's text is in %s", where);
}

/*
 * The proxy's key line cut, and its first part gone from rls_cut_values before the rest comes
 * (pushed out by other connections' cut lines; deleted here): nobody can read the key whole,
 * so the rest resets both ends, as a request no 429 can answer does. Nothing is charged.
 */
static void test_cut_value_lost_resets_both(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(42701);
	struct rls_flow_key key = conn_flow_key(&c);
	char req[1024], why[256];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), "{\"model\":\"m\"}");
	size_t cut = (size_t)(strstr(req, KEY_ALICE) - req) + 6;
	struct tp_parsed p;
	struct result r;
	int tap = tap_loopback();

	case_send_upstream(e, &c, req, cut, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "a request cut in its key");
	CHECK(bpf_map_delete_elem(bpf_map__fd(e->skel->maps.rls_cut_values), &key) == 0,
	      "the key's first part in rls_cut_values: %s", strerror(errno));
	case_send_upstream(e, &c, req + cut, len - cut, 0, 0, &r);
	expect_tc(&r, TC_ACT_REDIRECT, "the rest, its first part gone");
	expect_upstream_reset(tap, &r, &c, c.seq - (uint32_t)(len - cut));
	CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0, "the proxy's reset: %s", why);
	CHECK(p.tcp_csum_ok && p.ip_csum_ok, "the proxy's reset: checksums");
	CHECK_EQ(p.flags, TP_RST | TP_ACK, "the proxy's reset: flags");
	CHECK_EQ(up_packets(e, RLS_PKT_CUT_VALUE_LOST), 1, "cut_value_lost_reset");
	CHECK_EQ(stats_of(e, account_id(e, "alice"), RLS_MODEL_OTHER).admitted, 0,
		 "alice's admitted requests");
	expect_flow_gone(e, &c, "after both ends were reset");
	close(tap);
}

static int setup_one_flow(void **state)
{
	return setup_resized(state, table_default, one_flow);
}

/*
 * A full rls_flows never lets the proxy's request reach the upstream unread: both ends of the
 * new connection are reset (flows_full_reset) and nothing is charged. The connection that
 * holds the one entry is still read and charged.
 */
static void test_full_flows_map_resets_both(void **state)
{
	struct env *e = need_env(state);
	struct conn a = conn4(42801), b = conn4(42802);
	char req[1024], why[256];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	__u32 alice = account_id(e, "alice");
	struct tp_parsed p;
	struct result r;
	int tap = tap_loopback();

	leave_room_in_window(60, 5000);
	case_send_upstream(e, &a, req, len, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "the request that takes the one entry");
	expect_untouched(&r, "the request that takes the one entry");
	case_send_upstream(e, &b, req, len, 0, 0, &r);
	expect_tc(&r, TC_ACT_REDIRECT, "a new connection's request, rls_flows full");
	expect_upstream_reset(tap, &r, &b, b.seq - (uint32_t)len);
	CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0, "the proxy's reset: %s", why);
	CHECK(p.tcp_csum_ok && p.ip_csum_ok, "the proxy's reset: checksums");
	CHECK_EQ(p.flags, TP_RST | TP_ACK, "the proxy's reset: flags");
	CHECK_EQ(p.seq, b.ack, "the proxy's reset: seq (the upstream's next byte)");
	CHECK_EQ(up_packets(e, RLS_PKT_FLOWS_FULL), 1, "flows_full_reset");
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 1, "alice's admitted, b refused");
	expect_flow_gone(e, &b, "b, never followed");
	case_send_upstream(e, &a, req, len, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "a's next request, its flow still there");
	expect_untouched(&r, "a's next request");
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 2, "alice's admitted after");
	close(tap);
}

/*
 * listen.websocket "tunnel" on the upstream side: the proxy's upgrade is one request, and once
 * the upstream's 101 to a WebSocket has gone back through TC, the proxy's frames go to the
 * upstream unread, even bytes that would read as a request.
 */
static const char table_websocket[] =
	"{'listen': {'ports': [8000], 'websocket': 'tunnel'}," TABLE_IDENTIFY TABLE_TIERS
	", 'default_tier': 'anon'}";

static int setup_websocket(void **state)
{
	return setup_with(state, table_websocket);
}

static void test_websocket_tunnel_after_101(void **state)
{
	static const char answer[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
				     "Connection: Upgrade\r\n\r\n";
	static const char frame[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
	struct env *e = need_env(state);
	struct conn c = conn4(42901);
	char upgrade[512], inside[1024];
	size_t len = (size_t)snprintf(upgrade, sizeof(upgrade),
				      "GET /v1/realtime HTTP/1.1\r\nHost: gw.test\r\n"
				      "Authorization: Bearer " KEY_ALICE "\r\nConnection: Upgrade\r\n"
				      "Upgrade: websocket\r\n\r\n");
	size_t inside_len = http_request(inside, sizeof(inside), BEARER(KEY_ALICE), NULL);
	__u32 alice = account_id(e, "alice");
	struct result r;
	int i;

	leave_room_in_window(60, 5000);
	case_send_upstream(e, &c, upgrade, len, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "the proxy's upgrade request");
	case_send_tc(e, &c, answer, sizeof(answer) - 1, TP_ACK | TP_PSH, &r);
	expect_tc(&r, TC_ACT_OK, "the upstream's 101");
	CHECK_EQ(up_packets(e, RLS_PKT_WEBSOCKET_TUNNEL), 1, "websocket_tunnels");
	case_send_upstream(e, &c, frame, sizeof(frame) - 1, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "a WebSocket frame");
	expect_untouched(&r, "a WebSocket frame");
	/* alice has rpm 3: three more requests would be refused if they were read as such. */
	for (i = 0; i < 4; i++) {
		case_send_upstream(e, &c, inside, inside_len, 0, 0, &r);
		expect_tc(&r, TC_ACT_OK, "bytes inside it that read as a request");
		expect_untouched(&r, "bytes inside it that read as a request");
	}
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 1, "alice's admitted: the upgrade");
}

/* ---- the client's address, from the header the proxy writes ---- */

/* Unknown clients: one request a minute each, counted by the address the proxy wrote. */
static const char table_forwarded[] =
	"{'listen': {'ports': [8000]},"
	" 'identify': {'client_address_header': 'X-Forwarded-For'},"
	" 'tiers': {'anon': {'*': {'rpm': 1, 'burst': 1}}, 'net': {'*': {'rpd': 1000}}},"
	" 'default_tier': 'anon',"
	" 'accounts': {'netacct': {'tier': 'net', 'cidrs': ['" DAY4_NET "']}}}";

/* The anonymous counter of this address exists (model "*"; IPv6: its /64). */
static int anon_counter_of(struct env *e, const char *addr)
{
	struct rls_counter_key key = { .account = 0, .model = RLS_MODEL_OTHER };
	struct rls_counter c;

	if (strchr(addr, ':')) {
		CHECK(inet_pton(AF_INET6, addr, key.client) == 1, "test bug: %s", addr);
		memset(key.client + 8, 0, 8);
	} else {
		key.client[10] = key.client[11] = 0xff;
		CHECK(inet_pton(AF_INET, addr, key.client + 12) == 1, "test bug: %s", addr);
	}
	return bpf_map_lookup_elem(e->maps.anon_counters, &key, &c) == 0;
}

struct address_row {
	const char *line;    /* the header line the proxy wrote, or "" */
	int verdict;         /* of this request */
	const char *counted; /* the address whose counter it was charged to; NULL: none new */
};

/*
 * In order, on connections of their own: the rightmost address counts (the one the proxy
 * added), whatever a client put before it; no header or no address in it: the proxy's own.
 */
static const struct address_row address_rows[] = {
	{ "X-Forwarded-For: 198.18.5.1\r\n", TC_ACT_OK, "198.18.5.1" },
	{ "X-Forwarded-For: 198.18.5.2\r\n", TC_ACT_OK, "198.18.5.2" },
	{ "x-forwarded-for:198.18.5.1\r\n", TC_ACT_REDIRECT, NULL },
	{ "X-Forwarded-For: 192.0.2.77, 198.18.5.2\r\n", TC_ACT_REDIRECT, NULL },
	{ "X-Forwarded-For: 198.18.5.2, 198.18.5.3 \r\n", TC_ACT_OK, "198.18.5.3" },
	{ "X-Forwarded-For: " DAY4_CLIENT "\r\n", TC_ACT_OK, NULL }, /* netacct's CIDR */
	{ "X-Forwarded-For: 2001:2:0:9::7\r\n", TC_ACT_OK, "2001:2:0:9::" },
	{ "X-Forwarded-For: ::1\r\n", TC_ACT_OK, "::" },
	{ "X-Forwarded-For: 2001:2:0:a:1:2:3:4\r\n", TC_ACT_OK, "2001:2:0:a::" },
	{ "", TC_ACT_OK, CLIENT4 },
	{ "X-Forwarded-For: unknown\r\n", TC_ACT_REDIRECT, NULL },
	{ "X-Forwarded-For: 198.18.5.9.1\r\n", TC_ACT_REDIRECT, NULL },
	{ "X-Forwarded-For: 2001:2::9::1\r\n", TC_ACT_REDIRECT, NULL },
	{ "X-Forwarded-For: 1:::2\r\n", TC_ACT_REDIRECT, NULL },
	{ "X-Forwarded-For: ::ffff:198.18.5.4\r\n", TC_ACT_REDIRECT, NULL },
};

static void test_client_address_header(void **state)
{
	struct env *e = need_env(state);
	struct result r;
	char req[1024], what[160];
	size_t i, len;

	leave_room_in_window(60, 5000);
	for (i = 0; i < ARRAY_SIZE(address_rows); i++) {
		const struct address_row *row = &address_rows[i];
		struct conn c = conn4((uint16_t)(44001 + i));

		len = http_request(req, sizeof(req), row->line, NULL);
		case_send_upstream(e, &c, req, len, 0, 0, &r);
		snprintf(what, sizeof(what), "row %zu, \"%.*s\"", i, (int)strcspn(row->line, "\r"),
			 row->line);
		expect_tc(&r, row->verdict, what);
		if (row->counted)
			CHECK(anon_counter_of(e, row->counted), "%s: no counter of %s", what,
			      row->counted);
	}
	CHECK(!anon_counter_of(e, "192.0.2.77"), "the address a client put first was counted");
	CHECK_EQ(packets_of(e, RLS_PKT_CLIENT_ADDRESS_MISSING), 6,
		 "client_address_missing (no header, and five that hold no address)");
	CHECK_EQ(stats_of(e, account_id(e, "netacct"), RLS_MODEL_OTHER).admitted, 1,
		 "netacct admitted by the address in the header");
}

/* A head cut over two segments: the header read where the head starts, before the body. */
static void test_client_address_before_a_long_body(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(44101), d = conn4(44102);
	char body[3200], req[3600];
	struct result r;
	size_t len = http_request(req, sizeof(req), "X-Forwarded-For: 198.18.6.1\r\n",
				  long_body(body, sizeof(body), 2500, "\"model\":\"m\",", ""));

	leave_room_in_window(60, 5000);
	case_send_upstream(e, &c, req, 1000, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "the head and the body's start");
	case_send_upstream(e, &c, req + 1000, len - 1000, 0, 0, &r);
	expect_tc(&r, TC_ACT_OK, "the body's end");
	CHECK(anon_counter_of(e, "198.18.6.1"), "no counter of the address in the first segment");
	/* The same client again, on another connection: its minute is used up. */
	case_send_upstream(e, &d, req, 1000, 0, 0, &r);
	case_send_upstream(e, &d, req + 1000, len - 1000, 0, 0, &r);
	expect_tc(&r, TC_ACT_REDIRECT, "the same client's second request");
	CHECK_EQ(packets_of(e, RLS_PKT_CLIENT_ADDRESS_MISSING), 0, "client_address_missing");
}

/*
 * Requests of netacct's address, then an unknown one, then netacct's again, as the proxy's
 * header gives them: on one connection from port sport, or each on a new one (each_new). Each
 * is charged by its own header, not by what its connection, or this CPU, remembers of the one
 * before it (flow_memo.h).
 */
static void charged_by_each_header(struct env *e, uint16_t sport, bool each_new)
{
	static const char *const lines[] = { "X-Forwarded-For: " DAY4_CLIENT "\r\n",
					     "X-Forwarded-For: 198.18.7.2\r\n",
					     "X-Forwarded-For: " DAY4_CLIENT "\r\n" };
	struct conn c = conn4(sport);
	char req[1024];
	struct result r;
	size_t i, len;

	leave_room_in_window(60, 5000);
	for (i = 0; i < ARRAY_SIZE(lines); i++) {
		if (each_new)
			c = conn4((uint16_t)(sport + i));
		len = http_request(req, sizeof(req), lines[i], NULL);
		case_send_upstream(e, &c, req, len, 0, 0, &r);
		expect_tc(&r, TC_ACT_OK, lines[i]);
		conn_upstream_answers(e, &c);
	}
	CHECK_EQ(stats_of(e, account_id(e, "netacct"), RLS_MODEL_OTHER).admitted, 2,
		 "netacct admitted by the address in the header");
	CHECK(anon_counter_of(e, "198.18.7.2"), "the unknown client's request has no counter of "
	      "its own: charged as the request before it");
}

/* A proxy's keep-alive pool carries many clients' requests on one connection. */
static void test_client_address_per_request_on_one_connection(void **state)
{
	charged_by_each_header(need_env(state), 44201, false);
}

/* And opens a connection for one client right after another's, on the same CPU. */
static void test_client_address_per_request_on_new_connections(void **state)
{
	cpu_set_t was;

	stay_on_this_cpu(&was);
	charged_by_each_header(need_env(state), 44211, true);
	back_to_cpus(&was);
}

static int setup_forwarded(void **state)
{
	return setup_with(state, table_forwarded);
}

/* ---- the upstream's answers, read by rlshape_tc as the upstream side's TC ingress ---- */

#define ANSWER "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
#define UP_REQUEST(c, key, v) \
	.hook = ON_UPSTREAM, .conn = (c), .headers = BEARER(key), .verdict = (v)
#define UP_ANSWER(c)          .hook = ON_TC, .conn = (c), .raw = ANSWER, .verdict = TC_ACT_OK
#define SLOTS(a, n)           { .kind = X_SLOTS_HELD, .account = (a), .value = (n) }
#define STATE(c, st)          { .kind = X_RESPONSE_STATE, .conn = (c), .value = (st) }
#define EVENTS(n)             { .kind = X_EVENTS, .value = (n) }

static const struct prog_case cases[] = {
	/* solo: concurrency 1. The slot is held from the request to its answer's last byte. */
	{ .name = "upstream_slot_held_until_the_answer_ends", .sport = 43001, .frames = {
		{ UP_REQUEST(0, KEY_SOLO, TC_ACT_OK), .expect = {
			SLOTS("solo", 1), STATE(0, RLS_RESPONSE_AWAITED) } },
		{ UP_REQUEST(1, KEY_SOLO, TC_ACT_REDIRECT), .out = OUT_429, .expect = {
			{ .kind = X_REJECTED, .account = "solo", .value = 1 } } },
		{ UP_ANSWER(0), .expect = { SLOTS("solo", 0), STATE(0, RLS_RESPONSE_NONE) } },
		{ UP_REQUEST(2, KEY_SOLO, TC_ACT_OK), .expect = {
			SLOTS("solo", 1), { .kind = X_ADMITTED, .account = "solo", .value = 2 } } },
	} },
	/* tokener: tokens reserved; the answer's end reports them to the daemon. */
	{ .name = "upstream_tokens_reported_at_the_answers_end", .sport = 43101, .frames = {
		{ UP_REQUEST(0, KEY_TOKENS, TC_ACT_OK), .expect = {
			STATE(0, RLS_RESPONSE_AWAITED), EVENTS(0) } },
		{ UP_ANSWER(0), .expect = { STATE(0, RLS_RESPONSE_NONE), EVENTS(1) } },
	} },
};

int main(void)
{
	const struct CMUnitTest tests[] = {
		XDP_TEST(test_rows),
		XDP_TEST(test_resend_answered_alike),
		XDP_TEST(test_proxy_close_after_429),
		XDP_TEST(test_keepalive_second_request_refused),
		XDP_TEST(test_pipelined_refusal_resets_both),
		XDP_TEST(test_admitted_resend_passes),
		XDP_TEST(test_request_on_syn_dropped),
		XDP_TEST(test_maps_hold_no_key),
		XDP_TEST(test_cut_value_lost_resets_both),
		cmocka_unit_test_setup_teardown(test_client_address_header, setup_forwarded,
						teardown),
		cmocka_unit_test_setup_teardown(test_client_address_before_a_long_body,
						setup_forwarded, teardown),
		cmocka_unit_test_setup_teardown(test_client_address_per_request_on_one_connection,
						setup_forwarded, teardown),
		cmocka_unit_test_setup_teardown(test_client_address_per_request_on_new_connections,
						setup_forwarded, teardown),
		cmocka_unit_test_setup_teardown(test_websocket_tunnel_after_101, setup_websocket,
						teardown),
		/* Last: it loads the programs again, with rls_flows made small. */
		cmocka_unit_test_setup_teardown(test_full_flows_map_resets_both, setup_one_flow,
						teardown),
	};

	env_load_upstream = 1;
	return xdp_suite_main("bpf/test_upstream", cases, ARRAY_SIZE(cases), tests,
			      ARRAY_SIZE(tests));
}
