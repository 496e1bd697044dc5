/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The token budgets of one counter (tpm and tpd), shared by the BPF programs (under the
 * counter's spin lock) and by the settlement fuzzer (fuzz/settle.c), which checks that the
 * arithmetic never overflows, that a refund never overfills the budget and that a 429's wait
 * is the time the refill really takes.
 */
#ifndef RLS_TOKEN_BUDGET_H
#define RLS_TOKEN_BUDGET_H

#include "rlshape.h"
#include "calendar.h"

#define RLS_TOKEN_INLINE static inline __attribute__((always_inline))

#define RLS_US_PER_MINUTE 60000000ull

#define RLS_TOKENS_S64_MAX 0x7fffffffffffffffll

/* a - b and a + b, saturating at -(2^63 - 1) and 2^63 - 1: budgets never wrap around. */
RLS_TOKEN_INLINE __s64 rls_token_sub(__s64 a, __s64 b)
{
	if (b > 0 && a < -RLS_TOKENS_S64_MAX + b)
		return -RLS_TOKENS_S64_MAX;
	if (b < 0 && a > RLS_TOKENS_S64_MAX + b)
		return RLS_TOKENS_S64_MAX;
	return a - b;
}

RLS_TOKEN_INLINE __s64 rls_token_add(__s64 a, __s64 b)
{
	if (b > 0 && a > RLS_TOKENS_S64_MAX - b)
		return RLS_TOKENS_S64_MAX;
	if (b < 0 && a < -RLS_TOKENS_S64_MAX - b)
		return -RLS_TOKENS_S64_MAX;
	return a + b;
}

/*
 * The tpm budget refills continuously at tpm/60 tokens a second up to token_burst. Time is
 * consumed only for whole tokens added, so no fraction is lost between requests. However long
 * the budget was below zero and whatever tpm the table gives, one refill adds all the time
 * since the last: a client that waited out a 429's retry-after is admitted (see
 * rls_refill_wait_ms()), and no product of time and tpm wraps around 64 bits.
 */
RLS_TOKEN_INLINE void rls_refill_tokens(struct rls_counter *c, const struct rls_limits *l,
					__u64 now_ns)
{
	__u64 elapsed_us, minutes, rest_us, room, add_rest, rest_used_us;

	c->token_burst = l->token_burst; /* for settlement's refunds */
	if (!c->token_ready) {
		c->token_ready = 1;
		c->token_budget = (__s64)l->token_burst;
		c->token_refill_ns = now_ns;
		return;
	}
	if (c->token_budget >= (__s64)l->token_burst || now_ns <= c->token_refill_ns) {
		if (c->token_budget >= (__s64)l->token_burst)
			c->token_refill_ns = now_ns;
		return;
	}
	if (!l->tpm)
		return;
	elapsed_us = (now_ns - c->token_refill_ns) / 1000;
	/* Tokens until full: at most 2^64 - 1 from a budget of -2^63. */
	room = (__u64)l->token_burst - (__u64)c->token_budget;
	minutes = elapsed_us / RLS_US_PER_MINUTE;
	rest_us = elapsed_us % RLS_US_PER_MINUTE;
	if (minutes > room / l->tpm)
		goto full;
	room -= minutes * l->tpm;
	/* rest_us * tpm / 60e6, taken apart so that it cannot wrap: tpm = q * 60e6 + r. */
	add_rest = rest_us * (l->tpm / RLS_US_PER_MINUTE) +
		   rest_us * (l->tpm % RLS_US_PER_MINUTE) / RLS_US_PER_MINUTE;
	if (add_rest >= room)
		goto full;
	if (!minutes && !add_rest)
		return;
	c->token_budget += (__s64)(minutes * l->tpm + add_rest);
	/* Past 2^38 tokens a minute (4,581 a microsecond) a microsecond's fraction is not kept. */
	rest_used_us = l->tpm < (1ull << 38) ? add_rest * RLS_US_PER_MINUTE / l->tpm : rest_us;
	c->token_refill_ns += (minutes * RLS_US_PER_MINUTE + rest_used_us) * 1000;
	return;
full:
	c->token_budget = (__s64)l->token_burst;
	c->token_refill_ns = now_ns;
}

/*
 * How long a deficit of tokens takes to refill at tpm a minute, in ms, at most what reset_ms
 * holds (49.7 days): a deficit no settlement should leave (they are capped) must still give a
 * wait that does not wrap around to a short one.
 */
RLS_TOKEN_INLINE __u32 rls_refill_wait_ms(__s64 deficit, __u64 tpm)
{
	__u64 d = deficit > 0 ? (__u64)deficit : 0, minutes, rest, part, ms;

	if (!tpm)
		return 0xffffffff;
	minutes = d / tpm;
	rest = d % tpm;
	if (minutes > 0xffffffffull / 60000)
		return 0xffffffff;
	/* rest * 60000 fits 64 bits for any tpm below 2^48; past it a ms more or less is nothing. */
	part = tpm < (1ull << 48) ? (rest * 60000 + tpm - 1) / tpm : rest / (tpm / 60000) + 1;
	ms = minutes * 60000 + part;
	return ms > 0xffffffffull ? 0xffffffff : (__u32)ms;
}

/*
 * Token limits, under the lock: a request is admitted only while the budgets are positive.
 * day: now_ns's UTC day, which the decision has already (rls_utc_day()).
 */
RLS_TOKEN_INLINE void rls_check_tokens(struct rls_counter *c, const struct rls_limits *l,
				       __u64 now_ns, __u32 day, struct rls_rejection *v)
{
	__s64 used;

	if (l->tpm != RLS_TOKENS_UNLIMITED) {
		rls_refill_tokens(c, l, now_ns);
		if (c->token_budget <= 0) {
			v->reason = RLS_REASON_TOKENS;
			v->limit = l->tpm;
			v->remaining = 0;
			/* Until the budget is back above zero, at tpm/60 tokens a second. */
			v->reset_ms = rls_refill_wait_ms(rls_token_sub(1, c->token_budget), l->tpm);
			return;
		}
	}
	if (l->tpd != RLS_TOKENS_UNLIMITED) {
		used = c->token_day == day ? c->token_day_used : 0;
		if (used >= (__s64)l->tpd) {
			v->reason = RLS_REASON_TOKENS;
			v->limit = l->tpd;
			v->remaining = 0;
			v->reset_ms = (__u32)(((__u64)day + 1) * 86400000 -
					      rls_utc_ms(now_ns, rls_utc_seconds(now_ns)));
		}
	}
}

/* day: the request's UTC day, as for rls_check_tokens(). */
RLS_TOKEN_INLINE void rls_reserve_tokens(struct rls_counter *c, const struct rls_limits *l,
					 __u32 day, __u64 reserve)
{
	if (l->tpm != RLS_TOKENS_UNLIMITED)
		c->token_budget -= (__s64)reserve;
	if (l->tpd != RLS_TOKENS_UNLIMITED) {
		if (c->token_day != day) {
			c->token_day = day;
			c->token_day_used = 0;
		}
		c->token_day_used += (__s64)reserve;
	}
}

/*
 * A settlement: delta (tokens used minus reserved) charged, or refunded up to the counter's
 * token_burst (that of its latest refill). Nothing wraps, however near the ends of 64 bits the
 * budget and delta are: a refund to a budget near 2^63 must not turn it into one near -2^63.
 */
RLS_TOKEN_INLINE void rls_settle_token_delta(struct rls_counter *c, __s64 delta, __u32 day)
{
	__s64 ceiling = c->token_burst > (__u64)RLS_TOKENS_S64_MAX ? RLS_TOKENS_S64_MAX
								  : (__s64)c->token_burst;

	if (c->token_ready) {
		c->token_budget = rls_token_sub(c->token_budget, delta);
		if (c->token_budget > ceiling)
			c->token_budget = ceiling; /* a refund never overfills */
	}
	if (c->token_day == day) {
		c->token_day_used = rls_token_add(c->token_day_used, delta);
		if (c->token_day_used < 0)
			c->token_day_used = 0;
	}
}

#endif /* RLS_TOKEN_BUDGET_H */
