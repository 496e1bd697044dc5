/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The outcome counts as user space sees them: per (account, model), each CPU's count summed.
 * rls_stats names each pair's row of rls_stats_rows (include/rlshape.h); the data path hands
 * rows out, and `rlshape load` gives back those of the names it removes.
 */
#ifndef RLS_USER_STATS_ROWS_H
#define RLS_USER_STATS_ROWS_H

#include <stddef.h>
#include "rlshape.h"
#include "maps.h"
#include "map_walk.h"

/* The counts of (key): 0, or -ENOENT where nothing was counted for it yet, or -errno. */
int rls_stats_read(const struct rls_maps *maps, const struct rls_stats_key *key,
		   struct rls_stats *total);

/* One (account, model) and its counts, each CPU's summed. */
struct rls_stats_pair {
	struct rls_stats_key key;
	struct rls_stats total;
};

/*
 * Every pair with counts, into *pairs (the caller frees it), *n of them. Returns 0 or -errno;
 * on an error, the pairs read before it.
 */
int rls_stats_read_all(const struct rls_maps *maps, struct rls_stats_pair **pairs, size_t *n);

/*
 * The pairs doomed() picks (called with the key and a NULL value) lose their counts: their
 * entries go from rls_stats, and their rows, zeroed, go back to the data path
 * (rls_stats_free). Returns how many went.
 */
size_t rls_stats_give_back_where(const struct rls_maps *maps, rls_key_doomed doomed,
				 const void *ctx);

#endif /* RLS_USER_STATS_ROWS_H */
