/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The client's side of an HTTP/1.1 connection, parsed as one byte stream: request line,
 * headers, a content-length or chunked body, and the body's top-level JSON "model" (read by
 * json_scan.h; which header a line is, by header_names.h), whatever
 * the segments the bytes arrived in. The parser's state lives in the connection's flow
 * (struct rls_stream), and the part of a header value a segment's end cut in rls_cut_values
 * (rls_value_resume()), so a request split at any byte reads the same as one in one segment,
 * and several requests in one segment are each found.
 *
 * The scan runs over the segment's bytes copied into the payload window (window.h), through
 * the context layer, so that it serves either hook; one bpf_loop() step per byte or per run
 * of bytes that cannot matter (a header value nobody asked for, the inside of a JSON string, a
 * body past its model). It stops where the program must act:
 * a request ends (its last byte is here: decide now), or the bytes are not HTTP/1.1 a server
 * would read as this parser does.
 */
#ifndef RLS_BPF_HTTP_REQUEST_H
#define RLS_BPF_HTTP_REQUEST_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "hex_digit.h"
#include "key_hash.h"
#include "api_key.h"
#include "consts.h"
#include "ctx.h"
#include "flow_seen.h"
#include "scratch.h"
#include "window.h"
#include "http.h"
#include "header_names.h"
#include "json_scan.h"
#include "model_name.h"

/* Where a scan stopped: what the program must do before it goes on. */
enum rls_scan_stop {
	RLS_STOP_NEED_BYTES,    /* the segment is used up */
	RLS_STOP_REQUEST_END,   /* a request's last byte is just before scan.pos */
	RLS_STOP_BROKEN,        /* not HTTP/1.1 as a server reads it */
	RLS_STOP_HTTP2,         /* the HTTP/2 prior-knowledge preface */
};

#define RLS_METHOD_MAX    20        /* longer method tokens are not HTTP an API serves */
#define RLS_BODY_SCAN_MAX (1u << 20) /* body bytes searched for the model; past it, strictest */
#define RLS_CHUNK_DIGITS_MAX 10

/* The version at the end of a request line, as the last 8 bytes read into a u64. */
#define RLS_VERSION(a, b, c, d, e, f, g, h)                                                \
	((__u64)(a) << 56 | (__u64)(b) << 48 | (__u64)(c) << 40 | (__u64)(d) << 32 |     \
	 (__u64)(e) << 24 | (__u64)(f) << 16 | (__u64)(g) << 8 | (__u64)(h))
#define RLS_HTTP_1_1 RLS_VERSION('H', 'T', 'T', 'P', '/', '1', '.', '1')
#define RLS_HTTP_1_0 RLS_VERSION('H', 'T', 'T', 'P', '/', '1', '.', '0')
#define RLS_HTTP_2_0 RLS_VERSION('H', 'T', 'T', 'P', '/', '2', '.', '0')

struct rls_stream_ctx {
	struct rls_scratch *s;
	struct rls_stream *st;
	const struct rls_config *cfg;
};

static __always_inline bool rls_is_hex(__u8 c, __u32 *v)
{
	int d = rls_hex_digit((char)c);

	if (d < 0)
		return false;
	*v = (__u32)d;
	return true;
}

/* A new request: forget everything the last one showed. */
static __always_inline void rls_request_begin(struct rls_stream *st)
{
	st->request_flags = 0;
	st->key_rank = RLS_MAX_KEY_HEADERS;
	st->header_model_len = 0;
	st->body_model_len = 0;
	st->content_length = 0;
	st->body_left = 0;
	st->body_scanned = 0;
	st->max_tokens = 0;
	st->value_number = 0;
	st->method_len = 0;
	st->json_expect = RLS_JSON_START;
	st->json_depth = 0;
	st->json_in_string = 0;
	st->json_escaped = 0;
	st->json_key_expected = 0;
	st->json_key_len = 0;
	st->json_key_kind = RLS_JSON_KEY_OTHER;
	st->phase = RLS_PHASE_METHOD;
}

/* A global function: the hashes' rounds are verified once, not at every place a key can end. */
__noinline int rls_stream_hash_key(struct rls_scratch *s, struct rls_stream *st, __u32 off)
{
	__u32 len, words, i;
	__u64 word;

	if (!s || !st || off > 8)
		return -1;
	len = st->value_trim > off ? st->value_trim - off : 0;
	if (len == 0 || len > RLS_API_KEY_MAX)
		return -1;
	for (i = 0; i < RLS_KEY_HASH_BUF / 8; i++)
		((__u64 *)s->key)[i] = 0;
	/*
	 * A word at a time (the last may read past value[], still inside scratch), then the
	 * bytes past the key cleared from the last word: little-endian, they are its high ones.
	 */
	words = (len + 7) / 8;
	for (i = 0; i < RLS_KEY_HASH_BUF / 8; i++) {
		if (i >= words)
			break;
		__builtin_memcpy(&word, s->value + ((off + i * 8) & (RLS_STREAM_KEY_MAX - 1)), 8);
		((__u64 *)s->key)[i] = word;
	}
	if (len % 8)
		((__u64 *)s->key)[(len / 8) & (RLS_KEY_HASH_BUF / 8 - 1)] &=
			(1ull << ((len % 8) * 8)) - 1;
	return rls_api_key_hash(s, st, len);
}

