// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The packet fuzzer: HTTP/1.1 requests built from a small grammar, some bytes mutated, cut into
 * segments and delivered in order, duplicated, reordered, dropped and resent, with forged
 * segments between them, through the XDP program (BPF_PROG_TEST_RUN); the upstream's answers
 * go through the TC program. What the upstream's socket accepts is played here (a receiver
 * that takes what XDP passes, at its sequence numbers, and on a real loopback connection also
 * writes it into the real socket's receive queue), and checked against the reference
 * (packet_reference.h: a whole-buffer parser of the client's stream) after every input:
 *
 *   (a) served: every request the upstream received whole was counted and admitted, to its
 *       account and model (or charged as hidden);
 *   (b) exact: counts equal the reference's, whatever the segments and their order;
 *   (c) refused: the upstream never holds a whole refused request; the admitted ones before
 *       it went through; its reset comes at the upstream's next byte;
 *   (d) forged: a segment no connection takes, or far off its stream, changes nothing;
 *   (e) sound: no program errs; every frame the programs write parses with good checksums;
 *       TC never changes a packet; a broken stream is reset before its bytes reach the upstream;
 *   (t) metered: one event per admitted metered response, its usage read exactly where the
 *       response was followed alone, and what it is charged within max_response_tokens;
 *   (s) slots: no concurrency slot outlives its connection;
 *   (r) told: a client whose connection XDP reset is reset itself by its second resend of the
 *       segment that became the reset, at the number it acknowledged.
 *
 * A mismatch aborts (libFuzzer keeps the input). `fuzz/packet_stream -help=1` for libFuzzer's
 * options; PKTFUZZ_REPORT=1 prints how often each property was checked at exit, and
 * PKTFUZZ_DEBUG=1 what an input sent and what came of it (run it on a kept input alone).
 * It needs root: it makes a network namespace of its own, where it loads the programs with
 * private maps (nothing pinned) and listens on 127.0.0.1:8000 for its real connections.
 */
#include "harness.h"
#include "own_netns.h"
#include "fuzz.h"
#include "packet_reference.h"
#include "settle.h"
#include "usage.h"

#include <ctype.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#define KEY_COUNT  "sk-fuzz-count-0001"
#define KEY_PRICEY "sk-fuzz-pricey-0002"
#define KEY_METER  "sk-fuzz-meter-0003"
#define KEY_SOLO   "sk-fuzz-solo-0004"
#define KEY_NOBODY "sk-fuzz-nobody-9999"
#define PRICEY_PER_DAY 2
#define MAX_RESPONSE_TOKENS 5000

/*
 * count: far from its limits. pricey: two requests a day of model pricey, its tier's strictest,
 * so a hidden model is charged there too and the third is refused. meter: token limits, so TC
 * follows its responses and reports them. solo: one request in flight; on one connection the
 * next request ends the last one's response, so all are admitted, and every slot must be back
 * once the connection is gone. Unknown clients are counted per address.
 */
static const char fuzz_table[] =
	"{'listen': {'ports': [8000]},"
	" 'identify': {'key_headers': ['authorization', 'x-api-key'], 'model_header': 'x-model'},"
	" 'tiers': {"
	"   'wide':    {'*': {'rpm': 100000000, 'burst': 100000000}},"
	"   'paid':    {'pricey': {'rpd': 2}, 'cheap': {'rpd': 100000000},"
	"               '*': {'rpd': 100000000}},"
	"   'metered': {'*': {'tpm': 1000000000, 'token_burst': 1000000000,"
	"               'max_response_tokens': 5000}},"
	"   'single':  {'*': {'concurrency': 1, 'max_hold_seconds': 3600}}"
	" },"
	" 'accounts': {"
	"   'count':  {'tier': 'wide',    'keys': ['" KEY_COUNT "']},"
	"   'pricey': {'tier': 'paid',    'keys': ['" KEY_PRICEY "']},"
	"   'meter':  {'tier': 'metered', 'keys': ['" KEY_METER "']},"
	"   'solo':   {'tier': 'single',  'keys': ['" KEY_SOLO "']}"
	" },"
	" 'default_tier': 'wide'}";

static const struct ref_key fuzz_keys[] = {
	{ KEY_COUNT, REF_COUNT },
	{ KEY_PRICEY, REF_PRICEY },
	{ KEY_METER, REF_METER },
	{ KEY_SOLO, REF_SOLO },
};

/* ---- what was checked, for the report ---- */

enum prop { P_SERVED, P_EXACT, P_REFUSED, P_FORGED, P_SOUND, P_METERED, P_SLOTS, P_TOLD, P_NR };
static const char *const prop_names[P_NR] = {
	"served: every request the upstream received whole was counted and admitted",
	"exact: counts equal the reference under any segmentation and order",
	"refused: no whole refused request upstream, its reset at the upstream's next byte",
	"forged: forged and out-of-window segments count nothing",
	"sound: no program error, frames parse, broken streams reset",
	"metered: one event per metered response, usage exact, within max_response_tokens",
	"slots: every concurrency slot given back once the connection is gone",
	"told: a client whose connection XDP reset is reset at its resend",
};
static unsigned long long prop_checked[P_NR];
/* Metered responses whose tail read two ways (tail_read_two_ways()): not held to exactness. */
static unsigned long long tails_two_ways;
static unsigned long long executions, local_runs, refusals, kept_open, resets, xdp_runs, tc_runs;
static unsigned long long ref_stops[4], requests_complete; /* what the reference saw */

static void report(void);

/* A broken property: what was checked so far, then fuzz.h's report and abort. */
#define FAIL(...)                                                              \
	do {                                                                   \
		report();                                                      \
		fuzz_fail(__VA_ARGS__);                                        \
	} while (0)

/*
 * The BPF programs' behaviour as libFuzzer features: which packet events each run moved and
 * which verdict it gave, so inputs that reach new paths in the kernel are kept too.
 */
__attribute__((section("__libfuzzer_extra_counters"), used)) static uint8_t bpf_features[4096];

/* PKTFUZZ_DEBUG=1: what each input sends and what comes of it, on stderr. */
static int debug;

static void feature(unsigned a, unsigned b)
{
	unsigned i = (a * 131u + b) % sizeof(bpf_features);

	if (bpf_features[i] < 255)
		bpf_features[i]++;
}

/* ---- the environment, set up once ---- */

static struct env env;
static int tc_fd;
static struct ring_buffer *events_rb;
static __u32 account_ids[REF_NR_ACCOUNTS], model_pricey, model_cheap;
static int listener = -1;
static int nr_cpu;

/* Events of one input, as the ring delivers them. */
#define EVENTS_MAX 256
static struct rls_response_event events[EVENTS_MAX];
static size_t nr_events;

static int on_event(void *ctx, void *data, size_t size)
{
	(void)ctx;
	if (size < sizeof(struct rls_response_event))
		FAIL("a ring event of %zu bytes", size);
	if (nr_events < EVENTS_MAX)
		memcpy(&events[nr_events], data, sizeof(events[0]));
	nr_events++;
	return 0;
}

/* TC is in the XDP program's object, on the same maps, as `rlshape load` loads it. */
static void load_tc(void)
{
	tc_fd = bpf_program__fd(env.skel->progs.rlshape_tc);
}

static void report(void)
{
	int i;

	if (!getenv("PKTFUZZ_REPORT"))
		return;
	printf("pktfuzz: executions %llu (on a real loopback connection %llu), xdp runs %llu, "
	       "tc runs %llu, refusals %llu (the connection kept %llu), resets %llu\n", executions,
	       local_runs, xdp_runs, tc_runs, refusals, kept_open, resets);
	printf("pktfuzz: reference: %llu complete requests; streams that end %llu, break %llu, "
	       "open HTTP/2 %llu, leave the common reading %llu\n", requests_complete,
	       ref_stops[REF_END], ref_stops[REF_BROKEN], ref_stops[REF_HTTP2],
	       ref_stops[REF_UNSURE]);
	for (i = 0; i < P_NR; i++)
		printf("pktfuzz: property %d checked %llu times: %s\n", i, prop_checked[i],
		       prop_names[i]);
	printf("pktfuzz: chunked tails that read two ways, estimated: %llu\n", tails_two_ways);
	fflush(stdout);
}

/* The maps emptied after every input, small: emptying walks every bucket of a hash map. */
static int small_maps(struct rlshape_bpf *skel)
{
	struct bpf_map *const maps[] = { skel->maps.rls_flows, skel->maps.rls_counters,
					 skel->maps.rls_anon_counters, skel->maps.rls_stats,
					 skel->maps.rls_tails, skel->maps.rls_pending };
	size_t i;
	int err;

	for (i = 0; i < ARRAY_SIZE(maps); i++)
		if ((err = bpf_map__set_max_entries(maps[i], 256)))
			return err;
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	char why[256];
	int on = 1;

	(void)argc;
	(void)argv;
	/* The harness's cmocka checks abort instead of exiting: libFuzzer then keeps the input. */
	setenv("CMOCKA_TEST_ABORT", "1", 1);
	debug = getenv("PKTFUZZ_DEBUG") != NULL;
	libbpf_set_print(libbpf_keep);
	if (own_netns(why, sizeof(why)))
		FAIL("%s", why);
	env_before_load = small_maps;
	if (env_open(&env, fuzz_table))
		FAIL("loading the XDP program: %s", env.why);
	load_tc();
	events_rb = ring_buffer__new(env.maps.events, on_event, NULL, NULL);
	if (!events_rb)
		FAIL("ring_buffer__new: %s", strerror(errno));
	account_ids[REF_ANON] = RLS_ACCOUNT_ANONYMOUS;
	account_ids[REF_COUNT] = map_account_id(&env.maps, "count");
	account_ids[REF_PRICEY] = map_account_id(&env.maps, "pricey");
	account_ids[REF_METER] = map_account_id(&env.maps, "meter");
	account_ids[REF_SOLO] = map_account_id(&env.maps, "solo");
	model_pricey = map_model_id(&env.maps, "pricey");
	model_cheap = map_model_id(&env.maps, "cheap");
	if (!account_ids[REF_COUNT] || !account_ids[REF_PRICEY] || !account_ids[REF_METER] ||
	    !account_ids[REF_SOLO])
		FAIL("the table's accounts have no ids");
	nr_cpu = rls_nr_cpus();
	/* The upstream of local connections: a listener in this namespace only. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) ||
	    bind(listener, (struct sockaddr *)&a, sizeof(a)) || listen(listener, 64))
		FAIL("listening on 127.0.0.1:%d: %s", PORT, strerror(errno));
	atexit(report);
	return 0;
}

/* ---- reading the input ---- */

static unsigned u8(struct fuzz_input *r)
{
	return (unsigned)fuzz_take(r, 1);
}

static unsigned u16(struct fuzz_input *r)
{
	return (unsigned)fuzz_take(r, 2);
}

/* ---- the client's stream: requests from a small grammar ---- */

#define STREAM_MAX (1u << 21)
static uint8_t stream[STREAM_MAX];
static size_t stream_len;

static void put(const char *s, size_t n)
{
	if (stream_len + n > STREAM_MAX)
		n = STREAM_MAX - stream_len;
	memcpy(stream + stream_len, s, n);
	stream_len += n;
}

static void puts_(const char *s)
{
	put(s, strlen(s));
}

#define LONG_32 "abcdefghijklmnopqrstuvwxyz012345"
#define LONG_320 LONG_32 LONG_32 LONG_32 LONG_32 LONG_32 LONG_32 LONG_32 LONG_32 LONG_32 LONG_32

static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
				       "QUERY", "POST" };
static const char *const targets[] = { "/v1/chat/completions", "/v1/models", "/",
				       "/v1/completions?q=" LONG_320 };
static const char *const key_of[] = { KEY_COUNT, KEY_PRICEY, KEY_METER, KEY_NOBODY, KEY_SOLO };
static const char *const models[] = { NULL, "pricey", "cheap", "deepseek-ai/DeepSeek-R1" };
static const char *const after_colon[] = { " ", "", "   ", "\t", " \t ", " ", " ", " " };
static const char *const trailing[] = { "", "", " ", "\t ", "", "", "  ", "" };

static void header(const char *name, int name_case, const char *ws, const char *value,
		   const char *tail, const char *eol)
{
	char n[64];
	size_t i;

	snprintf(n, sizeof(n), "%s", name);
	for (i = 0; n[i]; i++)
		if (name_case == 1)
			n[i] = (char)tolower((unsigned char)n[i]);
		else if (name_case == 2)
			n[i] = (char)toupper((unsigned char)n[i]);
	puts_(n);
	puts_(":");
	puts_(ws);
	puts_(value);
	puts_(tail);
	puts_(eol);
}

/* The JSON body: the model where asked, in one of the ways README reads (or hides) it. */
static size_t json_body(struct fuzz_input *r, char *out, size_t cap, int huge)
{
	unsigned b = u8(r), kind = b & 7, which = (b >> 3) & 3, late = b & 0x20, max_tokens = b & 0x40;
	const char *m = models[which] ? models[which] : "gpt-unnamed";
	const char *prompt = (b & 0x80) ? "say \\\"model\\\": \\\"pricey\\\"" : "hello";
	char model_part[160] = "";
	size_t n = 0;

	switch (kind) {
	case 0: /* no model */
		break;
	case 1:
	case 2:
	case 3:
		if (models[which])
			snprintf(model_part, sizeof(model_part), "\"model\":\"%s\",", m);
		break;
	case 4: /* an escape in the model: hidden */
		snprintf(model_part, sizeof(model_part), "\"model\":\"ch\\u0065ap\",");
		break;
	case 5: /* two top-level models: hidden */
		snprintf(model_part, sizeof(model_part), "\"model\":\"%s\",\"model\":\"cheap\",", m);
		break;
	case 6: /* an escape in a top-level key: hidden */
		snprintf(model_part, sizeof(model_part), "\"m\\u006fdel\":\"%s\",", m);
		break;
	case 7: /* "model" only inside messages: no model */
		snprintf(model_part, sizeof(model_part), "\"meta\":{\"model\":\"%s\"},", m);
		break;
	}
	n += (size_t)snprintf(out + n, cap - n, "{%s\"messages\":[{\"role\":\"user\",\"content\":\"%s",
			      late ? "" : model_part, prompt);
	if (huge) {
		/* Past what is scanned (README: 1 MiB), by more than a step's slack. */
		size_t pad = REF_BODY_SCAN_MAX + 2 * REF_BODY_SCAN_SLACK;

		if (n + pad + 256 > cap)
			pad = cap - n - 256;
		memset(out + n, 'x', pad);
		n += pad;
	}
	n += (size_t)snprintf(out + n, cap - n, "\"}],%s%s\"stream\":false}", late ? model_part : "",
			      max_tokens ? "\"max_tokens\":17," : "");
	return n;
}

static char body_buf[STREAM_MAX];

/* One request, from about eight bytes of input. */
static void gen_request(struct fuzz_input *r, int allow_huge)
{
	unsigned b0 = u8(r), b1 = u8(r), b2 = u8(r), b3 = u8(r), b4 = u8(r), b5 = u8(r);
	const char *eol = (b0 & 0x20) ? "\n" : "\r\n";
	unsigned key = (b1 >> 2) & 7, form = (b1 >> 5) & 7, hmodel = b2 & 3, hvariant = (b2 >> 2) & 3;
	unsigned framing = b3 & 7, ws = (b2 >> 4) & 7, name_case = (b4 >> 6) % 3;
	int huge = allow_huge && framing == 7 && (b5 & 0xf0) == 0xf0;
	char line[512], value[400];
	size_t body_len = 0, i;
	int order = b4 & 7;

	for (i = 0; i < ((b0 >> 6) & 3) && (b0 & 0x10); i++)
		puts_(eol); /* RFC 9112 2.2: empty lines before a request */
	snprintf(line, sizeof(line), "%s %s HTTP/1.%c%s", methods[b0 & 7], targets[b1 & 3],
		 (b0 & 0x18) == 0x08 ? '0' : '1', eol);
	puts_(line);
	if (framing >= 1 && framing != 4)
		body_len = json_body(r, body_buf, sizeof(body_buf), huge);
	else if (framing == 4)
		body_len = (size_t)snprintf(body_buf, sizeof(body_buf), "model=cheap&x=1");

	/* Headers, in an order the input picks: the key, the model, framing, the rest. */
	for (i = 0; i < 4; i++) {
		switch ((i + (size_t)order) % 4) {
		case 0:
			header("Host", name_case, " ", "gw.test", "", eol);
			if (b5 & 1)
				header("Cookie", name_case, " ", "s=" LONG_320, "", eol);
			if (b5 & 2)
				header("Expect", name_case, " ", "100-continue", "", eol);
			break;
		case 1:
			if (key >= 5)
				break;
			switch (form) {
			case 0:
			case 1:
			case 2:
				snprintf(value, sizeof(value), "%s%s", form == 1 ? "bearer   " :
					 form == 2 ? "BEARER\t" : "Bearer ", key_of[key]);
				header("Authorization", name_case, after_colon[ws], value,
				       trailing[ws], eol);
				break;
			case 3:
				header("X-Api-Key", name_case, after_colon[ws], key_of[key],
				       trailing[ws], eol);
				break;
			case 4: /* both: authorization is listed first and wins */
				header("X-Api-Key", name_case, " ", KEY_COUNT, "", eol);
				snprintf(value, sizeof(value), "Bearer %s", key_of[key]);
				header("Authorization", name_case, " ", value, "", eol);
				break;
			case 5: /* authorization that is no Bearer: the x-api-key */
				header("Authorization", name_case, " ", "Basic dXNlcjpwYXNz", "", eol);
				header("X-Api-Key", name_case, " ", key_of[key], "", eol);
				break;
			case 6: /* an empty Bearer: no key from it */
				header("Authorization", name_case, " ", "Bearer", "", eol);
				break;
			default:
				snprintf(value, sizeof(value), "Bearer %s", key_of[key]);
				header("authorization", 0, "", value, "", eol);
				break;
			}
			break;
		case 2:
			if (!hmodel && hvariant != 3)
				break;
			switch (hvariant) {
			case 0:
			case 1:
				header("X-Model", name_case, after_colon[ws],
				       models[hmodel] ? models[hmodel] : "other", trailing[ws], eol);
				break;
			case 2: /* two model headers: hidden */
				header("X-Model", name_case, " ", models[hmodel] ? models[hmodel] : "x",
				       "", eol);
				header("X-Model", name_case, " ", "cheap", "", eol);
				break;
			default: /* folded: hidden */
				header("X-Model", name_case, " ", "cheap", "", eol);
				puts_(" pricey");
				puts_(eol);
				break;
			}
			break;
		case 3:
			if (framing == 0)
				break;
			if (framing == 5 || framing == 6) {
				header("Transfer-Encoding", name_case, " ",
				       framing == 6 ? "gzip, chunked" : "chunked", "", eol);
			} else if (framing == 3) {
				header("Content-Length", name_case, " ", "0", "", eol);
			} else {
				snprintf(value, sizeof(value), "%zu", body_len);
				header("Content-Length", name_case, after_colon[ws], value, "", eol);
			}
			header("Content-Type", name_case, " ", "application/json", "", eol);
			break;
		}
	}
	puts_(eol);
	if (framing == 5 || framing == 6) {
		/* Chunks of a size the input picks; extensions and trailers sometimes. */
		size_t chunk = 1 + (b5 >> 2) % 40, off = 0;

		while (off < body_len) {
			size_t n = body_len - off < chunk ? body_len - off : chunk;

			snprintf(line, sizeof(line), "%zx%s%s", n,
				 (b5 & 0x80) ? ";ext=\"{\\\"model\\\":\\\"cheap\\\"}\"" : "", eol);
			puts_(line);
			put(body_buf + off, n);
			puts_(eol);
			off += n;
			chunk = chunk * 3 % 41 + 1;
		}
		puts_("0");
		puts_(eol);
		if (b5 & 0x40) {
			puts_("X-Trailer: {\"model\":\"pricey\"}");
			puts_(eol);
		}
		puts_(eol);
	} else if (framing != 3 && framing != 0) {
		put(body_buf, body_len);
	}
}

/* Flip, insert or delete a few bytes anywhere. */
static void mutate(struct fuzz_input *r)
{
	unsigned n = u8(r) & 3, i;

	for (i = 0; i < n && stream_len; i++) {
		unsigned kind = u8(r) % 3, at = u16(r) % stream_len, v = u8(r);

		if (kind == 0) {
			stream[at] ^= (uint8_t)(v ? v : 0x20);
		} else if (kind == 1 && stream_len < STREAM_MAX) {
			memmove(stream + at + 1, stream + at, stream_len - at);
			stream[at] = (uint8_t)v;
			stream_len++;
		} else {
			memmove(stream + at, stream + at + 1, stream_len - at - 1);
			stream_len--;
		}
	}
}

/* ---- one connection ---- */

#define SEG_MAX   1400 /* an Ethernet MSS */
/* With a large body: what BPF_PROG_TEST_RUN keeps linear (a page less XDP's headroom and
 * tailroom: 3,520 bytes of frame); larger test frames get fragments, which no program attached
 * without xdp.frags ever sees. */
#define SEG_HUGE  3200
#define SEGS_MAX  4096

struct seg {
	size_t off, len;
};

struct sim {
	struct conn c;      /* the client: c.seq is unused, offsets are relative to isn */
	uint32_t isn;       /* client sequence number of stream byte 0 */
	uint32_t srv_isn;   /* the upstream's sequence number of its byte 0 */
	uint32_t srv_next;  /* the upstream's next sequence number */
	int local;          /* a real loopback connection (server_fd in repair mode) */
	int client_fd, server_fd;
	/* The upstream's receiver: what it holds, in order, and what came ahead of a gap. */
	uint8_t *have;
	size_t rcv;         /* stream bytes the upstream holds in order */
	int upstream_reset; /* a RST at its next byte reached it */
	int reset_seen;     /* a RST was sent toward it at all */
	int client_reset;   /* XDP reset the client (its resend of a segment made a reset) */
	/* The client segment whose reset reached the upstream, as the client sent it: resent. */
	int reset_noted, resending;
	size_t reset_off, reset_len;
	uint8_t reset_flags;
	uint32_t reset_ack;
	/* The 429. */
	int refused;
	int kept_open; /* the 429 kept the connection (README: A 429 that keeps the connection) */
	uint32_t reply_end;
	size_t refused_read_end; /* the stream offset where the refused segment's bytes ended */
	/* What XDP has read: the stream's parse position (segments passed, not forged). */
	size_t xdp_read;
	/* The upstream's answers: one per complete request it holds. */
	size_t answered;
	int answer_chunked[256];
	uint64_t answer_tokens[256];
	int ack_lag;        /* the client's next segment acknowledges nothing new */
	uint32_t cli_ack;   /* what the client acknowledges of the upstream */
	int started_ahead;  /* routed: XDP let bytes past a gap through (a stream begun there) */
	size_t flood_at;    /* where a segment ending more than 32 requests was read from */
	size_t answer_read[256];  /* what XDP had read when the answer went out */
	int answer_usage_kept[256]; /* the usage object lies in the bytes TC keeps */
	int answer_head_whole[256]; /* its status line and headers came in one segment */
	struct fuzz_input *r;
	const struct ref_result *ref;
};

static uint8_t have_buf[STREAM_MAX];

/* The stream position of a client sequence number. */
static size_t off_of(const struct sim *z, uint32_t seq)
{
	return (size_t)(uint32_t)(seq - z->isn);
}

static struct rls_flow_key flow_key(const struct sim *z)
{
	return conn_flow_key(&z->c);
}

/* ---- packet counters and stats ---- */

static void packets_snapshot(__u64 *out)
{
	__u32 ev;

	for (ev = 0; ev < RLS_NR_PACKET_EVENTS; ev++)
		out[ev] = packets_of(&env, ev);
}

struct tally {
	__u64 admitted[REF_NR_ACCOUNTS][REF_NR_CLASSES];
	__u64 rejected[REF_NR_ACCOUNTS];
	__u64 other_accounts; /* stats of no account of the table: must stay 0 */
};

static int class_of_model(__u32 model)
{
	if (model == RLS_MODEL_HIDDEN)
		return REF_HIDDEN;
	if (model == model_pricey)
		return REF_M_PRICEY;
	if (model == model_cheap)
		return REF_M_CHEAP;
	if (model == RLS_MODEL_OTHER)
		return REF_OTHER;
	return -1;
}

static void tally_read(struct tally *t)
{
	struct rls_stats_pair *pairs;
	size_t n, i;
	__u64 rej;
	int a, c, r;

	memset(t, 0, sizeof(*t));
	if (rls_stats_read_all(&env.maps, &pairs, &n))
		FAIL("cannot read the outcome counts");
	for (i = 0; i < n; i++) {
		for (a = 0; a < REF_NR_ACCOUNTS; a++)
			if (account_ids[a] == pairs[i].key.account)
				break;
		c = class_of_model(pairs[i].key.model);
		for (rej = 0, r = 0; r < RLS_NR_REASONS; r++)
			rej += pairs[i].total.rejected[r];
		if (a == REF_NR_ACCOUNTS || c < 0) {
			t->other_accounts += pairs[i].total.admitted + rej;
			continue;
		}
		t->admitted[a][c] += pairs[i].total.admitted;
		t->rejected[a] += rej;
	}
	free(pairs);
}

static int tally_equal(const struct tally *a, const struct tally *b)
{
	return !memcmp(a, b, sizeof(*a));
}

static bool every_pair(const void *key, const void *value, const void *ctx)
{
	(void)key;
	(void)value;
	(void)ctx;
	return true;
}

/* Empty a map between inputs: each input starts from a fresh table state. */
static void clear_map(int fd, size_t key_size)
{
	int err = env_empty_map(fd, key_size);

	if (err)
		FAIL("cannot empty a map between inputs: %s", strerror(-err));
}

static void reset_state(void)
{
	clear_map(env.maps.flows, sizeof(struct rls_flow_key));
	clear_map(env.maps.counters, sizeof(struct rls_counter_key));
	clear_map(env.maps.anon_counters, sizeof(struct rls_counter_key));
	rls_stats_give_back_where(&env.maps, every_pair, NULL);
	/* This CPU's memo names rows just given back (flow_memo.h): gone with the scratch. */
	if (env_zero_array(bpf_map__fd(env.skel->maps.rls_scratch),
			   ((bpf_map__value_size(env.skel->maps.rls_scratch) + 7) & ~(size_t)7) *
				   (size_t)nr_cpu, 1))
		FAIL("cannot clear the scratch map between inputs");
	clear_map(env.maps.tails, sizeof(struct rls_flow_key));
	clear_map(env.maps.pending, sizeof(struct rls_counter_key));
	ring_buffer__consume(events_rb);
	nr_events = 0;
}

/* ---- the upstream's receiver ---- */

/* The upstream's socket takes bytes at its sequence numbers; what it holds already it keeps. */
static void upstream_takes(struct sim *z, uint32_t seq, const uint8_t *p, size_t n)
{
	size_t off = off_of(z, seq), before = z->rcv;
	const uint8_t *gap;

	if (z->upstream_reset || !n)
		return;
	if (off >= stream_len || n > stream_len - off)
		FAIL("the upstream got bytes past the client's stream ([%zu, %zu) of %zu)", off,
		     off + n, stream_len);
	if (memcmp(p, stream + off, n))
		FAIL("the upstream got bytes the client never sent in [%zu, %zu)", off, off + n);
	memset(z->have + off, 1, n);
	gap = memchr(z->have + z->rcv, 0, stream_len - z->rcv);
	z->rcv = gap ? (size_t)(gap - z->have) : stream_len;
	if (z->local && z->rcv > before) {
		/* The real socket takes them too (repair mode writes its receive queue), so that
		 * its rcv_nxt is where XDP's socket lookups expect it. */
		int q = TCP_RECV_QUEUE;
		ssize_t w;

		if (setsockopt(z->server_fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)))
			FAIL("TCP_REPAIR_QUEUE: %s", strerror(errno));
		w = send(z->server_fd, stream + before, z->rcv - before, 0);
		if (w != (ssize_t)(z->rcv - before))
			FAIL("writing %zu bytes to the server's receive queue: %s", z->rcv - before,
			     strerror(errno));
	}
}

