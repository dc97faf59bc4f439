/* SPDX-License-Identifier: MIT */
/*
 * GET /api/sql/top and GET /api/sql/findings (docs/api.md), and the SQL
 * sections of GET /api/requests/ID and GET /api/endpoints.
 *
 * Design: everything comes from the queries table (docs/schema.md, "Version
 * 4") through its indexes: the run's statements grouped by fingerprint
 * (queries_fingerprint), one request's statements (queries_request). The cost
 * of top and findings grows with the number of statements of the run, not
 * with the database; percentiles are exact (the sorted durations of one
 * fingerprint, for the `limit` statements shown only). A database from before
 * schema v4 has no SQL: the sections are left out, top and findings are empty.
 */
#include "api.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define TOP_DEFAULT 20
#define TOP_MAX 200
#define ENDPOINTS_MAX 20 /* endpoints listed per statement */
#define FINDINGS_MAX 50	 /* rows per kind of finding */
#define NPLUS1_MIN 5	 /* executions of one statement in one request */
#define SLOW_DEFAULT_MS 100
#define REQUEST_SQL_MAX 1000 /* statements listed for one request */

bool api_has_table(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	bool has = false;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		has = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return has;
}

/* A fingerprint as 16 hex digits (libpg_query's fingerprint string form). */
static void add_fp(cJSON *o, int64_t fp)
{
	char buf[20];

	snprintf(buf, sizeof(buf), "%016" PRIx64, (uint64_t)fp);
	cJSON_AddStringToObject(o, "fingerprint", buf);
}

static void add_text(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);

	if (t)
		cJSON_AddStringToObject(o, name, t);
	else
		cJSON_AddNullToObject(o, name);
}

static void add_int_or_null(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddNumberToObject(o, name, (double)sqlite3_column_int64(st, col));
}

static void add_ms_col(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		cJSON_AddNullToObject(o, name);
	else
		api_add_ms(o, name, sqlite3_column_int64(st, col));
}

/* The endpoints (method + route) whose requests ran fingerprint fp. */
static int top_endpoints(struct api_ctx *c, int64_t run_id, int64_t fp, cJSON *o)
{
	sqlite3_stmt *st = NULL;
	cJSON *arr, *e;
	int rc;

	if (sqlite3_prepare_v2(c->db,
			       "SELECT r.method, r.route, count(*) FROM queries q"
			       " JOIN requests r ON r.id = q.request_id"
			       " WHERE q.run_id = ? AND q.fingerprint = ?"
			       " GROUP BY r.method, r.route ORDER BY 3 DESC, 1, 2 LIMIT ?",
			       -1, &st, NULL) != SQLITE_OK)
		return api_db_fail(c, "listing endpoints of a statement");
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, fp);
	sqlite3_bind_int(st, 3, ENDPOINTS_MAX);
	arr = cJSON_AddArrayToObject(o, "endpoints");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		e = cJSON_CreateObject();
		add_text(e, "method", st, 0);
		add_text(e, "route", st, 1);
		cJSON_AddNumberToObject(e, "count", (double)sqlite3_column_int64(st, 2));
		cJSON_AddItemToArray(arr, e);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : api_db_fail(c, "listing endpoints of a statement");
}

/* Exact p95 of the timed executions of fp (timed of them): rank ceil(0.95 n). */
static int top_p95(struct api_ctx *c, int64_t run_id, int64_t fp, int64_t timed, cJSON *o)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (timed <= 0) {
		cJSON_AddNullToObject(o, "p95_ms");
		return 0;
	}
	if (sqlite3_prepare_v2(
		c->db,
		"SELECT duration_ns FROM queries WHERE run_id = ? AND fingerprint = ?"
		" AND duration_ns IS NOT NULL ORDER BY duration_ns LIMIT 1 OFFSET ?",
		-1, &st, NULL) != SQLITE_OK)
		return api_db_fail(c, "computing a percentile");
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, fp);
	sqlite3_bind_int64(st, 3, (timed * 95 + 99) / 100 - 1);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		api_add_ms(o, "p95_ms", sqlite3_column_int64(st, 0));
	else
		cJSON_AddNullToObject(o, "p95_ms");
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : api_db_fail(c, "computing a percentile");
}

