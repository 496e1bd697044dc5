/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Token metering of responses. TC on egress keeps the last bytes of a response whose request
 * reserved tokens (where the upstream puts `usage`), and when the response ends it is reported
 * once through the rls_events ring buffer. What the ring cannot take (the daemon is away or
 * behind) is parked whole in rls_parked, which the daemon settles as exactly as the ring;
 * only what that map cannot take either goes to rls_pending, summed per counter and estimated
 * from its bytes. No response is ever lost to the daemon; past both, only its exact usage.
 */
#ifndef RLS_BPF_METER_H
#define RLS_BPF_METER_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "ctx.h"
#include "packet.h"
#include "scratch.h"
#include "maps.h"
#include "flow_counter.h"

/* Keep this response segment's last bytes in the next slot of its tail's ring. */
static __always_inline void rls_keep_tail(struct rls_ctx ctx, struct rls_scratch *s,
					  const struct rls_packet *pkt,
					  const struct rls_flow_key *key, struct rls_flow *flow)
{
	struct rls_response_tail *tail = bpf_map_lookup_elem(&rls_tails, key);
	__u32 n = pkt->payload_len, slot = (flow->tail_slot + 1) & (RLS_TAIL_SLOTS - 1);

	if (!tail) {
		bpf_map_update_elem(&rls_tails, key, &s->zero_tail, BPF_NOEXIST);
		tail = bpf_map_lookup_elem(&rls_tails, key);
		if (!tail)
			return;
	}
	if (n > RLS_TAIL_MAX)
		n = RLS_TAIL_MAX;
	if (n == 0 ||
	    rls_ctx_load_bytes(ctx, pkt->payload_off + pkt->payload_len - n, tail->bytes[slot], n))
		return;
	tail->len[slot] = n;
	tail->whole[slot] = n == pkt->payload_len;
	flow->tail_slot = slot;
}

/* Too large for __builtin_memcpy in BPF: word by word. */
static __always_inline void rls_copy_tail(struct rls_response_tail *to,
					  const struct rls_response_tail *from)
{
	__u32 i;

	for (i = 0; i < sizeof(*to) / 8; i++)
		((__u64 *)to)[i] = from ? ((const __u64 *)from)[i] : 0;
}

/* Ring and rls_parked are full: add the response to its counter's pending sums. */
static __always_inline void rls_report_pending(const struct rls_counter_key *counter,
					       const struct rls_flow *flow)
{
	struct rls_pending fresh = {}, *p = bpf_map_lookup_elem(&rls_pending, counter);

	if (!p) {
		bpf_map_update_elem(&rls_pending, counter, &fresh, BPF_NOEXIST);
		p = bpf_map_lookup_elem(&rls_pending, counter);
		if (!p)
			return;
	}
	__sync_fetch_and_add(&p->responses, 1);
	__sync_fetch_and_add(&p->reserved_tokens, flow->reserved_tokens);
	__sync_fetch_and_add(&p->request_bytes, flow->request_bytes);
	__sync_fetch_and_add(&p->response_bytes, flow->response_bytes);
	/* Plain stores: two reports racing write the same limits but across a reload. */
	p->bytes_per_token = flow->bytes_per_token;
	p->max_response_tokens = flow->max_response_tokens;
	rls_count_packet(RLS_PKT_RESPONSES_PENDING);
}

static __always_inline void rls_fill_event(struct rls_response_event *ev,
					   const struct rls_counter_key *counter,
					   const struct rls_flow *flow, __u32 flags,
					   const struct rls_response_tail *tail)
{
	__u32 zero = 0;
	__u64 *ids = bpf_map_lookup_elem(&rls_event_ids, &zero);

	ev->id = ids ? __sync_fetch_and_add(ids, 1) + 1 : 0;
	ev->counter = *counter;
	ev->reserved_tokens = flow->reserved_tokens;
	ev->request_bytes = flow->request_bytes;
	ev->response_bytes = flow->response_bytes;
	ev->flags = flags;
	ev->tail_slot = flow->tail_slot & (RLS_TAIL_SLOTS - 1);
	ev->bytes_per_token = flow->bytes_per_token;
	ev->pad = 0;
	ev->max_response_tokens = flow->max_response_tokens;
	rls_copy_tail(&ev->tail, tail);
}

/*
 * The response on this flow is over (or the next request began): report it, with its tail.
 * spare is the caller's own per-CPU room for an event the full ring cannot take: the event is
 * built there and copied into rls_parked whole, so that the daemon never reads half of one.
 * Called from XDP and from TC; a global function, verified once.
 */
__noinline int rls_report_response(const struct rls_flow_key *key, struct rls_flow *flow,
				   __u32 flags, struct rls_response_event *spare)
{
	struct rls_response_tail *tail;
	struct rls_response_event *ev;
	struct rls_counter_key counter;

	if (!key || !flow)
		return 0;
	tail = bpf_map_lookup_elem(&rls_tails, key);
	rls_flow_counter_key(flow, &counter);
	ev = bpf_ringbuf_reserve(&rls_events, sizeof(*ev), 0);
	if (ev) {
		rls_fill_event(ev, &counter, flow, flags, tail);
		bpf_ringbuf_submit(ev, 0);
		rls_count_packet(RLS_PKT_RESPONSES);
	} else if (spare) {
		rls_fill_event(spare, &counter, flow, flags, tail);
		if (bpf_map_update_elem(&rls_parked, &spare->id, spare, BPF_NOEXIST) == 0)
			rls_count_packet(RLS_PKT_RESPONSES_PARKED);
		else
			rls_report_pending(&counter, flow);
	} else {
		rls_report_pending(&counter, flow);
	}
	if (tail)
		bpf_map_delete_elem(&rls_tails, key);
	return 0;
}

#endif /* RLS_BPF_METER_H */
