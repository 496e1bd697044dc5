/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The request body's JSON, scanned as it streams by for two top-level keys: "model" (the model
 * the request is charged to) and "max_tokens" / "max_completion_tokens" (how long its answer
 * may be), each in any case, as Go's encoding/json reads them. Nothing else is parsed: outside
 * the top-level object's keys only nesting and where strings end are followed. Whatever an
 * upstream's JSON parser could read otherwise (a key with an escape, a second "model", a
 * model that is not a plain string) makes the model hidden: the strictest; and a max_tokens
 * so read is held at its most (RLS_REQ_MAX_TOKENS_HIDDEN). The scan's state is the
 * connection's (struct rls_stream).
 */
#ifndef RLS_BPF_JSON_SCAN_H
#define RLS_BPF_JSON_SCAN_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "consts.h"
#include "scratch.h"
#include "window.h"
#include "word.h"
#include "model_name.h"

static __always_inline bool rls_json_ws(__u8 c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Whatever an upstream's JSON parser could read otherwise makes the model the strictest. */
static __always_inline void rls_json_give_up(struct rls_stream *st, __u32 why)
{
	st->request_flags |= why;
}

static __always_inline bool rls_json_scanning(const struct rls_stream *st)
{
	return !(st->request_flags &
		 (RLS_REQ_JSON_DONE | RLS_REQ_MODEL_AMBIGUOUS | RLS_REQ_BODY_UNSEEN));
}

#define RLS_JSON_MODEL_KEY       "model"
#define RLS_JSON_MAX_TOKENS_KEY  "max_tokens"
#define RLS_JSON_MAX_COMPL_KEY   "max_completion_tokens"

/*
 * Bytes i to i + 7 of key, its letters in lower case, against those of lit: nonzero where
 * they differ. In any case: Go's encoding/json (a Go upstream's decoder) takes "Model" or
 * "MAX_TOKENS" for the field, where Python's json sees another key.
 */
static __always_inline __u64 rls_json_key_word_diff(const __u8 *key, const char *lit,
						    __u32 lit_len, __u32 i)
{
	__u64 w;

	if (i >= lit_len)
		return 0;
	__builtin_memcpy(&w, key + i, 8);
	return (rls_word_lower(w) & rls_word_bytes(lit_len - i)) ^
	       rls_literal_word(lit, lit_len, i);
}

/* Does the key at key, read a word at a time, spell lit (at most 24 bytes) in any case? */
static __always_inline bool rls_json_key_spells(const __u8 *key, const char *lit, __u32 lit_len)
{
	return !(rls_json_key_word_diff(key, lit, lit_len, 0) |
		 rls_json_key_word_diff(key, lit, lit_len, 8) |
		 rls_json_key_word_diff(key, lit, lit_len, 16));
}

#define RLS_JSON_KEY_SPELLS(key, lit) rls_json_key_spells(key, lit, sizeof(lit) - 1)

/*
 * What an n-byte top-level key is. key is the window (the key whole in it) or the stream's
 * copy: the words read past n are masked off, and stay inside scratch or the stream. Told by
 * its length first: most keys are no key's length, and are not read at all.
 */
static __always_inline __u8 rls_json_key_kind(const __u8 *key, __u32 n)
{
	switch (n) {
	case sizeof(RLS_JSON_MODEL_KEY) - 1:
		if (RLS_JSON_KEY_SPELLS(key, RLS_JSON_MODEL_KEY))
			return RLS_JSON_KEY_MODEL;
		break;
	case sizeof(RLS_JSON_MAX_TOKENS_KEY) - 1:
		if (RLS_JSON_KEY_SPELLS(key, RLS_JSON_MAX_TOKENS_KEY))
			return RLS_JSON_KEY_MAX_TOKENS;
		break;
	case sizeof(RLS_JSON_MAX_COMPL_KEY) - 1:
		if (RLS_JSON_KEY_SPELLS(key, RLS_JSON_MAX_COMPL_KEY))
			return RLS_JSON_KEY_MAX_TOKENS;
		break;
	}
	return RLS_JSON_KEY_OTHER;
}

/*
 * Can the n-byte key at key be max_tokens or max_completion_tokens to Go's encoding/json,
 * which folds the Kelvin sign (3 bytes) into k and the long s (2 bytes) into s? Taken so where
 * it has a byte past ASCII and the length of one of them with either or both folded. ("model"
 * has neither letter.) Read as rls_json_key_kind() reads.
 */
static __always_inline bool rls_json_key_may_fold(const __u8 *key, __u32 n)
{
	const __u32 tokens = sizeof(RLS_JSON_MAX_TOKENS_KEY) - 1;
	const __u32 completion = sizeof(RLS_JSON_MAX_COMPL_KEY) - 1;
	__u64 w, high = 0;
	__u32 i;

	/* One to three bytes longer: a Kelvin sign adds two, a long s one. */
	if (!((n > tokens && n <= tokens + 3) || (n > completion && n <= completion + 3)))
		return false;
#pragma clang loop unroll(full)
	for (i = 0; i < completion + 3; i += 8) {
		__builtin_memcpy(&w, key + i, 8);
		if (i < n)
			high |= w & rls_word_bytes(n - i);
	}
	return high & RLS_WORD_HIGHS;
}

/*
 * A top-level key read whole: what it is, and whether a parser may take it for max_tokens
 * where this one does not (then the answer's length is not known: RLS_REQ_MAX_TOKENS_HIDDEN).
 */
static __always_inline void rls_json_key_read(struct rls_stream *st, const __u8 *key, __u32 n)
{
	st->json_key_kind = rls_json_key_kind(key, n);
	if (st->json_key_kind == RLS_JSON_KEY_OTHER && rls_json_key_may_fold(key, n))
		st->request_flags |= RLS_REQ_MAX_TOKENS_HIDDEN;
}

/* Structure outside strings: nesting, and where a top-level key may start. */
static __always_inline void rls_json_structure(struct rls_stream *st, __u8 b)
{
	switch (b) {
	case '"':
		if (st->json_depth == 1 && st->json_key_expected) {
			st->json_expect = RLS_JSON_KEY;
			st->json_key_len = 0;
			st->json_key_expected = 0;
		} else {
			st->json_in_string = 1;
		}
		break;
	case '{':
	case '[':
		st->json_depth++;
		break;
	case '}':
	case ']':
		st->json_depth--;
		if (st->json_depth <= 0)
			st->request_flags |= RLS_REQ_JSON_DONE;
		break;
	case ',':
		st->json_key_expected = st->json_depth == 1;
		break;
	}
}

/*
 * A top-level key a byte at a time into st->json_key, from s->scan.pos: where it goes on from
 * an earlier segment or window, or is not whole in this one, or is longer than any key that
 * matters. Returns the bytes consumed, at least one. A global function: verified once.
 */
__noinline int rls_json_key_bytes(struct rls_scratch *s, struct rls_stream *st, __u32 limit)
{
	__u32 pos, n;
	__u8 b;

	if (!s || !st)
		return 1;
	pos = s->scan.pos;
	for (n = 0; n < RLS_JSON_KEY_MAX + 1 && n < limit; n++) {
		b = rls_at(s, pos + n);
		if (b == '\\') {
			/* It may spell "model", or "max_tokens". */
			rls_json_give_up(st, RLS_REQ_MODEL_AMBIGUOUS | RLS_REQ_MAX_TOKENS_HIDDEN);
			return n + 1;
		}
		if (b == '"') {
			rls_json_key_read(st, st->json_key, st->json_key_len);
			st->json_expect = RLS_JSON_COLON;
			return n + 1;
		}
		if (st->json_key_len < RLS_JSON_KEY_MAX)
			st->json_key[st->json_key_len & (RLS_JSON_KEY_MAX - 1)] = b;
		if (st->json_key_len < 0xff)
			st->json_key_len++;
	}
	if (n < limit) {
		/* Longer than any key that matters: the rest is an ordinary string. */
		st->json_key_kind = RLS_JSON_KEY_OTHER;
		st->json_in_string = 1;
		st->json_expect = RLS_JSON_COLON;
	}
	return n ? n : 1;
}

/*
 * The model's name from s->scan.pos to its closing quote, where it is all here, else as far
 * as it is. Returns the bytes consumed, at least one. Inline in the scan, its one caller: it
 * runs once a request, and its call and return cost more (about 20 ns) than the verifier's
 * count it adds (rlshape_xdp 761,021 to 889,105 instructions).
 */
static __always_inline int rls_json_model_bytes(struct rls_scratch *s, struct rls_stream *st,
						__u32 limit)
{
	__u32 pos, q, k, n;

	if (!s || !st)
		return 1;
	pos = s->scan.pos;
	/* The closing quote, inline: no call (and its return) for a search of a word or two. */
	q = rls_run_end(s, &s->scan.at, &s->scan.search_end, pos, pos + limit, '"', '\\');
	/* A name that starts here and fits, in words (model_name.h); else a byte at a time. */
	if (st->body_model_len == 0 && q - pos < RLS_MODEL_NAME_MAX) {
		k = q - pos;
		rls_copy_name(st->body_model, (const char *)&s->payload[pos & RLS_WINDOW_MASK], k);
		st->body_model_len = k;
	} else {
		for (k = 0; k < RLS_MODEL_NAME_MAX; k++) {
			if (pos + k >= q)
				break;
			n = st->body_model_len;
			if (n >= RLS_MODEL_NAME_MAX - 1) {
				rls_json_give_up(st, RLS_REQ_MODEL_AMBIGUOUS); /* longer than any */
				return 1;
			}
			barrier_var(n); /* keeps the mask below, which the verifier needs */
			st->body_model[n & (RLS_MODEL_NAME_MAX - 1)] = rls_at(s, pos + k);
			st->body_model_len = n + 1;
		}
	}
	if (pos + k < q)
		return k ? k : 1;
	if (q >= pos + limit || rls_at(s, q) != '"') {
		if (q < pos + limit && rls_at(s, q) == '\\') {
			rls_json_give_up(st, RLS_REQ_MODEL_AMBIGUOUS);
			return k + 1;
		}
		return k ? k : 1; /* the name goes on in the next segment */
	}
	if (st->body_model_len == 0)
		rls_json_give_up(st, RLS_REQ_MODEL_AMBIGUOUS);
	st->request_flags |= RLS_REQ_HAS_BODY_MODEL;
	st->json_expect = RLS_JSON_ANY;
	return k + 1;
}

/* A top-level key's colon and its value's first byte, one byte a token. */
static __always_inline void rls_json_colon_value(struct rls_stream *st, __u8 b)
{
	if (rls_json_ws(b))
		return;
	if (st->json_expect == RLS_JSON_COLON) {
		if (b != ':')
			rls_json_give_up(st, RLS_REQ_MODEL_AMBIGUOUS);
		st->json_expect = RLS_JSON_VALUE;
		return;
	}
	if (st->json_key_kind == RLS_JSON_KEY_MODEL) {
		/* A second top-level "model", or one that is not a plain string. */
		if ((st->request_flags & RLS_REQ_HAS_BODY_MODEL) || b != '"') {
			rls_json_give_up(st, RLS_REQ_MODEL_AMBIGUOUS);
			return;
		}
		st->body_model_len = 0;
		st->json_expect = RLS_JSON_MODEL;
		return;
	}
	if (st->json_key_kind == RLS_JSON_KEY_MAX_TOKENS) {
		if (b >= '0' && b <= '9') {
			st->value_number = b - '0';
			st->json_expect = RLS_JSON_NUMBER;
			return;
		}
		/*
		 * null says nothing, as no max_tokens at all. Anything else, a parser in lax mode
		 * may still read as a count (pydantic: "300", or 1e3 below): not known.
		 */
		if (b != 'n')
			st->request_flags |= RLS_REQ_MAX_TOKENS_HIDDEN;
	}
	st->json_expect = RLS_JSON_ANY;
	rls_json_structure(st, b);
}

/* A max_tokens value's next byte: a digit, or the byte after the number. */
static __always_inline void rls_json_number(struct rls_stream *st, __u8 b)
{
	if (b >= '0' && b <= '9') {
		if (st->value_number < RLS_LENGTH_MAX)
			st->value_number = st->value_number * 10 + (b - '0');
		return;
	}
	/* A fraction or an exponent: 1e5 is 100000 to pydantic, an error to Go. */
	if (b == '.' || b == 'e' || b == 'E')
		st->request_flags |= RLS_REQ_MAX_TOKENS_HIDDEN;
	/* Of two (parsers keep the last, in one case or in any), the larger: the most either
	 * can read. */
	if (!(st->request_flags & RLS_REQ_HAS_MAX_TOKENS) || st->value_number > st->max_tokens)
		st->max_tokens = st->value_number;
	st->request_flags |= RLS_REQ_HAS_MAX_TOKENS;
	st->json_expect = RLS_JSON_ANY;
	rls_json_structure(st, b);
}

/*
 * Right after a top-level key's closing quote at p: its colon and its value's first byte,
 * where they follow at once or with one space between (as in "model":"..." or, from Python's
 * json.dumps, "max_tokens": 64), each through rls_json_colon_value() as it would go in a
 * token of its own. Returns where the scan goes on.
 */
static __always_inline __u32 rls_json_after_key(struct rls_scratch *s, struct rls_stream *st,
						__u32 p, __u32 end)
{
	__u32 v = p + 1;
	__u8 b;

	if (v >= end || rls_at(s, p) != ':' || !rls_json_scanning(st))
		return p;
	if (rls_at(s, v) == ' ')
		v++;
	if (v >= end)
		return p;
	b = rls_at(s, v);
	if (rls_json_ws(b))
		return p; /* more whitespace: a token each, as before */
	rls_json_colon_value(st, ':');
	rls_json_colon_value(st, b);
	return v + 1;
}

/*
 * From *pos to the next quote or backslash, found a word at a time: the rest of a string (or
 * its next RLS_RUN_MAX bytes), or a top-level key that starts at *pos where it ends within a
 * key's length (else it is read a byte at a time). One search for both, inline: a string or
 * a key each token.
 */
static __always_inline void rls_json_string_or_key(struct rls_scratch *s, struct rls_stream *st,
						   volatile __u32 *pos, volatile __u32 *end)
{
	volatile __u32 *at = &s->scan.at, *stop = &s->scan.search_end;
	bool key = !st->json_in_string;
	__u32 p = *pos, q;

	*at = p;
	*stop = !key || *end - p < RLS_JSON_KEY_MAX + 1 ? *end : p + RLS_JSON_KEY_MAX + 1;
	rls_word_search(s, at, stop, '"', '\\');
	q = *at;
	if (key) {
		if (q >= *stop) {
			/* Not whole here, or longer than any key that matters. */
			*pos = p + (__u32)rls_json_key_bytes(s, st, *end - p);
			return;
		}
		if (rls_at(s, q) == '\\')
			/* It may spell "model", or "max_tokens". */
			rls_json_give_up(st, RLS_REQ_MODEL_AMBIGUOUS | RLS_REQ_MAX_TOKENS_HIDDEN);
		rls_json_key_read(st, &s->payload[p & RLS_WINDOW_MASK], q - p);
		st->json_expect = RLS_JSON_COLON;
		*pos = rls_json_after_key(s, st, q + 1, *end);
		return;
	}
	if (q >= *stop) {
		*pos = *stop; /* a long string: goes on in the next token */
		return;
	}
	if (rls_at(s, q) == '"') {
		st->json_in_string = 0;
	} else if (rls_at(s, q) == '\\') {
		/* The escaped byte, where it is here, in the same token: it cannot end the
		 * string (a \u escape's other bytes are ordinary ones). */
		if (q + 1 < *end) {
			*pos = q + 2;
			return;
		}
		st->json_escaped = 1;
	} else {
		*pos = q; /* RLS_RUN_MAX bytes of a string: it goes on */
		return;
	}
	*pos = q + 1;
}

#define RLS_JSON_GAP_MAX 8 /* bytes between strings one token takes */

/*
 * In the object, outside strings, with no key's colon or value pending: up to
 * RLS_JSON_GAP_MAX bytes to the quote that opens the next key or string, that quote included.
 * Each goes through rls_json_structure() as it would in a token of its own (whitespace and a
 * literal's letters change nothing), so "},{" or "}]," before a key, or "false}" at the end,
 * are one token with what follows. Returns where the scan goes on: past the quote, at the
 * byte after the last one taken, or where the object ended.
 */
static __always_inline __u32 rls_json_open_string(struct rls_scratch *s, struct rls_stream *st,
						   __u32 p, __u32 end)
{
	__u32 i;
	__u8 b;

	for (i = 0; i < RLS_JSON_GAP_MAX && p < end; i++) {
		b = rls_at(s, p);
		p++;
		rls_json_structure(st, b);
		if (b == '"' || (st->request_flags & RLS_REQ_JSON_DONE))
			break;
	}
	return p;
}

#define RLS_JSON_TOKENS 16 /* strings, keys and other bytes one call reads at most */

/*
 * Read the body's JSON: at most limit bytes from s->scan.pos, at least one, up to
 * RLS_JSON_TOKENS tokens: a string or its run, a top-level key, the bytes between strings
 * (up to RLS_JSON_GAP_MAX, with the quote after them), a byte of a top-level key's colon or
 * value start, up to 8 digits of max_tokens. Returns the bytes consumed. Inside
 * strings that are not a top-level key or the model, bytes are skipped a run at a time up to
 * the next quote or backslash. A global function: verified once, with the position and the
 * end in map memory, read again where they are used: the verifier does not follow values
 * there, so the paths through a token meet again at the next.
 */
__noinline int rls_json_scan(struct rls_scratch *s, struct rls_stream *st, __u32 limit)
{
	volatile __u32 *pos = &s->scan.pos, *end = &s->scan.end;
	__u32 from, p, t, i;
	__u8 b;

	if (!s || !st)
		return 1;
	from = *pos;
	*end = from + limit;
	for (t = 0; t < RLS_JSON_TOKENS; t++) {
		p = *pos;
		if (p >= *end || !rls_json_scanning(st))
			break;
		if (st->json_in_string && st->json_escaped) {
			st->json_escaped = 0;
			*pos = p + 1;
			continue;
		}
		if (!st->json_in_string && st->json_expect == RLS_JSON_ANY) {
			p = rls_json_open_string(s, st, p, *end);
			*pos = p;
			if (p >= *end)
				break;
			if (!st->json_in_string && st->json_expect != RLS_JSON_KEY)
				continue; /* no quote among them: the next token goes on */
		}
		/* A string, or a top-level key where it starts here. */
		if (st->json_in_string || (st->json_expect == RLS_JSON_KEY && !st->json_key_len)) {
			rls_json_string_or_key(s, st, pos, end);
			continue;
		}
		b = rls_at(s, p);
		switch (st->json_expect) {
		case RLS_JSON_START:
			*pos = p + 1;
			if (rls_json_ws(b))
				break;
			if (b != '{') {
				rls_json_give_up(st, RLS_REQ_BODY_UNSEEN); /* not a JSON object */
				break;
			}
			st->json_depth = 1;
			st->json_key_expected = 1;
			st->json_expect = RLS_JSON_ANY;
			break;
		case RLS_JSON_KEY:
			*pos = p + (__u32)rls_json_key_bytes(s, st, *end - p);
			break;
		case RLS_JSON_COLON:
		case RLS_JSON_VALUE:
			*pos = p + 1;
			rls_json_colon_value(st, b);
			break;
		case RLS_JSON_MODEL:
			*pos = p + (__u32)rls_json_model_bytes(s, st, *end - p);
			break;
		case RLS_JSON_NUMBER:
			/* Its digits and the byte after them, one token for up to a word of them. */
			for (i = 0; i < 8; i++) {
				rls_json_number(st, rls_at(s, p));
				p++;
				if (st->json_expect != RLS_JSON_NUMBER || p >= *end)
					break;
			}
			*pos = p;
			break;
		default:
			/* RLS_JSON_ANY went through rls_json_open_string() above; no other. */
			*pos = p + 1;
			break;
		}
	}
	t = *pos - from;
	*pos = from; /* the caller moves the position by what is returned */
	return t ? t : 1;
}

#endif /* RLS_BPF_JSON_SCAN_H */
