/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Putting a parsed tier table into the maps, atomically: everything the data path reads is
 * written under the generation that is not live, then one write to rls_active switches over.
 * The old generation is left for packets already in flight and cleared by the next load. Account and model ids are looked up by name in the maps
 * of the previous load, so their counters carry over.
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

#endif /* RLS_USER_APPLY_H */
