/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One hex digit's value, for every parser that reads hex: chunk sizes (the BPF response meter,
 * the usage reader) and "sha256:" key digests in a tier table. Either case, as HTTP and
 * sha256sum output allow.
 */
#ifndef RLS_HEX_DIGIT_H
#define RLS_HEX_DIGIT_H

/* The digit's value 0..15, or -1 when c is not a hex digit. */
static inline __attribute__((always_inline)) int rls_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif /* RLS_HEX_DIGIT_H */
