/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the BPF_PROG_TEST_RUN suites share: for each test the skeleton with private maps as a
 * new load leaves them (one load kept from test to test) and a tier table applied, hand-built
 * frames on client connections, and readers of the counters.
 * Test files include it once; everything here is static inline so each takes what it uses.
 */
#ifndef RLS_TEST_HARNESS_H
#define RLS_TEST_HARNESS_H

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "prog_env.h"
#include "map_names.h"
#include "packets.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define CHECK(cond, ...)                     \
	do {                                 \
		if (!(cond))                 \
			fail_msg(__VA_ARGS__); \
	} while (0)

#define CHECK_EQ(got, want, what)                                                       \
	do {                                                                            \
		long long _g = (long long)(got), _w = (long long)(want);                \
		if (_g != _w)                                                           \
			fail_msg("%s: got %lld, expected %lld", what, _g, _w);          \
	} while (0)

/* ---- addresses (RFC 2544 / RFC 5180 benchmarking ranges only) ---- */

#define SERVER4 "198.18.0.1"
#define CLIENT4 "198.18.0.10"
#define SERVER6 "2001:2::1"
#define CLIENT6 "2001:2::10"
#define NET4_CLIENT "198.19.128.7"    /* in account netacct's 198.19.128.0/24 */
#define NET6_CLIENT "2001:2:0:80::7"  /* in account netacct's 2001:2:0:80::/64 */
#define DAY4_NET    "198.19.129.0/24" /* account dayone: rpd 1, by address */
#define DAY4_CLIENT "198.19.129.9"
#define PORT 8000

/* ---- libbpf messages: kept, shown only when loading fails ---- */

static char libbpf_log[16384];
static size_t libbpf_log_len;

static inline int libbpf_keep(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char *msg = NULL;
	size_t n, cap = sizeof(libbpf_log) - 1;
	int ret;

	if (level == LIBBPF_DEBUG)
		return 0;
	ret = vasprintf(&msg, fmt, ap);
	if (ret <= 0)
		return 0;
	n = (size_t)ret;
	if (n > cap) {
		/* The verifier log is one message: its verdict is at the end. */
		memcpy(libbpf_log, msg + n - cap, cap);
		libbpf_log_len = cap;
	} else {
		if (libbpf_log_len + n > cap) {
			size_t drop = libbpf_log_len + n - cap;

			memmove(libbpf_log, libbpf_log + drop, libbpf_log_len - drop);
			libbpf_log_len -= drop;
		}
		memcpy(libbpf_log + libbpf_log_len, msg, n);
		libbpf_log_len += n;
	}
	libbpf_log[libbpf_log_len] = '\0';
	free(msg);
	return 0;
}

static inline void show_libbpf_log(void)
{
	const char *p = libbpf_log, *nl;
	size_t shown = 0;

	/* The last ~60 lines, as TAP comments. */
	for (nl = libbpf_log + libbpf_log_len; nl > libbpf_log && shown < 60; nl--)
		if (*nl == '\n')
			shown++;
	p = nl;
	while (*p) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		if (nl > p)
			printf("# libbpf: %.*s\n", (int)(nl - p), p);
		p = *nl ? nl + 1 : nl;
	}
}

/* ---- the environment of one test: struct env, loaded as prog_env.h does ---- */

/* Parse a table written with ' for " and make it live in e's maps. */
static inline int env_apply(struct env *e, const char *quoted_table,
			    struct rls_apply_result *result)
{
	char *text, *c;
	int ret;

	text = strdup(quoted_table);
	if (!text) {
		snprintf(e->why, sizeof(e->why), "out of memory");
		return -1;
	}
	for (c = text; *c; c++)
		if (*c == '\'')
			*c = '"';
	ret = env_apply_table(e, "test_xdp.json", text, result);
	free(text);
	return ret;
}

/*
 * When set, called between opening the skeleton and loading it: the packet fuzzer makes the
 * maps it empties after every input small (emptying a hash map walks all its buckets).
 */
