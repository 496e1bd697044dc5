/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Who sent a request, which limits apply, and whether it is admitted.
 *
 * Each (account, model) has one counter: a fixed calendar window per request limit (second,
 * minute, hour, UTC day) and a GCRA timestamp for the per-second smoothing of rpm. One spin
 * lock covers them all, so concurrent requests on every CPU see the same serial order and a
 * request is charged to every window or to none: no window ever admits more than its limit.
 */
#ifndef RLS_BPF_POLICY_H
#define RLS_BPF_POLICY_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rlshape.h"
#include "packet.h"
#include "scratch.h"
#include "maps.h"
#include "flow_counter.h"
#include "slot_ring.h"
#include "ipv4_mapped.h"
#include "token_budget.h"
#include "fleet_lease.h"
#include "calendar.h"
#include "siphash.h"

/*
 * An IPv6 client owns a whole prefix (a /64 at least), so counting it per address would give it
 * 2^64 budgets and let it fill rls_anon_counters: its counter keys on the prefix only. IPv4
 * clients are counted per address.
 */
static __always_inline __u32 rls_anonymous_shared_bits(const struct rls_config *cfg,
						       const __u8 client[16])
{
	__u32 prefix = cfg->anonymous_ipv6_prefix;

	if (rls_is_ipv4_mapped(client) || prefix >= RLS_CLIENT_ADDR_BITS)
		return 0;
	return RLS_CLIENT_ADDR_BITS - prefix;
}


static __always_inline void rls_identify(const struct rls_config *cfg, __u32 generation,
					 const struct rls_flow_key *flow,
					 const struct rls_principal *by_key, struct rls_identity *id)
{
	struct rls_cidr_key cidr = { .prefixlen = 32 + 128, .generation = bpf_htonl(generation) };
	struct rls_principal *p;

	if (by_key) {
		id->principal = *by_key;
		return;
	}
	__builtin_memcpy(cidr.addr, flow->client, sizeof(cidr.addr));
	p = bpf_map_lookup_elem(&rls_cidrs, &cidr);
	if (p) {
		id->principal = *p;
		return;
	}
	if (cfg->default_tier == RLS_TIER_NONE) {
		id->unlimited = 1;
		return;
	}
	id->anonymous = 1;
	id->shared_bits = (__u8)rls_anonymous_shared_bits(cfg, flow->client);
	id->principal.account = RLS_ACCOUNT_ANONYMOUS;
	id->principal.tier = cfg->default_tier;
}

/* The tier's entry for the model, else its "*" entry; NULL means no limit at all. */
static __always_inline const struct rls_limits *rls_lookup_limits(__u32 generation, __u32 tier,
								  __u32 model)
{
	struct rls_limit_key key = { .generation = generation, .tier = tier, .model = model };
	const struct rls_limits *limits = bpf_map_lookup_elem(&rls_limits, &key);

	if (limits || model == RLS_MODEL_HIDDEN)
		return limits;
	key.model = RLS_MODEL_OTHER;
	return bpf_map_lookup_elem(&rls_limits, &key);
}

/* What the request ids' salts are derived from, besides the CPU: "req-salt", a word. */
#define RLS_REQUEST_ID_SALT_OF 0x746c61732d716572ull

/*
 * A 64-bit id, not a counter: the request's nanosecond clock plus a salt of this CPU's,
 * SipHash-1-3 under the device's secret of the CPU's number, derived at the CPU's first
 * refusal. Unique across CPUs (their salts are far apart), reloads and gateways (other
 * secrets) without shared state, and it tells a client nothing but the time between its own
 * refusals: nothing of it depends on others' requests. It replaces a draw of
 * bpf_get_prandom_u32(), which is documented as not cryptographically secure and cost about
 * 30 ns on the host where it was measured (BENCHMARKS.md); SipHash of the clock on every
 * refusal cost about as much. The salt's sum costs nothing (the verifier inlines
 * bpf_get_smp_processor_id()).
 */
