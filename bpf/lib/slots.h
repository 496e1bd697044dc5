/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Concurrency slots in the data path. XDP takes a slot at admission, under the counter's lock
 * with the request windows (policy.h). Whoever sees the request's end first gives it back: TC
 * at the response's last byte or the upstream's FIN or RST, XDP at the client's FIN or RST or
 * its next request on the connection. A slot nobody gives back expires (include/slot_ring.h).
 */
#ifndef RLS_BPF_SLOTS_H
#define RLS_BPF_SLOTS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "maps.h"
#include "config.h"
#include "flow_counter.h"
#include "slot_ring.h"

/* Remember the slot taken at admission on the request's flow. */
static __always_inline void rls_hold_slot(struct rls_flow *flow, __u64 epoch, __u64 epoch_ns)
{
	flow->slot_epoch = epoch;
	flow->slot_epoch_ns = epoch_ns;
	flow->slot_held = 1;
}

/*
 * Give the flow's slot back, once: XDP and TC can both see an end (the client's FIN while the
 * last byte goes out), and only the one that clears slot_held counts it. A global function,
 * verified once for all its callers.
 */
__noinline int rls_give_back_slot(const struct rls_flow_key *key, struct rls_flow *flow)
{
	struct rls_counter_key counter_key;
	struct rls_counter *c;
	struct rls_live live;
	void *map;
	__u64 now_ns;

	if (!key || !flow || !__sync_bool_compare_and_swap(&flow->slot_held, 1, 0))
		return 0;
	map = rls_flow_counter_key(flow, &counter_key);
	c = bpf_map_lookup_elem(map, &counter_key);
	if (!c || !rls_live_config(&live))
		return 0;
	now_ns = rls_now_utc_ns(live.cfg);
	bpf_spin_lock(&c->lock);
	rls_slots_give_back(c, flow->slot_epoch, flow->slot_epoch_ns, now_ns);
	bpf_spin_unlock(&c->lock);
	return 0;
}

#endif /* RLS_BPF_SLOTS_H */
