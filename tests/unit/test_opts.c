// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The subcommands' option parser: each kind of option, ranges, missing values, unknown options,
 * operands, and --help generated from the same table the parser reads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../lib/cmocka_cases.h"

#include "opts.h"

struct demo_cfg {
	const char *file;
	const char *dev;
	unsigned long count;
	unsigned int mode;
	bool verbose;
	const char *name;
};

static const struct rls_opt_choice modes[] = { { "fast", 1 }, { "slow", 2 }, { "off", 7 }, { 0 } };

static const struct rls_opt demo_opts[] = {
	{ .long_name = "dev", .short_name = 'd', .kind = RLS_OPT_STRING, .metavar = "IFACE",
	  .what = "an interface name", .help = "the interface",
	  .offset = offsetof(struct demo_cfg, dev) },
	{ .long_name = "count", .short_name = 'n', .kind = RLS_OPT_UINT, .metavar = "N",
	  .what = "a whole number", .min = 2, .max = 500, .help = "how many\nsecond line",
	  .offset = offsetof(struct demo_cfg, count) },
	{ .long_name = "mode", .short_name = 'm', .kind = RLS_OPT_ENUM, .metavar = "MODE",
	  .what = "fast, slow or off", .choices = modes, .help = "how",
	  .offset = offsetof(struct demo_cfg, mode) },
	{ .long_name = "verbose", .short_name = 'v', .kind = RLS_OPT_FLAG, .help = "say more",
	  .offset = offsetof(struct demo_cfg, verbose) },
	{ .long_name = "name", .kind = RLS_OPT_STRING, .metavar = "NAME", .what = "a name",
	  .help = "long only, required", .required = true,
	  .offset = offsetof(struct demo_cfg, name) },
	{ NULL },
};

static const struct rls_cmd_spec demo_spec = {
	.name = "demo",
	.operand = "FILE",
	.operand_offset = offsetof(struct demo_cfg, file),
	.description = "Does nothing, for the tests.\n",
	.opts = demo_opts,
};

static const struct rls_cmd_spec bare_spec = { .name = "bare" };

/* Parses args (NULL-terminated, without the subcommand); what it wrote on stderr goes to err. */
static enum rls_opts_result parse_args(const struct rls_cmd_spec *spec, struct demo_cfg *cfg,
				       char *err, size_t len, const char *const args[])
{
	char *argv[32];
	int argc = 0, saved = dup(STDERR_FILENO);
	FILE *tmp = tmpfile();
	enum rls_opts_result r;
	size_t got;

	argv[argc++] = (char *)spec->name;
	while ((argv[argc] = (char *)args[argc - 1]))
		argc++;
	assert_non_null(tmp);
	fflush(stderr);
	dup2(fileno(tmp), STDERR_FILENO);
	r = rls_opts_parse(spec, argc, argv, cfg);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	got = fread(err, 1, len - 1, tmp);
	err[got] = '\0';
	fclose(tmp);
	return r;
}

/* parse_args() with the arguments listed, NULL last. */
static enum rls_opts_result parse(const struct rls_cmd_spec *spec, struct demo_cfg *cfg,
				  char *err, size_t len, ...)
{
	const char *args[31];
	size_t n = 0;
	va_list ap;

	va_start(ap, len);
	while ((args[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	return parse_args(spec, cfg, err, len, args);
}

static void test_every_kind_parses(void **state)
{
	struct demo_cfg cfg = { .count = 9 };
	char err[512];

	(void)state;
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "-d", "eth1", "t.json", "--count",
			       "500", "--mode=off", "-v", "--name", "x", NULL),
			 RLS_OPTS_OK);
	assert_string_equal(cfg.file, "t.json");
	assert_string_equal(cfg.dev, "eth1");
	assert_int_equal(cfg.count, 500);
	assert_int_equal(cfg.mode, 7);
	assert_true(cfg.verbose);
	assert_string_equal(cfg.name, "x");
	assert_string_equal(err, "");
}

static void test_defaults_stay(void **state)
{
	struct demo_cfg cfg = { .count = 9, .mode = 2 };
	char err[512];

	(void)state;
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", "--name=n", NULL),
			 RLS_OPTS_OK);
	assert_int_equal(cfg.count, 9);
	assert_int_equal(cfg.mode, 2);
	assert_false(cfg.verbose);
	assert_null(cfg.dev);
}

static void test_uint_range(void **state)
{
	static const char *const bad[] = { "1", "501", "-3", " 5", "5x", "", "99999999999999999999" };
	struct demo_cfg cfg = { 0 };
	char err[512];
	size_t i;

	(void)state;
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", "--name=n", "-n", "2", NULL),
			 RLS_OPTS_OK);
	assert_int_equal(cfg.count, 2);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		cfg.count = 77;
		assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", "--name=n", "-n",
				       bad[i], NULL),
				 RLS_OPTS_USAGE);
		assert_int_equal(cfg.count, 77);
		assert_non_null(strstr(err, "rlshape demo: --count must be a whole number from 2 "
					    "to 500, not \""));
		assert_non_null(strstr(err, "see rlshape demo --help"));
	}
}

/* ---- what is refused, and the message that says so ---- */

struct usage_case {
	const char *name;
	const struct rls_cmd_spec *spec;
	const char *args[8];       /* NULL-terminated, after the subcommand */
	enum rls_opts_result want;
	const char *message;       /* all of stderr; NULL: not looked at */
	bool part;                 /* message need only be a part of stderr */
};

#define SEE_HELP "; see rlshape demo --help\n"

