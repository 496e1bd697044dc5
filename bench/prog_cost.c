// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * prog_cost: what rlshape's XDP program costs per packet, measured by the kernel itself with
 * BPF_PROG_TEST_RUN on hand-built frames, against a no-op XDP program (the floor).
 *
 * Each case runs as a series of single runs (bpf_prog_test_run_opts with repeat = 1), and the
 * frame is changed between runs where the program keeps state: a request start gets a new
 * sequence number every run (the same seq on a connection is a retransmission, neither parsed
 * nor charged again), and a rejected request also gets a new connection every run (new data
 * on a connection whose 429 closed it is dropped as "data after the 429"). On a connection a
 * 429 kept open, each run's request acknowledges the last run's 429, as the client's next
 * request does: the 429 keeps the connection every time, and the program renumbers the
 * request before reading it (bpf/lib/seqadj.h). The figure is
 * opts.duration, the kernel's own time for the one run: no syscall, no copying. Its median
 * over the runs of a round is that round's figure; the report gives the median over rounds,
 * and the ratio to the floor measured the same way in the same round.
 *
 * The program follows each connection's byte stream (bpf/lib/http_request.h): a segment is read
 * only where the stream is, so every case sends its connection's next bytes in order. A body
 * segment continues a request whose head (with a large Content-Length) went first, untimed;
 * before the JSON scan's limit (1 MiB of body) the case moves to a fresh connection and a new
 * head, so that every timed byte is scanned. Two sizes of body segment give the scan's cost
 * per byte (the slope between them).
 *
 * The stateless cases (the floor, the HTTP floor's lookup alone, a pure ACK) are also measured
 * with one call of .repeat = N, where the kernel reruns the program on the same buffer: the cost
 * of the program without the per-run timer reads, and without a syscall between runs (the gap
 * between the two ways is what a run of its own adds on the host).
 *
 * The process runs in a network namespace of its own: the program looks every segment's
 * connection up among the local sockets, and with none there it follows the connection as
 * routed. A listener of the machine's on port 8000 would change the measured path.
 *
 *   prog_cost [--runs N] [--rounds R] [--repeat N] [--cases LIST] [--summary FILE]
 *   prog_cost --table FILE --accounts N [...]   a table of bench/scale.sh
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <sched.h>

#include "bench.h"
#include "data_path.h"
#include "xdp_pass.skel.h"
#include "http_floor.skel.h"
#include "http_floor.h"
#include "siphash.h"

#define MAX_ROUNDS 64
#define HIST_NS    100000 /* per-run times above 100 us are counted, not binned */
#define MAX_FRAMES 1024   /* distinct keys cycled through with --table */

#define KEY_ADMIT "sk-bench-admit-0001"
#define KEY_DENY  "sk-bench-denied-0001"
#define KEY_SLOTS "sk-bench-slots-0001"

/*
 * The body cases. A head declares a body longer than the scan ever reads on one connection, so
 * no request ends during the timed runs; its first body bytes open the JSON up to the messages
 * array, and every segment after it holds whole message objects.
 */
#define BODY_PREFIX        "{\"messages\":["
#define BODY_SCAN_MAX      (1u << 20) /* RLS_BODY_SCAN_MAX (bpf/lib/http_request.h) */
#define BODY_DECLARED      (4ull * BODY_SCAN_MAX)
#define BODY_BIG           1400 /* a full segment's payload, less TCP options */
#define BODY_SMALL         256
#define BODY_CONN_BASE     10000000ull /* connection numbers far from the other cases' */
#define BODY_CONNS_EACH    10000000ull

/* Limits no bench run reaches, with every window and the smoothing in play. */
#define BENCH_LIMITS_WINDOWS \
	"\"rpm\": 1000000000, \"burst\": 1000000000, \"rph\": 4000000000, \"rpd\": 4000000000"
#define BENCH_LIMITS "{" BENCH_LIMITS_WINDOWS "}"
/* The same, and one request in flight at a time: a slot taken at admission, given back at the
 * end. */
#define BENCH_LIMITS_SLOTS "{" BENCH_LIMITS_WINDOWS ", \"concurrency\": 1}"

static const char builtin_table[] =
	"{\"listen\": {\"ports\": [8000]},\n"
	" \"identify\": {\"key_headers\": [\"authorization\", \"x-api-key\", \"api-key\"],\n"
	"              \"model_header\": \"x-model\"},\n"
	" \"tiers\": {\"bench\": {\"*\": " BENCH_LIMITS ", \"" BENCH_MODEL "\": " BENCH_LIMITS "},\n"
	"           \"slots\": {\"*\": " BENCH_LIMITS_SLOTS ", \"" BENCH_MODEL "\": "
	BENCH_LIMITS_SLOTS "},\n"
	"           \"spent\": {\"*\": {\"rpd\": 1}}},\n"
	" \"accounts\": {\"bench\": {\"tier\": \"bench\", \"keys\": [\"" KEY_ADMIT "\"]},\n"
	"              \"slots\": {\"tier\": \"slots\", \"keys\": [\"" KEY_SLOTS "\"]},\n"
	"              \"spent\": {\"tier\": \"spent\", \"keys\": [\"" KEY_DENY "\"]}}}\n";

enum case_id {
	C_FLOOR, C_HTTP_FLOOR, C_FLOOR_LOOKUP, C_ACK, C_BODY, C_BODY_SMALL, C_REQ, C_REQ_400,
	C_REQ_1K, C_BODY_MODEL, C_GET, C_REQ_SLOT, C_REJECT, C_REJECT_NEW, C_REJECT_KEPT,
	C_REJECT_KEPT_TS, NR_CASES
};

/* The program a case runs on. */
enum case_prog {
	PROG_RLSHAPE,
	PROG_NOOP,       /* the no-op XDP program: the cost of a run itself */
	PROG_HTTP_FLOOR, /* bench/floor/http_floor.bpf.c: the least an HTTP limiter does */
	PROG_FLOOR_LOOKUP, /* the same object's floor_lookup: the HTTP floor's one lookup alone */
};

/* The request cases' header block (request line to the empty line) for the HTTP floor's ratio. */
#define HEAD_400 400
/* The HTTP floor's secret: any; the bench hashes its one key with the same. */
static const __u64 floor_secret[2] = { 0x736563726574206full, 0x6620746865206666ull };

struct bcase {
	const char *name;
	const char *what;
	int prog;        /* enum case_prog */
	int expect;      /* XDP action every run must return */
	int vary_seq;    /* a new request start every run */
	int vary_conn;   /* a new connection every run */
	int stateless;   /* also measured with .repeat */
	int forget;      /* delete the run's flow after it (a new connection each run) */
	size_t body;     /* a body segment of this many bytes, in order (see body_next) */
	int kept;        /* each run's request acknowledges the last run's 429 (kept_acknowledge) */
	int timestamps;  /* the frames carry the timestamp option, as Linux clients send */
	int handshake;   /* TC saw each new connection's SYN-ACK (note_handshake()) */
	int selected;
	struct bench_frame *frames;
	size_t nframes, next;
	uint64_t conn_next;
	/* body cases: the head that opens each connection, body bytes sent on it since */
	struct bench_frame *head;
	uint64_t body_sent, heads;
	uint64_t off_path;  /* rounds whose counters or flow show another path */
	char off_why[256];
	/* per round */
	double p50[MAX_ROUNDS], p90[MAX_ROUNDS], mean[MAX_ROUNDS], rep[MAX_ROUNDS];
	double path[MAX_ROUNDS]; /* --data-path: ns per run in the receive loop */
	uint64_t unexpected;
	int last_bad_action;
};

static struct bcase cases[NR_CASES] = {
	[C_FLOOR] = { "floor", "no-op XDP program (XDP_PASS) on the small request frame", PROG_NOOP,
		      XDP_PASS, 1, 0, 1 },
	[C_HTTP_FLOOR] = { "http_floor", "the HTTP floor (bench/floor): 400-byte header block, "
			   "Bearer key found a word at a time, SipHash-1-3, one lookup, GCRA: admitted",
			   PROG_HTTP_FLOOR, XDP_PASS, 0, 0, 1 },
	[C_FLOOR_LOOKUP] = { .name = "floor_lookup",
			     .what = "the HTTP floor's one hash lookup alone (bench/floor): what a "
				     "hash lookup costs in a run of its own",
			     .prog = PROG_FLOOR_LOOKUP, .expect = XDP_PASS, .stateless = 1 },
	[C_ACK] = { "ack", "pure ACK (no payload) on a followed connection, where its stream is", 0,
		    XDP_PASS, 0, 0, 1 },
	[C_BODY] = { "body", "body segment of 1400 bytes of JSON messages, in order: scanned", 0,
		     XDP_PASS, 0, 0, 0, 0, BODY_BIG },
	[C_BODY_SMALL] = { "body_small", "body segment of 256 bytes of JSON messages, in order: "
			   "scanned", 0, XDP_PASS, 0, 0, 0, 0, BODY_SMALL },
	[C_REQ] = { "request", "request start, small headers, key + x-model: admitted", 0,
		    XDP_PASS, 1, 0, 0 },
	[C_REQ_400] = { "request_400", "request start, a 400-byte header block (the HTTP floor's "
			"frame), key + x-model: admitted", 0, XDP_PASS, 1, 0, 0 },
	[C_REQ_1K] = { "request_1k", "request start, 1 KB of other headers before the key", 0,
		       XDP_PASS, 1, 0, 0 },
	[C_BODY_MODEL] = { "body_model", "request start, model only in the JSON body (after messages)",
			   0, XDP_PASS, 1, 0, 0 },
	[C_GET] = { "get", "GET with a key, no body (charged to the tier's \"*\"): admitted", 0,
		    XDP_PASS, 1, 0, 0 },
	/* The same connection, a new request start every run: each gives back the last one's slot. */
	[C_REQ_SLOT] = { "request_slot", "request start on a keep-alive connection under concurrency "
			 "1: the last request's slot given back, a new one taken", 0, XDP_PASS, 1, 0, 0 },
	/* Its flow is deleted after each run: 1,000,000 connections would fill rls_flows. */
	[C_REJECT] = { "rejected", "request start over its limit: rewritten into the 429 (XDP_TX)", 0,
		       XDP_TX, 1, 1, 0, 1 },
	/*
	 * The same, on connections whose upstream's SYN-ACK TC saw, as on a host where TC runs
	 * from before the connections: the first request's 429 keeps the connection.
	 */
	[C_REJECT_NEW] = { .name = "rejected_new",
			   .what = "request start over its limit on a new connection whose "
				   "handshake TC saw: rewritten into a 429 that keeps it (XDP_TX)",
			   .expect = XDP_TX, .vary_seq = 1, .vary_conn = 1, .forget = 1,
			   .handshake = 1 },
	/* One connection, whose upstream TC saw answer the handshake: every request refused. */
	[C_REJECT_KEPT] = { .name = "rejected_kept",
			    .what = "request start over its limit on a connection a 429 kept open: "
				    "renumbered, rewritten into a 429 that keeps it (XDP_TX)",
			    .expect = XDP_TX, .vary_seq = 1, .kept = 1 },
	/* The same with the timestamp option on every segment, which the 429 echoes. */
	[C_REJECT_KEPT_TS] = { .name = "rejected_kept_ts",
			       .what = "rejected_kept with the timestamp option on its segments, as "
				       "a Linux client sends them: echoed in the 429",
			       .expect = XDP_TX, .vary_seq = 1, .kept = 1, .timestamps = 1 },
};

static uint8_t out_buf[TP_MAX_FRAME];
static uint32_t hist[HIST_NS];

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_ROUNDS];

	if (n <= 0)
		return 0;
	memcpy(s, v, sizeof(*v) * (size_t)n);
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* The value below which a fraction q of the runs fall (runs of HIST_NS or more count as
 * HIST_NS). */
