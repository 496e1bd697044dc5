// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * rlshape's TC program, on the egress of the same interface as the XDP program: follows the
 * response to each admitted request that reserved tokens or holds a concurrency slot, and ends
 * it at its last byte or the upstream's close: the tokens are reported with the response's last
 * bytes (where the upstream's `usage` is) for the daemon to settle, and the slot is given back.
 * It never changes or drops a packet.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/maps.h"
#include "lib/config.h"
#include "lib/packet.h"
#include "lib/http_response.h"
#include "lib/response.h"

#define TC_ACT_OK 0
#define RLS_HEADERS_LINEAR 128 /* Ethernet, VLAN, IP and TCP with options */
#define RLS_STATUS_LINE_MIN 12 /* "HTTP/1.1 200" */

/*
 * TC's own work space: TC on egress can run in process context, so it must not share the
 * per-CPU scratch of XDP, which runs in softirq context on the same CPU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rls_scratch);
} rls_tc_scratch SEC(".maps");

static __always_inline long rls_linear_len(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;

	return data_end - data;
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

/* 204 and 304 have no body, whatever their headers say (RFC 9112, 6.3). */
static __always_inline bool rls_status_has_no_body(const __u8 *p)
{
	return (p[9] == '2' && p[10] == '0' && p[11] == '4') ||
	       (p[9] == '3' && p[10] == '0' && p[11] == '4');
}

/* Interim (1xx) heads one segment may hold before the final one. */
#define RLS_INTERIM_MAX 2

/*
 * The status line and headers of the response: how its body is delimited, and how many of this
 * segment's bytes are body. Interim (1xx) responses before it in the same segment are skipped
 * (an upstream may send 100 Continue and its answer together). Returns false when the segment
 * holds no final head at its start, or after its interim ones: the real one is still to come.
 */
static __always_inline bool rls_take_response_head(struct __sk_buff *skb, struct rls_scratch *s,
						   const struct rls_packet *pkt,
						   struct rls_flow *flow, __u32 *body)
{
	__u32 off = 0, len, i;
	__u8 *p = s->payload;

	for (i = 0; i <= RLS_INTERIM_MAX; i++) {
		if (off > pkt->payload_len || pkt->payload_len - off < RLS_STATUS_LINE_MIN ||
		    bpf_skb_load_bytes(skb, pkt->payload_off + off, p, RLS_STATUS_LINE_MIN))
			return false;
		if (p[0] != 'H' || p[1] != 'T' || p[2] != 'T' || p[3] != 'P' || p[4] != '/' ||
		    p[5] != '1' || p[6] != '.' || p[8] != ' ')
			return false;
		len = pkt->payload_len - off;
		if (len > RLS_PARSE_WINDOW)
			len = RLS_PARSE_WINDOW;
		/* Checked above, said again for the verifier: the load is never empty. */
		if (len < RLS_STATUS_LINE_MIN)
			return false;
		if (bpf_skb_load_bytes(skb, pkt->payload_off + off, s->payload, len))
			return false;
		rls_parse_response_head(s, len);
		if (p[9] != '1')
			break;
		/* An interim head: the final one may follow it in this segment. */
		if (!s->resp.headers_complete)
			return false;
		off += s->lines.body_start;
	}
	if (i > RLS_INTERIM_MAX)
		return false;
	*body = 0;
	if (!s->resp.headers_complete) {
		flow->response_state = RLS_RESPONSE_UNTIL_CLOSE;
		return true;
	}
	*body = pkt->payload_len - off - s->lines.body_start;
	if (rls_status_has_no_body(p)) {
		flow->response_state = RLS_RESPONSE_LENGTH;
		flow->body_left = 0;
	} else if (s->resp.chunked) {
		flow->response_state = RLS_RESPONSE_CHUNKED;
	} else if (s->resp.has_content_length) {
		flow->response_state = RLS_RESPONSE_LENGTH;
		flow->body_left = s->resp.content_length;
	} else {
		flow->response_state = RLS_RESPONSE_UNTIL_CLOSE;
	}
	return true;
}

/* Keep this segment's last bytes in the next slot of the ring. */
static __always_inline void rls_keep_tail(struct __sk_buff *skb, struct rls_scratch *s,
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
	    bpf_skb_load_bytes(skb, pkt->payload_off + pkt->payload_len - n, tail->bytes[slot], n))
		return;
	tail->len[slot] = n;
	tail->whole[slot] = n == pkt->payload_len;
	flow->tail_slot = slot;
}

