// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The HTTP floor: the least an HTTP/1.1 rate limiter in XDP must do for a request start, built
 * only for `make bench`, which reports rlshape's costs as ratios to it (issue 13). It parses
 * Ethernet/IPv4/TCP, finds "Authorization: Bearer " at a line start a word at a time, hashes the
 * key with a keyed SipHash-1-3-128, looks the hash up once and decides with one GCRA
 * compare-and-swap. Nothing more: no connection check, no byte stream across segments, no model,
 * no body, no reply. It is a lower bound to measure against, not a limiter.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "siphash.h"
#include "lib/word.h"
#include "http_floor.h"

#define ETH_P_IP       0x0800
#define IPPROTO_TCP_   6
#define WORD_LOWER     0x2020202020202020ull /* ASCII letters to lower case, ':' and ' ' kept */
#define HEADER_LEN     22                    /* "authorization: bearer " */
#define GCRA_TRIES     2

/* The header, lower case, as the three words it is in memory. */
#define HEADER_TEXT    "authorization: bearer "
#define HEADER_WORD(i) rls_literal_word(HEADER_TEXT, HEADER_LEN, (i) * 8)

struct floor_scratch {
	__u8 head[FLOOR_WINDOW + 32]; /* room for the three words read at any line start */
	__u8 key[RLS_KEY_HASH_BUF];
	__u32 len;
	__u32 key_start;             /* 0: no key line found */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct floor_scratch);
} floor_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FLOOR_ACCOUNTS);
	__type(key, struct floor_key);
	__type(value, struct floor_gcra);
} floor_accounts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FLOOR_NR_COUNTS);
	__type(key, __u32);
	__type(value, __u64);
} floor_counts SEC(".maps");

const volatile __u64 floor_secret[2]; /* set by the bench before load */
const volatile __u64 floor_probe_key[2]; /* its one account's floor_key, set before load */

static __always_inline void count(__u32 what)
{
	__u64 *n = bpf_map_lookup_elem(&floor_counts, &what);

	if (n)
		(*n)++;
}

static __always_inline __u64 word_at(const struct floor_scratch *s, __u32 i)
{
	return *(const __u64 *)(const void *)&s->head[i & (FLOOR_WINDOW - 1)];
}

struct scan_ctx {
	struct floor_scratch *s;
};

/* One bpf_loop() step: the line starts in word i; stops at the key line or the data's end. */
static long scan_word(__u32 i, struct scan_ctx *c)
{
	struct floor_scratch *s = c->s;
	__u32 base = i * 8, k, q;
	__u64 lf;

	if (base >= s->len)
		return 1;
	lf = rls_word_has(word_at(s, base), '\n');
	for (k = 0; k < 8; k++) {
		if (!lf)
			break;
		q = base + rls_word_first(lf) + 1;
		lf &= lf - 1;
		if (q + HEADER_LEN > s->len)
			return 1;
		if ((word_at(s, q) | WORD_LOWER) == HEADER_WORD(0) &&
		    (word_at(s, q + 8) | WORD_LOWER) == HEADER_WORD(1) &&
		    ((word_at(s, q + 16) | WORD_LOWER) & rls_word_bytes(HEADER_LEN - 16)) ==
			    HEADER_WORD(2)) {
			s->key_start = q + HEADER_LEN;
			return 1;
		}
	}
	return 0;
}

/* The key's length: up to its line's CR, found a word at a time; 0 when there is none. */
static __always_inline __u32 key_length(const struct floor_scratch *s)
{
	__u32 start = s->key_start, j, at;
	__u64 cr;

	for (j = 0; j < RLS_KEY_HASH_BUF / 8; j++) {
		at = start + j * 8;
		if (at >= s->len)
			return 0;
		cr = rls_word_has(word_at(s, at), '\r');
		if (cr) {
			at += rls_word_first(cr);
			return at < s->len && at - start <= RLS_API_KEY_MAX ? at - start : 0;
		}
	}
	return 0;
}

