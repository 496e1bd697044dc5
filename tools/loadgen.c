// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * loadgen: a keep-alive HTTP/1.1 load generator for gateway tests.
 *
 * It sends N identical OpenAI chat requests over C connections and counts what came back.
 * The gateway under test answers 429 or drops and resets connections, so every outcome that
 * is not an HTTP response (refused, reset, timed out, truncated) is counted as an error and
 * never retried: a silent retry would hide exactly what the tests measure, and could push
 * one more request through the limiter than the test sent.
 *
 * --cut-off plays the client that gives up mid-answer: it hangs up on every 200 as soon as the
 * head is in, so the tests can watch what the limiter does with answers nobody reads to the end.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http_conn.h"
#include "text.h"

#define PROG "loadgen"
#include "usage_error.h" /* needs PROG */

#define BUF_SIZE        (128 * 1024)    /* per connection: a full header block fits */
#define HEAD_MAX        (64 * 1024)
#define CHUNK_LINE_MAX  4096
#define SAVE_BODY_MAX   (1u << 20)      /* of the saved 429 body; the rest is read, not kept */
#define MAX_HEADERS     32
#define CONNECTIONS_MAX 10000
#define PAD_MAX         (64ul << 20)
#define TIMEOUT_MAX_MS  3600000ul
#define THREAD_STACK    (256 * 1024)
#define STATUS_CODES    1000

enum model_in { MODEL_IN_BODY, MODEL_IN_HEADER, MODEL_IN_NONE };
enum cut_off { CUT_OFF_NONE, CUT_OFF_FIN, CUT_OFF_RST };

struct config {
	const char *target;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	unsigned long requests;
	unsigned long connections;
	const char *key;
	const char *key_header;
	const char *model;
	const char *model_header;
	enum model_in model_in;
	const char *path;
	const char *headers[MAX_HEADERS];
	int n_headers;
	const char *save_429;
	unsigned long body_pad;
	unsigned long timeout_ms;
	enum cut_off cut_off;
	bool new_connection;
	bool stream;
	bool json;
};

static struct config cfg = {
	.connections = 1,
	.key_header = "authorization",
	.model = "mock-model",
	.model_header = "x-model",
	.model_in = MODEL_IN_BODY,
	.path = "/v1/chat/completions",
	.timeout_ms = 5000,
};

struct stats {
	unsigned long sent;
	unsigned long errors;
	unsigned long cut;          /* also counted in status[200] */
	unsigned long status[STATUS_CODES];
};

/* The request is the same every time: built once, shared read-only by all workers. */
static char *request;
static size_t request_len;
static atomic_ulong next_request;

static pthread_mutex_t save_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool saved_429;

/* ---- growable string buffer ----------------------------------------------------------- */

static void sb_json_escaped(struct sbuf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			sb_printf(b, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			sb_printf(b, "\\u%04x", ch);
		else
			sb_add(b, s, 1);
	}
}

/* ---- small parsing helpers ------------------------------------------------------------ */

/* ---- connection I/O with a per-request deadline --------------------------------------- */

static void conn_close(struct http_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->off = c->len = 0;
}

/*
 * --cut-off: hang up mid-answer. Linux answers close() with a RST instead of a FIN when received
 * bytes are still unread, so fin first drops what already arrived; rst asks for the reset
 * outright with a zero linger time.
 */
static void conn_cut(struct http_conn *c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int queued = 0;

	if (cfg.cut_off == CUT_OFF_RST) {
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	} else if (!ioctl(c->fd, FIONREAD, &queued)) {
		/* Only what is queued now: a fast server must not make this read the whole body. */
		while (queued > 0) {
			size_t n = queued < BUF_SIZE ? (size_t)queued : BUF_SIZE;
			ssize_t r = recv(c->fd, c->buf, n, MSG_DONTWAIT);

			if (r <= 0)
				break;
			queued -= (int)r;
		}
	}
	conn_close(c);
}

