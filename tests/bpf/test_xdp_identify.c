// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Where the XDP program takes a request's account and model from under BPF_PROG_TEST_RUN:
 * the key headers (in the table's order, case-insensitive names, hashed keys), client
 * address ranges, the default tier, the model from its header or the body's top-level
 * "model", hidden models, and the tokens a request reserves.
 */
#include "xdp_suite.h"
#include "siphash.h"

/* ---- 3: where the key comes from ---- */

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

/* ---- 3b: the key hash, its secret, and the digest cache ---- */

/* Keys of every length the key's word-at-a-time copy treats apart: 1, 8, 16 and 247 bytes. */
#define K10      "0123456789"
#define K50      K10 K10 K10 K10 K10
#define KEY_247  "L" K50 K50 K50 K50 K10 K10 K10 K10 "abcdef"
#define KEY_8    "k8k8k8k8"
#define KEY_16   "sixteen-bytes-16"

static const char table_key_lengths[] =
	"{'listen': {'ports': [8000]}, 'tiers': {'small': {'*': {'rpm': 100, 'burst': 100}}},"
	" 'accounts': {'long': {'tier': 'small', 'keys': ['" KEY_247 "']},"
	"              'eight': {'tier': 'small', 'keys': ['" KEY_8 "']},"
	"              'sixteen': {'tier': 'small', 'keys': ['" KEY_16 "']},"
	"              'one': {'tier': 'small', 'keys': ['Q']}}}";

static const char table_plain_keys[] =
	"{'listen': {'ports': [8000]}, 'tiers': {'small': {'*': {'rpm': 3}}},"
	" 'accounts': {'alice': {'tier': 'small', 'keys': ['" KEY_ALICE "']}}}";

static __u32 live_generation_of(struct env *e)
{
	__u32 zero = 0, gen = 0;

	CHECK(bpf_map_lookup_elem(e->maps.active, &zero, &gen) == 0, "rls_active");
	return gen & 1;
}

static struct rls_config live_config(struct env *e)
{
	struct rls_config cfg = {};
	__u32 gen = live_generation_of(e);

	CHECK(bpf_map_lookup_elem(e->maps.config, &gen, &cfg) == 0, "rls_config[%u]", gen);
	return cfg;
}

static void expect_secret_made(const struct rls_config *cfg, const char *what)
{
	static const __u8 none[RLS_KEY_SECRET_LEN];

	CHECK(memcmp(cfg->key_secret, none, sizeof(none)) != 0, "%s: the key secret is all zero",
	      what);
}

/* key's SipHash under secret, computed here from the reference-tested include/siphash.h. */
static struct rls_api_key api_key_under(const __u8 *secret, const char *key, __u32 generation)
{
	struct rls_api_key k = { .generation = generation };
	__u8 buf[RLS_KEY_HASH_BUF] = { 0 };

	memcpy(buf, key, strlen(key));
	CHECK(rls_siphash128(secret, buf, (__u32)strlen(key), k.siphash) == 0, "siphash of %s", key);
	return k;
}

static void send_keyed(struct env *e, uint16_t sport, const char *key, const char *what)
{
	struct conn c = conn4(sport);
	char req[1024], hdrs[256];
	size_t len;
	struct result r;

	snprintf(hdrs, sizeof(hdrs), "x-api-key: %s\r\n", key);
	len = http_request(req, sizeof(req), hdrs, NULL);
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, what);
}

static size_t cache_entries(struct env *e)
{
	int fd = bpf_map__fd(e->skel->maps.rls_key_digest_cache);
	struct rls_key_siphash key, next, *prev = NULL;
	size_t n = 0;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		n++;
	}
	return n;
}

static void empty_cache(struct env *e)
{
	int fd = bpf_map__fd(e->skel->maps.rls_key_digest_cache);
	struct rls_key_siphash key;

	while (bpf_map_get_next_key(fd, NULL, &key) == 0)
		CHECK(bpf_map_delete_elem(fd, &key) == 0, "deleting a cache entry");
	CHECK_EQ(cache_entries(e), 0, "entries left in rls_key_digest_cache");
}

/*
 * The SHA-256 of a digest key is found when its header line ends and kept with the request:
 * the cache emptied before the request's last byte (evicted by a flood of other keys) changes
 * nothing, and the next request computes it again rather than going without its account.
 */
