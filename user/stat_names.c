// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "stat_names.h"

const char *const rls_reason_names[RLS_NR_REASONS] = {
	[RLS_REASON_RPS] = "rps",       [RLS_REASON_RPM] = "rpm",
	[RLS_REASON_RPH] = "rph",       [RLS_REASON_RPD] = "rpd",
	[RLS_REASON_BURST] = "burst",   [RLS_REASON_TOKENS] = "tokens",
	[RLS_REASON_CONCURRENCY] = "concurrency",
};

const char *const rls_packet_event_names[RLS_NR_PACKET_EVENTS] = {
	[RLS_PKT_SEEN] = "seen",
	[RLS_PKT_REQUEST] = "requests",
	[RLS_PKT_NOT_HTTP] = "not_request_start",
	[RLS_PKT_UNPARSED] = "unparsed_passed",
	[RLS_PKT_RETRANSMIT] = "retransmits",
	[RLS_PKT_REPLY_SENT] = "replies_429",
	[RLS_PKT_RESET_UPSTREAM] = "upstream_resets",
	[RLS_PKT_DROPPED] = "dropped_after_429",
	[RLS_PKT_MODEL_HIDDEN] = "model_hidden",
	[RLS_PKT_RESPONSES] = "responses_metered",
	[RLS_PKT_RESPONSES_PENDING] = "responses_pending",
	[RLS_PKT_COUNTER_FULL] = "refused_counter_full",
	[RLS_PKT_NOT_CONNECTION] = "not_a_connection",
	[RLS_PKT_OUT_OF_ORDER] = "out_of_order_dropped",
	[RLS_PKT_STREAM_RESET] = "not_http_reset",
	[RLS_PKT_DESYNC] = "desync_reset",
	[RLS_PKT_HTTP2] = "http2_preface",
	[RLS_PKT_FLOWS_FULL] = "flows_full_reset",
	[RLS_PKT_PIPELINED_WAIT] = "pipelined_cut",
	[RLS_PKT_FRAGMENT_DROPPED] = "fragments_dropped",
	[RLS_PKT_URGENT_DROPPED] = "urgent_dropped",
	[RLS_PKT_DEEP_IPV6_DROPPED] = "deep_ipv6_dropped",
	[RLS_PKT_RESPONSES_PARKED] = "responses_parked",
	[RLS_PKT_KEY_SHA256] = "key_sha256_computed",
	[RLS_PKT_KEY_SHA256_CACHED] = "key_sha256_cached",
	[RLS_PKT_REPLY_KEPT_OPEN] = "reply_kept_open",
	[RLS_PKT_SEQ_TRANSLATED] = "seq_translated",
	[RLS_PKT_AHEAD_OF_429] = "ahead_of_429",
	[RLS_PKT_UPSTREAM_FIN_ACKED] = "upstream_fin_acked",
	[RLS_PKT_NOT_LOCAL] = "not_local",
	[RLS_PKT_PIPELINED_RESET] = "pipelined_reset",
	[RLS_PKT_CLIENT_ADDRESS_MISSING] = "client_address_missing",
	[RLS_PKT_CUT_VALUE_LOST] = "cut_value_lost_reset",
	[RLS_PKT_WEBSOCKET_TUNNEL] = "websocket_tunnels",
	[RLS_PKT_RESET_CLIENT] = "client_resets",
};

void rls_stats_add(struct rls_stats *sum, const struct rls_stats *one)
{
	int r;

	sum->admitted += one->admitted;
	for (r = 0; r < RLS_NR_REASONS; r++)
		sum->rejected[r] += one->rejected[r];
	sum->shaped += one->shaped;
	sum->shaped_delay_ns += one->shaped_delay_ns;
}
