/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the BPF tests (harness.h) and the benchmarks (bench/bench.h) both look up: the ids
 * rls_apply_table() gave an account or a model name, and the name of an XDP action. Only they
 * ask a map for an id by name: the product never needs to, so this is not in user/.
 */
#ifndef RLS_TESTS_MAP_NAMES_H
#define RLS_TESTS_MAP_NAMES_H

#include <stdio.h>
#include <string.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "rlshape.h"
#include "maps.h"

/* The account id a name has in the maps, 0 if none (ids start at 1). */
static inline __u32 map_account_id(const struct rls_maps *maps, const char *name)
{
	struct rls_account_name value;
	__u32 key, next, *prev = NULL;

	while (bpf_map_get_next_key(maps->accounts, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(maps->accounts, &key, &value) == 0 &&
		    strncmp(value.name, name, sizeof(value.name)) == 0)
			return key;
	}
	return 0;
}

/* The model id a name has in the maps, RLS_MODEL_OTHER if none. */
static inline __u32 map_model_id(const struct rls_maps *maps, const char *name)
{
	struct rls_model_name key = {};
	__u32 id;

	snprintf(key.name, sizeof(key.name), "%s", name);
	return bpf_map_lookup_elem(maps->models, &key, &id) == 0 ? id : RLS_MODEL_OTHER;
}

/* "XDP_PASS" and the like, or NULL for a value that is no XDP action (an error code). */
static inline const char *xdp_action_name(int action)
{
	switch (action) {
	case XDP_ABORTED:
		return "XDP_ABORTED";
	case XDP_DROP:
		return "XDP_DROP";
	case XDP_PASS:
		return "XDP_PASS";
	case XDP_TX:
		return "XDP_TX";
	case XDP_REDIRECT:
		return "XDP_REDIRECT";
	}
	return NULL;
}

#endif /* RLS_TESTS_MAP_NAMES_H */
