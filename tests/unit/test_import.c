// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * `rlshape import`: CSV tier tables in, tiers.json out (user/import_csv.c). Every good table's
 * output is also parsed with rls_table_parse(), the parser `rlshape check` and `rlshape load`
 * use, and every broken table's message is compared in full: file, line, column, header,
 * problem, fix.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../lib/cmocka_cases.h"

#include "import_csv.h"
#include "tiers.h"


#define A8  "aaaaaaaa"
#define A63 A8 A8 A8 A8 A8 A8 A8 "aaaaaaa"
#define A64 A63 "a"

static const struct import_opts defaults;

/* ---- helpers ---- */

static char *import_ok(const char *csv, size_t len, const struct import_opts *o)
{
	char err[2048], *json = NULL;
	struct import_stats stats;

	if (rls_import("t.csv", csv, len, o ? o : &defaults, &json, &stats, err, sizeof(err)))
		fail_msg("unexpected error: %s", err);
	assert_non_null(json);
	return json;
}

static char *import_str(const char *csv, const struct import_opts *o)
{
	return import_ok(csv, strlen(csv), o);
}

/* The generated table must be one that rlshape itself accepts. */
/*
 * The table in jansson's compact form, for comparing content without the layout (the
 * importer writes it indented). Valid until the next call.
 */
static const char *compact(const char *json)
{
	static char *last;
	json_error_t jerr;
	json_t *root = json_loads(json, 0, &jerr);

	free(last);
	if (!root)
		fail_msg("the importer wrote JSON jansson cannot read: %s\n%s", jerr.text, json);
	last = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	assert_non_null(last);
	return last;
}

static void parse_json(const char *json, struct rls_table *t)
{
	char err[1024];

	if (rls_table_parse("tiers.json", json, strlen(json), t, err, sizeof(err)))
		fail_msg("rlshape rejects the generated table: %s\n%s", err, json);
}

static const struct rls_tier *tier_of(const struct rls_table *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->nr_tiers; i++)
		if (!strcmp(t->tiers[i].name, name))
			return &t->tiers[i];
	fail_msg("no tier \"%s\"", name);
	return NULL;
}

/* The entry the file names for model in tier: not the "*" fallback. */
static const struct rls_limits *entry_of(const struct rls_table *t, const char *tier,
					 const char *model)
{
	const struct rls_tier *tr = tier_of(t, tier);
	size_t i;

	for (i = 0; i < tr->nr_entries; i++)
		if (!strcmp(tr->entries[i].model, model))
			return &tr->entries[i].limits;
	fail_msg("no model \"%s\" in tier \"%s\"", model, tier);
	return NULL;
}

static void assert_limits(const struct rls_limits *l, __u32 rps, __u32 rpm, __u32 rph,
			  __u32 rpd, __u64 tpm, __u64 tpd, __u32 concurrency)
{
	assert_int_equal(l->rps, rps);
	assert_int_equal(l->rpm, rpm);
	assert_int_equal(l->rph, rph);
	assert_int_equal(l->rpd, rpd);
	assert_true(l->tpm == tpm);
	assert_true(l->tpd == tpd);
	assert_int_equal(l->concurrency, concurrency);
}

#define U  RLS_UNLIMITED
#define UT RLS_TOKENS_UNLIMITED

/* ---- good tables ---- */

