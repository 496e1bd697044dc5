// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Id planning (user/ids.c), as `rlshape load` runs it over reloads: the maps are modelled as the
 * names and ids they hold. A reload plans ids against every name the maps hold, then (once the
 * new table is live) the names it dropped go. Asserted: a name that stays keeps its id, so its
 * counters carry over; new ids are unique, never one a name still in the maps holds, and within
 * what the map holds (at most twice the table's cap); ids freed by an earlier load are used
 * again. Tables at the caps: 4,096 models, and a large account set.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ids.h"
#include "rlshape.h"

#define NAME_LEN 24

/* What a name map holds: names[i] has ids[i]. */
struct names_map {
	size_t n;
	char (*names)[NAME_LEN];
	__u32 *ids;
};

/* A table: its names, in file order, and the ids planned for them. */
struct table {
	size_t n;
	char (*names)[NAME_LEN];
	const char **list;
	__u32 *ids;
	bool *is_new;
};

static void table_init(struct table *t, size_t n)
{
	t->n = n;
	t->names = calloc(n + 1, sizeof(*t->names));
	t->list = calloc(n + 1, sizeof(*t->list));
	t->ids = calloc(n + 1, sizeof(*t->ids));
	t->is_new = calloc(n + 1, sizeof(*t->is_new));
	assert_true(t->names && t->list && t->ids && t->is_new);
}

static void table_name(struct table *t, size_t i, const char *prefix, size_t number)
{
	snprintf(t->names[i], NAME_LEN, "%s-%07zu", prefix, number);
	t->list[i] = t->names[i];
}

static void table_free(struct table *t)
{
	free(t->names);
	free(t->list);
	free(t->ids);
	free(t->is_new);
}

static void map_free(struct names_map *m)
{
	free(m->names);
	free(m->ids);
	memset(m, 0, sizeof(*m));
}

struct entry {
	const char *name;
	__u32 id;
};

static int compare_entries(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* names[i] with ids[i], sorted by name, for entry_id(). */
static struct entry *index_of(char (*names)[NAME_LEN], const __u32 *ids, size_t n)
{
	struct entry *v = calloc(n + 1, sizeof(*v));
	size_t i;

	assert_non_null(v);
	for (i = 0; i < n; i++)
		v[i] = (struct entry){ names[i], ids[i] };
	if (n)
		qsort(v, n, sizeof(*v), compare_entries);
	return v;
}

/* The id index holds for name, 0 if none. */
static __u32 entry_id(const struct entry *index, size_t n, const char *name)
{
	struct entry want = { name, 0 }, *found;

	found = n ? bsearch(&want, index, n, sizeof(want), compare_entries) : NULL;
	return found ? found->id : 0;
}

static int compare_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/* Plan t's ids against what m holds, as rls_apply_table() does; returns rls_plan_ids()'s. */
static int plan(const struct names_map *m, struct table *t, __u32 first, __u32 last)
{
	struct rls_named_id *known = calloc(m->n + 1, sizeof(*known));
	size_t i;
	int ret;

	assert_non_null(known);
	/* In the order the map holds them, which is no order of names, as a walk of a map. */
	for (i = 0; i < m->n; i++)
		known[i] = (struct rls_named_id){ m->names[i], m->ids[i] };
	ret = rls_plan_ids(known, m->n, t->list, t->n, first, last, t->ids, t->is_new);
	free(known);
	return ret;
}

/*
 * Plan t against m and check what every plan must hold, ids at most most_id; then make t live:
 * m holds t's names. Returns how many of t's names were new.
 */
static size_t reload(struct names_map *m, struct table *t, __u32 most_id)
{
	__u32 *seen = calloc(t->n + m->n + 1, sizeof(*seen));
	struct entry *live = index_of(m->names, m->ids, m->n), *next;
	size_t i, nr_new = 0, nr_seen = 0;

	assert_non_null(seen);
	assert_int_equal(plan(m, t, 1, UINT32_MAX - 1), 0);
	next = index_of(t->names, t->ids, t->n);
	for (i = 0; i < t->n; i++) {
		__u32 had = entry_id(live, m->n, t->names[i]);

		if (had) {
			/* A name that stays keeps its id. */
			assert_false(t->is_new[i]);
			assert_int_equal(t->ids[i], had);
		} else {
			assert_true(t->is_new[i]);
			nr_new++;
		}
		/* Within the map: it holds the live table and the next. */
		assert_true(t->ids[i] >= 1 && t->ids[i] <= most_id);
		seen[nr_seen++] = t->ids[i];
	}
	/* A new id is no id a name still in the maps holds (the live table may count under it),
	 * and no two names share one: with the ids of the names that go, all distinct. */
	for (i = 0; i < m->n; i++)
		if (!entry_id(next, t->n, m->names[i]))
			seen[nr_seen++] = m->ids[i];
	qsort(seen, nr_seen, sizeof(*seen), compare_u32);
	for (i = 1; i < nr_seen; i++)
		if (seen[i] == seen[i - 1])
			fail_msg("id %u given to two names", seen[i]);
	free(seen);
	free(live);
	free(next);

	map_free(m);
	m->n = t->n;
	m->names = calloc(t->n + 1, sizeof(*m->names));
	m->ids = calloc(t->n + 1, sizeof(*m->ids));
	assert_true(m->names && m->ids);
	memcpy(m->names, t->names, t->n * sizeof(*m->names));
	memcpy(m->ids, t->ids, t->n * sizeof(*m->ids));
	return nr_new;
}

/* The ids of t's new names, ascending. */
static __u32 *new_ids(const struct table *t, size_t *n)
{
	__u32 *v = calloc(t->n + 1, sizeof(*v));
	size_t i;

	assert_non_null(v);
	*n = 0;
	for (i = 0; i < t->n; i++)
		if (t->is_new[i])
			v[(*n)++] = t->ids[i];
	qsort(v, *n, sizeof(*v), compare_u32);
	return v;
}

static void test_small_example(void **state)
{
	/* Known: a 1, b 3, c 4, d 7. New names take 2, 5, 6, 8 in table order. */
	struct rls_named_id known[] = { { "d", 7 }, { "b", 3 }, { "a", 1 }, { "c", 4 } };
	const char *names[] = { "c", "x", "y", "a", "z", "w" };
	__u32 ids[6], want[6] = { 4, 2, 5, 1, 6, 8 };
	bool is_new[6], want_new[6] = { false, true, true, false, true, true };
	size_t i;

	(void)state;
	/* known in no order: rls_plan_ids() takes it as a map walk gives it. */
	assert_int_equal(rls_plan_ids(known, 4, names, 6, 1, 100, ids, is_new), 0);
	for (i = 0; i < 6; i++) {
		assert_int_equal(ids[i], want[i]);
		assert_int_equal(is_new[i], want_new[i]);
	}
	rls_sort_by_name(known, 4);
	assert_int_equal(rls_find_id(known, 4, "c", 0), 4);
	assert_int_equal(rls_find_id(known, 4, "e", 99), 99);
	assert_int_equal(rls_find_id(known, 0, "a", 99), 99);
}

static void test_range_exhausted(void **state)
{
	struct rls_named_id known[] = { { "a", 2 } }, top[] = { { "a", UINT32_MAX - 1 } };
	const char *names[] = { "x", "y", "z" };
	__u32 ids[3];
	bool is_new[3];

	(void)state;
	assert_int_equal(rls_plan_ids(known, 1, names, 2, 1, 3, ids, is_new), 0);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 3);
	assert_int_equal(rls_plan_ids(known, 1, names, 3, 1, 3, ids, is_new), -ENOSPC);
	/* The last id of the range is given out, and nothing past it (no wrap to 0). */
	assert_int_equal(rls_plan_ids(top, 1, names, 1, UINT32_MAX - 1, UINT32_MAX, ids, is_new), 0);
	assert_int_equal(ids[0], UINT32_MAX);
	assert_int_equal(rls_plan_ids(top, 1, names, 2, UINT32_MAX - 1, UINT32_MAX, ids, is_new),
			 -ENOSPC);
	/* No names at all: nothing to plan, nothing read. */
	assert_int_equal(rls_plan_ids(NULL, 0, NULL, 0, 1, 3, ids, is_new), 0);
}

/*
 * The index of the known names, built before the names to plan are known, plans several tables
 * against the same known names alike (as rls_plan_ids() would).
 */
static void test_index_plans_as_plan_ids(void **state)
{
	struct rls_named_id known[] = { { "d", 7 }, { "b", 3 }, { "a", 1 }, { "c", 4 } };
	const char *first[] = { "c", "x", "y", "a", "z", "w" }, *second[] = { "q", "d" };
	__u32 ids[6], want[6];
	bool is_new[6], want_new[6];
	struct rls_id_index *index;

	(void)state;
	assert_int_equal(rls_id_index_build(known, 4, &index), 0);
	assert_int_equal(rls_plan_ids_in(index, first, 6, 1, 100, ids, is_new), 0);
	assert_int_equal(rls_plan_ids(known, 4, first, 6, 1, 100, want, want_new), 0);
	assert_memory_equal(ids, want, sizeof(ids));
	assert_memory_equal(is_new, want_new, sizeof(is_new));
	assert_int_equal(rls_plan_ids_in(index, second, 2, 1, 100, ids, is_new), 0);
	assert_int_equal(ids[0], 2);
	assert_true(is_new[0]);
	assert_int_equal(ids[1], 7);
	assert_false(is_new[1]);
	assert_int_equal(rls_plan_ids_in(index, first, 6, 1, 5, ids, is_new), -ENOSPC);
	rls_id_index_free(index);
}

/* rls_sort_ids() sorts ids of every size, repeated ones and none, as qsort() would. */
static void test_sort_ids(void **state)
{
	static const size_t sizes[] = { 0, 1, 2, 3, 1000, 70000 };
	__u32 *ids, *want, x = 12345;
	size_t s, i;

	(void)state;
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		ids = calloc(sizes[s] + 1, sizeof(*ids));
		want = calloc(sizes[s] + 1, sizeof(*want));
		assert_true(ids && want);
		for (i = 0; i < sizes[s]; i++) {
			x = x * 1103515245u + 12345u;
			/* Low and high halves both matter; every fourth id repeats the one before. */
			ids[i] = i % 4 == 3 ? ids[i - 1] : i % 2 ? x : x >> 16;
		}
		memcpy(want, ids, sizes[s] * sizeof(*ids));
		qsort(want, sizes[s], sizeof(*want), compare_u32);
		rls_sort_ids(ids, sizes[s]);
		assert_memory_equal(ids, want, (sizes[s] + 1) * sizeof(*ids));
		for (i = 0; i + 1 < sizes[s]; i++)
			assert_true(rls_has_id(ids, sizes[s], ids[i]));
		free(ids);
		free(want);
	}
}