static void test_key_digest_survives_cache_eviction(void **state)
{
	struct env *e = need_env(state);
	__u32 hashed = account_id(e, "hashed");
	struct conn c = conn4(47001);
	char req[1024];
	size_t len = http_request(req, sizeof(req), "x-api-key: " KEY_HASHED "\r\n",
				  "{\"model\":\"m\"}");
	size_t head = (size_t)(strstr(req, KEY_HASHED "\r\n") - req) + strlen(KEY_HASHED) + 2;
	__u64 computed = packets_of(e, RLS_PKT_KEY_SHA256);
	struct result r;

	conn_send(e, &c, req, head, 0, &r);
	expect_action(&r, XDP_PASS, "the request up to its key line");
	CHECK_EQ(packets_of(e, RLS_PKT_KEY_SHA256), computed + 1, "SHA-256s at the key line");
	CHECK_EQ(cache_entries(e), 1, "rls_key_digest_cache entries after the key line");
	empty_cache(e);
	conn_send(e, &c, req + head, len - head, 0, &r);
	expect_action(&r, XDP_PASS, "the rest of the request");
	CHECK_EQ(stats_of(e, hashed, 0).admitted, 1, "hashed admitted, its cache entry gone");
	CHECK_EQ(stats_of(e, RLS_ACCOUNT_ANONYMOUS, 0).admitted, 0, "anonymous admitted");

	send_keyed(e, 47002, KEY_HASHED, "the digest key again, not in the cache");
	CHECK_EQ(packets_of(e, RLS_PKT_KEY_SHA256), computed + 2, "SHA-256s after the eviction");
	CHECK_EQ(stats_of(e, hashed, 0).admitted, 2, "hashed admitted after the eviction");
}

/*
 * A reload keeps the secret: keys hash as before, in the new generation's rls_api_keys, the
 * counters go on, and the digest cache still holds (no SHA-256 again).
 */
static void test_key_secret_kept_across_reload(void **state)
{
	struct env *e = need_env(state);
	__u32 alice = account_id(e, "alice"), hashed = account_id(e, "hashed");
	struct rls_config before = live_config(e), after;
	struct rls_api_key k;
	struct rls_principal who;
	__u64 computed;

	expect_secret_made(&before, "first load");
	send_keyed(e, 47101, KEY_ALICE, "alice before the reload");
	send_keyed(e, 47102, KEY_HASHED, "hashed before the reload");
	computed = packets_of(e, RLS_PKT_KEY_SHA256);
	CHECK_EQ(computed, 1, "SHA-256s before the reload");

	CHECK(env_apply(e, table_default, NULL) == 0, "reload: %s", e->why);
	after = live_config(e);
	CHECK(memcmp(before.key_secret, after.key_secret, RLS_KEY_SECRET_LEN) == 0,
	      "the reload changed the key secret");
	CHECK_EQ(after.key_digests, 1, "sha256: keys in the reloaded table");
	k = api_key_under(after.key_secret, KEY_ALICE, live_generation_of(e));
	CHECK(bpf_map_lookup_elem(e->maps.api_keys, &k, &who) == 0 && who.account == alice,
	      "alice's key under the kept secret in the new generation");

	send_keyed(e, 47103, KEY_ALICE, "alice after the reload");
	send_keyed(e, 47104, KEY_HASHED, "hashed after the reload");
	CHECK_EQ(stats_of(e, alice, 0).admitted, 2, "alice admitted across the reload");
	CHECK_EQ(stats_of(e, hashed, 0).admitted, 2, "hashed admitted across the reload");
	CHECK_EQ(packets_of(e, RLS_PKT_KEY_SHA256), computed, "SHA-256s after the reload (cached)");
}

/* One request on connection c with a key (or none) and an x-model line; its XDP action. */
static int send_on(struct env *e, struct conn *c, const char *key_line, const char *model,
		   const char *what)
{
	char hdrs[256], req[1024];
	struct result r;
	size_t len;

	snprintf(hdrs, sizeof(hdrs), "%sx-model: %s\r\n", key_line, model);
	len = http_request(req, sizeof(req), hdrs, NULL);
	conn_send(e, c, req, len, 0, &r);
	CHECK(r.action == XDP_PASS || r.action == XDP_TX, "%s: %s", what, xdp_name(r.action));
	return r.action;
}

/*
 * Requests of modeler, alice, a keyless client and modeler again, each on connection c or, with
 * each_new, on a new connection from port sport on (and then a keyless request from
 * netacct's range too); then, after two reloads that bring the first load's generation back
 * with gpt-x at rpm 0, modeler's gpt-x again: each must be charged by its own key, address and
 * model, and by the table loaded now. A memo kept per generation rather than per load would
 * still admit the last one.
 */
