// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mock-upstream: an OpenAI-compatible HTTP/1.1 server that stands in for the inference backend
 * behind the gateway in tests.
 *
 * The end-to-end tests prove what the rate limiter let through by counting the lines this
 * server logs, so the log is the contract: one line per complete request, written with a single
 * write(2) on an O_APPEND descriptor so that lines from concurrent connections never interleave
 * and a test reading the file mid-run never sees half a line.
 *
 * Every blocking wait also polls a self-pipe that SIGTERM/SIGINT write to, so a held request
 * (--delay-ms, x-mock-delay-ms, x-mock-hold-file, x-mock-event-delay-ms) or an idle keep-alive
 * connection never delays shutdown and every thread is joined before exit (valgrind stays quiet).
 * The holds also watch the client's socket: a client that closes or resets while its request is
 * held gets no answer and frees its thread at once, so tests that kill clients do not pile up
 * threads waiting on nobody.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http_conn.h"
#include "text.h"

#define PROG "mock-upstream"
#include "usage_error.h" /* needs PROG */

#define MAX_LISTENERS   16
#define HEAD_MAX        (64 * 1024)       /* request line + headers */
#define TARGET_MAX      8192
#define BODY_MAX        (64u << 20)
#define CHUNK_LINE_MAX  4096
#define VALUE_MAX       1024              /* longest key/model value we keep */
#define IDLE_TIMEOUT_MS 120000            /* idle keep-alive and stalled peers */
#define TOKENS_MAX      1000000ul         /* 4 MB of "tok " at most */
#define DELAY_MAX_MS    3600000ul
#define HOLD_POLL_MS    10                /* x-mock-hold-file: how often to look for the file */
#define HOLD_PATH_MAX   4096
#define STREAM_EVENTS   16                /* content events per streamed answer, at most */
#define THREAD_STACK    (256 * 1024)      /* thread per connection: keep them cheap */
#define DRAIN_WAIT_S    5

#define DEFAULT_PROMPT_TOKENS     10
#define DEFAULT_COMPLETION_TOKENS 20
#define DEFAULT_MODEL             "mock-model"

struct listen_spec {
	const char *arg;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	bool any;                  /* "*": dual-stack wildcard */
};

struct config {
	struct listen_spec listen[MAX_LISTENERS];
	int n_listen;
	const char *log_path;
	const char *ready_path;
	unsigned long prompt_tokens;
	unsigned long completion_tokens;
	unsigned long delay_ms;
	bool hide_usage;
};

static struct config cfg = {
	.prompt_tokens = DEFAULT_PROMPT_TOKENS,
	.completion_tokens = DEFAULT_COMPLETION_TOKENS,
};

static int log_fd = -1;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int stop_pipe[2] = { -1, -1 };
static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conn_gone = PTHREAD_COND_INITIALIZER;
static int conn_active;
static atomic_ulong completion_seq;

/* ---- growable string buffer ----------------------------------------------------------- */

static void sb_json_escaped(struct sbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\')
			sb_printf(b, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			sb_printf(b, "\\u%04x", ch);
		else
			sb_add(b, &s[i], 1);
	}
}

/* ---- small parsing helpers ------------------------------------------------------------ */

/* "P,C" as in --tokens and x-mock-tokens. */
static bool parse_tokens(const char *s, size_t n, unsigned long *p, unsigned long *c)
{
	const char *comma = memchr(s, ',', n);

	if (!comma)
		return false;
	return parse_ulong(s, (size_t)(comma - s), TOKENS_MAX, p) &&
	       parse_ulong(comma + 1, n - (size_t)(comma + 1 - s), TOKENS_MAX, c);
}

static bool is_tchar(unsigned char ch)
{
	return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Does the comma-separated header value contain token tok (case-insensitive)? */

/* ---- minimal JSON scanner: just enough to read model/stream/stream_options ------------- */

#define JSON_DEPTH_MAX 64   /* garbage like [[[[... must not exhaust a 256 KiB thread stack */

struct jscan {
	const char *p, *end;
	int depth;
};

struct body_info {
	const char *model;          /* raw JSON string contents, still escaped */
	size_t model_len;
	bool stream;
	bool include_usage;
};

typedef bool (*js_member_fn)(struct jscan *s, const char *key, size_t klen, void *ctx);

static bool js_value(struct jscan *s);

static void js_ws(struct jscan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static bool js_peek(struct jscan *s, char ch)
{
	js_ws(s);
	return s->p < s->end && *s->p == ch;
}

static bool js_eat(struct jscan *s, char ch)
{
	if (!js_peek(s, ch))
		return false;
	s->p++;
	return true;
}

/* Validates a string and returns its raw (still escaped) contents. */
static bool js_string(struct jscan *s, const char **str, size_t *len)
{
	const char *start;

	if (!js_eat(s, '"'))
		return false;
	start = s->p;
	while (s->p < s->end && *s->p != '"') {
		unsigned char ch = (unsigned char)*s->p;

		if (ch < 0x20)
			return false;
		if (ch == '\\') {
			if (++s->p >= s->end || !strchr("\"\\/bfnrtu", *s->p))
				return false;
		}
		s->p++;
	}
	if (s->p >= s->end)
		return false;
	*str = start;
	*len = (size_t)(s->p - start);
	s->p++;
	return true;
}

static bool js_literal(struct jscan *s, const char *lit)
{
	size_t n = strlen(lit);

	js_ws(s);
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n))
		return false;
	s->p += n;
	return true;
}

static bool js_number(struct jscan *s)
{
	const char *start = s->p;

	while (s->p < s->end && strchr("+-0123456789.eE", *s->p) && *s->p)
		s->p++;
	return s->p > start;
}

static bool js_object(struct jscan *s, js_member_fn fn, void *ctx)
{
	bool ok = false;

	if (++s->depth > JSON_DEPTH_MAX || !js_eat(s, '{'))
		goto out;
	if (js_eat(s, '}')) {
		ok = true;
		goto out;
	}
	do {
		const char *key;
		size_t klen;

		if (!js_string(s, &key, &klen) || !js_eat(s, ':'))
			goto out;
		if (!(fn ? fn(s, key, klen, ctx) : js_value(s)))
			goto out;
	} while (js_eat(s, ','));
	ok = js_eat(s, '}');
out:
	s->depth--;
	return ok;
}

