/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The tier table (tiers.json): the ports to watch, how a request names its API key and model,
 * each tier's limits per model, and which API keys and client networks belong to which
 * account.
 *
 * Parsing checks everything the BPF maps will hold, so a table that parses fits their
 * fixed-size fields. Plain-text API keys are hashed with SHA-256 as they are read (to find a
 * key listed twice, plain or as a digest); their bytes are kept, in one buffer that
 * rls_table_free() wipes, only until `load` hashes them under the device's secret, which the
 * parser does not know (rls_table_key_siphash()).
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
#define RLS_FLEET_HOSTS_MAX 1024
#define RLS_FLEET_UNLEASED_DEFAULT 1
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

/* Where a plain key's bytes are in rls_table.key_bytes; len 0 for a "sha256:" digest. */
struct rls_key_span {
	__u32 off, len;
};

/* keys, key_spans and cidrs point into the table's all_keys, all_key_spans and all_cidrs. */
struct rls_account {
	char name[RLS_ACCOUNT_NAME_MAX]; /* zero past the name */
	size_t tier; /* index into rls_table.tiers */
	size_t nr_keys;
	__u8 (*keys)[RLS_SHA256_LEN]; /* SHA-256 of each API key */
	struct rls_key_span *key_spans; /* each key's bytes in rls_table.key_bytes */
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
	struct rls_header_name client_address_header; /* len 0: none (the upstream side's) */
	size_t nr_tiers;
	struct rls_tier *tiers; /* in file order */
	size_t nr_models;
	const char **models; /* every model some tier names, once, in file order; "*" is not one */
	size_t nr_accounts;
	struct rls_account *accounts; /* in file order */
	/* Every account's keys and networks, back to back in the order of the accounts: a million
	 * accounts are one allocation each, not a million. */
	__u8 (*all_keys)[RLS_SHA256_LEN];
	struct rls_key_span *all_key_spans;
	struct rls_cidr *all_cidrs;
	long default_tier; /* index into tiers; -1: unknown clients pass unlimited */
	bool http2_pass;   /* listen.http2 "pass"; default "refuse" */
	bool websocket_tunnel; /* listen.websocket "tunnel"; default "reset" */
	__u32 anonymous_ipv6_prefix; /* default-tier IPv6 clients are counted per this prefix */
	/* "fleet": gateways sharing every named account's limits through Redis; hosts 0: none */
	__u32 fleet_hosts;
	__u32 fleet_unleased;
	__u16 fleet_redis_port;
	char fleet_redis_host[RLS_FLEET_HOST_MAX];
	size_t nr_digest_keys; /* keys given as "sha256:" digests */
	char *key_bytes;       /* the plain keys, back to back; wiped by rls_table_free() */
	size_t key_bytes_len;
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

/*
 * How a table is parsed: rls_table_parse() scans the accounts straight from the text where it
 * can (the common shape of a large table), and leaves any other text, and every table with an
 * error, to jansson's parse of the whole. Both ways make the same table; tests compare them
 * with rls_table_parse_by(), which goes one way only when asked: RLS_PARSE_SCAN returns -1 for
 * a text the scan leaves to jansson.
 */
enum rls_parse_way {
	RLS_PARSE_SCAN_OR_JANSSON, /* rls_table_parse() */
	RLS_PARSE_JANSSON,
	RLS_PARSE_SCAN,
};

int rls_table_parse_by(enum rls_parse_way way, const char *path_for_messages, const char *text,
		       size_t len, struct rls_table *table, char *err, size_t err_len);

void rls_table_free(struct rls_table *table);

/*
 * The SipHash-2-4-128 under secret of key j of account a (of table t) into out, as the data
 * path hashes a request's key. Returns false for a key given as a "sha256:" digest: only its
 * SHA-256 (a->keys[j]) is known, and the data path looks it up by that.
 */
bool rls_table_key_siphash(const struct rls_table *t, const struct rls_account *a, size_t j,
			   const __u8 secret[RLS_KEY_SECRET_LEN], __u8 out[RLS_SIPHASH_LEN]);

/*
 * The tier's entry that admits the fewest requests a day (its tightest window scaled to a
 * day; the first such entry on a tie), leaving out entries that admit nothing at all unless
 * every entry does: a request whose model is not visible is charged as a request for this
 * model, to its counter and under its limits. Never NULL: every parsed tier has a "*" entry.
 */
const struct rls_tier_entry *rls_tier_strictest_entry(const struct rls_tier *tier);

/* The longest "shape" max_delay_ms of any entry, in ns; 0: the table shapes nothing. */
__u64 rls_table_max_shape_delay_ns(const struct rls_table *t);

#endif /* RLS_TIERS_H */
