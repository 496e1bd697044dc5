/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The start of an HTTP/1.x request, read from a copy of the segment's first
 * RLS_PARSE_WINDOW bytes in per-CPU scratch memory: is it a request, which API key, which model.
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
	const struct rls_config *cfg;
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

enum rls_method_kind {
	RLS_METHOD_NONE,    /* not a request start */
	RLS_METHOD_NO_BODY, /* GET, HEAD, DELETE, OPTIONS: no model to look for in a body */
	RLS_METHOD_BODY,    /* POST, PUT, PATCH */
};

/* Method tokens an OpenAI-compatible API is called with; anything else is not a request. */
static __always_inline enum rls_method_kind rls_request_method(const __u8 *p, __u32 len)
{
	if (len < 8)
		return RLS_METHOD_NONE;
	switch (p[0]) {
	case 'G':
		return p[1] == 'E' && p[2] == 'T' && p[3] == ' ' ? RLS_METHOD_NO_BODY : RLS_METHOD_NONE;
	case 'P':
		if ((p[1] == 'O' && p[2] == 'S' && p[3] == 'T' && p[4] == ' ') ||
		    (p[1] == 'U' && p[2] == 'T' && p[3] == ' ') ||
		    (p[1] == 'A' && p[2] == 'T' && p[3] == 'C' && p[4] == 'H' && p[5] == ' '))
			return RLS_METHOD_BODY;
		return RLS_METHOD_NONE;
	case 'D':
		return p[1] == 'E' && p[2] == 'L' && p[3] == 'E' && p[4] == 'T' && p[5] == 'E' &&
		       p[6] == ' ' ? RLS_METHOD_NO_BODY : RLS_METHOD_NONE;
	case 'H':
		return p[1] == 'E' && p[2] == 'A' && p[3] == 'D' && p[4] == ' ' ? RLS_METHOD_NO_BODY
										: RLS_METHOD_NONE;
	case 'O':
		return p[1] == 'P' && p[2] == 'T' && p[3] == 'I' && p[4] == 'O' && p[5] == 'N' &&
		       p[6] == 'S' && p[7] == ' ' ? RLS_METHOD_NO_BODY : RLS_METHOD_NONE;
	}
	return RLS_METHOD_NONE;
}

/* "... HTTP/1.0" or "... HTTP/1.1": the request line ends in the version. */
static __always_inline bool rls_is_request_line(const struct rls_scratch *s, __u32 start, __u32 end)
{
	if (end < start + 14)
		return false;
	return rls_at(s, end - 9) == ' ' && rls_at(s, end - 8) == 'H' && rls_at(s, end - 7) == 'T' &&
	       rls_at(s, end - 6) == 'T' && rls_at(s, end - 5) == 'P' && rls_at(s, end - 4) == '/' &&
	       rls_at(s, end - 3) == '1' && rls_at(s, end - 2) == '.';
}

/* Does the line [start, end) begin with "<name>:"? Header names are case-insensitive. */
static __always_inline bool rls_header_is(const struct rls_scratch *s, __u32 start, __u32 end,
					  const struct rls_header_name *h)
{
	__u32 n = h->len, k;

	if (n == 0 || n > RLS_HEADER_NAME_MAX || start + n >= end)
		return false;
	if (rls_at(s, start + n) != ':')
		return false;
	for (k = 0; k < RLS_HEADER_NAME_MAX; k++) {
		if (k >= n)
			break;
		if (rls_lower(rls_at(s, start + k)) != (__u8)h->name[k])
			return false;
	}
	return true;
}

enum rls_value_flags {
	RLS_VALUE_BEARER = 1, /* strip "Bearer " */
	RLS_VALUE_MODEL = 2,  /* the model, not the key */
};

/*
 * Record the value of the header line [start, end) whose name is name_len bytes, without
 * surrounding whitespace and without "Bearer " where asked, as the request's key or model.
 * A global function: verified once, not once per header it may be called for.
 */
