/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the data path. Two kinds, told apart by name (user/maps.c, rls_map_is_scratch):
 * - state: tables, counters, connections, events. `rlshape load` pins each under
 *   /sys/fs/bpf/rlshape/IFACE by its name, and a reload reuses the pin, keeping the counters.
 * - scratch, named *_scratch: per-CPU work space, meaningless between two packets. Never
 *   pinned, so each load gets fresh ones of its own layout: growing RLS_PARSE_WINDOW or
 *   struct rls_scratch cannot make a reload fail.
 * A name, rather than a BTF decl tag or a map flag, because libbpf gives user space the name of
 * each map of an object but not its decl tags, map flags mean something to the kernel, and
 * the name is what bpftool shows next to the pin.
 * No map asks for LIBBPF_PIN_BY_NAME: tests and benchmarks load this object with private maps.
 */
#ifndef RLS_BPF_MAPS_H
#define RLS_BPF_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "scratch.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32); /* the live generation: 0 or 1 */
} rls_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct rls_config);
} rls_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * RLS_MAX_API_KEYS);
	__type(key, struct rls_api_key);
	__type(value, struct rls_principal);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} rls_api_keys SEC(".maps");

/* Looked up only when the live table has "sha256:" keys (rls_config.key_digests). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * RLS_MAX_API_KEYS);
	__type(key, struct rls_api_key_digest);
	__type(value, struct rls_principal);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} rls_api_key_digests SEC(".maps");

/*
 * What SHA-256 gave for the keys XDP saw lately, known or not, so that a "sha256:" key (or a
 * stranger's, again) pays for it once per cache life. Only a hint: the SHA-256 is looked up in
 * rls_api_key_digests whatever the cache held, so an eviction costs one SHA-256, never the
 * key's account. Kept across reloads, as the secret its keys are under is.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RLS_MAX_DIGEST_CACHE);
	__type(key, struct rls_key_siphash);
	__type(value, struct rls_key_sha256);
} rls_key_digest_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 2 * RLS_MAX_CIDRS);
	__type(key, struct rls_cidr_key);
	__type(value, struct rls_principal);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} rls_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * RLS_MAX_MODELS);
	__type(key, struct rls_model_name);
	__type(value, __u32);
} rls_models SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * RLS_MAX_ACCOUNTS);
	__type(key, __u32);
	__type(value, struct rls_account_name);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} rls_accounts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * RLS_MAX_LIMITS);
	__type(key, struct rls_limit_key);
	__type(value, struct rls_limits);
} rls_limits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RLS_MAX_COUNTERS);
	__type(key, struct rls_counter_key);
	__type(value, struct rls_counter);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} rls_counters SEC(".maps");

/*
 * Per-address counters of unknown clients. Not LRU: LRU maps cannot hold a spin lock. When it
 * is full, new addresses share one counter per model (client all zero), which is stricter,
 * never looser. `rlshape load` removes the counters whose windows have all ended.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RLS_MAX_ANON_COUNTERS);
	__type(key, struct rls_counter_key);
	__type(value, struct rls_counter);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} rls_anon_counters SEC(".maps");

/*
 * Connections being followed. Not LRU: an evicted connection would lose its place in its
 * byte stream and the concurrency slot it holds. Entries go when both sides have closed or
 * either has reset; a new connection the map cannot hold is reset, never followed blind.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RLS_MAX_FLOWS);
	__type(key, struct rls_flow_key);
	__type(value, struct rls_flow);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} rls_flows SEC(".maps");

/* Outcome counts (include/rlshape.h): each (account, model)'s row, and the rows. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RLS_MAX_STATS);
	__type(key, struct rls_stats_key);
	__type(value, __u32);
} rls_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RLS_MAX_STATS);
	__type(key, __u32);
	__type(value, struct rls_stats);
} rls_stats_rows SEC(".maps");

/* Rows never handed out start at next; rows `rlshape load` gave back, zeroed, wait in free. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} rls_stats_next SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, RLS_MAX_STATS);
	__type(value, __u32);
} rls_stats_free SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RLS_NR_PACKET_EVENTS);
	__type(key, __u32);
	__type(value, __u64);
} rls_packets SEC(".maps");

/*
 * Header values a segment's end cut, by connection, until the next segment (struct
 * rls_cut_value): at most one a connection, so as many as rls_flows, and a hash that never
 * evicts, allocated as values are cut. Not an LRU: it keeps free nodes on each CPU's list
 * and, as the kernel's bpf_lru_list.c reads (not seen on this 2-CPU host), evicts once its
 * shared free list runs short, long before it is full on a host of many CPUs, and a value
 * pushed out would reset its connection.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RLS_MAX_FLOWS);
	__type(key, struct rls_flow_key);
	__type(value, struct rls_cut_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} rls_cut_values SEC(".maps");

/* The upstreams' SYN-ACKs, by connection (struct rls_handshake). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RLS_MAX_HANDSHAKES);
	__type(key, struct rls_flow_key);
	__type(value, struct rls_handshake);
} rls_handshakes SEC(".maps");

/* New connections reset for want of a flow, by connection (struct rls_reset_note). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RLS_MAX_RESET_NOTES);
	__type(key, struct rls_flow_key);
	__type(value, struct rls_reset_note);
} rls_reset_notes SEC(".maps");

/* The last bytes of each response being metered, where its token usage is. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RLS_MAX_TAILS);
	__type(key, struct rls_flow_key);
	__type(value, struct rls_response_tail);
} rls_tails SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RLS_EVENTS_BYTES);
} rls_events SEC(".maps");

/*
 * Response events the ring could not take (full: the daemon is away or behind), whole, tail
 * included, so that the daemon settles them exactly. Preallocated (~17 MiB): an insert from
 * the data path never waits for memory, and the capacity is exactly RLS_MAX_PARKED.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RLS_MAX_PARKED);
	__type(key, __u64); /* the event's id */
	__type(value, struct rls_response_event);
} rls_parked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RLS_MAX_COUNTERS);
	__type(key, struct rls_counter_key);
	__type(value, struct rls_pending);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} rls_pending SEC(".maps");

