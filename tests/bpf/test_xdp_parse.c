// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * What the XDP program must not take for a request, under BPF_PROG_TEST_RUN: malformed and
 * foreign frames pass untouched; and what the IP layer cannot hide one behind (options,
 * extension headers, two VLAN tags, fragments, urgent data).
 */
#include "xdp_suite.h"

/* ---- 5: what is not a request passes, untouched ---- */

static void expect_pass_frame(struct env *e, const uint8_t *frame, size_t len, const char *what)
{
	struct result r;

	memcpy(r.in, frame, len);
	r.in_len = len;
	r.action = run_frame(e, r.in, r.in_len, r.out, &r.out_len);
	expect_action(&r, XDP_PASS, what);
	expect_untouched(&r, what);
}

/* The frame came back as a bare RST toward the upstream, at the segment's own sequence. */
static void expect_reset_spec(struct env *e, const struct tp_spec *s, const char *what)
{
	__u64 before = packets_of(e, RLS_PKT_STREAM_RESET);
	size_t l4 = 14 + (s->vlan ? 4 : 0) + (s->ipv6 ? 40 : 20);
	struct result r;

	send_spec(e, s, &r);
	expect_action(&r, XDP_PASS, what);
	CHECK(r.out_len == l4 + 20, "%s: the reset frame is %u bytes, not %zu", what, r.out_len,
	      l4 + 20);
	CHECK_EQ(r.out[l4 + 13], TP_RST, "TCP flags of the reset");
	CHECK_EQ(tp_get32(r.out + l4 + 4), s->seq, "the reset's sequence number");
	CHECK_EQ(packets_of(e, RLS_PKT_STREAM_RESET), before + 1, "rls_packets[STREAM_RESET]");
}

static void expect_pass_spec(struct env *e, const struct tp_spec *s, const char *what)
{
	struct result r;

	send_spec(e, s, &r);
	expect_action(&r, XDP_PASS, what);
	expect_untouched(&r, what);
}

