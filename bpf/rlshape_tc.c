// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * rlshape's TC program, on the egress of the same interface as the XDP program: follows the
 * response to each admitted request that reserved tokens or holds a concurrency slot, and ends
 * it at its last byte or the upstream's close: the tokens are reported with the response's last
 * bytes (where the upstream's `usage` is) for the daemon to settle, and the slot is given back.
 * It never changes or drops a packet.
 *
 * On the upstream-facing side (`--side upstream`) the same program is attached to the
 * interface's ingress, where the upstream's responses come in: the same direction of the
 * connection (from the watched port), so the same code, keyed as rlshape_upstream.c keys the
 * requests it reads on egress. Nothing there is renumbered (seqadj.h is XDP's alone).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lib/ctx.h"
#include "lib/maps.h"
#include "lib/config.h"
#include "lib/packet.h"
#include "lib/response.h"
#include "lib/seqadj.h"
#include "lib/upstream_fin.h"

#define TC_ACT_OK 0

/*
 * An upstream segment of a connection renumbered after a 429, its options in s->opts,
 * renumbered as the client numbers its bytes. A global function. A segment that could not be
 * rewritten still goes: the client takes it as out of its window, and the upstream sends it
 * again.
 */
__noinline int rls_renumber_to_client(struct __sk_buff *skb, struct rls_scratch *s,
				      const struct rls_seqadj *a)
{
	if (!s || !a)
		return 0;
	if (rls_seqadj_rewrite(rls_ctx_skb(skb), &s->pkt, a, &s->opts, false))
		return -1;
	rls_count_packet(RLS_PKT_SEQ_TRANSLATED);
	return 0;
}

/*
 * An upstream's SYN-ACK: where its bytes will start and the window it advertises, for a 429
 * to the connection's first request (rlshape_xdp.c). A global function.
 */
__noinline int rls_note_handshake(struct __sk_buff *skb, struct rls_scratch *s,
				  const struct rls_flow_key *key)
{
	struct rls_handshake hs = {};

	if (!s || !key)
		return 0;
	if (rls_tcp_options_read(rls_ctx_skb(skb), &s->pkt, &s->opts))
		return 0;
	hs.server_next = s->pkt.seq + 1;
	hs.window = s->pkt.window;
	hs.wscale = s->opts.wscale;
	bpf_map_update_elem(&rls_handshakes, key, &hs, BPF_ANY);
	return 0;
}

SEC("tc")
int rlshape_tc(struct __sk_buff *skb)
{
	struct rls_scratch *s = rls_tc_scratch_get();
	struct rls_live live;
	struct rls_flow_key key;
	struct rls_flow *flow;
	struct rls_seqadj seqadj;

	if (!s)
		return TC_ACT_OK;
	__builtin_memset(&s->pkt, 0, sizeof(s->pkt));
	/* The payload is read with bpf_skb_load_bytes(): it may be in the skb's fragments. */
	if (rls_parse_packet(rls_ctx_skb(skb), &s->pkt) != RLS_PARSE_OK)
		return TC_ACT_OK;
	/* Egress: the upstream's port is the source. */
	if (!rls_live_config(&live) || !rls_port_watched(live.cfg, s->pkt.flow.client_port))
		return TC_ACT_OK;
	rls_client_side_key(&s->pkt, &key);
	if ((s->pkt.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == (TCP_FLAG_SYN | TCP_FLAG_ACK)) {
		rls_note_handshake(skb, s, &key);
		return TC_ACT_OK;
	}
	flow = bpf_map_lookup_elem(&rls_flows, &key);
	if (!flow)
		return TC_ACT_OK;
	/* The upstream's window, for a 429 that keeps the connection (rlshape_xdp.c); written
	 * only when it changes, not to dirty the entry XDP reads on every segment. */
	if (!flow->seqadj.window_seen || flow->seqadj.server_window != s->pkt.window) {
		flow->seqadj.server_window = s->pkt.window;
		flow->seqadj.window_seen = 1;
	}
	/* Copied: the flow may be deleted below, its memory reused. */
	seqadj = flow->seqadj;
	rls_note_server_bytes(&s->pkt, flow);
	if (s->pkt.payload_len && flow->response_state != RLS_RESPONSE_NONE)
		rls_meter_segment(rls_ctx_skb(skb), s, &s->pkt, &key, flow);
	if (s->pkt.tcp_flags & TCP_FLAG_RST) {
		rls_end_response(s, &key, flow, RLS_EVENT_CLOSED);
		bpf_map_delete_elem(&rls_flows, &key);
	} else if (s->pkt.tcp_flags & TCP_FLAG_FIN) {
		rls_flow_seen(flow);
		rls_end_response(s, &key, flow, RLS_EVENT_CLOSED);
		rls_note_closed(&key, flow, RLS_CLOSED_SERVER);
	}
	if (!seqadj.active || (s->pkt.tcp_flags & TCP_FLAG_SYN))
		return TC_ACT_OK;
	/* Read once, for the FIN's acknowledgment and the renumbering (the acknowledgment
	 * leaves the segment as it was). */
	if (rls_tcp_options_read(rls_ctx_skb(skb), &s->pkt, &s->opts))
		return TC_ACT_OK;
	/* The upstream's FIN after the client closed on a 429 that carried ours: acknowledged
	 * for the client, which never will (upstream_fin.h); the flow is done with. */
	if (seqadj.reply_fin && (s->pkt.tcp_flags & TCP_FLAG_FIN) &&
	    !(s->pkt.tcp_flags & TCP_FLAG_RST) && !s->pkt.payload_len && rls_closed_both(flow)) {
		rls_ack_upstream_fin(skb, s);
		bpf_map_delete_elem(&rls_flows, &key);
	}
	/* The upstream's last ACK, of the client's FIN after its own: the last segment the flow
	 * was kept for (rls_note_closed()). */
	if (!s->pkt.payload_len && !(s->pkt.tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) &&
	    rls_closed_both(flow) && s->pkt.ack_seq == flow->stream.next_seq)
		bpf_map_delete_elem(&rls_flows, &key);
	rls_renumber_to_client(skb, s, &seqadj);
	return TC_ACT_OK;
}
