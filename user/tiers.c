// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tiers.json parser. Every error is one line naming the file and either the line:column of a
 * syntax error or the JSON path of the offending field, and says what would be accepted:
 * operators edit this file by hand, under pressure, during an incident.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include <jansson.h>

#include "hex_digit.h"
#include "key_hash.h"
#include "siphash.h"
#include "sha256_file.h"
#include "ipv4_mapped.h"
#include "item_set.h"
#include "tiers.h"

#define RLS_REQUEST_LIMIT_MAX (RLS_UNLIMITED - 1)
#define SHA256_PREFIX         "sha256:"
#define SHA256_PREFIX_LEN     (sizeof(SHA256_PREFIX) - 1)

struct parser {
	const char *file;
	char *err;
	size_t err_len;
	char path[512];   /* JSON path of the value being parsed, for messages */
	size_t path_len;
	json_t *tier_ids; /* tier name -> index, so accounts find their tier in O(1) */
	const struct rls_table *table;
	/* The plain keys' bytes, for rls_table.key_bytes: room for the whole text, which holds
	 * every key at least as long as it is decoded, so that it never moves (and leaves a copy). */
	char *key_bytes;
	size_t key_bytes_len, nr_digest_keys;
	/* How much of rls_table.all_keys, all_key_spans and all_cidrs is used, and their room. */
	size_t nr_keys, keys_room, spans_room, nr_cidrs, cidrs_room;
	/* The fast way's accounts (scan_accounts()): the text, where each tier name is in it, and
	 * the room in rls_table.accounts. */
	const char *text;
	size_t text_len, accounts_room;
};

/* ---- messages ---- */

/* s as a JSON string literal, cut short with "..." when it does not fit. */
static const char *quote(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	if (len < 8) {
		buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		size_t n;

		if (c == '"' || c == '\\')
			n = (size_t)snprintf(esc, sizeof(esc), "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
		else
			esc[0] = (char)c, n = 1;
		/* Keep room for "...", the closing quote and the NUL. */
		if (o + n + 5 > len) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, esc, n);
		o += n;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* A JSON value as a message shows it after "got". */
static const char *describe(const json_t *v, char *buf, size_t len)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return quote(json_string_value(v), buf, len);
	case JSON_INTEGER:
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	case JSON_REAL:
		/* "%g" would print 3.0 as 3, and "must be an integer, got 3" is a riddle. */
		snprintf(buf, len, "%.17g", json_real_value(v));
		if (!strpbrk(buf, ".eni"))
			strncat(buf, ".0", len - strlen(buf) - 1);
		return buf;
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	case JSON_NULL:
		return "null";
	}
	return "an unknown value";
}

/* Control bytes in a file name or in jansson's text would split the message. */
static void make_one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

__attribute__((format(printf, 2, 3)))
static int fail(struct parser *p, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (!p->err || !p->err_len)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->path_len)
		snprintf(p->err, p->err_len, "%s: %s: %s", p->file, p->path, msg);
	else
		snprintf(p->err, p->err_len, "%s: %s", p->file, msg);
	make_one_line(p->err);
	return -1;
}

static int fail_oom(struct parser *p)
{
	p->path_len = 0;
	p->path[0] = '\0';
	return fail(p, "out of memory");
}

/* ---- the JSON path of the value being parsed ---- */

static bool is_plain_segment(const char *key)
{
	if (!*key)
		return false;
	for (; *key; key++)
		if (!isalnum((unsigned char)*key) && *key != '_' && *key != '-')
			return false;
	return true;
}

/* Cut short at the end of p->path. A plain copy: every account pushes its name, and snprintf()
 * of a million names was a tenth of the parse. */
static void path_append(struct parser *p, const char *s)
{
	size_t room = sizeof(p->path) - 1 - p->path_len, n = strnlen(s, room);

	memcpy(p->path + p->path_len, s, n);
	p->path_len += n;
	p->path[p->path_len] = '\0';
}

/* Enter object member key; returns what path_pop() needs to leave it. */
static size_t path_push_key(struct parser *p, const char *key)
{
	size_t saved = p->path_len;
	char buf[256];

	if (p->path_len)
		path_append(p, ".");
	path_append(p, is_plain_segment(key) ? key : quote(key, buf, sizeof(buf)));
	return saved;
}

static size_t path_push_index(struct parser *p, size_t index)
{
	size_t saved = p->path_len;
	char buf[32];

	snprintf(buf, sizeof(buf), "[%zu]", index);
	path_append(p, buf);
	return saved;
}

static void path_pop(struct parser *p, size_t saved)
{
	p->path_len = saved;
	p->path[saved] = '\0';
}

static void path_reset(struct parser *p)
{
	path_pop(p, 0);
}

/* ---- generic checks ---- */

static void list_names(const char *const names[], char *buf, size_t len)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; names[i]; i++) {
		if (i)
			strncat(buf, ", ", len - strlen(buf) - 1);
		strncat(buf, names[i], len - strlen(buf) - 1);
	}
}

/* A misspelt field must not be silently ignored: "rmp": 10 would leave rpm unlimited. */
static int reject_unknown_fields(struct parser *p, const json_t *obj, const char *const known[])
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)obj, key, v) {
		for (i = 0; known[i]; i++)
			if (!strcmp(key, known[i]))
				break;
		if (!known[i]) {
			char expected[256];

			list_names(known, expected, sizeof(expected));
			path_push_key(p, key);
			return fail(p, "unknown field (expected one of: %s)", expected);
		}
	}
	return 0;
}

static int expect_object(struct parser *p, const json_t *v, const char *what)
{
	char buf[128];

	if (json_is_object(v))
		return 0;
	return fail(p, "must be an object %s, got %s", what, describe(v, buf, sizeof(buf)));
}

/* A name of len bytes from the file into a fixed-size field of include/rlshape.h. */
static int copy_name_len(struct parser *p, const char *name, size_t len, char *dst, size_t size,
			 const char *what)
{
	if (!len)
		return fail(p, "empty %s name", what);
	if (len >= size)
		return fail(p, "%s name is %zu bytes, at most %zu are allowed", what, len, size - 1);
	memcpy(dst, name, len);
	dst[len] = '\0';
	return 0;
}

static int copy_name(struct parser *p, const char *name, char *dst, size_t size, const char *what)
{
	return copy_name_len(p, name, strlen(name), dst, size, what);
}

/*
 * array with room for need (> 0) elements of size bytes, *room of them now; a larger array when
 * it has too few (doubled, so that growing one by one costs no more than a copy of the whole),
 * or NULL (out of memory: array is left as it was).
 */
static void *room_for(void *array, size_t *room, size_t need, size_t size)
{
	size_t more = *room ? *room : 1024;
	void *bigger;

	if (need <= *room)
		return array;
	while (more < need)
		more *= 2;
	bigger = realloc(array, more * size);
	if (bigger)
		*room = more;
	return bigger;
}

/* ---- listen ---- */

static int parse_port(struct parser *p, const json_t *v, __u16 *port)
{
	char buf[128];

	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
		return fail(p, "must be a TCP port 1..65535, got %s", describe(v, buf, sizeof(buf)));
	*port = (__u16)json_integer_value(v);
	return 0;
}

static int parse_ports(struct parser *p, const json_t *v, struct rls_table *t)
{
	char buf[128];
	json_t *port;
	size_t i, j;

	if (!v)
		return fail(p, "required: the TCP ports to rate limit, e.g. \"ports\": [8000]");
	if (!json_is_array(v))
		return fail(p, "must be an array of TCP ports, e.g. [8000], got %s",
			    describe(v, buf, sizeof(buf)));
	if (!json_array_size(v))
		return fail(p, "no ports: list at least one TCP port to rate limit, e.g. [8000]");
	if (json_array_size(v) > RLS_MAX_PORTS)
		return fail(p, "%zu ports listed, at most %d are supported", json_array_size(v),
			    RLS_MAX_PORTS);
	json_array_foreach(v, i, port) {
		size_t saved = path_push_index(p, i);

		if (parse_port(p, port, &t->ports[i]))
			return -1;
		for (j = 0; j < i; j++)
			if (t->ports[j] == t->ports[i])
				return fail(p, "port %u is already listed at [%zu]: remove one",
					    t->ports[i], j);
		path_pop(p, saved);
	}
	t->nr_ports = json_array_size(v);
	return 0;
}

/* The kernel's dev_valid_name(): a name it would refuse can never be attached to. */
static bool valid_dev_name(const char *name)
{
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (; *name; name++)
		if ((unsigned char)*name <= ' ' || *name == 0x7f || *name == '/' || *name == ':')
			return false;
	return true;
}

static int parse_dev(struct parser *p, const json_t *v, struct rls_table *t)
{
	char buf[128];
	size_t len;

	if (!v)
		return 0;
	if (!json_is_string(v))
		return fail(p, "must be a network interface name, e.g. \"eth0\", got %s",
			    describe(v, buf, sizeof(buf)));
	len = json_string_length(v);
	if (!len || len >= sizeof(t->dev))
		return fail(p, "interface names are 1..%zu bytes, got %zu", sizeof(t->dev) - 1, len);
	if (!valid_dev_name(json_string_value(v)))
		return fail(p, "%s is not a valid interface name (no '/', ':' or whitespace)",
			    quote(json_string_value(v), buf, sizeof(buf)));
	memcpy(t->dev, json_string_value(v), len + 1);
	return 0;
}

/*
 * A field that names one of two ways, first (the default, also where the field is absent) or
 * second: *second says which. what: the message for anything else, before the value it got.
 */
