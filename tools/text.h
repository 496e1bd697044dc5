/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the test tools (mock-upstream, loadgen) share: a growable string buffer and the small
 * text checks HTTP parsing needs. Header-only, since each tool is built from one .c file.
 */
#ifndef RLS_TOOLS_TEXT_H
#define RLS_TOOLS_TEXT_H

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hex_digit.h"

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;       /* sticky: checked once at the end instead of after every append */
};

static inline bool sb_reserve(struct sbuf *b, size_t extra)
{
	size_t cap = b->cap ? b->cap : 256;
	char *p;

	if (b->oom)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	while (cap < b->len + extra + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static inline void sb_add(struct sbuf *b, const void *data, size_t n)
{
	if (!sb_reserve(b, n))
		return;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static inline void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static inline void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !sb_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static inline void sb_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static inline bool parse_ulong(const char *s, size_t n, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!n || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		if (v > (max - (unsigned long)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*out = v;
	return true;
}

static inline bool span_ieq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && !strncasecmp(s, lit, n);
}

static inline bool list_has_token(const char *v, size_t n, const char *tok)
{
	size_t i = 0;

	while (i < n) {
		size_t start, end;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < n && v[i] != ',')
			i++;
		end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (span_ieq(v + start, end - start, tok))
			return true;
	}
	return false;
}

/*
 * A chunk-size line (RFC 9112 7.1): hex digits, optional blanks, then the end or a ';' and
 * extensions (ignored). false for anything else, or once the digits read so far pass max / 16:
 * a guard against overflow, not an exact limit (the caller checks the size it accepts).
 */
static inline bool text_chunk_size(const char *line, size_t n, unsigned long long max,
				   unsigned long long *size)
{
	unsigned long long v = 0;
	size_t i = 0;
	int d;

	for (; i < n && (d = rls_hex_digit(line[i])) >= 0; i++) {
		if (v > (max >> 4))
			return false;
		v = v * 16 + (unsigned long long)d;
	}
	if (!i)
		return false;
	while (i < n && (line[i] == ' ' || line[i] == '\t'))
		i++;
	*size = v;
	return i == n || line[i] == ';';
}

/* Next line of buf[*pos..end), without its CR LF or bare LF; *pos moves past it. */
static inline bool text_next_line(const char *buf, size_t end, size_t *pos, const char **line,
				  size_t *n)
{
	const char *nl;

	if (*pos >= end)
		return false;
	nl = memchr(buf + *pos, '\n', end - *pos);
	if (!nl)
		return false;
	*line = buf + *pos;
	*n = (size_t)(nl - *line);
	*pos += *n + 1;
	if (*n && (*line)[*n - 1] == '\r')
		(*n)--;
	return true;
}

#endif /* RLS_TOOLS_TEXT_H */
