// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * accuracy: does rlshape admit exactly what a limit allows when every CPU hammers one
 * account at once?
 *
 * One thread per CPU, each pinned, calls BPF_PROG_TEST_RUN (repeat = 1) as fast as it can,
 * every call a distinct request start: a new sequence number after an admission, a new
 * connection after a 429 (as a client does after "connection: close"). All threads use the
 * same API key, so they race for one counter. The verdict of every call is counted (XDP_PASS:
 * admitted, XDP_TX: the 429; XDP_DROP: refused on a connection whose earlier answers the
 * client has not acknowledged, its 429 held until it has), and each admission's time is kept
 * as a bracket of CLOCK_TAI
 * reads around the call, converted to UTC exactly as the data path converts
 * bpf_ktime_get_tai_ns() (the table's tai_minus_utc_ns, read back from rls_config).
 *
 *   rps:          every 1-second UTC window the run covers completely must admit exactly rps.
 *   rpm + burst:  in a run inside one UTC minute (rpm large enough never to bind), the GCRA
 *                 admits burst at once and then one per emission interval T = 60 s / rpm:
 *                 allowed = burst + floor((t_last - t_first) / T), with t_first the first
 *                 admission and t_last the last request. Each refill must also never come
 *                 before its time.
 *   rpd:          exactly rpd over the run (a run that does not cross UTC midnight).
 *
 *   accuracy [--rps N --rps-seconds S] [--rpm N --burst B --rpm-seconds S]
 *            [--rpd N --rpd-seconds S] [--tests rps,rpm,rpd] [--summary FILE]
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "bench.h"

#define NS 1000000000ull

enum test_id { T_RPS, T_RPM, T_RPD, NR_TESTS };
static const char *const test_names[NR_TESTS] = { "rps", "rpm", "rpd" };
static const char *const test_keys[NR_TESTS] = { "sk-acc-rps-0001", "sk-acc-rpm-0001",
						  "sk-acc-rpd-0001" };
static const char *const test_accounts[NR_TESTS] = { "acc-rps", "acc-rpm", "acc-rpd" };

struct stamp {
	__u64 b, a; /* kernel UTC ns just before and just after the call */
};

struct worker {
	pthread_t thread;
	int cpu;
	int prog_fd;
	int flows_fd; /* rls_flows: a refused connection's entry is deleted as the client leaves */
	pthread_barrier_t *start;
	atomic_int *stop;
	_Atomic __u64 *deadline; /* kernel UTC ns: send nothing at or after it (0: not set) */
	__u64 deadline_after;    /* set it this long after the first admission (0: never) */
	__s64 tai_off;
	__u64 base_sec; /* per-second counts are indexed from here */
	size_t nr_secs;
	struct bench_frame frame;
	uint64_t conn_next, conn_end;
	/* results */
	uint64_t sent, admitted, rejected, deferred, other;
	__u64 first_b, last_b, last_a;
	struct stamp *adm;
	size_t nr_adm, cap_adm;
	uint32_t *offered; /* by the second of b */
	char why[256];
};

static __u64 utc_kernel_ns(__s64 tai_off)
{
	return bench_ns(CLOCK_TAI) - (__u64)tai_off;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t out[TP_MAX_FRAME];
	cpu_set_t set;
	__u64 b, a, sec;
	int action;

	CPU_ZERO(&set);
	CPU_SET(w->cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
		snprintf(w->why, sizeof(w->why), "cannot pin to CPU %d", w->cpu);
	pthread_barrier_wait(w->start);
	if (w->why[0])
		return NULL;
	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		__u64 dl = atomic_load_explicit(w->deadline, memory_order_relaxed);

		b = utc_kernel_ns(w->tai_off);
		if (dl && b >= dl)
			break;
		action = bench_run(w->prog_fd, &w->frame, out, NULL);
		a = utc_kernel_ns(w->tai_off);
		if (action < 0) {
			snprintf(w->why, sizeof(w->why), "bpf_prog_test_run_opts: %s", strerror(-action));
			return NULL;
		}
		if (!w->sent)
			w->first_b = b;
		w->last_b = b;
		w->last_a = a;
		w->sent++;
		sec = b / NS - w->base_sec;
		if (sec < w->nr_secs)
			w->offered[sec]++;
		if (action == XDP_PASS) {
			if (w->nr_adm == w->cap_adm) {
				size_t cap = w->cap_adm ? 2 * w->cap_adm : 65536;
				struct stamp *p = realloc(w->adm, cap * sizeof(*p));

				if (!p) {
					snprintf(w->why, sizeof(w->why), "out of memory");
					return NULL;
				}
				w->adm = p;
				w->cap_adm = cap;
			}
			w->adm[w->nr_adm].b = b;
			w->adm[w->nr_adm].a = a;
			w->nr_adm++;
			w->admitted++;
			if (w->deadline_after && !dl) {
				__u64 none = 0;

				atomic_compare_exchange_strong(w->deadline, &none, a + w->deadline_after);
			}
			/* The next request on this keep-alive connection. */
			bench_frame_set_seq(&w->frame, w->frame.seq + (uint32_t)w->frame.payload_len);
			continue;
		}
		if (action == XDP_TX)
			__atomic_store_n(&w->rejected, w->rejected + 1, __ATOMIC_RELAXED);
		else if (action == XDP_DROP)
			w->deferred++; /* the bench's upstream never answers: no 429 can follow */
		else
			w->other++;
		/* "connection: close": the client comes back on a new connection. */
		if (w->conn_next >= w->conn_end) {
			snprintf(w->why, sizeof(w->why), "ran out of connections");
			return NULL;
		}
		{
			/* rls_flows never evicts: the closed connection's entry goes, or it fills. */
			struct rls_flow_key k = bench_flow_key(&w->frame);
			uint32_t client;
			uint16_t sport;

			bpf_map_delete_elem(w->flows_fd, &k);
			bench_conn(w->conn_next++, &client, &sport);
			bench_frame_set_client(&w->frame, client, sport);
			bench_frame_set_seq(&w->frame, w->frame.seq + 1000000);
		}
	}
	return NULL;
}

static int cmp_stamp_a(const void *x, const void *y)
{
	const struct stamp *p = x, *q = y;

	return p->a < q->a ? -1 : p->a > q->a;
}

struct run {
	struct worker *w;
	int n;
	double seconds;
	uint64_t sent, admitted, rejected, deferred, other;
	__u64 map_admitted, map_rejected;
	struct stamp *adm; /* all workers', sorted by a */
	size_t nr_adm;
	__u64 start_all, end_all; /* every worker was running in [start_all, end_all] */
	__u64 first_b, last_b, last_a;
	__u64 deadline;
};

static int cpus[CPU_SETSIZE];
static int nr_cpus_used;

/*
 * Run every worker for seconds on test t's key, connections from block t of the space. With
 * deadline_after, the workers stop by themselves that long after the first admission.
 */
static void run_test(const struct env *e, enum test_id t, double seconds,
		     __u64 deadline_after, struct run *r)
{
	char req[TP_MAX_FRAME];
	size_t len = bench_request(req, sizeof(req), NULL, test_keys[t], 1, BENCH_BODY);
	uint64_t block = BENCH_NR_CONNS / (uint64_t)(NR_TESTS * nr_cpus_used);
	pthread_barrier_t start;
	atomic_int stop = 0;
	_Atomic __u64 deadline = 0;
	__s64 off = bench_tai_minus_utc_ns(e);
	__u64 now = utc_kernel_ns(off);
	struct timespec ts;
	int i;

	memset(r, 0, sizeof(*r));
	r->n = nr_cpus_used;
	r->w = calloc((size_t)r->n, sizeof(*r->w));
	if (!r->w || !len)
		die("out of memory");
	if (pthread_barrier_init(&start, NULL, (unsigned)r->n + 1))
		die("pthread_barrier_init");
	for (i = 0; i < r->n; i++) {
		struct worker *w = &r->w[i];
		uint32_t client;
		uint16_t sport;

		w->cpu = cpus[i];
		w->prog_fd = e->prog_fd;
		w->flows_fd = e->maps.flows;
		w->start = &start;
		w->stop = &stop;
		w->deadline = &deadline;
		w->deadline_after = deadline_after;
		w->tai_off = off;
		w->base_sec = now / NS;
		w->nr_secs = (size_t)seconds + 4;
		w->offered = calloc(w->nr_secs, sizeof(*w->offered));
		if (!w->offered)
			die("out of memory");
		w->conn_next = block * (uint64_t)(t * r->n + i);
		w->conn_end = w->conn_next + block;
		bench_conn(w->conn_next++, &client, &sport);
		if (bench_frame_build(&w->frame, client, sport, 1000 + (uint32_t)i * 77777, 0, req, len))
			die("cannot build the request frame");
		if (pthread_create(&w->thread, NULL, worker_main, w))
			die("pthread_create: %s", strerror(errno));
	}
	pthread_barrier_wait(&start);
	if (deadline_after)
		seconds += 0.5; /* a fallback: they normally stop by the deadline */
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
	/* Saturated means some request was refused: wait for one, up to 4 times as long. */
	for (i = 0; t == T_RPD && i < (int)(seconds * 12); i++) {
		uint64_t refused = 0;
		int j;

		for (j = 0; j < r->n; j++)
			refused += __atomic_load_n(&r->w[j].rejected, __ATOMIC_RELAXED);
		if (refused)
			break;
		ts.tv_sec = 0;
		ts.tv_nsec = 250000000;
		nanosleep(&ts, NULL);
	}
	atomic_store(&stop, 1);
	for (i = 0; i < r->n; i++)
		pthread_join(r->w[i].thread, NULL);
	pthread_barrier_destroy(&start);

	r->start_all = 0;
	r->end_all = ~0ull;
	r->deadline = deadline;
	r->first_b = ~0ull;
	for (i = 0; i < r->n; i++) {
		struct worker *w = &r->w[i];

		if (w->why[0])
			die("CPU %d: %s", w->cpu, w->why);
		if (!w->sent)
			die("CPU %d sent nothing", w->cpu);
		r->sent += w->sent;
		r->admitted += w->admitted;
		r->rejected += w->rejected;
		r->deferred += w->deferred;
		r->other += w->other;
		r->nr_adm += w->nr_adm;
		r->start_all = w->first_b > r->start_all ? w->first_b : r->start_all;
		r->end_all = w->last_a < r->end_all ? w->last_a : r->end_all;
		r->first_b = w->first_b < r->first_b ? w->first_b : r->first_b;
		r->last_b = w->last_b > r->last_b ? w->last_b : r->last_b;
		r->last_a = w->last_a > r->last_a ? w->last_a : r->last_a;
	}
	r->adm = calloc(r->nr_adm + 1, sizeof(*r->adm));
	if (!r->adm)
		die("out of memory");
	for (i = 0, len = 0; i < r->n; i++) {
		memcpy(r->adm + len, r->w[i].adm, r->w[i].nr_adm * sizeof(*r->adm));
		len += r->w[i].nr_adm;
	}
	qsort(r->adm, r->nr_adm, sizeof(*r->adm), cmp_stamp_a);
	r->seconds = (double)(r->last_a - r->first_b) / 1e9;
	bench_stats(e, map_account_id(&e->maps, test_accounts[t]), RLS_MODEL_OTHER,
		    &r->map_admitted, &r->map_rejected);
}

static void run_free(struct run *r)
{
	int i;

	for (i = 0; i < r->n; i++) {
		free(r->w[i].adm);
		free(r->w[i].offered);
	}
	free(r->w);
	free(r->adm);
}

/* Sleep until at least need_s seconds of the current period_s UTC window are left. */
static void leave_room(__s64 off, __u64 period_s, double need_s)
{
	__u64 now = utc_kernel_ns(off), period = period_s * NS, left = period - now % period;

	if ((double)left < need_s * 1e9) {
		struct timespec ts = { .tv_sec = (time_t)(left / NS), .tv_nsec = (long)(left % NS) + 50000000 };

		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		nanosleep(&ts, NULL);
	}
}

struct outcome {
	const char *limit;
	char config[96], run[160], offered[96], allowed[96], admitted[96];
	long long error;   /* admitted - allowed, 0 when allowed is a range containing it */
	int valid;         /* there was something to compare */
	int saturated;
	int map_agrees;
	int ambiguous;     /* allowed is a range */
	__u64 allowed_n, allowed_hi, admitted_n;
};

static void fmt_count(char *buf, size_t cap, uint64_t v)
{
	snprintf(buf, cap, "%llu", (unsigned long long)v);
}

static void analyze_rps(const struct run *r, __u32 rps, struct outcome *o)
{
	__u64 first = (r->start_all + NS - 1) / NS, last = r->end_all / NS; /* full: [first, last) */
	__u64 base = r->w[0].base_sec, w;
	uint32_t *adm_in;
	size_t i, nr = last > first ? last - first : 0, straddled = 0;
	uint64_t min_adm = ~0ull, max_adm = 0, min_off = ~0ull, total = 0;
	long long err = 0;
	int j;

	o->limit = "rps";
	snprintf(o->config, sizeof(o->config), "rps %u", rps);
	adm_in = calloc(nr + 1, sizeof(*adm_in));
	if (!adm_in)
		die("out of memory");
	for (i = 0; i < r->nr_adm; i++) {
		__u64 wb = r->adm[i].b / NS, wa = r->adm[i].a / NS;

		/*
		 * A call that straddles a second boundary: its admission is counted in the later
		 * window. (Under saturation the earlier window was full by then; if the program
		 * had admitted it there, the later window shows one more than rps.)
		 */
		if (wb != wa)
			straddled++;
		w = wa;
		if (w >= first && w < last)
			adm_in[w - first]++;
	}
	o->saturated = nr > 0;
	for (i = 0; i < nr; i++) {
		uint64_t offered = 0;

		for (j = 0; j < r->n; j++)
			if (first + i - base < r->w[j].nr_secs)
				offered += r->w[j].offered[first + i - base];
		min_off = offered < min_off ? offered : min_off;
		if (offered <= rps)
			o->saturated = 0;
		min_adm = adm_in[i] < min_adm ? adm_in[i] : min_adm;
		max_adm = adm_in[i] > max_adm ? adm_in[i] : max_adm;
		total += adm_in[i];
		err += adm_in[i] > rps ? (long long)(adm_in[i] - rps) : (long long)(rps - adm_in[i]);
	}
	free(adm_in);
	snprintf(o->run, sizeof(o->run), "%.1f s, %zu full 1-s windows (admissions whose call "
		 "straddled a second boundary: %zu)", r->seconds, nr, straddled);
	if (nr)
		snprintf(o->offered, sizeof(o->offered), "%llu per window at least",
			 (unsigned long long)min_off);
	else
		snprintf(o->offered, sizeof(o->offered), "no full window");
	o->allowed_n = (uint64_t)rps * nr;
	o->admitted_n = total;
	snprintf(o->allowed, sizeof(o->allowed), "%u per window, %llu in all", rps,
		 (unsigned long long)o->allowed_n);
	if (min_adm == max_adm)
		snprintf(o->admitted, sizeof(o->admitted), "%llu per window, %llu in all",
			 (unsigned long long)min_adm, (unsigned long long)total);
	else
		snprintf(o->admitted, sizeof(o->admitted), "%llu to %llu per window, %llu in all",
			 (unsigned long long)(nr ? min_adm : 0), (unsigned long long)max_adm,
			 (unsigned long long)total);
	o->error = err;
	o->valid = nr > 0;
}

static int cmp_double(const void *x, const void *y)
{
	double p = *(const double *)x, q = *(const double *)y;

	return p < q ? -1 : p > q;
}

/*
 * The GCRA from a fresh counter: the first admission at t0 (fills the tat), burst admitted at
 * once, then refill k due at t0 + k T. Under saturation every due refill is taken by the next
 * request, so the last request, at t_last, leaves burst + floor((t_last - t0) / T) admitted.
 * t0 and t_last are known to within the brackets of their calls; the run stops half an
 * interval away from a due time, so the floor is almost always one number.
 */
static void analyze_rpm(const struct run *r, __u32 rpm, __u32 burst, struct outcome *o,
			double *late_med_us, double *late_max_us, uint64_t *early)
{
	__u64 T = 60 * NS / rpm, t0_lo = ~0ull, t0_hi, lo, hi;
	double *late;
	size_t i, n = 0;

	o->limit = "rpm + burst";
	snprintf(o->config, sizeof(o->config), "rpm %u, burst %u (a refill every %.3f ms)", rpm,
		 burst, (double)T / 1e6);
	snprintf(o->run, sizeof(o->run), "%.2f s inside one UTC minute", r->seconds);
	fmt_count(o->offered, sizeof(o->offered), r->sent);
	fmt_count(o->admitted, sizeof(o->admitted), r->admitted);
	*late_med_us = *late_max_us = 0;
	*early = 0;
	if (!r->nr_adm) {
		snprintf(o->allowed, sizeof(o->allowed), "?");
		return;
	}
	t0_hi = r->adm[0].a;
	for (i = 0; i < r->nr_adm; i++)
		t0_lo = r->adm[i].b < t0_lo ? r->adm[i].b : t0_lo;
	lo = burst + (r->last_b > t0_hi ? (r->last_b - t0_hi) / T : 0);
	hi = burst + (r->last_a - t0_lo) / T;
	/* Refill k (admission burst + k, in time order) is due at t0 + k T. */
	late = calloc(r->nr_adm + 1, sizeof(*late));
	if (!late)
		die("out of memory");
	for (i = burst; i < r->nr_adm; i++) {
		__u64 k = i - burst + 1, due_lo = t0_lo + k * T;

		if (r->adm[i].a < due_lo)
			(*early)++;
		/* At most this late: from the earliest it could be due to the end of its call. */
		late[n++] = r->adm[i].a > due_lo ? (double)(r->adm[i].a - due_lo) / 1e3 : 0;
	}
	if (n) {
		qsort(late, n, sizeof(*late), cmp_double);
		*late_med_us = late[n / 2];
		*late_max_us = late[n - 1];
	}
	free(late);
	o->valid = 1;
	o->saturated = r->rejected > 0;
	o->admitted_n = r->admitted;
	o->allowed_n = lo;
	o->allowed_hi = hi;
	o->ambiguous = lo != hi;
	if (lo == hi)
		snprintf(o->allowed, sizeof(o->allowed), "%u + %llu refills = %llu", burst,
			 (unsigned long long)(lo - burst), (unsigned long long)lo);
	else
		snprintf(o->allowed, sizeof(o->allowed), "%llu to %llu (the run's end is known only to "
			 "within a call)", (unsigned long long)lo, (unsigned long long)hi);
	if (r->admitted < lo)
		o->error = (long long)r->admitted - (long long)lo;
	else if (r->admitted > hi)
		o->error = (long long)(r->admitted - hi);
	else
		o->error = 0;
	o->error += (long long)*early; /* an early refill is an error even if the count is right */
}

static void analyze_rpd(const struct run *r, __u32 rpd, struct outcome *o)
{
	o->limit = "rpd";
	snprintf(o->config, sizeof(o->config), "rpd %u", rpd);
	snprintf(o->run, sizeof(o->run), "%.1f s inside one UTC day", r->seconds);
	fmt_count(o->offered, sizeof(o->offered), r->sent);
	fmt_count(o->allowed, sizeof(o->allowed), rpd);
	fmt_count(o->admitted, sizeof(o->admitted), r->admitted);
	o->allowed_n = rpd;
	o->admitted_n = r->admitted;
	o->saturated = r->rejected > 0;
	o->valid = 1;
	o->error = (long long)r->admitted - (long long)rpd;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: accuracy [OPTIONS]\n\n"
		"Admitted versus allowed under a saturating load from one pinned thread per CPU,\n"
		"all on one account, through BPF_PROG_TEST_RUN. Prints a Markdown section.\n\n"
		"  --tests LIST       comma-separated: rps,rpm,rpd (default: all)\n"
		"  --rps N            (default 20000)     --rps-seconds S (default 10)\n"
		"  --rpm N            (default 12000)     --burst B (default 1000)\n"
		"  --rpm-seconds S    (default 5)\n"
		"  --rpd N            (default 100000)    --rpd-seconds S (default 2; longer until\n"
		"                                         a request is refused, up to 4 times)\n"
		"  --summary FILE     append 'accuracy.TEST.FIELD<TAB>VALUE' lines to FILE\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tests", required_argument, NULL, 't' },
		{ "rps", required_argument, NULL, 1 },
		{ "rps-seconds", required_argument, NULL, 2 },
		{ "rpm", required_argument, NULL, 3 },
		{ "burst", required_argument, NULL, 4 },
		{ "rpm-seconds", required_argument, NULL, 5 },
		{ "rpd", required_argument, NULL, 6 },
		{ "rpd-seconds", required_argument, NULL, 7 },
		{ "summary", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long rps = 20000, rpm = 12000, burst = 1000, rpd = 100000;
	double secs[NR_TESTS] = { 10, 5, 2 }, late_med = 0, late_max = 0;
	int want[NR_TESTS] = { 1, 1, 1 }, opt, i;
	uint64_t early = 0;
	const char *summary = NULL;
	struct outcome out[NR_TESTS];
	struct env env;
	char table[2048], why[1536];
	cpu_set_t set;
	FILE *sf = NULL;
	struct run r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 't': {
			char *copy = strdup(optarg), *tok, *save = NULL;

			for (i = 0; i < NR_TESTS; i++)
				want[i] = 0;
			for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				for (i = 0; i < NR_TESTS && strcmp(tok, test_names[i]); i++)
					;
				if (i == NR_TESTS)
					die("unknown test \"%s\"", tok);
				want[i] = 1;
			}
			free(copy);
			break;
		}
		case 1: rps = strtoul(optarg, NULL, 10); break;
		case 2: secs[T_RPS] = atof(optarg); break;
		case 3: rpm = strtoul(optarg, NULL, 10); break;
		case 4: burst = strtoul(optarg, NULL, 10); break;
		case 5: secs[T_RPM] = atof(optarg); break;
		case 6: rpd = strtoul(optarg, NULL, 10); break;
		case 7: secs[T_RPD] = atof(optarg); break;
		case 's': summary = optarg; break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!rps || !rpm || !burst || burst > rpm || !rpd || (60 * NS) % rpm)
		die("limits must be > 0, burst <= rpm, and rpm must divide 60e9 (an emission interval "
		    "of whole nanoseconds)");
	if (secs[T_RPS] < 2 || secs[T_RPS] > 60 || secs[T_RPM] <= 0 || secs[T_RPM] > 50 ||
	    secs[T_RPD] <= 0 || secs[T_RPD] > 60)
		die("--rps-seconds must be 2 to 60 (a full window), --rpm-seconds up to 50, "
		    "--rpd-seconds up to 60");
	/* The minute window must never be what stops the rpm run: only the smoothing. */
	if (burst + (unsigned long)(secs[T_RPM] * (double)rpm / 60.0) + 1 >= rpm)
		die("burst + rpm/60 x --rpm-seconds must stay below rpm: the minute window would bind");
	if (geteuid() != 0)
		die("needs root (BPF_PROG_TEST_RUN on XDP programs)");

	if (sched_getaffinity(0, sizeof(set), &set))
		die("sched_getaffinity: %s", strerror(errno));
	for (i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set))
			cpus[nr_cpus_used++] = i;

	snprintf(table, sizeof(table),
		 "{\"listen\": {\"ports\": [8000]},\n"
		 " \"tiers\": {\"rps\": {\"*\": {\"rps\": %lu}},\n"
		 "           \"rpm\": {\"*\": {\"rpm\": %lu, \"burst\": %lu}},\n"
		 "           \"rpd\": {\"*\": {\"rpd\": %lu}}},\n"
		 " \"accounts\": {\"%s\": {\"tier\": \"rps\", \"keys\": [\"%s\"]},\n"
		 "              \"%s\": {\"tier\": \"rpm\", \"keys\": [\"%s\"]},\n"
		 "              \"%s\": {\"tier\": \"rpd\", \"keys\": [\"%s\"]}}}\n",
		 rps, rpm, burst, rpd, test_accounts[0], test_keys[0], test_accounts[1],
		 test_keys[1], test_accounts[2], test_keys[2]);
	if (bench_env_open(&env, "accuracy.json", table, why, sizeof(why)))
		die("%s", why);

	memset(out, 0, sizeof(out));
	if (summary) {
		sf = fopen(summary, "a");
		if (!sf)
			die("%s: %s", summary, strerror(errno));
	}
	printf("%d threads, one pinned to each CPU (", nr_cpus_used);
	for (i = 0; i < nr_cpus_used; i++)
		printf("%s%d", i ? ", " : "", cpus[i]);
	printf("), each calling BPF_PROG_TEST_RUN (repeat = 1) as fast as it can with distinct "
	       "request starts on one account's key; a 429 sends the thread to a new connection. "
	       "Admissions are counted from the verdicts and checked against the program's "
	       "rls_stats.\n\n");
	printf("| limit | configured | run | requests offered | allowed | admitted | error |\n");
	printf("| --- | --- | --- | ---: | ---: | ---: | ---: |\n");
	fflush(stdout);
	for (i = 0; i < NR_TESTS; i++) {
		struct outcome *o = &out[i];
		__s64 off = bench_tai_minus_utc_ns(&env);

		if (!want[i])
			continue;
		if (i == T_RPM)
			leave_room(off, 60, secs[i] + 0.5);
		else if (i == T_RPD)
			leave_room(off, 86400, secs[i] + 0.5);
		if (i == T_RPM) {
			__u64 T = 60 * NS / rpm;

			/* Stop half an interval away from any refill's due time. */
			run_test(&env, (enum test_id)i, secs[i],
				 (__u64)(secs[i] * 1e9) / T * T + T / 2, &r);
		} else {
			run_test(&env, (enum test_id)i, secs[i], 0, &r);
		}
		if (i == T_RPS)
			analyze_rps(&r, (__u32)rps, o);
		else if (i == T_RPM)
			analyze_rpm(&r, (__u32)rpm, (__u32)burst, o, &late_med, &late_max, &early);
		else
			analyze_rpd(&r, (__u32)rpd, o);
		o->map_agrees = r.map_admitted == r.admitted &&
				r.map_rejected == r.rejected + r.deferred && !r.other;
		if (o->valid)
			printf("| %s | %s | %s, %.0f requests/s | %s | %s | %s | %lld |\n", o->limit,
			       o->config, o->run, (double)r.sent / r.seconds, o->offered, o->allowed,
			       o->admitted, o->error);
		else
			printf("| %s | %s | %s | %s | %s | %s | n/a |\n", o->limit, o->config, o->run,
			       o->offered, o->allowed, o->admitted);
		o->saturated &= o->valid;
		fflush(stdout);
		if (!o->saturated)
			printf("\n**Not saturated:** the %s run offered no more than the limit somewhere "
			       "(a slow or busy machine): the error above is not a test of exactness.\n\n",
			       test_names[i]);
		if (!o->map_agrees)
			printf("\n**Verdicts and rls_stats disagree** for %s: verdicts %llu admitted, "
			       "%llu rejected (%llu of them held), %llu other; rls_stats %llu "
			       "admitted, %llu rejected.\n\n",
			       test_names[i], (unsigned long long)r.admitted,
			       (unsigned long long)(r.rejected + r.deferred),
			       (unsigned long long)r.deferred, (unsigned long long)r.other,
			       (unsigned long long)r.map_admitted, (unsigned long long)r.map_rejected);
		if (sf) {
			if (o->ambiguous)
				fprintf(sf, "accuracy.%s.allowed\t%llu to %llu\n", test_names[i],
					(unsigned long long)o->allowed_n,
					(unsigned long long)o->allowed_hi);
			else
				fprintf(sf, "accuracy.%s.allowed\t%llu\n", test_names[i],
					(unsigned long long)o->allowed_n);
			fprintf(sf, "accuracy.%s.admitted\t%llu\n", test_names[i],
				(unsigned long long)o->admitted_n);
			if (o->valid)
				fprintf(sf, "accuracy.%s.error\t%lld\n", test_names[i], o->error);
			else
				fprintf(sf, "accuracy.%s.error\tn/a\n", test_names[i]);
			fprintf(sf, "accuracy.%s.offered\t%llu\n", test_names[i],
				(unsigned long long)r.sent);
			fprintf(sf, "accuracy.%s.saturated\t%s\n", test_names[i],
				o->saturated ? "yes" : "no");
			fprintf(sf, "accuracy.%s.stats_agree\t%s\n", test_names[i],
				o->map_agrees ? "yes" : "no");
		}
		run_free(&r);
	}
	if (want[T_RPM])
		printf("\nrpm + burst: %llu refills came before their due time. A refill was taken at "
		       "most %.1f us after it was due (median; the worst: %.1f us), counting the whole "
		       "call around it.\n", (unsigned long long)early, late_med, late_max);
	if (sf)
		fclose(sf);
	env_close(&env);
	return 0;
}
