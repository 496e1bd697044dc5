// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The importer's CSV reader (user/import_csv.c, what `rlshape import` runs) on arbitrary CSV. The first byte of the input picks the
 * options (column names, default tier, ports), the rest is the file. Properties:
 *
 *   - a refused file gives one line naming the file and, where it names a line, one of the
 *     file's lines;
 *   - an accepted file's tiers.json is accepted by rlshape's own parser (what `rlshape check`
 *     and `load` run), with the tiers, entries and default tier the importer counted;
 *   - importing is deterministic: the same bytes twice.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import_csv.h"
#include "tiers.h"

#include "fuzz.h"

#define FILE_NAME "t.csv"

static const char *const model_columns[] = { NULL, "Model ID", "Mode Name", "Model" };
static const char *const tier_columns[] = { NULL, "Tier Name", "User Level", "tier" };
static const char *const default_tiers[] = { NULL, "free", "Tier0", "global", "Tier 1",
					     "sambacloud", "*", "" };

static void options(unsigned char b, struct import_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->model_column = model_columns[b & 3];
	o->tier_column = tier_columns[(b >> 2) & 3];
	o->default_tier = default_tiers[(b >> 4) & 7];
	if (b & 0x80) {
		o->ports[0] = 8000;
		o->ports[1] = 8443;
		o->nr_ports = 2;
	}
}

/* Lines as the reader counts them: LF, CR and CRLF each end one. */
static unsigned text_lines(const char *text, size_t len)
{
	unsigned lines = 1;
	size_t i;

	for (i = 0; i < len; i++)
		if (text[i] == '\n' || (text[i] == '\r' && (i + 1 == len || text[i + 1] != '\n')))
			lines++;
	return lines;
}

static void check_error(const char *err, const char *text, size_t len)
{
	const char *p = err + strlen(FILE_NAME) + 1;
	unsigned long line;
	char *end;

	FUZZ_CHECK(fuzz_one_line_about(err, FILE_NAME), "%s", err);
	if (*p == ' ')
		return;
	line = strtoul(p, &end, 10);
	FUZZ_CHECK(end != p && (*end == ':' || *end == ' ') && line >= 1 &&
		   line <= text_lines(text, len), "names a line of the file (%u lines): %s",
		   text_lines(text, len), err);
}

static void check_loads(const char *json, const struct import_stats *stats,
			const struct import_opts *o)
{
	struct rls_table t;
	size_t i, entries = 0;
	char err[1024];

	if (rls_table_parse("tiers.json", json, strlen(json), &t, err, sizeof(err)))
		fuzz_fail("rlshape refuses the imported table: %s\n%s", err, json);
	for (i = 0; i < t.nr_tiers; i++) {
		const struct rls_tier *tier = &t.tiers[i];

		/* The "*" rlshape adds to a tier that names none is not one of the file's. */
		entries += tier->nr_entries;
		if (!strcmp(tier->entries[tier->nr_entries - 1].model, "*") &&
		    !tier->entries[tier->nr_entries - 1].limits.bytes_per_token)
			entries--;
	}
	FUZZ_CHECK(t.nr_tiers == stats->tiers && entries == stats->entries,
		   "%zu tiers, %zu entries loaded; %zu, %zu imported", t.nr_tiers, entries,
		   stats->tiers, stats->entries);
	FUZZ_CHECK(o->default_tier ? t.default_tier >= 0 &&
		   !strcmp(t.tiers[t.default_tier].name, o->default_tier) : t.default_tier == -1,
		   "the default tier");
	rls_table_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct import_stats stats, stats2;
	struct import_opts o;
	char err[2048], err2[2048], *json, *json2;
	const char *text;
	size_t len;
	int ret;

	if (size < 1)
		return 0;
	options(data[0], &o);
	text = (const char *)data + 1;
	len = size - 1;

	ret = rls_import(FILE_NAME, text, len, &o, &json, &stats, err, sizeof(err));
	FUZZ_CHECK(rls_import(FILE_NAME, text, len, &o, &json2, &stats2, err2, sizeof(err2)) ==
		   ret, "the same answer twice");
	if (ret) {
		FUZZ_CHECK(!json && !strcmp(err, err2), "the same message twice");
		check_error(err, text, len);
		return 0;
	}
	FUZZ_CHECK(json && json2 && !strcmp(json, json2), "the same table twice");
	check_loads(json, &stats, &o);
	free(json);
	free(json2);
	return 0;
}