/* 4,096 models: loaded, reloaded as is, with half of them replaced, and all replaced. */
static void test_models_at_the_cap(void **state)
{
	const size_t cap = RLS_MAX_MODELS;
	const __u32 most = 2 * RLS_MAX_MODELS; /* what rls_models holds */
	struct names_map live = { 0 };
	struct table a, same, half, more, fresh, fresh2;
	__u32 *ids, *before;
	size_t i, n, k;

	(void)state;
	/* First load: ids 1..4096 in file order. */
	table_init(&a, cap);
	for (i = 0; i < cap; i++)
		table_name(&a, i, "model", i);
	assert_int_equal(reload(&live, &a, most), cap);
	for (i = 0; i < cap; i++)
		assert_int_equal(a.ids[i], i + 1);

	/* The same names in another order: every id kept, nothing new. */
	table_init(&same, cap);
	for (i = 0; i < cap; i++)
		table_name(&same, i, "model", (i * 1237) % cap); /* 1237 is prime to 4096 */
	assert_int_equal(reload(&live, &same, most), 0);

	/* The even models stay (in reverse order), 2,048 new ones between them. While the odd
	 * ones are still in the maps, the new ones take ids past every live one. */
	table_init(&half, cap);
	for (i = 0; i < cap / 2; i++) {
		table_name(&half, 2 * i, "model", cap - 2 - 2 * i);
		table_name(&half, 2 * i + 1, "second", i);
	}
	assert_int_equal(reload(&live, &half, most), cap / 2);
	ids = new_ids(&half, &n);
	for (k = 0; k < n; k++)
		assert_int_equal(ids[k], cap + 1 + k);
	free(ids);

	/* Half of the second ones replaced: the new ones take the ids the odd models freed at
	 * the last load, lowest first (model-1's 2, model-3's 4, ...). */
	table_init(&more, cap);
	for (i = 0; i < cap / 2; i++)
		table_name(&more, i, "model", 2 * i);
	for (i = 0; i < cap / 4; i++) {
		table_name(&more, cap / 2 + i, "second", i);
		table_name(&more, cap / 2 + cap / 4 + i, "third", i);
	}
	assert_int_equal(reload(&live, &more, most), cap / 4);
	ids = new_ids(&more, &n);
	for (k = 0; k < n; k++)
		assert_int_equal(ids[k], 2 * k + 2);
	free(ids);

	/* All 4,096 replaced by new ones: they take the 4,096 ids up to 8,192 that no live name
	 * holds. Then replaced again: the next ones take exactly the ids the first table held. */
	before = calloc(cap, sizeof(*before));
	assert_non_null(before);
	memcpy(before, live.ids, cap * sizeof(*before));
	qsort(before, cap, sizeof(*before), compare_u32);
	table_init(&fresh, cap);
	for (i = 0; i < cap; i++)
		table_name(&fresh, i, "fourth", i);
	assert_int_equal(reload(&live, &fresh, most), cap);
	table_init(&fresh2, cap);
	for (i = 0; i < cap; i++)
		table_name(&fresh2, i, "fifth", i);
	assert_int_equal(reload(&live, &fresh2, most), cap);
	ids = new_ids(&fresh2, &n);
	assert_int_equal(n, cap);
	assert_memory_equal(ids, before, cap * sizeof(*ids));
	free(ids);
	free(before);

	table_free(&a);
	table_free(&same);
	table_free(&half);
	table_free(&more);
	table_free(&fresh);
	table_free(&fresh2);
	map_free(&live);
}

