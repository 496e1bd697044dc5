// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * `rlshape load` (rls_cmd_load) on a veth in a network namespace of the test's own:
 * the table is parsed while the BPF programs load, and maps are pinned only once it is good. A
 * bad table on a first load leaves no pin directory; a bad table is named before a missing
 * interface; a bad table on a reload changes nothing; tables of thousands of accounts (their
 * keys written on two threads) map every key to its account, a reload keeps the ids of the
 * accounts that stay, and the keys of the table before the live one go when the next is
 * written over them.
 */
#define _GNU_SOURCE /* unshare(), in own_netns.h */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <bpf/bpf.h>

#include "cli.h"
#include "key_hash.h"
#include "siphash.h"
#include "map_walk.h"
#include "maps.h"
#include "own_netns.h"

static char dev[IFNAMSIZ];
static char dir[256];
static char scratch[] = "/tmp/rls-test-load-XXXXXX";

/* ---- running the command ---- */

/* rls_cmd_load(FILE --dev DEV); its stderr in err. */
static int load(const char *file, const char *on, char *err, size_t err_len)
{
	char *argv[] = { "load", (char *)file, "--dev", (char *)on, NULL };
	char path[300];
	int saved, fd, ret;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/stderr", scratch);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	ret = rls_cmd_load(4, argv);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, err, err_len - 1, 0);
	err[n > 0 ? n : 0] = '\0';
	close(fd);
	return ret;
}