static int (*env_before_load)(struct rlshape_bpf *skel);

/*
 * The suite's loaded programs between its tests. A test's teardown gives its env back
 * (env_put); the next test's env_open takes it, puts its maps back as a load leaves them
 * (env_reset) and applies its own table: a new load would verify the programs again, about 2 s
 * each. Only a load made the same way is reused (env_before_load, env_load_upstream). A test
 * that opens a second env while its first is out (a second device) gets a new load.
 */
static struct env env_spare;

static inline int env_open(struct env *e, const char *quoted_table)
{
	libbpf_log_len = 0;
	libbpf_log[0] = '\0';
	if (env_spare.skel && env_spare.loaded_with == env_before_load &&
	    env_spare.loaded_upstream == env_load_upstream) {
		*e = env_spare;
		memset(&env_spare, 0, sizeof(env_spare));
		if (env_reset(e))
			return -1;
	} else if (env_load(e, env_before_load)) {
		show_libbpf_log();
		return -1;
	}
	return env_apply(e, quoted_table, NULL);
}

/* A test is done with e: keep its programs for the next test's env_open. */
static inline void env_put(struct env *e)
{
	if (!e->skel)
		return;
	env_close(&env_spare);
	env_spare = *e;
	e->skel = NULL;
	e->ready = 0;
}

static inline int setup_with(void **state, const char *table)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e)
		return -1;
	if (env_open(e, table))
		env_close(e); /* e->why says why; the test fails with it */
	*state = e;
	return 0;
}

/*
 * setup_with() on a load whose maps before_load resized first (env_before_load): a map made
 * small enough for a test to fill.
 */
static inline int setup_resized(void **state, const char *table,
				int (*before_load)(struct rlshape_bpf *skel))
{
	int ret;

	env_before_load = before_load;
	ret = setup_with(state, table);
	env_before_load = NULL;
	return ret;
}

/* rls_flows with room for one connection: full at the second. */
static inline int one_flow(struct rlshape_bpf *skel)
{
	return bpf_map__set_max_entries(skel->maps.rls_flows, 1);
}

static inline int teardown(void **state)
{
	struct env *e = *state;

	if (e) {
		env_put(e);
		free(e);
	}
	*state = NULL;
	return 0;
}

static inline struct env *need_env(void **state)
{
	struct env *e = *state;

	if (!e)
		fail_msg("no test environment (out of memory)");
	if (!e->ready)
		fail_msg("cannot load and configure the XDP program: %s", e->why);
	return e;
}

/* ---- reading the maps ---- */

static inline int nr_cpus(void)
{
	return rls_nr_cpus();
}

/*
 * A worker thread of a test that drives a program from two CPUs at once: pinned to cpu, it
 * waits for *go (1: run, -1: give up). False, and why, where it must not run.
 */
static inline bool pin_and_wait(int cpu, const int *go, char *why, size_t why_len)
{
	cpu_set_t set;
	int err;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (err)
		snprintf(why, why_len, "pthread_setaffinity_np(cpu %d): %s", cpu, strerror(err));
	/* Both workers start together. */
	while (!__atomic_load_n(go, __ATOMIC_ACQUIRE))
		sched_yield();
	return !err && __atomic_load_n(go, __ATOMIC_ACQUIRE) > 0;
}

static inline struct rls_stats stats_of(struct env *e, __u32 account, __u32 model)
{
	return env_stats(e, account, model);
}

static inline __u64 rejected_total(const struct rls_stats *s)
{
	return env_rejected_total(s);
}

static inline __u64 packets_of(struct env *e, __u32 event)
{
	return env_packets(e, event);
}

static inline __u32 account_id(struct env *e, const char *name)
{
	__u32 id = map_account_id(&e->maps, name);

	CHECK(id != 0, "account %s has no id in rls_accounts after rls_apply_table()", name);
	return id;
}

