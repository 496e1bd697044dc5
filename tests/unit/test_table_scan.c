// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tier table's two ways in (user/tiers.c): the scan that reads the accounts straight from
 * the text, and jansson's parse of the whole, to which the scan leaves every text it is not
 * sure of and every table with an error. Both must make the same table, and rls_table_parse()
 * the same message: for tables in the common shape (which the scan must take, or a load of a
 * million accounts is slow again), for valid tables it leaves to jansson (escapes, UTF-8), for
 * wrong ones, and for every one-byte change of a table.
 *
 * Tables are written with ' for " to stay readable; text_of() swaps them back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tiers.h"
#include "../lib/table_difference.h"

#define SHA_ACME_2   "e13ec0cb85b1e9b4c68f9ab2eb9abeed3376e468aa136fcfbac7c29ca02d6a08"
#define DIGEST_UPPER "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"

#define HEAD "{'listen': {'ports': [8000]}, 'tiers': {'t': {'*': {'rpm': 60}}, " \
	     "'u': {'*': {'rpm': 6}, 'm': {'rpd': 1}}}, "

/* ---- helpers ---- */

static char *text_of(const char *quoted)
{
	char *text = strdup(quoted), *c;

	assert_non_null(text);
	for (c = text; *c; c++)
		if (*c == '\'')
			*c = '"';
	return text;
}

/*
 * rls_table_parse() and jansson's parse alone, on len bytes of text: the same result, the same
 * message, the same table. Returns what they returned.
 */
static int same_both_ways(const char *text, size_t len)
{
	struct rls_table any, jansson;
	char err_any[1024], err_jansson[1024];
	const char *differs;
	int ret;

	ret = rls_table_parse("t.json", text, len, &any, err_any, sizeof(err_any));
	assert_int_equal(rls_table_parse_by(RLS_PARSE_JANSSON, "t.json", text, len, &jansson,
					    err_jansson, sizeof(err_jansson)), ret);
	if (ret)
		assert_string_equal(err_any, err_jansson);
	else if ((differs = rls_table_difference(&any, &jansson)))
		fail_msg("the two ways differ in %s", differs);
	rls_table_free(&any);
	rls_table_free(&jansson);
	return ret;
}

/* Does the scan take the text (rather than leave it to jansson)? */
static bool scan_takes(const char *text, size_t len)
{
	struct rls_table t;
	char err[1024];
	int ret = rls_table_parse_by(RLS_PARSE_SCAN, "t.json", text, len, &t, err, sizeof(err));

	rls_table_free(&t);
	return ret == 0;
}

/* Each of the n tables: taken by the scan or not, valid or not, the same both ways. */
static void check_tables(const char *const *tables, size_t n, bool taken, bool valid)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char *text = text_of(tables[i]);

		if (scan_takes(text, strlen(text)) != taken)
			fail_msg("the scan %s table %zu: %s", taken ? "leaves to jansson" : "takes", i,
				 text);
		if ((same_both_ways(text, strlen(text)) == 0) != valid)
			fail_msg("table %zu is %s: %s", i, valid ? "refused" : "accepted", text);
		free(text);
	}
}

#define CHECK_TABLES(tables, taken, valid) \
	check_tables(tables, sizeof(tables) / sizeof(tables[0]), taken, valid)

/* ---- tables the scan takes ---- */

static const char *const common_tables[] = {
	/* keys, digests (either case of "sha256:"), networks of both families, several tiers */
	HEAD "'accounts': {'acme': {'tier': 'u', 'keys': ['sk-acme-1', 'sha256:" SHA_ACME_2 "']},"
	" 'globex': {'tier': 't', 'keys': ['sk-globex-1'], 'cidrs': ['198.18.1.64/26']},"
	" 'initech': {'cidrs': ['2001:2::/48', '198.18.2.0/24'], 'keys': [], 'tier': 'u'},"
	" 'hooli': {'keys': ['SHA256:" DIGEST_UPPER "'], 'tier': 't'}}, 'default_tier': 't'}",
	/* the accounts before the tiers they name, the root's other members around them */
	"{'accounts': {'a': {'tier': 'u', 'keys': ['k1', 'k2', 'k3']}, 'b': {'tier': 't', "
	"'cidrs': ['198.18.0.0/15']}}, 'listen': {'ports': [8000, 8001], 'dev': 'eth0'}, "
	"'tiers': {'t': {'*': {'rpm': 60}}, 'u': {'m': {'rpd': 1}}}, 'identify': "
	"{'key_headers': ['x-api-key'], 'model_header': null}, 'anonymous_ipv6_prefix': 48}",
	/* no whitespace at all, and every kind of it */
	"{'listen':{'ports':[8000]},'tiers':{'t':{'*':{'rpm':60}}},'accounts':{'a':{'tier':'t',"
	"'keys':['k']},'b':{'tier':'t','keys':['~!#$%&()*+,-./:;<=>?@[]^_`{|}']}}}",
	"{\t'listen' :\r\n{'ports' : [ 8000 ] } ,\n'tiers':{'t':{'*':{'rpm':60}}},\r\n'accounts'"
	"\t:\t{\n\t'a'\t:\n{ 'tier' :\r't' , 'keys' : [ 'k' , 'l' ] } , 'b':{'tier':'t',"
	"'keys':['m']}\n}\n}\n",
	/* no accounts, and none at all */
	HEAD "'accounts': {}}",
	HEAD "'default_tier': 'u'}",
};

