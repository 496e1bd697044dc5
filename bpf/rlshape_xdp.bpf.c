// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * rlshape's XDP program, on the gateway's client-facing interface: counts every HTTP/1.x
 * request to a watched port against its account's limits and answers over-limit requests with
 * a 429 from here, so the upstream never sees them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "config.h"
#include "parse_packet.h"
#include "parse_http.h"
#include "policy.h"
#include "reply.h"
#include "response.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* A global function, so the verifier walks SHA-256's rounds once. */
__noinline int rls_hash_api_key(struct rls_scratch *s, __u32 len)
{
	if (!s)
		return -1;
	return rls_key_hash_in(&s->sha256, s->key, len, s->api_key.sha256);
}

/* The key's account via its SHA-256, or NULL. */
static __always_inline const struct rls_principal *rls_principal_by_key(struct xdp_md *ctx,
									 struct rls_scratch *s,
									 const struct rls_packet *pkt,
									 __u32 generation)
{
	__u32 len = s->req.key_len, i;

	if (!s->req.has_key || len == 0 || len > RLS_API_KEY_MAX)
		return NULL;
	for (i = 0; i < RLS_KEY_HASH_BUF / 8; i++)
		((__u64 *)s->key)[i] = 0;
	if (bpf_xdp_load_bytes(ctx, pkt->payload_off + s->req.key_off, s->key, len))
		return NULL;
	if (rls_hash_api_key(s, len))
		return NULL;
	s->api_key.generation = generation;
	return bpf_map_lookup_elem(&rls_api_keys, &s->api_key);
}

static __always_inline __u32 rls_model_id(struct rls_scratch *s)
{
	const struct rls_request *req = &s->req;
	__u32 len = req->model_len, i, *id;

	if (req->model_seen == RLS_MODEL_NOT_SEEN)
		return RLS_MODEL_HIDDEN;
	if (req->model_seen != RLS_MODEL_FOUND || len == 0 || len >= RLS_MODEL_NAME_MAX)
		return RLS_MODEL_OTHER;
	for (i = 0; i < RLS_MODEL_NAME_MAX / 8; i++)
		((__u64 *)s->model.name)[i] = 0;
	for (i = 0; i < RLS_MODEL_NAME_MAX - 1; i++) {
		if (i >= len)
			break;
		s->model.name[i] = s->payload[(req->model_off + i) & RLS_WINDOW_MASK];
	}
	id = bpf_map_lookup_elem(&rls_models, &s->model);
	return id ? *id : RLS_MODEL_OTHER;
}

/* Remember the request on its connection, so a retransmission is neither charged nor let by. */
static __always_inline struct rls_flow *rls_remember_request(struct rls_scratch *s,
							     const struct rls_packet *pkt,
							     struct rls_flow *flow, __u32 account,
							     __u32 model,
							     const struct rls_rejection *rej,
							     __u32 reply_end)
{
	struct rls_flow *fresh = NULL;

	if (!flow)
		flow = fresh = rls_fresh_value(s);
	flow->state = rej->reason ? RLS_FLOW_REJECTED : RLS_FLOW_ADMITTED;
	flow->account = account;
	flow->model = model;
	flow->request_seq = pkt->seq;
	flow->reply_end = reply_end;
	flow->requests++;
	flow->last_seen_ns = bpf_ktime_get_ns();
	flow->rejection = *rej;
	if (!fresh)
		return flow;
	bpf_map_update_elem(&rls_flows, &pkt->flow, fresh, BPF_ANY);
	return bpf_map_lookup_elem(&rls_flows, &pkt->flow);
}

/*
 * The tokens an admitted request holds until its response is counted: its size in tokens plus
 * what its answer may cost. The daemon settles the difference from the upstream's usage.
 */
static __always_inline __u64 rls_estimate_tokens(const struct rls_scratch *s,
						 const struct rls_limits *l, __u64 *request_bytes)
{
	const struct rls_request *req = &s->req;
	__u32 per_token = l->bytes_per_token ? l->bytes_per_token : 4;

	/* Counted before the answer: the request's own size. */
	*request_bytes = req->has_content_length && req->headers_complete
				 ? s->lines.body_start + req->content_length
				 : s->pkt.payload_len;
	__u64 answer = l->reserve_tokens;

	/* A visible max_tokens says how long the answer may be, up to reserve_max. */
	if (req->has_max_tokens)
		answer = req->max_tokens < l->reserve_max ? req->max_tokens : l->reserve_max;
	return (*request_bytes + per_token - 1) / per_token + answer;
}

