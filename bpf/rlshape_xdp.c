// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * rlshape's XDP program, on the gateway's client-facing interface: follows each connection's
 * byte stream to a watched port, counts every HTTP/1.1 request in it once, whatever its
 * segments, and answers an over-limit request with a 429 from here, so the upstream never
 * gets it whole.
 *
 * A request is decided when its last byte arrives: by then its key, its model header and its
 * body's "model" have all been read, and the upstream, which cannot act on a request it has
 * not finished reading, has not acted yet.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/ctx.h"
#include "lib/maps.h"
#include "lib/config.h"
#include "lib/packet.h"
#include "lib/api_key.h"
#include "lib/http_request.h"
#include "lib/connection.h"
#include "lib/policy.h"
#include "lib/reply.h"
#include "lib/reset.h"
#include "lib/response.h"
#include "lib/trim.h"
#include "lib/seqadj.h"
#include "lib/decide.h"

/* Windows of RLS_PARSE_WINDOW bytes a segment of a jumbo frame's payload fills. */
#define RLS_WINDOWS_MAX ((9216 + RLS_PARSE_WINDOW - 1) / RLS_PARSE_WINDOW)
/* Bytes before a routed stream's first read byte a client may still send: a window's worth. */
#define RLS_REWIND_MAX (1u << 16)
/* A round ends at a request's end or a window's, or resets at the request past the limit. */
#define RLS_ROUNDS_MAX (RLS_REQUESTS_PER_SEGMENT + RLS_WINDOWS_MAX + 1)

/* What a round of the stream scan tells the segment's loop. */
enum rls_round {
	RLS_ROUND_GO_ON,
	RLS_ROUND_DONE, /* the verdict is in s->seg.action */
};

/*
 * What the XDP program does with a TCP packet to a watched port before reading its payload:
 * -1 to go on, or XDP_DROP (counted) for what would let a request reach the server unseen.
 *  - A first fragment: the request in it would only be readable after reassembly, which XDP
 *    never sees. No HTTP client fragments (TCP sends segments that fit the path MTU).
 *    Dropping the first fragment is enough: the others are never reassembled without it.
 *  - Urgent data: Linux takes the urgent byte out of the stream the server reads, so the
 *    parser would read bytes the server does not. No HTTP client sends it.
 */
static __always_inline int rls_ip_layer_verdict(const struct rls_packet *pkt)
{
	if (pkt->first_fragment) {
		rls_count_packet(RLS_PKT_FRAGMENT_DROPPED);
		return XDP_DROP;
	}
	if (pkt->urgent) {
		rls_count_packet(RLS_PKT_URGENT_DROPPED);
		return XDP_DROP;
	}
	return -1;
}

/*
 * The upstream must forget the connection: this segment becomes a reset at seq, the sequence
 * number the upstream expects (a reset anywhere else its socket ignores). The client is told
 * at its resend of this segment (rls_handle_reset_flow()): the flow stays, reset, holding the
 * segment's numbers, and no byte of the connection passes again unread. A response the flow
 * still awaits will never come: it ends here (reported, its slot given back). Without a flow
 * (rls_flows full) nothing is kept, and nothing tells the client.
 */
static __always_inline int rls_reset_connection(struct xdp_md *ctx, struct rls_scratch *s,
						 struct rls_flow *flow, __u32 event, __u32 seq)
{
	rls_count_packet(event);
	s->seg.forgotten = 1;
	if (flow) {
		rls_end_response(s, &s->pkt.flow, flow, RLS_EVENT_CLOSED);
		flow->state = RLS_FLOW_RESET;
		flow->reset.wire_seq = s->pkt.wire_seq;
		flow->reset.wire_ack = s->pkt.wire_ack;
		flow->reset.upstream_reset = 0;
	}
	return rls_reset_upstream(ctx, &s->pkt, seq);
}

/*
 * Is this segment the client's resend of the one noted (the same sequence and acknowledgment
 * numbers, which a blind forger cannot send)? If so, it is answered: with a reset to the
 * client, at the number it expects next (what it acknowledged: a reset anywhere else it
 * ignores, RFC 5961), the note (its key in map) forgotten, counted RLS_PKT_RESET_CLIENT; or,
 * routed, where the upstream has not had a resend yet, it becomes the upstream's reset at its
 * own number (the upstream's next byte, which the first reset may have missed: XDP follows a
 * routed stream from where it first saw it), counted upstream_event, and the resend after it
 * is answered. Returns the verdict (XDP_TX, or XDP_DROP where the frame cannot be reshaped:
 * the client then sends again), or -1 where it is no resend.
 */