static int sql_top(struct api_ctx *c)
{
	sqlite3_stmt *st = NULL;
	int64_t run_id, limit = TOP_DEFAULT, fp, timed;
	cJSON *arr, *o;
	int rc, ret;

	ret = api_int_param(c, "limit", 1, TOP_MAX, &limit);
	if (ret > 1)
		return ret;
	ret = api_run_id(c, &run_id);
	if (ret)
		return ret;
	c->out = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(c->out, "statements");
	if (!api_has_table(c->db, "queries"))
		return 200;
	if (sqlite3_prepare_v2(c->db,
			       "SELECT fingerprint, count(*), count(duration_ns),"
			       " coalesce(sum(duration_ns), 0), sum(max(rows, 0)), count(error),"
			       " max(statement) FROM queries WHERE run_id = ?"
			       " GROUP BY fingerprint ORDER BY 4 DESC, 2 DESC, 1 LIMIT ?",
			       -1, &st, NULL) != SQLITE_OK)
		return api_db_fail(c, "listing statements");
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, o);
		fp = sqlite3_column_int64(st, 0);
		timed = sqlite3_column_int64(st, 2);
		add_text(o, "statement", st, 6);
		add_fp(o, fp);
		cJSON_AddNumberToObject(o, "count", (double)sqlite3_column_int64(st, 1));
		api_add_ms(o, "total_ms", sqlite3_column_int64(st, 3));
		if (timed)
			api_add_ms(o, "mean_ms", sqlite3_column_int64(st, 3) / timed);
		else
			cJSON_AddNullToObject(o, "mean_ms");
		ret = top_p95(c, run_id, fp, timed, o);
		add_int_or_null(o, "rows", st, 4);
		cJSON_AddNumberToObject(o, "errors", (double)sqlite3_column_int64(st, 5));
		if (!ret)
			ret = top_endpoints(c, run_id, fp, o);
		if (ret) {
			sqlite3_finalize(st);
			return ret;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 200 : api_db_fail(c, "listing statements");
}

/* Run sql (bound: ?1 run, ?2 a number, ?3 FINDINGS_MAX) and add one object per
 * row to arr, columns named by cols (a NULL name skips the column; names ending
 * "_ms" are durations in ns, "fingerprint" a fingerprint). */
static int findings(struct api_ctx *c, const char *sql, int64_t run_id, int64_t num,
		    const char *const *cols, int ncols, cJSON *arr)
{
	sqlite3_stmt *st = NULL;
	size_t len;
	cJSON *o;
	int rc, i;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return api_db_fail(c, "listing findings");
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, num);
	sqlite3_bind_int(st, 3, FINDINGS_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		for (i = 0; i < ncols; i++) {
			len = strlen(cols[i]);
			if (!strcmp(cols[i], "fingerprint"))
				add_fp(o, sqlite3_column_int64(st, i));
			else if (len > 3 && !strcmp(cols[i] + len - 3, "_ms"))
				add_ms_col(o, cols[i], st, i);
			else if (sqlite3_column_type(st, i) == SQLITE_TEXT)
				add_text(o, cols[i], st, i);
			else
				add_int_or_null(o, cols[i], st, i);
		}
		cJSON_AddItemToArray(arr, o);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : api_db_fail(c, "listing findings");
}