static void charged_one_by_one(struct env *e, uint16_t sport, bool each_new)
{
	__u32 alice = account_id(e, "alice"), modeler = account_id(e, "modeler");
	__u32 netacct = account_id(e, "netacct");
	__u32 x = model_id(e, "gpt-x"), y = model_id(e, "gpt-y"), gen;
	static const char from[] = "'gpt-x': {'rpm': 100, 'burst': 100}";
	char table[sizeof(table_default) + 64];
	const char *at = strstr(table_default, from);
	const char *on = each_new ? "on a new connection" : "on the same connection";
	__u64 anon_before = stats_of(e, RLS_ACCOUNT_ANONYMOUS, x).admitted +
			    stats_of(e, RLS_ACCOUNT_ANONYMOUS, RLS_MODEL_OTHER).admitted;
	struct conn c = conn4(sport), d;
	char what[96];

#define NEXT_CONN() do { if (each_new) c = conn4(++sport); } while (0)
#define SEND(key_line, model, who) (snprintf(what, sizeof(what), "%s, %s", who, on), \
				    send_on(e, &c, key_line, model, what))
	CHECK(at != NULL, "the default table names gpt-x as expected");
	snprintf(table, sizeof(table), "%.*s'gpt-x': {'rpm': 0}%s", (int)(at - table_default),
		 table_default, at + strlen(from));
	leave_room_in_window(60, 3000);
	SEND(BEARER(KEY_MODELS), "gpt-x", "modeler, gpt-x");
	NEXT_CONN();
	SEND(BEARER(KEY_ALICE), "gpt-x", "alice, gpt-x");
	NEXT_CONN();
	SEND("", "gpt-x", "no key");
	if (each_new) {
		d = conn4(++sport);
		d.client = NET4_CLIENT;
		send_on(e, &d, "", "gpt-x", "no key from netacct's range, on a new connection");
		CHECK_EQ(stats_of(e, netacct, x).admitted +
			 stats_of(e, netacct, RLS_MODEL_OTHER).admitted, 1,
			 "the keyless request from netacct's range, netacct's");
	}
	NEXT_CONN();
	SEND(BEARER(KEY_MODELS), "gpt-y", "modeler again, gpt-y");
	CHECK_EQ(stats_of(e, modeler, x).admitted, 1, "modeler's gpt-x requests");
	CHECK_EQ(stats_of(e, alice, x).admitted, 1, "alice's gpt-x requests");
	CHECK_EQ(stats_of(e, RLS_ACCOUNT_ANONYMOUS, x).admitted +
		 stats_of(e, RLS_ACCOUNT_ANONYMOUS, RLS_MODEL_OTHER).admitted, anon_before + 1,
		 "the keyless request's, anonymous");
	CHECK_EQ(stats_of(e, modeler, y).admitted, 1, "modeler's gpt-y requests");

	NEXT_CONN();
	SEND(BEARER(KEY_MODELS), "gpt-x", "modeler, gpt-x, before the reloads");
	gen = live_generation_of(e);
	CHECK(env_apply(e, table_default, NULL) == 0, "reload: %s", e->why);
	CHECK(env_apply(e, table, NULL) == 0, "reload with gpt-x at rpm 0: %s", e->why);
	CHECK_EQ(live_generation_of(e), gen, "two reloads: the first generation is live again");
	NEXT_CONN();
	CHECK_EQ(SEND(BEARER(KEY_MODELS), "gpt-x", "modeler, gpt-x, after the reloads"), XDP_TX,
		 "gpt-x at rpm 0 after the reloads: a 429");
	CHECK_EQ(stats_of(e, modeler, x).admitted, 2, "modeler's gpt-x requests admitted");
#undef SEND
#undef NEXT_CONN
}

/* A connection remembers who its last request was and what it named (bpf/lib/flow_memo.h). */
static void test_connection_memo_follows_each_request(void **state)
{
	charged_one_by_one(need_env(state), 47301, false);
}

/*
 * A connection's first request starts from this CPU's last memo (flow_memo.h). The test keeps
 * to one CPU, whose memo the connections share.
 */
static void test_new_connections_each_identified(void **state)
{
	cpu_set_t was;

	stay_on_this_cpu(&was);
	charged_one_by_one(need_env(state), 47401, true);
	back_to_cpus(&was);
}

/*
 * And the memo is used: with alice's key taken out of rls_api_keys behind the table's back
 * (the same load), her next connection is still hers, from this CPU's memo, without a lookup.
 * Another key in between puts its own there; alice's after it is looked up, and is then
 * nobody's.
 */
static void test_new_connection_takes_cpu_memo(void **state)
{
	struct env *e = need_env(state);
	__u32 alice = account_id(e, "alice"), modeler = account_id(e, "modeler");
	__u32 x = model_id(e, "gpt-x");
	struct rls_config cfg = live_config(e);
	struct rls_api_key k = api_key_under(cfg.key_secret, KEY_ALICE, live_generation_of(e));
	struct conn c = conn4(47501);
	cpu_set_t was;

	stay_on_this_cpu(&was);
	leave_room_in_window(60, 3000);
	send_on(e, &c, BEARER(KEY_ALICE), "gpt-x", "alice, gpt-x");
	CHECK(bpf_map_delete_elem(e->maps.api_keys, &k) == 0, "alice's key out of rls_api_keys");
	c = conn4(47502);
	send_on(e, &c, BEARER(KEY_ALICE), "gpt-x", "alice, gpt-x, on a new connection");
	CHECK_EQ(stats_of(e, alice, x).admitted, 2, "alice's requests, the second from the memo");
	c = conn4(47503);
	send_on(e, &c, BEARER(KEY_MODELS), "gpt-x", "modeler, gpt-x, on a new connection");
	CHECK_EQ(stats_of(e, modeler, x).admitted, 1, "modeler's request");
	c = conn4(47504);
	send_on(e, &c, BEARER(KEY_ALICE), "gpt-x", "alice's key again, looked up");
	CHECK_EQ(stats_of(e, alice, x).admitted, 2, "alice's requests once her key is gone");
	back_to_cpus(&was);
}

