/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Removing the rls_flows entries of connections that went away unseen. rls_flows is a hash,
 * not LRU (an evicted connection would lose its place in its stream), and the data path
 * deletes an entry when both sides have closed or either has reset. A connection whose close
 * never reaches the gateway keeps its entry: the daemon removes it once it is stale.
 */
#ifndef RLS_USER_FLOWS_H
#define RLS_USER_FLOWS_H

#include <stdbool.h>
#include "rlshape.h"

/* Seconds of silence after which an entry goes: */
#define RLS_FLOW_IDLE_AFTER_CLOSE_S 120  /* the upstream has closed: its side is gone */
#define RLS_FLOW_IDLE_BETWEEN_S     900  /* between requests: the stream resumes cleanly */
#define RLS_FLOW_IDLE_ANY_S         3600 /* anywhere: a stream that comes back is reset */

/* Is the entry stale at now_ns (CLOCK_MONOTONIC, as bpf_ktime_get_ns())? */
bool rls_flow_stale(const struct rls_flow *flow, __u64 now_ns);

/* Delete the stale entries of the rls_flows map fd; returns how many, or -errno. */
long rls_reap_flows(int fd, __u64 now_ns);

/*
 * Delete the entries of rls_cut_values (cut_fd) whose connection has no rls_flows entry
 * (flows_fd) any more: a connection that ended, or was removed, while a segment's end had cut
 * one of its header lines. Returns how many went.
 */
long rls_reap_cut_values(int cut_fd, int flows_fd);

#endif /* RLS_USER_FLOWS_H */
