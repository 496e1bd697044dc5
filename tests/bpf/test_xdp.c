// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The XDP program under BPF_PROG_TEST_RUN, kernel-selftests style: every test loads a fresh
 * skeleton (maps never pinned), puts a tier table into it with rls_apply_table(), runs
 * hand-built frames through the program and checks the verdict, the counters and the bytes
 * the program wrote.
 *
 * Needs root and BPF. A suite that cannot load the program fails, saying why: it never skips.
 */
#include "harness.h"

/* ---- the tables ---- */

#define KEY_ALICE   "sk-test-alice-0001"
#define KEY_HASHED  "sk-test-hashed-0002"
/* printf %s sk-test-hashed-0002 | sha256sum: computed outside the code under test. */
#define SHA_HASHED  "86a0d584f7a344f261636418b830167887fda98ca869e9bc4561f19c26f0dbf5"
#define KEY_SMOOTH  "sk-test-smooth-0003"
#define KEY_HOURLY  "sk-test-hourly-0004"
#define KEY_MODELS  "sk-test-models-0005"
#define KEY_EXACT   "sk-test-exact-0006"
#define KEY_PERSEC  "sk-test-persec-0007"
#define KEY_PRICEY  "sk-test-pricey-0008"
#define KEY_TOKENS  "sk-test-tokens-0009"
#define KEY_TIGHT   "sk-test-tight-0009"
#define KEY_DUO     "sk-test-duo-0010"
#define KEY_SOLO    "sk-test-solo-0011"
#define KEY_UNKNOWN "sk-test-nobody-9999"

#define EXACT_RPD 5000

#define TABLE_TIERS                                                                     \
	"'tiers': {"                                                                    \
	"  'small':  {'*': {'rpm': 3, 'burst': 3, 'rpd': 1000}},"                       \
	"  'smooth': {'*': {'rpm': 60}},"                                               \
	"  'hourly': {'*': {'rph': 2}},"                                                \
	"  'persec': {'*': {'rps': 2}},"                                                \
	"  'models': {'gpt-x': {'rpm': 100, 'burst': 100},"                             \
	"             'gpt-y': {'rpm': 200, 'burst': 200},"                             \
	"             '*': {'rpm': 50, 'burst': 50}},"                                  \
	"  'exact':  {'*': {'rpd': 5000}},"                                             \
	"  'pricey': {'gpt-big': {'rpm': 1}},"                                          \
	"  'tokens': {'*': {'tpd': 100000000, 'reserve_tokens': 100, 'reserve_max': 500}}," \
	"  'tight':  {'*': {'rps': 1, 'rph': 2}},"                                      \
	"  'pair':   {'*': {'concurrency': 2}},"                                        \
	"  'single': {'*': {'concurrency': 1, 'max_hold_seconds': 3600}},"              \
	"  'anon':   {'*': {'rpm': 2, 'burst': 2}},"                                    \
	"  'daily':  {'*': {'rpd': 1}}"                                                 \
	"},"                                                                            \
	"'accounts': {"                                                                 \
	"  'alice':   {'tier': 'small',  'keys': ['" KEY_ALICE "']},"                   \
	"  'hashed':  {'tier': 'small',  'keys': ['sha256:" SHA_HASHED "']},"           \
	"  'netacct': {'tier': 'small',  'cidrs': ['198.19.128.0/24', '2001:2:0:80::/64']}," \
	"  'smooth':  {'tier': 'smooth', 'keys': ['" KEY_SMOOTH "']},"                  \
	"  'hourly':  {'tier': 'hourly', 'keys': ['" KEY_HOURLY "']},"                  \
	"  'persec':  {'tier': 'persec', 'keys': ['" KEY_PERSEC "']},"                  \
	"  'modeler': {'tier': 'models', 'keys': ['" KEY_MODELS "']},"                  \
	"  'pricey':  {'tier': 'pricey', 'keys': ['" KEY_PRICEY "']},"                  \
	"  'tokener': {'tier': 'tokens', 'keys': ['" KEY_TOKENS "']},"                  \
	"  'tight':   {'tier': 'tight',  'keys': ['" KEY_TIGHT "']},"                   \
	"  'duo':     {'tier': 'pair',   'keys': ['" KEY_DUO "']},"                     \
	"  'solo':    {'tier': 'single', 'keys': ['" KEY_SOLO "']},"                    \
	"  'exact':   {'tier': 'exact',  'keys': ['" KEY_EXACT "']},"                   \
	"  'dayone':  {'tier': 'daily',  'cidrs': ['" DAY4_NET "']}"                     \
	"}"

#define TABLE_HEAD                                                                      \
	"{'listen': {'ports': [8000]},"                                                 \
	" 'identify': {'key_headers': ['authorization', 'x-api-key', 'api-key'],"       \
	"              'model_header': 'x-model'},"

static const char table_default[] = TABLE_HEAD TABLE_TIERS ", 'default_tier': 'anon'}";
static const char table_no_default[] = TABLE_HEAD TABLE_TIERS "}";

static int setup_default(void **state)
{
	return setup_with(state, table_default);
}

static int setup_no_default(void **state)
{
	return setup_with(state, table_no_default);
}

/* ---- the 429 ---- */

struct reply_429 {
	long retry_after, retry_after_ms, limit, remaining;
	char reset[64];
	char message[128];
	char request_id[64];
	char should_retry[16];
};

/* The value of header name (lower case) in the header block hdrs, or NULL. */
static const char *header_value(const char *hdrs, const char *name, char *val, size_t cap)
{
	const char *line = hdrs;
	size_t name_len = strlen(name);

	while (*line) {
		const char *end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);

		if (len > name_len && !strncasecmp(line, name, name_len) && line[name_len] == ':') {
			const char *v = line + name_len + 1;
			size_t vlen = len - name_len - 1;

			while (vlen && (*v == ' ' || *v == '\t'))
				v++, vlen--;
			while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
				vlen--;
			if (vlen >= cap)
				vlen = cap - 1;
			memcpy(val, v, vlen);
			val[vlen] = '\0';
			return val;
		}
		if (!end)
			break;
		line = end + 2;
	}
	return NULL;
}

static long header_integer(const char *hdrs, const char *name)
{
	char val[64], *end;
	long v;

	CHECK(header_value(hdrs, name, val, sizeof(val)), "429 has no %s header", name);
	errno = 0;
	v = strtol(val, &end, 10);
	CHECK(!errno && end != val && !*end, "429 header %s: \"%s\" is not an integer", name, val);
	return v;
}

/*
 * The headers every kind of 429 has whatever its size: x-request-id "req_" and 16 lower-case
 * hex digits, and x-should-retry "false" exactly when the wait is over a minute.
 */
static void check_429_id_and_retry(const char *hdrs, struct reply_429 *out)
{
	const char *id = out->request_id;
	long retry_ms = header_integer(hdrs, "retry-after-ms");
	size_t i;

	CHECK(header_value(hdrs, "x-request-id", out->request_id, sizeof(out->request_id)),
	      "429 has no x-request-id header");
	CHECK(strlen(id) == 20 && !strncmp(id, "req_", 4), "x-request-id \"%s\" is not req_ and "
	      "16 hex digits", id);
	for (i = 4; i < 20; i++)
		CHECK(strchr("0123456789abcdef", id[i]) && id[i], "x-request-id \"%s\": '%c' is not "
		      "a lower-case hex digit", id, id[i]);
	CHECK(header_value(hdrs, "x-should-retry", out->should_retry, sizeof(out->should_retry)),
	      "429 has no x-should-retry header");
	CHECK(!strcmp(out->should_retry, retry_ms > 60000 ? "false" : "true"),
	      "x-should-retry \"%s\" for a wait of %ld ms (false past a minute, else true)",
	      out->should_retry, retry_ms);
}

static void same_bytes(const uint8_t *a, const uint8_t *b, size_t n, const char *what)
{
	CHECK(!memcmp(a, b, n), "%s differ", what);
}

/*
 * Everything the 429 written over request r must be. want_message: the error message;
 * want_limit: x-ratelimit-limit-requests, -1 for any.
 */
static void check_429(const struct result *r, const char *want_message, long want_limit,
		      struct reply_429 *out)
{
	const struct tp_spec *s = &r->spec;
	struct tp_parsed in, p;
	char why[256], text[TP_MAX_FRAME + 1], val[128];
	const char *body;
	size_t body_len, addr_len = s->ipv6 ? 16 : 4;
	json_error_t jerr;
	json_t *root, *msg;

	expect_action(r, XDP_TX, "over-limit request");
	CHECK(tp_parse(r->in, r->in_len, &in, why, sizeof(why)) == 0, "test bug: request: %s", why);
	CHECK(tp_parse(r->out, r->out_len, &p, why, sizeof(why)) == 0, "the 429 frame: %s", why);

	/* Layer 2: turned around, VLAN tags kept. */
	same_bytes(p.dmac, in.smac, 6, "429 destination MAC and request source MAC");
	same_bytes(p.smac, in.dmac, 6, "429 source MAC and request destination MAC");
	CHECK_EQ(p.vlan, in.vlan, "429's number of VLAN tags");
	if (in.vlan)
		CHECK_EQ(p.vlan_tci, in.vlan_tci, "429 VLAN TCI");
	if (in.vlan == 2) {
		CHECK_EQ(p.outer_tpid, in.outer_tpid, "429 outer VLAN TPID");
		CHECK_EQ(p.outer_tci, in.outer_tci, "429 outer VLAN TCI");
	}