/* Two loads (two devices) make two secrets: a key's hash in one says nothing of the other. */
static void test_key_secrets_differ_between_loads(void **state)
{
	struct env *e = need_env(state), other;
	struct rls_config mine = live_config(e), theirs;
	struct rls_api_key k_mine, k_theirs;
	struct rls_principal who;
	__u32 gen;

	CHECK(env_open(&other, table_default) == 0, "a second load: %s", other.why);
	theirs = live_config(&other);
	gen = live_generation_of(&other);
	expect_secret_made(&mine, "first device");
	expect_secret_made(&theirs, "second device");
	CHECK(memcmp(mine.key_secret, theirs.key_secret, RLS_KEY_SECRET_LEN) != 0,
	      "two loads have the same key secret");
	k_mine = api_key_under(mine.key_secret, KEY_ALICE, gen);
	k_theirs = api_key_under(theirs.key_secret, KEY_ALICE, gen);
	CHECK(bpf_map_lookup_elem(other.maps.api_keys, &k_theirs, &who) == 0,
	      "alice's key under the second device's secret");
	CHECK(bpf_map_lookup_elem(other.maps.api_keys, &k_mine, &who) != 0,
	      "alice's key under the first device's secret in the second device's map");
	send_keyed(&other, 47201, KEY_ALICE, "alice on the second device");
	CHECK_EQ(stats_of(&other, account_id(&other, "alice"), 0).admitted, 1,
		 "alice admitted on the second device");
	env_close(&other);
}

/*
 * Header lines are ruled out by their name's length first (rls_config.name_lengths): a table
 * whose key and model headers have lengths no other name the parser reads has still finds
 * them, in any case, and a name one byte longer or shorter is nobody's.
 */
static void test_names_of_their_own_length(void **state)
{
	static const char table[] =
		"{'listen': {'ports': [8000]},"
		" 'identify': {'key_headers': ['x-tenant-key'], 'model_header': 'x-llm-model-name'},"
		TABLE_TIERS "}";
	struct env *e = need_env(state);
	__u32 modeler = account_id(e, "modeler"), x;
	struct rls_config cfg;
	char req[1024];
	struct conn c = conn4(47501), d = conn4(47502);
	struct result r;
	__u64 anonymous;
	size_t len;

	CHECK(env_apply(e, table, NULL) == 0, "the table: %s", e->why);
	cfg = live_config(e);
	CHECK_EQ(cfg.name_lengths, 1ull << 12 | 1ull << 16 | 1ull << 14 | 1ull << 17 | 1ull << 10,
		 "name lengths: x-tenant-key, x-llm-model-name, content-length, "
		 "transfer-encoding, connection");
	x = model_id(e, "gpt-x");
	anonymous = stats_of(e, RLS_ACCOUNT_ANONYMOUS, RLS_MODEL_OTHER).admitted;
	len = http_request(req, sizeof(req), "X-Tenant-Key: " KEY_MODELS "\r\n"
			   "X-LLM-Model-Name: gpt-x\r\n", NULL);
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "a key and a model in headers of their own lengths");
	CHECK_EQ(stats_of(e, modeler, x).admitted, 1, "modeler's gpt-x requests");
	len = http_request(req, sizeof(req), "x-tenant-keys: " KEY_MODELS "\r\n"
			   "x-llm-model-nam: gpt-x\r\n", NULL);
	conn_send(e, &d, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "names a byte longer and shorter");
	CHECK_EQ(stats_of(e, modeler, x).admitted, 1, "modeler's gpt-x requests after them");
	CHECK_EQ(stats_of(e, RLS_ACCOUNT_ANONYMOUS, RLS_MODEL_OTHER).admitted, anonymous + 1,
		 "requests passed as nobody's, keyless and unnamed");
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
			      "bpf/lib/json_scan.h rls_json_model_value() gives up on a backslash (in "
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
		/* Go's encoding/json takes a key in any case for the field, the last one kept. */
		"{\"model\":\"gpt-small\",\"messages\":[],\"Model\":\"gpt-big\"}",
		"{\"model\":\"gpt-small\",\"MODEL\":\"gpt-big\"}",
	};

	leave_room_in_window(60, 3000);
	expect_pricey_refused(e, 45601, bodies, ARRAY_SIZE(bodies),
			      "bpf/lib/json_scan.h stops at the first top-level \"model\", or reads "
			      "only that spelling, while common upstream JSON parsers (Python json, Go "
			      "encoding/json) keep the last, and Go's takes \"Model\" for it too; a "
			      "second top-level model key in any case must make the model hidden");
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
	/* tokener's tier: reserve_tokens 100, reserve_max 500. */
	static const struct {
		const char *body;
		__s64 answer; /* tokens held for the answer, on top of the request's own */
		const char *what;
	} cases[] = {
		{ "{\"model\":\"m\",\"max_tokens\":300}", 300, "max_tokens 300" },
		{ "{\"max_completion_tokens\": 250,\"model\":\"m\"}", 250,
		  "max_completion_tokens 250" },
		{ "{\"model\":\"m\",\"max_tokens\":99999}", 500, "capped at reserve_max" },
		/* More digits than one token reads, then the model after them. */
		{ "{\"max_tokens\":123456789012,\"model\":\"m\"}", 500, "12 digits, capped" },
		{ "{\"max_tokens\":000000000300 ,\"model\":\"m\"}", 300, "300 behind 9 zeros" },
		{ "{\"model\":\"m\",\"messages\":[{\"max_tokens\":9}]}", 100,
		  "no top-level max_tokens: reserve_tokens" },
		/*
		 * Read two ways: Python's json keeps the last "max_tokens", Go's encoding/json the
		 * last key that folds to it ("MAX_TOKENS"; the Kelvin sign folds to k). The most
		 * any of them can read is held.
		 */
		{ "{\"model\":\"m\",\"max_tokens\":300,\"max_tokens\":5}", 300, "two: the larger" },
		{ "{\"model\":\"m\",\"max_tokens\":5,\"MAX_TOKENS\":300}", 300,
		  "max_tokens and MAX_TOKENS: the larger" },
		{ "{\"Max_Completion_Tokens\":250,\"model\":\"m\"}", 250, "in another case" },
		{ "{\"model\":\"m\",\"max_tokens\":5,\"max_to\xe2\x84\xaa" "ens\":300}", 500,
		  "a key past ASCII that Go may fold into max_tokens: reserve_max" },
		{ "{\"model\":\"m\",\"max_tokens\":5,\"max_tok\\u0065ns\":300}", 500,
		  "an escaped max_tokens: reserve_max" },
		{ "{\"model\":\"m\",\"max_tokens\":5,\"caf\xc3\xa9\":1}", 5,
		  "a key past ASCII that no fold makes max_tokens" },
		/* A count a lax parser reads from another form (pydantic: "300", 1e5, 300.0). */
		{ "{\"model\":\"m\",\"max_tokens\":\"300\"}", 500, "a string: reserve_max" },
		{ "{\"model\":\"m\",\"max_tokens\":1e5}", 500, "1e5: reserve_max" },
		{ "{\"max_tokens\":300.0,\"model\":\"m\"}", 500, "300.0: reserve_max" },
		{ "{\"model\":\"m\",\"max_tokens\":null}", 100, "null, as none: reserve_tokens" },
	};
	struct env *e = need_env(state);
	size_t i, len;
	__s64 got, want;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		got = tokens_reserved_by(e, (uint16_t)(46001 + i), cases[i].body, &len);
		want = (__s64)((len + 3) / 4) + cases[i].answer;
		CHECK(got == want, "%s (%s): held %lld, expected %lld", cases[i].what,
		      cases[i].body, (long long)got, (long long)want);
	}
}

