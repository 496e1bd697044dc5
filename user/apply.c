// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "apply.h"
#include "calendar.h"
#include "ids.h"
#include "item_set.h"
#include "map_walk.h"
#include "slot_ring.h"
#include "stats_rows.h"

/* Ids the new table uses, by position: accounts[i] is table->accounts[i], models[i] is
 * table->models[i]. */
struct id_plan {
	__u32 *accounts;
	__u32 *accounts_sorted; /* the same ids, sorted: account_kept() searches them */
	bool *account_is_new;
	__u32 *models;
	__u32 *models_sorted; /* model_kept() */
	struct rls_named_id *models_by_name; /* planned_model_id() */
	bool *model_is_new;
	/* Names the maps held before that the table no longer has: none, and the sweep of that
	 * name map after the switch has nothing to do. */
	size_t accounts_dropped, models_dropped;
};

/* How many of the n names were known (not new): the known ones the table dropped are the rest. */
static size_t nr_known_kept(const bool *is_new, size_t n)
{
	size_t i, kept = 0;

	for (i = 0; i < n; i++)
		kept += !is_new[i];
	return kept;
}

static int failf(char *err, size_t err_len, const char *fmt, const char *what, int e)
{
	snprintf(err, err_len, fmt, what, strerror(e));
	return -e;
}

static __u32 live_generation(const struct rls_maps *maps)
{
	__u32 zero = 0, gen = 0;

	bpf_map_lookup_elem(maps->active, &zero, &gen);
	return gen & 1;
}

/*
 * The names the maps already know, with their ids. Each map is read in one walk: a walk of a
 * map sized for millions of entries visits every bucket, so a walk (or a lookup by walking)
 * per name would make a load quadratic.
 */
struct known_names {
	char (*names)[RLS_ACCOUNT_NAME_MAX];
	struct rls_named_id *v; /* v[i].name is names[i] once read_known_*() returns */
	size_t n, cap;
	int error;
	struct rls_id_index *index; /* of v, for plan_ids() */
};

_Static_assert(RLS_MODEL_NAME_MAX == RLS_ACCOUNT_NAME_MAX, "known_names holds both");

static void known_add(struct known_names *k, const char *name, __u32 id)
{
	void *names, *v;

	if (k->error)
		return;
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 1024;
		names = realloc(k->names, k->cap * sizeof(*k->names));
		if (names)
			k->names = names;
		v = realloc(k->v, k->cap * sizeof(*k->v));
		if (v)
			k->v = v;
		if (!names || !v) {
			k->error = -ENOMEM;
			return;
		}
	}
	memcpy(k->names[k->n], name, sizeof(k->names[k->n]));
	k->names[k->n][sizeof(k->names[k->n]) - 1] = '\0';
	k->v[k->n++].id = id;
}

/* The names are all in: point at them (realloc may have moved them), and index them. */
static int known_done(struct known_names *k, int walked)
{
	size_t i;

	if (walked || k->error)
		return walked ? walked : k->error;
	for (i = 0; i < k->n; i++)
		k->v[i].name = k->names[i];
	return rls_id_index_build(k->v, k->n, &k->index);
}

static void known_free(struct known_names *k)
{
	rls_id_index_free(k->index);
	free(k->names);
	free(k->v);
	memset(k, 0, sizeof(*k));
}

static void add_known_account(const void *key, const void *value, void *known)
{
	known_add(known, ((const struct rls_account_name *)value)->name, *(const __u32 *)key);
}

static void add_known_model(const void *key, const void *value, void *known)
{
	known_add(known, ((const struct rls_model_name *)key)->name, *(const __u32 *)value);
}

static int read_known_accounts(const struct rls_maps *maps, struct known_names *k)
{
	return known_done(k, rls_map_walk(maps->accounts, 0, add_known_account, k));
}

static int read_known_models(const struct rls_maps *maps, struct known_names *k)
{
	return known_done(k, rls_map_walk(maps->models, 0, add_known_model, k));
}

static void plan_free(struct id_plan *plan)
{
	free(plan->accounts);
	free(plan->accounts_sorted);
	free(plan->account_is_new);
	free(plan->models);
	free(plan->models_sorted);
	free(plan->models_by_name);
	free(plan->model_is_new);
	memset(plan, 0, sizeof(*plan));
}

/*
 * Existing names keep their ids, so their counters carry over; new names get the lowest ids no
 * name in the maps holds (rls_plan_ids()), the names being those rls_read_maps() found and
 * indexed. Returns 0, -ENOMEM or -ENOSPC.
 */
