// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Settlement arithmetic: one counter's token budget driven by a fuzzed sequence of admissions,
 * settled responses, pending drains and passing time, with the same code the BPF programs run
 * on it (include/token_budget.h) and the daemon's settlement (user/settle.c). The limits are
 * ones the tier table accepts; the rest (reservations up to 2^48 tokens, usage counts, byte
 * counts, response tails, clock jumps of years) is whatever the input says. Properties:
 *
 *   - no arithmetic overflows (UBSan) and the budget is exactly what 128-bit arithmetic says;
 *   - a response is charged at most max_response_tokens (a drain of n responses at most n
 *     times that), and a refund never gives back more than was reserved;
 *   - the budget never exceeds token_burst, and never falls below the documented floor: one
 *     reservation less a token below zero, less what settled responses cost beyond theirs;
 *   - a 429's wait is the refill time of the deficit, rounded up to a millisecond, and once it
 *     has passed the budget is above zero again: retrying then is admitted;
 *   - the estimate is the exact ceiling of bytes / bytes_per_token (saturating), and the tail
 *     a usage object is looked for in ends with the newest segment's bytes.
 */
#include "fuzz.h"
#include "settle.h"
#include "token_budget.h"

#define MAX_IN_FLIGHT 64
#define WAIT_MAX_MS   0xffffffffu

typedef __int128 i128;

struct model {
	struct rls_counter c;
	struct rls_limits l;
	__u64 now_ns;
	__u64 in_flight[MAX_IN_FLIGHT]; /* reservations of admitted, unsettled requests */
	size_t nr_in_flight;
	i128 floor; /* the budget may not go below this */
};

static __u64 pick_tpm(struct fuzz_input *in)
{
	static const __u64 common[] = { 0, 1, 60, 30000, 2000000, 1ull << 34, 1ull << 48 };
	__u64 sel = fuzz_take(in, 1);

	if (sel < 128)
		return common[sel % (sizeof(common) / sizeof(common[0]))];
	return fuzz_take(in, 8) & INT64_MAX; /* jansson's largest integer */
}

static void setup(struct model *m, struct fuzz_input *in)
{
	struct rls_limits *l = &m->l;

	memset(m, 0, sizeof(*m));
	l->tpm = pick_tpm(in);
	l->tpd = fuzz_take(in, 1) & 1 ? RLS_TOKENS_UNLIMITED : fuzz_take(in, 8) & INT64_MAX;
	l->token_burst = l->tpm ? 1 + fuzz_below(in, l->tpm) : 0;
	l->bytes_per_token = 1 + (__u32)fuzz_below(in, 1000);
	l->max_response_tokens = 1 + fuzz_below(in, RLS_MAX_RESPONSE_TOKENS);
	m->now_ns = fuzz_take(in, 8) & ((1ull << 62) - 1);
	m->floor = 0;
}

static __u32 today(const struct model *m)
{
	return (__u32)(m->now_ns / RLS_NS_PER_SEC / 86400);
}

static void check_budget(const struct model *m, const char *after)
{
	if (!m->c.token_ready)
		return;
	FUZZ_CHECK(m->c.token_budget <= (__s64)m->l.token_burst, "after %s: budget %lld > burst",
		   after, (long long)m->c.token_budget);
	FUZZ_CHECK(m->c.token_budget >= m->floor, "after %s: budget %lld below the floor %lld",
		   after, (long long)m->c.token_budget, (long long)m->floor);
	FUZZ_CHECK(m->c.token_day_used >= 0, "after %s: tpd used %lld", after,
		   (long long)m->c.token_day_used);
}

/* What waiting deficit tokens out at tpm a minute takes, in ms, rounded up; saturated. */
static i128 exact_wait_ms(i128 deficit, __u64 tpm)
{
	i128 ms;

	if (!tpm)
		return WAIT_MAX_MS;
	if (deficit <= 0)
		return 0;
	ms = (deficit * 60000 + tpm - 1) / tpm;
	return ms > WAIT_MAX_MS ? WAIT_MAX_MS : ms;
}

static void check_wait(struct model *m, const struct rls_rejection *v)
{
	i128 exact = exact_wait_ms((i128)1 - m->c.token_budget, m->l.tpm);
	struct rls_counter later = m->c;

	FUZZ_CHECK(v->reset_ms >= 1, "a 429 says to wait");
	/* Past 2^48 tokens a minute the wait may be a ms long, never short. */
	FUZZ_CHECK(v->reset_ms >= exact && v->reset_ms <= exact + (m->l.tpm >= 1ull << 48),
		   "wait %u ms for a deficit of %lld at tpm %llu: exactly %lld", v->reset_ms,
		   (long long)(1 - m->c.token_budget), (unsigned long long)m->l.tpm,
		   (long long)exact);
	if (v->reset_ms == WAIT_MAX_MS)
		return;
	rls_refill_tokens(&later, &m->l, m->now_ns + (__u64)v->reset_ms * 1000000);
	FUZZ_CHECK(later.token_budget > 0, "after the %u ms the 429 said (tpm %llu), the budget "
		   "is %lld, from %lld", v->reset_ms, (unsigned long long)m->l.tpm,
		   (long long)later.token_budget, (long long)m->c.token_budget);
}

