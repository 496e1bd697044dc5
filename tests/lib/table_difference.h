/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Where two parsed tier tables differ: for the tests and the fuzzer that compare the tier
 * table's two ways in (the scan and jansson's parse, user/tiers.c), which must make the same
 * table of every text. Every field is compared, the accounts' keys and networks through their
 * pointers, a plain key by its bytes.
 */
#ifndef RLS_TESTS_TABLE_DIFFERENCE_H
#define RLS_TESTS_TABLE_DIFFERENCE_H

#include <string.h>

#include "tiers.h"

#define RLS_DIFFERS(cond, what) \
	do {                    \
		if (cond)       \
			return what; \
	} while (0)

static inline const char *rls_account_difference(const struct rls_table *a,
						  const struct rls_account *x,
						  const struct rls_table *b,
						  const struct rls_account *y)
{
	size_t j;

	RLS_DIFFERS(memcmp(x->name, y->name, sizeof(x->name)), "an account's name");
	RLS_DIFFERS(x->tier != y->tier, "an account's tier");
	RLS_DIFFERS(x->nr_keys != y->nr_keys, "an account's number of keys");
	for (j = 0; j < x->nr_keys; j++) {
		RLS_DIFFERS(memcmp(x->keys[j], y->keys[j], sizeof(x->keys[j])), "a key's SHA-256");
		RLS_DIFFERS(x->key_spans[j].len != y->key_spans[j].len, "a key's length");
		RLS_DIFFERS(memcmp(a->key_bytes + x->key_spans[j].off,
				   b->key_bytes + y->key_spans[j].off, x->key_spans[j].len),
			    "a key's bytes");
	}
	RLS_DIFFERS(x->nr_cidrs != y->nr_cidrs, "an account's number of networks");
	RLS_DIFFERS(x->nr_cidrs && memcmp(x->cidrs, y->cidrs, x->nr_cidrs * sizeof(*x->cidrs)),
		    "an account's networks");
	return NULL;
}

/* NULL when a and b are the same table, else what differs first. */
static inline const char *rls_table_difference(const struct rls_table *a,
						const struct rls_table *b)
{
	const char *what;
	size_t i, j;

	RLS_DIFFERS(strcmp(a->path, b->path), "path");
	RLS_DIFFERS(memcmp(a->sha256, b->sha256, sizeof(a->sha256)), "sha256");
	RLS_DIFFERS(strcmp(a->dev, b->dev), "dev");
	RLS_DIFFERS(a->nr_ports != b->nr_ports || memcmp(a->ports, b->ports, sizeof(a->ports)),
		    "ports");
	RLS_DIFFERS(a->nr_key_headers != b->nr_key_headers ||
		    memcmp(a->key_headers, b->key_headers, sizeof(a->key_headers)), "key_headers");
	RLS_DIFFERS(memcmp(&a->model_header, &b->model_header, sizeof(a->model_header)),
		    "model_header");
	RLS_DIFFERS(a->nr_tiers != b->nr_tiers, "the number of tiers");
	for (i = 0; i < a->nr_tiers; i++) {
		RLS_DIFFERS(strcmp(a->tiers[i].name, b->tiers[i].name), "a tier's name");
		RLS_DIFFERS(a->tiers[i].nr_entries != b->tiers[i].nr_entries, "a tier's models");
		for (j = 0; j < a->tiers[i].nr_entries; j++)
			RLS_DIFFERS(memcmp(&a->tiers[i].entries[j], &b->tiers[i].entries[j],
					   sizeof(a->tiers[i].entries[j])), "a tier's entry");
	}
	RLS_DIFFERS(a->nr_models != b->nr_models, "the number of models");
	for (i = 0; i < a->nr_models; i++)
		RLS_DIFFERS(strcmp(a->models[i], b->models[i]), "a model");
	RLS_DIFFERS(a->nr_accounts != b->nr_accounts, "the number of accounts");
	for (i = 0; i < a->nr_accounts; i++) {
		what = rls_account_difference(a, &a->accounts[i], b, &b->accounts[i]);
		if (what)
			return what;
	}
	RLS_DIFFERS(a->default_tier != b->default_tier, "default_tier");
	RLS_DIFFERS(a->http2_pass != b->http2_pass, "http2");
	RLS_DIFFERS(a->anonymous_ipv6_prefix != b->anonymous_ipv6_prefix, "anonymous_ipv6_prefix");
	RLS_DIFFERS(a->nr_digest_keys != b->nr_digest_keys, "the number of digest keys");
	RLS_DIFFERS(a->key_bytes_len != b->key_bytes_len ||
		    memcmp(a->key_bytes, b->key_bytes, a->key_bytes_len), "the plain keys' bytes");
	return NULL;
}

#undef RLS_DIFFERS

#endif /* RLS_TESTS_TABLE_DIFFERENCE_H */