static int plan_ids(const struct known_names *known_accounts,
		    const struct known_names *known_models, const struct rls_table *t,
		    struct id_plan *plan)
{
	size_t i, nr_accounts = t->nr_accounts, nr_models = t->nr_models;
	const char **account_names;
	int ret = -ENOMEM;

	account_names = calloc(nr_accounts + 1, sizeof(*account_names));
	plan->accounts = calloc(nr_accounts + 1, sizeof(*plan->accounts));
	plan->accounts_sorted = calloc(nr_accounts + 1, sizeof(*plan->accounts_sorted));
	plan->account_is_new = calloc(nr_accounts + 1, sizeof(*plan->account_is_new));
	plan->models = calloc(nr_models + 1, sizeof(*plan->models));
	plan->models_sorted = calloc(nr_models + 1, sizeof(*plan->models_sorted));
	plan->models_by_name = calloc(nr_models + 1, sizeof(*plan->models_by_name));
	plan->model_is_new = calloc(nr_models + 1, sizeof(*plan->model_is_new));
	if (!account_names || !plan->accounts || !plan->accounts_sorted ||
	    !plan->account_is_new || !plan->models || !plan->models_sorted ||
	    !plan->models_by_name || !plan->model_is_new)
		goto out;
	for (i = 0; i < nr_accounts; i++)
		account_names[i] = t->accounts[i].name;

	ret = rls_plan_ids_in(known_accounts->index, account_names, nr_accounts,
			      RLS_ACCOUNT_ANONYMOUS + 1, UINT32_MAX, plan->accounts,
			      plan->account_is_new);
	if (!ret)
		plan->accounts_dropped = known_accounts->n -
					 nr_known_kept(plan->account_is_new, nr_accounts);
	if (!ret)
		ret = rls_plan_ids_in(known_models->index, t->models, nr_models,
				      RLS_MODEL_OTHER + 1, RLS_MODEL_HIDDEN - 1, plan->models,
				      plan->model_is_new);
	if (!ret)
		plan->models_dropped = known_models->n - nr_known_kept(plan->model_is_new, nr_models);
	if (ret)
		goto out;

	memcpy(plan->accounts_sorted, plan->accounts, nr_accounts * sizeof(*plan->accounts));
	rls_sort_ids(plan->accounts_sorted, nr_accounts);
	memcpy(plan->models_sorted, plan->models, nr_models * sizeof(*plan->models));
	rls_sort_ids(plan->models_sorted, nr_models);
	for (i = 0; i < nr_models; i++)
		plan->models_by_name[i] = (struct rls_named_id){ t->models[i], plan->models[i] };
	rls_sort_by_name(plan->models_by_name, nr_models);
out:
	free(account_names);
	return ret;
}

static __u32 planned_model_id(const struct id_plan *plan, const struct rls_table *t,
			      const char *model)
{
	if (strcmp(model, "*") == 0)
		return RLS_MODEL_OTHER;
	return rls_find_id(plan->models_by_name, t->nr_models, model, RLS_MODEL_OTHER);
}

struct generation_match {
	size_t offset;
	__u32 value; /* as stored: network order for the LPM trie */
};

static bool in_generation(const void *key, const void *value, const void *ctx)
{
	const struct generation_match *m = ctx;
	__u32 have;

	(void)value;
	memcpy(&have, (const unsigned char *)key + m->offset, sizeof(have));
	return have == m->value;
}

/* The maps whose keys carry a generation, and where in the key. */
#define RLS_GENERATION_MAPS 4

static const struct generation_map {
	size_t fd_offset; /* in struct rls_maps */
	size_t key_size, gen_offset;
	bool in_network_order;
} generation_maps[RLS_GENERATION_MAPS] = {
	{ offsetof(struct rls_maps, api_keys), sizeof(struct rls_api_key),
	  offsetof(struct rls_api_key, generation), false },
	{ offsetof(struct rls_maps, api_key_digests), sizeof(struct rls_api_key_digest),
	  offsetof(struct rls_api_key_digest, generation), false },
	{ offsetof(struct rls_maps, cidrs), sizeof(struct rls_cidr_key),
	  offsetof(struct rls_cidr_key, generation), true },
	{ offsetof(struct rls_maps, limits), sizeof(struct rls_limit_key),
	  offsetof(struct rls_limit_key, generation), false },
};

static int generation_map_fd(const struct rls_maps *maps, size_t i)
{
	return *(const int *)((const char *)maps + generation_maps[i].fd_offset);
}