static int sql_findings(struct api_ctx *c)
{
	static const char *const nplus1_cols[] = {"request_id",	 "method",    "route", "path",
						  "fingerprint", "statement", "count", "total_ms"};
	static const char *const slow_cols[] = {"request_id", "method",	     "route", "fingerprint",
						"statement",  "duration_ms", "rows"};
	static const char *const err_cols[] = {"fingerprint", "statement", "sqlstate",
					       "error",	      "count",	   "request_id"};
	int64_t run_id, slow_ms = SLOW_DEFAULT_MS;
	cJSON *nplus1, *slow, *errs;
	int ret;

	ret = api_int_param(c, "slow_ms", 0, 86400000, &slow_ms);
	if (ret > 1)
		return ret;
	ret = api_run_id(c, &run_id);
	if (ret)
		return ret;
	c->out = cJSON_CreateObject();
	nplus1 = cJSON_AddArrayToObject(c->out, "n_plus_1");
	cJSON_AddNumberToObject(c->out, "slow_ms", (double)slow_ms);
	slow = cJSON_AddArrayToObject(c->out, "slow");
	errs = cJSON_AddArrayToObject(c->out, "errors");
	if (!api_has_table(c->db, "queries"))
		return 200;
	ret = findings(c,
		       "SELECT g.request_id, r.method, r.route, r.path, g.fingerprint, g.statement,"
		       " g.n, g.total FROM (SELECT request_id, fingerprint, count(*) AS n,"
		       " sum(duration_ns) AS total, max(statement) AS statement FROM queries"
		       " WHERE run_id = ?1 AND request_id IS NOT NULL"
		       " GROUP BY request_id, fingerprint HAVING count(*) >= ?2) g"
		       " LEFT JOIN requests r ON r.id = g.request_id"
		       " ORDER BY g.n DESC, g.request_id LIMIT ?3",
		       run_id, NPLUS1_MIN, nplus1_cols, 8, nplus1);
	if (!ret)
		ret = findings(c,
			       "SELECT q.request_id, r.method, r.route, q.fingerprint, q.statement,"
			       " q.duration_ns, q.rows FROM queries q"
			       " LEFT JOIN requests r ON r.id = q.request_id"
			       " WHERE q.run_id = ?1 AND q.duration_ns >= ?2 * 1000000"
			       " ORDER BY q.duration_ns DESC, q.id LIMIT ?3",
			       run_id, slow_ms, slow_cols, 7, slow);
	if (!ret)
		ret = findings(c,
			       "SELECT fingerprint, max(statement), sqlstate, max(error), count(*),"
			       " max(request_id) FROM queries"
			       " WHERE run_id = ?1 AND error IS NOT NULL"
			       " GROUP BY fingerprint, sqlstate ORDER BY 5 DESC, 1 LIMIT ?3",
			       run_id, 0, err_cols, 6, errs);
	return ret ? ret : 200;
}

int api_sql(struct api_ctx *c)
{
	if (!strcmp(c->rest, "/top"))
		return sql_top(c);
	if (!strcmp(c->rest, "/findings"))
		return sql_findings(c);
	return api_fail(c, 404, "no such API");
}

/* The request's start, sql_count and sql_ns. Returns 0 or a status. */
static int request_sql_row(struct api_ctx *c, int64_t id, int64_t *start, sqlite3_stmt **out)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(c->db,
			       "SELECT start_ns, sql_count, sql_ns FROM requests WHERE id = ?", -1,
			       &st, NULL) != SQLITE_OK)
		return api_db_fail(c, "reading the request");
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return api_db_fail(c, "reading the request");
	}
	*start = sqlite3_column_int64(st, 0);
	*out = st;
	return 0;
}

int api_request_sql(struct api_ctx *c, int64_t request_id, cJSON *req)
{
	sqlite3_stmt *rq = NULL, *st = NULL;
	int64_t start = 0, n = 0, sum = 0;
	cJSON *arr = NULL, *o;
	int rc, ret;

	if (!api_has_table(c->db, "queries"))
		return 0;
	ret = request_sql_row(c, request_id, &start, &rq);
	if (ret)
		return ret;
	if (sqlite3_prepare_v2(c->db,
			       "SELECT start_ns, duration_ns, statement, rows, error, sqlstate,"
			       " fingerprint, command FROM queries WHERE request_id = ?"
			       " ORDER BY start_ns, id LIMIT ?",
			       -1, &st, NULL) != SQLITE_OK) {
		ret = api_db_fail(c, "reading statements");
		goto out;
	}
	sqlite3_bind_int64(st, 1, request_id);
	sqlite3_bind_int(st, 2, REQUEST_SQL_MAX + 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!arr)
			arr = cJSON_CreateArray();
		if (++n > REQUEST_SQL_MAX)
			break;
		o = cJSON_CreateObject();
		api_add_ms(o, "start_ms", sqlite3_column_int64(st, 0) - start);
		add_ms_col(o, "duration_ms", st, 1);
		sum += sqlite3_column_int64(st, 1);
		add_text(o, "statement", st, 2);
		add_int_or_null(o, "rows", st, 3);
		add_text(o, "error", st, 4);
		add_text(o, "sqlstate", st, 5);
		add_fp(o, sqlite3_column_int64(st, 6));
		add_text(o, "command", st, 7);
		cJSON_AddItemToArray(arr, o);
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		cJSON_Delete(arr);
		ret = api_db_fail(c, "reading statements");
		goto out;
	}
	if (!arr && sqlite3_column_type(rq, 1) == SQLITE_NULL)
		goto out; /* no SQL seen for this request */
	cJSON_AddItemToObject(req, "sql", arr ? arr : cJSON_CreateArray());
	cJSON_AddBoolToObject(req, "sql_truncated", n > REQUEST_SQL_MAX);
	if (sqlite3_column_type(rq, 1) != SQLITE_NULL) {
		cJSON_AddNumberToObject(req, "sql_count", (double)sqlite3_column_int64(rq, 1));
		api_add_ms(req, "sql_ms", sqlite3_column_int64(rq, 2));
	} else {
		cJSON_AddNumberToObject(req, "sql_count", (double)n);
		api_add_ms(req, "sql_ms", sum);
	}
