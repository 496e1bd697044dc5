/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The names `rlshape stats` and the metrics endpoint give the data path's counters: one list,
 * so that a dashboard's label and a terminal's column say the same.
 */
#ifndef RLS_USER_STAT_NAMES_H
#define RLS_USER_STAT_NAMES_H

#include "rlshape.h"

/* enum rls_reason -> "rps", "rpm", ...; [RLS_REASON_NONE] is NULL. */
extern const char *const rls_reason_names[RLS_NR_REASONS];

/* enum rls_packet_event -> "seen", "requests", ... */
extern const char *const rls_packet_event_names[RLS_NR_PACKET_EVENTS];

/* One CPU's rls_stats added into a sum: both readers add them alike. */
void rls_stats_add(struct rls_stats *sum, const struct rls_stats *one);

#endif /* RLS_USER_STAT_NAMES_H */
