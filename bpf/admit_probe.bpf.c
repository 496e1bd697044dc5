// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A test program, never attached by rlshape: one request decided by the policy that the data
 * path runs (lib/policy.h rls_admit(), counted by rls_count_outcome()), on a counter of
 * rls_counters, with the limits and the time the caller gives (include/admit_probe.h).
 * tests/bpf/test_shape.c asserts shaping's departure times with it: they depend on the time
 * of each decision, which a test can only fix from outside the data path's clock.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"
#include "lib/policy.h"
#include "admit_probe.h"

SEC("syscall")
int rls_admit_probe(struct rls_admit_probe_args *args)
{
	struct rls_counter_key key = args->counter; /* a map key cannot live in the context */
	struct rls_scratch *s = rls_scratch_get();
	struct rls_rejection v = {};
	struct rls_counter *c;
	__u64 slot_epoch = 0, delay_ns = 0;

	if (!s)
		return 0;
	/* Copied whole: a syscall program reads its context at constant offsets only. */
	s->fleet_limits = args->limits;
	c = bpf_map_lookup_elem(&rls_counters, &key);
	if (!c) {
		bpf_map_update_elem(&rls_counters, &key, rls_fresh_value(s), BPF_NOEXIST);
		c = bpf_map_lookup_elem(&rls_counters, &key);
	}
	if (!c) {
		args->result = -1;
		return 0;
	}
	rls_admit(c, &s->fleet_limits, args->now_ns, 0, args->may_shape, &v, &slot_epoch, &delay_ns);
	rls_count_outcome(NULL, 0, key.account, key.model, v.reason, delay_ns);
	args->reason = v.reason;
	args->delay_ns = delay_ns;
	args->reset_ms = v.reset_ms;
	args->result = 0;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
