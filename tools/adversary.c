// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * adversary: sends the same OpenAI chat request N times, laid out on the wire in one chosen
 * WAY, and counts the answers. Each way is a byte layout a client can choose at will: a first
 * segment of 4 bytes, an empty line first, IPv4 options, pipelining, a tiny MSS, IP fragments,
 * an urgent byte, one byte per segment... A limiter that judges what it sees must count every
 * one of them as the one request the server reads.
 *
 * Segments are made exactly: TCP_NODELAY, and between two writes that must not share a segment
 * the tool waits until the kernel's send queue is empty (SIOCOUTQ 0: everything ACKed), so the
 * kernel cannot coalesce them. IP fragments are written by hand (TCP_REPAIR for the sequence
 * numbers, a raw socket for the fragments).
 *
 * Output, one line: way=NAME sent=N ok=N limited=N closed=N timeout=N other=N retrans=N
 *   ok: 200; limited: 429; closed: the connection ended (FIN or RST) before a status line;
 *   timeout: no answer within --timeout-ms; other: any other status or a broken response;
 *   retrans: TCP retransmissions summed over the connections (a retransmission can re-lay
 *   a way's segments, so a non-zero count makes that run's layout doubtful).
 * Exit status: 0 when every request was answered (200 or 429) or its connection closed, 1 when
 * one timed out or got anything else, 2 on misuse.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http_conn.h"
#include "text.h"

#define PROG "adversary"
#include "usage_error.h" /* needs PROG */

#define BUF_SIZE       (256 * 1024)
#define HEAD_MAX       (64 * 1024)
#define COUNT_MAX      10000ul
#define BODY_MAX       (1ul << 20)
#define TIMEOUT_MAX_MS 600000ul
#define GATE_WAIT_MS   60000ull

#ifndef TCP_REPAIR_OFF_NO_WP
#define TCP_REPAIR_OFF_NO_WP -1
#endif

struct config {
	const char *target;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	const struct way *way;
	unsigned long count;
	const char *key;
	const char *model;
	const char *header_model;
	const char *marker;
	const char *host;
	unsigned long body_size;
	unsigned long timeout_ms;
	unsigned long frag_size;
	unsigned long mss;
	const char *gate;
	bool model_last;
	bool keepalive;
	bool verbose;
};

static struct config cfg = {
	.count = 6,
	.model = "pricey",
	.timeout_ms = 5000,
	.frag_size = 24,
	.mss = 88,
};

struct response {
	int status;
	bool close;
	bool has_length;
	unsigned long length;
};

struct conn {
	struct http_conn io;
	bool have_head;             /* head holds a final answer read early (expect-100) */
	struct response head;
	unsigned long retrans;      /* summed over the connections closed so far */
};

/* send_fn: put request r on c; false when the connection broke while writing (an answer may
 * still be waiting: the caller reads it). */
struct request;
typedef bool (*send_fn)(struct conn *c, const struct request *r);

struct way {
	const char *name;
	const char *desc;
	send_fn send;
	bool (*setup)(int fd);      /* on the socket before connect() */
	bool ipv4_only;
	bool one_connection;        /* the requests share a connection whatever --keepalive says */
};

/* ---- the request ------------------------------------------------------------------------ */

/* Where the parts of one request are, so the ways can cut it at meaningful places. */
struct request {
	struct sbuf b;
	size_t line_end;            /* after the request line's CRLF */
	size_t key_start;           /* the key header's first byte */
	size_t body_start;          /* after the blank line */
	size_t split_body;          /* second-model: where the second "model" starts */
	size_t split;               /* the ways of two segments: where the second one starts */
};

static void json_body(struct sbuf *b, const char *model, bool model_last, size_t pad)
{
	static const char filler[] = "Summarise the following text in one line. ";
	size_t i;

	sb_str(b, "{");
	if (!model_last)
		sb_printf(b, "\"model\":\"%s\",", model);
	sb_str(b, "\"messages\":[{\"role\":\"user\",\"content\":\"");
	for (i = 0; i < pad; i++)
		sb_add(b, &filler[i % (sizeof(filler) - 1)], 1);
	sb_str(b, "\"}]");
	if (model_last)
		sb_printf(b, ",\"model\":\"%s\"", model);
	sb_str(b, "}");
}

