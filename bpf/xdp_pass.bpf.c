// SPDX-License-Identifier: GPL-2.0
/* XDP_PASS on the client end of the test bed's veth pair: a veth drops what
 * its peer sends with XDP_TX unless the receiving end has an XDP program. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