static int parse_either(struct parser *p, const json_t *v, const char *first, const char *second,
			bool *is_second, const char *what)
{
	char buf[128];

	if (!v)
		return 0;
	if (json_is_string(v) && !strcmp(json_string_value(v), first))
		*is_second = false;
	else if (json_is_string(v) && !strcmp(json_string_value(v), second))
		*is_second = true;
	else
		return fail(p, "%s, got %s", what, describe(v, buf, sizeof(buf)));
	return 0;
}

/* What an HTTP/2 prior-knowledge connection (its "PRI * HTTP/2.0" preface) meets. */
static int parse_http2(struct parser *p, const json_t *v, struct rls_table *t)
{
	return parse_either(p, v, "refuse", "pass", &t->http2_pass,
			    "must be \"refuse\" (HTTP/2 cannot be counted here: the connection is "
			    "reset) or \"pass\" (let it through unlimited)");
}

/* What a connection meets once its upstream has answered a WebSocket upgrade with 101. */
static int parse_websocket(struct parser *p, const json_t *v, struct rls_table *t)
{
	return parse_either(p, v, "reset", "tunnel", &t->websocket_tunnel,
			    "must be \"reset\" (a WebSocket's frames cannot be counted here: the "
			    "connection is reset at the first) or \"tunnel\" (the session counts as "
			    "one request and holds its concurrency slot until it closes; what it "
			    "carries is not read)");
}

static int parse_listen(struct parser *p, const json_t *v, struct rls_table *t)
{
	static const char *const fields[] = { "ports", "dev", "http2", "websocket", NULL };
	size_t here;

	path_push_key(p, "listen");
	here = p->path_len;
	if (!v)
		return fail(p, "required: e.g. \"listen\": {\"ports\": [8000], \"dev\": \"eth0\"}");
	if (expect_object(p, v,
			  "with \"ports\" and optionally \"dev\", \"http2\" and \"websocket\"") ||
	    reject_unknown_fields(p, v, fields))
		return -1;
	path_push_key(p, "ports");
	if (parse_ports(p, json_object_get(v, "ports"), t))
		return -1;
	path_pop(p, here);
	path_push_key(p, "dev");
	if (parse_dev(p, json_object_get(v, "dev"), t))
		return -1;
	path_pop(p, here);
	path_push_key(p, "http2");
	if (parse_http2(p, json_object_get(v, "http2"), t))
		return -1;
	path_pop(p, here);
	path_push_key(p, "websocket");
	if (parse_websocket(p, json_object_get(v, "websocket"), t))
		return -1;
	path_reset(p);
	return 0;
}

/* ---- identify ---- */