	/* Layer 3. */
	CHECK_EQ(p.ipv6, in.ipv6, "429 IP version is 6");
	same_bytes(p.saddr, in.daddr, addr_len, "429 source address and request destination");
	same_bytes(p.daddr, in.saddr, addr_len, "429 destination address and request source");
	CHECK(p.ip_csum_ok, "429 IPv4 header checksum is wrong");
	CHECK(p.ttl > 1, "429 TTL/hop limit %u", p.ttl);
	if (!p.ipv6)
		CHECK((p.frag_off & 0x3fff) == 0, "429 is a fragment (frag_off %#x)", p.frag_off);
	/* Options and extension headers are the client's, never echoed (a source route...). */
	CHECK_EQ(p.ip_hdr_len, p.ipv6 ? 40 : 20, "429 IP header length (no options or extensions)");

	/* Layer 4. */
	CHECK_EQ(p.sport, in.dport, "429 source port");
	CHECK_EQ(p.dport, in.sport, "429 destination port");
	CHECK(p.tcp_csum_ok, "429 TCP checksum is wrong (recomputed over the pseudo-header)");
	CHECK_EQ(p.seq, in.ack, "429 seq (must be the request's ack_seq)");
	CHECK_EQ(p.ack, (uint32_t)(in.seq + in.len + !!(in.flags & TP_FIN)),
		 "429 ack_seq (request seq + payload length, + 1 for a FIN)");
	CHECK_EQ(p.flags, TP_ACK | TP_PSH | TP_FIN, "429 TCP flags (ACK|PSH|FIN)");
	CHECK(p.window > 0, "429 advertises a zero window");
	CHECK(p.len > 0, "429 has no payload");

	/* HTTP. */
	memcpy(text, p.payload, p.len);
	text[p.len] = '\0';
	CHECK(strlen(text) == p.len, "429 payload contains a NUL byte");
	CHECK(!strncmp(text, "HTTP/1.1 429 Too Many Requests\r\n", 32),
	      "429 status line: \"%.40s\"", text);
	body = strstr(text, "\r\n\r\n");
	CHECK(body, "429 header block does not end");
	body += 4;
	body_len = p.len - (size_t)(body - text);
	text[body - text - 2] = '\0'; /* the header block alone, lines ending \r\n */

	out->retry_after = header_integer(text, "retry-after");
	out->retry_after_ms = header_integer(text, "retry-after-ms");
	out->limit = header_integer(text, "x-ratelimit-limit-requests");
	out->remaining = header_integer(text, "x-ratelimit-remaining-requests");
	CHECK(out->retry_after >= 1, "retry-after %ld < 1", out->retry_after);
	CHECK(out->retry_after_ms >= 1, "retry-after-ms %ld < 1", out->retry_after_ms);
	CHECK_EQ(out->retry_after, (out->retry_after_ms + 999) / 1000,
		 "retry-after (must be retry-after-ms rounded up to seconds)");
	if (want_limit >= 0)
		CHECK_EQ(out->limit, want_limit, "x-ratelimit-limit-requests");
	CHECK(out->remaining >= 0 && out->remaining <= out->limit,
	      "x-ratelimit-remaining-requests %ld outside 0..%ld", out->remaining, out->limit);
	CHECK(header_value(text, "x-ratelimit-reset-requests", out->reset, sizeof(out->reset)),
	      "429 has no x-ratelimit-reset-requests header");
	snprintf(val, sizeof(val), "%lds", out->retry_after);
	CHECK(!strcmp(out->reset, val), "x-ratelimit-reset-requests \"%s\", expected \"%s\" (the "
	      "retry-after wait in seconds)", out->reset, val);
	CHECK(header_value(text, "content-type", val, sizeof(val)), "429 has no content-type");
	CHECK(!strcmp(val, "application/json"), "content-type: %s", val);
	CHECK(header_value(text, "connection", val, sizeof(val)), "429 has no connection header");
	CHECK(!strcasecmp(val, "close"), "connection: %s", val);
	CHECK_EQ(header_integer(text, "content-length"), (long)body_len,
		 "content-length (bytes after the blank line)");
	check_429_id_and_retry(text, out);

	root = json_loadb(body, body_len, 0, &jerr);
	CHECK(root, "429 body is not JSON: %s: \"%s\"", jerr.text, body);
	msg = json_object_get(json_object_get(root, "error"), "message");
	if (!json_is_string(msg)) {
		json_decref(root);
		fail_msg("429 body has no error.message string: %s", body);
	}
	snprintf(out->message, sizeof(out->message), "%s", json_string_value(msg));
	{
		json_t *err = json_object_get(root, "error");
		const char *type = json_string_value(json_object_get(err, "type"));
		const char *code = json_string_value(json_object_get(err, "code"));
		int ok = type && code && !strcmp(type, "requests") &&
			 !strcmp(code, "rate_limit_exceeded");

		json_decref(root);
		CHECK(ok, "429 body error.type/error.code are not \"requests\"/"
		      "\"rate_limit_exceeded\": %s", body);
	}
	CHECK(!strcmp(out->message, want_message), "429 error.message \"%s\", expected \"%s\"",
	      out->message, want_message);
}

/* Quick check that r is a 429 at all (the full check is check_429). */
static void expect_429(const struct result *r, const char *what)
{
	struct tp_parsed p;
	char why[256];

	expect_action(r, XDP_TX, what);
	CHECK(tp_parse(r->out, r->out_len, &p, why, sizeof(why)) == 0, "%s: reply frame: %s", what,
	      why);
	CHECK(p.len > 13 && !memcmp(p.payload, "HTTP/1.1 429 ", 13), "%s: reply is not a 429",
	      what);
}

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

static void admit_until_limit(struct env *e, struct conn *c, const char *account,
			      struct result *last)
{
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct result r;
	struct rls_stats st;
	__u32 acct = account_id(e, account);
	int i;

	for (i = 0; i < 3; i++) {
		conn_send(e, c, req, len, 0, &r);
		expect_action(&r, XDP_PASS, "request under the limit");
		expect_untouched(&r, "admitted request");
		st = stats_of(e, acct, RLS_MODEL_OTHER);
		CHECK_EQ(st.admitted, i + 1, "rls_stats admitted after each admitted request");
		CHECK_EQ(rejected_total(&st), 0, "rls_stats rejected while under the limit");
	}
	conn_send(e, c, req, len, 0, &r);
	expect_429(&r, "4th request with rpm 3");
	st = stats_of(e, acct, RLS_MODEL_OTHER);
	CHECK_EQ(st.admitted, 3, "rls_stats admitted after the 429");
	CHECK_EQ(rejected_total(&st), 1, "rls_stats rejected after the 429");
	CHECK_EQ(packets_of(e, RLS_PKT_REPLY_SENT), 1, "rls_packets[REPLY_SENT]");
	if (last)
		*last = r;
}

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

/* ---- 3: where the key comes from ---- */

/* One request with the given header lines from CLIENT4; which account was charged. */
static void expect_charged(struct env *e, uint16_t sport, const char *headers,
			   const char *account)
{
	struct conn c = conn4(sport);
	char req[1024];
	size_t len = http_request(req, sizeof(req), headers, NULL);
	__u32 acct = account ? account_id(e, account) : RLS_ACCOUNT_ANONYMOUS;
	__u64 before = stats_of(e, acct, RLS_MODEL_OTHER).admitted;
	__u64 anon_before = stats_of(e, RLS_ACCOUNT_ANONYMOUS, RLS_MODEL_OTHER).admitted;
	struct result r;

	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, headers);
	CHECK_EQ(stats_of(e, acct, RLS_MODEL_OTHER).admitted, before + 1,
		 account ? account : "anonymous (account 0)");
	if (account)
		CHECK_EQ(stats_of(e, RLS_ACCOUNT_ANONYMOUS, RLS_MODEL_OTHER).admitted, anon_before,
			 "anonymous charged for a request with a known key");
}

static void test_key_x_api_key(void **state)
{
	struct env *e = need_env(state);

	expect_charged(e, 41001, "x-api-key: " KEY_ALICE "\r\n", "alice");
}

static void test_key_api_key(void **state)
{
	struct env *e = need_env(state);

	expect_charged(e, 41002, "api-key: " KEY_ALICE "\r\n", "alice");
}

static void test_key_mixed_case_names(void **state)
{
	struct env *e = need_env(state);

	expect_charged(e, 41003, "AUTHORIZATION: Bearer " KEY_ALICE "\r\n", "alice");
	expect_charged(e, 41004, "X-Api-Key: " KEY_ALICE "\r\n", "alice");
	expect_charged(e, 41005, "API-KEY:" KEY_ALICE "\r\n", "alice");
	expect_charged(e, 41006, "authorization: bEaReR   " KEY_HASHED "  \r\n", "hashed");
	/* The key itself is case-sensitive. */
	expect_charged(e, 41007, "x-api-key: SK-TEST-ALICE-0001\r\n", NULL);
	CHECK_EQ(stats_of(e, account_id(e, "alice"), 0).admitted, 3, "alice admitted");
}

static void test_key_sha256_in_table(void **state)
{
	struct env *e = need_env(state);

	expect_charged(e, 41010, BEARER(KEY_HASHED), "hashed");
	expect_charged(e, 41011, "x-api-key: " KEY_HASHED "\r\n", "hashed");
	expect_charged(e, 41012, "Api-Key: " KEY_HASHED "\r\n", "hashed");
	/* The digest itself is not a key. */
	expect_charged(e, 41013, "x-api-key: sha256:" SHA_HASHED "\r\n", NULL);
	expect_charged(e, 41014, "x-api-key: " SHA_HASHED "\r\n", NULL);
}

