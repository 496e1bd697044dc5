/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One hex digit's value, for every parser that reads hex: chunk sizes (the BPF response meter,
 * the usage reader) and "sha256:" key digests in a tier table. Either case, as HTTP and
 * sha256sum output allow. And the other way, eight digits at once, for the 429's x-request-id.
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

/*
 * The eight lower-case hex digits of v as a little-endian word of text, most significant
 * first, computed without a table or a loop: the nibbles spread to a byte each (halves, then
 * bytes, then nibbles apart), the bytes turned around so that the top nibble comes first, '0'
 * added, and 'a' - '0' - 10 more where the nibble is 10 or more (its byte plus 6 reaches bit 4).
 */
static inline __attribute__((always_inline)) unsigned long long rls_hex_word(unsigned int v)
{
	unsigned long long x = v, letter;

	x = (x | (x << 16)) & 0x0000ffff0000ffffull;
	x = (x | (x << 8)) & 0x00ff00ff00ff00ffull;
	x = (x | (x << 4)) & 0x0f0f0f0f0f0f0f0full;
	x = __builtin_bswap64(x);
	letter = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
	return x + 0x3030303030303030ull + letter * ('a' - '0' - 10);
}

#endif /* RLS_HEX_DIGIT_H */