/* The body for way W, padded so that the whole body is about --body-size bytes. */
static void build_body(struct request *r, struct sbuf *body, const char *way)
{
	struct sbuf probe = { 0 };
	size_t pad = 0;
	bool second = !strcmp(way, "second-model");
	const char *first_model = second ? "cheap" : cfg.model;

	json_body(&probe, first_model, cfg.model_last, 0);
	if (cfg.body_size > probe.len)
		pad = cfg.body_size - probe.len;
	sb_free(&probe);
	json_body(body, first_model, cfg.model_last, pad);
	if (second) {
		/* {"model":"cheap",...} becomes {"model":"cheap",...,"model":"M"}: parsers that keep
		 * the last duplicate (JavaScript's, Python's) read M. */
		body->len--;
		r->split_body = body->len;
		sb_printf(body, ",\"model\":\"%s\"}", cfg.model);
	}
}

static void build_request(struct request *r, const char *way)
{
	struct sbuf body = { 0 };
	struct sbuf *b = &r->b;
	bool chunked = !strcmp(way, "chunked-ext");
	int i;

	memset(r, 0, sizeof(*r));
	build_body(r, &body, way);
	if (!strcmp(way, "leading-crlf"))
		sb_str(b, "\r\n");
	else if (!strcmp(way, "urgent-oob"))
		sb_str(b, "!");             /* the urgent byte */
	sb_str(b, "POST /v1/chat/completions HTTP/1.1\r\n");
	r->line_end = b->len;
	sb_printf(b, "host: %s\r\nuser-agent: rlshape-adversary\r\n", cfg.host);
	sb_printf(b, "x-way: %s\r\n", cfg.marker ? cfg.marker : way);
	if (!strcmp(way, "many-headers"))
		for (i = 0; i < 70; i++)
			sb_printf(b, "x-h%02d: %d\r\n", i, i);
	sb_str(b, "accept: application/json\r\ncontent-type: application/json\r\n");
	if (!strcmp(way, "expect-100"))
		sb_str(b, "expect: 100-continue\r\n");
	if (cfg.header_model)
		sb_printf(b, "x-model: %s\r\n", cfg.header_model);
	r->key_start = b->len;
	if (cfg.key)
		sb_printf(b, "authorization: Bearer%s%s\r\n",
			  !strcmp(way, "bearer-spaces") ? "                    " : " ", cfg.key);
	if (chunked)
		sb_str(b, "transfer-encoding: chunked\r\n\r\n");
	else
		sb_printf(b, "content-length: %zu\r\n\r\n", body.len);
	r->body_start = b->len;
	if (chunked) {
		/* The chunk extension looks like a JSON body; the real one follows it. */
		sb_printf(b, "%zx;{\"model\":\"cheap\"}\r\n", body.len);
		sb_add(b, body.p, body.len);
		sb_str(b, "\r\n0\r\n\r\n");
	} else {
		if (r->split_body)
			r->split_body += r->body_start;
		sb_add(b, body.p, body.len);
	}
	sb_free(&body);
	r->split = !strcmp(way, "split-method") ? 4 : !strcmp(way, "reqline-alone") ? r->line_end :
		   !strcmp(way, "key-2nd-segment") ? r->key_start : r->split_body;
	if (b->oom) {
		fprintf(stderr, PROG ": out of memory\n");
		exit(1);
	}
}

/* ---- connections ------------------------------------------------------------------------ */