/* ---- the upstream's answers, through TC ---- */

static void tc_frame(struct sim *z, const uint8_t *payload, size_t len, uint8_t flags)
{
	struct tp_spec s = {
		.ipv6 = z->c.ipv6, .vlan = z->c.vlan, .vlan_tci = z->c.tci, .saddr = z->c.server,
		.daddr = z->c.client, .sport = z->c.dport, .dport = z->c.sport, .seq = z->srv_next,
		.ack = z->isn + (uint32_t)z->rcv, .flags = flags, .payload = payload, .len = len,
	};
	uint8_t in[TP_MAX_FRAME], out[TP_MAX_FRAME];
	size_t in_len = tp_build(&s, in, sizeof(in));
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = (__u32)in_len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);
	int err;

	if (!in_len)
		FAIL("cannot build a %zu-byte response frame", len);
	err = bpf_prog_test_run_opts(tc_fd, &opts);
	tc_runs++;
	prop_checked[P_SOUND]++;
	if (err)
		FAIL("TC test run: %s", strerror(-err));
	if (opts.retval != 0)
		FAIL("TC returned %u, not TC_ACT_OK", opts.retval);
	if (opts.data_size_out != in_len || memcmp(in, out, in_len))
		FAIL("TC changed a response packet");
	z->srv_next += (uint32_t)len + !!(flags & TP_FIN);
	if (debug)
		fprintf(stderr, "tc %zu bytes flags %#x: %.*s\n", len, flags,
			(int)(len < 40 ? len : 40), payload ? (const char *)payload : "");
	feature(200, opts.retval);
}