static bool js_array(struct jscan *s)
{
	bool ok = false;

	if (++s->depth > JSON_DEPTH_MAX || !js_eat(s, '['))
		goto out;
	if (js_eat(s, ']')) {
		ok = true;
		goto out;
	}
	do {
		if (!js_value(s))
			goto out;
	} while (js_eat(s, ','));
	ok = js_eat(s, ']');
out:
	s->depth--;
	return ok;
}

static bool js_value(struct jscan *s)
{
	const char *str;
	size_t len;

	js_ws(s);
	if (s->p >= s->end)
		return false;
	switch (*s->p) {
	case '{': return js_object(s, NULL, NULL);
	case '[': return js_array(s);
	case '"': return js_string(s, &str, &len);
	case 't': return js_literal(s, "true");
	case 'f': return js_literal(s, "false");
	case 'n': return js_literal(s, "null");
	default:  return js_number(s);
	}
}

static bool stream_options_member(struct jscan *s, const char *key, size_t klen, void *ctx)
{
	struct body_info *bi = ctx;

	if (span_ieq(key, klen, "include_usage") && js_literal(s, "true")) {
		bi->include_usage = true;
		return true;
	}
	return js_value(s);
}

static bool request_member(struct jscan *s, const char *key, size_t klen, void *ctx)
{
	struct body_info *bi = ctx;

	if (klen == 5 && !memcmp(key, "model", 5) && js_peek(s, '"'))
		return js_string(s, &bi->model, &bi->model_len);
	if (klen == 6 && !memcmp(key, "stream", 6) && js_literal(s, "true")) {
		bi->stream = true;
		return true;
	}
	if (klen == 14 && !memcmp(key, "stream_options", 14) && js_peek(s, '{'))
		return js_object(s, stream_options_member, bi);
	return js_value(s);
}

/*
 * Whatever was found before a syntax error is kept: the mock answers garbage bodies too, and
 * the log should still show the model the gateway saw.
 */
static void scan_body(const char *body, size_t len, struct body_info *bi)
{
	struct jscan s = { .p = body, .end = body + len };

	memset(bi, 0, sizeof(*bi));
	if (js_peek(&s, '{'))
		js_object(&s, request_member, bi);
}

/* ---- connection I/O ------------------------------------------------------------------- */

struct conn {
	struct http_conn io;       /* grows to hold a request body; each wait ends at a stop */
	char peer[INET6_ADDRSTRLEN];
};

/* Sleep that a shutdown cuts short. Returns false when shutting down. */
static bool hold(unsigned long ms)
{
	struct pollfd pfd = { .fd = stop_pipe[0], .events = POLLIN };
	int n;

	do {
		n = poll(&pfd, 1, (int)ms);
	} while (n < 0 && errno == EINTR);
	return n == 0;
}

/*
 * Sleep that a shutdown or a departing client cuts short. 1: slept ms, 0: the client closed or
 * reset its connection, -1: shutting down. Only POLLRDHUP is asked for (POLLHUP and POLLERR come
 * anyway): a pipelined next request must not wake the sleep, a FIN or a RST must. A client that
 * only half-closes counts as gone too, as it does for most servers.
 */
static int hold_conn(const struct conn *c, unsigned long ms)
{
	struct pollfd pfd[2] = {
		{ .fd = c->io.fd, .events = POLLRDHUP },
		{ .fd = stop_pipe[0], .events = POLLIN },
	};
	unsigned long long until = mono_ms() + ms, now;
	int n;

	for (;;) {
		now = mono_ms();
		n = poll(pfd, 2, now < until ? (int)(until - now) : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || pfd[1].revents)
			return -1;
		if (pfd[0].revents)
			return 0;
		if (now >= until)
			return 1;
	}
}

static bool send_all(struct conn *c, const void *data, size_t n)
{
	return http_conn_send(&c->io, data, n, 0);
}

static size_t avail(const struct conn *c)
{
	return http_conn_avail(&c->io);
}

/* ---- requests ------------------------------------------------------------------------- */

struct request {
	char method[16];
	char target[TARGET_MAX];
	int minor;                  /* HTTP/1.<minor> */
	bool keep_alive;
	bool has_length, chunked, expect_continue;
	unsigned long content_length;
	/* Values we need after the header block is gone: first occurrence, trimmed. */
	char authorization[VALUE_MAX], x_api_key[VALUE_MAX], api_key[VALUE_MAX];
	char x_model[VALUE_MAX];
	bool has_tokens, has_delay;
	unsigned long prompt_tokens, completion_tokens, delay_ms, event_delay_ms;
	unsigned long chunk_size;       /* x-mock-chunk-size: a plain answer sent chunked, 0: not */
	char hold_file[HOLD_PATH_MAX];  /* x-mock-hold-file, "" when not held */
	struct sbuf body;
};

/* Parse failures carry the status and a reason the client sees, so a test author debugging
 * a 400 knows what the mock objected to. */
struct http_error {
	int status;
	const char *reason;
};

static bool fail(struct http_error *e, int status, const char *reason)
{
	e->status = status;
	e->reason = reason;
	return false;
}

