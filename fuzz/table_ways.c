// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tier table's two ways in (user/tiers.c) on arbitrary bytes: rls_table_parse(), which
 * scans the accounts straight from the text where it can, and jansson's parse of the whole
 * (RLS_PARSE_JANSSON). Property: both accept the same texts and make the same table of them,
 * and refuse the others with the same message.
 */
#include "fuzz.h"
#include "tiers.h"
#include "../tests/lib/table_difference.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rls_table any, jansson;
	char err_any[1024], err_jansson[1024];
	const char *differs;
	int ret;

	ret = rls_table_parse("fuzz.json", (const char *)data, size, &any, err_any,
			      sizeof(err_any));
	FUZZ_CHECK(rls_table_parse_by(RLS_PARSE_JANSSON, "fuzz.json", (const char *)data, size,
				      &jansson, err_jansson, sizeof(err_jansson)) == ret,
		   "the scan's way returned %d", ret);
	if (ret) {
		FUZZ_CHECK(!strcmp(err_any, err_jansson), "\"%s\" against jansson's \"%s\"",
			   err_any, err_jansson);
	} else {
		differs = rls_table_difference(&any, &jansson);
		FUZZ_CHECK(!differs, "the tables differ in %s", differs);
	}
	rls_table_free(&any);
	rls_table_free(&jansson);
	return 0;
}
