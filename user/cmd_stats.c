// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "cli.h"
#include "maps.h"
#include "slot_ring.h"
#include "stat_names.h"
#include "stats_rows.h"

static const struct rls_opt stats_opts[] = {
	RLS_OPT_DEV(struct rls_view_request, dev, "the interface (default: the only one loaded)"),
	RLS_OPT_JSON(struct rls_view_request, json, "machine-readable output"),
	{ NULL },
};

static const struct rls_cmd_spec stats_spec = {
	.name = "stats",
	.description =
		"Shows, for each account and model, the requests admitted and those rejected by\n"
		"reason (rps, rpm, rph, rpd: a window was full; burst: the per-second smoothing\n"
		"of rpm; tokens: a token budget was spent; concurrency: every slot was held),\n"
		"the concurrency slots held now, the most ever held at once and those freed by\n"
		"max_hold_seconds (expired), and what the data path did with packets. Unknown\n"
		"clients charged to the default tier are summed under \"(unknown)\"; their peak\n"
		"is the highest of one address.\n",
	.opts = stats_opts,
};

/* Concurrency of one (account, model), as the slot ring stands now. */
struct slot_row {
	struct rls_stats_key key;
	__u64 held, peak, expired;
};

struct slot_rows {
	struct slot_row *rows;
	size_t n, cap;
};

static void account_name(int fd, __u32 id, char *out, size_t len)
{
	struct rls_account_name name;

	if (id == RLS_ACCOUNT_ANONYMOUS)
		snprintf(out, len, "(unknown)");
	else if (bpf_map_lookup_elem(fd, &id, &name) == 0)
		snprintf(out, len, "%s", name.name);
	else
		snprintf(out, len, "#%u", id);
}

static void model_name(int fd, __u32 id, char *out, size_t len)
{
	struct rls_model_name key, next, *prev = NULL;
	__u32 value;

	if (id == RLS_MODEL_OTHER) {
		snprintf(out, len, "*");
		return;
	}
	if (id == RLS_MODEL_HIDDEN) {
		snprintf(out, len, "(hidden)");
		return;
	}
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &value) == 0 && value == id) {
			snprintf(out, len, "%s", key.name);
			return;
		}
	}
	snprintf(out, len, "#%u", id);
}

static __u64 now_utc_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (__u64)now.tv_sec * RLS_NS_PER_SEC + (__u64)now.tv_nsec;
}

/* The row of (account, model) among rows[from..], added if new; NULL when out of memory. */
static struct slot_row *slot_row_of(struct slot_rows *t, size_t from, __u32 account, __u32 model)
{
	struct slot_row *grown;
	size_t i;

	for (i = from; i < t->n; i++)
		if (t->rows[i].key.account == account && t->rows[i].key.model == model)
			return &t->rows[i];
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		grown = realloc(t->rows, t->cap * sizeof(*grown));
		if (!grown)
			return NULL;
		t->rows = grown;
	}
	memset(&t->rows[t->n], 0, sizeof(t->rows[t->n]));
	t->rows[t->n].key.account = account;
	t->rows[t->n].key.model = model;
	return &t->rows[t->n++];
}

/*
 * Counters that ever held a slot, with what has expired by now taken off, as the next
 * admission would. Named counters are a row each; anonymous ones (per address or IPv6 prefix)
 * add up into one row per model, so only those rows are searched.
 */
static void read_slot_counters(int fd, __u64 now_ns, bool anonymous, struct slot_rows *t)
{
	struct rls_counter_key key, next, *prev = NULL;
	size_t from = t->n;
	struct rls_counter c;
	struct slot_row *row;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem_flags(fd, &key, &c, BPF_F_LOCK) || !c.slot_epoch_ns)
			continue;
		rls_slots_expire(&c, now_ns);
		row = slot_row_of(t, anonymous ? from : t->n, key.account, key.model);
		if (!row)
			return;
		row->held += c.slots_held;
		row->expired += c.slots_expired;
		if (c.slots_peak > row->peak)
			row->peak = c.slots_peak;
	}
}

static void read_packets(const struct rls_maps *maps, __u64 *totals)
{
	int cpus = rls_nr_cpus(), cpu;
	__u64 *percpu = calloc(cpus, sizeof(*percpu));
	__u32 i;

	for (i = 0; percpu && i < RLS_NR_PACKET_EVENTS; i++) {
		totals[i] = 0;
		if (bpf_map_lookup_elem(maps->packets, &i, percpu) == 0)
			for (cpu = 0; cpu < cpus; cpu++)
				totals[i] += percpu[cpu];
	}
	free(percpu);
}

static int reason_width(int reason)
{
	int len = (int)strlen(rls_reason_names[reason]);

	return len > 8 ? len : 8;
}

