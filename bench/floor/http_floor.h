/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What the bench's HTTP floor program (http_floor.bpf.c) shares with the bench that runs it. */
#ifndef RLS_HTTP_FLOOR_H
#define RLS_HTTP_FLOOR_H

#ifndef __BPF__ /* vmlinux.h defines the __uN types */
#include <linux/types.h>
#endif

#define FLOOR_WINDOW   1024 /* payload bytes looked at: a power of two */
#define FLOOR_ACCOUNTS 1024

struct floor_key {
	__u8 hash[16]; /* SipHash-1-3-128 of the key under floor_secret */
};

struct floor_gcra {
	__u64 tat_ns;       /* theoretical arrival time (CLOCK_MONOTONIC) */
	__u64 interval_ns;  /* emission interval: 1 s / rate */
	__u64 tolerance_ns; /* burst tolerance */
};

enum floor_count {
	FLOOR_ADMITTED,
	FLOOR_REJECTED,
	FLOOR_UNKNOWN, /* a key no account has */
	FLOOR_NO_KEY,  /* no Authorization: Bearer line */
	FLOOR_NR_COUNTS,
};

#endif /* RLS_HTTP_FLOOR_H */
