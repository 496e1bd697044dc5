/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Is a client segment part of a real connection? Where the gateway terminates the connection
 * itself (nginx, Envoy, a local proxy), the kernel holds its socket: a segment is the
 * connection's own only if the socket exists, is established (or is completing its handshake
 * with exactly this segment) and the segment's sequence number is where the socket's stream
 * is. The kernel's XDP synproxy selftest looks sockets up from XDP the same way.
 *
 * Where no local socket could take the segment at all, the gateway forwards the connection
 * (routed): it is followed from its bytes alone, and forged segments cannot be told apart
 * here (the README says what the operator adds in front).
 */
#ifndef RLS_BPF_CONNECTION_H
#define RLS_BPF_CONNECTION_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "packet.h"

enum rls_connection {
	RLS_CONN_ROUTED,       /* no local socket would take it: the gateway forwards it */
	RLS_CONN_NEW,          /* a local connection whose first data byte this segment holds */
	RLS_CONN_MIDSTREAM,    /* a local connection, this segment holding its next byte */
	RLS_CONN_OUT_OF_ORDER, /* a local connection, this segment past a gap in its stream */
	RLS_CONN_LISTENER,     /* only a listener: forged, or a SYN-cookie handshake's end */
	RLS_CONN_NOT_OURS,     /* no established connection takes it: forged, or a stray */
};

/* What the socket said, for the callers that compare with their own stream position. */
struct rls_socket_view {
	__u32 rcv_nxt;  /* the next byte the socket expects */
	__u32 conn;     /* enum rls_connection */
	__u32 snd_nxt;  /* established: the next byte it sends */
	__u16 window;   /* established: the window it advertises now, as its header field */
	__u16 pad;
};

/* The receive window the socket advertises now, scaled as its segments' window field. */
static __always_inline __u16 rls_socket_window(struct tcp_sock *tp)
{
	__s32 win = (__s32)(tp->rcv_wup + tp->rcv_wnd - tp->rcv_nxt);
	__u32 field;

	if (win < 0)
		win = 0;
	field = (__u32)win >> (BPF_CORE_READ_BITFIELD_PROBED(&tp->rx_opt, rcv_wscale) & 15);
	return field > 0xffff ? 0xffff : field;
}

static __always_inline bool rls_tcp_state_takes_data(__u32 state)
{
	/* FIN_WAIT: the server has closed its side; the client may still send. */
	return state == BPF_TCP_ESTABLISHED || state == BPF_TCP_FIN_WAIT1 ||
	       state == BPF_TCP_FIN_WAIT2;
}

/* An established socket: is the segment where its stream is? */
static __always_inline __u32 rls_established_view(struct bpf_sock *sk, const struct rls_packet *pkt,
						   struct rls_socket_view *v)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	__u32 window;

	if (!tp)
		return RLS_CONN_NOT_OURS;
	v->rcv_nxt = tp->rcv_nxt;
	v->snd_nxt = tp->snd_nxt;
	v->window = rls_socket_window(tp);
	window = tp->rcv_wnd;
	if (pkt->seq == v->rcv_nxt)
		return tp->bytes_received == 0 ? RLS_CONN_NEW : RLS_CONN_MIDSTREAM;
	/* Behind the next byte and past it: the kernel takes the bytes it lacks (a resend with
	 * new bytes after the old), so they are this connection's to read. */
	if ((__s32)(pkt->seq - v->rcv_nxt) < 0 &&
	    (__s32)(pkt->seq + pkt->payload_len - v->rcv_nxt) > 0)
		return RLS_CONN_MIDSTREAM;
	/* Inside the window the kernel would queue it: ours, but not yet. Outside: not ours. */
	if (pkt->seq - v->rcv_nxt < window)
		return RLS_CONN_OUT_OF_ORDER;
	return RLS_CONN_NOT_OURS;
}

/*
 * A handshake not yet complete: the segment may complete it (its ACK acknowledges the SYN-ACK)
 * and carry the first data at once. Only someone who saw the SYN-ACK can send that.
 */
static __always_inline __u32 rls_request_sock_view(struct bpf_sock *sk,
						    const struct rls_packet *pkt,
						    struct rls_socket_view *v)
{
	struct tcp_request_sock *req = bpf_skc_to_tcp_request_sock(sk);

	if (!req)
		return RLS_CONN_NOT_OURS;
	if (pkt->seq != req->rcv_isn + 1 || pkt->ack_seq != req->snt_isn + 1)
		return RLS_CONN_NOT_OURS;
	v->rcv_nxt = pkt->seq;
	return RLS_CONN_NEW;
}

/*
 * Look the segment's connection up. A global function: verified once. Data that only a
 * listener would take is forged, or (rarely) completes a SYN-cookie handshake with its own
 * ACK: the caller drops it either way, and a real client sends it again once its socket exists.
 */
__noinline int rls_socket_view(struct xdp_md *ctx, const struct rls_packet *pkt,
			       struct rls_socket_view *v)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;
	__u32 size, state, conn;

	if (!pkt || !v)
		return RLS_CONN_NOT_OURS;
	v->rcv_nxt = 0;
	if (pkt->ipv6) {
		__builtin_memcpy(tuple.ipv6.saddr, pkt->flow.client, 16);
		__builtin_memcpy(tuple.ipv6.daddr, pkt->flow.server, 16);
		tuple.ipv6.sport = pkt->flow.client_port;
		tuple.ipv6.dport = pkt->flow.server_port;
		size = sizeof(tuple.ipv6);
	} else {
		__builtin_memcpy(&tuple.ipv4.saddr, pkt->flow.client + 12, 4);
		__builtin_memcpy(&tuple.ipv4.daddr, pkt->flow.server + 12, 4);
		tuple.ipv4.sport = pkt->flow.client_port;
		tuple.ipv4.dport = pkt->flow.server_port;
		size = sizeof(tuple.ipv4);
	}
	sk = bpf_skc_lookup_tcp(ctx, &tuple, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk) {
		v->conn = RLS_CONN_ROUTED;
		return RLS_CONN_ROUTED;
	}
	state = sk->state;
	if (rls_tcp_state_takes_data(state))
		conn = rls_established_view(sk, pkt, v);
	else if (state == BPF_TCP_NEW_SYN_RECV)
		conn = rls_request_sock_view(sk, pkt, v);
	else if (state == BPF_TCP_LISTEN)
		conn = RLS_CONN_LISTENER;
	else
		conn = RLS_CONN_NOT_OURS;
	bpf_sk_release(sk);
	v->conn = conn;
	return conn;
}

#endif /* RLS_BPF_CONNECTION_H */
