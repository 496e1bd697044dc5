/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The Prometheus text exposition format (version 0.0.4), written into a buffer of bounded
 * size: what `rlshape daemon` serves on /metrics (user/metrics.c fills it).
 *
 * A scrape never grows past its cap, whatever the tables hold: a line is written whole or not
 * at all, and once one line has not fitted, none after it is written either (so no sample
 * ever stands without its family's TYPE line, nor after a family that lost its samples). The
 * last RLS_EXPO_TRAILER bytes are kept for rls_expo_finish(), which says how many samples were
 * left out, so a cut scrape is visible on the dashboard rather than silently short.
 */
#ifndef RLS_USER_EXPO_H
#define RLS_USER_EXPO_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#define RLS_EXPO_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define RLS_EXPO_TRAILER      256 /* room for rlshape_scrape_samples_dropped */

struct rls_label {
	const char *name;  /* a Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]* */
	const char *value; /* any bytes: escaped, and invalid UTF-8 replaced */
};

struct rls_expo {
	char *buf;
	size_t len, cap;       /* cap: the whole scrape, trailer included */
	bool full;             /* a line did not fit: nothing more is written */
	unsigned long dropped; /* samples left out because the scrape was full */
};

/* A buffer of cap bytes (at least RLS_EXPO_TRAILER + 1). Returns 0 or -ENOMEM. */
int rls_expo_init(struct rls_expo *e, size_t cap);
void rls_expo_free(struct rls_expo *e);

/* The # HELP and # TYPE lines of a family; type is "counter" or "gauge". */
void rls_expo_family(struct rls_expo *e, const char *name, const char *type, const char *help);

/* One sample: name{labels...} value. */
void rls_expo_u64(struct rls_expo *e, const char *name, const struct rls_label *labels,
		  size_t nr_labels, __u64 value);
void rls_expo_double(struct rls_expo *e, const char *name, const struct rls_label *labels,
		     size_t nr_labels, double value);

/* Writes rlshape_scrape_samples_dropped into the kept room; the text ends there. */
void rls_expo_finish(struct rls_expo *e);

/*
 * A label value as the format wants it: backslash, double quote and line feed escaped, and a
 * byte that is not part of valid UTF-8 replaced by U+FFFD. Writes at most out_len bytes with
 * the NUL; returns the length it needed (as snprintf).
 */
size_t rls_expo_escape_label(const char *value, char *out, size_t out_len);

#endif /* RLS_USER_EXPO_H */