__noinline int rls_take_header_value(struct rls_scratch *s, __u32 start, __u32 end,
				     __u32 name_len, __u32 flags)
{
	__u32 v = start + name_len + 1, k;

	if (!s)
		return 0;
	for (k = 0; k < RLS_OWS_MAX && v < end && rls_is_ows(rls_at(s, v)); k++)
		v++;
	if (flags & RLS_VALUE_BEARER) {
		if (v + 7 > end || rls_lower(rls_at(s, v)) != 'b' || rls_lower(rls_at(s, v + 1)) != 'e' ||
		    rls_lower(rls_at(s, v + 2)) != 'a' || rls_lower(rls_at(s, v + 3)) != 'r' ||
		    rls_lower(rls_at(s, v + 4)) != 'e' || rls_lower(rls_at(s, v + 5)) != 'r' ||
		    !rls_is_ows(rls_at(s, v + 6)))
			return 0;
		v += 7;
		for (k = 0; k < RLS_OWS_MAX && v < end && rls_is_ows(rls_at(s, v)); k++)
			v++;
	}
	for (k = 0; k < RLS_OWS_MAX && end > v && rls_is_ows(rls_at(s, end - 1)); k++)
		end--;
	if (end <= v)
		return 0;
	if (flags & RLS_VALUE_MODEL) {
		s->req.header_model_off = v;
		s->req.header_model_len = end - v;
		s->req.has_header_model = 1;
	} else {
		s->req.key_off = v;
		s->req.key_len = end - v;
		s->req.has_key = 1;
	}
	return 1;
}

/* The first configured key header this line is, if it outranks the key found so far. */
static __always_inline int rls_key_header_index(struct rls_scratch *s, const struct rls_config *cfg,
						__u32 start, __u32 end)
{
	__u32 i;

	for (i = 0; i < RLS_MAX_KEY_HEADERS; i++) {
		if (i >= cfg->nr_key_headers || i >= s->req.key_rank)
			return -1;
		if (rls_header_is(s, start, end, &cfg->key_headers[i]))
			return i;
	}
	return -1;
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

/*
 * The header line [start, end): a key or model header? A global function, so the verifier
 * checks its loops once rather than for every state the line scan can be in.
 */
__noinline int rls_match_header_line(struct rls_scratch *s, const struct rls_config *cfg,
				     __u32 start, __u32 end)
{
	const struct rls_header_name *h;
	int i;

	if (!s || !cfg)
		return 0;
	i = rls_key_header_index(s, cfg, start, end);
	if (i >= 0 && i < RLS_MAX_KEY_HEADERS) {
		h = &cfg->key_headers[i];
		if (rls_take_header_value(s, start, end, h->len, h->bearer ? RLS_VALUE_BEARER : 0))
			s->req.key_rank = i;
		return 0;
	}
	if (!s->req.has_header_model && rls_header_is(s, start, end, &cfg->model_header)) {
		rls_take_header_value(s, start, end, cfg->model_header.len, RLS_VALUE_MODEL);
		return 0;
	}
	if (!s->req.has_content_length &&
	    rls_take_content_length(s, start, end, &s->req.content_length))
		s->req.has_content_length = 1;
	return 0;
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
	if (!s->req.has_content_length &&
	    rls_take_content_length(s, start, end, &s->req.content_length))
		s->req.has_content_length = 1;
	else if (rls_is_chunked_header(s, start, end))
		s->req.chunked = 1;
	return 0;
}

/*
 * The line that started at lines.line_start ended with the '\n' at nl: act on it. Returns 1
 * when the scan should stop. A global function, so that the verifier checks it once instead
 * of once for every place in the chunk where the line could have ended.
 */
__noinline int rls_line_ended(struct rls_scratch *s, const struct rls_config *cfg, __u32 nl)
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
	if (ls->lines++ == 0) {
		/* A response's status line was checked before the scan began. */
		ls->bad = !ls->response && !rls_is_request_line(s, start, end);
		return ls->bad;
	}
	if (end == start) {
		ls->body_start = nl + 1;
		s->req.headers_complete = 1;
		return 1;
	}
	if (ls->response)
		rls_match_response_header(s, start, end);
	else
		rls_match_header_line(s, cfg, start, end);
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
			return rls_line_ended(s, sc->cfg, nl) ? 1 : 0;
	}
	ls->scan_pos = from + RLS_LINE_CHUNK;
	return 0;
}