static void copy_value(char *dst, const char *v, size_t n)
{
	if (dst[0])
		return;
	if (n >= VALUE_MAX)
		n = VALUE_MAX - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static bool parse_request_line(struct request *rq, const char *line, size_t n,
			       struct http_error *e)
{
	const char *sp1 = memchr(line, ' ', n), *sp2, *ver;
	size_t mlen, tlen;

	if (!sp1)
		return fail(e, 400, "malformed request line");
	mlen = (size_t)(sp1 - line);
	sp2 = memchr(sp1 + 1, ' ', n - mlen - 1);
	if (!sp2)
		return fail(e, 400, "malformed request line");
	tlen = (size_t)(sp2 - sp1 - 1);
	ver = sp2 + 1;
	if (!mlen || mlen >= sizeof(rq->method))
		return fail(e, 400, "bad method");
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar((unsigned char)line[i]))
			return fail(e, 400, "bad method");
	if (!tlen)
		return fail(e, 400, "empty request target");
	if (tlen >= sizeof(rq->target))
		return fail(e, 414, "request target too long");
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)sp1[1 + i] <= 0x20 || sp1[1 + i] == 0x7f)
			return fail(e, 400, "bad character in request target");
	if (line + n - ver != 8 || memcmp(ver, "HTTP/", 5) || !isdigit((unsigned char)ver[5]) ||
	    ver[6] != '.' || !isdigit((unsigned char)ver[7]))
		return fail(e, 400, "malformed HTTP version");
	if (ver[5] != '1' || ver[7] > '1')
		return fail(e, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
	memcpy(rq->method, line, mlen);
	rq->method[mlen] = '\0';
	memcpy(rq->target, sp1 + 1, tlen);
	rq->target[tlen] = '\0';
	rq->minor = ver[7] - '0';
	rq->keep_alive = rq->minor == 1;
	return true;
}

static bool header_length(struct request *rq, const char *v, size_t n, struct http_error *e)
{
	unsigned long len;

	if (!parse_ulong(v, n, ~0ul, &len))
		return fail(e, 400, "bad content-length");
	if (rq->has_length && len != rq->content_length)
		return fail(e, 400, "conflicting content-length headers");
	if (len > BODY_MAX)
		return fail(e, 413, "body too large");
	rq->has_length = true;
	rq->content_length = len;
	return true;
}

static bool header_mock(struct request *rq, const char *name, size_t nl, const char *v,
			size_t n, struct http_error *e)
{
	if (span_ieq(name, nl, "x-mock-tokens")) {
		if (!parse_tokens(v, n, &rq->prompt_tokens, &rq->completion_tokens))
			return fail(e, 400, "x-mock-tokens wants PROMPT,COMPLETION (non-negative integers)");
		rq->has_tokens = true;
	} else if (span_ieq(name, nl, "x-mock-delay-ms")) {
		if (!parse_ulong(v, n, DELAY_MAX_MS, &rq->delay_ms))
			return fail(e, 400, "x-mock-delay-ms wants milliseconds (0..3600000)");
		rq->has_delay = true;
	} else if (span_ieq(name, nl, "x-mock-event-delay-ms")) {
		if (!parse_ulong(v, n, DELAY_MAX_MS, &rq->event_delay_ms))
			return fail(e, 400, "x-mock-event-delay-ms wants milliseconds (0..3600000)");
	} else if (span_ieq(name, nl, "x-mock-chunk-size")) {
		/* As a proxy that re-chunks an answer would: chunk framing anywhere in it. */
		if (!parse_ulong(v, n, 65536, &rq->chunk_size) || !rq->chunk_size)
			return fail(e, 400, "x-mock-chunk-size wants bytes per chunk (1..65536)");
	} else if (span_ieq(name, nl, "x-mock-hold-file")) {
		/* Truncating would wait on some other file, forever: refuse instead. */
		if (!n || n >= sizeof(rq->hold_file))
			return fail(e, 400, "x-mock-hold-file wants a path (1..4095 bytes)");
		memcpy(rq->hold_file, v, n);
		rq->hold_file[n] = '\0';
	}
	return true;
}

static bool apply_header(struct request *rq, const char *name, size_t nl, const char *v,
			 size_t n, struct http_error *e)
{
	if (span_ieq(name, nl, "content-length"))
		return header_length(rq, v, n, e);
	if (span_ieq(name, nl, "transfer-encoding")) {
		/* Anything but plain chunked would need decoders a mock has no use for. */
		if (!span_ieq(v, n, "chunked"))
			return fail(e, 501, "only transfer-encoding: chunked is supported");
		rq->chunked = true;
	} else if (span_ieq(name, nl, "connection")) {
		if (list_has_token(v, n, "close"))
			rq->keep_alive = false;
		else if (list_has_token(v, n, "keep-alive"))
			rq->keep_alive = true;
	} else if (span_ieq(name, nl, "expect")) {
		rq->expect_continue = span_ieq(v, n, "100-continue");
	} else if (span_ieq(name, nl, "authorization")) {
		copy_value(rq->authorization, v, n);
	} else if (span_ieq(name, nl, "x-api-key")) {
		copy_value(rq->x_api_key, v, n);
	} else if (span_ieq(name, nl, "api-key")) {
		copy_value(rq->api_key, v, n);
	} else if (span_ieq(name, nl, "x-model")) {
		copy_value(rq->x_model, v, n);
	}
	return header_mock(rq, name, nl, v, n, e);
}

static bool parse_header_line(struct request *rq, const char *line, size_t n,
			      struct http_error *e)
{
	const char *colon = memchr(line, ':', n), *v;
	size_t nl, vl;

