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

/* FNV-1a, with its 64 bits folded so that the low bits, which pick a slot, see them all. */
static __u64 name_hash(const char *name)
{
	__u64 h = 0xcbf29ce484222325ull;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 0x100000001b3ull;
	return h ^ h >> 32;
}

/*
 * Which of known has each name: an open-addressed table of indices into known (+ 1; 0 is an
 * empty slot). A reload of a million accounts looks up a million names among a million known
 * ones; sorting the known names for a binary search took most of the planning.
 */
struct name_index {
	const struct rls_named_id *known;
	size_t mask;
	__u32 *slots;
};

static int name_index_build(struct name_index *x, const struct rls_named_id *known, size_t n)
{
	size_t cap = 16, i, slot;

	while (cap < 2 * n)
		cap *= 2;
	x->known = known;
	x->mask = cap - 1;
	x->slots = calloc(cap, sizeof(*x->slots));
	if (!x->slots)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		for (slot = name_hash(known[i].name) & x->mask; x->slots[slot];
		     slot = (slot + 1) & x->mask)
			;
		x->slots[slot] = (__u32)(i + 1);
	}
	return 0;
}

static const struct rls_named_id *name_index_find(const struct name_index *x, const char *name)
{
	size_t slot;

	for (slot = name_hash(name) & x->mask; x->slots[slot]; slot = (slot + 1) & x->mask)
		if (!strcmp(x->known[x->slots[slot] - 1].name, name))
			return &x->known[x->slots[slot] - 1];
	return NULL;
}

int rls_plan_ids(const struct rls_named_id *known, size_t nr_known, const char *const *names,
		 size_t n, __u32 first, __u32 last, __u32 *ids, bool *is_new)
{
	const struct rls_named_id *had;
	struct name_index index;
	__u64 next = first; /* 64 bits: next may pass last = 0xffffffff */
	size_t i, t = 0;
	__u32 *taken;
	int ret = 0;

	taken = malloc((nr_known ? nr_known : 1) * sizeof(*taken));
	if (!taken || name_index_build(&index, known, nr_known)) {
		free(taken);
		return -ENOMEM;
	}
	for (i = 0; i < nr_known; i++)
		taken[i] = known[i].id;
	rls_sort_ids(taken, nr_known);

	/* New names fill the gaps between the taken ids, lowest first: one merge over both. */
	for (i = 0; i < n; i++) {
		had = name_index_find(&index, names[i]);
		is_new[i] = !had;
		if (had) {
			ids[i] = had->id;
			continue;
		}
		for (; t < nr_known && taken[t] <= next; t++)
			if (taken[t] == next)
				next++;
		if (next > last) {
			ret = -ENOSPC;
			break;
		}
		ids[i] = (__u32)next++;
	}
	free(index.slots);
	free(taken);
	return ret;
}
