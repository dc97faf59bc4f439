/* SPDX-License-Identifier: MIT */
/*
 * A row source for bulk inserts: an eponymous SQLite virtual table whose
 * rows are produced by a C callback, so that one
 *   INSERT INTO t (a, b, ...) SELECT a, b, ... FROM name
 * writes n rows in a single statement execution instead of binding,
 * stepping and resetting an INSERT once per row (the per-statement work:
 * bindings, VDBE start and halt, cursors opened and closed, was most of the
 * cost of a small row).
 */
#ifndef TG_ROWSRC_H
#define TG_ROWSRC_H

#include <stddef.h>

#include <sqlite3.h>

/* What a scan of the table returns: rows 0 .. n - 1, read when the
 * statement scans it (set n and ctx before each sqlite3_step). column(ctx,
 * row, col, out) sets column col of row with one sqlite3_result_*() call on
 * out; text and blobs must stay valid until the statement's step returns
 * (SQLITE_STATIC) or be copied (SQLITE_TRANSIENT). */
struct tg_rowsrc {
	size_t n;
	void *ctx;
	void (*column)(void *ctx, size_t row, int col, sqlite3_context *out);
};

/* Register the table name on db with the columns of schema (a CREATE TABLE
 * statement: "CREATE TABLE x(a, b)"; the table's name in it is ignored);
 * scans read *src, which must outlive db (or the next registration of
 * name). Returns an SQLite result code. */
int tg_rowsrc__register(sqlite3 *db, const char *name, const char *schema, struct tg_rowsrc *src);

#endif
