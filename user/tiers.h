/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The tier table (tiers.json): the ports to watch, how a request names its API key and model,
 * each tier's limits per model, and which API keys and client networks belong to which
 * account.
 *
 * Parsing checks everything the BPF maps will hold, so a table that parses fits their
 * fixed-size fields. Plain-text API keys are hashed as they are read and never stored.
 */
#ifndef RLS_TIERS_H
#define RLS_TIERS_H

#include <stdbool.h>
#include <stddef.h>

#include "rlshape.h"

#define RLS_TIER_NAME_MAX 64 /* bytes incl. NUL */
#define RLS_DEV_NAME_MAX  16 /* IFNAMSIZ */

/* An IPv6 client owns a /64 at least (RFC 6177); a /32 is a whole provider's allocation. */
#define RLS_ANON_IPV6_PREFIX_DEFAULT 64
#define RLS_ANON_IPV6_PREFIX_MIN     32

struct rls_tier_entry {
	char model[RLS_MODEL_NAME_MAX]; /* "*": every model the tier does not name */
	struct rls_limits limits;
};

/*
 * Every parsed tier has exactly one "*" entry: a tier whose file entry names no "*" gets an
 * unlimited one, so models it does not name pass unlimited rather than being refused.
 */
struct rls_tier {
	char name[RLS_TIER_NAME_MAX];
	size_t nr_entries;
	struct rls_tier_entry *entries; /* in file order */
};

struct rls_cidr {
	__u8 addr[16];   /* network address; IPv4 as ::ffff:a.b.c.d */
	__u32 prefixlen; /* in IPv6 terms: 96 + n for an IPv4 /n */
};

struct rls_account {
	char name[RLS_ACCOUNT_NAME_MAX];
	size_t tier; /* index into rls_table.tiers */
	size_t nr_keys;
	__u8 (*keys)[RLS_SHA256_LEN]; /* SHA-256 of each API key */
	size_t nr_cidrs;
	struct rls_cidr *cidrs;
};

struct rls_table {
	char path[4096];
	__u8 sha256[RLS_SHA256_LEN]; /* of the file's bytes, as sha256sum prints it */
	char dev[RLS_DEV_NAME_MAX];  /* "": not given in the file */
	__u16 ports[RLS_MAX_PORTS];
	size_t nr_ports;
	struct rls_header_name key_headers[RLS_MAX_KEY_HEADERS];
	size_t nr_key_headers;
	struct rls_header_name model_header; /* len 0: the model comes only from the JSON body */
	size_t nr_tiers;
	struct rls_tier *tiers; /* in file order */
	size_t nr_models;
	const char **models; /* every model some tier names, once, in file order; "*" is not one */
	size_t nr_accounts;
	struct rls_account *accounts; /* in file order */
	long default_tier; /* index into tiers; -1: unknown clients pass unlimited */
	bool http2_pass;   /* listen.http2 "pass"; default "refuse" */
	__u32 anonymous_ipv6_prefix; /* default-tier IPv6 clients are counted per this prefix */
};

/*
 * Read and parse the table at path. Returns 0, or -1 with a one-line message in err that
 * names the file and the location ("FILE:LINE:COLUMN: ..." or "FILE: json.path: ...").
 * On error the table is left empty (safe to pass to rls_table_free()).
 */
int rls_table_load(const char *path, struct rls_table *table, char *err, size_t err_len);

/* The same from len bytes of text; path_for_messages names it in errors and table->path. */
int rls_table_parse(const char *path_for_messages, const char *text, size_t len,
		    struct rls_table *table, char *err, size_t err_len);

void rls_table_free(struct rls_table *table);

/*
 * The tier's entry that admits the fewest requests a day (its tightest window scaled to a
 * day; the first such entry on a tie), leaving out entries that admit nothing at all unless
 * every entry does: a request whose model is not visible is charged as a request for this
 * model, to its counter and under its limits. Never NULL: every parsed tier has a "*" entry.
 */
const struct rls_tier_entry *rls_tier_strictest_entry(const struct rls_tier *tier);

#endif /* RLS_TIERS_H */