/* A response with usage, content-length or chunked, cut as the input says. */
static void answer(struct sim *z, size_t idx)
{
	struct fuzz_input *r = z->r;
	unsigned b = u8(r), cut = 1 + u8(r) % 200;
	static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";
	static const uint64_t absurd[] = { 9007199254740992ull, 9007199254740991ull, 4999, 5000,
					   5001, 123456789 };
	uint64_t total = (b & 0x30) == 0x30 ? absurd[u8(r) % 6] : 20 + u8(r) * 7;
	uint64_t prompt = total / 3;
	char body[1024], head[256], resp[4096];
	size_t bl, hl, n = 0, off, usage_at, usage_raw = 0, split;
	int chunked = b & 1;

	bl = (size_t)snprintf(body, sizeof(body),
			      "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{"
			      "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},"
			      "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":%llu,"
			      "\"completion_tokens\":%llu,\"total_tokens\":%llu}}",
			      (b & 2) ? LONG_320 : "ok", (unsigned long long)prompt,
			      (unsigned long long)(total - prompt), (unsigned long long)total);
	usage_at = (size_t)(strstr(body, "\"usage\"") - body);
	if (chunked) {
		hl = (size_t)snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\ncontent-type: "
				      "application/json\r\ntransfer-encoding: chunked\r\n\r\n");
		memcpy(resp, head, hl);
		n = hl;
		/* Chunks that cut the usage object where the input says. */
		for (off = 0; off < bl;) {
			size_t c = bl - off < cut ? bl - off : cut;

			n += (size_t)snprintf(resp + n, sizeof(resp) - n, "%zx\r\n", c);
			if (usage_at >= off && usage_at < off + c)
				usage_raw = n + usage_at - off;
			memcpy(resp + n, body + off, c);
			n += c;
			memcpy(resp + n, "\r\n", 2);
			n += 2;
			off += c;
		}
		memcpy(resp + n, "0\r\n\r\n", 5);
		n += 5;
	} else {
		hl = (size_t)snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\ncontent-type: "
				      "application/json\r\ncontent-length: %zu\r\n\r\n", bl);
		memcpy(resp, head, hl);
		memcpy(resp + hl, body, bl);
		n = hl + bl;
		usage_raw = hl + usage_at;
	}
	/* An interim 100 Continue in front of it, in the same segment. */
	if (b & 8) {
		memmove(resp + sizeof(interim) - 1, resp, n);
		memcpy(resp, interim, sizeof(interim) - 1);
		n += sizeof(interim) - 1;
		hl += sizeof(interim) - 1;
		usage_raw += sizeof(interim) - 1;
	}
	/* In one or more segments: the last holds the usage when it is long enough. */
	split = (b & 0x40) ? (n > 600 ? n - 600 : n / 2) : 0;
	if (idx < 256) {
		z->answer_chunked[idx] = chunked;
		z->answer_tokens[idx] = total;
		/* TC keeps a segment's last RLS_TAIL_MAX bytes: the daemon reads usage there. */
		z->answer_usage_kept[idx] = usage_raw >= split && n - usage_raw <= RLS_TAIL_MAX - 8;
		/* TC reads the status line and headers in the response's first segment; a head
		 * cut in two is followed to the connection's close instead (by design). */
		z->answer_head_whole[idx] = !split || split >= hl;
	}
	/* An interim 100 Continue first, in a segment of its own: TC waits for the real head. */
	if (b & 4)
		tc_frame(z, (const uint8_t *)interim, sizeof(interim) - 1, 0);
	if (split) {
		tc_frame(z, (const uint8_t *)resp, split, 0);
		tc_frame(z, (const uint8_t *)resp + split, n - split, 0);
	} else {
		tc_frame(z, (const uint8_t *)resp, n, 0);
	}
	if (!(b & 0x80))
		z->ack_lag = 0;
}

