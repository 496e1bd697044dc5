// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A 429 that keeps the connection open, under BPF_PROG_TEST_RUN: the XDP program answers a
 * refused request with a 429 without FIN, and from then on the connection's client segments
 * (XDP) and upstream segments (TC) are renumbered, so that each side sees a stream without the
 * other's missing bytes: the sequence numbers, the acknowledgments and the SACK blocks, with
 * checksums right. Each test plays one connection, segment by segment, both ways.
 */
#include "xdp_suite.h"

#include "loopback_tap.h"

#define RESPONSE_LEN 100
#define SERVER_WINDOW 64240 /* what tp_build() puts in every segment's window field */
#define TS_VAL 0x01020304u /* and in its timestamps (conn.tcp_options) */
#define TS_ECR 0x05060708u

/* The upstream's next byte, as the upstream numbers it, and the client's, likewise. */
struct upstream_view {
	uint32_t next;  /* its next byte */
	uint32_t acked; /* the client bytes it has */
};

/* The parsed frame, checksums checked. */
static struct tp_parsed parsed(const uint8_t *frame, size_t len, const char *what)
{
	struct tp_parsed p;
	char why[256];

	CHECK(tp_parse(frame, len, &p, why, sizeof(why)) == 0, "%s: %s", what, why);
	CHECK(p.tcp_csum_ok, "%s: TCP checksum is wrong", what);
	CHECK(p.ip_csum_ok, "%s: IPv4 header checksum is wrong", what);
	return p;
}

/*
 * The upstream sends len bytes (at most RESPONSE_LEN of a response) through TC, numbered as
 * the upstream numbers them; returns what the client receives.
 */
static struct tp_parsed upstream_sends(struct env *e, struct conn *c, struct upstream_view *up,
				       size_t len, uint8_t flags, const char *what)
{
	static const char response[RESPONSE_LEN] = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
	struct conn as_upstream = *c;
	struct result r;

	as_upstream.ack = up->next;
	as_upstream.seq = up->acked;
	case_send_tc(e, &as_upstream, response, len, flags ? flags : TP_ACK | TP_PSH, &r);
	CHECK_EQ(r.action, TC_ACT_OK, "TC verdict");
	up->next += (uint32_t)len + !!(flags & TP_FIN);
	return parsed(r.out, r.out_len, what);
}

/* The client's segment through XDP; its verdict; *out: what went on, where it passed. */
static int client_sends(struct env *e, struct conn *c, const char *payload, size_t len,
			uint8_t flags, struct result *r)
{
	conn_send(e, c, payload, len, flags, r);
	return r->action;
}

/* A 429 that keeps the connection: no FIN, keep-alive, right after the upstream's bytes. */
static struct tp_parsed expect_kept_open_429(const struct result *r, const struct conn *c,
					     uint32_t client_seq_end, const char *what)
{
	struct tp_parsed p;
	char text[2048];
	size_t n;

	expect_action(r, XDP_TX, what);
	p = parsed(r->out, r->out_len, what);
	CHECK_EQ(p.flags, TP_ACK | TP_PSH, "429 flags (ACK|PSH, no FIN)");
	CHECK_EQ(p.seq, c->ack, "429 seq: the client's next byte of the upstream's");
	CHECK_EQ(p.ack, client_seq_end, "429 ack: past the refused request");
	CHECK_EQ(p.window, SERVER_WINDOW, "429 window: the upstream's, as TC saw it last");
	CHECK_EQ(p.doff, 32, "429 TCP header with the timestamp option");
	CHECK_EQ(tp_get32(r->out + p.l4_off + 24), TS_ECR, "429 TSval: the client's TSecr");
	CHECK_EQ(tp_get32(r->out + p.l4_off + 28), TS_VAL, "429 TSecr: the client's TSval");
	n = p.len < sizeof(text) - 1 ? p.len : sizeof(text) - 1;
	memcpy(text, p.payload, n);
	text[n] = '\0';
	CHECK(strncmp(text, "HTTP/1.1 429 ", 13) == 0, "%s: not a 429:\n%s", what, text);
	CHECK(strstr(text, "\r\nconnection: keep-alive\r\n") != NULL,
	      "%s: the 429 does not say keep-alive:\n%s", what, text);
	return p;
}