/* Moonshot's table as the seed prints it: the exact output, and what rlshape makes of it. */
static void test_moonshot_exact_output(void **state)
{
	static const char csv[] =
		"User Level,# Cumulative Recharge Amount,Concurrency,RPM,TPM,TPD,Model\n"
		"Tier0,$1,1,3,\"500,000\",\"1,500,000\",*\n"
		"Tier1,$10,50,200,\"2,000,000\",Unlimited,\n"
		"Tier5,\"$3,000\",\"1,000\",\"10,000\",\"5,000,000\",UNLIMITED,\n";
	static const char want[] =
		"{\"listen\":{\"ports\":[8000]},\"tiers\":{"
		"\"Tier0\":{\"*\":{\"rpm\":3,\"tpm\":500000,\"tpd\":1500000,\"concurrency\":1}},"
		"\"Tier1\":{\"*\":{\"rpm\":200,\"tpm\":2000000,\"tpd\":\"unlimited\","
		"\"concurrency\":50}},"
		"\"Tier5\":{\"*\":{\"rpm\":10000,\"tpm\":5000000,\"tpd\":\"unlimited\","
		"\"concurrency\":1000}}},"
		"\"default_tier\":\"Tier0\"}";
	/* The layout: jansson's, two spaces a level, one line a value, a final newline. */
	static const char want_start[] = "{\n  \"listen\": {\n    \"ports\": [\n      8000\n";
	struct import_opts o = { .tier_column = "user level", .default_tier = "Tier0" };
	struct rls_table t;
	char *json = import_str(csv, &o);

	(void)state;
	assert_string_equal(compact(json), want);
	assert_memory_equal(json, want_start, strlen(want_start));
	assert_string_equal(json + strlen(json) - 3, "\n}\n");
	parse_json(json, &t);
	assert_int_equal(t.nr_tiers, 3);
	assert_int_equal(t.nr_accounts, 0);
	assert_int_equal(t.default_tier, 0);
	assert_limits(entry_of(&t, "Tier0", "*"), U, 3, U, U, 500000, 1500000, 1);
	assert_limits(entry_of(&t, "Tier1", "*"), U, 200, U, U, 2000000, UT, 50);
	assert_limits(entry_of(&t, "Tier5", "*"), U, 10000, U, U, 5000000, UT, 1000);
	/* rpm's smoothing at its default: a second's worth. */
	assert_int_equal(entry_of(&t, "Tier5", "*")->burst, 10000 / 60);
	rls_table_free(&t);
	free(json);
}

/*
 * Blank cells repeat the cell above, as the merged cells of Model Studio's tables do: across
 * models, and for the tier; "-" is no limit, and blanks below it repeat "no limit".
 */
static void test_blank_cells_repeat_the_row_above(void **state)
{
	static const char csv[] =
		"tier,model,rpm,tpm,rps\n"
		"international,qwen-plus-2025-12-01,120,\"1,000,000\",\n" /* first row: no rps */
		",qwen-plus-2025-09-11,120,,\n"           /* tpm merged */
		",qwen-plus-2025-07-28,60,\"100,000\",\n"
		",qwen-plus-2025-07-14,,,\n"              /* both merged */
		",qwen-plus-2025-04-28,,\"1,000,000\",\n" /* rpm merged */
		",qwen-image,-,-,2\n"                     /* "-": no limit */
		",qwen-image-edit,,,\n"                   /* repeats "no limit" and rps 2 */
		"global,qwen-plus-2025-12-01,,,-\n"       /* a new tier: blank still repeats */
		",,,,\n"                                  /* a blank row is skipped */
		"\n"
		",qwen-flash,600,,\n";
	struct rls_table t;
	char *json = import_str(csv, NULL);

	(void)state;
	parse_json(json, &t);
	assert_int_equal(t.nr_tiers, 2);
	assert_int_equal(tier_of(&t, "international")->nr_entries, 7 + 1); /* + implicit "*" */
	assert_limits(entry_of(&t, "international", "qwen-plus-2025-12-01"), U, 120, U, U,
		      1000000, UT, U);
	assert_limits(entry_of(&t, "international", "qwen-plus-2025-09-11"), U, 120, U, U,
		      1000000, UT, U);
	assert_limits(entry_of(&t, "international", "qwen-plus-2025-07-28"), U, 60, U, U,
		      100000, UT, U);
	assert_limits(entry_of(&t, "international", "qwen-plus-2025-07-14"), U, 60, U, U,
		      100000, UT, U);
	assert_limits(entry_of(&t, "international", "qwen-plus-2025-04-28"), U, 60, U, U,
		      1000000, UT, U);
	assert_limits(entry_of(&t, "international", "qwen-image"), 2, U, U, U, UT, UT, U);
	assert_limits(entry_of(&t, "international", "qwen-image-edit"), 2, U, U, U, UT, UT, U);
	assert_limits(entry_of(&t, "global", "qwen-plus-2025-12-01"), U, U, U, U, UT, UT, U);
	assert_limits(entry_of(&t, "global", "qwen-flash"), U, 600, U, U, UT, UT, U);
	/* "-" leaves the field out of the table. */
	assert_non_null(strstr(compact(json), "\"qwen-image\":{\"rps\":2}"));
	rls_table_free(&t);
	free(json);
}