static double hist_quantile(uint64_t total, double q)
{
	uint64_t want = (uint64_t)(q * (double)total), seen = 0;
	uint32_t i;

	if ((double)want < q * (double)total || want == 0)
		want++;
	for (i = 0; i < HIST_NS; i++) {
		seen += hist[i];
		if (seen >= want)
			return i;
	}
	return HIST_NS;
}

static void one_frame(struct bcase *c, uint64_t conn, uint32_t seq, uint8_t flags,
		      const char *payload, size_t len)
{
	uint32_t client;
	uint16_t sport;

	if (!len && payload)
		die("a request does not fit its buffer");
	c->frames = calloc(1, sizeof(*c->frames));
	if (!c->frames)
		die("out of memory");
	c->nframes = 1;
	bench_conn(conn, &client, &sport);
	if (bench_frame_build_opts(c->frames, client, sport, seq, flags, payload, len,
				   c->timestamps))
		die("cannot build the %s frame", c->name);
	c->conn_next = conn + 1;
}

/* About 1 KB of what real clients send before the key: user agent, tracing, cookies. */
static void other_headers(char *buf, size_t cap, size_t want)
{
	static const char *const lines[] = {
		"User-Agent: OpenAI/Python 1.54.4\r\n",
		"Accept: application/json\r\n",
		"Accept-Encoding: gzip, deflate\r\n",
		"Connection: keep-alive\r\n",
		"X-Stainless-Lang: python\r\n",
		"X-Stainless-Package-Version: 1.54.4\r\n",
		"X-Stainless-OS: Linux\r\n",
		"X-Stainless-Arch: x64\r\n",
		"X-Stainless-Runtime: CPython\r\n",
		"X-Stainless-Runtime-Version: 3.11.2\r\n",
		"X-Stainless-Retry-Count: 0\r\n",
		"X-Request-Id: 5f1c9e0a-44b2-4d8e-9a57-2c6f0e1b7d33\r\n",
		"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n",
		"tracestate: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\r\n",
		"X-Forwarded-For: 198.19.200.1, 198.19.200.2\r\n",
		"X-Forwarded-Proto: http\r\n",
	};
	size_t len = 0, i = 0;

	buf[0] = '\0';
	while (len < want) {
		const char *l = lines[i % (sizeof(lines) / sizeof(lines[0]))];
		size_t n = strlen(l);

		if (i >= sizeof(lines) / sizeof(lines[0])) {
			/* Fill the rest with a cookie of the exact length. */
			size_t room = want - len, pad;

			if (room < sizeof("Cookie: s=\r\n"))
				room = sizeof("Cookie: s=\r\n");
			pad = room - (sizeof("Cookie: s=\r\n") - 1);
			if (len + room >= cap)
				die("header buffer too small");
			len += (size_t)snprintf(buf + len, cap - len, "Cookie: s=");
			for (; pad; pad--)
				buf[len++] = "0123456789abcdef"[pad % 16];
			len += (size_t)snprintf(buf + len, cap - len, "\r\n");
			break;
		}
		if (len + n >= cap)
			die("header buffer too small");
		memcpy(buf + len, l, n + 1);
		len += n;
		i++;
	}
}

/*
 * size bytes of a chat history inside "messages": user and assistant messages with long
 * contents (prose, with the \n and \" escapes real ones have), as many as fit, the last one cut
 * to fit exactly. A segment ends where a message object does, so the JSON scan is in the same
 * place (in the array, between messages) after each one, and the same bytes can follow again.
 */
static void body_segment(char *buf, size_t size)
{
	static const char text[] =
		"The gateway hummed through the night. Requests arrived in bursts, each one "
		"carrying a key and a model, and each one was counted before it reached the GPUs.\\n"
		"\\nShe asked the assistant: \\\"Why was my request refused?\\\" and it answered "
		"that the account had spent its tokens for the minute, and that the header said when "
		"to try again.\\n- first, read the retry-after header;\\n- then wait that long;\\n"
		"- and only then send the request again, unchanged.\\n";
	static const char *const opens[] = { "{\"role\":\"user\",\"content\":\"",
					     "{\"role\":\"assistant\",\"content\":\"" };
	static const char close_obj[] = "\"},";
	size_t len = 0, t = 0, m, k, room, want;

	for (m = 0; len < size; m++) {
		const char *open = opens[m % 2];
		size_t over = strlen(open) + sizeof(close_obj) - 1;

		room = size - len;
		if (room < over + 16)
			die("bench bug: %zu bytes left for a message", room);
		/* Contents of 300 to 560 bytes; the last message takes what is left. */
		want = 300 + (m * 131) % 260;
		if (room - over < want + over + 16)
			want = room - over;
		memcpy(buf + len, open, strlen(open));
		len += strlen(open);
		for (k = 0; k < want; k++, t++)
			buf[len + k] = text[t % (sizeof(text) - 1)];
		/* A content cut after a backslash would escape its closing quote. */
		if (buf[len + want - 1] == '\\')
			buf[len + want - 1] = ' ';
		len += want;
		memcpy(buf + len, close_obj, sizeof(close_obj) - 1);
		len += sizeof(close_obj) - 1;
	}
	if (len != size)
		die("bench bug: a body segment of %zu bytes, not %zu", len, size);
}

/* A body case: its segment, and the head that opens each of its connections. */
static void body_frames(struct bcase *c, uint64_t conn, const char *key)
{
	char req[TP_MAX_FRAME], seg[BODY_BIG];
	size_t len;

	body_segment(seg, c->body);
	len = bench_request_head(req, sizeof(req), NULL, key, 1, BODY_PREFIX, BODY_DECLARED);
	one_frame(c, conn, 1000, 0, req, len);
	c->head = c->frames;
	one_frame(c, conn, 1000 + (uint32_t)len, 0, seg, c->body);
}

/* The length of a request's header block: to its empty line. */
static size_t head_len(const char *req)
{
	const char *end = strstr(req, "\r\n\r\n");

	if (!end)
		die("a bench request without a header block");
	return (size_t)(end - req) + 4;
}

/* A request whose header block is exactly want bytes: other headers before the key. */
static size_t request_with_head(char *req, size_t cap, size_t want)
{
	size_t len = bench_request(req, cap, NULL, KEY_ADMIT, 1, BENCH_BODY), extra, have, pad;
	char hdrs[1200];

	if (head_len(req) + 64 + sizeof("Cookie: s=\r\n") > want)
		die("the small request's head is %zu bytes: no room for others in %zu", head_len(req),
		    want);
	extra = want - head_len(req);
	/* Real headers to within 64 bytes of the size, then a cookie of the exact rest. */
	other_headers(hdrs, sizeof(hdrs), extra - 64);
	have = strlen(hdrs);
	pad = extra - have - (sizeof("Cookie: s=\r\n") - 1);
	if (have + pad + sizeof("Cookie: s=\r\n") > sizeof(hdrs))
		die("header buffer too small");
	have += (size_t)sprintf(hdrs + have, "Cookie: s=");
	memset(hdrs + have, 'c', pad);
	strcpy(hdrs + have + pad, "\r\n");
	len = bench_request(req, cap, hdrs, KEY_ADMIT, 1, BENCH_BODY);
	if (head_len(req) != want)
		die("a head of %zu bytes, not %zu", head_len(req), want);
	return len;
}

