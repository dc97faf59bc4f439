/* SPDX-License-Identifier: MIT */
/*
 * GET /api/overview and GET /api/endpoints (docs/api.md), answered from the
 * rollup tables (docs/schema.md, "Version 2"), never from raw rows: a run's
 * per-second rows (3,600 for an hour) and per-endpoint rows are merged here,
 * so the cost does not grow with the number of requests. Percentiles come
 * from the merged log-linear histograms (hist.h: within 1.6 %).
 */
#include "api.h"

#include <stdlib.h>
#include <string.h>

#include "hist.h"

#define SERIES_MAX 120
#define TOP_N 5

struct ep_stat {
	char *method, *route; /* route "" = none */
	int64_t count, errors, incomplete, timed, sum_dur, max_dur, sum_resp;
	int64_t p50, p95, p99;
	int64_t usage_count, sum_cpu, sum_gc; /* schema v5: requests with CPU figures */
};

struct ep_list {
	struct ep_stat *v;
	size_t n;
};

static void ep_list_free(struct ep_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].method);
		free(l->v[i].route);
	}
	free(l->v);
}

static char *col_dup(sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);

	return strdup(t ? t : "");
}

/* Load and summarise every endpoint of the run. Returns 0 or an HTTP status. */
static int load_endpoints(struct api_ctx *c, int64_t run_id, struct ep_list *l)
{
	sqlite3_stmt *st = NULL;
	struct tg_hist *h = malloc(sizeof(*h));
	struct ep_stat *e, *tmp;
	size_t cap = 0;
	int rc, ret = 0;

	memset(l, 0, sizeof(*l));
	if (!h)
		return api_fail(c, 500, "out of memory");
	if (sqlite3_prepare_v2(c->db,
			       "SELECT method, route, count, errors, incomplete, timed,"
			       " sum_duration_ns, max_duration_ns, sum_resp_bytes, hist,"
			       " usage_count, sum_cpu_ns, sum_gc_ns"
			       " FROM rollup_endpoint WHERE run_id = ?",
			       -1, &st, NULL) != SQLITE_OK) {
		ret = api_db_fail(c, "reading endpoints");
		goto out;
	}
	sqlite3_bind_int64(st, 1, run_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (l->n == cap) {
			cap = cap ? cap * 2 : 32;
			tmp = realloc(l->v, cap * sizeof(*tmp));
			if (!tmp) {
				ret = api_fail(c, 500, "out of memory");
				goto out;
			}
			l->v = tmp;
		}
		e = &l->v[l->n];
		memset(e, 0, sizeof(*e));
		e->method = col_dup(st, 0);
		e->route = col_dup(st, 1);
		l->n++;
		if (!e->method || !e->route) {
			ret = api_fail(c, 500, "out of memory");
			goto out;
		}
		e->count = sqlite3_column_int64(st, 2);
		e->errors = sqlite3_column_int64(st, 3);
		e->incomplete = sqlite3_column_int64(st, 4);
		e->timed = sqlite3_column_int64(st, 5);
		e->sum_dur = sqlite3_column_int64(st, 6);
		e->max_dur = sqlite3_column_int64(st, 7);
		e->sum_resp = sqlite3_column_int64(st, 8);
		e->usage_count = sqlite3_column_int64(st, 10);
		e->sum_cpu = sqlite3_column_int64(st, 11);
		e->sum_gc = sqlite3_column_int64(st, 12);
		tg_hist__clear(h);
		tg_hist__merge_blob(h, sqlite3_column_blob(st, 9),
				    (size_t)sqlite3_column_bytes(st, 9));
		e->p50 = (int64_t)tg_hist__quantile(h, 0.50);
		e->p95 = (int64_t)tg_hist__quantile(h, 0.95);
		e->p99 = (int64_t)tg_hist__quantile(h, 0.99);
	}
	if (rc != SQLITE_DONE)
		ret = api_db_fail(c, "reading endpoints");
out:
	sqlite3_finalize(st);
	free(h);
	return ret;
}

static void add_ms_or_null(cJSON *o, const char *name, int64_t ns, bool have)
{
	if (have)
		api_add_ms(o, name, ns);
	else
		cJSON_AddNullToObject(o, name);
}