static void conn_close(struct conn *c)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (c->io.fd >= 0) {
		if (!getsockopt(c->io.fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
			c->retrans += ti.tcpi_total_retrans;
		close(c->io.fd);
	}
	c->io.fd = -1;
	c->io.off = c->io.len = 0;
	c->have_head = false;
}

static bool conn_open(struct conn *c)
{
	int one = 1, err = 0;
	socklen_t len = sizeof(err);
	c->io.off = c->io.len = 0;
	c->io.fd = socket(cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->io.fd < 0)
		return false;
	setsockopt(c->io.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (cfg.way->setup && !cfg.way->setup(c->io.fd)) {
		conn_close(c);
		return false;
	}
	if (connect(c->io.fd, (struct sockaddr *)&cfg.addr, cfg.addr_len) && errno != EINPROGRESS)
		goto fail;
	if (!http_conn_wait(&c->io, POLLOUT) ||
	    getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) || err)
		goto fail;
	return true;
fail:
	conn_close(c);
	return false;
}

/* Everything written so far has left and been ACKed, or an answer is already readable (the
 * limiter may answer before the rest of a request has gone: then stop waiting). */
static bool drained(struct conn *c)
{
	for (;;) {
		struct pollfd pfd = { .fd = c->io.fd, .events = POLLIN };
		int queued = 0;

		if (ioctl(c->io.fd, SIOCOUTQ, &queued))
			return false;
		if (!queued)
			return true;
		if (mono_ms() >= c->io.deadline)
			return false;
		if (poll(&pfd, 1, 1) > 0)
			return false;
	}
}

/* A write that is a segment of its own: the next write waits until this one is ACKed. */
static bool seg(struct conn *c, const char *p, size_t n)
{
	return http_conn_send(&c->io, p, n, 0) && drained(c);
}

/* ---- responses -------------------------------------------------------------------------- */

/* Next line without its CRLF; 1 ok, else as http_conn_read_line says. */
static int read_line(struct conn *c, const char **line, size_t *n)
{
	return http_conn_read_line(&c->io, line, n, HEAD_MAX);
}

enum outcome { OUT_OK, OUT_LIMITED, OUT_CLOSED, OUT_TIMEOUT, OUT_OTHER, OUT_N };
static const char *const outcome_names[OUT_N] = { "ok", "limited", "closed", "timeout", "other" };

/* One response head. Returns OUT_OK when a status line and headers were read (status in rs),
 * else how it failed. */
static enum outcome read_head(struct conn *c, struct response *rs)
{
	const char *line;
	size_t n;
	unsigned long st;
	int r;

	memset(rs, 0, sizeof(*rs));
	r = read_line(c, &line, &n);
	if (r <= 0)
		return r == HTTP_IO_DEADLINE ? OUT_TIMEOUT : OUT_CLOSED;
	if (n < 12 || memcmp(line, "HTTP/1.", 7) || !parse_ulong(line + 9, 3, 999, &st))
		return OUT_OTHER;
	rs->status = (int)st;
	rs->close = line[7] == '0';
	for (;;) {
		const char *colon, *v;
		size_t nl, vl;

		r = read_line(c, &line, &n);
		if (r <= 0)
			return r == HTTP_IO_DEADLINE ? OUT_TIMEOUT : OUT_OTHER;
		if (!n)
			return OUT_OK;
		colon = memchr(line, ':', n);
		if (!colon)
			return OUT_OTHER;
		nl = (size_t)(colon - line);
		v = colon + 1;
		vl = n - nl - 1;
		while (vl && *v == ' ')
			v++, vl--;
		if (span_ieq(line, nl, "content-length")) {
			if (!parse_ulong(v, vl, BODY_MAX, &rs->length))
				return OUT_OTHER;
			rs->has_length = true;
		} else if (span_ieq(line, nl, "connection") && list_has_token(v, vl, "close")) {
			rs->close = true;
		} else if (span_ieq(line, nl, "transfer-encoding")) {
			rs->close = true;   /* the upstream under test never chunks: read to the end */
		}
	}
}

static enum outcome read_body(struct conn *c, struct response *rs)
{
	size_t want = rs->has_length ? rs->length : BODY_MAX;

	if (rs->status < 200 || rs->status == 204 || rs->status == 304)
		return OUT_OK;
	if (!rs->has_length)
		rs->close = true;
	while (c->io.len - c->io.off < want) {
		ssize_t r = http_conn_fill(&c->io);

		if (r == 0 && !rs->has_length)
			break;
		if (r <= 0)
			return r == HTTP_IO_DEADLINE ? OUT_TIMEOUT : OUT_OTHER;
	}
	c->io.off += rs->has_length ? want : c->io.len - c->io.off;
	return OUT_OK;
}

static enum outcome classify(int status)
{
	return status == 200 ? OUT_OK : status == 429 ? OUT_LIMITED : OUT_OTHER;
}

/* A final response: interim 1xx skipped, body read; the connection closed when it says so. */
static enum outcome read_response(struct conn *c)
{
	struct response rs;
	enum outcome o;

	if (c->have_head) {
		rs = c->head;
		c->have_head = false;
	} else {
		rs.status = 0;
	}
	while (rs.status < 200) {
		o = read_head(c, &rs);
		if (o != OUT_OK)
			goto fail;
	}
	o = read_body(c, &rs);
	if (o != OUT_OK)
		goto fail;
	if (rs.close || !cfg.keepalive)
		conn_close(c);
	return classify(rs.status);
fail:
	conn_close(c);
	return o;
}

/* ---- the ways ---------------------------------------------------------------------------- */

static bool send_whole(struct conn *c, const struct request *r)
{
	return seg(c, r->b.p, r->b.len);
}

static bool send_split(struct conn *c, const struct request *r)
{
	return seg(c, r->b.p, r->split) && seg(c, r->b.p + r->split, r->b.len - r->split);
}

static bool setup_ip_options(int fd)
{
	/* NOP NOP NOP EOL: a 4-byte option block, IHL 6. */
	static const unsigned char opts[4] = { IPOPT_NOP, IPOPT_NOP, IPOPT_NOP, IPOPT_END };

	if (setsockopt(fd, IPPROTO_IP, IP_OPTIONS, opts, sizeof(opts))) {
		fprintf(stderr, PROG ": setsockopt IP_OPTIONS: %s\n", strerror(errno));
		return false;
	}
	return true;
}

static bool setup_mss(int fd)
{
	int mss = (int)cfg.mss;

	if (setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss))) {
		fprintf(stderr, PROG ": setsockopt TCP_MAXSEG %d: %s\n", mss, strerror(errno));
		return false;
	}
	return true;
}