	/* Obsolete line folding and "name :" are both rejected: RFC 9112 5.1/5.2. */
	if (!colon || colon == line)
		return fail(e, 400, "malformed header line");
	nl = (size_t)(colon - line);
	for (size_t i = 0; i < nl; i++)
		if (!is_tchar((unsigned char)line[i]))
			return fail(e, 400, "bad character in header name");
	v = colon + 1;
	vl = n - nl - 1;
	while (vl && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	for (size_t i = 0; i < vl; i++) {
		unsigned char ch = (unsigned char)v[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return fail(e, 400, "bad character in header value");
	}
	return apply_header(rq, line, nl, v, vl, e);
}

/* Find the blank line that ends the header block; returns its end offset from c->io.off or 0. */
static size_t head_end(const struct conn *c)
{
	const char *p = c->io.buf + c->io.off;
	size_t n = avail(c);

	for (size_t i = 0; i + 1 < n; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n')
			return i + 2;
		if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* RFC 9112 2.2: ignore empty lines before a request line (clients send stray CRLF). */
static void skip_leading_crlf(struct conn *c)
{
	struct http_conn *io = &c->io;

	while (io->off < io->len && (io->buf[io->off] == '\r' || io->buf[io->off] == '\n'))
		io->off++;
}

static int head_error(struct http_error *e, int status, const char *reason)
{
	fail(e, status, reason);
	return 1;
}

/* -1: connection gone before a request started (not an error), 0: parsed, 1: http error. */
static int read_head(struct conn *c, struct request *rq, struct http_error *e)
{
	size_t end, pos, n;
	const char *line;

	for (;;) {
		skip_leading_crlf(c);
		if (avail(c) && (end = head_end(c)))
			break;
		if (avail(c) > HEAD_MAX)
			return head_error(e, 431, "request header block too large");
		ssize_t r = http_conn_fill(&c->io);

		if (r <= 0)
			return avail(c) ? head_error(e, 400, "incomplete request") : -1;
	}
	if (end > HEAD_MAX)
		return head_error(e, 431, "request header block too large");
	pos = c->io.off;
	end += c->io.off;
	if (!text_next_line(c->io.buf, end, &pos, &line, &n) || !parse_request_line(rq, line, n, e))
		return e->status ? 1 : head_error(e, 400, "malformed request line");
	while (text_next_line(c->io.buf, end, &pos, &line, &n) && n) {
		if (!parse_header_line(rq, line, n, e))
			return 1;
	}
	c->io.off = end;
	if (rq->chunked && rq->has_length)
		return head_error(e, 400, "both content-length and transfer-encoding");
	return 0;
}

static bool read_chunked(struct conn *c, struct request *rq, struct http_error *e)
{
	static const struct http_error answers[] = {
		[HTTP_CHUNKED_TRUNCATED] = { 400, "truncated chunked body" },
		[HTTP_CHUNKED_BAD_SIZE] = { 400, "bad chunk size line" },
		[HTTP_CHUNKED_TOO_LARGE] = { 413, "body too large" },
		[HTTP_CHUNKED_TRUNCATED_CHUNK] = { 400, "truncated chunk" },
		[HTTP_CHUNKED_BAD_END] = { 400, "chunk data not followed by CRLF" },
		[HTTP_CHUNKED_TRUNCATED_TRAILER] = { 400, "truncated chunked trailer" },
	};
	enum http_chunked r;

	r = http_conn_read_chunked(&c->io, CHUNK_LINE_MAX, BODY_MAX, &rq->body, BODY_MAX);
	if (r != HTTP_CHUNKED_OK)
		return fail(e, answers[r].status, answers[r].reason);
	return rq->body.oom ? fail(e, 500, "out of memory") : true;
}

static bool read_body(struct conn *c, struct request *rq, struct http_error *e)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	size_t n = rq->content_length;

	/* curl waits a second for 100 Continue on bodies over 1 KiB: don't make it. */
	if (rq->expect_continue && rq->minor == 1 && (rq->chunked || n > avail(c)) &&
	    !send_all(c, cont, sizeof(cont) - 1))
		return fail(e, 0, "peer gone");
	if (rq->chunked)
		return read_chunked(c, rq, e);
	if (!n)
		return true;
	if (!http_conn_consume(&c->io, n, &rq->body, BODY_MAX))
		return fail(e, 400, "body shorter than content-length");
	return rq->body.oom ? fail(e, 500, "out of memory") : true;
}

/* ---- logging -------------------------------------------------------------------------- */

static unsigned long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
}

/*
 * Values come from the network: escape anything that could end or fake a log line, and
 * non-ASCII too, so that grep never takes the log for a binary file.
 */
static void log_value(struct sbuf *b, const char *v, size_t n)
{
	if (!n) {
		sb_str(b, "-");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch < 0x20 || ch >= 0x7f || ch == '\\')
			sb_printf(b, "\\x%02x", ch);
		else
			sb_add(b, &v[i], 1);
	}
}

static const char *request_key(const struct request *rq)
{
	if (rq->authorization[0])
		return rq->authorization;
	if (rq->x_api_key[0])
		return rq->x_api_key;
	return rq->api_key;
}

static void log_request(const struct conn *c, const struct request *rq,
			const struct body_info *bi)
{
	struct sbuf line = { 0 };
	const char *key = request_key(rq);

	sb_printf(&line, "%llu %s %s ", now_ms(), c->peer, rq->method);
	log_value(&line, rq->target, strlen(rq->target));
	sb_str(&line, " key=");
	log_value(&line, key, strlen(key));
	sb_str(&line, " model=");
	if (rq->x_model[0])
		log_value(&line, rq->x_model, strlen(rq->x_model));
	else
		log_value(&line, bi->model, bi->model_len);
	sb_printf(&line, " bytes=%zu\n", rq->body.len);
	if (!line.oom) {
		pthread_mutex_lock(&log_lock);
		if (write(log_fd, line.p, line.len) != (ssize_t)line.len)
			fprintf(stderr, PROG ": writing to %s: %s\n", cfg.log_path, strerror(errno));
		pthread_mutex_unlock(&log_lock);
	}
	sb_free(&line);
}

/* ---- responses ------------------------------------------------------------------------ */

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 505: return "HTTP Version Not Supported";
	default:  return "Unknown";
	}
}

static void send_error(struct conn *c, const struct http_error *e)
{
	struct sbuf body = { 0 }, head = { 0 };

	sb_str(&body, "{\"error\":{\"message\":\"");
	sb_json_escaped(&body, e->reason, strlen(e->reason));
	sb_str(&body, "\",\"type\":\"invalid_request_error\"}}\n");
	sb_printf(&head, "HTTP/1.1 %d %s\r\nserver: " PROG "\r\ncontent-type: application/json\r\n"
		  "content-length: %zu\r\nconnection: close\r\n\r\n",
		  e->status, status_text(e->status), body.len);
	if (!head.oom && !body.oom && send_all(c, head.p, head.len))
		send_all(c, body.p, body.len);
	sb_free(&head);
	sb_free(&body);
}