/* RFC 9110 tchar: anything else cannot be a header name the data path would ever match. */
static bool is_token_char(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int parse_header_name(struct parser *p, const json_t *v, struct rls_header_name *out)
{
	char buf[128];
	const char *s;
	size_t len, i;

	if (!json_is_string(v))
		return fail(p, "must be an HTTP header name, e.g. \"x-api-key\", got %s",
			    describe(v, buf, sizeof(buf)));
	s = json_string_value(v);
	len = json_string_length(v);
	if (!len || len >= RLS_HEADER_NAME_MAX)
		return fail(p, "header names are 1..%d bytes, got %zu", RLS_HEADER_NAME_MAX - 1, len);
	for (i = 0; i < len; i++)
		if (!is_token_char((unsigned char)s[i]))
			return fail(p, "%s is not an HTTP header name (letters, digits and "
				    "!#$%%&'*+-.^_`|~ only)", quote(s, buf, sizeof(buf)));
	memset(out, 0, sizeof(*out));
	out->len = (__u8)len;
	/* The data path compares against lower case: header names are case-insensitive. */
	for (i = 0; i < len; i++)
		out->name[i] = (char)tolower((unsigned char)s[i]);
	return 0;
}

static bool same_header(const struct rls_header_name *a, const struct rls_header_name *b)
{
	return a->len == b->len && !memcmp(a->name, b->name, a->len);
}

static void set_header(struct rls_header_name *h, const char *name)
{
	memset(h, 0, sizeof(*h));
	h->len = (__u8)strlen(name);
	memcpy(h->name, name, h->len);
	h->bearer = !strcmp(name, "authorization");
}

static void set_default_identify(struct rls_table *t)
{
	static const char *const keys[] = { "authorization", "x-api-key", "api-key" };
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		set_header(&t->key_headers[i], keys[i]);
	t->nr_key_headers = i;
	set_header(&t->model_header, "x-model");
}

static int parse_key_headers(struct parser *p, const json_t *v, struct rls_table *t)
{
	char buf[128];
	json_t *name;
	size_t i, j;

	if (!v)
		return 0;
	if (!json_is_array(v))
		return fail(p, "must be an array of header names, e.g. [\"authorization\"], got %s",
			    describe(v, buf, sizeof(buf)));
	if (!json_array_size(v) || json_array_size(v) > RLS_MAX_KEY_HEADERS)
		return fail(p, "list 1..%d header names, got %zu", RLS_MAX_KEY_HEADERS,
			    json_array_size(v));
	json_array_foreach(v, i, name) {
		struct rls_header_name *h = &t->key_headers[i];
		size_t saved = path_push_index(p, i);

		if (parse_header_name(p, name, h))
			return -1;
		h->bearer = h->len == 13 && !memcmp(h->name, "authorization", 13);
		for (j = 0; j < i; j++)
			if (same_header(&t->key_headers[j], h))
				return fail(p, "header already listed at [%zu] (names are "
					    "case-insensitive): remove one", j);
		path_pop(p, saved);
	}
	t->nr_key_headers = json_array_size(v);
	return 0;
}

static int parse_model_header(struct parser *p, const json_t *v, struct rls_table *t)
{
	size_t i;

	if (!v)
		return 0;
	if (json_is_null(v)) {
		memset(&t->model_header, 0, sizeof(t->model_header));
		return 0;
	}
	if (parse_header_name(p, v, &t->model_header))
		return -1;
	for (i = 0; i < t->nr_key_headers; i++)
		if (same_header(&t->key_headers[i], &t->model_header))
			return fail(p, "is also key_headers[%zu]: a header cannot carry both the API "
				    "key and the model", i);
	return 0;
}

/*
 * identify.client_address_header: the header a local TLS-terminating proxy writes its
 * client's address in, for the upstream side. Not one that carries the key or the model.
 */
static int parse_client_address_header(struct parser *p, const json_t *v, struct rls_table *t)
{
	size_t i;

	if (!v || json_is_null(v))
		return 0;
	if (parse_header_name(p, v, &t->client_address_header))
		return -1;
	for (i = 0; i < t->nr_key_headers; i++)
		if (same_header(&t->key_headers[i], &t->client_address_header))
			return fail(p, "is also key_headers[%zu]: a header cannot carry both the API "
				    "key and the client's address", i);
	if (same_header(&t->model_header, &t->client_address_header))
		return fail(p, "is also the model_header: a header cannot carry both the model and "
			    "the client's address");
	return 0;
}

static int parse_identify(struct parser *p, const json_t *v, struct rls_table *t)
{
	static const char *const fields[] = { "key_headers", "model_header",
					      "client_address_header", NULL };
	size_t here;

	set_default_identify(t);
	if (!v)
		return 0;
	path_push_key(p, "identify");
	here = p->path_len;
	if (expect_object(p, v, "with \"key_headers\", \"model_header\" and/or "
			  "\"client_address_header\"") ||
	    reject_unknown_fields(p, v, fields))
		return -1;
	path_push_key(p, "key_headers");
	if (parse_key_headers(p, json_object_get(v, "key_headers"), t))
		return -1;
	path_pop(p, here);
	path_push_key(p, "model_header");
	if (parse_model_header(p, json_object_get(v, "model_header"), t))
		return -1;
	path_pop(p, here);
	path_push_key(p, "client_address_header");
	if (parse_client_address_header(p, json_object_get(v, "client_address_header"), t))
		return -1;
	path_reset(p);
	return 0;
}

/* ---- limits ---- */

struct limit_field {
	const char *name;
	size_t offset;
	bool tokens; /* __u64, RLS_TOKENS_UNLIMITED; else __u32, RLS_UNLIMITED */
};

#define REQUEST_LIMIT(f) { #f, offsetof(struct rls_limits, f), false }
#define TOKEN_LIMIT(f)   { #f, offsetof(struct rls_limits, f), true }

static const struct limit_field limit_fields[] = {
	REQUEST_LIMIT(rps), REQUEST_LIMIT(rpm), REQUEST_LIMIT(rph), REQUEST_LIMIT(rpd),
	REQUEST_LIMIT(concurrency), TOKEN_LIMIT(tpm), TOKEN_LIMIT(tpd),
};

static const char *const limits_fields[] = {
	"rps", "rpm", "rph", "rpd", "tpm", "tpd", "concurrency", "burst",
	"token_burst", "bytes_per_token", "reserve_tokens", "reserve_max", "max_hold_seconds",
	"max_response_tokens", "shape", NULL,
};

#define RLS_DEFAULT_RESERVE_TOKENS  256 /* held for an answer of unknown length */
#define RLS_DEFAULT_RESERVE_MAX     4096 /* at most this much of a visible max_tokens is held */
#define RLS_MAX_BYTES_PER_TOKEN     1000
/*
 * A concurrency slot nobody gives back (the client vanished, the upstream never answered) is
 * freed after this long: 600 s is an OpenAI client's default timeout, so by then the client
 * has given up on the request anyway.
 */
#define RLS_DEFAULT_MAX_HOLD_SECONDS 600
#define RLS_MAX_HOLD_SECONDS_MAX     604800 /* a week: a slot held longer is surely lost */
/* fq holds a packet at most its horizon (default 10 s) and drops it past that: room to spare. */
#define RLS_SHAPE_MAX_DELAY_MS_MAX   5000

/* No limit at all; max_hold_ns stays 0: without a concurrency limit no slot is held. */
static void set_unlimited(struct rls_limits *l)
{
	memset(l, 0, sizeof(*l));
	l->rps = l->rpm = l->rph = l->rpd = l->concurrency = RLS_UNLIMITED;
	l->tpm = l->tpd = RLS_TOKENS_UNLIMITED;
}

/*
 * The GCRA smoothing of rpm: requests are spaced 60 s / rpm apart, with burst of them allowed
 * back to back. burst 0 picks the default, a second's worth of rpm. rpm 0 and unlimited rpm
 * need no smoothing.
 */
static void set_smoothing(struct rls_limits *l, __u32 burst)
{
	if (l->rpm == 0 || l->rpm == RLS_UNLIMITED) {
		l->burst = 0;
		l->smooth_interval_ns = 0;
		return;
	}
	l->smooth_interval_ns = 60 * RLS_NS_PER_SEC / l->rpm;
	l->burst = burst ? burst : (l->rpm / 60 ? l->rpm / 60 : 1);
}

/* A limit value: a non-negative integer up to max, or "unlimited" (any case). */
static int parse_limit_value(struct parser *p, const json_t *v, __u64 max, __u64 unlimited,
			     __u64 *out)
{
	char buf[128];

	if (json_is_string(v) && !strcasecmp(json_string_value(v), "unlimited")) {
		*out = unlimited;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return fail(p, "must be a non-negative integer or \"unlimited\", got %s",
			    describe(v, buf, sizeof(buf)));
	if ((__u64)json_integer_value(v) > max)
		return fail(p, "must be at most %llu (use \"unlimited\" for no limit), got %s",
			    (unsigned long long)max, describe(v, buf, sizeof(buf)));
	*out = (__u64)json_integer_value(v);
	return 0;
}

static int parse_limit_field(struct parser *p, const json_t *v, const struct limit_field *f,
			     struct rls_limits *l)
{
	char *field = (char *)l + f->offset;
	__u64 value;

	if (f->tokens) {
		/* jansson caps integers at 2^63 - 1, far below RLS_TOKENS_UNLIMITED. */
		if (parse_limit_value(p, v, RLS_TOKENS_UNLIMITED - 1, RLS_TOKENS_UNLIMITED, &value))
			return -1;
		*(__u64 *)field = value;
	} else {
		if (parse_limit_value(p, v, RLS_REQUEST_LIMIT_MAX, RLS_UNLIMITED, &value))
			return -1;
		*(__u32 *)field = (__u32)value;
	}
	return 0;
}

/* burst only means something under the rpm smoothing, and can never admit more than rpm. */
static int parse_burst(struct parser *p, const json_t *v, const struct rls_limits *l, __u32 *burst)
{
	char buf[128];

	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return fail(p, "must be a positive integer (requests allowed back to back under "
			    "the rpm smoothing), got %s", describe(v, buf, sizeof(buf)));
	if (l->rpm == RLS_UNLIMITED)
		return fail(p, "burst needs a finite rpm in the same entry: set \"rpm\" to a "
			    "number or remove \"burst\"");
	if (l->rpm == 0)
		return fail(p, "burst needs rpm > 0 (rpm 0 admits nothing): remove \"burst\"");
	if (json_integer_value(v) > l->rpm)
		return fail(p, "burst %" JSON_INTEGER_FORMAT " exceeds rpm %u: no more than rpm "
			    "requests fit in a minute, lower burst to at most %u",
			    json_integer_value(v), l->rpm, l->rpm);
	*burst = (__u32)json_integer_value(v);
	return 0;
}

/* An integer in [min, max] for the field at the top of the path. */
static int parse_bounded(struct parser *p, const json_t *v, __u64 min, __u64 max, const char *what,
			 __u64 *out)
{
	char buf[128];

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (__u64)json_integer_value(v) < min || (__u64)json_integer_value(v) > max)
		return fail(p, "must be an integer from %llu to %llu (%s), got %s",
			    (unsigned long long)min, (unsigned long long)max, what,
			    describe(v, buf, sizeof(buf)));
	*out = (__u64)json_integer_value(v);
	return 0;
}

/*
 * The token budget: tpm refills continuously at tpm/60 a second and holds token_burst at most
 * (default one second's worth; token_burst = tpm makes it a plain per-minute budget).
 */
static int parse_token_fields(struct parser *p, const json_t *v, struct rls_limits *l)
{
	size_t saved = p->path_len;
	const json_t *f;
	__u64 value;

	l->token_burst = l->tpm != RLS_TOKENS_UNLIMITED && l->tpm ? (l->tpm / 60 ? l->tpm / 60 : 1) : 0;
	l->bytes_per_token = RLS_DEFAULT_BYTES_PER_TOKEN;
	l->reserve_tokens = RLS_DEFAULT_RESERVE_TOKENS;
	l->reserve_max = RLS_DEFAULT_RESERVE_MAX;
	l->max_response_tokens = RLS_DEFAULT_MAX_RESPONSE_TOKENS;
	if ((f = json_object_get(v, "max_response_tokens"))) {
		path_push_key(p, "max_response_tokens");
		if (parse_bounded(p, f, 1, RLS_MAX_RESPONSE_TOKENS,
				  "most tokens one response is charged, whatever its usage says", &value))
			return -1;
		l->max_response_tokens = value;
		path_pop(p, saved);
	}
	if ((f = json_object_get(v, "reserve_max"))) {
		path_push_key(p, "reserve_max");
		if (parse_bounded(p, f, 0, RLS_REQUEST_LIMIT_MAX,
				  "most tokens held for a request's max_tokens", &value))
			return -1;
		l->reserve_max = (__u32)value;
		path_pop(p, saved);
	}
	if ((f = json_object_get(v, "token_burst"))) {
		path_push_key(p, "token_burst");
		if (l->tpm == RLS_TOKENS_UNLIMITED || l->tpm == 0)
			return fail(p, "token_burst needs a finite tpm > 0 in the same entry: set "
				    "\"tpm\" or remove \"token_burst\"");
		if (parse_bounded(p, f, 1, l->tpm, "tokens the budget holds, at most tpm", &value))
			return -1;
		l->token_burst = value;
		path_pop(p, saved);
	}
	if ((f = json_object_get(v, "bytes_per_token"))) {
		path_push_key(p, "bytes_per_token");
		if (parse_bounded(p, f, 1, RLS_MAX_BYTES_PER_TOKEN,
				  "bytes of request and response per token, where usage is unknown",
				  &value))
			return -1;
		l->bytes_per_token = (__u32)value;
		path_pop(p, saved);
	}
	if ((f = json_object_get(v, "reserve_tokens"))) {
		path_push_key(p, "reserve_tokens");
		if (parse_bounded(p, f, 0, RLS_REQUEST_LIMIT_MAX,
				  "tokens held at admission for the answer", &value))
			return -1;
		l->reserve_tokens = (__u32)value;
		path_pop(p, saved);
	}
	return 0;
}

/*
 * A request holds a concurrency slot from admission until its response ends; max_hold_seconds
 * frees a slot nothing gives back. It only means something under a finite concurrency, where
 * it defaults to RLS_DEFAULT_MAX_HOLD_SECONDS; without one max_hold_ns stays 0.
 */
static int parse_max_hold(struct parser *p, const json_t *v, struct rls_limits *l)
{
	size_t saved = p->path_len;
	__u64 seconds = RLS_DEFAULT_MAX_HOLD_SECONDS;
	const json_t *f;

	if ((f = json_object_get(v, "max_hold_seconds"))) {
		path_push_key(p, "max_hold_seconds");
		if (l->concurrency == RLS_UNLIMITED)
			return fail(p, "max_hold_seconds needs a finite concurrency in the same "
				    "entry: set \"concurrency\" or remove \"max_hold_seconds\"");
		if (parse_bounded(p, f, 1, RLS_MAX_HOLD_SECONDS_MAX,
				  "seconds before a concurrency slot nothing gave back is freed",
				  &seconds))
			return -1;
		path_pop(p, saved);
	}
	l->max_hold_ns = l->concurrency == RLS_UNLIMITED ? 0 : seconds * RLS_NS_PER_SEC;
	return 0;
}

/*
 * "shape": {"max_delay_ms": N}. Only the rpm smoothing shapes (README, "Shaping"), so it needs
 * one: a finite rpm > 0 in the same entry. The delay stays under fq's default horizon (10 s),
 * past which fq drops a packet instead of holding it.
 */
static int parse_shape(struct parser *p, const json_t *v, struct rls_limits *l)
{
	static const char *const fields[] = { "max_delay_ms", NULL };
	size_t saved = p->path_len;
	const json_t *f;
	__u64 ms;

	if (expect_object(p, v, "of shaping, e.g. {\"max_delay_ms\": 2000}") ||
	    reject_unknown_fields(p, v, fields))
		return -1;
	if (l->rpm == RLS_UNLIMITED || l->rpm == 0)
		return fail(p, "shape needs a finite rpm > 0 in the same entry: only the rpm "
			    "smoothing shapes; set \"rpm\" or remove \"shape\"");
	f = json_object_get(v, "max_delay_ms");
	if (!f)
		return fail(p, "max_delay_ms required: the longest a request may be delayed "
			    "before it is refused instead, e.g. {\"max_delay_ms\": 2000}");
	path_push_key(p, "max_delay_ms");
	if (parse_bounded(p, f, 1, RLS_SHAPE_MAX_DELAY_MS_MAX,
			  "milliseconds a request may be delayed, below fq's 10 s horizon", &ms))
		return -1;
	path_pop(p, saved);
	l->shape_max_delay_ns = ms * 1000000ull;
	return 0;
}

static int parse_limits(struct parser *p, const json_t *v, struct rls_limits *l)
{
	size_t saved = p->path_len, i;
	const json_t *burst_v, *shape_v;
	__u32 burst = 0;

	if (expect_object(p, v, "of limits, e.g. {\"rpm\": 60}") ||
	    reject_unknown_fields(p, v, limits_fields))
		return -1;
	set_unlimited(l);
	for (i = 0; i < sizeof(limit_fields) / sizeof(limit_fields[0]); i++) {
		const json_t *field_v = json_object_get(v, limit_fields[i].name);

		if (!field_v)
			continue;
		path_push_key(p, limit_fields[i].name);
		if (parse_limit_field(p, field_v, &limit_fields[i], l))
			return -1;
		path_pop(p, saved);
	}
	burst_v = json_object_get(v, "burst");
	if (burst_v) {
		path_push_key(p, "burst");
		if (parse_burst(p, burst_v, l, &burst))
			return -1;
		path_pop(p, saved);
	}
	set_smoothing(l, burst);
	if (parse_token_fields(p, v, l) || parse_max_hold(p, v, l))
		return -1;
	shape_v = json_object_get(v, "shape");
	if (shape_v) {
		path_push_key(p, "shape");
		if (parse_shape(p, shape_v, l))
			return -1;
		path_pop(p, saved);
	}
	return 0;
}

/* ---- tiers ---- */

static int parse_tier(struct parser *p, const json_t *v, struct rls_tier *tier)
{
	bool has_default = false;
	const char *model;
	json_t *limits;

	if (expect_object(p, v, "mapping model names (or \"*\") to limits"))
		return -1;
	/* One spare entry for the implicit "*". */
	tier->entries = calloc(json_object_size(v) + 1, sizeof(*tier->entries));
	if (!tier->entries)
		return fail_oom(p);
	json_object_foreach((json_t *)v, model, limits) {
		struct rls_tier_entry *e = &tier->entries[tier->nr_entries];
		size_t saved = path_push_key(p, model);

		if (copy_name(p, model, e->model, sizeof(e->model), "model") ||
		    parse_limits(p, limits, &e->limits))
			return -1;
		path_pop(p, saved);
		has_default |= !strcmp(model, "*");
		tier->nr_entries++;
	}
	if (!has_default) {
		struct rls_tier_entry *e = &tier->entries[tier->nr_entries++];

		strcpy(e->model, "*");
		set_unlimited(&e->limits);
	}
	return 0;
}

/* t->models: every model some tier names, once, in file order. */
static int list_models(struct parser *p, struct rls_table *t)
{
	size_t i, j, entries = 0;
	json_t *seen = json_object();

	for (i = 0; i < t->nr_tiers; i++)
		entries += t->tiers[i].nr_entries;
	t->models = calloc(entries + 1, sizeof(*t->models));
	if (!seen || !t->models) {
		json_decref(seen);
		return fail_oom(p);
	}
	for (i = 0; i < t->nr_tiers; i++)
		for (j = 0; j < t->tiers[i].nr_entries; j++) {
			const char *model = t->tiers[i].entries[j].model;

			if (!strcmp(model, "*") || json_object_get(seen, model))
				continue;
			if (json_object_set_new(seen, model, json_null())) {
				json_decref(seen);
				return fail_oom(p);
			}
			t->models[t->nr_models++] = model;
		}
	json_decref(seen);
	return 0;
}

/*
 * What the maps hold: the live table and the next one side by side, each at most RLS_MAX_LIMITS
 * (tier, model) entries, with one more per tier for a hidden model, and RLS_MAX_MODELS model
 * names. A table past either would load once and then make every reload fail: say so here.
 */
static int check_map_room(struct parser *p, const struct rls_table *t)
{
	size_t i, entries = 0;

	for (i = 0; i < t->nr_tiers; i++)
		entries += t->tiers[i].nr_entries + 1;
	if (t->nr_models > RLS_MAX_MODELS)
		return fail(p, "%zu model names, at most %u fit the models map: name fewer models "
			    "(those a tier does not name share its \"*\")", t->nr_models,
			    RLS_MAX_MODELS);
	if (entries > RLS_MAX_LIMITS)
		return fail(p, "%zu limit entries (one per tier and model, and one per tier for "
			    "hidden models), at most %u fit the limits map: name fewer models per tier "
			    "or merge tiers", entries, RLS_MAX_LIMITS);
	return 0;
}

static int parse_tiers(struct parser *p, const json_t *v, struct rls_table *t)
{
	const char *name;
	json_t *tier;
	size_t i = 0;

	path_push_key(p, "tiers");
	if (!v)
		return fail(p, "required: define at least one tier, e.g. "
			    "\"tiers\": {\"free\": {\"*\": {\"rpm\": 3}}}");
	if (expect_object(p, v, "mapping tier names to models"))
		return -1;
	if (!json_object_size(v))
		return fail(p, "no tiers: define at least one, e.g. {\"free\": {\"*\": {\"rpm\": 3}}}");
	if (json_object_size(v) > RLS_MAX_TIERS)
		return fail(p, "%zu tiers, at most %d are supported", json_object_size(v),
			    RLS_MAX_TIERS);
	t->tiers = calloc(json_object_size(v), sizeof(*t->tiers));
	p->tier_ids = json_object();
	if (!t->tiers || !p->tier_ids)
		return fail_oom(p);
	t->nr_tiers = json_object_size(v);
	json_object_foreach((json_t *)v, name, tier) {
		size_t saved = path_push_key(p, name);

		if (copy_name(p, name, t->tiers[i].name, sizeof(t->tiers[i].name), "tier") ||
		    parse_tier(p, tier, &t->tiers[i]))
			return -1;
		if (json_object_set_new(p->tier_ids, name, json_integer((json_int_t)i)))
			return fail_oom(p);
		path_pop(p, saved);
		i++;
	}
	if (list_models(p, t) || check_map_room(p, t))
		return -1;
	path_reset(p);
	return 0;
}

static void list_tiers(const struct rls_table *t, char *buf, size_t len)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < t->nr_tiers; i++) {
		if (strlen(buf) + strlen(t->tiers[i].name) + 8 > len) {
			strncat(buf, ", ...", len - strlen(buf) - 1);
			return;
		}
		if (i)
			strcat(buf, ", ");
		strcat(buf, t->tiers[i].name);
	}
}

