// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <dirent.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>

#include "cli.h"
#include "maps.h"

static const struct rls_opt status_opts[] = {
	RLS_OPT_DEV(struct rls_view_request, dev, "only this interface"),
	RLS_OPT_JSON(struct rls_view_request, json, "one JSON object per interface, in an array"),
	{ NULL },
};

static const struct rls_cmd_spec status_spec = {
	.name = "status",
	.description =
		"Shows each interface rlshape is attached to: the XDP link and program (on the\n"
		"upstream side: its TC programs), the tier table that is live (its path, SHA-256\n"
		"and when it was loaded), its ports, what it does with HTTP/2 and WebSocket\n"
		"connections, and how API keys are hashed (the secret itself is never shown).\n",
	.opts = status_opts,
};

struct instance {
	char dev[256];
	__u32 link_id, prog_id, ifindex, generation;
	__u32 side;           /* enum rls_side */
	__u32 ingress_prog_id; /* the upstream side's TC ingress program */
	int attached;
	struct rls_config cfg;
	__u32 nr_accounts, nr_models;
};

/* The TC filter's program on a hook of the interface here, or 0. */
static __u32 tc_filter_prog(int ifindex, enum bpf_tc_attach_point point)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = RLS_TC_HANDLE, .priority = RLS_TC_PRIORITY);

	return ifindex && bpf_tc_query(&hook, &opts) == 0 ? opts.prog_id : 0;
}

/* The upstream side has no link: its filters on the interface of that name say it is on. */
static void read_tc_filters(struct instance *in)
{
	in->ifindex = if_nametoindex(in->dev);
	in->prog_id = tc_filter_prog((int)in->ifindex, BPF_TC_EGRESS);
	in->ingress_prog_id = tc_filter_prog((int)in->ifindex, BPF_TC_INGRESS);
	in->attached = in->prog_id && in->ingress_prog_id;
}

static int read_instance(const char *dev, struct instance *in)
{
	struct bpf_link_info info = {};
	__u32 info_len = sizeof(info), zero = 0;
	struct rls_maps maps;
	char dir[256], path[512], err[512];
	int link;

	memset(in, 0, sizeof(*in));
	snprintf(in->dev, sizeof(in->dev), "%s", dev);
	rls_pin_dir(dev, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, RLS_LINK_PIN);
	link = bpf_obj_get(path);
	if (link >= 0 && bpf_obj_get_info_by_fd(link, &info, &info_len) == 0) {
		in->attached = 1;
		in->link_id = info.id;
		in->prog_id = info.prog_id;
		in->ifindex = info.xdp.ifindex;
	}
	if (link >= 0)
		close(link);
	in->side = rls_loaded_side(dir);
	if (in->side == RLS_SIDE_UPSTREAM)
		read_tc_filters(in);
	if (rls_maps_open_pinned(dir, &maps, err, sizeof(err))) {
		rls_error("%s: %s; `rlshape unload --dev %s` clears a broken instance", dev, err, dev);
		return -1;
	}
	bpf_map_lookup_elem(maps.active, &zero, &in->generation);
	bpf_map_lookup_elem(maps.config, &in->generation, &in->cfg);
	in->nr_accounts = rls_map_count_keys(maps.accounts, sizeof(__u32));
	in->nr_models = rls_map_count_keys(maps.models, sizeof(struct rls_model_name));
	rls_maps_close(&maps);
	return 0;
}

static void hex(const __u8 *b, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void utc_time(__u64 t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&tt, &tm));
}