static bool send_bytewise(struct conn *c, const struct request *r)
{
	for (size_t i = 0; i < r->b.len; i++)
		if (!seg(c, r->b.p + i, 1))
			return false;
	return true;
}

/* Headers, then the body only after the server says 100 Continue. A final answer instead of
 * 100 is left unread for the caller (the body is then not sent). */
static bool send_expect(struct conn *c, const struct request *r)
{
	struct response rs;

	/* drained() stops early when an answer is readable: that is the 100 (or a final answer)
	 * this function waits for, not a failure. */
	if (!http_conn_send(&c->io, r->b.p, r->body_start, 0))
		return false;
	drained(c);
	if (read_head(c, &rs) != OUT_OK)
		return false;
	if (rs.status != 100) {
		c->head = rs;               /* the final answer: the caller reads its body */
		c->have_head = true;
		return true;
	}
	return seg(c, r->b.p + r->body_start, r->b.len - r->body_start);
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t csum_add(uint32_t sum, const void *data, size_t n)
{
	const uint8_t *p = data;

	for (; n > 1; p += 2, n -= 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (n)
		sum += (uint32_t)(p[0] << 8);
	return sum;
}

static bool repair_seq(int fd, int queue, uint32_t *seq)
{
	socklen_t len = sizeof(*seq);

	return !setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof(queue)) &&
	       !getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, seq, &len);
}

/*
 * data as one TCP segment written by hand: the socket is put in repair mode to learn its
 * sequence numbers and to queue data as already sent (so it ACKs and retransmits as usual), and
 * the segment goes out through a raw socket, cut into IPv4 fragments of frag bytes (0: whole),
 * the first one holding the TCP header and data's first bytes. urg: data[0] is urgent.
 */