static void test_malformed_all_pass(void **state)
{
	struct env *e = need_env(state);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct conn c = conn4(46001), c6 = conn6(46002);
	uint8_t frame[TP_MAX_FRAME];
	struct tp_spec s;
	size_t flen, l3 = 14;
	struct result r;
	__u32 alice = account_id(e, "alice");
	struct rls_stats st;
	unsigned seed = 12345, i, j;
	static const uint8_t tls[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc,
				       0x03, 0x03, 0xaa, 0xbb, 0xcc, 0xdd, 0xee };

	/*
	 * Bytes to the watched port that no HTTP/1.1 server reads as a request: the connection
	 * is reset (the segment becomes a RST toward the upstream), never passed unread.
	 */
	s = spec_of(&c, tls, sizeof(tls), 0);
	expect_reset_spec(e, &s, "TLS ClientHello bytes to port 8000");
	s = spec_of(&c, "HELLO WORLD, NOT HTTP\r\n\r\n", 25, 0);
	s.sport++;
	expect_reset_spec(e, &s, "text that is not HTTP");
	s = spec_of(&c, "POST /v1/models XTTP/1.1\r\n" BEARER(KEY_ALICE) "\r\n",
		    26 + strlen(BEARER(KEY_ALICE)) + 2, 0);
	s.sport += 2;
	expect_reset_spec(e, &s, "request line without HTTP/1.x");
	s = spec_of(&c, "get /v1/models HTTP/1.1\r\n\r\n", 27, 0);
	s.sport += 3;
	expect_reset_spec(e, &s, "a method in lower case");
	/* The start of a request: passed, and followed on. */
	s = spec_of(&c, "GET ", 4, 0);
	s.sport += 4;
	expect_pass_spec(e, &s, "4-byte segment");

	/* A valid request, but not to a watched port. */
	s = spec_of(&c, req, len, 0);
	s.dport = 8001;
	expect_pass_spec(e, &s, "request to port 8001");
	s = spec_of(&c, req, len, 0);
	s.dport = 80;
	s.sport = 8000; /* the source port is not the service */
	expect_pass_spec(e, &s, "request from port 8000 to port 80");

	/* Control segments. */
	s = spec_of(&c, NULL, 0, TP_ACK);
	expect_pass_spec(e, &s, "pure ACK");
	s = spec_of(&c, NULL, 0, TP_SYN);
	expect_pass_spec(e, &s, "SYN");
	s = spec_of(&c, req, len, TP_SYN);
	send_spec(e, &s, &r);
	expect_action(&r, XDP_DROP, "SYN carrying a request (TFO): the server would read it unseen");
	s = spec_of(&c, NULL, 0, TP_RST);
	expect_pass_spec(e, &s, "RST");
	s = spec_of(&c, NULL, 0, TP_FIN | TP_ACK);
	expect_pass_spec(e, &s, "FIN");

	/* Truncations. */
	s = spec_of(&c, req, len, 0);
	flen = tp_build(&s, frame, sizeof(frame));
	tp_put16(frame + l3 + 2, (uint16_t)(tp_get16(frame + l3 + 2) + 100));
	tp_put16(frame + l3 + 10, 0);
	tp_put16(frame + l3 + 10, tp_fold(tp_sum(0, frame + l3, 20)));
	expect_pass_frame(e, frame, flen, "IPv4 total length 100 bytes past the frame");
	tp_put16(frame + l3 + 2, 30);
	tp_put16(frame + l3 + 10, 0);
	tp_put16(frame + l3 + 10, tp_fold(tp_sum(0, frame + l3, 20)));
	expect_pass_frame(e, frame, flen, "IPv4 total length shorter than IP + TCP headers");
	flen = tp_build(&s, frame, sizeof(frame));
	expect_pass_frame(e, frame, l3 + 20 + 10, "TCP header cut after 10 bytes");
	expect_pass_frame(e, frame, l3 + 20, "IPv4 header, no TCP header");
	expect_pass_frame(e, frame, l3 + 10, "IPv4 header cut");
	expect_pass_frame(e, frame, 14, "Ethernet header only");
	expect_pass_frame(e, frame, l3 + 20 + 20 + 10, "request cut after 10 payload bytes");
	frame[l3 + 20 + 12] = 0x40; /* doff 4 */
	expect_pass_frame(e, frame, flen, "TCP data offset 4");
	frame[l3 + 20 + 12] = 0xf0; /* doff 15: 60 bytes, fine here, but options are garbage */
	tp_put16(frame + l3 + 2, 20 + 40);
	tp_put16(frame + l3 + 10, 0);
	tp_put16(frame + l3 + 10, tp_fold(tp_sum(0, frame + l3, 20)));
	expect_pass_frame(e, frame, flen, "TCP data offset past the IP length");

	s = spec_of(&c6, req, len, 0);
	flen = tp_build(&s, frame, sizeof(frame));
	tp_put16(frame + l3 + 4, (uint16_t)(tp_get16(frame + l3 + 4) + 64));
	expect_pass_frame(e, frame, flen, "IPv6 payload length past the frame");
	flen = tp_build(&s, frame, sizeof(frame));
	expect_pass_frame(e, frame, l3 + 40 + 8, "IPv6, TCP header cut");
	expect_pass_frame(e, frame, l3 + 30, "IPv6 header cut");

	s = spec_of(&c, req, len, 0);
	s.vlan = 1;
	s.vlan_tci = 7;
	flen = tp_build(&s, frame, sizeof(frame));
	expect_pass_frame(e, frame, 16, "802.1Q tag cut");
	expect_pass_frame(e, frame, 18 + 12, "tagged IPv4 header cut");

	/* What the parser deliberately does not follow (options, extension headers,
	 * first fragments and urgent data are in "the IP layer cannot hide a request"). */
	s = spec_of(&c, req, len, 0);
	s.frag_off = 0x0010;
	expect_pass_spec(e, &s, "later IPv4 fragment (offset 128)");
	s = spec_of(&c, req, len, 0);
	s.vlan = 1;
	s.vlan_tci = 5;
	s.outer_tpid = 0x88a8;
	s.outer_tci = 6;
	flen = tp_build(&s, frame, sizeof(frame));
	memmove(frame + 16, frame + 12, flen - 12); /* a third tag: not followed */
	tp_put16(frame + 12, 0x88a8);
	tp_put16(frame + 14, 4);
	expect_pass_frame(e, frame, flen + 4, "three VLAN tags");
	s = spec_of(&c, req, len, 0);
	flen = tp_build(&s, frame, sizeof(frame));
	frame[l3 + 9] = 17; /* UDP */
	tp_put16(frame + l3 + 10, 0);
	tp_put16(frame + l3 + 10, tp_fold(tp_sum(0, frame + l3, 20)));
	expect_pass_frame(e, frame, flen, "UDP datagram carrying a request");
	flen = tp_build(&s, frame, sizeof(frame));
	tp_put16(frame + 12, 0x0806);
	expect_pass_frame(e, frame, flen, "ARP ethertype");

	/* Garbage: random bytes under every ethertype the parser looks at. */
	for (i = 0; i < 400; i++) {
		static const uint16_t types[] = { TP_ETH_P_IP, TP_ETH_P_IPV6, TP_ETH_P_8021Q, 0x88a8,
						  0x1234 };
		char what[64];

		flen = 14 + rand_r(&seed) % 200;
		for (j = 0; j < flen; j++)
			frame[j] = (uint8_t)rand_r(&seed);
		tp_put16(frame + 12, types[i % ARRAY_SIZE(types)]);
		if (i % 3 == 0 && flen > 14 + 20) {
			/* Plausible IPv4/TCP to port 8000 with random everything else. */
			tp_put16(frame + 12, TP_ETH_P_IP);
			frame[14] = 0x45;
			frame[14 + 9] = 6;
			tp_put16(frame + 14 + 6, 0);
			if (flen > 14 + 20 + 4)
				tp_put16(frame + 14 + 20 + 2, PORT);
			if (flen > 14 + 20 + 13)
				frame[14 + 20 + 13] &= ~TP_URG; /* urgent data is dropped, not passed */
		}
		snprintf(what, sizeof(what), "garbage frame %u (%zu bytes)", i, flen);
		expect_pass_frame(e, frame, flen, what);
	}

	/* Nothing above was charged... */
	st = stats_of(e, alice, 0);
	CHECK_EQ(st.admitted, 0, "alice charged for something not a request");
	CHECK_EQ(rejected_total(&st), 0, "alice rejected");
	CHECK(packets_of(e, RLS_PKT_UNPARSED) > 0, "rls_packets[RLS_PKT_UNPARSED] never counted");
	CHECK(packets_of(e, RLS_PKT_STREAM_RESET) > 0, "rls_packets[RLS_PKT_STREAM_RESET] never counted");
	/* ...and the program still works (a new connection on ports reset above: its SYN first). */
	c = conn4(46003);
	s = spec_of(&c, NULL, 0, TP_SYN);
	s.seq = c.seq - 1;
	expect_pass_spec(e, &s, "SYN of a new connection");
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "a well-formed request afterwards");
	CHECK_EQ(stats_of(e, alice, 0).admitted, 1, "alice admitted for the well-formed request");
}

