/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * When a connection last showed life: what `rlshape daemon` expires flows by when their
 * connections vanish without a FIN or RST (user/flows.c). The client's segments and the
 * answers TC meters both count, so that neither a long answer to a silent client nor a
 * WebSocket session that only its server speaks on looks idle.
 */
#ifndef RLS_BPF_FLOW_SEEN_H
#define RLS_BPF_FLOW_SEEN_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"

/*
 * The coarse clock moves only when jiffies do, and the verifier inlines bpf_jiffies64() into
 * a load: the clock is read once a tick, not on every segment.
 */
static __always_inline void rls_flow_seen(struct rls_flow *flow)
{
	__u32 tick = (__u32)bpf_jiffies64();

	if (flow->last_seen_tick != tick || !flow->last_seen_ns) {
		flow->last_seen_ns = bpf_ktime_get_coarse_ns();
		flow->last_seen_tick = tick;
	}
}

#endif /* RLS_BPF_FLOW_SEEN_H */
