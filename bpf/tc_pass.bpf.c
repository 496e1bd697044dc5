// SPDX-License-Identifier: GPL-2.0
/* TC_ACT_OK and nothing else: the floor bench/egress_cost.c measures the upstream side's TC
 * program against, a run of a TC program itself. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tc")
int tc_pass(struct __sk_buff *skb)
{
	return 0; /* TC_ACT_OK */
}

char LICENSE[] SEC("license") = "GPL";
