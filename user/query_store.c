/* SPDX-License-Identifier: MIT */
/*
 * The queries table writer (query_store.h). A queued statement is copied
 * (only the used part of its text); the INSERT runs on the writer thread
 * inside the batch transaction, so a rolled back batch loses nothing twice.
 */
#include "cstr.h"
#include "query_store.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s[0])
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* The INSERT, prepared once per writer thread: each store has its own
 * writer thread, and tg_store__close finalizes every statement of its
 * connection (this one included) after that thread ended. Preparing it for
 * every statement cost more than the insert (SQLite's parser and code
 * generator were a fifth of the tracer's CPU on a database endpoint). */
static _Thread_local struct {
	sqlite3 *db;
	sqlite3_stmt *st;
} cached;

static int insert(sqlite3 *db, void *arg, int64_t run_id, uint64_t mono_to_epoch_ns)
{
	const struct tg_query *q = arg;
	sqlite3_stmt *st;
	int rc;

	if (cached.db != db) {
		cached.db = NULL;
		rc = sqlite3_prepare_v3(
		    db,
		    "INSERT INTO queries (run_id, request_id, pid, tid, conn_id, start_ns,"
		    " duration_ns, first_row_ns, statement, fingerprint, command, rows,"
		    " error, sqlstate, db_user, db_name, flags) VALUES"
		    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		    -1, SQLITE_PREPARE_PERSISTENT, &cached.st, NULL);
		if (rc != SQLITE_OK)
			return rc;
		cached.db = db;
	}
	st = cached.st;
	sqlite3_bind_int64(st, 1, run_id);
	if (q->request_id)
		sqlite3_bind_int64(st, 2, q->request_id);
	sqlite3_bind_int64(st, 3, q->pid);
	sqlite3_bind_int64(st, 4, q->tid);
	sqlite3_bind_int64(st, 5, (int64_t)q->conn_id);
	sqlite3_bind_int64(st, 6, (int64_t)(q->start_ns + mono_to_epoch_ns));
	sqlite3_bind_int64(st, 7, (int64_t)(q->end_ns - q->start_ns));
	if (q->first_row_ns >= q->start_ns && q->first_row_ns)
		sqlite3_bind_int64(st, 8, (int64_t)(q->first_row_ns - q->start_ns));
	sqlite3_bind_text(st, 9, q->statement, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, (int64_t)q->fingerprint);
	bind_text(st, 11, q->command);
	if (q->rows >= 0)
		sqlite3_bind_int64(st, 12, q->rows);
	bind_text(st, 13, q->error);
	bind_text(st, 14, q->sqlstate);
	bind_text(st, 15, q->db_user);
	bind_text(st, 16, q->db_name);
	sqlite3_bind_int64(st, 17, q->flags);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int tg_query_store__add(struct tg_store *s, const struct tg_query *q)
{
	size_t n = tg_strnlen(q->statement, TG_PG_TEXT_MAX - 1);
	struct tg_query *copy = malloc(sizeof(*copy) + n + 1);

	if (!copy)
		return -ENOMEM;
	*copy = *q; /* the text right after it, as sqltrack keeps it */
	memcpy(copy + 1, q->statement, n);
	((char *)(copy + 1))[n] = '\0';
	copy->statement = (const char *)(copy + 1);
	return tg_store__call(s, insert, copy, free);
}