static void build_frames(const char *table, unsigned nr_accounts, unsigned nr_keys)
{
	char req[TP_MAX_FRAME], hdrs[1200];
	size_t len;
	unsigned i;

	/* The floor runs on the same frame as the small request. */
	len = bench_request(req, sizeof(req), NULL, KEY_ADMIT, 1, BENCH_BODY);
	one_frame(&cases[C_FLOOR], 0, 1000, 0, req, len);
	one_frame(&cases[C_FLOOR_LOOKUP], 0, 1000, 0, req, len);
	/* The ACK's connection carries a request first (warm_up): the ACK comes after it. */
	one_frame(&cases[C_ACK], 1, 5000 + (uint32_t)len, TP_ACK, NULL, 0);
	body_frames(&cases[C_BODY], BODY_CONN_BASE, table ? NULL : KEY_ADMIT);
	body_frames(&cases[C_BODY_SMALL], BODY_CONN_BASE + BODY_CONNS_EACH, table ? NULL : KEY_ADMIT);
	if (!table) {
		one_frame(&cases[C_REQ], 3, 1000, 0, req, len);
		other_headers(hdrs, sizeof(hdrs), 1024);
		if (strlen(hdrs) != 1024)
			die("other headers are %zu bytes, not 1024", strlen(hdrs));
		len = bench_request(req, sizeof(req), hdrs, KEY_ADMIT, 1, BENCH_BODY);
		one_frame(&cases[C_REQ_1K], 4, 1000, 0, req, len);
		len = bench_request(req, sizeof(req), NULL, KEY_ADMIT, 0, BENCH_BODY);
		one_frame(&cases[C_BODY_MODEL], 5, 1000, 0, req, len);
		len = request_with_head(req, sizeof(req), HEAD_400);
		one_frame(&cases[C_REQ_400], 7, 1000, 0, req, len);
		one_frame(&cases[C_HTTP_FLOOR], 8, 1000, 0, req, len);
		len = (size_t)snprintf(req, sizeof(req), "GET /v1/models HTTP/1.1\r\n"
				       "Host: 198.18.0.1:8000\r\nAuthorization: Bearer " KEY_ADMIT
				       "\r\nAccept: application/json\r\n\r\n");
		one_frame(&cases[C_GET], 9, 1000, 0, req, len);
		len = bench_request(req, sizeof(req), NULL, KEY_SLOTS, 1, BENCH_BODY);
		one_frame(&cases[C_REQ_SLOT], 6, 1000, 0, req, len);
		len = bench_request(req, sizeof(req), NULL, KEY_DENY, 1, BENCH_BODY);
		one_frame(&cases[C_REJECT], 1000, 1000, 0, req, len);
		/* Far from rejected's connections, which must find no handshake. */
		one_frame(&cases[C_REJECT_NEW], BENCH_NR_CONNS / 2, 1000, 0, req, len);
		one_frame(&cases[C_REJECT_KEPT], 11, 1000, 0, req, len);
		one_frame(&cases[C_REJECT_KEPT_TS], 12, 1000, 0, req, len);
		return;
	}
	/* A scale table: cycle through keys spread evenly over its accounts, a connection each. */
	cases[C_REQ].nframes = nr_keys < nr_accounts ? nr_keys : nr_accounts;
	cases[C_REQ].frames = calloc(cases[C_REQ].nframes, sizeof(struct bench_frame));
	if (!cases[C_REQ].frames)
		die("out of memory");
	for (i = 0; i < cases[C_REQ].nframes; i++) {
		unsigned account = (unsigned)((uint64_t)i * nr_accounts / cases[C_REQ].nframes);
		char key[64];
		uint32_t client;
		uint16_t sport;

		snprintf(key, sizeof(key), BENCH_SCALE_KEY_FMT, account);
		len = bench_request(req, sizeof(req), NULL, key, 1, BENCH_BODY);
		bench_conn(100 + i, &client, &sport);
		if (!len || bench_frame_build(&cases[C_REQ].frames[i], client, sport, 1000, 0, req, len))
			die("cannot build the request frame for key %s", key);
	}
}

/*
 * A big table into the private skeleton. rls_apply_table() finds each account's id with a
 * walk over rls_accounts (map_account_id(): BPF_MAP_GET_NEXT_KEY through the whole map, for
 * every account of the table), so a table of 100,000 accounts would take minutes to apply
 * here, and one of 1,000,000 far longer (BENCHMARKS.md, "Scale"). So only the table's first
 * account goes through rls_apply_table() (limits, models, configuration, the switch to the
 * new generation), and the others are written the way it writes them on a fresh load:
 * account i gets id i + 1, its name in rls_accounts, and each of its keys' SipHash (under the
 * secret rls_apply_table() made) in the live generation of rls_api_keys, mapped to (id, tier
 * index). The data path then finds exactly the entries `rlshape load` would have made.
 */
static void load_big_table(struct env *e, const char *path, unsigned long nr_accounts)
{
	struct rls_apply_result res;
	struct rls_config cfg;
	struct rls_table t;
	char err[1024], why[1536];
	__u32 zero = 0, gen = 0;
	size_t n, i, j;

	if (bench_env_load(e, why, sizeof(why)))
		die("%s", why);
	if (rls_table_load(path, &t, err, sizeof(err)))
		die("%s", err);
	if (t.nr_accounts != nr_accounts)
		die("%s has %zu accounts, not %lu", path, t.nr_accounts, nr_accounts);
	for (i = 0; i < t.nr_accounts; i++)
		if (t.accounts[i].nr_cidrs)
			die("%s: account %s has CIDRs: a scale table has keys only", path,
			    t.accounts[i].name);
	n = t.nr_accounts;
	t.nr_accounts = 1;
	if (rls_apply_table(&e->maps, &t, &res, err, sizeof(err)))
		die("rls_apply_table: %s", err);
	t.nr_accounts = n;
	if (map_account_id(&e->maps, t.accounts[0].name) != 1)
		die("the first account did not get id 1");
	if (bpf_map_lookup_elem(e->maps.active, &zero, &gen))
		die("cannot read rls_active");
	gen &= 1;
	if (bpf_map_lookup_elem(e->maps.config, &gen, &cfg))
		die("cannot read rls_config");
	for (i = 1; i < n; i++) {
		const struct rls_account *a = &t.accounts[i];
		struct rls_principal who = { .account = (__u32)i + 1, .tier = (__u32)a->tier };
		struct rls_account_name name = {};

		snprintf(name.name, sizeof(name.name), "%s", a->name);
		if (bpf_map_update_elem(e->maps.accounts, &who.account, &name, BPF_NOEXIST))
			die("account %s: %s", a->name, strerror(errno));
		for (j = 0; j < a->nr_keys; j++) {
			struct rls_api_key key = { .generation = gen };

			if (!rls_table_key_siphash(&t, a, j, cfg.key_secret, key.siphash))
				die("%s: account %s has a sha256: key: a scale table has plain keys",
				    path, a->name);
			if (bpf_map_update_elem(e->maps.api_keys, &key, &who, BPF_NOEXIST))
				die("a key of account %s: %s", a->name, strerror(errno));
		}
	}
	rls_table_free(&t);
}

/* What the kernel charges for the skeleton's maps: the memlock bpftool prints. */
static unsigned long long maps_memlock(const struct env *e)
{
	unsigned long long total = 0, v;
	struct bpf_map *map;
	char path[64], line[256];
	FILE *f;

	bpf_object__for_each_map(map, e->skel->obj) {
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", bpf_map__fd(map));
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "memlock: %llu", &v) == 1)
				total += v;
		fclose(f);
	}
	return total;
}

/*
 * Is a reply the program wrote (XDP_TX: a 429, in out_buf) a packet a client would take? Its
 * IPv4 and TCP checksums are computed by the program, partly in words of its own
 * (rls_csum_add_words()): a fast 429 with a wrong checksum would be dropped by every client.
 */
static bool reply_checksums_ok(__u32 out_len)
{
	struct tp_parsed p;
	char why[128];

	return tp_parse(out_buf, out_len, &p, why, sizeof(why)) == 0 && p.ip_csum_ok &&
	       p.tcp_csum_ok;
}

static int run_checked(int fd, struct bcase *c, struct bench_frame *f);

/* The program's state for f's connection goes, as when both sides have closed. */
static void forget_flow(const struct env *e, const struct bench_frame *f)
{
	struct rls_flow_key k = bench_flow_key(f);

	if (bpf_map_delete_elem(e->maps.flows, &k) && errno != ENOENT)
		die("deleting a flow: %s", strerror(errno));
}

/*
 * What TC keeps of the upstream's SYN-ACK to f's connection (rls_note_handshake()): the
 * upstream's next byte, the one f acknowledges, and its window, 65,535 unscaled.
 */
static void note_handshake(const struct env *e, const struct bench_frame *f)
{
	struct rls_flow_key k = bench_flow_key(f);
	struct rls_handshake hs = { .server_next = f->ack, .window = 0xffff };

	if (bpf_map_update_elem(bpf_map__fd(e->skel->maps.rls_handshakes), &k, &hs, BPF_ANY))
		die("writing a handshake: %s", strerror(errno));
}

/* Does the body case's next segment start a new connection, its head run first? */
static bool body_needs_head(const struct bcase *c)
{
	return !c->heads || sizeof(BODY_PREFIX) - 1 + c->body_sent + c->body > BODY_SCAN_MAX;
}

/*
 * The body case's next segment: the bytes after the last one on its connection, or, when the
 * next would reach past what the JSON scan reads of a body, the first segment after a new
 * head on a fresh connection (the head runs here, untimed; the old connection is forgotten, so
 * that rls_flows does not fill).
 */
static struct bench_frame *body_next(const struct env *e, struct bcase *c)
{
	struct bench_frame *f = c->frames;
	uint32_t client;
	uint16_t sport;

	if (!body_needs_head(c)) {
		bench_frame_set_seq(f, f->seq + (uint32_t)f->payload_len);
		c->body_sent += c->body;
		return f;
	}
	if (c->heads)
		forget_flow(e, f);
	bench_conn(c->conn_next++, &client, &sport);
	bench_frame_set_client(c->head, client, sport);
	bench_frame_set_client(f, client, sport);
	if (run_checked(e->prog_fd, c, c->head) != XDP_PASS && !c->off_path++)
		snprintf(c->off_why, sizeof(c->off_why), "a head was not passed");
	bench_frame_set_seq(f, c->head->seq + (uint32_t)c->head->payload_len);
	c->heads++;
	c->body_sent = c->body;
	return f;
}