static int find_tier(struct parser *p, const json_t *v, long *index)
{
	char buf[128], names[256];
	const json_t *id;

	if (!json_is_string(v))
		return fail(p, "must be a tier name, got %s", describe(v, buf, sizeof(buf)));
	id = json_object_get(p->tier_ids, json_string_value(v));
	if (!id) {
		list_tiers(p->table, names, sizeof(names));
		return fail(p, "unknown tier %s (tiers defined: %s)",
			    quote(json_string_value(v), buf, sizeof(buf)), names);
	}
	*index = (long)json_integer_value(id);
	return 0;
}

static int parse_default_tier(struct parser *p, const json_t *v, struct rls_table *t)
{
	path_push_key(p, "default_tier");
	if (v && find_tier(p, v, &t->default_tier))
		return -1;
	path_reset(p);
	return 0;
}

static int parse_anonymous_ipv6_prefix(struct parser *p, const json_t *v, struct rls_table *t)
{
	__u64 prefix;

	path_push_key(p, "anonymous_ipv6_prefix");
	if (v && parse_bounded(p, v, RLS_ANON_IPV6_PREFIX_MIN, 128,
			       "bits of an IPv6 client address that its default-tier counter keys on",
			       &prefix))
		return -1;
	if (v)
		t->anonymous_ipv6_prefix = (__u32)prefix;
	path_reset(p);
	return 0;
}

/* ---- fleet ---- */

/* "HOST:PORT" or "[IPv6]:PORT": where the fleet's Redis listens. */
static int parse_redis_address(struct parser *p, const json_t *v, struct rls_table *t)
{
	const char *s, *colon, *host;
	char buf[128], *end = NULL;
	size_t host_len, i;
	unsigned long port = 0;

	if (!json_is_string(v))
		return fail(p, "must be Redis's address as \"HOST:PORT\", e.g. \"10.0.0.5:6379\", "
			    "got %s", describe(v, buf, sizeof(buf)));
	s = json_string_value(v);
	colon = strrchr(s, ':');
	host = s;
	host_len = colon ? (size_t)(colon - s) : 0;
	if (host_len >= 2 && s[0] == '[' && s[host_len - 1] == ']') {
		host++;
		host_len -= 2;
	}
	errno = 0;
	/* Digits only: strtoul() alone would take "+1", " 1" and "-1". */
	if (colon && colon[1] >= '0' && colon[1] <= '9')
		port = strtoul(colon + 1, &end, 10);
	if (!end || errno || *end || port < 1 || port > 65535)
		return fail(p, "%s has no port 1..65535 after its last ':' (\"HOST:PORT\", "
			    "\"[IPv6]:PORT\")", quote(s, buf, sizeof(buf)));
	if (!host_len || host_len >= sizeof(t->fleet_redis_host))
		return fail(p, "%s: the host is 1..%zu bytes", quote(s, buf, sizeof(buf)),
			    sizeof(t->fleet_redis_host) - 1);
	for (i = 0; i < host_len; i++)
		if ((unsigned char)host[i] <= ' ' || host[i] == 0x7f || host[i] == '[' ||
		    host[i] == ']' || host[i] == '/')
			return fail(p, "%s: the host has a character no address or name has",
				    quote(s, buf, sizeof(buf)));
	memcpy(t->fleet_redis_host, host, host_len);
	t->fleet_redis_host[host_len] = '\0';
	t->fleet_redis_port = (__u16)port;
	return 0;
}

