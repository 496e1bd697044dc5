// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * `rlshape daemon`: turns the responses TC metered into tokens and settles them against the
 * token budgets that XDP checks at admission.
 *
 * Where the accounting lives, so that a restart or a SIGKILL loses nothing:
 *   - Response events wait in the pinned rls_events ring until a daemon consumes them. libbpf
 *     advances the ring's consumer position after each event's callback returns, so an event
 *     is consumed only after it has been settled.
 *   - A daemon killed after settling an event but before consuming it leaves the event in the
 *     ring; the next daemon settles it again, and the kernel refuses the second settlement by
 *     its id (rls_settled): counted here as "already settled".
 *   - What TC could not put in the ring (full, or nobody reading it for long) is parked whole
 *     in rls_parked, keyed by event id, and settled exactly like the ring's events: at start,
 *     every drain interval and at exit. Each is removed after it is settled, so a daemon
 *     killed in between settles it again and the kernel refuses that by its id, as above.
 *   - What rls_parked could not take either (full) is summed per counter in rls_pending,
 *     which the daemon drains with it, as an estimate.
 *
 * Draining rls_pending. TC adds to an entry in place with atomic adds; user space cannot
 * subtract atomically from a map value, so an entry is taken out whole:
 *   1. the entries are read (value A);
 *   2. each is read again just before it is taken; if it changed (TC is adding to it) or is
 *      still empty (TC has just created it), it is left for the next drain and nothing of it is
 *      settled this round;
 *   3. it is removed with one BPF_MAP_LOOKUP_AND_DELETE_ELEM, which returns exactly what was
 *      in it when it was unlinked, and only that is settled (as an estimate from its bytes,
 *      with event id 0): what TC adds afterwards goes to a new entry, for the next drain.
 *   The one add that can still be lost is a TC program that had looked the entry up before the
 *   unlink and adds after it: a window of a few instructions, and only for responses that had
 *   already missed the ring. Removing before settling means a daemon killed in between loses
 *   that entry's settlement (its reservation stays charged) rather than settling it twice.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cli.h"
#include "maps.h"
#include "metrics.h"
#include "metrics_http.h"
#include "sd_notify.h"
#include "settle.h"
#include "flows.h"
#include "fleet.h"

#define DEFAULT_DRAIN_MS 1000
#define REAP_INTERVAL_MS 10000 /* stale rls_flows entries: seconds matter, not milliseconds */
#define POLL_MS          100
#define SETTLE_TRIES     3
#define DEFAULT_RELOAD_TIMEOUT_S 300 /* 10x the 30 s a large table was seen to take */

#define STR(x) #x
#define XSTR(x) STR(x)

struct daemon_request {
	const char *dev;
	const char *config;
	unsigned long drain_interval_ms;
	unsigned long reload_timeout_s;
	const char *metrics_listen;
	unsigned long metrics_accounts;
	bool verbose;
	const char *fleet_host;
};

static const struct rls_opt daemon_opts[] = {
	RLS_OPT_DEV(struct daemon_request, dev, "the interface (default: the only one loaded)"),
	{ .long_name = "config", .short_name = 'c', .kind = RLS_OPT_STRING, .metavar = "FILE",
	  .what = "the path of a tier table", .help = "the tier table SIGHUP reloads",
	  .offset = offsetof(struct daemon_request, config) },
	{ .long_name = "drain-interval-ms", .short_name = 'i', .kind = RLS_OPT_UINT, .metavar = "N",
	  .what = "a whole number of milliseconds", .min = 1, .max = 3600000,
	  .help = "how often responses that missed the ring are settled\n"
		  "(default " XSTR(DEFAULT_DRAIN_MS) ")",
	  .offset = offsetof(struct daemon_request, drain_interval_ms) },
	{ .long_name = "reload-timeout-s", .short_name = 't', .kind = RLS_OPT_UINT, .metavar = "N",
	  .what = "a whole number of seconds", .min = 1, .max = 86400,
	  .help = "a reload still running after N seconds is killed\n"
		  "(default " XSTR(DEFAULT_RELOAD_TIMEOUT_S) ")",
	  .offset = offsetof(struct daemon_request, reload_timeout_s) },
	{ .long_name = "metrics-listen", .short_name = 'm', .kind = RLS_OPT_STRING,
	  .metavar = "ADDR:PORT", .what = "ADDR:PORT, [ADDR]:PORT or none",
	  .help = "serve Prometheus metrics on http://ADDR:PORT/metrics\n"
		  "([ADDR]:PORT for IPv6; none: no endpoint)\n"
		  "(default " RLS_METRICS_DEFAULT_LISTEN ", loopback only)",
	  .offset = offsetof(struct daemon_request, metrics_listen) },
	{ .long_name = "metrics-accounts", .short_name = 'a', .kind = RLS_OPT_UINT, .metavar = "N",
	  .what = "a whole number of accounts", .min = 0, .max = RLS_METRICS_ACCOUNTS_MAX,
	  .help = "per-account series for the N accounts with the most\n"
		  "requests (default 0: per model only; at most "
		  XSTR(RLS_METRICS_ACCOUNTS_MAX) ")",
	  .offset = offsetof(struct daemon_request, metrics_accounts) },
	{ .long_name = "fleet-host", .kind = RLS_OPT_STRING, .metavar = "NAME",
	  .what = "a name for this gateway in Redis",
	  .help = "this gateway's name among the table's \"fleet\" (default: the host name);\n"
		  "each gateway sharing one Redis needs its own",
	  .offset = offsetof(struct daemon_request, fleet_host) },
	{ .long_name = "verbose", .short_name = 'v', .kind = RLS_OPT_FLAG,
	  .help = "log every settlement", .offset = offsetof(struct daemon_request, verbose) },
	{ NULL },
};

