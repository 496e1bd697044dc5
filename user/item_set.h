/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A set of items of one size (SHA-256 digests, networks, names, map keys), by their bytes: an
 * open-addressed table of indices into an array the caller keeps. Tables of a million accounts
 * ask which keys repeat, and which of a million map keys are among a million others; sorting
 * them for that took a seventh of a parse.
 */
#ifndef RLS_USER_ITEM_SET_H
#define RLS_USER_ITEM_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct rls_item_set {
	const unsigned char *base; /* item i is the size bytes at base + i * stride */
	size_t stride, size, mask;
	__u64 *slots; /* the upper half of an item's hash beside its index + 1 (0: empty) */
};

/* An empty set for up to n items of the array at base. Returns 0 or -ENOMEM. */
int rls_item_set_init(struct rls_item_set *s, const void *base, size_t stride, size_t size,
		      size_t n);

/* Add item i, unless an equal one is in already: then its index is returned, else -1. */
long rls_item_set_add(struct rls_item_set *s, size_t i);

/* Is an item equal to the size bytes at item in the set? */
bool rls_item_set_has(const struct rls_item_set *s, const void *item);

void rls_item_set_free(struct rls_item_set *s);

/*
 * The first of the n items (item i at base + i * stride) equal to an earlier one, in one pass:
 * *repeat its index and *first the earlier one's, or *repeat -1 when no two are equal.
 * Returns 0 or -ENOMEM.
 */
int rls_item_first_repeat(const void *base, size_t stride, size_t size, size_t n, long *repeat,
			  long *first);

#endif /* RLS_USER_ITEM_SET_H */
