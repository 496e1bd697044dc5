// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "map_walk.h"
#include "maps.h"

/*
 * Entries one batch call reads, deletes or writes at most: the system calls of a million-entry
 * walk fall from two million to a few hundred. A read needs room for a whole hash bucket; for a
 * larger bucket the kernel says ENOSPC and the read retries with twice the room.
 */
#define BATCH       4096u
#define BATCH_LIMIT (1u << 20)

/*
 * Writes of at least this many entries are split in two halves, written at once by two threads:
 * the kernel's insert into a hash map (an allocation and a locked bucket each, about 0.7 us)
 * was a third of a load of a million accounts, and its buckets lock one by one.
 */
#define PARALLEL_MIN (2 * BATCH)

struct map_shape {
	__u32 key_size;
	size_t value_bytes; /* per entry, as a read returns it */
	bool batched;       /* a hash map: it has the batch operations */
};

static int map_shape(int fd, struct map_shape *s)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	s->key_size = info.key_size;
	s->value_bytes = info.value_size;
	s->batched = false;
	switch (info.type) {
	case BPF_MAP_TYPE_PERCPU_ARRAY:
		s->value_bytes = (size_t)((info.value_size + 7) & ~7u) * (size_t)rls_nr_cpus();
		break;
	case BPF_MAP_TYPE_PERCPU_HASH:
	case BPF_MAP_TYPE_LRU_PERCPU_HASH:
		s->value_bytes = (size_t)((info.value_size + 7) & ~7u) * (size_t)rls_nr_cpus();
		s->batched = true;
		break;
	case BPF_MAP_TYPE_HASH:
	case BPF_MAP_TYPE_LRU_HASH:
		s->batched = true;
		break;
	default:
		break;
	}
	return 0;
}

static int walk_one_by_one(int fd, const struct map_shape *s, __u64 elem_flags,
			   rls_map_visit visit, void *ctx)
{
	unsigned char *key = malloc(s->key_size), *next = malloc(s->key_size);
	unsigned char *value = malloc(s->value_bytes);
	void *prev = NULL;
	int ret = 0;

	if (!key || !next || !value)
		ret = -ENOMEM;
	while (!ret && bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, s->key_size);
		prev = key;
		if (bpf_map_lookup_elem_flags(fd, key, value, elem_flags) == 0)
			visit(key, value, ctx);
	}
	free(key);
	free(next);
	free(value);
	return ret;
}

int rls_map_value_bytes(int fd, size_t *bytes)
{
	struct map_shape s = {};
	int ret = map_shape(fd, &s);

	*bytes = s.value_bytes;
	return ret;
}

int rls_map_walk(int fd, __u64 elem_flags, rls_map_visit visit, void *ctx)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = elem_flags);
	unsigned char *keys = NULL, *values = NULL;
	__u32 in = 0, out = 0, count, room = BATCH, i;
	bool first = true, last = false;
	struct map_shape s = {};
	int ret, err;

	ret = map_shape(fd, &s);
	if (ret || !s.batched)
		return ret ? ret : walk_one_by_one(fd, &s, elem_flags, visit, ctx);
	while (!last) {
		if (!keys) {
			keys = malloc((size_t)room * s.key_size);
			values = malloc((size_t)room * s.value_bytes);
			if (!keys || !values) {
				ret = -ENOMEM;
				break;
			}
		}
		count = room;
		err = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys, values, &count, &opts)
			      ? errno : 0;
		if (err == ENOSPC && count == 0 && room < BATCH_LIMIT) {
			/* A bucket larger than room: read it again with more. */
			free(keys);
			free(values);
			keys = values = NULL;
			room *= 2;
			continue;
		}
		if (err && err != ENOENT) {
			/* Nothing read yet: a kernel without batch reads of this map. */
			if (first && err != ENOSPC)
				ret = walk_one_by_one(fd, &s, elem_flags, visit, ctx);
			else
				ret = -err;
			break;
		}
		for (i = 0; i < count; i++)
			visit(keys + (size_t)i * s.key_size, values + (size_t)i * s.value_bytes, ctx);
		last = err == ENOENT; /* the end: count holds the last entries, if any */
		first = false;
		in = out;
	}
	free(keys);
	free(values);
	return ret;
}

