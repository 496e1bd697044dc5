/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the benchmark programs share: a private skeleton of the XDP program (maps never
 * pinned) with a tier table applied, frames built once by the test suite's packet builder and
 * then varied per run (sequence number, client address and port) with incremental checksum
 * updates, and readers for the program's counters.
 *
 * Addresses: the server is 198.18.0.1, clients come from 198.19.0.0/16 (RFC 2544 range only).
 */
#ifndef RLS_BENCH_H
#define RLS_BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../tests/bpf/prog_env.h"
#include "../tests/bpf/packets.h"
#include "../tests/bpf/own_netns.h"
#include "../tests/bpf/map_names.h"

#define BENCH_SERVER     "198.18.0.1"
#define BENCH_CLIENT_NET 0xc6130000u /* 198.19.0.0/16, host byte order */
#define BENCH_PORT       8000

/* The scale tables bench/scale.sh writes: account i has one key. */
#define BENCH_SCALE_ACCOUNT_FMT "acct-%07u"
#define BENCH_SCALE_KEY_FMT     "sk-scale-%07u"
#define BENCH_MODEL             "gpt-bench"

/* "PROGRAM: message" on stderr, exit 1. */
static inline __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", program_invocation_short_name);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

/* ---- libbpf: warnings only ---- */

static inline int bench_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || level == LIBBPF_INFO)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* ---- the program with a table, private to this process: struct env of prog_env.h ---- */

/* Load the programs with unpinned maps. Returns 0, or -1 with why. */
static inline int bench_env_load(struct env *e, char *why, size_t why_len)
{
	libbpf_set_print(bench_libbpf_print);
	if (env_load(e, NULL)) {
		snprintf(why, why_len, "%s", e->why);
		return -1;
	}
	return 0;
}

/*
 * bench_env_load(), then make a table live: the table from the file path, or from text (path
 * then only names it in messages). Returns 0, or -1 with why.
 */
static inline int bench_env_open(struct env *e, const char *path, const char *text,
				 char *why, size_t why_len)
{
	if (bench_env_load(e, why, why_len))
		return -1;
	if (env_apply_table(e, path, text, NULL)) {
		snprintf(why, why_len, "%s", e->why);
		return -1;
	}
	return 0;
}

/* ---- counters ---- */

/* Admitted and rejected (all reasons) of (account, model), summed over CPUs. */
static inline void bench_stats(const struct env *e, __u32 account, __u32 model,
			       __u64 *admitted, __u64 *rejected)
{
	struct rls_stats st = env_stats(e, account, model);

	*admitted = st.admitted;
	*rejected = env_rejected_total(&st);
}

/* CLOCK_TAI less this is the UTC the data path counts windows in (rls_config). */
static inline __s64 bench_tai_minus_utc_ns(const struct env *e)
{
	struct rls_config cfg;
	__u32 zero = 0, gen = 0;

	if (bpf_map_lookup_elem(e->maps.active, &zero, &gen))
		return 0;
	gen &= 1;
	if (bpf_map_lookup_elem(e->maps.config, &gen, &cfg))
		return 0;
	return cfg.tai_minus_utc_ns;
}

static inline __u64 bench_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

/* ---- frames: built once, then varied per run ---- */

/* An IPv4 TCP segment from a client to BENCH_SERVER:BENCH_PORT. */
struct bench_frame {
	uint8_t buf[TP_MAX_FRAME];
	size_t len;
	size_t payload_len;
	uint32_t seq;
	uint32_t ack;
	uint32_t client; /* host byte order */
	uint16_t sport;
};

#define BENCH_L3 14
#define BENCH_L4 (BENCH_L3 + 20)
#define BENCH_SERVER_ISN 0x70000000u /* the upstream's: every frame acknowledges its SYN */

/* timestamps: the 12 option bytes of a client that uses them (NOP, NOP, timestamps). */
static inline int bench_frame_build_opts(struct bench_frame *f, uint32_t client, uint16_t sport,
					 uint32_t seq, uint8_t flags, const void *payload,
					 size_t len, int timestamps)
{
	char saddr[INET_ADDRSTRLEN];
	struct in_addr a = { .s_addr = htonl(client) };
	struct tp_spec s = {
		.daddr = BENCH_SERVER, .sport = sport, .dport = BENCH_PORT, .seq = seq,
		.ack = BENCH_SERVER_ISN + 1, .flags = flags, .payload = payload, .len = len,
		.tcp_options = timestamps,
	};

	inet_ntop(AF_INET, &a, saddr, sizeof(saddr));
	s.saddr = saddr;
	f->len = tp_build(&s, f->buf, sizeof(f->buf));
	f->payload_len = len;
	f->seq = seq;
	f->ack = BENCH_SERVER_ISN + 1;
	f->client = client;
	f->sport = sport;
	return f->len ? 0 : -1;
}

static inline int bench_frame_build(struct bench_frame *f, uint32_t client, uint16_t sport,
				    uint32_t seq, uint8_t flags, const void *payload, size_t len)
{
	return bench_frame_build_opts(f, client, sport, seq, flags, payload, len, 0);
}

/* RFC 1624: the checksum at p after one 16-bit word changed from old to new. */
static inline void bench_csum16(uint8_t *p, uint16_t old, uint16_t new)
{
	uint32_t sum = (uint16_t)~tp_get16(p) + (uint32_t)(uint16_t)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	tp_put16(p, (uint16_t)~sum);
}

