// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tiers.json parser: parsed values of a full table, and for every way a table can be wrong,
 * that the one-line message names the file, the place and the problem.
 *
 * Tables are written with ' for " to stay readable; write_table() swaps them back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cmocka.h>

#include "../lib/cmocka_cases.h"

#include "key_hash.h"
#include "sha256_file.h"
#include "tiers.h"
#include "../lib/tier_limits.h"


#define SHA_ACME_1 "819685611e044dc4918e558945f580790befd0786cc2fb36e3417477ed704a3d"
#define SHA_ACME_2 "E13EC0CB85B1E9B4C68F9AB2EB9ABEED3376E468AA136FCFBAC7C29CA02D6A08"

#define A8   "aaaaaaaa"
#define A32  A8 A8 A8 A8
#define A64  A32 A32
#define A247 A64 A64 A64 A32 A8 A8 "aaaaaaa"

/* ---- helpers ---- */

struct temp_table {
	char path[64];
};

static void write_table(struct temp_table *tt, const char *quoted)
{
	char *text = strdup(quoted), *c;
	int fd;

	assert_non_null(text);
	for (c = text; *c; c++)
		if (*c == '\'')
			*c = '"';
	strcpy(tt->path, "/tmp/rls-test-tiers-XXXXXX");
	fd = mkstemp(tt->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	free(text);
}

static void load_ok(const char *quoted, struct rls_table *t)
{
	struct temp_table tt;
	char err[1024];
	int ret;

	write_table(&tt, quoted);
	ret = rls_table_load(tt.path, t, err, sizeof(err));
	unlink(tt.path);
	if (ret)
		fail_msg("unexpected error: %s", err);
	assert_string_equal(t->path, tt.path);
}

static void from_hex(const char *hex, __u8 out[RLS_SHA256_LEN])
{
	size_t i;

	for (i = 0; i < RLS_SHA256_LEN; i++) {
		unsigned int byte;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &byte), 1);
		out[i] = (__u8)byte;
	}
}

static void assert_v4_cidr(const struct rls_cidr *c, __u8 a, __u8 b, __u8 cc, __u8 d,
			   __u32 prefixlen)
{
	const __u8 want[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, cc, d };

	assert_memory_equal(c->addr, want, 16);
	assert_int_equal(c->prefixlen, prefixlen);
}

/* ---- a valid table ---- */

static const char full_table[] =
	"{\n"
	" 'listen': {'ports': [8000, 8443], 'dev': 'eth0'},\n"
	" 'identify': {'key_headers': ['Authorization', 'X-API-Key'], 'model_header': 'X-Model'},\n"
	" 'tiers': {\n"
	"  'free': {'*': {'rpm': 3, 'tpm': 500000, 'tpd': 1500000, 'concurrency': 1}},\n"
	"  'tier1': {'*': {'rpm': 200, 'tpm': 2000000, 'concurrency': 50},\n"
	"            'deepseek-ai/DeepSeek-R1': {'rpm': 60, 'rpd': 12000, 'tpm': 30000, 'burst': 5}},\n"
	"  'blocked': {'*': {'rps': 0, 'rpm': 'UNLIMITED', 'rph': 'unlimited'}},\n"
	"  'open': {},\n"
	"  'max': {'*': {'rpm': 4294967294, 'tpm': 9223372036854775807}},\n"
	"  'mixed': {'a': {'rpm': 600, 'rps': 20}, 'b': {'rpm': 120, 'burst': 100, 'rph': 1000}},\n"
	"  'zero': {'*': {'rpm': 60}, 'b': {'rpm': 0}}\n"
	" },\n"
	" 'accounts': {\n"
	"  'acme': {'tier': 'tier1', 'keys': ['sk-acme-1', 'sha256:" SHA_ACME_2 "', '" A247 "'],\n"
	"           'cidrs': ['198.18.1.0/24', '2001:db8::/32', '10.0.0.1', '2001:db8:1::1']},\n"
	"  'beta': {'tier': 'free', 'cidrs': ['::ffff:192.0.2.0/120', '0.0.0.0/0']}\n"
	" },\n"
	" 'default_tier': 'free'\n"
	"}\n";

static void test_full_table_listen_identify(void **state)
{
	struct rls_table t;

	(void)state;
	load_ok(full_table, &t);
	assert_int_equal(t.nr_ports, 2);
	assert_int_equal(t.ports[0], 8000);
	assert_int_equal(t.ports[1], 8443);
	assert_string_equal(t.dev, "eth0");
	assert_int_equal(t.nr_key_headers, 2);
	assert_int_equal(t.key_headers[0].len, 13);
	assert_memory_equal(t.key_headers[0].name, "authorization", 13);
	assert_int_equal(t.key_headers[0].bearer, 1);
	assert_int_equal(t.key_headers[1].len, 9);
	assert_memory_equal(t.key_headers[1].name, "x-api-key", 9);
	assert_int_equal(t.key_headers[1].bearer, 0);
	assert_int_equal(t.model_header.len, 7);
	assert_memory_equal(t.model_header.name, "x-model", 7);
	assert_int_equal(t.default_tier, 0);
	rls_table_free(&t);
}

static void test_full_table_limits(void **state)
{
	const struct rls_limits *l;
	struct rls_table t;

	(void)state;
	load_ok(full_table, &t);
	assert_int_equal(t.nr_tiers, 7);
	assert_string_equal(t.tiers[0].name, "free");
	assert_int_equal(t.tiers[0].nr_entries, 1);
	l = &t.tiers[0].entries[0].limits;
	assert_int_equal(l->rpm, 3);
	assert_int_equal(l->burst, 1); /* max(1, 3 / 60) */
	assert_int_equal(l->smooth_interval_ns, 20000000000ull);
	assert_int_equal(l->rps, RLS_UNLIMITED);
	assert_int_equal(l->rph, RLS_UNLIMITED);
	assert_int_equal(l->concurrency, 1);
	assert_int_equal(l->tpm, 500000);
	assert_int_equal(l->tpd, 1500000);

	/* tier1: "*" then the named model, in file order. */
	assert_int_equal(t.tiers[1].nr_entries, 2);
	l = tier_limits(&t.tiers[1], "some-other-model");
	assert_ptr_equal(l, &t.tiers[1].entries[0].limits);
	assert_int_equal(l->burst, 3); /* 200 / 60 */
	assert_int_equal(l->smooth_interval_ns, 300000000ull);
	assert_int_equal(l->tpd, RLS_TOKENS_UNLIMITED);
	l = tier_limits(&t.tiers[1], "deepseek-ai/DeepSeek-R1");
	assert_string_equal(t.tiers[1].entries[1].model, "deepseek-ai/DeepSeek-R1");
	assert_int_equal(l->rpm, 60);
	assert_int_equal(l->rpd, 12000);
	assert_int_equal(l->burst, 5);
	assert_int_equal(l->smooth_interval_ns, 1000000000ull);
	assert_ptr_equal(tier_limits(&t.tiers[1], "deepseek-ai/deepseek-r1"),
			 &t.tiers[1].entries[0].limits); /* case-sensitive */

	/* blocked: 0 admits nothing; "unlimited" in any case; no smoothing without finite rpm. */
	l = &t.tiers[2].entries[0].limits;
	assert_int_equal(l->rps, 0);
	assert_int_equal(l->rpm, RLS_UNLIMITED);
	assert_int_equal(l->rph, RLS_UNLIMITED);
	assert_int_equal(l->burst, 0);
	assert_int_equal(l->smooth_interval_ns, 0);

	/* open: no "*" in the file, so an unlimited one is added. */
	assert_int_equal(t.tiers[3].nr_entries, 1);
	assert_string_equal(t.tiers[3].entries[0].model, "*");
	l = tier_limits(&t.tiers[3], "anything");
	assert_int_equal(l->rps, RLS_UNLIMITED);
	assert_int_equal(l->rpm, RLS_UNLIMITED);
	assert_int_equal(l->rpd, RLS_UNLIMITED);
	assert_int_equal(l->concurrency, RLS_UNLIMITED);
	assert_int_equal(l->tpm, RLS_TOKENS_UNLIMITED);
	assert_int_equal(l->smooth_interval_ns, 0);

	/* max: the largest finite values. */
	l = &t.tiers[4].entries[0].limits;
	assert_int_equal(l->rpm, 4294967294u);
	assert_int_equal(l->smooth_interval_ns, 60000000000ull / 4294967294u);
	assert_int_equal(l->burst, 4294967294u / 60);
	assert_int_equal(l->tpm, 9223372036854775807ull);

	/* mixed: named models only, plus the implicit unlimited "*" at the end. */
	assert_int_equal(t.tiers[5].nr_entries, 3);
	assert_string_equal(t.tiers[5].entries[2].model, "*");
	assert_int_equal(t.tiers[5].entries[2].limits.rpm, RLS_UNLIMITED);
	rls_table_free(&t);
}