static bool conn_open(struct http_conn *c)
{
	int one = 1, err = 0;
	socklen_t len = sizeof(err);

	c->off = c->len = 0;
	c->fd = socket(cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return false;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&cfg.addr, cfg.addr_len) && errno != EINPROGRESS)
		goto fail;
	if (!http_conn_wait(c, POLLOUT) ||
	    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err)
		goto fail;
	return true;
fail:
	conn_close(c);
	return false;
}

/* Read and drop n body bytes, keeping them in sink (when given) up to SAVE_BODY_MAX. */
static bool consume(struct http_conn *c, size_t n, struct sbuf *sink)
{
	return http_conn_consume(c, n, sink, SAVE_BODY_MAX);
}

/* A head or trailer line, or a chunk size line; false on any failure. */
static bool read_line(struct http_conn *c, const char **line, size_t *n)
{
	return http_conn_read_line(c, line, n, HEAD_MAX) > 0;
}

/* ---- responses ------------------------------------------------------------------------ */

struct response {
	int status;
	bool chunked, has_length, close;
	unsigned long long length;
	struct sbuf *save;          /* raw head and body of a 429 being saved, else NULL */
};

static bool parse_status_line(struct response *rs, const char *line, size_t n)
{
	unsigned long st;

	if (n < 12 || memcmp(line, "HTTP/1.", 7) || (line[7] != '0' && line[7] != '1') ||
	    line[8] != ' ' || (n > 12 && line[12] != ' '))
		return false;
	if (!parse_ulong(line + 9, 3, 999, &st) || st < 100)
		return false;
	rs->status = (int)st;
	rs->close = line[7] == '0';     /* HTTP/1.0 closes unless told otherwise */
	return true;
}

static bool parse_header(struct response *rs, const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n), *v;
	size_t nl, vl;
	unsigned long len;

	if (!colon || colon == line)
		return false;
	nl = (size_t)(colon - line);
	v = colon + 1;
	vl = n - nl - 1;
	while (vl && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	if (span_ieq(line, nl, "content-length")) {
		if (!parse_ulong(v, vl, ~0ul, &len) || (rs->has_length && len != rs->length))
			return false;
		rs->has_length = true;
		rs->length = len;
	} else if (span_ieq(line, nl, "transfer-encoding")) {
		rs->chunked = list_has_token(v, vl, "chunked");
	} else if (span_ieq(line, nl, "connection")) {
		if (list_has_token(v, vl, "close"))
			rs->close = true;
		else if (list_has_token(v, vl, "keep-alive"))
			rs->close = false;
	}
	return true;
}

static void save_line(struct response *rs, const char *line, size_t n)
{
	if (rs->save) {
		sb_add(rs->save, line, n);
		sb_str(rs->save, "\r\n");
	}
}

static bool want_save(int status)
{
	return status == 429 && cfg.save_429 && !atomic_load(&saved_429);
}

/* Status line and headers, skipping interim 1xx responses. */
static bool read_head(struct http_conn *c, struct response *rs, struct sbuf *save)
{
	const char *line;
	size_t n;

	do {
		memset(rs, 0, sizeof(*rs));
		if (!read_line(c, &line, &n) || !parse_status_line(rs, line, n))
			return false;
		if (want_save(rs->status)) {
			rs->save = save;
			save_line(rs, line, n);
		}
		for (;;) {
			if (!read_line(c, &line, &n))
				return false;
			save_line(rs, line, n);
			if (!n)
				break;
			if (!parse_header(rs, line, n))
				return false;
		}
	} while (rs->status < 200 && rs->status != 101);
	return true;
}

static bool read_until_close(struct http_conn *c, struct sbuf *sink)
{
	for (;;) {
		ssize_t r;

		consume(c, http_conn_avail(c), sink);
		r = http_conn_fill(c);
		if (r == 0)
			return true;
		if (r < 0)
			return false;
	}
}

