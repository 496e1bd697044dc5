/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A network namespace of the process's own, with loopback up. BPF_PROG_TEST_RUN runs the XDP
 * program in the caller's namespace, and the program looks each segment's 4-tuple up among
 * the local sockets (bpf/lib/connection.h): a listener of the machine's on a watched port would
 * change the path a hand-built frame takes. Here no socket exists but the ones the process
 * makes itself, so a frame with none is a routed connection, followed from its bytes alone.
 */
#ifndef RLS_TEST_OWN_NETNS_H
#define RLS_TEST_OWN_NETNS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Returns 0, or -1 with why (unshare needs CAP_SYS_ADMIN). */
static inline int own_netns(char *why, size_t why_len)
{
	struct ifreq ifr = { 0 };
	int fd, ret = 0;

	if (unshare(CLONE_NEWNET)) {
		snprintf(why, why_len, "unshare(CLONE_NEWNET): %s (needs root)", strerror(errno));
		return -1;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr))) {
		snprintf(why, why_len, "bringing lo up: %s", strerror(errno));
		ret = -1;
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

#endif /* RLS_TEST_OWN_NETNS_H */
