/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The HTTP/1.1 client side the test tools (loadgen, adversary) share: a non-blocking connection
 * with one deadline for the whole exchange, a fixed read buffer, and the line reader both parse
 * response heads and chunk sizes with. Header-only, since each tool is built from one .c file.
 */
#ifndef RLS_TOOLS_HTTP_CONN_H
#define RLS_TOOLS_HTTP_CONN_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "clock.h"
#include "text.h"

struct http_conn {
	int fd;
	char *buf;
	size_t cap;                 /* of buf: fixed, a full header block must fit */
	size_t off, len;            /* unread bytes are buf[off..len) */
	unsigned long long deadline;
};

/* What http_conn_fill and http_conn_read_line return when they could not go on. */
enum {
	HTTP_IO_CLOSED = 0,         /* the peer closed */
	HTTP_IO_ERROR = -1,         /* a socket error, or a line longer than allowed */
	HTTP_IO_DEADLINE = -2,
};

/* true when the fd is ready before the deadline. */
static inline bool http_conn_wait(struct http_conn *c, short events)
{
	return wait_fd_until(c->fd, events, c->deadline);
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

/* Read more: >0 bytes read, else HTTP_IO_CLOSED, HTTP_IO_ERROR (also: buffer full) or
 * HTTP_IO_DEADLINE. */
static inline ssize_t http_conn_fill(struct http_conn *c)
{
	ssize_t r;

	if (c->off) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == c->cap)
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

#endif