/* ---- 9: the IP layer cannot hide a request ---- */

/*
 * IPv4 options, IPv6 extension headers and two VLAN tags are followed to the request, which
 * is charged like any other; first fragments and urgent data to a watched port are dropped
 * and counted; the 429 never echoes the client's options or extension headers.
 */

/* Send s; it must pass untouched and leave alice uncharged. */
static void expect_pass_uncharged(struct env *e, const struct tp_spec *s, const char *what)
{
	__u32 alice = account_id(e, "alice");
	__u64 before = stats_of(e, alice, RLS_MODEL_OTHER).admitted;

	expect_pass_spec(e, s, what);
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, before, what);
}

/* Send s; it must be dropped, counted once more under event, and leave alice uncharged. */
static void expect_dropped_as(struct env *e, const struct tp_spec *s, __u32 event,
			      const char *what)
{
	__u32 alice = account_id(e, "alice");
	__u64 before = packets_of(e, event), admitted = stats_of(e, alice, RLS_MODEL_OTHER).admitted;
	struct result r;

	send_spec(e, s, &r);
	expect_action(&r, XDP_DROP, what);
	CHECK_EQ(packets_of(e, event), before + 1, what);
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, admitted, what);
}

static void test_ip_ipv4_options_charged_429_stripped(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(49001);
	struct tp_parsed in;
	struct reply_429 rep;
	struct result r;
	char why[256];

	c.ip_options = 10; /* 40 bytes, ihl 15: a loose source route, then NOPs */
	leave_room_in_window(60, 5000);
	admit_until_limit(e, &c, "alice", &r);
	CHECK(tp_parse(r.in, r.in_len, &in, why, sizeof(why)) == 0, "test bug: request: %s", why);
	CHECK_EQ(in.ip_hdr_len, 60, "test bug: the request's IPv4 header length");
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK_EQ(r.out[14], 0x45, "429 version and ihl byte");
	CHECK(!memmem(r.out, r.out_len, "\x83\x07\x08\xc6\x12", 5),
	      "the 429 carries the request's source route option");
}