/* Into w (empty), the keys of map i of generation_maps[] that belong to generation gen. */
static void collect_generation(const struct rls_maps *maps, size_t i, __u32 gen,
			       struct rls_sweep *w)
{
	const struct generation_map *g = &generation_maps[i];
	struct generation_match m = { g->gen_offset, g->in_network_order ? htonl(gen) : gen };

	*w = (struct rls_sweep){ .doomed = in_generation, .ctx = &m, .key_size = g->key_size };
	rls_map_walk(generation_map_fd(maps, i), 0, rls_sweep_collect, w);
	w->ctx = NULL;
}

static void delete_generation_everywhere(const struct rls_maps *maps, __u32 gen)
{
	struct rls_sweep w;
	size_t i;

	for (i = 0; i < RLS_GENERATION_MAPS; i++) {
		collect_generation(maps, i, gen, &w);
		rls_map_delete_keys(generation_map_fd(maps, i), w.keys, w.n, w.key_size);
		free(w.keys);
	}
}

/*
 * What a load reads before it writes: the names the maps know, and the keys the generation that
 * is not live still holds (the table before the live one, or what a load that failed half way
 * left), which go before the new table is written there.
 */
struct rls_map_reading {
	__u32 next; /* the generation that is not live */
	struct known_names accounts, models;
	struct rls_sweep stale[RLS_GENERATION_MAPS];
};

/* Does map fd have keys and values of these sizes (0: any value)? */
static bool map_has_layout(int fd, __u32 key_size, __u32 value_size)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	return !bpf_obj_get_info_by_fd(fd, &info, &len) && info.key_size == key_size &&
	       (!value_size || info.value_size == value_size);
}

/*
 * The maps are read as this rlshape lays them out: pins an older one left may be laid out
 * otherwise, and their reading is then thrown away (the load cannot reuse them either).
 */
static int check_layout(const struct rls_maps *maps)
{
	size_t i;

	if (!map_has_layout(maps->accounts, sizeof(__u32), sizeof(struct rls_account_name)) ||
	    !map_has_layout(maps->models, sizeof(struct rls_model_name), sizeof(__u32)))
		return -EPROTO;
	for (i = 0; i < RLS_GENERATION_MAPS; i++)
		if (!map_has_layout(generation_map_fd(maps, i), generation_maps[i].key_size, 0))
			return -EPROTO;
	return 0;
}

int rls_read_maps(const struct rls_maps *maps, struct rls_map_reading **reading)
{
	struct rls_map_reading *r = calloc(1, sizeof(*r));
	size_t i;
	int ret;

	*reading = r;
	if (!r)
		return -ENOMEM;
	r->next = live_generation(maps) ^ 1;
	ret = check_layout(maps);
	if (!ret)
		ret = read_known_accounts(maps, &r->accounts);
	if (!ret)
		ret = read_known_models(maps, &r->models);
	for (i = 0; i < RLS_GENERATION_MAPS && !ret; i++) {
		collect_generation(maps, i, r->next, &r->stale[i]);
		if (r->stale[i].out_of_memory)
			ret = -ENOMEM;
	}
	return ret;
}

void rls_map_reading_free(struct rls_map_reading *r)
{
	size_t i;

	if (!r)
		return;
	known_free(&r->accounts);
	known_free(&r->models);
	for (i = 0; i < RLS_GENERATION_MAPS; i++)
		free(r->stale[i].keys);
	free(r);
}

/*
 * Entries of one map gathered for one rls_map_update_many() call, which writes them a batch of
 * thousands a system call, on two threads (a million accounts are a million entries: one
 * system call each was most of a load), with the account each is for.
 */
struct batch_writer {
	int fd;
	size_t key_size, value_size, n, cap;
	unsigned char *keys, *values;
	size_t *account;
};

static struct batch_writer *batch_writer(int fd, size_t key_size, size_t value_size)
{
	struct batch_writer *w = calloc(1, sizeof(*w));

	if (w)
		*w = (struct batch_writer){ .fd = fd, .key_size = key_size, .value_size = value_size };
	return w;
}

static void batch_writer_free(struct batch_writer *w)
{
	if (!w)
		return;
	free(w->keys);
	free(w->values);
	free(w->account);
	free(w);
}

/* Write what is gathered. Returns 0, or -errno with *account the one whose entry failed. */
static int batch_flush(struct batch_writer *w, size_t *account)
{
	size_t failed = 0;
	int ret = 0;

	if (w->n)
		ret = rls_map_update_many(w->fd, w->keys, w->values, w->n, w->key_size,
					  w->value_size, BPF_ANY, &failed);
	if (ret)
		*account = w->account[failed];
	w->n = 0;
	return ret;
}

