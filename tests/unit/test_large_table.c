// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tier table parser on tables of many accounts, keys and CIDRs (user/tiers.c): a repeated
 * key or CIDR is found however far apart its two places are, and the message names the repeat
 * that comes first in the file and the place it repeats, as for a table of two accounts; an
 * error deep in a large table names the right account.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "key_hash.h"
#include "tiers.h"

#define HEAD "{\"listen\": {\"ports\": [8000]}, \"tiers\": {\"t\": {\"*\": {\"rpm\": 60}}}, " \
	     "\"accounts\": {"

/* A table text being written: HEAD, accounts added one by one, then the end. */
struct text {
	char *s;
	size_t len, cap;
	size_t nr_accounts;
};

static void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if ((size_t)n < t->cap - t->len)
			break;
		t->cap = (t->cap + (size_t)n + 1) * 2;
		t->s = realloc(t->s, t->cap);
		assert_non_null(t->s);
	}
	t->len += (size_t)n;
}

static void text_start(struct text *t)
{
	memset(t, 0, sizeof(*t));
	text_add(t, "%s", HEAD);
}

/* An account named acct-NUMBER with the JSON members body ("\"keys\": [...]" and so on). */
static void text_account(struct text *t, size_t number, const char *body)
{
	text_add(t, "%s\"acct-%06zu\": {\"tier\": \"t\", %s}", t->nr_accounts ? ", " : "", number,
		 body);
	t->nr_accounts++;
}

static void text_key_account(struct text *t, size_t number, size_t key)
{
	char body[64];

	snprintf(body, sizeof(body), "\"keys\": [\"sk-%06zu\"]", key);
	text_account(t, number, body);
}

static int text_parse(struct text *t, struct rls_table *table, char *err, size_t err_len)
{
	int ret;

	text_add(t, "}}");
	ret = rls_table_parse("big.json", t->s, t->len, table, err, err_len);
	free(t->s);
	t->s = NULL;
	return ret;
}

static void expect_error(struct text *t, const char *want)
{
	struct rls_table table;
	char err[1024];

	assert_int_equal(text_parse(t, &table, err, sizeof(err)), -1);
	if (!strstr(err, want))
		fail_msg("got \"%s\", want it to contain \"%s\"", err, want);
	assert_int_equal(table.nr_accounts, 0);
}

static void sha256_of(const char *key, __u8 out[RLS_SHA256_LEN])
{
	__u8 buf[RLS_KEY_HASH_BUF] = { 0 };

	memcpy(buf, key, strlen(key));
	rls_key_hash(buf, (__u32)strlen(key), out);
}

#define MANY 20000

/* A table of MANY accounts, acct-N with the one key sk-N, not yet ended. */
static void text_many_accounts(struct text *t)
{
	size_t i;

	text_start(t);
	for (i = 0; i < MANY; i++)
		text_key_account(t, i, i);
}

static void test_many_distinct_keys_parse(void **state)
{
	struct rls_table table;
	struct text t;
	char err[1024], key[32];
	__u8 want[RLS_SHA256_LEN];
	size_t i;

	(void)state;
	text_many_accounts(&t);
	assert_int_equal(text_parse(&t, &table, err, sizeof(err)), 0);
	assert_int_equal(table.nr_accounts, MANY);
	for (i = 0; i < MANY; i += 997) {
		snprintf(key, sizeof(key), "sk-%06zu", i);
		sha256_of(key, want);
		assert_int_equal(table.accounts[i].nr_keys, 1);
		assert_memory_equal(table.accounts[i].keys[0], want, RLS_SHA256_LEN);
	}
	rls_table_free(&table);
}

/* The last account repeats the key of an early one. */
static void test_repeat_far_apart(void **state)
{
	struct text t;

	(void)state;
	text_many_accounts(&t);
	text_key_account(&t, MANY, 7);
	expect_error(&t, "big.json: accounts.acct-020000.keys[0]: key already belongs to account "
			 "\"acct-000007\" (accounts.acct-000007.keys[0])");
}