static const struct rls_cmd_spec daemon_spec = {
	.name = "daemon",
	.description =
		"Runs in the foreground and settles token usage: for each response the TC program\n"
		"metered, the upstream's usage (total_tokens) when the response carries it, otherwise\n"
		"an estimate of ceil((request + response bytes) / bytes_per_token) (4 by default),\n"
		"minus what was reserved at admission, is charged to (or refunded from) the\n"
		"account's token budget. rlshape must be loaded on IFACE first.\n\n"
		"Signals: SIGTERM and SIGINT stop it (exit 0); SIGHUP reloads FILE as `rlshape load\n"
		"FILE --dev IFACE` does, in a child process, while the daemon goes on settling (a\n"
		"failed reload keeps the live table and the daemon; a SIGHUP during a reload\n"
		"reloads once more after it);\n"
		"SIGUSR1 logs the running totals. It logs to stderr, one line per event of note.\n\n"
		"Metrics: GET http://ADDR:PORT/metrics (--metrics-listen) serves the Prometheus\n"
		"text format from a thread of its own: requests admitted and rejected per model\n"
		"and reason, concurrency slots, packet counters, map fill ratios, the live table,\n"
		"the ring's lag and what was settled (README, Metrics, lists every series).\n"
		"Under systemd (Type=notify) it reports READY=1 once settling and serving,\n"
		"RELOADING=1 during a SIGHUP reload, and STOPPING=1.\n",
	.opts = daemon_opts,
};

static volatile sig_atomic_t stop_signal, reload_requested, totals_requested;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_requested = 1;
	else if (sig == SIGUSR1)
		totals_requested = 1;
	else if (sig != SIGCHLD)
		stop_signal = sig;
}

struct daemon {
	const char *dev;
	const char *config;
	char dir[256];
	int verbose;
	struct rls_maps maps;
	int settle_fd;
	__u32 events_id, settle_id; /* to notice a new load (unload + load) replacing them */
	struct ring_buffer *rb;
	__u32 generation;       /* the table generation last seen live, for the log */
	struct rls_settle_totals totals;
	struct rls_usage_totals usage;
	struct rls_daemon_counts counts;     /* what /metrics shows of this loop ... */
	struct rls_metrics_shared *metrics;  /* ... and where it is published to */
	__u64 settle_errors_logged;
	int unloaded; /* the pins are gone: waiting for a load */
	int reopen_failed;
	/* The running SIGHUP reload, if any (see start_reload). */
	long reload_timeout_s;
	pid_t reload_pid;       /* its `rlshape load`, 0 when none runs */
	long reload_deadline;   /* now_ms() past which it is killed */
	int reload_killed;
	int reload_again;       /* a SIGHUP came while it ran */
	__u32 reload_from;      /* the live generation when it started */
};

