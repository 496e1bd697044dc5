/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The per-CPU work space (struct rls_scratch; XDP's rls_scratch and TC's rls_tc_scratch,
 * maps.h): the payload window, the 429 being written, and what the parsers find and where
 * they are. Kept there rather than on the stack: the stack has 512 bytes, and the verifier
 * does not track values in map memory, so a bpf_loop() callback that reads its position from
 * here is verified once, not once per position it could be at.
 */
#ifndef RLS_BPF_SCRATCH_H
#define RLS_BPF_SCRATCH_H

#include "vmlinux.h"
#include "rlshape.h"
#include "key_hash.h"
#include "consts.h"
#include "packet.h"
#include "tcp_options.h"

/* How a response's body is delimited, from its head (http_response.h). */
struct rls_response_head {
	__u64 content_length;
	__u8 has_content_length;
	__u8 chunked;          /* its transfer-encoding ends in chunked */
	__u8 headers_complete; /* the blank line was inside the window */
	__u8 upgrade_websocket; /* "Upgrade: websocket" */
	__u8 pad[4];
};

struct rls_line_state {
	__u32 len;        /* bytes copied into the payload window */
	__u32 line_start;
	__u32 scan_pos;   /* where the search for the current line's end goes on */
	__u32 lines;
	__u32 body_start;
	__u32 pad;
};

/*
 * The stream scan's position (http_request.h), in per-CPU scratch memory rather than on the
 * stack: the verifier does not track values in map memory, so the step callback is verified
 * once, not once per value its position could take.
 */
struct rls_scan {
	__u32 pos;  /* next byte of the payload window */
	__u32 len;  /* bytes in the payload window */
	__u32 stop; /* enum rls_scan_stop */
	__u32 end;  /* where a loop over [pos, end) stops, kept here rather than in a register */
	__u32 at;   /* a search's cursor ahead of pos (rls_word_search()) */
	__u32 search_end; /* where that search stops, where it must stop short of end */
};

/* The client segment being followed: which of its bytes the payload window holds. */
struct rls_segment {
	__u32 base;     /* the window's first byte, as an offset into the segment's payload */
	__u32 total;    /* the segment's payload bytes */
	__u32 forgotten; /* the connection was reset: its flow, if any, is left RESET */
	__u32 action;   /* the verdict once a round decides it */
	__u32 started;  /* a request began: the last response on the connection is over */
	__u32 requests; /* requests that ended in this segment */
	__u32 from;     /* where its unread bytes begin: the upstream's next byte */
	__u32 pad;
};

/*
 * The TCP side of a 429 XDP is about to send (reply.h), in the client's numbering, which a
 * renumbered connection (seqadj.h) no longer shares with the upstream's.
 */
struct rls_answer {
	__u32 seq;          /* the 429's first byte */
	__u32 ack;          /* the client's bytes it acknowledges, up to */
	__u32 len;          /* out: its HTTP bytes */
	__u32 l4_off;       /* where its TCP header goes, and its length (reply.h) */
	__u32 tcp_len;
	__u16 window;       /* the window field it advertises */
	__u8 keep_open;     /* "connection: keep-alive": the connection goes on */
	__u8 fin;           /* it carries our FIN */
	__u8 detail;        /* out: the enum rls_429_detail sent; in, with detail_fixed: the one */
	__u8 detail_fixed;  /* a resend: the detail of the first, nothing else */
	__u8 rst;           /* a reset (with ACK), not a reply: the connection is over */
	__u8 pad;
};


/* The search of a request's head for the client's address (client_address.h). */
struct rls_head_search {
	__u32 pos;   /* where the next line's search starts */
	__u32 end;   /* the window's bytes */
	__u32 value; /* past the header's colon, on its last line seen; 0: none */
	__u32 pad;
	__u8 address[16]; /* what its value says, once parsed */
};

/* An address's text being read (client_address.h). */
struct rls_address_parse {
	__u32 at, end;
	__u32 v;        /* the number or group being read */
	__u32 digits;   /* its digits so far */
	__u32 parts;    /* IPv4 numbers, or IPv6 groups, done */
	__u32 gap;      /* IPv6: the groups before its "::"; 8: none */
	__u32 ipv6;
	__u32 chars;    /* characters of the address (white space not counted) */
	__u32 trailing; /* white space after it began */
	__u32 bad;
	__u16 groups[8];
};

