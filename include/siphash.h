/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * SipHash with a 128-bit output (Aumasson and Bernstein, "SipHash: a fast short-input PRF"),
 * written once for both sides like key_hash.h. SipHash-2-4 is the key hash of issue 13: a keyed
 * PRF that costs a fraction of SHA-256 on an API key (two rounds per 8 bytes instead of 64 per
 * 64). Keyed with a secret only root can read, the maps never hold a value from which a working
 * key can be found or tried offline. The bench's HTTP floor uses SipHash-1-3.
 *
 * The message is read from a buffer of RLS_KEY_HASH_BUF bytes that is zero past len (the same
 * contract as rls_key_hash_pad()): the last, partial word is then a plain load, and every loop
 * has a constant bound the BPF verifier can follow.
 */
#ifndef RLS_SIPHASH_H
#define RLS_SIPHASH_H

#include "rlshape.h"
#include "key_hash.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rls_siphash reads message words as little-endian loads"
#endif

struct rls_siphash_state {
	__u64 v0, v1, v2, v3;
};

RLS_INLINE __u64 rls_rotl64(__u64 x, unsigned int n)
{
	return (x << n) | (x >> (64 - n));
}

RLS_INLINE void rls_sipround(struct rls_siphash_state *s)
{
	s->v0 += s->v1;
	s->v1 = rls_rotl64(s->v1, 13) ^ s->v0;
	s->v0 = rls_rotl64(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = rls_rotl64(s->v3, 16) ^ s->v2;
	s->v0 += s->v3;
	s->v3 = rls_rotl64(s->v3, 21) ^ s->v0;
	s->v2 += s->v1;
	s->v1 = rls_rotl64(s->v1, 17) ^ s->v2;
	s->v2 = rls_rotl64(s->v2, 32);
}

/* A message word, with c compression rounds (SipHash-c-d). */
RLS_INLINE void rls_siphash_word(struct rls_siphash_state *s, __u64 m, __u32 c)
{
	__u32 r;

	s->v3 ^= m;
	for (r = 0; r < c; r++)
		rls_sipround(s);
	s->v0 ^= m;
}

/* d finalization rounds, then the state folded into 64 bits. */
RLS_INLINE __u64 rls_siphash_fold(struct rls_siphash_state *s, __u32 d)
{
	__u32 r;

	for (r = 0; r < d; r++)
		rls_sipround(s);
	return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

RLS_INLINE __u64 rls_load_le64(const __u8 *p)
{
	__u64 w;

	__builtin_memcpy(&w, p, sizeof(w));
	return w;
}

RLS_INLINE void rls_store_le64(__u8 *p, __u64 w)
{
	__builtin_memcpy(p, &w, sizeof(w));
}

#define RLS_SIPHASH_OUT_64  0
#define RLS_SIPHASH_OUT_128 0xee /* the 128-bit output variant's mark in v1 */

/* The state under the 16-byte secret, for an output of RLS_SIPHASH_OUT_64 or _128. */
RLS_INLINE struct rls_siphash_state rls_siphash_init(const __u8 secret[16], __u64 out)
{
	__u64 k0 = rls_load_le64(secret), k1 = rls_load_le64(secret + 8);
	struct rls_siphash_state s = {
		.v0 = k0 ^ 0x736f6d6570736575ull,
		.v1 = k1 ^ 0x646f72616e646f6dull ^ out,
		.v2 = k0 ^ 0x6c7967656e657261ull,
		.v3 = k1 ^ 0x7465646279746573ull,
	};

	return s;
}

/*
 * SipHash-c-d-128 of the len-byte message at the start of buf (RLS_KEY_HASH_BUF bytes, zero
 * past len) under the 16-byte secret, into out. c and d are constants at every call, so the
 * rounds unroll. Returns 0, or -1 when len is more than RLS_API_KEY_MAX.
 */
RLS_INLINE int rls_siphash128_cd(const __u8 secret[16], const __u8 *buf, __u32 len,
				 __u8 out[RLS_SIPHASH_LEN], __u32 c, __u32 d)
{
	struct rls_siphash_state s = rls_siphash_init(secret, RLS_SIPHASH_OUT_128);
	__u32 words, i;

	if (len > RLS_API_KEY_MAX)
		return -1;
	words = len / 8;
	for (i = 0; i < RLS_KEY_HASH_BUF / 8 - 1; i++) {
		if (i >= words)
			break;
		rls_siphash_word(&s, rls_load_le64(buf + i * 8), c);
	}
	/* The last word: the bytes left (zero past len) and the length's low byte on top. */
	rls_siphash_word(&s, rls_load_le64(buf + (words & (RLS_KEY_HASH_BUF / 8 - 1)) * 8) |
				     (__u64)(len & 0xff) << 56, c);
	s.v2 ^= 0xee;
	rls_store_le64(out, rls_siphash_fold(&s, d));
	s.v1 ^= 0xdd;
	rls_store_le64(out + 8, rls_siphash_fold(&s, d));
	return 0;
}

/*
 * SipHash-c-d-64 of a 16-byte message given as its two little-endian words: a keyed PRF of two
 * numbers, with no buffer to fill. c and d are constants at every call.
 */
RLS_INLINE __u64 rls_siphash64_words_cd(const __u8 secret[16], __u64 m0, __u64 m1, __u32 c,
					__u32 d)
{
	struct rls_siphash_state s = rls_siphash_init(secret, RLS_SIPHASH_OUT_64);

	rls_siphash_word(&s, m0, c);
	rls_siphash_word(&s, m1, c);
	rls_siphash_word(&s, 16ull << 56, c); /* the last block: no bytes left, the length's */
	s.v2 ^= 0xff;
	return rls_siphash_fold(&s, d);
}

/* SipHash-2-4-128, the standard strength: the key hash. */
RLS_INLINE int rls_siphash128(const __u8 secret[16], const __u8 *buf, __u32 len,
			      __u8 out[RLS_SIPHASH_LEN])
{
	return rls_siphash128_cd(secret, buf, len, out, 2, 4);
}

#endif /* RLS_SIPHASH_H */