/* Replace the 12 option bytes of a frame built with tcp_options; the checksum follows. */
static void put_options(struct result *r, const uint8_t opts[12])
{
	struct tp_parsed p = parsed(r->in, r->in_len, "frame before its new options");
	uint8_t *tcp = r->in + p.l4_off;
	uint8_t saddr[16], daddr[16];

	memcpy(tcp + 20, opts, 12);
	memcpy(saddr, p.saddr, 16);
	memcpy(daddr, p.daddr, 16);
	tp_put16(tcp + 16, 0);
	tp_put16(tcp + 16, tp_tcp_csum(p.ipv6, saddr, daddr, tcp, p.doff + p.len));
}

/* Replace the timestamp option of a frame built with tcp_options by one SACK block. */
static void put_sack_block(struct result *r, uint32_t left, uint32_t right)
{
	uint8_t o[12] = { 1, 1, 5 /* SACK */, 10 };

	tp_put32(o + 4, left);
	tp_put32(o + 8, right);
	put_options(r, o);
}

/* Run a frame already in r->in through XDP (or TC). */
static int rerun(struct env *e, struct result *r, int tc)
{
	int err;

	if (!tc)
		return r->action = run_frame(e, r->in, r->in_len, r->out, &r->out_len);
	err = env_run(e->tc_fd, r->in, r->in_len, r->out, TP_MAX_FRAME, &r->out_len, NULL, 0,
		      &r->action);
	CHECK(err == 0, "TC test run: %s", strerror(-err));
	return r->action;
}

/* A connection a 429 kept open, as refuse_keeping_open() leaves it. */
struct kept {
	struct env *e;
	struct conn c;
	struct upstream_view up;
	char req[1024];   /* the request sent, each time */
	size_t len;
	struct result sent_429; /* the refused request, and the 429 in its out[] */
	struct tp_parsed reply; /* the 429, parsed: its payload points into sent_429 */
};

/*
 * On connection c (timestamps on, the upstream played through TC): three requests admitted
 * and answered, the fourth refused with a 429 that keeps the connection.
 */
static void refuse_keeping_open(void **state, struct kept *k, struct conn c)
{
	struct result r;
	int i;

	k->e = need_env(state);
	k->c = c;
	k->len = http_request(k->req, sizeof(k->req), BEARER(KEY_ALICE), NULL);
	k->c.tcp_options = 1;
	k->c.silent_upstream = 1;
	k->up.next = k->c.ack;
	k->up.acked = k->c.seq;
	leave_room_in_window(60, 5000);
	for (i = 0; i < 3; i++) {
		CHECK_EQ(client_sends(k->e, &k->c, k->req, k->len, 0, &r), XDP_PASS,
			 "admitted request");
		expect_untouched(&r, "admitted request before any 429");
		k->up.acked = k->c.seq;
		CHECK_EQ(upstream_sends(k->e, &k->c, &k->up, RESPONSE_LEN, 0, "response").seq, k->c.ack,
			 "a response before any 429 keeps its numbers");
		k->c.ack = k->up.next;
	}
	client_sends(k->e, &k->c, k->req, k->len, 0, &k->sent_429);
	k->reply = expect_kept_open_429(&k->sent_429, &k->c, k->c.seq,
					"the fourth request, over rpm 3");
}