size_t rls_map_delete_keys(int fd, const void *keys, size_t n, size_t key_size)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	const unsigned char *k = keys;
	size_t done = 0, deleted = 0;
	__u32 count;

	while (done < n) {
		count = n - done > BATCH ? BATCH : (__u32)(n - done);
		if (bpf_map_delete_batch(fd, k + done * key_size, &count, &opts) == 0) {
			done += count;
			deleted += count;
		} else if (errno == ENOENT) {
			/* The count before it went; the key at done + count was gone already. */
			done += (size_t)count + 1;
			deleted += count;
		} else {
			/* No batch deletes for this map (count was not set): one at a time. */
			for (; done < n; done++)
				if (bpf_map_delete_elem(fd, k + done * key_size) == 0)
					deleted++;
		}
	}
	return deleted;
}

void rls_sweep_collect(const void *key, const void *value, void *sweep)
{
	struct rls_sweep *w = sweep;
	void *grown;

	if (w->out_of_memory || !w->doomed(key, value, w->ctx))
		return;
	if (w->n == w->cap) {
		grown = realloc(w->keys, (w->cap ? w->cap * 2 : 256) * w->key_size);
		if (!grown) {
			w->out_of_memory = true;
			return;
		}
		w->keys = grown;
		w->cap = w->cap ? w->cap * 2 : 256;
	}
	memcpy(w->keys + w->n++ * w->key_size, key, w->key_size);
}

size_t rls_map_delete_where(int fd, size_t key_size, __u64 read_flags, rls_key_doomed doomed,
			    const void *ctx)
{
	struct rls_sweep w = { .doomed = doomed, .ctx = ctx, .key_size = key_size };
	size_t deleted;

	rls_map_walk(fd, read_flags, rls_sweep_collect, &w);
	deleted = rls_map_delete_keys(fd, w.keys, w.n, key_size);
	free(w.keys);
	return deleted;
}

/* Entries [0, n): the system calls of rls_map_update_many() for one thread. */
static int update_range(int fd, const unsigned char *k, const unsigned char *v, size_t n,
			size_t key_size, size_t value_size, __u64 flags, size_t *failed)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
	size_t done = 0;
	__u32 asked, count;
	int err;

	while (done < n) {
		asked = count = n - done > BATCH ? BATCH : (__u32)(n - done);
		if (bpf_map_update_batch(fd, k + done * key_size, v + done * value_size, &count,
					 &opts) == 0) {
			done += count;
			continue;
		}
		err = errno;
		if (count < asked) {
			/* Entries before done + count are written; that one failed. */
			*failed = done + count;
			return -err;
		}
		/* Refused before writing any (no batch writes here, or flags it does not take):
		 * one at a time, which also says which entry fails. */
		for (; done < n; done++)
			if (bpf_map_update_elem(fd, k + done * key_size, v + done * value_size, flags)) {
				*failed = done;
				return -errno;
			}
	}
	return 0;
}

struct update_part {
	int fd;
	const unsigned char *keys, *values;
	size_t n, key_size, value_size, failed;
	__u64 flags;
	int ret;
};

static void *update_part_run(void *arg)
{
	struct update_part *p = arg;

	p->ret = update_range(p->fd, p->keys, p->values, p->n, p->key_size, p->value_size,
			      p->flags, &p->failed);
	return NULL;
}

int rls_map_update_many(int fd, const void *keys, const void *values, size_t n, size_t key_size,
			size_t value_size, __u64 flags, size_t *failed)
{
	const unsigned char *k = keys, *v = values;
	size_t half = n / 2;
	struct update_part second = {
		.fd = fd, .keys = k + half * key_size, .values = v + half * value_size,
		.n = n - half, .key_size = key_size, .value_size = value_size, .flags = flags,
	};
	pthread_t thread;
	int ret;

	if (n < PARALLEL_MIN || pthread_create(&thread, NULL, update_part_run, &second))
		return update_range(fd, k, v, n, key_size, value_size, flags, failed);
	ret = update_range(fd, k, v, half, key_size, value_size, flags, failed);
	pthread_join(thread, NULL);
	/* The first half stopped first in the order of the entries: every one before it is in. */
	if (ret)
		return ret;
	if (second.ret)
		*failed = half + second.failed;
	return second.ret;
}
