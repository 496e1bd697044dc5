/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reading, deleting and writing many entries of a BPF map with few system calls. A load of a
 * million accounts walks and writes maps of millions of entries: one entry per system call (two
 * for a read: the next key, then its value) cost most of such a load. Hash maps use the kernel's
 * batch operations; other maps (the LPM trie has none) go one entry at a time.
 */
#ifndef RLS_USER_MAP_WALK_H
#define RLS_USER_MAP_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

/* One entry of a walk: its key and value, as the map holds them (a per-CPU map's value is
 * the value of each possible CPU, each rounded up to 8 bytes). */
typedef void (*rls_map_visit)(const void *key, const void *value, void *ctx);

/* The bytes of one entry's value as a walk reads it (see rls_map_visit). Returns 0 or -errno. */
int rls_map_value_bytes(int fd, size_t *bytes);

/*
 * Call visit() on every entry of map fd. elem_flags: BPF_F_LOCK reads values with their spin
 * lock held (maps whose values have one), else 0. Entries added or removed during the walk may
 * be seen or not, as with any walk of a live map. Returns 0 or -errno.
 */
int rls_map_walk(int fd, __u64 elem_flags, rls_map_visit visit, void *ctx);

/* Does this entry (of a map being swept) go? */
typedef bool (*rls_key_doomed)(const void *key, const void *value, const void *ctx);

/* The keys of a walk that doomed() picked: n of them, key_size bytes each, one after another. */
struct rls_sweep {
	rls_key_doomed doomed;
	const void *ctx;
	size_t key_size, n, cap;
	unsigned char *keys;
	bool out_of_memory;
};

/* An rls_map_walk() visitor: keeps the entry's key in the struct rls_sweep if doomed() picks it. */
void rls_sweep_collect(const void *key, const void *value, void *sweep);

/*
 * Delete every entry of fd that doomed() picks; read_flags: BPF_F_LOCK to see values with
 * their lock held, else 0. Keys are collected first: deleting while walking would skip
 * entries. Returns how many went.
 */
size_t rls_map_delete_where(int fd, size_t key_size, __u64 read_flags, rls_key_doomed doomed,
			    const void *ctx);

/* Delete the n keys (key_size bytes each, one after another) from fd. Keys already gone are
 * passed over. Returns how many were deleted. */
size_t rls_map_delete_keys(int fd, const void *keys, size_t n, size_t key_size);

/*
 * Write n entries: keys[i] -> values[i] (key_size and value_size bytes each), with flags
 * (BPF_ANY, ...); many of them on two threads at once. Returns 0, or -errno with *failed the
 * index of an entry that could not be written: every one before it is written, and of those
 * after it, some may be.
 */
int rls_map_update_many(int fd, const void *keys, const void *values, size_t n, size_t key_size,
			size_t value_size, __u64 flags, size_t *failed);

#endif /* RLS_USER_MAP_WALK_H */