/* Answer every request the upstream now holds whole. */
static void upstream_answers(struct sim *z)
{
	const struct ref_result *ref = z->ref;

	while (z->answered < ref->n && ref->req[z->answered].end <= z->rcv && !z->upstream_reset) {
		/* A stop before this request's end: the upstream refuses what follows. */
		if (ref->stop != REF_END && ref->req[z->answered].end > ref->stop_at)
			break;
		if (z->answered < 256)
			z->answer_read[z->answered] = z->xdp_read;
		answer(z, z->answered);
		z->answered++;
	}
}

/* ---- sending a client segment through XDP ---- */

static int xdp_frame(const struct tp_spec *s, uint8_t *out, uint32_t *out_len, size_t *in_len)
{
	static uint8_t in[TP_MAX_FRAME];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_out = out,
		    .data_size_out = TP_MAX_FRAME, .repeat = 1);
	int err;

	*in_len = tp_build(s, in, sizeof(in));
	if (!*in_len)
		FAIL("cannot build a %zu-byte client frame", s->len);
	opts.data_size_in = (__u32)*in_len;
	err = bpf_prog_test_run_opts(env.prog_fd, &opts);
	xdp_runs++;
	if (err)
		FAIL("XDP test run: %s", strerror(-err));
	*out_len = opts.data_size_out;
	prop_checked[P_SOUND]++;
	if (opts.retval != XDP_PASS && opts.retval != XDP_DROP && opts.retval != XDP_TX)
		FAIL("XDP returned %s (%u)", xdp_name((int)opts.retval), opts.retval);
	if (opts.retval != XDP_TX && opts.retval != XDP_DROP && *out_len == *in_len &&
	    memcmp(in, out, *in_len) == 0)
		return XDP_PASS; /* untouched */
	if (opts.retval == XDP_PASS) {
		/* Changed: a cut segment or a reset; check its frame. */
		return XDP_PASS | 0x100;
	}
	return (int)opts.retval;
}

static void parse_out(const uint8_t *out, uint32_t len, struct tp_parsed *p, const char *what)
{
	char why[160];

	if (tp_parse(out, len, p, why, sizeof(why)))
		FAIL("%s: the frame XDP wrote does not parse: %s", what, why);
	if (!p->ip_csum_ok || !p->tcp_csum_ok)
		FAIL("%s: bad %s checksum in the frame XDP wrote", what,
		     p->ip_csum_ok ? "TCP" : "IP");
	prop_checked[P_SOUND]++;
}