/* An empty model cell repeats the model above: one model, several tiers (GMI's layout). */
static void test_blank_model_repeats_across_tiers(void **state)
{
	static const char csv[] =
		"Mode Name,Tier Name,TPM\n"
		"deepseek-ai/DeepSeek-R1,Tier 1,\"30,000\"\n"
		",Tier 2,\"450,000\"\n"
		",Tier 3,\n";
	struct import_opts o = { .model_column = "mode name", .tier_column = "TIER NAME" };
	struct rls_table t;
	char *json = import_str(csv, &o);

	(void)state;
	parse_json(json, &t);
	assert_int_equal(t.nr_tiers, 3);
	assert_true(entry_of(&t, "Tier 1", "deepseek-ai/DeepSeek-R1")->tpm == 30000);
	assert_true(entry_of(&t, "Tier 2", "deepseek-ai/DeepSeek-R1")->tpm == 450000);
	assert_true(entry_of(&t, "Tier 3", "deepseek-ai/DeepSeek-R1")->tpm == 450000);
	rls_table_free(&t);
	free(json);
}

/* Quotes, escaped quotes, commas and line breaks inside quoted cells; JSON escaping. */
static void test_quoted_cells(void **state)
{
	static const char csv[] =
		"\"model\",\"tier\",\"rpm\",\"# note\"\n"
		"\"org/a \"\"quoted\"\", model\",\"gold tier\",\"60\",\"a note\nover two lines, "
		"with \"\"quotes\"\"\"\n"
		"back\\slash,gold tier,\"1,000\",\n"
		"\"\",\"\",\"\",\"\"\n"   /* all blank: skipped */
		"\"\",\"other\",7,\n";    /* blank model in quotes: repeats the one above */
	struct rls_table t;
	char *json = import_str(csv, NULL);

	(void)state;
	assert_non_null(strstr(json, "\"org/a \\\"quoted\\\", model\":"));
	assert_non_null(strstr(json, "\"back\\\\slash\":"));
	assert_null(strstr(json, "note"));
	parse_json(json, &t);
	assert_int_equal(entry_of(&t, "gold tier", "org/a \"quoted\", model")->rpm, 60);
	assert_int_equal(entry_of(&t, "gold tier", "back\\slash")->rpm, 1000);
	assert_int_equal(entry_of(&t, "other", "back\\slash")->rpm, 7);
	rls_table_free(&t);
	free(json);
}

/* CRLF line ends (as spreadsheets export them) give the same bytes as LF. */
static void test_crlf_same_as_lf(void **state)
{
	static const char lf[] =
		"model,tier,rpm,rpd\n"
		"DeepSeek-R1,free,60,\"12,000\"\n"
		"\"Qwen3-32B\",,30,6000\n";
	static const char crlf[] =
		"model,tier,rpm,rpd\r\n"
		"DeepSeek-R1,free,60,\"12,000\"\r\n"
		"\"Qwen3-32B\",,30,6000\r\n";
	static const char crlf_no_final_newline_bom[] =
		"\xef\xbb\xbfmodel,tier,rpm,rpd\r\n"
		"DeepSeek-R1,free,60,\"12,000\"\r\n"
		"\"Qwen3-32B\",,30,6000";
	char *a = import_str(lf, NULL), *b = import_str(crlf, NULL);
	char *c = import_str(crlf_no_final_newline_bom, NULL);

	(void)state;
	assert_string_equal(a, b);
	assert_string_equal(a, c);
	assert_null(strchr(a, '\r'));
	free(a);
	free(b);
	free(c);
}

/* Same CSV, same bytes; tiers and models in the order they first appear. */
static void test_deterministic_first_appearance_order(void **state)
{
	static const char csv[] =
		"tier,model,rpm\n"
		"zeta,m2,1\n"
		"alpha,m9,2\n"
		"zeta,m1,3\n"
		"alpha,m0,4\n";
	char *a = import_str(csv, NULL), *b = import_str(csv, NULL);
	const char *zeta = strstr(a, "\"zeta\""), *alpha = strstr(a, "\"alpha\"");

	(void)state;
	assert_string_equal(a, b);
	assert_non_null(zeta);
	assert_non_null(alpha);
	assert_true(zeta < alpha);
	assert_true(strstr(a, "\"m2\"") < strstr(a, "\"m1\""));
	assert_true(strstr(a, "\"m9\"") < strstr(a, "\"m0\""));
	free(a);
	free(b);
}

