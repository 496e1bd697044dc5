/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Putting a parsed tier table into the maps, atomically: everything the data path reads is
 * written under the generation that is not live, then one write to rls_active switches over.
 * The old generation is left for packets already in flight and cleared by the next load.
 * Account and model ids are looked up by name in the maps of the previous load, so their
 * counters carry over.
 */
#ifndef RLS_USER_APPLY_H
#define RLS_USER_APPLY_H

#include <stddef.h>
#include "maps.h"
#include "tiers.h"

struct rls_apply_result {
	__u32 generation; /* now live */
	size_t nr_accounts, nr_models, nr_keys, nr_cidrs, nr_limits;
	size_t counters_removed; /* of accounts or models no longer in the table */
	size_t idle_removed;     /* anonymous counters with nothing left to count */
	/* Overflow counters the full rls_anon_counters had no room for: until idle counters are
	 * pruned (the next load), new unknown clients of those models are refused. */
	size_t overflow_missing;
};

/*
 * Make table live in maps. On error nothing that was live changes: the half-written
 * generation is removed again. err gets one line saying what failed and what to do.
 */
int rls_apply_table(const struct rls_maps *maps, const struct rls_table *table,
		    struct rls_apply_result *result, char *err, size_t err_len);

/*
 * The same in two steps, so that the first can run while the table is still being parsed:
 * rls_read_maps() reads what a load needs to know of the maps (their names and ids, the keys
 * of the generation that is not live), changing nothing; rls_apply_read_table() is
 * rls_apply_table() with that reading, taken from the same maps with no load between.
 * rls_read_maps() returns 0 or -errno (-EPROTO: maps laid out otherwise than this rlshape's,
 * as an older one's pins may be), and sets *reading even then, for rls_map_reading_free().
 */
struct rls_map_reading;

int rls_read_maps(const struct rls_maps *maps, struct rls_map_reading **reading);
int rls_apply_read_table(const struct rls_maps *maps, const struct rls_map_reading *reading,
			 const struct rls_table *table, struct rls_apply_result *result, char *err,
			 size_t err_len);
void rls_map_reading_free(struct rls_map_reading *reading);

#endif /* RLS_USER_APPLY_H */
