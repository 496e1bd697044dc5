// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * `rlshape import`: a vendor's rate-limit table as CSV in, a tiers.json for rlshape out.
 * This file reads the CSV and builds the table; user/cmd_import.c is the command.
 *
 *   rlshape import FILE.csv [--tier-column NAME] [--model-column NAME] [--listen-port N]...
 *                 [--default-tier NAME] [-o tiers.json]
 *
 * The CSV (RFC 4180: quoted cells, "" for a quote inside one, LF or CRLF line ends) has a
 * header row naming its columns, case-insensitively:
 *
 *   model        the model name (at most 63 bytes), or * for every model the tier does not
 *                name; --model-column names another header ("Model ID")
 *   tier         the tier (at most 63 bytes); --tier-column names another header
 *   rps rpm rph rpd tpm tpd concurrency burst
 *                limits, as in tiers.json
 *   #...         a header starting with # is a note column: its cells are not read
 *
 * Cells are trimmed of spaces and tabs. A limit cell holds
 *
 *   digits       with or without thousands separators: 1500000, "1,500,000" (a cell with
 *                a comma must be quoted)
 *   Unlimited    (any case): written as "unlimited"
 *   -            no limit: the field is left out of the table
 *   (empty)      the same as the cell above: the value this column has in the row before,
 *                after that row's own empty cells were filled in, whatever the other
 *                columns of either row say. This reproduces the merged cells of the
 *                vendors' pages. In the first data row, an empty limit cell means no limit.
 *
 * An empty model or tier cell also repeats the cell above; in the first data row it is an
 * error. Rows whose cells are all empty are skipped. Each (tier, model) pair may appear once.
 *
 * The output is deterministic: tiers in the order they first appear, models within a tier
 * in the order they first appear, limits in a fixed order (rps rpm rph rpd burst tpm tpd
 * concurrency), so that importing the same CSV twice gives the same bytes. jansson writes
 * it, and rlshape's own table parser (what `rlshape check` runs) must accept it before it is
 * given out. It has no
 * accounts: the operator adds them. With --default-tier, unknown clients are counted under
 * that tier; without it they pass unlimited.
 *
 * Every error is one line, "FILE:LINE:COLUMN (header): what is wrong; what to do", where LINE
 * is the line of the file (1 is the header) and COLUMN the cell's position in its row
 * (1 is the first), and the exit status is 1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>

#include "import_csv.h"
#include "rlshape.h"
#include "tiers.h"

#define IMPORT_REQUEST_MAX  ((uint64_t)RLS_UNLIMITED - 1)
#define IMPORT_TOKEN_MAX    ((uint64_t)INT64_MAX) /* what the table's JSON parser accepts */

/* ---- limits, in the order they are written ---- */

enum limit_idx { L_RPS, L_RPM, L_RPH, L_RPD, L_BURST, L_TPM, L_TPD, L_CONCURRENCY, L_COUNT };

static const char *const limit_names[L_COUNT] = {
	[L_RPS] = "rps", [L_RPM] = "rpm", [L_RPH] = "rph", [L_RPD] = "rpd",
	[L_BURST] = "burst", [L_TPM] = "tpm", [L_TPD] = "tpd",
	[L_CONCURRENCY] = "concurrency",
};

static uint64_t limit_max(enum limit_idx l)
{
	return l == L_TPM || l == L_TPD ? IMPORT_TOKEN_MAX : IMPORT_REQUEST_MAX;
}

enum value_kind { V_NONE, V_UNLIMITED, V_NUMBER };

struct value {
	enum value_kind kind; /* V_NONE: no limit, the field is left out */
	uint64_t n;
};

/* ---- messages ---- */

struct importer {
	const char *file;
	char *err;
	size_t err_len;
};

