/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every libFuzzer harness in fuzz/ shares. A harness checks properties, not only that
 * nothing crashed: a broken one is reported with fuzz_fail(), which prints what was expected
 * and aborts, so libFuzzer keeps the input under build/fuzz/findings/.
 */
#ifndef RLS_FUZZ_H
#define RLS_FUZZ_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

__attribute__((format(printf, 1, 2), noreturn))
static inline void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "property broken: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* FUZZ_CHECK(cond, "format", ...): the property cond, and what to print when it breaks. */
#define FUZZ_CHECK(cond, fmt, ...)                                                   \
	do {                                                                         \
		if (!(cond))                                                         \
			fuzz_fail("%s:%d: %s: " fmt, __FILE__, __LINE__, #cond,      \
				  ##__VA_ARGS__);                                    \
	} while (0)

/* Reads fixed-size values off the front of the input; zeros once it runs out. */
struct fuzz_input {
	const uint8_t *data;
	size_t size;
};

static inline uint64_t fuzz_take(struct fuzz_input *in, size_t bytes)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < bytes && in->size; i++, in->data++, in->size--)
		v |= (uint64_t)in->data[0] << (8 * i);
	return v;
}

/* A value in [0, n) (n > 0), from as few bytes as it needs. */
static inline uint64_t fuzz_below(struct fuzz_input *in, uint64_t n)
{
	size_t bytes = 1;

	while (bytes < 8 && (n - 1) >> (8 * bytes))
		bytes++;
	return fuzz_take(in, bytes) % n;
}

/* Whether the message is one line that names the file it is about. */
static inline int fuzz_one_line_about(const char *msg, const char *file)
{
	size_t n = strlen(file), i;

	if (strncmp(msg, file, n) || msg[n] != ':')
		return 0;
	for (i = 0; msg[i]; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			return 0;
	return 1;
}

#endif /* RLS_FUZZ_H */
