/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Which header a request's line is, found while its name goes by a byte at a time: every name
 * the table asks about (its key headers, its model header), the two that frame a body
 * (content-length, transfer-encoding) and connection (whether the client closes after the
 * answer, which a 429 must follow) start as candidates, and each byte of the name drops those
 * it rules out. What the line's value then means is http_request.h's.
 */
#ifndef RLS_BPF_HEADER_NAMES_H
#define RLS_BPF_HEADER_NAMES_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "scratch.h"
#include "window.h"

/* Every header name the table asks about, as RLS_NAME_* bits. */
static __always_inline __u8 rls_all_names(const struct rls_config *cfg)
{
	__u8 bits = RLS_NAME_CONTENT_LENGTH | RLS_NAME_TRANSFER_ENCODING | RLS_NAME_CONNECTION;
	__u32 n = cfg->nr_key_headers < RLS_MAX_KEY_HEADERS ? cfg->nr_key_headers
							     : RLS_MAX_KEY_HEADERS;

	bits |= (__u8)((1u << n) - 1);
	if (cfg->model_header.len)
		bits |= RLS_NAME_MODEL;
	return bits;
}

static __always_inline bool rls_name_char_is(const struct rls_header_name *h, __u32 pos, __u8 c)
{
	return pos < h->len && pos < RLS_HEADER_NAME_MAX && (__u8)h->name[pos] == c;
}

/* The fixed names, one byte at a time (no static array: see rls_put_literal()). */
static __always_inline bool rls_fixed_char_is(__u32 bit, __u32 pos, __u8 c)
{
	const char *name;
	__u32 len;

	if (bit == RLS_NAME_CONTENT_LENGTH) {
		name = RLS_NAME_CONTENT_LENGTH_STR;
		len = sizeof(RLS_NAME_CONTENT_LENGTH_STR) - 1;
	} else if (bit == RLS_NAME_CONNECTION) {
		name = RLS_NAME_CONNECTION_STR;
		len = sizeof(RLS_NAME_CONNECTION_STR) - 1;
	} else {
		name = RLS_NAME_TRANSFER_ENCODING_STR;
		len = sizeof(RLS_NAME_TRANSFER_ENCODING_STR) - 1;
	}
	return pos < len && (__u8)name[pos & 31] == c;
}

/* Drop the candidates that the name's next byte c (lower case) rules out. */
static __always_inline __u8 rls_narrow_names(const struct rls_config *cfg, __u8 cand, __u32 pos,
					     __u8 c)
{
	__u32 i;

	for (i = 0; i < RLS_MAX_KEY_HEADERS; i++)
		if ((cand & (1u << i)) && !rls_name_char_is(&cfg->key_headers[i], pos, c))
			cand &= ~(1u << i);
	if ((cand & RLS_NAME_MODEL) && !rls_name_char_is(&cfg->model_header, pos, c))
		cand &= ~RLS_NAME_MODEL;
	if ((cand & RLS_NAME_CONTENT_LENGTH) && !rls_fixed_char_is(RLS_NAME_CONTENT_LENGTH, pos, c))
		cand &= ~RLS_NAME_CONTENT_LENGTH;
	if ((cand & RLS_NAME_TRANSFER_ENCODING) &&
	    !rls_fixed_char_is(RLS_NAME_TRANSFER_ENCODING, pos, c))
		cand &= ~RLS_NAME_TRANSFER_ENCODING;
	if ((cand & RLS_NAME_CONNECTION) && !rls_fixed_char_is(RLS_NAME_CONNECTION, pos, c))
		cand &= ~RLS_NAME_CONNECTION;
	return cand;
}

/*
 * At the name's colon: which header this line is; a key header that cannot win is "other".
 * -1: the header that gave the request its key comes again. Servers and frameworks differ on
 * which of two values they read, so charging either lets a client be served under the other:
 * the stream is broken, as for two framings.
 */
