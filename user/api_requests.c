/* SPDX-License-Identifier: MIT */
/*
 * GET /api/requests (filtered list, keyset pagination) and GET
 * /api/requests/ID (docs/api.md).
 *
 * The SQL is assembled from fixed fragments only, chosen by which filters are
 * present; every value is bound. Pagination is keyset on (start_ns, id),
 * (duration_ns, id) or (cpu_ns, id): the cursor holds the last row's sort
 * value and id, so a page costs an index range scan of `limit` rows whatever
 * its depth (requests_start always; requests_duration and requests_cpu once
 * the run has ended and no later run is being written to the file, a sorted
 * scan otherwise; docs/
 * serve.md gives the costs on a live run). q matches a substring of path,
 * case-sensitively: LIKE with its wildcards escaped narrows, instr() decides.
 */
#include "api.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "request.h"

#define LIMIT_DEFAULT 50
#define LIMIT_MAX 500

static const char *const flag_names[] = {
    "incomplete",  "lost_events", "upgraded", "http2",	       "truncated",
    "preexisting", "continue",	  "resync",   "route_guessed",
};

#define COLS                                                                                       \
	"id, start_ns, duration_ns, ttfb_ns, method, path, route, status, req_bytes,"              \
	" resp_bytes, flags, pid, peer, tid, conn_id, run_id, cpu_ns"

enum {
	P_RUN = 1,
	P_METHOD,
	P_ROUTE,
	P_LIKE,
	P_SUB,
	P_ST_LO,
	P_ST_HI,
	P_MIN,
	P_FROM,
	P_TO,
	P_CUR_V,
	P_CUR_ID,
	P_LIMIT,
	P_WIN_LO,
	P_WIN_HI
};

/* A filtered list in start order is read in windows of start time, newest
 * (or oldest) first, each twice as wide as the one before, until the page is
 * full, the run is exhausted or SCAN_BUDGET_MS have passed. Then the page may
 * be short, with a cursor at the window boundary ("start:0") from which the
 * next call goes on: every call stays bounded, however rare the matches. */
#define SCAN_BUDGET_MS 30
#define FIRST_WINDOWS 256 /* the first window is 1/256 of the run */

static void add_text(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);

	if (t)
		cJSON_AddStringToObject(o, name, t);
	else
		cJSON_AddNullToObject(o, name);
}

static cJSON *row_json(sqlite3_stmt *st, bool detail)
{
	cJSON *o = cJSON_CreateObject(), *names;
	int64_t flags = sqlite3_column_int64(st, 10);
	char buf[24];
	size_t i;

	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
	api_add_ns(o, "start_ns", sqlite3_column_int64(st, 1));
	if (sqlite3_column_type(st, 2) == SQLITE_NULL)
		cJSON_AddNullToObject(o, "duration_ms");
	else
		api_add_ms(o, "duration_ms", sqlite3_column_int64(st, 2));
	if (sqlite3_column_type(st, 3) == SQLITE_NULL)
		cJSON_AddNullToObject(o, "ttfb_ms");
	else
		api_add_ms(o, "ttfb_ms", sqlite3_column_int64(st, 3));
	add_text(o, "method", st, 4);
	add_text(o, "path", st, 5);
	add_text(o, "route", st, 6);
	if (sqlite3_column_type(st, 7) == SQLITE_NULL)
		cJSON_AddNullToObject(o, "status");
	else
		cJSON_AddNumberToObject(o, "status", sqlite3_column_int(st, 7));
	cJSON_AddNumberToObject(o, "req_bytes", (double)sqlite3_column_int64(st, 8));
	cJSON_AddNumberToObject(o, "resp_bytes", (double)sqlite3_column_int64(st, 9));
	cJSON_AddNumberToObject(o, "flags", (double)flags);
	names = cJSON_AddArrayToObject(o, "flag_names");
	for (i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++)
		if (flags & (1LL << i))
			cJSON_AddItemToArray(names, cJSON_CreateString(flag_names[i]));
	cJSON_AddNumberToObject(o, "pid", (double)sqlite3_column_int64(st, 11));
	add_text(o, "peer", st, 12);
	if (sqlite3_column_type(st, 16) == SQLITE_NULL)
		cJSON_AddNullToObject(o, "cpu_ms");
	else
		api_add_ms(o, "cpu_ms", sqlite3_column_int64(st, 16));
	if (detail) {
		cJSON_AddNumberToObject(o, "tid", (double)sqlite3_column_int64(st, 13));
		/* the connection id's 64 bits, unsigned (stored signed) */
		snprintf(buf, sizeof(buf), "%llu",
			 (unsigned long long)sqlite3_column_int64(st, 14));
		cJSON_AddStringToObject(o, "conn_id", buf);
		cJSON_AddNumberToObject(o, "run_id", (double)sqlite3_column_int64(st, 15));
	}
	return o;
}