static void print_text(const struct instance *in)
{
	char sha[65], when[32], ifname[IF_NAMESIZE] = "?";
	size_t i;

	hex(in->cfg.table_sha256, RLS_SHA256_LEN, sha);
	utc_time(in->cfg.loaded_at, when, sizeof(when));
	/* The ifindex is the link's namespace's: here it may name nothing, or another interface. */
	if (in->attached && (!if_indextoname(in->ifindex, ifname) || strcmp(ifname, in->dev)))
		snprintf(ifname, sizeof(ifname), "(elsewhere)");
	printf("%s:\n", in->dev);
	if (in->attached && in->side == RLS_SIDE_UPSTREAM)
		printf("  attached   upstream side: TC egress program %u, TC ingress program %u, "
		       "interface %s (ifindex %u)\n", in->prog_id, in->ingress_prog_id, in->dev,
		       in->ifindex);
	else if (in->attached)
		printf("  attached   XDP link %u, program %u, interface %s (ifindex %u)\n",
		       in->link_id, in->prog_id, ifname, in->ifindex);
	else if (in->side == RLS_SIDE_UPSTREAM)
		printf("  attached   no: the upstream side's TC filters are not on %s in this network "
		       "namespace; `rlshape load` attaches again\n", in->dev);
	else
		printf("  attached   no: the link is gone; `rlshape load` attaches again\n");
	printf("  table      %s\n  sha256     %s\n  loaded     %s (generation %u)\n",
	       in->cfg.table_path, sha, when, in->generation);
	printf("  ports     ");
	for (i = 0; i < RLS_MAX_PORTS && in->cfg.ports[i]; i++)
		printf(" %u", in->cfg.ports[i]);
	printf("\n  accounts   %u\n  models     %u\n", in->nr_accounts, in->nr_models);
	/* What the table lets through uncounted, or reads no further (listen.http2, .websocket). */
	printf("  http2      %s\n  websocket  %s\n", in->cfg.http2_pass ? "pass" : "refuse",
	       in->cfg.websocket_tunnel ? "tunnel" : "reset");
	/* How keys are hashed; the secret itself is never shown. */
	printf("  key hash   SipHash-2-4-128 keyed with this interface's secret (root-only pins)\n");
	printf("  digests    %u \"sha256:\" keys%s\n", in->cfg.key_digests,
	       in->cfg.key_digests ? ": SHA-256 of a key no plain one matches, cached" : "");
}

static json_t *to_json(const struct instance *in)
{
	char sha[65], when[32];
	json_t *ports = json_array();
	size_t i;

	hex(in->cfg.table_sha256, RLS_SHA256_LEN, sha);
	utc_time(in->cfg.loaded_at, when, sizeof(when));
	for (i = 0; i < RLS_MAX_PORTS && in->cfg.ports[i]; i++)
		json_array_append_new(ports, json_integer(in->cfg.ports[i]));
	return json_pack("{s:s, s:s, s:b, s:i, s:i, s:i, s:s, s:s, s:s, s:i, s:o, s:i, s:i, s:s, s:i, "
			 "s:s, s:s}",
			 "dev", in->dev,
			 "side", in->side == RLS_SIDE_UPSTREAM ? "upstream" : "client",
			 "attached", in->attached, "link_id", (int)in->link_id,
			 "prog_id", (int)in->prog_id, "ifindex", (int)in->ifindex,
			 "table", in->cfg.table_path, "sha256", sha, "loaded_at", when,
			 "generation", (int)in->generation, "ports", ports,
			 "accounts", (int)in->nr_accounts, "models", (int)in->nr_models,
			 "key_hash", "siphash-2-4-128", "sha256_keys", (int)in->cfg.key_digests,
			 "http2", in->cfg.http2_pass ? "pass" : "refuse",
			 "websocket", in->cfg.websocket_tunnel ? "tunnel" : "reset");
}

int rls_cmd_status(int argc, char **argv)
{
	struct rls_view_request req = { 0 };
	enum rls_opts_result ret;
	json_t *all;
	struct instance in;
	struct dirent *e;
	int shown = 0, failed = 0;
	DIR *d;

	ret = rls_opts_parse(&status_spec, argc, argv, &req);
	if (ret != RLS_OPTS_OK)
		return rls_opts_exit_code(ret);
	all = json_array();
	d = opendir(RLS_PIN_ROOT);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' || e->d_type != DT_DIR || (req.dev && strcmp(req.dev, e->d_name)))
			continue;
		if (read_instance(e->d_name, &in)) {
			failed = 1;
			continue;
		}
		shown++;
		if (req.json)
			json_array_append_new(all, to_json(&in));
		else
			print_text(&in);
	}
	if (d)
		closedir(d);
	if (req.json) {
		json_dumpf(all, stdout, JSON_INDENT(2));
		putchar('\n');
	} else if (!shown && !failed) {
		printf(req.dev ? "rlshape is not loaded on %s\n" : "rlshape is not loaded on any interface%s\n",
		       req.dev ? req.dev : "");
	}
	json_decref(all);
	return failed || (req.dev && !shown) ? 1 : 0;
}