/* Does the value start with "Bearer " (the scheme is case-insensitive, RFC 9110 11.1)? */
static __always_inline bool rls_value_is_bearer(const struct rls_scratch *s,
						const struct rls_stream *st)
{
	const char *scheme = "bearer ";
	__u32 k;

	if (st->value_trim <= 7)
		return false;
	for (k = 0; k < 7; k++)
		if (rls_lower(s->value[k]) != (__u8)scheme[k])
			return false;
	return true;
}

/*
 * The line of a key header has ended: the key is the request's if it is well formed. Its text
 * was read into scratch (s->value), never into the flow: a dump of the pinned rls_flows shows
 * a key's keyed hash, never a key that works (README, "Who is asking"). Scratch is not wiped
 * after it: its payload window holds the same bytes until the CPU's next packet.
 */
static __always_inline void rls_key_line_done(struct rls_stream_ctx *c)
{
	struct rls_stream *st = c->st;
	bool bearer = c->cfg->key_headers[st->line_rank & (RLS_MAX_KEY_HEADERS - 1)].bearer;

	if (st->value_len != 0xffff && (!bearer || rls_value_is_bearer(c->s, st)) &&
	    !rls_stream_hash_key(c->s, st, bearer ? 7 : 0)) {
		st->key_rank = st->line_rank;
		st->request_flags |= RLS_REQ_HAS_KEY;
	}
}

/*
 * "transfer-encoding: ..., chunked": the body is chunked. Anything else in a request is
 * refused by a conforming server (RFC 9112, 6.3), so the parser calls it broken too.
 */
static __always_inline int rls_transfer_encoding_done(const struct rls_scratch *s,
						     struct rls_stream *st)
{
	const char *chunked = "chunked";
	__u32 n = st->value_trim, k;
	__u8 before;

	if (st->value_len == 0xffff || n < 7)
		return -1;
	for (k = 0; k < 7; k++)
		if (rls_lower(s->value[(n - 7 + k) & (RLS_STREAM_KEY_MAX - 1)]) != (__u8)chunked[k])
			return -1;
	/* "chunked" alone, or the last of a list: ",chunked" or ", chunked". */
	if (n > 7) {
		before = s->value[(n - 8) & (RLS_STREAM_KEY_MAX - 1)];
		if (before == ' ' && n > 8)
			before = s->value[(n - 9) & (RLS_STREAM_KEY_MAX - 1)];
		if (before != ',')
			return -1;
	}
	st->request_flags |= RLS_REQ_CHUNKED;
	return 0;
}

/* A content-length's value: digits only (RFC 9110 8.6); -1 for anything else. */
static __always_inline int rls_content_length_value(const struct rls_scratch *s,
						    const struct rls_stream *st, __u64 *out)
{
	__u32 n = st->value_trim, k;
	__u64 v = 0;
	__u8 b;

	if (st->value_len == 0xffff || n == 0 || n > 13) /* 13 digits: past RLS_LENGTH_MAX */
		return -1;
	for (k = 0; k < 13; k++) {
		if (k >= n)
			break;
		b = s->value[k];
		if (b < '0' || b > '9')
			return -1;
		v = v * 10 + (b - '0');
	}
	if (v >= RLS_LENGTH_MAX)
		return -1;
	*out = v;
	return 0;
}

/*
 * "connection: ..., close, ...": the client closes after the answer (RFC 9112 9.6), and so
 * must a 429 (rls_request_says_close()). "close" counts as a whole word anywhere in the value,
 * in any case, between commas, spaces or tabs, so that it is found as an option of any list
 * and taken as said where the list is malformed. A value too long to look through is taken as
 * saying it too: closing is the side a 429 may always take.
 */
#define RLS_CONNECTION_VALUE_MAX 64

static __always_inline bool rls_option_edge(__u8 b)
{
	return b == ',' || b == ' ' || b == '\t';
}

/*
 * The rule, over the n bytes of a value at text[from] (every index masked by mask; eight
 * bytes past any index stay in bounds). Inline in both readers of a value below.
 */
static __always_inline bool rls_value_says_close(const __u8 *text, __u32 mask, __u32 from,
						 __u32 n)
{
	__u64 close = rls_literal_word("close", 5, 0), w;
	__u32 k;

	if (n > RLS_CONNECTION_VALUE_MAX)
		return true;
	for (k = 0; k < RLS_CONNECTION_VALUE_MAX; k++) {
		if (k + 5 > n)
			break;
		__builtin_memcpy(&w, &text[(from + k) & mask], 8);
		/* Letters folded to lower case by |0x20, which makes no other byte one of them. */
		if (((w | rls_word_letters(close)) & rls_word_bytes(5)) != close)
			continue;
		if ((k > 0 && !rls_option_edge(text[(from + k - 1) & mask])) ||
		    (k + 5 < n && !rls_option_edge(text[(from + k + 5) & mask])))
			continue;
		return true;
	}
	return false;
}

/*
 * A connection line read a byte at a time (rls_take_value_run(): its whitespace runs made one
 * space) has ended. A global function: verified once.
 */