static __always_inline int rls_answer_resend(struct xdp_md *ctx, struct rls_scratch *s,
					     struct rls_reset_note *note, bool routed, void *map,
					     __u32 upstream_event)
{
	const struct rls_packet *pkt = &s->pkt;

	if (!pkt->payload_len || (pkt->tcp_flags & (TCP_FLAG_RST | TCP_FLAG_FIN)) ||
	    !(pkt->tcp_flags & TCP_FLAG_ACK) || pkt->wire_seq != note->wire_seq ||
	    pkt->wire_ack != note->wire_ack)
		return -1;
	if (routed && !note->upstream_reset) {
		note->upstream_reset = 1;
		rls_count_packet(upstream_event);
		return rls_reset_upstream(ctx, pkt, pkt->seq);
	}
	bpf_map_delete_elem(map, &pkt->flow);
	rls_count_packet(RLS_PKT_RESET_CLIENT);
	__builtin_memset(&s->answer, 0, sizeof(s->answer));
	s->answer.seq = pkt->wire_ack;
	s->answer.ack = pkt->wire_seq + pkt->payload_len;
	s->answer.rst = 1;
	return rls_send_fin(ctx, pkt, s);
}

/*
 * A new connection reset for want of a flow (rls_flows full) is told the same way, through
 * its note in rls_reset_notes (written by rls_follow_from_here()). The verdict, or -1 where
 * the segment is no resend of a noted one (the caller goes on as before).
 */
static __always_inline int rls_answer_noted_resend(struct xdp_md *ctx, struct rls_scratch *s,
						   struct rls_reset_note *note, bool routed)
{
	if (!note)
		return -1;
	return rls_answer_resend(ctx, s, note, routed, &rls_reset_notes, RLS_PKT_FLOWS_FULL);
}

/*
 * A connection XDP has reset. The client, told nothing, sends the segment that became the
 * reset again, and is told (rls_answer_resend()). Any other data of a routed connection
 * becomes a reset at its own number too; a local one's socket is gone, and its data is
 * dropped, as no connection's. The client's FIN or RST ends the flow, and so does a SYN that
 * starts a new connection on its ports.
 */
static __always_inline int rls_handle_reset_flow(struct xdp_md *ctx, struct rls_scratch *s,
						 struct rls_flow *flow)
{
	const struct rls_packet *pkt = &s->pkt;
	const struct rls_stream *st = &flow->stream;
	int action;

	/* Further than a window from where the stream was: no client's (rls_off_stream()). */
	if ((__u32)(pkt->seq - (st->stream_start - RLS_REWIND_MAX)) >
	    st->next_seq - st->stream_start + 2 * RLS_REWIND_MAX) {
		rls_count_packet(RLS_PKT_NOT_CONNECTION);
		return pkt->payload_len ? XDP_DROP : XDP_PASS;
	}
	action = rls_answer_resend(ctx, s, &flow->reset, st->routed, &rls_flows,
				   RLS_PKT_RESET_UPSTREAM);
	if (action >= 0)
		return action;
	if (pkt->tcp_flags & (TCP_FLAG_RST | TCP_FLAG_FIN)) {
		bpf_map_delete_elem(&rls_flows, &pkt->flow);
	} else if (pkt->payload_len && st->routed &&
		   (__s32)(pkt->wire_seq - flow->reset.wire_seq) < 0) {
		/*
		 * Data from before the segment noted (it came late, or XDP began following past
		 * a gap): a client resends from its first byte not acknowledged, so this is the
		 * segment it will send again. Noted in its place; the upstream has its resend
		 * as a reset first, as for the first one noted.
		 */
		flow->reset.wire_seq = pkt->wire_seq;
		flow->reset.wire_ack = pkt->wire_ack;
		flow->reset.upstream_reset = 0;
	}
	if (!pkt->payload_len)
		return XDP_PASS;
	if (!st->routed) {
		rls_count_packet(RLS_PKT_NOT_CONNECTION);
		return XDP_DROP;
	}
	rls_count_packet(RLS_PKT_RESET_UPSTREAM);
	return rls_reset_upstream(ctx, pkt, pkt->seq);
}

/* The upstream's next byte, where this segment's unread bytes begin. */
static __always_inline __u32 rls_first_new_byte(const struct rls_scratch *s)
{
	return s->pkt.seq + s->seg.from;
}

/* A 429 that closes the connection ("connection: close"), answering this segment, numbered as
 * the client numbers. */
static __always_inline void rls_answer_closing(struct rls_scratch *s, const struct rls_flow *flow)
{
	const struct rls_packet *pkt = &s->pkt;

	__builtin_memset(&s->answer, 0, sizeof(s->answer));
	s->answer.seq = pkt->wire_ack;
	s->answer.ack = pkt->wire_seq + pkt->payload_len + !!(pkt->tcp_flags & TCP_FLAG_FIN);
	s->answer.window = rls_upstream_window(flow);
	/* Our FIN only where the client has closed already; else it closes on reading the 429,
	 * and its FIN is answered (rls_handle_rejected_flow()). */
	s->answer.fin = !!(pkt->tcp_flags & TCP_FLAG_FIN);
}

/*
 * May the connection go on after the 429, renumbered (seqadj.h)? Only where the upstream has
 * nothing of the refused request and owes nothing: the request is this whole segment's new
 * bytes (none of it passed before, nothing after it to pass), the client closes nothing, no
 * metered response is open, and the client has every byte the upstream sent (the 429 goes
 * right after them). Where the upstream is a local socket, the socket says what it sent and
 * its window; where it is routed, TC's record of its side does: its last segment, or its
 * SYN-ACK (rls_handshakes) where it has sent nothing since. Returns the window the 429
 * advertises, or -1: the 429 closes the connection. Inline in rls_refuse(), its one caller:
 * one call and return fewer on every refusal, for no more verifier instructions.
 */