/* What one answer says; resolved once from flags, headers and body. */
struct answer {
	char id[48];
	long long created;
	struct sbuf model;          /* JSON-escaped */
	unsigned long prompt, completion;
	unsigned long event_delay;  /* ms before each event but the first, or mid-body */
	unsigned long chunk_size;   /* a plain answer in chunks of this many bytes; 0: not */
	bool stream, usage, include_usage, keep_alive, chunked;
};

static void answer_init(struct answer *a, const struct request *rq, const struct body_info *bi)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->id, sizeof(a->id), "chatcmpl-mock%d-%lu", (int)getpid(),
		 atomic_fetch_add(&completion_seq, 1) + 1);
	a->created = (long long)time(NULL);
	/* The body's string is already JSON-escaped; a header value is not. */
	if (bi->model)
		sb_add(&a->model, bi->model, bi->model_len);
	else if (rq->x_model[0])
		sb_json_escaped(&a->model, rq->x_model, strlen(rq->x_model));
	else
		sb_str(&a->model, DEFAULT_MODEL);
	a->prompt = rq->has_tokens ? rq->prompt_tokens : cfg.prompt_tokens;
	a->completion = rq->has_tokens ? rq->completion_tokens : cfg.completion_tokens;
	a->stream = bi->stream;
	a->event_delay = rq->event_delay_ms;
	a->usage = !cfg.hide_usage;
	a->include_usage = a->usage && bi->include_usage;
	a->keep_alive = rq->keep_alive;
	/* HTTP/1.0 has no chunked coding: stream until close instead. */
	a->chunked = (a->stream || rq->chunk_size) && rq->minor == 1;
	a->chunk_size = a->stream ? 0 : rq->chunk_size;
	if (a->stream && !a->chunked)
		a->keep_alive = false;
}

static void add_usage(struct sbuf *b, const struct answer *a)
{
	sb_printf(b, "\"usage\":{\"prompt_tokens\":%lu,\"completion_tokens\":%lu,"
		  "\"total_tokens\":%lu}", a->prompt, a->completion, a->prompt + a->completion);
}

static void add_tokens(struct sbuf *b, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		sb_add(b, "tok ", 4);
}

static void add_head(struct sbuf *b, const char *type, size_t len, const struct answer *a)
{
	sb_printf(b, "HTTP/1.1 200 OK\r\nserver: " PROG "\r\ncontent-type: %s\r\n", type);
	if (a->chunked)
		sb_str(b, "transfer-encoding: chunked\r\n");
	else if (!a->stream)
		sb_printf(b, "content-length: %zu\r\n", len);
	if (a->stream)
		sb_str(b, "cache-control: no-cache\r\n");
	sb_printf(b, "connection: %s\r\n\r\n", a->keep_alive ? "keep-alive" : "close");
}

/* x-mock-event-delay-ms: the pause between two parts of an answer; false to stop sending. */
static bool pace(const struct conn *c, const struct answer *a)
{
	return !a->event_delay || hold_conn(c, a->event_delay) > 0;
}

/* The body in chunks of size bytes, then the last chunk: framing wherever it falls. */
static bool send_chunks(struct conn *c, const struct sbuf *body, unsigned long size)
{
	struct sbuf out = { 0 };
	size_t off, n;
	bool ok;

	for (off = 0; off < body->len; off += n) {
		n = body->len - off < size ? body->len - off : size;
		sb_printf(&out, "%zx\r\n", n);
		sb_add(&out, body->p + off, n);
		sb_str(&out, "\r\n");
	}
	sb_str(&out, "0\r\n\r\n");
	ok = !out.oom && send_all(c, out.p, out.len);
	sb_free(&out);
	return ok;
}

static bool answer_completion(struct conn *c, const struct answer *a, bool head_only)
{
	struct sbuf body = { 0 }, head = { 0 };
	size_t half;
	bool ok;

	sb_printf(&body, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,"
		  "\"model\":\"%s\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
		  "\"content\":\"", a->id, a->created, a->model.p);
	add_tokens(&body, a->completion);
	sb_str(&body, "\"},\"logprobs\":null,\"finish_reason\":\"stop\"}]");
	if (a->usage) {
		sb_str(&body, ",");
		add_usage(&body, a);
	}
	sb_str(&body, "}\n");
	add_head(&head, "application/json", body.len, a);
	if (a->chunked && a->chunk_size) {
		ok = !head.oom && !body.oom && send_all(c, head.p, head.len) &&
		     (head_only || send_chunks(c, &body, a->chunk_size));
		sb_free(&head);
		sb_free(&body);
		return ok;
	}
	/* With an event delay the body goes in two halves, so a client can be caught mid-body. */
	half = a->event_delay ? body.len / 2 : body.len;
	ok = !head.oom && !body.oom && send_all(c, head.p, head.len) &&
	     (head_only || (send_all(c, body.p, half) && pace(c, a) &&
			    send_all(c, body.p + half, body.len - half)));
	sb_free(&head);
	sb_free(&body);
	return ok;
}

/* One server-sent event, framed as one HTTP chunk so the gateway sees realistic chunking. */
static bool send_event(struct conn *c, const struct answer *a, const struct sbuf *data)
{
	struct sbuf ev = { 0 };
	bool ok;

	if (a->chunked)
		sb_printf(&ev, "%zx\r\n", data->len + 8);
	sb_str(&ev, "data: ");
	sb_add(&ev, data->p, data->len);
	sb_str(&ev, "\n\n");
	if (a->chunked)
		sb_str(&ev, "\r\n");
	ok = !ev.oom && !data->oom && send_all(c, ev.p, ev.len);
	sb_free(&ev);
	return ok;
}

/* chunk: prefix of every chat.completion.chunk up to and including "choices":[ */
static void chunk_start(struct sbuf *b, const struct answer *a)
{
	b->len = 0;
	sb_printf(b, "{\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
		  "\"model\":\"%s\",\"choices\":[", a->id, a->created, a->model.p);
}

/* OpenAI sends "usage":null on every chunk but the last when include_usage is set. */
static void chunk_end(struct sbuf *b, const struct answer *a)
{
	sb_str(b, a->include_usage ? "],\"usage\":null}" : "]}");
}

