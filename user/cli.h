/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The subcommands of `rlshape`, and what they share. */
#ifndef RLS_USER_CLI_H
#define RLS_USER_CLI_H

#include <stddef.h>

#include "opts.h"

struct rls_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the subcommand */
};

/* What `status` and `stats` are asked: the same two options, described for each in its table. */
struct rls_view_request {
	const char *dev;
	bool json;
};

/* --dev and --json mean the same in every command that has them. */
#define RLS_OPT_DEV(type, field, text)                                                       \
	{ .long_name = "dev", .short_name = 'd', .kind = RLS_OPT_STRING, .metavar = "IFACE", \
	  .what = "an interface name", .help = text, .offset = offsetof(type, field) }
#define RLS_OPT_JSON(type, field, text)                                                      \
	{ .long_name = "json", .short_name = 'j', .kind = RLS_OPT_FLAG, .help = text,        \
	  .offset = offsetof(type, field) }

int rls_cmd_check(int argc, char **argv);
int rls_cmd_load(int argc, char **argv);
int rls_cmd_unload(int argc, char **argv);
int rls_cmd_status(int argc, char **argv);
int rls_cmd_stats(int argc, char **argv);
int rls_cmd_daemon(int argc, char **argv);
int rls_cmd_import(int argc, char **argv);

/* "rlshape: " + message, on stderr. */
void rls_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The interface a command acts on: the one given, else the only one rlshape is loaded on.
 * Returns 0, or -1 after saying what to do.
 */
int rls_choose_dev(const char *given, char *dev, size_t len);

#endif /* RLS_USER_CLI_H */