static void test_options_ports_default_tier(void **state)
{
	static const char csv[] = "model,tier,rpm\n*,free,3\n*,paid,600\n";
	struct import_opts o = { .default_tier = "free", .ports = { 8000, 8443, 80 },
				 .nr_ports = 3 };
	struct rls_table t;
	char *json = import_str(csv, &o);

	(void)state;
	assert_non_null(strstr(compact(json), "\"listen\":{\"ports\":[8000,8443,80]}"));
	parse_json(json, &t);
	assert_int_equal(t.nr_ports, 3);
	assert_int_equal(t.ports[2], 80);
	assert_int_equal(t.default_tier, 0);
	rls_table_free(&t);
	free(json);
}

/* The longest model name rlshape holds: 63 bytes. */
static void test_model_name_63_bytes(void **state)
{
	static const char csv[] = "model,tier,rpm\n" A63 ",t,1\n";
	struct rls_table t;
	char *json = import_str(csv, NULL);

	(void)state;
	parse_json(json, &t);
	assert_int_equal(entry_of(&t, "t", A63)->rpm, 1);
	rls_table_free(&t);
	free(json);
}

static void test_burst(void **state)
{
	static const char csv[] = "model,tier,rpm,burst\nm,t,600,600\nn,t,6,-\n";
	struct rls_table t;
	char *json = import_str(csv, NULL);

	(void)state;
	parse_json(json, &t);
	assert_int_equal(entry_of(&t, "t", "m")->burst, 600);
	assert_int_equal(entry_of(&t, "t", "n")->burst, 1);
	rls_table_free(&t);
	free(json);
}

/* ---- good tables: the limits each entry gets ---- */

struct want_entry {
	const char *tier, *model; /* NULL tier: no more entries */
	__u32 rps, rpm, rph, rpd;
	__u64 tpm, tpd;
	__u32 concurrency;
	__u32 burst;               /* 0: not looked at */
};

struct good_csv {
	const char *name;
	const char *csv;
	const char *json_has;      /* a part of the compact JSON, or NULL */
	struct want_entry want[3];
};

static const struct good_csv good_csvs[] = {
	/* Every limit column, in any order and case; fields come out in one fixed order. */
	{ "test_all_columns_fixed_order",
	  "Burst,CONCURRENCY,tpd,tpm,rpd,rph,rpm,rps,tier,model\n"
	  "5,7,8,9,10,11,60,1,t,m\n",
	  "\"m\":{\"rps\":1,\"rpm\":60,\"rph\":11,\"rpd\":10,\"burst\":5,"
	  "\"tpm\":9,\"tpd\":8,\"concurrency\":7}",
	  { { "t", "m", 1, 60, 11, 10, 9, 8, 7, 5 } } },
	{ "test_thousands_separators",
	  "model,tier,rpm,rpd,tpm,tpd\n"
	  "a,t,\"1,200\",\"4,294,967,294\",\"4,980,000,000\",\"9,223,372,036,854,775,807\"\n"
	  "b,t,1200,4294967294,4980000000,0\n"
	  "c,t, \"999\" ,\"0\",\"1,000\",7\n",
	  NULL,
	  { { "t", "a", U, 1200, U, 4294967294u, 4980000000ull, 9223372036854775807ull, U, 0 },
	    { "t", "b", U, 1200, U, 4294967294u, 4980000000ull, 0, U, 0 },
	    { "t", "c", U, 999, U, 0, 1000, 7, U, 0 } } },
	{ "test_unlimited_any_case",
	  "model,tier,rps,rpm,rph,rpd,tpm,tpd,concurrency\n"
	  "*,t,Unlimited,unlimited,UNLIMITED,uNlImItEd,Unlimited,Unlimited,Unlimited\n",
	  "\"rps\":\"unlimited\",\"rpm\":\"unlimited\"",
	  { { "t", "*", U, U, U, U, UT, UT, U, 0 } } },
	/* 0 admits nothing (Model Studio's retired models): it is written, not dropped. */
	{ "test_zero_is_a_limit",
	  "model,tier,rpm,tpm\nqwen2-72b-instruct,global,0,0\n",
	  "\"qwen2-72b-instruct\":{\"rpm\":0,\"tpm\":0}",
	  { { "global", "qwen2-72b-instruct", U, 0, U, U, 0, UT, U, 0 } } },
};

