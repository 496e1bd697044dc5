/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The data path, for prog_cost --data-path: a program measured where it runs on a gateway, in
 * the driver's receive loop, rather than one BPF_PROG_TEST_RUN call at a time. Frames go out
 * one end of a veth pair (an AF_PACKET socket, the qdisc bypassed) and the program is attached
 * in native mode to the other end, whose NAPI poll runs it on up to 64 frames in turn; the
 * kernel's own run statistics (BPF_ENABLE_STATS: run_cnt, run_time_ns, one sched_clock() pair
 * around each run) give the cost per run. Between two runs there is no system call, so the
 * caches and TLB a run leaves warm are warm for the next, as on a busy gateway.
 *
 * The pair lives in the process's own network namespace (own_netns.h), with IPv6 off so that
 * no packet but the bench's reaches the program. A frame the program passes meets a MAC
 * address that is not the interface's and is dropped by the stack. A frame it answers with
 * XDP_TX goes back to the sending end, which has a no-op XDP program of its own: a veth
 * delivers XDP_TX frames only to a peer running XDP (TESTBED.md).
 *
 * A frame the program answers (XDP_TX) is read back from the sending end, where a case that
 * acknowledges its 429s (the kept ones) finds it; other cases' replies are drained.
 *
 * A frame is sent only once the last batch is through: veth_xmit() hands frames to the peer's
 * ring (256 entries) and the NAPI poll runs in the sender's softirq, on its CPU, before
 * sendmmsg() returns; the run count is then checked, so a frame lost before the program is a
 * failed measurement, never a cheaper one.
 */
#ifndef RLS_BENCH_DATA_PATH_H
#define RLS_BENCH_DATA_PATH_H

#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include "bench.h"
#include "xdp_pass.skel.h"

#define DATA_PATH_SEND  "rlsdp0" /* the frames' way in */
#define DATA_PATH_RECV  "rlsdp1" /* the measured program's interface */
#define DATA_PATH_BATCH 64       /* frames a sendmmsg() carries: one NAPI budget */
#define DATA_PATH_POLLS 1000000  /* reads of the run count before a batch is called lost */
#define DATA_PATH_WAIT_MS 1000   /* for a reply the program sent: it is there long before */

struct data_path {
	int sock;
	int replies; /* an AF_PACKET socket reading what arrives on DATA_PATH_SEND: the XDP_TX'd */
	int send_ifindex, recv_ifindex;
	int stats_fd;
	int attached_fd; /* the program on DATA_PATH_RECV now, or -1 */
	struct xdp_pass_bpf *send_peer;
	struct mmsghdr msgs[DATA_PATH_BATCH];
	struct iovec iov[DATA_PATH_BATCH];
	struct sockaddr_ll to;
};

