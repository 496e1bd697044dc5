/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The HTTP/1.1 connection the test tools share: the clients (loadgen, adversary) read responses
 * with it, mock-upstream reads requests. A non-blocking socket with one deadline for the whole
 * exchange (clients) or a limit on each wait (a server's idle peers), a read buffer that is fixed
 * (clients) or grows to a bound (a server's request bodies), and the line reader heads and chunk
 * sizes are parsed with. Header-only, since each tool is built from one .c file.
 */
#ifndef RLS_TOOLS_HTTP_CONN_H
#define RLS_TOOLS_HTTP_CONN_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "clock.h"
#include "text.h"

struct http_conn {
	int fd;                     /* non-blocking */
	char *buf;
	size_t cap;                 /* of buf; a full header block must fit */
	size_t max_cap;             /* above cap: buf is malloc'd and doubles up to max_cap */
	size_t off, len;            /* unread bytes are buf[off..len) */
	unsigned long long deadline; /* mono_ms, for the whole exchange ... */
	unsigned long idle_ms;      /* ... or, when not 0, the longest each wait may take */
	const int *stop_fd;         /* NULL, or a pipe whose becoming readable ends every wait */
};

/* The first size of a buffer that grows (max_cap), as a server's is. */
#define HTTP_CONN_FIRST_CAP 16384

/* What http_conn_fill and http_conn_read_line return when they could not go on. */
enum {
	HTTP_IO_CLOSED = 0,         /* the peer closed */
	HTTP_IO_ERROR = -1,         /* a socket error, or a line longer than allowed */
	HTTP_IO_DEADLINE = -2,
};

/* true when the fd is ready before the deadline (or idle_ms) and before a stop. */
static inline bool http_conn_wait(struct http_conn *c, short events)
{
	unsigned long long deadline = c->idle_ms ? mono_ms() + c->idle_ms : c->deadline;

	return wait_fd_until(c->fd, events, deadline, c->stop_fd ? *c->stop_fd : -1);
}

/* One write, all of it (flags for send()); false when the peer is gone or the deadline passed. */
static inline bool http_conn_send(struct http_conn *c, const char *p, size_t n, int flags)
{
	while (n) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | flags);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!http_conn_wait(c, POLLOUT))
				return false;
			continue;
		}
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static inline size_t http_conn_avail(const struct http_conn *c)
{
	return c->len - c->off;
}

/* Doubles a buffer that may grow (max_cap), to max_cap at most; false when it may not. */
static inline bool http_conn_grow(struct http_conn *c)
{
	size_t cap = c->cap ? c->cap * 2 : HTTP_CONN_FIRST_CAP;
	char *p;

	if (c->cap >= c->max_cap)
		return false;
	if (cap > c->max_cap)
		cap = c->max_cap;
	p = realloc(c->buf, cap);
	if (!p)
		return false;
	c->buf = p;
	c->cap = cap;
	return true;
}

/* Read more: >0 bytes read, else HTTP_IO_CLOSED, HTTP_IO_ERROR (also: buffer full and at its
 * bound) or HTTP_IO_DEADLINE (also: stopped). */
static inline ssize_t http_conn_fill(struct http_conn *c)
{
	ssize_t r;

	if (c->off) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == c->cap && !http_conn_grow(c))
		return HTTP_IO_ERROR;
	for (;;) {
		r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!http_conn_wait(c, POLLIN))
				return HTTP_IO_DEADLINE;
			continue;
		}
		if (r > 0)
			c->len += (size_t)r;
		return r < 0 ? HTTP_IO_ERROR : r;
	}
}

/*
 * Next CRLF- (or LF-) terminated line, consumed; the span excludes the terminator. 1 when read,
 * else as http_conn_fill says; a line that grows past max bytes is HTTP_IO_ERROR.
 */
static inline int http_conn_read_line(struct http_conn *c, const char **line, size_t *n,
				      size_t max)
{
	*line = NULL; /* set on every path: callers' compilers cannot always see it */
	*n = 0;
	for (;;) {
		size_t pos = c->off;
		ssize_t r;

		if (text_next_line(c->buf, c->len, &pos, line, n)) {
			c->off = pos;
			return 1;
		}
		if (http_conn_avail(c) > max)
			return HTTP_IO_ERROR;
		r = http_conn_fill(c);
		if (r <= 0)
			return (int)r;
	}
}

/* Reads and drops n bytes, appending them to sink (when given) while it holds under sink_max. */
static inline bool http_conn_consume(struct http_conn *c, size_t n, struct sbuf *sink,
				     size_t sink_max)
{
	while (n) {
		size_t k;

		if (!http_conn_avail(c) && http_conn_fill(c) <= 0)
			return false;
		k = http_conn_avail(c) < n ? http_conn_avail(c) : n;
		if (sink && sink->len < sink_max)
			sb_add(sink, c->buf + c->off, k);
		c->off += k;
		n -= k;
	}
	return true;
}

/* What http_conn_read_chunked found: the server answers each failure with its own 400 (or 413). */
enum http_chunked {
	HTTP_CHUNKED_OK,
	HTTP_CHUNKED_TRUNCATED,         /* the connection ended (or failed) before a size line */
	HTTP_CHUNKED_BAD_SIZE,          /* a size line that is not hex digits, or a chunk over max */
	HTTP_CHUNKED_TOO_LARGE,         /* the chunks add up to more than body_max */
	HTTP_CHUNKED_TRUNCATED_CHUNK,   /* the connection ended inside a chunk or before its CRLF */
	HTTP_CHUNKED_BAD_END,           /* chunk data not followed by CRLF (or LF) */
	HTTP_CHUNKED_TRUNCATED_TRAILER, /* the connection ended in the trailer section */
};

/*
 * A chunked body (RFC 9112 7.1), its data appended to sink (when given) as http_conn_consume
 * does; the trailer section is read and dropped. Lines are at most line_max bytes.
 */
static inline enum http_chunked http_conn_read_chunked(struct http_conn *c, size_t line_max,
							unsigned long long body_max,
							struct sbuf *sink, size_t sink_max)
{
	unsigned long long size, total = 0;
	const char *line;
	size_t n;

	for (;;) {
		if (http_conn_read_line(c, &line, &n, line_max) <= 0)
			return HTTP_CHUNKED_TRUNCATED;
		if (!text_chunk_size(line, n, body_max, &size))
			return HTTP_CHUNKED_BAD_SIZE;
		if (!size)
			break;
		total += size;
		if (total > body_max)
			return HTTP_CHUNKED_TOO_LARGE;
		if (!http_conn_consume(c, size, sink, sink_max) ||
		    http_conn_read_line(c, &line, &n, line_max) <= 0)
			return HTTP_CHUNKED_TRUNCATED_CHUNK;
		if (n)
			return HTTP_CHUNKED_BAD_END;
	}
	do {
		if (http_conn_read_line(c, &line, &n, line_max) <= 0)
			return HTTP_CHUNKED_TRUNCATED_TRAILER;
	} while (n);
	return HTTP_CHUNKED_OK;
}

#endif