/* The next frame of a case, made a distinct segment where the program keeps state. */
static struct bench_frame *next_frame(const struct env *e, struct bcase *c)
{
	struct bench_frame *f;

	if (c->body)
		return body_next(e, c);
	f = &c->frames[c->next++ % c->nframes];

	if (c->vary_conn) {
		uint32_t client;
		uint16_t sport;

		bench_conn(c->conn_next++ % BENCH_NR_CONNS, &client, &sport);
		bench_frame_set_client(f, client, sport);
		if (c->handshake)
			note_handshake(e, f);
	}
	if (c->vary_seq)
		bench_frame_set_seq(f, f->seq + (uint32_t)f->payload_len);
	return f;
}

struct verdict_check {
	__u64 seen, request, off_stream, hidden, reply, admitted, rejected;
};

/* Segments the stream tracker did not read where its stream is, or read and gave up on. */
static const __u32 off_stream_events[] = {
	RLS_PKT_UNPARSED, RLS_PKT_RETRANSMIT, RLS_PKT_DROPPED, RLS_PKT_NOT_CONNECTION,
	RLS_PKT_OUT_OF_ORDER, RLS_PKT_STREAM_RESET, RLS_PKT_DESYNC, RLS_PKT_FLOWS_FULL,
	RLS_PKT_PIPELINED_WAIT,
};

static void snapshot(const struct env *e, __u32 account, __u32 model, struct verdict_check *v)
{
	size_t i;

	v->seen = env_packets(e, RLS_PKT_SEEN);
	v->request = env_packets(e, RLS_PKT_REQUEST);
	v->off_stream = 0;
	for (i = 0; i < sizeof(off_stream_events) / sizeof(off_stream_events[0]); i++)
		v->off_stream += env_packets(e, off_stream_events[i]);
	v->hidden = env_packets(e, RLS_PKT_MODEL_HIDDEN);
	v->reply = env_packets(e, RLS_PKT_REPLY_SENT);
	bench_stats(e, account, model, &v->admitted, &v->rejected);
}

/*
 * A kept case's client has read the 429 its request just got (reply, len bytes): its next
 * request acknowledges it. The 429 must have kept the connection (no FIN).
 */
static void kept_acknowledge(struct bcase *c, struct bench_frame *f, const uint8_t *reply,
			     size_t len)
{
	struct tp_parsed p;
	char why[128];

	if (tp_parse(reply, len, &p, why, sizeof(why)))
		die("case %s: the 429 does not parse: %s", c->name, why);
	if ((p.flags & TP_FIN) || !p.len)
		die("case %s: the 429 did not keep the connection", c->name);
	bench_frame_set_ack(f, p.seq + (uint32_t)p.len);
}

static int run_checked(int fd, struct bcase *c, struct bench_frame *f)
{
	__u32 out_len = 0;
	int action = bench_run_out(fd, f, out_buf, &out_len, NULL);

	if (action < 0)
		die("bpf_prog_test_run_opts (%s): %s", c->name, strerror(-action));
	if (!bench_frame_ok(f))
		die("bench bug: the %s frame's checksums are wrong", c->name);
	if (c->kept && action == XDP_TX)
		kept_acknowledge(c, f, out_buf, out_len);
	return action;
}

/*
 * Is the body case's connection where its last segment left it: in the body, the JSON scan
 * still on (not given up, the top-level object not closed), every body byte sent counted as
 * read? Returns 0, or -1 with why.
 */
static int body_check(const struct env *e, const struct bcase *c, char *why, size_t n)
{
	const struct bench_frame *f = c->frames;
	struct rls_flow_key k = bench_flow_key(f);
	struct rls_flow fl;
	const struct rls_stream *st = &fl.stream;

	if (bpf_map_lookup_elem(e->maps.flows, &k, &fl)) {
		snprintf(why, n, "its connection is not followed");
		return -1;
	}
	if (st->phase != RLS_PHASE_BODY || st->next_seq != f->seq + (uint32_t)f->payload_len ||
	    st->body_scanned != sizeof(BODY_PREFIX) - 1 + c->body_sent) {
		snprintf(why, n, "the stream is elsewhere (phase %u, %llu body bytes read, expected "
			 "%zu)", st->phase, (unsigned long long)st->body_scanned,
			 sizeof(BODY_PREFIX) - 1 + (size_t)c->body_sent);
		return -1;
	}
	if (st->request_flags & (RLS_REQ_JSON_DONE | RLS_REQ_MODEL_AMBIGUOUS | RLS_REQ_BODY_UNSEEN)) {
		snprintf(why, n, "the JSON scan stopped (request flags %#x)", st->request_flags);
		return -1;
	}
	return 0;
}

/*
 * Before timing: put the state in place (the body segment's request, the spent account's one
 * request, the counters of every key) and check that each case takes the path it is named
 * after, from the program's own counters. A case that silently took a cheaper path (a key not
 * found, a model not seen) would measure the wrong thing.
 */
/* The HTTP floor, loaded with its one account: KEY_ADMIT, never over its GCRA limit. */
static struct http_floor_bpf *load_http_floor(void)
{
	struct floor_gcra gcra = { .interval_ns = 1, .tolerance_ns = 1ull << 62 };
	__u8 buf[RLS_KEY_HASH_BUF] = { 0 };
	struct http_floor_bpf *o = http_floor_bpf__open();
	struct floor_key key;

	if (!o)
		die("opening the HTTP floor: %s", strerror(errno));
	o->rodata->floor_secret[0] = floor_secret[0];
	o->rodata->floor_secret[1] = floor_secret[1];
	memcpy(buf, KEY_ADMIT, strlen(KEY_ADMIT));
	rls_siphash128_cd((const __u8 *)floor_secret, buf, strlen(KEY_ADMIT), key.hash, 1, 3);
	_Static_assert(sizeof(o->rodata->floor_probe_key) == sizeof(key), "a floor_key");
	memcpy((void *)o->rodata->floor_probe_key, &key, sizeof(key));
	if (http_floor_bpf__load(o))
		die("loading the HTTP floor: %s", strerror(errno));
	if (bpf_map_update_elem(bpf_map__fd(o->maps.floor_accounts), &key, &gcra, BPF_ANY))
		die("the HTTP floor's account: %s", strerror(errno));
	return o;
}

/* One of the HTTP floor's counters, summed over CPUs. */
static __u64 floor_count(const struct http_floor_bpf *o, __u32 what)
{
	__u64 v[512] = { 0 }, sum = 0;
	int cpus = libbpf_num_possible_cpus(), i;

	if (cpus <= 0 || cpus > 512 ||
	    bpf_map_lookup_elem(bpf_map__fd(o->maps.floor_counts), &what, v))
		die("reading the HTTP floor's counters");
	for (i = 0; i < cpus; i++)
		sum += v[i];
	return sum;
}

/*
 * The kept case's connection: the upstream's SYN-ACK through TC (rls_handshakes: where the
 * first 429 is numbered and which window it advertises), then two refused requests, each
 * answered with a 429 that keeps the connection, the second renumbered.
 */
static void warm_up_kept_conn(const struct env *e, struct bcase *c, struct bench_frame *f,
			      __u32 spent, __u32 model)
{
	char client[INET_ADDRSTRLEN];
	struct in_addr addr = { .s_addr = htonl(f->client) };
	struct tp_spec syn_ack = {
		.saddr = BENCH_SERVER, .daddr = client, .sport = BENCH_PORT, .dport = f->sport,
		.seq = BENCH_SERVER_ISN, .ack = f->seq, .flags = TP_SYN | TP_ACK,
	};
	struct verdict_check a, b;
	uint8_t in[TP_MAX_FRAME];
	size_t in_len;
	__u64 kept;
	int action, action2;

	inet_ntop(AF_INET, &addr, client, sizeof(client));
	in_len = tp_build(&syn_ack, in, sizeof(in));
	if (!in_len || env_run(e->tc_fd, in, in_len, out_buf, TP_MAX_FRAME, NULL, NULL, 0,
			       &action) || action != 0 /* TC_ACT_OK */)
		die("case %s: the upstream's SYN-ACK did not pass TC", c->name);
	kept = env_packets(e, RLS_PKT_REPLY_KEPT_OPEN);
	snapshot(e, spent, model, &a);
	bench_frame_set_seq(f, f->seq + (uint32_t)f->payload_len); /* as next_frame() does */
	action = run_checked(e->prog_fd, c, f);
	bench_frame_set_seq(f, f->seq + (uint32_t)f->payload_len);
	action2 = run_checked(e->prog_fd, c, f);
	snapshot(e, spent, model, &b);
	if (action != XDP_TX || action2 != XDP_TX || b.reply != a.reply + 2 ||
	    b.rejected != a.rejected + 2 || env_packets(e, RLS_PKT_REPLY_KEPT_OPEN) != kept + 2)
		die("case %s: two refused requests did not both get a 429 that keeps the connection "
		    "(actions %s, %s, kept open +%llu)", c->name, bench_xdp_name(action),
		    bench_xdp_name(action2),
		    (unsigned long long)(env_packets(e, RLS_PKT_REPLY_KEPT_OPEN) - kept));
}

static void warm_up_kept(const struct env *e, struct bcase *c, __u32 spent, __u32 model)
{
	warm_up_kept_conn(e, c, c->frames, spent, model);
}

/* The data path's kept connections, far from the other cases' (the rejected case's go up from
 * 1000, a connection a run; the body cases' from BODY_CONN_BASE). */
#define KEPT_CONN_BASE(c) \
	(4 * BODY_CONNS_EACH + (uint64_t)DATA_PATH_BATCH * (uint64_t)((c) - cases))

