/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The packet fuzzer's reference: what must be counted in a client's byte stream, read the
 * straightforward way, the whole buffer at once, as a strict HTTP/1.1 server would read it.
 * It shares no code with bpf/lib/http_request.h (which reads the same bytes a segment at a time,
 * keeping its place in a map), only the rules README.md documents.
 *
 * For each complete request it says where it starts and ends, whose it is (the key) and which
 * model it is charged to. Where the stream stops being HTTP/1.1 it says where, and whether the
 * data path must reset there (BROKEN: a rule README.md states) or whether the data path may
 * read on while a strict server would refuse (UNSURE: bytes outside what both read alike, such
 * as control characters or a header line without a colon that nobody asked about). Requests
 * before the stop are exact; after an UNSURE stop the reference says nothing.
 */
#ifndef RLS_FUZZ_PACKET_REFERENCE_H
#define RLS_FUZZ_PACKET_REFERENCE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The accounts and model classes of the fuzzer's table (packet_stream.c). */
enum ref_account { REF_ANON, REF_COUNT, REF_PRICEY, REF_METER, REF_SOLO, REF_NR_ACCOUNTS };
enum ref_class { REF_OTHER, REF_M_PRICEY, REF_M_CHEAP, REF_HIDDEN, REF_NR_CLASSES,
		 REF_ANY = REF_NR_CLASSES /* invalid JSON: the upstream refuses it, any class */ };

struct ref_key {
	const char *key;
	enum ref_account account;
};

/* The table's identify section, as the fuzzer configures it. */
#define REF_KEY_HEADERS {"authorization", "x-api-key"} /* rank 0, 1; authorization: Bearer */
#define REF_MODEL_HEADER "x-model"

enum ref_stop {
	REF_END,    /* the stream ends (maybe inside a request) */
	REF_BROKEN, /* the data path must reset the connection at stop_at */
	REF_HTTP2,  /* the HTTP/2 preface: reset too (listen.http2 "refuse") */
	REF_UNSURE, /* a strict server refuses at stop_at; the data path may read on */
};

struct ref_request {
	size_t start, end; /* [start, end): the method's first byte to the request's last */
	int account;
	int cls;
	int chunked;
};

struct ref_result {
	struct ref_request *req;
	size_t n, cap;
	int stop;
	size_t stop_at;
	const struct ref_key *keys;
	size_t nr_keys;
};

/* ---- small helpers ---- */