/* The key into s->key a word at a time, zero past its end (SipHash's buffer contract). */
static __always_inline void copy_key(struct floor_scratch *s, __u32 len)
{
	__u32 j, left;
	__u64 w;

	for (j = 0; j < RLS_KEY_HASH_BUF / 8; j++) {
		left = len > j * 8 ? len - j * 8 : 0;
		w = left ? word_at(s, s->key_start + j * 8) : 0;
		if (left < 8)
			w &= rls_word_bytes(left);
		((__u64 *)s->key)[j] = w;
	}
}

/* GCRA: admitted while the theoretical arrival time stays within the tolerance of now. */
static __always_inline int gcra_admit(struct floor_gcra *g)
{
	__u64 now = bpf_ktime_get_ns(), tat, next;
	__u32 t;

	for (t = 0; t < GCRA_TRIES; t++) {
		tat = *(volatile __u64 *)&g->tat_ns;
		next = (tat > now ? tat : now) + g->interval_ns;
		if (next - now > g->tolerance_ns + g->interval_ns)
			return 0;
		if (__sync_val_compare_and_swap(&g->tat_ns, tat, next) == tat)
			return 1;
	}
	return 0;
}

SEC("xdp")
int http_floor(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct scan_ctx sc;
	struct floor_scratch *s;
	struct floor_key key;
	struct floor_gcra *g;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u32 zero = 0, off, len;
	__u64 secret[2];
	long frame;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP_ || ip->ihl < 5)
		return XDP_PASS;
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > data_end || tcp->doff < 5)
		return XDP_PASS;
	off = sizeof(*eth) + ip->ihl * 4 + tcp->doff * 4;
	if (data + off >= data_end)
		return XDP_PASS;
	frame = data_end - data;
	asm volatile("" : "+r"(frame)); /* no 32-bit pointer arithmetic, which BPF forbids */
	len = (__u32)frame - off;
	if (len > FLOOR_WINDOW)
		len = FLOOR_WINDOW;
	s = bpf_map_lookup_elem(&floor_scratch, &zero);
	if (!s || len < HEADER_LEN || bpf_xdp_load_bytes(ctx, off, s->head, len))
		return XDP_PASS;
	s->len = len;
	s->key_start = 0;
	sc.s = s;
	bpf_loop(FLOOR_WINDOW / 8, scan_word, &sc, 0);
	len = s->key_start ? key_length(s) : 0;
	if (!len) {
		count(FLOOR_NO_KEY);
		return XDP_PASS;
	}
	copy_key(s, len);
	secret[0] = floor_secret[0]; /* volatile reads: the value set at load, not the zeros */
	secret[1] = floor_secret[1];
	rls_siphash128_cd((const __u8 *)secret, s->key, len, key.hash, 1, 3);
	g = bpf_map_lookup_elem(&floor_accounts, &key);
	if (!g) {
		count(FLOOR_UNKNOWN);
		return XDP_PASS;
	}
	if (!gcra_admit(g)) {
		count(FLOOR_REJECTED);
		return XDP_DROP;
	}
	count(FLOOR_ADMITTED);
	return XDP_PASS;
}

/*
 * The floor's one hash lookup alone, of a key known at load: what a hash lookup costs in a
 * run of its own. Where that is dear, rlshape's three lookups weigh against the floor's one
 * (BENCHMARKS.md, "Issue 13 on a second kind of host"). XDP_DROP where the key is missing,
 * so that a run which did not find it is not counted as one that did.
 */
SEC("xdp")
int floor_lookup(struct xdp_md *ctx)
{
	__u64 key[2];

	_Static_assert(sizeof(key) == sizeof(struct floor_key), "the probe's key is a floor_key");
	key[0] = floor_probe_key[0]; /* volatile reads: the value set at load, not the zeros */
	key[1] = floor_probe_key[1];
	return bpf_map_lookup_elem(&floor_accounts, key) ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
