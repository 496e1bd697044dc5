// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * rlshape on the upstream-facing side (`rlshape load --side upstream`): TC egress on the
 * interface that carries a local TLS-terminating proxy's plain-text requests to the upstream,
 * where the requests are readable. It follows each connection's byte stream to a watched port
 * (the upstream's, the destination here) with the stream tracker XDP uses, decides each
 * request by the same code (decide.h), and answers a refused one as if the upstream had: the
 * upstream's socket is reset, and the request's segment becomes the 429, sent in through the
 * interface to the proxy's socket, which relays it to its client. The upstream's responses
 * are metered by rlshape_tc.c, attached to the same interface's ingress.
 *
 * Only segments of local sockets are followed: TCP sends them in order, and resends from the
 * first byte the upstream has not acknowledged. A segment without a socket is forwarded
 * traffic, which the client-facing side reads (XDP): passed unread, and counted.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/ctx.h"
#include "lib/maps.h"
#include "lib/config.h"
#include "lib/packet.h"
#include "lib/http_request.h"
#include "lib/response.h"
#include "lib/decide.h"
#include "lib/reply_skb.h"
#include "lib/client_address.h"

#define TC_ACT_OK       0
#define TC_ACT_SHOT     2
#define TC_ACT_REDIRECT 7

/* Windows a segment's payload fills: a GSO super-packet carries up to 64 KiB. */
#define RLS_UP_WINDOWS_MAX ((65536 + RLS_PARSE_WINDOW - 1) / RLS_PARSE_WINDOW)
/* A round ends at a request's end or a window's, or resets at the request past the limit. */
#define RLS_UP_ROUNDS_MAX (RLS_REQUESTS_PER_SEGMENT + RLS_UP_WINDOWS_MAX + 1)

enum rls_up_round {
	RLS_UP_GO_ON,
	RLS_UP_DONE, /* the verdict is in s->seg.action */
};

/*
 * The segment becomes the reply s->answer describes (its body in s->reply), sent in through
 * the interface to the proxy's socket. TC_ACT_REDIRECT, or TC_ACT_SHOT: the proxy sends the
 * segment again, and the resend is answered.
 */
static __always_inline int rls_reply_to_proxy(struct __sk_buff *skb, struct rls_scratch *s,
					      __u32 body_len)
{
	if (rls_skb_write_reply(skb, &s->pkt, s, body_len)) {
		rls_count_packet(RLS_PKT_DROPPED);
		return TC_ACT_SHOT;
	}
	/* A departure time of the proxy's socket means nothing to a packet coming in. */
	skb->tstamp = 0;
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

/*
 * An answer to this proxy segment begins: its options read first (the answer echoes its
 * timestamps; the reset copy cuts them off), s->answer cleared.
 */
static __always_inline void rls_answer_begin(struct __sk_buff *skb, struct rls_scratch *s)
{
	if (rls_tcp_options_read(rls_ctx_skb(skb), &s->pkt, &s->opts))
		s->opts.has_timestamps = 0;
	__builtin_memset(&s->answer, 0, sizeof(s->answer));
}

/*
 * A copy of the segment, cut to a RST at seq, leaves for the upstream before the segment
 * itself is rewritten: the upstream's socket forgets the connection. bpf_clone_redirect()
 * sends the copy through this hook again, which passes it (s->redirecting).
 */
static __always_inline void rls_reset_upstream_copy(struct __sk_buff *skb, struct rls_scratch *s,
						    __u32 seq)
{
	if (rls_skb_make_reset(skb, &s->pkt, seq))
		return;
	s->redirecting = 1;
	if (!bpf_clone_redirect(skb, skb->ifindex, 0))
		rls_count_packet(RLS_PKT_RESET_UPSTREAM);
	s->redirecting = 0;
}

/*
 * Both ends must forget the connection (a stream no HTTP/1.1 server reads alike, a refused
 * request no 429 can answer in order, a full flows map): the upstream's socket is reset at
 * its next byte, this segment's first unread one, and the segment becomes a reset to the
 * proxy's socket at the upstream's next byte, which it expects. The proxy answers its client
 * as for an upstream that reset (nginx: 502). The flow is forgotten.
 */
static __always_inline int rls_reset_both(struct __sk_buff *skb, struct rls_scratch *s,
					  struct rls_flow *flow, __u32 event)
{
	const struct rls_packet *pkt = &s->pkt;

	rls_count_packet(event);
	s->seg.forgotten = 1;
	if (flow) {
		rls_end_response(s, &pkt->flow, flow, RLS_EVENT_CLOSED);
		bpf_map_delete_elem(&rls_flows, &pkt->flow);
	}
	rls_answer_begin(skb, s);
	rls_reset_upstream_copy(skb, s, pkt->seq + s->seg.from);
	s->answer.seq = pkt->ack_seq;
	s->answer.ack = pkt->seq + pkt->payload_len + !!(pkt->tcp_flags & TCP_FLAG_FIN);
	s->answer.rst = 1;
	return rls_reply_to_proxy(skb, s, 0);
}

/*
 * The refused request's 429, over this segment (the request's last, or the proxy's resend of
 * it): the upstream's socket reset first, at flow->request_seq; then the 429 with
 * "connection: close" and our FIN, numbered right after the upstream's last byte the proxy
 * has, acknowledging the whole segment.
 */
static __always_inline int rls_answer_proxy(struct __sk_buff *skb, struct rls_scratch *s,
					    struct rls_flow *flow)
{
	const struct rls_packet *pkt = &s->pkt;
	__u32 body_len;

	rls_answer_begin(skb, s);
	rls_reset_upstream_copy(skb, s, flow->request_seq);
	s->answer.seq = pkt->ack_seq;
	s->answer.ack = flow->reply_end;
	s->answer.window = rls_upstream_window(flow);
	s->answer.fin = 1;
	rls_429_numbers(s, &flow->rejection);
	body_len = rls_429_text(s, &flow->rejection, RLS_429_FULL, RLS_REPLY_MAX);
	flow->reply_wire_end = s->answer.seq + body_len + 1;
	rls_count_packet(RLS_PKT_REPLY_SENT);
	return rls_reply_to_proxy(skb, s, body_len);
}

/*
 * A refused request. Its 429 must come where the proxy expects the upstream's next byte, as
 * the answer to this request: not where the request starts after admitted bytes in this very
 * segment, or where the upstream still owes answers to admitted ones (rls_may_answer()): a
 * proxy pipelining to its upstream, which nginx, Envoy and HAProxy do not do. There both
 * ends are reset. Otherwise the flow is REJECTED, and its segment the 429.
 */
static __always_inline int rls_refuse_upstream(struct __sk_buff *skb, struct rls_scratch *s,
					       struct rls_flow *flow)
{
	const struct rls_packet *pkt = &s->pkt;
	__u32 first_new = pkt->seq + s->seg.from;

	if ((__s32)(flow->stream.request_start - first_new) > 0 ||
	    !rls_may_answer(flow, pkt->ack_seq))
		return rls_reset_both(skb, s, flow, RLS_PKT_PIPELINED_RESET);
	flow->state = RLS_FLOW_REJECTED;
	flow->rejection = s->rejection;
	flow->request_seq = first_new;
	flow->reply_end = pkt->seq + pkt->payload_len + !!(pkt->tcp_flags & TCP_FLAG_FIN);
	return rls_answer_proxy(skb, s, flow);
}

/*
 * The decision point: a request's last byte is in this segment, just before the scan's
 * position. The policy's verdict (decide.h), and what this side does with it. Returns the
 * segment's TC action. A global function: verified once.
 */
__noinline int rls_upstream_request_ended(struct __sk_buff *skb, struct rls_scratch *s,
					  struct rls_flow *flow, const struct rls_config *cfg,
					  __u32 generation)
{
	if (!s || !flow || !cfg)
		return TC_ACT_OK;
	rls_upstream_who(skb, s, flow, cfg);
	switch (rls_judge_request(s, flow, cfg, generation, true)) {
	case RLS_VERDICT_REFUSE:
		return rls_refuse_upstream(skb, s, flow);
	default:
		return TC_ACT_OK;
	}
}

/*
 * One round: scan on until the stream says something must be done, and do it. A global
 * function, so that the segment's loop over rounds is verified once per round.
 */
__noinline int rls_upstream_round(struct __sk_buff *skb, struct rls_scratch *s,
				  struct rls_flow *flow, const struct rls_config *cfg,
				  __u32 generation)
{
	int action;

	if (!s || !flow || !cfg)
		return RLS_UP_DONE;
	switch (rls_stream_scan(s, &flow->stream, cfg)) {
	case RLS_STOP_NEED_BYTES:
		s->seg.base += s->scan.len;
		if (rls_stream_load_window(rls_ctx_skb(skb), s))
			return RLS_UP_GO_ON;
		/* A request that goes on in the next segment: its head is read in this one. */
		rls_note_client_address(skb, s, flow, cfg);
		rls_request_began(s, flow);
		s->seg.action = TC_ACT_OK;
		return RLS_UP_DONE;
	case RLS_STOP_REQUEST_END:
		if (++s->seg.requests > RLS_REQUESTS_PER_SEGMENT) {
			s->seg.action = rls_reset_both(skb, s, flow, RLS_PKT_STREAM_RESET);
			return RLS_UP_DONE;
		}
		rls_request_began(s, flow);
		action = rls_upstream_request_ended(skb, s, flow, cfg, generation);
		/* (This request's client address was read for its decision.) */
		if (action == TC_ACT_OK)
			return rls_segment_read_whole(s, TC_ACT_OK) ? RLS_UP_DONE : RLS_UP_GO_ON;
		s->seg.action = action;
		return RLS_UP_DONE;
	case RLS_STOP_HTTP2:
		if (cfg->http2_pass) {
			flow->stream.phase = RLS_PHASE_TUNNEL;
			rls_count_packet(RLS_PKT_HTTP2);
			return RLS_UP_GO_ON;
		}
		s->seg.action = rls_reset_both(skb, s, flow, RLS_PKT_HTTP2);
		return RLS_UP_DONE;
	default:
		s->seg.action = rls_reset_both(skb, s, flow, RLS_PKT_STREAM_RESET);
		return RLS_UP_DONE;
	}
}

/* Parse this segment's payload from offset on, deciding every request that ends in it. */
static __always_inline int rls_follow_upstream_segment(struct __sk_buff *skb,
						       struct rls_scratch *s,
						       struct rls_flow *flow,
						       const struct rls_live *live, __u32 offset)
{
	const struct rls_packet *pkt = &s->pkt;
	__u32 i;

	rls_segment_begin(s, flow, offset, TC_ACT_OK);
	if (!rls_stream_load_window(rls_ctx_skb(skb), s))
		return TC_ACT_OK;
	if (!rls_value_resume(s, &flow->stream))
		return rls_reset_both(skb, s, flow, RLS_PKT_CUT_VALUE_LOST);
	for (i = 0; i < RLS_UP_ROUNDS_MAX; i++)
		if (rls_upstream_round(skb, s, flow, live->cfg, live->generation) == RLS_UP_DONE)
			break;
	if (i == RLS_UP_ROUNDS_MAX)
		return rls_reset_both(skb, s, flow, RLS_PKT_STREAM_RESET);
	if (s->seg.action == TC_ACT_OK && !s->seg.forgotten && flow->state != RLS_FLOW_REJECTED) {
		if (!rls_value_keep(s, &flow->stream))
			return rls_reset_both(skb, s, flow, RLS_PKT_CUT_VALUE_LOST);
		flow->stream.next_seq = pkt->seq + pkt->payload_len;
	}
	return (int)s->seg.action;
}

/*
 * The proxy's segments after its 429: a resend of the refused request is answered again; its
 * FIN (it read "connection: close") is acknowledged from here, and the flow forgotten, so its
 * socket closes at once; its reset ends the flow. Nothing reaches the upstream, whose socket
 * is gone.
 */
static __always_inline int rls_after_429(struct __sk_buff *skb, struct rls_scratch *s,
					 struct rls_flow *flow)
{
	const struct rls_packet *pkt = &s->pkt;
	__u32 end = pkt->seq + pkt->payload_len;

	if (pkt->tcp_flags & TCP_FLAG_RST) {
		bpf_map_delete_elem(&rls_flows, &pkt->flow);
		return TC_ACT_SHOT;
	}
	if (pkt->payload_len && (__s32)(end - flow->request_seq) > 0 &&
	    (__s32)(end - flow->reply_end) <= 0) {
		rls_count_packet(RLS_PKT_RETRANSMIT);
		return rls_answer_proxy(skb, s, flow);
	}
	if (pkt->tcp_flags & TCP_FLAG_FIN) {
		rls_answer_begin(skb, s);
		s->answer.seq = pkt->ack_seq;
		s->answer.ack = end + 1;
		s->answer.window = rls_upstream_window(flow);
		bpf_map_delete_elem(&rls_flows, &pkt->flow);
		return rls_reply_to_proxy(skb, s, 0);
	}
	rls_count_packet(RLS_PKT_DROPPED);
	return TC_ACT_SHOT;
}

/*
 * Shaping (README, "Shaping"): a segment of a connection whose request was admitted to leave
 * later goes no earlier. Its departure becomes the packet's earliest departure time (EDT),
 * which the fq qdisc on the interface holds it to. Every later segment of the connection until
 * then gets the same time, so that none overtakes it: fq orders a flow's packets by their
 * time, not by their arrival. A resend waits too, where its first copy left fq early (dropped).
 */
static __always_inline int rls_hold_to_departure(struct __sk_buff *skb, struct rls_flow *flow,
						 int action)
{
	if (action != TC_ACT_OK || !flow->depart_ns || skb->tstamp >= flow->depart_ns)
		return action;
	/* Past: forgotten, so that later segments read no clock. */
	if (flow->depart_ns <= bpf_ktime_get_ns()) {
		flow->depart_ns = 0;
		return action;
	}
	/* TCP's own times are CLOCK_MONOTONIC, as bpf_ktime_get_ns() and fq's are. */
	bpf_skb_set_tstamp(skb, flow->depart_ns, BPF_SKB_TSTAMP_DELIVERY_MONO);
	return action;
}

/* Start following a connection whose next byte is at seq; NULL when rls_flows is full. */
static __always_inline struct rls_flow *rls_start_upstream_flow(struct rls_scratch *s, __u32 seq)
{
	struct rls_flow *fresh = rls_fresh_value(s);

	fresh->stream.next_seq = seq;
	fresh->stream.stream_start = seq;
	fresh->stream.phase = RLS_PHASE_IDLE;
	if (bpf_map_update_elem(&rls_flows, &s->pkt.flow, fresh, BPF_ANY))
		return NULL;
	return bpf_map_lookup_elem(&rls_flows, &s->pkt.flow);
}

SEC("tc")
int rlshape_upstream(struct __sk_buff *skb)
{
	struct rls_scratch *s = rls_tc_scratch_get();
	struct rls_packet *pkt;
	struct rls_live live;
	struct rls_flow *flow;
	__s32 behind, past;
	int action = TC_ACT_OK;

	/* The reset rls_reset_upstream_copy() is sending, through here again: passed. */
	if (!s || s->redirecting)
		return TC_ACT_OK;
	pkt = &s->pkt;
	__builtin_memset(pkt, 0, sizeof(*pkt));
	if (rls_parse_packet(rls_ctx_skb(skb), pkt) != RLS_PARSE_OK || !rls_live_config(&live))
		return TC_ACT_OK;
	/* Egress: the upstream's port is the destination. */
	if (!rls_port_watched(live.cfg, pkt->flow.server_port))
		return TC_ACT_OK;
	rls_count_packet(RLS_PKT_SEEN);
	if (!skb->sk) {
		if (pkt->payload_len)
			rls_count_packet(RLS_PKT_NOT_LOCAL);
		return TC_ACT_OK;
	}
	/* As on the client-facing side: a request in them would be read by no one here. */
	if (pkt->first_fragment) {
		rls_count_packet(RLS_PKT_FRAGMENT_DROPPED);
		return TC_ACT_SHOT;
	}
	if (pkt->urgent) {
		rls_count_packet(RLS_PKT_URGENT_DROPPED);
		return TC_ACT_SHOT;
	}
	flow = bpf_map_lookup_elem(&rls_flows, &pkt->flow);
	if (pkt->tcp_flags & TCP_FLAG_SYN) {
		/* A new connection on the same ports: the old one is over. */
		if (flow) {
			rls_end_response(s, &pkt->flow, flow, RLS_EVENT_CLOSED);
			bpf_map_delete_elem(&rls_flows, &pkt->flow);
		}
		/* Data on a SYN (TCP Fast Open) would reach the upstream unread: Linux sends the
		 * SYN again without it, and the data after the handshake. */
		if (pkt->payload_len) {
			rls_count_packet(RLS_PKT_OUT_OF_ORDER);
			return TC_ACT_SHOT;
		}
		return TC_ACT_OK;
	}
	if (flow && flow->state == RLS_FLOW_REJECTED)
		return rls_after_429(skb, s, flow);
	if (!flow) {
		if (!pkt->payload_len)
			return TC_ACT_OK;
		flow = rls_start_upstream_flow(s, pkt->seq);
		if (!flow)
			return rls_reset_both(skb, s, NULL, RLS_PKT_FLOWS_FULL);
		action = rls_follow_upstream_segment(skb, s, flow, &live, 0);
		return rls_hold_to_departure(skb, flow, action);
	}
	s->seg.forgotten = 0;
	if (pkt->payload_len && !(pkt->tcp_flags & TCP_FLAG_RST)) {
		behind = (__s32)(flow->stream.next_seq - pkt->seq);
		past = (__s32)(pkt->seq + pkt->payload_len - flow->stream.next_seq);
		/* Past a gap: bytes this program never saw went out (none can): dropped. */
		if (behind < 0) {
			rls_count_packet(RLS_PKT_OUT_OF_ORDER);
			return TC_ACT_SHOT;
		}
		/* A resend of bytes already read: they were judged when first sent. */
		if (past <= 0) {
			rls_count_packet(RLS_PKT_RETRANSMIT);
			return rls_hold_to_departure(skb, flow, TC_ACT_OK);
		}
		action = rls_follow_upstream_segment(skb, s, flow, &live, (__u32)behind);
	}
	if (action == TC_ACT_OK && !s->seg.forgotten && flow->state != RLS_FLOW_REJECTED &&
	    (pkt->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) &&
	    pkt->seq + pkt->payload_len == flow->stream.next_seq) {
		flow->stream.next_seq += !!(pkt->tcp_flags & TCP_FLAG_FIN);
		rls_client_close(s, flow);
	}
	return rls_hold_to_departure(skb, flow, action);
}