static void dlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void dlog(const char *fmt, ...)
{
	va_list ap;

	fputs("rlshape daemon: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static __u32 fd_id(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	/* struct bpf_map_info and bpf_prog_info both start with type, id. */
	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static __u32 pinned_id(const char *dir, const char *name)
{
	char path[512];
	__u32 id;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	id = fd_id(fd);
	close(fd);
	return id;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* ---- the live table ---- */

static int read_generation(struct daemon *d, __u32 *generation)
{
	__u32 zero = 0, gen;

	if (bpf_map_lookup_elem(d->maps.active, &zero, &gen))
		return -errno;
	*generation = gen & 1;
	return 0;
}

/* Logs a table switch (a load, by us or by anyone). Settling itself needs nothing of the table. */
static void note_generation(struct daemon *d)
{
	__u32 gen = 0;

	if (read_generation(d, &gen) || gen == d->generation)
		return;
	d->generation = gen;
	dlog("table generation %u is live", gen);
}

/* ---- settling ---- */

static __u32 utc_day(void)
{
	return (__u32)(time(NULL) / 86400);
}

/* Runs rls_settle. Returns its result (0 settled, 1 already settled, -1 no counter), or -2. */
static int settle(struct daemon *d, const struct rls_counter_key *counter, __u64 event_id,
		  __s64 delta)
{
	struct rls_settle_args args;
	int tries, err = 0;

	memset(&args, 0, sizeof(args));
	args.counter = *counter;
	args.event_id = event_id;
	args.delta = delta;
	args.day = utc_day();
	args.anonymous = counter->account == RLS_ACCOUNT_ANONYMOUS;
	for (tries = 0; tries < SETTLE_TRIES; tries++) {
		/* A syscall program writes its results back into ctx_in; ctx_out is refused. */
		LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &args, .ctx_size_in = sizeof(args));

		args.result = -2;
		if (bpf_prog_test_run_opts(d->settle_fd, &opts) == 0)
			return args.result;
		err = -errno;
		if (err != -EINTR && err != -EAGAIN)
			break;
	}
	if (d->settle_errors_logged++ < 10)
		dlog("cannot run %s/%s: %s", d->dir, RLS_SETTLE_PIN, strerror(-err));
	return -2;
}

static void count_result(struct daemon *d, int result)
{
	if (result == 1)
		d->totals.already_settled++;
	else if (result == -1)
		d->totals.no_counter++;
	else if (result < 0)
		d->totals.failed++;
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct daemon *d = ctx;
	struct rls_response_event ev;
	struct rls_token_count tc;
	__u64 charged;
	__s64 delta;
	int result;

	if (size < sizeof(ev)) {
		dlog("ignored a response event of %zu bytes (expected %zu): rlshape and the loaded "
		     "programs differ in version", size, sizeof(ev));
		d->totals.failed++;
		return 0;
	}
	memcpy(&ev, data, sizeof(ev));
	rls_event_tokens(&ev, &tc);
	charged = rls_settle_cap_tokens(tc.tokens, ev.max_response_tokens);
	if (charged < tc.tokens) {
		d->totals.capped++;
		tc.tokens = charged;
	}
	delta = rls_settle_delta(tc.tokens, ev.reserved_tokens);
	result = settle(d, &ev.counter, ev.id, delta);
	if (d->verbose)
		dlog("event %llu: account %u model %u: %llu tokens (%s; %llu+%llu bytes, tail "
		     "%u+%u%s), reserved %llu, delta %lld: %s",
		     (unsigned long long)ev.id, ev.counter.account, ev.counter.model,
		     (unsigned long long)tc.tokens, tc.from_usage ? "usage" : "estimate",
		     (unsigned long long)ev.request_bytes, (unsigned long long)ev.response_bytes,
		     ev.tail.len[(ev.tail_slot & 1) ^ 1], ev.tail.len[ev.tail_slot & 1],
		     ev.flags & RLS_EVENT_CHUNKED ? ", chunked" : "",
		     (unsigned long long)ev.reserved_tokens, (long long)delta,
		     result == 0 ? "settled" : result == 1 ? "already settled"
			       : result == -1 ? "no such counter" : "failed");
	count_result(d, result);
	if (result != 0)
		return 0;
	d->totals.responses++;
	if (tc.from_usage)
		d->totals.from_usage++;
	else
		d->totals.estimated++;
	d->totals.tokens += tc.tokens;
	d->totals.reserved += ev.reserved_tokens;
	rls_usage_totals_add(&d->usage, ev.counter.account, ev.counter.model, 1, tc.from_usage,
			     tc.tokens);
	rls_metrics_add_settled(d->metrics, ev.counter.model,
				tc.from_usage ? RLS_SOURCE_USAGE : RLS_SOURCE_ESTIMATE, 1, tc.tokens);
	return 0;
}

/*
 * The keys of a hash map, walked before anything is removed (a walk whose last key is gone
 * starts again from the first). A malloc'd array of *n keys; NULL when empty or out of memory.
 */
static void *map_keys(int fd, size_t key_size, size_t *n)
{
	char *keys = NULL, *grown;
	size_t cap = 0;

	*n = 0;
	for (;;) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			grown = realloc(keys, cap * key_size);
			if (!grown)
				break;
			keys = grown;
		}
		if (bpf_map_get_next_key(fd, *n ? keys + (*n - 1) * key_size : NULL,
					 keys + *n * key_size))
			break;
		(*n)++;
	}
	if (!*n) {
		free(keys);
		keys = NULL;
	}
	return keys;
}

