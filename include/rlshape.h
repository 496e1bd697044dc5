/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types and constants shared by the BPF programs (bpf/) and the rlshape command (user/).
 *
 * Every map value and key below is what `bpftool map dump pinned ...` prints, so field names
 * are part of the user interface. Layouts only ever grow at the end: a reload reuses the
 * pinned maps of the previous load, and libbpf refuses to reuse a map whose sizes changed.
 */
#ifndef RLSHAPE_H
#define RLSHAPE_H

#ifdef __BPF__
/* vmlinux.h already defines the __uN types. */
#else
#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */
#endif

#define RLS_PIN_ROOT "/sys/fs/bpf/rlshape"

#define RLS_MAX_PORTS        8
#define RLS_MAX_KEY_HEADERS  4
#define RLS_HEADER_NAME_MAX  32  /* lower-case, not NUL-terminated when full */
#define RLS_MODEL_NAME_MAX   64  /* bytes incl. NUL: model names are at most 63 bytes */
#define RLS_ACCOUNT_NAME_MAX 64
#define RLS_API_KEY_MAX      247 /* longest key the kernel hashes: 4 SHA-256 blocks */
#define RLS_SHA256_LEN       32
#define RLS_SIPHASH_LEN      16  /* the key hash: SipHash-2-4-128 (include/siphash.h) */
#define RLS_KEY_SECRET_LEN   16  /* its secret */
#define RLS_MAX_DIGEST_CACHE (1u << 16) /* keys whose SHA-256 XDP remembers */

/*
 * What one tier table may hold. The maps keyed by generation hold two tables (the live one and
 * the one before or after it), and so do the name maps while a reload adds names before it
 * removes the old ones: their maps are twice these sizes.
 */
#define RLS_MAX_API_KEYS      (1u << 20)
#define RLS_MAX_CIDRS         (1u << 16)
#define RLS_MAX_ACCOUNTS      (1u << 20)
#define RLS_MAX_MODELS        4096
#define RLS_MAX_TIERS         1024
#define RLS_MAX_LIMITS        65536 /* (tier, model) entries, each tier's strictest included */
#define RLS_MAX_COUNTERS      (1u << 22)
#define RLS_MAX_ANON_COUNTERS (1u << 18)
#define RLS_MAX_FLOWS         (1u << 18)
#define RLS_MAX_STATS         (1u << 16)
#define RLS_MAX_TAILS         4096       /* responses being metered at once (4 KiB each) */
#define RLS_EVENTS_BYTES      (16u << 20) /* ring buffer of response events: 3,949 of them */
#define RLS_MAX_PARKED        4096       /* response events the full ring parks in rls_parked */

/* Ids with a fixed meaning. Named accounts and models are numbered from 1. */
#define RLS_ACCOUNT_ANONYMOUS 0u          /* default tier, counted per client address */
#define RLS_MODEL_OTHER       0u          /* a model no tier names: the "*" entry */
#define RLS_MODEL_HIDDEN      0xffffffffu /* model not visible in the first segment */
#define RLS_TIER_NONE         0xffffffffu /* no default tier: unknown clients pass */
#define RLS_UNLIMITED         0xffffffffu /* request and concurrency limits */
#define RLS_TOKENS_UNLIMITED  0xffffffffffffffffull

#define RLS_NS_PER_SEC 1000000000ull

#define RLS_FLEET_HOST_MAX 64 /* bytes of the Redis host name, NUL included */

/*
 * What one response may be charged at most (a tier entry's max_response_tokens): by default
 * more than any model's context holds, and the table may not go past 2^40, so that no sum of
 * settlements nears the 64 bits the budgets are kept in.
 */
#define RLS_DEFAULT_MAX_RESPONSE_TOKENS 2000000ull
#define RLS_MAX_RESPONSE_TOKENS         (1ull << 40)

/* Bytes a frame can grow by at its tail on veth and generic XDP: the 429 leaves its optional
 * -day headers out past this. It can also grow into the XDP_PACKET_HEADROOM before it. */
#define RLS_SAFE_GROWTH 192

#define RLS_SLOT_EPOCHS 8 /* a concurrency slot expires 7 to 8 epochs after it was taken */

enum rls_window {
	RLS_WINDOW_SECOND,
	RLS_WINDOW_MINUTE,
	RLS_WINDOW_HOUR,
	RLS_WINDOW_DAY,
	RLS_NR_WINDOWS,
};

/* A switch, not a table: clang 14's BTF for constant arrays in BPF .rodata is unusable. */
static inline __attribute__((always_inline)) __u32 rls_window_seconds(__u32 window)
{
	switch (window) {
	case RLS_WINDOW_SECOND:
		return 1;
	case RLS_WINDOW_MINUTE:
		return 60;
	case RLS_WINDOW_HOUR:
		return 3600;
	default:
		return 86400;
	}
}

/* Why a request was rejected; RLS_REASON_NONE means admitted. */
enum rls_reason {
	RLS_REASON_NONE,
	RLS_REASON_RPS,
	RLS_REASON_RPM,
	RLS_REASON_RPH,
	RLS_REASON_RPD,
	RLS_REASON_BURST,       /* the per-second smoothing of rpm */
	RLS_REASON_TOKENS,      /* a tpm or tpd budget is spent */
	RLS_REASON_CONCURRENCY, /* every concurrency slot is held */
	RLS_NR_REASONS,
};

/* ---- configuration: rls_active selects which generation of everything below is live ---- */

