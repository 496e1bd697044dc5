// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "apply.h"
#include "cli.h"
#include "maps.h"
#include "opts.h"
#include "qdisc.h"
#include "tiers.h"
#include "rlshape.skel.h"

struct load_request {
	const char *file;
	const char *dev;
	__u32 xdp_flags;
	unsigned int side; /* enum rls_side, or RLS_SIDE_AS_LOADED */
};

/* No --side: the side already loaded on the interface (a reload keeps it), else the client's. */
#define RLS_SIDE_AS_LOADED (~0u)

static const struct rls_opt_choice sides[] = {
	{ "client", RLS_SIDE_CLIENT },
	{ "upstream", RLS_SIDE_UPSTREAM },
	{ NULL },
};

static const struct rls_opt_choice xdp_modes[] = {
	{ "native", 0 },
	{ "skb", XDP_FLAGS_SKB_MODE },
	{ NULL },
};

static const struct rls_opt load_opts[] = {
	{ .long_name = "dev", .short_name = 'd', .kind = RLS_OPT_STRING, .metavar = "IFACE",
	  .what = "an interface name",
	  .help = "client-facing interface of the gateway (with --side upstream:\n"
		  "the one to the upstream)",
	  .offset = offsetof(struct load_request, dev) },
	{ .long_name = "side", .kind = RLS_OPT_ENUM, .metavar = "client|upstream",
	  .what = "client or upstream", .choices = sides,
	  .help = "client (XDP reads the clients' requests on IFACE) or upstream\n"
		  "(TC egress reads a local TLS-terminating proxy's plain-text\n"
		  "requests on their way to the upstream, and answers the proxy;\n"
		  "TC ingress meters the upstream's responses). Default: the side\n"
		  "loaded on IFACE already, else client",
	  .offset = offsetof(struct load_request, side) },
	{ .long_name = "mode", .short_name = 'm', .kind = RLS_OPT_ENUM, .metavar = "native|skb",
	  .what = "native or skb", .choices = xdp_modes,
	  .help = "native (default: the driver runs XDP) or skb (generic XDP,\n"
		  "for drivers without XDP support; slower)",
	  .offset = offsetof(struct load_request, xdp_flags) },
	{ NULL },
};

static const struct rls_cmd_spec load_spec = {
	.name = "load",
	.operand = "FILE",
	.operand_offset = offsetof(struct load_request, file),
	.description =
		"Validates the tier table FILE, attaches rlshape's XDP program to IFACE (or to the\n"
		"interface the table names in listen.dev), pins it and its maps under\n"
		RLS_PIN_ROOT "/IFACE/ and makes the table live. With --side upstream, TC\n"
		"programs on IFACE instead, which carries a local proxy's requests to the\n"
		"upstream: the ports are the upstream's.\n\n"
		"Loading again on the same interface swaps the table atomically and keeps the\n"
		"counters of every (account, model) the new table still has. When the table is\n"
		"invalid, nothing that is loaded changes.\n",
	.opts = load_opts,
};

/* Point the pinned link at the new program, or create and pin the link on first load. */
static int attach(int prog_fd, int ifindex, __u32 flags, const char *dir, const char *dev)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
	char path[512];
	int link, err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, RLS_LINK_PIN);
	link = bpf_obj_get(path);
	if (link >= 0) {
		if (bpf_link_update(link, prog_fd, NULL))
			err = -errno;
		close(link);
		if (err)
			rls_error("%s: cannot replace the attached program: %s", dev, strerror(-err));
		return err;
	}
	link = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
	if (link < 0) {
		err = -errno;
		if (err == -EBUSY || err == -EEXIST)
			rls_error("%s already has an XDP program that rlshape did not attach; see "
				  "`ip link show dev %s`, remove it (`ip link set dev %s xdp off`) "
				  "and load again", dev, dev, dev);
		else
			rls_error("%s: cannot attach XDP: %s%s", dev, strerror(-err),
				  flags ? "" : " (try --mode skb if the driver lacks XDP support)");
		return err;
	}
	if (bpf_obj_pin(link, path)) {
		err = -errno;
		rls_error("cannot pin %s: %s", path, strerror(-err));
	}
	close(link);
	return err;
}

/* For `bpftool prog show pinned`, and for the daemon (prog_settle). */
static void pin_program(struct bpf_program *prog, const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	bpf_program__pin(prog, path);
}

/*
 * TC programs go on the clsact hooks as filters at a fixed handle and priority, so that a
 * reload replaces the program in place instead of adding a second filter.
 */