static void test_good_csv(void **state)
{
	const struct good_csv *g = *state;
	const struct want_entry *w;
	struct rls_table t;
	char *json = import_str(g->csv, NULL);

	if (g->json_has)
		assert_non_null(strstr(compact(json), g->json_has));
	assert_null(strstr(json, "default_tier")); /* none asked for */
	parse_json(json, &t);
	for (w = g->want; w < g->want + ARRAY_SIZE(g->want) && w->tier; w++) {
		assert_limits(entry_of(&t, w->tier, w->model), w->rps, w->rpm, w->rph, w->rpd,
			      w->tpm, w->tpd, w->concurrency);
		if (w->burst)
			assert_int_equal(entry_of(&t, w->tier, w->model)->burst, w->burst);
	}
	rls_table_free(&t);
	free(json);
}

/* ---- broken tables: the whole message ---- */

struct bad_csv {
	const char *name;
	const char *csv;
	size_t len; /* 0: strlen(csv) */
	struct import_opts opts;
	const char *want;
};

static const struct bad_csv bad_csvs[] = {
	{ "bad number", "model,tier,rpm\n*,Tier0,3\n*,Tier1,3O0\n", 0, { 0 },
	  "t.csv:3:3 (rpm): \"3O0\" is not a number; use digits, thousands separators or "
	  "Unlimited" },
	{ "bad number in a renamed column", "Model ID,RPM,tier\nx,\"60 rpm\",t\n", 0,
	  { .model_column = "Model ID" },
	  "t.csv:2:2 (RPM): \"60 rpm\" is not a number; use digits, thousands separators or "
	  "Unlimited" },
	{ "not a whole number", "model,tier,tpm\nm,t,1.5\n", 0, { 0 },
	  "t.csv:2:3 (tpm): \"1.5\" is not a whole number; use digits, thousands separators "
	  "or Unlimited" },
	{ "negative number", "model,tier,rpm,rpd\nm,t,60,-12000\n", 0, { 0 },
	  "t.csv:2:4 (rpd): \"-12000\" is negative; a limit is 0 or more (0 admits nothing), "
	  "Unlimited, or - for no limit" },
	{ "misplaced thousands separators", "model,tier,tpm\nm,t,\"1,50,000\"\n", 0, { 0 },
	  "t.csv:2:3 (tpm): \"1,50,000\" has misplaced thousands separators; group the digits "
	  "in threes (150,000) or leave the separators out" },
	{ "separator at the start", "model,tier,tpm\nm,t,\",500\"\n", 0, { 0 },
	  "t.csv:2:3 (tpm): \",500\" has misplaced thousands separators; group the digits "
	  "in threes (500) or leave the separators out" },
	{ "request limit too large", "model,tier,rpm\nm,t,\"4,294,967,295\"\n", 0, { 0 },
	  "t.csv:2:3 (rpm): \"4,294,967,295\" is too large: rpm can be at most 4,294,967,294; "
	  "use Unlimited for no limit" },
	{ "token limit too large", "model,tier,tpd\nm,t,99999999999999999999999\n", 0, { 0 },
	  "t.csv:2:3 (tpd): \"99999999999999999999999\" is too large: tpd can be at most "
	  "9,223,372,036,854,775,807; use Unlimited for no limit" },
	{ "unknown column", "model,tier,rpm,rmp\nm,t,1,2\n", 0, { 0 },
	  "t.csv:1:4 (rmp): unknown column \"rmp\"; the columns are model (model names, or "
	  "--model-column NAME), tier (tier names, or --tier-column NAME) and rps, rpm, rph, "
	  "rpd, tpm, tpd, concurrency, burst; start a header with # to keep a column of notes" },
	{ "missing model column", "tier,rpm,tpm\nt,1,2\n", 0, { 0 },
	  "t.csv:1: no \"model\" column in the header (tier, rpm, tpm); name the column of "
	  "model names \"model\", or pass --model-column NAME (a tier that applies to every "
	  "model has the model *)" },
	{ "model column renamed but absent", "model,tier,rpm\nm,t,1\n", 0,
	  { .model_column = "Model ID" },
	  "t.csv:1:1 (model): unknown column \"model\"; the columns are Model ID (model names, "
	  "or --model-column NAME), tier (tier names, or --tier-column NAME) and rps, rpm, rph, "
	  "rpd, tpm, tpd, concurrency, burst; start a header with # to keep a column of notes" },
	{ "missing tier column", "\n\nmodel,rpm\nm,1\n", 0, { 0 },
	  "t.csv:3: no \"tier\" column in the header (model, rpm); name the column of tier "
	  "names \"tier\", or pass --tier-column NAME" },
	{ "duplicate column", "model,tier,RPM,rpm\nm,t,1,2\n", 0, { 0 },
	  "t.csv:1:4 (rpm): column \"rpm\" appears twice (also column 3); keep one" },
	{ "unnamed column", "model,,rpm,tier\nm,x,1,t\n", 0, { 0 },
	  "t.csv:1:2: column 2 has no name in the header row; name it (model, tier, rps, rpm, "
	  "rph, rpd, tpm, tpd, concurrency, burst, or #note for a column to ignore) or delete it" },
	{ "ragged row: too few cells", "model,tier,rpm,tpm\nm,t,1,2\nn,t,3\n", 0, { 0 },
	  "t.csv:3:4 (tpm): the row ends after 3 cells, the header has 4 columns; add the "
	  "missing cells (an empty cell repeats the cell above)" },
	{ "ragged row: unquoted thousands separator", "model,tier,tpm\nm,t,1,500,000\n", 0,
	  { 0 },
	  "t.csv:2:4: the row has 5 cells, the header has 3 columns; remove the extra cells, "
	  "and quote any cell that holds a comma (\"1,500,000\")" },
	{ "unterminated quote", "model,tier,rpm\nm,t,1\n\"n,t,2\nk,t,3\n", 0, { 0 },
	  "t.csv:3:1: unterminated quoted cell: the quote that opens it is never closed; end "
	  "the cell with \" (a quote inside a cell is written \"\")" },
	{ "quote inside an unquoted cell", "model,tier,rpm\nsay \"hi\",t,1\n", 0, { 0 },
	  "t.csv:2:1: quote inside an unquoted cell; quote the whole cell and double the "
	  "quote: \"a \"\"b\"\"\"" },
	{ "text after a closing quote", "model,tier,rpm\n\"m\"x,t,1\n", 0, { 0 },
	  "t.csv:2:1: text after the closing quote of a quoted cell; quote the whole cell and "
	  "write a quote inside it as \"\"" },
	{ "model name too long", "model,tier,rpm\n" A64 ",t,1\n", 0, { 0 },
	  "t.csv:2:1 (model): model name \"" A64 "\" is 64 bytes; rlshape's table holds model "
	  "names of at most 63 bytes: shorten it, or leave the row out" },
	{ "tier name too long", "model,tier,rpm\nm," A64 ",1\n", 0, { 0 },
	  "t.csv:2:2 (tier): tier name \"" A64 "\" is 64 bytes; rlshape's table holds tier "
	  "names of at most 63 bytes: shorten it, or leave the row out" },
	{ "model name not UTF-8", "model,tier,rpm\nm\xff,t,1\n", 0, { 0 },
	  "t.csv:2:1 (model): model name \"m\xff\" is not valid UTF-8; save the file as UTF-8" },
	{ "model name with a line break", "model,tier,rpm\n\"a\nb\",t,1\n", 0, { 0 },
	  "t.csv:2:1 (model): model name \"a\\x0ab\" contains a control character (a line "
	  "break inside a quoted cell?); write the name on one line" },
	{ "blank model in the first row", "model,tier,rpm\n,t,1\n", 0, { 0 },
	  "t.csv:2:1 (model): empty model cell in the first row: there is no cell above to "
	  "repeat; write the model name (or * for every model)" },
	{ "blank tier in the first row", "model,tier,rpm\n\n,,\nm, ,1\n", 0, { 0 },
	  "t.csv:4:2 (tier): empty tier cell in the first row: there is no cell above to "
	  "repeat; write the tier name" },
	{ "same tier and model twice", "model,tier,rpm\nm,t,1\nn,,2\n,,3\n", 0, { 0 },
	  "t.csv:4:1 (model): model \"n\" is already listed for tier \"t\" on line 3; give each "
	  "(tier, model) pair one row (this model cell is empty, so it repeats the model above)" },
	{ "line numbers count line breaks inside quoted cells",
	  "model,tier,rpm,# note\nm,t,1,\"two\nlines\"\nn,t,x,\n", 0, { 0 },
	  "t.csv:4:3 (rpm): \"x\" is not a number; use digits, thousands separators or "
	  "Unlimited" },
	{ "burst above rpm", "model,tier,rpm,burst\nm,t,10,11\n", 0, { 0 },
	  "t.csv:2:4 (burst): burst 11 exceeds rpm 10: no more than rpm requests fit in a "
	  "minute; lower burst to at most 10" },
	{ "burst without rpm", "model,tier,burst\nm,t,5\n", 0, { 0 },
	  "t.csv:2:3 (burst): burst 5 needs a finite rpm in the same row (burst shapes the rpm "
	  "smoothing) and the table has no rpm column; give rpm a number, or make burst -" },
	{ "burst with rpm 0", "model,tier,rpm,burst\nm,t,0,1\n", 0, { 0 },
	  "t.csv:2:4 (burst): burst 1 with rpm 0: rpm 0 admits nothing, so burst means "
	  "nothing; make burst -" },
	{ "burst unlimited", "model,tier,rpm,burst\nm,t,10,unlimited\n", 0, { 0 },
	  "t.csv:2:4 (burst): burst cannot be Unlimited: it is how many requests may come back "
	  "to back under the rpm smoothing; give a number up to rpm, or - for the default" },
	{ "empty file", "", 0, { 0 },
	  "t.csv: no header row: the file is empty; the first row names the columns, e.g. "
	  "model,tier,rpm" },
	{ "header only", "model,tier,rpm\r\n,,\r\n", 0, { 0 },
	  "t.csv:1: no rows under the header: the table defines no tier; add a row per tier "
	  "and model" },
	{ "NUL byte", "model,tier,rpm\nm,t,1\0\n", 21, { 0 },
	  "t.csv: NUL byte: this is not a text file; export the table as CSV (UTF-8)" },
	{ "unknown default tier", "model,tier,rpm\n*,free,1\n*,paid,2\n", 0,
	  { .default_tier = "Free" },
	  "t.csv: --default-tier \"Free\" is not a tier of this table (tiers: free, paid); name "
	  "one of them (tier names are case-sensitive)" },
	{ "duplicate listen port", "model,tier,rpm\n*,free,1\n", 0,
	  { .ports = { 8000, 8000 }, .nr_ports = 2 },
	  "t.csv: the imported table: listen.ports[1]: port 8000 is already listed at [0]: "
	  "remove one" },
};