__noinline int rls_connection_done(const struct rls_scratch *s, struct rls_stream *st)
{
	if (!s || !st)
		return 0;
	if (st->value_len == 0xffff ||
	    rls_value_says_close(s->value, RLS_STREAM_KEY_MAX - 1, 0, st->value_trim))
		st->request_flags |= RLS_REQ_SAYS_CLOSE;
	return 0;
}

/* The end of a header line; returns -1 when the request is broken. */
static __always_inline int rls_header_line_done(struct rls_stream_ctx *c)
{
	struct rls_stream *st = c->st;

	switch (st->header_kind) {
	case RLS_HDR_KEY:
		rls_key_line_done(c);
		break;
	case RLS_HDR_MODEL: {
		if (st->value_len == 0xffff || st->value_trim >= RLS_MODEL_NAME_MAX) {
			st->request_flags |= RLS_REQ_MODEL_AMBIGUOUS; /* longer than any model name */
			break;
		}
		if (!st->value_trim)
			break;
		rls_copy_name(st->header_model, (const char *)c->s->value, st->value_trim);
		st->header_model_len = (__u8)st->value_trim;
		st->request_flags |= RLS_REQ_HAS_HEADER_MODEL;
		break;
	}
	case RLS_HDR_CONTENT_LENGTH: {
		__u64 v;

		/* Digits only, and two content-lengths must agree: a server refuses anything else. */
		if (rls_content_length_value(c->s, st, &v))
			return -1;
		if ((st->request_flags & RLS_REQ_CONTENT_LENGTH) && st->content_length != v)
			return -1;
		st->content_length = v;
		st->request_flags |= RLS_REQ_CONTENT_LENGTH;
		break;
	}
	case RLS_HDR_TRANSFER_ENCODING:
		return rls_transfer_encoding_done(c->s, st);
	case RLS_HDR_CONNECTION:
		rls_connection_done(c->s, st);
		break;
	}
	return 0;
}

/* Bytes that can wait for the line's end: skip to the '\n' (not past it). */
static __always_inline void rls_skip_to_line_end(struct rls_scratch *s, struct rls_scan *sc)
{
	sc->pos = (__u32)rls_find_run_end(s, sc->pos, sc->len, '\n', '\n');
}

#define RLS_VALUE_STEPS 64 /* words or bytes of a value one run takes at most */

/*
 * A key or model value, a run at a time up to the line's end (not past it): leading
 * whitespace dropped, and every run of whitespace inside kept as one space, so that any
 * amount of it around a value or after "Bearer" fits; whether it is well formed is judged at
 * the line's end. CR counts as whitespace (it ends the line before the LF). Inline in the
 * scan's step, its one caller: a call and its return cost up to 10 ns, paid on every
 * key, model and framing line, and inline it costs the verifier less than 2 % more.
 */
static __always_inline int rls_take_value_run(struct rls_scratch *s, struct rls_stream *st)
{
	struct rls_scan *sc;
	__u32 k, n, d;
	__u64 w, m;
	__u8 b;

	if (!s || !st)
		return 0;
	sc = &s->scan;
	/*
	 * The value's length stays in map memory, not in a register: the verifier does not
	 * follow it there, so the paths through a byte meet again at the next one.
	 */
	for (k = 0; k < RLS_VALUE_STEPS; k++) {
		if (sc->pos >= sc->len)
			break;
		n = st->value_len;
		/*
		 * The bytes before the word's first whitespace, CR, LF or other control byte (all
		 * eight where it has none: what a key or a model name is made of) are taken in
		 * one store of the whole word. The bytes past the value's length are never read;
		 * and a value's last bytes are read back as a word (a key's hash, a model's name),
		 * as they were stored (model_name.h). Where the value would reach its limit, the
		 * byte at a time way below says so.
		 */
		if (sc->len - sc->pos >= 8 && n < RLS_STREAM_KEY_MAX - 8) {
			w = rls_word_at(s, sc->pos);
			m = rls_word_has_below(w, '!');
			d = m ? rls_word_first(m) : 8;
			if (d) {
				barrier_var(n); /* keeps the mask below, which the verifier needs */
				*(__u64 *)(void *)&s->value[n & (RLS_STREAM_KEY_MAX - 1)] = w;
				st->value_len = n + d;
				st->value_trim = n + d;
				sc->pos += d;
				continue;
			}
		}
		b = rls_at(s, sc->pos);
		if (b == '\n')
			break;
		sc->pos++;
		if (st->value_len == 0xffff)
			continue;
		if (rls_is_ows(b) || b == '\r') {
			if (st->value_len == 0 ||
			    s->value[(st->value_len - 1) & (RLS_STREAM_KEY_MAX - 1)] == ' ')
				continue;
			b = ' ';
		}
		if (st->value_len >= RLS_STREAM_KEY_MAX - 1) {
			st->value_len = 0xffff; /* longer than any key or model: not taken */
			continue;
		}
		s->value[st->value_len & (RLS_STREAM_KEY_MAX - 1)] = b;
		st->value_len++;
		if (b != ' ')
			st->value_trim = st->value_len;
	}
	return 0;
}