static void test_full_table_accounts(void **state)
{
	__u8 digest[RLS_SHA256_LEN], buf[RLS_KEY_HASH_BUF];
	const struct rls_account *a;
	struct rls_table t;

	(void)state;
	load_ok(full_table, &t);
	assert_int_equal(t.nr_accounts, 2);
	a = &t.accounts[0];
	assert_string_equal(a->name, "acme");
	assert_int_equal(a->tier, 1);
	assert_int_equal(a->nr_keys, 3);
	from_hex(SHA_ACME_1, digest); /* printf sk-acme-1 | sha256sum */
	assert_memory_equal(a->keys[0], digest, RLS_SHA256_LEN);
	from_hex(SHA_ACME_2, digest); /* upper-case hex accepted */
	assert_memory_equal(a->keys[1], digest, RLS_SHA256_LEN);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, A247, 247); /* the longest key the data path hashes */
	assert_int_equal(rls_key_hash(buf, 247, digest), 0);
	assert_memory_equal(a->keys[2], digest, RLS_SHA256_LEN);

	assert_int_equal(a->nr_cidrs, 4);
	assert_v4_cidr(&a->cidrs[0], 198, 18, 1, 0, 120);
	assert_memory_equal(a->cidrs[1].addr,
			    ((const __u8[16]){ 0x20, 0x01, 0x0d, 0xb8 }), 16);
	assert_int_equal(a->cidrs[1].prefixlen, 32);
	assert_v4_cidr(&a->cidrs[2], 10, 0, 0, 1, 128); /* no "/n": a host route */
	assert_memory_equal(a->cidrs[3].addr,
			    ((const __u8[16]){ 0x20, 0x01, 0x0d, 0xb8, 0, 1, [15] = 1 }), 16);
	assert_int_equal(a->cidrs[3].prefixlen, 128);

	a = &t.accounts[1];
	assert_string_equal(a->name, "beta");
	assert_int_equal(a->tier, 0);
	assert_int_equal(a->nr_keys, 0);
	assert_null(a->keys);
	assert_int_equal(a->nr_cidrs, 2);
	assert_v4_cidr(&a->cidrs[0], 192, 0, 2, 0, 120); /* written IPv4-mapped */
	assert_v4_cidr(&a->cidrs[1], 0, 0, 0, 0, 96);
	rls_table_free(&t);
}

static void test_plain_key_equals_digest_form(void **state)
{
	struct rls_table plain, digest;

	(void)state;
	load_ok("{'listen': {'ports': [1]}, 'tiers': {'t': {}},"
		" 'accounts': {'a': {'tier': 't', 'keys': ['sk-acme-1']}}}", &plain);
	load_ok("{'listen': {'ports': [1]}, 'tiers': {'t': {}},"
		" 'accounts': {'a': {'tier': 't', 'keys': ['SHA256:" SHA_ACME_1 "']}}}", &digest);
	assert_memory_equal(plain.accounts[0].keys[0], digest.accounts[0].keys[0],
			    RLS_SHA256_LEN);
	rls_table_free(&plain);
	rls_table_free(&digest);
}

static void test_strictest(void **state)
{
	const struct rls_tier_entry *e;
	struct rls_table t;

	(void)state;
	load_ok(full_table, &t);

	/* tier1: "*" rpm 200 (288,000 a day) and R1 rpm 60 with rpd 12000 (12,000 a day). */
	e = rls_tier_strictest_entry(&t.tiers[1]);
	assert_string_equal(e->model, "deepseek-ai/DeepSeek-R1");
	assert_int_equal(e->limits.rpd, 12000);

	/* mixed: a (rpm 600, rps 20: 864,000 a day), b (rpm 120, rph 1000: 24,000), "*" open. */
	e = rls_tier_strictest_entry(&t.tiers[5]);
	assert_string_equal(e->model, "b");
	assert_int_equal(e->limits.burst, 100);

	/* zero: a model that admits nothing (retired) does not price hidden requests. */
	e = rls_tier_strictest_entry(&t.tiers[6]);
	assert_true(e->limits.rpm != 0);

	/* open: nothing but the implicit "*". */
	e = rls_tier_strictest_entry(&t.tiers[3]);
	assert_string_equal(e->model, "*");
	assert_int_equal(e->limits.rpm, RLS_UNLIMITED);
	rls_table_free(&t);
}

/* A table of tiers tiers, each naming models models m0, m1, ... with an rpm each. */
static char *big_table(size_t tiers, size_t models, size_t *len)
{
	size_t cap = 64 + tiers * (32 + models * 32), n = 0, i, j;
	char *text = malloc(cap);

	assert_non_null(text);
	n += (size_t)snprintf(text + n, cap - n, "{\"listen\": {\"ports\": [8000]}, \"tiers\": {");
	for (i = 0; i < tiers; i++) {
		n += (size_t)snprintf(text + n, cap - n, "%s\"t%zu\": {", i ? "," : "", i);
		for (j = 0; j < models; j++)
			n += (size_t)snprintf(text + n, cap - n, "%s\"m%zu\": {\"rpm\": 5}",
					      j ? "," : "", j);
		n += (size_t)snprintf(text + n, cap - n, "}");
	}
	n += (size_t)snprintf(text + n, cap - n, "}}");
	assert_true(n < cap);
	*len = n;
	return text;
}

/*
 * Issue 11, item 2: a table the maps could hold only once loaded, and then made every reload
 * fail ("Argument list too long"). check says what the maps hold, naming the field.
 */
static void test_map_room(void **state)
{
	struct rls_table t;
	char err[1024], *text;
	size_t len;

	(void)state;
	text = big_table(1, RLS_MAX_MODELS + 1, &len);
	assert_int_equal(rls_table_parse("big.json", text, len, &t, err, sizeof(err)), -1);
	free(text);
	assert_non_null(strstr(err, "big.json: tiers: 4097 model names, at most 4096 fit the models map"));
	text = big_table(17, 4000, &len); /* 17 x (4000 + "*" + hidden) = 68,034 */
	assert_int_equal(rls_table_parse("big.json", text, len, &t, err, sizeof(err)), -1);
	free(text);
	assert_non_null(strstr(err, "big.json: tiers: 68034 limit entries"));
	assert_non_null(strstr(err, "at most 65536 fit the limits map"));
	text = big_table(16, 4000, &len); /* 64,032: fits */
	if (rls_table_parse("big.json", text, len, &t, err, sizeof(err)))
		fail_msg("a table that fits the maps refused: %s", err);
	free(text);
	rls_table_free(&t);
}

