// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Finding the upstream's token usage in the tail of an LLM API response: plain JSON bodies,
 * event streams, chunked framing anywhere, tails that start anywhere, and inputs that must
 * not yield a count.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../lib/cmocka_cases.h"
#include "../lib/usage_stream.h"

#include "usage.h"

#define BUF_MAX 16384

/*
 * An OpenAI chat completion: usage last, with nested details, after a completion that
 * quotes usage in its text. Its last 300 bytes start inside the "refusal" key.
 */
static const char plain_body[] =
	"{\"id\":\"chatcmpl-9xYz\",\"object\":\"chat.completion\",\"created\":1700000000,"
	"\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"message\":{"
	"\"role\":\"assistant\",\"content\":\"Rate limiting an inference gateway means counting "
	"requests and tokens per account. Tokens are only known once the upstream answers, so the "
	"gateway reads them from the response: {\\\"usage\\\": braces in text} are not usage. "
	"Tails of this body that start inside this text see its quotes the wrong way round.\","
	"\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
	"\"usage\":{\"prompt_tokens\":1234,\"completion_tokens\":567,\"total_tokens\":1801,"
	"\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0},"
	"\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0}},"
	"\"system_fingerprint\":\"fp_0ba0d124f1\"}\n";

#define CHUNK_HEAD "data: {\"id\":\"chatcmpl-9xYz\",\"object\":\"chat.completion.chunk\"," \
	"\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_0ba0d124f1\","

/* A stream with stream_options.include_usage: usage null until the last chunk, then [DONE]. */
static const char sse_body[] =
	CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
	"\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
	CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},"
	"\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
	CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" \\\"usage\\\":{\\\"prompt_tokens"
	"\\\":999,\\\"completion_tokens\\\":999,\\\"total_tokens\\\":1998}\"},"
	"\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
	CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
	"\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
	CHUNK_HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":1234,\"completion_tokens\":567,"
	"\"total_tokens\":1801,\"prompt_tokens_details\":{\"cached_tokens\":1024,"
	"\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n"
	"data: [DONE]\n\n";

static const struct rls_usage expected = { 1234, 567, 1801 };

/* ---- helpers ------------------------------------------------------------------------- */

/* xorshift64*: the same sequence on every libc, so a failure can be replayed. */
static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static size_t rng_below(size_t n)
{
	return n ? (size_t)(rng() % n) : 0;
}

/* The index of the last occurrence of needle in hay (which must hold it). */
static size_t last_index(const char *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle), i = len - n + 1;

	while (i-- > 0)
		if (memcmp(hay + i, needle, n) == 0)
			return i;
	fail_msg("\"%s\" not found", needle);
	return 0;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * body as an HTTP/1.1 chunked body, split into chunks at the sorted positions cuts (empty
 * chunks dropped: a zero size would end the body). ext goes on every chunk-size line.
 */
static size_t chunk_encode(const char *body, size_t blen, const size_t *cuts, size_t ncuts,
			   const char *ext, char *out)
{
	size_t start = 0, n = 0, i, end;

	for (i = 0; i <= ncuts; i++) {
		end = i < ncuts ? cuts[i] : blen;
		assert_true(end <= blen);
		if (end <= start)
			continue;
		n += (size_t)sprintf(out + n, "%zx%s\r\n", end - start, ext);
		memcpy(out + n, body + start, end - start);
		n += end - start;
		memcpy(out + n, "\r\n", 2);
		n += 2;
		start = end;
	}
	memcpy(out + n, "0\r\n\r\n", 5);
	return n + 5;
}

/*
 * Whether d[0, len) is one chunk-size line and nothing else. A tail that starts with one
 * right before the key has no body byte before the key's quote, so it cannot tell the key
 * from an escaped \"usage\" in text, and rightly finds nothing.
 */
static int only_framing(const char *d, size_t len)
{
	size_t i = len >= 2 && memcmp(d, "\r\n", 2) == 0 ? 2 : 0; /* may be cut off */

	if (len < i + 3 || memcmp(d + len - 2, "\r\n", 2) != 0)
		return 0;
	for (; i < len - 2; i++)
		if (!strchr("0123456789abcdefABCDEF", d[i]))
			return 0;
	return 1;
}

