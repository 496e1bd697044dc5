/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The live generation's configuration, as every program of the data path reads it. */
#ifndef RLS_BPF_CONFIG_H
#define RLS_BPF_CONFIG_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rlshape.h"
#include "maps.h"

struct rls_live {
	const struct rls_config *cfg;
	__u32 generation;
};

static __always_inline bool rls_live_config(struct rls_live *live)
{
	__u32 zero = 0, *generation = bpf_map_lookup_elem(&rls_active, &zero);

	if (!generation)
		return false;
	live->generation = *generation & 1;
	live->cfg = bpf_map_lookup_elem(&rls_config, &live->generation);
	return live->cfg != NULL;
}

/* UTC, for calendar windows and slot epochs: the kernel's TAI less the offset load read. */
static __always_inline __u64 rls_now_utc_ns(const struct rls_config *cfg)
{
	return bpf_ktime_get_tai_ns() - cfg->tai_minus_utc_ns;
}

static __always_inline bool rls_port_watched(const struct rls_config *cfg, __be16 port)
{
	__u16 p = bpf_ntohs(port);
	__u32 i;

	for (i = 0; i < RLS_MAX_PORTS; i++) {
		if (!cfg->ports[i])
			break;
		if (cfg->ports[i] == p)
			return true;
	}
	return false;
}

#endif /* RLS_BPF_CONFIG_H */