/* What an admitted request was charged, for following its response (response.h). */
struct rls_admission {
	__u32 counter_model;   /* the counter the request was charged to */
	__u32 meter_tokens;    /* tokens reserved: report the response */
	__u64 reserved_tokens;
	__u64 request_bytes;
	__u32 bytes_per_token; /* of the limits admitted under: what settling needs of them */
	__u32 may_shape;       /* the hook can hold the request (TC egress), not only refuse it */
	__u64 max_response_tokens;
	__u32 counter_shared;  /* charged to the anonymous overflow counter */
	__u32 slot_taken;
	__u64 slot_epoch;
	__u64 slot_epoch_ns;
	__u64 now_ns;          /* UTC, when the request was decided */
};

/*
 * The numbers a 429 prints (enum rls_429_number, reply.h), each written as its decimal digits
 * in a slot of its own by one call (rls_format_numbers()), then copied into the text.
 */
#define RLS_REPLY_NUMBERS 8
#define RLS_NUMBER_SLOT   32 /* a slot's bytes: 20 digits at most, copied as three words */

struct rls_reply_numbers {
	__u64 value[RLS_REPLY_NUMBERS];
	__u32 len[RLS_REPLY_NUMBERS];
	__u32 text_len; /* the text's length after a number, read back from here (reply.h) */
	__u8 text[RLS_REPLY_NUMBERS][RLS_NUMBER_SLOT];
};

/* Per-CPU work space: too large for the 512-byte BPF stack. */
struct rls_scratch {
	__u8 payload[RLS_PARSE_WINDOW];
	__u8 key[RLS_KEY_HASH_BUF];
	/*
	 * The header value being read (rls_stream's value_len bytes), for the stream of the
	 * packet being read: restored from rls_cut_values where a segment cut it. A word read
	 * past it stays in scratch.
	 */
	__u8 value[RLS_STREAM_KEY_MAX];
	struct rls_sha256_work sha256;
	__u8 reply[RLS_REPLY_MAX];
	struct rls_reply_numbers numbers; /* the 429's numbers, formatted before its text */
	__u8 headers[RLS_HEADERS_MAX]; /* L2-L4 of a packet being rewritten */
	struct rls_model_name model;
	__u32 model_len; /* of the name in model */
	struct rls_api_key api_key;
	struct rls_api_key_digest api_key_digest;
	struct rls_response_head resp;
	struct rls_line_state lines;
	struct rls_scan scan;
	struct rls_head_search head;
	struct rls_address_parse addr;
	struct rls_segment seg;
	struct rls_packet pkt;
	/* The connection as the decision identifies it (decide.h): the packet's, its client's
	 * address from the proxy's header on the upstream side (client_address.h). */
	struct rls_flow_key who;
	struct rls_rejection rejection;
	struct rls_tcp_options opts; /* the segment's, where a 429 or renumbering needs them */
	struct rls_answer answer;
	struct rls_limits fleet_limits; /* a fleet's limits as this host applies them */
	/* How long shaping holds the request being decided (0: not at all): off the stack, which
	 * XDP's nested frames fill to the verifier's 512 bytes. */
	__u64 shape_delay_ns;
	/* What the request being decided was charged, for following its response: off the
	 * stack, for the same reason. */
	struct rls_admission admission;
	/* This CPU's last request's memo, where a new connection's first request starts
	 * (flow_memo.h): who its key was, its model's id, its limits. */
	struct rls_flow_memo cpu_memo;
	/* Zeroed values for map inserts, off the stack. */
	union {
		struct rls_counter counter;
		struct rls_flow flow;
	} fresh;
	/* Never written, so always zero: the value a new rls_tails entry starts from (too large to
	 * clear on each use). */
	struct rls_response_tail zero_tail;
	/* A response event the full ring could not take, built here to be parked (meter.h). */
	struct rls_response_event parked;
	/* This CPU's part of every request id (rls_new_request_id()); 0 until it is derived. */
	__u64 request_id_salt;
	/*
	 * 1 while TC egress sends a copy of its segment out through the same interface
	 * (bpf_clone_redirect() runs the egress hook again, on this CPU, before it returns): that
	 * run must pass the copy and leave this scratch alone (rlshape_upstream.c).
	 */
	__u32 redirecting;
};

#endif /* RLS_BPF_SCRATCH_H */