static void print_text(const struct rls_maps *maps, const struct rls_stats_pair *rows, size_t n,
		       const struct slot_rows *slots, const __u64 *packets)
{
	char account[RLS_ACCOUNT_NAME_MAX], model[RLS_MODEL_NAME_MAX];
	size_t i;
	int r;

	printf("%-20s %-32s %10s", "ACCOUNT", "MODEL", "ADMITTED");
	for (r = RLS_REASON_RPS; r < RLS_NR_REASONS; r++)
		printf(" %*s", reason_width(r), rls_reason_names[r]);
	printf(" %10s %12s\n", "SHAPED", "DELAY_MS");
	for (i = 0; i < n; i++) {
		account_name(maps->accounts, rows[i].key.account, account, sizeof(account));
		model_name(maps->models, rows[i].key.model, model, sizeof(model));
		printf("%-20s %-32s %10llu", account, model, (unsigned long long)rows[i].total.admitted);
		for (r = RLS_REASON_RPS; r < RLS_NR_REASONS; r++)
			printf(" %*llu", reason_width(r), (unsigned long long)rows[i].total.rejected[r]);
		printf(" %10llu %12llu\n", (unsigned long long)rows[i].total.shaped,
		       (unsigned long long)(rows[i].total.shaped_delay_ns / 1000000));
	}
	if (slots->n) {
		printf("\n%-20s %-32s %10s %10s %10s\n", "ACCOUNT", "MODEL", "SLOTS_HELD", "PEAK",
		       "EXPIRED");
		for (i = 0; i < slots->n; i++) {
			const struct slot_row *sr = &slots->rows[i];

			account_name(maps->accounts, sr->key.account, account, sizeof(account));
			model_name(maps->models, sr->key.model, model, sizeof(model));
			printf("%-20s %-32s %10llu %10llu %10llu\n", account, model,
			       (unsigned long long)sr->held, (unsigned long long)sr->peak,
			       (unsigned long long)sr->expired);
		}
	}
	printf("\npackets:");
	for (r = 0; r < RLS_NR_PACKET_EVENTS; r++)
		printf(" %s=%llu", rls_packet_event_names[r], (unsigned long long)packets[r]);
	putchar('\n');
}

static void print_json(const struct rls_maps *maps, const struct rls_stats_pair *rows, size_t n,
		       const struct slot_rows *slots, const __u64 *packets)
{
	char account[RLS_ACCOUNT_NAME_MAX], model[RLS_MODEL_NAME_MAX];
	json_t *root = json_object(), *list = json_array(), *pk = json_object();
	json_t *concurrency = json_array();
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		json_t *rejected = json_object();

		account_name(maps->accounts, rows[i].key.account, account, sizeof(account));
		model_name(maps->models, rows[i].key.model, model, sizeof(model));
		for (r = RLS_REASON_RPS; r < RLS_NR_REASONS; r++)
			json_object_set_new(rejected, rls_reason_names[r],
					    json_integer((json_int_t)rows[i].total.rejected[r]));
		/* shaped: of the admitted, those the upstream side delayed (README, "Shaping"). */
		json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:o, s:I, s:I}", "account",
						      account, "model", model, "admitted",
						      (json_int_t)rows[i].total.admitted,
						      "rejected", rejected, "shaped",
						      (json_int_t)rows[i].total.shaped,
						      "shaped_delay_ms",
						      (json_int_t)(rows[i].total.shaped_delay_ns /
								   1000000)));
	}
	for (i = 0; i < slots->n; i++) {
		const struct slot_row *sr = &slots->rows[i];

		account_name(maps->accounts, sr->key.account, account, sizeof(account));
		model_name(maps->models, sr->key.model, model, sizeof(model));
		json_array_append_new(concurrency,
				      json_pack("{s:s, s:s, s:I, s:I, s:I}", "account", account,
						"model", model, "held", (json_int_t)sr->held,
						"peak", (json_int_t)sr->peak, "expired",
						(json_int_t)sr->expired));
	}
	for (r = 0; r < RLS_NR_PACKET_EVENTS; r++)
		json_object_set_new(pk, rls_packet_event_names[r], json_integer((json_int_t)packets[r]));
	json_object_set_new(root, "requests", list);
	json_object_set_new(root, "concurrency", concurrency);
	json_object_set_new(root, "packets", pk);
	json_dumpf(root, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(root);
}

int rls_cmd_stats(int argc, char **argv)
{
	struct rls_view_request req = { 0 };
	char dev[64], dir[256], err[512];
	__u64 packets[RLS_NR_PACKET_EVENTS] = {};
	struct slot_rows slots = { 0 };
	struct rls_maps maps;
	struct rls_stats_pair *rows;
	__u64 now_ns;
	size_t n;
	enum rls_opts_result ret;

	ret = rls_opts_parse(&stats_spec, argc, argv, &req);
	if (ret != RLS_OPTS_OK)
		return rls_opts_exit_code(ret);
	if (rls_choose_dev(req.dev, dev, sizeof(dev)) || rls_pin_dir(dev, dir, sizeof(dir)))
		return 1;
	if (rls_maps_open_pinned(dir, &maps, err, sizeof(err))) {
		rls_error("rlshape is not loaded on %s (%s)", dev, err);
		return 1;
	}
	rls_stats_read_all(&maps, &rows, &n); /* what could be read, on an error */
	now_ns = now_utc_ns();
	read_slot_counters(maps.counters, now_ns, false, &slots);
	read_slot_counters(maps.anon_counters, now_ns, true, &slots);
	read_packets(&maps, packets);
	if (req.json)
		print_json(&maps, rows, n, &slots, packets);
	else
		print_text(&maps, rows, n, &slots, packets);
	free(rows);
	free(slots.rows);
	rls_maps_close(&maps);
	return 0;
}