/*
 * A key sent is in no map once its header line has ended, nor is a prompt at all: the maps
 * hold a key's keyed hash, never its text, and of a body only its top-level keys and model
 * (README, "Who is asking" and "What the maps hold of the traffic"), whatever became of the
 * request and however its bytes came.
 */
#define PROMPT "Summarize the quarterly figures for the board, in confidence"

static void test_maps_hold_no_key_or_prompt(void **state)
{
	static const struct {
		const char *headers, *body, *text, *what;
		int cut; /* sent in two segments, cut in the middle of the text */
	} cases[] = {
		{ BEARER(KEY_ALICE) "x-model: m\r\n", "{\"model\":\"m\"}", KEY_ALICE,
		  "a bearer key, a short model line after it", 0 },
		{ "x-api-key: sk-test-stranger-31337\r\n", NULL, "sk-test-stranger-31337",
		  "a key no account has", 0 },
		{ "Authorization: Basic dXNlcjpwYXNzd29yZC0zMTMzNw==\r\n", NULL,
		  "dXNlcjpwYXNzd29yZC0zMTMzNw==", "a credential of another scheme", 0 },
		{ BEARER(KEY_ALICE), NULL, KEY_ALICE, "the key line cut in its middle", 1 },
		{ BEARER("sk-" K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10
			 K10 K10 K10 K10 K10 K10 K10 K10 K10), NULL,
		  K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10
		  K10 K10 K10 K10 K10 K10, "a key longer than any the table can have", 0 },
		{ BEARER(KEY_MODELS),
		  "{\"messages\":[{\"role\":\"user\",\"content\":\"" PROMPT "\"}],"
		  "\"model\":\"gpt-x\"}", PROMPT, "a prompt", 0 },
		{ BEARER(KEY_MODELS),
		  "{\"messages\":[{\"role\":\"user\",\"content\":\"" PROMPT "\"}],"
		  "\"model\":\"gpt-x\"}", PROMPT, "a prompt cut in its middle", 1 },
	};
	struct env *e = need_env(state);
	char req[2048];
	struct result r;
	const char *where;
	size_t i, len, cut;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct conn c = conn4((uint16_t)(48001 + i));

		len = http_request(req, sizeof(req), cases[i].headers, cases[i].body);
		if (cases[i].cut) {
			cut = (size_t)(strstr(req, cases[i].text) - req) + strlen(cases[i].text) / 2;
			conn_send(e, &c, req, cut, 0, &r);
			conn_send(e, &c, req + cut, len - cut, 0, &r);
		} else {
			conn_send(e, &c, req, len, 0, &r);
		}
		where = map_holding(e, cases[i].text);
		CHECK(!where, "%s: its text is in %s", cases[i].what, where);
	}
}