/*
 * A kept case in the data path sends a batch of requests before it reads their 429s, so each
 * request of a batch goes on a connection of its own: the case's one connection, and
 * DATA_PATH_BATCH - 1 more, each warmed up as it was (the upstream's SYN-ACK through TC, two
 * 429s that keep it). next_frame() then takes them in turn.
 */
static void kept_connections(const struct env *e, struct bcase *c)
{
	struct bench_frame *more = realloc(c->frames, DATA_PATH_BATCH * sizeof(*more));
	__u32 model = map_model_id(&e->maps, BENCH_MODEL), spent = map_account_id(&e->maps, "spent");
	uint32_t client;
	uint16_t sport;
	size_t i;

	if (!more)
		die("out of memory");
	c->frames = more;
	for (i = 1; i < DATA_PATH_BATCH; i++) {
		bench_conn(KEPT_CONN_BASE(c) + i, &client, &sport);
		c->frames[i] = c->frames[0];
		bench_frame_set_client(&c->frames[i], client, sport);
		bench_frame_set_ack(&c->frames[i], BENCH_SERVER_ISN + 1);
		warm_up_kept_conn(e, c, &c->frames[i], spent, model);
	}
	c->nframes = DATA_PATH_BATCH;
	c->next = 0;
}

static void warm_up_and_check(const struct env *e, int pass_fd,
			      const struct http_floor_bpf *floor, int table_mode, unsigned nr_accounts)
{
	__u32 model = map_model_id(&e->maps, BENCH_MODEL), acct, spent, slots;
	struct verdict_check a, b;
	struct bench_frame f;
	char req[TP_MAX_FRAME];
	size_t len, i;
	int action;

	if (model == RLS_MODEL_OTHER)
		die("the table names no model \"%s\"", BENCH_MODEL);
	if (cases[C_FLOOR].selected &&
	    run_checked(pass_fd, &cases[C_FLOOR], cases[C_FLOOR].frames) != XDP_PASS)
		die("the no-op program did not pass");
	/* The HTTP floor takes its whole path: the key found, hashed, looked up and admitted. */
	if (cases[C_HTTP_FLOOR].selected) {
		__u64 before = floor_count(floor, FLOOR_ADMITTED);

		action = run_checked(bpf_program__fd(floor->progs.http_floor), &cases[C_HTTP_FLOOR],
				     cases[C_HTTP_FLOOR].frames);
		if (action != XDP_PASS || floor_count(floor, FLOOR_ADMITTED) != before + 1)
			die("the HTTP floor did not admit its request (%s; no key %llu, unknown %llu)",
			    bench_xdp_name(action),
			    (unsigned long long)floor_count(floor, FLOOR_NO_KEY),
			    (unsigned long long)floor_count(floor, FLOOR_UNKNOWN));
	}

	/* The floor's lookup alone finds its one account. */
	if (cases[C_FLOOR_LOOKUP].selected &&
	    run_checked(bpf_program__fd(floor->progs.floor_lookup), &cases[C_FLOOR_LOOKUP],
			cases[C_FLOOR_LOOKUP].frames) != XDP_PASS)
		die("the HTTP floor's lookup alone did not find its account");

	/* Pure ACK: its connection first carries a request; then the ACK is seen, nothing else. */
	if (cases[C_ACK].selected) {
		struct bcase *c = &cases[C_ACK];
		struct rls_flow_key k = bench_flow_key(c->frames);
		struct rls_flow fl;

		len = bench_request(req, sizeof(req), NULL, KEY_ADMIT, 1, BENCH_BODY);
		f = *c->frames;
		if (bench_frame_build(&f, f.client, f.sport, c->frames->seq - (uint32_t)len, 0, req,
				      len))
			die("cannot build the ACK's request");
		snapshot(e, 0, 0, &a);
		action = run_checked(e->prog_fd, c, &f);
		snapshot(e, 0, 0, &b);
		if (action != XDP_PASS || b.request != a.request + 1)
			die("the ACK's connection: its request was not decided");
		snapshot(e, 0, 0, &a);
		action = run_checked(e->prog_fd, c, c->frames);
		snapshot(e, 0, 0, &b);
		if (action != XDP_PASS || b.seen != a.seen + 1 || b.request != a.request ||
		    b.off_stream != a.off_stream)
			die("the pure ACK did not take the short path (action %s)",
			    bench_xdp_name(action));
		if (bpf_map_lookup_elem(e->maps.flows, &k, &fl) ||
		    fl.stream.next_seq != c->frames->seq)
			die("the pure ACK is not where its followed connection's stream is");
	}

	/* Body segments: a head, then segments in order; nothing decided, every byte scanned. */
	for (i = C_BODY; i <= C_BODY_SMALL; i++) {
		struct bcase *c = &cases[i];
		char why[256];
		int k;

		if (!c->selected)
			continue;
		snapshot(e, 0, 0, &a);
		for (k = 0; k < 3; k++) {
			action = run_checked(e->prog_fd, c, next_frame(e, c));
			if (action != XDP_PASS)
				die("case %s: a body segment got %s", c->name, bench_xdp_name(action));
		}
		snapshot(e, 0, 0, &b);
		if (b.seen != a.seen + 4 || b.request != a.request || b.off_stream != a.off_stream ||
		    c->off_path)
			die("case %s: a head and 3 segments were not read in order without a "
			    "request decided (seen +%llu, decided +%llu, off the stream +%llu)%s%s",
			    c->name, (unsigned long long)(b.seen - a.seen),
			    (unsigned long long)(b.request - a.request),
			    (unsigned long long)(b.off_stream - a.off_stream),
			    c->off_path ? ": " : "", c->off_why);
		if (body_check(e, c, why, sizeof(why)))
			die("case %s: %s", c->name, why);
	}

	if (table_mode) {
		/* Every key once: its counter and stats entries exist before timing. */
		struct bcase *c = &cases[C_REQ];

		snapshot(e, 0, 0, &a);
		for (i = 0; i < c->nframes; i++) {
			action = run_checked(e->prog_fd, c, next_frame(e, c));
			if (action != XDP_PASS)
				die("key %zu: %s, expected XDP_PASS", i, bench_xdp_name(action));
		}
		snapshot(e, 0, 0, &b);
		if (b.request != a.request + c->nframes || b.hidden != a.hidden)
			die("warm-up: %llu request starts counted, expected %zu",
			    (unsigned long long)(b.request - a.request), c->nframes);
		for (i = 0; i < c->nframes; i += c->nframes > 1 ? c->nframes - 1 : 1) {
			unsigned account = (unsigned)((uint64_t)i * nr_accounts / c->nframes);
			struct rls_account_name got;
			char name[64];
			__u64 adm, rej;

			/* load_big_table() gave account i the id i + 1. */
			acct = account + 1;
			snprintf(name, sizeof(name), BENCH_SCALE_ACCOUNT_FMT, account);
			if (bpf_map_lookup_elem(e->maps.accounts, &acct, &got) ||
			    strncmp(got.name, name, sizeof(got.name)))
				die("account %s is not id %u (is the table from bench/scale.sh?)", name,
				    acct);
			bench_stats(e, acct, model, &adm, &rej);
			if (adm != 1 || rej)
				die("account %s: admitted %llu, rejected %llu after one request (is "
				    "the table from bench/scale.sh?)", name, (unsigned long long)adm,
				    (unsigned long long)rej);
		}
		return;
	}

	acct = map_account_id(&e->maps, "bench");
	spent = map_account_id(&e->maps, "spent");
	slots = map_account_id(&e->maps, "slots");
	if (!acct || !spent || !slots)
		die("the built-in table's accounts are missing");
	for (i = C_REQ; i <= C_BODY_MODEL; i++) {
		struct bcase *c = &cases[i];

		snapshot(e, acct, model, &a);
		action = run_checked(e->prog_fd, c, next_frame(e, c));
		snapshot(e, acct, model, &b);
		if (action != XDP_PASS || b.request != a.request + 1 || b.hidden != a.hidden ||
		    b.admitted != a.admitted + 1)
			die("case %s: not admitted to (bench, %s) (action %s, admitted +%llu, "
			    "hidden +%llu)", c->name, BENCH_MODEL, bench_xdp_name(action),
			    (unsigned long long)(b.admitted - a.admitted),
			    (unsigned long long)(b.hidden - a.hidden));
	}
	/* A GET names no model: charged to the tier's "*" counter. */
	snapshot(e, acct, RLS_MODEL_OTHER, &a);
	action = run_checked(e->prog_fd, &cases[C_GET], next_frame(e, &cases[C_GET]));
	snapshot(e, acct, RLS_MODEL_OTHER, &b);
	if (action != XDP_PASS || b.request != a.request + 1 || b.admitted != a.admitted + 1)
		die("case get: not admitted to (bench, *) (action %s, admitted +%llu)",
		    bench_xdp_name(action), (unsigned long long)(b.admitted - a.admitted));
	/*
	 * Two request starts on one connection under concurrency 1: both admitted, so the second
	 * gave back the first one's slot before taking its own. One slot held, never two.
	 */
	{
		struct bcase *c = &cases[C_REQ_SLOT];
		struct rls_counter_key ckey = { .account = slots, .model = model };
		struct rls_counter counter;
		int action2;

		snapshot(e, slots, model, &a);
		action = run_checked(e->prog_fd, c, next_frame(e, c));
		action2 = run_checked(e->prog_fd, c, next_frame(e, c));
		snapshot(e, slots, model, &b);
		if (action != XDP_PASS || action2 != XDP_PASS || b.request != a.request + 2 ||
		    b.hidden != a.hidden || b.admitted != a.admitted + 2 || b.rejected != a.rejected)
			die("case %s: two request starts not both admitted to (slots, %s) (actions %s, "
			    "%s, admitted +%llu, rejected +%llu)", c->name, BENCH_MODEL,
			    bench_xdp_name(action), bench_xdp_name(action2),
			    (unsigned long long)(b.admitted - a.admitted),
			    (unsigned long long)(b.rejected - a.rejected));
		if (bpf_map_lookup_elem_flags(e->maps.counters, &ckey, &counter, BPF_F_LOCK))
			die("case %s: no counter for (slots, %s): %s", c->name, BENCH_MODEL,
			    strerror(errno));
		if (counter.slots_held != 1 || counter.slots_peak != 1)
			die("case %s: %u slots held, %u at most, expected 1 and 1 (the last request's "
			    "slot not given back?)", c->name, counter.slots_held, counter.slots_peak);
	}
	/* The spent account's one request of the day, then a rejection. */
	snapshot(e, spent, model, &a);
	action = run_checked(e->prog_fd, &cases[C_REJECT], next_frame(e, &cases[C_REJECT]));
	action = action == XDP_PASS ? run_checked(e->prog_fd, &cases[C_REJECT],
						  next_frame(e, &cases[C_REJECT]))
				    : -1;
	snapshot(e, spent, model, &b);
	if (action != XDP_TX || b.reply != a.reply + 1 || b.rejected != a.rejected + 1)
		die("case rejected: no 429 (action %s)", bench_xdp_name(action));
	if (cases[C_REJECT_NEW].selected) {
		struct bcase *c = &cases[C_REJECT_NEW];
		__u64 kept = env_packets(e, RLS_PKT_REPLY_KEPT_OPEN);
		struct bench_frame *f = next_frame(e, c);

		snapshot(e, spent, model, &a);
		action = run_checked(e->prog_fd, c, f);
		snapshot(e, spent, model, &b);
		forget_flow(e, f);
		if (action != XDP_TX || b.reply != a.reply + 1 || b.rejected != a.rejected + 1 ||
		    env_packets(e, RLS_PKT_REPLY_KEPT_OPEN) != kept + 1)
			die("case %s: a new connection's refused request did not get a 429 that "
			    "keeps it (action %s, kept open +%llu)", c->name, bench_xdp_name(action),
			    (unsigned long long)(env_packets(e, RLS_PKT_REPLY_KEPT_OPEN) - kept));
	}
	if (cases[C_REJECT_KEPT].selected)
		warm_up_kept(e, &cases[C_REJECT_KEPT], spent, model);
	if (cases[C_REJECT_KEPT_TS].selected)
		warm_up_kept(e, &cases[C_REJECT_KEPT_TS], spent, model);
}