out:
	sqlite3_finalize(st);
	sqlite3_finalize(rq);
	return ret;
}

static cJSON *find_endpoint(cJSON *arr, const char *method, const char *route)
{
	cJSON *e, *m, *r;

	cJSON_ArrayForEach(e, arr)
	{
		m = cJSON_GetObjectItemCaseSensitive(e, "method");
		r = cJSON_GetObjectItemCaseSensitive(e, "route");
		if (!cJSON_IsString(m) || strcmp(m->valuestring, method) != 0)
			continue;
		if (cJSON_IsString(r) ? !strcmp(r->valuestring, route) : !route[0])
			return e;
	}
	return NULL;
}

int api_endpoints_sql(struct api_ctx *c, int64_t run_id, cJSON *arr)
{
	sqlite3_stmt *st = NULL;
	cJSON *e, *cnt;
	double n;
	int rc;

	if (!api_has_table(c->db, "queries"))
		return 0;
	/* cheap gate (queries_run index): no statement in the run, no columns */
	if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM queries WHERE run_id = ? LIMIT 1", -1, &st,
			       NULL) != SQLITE_OK)
		return api_db_fail(c, "reading statements");
	sqlite3_bind_int64(st, 1, run_id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 0 : api_db_fail(c, "reading statements");
	/* means over every request of the endpoint: no sql_count = no SQL */
	if (sqlite3_prepare_v2(c->db,
			       "SELECT method, coalesce(route, ''), sum(sql_count),"
			       " coalesce(sum(sql_ns), 0) FROM requests"
			       " WHERE run_id = ? AND sql_count IS NOT NULL"
			       " GROUP BY method, coalesce(route, '')",
			       -1, &st, NULL) != SQLITE_OK)
		return api_db_fail(c, "summing statements");
	sqlite3_bind_int64(st, 1, run_id);
	cJSON_ArrayForEach(e, arr)
	{
		cJSON_AddNumberToObject(e, "mean_sql_ms", 0);
		cJSON_AddNumberToObject(e, "sql_count", 0);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		e = find_endpoint(arr, (const char *)sqlite3_column_text(st, 0),
				  (const char *)sqlite3_column_text(st, 1));
		cnt = e ? cJSON_GetObjectItemCaseSensitive(e, "count") : NULL;
		n = cnt && cJSON_IsNumber(cnt) ? cnt->valuedouble : 0;
		if (n <= 0)
			continue;
		cJSON_ReplaceItemInObjectCaseSensitive(
		    e, "mean_sql_ms",
		    cJSON_CreateNumber(
			(double)((int64_t)((double)sqlite3_column_int64(st, 3) / n / 1000.0 +
					   0.5)) /
			1000.0));
		cJSON_ReplaceItemInObjectCaseSensitive(
		    e, "sql_count",
		    cJSON_CreateNumber(
			(double)((int64_t)((double)sqlite3_column_int64(st, 2) / n * 100.0 + 0.5)) /
			100.0));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : api_db_fail(c, "summing statements");
}