static bool stream_content(struct conn *c, const struct answer *a, struct sbuf *d)
{
	unsigned long events = a->completion < STREAM_EVENTS ? a->completion : STREAM_EVENTS;

	for (unsigned long i = 0; i < events; i++) {
		/* Spread the tokens evenly so the bytes on the wire still scale with them. */
		unsigned long n = a->completion / events + (i < a->completion % events);

		chunk_start(d, a);
		sb_str(d, "{\"index\":0,\"delta\":{\"content\":\"");
		add_tokens(d, n);
		sb_str(d, "\"},\"logprobs\":null,\"finish_reason\":null}");
		chunk_end(d, a);
		if (!pace(c, a) || !send_event(c, a, d))
			return false;
	}
	return true;
}

static bool stream_tail(struct conn *c, const struct answer *a, struct sbuf *d)
{
	static const char done[] = "[DONE]";
	struct sbuf dn = { .p = (char *)done, .len = sizeof(done) - 1 };

	chunk_start(d, a);
	sb_str(d, "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}");
	chunk_end(d, a);
	if (!pace(c, a) || !send_event(c, a, d))
		return false;
	if (a->include_usage) {
		chunk_start(d, a);
		sb_str(d, "],");
		add_usage(d, a);
		sb_str(d, "}");
		if (!pace(c, a) || !send_event(c, a, d))
			return false;
	}
	/* The last chunk rides with [DONE]: no pause between them. */
	return pace(c, a) && send_event(c, a, &dn) &&
	       (!a->chunked || send_all(c, "0\r\n\r\n", 5));
}

static bool answer_stream(struct conn *c, const struct answer *a)
{
	struct sbuf head = { 0 }, d = { 0 };
	bool ok;

	add_head(&head, "text/event-stream", 0, a);
	ok = !head.oom && send_all(c, head.p, head.len);
	if (ok) {
		chunk_start(&d, a);
		sb_str(&d, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
			   "\"logprobs\":null,\"finish_reason\":null}");
		chunk_end(&d, a);
		ok = send_event(c, a, &d) && stream_content(c, a, &d) && stream_tail(c, a, &d);
	}
	sb_free(&head);
	sb_free(&d);
	return ok;
}

/* Non-POST requests (health checks, GET /v1/models): a small JSON, no usage. */
static bool answer_other(struct conn *c, const struct request *rq, bool head_only)
{
	static const char body[] = "{\"object\":\"mock\",\"status\":\"ok\"}\n";
	struct sbuf head = { 0 };
	bool ok;

	sb_printf(&head, "HTTP/1.1 200 OK\r\nserver: " PROG "\r\ncontent-type: application/json\r\n"
		  "content-length: %zu\r\nconnection: %s\r\n\r\n", sizeof(body) - 1,
		  rq->keep_alive ? "keep-alive" : "close");
	ok = !head.oom && send_all(c, head.p, head.len) &&
	     (head_only || send_all(c, body, sizeof(body) - 1));
	sb_free(&head);
	return ok;
}

/* Returns true to keep the connection for another request. */
static bool respond(struct conn *c, const struct request *rq, const struct body_info *bi)
{
	bool head_only = !strcmp(rq->method, "HEAD");
	struct answer a;
	bool ok;

	if (strcmp(rq->method, "POST"))
		return answer_other(c, rq, head_only) && rq->keep_alive;
	answer_init(&a, rq, bi);
	if (a.model.oom)
		ok = false;
	else if (a.stream)
		ok = answer_stream(c, &a);
	else
		ok = answer_completion(c, &a, head_only);
	sb_free(&a.model);
	return ok && a.keep_alive;
}

/*
 * x-mock-hold-file: answer once PATH exists, so a test can keep requests in flight and release
 * them when it chooses. Gives up waiting after DELAY_MAX_MS and answers. Returns as hold_conn().
 */
static int hold_for_file(const struct conn *c, const char *path)
{
	unsigned long long until = mono_ms() + DELAY_MAX_MS;
	struct stat st;
	int r;

	while (stat(path, &st)) {
		if (mono_ms() >= until)
			return 1;
		r = hold_conn(c, HOLD_POLL_MS);
		if (r <= 0)
			return r;
	}
	return 1;
}

/*
 * Hold a logged request: until its hold file exists, then for its delay, so a released request
 * still takes its usual time. false: shutting down or the client left, so no answer.
 */
static bool hold_request(const struct conn *c, const struct request *rq)
{
	unsigned long ms = rq->has_delay ? rq->delay_ms : cfg.delay_ms;

	if (rq->hold_file[0] && hold_for_file(c, rq->hold_file) <= 0)
		return false;
	/* No wait, nothing to watch: a client that half-closed after its request gets its answer. */
	return ms ? hold_conn(c, ms) > 0 : hold(0);
}

/* Returns true to keep the connection for another request. */
static bool serve_one(struct conn *c)
{
	struct request *rq = calloc(1, sizeof(*rq));  /* too big for a 256 KiB stack frame */
	struct http_error e = { 0 };
	struct body_info bi;
	bool keep = false;
	int r;

	if (!rq)
		return false;
	r = read_head(c, rq, &e);
	if (r < 0)
		goto out;
	if (r > 0 || !read_body(c, rq, &e)) {
		if (e.status)
			send_error(c, &e);
		goto out;
	}
	scan_body(rq->body.p, rq->body.len, &bi);
	log_request(c, rq, &bi);
	if (hold_request(c, rq))
		keep = respond(c, rq, &bi);
out:
	sb_free(&rq->body);
	free(rq);
	return keep;
}

/* ---- connection threads --------------------------------------------------------------- */

