// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The request stream tracker under TC: bpf/request_stream_skb.bpf.c runs the packet parser and
 * the stream (bpf/lib/http_request.h) over the skb context, as rlshape_xdp.c runs them over
 * XDP's. Loading it has the verifier accept them as a TC program; running it on hand-built
 * frames shows they read a segment's requests there as XDP reads them: the program returns
 * the requests that end in the segment, or -1 where the stream is broken.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "rlshape.h"
#include "request_stream_skb.skel.h"
#include "packets.h"

/*
 * The configuration the stream reads, as a load with no key or model header writes it: the
 * parser rules header lines out by their names' lengths (rls_config.name_lengths), so without
 * them it would read no content-length and no transfer-encoding.
 */
static int load_object(void **state)
{
	struct request_stream_skb_bpf *skel = request_stream_skb_bpf__open_and_load();
	struct rls_config cfg = {};
	__u32 generation = 0;

	if (!skel)
		return -1;
	cfg.name_lengths = rls_header_name_lengths(&cfg);
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.rls_active), &(__u32){ 0 }, &generation,
				BPF_ANY) ||
	    bpf_map_update_elem(bpf_map__fd(skel->maps.rls_config), &generation, &cfg, BPF_ANY)) {
		request_stream_skb_bpf__destroy(skel);
		return -1;
	}
	*state = skel;
	return 0;
}

static int destroy_object(void **state)
{
	request_stream_skb_bpf__destroy(*state);
	return 0;
}

/* The program's verdict on one segment from 198.18.0.1 to 198.18.0.2:8000 holding text. */
static int32_t requests_in(void **state, const char *text, int ipv6)
{
	struct request_stream_skb_bpf *skel = *state;
	struct tp_spec spec = {
		.ipv6 = ipv6, .saddr = ipv6 ? "2001:2::1" : "198.18.0.1",
		.daddr = ipv6 ? "2001:2::2" : "198.18.0.2", .sport = 40000, .dport = 8000,
		.seq = 1000, .ack = 1, .payload = text, .len = strlen(text),
	};
	uint8_t frame[TP_MAX_FRAME];
	size_t len = tp_build(&spec, frame, sizeof(frame));
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = (__u32)len,
		    .repeat = 1);
	int err;

	assert_true(len > 0);
	err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.request_stream_skb), &opts);
	if (err)
		fail_msg("bpf_prog_test_run_opts: %s", strerror(-err));
	return (int32_t)opts.retval;
}

static void test_pipelined_requests_each_found(void **state)
{
	const char *two = "POST /v1/chat/completions HTTP/1.1\r\nhost: a\r\ncontent-length: 15\r\n\r\n"
			  "{\"model\":\"m-1\"}"
			  "GET /v1/models HTTP/1.1\r\nhost: a\r\n\r\n";

	assert_int_equal(requests_in(state, two, 0), 2);
	assert_int_equal(requests_in(state, two, 1), 2);
}

static void test_chunked_request_ends_at_its_last_chunk(void **state)
{
	assert_int_equal(requests_in(state,
				     "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
				     "5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
				     0),
			 1);
}

static void test_request_cut_by_the_segment_not_ended(void **state)
{
	assert_int_equal(requests_in(state, "POST / HTTP/1.1\r\ncontent-length: 100\r\n\r\n{\"mo", 0),
			 0);
	assert_int_equal(requests_in(state, "GET / HTTP/1.1\r\nhost: a\r\n", 0), 0);
}

static void test_broken_stream_reported(void **state)
{
	assert_int_equal(requests_in(state, "GET / SPDY/3\r\n\r\n", 0), -1);
	/* Two content-lengths that disagree: a server refuses them, so does the stream. */
	assert_int_equal(requests_in(state,
				     "POST / HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}",
				     0),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined_requests_each_found),
		cmocka_unit_test(test_chunked_request_ends_at_its_last_chunk),
		cmocka_unit_test(test_request_cut_by_the_segment_not_ended),
		cmocka_unit_test(test_broken_stream_reported),
	};

	return cmocka_run_group_tests(tests, load_object, destroy_object);
}