/*
 * One round of one case: n single runs. A body case must leave the counters as it found them
 * but for the segments seen (no request decided, nothing off its stream) and its connection
 * still in the body with the scan on; a round that does not is reported with the case.
 */
static void measure_runs(const struct env *e, struct bcase *c, int fd, uint64_t n,
			 int round)
{
	struct verdict_check a, b;
	struct bench_frame *f;
	uint64_t i, heads = c->heads, bad_replies = 0;
	double sum = 0;
	char why[192];
	__u32 ns, out_len = 0;
	int action;

	if (c->body)
		snapshot(e, 0, 0, &a);
	memset(hist, 0, sizeof(hist));
	for (i = 0; i < n; i++) {
		f = next_frame(e, c);
		action = bench_run_out(fd, f, out_buf, &out_len, &ns);
		if (action < 0)
			die("bpf_prog_test_run_opts (%s): %s", c->name, strerror(-action));
		if (action != c->expect) {
			c->unexpected++;
			c->last_bad_action = action;
		}
		if (action == XDP_TX && !reply_checksums_ok(out_len))
			bad_replies++;
		if (c->kept && action == XDP_TX)
			kept_acknowledge(c, f, out_buf, out_len);
		if (c->forget)
			forget_flow(e, f);
		sum += ns;
		if (ns < HIST_NS)
			hist[ns]++;
	}
	if (bad_replies && !c->off_path++)
		snprintf(c->off_why, sizeof(c->off_why),
			 "round %d: %llu of its replies had a wrong IPv4 or TCP checksum", round + 1,
			 (unsigned long long)bad_replies);
	if (c->body) {
		snapshot(e, 0, 0, &b);
		if (b.seen != a.seen + n + (c->heads - heads) || b.request != a.request ||
		    b.off_stream != a.off_stream) {
			if (!c->off_path++)
				snprintf(c->off_why, sizeof(c->off_why), "round %d: seen +%llu for %llu "
					 "segments and %llu heads, decided +%llu, off the stream +%llu",
					 round + 1, (unsigned long long)(b.seen - a.seen),
					 (unsigned long long)n, (unsigned long long)(c->heads - heads),
					 (unsigned long long)(b.request - a.request),
					 (unsigned long long)(b.off_stream - a.off_stream));
		} else if (body_check(e, c, why, sizeof(why)) && !c->off_path++) {
			snprintf(c->off_why, sizeof(c->off_why), "round %d: %s", round + 1, why);
		}
	}
	c->p50[round] = hist_quantile(n, 0.50);
	c->p90[round] = hist_quantile(n, 0.90);
	c->mean[round] = sum / (double)n;
}

/* One call with .repeat = n: the kernel's average per run on one buffer. */
static void measure_repeat(struct bcase *c, int fd, uint64_t n, int round)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = c->frames->buf,
		    .data_size_in = (__u32)c->frames->len, .data_out = out_buf,
		    .data_size_out = TP_MAX_FRAME, .repeat = (__u32)n);
	int err = bpf_prog_test_run_opts(fd, &opts);

	if (err)
		die("bpf_prog_test_run_opts (%s, repeat %llu): %s", c->name, (unsigned long long)n,
		    strerror(-err));
	if ((int)opts.retval != c->expect) {
		c->unexpected++;
		c->last_bad_action = (int)opts.retval;
	}
	c->rep[round] = opts.duration;
}

static struct bench_frame path_frames[DATA_PATH_BATCH];
static uint8_t path_reply[TP_MAX_FRAME];

/*
 * After a batch: a kept case reads each request's 429 and has its connection acknowledge it
 * (kept_acknowledge()); any other case's replies are dropped.
 */
static void data_path_replies(struct data_path *dp, struct bcase *c, int nr)
{
	struct tp_parsed p;
	char why[256];
	long len;
	size_t j;
	int k;

	if (!c->kept) {
		data_path_drain(dp);
		return;
	}
	for (k = 0; k < nr; k++) {
		len = data_path_reply(dp, path_reply, sizeof(path_reply), why, sizeof(why));
		if (len < 0)
			die("case %s: %s", c->name, why);
		if (tp_parse(path_reply, (size_t)len, &p, why, sizeof(why)))
			die("case %s: a reply does not parse: %s", c->name, why);
		for (j = 0; j < c->nframes; j++)
			if (c->frames[j].sport == p.dport &&
			    !memcmp(p.daddr, &(uint32_t){ htonl(c->frames[j].client) }, 4))
				break;
		if (j == c->nframes)
			die("case %s: a reply to port %u, which no connection of the case has",
			    c->name, p.dport);
		kept_acknowledge(c, &c->frames[j], path_reply, (size_t)len);
	}
}

/* A batch of the case's frames through the program, then what the case does after each run:
 * acknowledge its 429s, forget its flows. */
static void data_path_batch(const struct env *e, struct data_path *dp, struct bcase *c, int fd,
			    int nr)
{
	char why[256];
	int k;

	if (data_path_send(dp, fd, path_frames, nr, why, sizeof(why)))
		die("case %s: %s", c->name, why);
	data_path_replies(dp, c, nr);
	if (c->forget)
		for (k = 0; k < nr; k++)
			forget_flow(e, &path_frames[k]);
}

/*
 * One round of one case in the data path (data_path.h): n frames, as measure_runs() makes
 * them, sent a batch at a time through the program attached to the veth. A body case's batch
 * ends before a new connection's head, which runs through BPF_PROG_TEST_RUN only once the old
 * connection's segments are through (its run, which the statistics count too, is taken out);
 * after each batch, a kept case's connections acknowledge their 429s, read back from the veth,
 * and a case that forgets its flows does so. The figure is the kernel's run time over its run
 * count for the round. A round whose counters do not show every frame where the case says
 * (each a request decided, or none; a 429 for each refused one; nothing off its stream) is
 * reported with the case.
 */
static void measure_data_path(const struct env *e, struct data_path *dp, struct bcase *c, int fd,
			      uint64_t n, int round)
{
	struct verdict_check a, b;
	__u64 runs0, ns0, runs1, ns1, head_runs = 0, head_ns = 0, r0, t0, r1, t1;
	uint64_t done = 0, heads = c->heads;
	struct bench_frame *f;
	char why[256];
	int nr = 0;

	if (data_path_attach(dp, fd, why, sizeof(why)))
		die("case %s: %s", c->name, why);
	if (c->prog == PROG_RLSHAPE)
		snapshot(e, 0, 0, &a);
	if (data_path_stats(fd, &runs0, &ns0))
		die("case %s: the program's run statistics: %s", c->name, strerror(errno));
	while (done < n) {
		if (c->body && body_needs_head(c)) {
			if (nr)
				data_path_batch(e, dp, c, fd, nr);
			nr = 0;
			if (data_path_stats(fd, &r0, &t0))
				die("case %s: the program's run statistics: %s", c->name, strerror(errno));
			f = next_frame(e, c);
			if (data_path_stats(fd, &r1, &t1))
				die("case %s: the program's run statistics: %s", c->name, strerror(errno));
			head_runs += r1 - r0;
			head_ns += t1 - t0;
		} else {
			f = next_frame(e, c);
		}
		path_frames[nr++] = *f;
		done++;
		if (nr < DATA_PATH_BATCH && done < n)
			continue;
		data_path_batch(e, dp, c, fd, nr);
		nr = 0;
	}
	if (data_path_stats(fd, &runs1, &ns1))
		die("case %s: the program's run statistics: %s", c->name, strerror(errno));
	runs1 -= head_runs;
	ns1 -= head_ns;
	if (runs1 - runs0 != n && !c->off_path++)
		snprintf(c->off_why, sizeof(c->off_why), "data path round %d: %llu runs for %llu "
			 "frames", round + 1, (unsigned long long)(runs1 - runs0),
			 (unsigned long long)n);
	c->path[round] = (double)(ns1 - ns0) / (double)(runs1 - runs0 ? runs1 - runs0 : 1);
	if (c->prog != PROG_RLSHAPE)
		return;
	snapshot(e, 0, 0, &b);
	if ((b.seen != a.seen + n + (c->heads - heads) || b.off_stream != a.off_stream ||
	     b.request != a.request + (c->vary_seq ? n : 0) ||
	     b.reply != a.reply + (c->expect == XDP_TX ? n : 0)) &&
	    !c->off_path++)
		snprintf(c->off_why, sizeof(c->off_why), "data path round %d: seen +%llu for %llu "
			 "frames and %llu heads, decided +%llu, 429s +%llu, off the stream +%llu",
			 round + 1, (unsigned long long)(b.seen - a.seen), (unsigned long long)n,
			 (unsigned long long)(c->heads - heads),
			 (unsigned long long)(b.request - a.request),
			 (unsigned long long)(b.reply - a.reply),
			 (unsigned long long)(b.off_stream - a.off_stream));
}

