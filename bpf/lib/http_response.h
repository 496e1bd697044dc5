/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The head of an HTTP/1.x response, read from its first segment's first RLS_PARSE_WINDOW
 * bytes copied into the payload window (window.h) through the context layer: how its body is
 * delimited, into the flow's response state; and whether a segment ends a chunked body.
 * (Requests are read as a byte stream: http_request.h.)
 *
 * Lines are walked with bpf_loop() so the verifier checks the per-line work once instead of
 * once per possible line; every index into the copy is masked to the window.
 */
#ifndef RLS_BPF_HTTP_RESPONSE_H
#define RLS_BPF_HTTP_RESPONSE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "consts.h"
#include "ctx.h"
#include "header_names.h"
#include "maps.h"
#include "packet.h"
#include "scratch.h"
#include "window.h"
#include "http.h"

#define RLS_MAX_LINES   64
#define RLS_LINE_CHUNK  256 /* bytes searched for a line end per bpf_loop() step */
#define RLS_SCAN_STEPS  (RLS_MAX_LINES + RLS_PARSE_WINDOW / RLS_LINE_CHUNK)
#define RLS_OWS_MAX     16 /* spaces we skip around a header value */

struct rls_http_scan {
	struct rls_scratch *s;
};

#define RLS_DIGITS_MAX 19 /* fits a __u64 */
#define RLS_CONTENT_LENGTH "content-length:"

/* "content-length:" followed by digits: how many body bytes the request has. */
static __always_inline bool rls_take_content_length(struct rls_scratch *s, __u32 start, __u32 end,
						    __u64 *out)
{
	const char *name = RLS_CONTENT_LENGTH; /* no static array: see rls_put_literal() */
	__u32 k, p = start + sizeof(RLS_CONTENT_LENGTH) - 1;
	__u64 v = 0;

	if (end < p + 1)
		return false;
	for (k = 0; k < sizeof(RLS_CONTENT_LENGTH) - 1; k++)
		if (rls_lower(rls_at(s, start + k)) != (__u8)name[k])
			return false;
	for (k = 0; k < RLS_OWS_MAX && p < end && rls_is_ows(rls_at(s, p)); k++)
		p++;
	for (k = 0; k < RLS_DIGITS_MAX && p < end; k++, p++) {
		__u8 c = rls_at(s, p);

		if (c < '0' || c > '9')
			break;
		v = v * 10 + (c - '0');
	}
	if (k == 0)
		return false;
	*out = v;
	return true;
}

#define RLS_TRANSFER_ENCODING "transfer-encoding:"

/* "transfer-encoding: ..., chunked": the body's end is the zero-size chunk. */
static __always_inline bool rls_is_chunked_header(struct rls_scratch *s, __u32 start, __u32 end)
{
	const char *name = RLS_TRANSFER_ENCODING, *chunked = "chunked";
	__u32 k, n = sizeof(RLS_TRANSFER_ENCODING) - 1;

	if (end < start + n + 7)
		return false;
	for (k = 0; k < sizeof(RLS_TRANSFER_ENCODING) - 1; k++)
		if (rls_lower(rls_at(s, start + k)) != (__u8)name[k])
			return false;
	for (k = 0; k < RLS_OWS_MAX && end > start + n && rls_is_ows(rls_at(s, end - 1)); k++)
		end--;
	if (end < start + n + 7)
		return false;
	for (k = 0; k < 7; k++)
		if (rls_lower(rls_at(s, end - 7 + k)) != (__u8)chunked[k])
			return false;
	return true;
}

#define RLS_UPGRADE   "upgrade"
#define RLS_WEBSOCKET "websocket"

/*
 * "upgrade: websocket", in any case, with white space around the value: what a 101 switches
 * to. Name and value are compared a word at a time as the request's header names are
 * (rls_fixed_name_is()).
 */
static __always_inline bool rls_is_websocket_header(struct rls_scratch *s, __u32 start, __u32 end)
{
	const __u32 n = sizeof(RLS_UPGRADE) - 1, v = sizeof(RLS_WEBSOCKET) - 1;
	__u32 k, p = start + n + 1;

	if (end < p + v || rls_at(s, start + n) != ':' ||
	    !rls_fixed_name_is(s, start, RLS_UPGRADE, n))
		return false;
	for (k = 0; k < RLS_OWS_MAX && p < end && rls_is_ows(rls_at(s, p)); k++)
		p++;
	for (k = 0; k < RLS_OWS_MAX && end > p && rls_is_ows(rls_at(s, end - 1)); k++)
		end--;
	return end - p == v && rls_fixed_name_is(s, p, RLS_WEBSOCKET, v);
}

/* A response header line: how its body is delimited, and what a 101 switches to. */
__noinline int rls_match_response_header(struct rls_scratch *s, __u32 start, __u32 end)
{
	if (!s)
		return 0;
	if (!s->resp.has_content_length &&
	    rls_take_content_length(s, start, end, &s->resp.content_length))
		s->resp.has_content_length = 1;
	else if (rls_is_chunked_header(s, start, end))
		s->resp.chunked = 1;
	else if (rls_is_websocket_header(s, start, end))
		s->resp.upgrade_websocket = 1;
	return 0;
}

/*
 * The line that started at lines.line_start ended with the '\n' at nl: act on it. Returns 1
 * when the scan should stop. A global function, so that the verifier checks it once instead
 * of once for every place in the chunk where the line could have ended.
 */