static void assert_usage(const struct rls_usage *got, const struct rls_usage *want)
{
	assert_int_equal(got->prompt_tokens, want->prompt_tokens);
	assert_int_equal(got->completion_tokens, want->completion_tokens);
	assert_int_equal(got->total_tokens, want->total_tokens);
}

static void assert_finds(const char *d, size_t len, int chunked, const struct rls_usage *want)
{
	struct rls_usage got;

	assert_int_equal(rls_usage_find(d, len, chunked, &got), 1);
	assert_usage(&got, want);
}

static void assert_finds_none(const char *d, size_t len, int chunked)
{
	struct rls_usage got = { 7, 7, 7 };

	assert_int_equal(rls_usage_find(d, len, chunked, &got), 0);
	assert_int_equal(got.prompt_tokens + got.completion_tokens + got.total_tokens, 0);
}

/* Whatever the bytes, a result is either nothing or counts a JSON number can hold. */
static int find_sane(const char *d, size_t len, int chunked, struct rls_usage *got)
{
	int found = rls_usage_find(d, len, chunked, got);

	assert_true(found == 0 || found == 1);
	if (found) {
		assert_true(got->prompt_tokens <= RLS_USAGE_MAX);
		assert_true(got->completion_tokens <= RLS_USAGE_MAX);
		assert_true(got->total_tokens <= 2 * RLS_USAGE_MAX);
	}
	return found;
}

/* The stream API fed d in the given pieces must agree with rls_usage_find on the whole. */
static void assert_stream_agrees(const char *d, size_t len, int chunked, const size_t *cuts,
				 size_t ncuts)
{
	struct rls_usage_stream s;
	struct rls_usage whole, fed;
	size_t start = 0, i, end;
	int found;

	rls_usage_stream_init(&s, chunked);
	for (i = 0; i <= ncuts; i++) {
		end = i < ncuts ? cuts[i] : len;
		rls_usage_stream_feed(&s, d + start, end - start);
		start = end;
	}
	found = rls_usage_find(d, len, chunked, &whole);
	assert_int_equal(rls_usage_stream_result(&s, &fed), found);
	assert_usage(&fed, &whole);
}

/* ---- plain JSON bodies --------------------------------------------------------------- */

static void test_plain_body(void **state)
{
	(void)state;
	assert_finds(plain_body, strlen(plain_body), 0, &expected);
}

static void test_plain_split_everywhere(void **state)
{
	size_t len = strlen(plain_body), i;

	(void)state;
	for (i = 0; i <= len; i++) {
		struct rls_usage_stream s;
		struct rls_usage got;

		rls_usage_stream_init(&s, 0);
		rls_usage_stream_feed(&s, plain_body, i);
		rls_usage_stream_feed(&s, plain_body + i, len - i);
		assert_int_equal(rls_usage_stream_result(&s, &got), 1);
		assert_usage(&got, &expected);
	}
}

/* A whole small response, status line and headers included. */
static void test_plain_whole_response(void **state)
{
	char buf[BUF_MAX];
	int n = snprintf(buf, sizeof(buf),
			 "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
			 "etag: \"usage\"\r\ncontent-length: %zu\r\n\r\n%s",
			 strlen(plain_body), plain_body);

	(void)state;
	assert_finds(buf, (size_t)n, 0, &expected);
}

/* Every tail of body that holds the whole key and object finds it; every shorter one none. */
static void assert_tails(const char *body, const char *key_text)
{
	size_t len = strlen(body), key = last_index(body, len, key_text), start;

	assert_finds(body + len - 300, 300, 0, &expected);
	for (start = 0; start < key; start++)
		assert_finds(body + start, len - start, 0, &expected);
	for (start = key + 1; start <= len; start++)
		assert_finds_none(body + start, len - start, 0);
}

static void test_plain_tails(void **state)
{
	(void)state;
	assert_tails(plain_body, "\"usage\"");
}

