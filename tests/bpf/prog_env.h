/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one way a test or a benchmark gets rlshape's programs to run: the skeleton loaded with
 * private maps (never pinned), a tier table applied to them, each program's fd, and readers
 * of the per-CPU counters. No cmocka here: the BPF suites (harness.h), the benchmarks
 * (bench/bench.h) and the packet fuzzer build on it, each reporting failures its own way.
 */
#ifndef RLS_TEST_PROG_ENV_H
#define RLS_TEST_PROG_ENV_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "rlshape.h"
#include "tiers.h"
#include "maps.h"
#include "apply.h"
#include "map_walk.h"
#include "stat_names.h"
#include "stats_rows.h"
#include "rlshape.skel.h"

/* One loaded skeleton and its table. why says what went wrong when a call returns -1. */
struct env {
	struct rlshape_bpf *skel;
	struct rls_maps maps;
	int prog_fd;   /* rlshape_xdp: what most cases run */
	int tc_fd;     /* rlshape_tc */
	int upstream_fd; /* rlshape_upstream: the upstream side's TC egress */
	int settle_fd; /* rls_settle */
	int ready;     /* loaded and a table applied */
	/* How it was loaded: an env is only reused (env_reset) for a load made the same way. */
	int (*loaded_with)(struct rlshape_bpf *skel);
	int loaded_upstream;
	char why[1536];
};

/*
 * Whether env_load() loads the upstream side's program (rlshape_upstream): only for what runs
 * it. Its verification adds most of a second to every load. Without it, env.upstream_fd is
 * negative.
 */
static int env_load_upstream;

/*
 * Open the skeleton with every map private, let before_load (may be NULL) resize maps, load.
 * Returns 0, or -1 with e->why.
 */
static inline int env_load(struct env *e, int (*before_load)(struct rlshape_bpf *skel))
{
	struct bpf_map *map;
	int ret;

	memset(e, 0, sizeof(*e));
	e->prog_fd = e->tc_fd = e->upstream_fd = e->settle_fd = -1;
	if (geteuid() != 0) {
		snprintf(e->why, sizeof(e->why), "not root (euid %u): loading BPF needs root",
			 (unsigned)geteuid());
		return -1;
	}
	e->skel = rlshape_bpf__open();
	if (!e->skel) {
		snprintf(e->why, sizeof(e->why), "rlshape_bpf__open: %s", strerror(errno));
		return -1;
	}
	/* Never touch /sys/fs/bpf: a running rlshape keeps its own maps. */
	bpf_object__for_each_map(map, e->skel->obj) {
		ret = bpf_map__set_pin_path(map, NULL);
		if (ret) {
			snprintf(e->why, sizeof(e->why), "bpf_map__set_pin_path(%s, NULL): %s",
				 bpf_map__name(map), strerror(-ret));
			return -1;
		}
	}
	bpf_program__set_autoload(e->skel->progs.rlshape_upstream, env_load_upstream);
	if (before_load && (ret = before_load(e->skel))) {
		snprintf(e->why, sizeof(e->why), "adjusting the maps before loading: %s",
			 strerror(-ret));
		return -1;
	}
	ret = rlshape_bpf__load(e->skel);
	if (ret) {
		snprintf(e->why, sizeof(e->why),
			 "rlshape_bpf__load: %s (needs root with CAP_BPF/CAP_SYS_ADMIN and a kernel "
			 "with BTF)", strerror(-ret));
		return -1;
	}
	bpf_object__for_each_map(map, e->skel->obj) {
		if (bpf_map__is_pinned(map)) {
			snprintf(e->why, sizeof(e->why), "map %s got pinned at %s",
				 bpf_map__name(map), bpf_map__pin_path(map) ?: "?");
			return -1;
		}
	}
	e->prog_fd = bpf_program__fd(e->skel->progs.rlshape_xdp);
	e->tc_fd = bpf_program__fd(e->skel->progs.rlshape_tc);
	e->upstream_fd = env_load_upstream ? bpf_program__fd(e->skel->progs.rlshape_upstream) : -1;
	e->settle_fd = bpf_program__fd(e->skel->progs.rls_settle);
	e->loaded_with = before_load;
	e->loaded_upstream = env_load_upstream;
	rls_maps_from_skeleton(e->skel, &e->maps);
	return 0;
}

