/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The HTTP endpoint `rlshape daemon` serves /metrics on: libmicrohttpd, in a thread of its
 * own, so a scrape (or a slow scraper) never holds up settlement. One connection is served
 * at a time, a few wait, and an idle one is closed after 10 s.
 */
#ifndef RLS_USER_METRICS_HTTP_H
#define RLS_USER_METRICS_HTTP_H

#include <stddef.h>
#include <sys/socket.h>

#include "metrics.h"

#define RLS_METRICS_DEFAULT_LISTEN "127.0.0.1:9473"

struct rls_metrics_server;

/*
 * "ADDR:PORT" (IPv4), "[ADDR]:PORT" (IPv6) or "none" (*off = 1) into ss. Returns 0, or -1
 * with what is wrong in err.
 */
int rls_metrics_parse_listen(const char *text, struct sockaddr_storage *ss, int *off, char *err,
			     size_t err_len);

/*
 * Listens on ss and serves GET /metrics from cfg (which must outlive the server). Returns the
 * server, or NULL with why in err.
 */
struct rls_metrics_server *rls_metrics_serve(const struct sockaddr_storage *ss,
					     const struct rls_metrics_config *cfg, char *err,
					     size_t err_len);
void rls_metrics_stop(struct rls_metrics_server *s);

#endif /* RLS_USER_METRICS_HTTP_H */
