/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Which header a request's line is, found while its name goes by a byte at a time: every name
 * the table asks about (its key headers, its model header) and the two that frame a body
 * (content-length, transfer-encoding) start as candidates, and each byte of the name drops
 * those it rules out. What the line's value then means is http_request.h's.
 */
#ifndef RLS_BPF_HEADER_NAMES_H
#define RLS_BPF_HEADER_NAMES_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"

/* Every header name the table asks about, as RLS_NAME_* bits. */
static __always_inline __u8 rls_all_names(const struct rls_config *cfg)
{
	__u8 bits = RLS_NAME_CONTENT_LENGTH | RLS_NAME_TRANSFER_ENCODING;
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

#define RLS_NAME_CONTENT_LENGTH_STR    "content-length"
#define RLS_NAME_TRANSFER_ENCODING_STR "transfer-encoding"

/* The fixed names, one byte at a time (no static array: see rls_put_literal()). */
static __always_inline bool rls_fixed_char_is(__u32 bit, __u32 pos, __u8 c)
{
	const char *name;
	__u32 len;

	if (bit == RLS_NAME_CONTENT_LENGTH) {
		name = RLS_NAME_CONTENT_LENGTH_STR;
		len = sizeof(RLS_NAME_CONTENT_LENGTH_STR) - 1;
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
	}
	return 0;
}

#endif /* RLS_BPF_HEADER_NAMES_H */
