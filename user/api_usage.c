/* SPDX-License-Identifier: MIT */
/*
 * Per-request resources and process samples in the JSON API (docs/api.md,
 * schema v5): the "usage" section of GET /api/requests/ID and GET
 * /api/process.
 *
 * The usage section is one primary-key read of the request's row: the
 * stored figures, the decomposition of its wall time derived from them
 * (off-CPU = duration - CPU; what SQL, other services, the run queue, the
 * thread pool's queue and locks do not explain is "other" waiting), and its timeline blob unpacked
 * (store.h). /api/process reads process_stats through its (run_id, pid, ts)
 * index, one pass per process, keeping at most POINTS_MAX evenly spaced
 * points of each.
 */
#include "api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "request.h"
#include "store.h"

#define POINTS_MAX 2000

static const char *span_kind(uint8_t kind)
{
	switch (kind) {
	case TG_SPAN_RUN:
		return "run";
	case TG_SPAN_GC:
		return "gc";
	case TG_SPAN_POOL_WAIT:
		return "pool_wait";
	case TG_SPAN_NET:
		return "net_wait";
	}
	return "unknown";
}

static int64_t pos(int64_t v)
{
	return v > 0 ? v : 0;
}

static void add_ms_or_null(cJSON *o, const char *name, int64_t ns, bool have)
{
	if (have)
		api_add_ms(o, name, ns);
	else
		cJSON_AddNullToObject(o, name);
}

static void add_timeline(cJSON *u, const void *blob, size_t len)
{
	struct tg_span sp[TG_SPANS_MAX];
	cJSON *arr = cJSON_AddArrayToObject(u, "timeline"), *o;
	size_t n = tg_timeline__unpack(blob, len, sp, TG_SPANS_MAX), i;

	for (i = 0; arr && i < n; i++) {
		o = cJSON_CreateObject();
		if (!o)
			return;
		cJSON_AddStringToObject(o, "kind", span_kind(sp[i].kind));
		api_add_ms(o, "start_ms", (int64_t)sp[i].start_us * 1000);
		api_add_ms(o, "dur_ms", (int64_t)sp[i].dur_us * 1000);
		api_add_ms(o, "cpu_ms", (int64_t)sp[i].cpu_us * 1000);
		cJSON_AddNumberToObject(o, "tid", sp[i].tid);
		cJSON_AddItemToArray(arr, o);
	}
}

int api_request_usage(struct api_ctx *c, int64_t request_id, cJSON *req)
{
	sqlite3_stmt *st = NULL;
	int64_t dur, cpu, sql, runq, pool_wait, lock, net, offcpu, flags;
	bool timed;
	cJSON *u;
	int rc;

	if (sqlite3_prepare_v2(
		c->db,
		"SELECT usage_flags, duration_ns, coalesce(sql_ns, 0), cpu_ns,"
		" cpu_pool_ns, runq_ns, pool_wait_ns, minflt, majflt, heap_bytes,"
		" gc_count, gc_ns, timeline, coalesce(lock_ns, 0), coalesce(net_ns, 0)"
		" FROM requests"
		" WHERE id = ?",
		-1, &st, NULL) != SQLITE_OK)
		return api_db_fail(c, "reading the request's resources");
	sqlite3_bind_int64(st, 1, request_id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return api_db_fail(c, "reading the request's resources");
	}
	if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
		cJSON_AddNullToObject(req, "usage");
		sqlite3_finalize(st);
		return 0;
	}
	flags = sqlite3_column_int64(st, 0);
	timed = sqlite3_column_type(st, 1) != SQLITE_NULL;
	dur = sqlite3_column_int64(st, 1);
	sql = sqlite3_column_int64(st, 2);
	cpu = sqlite3_column_int64(st, 3);
	runq = sqlite3_column_int64(st, 5);
	pool_wait = sqlite3_column_int64(st, 6);
	lock = sqlite3_column_int64(st, 13);
	net = sqlite3_column_int64(st, 14);
	offcpu = pos(dur - cpu);

	u = cJSON_AddObjectToObject(req, "usage");
	api_add_ms(u, "cpu_ms", cpu);
	api_add_ms(u, "cpu_pool_ms", sqlite3_column_int64(st, 4));
	add_ms_or_null(u, "offcpu_ms", offcpu, timed);
	api_add_ms(u, "sql_ms", sql);
	api_add_ms(u, "runq_ms", runq);
	api_add_ms(u, "pool_wait_ms", pool_wait);
	api_add_ms(u, "lock_wait_ms", lock);
	api_add_ms(u, "net_wait_ms", net);
	add_ms_or_null(u, "other_wait_ms", pos(offcpu - sql - net - runq - pool_wait - lock),
		       timed);
	cJSON_AddNumberToObject(u, "minflt", (double)sqlite3_column_int64(st, 7));
	cJSON_AddNumberToObject(u, "majflt", (double)sqlite3_column_int64(st, 8));
	cJSON_AddNumberToObject(u, "heap_bytes", (double)sqlite3_column_int64(st, 9));
	cJSON_AddNumberToObject(u, "gc_count", (double)sqlite3_column_int64(st, 10));
	api_add_ms(u, "gc_ms", sqlite3_column_int64(st, 11));
	cJSON_AddBoolToObject(u, "partial", (flags & TG_USAGE_PARTIAL) != 0);
	cJSON_AddBoolToObject(u, "lost", (flags & TG_USAGE_LOST) != 0);
	cJSON_AddBoolToObject(u, "spans_truncated", (flags & TG_USAGE_SPANS_TRUNC) != 0);
	add_timeline(u, sqlite3_column_blob(st, 12), (size_t)sqlite3_column_bytes(st, 12));
	sqlite3_finalize(st);
	return 0;
}

