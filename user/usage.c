// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Token usage from the tail of an LLM API response (see usage.h).
 *
 * Three steps: remove chunked framing, locate the last `"usage":{` key, hand the object's
 * bytes to jansson. Locating is done by hand only because the bytes are a tail: they may
 * begin inside a string, so no parser can start at byte 0. The object itself always starts
 * at a known place (right after the key's colon), so from there jansson does the parsing.
 */
#include <string.h>

#include <jansson.h>

#include "hex_digit.h"
#include "usage.h"

#define CHUNK_SIZE_HEX_MAX 15 /* more hex digits than any real chunk; keeps size_t exact */

static const char usage_key[] = "\"usage\"";
#define USAGE_KEY_LEN (sizeof(usage_key) - 1)

/* ---- chunked framing ------------------------------------------------------------------ */

/*
 * Length of the framing "\r\n<hex>[BWS][;ext]\r\n" starting at d[p], with the chunk size in
 * *size; 0 when d[p] does not start one. The leading CRLF is the one ending the previous
 * chunk's data (or the header block), so removing the whole match joins the two data runs.
 * At byte 0 it may be missing: the bytes may start with the body's first size line, or
 * just after the CRLF before one.
 */
static size_t chunk_header_at(const char *d, size_t len, size_t p, size_t *size)
{
	size_t i = p, digits = 0;

	if (len - p >= 2 && d[p] == '\r' && d[p + 1] == '\n')
		i += 2;
	else if (p != 0)
		return 0;
	*size = 0;
	for (; i < len && rls_hex_digit(d[i]) >= 0; i++, digits++) {
		if (digits == CHUNK_SIZE_HEX_MAX)
			return 0;
		*size = *size * 16 + (size_t)rls_hex_digit(d[i]);
	}
	if (!digits)
		return 0;
	while (i < len && (d[i] == ' ' || d[i] == '\t'))
		i++;
	if (i < len && d[i] == ';')
		while (i < len && d[i] != '\r' && d[i] != '\n')
			i++;
	if (len - i < 2 || d[i] != '\r' || d[i + 1] != '\n')
		return 0;
	return i + 2 - p;
}

/* What following chunk sizes from a framing candidate leads to. */
enum chain {
	CHAIN_BROKEN,     /* a size points at something that is not framing: not real framing */
	CHAIN_RUNS_OFF,   /* the bytes end inside a chunk or its header: a body cut short */
	CHAIN_TERMINATED, /* reaches the "0" last-chunk: a complete chunked body */
};

/* Whether d[p, len) is the start of a framing line that the end of the bytes cut off. */
static int framing_cut_short(const char *d, size_t len, size_t p)
{
	size_t i = p;

	if (d[i++] != '\r')
		return 0;
	if (i == len)
		return 1;
	if (d[i++] != '\n')
		return 0;
	if (i == len)
		return 1;
	if (rls_hex_digit(d[i]) < 0)
		return 0;
	while (i < len && d[i] != '\r' && d[i] != '\n') /* size, BWS, extensions */
		i++;
	if (i < len && d[i] == '\r')
		i++;
	return i == len;
}

/* Where the chain continues after a chunk that ends at next. */
static unsigned char chain_at(const char *d, size_t len, const unsigned char *chain, size_t next)
{
	if (next >= len || framing_cut_short(d, len, next))
		return CHAIN_RUNS_OFF;
	return chain[next];
}

/*
 * chain[p] for every p, from the end backwards (CHAIN_BROKEN where no framing starts): a
 * chunk's size says exactly where the next framing is, so "\r\n12\r\n" in a CRLF
 * pretty-printed body is told apart from real framing by whether its size lands on more
 * framing. A last-chunk is only the real one when no framing follows it.
 */
static void classify_chains(const char *d, size_t len, unsigned char *chain)
{
	size_t p = len, hlen, size;
	int framing_later = 0;

	while (p-- > 0) {
		hlen = chunk_header_at(d, len, p, &size);
		if (!hlen)
			chain[p] = CHAIN_BROKEN;
		else if (size == 0)
			chain[p] = framing_later ? CHAIN_BROKEN : CHAIN_TERMINATED;
		else if (size > len - p)
			chain[p] = CHAIN_RUNS_OFF;
		else
			chain[p] = chain_at(d, len, chain, p + hlen + size);
		framing_later |= hlen != 0;
	}
}

/*
 * The first real framing: the earliest candidate whose chain ends best. Every real framing
 * in the bytes chains to the same end, so the earliest one found is the first real one
 * (bar a false candidate whose size happens to land exactly on real framing: most likely at
 * byte 0, where no CRLF need come before its digits, in a tail that starts at the last
 * hex-looking bytes of a chunk's data. Taking the candidate with the most size lines instead
 * reads such tails right, but a whole body wrong where lookalike lines inside a chunk chain
 * on to real framing, which is worse: fuzz/usage_tail.c found it. fuzz/packet_stream.c counts
 * the tails that read two ways apart.)
 */
static int first_framing(const unsigned char *chain, size_t len, size_t *first)
{
	unsigned char best = CHAIN_BROKEN;
	size_t p;

	for (p = 0; p < len; p++)
		if (chain[p] > best) {
			best = chain[p];
			*first = p;
		}
	return best != CHAIN_BROKEN;
}

/*
 * The body bytes of d[0, len) with the framing removed, into out (at least len bytes).
 * Bytes before the first framing are the end of a chunk whose header was cut off. After the
 * last-chunk come only trailers, which are not body.
 */
static size_t dechunk(const char *d, size_t len, char *out)
{
	unsigned char chain[RLS_USAGE_WINDOW];
	size_t p, n, hlen, size, take;

	classify_chains(d, len, chain);
	if (!first_framing(chain, len, &p)) {
		memcpy(out, d, len);
		return len;
	}
	memcpy(out, d, p);
	n = p;
	while (p < len) {
		hlen = chunk_header_at(d, len, p, &size);
		if (!hlen || size == 0)
			break;
		p += hlen;
		take = size < len - p ? size : len - p;
		memcpy(out + n, d + p, take);
		n += take;
		p += take;
	}
	return n;
}

/* ---- locating the usage object ------------------------------------------------------- */

/*
 * Whether the quote at d[q] delimits a string rather than being \" inside one: an even run
 * of backslashes before it. A run that reaches the first byte cannot be judged (the byte
 * before it was cut off), so it counts as escaped.
 */
static int quote_is_delimiter(const char *d, size_t q)
{
	size_t run = 0;

	while (run < q && d[q - 1 - run] == '\\')
		run++;
	return run < q && run % 2 == 0;
}

static size_t skip_json_space(const char *d, size_t len, size_t i)
{
	while (i < len && (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n'))
		i++;
	return i;
}

/*
 * The offset of the '{' opening the value of a `"usage":` key at d[k], or 0 when d[k] is
 * not such a key. Valid JSON cannot hold an unescaped quote inside a string, so an unescaped
 * "usage" followed by a colon is always a key: no string-state tracking from byte 0 (which
 * a tail cannot have) is needed, and text like \"usage\":{...} in a completion never matches.
 */
static size_t usage_object_at(const char *d, size_t len, size_t k)
{
	size_t i;

	if (len - k < USAGE_KEY_LEN || memcmp(d + k, usage_key, USAGE_KEY_LEN) != 0 ||
	    !quote_is_delimiter(d, k))
		return 0;
	i = skip_json_space(d, len, k + USAGE_KEY_LEN);
	if (i >= len || d[i] != ':')
		return 0;
	i = skip_json_space(d, len, i + 1);
	return i < len && d[i] == '{' ? i : 0;
}

/*
 * One past the '}' matching the '{' at d[open], or 0 when the object does not end within
 * the bytes. Braces inside strings do not count; the scan starts outside any string because
 * d[open] follows a key's colon.
 */
static size_t object_end(const char *d, size_t len, size_t open)
{
	size_t i, depth = 0;
	int in_string = 0;

	for (i = open; i < len; i++) {
		if (in_string) {
			if (d[i] == '\\')
				i++;
			else if (d[i] == '"')
				in_string = 0;
		} else if (d[i] == '"') {
			in_string = 1;
		} else if (d[i] == '{') {
			depth++;
		} else if (d[i] == '}' && --depth == 0) {
			return i + 1;
		}
	}
	return 0;
}

/* ---- reading the counts -------------------------------------------------------------- */

/*
 * One count: 1 when it is an integer in [0, RLS_USAGE_MAX] (stored in *value, *present set),
 * 1 when absent or null (left alone), 0 when it is anything else, which spoils the object.
 */
static int read_count(const json_t *usage, const char *key, __u64 *value, int *present)
{
	const json_t *v = json_object_get(usage, key);
	json_int_t n;

	if (!v || json_is_null(v))
		return 1;
	if (!json_is_integer(v))
		return 0;
	n = json_integer_value(v);
	if (n < 0 || (unsigned long long)n > RLS_USAGE_MAX)
		return 0;
	*value = (__u64)n;
	*present = 1;
	return 1;
}

static int usage_from_object(const json_t *usage, struct rls_usage *out)
{
	struct rls_usage u = { 0 };
	int prompt = 0, completion = 0, total = 0;

	if (!json_is_object(usage) ||
	    !read_count(usage, "prompt_tokens", &u.prompt_tokens, &prompt) ||
	    !read_count(usage, "completion_tokens", &u.completion_tokens, &completion) ||
	    !read_count(usage, "total_tokens", &u.total_tokens, &total) ||
	    !(prompt || completion || total))
		return 0;
	/* The upstream's total is what it bills; only make one up when it gave none. */
	if (!total)
		u.total_tokens = u.prompt_tokens + u.completion_tokens;
	*out = u;
	return 1;
}

/*
 * Duplicate keys make a count ambiguous, so such an object is refused, not guessed at. So
 * is a raw NUL: JSON has none, and jansson's reader passes over it instead of failing.
 */
static int usage_from_bytes(const char *obj, size_t n, struct rls_usage *out)
{
	json_error_t error;
	json_t *usage;
	int found;

	if (memchr(obj, '\0', n))
		return 0;
	usage = json_loadb(obj, n, JSON_REJECT_DUPLICATES, &error);
	found = usage_from_object(usage, out);

	json_decref(usage);
	return found;
}

/* The last usable usage object in body bytes d[0, len), trying later keys first. */
static int find_in_body(const char *d, size_t len, struct rls_usage *out)
{
	size_t k = len, open, end;

	while (k-- > 0) {
		if (d[k] != '"')
			continue;
		open = usage_object_at(d, len, k);
		if (!open)
			continue;
		end = object_end(d, len, open);
		if (end && usage_from_bytes(d + open, end - open, out))
			return 1;
	}
	return 0;
}

int rls_usage_find(const char *data, size_t len, int chunked, struct rls_usage *out)
{
	char body[RLS_USAGE_WINDOW];

	if (!out)
		return 0;
	memset(out, 0, sizeof(*out));
	if (!data)
		return 0;
	/* Usage ends the response: only the tail matters, and it bounds the work. */
	if (len > RLS_USAGE_WINDOW) {
		data += len - RLS_USAGE_WINDOW;
		len = RLS_USAGE_WINDOW;
	}
	if (chunked) {
		len = dechunk(data, len, body);
		data = body;
	}
	return find_in_body(data, len, out);
}
