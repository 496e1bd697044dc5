/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Following the response to an admitted request. XDP marks the flow as awaiting a response when
 * the request reserved tokens or holds a concurrency slot; TC on egress follows the response
 * segment by segment (rlshape_tc.c) and ends it at its last byte or at the connection's
 * close. A new request on the same connection also ends it: HTTP/1.1 answers in order. The end
 * reports the tokens to the daemon (meter.h) and gives the slot back (slots.h).
 */
#ifndef RLS_BPF_RESPONSE_H
#define RLS_BPF_RESPONSE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "consts.h"
#include "ctx.h"
#include "flow_seen.h"
#include "packet.h"
#include "scratch.h"
#include "maps.h"
#include "http_response.h"
#include "meter.h"
#include "slots.h"

static __always_inline void rls_follow_response(const struct rls_flow_key *key,
						struct rls_flow *flow,
						const struct rls_admission *a)
{
	flow->counter_model = a->counter_model;
	flow->counter_shared = a->counter_shared;
	flow->meter_tokens = a->meter_tokens;
	flow->bytes_per_token = a->bytes_per_token;
	flow->max_response_tokens = a->max_response_tokens;
	flow->reserved_tokens = a->reserved_tokens;
	flow->request_bytes = a->request_bytes;
	flow->response_bytes = 0;
	flow->body_left = 0;
	flow->tail_slot = 0;
	if (a->meter_tokens)
		bpf_map_delete_elem(&rls_tails, key);
	if (a->slot_taken)
		rls_hold_slot(flow, a->slot_epoch, a->slot_epoch_ns);
	flow->response_state = RLS_RESPONSE_AWAITED;
}

/*
 * Only one of XDP and TC ends a response: the one that moves its state to NONE. Returns the
 * state it ended (how the body was framed), or RLS_RESPONSE_NONE when the other one did.
 */
static __always_inline __u32 rls_claim_response_end(struct rls_flow *flow)
{
	__u32 state, i;

	/* TC may move the state on (AWAITED to LENGTH) in between: try again once. */
	for (i = 0; i < 2; i++) {
		state = *(volatile __u32 *)&flow->response_state;
		if (state == RLS_RESPONSE_NONE)
			return RLS_RESPONSE_NONE;
		if (__sync_bool_compare_and_swap(&flow->response_state, state, RLS_RESPONSE_NONE))
			return state;
	}
	return RLS_RESPONSE_NONE;
}

/*
 * The response is over, or its connection is: report the tokens and give the slot back. s is
 * the caller's scratch (XDP's or TC's own), where an event the full ring cannot take is built.
 */
static __always_inline void rls_end_response(struct rls_scratch *s, const struct rls_flow_key *key,
					     struct rls_flow *flow, __u32 flags)
{
	__u32 ended = rls_claim_response_end(flow);

	/* Its framing, from the state it ended in: the claim has just reset that state. */
	if (ended != RLS_RESPONSE_NONE && flow->meter_tokens)
		rls_report_response(key, flow,
				    flags | (ended == RLS_RESPONSE_CHUNKED ? RLS_EVENT_CHUNKED : 0),
				    &s->parked);
	/* Most ends hold no slot: spare them the call (which checks again, atomically). */
	if (flow->slot_held)
		rls_give_back_slot(key, flow);
}

/* Forget a connection both sides have closed. */
/* Both sides have sent their FIN. */
static __always_inline bool rls_closed_both(const struct rls_flow *flow)
{
	return flow->closed == (RLS_CLOSED_CLIENT | RLS_CLOSED_SERVER);
}

static __always_inline void rls_note_closed(const struct rls_flow_key *key, struct rls_flow *flow,
					    __u32 who)
{
	__u32 closed = __sync_fetch_and_or(&flow->closed, who) | who;

	/* A renumbered connection's last ACK still needs renumbering (seqadj.h): its flow goes
	 * after it (rlshape_xdp.c, rlshape_tc.c), or when the daemon finds it silent. */
	if (closed == (RLS_CLOSED_CLIENT | RLS_CLOSED_SERVER) && !flow->seqadj.active)
		bpf_map_delete_elem(&rls_flows, key);
}

/*
 * May a 429 go to the client now, at the sequence number it acknowledges? Only if it cannot
 * overlap an answer the upstream owes: no request was admitted on the connection, or the
 * upstream has sent something since the last one was and the client has all of it. (A client
 * that pipelines a refused request behind admitted ones waits for their answers: its request
 * is dropped until then, and answered when it sends it again.) Where TC has seen nothing of
 * the upstream (its answers leave by another interface), the client's own acknowledgements
 * are all there is: it must have received something since the admission.
 */
