/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the API handlers (api.h): strict parameter parsing (any
 * malformed value is a 400, never a guess), run selection, and the JSON
 * conventions of docs/api.md (epoch ns as decimal strings, durations as
 * milliseconds with 3 decimals).
 */
#include "api.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "log.h"

int api_fail(struct api_ctx *c, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return status;
}

int api_db_fail(struct api_ctx *c, const char *what)
{
	tg_err("serve: %s: %s", what, sqlite3_errmsg(c->db));
	return api_fail(c, 500, "database error while %s: %s", what, sqlite3_errmsg(c->db));
}

int api_param(struct api_ctx *c, const char *name, char *buf, size_t len)
{
	int n;

	if (!c->query)
		return 0;
	n = mg_get_var(c->query, strlen(c->query), name, buf, len);
	if (n == -1)
		return 0;
	if (n < 0)
		return -1;
	return 1;
}

int api_int_param(struct api_ctx *c, const char *name, int64_t min, int64_t max, int64_t *v)
{
	char buf[32], *end;
	long long x;
	int r = api_param(c, name, buf, sizeof(buf));

	if (r == 0)
		return 0;
	if (r < 0 || !buf[0])
		return api_fail(c, 400, "bad %s: expected an integer", name);
	errno = 0;
	x = strtoll(buf, &end, 10);
	if (*end || errno || buf[0] == ' ' || buf[0] == '+')
		return api_fail(c, 400, "bad %s '%s': expected an integer", name, buf);
	if (x < min || x > max)
		return api_fail(c, 400, "bad %s %lld: expected %" PRId64 "..%" PRId64, name, x, min,
				max);
	*v = x;
	return 1;
}

int api_run_id(struct api_ctx *c, int64_t *run_id)
{
	sqlite3_stmt *st = NULL;
	int64_t id = 0;
	int r, rc;

	r = api_int_param(c, "run", 1, INT64_MAX, &id);
	if (r > 1)
		return r;
	if (r == 1)
		rc = sqlite3_prepare_v2(c->db, "SELECT id FROM runs WHERE id = ?", -1, &st, NULL);
	else
		rc = sqlite3_prepare_v2(c->db, "SELECT max(id) FROM runs", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return api_db_fail(c, "finding the run");
	if (r == 1)
		sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*run_id = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		return 0;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return api_db_fail(c, "finding the run");
	if (r == 1)
		return api_fail(c, 404, "no run %" PRId64, id);
	return api_fail(c, 404, "the database has no runs yet");
}

void api_add_ns(cJSON *o, const char *name, int64_t ns)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRId64, ns);
	cJSON_AddStringToObject(o, name, buf);
}

void api_add_ms(cJSON *o, const char *name, int64_t ns)
{
	cJSON_AddNumberToObject(o, name, round((double)ns / 1000.0) / 1000.0);
}

static void add_text_or_null(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);

	if (t)
		cJSON_AddStringToObject(o, name, t);
	else
		cJSON_AddNullToObject(o, name);
}

cJSON *api_run_json(sqlite3 *db, int64_t run_id)
{
	sqlite3_stmt *st = NULL;
	cJSON *o = NULL;

	if (sqlite3_prepare_v2(db,
			       "SELECT id, started, ended, targets, kernel, version, events,"
			       " dropped_events, (SELECT coalesce(sum(count), 0) FROM"
			       " rollup_endpoint WHERE run_id = runs.id) FROM runs WHERE id = ?",
			       -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, run_id);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	o = cJSON_CreateObject();
	if (!o)
		goto out;
	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
	api_add_ns(o, "started_ns", sqlite3_column_int64(st, 1));
	if (sqlite3_column_type(st, 2) == SQLITE_NULL)
		cJSON_AddNullToObject(o, "ended_ns");
	else
		api_add_ns(o, "ended_ns", sqlite3_column_int64(st, 2));
	add_text_or_null(o, "targets", st, 3);
	add_text_or_null(o, "kernel", st, 4);
	add_text_or_null(o, "version", st, 5);
	cJSON_AddNumberToObject(o, "events", (double)sqlite3_column_int64(st, 6));
	cJSON_AddNumberToObject(o, "dropped_events", (double)sqlite3_column_int64(st, 7));
	cJSON_AddNumberToObject(o, "requests", (double)sqlite3_column_int64(st, 8));
out:
	sqlite3_finalize(st);
	return o;
}