static bool send_raw(struct conn *c, const char *data, size_t len, bool urg, size_t frag)
{
	struct sockaddr_in src, dst;
	socklen_t sl = sizeof(src), dl = sizeof(dst);
	uint32_t snd, rcv, sum;
	int on = 1, off = TCP_REPAIR_OFF_NO_WP, raw = -1, q = TCP_SEND_QUEUE;
	size_t tlen = sizeof(struct tcphdr) + len, pos;
	uint8_t *seg_buf = NULL, pkt[1500];
	struct tcphdr th = { 0 };
	uint16_t id = (uint16_t)(mono_ms() * 2654435761u >> 7);
	bool ok = false;

	if (getsockname(c->io.fd, (struct sockaddr *)&src, &sl) ||
	    getpeername(c->io.fd, (struct sockaddr *)&dst, &dl) || tlen > 60000)
		return false;
	if (setsockopt(c->io.fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on))) {
		fprintf(stderr, PROG ": TCP_REPAIR: %s (needs CAP_NET_ADMIN)\n", strerror(errno));
		return false;
	}
	if (!repair_seq(c->io.fd, TCP_RECV_QUEUE, &rcv) ||
	    !repair_seq(c->io.fd, TCP_SEND_QUEUE, &snd) ||
	    setsockopt(c->io.fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)) ||
	    send(c->io.fd, data, len, 0) != (ssize_t)len ||
	    setsockopt(c->io.fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off)))
		goto out;

	seg_buf = malloc(tlen);
	raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (!seg_buf || raw < 0) {
		fprintf(stderr, PROG ": raw socket: %s\n", strerror(errno));
		goto out;
	}
	th.source = src.sin_port;
	th.dest = dst.sin_port;
	th.seq = htonl(snd);
	th.ack_seq = htonl(rcv);
	th.doff = 5;
	th.ack = 1;
	th.psh = 1;
	th.window = htons(1024);
	th.urg = urg;
	th.urg_ptr = htons(urg);     /* Linux: the urgent byte is the one before the pointer */
	memcpy(seg_buf, &th, sizeof(th));
	memcpy(seg_buf + sizeof(th), data, len);
	sum = csum_add(0, &src.sin_addr, 4);
	sum = csum_add(sum, &dst.sin_addr, 4);
	sum += IPPROTO_TCP + (uint32_t)tlen;
	sum = csum_add(sum, seg_buf, tlen);
	th.check = htons(csum_fold(sum));
	memcpy(seg_buf, &th, sizeof(th));

	if (!frag || frag > sizeof(pkt) - sizeof(struct iphdr))
		frag = sizeof(pkt) - sizeof(struct iphdr);
	for (pos = 0; pos < tlen; pos += frag) {
		struct iphdr *ip = (struct iphdr *)pkt;
		size_t n = tlen - pos < frag ? tlen - pos : frag;

		memset(ip, 0, sizeof(*ip));
		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->id = htons(id);
		ip->frag_off = htons((uint16_t)(pos / 8) | (pos + n < tlen ? IP_MF : 0));
		ip->tot_len = htons((uint16_t)(sizeof(*ip) + n));
		ip->saddr = src.sin_addr.s_addr;
		ip->daddr = dst.sin_addr.s_addr;
		ip->check = htons(csum_fold(csum_add(0, ip, sizeof(*ip))));
		memcpy(pkt + sizeof(*ip), seg_buf + pos, n);
		if (sendto(raw, pkt, sizeof(*ip) + n, 0, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
			fprintf(stderr, PROG ": sending a fragment: %s\n", strerror(errno));
			goto out;
		}
	}
	ok = drained(c);
out:
	if (raw >= 0)
		close(raw);
	free(seg_buf);
	return ok;
}

static bool send_fragments(struct conn *c, const struct request *r)
{
	return send_raw(c, r->b.p, r->b.len, false, cfg.frag_size);
}

/* An urgent byte and the request behind it in one segment. The kernel sends an urgent byte at
 * once, in a segment of its own, whatever TCP_CORK says: hence by hand. A receiver without
 * SO_OOBINLINE, nginx included, takes the byte out of the stream and reads only the request. */
static bool send_urgent(struct conn *c, const struct request *r)
{
	return send_raw(c, r->b.p, r->b.len, true, 0);
}