static __always_inline __u64 rls_new_request_id(struct rls_scratch *s, const struct rls_config *cfg,
						__u64 now_ns)
{
	if (!s->request_id_salt)
		s->request_id_salt = rls_siphash64_words_cd(cfg->key_secret, RLS_REQUEST_ID_SALT_OF,
							    bpf_get_smp_processor_id(), 1, 3) | 1;
	return now_ns + s->request_id_salt;
}

/*
 * No counter could be found or made: the map is full, or (anonymous) even the overflow counter
 * `rlshape load` creates is gone. Unlimited would be the wrong way to fail: the request is
 * refused like a full per-second window, so the client retries in a second. Its limit is not
 * known here: 0.
 */
static __always_inline void rls_reject_without_counter(struct rls_rejection *v)
{
	v->reason = RLS_REASON_RPS;
	v->reset_ms = 1000;
	v->limit = 0;
	v->remaining = 0;
	rls_count_packet(RLS_PKT_COUNTER_FULL);
}

/*
 * The counter of (account, model[, client prefix]); *shared: rls_flow.counter_shared. NULL
 * means no counter: s->rejection then refuses the request.
 */
static __always_inline struct rls_counter *rls_lookup_counter(struct rls_scratch *s,
							      const struct rls_identity *id,
							      __u32 model,
							      const struct rls_flow_key *flow,
							      __u32 *shared)
{
	struct rls_counter_key key = { .account = id->principal.account, .model = model };
	void *map = &rls_counters;
	struct rls_counter *c;

	if (id->anonymous) {
		__builtin_memcpy(key.client, flow->client, sizeof(key.client));
		rls_clear_client_bits(key.client, id->shared_bits);
		*shared = id->shared_bits;
		map = &rls_anon_counters;
		c = bpf_map_lookup_elem(&rls_anon_counters, &key);
	} else {
		/*
		 * A lookup of its own: the verifier inlines a hash lookup only where one map
		 * reaches the call. Through the helper and the map's ops, this lookup took 4 % of
		 * a request's profile samples. The barrier keeps clang from merging the two calls.
		 */
		c = bpf_map_lookup_elem(&rls_counters, &key);
		barrier_var(c);
	}
	if (c)
		return c;
	/* Two CPUs may race to create it: NOEXIST keeps the first, both then share it. */
	bpf_map_update_elem(map, &key, rls_fresh_value(s), BPF_NOEXIST);
	c = bpf_map_lookup_elem(map, &key);
	if (!c && id->anonymous) {
		/* The map is full: this client shares the overflow counter `rlshape load` made. */
		*shared = RLS_CLIENT_ADDR_BITS;
		__builtin_memset(key.client, 0, sizeof(key.client));
		c = bpf_map_lookup_elem(map, &key);
	}
	if (!c)
		rls_reject_without_counter(&s->rejection);
	return c;
}

static __always_inline __u32 rls_ceil_div(__u64 a, __u64 b)
{
	return (__u32)((a + b - 1) / b);
}

static __always_inline bool rls_has_token_limits(const struct rls_limits *l)
{
	return l->tpm != RLS_TOKENS_UNLIMITED || l->tpd != RLS_TOKENS_UNLIMITED;
}

static __always_inline bool rls_has_concurrency_limit(const struct rls_limits *l)
{
	return l->concurrency != RLS_UNLIMITED;
}

/* Concurrency, under the lock: every slot held (expired ones freed first) rejects. */
static __always_inline void rls_check_slots(struct rls_counter *c, const struct rls_limits *l,
					    __u64 now_ns, struct rls_rejection *v)
{
	if (!rls_has_concurrency_limit(l) ||
	    !rls_slots_full(c, l->concurrency, l->max_hold_ns, now_ns))
		return;
	v->reason = RLS_REASON_CONCURRENCY;
	v->limit = l->concurrency;
	v->remaining = 0;
	/* When a slot frees is the upstream's business: the vendors say to retry in a second. */
	v->reset_ms = 1000;
}