/* Returns 0 or -ENOMEM. */
static int batch_add(struct batch_writer *w, const void *key, const void *value, size_t account)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 4096;
		void *keys = realloc(w->keys, cap * w->key_size);
		void *values = keys ? realloc(w->values, cap * w->value_size) : NULL;
		void *accounts = values ? realloc(w->account, cap * sizeof(*w->account)) : NULL;

		if (keys)
			w->keys = keys;
		if (values)
			w->values = values;
		if (!accounts)
			return -ENOMEM;
		w->account = accounts;
		w->cap = cap;
	}
	memcpy(w->keys + w->n * w->key_size, key, w->key_size);
	memcpy(w->values + w->n * w->value_size, value, w->value_size);
	w->account[w->n++] = account;
	return 0;
}

static int write_names(const struct rls_maps *maps, const struct rls_table *t,
		       const struct id_plan *plan, char *err, size_t err_len)
{
	struct batch_writer *w;
	size_t i, failed = 0;
	int ret = 0;

	w = batch_writer(maps->accounts, sizeof(__u32), sizeof(struct rls_account_name));
	if (!w)
		return failf(err, err_len, "cannot add the %s accounts: %s", "new", ENOMEM);
	for (i = 0; i < t->nr_accounts && !ret; i++) {
		struct rls_account_name name = {};

		if (!plan->account_is_new[i])
			continue;
		snprintf(name.name, sizeof(name.name), "%s", t->accounts[i].name);
		ret = batch_add(w, &plan->accounts[i], &name, i);
		failed = i;
	}
	if (!ret)
		ret = batch_flush(w, &failed);
	batch_writer_free(w);
	if (ret)
		return failf(err, err_len, "cannot add account \"%s\": %s", t->accounts[failed].name,
			     -ret);
	for (i = 0; i < t->nr_models; i++) {
		struct rls_model_name name = {};

		if (!plan->model_is_new[i])
			continue;
		snprintf(name.name, sizeof(name.name), "%s", t->models[i]);
		if (bpf_map_update_elem(maps->models, &name, &plan->models[i], BPF_ANY))
			return failf(err, err_len, "cannot add model \"%s\": %s", t->models[i],
				     errno);
	}
	return 0;
}

/* Admission finds the table's fleet in each entry (include/fleet_lease.h). */
static void add_fleet(struct rls_limits *l, const struct rls_table *t)
{
	l->fleet_hosts = t->fleet_hosts;
	l->fleet_unleased = t->fleet_unleased;
}

static int write_limits(const struct rls_maps *maps, const struct rls_table *t,
			const struct id_plan *plan, __u32 gen, size_t *count, char *err,
			size_t err_len)
{
	struct rls_limit_key key = { .generation = gen };
	const struct rls_tier_entry *strictest;
	struct rls_limits hidden;
	size_t i, j;

	for (i = 0; i < t->nr_tiers; i++) {
		const struct rls_tier *tier = &t->tiers[i];

		key.tier = (__u32)i;
		for (j = 0; j < tier->nr_entries; j++) {
			struct rls_limits limits = tier->entries[j].limits;

			key.model = planned_model_id(plan, t, tier->entries[j].model);
			limits.charge_model = key.model;
			add_fleet(&limits, t);
			if (bpf_map_update_elem(maps->limits, &key, &limits, BPF_ANY))
				return failf(err, err_len, "cannot add the limits of tier \"%s\": %s",
					     tier->name, errno);
			(*count)++;
		}
		/* A request whose model cannot be seen is charged as the tier's strictest model. */
		strictest = rls_tier_strictest_entry(tier);
		hidden = strictest->limits;
		hidden.charge_model = planned_model_id(plan, t, strictest->model);
		add_fleet(&hidden, t);
		key.model = RLS_MODEL_HIDDEN;
		if (bpf_map_update_elem(maps->limits, &key, &hidden, BPF_ANY))
			return failf(err, err_len, "cannot add the limits of tier \"%s\": %s", tier->name,
				     errno);
		(*count)++;
	}
	return 0;
}

/*
 * The key hash's secret for the new generation: the live one's, so that a reload changes no
 * key's hash (a request whose key was hashed just before the switch is looked up just after,
 * and rls_key_digest_cache stays right), or a new one on the first load. Never all zero: that
 * is what a configuration no load has written holds. Returns 0 or -errno.
 */