static void admit(struct model *m, struct fuzz_input *in)
{
	struct rls_rejection v = { 0 };
	__u64 reserve = fuzz_take(in, 6);
	__s64 before;

	rls_check_tokens(&m->c, &m->l, m->now_ns, rls_utc_day(m->now_ns), &v);
	check_budget(m, "a refill");
	if (v.reason) {
		FUZZ_CHECK(v.reason == RLS_REASON_TOKENS, "reason %u", v.reason);
		/* tpm's 429 (tpd's comes with a budget above zero). */
		if (m->l.tpm != RLS_TOKENS_UNLIMITED && m->c.token_budget <= 0)
			check_wait(m, &v);
		return;
	}
	FUZZ_CHECK(m->l.tpm == RLS_TOKENS_UNLIMITED || m->c.token_budget > 0,
		   "admitted on a budget of %lld", (long long)m->c.token_budget);
	before = m->c.token_budget;
	rls_reserve_tokens(&m->c, &m->l, rls_utc_day(m->now_ns), reserve);
	if (m->l.tpm != RLS_TOKENS_UNLIMITED) {
		FUZZ_CHECK((i128)m->c.token_budget == (i128)before - reserve, "a reservation");
		/* The documented overshoot: one reservation less a token. */
		if ((i128)1 - reserve < m->floor)
			m->floor = (i128)1 - reserve;
	}
	if (m->nr_in_flight < MAX_IN_FLIGHT)
		m->in_flight[m->nr_in_flight++] = reserve;
	check_budget(m, "a reservation");
}

/* The settle program's change, checked against 128-bit arithmetic; the floor moves down by
 * what responses cost beyond their reservations. */
static void apply(struct model *m, __s64 delta, const char *what)
{
	/* The ceiling is the counter's own, set by its refills: the limits' token_burst. */
	__s64 burst = m->l.token_burst > (__u64)INT64_MAX ? INT64_MAX : (__s64)m->l.token_burst;
	i128 expect = m->c.token_budget;

	FUZZ_CHECK(!m->c.token_ready || m->c.token_burst == m->l.token_burst,
		   "%s: the counter's token_burst %llu, the limits' %llu", what,
		   (unsigned long long)m->c.token_burst, (unsigned long long)m->l.token_burst);

	if (m->c.token_ready) {
		expect -= delta;
		if (expect > burst)
			expect = burst;
	}
	if (delta > 0)
		m->floor -= delta;
	rls_settle_token_delta(&m->c, delta, today(m));
	FUZZ_CHECK((i128)m->c.token_budget == expect, "%s: budget %lld, expected %lld", what,
		   (long long)m->c.token_budget, (long long)expect);
	check_budget(m, what);
}

static __u64 take_reservation(struct model *m, struct fuzz_input *in)
{
	if (m->nr_in_flight)
		return m->in_flight[--m->nr_in_flight];
	return fuzz_take(in, 6); /* admitted before the fuzzed history began */
}

static void fill_tail(struct rls_response_event *ev, struct fuzz_input *in)
{
	__u32 slots = 1 + (__u32)fuzz_below(in, RLS_TAIL_SLOTS), k, slot;
	size_t n;

	ev->tail_slot = (__u32)fuzz_take(in, 4);
	ev->flags = (__u32)fuzz_take(in, 1);
	if (fuzz_take(in, 1) & 1) {
		/* A usage object the daemon must read, with a fuzzed count. */
		n = (size_t)snprintf((char *)ev->tail.bytes[ev->tail_slot % RLS_TAIL_SLOTS],
				     RLS_TAIL_MAX, "{\"usage\":{\"prompt_tokens\":1,\"total_tokens\":%llu}}",
				     (unsigned long long)(fuzz_take(in, 8) >> fuzz_below(in, 64)));
		ev->tail.len[ev->tail_slot % RLS_TAIL_SLOTS] = (__u32)n;
		return;
	}
	for (k = 0; k < slots; k++) {
		slot = (ev->tail_slot + RLS_TAIL_SLOTS - k) % RLS_TAIL_SLOTS;
		ev->tail.len[slot] = (__u32)fuzz_take(in, 2) % (RLS_TAIL_MAX + 64); /* some lie */
		ev->tail.whole[slot] = (__u32)fuzz_take(in, 1) & 1;
		n = in->size < RLS_TAIL_MAX ? in->size : RLS_TAIL_MAX;
		n = n < ev->tail.len[slot] ? n : ev->tail.len[slot];
		memcpy(ev->tail.bytes[slot], in->data, n);
		in->data += n;
		in->size -= n;
	}
}

