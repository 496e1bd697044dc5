// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tier table parser (user/tiers.c, rls_table_parse(): what `rlshape check` and `load`
 * run) on arbitrary bytes. Properties:
 *
 *   - a refused table gives one line naming the file, and a line:column for a syntax error
 *     that lies within the text; the table is left empty;
 *   - an accepted table holds what the maps can: every name fits and ends, ports are distinct,
 *     each tier has exactly one "*" entry, every limit is within its documented range, every
 *     account has a known tier and a key or a network, no network has host bits set;
 *   - an accepted table written back out as JSON (keys as their sha256: digests) parses to
 *     the same table: the parser reads each field the way it is documented, and nothing it
 *     accepts depends on the file's spelling or order beyond what the table keeps.
 */
#include <arpa/inet.h>

#include <jansson.h>

#include "fuzz.h"
#include "tiers.h"
#include "../tests/lib/tier_limits.h"

#define FILE_NAME "fuzz.json"

static int text_lines(const char *text, size_t len)
{
	int lines = 1;
	size_t i;

	for (i = 0; i < len; i++)
		lines += text[i] == '\n';
	return lines;
}

/* "FILE:LINE:COL: ..." or "FILE: ..." with LINE within the text. */
static void check_error(const char *err, const char *text, size_t len)
{
	const char *p = err + strlen(FILE_NAME) + 1;
	char *end;
	long line;

	FUZZ_CHECK(fuzz_one_line_about(err, FILE_NAME), "%s", err);
	if (*p == ' ')
		return;
	line = strtol(p, &end, 10);
	FUZZ_CHECK(end != p && *end == ':' && line >= 1 && line <= text_lines(text, len),
		   "a syntax error must name a line of the text (%d lines): %s",
		   text_lines(text, len), err);
}

static int name_ends(const char *s, size_t size)
{
	return memchr(s, '\0', size) && s[0];
}

static void check_limits(const struct rls_limits *l, int implicit)
{
	if (implicit) {
		FUZZ_CHECK(l->rps == RLS_UNLIMITED && l->rpm == RLS_UNLIMITED &&
			   l->tpm == RLS_TOKENS_UNLIMITED && l->concurrency == RLS_UNLIMITED,
			   "the implicit \"*\" is unlimited");
		return;
	}
	if (l->rpm == 0 || l->rpm == RLS_UNLIMITED)
		FUZZ_CHECK(!l->burst && !l->smooth_interval_ns, "no smoothing without a finite rpm");
	else
		FUZZ_CHECK(l->burst >= 1 && l->burst <= l->rpm &&
			   l->smooth_interval_ns == 60 * RLS_NS_PER_SEC / l->rpm,
			   "burst %u rpm %u", l->burst, l->rpm);
	if (l->tpm == 0 || l->tpm == RLS_TOKENS_UNLIMITED)
		FUZZ_CHECK(l->token_burst == 0, "no token_burst without a finite tpm");
	else
		FUZZ_CHECK(l->token_burst >= 1 && l->token_burst <= l->tpm, "token_burst %llu",
			   (unsigned long long)l->token_burst);
	FUZZ_CHECK(l->bytes_per_token >= 1 && l->bytes_per_token <= 1000, "bytes_per_token %u",
		   l->bytes_per_token);
	FUZZ_CHECK(l->max_response_tokens >= 1 && l->max_response_tokens <= RLS_MAX_RESPONSE_TOKENS,
		   "max_response_tokens %llu", (unsigned long long)l->max_response_tokens);
	FUZZ_CHECK(l->reserve_tokens != RLS_UNLIMITED && l->reserve_max != RLS_UNLIMITED,
		   "reservations are finite");
	if (l->concurrency == RLS_UNLIMITED)
		FUZZ_CHECK(l->max_hold_ns == 0, "no hold without a concurrency limit");
	else
		FUZZ_CHECK(l->max_hold_ns >= RLS_NS_PER_SEC && l->max_hold_ns % RLS_NS_PER_SEC == 0 &&
			   l->max_hold_ns <= 604800 * RLS_NS_PER_SEC, "max_hold_ns %llu",
			   (unsigned long long)l->max_hold_ns);
}

static int is_implicit_default(const struct rls_tier_entry *e)
{
	return !strcmp(e->model, "*") && e->limits.bytes_per_token == 0;
}