/* A RST XDP sent toward the upstream: it must come at the upstream's next byte to count. */
static void reset_reaches_upstream(struct sim *z, const struct tp_parsed *p)
{
	z->reset_seen = 1;
	resets++;
	prop_checked[P_REFUSED]++;
	if (z->upstream_reset)
		return;
	/*
	 * A routed connection is followed from the first bytes XDP sees (README); where they
	 * came past a gap, XDP's stream starts ahead of the upstream's and its reset misses.
	 * That changes nothing the upstream holds: the client's next bytes are followed anew.
	 */
	if (!z->local && (int32_t)(p->seq - (z->isn + (uint32_t)z->rcv)) > 0 && z->started_ahead)
		return;
	if (p->seq != z->isn + (uint32_t)z->rcv)
		FAIL("a reset toward the upstream at stream offset %zu, but the upstream holds %zu "
		     "bytes: its socket ignores it and stays open (RFC 5961)", off_of(z, p->seq),
		     z->rcv);
	z->upstream_reset = 1;
}

/*
 * Send stream bytes [off, off + len) with flags; what XDP does with it is checked and played:
 * passed bytes reach the upstream, a reset closes it, a 429 reaches the client.
 */
static int client_sends(struct sim *z, size_t off, size_t len, uint8_t flags)
{
	static uint8_t out[TP_MAX_FRAME];
	struct tp_spec s;
	struct tp_parsed p;
	uint32_t out_len;
	size_t in_len;
	__u64 before[RLS_NR_PACKET_EVENTS], after[RLS_NR_PACKET_EVENTS];
	int action;
	__u32 ev;

	/* The upstream's socket is gone: the client's next segment would meet a reset (but for
	 * its resend of the one that became it, below). Or the client's socket is gone. */
	if ((z->upstream_reset && !z->resending) || z->client_reset)
		return XDP_DROP;
	s = spec_of(&z->c, stream + off, len, flags);
	s.seq = z->isn + (uint32_t)off;
	if (!z->ack_lag)
		z->cli_ack = z->srv_next;
	s.ack = z->resending ? z->reset_ack : z->cli_ack;
	packets_snapshot(before);
	action = xdp_frame(&s, out, &out_len, &in_len);
	packets_snapshot(after);
	if (after[RLS_PKT_UNPARSED] != before[RLS_PKT_UNPARSED])
		FAIL("XDP could not parse a well-formed frame ([%zu, %zu) of the stream)", off,
		     off + len);
	for (ev = 0; ev < RLS_NR_PACKET_EVENTS; ev++)
		if (after[ev] != before[ev])
			feature(ev + 1, (unsigned)(action & 0xff) * 4 + (after[ev] - before[ev] > 1));
	feature(100, (unsigned)action);
	if (debug)
		fprintf(stderr, "xdp [%zu, %zu) flags %#x ack %u: action %#x, out %u bytes\n", off,
			off + len, flags, s.ack, action, out_len);
	if ((action & 0xff) == XDP_PASS && len && off > z->rcv && !z->upstream_reset)
		z->started_ahead = 1;
	switch (action) {
	case XDP_PASS:
		if (len && !(flags & TP_RST)) {
			size_t from = z->xdp_read > off ? z->xdp_read : off, ends = 0, q;

			/* README: a single segment holding more than 32 requests is reset. */
			for (q = 0; q < z->ref->n; q++)
				if (z->ref->req[q].end > from && z->ref->req[q].end <= off + len &&
				    (z->ref->stop == REF_END || z->ref->req[q].end <= z->ref->stop_at))
					ends++;
			prop_checked[P_SOUND]++;
			if (ends > 32)
				FAIL("a segment that ends %zu requests passed", ends);
			if (off + len > z->xdp_read)
				z->xdp_read = off + len;
		}
		upstream_takes(z, s.seq, stream + off, len);
		if (flags & TP_RST)
			z->upstream_reset = z->upstream_reset || s.seq == z->isn + (uint32_t)z->rcv;
		break;
	case XDP_PASS | 0x100:
		parse_out(out, out_len, &p, "a passed segment XDP changed");
		if (len) {
			size_t from = z->xdp_read > off ? z->xdp_read : off, ends = 0, q;

			for (q = 0; q < z->ref->n; q++)
				if (z->ref->req[q].end > from && z->ref->req[q].end <= off + len)
					ends++;
			if (ends > 32 && from < z->flood_at)
				z->flood_at = from;
		}
		if (p.sport != z->c.sport || p.dport != z->c.dport)
			FAIL("a changed segment XDP passed goes elsewhere");
		if (p.flags & TP_RST) {
			if (p.len)
				FAIL("a reset toward the upstream carries %zu bytes", p.len);
			reset_reaches_upstream(z, &p);
			if (z->upstream_reset && !z->reset_noted) {
				z->reset_noted = 1;
				z->reset_off = off;
				z->reset_len = len;
				z->reset_flags = flags;
				z->reset_ack = s.ack;
			}
		} else {
			if (p.seq != s.seq || p.len >= len || memcmp(p.payload, stream + off, p.len))
				FAIL("a cut segment is not a prefix of what the client sent");
			upstream_takes(z, p.seq, p.payload, p.len);
		}
		break;
	case XDP_TX:
		parse_out(out, out_len, &p, "a 429");
		if (p.sport != z->c.dport || p.dport != z->c.sport)
			FAIL("a frame XDP sent back is not addressed to the client");
		/* README, "What a reset tells the client": its resend of a segment XDP made a
		 * reset is answered with a reset, at the number the client expects. */
		if (p.flags & TP_RST) {
			if (!z->reset_seen)
				FAIL("XDP reset a client whose connection it had not reset");
			if (p.len || p.seq != s.ack)
				FAIL("the client's reset carries %zu bytes at %u; it acknowledged %u",
				     p.len, p.seq, s.ack);
			z->client_reset = 1;
			break;
		}
		if (p.len < 13 || memcmp(p.payload, "HTTP/1.1 429 ", 13))
			FAIL("XDP sent back something that is not a 429: %.*s",
			     (int)(p.len < 40 ? p.len : 40), p.payload);
		/* README: the 429 starts where the client stands. */
		if (p.seq != s.ack)
			FAIL("the 429 starts at %u, the client acknowledged %u", p.seq, s.ack);
		z->refused = 1;
		/* README: a 429 after which the connection goes on, renumbered, says keep-alive; or,
		 * to a client that asked to close, says close and carries our FIN (a 429 that closes
		 * otherwise carries one only where the client's segment had its own). */
		z->kept_open = memmem(p.payload, p.len, "\r\nconnection: keep-alive\r\n", 26) != NULL;
		if (z->kept_open && (p.flags & TP_FIN))
			FAIL("a 429 that keeps the connection carries a FIN");
		if ((p.flags & TP_FIN) && !(flags & TP_FIN))
			z->kept_open = 1;
		feature(210, (unsigned)z->kept_open);
		z->reply_end = p.seq + (uint32_t)p.len + !!(p.flags & TP_FIN);
		break;
	default:
		break;
	}
	upstream_answers(z);
	return action;
}

/* A forged segment: a whole request, where no connection would take it. Nothing may change. */
static void forged(struct sim *z, unsigned kind)
{
	static uint8_t out[TP_MAX_FRAME];
	static const char req[] = "POST /v1/chat/completions HTTP/1.1\r\nAuthorization: Bearer "
				  KEY_PRICEY "\r\nContent-Length: 18\r\n\r\n{\"model\":\"pricey\"}";
	struct rls_flow_key k = flow_key(z);
	struct rls_flow f_before, f_after;
	struct tally t_before, t_after;
	int had = bpf_map_lookup_elem(env.maps.flows, &k, &f_before) == 0, has;
	struct tp_spec s = spec_of(&z->c, req, sizeof(req) - 1, 0);
	uint32_t out_len;
	size_t in_len;
	int action;

	if (kind & 1) {
		/* Far outside the stream: behind it by a quarter of the sequence space, or ahead. */
		s.seq = z->isn + (uint32_t)z->rcv + ((kind & 2) ? 0x40000000u : 0xc0000000u);
	} else if (z->local) {
		/* From a port with no connection: only the listener would take it. */
		s.sport = (uint16_t)(z->c.sport ^ 0x5a5a);
	} else {
		/* Routed: nothing tells a forged in-window segment apart (README); far off only. */
		s.seq = z->isn + (uint32_t)z->rcv + 0x80000000u;
	}
	/* A routed connection not followed yet is followed from any first bytes (README: the
	 * operator drops forged segments in front): nothing to check there. */
	if (!z->local && !had)
		return;
	tally_read(&t_before);
	action = xdp_frame(&s, out, &out_len, &in_len);
	tally_read(&t_after);
	has = bpf_map_lookup_elem(env.maps.flows, &k, &f_after) == 0;
	prop_checked[P_FORGED]++;
	if (!tally_equal(&t_before, &t_after))
		FAIL("a forged segment (kind %u) was counted", kind);
	if (action == XDP_TX)
		FAIL("a forged segment (kind %u) was answered with a 429", kind);
	if ((action & 0xff) == XDP_PASS && action != XDP_PASS)
		FAIL("a forged segment (kind %u) was changed", kind);
	if (had != has || (had && memcmp(&f_before, &f_after, sizeof(f_before)) &&
			   (f_before.last_seen_ns = f_after.last_seen_ns,
			    memcmp(&f_before, &f_after, sizeof(f_before)))))
		FAIL("a forged segment (kind %u) changed the connection's flow", kind);
	feature(150, (unsigned)action);
}