/*
 * The body scan per byte, two ways, each taken within a round and then its median: the slope
 * between the two segment sizes (what one more body byte costs: the per-segment work, the
 * flow lookup and the window's load, cancels), and a segment's cost over a pure ACK on a
 * followed connection, per byte of it (everything a body segment adds, fixed costs included).
 */
static void body_scan_report(int markdown, FILE *sf, int rounds)
{
	const struct bcase *big = &cases[C_BODY], *small = &cases[C_BODY_SMALL], *ack = &cases[C_ACK];
	double slope[MAX_ROUNDS], per[2][MAX_ROUNDS];
	const struct bcase *both[2] = { small, big };
	int r, j;

	for (r = 0; r < rounds; r++) {
		slope[r] = (big->p50[r] - small->p50[r]) / (double)(big->body - small->body);
		for (j = 0; j < 2; j++)
			per[j][r] = (both[j]->p50[r] - ack->p50[r]) / (double)both[j]->body;
	}
	if (markdown) {
		printf("\nThe body scan: segments of a JSON chat history in order, every byte read by "
		       "the scan (a new connection and head, untimed, before the 1 MiB it reads of a "
		       "body). Per byte: the slope between the two sizes, and a segment's cost over the "
		       "pure ACK divided by its bytes; both taken within each round, median over "
		       "rounds.\n\n");
		printf("| case | body bytes per segment | median ns | ns over ack | ns over ack per byte "
		       "|\n| --- | ---: | ---: | ---: | ---: |\n");
	}
	for (j = 0; j < 2; j++) {
		double over[MAX_ROUNDS];

		for (r = 0; r < rounds; r++)
			over[r] = both[j]->p50[r] - ack->p50[r];
		if (markdown)
			printf("| %s | %zu | %.0f | %.0f | %.3f |\n", both[j]->name, both[j]->body,
			       median(both[j]->p50, rounds), median(over, rounds),
			       median(per[j], rounds));
		if (sf) {
			fprintf(sf, "prog_cost.%s.bytes\t%zu\n", both[j]->name, both[j]->body);
			fprintf(sf, "prog_cost.%s.over_ack_ns_per_byte\t%.3f\n", both[j]->name,
				median(per[j], rounds));
		}
	}
	if (markdown)
		printf("\nBody scan per byte (slope, %s against %s): %.3f ns per byte.\n", big->name,
		       small->name, median(slope, rounds));
	if (sf)
		fprintf(sf, "prog_cost.body.ns_per_byte\t%.3f\n", median(slope, rounds));
}

/* The data path's table: ns per run, over the no-op's, and as times the HTTP floor's. */
static void data_path_report(int markdown, FILE *sf, int rounds)
{
	double over[MAX_ROUNDS], http[MAX_ROUNDS], floor_over;
	char http_text[32];
	int i, r;

	if (markdown)
		printf("\nThe same cases in the data path (--data-path): each frame sent through a veth "
		       "into the program attached in native mode, run by the NAPI poll %d frames at a "
		       "time with no system call between runs; figures from the kernel's run "
		       "statistics (run_time_ns over run_cnt, one sched_clock() pair per run), the "
		       "median over rounds; ratios within each round.\n\n"
		       "| case | ns per run | x floor | ns over floor | x HTTP floor |\n"
		       "| --- | ---: | ---: | ---: | ---: |\n", DATA_PATH_BATCH);
	for (i = 0; i < NR_CASES; i++) {
		const struct bcase *c = &cases[i];
		double ratio[MAX_ROUNDS];

		if (!c->selected)
			continue;
		snprintf(http_text, sizeof(http_text), "-");
		for (r = 0; r < rounds; r++) {
			ratio[r] = c->path[r] / (cases[C_FLOOR].path[r] > 0 ? cases[C_FLOOR].path[r] : 1);
			over[r] = c->path[r] - cases[C_FLOOR].path[r];
			floor_over = cases[C_HTTP_FLOOR].path[r] - cases[C_FLOOR].path[r];
			http[r] = over[r] / (floor_over > 0 ? floor_over : 1);
		}
		if (cases[C_HTTP_FLOOR].selected)
			snprintf(http_text, sizeof(http_text), "%.2f", median(http, rounds));
		if (markdown)
			printf("| %s | %.0f | %.2f | %.0f | %s |\n", c->name, median(c->path, rounds),
			       median(ratio, rounds), median(over, rounds), http_text);
		if (sf) {
			fprintf(sf, "prog_cost.%s.data_path_ns\t%.0f\n", c->name,
				median(c->path, rounds));
			fprintf(sf, "prog_cost.%s.data_path_over_ns\t%.0f\n", c->name,
				median(over, rounds));
			if (cases[C_HTTP_FLOOR].selected)
				fprintf(sf, "prog_cost.%s.data_path_http_floor_ratio\t%s\n", c->name,
					http_text);
		}
	}
}

/* The HTTP floor's median over the no-op in round r (at least a nanosecond: a divisor). */
static double over_http_floor(int r)
{
	double over = cases[C_HTTP_FLOOR].p50[r] - cases[C_FLOOR].p50[r];

	return over >= 1 ? over : 1;
}

