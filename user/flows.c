// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <bpf/bpf.h>

#include "flows.h"
#include "map_walk.h"

#define NS_PER_S 1000000000ull

/*
 * A connection between requests (its stream idle, no response being followed) may go after a
 * quarter of an hour: if it comes back, its next request starts a new entry where it stands.
 * Not one a 429 kept open, whose segments are renumbered on their way (bpf/lib/seqadj.h):
 * without its entry they would reach the upstream in the client's numbering. Anywhere else
 * in a request, and such a connection, it goes after an hour; a stream that comes back
 * mid-request is then reset, never followed blind. One whose upstream closed goes after two
 * minutes, and so does one XDP reset (RLS_FLOW_RESET): it is kept only to tell its client at
 * its resend, which comes within seconds, and it must not hold an entry for an hour.
 */
bool rls_flow_stale(const struct rls_flow *flow, __u64 now_ns)
{
	__u64 idle = now_ns > flow->last_seen_ns ? now_ns - flow->last_seen_ns : 0;
	bool between = flow->stream.phase == RLS_PHASE_IDLE && !flow->slot_held &&
		       flow->response_state == RLS_RESPONSE_NONE && !flow->seqadj.active;

	if ((flow->closed & RLS_CLOSED_SERVER || flow->state == RLS_FLOW_RESET) &&
	    idle >= RLS_FLOW_IDLE_AFTER_CLOSE_S * NS_PER_S)
		return true;
	if (between && idle >= RLS_FLOW_IDLE_BETWEEN_S * NS_PER_S)
		return true;
	return idle >= RLS_FLOW_IDLE_ANY_S * NS_PER_S;
}

long rls_reap_flows(int fd, __u64 now_ns)
{
	struct rls_flow_key key, next, *stale = NULL, *grown;
	size_t n = 0, cap = 0, i;
	struct rls_flow flow;
	void *prev = NULL;
	long deleted = 0;

	/* Collect first: deleting while walking makes the walk start over. */
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &flow) || !rls_flow_stale(&flow, now_ns))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			grown = realloc(stale, cap * sizeof(*stale));
			if (!grown) {
				free(stale);
				return -ENOMEM;
			}
			stale = grown;
		}
		stale[n++] = key;
	}
	for (i = 0; i < n; i++) {
		/* Looked at again: the connection may have spoken in between. */
		if (bpf_map_lookup_elem(fd, &stale[i], &flow) || !rls_flow_stale(&flow, now_ns))
			continue;
		if (bpf_map_delete_elem(fd, &stale[i]) == 0)
			deleted++;
	}
	free(stale);
	return deleted;
}

/* rls_map_delete_where(): a cut value whose connection is gone. */
static bool cut_value_orphaned(const void *key, const void *value, const void *flows_fd)
{
	struct rls_flow flow;

	(void)value;
	return bpf_map_lookup_elem(*(const int *)flows_fd, key, &flow) != 0;
}

/*
 * A connection on the same ports that begins, and has a header line cut, between the walk and
 * the delete would lose its value, and be reset (cut_value_lost_reset): the strict way out, for
 * a window of a walk's length on a port pair just freed.
 */
long rls_reap_cut_values(int cut_fd, int flows_fd)
{
	return (long)rls_map_delete_where(cut_fd, sizeof(struct rls_flow_key), 0, cut_value_orphaned,
					  &flows_fd);
}