static const struct usage_case usage_cases[] = {
	{ "enum names its choices", &demo_spec, { "f", "--name=n", "-m", "quick" }, RLS_OPTS_USAGE,
	  "rlshape demo: --mode must be fast, slow or off, not \"quick\"" SEE_HELP, false },
	{ "missing value names the option", &demo_spec, { "f", "--name=n", "--dev" },
	  RLS_OPTS_USAGE, "rlshape demo: --dev needs an interface name" SEE_HELP, false },
	{ "missing value of a short option", &demo_spec, { "f", "--name=n", "-n" },
	  RLS_OPTS_USAGE, "--count needs a whole number", true },
	{ "missing value of a required option", &demo_spec, { "f", "--name" }, RLS_OPTS_USAGE,
	  "--name needs a name", true },
	{ "empty value", &demo_spec, { "f", "--name=n", "--dev=" }, RLS_OPTS_USAGE,
	  "--dev needs an interface name, not an empty string", true },
	{ "unknown long option", &demo_spec, { "f", "--name=n", "--bogus" }, RLS_OPTS_USAGE,
	  "rlshape demo: unknown option --bogus" SEE_HELP, false },
	{ "unknown short option", &demo_spec, { "f", "--name=n", "-x" }, RLS_OPTS_USAGE,
	  "rlshape demo: unknown option -x" SEE_HELP, false },
	/* A flag given a value is as wrong as an unknown option. */
	{ "flag given a value", &demo_spec, { "f", "--name=n", "--verbose=1" }, RLS_OPTS_USAGE,
	  "rlshape demo: --verbose takes no value" SEE_HELP, false },
	{ "required option missing", &demo_spec, { "f" }, RLS_OPTS_USAGE,
	  "--name NAME is required", true },
	{ "operand missing", &demo_spec, { "--name=n" }, RLS_OPTS_USAGE,
	  "rlshape demo: FILE is missing", true },
	{ "operand twice", &demo_spec, { "f", "g", "--name=n" }, RLS_OPTS_USAGE,
	  "unexpected argument \"g\"", true },
	{ "operand to a command without one", &bare_spec, { "x" }, RLS_OPTS_USAGE,
	  "rlshape bare: unexpected argument \"x\"", true },
	{ "no operand to a command without one", &bare_spec, { NULL }, RLS_OPTS_OK, NULL, false },
};

static void test_usage_case(void **state)
{
	const struct usage_case *c = *state;
	struct demo_cfg cfg = { 0 };
	char err[512];

	assert_int_equal(parse_args(c->spec, &cfg, err, sizeof(err), c->args), c->want);
	if (c->message && c->part)
		assert_non_null(strstr(err, c->message));
	else if (c->message)
		assert_string_equal(err, c->message);
}

static void test_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(rls_opts_exit_code(RLS_OPTS_USAGE), 2);
	assert_int_equal(rls_opts_exit_code(RLS_OPTS_HELP), 0);
}

static void test_help_lists_every_option(void **state)
{
	const struct rls_opt *o;
	char *text = NULL, want[64];
	const char *first, *second, *line_start;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	(void)state;
	assert_non_null(out);
	rls_opts_help(&demo_spec, out);
	fclose(out);
	assert_non_null(strstr(text, "Usage: rlshape demo FILE [--dev IFACE] [--count N] "));
	assert_non_null(strstr(text, "--name NAME"));
	assert_null(strstr(text, "[--name NAME]")); /* required: not shown as optional */
	assert_non_null(strstr(text, "Does nothing, for the tests.\n"));
	for (o = demo_opts; o->long_name; o++) {
		snprintf(want, sizeof(want), "--%s", o->long_name);
		assert_non_null(strstr(strstr(text, "Options:"), want));
		snprintf(want, sizeof(want), "%.*s", (int)strcspn(o->help, "\n"), o->help);
		assert_non_null(strstr(text, want));
		if (o->short_name) {
			snprintf(want, sizeof(want), "-%c, --%s", o->short_name, o->long_name);
			assert_non_null(strstr(text, want));
		}
	}
	assert_non_null(strstr(text, "-h, --help"));
	/* A help text's second line starts in the column of its first. */
	first = strstr(text, "how many\n");
	assert_non_null(first);
	line_start = first;
	while (line_start > text && line_start[-1] != '\n')
		line_start--;
	second = first + strlen("how many\n");
	assert_int_equal(strspn(second, " "), (size_t)(first - line_start));
	assert_memory_equal(second + (first - line_start), "second line\n", 12);
	free(text);
}

static void test_help_exits_zero(void **state)
{
	struct demo_cfg cfg = { 0 };
	char err[512];
	int saved = dup(STDOUT_FILENO);
	FILE *devnull = fopen("/dev/null", "w");

	(void)state;
	fflush(stdout);
	dup2(fileno(devnull), STDOUT_FILENO);
	/* --help wins over everything else wrong on the line, as getopt meets it first. */
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "--help", NULL), RLS_OPTS_HELP);
	assert_int_equal(parse(&bare_spec, &cfg, err, sizeof(err), "-h", NULL), RLS_OPTS_HELP);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	fclose(devnull);
	assert_string_equal(err, "");
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_every_kind_parses),
		cmocka_unit_test(test_defaults_stay),
		cmocka_unit_test(test_uint_range),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_help_lists_every_option),
		cmocka_unit_test(test_help_exits_zero),
	};

	return RUN_TESTS_AND_CASES("opts", fixed, CASE_TABLE(test_usage_case, usage_cases));
}
