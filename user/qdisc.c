// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The root qdisc shaping needs: read, checked, put there and taken away (qdisc.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>

#include "qdisc.h"

/* Larger than any one qdisc's dump message; the kernel sizes a dump's messages to it. */
#define RLS_NETLINK_BUFFER 32768

static int fq_option(const struct nlattr *a, void *data)
{
	struct rls_root_qdisc *q = data;

	if (mnl_attr_get_type(a) == TCA_FQ_HORIZON && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
		q->horizon_us = mnl_attr_get_u32(a);
	if (mnl_attr_get_type(a) == TCA_FQ_HORIZON_DROP && mnl_attr_validate(a, MNL_TYPE_U8) == 0)
		q->horizon_drop = mnl_attr_get_u8(a);
	return MNL_CB_OK;
}

/* The kernel writes TCA_KIND before TCA_OPTIONS, so the options are read knowing the kind. */
static int qdisc_attr(const struct nlattr *a, void *data)
{
	struct rls_root_qdisc *q = data;

	if (mnl_attr_get_type(a) == TCA_KIND && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
		snprintf(q->kind, sizeof(q->kind), "%s", mnl_attr_get_str(a));
	if (mnl_attr_get_type(a) == TCA_OPTIONS && !strcmp(q->kind, "fq"))
		mnl_attr_parse_nested(a, fq_option, q);
	return MNL_CB_OK;
}

struct root_search {
	int ifindex;
	struct rls_root_qdisc *out;
};

static int on_qdisc(const struct nlmsghdr *nlh, void *data)
{
	struct root_search *r = data;
	const struct tcmsg *tcm = mnl_nlmsg_get_payload(nlh);

	if (tcm->tcm_ifindex != r->ifindex || tcm->tcm_parent != TC_H_ROOT)
		return MNL_CB_OK;
	memset(r->out, 0, sizeof(*r->out));
	r->out->handle = tcm->tcm_handle;
	return mnl_attr_parse(nlh, sizeof(*tcm), qdisc_attr, r->out) < 0 ? MNL_CB_ERROR
									  : MNL_CB_OK;
}

/*
 * Send one request and read its answer (a dump's messages to cb, or the ACK). Returns 0, or
 * -errno (the kernel's answer) with a message in err.
 */
static int talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data, const char *what, char *err,
		size_t err_len)
{
	static char buf[RLS_NETLINK_BUFFER];
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	unsigned int portid, seq = (unsigned int)time(NULL);
	int ret = -1;

	nlh->nlmsg_seq = seq;
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		goto out;
	portid = mnl_socket_get_portid(nl);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		goto out;
	while ((ret = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		ret = mnl_cb_run(buf, (size_t)ret, seq, portid, cb, data);
		if (ret <= MNL_CB_STOP)
			break;
	}
out:
	if (ret < 0) {
		ret = -errno;
		snprintf(err, err_len, "%s: %s", what, strerror(-ret));
	}
	if (nl)
		mnl_socket_close(nl);
	return ret < 0 ? ret : 0;
}

static struct tcmsg *start_request(char *buf, __u16 type, __u16 flags, int ifindex)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct tcmsg *tcm;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	tcm = mnl_nlmsg_put_extra_header(nlh, sizeof(*tcm));
	tcm->tcm_family = AF_UNSPEC;
	tcm->tcm_ifindex = ifindex;
	return tcm;
}

int rls_root_qdisc(int ifindex, struct rls_root_qdisc *out, char *err, size_t err_len)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct root_search r = { .ifindex = ifindex, .out = out };

	memset(out, 0, sizeof(*out));
	start_request(buf, RTM_GETQDISC, NLM_F_DUMP, ifindex);
	return talk((struct nlmsghdr *)buf, on_qdisc, &r, "reading the root qdisc (RTM_GETQDISC)",
		    err, err_len);
}

int rls_fq_ensure(const char *dev, int ifindex, __u64 max_delay_ns, char *err, size_t err_len)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct rls_root_qdisc q;
	struct tcmsg *tcm;
	int ret;

	if (rls_root_qdisc(ifindex, &q, err, err_len))
		return -1;
	if (!strcmp(q.kind, "fq")) {
		/* fq sends no packet later than now + horizon: it drops it, or sends it sooner. */
		if (q.horizon_us && (__u64)q.horizon_us * 1000 <= max_delay_ns) {
			snprintf(err, err_len,
				 "%s: fq's horizon is %u ms, not past the table's longest "
				 "max_delay_ms %llu: fq would %s delayed requests; run `tc qdisc "
				 "change dev %s root fq horizon 10s`", dev, q.horizon_us / 1000,
				 (unsigned long long)(max_delay_ns / 1000000),
				 q.horizon_drop ? "drop" : "send early", dev);
			return -1;
		}
		return 0;
	}
	if (q.handle != 0) {
		snprintf(err, err_len,
			 "%s: the root qdisc is %s (handle %x:), not the kernel's default: shaping "
			 "needs fq there, the only qdisc that holds a packet to its departure time; "
			 "run `tc qdisc replace dev %s root fq`, or remove \"shape\" from the table",
			 dev, q.kind, q.handle >> 16, dev);
		return -1;
	}
	tcm = start_request(buf, RTM_NEWQDISC, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, ifindex);
	tcm->tcm_parent = TC_H_ROOT;
	tcm->tcm_handle = RLS_FQ_HANDLE;
	mnl_attr_put_strz((struct nlmsghdr *)buf, TCA_KIND, "fq");
	ret = talk((struct nlmsghdr *)buf, NULL, NULL, "attaching fq (RTM_NEWQDISC)", err, err_len);
	if (ret == -ENOENT)
		snprintf(err, err_len,
			 "%s: this kernel has no fq qdisc (CONFIG_NET_SCH_FQ, module sch_fq), the "
			 "only one that holds a packet to its departure time: load sch_fq, or remove "
			 "\"shape\" from the table", dev);
	return ret ? -1 : 1;
}

int rls_fq_remove_ours(int ifindex, char *err, size_t err_len)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct rls_root_qdisc q;
	struct tcmsg *tcm;

	if (rls_root_qdisc(ifindex, &q, err, err_len))
		return -1;
	if (strcmp(q.kind, "fq") || q.handle != RLS_FQ_HANDLE)
		return 0;
	tcm = start_request(buf, RTM_DELQDISC, NLM_F_ACK, ifindex);
	tcm->tcm_parent = TC_H_ROOT;
	tcm->tcm_handle = RLS_FQ_HANDLE;
	if (talk((struct nlmsghdr *)buf, NULL, NULL, "removing rlshape's fq (RTM_DELQDISC)", err,
		 err_len))
		return -1;
	return 1;
}