static int attach_tc(int prog_fd, int ifindex, enum bpf_tc_attach_point point, const char *dev)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = RLS_TC_HANDLE, .priority = RLS_TC_PRIORITY,
		    .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE);
	const char *way = point == BPF_TC_INGRESS ? "ingress" : "egress";
	int err = bpf_tc_hook_create(&hook);

	if (err && err != -EEXIST) {
		rls_error("%s: cannot add the clsact qdisc for TC %s: %s", dev, way, strerror(-err));
		return err;
	}
	err = bpf_tc_attach(&hook, &opts);
	if (err)
		rls_error("%s: cannot attach the TC %s program: %s", dev, way, strerror(-err));
	return err;
}

/*
 * The side's programs on ifindex, and their pins under dir. The client side: XDP reads the
 * requests, TC egress the responses. The upstream side: TC egress reads the proxy's requests
 * (rlshape_upstream), TC ingress the upstream's responses (the same rlshape_tc).
 */
static int attach_side(struct rlshape_bpf *skel, const struct load_request *req, int ifindex,
		       const char *dir, const char *dev)
{
	int tc_fd = bpf_program__fd(skel->progs.rlshape_tc);

	if (req->side == RLS_SIDE_UPSTREAM) {
		if (attach_tc(bpf_program__fd(skel->progs.rlshape_upstream), ifindex, BPF_TC_EGRESS,
			      dev) ||
		    attach_tc(tc_fd, ifindex, BPF_TC_INGRESS, dev))
			return -1;
		pin_program(skel->progs.rlshape_upstream, dir, RLS_UPSTREAM_PIN);
	} else {
		if (attach(bpf_program__fd(skel->progs.rlshape_xdp), ifindex, req->xdp_flags, dir,
			   dev) ||
		    attach_tc(tc_fd, ifindex, BPF_TC_EGRESS, dev))
			return -1;
		pin_program(skel->progs.rlshape_xdp, dir, RLS_PROG_PIN);
	}
	pin_program(skel->progs.rlshape_tc, dir, RLS_TC_PIN);
	pin_program(skel->progs.rls_settle, dir, RLS_SETTLE_PIN);
	pin_program(skel->progs.rls_fleet_lease, dir, RLS_FLEET_LEASE_PIN);
	return 0;
}

static bool already_loaded(const char *dir)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, RLS_LINK_PIN);
	return access(path, F_OK) == 0 || rls_loaded_side(dir) == RLS_SIDE_UPSTREAM;
}

/*
 * The data path's one object, its state maps reusing the pins under dir, its scratch maps
 * fresh. A state map not pinned yet is made without a pin: pin_new_state_maps() pins it once
 * the table is known to be good, so that a bad table, parsed while this runs, leaves nothing
 * behind. *skel is set even on failure, for the caller to destroy.
 */
static int data_path_load(struct rlshape_bpf **skel, const char *dir)
{
	struct bpf_map *map;
	const char *pin;
	int err;

	*skel = rlshape_bpf__open();
	if (!*skel)
		return -errno;
	err = rls_pin_state_maps((*skel)->obj, dir);
	bpf_object__for_each_map(map, (*skel)->obj) {
		pin = bpf_map__pin_path(map);
		if (!err && pin && access(pin, F_OK))
			err = bpf_map__set_pin_path(map, NULL);
	}
	return err ? err : rlshape_bpf__load(*skel);
}

/* Pin, under dir, the state maps data_path_load() made. Returns 0 or -errno. */
static int pin_new_state_maps(struct bpf_object *obj, const char *dir)
{
	struct bpf_map *map;
	int err = rls_pin_state_maps(obj, dir);

	bpf_object__for_each_map(map, obj)
		if (!err && bpf_map__pin_path(map) && !bpf_map__is_pinned(map))
			err = bpf_map__pin(map, NULL);
	return err;
}

/* Undo a first load that failed: its pins would otherwise outlive it. */
static void remove_fresh_pins(struct rlshape_bpf *skel, const char *dir)
{
	if (skel)
		rls_unpin_maps(skel->obj, dir);
	rmdir(dir);
}

/*
 * A scratch map pinned by an older rlshape (which pinned them all): nothing uses the pin, and
 * leaving it would keep a map of the old layout alive until unload.
 */
static void remove_stale_scratch_pins(struct bpf_object *obj, const char *dir)
{
	struct bpf_map *map;
	char path[512];

	bpf_object__for_each_map(map, obj) {
		if (!rls_map_is_scratch(map))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, bpf_map__name(map));
		unlink(path);
	}
}

/*
 * The tier table, read and checked on a thread of its own while the main thread loads the BPF
 * programs: the verifier takes about a second, and a table of a million accounts about two.
 */
struct table_parse {
	const char *file;
	struct rls_table table;
	char err[1024];
	int ret;
};

