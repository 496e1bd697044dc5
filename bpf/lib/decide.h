/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The decision on a request whose last byte has been read, whichever program read it: XDP on
 * the client-facing interface (rlshape_xdp.c) or TC egress on the upstream-facing one
 * (rlshape_upstream.c). Who the client is, which model, which limits, and the counter's
 * verdict; what the hook then does with a refusal is its own.
 */
#ifndef RLS_BPF_DECIDE_H
#define RLS_BPF_DECIDE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "token_estimate.h"
#include "fleet_lease.h"
#include "slot_ring.h"
#include "maps.h"
#include "config.h"
#include "scratch.h"
#include "api_key.h"
#include "http_request.h"
#include "policy.h"
#include "response.h"
#include "flow_memo.h"

/* What the decision says of a request. */
enum rls_verdict {
	RLS_VERDICT_ADMIT,
	RLS_VERDICT_REFUSE, /* s->rejection says why, for the 429 */
};

/*
 * The tokens an admitted request holds until its response is counted: its size in tokens plus
 * what its answer may cost. The daemon settles the difference from the upstream's usage.
 */
static __always_inline __u64 rls_reservation_tokens(const struct rls_stream *st,
						    const struct rls_limits *l, __u64 request_bytes)
{
	__u64 answer = l->reserve_tokens;

	/* A visible max_tokens says how long the answer may be, up to reserve_max; one that may
	 * hide behind another spelling, reserve_max. */
	if (st->request_flags & RLS_REQ_MAX_TOKENS_HIDDEN)
		answer = l->reserve_max;
	else if (st->request_flags & RLS_REQ_HAS_MAX_TOKENS)
		answer = st->max_tokens < l->reserve_max ? st->max_tokens : l->reserve_max;
	return rls_tokens_for_bytes(request_bytes, l->bytes_per_token) + answer;
}

/*
 * Decide under the counter's lock; what the response must settle or free goes to *a. A global
 * function, with its own stack frame: the 429's writers below the caller need the room.
 */
__noinline int rls_decide(struct rls_scratch *s, const struct rls_stream *st,
			  const struct rls_identity *id, const struct rls_limits *limits,
			  struct rls_admission *a)
{
	struct rls_counter *counter;

	if (!s || !st || !id || !limits || !a)
		return 0;
	/* A fleet's limits as this host applies them; an anonymous client's counter is its own. */
	if (limits->fleet_hosts) {
		s->fleet_limits = *limits;
		if (id->anonymous)
			s->fleet_limits.fleet_hosts = 0;
		rls_fleet_local_limits(&s->fleet_limits);
		limits = &s->fleet_limits;
	}
	counter = rls_lookup_counter(s, id, a->counter_model, &s->who, &a->counter_shared);
	if (!counter)
		return 0;
	if (rls_has_token_limits(limits)) {
		a->meter_tokens = 1;
		a->bytes_per_token = limits->bytes_per_token;
		a->max_response_tokens = limits->max_response_tokens;
		a->reserved_tokens = rls_reservation_tokens(st, limits, a->request_bytes);
	}
	a->slot_taken = rls_admit(counter, limits, a->now_ns, a->reserved_tokens, a->may_shape,
				  &s->rejection, &a->slot_epoch, &s->shape_delay_ns);
	if (a->slot_taken)
		a->slot_epoch_ns = rls_slot_epoch_ns(limits->max_hold_ns);
	return 0;
}

/*
 * Identify, charge and count the request that ended just before the scan's position on the
 * flow's stream, its client as s->who says (the caller's to set). An admitted request leaves
 * the flow ADMITTED and, where it reserved tokens or holds a slot, awaiting its response; a
 * refused one leaves the flow's state to the caller.
 * may_shape: the caller can hold the request (TC egress); one that shaping delays leaves the
 * flow's depart_ns at its departure (CLOCK_MONOTONIC), for the caller to hold it to.
 * Inlined into each caller's global function: one more call level would take XDP's five
 * nested frames past the verifier's 512 bytes of combined stack.
 */
static __always_inline int rls_judge_request(struct rls_scratch *s, struct rls_flow *flow,
				 const struct rls_config *cfg, __u32 generation, bool may_shape)
{
	const struct rls_identity *id;
	struct rls_admission *admission = &s->admission;
	const struct rls_limits *limits = NULL;
	struct rls_stream *st;
	__u32 model;
	int looked = 0;

	if (!s || !flow || !cfg)
		return RLS_VERDICT_ADMIT;
	st = &flow->stream;
	__builtin_memset(admission, 0, sizeof(*admission));
	rls_count_packet(RLS_PKT_REQUEST);
	__builtin_memset(&s->rejection, 0, sizeof(s->rejection));
	s->rejection.day_limit = RLS_UNLIMITED;
	s->shape_delay_ns = 0;
	model = (__u32)rls_request_who(s, flow, cfg, generation, &looked);
	id = &flow->memo.identity;
	if (model == RLS_MODEL_HIDDEN)
		rls_count_packet(RLS_PKT_MODEL_HIDDEN);
	admission->request_bytes = s->pkt.seq + s->seg.base + s->scan.pos - st->request_start;
	if (!id->unlimited) {
		limits = flow->memo.limits_found ? &flow->memo.limits : NULL;
		/* A hidden model is charged as the tier's strictest one, to that model's counter. */
		admission->counter_model =
			model == RLS_MODEL_HIDDEN && limits ? limits->charge_model : model;
		admission->now_ns = rls_now_utc_ns(cfg);
		admission->may_shape = may_shape;
		if (limits)
			rls_decide(s, st, id, limits, admission);
		if (s->rejection.reason)
			s->rejection.request_id = rls_new_request_id(s, cfg, admission->now_ns);
	}
	looked |= rls_count_outcome(&flow->memo, cfg->load_seq, id->principal.account, model,
				    s->rejection.reason, s->shape_delay_ns);
	if (looked)
		s->cpu_memo = flow->memo; /* for the next new connection (flow_memo.h) */
	__builtin_memcpy(flow->counter_client, s->who.client, sizeof(flow->counter_client));
	flow->account = id->principal.account;
	flow->model = model;
	flow->requests++;
	flow->upgrade = RLS_UPGRADE_NONE;
	if (s->rejection.reason)
		return RLS_VERDICT_REFUSE;
	/*
	 * A GET without a body may be a WebSocket's upgrade. Where the table lets one through, the
	 * head of its answer is read whatever the limits (response.h): only the upstream's 101
	 * opens the tunnel.
	 */
	if (cfg->websocket_tunnel && (st->request_flags & RLS_REQ_GET) &&
	    !(st->request_flags & (RLS_REQ_CONTENT_LENGTH | RLS_REQ_CHUNKED)))
		flow->upgrade = RLS_UPGRADE_ASKED;
	flow->state = RLS_FLOW_ADMITTED;
	flow->admitted_mark = flow->server_next;
	flow->admitted_ack = s->pkt.ack_seq;
	flow->admitted_any = 1;
	/* The smoothing's delay runs from the decision: the monotonic clock's now is as near. */
	if (s->shape_delay_ns)
		flow->depart_ns = bpf_ktime_get_ns() + s->shape_delay_ns;
	if (admission->meter_tokens || admission->slot_taken || flow->upgrade)
		rls_follow_response(&s->pkt.flow, flow, admission);
	return RLS_VERDICT_ADMIT;
}

#endif /* RLS_BPF_DECIDE_H */