static __always_inline int rls_name_done(struct rls_stream *st, const struct rls_config *cfg)
{
	__u32 n = st->name_len, i;
	__u8 cand = st->name_cand;

	st->header_kind = RLS_HDR_OTHER;
	for (i = 0; i < RLS_MAX_KEY_HEADERS; i++) {
		if ((cand & (1u << i)) && cfg->key_headers[i].len == n) {
			if (i == st->key_rank)
				return -1;
			if (i < st->key_rank) {
				st->header_kind = RLS_HDR_KEY;
				st->line_rank = i;
			}
			return 0;
		}
	}
	if ((cand & RLS_NAME_MODEL) && cfg->model_header.len == n) {
		/* A second model header: the upstream may read either one. */
		if (st->request_flags & RLS_REQ_HAS_HEADER_MODEL)
			st->request_flags |= RLS_REQ_MODEL_AMBIGUOUS;
		else
			st->header_kind = RLS_HDR_MODEL;
	} else if ((cand & RLS_NAME_CONTENT_LENGTH) && n == sizeof(RLS_NAME_CONTENT_LENGTH_STR) - 1) {
		st->header_kind = RLS_HDR_CONTENT_LENGTH;
	} else if ((cand & RLS_NAME_TRANSFER_ENCODING) &&
		   n == sizeof(RLS_NAME_TRANSFER_ENCODING_STR) - 1) {
		st->header_kind = RLS_HDR_TRANSFER_ENCODING;
	} else if ((cand & RLS_NAME_CONNECTION) && n == sizeof(RLS_NAME_CONNECTION_STR) - 1) {
		st->header_kind = RLS_HDR_CONNECTION;
	}
	return 0;
}

/*
 * A word at a time: where bytes i to i + 7 of the n-byte name at window position pos differ
 * from the word name (zero: they match). The input is folded to lower case with |0x20 only
 * where the name has a letter (word.h); elsewhere, as for '-', the bytes must be equal: what
 * rls_narrow_names() decides a byte at a time.
 */
static __always_inline __u64 rls_name_word_diff(const struct rls_scratch *s, __u32 pos, __u32 n,
						__u32 i, __u64 name)
{
	return ((rls_word_at(s, pos + i) | rls_word_letters(name)) ^ name) & rls_word_bytes(n - i);
}

/* Is the n-byte name at pos the table's name h (lower case, n == h->len)? */
static __always_inline bool rls_name_is(const struct rls_scratch *s, __u32 pos, __u32 n,
					const struct rls_header_name *h)
{
	__u32 i;

	for (i = 0; i < RLS_HEADER_NAME_MAX; i += 8) {
		if (i >= n)
			break;
		if (rls_name_word_diff(s, pos, n, i, *(const __u64 *)(const void *)&h->name[i]))
			return false;
	}
	return true;
}

/* Is the n-byte name at pos the literal lit (n bytes: a constant)? */
static __always_inline bool rls_fixed_name_is(const struct rls_scratch *s, __u32 pos,
					      const char *lit, __u32 n)
{
	__u64 diff = 0;
	__u32 i;

#pragma clang loop unroll(full)
	for (i = 0; i < n; i += 8)
		diff |= rls_name_word_diff(s, pos, n, i, rls_literal_word(lit, n, i));
	return !diff;
}

/*
 * Which names of rls_all_names() the whole n-byte name at pos is (RLS_NAME_* bits): the
 * candidates rls_narrow_names() would leave at its colon that rls_name_done() then looks at
 * (those n bytes long). None: the line is nobody's (RLS_HDR_OTHER).
 */
static __always_inline __u8 rls_names_matching(const struct rls_scratch *s,
					       const struct rls_config *cfg, __u32 pos, __u32 n)
{
	const struct rls_header_name *h;
	__u32 i;

	/* Most lines are ruled out by their name's length alone. */
	if (n >= 64 || !((cfg->name_lengths >> n) & 1))
		return 0;
	for (i = 0; i < RLS_MAX_KEY_HEADERS; i++) {
		h = &cfg->key_headers[i];
		if (i < cfg->nr_key_headers && h->len == n && rls_name_is(s, pos, n, h))
			return (__u8)(1u << i); /* two key headers never share a name */
	}
	h = &cfg->model_header;
	if (h->len && h->len == n && rls_name_is(s, pos, n, h))
		return RLS_NAME_MODEL;
	if (n == sizeof(RLS_NAME_CONTENT_LENGTH_STR) - 1 &&
	    rls_fixed_name_is(s, pos, RLS_NAME_CONTENT_LENGTH_STR,
			      sizeof(RLS_NAME_CONTENT_LENGTH_STR) - 1))
		return RLS_NAME_CONTENT_LENGTH;
	if (n == sizeof(RLS_NAME_TRANSFER_ENCODING_STR) - 1 &&
	    rls_fixed_name_is(s, pos, RLS_NAME_TRANSFER_ENCODING_STR,
			      sizeof(RLS_NAME_TRANSFER_ENCODING_STR) - 1))
		return RLS_NAME_TRANSFER_ENCODING;
	if (n == sizeof(RLS_NAME_CONNECTION_STR) - 1 &&
	    rls_fixed_name_is(s, pos, RLS_NAME_CONNECTION_STR, sizeof(RLS_NAME_CONNECTION_STR) - 1))
		return RLS_NAME_CONNECTION;
	return 0;
}

#endif /* RLS_BPF_HEADER_NAMES_H */
