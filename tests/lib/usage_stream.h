/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * rls_usage_find() fed in pieces, for the tests and the fuzzer that check the usage finder
 * (tests/unit/test_usage.c, fuzz/usage_tail.c) on responses split every way. The product never
 * feeds it so: the daemon gets each response's tail in one piece (user/settle.c), so this is
 * not in user/.
 */
#ifndef RLS_TESTS_USAGE_STREAM_H
#define RLS_TESTS_USAGE_STREAM_H

#include <string.h>

#include "usage.h"

/*
 * Keeps only the last RLS_USAGE_WINDOW bytes of what it is fed, so that the result is exactly
 * rls_usage_find() on the concatenation of everything fed.
 */
struct rls_usage_stream {
	char ring[RLS_USAGE_WINDOW];
	size_t head;  /* where the next byte goes */
	size_t fill;  /* bytes held, at most RLS_USAGE_WINDOW */
	int chunked;
};

static inline void rls_usage_stream_init(struct rls_usage_stream *s, int chunked)
{
	memset(s, 0, sizeof(*s));
	s->chunked = chunked;
}

static inline void rls_usage_stream_feed(struct rls_usage_stream *s, const char *data, size_t len)
{
	size_t first;

	if (!data || !len)
		return;
	/* Older bytes would fall out of the window anyway. */
	if (len >= RLS_USAGE_WINDOW) {
		memcpy(s->ring, data + len - RLS_USAGE_WINDOW, RLS_USAGE_WINDOW);
		s->head = 0;
		s->fill = RLS_USAGE_WINDOW;
		return;
	}
	first = RLS_USAGE_WINDOW - s->head;
	if (first > len)
		first = len;
	memcpy(s->ring + s->head, data, first);
	memcpy(s->ring, data + first, len - first);
	s->head = (s->head + len) % RLS_USAGE_WINDOW;
	s->fill = s->fill + len > RLS_USAGE_WINDOW ? RLS_USAGE_WINDOW : s->fill + len;
}

static inline int rls_usage_stream_result(const struct rls_usage_stream *s, struct rls_usage *out)
{
	char flat[RLS_USAGE_WINDOW];
	size_t start = (s->head + RLS_USAGE_WINDOW - s->fill) % RLS_USAGE_WINDOW;
	size_t first = RLS_USAGE_WINDOW - start;

	if (first > s->fill)
		first = s->fill;
	memcpy(flat, s->ring + start, first);
	memcpy(flat + first, s->ring, s->fill - first);
	return rls_usage_find(flat, s->fill, s->chunked, out);
}

#endif /* RLS_TESTS_USAGE_STREAM_H */