static void test_ip_ipv6_ext_chain_charged_429_stripped(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn6(49011);
	struct tp_parsed in;
	struct reply_429 rep;
	struct result r;
	char why[256];

	c.ipv6_chain = "hdrd"; /* hop-by-hop, destination options, routing, destination options */
	leave_room_in_window(60, 5000);
	admit_until_limit(e, &c, "alice", &r);
	CHECK(tp_parse(r.in, r.in_len, &in, why, sizeof(why)) == 0, "test bug: request: %s", why);
	CHECK_EQ(in.ipv6_exts, 4, "test bug: the request's extension headers");
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK_EQ(r.out[14 + 6], 6, "429 IPv6 next header (TCP, no extension headers)");
}

static void test_ip_two_vlan_tags_charged_429_keeps_both(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(49021), c6 = conn6(49022);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct reply_429 rep;
	struct result r;

	/* 802.1ad outer (service) tag, 802.1Q inner (customer) tag. */
	c.vlan = 1;
	c.tci = 0x2064; /* PCP 1, VID 100 */
	c.outer_tpid = TP_ETH_P_8021AD;
	c.outer_tci = 0x00c8; /* VID 200 */
	leave_room_in_window(60, 5000);
	admit_until_limit(e, &c, "alice", &r);
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK_EQ(r.out[12] << 8 | r.out[13], TP_ETH_P_8021AD, "429 outer TPID");
	CHECK_EQ(r.out[14] << 8 | r.out[15], 0x00c8, "429 outer TCI");
	CHECK_EQ(r.out[16] << 8 | r.out[17], TP_ETH_P_8021Q, "429 inner TPID");
	CHECK_EQ(r.out[18] << 8 | r.out[19], 0x2064, "429 inner TCI");
	CHECK_EQ(r.out[20] << 8 | r.out[21], TP_ETH_P_IP, "429 ethertype inside the tags");

	/* Two 802.1Q tags, IPv6 with a destination options header: still alice's, over. */
	c6.vlan = 1;
	c6.tci = 7;
	c6.outer_tpid = TP_ETH_P_8021Q;
	c6.outer_tci = 8;
	c6.ipv6_chain = "d";
	conn_send(e, &c6, req, len, 0, &r);
	check_429(&r, "Requests rate limit exceeded", 3, &rep);
	CHECK_EQ(r.out[20] << 8 | r.out[21], TP_ETH_P_IPV6, "429 ethertype inside two 802.1Q tags");
	{
		struct rls_stats st = stats_of(e, account_id(e, "alice"), RLS_MODEL_OTHER);

		CHECK_EQ(st.admitted, 3, "alice admitted");
		CHECK_EQ(rejected_total(&st), 2, "alice rejected (one 429 per tag layout)");
	}
}