static const struct way ways[] = {
	{ "plain", "the whole request in one write, a new connection each (the baseline)",
	  send_whole, NULL, false, false },
	{ "split-method", "a first segment of 4 bytes (\"POST\"), the rest in a second one",
	  send_split, NULL, false, false },
	{ "leading-crlf", "an empty line (CRLF) before the request line, in the same segment",
	  send_whole, NULL, false, false },
	{ "ip-options", "IPv4 options on the socket (IP_OPTIONS NOP NOP NOP EOL: IHL 6)",
	  send_whole, setup_ip_options, true, false },
	{ "keepalive-lastbyte", "one keep-alive connection; each segment starts with the previous "
	  "request's last byte", NULL, NULL, false, true },
	{ "pipeline", "all --count requests in one write on one connection (pipelining)",
	  NULL, NULL, false, true },
	{ "small-mss", "TCP_MAXSEG --mss (88) before connect: the request in many small segments",
	  send_whole, setup_mss, false, false },
	{ "reqline-alone", "the request line alone in the first segment, the rest in a second",
	  send_split, NULL, false, false },
	{ "key-2nd-segment", "the headers before the key in one segment, the key and the rest in "
	  "a second", send_split, NULL, false, false },
	{ "many-headers", "70 short headers before the key, one segment",
	  send_whole, NULL, false, false },
	{ "bearer-spaces", "20 spaces between \"Bearer\" and the key",
	  send_whole, NULL, false, false },
	{ "second-model", "body {\"model\":\"cheap\",...} in the first segment, then a second top-level "
	  ",\"model\":\"M\"} (which JSON parsers keeping the last duplicate read) in a second",
	  send_split, NULL, false, false },
	{ "chunked-ext", "transfer-encoding: chunked whose chunk extension is {\"model\":\"cheap\"}; the "
	  "chunk holds the real body", send_whole, NULL, false, false },
	{ "ip-fragments", "one TCP segment in IPv4 fragments of --frag-size (24) bytes, built by "
	  "hand (TCP_REPAIR + raw socket; needs CAP_NET_ADMIN and CAP_NET_RAW)",
	  send_fragments, NULL, true, false },
	{ "urgent-oob", "an urgent byte in front of the request line, same segment (by hand, as "
	  "ip-fragments)", send_urgent, NULL, true, false },
	{ "expect-100", "expect: 100-continue: the headers, then the body after 100 Continue",
	  send_expect, NULL, false, false },
	{ "bytewise", "one byte per segment for the whole request (each waits for the last ACK)",
	  send_bytewise, NULL, false, false },
	{ "sdk", "an SDK's layout: --body-size 2500 by default, \"model\" after \"messages\", "
	  "keep-alive", send_whole, NULL, false, false },
};

#define N_WAYS (sizeof(ways) / sizeof(ways[0]))

/* ---- running a way ------------------------------------------------------------------------ */

struct tally {
	unsigned long n[OUT_N];
};

static void note(struct tally *t, unsigned long i, enum outcome o)
{
	t->n[o]++;
	if (cfg.verbose) {
		printf("request %lu: %s\n", i + 1, outcome_names[o]);
		fflush(stdout);
	}
}

/* --gate P: request i (from 2 on) waits until file P.i exists. */
static void gate(unsigned long i)
{
	char path[4096];
	unsigned long long end = mono_ms() + GATE_WAIT_MS;
	struct stat st;

	if (!cfg.gate || !i)
		return;
	snprintf(path, sizeof(path), "%s.%lu", cfg.gate, i + 1);
	while (stat(path, &st)) {
		if (mono_ms() >= end) {
			fprintf(stderr, PROG ": gave up waiting for %s\n", path);
			exit(1);
		}
		poll(NULL, 0, 5);
	}
}

static void run_each(struct conn *c, const struct request *r, struct tally *t)
{
	for (unsigned long i = 0; i < cfg.count; i++) {
		gate(i);
		c->io.deadline = mono_ms() + cfg.timeout_ms;
		if (c->io.fd < 0 && !conn_open(c)) {
			note(t, i, OUT_CLOSED);
			continue;
		}
		cfg.way->send(c, r);    /* a broken write still leaves an answer to read */
		note(t, i, read_response(c));
	}
}

static void run_pipeline(struct conn *c, const struct request *r, struct tally *t)
{
	struct sbuf all = { 0 };
	unsigned long i;

	for (i = 0; i < cfg.count; i++)
		sb_add(&all, r->b.p, r->b.len);
	c->io.deadline = mono_ms() + cfg.timeout_ms;
	if (all.oom || !conn_open(c)) {
		for (i = 0; i < cfg.count; i++)
			note(t, i, OUT_CLOSED);
		sb_free(&all);
		return;
	}
	seg(c, all.p, all.len);
	for (i = 0; i < cfg.count; i++)
		note(t, i, c->io.fd < 0 ? OUT_CLOSED : read_response(c));
	sb_free(&all);
}

/* Request i's last byte goes out with request i+1's first bytes; each response is read before
 * the next segment, so that the server answers every request on its own. */