static int request_one(struct api_ctx *c)
{
	sqlite3_stmt *st = NULL;
	const char *p = c->rest + 1;
	cJSON *obj;
	char *end;
	long long id;
	int rc, ret;

	errno = 0;
	id = strtoll(p, &end, 10);
	if (!*p || *end || errno || id <= 0 || *p == '+' || *p == ' ')
		return api_fail(c, 400, "bad request id '%s'", p);
	if (sqlite3_prepare_v2(c->db, "SELECT " COLS " FROM requests WHERE id = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return api_db_fail(c, "reading the request");
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		c->out = cJSON_CreateObject();
		cJSON_AddItemToObject(c->out, "request", row_json(st, true));
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW) {
		/* sections of later schemas, present only when there is data */
		obj = cJSON_GetObjectItemCaseSensitive(c->out, "request");
		ret = api_request_sql(c, id, obj);
		if (!ret)
			ret = api_request_samples(c, id, obj);
		if (!ret)
			ret = api_request_usage(c, id, obj);
		return ret ? ret : 200;
	}
	if (rc == SQLITE_DONE)
		return api_fail(c, 404, "no request %lld", id);
	return api_db_fail(c, "reading the request");
}

struct filters {
	char method[64], route[TG_ROUTE_LEN], q[TG_TARGET_LEN];
	char like[2 * TG_TARGET_LEN + 3];
	bool has_method, has_route, has_q, has_status, status_null, has_min, has_from, has_to;
	int64_t st_lo, st_hi, min_ns, from_ns, to_ns;
	bool by_duration, by_cpu, asc, has_cursor, windowed;
	int64_t cur_v, cur_id, limit;
};

static int text_param(struct api_ctx *c, const char *name, char *buf, size_t len, bool *has)
{
	int r = api_param(c, name, buf, len);

	if (r < 0)
		return api_fail(c, 400, "%s is too long", name);
	*has = r > 0;
	return 0;
}

/* "2xx".."5xx" or "err" (no status). */
static int status_param(struct api_ctx *c, struct filters *f)
{
	char buf[8];
	int r = api_param(c, "status", buf, sizeof(buf));

	if (r == 0)
		return 0;
	f->has_status = true;
	if (r > 0 && !strcmp(buf, "err")) {
		f->status_null = true;
		return 0;
	}
	if (r > 0 && strlen(buf) == 3 && buf[0] >= '1' && buf[0] <= '5' && buf[1] == 'x' &&
	    buf[2] == 'x') {
		f->st_lo = (int64_t)(buf[0] - '0') * 100;
		f->st_hi = f->st_lo + 99;
		return 0;
	}
	return api_fail(c, 400, "bad status: expected 1xx..5xx or err");
}

static int min_ms_param(struct api_ctx *c, struct filters *f)
{
	char buf[32], *end;
	double v;
	int r = api_param(c, "min_ms", buf, sizeof(buf));

	if (r == 0)
		return 0;
	errno = 0;
	v = r > 0 && buf[0] ? strtod(buf, &end) : NAN;
	if (r < 0 || !buf[0] || *end || errno || !isfinite(v) || v < 0 || v > 1e9)
		return api_fail(c, 400, "bad min_ms: expected a number of milliseconds");
	f->has_min = true;
	f->min_ns = (int64_t)llround(v * 1e6);
	return 0;
}

/* sort=start|duration|cpu */
static int sort_param(struct api_ctx *c, struct filters *f)
{
	char buf[16];
	int r = api_param(c, "sort", buf, sizeof(buf));

	if (r == 0 || (r > 0 && !strcmp(buf, "start")))
		return 0;
	if (r > 0 && !strcmp(buf, "duration")) {
		f->by_duration = true;
		return 0;
	}
	if (r > 0 && !strcmp(buf, "cpu")) {
		f->by_cpu = true;
		return 0;
	}
	return api_fail(c, 400, "bad sort: expected start, duration or cpu");
}

static int choice(struct api_ctx *c, const char *name, const char *a, const char *b, bool *is_b)
{
	char buf[16];
	int r = api_param(c, name, buf, sizeof(buf));

	if (r == 0)
		return 0;
	if (r > 0 && !strcmp(buf, a)) {
		*is_b = false;
		return 0;
	}
	if (r > 0 && !strcmp(buf, b)) {
		*is_b = true;
		return 0;
	}
	return api_fail(c, 400, "bad %s: expected %s or %s", name, a, b);
}

/* CURSOR = "<sort value>:<id>", both decimal integers. */
static int cursor_param(struct api_ctx *c, struct filters *f)
{
	char buf[64], *end;
	long long v, id;
	int r = api_param(c, "after", buf, sizeof(buf));

	if (r == 0 || (r > 0 && !buf[0]))
		return 0;
	if (r < 0)
		return api_fail(c, 400, "bad cursor");
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (end == buf || *end != ':' || errno)
		return api_fail(c, 400, "bad cursor");
	if (end[1] < '0' || end[1] > '9')
		return api_fail(c, 400, "bad cursor");
	id = strtoll(end + 1, &end, 10);
	if (*end || errno || id < 0)
		return api_fail(c, 400, "bad cursor");
	f->has_cursor = true;
	f->cur_v = v;
	f->cur_id = id;
	return 0;
}

/* q with LIKE's wildcards and the escape character escaped, inside %...%. */
static void like_pattern(const char *q, char *out)
{
	*out++ = '%';
	for (; *q; q++) {
		if (*q == '%' || *q == '_' || *q == '\\')
			*out++ = '\\';
		*out++ = *q;
	}
	*out++ = '%';
	*out = '\0';
}

static int parse_filters(struct api_ctx *c, struct filters *f)
{
	int ret;

	f->limit = LIMIT_DEFAULT;
	if ((ret = text_param(c, "method", f->method, sizeof(f->method), &f->has_method)) ||
	    (ret = text_param(c, "route", f->route, sizeof(f->route), &f->has_route)) ||
	    (ret = text_param(c, "q", f->q, sizeof(f->q), &f->has_q)) ||
	    (ret = status_param(c, f)) || (ret = min_ms_param(c, f)) || (ret = sort_param(c, f)) ||
	    (ret = choice(c, "order", "desc", "asc", &f->asc)) || (ret = cursor_param(c, f)))
		return ret;
	ret = api_int_param(c, "limit", 1, LIMIT_MAX, &f->limit);
	if (ret > 1)
		return ret;
	ret = api_int_param(c, "from_ns", 0, INT64_MAX, &f->from_ns);
	if (ret > 1)
		return ret;
	f->has_from = ret == 1;
	ret = api_int_param(c, "to_ns", 0, INT64_MAX, &f->to_ns);
	if (ret > 1)
		return ret;
	f->has_to = ret == 1;
	f->has_method = f->has_method && f->method[0];
	f->has_q = f->has_q && f->q[0];
	if (f->has_q)
		like_pattern(f->q, f->like);
	return 0;
}

static void build_sql(const struct filters *f, char *sql, size_t len)
{
	const char *key = f->by_cpu ? "cpu_ns" : f->by_duration ? "duration_ns" : "start_ns";

	snprintf(sql, len, "SELECT " COLS " FROM requests WHERE run_id = ?1");
#define ADD(frag) strncat(sql, frag, len - strlen(sql) - 1)
	if (f->has_method)
		ADD(" AND method = ?2");
	if (f->has_route)
		ADD(f->route[0] ? " AND route = ?3" : " AND route IS NULL");
	if (f->has_q)
		ADD(" AND path LIKE ?4 ESCAPE '\\' AND instr(path, ?5) > 0");
	if (f->has_status)
		ADD(f->status_null ? " AND status IS NULL" : " AND status BETWEEN ?6 AND ?7");
	if (f->has_min)
		ADD(" AND duration_ns >= ?8");
	if (f->has_from)
		ADD(" AND start_ns >= ?9");
	if (f->has_to)
		ADD(" AND start_ns < ?10");
	if (f->by_duration)
		ADD(" AND duration_ns IS NOT NULL");
	if (f->by_cpu)
		ADD(" AND cpu_ns IS NOT NULL");
	if (f->windowed)
		ADD(" AND start_ns >= ?14 AND start_ns < ?15");
	if (f->has_cursor) {
		ADD(" AND (");
		ADD(key);
		ADD(f->asc ? ", id) > (?11, ?12)" : ", id) < (?11, ?12)");
	}
	ADD(" ORDER BY ");
	ADD(key);
	ADD(f->asc ? " ASC, id ASC LIMIT ?13" : " DESC, id DESC LIMIT ?13");
#undef ADD
}

static void bind_filters(sqlite3_stmt *st, int64_t run_id, const struct filters *f)
{
	sqlite3_bind_int64(st, P_RUN, run_id);
	if (f->has_method)
		sqlite3_bind_text(st, P_METHOD, f->method, -1, SQLITE_STATIC);
	if (f->has_route && f->route[0])
		sqlite3_bind_text(st, P_ROUTE, f->route, -1, SQLITE_STATIC);
	if (f->has_q) {
		sqlite3_bind_text(st, P_LIKE, f->like, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, P_SUB, f->q, -1, SQLITE_STATIC);
	}
	if (f->has_status && !f->status_null) {
		sqlite3_bind_int64(st, P_ST_LO, f->st_lo);
		sqlite3_bind_int64(st, P_ST_HI, f->st_hi);
	}
	if (f->has_min)
		sqlite3_bind_int64(st, P_MIN, f->min_ns);
	if (f->has_from)
		sqlite3_bind_int64(st, P_FROM, f->from_ns);
	if (f->has_to)
		sqlite3_bind_int64(st, P_TO, f->to_ns);
	if (f->has_cursor) {
		sqlite3_bind_int64(st, P_CUR_V, f->cur_v);
		sqlite3_bind_int64(st, P_CUR_ID, f->cur_id);
	}
	sqlite3_bind_int64(st, P_LIMIT, f->limit + 1); /* one more: is there a next page? */
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* First and last start_ns of the run (both from requests_start). */
static int start_range(struct api_ctx *c, int64_t run_id, int64_t *lo, int64_t *hi)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(c->db,
				"SELECT (SELECT min(start_ns) FROM requests WHERE run_id = ?1),"
				" (SELECT max(start_ns) FROM requests WHERE run_id = ?1)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, run_id);
		rc = sqlite3_step(st);
	}
	*lo = sqlite3_column_int64(st, 0);
	*hi = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : api_db_fail(c, "listing requests");
}

struct page {
	cJSON *arr;
	int64_t n, last_v, last_id;
	bool more; /* a row beyond the page was seen */
};

/* Step st, adding rows to the page. Returns 0 or an HTTP status. */
static int collect(struct api_ctx *c, sqlite3_stmt *st, const struct filters *f, struct page *pg)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (pg->n == f->limit) {
			pg->more = true;
			break;
		}
		cJSON_AddItemToArray(pg->arr, row_json(st, false));
		pg->last_v = sqlite3_column_int64(st, f->by_cpu ? 16 : f->by_duration ? 2 : 1);
		pg->last_id = sqlite3_column_int64(st, 0);
		pg->n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return api_db_fail(c, "listing requests");
	return 0;
}

