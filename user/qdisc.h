/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The fq qdisc that shaping needs at the root of the upstream-facing interface (README,
 * "Shaping"). The TC egress program gives a delayed request's segments a departure time
 * (skb->tstamp, EDT); only fq holds a packet to it: other qdiscs send it at once.
 *
 * `rlshape load` puts fq there when the table shapes and the interface has the kernel's default
 * qdisc (handle 0: noqueue, pfifo_fast, fq_codel, mq), with a handle of its own,
 * RLS_FQ_HANDLE, by which `rlshape unload` knows it is rlshape's to take away (the kernel then
 * attaches the default again). Any other root qdisc was set up by someone: an fq is checked,
 * anything else is left alone and the load refused with the command that would do.
 *
 * rtnetlink through libmnl (Debian's libmnl0, what iproute2's own tools link against): one
 * request and its answer each, no shelling out to tc, whose text output is not an interface.
 */
#ifndef RLS_USER_QDISC_H
#define RLS_USER_QDISC_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#define RLS_FQ_HANDLE 0x52530000u /* "RS": 5253: in tc's notation */

struct rls_root_qdisc {
	char kind[32];   /* "" where the interface has none (cannot be: the kernel attaches one) */
	__u32 handle;    /* 0: the kernel's default */
	__u32 horizon_us; /* fq: its horizon; 0 where the dump does not say */
	bool horizon_drop; /* fq: a packet past the horizon is dropped, not sent sooner */
};

/* The interface's root qdisc. Returns 0, or -1 with a message in err. */
int rls_root_qdisc(int ifindex, struct rls_root_qdisc *out, char *err, size_t err_len);

/*
 * Make sure fq holds packets up to max_delay_ns at the root of dev: returns 1 when it put its
 * own there, 0 when a suitable fq was there already, -1 with a message in err (naming dev and
 * what to run) when the root is not fq, or an fq whose horizon is too short.
 */
int rls_fq_ensure(const char *dev, int ifindex, __u64 max_delay_ns, char *err, size_t err_len);

/* Take rlshape's fq away (1), or leave a root that is not rlshape's fq alone (0); -1 on error. */
int rls_fq_remove_ours(int ifindex, char *err, size_t err_len);

#endif /* RLS_USER_QDISC_H */
