// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The metrics endpoint's pure parts: the exposition writer (user/expo.c) escapes label values
 * and HELP text as the text format 0.0.4 wants, replaces bytes that are not UTF-8, and never
 * writes past its cap (whole lines only, nothing after the first line left out, the count of
 * samples left out in its trailer); the choice of accounts that get series of their own
 * (at most k, the most requests first); the settled sums per model; --metrics-listen's parse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "../lib/cmocka_cases.h"
#include "expo.h"
#include "metrics.h"
#include "metrics_http.h"

struct escape_case {
	const char *name, *in, *want;
};

static const struct escape_case escape_cases[] = {
	{ "plain", "gpt-4o", "gpt-4o" },
	{ "empty", "", "" },
	{ "double quote", "a\"b", "a\\\"b" },
	{ "backslash", "a\\b", "a\\\\b" },
	{ "line feed", "a\nb", "a\\nb" },
	{ "all three", "\\\"\n", "\\\\\\\"\\n" },
	{ "tab and CR pass as they are", "a\tb\rc", "a\tb\rc" },
	{ "UTF-8 of two, three, four bytes", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
	{ "a lone continuation byte", "a\x80" "b", "a\xef\xbf\xbd" "b" },
	{ "a lead byte cut at the end", "ab\xe2\x82", "ab\xef\xbf\xbd\xef\xbf\xbd" },
	{ "an overlong lead byte", "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },
	{ "a byte past U+10FFFF's leads", "\xf5\x80\x80\x80",
	  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
};

static void test_escape(void **state)
{
	const struct escape_case *c = *state;
	char out[64];

	assert_int_equal(rls_expo_escape_label(c->in, out, sizeof(out)), strlen(c->want));
	assert_string_equal(out, c->want);
}

static void test_escape_short_buffer(void **state)
{
	char out[4];

	(void)state;
	/* Like snprintf: the length it needed, and a NUL-terminated prefix of whole escapes. */
	memset(out, 'x', sizeof(out));
	assert_int_equal(rls_expo_escape_label("\"\"\"\"", out, sizeof(out)), 8);
	assert_string_equal(out, "\\\"");
}

static void test_family_and_samples(void **state)
{
	struct rls_expo e;
	struct rls_label l[] = { { "model", "m\"1" }, { "reason", "rpd" } };

	(void)state;
	assert_int_equal(rls_expo_init(&e, 4096), 0);
	rls_expo_family(&e, "rlshape_x_total", "counter", "Back\\slash and\nnew line.");
	rls_expo_u64(&e, "rlshape_x_total", l, 2, 18446744073709551615ull);
	rls_expo_double(&e, "rlshape_y", NULL, 0, 0.25);
	rls_expo_finish(&e);
	assert_string_equal(e.buf,
			    "# HELP rlshape_x_total Back\\\\slash and\\nnew line.\n"
			    "# TYPE rlshape_x_total counter\n"
			    "rlshape_x_total{model=\"m\\\"1\",reason=\"rpd\"} 18446744073709551615\n"
			    "rlshape_y 0.25\n"
			    "# HELP rlshape_scrape_samples_dropped Samples left out of this scrape: "
			    "it reached its size cap.\n"
			    "# TYPE rlshape_scrape_samples_dropped gauge\n"
			    "rlshape_scrape_samples_dropped 0\n");
	assert_int_equal(e.len, strlen(e.buf));
	rls_expo_free(&e);
}

/* Many families of many samples into a small cap: whole lines, in order, and the count. */
static void test_bounded(void **state)
{
	const size_t cap = 2000;
	struct rls_expo e;
	char name[32], value[16], *line, *save, *copy;
	unsigned long written = 0, dropped_seen = ~0ul;
	int f, i;

	(void)state;
	assert_int_equal(rls_expo_init(&e, cap), 0);
	for (f = 0; f < 10; f++) {
		snprintf(name, sizeof(name), "rlshape_f%d_total", f);
		rls_expo_family(&e, name, "counter", "A family.");
		for (i = 0; i < 10; i++) {
			struct rls_label l[] = { { "account", value } };

			snprintf(value, sizeof(value), "acct-%d", i);
			rls_expo_u64(&e, name, l, 1, (__u64)i);
		}
	}
	assert_true(e.full);
	rls_expo_finish(&e);
	assert_true(e.len < cap);
	assert_int_equal(strlen(e.buf), e.len);
	assert_int_equal(e.buf[e.len - 1], '\n');

	/* Each sample follows its own family's TYPE line; none is cut. */
	copy = strdup(e.buf);
	assert_non_null(copy);
	name[0] = '\0';
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "# TYPE ", 7)) {
			sscanf(line + 7, "%31s", name);
			continue;
		}
		if (line[0] == '#')
			continue;
		assert_int_equal(strncmp(line, name, strlen(name)), 0);
		if (strncmp(line, "rlshape_scrape_samples_dropped ", 31))
			written++;
		else
			dropped_seen = strtoul(line + 31, NULL, 10);
	}
	free(copy);
	assert_true(written > 0 && written < 100);
	assert_int_equal(e.dropped, 100 - written);
	assert_int_equal(dropped_seen, e.dropped);
	rls_expo_free(&e);
}