static inline void bench_csum32(uint8_t *p, uint32_t old, uint32_t new)
{
	bench_csum16(p, (uint16_t)(old >> 16), (uint16_t)(new >> 16));
	bench_csum16(p, (uint16_t)old, (uint16_t)new);
}

static inline void bench_frame_set_seq(struct bench_frame *f, uint32_t seq)
{
	tp_put32(f->buf + BENCH_L4 + 4, seq);
	bench_csum32(f->buf + BENCH_L4 + 16, f->seq, seq);
	f->seq = seq;
}

static inline void bench_frame_set_ack(struct bench_frame *f, uint32_t ack)
{
	tp_put32(f->buf + BENCH_L4 + 8, ack);
	bench_csum32(f->buf + BENCH_L4 + 16, f->ack, ack);
	f->ack = ack;
}

/* A different connection: client address (in the IP and the TCP pseudo-header) and port. */
static inline void bench_frame_set_client(struct bench_frame *f, uint32_t client, uint16_t sport)
{
	tp_put32(f->buf + BENCH_L3 + 12, client);
	bench_csum32(f->buf + BENCH_L3 + 10, f->client, client);
	bench_csum32(f->buf + BENCH_L4 + 16, f->client, client);
	tp_put16(f->buf + BENCH_L4, sport);
	bench_csum16(f->buf + BENCH_L4 + 16, f->sport, sport);
	f->client = client;
	f->sport = sport;
}

/* Connection number n: a client address in 198.19.0.0/16 and a port from 1024. */
static inline void bench_conn(uint64_t n, uint32_t *client, uint16_t *sport)
{
	*client = BENCH_CLIENT_NET + (uint32_t)((n / 60000) & 0xffff);
	*sport = (uint16_t)(1024 + n % 60000);
}
#define BENCH_NR_CONNS (65536ull * 60000ull)

/* The frame's connection as the program keys it in rls_flows (IPv4-mapped addresses). */
static inline struct rls_flow_key bench_flow_key(const struct bench_frame *f)
{
	struct rls_flow_key k = { .client_port = htons(f->sport), .server_port = htons(BENCH_PORT) };
	uint32_t client = htonl(f->client);

	k.client[10] = k.client[11] = k.server[10] = k.server[11] = 0xff;
	memcpy(k.client + 12, &client, 4);
	inet_pton(AF_INET, BENCH_SERVER, k.server + 12);
	return k;
}

/* Are both checksums right? (The data path does not check them; the bench does.) */
static inline int bench_frame_ok(const struct bench_frame *f)
{
	struct tp_parsed p;
	char why[128];

	return tp_parse(f->buf, f->len, &p, why, sizeof(why)) == 0 && p.ip_csum_ok &&
	       p.tcp_csum_ok && p.seq == f->seq && p.sport == f->sport;
}

/* One run of prog on frame f: the XDP action, and the kernel's measured ns in *ns. */
/* One run of f; the frame the program left in out (TP_MAX_FRAME bytes), out_len bytes of it. */
static inline int bench_run_out(int prog_fd, const struct bench_frame *f, uint8_t *out,
				__u32 *out_len, __u32 *ns)
{
	int err, ret = -1;

	if (ns)
		*ns = 0;
	err = env_run_timed(prog_fd, f->buf, f->len, out, TP_MAX_FRAME, out_len, NULL, 0, &ret,
			    ns);
	return err ? err : ret;
}

static inline int bench_run(int prog_fd, const struct bench_frame *f, uint8_t *out, __u32 *ns)
{
	return bench_run_out(prog_fd, f, out, NULL, ns);
}

static inline const char *bench_xdp_name(int action)
{
	const char *name = xdp_action_name(action);

	return name ? name : "error";
}

/* ---- a request as an OpenAI-compatible client sends it ---- */

/*
 * POST /v1/chat/completions with extra header lines before the key header, the key in
 * Authorization (omitted when key is NULL), the model in x-model when model_header, a
 * Content-Length of content_length, and body: all of the body, or (content_length larger) its
 * first bytes, the rest to follow in later segments.
 */
static inline size_t bench_request_head(char *buf, size_t cap, const char *extra_headers,
					const char *key, int model_header, const char *body,
					uint64_t content_length)
{
	int n = snprintf(buf, cap,
			 "POST /v1/chat/completions HTTP/1.1\r\n"
			 "Host: 198.18.0.1:8000\r\n"
			 "%s"
			 "%s%s%s"
			 "%s"
			 "Content-Type: application/json\r\n"
			 "Content-Length: %llu\r\n"
			 "\r\n"
			 "%s",
			 extra_headers ? extra_headers : "", key ? "Authorization: Bearer " : "",
			 key ? key : "", key ? "\r\n" : "",
			 model_header ? "x-model: " BENCH_MODEL "\r\n" : "",
			 (unsigned long long)content_length, body);

	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* A whole request, its JSON body (messages first, then "model", as the OpenAI Python client). */
static inline size_t bench_request(char *buf, size_t cap, const char *extra_headers,
				   const char *key, int model_header, const char *body)
{
	return bench_request_head(buf, cap, extra_headers, key, model_header, body, strlen(body));
}

#define BENCH_BODY                                                                      \
	"{\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"}," \
	"{\"role\":\"user\",\"content\":\"Write a haiku about rate limits.\"}],"            \
	"\"model\":\"" BENCH_MODEL "\",\"max_tokens\":64,\"stream\":false}"

#endif /* RLS_BENCH_H */