/* The points of one process: every row, or POINTS_MAX evenly spaced ones
 * (the first and the last always) when it has more. */
static int process_points(struct api_ctx *c, sqlite3_stmt *st, int64_t run_id, int64_t pid,
			  int64_t n, cJSON *points)
{
	int64_t i = 0, k = 0, next = 0;
	char ts[24];
	cJSON *p;
	int rc;

	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, pid);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n > POINTS_MAX && i++ != next)
			continue;
		if (n > POINTS_MAX)
			next = ++k * (n - 1) / (POINTS_MAX - 1);
		p = cJSON_CreateArray();
		if (!p)
			break;
		snprintf(ts, sizeof(ts), "%lld", (long long)sqlite3_column_int64(st, 0));
		cJSON_AddItemToArray(p, cJSON_CreateString(ts));
		cJSON_AddItemToArray(p, cJSON_CreateNumber((double)sqlite3_column_int64(st, 1)));
		/* ms with 3 decimals, as api_add_ms */
		cJSON_AddItemToArray(
		    p, cJSON_CreateNumber(round((double)sqlite3_column_int64(st, 2) / 1000.0) /
					  1000.0));
		cJSON_AddItemToArray(points, p);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : api_db_fail(c, "reading process samples");
}

int api_process(struct api_ctx *c)
{
	sqlite3_stmt *pids = NULL, *st = NULL;
	cJSON *series, *one;
	int64_t run_id;
	int rc, ret;

	if (c->rest[0])
		return api_fail(c, 404, "no such API");
	ret = api_run_id(c, &run_id);
	if (ret)
		return ret;
	c->out = cJSON_CreateObject();
	series = cJSON_AddArrayToObject(c->out, "series");
	if (!api_has_table(c->db, "process_stats"))
		return 200;
	if (sqlite3_prepare_v2(c->db,
			       "SELECT pid, count(*) FROM process_stats WHERE run_id = ?"
			       " GROUP BY pid ORDER BY pid",
			       -1, &pids, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(c->db,
			       "SELECT ts, rss_bytes, cpu_ns FROM process_stats"
			       " WHERE run_id = ? AND pid = ? ORDER BY ts",
			       -1, &st, NULL) != SQLITE_OK) {
		ret = api_db_fail(c, "reading process samples");
		goto out;
	}
	sqlite3_bind_int64(pids, 1, run_id);
	while ((rc = sqlite3_step(pids)) == SQLITE_ROW) {
		one = cJSON_CreateObject();
		if (!one) {
			ret = api_fail(c, 500, "out of memory");
			goto out;
		}
		cJSON_AddItemToArray(series, one);
		cJSON_AddNumberToObject(one, "pid", (double)sqlite3_column_int64(pids, 0));
		ret = process_points(c, st, run_id, sqlite3_column_int64(pids, 0),
				     sqlite3_column_int64(pids, 1),
				     cJSON_AddArrayToObject(one, "points"));
		if (ret)
			goto out;
	}
	ret = rc == SQLITE_DONE ? 200 : api_db_fail(c, "reading process samples");
out:
	sqlite3_finalize(pids);
	sqlite3_finalize(st);
	return ret;
}