struct rls_header_name {
	__u8 len;
	__u8 bearer; /* value is "Bearer <key>" (authorization) */
	char name[RLS_HEADER_NAME_MAX];
};

/* rls_config[generation]: what the data path needs besides the tables. */
struct rls_config {
	__u16 ports[RLS_MAX_PORTS]; /* host byte order; 0 ends the list */
	__u32 default_tier;         /* RLS_TIER_NONE: pass unknown clients unlimited */
	__u32 nr_key_headers;
	struct rls_header_name key_headers[RLS_MAX_KEY_HEADERS];
	struct rls_header_name model_header; /* len 0: model only from the JSON body */
	/*
	 * The upstream side: the header a local proxy writes its client's address in (the last
	 * address of its last line), which identifies an unknown client in place of the proxy's
	 * own address. len 0: none, the segment's source address identifies.
	 */
	struct rls_header_name client_address_header;
	__u64 name_lengths;     /* rls_header_name_lengths(), written by every load */
	__s64 tai_minus_utc_ns; /* bpf_ktime_get_tai_ns() - this = UTC, for calendar windows */
	__u64 loaded_at;        /* UTC seconds */
	__u8 table_sha256[RLS_SHA256_LEN];
	char table_path[192];
	__u32 http2_pass;            /* listen.http2 "pass": HTTP/2 prior knowledge passes, else reset */
	/* listen.websocket "tunnel": a connection whose upstream answers a WebSocket upgrade with
	 * 101 is passed unread from there (rls_flow.upgrade); else its frames reset it. */
	__u32 websocket_tunnel;
	__u32 anonymous_ipv6_prefix; /* bits of an IPv6 client's address its anonymous counter keys on */
	/*
	 * The key hash's secret: made with getrandom() by the first load on a device, copied to
	 * each new generation by a reload, gone with the maps at unload. Only root can read it:
	 * the pins are root's alone (mode 0600 in a 0700 directory).
	 */
	__u8 key_secret[RLS_KEY_SECRET_LEN];
	__u32 key_digests; /* "sha256:" keys in the table; 0: the data path never runs SHA-256 */
	/*
	 * Which load wrote this configuration: one more than the one before, never 0. What a
	 * connection remembers of its last request (struct rls_flow_memo) holds only while it
	 * is the same; generations alternate, so a generation number could come back.
	 */
	__u32 load_seq;
	/* The table's "fleet" (README, "A fleet of gateways"): only the daemon reads these. */
	__u32 fleet_hosts;      /* expected gateways sharing the limits; 0: this host counts alone */
	__u32 fleet_redis_port;
	char fleet_redis_host[RLS_FLEET_HOST_MAX];
};

/*
 * rls_api_keys: an API key's SipHash-2-4-128 under the device's secret -> its account. The
 * plain key is never stored, and without the secret the hash cannot be tried against guesses.
 */
struct rls_api_key {
	__u32 generation;
	__u8 siphash[RLS_SIPHASH_LEN];
};

/* rls_api_key_digests: the keys a table gives as "sha256:" digests -> their accounts. */
struct rls_api_key_digest {
	__u32 generation;
	__u8 sha256[RLS_SHA256_LEN];
};

/* rls_key_digest_cache (LRU): a key's SipHash -> its SHA-256, computed once per cache life. */
struct rls_key_siphash {
	__u8 siphash[RLS_SIPHASH_LEN];
};

struct rls_key_sha256 {
	__u8 sha256[RLS_SHA256_LEN];
};

struct rls_principal {
	__u32 account; /* account id */
	__u32 tier;    /* tier id */
};

/*
 * rls_cidrs (LPM trie): a client address -> its account. IPv4 is stored IPv4-mapped
 * (::ffff:a.b.c.d) so one trie serves both families; the generation leads the key so that
 * both generations live side by side (prefixlen counts its 32 bits).
 */
struct rls_cidr_key {
	__u32 prefixlen;
	__u32 generation; /* network byte order: part of the matched prefix */
	__u8 addr[16];
};

/* rls_models: model name (zero padded) -> model id. Ids are stable across reloads. */
struct rls_model_name {
	char name[RLS_MODEL_NAME_MAX];
};

/* rls_accounts: account id -> name, kept across reloads so ids (and counters) stay put. */
struct rls_account_name {
	char name[RLS_ACCOUNT_NAME_MAX];
};

/* rls_limits: (generation, tier, model) -> limits. model RLS_MODEL_OTHER is "*". */
struct rls_limit_key {
	__u32 generation;
	__u32 tier;
	__u32 model;
};

/*
 * Bytes a token where limits leave bytes_per_token at 0 and where a table does not set it:
 * about 4 bytes of English text a token (OpenAI's rule of thumb). Both sides estimate with it.
 */
#define RLS_DEFAULT_BYTES_PER_TOKEN 4