struct pending_entry {
	struct rls_counter_key key;
	struct rls_pending value;
};

/* See the top of this file for why it reads twice and removes with lookup-and-delete. */
static void drain_pending(struct daemon *d)
{
	struct rls_counter_key *keys;
	struct pending_entry *list;
	struct rls_pending again, taken;
	size_t n = 0, nkeys, i;
	__u64 entries = 0, responses = 0, tokens = 0, skipped = 0;

	keys = map_keys(d->maps.pending, sizeof(*keys), &nkeys);
	list = calloc(nkeys ? nkeys : 1, sizeof(*list));
	for (i = 0; list && i < nkeys; i++) {
		list[n].key = keys[i];
		if (bpf_map_lookup_elem(d->maps.pending, &keys[i], &list[n].value) == 0)
			n++;
	}
	free(keys);
	for (i = 0; i < n; i++) {
		const struct rls_counter_key *k = &list[i].key;
		__u64 est;
		int result;

		if (bpf_map_lookup_elem(d->maps.pending, k, &again))
			continue;
		if (!again.responses || !rls_pending_equal(&again, &list[i].value)) {
			skipped++;
			continue;
		}
		if (bpf_map_lookup_and_delete_elem(d->maps.pending, k, &taken)) {
			if (errno != EINVAL && errno != EOPNOTSUPP && errno != 524 /* ENOTSUPP */)
				continue;
			/* A kernel without lookup-and-delete on hash maps (before 5.14). */
			if (bpf_map_delete_elem(d->maps.pending, k))
				continue;
			taken = again;
		}
		if (!taken.responses)
			continue;
		est = rls_pending_tokens(&taken);
		result = settle(d, k, 0, rls_settle_delta(est, taken.reserved_tokens));
		count_result(d, result);
		if (result != 0)
			continue;
		entries++;
		responses += taken.responses;
		tokens += est;
		d->totals.reserved += taken.reserved_tokens;
		rls_usage_totals_add(&d->usage, k->account, k->model, taken.responses, 0, est);
		rls_metrics_add_settled(d->metrics, k->model, RLS_SOURCE_ESTIMATE, taken.responses,
					est);
	}
	free(list);
	d->totals.pending_entries += entries;
	d->totals.pending_responses += responses;
	d->totals.pending_tokens += tokens;
	d->totals.pending_skipped += skipped;
	d->totals.tokens += tokens;
	if (entries || skipped)
		dlog("drained pending: %llu responses of %llu counters settled as %llu estimated "
		     "tokens%s", (unsigned long long)responses, (unsigned long long)entries,
		     (unsigned long long)tokens,
		     skipped ? "; some counters were being added to: left for the next drain" : "");
}

/* The events the full ring parked: settled exactly, as the ring's are, then removed. */
static void drain_parked(struct daemon *d)
{
	struct rls_response_event ev;
	__u64 settled = d->totals.responses, taken = 0, *ids;
	size_t n, i;

	ids = map_keys(d->maps.parked, sizeof(*ids), &n);
	for (i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(d->maps.parked, &ids[i], &ev))
			continue;
		on_event(d, &ev, sizeof(ev));
		if (bpf_map_delete_elem(d->maps.parked, &ids[i]) == 0)
			taken++;
	}
	free(ids);
	d->totals.parked += taken;
	if (taken)
		dlog("drained parked: %llu responses the full ring could not take, %llu settled now",
		     (unsigned long long)taken, (unsigned long long)(d->totals.responses - settled));
}

/* Everything that went around the ring: parked events exactly, pending sums by estimate. */
static void drain_off_ring(struct daemon *d)
{
	drain_parked(d);
	drain_pending(d);
}

/* ---- opening, and noticing that the data path was replaced or removed ---- */

