/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The test tools' clock for deadlines and waits: monotonic, so a clock step cannot cut them. */
#ifndef RLS_TOOLS_CLOCK_H
#define RLS_TOOLS_CLOCK_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <time.h>

static inline unsigned long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
}

/*
 * true when fd is ready for events before the deadline (mono_ms). stop_fd is -1, or a descriptor
 * whose becoming readable ends the wait with false at once (a server's shutdown pipe).
 */
static inline bool wait_fd_until(int fd, short events, unsigned long long deadline, int stop_fd)
{
	struct pollfd pfd[2] = {
		{ .fd = fd, .events = events },
		{ .fd = stop_fd, .events = POLLIN }, /* poll skips a negative fd */
	};
	unsigned long long now;
	int n;

	for (;;) {
		now = mono_ms();
		if (now >= deadline)
			return false;
		n = poll(pfd, 2, (int)(deadline - now));
		if (n > 0)
			return !pfd[1].revents;
		if (n < 0 && errno != EINTR)
			return false;
	}
}

#endif /* RLS_TOOLS_CLOCK_H */