static int parse_fleet(struct parser *p, const json_t *v, struct rls_table *t)
{
	static const char *const fields[] = { "redis", "hosts", "unleased", NULL };
	__u64 n;
	size_t here;

	if (!v)
		return 0;
	path_push_key(p, "fleet");
	here = p->path_len;
	if (expect_object(p, v, "with \"redis\" and \"hosts\", and optionally \"unleased\"") ||
	    reject_unknown_fields(p, v, fields))
		return -1;
	path_push_key(p, "redis");
	if (!json_object_get(v, "redis"))
		return fail(p, "required: where the fleet's Redis listens, e.g. \"10.0.0.5:6379\"");
	if (parse_redis_address(p, json_object_get(v, "redis"), t))
		return -1;
	path_pop(p, here);
	path_push_key(p, "hosts");
	if (!json_object_get(v, "hosts"))
		return fail(p, "required: how many gateways share the limits (each falls back to "
			    "limit / hosts while Redis is away)");
	if (parse_bounded(p, json_object_get(v, "hosts"), 1, RLS_FLEET_HOSTS_MAX,
			  "gateways sharing the limits", &n))
		return -1;
	t->fleet_hosts = (__u32)n;
	path_pop(p, here);
	path_push_key(p, "unleased");
	if (json_object_get(v, "unleased")) {
		if (parse_bounded(p, json_object_get(v, "unleased"), 0, 1000000,
				  "requests a window admits on a host before its first lease", &n))
			return -1;
		t->fleet_unleased = (__u32)n;
	}
	path_reset(p);
	return 0;
}

/* ---- accounts: keys ---- */

static int parse_digest(struct parser *p, const char *hex, size_t len, __u8 out[RLS_SHA256_LEN])
{
	size_t i;

	if (len != 2 * RLS_SHA256_LEN)
		return fail(p, "\"sha256:\" must be followed by 64 hex digits, got %zu characters",
			    len);
	for (i = 0; i < len; i++)
		if (rls_hex_digit(hex[i]) < 0)
			return fail(p, "\"sha256:\" digest has a non-hex character at position %zu "
				    "(expected 64 hex digits)", i);
	for (i = 0; i < RLS_SHA256_LEN; i++)
		out[i] = (__u8)(rls_hex_digit(hex[2 * i]) << 4 | rls_hex_digit(hex[2 * i + 1]));
	return 0;
}

/* Messages never quote a plain key: they end up in logs, and the key is a credential. */
static int hash_plain_key(struct parser *p, const char *key, size_t len, __u8 out[RLS_SHA256_LEN],
			  struct rls_key_span *span)
{
	__u8 buf[RLS_KEY_HASH_BUF] = { 0 };
	size_t i;

	if (!len)
		return fail(p, "empty API key");
	if (len > RLS_API_KEY_MAX)
		return fail(p, "API key is %zu bytes, the data path hashes keys of at most %d bytes",
			    len, RLS_API_KEY_MAX);
	for (i = 0; i < len; i++)
		if ((unsigned char)key[i] <= ' ' || (unsigned char)key[i] >= 0x7f)
			return fail(p, "API key byte %zu is a space or not printable ASCII (keys "
				    "travel in HTTP headers)", i);
	memcpy(buf, key, len);
	rls_key_hash(buf, (__u32)len, out);
	explicit_bzero(buf, sizeof(buf));
	*span = (struct rls_key_span){ (__u32)p->key_bytes_len, (__u32)len };
	memcpy(p->key_bytes + p->key_bytes_len, key, len);
	p->key_bytes_len += len;
	return 0;
}

/* Room in the table's all_keys, all_key_spans and all_cidrs for keys and cidrs more. */
static int reserve(struct parser *p, struct rls_table *t, size_t keys, size_t cidrs)
{
	void *more;

	if (keys) {
		more = room_for(t->all_keys, &p->keys_room, p->nr_keys + keys, sizeof(*t->all_keys));
		if (!more)
			return fail_oom(p);
		t->all_keys = more;
		more = room_for(t->all_key_spans, &p->spans_room, p->nr_keys + keys,
				sizeof(*t->all_key_spans));
		if (!more)
			return fail_oom(p);
		t->all_key_spans = more;
	}
	if (cidrs) {
		more = room_for(t->all_cidrs, &p->cidrs_room, p->nr_cidrs + cidrs,
				sizeof(*t->all_cidrs));
		if (!more)
			return fail_oom(p);
		t->all_cidrs = more;
	}
	return 0;
}

/* The API key or "sha256:" digest s, of len bytes, as the next key of the pool (reserved). */
static int add_key(struct parser *p, struct rls_table *t, const char *s, size_t len)
{
	struct rls_key_span *span = &t->all_key_spans[p->nr_keys];
	__u8 *out = t->all_keys[p->nr_keys];
	int ret;

	*span = (struct rls_key_span){ 0, 0 };
	if (len >= SHA256_PREFIX_LEN && !strncasecmp(s, SHA256_PREFIX, SHA256_PREFIX_LEN)) {
		p->nr_digest_keys++;
		ret = parse_digest(p, s + SHA256_PREFIX_LEN, len - SHA256_PREFIX_LEN, out);
	} else {
		ret = hash_plain_key(p, s, len, out, span);
	}
	p->nr_keys += !ret;
	return ret;
}

static int parse_key(struct parser *p, const json_t *v, struct rls_table *t)
{
	char buf[128];
	const char *s;
	int ret;

	if (!json_is_string(v))
		return fail(p, "must be a string: an API key or \"sha256:\" and its 64-hex-digit "
			    "digest, got %s", describe(v, buf, sizeof(buf)));
	s = json_string_value(v);
	ret = add_key(p, t, s, json_string_length(v));
	/*
	 * jansson's copy would otherwise outlive the parse in freed memory. (The file text and
	 * jansson's lexer buffer held it too; rls_table_load() wipes the former.)
	 */
	explicit_bzero((char *)s, json_string_length(v));
	return ret;
}

static int parse_keys(struct parser *p, const json_t *v, struct rls_table *t, struct rls_account *a)
{
	char buf[128];
	json_t *key;
	size_t i;

	if (!v)
		return 0;
	if (!json_is_array(v))
		return fail(p, "must be an array of API keys or \"sha256:<64 hex digits>\" digests, "
			    "got %s", describe(v, buf, sizeof(buf)));
	if (reserve(p, t, json_array_size(v), 0))
		return -1;
	a->nr_keys = json_array_size(v);
	json_array_foreach(v, i, key) {
		size_t saved = path_push_index(p, i);

		if (parse_key(p, key, t))
			return -1;
		path_pop(p, saved);
	}
	return 0;
}

/* ---- accounts: cidrs ---- */

static void format_cidr(const struct rls_cidr *c, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];

	if (rls_is_ipv4_mapped(c->addr) && c->prefixlen >= 96) {
		inet_ntop(AF_INET, c->addr + 12, addr, sizeof(addr));
		snprintf(buf, len, "%s/%u", addr, c->prefixlen - 96);
	} else {
		inet_ntop(AF_INET6, c->addr, addr, sizeof(addr));
		snprintf(buf, len, "%s/%u", addr, c->prefixlen);
	}
}

static void clear_host_bits(struct rls_cidr *c)
{
	size_t i;

	for (i = 0; i < 16; i++) {
		size_t first_bit = i * 8;

		if (first_bit >= c->prefixlen)
			c->addr[i] = 0;
		else if (first_bit + 8 > c->prefixlen)
			c->addr[i] &= (__u8)(0xff << (8 - (c->prefixlen - first_bit)));
	}
}

/* "/n" with n in 0..max; decimal digits only, so "/+8" and "/ 8" are not quietly accepted. */
static bool parse_prefixlen(const char *s, unsigned int max, unsigned int *out)
{
	unsigned int n = 0;
	size_t i;

	if (!*s || strlen(s) > 3)
		return false;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		n = n * 10 + (unsigned int)(s[i] - '0');
	}
	*out = n;
	return n <= max;
}

/* The address part of "addr[/n]" into c (IPv4 mapped); returns the family's bit count, or 0. */
static unsigned int parse_cidr_addr(const char *s, size_t len, struct rls_cidr *c)
{
	char addr[INET6_ADDRSTRLEN];

	if (len >= sizeof(addr))
		return 0;
	memcpy(addr, s, len);
	addr[len] = '\0';
	memset(c, 0, sizeof(*c));
	if (!strchr(addr, ':')) {
		c->addr[10] = c->addr[11] = 0xff;
		return inet_pton(AF_INET, addr, c->addr + 12) == 1 ? 32 : 0;
	}
	return inet_pton(AF_INET6, addr, c->addr) == 1 ? 128 : 0;
}

/* The network s (a string ended by NUL) as the next of all_cidrs (reserved). */
static int add_cidr(struct parser *p, struct rls_table *t, const char *s)
{
	struct rls_cidr *c = &t->all_cidrs[p->nr_cidrs], net;
	char buf[128], net_buf[64];
	unsigned int bits, plen;
	const char *slash;

	slash = strchr(s, '/');
	bits = parse_cidr_addr(s, slash ? (size_t)(slash - s) : strlen(s), c);
	if (!bits)
		return fail(p, "%s is not an IPv4 or IPv6 network (expected a.b.c.d/n or x:y::/n)",
			    quote(s, buf, sizeof(buf)));
	plen = bits;
	if (slash && !parse_prefixlen(slash + 1, bits, &plen))
		return fail(p, "%s: the prefix length must be 0..%u", quote(s, buf, sizeof(buf)),
			    bits);
	c->prefixlen = plen + 128 - bits;
	net = *c;
	clear_host_bits(&net);
	if (memcmp(net.addr, c->addr, sizeof(net.addr))) {
		format_cidr(&net, net_buf, sizeof(net_buf));
		return fail(p, "%s has host bits set: did you mean \"%s\"?",
			    quote(s, buf, sizeof(buf)), net_buf);
	}
	p->nr_cidrs++;
	return 0;
}