/* ---- real loopback connections ---- */

static int repair(int fd, int on)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on));
}

static int queue_seq(int fd, int queue, uint32_t *seq)
{
	socklen_t sl = sizeof(*seq);

	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof(queue)))
		return -1;
	return getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, seq, &sl);
}

/*
 * connect(), where libFuzzer's timer (SIGALRM, for -timeout) may interrupt it: the attempt
 * then goes on (connect(2)), and its end is waited for. Seen on a loaded machine, where the
 * handshake over loopback was not done before the timer fired.
 */
static int connect_through_signals(int fd, const struct sockaddr_in *a)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int err = 0;

	if (connect(fd, (const struct sockaddr *)a, sizeof(*a)) == 0)
		return 0;
	if (errno != EINTR)
		return -1;
	while (poll(&p, 1, -1) < 0)
		if (errno != EINTR)
			return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return -1;
	errno = err;
	return err ? -1 : 0;
}

static void local_open(struct sim *z)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	socklen_t al = sizeof(a);
	uint32_t rcv, snd;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	z->client_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (z->client_fd < 0 || connect_through_signals(z->client_fd, &a))
		FAIL("connecting to 127.0.0.1:%d: %s", PORT, strerror(errno));
	do
		z->server_fd = accept(listener, NULL, NULL);
	while (z->server_fd < 0 && errno == EINTR);
	if (z->server_fd < 0 || getsockname(z->client_fd, (struct sockaddr *)&a, &al))
		FAIL("accept: %s", strerror(errno));
	/* Both quiet from now on: what the kernel would send, the fuzzer plays. */
	if (repair(z->client_fd, 1) || repair(z->server_fd, 1) ||
	    queue_seq(z->server_fd, TCP_RECV_QUEUE, &rcv) ||
	    queue_seq(z->server_fd, TCP_SEND_QUEUE, &snd))
		FAIL("TCP_REPAIR: %s", strerror(errno));
	z->c = conn4(ntohs(a.sin_port));
	z->c.client = "127.0.0.1";
	z->c.server = "127.0.0.1";
	z->isn = rcv;
	z->srv_isn = z->srv_next = snd;
}

/* What the real server socket holds must be what the fuzzer says the upstream holds. */
static void local_close(struct sim *z)
{
	static uint8_t got[STREAM_MAX];
	ssize_t n = 0;
	int q = TCP_RECV_QUEUE;

	if (!z->upstream_reset && z->rcv < 65536) {
		if (setsockopt(z->server_fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)))
			FAIL("TCP_REPAIR_QUEUE: %s", strerror(errno));
		n = recv(z->server_fd, got, sizeof(got), MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && z->rcv)
			FAIL("peeking at the server's receive queue: %s", strerror(errno));
		if (n >= 0 && ((size_t)n != z->rcv || memcmp(got, stream, (size_t)n)))
			FAIL("the server socket holds %zd bytes, the fuzzer's upstream %zu", n, z->rcv);
	}
	/* Closed in repair mode: silently, no FIN, no TIME_WAIT. */
	close(z->client_fd);
	close(z->server_fd);
}

/* ---- the checks against the reference ---- */

/* What the reference expects counted, at least and at most. */
struct expect {
	__u64 must[REF_NR_ACCOUNTS][REF_NR_CLASSES]; /* admitted with this class */
	__u64 must_any[REF_NR_ACCOUNTS];             /* admitted, any class */
	__u64 may_more[REF_NR_ACCOUNTS];             /* more may have been admitted */
	int exact;                                    /* nothing uncertain */
	int refused;                                  /* index of the refused request, or -1 */
	int must_reset;                               /* a stop the data path must reset at */
};

/*
 * The admission model of the table: pricey's requests of model pricey, and its hidden ones
 * (README: charged as the tier's strictest model), share two a day; nothing else is near a
 * limit. Requests are decided in stream order at their last byte; the first refused ends the
 * connection's counting (README: client data after a refused request is dropped).
 */
static void expected(const struct ref_result *ref, size_t read_stop, struct expect *x)
{
	size_t i, pricey_used = 0;

	memset(x, 0, sizeof(*x));
	x->exact = 1;
	x->refused = -1;
	x->must_reset = ref->stop == REF_BROKEN || ref->stop == REF_HTTP2;
	for (i = 0; i < ref->n; i++) {
		const struct ref_request *q = &ref->req[i];

		if (q->end > read_stop) {
			/* Requests whose end the data path may or may not have read. */
			x->exact = 0;
			for (; i < ref->n; i++)
				x->may_more[ref->req[i].account]++;
			break;
		}
		if (ref->stop != REF_END && q->end > ref->stop_at)
			break;
		if (q->account == REF_PRICEY && q->cls == REF_ANY) {
			/* Whether it spends pricey's day is not known: what follows is uncertain. */
			x->exact = 0;
			for (; i < ref->n; i++)
				x->may_more[ref->req[i].account]++;
			break;
		}
		if (q->account == REF_PRICEY && (q->cls == REF_M_PRICEY || q->cls == REF_HIDDEN) &&
		    pricey_used++ >= PRICEY_PER_DAY) {
			x->refused = (int)i;
			x->must_reset = 0;
			return;
		}
		if (q->cls == REF_ANY)
			x->must_any[q->account]++;
		else
			x->must[q->account][q->cls]++;
	}
	if (ref->stop == REF_UNSURE) {
		int a;

		x->exact = 0;
		for (a = 0; a < REF_NR_ACCOUNTS; a++)
			x->may_more[a] += 1000000;
	}
}

static void check_counts(struct sim *z, const struct tally *t, const struct expect *x)
{
	int a, c;

	prop_checked[P_EXACT]++;
	if (t->other_accounts)
		FAIL("%llu requests charged to no account or model of the table",
		     (unsigned long long)t->other_accounts);
	for (a = 0; a < REF_NR_ACCOUNTS; a++) {
		__u64 total = 0, must_total = x->must_any[a], spare;

		for (c = 0; c < REF_NR_CLASSES; c++) {
			total += t->admitted[a][c];
			must_total += x->must[a][c];
		}
		if (total < must_total || total > must_total + x->may_more[a])
			FAIL("account %d: admitted %llu, the reference says %llu%s (stream %zu bytes, "
			     "upstream holds %zu, stop %d at %zu)", a, (unsigned long long)total,
			     (unsigned long long)must_total, x->may_more[a] ? " or more" : "",
			     stream_len, z->rcv, z->ref->stop, z->ref->stop_at);
		/* Each class at least as expected; the spare ones are the any-class requests and
		 * those that may have been read past the reference's certainty. */
		spare = x->must_any[a] + x->may_more[a];
		for (c = 0; c < REF_NR_CLASSES; c++) {
			if (t->admitted[a][c] < x->must[a][c])
				FAIL("account %d, class %d: admitted %llu, the reference says %llu", a,
				     c, (unsigned long long)t->admitted[a][c],
				     (unsigned long long)x->must[a][c]);
			if (t->admitted[a][c] > x->must[a][c] + spare)
				FAIL("account %d, class %d: admitted %llu, the reference says at most "
				     "%llu", a, c, (unsigned long long)t->admitted[a][c],
				     (unsigned long long)(x->must[a][c] + spare));
		}
	}
	if (x->exact && x->refused < 0) {
		for (a = 0; a < REF_NR_ACCOUNTS; a++)
			if (t->rejected[a])
				FAIL("account %d: %llu rejected, the reference refuses none", a,
				     (unsigned long long)t->rejected[a]);
	}
	if (x->refused >= 0) {
		const struct ref_request *q = &z->ref->req[x->refused];

		prop_checked[P_REFUSED]++;
		if (t->rejected[REF_PRICEY] != 1)
			FAIL("pricey: %llu rejected, the reference refuses request %d",
			     (unsigned long long)t->rejected[REF_PRICEY], x->refused);
		if (z->rcv >= q->end)
			FAIL("the upstream holds the whole refused request [%zu, %zu) (%zu bytes)",
			     q->start, q->end, z->rcv);
		if (x->refused > 0 && z->rcv < z->ref->req[x->refused - 1].end)
			FAIL("the upstream lacks admitted request %d: it holds %zu bytes, the request "
			     "ends at %zu", x->refused - 1, z->rcv, z->ref->req[x->refused - 1].end);
		if (!z->refused)
			FAIL("request %d was refused, and no 429 came back", x->refused);
	}
}

/*
 * (a) The upstream's side: every request it holds whole must have been admitted to its
 * account, and to its model or as hidden (stricter). Holds whatever the reference is unsure of.
 */