static inline int env_reset_ring_drained(void *ctx, void *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return 0;
}

static inline bool env_any_entry(const void *key, const void *value, const void *ctx)
{
	(void)key;
	(void)value;
	(void)ctx;
	return true;
}

/* Delete every entry of hash map or trie fd, whose keys are key_size bytes. 0 or -errno. */
static inline int env_empty_map(int fd, size_t key_size)
{
	unsigned char next[256];

	if (key_size > sizeof(next))
		return -E2BIG;
	rls_map_delete_where(fd, key_size, 0, env_any_entry, NULL);
	if (bpf_map_get_next_key(fd, NULL, next) == 0)
		return -EEXIST; /* something the walk did not see, or could not delete */
	return errno == ENOENT ? 0 : -errno;
}

/* Every entry of an array map zero: value_size bytes each (all CPUs' for a per-CPU one), a
 * batch of them a system call (rls_stats_rows has 65,536). */
static inline int env_zero_array(int fd, size_t value_size, __u32 entries)
{
	__u32 batch = entries < 4096 ? entries : 4096, n, i, base;
	__u32 *keys = calloc(batch, sizeof(*keys));
	void *zero = calloc(batch, value_size);
	int err = keys && zero ? 0 : -ENOMEM;

	for (base = 0; !err && base < entries; base += n) {
		n = entries - base < batch ? entries - base : batch;
		for (i = 0; i < n; i++)
			keys[i] = base + i;
		if (bpf_map_update_batch(fd, keys, zero, &n, NULL))
			err = -errno;
	}
	free(keys);
	free(zero);
	return err;
}

/*
 * Put every map of e back as a load leaves it: hash maps, LRU maps and the trie empty, arrays
 * zero, the ring buffer read to its end; .rodata is frozen and stays. With a table applied
 * again, e is in the state a new load and the same table give, without verifying the programs
 * again (about 2 s a load, most of what the BPF suites spent). A map of a kind this does not
 * know how to put back fails it, naming the map: teach it here rather than share state between
 * tests. Returns 0, or -1 with e->why.
 */
static inline int env_reset(struct env *e)
{
	int ncpu = rls_nr_cpus(), fd, err = 0;
	struct ring_buffer *ring;
	void *zero = NULL;
	struct bpf_map *map;
	size_t value_size;

	e->ready = 0;
	bpf_object__for_each_map(map, e->skel->obj) {
		fd = bpf_map__fd(map);
		switch (bpf_map__type(map)) {
		case BPF_MAP_TYPE_HASH:
		case BPF_MAP_TYPE_LRU_HASH:
		case BPF_MAP_TYPE_PERCPU_HASH:
		case BPF_MAP_TYPE_LRU_PERCPU_HASH:
		case BPF_MAP_TYPE_LPM_TRIE:
			err = env_empty_map(fd, bpf_map__key_size(map));
			break;
		case BPF_MAP_TYPE_ARRAY:
		case BPF_MAP_TYPE_PERCPU_ARRAY:
			if (bpf_map__map_flags(map) & BPF_F_RDONLY_PROG)
				break; /* .rodata: set before the load, frozen by it */
			if (bpf_map__is_internal(map)) {
				err = -ENOTSUP; /* .data or .bss: its first values are not kept */
				break;
			}
			value_size = bpf_map__value_size(map);
			if (bpf_map__type(map) == BPF_MAP_TYPE_PERCPU_ARRAY)
				value_size = ((value_size + 7) & ~(size_t)7) * (size_t)ncpu;
			err = env_zero_array(fd, value_size, bpf_map__max_entries(map));
			break;
		case BPF_MAP_TYPE_QUEUE:
			value_size = bpf_map__value_size(map);
			free(zero);
			zero = malloc(value_size);
			if (!zero) {
				err = -ENOMEM;
				break;
			}
			while (bpf_map_lookup_and_delete_elem(fd, NULL, zero) == 0)
				;
			if (errno != ENOENT)
				err = -errno;
			break;
		case BPF_MAP_TYPE_RINGBUF:
			ring = ring_buffer__new(fd, env_reset_ring_drained, NULL, NULL);
			if (!ring || ring_buffer__consume(ring) < 0)
				err = -errno ?: -EIO;
			ring_buffer__free(ring);
			break;
		default:
			err = -ENOTSUP;
			break;
		}
		if (err) {
			snprintf(e->why, sizeof(e->why),
				 "putting map %s (type %d) back as a load leaves it: %s%s",
				 bpf_map__name(map), (int)bpf_map__type(map), strerror(-err),
				 err == -ENOTSUP ? " (env_reset in tests/bpf/prog_env.h does not "
						   "know this kind of map)" : "");
			break;
		}
	}
	free(zero);
	return err ? -1 : 0;
}

