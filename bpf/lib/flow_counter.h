/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The counter an admitted request on a flow was charged to, as rls_lookup_counter() found it. */
#ifndef RLS_BPF_FLOW_COUNTER_H
#define RLS_BPF_FLOW_COUNTER_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "maps.h"

#define RLS_CLIENT_ADDR_BITS 128 /* clearing them all: the overflow counter's key */

/* Clears the last bits bits of a client address (network byte order). */
static __always_inline void rls_clear_client_bits(__u8 client[16], __u32 bits)
{
	__u32 prefix = bits < RLS_CLIENT_ADDR_BITS ? RLS_CLIENT_ADDR_BITS - bits : 0, i;

	for (i = 0; i < 16; i++) {
		if (prefix >= 8 * i + 8)
			continue;
		client[i] = prefix > 8 * i ? client[i] & (__u8)(0xff << (8 - (prefix - 8 * i))) : 0;
	}
}

/* Fills *out; returns the map the counter is in. */
static __always_inline void *rls_flow_counter_key(const struct rls_flow *flow,
						  struct rls_counter_key *out)
{
	__builtin_memset(out, 0, sizeof(*out));
	out->account = flow->account;
	out->model = flow->counter_model;
	if (flow->account != RLS_ACCOUNT_ANONYMOUS)
		return &rls_counters;
	__builtin_memcpy(out->client, flow->counter_client, sizeof(out->client));
	rls_clear_client_bits(out->client, flow->counter_shared);
	return &rls_anon_counters;
}

#endif /* RLS_BPF_FLOW_COUNTER_H */
