/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * File descriptors of the data path's maps, whether they come from a freshly loaded skeleton
 * or from the pins of a running instance, and where those pins live.
 */
#ifndef RLS_USER_MAPS_H
#define RLS_USER_MAPS_H

#include <stddef.h>
#include "rlshape.h"

struct rlshape_xdp_bpf;

struct rls_maps {
	int active;
	int config;
	int api_keys;
	int cidrs;
	int models;
	int accounts;
	int limits;
	int counters;
	int anon_counters;
	int flows;
	int stats;
	int packets;
	int tails;
	int events;
	int pending;
	int settled;
	int event_ids;
	int parked;
};

/* The names of the pinned files, in struct order: also what `rlshape unload` removes. */
extern const char *const rls_map_names[];
extern const size_t rls_nr_maps;

#define RLS_LINK_PIN   "link_xdp"
#define RLS_PROG_PIN   "prog_xdp"
#define RLS_TC_PIN     "prog_tc"
#define RLS_SETTLE_PIN "prog_settle"

/* The TC filter's place on the clsact egress hook: fixed, so a reload replaces it in place. */
#define RLS_TC_HANDLE   0x524c /* "RL" */
#define RLS_TC_PRIORITY 1

/* /sys/fs/bpf/rlshape/IFACE into buf; -1 when it does not fit. */
int rls_pin_dir(const char *dev, char *buf, size_t len);

/* Mount the BPF filesystem on /sys/fs/bpf unless it is there, and create dir with parents. */
int rls_prepare_pin_dir(const char *dir);

void rls_maps_from_skeleton(struct rlshape_xdp_bpf *skel, struct rls_maps *maps);

/* Open the pinned maps under dir. Returns 0, or -errno naming the first that failed in err. */
int rls_maps_open_pinned(const char *dir, struct rls_maps *maps, char *err, size_t err_len);

void rls_maps_close(struct rls_maps *maps);

/* Number of possible CPUs, for reading per-CPU maps. */
int rls_nr_cpus(void);

#endif /* RLS_USER_MAPS_H */
