/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The head of an HTTP/1.x response, read from a copy of its first segment's first
 * RLS_PARSE_WINDOW bytes in per-CPU scratch memory: how its body is delimited. (Requests are
 * read as a byte stream: http_stream.h.)
 *
 * Lines are walked with bpf_loop() so the verifier checks the per-line work once instead of
 * once per possible line; every index into the copy is masked to the window.
 */
#ifndef RLS_BPF_PARSE_HTTP_H
#define RLS_BPF_PARSE_HTTP_H

#include "maps.h"

#define RLS_WINDOW_MASK (RLS_PARSE_WINDOW - 1)
#define RLS_MAX_LINES   64
#define RLS_LINE_CHUNK  256 /* bytes searched for a line end per bpf_loop() step */
#define RLS_SCAN_STEPS  (RLS_MAX_LINES + RLS_PARSE_WINDOW / RLS_LINE_CHUNK)
#define RLS_OWS_MAX     16 /* spaces we skip around a header value */

_Static_assert((RLS_PARSE_WINDOW & RLS_WINDOW_MASK) == 0, "window must be a power of two");

struct rls_http_scan {
	struct rls_scratch *s;
};

static __always_inline __u8 rls_at(const struct rls_scratch *s, __u32 i)
{
	return s->payload[i & RLS_WINDOW_MASK];
}

static __always_inline __u8 rls_lower(__u8 c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static __always_inline bool rls_is_ows(__u8 c)
{
	return c == ' ' || c == '\t';
}

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

/* A response header line: only how its body is delimited matters. */
__noinline int rls_match_response_header(struct rls_scratch *s, __u32 start, __u32 end)
{
	if (!s)
		return 0;
	if (!s->resp.has_content_length &&
	    rls_take_content_length(s, start, end, &s->resp.content_length))
		s->resp.has_content_length = 1;
	else if (rls_is_chunked_header(s, start, end))
		s->resp.chunked = 1;
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

#endif /* RLS_BPF_PARSE_HTTP_H */