/* t.models: what `rlshape load` numbers, each model once, in file order, without "*". */
static void test_models_listed_once(void **state)
{
	struct rls_table t;

	(void)state;
	load_ok("{'listen': {'ports': [8000]}, 'tiers': {"
		"'gold': {'m2': {'rpm': 1}, '*': {'rpm': 2}, 'm1': {'rpm': 3}},"
		"'free': {'m1': {'rpm': 4}, 'm3': {'rpm': 5}, 'm2': {'rpm': 6}}}}", &t);
	assert_int_equal(t.nr_models, 3);
	assert_string_equal(t.models[0], "m2");
	assert_string_equal(t.models[1], "m1");
	assert_string_equal(t.models[2], "m3");
	rls_table_free(&t);
	load_ok("{'listen': {'ports': [8000]}, 'tiers': {'free': {'*': {'rpm': 3}}}}", &t);
	assert_int_equal(t.nr_models, 0);
	rls_table_free(&t);
}

static void test_defaults(void **state)
{
	struct rls_table t;

	(void)state;
	load_ok("{'listen': {'ports': [8000]}, 'tiers': {'free': {'*': {'rpm': 3}}}}", &t);
	assert_string_equal(t.dev, "");
	assert_int_equal(t.nr_key_headers, 3);
	assert_memory_equal(t.key_headers[0].name, "authorization", 13);
	assert_int_equal(t.key_headers[0].bearer, 1);
	assert_memory_equal(t.key_headers[1].name, "x-api-key", 9);
	assert_int_equal(t.key_headers[1].bearer, 0);
	assert_int_equal(t.key_headers[2].len, 7);
	assert_memory_equal(t.key_headers[2].name, "api-key", 7);
	assert_int_equal(t.model_header.len, 7);
	assert_memory_equal(t.model_header.name, "x-model", 7);
	assert_int_equal(t.default_tier, -1);
	assert_int_equal(t.nr_accounts, 0);
	assert_null(t.accounts);
	assert_false(t.http2_pass);
	assert_false(t.websocket_tunnel);
	assert_int_equal(t.anonymous_ipv6_prefix, 64);
	rls_table_free(&t);

	load_ok("{'listen': {'ports': [8000]}, 'identify': {'model_header': null},"
		" 'tiers': {'free': {}}, 'accounts': {}}", &t);
	assert_int_equal(t.model_header.len, 0);
	assert_int_equal(t.nr_key_headers, 3);
	assert_int_equal(t.client_address_header.len, 0);
	rls_table_free(&t);

	load_ok("{'listen': {'ports': [8000]}, 'identify': {'client_address_header': 'X-Real-IP'},"
		" 'tiers': {'free': {}}, 'accounts': {}}", &t);
	assert_int_equal(t.client_address_header.len, 9);
	assert_memory_equal(t.client_address_header.name, "x-real-ip", 9);
	rls_table_free(&t);
}

static void test_http2_values(void **state)
{
	struct rls_table t;

	(void)state;
	load_ok("{'listen': {'ports': [8000], 'http2': 'pass'}, 'tiers': {'free': {}}}", &t);
	assert_true(t.http2_pass);
	rls_table_free(&t);
	load_ok("{'listen': {'ports': [8000], 'http2': 'refuse'}, 'tiers': {'free': {}}}", &t);
	assert_false(t.http2_pass);
	rls_table_free(&t);
}

static void test_websocket_values(void **state)
{
	struct rls_table t;

	(void)state;
	load_ok("{'listen': {'ports': [8000], 'websocket': 'tunnel'}, 'tiers': {'free': {}}}", &t);
	assert_true(t.websocket_tunnel);
	rls_table_free(&t);
	load_ok("{'listen': {'ports': [8000], 'websocket': 'reset'}, 'tiers': {'free': {}}}", &t);
	assert_false(t.websocket_tunnel);
	rls_table_free(&t);
}

static void test_anonymous_ipv6_prefix_values(void **state)
{
	static const __u32 prefixes[] = { 32, 48, 56, 64, 128 };
	char text[256];
	struct rls_table t;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(prefixes); i++) {
		snprintf(text, sizeof(text), "{'listen': {'ports': [8000]}, 'tiers': {'free': {}},"
			 " 'default_tier': 'free', 'anonymous_ipv6_prefix': %u}", prefixes[i]);
		load_ok(text, &t);
		assert_int_equal(t.anonymous_ipv6_prefix, prefixes[i]);
		rls_table_free(&t);
	}
}

/* A table with the given fleet loads with these values. */
static void fleet_ok(const char *fleet, __u32 hosts, __u32 unleased, const char *host, __u16 port)
{
	char text[256];
	struct rls_table t;

	snprintf(text, sizeof(text), "{'listen': {'ports': [8000]}, 'tiers': {'free': {}}%s%s}",
		 fleet ? ", 'fleet': " : "", fleet ? fleet : "");
	load_ok(text, &t);
	assert_int_equal(t.fleet_hosts, hosts);
	assert_int_equal(t.fleet_unleased, unleased);
	assert_string_equal(t.fleet_redis_host, host);
	assert_int_equal(t.fleet_redis_port, port);
	rls_table_free(&t);
}

static void test_fleet_values(void **state)
{
	(void)state;
	fleet_ok(NULL, 0, 1, "", 0);
	fleet_ok("{'redis': '198.18.0.9:6379', 'hosts': 3}", 3, 1, "198.18.0.9", 6379);
	fleet_ok("{'redis': '[2001:2::9]:7000', 'hosts': 1024, 'unleased': 0}", 1024, 0, "2001:2::9",
		 7000);
	fleet_ok("{'redis': 'redis.internal:1', 'hosts': 1, 'unleased': 1000000}", 1, 1000000,
		 "redis.internal", 1);
}

/* ---- SHA-256 of the table file ---- */

static void assert_sha256(const void *data, size_t len, const char *hex)
{
	__u8 got[32], want[32];

	from_hex(hex, want);
	assert_int_equal(rls_sha256_file_bytes(data, len, got), 0);
	assert_memory_equal(got, want, 32);
}

