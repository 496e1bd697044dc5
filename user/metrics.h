/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What `rlshape daemon` serves on /metrics (README, Metrics): the data path's counters read
 * from the pinned maps at scrape time (per-CPU values summed), never from the packet path,
 * and the daemon's own settlement counts.
 *
 * Threads: the HTTP server (user/metrics_http.c) scrapes in a thread of its own, with map
 * file descriptors it opens for that scrape, so the settling loop's descriptors (closed and
 * reopened when rlshape is loaded again) are never shared. What the loop counts reaches the
 * scrape through struct rls_metrics_shared, whose lock is held only to add or to copy.
 */
#ifndef RLS_USER_METRICS_H
#define RLS_USER_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "expo.h"
#include "settle.h"

#define RLS_METRICS_MAX_BYTES    (4u << 20) /* a scrape's cap, whatever the tables hold */
#define RLS_METRICS_ACCOUNTS_MAX 1000       /* --metrics-accounts at most */

enum rls_token_source {
	RLS_SOURCE_USAGE,    /* the upstream's usage */
	RLS_SOURCE_ESTIMATE, /* estimated from bytes (no usage; rls_pending sums) */
	RLS_NR_SOURCES,
};

/* Settled responses and tokens of one model, by source. */
struct rls_model_settled {
	__u32 model;
	__u64 responses[RLS_NR_SOURCES];
	__u64 tokens[RLS_NR_SOURCES];
};

/* The daemon's counts that are not in any map. */
struct rls_daemon_counts {
	struct rls_settle_totals totals;
	__u64 reloads_ok, reloads_failed, reloads_killed;
	__u64 started_at; /* UTC seconds */
};

struct rls_metrics_shared {
	pthread_mutex_t lock;
	struct rls_daemon_counts counts;
	struct rls_model_settled *models; /* in the order first settled */
	size_t nr_models, cap_models;
};

void rls_metrics_shared_init(struct rls_metrics_shared *s);
void rls_metrics_shared_free(struct rls_metrics_shared *s);

/* A settlement of responses of one model: added under the lock. Returns 0 or -ENOMEM. */
int rls_metrics_add_settled(struct rls_metrics_shared *s, __u32 model, enum rls_token_source src,
			    __u64 responses, __u64 tokens);

/* The loop's totals, copied in under the lock. */
void rls_metrics_publish(struct rls_metrics_shared *s, const struct rls_daemon_counts *counts);

/* What one account did, for choosing the accounts that get series of their own. */
struct rls_account_traffic {
	__u32 account;
	__u64 requests; /* admitted and rejected */
};

/*
 * The k accounts with the most requests (ties: the lower id first) into out[], at most k of
 * them, most first. in[] is reordered. Returns how many were written.
 */
size_t rls_metrics_top_accounts(struct rls_account_traffic *in, size_t n, size_t k, __u32 *out);

/* Entries of the maps only a load writes, counted once per loaded table (metrics.c). */
#define RLS_METRICS_TABLE_MAPS 6
struct rls_metrics_cache {
	bool valid;
	__u32 generation;
	__u64 loaded_at;
	__u8 table_sha256[RLS_SHA256_LEN];
	__u32 entries[RLS_METRICS_TABLE_MAPS];
};

struct rls_metrics_config {
	const char *pin_dir;
	unsigned long accounts;        /* per-account series for this many (0: none) */
	struct rls_metrics_shared *shared; /* NULL: no daemon counts (tests) */
	struct rls_metrics_cache *cache;   /* NULL: every map counted at every scrape */
};

/* One scrape into e (its size cap applies). Returns 0, or -errno when the pins are gone. */
int rls_metrics_scrape(const struct rls_metrics_config *cfg, struct rls_expo *e);

#endif /* RLS_USER_METRICS_H */