#define RLS_LINES_MAX 12 /* header lines one step skips at most */

/*
 * A connection line whole in the payload window, its value from after the colon to the line
 * feed at lf: where it is, for rls_request_says_close() to read if a 429 comes (an admitted
 * request never needs it). A second one is taken as saying close.
 */
static __always_inline void rls_note_connection_line(struct rls_scratch *s, struct rls_stream *st,
						     __u32 from, __u32 lf)
{
	if (lf > from && rls_at(s, lf - 1) == '\r')
		lf--; /* the CR is not the value's */
	if (st->request_flags & RLS_REQ_CONNECTION_SEEN)
		st->request_flags |= RLS_REQ_SAYS_CLOSE;
	st->request_flags |= RLS_REQ_CONNECTION_SEEN;
	st->connection_seq = s->pkt.seq + s->seg.base + from;
	st->connection_len = (__u16)(lf - from);
	st->header_kind = RLS_HDR_CONNECTION; /* for an obs-fold after it */
}

/*
 * At a header line's start: lines whose name no header asked about (rls_names_matching())
 * are skipped whole, up to RLS_LINES_MAX of them in one step, their colon and their end found
 * a word at a time. Stops at the head's empty line, an obs-fold, a line that matters (its
 * name read to the colon, as the byte-at-a-time way would leave it: RLS_PHASE_NAME), a line
 * with no colon within a run (left to the byte-at-a-time way), or a line that goes past the
 * window (skipped as far as it is here: RLS_PHASE_VALUE).
 * A global function: verified once, with the positions in scratch memory
 * (rls_word_search()).
 */
__noinline int rls_skip_other_lines(struct rls_scratch *s, struct rls_stream *st,
				    const struct rls_config *cfg)
{
	volatile __u32 *pos, *at, *end;
	__u32 l, p, c;
	__u8 b, cand;

	if (!s || !st || !cfg)
		return 0;
	pos = &s->scan.pos;
	at = &s->scan.at;
	end = &s->scan.end;
	for (l = 0; l < RLS_LINES_MAX; l++) {
		p = *pos;
		if (p >= s->scan.len)
			break;
		b = rls_at(s, p);
		if (b == '\r' || b == '\n' || rls_is_ows(b))
			break;
		/* The name, to its colon. */
		*at = p;
		*end = s->scan.len;
		rls_word_search(s, at, end, ':', '\n');
		c = *at;
		if (c >= *end || rls_at(s, c) != ':')
			break;
		cand = rls_names_matching(s, cfg, p, c - p);
		if (cand && cand != RLS_NAME_CONNECTION) {
			/* A line that matters: its name read, as far as its colon. */
			st->name_len = c - p;
			st->name_cand = cand;
			st->phase = RLS_PHASE_NAME;
			*pos = c;
			break;
		}
		/* Nobody's line, or connection, whose value is looked at whole: to its end. */
		st->header_kind = RLS_HDR_OTHER;
		*at = c + 1;
		rls_word_search(s, at, end, '\n', '\n');
		if (*at >= *end || rls_at(s, *at) != '\n') {
			/* A connection line past the window is taken as saying close. */
			if (cand)
				st->request_flags |= RLS_REQ_SAYS_CLOSE;
			*pos = *at < *end ? *at : *end;
			st->phase = RLS_PHASE_VALUE;
			break;
		}
		if (cand)
			rls_note_connection_line(s, st, c + 1, *at);
		*pos = *at + 1;
	}
	return 0;
}

/* The head's empty line: how the body is framed, or the request ends here. */
static __always_inline int rls_head_done(struct rls_stream *st)
{
	if (st->request_flags & RLS_REQ_CHUNKED) {
		st->phase = RLS_PHASE_CHUNK_SIZE;
		st->chunk_digits = 0;
		st->body_left = 0;
		return RLS_STOP_NEED_BYTES;
	}
	if (st->content_length) {
		st->phase = RLS_PHASE_BODY;
		st->body_left = st->content_length;
		return RLS_STOP_NEED_BYTES;
	}
	st->phase = RLS_PHASE_IDLE;
	return RLS_STOP_REQUEST_END;
}

/*
 * Body bytes (of a content-length body or a chunk): through the JSON scan while it still
 * matters, skipped in one go once it does not. Returns true when the body or chunk is over.
 */
#define RLS_JSON_STEPS 4 /* calls of the JSON scan one scan step makes at most */

static __always_inline bool rls_body_bytes(struct rls_stream_ctx *c, struct rls_scan *sc)
{
	struct rls_stream *st = c->st;
	volatile __u32 *pos = &sc->pos;
	volatile __u64 *left = &st->body_left, *scanned = &st->body_scanned;
	__u64 avail, n;
	__u32 k;

	/*
	 * Up to RLS_JSON_STEPS calls of the JSON scan (rls_json_scan(): up to RLS_JSON_TOKENS
	 * tokens each), in one loop rather than a step each. What one call leaves for the next
	 * is read back from memory (volatile), so that the verifier's paths meet again.
	 */
	for (k = 0; k < RLS_JSON_STEPS; k++) {
		avail = sc->len - *pos;
		n = *left < avail ? *left : avail;
		if (!n)
			break;
		if (rls_json_scanning(st) && *scanned >= RLS_BODY_SCAN_MAX)
			rls_json_give_up(st, RLS_REQ_BODY_UNSEEN);
		if (rls_json_scanning(st))
			n = (__u32)rls_json_scan(c->s, st, (__u32)n);
		*pos += (__u32)n;
		*left -= n;
		*scanned += n;
		if (!rls_json_scanning(st))
			break;
	}
	return *left == 0;
}

