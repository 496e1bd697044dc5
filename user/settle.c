// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Settlement of metered responses: see settle.h. No BPF calls in here. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "settle.h"
#include "token_estimate.h"

static size_t clamp_len(__u32 len)
{
	return len > RLS_TAIL_MAX ? RLS_TAIL_MAX : len;
}

size_t rls_settle_tail(const struct rls_response_event *ev, char *buf)
{
	__u32 newest = ev->tail_slot % RLS_TAIL_SLOTS, first = newest, k, slot;
	size_t n = 0, len;

	/* Walk back while the slot after holds its whole segment: no bytes are missing between. */
	for (k = 1; k < RLS_TAIL_SLOTS; k++) {
		if (!ev->tail.whole[first])
			break;
		slot = (newest + RLS_TAIL_SLOTS - k) % RLS_TAIL_SLOTS;
		if (!ev->tail.len[slot])
			break;
		first = slot;
	}
	for (slot = first;; slot = (slot + 1) % RLS_TAIL_SLOTS) {
		len = clamp_len(ev->tail.len[slot]);
		memcpy(buf + n, ev->tail.bytes[slot], len);
		n += len;
		if (slot == newest)
			break;
	}
	return n;
}

__u64 rls_settle_estimate_tokens(__u64 request_bytes, __u64 response_bytes, __u32 bytes_per_token)
{
	__u64 bytes = request_bytes + response_bytes;

	if (bytes < request_bytes) /* overflow: nothing real is this large */
		bytes = UINT64_MAX;
	return rls_tokens_for_bytes(bytes, bytes_per_token);
}

__u64 rls_event_tokens(const struct rls_response_event *ev, struct rls_token_count *out)
{
	char buf[RLS_SETTLE_TAIL_BUF];
	size_t n;
	int chunked = !!(ev->flags & RLS_EVENT_CHUNKED), found;

	memset(out, 0, sizeof(*out));
	n = rls_settle_tail(ev, buf);
	found = rls_usage_find(buf, n, chunked, &out->usage);
	if (found) {
		out->from_usage = 1;
		out->tokens = out->usage.total_tokens;
	} else {
		memset(&out->usage, 0, sizeof(out->usage));
		out->tokens = rls_settle_estimate_tokens(ev->request_bytes, ev->response_bytes,
						  ev->bytes_per_token);
		/*
		 * Cut short by the next request, the response was not seen to its end: its
		 * bytes say nothing of its length, so what was reserved stays charged.
		 */
		if ((ev->flags & RLS_EVENT_CUT) && out->tokens < ev->reserved_tokens)
			out->tokens = ev->reserved_tokens;
	}
	return out->tokens;
}

__u64 rls_settle_cap_responses(__u64 tokens, __u64 responses, __u64 max_response_tokens)
{
	__u64 each = max_response_tokens ? max_response_tokens : RLS_DEFAULT_MAX_RESPONSE_TOKENS;
	__u64 cap = responses > UINT64_MAX / each ? UINT64_MAX : responses * each;

	return tokens > cap ? cap : tokens;
}

__u64 rls_settle_cap_tokens(__u64 tokens, __u64 max_response_tokens)
{
	return rls_settle_cap_responses(tokens, 1, max_response_tokens);
}

__s64 rls_settle_delta(__u64 tokens, __u64 reserved)
{
	if (tokens >= reserved)
		return tokens - reserved > (__u64)INT64_MAX ? INT64_MAX : (__s64)(tokens - reserved);
	return reserved - tokens > (__u64)INT64_MAX ? INT64_MIN : -(__s64)(reserved - tokens);
}

int rls_pending_equal(const struct rls_pending *a, const struct rls_pending *b)
{
	return a->responses == b->responses && a->reserved_tokens == b->reserved_tokens &&
	       a->request_bytes == b->request_bytes && a->response_bytes == b->response_bytes &&
	       a->bytes_per_token == b->bytes_per_token &&
	       a->max_response_tokens == b->max_response_tokens;
}

__u64 rls_pending_tokens(const struct rls_pending *p)
{
	return rls_settle_cap_responses(rls_settle_estimate_tokens(p->request_bytes, p->response_bytes,
							    p->bytes_per_token),
					p->responses, p->max_response_tokens);
}

/* ---- per-(account, model) totals ---- */

void rls_usage_totals_init(struct rls_usage_totals *t)
{
	memset(t, 0, sizeof(*t));
}

void rls_usage_totals_free(struct rls_usage_totals *t)
{
	free(t->slots);
	free(t->used);
	rls_usage_totals_init(t);
}

static size_t slot_of(__u32 account, __u32 model, size_t cap)
{
	__u64 h = ((__u64)account << 32 | model) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 17) & (cap - 1);
}

static size_t find_slot(const struct rls_usage_totals *t, __u32 account, __u32 model)
{
	size_t i = slot_of(account, model, t->cap);

	while (t->used[i] && (t->slots[i].account != account || t->slots[i].model != model))
		i = (i + 1) & (t->cap - 1);
	return i;
}

static int totals_grow(struct rls_usage_totals *t)
{
	struct rls_usage_totals bigger;
	size_t i, j;

	bigger.cap = t->cap ? 2 * t->cap : 64;
	bigger.n = t->n;
	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	bigger.used = calloc(bigger.cap, 1);
	if (!bigger.slots || !bigger.used) {
		free(bigger.slots);
		free(bigger.used);
		return -ENOMEM;
	}
	for (i = 0; i < t->cap; i++) {
		if (!t->used[i])
			continue;
		j = find_slot(&bigger, t->slots[i].account, t->slots[i].model);
		bigger.slots[j] = t->slots[i];
		bigger.used[j] = 1;
	}
	free(t->slots);
	free(t->used);
	*t = bigger;
	return 0;
}

int rls_usage_totals_add(struct rls_usage_totals *t, __u32 account, __u32 model, __u64 responses,
			 __u64 from_usage, __u64 tokens)
{
	struct rls_usage_total *e;
	size_t i;

	if ((t->n + 1) * 4 > t->cap * 3 && totals_grow(t))
		return -ENOMEM;
	i = find_slot(t, account, model);
	e = &t->slots[i];
	if (!t->used[i]) {
		t->used[i] = 1;
		t->n++;
		memset(e, 0, sizeof(*e));
		e->account = account;
		e->model = model;
	}
	e->responses += responses;
	e->from_usage += from_usage;
	e->tokens = e->tokens + tokens < e->tokens ? UINT64_MAX : e->tokens + tokens;
	return 0;
}

static int cmp_total(const void *a, const void *b)
{
	const struct rls_usage_total *x = a, *y = b;

	if (x->account != y->account)
		return x->account < y->account ? -1 : 1;
	return x->model < y->model ? -1 : x->model > y->model;
}

struct rls_usage_total *rls_usage_totals_list(const struct rls_usage_totals *t, size_t *n)
{
	struct rls_usage_total *list;
	size_t i, k = 0;

	*n = 0;
	if (!t->n || !(list = malloc(t->n * sizeof(*list))))
		return NULL;
	for (i = 0; i < t->cap; i++)
		if (t->used[i])
			list[k++] = t->slots[i];
	if (k)
		qsort(list, k, sizeof(*list), cmp_total);
	*n = k;
	return list;
}
