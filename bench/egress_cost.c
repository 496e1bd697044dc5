// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * egress_cost: what the upstream side's TC egress program (rlshape_upstream) costs per packet,
 * measured by the kernel with BPF_PROG_TEST_RUN on __sk_buff frames from a local proxy to the
 * upstream, against a no-op TC program (bpf/tc_pass.bpf.c, the floor) on the same request frame
 * in the same round.
 *
 * Each case is a series of single runs (repeat = 1); opts.duration of each is the kernel's own
 * time for it. A round's figure is the median of its runs; the report gives the median over
 * rounds, and the ratio to the floor of the same round. The program follows each connection's
 * byte stream, so the cases send in order:
 *   ack       a pure ACK where a followed connection's stream is
 *   request   the next request on a kept connection (key + x-model, a JSON body): admitted
 *   rejected  a request over its limit, on a connection of its own: a reset copy sent out
 *             (bpf_clone_redirect, to this namespace's loopback here) and the segment rewritten
 *             into the 429 for the proxy (TC_ACT_REDIRECT); its flow is deleted after the run
 *
 *   egress_cost [--runs N] [--rounds R] [--summary FILE]
 */
#define _GNU_SOURCE
#include <getopt.h>

#include "bench.h"
#include "tc_pass.skel.h"

#define MAX_ROUNDS 64
#define TC_ACT_OK       0
#define TC_ACT_REDIRECT 7

/* The kept connection's client: outside the addresses bench_conn() hands the rejected case. */
#define KEPT_CLIENT (BENCH_CLIENT_NET + 0xfff0)
#define KEPT_PORT   40000

#define KEY_ADMIT "sk-bench-admit-0001"
#define KEY_DENY  "sk-bench-denied-0001"

static const char table[] =
	"{\"listen\": {\"ports\": [8000]},\n"
	" \"tiers\": {\"bench\": {\"*\": {\"rpm\": 1000000000, \"burst\": 1000000000,"
	" \"rph\": 4000000000, \"rpd\": 4000000000}},\n"
	"           \"spent\": {\"*\": {\"rpd\": 1}}},\n"
	" \"accounts\": {\"bench\": {\"tier\": \"bench\", \"keys\": [\"" KEY_ADMIT "\"]},\n"
	"              \"spent\": {\"tier\": \"spent\", \"keys\": [\"" KEY_DENY "\"]}}}\n";

enum { C_FLOOR, C_ACK, C_REQ, C_REJECT, NR_CASES };

struct ecase {
	const char *name, *what;
	int expect;
	struct bench_frame f;
	double p50[MAX_ROUNDS], ratio[MAX_ROUNDS];
	uint64_t unexpected;
};

static struct ecase cases[NR_CASES] = {
	[C_FLOOR] = { "floor", "no-op TC program (TC_ACT_OK) on the request frame", TC_ACT_OK },
	[C_ACK] = { "ack", "pure ACK where a followed connection's stream is", TC_ACT_OK },
	[C_REQ] = { "request", "the next request on a kept connection, key + x-model + JSON body: "
			       "admitted", TC_ACT_OK },
	[C_REJECT] = { "rejected", "a request over its limit: reset copy to the upstream, the "
				   "segment rewritten into the 429 for the proxy", TC_ACT_REDIRECT },
};

static uint8_t out_buf[TP_MAX_FRAME];

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One timed run of c's frame; its ns, counting an unexpected verdict. */
static double run_once(int fd, struct ecase *c)
{
	__u32 ns = 0;
	int action = bench_run(fd, &c->f, out_buf, &ns);

	if (action != c->expect && !c->unexpected++)
		fprintf(stderr, "egress_cost: %s: the program returned %d, expected %d\n", c->name,
			action, c->expect);
	return ns;
}

static void usage(void)
{
	fprintf(stderr, "usage: egress_cost [--runs N] [--rounds R] [--summary FILE]\n"
			"  --runs N        single runs per case and round (default 20000)\n"
			"  --rounds R      rounds (default 5, at most 64)\n"
			"  --summary FILE  append 'egress_cost.CASE.FIELD<TAB>VALUE' lines to FILE\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "runs", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "summary", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long runs = 20000, rounds = 5, r, i;
	const char *summary = NULL;
	struct tc_pass_bpf *pass;
	char req[2048], why[2048];
	uint32_t client, req_seq = 1000;
	uint16_t sport;
	uint64_t conn = 100;
	double *t;
	size_t len, req_len;
	struct env env;
	FILE *sf;
	int c, k, up_fd;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			runs = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rounds = strtoul(optarg, NULL, 10);
			break;
		case 's':
			summary = optarg;
			break;
		default:
			usage();
			return c == 'h' ? 0 : 2;
		}
	}
	if (!runs || !rounds || rounds > MAX_ROUNDS) {
		usage();
		return 2;
	}
	if (own_netns(why, sizeof(why)))
		die("%s", why);
	env_load_upstream = 1;
	if (bench_env_open(&env, "egress_cost.json", table, why, sizeof(why)))
		die("%s", why);
	up_fd = env.upstream_fd;
	pass = tc_pass_bpf__open_and_load();
	if (!pass)
		die("cannot load the no-op TC program: %s", strerror(errno));
	t = calloc(runs, sizeof(*t));
	if (!t)
		die("out of memory");

	req_len = bench_request(req, sizeof(req), NULL, KEY_ADMIT, 1, BENCH_BODY);
	if (!req_len || bench_frame_build(&cases[C_REQ].f, KEPT_CLIENT, KEPT_PORT, req_seq,
					  0, req, req_len))
		die("cannot build the request frame");
	cases[C_FLOOR].f = cases[C_REQ].f;
	/* The kept connection's first request, untimed: the ACK case's stream is there. */
	if (bench_run(up_fd, &cases[C_REQ].f, out_buf, NULL) != TC_ACT_OK)
		die("the first request was not admitted");
	req_seq += (uint32_t)req_len;
	bench_frame_set_seq(&cases[C_REQ].f, req_seq);
	if (bench_frame_build(&cases[C_ACK].f, KEPT_CLIENT, KEPT_PORT, req_seq, TP_ACK, NULL, 0))
		die("cannot build the ACK");
	len = bench_request(req, sizeof(req), NULL, KEY_DENY, 1, BENCH_BODY);
	bench_conn(conn++, &client, &sport);
	if (!len || bench_frame_build(&cases[C_REJECT].f, client, sport, 1000, 0, req, len))
		die("cannot build the rejected request");
	/* KEY_DENY's one request of the day, untimed: every later one is refused. */
	bench_run(up_fd, &cases[C_REJECT].f, out_buf, NULL);

	for (r = 0; r < rounds; r++) {
		for (k = 0; k < NR_CASES; k++) {
			struct ecase *e = &cases[k];

			for (i = 0; i < runs; i++) {
				if (k == C_FLOOR) {
					t[i] = run_once(bpf_program__fd(pass->progs.tc_pass), e);
				} else if (k == C_REQ) {
					t[i] = run_once(up_fd, e);
					req_seq += (uint32_t)req_len;
					bench_frame_set_seq(&e->f, req_seq);
					bench_frame_set_seq(&cases[C_ACK].f, req_seq);
				} else if (k == C_REJECT) {
					struct rls_flow_key key;

					bench_conn(conn++, &client, &sport);
					bench_frame_set_client(&e->f, client, sport);
					t[i] = run_once(up_fd, e);
					key = bench_flow_key(&e->f);
					bpf_map_delete_elem(env.maps.flows, &key);
				} else {
					t[i] = run_once(up_fd, e);
				}
			}
			e->p50[r] = median(t, (int)runs);
		}
		for (k = 0; k < NR_CASES; k++)
			cases[k].ratio[r] = cases[k].p50[r] / cases[C_FLOOR].p50[r];
	}

	printf("TC egress on the upstream side (`--side upstream`), BPF_PROG_TEST_RUN single runs: "
	       "%lu runs per case in each of %lu rounds; median ns of a round, median over "
	       "rounds, and the ratio to the no-op TC program of the same round.\n\n",
	       runs, rounds);
	printf("| case | what | median ns | x the no-op | unexpected verdicts |\n");
	printf("| --- | --- | --- | --- | --- |\n");
	sf = summary ? fopen(summary, "a") : NULL;
	if (summary && !sf)
		die("%s: %s", summary, strerror(errno));
	for (k = 0; k < NR_CASES; k++) {
		struct ecase *e = &cases[k];
		double p50 = median(e->p50, (int)rounds), ratio = median(e->ratio, (int)rounds);

		printf("| %s | %s | %.0f | %.2f | %llu |\n", e->name, e->what, p50, ratio,
		       (unsigned long long)e->unexpected);
		if (sf) {
			fprintf(sf, "egress_cost.%s.median_ns\t%.0f\n", e->name, p50);
			fprintf(sf, "egress_cost.%s.ratio\t%.2f\n", e->name, ratio);
			fprintf(sf, "egress_cost.%s.unexpected\t%llu\n", e->name,
				(unsigned long long)e->unexpected);
		}
	}
	if (sf)
		fclose(sf);
	free(t);
	tc_pass_bpf__destroy(pass);
	env_close(&env);
	for (k = 0; k < NR_CASES; k++)
		if (cases[k].unexpected)
			return 1;
	return 0;
}