static void *parse_table(void *arg)
{
	struct table_parse *tp = arg;
	char path[PATH_MAX];

	tp->ret = rls_table_load(tp->file, &tp->table, tp->err, sizeof(tp->err));
	/* `rlshape status` shows where the table came from, wherever it is run. */
	if (!tp->ret && realpath(tp->file, path))
		snprintf(tp->table.path, sizeof(tp->table.path), "%s", path);
	return NULL;
}

/* Start parse_table(tp) beside the caller; false: it ran here instead (no thread to be had). */
static bool parse_table_beside(struct table_parse *tp, pthread_t *thread)
{
	if (pthread_create(thread, NULL, parse_table, tp) == 0)
		return true;
	parse_table(tp);
	return false;
}

/*
 * What a reload needs of the maps (rls_read_maps()), read through their pins on a thread of
 * its own while the verifier runs: a million accounts' names and keys take about half a
 * second to read.
 */
struct pinned_reading {
	pthread_t thread;
	struct rls_maps maps;
	struct rls_map_reading *reading;
	int ret;
};

static void *read_pinned(void *arg)
{
	struct pinned_reading *pr = arg;

	pr->ret = rls_read_maps(&pr->maps, &pr->reading);
	return NULL;
}

/* Start read_pinned() on the maps pinned under dir; false when it could not start. */
static bool read_pinned_beside(struct pinned_reading *pr, const char *dir)
{
	char err[512];

	if (rls_maps_open_pinned(dir, &pr->maps, err, sizeof(err)))
		return false;
	if (pthread_create(&pr->thread, NULL, read_pinned, pr) == 0)
		return true;
	rls_maps_close(&pr->maps);
	return false;
}

/*
 * The reading read_pinned_beside() started, once done: into *reading if it can stand for one
 * of maps (the maps the load reuses, read with no load between), else thrown away.
 */
static void read_pinned_join(struct pinned_reading *pr, struct rls_map_reading **reading)
{
	pthread_join(pr->thread, NULL);
	rls_maps_close(&pr->maps);
	if (!pr->ret)
		*reading = pr->reading;
	else
		rls_map_reading_free(pr->reading);
}

/*
 * Load the data path onto dev and make tp's table live. parse_along: tp is not parsed yet; parse
 * it while the programs load and what the load needs of the maps is read (rls_read_maps()).
 * A bad table is reported before anything else, and leaves the maps, pins and interface as
 * they were.
 */
/*
 * Shaping holds a request with its segments' departure time, which only fq honours, and only on
 * egress (README, "Shaping"): on the upstream side a table that shapes gets fq at the
 * interface's root (user/qdisc.h). Returns 1 when this put it there, 0, or -1 (said why:
 * nothing changed).
 */
static int prepare_shaping(const struct load_request *req, const struct rls_table *table,
			   const char *dev, int ifindex)
{
	__u64 longest = rls_table_max_shape_delay_ns(table);
	char err[512];
	int ret;

	if (!longest)
		return 0;
	if (req->side != RLS_SIDE_UPSTREAM) {
		fprintf(stderr, "rlshape: note: %s shapes, which only the upstream side can "
			"(--side upstream): here a request too fast for the smoothing gets its 429 "
			"as without \"shape\"\n", req->file);
		return 0;
	}
	ret = rls_fq_ensure(dev, ifindex, longest, err, sizeof(err));
	if (ret < 0)
		rls_error("%s; nothing changed", err);
	return ret;
}

