// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"

static int compare_names(const void *a, const void *b)
{
	return strcmp(((const struct rls_named_id *)a)->name, ((const struct rls_named_id *)b)->name);
}

static int compare_ids(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/* qsort() and bsearch() want a real array even for no elements (C11 7.22.5): hence the n tests. */

void rls_sort_by_name(struct rls_named_id *v, size_t n)
{
	if (n)
		qsort(v, n, sizeof(*v), compare_names);
}

static const struct rls_named_id *find_name(const struct rls_named_id *v, size_t n,
					     const char *name)
{
	struct rls_named_id want = { .name = name };

	return n ? bsearch(&want, v, n, sizeof(*v), compare_names) : NULL;
}

__u32 rls_find_id(const struct rls_named_id *v, size_t n, const char *name, __u32 none)
{
	const struct rls_named_id *found = find_name(v, n, name);

	return found ? found->id : none;
}

void rls_sort_ids(__u32 *ids, size_t n)
{
	if (n)
		qsort(ids, n, sizeof(*ids), compare_ids);
}

bool rls_has_id(const __u32 *ids, size_t n, __u32 id)
{
	return n && bsearch(&id, ids, n, sizeof(id), compare_ids) != NULL;
}

int rls_plan_ids(const struct rls_named_id *known, size_t nr_known, const char *const *names,
		 size_t n, __u32 first, __u32 last, __u32 *ids, bool *is_new)
{
	const struct rls_named_id *had;
	__u64 next = first; /* 64 bits: next may pass last = 0xffffffff */
	size_t i, t = 0;
	__u32 *taken;

	taken = malloc((nr_known ? nr_known : 1) * sizeof(*taken));
	if (!taken)
		return -ENOMEM;
	for (i = 0; i < nr_known; i++)
		taken[i] = known[i].id;
	rls_sort_ids(taken, nr_known);

	/* New names fill the gaps between the taken ids, lowest first: one merge over both. */
	for (i = 0; i < n; i++) {
		had = find_name(known, nr_known, names[i]);
		is_new[i] = !had;
		if (had) {
			ids[i] = had->id;
			continue;
		}
		for (; t < nr_known && taken[t] <= next; t++)
			if (taken[t] == next)
				next++;
		if (next > last) {
			free(taken);
			return -ENOSPC;
		}
		ids[i] = (__u32)next++;
	}
	free(taken);
	return 0;
}