static inline __u32 model_id(struct env *e, const char *name)
{
	__u32 id = map_model_id(&e->maps, name);

	CHECK(id != RLS_MODEL_OTHER && id != RLS_MODEL_HIDDEN,
	      "model %s has no id in rls_models after rls_apply_table()", name);
	return id;
}

/* ---- sending ---- */

static inline const char *xdp_name(int action)
{
	const char *name = xdp_action_name(action);

	return name ? name : "unknown action";
}

/* One client connection: the client's next sequence number and what it acknowledges. */
struct conn {
	int ipv6, vlan, tcp_options;
	uint16_t tci;
	const char *client, *server;
	uint16_t sport, dport;
	uint32_t seq, ack;
	int silent_upstream; /* conn_send does not answer admitted requests */
	uint16_t outer_tpid, outer_tci; /* a second, outer VLAN tag when outer_tpid is set */
	int ip_options;                 /* IPv4 option words */
	const char *ipv6_chain;         /* IPv6 extension headers, as in tp_spec */
};

static inline struct conn conn4(uint16_t sport)
{
	struct conn c = { .client = CLIENT4, .server = SERVER4, .sport = sport, .dport = PORT };

	c.seq = 0x10000000u + sport * 7919u;
	c.ack = 0x70000000u + sport * 104729u;
	return c;
}

static inline struct conn conn6(uint16_t sport)
{
	struct conn c = conn4(sport);

	c.ipv6 = 1;
	c.client = CLIENT6;
	c.server = SERVER6;
	return c;
}

struct result {
	int action;
	struct tp_spec spec; /* what was sent (payload pointer not kept) */
	uint8_t in[TP_MAX_FRAME];
	size_t in_len;
	uint8_t out[TP_MAX_FRAME];
	uint32_t out_len;
};

static inline int run_frame(struct env *e, const uint8_t *in, size_t in_len, uint8_t *out,
			    uint32_t *out_len)
{
	int err, ret = -1;

	err = env_run(e->prog_fd, in, in_len, out, TP_MAX_FRAME, out_len, NULL, 0, &ret);
	if (err)
		fail_msg("bpf_prog_test_run_opts on a %zu-byte frame: %s", in_len, strerror(-err));
	return ret;
}

static inline struct tp_spec spec_of(const struct conn *c, const void *payload, size_t len,
			      uint8_t flags)
{
	struct tp_spec s = {
		.ipv6 = c->ipv6, .vlan = c->vlan, .vlan_tci = c->tci, .saddr = c->client,
		.daddr = c->server, .sport = c->sport, .dport = c->dport, .seq = c->seq,
		.ack = c->ack, .flags = flags, .payload = payload, .len = len,
		.tcp_options = c->tcp_options, .outer_tpid = c->outer_tpid,
		.outer_tci = c->outer_tci, .ip_options = c->ip_options, .ipv6_chain = c->ipv6_chain,
	};

	return s;
}

static inline int send_spec(struct env *e, const struct tp_spec *s, struct result *r)
{
	r->spec = *s;
	r->spec.payload = NULL;
	r->in_len = tp_build(s, r->in, sizeof(r->in));
	CHECK(r->in_len > 0, "test bug: cannot build the frame");
	r->action = run_frame(e, r->in, r->in_len, r->out, &r->out_len);
	return r->action;
}

/* Send payload on c (ACK|PSH unless flags), and advance c->seq past it. */
/* The connection's key in rls_flows, as the program makes it. */
static inline struct rls_flow_key conn_flow_key(const struct conn *c)
{
	struct rls_flow_key k = { .client_port = htons(c->sport), .server_port = htons(c->dport) };

	if (c->ipv6) {
		inet_pton(AF_INET6, c->client, k.client);
		inet_pton(AF_INET6, c->server, k.server);
	} else {
		k.client[10] = k.client[11] = k.server[10] = k.server[11] = 0xff;
		inet_pton(AF_INET, c->client, k.client + 12);
		inet_pton(AF_INET, c->server, k.server + 12);
	}
	return k;
}