static int parse_cidr(struct parser *p, const json_t *v, struct rls_table *t)
{
	char buf[128];

	if (!json_is_string(v))
		return fail(p, "must be a string such as \"198.18.1.0/24\" or \"2001:db8::/32\", "
			    "got %s", describe(v, buf, sizeof(buf)));
	return add_cidr(p, t, json_string_value(v));
}

static int parse_cidrs(struct parser *p, const json_t *v, struct rls_table *t,
		       struct rls_account *a)
{
	char buf[128];
	json_t *cidr;
	size_t i;

	if (!v)
		return 0;
	if (!json_is_array(v))
		return fail(p, "must be an array of networks such as \"198.18.1.0/24\", got %s",
			    describe(v, buf, sizeof(buf)));
	if (reserve(p, t, 0, json_array_size(v)))
		return -1;
	a->nr_cidrs = json_array_size(v);
	json_array_foreach(v, i, cidr) {
		size_t saved = path_push_index(p, i);

		if (parse_cidr(p, cidr, t))
			return -1;
		path_pop(p, saved);
	}
	return 0;
}

/* ---- accounts ---- */

/* Point each account at its keys and networks, now that none of all_* moves any more. */
static void point_accounts(struct rls_table *t)
{
	size_t i, keys = 0, cidrs = 0;

	for (i = 0; i < t->nr_accounts; i++) {
		struct rls_account *a = &t->accounts[i];

		a->keys = a->nr_keys ? &t->all_keys[keys] : NULL;
		a->key_spans = a->nr_keys ? &t->all_key_spans[keys] : NULL;
		a->cidrs = a->nr_cidrs ? &t->all_cidrs[cidrs] : NULL;
		keys += a->nr_keys;
		cidrs += a->nr_cidrs;
	}
}

/* Every account has a key or a network by which its requests are known. */
static int check_identified(struct parser *p, const struct rls_account *a)
{
	if (!a->nr_keys && !a->nr_cidrs)
		return fail(p, "account has no keys and no cidrs: add \"keys\" or \"cidrs\" so its "
			    "requests can be recognized");
	return 0;
}

static int parse_account(struct parser *p, const json_t *v, struct rls_table *t,
			 struct rls_account *a)
{
	static const char *const fields[] = { "tier", "keys", "cidrs", NULL };
	size_t saved = p->path_len;
	long tier;

	if (expect_object(p, v, "with \"tier\" and \"keys\" and/or \"cidrs\"") ||
	    reject_unknown_fields(p, v, fields))
		return -1;
	path_push_key(p, "tier");
	if (!json_object_get(v, "tier"))
		return fail(p, "required: the name of the account's tier");
	if (find_tier(p, json_object_get(v, "tier"), &tier))
		return -1;
	a->tier = (size_t)tier;
	path_pop(p, saved);
	path_push_key(p, "keys");
	if (parse_keys(p, json_object_get(v, "keys"), t, a))
		return -1;
	path_pop(p, saved);
	path_push_key(p, "cidrs");
	if (parse_cidrs(p, json_object_get(v, "cidrs"), t, a))
		return -1;
	path_pop(p, saved);
	return check_identified(p, a);
}

static int parse_accounts(struct parser *p, const json_t *v, struct rls_table *t)
{
	const char *name;
	json_t *account;
	size_t i = 0;

	path_push_key(p, "accounts");
	if (!v) {
		path_reset(p);
		return 0;
	}
	if (expect_object(p, v, "mapping account names to {\"tier\", \"keys\", \"cidrs\"}"))
		return -1;
	if (json_object_size(v) > RLS_MAX_ACCOUNTS)
		return fail(p, "%zu accounts, at most %u are supported", json_object_size(v),
			    RLS_MAX_ACCOUNTS);
	if (!json_object_size(v)) {
		path_reset(p);
		return 0;
	}
	t->accounts = calloc(json_object_size(v), sizeof(*t->accounts));
	if (!t->accounts)
		return fail_oom(p);
	t->nr_accounts = json_object_size(v);
	json_object_foreach((json_t *)v, name, account) {
		struct rls_account *a = &t->accounts[i++];
		size_t saved = path_push_key(p, name);

		if (copy_name(p, name, a->name, sizeof(a->name), "account") ||
		    parse_account(p, account, t, a))
			return -1;
		path_pop(p, saved);
	}
	point_accounts(t);
	path_reset(p);
	return 0;
}

/* ---- one key, one network: each identifies exactly one account ---- */

_Static_assert(sizeof(struct rls_cidr) == 20, "repeats are found by all of its bytes");

/* Where key (or network) k of all_keys (or all_cidrs) is: its account, and its index there. */
struct item_place {
	size_t account, index;
};

static struct item_place place_of(const struct rls_table *t, bool keys, size_t k)
{
	struct item_place at = { 0, k };
	size_t count;

	for (; at.account < t->nr_accounts; at.account++) {
		count = keys ? t->accounts[at.account].nr_keys : t->accounts[at.account].nr_cidrs;
		if (at.index < count)
			break;
		at.index -= count;
	}
	return at;
}

static void path_set_item(struct parser *p, const struct rls_table *t, const char *field,
			  struct item_place at)
{
	path_reset(p);
	path_push_key(p, "accounts");
	path_push_key(p, t->accounts[at.account].name);
	path_push_key(p, field);
	path_push_index(p, at.index);
}

static int fail_repeat(struct parser *p, const struct rls_table *t, bool keys, size_t repeat,
		       size_t first)
{
	struct item_place again = place_of(t, keys, repeat), before = place_of(t, keys, first);
	const char *field = keys ? "keys" : "cidrs";
	char what[64], first_path[sizeof(p->path)], name[128];

	if (keys)
		snprintf(what, sizeof(what), "key");
	else
		format_cidr(&t->all_cidrs[first], what, sizeof(what));
	path_set_item(p, t, field, before);
	memcpy(first_path, p->path, sizeof(first_path));
	path_set_item(p, t, field, again);
	if (before.account == again.account)
		return fail(p, "%s is already listed at %s%s: remove one", what, first_path,
			    keys ? " (a key and its sha256: digest are the same key)" : "");
	return fail(p, "%s already belongs to account %s (%s): it can identify only one account, "
		    "remove it from one of them", what,
		    quote(t->accounts[before.account].name, name, sizeof(name)), first_path);
}

/* The first key (or network), in file order, that an earlier one already is. */
static int reject_shared(struct parser *p, const struct rls_table *t, bool keys)
{
	size_t n = keys ? p->nr_keys : p->nr_cidrs;
	long repeat, first;

	if (n > (keys ? RLS_MAX_API_KEYS : RLS_MAX_CIDRS))
		return fail(p, "accounts: %zu %s in total, at most %u are supported", n,
			    keys ? "API keys" : "cidrs", keys ? RLS_MAX_API_KEYS : RLS_MAX_CIDRS);
	if (keys ? rls_item_first_repeat(t->all_keys, sizeof(*t->all_keys), RLS_SHA256_LEN, n,
					 &repeat, &first)
		 : rls_item_first_repeat(t->all_cidrs, sizeof(*t->all_cidrs),
					 sizeof(*t->all_cidrs), n, &repeat, &first))
		return fail_oom(p);
	return repeat < 0 ? 0 : fail_repeat(p, t, keys, (size_t)repeat, (size_t)first);
}

/* ---- the fast way through the accounts ---- */

/*
 * jansson makes five objects or more of each account (the account, its members, its keys and
 * their array): building and walking them was most of the parse of a million accounts, and
 * their 700 MB most of its page faults. So the text is scanned first: each member of the root
 * but "accounts" is still parsed by jansson (a small value each), while the accounts are read
 * straight from the text into rls_table.accounts, every field through the same checks as on
 * jansson's way. The scan takes only what it is sure of: whitespace, the structure of the
 * accounts, strings of printable ASCII without escapes. Anything else, and any table the
 * checks refuse, is left to jansson's parse of the whole text, which reads escapes and UTF-8
 * and gives the message: both ways make the same table of a text the scan takes
 * (tests/unit/test_table_scan.c).
 */
struct scan {
	const char *at, *end;
};

static void scan_space(struct scan *c)
{
	while (c->at < c->end &&
	       (*c->at == ' ' || *c->at == '\n' || *c->at == '\r' || *c->at == '\t'))
		c->at++;
}

/* The byte b, after whitespace. */
static bool scan_byte(struct scan *c, char b)
{
	scan_space(c);
	if (c->at == c->end || *c->at != b)
		return false;
	c->at++;
	return true;
}

/* A string of printable ASCII without escapes, after whitespace: its len bytes at *s. */
static bool scan_plain_string(struct scan *c, const char **s, size_t *len)
{
	const char *q;

	if (!scan_byte(c, '"'))
		return false;
	for (q = c->at; q < c->end && *q != '"'; q++)
		if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e || *q == '\\')
			return false;
	if (q == c->end)
		return false;
	*s = c->at;
	*len = (size_t)(q - c->at);
	c->at = q + 1;
	return true;
}

/*
 * Past the JSON value after whitespace, for jansson to parse: where a well-formed value ends
 * (whether it is well formed, jansson says).
 */
