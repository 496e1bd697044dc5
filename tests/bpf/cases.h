/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Table-driven BPF_PROG_TEST_RUN cases, as Katran's test fixtures and Cilium's bpf/tests
 * SETUP/CHECK have them: a case is data, a name, a table, and a sequence of frames on up to
 * CASE_CONNS client connections. Each frame goes through the XDP program (client to server) or
 * the TC program (server to client) and says what the program must return, what it must make
 * of the frame, and what the maps must show right after it: stats, packet counters, slots,
 * the connection's response state, events in the ring, rls_parked and rls_pending.
 *
 * Every case loads its own skeleton (maps private) in the suite's own network namespace.
 */
#ifndef RLS_TEST_CASES_H
#define RLS_TEST_CASES_H

#include "harness.h"
#include "own_netns.h"

#define CASE_CONNS   8
#define CASE_FRAMES  12
#define CASE_EXPECTS 6

#define TC_ACT_OK 0

enum frame_hook {
	ON_XDP, /* from the client: the XDP program */
	ON_TC,  /* from the upstream, leaving towards the client: the TC program */
	ON_UPSTREAM, /* the client is a local proxy, its request leaving for the upstream: the
		      * upstream side's TC egress (rlshape_upstream); ON_TC then reads the
		      * upstream's answer as that side's TC ingress does */
	CHECK_ONLY, /* no frame: the expectations alone, on what the frames before left */
};

/* What the program must have made of the frame. */
enum frame_out {
	OUT_UNTOUCHED, /* passed on byte for byte (TC never writes; XDP passes as it came) */
	OUT_429,       /* XDP answered with a 429 written over the frame */
	OUT_ANY,       /* not looked at (a drop) */
};

enum expect_kind {
	X_END,              /* no more expectations */
	X_ADMITTED,         /* rls_stats admitted of (account, model) */
	X_REJECTED,         /* rls_stats rejected of (account, model), every reason */
	X_PACKETS,          /* rls_packets[event] (arg) */
	X_SLOTS_HELD,       /* slots held by account's counter */
	X_RESPONSE_STATE,   /* rls_flows response_state of connection conn */
	X_RESPONSE_BYTES,   /* rls_flows response_bytes of connection conn */
	X_HAS_FLOW,         /* 1 while connection conn has an rls_flows entry, else 0 */
	X_EVENTS,           /* events read from the ring so far */
	X_EVENT_FLAGS,      /* the last event's flags */
	X_EVENT_RESERVED,   /* the last event's reserved_tokens */
	X_EVENT_RESPONSE_BYTES, /* the last event's response_bytes */
	X_EVENT_TAIL,       /* the last event's newest tail slot ends with text */
	X_PARKED,           /* entries in rls_parked */
	X_PENDING,          /* rls_pending responses of (account, model) */
};

/*
 * One expectation. account NULL: the anonymous account (0); model NULL: RLS_MODEL_OTHER. With
 * delta set, value is the change the frame made, not the value after it.
 */
struct expect {
	enum expect_kind kind;
	const char *account, *model;
	long long value;
	int delta;
	int conn;
	__u32 arg;
	const char *text;
};

struct frame {
	enum frame_hook hook;
	int conn;                     /* which of the case's connections, 0 to CASE_CONNS - 1 */
	const char *headers, *body;   /* a request: http_request(headers, body) */
	const char *raw;              /* or these bytes (NUL-terminated) */
	uint8_t flags;                /* TCP flags; 0 means ACK|PSH */
	int verdict;                  /* what the program must return */
	enum frame_out out;
	struct expect expect[CASE_EXPECTS];
};

struct prog_case {
	const char *name;
	const char *table;            /* NULL: the suite's table (written with ' for ") */
	uint16_t sport;               /* connection i uses client port sport + i */
	int ipv6;
	int ring_full;                /* rls_events too small for any event: they are parked */
	int parked_full;              /* rls_parked full as well: responses go to rls_pending */
	struct frame frames[CASE_FRAMES];
};

/* The suite's table, for cases that name none. */
static const char *case_default_table;

/* ---- setting a case up ---- */

struct case_state {
	struct env env;
	const struct prog_case *c;
	struct ring_buffer *ring;
	__u64 events;
	struct rls_response_event last_event;
};

static inline int case_shrink_ring(struct rlshape_bpf *skel)
{
	/* One page: smaller than one event record, so every event misses the ring. */
	return bpf_map__set_max_entries(skel->maps.rls_events, (__u32)sysconf(_SC_PAGESIZE));
}

static inline int case_shrink_ring_and_parked(struct rlshape_bpf *skel)
{
	int ret = case_shrink_ring(skel);

	return ret ? ret : bpf_map__set_max_entries(skel->maps.rls_parked, 1);
}

