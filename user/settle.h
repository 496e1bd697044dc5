/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Settlement: what `rlshape daemon` does with each metered response, without the BPF around
 * it (unit-tested in tests/unit/test_settle.c).
 *
 * At admission XDP reserves an estimate of a request's tokens from its counter's budget. When
 * TC reports the response (struct rls_response_event), the daemon decides what it really cost:
 *
 *   - exactly the upstream's `usage.total_tokens`, when the response's last bytes carry a usable
 *     usage object (plain JSON body, or the last event of a text/event-stream, chunked or not);
 *   - otherwise an estimate, ceil((request bytes + response bytes) / bytes_per_token), with the
 *     bytes_per_token of the limits the request was admitted under, which the event carries
 *     (RLS_DEFAULT_BYTES_PER_TOKEN when it is 0).
 *
 * and settles delta = tokens - reserved with the rls_settle program: a positive delta charges
 * the rest, a negative one refunds what was reserved too much. The token count itself is never
 * negative, whatever the bytes say. What settling needs of the limits is in the event (or the
 * pending entry) and in the counter, as XDP knew them at admission: the daemon keeps no copy
 * of the table, and a reload in between does not settle a response under other limits.
 */
#ifndef RLS_USER_SETTLE_H
#define RLS_USER_SETTLE_H

#include <stddef.h>
#include <linux/types.h>
#include "rlshape.h"
#include "usage.h"

/* Room for every tail slot. */
#define RLS_SETTLE_TAIL_BUF (RLS_TAIL_SLOTS * RLS_TAIL_MAX)

/*
 * The event's last bytes as one contiguous run, in stream order: the newest slot, preceded by
 * each older slot for as long as the slot after it holds its whole segment (otherwise bytes
 * are missing between the two, and joining them could splice two halves of different JSON).
 * Lengths above RLS_TAIL_MAX are clamped, never trusted. Returns the bytes written to buf
 * (at most RLS_SETTLE_TAIL_BUF).
 */
size_t rls_settle_tail(const struct rls_response_event *ev, char *buf);

/* ceil((request_bytes + response_bytes) / bytes_per_token), saturating; 0 per token means 4. */
__u64 rls_settle_estimate_tokens(__u64 request_bytes, __u64 response_bytes, __u32 bytes_per_token);

struct rls_token_count {
	__u64 tokens;          /* what the response is charged */
	int from_usage;        /* 1: the upstream's usage; 0: estimated from bytes */
	struct rls_usage usage; /* from_usage: the upstream's counts */
};

/*
 * What a response cost. The usage object is looked for in the tail's contiguous run
 * (rls_usage_find, with RLS_EVENT_CHUNKED honoured); without one, the cost is estimated from
 * bytes. Returns tokens (also in out->tokens).
 */
__u64 rls_event_tokens(const struct rls_response_event *ev, struct rls_token_count *out);

/* tokens - reserved as a signed delta, saturating at the __s64 range. */
__s64 rls_settle_delta(__u64 tokens, __u64 reserved);

/*
 * The tokens one response is charged: its count, but never more than the max_response_tokens
 * of the limits it was admitted under (0: RLS_DEFAULT_MAX_RESPONSE_TOKENS). One absurd usage
 * ("total_tokens": 2^53) must not lock an account out for years; the cap keeps every later sum
 * far inside 64 bits.
 */
__u64 rls_settle_cap_tokens(__u64 tokens, __u64 max_response_tokens);

/* The same for responses settled together: at most max_response_tokens each (saturating). */
__u64 rls_settle_cap_responses(__u64 tokens, __u64 responses, __u64 max_response_tokens);

/* ---- pending drains ---- */

int rls_pending_equal(const struct rls_pending *a, const struct rls_pending *b);

/*
 * What the responses summed in p are charged: the estimate from their bytes at p's
 * bytes_per_token, but at most p's max_response_tokens per response, as each would have been
 * charged had it reached the daemon through the ring.
 */
__u64 rls_pending_tokens(const struct rls_pending *p);

/* ---- running totals ---- */

struct rls_settle_totals {
	__u64 responses;        /* events settled by this daemon */
	__u64 capped;           /* ... whose usage was more than max_response_tokens */
	__u64 from_usage;       /* ... of which from the upstream's usage */
	__u64 estimated;        /* ... of which estimated from bytes */
	__u64 already_settled;  /* events a previous daemon had settled (not counted above) */
	__u64 no_counter;       /* events whose counter no longer exists (account or model removed) */
	__u64 failed;           /* events the settle program could not be run for */
	__u64 tokens;           /* tokens charged in all: usage or estimate, events and pending */
	__u64 reserved;         /* tokens that had been reserved for them at admission */
	__u64 parked;           /* events taken from rls_parked (settled above, like the ring's) */
	__u64 pending_entries;  /* rls_pending entries drained */
	__u64 pending_responses;/* responses in them */
	__u64 pending_tokens;   /* their estimated tokens (also in tokens) */
	__u64 pending_skipped;  /* entries changing while read: left for the next drain */
};

/* Settled tokens per (account, model). Anonymous clients are summed under account 0. */
struct rls_usage_total {
	__u32 account;
	__u32 model;
	__u64 responses;
	__u64 from_usage;
	__u64 tokens;
};

struct rls_usage_totals {
	struct rls_usage_total *slots; /* open addressing; responses 0 and used 0 marks empty */
	unsigned char *used;
	size_t n, cap;
};

void rls_usage_totals_init(struct rls_usage_totals *t);
void rls_usage_totals_free(struct rls_usage_totals *t);
/* Adds to (account, model). Returns 0 or -ENOMEM. */
int rls_usage_totals_add(struct rls_usage_totals *t, __u32 account, __u32 model, __u64 responses,
			 __u64 from_usage, __u64 tokens);
/* Every entry, sorted by (account, model), in a new array of *n (free() it); NULL when empty. */
struct rls_usage_total *rls_usage_totals_list(const struct rls_usage_totals *t, size_t *n);

#endif /* RLS_USER_SETTLE_H */
