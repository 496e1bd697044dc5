// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * rls_settle: the daemon's way to change a counter's token budget. A read and a write from
 * user space would race with XDP admitting requests in between; this program does both under
 * the counter's spin lock. The daemon runs it with BPF_PROG_TEST_RUN.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"
#include "token_budget.h"

/* Each event settles once, even when a daemon killed mid-way reads it again. */
static __always_inline bool rls_first_settlement(__u64 event_id)
{
	__u8 one = 1;
	__u64 id = event_id;

	if (!id)
		return true;
	return bpf_map_update_elem(&rls_settled, &id, &one, BPF_NOEXIST) == 0;
}

SEC("syscall")
int rls_settle(struct rls_settle_args *args)
{
	struct rls_counter_key key = args->counter; /* a map key cannot live in the context */
	struct rls_counter *c;

	if (!rls_first_settlement(args->event_id)) {
		args->result = 1;
		return 0;
	}
	if (args->anonymous)
		c = bpf_map_lookup_elem(&rls_anon_counters, &key);
	else
		c = bpf_map_lookup_elem(&rls_counters, &key);
	if (!c) {
		args->result = -1;
		return 0;
	}
	bpf_spin_lock(&c->lock);
	rls_settle_token_delta(c, args->delta, args->day);
	bpf_spin_unlock(&c->lock);
	args->result = 0;
	return 0;
}

/*
 * rls_fleet_lease: the daemon's way to read and set a counter's fleet leases
 * (include/fleet_lease.h) without racing XDP's admissions: a lease is never set below what
 * the window has already admitted.
 */
SEC("syscall")
int rls_fleet_lease(struct rls_lease_args *args)
{
	struct rls_counter_key key = args->counter;
	struct rls_counter *c = bpf_map_lookup_elem(&rls_counters, &key);
	__u32 w, window, count;

	if (!c) {
		args->result = -1;
		return 0;
	}
	bpf_spin_lock(&c->lock);
	/* Unrolled: a syscall program reads its context at constant offsets only. */
#pragma unroll
	for (w = 0; w < RLS_NR_WINDOWS; w++) {
		window = args->window[w];
		count = c->window_start[w] == window ? c->window_count[w] : 0;
		if (args->set & (1u << w)) {
			c->fleet_window[w] = window;
			c->fleet_lease[w] = args->lease[w] > count ? args->lease[w] : count;
		}
		if (args->spent & (1u << w))
			c->fleet_spent[w] = window;
		args->count[w] = count;
		args->lease[w] = c->fleet_window[w] == window ? c->fleet_lease[w] : RLS_UNLIMITED;
		args->asked[w] = c->fleet_asked[w];
		args->limit[w] = c->fleet_limit[w];
	}
	bpf_spin_unlock(&c->lock);
	args->result = 0;
	return 0;
}