static inline int case_on_event(void *ctx, void *data, size_t len)
{
	struct case_state *cs = ctx;

	if (len >= sizeof(cs->last_event))
		memcpy(&cs->last_event, data, sizeof(cs->last_event));
	cs->events++;
	return 0;
}

static inline int case_setup(void **state)
{
	const struct prog_case *c = *state;
	struct case_state *cs = calloc(1, sizeof(*cs));
	static struct rls_response_event filler; /* takes rls_parked's one entry */
	__u64 filler_id = ~0ull;

	if (!cs)
		return -1;
	cs->c = c;
	*state = cs;
	env_before_load = c->parked_full ? case_shrink_ring_and_parked :
			  c->ring_full   ? case_shrink_ring : NULL;
	if (env_open(&cs->env, c->table ? c->table : case_default_table)) {
		env_before_load = NULL;
		env_close(&cs->env); /* cs->env.why says why; the case fails with it */
		return 0;
	}
	env_before_load = NULL;
	cs->ring = ring_buffer__new(cs->env.maps.events, case_on_event, cs, NULL);
	if (!cs->ring) {
		snprintf(cs->env.why, sizeof(cs->env.why), "ring_buffer__new: %s", strerror(errno));
		env_close(&cs->env);
		return 0;
	}
	if (c->parked_full &&
	    bpf_map_update_elem(cs->env.maps.parked, &filler_id, &filler, BPF_NOEXIST)) {
		snprintf(cs->env.why, sizeof(cs->env.why), "filling rls_parked: %s",
			 strerror(errno));
		env_close(&cs->env);
	}
	return 0;
}

static inline int case_teardown(void **state)
{
	struct case_state *cs = *state;

	if (cs) {
		ring_buffer__free(cs->ring);
		env_put(&cs->env);
		free(cs);
	}
	*state = NULL;
	return 0;
}

/* ---- reading what an expectation is about ---- */

static inline __u32 case_account(struct env *e, const char *account)
{
	return account ? account_id(e, account) : RLS_ACCOUNT_ANONYMOUS;
}

static inline __u32 case_model(struct env *e, const char *model)
{
	return model ? model_id(e, model) : RLS_MODEL_OTHER;
}

static inline long long case_map_entries(int fd, size_t key_size)
{
	uint8_t key[64], next[64];
	long long n = 0;
	void *prev = NULL;

	CHECK(key_size <= sizeof(key), "test bug: key of %zu bytes", key_size);
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, key_size);
		prev = key;
		n++;
	}
	return n;
}

static inline struct rls_flow case_flow(struct env *e, const struct conn *c, int *found)
{
	struct rls_flow_key k = conn_flow_key(c);
	struct rls_flow f;

	memset(&f, 0, sizeof(f));
	*found = bpf_map_lookup_elem(e->maps.flows, &k, &f) == 0;
	return f;
}

/* The newest tail slot of the last event: does it end with text? */
static inline int case_tail_ends_with(const struct rls_response_event *ev, const char *text)
{
	__u32 slot = ev->tail_slot % RLS_TAIL_SLOTS, len = ev->tail.len[slot];
	size_t n = strlen(text);

	return len <= RLS_TAIL_MAX && len >= n &&
	       !memcmp(ev->tail.bytes[slot] + len - n, text, n);
}

static inline long long case_read(struct case_state *cs, const struct conn *conns,
				  const struct expect *x)
{
	struct env *e = &cs->env;
	struct rls_counter_key ck = { 0 };
	struct rls_pending p = { 0 };
	struct rls_counter counter;
	struct rls_flow f;
	int found;

	switch (x->kind) {
	case X_ADMITTED:
		return (long long)stats_of(e, case_account(e, x->account),
					   case_model(e, x->model)).admitted;
	case X_REJECTED: {
		struct rls_stats st = stats_of(e, case_account(e, x->account),
					       case_model(e, x->model));

		return (long long)rejected_total(&st);
	}
	case X_PACKETS:
		return (long long)packets_of(e, x->arg);
	case X_SLOTS_HELD:
		ck.account = case_account(e, x->account);
		ck.model = case_model(e, x->model);
		memset(&counter, 0, sizeof(counter));
		CHECK(bpf_map_lookup_elem_flags(e->maps.counters, &ck, &counter, BPF_F_LOCK) == 0,
		      "no rls_counters entry for %s", x->account ? x->account : "anonymous");
		return counter.slots_held;
	case X_RESPONSE_STATE:
	case X_RESPONSE_BYTES:
		f = case_flow(e, &conns[x->conn], &found);
		CHECK(found, "connection %d has no rls_flows entry", x->conn);
		return x->kind == X_RESPONSE_STATE ? (long long)f.response_state :
						     (long long)f.response_bytes;
	case X_HAS_FLOW:
		case_flow(e, &conns[x->conn], &found);
		return found;
	case X_EVENTS:
		return (long long)cs->events;
	case X_EVENT_FLAGS:
		return cs->last_event.flags;
	case X_EVENT_RESERVED:
		return (long long)cs->last_event.reserved_tokens;
	case X_EVENT_RESPONSE_BYTES:
		return (long long)cs->last_event.response_bytes;
	case X_EVENT_TAIL:
		return case_tail_ends_with(&cs->last_event, x->text);
	case X_PARKED:
		return case_map_entries(e->maps.parked, sizeof(__u64));
	case X_PENDING:
		ck.account = case_account(e, x->account);
		ck.model = case_model(e, x->model);
		if (bpf_map_lookup_elem(e->maps.pending, &ck, &p))
			return 0;
		return (long long)p.responses;
	case X_END:
		break;
	}
	return 0;
}