static void test_ip_fragments(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(49031), c6 = conn6(49032);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL), flen, l3 = 14;
	uint8_t frame[TP_MAX_FRAME];
	struct tp_spec s;
	struct result r;
	__u64 unparsed;

	/* IPv4: the first fragment (MF, offset 0) carries the TCP header and the ports. */
	s = spec_of(&c, req, len, 0);
	s.frag_off = 0x2000;
	expect_dropped_as(e, &s, RLS_PKT_FRAGMENT_DROPPED, "first IPv4 fragment to port 8000");
	s.ip_options = 3;
	expect_dropped_as(e, &s, RLS_PKT_FRAGMENT_DROPPED, "first IPv4 fragment with options");
	s.ip_options = 0;
	s.dport = 8001;
	expect_pass_uncharged(e, &s, "first IPv4 fragment to port 8001");
	/* Later fragments hold no TCP header; without the first they are never reassembled. */
	s = spec_of(&c, req, len, 0);
	s.frag_off = 0x2000 | 0x0010;
	expect_pass_uncharged(e, &s, "middle IPv4 fragment (offset 128, MF)");
	s.frag_off = 0x0010;
	expect_pass_uncharged(e, &s, "last IPv4 fragment (offset 128)");

	/* IPv6: the fragment header, alone or behind others. */
	s = spec_of(&c6, req, len, 0);
	s.ipv6_chain = "f";
	s.ipv6_frag = 1; /* offset 0, M */
	expect_dropped_as(e, &s, RLS_PKT_FRAGMENT_DROPPED, "first IPv6 fragment to port 8000");
	s.ipv6_chain = "hdf";
	expect_dropped_as(e, &s, RLS_PKT_FRAGMENT_DROPPED,
			  "first IPv6 fragment behind hop-by-hop and destination options");
	s.dport = 8001;
	expect_pass_uncharged(e, &s, "first IPv6 fragment to port 8001");
	s = spec_of(&c6, req, len, 0);
	s.ipv6_chain = "f";
	s.ipv6_frag = 16 << 3 | 1;
	expect_pass_uncharged(e, &s, "middle IPv6 fragment (offset 128, M)");
	s.ipv6_frag = 16 << 3;
	expect_pass_uncharged(e, &s, "last IPv6 fragment (offset 128)");
	CHECK_EQ(packets_of(e, RLS_PKT_FRAGMENT_DROPPED), 4, "rls_packets[FRAGMENT_DROPPED]");

	/*
	 * RFC 7112: a first fragment whose TCP header is cut. With the ports in it, it goes the
	 * way of every first fragment; without them (2 bytes) its port is unknown: passed as
	 * unparsed, and the kernel discards it anyway (RFC 8200 4.5).
	 */
	s = spec_of(&c6, req, len, 0);
	s.ipv6_chain = "f";
	s.ipv6_frag = 1;
	flen = tp_build(&s, frame, sizeof(frame));
	tp_put16(frame + l3 + 4, 8 + 10);
	memcpy(r.in, frame, l3 + 40 + 8 + 10);
	r.in_len = l3 + 40 + 8 + 10;
	r.action = run_frame(e, r.in, r.in_len, r.out, &r.out_len);
	expect_action(&r, XDP_DROP, "first IPv6 fragment with 10 bytes of TCP header");
	CHECK_EQ(packets_of(e, RLS_PKT_FRAGMENT_DROPPED), 5, "rls_packets[FRAGMENT_DROPPED]");
	tp_put16(frame + l3 + 4, 8 + 2);
	unparsed = packets_of(e, RLS_PKT_UNPARSED);
	expect_pass_frame(e, frame, l3 + 40 + 8 + 2, "first IPv6 fragment with 2 bytes of TCP");
	CHECK_EQ(packets_of(e, RLS_PKT_UNPARSED), unparsed + 1, "rls_packets[UNPARSED]");
	CHECK(flen > l3 + 40 + 8 + 10, "test bug: the frame was cut");

	/* An atomic fragment (offset 0, no M) is a whole packet (RFC 6946): charged. */
	s = spec_of(&c6, req, len, 0);
	s.ipv6_chain = "f";
	s.ipv6_frag = 0;
	send_spec(e, &s, &r);
	expect_action(&r, XDP_PASS, "atomic IPv6 fragment");
	CHECK_EQ(stats_of(e, account_id(e, "alice"), RLS_MODEL_OTHER).admitted, 1,
		 "alice charged for the atomic fragment's request, and only for it");
	CHECK_EQ(packets_of(e, RLS_PKT_FRAGMENT_DROPPED), 5, "an atomic fragment is not dropped");
}