/* The windowed scan (see SCAN_BUDGET_MS). *stop_at gets the boundary to
 * resume from when the budget ran out first, else stays -1. */
static int scan_windows(struct api_ctx *c, sqlite3_stmt *st, const struct filters *f, int64_t first,
			int64_t last, struct page *pg, int64_t *stop_at)
{
	double t0 = now_ms(), t1, t2;
	int64_t w, lo, hi;
	int ret;

	w = (last - first) / FIRST_WINDOWS + 1;
	if (f->asc) {
		lo = f->has_cursor && f->cur_v > first ? f->cur_v : first;
		for (;;) {
			hi = last - lo < w ? last + 1 : lo + w;
			sqlite3_bind_int64(st, P_WIN_LO, lo);
			sqlite3_bind_int64(st, P_WIN_HI, hi);
			t1 = now_ms();
			ret = collect(c, st, f, pg);
			if (ret || pg->more || hi > last)
				return ret;
			lo = hi;
			/* the next window is twice as wide: stop if it would not fit */
			t2 = now_ms();
			if (t2 - t0 + 2 * (t2 - t1) > SCAN_BUDGET_MS) {
				*stop_at = lo;
				return 0;
			}
			w = w > INT64_MAX / 4 ? w : w * 2;
		}
	}
	hi = f->has_cursor && f->cur_v <= last ? f->cur_v + 1 : last + 1;
	for (;;) {
		lo = hi - first <= w ? first : hi - w;
		sqlite3_bind_int64(st, P_WIN_LO, lo);
		sqlite3_bind_int64(st, P_WIN_HI, hi);
		t1 = now_ms();
		ret = collect(c, st, f, pg);
		if (ret || pg->more || lo <= first)
			return ret;
		hi = lo;
		t2 = now_ms();
		if (t2 - t0 + 2 * (t2 - t1) > SCAN_BUDGET_MS) {
			*stop_at = hi;
			return 0;
		}
		w = w > INT64_MAX / 4 ? w : w * 2;
	}
}

