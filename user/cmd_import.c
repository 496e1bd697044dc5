// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * `rlshape import`: the command around user/import_csv.c; reading the file and writing the
 * table.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "import_csv.h"

#define IMPORT_MAX_FILE (64u << 20) /* bytes of CSV read at most */

struct import_request {
	const char *csv;
	const char *output;
	struct import_opts opts;
};

static const struct rls_opt import_opts_table[] = {
	{ .long_name = "model-column", .kind = RLS_OPT_STRING, .metavar = "NAME",
	  .what = "the header of a column", .help = "the header of the model names (default: model)",
	  .offset = offsetof(struct import_request, opts.model_column) },
	{ .long_name = "tier-column", .kind = RLS_OPT_STRING, .metavar = "NAME",
	  .what = "the header of a column", .help = "the header of the tier names (default: tier)",
	  .offset = offsetof(struct import_request, opts.tier_column) },
	{ .long_name = "listen-port", .kind = RLS_OPT_UINT_LIST, .metavar = "N",
	  .what = "a TCP port", .min = 1, .max = 65535, .list_max = RLS_MAX_PORTS,
	  .help = "listen.ports in the table; repeat for up to 8 (default 8000)",
	  .offset = offsetof(struct import_request, opts.ports),
	  .count_offset = offsetof(struct import_request, opts.nr_ports) },
	{ .long_name = "default-tier", .kind = RLS_OPT_STRING, .metavar = "NAME",
	  .what = "a tier name", .help = "the tier of unknown clients (default: they pass unlimited)",
	  .offset = offsetof(struct import_request, opts.default_tier) },
	{ .long_name = "output", .short_name = 'o', .kind = RLS_OPT_STRING, .metavar = "FILE",
	  .what = "a file name, or - for standard output",
	  .help = "write the table to FILE, replacing it whole (without -o,\n"
		  "or with -o -: to standard output)",
	  .offset = offsetof(struct import_request, output) },
	{ NULL },
};

static const struct rls_cmd_spec import_spec = {
	.name = "import",
	.operand = "FILE.csv",
	.operand_offset = offsetof(struct import_request, csv),
	.description =
		"Turns a vendor's rate-limit table, saved as CSV, into a tiers.json for rlshape.\n"
		"\n"
		"The first row names the columns (case-insensitive):\n"
		"  model          model name (at most 63 bytes), or * for every other model\n"
		"  tier           tier name (at most 63 bytes)\n"
		"  rps rpm rph rpd tpm tpd concurrency burst\n"
		"                 limits, as in tiers.json\n"
		"  #anything      a note: the column is not read\n"
		"A limit cell holds digits (1500000 or \"1,500,000\", quoted because of the\n"
		"commas), Unlimited, or - for no limit. An empty cell repeats the cell above it\n"
		"(as the vendors' merged cells do); in the first row, an empty limit means no\n"
		"limit, and the model and tier must be written. Rows of empty cells are skipped.\n"
		"\n"
		"The table has no accounts: add them, then `rlshape check FILE`. Errors name the\n"
		"file, line, column and header (\"x.csv:7:3 (rpm): ...\") and exit 1. The table\n"
		"is written only once rlshape's own parser (that of `check`) accepts it.\n",
	.opts = import_opts_table,
};

static int read_all(const char *path, char **text, size_t *len, char *err, size_t err_len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	struct stat stbuf;

	if (!buf) {
		snprintf(err, err_len, "rlshape import: out of memory");
		goto fail;
	}
	if (fd < 0) {
		snprintf(err, err_len, "rlshape import: cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!fstat(fd, &stbuf) && S_ISDIR(stbuf.st_mode)) {
		snprintf(err, err_len, "rlshape import: %s is a directory; give the CSV file", path);
		goto fail;
	}
	for (;;) {
		ssize_t got;

		if (n == cap) {
			char *bigger;

			if (cap >= IMPORT_MAX_FILE) {
				snprintf(err, err_len, "rlshape import: %s is larger than %u MiB: this is "
					 "not a tier table", path, IMPORT_MAX_FILE >> 20);
				goto fail;
			}
			bigger = realloc(buf, 2 * cap);
			if (!bigger) {
				snprintf(err, err_len, "rlshape import: out of memory");
				goto fail;
			}
			buf = bigger;
			cap *= 2;
		}
		got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(err, err_len, "rlshape import: cannot read %s: %s", path,
				 strerror(errno));
			goto fail;
		}
		if (!got)
			break;
		n += (size_t)got;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	*text = buf;
	*len = n;
	return 0;
fail:
	if (fd >= 0 && fd != STDIN_FILENO)
		close(fd);
	free(buf);
	return -1;
}

/* Write through a temporary file and rename: never a half-written table. */
static int write_file(const char *path, const char *text)
{
	size_t len = strlen(text), off = 0;
	char *tmp = NULL;
	int fd;

	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
		fprintf(stderr, "rlshape import: out of memory\n");
		return -1;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		fprintf(stderr, "rlshape import: cannot create %s: %s\n", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		off += (size_t)n;
	}
	if (fchmod(fd, 0644) || fsync(fd))
		goto fail;
	if (close(fd)) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path))
		goto fail;
	free(tmp);
	return 0;
fail:
	fprintf(stderr, "rlshape import: cannot write %s: %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

int rls_cmd_import(int argc, char **argv)
{
	struct import_request req = { 0 };
	struct import_stats stats = { 0 };
	char err[2048], *text = NULL, *json = NULL;
	enum rls_opts_result parsed;
	size_t len = 0;

	parsed = rls_opts_parse(&import_spec, argc, argv, &req);
	if (parsed != RLS_OPTS_OK)
		return rls_opts_exit_code(parsed);
	if (read_all(req.csv, &text, &len, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (rls_import(strcmp(req.csv, "-") ? req.csv : "<stdin>", text, len, &req.opts, &json,
		       &stats, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		free(text);
		return 1;
	}
	free(text);
	if (req.output && strcmp(req.output, "-")) {
		if (write_file(req.output, json)) {
			free(json);
			return 1;
		}
		fprintf(stderr, "%s: %zu row%s, %zu tier%s, %zu model%s -> %s\n", req.csv,
			stats.rows, stats.rows == 1 ? "" : "s", stats.tiers,
			stats.tiers == 1 ? "" : "s", stats.models, stats.models == 1 ? "" : "s",
			req.output);
	} else if (fputs(json, stdout) == EOF || fflush(stdout)) {
		fprintf(stderr, "rlshape import: cannot write the table: %s\n", strerror(errno));
		free(json);
		return 1;
	}
	free(json);
	return 0;
}