/*
 * The decision itself, under the counter's lock (no helper or function calls in here).
 * Windows are checked before the smoothing so that a client over its minute total hears
 * "Requests rate limit exceeded", and a client under it but too fast hears the burst message;
 * concurrency and token budgets come last. An admitted request is charged to every window,
 * reserves its estimated tokens and takes a slot where concurrency is limited: returns 1 when
 * it took one, in epoch *slot_epoch.
 *
 * Shaping (may_shape: the caller can delay the request, TC egress; and the limits' "shape"): a
 * request too fast for the smoothing, that would conform at most shape_max_delay_ns from now, is
 * admitted to depart then, *delay_ns from now, and spends the smoothing's slot at that time,
 * so the next one is spaced after it. Windows, slots and tokens are charged now, as for any
 * admitted request: a window never admits more than its limit, whenever its requests leave.
 */
static __always_inline int rls_admit(struct rls_counter *c, const struct rls_limits *l,
				     __u64 now_ns, __u64 reserve, bool may_shape,
				     struct rls_rejection *v, __u64 *slot_epoch, __u64 *delay_ns)
{
	int slot_taken = 0;
	__u32 limit[RLS_NR_WINDOWS] = { l->rps, l->rpm, l->rph, l->rpd };
	__u32 window[RLS_NR_WINDOWS], count[RLS_NR_WINDOWS];
	__u64 now_s = rls_utc_seconds(now_ns), now_ms = rls_utc_ms(now_ns, now_s);
	__u64 tat = 0, tolerance, wait = 0, shape_max_ns = may_shape ? l->shape_max_delay_ns : 0;
	__u32 w, reset_ms, here;

	for (w = 0; w < RLS_NR_WINDOWS; w++)
		window[w] = rls_window_index(now_s, w);
	bpf_spin_lock(&c->lock);
	for (w = 0; w < RLS_NR_WINDOWS; w++) {
		/* A clock stepped back stays in the window it had: never a fresh budget. */
		count[w] = (__s32)(window[w] - c->window_start[w]) > 0 ? 0 : c->window_count[w];
		here = rls_fleet_window_limit(c, l, w, window[w], limit[w]);
		if (here == RLS_UNLIMITED || count[w] < here)
			continue;
		/* Of all full windows, the one that frees up last says when to retry. */
		reset_ms = (__u32)(((__u64)window[w] + 1) * rls_window_seconds(w) * 1000 - now_ms);
		if (rls_fleet_topping_up(c, w, window[w], here, limit[w]))
			reset_ms = 1000;
		if (v->reason && reset_ms <= v->reset_ms)
			continue;
		v->reason = RLS_REASON_RPS + w;
		v->limit = limit[w];
		v->remaining = 0;
		v->reset_ms = reset_ms;
	}
	/* Where rpd applies, every 429 also says where the day stands. */
	v->day_limit = l->rpd;
	v->day_remaining = l->rpd > count[RLS_WINDOW_DAY] ? l->rpd - count[RLS_WINDOW_DAY] : 0;
	v->day_reset_s = (__u32)(((__u64)window[RLS_WINDOW_DAY] + 1) * 86400 - now_s);
	if (!v->reason && l->smooth_interval_ns) {
		tat = c->smooth_tat_ns > now_ns ? c->smooth_tat_ns : now_ns;
		tolerance = (__u64)(l->burst ? l->burst - 1 : 0) * l->smooth_interval_ns;
		/* Conforming at tat - tolerance: that far ahead is the wait, shaped or refused. */
		if (tat - now_ns > tolerance)
			wait = tat - tolerance - now_ns;
		if (wait > shape_max_ns) {
			v->reason = RLS_REASON_BURST;
			v->limit = l->rpm;
			v->remaining = l->rpm > count[RLS_WINDOW_MINUTE] ? l->rpm - count[RLS_WINDOW_MINUTE] : 0;
			v->reset_ms = rls_ceil_div(wait, 1000000);
		}
	}
	if (!v->reason)
		rls_check_slots(c, l, now_ns, v);
	if (!v->reason)
		rls_check_tokens(c, l, now_ns, window[RLS_WINDOW_DAY], v);
	if (!v->reason) {
		for (w = 0; w < RLS_NR_WINDOWS; w++) {
			c->window_start[w] = (__s32)(window[w] - c->window_start[w]) > 0 ? window[w]
											: c->window_start[w];
			c->window_count[w] = count[w] + 1;
		}
		if (l->smooth_interval_ns)
			c->smooth_tat_ns = tat + l->smooth_interval_ns;
		rls_reserve_tokens(c, l, window[RLS_WINDOW_DAY], reserve);
		if (rls_has_concurrency_limit(l)) {
			*slot_epoch = rls_slots_take(c);
			slot_taken = 1;
		}
	}
	bpf_spin_unlock(&c->lock);
	*delay_ns = v->reason ? 0 : wait;
	return slot_taken;
}