static cJSON *ep_json(const struct ep_stat *e)
{
	cJSON *o = cJSON_CreateObject();
	bool t = e->timed > 0;

	cJSON_AddStringToObject(o, "method", e->method);
	if (e->route[0])
		cJSON_AddStringToObject(o, "route", e->route);
	else
		cJSON_AddNullToObject(o, "route");
	cJSON_AddNumberToObject(o, "count", (double)e->count);
	cJSON_AddNumberToObject(o, "errors", (double)e->errors);
	/* whole bytes, rounded to nearest */
	uint64_t mean_resp = e->count ? (e->sum_resp + e->count / 2) / e->count : 0;

	add_ms_or_null(o, "p50_ms", e->p50, t);
	add_ms_or_null(o, "p95_ms", e->p95, t);
	add_ms_or_null(o, "p99_ms", e->p99, t);
	add_ms_or_null(o, "mean_ms", t ? e->sum_dur / e->timed : 0, t);
	add_ms_or_null(o, "max_ms", e->max_dur, t);
	cJSON_AddNumberToObject(o, "mean_resp_bytes", (double)mean_resp);
	/* means over the requests that have CPU figures (usage) */
	add_ms_or_null(o, "cpu_mean_ms", e->usage_count ? e->sum_cpu / e->usage_count : 0,
		       e->usage_count > 0);
	add_ms_or_null(o, "gc_mean_ms", e->usage_count ? e->sum_gc / e->usage_count : 0,
		       e->usage_count > 0);
	return o;
}

enum ep_key { K_COUNT, K_ERRORS, K_P50, K_P95, K_P99, K_MEAN, K_MAX, K_CPU };
static const char *const key_names[] = {"count", "errors", "p50", "p95",
					"p99",	 "mean",   "max", "cpu"};

static int64_t ep_key(const struct ep_stat *e, enum ep_key k)
{
	switch (k) {
	case K_COUNT:
		return e->count;
	case K_ERRORS:
		return e->errors;
	case K_P50:
		return e->timed ? e->p50 : -1;
	case K_P95:
		return e->timed ? e->p95 : -1;
	case K_P99:
		return e->timed ? e->p99 : -1;
	case K_MEAN:
		return e->timed ? e->sum_dur / e->timed : -1;
	case K_MAX:
		return e->timed ? e->max_dur : -1;
	case K_CPU:
		return e->usage_count ? e->sum_cpu / e->usage_count : -1;
	}
	return 0;
}

/* qsort has no context argument in C11: the key and order are per thread. */
static _Thread_local enum ep_key sort_key;
static _Thread_local int sort_dir;

static int ep_cmp(const void *a, const void *b)
{
	const struct ep_stat *x = a, *y = b;
	int64_t kx = ep_key(x, sort_key), ky = ep_key(y, sort_key);
	int r;

	if (kx != ky)
		return (kx < ky ? -1 : 1) * sort_dir;
	r = strcmp(x->method, y->method);
	return r ? r : strcmp(x->route, y->route);
}

static void ep_sort(struct ep_list *l, enum ep_key k, int dir)
{
	sort_key = k;
	sort_dir = dir;
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), ep_cmp);
}

/* Parse a choice parameter against names; *out untouched when absent.
 * Returns 0 or 400. */
static int choice_param(struct api_ctx *c, const char *name, const char *const *names, int n,
			int *out)
{
	char buf[16];
	int r = api_param(c, name, buf, sizeof(buf)), i;

	if (r == 0)
		return 0;
	for (i = 0; r > 0 && i < n; i++) {
		if (!strcmp(buf, names[i])) {
			*out = i;
			return 0;
		}
	}
	return api_fail(c, 400, "bad %s: expected one of the documented values", name);
}