static void test_key_header_precedence(void **state)
{
	struct env *e = need_env(state);

	/* authorization is listed first: it wins wherever it is in the request. */
	expect_charged(e, 41020, "x-api-key: " KEY_UNKNOWN "\r\n" BEARER(KEY_ALICE), "alice");
	expect_charged(e, 41021, BEARER(KEY_ALICE) "x-api-key: " KEY_UNKNOWN "\r\n", "alice");
	/* An authorization value that is not "Bearer <key>" gives no key... */
	expect_charged(e, 41022, "authorization: " KEY_ALICE "\r\n", NULL);
	/* ...and the next header in the list is used instead. */
	expect_charged(e, 41023, "authorization: Basic Zm9vOmJhcg==\r\napi-key: " KEY_HASHED "\r\n",
		       "hashed");
}

static void test_unknown_client_default_tier(void **state)
{
	struct env *e = need_env(state);
	char req[1024];
	size_t len = http_request(req, sizeof(req), "x-api-key: " KEY_UNKNOWN "\r\n", NULL);
	struct conn c = conn4(42001), other = conn4(42002);
	struct rls_counter_key ck = { .account = RLS_ACCOUNT_ANONYMOUS, .model = RLS_MODEL_OTHER };
	struct rls_counter counter;
	struct rls_stats st;
	struct result r;

	other.client = "198.18.0.11";
	leave_room_in_window(60, 5000);
	/* anon: rpm 2, burst 2, per client address. */
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "1st unknown request");
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "2nd unknown request");
	conn_send(e, &c, req, len, 0, &r);
	expect_429(&r, "3rd unknown request from the same address (default tier rpm 2)");
	conn_send(e, &other, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "unknown request from another address (own budget)");

	st = stats_of(e, RLS_ACCOUNT_ANONYMOUS, 0);
	CHECK_EQ(st.admitted, 3, "anonymous admitted");
	CHECK_EQ(rejected_total(&st), 1, "anonymous rejected");
	/* Counted per address in rls_anon_counters, IPv4-mapped. */
	ck.client[10] = ck.client[11] = 0xff;
	inet_pton(AF_INET, CLIENT4, ck.client + 12);
	CHECK(bpf_map_lookup_elem(e->maps.anon_counters, &ck, &counter) == 0,
	      "no rls_anon_counters entry for the client's IPv4-mapped address");
	CHECK_EQ(counter.window_count[RLS_WINDOW_MINUTE], 2,
		 "minute count of the client's anonymous counter");
}

static void test_account_by_cidr(void **state)
{
	struct env *e = need_env(state);
	char req[1024];
	size_t len = http_request(req, sizeof(req), "", NULL);
	__u32 net = account_id(e, "netacct");
	struct conn c4 = conn4(43001), c6 = conn6(43002), k = conn4(43003);
	char kreq[1024];
	size_t klen = http_request(kreq, sizeof(kreq), BEARER(KEY_ALICE), NULL);
	struct result r;

	c4.client = NET4_CLIENT;
	c6.client = NET6_CLIENT;
	conn_send(e, &c4, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "request from the account's IPv4 network");
	conn_send(e, &c6, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "request from the account's IPv6 network");
	CHECK_EQ(stats_of(e, net, 0).admitted, 2, "netacct admitted (by CIDR, both families)");
	CHECK_EQ(stats_of(e, RLS_ACCOUNT_ANONYMOUS, 0).admitted, 0, "anonymous admitted");
	/* One account, one budget: rpm 3 shared by both families. */
	conn_send(e, &c4, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "3rd request of netacct");
	conn_send(e, &c6, req, len, 0, &r);
	expect_429(&r, "4th request of netacct (rpm 3 over both networks)");
	/* A key wins over the address. */
	k.client = NET4_CLIENT;
	conn_send(e, &k, kreq, klen, 0, &r);
	expect_action(&r, XDP_PASS, "keyed request from netacct's network");
	CHECK_EQ(stats_of(e, account_id(e, "alice"), 0).admitted, 1,
		 "alice charged for her key from netacct's network");
}

static void test_unknown_passes_without_default_tier(void **state)
{
	struct env *e = need_env(state);
	char req[1024], kreq[1024];
	size_t len = http_request(req, sizeof(req), "x-api-key: " KEY_UNKNOWN "\r\n", NULL);
	size_t klen = http_request(kreq, sizeof(kreq), BEARER(KEY_ALICE), NULL);
	struct conn c = conn4(44001), k = conn4(44002);
	struct rls_stats st;
	struct result r;
	int i;

	for (i = 0; i < 20; i++) {
		conn_send(e, &c, req, len, 0, &r);
		expect_action(&r, XDP_PASS, "unknown client without default_tier");
		expect_untouched(&r, "unknown client's request");
	}
	st = stats_of(e, RLS_ACCOUNT_ANONYMOUS, 0);
	CHECK_EQ(rejected_total(&st), 0, "unknown clients rejected without default_tier");
	/* Known keys are still limited. */
	for (i = 0; i < 3; i++) {
		conn_send(e, &k, kreq, klen, 0, &r);
		expect_action(&r, XDP_PASS, "alice under the limit");
	}
	conn_send(e, &k, kreq, klen, 0, &r);
	expect_429(&r, "alice over the limit in a table without default_tier");
}

/* ---- 4: the model ---- */

/* One request of account modeler: it must be charged to want_model. */
static void expect_model(struct env *e, uint16_t sport, const char *headers, const char *body,
			 __u32 want_model, const char *what)
{
	struct conn c = conn4(sport);
	char req[3600], hdrs[512];
	size_t len;
	__u32 acct = account_id(e, "modeler");
	__u64 before = stats_of(e, acct, want_model).admitted;
	struct result r;

	snprintf(hdrs, sizeof(hdrs), "%s%s", BEARER(KEY_MODELS), headers);
	len = http_request(req, sizeof(req), hdrs, body);
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, what);
	CHECK(stats_of(e, acct, want_model).admitted == before + 1,
	      "%s: rls_stats[modeler, model %u] admitted not incremented", what, want_model);
}

static void test_model_from_header(void **state)
{
	struct env *e = need_env(state);
	__u32 x = model_id(e, "gpt-x"), y = model_id(e, "gpt-y");

	expect_model(e, 45001, "x-model: gpt-x\r\n", NULL, x, "x-model header");
	expect_model(e, 45002, "X-Model:  gpt-y \r\n", NULL, y, "X-Model header, mixed case");
	expect_model(e, 45003, "x-model: gpt-unknown\r\n", NULL, RLS_MODEL_OTHER,
		     "x-model naming no tier entry");
	/* A POST with the header: the header decides, the body is not needed. */
	expect_model(e, 45004, "x-model: gpt-x\r\n", "{\"messages\":[]}", x,
		     "x-model header on a POST");
	CHECK_EQ(stats_of(e, account_id(e, "modeler"), y).admitted, 1, "gpt-y admitted");
}

static void test_model_from_body(void **state)
{
	struct env *e = need_env(state);
	__u32 x = model_id(e, "gpt-x"), y = model_id(e, "gpt-y");

	expect_model(e, 45101, "", "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
		     x, "model first in the body");
	expect_model(e, 45102, "",
		     "{\n  \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],\n  \"model\" : \"gpt-y\"\n}",
		     y, "model last in the body, with whitespace");
	expect_model(e, 45103, "", "{\"model\":\"gpt-unknown\"}", RLS_MODEL_OTHER,
		     "body model naming no tier entry");
	expect_model(e, 45104, "", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
		     RLS_MODEL_OTHER, "whole body without a model");
}

static void test_model_nested_not_taken(void **state)
{
	struct env *e = need_env(state);
	__u32 x = model_id(e, "gpt-x"), y = model_id(e, "gpt-y");
	__u32 acct = account_id(e, "modeler");

	expect_model(e, 45201, "",
		     "{\"messages\":[{\"role\":\"user\",\"model\":\"gpt-x\",\"content\":\"hi\"}],\"model\":\"gpt-y\"}",
		     y, "model in messages[] and at the top level");
	expect_model(e, 45202, "", "{\"messages\":[{\"role\":\"user\",\"model\":\"gpt-x\"}]}",
		     RLS_MODEL_OTHER, "model only inside messages[]");
	expect_model(e, 45203, "", "{\"metadata\":{\"model\":\"gpt-x\"},\"model\":\"gpt-y\"}", y,
		     "model in a nested object and at the top level");
	expect_model(e, 45204, "",
		     "{\"prompt\":\"say \\\"model\\\":\\\"gpt-x\\\"\",\"model\":\"gpt-y\"}", y,
		     "\"model\" inside a string value");
	CHECK_EQ(stats_of(e, acct, x).admitted, 0, "gpt-x (only ever nested) admitted");
}

