// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"

#define RLS_OPTS_MAX 32
#define LONG_ONLY_BASE 256 /* getopt values of options without a short name: past any char */
#define USAGE_WIDTH 80

static const struct rls_opt help_opt = {
	.long_name = "help", .short_name = 'h', .kind = RLS_OPT_FLAG, .help = "this text",
};

static size_t count_opts(const struct rls_cmd_spec *spec)
{
	size_t n = 0;

	while (spec->opts && spec->opts[n].long_name)
		n++;
	return n;
}

/* The table's options and then --help, which every command has. */
static const struct rls_opt *opt_at(const struct rls_cmd_spec *spec, size_t i)
{
	return i < count_opts(spec) ? &spec->opts[i] : &help_opt;
}

static void usage_error(const struct rls_cmd_spec *spec, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void usage_error(const struct rls_cmd_spec *spec, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rlshape %s: ", spec->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; see rlshape %s --help\n", spec->name);
}

/* "native or skb", "a, b or c": for the error that lists an enum's choices. */
static void format_choices(const struct rls_opt *o, char *buf, size_t len)
{
	size_t n = 0, i, used = 0;

	while (o->choices[n].name)
		n++;
	buf[0] = '\0';
	for (i = 0; i < n && used < len; i++)
		used += snprintf(buf + used, len - used, "%s%s",
				 i == 0 ? "" : i == n - 1 ? " or " : ", ", o->choices[i].name);
}

static int set_value(const struct rls_cmd_spec *spec, const struct rls_opt *o, const char *arg,
		     void *cfg)
{
	char *field = (char *)cfg + o->offset;
	char choices[256];
	unsigned long v;
	size_t i, *count;
	char *end;

	switch (o->kind) {
	case RLS_OPT_FLAG:
		*(bool *)field = true;
		return 0;
	case RLS_OPT_STRING:
		if (!*arg) {
			usage_error(spec, "--%s needs %s, not an empty string", o->long_name,
				    o->what);
			return -1;
		}
		*(const char **)field = arg;
		return 0;
	case RLS_OPT_UINT_LIST:
	case RLS_OPT_UINT:
		/* strtoul would take "-1" and " 5"; only digits are a whole number here. */
		errno = 0;
		v = isdigit((unsigned char)arg[0]) ? strtoul(arg, &end, 10) : 0;
		if (!isdigit((unsigned char)arg[0]) || errno || *end || v < o->min || v > o->max) {
			usage_error(spec, "--%s must be %s from %lu to %lu, not \"%s\"", o->long_name,
				    o->what, o->min, o->max, arg);
			return -1;
		}
		if (o->kind == RLS_OPT_UINT) {
			*(unsigned long *)field = v;
			return 0;
		}
		count = (size_t *)((char *)cfg + o->count_offset);
		if (*count >= o->list_max) {
			usage_error(spec, "--%s may be given at most %zu times", o->long_name,
				    o->list_max);
			return -1;
		}
		((unsigned long *)field)[(*count)++] = v;
		return 0;
	case RLS_OPT_ENUM:
		for (i = 0; o->choices[i].name; i++) {
			if (!strcmp(arg, o->choices[i].name)) {
				*(unsigned int *)field = o->choices[i].value;
				return 0;
			}
		}
		format_choices(o, choices, sizeof(choices));
		usage_error(spec, "--%s must be %s, not \"%s\"", o->long_name, choices, arg);
		return -1;
	}
	return -1;
}

