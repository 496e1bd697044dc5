// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "tiers.h"

static void usage(FILE *out)
{
	fprintf(out, "Usage: rlshape check FILE\n\n"
		     "Validates the tier table FILE and exits: 0 when it is valid, 1 with one line\n"
		     "naming the file, the field (or line and column) and the fix when it is not.\n"
		     "Nothing is loaded or changed.\n");
}

int rls_cmd_check(int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	struct rls_table table;
	char err[1024];
	size_t keys = 0, cidrs = 0, i;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		usage(stderr);
		return 2;
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (rls_table_load(argv[optind], &table, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (i = 0; i < table.nr_accounts; i++) {
		keys += table.accounts[i].nr_keys;
		cidrs += table.accounts[i].nr_cidrs;
	}
	printf("%s: valid: %zu tiers, %zu accounts, %zu keys, %zu CIDRs\n", argv[optind],
	       table.nr_tiers, table.nr_accounts, keys, cidrs);
	rls_table_free(&table);
	return 0;
}