static bool scan_past_value(struct scan *c)
{
	size_t depth = 0;
	char b;

	scan_space(c);
	do {
		if (c->at == c->end)
			return false;
		b = *c->at++;
		if (b == '"') {
			for (; c->at < c->end && *c->at != '"'; c->at++)
				if (*c->at == '\\' && c->at + 1 < c->end)
					c->at++;
			if (c->at == c->end)
				return false;
			c->at++;
		} else if (b == '{' || b == '[') {
			depth++;
		} else if (b == '}' || b == ']') {
			if (!depth)
				return false;
			depth--;
		} else if (!depth) {
			/* A number, true, false or null: up to what ends it. */
			while (c->at < c->end && !strchr(",}] \n\r\t", *c->at))
				c->at++;
		}
	} while (depth);
	return true;
}

/* An array of strings the scan takes, each given to add(). */
static int scan_strings(struct parser *p, struct scan *c, struct rls_table *t, size_t *n,
			int (*add)(struct parser *, struct rls_table *, const char *, size_t))
{
	const char *s;
	size_t len;

	if (!scan_byte(c, '['))
		return -1;
	if (scan_byte(c, ']'))
		return 0;
	do {
		if (!scan_plain_string(c, &s, &len) || add(p, t, s, len))
			return -1;
		(*n)++;
	} while (scan_byte(c, ','));
	return scan_byte(c, ']') ? 0 : -1;
}

static int scan_key(struct parser *p, struct rls_table *t, const char *s, size_t len)
{
	return reserve(p, t, 1, 0) ? -1 : add_key(p, t, s, len);
}

static int scan_cidr(struct parser *p, struct rls_table *t, const char *s, size_t len)
{
	char cidr[64]; /* more than the longest network: a longer string is none */

	if (len >= sizeof(cidr) || reserve(p, t, 0, 1))
		return -1;
	memcpy(cidr, s, len);
	cidr[len] = '\0';
	return add_cidr(p, t, cidr);
}

/* An account's object, as parse_account() reads it; a->tier is where its tier's name is. */
static int scan_account(struct parser *p, struct scan *c, struct rls_table *t,
			struct rls_account *a)
{
	bool tier = false, keys = false, cidrs = false;
	const char *s;
	size_t len;
	int ret;

	if (!scan_byte(c, '{'))
		return -1;
	do {
		if (!scan_plain_string(c, &s, &len) || !scan_byte(c, ':'))
			return -1;
		if (len == 4 && !memcmp(s, "tier", 4) && !tier) {
			tier = true;
			ret = scan_plain_string(c, &s, &len) ? 0 : -1;
			if (!ret)
				a->tier = (size_t)(s - p->text);
		} else if (len == 4 && !memcmp(s, "keys", 4) && !keys) {
			keys = true;
			ret = scan_strings(p, c, t, &a->nr_keys, scan_key);
		} else if (len == 5 && !memcmp(s, "cidrs", 5) && !cidrs) {
			cidrs = true;
			ret = scan_strings(p, c, t, &a->nr_cidrs, scan_cidr);
		} else {
			ret = -1;
		}
		if (ret)
			return -1;
	} while (scan_byte(c, ','));
	if (!scan_byte(c, '}') || !tier)
		return -1;
	return check_identified(p, a);
}

/* Two accounts of one name: jansson refuses the text (a repeated key), and says where. */
static int scan_repeated_names(const struct rls_table *t)
{
	long repeat, first;

	if (rls_item_first_repeat(t->accounts[0].name, sizeof(*t->accounts), RLS_ACCOUNT_NAME_MAX,
				  t->nr_accounts, &repeat, &first))
		return -1;
	return repeat < 0 ? 0 : -1;
}

static int scan_accounts(struct parser *p, struct scan *c, struct rls_table *t)
{
	struct rls_account *a;
	const char *name;
	size_t len;
	void *more;

	if (!scan_byte(c, '{'))
		return -1;
	if (scan_byte(c, '}'))
		return 0;
	do {
		if (t->nr_accounts == RLS_MAX_ACCOUNTS)
			return -1;
		more = room_for(t->accounts, &p->accounts_room, t->nr_accounts + 1,
				sizeof(*t->accounts));
		if (!more)
			return -1;
		t->accounts = more;
		a = memset(&t->accounts[t->nr_accounts++], 0, sizeof(*a));
		if (!scan_plain_string(c, &name, &len) || !scan_byte(c, ':') ||
		    copy_name_len(p, name, len, a->name, sizeof(a->name), "account") ||
		    scan_account(p, c, t, a))
			return -1;
	} while (scan_byte(c, ','));
	if (!scan_byte(c, '}'))
		return -1;
	point_accounts(t);
	return scan_repeated_names(t);
}

/* The scanned accounts' tiers, found by the names the text gives them. */
static int find_scanned_tiers(struct parser *p, struct rls_table *t)
{
	const char *name, *end = p->text + p->text_len, *last = NULL;
	size_t i, len, last_len = 0;
	const json_t *id = NULL;

	for (i = 0; i < t->nr_accounts; i++) {
		name = p->text + t->accounts[i].tier;
		len = (size_t)((const char *)memchr(name, '"', (size_t)(end - name)) - name);
		/* Accounts of one tier often come one after another. */
		if (!last || len != last_len || memcmp(name, last, len)) {
			id = json_object_getn(p->tier_ids, name, len);
			if (!id)
				return -1;
			last = name;
			last_len = len;
		}
		t->accounts[i].tier = (size_t)json_integer_value(id);
	}
	return 0;
}

/* ---- the table ---- */

/*
 * root's fields into t. accounts_scanned: t has the accounts (scan_accounts()), their tiers
 * still to be found, and root has none; else they are root's "accounts".
 */
static int parse_root(struct parser *p, const json_t *root, struct rls_table *t,
		      bool accounts_scanned)
{
	static const char *const fields[] = {
		"listen", "identify", "tiers", "accounts", "default_tier", "anonymous_ipv6_prefix",
		"fleet", NULL,
	};
	char buf[128];

	if (!json_is_object(root))
		return fail(p, "the table must be a JSON object, got %s",
			    describe(root, buf, sizeof(buf)));
	if (reject_unknown_fields(p, root, fields) ||
	    parse_listen(p, json_object_get(root, "listen"), t) ||
	    parse_identify(p, json_object_get(root, "identify"), t) ||
	    parse_tiers(p, json_object_get(root, "tiers"), t) ||
	    (accounts_scanned ? find_scanned_tiers(p, t)
			      : parse_accounts(p, json_object_get(root, "accounts"), t)) ||
	    parse_default_tier(p, json_object_get(root, "default_tier"), t) ||
	    parse_anonymous_ipv6_prefix(p, json_object_get(root, "anonymous_ipv6_prefix"), t) ||
	    parse_fleet(p, json_object_get(root, "fleet"), t) ||
	    reject_shared(p, t, true) || reject_shared(p, t, false))
		return -1;
	return 0;
}

static void init_table(struct rls_table *t)
{
	memset(t, 0, sizeof(*t));
	t->default_tier = -1;
	t->anonymous_ipv6_prefix = RLS_ANON_IPV6_PREFIX_DEFAULT;
	t->fleet_unleased = RLS_FLEET_UNLEASED_DEFAULT;
}

/*
 * A table is a regular file of at most RLS_TABLE_MAX_BYTES: a FIFO would block a load (and a
 * daemon's reload) for ever, and a device such as /dev/zero would be read without end.
 */
#define RLS_TABLE_MAX_BYTES (1ull << 30)

/*
 * Where jansson's allocations go while a table is parsed: large chunks handed out in order, and
 * a free that does nothing; the whole arena is wiped (it held the plain-text API keys) and
 * released at once when the parse is done. A million accounts are several million small
 * objects: allocating them one by one and freeing them one by one took more than half of the
 * parse. rlshape parses one table at a time, and nothing else in it uses jansson (`rlshape
 * load` parses on a thread of its own while the other loads the BPF programs, with libbpf).
 */
struct arena_chunk {
	struct arena_chunk *prev;
	size_t used, size;
	max_align_t data[];
};

static struct arena_chunk *arena;

/*
 * Chunks double from ARENA_FIRST_CHUNK up to ARENA_CHUNK: a table of a few accounts (`rlshape
 * check`, a test's table) takes 64 KiB, not 4 MiB, and a million accounts take a few chunks
 * more than before. Under ASan, every chunk's shadow is written when it is allocated and
 * freed: 4 MiB chunks for small tables made test_table_scan's thousands of parses take minutes.
 */
#define ARENA_FIRST_CHUNK (64u << 10)
#define ARENA_CHUNK       (4u << 20)

static void *arena_alloc(size_t n)
{
	struct arena_chunk *c = arena;
	/* Rounded up to malloc's alignment, not to the size of max_align_t (32 bytes here, for
	 * 16-byte alignment): jansson's objects are small, and a million accounts are 10 million of
	 * them. */
	size_t need = (n + _Alignof(max_align_t) - 1) / _Alignof(max_align_t) * _Alignof(max_align_t);
	void *p;

	if (n > RLS_TABLE_MAX_BYTES)
		return NULL; /* no part of a table is larger than the table */
	if (!c || c->size - c->used < need) {
		size_t size = ARENA_FIRST_CHUNK;

		if (c)
			size = c->size < ARENA_CHUNK / 2 ? c->size * 2 : ARENA_CHUNK;
		if (need > size)
			size = need;

		c = malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->prev = arena;
		c->used = 0;
		c->size = size;
		arena = c;
	}
	p = (unsigned char *)c->data + c->used;
	c->used += need;
	return p;
}

static void arena_free(void *p)
{
	(void)p;
}