/*
 * The upstream TC would see in a real deployment, played here: every admitted request is
 * answered at once with 100 bytes, which the client then acknowledges. (A 429 waits until the
 * upstream has answered what was admitted before it: rls_may_answer().)
 */
static inline void conn_upstream_answers(struct env *e, struct conn *c)
{
	struct rls_flow_key k = conn_flow_key(c);
	struct rls_flow f;

	if (bpf_map_lookup_elem(e->maps.flows, &k, &f) || !f.admitted_any ||
	    (f.server_seen && f.server_next != f.admitted_mark))
		return;
	f.server_next = (f.server_seen ? f.server_next : c->ack) + 100;
	f.server_seen = 1;
	if (bpf_map_update_elem(e->maps.flows, &k, &f, BPF_EXIST) == 0)
		c->ack = f.server_next;
}

static inline int conn_send(struct env *e, struct conn *c, const char *payload, size_t len,
		     uint8_t flags, struct result *r)
{
	struct tp_spec s = spec_of(c, payload, len, flags);

	send_spec(e, &s, r);
	c->seq += (uint32_t)len;
	if (!c->silent_upstream)
		conn_upstream_answers(e, c);
	return r->action;
}

/* A request with the given extra header lines ("name: value\r\n" each) and optional body. */
static inline size_t http_request(char *buf, size_t cap, const char *headers, const char *body)
{
	int n;

	if (body)
		n = snprintf(buf, cap,
			     "POST /v1/chat/completions HTTP/1.1\r\n"
			     "Host: gw.test\r\n"
			     "%s"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %zu\r\n"
			     "\r\n"
			     "%s",
			     headers, strlen(body), body);
	else
		n = snprintf(buf, cap,
			     "GET /v1/models HTTP/1.1\r\n"
			     "Host: gw.test\r\n"
			     "%s"
			     "Accept: */*\r\n"
			     "\r\n",
			     headers);
	CHECK(n > 0 && (size_t)n < cap, "test bug: request does not fit");
	return (size_t)n;
}

#define BEARER(key) "Authorization: Bearer " key "\r\n"

static inline void expect_action(const struct result *r, int want, const char *what)
{
	if (r->action != want)
		fail_msg("%s: program returned %s (%d), expected %s", what, xdp_name(r->action),
			 r->action, xdp_name(want));
}

/* A passed packet must leave the program byte for byte as it came. */
static inline void expect_untouched(const struct result *r, const char *what)
{
	CHECK(r->out_len == r->in_len && !memcmp(r->in, r->out, r->in_len),
	      "%s: passed packet was modified (%zu bytes in, %u out)", what, r->in_len,
	      r->out_len);
}

static inline void same_bytes(const uint8_t *a, const uint8_t *b, size_t n, const char *what)
{
	CHECK(!memcmp(a, b, n), "%s differ", what);
}

/*
 * The reset to the client, over its segment: turned around, RST|ACK at the number the client
 * acknowledged (the one it expects: RFC 5961), acknowledging the whole segment, no payload,
 * checksums right.
 */