/*
 * Two keys repeated: the one whose second place comes first in the file is named, not the one
 * whose first place does (nor the one whose digest sorts first).
 */
static void test_first_repeat_in_file_order(void **state)
{
	struct text t;

	(void)state;
	text_many_accounts(&t);
	text_key_account(&t, MANY, 15000);
	text_key_account(&t, MANY + 1, 3);
	expect_error(&t, ": accounts.acct-020000.keys[0]: key already belongs to account "
			 "\"acct-015000\" (accounts.acct-015000.keys[0])");
}

/* A key in three accounts: the second place is the repeat, of the first. */
static void test_key_in_three_accounts(void **state)
{
	struct text t;

	(void)state;
	text_start(&t);
	text_key_account(&t, 0, 1);
	text_key_account(&t, 1, 2);
	text_key_account(&t, 2, 1);
	text_key_account(&t, 3, 1);
	expect_error(&t, ": accounts.acct-000002.keys[0]: key already belongs to account "
			 "\"acct-000000\" (accounts.acct-000000.keys[0])");
}

/* A plain key and its digest, far apart in one account's many keys. */
static void test_digest_repeats_key_in_one_account(void **state)
{
	__u8 digest[RLS_SHA256_LEN];
	struct text t;
	size_t i;

	(void)state;
	text_start(&t);
	text_add(&t, "\"acct-000000\": {\"tier\": \"t\", \"keys\": [");
	for (i = 0; i < 5000; i++)
		text_add(&t, "\"sk-%06zu\", ", i);
	sha256_of("sk-000042", digest);
	text_add(&t, "\"sha256:");
	for (i = 0; i < RLS_SHA256_LEN; i++)
		text_add(&t, "%02x", digest[i]);
	text_add(&t, "\"]}");
	t.nr_accounts = 1;
	expect_error(&t, ": accounts.acct-000000.keys[5000]: key is already listed at "
			 "accounts.acct-000000.keys[42] (a key and its sha256: digest are the same key)");
}

/* Many CIDRs; the repeat is the IPv4-mapped IPv6 form of an early one. */
static void test_cidr_repeat_among_many(void **state)
{
	struct text t;
	char body[96];
	size_t i;

	(void)state;
	text_start(&t);
	for (i = 0; i < 4000; i++) {
		snprintf(body, sizeof(body), "\"cidrs\": [\"198.18.%zu.%zu\", \"198.19.%zu.0/24\"]",
			 i / 256, i % 256, i % 256);
		/* Only the first 256 /24s are new: keep the rest distinct by /32s alone. */
		if (i >= 256)
			snprintf(body, sizeof(body), "\"cidrs\": [\"198.18.%zu.%zu\"]", i / 256,
				 i % 256);
		text_account(&t, i, body);
	}
	text_account(&t, 4000, "\"cidrs\": [\"::ffff:198.19.9.0/120\"]");
	expect_error(&t, ": accounts.acct-004000.cidrs[0]: 198.19.9.0/24 already belongs to account "
			 "\"acct-000009\" (accounts.acct-000009.cidrs[1])");
}

/* A field error deep in a large table names its own account, not a neighbour. */
static void test_error_deep_in_table_names_its_account(void **state)
{
	struct text t;
	size_t i;

	(void)state;
	text_start(&t);
	for (i = 0; i < MANY; i++) {
		if (i == 12345)
			text_account(&t, i, "\"keys\": [\"sk-ok\", \"\"]");
		else
			text_key_account(&t, i, i);
	}
	expect_error(&t, "big.json: accounts.acct-012345.keys[1]: empty API key");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_distinct_keys_parse),
		cmocka_unit_test(test_repeat_far_apart),
		cmocka_unit_test(test_first_repeat_in_file_order),
		cmocka_unit_test(test_key_in_three_accounts),
		cmocka_unit_test(test_digest_repeats_key_in_one_account),
		cmocka_unit_test(test_cidr_repeat_among_many),
		cmocka_unit_test(test_error_deep_in_table_names_its_account),
	};

	return cmocka_run_group_tests_name("large_table", tests, NULL, NULL);
}
