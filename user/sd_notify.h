/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram to the socket
 * named by $NOTIFY_SOCKET, as the protocol is documented to be used by programs that do not
 * link the library. Without $NOTIFY_SOCKET (not started by systemd as Type=notify) it does
 * nothing.
 */
#ifndef RLS_USER_SD_NOTIFY_H
#define RLS_USER_SD_NOTIFY_H

/* Sends state ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..."). Returns 0 or -errno. */
int rls_sd_notify(const char *state);

#endif /* RLS_USER_SD_NOTIFY_H */
