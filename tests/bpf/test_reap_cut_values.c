// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * What the daemon removes from rls_cut_values (user/flows.c, rls_reap_cut_values()), on real
 * maps made here as bpf/lib/maps.h makes them (bpf_map_create, no program): the header values
 * of connections that have no flow any more, and none of a connection that still has one.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <bpf/bpf.h>

#include "flows.h"

struct maps {
	int flows, cut;
};

static int make_maps(void **state)
{
	static struct maps m;
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);

	m.flows = bpf_map_create(BPF_MAP_TYPE_HASH, "test_flows", sizeof(struct rls_flow_key),
				 sizeof(struct rls_flow), 64, &opts);
	m.cut = bpf_map_create(BPF_MAP_TYPE_HASH, "test_cut", sizeof(struct rls_flow_key),
			       sizeof(struct rls_cut_value), 64, &opts);
	if (m.flows < 0 || m.cut < 0)
		return -1;
	*state = &m;
	return 0;
}

static int close_maps(void **state)
{
	struct maps *m = *state;

	close(m->flows);
	close(m->cut);
	return 0;
}

static struct rls_flow_key key_of(__u16 port)
{
	struct rls_flow_key k = { .client_port = port, .server_port = 8000 };

	k.client[15] = 1;
	return k;
}

static void test_values_of_gone_connections_go(void **state)
{
	struct maps *m = *state;
	struct rls_flow flow = { .stream.phase = RLS_PHASE_VALUE };
	struct rls_cut_value value = { .text = "Bearer sk-cut" }, got;
	struct rls_flow_key live = key_of(1), idle = key_of(2), gone = key_of(3);

	/* live: a flow with a value cut; idle: a flow with none; gone: a value with no flow. */
	assert_int_equal(bpf_map_update_elem(m->flows, &live, &flow, BPF_ANY), 0);
	assert_int_equal(bpf_map_update_elem(m->flows, &idle, &flow, BPF_ANY), 0);
	assert_int_equal(bpf_map_update_elem(m->cut, &live, &value, BPF_ANY), 0);
	assert_int_equal(bpf_map_update_elem(m->cut, &gone, &value, BPF_ANY), 0);

	assert_int_equal(rls_reap_cut_values(m->cut, m->flows), 1);
	assert_int_equal(bpf_map_lookup_elem(m->cut, &gone, &got), -ENOENT);
	assert_int_equal(bpf_map_lookup_elem(m->cut, &live, &got), 0);
	assert_memory_equal(got.text, value.text, sizeof(got.text));
	/* Again: nothing more goes. */
	assert_int_equal(rls_reap_cut_values(m->cut, m->flows), 0);

	/* The live connection ends: its value goes at the next pass. */
	assert_int_equal(bpf_map_delete_elem(m->flows, &live), 0);
	assert_int_equal(rls_reap_cut_values(m->cut, m->flows), 1);
	assert_int_equal(bpf_map_lookup_elem(m->cut, &live, &got), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values_of_gone_connections_go),
	};

	return cmocka_run_group_tests(tests, make_maps, close_maps);
}
