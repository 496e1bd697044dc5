/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A vendor's rate-limit table as CSV in, a tiers.json for rlshape out (`rlshape import`). */
#ifndef RLS_USER_IMPORT_CSV_H
#define RLS_USER_IMPORT_CSV_H

#include <stddef.h>

#include "rlshape.h"

#define RLS_IMPORT_DEFAULT_PORT 8000

struct import_opts {
	const char *model_column; /* NULL: "model" */
	const char *tier_column;  /* NULL: "tier" */
	const char *default_tier; /* NULL: none */
	unsigned long ports[RLS_MAX_PORTS];
	size_t nr_ports;          /* 0: RLS_IMPORT_DEFAULT_PORT */
};

struct import_stats {
	size_t rows, tiers, models, entries;
};

/*
 * Imports the CSV text (len bytes; file names it in messages). Returns 0 and the tiers.json
 * text in *json (malloc'd, NUL-terminated, accepted by rls_table_parse()), or -1 with a
 * one-line message in err.
 */
int rls_import(const char *file, const char *text, size_t len, const struct import_opts *o,
	       char **json, struct import_stats *stats, char *err, size_t err_len);

#endif /* RLS_USER_IMPORT_CSV_H */
