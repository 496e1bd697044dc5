// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The usage parser (user/usage.c) on arbitrary response tails. The first byte of the input
 * says how to read the rest: bit 0 set, as a chunked body; the other bits pick the sizes of
 * the pieces it is fed in and of the chunks it is framed in below. Properties:
 *
 *   - nothing found leaves the counts zeroed; a found object's counts are within
 *     RLS_USAGE_MAX (the total, when made up as prompt + completion, within twice that), and
 *     unchunked bytes hold a "usage" key;
 *   - only the last RLS_USAGE_WINDOW bytes matter: the same answer from them alone;
 *   - fed in pieces (rls_usage_stream_*), the answer is exactly that of the whole;
 *   - a body whose usage is found plainly is found the same once framed in chunks of any
 *     sizes: a complete chunked body loses nothing to the framing.
 */
#define _GNU_SOURCE /* memmem */
#include "fuzz.h"
#include "usage.h"
#include "../tests/lib/usage_stream.h"

static void check_same(int found, const struct rls_usage *u, int found2,
		       const struct rls_usage *u2, const char *what)
{
	FUZZ_CHECK(found == found2 && !memcmp(u, u2, sizeof(*u)),
		   "%s: found %d (%llu %llu %llu), then %d (%llu %llu %llu)", what, found,
		   (unsigned long long)u->prompt_tokens, (unsigned long long)u->completion_tokens,
		   (unsigned long long)u->total_tokens, found2,
		   (unsigned long long)u2->prompt_tokens, (unsigned long long)u2->completion_tokens,
		   (unsigned long long)u2->total_tokens);
}

static size_t piece_size(unsigned seed, size_t i)
{
	return 1 + (seed * 131 + i * 977) % (seed & 1 ? 17 : 700);
}

static void check_counts(int found, const struct rls_usage *u, const char *body, size_t len,
			 int chunked)
{
	static const struct rls_usage zero;

	FUZZ_CHECK(found == 0 || found == 1, "returns %d", found);
	if (!found) {
		FUZZ_CHECK(!memcmp(u, &zero, sizeof(zero)), "nothing found, counts zeroed");
		return;
	}
	FUZZ_CHECK(u->prompt_tokens <= RLS_USAGE_MAX && u->completion_tokens <= RLS_USAGE_MAX &&
		   u->total_tokens <= 2 * RLS_USAGE_MAX, "counts bounded");
	/* Chunk framing may split the key. */
	FUZZ_CHECK(chunked || memmem(body, len, "\"usage\"", 7), "a usage key is in the bytes");
}

static void check_stream(const char *body, size_t len, int chunked, unsigned seed, int found,
			 const struct rls_usage *u)
{
	static struct rls_usage_stream s; /* 4 KiB: not on the stack of every run */
	struct rls_usage u2;
	size_t off = 0, i, n;

	rls_usage_stream_init(&s, chunked);
	for (i = 0; off < len; i++, off += n) {
		n = piece_size(seed, i);
		if (n > len - off)
			n = len - off;
		rls_usage_stream_feed(&s, body + off, n);
	}
	check_same(found, u, rls_usage_stream_result(&s, &u2), &u2, "fed in pieces");
}

/* The body framed as a complete chunked body, or 0 when that would not fit out. */
static size_t chunk_body(const char *body, size_t len, unsigned seed, char *out, size_t room)
{
	size_t off = 0, o = 0, i, n;
	int w;

	for (i = 0; off < len; i++, off += n) {
		n = piece_size(seed >> 1, i);
		if (n > len - off)
			n = len - off;
		if (o + n + 32 > room)
			return 0;
		w = snprintf(out + o, room - o, "%zx%s\r\n", n, i % 3 == 2 ? ";ext=\"x\"" : "");
		o += (size_t)w;
		memcpy(out + o, body + off, n);
		o += n;
		memcpy(out + o, "\r\n", 2);
		o += 2;
	}
	if (o + 5 > room)
		return 0;
	memcpy(out + o, "0\r\n\r\n", 5);
	return o + 5;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char framed[RLS_USAGE_WINDOW];
	struct rls_usage u, u2;
	const char *body;
	unsigned seed;
	size_t len, n;
	int chunked, found;

	if (size < 1)
		return 0;
	seed = data[0];
	chunked = seed & 1;
	body = (const char *)data + 1;
	len = size - 1;

	found = rls_usage_find(body, len, chunked, &u);
	check_counts(found, &u, body, len, chunked);
	if (len > RLS_USAGE_WINDOW)
		check_same(found, &u,
			   rls_usage_find(body + len - RLS_USAGE_WINDOW, RLS_USAGE_WINDOW, chunked,
					  &u2), &u2, "the last window alone");
	check_stream(body, len, chunked, seed, found, &u);

	if (!chunked && found) {
		n = chunk_body(body, len, seed, framed, sizeof(framed));
		if (n)
			check_same(found, &u, rls_usage_find(framed, n, 1, &u2), &u2,
				   "framed in chunks");
	}
	return 0;
}