static void test_ip_urgent_dropped(void **state)
{
	struct env *e = need_env(state);
	struct conn c = conn4(49041), c6 = conn6(49042);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct tp_spec s;
	struct result r;

	/* "GE" + urgent byte: the server would read "GET" without its 'T'... or the reverse. */
	s = spec_of(&c, req, len, TP_ACK | TP_PSH | TP_URG);
	s.urg_ptr = 3;
	expect_dropped_as(e, &s, RLS_PKT_URGENT_DROPPED, "request with urgent data (IPv4)");
	s = spec_of(&c6, req, len, TP_ACK | TP_PSH | TP_URG);
	s.urg_ptr = 3;
	s.ipv6_chain = "d";
	expect_dropped_as(e, &s, RLS_PKT_URGENT_DROPPED, "request with urgent data (IPv6)");
	/* The urgent pointer may point into a later segment: the announcement goes too. */
	s = spec_of(&c, NULL, 0, TP_ACK | TP_URG);
	s.urg_ptr = 100;
	expect_dropped_as(e, &s, RLS_PKT_URGENT_DROPPED, "pure ACK announcing urgent data");
	s = spec_of(&c, req, len, TP_ACK | TP_PSH | TP_URG);
	s.urg_ptr = 3;
	s.dport = 8001;
	expect_pass_uncharged(e, &s, "urgent data to port 8001");
	CHECK_EQ(packets_of(e, RLS_PKT_URGENT_DROPPED), 3, "rls_packets[URGENT_DROPPED]");

	/* Sent again without URG, the same request is charged. */
	conn_send(e, &c, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "the request without urgent data");
	CHECK_EQ(stats_of(e, account_id(e, "alice"), RLS_MODEL_OTHER).admitted, 1,
		 "alice charged for the request without urgent data");
}