/* Events already settled: a daemon killed between settling and consuming must not settle twice. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1u << 16);
	__type(key, __u64);
	__type(value, __u8);
} rls_settled SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64); /* the last response event id handed out */
} rls_event_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rls_scratch);
} rls_scratch SEC(".maps");

/*
 * TC's own work space: TC on egress can run in process context, so it must not share the
 * per-CPU scratch of XDP, which runs in softirq context on the same CPU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rls_scratch);
} rls_tc_scratch SEC(".maps");

static __always_inline void rls_count_packet(enum rls_packet_event event)
{
	__u32 key = event;
	__u64 *count = bpf_map_lookup_elem(&rls_packets, &key);

	if (count)
		*count += 1;
}

/*
 * What a new map value must have cleared: all of every kind but a flow's memo payload (its
 * model name and limits), which is read only where the memo's load fields, cleared, say it
 * holds. Nothing else writes the fresh value's tail, so it stays as the first clear left it.
 */
#define RLS_FRESH_CLEARED \
	(__builtin_offsetof(struct rls_flow, memo) + __builtin_offsetof(struct rls_flow_memo, model_name))

_Static_assert(__builtin_offsetof(struct rls_flow, memo) + sizeof(struct rls_flow_memo) ==
		       sizeof(struct rls_flow),
	       "the memo is the flow's last field");
_Static_assert(sizeof(struct rls_counter) <= RLS_FRESH_CLEARED,
	       "a new counter is cleared whole");
/* clang writes a memset inline up to 1024 bytes on BPF (128 stores of 8); BPF has no memset. */
_Static_assert(RLS_FRESH_CLEARED <= 1024, "the fresh value is cleared in one inline memset");

/* Zeroed memory the size of any map value, to insert from (RLS_FRESH_CLEARED). */
static __always_inline void *rls_fresh_value(struct rls_scratch *s)
{
	__builtin_memset(&s->fresh, 0, RLS_FRESH_CLEARED);
	return &s->fresh;
}

static __always_inline struct rls_scratch *rls_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&rls_scratch, &zero);
}

static __always_inline struct rls_scratch *rls_tc_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&rls_tc_scratch, &zero);
}

#endif /* RLS_BPF_MAPS_H */