static void test_model_hidden(void **state)
{
	struct env *e = need_env(state);
	__u32 acct = account_id(e, "modeler"), x = model_id(e, "gpt-x");
	/* Charged as the tier's strictest model: "*" (rpm 50) admits fewer a day than gpt-x or gpt-y. */
	struct rls_counter_key ck = { .account = acct, .model = RLS_MODEL_OTHER };
	struct rls_counter counter;
	struct conn c = conn4(45301), d = conn4(45302);
	static const char head[] = "POST /v1/chat/completions HTTP/1.1\r\n"
				   "Host: gw.test\r\n" BEARER(KEY_MODELS)
				   "Content-Type: application/json\r\n";
	static const char body1[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"a prompt\"}],";
	static const char body2[] = "\"model\":\"gpt-x\"}";
	static const char form[] = "model=gpt-x&prompt=hello";
	char req[2048];
	struct result r;
	__u64 hidden_before = packets_of(e, RLS_PKT_MODEL_HIDDEN);
	int n;

	/* Headers complete, body cut before "model": nothing is decided until its last byte. */
	n = snprintf(req, sizeof(req), "%sContent-Length: %zu\r\n\r\n%s", head,
		     strlen(body1) + strlen(body2), body1);
	conn_send(e, &c, req, (size_t)n, 0, &r);
	expect_action(&r, XDP_PASS, "a request whose model is still to come");
	CHECK_EQ(stats_of(e, acct, x).admitted + stats_of(e, acct, RLS_MODEL_HIDDEN).admitted, 0,
		 "requests decided before their last byte");
	conn_send(e, &c, body2, strlen(body2), 0, &r);
	expect_action(&r, XDP_PASS, "the request's last segment, with its model");
	CHECK_EQ(stats_of(e, acct, x).admitted, 1, "rls_stats[modeler, gpt-x] admitted");
	CHECK_EQ(packets_of(e, RLS_PKT_MODEL_HIDDEN), hidden_before, "rls_packets[MODEL_HIDDEN]");

	/* A body that is no JSON object: the model cannot be read, the strictest one is charged. */
	n = snprintf(req, sizeof(req), "%sContent-Length: %zu\r\n\r\n%s", head, strlen(form),
		     form);
	conn_send(e, &d, req, (size_t)n, 0, &r);
	expect_action(&r, XDP_PASS, "a form body");
	CHECK_EQ(packets_of(e, RLS_PKT_MODEL_HIDDEN), hidden_before + 1,
		 "rls_packets[RLS_PKT_MODEL_HIDDEN]");
	CHECK_EQ(stats_of(e, acct, RLS_MODEL_HIDDEN).admitted, 1,
		 "rls_stats[modeler, RLS_MODEL_HIDDEN] admitted");
	CHECK(bpf_map_lookup_elem(e->maps.counters, &ck, &counter) == 0,
	      "no rls_counters entry {modeler, \"*\"}: the hidden request was not charged to the "
	      "tier's strictest model (no charge_model in the RLS_MODEL_HIDDEN limits?)");
	CHECK_EQ(counter.window_count[RLS_WINDOW_MINUTE], 1, "strictest model's minute count");
}

/*
 * README "Which model": every model that some tier names has its own counter per account;
 * models no tier names share the account's "*" counter.
 */
static void test_star_counters_per_named_model(void **state)
{
	struct env *e = need_env(state);
	__u32 alice = account_id(e, "alice"), x = model_id(e, "gpt-x");
	char req[1024];
	size_t len;
	struct result r;
	int i;

	leave_room_in_window(60, 5000);
	for (i = 0; i < 6; i++) {
		struct conn c = conn4((uint16_t)(45801 + i));

		/* 3 for gpt-x (named by tier models), 3 for models no tier names. */
		len = http_request(req, sizeof(req),
				   i < 3 ? BEARER(KEY_ALICE) "x-model: gpt-x\r\n"
					 : i == 3 ? BEARER(KEY_ALICE) "x-model: unnamed-1\r\n"
						  : BEARER(KEY_ALICE), NULL);
		conn_send(e, &c, req, len, 0, &r);
		expect_action(&r, XDP_PASS, i < 3 ? "alice's gpt-x request" : "alice's other request");
	}
	CHECK_EQ(stats_of(e, alice, x).admitted, 3, "alice gpt-x admitted");
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 3, "alice \"*\" admitted");
	/* Another unnamed model: the shared "*" counter is used up. */
	{
		struct conn c = conn4(45810);

		len = http_request(req, sizeof(req), BEARER(KEY_ALICE) "x-model: unnamed-2\r\n", NULL);
		conn_send(e, &c, req, len, 0, &r);
		expect_429(&r, "4th request of alice for models no tier names");
	}
}

/*
 * A hidden model is charged the tier's strictest limits: in tier pricey that is gpt-big's
 * rpm 1, although "*" is unlimited there.
 */
static void test_hidden_model_strictest_limits(void **state)
{
	struct env *e = need_env(state);
	__u32 pricey = account_id(e, "pricey");
	char req[2048];
	struct rls_stats st;
	struct result r;
	int n, i;

	n = snprintf(req, sizeof(req),
		     "POST /v1/chat/completions HTTP/1.1\r\n"
		     "Host: gw.test\r\n" BEARER(KEY_PRICEY)
		     "Content-Type: application/x-www-form-urlencoded\r\n"
		     "Content-Length: 24\r\n"
		     "\r\n"
		     "model=gpt-big&prompt=hi!");
	leave_room_in_window(60, 3000);
	for (i = 0; i < 2; i++) {
		struct conn c = conn4((uint16_t)(45901 + i));

		conn_send(e, &c, req, (size_t)n, 0, &r);
		if (i == 0)
			expect_action(&r, XDP_PASS, "1st hidden-model request of tier pricey");
		else
			expect_429(&r, "2nd hidden-model request of tier pricey (strictest: rpm 1)");
	}
	st = stats_of(e, pricey, RLS_MODEL_HIDDEN);
	CHECK_EQ(st.admitted, 1, "pricey hidden admitted");
	CHECK_EQ(rejected_total(&st), 1, "pricey hidden rejected");
}

/* A body whose prompt is long enough to push what follows past the 2048-byte parse window. */
static const char *long_body(char *buf, size_t cap, size_t prompt, const char *before,
			     const char *after)
{
	size_t n;

	n = (size_t)snprintf(buf, cap, "{%s\"messages\":[{\"role\":\"user\",\"content\":\"",
			     before);
	CHECK(n + prompt + 64 + strlen(after) < cap, "test bug: long body does not fit");
	memset(buf + n, 'a', prompt);
	snprintf(buf + n + prompt, cap - n - prompt, "\"}]%s}", after);
	return buf;
}

static void test_model_past_parse_window(void **state)
{
	struct env *e = need_env(state);
	__u32 acct = account_id(e, "modeler"), x = model_id(e, "gpt-x");
	__u64 hidden_before = packets_of(e, RLS_PKT_MODEL_HIDDEN);
	char body[3200];

	/* A whole body in one 2.7 kB segment, its model after the first 2048 bytes: found. */
	expect_model(e, 45401, "", long_body(body, sizeof(body), 2500, "", ",\"model\":\"gpt-x\""),
		     x, "model past the first 2048-byte window");
	CHECK_EQ(packets_of(e, RLS_PKT_MODEL_HIDDEN), hidden_before,
		 "rls_packets[RLS_PKT_MODEL_HIDDEN]");
	/* The same size of segment with the model up front. */
	expect_model(e, 45402, "", long_body(body, sizeof(body), 2500, "\"model\":\"gpt-x\",", ""),
		     x, "model before a long prompt");
	CHECK_EQ(stats_of(e, acct, x).admitted, 2, "gpt-x admitted");
}

/*
 * Tier pricey names only gpt-big (rpm 1), so every other model is unlimited: a request for
 * gpt-big that the parser files under another model is a way around the limit. Uses up the
 * minute's single gpt-big request, then sends body on a new connection: it must be refused.
 */
static void expect_pricey_refused(struct env *e, uint16_t sport, const char *const bodies[],
				  size_t n, const char *bug)
{
	struct conn c = conn4(sport);
	char req[2048];
	size_t len, i, admitted = 0;
	struct result r;

	len = http_request(req, sizeof(req), BEARER(KEY_PRICEY), "{\"model\":\"gpt-big\"}");
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "first gpt-big request of the minute");
	for (i = 0; i < n; i++) {
		struct conn d = conn4((uint16_t)(sport + 1 + i));

		len = http_request(req, sizeof(req), BEARER(KEY_PRICEY), bodies[i]);
		conn_send(e, &d, req, len, 0, &r);
		if (r.action == XDP_PASS) {
			print_error("# admitted over gpt-big's rpm 1: %s\n", bodies[i]);
			admitted++;
		} else {
			expect_429(&r, bodies[i]);
		}
	}
	if (admitted)
		fail_msg("BUG: %zu of %zu requests for gpt-big over its rpm 1 were admitted: %s",
			 admitted, n, bug);
}

static void test_model_escaped_not_evading(void **state)
{
	struct env *e = need_env(state);

	static const char *const bodies[] = {
		"{\"model\":\"gpt\\u002dbig\",\"messages\":[]}",
		"{\"mod\\u0065l\":\"gpt-big\",\"messages\":[]}",
	};

	leave_room_in_window(60, 3000);
	expect_pricey_refused(e, 45501, bodies, ARRAY_SIZE(bodies),
			      "bpf/parse_http.h rls_json_model_value() gives up on a backslash (in "
			      "the value or the key) and "
			      "the request is charged to \"*\" (here unlimited), while the upstream "
			      "decodes the name to gpt-big; an escaped name must count as hidden "
			      "(strictest limits)");
}

static void test_model_repeated_key_not_evading(void **state)
{
	struct env *e = need_env(state);

	static const char *const bodies[] = {
		"{\"model\":\"gpt-small\",\"messages\":[],\"model\":\"gpt-big\"}",
	};

	leave_room_in_window(60, 3000);
	expect_pricey_refused(e, 45601, bodies, ARRAY_SIZE(bodies),
			      "bpf/parse_http.h stops at the first top-level \"model\", while common "
			      "upstream JSON parsers (Python json, Go encoding/json) keep the last; "
			      "a second top-level \"model\" must make the model hidden");
}