/* One step of the scan: a byte or a run of bytes. Returns 1 to stop (sc->stop says why). */
static long rls_stream_step(__u32 index, struct rls_stream_ctx *c)
{
	struct rls_scratch *s = c->s;
	struct rls_stream *st = c->st;
	struct rls_scan *sc = &s->scan;
	__u32 digit;
	__u8 b;

	if (sc->pos >= sc->len) {
		sc->stop = RLS_STOP_NEED_BYTES;
		return 1;
	}
	b = rls_at(s, sc->pos);
	switch (st->phase) {
	case RLS_PHASE_IDLE:
		if (b == '\r' || b == '\n') {
			sc->pos++;
			return 0;
		}
		/* The XDP program ends the last response before it decides this request. */
		rls_request_begin(st);
		st->request_start = s->pkt.seq + s->seg.base + sc->pos;
		s->seg.started = 1;
		__attribute__((fallthrough)); /* the method, in the same step */
	case RLS_PHASE_METHOD: {
		__u32 k;

		for (k = 0; k < RLS_METHOD_MAX + 1; k++) {
			if (sc->pos >= sc->len)
				return 0;
			b = rls_at(s, sc->pos);
			sc->pos++;
			if (b == ' ')
				break;
			if (b < 'A' || b > 'Z' || st->method_len >= RLS_METHOD_MAX)
				goto broken;
			st->value_number = st->value_number << 8 | b;
			st->method_len++;
		}
		if (b != ' ')
			goto broken;
		if (st->method_len == 3 && st->value_number == RLS_VERSION(0, 0, 0, 0, 0, 'P', 'R', 'I'))
			st->request_flags |= RLS_REQ_PRI;
		if (st->method_len == 3 && st->value_number == RLS_VERSION(0, 0, 0, 0, 0, 'G', 'E', 'T'))
			st->request_flags |= RLS_REQ_GET;
		st->version_tail = 0;
		st->phase = RLS_PHASE_TARGET;
	}
		__attribute__((fallthrough)); /* the target, in the same step */
	case RLS_PHASE_TARGET: {
		__u32 from = sc->pos, start, k;
		__u64 w;

		rls_skip_to_line_end(s, sc);
		/*
		 * Only the line's last 8 bytes (CR aside) can be its version: read as one word
		 * where the run holds 9 bytes and no CR but the last (the first read byte highest,
		 * as RLS_VERSION() has it); else a byte at a time, which goes on from a run before.
		 */
		w = sc->pos - from >= 9 ? rls_word_at(s, sc->pos - 9) : 0;
		if (sc->pos - from >= 9 && !rls_word_has(w, '\r')) {
			if (rls_at(s, sc->pos - 1) != '\r')
				w = rls_word_at(s, sc->pos - 8);
			st->version_tail = __builtin_bswap64(w);
		} else {
			start = sc->pos - from > 9 ? sc->pos - 9 : from;
			for (k = 0; k < 9; k++) {
				__u8 v;

				if (start + k >= sc->pos)
					break;
				v = rls_at(s, start + k);
				if (v != '\r')
					st->version_tail = st->version_tail << 8 | v;
			}
		}
		/* A run ends at the line's end, the segment's, or after RLS_RUN_MAX bytes. */
		if (sc->pos >= sc->len || rls_at(s, sc->pos) != '\n')
			return 0;
		sc->pos++; /* the '\n' */
		if ((st->request_flags & RLS_REQ_PRI) && st->version_tail == RLS_HTTP_2_0) {
			sc->stop = RLS_STOP_HTTP2;
			return 1;
		}
		if (st->version_tail != RLS_HTTP_1_1 && st->version_tail != RLS_HTTP_1_0)
			goto broken;
		st->header_kind = RLS_HDR_OTHER;
		st->phase = RLS_PHASE_LINE_START;
		if (sc->pos >= sc->len)
			return 0;
		b = rls_at(s, sc->pos);
	}
		__attribute__((fallthrough)); /* the first header line, in the same step */
	case RLS_PHASE_LINE_START:
		if (b != '\r' && b != '\n' && !rls_is_ows(b)) {
			__u32 from = sc->pos;

			rls_skip_other_lines(s, st, c->cfg);
			if (st->phase == RLS_PHASE_NAME)
				goto name; /* its colon, in the same step */
			if (sc->pos >= sc->len || st->phase != RLS_PHASE_LINE_START)
				return 0;
			b = rls_at(s, sc->pos);
			/* RLS_LINES_MAX lines skipped, and another begins: the next step goes on
			 * skipping a word at a time, rather than this one a byte at a time. */
			if (sc->pos != from && b != '\r' && b != '\n' && !rls_is_ows(b))
				return 0;
		}
		if (b == '\r') {
			/* A CR and the LF after it, in the same step. */
			sc->pos++;
			if (sc->pos >= sc->len || rls_at(s, sc->pos) != '\n')
				return 0;
			b = '\n';
		}
		if (b == '\n') {
			sc->pos++;
			goto head_end;
		}
		if (rls_is_ows(b)) {
			/*
			 * obs-fold: the line goes on the last header's value, which a server
			 * either refuses or reads joined. A key or model so continued is not
			 * taken; a framing header so continued is refused.
			 */
			if (st->header_kind == RLS_HDR_MODEL)
				st->request_flags |= RLS_REQ_MODEL_AMBIGUOUS;
			if (st->header_kind == RLS_HDR_KEY && st->key_rank == st->line_rank)
				st->request_flags &= ~RLS_REQ_HAS_KEY;
			if (st->header_kind == RLS_HDR_CONTENT_LENGTH ||
			    st->header_kind == RLS_HDR_TRANSFER_ENCODING)
				goto broken;
			/* A connection line so continued may add "close": taken as saying it. */
			if (st->header_kind == RLS_HDR_CONNECTION)
				st->request_flags |= RLS_REQ_SAYS_CLOSE;
			st->header_kind = RLS_HDR_OTHER;
			st->phase = RLS_PHASE_VALUE;
			return 0;
		}
		st->name_len = 0;
		st->name_cand = rls_all_names(c->cfg);
		st->phase = RLS_PHASE_NAME;
		__attribute__((fallthrough)); /* the name in the same step */
	case RLS_PHASE_NAME:
name: {
		/* The whole name in one step: it is short, and each byte narrows the candidates. */
		__u32 k;

		for (k = 0; k < RLS_HEADER_NAME_MAX + 1; k++) {
			if (sc->pos >= sc->len)
				return 0;
			b = rls_at(s, sc->pos);
			sc->pos++;
			if (b == ':') {
				if (rls_name_done(st, c->cfg))
					goto broken; /* the key header twice */
				st->value_len = 0;
				st->value_trim = 0;
				st->phase = RLS_PHASE_VALUE;
				goto value; /* in the same step */
			}
			if (b == '\n')
				goto broken; /* a header line without a colon */
			st->name_cand = rls_narrow_names(c->cfg, st->name_cand, st->name_len,
							 rls_lower(b));
			st->name_len++;
			/* No header asked about has this name: the rest of the line is skipped a
			 * run at a time (a line without a colon is then the upstream's to refuse). */
			if (!st->name_cand)
				break;
		}
		st->header_kind = RLS_HDR_OTHER;
		st->phase = RLS_PHASE_VALUE;
		/* A line nobody asked about: skipped in the same step, to its end if it is here. */
		rls_skip_to_line_end(s, sc);
		if (sc->pos < sc->len && rls_at(s, sc->pos) == '\n') {
			sc->pos++;
			st->phase = RLS_PHASE_LINE_START;
		}
		return 0;
	}
	case RLS_PHASE_VALUE:
value:
		if (st->header_kind == RLS_HDR_OTHER)
			rls_skip_to_line_end(s, sc);
		else
			rls_take_value_run(s, st);
		/* A value longer than one run goes on in the next step. */
		if (sc->pos >= sc->len || rls_at(s, sc->pos) != '\n')
			return 0;
		sc->pos++;
		if (rls_header_line_done(c))
			goto broken;
		st->phase = RLS_PHASE_LINE_START;
		/*
		 * The lines after it that no header asked about, and the head's end where it
		 * follows, in the same step: a step costs a call and its return. A line that
		 * matters, an obs-fold or a line end not all here is the next step's.
		 */
		if (sc->pos >= sc->len)
			return 0;
		b = rls_at(s, sc->pos);
		if (b != '\r' && b != '\n' && !rls_is_ows(b)) {
			rls_skip_other_lines(s, st, c->cfg);
			if (st->phase != RLS_PHASE_LINE_START || sc->pos >= sc->len)
				return 0;
			b = rls_at(s, sc->pos);
		}
		if (b == '\r' && sc->pos + 1 < sc->len && rls_at(s, sc->pos + 1) == '\n') {
			sc->pos += 2;
			goto head_end;
		}
		if (b != '\n')
			return 0;
		sc->pos++;
head_end:
		/* The head's empty line, read: how the body is framed, or the request ends. */
		sc->stop = rls_head_done(st);
		if (st->phase == RLS_PHASE_BODY && sc->pos < sc->len)
			goto body; /* its first bytes, in the same step */
		return sc->stop != RLS_STOP_NEED_BYTES;
	case RLS_PHASE_BODY:
body:
		if (!rls_body_bytes(c, sc))
			return 0;
		st->phase = RLS_PHASE_IDLE;
		sc->stop = RLS_STOP_REQUEST_END;
		return 1;
	case RLS_PHASE_CHUNK_SIZE:
		sc->pos++;
		if (rls_is_hex(b, &digit)) {
			if (st->chunk_digits >= RLS_CHUNK_DIGITS_MAX)
				goto broken;
			st->chunk_digits++;
			st->body_left = st->body_left * 16 + digit;
			if (st->body_left >= RLS_LENGTH_MAX)
				goto broken;
			return 0;
		}
		if (b == '\r')
			return 0;
		if (b == ';' || rls_is_ows(b)) {
			st->phase = RLS_PHASE_CHUNK_EXT;
			return 0;
		}
		if (b != '\n')
			goto broken;
		goto chunk_size_done;
	case RLS_PHASE_CHUNK_EXT:
		/* Extensions are not body: whatever they hold is skipped, never scanned. */
		rls_skip_to_line_end(s, sc);
		if (sc->pos >= sc->len || rls_at(s, sc->pos) != '\n')
			return 0;
		sc->pos++;
		goto chunk_size_done;
	case RLS_PHASE_CHUNK_DATA:
		if (rls_body_bytes(c, sc))
			st->phase = RLS_PHASE_CHUNK_END;
		return 0;
	case RLS_PHASE_CHUNK_END:
		sc->pos++;
		if (b == '\r')
			return 0;
		if (b != '\n')
			goto broken;
		st->phase = RLS_PHASE_CHUNK_SIZE;
		st->chunk_digits = 0;
		st->body_left = 0;
		return 0;
	case RLS_PHASE_TRAILER_START:
		sc->pos++;
		if (b == '\r')
			return 0;
		if (b == '\n') {
			st->phase = RLS_PHASE_IDLE;
			sc->stop = RLS_STOP_REQUEST_END;
			return 1;
		}
		st->phase = RLS_PHASE_TRAILER;
		return 0;
	case RLS_PHASE_TRAILER:
		rls_skip_to_line_end(s, sc);
		if (sc->pos >= sc->len || rls_at(s, sc->pos) != '\n')
			return 0;
		sc->pos++;
		st->phase = RLS_PHASE_TRAILER_START;
		return 0;
	case RLS_PHASE_TUNNEL:
		sc->pos = sc->len;
		return 0;
	default:
		goto broken;
	}

chunk_size_done:
	if (st->chunk_digits == 0)
		goto broken;
	st->phase = st->body_left ? RLS_PHASE_CHUNK_DATA : RLS_PHASE_TRAILER_START;
	return 0;
broken:
	st->phase = RLS_PHASE_BROKEN;
	sc->stop = RLS_STOP_BROKEN;
	return 1;
}