static bool read_body(struct http_conn *c, struct response *rs)
{
	if (rs->status == 204 || rs->status == 304 || rs->status == 101)
		return true;
	if (rs->chunked)
		return http_conn_read_chunked(c, HEAD_MAX, ~0ull >> 4, rs->save, SAVE_BODY_MAX) ==
		       HTTP_CHUNKED_OK;
	if (rs->has_length)
		return consume(c, rs->length, rs->save);
	rs->close = true;
	return read_until_close(c, rs->save);
}

/* First 429 wins; the file is written while the lock is held so it is never half-written. */
static void save_429(const struct sbuf *raw)
{
	FILE *f;

	pthread_mutex_lock(&save_lock);
	if (!atomic_load(&saved_429) && !raw->oom) {
		atomic_store(&saved_429, true);
		f = fopen(cfg.save_429, "w");
		if (!f || fwrite(raw->p, 1, raw->len, f) != raw->len || fclose(f)) {
			fprintf(stderr, PROG ": cannot write --save-429 file %s: %s\n", cfg.save_429,
				strerror(errno));
			if (f)
				fclose(f);
		}
	}
	pthread_mutex_unlock(&save_lock);
}

/*
 * One request on c (connecting if needed). Returns the HTTP status, or -1 on error; *cut tells
 * whether --cut-off hung up on it after the head, leaving the body unread.
 */
static int one_request(struct http_conn *c, bool *cut)
{
	struct sbuf save = { 0 };
	struct response rs;
	bool ok;

	*cut = false;
	c->deadline = mono_ms() + cfg.timeout_ms;
	if (c->fd < 0 && !conn_open(c))
		return -1;
	ok = http_conn_send(c, request, request_len, 0) && read_head(c, &rs, &save);
	*cut = ok && cfg.cut_off != CUT_OFF_NONE && rs.status == 200;
	if (*cut)
		conn_cut(c);
	else
		ok = ok && read_body(c, &rs);
	if (ok && rs.save)
		save_429(&save);
	sb_free(&save);
	if (!ok || rs.close || cfg.new_connection || rs.status == 101)
		conn_close(c);
	return ok ? rs.status : -1;
}

static void *worker_main(void *arg)
{
	struct stats *st = arg;
	struct http_conn c = { .fd = -1, .cap = BUF_SIZE };

	c.buf = malloc(BUF_SIZE);
	while (atomic_fetch_add(&next_request, 1) < cfg.requests) {
		bool cut = false;
		int status = c.buf ? one_request(&c, &cut) : -1;

		st->sent++;
		st->cut += cut;
		if (status < 0)
			st->errors++;
		else
			st->status[status]++;
	}
	conn_close(&c);
	free(c.buf);
	return NULL;
}

/* ---- the request ---------------------------------------------------------------------- */

