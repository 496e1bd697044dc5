// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The TC program (rlshape_tc, response metering) under BPF_PROG_TEST_RUN on __sk_buff frames.
 * Each case admits a request through XDP, then sends the upstream's answer through TC, and
 * checks what TC made of each segment: the response's framing (content-length, chunked, an
 * interim 1xx, none: until the close), its end at the last byte or at the upstream's FIN or
 * RST, the concurrency slot given back, and the event for the daemon, with the response's last
 * bytes, in the ring, or in rls_parked when the ring is full, or summed in rls_pending when
 * that is full too. TC never changes a packet: every frame must leave as it came.
 */
#include "cases.h"

#define KEY_METER "sk-tc-meter-0001"
#define KEY_SLOT  "sk-tc-slot-0002"
#define KEY_BOTH  "sk-tc-both-0003"

static const char table[] =
	"{'listen': {'ports': [8000]},"
	" 'tiers': {"
	"   'metered': {'*': {'tpm': 1000000, 'reserve_tokens': 100}},"
	"   'single':  {'*': {'concurrency': 1, 'max_hold_seconds': 3600}},"
	"   'both':    {'*': {'tpd': 1000000, 'reserve_tokens': 10, 'concurrency': 1}}"
	" },"
	" 'accounts': {"
	"   'meter': {'tier': 'metered', 'keys': ['" KEY_METER "']},"
	"   'slot':  {'tier': 'single',  'keys': ['" KEY_SLOT "']},"
	"   'both':  {'tier': 'both',    'keys': ['" KEY_BOTH "']}"
	" }}";

/* A request without a body: what it reserves is its size in tokens (4 bytes each) and 100. */
#define GET(key) "GET /v1/models HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer " key \
		 "\r\nAccept: */*\r\n\r\n"
#define RESERVED(req, answer) ((long long)(sizeof(req) - 1 + 3) / 4 + (answer))

#define OK_200(headers, body) "HTTP/1.1 200 OK\r\n" headers "\r\n" body
#define LEN(text) ((long long)sizeof(text) - 1)

/* The answers, named so that their lengths can be expected. */
#define ANSWER_LENGTH  OK_200("content-length: 5\r\n", "hello")
#define ANSWER_HALF    OK_200("content-length: 10\r\n", "hello")
#define ANSWER_CHUNKED OK_200("transfer-encoding: chunked\r\n", "5\r\nhello\r\n")
#define LAST_CHUNK     "0\r\n\r\n"
#define ANSWER_CLOSE   OK_200("connection: close\r\n", "{\"usage\":{\"total_tokens\":3}}")
#define ANSWER_204     "HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n"
/* A 304's content-length is the representation's it stands for: none of it follows. */
#define ANSWER_304     "HTTP/1.1 304 Not Modified\r\ncontent-length: 1234\r\n\r\n"
#define INTERIM        "HTTP/1.1 100 Continue\r\n\r\n"

/* Frames and expectations, short. */
#define REQUEST(c, key)  .hook = ON_XDP, .conn = (c), .raw = GET(key), .verdict = XDP_PASS
#define ANSWER(c, bytes) .hook = ON_TC, .conn = (c), .raw = (bytes), .verdict = TC_ACT_OK
#define CLOSE(c, f)      .hook = ON_TC, .conn = (c), .raw = "", .flags = TP_ACK | (f), \
			 .verdict = TC_ACT_OK
#define STATE(c, s)      { .kind = X_RESPONSE_STATE, .conn = (c), .value = (s) }
#define RESP_BYTES(c, n) { .kind = X_RESPONSE_BYTES, .conn = (c), .value = (n) }
#define EVENTS(n)        { .kind = X_EVENTS, .value = (n) }
#define EV_FLAGS(f)      { .kind = X_EVENT_FLAGS, .value = (f) }
#define EV_BYTES(n)      { .kind = X_EVENT_RESPONSE_BYTES, .value = (n) }
#define EV_RESERVED(n)   { .kind = X_EVENT_RESERVED, .value = (n) }
#define EV_TAIL(t)       { .kind = X_EVENT_TAIL, .text = (t), .value = 1 }
#define SLOTS(a, n)      { .kind = X_SLOTS_HELD, .account = (a), .value = (n) }
#define FLOW_GONE(c)     { .kind = X_HAS_FLOW, .conn = (c), .value = 0 }
#define PACKETS(ev, n)   { .kind = X_PACKETS, .arg = (ev), .value = (n) }