struct rls_limits {
	__u32 rps, rpm, rph, rpd; /* RLS_UNLIMITED: no limit; 0 admits nothing */
	__u32 burst;              /* requests back to back under the rpm smoothing */
	__u32 concurrency;        /* requests in flight at once (include/slot_ring.h) */
	__u64 tpm, tpd;           /* tokens per minute and per UTC day */
	__u64 smooth_interval_ns; /* GCRA emission interval 60 s / rpm; 0: no smoothing */
	__u32 charge_model;       /* RLS_MODEL_HIDDEN's entry: the model whose counter it uses */
	__u32 bytes_per_token;    /* estimating tokens from bytes where usage is not known */
	__u64 token_burst;        /* most tokens the tpm budget holds (default tpm/60) */
	__u32 reserve_tokens;     /* reserved for the answer at admission when max_tokens is absent */
	__u32 reserve_max;        /* at most this much of a visible max_tokens is reserved */
	__u64 max_hold_ns;        /* concurrency: a slot not given back by then is expired */
	__u64 max_response_tokens;/* what one response may be charged at most, whatever its usage */
	/*
	 * The table's fleet, copied into every entry so that admission finds it next to the limits
	 * (include/fleet_lease.h): 0 hosts, this host counts alone.
	 */
	__u32 fleet_hosts;
	__u32 fleet_unleased; /* requests a window admits here before the daemon's first lease */
	/*
	 * The entry's "shape": a request too fast for the rpm smoothing, that fits every window,
	 * is delayed on egress (EDT) instead of refused, if it can leave within this long.
	 * 0: no shaping, the 429 as before.
	 */
	__u64 shape_max_delay_ns;
};

/* ---- state: kept across reloads ---- */

/*
 * rls_counters / rls_anon_counters: (account, model[, client address]) -> request state.
 * One spin lock guards all windows so that a request is charged to every window or none.
 */
struct rls_counter_key {
	__u32 account;
	__u32 model;
	__u8 client[16]; /* anonymous accounts only; zero for named accounts */
};

struct rls_counter {
	struct bpf_spin_lock lock;
	__u32 token_ready;                   /* token_budget has been filled once */
	__u64 smooth_tat_ns;                 /* GCRA theoretical arrival time (UTC ns) */
	__u32 window_start[RLS_NR_WINDOWS];  /* window index: UTC seconds / window length */
	__u32 window_count[RLS_NR_WINDOWS];
	/* tpm: a budget refilled continuously at tpm/60 tokens a second, up to token_burst. It
	 * may go below zero when responses cost more than was reserved. */
	__s64 token_budget;
	__u64 token_refill_ns;
	/* tpd: tokens charged in the UTC day token_day (reservations and settlements). */
	__s64 token_day_used;
	__u32 token_day;
	__u32 pad;
	/* The tpm budget's ceiling under the limits of the latest admission: a refund never passes
	 * it, and settlement needs no copy of the table to know it. */
	__u64 token_burst;
	/*
	 * Concurrency: slots held by requests in flight, counted by the epoch they were taken in,
	 * so that slots nobody gives back expire a whole epoch at a time (include/slot_ring.h).
	 */
	__u32 slots_held;
	__u32 slots_peak;       /* the most ever held at once */
	__u64 slots_expired;    /* freed by max_hold_seconds, not by their response's end */
	__u64 slot_epoch;       /* the newest epoch the ring accounts for */
	__u64 slot_epoch_ns;    /* the length of an epoch: max_hold / (RLS_SLOT_EPOCHS - 1) */
	__u32 slot_count[RLS_SLOT_EPOCHS]; /* slots held, by epoch taken (modulo the ring) */
	/*
	 * A fleet's leases (include/fleet_lease.h), per window; the second's is never leased.
	 * fleet_lease[w] holds while fleet_window[w] is the current window; fleet_spent[w] is the
	 * window in which Redis said the fleet's budget was gone. fleet_asked[w] and
	 * fleet_limit[w] are written by every request, for the daemon: the window it came in and
	 * the limit it was decided under (RLS_UNLIMITED: not shared).
	 */
	__u32 fleet_window[RLS_NR_WINDOWS];
	__u32 fleet_lease[RLS_NR_WINDOWS];
	__u32 fleet_spent[RLS_NR_WINDOWS];
	__u32 fleet_asked[RLS_NR_WINDOWS];
	__u32 fleet_limit[RLS_NR_WINDOWS];
};

/*
 * Outcome counts per (account, model); anonymous clients share account 0. rls_stats: (account,
 * model) -> the row (a __u32) of rls_stats_rows (per CPU array) that holds them, so that a
 * connection's memo keeps the row and a request counts with no hash lookup. Rows are handed
 * out by the data path (rls_stats_free first, then rls_stats_next) and given back by `rlshape
 * load` for names it removes (user/stats_rows.c).
 */
struct rls_stats_key {
	__u32 account;
	__u32 model;
};

struct rls_stats {
	__u64 admitted;
	__u64 rejected[RLS_NR_REASONS]; /* indexed by enum rls_reason */
	__u64 shaped;          /* of the admitted, those shaping delayed (upstream side only) */
	__u64 shaped_delay_ns; /* their delays, summed */
};