static __always_inline int rls_keep_open_window(struct xdp_md *ctx, struct rls_scratch *s,
						struct rls_flow *flow)
{
	const struct rls_packet *pkt;
	struct rls_socket_view view = {};
	const struct rls_handshake *hs;
	__u32 window;

	if (!s || !flow)
		return -1;
	pkt = &s->pkt;
	if ((pkt->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) || !(pkt->tcp_flags & TCP_FLAG_ACK) ||
	    flow->stream.request_start != pkt->seq + s->seg.from ||
	    s->seg.base + s->scan.pos != pkt->payload_len ||
	    flow->response_state != RLS_RESPONSE_NONE)
		return -1;
	if (flow->stream.routed) {
		if (flow->server_seen)
			return flow->server_next == pkt->ack_seq && flow->seqadj.window_seen
				       ? flow->seqadj.server_window
				       : -1;
		/*
		 * Nothing of the upstream's since its SYN-ACK, which TC saw: the window it
		 * advertised, scaled as its later segments' are. Looked up once a connection: a
		 * client refused again and again on it gets every later 429 from the flow's copy.
		 */
		if (!flow->handshake_known) {
			hs = bpf_map_lookup_elem(&rls_handshakes, &pkt->flow);
			if (!hs)
				return -1;
			window = (__u32)hs->window >> (hs->wscale & 15);
			flow->handshake_next = hs->server_next;
			flow->handshake_window = window > 0xffff ? 0xffff : (__u16)window;
			flow->handshake_known = 1;
		}
		return flow->handshake_next == pkt->ack_seq ? flow->handshake_window : -1;
	}
	rls_socket_view(ctx, pkt, &view);
	if ((view.conn != RLS_CONN_NEW && view.conn != RLS_CONN_MIDSTREAM) ||
	    view.snd_nxt != pkt->ack_seq)
		return -1;
	return view.window;
}

/*
 * The refused request, this segment's new bytes, becomes a 429 after which the connection goes
 * on: the upstream never gets the request, the client gets the 429 right after the upstream's
 * last byte, and both sides are renumbered from here on (seqadj.h). It keeps the connection
 * ("connection: keep-alive"), unless the client asked to close (rls_request_says_close()):
 * then it says close and carries our FIN, and the client's close goes through to the
 * upstream. XDP_TX, or XDP_DROP.
 */
static __always_inline int rls_answer_keeping_open(struct xdp_md *ctx, struct rls_scratch *s,
						   struct rls_flow *flow, __u16 window)
{
	const struct rls_packet *pkt = &s->pkt;
	__u32 reply_end = 0;

	__builtin_memset(&s->answer, 0, sizeof(s->answer));
	s->answer.seq = pkt->wire_ack;
	s->answer.ack = pkt->wire_seq + pkt->payload_len;
	s->answer.window = window;
	/* A client that asks to close gets "connection: close" and our FIN, and its own FIN then
	 * reaches the upstream, renumbered, which closes in turn (rlshape_tc.c). */
	s->answer.fin = rls_request_says_close(s, &flow->stream);
	s->answer.keep_open = !s->answer.fin;
	if (rls_send_429(ctx, pkt, s, &s->rejection, &reply_end) != XDP_TX)
		return XDP_DROP;
	flow->rejection = s->rejection;
	rls_seqadj_note_429(&flow->seqadj, pkt->wire_seq + pkt->payload_len,
			    pkt->payload_len - s->seg.from, pkt->ack_seq,
			    s->answer.len + s->answer.fin);
	flow->seqadj.reply_seq = pkt->wire_ack;
	flow->seqadj.reply_detail = s->answer.detail;
	flow->seqadj.reply_window = window;
	flow->seqadj.reply_fin = s->answer.fin;
	if (s->answer.fin)
		flow->closing |= RLS_CLOSING_FIN_SENT;
	rls_count_packet(RLS_PKT_REPLY_SENT);
	return XDP_TX;
}

/*
 * The client sent the refused request of a connection kept open again (its 429 was lost, or
 * its acknowledgment): the same 429 again, at the same place.
 */
static __always_inline int rls_answer_again(struct xdp_md *ctx, struct rls_scratch *s,
					    struct rls_flow *flow)
{
	const struct rls_seqadj *a = &flow->seqadj;
	__u32 reply_end = 0;
	int action;

	__builtin_memset(&s->answer, 0, sizeof(s->answer));
	s->answer.seq = a->reply_seq;
	s->answer.ack = a->client_pos;
	s->answer.window = a->reply_window;
	s->answer.keep_open = !a->reply_fin;
	s->answer.fin = a->reply_fin;
	s->answer.detail = a->reply_detail;
	s->answer.detail_fixed = 1;
	action = rls_send_429(ctx, &s->pkt, s, &flow->rejection, &reply_end);
	if (action == XDP_TX)
		rls_count_packet(RLS_PKT_REPLY_SENT);
	return action;
}

