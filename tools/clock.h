/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The test tools' clock for deadlines and waits: monotonic, so a clock step cannot cut them. */
#ifndef RLS_TOOLS_CLOCK_H
#define RLS_TOOLS_CLOCK_H

#include <time.h>

static inline unsigned long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
}

#endif /* RLS_TOOLS_CLOCK_H */