/* s for a message: in quotes, control bytes shown as \xNN, cut short at 80 bytes. */
static const char *shown(const char *s, char *buf, size_t len)
{
	size_t o = 0, i;

	buf[o++] = '"';
	for (i = 0; s[i] && o + 8 < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == 80) {
			o += (size_t)snprintf(buf + o, len - o, "...");
			break;
		}
		if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
		else if (c == '"' || c == '\\')
			o += (size_t)snprintf(buf + o, len - o, "\\%c", c);
		else
			buf[o++] = (char)c;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/*
 * One line: "FILE:LINE:COL (NAME): msg", "FILE:LINE:COL: msg", "FILE:LINE: msg" or
 * "FILE: msg", depending on which of line, col and name are known (0 / NULL: not known).
 */
__attribute__((format(printf, 5, 6)))
static int fail_at(struct importer *im, unsigned line, size_t col, const char *name,
		   const char *fmt, ...)
{
	char msg[1024], where[512];
	va_list ap;
	size_t i;

	if (!im->err || !im->err_len)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line && col && name)
		snprintf(where, sizeof(where), "%s:%u:%zu (%.64s)", im->file, line, col, name);
	else if (line && col)
		snprintf(where, sizeof(where), "%s:%u:%zu", im->file, line, col);
	else if (line)
		snprintf(where, sizeof(where), "%s:%u", im->file, line);
	else
		snprintf(where, sizeof(where), "%s", im->file);
	snprintf(im->err, im->err_len, "%s: %s", where, msg);
	/* One line, whatever the file name or the cells hold. */
	for (i = 0; im->err[i]; i++)
		if ((unsigned char)im->err[i] < 0x20 || im->err[i] == 0x7f)
			im->err[i] = ' ';
	return -1;
}

static int fail_oom(struct importer *im)
{
	return fail_at(im, 0, 0, NULL, "out of memory");
}

/* ---- a growing byte buffer ---- */

struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
	size_t cap;
	char *s;

	if (b->oom || b->len + more + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	s = realloc(b->s, cap);
	if (!s) {
		b->oom = true;
		return;
	}
	b->s = s;
	b->cap = cap;
}

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	sb_reserve(b, n);
	if (b->oom)
		return;
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_putc(struct sbuf *b, char c)
{
	sb_put(b, &c, 1);
}

/* ---- CSV reading ---- */

struct csv_cell {
	size_t off, len;  /* in the row's buffer */
	unsigned line;    /* where the cell starts */
	bool quoted;
	const char *text; /* set once the row is complete; trimmed, NUL-terminated */
};

struct csv_row {
	unsigned line;    /* where the row starts */
	size_t n, cap;
	struct csv_cell *cells;
	struct sbuf buf;
};

struct csv {
	const char *p, *end;
	unsigned line;
	struct importer *im;
};

static void csv_init(struct csv *c, struct importer *im, const char *text, size_t len)
{
	c->p = text;
	c->end = text + len;
	c->line = 1;
	c->im = im;
	/* A UTF-8 byte order mark, as spreadsheets write it. */
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		c->p += 3;
}

static void csv_row_free(struct csv_row *r)
{
	free(r->cells);
	free(r->buf.s);
	memset(r, 0, sizeof(*r));
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static int csv_new_cell(struct csv *c, struct csv_row *r)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		struct csv_cell *cells = realloc(r->cells, cap * sizeof(*cells));

		if (!cells)
			return fail_oom(c->im);
		r->cells = cells;
		r->cap = cap;
	}
	memset(&r->cells[r->n], 0, sizeof(r->cells[r->n]));
	r->cells[r->n].off = r->buf.len;
	r->cells[r->n].line = c->line;
	r->n++;
	return 0;
}

/* The cell's bytes end here: NUL-terminate them in the buffer. */
static void csv_end_cell(struct csv_row *r)
{
	struct csv_cell *cell = &r->cells[r->n - 1];

	cell->len = r->buf.len - cell->off;
	sb_putc(&r->buf, '\0');
}

/* Point every cell at its text, trimmed of spaces and tabs. */
static void csv_finish_row(struct csv_row *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		struct csv_cell *cell = &r->cells[i];
		char *s = r->buf.s + cell->off;
		size_t len = cell->len;

		while (len && is_blank(s[len - 1]))
			len--;
		s[len] = '\0';
		while (*s && is_blank(*s))
			s++, len--;
		cell->text = s;
		cell->len = len;
	}
}