static void build_body(struct sbuf *b)
{
	sb_str(b, "{");
	if (cfg.model_in == MODEL_IN_BODY) {
		sb_str(b, "\"model\":\"");
		sb_json_escaped(b, cfg.model);
		sb_str(b, "\",");
	}
	sb_str(b, "\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.");
	for (unsigned long i = 0; i < cfg.body_pad; i++)
		sb_add(b, "x", 1);
	sb_str(b, "\"}]");
	if (cfg.stream)
		sb_str(b, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
	sb_str(b, "}");
}

static bool build_request(void)
{
	struct sbuf b = { 0 }, body = { 0 };
	bool bearer = !strcasecmp(cfg.key_header, "authorization");

	build_body(&body);
	sb_printf(&b, "POST %s HTTP/1.1\r\nhost: %s\r\nuser-agent: " PROG "\r\n"
		  "accept: */*\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n",
		  cfg.path, cfg.target, body.len);
	if (cfg.key)
		sb_printf(&b, "%s: %s%s\r\n", cfg.key_header, bearer ? "Bearer " : "", cfg.key);
	if (cfg.model_in == MODEL_IN_HEADER)
		sb_printf(&b, "%s: %s\r\n", cfg.model_header, cfg.model);
	for (int i = 0; i < cfg.n_headers; i++)
		sb_printf(&b, "%s\r\n", cfg.headers[i]);
	if (cfg.new_connection)
		sb_str(&b, "connection: close\r\n");
	sb_str(&b, "\r\n");
	sb_add(&b, body.p, body.len);
	if (b.oom || body.oom) {
		sb_free(&b);
		sb_free(&body);
		return false;
	}
	sb_free(&body);
	request = b.p;
	request_len = b.len;
	return true;
}

/* ---- results -------------------------------------------------------------------------- */

static void merge(struct stats *total, const struct stats *w)
{
	total->sent += w->sent;
	total->errors += w->errors;
	total->cut += w->cut;
	for (int i = 0; i < STATUS_CODES; i++)
		total->status[i] += w->status[i];
}

static void report(const struct stats *t)
{
	unsigned long other = 0;
	bool first = true;

	for (int i = 0; i < STATUS_CODES; i++)
		if (i != 200 && i != 429)
			other += t->status[i];
	if (!cfg.json) {
		printf("sent=%lu status_200=%lu status_429=%lu other=%lu errors=%lu", t->sent,
		       t->status[200], t->status[429], other, t->errors);
		if (cfg.cut_off != CUT_OFF_NONE)
			printf(" cut=%lu", t->cut);
		putchar('\n');
		return;
	}
	printf("{\"sent\":%lu,\"status_200\":%lu,\"status_429\":%lu,\"other\":%lu,\"errors\":%lu,"
	       "\"cut\":%lu,\"status\":{", t->sent, t->status[200], t->status[429], other,
	       t->errors, t->cut);
	for (int i = 0; i < STATUS_CODES; i++) {
		if (!t->status[i])
			continue;
		printf("%s\"%d\":%lu", first ? "" : ",", i, t->status[i]);
		first = false;
	}
	printf("}}\n");
}

static int run(void)
{
	unsigned long n = cfg.connections < cfg.requests ? cfg.connections : cfg.requests;
	struct stats *st = calloc(n + 1, sizeof(*st));  /* st[n]: the total */
	pthread_t *tids = calloc(n + 1, sizeof(*tids));
	pthread_attr_t attr;
	unsigned long started = 0;
	int ret = 2;

	if (!st || !tids) {
		fprintf(stderr, PROG ": out of memory for %lu connections\n", n);
		goto out;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	for (; started < n; started++) {
		if (pthread_create(&tids[started], &attr, worker_main, &st[started])) {
			/* The threads already running take over the remaining requests. */
			fprintf(stderr, PROG ": started only %lu of %lu connections "
				"(lower --connections or raise ulimit -u)\n", started, n);
			break;
		}
	}
	pthread_attr_destroy(&attr);
	if (!started && n)
		goto out;
	for (unsigned long i = 0; i < started; i++) {
		pthread_join(tids[i], NULL);
		merge(&st[n], &st[i]);
	}
	report(&st[n]);
	ret = st[n].errors ? 1 : 0;
out:
	free(st);
	free(tids);
	return ret;
}

/* ---- command line --------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
"Usage: " PROG " --target ADDR:PORT --requests N [OPTIONS]\n"
"\n"
"Send N OpenAI chat requests over keep-alive HTTP/1.1 connections and count the answers.\n"
"\n"
"Options:\n"
"  -t, --target ADDR:PORT     server: 127.0.0.1:8000, [::1]:8000 or NAME:PORT\n"
"  -n, --requests N           requests to send in total\n"
"  -c, --connections C        parallel connections, one thread each (default 1); each\n"
"                             sends its requests one after another\n"
"  -k, --key KEY              API key to send (default: none)\n"
"  -K, --key-header NAME      header that carries it (default authorization, which sends\n"
"                             \"Bearer KEY\"; any other header sends KEY as is)\n"
"  -m, --model M              model to ask for (default mock-model)\n"
"  -M, --model-in WHERE       body (the JSON \"model\", default), header, or none\n"
"      --model-header NAME    header for --model-in header (default x-model)\n"
"  -p, --path P               request path (default /v1/chat/completions)\n"
"  -H, --header 'NAME: VALUE' add a request header; repeatable (e.g. x-mock-delay-ms: 500)\n"
"  -s, --stream               ask for a streamed answer with usage (stream_options)\n"
"  -N, --new-connection       one connection per request (sends connection: close)\n"
"      --cut-off fin|rst      hang up on every 200 once its status line and headers are in,\n"
"                             body unread: fin closes (FIN), rst resets (SO_LINGER 0, RST);\n"
"                             counted in status_200 and in cut, not an error; the next\n"
"                             request opens a new connection. Other statuses read as usual\n"
"  -b, --body-pad BYTES       add BYTES of filler to the message content\n"
"  -T, --timeout-ms MS        per request, connect to last byte (default 5000)\n"
"  -S, --save-429 FILE        write the first 429 response seen (headers and body) to FILE\n"
"  -j, --json                 print the result as JSON\n"
"  -h, --help                 show this help\n"
"\n"
"Output: sent=N status_200=A status_429=B other=C errors=E [cut=K with --cut-off]\n"
"  --json adds \"status\": {\"<code>\": count, ...}. Errors are requests that got no\n"
"  complete HTTP response (refused, reset, timed out); they are not retried. cut: 200s\n"
"  that --cut-off hung up on (also in status_200).\n"
"\n"
"Exit status: 0 when every request got an HTTP response (cut ones count as answered),\n"
"1 otherwise, 2 on bad usage.\n");
}

static bool parse_target(const char *arg)
{
	const char *colon = strrchr(arg, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	char host[256];
	size_t hlen;
	int err;

	if (!colon || !colon[1] || (hlen = (size_t)(colon - arg)) == 0 || hlen >= sizeof(host))
		return false;
	memcpy(host, arg, hlen);
	host[hlen] = '\0';
	if (host[0] == '[') {
		if (hlen < 3 || host[hlen - 1] != ']')
			return false;
		host[hlen - 1] = '\0';
		memmove(host, host + 1, hlen - 1);
		hints.ai_family = AF_INET6;
		hints.ai_flags |= AI_NUMERICHOST;
	} else if (strchr(host, ':')) {
		usage_error("bad --target '%s': IPv6 addresses go in brackets, e.g. [::1]:8000", arg);
	}
	err = getaddrinfo(host, colon + 1, &hints, &res);
	if (err) {
		fprintf(stderr, PROG ": cannot resolve --target %s: %s\n", arg, gai_strerror(err));
		exit(2);
	}
	memcpy(&cfg.addr, res->ai_addr, res->ai_addrlen);
	cfg.addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	cfg.target = arg;
	return true;
}

/* Header names and values go onto the wire verbatim: refuse what would break the request. */
static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static bool token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

static void add_header(const char *h)
{
	const char *colon = strchr(h, ':');
	char name[256];
	size_t n = colon ? (size_t)(colon - h) : 0;

	if (cfg.n_headers == MAX_HEADERS)
		usage_error("at most %s --header options", "32");
	if (!n || n >= sizeof(name) || !printable(h))
		usage_error("bad --header '%s': want 'NAME: VALUE'", h);
	memcpy(name, h, n);
	name[n] = '\0';
	if (!token(name))
		usage_error("bad --header '%s': want 'NAME: VALUE'", h);
	cfg.headers[cfg.n_headers++] = h;
}

static void set_model_in(const char *arg)
{
	if (!strcmp(arg, "body"))
		cfg.model_in = MODEL_IN_BODY;
	else if (!strcmp(arg, "header"))
		cfg.model_in = MODEL_IN_HEADER;
	else if (!strcmp(arg, "none"))
		cfg.model_in = MODEL_IN_NONE;
	else
		usage_error("bad --model-in '%s': want body, header or none", arg);
}

enum { OPT_MODEL_HEADER = 256, OPT_CUT_OFF };

static void set_cut_off(const char *arg)
{
	if (!strcmp(arg, "fin"))
		cfg.cut_off = CUT_OFF_FIN;
	else if (!strcmp(arg, "rst"))
		cfg.cut_off = CUT_OFF_RST;
	else
		usage_error("bad --cut-off '%s': want fin or rst", arg);
}

static void parse_option(int opt, const char *arg)
{
	switch (opt) {
	case 't': if (!parse_target(arg))
			  usage_error("bad --target '%s': want ADDR:PORT, e.g. 127.0.0.1:8000", arg);
		  break;
	case 'n': cfg.requests = usage_number("--requests", arg, 0, 1ul << 40); break;
	case 'c': cfg.connections = usage_number("--connections", arg, 1, CONNECTIONS_MAX); break;
	case 'k': cfg.key = arg; break;
	case 'K': cfg.key_header = arg; break;
	case 'm': cfg.model = arg; break;
	case 'M': set_model_in(arg); break;
	case OPT_MODEL_HEADER: cfg.model_header = arg; break;
	case 'p': cfg.path = arg; break;
	case 'H': add_header(arg); break;
	case 's': cfg.stream = true; break;
	case 'N': cfg.new_connection = true; break;
	case OPT_CUT_OFF: set_cut_off(arg); break;
	case 'b': cfg.body_pad = usage_number("--body-pad", arg, 0, PAD_MAX); break;
	case 'T': cfg.timeout_ms = usage_number("--timeout-ms", arg, 1, TIMEOUT_MAX_MS); break;
	case 'S': cfg.save_429 = arg; break;
	case 'j': cfg.json = true; break;
	case 'h': usage(stdout); exit(0);
	default:  usage_error("%s", "invalid option");
	}
}

static void check_args(void)
{
	if (!cfg.target)
		usage_error("%s", "--target ADDR:PORT is required");
	if (!token(cfg.key_header))
		usage_error("bad --key-header '%s': want a header name", cfg.key_header);
	if (!token(cfg.model_header))
		usage_error("bad --model-header '%s': want a header name", cfg.model_header);
	if (cfg.key && !printable(cfg.key))
		usage_error("%s", "--key must not contain control characters");
	if (!printable(cfg.model))
		usage_error("%s", "--model must not contain control characters");
	if (cfg.path[0] != '/' || strpbrk(cfg.path, " \t") || !printable(cfg.path))
		usage_error("bad --path '%s': want an absolute path without spaces", cfg.path);
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "target",         required_argument, NULL, 't' },
		{ "requests",       required_argument, NULL, 'n' },
		{ "connections",    required_argument, NULL, 'c' },
		{ "key",            required_argument, NULL, 'k' },
		{ "key-header",     required_argument, NULL, 'K' },
		{ "model",          required_argument, NULL, 'm' },
		{ "model-in",       required_argument, NULL, 'M' },
		{ "model-header",   required_argument, NULL, OPT_MODEL_HEADER },
		{ "path",           required_argument, NULL, 'p' },
		{ "header",         required_argument, NULL, 'H' },
		{ "stream",         no_argument,       NULL, 's' },
		{ "new-connection", no_argument,       NULL, 'N' },
		{ "cut-off",        required_argument, NULL, OPT_CUT_OFF },
		{ "body-pad",       required_argument, NULL, 'b' },
		{ "timeout-ms",     required_argument, NULL, 'T' },
		{ "save-429",       required_argument, NULL, 'S' },
		{ "json",           no_argument,       NULL, 'j' },
		{ "help",           no_argument,       NULL, 'h' },
		{ 0 }
	};
	bool have_requests = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "t:n:c:k:K:m:M:p:H:sNb:T:S:jh", opts, NULL)) != -1) {
		have_requests |= opt == 'n';
		parse_option(opt, optarg);
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!have_requests)
		usage_error("%s", "--requests N is required");
	check_args();
}

int main(int argc, char **argv)
{
	int ret;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (!build_request()) {
		fprintf(stderr, PROG ": out of memory building the request (lower --body-pad)\n");
		return 2;
	}
	ret = run();
	free(request);
	return ret;
}
