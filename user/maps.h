/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * File descriptors of the data path's maps, whether they come from a freshly loaded skeleton
 * or from the pins of a running instance, and where those pins live.
 */
#ifndef RLS_USER_MAPS_H
#define RLS_USER_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include "rlshape.h"

struct rlshape_bpf;
struct bpf_map;
struct bpf_object;

/*
 * The state maps user space reads or writes, by their name in bpf/lib/maps.h less "rls_": the
 * fields of struct rls_maps. A name missing from the object fails the build (the skeleton has
 * no such member). Pinning does not go by this list: every state map of the object is pinned
 * (rls_pin_state_maps), used here or not.
 */
#define RLS_USER_MAPS(X) \
	X(active) X(config) X(api_keys) X(api_key_digests) X(cidrs) X(models) X(accounts)  \
	X(limits) X(counters) X(anon_counters) X(flows) X(stats) X(stats_rows) X(stats_next) \
	X(stats_free) X(packets) X(tails) X(events) X(pending) X(settled) X(event_ids)       \
	X(parked) X(cut_values)

struct rls_maps {
#define RLS_MAP_FD(name) int name;
	RLS_USER_MAPS(RLS_MAP_FD)
#undef RLS_MAP_FD
};

#define RLS_LINK_PIN   "link_xdp"
#define RLS_PROG_PIN   "prog_xdp"
#define RLS_TC_PIN     "prog_tc"
#define RLS_SETTLE_PIN "prog_settle"
#define RLS_FLEET_LEASE_PIN "prog_fleet_lease" /* user/fleet.c */
/* The upstream side's TC egress program; its pin says which side an instance is loaded on. */
#define RLS_UPSTREAM_PIN "prog_upstream"

/*
 * Where an instance reads requests (`rlshape load --side`): XDP on the client-facing
 * interface (responses metered by TC egress), or TC egress on the interface to the upstream
 * behind a local TLS-terminating proxy (responses metered by TC ingress).
 */
enum rls_side {
	RLS_SIDE_CLIENT,
	RLS_SIDE_UPSTREAM,
};

/* The side of the instance pinned under dir; what is loaded there decides. */
enum rls_side rls_loaded_side(const char *dir);

/* The TC filters' place on the clsact hooks: fixed, so a reload replaces them in place. */
#define RLS_TC_HANDLE   0x524c /* "RL" */
#define RLS_TC_PRIORITY 1

/* /sys/fs/bpf/rlshape/IFACE into buf; -1 when it does not fit. */
int rls_pin_dir(const char *dev, char *buf, size_t len);

/*
 * Mount the BPF filesystem on /sys/fs/bpf unless it is there, and create dir with parents, each
 * mode 0700: only root may open the pins (rls_config holds the key hash's secret).
 */
int rls_prepare_pin_dir(const char *dir);

/* Scratch maps (named *_scratch, see bpf/lib/maps.h) are work space: never pinned, never reused. */
bool rls_map_is_scratch(const struct bpf_map *map);

/* Tables, counters, connections, events: pinned, and reused by the next load. */
bool rls_map_is_state(const struct bpf_map *map);

/*
 * Before loading obj: each state map pinned as dir/NAME (libbpf reuses an existing pin, else
 * creates the map and pins it there), scratch maps left unpinned. Returns 0 or -errno.
 */
int rls_pin_state_maps(struct bpf_object *obj, const char *dir);

/*
 * Remove the pins of obj's maps under dir: every state map's, and any scratch map's an older
 * rlshape (which pinned them) left. Returns 0, or -1 after naming the pin it could not remove.
 */
int rls_unpin_maps(struct bpf_object *obj, const char *dir);

void rls_maps_from_skeleton(struct rlshape_bpf *skel, struct rls_maps *maps);

/* Open the pinned maps under dir. Returns 0, or -errno naming the first that failed in err. */
int rls_maps_open_pinned(const char *dir, struct rls_maps *maps, char *err, size_t err_len);

void rls_maps_close(struct rls_maps *maps);

/* Entries in map fd, by walking its keys (at most 128 bytes each; larger: 0). */
__u32 rls_map_count_keys(int fd, size_t key_size);

/* Number of possible CPUs, for reading per-CPU maps. */
int rls_nr_cpus(void);

#endif /* RLS_USER_MAPS_H */