/* Accounts: a large table reloaded with a third gone and a third new. */
static void test_large_account_set(void **state)
{
	const size_t n = 150000;
	struct names_map live = { 0 };
	struct table a, b;
	size_t i, k, nr;
	__u32 *ids;

	(void)state;
	table_init(&a, n);
	for (i = 0; i < n; i++)
		table_name(&a, i, "acct", i);
	assert_int_equal(reload(&live, &a, 2 * n), n);

	/* Keep accounts 0, 1, 3, 4, 6, ... (every third goes), add n / 3 new ones. */
	table_init(&b, n);
	for (i = 0, k = 0; i < n; i++)
		if (i % 3 != 2)
			table_name(&b, k++, "acct", i);
	for (i = 0; k < n; i++)
		table_name(&b, k++, "new", i);
	assert_int_equal(reload(&live, &b, 2 * n), n / 3);
	ids = new_ids(&b, &nr);
	for (k = 0; k < nr; k++)
		assert_int_equal(ids[k], n + 1 + k);
	free(ids);
	table_free(&a);
	table_free(&b);
	map_free(&live);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_example),
		cmocka_unit_test(test_range_exhausted),
		cmocka_unit_test(test_index_plans_as_plan_ids),
		cmocka_unit_test(test_sort_ids),
		cmocka_unit_test(test_models_at_the_cap),
		cmocka_unit_test(test_large_account_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