/*
 * Make a table live in e's maps: the JSON text, or (text NULL) the file at path; path names
 * the table in messages either way. Returns 0, or -1 with e->why.
 */
static inline int env_apply_table(struct env *e, const char *path, const char *text,
				  struct rls_apply_result *result)
{
	struct rls_apply_result res;
	struct rls_table table;
	char err[1024];
	int ret;

	if (text)
		ret = rls_table_parse(path, text, strlen(text), &table, err, sizeof(err));
	else
		ret = rls_table_load(path, &table, err, sizeof(err));
	if (ret) {
		snprintf(e->why, sizeof(e->why), "%s", err);
		return -1;
	}
	ret = rls_apply_table(&e->maps, &table, result ? result : &res, err, sizeof(err));
	rls_table_free(&table);
	if (ret) {
		snprintf(e->why, sizeof(e->why), "rls_apply_table: %s (%d)", err, ret);
		return -1;
	}
	e->ready = 1;
	return 0;
}

static inline void env_close(struct env *e)
{
	/* The fds in e->maps belong to the skeleton: destroying it closes them. */
	if (e->skel)
		rlshape_bpf__destroy(e->skel);
	e->skel = NULL;
	e->ready = 0;
}

/*
 * One BPF_PROG_TEST_RUN of prog_fd: on a frame (in, in_len; what the program made of it in out,
 * which may be NULL), or for the syscall program on its context alone (ctx, ctx_len: it writes
 * its results back there, since ctx_out is refused for it). Returns 0 with *retval
 * (and the kernel's ns in *ns when asked), or -errno.
 */
static inline int env_run_timed(int prog_fd, const void *in, size_t in_len, void *out,
				__u32 out_cap, __u32 *out_len, void *ctx, size_t ctx_len, int *retval,
				__u32 *ns)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = (__u32)in_len,
		    .data_out = out, .data_size_out = out ? out_cap : 0, .ctx_in = ctx,
		    .ctx_size_in = (__u32)ctx_len);
	int err;

	*retval = -1;
	if (in)
		opts.repeat = 1;
	err = bpf_prog_test_run_opts(prog_fd, &opts);
	if (err)
		return err < 0 ? err : -errno;
	if (out_len)
		*out_len = opts.data_size_out;
	*retval = (int)opts.retval;
	if (ns)
		*ns = opts.duration; /* the kernel's own measure of the run */
	return 0;
}

static inline int env_run(int prog_fd, const void *in, size_t in_len, void *out, __u32 out_cap,
			  __u32 *out_len, void *ctx, size_t ctx_len, int *retval)
{
	return env_run_timed(prog_fd, in, in_len, out, out_cap, out_len, ctx, ctx_len, retval,
			     NULL);
}

/* ---- the per-CPU counters, summed ---- */

static inline struct rls_stats env_stats(const struct env *e, __u32 account, __u32 model)
{
	struct rls_stats_key key = { .account = account, .model = model };
	struct rls_stats sum;

	rls_stats_read(&e->maps, &key, &sum);
	return sum;
}

static inline __u64 env_rejected_total(const struct rls_stats *s)
{
	__u64 t = 0;
	int r;

	for (r = 0; r < RLS_NR_REASONS; r++)
		t += s->rejected[r];
	return t;
}

static inline __u64 env_packets(const struct env *e, __u32 event)
{
	__u64 *per_cpu, sum = 0;
	int n = rls_nr_cpus(), i;

	per_cpu = calloc((size_t)n, sizeof(*per_cpu));
	if (per_cpu && bpf_map_lookup_elem(e->maps.packets, &event, per_cpu) == 0)
		for (i = 0; i < n; i++)
			sum += per_cpu[i];
	free(per_cpu);
	return sum;
}

#endif /* RLS_TEST_PROG_ENV_H */
