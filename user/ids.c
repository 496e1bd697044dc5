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

/*
 * Two passes of a radix sort on 16 bits each: a reload sorts a million ids, and qsort()'s
 * comparisons took a tenth of a second of it. qsort() when there is no memory for the copy.
 */
void rls_sort_ids(__u32 *ids, size_t n)
{
	__u32 *other = n > 1 ? malloc(n * sizeof(*ids)) : NULL, *from = ids, *to = other, *swap;
	size_t *count = other ? calloc(1u << 16, sizeof(*count)) : NULL, i, sum, c;
	unsigned int shift;

	if (!count) {
		free(other);
		if (n > 1)
			qsort(ids, n, sizeof(*ids), compare_ids);
		return;
	}
	for (shift = 0; shift < 32; shift += 16) {
		memset(count, 0, (1u << 16) * sizeof(*count));
		for (i = 0; i < n; i++)
			count[from[i] >> shift & 0xffff]++;
		for (i = 0, sum = 0; i < 1u << 16; i++) {
			c = count[i];
			count[i] = sum;
			sum += c;
		}
		for (i = 0; i < n; i++)
			to[count[from[i] >> shift & 0xffff]++] = from[i];
		swap = from;
		from = to;
		to = swap;
	}
	/* Two passes: the sorted ids are back in ids. */
	free(count);
	free(other);
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
 * ones; sorting the known names for a binary search took most of the planning. With it, the
 * ids known names hold, sorted, for the new names to fill the gaps between.
 */
struct rls_id_index {
	const struct rls_named_id *known;
	size_t nr_known, mask;
	__u32 *slots;
	__u32 *taken;
};

int rls_id_index_build(const struct rls_named_id *known, size_t nr_known,
		       struct rls_id_index **index)
{
	struct rls_id_index *x = calloc(1, sizeof(*x));
	size_t cap = 16, i, slot;

	*index = x;
	while (cap < 2 * nr_known)
		cap *= 2;
	if (x) {
		x->slots = calloc(cap, sizeof(*x->slots));
		x->taken = malloc((nr_known ? nr_known : 1) * sizeof(*x->taken));
	}
	if (!x || !x->slots || !x->taken)
		return -ENOMEM;
	x->known = known;
	x->nr_known = nr_known;
	x->mask = cap - 1;
	for (i = 0; i < nr_known; i++) {
		for (slot = name_hash(known[i].name) & x->mask; x->slots[slot];
		     slot = (slot + 1) & x->mask)
			;
		x->slots[slot] = (__u32)(i + 1);
		x->taken[i] = known[i].id;
	}
	rls_sort_ids(x->taken, nr_known);
	return 0;
}

void rls_id_index_free(struct rls_id_index *x)
{
	if (!x)
		return;
	free(x->slots);
	free(x->taken);
	free(x);
}

static const struct rls_named_id *name_index_find(const struct rls_id_index *x, const char *name)
{
	size_t slot;

	for (slot = name_hash(name) & x->mask; x->slots[slot]; slot = (slot + 1) & x->mask)
		if (!strcmp(x->known[x->slots[slot] - 1].name, name))
			return &x->known[x->slots[slot] - 1];
	return NULL;
}

int rls_plan_ids_in(const struct rls_id_index *x, const char *const *names, size_t n,
		    __u32 first, __u32 last, __u32 *ids, bool *is_new)
{
	const struct rls_named_id *had;
	__u64 next = first; /* 64 bits: next may pass last = 0xffffffff */
	size_t i, t = 0;

	/* New names fill the gaps between the taken ids, lowest first: one merge over both. */
	for (i = 0; i < n; i++) {
		had = name_index_find(x, names[i]);
		is_new[i] = !had;
		if (had) {
			ids[i] = had->id;
			continue;
		}
		for (; t < x->nr_known && x->taken[t] <= next; t++)
			if (x->taken[t] == next)
				next++;
		if (next > last)
			return -ENOSPC;
		ids[i] = (__u32)next++;
	}
	return 0;
}

int rls_plan_ids(const struct rls_named_id *known, size_t nr_known, const char *const *names,
		 size_t n, __u32 first, __u32 last, __u32 *ids, bool *is_new)
{
	struct rls_id_index *index;
	int ret = rls_id_index_build(known, nr_known, &index);

	if (!ret)
		ret = rls_plan_ids_in(index, names, n, first, last, ids, is_new);
	rls_id_index_free(index);
	return ret;
}