/*
 * A client segment of a connection a 429 kept open, before anything else reads it: a resend
 * of the refused request is answered again, data sent before the client had the 429 is
 * dropped (it is sent again, after), and everything else is renumbered into the upstream's
 * numbering, which the rest of the program then works in. Returns -1 to go on, or the
 * segment's verdict. A global function.
 */
__noinline int rls_renumber_from_client(struct xdp_md *ctx, struct rls_scratch *s,
					struct rls_flow *flow)
{
	struct rls_packet *pkt;
	const struct rls_seqadj *a;
	__u32 refused, end;

	if (!s || !flow)
		return XDP_PASS;
	pkt = &s->pkt;
	a = &flow->seqadj;
	refused = a->client_pos - a->swallowed;
	end = pkt->seq + pkt->payload_len;
	if (pkt->payload_len && (__s32)(end - refused) > 0 && (__s32)(pkt->seq - a->client_pos) < 0) {
		/* Bytes of the refused request, which must never reach the upstream. */
		if ((__s32)(pkt->seq - refused) <= 0)
			return rls_answer_again(ctx, s, flow);
		rls_count_packet(RLS_PKT_DROPPED);
		return XDP_DROP;
	}
	if (pkt->payload_len && (pkt->tcp_flags & TCP_FLAG_ACK) &&
	    (__s32)(pkt->ack_seq - (a->server_pos + a->server_after)) < 0) {
		rls_count_packet(RLS_PKT_AHEAD_OF_429);
		return XDP_DROP;
	}
	if (rls_seqadj_rewrite_plain_xdp(ctx, pkt, a) &&
	    (rls_tcp_options_read(rls_ctx_xdp(ctx), pkt, &s->opts) ||
	     rls_seqadj_rewrite(rls_ctx_xdp(ctx), pkt, a, &s->opts, true))) {
		rls_count_packet(RLS_PKT_DROPPED);
		return XDP_DROP;
	}
	rls_count_packet(RLS_PKT_SEQ_TRANSLATED);
	return -1;
}

/*
 * This segment, the refused request's last (or the client's resend of it), becomes its 429,
 * unless that would overlap answers the upstream still owes (rls_may_answer()): then it is
 * dropped, and the client's next resend is answered.
 */
static __always_inline int rls_answer_refused(struct xdp_md *ctx, struct rls_scratch *s,
					      struct rls_flow *flow)
{
	__u32 reply_end = 0;
	int action;

	if (!rls_may_answer(flow, s->pkt.ack_seq)) {
		rls_count_packet(RLS_PKT_PIPELINED_WAIT);
		return XDP_DROP;
	}
	rls_answer_closing(s, flow);
	action = rls_send_429(ctx, &s->pkt, s, &flow->rejection, &reply_end);
	if (action == XDP_TX) {
		/* An earlier attempt may have failed: this is the 429 the client will ack. */
		flow->reply_end = reply_end;
		flow->reply_wire_end = s->answer.seq + s->answer.len + s->answer.fin;
		if (s->answer.fin)
			flow->closing |= RLS_CLOSING_FIN_SENT;
		rls_count_packet(RLS_PKT_REPLY_SENT);
	}
	return action;
}

/*
 * A refused request. Where it started in this very segment after the end of an admitted one,
 * the admitted bytes go on and the rest is cut off, to be answered when the client sends it
 * again; otherwise this segment becomes the 429. Either way the upstream never gets the
 * request whole, and the flow remembers where it expects to be answered.
 */
static __always_inline int rls_refuse(struct xdp_md *ctx, struct rls_scratch *s,
				      struct rls_flow *flow)
{
	const struct rls_packet *pkt = &s->pkt;
	__u32 first_new = rls_first_new_byte(s);
	__s32 start = (__s32)(flow->stream.request_start - pkt->seq);
	int window = rls_keep_open_window(ctx, s, flow);

	if (window >= 0 && rls_answer_keeping_open(ctx, s, flow, (__u16)window) == XDP_TX) {
		if (s->answer.keep_open)
			rls_count_packet(RLS_PKT_REPLY_KEPT_OPEN);
		return XDP_TX;
	}
	/* Closing: either it could not stay open, or its 429 failed and the resend is answered. */
	flow->state = RLS_FLOW_REJECTED;
	flow->rejection = s->rejection;
	flow->reply_end = 0;
	/* The request began among this segment's new bytes, after the end of an admitted one. */
	if ((__s32)(flow->stream.request_start - first_new) > 0) {
		flow->request_seq = flow->stream.request_start;
		if (rls_trim_payload(ctx, s, pkt, (__u32)start)) {
			/* Could not cut: nothing of it goes on, the client sends it all again. */
			flow->request_seq = first_new;
			return XDP_DROP;
		}
		rls_count_packet(RLS_PKT_PIPELINED_WAIT);
		return XDP_PASS;
	}
	/* Its start is in an earlier segment (or in bytes of this one the upstream holds): the
	 * upstream's next byte is where the client resends from, and where its reset goes. */
	flow->request_seq = first_new;
	if (window >= 0)
		return XDP_DROP; /* the frame may be half rewritten */
	return rls_answer_refused(ctx, s, flow);
}

