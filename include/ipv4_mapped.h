/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv4 addresses are kept as IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) in every map key
 * (flows, CIDRs, anonymous counters). One test of that form for the programs, which count an
 * IPv4 client per address, and for the table parser, which writes IPv4 CIDRs.
 */
#ifndef RLS_IPV4_MAPPED_H
#define RLS_IPV4_MAPPED_H

#include "rlshape.h"

/* ::ffff:0:0/96 */
static inline __attribute__((always_inline)) int rls_is_ipv4_mapped(const __u8 addr[16])
{
	__u32 i;

	for (i = 0; i < 10; i++)
		if (addr[i])
			return 0;
	return addr[10] == 0xff && addr[11] == 0xff;
}

#endif /* RLS_IPV4_MAPPED_H */
