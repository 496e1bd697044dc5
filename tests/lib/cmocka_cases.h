/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The table-driven unit suites' main(): their fixed tests, then one test a row of a table of
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

/* name_offset: where each row (case_size bytes) keeps its const char *name. */
static inline int run_tests_and_cases(const char *group, const struct CMUnitTest *fixed,
				      size_t nr_fixed, CMUnitTestFunction case_test,
				      const void *cases, size_t case_size, size_t nr_cases,
				      size_t name_offset)
{
	struct CMUnitTest *tests = calloc(nr_fixed + nr_cases, sizeof(*tests));
	size_t i;
	int ret;

	if (!tests)
		return 1;
	cmocka_set_message_output(CM_OUTPUT_TAP);
	memcpy(tests, fixed, nr_fixed * sizeof(*tests));
	for (i = 0; i < nr_cases; i++) {
		const char *row = (const char *)cases + i * case_size;

		memcpy(&tests[nr_fixed + i].name, row + name_offset, sizeof(const char *));
		tests[nr_fixed + i].test_func = case_test;
		tests[nr_fixed + i].initial_state = (void *)row;
	}
	ret = _cmocka_run_group_tests(group, tests, nr_fixed + nr_cases, NULL, NULL);
	free(tests);
	return ret;
}

/* fixed and cases are arrays; each element of cases has a member name. */
#define RUN_TESTS_AND_CASES(group, fixed, case_test, cases)                                  \
	run_tests_and_cases(group, fixed, ARRAY_SIZE(fixed), case_test, cases,               \
			    sizeof((cases)[0]), ARRAY_SIZE(cases),                           \
			    offsetof(__typeof__((cases)[0]), name))

#endif /* RLS_TESTS_CMOCKA_CASES_H */
