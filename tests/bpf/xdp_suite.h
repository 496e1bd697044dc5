/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the XDP suites (test_xdp_*.c) share: the tier table every case runs under, and the
 * checks of a 429's bytes, headers and body. Each suite is one feature of the XDP program:
 * who is counted and how much (admit), where the key and the model come from (identify), the
 * 429 and the connection after it (reply), what is not a request (parse), and the byte
 * stream cut every way (stream).
 *
 * Needs root and BPF. A suite that cannot load the program fails, saying why: it never skips.
 */
#ifndef RLS_TEST_XDP_SUITE_H
#define RLS_TEST_XDP_SUITE_H

#include "cases.h"

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

/* smooth shapes: XDP, which cannot hold a request, still refuses it (test_xdp_reply.c). */
#define TABLE_TIERS                                                                     \
	"'tiers': {"                                                                    \
	"  'small':  {'*': {'rpm': 3, 'burst': 3, 'rpd': 1000}},"                       \
	"  'smooth': {'*': {'rpm': 60, 'shape': {'max_delay_ms': 5000}}},"              \
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

#define TABLE_IDENTIFY                                                                  \
	" 'identify': {'key_headers': ['authorization', 'x-api-key', 'api-key'],"       \
	"              'model_header': 'x-model'},"

#define TABLE_HEAD "{'listen': {'ports': [8000]}," TABLE_IDENTIFY

static const char table_default[] = TABLE_HEAD TABLE_TIERS ", 'default_tier': 'anon'}";
static const char table_no_default[] = TABLE_HEAD TABLE_TIERS "}";

static inline int setup_default(void **state)
{
	return setup_with(state, table_default);
}

static inline int setup_no_default(void **state)
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
static inline const char *header_value(const char *hdrs, const char *name, char *val, size_t cap)
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

static inline long header_integer(const char *hdrs, const char *name)
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
static inline void check_429_id_and_retry(const char *hdrs, struct reply_429 *out)
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

/*
 * Everything the 429 written over request r must be, whichever program wrote it.
 * want_message: the error message; want_limit: x-ratelimit-limit-requests, -1 for any.
 */
static inline void check_429_frame(const struct result *r, const char *want_message,
				   long want_limit, struct reply_429 *out)
{
	const struct tp_spec *s = &r->spec;
	struct tp_parsed in, p;
	char why[256], text[TP_MAX_FRAME + 1], val[128];
	const char *body;
	size_t body_len, addr_len = s->ipv6 ? 16 : 4;
	json_error_t jerr;
	json_t *root, *msg;

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
	/* Whether it carries our FIN is the caller's to check. */
	CHECK_EQ(p.flags & ~TP_FIN, TP_ACK | TP_PSH, "429 TCP flags (ACK|PSH, FIN or not)");
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

/* The 429 XDP sends back over request r (XDP_TX): check_429_frame(). */
static inline void check_429(const struct result *r, const char *want_message, long want_limit,
			     struct reply_429 *out)
{
	struct tp_parsed p;
	char why[256];

	expect_action(r, XDP_TX, "over-limit request");
	check_429_frame(r, want_message, want_limit, out);
	CHECK(tp_parse(r->out, r->out_len, &p, why, sizeof(why)) == 0, "the 429 frame: %s", why);
	/* Our FIN only where the client closed already: else it closes on reading the 429. */
	CHECK_EQ(p.flags & TP_FIN, r->spec.flags & TP_FIN, "429 FIN (where the request had one)");
}

/* Quick check that r is a 429 at all (the full check is check_429). */
static inline void expect_429(const struct result *r, const char *what)
{
	struct tp_parsed p;
	char why[256];

	expect_action(r, XDP_TX, what);
	CHECK(tp_parse(r->out, r->out_len, &p, why, sizeof(why)) == 0, "%s: reply frame: %s", what,
	      why);
	CHECK(p.len > 13 && !memcmp(p.payload, "HTTP/1.1 429 ", 13), "%s: reply is not a 429",
	      what);
}

/* One request with the given header lines from CLIENT4; which account was charged. */
static inline void expect_charged(struct env *e, uint16_t sport, const char *headers,
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

/* A body whose prompt is long enough to push what follows past the 2048-byte parse window. */
static inline const char *long_body(char *buf, size_t cap, size_t prompt, const char *before,
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

/* Use up alice's rpm 3 on another connection, then get a 429 on c. */
static inline void rejected_on(struct env *e, struct conn *c, const char *req, size_t len,
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

static inline void admit_until_limit(struct env *e, struct conn *c, const char *account,
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

/* What map_holding() looks for, and what it found, through rls_map_walk(). */
struct map_holding_walk {
	const char *text;
	size_t text_len, key_size, value_bytes;
	bool found;
};

/* An rls_map_walk() visitor: does this entry hold any 8 bytes of the text in a row? */
static inline void map_holding_visit(const void *key, const void *value, void *ctx)
{
	struct map_holding_walk *w = ctx;
	size_t i;

	for (i = 0; i + 8 <= w->text_len && !w->found; i++)
		w->found = memmem(key, w->key_size, w->text + i, 8) ||
			   memmem(value, w->value_bytes, w->text + i, 8);
}

/*
 * Of every map the program has, but the per-CPU work space (never pinned: it holds the packet
 * being read) and the ring buffer (responses' events): the name of the first whose keys or
 * values hold any 8 bytes of text in a row; NULL where none does.
 */
static inline const char *map_holding(struct env *e, const char *text)
{
	struct map_holding_walk w = { .text = text, .text_len = strlen(text) };
	struct bpf_map *m;

	CHECK(w.text_len >= 8, "test bug: text under 8 bytes");
	bpf_object__for_each_map(m, e->skel->obj) {
		enum bpf_map_type t = bpf_map__type(m);

		if (t == BPF_MAP_TYPE_RINGBUF || t == BPF_MAP_TYPE_PROG_ARRAY ||
		    strstr(bpf_map__name(m), "_scratch"))
			continue;
		w.key_size = bpf_map__key_size(m);
		CHECK(rls_map_value_bytes(bpf_map__fd(m), &w.value_bytes) == 0 &&
		      rls_map_walk(bpf_map__fd(m), 0, map_holding_visit, &w) == 0,
		      "walking %s", bpf_map__name(m));
		if (w.found)
			return bpf_map__name(m);
	}
	return NULL;
}

/* ---- each suite's main ---- */

#define XDP_TEST(f)            cmocka_unit_test_setup_teardown(f, setup_default, teardown)
#define XDP_TEST_NO_DEFAULT(f) cmocka_unit_test_setup_teardown(f, setup_no_default, teardown)

/* The suite's table rows, then its function tests, under the table with a default tier. */
static inline int xdp_suite_main(const char *name, const struct prog_case *cases, size_t n,
				 const struct CMUnitTest *tests, size_t n_tests)
{
	case_default_table = table_default;
	return case_run_suite(name, cases, n, tests, n_tests);
}

#endif /* RLS_TEST_XDP_SUITE_H */