/*
 * A segment's scan begins offset bytes into its payload (where its unread bytes start), its
 * verdict pass (the hook's) unless a request in it says otherwise. The client spoke now: the
 * daemon removes flows gone silent for minutes, so the clock's last tick will do, and costs
 * less than reading the clock. Once a tick is enough: the coarse clock moves only when
 * jiffies do, and reading jiffies is a load (the verifier inlines bpf_jiffies64()), where
 * the coarse clock is a helper call and two returns. A connection
 * answered again and again (a client hammering a spent key) reads it once a tick.
 */
static __always_inline void rls_segment_begin(struct rls_scratch *s, struct rls_flow *flow,
					      __u32 offset, int pass)
{
	s->seg.base = offset;
	s->seg.from = offset;
	s->seg.total = s->pkt.payload_len;
	s->seg.action = pass;
	s->seg.forgotten = 0;
	s->seg.started = 0;
	s->seg.requests = 0;
	/* The upstream answered the connection's WebSocket upgrade with 101 (http_response.h):
	 * what the client sends after that request is the WebSocket's, not HTTP. */
	if (flow->upgrade == RLS_UPGRADE_TUNNEL && flow->stream.phase == RLS_PHASE_IDLE)
		flow->stream.phase = RLS_PHASE_TUNNEL;
	rls_flow_seen(flow);
}