static void arena_release(void)
{
	struct arena_chunk *c, *prev;

	for (c = arena; c; c = prev) {
		prev = c->prev;
		explicit_bzero(c->data, c->used);
		free(c);
	}
	arena = NULL;
}

/*
 * The table in text by the fast way into t: 0, or -1 when it is left to jansson's parse (a
 * text the scan does not take, or a table the checks refuse).
 */
static int scan_table(struct parser *p, const char *text, size_t len, struct rls_table *t)
{
	struct scan c = { text, text + len };
	json_t *root = json_object(), *v;
	bool accounts = false;
	const char *key, *start;
	json_error_t jerr;
	size_t key_len;
	int ret = -1;

	p->text = text;
	p->text_len = len;
	if (!root || !scan_byte(&c, '{'))
		goto out;
	do {
		if (!scan_plain_string(&c, &key, &key_len) || !scan_byte(&c, ':'))
			goto out;
		if (key_len == 8 && !memcmp(key, "accounts", 8)) {
			if (accounts || scan_accounts(p, &c, t))
				goto out;
			accounts = true;
			continue;
		}
		scan_space(&c);
		start = c.at;
		if (!scan_past_value(&c))
			goto out;
		v = json_loadb(start, (size_t)(c.at - start), JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
			       &jerr);
		if (!v || json_object_getn(root, key, key_len) ||
		    json_object_setn_new(root, key, key_len, v))
			goto out;
	} while (scan_byte(&c, ','));
	if (!scan_byte(&c, '}'))
		goto out;
	scan_space(&c);
	if (c.at == c.end)
		ret = parse_root(p, root, t, true);
out:
	json_decref(root);
	return ret;
}

/* jansson's parse of the whole text into t: 0, or -1 with the message. */
static int parse_with_jansson(struct parser *p, const char *text, size_t len, struct rls_table *t)
{
	json_error_t jerr;
	json_t *root;

	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root)
		return parse_root(p, root, t, false);
	if (p->err && p->err_len) {
		snprintf(p->err, p->err_len, "%s:%d:%d: %s", p->file, jerr.line, jerr.column,
			 jerr.text);
		make_one_line(p->err);
	}
	return -1;
}

/* After a scan that left the text to jansson: as before it, the key bytes it read wiped. */
static void start_over(struct parser *p, struct rls_table *t)
{
	explicit_bzero(p->key_bytes, p->key_bytes_len);
	rls_table_free(t);
	arena_release();
	*p = (struct parser){ .file = p->file, .err = p->err, .err_len = p->err_len, .table = t,
			      .key_bytes = p->key_bytes };
	if (p->err && p->err_len)
		p->err[0] = '\0';
}

int rls_table_parse(const char *path_for_messages, const char *text, size_t len,
		    struct rls_table *table, char *err, size_t err_len)
{
	return rls_table_parse_by(RLS_PARSE_SCAN_OR_JANSSON, path_for_messages, text, len, table,
				  err, err_len);
}

int rls_table_parse_by(enum rls_parse_way way, const char *path_for_messages, const char *text,
		       size_t len, struct rls_table *table, char *err, size_t err_len)
{
	struct parser p = {
		.file = path_for_messages, .err = err, .err_len = err_len, .table = table,
	};
	json_malloc_t saved_malloc;
	json_free_t saved_free;
	int ret = -1;

	init_table(table);
	if (err && err_len)
		err[0] = '\0';
	if (strlen(path_for_messages) >= sizeof(table->path))
		return fail(&p, "path is too long");
	/* Every jansson object of this parse lives in the arena and goes with it: none is freed
	 * one by one, none outlives this function. */
	if (len > UINT32_MAX)
		return fail(&p, "larger than 4 GiB: no table is that large");
	p.key_bytes = malloc(len ? len : 1);
	if (!p.key_bytes)
		return fail_oom(&p);
	json_get_alloc_funcs(&saved_malloc, &saved_free);
	json_set_alloc_funcs(arena_alloc, arena_free);
	if (way != RLS_PARSE_JANSSON) {
		ret = scan_table(&p, text, len, table);
		if (ret)
			start_over(&p, table);
	}
	if (ret && way != RLS_PARSE_SCAN)
		ret = parse_with_jansson(&p, text, len, table);
	else if (ret)
		fail(&p, "left to jansson's parse by the scan");
	json_set_alloc_funcs(saved_malloc, saved_free);
	arena_release();
	table->key_bytes = p.key_bytes;
	table->key_bytes_len = p.key_bytes_len;
	table->nr_digest_keys = p.nr_digest_keys;
	if (ret) {
		rls_table_free(table);
		return -1;
	}
	strcpy(table->path, path_for_messages);
	rls_sha256_file_bytes(text, len, table->sha256);
	return 0;
}

/* The whole file in one malloc'd buffer; NULL with errno set on failure. */
static char *read_file(const char *path, size_t *len, const char **why)
{
	size_t cap = 64 * 1024, used = 0;
	char *buf = NULL;
	struct stat st;
	int fd, saved;

	*why = NULL;
	/* O_NONBLOCK: opening a FIFO with no writer must not wait. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		*why = "not a regular file (a FIFO or a device?): give the table as a file";
		close(fd);
		return NULL;
	}
	if ((unsigned long long)st.st_size > RLS_TABLE_MAX_BYTES) {
		*why = "larger than 1 GiB: no table is that large";
		close(fd);
		return NULL;
	}
	/* Room for the whole file and the read that finds its end: a table of 60 MB grown from
	 * 64 KiB was copied ten times over. */
	if ((size_t)st.st_size >= cap)
		cap = (size_t)st.st_size + 1;
	for (;;) {
		ssize_t n;

		if (used >= RLS_TABLE_MAX_BYTES) {
			*why = "grew past 1 GiB while being read";
			errno = EFBIG;
			goto fail;
		}

		if (!buf || used == cap) {
			char *bigger = malloc(buf ? cap * 2 : cap);

			if (!bigger)
				goto fail;
			if (buf) {
				memcpy(bigger, buf, used);
				/* Old buffers held file text, and the file may hold API keys. */
				explicit_bzero(buf, used);
				free(buf);
				cap *= 2;
			}
			buf = bigger;
		}
		n = read(fd, buf + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		used += (size_t)n;
	}
	close(fd);
	*len = used;
	return buf;
fail:
	saved = errno;
	if (buf)
		explicit_bzero(buf, used);
	free(buf);
	close(fd);
	errno = saved;
	return NULL;
}

int rls_table_load(const char *path, struct rls_table *table, char *err, size_t err_len)
{
	const char *why;
	size_t len;
	char *text;
	int ret;

	init_table(table);
	text = read_file(path, &len, &why);
	if (!text) {
		if (err && err_len) {
			snprintf(err, err_len, "%s: cannot read: %s", path, why ? why : strerror(errno));
			make_one_line(err);
		}
		return -1;
	}
	ret = rls_table_parse(path, text, len, table, err, err_len);
	explicit_bzero(text, len);
	free(text);
	return ret;
}

void rls_table_free(struct rls_table *table)
{
	size_t i;

	for (i = 0; i < table->nr_tiers; i++)
		free(table->tiers[i].entries);
	free(table->tiers);
	free(table->models);
	free(table->accounts);
	free(table->all_keys);
	free(table->all_key_spans);
	free(table->all_cidrs);
	if (table->key_bytes)
		explicit_bzero(table->key_bytes, table->key_bytes_len);
	free(table->key_bytes);
	init_table(table);
}

bool rls_table_key_siphash(const struct rls_table *t, const struct rls_account *a, size_t j,
			   const __u8 secret[RLS_KEY_SECRET_LEN], __u8 out[RLS_SIPHASH_LEN])
{
	__u8 buf[RLS_KEY_HASH_BUF] = { 0 };
	const struct rls_key_span *span = &a->key_spans[j];

	if (!span->len)
		return false;
	memcpy(buf, t->key_bytes + span->off, span->len);
	rls_siphash128(secret, buf, span->len, out);
	explicit_bzero(buf, span->len);
	return true;
}

/* ---- lookups ---- */

/* Requests a day the entry admits at most: its tightest window, scaled to a day. */
static __u64 daily_capacity(const struct rls_limits *l)
{
	const __u32 limits[RLS_NR_WINDOWS] = { l->rps, l->rpm, l->rph, l->rpd };
	__u64 capacity = UINT64_MAX, c;
	int w;

	for (w = 0; w < RLS_NR_WINDOWS; w++) {
		if (limits[w] == RLS_UNLIMITED)
			continue;
		c = (__u64)limits[w] * (86400 / rls_window_seconds(w));
		if (c < capacity)
			capacity = c;
	}
	return capacity;
}

const struct rls_tier_entry *rls_tier_strictest_entry(const struct rls_tier *tier)
{
	const struct rls_tier_entry *best = NULL;
	__u64 best_capacity = 0, c;
	size_t i;

	for (i = 0; i < tier->nr_entries; i++) {
		c = daily_capacity(&tier->entries[i].limits);
		/* A model that admits nothing (retired) prices no request: the upstream refuses it. */
		if (c == 0 && best)
			continue;
		if (!best || c < best_capacity || best_capacity == 0) {
			best = &tier->entries[i];
			best_capacity = c;
		}
	}
	return best;
}

__u64 rls_table_max_shape_delay_ns(const struct rls_table *t)
{
	__u64 longest = 0;
	size_t i, j;

	for (i = 0; i < t->nr_tiers; i++)
		for (j = 0; j < t->tiers[i].nr_entries; j++)
			if (t->tiers[i].entries[j].limits.shape_max_delay_ns > longest)
				longest = t->tiers[i].entries[j].limits.shape_max_delay_ns;
	return longest;
}
