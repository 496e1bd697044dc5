/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the daemon asks Redis for, and what a host holds while Redis is away, for one leased
 * window of one counter (README, "A fleet of gateways"). No BPF or Redis in here: unit-tested
 * in tests/unit/test_fleet_plan.c.
 *
 * A host's lease of window W is the number of requests it may admit in W. Redis keeps, per
 * (account, model, window kind, W), one field per host: what that host holds. A host asks for
 * more while a few are left, a part of limit / hosts at a time, and Redis grants what the
 * fields' sum leaves under the limit. Each call also tells Redis what the host already holds
 * (admitted before its first lease, or held while Redis was away, or before Redis restarted
 * empty): Redis raises the host's field to it first, so its sum never forgets a request.
 */
#ifndef RLS_USER_FLEET_PLAN_H
#define RLS_USER_FLEET_PLAN_H

#include <stdbool.h>
#include <linux/types.h>
#include "rlshape.h"

/* A lease is asked for in parts of limit / (hosts * RLS_FLEET_LEASE_PARTS). */
#define RLS_FLEET_LEASE_PARTS 4

/* One leased window of one counter, as the daemon read it. */
struct rls_fleet_window_view {
	__u32 limit;  /* the window's fleet-wide limit */
	__u32 count;  /* admitted here in the window */
	__u32 lease;  /* held here for the window; RLS_UNLIMITED: none yet */
	bool spent;   /* Redis said the fleet's budget of the window is gone */
};

/* How much a host asks for at a time: at least 1. */
__u32 rls_fleet_part(__u32 limit, __u32 hosts);

/* What the host has had of the window: its lease, or what it admitted if that is more. */
__u32 rls_fleet_held(const struct rls_fleet_window_view *v);

/* Whether to ask Redis for more: no lease yet, or at most half a part of it left. */
bool rls_fleet_wants_more(const struct rls_fleet_window_view *v, __u32 hosts);

/* While Redis is away: what the host holds, but at least its share ceil(limit / hosts). */
__u32 rls_fleet_fallback_lease(const struct rls_fleet_window_view *v, __u32 hosts);

/* Redis's key of a window: rls:{ACCOUNT}:MODEL:KIND:INDEX (one hash slot per account). */
int rls_fleet_key(char *buf, size_t len, const char *account, const char *model, __u32 w,
		  __u32 index);

/* Seconds Redis keeps a window's key: to the window's end, and one window more. */
__u32 rls_fleet_key_ttl(__u32 w, __u32 index, __u64 now_s);

#endif /* RLS_USER_FLEET_PLAN_H */