static inline int ref_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static inline int ref_tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static inline int ref_ctl(uint8_t c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

static inline int ref_ieq(const uint8_t *a, size_t n, const char *b)
{
	size_t i;

	if (strlen(b) != n)
		return 0;
	for (i = 0; i < n; i++)
		if (ref_lower(a[i]) != ref_lower((uint8_t)b[i]))
			return 0;
	return 1;
}

/*
 * A key or model header's value as the data path takes it (README: "any amount of whitespace
 * around a header value and after Bearer"): leading whitespace dropped, each inner run of
 * spaces, tabs and CRs one space, trailing whitespace dropped. *raw_len is the length with a
 * trailing space kept, which must stay under 255 (longer than any key: not taken).
 */
static inline size_t ref_collapse(const uint8_t *v, size_t n, uint8_t *out, size_t cap,
				  size_t *raw_len)
{
	size_t i, o = 0;
	uint8_t last = ' ';

	for (i = 0; i < n; i++) {
		uint8_t b = v[i];

		if (b == ' ' || b == '\t' || b == '\r') {
			if (last == ' ')
				continue;
			b = ' ';
		}
		if (o < cap)
			out[o] = b;
		o++;
		last = b;
	}
	*raw_len = o;
	if (o > cap)
		o = cap;
	while (o && out[o - 1] == ' ')
		o--;
	return o;
}

static inline int ref_model_class(const uint8_t *name, size_t n)
{
	if (n == 6 && !memcmp(name, "pricey", 6))
		return REF_M_PRICEY;
	if (n == 5 && !memcmp(name, "cheap", 5))
		return REF_M_CHEAP;
	return REF_OTHER; /* a model no tier names: the "*" counter */
}

/* ---- the body's JSON: a validating parser that notes the top-level keys ---- */

#define REF_BODY_SCAN_MAX (1u << 20) /* README: "the body's first 1 MiB" */
/*
 * The data path checks the scanned size before each step, and one step may read up to this
 * many bytes (16 strings of at most 256 bytes): an object closing within it of the limit may
 * read either way. The fuzzer's large bodies close well outside it.
 */
#define REF_BODY_SCAN_SLACK 8192

struct ref_json {
	const uint8_t *p;
	size_t n, i;
	int invalid;
	int hidden;     /* README's strictest-model cases in the body */
	int any_class;  /* either reading is safe: the class is not compared */
	int has_model;
	const uint8_t *model;
	size_t model_len;
};

static inline void ref_json_ws(struct ref_json *j)
{
	while (j->i < j->n && strchr(" \t\r\n", j->p[j->i]) && j->p[j->i])
		j->i++;
}

/*
 * A string from its opening quote; *escaped is 1 + the offset of its first backslash, or 0.
 */
static inline int ref_json_string(struct ref_json *j, size_t *from, size_t *to, int *escaped)
{
	*escaped = 0;
	if (j->i >= j->n || j->p[j->i] != '"')
		return -1;
	*from = ++j->i;
	while (j->i < j->n) {
		uint8_t c = j->p[j->i];

		if (c == '"') {
			*to = j->i++;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			if (!*escaped)
				*escaped = 1 + (int)(j->i - *from);
			if (j->i + 1 >= j->n)
				return -2;
			c = j->p[j->i + 1];
			if (c == 'u') {
				size_t k;

				for (k = 2; k < 6; k++) {
					if (j->i + k >= j->n)
						return -2;
					if (!strchr("0123456789abcdefABCDEF", j->p[j->i + k]) ||
					    !j->p[j->i + k])
						return -1;
				}
				j->i += 6;
				continue;
			}
			if (!c || !strchr("\"\\/bfnrt", c))
				return -1;
			j->i += 2;
			continue;
		}
		j->i++;
	}
	return -2; /* the body ends inside it */
}

static inline int ref_json_value(struct ref_json *j, int depth);

/* One or more digits: 0, -1 (none), or -2 (the body ends first). */
static inline int ref_json_digits(struct ref_json *j)
{
	if (j->i >= j->n)
		return -2;
	if (j->p[j->i] < '0' || j->p[j->i] > '9')
		return -1;
	while (j->i < j->n && j->p[j->i] >= '0' && j->p[j->i] <= '9')
		j->i++;
	return 0;
}

static inline int ref_json_number(struct ref_json *j)
{
	size_t s = j->i;
	int ret;

	if (j->i < j->n && j->p[j->i] == '-')
		j->i++;
	if (j->i < j->n && j->p[j->i] == '0')
		j->i++;
	else if ((ret = ref_json_digits(j)))
		return ret;
	if (j->i < j->n && j->p[j->i] == '.') {
		j->i++;
		if ((ret = ref_json_digits(j)))
			return ret;
	}
	if (j->i < j->n && (j->p[j->i] == 'e' || j->p[j->i] == 'E')) {
		j->i++;
		if (j->i < j->n && (j->p[j->i] == '+' || j->p[j->i] == '-'))
			j->i++;
		if ((ret = ref_json_digits(j)))
			return ret;
	}
	/* A number the body ends in may go on: not complete. */
	return j->i == j->n && j->i > s ? -2 : 0;
}

/* An object or array's members, from just after its opening byte. depth 1: the top level. */
static inline int ref_json_container(struct ref_json *j, int depth, uint8_t close)
{
	int first = 1, ret;

	for (;;) {
		ref_json_ws(j);
		if (j->i >= j->n)
			return -2;
		if (j->p[j->i] == close && first) {
			j->i++;
			return 0;
		}
		if (close == '}') {
			size_t from, to;
			int escaped, is_model;

			ret = ref_json_string(j, &from, &to, &escaped);
			if (ret)
				return ret;
			/*
			 * README: an escape in a top-level key may spell "model": strictest. A key
			 * whose first escape comes after 32 bytes cannot spell it (five escapes
			 * take 30): either reading is safe, and the data path reads it as a key
			 * too long to matter.
			 */
			if (depth == 1 && escaped && escaped <= 33)
				j->hidden = 1;
			else if (depth == 1 && escaped)
				j->any_class = 1;
			/* README: in any case ("Model" is the model to Go's encoding/json). */
			is_model = depth == 1 && !escaped && to - from == 5 &&
				   !strncasecmp((const char *)j->p + from, "model", 5);
			ref_json_ws(j);
			if (j->i >= j->n)
				return -2;
			if (j->p[j->i] != ':')
				return -1;
			j->i++;
			ref_json_ws(j);
			if (j->i >= j->n)
				return -2;
			if (is_model) {
				/* README: a second top-level "model", a model that is not a plain
				 * string, an escape in its name: strictest. */
				if (j->has_model || j->p[j->i] != '"')
					j->hidden = 1;
				if (j->p[j->i] == '"') {
					size_t mf, mt;

					ret = ref_json_string(j, &mf, &mt, &escaped);
					if (ret)
						return ret;
					/* Longer than a model name (63 bytes), empty, escaped: hidden. */
					if (escaped || mt == mf || mt - mf > 63)
						j->hidden = 1;
					if (!j->has_model) {
						j->has_model = 1;
						j->model = j->p + mf;
						j->model_len = mt - mf;
					}
				} else {
					ret = ref_json_value(j, depth + 1);
					if (ret)
						return ret;
				}
			} else {
				ret = ref_json_value(j, depth + 1);
				if (ret)
					return ret;
			}
		} else {
			ret = ref_json_value(j, depth + 1);
			if (ret)
				return ret;
		}
		first = 0;
		ref_json_ws(j);
		if (j->i >= j->n)
			return -2;
		if (j->p[j->i] == ',') {
			j->i++;
			continue;
		}
		if (j->p[j->i] == close) {
			j->i++;
			return 0;
		}
		return -1;
	}
}

static inline int ref_json_value(struct ref_json *j, int depth)
{
	size_t from, to;
	int escaped;

	if (depth > 512)
		return -1;
	ref_json_ws(j);
	if (j->i >= j->n)
		return -2;
	switch (j->p[j->i]) {
	case '{':
		j->i++;
		return ref_json_container(j, depth, '}');
	case '[':
		j->i++;
		return ref_json_container(j, depth, ']');
	case '"':
		return ref_json_string(j, &from, &to, &escaped);
	case 't':
	case 'f':
	case 'n': {
		const char *lit = j->p[j->i] == 't' ? "true" : j->p[j->i] == 'f' ? "false" : "null";
		size_t k, l = strlen(lit);

		for (k = 0; k < l; k++) {
			if (j->i + k >= j->n)
				return -2;
			if (j->p[j->i + k] != (uint8_t)lit[k])
				return -1;
		}
		j->i += l;
		return 0;
	}
	default:
		return ref_json_number(j);
	}
}

/*
 * The model a body names, by README's rules: *cls is a class, REF_HIDDEN (strictest) or
 * REF_ANY (not JSON: the upstream refuses it, so which counter the data path picked is moot).
 * *has_model says whether the body named one (its name in *model, *len).
 */
static inline void ref_body_model(const uint8_t *body, size_t n, int *hidden, int *any,
				  const uint8_t **model, size_t *model_len)
{
	struct ref_json j = { .p = body, .n = n };
	int ret;

	*hidden = *any = 0;
	*model = NULL;
	*model_len = 0;
	ref_json_ws(&j);
	if (j.i >= n || body[j.i] != '{') {
		*hidden = 1; /* README: a body that is not one JSON object */
		return;
	}
	j.i++;
	ret = ref_json_container(&j, 1, '}');
	if (ret == -1) {
		*any = 1;
		return;
	}
	if (ret == -2) {
		/* README: a JSON body that ends before its object does; and one past 1 MiB. */
		*hidden = 1;
		return;
	}
	/* The object closed at j.i - 1. README: past the first 1 MiB, a model could hide. */
	if (j.i - 1 >= REF_BODY_SCAN_MAX) {
		if (j.i - 1 < REF_BODY_SCAN_MAX + REF_BODY_SCAN_SLACK)
			*any = 1;
		else
			*hidden = 1;
		return;
	}
	ref_json_ws(&j);
	if (j.i < n) {
		*any = 1; /* bytes after the object: not JSON */
		return;
	}
	*hidden = j.hidden;
	*any = !j.hidden && j.any_class;
	if (j.has_model) {
		*model = j.model;
		*model_len = j.model_len;
	}
}

/* ---- the request parser ---- */

static inline int ref_push(struct ref_result *r, const struct ref_request *q)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		struct ref_request *p = realloc(r->req, cap * sizeof(*p));

		if (!p)
			abort();
		r->req = p;
		r->cap = cap;
	}
	r->req[r->n++] = *q;
	return 0;
}

