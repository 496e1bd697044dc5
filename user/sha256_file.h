/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * SHA-256 of a whole file's bytes: the "table hash" that `rlshape status` prints and the
 * loaded configuration records, so an operator can tell which tiers.json is live with
 * `sha256sum tiers.json`.
 */
#ifndef RLS_SHA256_FILE_H
#define RLS_SHA256_FILE_H

#include <stddef.h>
#include <linux/types.h>

/* SHA-256 of len bytes at data into out. Returns 0, or -1 when data is NULL and len is not 0. */
int rls_sha256_file_bytes(const void *data, size_t len, __u8 out[32]);

#endif /* RLS_SHA256_FILE_H */
