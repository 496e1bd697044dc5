/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The packets a TC program sends with bpf_clone_redirect() under BPF_PROG_TEST_RUN, read back. */
#ifndef RLS_TEST_LOOPBACK_TAP_H
#define RLS_TEST_LOOPBACK_TAP_H

#include <poll.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>

#include "harness.h"

/*
 * What TC sends through the interface (bpf_clone_redirect() to its ingress or its egress):
 * under BPF_PROG_TEST_RUN the interface is this namespace's loopback, where a packet socket
 * sees it.
 */
static inline int tap_loopback(void)
{
	struct sockaddr_ll at = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				  .sll_ifindex = (int)if_nametoindex("lo") };
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));

	CHECK(fd >= 0, "packet socket: %s", strerror(errno));
	CHECK(bind(fd, (struct sockaddr *)&at, sizeof(at)) == 0, "binding it to lo: %s",
	      strerror(errno));
	return fd;
}

/* The next packet entering lo with TCP flags flags, within a second; its length in buf. */
static inline size_t tapped(int fd, uint8_t flags, uint8_t *buf, size_t cap, struct tp_parsed *p)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct sockaddr_ll from;
	socklen_t from_len;
	char why[256];
	ssize_t n;

	for (;;) {
		CHECK(poll(&pfd, 1, 1000) == 1, "no packet sent in through lo within a second");
		from_len = sizeof(from);
		n = recvfrom(fd, buf, cap, 0, (struct sockaddr *)&from, &from_len);
		CHECK(n > 0, "reading the tap: %s", strerror(errno));
		if (from.sll_pkttype == PACKET_OUTGOING ||
		    tp_parse(buf, (size_t)n, p, why, sizeof(why)) || p->flags != flags)
			continue;
		return (size_t)n;
	}
}

#endif /* RLS_TEST_LOOPBACK_TAP_H */