static void conn_exit(void)
{
	pthread_mutex_lock(&conn_lock);
	if (--conn_active == 0)
		pthread_cond_broadcast(&conn_gone);
	pthread_mutex_unlock(&conn_lock);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;

	while (serve_one(c))
		;
	close(c->io.fd);
	free(c->io.buf);
	free(c);
	conn_exit();
	return NULL;
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t n)
{
	const struct sockaddr_in6 *s6 = (const void *)ss;
	const struct sockaddr_in *s4 = (const void *)ss;

	/* A dual-stack "*" listener sees IPv4 clients as ::ffff:a.b.c.d: log them as IPv4. */
	if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, (socklen_t)n);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)n);
	else
		inet_ntop(AF_INET, &s4->sin_addr, out, (socklen_t)n);
}

static void spawn_conn(int fd, const struct sockaddr_storage *peer)
{
	struct conn *c = calloc(1, sizeof(*c));
	pthread_attr_t attr;
	pthread_t tid;
	int one = 1;

	if (!c) {
		close(fd);
		return;
	}
	c->io.fd = fd;
	c->io.max_cap = 2 * (size_t)HEAD_MAX; /* a whole head: read_head refuses a longer one */
	c->io.idle_ms = IDLE_TIMEOUT_MS;
	c->io.stop_fd = &stop_pipe[0];
	peer_name(peer, c->peer, sizeof(c->peer));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	pthread_mutex_lock(&conn_lock);
	conn_active++;
	pthread_mutex_unlock(&conn_lock);
	if (pthread_create(&tid, &attr, conn_main, c)) {
		fprintf(stderr, PROG ": cannot start a connection thread; dropping the connection\n");
		close(fd);
		free(c);
		conn_exit();
	}
	pthread_attr_destroy(&attr);
}

/* Wait for connection threads to notice the stop pipe; they never block on anything else. */
static void drain_connections(void)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += DRAIN_WAIT_S;
	pthread_mutex_lock(&conn_lock);
	while (conn_active > 0) {
		if (pthread_cond_timedwait(&conn_gone, &conn_lock, &until) == ETIMEDOUT)
			break;
	}
	if (conn_active > 0)
		fprintf(stderr, PROG ": %d connections still open at exit\n", conn_active);
	pthread_mutex_unlock(&conn_lock);
}

/* ---- listeners ------------------------------------------------------------------------ */

static bool parse_port(const char *s, struct sockaddr_storage *ss)
{
	unsigned long port;

	if (!parse_ulong(s, strlen(s), 65535, &port))
		return false;
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	return true;
}

static bool parse_listen(const char *arg, struct listen_spec *ls)
{
	struct sockaddr_in6 *s6 = (void *)&ls->addr;
	struct sockaddr_in *s4 = (void *)&ls->addr;
	const char *colon = strrchr(arg, ':');
	char host[INET6_ADDRSTRLEN + 2];
	size_t hlen;

	memset(ls, 0, sizeof(*ls));
	ls->arg = arg;
	if (!colon || (hlen = (size_t)(colon - arg)) == 0 || hlen >= sizeof(host))
		return false;
	memcpy(host, arg, hlen);
	host[hlen] = '\0';
	if (host[0] == '[' && host[hlen - 1] == ']' && hlen > 2) {
		host[hlen - 1] = '\0';
		s6->sin6_family = AF_INET6;
		ls->addr_len = sizeof(*s6);
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			return false;
	} else if (!strcmp(host, "*")) {
		ls->any = true;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_any;
		ls->addr_len = sizeof(*s6);
	} else {
		s4->sin_family = AF_INET;
		ls->addr_len = sizeof(*s4);
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return false;
	}
	return parse_port(colon + 1, &ls->addr);
}

static int open_listener(struct listen_spec *ls)
{
	int one = 1, v6only = !ls->any;
	int fd = socket(ls->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	/* "*" on a host without IPv6: fall back to the IPv4 wildcard. */
	if (fd < 0 && ls->any && errno == EAFNOSUPPORT) {
		struct sockaddr_in *s4 = (void *)&ls->addr;
		in_port_t port = ((struct sockaddr_in6 *)&ls->addr)->sin6_port;

		memset(&ls->addr, 0, sizeof(ls->addr));
		s4->sin_family = AF_INET;
		s4->sin_port = port;
		ls->addr_len = sizeof(*s4);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	}
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ls->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	if (bind(fd, (struct sockaddr *)&ls->addr, ls->addr_len) || listen(fd, 1024)) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

static void sockname(int fd, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &len)) {
		snprintf(out, n, "?");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(out, n, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else {
		struct sockaddr_in *s4 = (void *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(out, n, "%s:%u", ip, ntohs(s4->sin_port));
	}
}

/*
 * The ready file lists the bound addresses, one a line, so a test can listen on port 0 and
 * read the port back. Written under a temporary name and renamed so it never appears empty.
 */
static int write_ready_file(const int *fds, int n)
{
	char tmp[4096], name[INET6_ADDRSTRLEN + 16];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", cfg.ready_path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -1;
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	for (int i = 0; i < n; i++) {
		sockname(fds[i], name, sizeof(name));
		fprintf(f, "%s\n", name);
	}
	if (fclose(f) || rename(tmp, cfg.ready_path)) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* ---- main loop ------------------------------------------------------------------------ */

static void on_signal(int sig)
{
	int saved = errno;

	(void)sig;
	if (write(stop_pipe[1], "x", 1) < 0) {
		/* The pipe already holds a byte: shutdown is under way. */
	}
	errno = saved;
}

static int setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK))
		return -1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void accept_one(int lfd)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd >= 0) {
		spawn_conn(fd, &peer);
	} else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
		/* Out of descriptors: back off instead of spinning on a listener that stays ready. */
		fprintf(stderr, PROG ": accept: %s; raise the descriptor limit (ulimit -n)\n",
			strerror(errno));
		hold(100);
	}
}