/* Connections that went away without a close reaching the gateway (user/flows.h). */
static void reap_flows(struct daemon *d)
{
	struct timespec ts;
	long n;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = rls_reap_flows(d->maps.flows, (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec);
	if (n < 0)
		dlog("cannot walk %s/rls_flows: %s", d->dir, strerror((int)-n));
	else if (n > 0 && d->verbose)
		dlog("removed %ld stale connections from rls_flows", n);
	n = rls_reap_cut_values(d->maps.cut_values, d->maps.flows);
	if (n > 0 && d->verbose)
		dlog("removed %ld header values of gone connections from rls_cut_values", n);
}

static void close_all(struct daemon *d)
{
	ring_buffer__free(d->rb);
	d->rb = NULL;
	if (d->settle_fd >= 0)
		close(d->settle_fd);
	d->settle_fd = -1;
	rls_maps_close(&d->maps);
}

static int open_all(struct daemon *d, char *err, size_t err_len)
{
	char path[512];
	int ret;

	d->settle_fd = -1;
	ret = rls_maps_open_pinned(d->dir, &d->maps, err, err_len);
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "%s/%s", d->dir, RLS_SETTLE_PIN);
	d->settle_fd = bpf_obj_get(path);
	if (d->settle_fd < 0) {
		ret = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(-ret));
		close_all(d);
		return ret;
	}
	d->rb = ring_buffer__new(d->maps.events, on_event, d, NULL);
	if (!d->rb) {
		ret = -errno;
		snprintf(err, err_len, "%s/rls_events: cannot read the ring buffer: %s", d->dir,
			 strerror(-ret));
		close_all(d);
		return ret;
	}
	d->events_id = fd_id(d->maps.events);
	d->settle_id = fd_id(d->settle_fd);
	return 0;
}

/* A reload re-pins prog_settle; an unload removes everything; a new load makes new maps. */
static void check_pins(struct daemon *d)
{
	char err[512], path[512];
	__u32 events = pinned_id(d->dir, "rls_events"), prog = pinned_id(d->dir, RLS_SETTLE_PIN);
	int fd;

	if (!events || !prog) {
		if (!d->unloaded)
			dlog("rlshape was unloaded from %s; waiting for `rlshape load`", d->dev);
		d->unloaded = 1;
		return;
	}
	if (events != d->events_id) {
		/* What is left in the old ring was settled or is lost with the old counters. */
		if (d->rb)
			ring_buffer__consume(d->rb);
		close_all(d);
		if (open_all(d, err, sizeof(err))) {
			if (!d->reopen_failed++)
				dlog("rlshape was loaded again on %s but cannot be opened: %s", d->dev,
				     err);
			d->unloaded = 1;
			return;
		}
		d->reopen_failed = 0;
		dlog("rlshape was loaded again on %s: settling for the new maps", d->dev);
		d->unloaded = 0;
		note_generation(d);
		drain_off_ring(d);
		return;
	}
	d->unloaded = 0;
	if (prog != d->settle_id) {
		snprintf(path, sizeof(path), "%s/%s", d->dir, RLS_SETTLE_PIN);
		fd = bpf_obj_get(path);
		if (fd >= 0) {
			close(d->settle_fd);
			d->settle_fd = fd;
			d->settle_id = fd_id(fd);
		}
	}
}

/* ---- SIGHUP ----
 *
 * A reload runs `rlshape load` in a child and does not wait for it: the loop keeps settling
 * while the table is read and written (a large one takes tens of seconds), reaps the child
 * when it ends (SIGCHLD interrupts the poll), and kills it when it has run longer than
 * --reload-timeout-s. A SIGHUP during a reload is kept for one more reload after it: the
 * file may have changed again after the running load read it.
 */

static void start_reload(struct daemon *d)
{
	__u32 gen = 0;
	pid_t pid;

	if (!d->config) {
		dlog("SIGHUP: no --config table to reload (start the daemon with --config FILE)");
		return;
	}
	pid = fork();
	if (pid == 0) {
		/* `load` reports on stdout: keep it with the daemon's log. */
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execl("/proc/self/exe", "rlshape", "load", d->config, "--dev", d->dev,
		      (char *)NULL);
		fprintf(stderr, "rlshape daemon: cannot run /proc/self/exe: %s\n", strerror(errno));
		_exit(127);
	}
	if (pid < 0) {
		dlog("reload of %s failed: cannot fork: %s; the live table stays", d->config,
		     strerror(errno));
		return;
	}
	d->reload_pid = pid;
	d->reload_killed = 0;
	rls_sd_notify("RELOADING=1\nSTATUS=reloading the table");
	d->reload_deadline = now_ms() + d->reload_timeout_s * 1000L;
	d->reload_from = read_generation(d, &gen) == 0 ? gen : d->generation;
	dlog("SIGHUP: reloading %s on %s (rlshape load, pid %d; killed if it runs past %ld s); "
	     "settling goes on meanwhile", d->config, d->dev, (int)pid, d->reload_timeout_s);
}