struct cand {
	int64_t dur, id;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->dur != y->dur)
		return x->dur < y->dur ? 1 : -1;
	return x->id < y->id ? 1 : x->id > y->id ? -1 : 0;
}

/* Whether the index name exists (the store builds some when a run ends). */
static bool has_index(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	bool yes = false;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		yes = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return yes;
}

/*
 * Slowest first without the duration index (a live run, or an ended one
 * while a later run is written to the file: user/store.c drops the index
 * then): instead of sorting
 * the whole run, visit its seconds in decreasing order of their slowest
 * request (rollup_series keeps max_duration_ns per second) and take each
 * second's slowest matching rows through the start index. Once limit + 1
 * rows are slower than the next second's maximum, no unvisited second can
 * change the page (the threshold algorithm). First pages read a few dozen
 * seconds. When filters or the depth of the page defeat the pruning (more
 * than SLOWEST_BUDGET_MS spent), *gave_up is set and the caller falls back to
 * one sorted scan of the run.
 */
#define SLOWEST_BUDGET_MS 30

static int scan_slowest(struct api_ctx *c, sqlite3_stmt *st, const struct filters *f,
			int64_t run_id, struct page *pg, bool *gave_up)
{
	double t0 = now_ms();
	sqlite3_stmt *secs = NULL, *one = NULL;
	size_t n = 0, cap = 0, i, keep = (size_t)f->limit + 1, above;
	int64_t sec, next_max;
	struct cand *cv = NULL, *tmp;
	int rc, ret = 0;

	if (sqlite3_prepare_v2(
		c->db,
		"SELECT bucket_s, max_duration_ns FROM rollup_series WHERE run_id = ?"
		" AND res_s = 1 AND max_duration_ns > 0 ORDER BY max_duration_ns DESC",
		-1, &secs, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(c->db, "SELECT " COLS " FROM requests WHERE id = ?", -1, &one,
			       NULL) != SQLITE_OK) {
		ret = api_db_fail(c, "listing requests");
		goto out;
	}
	sqlite3_bind_int64(secs, 1, run_id);
	rc = sqlite3_step(secs);
	while (rc == SQLITE_ROW) {
		sec = sqlite3_column_int64(secs, 0);
		sqlite3_bind_int64(st, P_WIN_LO, sec * 1000000000LL);
		sqlite3_bind_int64(st, P_WIN_HI, (sec + 1) * 1000000000LL);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? cap * 2 : 4 * keep;
				tmp = realloc(cv, cap * sizeof(*cv));
				if (!tmp) {
					ret = api_fail(c, 500, "out of memory");
					goto out;
				}
				cv = tmp;
			}
			cv[n].dur = sqlite3_column_int64(st, 2);
			cv[n].id = sqlite3_column_int64(st, 0);
			n++;
		}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			ret = api_db_fail(c, "listing requests");
			goto out;
		}
		if (now_ms() - t0 > SLOWEST_BUDGET_MS) {
			*gave_up = true; /* filters or depth defeat the pruning */
			goto out;
		}
		if (n > 2 * keep) { /* only the best `keep` can make the page */
			qsort(cv, n, sizeof(*cv), cand_cmp);
			n = keep;
		}
		rc = sqlite3_step(secs);
		next_max = rc == SQLITE_ROW ? sqlite3_column_int64(secs, 1) : -1;
		for (i = 0, above = 0; i < n; i++)
			above += cv[i].dur > next_max;
		if (above >= keep)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		ret = api_db_fail(c, "listing requests");
		goto out;
	}
	if (n)
		qsort(cv, n, sizeof(*cv), cand_cmp);
	for (i = 0; i < n && i < keep; i++) {
		if (i == (size_t)f->limit) {
			pg->more = true;
			break;
		}
		sqlite3_bind_int64(one, 1, cv[i].id);
		if (sqlite3_step(one) == SQLITE_ROW) {
			cJSON_AddItemToArray(pg->arr, row_json(one, false));
			pg->last_v = cv[i].dur;
			pg->last_id = cv[i].id;
			pg->n++;
		}
		sqlite3_reset(one);
	}
