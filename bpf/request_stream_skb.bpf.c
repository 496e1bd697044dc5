// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The HTTP request stream tracker (lib/http_request.h) over the skb context, with the packet
 * parser and the payload window: the code rlshape_xdp.c runs, built here for TC. rlshape does
 * not attach it; tests/bpf/test_request_stream_skb.c loads it, so that the verifier checks the
 * tracker as a TC program would run it (issue 16 follows requests on TC egress), and runs it.
 *
 * Each segment is read from a fresh stream, with no connection behind it: the program returns
 * how many requests end in the segment's payload, or -1 where the stream is broken.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lib/ctx.h"
#include "lib/maps.h"
#include "lib/config.h"
#include "lib/packet.h"
#include "lib/http_request.h"

/* Enough for the windows of a jumbo frame and the requests a test segment holds. */
#define RLS_SKB_ROUNDS_MAX 16

enum rls_skb_round {
	RLS_SKB_REQUEST_END,
	RLS_SKB_GO_ON,  /* the next window is loaded */
	RLS_SKB_DONE,   /* the segment is used up */
	RLS_SKB_BROKEN,
};

/* The stream read from a fresh connection: where the test's segments start. */
static __always_inline struct rls_stream *rls_skb_stream(struct rls_scratch *s)
{
	return &s->fresh.flow.stream;
}

/*
 * Scan on until the stream stops, and load the next window where it needs bytes. A global
 * function, as rlshape_xdp.c's round is: the segment's loop over rounds is verified once per
 * round, not once per path through one.
 */
__noinline int rls_skb_stream_round(struct __sk_buff *skb, struct rls_scratch *s,
				    const struct rls_config *cfg)
{
	if (!s || !cfg)
		return RLS_SKB_BROKEN;
	switch (rls_stream_scan(s, rls_skb_stream(s), cfg)) {
	case RLS_STOP_REQUEST_END:
		return RLS_SKB_REQUEST_END;
	case RLS_STOP_NEED_BYTES:
		s->seg.base += s->scan.len;
		return rls_stream_load_window(rls_ctx_skb(skb), s) ? RLS_SKB_GO_ON : RLS_SKB_DONE;
	default:
		return RLS_SKB_BROKEN;
	}
}

SEC("tc")
int request_stream_skb(struct __sk_buff *skb)
{
	struct rls_scratch *s = rls_tc_scratch_get();
	struct rls_live live;
	int requests = 0;
	__u32 i;

	if (!s)
		return -1;
	__builtin_memset(&s->pkt, 0, sizeof(s->pkt));
	if (rls_parse_packet(rls_ctx_skb(skb), &s->pkt) != RLS_PARSE_OK || !rls_live_config(&live))
		return -1;
	rls_fresh_value(s);
	rls_skb_stream(s)->phase = RLS_PHASE_IDLE;
	__builtin_memset(&s->seg, 0, sizeof(s->seg));
	s->seg.total = s->pkt.payload_len;
	if (!rls_stream_load_window(rls_ctx_skb(skb), s))
		return 0;
	for (i = 0; i < RLS_SKB_ROUNDS_MAX; i++) {
		switch (rls_skb_stream_round(skb, s, live.cfg)) {
		case RLS_SKB_REQUEST_END:
			requests++;
			break;
		case RLS_SKB_GO_ON:
			break;
		case RLS_SKB_DONE:
			return requests;
		default:
			return -1;
		}
	}
	return requests;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
