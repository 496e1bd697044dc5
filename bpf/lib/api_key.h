/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A request's API key as the maps know it. Plain keys of the table are in rls_api_keys by
 * their SipHash-2-4-128 under the device's secret (rls_config.key_secret): one cheap keyed
 * hash per key. Keys the table gives as "sha256:" digests are in rls_api_key_digests, and only
 * for those does the data path need SHA-256: it runs it only when the live table has digests
 * and the key is not a plain one, and remembers the result in rls_key_digest_cache.
 */
#ifndef RLS_BPF_API_KEY_H
#define RLS_BPF_API_KEY_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "key_hash.h"
#include "siphash.h"
#include "scratch.h"
#include "maps.h"
#include "config.h"

/*
 * SipHash inline, in its one caller's global function (rls_stream_hash_key()): a call and its
 * return cost up to 10 ns, as much as a sixth of the hash. SHA-256, rare and long, is a
 * global function: verified once, whatever the length of the key.
 */
static __always_inline int rls_key_siphash_in(struct rls_scratch *s, const struct rls_config *cfg,
					      __u32 len)
{
	if (!s || !cfg)
		return -1;
	return rls_siphash128(cfg->key_secret, s->key, len, s->api_key.siphash);
}

__noinline int rls_key_sha256_in(struct rls_scratch *s, __u32 len)
{
	if (!s)
		return -1;
	return rls_key_hash_in(&s->sha256, s->key, len, s->api_key_digest.sha256);
}

/*
 * Hash the len-byte key at the start of s->key (RLS_KEY_HASH_BUF bytes, zero past len; the
 * padding of SHA-256 clobbers it) into st: its SipHash, and its SHA-256 when it may be a
 * digest key (RLS_REQ_KEY_SHA256 says which). Returns 0, or -1 with st as it was.
 *
 * The SHA-256 is found here, where the key's bytes are, rather than at the request's end
 * where it is looked up, and kept in the stream: a cache entry evicted in between must not
 * leave the request without its key.
 */
static __always_inline int rls_api_key_hash(struct rls_scratch *s, struct rls_stream *st,
					    __u32 len)
{
	struct rls_key_sha256 *cached;
	struct rls_live live;

	if (!rls_live_config(&live) || rls_key_siphash_in(s, live.cfg, len))
		return -1;
	s->api_key.generation = live.generation;
	if (!live.cfg->key_digests || bpf_map_lookup_elem(&rls_api_keys, &s->api_key)) {
		__builtin_memcpy(st->key_siphash, s->api_key.siphash, RLS_SIPHASH_LEN);
		st->request_flags &= ~RLS_REQ_KEY_SHA256;
		return 0;
	}
	cached = bpf_map_lookup_elem(&rls_key_digest_cache, s->api_key.siphash);
	if (cached) {
		__builtin_memcpy(s->api_key_digest.sha256, cached->sha256, RLS_SHA256_LEN);
		rls_count_packet(RLS_PKT_KEY_SHA256_CACHED);
	} else {
		if (rls_key_sha256_in(s, len))
			return -1;
		bpf_map_update_elem(&rls_key_digest_cache, s->api_key.siphash,
				    s->api_key_digest.sha256, BPF_ANY);
		rls_count_packet(RLS_PKT_KEY_SHA256);
	}
	__builtin_memcpy(st->key_siphash, s->api_key.siphash, RLS_SIPHASH_LEN);
	__builtin_memcpy(st->key_sha256, s->api_key_digest.sha256, RLS_SHA256_LEN);
	st->request_flags |= RLS_REQ_KEY_SHA256;
	return 0;
}

/* The account of the key the request carried in the live generation, or NULL. */
static __always_inline const struct rls_principal *rls_api_key_principal(struct rls_scratch *s,
									const struct rls_stream *st,
									__u32 generation)
{
	const struct rls_principal *who;

	if (!(st->request_flags & RLS_REQ_HAS_KEY))
		return NULL;
	s->api_key.generation = generation;
	__builtin_memcpy(s->api_key.siphash, st->key_siphash, RLS_SIPHASH_LEN);
	who = bpf_map_lookup_elem(&rls_api_keys, &s->api_key);
	if (who || !(st->request_flags & RLS_REQ_KEY_SHA256))
		return who;
	s->api_key_digest.generation = generation;
	__builtin_memcpy(s->api_key_digest.sha256, st->key_sha256, RLS_SHA256_LEN);
	return bpf_map_lookup_elem(&rls_api_key_digests, &s->api_key_digest);
}

#endif /* RLS_BPF_API_KEY_H */