static int key_secret(const struct rls_maps *maps, __u8 secret[RLS_KEY_SECRET_LEN])
{
	static const __u8 none[RLS_KEY_SECRET_LEN];
	struct rls_config live = {};
	__u32 gen = live_generation(maps);
	ssize_t n;

	if (bpf_map_lookup_elem(maps->config, &gen, &live))
		return -errno;
	memcpy(secret, live.key_secret, RLS_KEY_SECRET_LEN);
	while (!memcmp(secret, none, RLS_KEY_SECRET_LEN)) {
		n = getrandom(secret, RLS_KEY_SECRET_LEN, 0);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n >= 0 && n != RLS_KEY_SECRET_LEN)
			memset(secret, 0, RLS_KEY_SECRET_LEN);
	}
	return 0;
}

/* The new generation's keys, gathered for one batch write each. */
struct key_batches {
	struct batch_writer *keys;    /* plain keys, by their SipHash: rls_api_keys */
	struct batch_writer *digests; /* "sha256:" keys: rls_api_key_digests */
};

static void key_batches_free(struct key_batches *b)
{
	batch_writer_free(b->keys);
	batch_writer_free(b->digests);
}

static int gather_keys(const struct rls_maps *maps, const struct rls_table *t,
		       const struct id_plan *plan, __u32 gen, const __u8 secret[RLS_KEY_SECRET_LEN],
		       struct key_batches *b, char *err, size_t err_len)
{
	size_t i, j;
	int ret = 0;

	b->keys = batch_writer(maps->api_keys, sizeof(struct rls_api_key),
			       sizeof(struct rls_principal));
	b->digests = batch_writer(maps->api_key_digests, sizeof(struct rls_api_key_digest),
				  sizeof(struct rls_principal));
	if (!b->keys || !b->digests)
		return failf(err, err_len, "cannot add the %s keys: %s", "new", ENOMEM);
	for (i = 0; i < t->nr_accounts; i++) {
		const struct rls_account *a = &t->accounts[i];
		struct rls_principal who = { .account = plan->accounts[i], .tier = (__u32)a->tier };

		for (j = 0; j < a->nr_keys && !ret; j++) {
			struct rls_api_key key = { .generation = gen };
			struct rls_api_key_digest digest = { .generation = gen };

			if (rls_table_key_siphash(t, a, j, secret, key.siphash)) {
				ret = batch_add(b->keys, &key, &who, i);
			} else {
				memcpy(digest.sha256, a->keys[j], sizeof(digest.sha256));
				ret = batch_add(b->digests, &digest, &who, i);
			}
		}
		if (ret)
			return failf(err, err_len, "cannot add a key of account \"%s\": %s",
				     a->name, -ret);
	}
	return 0;
}

/*
 * Of the stale keys, those that w (NULL: none) does not write over, into a new array of *n; or
 * NULL when every stale key goes (nothing is written over them, or there is no memory to tell).
 */
static unsigned char *stale_not_rewritten(const struct rls_sweep *stale,
					  const struct batch_writer *w, size_t *n)
{
	struct rls_item_set rewritten;
	const unsigned char *key;
	unsigned char *going;
	size_t i;

	*n = 0;
	if (!w || !w->n || !stale->n || w->key_size != stale->key_size)
		return NULL;
	going = malloc(stale->n * stale->key_size);
	if (!going || rls_item_set_init(&rewritten, w->keys, w->key_size, w->key_size, w->n)) {
		free(going);
		return NULL;
	}
	for (i = 0; i < w->n; i++)
		rls_item_set_add(&rewritten, i);
	for (i = 0; i < stale->n; i++) {
		key = stale->keys + i * stale->key_size;
		if (!rls_item_set_has(&rewritten, key))
			memcpy(going + (*n)++ * stale->key_size, key, stale->key_size);
	}
	rls_item_set_free(&rewritten);
	return going;
}

/*
 * The generation that is not live still holds the table before the live one, or what a load
 * that failed half way left: its entries go, but for the keys the new table writes over. A
 * write replaces an entry in one step, where a delete and an insert are two: a reload of much
 * the same table would otherwise delete and insert again most of a million keys.
 */
static void delete_stale(const struct rls_maps *maps, const struct rls_map_reading *reading,
			 const struct key_batches *b)
{
	const struct rls_sweep *stale;
	unsigned char *going;
	size_t i, n;
	int fd;

	for (i = 0; i < RLS_GENERATION_MAPS; i++) {
		stale = &reading->stale[i];
		fd = generation_map_fd(maps, i);
		going = stale_not_rewritten(stale, fd == b->keys->fd ? b->keys :
						   fd == b->digests->fd ? b->digests : NULL, &n);
		if (going)
			rls_map_delete_keys(fd, going, n, stale->key_size);
		else
			rls_map_delete_keys(fd, stale->keys, stale->n, stale->key_size);
		free(going);
	}
}

