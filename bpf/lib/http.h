/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * HTTP/1.1's byte classes, as requests (http_request.h) and responses (http_response.h) are
 * read: field names are case-insensitive, and optional whitespace is a space or a tab
 * (RFC 9110 5.1, 5.6.3).
 */
#ifndef RLS_BPF_HTTP_H
#define RLS_BPF_HTTP_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

static __always_inline __u8 rls_lower(__u8 c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static __always_inline bool rls_is_ows(__u8 c)
{
	return c == ' ' || c == '\t';
}

#endif /* RLS_BPF_HTTP_H */