/* rls_packets (per CPU array): what the data path did with packets, by enum rls_packet_event. */
enum rls_packet_event {
	RLS_PKT_SEEN,          /* TCP to a watched port */
	RLS_PKT_REQUEST,       /* an HTTP request read to its last byte and decided */
	RLS_PKT_NOT_HTTP,      /* retired (segments are no longer judged alone); keeps the numbering */
	RLS_PKT_UNPARSED,      /* could not be parsed: passed */
	RLS_PKT_RETRANSMIT,    /* a request start seen before: not charged again */
	RLS_PKT_REPLY_SENT,    /* a 429 transmitted */
	RLS_PKT_RESET_UPSTREAM,/* a client packet turned into a reset toward the upstream */
	RLS_PKT_DROPPED,       /* client data after a 429, kept from the upstream */
	RLS_PKT_MODEL_HIDDEN,  /* request charged with the tier's strictest limits */
	RLS_PKT_RESPONSES,     /* responses metered and reported to the daemon */
	RLS_PKT_RESPONSES_PENDING, /* reported through rls_pending: ring and rls_parked were full */
	RLS_PKT_COUNTER_FULL,  /* no counter could be found or made (map full): refused, not passed */
	RLS_PKT_NOT_CONNECTION,  /* data for no established local connection: forged, never charged */
	RLS_PKT_OUT_OF_ORDER,    /* a segment past a gap in the client's stream: dropped, resent */
	RLS_PKT_STREAM_RESET,    /* a connection reset: bytes no HTTP/1.1 server reads alike */
	RLS_PKT_DESYNC,          /* the kernel lacks bytes the parser read: connection reset */
	RLS_PKT_HTTP2,           /* an HTTP/2 prior-knowledge preface on a watched port */
	RLS_PKT_FLOWS_FULL,      /* a new connection the flows map could not hold: reset */
	RLS_PKT_PIPELINED_WAIT,  /* a refused request cut off its segment, answered when resent */
	RLS_PKT_FRAGMENT_DROPPED,  /* a first IP fragment to a watched port: never reassembled */
	RLS_PKT_URGENT_DROPPED,    /* TCP urgent data to a watched port: the server skips a byte */
	RLS_PKT_DEEP_IPV6_DROPPED, /* an IPv6 extension chain past RLS_IPV6_EXT_MAX, any port */
	RLS_PKT_RESPONSES_PARKED,  /* reported through rls_parked: the ring was full */
	RLS_PKT_KEY_SHA256,        /* a key's SHA-256 computed: not a plain key, not in the cache */
	RLS_PKT_KEY_SHA256_CACHED, /* a key's SHA-256 found in rls_key_digest_cache */
	RLS_PKT_REPLY_KEPT_OPEN,   /* of the 429s sent, those that kept the connection (seqadj.h) */
	RLS_PKT_SEQ_TRANSLATED,    /* a segment renumbered after a 429 that kept the connection */
	RLS_PKT_AHEAD_OF_429,      /* client data sent before the 429 arrived: dropped, resent */
	RLS_PKT_UPSTREAM_FIN_ACKED, /* the upstream's FIN acknowledged for a client that closed */
	RLS_PKT_NOT_LOCAL,         /* upstream side: data from no local socket (forwarded): passed */
	RLS_PKT_PIPELINED_RESET,   /* upstream side: a refused request no 429 could answer in
				    * order (the proxy pipelined): both ends reset */
	RLS_PKT_CLIENT_ADDRESS_MISSING, /* upstream side: a request without a readable
					 * client_address_header: identified by the proxy's address */
	RLS_PKT_CUT_VALUE_LOST,    /* a header value cut by a segment's end could not be kept
				    * in rls_cut_values, or was gone from it: the connection reset */
	RLS_PKT_WEBSOCKET_TUNNEL,  /* a 101 to a WebSocket upgrade (listen.websocket "tunnel"):
				    * the connection passed unread from there */
	RLS_PKT_RESET_CLIENT,      /* a client's resend of a segment XDP made a reset: answered
				    * with a reset to the client (rlshape_xdp.c) */
	RLS_NR_PACKET_EVENTS,
};

/* ---- per-connection state ---- */

/*
 * A WebSocket on the connection (listen.websocket "tunnel"), rls_flow.upgrade. The upstream's
 * 101 with "Upgrade: websocket" is the word that opens the tunnel, never the client's request
 * alone: a client waits for it before its first frame (RFC 6455, 4.1).
 */
enum rls_upgrade {
	RLS_UPGRADE_NONE,
	RLS_UPGRADE_ASKED,  /* the last admitted request was a GET without a body: TC reads the
			     * head of its answer, whatever the limits */
	RLS_UPGRADE_TUNNEL, /* its answer was 101 to a WebSocket: the rest is not HTTP */
};

/*
 * rls_handshakes (LRU): what TC saw of an upstream's SYN-ACK on a watched port, for a 429 to the
 * first request of a routed connection, where the upstream has sent nothing since
 * (rlshape_xdp.c): where its bytes start and the window it advertises.
 */
struct rls_handshake {
	__u32 server_next; /* the upstream's ISN + 1 */
	__u16 window;      /* the SYN-ACK's window field (never scaled) */
	__u8 wscale;       /* its window scale option; 0 without one */
	__u8 pad;
};
#define RLS_MAX_HANDSHAKES (1u << 16) /* recent ones: a first request follows its handshake */

/*
 * A connection XDP reset: the client segment that became the reset, as the client numbered it,
 * so that its resend is answered with a reset to the client (rlshape_xdp.c). In its flow
 * (rls_flow.reset), or, for a new connection reset because rls_flows was full, in
 * rls_reset_notes (LRU; best effort: a note pushed out leaves its client untold).
 */
struct rls_reset_note {
	__u32 wire_seq;
	__u32 wire_ack;
	__u32 upstream_reset; /* routed: a resend was the upstream's reset; the next is answered */
};
#define RLS_MAX_RESET_NOTES (1u << 14)

/*
 * A 429 that kept the connection open (bpf/lib/seqadj.h): the refused request never reached
 * the upstream and the 429 never came from it, so from there on the client and the upstream
 * number their bytes differently, and every segment between them is renumbered on its way,
 * as netfilter's nf_ct_seqadj does. Offsets add up over every such 429 on the connection; a
 * number from before the last one's place takes the offset from before it.
 */