static inline const char *case_expect_name(enum expect_kind k)
{
	static const char *const names[] = {
		[X_ADMITTED] = "rls_stats admitted", [X_REJECTED] = "rls_stats rejected",
		[X_PACKETS] = "rls_packets", [X_SLOTS_HELD] = "slots held",
		[X_RESPONSE_STATE] = "the flow's response_state",
		[X_RESPONSE_BYTES] = "the flow's response_bytes",
		[X_HAS_FLOW] = "an rls_flows entry (1) or none (0)", [X_EVENTS] = "events in the ring",
		[X_EVENT_FLAGS] = "the last event's flags",
		[X_EVENT_RESERVED] = "the last event's reserved_tokens",
		[X_EVENT_RESPONSE_BYTES] = "the last event's response_bytes",
		[X_EVENT_TAIL] = "the last event's tail ends with the text (1)",
		[X_PARKED] = "entries in rls_parked", [X_PENDING] = "rls_pending responses",
	};

	return k < ARRAY_SIZE(names) && names[k] ? names[k] : "?";
}

/* ---- running one frame, and a case ---- */

static inline void case_send_tc(struct env *e, struct conn *c, const char *payload, size_t len,
				uint8_t flags, struct result *r)
{
	struct tp_spec s = spec_of(c, payload, len, flags);
	int err;

	/* The same connection, the other way: the upstream's bytes to the client. */
	s.saddr = c->server;
	s.daddr = c->client;
	s.sport = c->dport;
	s.dport = c->sport;
	s.seq = c->ack;
	s.ack = c->seq;
	r->spec = s;
	r->spec.payload = NULL;
	r->in_len = tp_build(&s, r->in, sizeof(r->in));
	CHECK(r->in_len > 0, "test bug: cannot build the frame");
	err = env_run(e->tc_fd, r->in, r->in_len, r->out, TP_MAX_FRAME, &r->out_len, NULL, 0,
		      &r->action);
	if (err)
		fail_msg("TC test run on a %zu-byte frame: %s", r->in_len, strerror(-err));
	c->ack += (uint32_t)len + !!(s.flags & (TP_FIN | TP_SYN));
}

/*
 * One segment of c through the upstream side's TC egress; c->seq moves past it. gso_size: the
 * skb is a GSO super-packet of segments of that many bytes (0: none).
 */
static inline int case_send_upstream(struct env *e, struct conn *c, const char *payload,
				     size_t len, uint8_t flags, uint32_t gso_size, struct result *r)
{
	struct tp_spec s = spec_of(c, payload, len, flags);
	struct __sk_buff skb = { 0 };
	int err;

	r->spec = s;
	r->spec.payload = NULL;
	r->in_len = tp_build(&s, r->in, sizeof(r->in));
	CHECK(r->in_len > 0, "test bug: cannot build the frame");
	skb.gso_size = gso_size;
	skb.gso_segs = gso_size ? (uint32_t)((len + gso_size - 1) / gso_size) : 0;
	err = env_run(e->upstream_fd, r->in, r->in_len, r->out, TP_MAX_FRAME, &r->out_len, &skb,
		      sizeof(skb), &r->action);
	if (err)
		fail_msg("upstream test run on a %zu-byte frame: %s", r->in_len, strerror(-err));
	c->seq += (uint32_t)len + !!(flags & TP_FIN);
	return r->action;
}