__noinline int rls_line_ended(struct rls_scratch *s, __u32 nl)
{
	struct rls_line_state *ls;
	__u32 start, end;

	if (!s)
		return 1;
	ls = &s->lines;
	start = ls->line_start;
	end = nl;
	if (end > start && rls_at(s, end - 1) == '\r')
		end--;
	ls->line_start = nl + 1;
	ls->scan_pos = nl + 1;
	/* The status line was checked before the scan began. */
	if (ls->lines++ == 0)
		return 0;
	if (end == start) {
		ls->body_start = nl + 1;
		s->resp.headers_complete = 1;
		return 1;
	}
	rls_match_response_header(s, start, end);
	return ls->lines > RLS_MAX_LINES;
}

/*
 * One bpf_loop() step: look for the end of the current line in the next RLS_LINE_CHUNK bytes.
 * Returns 1 to stop.
 */
static long rls_scan_line(__u32 index, struct rls_http_scan *sc)
{
	struct rls_scratch *s = sc->s;
	struct rls_line_state *ls = &s->lines;
	__u32 from = ls->scan_pos, nl, k;

	for (k = 0; k < RLS_LINE_CHUNK; k++) {
		nl = from + k;
		if (nl >= ls->len)
			return 1; /* the header block goes on past the window */
		if (rls_at(s, nl) == '\n')
			return rls_line_ended(s, nl) ? 1 : 0;
	}
	ls->scan_pos = from + RLS_LINE_CHUNK;
	return 0;
}

/*
 * The head of a response copied into s->payload[0, len): how its body is delimited, in
 * s->resp (content_length, chunked, headers_complete) and s->lines.body_start.
 */
static __always_inline void rls_parse_response_head(struct rls_scratch *s, __u32 len)
{
	struct rls_http_scan sc = { .s = s };

	__builtin_memset(&s->resp, 0, sizeof(s->resp));
	__builtin_memset(&s->lines, 0, sizeof(s->lines));
	s->lines.len = len;
	bpf_loop(RLS_SCAN_STEPS, rls_scan_line, &sc, 0);
}

#define RLS_STATUS_LINE_MIN 12 /* "HTTP/1.1 200" */

/* 204 and 304 have no body, whatever their headers say (RFC 9112, 6.3). */
static __always_inline bool rls_status_has_no_body(const __u8 *p)
{
	return (p[9] == '2' && p[10] == '0' && p[11] == '4') ||
	       (p[9] == '3' && p[10] == '0' && p[11] == '4');
}

/* Interim (1xx) heads one segment may hold before the final one. */
#define RLS_INTERIM_MAX 2

/*
 * A 101 that switches to the WebSocket the connection's last request may have asked for
 * (rls_flow.upgrade), where the table lets one through: the head is whole and says
 * "Upgrade: websocket". Any other 1xx, a 101 to anything else among them, is interim.
 */
static __always_inline bool rls_opens_websocket(const struct rls_scratch *s, const __u8 *p,
						const struct rls_flow *flow)
{
	return p[9] == '1' && p[10] == '0' && p[11] == '1' && flow->upgrade == RLS_UPGRADE_ASKED &&
	       s->resp.headers_complete && s->resp.upgrade_websocket;
}

/*
 * The status line and headers of the response: how its body is delimited, and how many of this
 * segment's bytes are body. Interim (1xx) responses before it in the same segment are skipped
 * (an upstream may send 100 Continue and its answer together). Returns false when the segment
 * holds no final head at its start, or after its interim ones: the real one is still to come.
 */
static __always_inline bool rls_take_response_head(struct rls_ctx ctx, struct rls_scratch *s,
						   const struct rls_packet *pkt,
						   struct rls_flow *flow, __u32 *body)
{
	__u32 off = 0, len, i;
	__u8 *p = s->payload;
	bool tunnel = false;

	for (i = 0; i <= RLS_INTERIM_MAX; i++) {
		if (off > pkt->payload_len || pkt->payload_len - off < RLS_STATUS_LINE_MIN ||
		    rls_ctx_load_bytes(ctx, pkt->payload_off + off, p, RLS_STATUS_LINE_MIN))
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
		if (!rls_window_load(ctx, s, pkt->payload_off + off, len))
			return false;
		rls_parse_response_head(s, len);
		if (p[9] != '1')
			break;
		tunnel = rls_opens_websocket(s, p, flow);
		if (tunnel)
			break;
		/* An interim head: the final one may follow it in this segment. */
		if (!s->resp.headers_complete)
			return false;
		off += s->lines.body_start;
	}
	if (i > RLS_INTERIM_MAX)
		return false;
	*body = 0;
	if (tunnel) {
		/* The WebSocket's bytes are metered as a body that ends with the connection, and
		 * the client's are passed unread from its next segment (rls_segment_begin()). */
		flow->upgrade = RLS_UPGRADE_TUNNEL;
		flow->response_state = RLS_RESPONSE_UNTIL_CLOSE;
		*body = pkt->payload_len - off - s->lines.body_start;
		rls_count_packet(RLS_PKT_WEBSOCKET_TUNNEL);
		return true;
	}
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

/* "0\r\n\r\n" closes a chunked body (no trailers: the upstreams rlshape meters send none). */
static __always_inline bool rls_ends_last_chunk(struct rls_ctx ctx, const struct rls_packet *pkt)
{
	__u8 end[5];

	if (pkt->payload_len < sizeof(end) ||
	    rls_ctx_load_bytes(ctx, pkt->payload_off + pkt->payload_len - sizeof(end), end,
			       sizeof(end)))
		return false;
	return end[0] == '0' && end[1] == '\r' && end[2] == '\n' && end[3] == '\r' && end[4] == '\n';
}

#endif /* RLS_BPF_HTTP_RESPONSE_H */