struct rls_seqadj {
	__u32 active;        /* a 429 kept this connection: segments are renumbered */
	__u32 client_pos;    /* client numbering: the end of the last refused request */
	__u32 swallowed;     /* that request's bytes, which the upstream never gets */
	__u32 client_before; /* subtracted from client numbers before client_pos */
	__u32 client_after;  /* ... and from those at or after it */
	__u32 server_pos;    /* upstream numbering: where the last 429 went in */
	__u32 server_before; /* added to upstream numbers before server_pos */
	__u32 server_after;  /* ... and to those at or after it: server_before + the 429's length */
	__u32 reply_seq;     /* that 429's first byte, in the client's numbering */
	__u32 reply_detail;  /* enum rls_429_detail of that 429: a resend gets the same bytes */
	__u16 reply_window;  /* the window field it carried */
	__u16 server_window; /* the upstream's last window field, as it sent it (TC) */
	__u32 window_seen;   /* server_window is known */
	__u32 reply_fin;     /* that 429 carried our FIN: the client asked to close */
};

struct rls_flow_key {
	__u8 client[16]; /* IPv4-mapped for IPv4 */
	__u8 server[16];
	__u16 client_port; /* network byte order */
	__u16 server_port;
	__u32 pad;
};

/*
 * The request parser's place in a connection's byte stream (bpf/lib/http_request.h). The client's
 * bytes are parsed once, in order, whatever their segments: every field below carries what a
 * request has shown so far from one segment to the next.
 */
enum rls_stream_phase {
	RLS_PHASE_IDLE,        /* between requests: empty lines are skipped (RFC 9112, 2.2) */
	RLS_PHASE_METHOD,      /* the method token */
	RLS_PHASE_TARGET,      /* the request target and version, to the line's end */
	RLS_PHASE_LINE_START,  /* the first byte of a header line, or the head's empty line */
	RLS_PHASE_NAME,        /* a header name */
	RLS_PHASE_VALUE,       /* a header value */
	RLS_PHASE_BODY,        /* a content-length body */
	RLS_PHASE_CHUNK_SIZE,  /* a chunk's size in hex */
	RLS_PHASE_CHUNK_EXT,   /* a chunk extension: to the line's end, not body */
	RLS_PHASE_CHUNK_DATA,
	RLS_PHASE_CHUNK_END,   /* the line end after a chunk's data */
	RLS_PHASE_TRAILER,     /* a trailer line after the last chunk */
	RLS_PHASE_TRAILER_START,
	RLS_PHASE_TUNNEL,      /* not HTTP/1.1 any more (HTTP/2 passed by the table): not parsed */
	RLS_PHASE_BROKEN,      /* bytes no HTTP/1.1 server reads alike: the connection is reset */
};

/* What the current header line is, by its name. */
enum rls_header_kind {
	RLS_HDR_OTHER,
	RLS_HDR_KEY,            /* one of the table's key headers (key_rank says which) */
	RLS_HDR_MODEL,          /* the table's model header */
	RLS_HDR_CONTENT_LENGTH,
	RLS_HDR_TRANSFER_ENCODING,
	RLS_HDR_CONNECTION,
};

/* Candidate header names while a name is read: a bit each. */
#define RLS_NAME_KEY0              0x01 /* .. 0x08: key_headers[0..3] */
#define RLS_NAME_MODEL             0x10
#define RLS_NAME_CONTENT_LENGTH    0x20
#define RLS_NAME_TRANSFER_ENCODING 0x40
#define RLS_NAME_CONNECTION        0x80

/* The names the parser reads besides the table's, lower case. */
#define RLS_NAME_CONTENT_LENGTH_STR    "content-length"
#define RLS_NAME_TRANSFER_ENCODING_STR "transfer-encoding"
#define RLS_NAME_CONNECTION_STR        "connection"

/*
 * rls_config.name_lengths: bit n set where a name the parser reads (the table's key and model
 * headers, and the three above) is n bytes long, so that a header line is ruled out by the
 * length of its name in one test. Written by the load with the rest of the configuration.
 */
static inline __u64 rls_header_name_lengths(const struct rls_config *cfg)
{
	__u64 m = 1ull << (sizeof(RLS_NAME_CONTENT_LENGTH_STR) - 1) |
		  1ull << (sizeof(RLS_NAME_TRANSFER_ENCODING_STR) - 1) |
		  1ull << (sizeof(RLS_NAME_CONNECTION_STR) - 1);
	__u32 i;

	_Static_assert(RLS_HEADER_NAME_MAX < 64, "a name's length is a bit of a u64");
	for (i = 0; i < cfg->nr_key_headers && i < RLS_MAX_KEY_HEADERS; i++)
		m |= 1ull << cfg->key_headers[i].len;
	if (cfg->model_header.len)
		m |= 1ull << cfg->model_header.len;
	return m;
}

/* What a request has shown, bits of rls_stream.request_flags. */
enum rls_request_flag {
	RLS_REQ_HAS_KEY = 1,
	RLS_REQ_HAS_HEADER_MODEL = 2,
	RLS_REQ_HAS_BODY_MODEL = 4,
	RLS_REQ_MODEL_AMBIGUOUS = 8, /* read two ways, or not readable: the strictest model */
	RLS_REQ_CONTENT_LENGTH = 16,
	RLS_REQ_CHUNKED = 32,
	RLS_REQ_HAS_MAX_TOKENS = 64,
	RLS_REQ_BODY_UNSEEN = 128,   /* not JSON, or past the scanned size: the strictest model */
	RLS_REQ_SAYS_CLOSE = 256,    /* "Connection: close": the client closes after the answer */
	RLS_REQ_JSON_DONE = 512,     /* the body's top-level object has closed */
	RLS_REQ_PRI = 1024,          /* the method is PRI: an HTTP/2 preface if the version says so */
	RLS_REQ_KEY_SHA256 = 2048,   /* key_sha256 holds the key's SHA-256: look it up as a digest */
	RLS_REQ_CONNECTION_SEEN = 4096, /* a Connection line, its value at connection_seq */
	RLS_REQ_MAX_TOKENS_HIDDEN = 8192, /* a top-level key may be max_tokens to some parser */
	RLS_REQ_GET = 16384,         /* the method is GET: it may ask for a WebSocket */
};