static void on_sighup(struct daemon *d)
{
	if (!d->reload_pid) {
		start_reload(d);
		return;
	}
	if (!d->reload_again)
		dlog("SIGHUP during the reload of %s (pid %d): %s is loaded again once it ends",
		     d->config, (int)d->reload_pid, d->config);
	d->reload_again = 1;
}

/* What the generation says once a killed load is gone: it may have switched before the kill. */
static const char *live_after_kill(struct daemon *d)
{
	__u32 gen = 0;

	if (read_generation(d, &gen) == 0 && gen != d->reload_from)
		return "it had already switched to the new table, which is live";
	return "the live table stays";
}

/* The reload child: reaped when it has ended, killed when it has run too long. */
static void watch_reload(struct daemon *d)
{
	int status;
	pid_t w;

	if (!d->reload_pid)
		return;
	w = waitpid(d->reload_pid, &status, WNOHANG);
	if (w == 0) {
		if (!d->reload_killed && now_ms() >= d->reload_deadline) {
			dlog("reload of %s: rlshape load (pid %d) still running after %ld s "
			     "(--reload-timeout-s): killing it", d->config, (int)d->reload_pid,
			     d->reload_timeout_s);
			kill(d->reload_pid, SIGKILL);
			d->reload_killed = 1;
		}
		return;
	}
	if (w < 0 && errno == EINTR)
		return;
	if (w < 0)
		dlog("reload of %s: cannot wait for rlshape load (pid %d): %s", d->config,
		     (int)d->reload_pid, strerror(errno));
	else if (d->reload_killed)
		dlog("reload of %s killed after %ld s; %s", d->config, d->reload_timeout_s,
		     live_after_kill(d));
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		dlog("reloaded %s", d->config);
	else if (WIFEXITED(status))
		dlog("reload of %s failed (exit %d); the live table stays", d->config,
		     WEXITSTATUS(status));
	else
		dlog("reload of %s failed (signal %d); %s", d->config,
		     WIFSIGNALED(status) ? WTERMSIG(status) : 0, live_after_kill(d));
	if (w > 0 && d->reload_killed)
		d->counts.reloads_killed++;
	else if (w > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		d->counts.reloads_ok++;
	else if (w > 0)
		d->counts.reloads_failed++;
	d->reload_pid = 0;
	check_pins(d);
	if (!d->unloaded)
		note_generation(d);
	if (d->reload_again) {
		d->reload_again = 0;
		start_reload(d);
	}
	if (!d->reload_pid)
		rls_sd_notify("READY=1\nSTATUS=settling");
}

/* Stopping with a reload running: no `load` is left behind, running unwatched. */
static void stop_reload(struct daemon *d)
{
	int status;

	if (!d->reload_pid)
		return;
	kill(d->reload_pid, SIGKILL);
	dlog("stopping during the reload of %s: rlshape load (pid %d) killed; the table is the "
	     "new one only if it had switched already (rlshape status says which)", d->config,
	     (int)d->reload_pid);
	/* Not waited for: one stuck in the kernel would hold the exit; init reaps it. */
	waitpid(d->reload_pid, &status, WNOHANG);
	d->reload_pid = 0;
}

/* ---- totals ---- */

static void model_names(int fd, char (*names)[RLS_MODEL_NAME_MAX], const __u32 *ids, size_t n)
{
	struct rls_model_name key, next, *prev = NULL;
	size_t i;
	__u32 id;

	for (i = 0; i < n; i++)
		snprintf(names[i], RLS_MODEL_NAME_MAX, ids[i] == RLS_MODEL_OTHER ? "*" : "#%u",
			 ids[i]);
	while (fd >= 0 && bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &id))
			continue;
		for (i = 0; i < n; i++)
			if (ids[i] == id && id != RLS_MODEL_OTHER)
				snprintf(names[i], RLS_MODEL_NAME_MAX, "%.*s",
					 RLS_MODEL_NAME_MAX - 1, key.name);
	}
}