/* How many tokens one admitted request of account tokener reserved (its tpd total grows by it). */
static __s64 tokens_reserved_by(struct env *e, uint16_t sport, const char *body, size_t *req_len)
{
	struct rls_counter_key ck = { .account = account_id(e, "tokener"), .model = RLS_MODEL_OTHER };
	struct rls_counter before = {}, after = {};
	struct conn c = conn4(sport);
	char req[2048];
	struct result r;

	bpf_map_lookup_elem(e->maps.counters, &ck, &before);
	*req_len = http_request(req, sizeof(req), BEARER(KEY_TOKENS), body);
	conn_send(e, &c, req, *req_len, 0, &r);
	expect_action(&r, XDP_PASS, "request under its token limits");
	CHECK(bpf_map_lookup_elem(e->maps.counters, &ck, &after) == 0, "tokener's counter");
	return after.token_day_used - before.token_day_used;
}

/* The reservation: the request's size in tokens plus its max_tokens, capped, or reserve_tokens. */
static void test_reservation_uses_max_tokens(void **state)
{
	struct env *e = need_env(state);
	size_t len;
	__s64 got;

	got = tokens_reserved_by(e, 46001, "{\"model\":\"m\",\"max_tokens\":300}", &len);
	CHECK_EQ(got, (__s64)((len + 3) / 4 + 300), "reservation with max_tokens 300");
	got = tokens_reserved_by(e, 46002, "{\"max_completion_tokens\": 250,\"model\":\"m\"}", &len);
	CHECK_EQ(got, (__s64)((len + 3) / 4 + 250), "reservation with max_completion_tokens 250");
	got = tokens_reserved_by(e, 46003, "{\"model\":\"m\",\"max_tokens\":99999}", &len);
	CHECK_EQ(got, (__s64)((len + 3) / 4 + 500), "max_tokens capped at reserve_max 500");
	got = tokens_reserved_by(e, 46004, "{\"model\":\"m\",\"messages\":[{\"max_tokens\":9}]}", &len);
	CHECK_EQ(got, (__s64)((len + 3) / 4 + 100), "no top-level max_tokens: reserve_tokens 100");
}

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

/* ---- 5: what is not a request passes, untouched ---- */

static void expect_pass_frame(struct env *e, const uint8_t *frame, size_t len, const char *what)
{
	struct result r;

	memcpy(r.in, frame, len);
	r.in_len = len;
	r.action = run_frame(e, r.in, r.in_len, r.out, &r.out_len);
	expect_action(&r, XDP_PASS, what);
	expect_untouched(&r, what);
}

/* The frame came back as a bare RST toward the upstream, at the segment's own sequence. */
static void expect_reset_spec(struct env *e, const struct tp_spec *s, const char *what)
{
	__u64 before = packets_of(e, RLS_PKT_STREAM_RESET);
	size_t l4 = 14 + (s->vlan ? 4 : 0) + (s->ipv6 ? 40 : 20);
	struct result r;

	send_spec(e, s, &r);
	expect_action(&r, XDP_PASS, what);
	CHECK(r.out_len == l4 + 20, "%s: the reset frame is %u bytes, not %zu", what, r.out_len,
	      l4 + 20);
	CHECK_EQ(r.out[l4 + 13], TP_RST, "TCP flags of the reset");
	CHECK_EQ(tp_get32(r.out + l4 + 4), s->seq, "the reset's sequence number");
	CHECK_EQ(packets_of(e, RLS_PKT_STREAM_RESET), before + 1, "rls_packets[STREAM_RESET]");
}

static void expect_pass_spec(struct env *e, const struct tp_spec *s, const char *what)
{
	struct result r;

	send_spec(e, s, &r);
	expect_action(&r, XDP_PASS, what);
	expect_untouched(&r, what);
}

static void test_malformed_all_pass(void **state)
{
	struct env *e = need_env(state);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct conn c = conn4(46001), c6 = conn6(46002);
	uint8_t frame[TP_MAX_FRAME];
	struct tp_spec s;
	size_t flen, l3 = 14;
	struct result r;
	__u32 alice = account_id(e, "alice");
	struct rls_stats st;
	unsigned seed = 12345, i, j;
	static const uint8_t tls[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc,
				       0x03, 0x03, 0xaa, 0xbb, 0xcc, 0xdd, 0xee };

	/*
	 * Bytes to the watched port that no HTTP/1.1 server reads as a request: the connection
	 * is reset (the segment becomes a RST toward the upstream), never passed unread.
	 */
	s = spec_of(&c, tls, sizeof(tls), 0);
	expect_reset_spec(e, &s, "TLS ClientHello bytes to port 8000");
	s = spec_of(&c, "HELLO WORLD, NOT HTTP\r\n\r\n", 25, 0);
	s.sport++;
	expect_reset_spec(e, &s, "text that is not HTTP");
	s = spec_of(&c, "POST /v1/models XTTP/1.1\r\n" BEARER(KEY_ALICE) "\r\n",
		    26 + strlen(BEARER(KEY_ALICE)) + 2, 0);
	s.sport += 2;
	expect_reset_spec(e, &s, "request line without HTTP/1.x");
	s = spec_of(&c, "get /v1/models HTTP/1.1\r\n\r\n", 27, 0);
	s.sport += 3;
	expect_reset_spec(e, &s, "a method in lower case");
	/* The start of a request: passed, and followed on. */
	s = spec_of(&c, "GET ", 4, 0);
	s.sport += 4;
	expect_pass_spec(e, &s, "4-byte segment");

	/* A valid request, but not to a watched port. */
	s = spec_of(&c, req, len, 0);
	s.dport = 8001;
	expect_pass_spec(e, &s, "request to port 8001");
	s = spec_of(&c, req, len, 0);
	s.dport = 80;
	s.sport = 8000; /* the source port is not the service */
	expect_pass_spec(e, &s, "request from port 8000 to port 80");

	/* Control segments. */
	s = spec_of(&c, NULL, 0, TP_ACK);
	expect_pass_spec(e, &s, "pure ACK");
	s = spec_of(&c, NULL, 0, TP_SYN);
	expect_pass_spec(e, &s, "SYN");
	s = spec_of(&c, req, len, TP_SYN);
	send_spec(e, &s, &r);
	expect_action(&r, XDP_DROP, "SYN carrying a request (TFO): the server would read it unseen");
	s = spec_of(&c, NULL, 0, TP_RST);
	expect_pass_spec(e, &s, "RST");
	s = spec_of(&c, NULL, 0, TP_FIN | TP_ACK);
	expect_pass_spec(e, &s, "FIN");

	/* Truncations. */
	s = spec_of(&c, req, len, 0);
	flen = tp_build(&s, frame, sizeof(frame));
	tp_put16(frame + l3 + 2, (uint16_t)(tp_get16(frame + l3 + 2) + 100));
	tp_put16(frame + l3 + 10, 0);
	tp_put16(frame + l3 + 10, tp_fold(tp_sum(0, frame + l3, 20)));
	expect_pass_frame(e, frame, flen, "IPv4 total length 100 bytes past the frame");
	tp_put16(frame + l3 + 2, 30);
	tp_put16(frame + l3 + 10, 0);
	tp_put16(frame + l3 + 10, tp_fold(tp_sum(0, frame + l3, 20)));
	expect_pass_frame(e, frame, flen, "IPv4 total length shorter than IP + TCP headers");
	flen = tp_build(&s, frame, sizeof(frame));
	expect_pass_frame(e, frame, l3 + 20 + 10, "TCP header cut after 10 bytes");
	expect_pass_frame(e, frame, l3 + 20, "IPv4 header, no TCP header");
	expect_pass_frame(e, frame, l3 + 10, "IPv4 header cut");
	expect_pass_frame(e, frame, 14, "Ethernet header only");
	expect_pass_frame(e, frame, l3 + 20 + 20 + 10, "request cut after 10 payload bytes");
	frame[l3 + 20 + 12] = 0x40; /* doff 4 */
	expect_pass_frame(e, frame, flen, "TCP data offset 4");
	frame[l3 + 20 + 12] = 0xf0; /* doff 15: 60 bytes, fine here, but options are garbage */
	tp_put16(frame + l3 + 2, 20 + 40);
	tp_put16(frame + l3 + 10, 0);
	tp_put16(frame + l3 + 10, tp_fold(tp_sum(0, frame + l3, 20)));
	expect_pass_frame(e, frame, flen, "TCP data offset past the IP length");

	s = spec_of(&c6, req, len, 0);
	flen = tp_build(&s, frame, sizeof(frame));
	tp_put16(frame + l3 + 4, (uint16_t)(tp_get16(frame + l3 + 4) + 64));
	expect_pass_frame(e, frame, flen, "IPv6 payload length past the frame");
	flen = tp_build(&s, frame, sizeof(frame));
	expect_pass_frame(e, frame, l3 + 40 + 8, "IPv6, TCP header cut");
	expect_pass_frame(e, frame, l3 + 30, "IPv6 header cut");

	s = spec_of(&c, req, len, 0);
	s.vlan = 1;
	s.vlan_tci = 7;
	flen = tp_build(&s, frame, sizeof(frame));
	expect_pass_frame(e, frame, 16, "802.1Q tag cut");
	expect_pass_frame(e, frame, 18 + 12, "tagged IPv4 header cut");

	/* What the parser deliberately does not follow (options, extension headers,
	 * first fragments and urgent data are in "the IP layer cannot hide a request"). */
	s = spec_of(&c, req, len, 0);
	s.frag_off = 0x0010;
	expect_pass_spec(e, &s, "later IPv4 fragment (offset 128)");
	s = spec_of(&c, req, len, 0);
	s.vlan = 1;
	s.vlan_tci = 5;
	s.outer_tpid = 0x88a8;
	s.outer_tci = 6;
	flen = tp_build(&s, frame, sizeof(frame));
	memmove(frame + 16, frame + 12, flen - 12); /* a third tag: not followed */
	tp_put16(frame + 12, 0x88a8);
	tp_put16(frame + 14, 4);
	expect_pass_frame(e, frame, flen + 4, "three VLAN tags");
	s = spec_of(&c, req, len, 0);
	flen = tp_build(&s, frame, sizeof(frame));
	frame[l3 + 9] = 17; /* UDP */
	tp_put16(frame + l3 + 10, 0);
	tp_put16(frame + l3 + 10, tp_fold(tp_sum(0, frame + l3, 20)));
	expect_pass_frame(e, frame, flen, "UDP datagram carrying a request");
	flen = tp_build(&s, frame, sizeof(frame));
	tp_put16(frame + 12, 0x0806);
	expect_pass_frame(e, frame, flen, "ARP ethertype");

	/* Garbage: random bytes under every ethertype the parser looks at. */
	for (i = 0; i < 400; i++) {
		static const uint16_t types[] = { TP_ETH_P_IP, TP_ETH_P_IPV6, TP_ETH_P_8021Q, 0x88a8,
						  0x1234 };
		char what[64];

		flen = 14 + rand_r(&seed) % 200;
		for (j = 0; j < flen; j++)
			frame[j] = (uint8_t)rand_r(&seed);
		tp_put16(frame + 12, types[i % ARRAY_SIZE(types)]);
		if (i % 3 == 0 && flen > 14 + 20) {
			/* Plausible IPv4/TCP to port 8000 with random everything else. */
			tp_put16(frame + 12, TP_ETH_P_IP);
			frame[14] = 0x45;
			frame[14 + 9] = 6;
			tp_put16(frame + 14 + 6, 0);
			if (flen > 14 + 20 + 4)
				tp_put16(frame + 14 + 20 + 2, PORT);
			if (flen > 14 + 20 + 13)
				frame[14 + 20 + 13] &= ~TP_URG; /* urgent data is dropped, not passed */
		}
		snprintf(what, sizeof(what), "garbage frame %u (%zu bytes)", i, flen);
		expect_pass_frame(e, frame, flen, what);
	}

	/* Nothing above was charged... */
	st = stats_of(e, alice, 0);
	CHECK_EQ(st.admitted, 0, "alice charged for something not a request");
	CHECK_EQ(rejected_total(&st), 0, "alice rejected");
	CHECK(packets_of(e, RLS_PKT_UNPARSED) > 0, "rls_packets[RLS_PKT_UNPARSED] never counted");
	CHECK(packets_of(e, RLS_PKT_STREAM_RESET) > 0, "rls_packets[RLS_PKT_STREAM_RESET] never counted");
	/* ...and the program still works (a new connection on ports reset above: its SYN first). */
	c = conn4(46003);
	s = spec_of(&c, NULL, 0, TP_SYN);
	s.seq = c.seq - 1;
	expect_pass_spec(e, &s, "SYN of a new connection");
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "a well-formed request afterwards");
	CHECK_EQ(stats_of(e, alice, 0).admitted, 1, "alice admitted for the well-formed request");
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
	/* rpm 60, default burst 1: one request per second. */
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
			 "exceeded window is reported (bpf/policy.h rls_admit() keeps the first "
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

