// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The daemon's lease arithmetic: see fleet_plan.h. */
#include <stdio.h>

#include "fleet_plan.h"
#include "fleet_lease.h"

__u32 rls_fleet_part(__u32 limit, __u32 hosts)
{
	__u64 parts = (__u64)(hosts ? hosts : 1) * RLS_FLEET_LEASE_PARTS;
	__u64 part = rls_fleet_share(limit, parts, RLS_UNLIMITED);

	return part ? (__u32)part : 1;
}

__u32 rls_fleet_held(const struct rls_fleet_window_view *v)
{
	__u32 lease = v->lease == RLS_UNLIMITED ? 0 : v->lease;

	return lease > v->count ? lease : v->count;
}

bool rls_fleet_wants_more(const struct rls_fleet_window_view *v, __u32 hosts)
{
	__u32 held = rls_fleet_held(v);

	if (v->spent || held >= v->limit)
		return false;
	if (v->lease == RLS_UNLIMITED)
		return true;
	return held - v->count <= rls_fleet_part(v->limit, hosts) / 2;
}

__u32 rls_fleet_fallback_lease(const struct rls_fleet_window_view *v, __u32 hosts)
{
	__u32 held = rls_fleet_held(v);
	__u32 share = (__u32)rls_fleet_share(v->limit, hosts, RLS_UNLIMITED);

	return held > share ? held : share;
}

int rls_fleet_key(char *buf, size_t len, const char *account, const char *model, __u32 w,
		  __u32 index)
{
	static const char kind[RLS_NR_WINDOWS] = { 's', 'm', 'h', 'd' };

	return snprintf(buf, len, "rls:{%s}:%s:%c:%u", account, model,
			kind[w < RLS_NR_WINDOWS ? w : RLS_WINDOW_DAY], index);
}

__u32 rls_fleet_key_ttl(__u32 w, __u32 index, __u64 now_s)
{
	__u64 len = rls_window_seconds(w), end = ((__u64)index + 1) * len;

	return (__u32)((end > now_s ? end - now_s : 0) + len);
}