static void test_sha256_vectors(void **state)
{
	static const char m56[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char *million = malloc(1000000);

	(void)state;
	assert_sha256("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_sha256(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_sha256("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_sha256(m56, 56, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	assert_non_null(million);
	memset(million, 'a', 1000000);
	assert_sha256(million, 1000000,
		      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(million);
}

/* Every length the key hash covers, across each padding boundary. */
static void test_sha256_matches_key_hash(void **state)
{
	__u8 msg[RLS_API_KEY_MAX], buf[RLS_KEY_HASH_BUF], a[32], b[32];
	size_t len;

	(void)state;
	for (len = 0; len < sizeof(msg); len++)
		msg[len] = (__u8)(len * 7 + 1);
	for (len = 0; len <= RLS_API_KEY_MAX; len++) {
		memset(buf, 0, sizeof(buf));
		memcpy(buf, msg, len);
		assert_int_equal(rls_key_hash(buf, (__u32)len, a), 0);
		assert_int_equal(rls_sha256_file_bytes(msg, len, b), 0);
		assert_memory_equal(a, b, 32);
	}
}

static void test_table_hash_is_sha256sum(void **state)
{
	struct temp_table tt;
	struct rls_table t;
	char cmd[128], hex[65], err[512];
	__u8 want[32];
	FILE *f;

	(void)state;
	write_table(&tt, full_table);
	assert_int_equal(rls_table_load(tt.path, &t, err, sizeof(err)), 0);
	snprintf(cmd, sizeof(cmd), "sha256sum %s", tt.path);
	f = popen(cmd, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%64s", hex), 1);
	pclose(f);
	unlink(tt.path);
	from_hex(hex, want);
	assert_memory_equal(t.sha256, want, 32);
	rls_table_free(&t);
}

/* ---- errors ---- */

static void assert_message(const char *err, const char *file, const char *const phrases[],
			   const char *const absent[])
{
	size_t i;

	if (strncmp(err, file, strlen(file)) || err[strlen(file)] != ':')
		fail_msg("message does not start with \"%s:\": %s", file, err);
	if (strchr(err, '\n'))
		fail_msg("message is not one line: %s", err);
	for (i = 0; phrases[i]; i++)
		if (!strstr(err, phrases[i]))
			fail_msg("message lacks \"%s\": %s", phrases[i], err);
	for (i = 0; absent && absent[i]; i++)
		if (strstr(err, absent[i]))
			fail_msg("message must not contain \"%s\": %s", absent[i], err);
}

static void assert_empty(const struct rls_table *t)
{
	assert_int_equal(t->nr_tiers, 0);
	assert_null(t->tiers);
	assert_int_equal(t->nr_accounts, 0);
	assert_null(t->accounts);
	assert_int_equal(t->default_tier, -1);
}

struct bad_table {
	const char *name;
	const char *table;        /* ' for " */
	const char *phrases[4];   /* each must be in the message */
	const char *absent[2];    /* none may be: a key's text never goes to logs */
};

#define BAD(name, table, ...) { name, table, { __VA_ARGS__ }, { NULL } }
#define BAD_SECRET(name, table, secret, ...) { name, table, { __VA_ARGS__ }, { secret, NULL } }

#define LISTEN "'listen': {'ports': [8000]}"
#define TIERS  "'tiers': {'free': {'*': {'rpm': 3}}, 'tier1': {'*': {'rpm': 200}}}"
/* A valid table plus the given top-level fields. */
#define WITH(...) "{" LISTEN ", " TIERS ", " __VA_ARGS__ "}"
#define LIMITS(...) "{" LISTEN ", 'tiers': {'free': {'*': {" __VA_ARGS__ "}}}}"
#define ACCOUNT(...) WITH("'accounts': {'acme': {'tier': 'free', " __VA_ARGS__ "}}")
#define TWO_ACCOUNTS(a, b) \
	WITH("'accounts': {'acme': {'tier': 'free', " a "}, 'beta': {'tier': 'tier1', " b "}}")
#define PORTS(...) "{'listen': {'ports': " __VA_ARGS__ "}, " TIERS "}"
#define IDENTIFY(...) "{" LISTEN ", 'identify': {" __VA_ARGS__ "}, " TIERS "}"

static const struct bad_table bad_tables[] = {
	/* syntax: FILE:LINE:COLUMN: jansson's words */
	BAD("bad_json", "{\n 'listen': {'ports': [8000],},\n}",
	    ":2:29: string or '}' expected near '}'"),
	BAD("empty_file", "",
	    ":1:0: ", "'[' or '{' expected near end of file"),
	BAD("duplicate_json_key",
	    "{\n 'listen': {'ports': [8000]},\n 'tiers': {'free': {'*': {'rpm': 3,\n   'rpm': 4}}}}",
	    ":4:8: ", "duplicate object key near '\"rpm\"'"),
	BAD("integer_beyond_json", LIMITS("'tpm': 18446744073709551616"),
	    ":1:", "too big integer"),
	BAD("not_an_object", "[1]",
	    ": the table must be a JSON object, got an array"),

	/* unknown fields, at every level */
	BAD("unknown_field_top", WITH("'default': 'free'"),
	    ": default: unknown field (expected one of: listen, identify, tiers, accounts, "
	    "default_tier, anonymous_ipv6_prefix, fleet)"),
	BAD("unknown_field_listen", "{'listen': {'ports': [1], 'port': 2}, " TIERS "}",
	    ": listen.port: unknown field (expected one of: ports, dev, http2, websocket)"),
	BAD("unknown_field_identify", IDENTIFY("'key_header': ['a']"),
	    ": identify.key_header: unknown field"),
	BAD("unknown_field_limits", LIMITS("'rmp': 10"),
	    ": tiers.free.\"*\".rmp: unknown field (expected one of: rps, rpm, rph, rpd, tpm, "
	    "tpd, concurrency, burst, token_burst, bytes_per_token, reserve_tokens, reserve_max, "
	    "max_hold_seconds, max_response_tokens, shape)"),
	BAD("unknown_field_account", ACCOUNT("'key': ['sk-1']"),
	    ": accounts.acme.key: unknown field (expected one of: tier, keys, cidrs)"),

	/* wrong types */
	BAD("wrong_type_ports", PORTS("'8000'"),
	    ": listen.ports: must be an array of TCP ports, e.g. [8000], got \"8000\""),
	BAD("wrong_type_listen", "{'listen': [8000], " TIERS "}",
	    ": listen: must be an object", "got an array"),
	BAD("wrong_type_tier", "{" LISTEN ", 'tiers': {'free': 5}}",
	    ": tiers.free: must be an object mapping model names", "got 5"),
	BAD("wrong_type_limits", "{" LISTEN ", 'tiers': {'free': {'*': 5}}}",
	    ": tiers.free.\"*\": must be an object of limits", "got 5"),
	BAD("wrong_type_limit_string", LIMITS("'rpm': '60'"),
	    ": tiers.free.\"*\".rpm: must be a non-negative integer or \"unlimited\", got \"60\""),
	BAD("wrong_type_limit_real", LIMITS("'rpm': 3.0"),
	    ": tiers.free.\"*\".rpm: must be a non-negative integer", "got 3.0"),
	BAD("wrong_type_limit_bool", LIMITS("'rps': true"),
	    ": tiers.free.\"*\".rps: must be a non-negative integer", "got true"),
	BAD("wrong_type_keys", ACCOUNT("'keys': 'sk-1'"),
	    ": accounts.acme.keys: must be an array of API keys", "got \"sk-1\""),
	BAD("wrong_type_key", ACCOUNT("'keys': [5]"),
	    ": accounts.acme.keys[0]: must be a string", "got 5"),
	BAD("wrong_type_cidr", ACCOUNT("'cidrs': [10]"),
	    ": accounts.acme.cidrs[0]: must be a string such as \"198.18.1.0/24\"", "got 10"),
	BAD("wrong_type_default_tier", WITH("'default_tier': null"),
	    ": default_tier: must be a tier name, got null"),
	BAD("wrong_type_identify", "{" LISTEN ", 'identify': 'x', " TIERS "}",
	    ": identify: must be an object"),

	/* numbers */
	BAD("negative_number", LIMITS("'rpm': -3"),
	    ": tiers.free.\"*\".rpm: must be a non-negative integer or \"unlimited\", got -3"),
	BAD("negative_tokens", LIMITS("'tpd': -1"),
	    ": tiers.free.\"*\".tpd: must be a non-negative integer", "got -1"),
	BAD("too_large_rpm", LIMITS("'rpm': 4294967295"),
	    ": tiers.free.\"*\".rpm: must be at most 4294967294 (use \"unlimited\" for no limit), "
	    "got 4294967295"),
	BAD("too_large_concurrency", LIMITS("'concurrency': 99999999999"),
	    ": tiers.free.\"*\".concurrency: must be at most 4294967294"),

	/* burst */
	BAD("burst_without_rpm", LIMITS("'rps': 5, 'burst': 5"),
	    ": tiers.free.\"*\".burst: burst needs a finite rpm in the same entry: set \"rpm\" "
	    "to a number or remove \"burst\""),
	BAD("burst_with_unlimited_rpm", LIMITS("'rpm': 'unlimited', 'burst': 5"),
	    ": tiers.free.\"*\".burst: burst needs a finite rpm"),
	BAD("burst_with_zero_rpm", LIMITS("'rpm': 0, 'burst': 1"),
	    ": tiers.free.\"*\".burst: burst needs rpm > 0"),
	BAD("burst_over_rpm", LIMITS("'burst': 11, 'rpm': 10"),
	    ": tiers.free.\"*\".burst: burst 11 exceeds rpm 10", "lower burst to at most 10"),
	BAD("burst_zero", LIMITS("'rpm': 10, 'burst': 0"),
	    ": tiers.free.\"*\".burst: must be a positive integer", "got 0"),
	BAD("burst_unlimited", LIMITS("'rpm': 10, 'burst': 'unlimited'"),
	    ": tiers.free.\"*\".burst: must be a positive integer", "got \"unlimited\""),

	/* max_hold_seconds */
	BAD("max_response_tokens_zero", LIMITS("'tpm': 1000, 'max_response_tokens': 0"),
	    ": tiers.free.\"*\".max_response_tokens: must be an integer from 1 to 1099511627776"),
	BAD("max_response_tokens_too_large",
	    LIMITS("'tpm': 1000, 'max_response_tokens': 1099511627777"),
	    ": tiers.free.\"*\".max_response_tokens: must be an integer from 1 to 1099511627776"),
	BAD("max_response_tokens_string", LIMITS("'max_response_tokens': '5'"),
	    ": tiers.free.\"*\".max_response_tokens: must be an integer"),
	BAD("max_hold_zero", LIMITS("'concurrency': 4, 'max_hold_seconds': 0"),
	    ": tiers.free.\"*\".max_hold_seconds: must be an integer from 1 to 604800 (seconds "
	    "before a concurrency slot nothing gave back is freed), got 0"),
	BAD("max_hold_over_a_week", LIMITS("'concurrency': 4, 'max_hold_seconds': 604801"),
	    ": tiers.free.\"*\".max_hold_seconds: must be an integer from 1 to 604800",
	    "got 604801"),
	BAD("max_hold_string", LIMITS("'concurrency': 4, 'max_hold_seconds': '600'"),
	    ": tiers.free.\"*\".max_hold_seconds: must be an integer from 1 to 604800",
	    "got \"600\""),
	BAD("max_hold_negative", LIMITS("'concurrency': 4, 'max_hold_seconds': -1"),
	    ": tiers.free.\"*\".max_hold_seconds: must be an integer from 1 to 604800",
	    "got -1"),
	BAD("max_hold_without_concurrency",
	    "{" LISTEN ", 'tiers': {'free': {'deepseek-ai/DeepSeek-R1': "
	    "{'rpm': 60, 'max_hold_seconds': 60}}}}",
	    ": tiers.free.\"deepseek-ai/DeepSeek-R1\".max_hold_seconds: max_hold_seconds needs a "
	    "finite concurrency in the same entry: set \"concurrency\" or remove "
	    "\"max_hold_seconds\""),
	BAD("max_hold_with_unlimited_concurrency",
	    LIMITS("'concurrency': 'unlimited', 'max_hold_seconds': 60"),
	    ": tiers.free.\"*\".max_hold_seconds: max_hold_seconds needs a finite concurrency in "
	    "the same entry: set \"concurrency\" or remove \"max_hold_seconds\""),

	/* shape */
	BAD("shape_without_rpm", LIMITS("'rps': 5, 'shape': {'max_delay_ms': 100}"),
	    ": tiers.free.\"*\".shape: shape needs a finite rpm > 0 in the same entry: only the "
	    "rpm smoothing shapes; set \"rpm\" or remove \"shape\""),
	BAD("shape_with_zero_rpm", LIMITS("'rpm': 0, 'shape': {'max_delay_ms': 100}"),
	    ": tiers.free.\"*\".shape: shape needs a finite rpm > 0"),
	BAD("shape_with_unlimited_rpm", LIMITS("'rpm': 'unlimited', 'shape': {'max_delay_ms': 1}"),
	    ": tiers.free.\"*\".shape: shape needs a finite rpm > 0"),
	BAD("shape_not_object", LIMITS("'rpm': 60, 'shape': true"),
	    ": tiers.free.\"*\".shape: must be an object of shaping, e.g. {\"max_delay_ms\": "
	    "2000}, got true"),
	BAD("shape_unknown_field", LIMITS("'rpm': 60, 'shape': {'max_delay': 100}"),
	    ": tiers.free.\"*\".shape.max_delay: unknown field (expected one of: max_delay_ms)"),
	BAD("shape_without_max_delay", LIMITS("'rpm': 60, 'shape': {}"),
	    ": tiers.free.\"*\".shape: max_delay_ms required"),
	BAD("shape_max_delay_zero", LIMITS("'rpm': 60, 'shape': {'max_delay_ms': 0}"),
	    ": tiers.free.\"*\".shape.max_delay_ms: must be an integer from 1 to 5000 "
	    "(milliseconds a request may be delayed, below fq's 10 s horizon), got 0"),
	BAD("shape_max_delay_past_horizon", LIMITS("'rpm': 60, 'shape': {'max_delay_ms': 5001}"),
	    ": tiers.free.\"*\".shape.max_delay_ms: must be an integer from 1 to 5000", "got 5001"),
	BAD("shape_max_delay_negative", LIMITS("'rpm': 60, 'shape': {'max_delay_ms': -5}"),
	    ": tiers.free.\"*\".shape.max_delay_ms: must be an integer from 1 to 5000", "got -5"),
	BAD("shape_max_delay_string", LIMITS("'rpm': 60, 'shape': {'max_delay_ms': '2000'}"),
	    ": tiers.free.\"*\".shape.max_delay_ms: must be an integer", "got \"2000\""),
	BAD("shape_max_delay_fraction", LIMITS("'rpm': 60, 'shape': {'max_delay_ms': 1.5}"),
	    ": tiers.free.\"*\".shape.max_delay_ms: must be an integer", "got 1.5"),

	/* names */
	BAD("model_name_too_long", "{" LISTEN ", 'tiers': {'free': {'" A64 "': {}}}}",
	    ": tiers.free." A64 ": model name is 64 bytes, at most 63 are allowed"),
	BAD("model_name_empty", "{" LISTEN ", 'tiers': {'free': {'': {}}}}",
	    ": tiers.free.\"\": empty model name"),
	BAD("tier_name_too_long", "{" LISTEN ", 'tiers': {'" A64 "': {}}}",
	    ": tiers." A64 ": tier name is 64 bytes, at most 63"),
	BAD("account_name_too_long", WITH("'accounts': {'" A64 "': {'tier': 'free'}}"),
	    ": accounts." A64 ": account name is 64 bytes, at most 63"),

	/* tiers */
	BAD("no_tiers", "{" LISTEN ", 'tiers': {}}",
	    ": tiers: no tiers: define at least one"),
	BAD("missing_tiers", "{" LISTEN "}",
	    ": tiers: required: define at least one tier"),
	BAD("unknown_tier", WITH("'accounts': {'acme': {'tier': 'gold', 'keys': ['sk-1']}}"),
	    ": accounts.acme.tier: unknown tier \"gold\" (tiers defined: free, tier1)"),
	BAD("missing_account_tier", WITH("'accounts': {'acme': {'keys': ['sk-1']}}"),
	    ": accounts.acme.tier: required: the name of the account's tier"),
	BAD("unknown_default_tier", WITH("'default_tier': 'gold'"),
	    ": default_tier: unknown tier \"gold\" (tiers defined: free, tier1)"),

	/* keys */
	BAD_SECRET("duplicate_key", TWO_ACCOUNTS("'keys': ['sk-1']", "'keys': ['sk-2', 'sk-1']"), "sk-1",
	    ": accounts.beta.keys[1]: key already belongs to account \"acme\" "
	    "(accounts.acme.keys[0])"),
	BAD("duplicate_key_as_digest",
	  TWO_ACCOUNTS("'keys': ['sk-acme-1']", "'keys': ['sha256:" SHA_ACME_1 "']"),
	    ": accounts.beta.keys[0]: key already belongs to account \"acme\""),
	BAD("duplicate_key_same_account", ACCOUNT("'keys': ['sk-1', 'sk-1']"),
	    ": accounts.acme.keys[1]: key is already listed at accounts.acme.keys[0]",
	    "remove one"),
	BAD("bad_sha256_length", ACCOUNT("'keys': ['sha256:abc']"),
	    ": accounts.acme.keys[0]: \"sha256:\" must be followed by 64 hex digits, "
	    "got 3 characters"),
	BAD("bad_sha256_hex",
	  ACCOUNT("'keys': ['sha256:819685611e044dc4918e558945f580790befd0786cc2fb36e3417477ed704a3g']"),
	    ": accounts.acme.keys[0]: \"sha256:\" digest has a non-hex character at "
	    "position 63"),
	BAD_SECRET("key_with_space", ACCOUNT("'keys': ['sk secret']"), "secret",
	    ": accounts.acme.keys[0]: API key byte 2 is a space or not printable ASCII"),
	BAD_SECRET("key_too_long", ACCOUNT("'keys': ['" A247 "a']"), A8,
	    ": accounts.acme.keys[0]: API key is 248 bytes, the data path hashes keys of at "
	    "most 247 bytes"),
	BAD("key_empty", ACCOUNT("'keys': ['']"),
	    ": accounts.acme.keys[0]: empty API key"),
	BAD("account_without_keys", ACCOUNT("'keys': [], 'cidrs': []"),
	    ": accounts.acme: account has no keys and no cidrs"),

	/* cidrs */
	BAD("bad_cidr_address", ACCOUNT("'cidrs': ['198.18.1.300/24']"),
	    ": accounts.acme.cidrs[0]: \"198.18.1.300/24\" is not an IPv4 or IPv6 network "
	    "(expected a.b.c.d/n or x:y::/n)"),
	BAD("bad_cidr_text", ACCOUNT("'cidrs': ['localhost']"),
	    ": accounts.acme.cidrs[0]: \"localhost\" is not an IPv4 or IPv6 network"),
	BAD("bad_cidr_prefix_v4", ACCOUNT("'cidrs': ['10.0.0.0/33']"),
	    ": accounts.acme.cidrs[0]: \"10.0.0.0/33\": the prefix length must be 0..32"),
	BAD("bad_cidr_prefix_v6", ACCOUNT("'cidrs': ['2001:db8::/129']"),
	    ": accounts.acme.cidrs[0]: \"2001:db8::/129\": the prefix length must be 0..128"),
	BAD("bad_cidr_prefix_text", ACCOUNT("'cidrs': ['10.0.0.0/+8']"),
	    ": accounts.acme.cidrs[0]: \"10.0.0.0/+8\": the prefix length must be 0..32"),
	BAD("cidr_host_bits_v4", ACCOUNT("'cidrs': ['198.18.1.5/24']"),
	    ": accounts.acme.cidrs[0]: \"198.18.1.5/24\" has host bits set: did you mean "
	    "\"198.18.1.0/24\"?"),
	BAD("cidr_host_bits_v6", ACCOUNT("'cidrs': ['2001:db8::1/32']"),
	    ": accounts.acme.cidrs[0]: \"2001:db8::1/32\" has host bits set: did you mean "
	    "\"2001:db8::/32\"?"),
	BAD("duplicate_cidr", TWO_ACCOUNTS("'cidrs': ['10.0.0.0/8']", "'cidrs': ['::ffff:10.0.0.0/104']"),
	    ": accounts.beta.cidrs[0]: 10.0.0.0/8 already belongs to account \"acme\" "
	    "(accounts.acme.cidrs[0])"),
	BAD("duplicate_cidr_same_account", ACCOUNT("'cidrs': ['10.0.0.1', '10.0.0.2', '10.0.0.1/32']"),
	    ": accounts.acme.cidrs[2]: 10.0.0.1/32 is already listed at accounts.acme.cidrs[0]"),

	/* listen */
	BAD("missing_listen", "{" TIERS "}",
	    ": listen: required"),
	BAD("missing_ports", "{'listen': {'dev': 'eth0'}, " TIERS "}",
	    ": listen.ports: required: the TCP ports to rate limit"),
	BAD("no_ports", PORTS("[]"),
	    ": listen.ports: no ports: list at least one TCP port to rate limit"),
	BAD("port_out_of_range", PORTS("[8000, 70000]"),
	    ": listen.ports[1]: must be a TCP port 1..65535, got 70000"),
	BAD("port_zero", PORTS("[0]"),
	    ": listen.ports[0]: must be a TCP port 1..65535, got 0"),
	BAD("port_duplicate", PORTS("[8000, 8001, 8000]"),
	    ": listen.ports[2]: port 8000 is already listed at [0]"),
	BAD("too_many_ports", PORTS("[1, 2, 3, 4, 5, 6, 7, 8, 9]"),
	    ": listen.ports: 9 ports listed, at most 8 are supported"),
	BAD("dev_with_slash", "{'listen': {'ports': [1], 'dev': 'eth0/1'}, " TIERS "}",
	    ": listen.dev: \"eth0/1\" is not a valid interface name"),
	BAD("dev_too_long", "{'listen': {'ports': [1], 'dev': 'abcdefghijklmnop'}, " TIERS "}",
	    ": listen.dev: interface names are 1..15 bytes, got 16"),
	BAD("http2_unknown_word", "{'listen': {'ports': [1], 'http2': 'allow'}, " TIERS "}",
	    ": listen.http2: must be \"refuse\" (HTTP/2 cannot be counted here", "or \"pass\"",
	    "got \"allow\""),
	BAD("http2_case_matters", "{'listen': {'ports': [1], 'http2': 'PASS'}, " TIERS "}",
	    ": listen.http2: must be \"refuse\"", "got \"PASS\""),
	BAD("http2_boolean", "{'listen': {'ports': [1], 'http2': true}, " TIERS "}",
	    ": listen.http2: must be \"refuse\"", "got true"),
	BAD("websocket_unknown_word", "{'listen': {'ports': [1], 'websocket': 'pass'}, " TIERS "}",
	    ": listen.websocket: must be \"reset\" (a WebSocket's frames cannot be counted here",
	    "or \"tunnel\" (the session counts as one request", "got \"pass\""),
	BAD("websocket_boolean", "{'listen': {'ports': [1], 'websocket': true}, " TIERS "}",
	    ": listen.websocket: must be \"reset\"", "got true"),

	/* anonymous_ipv6_prefix */
	BAD("ipv6_prefix_too_short", WITH("'anonymous_ipv6_prefix': 31"),
	    ": anonymous_ipv6_prefix: must be an integer from 32 to 128", "got 31"),
	BAD("ipv6_prefix_too_long", WITH("'anonymous_ipv6_prefix': 129"),
	    ": anonymous_ipv6_prefix: must be an integer from 32 to 128", "got 129"),
	BAD("ipv6_prefix_string", WITH("'anonymous_ipv6_prefix': '/64'"),
	    ": anonymous_ipv6_prefix: must be an integer from 32 to 128", "got \"/64\""),
	BAD("ipv6_prefix_real", WITH("'anonymous_ipv6_prefix': 64.0"),
	    ": anonymous_ipv6_prefix: must be an integer", "got 64.0"),

	/* fleet */
	BAD("fleet_not_object", WITH("'fleet': 'redis:6379'"),
	    ": fleet: must be an object with \"redis\" and \"hosts\"", "got \"redis:6379\""),
	BAD("fleet_unknown_field", WITH("'fleet': {'redis': 'r:1', 'hosts': 2, 'host': 'a'}"),
	    ": fleet.host: unknown field (expected one of: redis, hosts, unleased)"),
	BAD("fleet_no_redis", WITH("'fleet': {'hosts': 2}"),
	    ": fleet.redis: required"),
	BAD("fleet_no_hosts", WITH("'fleet': {'redis': 'r:1'}"),
	    ": fleet.hosts: required"),
	BAD("fleet_no_port", WITH("'fleet': {'redis': 'redis.internal', 'hosts': 2}"),
	    ": fleet.redis: \"redis.internal\" has no port 1..65535"),
	BAD("fleet_port_zero", WITH("'fleet': {'redis': 'r:0', 'hosts': 2}"),
	    ": fleet.redis: \"r:0\" has no port 1..65535"),
	BAD("fleet_port_too_big", WITH("'fleet': {'redis': 'r:65536', 'hosts': 2}"),
	    ": fleet.redis: \"r:65536\" has no port"),
	BAD("fleet_port_signed", WITH("'fleet': {'redis': 'r:+1', 'hosts': 2}"),
	    ": fleet.redis: \"r:+1\" has no port"),
	BAD("fleet_empty_host", WITH("'fleet': {'redis': ':6379', 'hosts': 2}"),
	    ": fleet.redis: \":6379\": the host is 1..63 bytes"),
	BAD("fleet_space_in_host", WITH("'fleet': {'redis': 'a b:6379', 'hosts': 2}"),
	    ": fleet.redis: \"a b:6379\": the host has a character"),
	BAD("fleet_redis_number", WITH("'fleet': {'redis': 6379, 'hosts': 2}"),
	    ": fleet.redis: must be Redis's address", "got 6379"),
	BAD("fleet_hosts_zero", WITH("'fleet': {'redis': 'r:1', 'hosts': 0}"),
	    ": fleet.hosts: must be an integer from 1 to 1024", "got 0"),
	BAD("fleet_hosts_too_many", WITH("'fleet': {'redis': 'r:1', 'hosts': 1025}"),
	    ": fleet.hosts: must be an integer from 1 to 1024", "got 1025"),
	BAD("fleet_unleased_negative", WITH("'fleet': {'redis': 'r:1', 'hosts': 2, 'unleased': -1}"),
	    ": fleet.unleased: must be an integer from 0 to 1000000", "got -1"),

	/* identify */
	BAD("bad_header_name", IDENTIFY("'key_headers': ['x api']"),
	    ": identify.key_headers[0]: \"x api\" is not an HTTP header name"),
	BAD("header_name_too_long", IDENTIFY("'model_header': '" A32 "'"),
	    ": identify.model_header: header names are 1..31 bytes, got 32"),
	BAD("duplicate_key_header", IDENTIFY("'key_headers': ['X-Key', 'x-key']"),
	    ": identify.key_headers[1]: header already listed at [0]"),
	BAD("too_many_key_headers", IDENTIFY("'key_headers': ['a', 'b', 'c', 'd', 'e']"),
	    ": identify.key_headers: list 1..4 header names, got 5"),
	BAD("model_header_is_key_header", IDENTIFY("'model_header': 'X-API-Key'"),
	    ": identify.model_header: is also key_headers[1]"),
	BAD("client_address_header_is_key_header",
	    IDENTIFY("'client_address_header': 'Authorization'"),
	    ": identify.client_address_header: is also key_headers[0]"),
	BAD("client_address_header_is_model_header",
	    IDENTIFY("'client_address_header': 'x-model'"),
	    ": identify.client_address_header: is also the model_header"),
	BAD("client_address_header_not_a_name", IDENTIFY("'client_address_header': 7"),
	    ": identify.client_address_header: must be an HTTP header name"),
};

static void test_bad_table(void **state)
{
	const struct bad_table *bad = *state;
	struct temp_table tt;
	struct rls_table t;
	char err[1024];
	int ret;

	write_table(&tt, bad->table);
	ret = rls_table_load(tt.path, &t, err, sizeof(err));
	unlink(tt.path);
	if (!ret)
		fail_msg("table was accepted");
	assert_int_equal(ret, -1);
	assert_message(err, tt.path, bad->phrases, bad->absent);
	assert_empty(&t);
}

static void test_unreadable_missing(void **state)
{
	const char *const phrases[] = { "/nonexistent/tiers.json: cannot read: No such file or "
					"directory", NULL };
	struct rls_table t;
	char err[512];

	(void)state;
	assert_int_equal(rls_table_load("/nonexistent/tiers.json", &t, err, sizeof(err)), -1);
	assert_message(err, "/nonexistent/tiers.json", phrases, NULL);
	assert_empty(&t);
}

static void test_unreadable_directory(void **state)
{
	const char *const phrases[] = { "/tmp: cannot read: not a regular file", NULL };
	struct rls_table t;
	char err[512];

	(void)state;
	assert_int_equal(rls_table_load("/tmp", &t, err, sizeof(err)), -1);
	assert_message(err, "/tmp", phrases, NULL);
}

/*
 * Issue 11, item 5: a table read from /dev/zero grew without end, and one from a FIFO blocked
 * the load (and a daemon's SIGHUP reload) for ever. Both are refused at once, saying why.
 */
static void test_unbounded_sources_refused(void **state)
{
	const char *const zero[] = { "/dev/zero: cannot read: not a regular file", NULL };
	const char *const fifo_phrases[] = { ": cannot read: not a regular file (a FIFO", NULL };
	char dir[] = "/tmp/rls-test-fifo-XXXXXX", fifo[64], err[512];
	struct rls_table t;

	(void)state;
	assert_int_equal(rls_table_load("/dev/zero", &t, err, sizeof(err)), -1);
	assert_message(err, "/dev/zero", zero, NULL);
	assert_empty(&t);
	assert_non_null(mkdtemp(dir));
	snprintf(fifo, sizeof(fifo), "%s/tiers.json", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(rls_table_load(fifo, &t, err, sizeof(err)), -1);
	unlink(fifo);
	rmdir(dir);
	assert_message(err, fifo, fifo_phrases, NULL);
}

/* The caller's name for the text is what messages show, and a short buffer still gets a line. */
static void test_parse_from_memory(void **state)
{
	static const char text[] = "{\"listen\": {\"ports\": [8000]}, \"tiers\": {\"free\": "
				   "{\"*\": {\"rpm\": -3}}}}";
	struct rls_table t;
	char err[512], tiny[12];

	(void)state;
	assert_int_equal(rls_table_parse("tiers.json", text, strlen(text), &t, err, sizeof(err)), -1);
	assert_string_equal(err, "tiers.json: tiers.free.\"*\".rpm: must be a non-negative integer "
			    "or \"unlimited\", got -3");
	assert_int_equal(rls_table_parse("tiers.json", text, strlen(text), &t, tiny, sizeof(tiny)),
			 -1);
	assert_string_equal(tiny, "tiers.json:");
	assert_int_equal(rls_table_parse("tiers.json", text, strlen(text), &t, NULL, 0), -1);
}

/* ---- max_hold_seconds ---- */

#define NS 1000000000ull

/* A finite concurrency gets 600 s (an OpenAI client's default timeout) unless told otherwise. */
static void test_max_hold_default(void **state)
{
	struct rls_table t;

	(void)state;
	load_ok(LIMITS("'concurrency': 4"), &t);
	assert_int_equal(t.tiers[0].entries[0].limits.concurrency, 4);
	assert_int_equal(t.tiers[0].entries[0].limits.max_hold_ns, 600 * NS);
	rls_table_free(&t);

	/* concurrency 0 admits nothing; a max_hold_seconds with it is harmless. */
	load_ok(LIMITS("'concurrency': 0"), &t);
	assert_int_equal(t.tiers[0].entries[0].limits.max_hold_ns, 600 * NS);
	rls_table_free(&t);
	load_ok(LIMITS("'concurrency': 0, 'max_hold_seconds': 5"), &t);
	assert_int_equal(t.tiers[0].entries[0].limits.concurrency, 0);
	assert_int_equal(t.tiers[0].entries[0].limits.max_hold_ns, 5 * NS);
	rls_table_free(&t);
}

/* One response is charged at most max_response_tokens: 2,000,000 unless the entry says. */
static void test_max_response_tokens(void **state)
{
	struct rls_table t;

	(void)state;
	load_ok(LIMITS("'tpm': 1000"), &t);
	assert_int_equal(t.tiers[0].entries[0].limits.max_response_tokens, 2000000);
	rls_table_free(&t);
	load_ok(LIMITS("'tpd': 1000, 'max_response_tokens': 32768"), &t);
	assert_int_equal(t.tiers[0].entries[0].limits.max_response_tokens, 32768);
	rls_table_free(&t);
}

static void test_max_hold_explicit(void **state)
{
	struct rls_table t;

	(void)state;
	load_ok(LIMITS("'max_hold_seconds': 30, 'concurrency': 2"), &t);
	assert_int_equal(t.tiers[0].entries[0].limits.max_hold_ns, 30 * NS);
	rls_table_free(&t);
	load_ok(LIMITS("'concurrency': 2, 'max_hold_seconds': 1"), &t);
	assert_int_equal(t.tiers[0].entries[0].limits.max_hold_ns, NS);
	rls_table_free(&t);
	load_ok(LIMITS("'concurrency': 2, 'max_hold_seconds': 604800"), &t);
	assert_int_equal(t.tiers[0].entries[0].limits.max_hold_ns, 604800 * NS);
	rls_table_free(&t);
}

/* shape: off unless asked, then its max_delay_ms in ns, in the entry that asks only. */
static void test_shape_values(void **state)
{
	const struct rls_tier *tier;
	struct rls_table t;

	(void)state;
	load_ok("{'listen': {'ports': [8000]}, 'tiers': {'free': {"
		"'a': {'rpm': 300, 'shape': {'max_delay_ms': 2000}}, 'b': {'rpm': 300},"
		"'c': {'rpm': 1, 'burst': 1, 'shape': {'max_delay_ms': 1}},"
		"'d': {'rpm': 60, 'shape': {'max_delay_ms': 5000}}}}}", &t);
	tier = &t.tiers[0];
	assert_int_equal(tier_limits(tier, "a")->shape_max_delay_ns, 2000 * 1000000ull);
	assert_int_equal(tier_limits(tier, "b")->shape_max_delay_ns, 0);
	assert_int_equal(tier_limits(tier, "c")->shape_max_delay_ns, 1000000ull);
	assert_int_equal(tier_limits(tier, "d")->shape_max_delay_ns, 5000 * 1000000ull);
	/* The implicit "*" shapes nothing. */
	assert_int_equal(tier_limits(tier, "other")->shape_max_delay_ns, 0);
	/* What load checks fq's horizon against: the longest. */
	assert_int_equal(rls_table_max_shape_delay_ns(&t), 5000 * 1000000ull);
	rls_table_free(&t);
	load_ok(LIMITS("'rpm': 60"), &t);
	assert_int_equal(rls_table_max_shape_delay_ns(&t), 0);
	rls_table_free(&t);
}

/* No concurrency limit, no slot to expire: absent, "unlimited" and the implicit "*" alike. */
static void test_max_hold_zero_without_concurrency(void **state)
{
	const struct rls_limits *l;
	struct rls_table t;

	(void)state;
	load_ok("{'listen': {'ports': [8000]}, 'tiers': {'free': {"
		"'a': {'rpm': 60}, 'b': {'concurrency': 'unlimited'}, 'c': {'concurrency': 3}}}}",
		&t);
	assert_int_equal(t.tiers[0].nr_entries, 4);
	l = tier_limits(&t.tiers[0], "a");
	assert_int_equal(l->concurrency, RLS_UNLIMITED);
	assert_int_equal(l->max_hold_ns, 0);
	l = tier_limits(&t.tiers[0], "b");
	assert_int_equal(l->concurrency, RLS_UNLIMITED);
	assert_int_equal(l->max_hold_ns, 0);
	l = tier_limits(&t.tiers[0], "other"); /* the implicit unlimited "*" */
	assert_string_equal(t.tiers[0].entries[3].model, "*");
	assert_ptr_equal(l, &t.tiers[0].entries[3].limits);
	assert_int_equal(l->max_hold_ns, 0);
	l = tier_limits(&t.tiers[0], "c");
	assert_int_equal(l->max_hold_ns, 600 * NS);
	rls_table_free(&t);
}

/* Hidden models are priced by requests a day; concurrency has no say. */
static void test_strictest_ignores_concurrency(void **state)
{
	const struct rls_tier_entry *e;
	struct rls_table t;

	(void)state;
	load_ok("{'listen': {'ports': [8000]}, 'tiers': {'free': {"
		"'narrow': {'rpm': 600, 'concurrency': 1, 'max_hold_seconds': 10},"
		" 'wide': {'rpd': 1000, 'concurrency': 100}}}}", &t);
	e = rls_tier_strictest_entry(&t.tiers[0]);
	assert_string_equal(e->model, "wide");
	rls_table_free(&t);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_full_table_listen_identify),
		cmocka_unit_test(test_full_table_limits),
		cmocka_unit_test(test_full_table_accounts),
		cmocka_unit_test(test_plain_key_equals_digest_form),
		cmocka_unit_test(test_strictest),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_http2_values),
		cmocka_unit_test(test_websocket_values),
		cmocka_unit_test(test_anonymous_ipv6_prefix_values),
		cmocka_unit_test(test_fleet_values),
		cmocka_unit_test(test_max_hold_default),
		cmocka_unit_test(test_max_hold_explicit),
		cmocka_unit_test(test_shape_values),
		cmocka_unit_test(test_max_response_tokens),
		cmocka_unit_test(test_max_hold_zero_without_concurrency),
		cmocka_unit_test(test_strictest_ignores_concurrency),
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_sha256_matches_key_hash),
		cmocka_unit_test(test_table_hash_is_sha256sum),
		cmocka_unit_test(test_unreadable_missing),
		cmocka_unit_test(test_unreadable_directory),
		cmocka_unit_test(test_unbounded_sources_refused),
		cmocka_unit_test(test_map_room),
		cmocka_unit_test(test_models_listed_once),
		cmocka_unit_test(test_parse_from_memory),
	};

	return RUN_TESTS_AND_CASES("tiers", fixed, CASE_TABLE(test_bad_table, bad_tables));
}
