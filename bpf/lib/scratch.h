/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the HTTP parsers find and where they are, kept in per-CPU scratch memory rather than on
 * the stack: the verifier does not track values in map memory, so a bpf_loop() callback that
 * reads its position from here is verified once, not once per position it could be at.
 */
#ifndef RLS_BPF_HTTP_TYPES_H
#define RLS_BPF_HTTP_TYPES_H

/* How a response's body is delimited, from its head (parse_http.h). */
struct rls_response_head {
	__u64 content_length;
	__u8 has_content_length;
	__u8 chunked;          /* its transfer-encoding ends in chunked */
	__u8 headers_complete; /* the blank line was inside the window */
	__u8 pad[5];
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
	__u32 requests; /* requests that ended in this segment */
	__u32 from;     /* where its unread bytes begin: the upstream's next byte */
	__u32 pad;
};

#endif /* RLS_BPF_HTTP_TYPES_H */