/*
 * A request's last byte is in this segment, just before the scan's position: decide it.
 * Returns XDP_PASS, or the segment's verdict when the request is refused (the flow is then
 * RLS_FLOW_REJECTED). A global function: verified once.
 */
__noinline int rls_request_ended(struct xdp_md *ctx, struct rls_scratch *s, struct rls_flow *flow,
				 const struct rls_config *cfg, __u32 generation)
{
	if (!s || !flow || !cfg)
		return XDP_PASS;
	s->who = s->pkt.flow; /* the client is the segment's source */
	/* XDP cannot hold a request back: shaping is the upstream side's (README, "Shaping"). */
	if (rls_judge_request(s, flow, cfg, generation, false) == RLS_VERDICT_REFUSE)
		return rls_refuse(ctx, s, flow);
	return XDP_PASS;
}

/*
 * One round: scan on until the stream says something must be done, and do it. A global
 * function, so that the segment's loop over rounds is verified once per round, not once per
 * path through a round.
 */
__noinline int rls_stream_round(struct xdp_md *ctx, struct rls_scratch *s, struct rls_flow *flow,
				const struct rls_config *cfg, __u32 generation)
{
	struct rls_stream *st;
	int action;

	if (!s || !flow || !cfg)
		return RLS_ROUND_DONE;
	st = &flow->stream;
	switch (rls_stream_scan(s, st, cfg)) {
	case RLS_STOP_NEED_BYTES:
		s->seg.base += s->scan.len;
		if (rls_stream_load_window(rls_ctx_xdp(ctx), s))
			return RLS_ROUND_GO_ON;
		rls_request_began(s, flow); /* a request that goes on in the next segment */
		s->seg.action = XDP_PASS;
		return RLS_ROUND_DONE;
	case RLS_STOP_REQUEST_END:
		/* A flood of tiny pipelined requests: the whole segment is reset, none reaches
		 * the upstream (those decided before it are counted, never served). */
		if (++s->seg.requests > RLS_REQUESTS_PER_SEGMENT) {
			s->seg.action = rls_reset_connection(ctx, s, flow, RLS_PKT_STREAM_RESET,
						     rls_first_new_byte(s));
			return RLS_ROUND_DONE;
		}
		rls_request_began(s, flow);
		action = rls_request_ended(ctx, s, flow, cfg, generation);
		/* A refused request ends the segment, even where its cut segment still passes. */
		if (action == XDP_PASS && flow->state != RLS_FLOW_REJECTED)
			return rls_segment_read_whole(s, XDP_PASS) ? RLS_ROUND_DONE : RLS_ROUND_GO_ON;
		s->seg.action = action;
		return RLS_ROUND_DONE;
	case RLS_STOP_HTTP2:
		if (cfg->http2_pass) {
			st->phase = RLS_PHASE_TUNNEL;
			rls_count_packet(RLS_PKT_HTTP2);
			return RLS_ROUND_GO_ON;
		}
		s->seg.action = rls_reset_connection(ctx, s, flow, RLS_PKT_HTTP2,
						     rls_first_new_byte(s));
		return RLS_ROUND_DONE;
	default:
		s->seg.action = rls_reset_connection(ctx, s, flow, RLS_PKT_STREAM_RESET,
						     rls_first_new_byte(s));
		return RLS_ROUND_DONE;
	}
}

/* Parse this segment's payload from offset on, deciding every request that ends in it. */
static __always_inline int rls_follow_segment(struct xdp_md *ctx, struct rls_scratch *s,
					      struct rls_flow *flow, const struct rls_live *live,
					      __u32 offset)
{
	const struct rls_packet *pkt = &s->pkt;
	__u32 i;

	rls_segment_begin(s, flow, offset, XDP_PASS);
	if (!rls_stream_load_window(rls_ctx_xdp(ctx), s))
		return XDP_PASS;
	if (!rls_value_resume(s, &flow->stream))
		return rls_reset_connection(ctx, s, flow, RLS_PKT_CUT_VALUE_LOST,
					    rls_first_new_byte(s));
	for (i = 0; i < RLS_ROUNDS_MAX; i++)
		if (rls_stream_round(ctx, s, flow, live->cfg, live->generation) == RLS_ROUND_DONE)
			break;
	if (i == RLS_ROUNDS_MAX)
		return rls_reset_connection(ctx, s, flow, RLS_PKT_STREAM_RESET,
						     rls_first_new_byte(s));
	if (s->seg.action == XDP_PASS && !s->seg.forgotten && flow->state != RLS_FLOW_REJECTED) {
		if (!rls_value_keep(s, &flow->stream))
			return rls_reset_connection(ctx, s, flow, RLS_PKT_CUT_VALUE_LOST,
						    rls_first_new_byte(s));
		flow->stream.next_seq = pkt->seq + pkt->payload_len;
	}
	return (int)s->seg.action;
}