/* Is a header value the parser reads cut here, its bytes so far in s->value? */
static __always_inline bool rls_value_cut(const struct rls_stream *st)
{
	return st->phase == RLS_PHASE_VALUE && st->header_kind != RLS_HDR_OTHER &&
	       st->value_len != 0 && st->value_len != 0xffff;
}

/*
 * A header value the last segment's end cut: back into scratch to go on with, and out of
 * rls_cut_values. False where it is gone (nothing evicts it; the daemon's pass over a port
 * pair just freed may remove it, user/flows.c): the caller resets the connection. Its bytes
 * cannot be read whole any more, and the rest passed unread would let a request reach the
 * upstream with a key or a length nobody here saw.
 */
static __always_inline bool rls_value_resume(struct rls_scratch *s, const struct rls_stream *st)
{
	const struct rls_cut_value *cut;

	if (!rls_value_cut(st))
		return true;
	cut = bpf_map_lookup_elem(&rls_cut_values, &s->pkt.flow);
	if (!cut)
		return false;
	__builtin_memcpy(s->value, cut->text, sizeof(s->value));
	bpf_map_delete_elem(&rls_cut_values, &s->pkt.flow);
	return true;
}

/* At the end of a segment the stream goes on from, a value it cut kept for the next one;
 * false where it cannot be (the caller resets the connection, as above). */
static __always_inline bool rls_value_keep(struct rls_scratch *s, const struct rls_stream *st)
{
	if (!rls_value_cut(st))
		return true;
	return bpf_map_update_elem(&rls_cut_values, &s->pkt.flow, s->value, BPF_ANY) == 0;
}

