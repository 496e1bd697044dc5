// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Which rls_flows entries the daemon removes (user/flows.c): connections that went silent,
 * each after the time its place in the stream allows; never one that has spoken since.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "flows.h"

#define S    1000000000ull
#define LAST (1000 * S) /* when the client last spoke */

struct step {
	const char *what;
	__u32 phase;
	__u32 closed;
	__u32 slot_held;
	__u32 response_state;
	__u64 silent_s; /* seconds since LAST */
	bool stale;
	bool renumbered; /* a 429 kept the connection (struct rls_seqadj) */
};

static const struct step steps[] = {
	{ "between requests, just before 15 min", RLS_PHASE_IDLE, 0, 0, 0, RLS_FLOW_IDLE_BETWEEN_S - 1, false, false },
	{ "between requests, 15 min", RLS_PHASE_IDLE, 0, 0, 0, RLS_FLOW_IDLE_BETWEEN_S, true, false },
	{ "between requests, a slot held", RLS_PHASE_IDLE, 0, 1, 0, RLS_FLOW_IDLE_BETWEEN_S, false, false },
	{ "between requests, a response followed", RLS_PHASE_IDLE, 0, 0, RLS_RESPONSE_LENGTH,
	  RLS_FLOW_IDLE_BETWEEN_S, false, false },
	{ "mid-body, 15 min", RLS_PHASE_BODY, 0, 0, 0, RLS_FLOW_IDLE_BETWEEN_S, false, false },
	{ "mid-body, just before an hour", RLS_PHASE_BODY, 0, 0, 0, RLS_FLOW_IDLE_ANY_S - 1, false, false },
	{ "mid-body, an hour", RLS_PHASE_BODY, 0, 0, 0, RLS_FLOW_IDLE_ANY_S, true, false },
	{ "a slot held, an hour", RLS_PHASE_IDLE, 0, 1, 0, RLS_FLOW_IDLE_ANY_S, true, false },
	/* A WebSocket session (listen.websocket "tunnel"): its slot held, its answer to the end. */
	{ "a WebSocket session, 15 min", RLS_PHASE_TUNNEL, 0, 1, RLS_RESPONSE_UNTIL_CLOSE,
	  RLS_FLOW_IDLE_BETWEEN_S, false, false },
	{ "a WebSocket session, an hour", RLS_PHASE_TUNNEL, 0, 1, RLS_RESPONSE_UNTIL_CLOSE,
	  RLS_FLOW_IDLE_ANY_S, true, false },
	{ "upstream closed, just before 2 min", RLS_PHASE_NAME, RLS_CLOSED_SERVER, 0, 0,
	  RLS_FLOW_IDLE_AFTER_CLOSE_S - 1, false, false },
	{ "upstream closed, 2 min", RLS_PHASE_NAME, RLS_CLOSED_SERVER, 0, 0,
	  RLS_FLOW_IDLE_AFTER_CLOSE_S, true, false },
	{ "client closed only, 2 min", RLS_PHASE_NAME, RLS_CLOSED_CLIENT, 0, 0,
	  RLS_FLOW_IDLE_AFTER_CLOSE_S, false, false },
	/* Without its entry a renumbered connection's next segment would reach the upstream in
	 * the client's numbering: it waits out the longest silence. */
	{ "renumbered, between requests, 15 min", RLS_PHASE_IDLE, 0, 0, 0, RLS_FLOW_IDLE_BETWEEN_S,
	  false, true },
	{ "renumbered, an hour", RLS_PHASE_IDLE, 0, 0, 0, RLS_FLOW_IDLE_ANY_S, true, true },
	{ "renumbered, upstream closed, 2 min", RLS_PHASE_IDLE, RLS_CLOSED_SERVER, 0, 0,
	  RLS_FLOW_IDLE_AFTER_CLOSE_S, true, true },
};

static void test_stale_after_its_time(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct rls_flow f;

		memset(&f, 0, sizeof(f));
		f.last_seen_ns = LAST;
		f.stream.phase = (__u8)steps[i].phase;
		f.closed = steps[i].closed;
		f.slot_held = steps[i].slot_held;
		f.response_state = steps[i].response_state;
		f.seqadj.active = steps[i].renumbered;
		if (rls_flow_stale(&f, LAST + steps[i].silent_s * S) != steps[i].stale)
			fail_msg("%s: stale should be %d", steps[i].what, steps[i].stale);
	}
}

/*
 * A connection XDP reset waits for its client's resend, which comes within seconds: mid-request
 * as it was, it goes after two minutes, not an hour.
 */
static void test_reset_goes_after_two_minutes(void **state)
{
	struct rls_flow f;

	(void)state;
	memset(&f, 0, sizeof(f));
	f.last_seen_ns = LAST;
	f.stream.phase = RLS_PHASE_BODY;
	f.state = RLS_FLOW_RESET;
	assert_false(rls_flow_stale(&f, LAST + (RLS_FLOW_IDLE_AFTER_CLOSE_S - 1) * S));
	assert_true(rls_flow_stale(&f, LAST + RLS_FLOW_IDLE_AFTER_CLOSE_S * S));
}

/* A clock behind the entry (it spoke after the walk read the time) is never stale. */
static void test_spoke_after_now(void **state)
{
	struct rls_flow f;

	(void)state;
	memset(&f, 0, sizeof(f));
	f.last_seen_ns = LAST + 5 * S;
	assert_false(rls_flow_stale(&f, LAST));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stale_after_its_time),
		cmocka_unit_test(test_reset_goes_after_two_minutes),
		cmocka_unit_test(test_spoke_after_now),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests_name("unit/test_flows", tests, NULL, NULL);
}