/* Use up alice's rpm 3 on another connection, then get a 429 on c. */
static void rejected_on(struct env *e, struct conn *c, const char *req, size_t len,
			struct result *r)
{
	struct conn other = conn4((uint16_t)(c->sport + 1000));
	int i;

	for (i = 0; i < 3; i++) {
		conn_send(e, &other, req, len, 0, r);
		expect_action(r, XDP_PASS, "request under the limit");
	}
	conn_send(e, c, req, len, 0, r);
	expect_429(r, "request over the limit");
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

static void test_ack_of_429_becomes_rst(void **state)
{
	struct env *e = need_env(state);
	struct conn rounds[3] = { conn6(48301), conn4(48302), conn4(48303) };
	static const uint8_t client_flags[3] = { TP_ACK | TP_FIN, TP_ACK, TP_RST | TP_ACK };
	static const char *const client_what[3] = {
		"client ACK|FIN acknowledging the 429's FIN (IPv6)",
		"client pure ACK acknowledging the 429's FIN (IPv4)",
		"client RST after the 429 (IPv4)",
	};
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct result rej, r;
	struct tp_parsed p429, in, p;
	char why[256];
	uint32_t request_seq;
	int round;

	for (round = 0; round < 3; round++) {
		struct conn *cc = &rounds[round];
		struct env *ee = e;

		if (round) {
			/* A fresh budget for the next round: reload. */
			env_close(ee);
			CHECK(env_open(ee, table_default) == 0, "reload: %s", ee->why);
		}
		request_seq = cc->seq;
		rejected_on(ee, cc, req, len, &rej);
		CHECK(tp_parse(rej.out, rej.out_len, &p429, why, sizeof(why)) == 0, "429: %s", why);

		/* The client acknowledges the 429 and its FIN, or resets. */
		cc->ack = p429.seq + (uint32_t)p429.len + 1;
		conn_send(ee, cc, NULL, 0, client_flags[round], &r);
		expect_action(&r, XDP_PASS, client_what[round]);
		CHECK(tp_parse(r.in, r.in_len, &in, why, sizeof(why)) == 0, "ACK: %s", why);
		CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0, "the RST frame: %s", why);
		CHECK_EQ(p.flags, TP_RST, "reset flags (RST only)");
		CHECK_EQ(p.seq, request_seq, "reset seq (the rejected request's seq)");
		CHECK_EQ(p.len, 0, "reset payload length");
		CHECK(p.ip_csum_ok, "reset IPv4 header checksum is wrong");
		CHECK(p.tcp_csum_ok, "reset TCP checksum is wrong");
		/* Still from the client to the server: it is meant for the upstream. */
		same_bytes(p.saddr, in.saddr, cc->ipv6 ? 16 : 4, "reset source address");
		same_bytes(p.daddr, in.daddr, cc->ipv6 ? 16 : 4, "reset destination address");
		CHECK_EQ(p.sport, in.sport, "reset source port");
		CHECK_EQ(p.dport, in.dport, "reset destination port");
		same_bytes(p.dmac, in.dmac, 6, "reset destination MAC");
		CHECK_EQ(packets_of(ee, RLS_PKT_RESET_UPSTREAM), 1, "rls_packets[RESET_UPSTREAM]");

		/* The flow is forgotten: a late ACK passes untouched. */
		conn_send(ee, cc, NULL, 0, TP_ACK, &r);
		expect_action(&r, XDP_PASS, "ACK after the reset");
		expect_untouched(&r, "ACK after the reset");
	}
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
	cpu_set_t set;
	int i, err;

	CPU_ZERO(&set);
	CPU_SET(w->cpu, &set);
	err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (err)
		snprintf(w->why, sizeof(w->why), "pthread_setaffinity_np(cpu %d): %s", w->cpu,
			 strerror(err));
	snprintf(client, sizeof(client), "198.18.20.%d", 1 + w->index);
	/* Both workers start together. */
	while (!__atomic_load_n(w->go, __ATOMIC_ACQUIRE))
		sched_yield();
	if (err || __atomic_load_n(w->go, __ATOMIC_ACQUIRE) < 0)
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

		CHECK(bpf_map_lookup_elem(e->maps.stats, &key, per_cpu) == 0,
		      "no rls_stats entry for account exact");
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

/* ---- 9: the IP layer cannot hide a request ---- */

/*
 * IPv4 options, IPv6 extension headers and two VLAN tags are followed to the request, which
 * is charged like any other; first fragments and urgent data to a watched port are dropped
 * and counted; the 429 never echoes the client's options or extension headers.
 */

/* Send s; it must pass untouched and leave alice uncharged. */
static void expect_pass_uncharged(struct env *e, const struct tp_spec *s, const char *what)
{
	__u32 alice = account_id(e, "alice");
	__u64 before = stats_of(e, alice, RLS_MODEL_OTHER).admitted;

	expect_pass_spec(e, s, what);
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, before, what);
}

/* Send s; it must be dropped, counted once more under event, and leave alice uncharged. */
static void expect_dropped_as(struct env *e, const struct tp_spec *s, __u32 event,
			      const char *what)
{
	__u32 alice = account_id(e, "alice");
	__u64 before = packets_of(e, event), admitted = stats_of(e, alice, RLS_MODEL_OTHER).admitted;
	struct result r;

	send_spec(e, s, &r);
	expect_action(&r, XDP_DROP, what);
	CHECK_EQ(packets_of(e, event), before + 1, what);
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, admitted, what);
}

static void test_ip_ipv4_options_charged_429_stripped(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(49001);
	struct tp_parsed in;
	struct reply_429 rep;
	struct result r;
	char why[256];

	c.ip_options = 10; /* 40 bytes, ihl 15: a loose source route, then NOPs */
	leave_room_in_window(60, 5000);
	admit_until_limit(e, &c, "alice", &r);
	CHECK(tp_parse(r.in, r.in_len, &in, why, sizeof(why)) == 0, "test bug: request: %s", why);
	CHECK_EQ(in.ip_hdr_len, 60, "test bug: the request's IPv4 header length");
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK_EQ(r.out[14], 0x45, "429 version and ihl byte");
	CHECK(!memmem(r.out, r.out_len, "\x83\x07\x08\xc6\x12", 5),
	      "the 429 carries the request's source route option");
}