/* ---- the key and the model, as rows: one request each, and who it was charged to ---- */

/*
 * A request with these header lines on a connection of its own (a GET, or a POST with body),
 * admitted and charged once to account (NULL: the anonymous one) and model (NULL: "*"); a
 * known account's request leaves the anonymous one as it was.
 */
#define CHARGED(c, hdrs, who)                                                            \
	{ .conn = (c), .headers = (hdrs), .verdict = XDP_PASS, .expect = {                \
		{ .kind = X_ADMITTED, .account = (who), .value = 1, .delta = 1 },          \
		{ .kind = X_ADMITTED, .value = (who) ? 0 : 1, .delta = 1 } } }
#define MODEL(c, hdrs, json, which)                                                      \
	{ .conn = (c), .headers = BEARER(KEY_MODELS) hdrs, .body = (json),                \
	  .verdict = XDP_PASS, .expect = {                                               \
		{ .kind = X_ADMITTED, .account = "modeler", .model = (which), .value = 1,  \
		  .delta = 1 } } }
/* SHA-256s of keys the frame cost: computed, and found in rls_key_digest_cache. */
#define SHA256_COST(computed, cached)                                                   \
	{ .kind = X_PACKETS, .arg = RLS_PKT_KEY_SHA256, .value = (computed), .delta = 1 },  \
	{ .kind = X_PACKETS, .arg = RLS_PKT_KEY_SHA256_CACHED, .value = (cached), .delta = 1 }
/* A request charged to account who, and what its key cost. */
#define KEYED(c, hdrs, who, computed, cached)                                            \
	{ .conn = (c), .headers = (hdrs), .verdict = XDP_PASS, .expect = {                \
		{ .kind = X_ADMITTED, .account = (who), .value = 1, .delta = 1 },          \
		SHA256_COST(computed, cached) } }
/* A request with a key no account has, passed (no default tier), and what its key cost. */
#define STRANGER(c, hdrs, computed, cached)                                              \
	{ .conn = (c), .headers = (hdrs), .verdict = XDP_PASS, .expect = {                \
		SHA256_COST(computed, cached) } }
#define ADMITTED_NOW(who, which, n) \
	{ .kind = X_ADMITTED, .account = (who), .model = (which), .value = (n) }