/* Top-level JSON keys that matter. */
enum rls_json_key {
	RLS_JSON_KEY_OTHER,
	RLS_JSON_KEY_MODEL,
	RLS_JSON_KEY_MAX_TOKENS, /* "max_tokens" or "max_completion_tokens" */
};

/* The body's JSON as far as the scan has read it: which top-level key, which value. */
enum rls_json_expect {
	RLS_JSON_START,     /* whitespace, then the top-level '{' */
	RLS_JSON_ANY,       /* inside the object */
	RLS_JSON_COLON,     /* after a top-level key */
	RLS_JSON_VALUE,     /* after the colon of a top-level key */
	RLS_JSON_MODEL,     /* inside the top-level "model" string */
	RLS_JSON_NUMBER,    /* the digits of a top-level max_tokens */
	RLS_JSON_KEY,       /* inside a top-level key */
};

#define RLS_STREAM_KEY_MAX  256 /* RLS_API_KEY_MAX, rounded up to a power of two */
#define RLS_JSON_KEY_MAX    32  /* long enough for "max_completion_tokens" */

struct rls_stream {
	__u32 next_seq;        /* the next client byte the parser expects */
	__u32 stream_start;    /* the connection's first data byte */
	__u32 request_start;   /* the current request's first byte */
	__u32 request_flags;   /* enum rls_request_flag */
	__u8 phase;            /* enum rls_stream_phase */
	__u8 routed;           /* no local socket: the gateway forwards this connection */
	__u8 name_cand;        /* RLS_NAME_* still matching the name read so far */
	__u8 header_kind;      /* enum rls_header_kind of the current line */
	__u8 key_rank;         /* the key header that gave the key; lower wins */
	__u8 line_rank;        /* the key header the current line is */
	__u8 json_expect;      /* enum rls_json_expect */
	__u16 name_len;
	__u16 value_len;       /* bytes stored of the current value */
	__u16 value_trim;      /* value_len without trailing whitespace */
	__u8 header_model_len, body_model_len;
	__u8 json_in_string, json_escaped, json_key_len, json_key_expected;
	__u8 json_key_kind;    /* enum rls_json_key of the last top-level key */
	__u8 method_len;
	__u16 connection_len;  /* with RLS_REQ_CONNECTION_SEEN: the value's length */
	__s32 json_depth;
	__u32 chunk_digits;
	__u32 connection_seq;  /* with RLS_REQ_CONNECTION_SEEN: where the value is in the stream */
	__u64 version_tail;    /* the request line's last 8 bytes: its HTTP version */
	__u64 content_length;
	__u64 body_left;       /* of the content-length body or the current chunk */
	__u64 body_scanned;    /* body bytes the JSON scan has read */
	__u64 max_tokens;
	__u64 value_number;    /* a content-length or max_tokens being read */
	__u8 key_siphash[RLS_SIPHASH_LEN];
	__u8 key_sha256[RLS_SHA256_LEN]; /* with RLS_REQ_KEY_SHA256 */
	/* The value being read (value_len bytes) is in scratch, not here: struct rls_cut_value. */
	char header_model[RLS_MODEL_NAME_MAX];
	char body_model[RLS_MODEL_NAME_MAX];
	__u8 json_key[RLS_JSON_KEY_MAX];
};

/*
 * rls_cut_values: the bytes read so far of a header value a segment's end cut (a key, a model,
 * content-length, transfer-encoding, connection), by connection, until the segment that goes
 * on with it takes them back out. While a segment is read they are in scratch (struct
 * rls_scratch's value), as a whole value always is: a connection's flow never holds a key's
 * text, and is 256 bytes smaller for it (http_request.h, rls_value_resume()). A connection
 * that ends while one is cut leaves it behind: rlshape daemon removes those with the flows.
 */
struct rls_cut_value {
	__u8 text[RLS_STREAM_KEY_MAX];
};

#define RLS_CLOSED_CLIENT 1 /* the client's FIN, in order */
#define RLS_CLOSED_SERVER 2 /* the upstream's FIN */

/*
 * The teardown after a 429 that closes the connection (rlshape_xdp.c): the client's FIN is
 * answered with ours, and the upstream's socket is reset once, by the first client packet
 * that has the 429 and is not a FIN, or by the client's last ACK.
 */
enum rls_closing {
	RLS_CLOSING_FIN_SENT = 1,       /* our FIN went out (with the 429, or answering the client's) */
	RLS_CLOSING_UPSTREAM_RESET = 2, /* the upstream's socket was reset */
};

enum rls_flow_state {
	RLS_FLOW_ADMITTED = 1,
	RLS_FLOW_REJECTED,   /* a 429 was sent: client data is kept from the upstream */
	RLS_FLOW_RESET,      /* reset by XDP: its data is reset too, never passed (rlshape_xdp.c) */
};

