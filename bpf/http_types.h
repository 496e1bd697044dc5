/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the HTTP parser finds and where it is, kept in per-CPU scratch memory rather than on
 * the stack: the verifier does not track values in map memory, so a bpf_loop() callback that
 * reads its position from here is verified once, not once per position it could be at.
 */
#ifndef RLS_BPF_HTTP_TYPES_H
#define RLS_BPF_HTTP_TYPES_H

/* What the first segment tells about the model a request is for. */
enum rls_model_seen {
	RLS_MODEL_NOT_SEEN, /* a body or header block goes on past the segment */
	RLS_MODEL_FOUND,
	RLS_MODEL_ABSENT,   /* the whole request is here and names no model */
};

struct rls_request {
	__u32 key_off, key_len;
	__u32 key_rank; /* index of the key header that gave the key; lower wins */
	__u32 model_off, model_len;           /* the model charged, once decided */
	__u32 header_model_off, header_model_len;
	__u32 body_model_off, body_model_len;
	__u64 content_length;
	__u64 max_tokens;      /* the body's top-level max_tokens or max_completion_tokens */
	__u8 has_max_tokens;
	__u8 has_content_length;
	__u8 chunked;          /* a response's transfer-encoding ends in chunked */
	__u8 has_key;
	__u8 has_header_model;
	__u8 has_body_model;
	__u8 headers_complete; /* the blank line was inside the window */
	__u8 model_seen;       /* enum rls_model_seen */
};

struct rls_line_state {
	__u32 len;        /* bytes copied into the payload window */
	__u32 line_start;
	__u32 scan_pos;   /* where the search for the current line's end goes on */
	__u32 lines;
	__u32 body_start;
	__u32 bad;        /* not an HTTP/1.x request line */
	__u32 response;   /* scanning a response's head, not a request's */
};

struct rls_json_state {
	__u32 pos, len;
	__s32 depth;
	__u8 in_string, escaped;
	__u8 key_expected;  /* at depth 1, the next string is a key */
	__u8 in_key;        /* the string being read is a top-level key */
	__u8 closed;        /* the top-level object ended inside the window */
	__u8 ambiguous;     /* a top-level key or the model could be read two ways */
};

/*
 * The stream scan's position (bpf/http_stream.h), in per-CPU scratch memory rather than on the
 * stack: the verifier does not track values in map memory, so the step callback is verified
 * once, not once per value its position could take.
 */
struct rls_scan {
	__u32 pos;  /* next byte of the payload window */
	__u32 len;  /* bytes in the payload window */
	__u32 stop; /* enum rls_scan_stop */
	__u32 pad;
};

/* The client segment being followed: which of its bytes the payload window holds. */
struct rls_segment {
	__u32 base;     /* the window's first byte, as an offset into the segment's payload */
	__u32 total;    /* the segment's payload bytes */
	__u32 forgotten; /* the connection was reset and its flow deleted */
	__u32 action;   /* the verdict once a round decides it */
	__u32 started;  /* a request began: the last response on the connection is over */
	__u32 pad;
};

#endif /* RLS_BPF_HTTP_TYPES_H */
