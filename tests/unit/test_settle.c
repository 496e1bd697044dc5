// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Settlement logic of `rlshape daemon` (user/settle.c): the tail bytes in stream order, the
 * upstream's usage when it is there, the estimate otherwise, the delta, and the totals.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "settle.h"

#define PLAIN_BODY                                                                           \
	"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 245\r\n\r\n"  \
	"{\"id\":\"c1\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{\"index\":0," \
	"\"message\":{\"role\":\"assistant\",\"content\":\"tok tok \"},\"finish_reason\":\"stop\"}]," \
	"\"usage\":{\"prompt_tokens\":17,\"completion_tokens\":2,\"total_tokens\":19}}\n"

/* The last events of a stream with include_usage, each event one HTTP chunk. */
#define SSE_USAGE "{\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"choices\":[]," \
		  "\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":300,\"total_tokens\":340}}"
#define SSE_DONE  "[DONE]"

static struct rls_response_event *new_event(void)
{
	struct rls_response_event *ev = calloc(1, sizeof(*ev));

	assert_non_null(ev);
	ev->id = 7;
	ev->bytes_per_token = 4;
	return ev;
}

/*
 * Put a segment's bytes in a slot, as TC does: a segment longer than a slot leaves only its
 * last RLS_TAIL_MAX bytes, and the slot is then not whole.
 */
static void put_slot(struct rls_response_event *ev, __u32 slot, const char *bytes, size_t n)
{
	assert_true(n <= RLS_TAIL_MAX);
	memcpy(ev->tail.bytes[slot], bytes, n);
	ev->tail.len[slot] = (__u32)n;
	ev->tail.whole[slot] = n < RLS_TAIL_MAX;
}

static __u32 slot_before(__u32 slot)
{
	return (slot + RLS_TAIL_SLOTS - 1) % RLS_TAIL_SLOTS;
}

/* Spread text over the two slots, split at `at`, with the newest in slot `newest`. */
static void put_split(struct rls_response_event *ev, const char *text, size_t at, __u32 newest)
{
	size_t n = strlen(text);

	put_slot(ev, slot_before(newest), text, at);
	put_slot(ev, newest, text + at, n - at);
	ev->tail_slot = newest;
}