static void check_table(const struct rls_table *t)
{
	size_t i, j, k;

	FUZZ_CHECK(!strcmp(t->path, FILE_NAME), "%s", t->path);
	FUZZ_CHECK(t->nr_ports >= 1 && t->nr_ports <= RLS_MAX_PORTS, "%zu ports", t->nr_ports);
	for (i = 0; i < t->nr_ports; i++) {
		FUZZ_CHECK(t->ports[i] != 0, "port 0");
		for (j = 0; j < i; j++)
			FUZZ_CHECK(t->ports[i] != t->ports[j], "port %u twice", t->ports[i]);
	}
	FUZZ_CHECK(memchr(t->dev, '\0', sizeof(t->dev)), "dev ends");
	FUZZ_CHECK(t->nr_key_headers >= 1 && t->nr_key_headers <= RLS_MAX_KEY_HEADERS, "%zu",
		   t->nr_key_headers);
	FUZZ_CHECK(t->nr_tiers >= 1 && t->nr_tiers <= RLS_MAX_TIERS, "%zu tiers", t->nr_tiers);
	FUZZ_CHECK(t->default_tier >= -1 && t->default_tier < (long)t->nr_tiers, "default %ld",
		   t->default_tier);
	FUZZ_CHECK(t->anonymous_ipv6_prefix >= RLS_ANON_IPV6_PREFIX_MIN &&
		   t->anonymous_ipv6_prefix <= 128, "prefix %u", t->anonymous_ipv6_prefix);
	for (i = 0; i < t->nr_tiers; i++) {
		const struct rls_tier *tier = &t->tiers[i];
		const struct rls_tier_entry *strictest = rls_tier_strictest_entry(tier);
		size_t defaults = 0;

		FUZZ_CHECK(name_ends(tier->name, sizeof(tier->name)), "tier %zu's name", i);
		for (j = 0; j < tier->nr_entries; j++) {
			const struct rls_tier_entry *e = &tier->entries[j];

			FUZZ_CHECK(name_ends(e->model, sizeof(e->model)), "a model name");
			defaults += !strcmp(e->model, "*");
			check_limits(&e->limits, is_implicit_default(e));
			for (k = 0; k < j; k++)
				FUZZ_CHECK(strcmp(e->model, tier->entries[k].model), "model twice");
		}
		FUZZ_CHECK(defaults == 1, "tier %s has %zu \"*\" entries", tier->name, defaults);
		FUZZ_CHECK(strictest >= tier->entries && strictest < tier->entries + tier->nr_entries,
			   "the strictest entry is one of the tier's");
		FUZZ_CHECK(tier_limits(tier, "*") && tier_limits(tier, "no such model"),
			   "every model has limits");
	}
	for (i = 0; i < t->nr_accounts; i++) {
		const struct rls_account *a = &t->accounts[i];

		FUZZ_CHECK(name_ends(a->name, sizeof(a->name)), "an account name");
		FUZZ_CHECK(a->tier < t->nr_tiers, "account tier %zu", a->tier);
		FUZZ_CHECK(a->nr_keys || a->nr_cidrs, "account %s identifies nobody", a->name);
		for (j = 0; j < a->nr_cidrs; j++) {
			const struct rls_cidr *c = &a->cidrs[j];

			FUZZ_CHECK(c->prefixlen <= 128, "prefix %u", c->prefixlen);
			for (k = c->prefixlen; k < 128; k++)
				FUZZ_CHECK(!(c->addr[k / 8] & (0x80 >> (k % 8))), "host bits set");
		}
	}
}

/* ---- the table written back out ---- */

static json_t *limit_value(__u64 v, __u64 unlimited)
{
	return v == unlimited ? json_string("unlimited") : json_integer((json_int_t)v);
}