/* The client's FIN after a closing 429, answered with ours: its close completes at once. */
static __always_inline int rls_answer_client_fin(struct xdp_md *ctx, struct rls_scratch *s,
						 struct rls_flow *flow)
{
	const struct rls_packet *pkt = &s->pkt;
	bool fin_sent = flow->closing & RLS_CLOSING_FIN_SENT;

	__builtin_memset(&s->answer, 0, sizeof(s->answer));
	/* Our FIN after the 429, or again where it went with the 429. */
	s->answer.seq = flow->reply_wire_end - fin_sent;
	s->answer.ack = pkt->wire_seq + pkt->payload_len + 1;
	s->answer.window = rls_upstream_window(flow);
	s->answer.fin = 1;
	flow->reply_wire_end += !fin_sent;
	flow->reply_end += !fin_sent;
	flow->closing |= RLS_CLOSING_FIN_SENT;
	return rls_send_fin(ctx, pkt, s);
}

/* The upstream's socket reset, once: this client segment becomes the reset. */
static __always_inline int rls_reset_upstream_once(struct xdp_md *ctx, struct rls_scratch *s,
						   struct rls_flow *flow)
{
	if (flow->closing & RLS_CLOSING_UPSTREAM_RESET)
		return XDP_DROP;
	flow->closing |= RLS_CLOSING_UPSTREAM_RESET;
	rls_count_packet(RLS_PKT_RESET_UPSTREAM);
	return rls_reset_upstream(ctx, &s->pkt, flow->request_seq);
}

/*
 * After a 429 that closes the connection, the upstream must see nothing more of the request,
 * and must not keep a socket waiting for it; the client's close must complete without a
 * resend. A retransmitted request is answered again. The client, having read "connection:
 * close", sends its FIN (with its ACK of the 429, or after it): it is answered with our FIN,
 * and the client's last ACK of that ends the flow. The upstream is reset once: by the first
 * segment that has the 429 and is not a FIN (a client that never closes does not keep it
 * waiting), or else by that last ACK. Anything else is dropped.
 */
static __always_inline int rls_handle_rejected_flow(struct xdp_md *ctx, struct rls_scratch *s,
						    struct rls_flow *flow)
{
	const struct rls_packet *pkt = &s->pkt;
	bool has_429 = (pkt->tcp_flags & TCP_FLAG_ACK) && flow->reply_end &&
		       (__s32)(pkt->ack_seq - flow->reply_end) >= 0;
	int action;

	if (pkt->payload_len && pkt->seq == flow->request_seq)
		return rls_answer_refused(ctx, s, flow);
	/* The client resets; or it closes before any 429 went out (reply_end 0: only its
	 * retransmission can change that); or its last ACK, of our FIN after its own, comes.
	 * Either way the connection is over: the upstream's reset (once), then the flow goes
	 * (after: the reset reads the flow, whose memory a delete gives back). */
	if ((pkt->tcp_flags & TCP_FLAG_RST) ||
	    (!flow->reply_end && (pkt->tcp_flags & TCP_FLAG_FIN)) ||
	    (has_429 && (flow->closing & RLS_CLOSING_FIN_SENT) &&
	     pkt->ack_seq == flow->reply_end && !pkt->payload_len &&
	     !(pkt->tcp_flags & TCP_FLAG_FIN))) {
		action = rls_reset_upstream_once(ctx, s, flow);
		bpf_map_delete_elem(&rls_flows, &pkt->flow);
		return action;
	}
	if (pkt->tcp_flags & TCP_FLAG_FIN)
		return rls_answer_client_fin(ctx, s, flow);
	if (!has_429) {
		rls_count_packet(RLS_PKT_DROPPED);
		return XDP_DROP;
	}
	if (flow->closing & RLS_CLOSING_UPSTREAM_RESET) {
		rls_count_packet(RLS_PKT_DROPPED);
		return XDP_DROP;
	}
	return rls_reset_upstream_once(ctx, s, flow);
}

/* Start following a connection whose next byte is at seq. */
static __always_inline struct rls_flow *rls_start_flow(struct rls_scratch *s, __u32 seq,
						       bool routed)
{
	struct rls_flow *fresh = rls_fresh_value(s);

	fresh->stream.next_seq = seq;
	fresh->stream.stream_start = seq;
	fresh->stream.phase = RLS_PHASE_IDLE;
	fresh->stream.routed = routed;
	if (bpf_map_update_elem(&rls_flows, &s->pkt.flow, fresh, BPF_ANY))
		return NULL;
	return bpf_map_lookup_elem(&rls_flows, &s->pkt.flow);
}

/*
 * Follow a stream from offset bytes into this segment on (where the socket's next byte is; 0
 * for a routed connection); a full rls_flows resets it instead.
 */
