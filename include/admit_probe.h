/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The argument of bpf/admit_probe.bpf.c, a test program: one request decided by the policy
 * (bpf/lib/policy.h rls_admit()) on a counter, under given limits and at a given time, as the
 * data path decides it. tests/bpf/test_shape.c runs it with BPF_PROG_TEST_RUN.
 */
#ifndef RLS_ADMIT_PROBE_H
#define RLS_ADMIT_PROBE_H

#include "rlshape.h"

struct rls_admit_probe_args {
	struct rls_counter_key counter; /* in rls_counters; made on first use */
	struct rls_limits limits;
	__u64 now_ns;    /* UTC: the request's decision time */
	__u32 may_shape; /* the hook can delay (TC egress), as struct rls_admission has it */
	__u32 reason;    /* out: enum rls_reason, RLS_REASON_NONE when admitted */
	__u64 delay_ns;  /* out: how long shaping holds the admitted request */
	__u32 reset_ms;  /* out: a rejection's retry-after */
	__s32 result;    /* out: 0, or -1 no counter could be made */
};

#endif /* RLS_ADMIT_PROBE_H */