static int load_on(const struct load_request *req, struct table_parse *tp, const char *dev,
		   bool parse_along)
{
	const struct rls_table *table = &tp->table;
	struct rls_map_reading *reading = NULL;
	struct pinned_reading pinned;
	struct load_request resolved = *req;
	struct rls_apply_result result;
	struct rlshape_bpf *skel = NULL;
	pthread_t parser;
	bool parsing = false, reading_pinned = false, reload;
	struct rls_maps maps;
	char dir[256], err[1024];
	int ifindex, ret = 0, read_err = 0, fq_added = 0;

	if (parse_along)
		parsing = parse_table_beside(tp, &parser);
	ifindex = (int)if_nametoindex(dev);
	if (rls_pin_dir(dev, dir, sizeof(dir)))
		ret = -ENAMETOOLONG;
	reload = !ret && already_loaded(dir);
	if (resolved.side == RLS_SIDE_AS_LOADED)
		resolved.side = reload ? rls_loaded_side(dir) : RLS_SIDE_CLIENT;
	req = &resolved;
	if (ifindex && reload)
		reading_pinned = read_pinned_beside(&pinned, dir);
	if (ifindex && !ret)
		ret = data_path_load(&skel, dir);
	if (reading_pinned)
		read_pinned_join(&pinned, &reading);
	if (ifindex && !ret) {
		rls_maps_from_skeleton(skel, &maps);
		if (!reading)
			read_err = rls_read_maps(&maps, &reading);
	}
	if (parsing)
		pthread_join(parser, NULL);
	if (tp->ret) {
		fprintf(stderr, "%s\n", tp->err);
		goto fail;
	}
	if (!ifindex) {
		rls_error("no such interface \"%s\"; `ip link` lists them (give --dev or set "
			  "listen.dev in %s)", dev, req->file);
		goto fail;
	}
	/* One side per interface: both would share its TC hooks, and its pins. */
	if (reload && rls_loaded_side(dir) != req->side) {
		rls_error("rlshape is loaded on %s on the %s side; `rlshape unload --dev %s` "
			  "first to load it on the %s side; nothing changed", dev,
			  sides[rls_loaded_side(dir)].name, dev, sides[req->side].name);
		goto fail;
	}
	if (req->side == RLS_SIDE_UPSTREAM && req->xdp_flags) {
		rls_error("--mode is the XDP mode of the client side; the upstream side on %s "
			  "attaches no XDP program; nothing changed", dev);
		goto fail;
	}
	if (ret == -ENAMETOOLONG || (!ret && (ret = rls_prepare_pin_dir(dir)))) {
		rls_error("cannot create %s/%s: %s (is this root, with the BPF filesystem?)",
			  RLS_PIN_ROOT, dev, strerror(-ret));
		goto fail;
	}
	if (ret) {
		rls_error("cannot load the BPF programs for %s: %s%s", dev, strerror(-ret),
			  reload ? " (the maps pinned by an older rlshape may not fit this one: "
				   "`rlshape unload --dev IFACE` drops them, with their counters)"
				 : " (run with RLSHAPE_DEBUG=1 for the verifier's log)");
		goto fail;
	}
	ret = pin_new_state_maps(skel->obj, dir);
	if (ret) {
		rls_error("cannot pin the maps of %s under %s: %s", dev, dir, strerror(-ret));
		goto unpin;
	}
	if (read_err) {
		rls_error("%s: cannot read the live names: %s; nothing changed", req->file,
			  strerror(-read_err));
		goto unpin;
	}
	fq_added = prepare_shaping(req, table, dev, ifindex);
	if (fq_added < 0)
		goto unpin;
	if (rls_apply_read_table(&maps, reading, table, &result, err, sizeof(err))) {
		rls_error("%s: %s; nothing changed", req->file, err);
		goto unpin;
	}
	if (attach_side(skel, req, ifindex, dir, dev))
		goto unpin;
	remove_stale_scratch_pins(skel->obj, dir);
	printf("rlshape: %s %s on %s%s: %zu accounts, %zu models, %zu keys, %zu CIDRs "
	       "(generation %u%s)\n", reload ? "reloaded" : "loaded", req->file, dev,
	       req->side == RLS_SIDE_UPSTREAM ? " (upstream side)" : "",
	       result.nr_accounts, result.nr_models, result.nr_keys, result.nr_cidrs,
	       result.generation, reload ? ", counters kept" : "");
	if (result.overflow_missing)
		fprintf(stderr, "rlshape: warning: rls_anon_counters is full: %zu model(s) have no "
			"overflow counter, so new unknown clients of them get 429 until a load finds "
			"room (it removes idle counters)\n", result.overflow_missing);
	rls_map_reading_free(reading);
	rlshape_bpf__destroy(skel);
	return 0;
unpin:
	if (fq_added > 0)
		rls_fq_remove_ours(ifindex, err, sizeof(err));
	if (!reload)
		remove_fresh_pins(skel, dir);
fail:
	rls_map_reading_free(reading);
	rlshape_bpf__destroy(skel);
	return 1;
}

int rls_cmd_load(int argc, char **argv)
{
	struct load_request req = { .side = RLS_SIDE_AS_LOADED };
	struct table_parse tp = {};
	const char *dev;
	int ret;

	ret = rls_opts_parse(&load_spec, argc, argv, &req);
	if (ret != RLS_OPTS_OK)
		return rls_opts_exit_code(ret);
	tp.file = req.file;
	if (req.dev) {
		ret = load_on(&req, &tp, req.dev, true);
		rls_table_free(&tp.table);
		return ret;
	}
	/* The interface is the table's listen.dev: the table comes first. */
	parse_table(&tp);
	if (tp.ret) {
		fprintf(stderr, "%s\n", tp.err);
		return 1;
	}
	dev = tp.table.dev[0] ? tp.table.dev : NULL;
	if (!dev) {
		rls_error("%s: which interface? give --dev IFACE, or set listen.dev in the table",
			  req.file);
		rls_table_free(&tp.table);
		return 1;
	}
	ret = load_on(&req, &tp, dev, false);
	rls_table_free(&tp.table);
	return ret;
}
