// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * include/siphash.h: SipHash-2-4-128 and -64 against the reference implementation's published
 * vectors (key 00..0f, message 00..len-1), and the buffer contract the BPF side relies on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "siphash.h"

/* Some of SipHash-2-4-128's reference vectors (the SipHash repository's vectors.h). */
static const struct {
	__u32 len;
	const char *hex;
} reference[] = {
	{ 0, "a3817f04ba25a8e66df67214c7550293" },
	{ 1, "da87c1d86b99af44347659119b22fc45" },
	{ 7, "a1f1ebbed8dbc153c0b84aa61ff08239" },
	{ 8, "3b62a9ba6258f5610f83e264f31497b4" },
	{ 15, "5493e99933b0a8117e08ec0f97cfc3d9" },
	{ 16, "6ee2a4ca67b054bbfd3315bf85230577" },
	{ 63, "5150d1772f50834a503e069a973fbd7c" },
};

static void reference_key(__u8 key[16])
{
	for (int i = 0; i < 16; i++)
		key[i] = (__u8)i;
}

static void to_hex(const __u8 *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_reference_vectors(void **state)
{
	__u8 key[16], buf[RLS_KEY_HASH_BUF], out[RLS_SIPHASH_LEN];
	char hex[2 * RLS_SIPHASH_LEN + 1];

	(void)state;
	reference_key(key);
	for (size_t v = 0; v < sizeof(reference) / sizeof(reference[0]); v++) {
		memset(buf, 0, sizeof(buf));
		for (__u32 i = 0; i < reference[v].len; i++)
			buf[i] = (__u8)i;
		assert_int_equal(rls_siphash128(key, buf, reference[v].len, out), 0);
		to_hex(out, sizeof(out), hex);
		assert_string_equal(hex, reference[v].hex);
	}
}

/* The longest key the kernel takes hashes within the buffer; one byte more is refused. */
static void test_length_bound(void **state)
{
	__u8 key[16], buf[RLS_KEY_HASH_BUF], a[RLS_SIPHASH_LEN], b[RLS_SIPHASH_LEN];

	(void)state;
	reference_key(key);
	memset(buf, 'k', RLS_API_KEY_MAX);
	memset(buf + RLS_API_KEY_MAX, 0, sizeof(buf) - RLS_API_KEY_MAX);
	assert_int_equal(rls_siphash128(key, buf, RLS_API_KEY_MAX, a), 0);
	assert_int_equal(rls_siphash128(key, buf, RLS_API_KEY_MAX - 1, b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(rls_siphash128(key, buf, RLS_API_KEY_MAX + 1, b), -1);
}

/* Another secret, another hash: the maps' values say nothing without it. */
static void test_secret_matters(void **state)
{
	__u8 key[16], buf[RLS_KEY_HASH_BUF] = "sk-live-0123456789", a[RLS_SIPHASH_LEN],
					       b[RLS_SIPHASH_LEN];

	(void)state;
	reference_key(key);
	assert_int_equal(rls_siphash128(key, buf, 18, a), 0);
	key[15] ^= 1;
	assert_int_equal(rls_siphash128(key, buf, 18, b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
}

/*
 * The 64-bit output of two message words (the 429's request id): SipHash-2-4-64's reference
 * vector for the 16-byte message 00..0f, db9bc2577fcc2a3f as bytes, so the framing (the
 * length block, the finalization mark) is the standard one; 1-3, as the request id uses it,
 * differs from it and from the 128-bit variant's first half.
 */
static void test_two_words_reference(void **state)
{
	const __u64 m0 = 0x0706050403020100ull, m1 = 0x0f0e0d0c0b0a0908ull;
	__u8 key[16], buf[RLS_KEY_HASH_BUF] = { 0 }, wide[RLS_SIPHASH_LEN];
	__u64 fast;

	(void)state;
	reference_key(key);
	assert_int_equal(rls_siphash64_words_cd(key, m0, m1, 2, 4), 0x3f2acc7f57c29bdbull);
	fast = rls_siphash64_words_cd(key, m0, m1, 1, 3);
	assert_int_not_equal(fast, 0x3f2acc7f57c29bdbull);
	for (int i = 0; i < 16; i++)
		buf[i] = (__u8)i;
	assert_int_equal(rls_siphash128_cd(key, buf, 16, wide, 1, 3), 0);
	assert_memory_not_equal(&fast, wide, sizeof(fast));
	assert_int_not_equal(rls_siphash64_words_cd(key, m0 + 1, m1, 1, 3), fast);
	assert_int_not_equal(rls_siphash64_words_cd(key, m0, m1 + 1, 1, 3), fast);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_vectors),
		cmocka_unit_test(test_length_bound),
		cmocka_unit_test(test_secret_matters),
		cmocka_unit_test(test_two_words_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