static int write_principals(const struct rls_maps *maps, const struct rls_table *t,
			    const struct id_plan *plan, __u32 gen, const struct key_batches *b,
			    struct rls_apply_result *r, char *err, size_t err_len)
{
	size_t i, j, failed = 0;
	int ret;

	for (i = 0; i < t->nr_accounts; i++) {
		const struct rls_account *a = &t->accounts[i];
		struct rls_principal who = { .account = plan->accounts[i], .tier = (__u32)a->tier };

		/* The LPM trie takes one entry a call; an account has few CIDRs. */
		for (j = 0; j < a->nr_cidrs; j++) {
			struct rls_cidr_key key = { .prefixlen = 32 + a->cidrs[j].prefixlen,
						    .generation = htonl(gen) };

			memcpy(key.addr, a->cidrs[j].addr, sizeof(key.addr));
			if (bpf_map_update_elem(maps->cidrs, &key, &who, BPF_ANY))
				return failf(err, err_len, "cannot add a CIDR of account \"%s\": %s",
					     a->name, errno);
			r->nr_cidrs++;
		}
		r->nr_keys += a->nr_keys;
	}
	ret = batch_flush(b->keys, &failed);
	if (!ret)
		ret = batch_flush(b->digests, &failed);
	if (ret)
		return failf(err, err_len, "cannot add a key of account \"%s\": %s",
			     t->accounts[failed].name, -ret);
	return 0;
}

/*
 * The counters unknown clients share once rls_anon_counters is full (client all zero): one for
 * "*" and one for each model some tier names, since the default tier's "*" charges each named
 * model to a counter of its own (a hidden model is charged as one of these too). Made while the
 * table is loaded, not when the map is already full: a request that finds neither its own
 * counter nor the overflow one is refused. Existing ones keep their counts. Returns how many
 * could not be made (the map is full).
 */
static size_t write_overflow_counters(const struct rls_maps *maps, const struct rls_table *t,
				      const struct id_plan *plan)
{
	struct rls_counter_key key = { .account = RLS_ACCOUNT_ANONYMOUS, .model = RLS_MODEL_OTHER };
	struct rls_counter fresh = {};
	size_t i, missing = 0;

	if (t->default_tier < 0)
		return 0;
	for (i = 0; i <= t->nr_models; i++) {
		if (i > 0)
			key.model = plan->models[i - 1];
		if (bpf_map_update_elem(maps->anon_counters, &key, &fresh, BPF_NOEXIST) &&
		    errno != EEXIST)
			missing++;
	}
	return missing;
}

/* CLOCK_TAI - CLOCK_REALTIME: a whole number of seconds (37 s today, 0 if never set). */
static __s64 tai_minus_utc_ns(void)
{
	struct timespec tai, utc;
	__s64 diff;

	clock_gettime(CLOCK_TAI, &tai);
	clock_gettime(CLOCK_REALTIME, &utc);
	diff = (tai.tv_sec - utc.tv_sec) * (__s64)1000000000 + (tai.tv_nsec - utc.tv_nsec);
	return (diff + 500000000) / 1000000000 * 1000000000;
}

/* The live configuration's load_seq plus one, never 0 (0: no load has written it). */
static __u32 next_load_seq(const struct rls_maps *maps)
{
	struct rls_config live = {};
	__u32 gen = live_generation(maps);

	if (bpf_map_lookup_elem(maps->config, &gen, &live))
		live.load_seq = 0;
	return live.load_seq + 1 ? live.load_seq + 1 : 1;
}