static void test_scan_takes_common_tables(void **state)
{
	(void)state;
	CHECK_TABLES(common_tables, true, true);
}

/* ---- valid tables the scan leaves to jansson ---- */

static const char *const unusual_tables[] = {
	HEAD "'accounts': {'a\\u0063me': {'tier': 't', 'keys': ['k']}}}",
	HEAD "'accounts': {'acme': {'tier': 't', 'keys': ['k\\\\1', 'k\\'2']}}}",
	HEAD "'accounts': {'acme': {'tier': '\\u0074', 'keys': ['k']}}}",
	HEAD "'accounts': {'m\xc3\xbcller': {'tier': 't', 'keys': ['k']}}}",
	HEAD "'accounts': {'acme': {'tier': 't', 'cidrs': ['198.18.1.0\\/24']}}}",
	HEAD "'accou\\u006ets': {'acme': {'tier': 't', 'keys': ['k']}}}",
	/* a key of the root escaped, and so nothing it can check for repeats */
	HEAD "'accounts': {'acme': {'tier': 't', 'keys': ['k']}}, 'default_\\u0074ier': 't'}",
};

static void test_scan_leaves_unusual_tables_to_jansson(void **state)
{
	(void)state;
	CHECK_TABLES(unusual_tables, false, true);
}

/* ---- wrong tables: jansson's message ---- */

static const char *const wrong_tables[] = {
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['k']}, 'a': {'tier': 't', 'keys': ['l']}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'tier': 't', 'keys': ['k']}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['k'], 'keys': ['l']}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'cidrs': [], 'cidrs': ['198.18.0.0/15']}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['k'], 'key': ['l']}}}",
	HEAD "'accounts': {'a': {'keys': ['k']}}}",
	HEAD "'accounts': {'a': {}}}",
	HEAD "'accounts': {'a': {'tier': 'gold', 'keys': ['k']}}}",
	HEAD "'accounts': {'a': {'tier': 5, 'keys': ['k']}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': 'k'}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': [5]}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['']}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['sha256:abc']}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['k', 'k']}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['sk-acme-2']}, 'b': {'tier': 't', "
	"'keys': ['sha256:" SHA_ACME_2 "']}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': []}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'cidrs': ['198.18.1.1/24']}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'cidrs': ['198.18.1.0/24']}, 'b': {'tier': 't', "
	"'cidrs': ['198.18.1.0/24']}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'cidrs': ['" "198.18.1.0/24" "                  "
	"                                                  ']}}}",
	HEAD "'accounts': {'': {'tier': 't', 'keys': ['k']}}}",
	HEAD "'accounts': {'" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"': {'tier': 't', 'keys': ['k']}}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['k']},}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['k']}}, 'accounts': {}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['k']}}} x",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['k']}}, 'listen': {'ports': [1]}}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['k']}}, 'default_tier': 'v'}",
	HEAD "'accounts': [], 'default_tier': 't'}",
	HEAD "'accounts': null}",
	HEAD "'accounts': {'a': {'tier': 't', 'keys': ['k']}}, 'extra': 1}",
	"{'accounts': {'a': {'tier': 't', 'keys': ['k']}}}",
	"[]",
	"",
};

static void test_wrong_tables_same_message(void **state)
{
	(void)state;
	CHECK_TABLES(wrong_tables, false, false);
}

/* ---- every one-byte change ---- */

/*
 * Each byte of a table the scan takes, deleted or replaced by each of a few bytes that matter
 * to JSON, and a NUL byte inserted at the end: both ways agree on every one.
 */
static void test_every_byte_changed_same_both_ways(void **state)
{
	static const char with[] = " \"\\,:{}[]x0\n\x80\x7f";
	char *text = text_of(common_tables[0]), *changed;
	size_t len = strlen(text), i, j, taken = 0, accepted = 0, tried = 0;

	(void)state;
	changed = malloc(len + 1); /* room for the NUL at the end */
	assert_non_null(changed);
	for (i = 0; i < len; i++) {
		for (j = 0; j <= sizeof(with) - 1; j++) {
			size_t n = len;

			memcpy(changed, text, len);
			if (j == sizeof(with) - 1) { /* deleted */
				memmove(changed + i, changed + i + 1, len - i - 1);
				n--;
			} else if (changed[i] != with[j]) {
				changed[i] = with[j];
			} else {
				continue;
			}
			accepted += same_both_ways(changed, n) == 0;
			taken += scan_takes(changed, n);
			tried++;
		}
	}
	memcpy(changed, text, len);
	changed[len] = '\0';
	same_both_ways(changed, len + 1);
	print_message("# %zu changed tables: %zu valid, %zu taken by the scan\n", tried, accepted,
		      taken);
	/* Some changes leave a valid table (a space for a space, a key's letter). */
	assert_true(taken > 0 && taken <= accepted);
	free(changed);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_takes_common_tables),
		cmocka_unit_test(test_scan_leaves_unusual_tables_to_jansson),
		cmocka_unit_test(test_wrong_tables_same_message),
		cmocka_unit_test(test_every_byte_changed_same_both_ways),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