/*
 * The row of rls_stats_rows that counts (account, model): the one rls_stats names, or one handed
 * out now, a row `rlshape load` gave back first. -1 where there is none to be had (every row
 * taken): the outcome then goes uncounted, as it did when the counts' map was full.
 */
static __always_inline int rls_stats_row_of(__u32 account, __u32 model, __u32 *row)
{
	struct rls_stats_key key = { .account = account, .model = model };
	__u32 *found = bpf_map_lookup_elem(&rls_stats, &key), zero = 0, *next;

	if (found) {
		*row = *found;
		return 0;
	}
	if (bpf_map_pop_elem(&rls_stats_free, row)) {
		next = bpf_map_lookup_elem(&rls_stats_next, &zero);
		/* Checked first, so that failed tries never carry next round to row 0 again. */
		if (!next || *next >= RLS_MAX_STATS)
			return -1;
		*row = __sync_fetch_and_add(next, 1);
		if (*row >= RLS_MAX_STATS)
			return -1;
	}
	/* Two CPUs may each take a row for a new pair: the first to insert it keeps its row, and
	 * the other's, never counted in, goes back. */
	if (bpf_map_update_elem(&rls_stats, &key, row, BPF_NOEXIST)) {
		bpf_map_push_elem(&rls_stats_free, row, 0);
		found = bpf_map_lookup_elem(&rls_stats, &key);
		if (!found)
			return -1;
		*row = *found;
	}
	return 0;
}

/*
 * Count a request's outcome: reason, and for an admitted one delay_ns, how long shaping holds it
 * (0: it leaves at once). The row comes from the memo m where it holds (the same load_seq, the
 * same account and model), else from rls_stats, and goes into the memo; m NULL: no memo.
 * Returns 1 where the row was looked up.
 */
static __always_inline int rls_count_outcome(struct rls_flow_memo *m, __u32 load_seq,
					      __u32 account, __u32 model, __u32 reason,
					      __u64 delay_ns)
{
	struct rls_stats *st;
	int looked = 0;
	__u32 row;

	if (m && load_seq && m->stats_load == load_seq && m->stats_account == account &&
	    m->stats_model == model) {
		row = m->stats_row;
	} else {
		if (rls_stats_row_of(account, model, &row))
			return 0;
		looked = 1;
		if (m) {
			m->stats_load = load_seq;
			m->stats_account = account;
			m->stats_model = model;
			m->stats_row = row;
		}
	}
	st = bpf_map_lookup_elem(&rls_stats_rows, &row);
	if (!st)
		return looked;
	if (reason == RLS_REASON_NONE) {
		st->admitted++;
		if (delay_ns) {
			st->shaped++;
			st->shaped_delay_ns += delay_ns;
		}
	} else if (reason < RLS_NR_REASONS)
		st->rejected[reason]++;
	return looked;
}

#endif /* RLS_BPF_POLICY_H */