out:
	sqlite3_finalize(secs);
	sqlite3_finalize(one);
	free(cv);
	return ret;
}

int api_requests(struct api_ctx *c)
{
	struct filters *f;
	struct page pg = {0};
	sqlite3_stmt *st = NULL;
	int64_t run_id, first = 0, last = -1, stop_at = -1;
	char sql[1024], cur[64];
	bool slowest, gave_up = false;
	int ret;

	if (c->rest[0] == '/')
		return request_one(c);
	if (c->rest[0])
		return api_fail(c, 404, "no such API");
	f = calloc(1, sizeof(*f));
	if (!f)
		return api_fail(c, 500, "out of memory");
	ret = parse_filters(c, f);
	if (!ret)
		ret = api_run_id(c, &run_id);
	if (ret)
		goto out;
	/* windows only when filters may skip many rows; otherwise the first
	 * `limit` rows of the start index are the answer */
	f->windowed = !f->by_duration && !f->by_cpu &&
		      (f->has_method || f->has_route || f->has_q || f->has_status || f->has_min);
	/* slowest first on a run whose duration index is not built yet */
	slowest = f->by_duration && !f->asc && !has_index(c->db, "requests_duration");
	f->windowed = f->windowed || slowest;
	if (f->windowed && !slowest) {
		ret = start_range(c, run_id, &first, &last);
		if (ret)
			goto out;
	}
	build_sql(f, sql, sizeof(sql));
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		ret = api_db_fail(c, "listing requests");
		goto out;
	}
	bind_filters(st, run_id, f);
	c->out = cJSON_CreateObject();
	pg.arr = cJSON_AddArrayToObject(c->out, "requests");
	if (slowest) {
		ret = scan_slowest(c, st, f, run_id, &pg, &gave_up);
		if (!ret && gave_up) {
			sqlite3_finalize(st);
			st = NULL;
			f->windowed = false;
			build_sql(f, sql, sizeof(sql));
			if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
				ret = api_db_fail(c, "listing requests");
				goto out;
			}
			bind_filters(st, run_id, f);
			ret = collect(c, st, f, &pg);
		}
	} else if (!f->windowed)
		ret = collect(c, st, f, &pg);
	else if (last >= first)
		ret = scan_windows(c, st, f, first, last, &pg, &stop_at);
	if (ret)
		goto out;
	if (pg.more)
		snprintf(cur, sizeof(cur), "%" PRId64 ":%" PRId64, pg.last_v, pg.last_id);
	else if (stop_at >= 0)
		snprintf(cur, sizeof(cur), "%" PRId64 ":0", stop_at);
	if (pg.more || stop_at >= 0)
		cJSON_AddStringToObject(c->out, "next", cur);
	else
		cJSON_AddNullToObject(c->out, "next");
	ret = 200;
out:
	sqlite3_finalize(st);
	free(f);
	return ret;
}
