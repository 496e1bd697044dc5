// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * rlshape's one BPF object: every program of the data path and every map they share, in one
 * skeleton (build/rlshape.skel.h), as libbpf-bootstrap and the kernel's xdp_synproxy selftest
 * have it. Which programs attach, and which maps are pinned, is user space's choice
 * (user/cmd_load.c, user/maps.c); nothing here pins anything.
 *
 * The programs are kept in entry files of their own, one per hook, compiled here as one unit so
 * that they share one definition of each map:
 *   rlshape_xdp.c     XDP on the client-facing interface: admission, 429 replies
 *   rlshape_tc.c      TC egress on the same interface: follows responses, meters tokens
 *                     (and TC ingress on the upstream-facing side, for the same)
 *   rlshape_upstream.c TC egress on the upstream-facing side (`--side upstream`): admission,
 *                     429 replies to a local TLS-terminating proxy
 *   rlshape_settle.c  a syscall program the daemon runs to settle a counter's token budget
 */
#include "rlshape_xdp.c"
#include "rlshape_tc.c"
#include "rlshape_upstream.c"
#include "rlshape_settle.c"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