static void serve(const int *fds, int n)
{
	struct pollfd pfd[MAX_LISTENERS + 1];

	for (int i = 0; i < n; i++)
		pfd[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
	pfd[n] = (struct pollfd){ .fd = stop_pipe[0], .events = POLLIN };
	for (;;) {
		if (poll(pfd, (nfds_t)n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, PROG ": poll: %s\n", strerror(errno));
			return;
		}
		if (pfd[n].revents)
			return;
		for (int i = 0; i < n; i++)
			if (pfd[i].revents)
				accept_one(fds[i]);
	}
}

/* ---- command line --------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
"Usage: " PROG " --listen ADDR:PORT [--listen ADDR:PORT ...] --log FILE [OPTIONS]\n"
"\n"
"OpenAI-compatible HTTP/1.1 upstream for gateway tests. POST on any path answers a\n"
"chat.completion (or a text/event-stream when the body has \"stream\": true); other methods\n"
"answer a small JSON. Every complete request is logged as one line.\n"
"\n"
"Options:\n"
"  -l, --listen ADDR:PORT     listen on 127.0.0.1:8000, [::1]:8000 or *:8000 (all, v4+v6);\n"
"                             repeatable (up to %d); port 0 picks a free port\n"
"  -L, --log FILE             append one line per request:\n"
"                               <unix-ms> <client-ip> <METHOD> <PATH> key=<K> model=<M> bytes=<N>\n"
"                             K: authorization, else x-api-key, else api-key header, else -\n"
"                             M: x-model header, else \"model\" of the JSON body, else -\n"
"  -t, --tokens P,C           usage to report: P prompt, C completion tokens (default %d,%d);\n"
"                             the answer carries C words \"tok \"\n"
"  -d, --delay-ms N           wait N ms before answering each request (default 0)\n"
"  -u, --hide-usage           leave \"usage\" out of every answer\n"
"  -r, --ready-file FILE      create FILE, listing the bound ADDR:PORTs, once all listeners\n"
"                             are bound; removed on exit\n"
"  -h, --help                 show this help\n"
"\n"
"Per-request overrides (request headers):\n"
"  x-mock-tokens: P,C         usage for this answer\n"
"  x-mock-chunk-size: N       a plain answer sent chunked, N bytes a chunk\n"
"  x-mock-delay-ms: N         hold this request N ms before answering\n"
"  x-mock-hold-file: PATH     hold this request until PATH exists (at most 3600000 ms), then\n"
"                             for its delay; the request is logged before the hold\n"
"  x-mock-event-delay-ms: N   pause N ms before each streamed event after the role event\n"
"                             (content, finish, usage, [DONE]); a non-streamed POST answer\n"
"                             sends its head and first half of the body, pauses, the rest\n"
"  A client that closes or resets its connection during a hold or pause gets no answer.\n"
"\n"
"SIGTERM or SIGINT: stop, exit 0. Exit 1 on a runtime failure, 2 on bad usage.\n",
		MAX_LISTENERS, DEFAULT_PROMPT_TOKENS, DEFAULT_COMPLETION_TOKENS);
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen",     required_argument, NULL, 'l' },
		{ "log",        required_argument, NULL, 'L' },
		{ "tokens",     required_argument, NULL, 't' },
		{ "delay-ms",   required_argument, NULL, 'd' },
		{ "hide-usage", no_argument,       NULL, 'u' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "help",       no_argument,       NULL, 'h' },
		{ 0 }
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "l:L:t:d:ur:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (cfg.n_listen == MAX_LISTENERS)
				usage_error("at most %s --listen addresses", "16");
			if (!parse_listen(optarg, &cfg.listen[cfg.n_listen++]))
				usage_error("bad --listen '%s': want 127.0.0.1:PORT, [::1]:PORT or *:PORT",
					    optarg);
			break;
		case 'L':
			cfg.log_path = optarg;
			break;
		case 't':
			if (!parse_tokens(optarg, strlen(optarg), &cfg.prompt_tokens,
					  &cfg.completion_tokens))
				usage_error("bad --tokens '%s': want PROMPT,COMPLETION, e.g. 10,20", optarg);
			break;
		case 'd':
			if (!parse_ulong(optarg, strlen(optarg), DELAY_MAX_MS, &cfg.delay_ms))
				usage_error("bad --delay-ms '%s': want milliseconds, 0..3600000", optarg);
			break;
		case 'u':
			cfg.hide_usage = true;
			break;
		case 'r':
			cfg.ready_path = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage_error("%s", "invalid option");
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!cfg.n_listen)
		usage_error("%s", "--listen ADDR:PORT is required");
	if (!cfg.log_path)
		usage_error("%s", "--log FILE is required");
}

static int open_listeners(int *fds)
{
	for (int i = 0; i < cfg.n_listen; i++) {
		fds[i] = open_listener(&cfg.listen[i]);
		if (fds[i] < 0) {
			fprintf(stderr, PROG ": cannot listen on %s: %s%s\n", cfg.listen[i].arg,
				strerror(errno), errno == EADDRINUSE ?
				" (another server holds it: stop it or pick another port)" : "");
			while (i--)
				close(fds[i]);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	int fds[MAX_LISTENERS];
	int ret = 1;

	parse_args(argc, argv);
	/* A ready file left by an earlier run must not signal readiness before we bind. */
	if (cfg.ready_path)
		unlink(cfg.ready_path);
	log_fd = open(cfg.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0) {
		fprintf(stderr, PROG ": cannot open log %s: %s\n", cfg.log_path, strerror(errno));
		return 1;
	}
	if (setup_signals()) {
		fprintf(stderr, PROG ": cannot set up signal handling: %s\n", strerror(errno));
		goto out_log;
	}
	if (open_listeners(fds))
		goto out_pipe;
	if (cfg.ready_path && write_ready_file(fds, cfg.n_listen)) {
		fprintf(stderr, PROG ": cannot write ready file %s: %s\n", cfg.ready_path,
			strerror(errno));
		goto out_listeners;
	}
	serve(fds, cfg.n_listen);
	/* serve() also returns on a poll failure: tell the connection threads either way. */
	on_signal(0);
	ret = 0;
out_listeners:
	for (int i = 0; i < cfg.n_listen; i++)
		close(fds[i]);
	drain_connections();
	if (cfg.ready_path && !ret)
		unlink(cfg.ready_path);
out_pipe:
	close(stop_pipe[0]);
	close(stop_pipe[1]);
out_log:
	close(log_fd);
	return ret;
}