static int write_config(const struct rls_maps *maps, const struct rls_table *t, __u32 gen,
			const __u8 secret[RLS_KEY_SECRET_LEN], char *err, size_t err_len)
{
	struct rls_config cfg = {};
	size_t i;

	for (i = 0; i < t->nr_ports && i < RLS_MAX_PORTS; i++)
		cfg.ports[i] = t->ports[i];
	cfg.default_tier = t->default_tier < 0 ? RLS_TIER_NONE : (__u32)t->default_tier;
	cfg.nr_key_headers = (__u32)t->nr_key_headers;
	memcpy(cfg.key_headers, t->key_headers, sizeof(cfg.key_headers));
	cfg.model_header = t->model_header;
	cfg.client_address_header = t->client_address_header;
	cfg.name_lengths = rls_header_name_lengths(&cfg);
	cfg.http2_pass = t->http2_pass;
	cfg.websocket_tunnel = t->websocket_tunnel;
	cfg.anonymous_ipv6_prefix = t->anonymous_ipv6_prefix;
	cfg.fleet_hosts = t->fleet_hosts;
	cfg.fleet_redis_port = t->fleet_redis_port;
	memcpy(cfg.fleet_redis_host, t->fleet_redis_host, sizeof(cfg.fleet_redis_host));
	cfg.tai_minus_utc_ns = tai_minus_utc_ns();
	cfg.loaded_at = (__u64)time(NULL);
	memcpy(cfg.table_sha256, t->sha256, sizeof(cfg.table_sha256));
	snprintf(cfg.table_path, sizeof(cfg.table_path), "%.*s", (int)sizeof(cfg.table_path) - 1, t->path);
	memcpy(cfg.key_secret, secret, sizeof(cfg.key_secret));
	cfg.key_digests = (__u32)t->nr_digest_keys;
	cfg.load_seq = next_load_seq(maps);
	if (bpf_map_update_elem(maps->config, &gen, &cfg, BPF_ANY))
		return failf(err, err_len, "cannot write the %s configuration: %s", "new", errno);
	return 0;
}

struct kept_ids {
	const struct id_plan *plan;
	size_t nr_accounts, nr_models;
};

static bool account_kept(const struct kept_ids *k, __u32 id)
{
	return id == RLS_ACCOUNT_ANONYMOUS || rls_has_id(k->plan->accounts_sorted, k->nr_accounts, id);
}

static bool model_kept(const struct kept_ids *k, __u32 id)
{
	return id == RLS_MODEL_OTHER || id == RLS_MODEL_HIDDEN ||
	       rls_has_id(k->plan->models_sorted, k->nr_models, id);
}

/* Keys that start with (account, model): do they name an account or model that is gone? */
static bool names_removed_id(const void *key, const void *value, const void *ctx)
{
	const struct kept_ids *k = ctx;
	__u32 ids[2];

	(void)value;
	memcpy(ids, key, sizeof(ids));
	return !account_kept(k, ids[0]) || !model_kept(k, ids[1]);
}

static bool account_removed(const void *key, const void *value, const void *ctx)
{
	const struct kept_ids *k = ctx;
	__u32 id;

	(void)value;
	memcpy(&id, key, sizeof(id));
	return !account_kept(k, id);
}

static bool model_removed(const void *key, const void *value, const void *ctx)
{
	__u32 id;

	(void)key;
	memcpy(&id, value, sizeof(id));
	return !model_kept(ctx, id);
}

/*
 * An anonymous counter whose every window has ended, whose smoothing has caught up, and that
 * holds no concurrency slot, holds nothing the next request would not start afresh: remove it,
 * so that client addresses that came and went do not fill the map. (A request counted between
 * the read and the delete is forgotten; that is one request, once, for an address idle for a
 * day.)
 */
static bool counter_is_idle(const struct rls_counter *c, __u64 now_ns)
{
	struct rls_counter slots = *c;
	__u64 now_s = rls_utc_seconds(now_ns);
	__u32 w;

	for (w = 0; w < RLS_NR_WINDOWS; w++)
		if (c->window_start[w] >= rls_window_index(now_s, w))
			return false;
	rls_slots_expire(&slots, now_ns);
	return c->smooth_tat_ns <= now_ns && slots.slots_held == 0;
}

static bool is_overflow_counter(const struct rls_counter_key *key)
{
	static const __u8 none[sizeof(key->client)];

	return !memcmp(key->client, none, sizeof(none));
}

/* The overflow counters stay: they must exist before the map fills up. */
/* Read with BPF_F_LOCK: the value as of one moment, not half of an update. */
static bool anonymous_idle(const void *key, const void *value, const void *ctx)
{
	struct rls_counter counter;

	memcpy(&counter, value, sizeof(counter));
	return !is_overflow_counter(key) && counter_is_idle(&counter, *(const __u64 *)ctx);
}

static size_t prune_idle_anonymous(const struct rls_maps *maps)
{
	struct timespec now;
	__u64 now_ns;

	clock_gettime(CLOCK_REALTIME, &now);
	now_ns = (__u64)now.tv_sec * RLS_NS_PER_SEC + (__u64)now.tv_nsec;
	return rls_map_delete_where(maps->anon_counters, sizeof(struct rls_counter_key), BPF_F_LOCK,
				 anonymous_idle, &now_ns);
}