/* Decide under the counter's lock; what the response must settle or free goes to *a. */
static __always_inline void rls_decide(struct rls_scratch *s, const struct rls_live *live,
				       const struct rls_identity *id, const struct rls_limits *limits,
				       struct rls_admission *a)
{
	struct rls_counter *counter;
	__u64 now_ns;

	counter = rls_lookup_counter(s, id, a->counter_model, &s->pkt.flow, &a->counter_shared);
	if (!counter)
		return;
	if (rls_has_token_limits(limits)) {
		a->meter_tokens = 1;
		a->bytes_per_token = limits->bytes_per_token;
		a->reserved_tokens = rls_estimate_tokens(s, limits, &a->request_bytes);
	}
	now_ns = rls_now_utc_ns(live->cfg);
	a->slot_taken = rls_admit(counter, limits, now_ns, a->reserved_tokens, &s->rejection,
				  &a->slot_epoch);
	if (a->slot_taken)
		a->slot_epoch_ns = rls_slot_epoch_ns(limits->max_hold_ns);
}

/* Decide a request start; on rejection the packet becomes the 429. */
static __always_inline int rls_handle_request(struct xdp_md *ctx, struct rls_scratch *s,
					      const struct rls_live *live, struct rls_flow *flow,
					      enum rls_method_kind method)
{
	const struct rls_packet *pkt = &s->pkt;
	struct rls_rejection *rej = &s->rejection; /* what admission decides, in scratch memory */
	struct rls_identity id = {};
	struct rls_admission admission = {};
	const struct rls_limits *limits = NULL;
	__u32 len = pkt->payload_len, model, reply_end = 0;
	int action = XDP_PASS;

	__builtin_memset(rej, 0, sizeof(*rej));
	rej->day_limit = RLS_UNLIMITED;
	if (len > RLS_PARSE_WINDOW)
		len = RLS_PARSE_WINDOW;
	if (len == 0 || bpf_xdp_load_bytes(ctx, pkt->payload_off, s->payload, len))
		return XDP_PASS;
	if (!rls_parse_request(s, live->cfg, len, method)) {
		rls_count_packet(RLS_PKT_NOT_HTTP);
		return XDP_PASS;
	}
	rls_count_packet(RLS_PKT_REQUEST);

	rls_identify(live->cfg, live->generation, &pkt->flow,
		     rls_principal_by_key(ctx, s, pkt, live->generation), &id);
	model = rls_model_id(s);
	if (model == RLS_MODEL_HIDDEN)
		rls_count_packet(RLS_PKT_MODEL_HIDDEN);
	if (!id.unlimited) {
		limits = rls_lookup_limits(live->generation, id.principal.tier, model);
		/* A hidden model is charged as the tier's strictest one, to that model's counter. */
		admission.counter_model = model == RLS_MODEL_HIDDEN && limits ? limits->charge_model
									       : model;
		if (limits)
			rls_decide(s, live, &id, limits, &admission);
	}
	rls_count_outcome(s, id.principal.account, model, rej->reason);
	if (rej->reason) {
		action = rls_send_429(ctx, pkt, s, rej, &reply_end);
		if (action == XDP_TX)
			rls_count_packet(RLS_PKT_REPLY_SENT);
	}
	flow = rls_remember_request(s, pkt, flow, id.principal.account, model, rej, reply_end);
	if (flow && !rej->reason && (admission.meter_tokens || admission.slot_taken))
		rls_follow_response(&pkt->flow, flow, &admission);
	return action;
}

/*
 * After a 429 the upstream must see nothing more of the request, and must not keep a socket
 * waiting for it: a retransmitted request is answered again, the packet that acknowledges the
 * 429 becomes a reset toward the upstream, anything else is dropped.
 */
static __always_inline int rls_handle_rejected_flow(struct xdp_md *ctx, struct rls_scratch *s,
						    struct rls_flow *flow)
{
	const struct rls_packet *pkt = &s->pkt;
	__u32 reply_end = 0, request_seq = flow->request_seq;
	int action;