static void log_totals(struct daemon *d, const char *when)
{
	const struct rls_settle_totals *t = &d->totals;
	struct rls_usage_total *list;
	char (*models)[RLS_MODEL_NAME_MAX] = NULL;
	struct rls_account_name account;
	__u32 *ids = NULL;
	size_t n, i;

	dlog("%s: %llu responses settled (%llu from usage, %llu estimated, %llu capped at "
	     "max_response_tokens), %llu already settled, "
	     "%llu without counter, %llu failed; %llu tokens charged against %llu reserved; "
	     "parked: %llu events taken from rls_parked; "
	     "pending: %llu responses in %llu drained entries, %llu estimated tokens",
	     when, (unsigned long long)t->responses, (unsigned long long)t->from_usage,
	     (unsigned long long)t->estimated, (unsigned long long)t->capped,
	     (unsigned long long)t->already_settled,
	     (unsigned long long)t->no_counter, (unsigned long long)t->failed,
	     (unsigned long long)t->tokens, (unsigned long long)t->reserved,
	     (unsigned long long)t->parked, (unsigned long long)t->pending_responses,
	     (unsigned long long)t->pending_entries, (unsigned long long)t->pending_tokens);
	list = rls_usage_totals_list(&d->usage, &n);
	if (!list)
		return;
	ids = calloc(n, sizeof(*ids));
	models = calloc(n, sizeof(*models));
	for (i = 0; ids && models && i < n; i++)
		ids[i] = list[i].model;
	if (ids && models)
		model_names(d->maps.models, models, ids, n);
	for (i = 0; i < n; i++) {
		char name[RLS_ACCOUNT_NAME_MAX];

		if (list[i].account == RLS_ACCOUNT_ANONYMOUS)
			snprintf(name, sizeof(name), "(unknown)");
		else if (d->maps.accounts >= 0 &&
			 bpf_map_lookup_elem(d->maps.accounts, &list[i].account, &account) == 0)
			snprintf(name, sizeof(name), "%.*s", RLS_ACCOUNT_NAME_MAX - 1, account.name);
		else
			snprintf(name, sizeof(name), "#%u", list[i].account);
		dlog("%s: account %s model %s: %llu tokens in %llu responses (%llu from usage)", when,
		     name, models ? models[i] : "?", (unsigned long long)list[i].tokens,
		     (unsigned long long)list[i].responses, (unsigned long long)list[i].from_usage);
	}
	free(models);
	free(ids);
	free(list);
}

/* ---- the fleet (user/fleet.c): a thread of its own, so Redis never holds up settling ---- */

static int start_fleet(struct daemon *d, const char *host)
{
	char name[128];
	int err;

	if (!host) {
		if (gethostname(name, sizeof(name) - 1)) {
			rls_error("cannot read the host name for the fleet: %s; give --fleet-host",
				  strerror(errno));
			return -1;
		}
		name[sizeof(name) - 1] = '\0';
		host = name;
	}
	err = rls_fleet_start(d->dir, host);
	if (err)
		rls_error("cannot start the fleet thread: %s", strerror(-err));
	return err;
}

static void log_fleet(void)
{
	struct rls_fleet_stats st;

	rls_fleet_stats(&st);
	if (st.state == RLS_FLEET_OFF && !st.joins && !st.fallbacks)
		return;
	dlog("fleet: %s; %llu Redis calls, %llu failed; %llu fallbacks, %llu joins; %llu leases "
	     "asked, %llu requests leased; %llu shares set", rls_fleet_state_name(st.state),
	     (unsigned long long)st.redis_calls, (unsigned long long)st.redis_errors,
	     (unsigned long long)st.fallbacks, (unsigned long long)st.joins,
	     (unsigned long long)st.leases_asked, (unsigned long long)st.requests_leased,
	     (unsigned long long)st.shares_set);
}

/* ---- the command ---- */

