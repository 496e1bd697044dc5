// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "stats_rows.h"
#include "stat_names.h"

/* Row `row` of rls_stats_rows, each CPU's count summed into *total. */
static int read_row(const struct rls_maps *maps, __u32 row, struct rls_stats *total)
{
	int cpus = rls_nr_cpus(), cpu, ret = 0;
	struct rls_stats *percpu = calloc((size_t)cpus, sizeof(*percpu));

	_Static_assert(sizeof(struct rls_stats) % 8 == 0, "per-CPU values are read as an array");
	memset(total, 0, sizeof(*total));
	if (!percpu)
		return -ENOMEM;
	if (bpf_map_lookup_elem(maps->stats_rows, &row, percpu))
		ret = -errno;
	for (cpu = 0; !ret && cpu < cpus; cpu++)
		rls_stats_add(total, &percpu[cpu]);
	free(percpu);
	return ret;
}

int rls_stats_read(const struct rls_maps *maps, const struct rls_stats_key *key,
		   struct rls_stats *total)
{
	__u32 row;

	memset(total, 0, sizeof(*total));
	if (bpf_map_lookup_elem(maps->stats, key, &row))
		return -errno;
	return read_row(maps, row, total);
}

/* The pairs and their rows, as one walk of rls_stats finds them. */
struct pairs {
	struct rls_stats_key *keys;
	__u32 *rows;
	size_t n, cap;
	bool out_of_memory;
	rls_key_doomed doomed; /* NULL: every pair */
	const void *doomed_ctx;
};

static void collect_pair(const void *key, const void *value, void *ctx)
{
	struct pairs *p = ctx;
	struct rls_stats_key *keys;
	__u32 *rows;

	if (p->out_of_memory || (p->doomed && !p->doomed(key, NULL, p->doomed_ctx)))
		return;
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 256;

		keys = realloc(p->keys, cap * sizeof(*keys));
		if (keys)
			p->keys = keys;
		rows = keys ? realloc(p->rows, cap * sizeof(*rows)) : NULL;
		if (!rows) {
			p->out_of_memory = true;
			return;
		}
		p->rows = rows;
		p->cap = cap;
	}
	memcpy(&p->keys[p->n], key, sizeof(*p->keys));
	memcpy(&p->rows[p->n], value, sizeof(*p->rows));
	p->n++;
}

static int collect_pairs(const struct rls_maps *maps, struct pairs *p)
{
	int ret = rls_map_walk(maps->stats, 0, collect_pair, p);

	if (!ret && p->out_of_memory)
		ret = -ENOMEM;
	return ret;
}

int rls_stats_read_all(const struct rls_maps *maps, struct rls_stats_pair **pairs, size_t *n)
{
	struct pairs p = { 0 };
	size_t i;
	int ret = collect_pairs(maps, &p);

	*n = 0;
	*pairs = ret ? NULL : calloc(p.n ? p.n : 1, sizeof(**pairs));
	if (!ret && !*pairs)
		ret = -ENOMEM;
	for (i = 0; !ret && i < p.n; i++) {
		(*pairs)[i].key = p.keys[i];
		ret = read_row(maps, p.rows[i], &(*pairs)[i].total);
		if (!ret)
			(*n)++;
	}
	free(p.keys);
	free(p.rows);
	return ret;
}

/*
 * A request that read the pair's row just before its entry went may still count one outcome
 * into it after it is zeroed, and so into the pair that takes the row next: the same race a
 * request had with the deletion of the pair's counts before there were rows.
 */
size_t rls_stats_give_back_where(const struct rls_maps *maps, rls_key_doomed doomed,
				 const void *ctx)
{
	struct pairs p = { .doomed = doomed, .doomed_ctx = ctx };
	int cpus = rls_nr_cpus();
	struct rls_stats *zero = calloc((size_t)cpus, sizeof(*zero));
	size_t i, gone = 0;

	if (!zero || collect_pairs(maps, &p)) {
		free(zero);
		free(p.keys);
		free(p.rows);
		return 0;
	}
	for (i = 0; i < p.n; i++) {
		if (bpf_map_delete_elem(maps->stats, &p.keys[i]))
			continue;
		gone++;
		/* A row not zeroed is not given back: lost to counting, never miscounted. */
		if (bpf_map_update_elem(maps->stats_rows, &p.rows[i], zero, BPF_ANY) == 0)
			bpf_map_update_elem(maps->stats_free, NULL, &p.rows[i], BPF_ANY);
	}
	free(zero);
	free(p.keys);
	free(p.rows);
	return gone;
}
