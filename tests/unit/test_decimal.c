// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * include/decimal.h and rls_hex_word() (include/hex_digit.h): the digits the 429 prints
 * (bpf/lib/reply.h), against printf, at every length, on both sides of where the reciprocal
 * multiplication gives way to division, and where the eight-digit word gives way to the loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "decimal.h"
#include "hex_digit.h"

/* v's digits as reply.h forms them: last to first, each from rls_div10(). */
static void digits(__u64 v, char *out)
{
	__u32 n = rls_decimal_len(v), i;
	__u64 q;

	for (i = 0; i < n; i++) {
		q = rls_div10(v);
		out[n - 1 - i] = (char)('0' + (v - q * 10));
		v = q;
	}
	out[n] = '\0';
}

static void check_number(__u64 v)
{
	char want[32], got[32];

	snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
	digits(v, got);
	if (strcmp(want, got))
		fail_msg("%llu printed as \"%s\"", (unsigned long long)v, got);
	if (rls_decimal_len(v) != strlen(want))
		fail_msg("%llu: rls_decimal_len %u, not %zu", (unsigned long long)v,
			 rls_decimal_len(v), strlen(want));
}

static void test_every_length_and_its_edges(void **state)
{
	__u64 power = 1;
	int i;

	(void)state;
	for (i = 0; i < 20; i++) {
		check_number(power);
		check_number(power - 1);
		check_number(power + 1);
		check_number(power * 9 + (power - 1)); /* 99...9 of this length + 1 digits */
		if (i < 19)
			power *= 10;
	}
	check_number(0);
	check_number(UINT64_MAX);
	check_number(UINT64_MAX - 1);
}

/* Where rls_div10 switches from multiplying to dividing, and every value below 2^21. */
static void test_reciprocal_range(void **state)
{
	__u64 v, x = 0x9e3779b97f4a7c15ull;
	int i;

	(void)state;
	for (v = 0; v < (1u << 21); v++)
		if (rls_div10(v) != v / 10)
			fail_msg("rls_div10(%llu) = %llu", (unsigned long long)v,
				 (unsigned long long)rls_div10(v));
	for (v = 0xffffffffull - 100000; v <= 0x100000000ull + 100000; v++)
		if (rls_div10(v) != v / 10)
			fail_msg("rls_div10(%llu) = %llu", (unsigned long long)v,
				 (unsigned long long)rls_div10(v));
	/* 2^32 - 1 is where the multiplication's error is largest. */
	assert_int_equal(rls_div10(0xffffffffull), 429496729);
	for (i = 0; i < 1000000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		v = x >> (i % 64);
		if (rls_div10(v) != v / 10)
			fail_msg("rls_div10(%llu) = %llu", (unsigned long long)v,
				 (unsigned long long)rls_div10(v));
		if (i % 64 == 0)
			check_number(v);
	}
}

static void check_word(__u32 v)
{
	char want[16], got[9];
	__u32 n = 0;
	__u64 w = rls_decimal_word(v, &n);
	int k;

	snprintf(want, sizeof(want), "%u", v);
	for (k = 0; k < 8; k++)
		got[k] = (char)(w >> (8 * k)); /* the word as it lies in memory, little-endian */
	got[8] = '\0';
	if (n != strlen(want) || strncmp(got, want, n) || (n < 8 && (w >> (8 * n))))
		fail_msg("%u as a word: \"%.8s\", %u digits (the bytes past them must be zero)", v,
			 got, n);
}

/*
 * rls_decimal_word() below 10^8: every value below 2^20, each side of every power of ten and
 * of every multiple of 10^4 (where the halves split), and a million more at random. (All 10^8
 * were compared once, outside the suite: 4 s.)
 */
static void test_decimal_word(void **state)
{
	__u64 x = 0x9e3779b97f4a7c15ull;
	__u32 v, power;
	int i;

	(void)state;
	for (v = 0; v < (1u << 20); v++)
		check_word(v);
	for (power = 10; power <= 100000000; power *= 10) {
		check_word(power - 1);
		if (power < 100000000)
			check_word(power);
	}
	for (v = 10000; v < RLS_DECIMAL_WORD_LIMIT; v += 10000) {
		check_word(v - 1);
		check_word(v);
	}
	for (i = 0; i < 1000000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		check_word((__u32)(x % RLS_DECIMAL_WORD_LIMIT) >> (i % 24));
	}
}

static void test_hex_word(void **state)
{
	static const __u32 values[] = { 0, 1, 9, 10, 15, 16, 0xabcdef01, 0x12345678, 0x9fa0afff,
					0xffffffff, 0x80000000 };
	char want[16], got[9];
	__u64 w;
	size_t i;
	int k;

	(void)state;
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		snprintf(want, sizeof(want), "%08x", values[i]);
		w = rls_hex_word(values[i]);
		for (k = 0; k < 8; k++)
			got[k] = (char)(w >> (8 * k)); /* the word as it lies in memory, little-endian */
		got[8] = '\0';
		if (strcmp(want, got))
			fail_msg("%#x as hex: \"%s\", not \"%s\"", values[i], got, want);
	}
	for (k = 0; k < 32; k++) {
		snprintf(want, sizeof(want), "%08x", 1u << k);
		w = rls_hex_word(1u << k);
		memcpy(got, &w, 8);
		got[8] = '\0';
		if (strcmp(want, got))
			fail_msg("%#x as hex: \"%s\", not \"%s\"", 1u << k, got, want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_length_and_its_edges),
		cmocka_unit_test(test_reciprocal_range),
		cmocka_unit_test(test_decimal_word),
		cmocka_unit_test(test_hex_word),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
