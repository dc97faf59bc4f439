/* SPDX-License-Identifier: MIT */
/*
 * Writes SQL statements (struct tg_query, sqltrack.h) into the queries table
 * (schema v4, docs/schema.md) through the store's writer thread
 * (tg_store__call), in order with the request rows queued around them.
 */
#ifndef TG_QUERY_STORE_H
#define TG_QUERY_STORE_H

#include "sqltrack.h"
#include "store.h"

/* Queue q (copied) for the current run: start_ns becomes Unix epoch ns,
 * duration_ns = end - start, first_row_ns relative to start (NULL when no
 * row), request_id NULL when 0, empty error/sqlstate/command/db_* NULL.
 * Returns 0 or -errno. */
int tg_query_store__add(struct tg_store *s, const struct tg_query *q);

#endif
