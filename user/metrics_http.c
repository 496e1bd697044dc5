// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <microhttpd.h>

#include "metrics_http.h"

#define CONNECTIONS_MAX  8  /* scrapers at once: Prometheus is one, a curl or two beside it */
#define IDLE_TIMEOUT_S   10

struct rls_metrics_server {
	struct MHD_Daemon *mhd;
	const struct rls_metrics_config *cfg;
};

int rls_metrics_parse_listen(const char *text, struct sockaddr_storage *ss, int *off, char *err,
			     size_t err_len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *port_text, *host_start = text;
	size_t host_len;
	unsigned long port;
	char *end;

	memset(ss, 0, sizeof(*ss));
	*off = !strcmp(text, "none");
	if (*off)
		return 0;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || close[1] != ':') {
			snprintf(err, err_len, "\"%s\": an IPv6 address is written [ADDR]:PORT", text);
			return -1;
		}
		host_start = text + 1;
		host_len = (size_t)(close - host_start);
		port_text = close + 2;
	} else {
		colon = strrchr(text, ':');
		if (!colon) {
			snprintf(err, err_len, "\"%s\": give ADDR:PORT, e.g. %s, or none", text,
				 RLS_METRICS_DEFAULT_LISTEN);
			return -1;
		}
		host_len = (size_t)(colon - text);
		port_text = colon + 1;
	}
	errno = 0;
	port = strtoul(port_text, &end, 10);
	if (!*port_text || *end || errno || port < 1 || port > 65535) {
		snprintf(err, err_len, "\"%s\": the port must be a number from 1 to 65535", text);
		return -1;
	}
	if (host_len >= sizeof(host)) {
		snprintf(err, err_len, "\"%s\": not an IP address", text);
		return -1;
	}
	memcpy(host, host_start, host_len);
	host[host_len] = '\0';
	if (text[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((unsigned short)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) == 1)
			return 0;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((unsigned short)port);
		if (inet_pton(AF_INET, host, &a->sin_addr) == 1)
			return 0;
	}
	snprintf(err, err_len, "\"%s\": \"%s\" is not an IP address (names are not looked up)",
		 text, host);
	return -1;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, char *body,
			     size_t len, const char *type)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned int status,
				  const char *text)
{
	char *body = strdup(text);

	return body ? reply(conn, status, body, strlen(body), "text/plain; charset=utf-8") : MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct rls_metrics_server *s = cls;
	struct rls_expo e;
	char msg[128];
	int ret;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (*upload_data_size)
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics\n");
	if (strcmp(url, "/metrics"))
		return reply_text(conn, MHD_HTTP_NOT_FOUND, "rlshape serves GET /metrics\n");
	if (rls_expo_init(&e, RLS_METRICS_MAX_BYTES))
		return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
	ret = rls_metrics_scrape(s->cfg, &e);
	if (ret) {
		rls_expo_free(&e);
		snprintf(msg, sizeof(msg), "rlshape is not loaded (%s): %s\n", s->cfg->pin_dir,
			 strerror(-ret));
		return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
	}
	rls_expo_finish(&e);
	/* The buffer goes to libmicrohttpd, which frees it once sent. */
	return reply(conn, MHD_HTTP_OK, e.buf, e.len, RLS_EXPO_CONTENT_TYPE);
}

struct rls_metrics_server *rls_metrics_serve(const struct sockaddr_storage *ss,
					     const struct rls_metrics_config *cfg, char *err,
					     size_t err_len)
{
	struct rls_metrics_server *s = calloc(1, sizeof(*s));
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD;
	sigset_t all, old;

	if (!s) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	s->cfg = cfg;
	if (ss->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The server's thread takes no signal: they are the settling loop's (SIGHUP, SIGTERM). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	errno = 0;
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ss,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTIONS_MAX,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)IDLE_TIMEOUT_S,
				  MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!s->mhd) {
		snprintf(err, err_len, "cannot listen: %s",
			 errno ? strerror(errno) : "libmicrohttpd refused to start");
		free(s);
		return NULL;
	}
	return s;
}

void rls_metrics_stop(struct rls_metrics_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->mhd);
	free(s);
}