static void unload(void)
{
	char *argv[] = { "unload", "--dev", dev, NULL };
	int out = dup(1), err = dup(2), null = open("/dev/null", O_WRONLY);

	/* Whether or not anything is loaded (a test may have stopped half way): quietly. */
	fflush(stdout);
	fflush(stderr);
	dup2(null, 1);
	dup2(null, 2);
	rls_cmd_unload(3, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(out, 1);
	dup2(err, 2);
	close(out);
	close(err);
	close(null);
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* ---- tables ---- */

/*
 * Writes a table of accounts acct-FIRST.. acct-(FIRST + N - 1), key sk-NUMBER each, into
 * scratch.
 */
static const char *accounts_table(const char *name, size_t first, size_t n)
{
	static char path[300];
	FILE *f;
	size_t i;

	snprintf(path, sizeof(path), "%s/%s", scratch, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"listen\": {\"ports\": [8000]}, \"tiers\": {\"t\": {\"*\": {\"rpm\": 60}}}, "
		   "\"accounts\": {");
	for (i = first; i < first + n; i++)
		fprintf(f, "%s\"acct-%06zu\": {\"tier\": \"t\", \"keys\": [\"sk-%06zu\"]}",
			i > first ? ", " : "", i, i);
	fprintf(f, "}}\n");
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char *bad_table(void)
{
	static char path[300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/bad.json", scratch);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"listen\": {\"ports\": [8000]}, \"tiers\": {\"t\": {\"*\": {\"rpm\": -3}}}}\n");
	assert_int_equal(fclose(f), 0);
	return path;
}

/* ---- reading what is loaded ---- */

struct key_walk {
	__u32 generation;
	__u32 *account_of; /* by key number; 0: not seen */
	size_t max, seen, foreign;
};

/* The SipHash of key sk-NUMBER under the device's secret, with NUMBER: a hash found in the
 * map is looked up among these, sorted, to tell which key it is. */
struct digest {
	__u8 siphash[RLS_SIPHASH_LEN];
	size_t number;
};

static struct digest *digests;
static size_t nr_digests;
static __u8 hashed_under[RLS_KEY_SECRET_LEN]; /* the secret digests are under */

static int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, RLS_SIPHASH_LEN);
}

static void hash_keys(size_t n, const __u8 secret[RLS_KEY_SECRET_LEN])
{
	__u8 buf[RLS_KEY_HASH_BUF];
	char key[32];
	size_t i;

	free(digests);
	digests = NULL;
	digests = calloc(n, sizeof(*digests));
	assert_non_null(digests);
	for (i = 0; i < n; i++) {
		memset(buf, 0, sizeof(buf));
		snprintf(key, sizeof(key), "sk-%06zu", i);
		memcpy(buf, key, strlen(key));
		assert_int_equal(rls_siphash128(secret, buf, (__u32)strlen(key), digests[i].siphash), 0);
		digests[i].number = i;
	}
	qsort(digests, n, sizeof(*digests), cmp_digest);
	nr_digests = n;
	memcpy(hashed_under, secret, RLS_KEY_SECRET_LEN);
}

static void visit_key(const void *key, const void *value, void *ctx)
{
	const struct rls_api_key *k = key;
	const struct rls_principal *who = value;
	struct key_walk *w = ctx;
	struct digest *d;

	if (k->generation != w->generation)
		return;
	d = bsearch(k->siphash, digests, nr_digests, sizeof(*digests), cmp_digest);
	if (!d || d->number >= w->max) {
		w->foreign++;
		return;
	}
	assert_int_equal(w->account_of[d->number], 0);
	w->account_of[d->number] = who->account;
	w->seen++;
}

/*
 * Which account id each key sk-0..max-1 of the live generation maps to (0: none). The keys are
 * hashed under the secret of the first load: a reload must keep it.
 */
static __u32 *live_keys(size_t max, size_t *seen)
{
	static const __u8 none[RLS_KEY_SECRET_LEN];
	struct key_walk w = { .max = max };
	struct rls_config cfg;
	struct rls_maps maps;
	char err[256];
	__u32 zero = 0;

	w.account_of = calloc(max, sizeof(*w.account_of));
	assert_non_null(w.account_of);
	assert_int_equal(rls_maps_open_pinned(dir, &maps, err, sizeof(err)), 0);
	assert_int_equal(bpf_map_lookup_elem(maps.active, &zero, &w.generation), 0);
	w.generation &= 1;
	assert_int_equal(bpf_map_lookup_elem(maps.config, &w.generation, &cfg), 0);
	assert_memory_not_equal(cfg.key_secret, none, RLS_KEY_SECRET_LEN);
	if (!digests)
		hash_keys(max, cfg.key_secret);
	assert_memory_equal(cfg.key_secret, hashed_under, RLS_KEY_SECRET_LEN);
	assert_int_equal(rls_map_walk(maps.api_keys, 0, visit_key, &w), 0);
	rls_maps_close(&maps);
	assert_int_equal(w.foreign, 0);
	*seen = w.seen;
	return w.account_of;
}

static __u32 live_generation(void)
{
	struct rls_maps maps;
	char err[256];
	__u32 zero = 0, gen = 0;

	assert_int_equal(rls_maps_open_pinned(dir, &maps, err, sizeof(err)), 0);
	assert_int_equal(bpf_map_lookup_elem(maps.active, &zero, &gen), 0);
	rls_maps_close(&maps);
	return gen;
}

/* ---- tests ---- */

static void test_bad_table_on_first_load_leaves_nothing(void **state)
{
	char err[2048];

	(void)state;
	assert_false(exists(dir));
	assert_int_equal(load(bad_table(), dev, err, sizeof(err)), 1);
	if (!strstr(err, "bad.json: tiers.t.\"*\".rpm: must be a non-negative integer"))
		fail_msg("stderr: %s", err);
	assert_false(exists(dir));
}

/* The table is wrong and the interface is missing: the table is what the message names. */
static void test_table_error_before_interface_error(void **state)
{
	char err[2048];

	(void)state;
	assert_int_equal(load(bad_table(), "rls-no-such0", err, sizeof(err)), 1);
	if (!strstr(err, "bad.json: tiers.t.\"*\".rpm") || strstr(err, "no such interface"))
		fail_msg("stderr: %s", err);
	assert_int_equal(load(accounts_table("one.json", 0, 1), "rls-no-such0", err, sizeof(err)),
			 1);
	if (!strstr(err, "no such interface \"rls-no-such0\""))
		fail_msg("stderr: %s", err);
	assert_false(exists(dir));
}

/*
 * 10,000 accounts (written on two threads), then a reload in which every tenth goes and 1,000
 * come: kept accounts keep their ids, new ones get ids no kept one has; a bad table after
 * that changes nothing.
 */
static void test_load_reload_many_accounts(void **state)
{
	const size_t n = 10000, max = 11000;
	__u32 *first, *second, *third;
	char err[2048], link[300];
	size_t seen, i, kept = 0;
	__u32 gen;

	(void)state;
	assert_int_equal(load(accounts_table("a.json", 0, n), dev, err, sizeof(err)), 0);
	snprintf(link, sizeof(link), "%s/%s", dir, RLS_LINK_PIN);
	assert_true(exists(link));
	first = live_keys(max, &seen);
	assert_int_equal(seen, n);
	for (i = 0; i < n; i++)
		assert_int_not_equal(first[i], 0);

	/* Accounts 1000..10999: the first thousand go, a thousand are new. */
	assert_int_equal(load(accounts_table("b.json", 1000, n), dev, err, sizeof(err)), 0);
	second = live_keys(max, &seen);
	assert_int_equal(seen, n);
	for (i = 0; i < 1000; i++)
		assert_int_equal(second[i], 0);
	for (i = 1000; i < n; i++, kept++)
		assert_int_equal(second[i], first[i]);
	for (i = n; i < max; i++) {
		size_t j;

		assert_int_not_equal(second[i], 0);
		for (j = 1000; j < n; j += 97) /* a sample of the kept ids: none is reused */
			assert_int_not_equal(second[i], first[j]);
	}
	assert_int_equal(kept, n - 1000);

	gen = live_generation();
	assert_int_equal(load(bad_table(), dev, err, sizeof(err)), 1);
	assert_int_equal(live_generation(), gen);
	third = live_keys(max, &seen);
	assert_int_equal(seen, n);
	assert_memory_equal(third, second, max * sizeof(*third));
	free(third);

	/* Accounts 0..4999 into the generation the first table left: its other keys go. */
	assert_int_equal(load(accounts_table("c.json", 0, n / 2), dev, err, sizeof(err)), 0);
	assert_int_equal(live_generation() & 1, (gen & 1) ^ 1);
	third = live_keys(max, &seen);
	assert_int_equal(seen, n / 2);
	for (i = 0; i < 1000; i++) /* gone at the last load: new ids, none of the kept ones */
		assert_int_not_equal(third[i], 0);
	for (i = 1000; i < n / 2; i++)
		assert_int_equal(third[i], first[i]);
	free(first);
	free(second);
	free(third);
	free(digests);
	digests = NULL;
}

static int setup(void **state)
{
	char why[256], cmd[160];

	(void)state;
	if (own_netns(why, sizeof(why))) {
		fprintf(stderr, "# %s\n", why);
		return -1;
	}
	if (!mkdtemp(scratch))
		return -1;
	/* The pin directory is named after the interface and seen from every namespace. */
	snprintf(dev, sizeof(dev), "rlsld%d", (int)getpid() % 1000000);
	snprintf(dir, sizeof(dir), "%s/%s", RLS_PIN_ROOT, dev);
	snprintf(cmd, sizeof(cmd), "ip link add %s type veth peer name %sp && ip link set %s up",
		 dev, dev, dev);
	return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[400];

	(void)state;
	unload();
	/* The interface goes with the namespace when the process exits. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, scratch);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_table_on_first_load_leaves_nothing),
		cmocka_unit_test(test_table_error_before_interface_error),
		cmocka_unit_test(test_load_reload_many_accounts),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