/*
 * The segment's next window: its payload from s->seg.base on, into the payload window, under
 * either hook. False when none is left.
 */
static __always_inline bool rls_stream_load_window(struct rls_ctx ctx, struct rls_scratch *s)
{
	__u32 len = s->seg.total - s->seg.base;

	if (s->seg.base >= s->seg.total)
		return false;
	if (len > RLS_PARSE_WINDOW)
		len = RLS_PARSE_WINDOW;
	if (!rls_window_load(ctx, s, s->pkt.payload_off + s->seg.base, len))
		return false;
	s->scan.pos = 0;
	s->scan.len = len;
	return true;
}

/*
 * After an admitted request: true when the scan has read the segment's last byte, which
 * ends the segment with its verdict pass, as a round that found no more bytes would (a
 * call of the round and of a scan step, about 10 ns each, for nothing). No request has
 * begun since, so nothing else of that round's end applies.
 */
static __always_inline bool rls_segment_read_whole(struct rls_scratch *s, int pass)
{
	if (s->scan.pos < s->scan.len || s->seg.base + s->scan.len < s->seg.total)
		return false;
	s->seg.base += s->scan.len;
	s->seg.action = pass;
	return true;
}

/* Bytes one scan may take: each step takes at least one. */
#define RLS_SCAN_STEPS_MAX (RLS_PARSE_WINDOW + 8)

/* Scan s->payload[scan.pos, scan.len) until something must be done; returns the stop. */
static __always_inline __u32 rls_stream_scan(struct rls_scratch *s, struct rls_stream *st,
					     const struct rls_config *cfg)
{
	struct rls_stream_ctx c = { .s = s, .st = st, .cfg = cfg };

	s->scan.stop = RLS_STOP_NEED_BYTES;
	bpf_loop(RLS_SCAN_STEPS_MAX, rls_stream_step, &c, 0);
	return s->scan.stop;
}

/*
 * The model the request is charged to, once its last byte is here: the body's top-level
 * "model" where it has one the scan could read alone, else the model header, else none;
 * header and body must agree. Writes the name to s->model, zero padded; returns false when
 * the model is hidden (ambiguous, unreadable, or past the scanned size): the strictest one.
 */
static __always_inline bool rls_stream_model(struct rls_scratch *s, const struct rls_stream *st,
					     __u32 *len)
{
	__u32 flags = st->request_flags, k;
	bool body = (flags & RLS_REQ_CHUNKED) || st->content_length;
	const char *name;

	*len = 0;
	for (k = 0; k < RLS_MODEL_NAME_MAX / 8; k++)
		((__u64 *)s->model.name)[k] = 0;
	if (flags & (RLS_REQ_MODEL_AMBIGUOUS | RLS_REQ_BODY_UNSEEN))
		return false;
	if (body && !(flags & RLS_REQ_JSON_DONE))
		return false; /* a body that is not a whole JSON object */
	if (flags & RLS_REQ_HAS_BODY_MODEL) {
		if ((flags & RLS_REQ_HAS_HEADER_MODEL) &&
		    (st->header_model_len != st->body_model_len))
			return false;
		if ((flags & RLS_REQ_HAS_HEADER_MODEL) &&
		    !rls_same_name(st->header_model, st->body_model, st->body_model_len))
			return false;
		name = st->body_model;
		*len = st->body_model_len;
	} else if (flags & RLS_REQ_HAS_HEADER_MODEL) {
		name = st->header_model;
		*len = st->header_model_len;
	} else {
		return true; /* no model named: the tier's "*" */
	}
	rls_copy_name(s->model.name, name, *len);
	return true;
}

/*
 * Does the request that just ended ask to close its connection? A client that sends
 * "Connection: close" or speaks HTTP/1.0 expects the server to close after its response
 * (RFC 9112 9.6), so its 429 closes too instead of keeping the connection (seqadj.h). A
 * chunked body is taken as asking too: a 429 keeps only a connection whose refused request
 * had a body of a known length.
 */
/*
 * The value of the request's connection line, noted by rls_note_connection_line(), read where
 * it still is in the payload window; gone from it (its window was not the request's last), it
 * is taken as saying close. A global function: verified once.
 */
__noinline int rls_noted_connection_says_close(struct rls_scratch *s, const struct rls_stream *st)
{
	__u32 from;

	if (!s || !st)
		return 1;
	from = st->connection_seq - (s->pkt.seq + s->seg.base);
	if (from >= s->scan.len || st->connection_len > s->scan.len - from)
		return 1;
	return rls_value_says_close(s->payload, RLS_WINDOW_MASK, from, st->connection_len);
}

static __always_inline bool rls_request_says_close(struct rls_scratch *s,
						   const struct rls_stream *st)
{
	if (st->version_tail != RLS_HTTP_1_1 ||
	    (st->request_flags & (RLS_REQ_CHUNKED | RLS_REQ_SAYS_CLOSE)))
		return true;
	return (st->request_flags & RLS_REQ_CONNECTION_SEEN) &&
	       rls_noted_connection_says_close(s, st);
}

#endif /* RLS_BPF_HTTP_REQUEST_H */
