/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Who sent a request and which model it names, remembered per connection (struct
 * rls_flow_memo): a keep-alive client's requests carry the same key and, most often, the same
 * model, so its next request takes them from the flow the packet already looked up instead of
 * three more map lookups (the key, the client's CIDR, the model's name).
 *
 * A request without a key is identified by its client's address, which on the upstream side
 * comes from the proxy's header and changes from request to request on one connection
 * (client_address.h): the address is kept and compared too.
 *
 * Only what the same load found holds (rls_config.load_seq): a reload may give a key another
 * account or a name another id, and writes the model names before it switches. The key's
 * whole 128-bit hash and the model's whole name are compared, never a digest of them: a
 * client must not be able to pass one request for another.
 */
#ifndef RLS_BPF_FLOW_MEMO_H
#define RLS_BPF_FLOW_MEMO_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rlshape.h"
#include "maps.h"
#include "scratch.h"
#include "api_key.h"
#include "http_request.h"
#include "policy.h"

static __always_inline bool rls_memo_holds(__u32 memo_load, const struct rls_config *cfg)
{
	return cfg->load_seq && memo_load == cfg->load_seq;
}

/* Two 16-byte values, a key hash or a client address, the same? */
static __always_inline bool rls_same_16(const __u8 *a, const __u8 *b)
{
	__u64 a0, a1, b0, b1;

	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	return !((a0 ^ b0) | (a1 ^ b1));
}

/*
 * The request's identity into m->identity: the last request's where it had the same key.
 * Returns 1 where it was looked up.
 */
static __always_inline int rls_memo_identity(struct rls_scratch *s, struct rls_flow_memo *m,
					     const struct rls_stream *st,
					     const struct rls_config *cfg, __u32 generation)
{
	__u32 has_key = !!(st->request_flags & RLS_REQ_HAS_KEY);

	if (rls_memo_holds(m->identity_load, cfg) && m->has_key == has_key &&
	    (!has_key || rls_same_16(m->key_siphash, st->key_siphash)) &&
	    rls_same_16(m->client, s->who.client))
		return 0;
	__builtin_memset(&m->identity, 0, sizeof(m->identity));
	rls_identify(cfg, generation, &s->who, rls_api_key_principal(s, st, generation),
		     &m->identity);
	m->identity_load = cfg->load_seq;
	m->has_key = has_key;
	__builtin_memcpy(m->key_siphash, st->key_siphash, RLS_SIPHASH_LEN);
	__builtin_memcpy(m->client, s->who.client, sizeof(m->client));
	return 1;
}

/* The model's id: a named model, RLS_MODEL_OTHER, or RLS_MODEL_HIDDEN. *looked: set where it
 * was looked up. */
static __always_inline __u32 rls_memo_model(struct rls_scratch *s, struct rls_flow_memo *m,
					    const struct rls_stream *st,
					    const struct rls_config *cfg, int *looked)
{
	__u32 *id, k;

	if (!rls_stream_model(s, st, &s->model_len))
		return RLS_MODEL_HIDDEN;
	if (s->model_len == 0)
		return RLS_MODEL_OTHER;
	if (rls_memo_holds(m->model_load, cfg) && m->model_len == s->model_len &&
	    rls_same_name(m->model_name, s->model.name, s->model_len))
		return m->model_id;
	id = bpf_map_lookup_elem(&rls_models, &s->model);
	*looked = 1;
	m->model_load = cfg->load_seq;
	m->model_id = id ? *id : RLS_MODEL_OTHER;
	m->model_len = s->model_len;
	/* The name as s->model holds it: zero past its end. */
	for (k = 0; k < RLS_MODEL_NAME_MAX / 8; k++)
		((__u64 *)(void *)m->model_name)[k] = ((const __u64 *)(const void *)s->model.name)[k];
	return m->model_id;
}

/*
 * The limits of (tier, model) into m->limits; m->limits_found is 0 where there are none.
 * Returns 1 where they were looked up.
 */
static __always_inline int rls_memo_limits(struct rls_flow_memo *m, const struct rls_config *cfg,
					   __u32 generation, __u32 tier, __u32 model)
{
	const struct rls_limits *limits;

	if (rls_memo_holds(m->limits_load, cfg) && m->limits_tier == tier &&
	    m->limits_model == model)
		return 0;
	limits = rls_lookup_limits(generation, tier, model);
	m->limits_load = cfg->load_seq;
	m->limits_tier = tier;
	m->limits_model = model;
	m->limits_found = limits != NULL;
	if (limits)
		m->limits = *limits;
	return 1;
}

/*
 * Who sent the request that just ended (flow->memo.identity), the id of the model it names
 * (returned), and the limits that apply (flow->memo.limits, where limits_found; not looked up
 * for an unlimited client).
 *
 * A connection's first request (or its first since a reload) starts from this CPU's last
 * memo (s->cpu_memo), which holds under the same rules: a client that opens connection after
 * connection, each refused with a 429 that closes it, is looked up once, not on every
 * connection. *looked_up: set where anything was looked up, for the caller to put the memo
 * back there (rls_judge_request(), once the outcome's row is in it too).
 *
 * Inline in the caller's global function: a call and its return cost up to 10 ns; what
 * the decision keeps is in scratch memory (s->admission), so the frames still fit the
 * verifier's 512 bytes.
 */
static __always_inline int rls_request_who(struct rls_scratch *s, struct rls_flow *flow,
					   const struct rls_config *cfg, __u32 generation,
					   int *looked_up)
{
	struct rls_flow_memo *m;
	int looked;
	__u32 model;

	if (!s || !flow || !cfg)
		return (int)RLS_MODEL_HIDDEN;
	m = &flow->memo;
	if (!rls_memo_holds(m->identity_load, cfg) && rls_memo_holds(s->cpu_memo.identity_load, cfg))
		*m = s->cpu_memo;
	looked = rls_memo_identity(s, m, &flow->stream, cfg, generation);
	model = rls_memo_model(s, m, &flow->stream, cfg, &looked);
	if (!m->identity.unlimited)
		looked |= rls_memo_limits(m, cfg, generation, m->identity.principal.tier, model);
	*looked_up = looked;
	return (int)model;
}

#endif /* RLS_BPF_FLOW_MEMO_H */
