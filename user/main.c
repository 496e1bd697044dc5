// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* rlshape: enforce an LLM API tier table on a gateway interface, in the kernel. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "cli.h"

static const struct rls_command commands[] = {
	{ "check", "validate a tier table and exit", rls_cmd_check },
	{ "load", "validate a tier table, attach to an interface, fill the maps", rls_cmd_load },
	{ "unload", "detach from an interface and remove every pin", rls_cmd_unload },
	{ "status", "show where rlshape is attached, and with which table", rls_cmd_status },
	{ "stats", "show admitted and rejected requests by account, model and reason", rls_cmd_stats },
	{ "import", "turn a vendor's rate-limit table (CSV) into a tier table", rls_cmd_import },
	{ "daemon", "settle token usage, serve Prometheus metrics (foreground)", rls_cmd_daemon },
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "Usage: rlshape COMMAND [options]\n\n"
		     "Enforces an LLM API tier table (requests per second/minute/hour/day per account\n"
		     "and model) in the kernel, with XDP on the gateway's client-facing interface.\n\n"
		     "Commands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n`rlshape COMMAND --help` describes each command.\n");
}

/* libbpf's warnings are for developers; a user sees rlshape's own one-line errors. */
static int quiet_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || !getenv("RLSHAPE_DEBUG"))
		return level == LIBBPF_DEBUG && getenv("RLSHAPE_DEBUG") ? vfprintf(stderr, fmt, ap) : 0;
	return vfprintf(stderr, fmt, ap);
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	libbpf_set_print(quiet_libbpf);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	rls_error("unknown command \"%s\"; `rlshape --help` lists the commands", argv[1]);
	return 2;
}
