// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The set of items by their bytes (user/item_set.c): repeats found at any distance, the first
 * in order named with the one it repeats, membership of items it holds and of items it does
 * not, items that differ in one byte only, and items laid out with a stride larger than their
 * size (only their own bytes count).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "item_set.h"

#define N      50000
#define SIZE   20
#define STRIDE 24

/* N items of SIZE bytes, STRIDE apart, all distinct; the bytes between them are noise. */
static unsigned char *distinct_items(void)
{
	unsigned char *items = malloc((size_t)N * STRIDE);
	size_t i;

	assert_non_null(items);
	for (i = 0; i < (size_t)N * STRIDE; i++)
		items[i] = (unsigned char)(i * 131 + 7);
	for (i = 0; i < N; i++)
		memcpy(items + i * STRIDE + SIZE - sizeof(i), &i, sizeof(i));
	return items;
}

static void test_no_repeat(void **state)
{
	unsigned char *items = distinct_items();
	long repeat, first;

	(void)state;
	assert_int_equal(rls_item_first_repeat(items, STRIDE, SIZE, N, &repeat, &first), 0);
	assert_int_equal(repeat, -1);
	assert_int_equal(rls_item_first_repeat(items, STRIDE, SIZE, 0, &repeat, &first), 0);
	assert_int_equal(repeat, -1);
	free(items);
}

/* Items 10 and N - 1 repeat item 3 and N - 2: the first repeat in order is the one named. */
static void test_first_repeat(void **state)
{
	unsigned char *items = distinct_items();
	long repeat, first;

	(void)state;
	memcpy(items + (N - 1) * STRIDE, items + (N - 2) * STRIDE, SIZE);
	memcpy(items + 10 * STRIDE, items + 3 * STRIDE, SIZE);
	items[10 * STRIDE + SIZE] ^= 1; /* past the item: does not count */
	assert_int_equal(rls_item_first_repeat(items, STRIDE, SIZE, N, &repeat, &first), 0);
	assert_int_equal(repeat, 10);
	assert_int_equal(first, 3);
	/* One byte apart is not a repeat. */
	items[10 * STRIDE] ^= 0x80;
	assert_int_equal(rls_item_first_repeat(items, STRIDE, SIZE, N, &repeat, &first), 0);
	assert_int_equal(repeat, N - 1);
	assert_int_equal(first, N - 2);
	free(items);
}

static void test_has(void **state)
{
	unsigned char *items = distinct_items(), other[SIZE];
	struct rls_item_set set;
	size_t i;

	(void)state;
	assert_int_equal(rls_item_set_init(&set, items, STRIDE, SIZE, N / 2), 0);
	for (i = 0; i < N / 2; i++)
		assert_int_equal(rls_item_set_add(&set, i), -1);
	assert_int_equal(rls_item_set_add(&set, 7), 7);
	for (i = 0; i < N; i++) {
		memcpy(other, items + i * STRIDE, SIZE);
		assert_int_equal(rls_item_set_has(&set, other), i < N / 2);
		other[0] ^= 1;
		assert_false(rls_item_set_has(&set, other));
	}
	rls_item_set_free(&set);
	free(items);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_repeat),
		cmocka_unit_test(test_first_repeat),
		cmocka_unit_test(test_has),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