/* What a 429 said, kept so a retransmitted request gets the same bytes back. */
struct rls_rejection {
	__u32 reason;    /* enum rls_reason */
	__u32 reset_ms;  /* until the limiting window, smoothing or budget admits again */
	__u64 limit;
	__u64 remaining;
	/* The day window whenever rpd applies: SambaNova's x-ratelimit-*-requests-day headers. */
	__u32 day_limit; /* RLS_UNLIMITED: no rpd, no -day headers */
	__u32 day_remaining;
	__u32 day_reset_s;
	__u32 pad;
	__u64 request_id; /* x-request-id: names this rejection in the client's and our logs */
};

/* How far TC is through the response to the last admitted request. */
enum rls_response_state {
	RLS_RESPONSE_NONE,        /* nothing to follow */
	RLS_RESPONSE_AWAITED,     /* admitted (tokens reserved or a slot held); no status line yet */
	RLS_RESPONSE_LENGTH,      /* body of content-length bytes */
	RLS_RESPONSE_CHUNKED,     /* chunked body: ends with the 0-size chunk */
	RLS_RESPONSE_UNTIL_CLOSE, /* no length: ends when the connection does */
};

/* Who sent a request, as the data path finds it (bpf/lib/policy.h, rls_identify()). */
struct rls_identity {
	struct rls_principal principal;
	__u8 anonymous; /* charged per client address under the default tier */
	__u8 unlimited; /* unknown client and no default tier: passes */
	__u8 shared_bits; /* anonymous: low address bits its counter ignores (rls_flow.counter_shared) */
	__u8 pad;
};

/*
 * What a connection's last request was found to be, and under which load (rls_config.load_seq;
 * 0: nothing remembered): a keep-alive client's next request with the same key, or the same
 * model name, is not looked up again (bpf/lib/flow_memo.h). The whole key hash and name are
 * kept and compared, so that no request can pass for another.
 */
struct rls_flow_memo {
	__u32 identity_load;
	__u32 has_key; /* the request had a key: key_siphash is its hash */
	__u8 key_siphash[RLS_SIPHASH_LEN];
	__u8 client[16]; /* the address it was identified by (rls_scratch.who) */
	struct rls_identity identity; /* the request being decided's, once rls_request_who() ran */
	__u32 model_load;
	__u32 model_id;
	__u32 model_len;
	/* The tier's limits for that model (its entry, else its "*"); none: not limited. */
	__u32 limits_load;
	__u32 limits_tier;
	__u32 limits_model;
	__u32 limits_found;
	/* The row of rls_stats_rows of (stats_account, stats_model). */
	__u32 stats_load;
	__u32 stats_account;
	__u32 stats_model;
	__u32 stats_row;
	/*
	 * Last, and read only where model_load or limits_load say they hold: a new flow need not
	 * clear them (rls_fresh_value() clears the value up to here).
	 */
	char model_name[RLS_MODEL_NAME_MAX];
	struct rls_limits limits;
};

struct rls_flow {
	__u32 state;       /* enum rls_flow_state */
	__u32 account;
	__u32 model;
	__u32 request_seq; /* client sequence number of the last request start */
	__u32 reply_end;   /* REJECTED: our sequence number after the 429 and its FIN */
	__u32 requests;    /* request starts seen on this connection */
	__u64 last_seen_ns;    /* CLOCK_MONOTONIC(_COARSE): the last data of the client or of an
				* answer TC meters, the upstream's FIN (flow_seen.h) */
	struct rls_rejection rejection;
	/* Token metering of the response, by TC on egress. */
	__u32 counter_model;   /* the counter the request was charged to */
	__u32 response_state;  /* enum rls_response_state */
	__u64 reserved_tokens; /* charged at admission, settled when the response is counted */
	__u64 request_bytes;
	__u64 response_bytes;
	__u64 body_left;       /* RLS_RESPONSE_LENGTH: body bytes still to come */
	__u32 tail_slot;       /* the tail slot the last segment went to */
	__u32 bytes_per_token; /* of the limits the request was admitted under */
	__u32 meter_tokens;    /* the response is reported to the daemon: tokens are limited */
	__u32 upgrade;         /* enum rls_upgrade */
	__u64 max_response_tokens; /* of the limits the request was admitted under */
	/*
	 * Anonymous counters: how many low bits of the client address the counter's key clears,
	 * so clients that differ only there share it: 0 (IPv4, or a /128 prefix), 128 minus
	 * anonymous_ipv6_prefix for IPv6, 128 for the overflow counter of a full rls_anon_counters.
	 */
	__u32 counter_shared;
	/* The address an anonymous counter keys on: the client's (its segments' source), or
	 * on the upstream side the one its proxy wrote (client_address below). */
	__u8 counter_client[16];
	/*
	 * The upstream side: the client's address the proxy wrote in the request that starts at
	 * client_address_seq (identify.client_address_header), read where its head was.
	 */
	__u8 client_address[16];
	__u32 client_address_seq;
	__u8 client_address_read;  /* the head at client_address_seq was searched */
	__u8 client_address_found; /* and client_address holds what it said */
	__u8 pad2[2];
	/* Concurrency: the slot the request in flight holds until its response ends. */
	__u32 slot_held;       /* 1 while held: whoever clears it (XDP or TC) gives it back */
	__u32 closed;          /* RLS_CLOSED_* bits: who has closed; both, and the flow is deleted */
	__u64 slot_epoch;      /* the epoch it was taken in */
	__u64 slot_epoch_ns;   /* the counter's epoch length then */
	struct rls_stream stream; /* where the client's byte stream is parsed up to */
	/* The upstream's side, as TC sees it leave: a 429 must not overlap an answer. */
	__u32 server_next;     /* the upstream's next sequence number */
	__u32 server_seen;     /* server_next is known */
	__u32 admitted_mark;   /* server_next when the last request was admitted */
	__u32 admitted_any;    /* a request on this connection was admitted */
	__u32 admitted_ack;    /* what the client acknowledged of the upstream then */
	__u32 closing;         /* REJECTED: RLS_CLOSING_* bits, the teardown after a closing 429 */
	__u32 reply_wire_end;  /* REJECTED: past the 429 (and a FIN it carried), as the client numbers */
	struct rls_reset_note reset; /* RESET: the segment whose resend is answered */
	/*
	 * XDP's copy of the upstream's SYN-ACK (rls_handshakes), taken the first time a refusal
	 * asks whether the connection can stay open while TC has seen nothing else of the
	 * upstream: every later refusal reads it here, not in the map. Written by XDP alone,
	 * unlike server_next and server_seen above, which TC writes.
	 */
	__u32 handshake_next;   /* the upstream's ISN + 1 */
	__u16 handshake_window; /* its window, scaled as the upstream's later segments are */
	__u16 handshake_known;  /* the two above hold it */
	__u32 last_seen_tick;   /* jiffies' low 32 bits when a segment last set last_seen_ns */
	struct rls_seqadj seqadj;
	/*
	 * Shaping, on the upstream side: the last delayed request's departure (CLOCK_MONOTONIC
	 * ns), before which none of the connection's segments toward the upstream leaves.
	 */
	__u64 depart_ns;
	struct rls_flow_memo memo; /* last: its tail is never cleared (rls_fresh_value()) */
};