static __always_inline int rls_follow_from_here(struct xdp_md *ctx, struct rls_scratch *s,
						const struct rls_live *live, bool routed,
						__u32 offset)
{
	struct rls_flow *flow = rls_start_flow(s, s->pkt.seq + offset, routed);
	struct rls_reset_note fresh = {}, *note;
	int action;

	if (flow)
		return rls_follow_segment(ctx, s, flow, live, offset);
	note = bpf_map_lookup_elem(&rls_reset_notes, &s->pkt.flow);
	action = rls_answer_noted_resend(ctx, s, note, routed);
	if (action >= 0)
		return action;
	/* The first reset's segment is the one resent: a later one (or a forger's) keeps it. */
	if (!note) {
		fresh.wire_seq = s->pkt.wire_seq;
		fresh.wire_ack = s->pkt.wire_ack;
		bpf_map_update_elem(&rls_reset_notes, &s->pkt.flow, &fresh, BPF_NOEXIST);
	}
	return rls_reset_connection(ctx, s, NULL, RLS_PKT_FLOWS_FULL, s->pkt.seq + offset);
}

/* Data on a connection not followed yet: a real connection's first bytes, or not ours. */
static __always_inline int rls_new_stream(struct xdp_md *ctx, struct rls_scratch *s,
					  const struct rls_live *live)
{
	struct rls_socket_view view;
	int action;

	switch (rls_socket_view(ctx, &s->pkt, &view)) {
	case RLS_CONN_ROUTED:
	case RLS_CONN_NEW:
	case RLS_CONN_MIDSTREAM: /* followed from the socket's next byte: it must start a
				   * request, or is reset */
		break;
	case RLS_CONN_OUT_OF_ORDER:
		rls_count_packet(RLS_PKT_OUT_OF_ORDER);
		return XDP_DROP;
	case RLS_CONN_LISTENER:
		/* A connection reset for want of a flow, whose socket is gone: its resend. */
		action = rls_answer_noted_resend(
			ctx, s, bpf_map_lookup_elem(&rls_reset_notes, &s->pkt.flow), false);
		if (action >= 0)
			return action;
		rls_count_packet(RLS_PKT_NOT_CONNECTION);
		return XDP_DROP;
	default:
		rls_count_packet(RLS_PKT_NOT_CONNECTION);
		return XDP_PASS;
	}
	if (view.conn == RLS_CONN_ROUTED)
		return rls_follow_from_here(ctx, s, live, true, 0);
	return rls_follow_from_here(ctx, s, live, false, view.rcv_nxt - s->pkt.seq);
}

/*
 * A segment not where the followed stream is. Behind it: a retransmission, harmless if the
 * kernel already holds those bytes; if the kernel lacks bytes the parser has read (it dropped
 * them after XDP saw them), what the server will read may differ: the connection is reset.
 * Ahead of it: a gap, dropped so that the client sends it again in order. A local connection
 * that is new on the same addresses and ports starts afresh.
 */
static __always_inline int rls_off_stream(struct xdp_md *ctx, struct rls_scratch *s,
					  struct rls_flow *flow, const struct rls_live *live)
{
	const struct rls_packet *pkt = &s->pkt;
	struct rls_stream *st = &flow->stream;
	__s32 behind = (__s32)(st->next_seq - pkt->seq);
	__s32 past = (__s32)(pkt->seq + pkt->payload_len - st->next_seq);
	struct rls_socket_view view = {};

	if (!st->routed) {
		rls_socket_view(ctx, pkt, &view);
		if (view.conn == RLS_CONN_NEW && pkt->seq != st->stream_start) {
			rls_end_response(s, &pkt->flow, flow, RLS_EVENT_CLOSED);
			return rls_follow_from_here(ctx, s, live, false, 0);
		}
		/* No established socket (any more): the kernel answers it, nothing here changes. */
		if (view.conn == RLS_CONN_NOT_OURS || view.conn == RLS_CONN_LISTENER ||
		    view.conn == RLS_CONN_ROUTED) {
			rls_count_packet(RLS_PKT_NOT_CONNECTION);
			return XDP_PASS;
		}
	}
	if (behind < 0) {
		rls_count_packet(RLS_PKT_OUT_OF_ORDER);
		return XDP_DROP;
	}
	/*
	 * A routed stream is followed from the first bytes XDP saw. A segment from before them
	 * (they came past a gap, or rlshape started mid-connection) holds bytes the parser never
	 * read, which the upstream would read: reset, at this segment's own sequence number. One
	 * from further before than any window holds is no client's (forged, or stale): dropped,
	 * as the upstream's kernel would, so that a blind forger must hit a window to reset.
	 * (Past 4 GiB of a connection's requests the distance wraps: a late resend may be reset.)
	 */
	if (st->routed && (__u32)behind > st->next_seq - st->stream_start) {
		if (st->stream_start - pkt->seq <= RLS_REWIND_MAX)
			return rls_reset_connection(ctx, s, flow, RLS_PKT_DESYNC, pkt->seq);
		rls_count_packet(RLS_PKT_NOT_CONNECTION);
		return XDP_DROP;
	}
	if (!st->routed && (__s32)(st->next_seq - view.rcv_nxt) > 0 &&
	    (__s32)(pkt->seq + pkt->payload_len - view.rcv_nxt) > 0)
		return rls_reset_connection(ctx, s, flow, RLS_PKT_DESYNC, view.rcv_nxt);
	if (past <= 0) {
		rls_count_packet(RLS_PKT_RETRANSMIT);
		return XDP_PASS;
	}
	return rls_follow_segment(ctx, s, flow, live, (__u32)behind);
}