static __always_inline bool rls_may_answer(const struct rls_flow *flow, __u32 ack_seq)
{
	if (!flow->admitted_any)
		return true;
	if (!flow->server_seen)
		return ack_seq != flow->admitted_ack;
	return flow->server_next != flow->admitted_mark && ack_seq == flow->server_next;
}

/* The response's connection, as XDP keyed it: from the client's side. */
static __always_inline void rls_client_side_key(const struct rls_packet *pkt,
						 struct rls_flow_key *key)
{
	__builtin_memcpy(key->client, pkt->flow.server, sizeof(key->client));
	__builtin_memcpy(key->server, pkt->flow.client, sizeof(key->server));
	key->client_port = pkt->flow.server_port;
	key->server_port = pkt->flow.client_port;
	key->pad = 0;
}

/* Where the upstream's side of the stream is: a 429 from XDP must start after it. */
static __always_inline void rls_note_server_bytes(const struct rls_packet *pkt,
						  struct rls_flow *flow)
{
	__u32 next = pkt->seq + pkt->payload_len + !!(pkt->tcp_flags & TCP_FLAG_FIN);

	if (!pkt->payload_len && !(pkt->tcp_flags & TCP_FLAG_FIN))
		return;
	if (!flow->server_seen || (__s32)(next - flow->server_next) > 0) {
		flow->server_next = next;
		flow->server_seen = 1;
	}
}

/*
 * A segment of the response: its head says how the body is framed (http_response.h), its last
 * bytes are kept where the tokens are metered (meter.h), and the body's last byte ends it.
 */
static __always_inline void rls_meter_segment(struct rls_ctx ctx, struct rls_scratch *s,
					      const struct rls_packet *pkt,
					      const struct rls_flow_key *key, struct rls_flow *flow)
{
	__u32 body = pkt->payload_len;

	rls_flow_seen(flow);
	if (flow->response_state == RLS_RESPONSE_AWAITED &&
	    !rls_take_response_head(ctx, s, pkt, flow, &body))
		return;
	flow->response_bytes += pkt->payload_len;
	if (flow->meter_tokens)
		rls_keep_tail(ctx, s, pkt, key, flow);
	switch (flow->response_state) {
	case RLS_RESPONSE_LENGTH:
		flow->body_left -= body < flow->body_left ? body : flow->body_left;
		if (!flow->body_left)
			rls_end_response(s, key, flow, 0);
		break;
	case RLS_RESPONSE_CHUNKED:
		if (rls_ends_last_chunk(ctx, pkt))
			rls_end_response(s, key, flow, 0);
		break;
	}
}

/* The upstream's window as it last advertised it, where TC has seen it; else the largest. */
static __always_inline __u16 rls_upstream_window(const struct rls_flow *flow)
{
	return flow->seqadj.window_seen ? flow->seqadj.server_window : RLS_REPLY_WINDOW;
}

/*
 * HTTP/1.1 answers in order: a new request on the connection means the last response is over.
 * One still open here was not seen to its end (a pipelining client): marked cut, so that the
 * daemon never refunds its reservation on the strength of bytes it did not see.
 */
static __always_inline void rls_request_began(struct rls_scratch *s, struct rls_flow *flow)
{
	if (!s->seg.started)
		return;
	s->seg.started = 0;
	if (flow->requests)
		rls_end_response(s, &s->pkt.flow, flow, RLS_EVENT_CUT);
}

/*
 * The client's RST or FIN, where the stream is: a reset ends the response and the connection;
 * a FIN ends the client's wait (a client that half-closes and still reads is rare in
 * HTTP/1.1): its slot comes back now, while the response is still metered for tokens up to
 * the upstream's own close. Anywhere else in the sequence space they are not the client's.
 */
static __always_inline void rls_client_close(struct rls_scratch *s, struct rls_flow *flow)
{
	const struct rls_packet *pkt = &s->pkt;

	if (pkt->tcp_flags & TCP_FLAG_RST) {
		rls_end_response(s, &pkt->flow, flow, RLS_EVENT_CLOSED);
		bpf_map_delete_elem(&rls_flows, &pkt->flow);
		return;
	}
	if (flow->slot_held)
		rls_give_back_slot(&pkt->flow, flow);
	rls_note_closed(&pkt->flow, flow, RLS_CLOSED_CLIENT);
}

#endif /* RLS_BPF_RESPONSE_H */