static void test_bad_csv(void **state)
{
	const struct bad_csv *b = *state;
	size_t len = b->len ? b->len : strlen(b->csv);
	char err[2048], *json = (char *)"untouched";

	assert_int_equal(rls_import("t.csv", b->csv, len, &b->opts, &json, NULL, err,
				    sizeof(err)), -1);
	assert_null(json);
	assert_string_equal(err, b->want);
	/* No buffer for the message: still an error, nothing written. */
	assert_int_equal(rls_import("t.csv", b->csv, len, &b->opts, &json, NULL, NULL, 0), -1);
}

/* Every message is one line, whatever the file name holds. */
static void test_message_is_one_line(void **state)
{
	char err[512], *json;

	(void)state;
	assert_int_equal(rls_import("a\nb.csv", "model,tier,rpm\nm,t,x\n", 21, &defaults, &json,
				    NULL, err, sizeof(err)), -1);
	assert_null(strchr(err, '\n'));
	assert_string_equal(err, "a b.csv:2:3 (rpm): \"x\" is not a number; use digits, "
			    "thousands separators or Unlimited");
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_moonshot_exact_output),
		cmocka_unit_test(test_blank_cells_repeat_the_row_above),
		cmocka_unit_test(test_blank_model_repeats_across_tiers),
		cmocka_unit_test(test_quoted_cells),
		cmocka_unit_test(test_crlf_same_as_lf),
		cmocka_unit_test(test_deterministic_first_appearance_order),
		cmocka_unit_test(test_options_ports_default_tier),
		cmocka_unit_test(test_model_name_63_bytes),
		cmocka_unit_test(test_burst),
		cmocka_unit_test(test_message_is_one_line),
	};

	return RUN_TESTS_AND_CASES("import", fixed, CASE_TABLE(test_good_csv, good_csvs),
				   CASE_TABLE(test_bad_csv, bad_csvs));
}