static void test_cap_too_small(void **state)
{
	struct rls_expo e;

	(void)state;
	assert_int_not_equal(rls_expo_init(&e, RLS_EXPO_TRAILER), 0);
}

/* At most k accounts, the most requests first, ties by the lower id: the cap on series. */
static void test_top_accounts(void **state)
{
	struct rls_account_traffic t[] = {
		{ 7, 10 }, { 3, 50 }, { 9, 10 }, { 1, 0 }, { 4, 99 }, { 2, 10 },
	};
	__u32 out[8];

	(void)state;
	assert_int_equal(rls_metrics_top_accounts(t, 6, 3, out), 3);
	assert_int_equal(out[0], 4);
	assert_int_equal(out[1], 3);
	assert_int_equal(out[2], 2); /* 2, 7 and 9 tie at 10: the lowest id */
	assert_int_equal(rls_metrics_top_accounts(t, 6, 0, out), 0);
	assert_int_equal(rls_metrics_top_accounts(t, 6, 8, out), 6);
	assert_int_equal(out[5], 1);
	assert_int_equal(rls_metrics_top_accounts(t, 0, 8, out), 0);
}

static void test_settled_sums(void **state)
{
	struct rls_metrics_shared s;

	(void)state;
	rls_metrics_shared_init(&s);
	for (__u32 m = 0; m < 100; m++)
		assert_int_equal(rls_metrics_add_settled(&s, m, RLS_SOURCE_USAGE, 1, m), 0);
	assert_int_equal(rls_metrics_add_settled(&s, 5, RLS_SOURCE_ESTIMATE, 3, 40), 0);
	assert_int_equal(rls_metrics_add_settled(&s, 5, RLS_SOURCE_USAGE, 1, 2), 0);
	assert_int_equal(s.nr_models, 100);
	assert_int_equal(s.models[5].model, 5);
	assert_int_equal(s.models[5].responses[RLS_SOURCE_USAGE], 2);
	assert_int_equal(s.models[5].tokens[RLS_SOURCE_USAGE], 7);
	assert_int_equal(s.models[5].responses[RLS_SOURCE_ESTIMATE], 3);
	assert_int_equal(s.models[5].tokens[RLS_SOURCE_ESTIMATE], 40);
	rls_metrics_shared_free(&s);
}

struct listen_case {
	const char *name, *text;
	int ok, off, family;
	const char *addr;
	unsigned short port;
	const char *error; /* a part of the message */
};

static const struct listen_case listen_cases[] = {
	{ "IPv4 loopback", "127.0.0.1:9473", 1, 0, AF_INET, "127.0.0.1", 9473, NULL },
	{ "IPv4 any", "0.0.0.0:80", 1, 0, AF_INET, "0.0.0.0", 80, NULL },
	{ "IPv6 loopback", "[::1]:9473", 1, 0, AF_INET6, "::1", 9473, NULL },
	{ "none", "none", 1, 1, 0, NULL, 0, NULL },
	{ "a name", "localhost:9473", 0, 0, 0, NULL, 0, "not an IP address" },
	{ "no port", "127.0.0.1", 0, 0, 0, NULL, 0, "ADDR:PORT" },
	{ "port 0", "127.0.0.1:0", 0, 0, 0, NULL, 0, "from 1 to 65535" },
	{ "port 65536", "127.0.0.1:65536", 0, 0, 0, NULL, 0, "from 1 to 65535" },
	{ "port with junk", "127.0.0.1:80x", 0, 0, 0, NULL, 0, "from 1 to 65535" },
	{ "IPv6 without brackets", "::1:9473", 0, 0, 0, NULL, 0, "not an IP address" },
	{ "IPv6 without port", "[::1]", 0, 0, 0, NULL, 0, "[ADDR]:PORT" },
	{ "IPv4 in brackets", "[127.0.0.1]:80", 0, 0, 0, NULL, 0, "not an IP address" },
};

static void test_listen(void **state)
{
	const struct listen_case *c = *state;
	struct sockaddr_storage ss;
	char err[256] = "", addr[INET6_ADDRSTRLEN];
	int off = -1, ret;

	ret = rls_metrics_parse_listen(c->text, &ss, &off, err, sizeof(err));
	if (!c->ok) {
		assert_int_equal(ret, -1);
		assert_non_null(strstr(err, c->error));
		assert_non_null(strstr(err, c->text)); /* names what was given */
		return;
	}
	assert_int_equal(ret, 0);
	assert_int_equal(off, c->off);
	if (c->off)
		return;
	assert_int_equal(ss.ss_family, c->family);
	if (c->family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a->sin_addr, addr, sizeof(addr));
		assert_int_equal(ntohs(a->sin_port), c->port);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof(addr));
		assert_int_equal(ntohs(a->sin6_port), c->port);
	}
	assert_string_equal(addr, c->addr);
}

int main(void)
{
	const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_escape_short_buffer),
		cmocka_unit_test(test_family_and_samples),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_cap_too_small),
		cmocka_unit_test(test_top_accounts),
		cmocka_unit_test(test_settled_sums),
	};
	const struct case_table tables[] = {
		CASE_TABLE(test_escape, escape_cases),
		CASE_TABLE(test_listen, listen_cases),
	};

	return run_tests_and_cases("metrics", fixed, ARRAY_SIZE(fixed), tables, ARRAY_SIZE(tables));
}
