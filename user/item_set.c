// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "item_set.h"

/* Mixes every byte of an item into 64 bits. */
static __u64 item_hash(const void *item, size_t size)
{
	const unsigned char *b = item;
	__u64 h = 0x9e3779b97f4a7c15ull, word;
	size_t i;

	for (i = 0; i + sizeof(word) <= size; i += sizeof(word)) {
		memcpy(&word, b + i, sizeof(word));
		h = (h ^ word) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	for (; i < size; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h ^ h >> 29;
}

int rls_item_set_init(struct rls_item_set *s, const void *base, size_t stride, size_t size,
		      size_t n)
{
	size_t cap = 16;

	/* At most half full: a probe rarely goes far, and rarely reads an item it does not match. */
	while (cap < 2 * n)
		cap *= 2;
	*s = (struct rls_item_set){ .base = base, .stride = stride, .size = size, .mask = cap - 1 };
	s->slots = calloc(cap, sizeof(*s->slots));
	return s->slots ? 0 : -ENOMEM;
}

/* The slot that holds item, or the empty one where it would go. */
static size_t find_slot(const struct rls_item_set *s, const void *item)
{
	__u64 h = item_hash(item, s->size), tag = h >> 32 << 32;
	size_t slot;

	for (slot = h & s->mask; s->slots[slot]; slot = (slot + 1) & s->mask)
		if ((s->slots[slot] & ~0xffffffffull) == tag &&
		    !memcmp(s->base + ((s->slots[slot] & 0xffffffffu) - 1) * s->stride, item, s->size))
			break;
	return slot;
}

long rls_item_set_add(struct rls_item_set *s, size_t i)
{
	const unsigned char *item = s->base + i * s->stride;
	size_t slot = find_slot(s, item);

	if (s->slots[slot])
		return (long)(s->slots[slot] & 0xffffffffu) - 1;
	s->slots[slot] = (item_hash(item, s->size) >> 32 << 32) | (i + 1);
	return -1;
}

bool rls_item_set_has(const struct rls_item_set *s, const void *item)
{
	return s->slots[find_slot(s, item)] != 0;
}

void rls_item_set_free(struct rls_item_set *s)
{
	free(s->slots);
	s->slots = NULL;
}

int rls_item_first_repeat(const void *base, size_t stride, size_t size, size_t n, long *repeat,
			  long *first)
{
	struct rls_item_set seen;
	size_t i;

	*repeat = *first = -1;
	if (rls_item_set_init(&seen, base, stride, size, n))
		return -ENOMEM;
	for (i = 0; i < n && *first < 0; i++)
		*first = rls_item_set_add(&seen, i);
	if (*first >= 0)
		*repeat = (long)i - 1;
	rls_item_set_free(&seen);
	return 0;
}