/* CRLF pretty-printing, nested objects and braces inside strings within usage. */
static void test_nested_and_pretty(void **state)
{
	static const char body[] =
		"{\r\n  \"usage\" :\r\n  {\r\n    \"prompt_tokens\": 12,\r\n"
		"    \"prompt_tokens_details\": {\"cached_tokens\": 8, \"x\": {\"y\": [1, {}]}},\r\n"
		"    \"note\": \"}{\\\"}\\\\\",\r\n"
		"    \"completion_tokens\": 30,\r\n    \"total_tokens\": 42\r\n  }\r\n}\r\n";
	static const struct rls_usage want = { 12, 30, 42 };

	(void)state;
	assert_finds(body, strlen(body), 0, &want);
}

/* ---- event streams ------------------------------------------------------------------- */

static void test_sse_final_usage(void **state)
{
	(void)state;
	assert_finds(sse_body, strlen(sse_body), 0, &expected);
}

/* Without the final chunk there are only "usage":null and a usage inside a delta's text. */
static void test_sse_null_usage_only(void **state)
{
	size_t final = last_index(sse_body, strlen(sse_body), "data: {");

	(void)state;
	assert_finds_none(sse_body, final, 0);
}

static void test_sse_tails(void **state)
{
	(void)state;
	assert_tails(sse_body, "\"usage\":{");
}

/* ---- chunked framing ----------------------------------------------------------------- */

/* Chunk boundaries inside the "usage" key, inside a count, inside "[DONE]", and one-byte
 * chunks, with and without chunk extensions. */
static void test_chunked_awkward_boundaries(void **state)
{
	size_t len = strlen(sse_body);
	size_t key = last_index(sse_body, len, "\"usage\":{");
	size_t prompt = last_index(sse_body, len, "\"prompt_tokens\":1234") + 17;
	size_t total = last_index(sse_body, len, "1801");
	size_t done = last_index(sse_body, len, "[DONE]");
	size_t cuts[] = { 100, key + 3, key + 4, key + 5, key + 8, prompt, prompt + 2, total + 1,
			  total + 2, total + 3, done + 3 };
	static const char *const exts[] = { "", ";foo=bar", " ; a=\"b\"" };
	char buf[BUF_MAX];
	size_t i, n, tail;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(exts); i++) {
		n = chunk_encode(sse_body, len, cuts, ARRAY_SIZE(cuts), exts[i], buf);
		assert_finds(buf, n, 1, &expected);
		/* The last 300 bytes hold the object when the size lines are short. */
		tail = i == 0 ? 300 : 400;
		assert_finds(buf + n - tail, tail, 1, &expected);
	}
}

/* Two chunks, split at every byte of the body, plain JSON and event stream. */
static void test_chunked_split_everywhere(void **state)
{
	static const char *const bodies[] = { plain_body, sse_body };
	char buf[BUF_MAX];
	size_t b, i, n, len;

	(void)state;
	for (b = 0; b < ARRAY_SIZE(bodies); b++) {
		len = strlen(bodies[b]);
		for (i = 0; i <= len; i++) {
			n = chunk_encode(bodies[b], len, &i, 1, "", buf);
			assert_finds(buf, n, 1, &expected);
		}
	}
}

/* Many small random chunks, fed to the stream API in random pieces. */
static void test_chunked_random_chunks(void **state)
{
	size_t len = strlen(sse_body), cuts[64], feeds[16], i, k, n;
	char buf[BUF_MAX];

	(void)state;
	rng_state = 0x5eed0001;
	for (i = 0; i < 500; i++) {
		for (k = 0; k < ARRAY_SIZE(cuts); k++)
			cuts[k] = rng_below(len);
		qsort(cuts, ARRAY_SIZE(cuts), sizeof(cuts[0]), cmp_size);
		n = chunk_encode(sse_body, len, cuts, ARRAY_SIZE(cuts), "", buf);
		assert_finds(buf, n, 1, &expected);
		for (k = 0; k < ARRAY_SIZE(feeds); k++)
			feeds[k] = rng_below(n);
		qsort(feeds, ARRAY_SIZE(feeds), sizeof(feeds[0]), cmp_size);
		assert_stream_agrees(buf, n, 1, feeds, ARRAY_SIZE(feeds));
	}
}