static inline void check_client_reset(const struct result *r, const char *what)
{
	struct tp_parsed in, p;
	char why[256];

	expect_action(r, XDP_TX, what);
	CHECK(tp_parse(r->in, r->in_len, &in, why, sizeof(why)) == 0, "%s: client segment: %s",
	      what, why);
	CHECK(tp_parse(r->out, r->out_len, &p, why, sizeof(why)) == 0, "%s: the reset: %s", what,
	      why);
	CHECK_EQ(p.flags, TP_RST | TP_ACK, "the client's reset's flags (RST|ACK)");
	CHECK_EQ(p.seq, in.ack, "the client's reset's seq (the client's ack)");
	CHECK_EQ(p.ack, (uint32_t)(in.seq + in.len), "the client's reset's ack (past the segment)");
	CHECK_EQ(p.len, 0, "the client's reset's payload length");
	CHECK(p.ip_csum_ok, "%s: the reset's IPv4 header checksum is wrong", what);
	CHECK(p.tcp_csum_ok, "%s: the reset's TCP checksum is wrong", what);
	CHECK_EQ(p.ip_hdr_len, p.ipv6 ? 40 : 20, "the client's reset's IP header (no options)");
	CHECK_EQ(p.vlan, in.vlan, "the client's reset's VLAN tags");
	same_bytes(p.saddr, in.daddr, p.ipv6 ? 16 : 4, "the reset's source and the segment's destination");
	same_bytes(p.daddr, in.saddr, p.ipv6 ? 16 : 4, "the reset's destination and the segment's source");
	CHECK_EQ(p.sport, in.dport, "the client's reset's source port");
	CHECK_EQ(p.dport, in.sport, "the client's reset's destination port");
	same_bytes(p.dmac, in.smac, 6, "the reset's destination MAC and the segment's source MAC");
}

/* The reset toward the upstream: the rejected request's seq, from the client's addresses. */
static inline void check_upstream_reset(const struct result *r, const struct conn *c,
					uint32_t request_seq)
{
	struct tp_parsed in, p;
	char why[256];

	CHECK(tp_parse(r->in, r->in_len, &in, why, sizeof(why)) == 0, "client segment: %s", why);
	CHECK(tp_parse(r->out, r->out_len, &p, why, sizeof(why)) == 0, "the RST frame: %s", why);
	CHECK_EQ(p.flags, TP_RST, "reset flags (RST only)");
	CHECK_EQ(p.seq, request_seq, "reset seq (the rejected request's seq)");
	CHECK_EQ(p.len, 0, "reset payload length");
	CHECK(p.ip_csum_ok, "reset IPv4 header checksum is wrong");
	CHECK(p.tcp_csum_ok, "reset TCP checksum is wrong");
	/* Still from the client to the server: it is meant for the upstream. */
	same_bytes(p.saddr, in.saddr, c->ipv6 ? 16 : 4, "reset source address");
	same_bytes(p.daddr, in.daddr, c->ipv6 ? 16 : 4, "reset destination address");
	CHECK_EQ(p.sport, in.sport, "reset source port");
	CHECK_EQ(p.dport, in.dport, "reset destination port");
	same_bytes(p.dmac, in.dmac, 6, "reset destination MAC");
}

/* ---- waiting out window boundaries ---- */

static inline __u64 utc_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * 1000 + (__u64)ts.tv_nsec / 1000000;
}

/* Make sure at least need_ms remain before the current period_s window ends. */
static inline void leave_room_in_window(__u64 period_s, __u64 need_ms)
{
	__u64 now = utc_ms(), period = period_s * 1000, left = period - now % period;

	if (left < need_ms)
		usleep((useconds_t)((left + 20) * 1000));
}

/*
 * Keep this thread on the CPU it is on, *was its CPUs before: per-CPU state the programs keep
 * from run to run (a BPF_PROG_TEST_RUN runs on the caller's CPU) is then the same one.
 */
static inline void stay_on_this_cpu(cpu_set_t *was)
{
	cpu_set_t one;
	int cpu = sched_getcpu();

	CHECK(cpu >= 0 && sched_getaffinity(0, sizeof(*was), was) == 0, "which CPU: %s",
	      strerror(errno));
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	CHECK(sched_setaffinity(0, sizeof(one), &one) == 0, "staying on CPU %d: %s", cpu,
	      strerror(errno));
}

static inline void back_to_cpus(const cpu_set_t *was)
{
	CHECK(sched_setaffinity(0, sizeof(*was), was) == 0, "back to the CPUs: %s", strerror(errno));
}

#endif /* RLS_TEST_HARNESS_H */