static void check_served(struct sim *z, const struct tally *t)
{
	const struct ref_result *ref = z->ref;
	__u64 served[REF_NR_ACCOUNTS][REF_NR_CLASSES + 1] = { { 0 } };
	size_t i;
	int a, c;

	for (i = 0; i < ref->n && ref->req[i].end <= z->rcv; i++) {
		if (ref->stop != REF_END && ref->req[i].end > ref->stop_at)
			break;
		served[ref->req[i].account][ref->req[i].cls]++;
	}
	prop_checked[P_SERVED]++;
	for (a = 0; a < REF_NR_ACCOUNTS; a++) {
		__u64 total = 0, admitted = 0, deficit = 0;

		for (c = 0; c <= REF_NR_CLASSES; c++)
			total += served[a][c];
		for (c = 0; c < REF_NR_CLASSES; c++)
			admitted += t->admitted[a][c];
		if (total > admitted)
			FAIL("account %d: the upstream holds %llu whole requests, %llu were admitted",
			     a, (unsigned long long)total, (unsigned long long)admitted);
		for (c = 0; c < REF_HIDDEN; c++)
			if (served[a][c] > t->admitted[a][c])
				deficit += served[a][c] - t->admitted[a][c];
		if (deficit + served[a][REF_HIDDEN] > t->admitted[a][REF_HIDDEN])
			FAIL("account %d: the upstream holds requests of a model they were not "
			     "charged to (%llu short, hidden admitted %llu)", a,
			     (unsigned long long)(deficit + served[a][REF_HIDDEN]),
			     (unsigned long long)t->admitted[a][REF_HIDDEN]);
	}
}

/* The k-th request of the meter account in the stream, or ref->n. */
static size_t nth_metered(const struct ref_result *ref, size_t k)
{
	size_t i;

	for (i = 0; i < ref->n; i++)
		if (ref->req[i].account == REF_METER && k-- == 0)
			return i;
	return ref->n;
}

/*
 * Was response j followed alone: every earlier answer out before request j was decided, and
 * all of it out before XDP read the next request's first byte (which ends it)?
 */
static int followed_alone(const struct sim *z, size_t j)
{
	const struct ref_result *ref = z->ref;

	if (j >= z->answered || j >= 256)
		return 0;
	size_t next = ref->req[j].end;

	if (j > 0 && z->answer_read[j - 1] >= ref->req[j].end)
		return 0;
	/* The next request begins at its first byte that is no empty line, whole or not. */
	while (next < stream_len && (stream[next] == '\r' || stream[next] == '\n'))
		next++;
	return next >= stream_len || z->answer_read[j] <= next;
}

/*
 * A chunked tail that starts with what looks like a size line ("de\r\n": the last hex-looking
 * bytes of a chunk's data), whose size lands on real framing further on, reads two ways, and
 * the daemon takes the earliest reading (user/usage.c, first_framing()): the documented limit
 * of a tail that starts anywhere, which chunks of a few bytes make likely. Is that all that
 * happened: the same tail less those digits reads the count the upstream sent?
 */
static int tail_read_two_ways(const struct rls_response_event *ev, __u64 want)
{
	static char buf[RLS_SETTLE_TAIL_BUF];
	size_t n = rls_settle_tail(ev, buf), k = 0;
	struct rls_usage u;

	if (!(ev->flags & RLS_EVENT_CHUNKED))
		return 0;
	while (k < n && isxdigit((unsigned char)buf[k]))
		k++;
	if (k == 0 || n - k < 2 || buf[k] != '\r' || buf[k + 1] != '\n')
		return 0;
	return rls_usage_find(buf + k, n - k, 1, &u) && u.total_tokens == want;
}

/* (t) The metered responses: one event each, read as the daemon reads them. */
static void check_events(struct sim *z, const struct tally *t, int exact)
{
	__u64 metered = 0;
	size_t e;
	int c;

	ring_buffer__consume(events_rb);
	for (c = 0; c < REF_NR_CLASSES; c++)
		metered += t->admitted[REF_METER][c];
	prop_checked[P_METERED]++;
	if (nr_events != metered)
		FAIL("%zu response events for %llu admitted metered requests", nr_events,
		     (unsigned long long)metered);
	for (e = 0; e < nr_events && e < EVENTS_MAX; e++) {
		const struct rls_response_event *ev = &events[e];
		struct rls_token_count count;
		__u64 tokens = rls_event_tokens(ev, &count), charged;
		size_t j;

		if (ev->counter.account != account_ids[REF_METER])
			FAIL("a response event for account %u, which has no token limits",
			     ev->counter.account);
		if (ev->max_response_tokens != MAX_RESPONSE_TOKENS)
			FAIL("a response event carries max_response_tokens %llu, its limits' are %d",
			     (unsigned long long)ev->max_response_tokens, MAX_RESPONSE_TOKENS);
		charged = rls_settle_cap_tokens(tokens, ev->max_response_tokens);
		if (charged > MAX_RESPONSE_TOKENS)
			FAIL("a response charged %llu tokens, max_response_tokens is %d",
			     (unsigned long long)charged, MAX_RESPONSE_TOKENS);
		j = nth_metered(z->ref, e);
		if (debug)
			fprintf(stderr, "event %zu: request %zu, flags %#x, response bytes %llu, "
				"tokens %llu (%s)\n", e, j, ev->flags,
				(unsigned long long)ev->response_bytes, (unsigned long long)tokens,
				count.from_usage ? "usage" : "estimate");
		if (!exact || !followed_alone(z, j) || !z->answer_head_whole[j])
			continue;
		/* Followed alone from its first byte to its last: its framing and usage exact. */
		prop_checked[P_METERED]++;
		if (!!(ev->flags & RLS_EVENT_CHUNKED) != z->answer_chunked[j])
			FAIL("response %zu was %schunked, its event says %s", j,
			     z->answer_chunked[j] ? "" : "not ",
			     (ev->flags & RLS_EVENT_CHUNKED) ? "chunked" : "not chunked");
		if (!z->answer_usage_kept[j] || z->answer_tokens[j] > RLS_USAGE_MAX ||
		    (count.from_usage && tokens == z->answer_tokens[j]))
			continue;
		if (tail_read_two_ways(ev, z->answer_tokens[j]))
			tails_two_ways++;
		else
			FAIL("response %zu: usage %llu, the daemon reads %llu (%s)", j,
			     (unsigned long long)z->answer_tokens[j], (unsigned long long)tokens,
			     count.from_usage ? "from usage" : "estimated");
	}
}

/* No counter holds a slot once the connection is gone, however it went. */
static void check_slots(void)
{
	struct rls_counter_key key, next, *kp = NULL;
	struct rls_counter counter;

	prop_checked[P_SLOTS]++;
	while (bpf_map_get_next_key(env.maps.counters, kp, &next) == 0) {
		key = next;
		kp = &key;
		if (bpf_map_lookup_elem(env.maps.counters, &key, &counter))
			continue;
		if (counter.slots_held)
			FAIL("account %u, model %u holds %u concurrency slots after its connection "
			     "is gone", key.account, key.model, counter.slots_held);
	}
}

/* ---- one input ---- */

