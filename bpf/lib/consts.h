/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Constants of the data path that more than one kind of header uses: protocol numbers of the
 * wire, and the sizes of the per-CPU buffers (scratch.h) the parsers and writers share.
 * Constants shared with user space are in include/rlshape.h; one file's own stay in it.
 */
#ifndef RLS_BPF_CONSTS_H
#define RLS_BPF_CONSTS_H

/* Ethernet types (vmlinux.h has no macros). */
#define ETH_P_IP     0x0800
#define ETH_P_IPV6   0x86DD
#define ETH_P_8021Q  0x8100
#define ETH_P_8021AD 0x88A8

/* IP: the trailing _ keeps clear of vmlinux.h's enum of the same names. */
#define IPPROTO_TCP_ 6
#define IP_MF        0x2000
#define IP_OFFSET    0x1FFF

/* IPv6 extension headers the parser walks through to find TCP. */
#define IPPROTO_HOPOPTS_  0
#define IPPROTO_ROUTING_  43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_DSTOPTS_  60
#define IP6_MF            0x0001
#define IP6_OFFSET        0xFFF8

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_ACK 0x10
#define TCP_FLAG_URG 0x20

/* Past this the offset of the TCP header is not believed: no linear frame is this long. */
#define RLS_L4_OFF_MAX 0x3fff

/* How much of a segment's payload the parsers look at in one go (the payload window). */
#define RLS_PARSE_WINDOW 2048
#define RLS_REPLY_MAX    1024
#define RLS_HEADERS_MAX  256
/* The window a reply advertises where the upstream's is not known: the largest. */
#define RLS_REPLY_WINDOW 65535

/* Requests one segment may end; more is a flood of tiny pipelined requests: reset. */
#define RLS_REQUESTS_PER_SEGMENT 32

/* A content-length, chunk size or JSON number at least this large is not served. */
#define RLS_LENGTH_MAX (1ull << 40)

#endif /* RLS_BPF_CONSTS_H */