/* Tails of a chunked stream starting at every byte, mid-framing included. */
static void test_chunked_tails(void **state)
{
	size_t len = strlen(sse_body), cuts[] = { 40, 700, 1200, 0, 0 }, n, key, start;
	char buf[BUF_MAX];

	(void)state;
	key = last_index(sse_body, len, "\"usage\":{");
	cuts[3] = key + 3;
	cuts[4] = key + 30;
	qsort(cuts, ARRAY_SIZE(cuts), sizeof(cuts[0]), cmp_size);
	n = chunk_encode(sse_body, len, cuts, ARRAY_SIZE(cuts), "", buf);
	key = last_index(buf, n, "\"us");
	for (start = 0; start < key; start++)
		assert_finds(buf + start, n - start, 1, &expected);
	for (start = key + 1; start <= n; start++)
		assert_finds_none(buf + start, n - start, 1);
}

/* A whole chunked response: status line, headers, chunks, last-chunk, trailers. */
static void test_chunked_whole_response(void **state)
{
	size_t len = strlen(plain_body), n;
	size_t cuts[] = { 333, last_index(plain_body, len, "\"usage\"") + 20 };
	char buf[BUF_MAX];

	(void)state;
	n = (size_t)sprintf(buf, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
			    "transfer-encoding: chunked\r\n\r\n");
	n += chunk_encode(plain_body, len, cuts, ARRAY_SIZE(cuts), "", buf + n);
	assert_finds(buf, n, 1, &expected);
	/* Trailers after the last-chunk are not body. */
	memcpy(buf + n - 2, "x-trailer: 1\r\n\r\n", 16);
	assert_finds(buf, n + 14, 1, &expected);
	/* The same bytes read without chunked decoding: framing splits the object. */
	assert_finds_none(buf, n, 0);
}

/*
 * Lines that look like chunk-size lines ("\r\n12\r\n", even a last-chunk "\r\n0\r\n") inside
 * a CRLF pretty-printed body are body: their sizes do not lead on to the framing that
 * follows, so they stay, even in a tail where they come before any real framing.
 *
 * One case cannot be told apart: a tail that starts after the body's first size line, where
 * the 0x12 bytes after "\r\n12\r\n" end exactly where a chunk ends. Both readings of those
 * bytes are then consistent; the first size line, when the bytes hold it, settles it.
 */
static void test_chunked_lookalike_lines_kept(void **state)
{
	static const char body[] =
		"{\r\n\"usage\":{\r\n\"prompt_tokens\":\r\n12\r\n,\r\n\"completion_tokens\":\r\n0\r\n,"
		"\r\n\"total_tokens\":\r\n9\r\n}\r\n}\r\n";
	static const struct rls_usage want = { 12, 0, 9 };
	size_t len = strlen(body), cut, n, start, key;
	size_t ambiguous = (size_t)(strstr(body, "\r\n12\r\n") - body) + 6 + 0x12;
	char buf[BUF_MAX];

	(void)state;
	for (cut = 0; cut <= len; cut++) {
		n = chunk_encode(body, len, &cut, 1, "", buf);
		assert_finds(buf, n, 1, &want);
		if (cut == ambiguous)
			continue;
		key = (size_t)((char *)memchr(buf, '"', n) - buf); /* the body's first quote */
		for (start = 1; start < key; start++)
			if (!only_framing(buf + start, key - start))
				assert_finds(buf + start, n - start, 1, &want);
	}
}

/* A body cut short (no last-chunk) still loses its framing. */
static void test_chunked_cut_short(void **state)
{
	size_t len = strlen(plain_body), key = last_index(plain_body, len, "\"usage\"");
	size_t cuts[] = { key + 2, key + 40 }, n;
	char buf[BUF_MAX];

	(void)state;
	n = chunk_encode(plain_body, len, cuts, ARRAY_SIZE(cuts), "", buf);
	assert_finds(buf, n - 5, 1, &expected);   /* no "0\r\n\r\n" */
	assert_finds(buf, n - 4, 1, &expected);   /* "0" of the last-chunk cut */
	assert_finds(buf, n - 8, 1, &expected);   /* the body's last newline cut */
	assert_finds(buf, n - 9, 1, &expected);   /* the document's closing brace cut */
	assert_finds_none(buf, n - 48, 1);        /* the usage object's closing brace cut */
}

