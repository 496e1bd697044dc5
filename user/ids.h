/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Which ids the names of a new tier table get (account and model names). Counters are keyed by
 * id, so a name the maps already know keeps its id across a reload and its counters carry over.
 * Every step is a sort, a hash lookup, a binary search or a merge: a table at the caps (1,048,576
 * accounts, 4,096 models) is planned in well under a second.
 */
#ifndef RLS_USER_IDS_H
#define RLS_USER_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct rls_named_id {
	const char *name;
	__u32 id;
};

/* Sort v by name (strcmp), so that rls_find_id() can search it. */
void rls_sort_by_name(struct rls_named_id *v, size_t n);

/* The id of name in v (sorted by rls_sort_by_name()), or none when v does not have it. */
__u32 rls_find_id(const struct rls_named_id *v, size_t n, const char *name, __u32 none);

/* Sort ids ascending, so that rls_has_id() can search them. */
void rls_sort_ids(__u32 *ids, size_t n);

/* Is id in ids (sorted by rls_sort_ids())? */
bool rls_has_id(const __u32 *ids, size_t n, __u32 id);

/*
 * Ids for names[0..n) (distinct). known: every name the maps hold now with its id, in any
 * order. A known name keeps its id (is_new[i] false). Every other name gets the
 * lowest id in [first, last] that no known name holds and no earlier name here got, so ids
 * freed by an earlier load are used again and ids stay below first + nr_known + n. An id whose
 * name is still in the maps is never given out: the live table, and packets in flight, still
 * count under it until the new table has replaced it.
 * Returns 0, -ENOMEM, or -ENOSPC when [first, last] has too few free ids.
 */
int rls_plan_ids(const struct rls_named_id *known, size_t nr_known, const char *const *names,
		 size_t n, __u32 first, __u32 last, __u32 *ids, bool *is_new);

/*
 * rls_plan_ids() in two steps, so that the first can run before the names are known:
 * rls_id_index_build() indexes known (which must stay as it is while *index is used), and
 * sets *index even on failure (0 or -ENOMEM), for rls_id_index_free();
 * rls_plan_ids_in() plans names against it (0 or -ENOSPC).
 */
struct rls_id_index;

int rls_id_index_build(const struct rls_named_id *known, size_t nr_known,
		       struct rls_id_index **index);
int rls_plan_ids_in(const struct rls_id_index *index, const char *const *names, size_t n,
		    __u32 first, __u32 last, __u32 *ids, bool *is_new);
void rls_id_index_free(struct rls_id_index *index);

#endif /* RLS_USER_IDS_H */