/* "0\r\n\r\n" closes a chunked body (no trailers: the upstreams rlshape meters send none). */
static __always_inline bool rls_ends_last_chunk(struct __sk_buff *skb, const struct rls_packet *pkt)
{
	__u8 end[5];

	if (pkt->payload_len < sizeof(end) ||
	    bpf_skb_load_bytes(skb, pkt->payload_off + pkt->payload_len - sizeof(end), end,
			       sizeof(end)))
		return false;
	return end[0] == '0' && end[1] == '\r' && end[2] == '\n' && end[3] == '\r' && end[4] == '\n';
}

static __always_inline void rls_meter_segment(struct __sk_buff *skb, struct rls_scratch *s,
					      const struct rls_packet *pkt,
					      const struct rls_flow_key *key, struct rls_flow *flow)
{
	__u32 body = pkt->payload_len;

	if (flow->response_state == RLS_RESPONSE_AWAITED &&
	    !rls_take_response_head(skb, s, pkt, flow, &body))
		return;
	flow->response_bytes += pkt->payload_len;
	if (flow->meter_tokens)
		rls_keep_tail(skb, s, pkt, key, flow);
	switch (flow->response_state) {
	case RLS_RESPONSE_LENGTH:
		flow->body_left -= body < flow->body_left ? body : flow->body_left;
		if (!flow->body_left)
			rls_end_response(s, key, flow, 0);
		break;
	case RLS_RESPONSE_CHUNKED:
		if (rls_ends_last_chunk(skb, pkt))
			rls_end_response(s, key, flow, 0);
		break;
	}
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

SEC("tc")
int rlshape_tc(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct rls_scratch *s = bpf_map_lookup_elem(&rls_tc_scratch, &zero);
	struct rls_live live;
	struct rls_flow_key key;
	struct rls_frame frame;
	struct rls_flow *flow;

	if (!s)
		return TC_ACT_OK;
	/*
	 * Headers must be linear to be parsed; the payload is read with bpf_skb_load_bytes().
	 * Pull only when they are not: the pull also makes the bytes writable, which for TCP's
	 * cloned skbs means a copy of the head, on every packet this program reads and never
	 * writes.
	 */
	if (rls_linear_len(skb) < RLS_HEADERS_LINEAR && rls_linear_len(skb) < (long)skb->len)
		bpf_skb_pull_data(skb, skb->len < RLS_HEADERS_LINEAR ? skb->len : RLS_HEADERS_LINEAR);
	/* Read the context anew: clang must not reuse a field address (the verifier forbids it). */
	asm volatile("" : "+r"(skb));
	frame.data = (void *)(long)skb->data;
	frame.data_end = (void *)(long)skb->data_end;
	frame.payload_linear = false;
	__builtin_memset(&s->pkt, 0, sizeof(s->pkt));
	if (rls_parse_packet(&frame, &s->pkt) != RLS_PARSE_OK)
		return TC_ACT_OK;
	/* Egress: the upstream's port is the source. */
	if (!rls_live_config(&live) || !rls_port_watched(live.cfg, s->pkt.flow.client_port))
		return TC_ACT_OK;
	rls_client_side_key(&s->pkt, &key);
	flow = bpf_map_lookup_elem(&rls_flows, &key);
	if (!flow)
		return TC_ACT_OK;
	rls_note_server_bytes(&s->pkt, flow);
	if (s->pkt.payload_len && flow->response_state != RLS_RESPONSE_NONE)
		rls_meter_segment(skb, s, &s->pkt, &key, flow);
	if (s->pkt.tcp_flags & TCP_FLAG_RST) {
		rls_end_response(s, &key, flow, RLS_EVENT_CLOSED);
		bpf_map_delete_elem(&rls_flows, &key);
	} else if (s->pkt.tcp_flags & TCP_FLAG_FIN) {
		flow->last_seen_ns = bpf_ktime_get_ns();
		rls_end_response(s, &key, flow, RLS_EVENT_CLOSED);
		rls_note_closed(&key, flow, RLS_CLOSED_SERVER);
	}
	return TC_ACT_OK;
}
