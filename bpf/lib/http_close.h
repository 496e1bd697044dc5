/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Does a refused request ask to close its connection? A client that sends "Connection:
 * close" (or speaks HTTP/1.0) expects the server to close after its response (RFC 9112 9.6),
 * so its 429 closes too, instead of keeping the connection (seqadj.h). Asked only of a
 * request a 429 could otherwise keep open, whose header block is all in the payload window:
 * its line ends are found a word at a time, and each line's name compared as two words.
 */
#ifndef RLS_BPF_HTTP_CLOSE_H
#define RLS_BPF_HTTP_CLOSE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "consts.h"
#include "scratch.h"
#include "http_request.h"
#include "word.h"

#define RLS_CONNECTION_NAME "connection:"
#define RLS_CLOSE_TOKEN     "close"

/* Eight bytes of the payload window from off (the caller keeps off in bounds). */
static __always_inline __u64 rls_window_word(const struct rls_scratch *s, __u32 off)
{
	__u64 w;

	__builtin_memcpy(&w, &s->payload[off & (RLS_PARSE_WINDOW - 1)], sizeof(w));
	return w;
}

/* w, its bytes past n dropped, is the n-byte literal lit from byte i, letters in any case. */
#define rls_word_is(w, lit, i, n)                                                          \
	((((w) & rls_word_bytes(n)) | rls_word_letters(rls_literal_word(lit, sizeof(lit) - 1, i))) == \
	 rls_literal_word(lit, sizeof(lit) - 1, i))

/* The header line at off says "Connection: close" (close its only or first token). */
static __always_inline bool rls_line_says_close(const struct rls_scratch *s, __u32 off, __u32 end)
{
	__u32 v = off + sizeof(RLS_CONNECTION_NAME) - 1;
	__u64 w;
	__u8 c;

	/* The shortest such line, "connection:close" and the byte after it, ends before end;
	 * the words read past it stay inside the window. */
	if (off + sizeof(RLS_CONNECTION_NAME RLS_CLOSE_TOKEN) > end || off > RLS_PARSE_WINDOW - 32)
		return false;
	if (!rls_word_is(rls_window_word(s, off), RLS_CONNECTION_NAME, 0, 8) ||
	    !rls_word_is(rls_window_word(s, off + 8), RLS_CONNECTION_NAME, 8, 3))
		return false;
	/* Optional whitespace, as servers take it (one or two; more is no client's). */
	if (s->payload[v & (RLS_PARSE_WINDOW - 1)] == ' ' || s->payload[v & (RLS_PARSE_WINDOW - 1)] == '\t')
		v++;
	if (s->payload[v & (RLS_PARSE_WINDOW - 1)] == ' ' || s->payload[v & (RLS_PARSE_WINDOW - 1)] == '\t')
		v++;
	w = rls_window_word(s, v);
	if (!rls_word_is(w, RLS_CLOSE_TOKEN, 0, 5))
		return false;
	c = (__u8)(w >> 40);
	return c == '\r' || c == ',' || c == ' ' || c == '\t';
}

struct rls_close_walk {
	struct rls_scratch *s; /* bpf_loop() hands its callback a pointer to the stack only */
};

/* One bpf_loop() step: the next word of the header block, and the line after a line end. */
static long rls_close_step(__u32 index, void *ctx)
{
	struct rls_scratch *s = ((struct rls_close_walk *)ctx)->s;
	struct rls_close_search *c = &s->close_search;
	__u32 p = c->pos;
	__u64 m;

	if (p + 8 > c->end || p > RLS_PARSE_WINDOW - 8)
		return 1;
	m = rls_word_has(rls_window_word(s, p), '\n');
	if (!m) {
		c->pos = p + 8;
		return 0;
	}
	p += rls_word_first(m) + 1;
	c->pos = p;
	if (rls_line_says_close(s, p, c->end)) {
		c->says_close = 1;
		return 1;
	}
	return 0;
}

/*
 * Does the request that just ended at the scan's position ask to close? Its header block must
 * be all in the window, its body of a known length: where either is not so, it is taken as
 * asking (the 429 then closes, as it always may).
 */
static __always_inline bool rls_request_says_close(struct rls_scratch *s, const struct rls_stream *st)
{
	__s32 start = (__s32)(st->request_start - (s->pkt.seq + s->seg.base));
	__u32 end = s->scan.pos;
	struct rls_close_walk walk = { .s = s };

	if (st->version_tail != RLS_HTTP_1_1 || (st->request_flags & RLS_REQ_CHUNKED))
		return true;
	if (st->request_flags & RLS_REQ_CONTENT_LENGTH) {
		if (st->content_length > end)
			return true;
		end -= (__u32)st->content_length;
	}
	if (start < 0 || (__u32)start >= end || end > RLS_PARSE_WINDOW)
		return true;
	s->close_search.pos = (__u32)start;
	s->close_search.end = end;
	s->close_search.says_close = 0;
	bpf_loop(RLS_PARSE_WINDOW, rls_close_step, &walk, 0);
	return s->close_search.says_close;
}

#endif /* RLS_BPF_HTTP_CLOSE_H */