static inline int data_path_sysctl(const char *path, const char *value, char *why, size_t n)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(value, f) < 0 || fclose(f)) {
		snprintf(why, n, "writing %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Run count and run time of a program, from the kernel's statistics. */
static inline int data_path_stats(int prog_fd, __u64 *runs, __u64 *ns)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return -1;
	*runs = info.run_cnt;
	*ns = info.run_time_ns;
	return 0;
}

/* The veth pair, the sender's socket and the kernel's run statistics; 0, or -1 with why. */
static inline int data_path_open(struct data_path *dp, char *why, size_t n)
{
	struct sockaddr_ll at = { .sll_family = AF_PACKET };
	int one = 1;

	memset(dp, 0, sizeof(*dp));
	dp->sock = dp->replies = dp->stats_fd = dp->attached_fd = -1;
	/* No IPv6 on the pair: its router and neighbour solicitations would run the program. */
	if (data_path_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1", why, n))
		return -1;
	if (system("ip link add " DATA_PATH_SEND " type veth peer name " DATA_PATH_RECV
		   " && ip link set " DATA_PATH_SEND " up && ip link set " DATA_PATH_RECV " up")) {
		snprintf(why, n, "cannot make the veth pair %s/%s", DATA_PATH_SEND, DATA_PATH_RECV);
		return -1;
	}
	dp->send_ifindex = (int)if_nametoindex(DATA_PATH_SEND);
	dp->recv_ifindex = (int)if_nametoindex(DATA_PATH_RECV);
	dp->send_peer = xdp_pass_bpf__open_and_load();
	if (!dp->send_ifindex || !dp->recv_ifindex || !dp->send_peer ||
	    bpf_xdp_attach(dp->send_ifindex, bpf_program__fd(dp->send_peer->progs.xdp_pass),
			   XDP_FLAGS_DRV_MODE, NULL)) {
		snprintf(why, n, "a no-op XDP program on %s: %s", DATA_PATH_SEND, strerror(errno));
		return -1;
	}
	dp->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (dp->stats_fd < 0) {
		snprintf(why, n, "BPF_ENABLE_STATS: %s", strerror(errno));
		return -1;
	}
	dp->sock = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: sends only, receives nothing */
	at.sll_ifindex = dp->send_ifindex;
	if (dp->sock < 0 || bind(dp->sock, (struct sockaddr *)&at, sizeof(at)) ||
	    setsockopt(dp->sock, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one))) {
		snprintf(why, n, "an AF_PACKET socket on %s: %s", DATA_PATH_SEND, strerror(errno));
		return -1;
	}
	/* Frames the program sends back (XDP_TX) arrive at the sending end, where a tap sees
	 * them before the stack drops them (they are for the bench's clients, not for it). */
	dp->replies = socket(AF_PACKET, SOCK_RAW, htons(0x0800 /* ETH_P_IP */));
	at.sll_protocol = htons(0x0800);
	if (dp->replies < 0 || bind(dp->replies, (struct sockaddr *)&at, sizeof(at))) {
		snprintf(why, n, "an AF_PACKET socket reading %s: %s", DATA_PATH_SEND, strerror(errno));
		return -1;
	}
	dp->to.sll_family = AF_PACKET;
	dp->to.sll_ifindex = dp->send_ifindex;
	dp->to.sll_halen = 6;
	return 0;
}

/* prog_fd on the receiving end, in native mode (it replaces the one there). */
static inline int data_path_attach(struct data_path *dp, int prog_fd, char *why, size_t n)
{
	if (dp->attached_fd == prog_fd)
		return 0;
	if (bpf_xdp_attach(dp->recv_ifindex, prog_fd, XDP_FLAGS_DRV_MODE, NULL)) {
		snprintf(why, n, "attaching to %s: %s", DATA_PATH_RECV, strerror(errno));
		return -1;
	}
	dp->attached_fd = prog_fd;
	return 0;
}

/*
 * Sends nr frames (at most DATA_PATH_BATCH) through the attached program, prog_fd, and waits
 * until it has run on every one. 0, or -1 with why.
 */
static inline int data_path_send(struct data_path *dp, int prog_fd, struct bench_frame *frames,
				 int nr, char *why, size_t n)
{
	__u64 runs0, runs = 0, ns;
	long polls;
	int k, sent;

	if (nr <= 0 || nr > DATA_PATH_BATCH || data_path_stats(prog_fd, &runs0, &ns)) {
		snprintf(why, n, "bench bug: a batch of %d frames, or no statistics", nr);
		return -1;
	}
	for (k = 0; k < nr; k++) {
		dp->iov[k].iov_base = frames[k].buf;
		dp->iov[k].iov_len = frames[k].len;
		memset(&dp->msgs[k], 0, sizeof(dp->msgs[k]));
		dp->msgs[k].msg_hdr.msg_iov = &dp->iov[k];
		dp->msgs[k].msg_hdr.msg_iovlen = 1;
		dp->msgs[k].msg_hdr.msg_name = &dp->to;
		dp->msgs[k].msg_hdr.msg_namelen = sizeof(dp->to);
	}
	sent = sendmmsg(dp->sock, dp->msgs, (unsigned int)nr, 0);
	if (sent != nr) {
		snprintf(why, n, "sendmmsg on %s: %d of %d frames (%s)", DATA_PATH_SEND, sent, nr,
			 strerror(errno));
		return -1;
	}
	for (polls = 0; polls < DATA_PATH_POLLS; polls++) {
		if (data_path_stats(prog_fd, &runs, &ns))
			break;
		if (runs >= runs0 + (__u64)nr)
			return 0;
	}
	snprintf(why, n, "the program on %s ran on %llu of %d frames sent", DATA_PATH_RECV,
		 (unsigned long long)(runs - runs0), nr);
	return -1;
}

/*
 * The next frame the program sent back, into buf (cap bytes): its length, or -1 with why when
 * none comes within DATA_PATH_WAIT_MS. The bench's own frames, seen leaving, are skipped.
 */
static inline long data_path_reply(struct data_path *dp, uint8_t *buf, size_t cap, char *why,
				   size_t n)
{
	struct pollfd pfd = { .fd = dp->replies, .events = POLLIN };
	struct sockaddr_ll from;
	socklen_t from_len;
	ssize_t got;

	for (;;) {
		if (poll(&pfd, 1, DATA_PATH_WAIT_MS) != 1) {
			snprintf(why, n, "no reply on %s within %d ms", DATA_PATH_SEND,
				 DATA_PATH_WAIT_MS);
			return -1;
		}
		from_len = sizeof(from);
		got = recvfrom(dp->replies, buf, cap, 0, (struct sockaddr *)&from, &from_len);
		if (got < 0) {
			snprintf(why, n, "reading replies on %s: %s", DATA_PATH_SEND, strerror(errno));
			return -1;
		}
		if (from.sll_pkttype != PACKET_OUTGOING)
			return (long)got;
	}
}

/* Replies left unread (a case that does not read them): dropped before the next case. */
static inline void data_path_drain(struct data_path *dp)
{
	uint8_t buf[64];

	while (recv(dp->replies, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		;
}

static inline void data_path_close(struct data_path *dp)
{
	if (dp->replies >= 0)
		close(dp->replies);
	if (dp->sock >= 0)
		close(dp->sock);
	if (dp->stats_fd >= 0)
		close(dp->stats_fd);
	if (dp->recv_ifindex)
		bpf_xdp_detach(dp->recv_ifindex, XDP_FLAGS_DRV_MODE, NULL);
	if (dp->send_ifindex)
		bpf_xdp_detach(dp->send_ifindex, XDP_FLAGS_DRV_MODE, NULL);
	xdp_pass_bpf__destroy(dp->send_peer);
	if (dp->send_ifindex && system("ip link del " DATA_PATH_SEND))
		fprintf(stderr, "prog_cost: could not delete %s\n", DATA_PATH_SEND);
	memset(dp, 0, sizeof(*dp));
}

#endif /* RLS_BENCH_DATA_PATH_H */