enum rls_opts_result rls_opts_parse(const struct rls_cmd_spec *spec, int argc, char **argv,
				    void *cfg)
{
	struct option longopts[RLS_OPTS_MAX + 2];
	char shortopts[3 * RLS_OPTS_MAX + 4], *s = shortopts;
	bool given[RLS_OPTS_MAX + 1] = { false };
	size_t n = count_opts(spec) + 1, i;
	const struct rls_opt *o;
	int c, operands;

	if (n > RLS_OPTS_MAX + 1) {
		usage_error(spec, "has more options than the parser holds (%d)", RLS_OPTS_MAX);
		return RLS_OPTS_USAGE;
	}
	*s++ = ':'; /* a missing value returns ':', so the message can name the option */
	for (i = 0; i < n; i++) {
		o = opt_at(spec, i);
		longopts[i] = (struct option){
			.name = o->long_name,
			.has_arg = o->kind == RLS_OPT_FLAG ? no_argument : required_argument,
			.val = o->short_name ? o->short_name : LONG_ONLY_BASE + (int)i,
		};
		if (o->short_name) {
			*s++ = o->short_name;
			if (o->kind != RLS_OPT_FLAG)
				*s++ = ':';
		}
	}
	longopts[n] = (struct option){ 0 };
	*s = '\0';

	opterr = 0;
	optind = 0; /* 0, not 1: glibc starts afresh, so the parser can run more than once */
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (c == '?' || c == ':') {
			const char *seen = optopt ? NULL : argv[optind - 1];
			const struct rls_opt *named = NULL;

			for (i = 0; i < n && optopt; i++)
				if (longopts[i].val == optopt)
					named = opt_at(spec, i);
			if (c == '?' && named)
				usage_error(spec, "--%s takes no value", named->long_name);
			else if (c == '?' && seen)
				usage_error(spec, "unknown option %s", seen);
			else if (c == '?')
				usage_error(spec, "unknown option -%c", optopt);
			else if (named)
				usage_error(spec, "--%s needs %s", named->long_name, named->what);
			else
				usage_error(spec, "%s needs a value", seen);
			return RLS_OPTS_USAGE;
		}
		for (i = 0; i < n && longopts[i].val != c; i++)
			;
		if (i == n)
			return RLS_OPTS_USAGE; /* getopt returned a value it was not given */
		o = opt_at(spec, i);
		if (o == &help_opt) {
			rls_opts_help(spec, stdout);
			return RLS_OPTS_HELP;
		}
		if (set_value(spec, o, optarg, cfg))
			return RLS_OPTS_USAGE;
		given[i] = true;
	}
	for (i = 0; i + 1 < n; i++) {
		o = opt_at(spec, i);
		if (o->required && !given[i]) {
			usage_error(spec, "--%s %s is required", o->long_name, o->metavar);
			return RLS_OPTS_USAGE;
		}
	}
	operands = argc - optind;
	if (spec->operand && operands == 1) {
		*(const char **)((char *)cfg + spec->operand_offset) = argv[optind];
		return RLS_OPTS_OK;
	}
	if (spec->operand && operands == 0)
		usage_error(spec, "%s is missing", spec->operand);
	else if (operands > (spec->operand ? 1 : 0))
		usage_error(spec, "unexpected argument \"%s\"", argv[optind + (spec->operand ? 1 : 0)]);
	else
		return RLS_OPTS_OK;
	return RLS_OPTS_USAGE;
}

/* "-d, --dev IFACE" or "    --stdout": the left column of an option's help. */
static int opt_signature(const struct rls_opt *o, char *buf, size_t len)
{
	char shortpart[8] = "    ";

	if (o->short_name)
		snprintf(shortpart, sizeof(shortpart), "-%c, ", o->short_name);
	return snprintf(buf, len, "%s--%s%s%s", shortpart, o->long_name,
			o->kind == RLS_OPT_FLAG ? "" : " ", o->kind == RLS_OPT_FLAG ? "" : o->metavar);
}

static void print_usage_line(const struct rls_cmd_spec *spec, FILE *out)
{
	size_t n = count_opts(spec), i;
	int indent, col;
	char item[128];

	col = indent = fprintf(out, "Usage: rlshape %s", spec->name);
	if (spec->operand)
		col += fprintf(out, " %s", spec->operand);
	for (i = 0; i < n; i++) {
		const struct rls_opt *o = &spec->opts[i];
		int len = snprintf(item, sizeof(item), "%s--%s%s%s%s%s", o->required ? "" : "[",
				   o->long_name, o->kind == RLS_OPT_FLAG ? "" : " ",
				   o->kind == RLS_OPT_FLAG ? "" : o->metavar, o->required ? "" : "]",
				   o->kind == RLS_OPT_UINT_LIST ? "..." : "");

		if (col + 1 + len > USAGE_WIDTH) {
			col = fprintf(out, "\n%*s", indent, "") - 1;
		}
		col += fprintf(out, " %s", item);
	}
	fputc('\n', out);
}

void rls_opts_help(const struct rls_cmd_spec *spec, FILE *out)
{
	size_t n = count_opts(spec) + 1, i;
	int width = 0, len;
	char sig[128];

	print_usage_line(spec, out);
	if (spec->description)
		fprintf(out, "\n%s", spec->description);
	for (i = 0; i < n; i++) {
		len = opt_signature(opt_at(spec, i), sig, sizeof(sig));
		if (len > width)
			width = len;
	}
	fprintf(out, "\nOptions:\n");
	for (i = 0; i < n; i++) {
		const struct rls_opt *o = opt_at(spec, i);
		const char *line = o->help, *nl;

		len = opt_signature(o, sig, sizeof(sig));
		fprintf(out, "  %-*s  ", width, sig);
		while ((nl = strchr(line, '\n'))) {
			fprintf(out, "%.*s\n  %-*s  ", (int)(nl - line), line, width, "");
			line = nl + 1;
		}
		fprintf(out, "%s%s\n", line, o->required ? " (required)" : "");
	}
}