static void test_ip_ext_chain_bound_and_truncation(void **state)
{
	struct env *e = need_env(state);
	struct conn c6 = conn6(49051);
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL), flen, l3 = 14;
	uint8_t frame[TP_MAX_FRAME];
	__u32 alice = account_id(e, "alice");
	unsigned seed = 4242, i, j;
	struct tp_spec s;
	struct result r;
	__u64 unparsed;

	/* Eight headers: the most the parser walks (RLS_IPV6_EXT_MAX); charged. */
	s = spec_of(&c6, req, len, 0);
	s.ipv6_chain = "hdrdddfd";
	send_spec(e, &s, &r);
	expect_action(&r, XDP_PASS, "eight extension headers");
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 1, "alice charged through 8 headers");

	/*
	 * Nine: past the bound the TCP header, and so the port, is unknown. Dropped whatever
	 * the port (see RLS_IPV6_EXT_MAX in bpf/lib/packet.h): passing it would let a request
	 * hide behind the chain, and RFC 8200 allows no more than five of these headers.
	 */
	s.ipv6_chain = "hdrdddddd";
	unparsed = packets_of(e, RLS_PKT_DEEP_IPV6_DROPPED);
	send_spec(e, &s, &r);
	expect_action(&r, XDP_DROP, "nine extension headers");
	CHECK_EQ(packets_of(e, RLS_PKT_DEEP_IPV6_DROPPED), unparsed + 1,
		 "rls_packets[DEEP_IPV6_DROPPED], 9 headers");
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 1, "alice charged behind 9 headers");

	/* Truncations and lengths that run past the packet: passed, never read past the end. */
	s.ipv6_chain = "hdr";
	flen = tp_build(&s, frame, sizeof(frame));
	unparsed = packets_of(e, RLS_PKT_UNPARSED);
	expect_pass_frame(e, frame, l3 + 40 + 3, "hop-by-hop header cut after 3 bytes");
	expect_pass_frame(e, frame, l3 + 40 + 8 + 16 + 10, "routing header cut after 10 bytes");
	expect_pass_frame(e, frame, l3 + 40 + 8 + 16 + 24 + 6, "TCP header cut behind the chain");
	frame[l3 + 40 + 8 + 1] = 255; /* destination options of 2048 bytes */
	expect_pass_frame(e, frame, flen, "destination options header longer than the packet");
	flen = tp_build(&s, frame, sizeof(frame));
	tp_put16(frame + l3 + 4, 8 + 16); /* payload length ends inside the routing header */
	expect_pass_frame(e, frame, flen, "payload length ending inside the chain");
	tp_put16(frame + l3 + 4, 8 + 16 + 24 + 10); /* ...inside the TCP header */
	expect_pass_frame(e, frame, flen, "payload length ending inside the TCP header");
	CHECK_EQ(packets_of(e, RLS_PKT_UNPARSED), unparsed + 6, "rls_packets[UNPARSED], cut");

	/* Random chains: any verdict but a crash; a passed frame is untouched. */
	for (i = 0; i < 300; i++) {
		static const uint8_t kinds[] = { 0, 43, 44, 60, 6, 17 };
		char what[64];
		size_t off;

		flen = l3 + 40 + rand_r(&seed) % 160;
		for (j = 0; j < flen; j++)
			frame[j] = (uint8_t)rand_r(&seed);
		tp_put16(frame + 12, TP_ETH_P_IPV6);
		frame[l3] = 0x60;
		tp_put16(frame + l3 + 4, (uint16_t)(flen - l3 - 40 + (i % 4 == 0 ? 8 : 0)));
		frame[l3 + 6] = kinds[rand_r(&seed) % 4];
		/* Short headers mostly, chaining to more of them, so the walk goes deep. */
		for (off = l3 + 40; off + 8 <= flen; off += (frame[off + 1] + 1u) * 8u) {
			frame[off] = kinds[rand_r(&seed) % ARRAY_SIZE(kinds)];
			frame[off + 1] = (uint8_t)(rand_r(&seed) % 8 ? 0 : rand_r(&seed) % 4);
			if (off + 4 <= flen && frame[off] == 6 && off + 8 + 4 <= flen)
				tp_put16(frame + off + 8 + 2, PORT);
		}
		memcpy(r.in, frame, flen);
		r.in_len = flen;
		r.action = run_frame(e, r.in, r.in_len, r.out, &r.out_len);
		snprintf(what, sizeof(what), "random chain %u (%zu bytes)", i, flen);
		CHECK(r.action == XDP_PASS || r.action == XDP_DROP, "%s: %s", what,
		      xdp_name(r.action));
		if (r.action == XDP_PASS && (r.out_len != r.in_len || memcmp(r.in, r.out, r.in_len))) {
			/* Random bytes to the watched port are no HTTP: the connection is reset,
			 * the frame made a bare RST with its headers kept. */
			struct tp_parsed p;
			char why[128];

			CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0 &&
			      p.flags == TP_RST && p.len == 0,
			      "%s: a passed frame was changed into something not a bare RST", what);
		}
	}
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 1, "alice charged by random chains");

	/* The program still works. */
	c6 = conn6(49052);
	c6.ipv6_chain = "dd";
	conn_send(e, &c6, req, len, 0, &r);
	expect_action(&r, XDP_PASS, "a well-formed request afterwards");
	CHECK_EQ(stats_of(e, alice, RLS_MODEL_OTHER).admitted, 2, "alice charged afterwards");
}