int api_endpoints(struct api_ctx *c)
{
	static const char *const orders[] = {"desc", "asc"};
	struct ep_list l;
	int64_t run_id;
	int ret, key = K_COUNT, order = 0;
	cJSON *arr;
	size_t i;

	ret = choice_param(c, "sort", key_names, (int)(sizeof(key_names) / sizeof(key_names[0])),
			   &key);
	if (!ret)
		ret = choice_param(c, "order", orders, 2, &order);
	if (!ret)
		ret = api_run_id(c, &run_id);
	if (ret)
		return ret;
	ret = load_endpoints(c, run_id, &l);
	if (!ret) {
		ep_sort(&l, (enum ep_key)key, order ? 1 : -1);
		c->out = cJSON_CreateObject();
		arr = cJSON_AddArrayToObject(c->out, "endpoints");
		for (i = 0; i < l.n; i++)
			cJSON_AddItemToArray(arr, ep_json(&l.v[i]));
		ret = api_endpoints_sql(c, run_id, arr);
		if (!ret)
			ret = 200;
	}
	ep_list_free(&l);
	return ret;
}

/* The series bucket size: the first of 1 s, 10 s, 60 s, 600 s, 3600 s, ...
 * that covers [first_s, last_s] in at most SERIES_MAX aligned buckets. */
static int64_t pick_bucket(int64_t first_s, int64_t last_s)
{
	static const int64_t sizes[] = {1, 10, 60, 600, 3600, 21600, 86400};
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (last_s / sizes[i] - first_s / sizes[i] + 1 <= SERIES_MAX)
			return sizes[i];
	return (last_s - first_s) / (SERIES_MAX - 1) + 1;
}

struct span {
	int64_t started_ns, end_ns;
};

/* The run's time span: started .. ended, or the last request's start while
 * the run is live (or its tracer died). */
static int run_span(struct api_ctx *c, int64_t run_id, struct span *sp)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc =
	    sqlite3_prepare_v2(c->db,
			       "SELECT started, coalesce(ended, (SELECT max(start_ns) FROM requests"
			       " WHERE run_id = runs.id), started) FROM runs WHERE id = ?",
			       -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, run_id);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		sp->started_ns = sqlite3_column_int64(st, 0);
		sp->end_ns = sqlite3_column_int64(st, 1);
		if (sp->end_ns < sp->started_ns)
			sp->end_ns = sp->started_ns;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : api_db_fail(c, "reading the run");
}

struct acc {
	int64_t count, errors, timed;
	struct tg_hist h;
};

static void emit_point(cJSON *series, int64_t t_s, const struct acc *a)
{
	cJSON *p = cJSON_CreateObject();
	bool t = a->timed > 0;

	api_add_ns(p, "t_ns", t_s * 1000000000LL);
	cJSON_AddNumberToObject(p, "requests", (double)a->count);
	cJSON_AddNumberToObject(p, "errors", (double)a->errors);
	add_ms_or_null(p, "p50_ms", (int64_t)tg_hist__quantile(&a->h, 0.50), t);
	add_ms_or_null(p, "p95_ms", (int64_t)tg_hist__quantile(&a->h, 0.95), t);
	add_ms_or_null(p, "p99_ms", (int64_t)tg_hist__quantile(&a->h, 0.99), t);
	cJSON_AddItemToArray(series, p);
}

/* Emit the point of a series bucket, add it into the totals, reset it. */
static void acc_flush(cJSON *series, int64_t t_s, struct acc *pt, struct acc *tot)
{
	unsigned b;

	emit_point(series, t_s, pt);
	tot->count += pt->count;
	tot->errors += pt->errors;
	tot->timed += pt->timed;
	if (pt->h.total) {
		for (b = 0; b < TG_HIST_BUCKETS; b++)
			tot->h.count[b] += pt->h.count[b];
		tot->h.total += pt->h.total;
	}
	pt->count = pt->errors = pt->timed = 0;
	if (pt->h.total)
		tg_hist__clear(&pt->h);
}