/*
 * The body's top-level "model" string. A per-byte walk that knows strings, nesting and which
 * top-level strings are keys, so that a "model" inside messages[] or inside a string does not
 * count. Whatever an upstream's JSON parser could read differently from this walk makes the
 * model ambiguous, and an ambiguous model is charged as hidden: a second top-level "model"
 * (parsers disagree on which one wins), a top-level key with an escape (it may spell
 * "model"), a model value with an escape or longer than any model name.
 */
static __always_inline bool rls_is_json_ws(__u8 c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

enum rls_model_key {
	RLS_KEY_OTHER,     /* not "model" */
	RLS_KEY_MODEL,     /* "model": "<name>", name recorded */
	RLS_KEY_UNREADABLE,/* "model": with a value this walk cannot take at face value */
};

/*
 * At a top-level key's opening quote q: is it "model", and what is its value? A global
 * function: its loops are verified once, not once for every state of the byte walk.
 */
__noinline int rls_json_model_value(struct rls_scratch *s, __u32 q)
{
	__u32 len, p = q + 7, k, v;

	if (!s)
		return RLS_KEY_OTHER;
	len = s->json.len;
	if (p >= len || rls_at(s, q + 1) != 'm' || rls_at(s, q + 2) != 'o' ||
	    rls_at(s, q + 3) != 'd' || rls_at(s, q + 4) != 'e' || rls_at(s, q + 5) != 'l' ||
	    rls_at(s, q + 6) != '"')
		return RLS_KEY_OTHER;
	for (k = 0; k < RLS_OWS_MAX && p < len && rls_is_json_ws(rls_at(s, p)); k++)
		p++;
	if (p >= len || rls_at(s, p) != ':')
		return RLS_KEY_UNREADABLE;
	p++;
	for (k = 0; k < RLS_OWS_MAX && p < len && rls_is_json_ws(rls_at(s, p)); k++)
		p++;
	if (p >= len || rls_at(s, p) != '"')
		return RLS_KEY_UNREADABLE;
	v = ++p;
	for (k = 0; k < RLS_MODEL_NAME_MAX; k++, p++) {
		__u8 c;

		if (p >= len)
			return RLS_KEY_UNREADABLE; /* the value goes on past the window */
		c = rls_at(s, p);
		if (c == '"')
			break;
		if (c == '\\')
			return RLS_KEY_UNREADABLE;
	}
	if (k == 0 || k >= RLS_MODEL_NAME_MAX)
		return RLS_KEY_UNREADABLE;
	s->req.body_model_off = v;
	s->req.body_model_len = k;
	return RLS_KEY_MODEL;
}

#define RLS_MAX_TOKENS_KEY     "max_tokens\""
#define RLS_MAX_COMPLETION_KEY "max_completion_tokens\""

/* Does the string at q + 1 start with key (which ends in its closing quote)? */
static __always_inline bool rls_json_key_is(const struct rls_scratch *s, __u32 q, const char *key,
					    __u32 key_len)
{
	__u32 k;

	for (k = 0; k < 24; k++) {
		if (k >= key_len)
			break;
		if (rls_at(s, q + 1 + k) != (__u8)key[k])
			return false;
	}
	return true;
}

/*
 * At a top-level key's opening quote q: "max_tokens" or "max_completion_tokens" with a number?
 * How much answer a request asks for, to reserve at admission. A global function: verified once.
 */
__noinline int rls_json_max_tokens(struct rls_scratch *s, __u32 q)
{
	__u32 len, p, k;
	__u64 v = 0;

	if (!s)
		return 0;
	len = s->json.len;
	if (q + 12 < len && rls_json_key_is(s, q, RLS_MAX_TOKENS_KEY, sizeof(RLS_MAX_TOKENS_KEY) - 1))
		p = q + sizeof(RLS_MAX_TOKENS_KEY);
	else if (q + 23 < len && rls_json_key_is(s, q, RLS_MAX_COMPLETION_KEY,
						  sizeof(RLS_MAX_COMPLETION_KEY) - 1))
		p = q + sizeof(RLS_MAX_COMPLETION_KEY);
	else
		return 0;
	for (k = 0; k < RLS_OWS_MAX && p < len && rls_is_json_ws(rls_at(s, p)); k++)
		p++;
	if (p >= len || rls_at(s, p) != ':')
		return 0;
	p++;
	for (k = 0; k < RLS_OWS_MAX && p < len && rls_is_json_ws(rls_at(s, p)); k++)
		p++;
	for (k = 0; k < RLS_DIGITS_MAX && p < len; k++, p++) {
		__u8 c = rls_at(s, p);

		if (c < '0' || c > '9')
			break;
		v = v * 10 + (c - '0');
	}
	if (k == 0)
		return 0;
	s->req.max_tokens = v;
	s->req.has_max_tokens = 1;
	return 1;
}

static __always_inline void rls_json_top_level_key(struct rls_scratch *s, __u32 q)
{
	if (rls_json_max_tokens(s, q))
		return;
	switch (rls_json_model_value(s, q)) {
	case RLS_KEY_MODEL:
		if (s->req.has_body_model)
			s->json.ambiguous = 1;
		s->req.has_body_model = 1;
		break;
	case RLS_KEY_UNREADABLE:
		s->json.ambiguous = 1;
		break;
	default:
		break;
	}
}

static __always_inline void rls_json_string_byte(struct rls_json_state *js, __u8 c)
{
	if (js->escaped) {
		js->escaped = 0;
	} else if (c == '\\') {
		js->escaped = 1;
		if (js->in_key)
			js->ambiguous = 1;
	} else if (c == '"') {
		js->in_string = 0;
		js->in_key = 0;
	}
}

static long rls_scan_json_byte(__u32 index, struct rls_http_scan *sc)
{
	struct rls_scratch *s = sc->s;
	struct rls_json_state *js = &s->json;
	__u32 pos = js->pos;
	__u8 c;

	if (pos >= js->len || js->ambiguous)
		return 1;
	js->pos = pos + 1;
	c = rls_at(s, pos);
	if (js->in_string) {
		rls_json_string_byte(js, c);
		return 0;
	}
	switch (c) {
	case '"':
		js->in_string = 1;
		if (js->depth == 1 && js->key_expected) {
			js->in_key = 1;
			js->key_expected = 0;
			rls_json_top_level_key(s, pos);
		}
		break;
	case '{':
	case '[':
		js->depth++;
		js->key_expected = js->depth == 1 && c == '{';
		break;
	case ',':
		js->key_expected = js->depth == 1;
		break;
	case '}':
	case ']':
		js->depth--;
		if (js->depth <= 0) {
			js->closed = 1;
			return 1;
		}
		break;
	}
	return 0;
}

enum rls_body_model {
	RLS_BODY_NO_MODEL, /* the body is whole and names none */
	RLS_BODY_MODEL,    /* one readable top-level "model" */
	RLS_BODY_UNSEEN,   /* not in the window, or ambiguous */
};

static __always_inline enum rls_body_model rls_body_model(struct rls_http_scan *sc, __u32 body_start,
							   __u32 len)
{
	struct rls_scratch *s = sc->s;

	if (body_start >= len)
		return RLS_BODY_UNSEEN;
	__builtin_memset(&s->json, 0, sizeof(s->json));
	s->json.pos = body_start;
	s->json.len = len;
	bpf_loop(len - body_start, rls_scan_json_byte, sc, 0);
	if (s->json.ambiguous)
		return RLS_BODY_UNSEEN;
	if (s->req.has_body_model)
		return RLS_BODY_MODEL;
	return s->json.closed ? RLS_BODY_NO_MODEL : RLS_BODY_UNSEEN;
}

/* Do the model header and the body's model name the same model? */
static __always_inline bool rls_same_model(const struct rls_scratch *s, const struct rls_request *req)
{
	__u32 k;

	if (req->header_model_len != req->body_model_len)
		return false;
	for (k = 0; k < RLS_MODEL_NAME_MAX; k++) {
		if (k >= req->body_model_len)
			break;
		if (rls_at(s, req->header_model_off + k) != rls_at(s, req->body_model_off + k))
			return false;
	}
	return true;
}

static __always_inline void rls_charge_model(struct rls_request *req, __u32 off, __u32 len)
{
	req->model_off = off;
	req->model_len = len;
	req->model_seen = RLS_MODEL_FOUND;
}

/*
 * Which model the request is charged to. The header and the body must agree where both are
 * seen: the upstream reads one of them, and a client must not pick the cheaper one.
 */
static __always_inline void rls_decide_model(struct rls_http_scan *sc, enum rls_method_kind method)
{
	struct rls_scratch *s = sc->s;
	struct rls_request *req = &s->req;
	enum rls_body_model body = RLS_BODY_NO_MODEL;

	if (!req->headers_complete) {
		req->model_seen = RLS_MODEL_NOT_SEEN;
		return;
	}
	if (method == RLS_METHOD_BODY)
		body = rls_body_model(sc, s->lines.body_start, s->lines.len);
	if (body == RLS_BODY_UNSEEN)
		req->model_seen = RLS_MODEL_NOT_SEEN;
	else if (body == RLS_BODY_MODEL && req->has_header_model && !rls_same_model(s, req))
		req->model_seen = RLS_MODEL_NOT_SEEN;
	else if (body == RLS_BODY_MODEL)
		rls_charge_model(req, req->body_model_off, req->body_model_len);
	else if (req->has_header_model)
		rls_charge_model(req, req->header_model_off, req->header_model_len);
	else
		req->model_seen = RLS_MODEL_ABSENT;
}

/*
 * The head of a response copied into s->payload[0, len): how its body is delimited, in
 * s->req (content_length, chunked, headers_complete, lines.body_start).
 */
static __always_inline void rls_parse_response_head(struct rls_scratch *s, __u32 len)
{
	struct rls_http_scan sc = { .s = s, .cfg = NULL };

	__builtin_memset(&s->req, 0, sizeof(s->req));
	__builtin_memset(&s->lines, 0, sizeof(s->lines));
	s->lines.len = len;
	s->lines.response = 1;
	bpf_loop(RLS_SCAN_STEPS, rls_scan_line, &sc, 0);
}

/*
 * Parse the request start copied into s->payload[0, len). Returns false when the segment is
 * not an HTTP/1.x request after all; s->req says what was found. A request line or header
 * block cut off by the end of the segment is still a request, charged with what it shows.
 */
static __always_inline bool rls_parse_request(struct rls_scratch *s, const struct rls_config *cfg,
					      __u32 len, enum rls_method_kind method)
{
	struct rls_http_scan sc = { .s = s, .cfg = cfg };
	struct rls_request *req = &s->req;

	__builtin_memset(req, 0, sizeof(*req));
	__builtin_memset(&s->lines, 0, sizeof(s->lines));
	req->key_rank = RLS_MAX_KEY_HEADERS;
	s->lines.len = len;
	bpf_loop(RLS_SCAN_STEPS, rls_scan_line, &sc, 0);
	if (s->lines.bad)
		return false;
	rls_decide_model(&sc, method);
	return true;
}

#endif /* RLS_BPF_PARSE_HTTP_H */
