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

#include "opts.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

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

/* Parses a NULL-terminated argument list; what it wrote on stderr goes to err. */
static enum rls_opts_result parse(const struct rls_cmd_spec *spec, struct demo_cfg *cfg,
				  char *err, size_t len, ...)
{
	char *argv[32];
	int argc = 0, saved = dup(STDERR_FILENO);
	FILE *tmp = tmpfile();
	enum rls_opts_result r;
	va_list ap;
	size_t got;

	va_start(ap, len);
	argv[argc++] = (char *)spec->name;
	while ((argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
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

static void test_enum_names_choices(void **state)
{
	struct demo_cfg cfg = { 0 };
	char err[512];

	(void)state;
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", "--name=n", "-m", "quick",
			       NULL),
			 RLS_OPTS_USAGE);
	assert_string_equal(err, "rlshape demo: --mode must be fast, slow or off, not \"quick\"; "
				 "see rlshape demo --help\n");
}

static void test_missing_value_names_option(void **state)
{
	struct demo_cfg cfg = { 0 };
	char err[512];

	(void)state;
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", "--name=n", "--dev", NULL),
			 RLS_OPTS_USAGE);
	assert_string_equal(err, "rlshape demo: --dev needs an interface name; "
				 "see rlshape demo --help\n");
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", "--name=n", "-n", NULL),
			 RLS_OPTS_USAGE);
	assert_non_null(strstr(err, "--count needs a whole number"));
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", "--name", NULL),
			 RLS_OPTS_USAGE);
	assert_non_null(strstr(err, "--name needs a name"));
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", "--name=n", "--dev=", NULL),
			 RLS_OPTS_USAGE);
	assert_non_null(strstr(err, "--dev needs an interface name, not an empty string"));
}

static void test_unknown_options(void **state)
{
	struct demo_cfg cfg = { 0 };
	char err[512];

	(void)state;
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", "--name=n", "--bogus", NULL),
			 RLS_OPTS_USAGE);
	assert_string_equal(err, "rlshape demo: unknown option --bogus; see rlshape demo --help\n");
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", "--name=n", "-x", NULL),
			 RLS_OPTS_USAGE);
	assert_string_equal(err, "rlshape demo: unknown option -x; see rlshape demo --help\n");
	/* A flag given a value is as wrong as an unknown option. */
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", "--name=n", "--verbose=1",
			       NULL),
			 RLS_OPTS_USAGE);
	assert_string_equal(err, "rlshape demo: --verbose takes no value; see rlshape demo --help\n");
}

static void test_required_and_operands(void **state)
{
	struct demo_cfg cfg = { 0 };
	char err[512];

	(void)state;
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", NULL), RLS_OPTS_USAGE);
	assert_non_null(strstr(err, "--name NAME is required"));
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "--name=n", NULL),
			 RLS_OPTS_USAGE);
	assert_non_null(strstr(err, "rlshape demo: FILE is missing"));
	assert_int_equal(parse(&demo_spec, &cfg, err, sizeof(err), "f", "g", "--name=n", NULL),
			 RLS_OPTS_USAGE);
	assert_non_null(strstr(err, "unexpected argument \"g\""));
	assert_int_equal(parse(&bare_spec, &cfg, err, sizeof(err), "x", NULL), RLS_OPTS_USAGE);
	assert_non_null(strstr(err, "rlshape bare: unexpected argument \"x\""));
	assert_int_equal(parse(&bare_spec, &cfg, err, sizeof(err), NULL), RLS_OPTS_OK);
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
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_kind_parses),
		cmocka_unit_test(test_defaults_stay),
		cmocka_unit_test(test_uint_range),
		cmocka_unit_test(test_enum_names_choices),
		cmocka_unit_test(test_missing_value_names_option),
		cmocka_unit_test(test_unknown_options),
		cmocka_unit_test(test_required_and_operands),
		cmocka_unit_test(test_help_lists_every_option),
		cmocka_unit_test(test_help_exits_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