/* The program a case runs on. */
static int case_fd(const struct bcase *c, const struct env *e, const struct xdp_pass_bpf *pass,
		   const struct http_floor_bpf *floor)
{
	switch (c->prog) {
	case PROG_NOOP:
		return bpf_program__fd(pass->progs.xdp_pass);
	case PROG_HTTP_FLOOR:
		return bpf_program__fd(floor->progs.http_floor);
	case PROG_FLOOR_LOOKUP:
		return bpf_program__fd(floor->progs.floor_lookup);
	default:
		return e->prog_fd;
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: prog_cost [OPTIONS]\n\n"
		"Per-packet cost of rlshape's XDP program under BPF_PROG_TEST_RUN, against a no-op\n"
		"XDP program and the HTTP floor (bench/floor), on hand-built frames. Prints a\n"
		"Markdown section.\n\n"
		"  --runs N        single runs per case, over all rounds (default 1000000)\n"
		"  --rounds R      rounds; cases are interleaved within each (default 5)\n"
		"  --repeat N      stateless cases: also one .repeat = N call per round (default\n"
		"                  1000000; 0: skip)\n"
		"  --cases LIST    comma-separated: floor,http_floor,floor_lookup,ack,body,\n"
		"                  body_small,request,request_400,request_1k,body_model,get,\n"
		"                  request_slot,rejected,rejected_new,rejected_kept,\n"
		"                  rejected_kept_ts\n"
		"                  (default: all; floor is always measured)\n"
		"  --table FILE    a table written by bench/scale.sh instead of the built-in one;\n"
		"                  measures floor and request, cycling through up to %d keys\n"
		"  --accounts N    the number of accounts in --table\n"
		"  --keys K        with --table: how many keys, spread evenly over the accounts, the\n"
		"                  request case cycles through (default and most %d)\n"
		"  --cpu N         CPU to pin to (default: the last one allowed)\n"
		"  --data-path     also run the cases in the data path: frames through a veth\n"
		"                  into the program in native mode, timed by the kernel's run\n"
		"                  statistics\n"
		"  --summary FILE  append 'prog_cost.CASE.FIELD<TAB>VALUE' lines to FILE\n"
		"  --no-markdown   print nothing but errors\n",
		MAX_FRAMES, MAX_FRAMES);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "runs", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "repeat", required_argument, NULL, 'R' },
		{ "cases", required_argument, NULL, 'c' },
		{ "table", required_argument, NULL, 't' },
		{ "accounts", required_argument, NULL, 'a' },
		{ "keys", required_argument, NULL, 'k' },
		{ "cpu", required_argument, NULL, 'p' },
		{ "summary", required_argument, NULL, 's' },
		{ "data-path", no_argument, NULL, 'd' },
		{ "no-markdown", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t runs = 1000000, repeat = 1000000, per_round;
	const char *table = NULL, *summary = NULL, *case_list = NULL;
	unsigned long nr_accounts = 0;
	unsigned nr_keys = MAX_FRAMES;
	int rounds = 5, cpu = -1, markdown = 1, opt, i, r, failed = 0, data_path = 0;
	struct data_path dp;
	unsigned long long memlock_loaded;
	struct xdp_pass_bpf *pass;
	struct http_floor_bpf *floor;
	__u64 floor_admitted;
	struct env env;
	char why[1536];
	cpu_set_t set;
	FILE *sf = NULL;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			runs = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'R':
			repeat = strtoull(optarg, NULL, 10);
			break;
		case 'c':
			case_list = optarg;
			break;
		case 't':
			table = optarg;
			break;
		case 'a':
			nr_accounts = strtoul(optarg, NULL, 10);
			break;
		case 'k':
			nr_keys = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			cpu = atoi(optarg);
			break;
		case 's':
			summary = optarg;
			break;
		case 'd':
			data_path = 1;
			break;
		case 'q':
			markdown = 0;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || rounds < 1 || rounds > MAX_ROUNDS || runs < (uint64_t)rounds ||
	    (table && !nr_accounts) || (!table && nr_accounts) || !nr_keys || nr_keys > MAX_FRAMES) {
		usage(stderr);
		return 2;
	}
	per_round = runs / (uint64_t)rounds;

	for (i = 0; i < NR_CASES; i++)
		cases[i].selected = table ? (i == C_FLOOR || i == C_REQ) : 1;
	if (case_list) {
		char *copy = strdup(case_list), *tok, *save = NULL;

		for (i = 0; i < NR_CASES; i++)
			cases[i].selected = i == C_FLOOR;
		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			for (i = 0; i < NR_CASES && strcmp(tok, cases[i].name); i++)
				;
			if (i == NR_CASES || (table && i != C_FLOOR && i != C_REQ))
				die("unknown case \"%s\"%s", tok, table ? " with --table" : "");
			cases[i].selected = 1;
		}
		free(copy);
	}

	/* One CPU for everything: the program's per-CPU scratch and maps stay warm there. */
	if (sched_getaffinity(0, sizeof(set), &set))
		die("sched_getaffinity: %s", strerror(errno));
	if (cpu < 0)
		for (i = 0; i < CPU_SETSIZE; i++)
			if (CPU_ISSET(i, &set))
				cpu = i;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("cannot pin to CPU %d: %s", cpu, strerror(errno));

	if (geteuid() != 0)
		die("needs root (BPF_PROG_TEST_RUN on XDP programs)");
	if (own_netns(why, sizeof(why)))
		die("%s", why);
	if (table)
		load_big_table(&env, table, nr_accounts);
	else if (bench_env_open(&env, "prog_cost.json", builtin_table, why, sizeof(why)))
		die("%s", why);
	memlock_loaded = maps_memlock(&env);
	pass = xdp_pass_bpf__open_and_load();
	if (!pass)
		die("loading the no-op XDP program: %s", strerror(errno));

	floor = load_http_floor();

	build_frames(table, (unsigned)nr_accounts, nr_keys);
	warm_up_and_check(&env, bpf_program__fd(pass->progs.xdp_pass), floor, table != NULL,
			  (unsigned)nr_accounts);

	floor_admitted = floor_count(floor, FLOOR_ADMITTED);
	for (r = 0; r < rounds; r++) {
		for (i = 0; i < NR_CASES; i++) {
			struct bcase *c = &cases[i];

			if (!c->selected)
				continue;
			measure_runs(&env, c, case_fd(c, &env, pass, floor), per_round, r);
			if (c->stateless && repeat)
				measure_repeat(c, case_fd(c, &env, pass, floor), repeat, r);
		}
	}
	/* The data path after the single runs: the same cases, their frames going on from there. */
	if (data_path) {
		if (data_path_open(&dp, why, sizeof(why)))
			die("the data path: %s", why);
		for (i = 0; i < NR_CASES; i++)
			if (cases[i].selected && cases[i].kept)
				kept_connections(&env, &cases[i]);
		for (r = 0; r < rounds; r++)
			for (i = 0; i < NR_CASES; i++)
				if (cases[i].selected)
					measure_data_path(&env, &dp, &cases[i],
							  case_fd(&cases[i], &env, pass, floor),
							  per_round, r);
		data_path_close(&dp);
	}

	/* Every timed run of the HTTP floor took its whole path, or its figure is not the floor. */
	if (cases[C_HTTP_FLOOR].selected &&
	    floor_count(floor, FLOOR_ADMITTED) - floor_admitted !=
		    per_round * (uint64_t)rounds * (data_path ? 2 : 1) +
			    (repeat ? repeat * (uint64_t)rounds : 0) &&
	    !cases[C_HTTP_FLOOR].off_path++)
		snprintf(cases[C_HTTP_FLOOR].off_why, sizeof(cases[C_HTTP_FLOOR].off_why),
			 "%llu of its runs admitted, not all",
			 (unsigned long long)(floor_count(floor, FLOOR_ADMITTED) - floor_admitted));

	if (summary) {
		sf = fopen(summary, "a");
		if (!sf)
			die("%s: %s", summary, strerror(errno));
	}
	if (sf) {
		fprintf(sf, "prog_cost.maps.memlock_loaded\t%llu\n", memlock_loaded);
		fprintf(sf, "prog_cost.maps.memlock_after\t%llu\n", maps_memlock(&env));
	}
	if (markdown) {
		printf("%llu single runs per case (repeat = 1 each, the frame changed between runs "
		       "where the program keeps state), in %d interleaved rounds, pinned to CPU %d. "
		       "Figures are the kernel's own opts.duration: the median ns of a round's runs, "
		       "then the median over rounds; the ratio is taken within each round.%s\n\n",
		       (unsigned long long)(per_round * (uint64_t)rounds), rounds, cpu,
		       table ? " Table: a bench/scale.sh table; the request case cycles through keys "
			       "spread over its accounts, one connection each." : "");
		printf("The HTTP floor column is a case's cost over the no-op divided by the HTTP "
		       "floor's (bench/floor/http_floor.bpf.c) over the no-op, in the same round: how "
		       "many times the least an HTTP limiter must do.\n\n");
		printf("| case | packet | median ns | x floor | ns over floor | x HTTP floor | p90 ns | "
		       "mean ns |\n");
		printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	}
	for (i = 0; i < NR_CASES; i++) {
		struct bcase *c = &cases[i];
		double ratio[MAX_ROUNDS], over[MAX_ROUNDS], http[MAX_ROUNDS], m;
		char http_text[32] = "-";

		if (!c->selected)
			continue;
		for (r = 0; r < rounds; r++) {
			ratio[r] = c->p50[r] / (cases[C_FLOOR].p50[r] > 0 ? cases[C_FLOOR].p50[r] : 1);
			over[r] = c->p50[r] - cases[C_FLOOR].p50[r];
			http[r] = over[r] / over_http_floor(r);
		}
		m = median(c->p50, rounds);
		if (cases[C_HTTP_FLOOR].selected)
			snprintf(http_text, sizeof(http_text), "%.2f", median(http, rounds));
		if (markdown)
			printf("| %s | %s | %.0f | %.2f | %.0f | %s | %.0f | %.1f |\n", c->name, c->what,
			       m, median(ratio, rounds), median(over, rounds), http_text,
			       median(c->p90, rounds), median(c->mean, rounds));
		if (sf) {
			fprintf(sf, "prog_cost.%s.median_ns\t%.0f\n", c->name, m);
			fprintf(sf, "prog_cost.%s.ratio\t%.2f\n", c->name, median(ratio, rounds));
			fprintf(sf, "prog_cost.%s.over_ns\t%.0f\n", c->name, median(over, rounds));
			fprintf(sf, "prog_cost.%s.mean_ns\t%.1f\n", c->name, median(c->mean, rounds));
			if (cases[C_HTTP_FLOOR].selected)
				fprintf(sf, "prog_cost.%s.http_floor_ratio\t%s\n", c->name, http_text);
		}
	}
	if (cases[C_BODY].selected && cases[C_BODY_SMALL].selected && cases[C_ACK].selected)
		body_scan_report(markdown, sf, rounds);
	if (repeat) {
		if (markdown) {
			printf("\nThe stateless cases again, as one call with .repeat = %llu per round "
			       "(the kernel reruns the program on one buffer and reports the average; no "
			       "per-run timer reads): median over %d rounds.\n\n",
			       (unsigned long long)repeat, rounds);
			printf("| case | ns per run (.repeat) | x floor | ns over floor |\n"
			       "| --- | ---: | ---: | ---: |\n");
		}
		for (i = 0; i < NR_CASES; i++) {
			struct bcase *c = &cases[i];
			double ratio[MAX_ROUNDS], over[MAX_ROUNDS];

			if (!c->selected || !c->stateless)
				continue;
			for (r = 0; r < rounds; r++) {
				ratio[r] = c->rep[r] / (cases[C_FLOOR].rep[r] > 0 ? cases[C_FLOOR].rep[r] : 1);
				over[r] = c->rep[r] - cases[C_FLOOR].rep[r];
			}
			if (markdown)
				printf("| %s | %.0f | %.2f | %.0f |\n", c->name, median(c->rep, rounds),
				       median(ratio, rounds), median(over, rounds));
			if (sf) {
				fprintf(sf, "prog_cost.%s.repeat_ns\t%.0f\n", c->name, median(c->rep, rounds));
				fprintf(sf, "prog_cost.%s.repeat_ratio\t%.2f\n", c->name,
					median(ratio, rounds));
			}
		}
	}
	if (data_path)
		data_path_report(markdown, sf, rounds);
	for (i = 0; i < NR_CASES; i++) {
		if (cases[i].off_path) {
			failed = 1;
			printf("\n**Off its path:** case %s, %llu rounds (the first: %s): its figures do "
			       "not measure what the case says.\n", cases[i].name,
			       (unsigned long long)cases[i].off_path, cases[i].off_why);
		}
		if (!cases[i].unexpected)
			continue;
		failed = 1;
		printf("\n**Unexpected verdicts:** case %s returned %s (not %s) in %llu runs: its "
		       "figures do not measure what the case says.\n", cases[i].name,
		       bench_xdp_name(cases[i].last_bad_action), bench_xdp_name(cases[i].expect),
		       (unsigned long long)cases[i].unexpected);
	}
	if (sf)
		fclose(sf);
	http_floor_bpf__destroy(floor);
	xdp_pass_bpf__destroy(pass);
	env_close(&env);
	return failed;
}
