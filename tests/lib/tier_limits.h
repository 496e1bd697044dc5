/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The limits a parsed tier gives a model, for the tests and fuzzers that check a parsed table
 * (tests/unit/test_tiers.c, fuzz/tier_table.c). The product never asks a parsed table this: the
 * XDP program answers it from the maps (bpf/lib/policy.h, rls_lookup_limits), so it is not in user/.
 */
#ifndef RLS_TESTS_TIER_LIMITS_H
#define RLS_TESTS_TIER_LIMITS_H

#include <string.h>

#include "tiers.h"

/* The tier's entry for model, else its "*" entry. */
static inline const struct rls_limits *tier_limits(const struct rls_tier *tier, const char *model)
{
	const struct rls_limits *fallback = NULL;
	size_t i;

	for (i = 0; i < tier->nr_entries; i++) {
		if (!strcmp(tier->entries[i].model, model))
			return &tier->entries[i].limits;
		if (!strcmp(tier->entries[i].model, "*"))
			fallback = &tier->entries[i].limits;
	}
	return fallback;
}

#endif /* RLS_TESTS_TIER_LIMITS_H */