static json_t *limits_json(const struct rls_limits *l)
{
	json_t *o = json_object();

	json_object_set_new(o, "rps", limit_value(l->rps, RLS_UNLIMITED));
	json_object_set_new(o, "rpm", limit_value(l->rpm, RLS_UNLIMITED));
	json_object_set_new(o, "rph", limit_value(l->rph, RLS_UNLIMITED));
	json_object_set_new(o, "rpd", limit_value(l->rpd, RLS_UNLIMITED));
	json_object_set_new(o, "concurrency", limit_value(l->concurrency, RLS_UNLIMITED));
	json_object_set_new(o, "tpm", limit_value(l->tpm, RLS_TOKENS_UNLIMITED));
	json_object_set_new(o, "tpd", limit_value(l->tpd, RLS_TOKENS_UNLIMITED));
	if (l->smooth_interval_ns)
		json_object_set_new(o, "burst", json_integer(l->burst));
	if (l->tpm && l->tpm != RLS_TOKENS_UNLIMITED)
		json_object_set_new(o, "token_burst", json_integer((json_int_t)l->token_burst));
	json_object_set_new(o, "bytes_per_token", json_integer(l->bytes_per_token));
	json_object_set_new(o, "reserve_tokens", json_integer(l->reserve_tokens));
	json_object_set_new(o, "reserve_max", json_integer(l->reserve_max));
	json_object_set_new(o, "max_response_tokens",
			    json_integer((json_int_t)l->max_response_tokens));
	if (l->concurrency != RLS_UNLIMITED)
		json_object_set_new(o, "max_hold_seconds",
				    json_integer((json_int_t)(l->max_hold_ns / RLS_NS_PER_SEC)));
	return o;
}

static json_t *header_json(const struct rls_header_name *h)
{
	return json_stringn(h->name, h->len);
}

static json_t *cidr_json(const struct rls_cidr *c)
{
	static const __u8 v4_mapped[12] = { [10] = 0xff, [11] = 0xff };
	char addr[INET6_ADDRSTRLEN], buf[64];

	if (c->prefixlen >= 96 && !memcmp(c->addr, v4_mapped, sizeof(v4_mapped))) {
		inet_ntop(AF_INET, c->addr + 12, addr, sizeof(addr));
		snprintf(buf, sizeof(buf), "%s/%u", addr, c->prefixlen - 96);
	} else {
		inet_ntop(AF_INET6, c->addr, addr, sizeof(addr));
		snprintf(buf, sizeof(buf), "%s/%u", addr, c->prefixlen);
	}
	return json_string(buf);
}

static json_t *key_json(const __u8 digest[RLS_SHA256_LEN])
{
	char buf[8 + 2 * RLS_SHA256_LEN];
	size_t i;

	strcpy(buf, "sha256:");
	for (i = 0; i < RLS_SHA256_LEN; i++)
		snprintf(buf + 7 + 2 * i, 3, "%02x", digest[i]);
	return json_string(buf);
}