/* ---- which object, which numbers ----------------------------------------------------- */

struct usage_case {
	const char *name;
	const char *body;
	int found;
	struct rls_usage want;
};

#define U(p, c, t) "{\"usage\":{\"prompt_tokens\":" p ",\"completion_tokens\":" c \
	",\"total_tokens\":" t "}}"

static const struct usage_case cases[] = {
	{ "exact", U("1", "2", "3"), 1, { 1, 2, 3 } },
	{ "total inconsistent is kept", U("1", "2", "10"), 1, { 1, 2, 10 } },
	{ "total absent is summed", "{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}}",
	  1, { 5, 6, 11 } },
	{ "total null is summed", U("5", "6", "null"), 1, { 5, 6, 11 } },
	{ "embeddings: no completion", "{\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}",
	  1, { 8, 0, 8 } },
	{ "2^53 is the largest", U("9007199254740992", "0", "9007199254740992"), 1,
	  { 9007199254740992ULL, 0, 9007199254740992ULL } },
	{ "minus zero is zero", U("-0", "0", "0"), 1, { 0, 0, 0 } },
	{ "the last of several", "[" U("1", "1", "2") "," U("5", "5", "10") "]", 1, { 5, 5, 10 } },
	{ "the last complete one", "[" U("1", "1", "2") ",{\"usage\":{\"prompt_tokens\":5,", 1,
	  { 1, 1, 2 } },
	{ "key as a value is not a key", "{\"usage\":{\"prompt_tokens\":3,\"total_tokens\":3},"
	  "\"role\":\"usage\"}", 1, { 3, 0, 3 } },
	{ "escaped key in text after usage",
	  "{\"usage\":{\"prompt_tokens\":3,\"total_tokens\":3},\"content\":\"\\\"usage\\\":"
	  "{\\\"prompt_tokens\\\":999,\\\"total_tokens\\\":999}\"}", 1, { 3, 0, 3 } },
	{ "escaped backslash then escaped quote",
	  "{\"content\":\"\\\\\\\"usage\\\":{\\\"prompt_tokens\\\":9}\"}", 0, { 0 } },
	{ "escaped backslash closes the string",
	  "{\"a\":\"x\\\\\",\"usage\":{\"prompt_tokens\":4,\"total_tokens\":4}}", 1, { 4, 0, 4 } },
	{ "key ending in an escaped quote",
	  "{\"he said \\\"usage\":{\"prompt_tokens\":1,\"total_tokens\":1}}", 0, { 0 } },
	{ "usage null", "{\"usage\":null}", 0, { 0 } },
	{ "usage empty", "{\"usage\":{}}", 0, { 0 } },
	{ "all counts null", U("null", "null", "null"), 0, { 0 } },
	{ "usage an array", "{\"usage\":[1,2,3]}", 0, { 0 } },
	{ "truncated object", "{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":", 0, { 0 } },
	{ "truncated number", "{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6", 0, { 0 } },
	{ "negative", U("-5", "2", "3"), 0, { 0 } },
	{ "negative total", U("5", "2", "-7"), 0, { 0 } },
	{ "float", U("5.0", "2", "7"), 0, { 0 } },
	{ "exponent", U("5", "2e1", "25"), 0, { 0 } },
	{ "string count", U("\"5\"", "2", "7"), 0, { 0 } },
	{ "boolean count", U("true", "2", "3"), 0, { 0 } },
	{ "object count", U("{}", "2", "3"), 0, { 0 } },
	{ "2^53 + 1", U("9007199254740993", "0", "1"), 0, { 0 } },
	{ "beyond int64", U("99999999999999999999999", "0", "1"), 0, { 0 } },
	{ "huge float", U("1e300", "0", "1"), 0, { 0 } },
	{ "duplicate key", "{\"usage\":{\"prompt_tokens\":1,\"prompt_tokens\":2}}", 0, { 0 } },
	{ "bad JSON inside", "{\"usage\":{\"prompt_tokens\" 1}}", 0, { 0 } },
	{ "unbalanced brackets", "{\"usage\":{\"prompt_tokens\":[1}}", 0, { 0 } },
	{ "key at the first byte", "\"usage\":{\"prompt_tokens\":1}", 0, { 0 } },
};

static void test_usage_case(void **state)
{
	const struct usage_case *c = *state;
	size_t len = strlen(c->body);
	struct rls_usage got;

	if (!c->found) {
		assert_finds_none(c->body, len, 0);
		assert_finds_none(c->body, len, 1);
		return;
	}
	assert_int_equal(rls_usage_find(c->body, len, 0, &got), 1);
	assert_usage(&got, &c->want);
	assert_int_equal(rls_usage_find(c->body, len, 1, &got), 1);
	assert_usage(&got, &c->want);
}

/* Bytes no server sends, NUL included. */
static void test_garbage(void **state)
{
	static const char garbage[] = "\x01\xff\"usage\"\x00:{{{}}}\"\"\\\\\\\"usage\":{\x80";
	static const char nul_inside[] = "{\"usage\":{\"prompt_tokens\":1\x00,\"total_tokens\":1}}";

	(void)state;
	assert_finds_none(garbage, sizeof(garbage) - 1, 0);
	assert_finds_none(garbage, sizeof(garbage) - 1, 1);
	assert_finds_none(nul_inside, sizeof(nul_inside) - 1, 0);
}

static void test_empty_and_null(void **state)
{
	struct rls_usage_stream s;
	struct rls_usage got;

	(void)state;
	assert_finds_none("", 0, 0);
	assert_finds_none("", 0, 1);
	assert_finds_none(NULL, 0, 0);
	assert_finds_none(NULL, 100, 1);
	assert_int_equal(rls_usage_find(plain_body, strlen(plain_body), 0, NULL), 0);
	rls_usage_stream_init(&s, 1);
	assert_int_equal(rls_usage_stream_result(&s, &got), 0);
	rls_usage_stream_feed(&s, NULL, 5);
	rls_usage_stream_feed(&s, "", 0);
	assert_int_equal(rls_usage_stream_result(&s, &got), 0);
}

/* ---- the window ---------------------------------------------------------------------- */

static void test_window(void **state)
{
	static char junk[10000];
	size_t len = strlen(sse_body), i;
	struct rls_usage_stream s;
	struct rls_usage got;

	(void)state;
	for (i = 0; i < sizeof(junk); i++)
		junk[i] = "data: {\"usage\":null}\n\n"[i % 22];
	/* Long streams before the usage: only the last window is kept. */
	rls_usage_stream_init(&s, 0);
	for (i = 0; i < sizeof(junk); i += 7)
		rls_usage_stream_feed(&s, junk + i, sizeof(junk) - i < 7 ? sizeof(junk) - i : 7);
	rls_usage_stream_feed(&s, sse_body, len);
	assert_int_equal(rls_usage_stream_result(&s, &got), 1);
	assert_usage(&got, &expected);
	/* One piece larger than the window. */
	rls_usage_stream_init(&s, 0);
	rls_usage_stream_feed(&s, junk, sizeof(junk));
	rls_usage_stream_feed(&s, sse_body, len);
	rls_usage_stream_feed(&s, junk, RLS_USAGE_WINDOW - len);
	assert_int_equal(rls_usage_stream_result(&s, &got), 1);
	/* Usage pushed out of the window by what follows it. */
	rls_usage_stream_feed(&s, junk, last_index(sse_body, len, "\"usage\":{") + 1);
	assert_int_equal(rls_usage_stream_result(&s, &got), 0);
	/* rls_usage_find looks at the same window. */
	{
		static char big[RLS_USAGE_WINDOW + 2000];

		memcpy(big, sse_body, len);
		memset(big + len, ' ', sizeof(big) - len);
		assert_finds_none(big, sizeof(big), 0);
		assert_finds(big, len + RLS_USAGE_WINDOW - 1000, 0, &expected);
	}
}

/* ---- fuzz ---------------------------------------------------------------------------- */

/* Bytes drawn from JSON, SSE and chunked framing pieces, and random bytes. */
static size_t fuzz_bytes(char *buf, size_t max)
{
	static const char *const pieces[] = {
		"\"usage\":", "{", "}", "\"", "\\", "\r\n", "\n\n", "data: ", "[DONE]", ":", ",",
		"\"prompt_tokens\":", "\"completion_tokens\":", "\"total_tokens\":", "12", "-3",
		"1.5", "99999999999999999999", "null", "0\r\n\r\n", "\r\n1a\r\n", "\r\nff;x\r\n",
		"\r\n5\r\n", " ",
	};
	size_t n = 0, len = rng_below(max), k;
	const char *p;

	while (n < len) {
		if (rng() & 1) {
			buf[n++] = (char)rng();
			continue;
		}
		p = pieces[rng_below(ARRAY_SIZE(pieces))];
		for (k = 0; p[k] && n < len; k++)
			buf[n++] = p[k];
	}
	return n;
}

static void test_fuzz_random(void **state)
{
	char *buf = malloc(6000);
	struct rls_usage got;
	size_t i, n, cut;
	char *exact;

	(void)state;
	assert_non_null(buf);
	rng_state = 0x5eed0002;
	for (i = 0; i < 4000; i++) {
		/* An exact-size heap buffer, so valgrind sees any read past the end. */
		n = fuzz_bytes(buf, 6000);
		exact = malloc(n ? n : 1);

		assert_non_null(exact);
		memcpy(exact, buf, n);
		find_sane(exact, n, 0, &got);
		find_sane(exact, n, 1, &got);
		cut = rng_below(n + 1);
		assert_stream_agrees(exact, n, (int)(i & 1), &cut, 1);
		free(exact);
	}
	free(buf);
}

/* A valid chunked stream with a few bytes changed: never a crash, never a wild count. */
static void test_fuzz_mutations(void **state)
{
	size_t len = strlen(sse_body), cuts[] = { 300, 900, len - 200, len - 170 }, n, i, k;
	char orig[BUF_MAX], buf[BUF_MAX];
	struct rls_usage got;

	(void)state;
	n = chunk_encode(sse_body, len, cuts, ARRAY_SIZE(cuts), "", orig);
	rng_state = 0x5eed0003;
	for (i = 0; i < 3000; i++) {
		memcpy(buf, orig, n);
		for (k = 1 + rng_below(4); k > 0; k--)
			buf[n - 1 - rng_below(400)] = (char)rng();
		find_sane(buf, n, 1, &got);
		find_sane(buf, n, 0, &got);
		find_sane(buf + n - 300, 300, 1, &got);
	}
}

int main(void)
{
	const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_plain_body),
		cmocka_unit_test(test_plain_split_everywhere),
		cmocka_unit_test(test_plain_whole_response),
		cmocka_unit_test(test_plain_tails),
		cmocka_unit_test(test_nested_and_pretty),
		cmocka_unit_test(test_sse_final_usage),
		cmocka_unit_test(test_sse_null_usage_only),
		cmocka_unit_test(test_sse_tails),
		cmocka_unit_test(test_chunked_awkward_boundaries),
		cmocka_unit_test(test_chunked_split_everywhere),
		cmocka_unit_test(test_chunked_random_chunks),
		cmocka_unit_test(test_chunked_tails),
		cmocka_unit_test(test_chunked_whole_response),
		cmocka_unit_test(test_chunked_lookalike_lines_kept),
		cmocka_unit_test(test_chunked_cut_short),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_empty_and_null),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_fuzz_random),
		cmocka_unit_test(test_fuzz_mutations),
	};

	return RUN_TESTS_AND_CASES("usage", fixed, CASE_TABLE(test_usage_case, cases));
}
