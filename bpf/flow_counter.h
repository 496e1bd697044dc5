/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The counter an admitted request on a flow was charged to, as rls_lookup_counter() found it. */
#ifndef RLS_BPF_FLOW_COUNTER_H
#define RLS_BPF_FLOW_COUNTER_H

#include "maps.h"

/* Fills *out; returns the map the counter is in. */
static __always_inline void *rls_flow_counter_key(const struct rls_flow_key *key,
						  const struct rls_flow *flow,
						  struct rls_counter_key *out)
{
	__builtin_memset(out, 0, sizeof(*out));
	out->account = flow->account;
	out->model = flow->counter_model;
	if (flow->account != RLS_ACCOUNT_ANONYMOUS)
		return &rls_counters;
	/* The overflow counter of a full rls_anon_counters has the client all zero. */
	if (!flow->counter_shared)
		__builtin_memcpy(out->client, key->client, sizeof(out->client));
	return &rls_anon_counters;
}

#endif /* RLS_BPF_FLOW_COUNTER_H */