/* Totals and series from rollup_series. Returns 0 or an HTTP status. */
static int overview_series(struct api_ctx *c, int64_t run_id, const struct span *sp)
{
	int64_t first_s = sp->started_ns / 1000000000LL, last_s = sp->end_ns / 1000000000LL;
	int64_t bucket, cur, b, incomplete = 0, lost = 0;
	struct acc *tot = calloc(2, sizeof(*tot)), *pt;
	sqlite3_stmt *st = NULL;
	cJSON *series, *totals;
	double secs;
	int rc, ret = 0;

	if (!tot)
		return api_fail(c, 500, "out of memory");
	pt = tot + 1;
	bucket = pick_bucket(first_s, last_s);
	if (sqlite3_prepare_v2(
		c->db,
		"SELECT bucket_s, count, errors, incomplete, lost, timed, hist"
		" FROM rollup_series WHERE run_id = ? AND res_s = ? ORDER BY bucket_s",
		-1, &st, NULL) != SQLITE_OK) {
		ret = api_db_fail(c, "reading the series");
		goto out;
	}
	sqlite3_bind_int64(st, 1, run_id);
	/* per-minute rows when the buckets are whole minutes: 60 times fewer */
	sqlite3_bind_int64(st, 2, bucket % 60 ? 1 : 60);
	series = cJSON_AddArrayToObject(c->out, "series");
	cur = first_s / bucket;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *blob = sqlite3_column_blob(st, 6);
		size_t len = (size_t)sqlite3_column_bytes(st, 6);

		b = sqlite3_column_int64(st, 0);
		b = (b < first_s ? first_s : b > last_s ? last_s : b) / bucket;
		for (; cur < b; cur++)
			acc_flush(series, cur * bucket, pt, tot);
		pt->count += sqlite3_column_int64(st, 1);
		pt->errors += sqlite3_column_int64(st, 2);
		pt->timed += sqlite3_column_int64(st, 5);
		incomplete += sqlite3_column_int64(st, 3);
		lost += sqlite3_column_int64(st, 4);
		tg_hist__merge_blob(&pt->h, blob, len);
	}
	if (rc != SQLITE_DONE) {
		ret = api_db_fail(c, "reading the series");
		goto out;
	}
	for (; cur <= last_s / bucket; cur++)
		acc_flush(series, cur * bucket, pt, tot);
	cJSON_AddNumberToObject(c->out, "bucket_s", (double)bucket);

	totals = cJSON_AddObjectToObject(c->out, "totals");
	secs = (double)(sp->end_ns - sp->started_ns) / 1e9;
	cJSON_AddNumberToObject(totals, "requests", (double)tot->count);
	cJSON_AddNumberToObject(totals, "errors", (double)tot->errors);
	cJSON_AddNumberToObject(totals, "error_rate",
				tot->count ? (double)tot->errors / (double)tot->count : 0);
	cJSON_AddNumberToObject(totals, "rps", (double)tot->count / (secs < 1 ? 1 : secs));
	add_ms_or_null(totals, "p50_ms", (int64_t)tg_hist__quantile(&tot->h, 0.50), tot->timed);
	add_ms_or_null(totals, "p95_ms", (int64_t)tg_hist__quantile(&tot->h, 0.95), tot->timed);
	add_ms_or_null(totals, "p99_ms", (int64_t)tg_hist__quantile(&tot->h, 0.99), tot->timed);
	cJSON_AddNumberToObject(totals, "incomplete", (double)incomplete);
	cJSON_AddNumberToObject(totals, "lost", (double)lost);
out:
	sqlite3_finalize(st);
	free(tot);
	return ret;
}

static void add_top(cJSON *o, const char *name, struct ep_list *l, enum ep_key k)
{
	cJSON *arr = cJSON_AddArrayToObject(o, name);
	size_t i;

	ep_sort(l, k, -1);
	for (i = 0; i < l->n && i < TOP_N; i++) {
		if (k != K_COUNT && !l->v[i].timed)
			break;
		cJSON_AddItemToArray(arr, ep_json(&l->v[i]));
	}
}

int api_overview(struct api_ctx *c)
{
	struct ep_list l = {0};
	struct span sp = {0};
	int64_t run_id;
	cJSON *run;
	int ret;

	ret = api_run_id(c, &run_id);
	if (ret)
		return ret;
	ret = run_span(c, run_id, &sp);
	if (ret)
		return ret;
	run = api_run_json(c->db, run_id);
	if (!run)
		return api_db_fail(c, "reading the run");
	c->out = cJSON_CreateObject();
	cJSON_AddItemToObject(c->out, "run", run);
	ret = overview_series(c, run_id, &sp);
	if (!ret)
		ret = load_endpoints(c, run_id, &l);
	if (!ret) {
		add_top(c->out, "busiest", &l, K_COUNT);
		add_top(c->out, "slowest", &l, K_P95);
		ret = 200;
	}
	ep_list_free(&l);
	return ret;
}
