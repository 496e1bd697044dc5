// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "maps.h"
#include "cli.h"
#include "rlshape.skel.h"

int rls_pin_dir(const char *dev, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", RLS_PIN_ROOT, dev);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

enum rls_side rls_loaded_side(const char *dir)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, RLS_UPSTREAM_PIN);
	return access(path, F_OK) == 0 ? RLS_SIDE_UPSTREAM : RLS_SIDE_CLIENT;
}

static int is_bpffs(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

/*
 * A directory of ours, made 0700 even when it was there before: rls_config holds the key
 * hash's secret, and a pin (0600, root's) is opened by path.
 */
static int root_only_dir(const char *path)
{
	if (mkdir(path, 0700) && errno != EEXIST)
		return -1;
	return chmod(path, 0700);
}

int rls_prepare_pin_dir(const char *dir)
{
	char path[256];
	char *p;

	if (!is_bpffs("/sys/fs/bpf") && mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL))
		return -errno;
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	for (p = path + strlen("/sys/fs/bpf/"); *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (root_only_dir(path))
			return -errno;
		*p = '/';
	}
	return root_only_dir(path) ? -errno : 0;
}

bool rls_map_is_scratch(const struct bpf_map *map)
{
	static const char suffix[] = "_scratch";
	const char *name = bpf_map__name(map);
	size_t len = strlen(name);

	return len >= sizeof(suffix) - 1 && !strcmp(name + len - (sizeof(suffix) - 1), suffix);
}

/* .rodata, .bss and the like are the program's own constants and globals: never shared. */
bool rls_map_is_state(const struct bpf_map *map)
{
	return !bpf_map__is_internal(map) && !rls_map_is_scratch(map);
}

static int map_pin_path(const char *dir, const struct bpf_map *map, char *path, size_t len)
{
	int n = snprintf(path, len, "%s/%s", dir, bpf_map__name(map));

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int rls_pin_state_maps(struct bpf_object *obj, const char *dir)
{
	struct bpf_map *map;
	char path[512];
	int err;

	bpf_object__for_each_map(map, obj) {
		if (!rls_map_is_state(map)) {
			err = bpf_map__set_pin_path(map, NULL);
		} else {
			err = map_pin_path(dir, map, path, sizeof(path));
			if (!err)
				err = bpf_map__set_pin_path(map, path);
		}
		if (err)
			return err;
	}
	return 0;
}

int rls_unpin_maps(struct bpf_object *obj, const char *dir)
{
	struct bpf_map *map;
	char path[512];
	int failed = 0;

	bpf_object__for_each_map(map, obj) {
		if (bpf_map__is_internal(map) || map_pin_path(dir, map, path, sizeof(path)))
			continue;
		if (unlink(path) && errno != ENOENT) {
			rls_error("cannot remove %s: %s", path, strerror(errno));
			failed = -1;
		}
	}
	return failed;
}

void rls_maps_from_skeleton(struct rlshape_bpf *skel, struct rls_maps *maps)
{
#define RLS_MAP_FROM_SKELETON(name) maps->name = bpf_map__fd(skel->maps.rls_##name);
	RLS_USER_MAPS(RLS_MAP_FROM_SKELETON)
#undef RLS_MAP_FROM_SKELETON
}

/* The pin of each field of struct rls_maps: "rls_" and the field's name. */
static const struct {
	const char *pin;
	size_t offset;
} user_maps[] = {
#define RLS_USER_MAP(name) { "rls_" #name, offsetof(struct rls_maps, name) },
	RLS_USER_MAPS(RLS_USER_MAP)
#undef RLS_USER_MAP
};
#define NR_USER_MAPS (sizeof(user_maps) / sizeof(user_maps[0]))

static int *user_map_fd(struct rls_maps *maps, size_t i)
{
	return (int *)((char *)maps + user_maps[i].offset);
}

int rls_maps_open_pinned(const char *dir, struct rls_maps *maps, char *err, size_t err_len)
{
	char path[512];
	size_t i;

	for (i = 0; i < NR_USER_MAPS; i++)
		*user_map_fd(maps, i) = -1;
	for (i = 0; i < NR_USER_MAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, user_maps[i].pin);
		*user_map_fd(maps, i) = bpf_obj_get(path);
		if (*user_map_fd(maps, i) < 0) {
			int e = -errno;

			snprintf(err, err_len, "%s: %s", path, strerror(-e));
			rls_maps_close(maps);
			return e;
		}
	}
	return 0;
}

void rls_maps_close(struct rls_maps *maps)
{
	size_t i;

	for (i = 0; i < NR_USER_MAPS; i++) {
		if (*user_map_fd(maps, i) >= 0)
			close(*user_map_fd(maps, i));
		*user_map_fd(maps, i) = -1;
	}
}

int rls_nr_cpus(void)
{
	int n = libbpf_num_possible_cpus();

	return n > 0 ? n : 1;
}

__u32 rls_map_count_keys(int fd, size_t key_size)
{
	unsigned char key[128], next[128];
	void *prev = NULL;
	__u32 n = 0;

	if (key_size > sizeof(key))
		return 0;
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, key_size);
		prev = key;
		n++;
	}
	return n;
}
