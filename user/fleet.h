/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The daemon's fleet thread (README, "A fleet of gateways"): where the live table has a
 * "fleet", it keeps this host's leases of every active named account's minute, hour and day
 * windows topped up from Redis, and falls back to a share of each limit while Redis is away.
 * Redis is only ever called from this thread, with timeouts: neither the packet path nor the
 * daemon's settling waits on it.
 */
#ifndef RLS_USER_FLEET_H
#define RLS_USER_FLEET_H

#include <linux/types.h>

enum rls_fleet_state {
	RLS_FLEET_OFF,       /* the live table has no "fleet" */
	RLS_FLEET_JOINING,   /* connected: telling Redis what this host holds, on shares meanwhile */
	RLS_FLEET_LEASING,   /* leases from Redis */
	RLS_FLEET_FALLBACK,  /* Redis away: each host admits its share, limit / hosts */
};

/* What an exporter reads (rls_fleet_stats()); counts since the daemon started. */
struct rls_fleet_stats {
	enum rls_fleet_state state;
	__u64 redis_calls;    /* lease scripts and pings sent */
	__u64 redis_errors;   /* ... that failed or timed out, and failed connects */
	__u64 fallbacks;      /* times Redis was found away */
	__u64 joins;          /* times this host joined (or rejoined) the fleet */
	__u64 leases_asked;   /* lease scripts that asked for more */
	__u64 requests_leased;/* requests granted by them */
	__u64 shares_set;     /* windows given a fallback share */
};

/* Starts the thread for the pins under pin_dir; host names this gateway in Redis. */
int rls_fleet_start(const char *pin_dir, const char *host);
void rls_fleet_stop(void);
void rls_fleet_stats(struct rls_fleet_stats *out);

struct rls_expo;
/* The stats as Prometheus families (rlshape_fleet_*), for the daemon's /metrics. */
void rls_fleet_write_metrics(struct rls_expo *e);
const char *rls_fleet_state_name(enum rls_fleet_state state);

#endif /* RLS_USER_FLEET_H */