static void test_ip_ipv6_ext_chain_charged_429_stripped(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn6(49011);
	struct tp_parsed in;
	struct reply_429 rep;
	struct result r;
	char why[256];

	c.ipv6_chain = "hdrd"; /* hop-by-hop, destination options, routing, destination options */
	leave_room_in_window(60, 5000);
	admit_until_limit(e, &c, "alice", &r);
	CHECK(tp_parse(r.in, r.in_len, &in, why, sizeof(why)) == 0, "test bug: request: %s", why);
	CHECK_EQ(in.ipv6_exts, 4, "test bug: the request's extension headers");
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK_EQ(r.out[14 + 6], 6, "429 IPv6 next header (TCP, no extension headers)");
}

static void test_ip_two_vlan_tags_charged_429_keeps_both(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(49021), c6 = conn6(49022);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct reply_429 rep;
	struct result r;

	/* 802.1ad outer (service) tag, 802.1Q inner (customer) tag. */
	c.vlan = 1;
	c.tci = 0x2064; /* PCP 1, VID 100 */
	c.outer_tpid = TP_ETH_P_8021AD;
	c.outer_tci = 0x00c8; /* VID 200 */
	leave_room_in_window(60, 5000);
	admit_until_limit(e, &c, "alice", &r);
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK_EQ(r.out[12] << 8 | r.out[13], TP_ETH_P_8021AD, "429 outer TPID");
	CHECK_EQ(r.out[14] << 8 | r.out[15], 0x00c8, "429 outer TCI");
	CHECK_EQ(r.out[16] << 8 | r.out[17], TP_ETH_P_8021Q, "429 inner TPID");
	CHECK_EQ(r.out[18] << 8 | r.out[19], 0x2064, "429 inner TCI");
	CHECK_EQ(r.out[20] << 8 | r.out[21], TP_ETH_P_IP, "429 ethertype inside the tags");

	/* Two 802.1Q tags, IPv6 with a destination options header: still alice's, over. */
	c6.vlan = 1;
	c6.tci = 7;
	c6.outer_tpid = TP_ETH_P_8021Q;
	c6.outer_tci = 8;
	c6.ipv6_chain = "d";
	conn_send(e, &c6, req, len, 0, &r);
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK_EQ(r.out[20] << 8 | r.out[21], TP_ETH_P_IPV6, "429 ethertype inside two 802.1Q tags");
	{
		struct rls_stats st = stats_of(e, account_id(e, "alice"), RLS_MODEL_OTHER);

		CHECK_EQ(st.admitted, 3, "alice admitted");
		CHECK_EQ(rejected_total(&st), 2, "alice rejected (one 429 per tag layout)");
	}
}

static void test_ip_fragments(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(49031), c6 = conn6(49032);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL), flen, l3 = 14;
	uint8_t frame[TP_MAX_FRAME];
	struct tp_spec s;
	struct result r;
	__u64 unparsed;

	/* IPv4: the first fragment (MF, offset 0) carries the TCP header and the ports. */
	s = spec_of(&c, req, len, 0);
	s.frag_off = 0x2000;
	expect_dropped_as(e, &s, RLS_PKT_FRAGMENT_DROPPED, "first IPv4 fragment to port 8000");
	s.ip_options = 3;
	expect_dropped_as(e, &s, RLS_PKT_FRAGMENT_DROPPED, "first IPv4 fragment with options");
	s.ip_options = 0;
	s.dport = 8001;
	expect_pass_uncharged(e, &s, "first IPv4 fragment to port 8001");
	/* Later fragments hold no TCP header; without the first they are never reassembled. */
	s = spec_of(&c, req, len, 0);
	s.frag_off = 0x2000 | 0x0010;
	expect_pass_uncharged(e, &s, "middle IPv4 fragment (offset 128, MF)");
	s.frag_off = 0x0010;
	expect_pass_uncharged(e, &s, "last IPv4 fragment (offset 128)");

	/* IPv6: the fragment header, alone or behind others. */
	s = spec_of(&c6, req, len, 0);
	s.ipv6_chain = "f";
	s.ipv6_frag = 1; /* offset 0, M */
	expect_dropped_as(e, &s, RLS_PKT_FRAGMENT_DROPPED, "first IPv6 fragment to port 8000");
	s.ipv6_chain = "hdf";
	expect_dropped_as(e, &s, RLS_PKT_FRAGMENT_DROPPED,
			  "first IPv6 fragment behind hop-by-hop and destination options");
	s.dport = 8001;
	expect_pass_uncharged(e, &s, "first IPv6 fragment to port 8001");
	s = spec_of(&c6, req, len, 0);
	s.ipv6_chain = "f";
	s.ipv6_frag = 16 << 3 | 1;
	expect_pass_uncharged(e, &s, "middle IPv6 fragment (offset 128, M)");
	s.ipv6_frag = 16 << 3;
	expect_pass_uncharged(e, &s, "last IPv6 fragment (offset 128)");
	CHECK_EQ(packets_of(e, RLS_PKT_FRAGMENT_DROPPED), 4, "rls_packets[FRAGMENT_DROPPED]");

	/*
	 * RFC 7112: a first fragment whose TCP header is cut. With the ports in it, it goes the
	 * way of every first fragment; without them (2 bytes) its port is unknown: passed as
	 * unparsed, and the kernel discards it anyway (RFC 8200 4.5).
	 */
	s = spec_of(&c6, req, len, 0);
	s.ipv6_chain = "f";
	s.ipv6_frag = 1;
	flen = tp_build(&s, frame, sizeof(frame));
	tp_put16(frame + l3 + 4, 8 + 10);
	memcpy(r.in, frame, l3 + 40 + 8 + 10);
	r.in_len = l3 + 40 + 8 + 10;
	r.action = run_frame(e, r.in, r.in_len, r.out, &r.out_len);
	expect_action(&r, XDP_DROP, "first IPv6 fragment with 10 bytes of TCP header");
	CHECK_EQ(packets_of(e, RLS_PKT_FRAGMENT_DROPPED), 5, "rls_packets[FRAGMENT_DROPPED]");
	tp_put16(frame + l3 + 4, 8 + 2);
	unparsed = packets_of(e, RLS_PKT_UNPARSED);
	expect_pass_frame(e, frame, l3 + 40 + 8 + 2, "first IPv6 fragment with 2 bytes of TCP");
	CHECK_EQ(packets_of(e, RLS_PKT_UNPARSED), unparsed + 1, "rls_packets[UNPARSED]");
	CHECK(flen > l3 + 40 + 8 + 10, "test bug: the frame was cut");

	/* An atomic fragment (offset 0, no M) is a whole packet (RFC 6946): charged. */
	s = spec_of(&c6, req, len, 0);
	s.ipv6_chain = "f";
	s.ipv6_frag = 0;
	send_spec(e, &s, &r);
	expect_action(&r, XDP_PASS, "atomic IPv6 fragment");
	CHECK_EQ(stats_of(e, account_id(e, "alice"), RLS_MODEL_OTHER).admitted, 1,
		 "alice charged for the atomic fragment's request, and only for it");
	CHECK_EQ(packets_of(e, RLS_PKT_FRAGMENT_DROPPED), 5, "an atomic fragment is not dropped");
}

static void test_ip_urgent_dropped(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(49041), c6 = conn6(49042);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct tp_spec s;
	struct result r;

	/* "GE" + urgent byte: the server would read "GET" without its 'T'... or the reverse. */
	s = spec_of(&c, req, len, TP_ACK | TP_PSH | TP_URG);
	s.urg_ptr = 3;
	expect_dropped_as(e, &s, RLS_PKT_URGENT_DROPPED, "request with urgent data (IPv4)");
	s = spec_of(&c6, req, len, TP_ACK | TP_PSH | TP_URG);
	s.urg_ptr = 3;
	s.ipv6_chain = "d";
	expect_dropped_as(e, &s, RLS_PKT_URGENT_DROPPED, "request with urgent data (IPv6)");
	/* The urgent pointer may point into a later segment: the announcement goes too. */
	s = spec_of(&c, NULL, 0, TP_ACK | TP_URG);
	s.urg_ptr = 100;
	expect_dropped_as(e, &s, RLS_PKT_URGENT_DROPPED, "pure ACK announcing urgent data");
	s = spec_of(&c, req, len, TP_ACK | TP_PSH | TP_URG);
	s.urg_ptr = 3;
	s.dport = 8001;
	expect_pass_uncharged(e, &s, "urgent data to port 8001");
	CHECK_EQ(packets_of(e, RLS_PKT_URGENT_DROPPED), 3, "rls_packets[URGENT_DROPPED]");

	/* Sent again without URG, the same request is charged. */
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "the request without urgent data");
	CHECK_EQ(stats_of(e, account_id(e, "alice"), RLS_MODEL_OTHER).admitted, 1,
		 "alice charged for the request without urgent data");
}

