/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A subcommand's options declared as data: one table gives the parser what to accept and
 * --help what to print, so the two cannot drift apart (the technique of xdp-tools' params.c).
 * Each option writes its value into the command's own struct at a given offset.
 */
#ifndef RLS_USER_OPTS_H
#define RLS_USER_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum rls_opt_kind {
	RLS_OPT_FLAG,   /* no value; sets a bool */
	RLS_OPT_STRING, /* sets a const char * */
	RLS_OPT_UINT,   /* a whole number from min to max; sets an unsigned long */
	RLS_OPT_ENUM,   /* one of choices[] by name; sets an unsigned int to its value */
	RLS_OPT_UINT_LIST, /* RLS_OPT_UINT that may be repeated: appends to an unsigned long
			    * array, up to list_max, counting in the size_t at count_offset */
};

struct rls_opt_choice {
	const char *name;
	unsigned int value;
};

struct rls_opt {
	const char *long_name;   /* NULL ends a table */
	char short_name;         /* 0: long only */
	enum rls_opt_kind kind;
	const char *metavar;     /* the value in --help: "IFACE", "N"; enum: its choices */
	const char *what;        /* the value in an error: "an interface name" */
	const char *help;        /* may hold '\n' for more lines */
	size_t offset;           /* where the value goes in the command's struct */
	unsigned long min, max;  /* RLS_OPT_UINT, RLS_OPT_UINT_LIST */
	size_t count_offset, list_max; /* RLS_OPT_UINT_LIST */
	const struct rls_opt_choice *choices; /* RLS_OPT_ENUM, ended by a NULL name */
	bool required;
};

struct rls_cmd_spec {
	const char *name;        /* "load": in messages as "rlshape load" */
	const char *operand;     /* "FILE" when the command takes exactly one, else NULL */
	size_t operand_offset;   /* where the operand goes (a const char *) */
	const char *description; /* the paragraphs between the usage line and the options */
	const struct rls_opt *opts;
};

enum rls_opts_result {
	RLS_OPTS_OK = 0,
	RLS_OPTS_HELP = 1,  /* --help was printed on stdout: exit 0 */
	RLS_OPTS_USAGE = 2, /* an error naming the option was printed on stderr: exit 2 */
};

/* Parses argv (argv[0] is the subcommand) into cfg, which holds the defaults. */
enum rls_opts_result rls_opts_parse(const struct rls_cmd_spec *spec, int argc, char **argv,
				    void *cfg);

/* Usage line, description and one line (or more) per option, -h/--help included. */
void rls_opts_help(const struct rls_cmd_spec *spec, FILE *out);

/* What a command returns for a parse result other than RLS_OPTS_OK: 0 after --help, else 2. */
static inline int rls_opts_exit_code(enum rls_opts_result r)
{
	return r == RLS_OPTS_HELP ? 0 : 2;
}

#endif /* RLS_USER_OPTS_H */
