// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "opts.h"
#include "tiers.h"

struct check_request {
	const char *file;
};

static const struct rls_cmd_spec check_spec = {
	.name = "check",
	.operand = "FILE",
	.operand_offset = offsetof(struct check_request, file),
	.description =
		"Validates the tier table FILE and exits: 0 when it is valid, 1 with one line\n"
		"naming the file, the field (or line and column) and the fix when it is not.\n"
		"Nothing is loaded or changed.\n",
};

int rls_cmd_check(int argc, char **argv)
{
	struct check_request req = { 0 };
	struct rls_table table;
	char err[1024];
	size_t keys = 0, cidrs = 0, i;
	enum rls_opts_result ret;

	ret = rls_opts_parse(&check_spec, argc, argv, &req);
	if (ret != RLS_OPTS_OK)
		return rls_opts_exit_code(ret);
	if (rls_table_load(req.file, &table, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (i = 0; i < table.nr_accounts; i++) {
		keys += table.accounts[i].nr_keys;
		cidrs += table.accounts[i].nr_cidrs;
	}
	printf("%s: valid: %zu tiers, %zu accounts, %zu keys, %zu CIDRs\n", req.file,
	       table.nr_tiers, table.nr_accounts, keys, cidrs);
	rls_table_free(&table);
	return 0;
}
