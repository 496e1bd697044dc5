// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * user/map_walk.c on real maps (made here with bpf_map_create, no program): a batched walk of
 * a hash map visits every entry exactly once, with its value, across many batches; so does the
 * walk of an LPM trie, which has no batch operations; a per-CPU map's values come whole;
 * deleting keys passes over keys already gone; writing many entries stops at the first that
 * does not fit and says which; writes of every size around a batch's end and the split between
 * two threads write each entry once.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <bpf/bpf.h>

#include "map_walk.h"
#include "maps.h"

#define N 20000 /* entries: several batches of the walk */

struct seen {
	unsigned char *count; /* by key */
	size_t visits, bad_values;
	size_t value_words; /* per entry: 1, or one per CPU */
};

/* Keys are 0..N-1, values key * 3 + 1 (on every CPU for a per-CPU map). */
static void count_visit(const void *key, const void *value, void *ctx)
{
	struct seen *s = ctx;
	__u32 k;
	__u64 v;
	size_t i;

	memcpy(&k, key, sizeof(k));
	assert_true(k < N);
	s->count[k]++;
	s->visits++;
	for (i = 0; i < s->value_words; i++) {
		memcpy(&v, (const unsigned char *)value + i * 8, sizeof(v));
		if (v != (__u64)k * 3 + 1)
			s->bad_values++;
	}
}

static int make_hash(enum bpf_map_type type, __u32 max_entries)
{
	int fd = bpf_map_create(type, "rls_test_walk", sizeof(__u32), sizeof(__u64), max_entries,
				NULL);

	if (fd < 0)
		fail_msg("bpf_map_create: %s (run as root)", strerror(errno));
	return fd;
}

static void fill(int fd, __u32 n, size_t value_words)
{
	__u64 *values = calloc(value_words, sizeof(*values));
	__u32 k;
	size_t i;

	assert_non_null(values);
	for (k = 0; k < n; k++) {
		for (i = 0; i < value_words; i++)
			values[i] = (__u64)k * 3 + 1;
		assert_int_equal(bpf_map_update_elem(fd, &k, values, BPF_ANY), 0);
	}
	free(values);
}

static void walk_and_count(int fd, size_t value_words, size_t want_each_key_once_below)
{
	struct seen s = { .count = calloc(N, 1), .value_words = value_words };
	size_t k;

	assert_non_null(s.count);
	assert_int_equal(rls_map_walk(fd, 0, count_visit, &s), 0);
	assert_int_equal(s.visits, want_each_key_once_below);
	assert_int_equal(s.bad_values, 0);
	for (k = 0; k < want_each_key_once_below; k++)
		assert_int_equal(s.count[k], 1);
	free(s.count);
}

static void test_hash_walk_every_entry_once(void **state)
{
	int fd = make_hash(BPF_MAP_TYPE_HASH, 2 * N);

	(void)state;
	walk_and_count(fd, 1, 0); /* empty */
	fill(fd, N, 1);
	walk_and_count(fd, 1, N);
	close(fd);
}

static void test_percpu_walk_whole_values(void **state)
{
	size_t cpus = (size_t)rls_nr_cpus();
	int fd = make_hash(BPF_MAP_TYPE_PERCPU_HASH, N);

	(void)state;
	fill(fd, N, cpus);
	walk_and_count(fd, cpus, N);
	close(fd);
}

struct lpm_key {
	__u32 prefixlen;
	__u32 addr;
};

static void count_lpm(const void *key, const void *value, void *ctx)
{
	struct lpm_key k;
	__u64 v;

	memcpy(&k, key, sizeof(k));
	memcpy(&v, value, sizeof(v));
	assert_int_equal(k.prefixlen, 32);
	assert_int_equal(v, (__u64)k.addr * 3 + 1);
	(*(size_t *)ctx)++;
}

/* The LPM trie has no batch operations: walked and deleted one entry at a time. */
static void test_lpm_trie_one_by_one(void **state)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
	struct lpm_key keys[1000];
	size_t visits = 0, i;
	__u64 v;
	int fd;

	(void)state;
	fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "rls_test_lpm", sizeof(struct lpm_key),
			    sizeof(__u64), 1000, &opts);
	assert_true(fd >= 0);
	for (i = 0; i < 1000; i++) {
		keys[i] = (struct lpm_key){ 32, (__u32)i };
		v = i * 3 + 1;
		assert_int_equal(bpf_map_update_elem(fd, &keys[i], &v, BPF_ANY), 0);
	}
	assert_int_equal(rls_map_walk(fd, 0, count_lpm, &visits), 0);
	assert_int_equal(visits, 1000);
	assert_int_equal(rls_map_delete_keys(fd, keys, 600, sizeof(keys[0])), 600);
	visits = 0;
	assert_int_equal(rls_map_walk(fd, 0, count_lpm, &visits), 0);
	assert_int_equal(visits, 400);
	close(fd);
}