int rls_cmd_daemon(int argc, char **argv)
{
	struct daemon_request req = {
		.drain_interval_ms = DEFAULT_DRAIN_MS,
		.reload_timeout_s = DEFAULT_RELOAD_TIMEOUT_S,
		.metrics_listen = RLS_METRICS_DEFAULT_LISTEN,
	};
	struct rls_metrics_shared metrics;
	struct rls_metrics_cache metrics_cache = { .valid = false };
	struct rls_metrics_config metrics_cfg = { .cache = &metrics_cache };
	struct rls_metrics_server *server = NULL;
	struct sockaddr_storage metrics_addr;
	int metrics_off;
	enum rls_opts_result parsed;
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: poll returns EINTR */
	char dev[64], err[768], config[PATH_MAX];
	long interval, next_drain, next_reap;
	struct daemon d;
	int ret = 0;

	memset(&d, 0, sizeof(d));
	d.settle_fd = -1;
	rls_usage_totals_init(&d.usage);
	parsed = rls_opts_parse(&daemon_spec, argc, argv, &req);
	if (parsed != RLS_OPTS_OK)
		return rls_opts_exit_code(parsed);
	if (rls_metrics_parse_listen(req.metrics_listen, &metrics_addr, &metrics_off, err,
				     sizeof(err))) {
		rls_error("daemon: --metrics-listen %s", err);
		return 2;
	}
	/* SIGHUP may come after a chdir of whoever started us: keep the config absolute. */
	if (req.config) {
		if (!realpath(req.config, config)) {
			rls_error("--config %s: %s", req.config, strerror(errno));
			return 1;
		}
		d.config = config;
	}
	interval = (long)req.drain_interval_ms;
	d.reload_timeout_s = (long)req.reload_timeout_s;
	d.verbose = req.verbose;
	if (rls_choose_dev(req.dev, dev, sizeof(dev)) || rls_pin_dir(dev, d.dir, sizeof(d.dir)))
		return 1;
	d.dev = dev;
	if (open_all(&d, err, sizeof(err))) {
		rls_error("rlshape is not loaded on %s; run `rlshape load FILE --dev %s` first (%s)",
			  dev, dev, err);
		return 1;
	}
	rls_metrics_shared_init(&metrics);
	d.metrics = &metrics;
	d.counts.started_at = (__u64)time(NULL);
	metrics_cfg.pin_dir = d.dir;
	metrics_cfg.accounts = req.metrics_accounts;
	metrics_cfg.shared = &metrics;
	if (!metrics_off) {
		server = rls_metrics_serve(&metrics_addr, &metrics_cfg, err, sizeof(err));
		if (!server) {
			rls_error("daemon: --metrics-listen %s: %s (another daemon there? give "
				  "--metrics-listen ADDR:PORT, or none)", req.metrics_listen, err);
			close_all(&d);
			rls_metrics_shared_free(&metrics);
			return 1;
		}
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL); /* a reload ended: the poll returns to reap it */
	signal(SIGPIPE, SIG_IGN);
	if (start_fleet(&d, req.fleet_host)) {
		rls_metrics_stop(server);
		close_all(&d);
		rls_usage_totals_free(&d.usage);
		rls_metrics_shared_free(&metrics);
		return 1;
	}
	dlog("settling token usage on %s (drain every %ld ms%s%s; metrics %s%s%s)", dev, interval,
	     d.config ? ", SIGHUP reloads " : "", d.config ? d.config : "",
	     metrics_off ? "off" : "on http://", metrics_off ? "" : req.metrics_listen,
	     metrics_off ? "" : "/metrics");
	d.generation = ~0u;
	note_generation(&d);
	drain_off_ring(&d);
	next_drain = now_ms() + interval;
	next_reap = now_ms() + REAP_INTERVAL_MS;
	d.counts.totals = d.totals;
	rls_metrics_publish(&metrics, &d.counts);
	rls_sd_notify("READY=1\nSTATUS=settling");
	while (!stop_signal) {
		int n = d.unloaded ? 0 : ring_buffer__poll(d.rb, POLL_MS);

		if (d.unloaded)
			usleep(POLL_MS * 1000);
		if (n < 0 && n != -EINTR) {
			dlog("cannot read %s/rls_events: %s", d.dir, strerror(-n));
			ret = 1;
			break;
		}
		if (reload_requested) {
			reload_requested = 0;
			on_sighup(&d);
		}
		watch_reload(&d);
		if (totals_requested) {
			totals_requested = 0;
			log_totals(&d, "totals");
			log_fleet();
		}
		if (!d.unloaded)
			note_generation(&d);
		if (now_ms() >= next_drain) {
			check_pins(&d);
			if (!d.unloaded)
				drain_off_ring(&d);
			next_drain = now_ms() + interval;
		}
		if (now_ms() >= next_reap) {
			if (!d.unloaded)
				reap_flows(&d);
			next_reap = now_ms() + REAP_INTERVAL_MS;
		}
		d.counts.totals = d.totals;
		rls_metrics_publish(&metrics, &d.counts);
	}
	rls_sd_notify("STOPPING=1");
	/* No scrape runs past this point: the maps' pin directory and the counts go next. */
	rls_metrics_stop(server);
	stop_reload(&d);
	rls_fleet_stop();
	if (!d.unloaded && d.rb) {
		/* What is already in the ring is settled now rather than by the next daemon. */
		ring_buffer__consume(d.rb);
		drain_off_ring(&d);
	}
	if (stop_signal)
		dlog("stopping on %s", strsignal(stop_signal));
	log_totals(&d, "at exit");
	log_fleet();
	close_all(&d);
	rls_usage_totals_free(&d.usage);
	rls_metrics_shared_free(&metrics);
	return ret;
}