static inline void case_run_frame(struct case_state *cs, struct conn *conns, int silent, int i)
{
	const struct frame *f = &cs->c->frames[i];
	struct env *e = &cs->env;
	struct conn *c = &conns[f->conn];
	long long before[CASE_EXPECTS] = { 0 }, got;
	char req[TP_MAX_FRAME];
	const char *bytes = req;
	struct result *r = calloc(1, sizeof(*r));
	size_t len = 0;
	int k;

	assert_non_null(r);
	if (f->headers)
		len = http_request(req, sizeof(req), f->headers, f->body);
	else if (f->raw)
		bytes = f->raw, len = strlen(f->raw);
	for (k = 0; k < CASE_EXPECTS && f->expect[k].kind != X_END; k++)
		if (f->expect[k].delta)
			before[k] = case_read(cs, conns, &f->expect[k]);
	c->silent_upstream = silent;
	if (f->hook == CHECK_ONLY)
		goto expectations;
	if (f->hook == ON_TC)
		case_send_tc(e, c, bytes, len, f->flags, r);
	else if (f->hook == ON_UPSTREAM)
		case_send_upstream(e, c, bytes, len, f->flags, 0, r);
	else
		conn_send(e, c, bytes, len, f->flags, r);
	ring_buffer__consume(cs->ring);
	if (r->action != f->verdict)
		fail_msg("%s, frame %d (%s): the program returned %d, expected %d", cs->c->name,
			 i, f->hook == ON_TC ? "TC" : f->hook == ON_UPSTREAM ? "upstream" : "XDP",
			 r->action, f->verdict);
	if (f->out == OUT_UNTOUCHED)
		expect_untouched(r, cs->c->name);
	else if (f->out == OUT_429)
		CHECK(r->out_len > 54 && memmem(r->out, r->out_len, "HTTP/1.1 429 ", 13),
		      "%s, frame %d: the reply is not a 429", cs->c->name, i);
expectations:
	for (k = 0; k < CASE_EXPECTS && f->expect[k].kind != X_END; k++) {
		const struct expect *x = &f->expect[k];

		got = case_read(cs, conns, x) - before[k];
		if (got != x->value)
			fail_msg("%s, frame %d: %s%s%s%s: got %lld, expected %lld", cs->c->name, i,
				 case_expect_name(x->kind), x->delta ? " (change)" : "",
				 x->account ? " of " : "", x->account ? x->account : "", got,
				 x->value);
	}
	free(r);
}

static inline void case_run(void **state)
{
	struct case_state *cs = *state;
	const struct prog_case *c = cs->c;
	struct conn conns[CASE_CONNS];
	int i, silent = 0;

	if (!cs->env.ready)
		fail_msg("%s: cannot load and configure the programs: %s", c->name, cs->env.why);
	for (i = 0; i < CASE_CONNS; i++)
		conns[i] = c->ipv6 ? conn6((uint16_t)(c->sport + i)) : conn4((uint16_t)(c->sport + i));
	/* A case that plays the upstream through TC must not have it played for it as well. */
	for (i = 0; i < CASE_FRAMES; i++)
		if (c->frames[i].hook == ON_TC)
			silent = 1;
	for (i = 0; i < CASE_FRAMES && (c->frames[i].headers || c->frames[i].raw ||
					c->frames[i].flags || c->frames[i].hook == CHECK_ONLY); i++) {
		CHECK(c->frames[i].conn >= 0 && c->frames[i].conn < CASE_CONNS,
		      "test bug: %s frame %d: connection %d", c->name, i, c->frames[i].conn);
		case_run_frame(cs, conns, silent, i);
	}
}

/*
 * Run the table's cases, then the suite's function tests (which use setup_with/teardown), as
 * one TAP group, in a network namespace of the process's own.
 */
static inline int case_run_suite(const char *name, const struct prog_case *cases, size_t n,
				 const struct CMUnitTest *more, size_t n_more)
{
	struct CMUnitTest *tests = calloc(n + n_more + 1, sizeof(*tests));
	char why[256];
	size_t i;
	int ret;

	cmocka_set_message_output(CM_OUTPUT_TAP);
	libbpf_set_print(libbpf_keep);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!tests) {
		printf("Bail out! out of memory\n");
		return 1;
	}
	if (own_netns(why, sizeof(why))) {
		printf("Bail out! %s\n", why);
		free(tests);
		return 1;
	}
	for (i = 0; i < n; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = case_run;
		tests[i].setup_func = case_setup;
		tests[i].teardown_func = case_teardown;
		tests[i].initial_state = (void *)&cases[i];
	}
	for (i = 0; i < n_more; i++)
		tests[n + i] = more[i];
	ret = _cmocka_run_group_tests(name, tests, n + n_more, NULL, NULL);
	free(tests);
	return ret;
}

#endif /* RLS_TEST_CASES_H */