static void check_tail(const struct rls_response_event *ev)
{
	static char buf[RLS_SETTLE_TAIL_BUF];
	__u32 newest = ev->tail_slot % RLS_TAIL_SLOTS;
	size_t n = rls_settle_tail(ev, buf);
	size_t last = ev->tail.len[newest] > RLS_TAIL_MAX ? RLS_TAIL_MAX : ev->tail.len[newest];

	FUZZ_CHECK(n <= RLS_SETTLE_TAIL_BUF && n >= last, "tail of %zu bytes", n);
	FUZZ_CHECK(!memcmp(buf + n - last, ev->tail.bytes[newest], last),
		   "the tail ends with the newest segment");
}

static void check_estimate(__u64 request_bytes, __u64 response_bytes, __u32 bytes_per_token)
{
	__u64 est = rls_settle_estimate_tokens(request_bytes, response_bytes, bytes_per_token);
	__u32 per = bytes_per_token ? bytes_per_token : RLS_DEFAULT_BYTES_PER_TOKEN;
	i128 bytes = (i128)request_bytes + response_bytes;

	if (bytes > UINT64_MAX)
		bytes = UINT64_MAX;
	FUZZ_CHECK(est == (__u64)((bytes + per - 1) / per), "estimate %llu",
		   (unsigned long long)est);
}

static void settle_event(struct model *m, struct fuzz_input *in)
{
	static struct rls_response_event ev; /* 4 KiB of tail */
	struct rls_token_count tc;
	__u64 charged;
	__s64 delta;

	memset(&ev, 0, sizeof(ev));
	ev.reserved_tokens = take_reservation(m, in);
	ev.request_bytes = fuzz_take(in, 8) >> fuzz_below(in, 64);
	ev.response_bytes = fuzz_take(in, 8) >> fuzz_below(in, 64);
	ev.bytes_per_token = m->l.bytes_per_token;
	ev.max_response_tokens = m->l.max_response_tokens;
	fill_tail(&ev, in);
	check_tail(&ev);
	check_estimate(ev.request_bytes, ev.response_bytes, ev.bytes_per_token);

	/* As the daemon's on_event() does. */
	rls_event_tokens(&ev, &tc);
	charged = rls_settle_cap_tokens(tc.tokens, ev.max_response_tokens);
	delta = rls_settle_delta(charged, ev.reserved_tokens);

	FUZZ_CHECK(charged <= m->l.max_response_tokens && charged <= tc.tokens,
		   "charged %llu for %llu tokens", (unsigned long long)charged,
		   (unsigned long long)tc.tokens);
	FUZZ_CHECK((i128)delta == (i128)charged - ev.reserved_tokens, "delta %lld",
		   (long long)delta);
	FUZZ_CHECK(delta >= 0 || (__u64)-(i128)delta <= ev.reserved_tokens,
		   "a refund of %lld for %llu reserved", (long long)delta,
		   (unsigned long long)ev.reserved_tokens);
	apply(m, delta, "a response");
}

static void drain_pending(struct model *m, struct fuzz_input *in)
{
	struct rls_pending p = { 0 };
	__u64 tokens, n;
	__s64 delta;

	p.responses = 1 + fuzz_take(in, 1);
	for (n = 0; n < p.responses; n++)
		p.reserved_tokens += take_reservation(m, in);
	p.request_bytes = fuzz_take(in, 8) >> fuzz_below(in, 64);
	p.response_bytes = fuzz_take(in, 8) >> fuzz_below(in, 64);
	p.bytes_per_token = m->l.bytes_per_token;
	p.max_response_tokens = m->l.max_response_tokens;

	/* As the daemon's drain_pending() does. */
	tokens = rls_pending_tokens(&p);
	delta = rls_settle_delta(tokens, p.reserved_tokens);

	FUZZ_CHECK((i128)tokens <= (i128)p.responses * m->l.max_response_tokens,
		   "%llu responses charged %llu tokens, more than %llu each",
		   (unsigned long long)p.responses, (unsigned long long)tokens,
		   (unsigned long long)m->l.max_response_tokens);
	FUZZ_CHECK(delta >= 0 || (__u64)-(i128)delta <= p.reserved_tokens, "a refund of %lld",
		   (long long)delta);
	apply(m, delta, "a pending drain");
}

static void pass_time(struct model *m, struct fuzz_input *in)
{
	__u64 step = fuzz_take(in, 1) & 1 ? fuzz_take(in, 4) * 1000ull /* up to 71 min */
					   : fuzz_take(in, 5) * 1000000ull; /* up to 35 years */

	if (m->now_ns + step < (1ull << 63))
		m->now_ns += step;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static void (*const step[])(struct model *, struct fuzz_input *) = {
		pass_time, admit, settle_event, drain_pending,
	};
	struct fuzz_input in = { data, size };
	struct model m;
	int ops;

	setup(&m, &in);
	for (ops = 0; ops < 512 && in.size; ops++)
		step[fuzz_take(&in, 1) % (sizeof(step) / sizeof(step[0]))](&m, &in);
	return 0;
}