#define RLS_TAIL_SLOTS 8   /* segments kept */
#define RLS_TAIL_MAX   512 /* bytes kept of each: its last ones */

/*
 * The end of a response's bytes: the last RLS_TAIL_MAX bytes of each of its last
 * RLS_TAIL_SLOTS segments, a ring of slots. A stream's usage event is followed by small
 * segments ("data: [DONE]", the last chunk), so one slot would not do. Slots join into one
 * run of bytes only where the later slot holds its whole segment.
 */
struct rls_response_tail {
	__u32 len[RLS_TAIL_SLOTS];   /* bytes in the slot */
	__u32 whole[RLS_TAIL_SLOTS]; /* the slot holds its whole segment */
	__u8 bytes[RLS_TAIL_SLOTS][RLS_TAIL_MAX];
};

enum rls_event_flags {
	RLS_EVENT_CHUNKED = 1,   /* the tail may hold chunked framing */
	RLS_EVENT_CLOSED = 2,    /* the response ended with its connection */
	RLS_EVENT_CUT = 4,       /* ended by the next request before its own end was seen */
};

/*
 * rls_events (ring buffer): one per metered response, for the daemon; rls_parked holds the
 * same events, keyed by id, when the ring is full. A ring record is the event plus an 8-byte
 * header: 4,248 bytes, 3,949 of them in RLS_EVENTS_BYTES.
 */
struct rls_response_event {
	__u64 id;              /* unique: settlement is idempotent on it */
	struct rls_counter_key counter;
	__u64 reserved_tokens;
	__u64 request_bytes;
	__u64 response_bytes;
	__u32 flags;           /* enum rls_event_flags */
	__u32 tail_slot;       /* the slot of the last segment; the ring runs backwards from it */
	/* The limits the request was admitted under, as far as settling needs them. */
	__u32 bytes_per_token;
	__u32 pad;
	__u64 max_response_tokens;
	struct rls_response_tail tail;
};

/*
 * rls_pending: what neither the ring nor rls_parked could take, summed per counter, with the
 * limits of the latest response added (all of them, but across a reload).
 */
struct rls_pending {
	__u64 responses;
	__u64 reserved_tokens;
	__u64 request_bytes;
	__u64 response_bytes;
	__u32 bytes_per_token;
	__u32 pad;
	__u64 max_response_tokens;
};

/* The argument of the rls_settle program, run by the daemon through BPF_PROG_TEST_RUN. */
struct rls_settle_args {
	struct rls_counter_key counter;
	__u64 event_id;   /* 0: not from an event (pending drains) */
	__s64 delta;      /* tokens used minus tokens reserved: negative refunds (up to the
			   * counter's token_burst) */
	__u32 day;        /* UTC day the tokens were used in: another day's total is not touched */
	__u32 anonymous;  /* the counter is in rls_anon_counters */
	__s32 result;     /* out: 0 settled, 1 already settled, -1 no such counter */
	__u32 pad;
};

/*
 * The argument of the rls_fleet_lease program, which the daemon runs to read and set a
 * counter's leases under its lock (user/fleet.c).
 */
struct rls_lease_args {
	struct rls_counter_key counter;
	__u32 window[RLS_NR_WINDOWS]; /* in: the current window of each kind (UTC s / length) */
	__u32 set;                    /* in: bit w: hold lease[w] in window[w] from now on */
	__u32 spent;                  /* in: bit w: the fleet's budget of window[w] is gone */
	__u32 lease[RLS_NR_WINDOWS];  /* in: the lease to hold (never below count); out: the lease
				       * held in window[w], RLS_UNLIMITED when none is */
	__u32 count[RLS_NR_WINDOWS];  /* out: requests admitted here in window[w] */
	__u32 asked[RLS_NR_WINDOWS];  /* out: the counter's fleet_asked */
	__u32 limit[RLS_NR_WINDOWS];  /* out: the counter's fleet_limit */
	__s32 result;                 /* out: 0, or -1 no such counter */
	__u32 pad;
};

#endif /* RLSHAPE_H */
