/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The request body's JSON, scanned as it streams by for two top-level keys: "model" (the model
 * the request is charged to) and "max_tokens" / "max_completion_tokens" (how long its answer
 * may be). Nothing else is parsed: outside the top-level object's keys only nesting and where
 * strings end are followed. Whatever an upstream's JSON parser could read otherwise (a key
 * with an escape, a second "model", a model that is not a plain string) makes the model
 * hidden: the strictest. The scan's state is the connection's (struct rls_stream).
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

/* Does the n-byte key at key, read a word at a time, spell lit? */
static __always_inline bool rls_json_key_is(const __u8 *key, __u32 n, const char *lit,
					    __u32 lit_len)
{
	__u64 w, diff = 0;
	__u32 i;

	if (n != lit_len)
		return false;
#pragma clang loop unroll(full)
	for (i = 0; i < RLS_JSON_KEY_MAX; i += 8) {
		if (i >= lit_len)
			break;
		__builtin_memcpy(&w, key + i, 8);
		diff |= (w & rls_word_bytes(lit_len - i)) ^ rls_literal_word(lit, lit_len, i);
	}
	return diff == 0;
}

#define rls_json_key_is_lit(key, n, lit) rls_json_key_is(key, n, lit, sizeof(lit) - 1)

/* What an n-byte top-level key is: the words read past n are masked off, inside the stream. */
static __always_inline __u8 rls_json_key_kind(const __u8 *key, __u32 n)
{
	if (rls_json_key_is_lit(key, n, RLS_JSON_MODEL_KEY))
		return RLS_JSON_KEY_MODEL;
	if (rls_json_key_is_lit(key, n, RLS_JSON_MAX_TOKENS_KEY) ||
	    rls_json_key_is_lit(key, n, RLS_JSON_MAX_COMPL_KEY))
		return RLS_JSON_KEY_MAX_TOKENS;
	return RLS_JSON_KEY_OTHER;
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

#define RLS_JSON_TOKENS 16 /* strings and structure bytes one step reads at most */

/*
 * Inside the top-level object, where nothing is read but nesting and where strings end:
 * strings (found a word at a time) and structure bytes, up to RLS_JSON_TOKENS of them in one
 * step, until a top-level key begins or the object closes. Returns the bytes consumed, at
 * least one. A global function: verified once.
 */
__noinline int rls_json_scan_nested(struct rls_scratch *s, struct rls_stream *st, __u32 limit)
{
	volatile __u32 *pos = &s->scan.pos, *end = &s->scan.end;
	__u32 from, p, e, t;

	if (!s || !st)
		return 1;
	from = *pos;
	*end = from + limit;
	/*
	 * The position and the end stay in map memory, read again where they are used: the
	 * verifier does not follow values there, so the paths through a token meet again at the
	 * next (and through a word of a string, rls_word_search()).
	 */
	for (t = 0; t < RLS_JSON_TOKENS; t++) {
		if (*pos >= *end)
			break;
		if (st->json_in_string) {
			if (st->json_escaped) {
				st->json_escaped = 0;
				*pos += 1;
				continue;
			}
			/* To the next quote or backslash, inline: a string each token. */
			rls_word_search(s, pos, end, '"', '\\');
			p = *pos;
			e = *end;
			if (p >= e) {
				*pos = e; /* a long string: goes on in the next token */
				continue;
			}
			if (rls_at(s, p) == '"')
				st->json_in_string = 0;
			else if (rls_at(s, p) == '\\')
				st->json_escaped = 1;
			else
				continue; /* RLS_RUN_MAX bytes of a string: it goes on */
			*pos = p + 1;
			continue;
		}
		if (st->json_expect != RLS_JSON_ANY ||
		    (st->request_flags & RLS_REQ_JSON_DONE))
			break;
		rls_json_structure(st, rls_at(s, *pos));
		*pos += 1;
	}
	t = *pos - from;
	*pos = from; /* the caller moves the position by what is returned */
	return t ? t : 1;
}

/*
 * Read the body's JSON: at most limit bytes from s->scan.pos, at least one. Returns the bytes
 * consumed. Inside strings that are not a top-level key or the model, bytes are skipped a
 * run at a time up to the next quote or backslash.
 */
static __always_inline __u32 rls_json_step(struct rls_scratch *s, struct rls_stream *st,
					   __u32 limit)
{
	__u32 pos = s->scan.pos;
	__u8 b;

	if (st->json_in_string || st->json_expect == RLS_JSON_ANY)
		return (__u32)rls_json_scan_nested(s, st, limit);
	b = rls_at(s, pos);
	switch (st->json_expect) {
	case RLS_JSON_START:
		if (rls_json_ws(b))
			return 1;
		if (b != '{') {
			rls_json_give_up(st, RLS_REQ_BODY_UNSEEN); /* not a JSON object */
			return 1;
		}
		st->json_depth = 1;
		st->json_key_expected = 1;
		st->json_expect = RLS_JSON_ANY;
		return 1;
	case RLS_JSON_KEY: {
		/* A top-level key: read up to its closing quote in one step. */
		__u32 n;

		for (n = 0; n < RLS_JSON_KEY_MAX + 1 && n < limit; n++) {
			b = rls_at(s, pos + n);
			if (b == '\\') {
				rls_json_give_up(st, RLS_REQ_MODEL_AMBIGUOUS); /* it may spell "model" */
				return n + 1;
			}
			if (b == '"') {
				st->json_key_kind = rls_json_key_kind(st->json_key, st->json_key_len);
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
	case RLS_JSON_COLON:
	case RLS_JSON_VALUE: {
		/* A top-level key's colon and its value's first byte, in one step. */
		__u32 n;

		for (n = 0; n < 16 && n < limit; n++) {
			b = rls_at(s, pos + n);
			if (rls_json_ws(b))
				continue;
			if (st->json_expect == RLS_JSON_COLON) {
				if (b != ':') {
					rls_json_give_up(st, RLS_REQ_MODEL_AMBIGUOUS);
					return n + 1;
				}
				st->json_expect = RLS_JSON_VALUE;
				continue;
			}
			if (st->json_key_kind == RLS_JSON_KEY_MODEL) {
				/* A second top-level "model", or one that is not a plain string. */
				if ((st->request_flags & RLS_REQ_HAS_BODY_MODEL) || b != '"') {
					rls_json_give_up(st, RLS_REQ_MODEL_AMBIGUOUS);
					return n + 1;
				}
				st->body_model_len = 0;
				st->json_expect = RLS_JSON_MODEL;
				return n + 1;
			}
			if (st->json_key_kind == RLS_JSON_KEY_MAX_TOKENS && b >= '0' && b <= '9') {
				st->value_number = b - '0';
				st->json_expect = RLS_JSON_NUMBER;
				return n + 1;
			}
			st->json_expect = RLS_JSON_ANY;
			rls_json_structure(st, b);
			return n + 1;
		}
		return n ? n : 1;
	}
	case RLS_JSON_MODEL: {
		/* The model's name to its closing quote, in one step where it is all here. */
		__u32 q = (__u32)rls_find_run_end(s, pos, pos + limit, '"', '\\'), k;

		for (k = 0; k < RLS_MODEL_NAME_MAX; k++) {
			if (pos + k >= q)
				break;
			if (st->body_model_len >= RLS_MODEL_NAME_MAX - 1) {
				rls_json_give_up(st, RLS_REQ_MODEL_AMBIGUOUS); /* longer than any name */
				return 1;
			}
			st->body_model[st->body_model_len & (RLS_MODEL_NAME_MAX - 1)] =
				rls_at(s, pos + k);
			st->body_model_len++;
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
	case RLS_JSON_NUMBER:
		if (b >= '0' && b <= '9') {
			if (st->value_number < RLS_LENGTH_MAX)
				st->value_number = st->value_number * 10 + (b - '0');
			return 1;
		}
		st->max_tokens = st->value_number;
		st->request_flags |= RLS_REQ_HAS_MAX_TOKENS;
		st->json_expect = RLS_JSON_ANY;
		rls_json_structure(st, b);
		return 1;
	default:
		rls_json_structure(st, b);
		return 1;
	}
}

#endif /* RLS_BPF_JSON_SCAN_H */