static inline void ref_stop(struct ref_result *r, int stop, size_t at)
{
	r->stop = stop;
	r->stop_at = at;
}

/* The line ending at the first LF from pos: its LF's offset, or len when there is none. */
static inline size_t ref_line_end(const uint8_t *b, size_t len, size_t pos)
{
	const uint8_t *lf = memchr(b + pos, '\n', len - pos);

	return lf ? (size_t)(lf - b) : len;
}

/* A CR anywhere in [from, to) but as the last byte (before the LF): a strict server refuses. */
static inline int ref_stray_cr(const uint8_t *b, size_t from, size_t to)
{
	size_t i;

	for (i = from; i < to; i++)
		if (b[i] == '\r' && i + 1 != to)
			return 1;
	return 0;
}

/* Does the whole (colon-less) line read as the start of a header name the table asks about? */
static inline int ref_prefix_of_asked_name(const uint8_t *b, size_t n)
{
	static const char *const names[] = { "authorization", "x-api-key", REF_MODEL_HEADER,
					     "content-length", "transfer-encoding" };
	size_t i, k;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (n > strlen(names[i]))
			continue;
		for (k = 0; k < n; k++)
			if (ref_lower(b[k]) != names[i][k])
				break;
		if (k == n)
			return 1;
	}
	return 0;
}