static void test_429_keeps_connection(void **state)
{
	struct kept k;
	struct tp_parsed p;
	struct result r;
	uint32_t q, l;

	refuse_keeping_open(state, &k, conn4(49101));
	q = (uint32_t)k.len;
	l = (uint32_t)k.reply.len;
	CHECK_EQ(packets_of(k.e, RLS_PKT_REPLY_KEPT_OPEN), 1, "rls_packets[REPLY_KEPT_OPEN]");
	CHECK_EQ(packets_of(k.e, RLS_PKT_RESET_UPSTREAM), 0, "no reset toward the upstream");

	/* The client acknowledges the 429: the upstream sees an ACK of its own last byte, at
	 * the place of the request it never got. */
	k.c.ack = k.reply.seq + l;
	CHECK_EQ(client_sends(k.e, &k.c, NULL, 0, TP_ACK, &r), XDP_PASS, "ACK of the 429");
	p = parsed(r.out, r.out_len, "ACK of the 429, renumbered");
	CHECK_EQ(p.seq, k.up.acked, "ACK seq in the upstream's numbering");
	CHECK_EQ(p.ack, k.up.next, "ACK ack in the upstream's numbering");

	/* The upstream's segments reach the client after the 429. */
	p = upstream_sends(k.e, &k.c, &k.up, 0, TP_ACK, "the upstream's pure ACK");
	CHECK_EQ(p.seq, k.up.next + l, "the upstream's seq, past the 429");
	CHECK_EQ(p.ack, k.c.seq, "the upstream's ack, past the refused request");

	/* The upstream closes; the client's FIN and last ACK are renumbered too. */
	p = upstream_sends(k.e, &k.c, &k.up, 0, TP_ACK | TP_FIN, "the upstream's FIN");
	CHECK_EQ(p.seq, k.up.next - 1 + l, "FIN seq, past the 429");
	k.c.ack = k.up.next + l;
	CHECK_EQ(client_sends(k.e, &k.c, NULL, 0, TP_ACK | TP_FIN, &r), XDP_PASS, "the client's FIN");
	p = parsed(r.out, r.out_len, "the client's FIN, renumbered");
	CHECK_EQ(p.seq, k.c.seq - q, "FIN seq in the upstream's numbering");
	CHECK_EQ(p.ack, k.up.next, "FIN ack in the upstream's numbering");
	k.c.seq += 1;
	/* The upstream's last ACK, of the client's FIN: renumbered, and the flow goes with it. */
	k.up.acked = k.c.seq - q;
	p = upstream_sends(k.e, &k.c, &k.up, 0, TP_ACK, "the upstream's last ACK");
	CHECK_EQ(p.ack, k.c.seq, "the upstream's last ACK acknowledges the client's FIN");
	{
		struct rls_flow_key key = conn_flow_key(&k.c);
		struct rls_flow f;

		CHECK(bpf_map_lookup_elem(k.e->maps.flows, &key, &f) != 0,
		      "the flow is gone after the upstream's last ACK");
	}
	CHECK(packets_of(k.e, RLS_PKT_SEQ_TRANSLATED) >= 5, "rls_packets[SEQ_TRANSLATED]: %llu",
	      (unsigned long long)packets_of(k.e, RLS_PKT_SEQ_TRANSLATED));
}

static void test_second_429_offsets_add_up(void **state)
{
	struct kept k;
	struct tp_parsed second, p;
	struct result r;
	uint32_t q, l1, l2;

	refuse_keeping_open(state, &k, conn6(49201));
	q = (uint32_t)k.len;
	l1 = (uint32_t)k.reply.len;
	k.c.ack = k.reply.seq + l1;
	/* The next request, straight after, is refused too: a second 429 behind the k.reply. */
	client_sends(k.e, &k.c, k.req, k.len, 0, &r);
	second = expect_kept_open_429(&r, &k.c, k.c.seq, "a second refused request (IPv6)");
	l2 = (uint32_t)second.len;
	CHECK_EQ(second.seq, k.reply.seq + l1, "the second 429 follows the k.reply");
	CHECK_EQ(packets_of(k.e, RLS_PKT_REPLY_KEPT_OPEN), 2, "rls_packets[REPLY_KEPT_OPEN]");
	k.c.ack = second.seq + l2;

	/* A client ACK with a SACK block for upstream bytes past both 429s. */
	{
		struct tp_spec s = spec_of(&k.c, NULL, 0, TP_ACK);

		send_spec(k.e, &s, &r); /* builds r.in; the verdict is rerun below */
		put_sack_block(&r, k.c.ack + 1000, k.c.ack + 2000);
		CHECK_EQ(rerun(k.e, &r, 0), XDP_PASS, "dup ACK with a SACK block");
		p = parsed(r.out, r.out_len, "dup ACK with SACK, renumbered");
		CHECK_EQ(p.seq, k.c.seq - 2 * q, "seq: both refused requests taken out");
		CHECK_EQ(p.ack, k.up.next, "ack: both 429s taken out");
		CHECK_EQ(tp_get32(r.out + p.l4_off + 24), k.up.next + 1000, "SACK left edge");
		CHECK_EQ(tp_get32(r.out + p.l4_off + 28), k.up.next + 2000, "SACK right edge");
	}
	/* The upstream acknowledges with a SACK block of client bytes: renumbered the other way. */
	{
		struct conn as_upstream = k.c;
		struct tp_spec s;

		as_upstream.ack = k.up.next;
		as_upstream.seq = k.up.acked;
		s = spec_of(&as_upstream, NULL, 0, TP_ACK);
		s.saddr = k.c.server;
		s.daddr = k.c.client;
		s.sport = k.c.dport;
		s.dport = k.c.sport;
		s.seq = k.up.next;
		s.ack = k.up.acked;
		r.in_len = tp_build(&s, r.in, sizeof(r.in));
		put_sack_block(&r, k.up.acked + 10, k.up.acked + 20);
		CHECK_EQ(rerun(k.e, &r, 1), TC_ACT_OK, "the upstream's ACK with a SACK block");
		p = parsed(r.out, r.out_len, "the upstream's SACK, renumbered");
		CHECK_EQ(p.seq, k.up.next + l1 + l2, "seq past both 429s");
		CHECK_EQ(p.ack, k.c.seq, "ack past both refused requests");
		CHECK_EQ(tp_get32(r.out + p.l4_off + 24), k.up.acked + 10 + 2 * q, "SACK left edge");
		CHECK_EQ(tp_get32(r.out + p.l4_off + 28), k.up.acked + 20 + 2 * q, "SACK right edge");
	}
	/* A retransmission of data from before the second 429 takes the offset before it. */
	p = upstream_sends(k.e, &k.c, &(struct upstream_view){ .next = k.up.next - RESPONSE_LEN,
							  .acked = k.up.acked },
			   RESPONSE_LEN, 0, "the upstream resends its last response");
	CHECK_EQ(p.seq, k.up.next - RESPONSE_LEN, "a resend from before the 429s keeps its numbers");
}

