/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Token usage from the end of an LLM API response. The egress TC program reports the last
 * bytes of each response's TCP payload; the daemon finds the upstream's own count in them:
 * the `"usage":{...}` object that OpenAI-compatible APIs put at the end of a JSON body, or in
 * the last `data: {...}` event of a text/event-stream before `data: [DONE]`.
 *
 * The bytes may start anywhere (mid-string, mid-number, mid-chunk-header), may include the
 * status line and headers of a small response, and may carry HTTP/1.1 chunked framing
 * anywhere, even inside the JSON. Only the last RLS_USAGE_WINDOW bytes are ever looked at,
 * so the work and memory per response are bounded whatever the caller passes.
 */
#ifndef RLS_USAGE_H
#define RLS_USAGE_H

#include <stddef.h>
#include <linux/types.h>

#define RLS_USAGE_WINDOW 4096 /* bytes: the usage object must end within the last this many */
#define RLS_USAGE_MAX    (1ULL << 53) /* larger counts are refused: no double holds them exactly */

struct rls_usage {
	__u64 prompt_tokens;
	__u64 completion_tokens;
	__u64 total_tokens;
};

/*
 * Finds the last complete "usage" object with integer token counts in the last
 * RLS_USAGE_WINDOW bytes of data[0, len). chunked: the bytes are an HTTP/1.1 chunked body
 * (or its tail); the framing is removed before the JSON is looked at.
 *
 * An object is usable when each of prompt_tokens, completion_tokens and total_tokens is
 * absent, null, or an integer in [0, RLS_USAGE_MAX], and at least one is an integer. An absent
 * prompt or completion count is 0 (embeddings report no completion_tokens). total_tokens is
 * the upstream's total when it gives one, even if it is not prompt + completion; otherwise
 * prompt + completion. An object with an unusable count, duplicate keys, or that does not end
 * within the bytes is skipped, and an earlier one is tried.
 *
 * Returns 1 and fills out when a usable object is found; otherwise 0 and out is zeroed.
 * Never reads outside data[0, len) and allocates at most what jansson needs for one object.
 */
int rls_usage_find(const char *data, size_t len, int chunked, struct rls_usage *out);

#endif /* RLS_USAGE_H */