static char *table_json(const struct rls_table *t)
{
	json_t *root = json_object(), *listen = json_object(), *identify = json_object();
	json_t *ports = json_array(), *keys = json_array(), *tiers = json_object();
	json_t *accounts = json_object();
	size_t i, j;
	char *text;

	for (i = 0; i < t->nr_ports; i++)
		json_array_append_new(ports, json_integer(t->ports[i]));
	json_object_set_new(listen, "ports", ports);
	if (t->dev[0])
		json_object_set_new(listen, "dev", json_string(t->dev));
	json_object_set_new(listen, "http2", json_string(t->http2_pass ? "pass" : "refuse"));
	json_object_set_new(root, "listen", listen);
	for (i = 0; i < t->nr_key_headers; i++)
		json_array_append_new(keys, header_json(&t->key_headers[i]));
	json_object_set_new(identify, "key_headers", keys);
	json_object_set_new(identify, "model_header",
			    t->model_header.len ? header_json(&t->model_header) : json_null());
	json_object_set_new(root, "identify", identify);
	for (i = 0; i < t->nr_tiers; i++) {
		json_t *tier = json_object();

		for (j = 0; j < t->tiers[i].nr_entries; j++)
			if (!is_implicit_default(&t->tiers[i].entries[j]))
				json_object_set_new(tier, t->tiers[i].entries[j].model,
						    limits_json(&t->tiers[i].entries[j].limits));
		json_object_set_new(tiers, t->tiers[i].name, tier);
	}
	json_object_set_new(root, "tiers", tiers);
	for (i = 0; i < t->nr_accounts; i++) {
		const struct rls_account *a = &t->accounts[i];
		json_t *account = json_object(), *digests = json_array(), *cidrs = json_array();

		json_object_set_new(account, "tier", json_string(t->tiers[a->tier].name));
		for (j = 0; j < a->nr_keys; j++)
			json_array_append_new(digests, key_json(a->keys[j]));
		for (j = 0; j < a->nr_cidrs; j++)
			json_array_append_new(cidrs, cidr_json(&a->cidrs[j]));
		json_object_set_new(account, "keys", digests);
		json_object_set_new(account, "cidrs", cidrs);
		json_object_set_new(accounts, a->name, account);
	}
	json_object_set_new(root, "accounts", accounts);
	if (t->default_tier >= 0)
		json_object_set_new(root, "default_tier",
				    json_string(t->tiers[t->default_tier].name));
	json_object_set_new(root, "anonymous_ipv6_prefix", json_integer(t->anonymous_ipv6_prefix));
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

/* memcmp() of no bytes may be given NULL arrays. */
static int same_bytes(const void *a, const void *b, size_t n)
{
	return !n || !memcmp(a, b, n);
}

static void check_same(const struct rls_table *a, const struct rls_table *b)
{
	size_t i, j;

	FUZZ_CHECK(!strcmp(a->dev, b->dev) && a->nr_ports == b->nr_ports &&
		   !memcmp(a->ports, b->ports, sizeof(a->ports)) && a->http2_pass == b->http2_pass,
		   "listen");
	FUZZ_CHECK(a->nr_key_headers == b->nr_key_headers &&
		   !memcmp(a->key_headers, b->key_headers, sizeof(a->key_headers)) &&
		   !memcmp(&a->model_header, &b->model_header, sizeof(a->model_header)), "identify");
	FUZZ_CHECK(a->default_tier == b->default_tier &&
		   a->anonymous_ipv6_prefix == b->anonymous_ipv6_prefix, "defaults");
	FUZZ_CHECK(a->nr_tiers == b->nr_tiers, "%zu tiers, then %zu", a->nr_tiers, b->nr_tiers);
	for (i = 0; i < a->nr_tiers; i++) {
		const struct rls_tier *x = &a->tiers[i], *y = &b->tiers[i];

		FUZZ_CHECK(!strcmp(x->name, y->name) && x->nr_entries == y->nr_entries, "tier %s",
			   x->name);
		for (j = 0; j < x->nr_entries; j++)
			FUZZ_CHECK(!memcmp(&x->entries[j], &y->entries[j], sizeof(x->entries[j])),
				   "tier %s model %s", x->name, x->entries[j].model);
	}
	FUZZ_CHECK(a->nr_accounts == b->nr_accounts, "accounts");
	for (i = 0; i < a->nr_accounts; i++) {
		const struct rls_account *x = &a->accounts[i], *y = &b->accounts[i];

		FUZZ_CHECK(!strcmp(x->name, y->name) && x->tier == y->tier &&
			   x->nr_keys == y->nr_keys && x->nr_cidrs == y->nr_cidrs &&
			   same_bytes(x->keys, y->keys, x->nr_keys * sizeof(*x->keys)) &&
			   same_bytes(x->cidrs, y->cidrs, x->nr_cidrs * sizeof(*x->cidrs)),
			   "account %s", x->name);
	}
}

static void check_refused_table_is_empty(const struct rls_table *t)
{
	FUZZ_CHECK(!t->nr_tiers && !t->tiers && !t->nr_accounts && !t->accounts &&
		   t->default_tier == -1, "a refused table is left empty");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rls_table table, again;
	char err[1024], err2[1024];
	const char *text = (const char *)data;
	char *json;

	if (rls_table_parse(FILE_NAME, text, size, &table, err, sizeof(err))) {
		check_error(err, text, size);
		check_refused_table_is_empty(&table);
		return 0;
	}
	FUZZ_CHECK(err[0] == '\0', "an accepted table has no message: %s", err);
	check_table(&table);
	json = table_json(&table);
	FUZZ_CHECK(json, "the table can be written out");
	if (rls_table_parse(FILE_NAME, json, strlen(json), &again, err2, sizeof(err2)))
		fuzz_fail("the table written back out is refused: %s\n%s", err2, json);
	check_same(&table, &again);
	free(json);
	rls_table_free(&again);
	rls_table_free(&table);
	return 0;
}
