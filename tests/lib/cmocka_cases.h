/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The table-driven unit suites' main(): their fixed tests, then one test a row of each table of
 * cases, each named by its row's name and given the row as its state. Include after cmocka.h.
 */
#ifndef RLS_TESTS_CMOCKA_CASES_H
#define RLS_TESTS_CMOCKA_CASES_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

struct case_table {
	CMUnitTestFunction test;  /* run once a row */
	const void *rows;
	size_t row_size, nr_rows;
	size_t name_offset;       /* where each row keeps its const char *name */
};

/* rows is an array whose elements have a member name. */
#define CASE_TABLE(test, rows)                                                                 \
	{ test, rows, sizeof((rows)[0]), ARRAY_SIZE(rows), offsetof(__typeof__((rows)[0]), name) }

static inline int run_tests_and_cases(const char *group, const struct CMUnitTest *fixed,
				      size_t nr_fixed, const struct case_table *tables,
				      size_t nr_tables)
{
	struct CMUnitTest *tests;
	size_t n = nr_fixed, i, j;
	int ret;

	for (i = 0; i < nr_tables; i++)
		n += tables[i].nr_rows;
	tests = calloc(n, sizeof(*tests));
	if (!tests)
		return 1;
	cmocka_set_message_output(CM_OUTPUT_TAP);
	memcpy(tests, fixed, nr_fixed * sizeof(*tests));
	n = nr_fixed;
	for (i = 0; i < nr_tables; i++) {
		for (j = 0; j < tables[i].nr_rows; j++, n++) {
			const char *row = (const char *)tables[i].rows + j * tables[i].row_size;

			memcpy(&tests[n].name, row + tables[i].name_offset, sizeof(const char *));
			tests[n].test_func = tables[i].test;
			tests[n].initial_state = (void *)row;
		}
	}
	ret = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
	free(tests);
	return ret;
}

/* RUN_TESTS_AND_CASES(group, fixed, CASE_TABLE(test, rows)...): fixed is an array too. */
#define RUN_TESTS_AND_CASES(group, fixed, ...)                                                 \
	({                                                                                     \
		static const struct case_table tables_[] = { __VA_ARGS__ };                    \
		run_tests_and_cases(group, fixed, ARRAY_SIZE(fixed), tables_,                  \
				    ARRAY_SIZE(tables_));                                      \
	})

#endif /* RLS_TESTS_CMOCKA_CASES_H */
