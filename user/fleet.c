// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The daemon's fleet thread: see fleet.h, and fleet_plan.h for the arithmetic.
 *
 * Each sync (every RLS_FLEET_SYNC_MS) walks the counters for named accounts whose minute, hour
 * or day window is shared and was asked for in its current window, and:
 *   - leasing: for each lease with half a part or less left, runs LEASE_SCRIPT, which raises
 *     this host's field to what it already holds and grants what is left under the limit, a
 *     part at most; the new lease is set under the counter's lock (rls_fleet_lease);
 *   - Redis away (a call failed or timed out, or no connection): every such window is given at
 *     least its share, ceil(limit / hosts), at once and in every window after, until Redis is
 *     back;
 *   - joining (Redis reached, after a fallback, a Redis restart or the daemon's start): for
 *     RLS_FLEET_JOIN_MS the host stays on its shares and tells Redis what it holds in every
 *     window it holds something in, asking for nothing, so that by the time any host asks for
 *     more, every host that noticed has put back what it held: no burst, and a Redis that
 *     restarted empty does not grant a second full window.
 * Idle accounts are never sent to Redis; a ping every RLS_FLEET_PING_MS notices a Redis that
 * went away or restarted while nothing was asked.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <hiredis/hiredis.h>

#include "calendar.h"
#include "expo.h"
#include "fleet.h"
#include "fleet_plan.h"
#include "fleet_lease.h"
#include "maps.h"
#include "map_walk.h"

#define RLS_FLEET_SYNC_MS      100
#define RLS_FLEET_TIMEOUT_MS   200  /* connect and each call: Redis away is noticed within 1 s */
#define RLS_FLEET_RECONNECT_MS 500
#define RLS_FLEET_PING_MS      500
#define RLS_FLEET_JOIN_MS      1500 /* > a ping, a reconnect and two timeouts: all hosts notice */
#define RLS_FLEET_PINS_MS      1000 /* how often the pins are checked for a new load */

/*
 * KEYS[1]: the window's hash; ARGV: host, what it holds, how many more it wants, the limit, the
 * key's ttl. Returns {what the host holds now, what the fleet holds now}.
 */
static const char LEASE_SCRIPT[] =
	"local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') "
	"local have = tonumber(ARGV[2]) "
	"if mine < have then redis.call('HSET', KEYS[1], ARGV[1], have) mine = have end "
	"local total = 0 "
	"for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end "
	"local grant = math.min(tonumber(ARGV[3]), math.max(0, tonumber(ARGV[4]) - total)) "
	"if grant > 0 then mine = redis.call('HINCRBY', KEYS[1], ARGV[1], grant) "
	"total = total + grant end "
	"redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5])) "
	"return {mine, total}";

struct fleet_item {
	struct rls_counter_key key;
	__u32 mask; /* bit w: window w is shared and in use */
	struct rls_fleet_window_view view[RLS_NR_WINDOWS];
};

struct model_entry {
	__u32 id;
	char name[RLS_MODEL_NAME_MAX];
};

struct fleet {
	char dir[256];
	char host[128];
	pthread_t thread;
	atomic_int stop;
	int started;
	pthread_mutex_t lock; /* stats */
	struct rls_fleet_stats stats;
	/* the thread's own */
	struct rls_maps maps;
	int maps_open;
	int lease_fd;
	__u32 counters_id;  /* of the rls_counters opened: an unload and load make another */
	long pins_checked_ms;
	redisContext *redis;
	char redis_host[RLS_FLEET_HOST_MAX];
	__u32 redis_port, hosts;
	long next_connect_ms, joined_ms, last_call_ms;
	__u32 window[RLS_NR_WINDOWS]; /* this sync's */
	__u64 now_s;
	struct fleet_item *items;
	size_t nr_items, cap_items;
	struct model_entry *models;
	size_t nr_models, cap_models;
	char err_logged[256];
};

static struct fleet fleet = { .lock = PTHREAD_MUTEX_INITIALIZER, .lease_fd = -1 };

static void flog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void flog(const char *fmt, ...)
{
	va_list ap;

	fputs("rlshape daemon: fleet: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

const char *rls_fleet_state_name(enum rls_fleet_state state)
{
	switch (state) {
	case RLS_FLEET_OFF:
		return "off";
	case RLS_FLEET_JOINING:
		return "joining";
	case RLS_FLEET_LEASING:
		return "leasing";
	default:
		return "fallback";
	}
}

void rls_fleet_stats(struct rls_fleet_stats *out)
{
	pthread_mutex_lock(&fleet.lock);
	*out = fleet.stats;
	pthread_mutex_unlock(&fleet.lock);
}

void rls_fleet_write_metrics(struct rls_expo *e)
{
	static const enum rls_fleet_state states[] = { RLS_FLEET_OFF, RLS_FLEET_JOINING,
						       RLS_FLEET_LEASING, RLS_FLEET_FALLBACK };
	struct rls_fleet_stats st;
	size_t i;

	rls_fleet_stats(&st);
	{
		const struct {
			const char *name, *help;
			__u64 value;
		} counters[] = {
			{ "rlshape_fleet_redis_calls_total", "Lease scripts and pings sent to Redis.",
			  st.redis_calls },
			{ "rlshape_fleet_redis_errors_total",
			  "Redis calls and connects that failed or timed out.", st.redis_errors },
			{ "rlshape_fleet_fallbacks_total",
			  "Times Redis was found away: each host on its share.", st.fallbacks },
			{ "rlshape_fleet_joins_total", "Times this host joined (or rejoined) the fleet.",
			  st.joins },
			{ "rlshape_fleet_leases_asked_total", "Lease scripts that asked Redis for more.",
			  st.leases_asked },
			{ "rlshape_fleet_requests_leased_total", "Requests Redis granted this host.",
			  st.requests_leased },
			{ "rlshape_fleet_shares_set_total", "Windows given their fallback share.",
			  st.shares_set },
		};

		rls_expo_family(e, "rlshape_fleet_state", "gauge",
				"1 for the fleet thread's state: off (no fleet in the table), joining, "
				"leasing, fallback (Redis away: limit / hosts).");
		for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
			struct rls_label l[] = { { "state", rls_fleet_state_name(states[i]) } };

			rls_expo_u64(e, "rlshape_fleet_state", l, 1, st.state == states[i]);
		}
		for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
			rls_expo_family(e, counters[i].name, "counter", counters[i].help);
			rls_expo_u64(e, counters[i].name, NULL, 0, counters[i].value);
		}
	}
}

#define COUNT(field, n)                        \
	do {                                   \
		pthread_mutex_lock(&fleet.lock);   \
		fleet.stats.field += (n);          \
		pthread_mutex_unlock(&fleet.lock); \
	} while (0)

static enum rls_fleet_state state(void)
{
	enum rls_fleet_state s;

	pthread_mutex_lock(&fleet.lock);
	s = fleet.stats.state;
	pthread_mutex_unlock(&fleet.lock);
	return s;
}

static void set_state(enum rls_fleet_state s)
{
	pthread_mutex_lock(&fleet.lock);
	fleet.stats.state = s;
	pthread_mutex_unlock(&fleet.lock);
}

/* ---- pins and the live table ---- */

static void close_pins(void)
{
	if (fleet.maps_open)
		rls_maps_close(&fleet.maps);
	fleet.maps_open = 0;
	if (fleet.lease_fd >= 0)
		close(fleet.lease_fd);
	fleet.lease_fd = -1;
}

static __u32 map_id(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

/* Whether the pinned rls_counters is still the one opened (not after an unload and a load). */
static bool same_load(void)
{
	char path[512];
	__u32 id;
	int fd;

	snprintf(path, sizeof(path), "%s/rls_counters", fleet.dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return false;
	id = map_id(fd);
	close(fd);
	return id == fleet.counters_id;
}

static int open_pins(void)
{
	char err[512], path[512];

	if (fleet.maps_open && mono_ms() - fleet.pins_checked_ms >= RLS_FLEET_PINS_MS) {
		fleet.pins_checked_ms = mono_ms();
		if (!same_load()) {
			close_pins();
			flog("rlshape was unloaded or loaded again: leasing for the maps pinned now");
		}
	}
	if (fleet.maps_open)
		return 0;
	if (rls_maps_open_pinned(fleet.dir, &fleet.maps, err, sizeof(err)))
		return -1;
	fleet.maps_open = 1;
	fleet.counters_id = map_id(fleet.maps.counters);
	fleet.pins_checked_ms = mono_ms();
	snprintf(path, sizeof(path), "%s/%s", fleet.dir, RLS_FLEET_LEASE_PIN);
	fleet.lease_fd = bpf_obj_get(path);
	if (fleet.lease_fd < 0) {
		close_pins();
		return -1;
	}
	return 0;
}

/* The live table's fleet into cfg; -1 when the pins cannot be read (reopened next time). */
static int read_fleet_config(struct rls_config *cfg)
{
	__u32 zero = 0, gen;

	if (open_pins())
		return -1;
	if (bpf_map_lookup_elem(fleet.maps.active, &zero, &gen) ||
	    bpf_map_lookup_elem(fleet.maps.config, (__u32[]){ gen & 1 }, cfg)) {
		close_pins();
		return -1;
	}
	return 0;
}

/* ---- Redis ---- */

static void drop_redis(const char *why)
{
	if (fleet.redis)
		redisFree(fleet.redis);
	fleet.redis = NULL;
	fleet.next_connect_ms = mono_ms() + RLS_FLEET_RECONNECT_MS;
	COUNT(redis_errors, 1);
	if (state() != RLS_FLEET_FALLBACK) {
		COUNT(fallbacks, 1);
		set_state(RLS_FLEET_FALLBACK);
		flog("Redis %s:%u is away (%s): each host admits its share, limit / %u, until it "
		     "is back", fleet.redis_host, fleet.redis_port, why, fleet.hosts);
	}
}

static void try_connect(void)
{
	struct timeval tv = { 0, RLS_FLEET_TIMEOUT_MS * 1000 };
	redisContext *c;

	if (fleet.redis || mono_ms() < fleet.next_connect_ms)
		return;
	c = redisConnectWithTimeout(fleet.redis_host, (int)fleet.redis_port, tv);
	if (!c || c->err) {
		char why[160];

		snprintf(why, sizeof(why), "%s", c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		drop_redis(why);
		return;
	}
	redisSetTimeout(c, tv);
	fleet.redis = c;
	fleet.joined_ms = mono_ms();
	fleet.last_call_ms = fleet.joined_ms;
	COUNT(joins, 1);
	set_state(RLS_FLEET_JOINING);
	flog("Redis %s:%u reached as host \"%s\": joining (on shares for %d ms while every host "
	     "tells Redis what it holds)", fleet.redis_host, fleet.redis_port, fleet.host,
	     RLS_FLEET_JOIN_MS);
}

/* A reply that is an error, or none: the connection is dropped. */
static redisReply *call_done(redisReply *r)
{
	char why[200];

	fleet.last_call_ms = mono_ms();
	COUNT(redis_calls, 1);
	if (r && r->type != REDIS_REPLY_ERROR)
		return r;
	snprintf(why, sizeof(why), "%s", r ? r->str : fleet.redis->errstr);
	if (r)
		freeReplyObject(r);
	drop_redis(why);
	return NULL;
}

static void ping(void)
{
	redisReply *r;

	if (!fleet.redis || mono_ms() - fleet.last_call_ms < RLS_FLEET_PING_MS)
		return;
	r = call_done(redisCommand(fleet.redis, "PING"));
	if (r)
		freeReplyObject(r);
}

/* Runs the lease script. Returns 0 with *mine and *total, or -1 (Redis is then away). */
static int lease_call(const char *key, __u32 have, __u32 want, __u32 limit, __u32 ttl,
		      long long *mine, long long *total)
{
	redisReply *r;
	int ok;

	if (!fleet.redis)
		return -1;
	r = call_done(redisCommand(fleet.redis, "EVAL %s 1 %s %s %u %u %u %u", LEASE_SCRIPT, key,
				   fleet.host, have, want, limit, ttl));
	if (!r)
		return -1;
	ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	     r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER;
	if (ok) {
		*mine = r->element[0]->integer;
		*total = r->element[1]->integer;
	}
	freeReplyObject(r);
	if (!ok) {
		drop_redis("the lease script answered something else");
		return -1;
	}
	return 0;
}

/* ---- counters ---- */

/* Room for one more of *n elements of size bytes in *array (of *cap). Returns false when none. */
static bool grow(void **array, size_t n, size_t *cap, size_t size)
{
	size_t more = *cap ? *cap * 2 : 64;
	void *a;

	if (n < *cap)
		return true;
	a = realloc(*array, more * size);
	if (!a)
		return false;
	*array = a;
	*cap = more;
	return true;
}

static void read_models(void)
{
	char name[RLS_MODEL_NAME_MAX] = { 0 }, next[RLS_MODEL_NAME_MAX];
	void *prev = NULL;
	__u32 id;

	fleet.nr_models = 0;
	while (bpf_map_get_next_key(fleet.maps.models, prev, next) == 0) {
		memcpy(name, next, sizeof(name));
		prev = name;
		if (bpf_map_lookup_elem(fleet.maps.models, name, &id))
			continue;
		if (!grow((void **)&fleet.models, fleet.nr_models, &fleet.cap_models,
			  sizeof(*fleet.models)))
			return;
		fleet.models[fleet.nr_models].id = id;
		memcpy(fleet.models[fleet.nr_models].name, name, sizeof(name));
		fleet.models[fleet.nr_models].name[RLS_MODEL_NAME_MAX - 1] = '\0';
		fleet.nr_models++;
	}
}

static const char *model_name(__u32 id)
{
	size_t i;

	if (id == RLS_MODEL_OTHER)
		return "*";
	for (i = 0; i < fleet.nr_models; i++)
		if (fleet.models[i].id == id)
			return fleet.models[i].name;
	return NULL;
}

static void visit_counter(const void *key, const void *value, void *ctx)
{
	const struct rls_counter_key *k = key;
	const struct rls_counter *c = value;
	struct fleet_item item = { .key = *k };
	__u32 w, cur;

	(void)ctx;
	if (k->account == RLS_ACCOUNT_ANONYMOUS)
		return;
	for (w = 0; w < RLS_NR_WINDOWS; w++) {
		cur = fleet.window[w];
		if (!rls_fleet_leased_window(w) || !c->fleet_limit[w] ||
		    c->fleet_limit[w] == RLS_UNLIMITED)
			continue;
		if (c->fleet_asked[w] != cur && !(c->fleet_window[w] == cur && c->fleet_lease[w]))
			continue;
		item.mask |= 1u << w;
		item.view[w].limit = c->fleet_limit[w];
		item.view[w].count = c->window_start[w] == cur ? c->window_count[w] : 0;
		item.view[w].lease = c->fleet_window[w] == cur ? c->fleet_lease[w] : RLS_UNLIMITED;
		item.view[w].spent = c->fleet_spent[w] == cur;
	}
	if (!item.mask)
		return;
	if (!grow((void **)&fleet.items, fleet.nr_items, &fleet.cap_items, sizeof(*fleet.items)))
		return;
	fleet.items[fleet.nr_items++] = item;
}

/* Sets window w's lease (never below what it admitted); spent: the fleet's budget is gone. */
static void set_lease(const struct rls_counter_key *key, __u32 w, __u32 lease, bool spent)
{
	struct rls_lease_args args;
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &args, .ctx_size_in = sizeof(args));

	memset(&args, 0, sizeof(args));
	args.counter = *key;
	memcpy(args.window, fleet.window, sizeof(args.window));
	args.set = 1u << w;
	args.spent = spent ? 1u << w : 0;
	args.lease[w] = lease;
	if (bpf_prog_test_run_opts(fleet.lease_fd, &opts) && !fleet.err_logged[0]) {
		snprintf(fleet.err_logged, sizeof(fleet.err_logged), "%s", strerror(errno));
		flog("cannot run %s/%s: %s", fleet.dir, RLS_FLEET_LEASE_PIN, fleet.err_logged);
	}
}

static void share_window(const struct fleet_item *it, __u32 w)
{
	const struct rls_fleet_window_view *v = &it->view[w];
	__u32 share = rls_fleet_fallback_lease(v, fleet.hosts);

	if (v->lease != RLS_UNLIMITED && v->lease >= share)
		return;
	set_lease(&it->key, w, share, false);
	COUNT(shares_set, 1);
}

static void sync_window(const struct fleet_item *it, __u32 w, const char *account,
			const char *model)
{
	const struct rls_fleet_window_view *v = &it->view[w];
	long long mine = 0, total = 0;
	__u32 want, ttl;
	char key[256];

	rls_fleet_key(key, sizeof(key), account, model, w, fleet.window[w]);
	ttl = rls_fleet_key_ttl(w, fleet.window[w], fleet.now_s);
	if (state() == RLS_FLEET_LEASING && rls_fleet_wants_more(v, fleet.hosts)) {
		want = rls_fleet_part(v->limit, fleet.hosts);
		if (lease_call(key, rls_fleet_held(v), want, v->limit, ttl, &mine, &total) == 0) {
			COUNT(leases_asked, 1);
			COUNT(requests_leased, (__u64)mine > rls_fleet_held(v) ?
						       (__u64)mine - rls_fleet_held(v) : 0);
			set_lease(&it->key, w, (__u32)mine, total >= v->limit);
			return;
		}
	}
	if (state() == RLS_FLEET_LEASING)
		return;
	share_window(it, w);
	if (state() == RLS_FLEET_JOINING)
		lease_call(key, rls_fleet_fallback_lease(v, fleet.hosts), 0, v->limit, ttl, &mine,
			   &total);
}

static void sync_counters(void)
{
	struct rls_account_name name;
	struct timespec ts;
	const char *model;
	size_t i;
	__u32 w;

	clock_gettime(CLOCK_REALTIME, &ts);
	fleet.now_s = (__u64)ts.tv_sec;
	for (w = 0; w < RLS_NR_WINDOWS; w++)
		fleet.window[w] = rls_window_index(fleet.now_s, w);
	fleet.nr_items = 0;
	if (rls_map_walk(fleet.maps.counters, BPF_F_LOCK, visit_counter, NULL)) {
		close_pins();
		return;
	}
	if (!fleet.nr_items)
		return;
	read_models();
	for (i = 0; i < fleet.nr_items && !atomic_load(&fleet.stop); i++) {
		const struct fleet_item *it = &fleet.items[i];

		model = model_name(it->key.model);
		if (!model || bpf_map_lookup_elem(fleet.maps.accounts, &it->key.account, &name))
			continue; /* removed by a reload meanwhile */
		name.name[RLS_ACCOUNT_NAME_MAX - 1] = '\0';
		for (w = 0; w < RLS_NR_WINDOWS; w++)
			if (it->mask & (1u << w))
				sync_window(it, w, name.name, model);
	}
}

/* ---- the thread ---- */

static void follow_config(const struct rls_config *cfg)
{
	char host[RLS_FLEET_HOST_MAX];

	memcpy(host, cfg->fleet_redis_host, sizeof(host));
	host[sizeof(host) - 1] = '\0';
	if (cfg->fleet_hosts == fleet.hosts && cfg->fleet_redis_port == fleet.redis_port &&
	    !strcmp(host, fleet.redis_host))
		return;
	if (fleet.redis)
		redisFree(fleet.redis);
	fleet.redis = NULL;
	fleet.next_connect_ms = 0;
	fleet.hosts = cfg->fleet_hosts;
	fleet.redis_port = cfg->fleet_redis_port;
	memcpy(fleet.redis_host, host, sizeof(host));
	if (!fleet.hosts) {
		set_state(RLS_FLEET_OFF);
		flog("the live table has no fleet: this host counts alone");
		return;
	}
	/* Until Redis is reached, shares: the same as when it is away. */
	set_state(RLS_FLEET_FALLBACK);
	flog("sharing limits with %u hosts through Redis %s:%u", fleet.hosts, fleet.redis_host,
	     fleet.redis_port);
}

static void *fleet_main(void *arg)
{
	struct rls_config cfg;

	(void)arg;
	while (!atomic_load(&fleet.stop)) {
		usleep(RLS_FLEET_SYNC_MS * 1000);
		if (read_fleet_config(&cfg))
			continue; /* not loaded (now): the next sync looks again */
		follow_config(&cfg);
		if (!fleet.hosts)
			continue;
		try_connect();
		if (state() == RLS_FLEET_JOINING &&
		    mono_ms() - fleet.joined_ms >= RLS_FLEET_JOIN_MS) {
			set_state(RLS_FLEET_LEASING);
			flog("joined: leasing from Redis %s:%u", fleet.redis_host, fleet.redis_port);
		}
		sync_counters();
		ping();
	}
	if (fleet.redis)
		redisFree(fleet.redis);
	fleet.redis = NULL;
	close_pins();
	free(fleet.items);
	free(fleet.models);
	return NULL;
}

int rls_fleet_start(const char *pin_dir, const char *host)
{
	int err;

	snprintf(fleet.dir, sizeof(fleet.dir), "%s", pin_dir);
	snprintf(fleet.host, sizeof(fleet.host), "%s", host);
	atomic_store(&fleet.stop, 0);
	err = pthread_create(&fleet.thread, NULL, fleet_main, NULL);
	if (err)
		return -err;
	fleet.started = 1;
	return 0;
}

void rls_fleet_stop(void)
{
	if (!fleet.started)
		return;
	atomic_store(&fleet.stop, 1);
	pthread_join(fleet.thread, NULL);
	fleet.started = 0;
}