static inline int ref_account_of_key(const struct ref_result *r, const uint8_t *key, size_t n)
{
	size_t i;

	for (i = 0; i < r->nr_keys; i++)
		if (strlen(r->keys[i].key) == n && !memcmp(r->keys[i].key, key, n))
			return r->keys[i].account;
	return REF_ANON; /* README: an unknown key goes to default_tier, per client address */
}

/*
 * Parse the whole stream b[0, len) into r (r->keys set by the caller). Returns r->n.
 */
static inline size_t ref_parse(const uint8_t *b, size_t len, struct ref_result *r)
{
	static const char *const key_headers[] = REF_KEY_HEADERS;
	size_t pos = 0;

	r->n = 0;
	ref_stop(r, REF_END, len);
	for (;;) {
		struct ref_request q = { 0 };
		size_t le, i, m, ver_at;
		int key_rank = 2, last_kind = 0, last_key_won = 0, header_models = 0;
		int model_hidden = 0, have_header_model = 0, chunked = 0, have_cl = 0;
		uint64_t cl = 0;
		uint8_t header_model[64], line_key[256];
		size_t header_model_len = 0;
		const uint8_t *line;

		/* RFC 9112 2.2: empty lines before a request line are skipped (any CR or LF). */
		while (pos < len && (b[pos] == '\r' || b[pos] == '\n'))
			pos++;
		if (pos >= len)
			return r->n;
		q.start = pos;
		q.account = REF_ANON;
		/* Method: upper-case letters, at most 20 (longer is not HTTP an API serves),
		 * then a space; anything else is reset at the byte that breaks it. */
		for (i = pos; i < len && i - pos <= 20; i++) {
			if (b[i] == ' ')
				break;
			if (b[i] < 'A' || b[i] > 'Z' || i - pos == 20) {
				ref_stop(r, REF_BROKEN, i);
				return r->n;
			}
		}
		if (i >= len)
			return r->n;
		m = i - pos;
		le = ref_line_end(b, len, pos);
		if (le >= len)
			return r->n; /* the request line goes on */
		line = b + pos;
		/* The version is the line's last 8 bytes (a CR before the LF aside). */
		ver_at = le - (b[le - 1] == '\r' ? 1 : 0);
		if (ref_stray_cr(b, pos, le) || m == 0) {
			ref_stop(r, REF_UNSURE, pos);
			return r->n;
		}
		if (ver_at - pos >= 8 && m == 3 && !memcmp(line, "PRI", 3) &&
		    !memcmp(b + ver_at - 8, "HTTP/2.0", 8)) {
			ref_stop(r, REF_HTTP2, le);
			return r->n;
		}
		if (ver_at - pos < 8 || (memcmp(b + ver_at - 8, "HTTP/1.1", 8) &&
					 memcmp(b + ver_at - 8, "HTTP/1.0", 8))) {
			ref_stop(r, REF_BROKEN, le);
			return r->n;
		}
		/* "METHOD SP target SP HTTP/1.x", the target without spaces or controls: else a
		 * strict server refuses what the data path reads on. */
		{
			size_t t0 = pos + m + 1, t1 = ver_at - 8;

			if (t1 <= t0 || b[t1 - 1] != ' ' || t1 - 1 == t0) {
				ref_stop(r, REF_UNSURE, pos);
				return r->n;
			}
			for (i = t0; i < t1 - 1; i++)
				if (b[i] <= ' ' || b[i] == 0x7f) {
					ref_stop(r, REF_UNSURE, pos);
					return r->n;
				}
		}
		pos = le + 1;
		/* Header lines up to the empty line. */
		for (;;) {
			size_t colon, n, raw, vlen;
			uint8_t val[300];

			if (pos >= len)
				return r->n;
			if (b[pos] == '\r' && pos + 1 < len && b[pos + 1] == '\n')
				pos++;
			if (b[pos] == '\r') {
				if (pos + 1 >= len)
					return r->n;
				ref_stop(r, REF_UNSURE, pos);
				return r->n;
			}
			if (b[pos] == '\n') {
				pos++;
				break;
			}
			le = ref_line_end(b, len, pos);
			if (le >= len)
				return r->n;
			for (i = pos; i < le; i++)
				if (ref_ctl(b[i]) && !(b[i] == '\r' && i + 1 == le)) {
					ref_stop(r, REF_UNSURE, pos);
					return r->n;
				}
			if (b[pos] == ' ' || b[pos] == '\t') {
				/* obs-fold (README): a model header so continued is hidden, a key
				 * so continued is not taken, a framing header so continued is reset;
				 * others read joined. A fold with no header before it: refused. */
				if (!last_kind) {
					ref_stop(r, REF_UNSURE, pos);
					return r->n;
				}
				if (last_kind == 3 || last_kind == 4) {
					ref_stop(r, REF_BROKEN, pos);
					return r->n;
				}
				if (last_kind == 2)
					model_hidden = 1;
				/* A key so continued: the upstream may read the joined value, or
				 * refuse, or take another key header: not one reading. */
				if (last_kind == 1 && last_key_won) {
					ref_stop(r, REF_UNSURE, pos);
					return r->n;
				}
				last_kind = 5;
				pos = le + 1;
				continue;
			}
			for (colon = pos; colon < le && b[colon] != ':'; colon++)
				;
			if (colon == le) {
				/* No colon: a name the table asks about is reset at the LF; any other
				 * line the data path skips and a strict server refuses. */
				if (ref_prefix_of_asked_name(b + pos, le - pos)) {
					ref_stop(r, REF_BROKEN, le);
					return r->n;
				}
				ref_stop(r, REF_UNSURE, pos);
				return r->n;
			}
			for (i = pos; i < colon; i++)
				if (!ref_tchar(b[i])) {
					ref_stop(r, REF_UNSURE, pos);
					return r->n;
				}
			if (colon == pos) {
				ref_stop(r, REF_UNSURE, pos);
				return r->n;
			}
			n = colon - pos;
			vlen = ref_collapse(b + colon + 1, le - colon - 1, val, sizeof(val), &raw);
			last_kind = 5;
			last_key_won = 0;
			if (ref_ieq(b + pos, n, key_headers[0]) || ref_ieq(b + pos, n, key_headers[1])) {
				int rank = ref_ieq(b + pos, n, key_headers[0]) ? 0 : 1;
				const uint8_t *k = val;
				size_t kl = vlen;

				last_kind = 1;
				/* README: the first configured key header present with a well-formed
				 * key wins; authorization's value is "Bearer <key>" (any case, any
				 * whitespace); a key is 1 to 247 bytes. The header that gave the key,
				 * again: reset at its colon (the upstream may read either value). */
				if (rank == key_rank) {
					ref_stop(r, REF_BROKEN, colon);
					return r->n;
				}
				if (rank == 0) {
					if (kl <= 7 || !ref_ieq(k, 7, "bearer "))
						kl = 0;
					else
						k += 7, kl -= 7;
				}
				if (rank < key_rank && raw < 255 && kl >= 1 && kl <= 247) {
					memcpy(line_key, k, kl);
					key_rank = rank;
					q.account = ref_account_of_key(r, line_key, kl);
					last_key_won = 1;
				}
			} else if (ref_ieq(b + pos, n, REF_MODEL_HEADER)) {
				last_kind = 2;
				/* README: two model headers: the upstream may read either: hidden. */
				if (++header_models > 1) {
					model_hidden = 1;
					last_kind = 5;
				} else if (raw > 255 || vlen >= 64) {
					model_hidden = 1; /* longer than any model name */
				} else if (vlen) {
					memcpy(header_model, val, vlen);
					header_model_len = vlen;
					have_header_model = 1;
				}
			} else if (ref_ieq(b + pos, n, "content-length")) {
				uint64_t v = 0;

				last_kind = 3;
				/* README: a bad or contradictory content-length is reset. Digits
				 * only, under 2^40 (larger is not served). */
				if (raw > 255 || vlen == 0 || vlen > 13) {
					ref_stop(r, REF_BROKEN, le);
					return r->n;
				}
				for (i = 0; i < vlen; i++) {
					if (val[i] < '0' || val[i] > '9') {
						ref_stop(r, REF_BROKEN, le);
						return r->n;
					}
					v = v * 10 + (val[i] - '0');
				}
				if (v >= (1ull << 40) || (have_cl && v != cl)) {
					ref_stop(r, REF_BROKEN, le);
					return r->n;
				}
				have_cl = 1;
				cl = v;
			} else if (ref_ieq(b + pos, n, "transfer-encoding")) {
				size_t c;

				last_kind = 4;
				/* README: a transfer-encoding whose last coding is not chunked. */
				for (c = vlen; c > 0 && val[c - 1] != ','; c--)
					;
				while (c < vlen && val[c] == ' ')
					c++;
				if (raw > 255 || !ref_ieq(val + c, vlen - c, "chunked")) {
					ref_stop(r, REF_BROKEN, le);
					return r->n;
				}
				chunked = 1;
			}
			pos = le + 1;
		}
		/* The body. */
		{
			uint8_t *body = NULL;
			size_t body_len = 0;
			int hidden = model_hidden, any = 0, has_body = chunked || cl;

			q.chunked = chunked;
			if (chunked) {
				/* RFC 9112 7.1: hex size (at most 10 digits, under 2^40), extensions
				 * after ';' or whitespace (never body), data, CRLF; trailers to the
				 * empty line. */
				body = malloc(len - pos + 1);
				if (!body)
					abort();
				for (;;) {
					uint64_t size = 0;
					size_t digits = 0;

					le = ref_line_end(b, len, pos);
					if (le >= len) {
						free(body);
						return r->n;
					}
					for (i = pos; i < le; i++) {
						uint8_t c = b[i];
						int d = c >= '0' && c <= '9' ? c - '0' :
							c >= 'a' && c <= 'f' ? c - 'a' + 10 :
							c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

						if (d < 0)
							break;
						if (++digits > 10 || (size = size * 16 + d) >= (1ull << 40)) {
							free(body);
							ref_stop(r, REF_BROKEN, i);
							return r->n;
						}
					}
					if (i < le && b[i] == '\r' && i + 1 != le) {
						free(body);
						ref_stop(r, REF_UNSURE, i);
						return r->n;
					}
					if (i < le && b[i] != '\r' && b[i] != ';' && b[i] != ' ' &&
					    b[i] != '\t') {
						free(body);
						ref_stop(r, REF_BROKEN, i);
						return r->n;
					}
					if (i < le && b[i] != '\r' && ref_stray_cr(b, i, le)) {
						free(body);
						ref_stop(r, REF_UNSURE, i);
						return r->n;
					}
					if (!digits) {
						free(body);
						ref_stop(r, REF_BROKEN, le);
						return r->n;
					}
					pos = le + 1;
					if (size == 0)
						break;
					if (len - pos < size) {
						free(body);
						return r->n;
					}
					memcpy(body + body_len, b + pos, size);
					body_len += size;
					pos += size;
					/* The chunk's CRLF (or LF). */
					if (pos < len && b[pos] == '\r') {
						if (pos + 1 >= len) {
							free(body);
							return r->n;
						}
						if (b[pos + 1] == '\r') {
							free(body);
							ref_stop(r, REF_UNSURE, pos);
							return r->n;
						}
						pos++;
					}
					if (pos >= len) {
						free(body);
						return r->n;
					}
					if (b[pos] != '\n') {
						free(body);
						ref_stop(r, REF_BROKEN, pos);
						return r->n;
					}
					pos++;
				}
				/* Trailers: fields, never read; the empty line ends the request. */
				for (;;) {
					if (pos < len && b[pos] == '\r' && pos + 1 < len &&
					    b[pos + 1] == '\n')
						pos++;
					if (pos >= len) {
						free(body);
						return r->n;
					}
					if (b[pos] == '\n') {
						pos++;
						break;
					}
					le = ref_line_end(b, len, pos);
					if (le >= len) {
						free(body);
						return r->n;
					}
					{
						size_t c;

						for (c = pos; c < le && ref_tchar(b[c]); c++)
							;
						if (c == pos || c == le || b[c] != ':' ||
						    ref_stray_cr(b, pos, le)) {
							free(body);
							ref_stop(r, REF_UNSURE, pos);
							return r->n;
						}
						for (c = pos; c < le; c++)
							if (ref_ctl(b[c]) && !(b[c] == '\r' && c + 1 == le)) {
								free(body);
								ref_stop(r, REF_UNSURE, pos);
								return r->n;
							}
					}
					pos = le + 1;
				}
			} else if (cl) {
				if (len - pos < cl)
					return r->n;
				body = malloc(cl);
				if (!body)
					abort();
				memcpy(body, b + pos, cl);
				body_len = cl;
				pos += cl;
			}
			q.end = pos;
			if (has_body) {
				int bh, ba;
				const uint8_t *bm;
				size_t bml;

				ref_body_model(body, body_len, &bh, &ba, &bm, &bml);
				any = ba;
				hidden |= bh;
				/* README: where both the header and the body name a model, they must
				 * agree (byte for byte). */
				if (!ba && !bh && bm) {
					if (have_header_model && (header_model_len != bml ||
								  memcmp(header_model, bm, bml)))
						hidden = 1;
					q.cls = ref_model_class(bm, bml);
				} else if (have_header_model) {
					q.cls = ref_model_class(header_model, header_model_len);
				} else {
					q.cls = REF_OTHER;
				}
			} else {
				q.cls = have_header_model ? ref_model_class(header_model,
									    header_model_len)
							  : REF_OTHER;
			}
			free(body);
			if (hidden)
				q.cls = REF_HIDDEN;
			else if (any)
				q.cls = REF_ANY;
		}
		ref_push(r, &q);
	}
}

#endif /* RLS_FUZZ_PACKET_REFERENCE_H */