static const struct prog_case cases[] = {
	{ .name = "test_key_x_api_key", .sport = 41001, .frames = {
		CHARGED(0, "x-api-key: " KEY_ALICE "\r\n", "alice"),
	} },
	{ .name = "test_key_api_key", .sport = 41002, .frames = {
		CHARGED(0, "api-key: " KEY_ALICE "\r\n", "alice"),
	} },
	{ .name = "test_key_mixed_case_names", .sport = 41003, .frames = {
		CHARGED(0, "AUTHORIZATION: Bearer " KEY_ALICE "\r\n", "alice"),
		CHARGED(1, "X-Api-Key: " KEY_ALICE "\r\n", "alice"),
		CHARGED(2, "API-KEY:" KEY_ALICE "\r\n", "alice"),
		CHARGED(3, "authorization: bEaReR   " KEY_HASHED "  \r\n", "hashed"),
		/* The key itself is case-sensitive. */
		CHARGED(4, "x-api-key: SK-TEST-ALICE-0001\r\n", NULL),
		{ .hook = CHECK_ONLY, .expect = { ADMITTED_NOW("alice", NULL, 3) } },
	} },
	{ .name = "test_key_sha256_in_table", .sport = 41010, .frames = {
		CHARGED(0, BEARER(KEY_HASHED), "hashed"),
		CHARGED(1, "x-api-key: " KEY_HASHED "\r\n", "hashed"),
		CHARGED(2, "Api-Key: " KEY_HASHED "\r\n", "hashed"),
		/* The digest itself is not a key. */
		CHARGED(3, "x-api-key: sha256:" SHA_HASHED "\r\n", NULL),
		CHARGED(4, "x-api-key: " SHA_HASHED "\r\n", NULL),
	} },
	/* Plain keys are found by their SipHash: no SHA-256, even with digests in the table. */
	{ .name = "test_key_plain_costs_no_sha256", .sport = 41030, .frames = {
		KEYED(0, BEARER(KEY_ALICE), "alice", 0, 0),
		KEYED(1, "x-api-key: " KEY_ALICE "\r\n", "alice", 0, 0),
	} },
	/* A "sha256:" key: SHA-256 the first time, the cache after. */
	{ .name = "test_key_digest_sha256_once", .sport = 41040, .frames = {
		KEYED(0, BEARER(KEY_HASHED), "hashed", 1, 0),
		KEYED(1, "x-api-key: " KEY_HASHED "\r\n", "hashed", 0, 1),
		KEYED(2, "api-key: " KEY_HASHED "\r\n", "hashed", 0, 1),
	} },
	/* A stranger's key costs one SHA-256 per distinct key while the table has digests. */
	{ .name = "test_key_unknown_sha256_once_per_key", .sport = 41050,
	  .table = table_no_default, .frames = {
		STRANGER(0, "x-api-key: " KEY_UNKNOWN "\r\n", 1, 0),
		STRANGER(1, "x-api-key: " KEY_UNKNOWN "\r\n", 0, 1),
		STRANGER(2, "x-api-key: " KEY_UNKNOWN "-2\r\n", 1, 0),
		STRANGER(3, "x-api-key: " KEY_UNKNOWN "-2\r\n", 0, 1),
		STRANGER(4, "x-api-key: " KEY_UNKNOWN "\r\n", 0, 1),
	} },
	/* A table without digests: no request ever costs a SHA-256. */
	{ .name = "test_key_no_digests_no_sha256", .sport = 41060, .table = table_plain_keys,
	  .frames = {
		KEYED(0, BEARER(KEY_ALICE), "alice", 0, 0),
		STRANGER(1, "x-api-key: " KEY_UNKNOWN "\r\n", 0, 0),
		STRANGER(2, "x-api-key: " KEY_HASHED "\r\n", 0, 0),
	} },
	/* The key's bytes end where the value does: nothing after them is hashed. */
	{ .name = "test_key_lengths", .sport = 41070, .table = table_key_lengths, .frames = {
		KEYED(0, BEARER(KEY_247), "long", 0, 0),
		KEYED(1, "x-api-key: " KEY_247 "\r\n", "long", 0, 0),
		KEYED(2, "x-api-key: " KEY_8 "   \r\n", "eight", 0, 0),
		KEYED(3, BEARER(KEY_16), "sixteen", 0, 0),
		KEYED(4, "api-key: Q  \r\n", "one", 0, 0),
		STRANGER(5, "x-api-key: " KEY_8 "x\r\n", 0, 0),
		STRANGER(6, "x-api-key: k8k8k8k\r\n", 0, 0),
		STRANGER(7, "x-api-key: " KEY_16 "Q\r\n", 0, 0),
		{ .hook = CHECK_ONLY, .expect = { ADMITTED_NOW("long", NULL, 2),
			ADMITTED_NOW("eight", NULL, 1), ADMITTED_NOW("sixteen", NULL, 1),
			ADMITTED_NOW("one", NULL, 1) } },
	} },
	/* Values stored a word at a time where they have no whitespace, a byte at a time else. */
	{ .name = "test_key_value_words", .sport = 41080, .table = table_key_lengths, .frames = {
		/* Past 247 bytes no key is taken: 248 stored, or more than the 255 a value holds. */
		STRANGER(0, "x-api-key: " KEY_247 "x\r\n", 0, 0),
		STRANGER(1, "x-api-key: " KEY_247 K10 "\r\n", 0, 0),
		/* Whitespace around the key's words is not the key's; inside it, it is. */
		KEYED(2, "x-api-key:\t \t" KEY_16 "\t \r\n", "sixteen", 0, 0),
		STRANGER(3, "x-api-key: " KEY_16 " " KEY_8 "\r\n", 0, 0),
		KEYED(4, "authorization: Bearer\t  " KEY_16 "\r\n", "sixteen", 0, 0),
		{ .hook = CHECK_ONLY, .expect = { ADMITTED_NOW("long", NULL, 0),
			ADMITTED_NOW("sixteen", NULL, 2) } },
	} },
	{ .name = "test_key_header_precedence", .sport = 41020, .frames = {
		/* authorization is listed first: it wins wherever it is in the request. */
		CHARGED(0, "x-api-key: " KEY_UNKNOWN "\r\n" BEARER(KEY_ALICE), "alice"),
		CHARGED(1, BEARER(KEY_ALICE) "x-api-key: " KEY_UNKNOWN "\r\n", "alice"),
		/* An authorization value that is not "Bearer <key>" gives no key... */
		CHARGED(2, "authorization: " KEY_ALICE "\r\n", NULL),
		/* ...and the next header in the list is used instead. */
		CHARGED(3, "authorization: Basic Zm9vOmJhcg==\r\napi-key: " KEY_HASHED "\r\n",
			"hashed"),
	} },
	{ .name = "test_model_from_header", .sport = 45001, .frames = {
		MODEL(0, "x-model: gpt-x\r\n", NULL, "gpt-x"),
		MODEL(1, "X-Model:  gpt-y \r\n", NULL, "gpt-y"),
		/* x-model naming no tier entry */
		MODEL(2, "x-model: gpt-unknown\r\n", NULL, NULL),
		/* A POST with the header: the header decides, the body is not needed. */
		MODEL(3, "x-model: gpt-x\r\n", "{\"messages\":[]}", "gpt-x"),
		{ .hook = CHECK_ONLY, .expect = { ADMITTED_NOW("modeler", "gpt-y", 1) } },
	} },
	{ .name = "test_model_from_body", .sport = 45101, .frames = {
		MODEL(0, "", "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"user\","
			     "\"content\":\"hi\"}]}", "gpt-x"),
		/* model last in the body, with whitespace */
		MODEL(1, "", "{\n  \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],\n"
			     "  \"model\" : \"gpt-y\"\n}", "gpt-y"),
		MODEL(2, "", "{\"model\":\"gpt-unknown\"}", NULL),
		/* whole body without a model */
		MODEL(3, "", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL),
	} },
	{ .name = "test_model_nested_not_taken", .sport = 45201, .frames = {
		MODEL(0, "", "{\"messages\":[{\"role\":\"user\",\"model\":\"gpt-x\","
			     "\"content\":\"hi\"}],\"model\":\"gpt-y\"}", "gpt-y"),
		/* model only inside messages[] */
		MODEL(1, "", "{\"messages\":[{\"role\":\"user\",\"model\":\"gpt-x\"}]}", NULL),
		MODEL(2, "", "{\"metadata\":{\"model\":\"gpt-x\"},\"model\":\"gpt-y\"}", "gpt-y"),
		/* "model" inside a string value */
		MODEL(3, "", "{\"prompt\":\"say \\\"model\\\":\\\"gpt-x\\\"\",\"model\":\"gpt-y\"}",
		      "gpt-y"),
		/* gpt-x, only ever nested, was never charged */
		{ .hook = CHECK_ONLY, .expect = { ADMITTED_NOW("modeler", "gpt-x", 0) } },
	} },
	/*
	 * What lies between strings (literals, numbers, closing brackets, whitespace) is read up
	 * to a word of it at a time: however long it is, and wherever the object ends, the model
	 * after it is the one charged.
	 */
	{ .name = "test_model_after_values_between_strings", .sport = 45401, .frames = {
		MODEL(0, "", "{\"stream\":false,\"n\":12345678901234,\"temperature\":0.7,"
			     "\"logprobs\":null,\"model\":\"gpt-x\"}", "gpt-x"),
		MODEL(1, "", "{\"messages\":[[[{}]],{\"a\":[true,null]}]           ,"
			     "           \"model\":\"gpt-y\"}", "gpt-y"),
		MODEL(2, "", "{\"a\":{\"b\":[1,2,3]},\"model\"  :  \"gpt-x\"}", "gpt-x"),
		/* A second object after the first: not read (an upstream refuses the body). */
		MODEL(3, "", "{\"stream\":true}\t{\"model\":\"gpt-x\"}", NULL),
		{ .hook = CHECK_ONLY, .expect = { ADMITTED_NOW("modeler", "gpt-x", 2) } },
	} },
	/* Top-level keys are told apart whole: a prefix or a longer key is not "model". */
	{ .name = "test_model_key_spelled_exactly", .sport = 45301, .frames = {
		MODEL(0, "", "{\"modelx\":\"gpt-x\",\"model\":\"gpt-y\"}", "gpt-y"),
		MODEL(1, "", "{\"mode\":\"gpt-x\"}", NULL),
		/* Another case is: Go's encoding/json reads it as the model (Python's then has none). */
		MODEL(2, "", "{\"MoDeL\":\"gpt-x\"}", "gpt-x"),
		/* Longer than any key that matters: read as an ordinary string. */
		MODEL(3, "", "{\"" K10 K10 K10 "model\":\"gpt-x\",\"model\":\"gpt-y\"}", "gpt-y"),
		{ .hook = CHECK_ONLY, .expect = { ADMITTED_NOW("modeler", "gpt-x", 1) } },
	} },
};
int main(void)
{
	const struct CMUnitTest tests[] = {
		XDP_TEST(test_unknown_client_default_tier),
		XDP_TEST(test_account_by_cidr),
		XDP_TEST(test_key_digest_survives_cache_eviction),
		XDP_TEST(test_key_secret_kept_across_reload),
		XDP_TEST(test_key_secrets_differ_between_loads),
		XDP_TEST(test_connection_memo_follows_each_request),
		XDP_TEST(test_new_connections_each_identified),
		XDP_TEST(test_new_connection_takes_cpu_memo),
		XDP_TEST_NO_DEFAULT(test_unknown_passes_without_default_tier),
		XDP_TEST(test_model_hidden),
		XDP_TEST(test_star_counters_per_named_model),
		XDP_TEST(test_hidden_model_strictest_limits),
		XDP_TEST(test_model_past_parse_window),
		XDP_TEST(test_model_escaped_not_evading),
		XDP_TEST(test_model_repeated_key_not_evading),
		XDP_TEST(test_reservation_uses_max_tokens),
		XDP_TEST(test_maps_hold_no_key_or_prompt),
		XDP_TEST(test_names_of_their_own_length),
	};

	return xdp_suite_main("bpf/test_xdp_identify", cases, ARRAY_SIZE(cases), tests,
			      ARRAY_SIZE(tests));
}