static void test_ip_ext_chain_bound_and_truncation(void **state)
{
	struct env *e = need_env(state);
	struct conn c6 = conn6(49051);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL), flen, l3 = 14;
	uint8_t frame[TP_MAX_FRAME];
	__u32 alice = account_id(e, "alice");
	unsigned seed = 4242, i, j;
	struct tp_spec s;
	struct result r;
	__u64 unparsed;

	/* Eight headers: the most the parser walks (RLS_IPV6_EXT_MAX); charged. */
	s = spec_of(&c6, req, len, 0);
	s.ipv6_chain = "hdrdddfd";
	send_spec(e, &s, &r);
	expect_action(&r, XDP_PASS, "eight extension headers");
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 1, "alice charged through 8 headers");

	/*
	 * Nine: past the bound the TCP header, and so the port, is unknown. Dropped whatever
	 * the port (see RLS_IPV6_EXT_MAX in bpf/parse_packet.h): passing it would let a request
	 * hide behind the chain, and RFC 8200 allows no more than five of these headers.
	 */
	s.ipv6_chain = "hdrdddddd";
	unparsed = packets_of(e, RLS_PKT_DEEP_IPV6_DROPPED);
	send_spec(e, &s, &r);
	expect_action(&r, XDP_DROP, "nine extension headers");
	CHECK_EQ(packets_of(e, RLS_PKT_DEEP_IPV6_DROPPED), unparsed + 1,
		 "rls_packets[DEEP_IPV6_DROPPED], 9 headers");
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 1, "alice charged behind 9 headers");

	/* Truncations and lengths that run past the packet: passed, never read past the end. */
	s.ipv6_chain = "hdr";
	flen = tp_build(&s, frame, sizeof(frame));
	unparsed = packets_of(e, RLS_PKT_UNPARSED);
	expect_pass_frame(e, frame, l3 + 40 + 3, "hop-by-hop header cut after 3 bytes");
	expect_pass_frame(e, frame, l3 + 40 + 8 + 16 + 10, "routing header cut after 10 bytes");
	expect_pass_frame(e, frame, l3 + 40 + 8 + 16 + 24 + 6, "TCP header cut behind the chain");
	frame[l3 + 40 + 8 + 1] = 255; /* destination options of 2048 bytes */
	expect_pass_frame(e, frame, flen, "destination options header longer than the packet");
	flen = tp_build(&s, frame, sizeof(frame));
	tp_put16(frame + l3 + 4, 8 + 16); /* payload length ends inside the routing header */
	expect_pass_frame(e, frame, flen, "payload length ending inside the chain");
	tp_put16(frame + l3 + 4, 8 + 16 + 24 + 10); /* ...inside the TCP header */
	expect_pass_frame(e, frame, flen, "payload length ending inside the TCP header");
	CHECK_EQ(packets_of(e, RLS_PKT_UNPARSED), unparsed + 6, "rls_packets[UNPARSED], cut");

	/* Random chains: any verdict but a crash; a passed frame is untouched. */
	for (i = 0; i < 300; i++) {
		static const uint8_t kinds[] = { 0, 43, 44, 60, 6, 17 };
		char what[64];
		size_t off;

		flen = l3 + 40 + rand_r(&seed) % 160;
		for (j = 0; j < flen; j++)
			frame[j] = (uint8_t)rand_r(&seed);
		tp_put16(frame + 12, TP_ETH_P_IPV6);
		frame[l3] = 0x60;
		tp_put16(frame + l3 + 4, (uint16_t)(flen - l3 - 40 + (i % 4 == 0 ? 8 : 0)));
		frame[l3 + 6] = kinds[rand_r(&seed) % 4];
		/* Short headers mostly, chaining to more of them, so the walk goes deep. */
		for (off = l3 + 40; off + 8 <= flen; off += (frame[off + 1] + 1u) * 8u) {
			frame[off] = kinds[rand_r(&seed) % ARRAY_SIZE(kinds)];
			frame[off + 1] = (uint8_t)(rand_r(&seed) % 8 ? 0 : rand_r(&seed) % 4);
			if (off + 4 <= flen && frame[off] == 6 && off + 8 + 4 <= flen)
				tp_put16(frame + off + 8 + 2, PORT);
		}
		memcpy(r.in, frame, flen);
		r.in_len = flen;
		r.action = run_frame(e, r.in, r.in_len, r.out, &r.out_len);
		snprintf(what, sizeof(what), "random chain %u (%zu bytes)", i, flen);
		CHECK(r.action == XDP_PASS || r.action == XDP_DROP, "%s: %s", what,
		      xdp_name(r.action));
		if (r.action == XDP_PASS && (r.out_len != r.in_len || memcmp(r.in, r.out, r.in_len))) {
			/* Random bytes to the watched port are no HTTP: the connection is reset,
			 * the frame made a bare RST with its headers kept. */
			struct tp_parsed p;
			char why[128];

			CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0 &&
			      p.flags == TP_RST && p.len == 0,
			      "%s: a passed frame was changed into something not a bare RST", what);
		}
	}
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 1, "alice charged by random chains");

	/* The program still works. */
	c6 = conn6(49052);
	c6.ipv6_chain = "dd";
	conn_send(e, &c6, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "a well-formed request afterwards");
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 2, "alice charged afterwards");
}

/* The reset toward the upstream keeps the client's IP headers, with lengths and sums right. */
static void test_ip_reset_upstream_keeps_ip_extras(void **state)
{
	struct env *e = need_env(state);
	struct conn rounds[2] = { conn4(49061), conn6(49062) };
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct tp_parsed p429, in, p;
	struct result rej, r;
	char why[256];
	int round;

	rounds[0].ip_options = 10;
	rounds[1].ipv6_chain = "hdr";
	for (round = 0; round < 2; round++) {
		struct conn *cc = &rounds[round];
		uint32_t request_seq = cc->seq;

		if (round) {
			env_close(e);
			CHECK(env_open(e, table_default) == 0, "reload: %s", e->why);
		}
		rejected_on(e, cc, req, len, &rej);
		CHECK(tp_parse(rej.out, rej.out_len, &p429, why, sizeof(why)) == 0, "429: %s", why);
		CHECK_EQ(p429.ip_hdr_len, cc->ipv6 ? 40 : 20, "429 IP header length");
		CHECK(p429.tcp_csum_ok && p429.ip_csum_ok, "429 checksums");

		cc->ack = p429.seq + (uint32_t)p429.len + 1;
		conn_send(e, cc, NULL, 0, TP_ACK, &r);
		expect_action(&r, XDP_PASS, "ACK of the 429");
		CHECK(tp_parse(r.in, r.in_len, &in, why, sizeof(why)) == 0, "ACK: %s", why);
		CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0, "the RST frame: %s", why);
		CHECK_EQ(p.ip_hdr_len, cc->ipv6 ? 40 + 8 + 16 + 24 : 60,
			 "reset IP header length (the client's headers kept)");
		CHECK_EQ(p.ipv6_exts, cc->ipv6 ? 3 : 0, "reset extension headers");
		same_bytes(r.out + 14 + (cc->ipv6 ? 40 : 20), r.in + 14 + (cc->ipv6 ? 40 : 20),
			   p.ip_hdr_len - (cc->ipv6 ? 40 : 20), "reset options / extension headers");
		CHECK_EQ(p.flags, TP_RST, "reset flags (RST only)");
		CHECK_EQ(p.seq, request_seq, "reset seq (the rejected request's seq)");
		CHECK_EQ(p.len, 0, "reset payload length");
		CHECK(p.ip_csum_ok, "reset IPv4 header checksum (over the options) is wrong");
		CHECK(p.tcp_csum_ok, "reset TCP checksum is wrong");
		same_bytes(p.saddr, in.saddr, cc->ipv6 ? 16 : 4, "reset source address");
		same_bytes(p.daddr, in.daddr, cc->ipv6 ? 16 : 4, "reset destination address");
		CHECK_EQ(packets_of(e, RLS_PKT_RESET_UPSTREAM), 1, "rls_packets[RESET_UPSTREAM]");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_default, teardown)
		T(test_ipv4_admit_then_429),
		T(test_ipv6_admit_then_429),
		T(test_vlan_ipv4_429_keeps_tag),
		T(test_vlan_ipv6_429_keeps_tag),
		T(test_key_x_api_key),
		T(test_key_api_key),
		T(test_key_mixed_case_names),
		T(test_key_sha256_in_table),
		T(test_key_header_precedence),
		T(test_unknown_client_default_tier),
		T(test_account_by_cidr),
		cmocka_unit_test_setup_teardown(test_unknown_passes_without_default_tier,
						setup_no_default, teardown),
		T(test_model_from_header),
		T(test_model_from_body),
		T(test_model_nested_not_taken),
		T(test_model_hidden),
		T(test_star_counters_per_named_model),
		T(test_hidden_model_strictest_limits),
		T(test_model_past_parse_window),
		T(test_model_escaped_not_evading),
		T(test_model_repeated_key_not_evading),
		T(test_reservation_uses_max_tokens),
		T(test_429_day_headers_where_rpd_applies),
		T(test_429_large_request),
		T(test_429_request_with_fin),
		T(test_malformed_all_pass),
		T(test_429_window_limit),
		T(test_429_hourly_limit),
		T(test_429_per_second_limit),
		T(test_429_burst_smoothing),
		T(test_retry_after_is_honest),
		T(test_retry_after_covers_every_exceeded_window),
		T(test_retransmit_counted_once),
		T(test_rejected_retransmit_same_429),
		T(test_data_after_429_dropped),
		T(test_ack_of_429_becomes_rst),
		T(test_concurrency_limit_and_close),
		T(test_concurrency_keepalive_one_slot),
		T(test_reload_keeps_counters),
		T(test_exact_across_cpus),
		T(test_429_request_ids_unique),
		T(test_429_tiny_get_fits),
		T(test_anonymous_ipv6_per_prefix),
		T(test_anonymous_ipv6_prefix_128_per_address),
		T(test_anonymous_ipv6_prefix_slots),
		T(test_overflow_counters_made_at_load),
		T(test_full_anonymous_map_shares_overflow),
		T(test_no_counter_at_all_refused),
		/* 9: the IP layer cannot hide a request */
		T(test_ip_ipv4_options_charged_429_stripped),
		T(test_ip_ipv6_ext_chain_charged_429_stripped),
		T(test_ip_two_vlan_tags_charged_429_keeps_both),
		T(test_ip_fragments),
		T(test_ip_urgent_dropped),
		T(test_ip_ext_chain_bound_and_truncation),
		T(test_ip_reset_upstream_keeps_ip_extras),
#undef T
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	libbpf_set_print(libbpf_keep);
	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests_name("bpf/test_xdp", tests, NULL, NULL);
}