static const struct prog_case cases[] = {
	{ .name = "tc_content_length_ends_at_its_last_byte", .sport = 30001, .frames = {
		{ REQUEST(0, KEY_METER), .expect = { STATE(0, RLS_RESPONSE_AWAITED), EVENTS(0) } },
		{ ANSWER(0, ANSWER_LENGTH), .expect = {
			STATE(0, RLS_RESPONSE_NONE), EVENTS(1), EV_FLAGS(0),
			EV_BYTES(LEN(ANSWER_LENGTH)), EV_TAIL("\r\n\r\nhello"),
			EV_RESERVED(RESERVED(GET(KEY_METER), 100)) } },
	} },
	{ .name = "tc_content_length_over_two_segments", .sport = 30011, .frames = {
		{ REQUEST(0, KEY_METER) },
		{ ANSWER(0, ANSWER_HALF), .expect = {
			STATE(0, RLS_RESPONSE_LENGTH), RESP_BYTES(0, LEN(ANSWER_HALF)), EVENTS(0) } },
		{ ANSWER(0, "world"), .expect = {
			STATE(0, RLS_RESPONSE_NONE), EVENTS(1),
			EV_BYTES(LEN(ANSWER_HALF) + 5), EV_TAIL("world") } },
	} },
	{ .name = "tc_chunked_ends_at_the_last_chunk", .sport = 30021, .frames = {
		{ REQUEST(0, KEY_METER) },
		{ ANSWER(0, ANSWER_CHUNKED), .expect = {
			STATE(0, RLS_RESPONSE_CHUNKED), EVENTS(0) } },
		{ ANSWER(0, LAST_CHUNK), .expect = {
			STATE(0, RLS_RESPONSE_NONE), EVENTS(1), EV_FLAGS(RLS_EVENT_CHUNKED),
			EV_BYTES(LEN(ANSWER_CHUNKED) + LEN(LAST_CHUNK)), EV_TAIL(LAST_CHUNK) } },
	} },
	{ .name = "tc_interim_1xx_is_not_the_response", .sport = 30031, .frames = {
		{ REQUEST(0, KEY_METER) },
		{ ANSWER(0, INTERIM), .expect = {
			STATE(0, RLS_RESPONSE_AWAITED), RESP_BYTES(0, 0), EVENTS(0) } },
		{ ANSWER(0, ANSWER_LENGTH), .expect = {
			STATE(0, RLS_RESPONSE_NONE), EVENTS(1), EV_BYTES(LEN(ANSWER_LENGTH)) } },
	} },
	/*
	 * An interim 100 Continue and the final response in one segment: TC must follow the final
	 * one. The packet fuzzer found it took the segment for an interim response alone: the
	 * final head was never read, no response byte counted, and the response was charged by
	 * the estimate from the request's bytes at the connection's close.
	 */
	{ .name = "test_interim_response_then_final_in_one_segment", .sport = 28101, .frames = {
		{ .headers = "Authorization: Bearer " KEY_METER "\r\nExpect: 100-continue\r\n",
		  .body = "{}", .verdict = XDP_PASS },
		{ ANSWER(0, INTERIM ANSWER_LENGTH), .expect = {
			STATE(0, RLS_RESPONSE_NONE), EVENTS(1),
			EV_BYTES(LEN(INTERIM ANSWER_LENGTH)) } },
	} },
	{ .name = "tc_204_has_no_body_whatever_its_length", .sport = 30041, .frames = {
		{ REQUEST(0, KEY_METER) },
		{ ANSWER(0, ANSWER_204), .expect = {
			STATE(0, RLS_RESPONSE_NONE), EVENTS(1), EV_BYTES(LEN(ANSWER_204)) } },
	} },
	/*
	 * The 304 ends with its head: the next answer on the connection is metered as its own,
	 * not taken for 1,234 bytes of the 304's body.
	 */
	{ .name = "tc_304_has_no_body_whatever_its_length", .sport = 30046, .frames = {
		{ REQUEST(0, KEY_METER) },
		{ ANSWER(0, ANSWER_304), .expect = {
			STATE(0, RLS_RESPONSE_NONE), EVENTS(1), EV_BYTES(LEN(ANSWER_304)) } },
		{ REQUEST(0, KEY_METER), .expect = { STATE(0, RLS_RESPONSE_AWAITED) } },
		{ ANSWER(0, ANSWER_LENGTH), .expect = {
			STATE(0, RLS_RESPONSE_NONE), EVENTS(2), EV_BYTES(LEN(ANSWER_LENGTH)),
			EV_TAIL("\r\n\r\nhello") } },
	} },
	{ .name = "tc_until_close_ends_at_the_upstreams_fin", .sport = 30051, .frames = {
		{ REQUEST(0, KEY_METER) },
		{ ANSWER(0, ANSWER_CLOSE), .expect = {
			STATE(0, RLS_RESPONSE_UNTIL_CLOSE), EVENTS(0) } },
		{ CLOSE(0, TP_FIN), .expect = {
			STATE(0, RLS_RESPONSE_NONE), EVENTS(1), EV_FLAGS(RLS_EVENT_CLOSED),
			EV_BYTES(LEN(ANSWER_CLOSE)), EV_TAIL("{\"total_tokens\":3}}") } },
		/* A second FIN reports nothing twice. */
		{ CLOSE(0, TP_FIN), .expect = { EVENTS(1) } },
	} },
	{ .name = "tc_rst_ends_the_response_and_forgets_the_connection", .sport = 30061, .frames = {
		{ REQUEST(0, KEY_METER) },
		{ ANSWER(0, ANSWER_HALF), .expect = { STATE(0, RLS_RESPONSE_LENGTH), EVENTS(0) } },
		{ CLOSE(0, TP_RST), .expect = {
			FLOW_GONE(0), EVENTS(1), EV_FLAGS(RLS_EVENT_CLOSED),
			EV_BYTES(LEN(ANSWER_HALF)) } },
	} },
	{ .name = "tc_gives_the_slot_back_at_the_response_end", .sport = 30071, .frames = {
		{ REQUEST(0, KEY_SLOT), .expect = { SLOTS("slot", 1) } },
		{ .conn = 1, .raw = GET(KEY_SLOT), .verdict = XDP_TX, .out = OUT_429,
		  .expect = { SLOTS("slot", 1) } },
		{ ANSWER(0, ANSWER_LENGTH), .expect = {
			SLOTS("slot", 0), STATE(0, RLS_RESPONSE_NONE),
			/* No token limits: nothing to report. */
			EVENTS(0) } },
		{ REQUEST(2, KEY_SLOT), .expect = { SLOTS("slot", 1) } },
		{ CLOSE(2, TP_RST), .expect = { SLOTS("slot", 0), FLOW_GONE(2) } },
	} },
	{ .name = "tc_slot_and_tokens_end_together", .sport = 30081, .frames = {
		{ REQUEST(0, KEY_BOTH), .expect = { SLOTS("both", 1) } },
		{ ANSWER(0, ANSWER_CHUNKED), .expect = { SLOTS("both", 1), EVENTS(0) } },
		{ ANSWER(0, LAST_CHUNK), .expect = {
			SLOTS("both", 0), EVENTS(1), EV_RESERVED(RESERVED(GET(KEY_BOTH), 10)) } },
	} },
	{ .name = "tc_full_ring_parks_the_event", .sport = 30091, .ring_full = 1, .frames = {
		{ REQUEST(0, KEY_METER) },
		{ ANSWER(0, ANSWER_LENGTH), .expect = {
			STATE(0, RLS_RESPONSE_NONE), EVENTS(0), { .kind = X_PARKED, .value = 1 },
			PACKETS(RLS_PKT_RESPONSES_PARKED, 1), PACKETS(RLS_PKT_RESPONSES, 0) } },
	} },
	{ .name = "tc_full_ring_and_parked_sum_in_pending", .sport = 30101, .parked_full = 1,
	  .frames = {
		{ REQUEST(0, KEY_METER) },
		{ ANSWER(0, ANSWER_LENGTH), .expect = {
			EVENTS(0), { .kind = X_PARKED, .value = 1 }, /* the filler alone */
			{ .kind = X_PENDING, .account = "meter", .value = 1 },
			PACKETS(RLS_PKT_RESPONSES_PENDING, 1),
			PACKETS(RLS_PKT_RESPONSES_PARKED, 0) } },
		{ REQUEST(1, KEY_METER) },
		{ CLOSE(1, TP_RST), .expect = {
			{ .kind = X_PENDING, .account = "meter", .value = 2 } } },
	} },
	{ .name = "tc_passes_what_no_request_awaits", .sport = 30111, .frames = {
		/* No request on the connection: TC keeps no state for it. */
		{ ANSWER(0, ANSWER_LENGTH), .expect = { FLOW_GONE(0), EVENTS(0) } },
		{ CLOSE(0, TP_FIN), .expect = { FLOW_GONE(0), EVENTS(0) } },
	} },
};

int main(void)
{
	case_default_table = table;
	return case_run_suite("bpf/test_tc", cases, ARRAY_SIZE(cases), NULL, 0);
}