SEC("xdp")
int rlshape_xdp(struct xdp_md *ctx)
{
	struct rls_scratch *s = rls_scratch_get();
	struct rls_packet *pkt;
	struct rls_live live;
	struct rls_flow *flow;
	int action;

	if (!s)
		return XDP_PASS;
	pkt = &s->pkt;
	__builtin_memset(pkt, 0, sizeof(*pkt));
	action = rls_parse_packet(rls_ctx_xdp(ctx), pkt);
	if (action == RLS_PARSE_NOT_TCP || !rls_live_config(&live))
		return XDP_PASS;
	if (action == RLS_PARSE_TOO_DEEP) {
		rls_count_packet(RLS_PKT_DEEP_IPV6_DROPPED);
		return XDP_DROP;
	}
	if (action != RLS_PARSE_OK) {
		rls_count_packet(RLS_PKT_UNPARSED);
		return XDP_PASS;
	}
	if (!rls_port_watched(live.cfg, pkt->flow.server_port))
		return XDP_PASS;
	rls_count_packet(RLS_PKT_SEEN);
	/* First fragments and urgent data: dropped (rls_ip_layer_verdict()). */
	action = rls_ip_layer_verdict(pkt);
	if (action >= 0)
		return action;

	flow = bpf_map_lookup_elem(&rls_flows, &pkt->flow);
	if (flow && flow->seqadj.active) {
		/* A SYN on its ports starts a new connection, numbered afresh: the old one is over. */
		if (pkt->tcp_flags & TCP_FLAG_SYN) {
			rls_end_response(s, &pkt->flow, flow, RLS_EVENT_CLOSED);
			bpf_map_delete_elem(&rls_flows, &pkt->flow);
			flow = NULL;
		} else {
			action = rls_renumber_from_client(ctx, s, flow);
			if (action >= 0)
				return action;
			/* The client's last ACK, of the upstream's FIN after its own: renumbered,
			 * it was the last segment the flow was kept for (rls_note_closed()). */
			if (rls_closed_both(flow) && !pkt->payload_len &&
			    !(pkt->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) &&
			    flow->server_seen && pkt->ack_seq == flow->server_next) {
				bpf_map_delete_elem(&rls_flows, &pkt->flow);
				return XDP_PASS;
			}
		}
	}
	if (pkt->tcp_flags & TCP_FLAG_SYN) {
		/*
		 * A routed connection on reused ports starts afresh: its new stream begins
		 * anywhere. (A local one is told apart by its socket at its first data.) So does
		 * one on the ports of a connection a closing 429 ended, once the upstream has had
		 * its reset: the flow only waits for the rest of the client's teardown, and the
		 * client (a NAT, tcp_tw_reuse) has moved on. Before that reset the upstream still
		 * holds the old connection, with the refused request's first bytes: forgotten,
		 * the flow would let a client send the rest past the parser. It stays, and the
		 * SYN goes on, taken for nothing: a server holding the connection answers it with
		 * a challenge ACK (RFC 5961; the tests send the client's RST themselves), the
		 * client's RST to that resets the upstream here, and the client's next SYN starts
		 * afresh.
		 */
		if (flow && (flow->state == RLS_FLOW_REJECTED
				     ? flow->closing & RLS_CLOSING_UPSTREAM_RESET
				     : flow->stream.routed || flow->state == RLS_FLOW_RESET)) {
			rls_end_response(s, &pkt->flow, flow, RLS_EVENT_CLOSED);
			bpf_map_delete_elem(&rls_flows, &pkt->flow);
		}
		/* Data on a SYN (TCP Fast Open) would reach the server unread: the client sends
		 * it again after the handshake. */
		if (pkt->payload_len) {
			rls_count_packet(RLS_PKT_OUT_OF_ORDER);
			return XDP_DROP;
		}
		return XDP_PASS;
	}
	if (flow && flow->state == RLS_FLOW_REJECTED)
		return rls_handle_rejected_flow(ctx, s, flow);
	if (!flow)
		return pkt->payload_len ? rls_new_stream(ctx, s, &live) : XDP_PASS;
	if (flow->state == RLS_FLOW_RESET)
		return rls_handle_reset_flow(ctx, s, flow);
	if (pkt->seq != flow->stream.next_seq) {
		if (!pkt->payload_len)
			return XDP_PASS; /* a bare ACK, FIN or RST off the stream: not the client's */
		return rls_off_stream(ctx, s, flow, &live);
	}
	action = XDP_PASS;
	s->seg.forgotten = 0;
	if (pkt->payload_len && !(pkt->tcp_flags & TCP_FLAG_RST))
		action = rls_follow_segment(ctx, s, flow, &live, 0);
	if (action == XDP_PASS && !s->seg.forgotten && (pkt->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) &&
	    flow->state != RLS_FLOW_REJECTED) {
		flow->stream.next_seq += !!(pkt->tcp_flags & TCP_FLAG_FIN);
		rls_client_close(s, flow);
	}
	return action;
}
