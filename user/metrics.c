// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>

#include "map_walk.h"
#include "fleet.h"
#include "maps.h"
#include "metrics.h"
#include "slot_ring.h"
#include "stat_names.h"
#include "stats_rows.h"

/* ---- what the settling loop shares with the scrape ---- */

void rls_metrics_shared_init(struct rls_metrics_shared *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
}

void rls_metrics_shared_free(struct rls_metrics_shared *s)
{
	pthread_mutex_destroy(&s->lock);
	free(s->models);
	s->models = NULL;
}

int rls_metrics_add_settled(struct rls_metrics_shared *s, __u32 model, enum rls_token_source src,
			    __u64 responses, __u64 tokens)
{
	struct rls_model_settled *m = NULL, *grown;
	size_t i;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nr_models && !m; i++)
		if (s->models[i].model == model)
			m = &s->models[i];
	if (!m && s->nr_models == s->cap_models) {
		/* Models are at most 2 * RLS_MAX_MODELS ids (+ "*", hidden): a short list. */
		size_t cap = s->cap_models ? 2 * s->cap_models : 16;

		grown = realloc(s->models, cap * sizeof(*grown));
		if (grown) {
			s->models = grown;
			s->cap_models = cap;
		}
	}
	if (!m && s->nr_models < s->cap_models) {
		m = &s->models[s->nr_models++];
		memset(m, 0, sizeof(*m));
		m->model = model;
	}
	if (m) {
		m->responses[src] += responses;
		m->tokens[src] += tokens;
	} else {
		ret = -ENOMEM;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

void rls_metrics_publish(struct rls_metrics_shared *s, const struct rls_daemon_counts *counts)
{
	pthread_mutex_lock(&s->lock);
	s->counts = *counts;
	pthread_mutex_unlock(&s->lock);
}

/* ---- choosing the accounts shown one by one ---- */

static int by_traffic(const void *a, const void *b)
{
	const struct rls_account_traffic *x = a, *y = b;

	if (x->requests != y->requests)
		return x->requests > y->requests ? -1 : 1;
	return x->account < y->account ? -1 : x->account > y->account;
}

size_t rls_metrics_top_accounts(struct rls_account_traffic *in, size_t n, size_t k, __u32 *out)
{
	size_t i;

	qsort(in, n, sizeof(*in), by_traffic);
	for (i = 0; i < n && i < k; i++)
		out[i] = in[i].account;
	return i;
}

/* ---- models: ids to names, and a place for each model's sums ---- */

struct model_sums {
	__u32 id;
	char name[RLS_MODEL_NAME_MAX + 12];
	__u64 admitted, rejected[RLS_NR_REASONS];
	__u64 shaped, shaped_delay_ns;
	__u64 slots_held, slots_peak, slots_expired;
	bool has_requests, has_slots;
};

struct models {
	struct model_sums *m;
	size_t n, cap, sorted; /* m[0, sorted) is sorted by id; later ones were met on the way */
};

static int by_id(const void *a, const void *b)
{
	const struct model_sums *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static struct model_sums *model_add(struct models *ms, __u32 id, const char *name)
{
	struct model_sums *grown;

	if (ms->n == ms->cap) {
		size_t cap = ms->cap ? 2 * ms->cap : 64;

		grown = realloc(ms->m, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		ms->m = grown;
		ms->cap = cap;
	}
	memset(&ms->m[ms->n], 0, sizeof(ms->m[ms->n]));
	ms->m[ms->n].id = id;
	snprintf(ms->m[ms->n].name, sizeof(ms->m[ms->n].name), "%s", name);
	return &ms->m[ms->n++];
}

static void visit_model_name(const void *key, const void *value, void *ctx)
{
	const struct rls_model_name *name = key;
	char text[RLS_MODEL_NAME_MAX];

	snprintf(text, sizeof(text), "%.*s", RLS_MODEL_NAME_MAX - 1, name->name);
	model_add(ctx, *(const __u32 *)value, text);
}

static void models_read(struct models *ms, int fd)
{
	memset(ms, 0, sizeof(*ms));
	model_add(ms, RLS_MODEL_OTHER, "*");
	model_add(ms, RLS_MODEL_HIDDEN, "(hidden)");
	rls_map_walk(fd, 0, visit_model_name, ms);
	qsort(ms->m, ms->n, sizeof(*ms->m), by_id);
	ms->sorted = ms->n;
}

/* The sums of model id; one is made ("#id") for an id no longer named. NULL: out of memory. */
static struct model_sums *model_of(struct models *ms, __u32 id)
{
	struct model_sums key = { .id = id }, *m;
	char name[16];
	size_t i;

	m = bsearch(&key, ms->m, ms->sorted, sizeof(*ms->m), by_id);
	if (m)
		return m;
	for (i = ms->sorted; i < ms->n; i++)
		if (ms->m[i].id == id)
			return &ms->m[i];
	snprintf(name, sizeof(name), "#%u", id);
	return model_add(ms, id, name);
}

/* ---- rls_stats: per (account, model), per CPU ---- */

struct stats_walk {
	struct rls_stats_pair *rows;
	size_t n;
};

/* ---- counters: concurrency slots per model, and how many there are ---- */

struct counters_walk {
	struct models *models;
	__u64 now_ns;
	__u32 entries;
};

static void visit_counter(const void *key, const void *value, void *ctx)
{
	struct counters_walk *w = ctx;
	const struct rls_counter_key *k = key;
	struct rls_counter c;
	struct model_sums *m;

	w->entries++;
	memcpy(&c, value, sizeof(c));
	if (!c.slot_epoch_ns)
		return;
	/* What has expired by now is taken off, as the next admission would. */
	rls_slots_expire(&c, w->now_ns);
	m = model_of(w->models, k->model);
	if (!m)
		return;
	m->has_slots = true;
	m->slots_held += c.slots_held;
	m->slots_expired += c.slots_expired;
	if (c.slots_peak > m->slots_peak)
		m->slots_peak = c.slots_peak;
}

/* ---- writing ---- */

/* Shaping's count and its delays, one family after the other. */
static void write_shaped(struct rls_expo *e, const struct models *ms)
{
	static const char *const names[] = { "rlshape_requests_shaped_total",
					     "rlshape_requests_shaped_delay_seconds_total" };
	static const char *const helps[] = {
		"Of the admitted requests, those shaping delayed on the upstream side, per model.",
		"The delays shaping gave them, summed, per model.",
	};
	size_t f, i;

	for (f = 0; f < 2; f++) {
		rls_expo_family(e, names[f], "counter", helps[f]);
		for (i = 0; i < ms->n; i++) {
			struct rls_label l[] = { { "model", ms->m[i].name } };

			if (!ms->m[i].has_requests)
				continue;
			if (f == 0)
				rls_expo_u64(e, names[f], l, 1, ms->m[i].shaped);
			else
				rls_expo_double(e, names[f], l, 1,
						(double)ms->m[i].shaped_delay_ns / 1e9);
		}
	}
}

static void write_requests(struct rls_expo *e, struct models *ms)
{
	size_t i;
	int r;

	rls_expo_family(e, "rlshape_requests_admitted_total", "counter",
			"Requests admitted, per model (all accounts).");
	for (i = 0; i < ms->n; i++) {
		struct rls_label l[] = { { "model", ms->m[i].name } };

		if (ms->m[i].has_requests)
			rls_expo_u64(e, "rlshape_requests_admitted_total", l, 1, ms->m[i].admitted);
	}
	rls_expo_family(e, "rlshape_requests_rejected_total", "counter",
			"Requests answered with a 429, per model and reason (the limit that stopped "
			"them: rps, rpm, rph, rpd, burst, tokens, concurrency).");
	for (i = 0; i < ms->n; i++) {
		for (r = RLS_REASON_RPS; r < RLS_NR_REASONS && ms->m[i].has_requests; r++) {
			struct rls_label l[] = { { "model", ms->m[i].name },
						 { "reason", rls_reason_names[r] } };

			rls_expo_u64(e, "rlshape_requests_rejected_total", l, 2, ms->m[i].rejected[r]);
		}
	}
	write_shaped(e, ms);
}

static int by_account_model(const void *a, const void *b)
{
	const struct rls_stats_pair *x = a, *y = b;

	if (x->key.account != y->key.account)
		return x->key.account < y->key.account ? -1 : 1;
	return x->key.model < y->key.model ? -1 : x->key.model > y->key.model;
}

/* The first of rows (sorted by account) that is account's; w->n when none is. */
static size_t first_row(const struct stats_walk *w, __u32 account)
{
	size_t lo = 0, hi = w->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (w->rows[mid].key.account < account)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void account_name(int fd, __u32 id, char *out, size_t len)
{
	struct rls_account_name name;

	if (id == RLS_ACCOUNT_ANONYMOUS)
		snprintf(out, len, "(unknown)");
	else if (bpf_map_lookup_elem(fd, &id, &name) == 0)
		snprintf(out, len, "%.*s", RLS_ACCOUNT_NAME_MAX - 1, name.name);
	else
		snprintf(out, len, "#%u", id);
}

/* Per-account series, only for the accounts with the most requests (opt-in, capped). */
static void write_accounts(struct rls_expo *e, const struct rls_metrics_config *cfg,
			   const struct rls_maps *maps, struct models *ms,
			   const struct stats_walk *w)
{
	struct rls_account_traffic *traffic;
	char (*names)[RLS_ACCOUNT_NAME_MAX + 12] = NULL;
	size_t n = 0, i, k, chosen;
	__u32 *top;
	int r, f;

	if (!cfg->accounts)
		return;
	traffic = calloc(w->n ? w->n : 1, sizeof(*traffic));
	top = calloc(cfg->accounts, sizeof(*top));
	if (!traffic || !top)
		goto out;
	/* The rows are sorted by account: its rows are one run. */
	for (i = 0; i < w->n; i++) {
		__u64 requests = w->rows[i].total.admitted;

		for (r = 0; r < RLS_NR_REASONS; r++)
			requests += w->rows[i].total.rejected[r];
		if (!n || traffic[n - 1].account != w->rows[i].key.account)
			traffic[n++] = (struct rls_account_traffic){ w->rows[i].key.account, 0 };
		traffic[n - 1].requests += requests;
	}
	chosen = rls_metrics_top_accounts(traffic, n, cfg->accounts, top);
	names = calloc(chosen ? chosen : 1, sizeof(*names));
	if (!names)
		goto out;
	for (k = 0; k < chosen; k++)
		account_name(maps->accounts, top[k], names[k], sizeof(names[k]));
	/* A family's samples stand together: one pass per family (admitted, then rejected). */
	for (f = 0; f < 2; f++) {
		const char *family = f ? "rlshape_account_requests_rejected_total"
				       : "rlshape_account_requests_admitted_total";

		rls_expo_family(e, family, "counter",
				f ? "Requests answered with a 429, per account, model and reason, for "
				    "the accounts with the most requests (daemon --metrics-accounts)."
				  : "Requests admitted, per account and model, for the accounts with "
				    "the most requests (daemon --metrics-accounts).");
		for (k = 0; k < chosen; k++) {
			for (i = first_row(w, top[k]);
			     i < w->n && w->rows[i].key.account == top[k]; i++) {
				const struct rls_stats_pair *row = &w->rows[i];
				struct model_sums *m = model_of(ms, row->key.model);

				/* Admitted: one sample, reason-less; rejected: one per reason. */
				for (r = f ? RLS_REASON_RPS : RLS_REASON_NONE;
				     m && r < (f ? RLS_NR_REASONS : RLS_REASON_NONE + 1); r++) {
					struct rls_label l[] = { { "account", names[k] },
								 { "model", m->name },
								 { "reason", rls_reason_names[r] } };

					rls_expo_u64(e, family, l, f ? 3 : 2,
						     f ? row->total.rejected[r] : row->total.admitted);
				}
			}
		}
	}
out:
	free(names);
	free(traffic);
	free(top);
}

static void write_slots(struct rls_expo *e, const struct models *ms)
{
	static const struct {
		const char *name, *type, *help;
	} families[] = {
		{ "rlshape_concurrency_slots_held", "gauge",
		  "Concurrency slots held now by requests in flight, per model (expired ones taken "
		  "off)." },
		{ "rlshape_concurrency_slots_peak", "gauge",
		  "The most slots one counter of the model ever held at once." },
		{ "rlshape_concurrency_slots_expired_total", "counter",
		  "Slots freed by max_hold_seconds rather than by their response's end, per model." },
	};
	size_t f, i;

	for (f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
		rls_expo_family(e, families[f].name, families[f].type, families[f].help);
		for (i = 0; i < ms->n; i++) {
			const struct model_sums *m = &ms->m[i];
			struct rls_label l[] = { { "model", m->name } };
			__u64 v = f == 0 ? m->slots_held : f == 1 ? m->slots_peak : m->slots_expired;

			if (m->has_slots)
				rls_expo_u64(e, families[f].name, l, 1, v);
		}
	}
}

static void write_packets(struct rls_expo *e, const struct rls_maps *maps)
{
	int cpus = rls_nr_cpus(), cpu;
	__u64 *percpu = calloc(cpus, sizeof(*percpu)), total;
	__u32 i;

	rls_expo_family(e, "rlshape_packets_total", "counter",
			"What the data path did with packets, by event (rlshape stats' packets line).");
	for (i = 0; percpu && i < RLS_NR_PACKET_EVENTS; i++) {
		struct rls_label l[] = { { "event", rls_packet_event_names[i] } };

		if (bpf_map_lookup_elem(maps->packets, &i, percpu))
			continue;
		for (total = 0, cpu = 0; cpu < cpus; cpu++)
			total += percpu[cpu];
		rls_expo_u64(e, "rlshape_packets_total", l, 1, total);
	}
	free(percpu);
}

struct map_fill {
	const char *name;
	__u32 entries, max_entries;
	bool known;
};

static void write_fill(struct rls_expo *e, const struct map_fill *fill, size_t n)
{
	size_t i;

	rls_expo_family(e, "rlshape_map_entries", "gauge", "Entries in a pinned map.");
	for (i = 0; i < n; i++) {
		struct rls_label l[] = { { "map", fill[i].name } };

		if (fill[i].known)
			rls_expo_u64(e, "rlshape_map_entries", l, 1, fill[i].entries);
	}
	rls_expo_family(e, "rlshape_map_max_entries", "gauge", "The most entries a map holds.");
	for (i = 0; i < n; i++) {
		struct rls_label l[] = { { "map", fill[i].name } };

		if (fill[i].known)
			rls_expo_u64(e, "rlshape_map_max_entries", l, 1, fill[i].max_entries);
	}
	rls_expo_family(e, "rlshape_map_fill_ratio", "gauge",
			"Entries over max_entries: a map near 1 is about to refuse what it cannot "
			"hold (README says what each map does when full).");
	for (i = 0; i < n; i++) {
		struct rls_label l[] = { { "map", fill[i].name } };

		if (fill[i].known && fill[i].max_entries)
			rls_expo_double(e, "rlshape_map_fill_ratio", l, 1,
					(double)fill[i].entries / fill[i].max_entries);
	}
}

static int map_info(int fd, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, len);
	return bpf_obj_get_info_by_fd(fd, info, &len) ? -errno : 0;
}

static void count_entry(const void *key, const void *value, void *ctx)
{
	(void)key;
	(void)value;
	(*(__u32 *)ctx)++;
}

/* A map counted by its entries; walked already (entries given) when counted >= 0. */
static void fill_of(struct map_fill *f, const char *name, int fd, long counted)
{
	struct bpf_map_info info;

	f->name = name;
	f->known = false;
	f->entries = 0;
	if (map_info(fd, &info))
		return;
	f->max_entries = info.max_entries;
	if (counted >= 0)
		f->entries = (__u32)counted;
	/* Batched where the map has batches: a million keys one by one took 2.6 s. */
	f->known = counted >= 0 || rls_map_walk(fd, 0, count_entry, &f->entries) == 0;
}

/* Bytes TC has put in the rls_events ring that the daemon has not consumed yet. */
static int ring_lag(int fd, __u64 *lag, __u64 *size)
{
	long page = sysconf(_SC_PAGESIZE);
	struct bpf_map_info info;
	void *cons, *prod;
	int ret;

	ret = map_info(fd, &info);
	if (ret)
		return ret;
	/* The ring's first page holds the consumer position, the second the producer's. */
	cons = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
	if (cons == MAP_FAILED)
		return -errno;
	prod = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, page);
	if (prod == MAP_FAILED) {
		ret = -errno;
		munmap(cons, page);
		return ret;
	}
	*lag = __atomic_load_n((__u64 *)prod, __ATOMIC_ACQUIRE) -
	       __atomic_load_n((__u64 *)cons, __ATOMIC_ACQUIRE);
	*size = info.max_entries;
	munmap(prod, page);
	munmap(cons, page);
	return 0;
}

static void write_table(struct rls_expo *e, const struct rls_maps *maps)
{
	struct rls_config cfg;
	__u32 zero = 0, generation;
	char sha[2 * RLS_SHA256_LEN + 1];
	int i;

	if (bpf_map_lookup_elem(maps->active, &zero, &generation) ||
	    bpf_map_lookup_elem(maps->config, &generation, &cfg))
		return;
	for (i = 0; i < RLS_SHA256_LEN; i++)
		snprintf(sha + 2 * i, 3, "%02x", cfg.table_sha256[i]);
	rls_expo_family(e, "rlshape_table_generation", "gauge",
			"The live table's generation slot (rls_active): it changes at each load.");
	rls_expo_u64(e, "rlshape_table_generation", NULL, 0, generation);
	rls_expo_family(e, "rlshape_table_loaded_timestamp_seconds", "gauge",
			"When the live table was loaded (UTC, seconds since the epoch).");
	rls_expo_u64(e, "rlshape_table_loaded_timestamp_seconds", NULL, 0, cfg.loaded_at);
	rls_expo_family(e, "rlshape_table_info", "gauge",
			"Always 1: the live table's SHA-256 as a label.");
	{
		struct rls_label l[] = { { "sha256", sha } };

		rls_expo_u64(e, "rlshape_table_info", l, 1, 1);
	}
}

static void visit_pending(const void *key, const void *value, void *ctx)
{
	(void)key;
	*(__u64 *)ctx += ((const struct rls_pending *)value)->responses;
}

static void write_ring(struct rls_expo *e, const struct rls_maps *maps,
		       const struct map_fill *parked, const struct map_fill *pending)
{
	__u64 lag = 0, size = 0, pending_responses = 0;
	bool ring_read = ring_lag(maps->events, &lag, &size) == 0;

	rls_expo_family(e, "rlshape_daemon_ring_lag_bytes", "gauge",
			"Bytes of response events in the rls_events ring not yet settled.");
	if (ring_read)
		rls_expo_u64(e, "rlshape_daemon_ring_lag_bytes", NULL, 0, lag);
	rls_expo_family(e, "rlshape_daemon_ring_size_bytes", "gauge", "The rls_events ring's size.");
	if (ring_read)
		rls_expo_u64(e, "rlshape_daemon_ring_size_bytes", NULL, 0, size);
	rls_expo_family(e, "rlshape_daemon_parked_events", "gauge",
			"Response events the full ring parked in rls_parked, waiting to be settled.");
	if (parked->known)
		rls_expo_u64(e, "rlshape_daemon_parked_events", NULL, 0, parked->entries);
	rls_expo_family(e, "rlshape_daemon_pending_responses", "gauge",
			"Responses summed in rls_pending (ring and rls_parked were full), waiting "
			"to be settled as estimates.");
	if (pending->known && rls_map_walk(maps->pending, 0, visit_pending, &pending_responses) == 0)
		rls_expo_u64(e, "rlshape_daemon_pending_responses", NULL, 0, pending_responses);
}

static const char *const source_names[RLS_NR_SOURCES] = {
	[RLS_SOURCE_USAGE] = "usage",
	[RLS_SOURCE_ESTIMATE] = "estimate",
};

/* What the settling loop counted: a copy taken under the lock, written without it. */
static void write_daemon(struct rls_expo *e, struct rls_metrics_shared *shared, struct models *ms)
{
	struct rls_model_settled *settled = NULL;
	struct rls_daemon_counts c;
	size_t n = 0, i;
	int src, f;

	pthread_mutex_lock(&shared->lock);
	c = shared->counts;
	if (shared->nr_models) {
		settled = malloc(shared->nr_models * sizeof(*settled));
		if (settled) {
			n = shared->nr_models;
			memcpy(settled, shared->models, n * sizeof(*settled));
		}
	}
	pthread_mutex_unlock(&shared->lock);

	for (f = 0; f < 2; f++) {
		const char *family = f ? "rlshape_daemon_settled_tokens_total"
				       : "rlshape_daemon_settled_responses_total";

		rls_expo_family(e, family, "counter",
				f ? "Tokens charged at settlement, per model and source."
				  : "Responses settled against token budgets, per model and source "
				    "(usage: the upstream's count; estimate: from bytes).");
		for (i = 0; i < n; i++) {
			struct model_sums *m = model_of(ms, settled[i].model);

			for (src = 0; m && src < RLS_NR_SOURCES; src++) {
				struct rls_label l[] = { { "model", m->name },
							 { "source", source_names[src] } };

				rls_expo_u64(e, family, l, 2,
					     f ? settled[i].tokens[src] : settled[i].responses[src]);
			}
		}
	}
	free(settled);
	rls_expo_family(e, "rlshape_daemon_reserved_tokens_total", "counter",
			"Tokens that had been reserved at admission for the responses settled.");
	rls_expo_u64(e, "rlshape_daemon_reserved_tokens_total", NULL, 0, c.totals.reserved);
	rls_expo_family(e, "rlshape_daemon_capped_responses_total", "counter",
			"Responses whose usage was more than max_response_tokens: charged that.");
	rls_expo_u64(e, "rlshape_daemon_capped_responses_total", NULL, 0, c.totals.capped);
	rls_expo_family(e, "rlshape_daemon_settle_skipped_total", "counter",
			"Settlements not made, by why: already_settled (a previous daemon did), "
			"no_counter (account or model removed), failed (rls_settle could not run).");
	{
		struct rls_label a[] = { { "why", "already_settled" } }, b[] = { { "why", "no_counter" } },
				 f[] = { { "why", "failed" } };

		rls_expo_u64(e, "rlshape_daemon_settle_skipped_total", a, 1, c.totals.already_settled);
		rls_expo_u64(e, "rlshape_daemon_settle_skipped_total", b, 1, c.totals.no_counter);
		rls_expo_u64(e, "rlshape_daemon_settle_skipped_total", f, 1, c.totals.failed);
	}
	rls_expo_family(e, "rlshape_daemon_reloads_total", "counter",
			"SIGHUP reloads (systemctl reload), by result: ok, failed, killed.");
	{
		struct rls_label ok[] = { { "result", "ok" } }, bad[] = { { "result", "failed" } },
				 killed[] = { { "result", "killed" } };

		rls_expo_u64(e, "rlshape_daemon_reloads_total", ok, 1, c.reloads_ok);
		rls_expo_u64(e, "rlshape_daemon_reloads_total", bad, 1, c.reloads_failed);
		rls_expo_u64(e, "rlshape_daemon_reloads_total", killed, 1, c.reloads_killed);
	}
	rls_expo_family(e, "rlshape_daemon_start_time_seconds", "gauge",
			"When the daemon started (UTC, seconds since the epoch).");
	rls_expo_u64(e, "rlshape_daemon_start_time_seconds", NULL, 0, c.started_at);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static __u64 now_utc_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (__u64)now.tv_sec * RLS_NS_PER_SEC + (__u64)now.tv_nsec;
}

/* The maps whose fill a scrape shows: the data path fills the first seven, a load the rest. */
enum fill_slot {
	FILL_COUNTERS, FILL_ANON_COUNTERS, FILL_FLOWS, FILL_STATS, FILL_TAILS, FILL_PARKED,
	FILL_PENDING, FILL_API_KEYS, FILL_API_KEY_DIGESTS, FILL_ACCOUNTS, FILL_MODELS, FILL_LIMITS,
	FILL_CIDRS, NR_FILL,
};

/*
 * The maps only a load writes: counted once per loaded table, and again only when another is
 * loaded (a table of a million accounts took 0.86 s to count, a scrape after it 13 ms).
 */
static void table_fill(struct rls_metrics_cache *cache, const struct rls_maps *maps,
		       struct map_fill *fill)
{
	static const struct {
		enum fill_slot slot;
		const char *name;
		size_t fd_offset;
	} tables[RLS_METRICS_TABLE_MAPS] = {
		{ FILL_API_KEYS, "rls_api_keys", offsetof(struct rls_maps, api_keys) },
		{ FILL_API_KEY_DIGESTS, "rls_api_key_digests", offsetof(struct rls_maps, api_key_digests) },
		{ FILL_ACCOUNTS, "rls_accounts", offsetof(struct rls_maps, accounts) },
		{ FILL_MODELS, "rls_models", offsetof(struct rls_maps, models) },
		{ FILL_LIMITS, "rls_limits", offsetof(struct rls_maps, limits) },
		{ FILL_CIDRS, "rls_cidrs", offsetof(struct rls_maps, cidrs) },
	};
	struct rls_config cfg;
	__u32 zero = 0, generation = 0;
	bool same;
	size_t i;

	if (bpf_map_lookup_elem(maps->active, &zero, &generation) ||
	    bpf_map_lookup_elem(maps->config, &generation, &cfg))
		memset(&cfg, 0, sizeof(cfg));
	same = cache && cache->valid && cache->generation == generation &&
	       cache->loaded_at == cfg.loaded_at &&
	       !memcmp(cache->table_sha256, cfg.table_sha256, RLS_SHA256_LEN);
	for (i = 0; i < RLS_METRICS_TABLE_MAPS; i++) {
		int fd = *(const int *)((const char *)maps + tables[i].fd_offset);

		fill_of(&fill[tables[i].slot], tables[i].name, fd,
			same ? (long)cache->entries[i] : -1);
		if (cache)
			cache->entries[i] = fill[tables[i].slot].entries;
	}
	if (cache) {
		cache->valid = true;
		cache->generation = generation;
		cache->loaded_at = cfg.loaded_at;
		memcpy(cache->table_sha256, cfg.table_sha256, RLS_SHA256_LEN);
	}
}

int rls_metrics_scrape(const struct rls_metrics_config *cfg, struct rls_expo *e)
{
	struct stats_walk stats = { 0 };
	struct counters_walk counters = { .now_ns = now_utc_ns() };
	struct map_fill fill[NR_FILL];
	struct models ms;
	struct rls_maps maps;
	char err[512];
	double start = now_s();
	size_t i;
	int ret, r;

	ret = rls_maps_open_pinned(cfg->pin_dir, &maps, err, sizeof(err));
	if (ret)
		return ret;
	models_read(&ms, maps.models);
	counters.models = &ms;

	rls_stats_read_all(&maps, &stats.rows, &stats.n); /* what could be read, on an error */
	qsort(stats.rows, stats.n, sizeof(*stats.rows), by_account_model);
	for (i = 0; i < stats.n; i++) {
		struct model_sums *m = model_of(&ms, stats.rows[i].key.model);

		if (!m)
			continue;
		m->has_requests = true;
		m->admitted += stats.rows[i].total.admitted;
		for (r = 0; r < RLS_NR_REASONS; r++)
			m->rejected[r] += stats.rows[i].total.rejected[r];
		m->shaped += stats.rows[i].total.shaped;
		m->shaped_delay_ns += stats.rows[i].total.shaped_delay_ns;
	}
	rls_map_walk(maps.counters, BPF_F_LOCK, visit_counter, &counters);
	fill_of(&fill[FILL_COUNTERS], "rls_counters", maps.counters, counters.entries);
	counters.entries = 0;
	rls_map_walk(maps.anon_counters, BPF_F_LOCK, visit_counter, &counters);
	fill_of(&fill[FILL_ANON_COUNTERS], "rls_anon_counters", maps.anon_counters, counters.entries);
	fill_of(&fill[FILL_FLOWS], "rls_flows", maps.flows, -1);
	fill_of(&fill[FILL_STATS], "rls_stats", maps.stats, (long)stats.n);
	fill_of(&fill[FILL_TAILS], "rls_tails", maps.tails, -1);
	fill_of(&fill[FILL_PARKED], "rls_parked", maps.parked, -1);
	fill_of(&fill[FILL_PENDING], "rls_pending", maps.pending, -1);
	table_fill(cfg->cache, &maps, fill);

	write_requests(e, &ms);
	write_accounts(e, cfg, &maps, &ms, &stats);
	write_slots(e, &ms);
	write_packets(e, &maps);
	write_fill(e, fill, NR_FILL);
	write_table(e, &maps);
	write_ring(e, &maps, &fill[FILL_PARKED], &fill[FILL_PENDING]);
	if (cfg->shared) {
		write_daemon(e, cfg->shared, &ms);
		rls_fleet_write_metrics(e);
	}
	rls_expo_family(e, "rlshape_scrape_duration_seconds", "gauge",
			"How long this scrape took to read the maps and write the text.");
	rls_expo_double(e, "rlshape_scrape_duration_seconds", NULL, 0, now_s() - start);

	free(stats.rows);
	free(ms.m);
	rls_maps_close(&maps);
	return 0;
}