static struct seg segs[SEGS_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input r = { .data = data, .size = size };
	struct sim z;
	struct ref_result ref = { .keys = fuzz_keys, .nr_keys = ARRAY_SIZE(fuzz_keys) };
	struct expect x = { .exact = 0 };
	struct tally t;
	unsigned mode = u8(&r), nreq = u8(&r), ncuts, i, op, by_request;
	size_t nsegs = 0, off, next, cuts[64], rounds, limit;
	struct seg *s;
	__u64 day_before, day_after;

	executions++;
	/* Up to 8 requests; now and then a flood of small ones past 32 in a segment. */
	nreq = nreq >= 0xf0 ? 30 + (nreq & 15) : 1 + nreq % 8;
	memset(&z, 0, sizeof(z));
	z.have = have_buf;
	z.r = &r;
	z.ref = &ref;
	z.local = mode & 1;
	z.flood_at = SIZE_MAX;
	reset_state();

	/* The client's stream. */
	stream_len = 0;
	for (i = 0; i < nreq; i++)
		gen_request(&r, !z.local && nreq <= 2);
	if ((mode & 0xe0) == 0xe0) {
		/* HTTP/2 with prior knowledge, once in a while. */
		stream_len = 0;
		puts_("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
	}
	if (mode & 2)
		mutate(&r);
	if (!stream_len)
		return 0;
	memset(have_buf, 0, stream_len);
	ref_parse(stream, stream_len, &ref);
	ref_stops[ref.stop]++;
	requests_complete += ref.n;
	if (debug) {
		fprintf(stderr, "stream %zu bytes: ", stream_len);
		for (i = 0; i < stream_len && i < 600; i++)
			fprintf(stderr, isprint(stream[i]) ? "%c" : "\\x%02x", stream[i]);
		fprintf(stderr, "\nreference: %zu requests, stop %d at %zu\n", ref.n, ref.stop,
			ref.stop_at);
		for (i = 0; i < ref.n; i++)
			fprintf(stderr, "  [%zu, %zu) account %d class %d\n", ref.req[i].start,
				ref.req[i].end, ref.req[i].account, ref.req[i].cls);
	}

	/* The connection. */
	if (z.local) {
		local_open(&z);
		local_runs++;
	} else {
		z.c = (mode & 4) ? conn6(40000) : conn4(40000);
		z.c.vlan = (mode & 8) ? 1 : 0;
		z.c.tci = 7;
		z.c.tcp_options = (mode & 0x10) ? 1 : 0;
		/* IP options or IPv6 extension headers: XDP follows them to TCP, and the frames
		 * it writes (a cut segment, a reset, a 429) must still parse. */
		if (mode & 0x20) {
			z.c.ip_options = z.c.ipv6 ? 0 : 2;
			z.c.ipv6_chain = z.c.ipv6 ? "hd" : NULL;
		}
		z.isn = 0x10000000u + u16(&r) * 65537u;
		z.srv_isn = z.srv_next = 0x70000000u + u16(&r) * 977u;
	}
	z.cli_ack = z.srv_next;

	/* Segments: cut where the input says, no longer than a frame holds; for a client that
	 * waits for each answer (as keep-alive clients do), at every request's end too. */
	limit = stream_len > 65536 ? SEG_HUGE : SEG_MAX;
	ncuts = u8(&r);
	by_request = ncuts >= 0xc0;
	ncuts %= 48;
	for (i = 0; i < ncuts; i++)
		cuts[i] = u16(&r) % stream_len;
	for (i = 1; i < ncuts; i++) /* insertion sort: few cuts */
		for (op = i; op > 0 && cuts[op - 1] > cuts[op]; op--) {
			size_t tmp = cuts[op];

			cuts[op] = cuts[op - 1];
			cuts[op - 1] = tmp;
		}
	for (off = 0, i = 0; off < stream_len && nsegs < SEGS_MAX;) {
		while (i < ncuts && cuts[i] <= off)
			i++;
		next = i < ncuts ? cuts[i] : stream_len;
		for (op = 0; by_request && op < ref.n; op++)
			if (ref.req[op].end > off && ref.req[op].end < next) {
				next = ref.req[op].end;
				break;
			}
		if (next - off > limit)
			next = off + limit;
		segs[nsegs].off = off;
		segs[nsegs].len = next - off;
		nsegs++;
		off = next;
	}

	day_before = utc_ms() / 86400000ull;
	/* The schedule: each segment in order, or duplicated, swapped with the next, dropped
	 * (resent later), resent with the next (old and new bytes), with forged ones between. */
	for (i = 0; i < nsegs && !z.upstream_reset; i++) {
		op = u8(&r);
		s = &segs[i];
		switch (op % 8) {
		case 1:
			client_sends(&z, s->off, s->len, 0);
			client_sends(&z, s->off, s->len, 0);
			break;
		case 2:
			if (i + 1 < nsegs) {
				client_sends(&z, segs[i + 1].off, segs[i + 1].len, 0);
				client_sends(&z, s->off, s->len, 0);
				i++;
				break;
			}
			client_sends(&z, s->off, s->len, 0);
			break;
		case 3:
			break; /* lost: the retransmissions below send it again */
		case 4:
			if (i + 1 < nsegs) {
				client_sends(&z, s->off, s->len, 0);
				client_sends(&z, s->off, s->len + segs[i + 1].len > limit ? limit :
						 s->len + segs[i + 1].len, 0);
				i++;
				break;
			}
			client_sends(&z, s->off, s->len, 0);
			break;
		case 5:
			forged(&z, (op >> 3) & 3);
			client_sends(&z, s->off, s->len, 0);
			break;
		case 6:
			z.ack_lag = 1;
			client_sends(&z, s->off, s->len, 0);
			break;
		default:
			client_sends(&z, s->off, s->len, 0);
			break;
		}
		if (z.refused)
			break;
	}
	/*
	 * The client's TCP: it sends again from what the upstream acknowledged until all is
	 * there, the connection is reset, or a 429 came back (which it acknowledges: XDP makes
	 * that the upstream's reset).
	 */
	z.ack_lag = 0;
	for (rounds = 0; rounds < 2 * nsegs + 8 && !z.upstream_reset; rounds++) {
		if (z.refused) {
			struct tp_spec ack = spec_of(&z.c, NULL, 0, TP_ACK);
			static uint8_t out[TP_MAX_FRAME];
			struct tp_parsed p;
			uint32_t out_len;
			size_t in_len;
			int action;

			ack.seq = z.isn + (uint32_t)(z.xdp_read > z.rcv ? z.xdp_read : z.rcv);
			ack.ack = z.reply_end;
			action = xdp_frame(&ack, out, &out_len, &in_len);
			if (z.kept_open) {
				/* It reaches the upstream renumbered: at the upstream's next byte (the
				 * refused request never came), acknowledging what it sent (not the
				 * 429, which it never sent). */
				prop_checked[P_REFUSED]++;
				if (action != (XDP_PASS | 0x100))
					FAIL("the client's acknowledgement of a 429 that kept the "
					     "connection was not renumbered (XDP %s)",
					     xdp_name(action & 0xff));
				parse_out(out, out_len, &p, "the acknowledgement, renumbered");
				if (p.flags & TP_RST)
					FAIL("a 429 that kept the connection reset the upstream");
				if (p.seq != z.isn + (uint32_t)z.rcv || p.ack != z.srv_next)
					FAIL("the acknowledgement renumbered to seq %u ack %u, the "
					     "upstream expects %u and sent up to %u", p.seq, p.ack,
					     z.isn + (uint32_t)z.rcv, z.srv_next);
				refusals++;
				kept_open++;
				break;
			}
			if (action != (XDP_PASS | 0x100))
				FAIL("the client's acknowledgement of the 429 did not reset the "
				     "upstream (XDP %s)", xdp_name(action & 0xff));
			parse_out(out, out_len, &p, "the reset after a 429");
			if (!(p.flags & TP_RST))
				FAIL("the client's acknowledgement of the 429 became no reset");
			reset_reaches_upstream(&z, &p);
			refusals++;
			break;
		}
		if (z.rcv >= stream_len)
			break;
		off = z.rcv;
		next = off + limit;
		if (next > stream_len)
			next = stream_len;
		client_sends(&z, off, next - off, 0);
	}
	/*
	 * README, "What a reset tells the client": where XDP reset the connection (no 429 went
	 * out), the client, told nothing, sends the segment that became the reset again as its
	 * timer fires, and is told by its second resend (a routed upstream has the first).
	 */
	if (z.upstream_reset && z.reset_noted && !z.refused && z.reset_len) {
		z.resending = 1;
		for (rounds = 0; rounds < 2 && !z.client_reset; rounds++)
			client_sends(&z, z.reset_off, z.reset_len, z.reset_flags);
		z.resending = 0;
		prop_checked[P_TOLD]++;
		feature(220, (unsigned)z.client_reset);
		if (!z.client_reset)
			FAIL("a client whose connection XDP reset was not told by its second resend");
	}
	/* Both sides close: the client's FIN, then the upstream's. */
	if (!z.upstream_reset && z.rcv >= stream_len) {
		client_sends(&z, stream_len, 0, TP_FIN | TP_ACK);
		tc_frame(&z, NULL, 0, TP_FIN | TP_ACK);
	} else if (!z.upstream_reset) {
		/* The connection gave up: the client resets it. */
		client_sends(&z, z.xdp_read > z.rcv ? z.xdp_read : z.rcv, 0, TP_RST);
		tc_frame(&z, NULL, 0, TP_RST | TP_ACK);
	}
	day_after = utc_ms() / 86400000ull;

	/* The checks. */
	tally_read(&t);
	check_served(&z, &t);
	/* Exact counts need XDP to have read the stream from its start. */
	if (day_before == day_after && !z.started_ahead) {
		expected(&ref, z.xdp_read < z.flood_at ? z.xdp_read : z.flood_at, &x);
		/* A stop the data path must reset at: reset, before the byte reaches the upstream. */
		if (x.must_reset && x.refused < 0) {
			prop_checked[P_SOUND]++;
			if (z.rcv > ref.stop_at)
				FAIL("the upstream got byte %zu, past where the stream breaks (%zu)",
				     z.rcv, ref.stop_at);
			if (!z.reset_seen && z.xdp_read > ref.stop_at)
				FAIL("the stream breaks at %zu, XDP read to %zu and never reset",
				     ref.stop_at, z.xdp_read);
		}
		if (x.refused < 0 && x.exact && !x.must_reset && ref.stop == REF_END &&
		    z.rcv < stream_len && !z.reset_seen)
			FAIL("the upstream holds %zu of the client's %zu bytes", z.rcv, stream_len);
		check_counts(&z, &t, &x);
	}
	check_events(&z, &t, day_before == day_after && !z.started_ahead && x.exact);
	/* A stream followed from past a gap may keep its flow: the client's close was elsewhere. */
	if (!z.started_ahead)
		check_slots();
	if (z.local)
		local_close(&z);
	free(ref.req);
	return 0;
}