/* One SSE event as the mock upstream frames it: one chunk per event. */
static size_t sse_chunk(char *out, size_t cap, const char *data)
{
	int n = snprintf(out, cap, "%zx\r\ndata: %s\n\n\r\n", strlen(data) + 8, data);

	assert_true(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

/* ---- tail assembly ---- */

static void test_tail_older_slot_first(void **state)
{
	struct rls_response_event *ev = new_event();
	char buf[RLS_SETTLE_TAIL_BUF];
	size_t n;
	__u32 slot;

	(void)state;
	for (slot = 0; slot < RLS_TAIL_SLOTS; slot++) {
		memset(ev, 0, sizeof(*ev));
		put_slot(ev, slot_before(slot), "older-", 6);
		put_slot(ev, slot, "newest", 6);
		ev->tail_slot = slot;
		n = rls_settle_tail(ev, buf);
		assert_int_equal(n, 12);
		assert_memory_equal(buf, "older-newest", 12);
	}
	/* tail_slot names a slot modulo the ring. */
	ev->tail_slot = RLS_TAIL_SLOTS + slot_before(0);
	n = rls_settle_tail(ev, buf);
	assert_memory_equal(buf, "older-newest", n);
	free(ev);
}

/* A stream ends with three small segments: the usage event, "data: [DONE]", the last chunk. */
static void test_tail_stream_usage_three_segments_back(void **state)
{
	struct rls_response_event *ev = new_event();
	char buf[RLS_SETTLE_TAIL_BUF], usage[512];
	struct rls_token_count count;
	size_t n;

	(void)state;
	n = sse_chunk(usage, sizeof(usage), "{\"choices\":[],\"usage\":{\"prompt_tokens\":50,"
					    "\"completion_tokens\":100,\"total_tokens\":150}}");
	put_slot(ev, 2, "1a\r\ndata: {\"choices\":[{}]}\n\n\r\n", 30);
	put_slot(ev, 3, usage, n);
	put_slot(ev, 4, "e\r\ndata: [DONE]\n\n\r\n", 19);
	put_slot(ev, 5, "0\r\n\r\n", 5);
	ev->tail_slot = 5;
	ev->flags = RLS_EVENT_CHUNKED;
	assert_int_equal(rls_event_tokens(ev, &count), 150);
	assert_true(count.from_usage);
	assert_true(rls_settle_tail(ev, buf) >= n + 24);
	free(ev);
}

static void test_tail_single_segment(void **state)
{
	struct rls_response_event *ev = new_event();
	char buf[RLS_SETTLE_TAIL_BUF];

	(void)state;
	/* TC's first segment goes to slot 1; slot 0 is empty. */
	put_slot(ev, 1, "only", 4);
	ev->tail_slot = 1;
	assert_int_equal(rls_settle_tail(ev, buf), 4);
	assert_memory_equal(buf, "only", 4);
	free(ev);
}

static void test_tail_lengths_clamped(void **state)
{
	struct rls_response_event *ev = new_event();
	char buf[RLS_SETTLE_TAIL_BUF + 64];
	__u32 slot;

	(void)state;
	memset(ev->tail.bytes, 'x', sizeof(ev->tail.bytes));
	for (slot = 0; slot < RLS_TAIL_SLOTS; slot++) {
		ev->tail.len[slot] = slot ? RLS_TAIL_MAX + 1 : 0xffffffffu;
		ev->tail.whole[slot] = 1;
	}
	assert_int_equal(rls_settle_tail(ev, buf), RLS_TAIL_SLOTS * RLS_TAIL_MAX);
	free(ev);
}

/* ---- tokens from a response ---- */

static void test_usage_plain_exact(void **state)
{
	struct rls_response_event *ev = new_event();
	struct rls_token_count tc;
	const char *body = PLAIN_BODY;

	(void)state;
	put_slot(ev, 1, body, strlen(body));
	ev->tail_slot = 1;
	ev->request_bytes = 4000;
	ev->response_bytes = strlen(body);
	assert_int_equal(rls_event_tokens(ev, &tc), 19);
	assert_int_equal(tc.from_usage, 1);
	assert_int_equal(tc.usage.prompt_tokens, 17);
	assert_int_equal(tc.usage.completion_tokens, 2);
	assert_int_equal(tc.usage.total_tokens, 19);
	free(ev);
}

/* The upstream's total_tokens is what is charged, even when it is not prompt + completion. */
static void test_usage_total_is_upstreams(void **state)
{
	struct rls_response_event *ev = new_event();
	struct rls_token_count tc;
	const char *body = "{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":5,"
			   "\"total_tokens\":12}}";

	(void)state;
	put_slot(ev, 0, body, strlen(body));
	ev->tail_slot = 0;
	assert_int_equal(rls_event_tokens(ev, &tc), 12);
	assert_true(tc.from_usage);
	free(ev);
}

static void test_usage_absent_estimate(void **state)
{
	struct rls_response_event *ev = new_event();
	struct rls_token_count tc;
	const char *body = "{\"choices\":[{\"message\":{\"content\":\"hi\"}}]}";

	(void)state;
	put_slot(ev, 1, body, strlen(body));
	ev->tail_slot = 1;
	ev->request_bytes = 101;
	ev->response_bytes = 300;
	/* ceil(401 / 4) */
	assert_int_equal(rls_event_tokens(ev, &tc), 101);
	assert_int_equal(tc.from_usage, 0);
	assert_int_equal(tc.usage.total_tokens, 0);
	/* Another ratio, from the limits the request was admitted under. */
	ev->bytes_per_token = 3;
	assert_int_equal(rls_event_tokens(ev, &tc), 134);
	/* 0 means the default of 4. */
	ev->bytes_per_token = 0;
	assert_int_equal(rls_event_tokens(ev, &tc), 101);
	free(ev);
}

static void test_no_tail_estimate(void **state)
{
	struct rls_response_event *ev = new_event();
	struct rls_token_count tc;

	(void)state;
	ev->request_bytes = 8;
	ev->response_bytes = 0; /* the connection closed before any answer */
	assert_int_equal(rls_event_tokens(ev, &tc), 2);
	assert_false(tc.from_usage);
	ev->request_bytes = 0;
	assert_int_equal(rls_event_tokens(ev, &tc), 0);
	free(ev);
}

/*
 * A response the next request cut short (a pipelining client) was not seen to its end: without
 * usage, no refund below its reservation; with usage, the usage.
 */
static void test_cut_response_keeps_its_reservation(void **state)
{
	struct rls_response_event *ev = new_event();
	const char *body = "{\"usage\":{\"prompt_tokens\":5,\"total_tokens\":30}}";
	struct rls_token_count tc;

	(void)state;
	ev->flags = RLS_EVENT_CUT;
	ev->request_bytes = 300;
	ev->response_bytes = 0;
	ev->reserved_tokens = 4000;
	assert_int_equal(rls_event_tokens(ev, &tc), 4000);
	assert_false(tc.from_usage);
	/* More bytes than the reservation covers: the estimate. */
	ev->request_bytes = 20000;
	assert_int_equal(rls_event_tokens(ev, &tc), 5000);
	put_slot(ev, 1, body, strlen(body));
	ev->tail_slot = 1;
	assert_int_equal(rls_event_tokens(ev, &tc), 30);
	assert_true(tc.from_usage);
	/* Not cut: the estimate from the bytes seen, as before. */
	ev->flags = 0;
	put_slot(ev, 1, "", 0);
	ev->request_bytes = 300;
	assert_int_equal(rls_event_tokens(ev, &tc), 75);
	free(ev);
}

/* Chunked framing inside the usage object: found only when the flag says it is chunked. */
static void test_chunked_flag_honoured(void **state)
{
	struct rls_response_event *ev = new_event();
	struct rls_token_count tc;
	const char *a = "{\"usage\":{\"prompt_tokens\":1", *b = "00,\"completion_tokens\":20,"
							    "\"total_tokens\":120}}";
	char text[256];
	int n;

	(void)state;
	/* The usage object cut in two chunks: "...prompt_tokens\":1" | "00,..." */
	n = snprintf(text, sizeof(text), "%zx\r\n%s\r\n%zx\r\n%s\r\n0\r\n\r\n", strlen(a), a,
		     strlen(b), b);
	put_slot(ev, 0, text, (size_t)n);
	ev->tail_slot = 0;
	ev->request_bytes = 40;
	ev->response_bytes = (__u64)n;
	ev->flags = RLS_EVENT_CHUNKED;
	assert_int_equal(rls_event_tokens(ev, &tc), 120);
	assert_true(tc.from_usage);
	assert_int_equal(tc.usage.prompt_tokens, 100);
	/* Without the flag the chunk header splits the number: no usable object. */
	ev->flags = 0;
	rls_event_tokens(ev, &tc);
	assert_false(tc.from_usage && tc.tokens == 120);
	free(ev);
}

/* A stream's usage event followed by [DONE] and the last chunk, over two segments. */
static void test_stream_usage_across_slots(void **state)
{
	struct rls_response_event *ev = new_event();
	struct rls_token_count tc;
	char text[1024];
	size_t n, at;
	__u32 newest;

	(void)state;
	n = sse_chunk(text, sizeof(text), SSE_USAGE);
	n += sse_chunk(text + n, sizeof(text) - n, SSE_DONE);
	memcpy(text + n, "0\r\n\r\n", 6);
	n += 5;
	for (newest = 0; newest < 2; newest++) {
		/* Every split point that leaves the newest slot short of full. */
		for (at = 1; at < n; at++) {
			memset(ev, 0, sizeof(*ev));
			ev->flags = RLS_EVENT_CHUNKED;
			ev->request_bytes = 500;
			ev->response_bytes = 9000;
			put_split(ev, text, at, newest);
			assert_int_equal(rls_event_tokens(ev, &tc), 340);
			assert_true(tc.from_usage);
		}
	}
	free(ev);
}

/* The same bytes in the wrong slot order do not make the usage object. */
static void test_slot_order_matters(void **state)
{
	struct rls_response_event *ev = new_event();
	struct rls_token_count tc;
	const char *text = "{\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":8,"
			   "\"total_tokens\":15}}";
	size_t at = 20;

	(void)state;
	put_split(ev, text, at, 1);
	ev->request_bytes = 400;
	assert_int_equal(rls_event_tokens(ev, &tc), 15);
	/* Newest named wrongly: the halves are joined the other way round. */
	ev->tail_slot = 0;
	assert_int_equal(rls_event_tokens(ev, &tc), 100);
	assert_false(tc.from_usage);
	free(ev);
}

/*
 * A full newest slot may not adjoin the older one (the segment was longer than the slot): a
 * usage object that only exists by joining them is not trusted, the estimate is used.
 */
static void test_full_newest_slot_not_joined(void **state)
{
	struct rls_response_event *ev = new_event();
	struct rls_token_count tc;
	const char *head = "{\"usage\":{\"prompt_tokens\":12", *usage_end;
	char newest[RLS_TAIL_MAX];

	(void)state;
	/* Newest: the rest of an object whose middle went missing, padded to a full slot. */
	usage_end = ",\"total_tokens\":3}}";
	memset(newest, ' ', sizeof(newest));
	memcpy(newest, usage_end, strlen(usage_end));
	put_slot(ev, 0, head, strlen(head));
	put_slot(ev, 1, newest, sizeof(newest));
	ev->tail_slot = 1;
	ev->request_bytes = 1000;
	ev->response_bytes = 2000;
	assert_int_equal(rls_event_tokens(ev, &tc), 750);
	assert_false(tc.from_usage);
	/* A usage object wholly inside a full newest slot is used. */
	usage_end = strstr(PLAIN_BODY, ",\"usage\"");
	assert_non_null(usage_end);
	memset(newest, ' ', sizeof(newest));
	memcpy(newest + 100, usage_end, strlen(usage_end));
	put_slot(ev, 1, newest, sizeof(newest));
	assert_int_equal(rls_event_tokens(ev, &tc), 19);
	assert_true(tc.from_usage);
	free(ev);
}

/* Whatever is in the tail, the count is a real number of tokens and nothing crashes. */
static void test_malformed_estimated_never_negative(void **state)
{
	static const char *const bodies[] = {
		"{\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":-5,\"total_tokens\":-10}}",
		"{\"usage\":{\"total_tokens\":1e3}}",
		"{\"usage\":{\"total_tokens\":\"12\"}}",
		"{\"usage\":{\"total_tokens\":12",
		"{\"usage\":{\"total_tokens\":12,\"total_tokens\":13}}",
		"{\"usage\":{\"total_tokens\":99999999999999999999999}}",
		"{\"usage\":null}",
		"\"usage\":{}}",
		"}}}}]]]\"\"\"\\\\\\",
		"\x00\x01\x02\xff\xfe usage {",
	};
	struct rls_response_event *ev = new_event();
	struct rls_token_count tc;
	size_t i;
	__u32 seed = 1;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		memset(&ev->tail, 0, sizeof(ev->tail));
		put_slot(ev, 1, bodies[i], strlen(bodies[i]) ? strlen(bodies[i]) : 10);
		ev->tail_slot = 1;
		ev->request_bytes = 10;
		ev->response_bytes = 30;
		ev->reserved_tokens = 1000;
		ev->flags = 0;
		assert_int_equal(rls_event_tokens(ev, &tc), 10);
		assert_false(tc.from_usage);
		/* The refund is negative; the charge never is. */
		assert_int_equal(rls_settle_delta(tc.tokens, ev->reserved_tokens), -990);
		ev->flags = RLS_EVENT_CHUNKED;
		assert_int_equal(rls_event_tokens(ev, &tc), 10);
	}
	/* Random bytes, random lengths and flags: no crash, and a count when no usage. */
	for (i = 0; i < 2000; i++) {
		size_t k;

		for (k = 0; k < sizeof(ev->tail.bytes); k++) {
			seed = seed * 1103515245 + 12345;
			((__u8 *)ev->tail.bytes)[k] = "{}\":,0123456789usage_tokens \r\n"[(seed >> 16) % 31];
		}
		seed = seed * 1103515245 + 12345;
		ev->tail.len[0] = seed % (RLS_TAIL_MAX + 40);
		ev->tail.len[1] = (seed >> 12) % (RLS_TAIL_MAX + 40);
		ev->tail_slot = seed >> 31;
		ev->flags = (seed >> 8) & 1;
		ev->request_bytes = seed % 5000;
		ev->response_bytes = 17;
		rls_event_tokens(ev, &tc);
		if (!tc.from_usage)
			assert_int_equal(tc.tokens, (ev->request_bytes + 17 + 3) / 4);
	}
	free(ev);
}

/* ---- arithmetic ---- */

static void test_estimate(void **state)
{
	(void)state;
	assert_int_equal(rls_settle_estimate_tokens(0, 0, 4), 0);
	assert_int_equal(rls_settle_estimate_tokens(1, 0, 4), 1);
	assert_int_equal(rls_settle_estimate_tokens(4, 4, 4), 2);
	assert_int_equal(rls_settle_estimate_tokens(4, 5, 4), 3);
	assert_int_equal(rls_settle_estimate_tokens(9, 0, 0), 3);
	assert_int_equal(rls_settle_estimate_tokens(7, 0, 1), 7);
	/* Saturates instead of wrapping around to a small count. */
	assert_true(rls_settle_estimate_tokens(UINT64_MAX, UINT64_MAX, 1) == UINT64_MAX);
	assert_true(rls_settle_estimate_tokens(UINT64_MAX, 1, 4) == UINT64_MAX / 4 + 1);
}

/*
 * Issue 11, item 4: two responses claiming total_tokens 2^53 drove a budget to -1.8e16. A
 * response is charged at most its limits' max_response_tokens (the default without limits).
 */
static void test_absurd_usage_capped(void **state)
{
	struct rls_response_event *ev = new_event();
	struct rls_token_count tc;
	const char *body = "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,"
			   "\"total_tokens\":9007199254740992}}";

	(void)state;
	put_slot(ev, 1, body, strlen(body));
	ev->tail_slot = 1;
	ev->response_bytes = strlen(body);
	assert_true(rls_event_tokens(ev, &tc) == 9007199254740992ull);
	assert_int_equal(rls_settle_cap_tokens(tc.tokens, 50000), 50000);
	assert_int_equal(rls_settle_cap_tokens(tc.tokens, 0), RLS_DEFAULT_MAX_RESPONSE_TOKENS);
	assert_int_equal(rls_settle_cap_tokens(30, 50000), 30);
	/* Two such responses, settled, stay far inside a 64-bit budget. */
	assert_true(-2 * rls_settle_delta(rls_settle_cap_tokens(tc.tokens, 0), 0) > -(1ll << 42));
	free(ev);
}

static void test_delta(void **state)
{
	(void)state;
	assert_int_equal(rls_settle_delta(150, 100), 50);
	assert_int_equal(rls_settle_delta(100, 150), -50);
	assert_int_equal(rls_settle_delta(0, 0), 0);
	assert_true(rls_settle_delta(UINT64_MAX, 0) == INT64_MAX);
	assert_true(rls_settle_delta(0, UINT64_MAX) == INT64_MIN);
	assert_true(rls_settle_delta((__u64)INT64_MAX + 1, 1) == INT64_MAX);
}

static void test_pending(void **state)
{
	struct rls_pending a = { .responses = 3, .reserved_tokens = 300, .request_bytes = 1000,
				 .response_bytes = 2001, .bytes_per_token = 4 }, b = a;

	(void)state;
	assert_true(rls_pending_equal(&a, &b));
	b.response_bytes++;
	assert_false(rls_pending_equal(&a, &b));
	b = a;
	b.responses++;
	assert_false(rls_pending_equal(&a, &b));
	b = a;
	b.bytes_per_token = 3; /* a reload in between: read again */
	assert_false(rls_pending_equal(&a, &b));
	/* The entry's own bytes_per_token, 4 also where it is 0. */
	assert_int_equal(rls_pending_tokens(&a), 751);
	assert_int_equal(rls_pending_tokens(&b), 1001);
	a.bytes_per_token = 0;
	assert_int_equal(rls_pending_tokens(&a), 751);
	assert_int_equal(rls_settle_delta(rls_pending_tokens(&a), a.reserved_tokens), 451);
}

/*
 * Responses that missed the ring are charged no more than had they reached it: at most
 * max_response_tokens each (found by fuzz/settle.c: one drain of a response of 2^46 bytes was
 * charged 2^44 tokens, a lock-out of decades at a tpm of 30,000).
 */
static void test_pending_capped(void **state)
{
	struct rls_pending p = { .responses = 2, .reserved_tokens = 600,
				 .response_bytes = 1ull << 46, .bytes_per_token = 4,
				 .max_response_tokens = 50000 };

	(void)state;
	assert_int_equal(rls_pending_tokens(&p), 2 * 50000);
	p.max_response_tokens = 0;
	assert_int_equal(rls_pending_tokens(&p), 2 * RLS_DEFAULT_MAX_RESPONSE_TOKENS);
	p.max_response_tokens = 50000;
	p.responses = UINT64_MAX; /* the cap saturates rather than wraps to a small one */
	assert_true(rls_pending_tokens(&p) == 1ull << 44);
	p.responses = 3;
	p.response_bytes = 1000; /* under the cap: the estimate itself */
	assert_int_equal(rls_pending_tokens(&p), 250);
}

/* ---- totals ---- */

/* The total of (account, model) as the daemon's list gives it (copied into *out), or 0. */
static int total_of(const struct rls_usage_totals *t, __u32 account, __u32 model,
		    struct rls_usage_total *out)
{
	struct rls_usage_total *list;
	size_t n, i;
	int found = 0;

	list = rls_usage_totals_list(t, &n);
	for (i = 0; list && i < n; i++) {
		if (list[i].account == account && list[i].model == model) {
			*out = list[i];
			found = 1;
		}
	}
	free(list);
	return found;
}

static void test_usage_totals(void **state)
{
	struct rls_usage_totals t;
	struct rls_usage_total e;
	struct rls_usage_total *list;
	size_t n, i;
	__u32 a;

	(void)state;
	rls_usage_totals_init(&t);
	assert_false(total_of(&t, 1, 1, &e));
	assert_null(rls_usage_totals_list(&t, &n));
	assert_int_equal(n, 0);
	assert_int_equal(rls_usage_totals_add(&t, 1, 0, 1, 1, 19), 0);
	assert_int_equal(rls_usage_totals_add(&t, 1, 0, 1, 0, 101), 0);
	assert_int_equal(rls_usage_totals_add(&t, 1, 2, 3, 0, 751), 0);
	assert_true(total_of(&t, 1, 0, &e));
	assert_int_equal(e.responses, 2);
	assert_int_equal(e.from_usage, 1);
	assert_int_equal(e.tokens, 120);
	/* Grows past its first size and keeps every sum. */
	for (a = 1000; a > 0; a--)
		assert_int_equal(rls_usage_totals_add(&t, a, 5, 1, 1, a), 0);
	for (a = 1; a <= 1000; a++)
		assert_int_equal(rls_usage_totals_add(&t, a, 5, 1, 0, a), 0);
	assert_true(total_of(&t, 1, 0, &e));
	assert_int_equal(e.tokens, 120);
	list = rls_usage_totals_list(&t, &n);
	assert_non_null(list);
	assert_int_equal(n, 1002);
	for (i = 1; i < n; i++)
		assert_true(list[i - 1].account < list[i].account ||
			    (list[i - 1].account == list[i].account && list[i - 1].model < list[i].model));
	for (i = 0; i < n; i++) {
		if (list[i].model != 5)
			continue;
		assert_int_equal(list[i].tokens, 2 * list[i].account);
		assert_int_equal(list[i].responses, 2);
		assert_int_equal(list[i].from_usage, 1);
	}
	free(list);
	/* A sum saturates rather than wraps. */
	rls_usage_totals_add(&t, 77, 77, 1, 0, UINT64_MAX);
	rls_usage_totals_add(&t, 77, 77, 1, 0, 5);
	assert_true(total_of(&t, 77, 77, &e) && e.tokens == UINT64_MAX);
	rls_usage_totals_free(&t);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tail_older_slot_first),
		cmocka_unit_test(test_tail_stream_usage_three_segments_back),
		cmocka_unit_test(test_tail_single_segment),
		cmocka_unit_test(test_tail_lengths_clamped),
		cmocka_unit_test(test_usage_plain_exact),
		cmocka_unit_test(test_usage_total_is_upstreams),
		cmocka_unit_test(test_usage_absent_estimate),
		cmocka_unit_test(test_no_tail_estimate),
		cmocka_unit_test(test_cut_response_keeps_its_reservation),
		cmocka_unit_test(test_chunked_flag_honoured),
		cmocka_unit_test(test_stream_usage_across_slots),
		cmocka_unit_test(test_slot_order_matters),
		cmocka_unit_test(test_full_newest_slot_not_joined),
		cmocka_unit_test(test_malformed_estimated_never_negative),
		cmocka_unit_test(test_estimate),
		cmocka_unit_test(test_absurd_usage_capped),
		cmocka_unit_test(test_delta),
		cmocka_unit_test(test_pending),
		cmocka_unit_test(test_pending_capped),
		cmocka_unit_test(test_usage_totals),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests_name("settle", tests, NULL, NULL);
}
