/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * How the test tools refuse bad usage: one line naming the option and what it wants, a pointer
 * to --help, exit status 2. Include after defining PROG, the tool's name.
 */
#ifndef RLS_TOOLS_USAGE_ERROR_H
#define RLS_TOOLS_USAGE_ERROR_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

__attribute__((noreturn, format(printf, 1, 2)))
static inline void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
	exit(2);
}

/* The value of option opt: a whole number from min to max, else a usage error. */
static inline unsigned long usage_number(const char *opt, const char *arg, unsigned long min,
					 unsigned long max)
{
	unsigned long v;

	if (!parse_ulong(arg, strlen(arg), max, &v) || v < min)
		usage_error("bad %s '%s': want an integer from %lu to %lu", opt, arg, min, max);
	return v;
}

#endif /* RLS_TOOLS_USAGE_ERROR_H */