	if (pkt->payload_len && pkt->seq == request_seq) {
		s->rejection = flow->rejection;
		action = rls_send_429(ctx, pkt, s, &s->rejection, &reply_end);
		if (action == XDP_TX) {
			/* The first attempt may have failed: this is the 429 the client will ack. */
			flow->reply_end = reply_end;
			rls_count_packet(RLS_PKT_REPLY_SENT);
		}
		return action;
	}
	/*
	 * reply_end 0: no 429 went out yet; only the client's retransmission can change that.
	 * A client that closes (FIN or RST) is done either way: the upstream must forget it too.
	 */
	if ((pkt->tcp_flags & (TCP_FLAG_RST | TCP_FLAG_FIN)) ||
	    ((pkt->tcp_flags & TCP_FLAG_ACK) && flow->reply_end &&
	     (__s32)(pkt->ack_seq - flow->reply_end) >= 0)) {
		bpf_map_delete_elem(&rls_flows, &pkt->flow);
		rls_count_packet(RLS_PKT_RESET_UPSTREAM);
		return rls_reset_upstream(ctx, pkt, request_seq);
	}
	rls_count_packet(RLS_PKT_DROPPED);
	return XDP_DROP;
}

/*
 * A client that resets is gone: its response is over. A client's FIN ends its wait too (a
 * client that half-closes and still reads is rare in HTTP/1.1): its slot comes back now, while
 * the response is still metered for tokens up to the upstream's own close.
 */
static __always_inline void rls_note_client_close(const struct rls_flow_key *key,
						  struct rls_flow *flow, __u8 tcp_flags)
{
	if (tcp_flags & TCP_FLAG_RST)
		rls_end_response(key, flow, RLS_EVENT_CLOSED);
	else if ((tcp_flags & TCP_FLAG_FIN) && flow->slot_held)
		rls_give_back_slot(key, flow);
}

SEC("xdp")
int rlshape_xdp(struct xdp_md *ctx)
{
	struct rls_scratch *s = rls_scratch_get();
	struct rls_frame frame;
	struct rls_packet *pkt;
	struct rls_live live;
	struct rls_flow *flow;
	enum rls_method_kind method;
	__u8 start[8];
	int parsed;

	if (!s)
		return XDP_PASS;
	pkt = &s->pkt;
	__builtin_memset(pkt, 0, sizeof(*pkt));
	frame.data = (void *)(long)ctx->data;
	frame.data_end = (void *)(long)ctx->data_end;
	frame.payload_linear = true;
	parsed = rls_parse_packet(&frame, pkt);
	if (parsed == RLS_PARSE_NOT_TCP || !rls_live_config(&live))
		return XDP_PASS;
	if (parsed != RLS_PARSE_OK) {
		rls_count_packet(RLS_PKT_UNPARSED);
		return XDP_PASS;
	}
	if (!rls_port_watched(live.cfg, pkt->flow.server_port))
		return XDP_PASS;
	rls_count_packet(RLS_PKT_SEEN);
	int ip_verdict = rls_ip_layer_verdict(pkt); /* fragments, urgent data: dropped */
	if (ip_verdict >= 0)
		return ip_verdict;

	flow = bpf_map_lookup_elem(&rls_flows, &pkt->flow);
	/* A new connection on a reused port owes nothing to the last one on it. */
	if (flow && (pkt->tcp_flags & TCP_FLAG_SYN)) {
		rls_end_response(&pkt->flow, flow, RLS_EVENT_CLOSED);
		bpf_map_delete_elem(&rls_flows, &pkt->flow);
		return XDP_PASS;
	}
	if (flow && flow->state == RLS_FLOW_REJECTED)
		return rls_handle_rejected_flow(ctx, s, flow);
	if (flow)
		rls_note_client_close(&pkt->flow, flow, pkt->tcp_flags);
	if (pkt->payload_len < sizeof(start) || (pkt->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_RST)))
		return XDP_PASS;
	if (flow && flow->request_seq == pkt->seq) {
		rls_count_packet(RLS_PKT_RETRANSMIT);
		return XDP_PASS;
	}
	if (bpf_xdp_load_bytes(ctx, pkt->payload_off, start, sizeof(start)))
		return XDP_PASS;
	method = rls_request_method(start, pkt->payload_len);
	if (method == RLS_METHOD_NONE) {
		rls_count_packet(RLS_PKT_NOT_HTTP);
		return XDP_PASS;
	}
	/* HTTP/1.1 answers in order: a new request means the last response is over. */
	if (flow)
		rls_end_response(&pkt->flow, flow, 0);
	return rls_handle_request(ctx, s, &live, flow, method);
}