/* Reads one row: 1, 0 at the end of the text, -1 on an error (in c->im). */
static int csv_read_row(struct csv *c, struct csv_row *r)
{
	struct importer *im = c->im;

	r->n = 0;
	r->buf.len = 0;
	r->line = c->line;
	if (c->p >= c->end)
		return 0;
	for (;;) {
		const char *q = c->p;
		struct csv_cell *cell;

		if (csv_new_cell(c, r))
			return -1;
		cell = &r->cells[r->n - 1];
		while (q < c->end && is_blank(*q))
			q++;
		if (q < c->end && *q == '"') {
			unsigned opened = c->line;

			cell->quoted = true;
			c->p = q + 1;
			for (;;) {
				char ch;

				if (c->p >= c->end)
					return fail_at(im, opened, r->n, NULL,
						       "unterminated quoted cell: the quote that opens "
						       "it is never closed; end the cell with \" (a quote "
						       "inside a cell is written \"\")");
				ch = *c->p++;
				if (ch == '"') {
					if (c->p < c->end && *c->p == '"') {
						sb_putc(&r->buf, '"');
						c->p++;
						continue;
					}
					break;
				}
				if (ch == '\0')
					return fail_at(im, c->line, r->n, NULL,
						       "NUL byte: this is not a text file; export the "
						       "table as CSV (UTF-8)");
				if (ch == '\r' || ch == '\n') {
					if (ch == '\r' && c->p < c->end && *c->p == '\n')
						c->p++;
					c->line++;
					ch = '\n';
				}
				sb_putc(&r->buf, ch);
			}
			while (c->p < c->end && is_blank(*c->p))
				c->p++;
			if (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r')
				return fail_at(im, c->line, r->n, NULL,
					       "text after the closing quote of a quoted cell; quote "
					       "the whole cell and write a quote inside it as \"\"");
		} else {
			while (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r') {
				if (*c->p == '"')
					return fail_at(im, c->line, r->n, NULL,
						       "quote inside an unquoted cell; quote the whole "
						       "cell and double the quote: \"a \"\"b\"\"\"");
				if (*c->p == '\0')
					return fail_at(im, c->line, r->n, NULL,
						       "NUL byte: this is not a text file; export the "
						       "table as CSV (UTF-8)");
				sb_putc(&r->buf, *c->p++);
			}
		}
		csv_end_cell(r);
		if (r->buf.oom)
			return fail_oom(im);
		if (c->p >= c->end)
			break;
		if (*c->p == ',') {
			c->p++;
			continue;
		}
		if (*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n')
			c->p++;
		c->p++;
		c->line++;
		break;
	}
	csv_finish_row(r);
	return 1;
}

static bool row_is_blank(const struct csv_row *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (r->cells[i].len)
			return false;
	return true;
}

/* ---- names ---- */

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_seq(const unsigned char *s)
{
	size_t n, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A model or tier name: 1..63 bytes of UTF-8 without control characters. */
static int check_name(struct importer *im, const struct csv_cell *cell, size_t col,
		      const char *header, const char *what)
{
	const unsigned char *s = (const unsigned char *)cell->text;
	char buf[128];
	size_t i = 0;

	if (cell->len >= RLS_MODEL_NAME_MAX)
		return fail_at(im, cell->line, col, header,
			       "%s name %s is %zu bytes; rlshape's table holds %s names of at "
			       "most %d bytes: shorten it, or leave the row out", what,
			       shown(cell->text, buf, sizeof(buf)), cell->len, what,
			       RLS_MODEL_NAME_MAX - 1);
	while (s[i]) {
		size_t n = utf8_seq(s + i);

		if (!n)
			return fail_at(im, cell->line, col, header,
				       "%s name %s is not valid UTF-8; save the file as UTF-8",
				       what, shown(cell->text, buf, sizeof(buf)));
		if (n == 1 && (s[i] < 0x20 || s[i] == 0x7f))
			return fail_at(im, cell->line, col, header,
				       "%s name %s contains a control character (a line break "
				       "inside a quoted cell?); write the name on one line", what,
				       shown(cell->text, buf, sizeof(buf)));
		i += n;
	}
	return 0;
}

/* ---- numbers ---- */

static void group_thousands(uint64_t v, char *buf, size_t len)
{
	char digits[32];
	size_t n, i, o = 0;

	snprintf(digits, sizeof(digits), "%" PRIu64, v);
	n = strlen(digits);
	for (i = 0; i < n && o + 2 < len; i++) {
		if (i && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
}

/*
 * A limit cell that is not empty: "-", "Unlimited" or a count with or without thousands
 * separators. Returns 0, or -1 with the reason in why.
 */
static int parse_value(const char *s, enum limit_idx l, struct value *v, char *why, size_t why_len)
{
	char buf[128], maxbuf[32];
	bool commas = false, grouping_ok = true;
	size_t i, digits = 0, group = 0;
	uint64_t n = 0;

	shown(s, buf, sizeof(buf));
	if (!strcmp(s, "-")) {
		v->kind = V_NONE;
		return 0;
	}
	if (!strcasecmp(s, "unlimited")) {
		if (l == L_BURST) {
			snprintf(why, why_len, "burst cannot be Unlimited: it is how many requests "
				 "may come back to back under the rpm smoothing; give a number up to "
				 "rpm, or - for the default");
			return -1;
		}
		v->kind = V_UNLIMITED;
		return 0;
	}
	if (s[0] == '-' && s[1] >= '0' && s[1] <= '9') {
		snprintf(why, why_len, "%s is negative; a limit is 0 or more (0 admits nothing), "
			 "Unlimited, or - for no limit", buf);
		return -1;
	}
	for (i = 0; s[i]; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			if (n > (UINT64_MAX - 9) / 10)
				n = UINT64_MAX; /* saturate: reported as too large below */
			else
				n = n * 10 + (uint64_t)(s[i] - '0');
			digits++;
			group++;
		} else if (s[i] == ',') {
			/* The first group has 1 to 3 digits, every later one exactly 3. */
			if ((!commas && (group < 1 || group > 3)) || (commas && group != 3))
				grouping_ok = false;
			commas = true;
			group = 0;
		} else {
			bool decimal = s[i] == '.' && i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9' &&
				       s[i + 1] >= '0' && s[i + 1] <= '9';

			if (decimal)
				snprintf(why, why_len, "%s is not a whole number; use digits, "
					 "thousands separators or Unlimited", buf);
			else
				snprintf(why, why_len, "%s is not a number; use digits, thousands "
					 "separators or Unlimited", buf);
			return -1;
		}
	}
	if (!digits) {
		snprintf(why, why_len, "%s is not a number; use digits, thousands separators or "
			 "Unlimited", buf);
		return -1;
	}
	if (commas && group != 3)
		grouping_ok = false;
	if (!grouping_ok) {
		char fixed[40];

		group_thousands(n, fixed, sizeof(fixed));
		snprintf(why, why_len, "%s has misplaced thousands separators; group the digits "
			 "in threes (%s) or leave the separators out", buf, fixed);
		return -1;
	}
	if (n > limit_max(l)) {
		group_thousands(limit_max(l), maxbuf, sizeof(maxbuf));
		snprintf(why, why_len, "%s is too large: %s can be at most %s; use Unlimited "
			 "for no limit", buf, limit_names[l], maxbuf);
		return -1;
	}
	if (l == L_BURST && n == 0) {
		snprintf(why, why_len, "burst must be at least 1 (requests allowed back to back "
			 "under the rpm smoothing), or - for the default");
		return -1;
	}
	v->kind = V_NUMBER;
	v->n = n;
	return 0;
}

/* ---- the table being built ---- */

struct entry {
	char model[RLS_MODEL_NAME_MAX];
	struct value v[L_COUNT];
	unsigned line;
};

struct tier {
	char name[RLS_TIER_NAME_MAX];
	size_t n, cap;
	struct entry *entries; /* in first-appearance order */
};

/* A set of strings with a line number each: open addressing, FNV-1a. */
struct strset {
	char **keys;
	unsigned *lines;
	size_t n, cap;
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static size_t strset_slot(const struct strset *set, const char *key)
{
	size_t i = (size_t)fnv1a(key) & (set->cap - 1);

	while (set->keys[i] && strcmp(set->keys[i], key))
		i = (i + 1) & (set->cap - 1);
	return i;
}

/* The line key was added with, or 0. */
static unsigned strset_get(const struct strset *set, const char *key)
{
	size_t i;

	if (!set->cap)
		return 0;
	i = strset_slot(set, key);
	return set->keys[i] ? set->lines[i] : 0;
}

static int strset_add(struct strset *set, const char *key, unsigned line)
{
	size_t i;

	if (2 * (set->n + 1) > set->cap) {
		struct strset bigger = { .cap = set->cap ? 2 * set->cap : 64 };

		bigger.keys = calloc(bigger.cap, sizeof(*bigger.keys));
		bigger.lines = calloc(bigger.cap, sizeof(*bigger.lines));
		if (!bigger.keys || !bigger.lines) {
			free(bigger.keys);
			free(bigger.lines);
			return -1;
		}
		for (i = 0; i < set->cap; i++) {
			if (set->keys[i]) {
				size_t j = strset_slot(&bigger, set->keys[i]);

				bigger.keys[j] = set->keys[i];
				bigger.lines[j] = set->lines[i];
			}
		}
		bigger.n = set->n;
		free(set->keys);
		free(set->lines);
		*set = bigger;
	}
	i = strset_slot(set, key);
	if (set->keys[i])
		return 0;
	set->keys[i] = strdup(key);
	if (!set->keys[i])
		return -1;
	set->lines[i] = line;
	set->n++;
	return 0;
}

static void strset_free(struct strset *set)
{
	size_t i;

	for (i = 0; i < set->cap; i++)
		free(set->keys[i]);
	free(set->keys);
	free(set->lines);
	memset(set, 0, sizeof(*set));
}

struct table {
	size_t nr_tiers, cap_tiers;
	struct tier *tiers; /* in first-appearance order */
	struct strset pairs;  /* "tier\x01model" -> line */
	struct strset models; /* distinct model names but "*" */
	bool any_star;        /* some tier has a "*" row */
	size_t nr_entries;
};

static void table_free(struct table *t)
{
	size_t i;

	for (i = 0; i < t->nr_tiers; i++)
		free(t->tiers[i].entries);
	free(t->tiers);
	strset_free(&t->pairs);
	strset_free(&t->models);
	memset(t, 0, sizeof(*t));
}

static struct tier *table_tier(struct table *t, const char *name, bool *oom)
{
	size_t i;

	for (i = 0; i < t->nr_tiers; i++)
		if (!strcmp(t->tiers[i].name, name))
			return &t->tiers[i];
	if (t->nr_tiers == t->cap_tiers) {
		size_t cap = t->cap_tiers ? 2 * t->cap_tiers : 8;
		struct tier *tiers = realloc(t->tiers, cap * sizeof(*tiers));

		if (!tiers) {
			*oom = true;
			return NULL;
		}
		t->tiers = tiers;
		t->cap_tiers = cap;
	}
	memset(&t->tiers[t->nr_tiers], 0, sizeof(t->tiers[0]));
	snprintf(t->tiers[t->nr_tiers].name, sizeof(t->tiers[0].name), "%s", name);
	return &t->tiers[t->nr_tiers++];
}

static struct entry *tier_add(struct tier *tier)
{
	if (tier->n == tier->cap) {
		size_t cap = tier->cap ? 2 * tier->cap : 16;
		struct entry *e = realloc(tier->entries, cap * sizeof(*e));

		if (!e)
			return NULL;
		tier->entries = e;
		tier->cap = cap;
	}
	memset(&tier->entries[tier->n], 0, sizeof(tier->entries[0]));
	return &tier->entries[tier->n++];
}

/* ---- the header ---- */

enum col_kind { COL_NOTE, COL_MODEL, COL_TIER, COL_LIMIT };

struct column {
	enum col_kind kind;
	enum limit_idx limit;
	const char *header; /* as written, trimmed (points into the header row) */
};

struct header {
	size_t n;             /* columns that count: trailing empty header cells are dropped */
	struct column *cols;
	size_t model, tier;   /* column indexes */
};

static const char *const known_columns =
	"rps, rpm, rph, rpd, tpm, tpd, concurrency, burst";

static int parse_header(struct importer *im, const struct csv_row *r,
			const struct import_opts *o, struct header *h)
{
	const char *model_name = o->model_column ? o->model_column : "model";
	const char *tier_name = o->tier_column ? o->tier_column : "tier";
	bool have_model = false, have_tier = false;
	size_t i, j;
	char buf[128], list[512];

	h->n = r->n;
	while (h->n && !r->cells[h->n - 1].len)
		h->n--;
	h->cols = calloc(h->n ? h->n : 1, sizeof(*h->cols));
	if (!h->cols)
		return fail_oom(im);
	for (i = 0; i < h->n; i++) {
		const struct csv_cell *cell = &r->cells[i];
		struct column *col = &h->cols[i];
		const char *name = cell->text;
		int l;

		col->header = name;
		if (!cell->len)
			return fail_at(im, cell->line, i + 1, NULL,
				       "column %zu has no name in the header row; name it (model, "
				       "tier, %s, or #note for a column to ignore) or delete it",
				       i + 1, known_columns);
		if (name[0] == '#') {
			col->kind = COL_NOTE;
			continue;
		}
		if (!strcasecmp(name, model_name)) {
			col->kind = COL_MODEL;
			h->model = i;
			have_model = true;
		} else if (!strcasecmp(name, tier_name)) {
			col->kind = COL_TIER;
			h->tier = i;
			have_tier = true;
		} else {
			for (l = 0; l < L_COUNT; l++)
				if (!strcasecmp(name, limit_names[l]))
					break;
			if (l == L_COUNT)
				return fail_at(im, cell->line, i + 1, name,
					       "unknown column %s; the columns are %s (model "
					       "names, or --model-column NAME), %s (tier names, or "
					       "--tier-column NAME) and %s; start a header with # to "
					       "keep a column of notes",
					       shown(name, buf, sizeof(buf)), model_name, tier_name,
					       known_columns);
			col->kind = COL_LIMIT;
			col->limit = (enum limit_idx)l;
		}
		for (j = 0; j < i; j++)
			if (h->cols[j].kind != COL_NOTE && !strcasecmp(h->cols[j].header, name))
				return fail_at(im, cell->line, i + 1, name,
					       "column %s appears twice (also column %zu); keep one",
					       shown(name, buf, sizeof(buf)), j + 1);
	}
	list[0] = '\0';
	for (i = 0; i < h->n; i++) {
		if (strlen(list) + strlen(h->cols[i].header) + 8 >= sizeof(list))
			break;
		if (i)
			strcat(list, ", ");
		strcat(list, h->cols[i].header);
	}
	if (!have_model)
		return fail_at(im, r->line, 0, NULL,
			       "no %s column in the header (%s); name the column of model names "
			       "\"%s\", or pass --model-column NAME (a tier that applies to every "
			       "model has the model *)",
			       shown(model_name, buf, sizeof(buf)), h->n ? list : "empty", model_name);
	if (!have_tier)
		return fail_at(im, r->line, 0, NULL,
			       "no %s column in the header (%s); name the column of tier names "
			       "\"%s\", or pass --tier-column NAME",
			       shown(tier_name, buf, sizeof(buf)), h->n ? list : "empty", tier_name);
	return 0;
}

/* ---- rows ---- */

struct row_state {
	bool have_prev;
	char model[RLS_MODEL_NAME_MAX];
	char tier[RLS_TIER_NAME_MAX];
	struct value v[L_COUNT];
};

static int check_row_shape(struct importer *im, const struct csv_row *r, const struct header *h)
{
	size_t i;

	if (r->n < h->n)
		return fail_at(im, r->line, r->n + 1, h->cols[r->n].header,
			       "the row ends after %zu cells, the header has %zu columns; add "
			       "the missing cells (an empty cell repeats the cell above)", r->n,
			       h->n);
	for (i = h->n; i < r->n; i++)
		if (r->cells[i].len)
			return fail_at(im, r->cells[i].line, i + 1, NULL,
				       "the row has %zu cells, the header has %zu columns; remove "
				       "the extra cells, and quote any cell that holds a comma "
				       "(\"1,500,000\")", r->n, h->n);
	return 0;
}

/*
 * The model or tier cell of a row: its name into name, or, when the cell is empty, name kept as
 * the row above left it (have_prev; the first row has none to repeat).
 */
static int take_name(struct importer *im, const struct csv_row *r, const struct header *h,
		     size_t col, bool have_prev, char *name, size_t len, const char *what,
		     const char *hint)
{
	const struct csv_cell *cell = &r->cells[col];

	if (cell->len) {
		if (check_name(im, cell, col + 1, h->cols[col].header, what))
			return -1;
		snprintf(name, len, "%s", cell->text);
		return 0;
	}
	if (have_prev)
		return 0;
	return fail_at(im, cell->line, col + 1, h->cols[col].header,
		       "empty %s cell in the first row: there is no cell above to repeat; write "
		       "the %s name%s", what, what, hint);
}

static int import_row(struct importer *im, const struct csv_row *r, const struct header *h,
		      struct row_state *st, struct table *t)
{
	const struct csv_cell *model_cell = &r->cells[h->model];
	const struct csv_cell *tier_cell = &r->cells[h->tier];
	struct value v[L_COUNT];
	char key[RLS_TIER_NAME_MAX + RLS_MODEL_NAME_MAX + 1], buf[128], buf2[128];
	unsigned line_model, first;
	struct tier *tier;
	struct entry *e;
	bool oom = false;
	size_t i;
	int l;

	/* The model and the tier: written, or repeated from the row above. */
	if (take_name(im, r, h, h->model, st->have_prev, st->model, sizeof(st->model), "model",
		      " (or * for every model)") ||
	    take_name(im, r, h, h->tier, st->have_prev, st->tier, sizeof(st->tier), "tier", ""))
		return -1;

	/* Limits: written, or repeated from the row above (none in the first row). */
	for (l = 0; l < L_COUNT; l++)
		v[l] = st->have_prev ? st->v[l] : (struct value){ V_NONE, 0 };
	for (i = 0; i < h->n; i++) {
		const struct csv_cell *cell = &r->cells[i];
		char why[512];

		if (h->cols[i].kind != COL_LIMIT || !cell->len)
			continue;
		if (parse_value(cell->text, h->cols[i].limit, &v[h->cols[i].limit], why,
				sizeof(why)))
			return fail_at(im, cell->line, i + 1, h->cols[i].header, "%s", why);
	}
	/* burst as tiers.json takes it: under a finite rpm > 0, at most rpm. */
	if (v[L_BURST].kind == V_NUMBER) {
		size_t bcol = 0, rcol = 0;
		unsigned bline = r->line;

		for (i = 0; i < h->n; i++) {
			if (h->cols[i].kind == COL_LIMIT && h->cols[i].limit == L_BURST)
				bcol = i + 1, bline = r->cells[i].line;
			if (h->cols[i].kind == COL_LIMIT && h->cols[i].limit == L_RPM)
				rcol = i + 1;
		}
		if (v[L_RPM].kind != V_NUMBER)
			return fail_at(im, bline, bcol, h->cols[bcol - 1].header,
				       "burst %" PRIu64 " needs a finite rpm in the same row (burst "
				       "shapes the rpm smoothing)%s; give rpm a number, or make "
				       "burst -", v[L_BURST].n,
				       rcol ? "" : " and the table has no rpm column");
		if (v[L_RPM].n == 0)
			return fail_at(im, bline, bcol, h->cols[bcol - 1].header,
				       "burst %" PRIu64 " with rpm 0: rpm 0 admits nothing, so "
				       "burst means nothing; make burst -", v[L_BURST].n);
		if (v[L_BURST].n > v[L_RPM].n)
			return fail_at(im, bline, bcol, h->cols[bcol - 1].header,
				       "burst %" PRIu64 " exceeds rpm %" PRIu64 ": no more than rpm "
				       "requests fit in a minute; lower burst to at most %" PRIu64,
				       v[L_BURST].n, v[L_RPM].n, v[L_RPM].n);
	}
	memcpy(st->v, v, sizeof(v));
	st->have_prev = true;

	/* Each (tier, model) once. */
	line_model = model_cell->line;
	snprintf(key, sizeof(key), "%s\x01%s", st->tier, st->model);
	first = strset_get(&t->pairs, key);
	if (first)
		return fail_at(im, line_model, h->model + 1, h->cols[h->model].header,
			       "model %s is already listed for tier %s on line %u; give each "
			       "(tier, model) pair one row%s",
			       shown(st->model, buf, sizeof(buf)), shown(st->tier, buf2, sizeof(buf2)),
			       first, model_cell->len ? "" : " (this model cell is empty, so it "
			       "repeats the model above)");
	tier = table_tier(t, st->tier, &oom);
	if (!tier)
		return fail_oom(im);
	if (t->nr_tiers > RLS_MAX_TIERS)
		return fail_at(im, tier_cell->line, h->tier + 1, h->cols[h->tier].header,
			       "more than %d tiers; rlshape holds at most %d", RLS_MAX_TIERS,
			       RLS_MAX_TIERS);
	e = tier_add(tier);
	if (!e || strset_add(&t->pairs, key, r->line) ||
	    (strcmp(st->model, "*") && strset_add(&t->models, st->model, r->line)))
		return fail_oom(im);
	snprintf(e->model, sizeof(e->model), "%s", st->model);
	memcpy(e->v, v, sizeof(v));
	e->line = r->line;
	t->nr_entries++;
	t->any_star |= !strcmp(st->model, "*");
	if (t->models.n > RLS_MAX_MODELS)
		return fail_at(im, line_model, h->model + 1, h->cols[h->model].header,
			       "more than %d distinct models; rlshape holds at most %d",
			       RLS_MAX_MODELS, RLS_MAX_MODELS);
	return 0;
}

/* ---- the table as JSON ---- */

static json_t *limits_json(const struct value v[L_COUNT])
{
	json_t *limits = json_object();
	int l;

	for (l = 0; limits && l < L_COUNT; l++) {
		if (v[l].kind == V_UNLIMITED)
			json_object_set_new(limits, limit_names[l], json_string("unlimited"));
		else if (v[l].kind == V_NUMBER)
			json_object_set_new(limits, limit_names[l], json_integer((json_int_t)v[l].n));
	}
	return limits;
}

/* NULL when out of memory. jansson keeps keys in the order they are set. */
static json_t *table_json(const struct table *t, const struct import_opts *o)
{
	json_t *root = json_object(), *listen = json_object(), *ports = json_array();
	json_t *tiers = json_object();
	size_t i, j;

	if (!root || !listen || !ports || !tiers) {
		json_decref(root);
		json_decref(listen);
		json_decref(ports);
		json_decref(tiers);
		return NULL;
	}
	if (!o->nr_ports)
		json_array_append_new(ports, json_integer(RLS_IMPORT_DEFAULT_PORT));
	for (i = 0; i < o->nr_ports; i++)
		json_array_append_new(ports, json_integer((json_int_t)o->ports[i]));
	json_object_set_new(listen, "ports", ports);
	json_object_set_new(root, "listen", listen);
	for (i = 0; i < t->nr_tiers; i++) {
		const struct tier *tier = &t->tiers[i];
		json_t *models = json_object();

		for (j = 0; models && j < tier->n; j++)
			json_object_set_new(models, tier->entries[j].model,
					    limits_json(tier->entries[j].v));
		json_object_set_new(tiers, tier->name, models);
	}
	json_object_set_new(root, "tiers", tiers);
	if (o->default_tier)
		json_object_set_new(root, "default_tier", json_string(o->default_tier));
	return root;
}

/* The table as tiers.json text, as jansson writes it, with a final newline; NULL: no memory. */
static char *table_text(const json_t *table)
{
	char *text = json_dumps(table, JSON_INDENT(2) | JSON_PRESERVE_ORDER), *lined;

	/* A text file ends with a newline; json_dumps leaves it out. */
	if (!text || asprintf(&lined, "%s\n", text) < 0)
		lined = NULL;
	free(text);
	return lined;
}

/* The table must be one rlshape's parser, the one `check` and `load` run, accepts. */
static int validate(struct importer *im, const char *json)
{
	struct rls_table parsed;
	char label[512], why[1024];

	snprintf(label, sizeof(label), "%s: the imported table", im->file);
	if (rls_table_parse(label, json, strlen(json), &parsed, why, sizeof(why))) {
		snprintf(im->err, im->err_len, "%s", why);
		return -1;
	}
	rls_table_free(&parsed);
	return 0;
}

/* ---- the whole import ---- */

int rls_import(const char *file, const char *text, size_t len, const struct import_opts *o,
		      char **json, struct import_stats *stats, char *err, size_t err_len)
{
	struct importer im = { .file = file, .err = err, .err_len = err_len };
	struct csv_row header_row = { 0 }, row = { 0 };
	struct row_state st = { 0 };
	struct header h = { 0 };
	struct table t = { 0 };
	json_t *out = NULL;
	char *dumped = NULL;
	size_t rows = 0, i;
	struct csv c;
	int ret = -1, got;

	*json = NULL;
	if (err && err_len)
		err[0] = '\0';
	if (memchr(text, '\0', len)) {
		fail_at(&im, 0, 0, NULL, "NUL byte: this is not a text file; export the table as "
			"CSV (UTF-8)");
		goto out;
	}
	csv_init(&c, &im, text, len);
	do {
		got = csv_read_row(&c, &header_row);
		if (got < 0)
			goto out;
	} while (got && row_is_blank(&header_row));
	if (!got) {
		fail_at(&im, 0, 0, NULL, "no header row: the file is empty; the first row names "
			"the columns, e.g. model,tier,rpm");
		goto out;
	}
	if (parse_header(&im, &header_row, o, &h))
		goto out;
	while ((got = csv_read_row(&c, &row)) > 0) {
		if (row_is_blank(&row))
			continue;
		if (check_row_shape(&im, &row, &h) || import_row(&im, &row, &h, &st, &t))
			goto out;
		rows++;
	}
	if (got < 0)
		goto out;
	if (!rows) {
		fail_at(&im, header_row.line, 0, NULL, "no rows under the header: the table "
			"defines no tier; add a row per tier and model");
		goto out;
	}
	if (o->default_tier) {
		char buf[128], list[512] = "";

		for (i = 0; i < t.nr_tiers && strcmp(t.tiers[i].name, o->default_tier); i++)
			;
		if (i == t.nr_tiers) {
			for (i = 0; i < t.nr_tiers; i++) {
				if (strlen(list) + strlen(t.tiers[i].name) + 8 >= sizeof(list)) {
					strcat(list, ", ...");
					break;
				}
				if (i)
					strcat(list, ", ");
				strcat(list, t.tiers[i].name);
			}
			fail_at(&im, 0, 0, NULL, "--default-tier %s is not a tier of this table "
				"(tiers: %s); name one of them (tier names are case-sensitive)",
				shown(o->default_tier, buf, sizeof(buf)), list);
			goto out;
		}
	}
	out = table_json(&t, o);
	dumped = out ? table_text(out) : NULL;
	if (!dumped) {
		fail_oom(&im);
		goto out;
	}
	if (validate(&im, dumped))
		goto out;
	if (stats) {
		stats->rows = rows;
		stats->tiers = t.nr_tiers;
		stats->models = t.models.n + t.any_star; /* "*" counted as one */
		stats->entries = t.nr_entries;
	}
	*json = dumped;
	dumped = NULL;
	ret = 0;
out:
	free(dumped);
	json_decref(out);
	free(h.cols);
	csv_row_free(&header_row);
	csv_row_free(&row);
	table_free(&t);
	return ret;
}