static void test_delete_passes_over_gone_keys(void **state)
{
	int fd = make_hash(BPF_MAP_TYPE_HASH, 2 * N);
	__u32 *keys = calloc(N, sizeof(*keys)), k;
	size_t i;

	(void)state;
	assert_non_null(keys);
	fill(fd, N, 1);
	/* Every key, but every tenth is deleted first: the batch meets them gone. */
	for (k = 0; k < N; k++) {
		keys[k] = k;
		if (k % 10 == 0)
			assert_int_equal(bpf_map_delete_elem(fd, &k), 0);
	}
	assert_int_equal(rls_map_delete_keys(fd, keys, N, sizeof(*keys)), N - N / 10);
	walk_and_count(fd, 1, 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(rls_map_delete_keys(fd, keys, i, sizeof(*keys)), 0);
	free(keys);
	close(fd);
}

static void test_update_many_says_where_it_stopped(void **state)
{
	const size_t n = 3 * N / 2;
	__u32 *keys = calloc(n, sizeof(*keys));
	__u64 *values = calloc(n, sizeof(*values));
	size_t failed = SIZE_MAX, i;
	int fd = make_hash(BPF_MAP_TYPE_HASH, N);

	(void)state;
	assert_true(keys && values);
	for (i = 0; i < n; i++) {
		keys[i] = (__u32)i;
		values[i] = i * 3 + 1;
	}
	/* N fit: all of them, in batches. */
	assert_int_equal(rls_map_update_many(fd, keys, values, N, sizeof(*keys), sizeof(*values),
					     BPF_ANY, &failed), 0);
	walk_and_count(fd, 1, N);
	/* The map holds N: the next one does not fit, and the call says it was that one. */
	assert_int_equal(rls_map_update_many(fd, keys + N, values + N, n - N, sizeof(*keys),
					     sizeof(*values), BPF_ANY, &failed), -E2BIG);
	assert_int_equal(failed, 0);
	/* Flags a batch write does not take (BPF_NOEXIST): one at a time, the same answer. */
	assert_int_equal(rls_map_update_many(fd, keys, values, 1, sizeof(*keys), sizeof(*values),
					     BPF_NOEXIST, &failed), -EEXIST);
	assert_int_equal(failed, 0);
	free(keys);
	free(values);
	close(fd);
}

/* Keys 0..n-1 with the values count_visit() expects; free both. */
static void make_entries(size_t n, __u32 **keys, __u64 **values)
{
	size_t i;

	*keys = calloc(n, sizeof(**keys));
	*values = calloc(n, sizeof(**values));
	assert_true(*keys && *values);
	for (i = 0; i < n; i++) {
		(*keys)[i] = (__u32)i;
		(*values)[i] = i * 3 + 1;
	}
}

/*
 * Around the sizes where a write goes to two threads (2 * 4,096 entries and more) and where a
 * batch ends: every entry written once, with its value.
 */
static void test_update_many_batch_boundaries(void **state)
{
	static const size_t sizes[] = { 1, 4095, 4096, 4097, 8191, 8192, 8193, 12289, N };
	size_t failed = SIZE_MAX, i;
	__u32 *keys;
	__u64 *values;

	(void)state;
	make_entries(N, &keys, &values);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int fd = make_hash(BPF_MAP_TYPE_HASH, N);

		assert_int_equal(rls_map_update_many(fd, keys, values, sizes[i], sizeof(*keys),
						     sizeof(*values), BPF_ANY, &failed), 0);
		walk_and_count(fd, 1, sizes[i]);
		close(fd);
	}
	free(keys);
	free(values);
}

/*
 * Written on two threads into a map with room for N of 3N/2: which entry is the first that
 * does not fit depends on how the threads meet, but every entry before it is in the map, and
 * the map is full.
 */
static void test_update_many_two_threads_full_map(void **state)
{
	const size_t n = 3 * N / 2;
	size_t failed = SIZE_MAX, i, present = 0;
	int fd = make_hash(BPF_MAP_TYPE_HASH, N);
	__u32 *keys;
	__u64 *values, v;

	(void)state;
	make_entries(n, &keys, &values);
	assert_int_equal(rls_map_update_many(fd, keys, values, n, sizeof(*keys), sizeof(*values),
					     BPF_ANY, &failed), -E2BIG);
	assert_true(failed < n);
	for (i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(fd, &keys[i], &v))
			continue;
		assert_int_equal(v, values[i]);
		present++;
	}
	for (i = 0; i < failed; i++)
		assert_int_equal(bpf_map_lookup_elem(fd, &keys[i], &v), 0);
	assert_int_equal(present, N);
	free(keys);
	free(values);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_walk_every_entry_once),
		cmocka_unit_test(test_percpu_walk_whole_values),
		cmocka_unit_test(test_lpm_trie_one_by_one),
		cmocka_unit_test(test_delete_passes_over_gone_keys),
		cmocka_unit_test(test_update_many_says_where_it_stopped),
		cmocka_unit_test(test_update_many_batch_boundaries),
		cmocka_unit_test(test_update_many_two_threads_full_map),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
