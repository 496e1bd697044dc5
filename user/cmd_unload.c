// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <net/if.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "maps.h"
#include "qdisc.h"
#include "rlshape.skel.h"

struct unload_request {
	const char *dev;
};

static const struct rls_opt unload_opts[] = {
	RLS_OPT_DEV(struct unload_request, dev, "the interface to detach from"),
	{ NULL },
};

static const struct rls_cmd_spec unload_spec = {
	.name = "unload",
	.description =
		"Detaches rlshape from IFACE (either side) and removes its pins under\n"
		RLS_PIN_ROOT "/IFACE/: the programs, the link and every map, counters included.\n"
		"--dev may be left out when rlshape is loaded on one interface only.\n",
	.opts = unload_opts,
};

/* Removing the link's pin drops its last reference, which detaches the program. */
static int unpin(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (unlink(path) && errno != ENOENT) {
		rls_error("cannot remove %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * rlshape's filters go, on egress and (the upstream side's) ingress; the clsact qdisc stays,
 * empty and harmless, since another program may have filters on it too.
 */
static void detach_tc(const char *dev)
{
	int ifindex = (int)if_nametoindex(dev);
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = RLS_TC_HANDLE, .priority = RLS_TC_PRIORITY);

	if (!ifindex)
		return;
	bpf_tc_detach(&hook, &opts);
	hook.attach_point = BPF_TC_INGRESS;
	bpf_tc_detach(&hook, &opts);
}

/* The fq a shaping load put at the root (qdisc.h); any other root qdisc is left as it is. */
static int remove_fq(const char *dev)
{
	int ifindex = (int)if_nametoindex(dev);
	char err[256];

	if (!ifindex || rls_fq_remove_ours(ifindex, err, sizeof(err)) >= 0)
		return 0;
	rls_error("%s: %s", dev, err);
	return 1;
}

/*
 * Pins are seen from every network namespace, interfaces only from their own: an unload run
 * elsewhere would remove the pins and leave the TC program attached. The XDP link knows its
 * ifindex; the interface of that name here must be the one.
 */
static int in_this_namespace(const char *dev, const char *dir)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info), here;
	char path[512];
	int link;

	snprintf(path, sizeof(path), "%s/%s", dir, RLS_LINK_PIN);
	link = bpf_obj_get(path);
	if (link < 0)
		return 0; /* no link: nothing attached to tell by */
	if (bpf_obj_get_info_by_fd(link, &info, &len)) {
		close(link);
		return 0;
	}
	close(link);
	here = if_nametoindex(dev);
	if (here == info.xdp.ifindex)
		return 0;
	rls_error("rlshape on %s is attached to ifindex %u of another network namespace (%s here): "
		  "run unload in the interface's namespace, e.g. `nsenter --net=/var/run/netns/NS "
		  "rlshape unload --dev %s`; nothing was changed",
		  dev, info.xdp.ifindex, here ? "the interface of that name is another one"
					       : "no interface of that name",
		  dev);
	return -1;
}

/* The maps' pins are those of the maps of the object this rlshape loads: opened, never loaded. */
static int unpin_maps(const char *dir)
{
	struct rlshape_bpf *skel = rlshape_bpf__open();
	int failed;

	if (!skel) {
		rls_error("cannot open rlshape's BPF object to find its maps: %s", strerror(errno));
		return -1;
	}
	failed = rls_unpin_maps(skel->obj, dir);
	rlshape_bpf__destroy(skel);
	return failed;
}

int rls_cmd_unload(int argc, char **argv)
{
	struct unload_request req = { 0 };
	char dev[64], dir[256];
	enum rls_opts_result ret;
	int failed = 0;

	ret = rls_opts_parse(&unload_spec, argc, argv, &req);
	if (ret != RLS_OPTS_OK)
		return rls_opts_exit_code(ret);
	if (rls_choose_dev(req.dev, dev, sizeof(dev)) || rls_pin_dir(dev, dir, sizeof(dir)))
		return 1;
	if (access(dir, F_OK)) {
		rls_error("rlshape is not loaded on %s (no %s); `rlshape status` shows where it is",
			  dev, dir);
		return 1;
	}
	if (in_this_namespace(dev, dir))
		return 1;
	/* The upstream side has no link to tell its interface by: its filters go with it. */
	if (rls_loaded_side(dir) == RLS_SIDE_UPSTREAM && !if_nametoindex(dev))
		fprintf(stderr, "rlshape: warning: no interface %s in this network namespace: if it "
			"is in another, its TC filters stay there until it goes (run unload in its "
			"namespace, e.g. `nsenter --net=/var/run/netns/NS rlshape unload --dev %s`); "
			"the pins are removed\n", dev, dev);
	failed |= unpin(dir, RLS_LINK_PIN);
	detach_tc(dev);
	failed |= remove_fq(dev);
	failed |= unpin(dir, RLS_PROG_PIN);
	failed |= unpin(dir, RLS_TC_PIN);
	failed |= unpin(dir, RLS_UPSTREAM_PIN);
	failed |= unpin(dir, RLS_SETTLE_PIN);
	failed |= unpin(dir, RLS_FLEET_LEASE_PIN);
	failed |= unpin_maps(dir);
	if (rmdir(dir)) {
		rls_error("cannot remove %s: %s (something else is pinned there)", dir, strerror(errno));
		return 1;
	}
	rmdir(RLS_PIN_ROOT); /* only when no other interface uses it */
	if (failed)
		return 1;
	printf("rlshape: unloaded from %s\n", dev);
	return 0;
}
