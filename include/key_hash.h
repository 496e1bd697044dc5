/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The API-key hash, SHA-256, written once for both sides: the rlshape command hashes the
 * plain-text keys of a tier table, the XDP program hashes the key it finds in a request, and
 * the two must agree bit for bit. SHA-256 rather than a cheaper hash because operators already
 * keep "sha256:" digests of their keys, and the maps must never hold a key that works.
 *
 * The message lives in a caller-provided buffer of RLS_KEY_HASH_BUF bytes (in BPF, per-CPU map
 * memory), which rls_key_hash_pad() pads in place; every loop has a constant bound so the
 * verifier can follow it.
 */
#ifndef RLS_KEY_HASH_H
#define RLS_KEY_HASH_H

#include "rlshape.h"

#define RLS_KEY_HASH_BLOCKS 4
#define RLS_KEY_HASH_BUF    (RLS_KEY_HASH_BLOCKS * 64)

#ifndef RLS_INLINE
#define RLS_INLINE static inline __attribute__((always_inline))
#endif

static const __u32 rls_sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

RLS_INLINE __u32 rls_ror32(__u32 x, unsigned int n)
{
	return (x >> n) | (x << (32 - n));
}

/*
 * Pad the len-byte message at the start of buf (FIPS 180-4, 5.1.1) and return how many 64-byte
 * blocks to hash, or 0 when the message is too long for the buffer. buf must be zero past len:
 * zeroing here would take a data-dependent branch per byte, which the BPF verifier cannot
 * follow, while the caller can clear the buffer with straight-line stores before filling it.
 */
RLS_INLINE __u32 rls_key_hash_pad(__u8 *buf, __u32 len)
{
	__u32 blocks, end, i;
	__u64 bits = (__u64)len * 8;

	if (len > RLS_API_KEY_MAX)
		return 0;
	blocks = (len + 8) / 64 + 1;
	end = blocks * 64;
	buf[len & (RLS_KEY_HASH_BUF - 1)] = 0x80;
	for (i = 0; i < 8; i++)
		buf[(end - 1 - i) & (RLS_KEY_HASH_BUF - 1)] = (__u8)(bits >> (8 * i));
	return blocks;
}

/* The working state, in memory the caller chooses: the BPF stack is too small to hold it. */
struct rls_sha256_work {
	__u32 state[8];
	__u32 w[16];
};

RLS_INLINE void rls_sha256_block_in(__u32 state[8], __u32 w[16], const __u8 *block)
{
	__u32 a, b, c, d, e, f, g, h, t1, t2, s0, s1;
	__u32 i;

	for (i = 0; i < 16; i++)
		w[i] = (__u32)block[i * 4] << 24 | (__u32)block[i * 4 + 1] << 16 |
		       (__u32)block[i * 4 + 2] << 8 | (__u32)block[i * 4 + 3];
	a = state[0]; b = state[1]; c = state[2]; d = state[3];
	e = state[4]; f = state[5]; g = state[6]; h = state[7];
	for (i = 0; i < 64; i++) {
		/* The schedule is kept as a 16-word ring: a full W[64] would not fit the BPF stack. */
		if (i >= 16) {
			__u32 w15 = w[(i - 15) & 15], w2 = w[(i - 2) & 15];

			s0 = rls_ror32(w15, 7) ^ rls_ror32(w15, 18) ^ (w15 >> 3);
			s1 = rls_ror32(w2, 17) ^ rls_ror32(w2, 19) ^ (w2 >> 10);
			w[i & 15] += s0 + w[(i - 7) & 15] + s1;
		}
		s1 = rls_ror32(e, 6) ^ rls_ror32(e, 11) ^ rls_ror32(e, 25);
		t1 = h + s1 + ((e & f) ^ (~e & g)) + rls_sha256_k[i & 63] + w[i & 15];
		s0 = rls_ror32(a, 2) ^ rls_ror32(a, 13) ^ rls_ror32(a, 22);
		t2 = s0 + ((a & b) ^ (a & c) ^ (b & c));
		h = g; g = f; f = e; e = d + t1;
		d = c; c = b; b = a; a = t1 + t2;
	}
	state[0] += a; state[1] += b; state[2] += c; state[3] += d;
	state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

RLS_INLINE void rls_sha256_block(__u32 state[8], const __u8 *block)
{
	__u32 w[16];

	rls_sha256_block_in(state, w, block);
}

/* Immediates, not a second constant array: clang 14 gives every constant array in .rodata
 * offset 0 in the BTF it emits for BPF, and the kernel rejects that BTF. */
RLS_INLINE void rls_sha256_init(__u32 state[8])
{
	state[0] = 0x6a09e667; state[1] = 0xbb67ae85; state[2] = 0x3c6ef372; state[3] = 0xa54ff53a;
	state[4] = 0x510e527f; state[5] = 0x9b05688c; state[6] = 0x1f83d9ab; state[7] = 0x5be0cd19;
}

/* The digest of a finished state: its words, big-endian (FIPS 180-4 6.2.2, step 4). */
RLS_INLINE void rls_sha256_digest(const __u32 state[8], __u8 out[RLS_SHA256_LEN])
{
	__u32 i;

	for (i = 0; i < 8; i++) {
		out[i * 4] = (__u8)(state[i] >> 24);
		out[i * 4 + 1] = (__u8)(state[i] >> 16);
		out[i * 4 + 2] = (__u8)(state[i] >> 8);
		out[i * 4 + 3] = (__u8)state[i];
	}
}

/*
 * SHA-256 of the len-byte key at the start of buf (RLS_KEY_HASH_BUF bytes, zero past the key,
 * clobbered by the padding) into out. Returns 0, or -1 when the key is longer than
 * RLS_API_KEY_MAX.
 */
RLS_INLINE int rls_key_hash_in(struct rls_sha256_work *work, __u8 *buf, __u32 len,
				__u8 out[RLS_SHA256_LEN])
{
	__u32 blocks = rls_key_hash_pad(buf, len);
	__u32 i;

	if (!blocks)
		return -1;
	rls_sha256_init(work->state);
	for (i = 0; i < RLS_KEY_HASH_BLOCKS; i++) {
		if (i >= blocks)
			break;
		rls_sha256_block_in(work->state, work->w, buf + i * 64);
	}
	rls_sha256_digest(work->state, out);
	return 0;
}

#ifndef __BPF__
RLS_INLINE int rls_key_hash(__u8 *buf, __u32 len, __u8 out[RLS_SHA256_LEN])
{
	struct rls_sha256_work work;

	return rls_key_hash_in(&work, buf, len, out);
}
#endif

#endif /* RLS_KEY_HASH_H */