static void run_lastbyte(struct conn *c, const struct request *r, struct tally *t)
{
	size_t n = r->b.len;
	struct sbuf s = { 0 };
	unsigned long i;
	bool carry = false;     /* the previous request's last byte is still unsent */

	sb_add(&s, r->b.p + n - 1, 1);
	sb_add(&s, r->b.p, n - 1);
	for (i = 0; i < cfg.count; i++) {
		c->io.deadline = mono_ms() + cfg.timeout_ms;
		if (c->io.fd < 0) {
			carry = false;
			if (!conn_open(c)) {
				note(t, i, OUT_CLOSED);
				continue;
			}
		}
		if (carry) {
			/* [last byte of i-1][request i but its last byte]: answers i-1. */
			seg(c, s.p, s.len);
			note(t, i - 1, read_response(c));
			if (c->io.fd < 0) {    /* i's bytes went with a closed connection: again */
				i--;
				carry = false;
				continue;
			}
		} else {
			seg(c, r->b.p, n - 1);
		}
		carry = true;
	}
	if (carry) {
		c->io.deadline = mono_ms() + cfg.timeout_ms;
		seg(c, r->b.p + n - 1, 1);
		note(t, cfg.count - 1, read_response(c));
	}
	sb_free(&s);
}

/* ---- command line -------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " --target ADDR:PORT --way NAME [options]\n"
		"Sends --count copies of one chat request laid out on the wire in one WAY and prints\n"
		"  way=NAME sent=N ok=N limited=N closed=N timeout=N other=N retrans=N\n"
		"(ok 200, limited 429, closed: FIN/RST before a status line). Exit 1 when a request\n"
		"timed out or got another answer, 2 on misuse.\n\n"
		"  -t, --target ADDR:PORT   server, e.g. 198.18.1.1:8000 or [2001:2::1]:8000\n"
		"  -w, --way NAME           how to lay the request out (below)\n"
		"  -n, --count N            requests to send (default 6)\n"
		"  -k, --key KEY            authorization: Bearer KEY (default: no key header)\n"
		"  -m, --model M            the body's top-level \"model\" (default pricey)\n"
		"      --header-model M     also an x-model: M header\n"
		"      --model-last         \"model\" after \"messages\" in the body\n"
		"  -b, --body-size BYTES    pad the prompt so the body is about BYTES long\n"
		"      --marker TEXT        x-way header value (default: the way's name)\n"
		"      --keepalive          reuse the connection when the answer allows\n"
		"      --gate PREFIX        request i (i >= 2) waits until file PREFIX.i exists\n"
		"      --frag-size N        ip-fragments: bytes per fragment, a multiple of 8 (24)\n"
		"      --mss N              small-mss: TCP_MAXSEG (88)\n"
		"      --timeout-ms MS      per request (default 5000)\n"
		"  -v, --verbose            a line per request: \"request I: OUTCOME\"\n"
		"  -h, --help\n\nways:\n");
	for (size_t i = 0; i < N_WAYS; i++)
		fprintf(f, "  %-19s %s%s\n", ways[i].name, ways[i].desc,
			ways[i].ipv4_only ? " [IPv4]" : "");
}

static void parse_target(const char *arg)
{
	const char *colon = strrchr(arg, ':');
	struct sockaddr_in *a4 = (struct sockaddr_in *)&cfg.addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&cfg.addr;
	unsigned long port;
	char host[INET6_ADDRSTRLEN + 2];
	size_t hlen = colon ? (size_t)(colon - arg) : 0;

	cfg.target = arg;
	if (!hlen || hlen >= sizeof(host) || !parse_ulong(colon + 1, strlen(colon + 1), 65535, &port))
		usage_error("bad --target '%s': want ADDR:PORT, e.g. 198.18.1.1:8000", arg);
	memcpy(host, arg, hlen);
	host[hlen] = '\0';
	if (hlen > 2 && host[0] == '[' && host[hlen - 1] == ']') {
		host[hlen - 1] = '\0';
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		cfg.addr_len = sizeof(*a6);
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) == 1)
			return;
	} else {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		cfg.addr_len = sizeof(*a4);
		if (inet_pton(AF_INET, host, &a4->sin_addr) == 1)
			return;
	}
	usage_error("bad --target '%s': a numeric IPv4 address, or IPv6 in brackets", arg);
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '"' || *s == '\\')
			return false;
	return true;
}

int main(int argc, char **argv)
{
	enum { O_HMODEL = 256, O_LAST, O_MARKER, O_KEEP, O_GATE, O_FRAG, O_MSS, O_TIMEOUT };
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 't' },
		{ "way", required_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ "key", required_argument, NULL, 'k' },
		{ "model", required_argument, NULL, 'm' },
		{ "header-model", required_argument, NULL, O_HMODEL },
		{ "model-last", no_argument, NULL, O_LAST },
		{ "body-size", required_argument, NULL, 'b' },
		{ "marker", required_argument, NULL, O_MARKER },
		{ "keepalive", no_argument, NULL, O_KEEP },
		{ "gate", required_argument, NULL, O_GATE },
		{ "frag-size", required_argument, NULL, O_FRAG },
		{ "mss", required_argument, NULL, O_MSS },
		{ "timeout-ms", required_argument, NULL, O_TIMEOUT },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct conn c = { .io = { .fd = -1, .cap = BUF_SIZE } };
	struct request r;
	struct tally t = { 0 };
	bool body_size_set = false;
	char host[INET6_ADDRSTRLEN + 8];
	int opt;

	while ((opt = getopt_long(argc, argv, "t:w:n:k:m:b:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 't': parse_target(optarg); break;
		case 'w':
			for (size_t i = 0; i < N_WAYS; i++)
				if (!strcmp(ways[i].name, optarg))
					cfg.way = &ways[i];
			if (!cfg.way)
				usage_error("unknown way '%s'", optarg);
			break;
		case 'n': cfg.count = usage_number("--count", optarg, 1, COUNT_MAX); break;
		case 'k': cfg.key = optarg; break;
		case 'm': cfg.model = optarg; break;
		case O_HMODEL: cfg.header_model = optarg; break;
		case O_LAST: cfg.model_last = true; break;
		case 'b':
			cfg.body_size = usage_number("--body-size", optarg, 0, BODY_MAX);
			body_size_set = true;
			break;
		case O_MARKER: cfg.marker = optarg; break;
		case O_KEEP: cfg.keepalive = true; break;
		case O_GATE: cfg.gate = optarg; break;
		case O_FRAG: cfg.frag_size = usage_number("--frag-size", optarg, 8, 1400); break;
		case O_MSS: cfg.mss = usage_number("--mss", optarg, 48, 65535); break;
		case O_TIMEOUT: cfg.timeout_ms = usage_number("--timeout-ms", optarg, 1, TIMEOUT_MAX_MS); break;
		case 'v': cfg.verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage_error("bad option");
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!cfg.target || !cfg.way)
		usage_error("--target and --way are required");
	if (cfg.frag_size % 8)
		usage_error("--frag-size must be a multiple of 8, got %lu", cfg.frag_size);
	if (cfg.way->ipv4_only && cfg.addr.ss_family != AF_INET)
		usage_error("way %s works over IPv4 only", cfg.way->name);
	if ((cfg.key && !printable(cfg.key)) || !printable(cfg.model) ||
	    (cfg.header_model && !printable(cfg.header_model)) ||
	    (cfg.marker && !printable(cfg.marker)))
		usage_error("keys, models and markers must be printable, without spaces or quotes");
	if (!strcmp(cfg.way->name, "sdk")) {
		cfg.model_last = true;
		cfg.keepalive = true;
		if (!body_size_set)
			cfg.body_size = 2500;
	}
	if (cfg.way->one_connection)
		cfg.keepalive = true;
	if (cfg.addr.ss_family == AF_INET6) {
		char a[INET6_ADDRSTRLEN];

		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&cfg.addr)->sin6_addr, a, sizeof(a));
		snprintf(host, sizeof(host), "[%s]", a);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&cfg.addr)->sin_addr, host, sizeof(host));
	}
	cfg.host = host;

	build_request(&r, cfg.way->name);
	c.io.buf = malloc(BUF_SIZE);
	if (!c.io.buf) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	if (!strcmp(cfg.way->name, "pipeline"))
		run_pipeline(&c, &r, &t);
	else if (!strcmp(cfg.way->name, "keepalive-lastbyte"))
		run_lastbyte(&c, &r, &t);
	else
		run_each(&c, &r, &t);
	conn_close(&c);

	printf("way=%s sent=%lu", cfg.way->name, cfg.count);
	for (int o = 0; o < OUT_N; o++)
		printf(" %s=%lu", outcome_names[o], t.n[o]);
	printf(" retrans=%lu\n", c.retrans);
	free(c.io.buf);
	sb_free(&r.b);
	return t.n[OUT_TIMEOUT] + t.n[OUT_OTHER] ? 1 : 0;
}
