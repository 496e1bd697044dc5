/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A fleet's limits as one host applies them (README, "A fleet of gateways"), shared by XDP
 * (under the counter's lock) and by the unit tests.
 *
 * The minute, hour and day windows are leased: the host admits, in window W, at most the lease
 * its daemon got from Redis for W, and before the first lease of W at most fleet_unleased
 * requests (so an idle account's first request never waits for Redis). Everything that cannot
 * wait for a round trip, the second window, the rpm smoothing and the token budgets, is a
 * static share: ceil(limit / hosts) on each host.
 */
#ifndef RLS_FLEET_LEASE_H
#define RLS_FLEET_LEASE_H

#include "rlshape.h"

#define RLS_FLEET_INLINE static inline __attribute__((always_inline))

/* ceil(limit / hosts): one host's share. Unlimited stays unlimited; 0 hosts is 1. */
RLS_FLEET_INLINE __u64 rls_fleet_share(__u64 limit, __u64 hosts, __u64 unlimited)
{
	if (limit == unlimited || hosts <= 1)
		return limit;
	return limit / hosts + (limit % hosts != 0);
}

/* The limits that are not leased, cut to this host's share (l is a copy). */
RLS_FLEET_INLINE void rls_fleet_local_limits(struct rls_limits *l)
{
	__u32 hosts = l->fleet_hosts;

	if (hosts <= 1)
		return;
	l->rps = (__u32)rls_fleet_share(l->rps, hosts, RLS_UNLIMITED);
	/* The smoothing's rate is rpm / hosts here: each request stands for hosts of them. */
	l->smooth_interval_ns *= hosts;
	l->burst = (__u32)rls_fleet_share(l->burst, hosts, RLS_UNLIMITED);
	l->tpm = rls_fleet_share(l->tpm, hosts, RLS_TOKENS_UNLIMITED);
	l->tpd = rls_fleet_share(l->tpd, hosts, RLS_TOKENS_UNLIMITED);
	l->token_burst = rls_fleet_share(l->token_burst, hosts, RLS_TOKENS_UNLIMITED);
}

RLS_FLEET_INLINE int rls_fleet_leased_window(__u32 w)
{
	return w == RLS_WINDOW_MINUTE || w == RLS_WINDOW_HOUR || w == RLS_WINDOW_DAY;
}

/*
 * The most window w (index window) admits here now, under the counter's lock, for a request
 * decided under limit: its lease, or fleet_unleased before the window has one. Notes the
 * request for the daemon (fleet_asked, fleet_limit).
 */
RLS_FLEET_INLINE __u32 rls_fleet_window_limit(struct rls_counter *c, const struct rls_limits *l,
					      __u32 w, __u32 window, __u32 limit)
{
	__u32 lease;

	if (!l->fleet_hosts || !rls_fleet_leased_window(w) || w >= RLS_NR_WINDOWS)
		return limit;
	c->fleet_asked[w] = window;
	c->fleet_limit[w] = limit;
	if (limit == RLS_UNLIMITED)
		return limit;
	lease = c->fleet_window[w] == window ? c->fleet_lease[w] : l->fleet_unleased;
	return lease < limit ? lease : limit;
}

/*
 * A lease that ran out while the fleet's budget is not spent is topped up within the daemon's
 * next sync: the client is told to retry in a second, not at the window's end.
 */
RLS_FLEET_INLINE int rls_fleet_topping_up(const struct rls_counter *c, __u32 w, __u32 window,
					  __u32 window_limit, __u32 limit)
{
	return window_limit < limit && w < RLS_NR_WINDOWS && c->fleet_spent[w] != window;
}

#endif /* RLS_FLEET_LEASE_H */