/* Undo names this attempt added, so a failed load leaves the maps as they were. */
static void forget_new_names(const struct rls_maps *maps, const struct rls_table *t,
			     const struct id_plan *plan)
{
	size_t i;

	for (i = 0; i < t->nr_accounts; i++)
		if (plan->account_is_new && plan->account_is_new[i])
			bpf_map_delete_elem(maps->accounts, &plan->accounts[i]);
	for (i = 0; i < t->nr_models; i++) {
		struct rls_model_name name = {};

		if (!plan->model_is_new || !plan->model_is_new[i])
			continue;
		snprintf(name.name, sizeof(name.name), "%s", t->models[i]);
		bpf_map_delete_elem(maps->models, &name);
	}
}

int rls_apply_table(const struct rls_maps *maps, const struct rls_table *table,
		    struct rls_apply_result *result, char *err, size_t err_len)
{
	struct rls_map_reading *reading;
	int ret = rls_read_maps(maps, &reading);

	if (ret) {
		memset(result, 0, sizeof(*result));
		failf(err, err_len, "cannot read the %s names: %s", "live", -ret);
	} else {
		ret = rls_apply_read_table(maps, reading, table, result, err, err_len);
	}
	rls_map_reading_free(reading);
	return ret;
}

int rls_apply_read_table(const struct rls_maps *maps, const struct rls_map_reading *reading,
			 const struct rls_table *table, struct rls_apply_result *result, char *err,
			 size_t err_len)
{
	__u32 next = reading->next, zero = 0;
	__u8 secret[RLS_KEY_SECRET_LEN];
	struct key_batches keys = {};
	struct id_plan plan = {};
	struct kept_ids kept;
	int ret;

	memset(result, 0, sizeof(*result));
	if (live_generation(maps) != (next ^ 1))
		return failf(err, err_len, "the %s table changed while this one was read: %s; load "
			     "again", "live", EAGAIN);
	ret = key_secret(maps, secret);
	if (ret)
		return failf(err, err_len, "cannot find or make the %s key secret: %s", "device's",
			     -ret);
	ret = plan_ids(&reading->accounts, &reading->models, table, &plan);
	if (ret) {
		if (ret == -ENOSPC)
			snprintf(err, err_len, "no account or model id is free: `rlshape unload` "
				 "and load again (counters start afresh)");
		else
			failf(err, err_len, "cannot plan the %s ids: %s", "new", -ret);
		plan_free(&plan);
		return ret;
	}
	ret = gather_keys(maps, table, &plan, next, secret, &keys, err, err_len);
	if (ret) {
		key_batches_free(&keys);
		plan_free(&plan);
		explicit_bzero(secret, sizeof(secret));
		return ret;
	}
	delete_stale(maps, reading, &keys);

	ret = write_names(maps, table, &plan, err, err_len);
	if (!ret)
		ret = write_limits(maps, table, &plan, next, &result->nr_limits, err, err_len);
	if (!ret)
		ret = write_principals(maps, table, &plan, next, &keys, result, err, err_len);
	key_batches_free(&keys);
	if (!ret)
		result->overflow_missing = write_overflow_counters(maps, table, &plan);
	if (!ret)
		ret = write_config(maps, table, next, secret, err, err_len);
	if (!ret && bpf_map_update_elem(maps->active, &zero, &next, BPF_ANY))
		ret = failf(err, err_len, "cannot switch to the %s table: %s", "new", errno);
	if (ret) {
		delete_generation_everywhere(maps, next);
		forget_new_names(maps, table, &plan);
		plan_free(&plan);
		explicit_bzero(secret, sizeof(secret));
		return ret;
	}

	/*
	 * The old generation stays: a packet that read rls_active just before the switch may
	 * still look its key and limits up there. The next load clears it before writing.
	 */
	kept.plan = &plan;
	kept.nr_accounts = table->nr_accounts;
	kept.nr_models = table->nr_models;
	result->counters_removed =
		rls_map_delete_where(maps->counters, sizeof(struct rls_counter_key), 0,
				  names_removed_id, &kept) +
		rls_map_delete_where(maps->anon_counters, sizeof(struct rls_counter_key), 0,
				  names_removed_id, &kept);
	rls_stats_give_back_where(maps, names_removed_id, &kept);
	result->idle_removed = prune_idle_anonymous(maps);
	if (plan.accounts_dropped)
		rls_map_delete_where(maps->accounts, sizeof(__u32), 0, account_removed, &kept);
	if (plan.models_dropped)
		rls_map_delete_where(maps->models, sizeof(struct rls_model_name), 0, model_removed,
				  &kept);
	result->generation = next;
	result->nr_accounts = table->nr_accounts;
	result->nr_models = table->nr_models;
	plan_free(&plan);
	explicit_bzero(secret, sizeof(secret));
	return 0;
}