static void test_refused_request_resent(void **state)
{
	struct kept k;
	struct tp_parsed again;
	struct result r;
	struct conn resend;
	struct rls_stats st;

	refuse_keeping_open(state, &k, conn4(49301));
	/* The 429 was lost: the client sends its request again, and gets the same 429. */
	resend = k.c;
	resend.seq -= (uint32_t)k.len;
	usleep(20 * 1000); /* time moves on: the stored answer must not */
	client_sends(k.e, &resend, k.req, k.len, 0, &r);
	again = expect_kept_open_429(&r, &k.c, k.c.seq, "the refused request, sent again");
	CHECK(again.len == k.reply.len && !memcmp(again.payload, k.reply.payload, k.reply.len),
	      "the resent 429 differs from the first (%zu vs %zu bytes)", again.len, k.reply.len);
	/* Part of it again, from its middle: never passed to the upstream. */
	resend = k.c;
	resend.seq -= (uint32_t)k.len / 2;
	CHECK_EQ(client_sends(k.e, &resend, k.req + k.len / 2, k.len - k.len / 2, 0, &r), XDP_DROP,
		 "the refused request's second half, sent again");
	/* The next request sent before the 429 arrived (its ack short of the 429's end): it is
	 * dropped, and sent again once the client has the 429. */
	CHECK_EQ(client_sends(k.e, &k.c, k.req, k.len, 0, &r), XDP_DROP,
		 "a request sent before the 429 came");
	CHECK_EQ(packets_of(k.e, RLS_PKT_AHEAD_OF_429), 1, "rls_packets[AHEAD_OF_429]");
	st = stats_of(k.e, account_id(k.e, "alice"), 0);
	CHECK_EQ(rejected_total(&st), 1, "rejected: a resend is not charged again");
	CHECK_EQ(st.admitted, 3, "admitted");
}

static void test_client_reset_after_429(void **state)
{
	struct kept k;
	struct tp_parsed p;
	struct result r;
	struct rls_flow_key key;
	struct rls_flow f;

	refuse_keeping_open(state, &k, conn4(49401));
	key = conn_flow_key(&k.c);
	k.c.ack = k.reply.seq + (uint32_t)k.reply.len;
	CHECK_EQ(client_sends(k.e, &k.c, NULL, 0, TP_RST | TP_ACK, &r), XDP_PASS, "the client's RST");
	p = parsed(r.out, r.out_len, "RST, renumbered");
	CHECK_EQ(p.seq, k.c.seq - (uint32_t)k.len, "RST seq where the upstream is: it takes it");
	CHECK(bpf_map_lookup_elem(k.e->maps.flows, &key, &f) != 0, "the flow is gone after the RST");
	/* A new connection on the same ports starts afresh, numbered as sent. */
	k.c.seq += 5000;
	CHECK_EQ(client_sends(k.e, &k.c, NULL, 0, TP_SYN, &r), XDP_PASS, "a SYN on the same ports");
	expect_untouched(&r, "the new connection's SYN");
}

/*
 * A connection a 429 kept open, renumbered from then on, then reset (bytes no server reads
 * alike): the reset toward the upstream is at the upstream's number, and the client, told at
 * its resend, in its own: the reset at what it acknowledged (past the 429), acknowledging its
 * segment as it sent it.
 */
