/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Token metering of responses. XDP marks an admitted request's flow as awaiting its response
 * (with the tokens it reserved); TC on egress follows the response segment by segment, keeps
 * its last bytes (where the upstream puts `usage`) and reports it once, when it ends, through
 * the rls_events ring buffer. What the ring cannot take goes to rls_pending, so no response
 * is ever lost to the daemon, only its exact usage.
 */
#ifndef RLS_BPF_METER_H
#define RLS_BPF_METER_H

#include "maps.h"

static __always_inline void rls_counter_key_of(const struct rls_flow_key *key,
					       const struct rls_flow *flow,
					       struct rls_counter_key *out)
{
	__builtin_memset(out, 0, sizeof(*out));
	out->account = flow->account;
	out->model = flow->counter_model;
	if (flow->account == RLS_ACCOUNT_ANONYMOUS)
		__builtin_memcpy(out->client, key->client, sizeof(out->client));
}

/* Too large for __builtin_memcpy in BPF: word by word. */
static __always_inline void rls_copy_tail(struct rls_response_tail *to,
					  const struct rls_response_tail *from)
{
	__u32 i;

	for (i = 0; i < sizeof(*to) / 8; i++)
		((__u64 *)to)[i] = from ? ((const __u64 *)from)[i] : 0;
}

/* The ring is full or the daemon is away: add the response to its counter's pending sums. */
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
	rls_count_packet(RLS_PKT_RESPONSES_PENDING);
}

/*
 * The response on this flow is over (or the next request began): report it and stop
 * metering. Called from XDP and from TC; a global function, verified once.
 */
__noinline int rls_report_response(const struct rls_flow_key *key, struct rls_flow *flow,
				   __u32 flags)
{
	struct rls_response_tail *tail;
	struct rls_response_event *ev;
	struct rls_counter_key counter;
	__u32 zero = 0;
	__u64 *ids;

	if (!key || !flow || flow->response_state == RLS_RESPONSE_NONE)
		return 0;
	tail = bpf_map_lookup_elem(&rls_tails, key);
	rls_counter_key_of(key, flow, &counter);
	ev = bpf_ringbuf_reserve(&rls_events, sizeof(*ev), 0);
	if (!ev) {
		rls_report_pending(&counter, flow);
	} else {
		ids = bpf_map_lookup_elem(&rls_event_ids, &zero);
		ev->id = ids ? __sync_fetch_and_add(ids, 1) + 1 : 0;
		ev->counter = counter;
		ev->reserved_tokens = flow->reserved_tokens;
		ev->request_bytes = flow->request_bytes;
		ev->response_bytes = flow->response_bytes;
		ev->flags = flags | (flow->response_state == RLS_RESPONSE_CHUNKED ? RLS_EVENT_CHUNKED : 0);
		ev->tail_slot = flow->tail_slot & (RLS_TAIL_SLOTS - 1);
		ev->bytes_per_token = flow->bytes_per_token;
		ev->pad = 0;
		rls_copy_tail(&ev->tail, tail);
		bpf_ringbuf_submit(ev, 0);
		rls_count_packet(RLS_PKT_RESPONSES);
	}
	flow->response_state = RLS_RESPONSE_NONE;
	if (tail)
		bpf_map_delete_elem(&rls_tails, key);
	return 0;
}

/* XDP admitted a request that has token limits: meter its response. */
static __always_inline void rls_await_response(const struct rls_flow_key *key, struct rls_flow *flow,
					       __u32 counter_model, __u64 reserved,
					       __u64 request_bytes, __u32 bytes_per_token)
{
	flow->bytes_per_token = bytes_per_token;
	flow->counter_model = counter_model;
	flow->response_state = RLS_RESPONSE_AWAITED;
	flow->reserved_tokens = reserved;
	flow->request_bytes = request_bytes;
	flow->response_bytes = 0;
	flow->body_left = 0;
	flow->tail_slot = 0;
	bpf_map_delete_elem(&rls_tails, key);
}

#endif /* RLS_BPF_METER_H */