/* The reset toward the upstream keeps the client's IP headers, with lengths and sums right. */
static void test_ip_reset_upstream_keeps_ip_extras(void **state)
{
	struct env *e = need_env(state);
	struct conn rounds[2] = { conn4(49061), conn6(49062) };
	char req[1024];
	size_t len = http_request(req, sizeof(req), BEARER(KEY_ALICE), NULL);
	struct tp_parsed p429, p;
	struct result rej, r;
	char why[256];
	int round;

	rounds[0].ip_options = 10;
	rounds[1].ipv6_chain = "hdr";
	for (round = 0; round < 2; round++) {
		struct conn *cc = &rounds[round];
		uint32_t request_seq = cc->seq;

		if (round) {
			env_close(e);
			CHECK(env_open(e, table_default) == 0, "reload: %s", e->why);
		}
		rejected_on(e, cc, req, len, &rej);
		CHECK(tp_parse(rej.out, rej.out_len, &p429, why, sizeof(why)) == 0, "429: %s", why);
		CHECK_EQ(p429.ip_hdr_len, cc->ipv6 ? 40 : 20, "429 IP header length");
		CHECK(p429.tcp_csum_ok && p429.ip_csum_ok, "429 checksums");

		cc->ack = p429.seq + (uint32_t)p429.len;
		conn_send(e, cc, NULL, 0, TP_ACK, &r);
		expect_action(&r, XDP_PASS, "ACK of the 429");
		check_upstream_reset(&r, cc, request_seq);
		CHECK(tp_parse(r.out, r.out_len, &p, why, sizeof(why)) == 0, "the RST frame: %s", why);
		CHECK_EQ(p.ip_hdr_len, cc->ipv6 ? 40 + 8 + 16 + 24 : 60,
			 "reset IP header length (the client's headers kept)");
		CHECK_EQ(p.ipv6_exts, cc->ipv6 ? 3 : 0, "reset extension headers");
		same_bytes(r.out + 14 + (cc->ipv6 ? 40 : 20), r.in + 14 + (cc->ipv6 ? 40 : 20),
			   p.ip_hdr_len - (cc->ipv6 ? 40 : 20), "reset options / extension headers");
		CHECK_EQ(packets_of(e, RLS_PKT_RESET_UPSTREAM), 1, "rls_packets[RESET_UPSTREAM]");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		XDP_TEST(test_malformed_all_pass),
		XDP_TEST(test_ip_ipv4_options_charged_429_stripped),
		XDP_TEST(test_ip_ipv6_ext_chain_charged_429_stripped),
		XDP_TEST(test_ip_two_vlan_tags_charged_429_keeps_both),
		XDP_TEST(test_ip_fragments),
		XDP_TEST(test_ip_urgent_dropped),
		XDP_TEST(test_ip_ext_chain_bound_and_truncation),
		XDP_TEST(test_ip_reset_upstream_keeps_ip_extras),
	};

	return xdp_suite_main("bpf/test_xdp_parse", NULL, 0, tests, ARRAY_SIZE(tests));
}