static void test_reset_after_429_told_in_the_clients_numbers(void **state)
{
	static const char garbage[] = "NOT HTTP AT ALL\r\n\r\n";
	struct kept k;
	struct tp_parsed p;
	struct result r;
	struct rls_flow_key key;
	struct rls_flow f;
	struct tp_spec s;
	int i;

	refuse_keeping_open(state, &k, conn4(49451));
	key = conn_flow_key(&k.c);
	k.c.ack = k.reply.seq + (uint32_t)k.reply.len;
	s = spec_of(&k.c, garbage, sizeof(garbage) - 1, 0);
	send_spec(k.e, &s, &r);
	expect_action(&r, XDP_PASS, "bytes no server reads alike, after a 429 kept the connection");
	p = parsed(r.out, r.out_len, "the reset toward the upstream");
	CHECK_EQ(p.flags, TP_RST, "toward the upstream: a bare RST");
	CHECK_EQ(p.seq, k.c.seq - (uint32_t)k.len, "at the upstream's next byte (renumbered)");
	CHECK(bpf_map_lookup_elem(k.e->maps.flows, &key, &f) == 0 && f.state == RLS_FLOW_RESET &&
	      f.reset.wire_seq == s.seq && f.reset.wire_ack == s.ack,
	      "the flow, reset, holding the segment's numbers as the client sent them");
	/* Routed: the first resend resets the upstream again, the second is answered. */
	for (i = 0; i < 2; i++) {
		send_spec(k.e, &s, &r);
		if (i == 0) {
			expect_action(&r, XDP_PASS, "the client's first resend");
			p = parsed(r.out, r.out_len, "the first resend's reset");
			CHECK_EQ(p.flags, TP_RST, "the first resend: a bare RST toward the upstream");
			CHECK_EQ(p.seq, k.c.seq - (uint32_t)k.len, "the first resend's reset, renumbered");
		}
	}
	check_client_reset(&r, "the client's second resend");
	CHECK(bpf_map_lookup_elem(k.e->maps.flows, &key, &f) != 0, "the flow is gone");
}

/* The client closes first: the upstream's last ACK, renumbered, ends the flow. */
static void test_client_closes_first(void **state)
{
	struct kept k;
	struct tp_parsed p;
	struct result r;
	struct rls_flow_key key;
	struct rls_flow f;

	refuse_keeping_open(state, &k, conn4(49701));
	key = conn_flow_key(&k.c);
	k.c.ack = k.reply.seq + (uint32_t)k.reply.len;
	CHECK_EQ(client_sends(k.e, &k.c, NULL, 0, TP_ACK | TP_FIN, &r), XDP_PASS, "the client's FIN");
	k.c.seq += 1;
	k.up.acked = k.c.seq - (uint32_t)k.len; /* the FIN, in the upstream's numbering */
	p = upstream_sends(k.e, &k.c, &k.up, 0, TP_ACK | TP_FIN, "the upstream's FIN");
	CHECK_EQ(p.ack, k.c.seq, "the upstream's FIN acknowledges the client's, renumbered");
	CHECK(bpf_map_lookup_elem(k.e->maps.flows, &key, &f) == 0, "the flow waits for the last ACK");
	k.c.ack = k.up.next + (uint32_t)k.reply.len;
	CHECK_EQ(client_sends(k.e, &k.c, NULL, 0, TP_ACK, &r), XDP_PASS, "the client's last ACK");
	p = parsed(r.out, r.out_len, "the client's last ACK, renumbered");
	CHECK_EQ(p.ack, k.up.next, "its ack in the upstream's numbering");
	CHECK(bpf_map_lookup_elem(k.e->maps.flows, &key, &f) != 0, "the flow is gone after it");
}

/*
 * The first request of a routed connection: the upstream has sent only its SYN-ACK, which TC
 * saw. The 429 keeps the connection, advertising that window as later segments scale it.
 */
