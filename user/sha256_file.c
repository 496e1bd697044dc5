// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Any-length SHA-256 on top of the compression function the data path uses for API keys
 * (include/key_hash.h): one implementation of the rounds, so the two cannot drift apart.
 */
#include <string.h>

#include "key_hash.h"
#include "sha256_file.h"

/*
 * The final one or two blocks: the leftover bytes, 0x80, zeros, the bit length (FIPS 180-4
 * 5.1.1).
 */
static void hash_tail(__u32 state[8], const __u8 *rest, size_t rest_len, __u64 total_len)
{
	__u8 tail[128] = { 0 };
	__u64 bits = total_len * 8;
	size_t end = rest_len + 1 + 8 <= 64 ? 64 : 128;
	size_t i;

	if (rest_len)
		memcpy(tail, rest, rest_len);
	tail[rest_len] = 0x80;
	for (i = 0; i < 8; i++)
		tail[end - 1 - i] = (__u8)(bits >> (8 * i));
	for (i = 0; i < end; i += 64)
		rls_sha256_block(state, tail + i);
	/* The tail is file content, and a table may hold plain-text API keys. */
	explicit_bzero(tail, sizeof(tail));
}

int rls_sha256_file_bytes(const void *data, size_t len, __u8 out[32])
{
	const __u8 *bytes = data;
	__u32 state[8];
	size_t full = len - len % 64, i;

	if (!data && len)
		return -1;
	rls_sha256_init(state);
	for (i = 0; i < full; i += 64)
		rls_sha256_block(state, bytes + i);
	hash_tail(state, bytes + full, len - full, len);
	rls_sha256_digest(state, out);
	return 0;
}
