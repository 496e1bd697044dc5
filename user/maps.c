// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
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
#include "rlshape_xdp.skel.h"

const char *const rls_map_names[] = {
	"rls_active",   "rls_config",   "rls_api_keys",      "rls_cidrs",
	"rls_models",   "rls_accounts", "rls_limits",        "rls_counters",
	"rls_anon_counters", "rls_flows", "rls_stats",       "rls_packets",
	"rls_tails",    "rls_events",   "rls_pending",       "rls_settled",
	"rls_event_ids", "rls_parked",
	/* Pinned, not in struct rls_maps: work space only the programs use. */
	"rls_scratch",  "rls_tc_scratch",
};
const size_t rls_nr_maps = sizeof(rls_map_names) / sizeof(rls_map_names[0]);

/* The struct's fds in rls_map_names order (the scratch maps have none: user space never reads them). */
static int *map_fd_slot(struct rls_maps *maps, size_t i)
{
	return i < sizeof(*maps) / sizeof(int) ? &((int *)maps)[i] : NULL;
}

int rls_pin_dir(const char *dev, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", RLS_PIN_ROOT, dev);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int is_bpffs(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && st.f_type == BPF_FS_MAGIC;
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
		if (mkdir(path, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

void rls_maps_from_skeleton(struct rlshape_xdp_bpf *skel, struct rls_maps *maps)
{
	maps->active = bpf_map__fd(skel->maps.rls_active);
	maps->config = bpf_map__fd(skel->maps.rls_config);
	maps->api_keys = bpf_map__fd(skel->maps.rls_api_keys);
	maps->cidrs = bpf_map__fd(skel->maps.rls_cidrs);
	maps->models = bpf_map__fd(skel->maps.rls_models);
	maps->accounts = bpf_map__fd(skel->maps.rls_accounts);
	maps->limits = bpf_map__fd(skel->maps.rls_limits);
	maps->counters = bpf_map__fd(skel->maps.rls_counters);
	maps->anon_counters = bpf_map__fd(skel->maps.rls_anon_counters);
	maps->flows = bpf_map__fd(skel->maps.rls_flows);
	maps->stats = bpf_map__fd(skel->maps.rls_stats);
	maps->packets = bpf_map__fd(skel->maps.rls_packets);
	maps->tails = bpf_map__fd(skel->maps.rls_tails);
	maps->events = bpf_map__fd(skel->maps.rls_events);
	maps->pending = bpf_map__fd(skel->maps.rls_pending);
	maps->settled = bpf_map__fd(skel->maps.rls_settled);
	maps->event_ids = bpf_map__fd(skel->maps.rls_event_ids);
	maps->parked = bpf_map__fd(skel->maps.rls_parked);
}

int rls_maps_open_pinned(const char *dir, struct rls_maps *maps, char *err, size_t err_len)
{
	char path[512];
	size_t i;
	int *slot;

	for (i = 0; (slot = map_fd_slot(maps, i)); i++)
		*slot = -1;
	for (i = 0; (slot = map_fd_slot(maps, i)); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, rls_map_names[i]);
		*slot = bpf_obj_get(path);
		if (*slot < 0) {
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
	int *slot;

	for (i = 0; (slot = map_fd_slot(maps, i)); i++) {
		if (*slot >= 0)
			close(*slot);
		*slot = -1;
	}
}

int rls_nr_cpus(void)
{
	int n = libbpf_num_possible_cpus();

	return n > 0 ? n : 1;
}
