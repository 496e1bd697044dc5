// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expo.h"

/* One line at most: a name, three labels of 64-byte names escaped (3 bytes a byte at worst). */
#define LINE_MAX_BYTES 2048

int rls_expo_init(struct rls_expo *e, size_t cap)
{
	memset(e, 0, sizeof(*e));
	if (cap <= RLS_EXPO_TRAILER)
		return -EINVAL;
	e->buf = malloc(cap);
	if (!e->buf)
		return -ENOMEM;
	e->cap = cap;
	e->buf[0] = '\0';
	return 0;
}

void rls_expo_free(struct rls_expo *e)
{
	free(e->buf);
	memset(e, 0, sizeof(*e));
}

/* The length of the UTF-8 sequence at s (at most n bytes), or 0 when it is not valid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t want, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		want = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		want = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		want = 4;
	else
		return 0;
	if (want > n)
		return 0;
	for (i = 1; i < want; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return want;
}

size_t rls_expo_escape_label(const char *value, char *out, size_t out_len)
{
	const unsigned char *s = (const unsigned char *)value;
	size_t n = strlen(value), i = 0, used = 0, written = 0, k;
	char tmp[4];

	while (i < n) {
		const char *piece = tmp;
		size_t piece_len;

		if (s[i] == '\\' || s[i] == '"') {
			tmp[0] = '\\';
			tmp[1] = (char)s[i];
			piece_len = 2;
			i++;
		} else if (s[i] == '\n') {
			piece = "\\n";
			piece_len = 2;
			i++;
		} else if ((k = utf8_len(s + i, n - i)) == 0) {
			piece = "\xef\xbf\xbd"; /* U+FFFD */
			piece_len = 3;
			i++;
		} else {
			piece = (const char *)s + i;
			piece_len = k;
			i += k;
		}
		/* Whole pieces only: a cut escape would be another text. */
		if (written == used && used + piece_len < out_len) {
			memcpy(out + used, piece, piece_len);
			written += piece_len;
		}
		used += piece_len;
	}
	if (out_len)
		out[written] = '\0';
	return used;
}

/* Appends a whole line, or nothing (and nothing after it) when it does not fit. */
static void put_line(struct rls_expo *e, const char *line, size_t len, bool sample)
{
	if (!e->full && e->len + len + RLS_EXPO_TRAILER < e->cap) {
		memcpy(e->buf + e->len, line, len);
		e->len += len;
		e->buf[e->len] = '\0';
		return;
	}
	e->full = true;
	if (sample)
		e->dropped++;
}

struct line {
	char text[LINE_MAX_BYTES];
	size_t len;
	bool overflow;
};

static void line_add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_add(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (l->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(l->text + l->len, sizeof(l->text) - l->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(l->text) - l->len)
		l->overflow = true;
	else
		l->len += (size_t)n;
}

/* HELP text escapes backslash and line feed only. */
static void line_add_help(struct line *l, const char *help)
{
	for (; *help; help++) {
		if (*help == '\\')
			line_add(l, "\\\\");
		else if (*help == '\n')
			line_add(l, "\\n");
		else
			line_add(l, "%c", *help);
	}
}

void rls_expo_family(struct rls_expo *e, const char *name, const char *type, const char *help)
{
	struct line l = { .len = 0 };

	line_add(&l, "# HELP %s ", name);
	line_add_help(&l, help);
	line_add(&l, "\n# TYPE %s %s\n", name, type);
	if (!l.overflow)
		put_line(e, l.text, l.len, false);
}

static void sample_head(struct line *l, const char *name, const struct rls_label *labels,
			size_t nr_labels)
{
	char value[LINE_MAX_BYTES / 4];
	size_t i;

	line_add(l, "%s", name);
	for (i = 0; i < nr_labels; i++) {
		if (rls_expo_escape_label(labels[i].value, value, sizeof(value)) >= sizeof(value))
			l->overflow = true;
		line_add(l, "%s%s=\"%s\"", i ? "," : "{", labels[i].name, value);
	}
	if (nr_labels)
		line_add(l, "}");
}

static void sample_end(struct rls_expo *e, struct line *l)
{
	if (l->overflow) {
		e->dropped++;
		return;
	}
	put_line(e, l->text, l->len, true);
}

void rls_expo_u64(struct rls_expo *e, const char *name, const struct rls_label *labels,
		  size_t nr_labels, __u64 value)
{
	struct line l = { .len = 0 };

	sample_head(&l, name, labels, nr_labels);
	line_add(&l, " %llu\n", (unsigned long long)value);
	sample_end(e, &l);
}

void rls_expo_double(struct rls_expo *e, const char *name, const struct rls_label *labels,
		     size_t nr_labels, double value)
{
	struct line l = { .len = 0 };

	sample_head(&l, name, labels, nr_labels);
	line_add(&l, " %.9g\n", value);
	sample_end(e, &l);
}

void rls_expo_finish(struct rls_expo *e)
{
	int n = snprintf(e->buf + e->len, e->cap - e->len,
			 "# HELP rlshape_scrape_samples_dropped Samples left out of this scrape: "
			 "it reached its size cap.\n"
			 "# TYPE rlshape_scrape_samples_dropped gauge\n"
			 "rlshape_scrape_samples_dropped %lu\n", e->dropped);

	if (n > 0 && (size_t)n < e->cap - e->len)
		e->len += (size_t)n;
	else
		e->buf[e->len] = '\0';
}