static void test_first_request_after_handshake(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(49901);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	static const uint8_t wscale7[12] = { 3, 3, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	struct conn as_upstream = c, other = conn4(49911);
	struct tp_spec syn_ack;
	struct result r;
	struct tp_parsed p;
	int i;

	c.tcp_options = 1;
	leave_room_in_window(60, 5000);
	for (i = 0; i < 3; i++)
		CHECK_EQ(client_sends(e, &other, req, len, 0, &r), XDP_PASS, "request under the limit");
	/* The upstream's SYN-ACK: its ISN is one before the first byte the client acknowledges. */
	as_upstream.tcp_options = 1;
	syn_ack = spec_of(&as_upstream, NULL, 0, TP_SYN | TP_ACK);
	syn_ack.saddr = c.server;
	syn_ack.daddr = c.client;
	syn_ack.sport = c.dport;
	syn_ack.dport = c.sport;
	syn_ack.seq = c.ack - 1;
	syn_ack.ack = c.seq;
	r.in_len = tp_build(&syn_ack, r.in, sizeof(r.in));
	put_options(&r, wscale7);
	CHECK_EQ(rerun(e, &r, 1), TC_ACT_OK, "the upstream's SYN-ACK through TC");
	expect_untouched(&r, "the SYN-ACK");
	c.silent_upstream = 1;
	client_sends(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_TX, "the connection's first request, over the limit");
	p = parsed(r.out, r.out_len, "the 429 to the first request");
	CHECK_EQ(p.flags, TP_ACK | TP_PSH, "429 flags (ACK|PSH)");
	CHECK_EQ(p.seq, c.ack, "429 seq: the upstream's first byte");
	CHECK_EQ(p.window, SERVER_WINDOW >> 7, "429 window: the SYN-ACK's, scaled by its 7");
	CHECK(memmem(p.payload, p.len, "\r\nconnection: keep-alive\r\n", 26) != NULL,
	      "the 429 says keep-alive");
	CHECK_EQ(packets_of(e, RLS_PKT_REPLY_KEPT_OPEN), 1, "rls_packets[REPLY_KEPT_OPEN]");
	/*
	 * The next refused request gets its 429 from the flow's copy of the SYN-ACK, not the map:
	 * with the map's entry gone, the connection still stays open, at the same window.
	 */
	{
		struct rls_flow_key key = conn_flow_key(&c);

		CHECK(bpf_map_delete_elem(bpf_map__fd(e->skel->maps.rls_handshakes), &key) == 0,
		      "the connection's rls_handshakes entry: %s", strerror(errno));
	}
	c.ack = p.seq + (uint32_t)p.len;
	client_sends(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_TX, "the second request, over the limit");
	p = parsed(r.out, r.out_len, "the 429 to the second request");
	CHECK_EQ(p.flags, TP_ACK | TP_PSH, "second 429 flags (ACK|PSH, no FIN)");
	CHECK_EQ(p.seq, c.ack, "second 429 seq: right after the first");
	CHECK(memmem(p.payload, p.len, "\r\nconnection: keep-alive\r\n", 26) != NULL,
	      "the second 429 says keep-alive");
	CHECK_EQ(p.window, SERVER_WINDOW >> 7, "second 429 window: the SYN-ACK's, from the flow");
	CHECK_EQ(packets_of(e, RLS_PKT_REPLY_KEPT_OPEN), 2, "rls_packets[REPLY_KEPT_OPEN]");
}

/* Where TC has not seen the upstream's side, its window is unknown: the 429 closes. */
static void test_closes_where_upstream_unseen(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(49501);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct result r;
	struct tp_parsed p;

	c.tcp_options = 1;
	rejected_on(e, &c, req, len, &r);
	p = parsed(r.out, r.out_len, "429 on a routed connection TC never saw");
	CHECK_EQ(p.flags, TP_ACK | TP_PSH, "429 flags (ACK|PSH: the client closes, reading it)");
	CHECK(memmem(p.payload, p.len, "\r\nconnection: close\r\n", 21) != NULL,
	      "the closing 429 says connection: close");
	CHECK_EQ(p.doff, 32, "the closing 429 carries the timestamps too");
	CHECK_EQ(packets_of(e, RLS_PKT_REPLY_KEPT_OPEN), 0, "rls_packets[REPLY_KEPT_OPEN]");
}

/*
 * A client that asks to close ("Connection: close") is answered as it asked: the 429 closes,
 * on a connection where it could otherwise stay open.
 */
static void test_connection_close_honoured(void **state)
{
	struct kept k;
	char closing[1024];
	size_t closing_len;
	struct tp_parsed p;
	struct result r;

	refuse_keeping_open(state, &k, conn4(49601));
	k.c.ack = k.reply.seq + (uint32_t)k.reply.len;
	closing_len = http_request(closing, sizeof(closing),
				   BEARER(KEY_ALICE) "Connection:  Close\r\n", NULL);
	CHECK_EQ(client_sends(k.e, &k.c, closing, closing_len, 0, &r), XDP_TX,
		 "a refused request that asks to close");
	p = parsed(r.out, r.out_len, "the 429 to a request that asks to close");
	CHECK(memmem(p.payload, p.len, "\r\nconnection: close\r\n", 21) != NULL,
	      "the 429 says connection: close");
	CHECK_EQ(packets_of(k.e, RLS_PKT_REPLY_KEPT_OPEN), 1,
		 "rls_packets[REPLY_KEPT_OPEN]: the first 429 only");
}

/*
 * The client that asked to close: the 429 carries our FIN, the connection is renumbered all the
 * same, the client's FIN reaches the upstream, and the upstream's FIN is acknowledged for the
 * client (a copy sent in through the interface) while the segment itself goes on renumbered.
 */
static void close_goes_through_upstream(void **state, struct conn c)
{
	struct kept k;
	static const char closing[] = "GET /v1/models HTTP/1.1\r\nHost: gw.test\r\n"
				      "Authorization: Bearer " KEY_ALICE "\r\n"
				      "Connection: close\r\n\r\n";
	struct tp_parsed fin429, p, ack;
	uint8_t frame[TP_MAX_FRAME];
	const uint8_t *opts;
	struct result r;
	uint32_t upstream_seq, q = sizeof(closing) - 1, l;
	int tap;
	struct rls_flow_key key;
	struct rls_flow f;

	refuse_keeping_open(state, &k, c);
	key = conn_flow_key(&k.c);
	k.c.ack = k.reply.seq + (uint32_t)k.reply.len;
	upstream_seq = k.c.seq - (uint32_t)k.len; /* the client's next byte, as the upstream numbers */
	CHECK_EQ(client_sends(k.e, &k.c, closing, q, 0, &r), XDP_TX, "a refused request asking to close");
	fin429 = parsed(r.out, r.out_len, "the 429 to it");
	CHECK_EQ(fin429.flags, TP_ACK | TP_PSH | TP_FIN, "429 flags (ACK|PSH|FIN: it closes first)");
	CHECK_EQ(fin429.seq, k.reply.seq + (uint32_t)k.reply.len, "429 seq: after the first 429");
	CHECK(memmem(fin429.payload, fin429.len, "\r\nconnection: close\r\n", 21) != NULL,
	      "the 429 says connection: close");
	l = (uint32_t)k.reply.len + (uint32_t)fin429.len + 1; /* both 429s and our FIN */
	/* The client acknowledges it and closes: its FIN reaches the upstream, renumbered. */
	k.c.ack = fin429.seq + (uint32_t)fin429.len + 1;
	CHECK_EQ(client_sends(k.e, &k.c, NULL, 0, TP_ACK | TP_FIN, &r), XDP_PASS, "the client's FIN");
	p = parsed(r.out, r.out_len, "the client's FIN, renumbered");
	CHECK_EQ(p.seq, upstream_seq, "FIN seq: where the upstream is (both requests taken out)");
	CHECK_EQ(p.ack, k.up.next, "FIN ack: all the upstream sent, none of the 429s");
	k.c.seq += 1;
	/* The upstream closes too: its FIN+ACK reaches the client renumbered, acknowledging the
	 * client's FIN; and it is acknowledged itself, for the client. */
	k.up.acked = upstream_seq + 1;
	tap = tap_loopback();
	p = upstream_sends(k.e, &k.c, &k.up, 0, TP_ACK | TP_FIN, "the upstream's FIN");
	CHECK_EQ(p.seq, k.up.next - 1 + l, "the upstream's FIN, past both 429s and our FIN");
	CHECK_EQ(p.ack, k.c.seq, "it acknowledges the client's FIN");
	CHECK_EQ(packets_of(k.e, RLS_PKT_UPSTREAM_FIN_ACKED), 1, "rls_packets[UPSTREAM_FIN_ACKED]");
	/* The acknowledgment sent in to the upstream, as the client would send it: its FIN
	 * acknowledged, the timestamps echoing the upstream's in their place. */
	tapped(tap, TP_ACK, frame, sizeof(frame), &ack);
	close(tap);
	CHECK(ack.tcp_csum_ok, "the acknowledgment's TCP checksum is wrong");
	CHECK_EQ(ack.seq, upstream_seq + 1, "its seq: after the client's FIN, as the upstream numbers");
	CHECK_EQ(ack.ack, k.up.next, "its ack: the upstream's FIN");
	CHECK_EQ(ack.doff, 32, "its header: with the timestamps");
	opts = frame + ack.l4_off + 20;
	CHECK(opts[0] == 1 && opts[1] == 1 && opts[2] == 8 && opts[3] == 10,
	      "its options: NOP, NOP, timestamps (got %02x %02x %02x %02x)", opts[0], opts[1],
	      opts[2], opts[3]);
	CHECK_EQ(tp_get32(opts + 4), TS_ECR, "its TSval: the upstream's TSecr");
	CHECK_EQ(tp_get32(opts + 8), TS_VAL, "its TSecr: the upstream's TSval");
	CHECK_EQ(packets_of(k.e, RLS_PKT_RESET_UPSTREAM), 0, "no reset toward the upstream");
	CHECK(bpf_map_lookup_elem(k.e->maps.flows, &key, &f) != 0, "the flow is done with");
}

static void test_close_goes_through_upstream(void **state)
{
	close_goes_through_upstream(state, conn4(49951));
}

static void test_close_goes_through_upstream_ipv6(void **state)
{
	close_goes_through_upstream(state, conn6(49961));
}

/* "Connection: close" as the last header line, as wrk and curl put an added header. */
static void test_connection_close_last_header(void **state)
{
	struct kept k;
	static const char closing[] = "GET /v1/models HTTP/1.1\r\nHost: gw.test\r\n"
				      "Authorization: Bearer " KEY_ALICE "\r\n"
				      "Connection: close\r\n\r\n";
	struct tp_parsed p;
	struct result r;

	refuse_keeping_open(state, &k, conn4(49801));
	k.c.ack = k.reply.seq + (uint32_t)k.reply.len;
	CHECK_EQ(client_sends(k.e, &k.c, closing, sizeof(closing) - 1, 0, &r), XDP_TX,
		 "a refused request whose last header asks to close");
	p = parsed(r.out, r.out_len, "the 429 to it");
	CHECK(memmem(p.payload, p.len, "\r\nconnection: close\r\n", 21) != NULL,
	      "the 429 says connection: close");
}

/* Every request counter gone, as if no request had been counted yet. */
static void forget_counters(struct env *e)
{
	struct rls_counter_key key;

	while (bpf_map_get_next_key(e->maps.counters, NULL, &key) == 0)
		CHECK(bpf_map_delete_elem(e->maps.counters, &key) == 0, "deleting a counter");
}

/*
 * Which requests ask to close, as the parser reads the Connection header while it goes by:
 * "close" as any whole option of the list, in any case, on any Connection line, or a line
 * continued (obs-fold) where it cannot be read whole. Each on its own kept connection.
 */
static void test_connection_options(void **state)
{
	static const struct {
		const char *headers;
		int closes;
	} rows[] = {
		{ "Connection: keep-alive\r\n", 0 },
		{ "Connection: keep-alive, close\r\n", 1 },
		{ "Connection: Upgrade,CLOSE\r\n", 1 },
		{ "Connection: close ,te\r\n", 1 },
		{ "Connection: closed\r\n", 0 },
		{ "Connection: clo se\r\n", 0 },
		{ "X-Connection: close\r\n", 0 },
		{ "Connection: te\r\nConnection: close\r\n", 1 },
		{ "Connection: keep-alive\r\n close\r\n", 1 },
	};
	char headers[256], req[1024];
	struct tp_parsed p;
	struct result r;
	struct kept k;
	size_t i, len;
	int closes;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		/* Each row's account starts afresh: three requests under its rpm, then its 429s. */
		if (i)
			forget_counters(k.e);
		refuse_keeping_open(state, &k, conn4((uint16_t)(49001 + i)));
		k.c.ack = k.reply.seq + (uint32_t)k.reply.len;
		snprintf(headers, sizeof(headers), "%s%s", BEARER(KEY_ALICE), rows[i].headers);
		len = http_request(req, sizeof(req), headers, NULL);
		CHECK(client_sends(k.e, &k.c, req, len, 0, &r) == XDP_TX, "row %zu: not refused", i);
		p = parsed(r.out, r.out_len, "the 429");
		closes = memmem(p.payload, p.len, "\r\nconnection: close\r\n", 21) != NULL;
		CHECK(closes == rows[i].closes, "row %zu (%s): the 429 %s", i, rows[i].headers,
		      closes ? "closes" : "keeps the connection");
		CHECK(!!(p.flags & TP_FIN) == rows[i].closes, "row %zu: our FIN %s", i,
		      p.flags & TP_FIN ? "with it" : "missing");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		XDP_TEST(test_429_keeps_connection),
		XDP_TEST(test_second_429_offsets_add_up),
		XDP_TEST(test_refused_request_resent),
		XDP_TEST(test_client_reset_after_429),
		XDP_TEST(test_reset_after_429_told_in_the_clients_numbers),
		XDP_TEST(test_client_closes_first),
		XDP_TEST(test_first_request_after_handshake),
		XDP_TEST(test_closes_where_upstream_unseen),
		XDP_TEST(test_connection_options),
		XDP_TEST(test_connection_close_honoured),
		XDP_TEST(test_connection_close_last_header),
		XDP_TEST(test_close_goes_through_upstream),
		XDP_TEST(test_close_goes_through_upstream_ipv6),
	};

	return xdp_suite_main("bpf/test_keepalive", NULL, 0, tests, ARRAY_SIZE(tests));
}
