/* SPDX-License-Identifier: MIT */
/*
 * `timeglass report` (report.h, docs/report.md).
 *
 * Design: load, then print. The run, the endpoints and the slowest requests
 * are read into a struct report with a handful of queries on a read-only
 * connection (WAL: safe while a tracer writes), then one of three printers
 * writes it. Percentiles are nearest-rank: for each endpoint the durations
 * are stepped through once in ascending order (ORDER BY duration_ns) and the
 * values at ranks ceil(p/100 * n) are kept, so memory stays constant however
 * many requests a run has.
 *
 * Resources per request (schema v5) come from the same GROUP BY (means over
 * the requests that have usage figures) and, for the CPU p95, one more sorted
 * pass read only when the run has such figures; on older files the columns
 * are replaced by NULLs and the section is left out.
 */
#include "report.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "report_sql.h"
#include <sqlite3.h>

#include "request.h"
#include "store.h"

#define DEFAULT_SLOWEST 10
#define NPCT 5
static const int pcts[NPCT] = {50, 90, 95, 99, 100};

struct run {
	int64_t id, started, ended, events, dropped;
	int64_t requests, incomplete, lost;
	bool has_ended;
	double duration_s;
	char *targets, *kernel, *version;
};

struct endpoint {
	char *method, *route; /* route NULL when the pipeline gave none */
	int64_t count, errors, timed;
	int64_t pct[NPCT]; /* ns: p50 p90 p95 p99 max, over the timed requests */
	double mean_resp, rps;
	/* resources: over the usage_n requests with usage figures (schema v5) */
	int64_t usage_n, cpu_p95;
	double cpu_mean, gc_mean, minflt_mean, heap_mean;
};

struct slow {
	int64_t start, duration, ttfb;
	bool has_ttfb;
	int status; /* 0: none */
	uint32_t flags;
	char *method, *path, *route;
};

struct report {
	struct run run;
	struct endpoint *eps;
	size_t neps;
	struct slow *slow;
	size_t nslow;
	struct tg_report_sql *sql; /* NULL: no queries table */
	bool has_usage;		   /* some request of the run has usage figures */
};

static char *col_dup(sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);

	return t ? strdup(t) : NULL;
}

static void report_free(struct report *r)
{
	size_t i;

	free(r->run.targets);
	free(r->run.kernel);
	free(r->run.version);
	for (i = 0; i < r->neps; i++) {
		free(r->eps[i].method);
		free(r->eps[i].route);
	}
	free(r->eps);
	for (i = 0; i < r->nslow; i++) {
		free(r->slow[i].method);
		free(r->slow[i].path);
		free(r->slow[i].route);
	}
	free(r->slow);
	tg_report_sql__free(r->sql);
}

static int sql_fail(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: reading the database failed: %s", path, sqlite3_errmsg(db));
	return sqlite3_errcode(db) == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

static int open_db(const char *path, sqlite3 **db, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc, version = -1;

	if (access(path, R_OK) != 0) {
		int e = errno;

		snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
		return -e;
	}
	rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path,
			 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		return -EIO;
	}
	sqlite3_busy_timeout(*db, 5000);
	rc = sqlite3_prepare_v2(*db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_NOTADB) {
		snprintf(err, errlen, "%s is not a SQLite database", path);
		return -EINVAL;
	}
	if (version < 0)
		return sql_fail(*db, path, err, errlen);
	if (version == 0) {
		snprintf(err, errlen, "%s is not a timeglass database (no schema)", path);
		return -EINVAL;
	}
	if (version > TG_SCHEMA_VERSION) {
		snprintf(
		    err, errlen,
		    "%s was made by a newer timeglass (schema version %d, this one knows up to "
		    "%d); use a newer timeglass",
		    path, version, TG_SCHEMA_VERSION);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

static int load_run(sqlite3 *db, const char *path, int64_t want, struct run *run, char *err,
		    size_t errlen)
{
	sqlite3_stmt *st = NULL;
	struct timespec now;
	int64_t end;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(
	    db,
	    "SELECT id, started, ended, targets, kernel, version, coalesce(events, 0),"
	    " coalesce(dropped_events, 0)"
	    " FROM runs WHERE (?1 = 0 OR id = ?1) ORDER BY id DESC LIMIT 1",
	    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(db, path, err, errlen);
	sqlite3_bind_int64(st, 1, want);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		if (want)
			snprintf(err, errlen, "%s has no run %lld", path, (long long)want);
		else
			snprintf(err, errlen, "%s has no run yet", path);
		ret = -ENOENT;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ret = sql_fail(db, path, err, errlen);
		goto out;
	}
	run->id = sqlite3_column_int64(st, 0);
	run->started = sqlite3_column_int64(st, 1);
	run->has_ended = sqlite3_column_type(st, 2) != SQLITE_NULL;
	run->ended = sqlite3_column_int64(st, 2);
	run->targets = col_dup(st, 3);
	run->kernel = col_dup(st, 4);
	run->version = col_dup(st, 5);
	run->events = sqlite3_column_int64(st, 6);
	run->dropped = sqlite3_column_int64(st, 7);
	end = run->ended;
	if (!run->has_ended) {
		/* Still running (or the tracer died): up to now. */
		clock_gettime(CLOCK_REALTIME, &now);
		end = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	}
	run->duration_s = end > run->started ? (double)(end - run->started) / 1e9 : 0.0;
out:
	sqlite3_finalize(st);
	return ret;
}

static bool same_endpoint(const struct endpoint *e, const char *method, const char *route)
{
	if (strcmp(e->method, method ? method : "") != 0)
		return false;
	if (!e->route || !route)
		return !e->route && !route;
	return !strcmp(e->route, route);
}

/* One pass over the run's durations sorted by endpoint then duration (one
 * sort, whatever the number of endpoints). Within each endpoint's rows the
 * values at the nearest ranks rank(p) = ceil(p * n / 100), 1-based, are kept,
 * n being the endpoint's number of requests with a duration. */
static int load_percentiles(sqlite3_stmt *st, struct report *r)
{
	struct endpoint *ep = NULL;
	int64_t rank[NPCT] = {0}, i = 0;
	int k = NPCT, rc;
	size_t e;

	sqlite3_bind_int64(st, 1, r->run.id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *method = (const char *)sqlite3_column_text(st, 0);
		const char *route = (const char *)sqlite3_column_text(st, 1);
		int64_t v = sqlite3_column_int64(st, 2);

		if (!ep || !same_endpoint(ep, method, route)) {
			ep = NULL;
			for (e = 0; e < r->neps && !ep; e++)
				if (same_endpoint(&r->eps[e], method, route))
					ep = &r->eps[e];
			if (!ep)
				continue; /* cannot happen: same snapshot as the aggregate */
			for (k = 0; k < NPCT; k++) {
				rank[k] = (pcts[k] * ep->timed + 99) / 100;
				if (rank[k] < 1)
					rank[k] = 1;
			}
			i = 0;
			k = 0;
		}
		i++;
		while (k < NPCT && rank[k] == i)
			ep->pct[k++] = v;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The CPU p95 of each endpoint with usage: nearest rank ceil(0.95 * n) of
 * its cpu_ns, in one sorted pass as load_percentiles. */
static int load_cpu_p95(sqlite3 *db, struct report *r)
{
	struct endpoint *ep = NULL;
	sqlite3_stmt *st = NULL;
	int64_t rank = 0, i = 0;
	size_t e;
	int rc;

	rc = sqlite3_prepare_v2(db,
				"SELECT method, route, cpu_ns FROM requests"
				" WHERE run_id = ? AND cpu_ns IS NOT NULL"
				" ORDER BY method, route, cpu_ns",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, r->run.id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *method = (const char *)sqlite3_column_text(st, 0);
		const char *route = (const char *)sqlite3_column_text(st, 1);

		if (!ep || !same_endpoint(ep, method, route)) {
			ep = NULL;
			for (e = 0; e < r->neps && !ep; e++)
				if (same_endpoint(&r->eps[e], method, route))
					ep = &r->eps[e];
			if (!ep)
				continue;
			rank = (95 * ep->usage_n + 99) / 100;
			i = 0;
		}
		if (++i == rank)
			ep->cpu_p95 = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Whether the requests table has the usage columns (schema v5). */
static bool has_usage_columns(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	bool yes = sqlite3_prepare_v2(db, "SELECT usage_flags FROM requests LIMIT 0", -1, &st,
				      NULL) == SQLITE_OK;

	sqlite3_finalize(st);
	return yes;
}

static int load_endpoints(sqlite3 *db, const char *path, struct report *r, char *err, size_t errlen)
{
	sqlite3_stmt *agg = NULL, *dur = NULL;
	struct endpoint *tmp;
	size_t cap = 0;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(
	    db,
	    has_usage_columns(db)
		? "SELECT method, route, count(*), sum(coalesce(status, 0) >= 500),"
		  " count(duration_ns), avg(resp_bytes), sum((flags & ?2) != 0),"
		  " sum((flags & ?3) != 0), count(usage_flags), avg(cpu_ns), avg(gc_ns),"
		  " avg(minflt), avg(heap_bytes)"
		  " FROM requests WHERE run_id = ?1 GROUP BY method, route"
		  " ORDER BY count(*) DESC, method, route"
		: "SELECT method, route, count(*), sum(coalesce(status, 0) >= 500),"
		  " count(duration_ns), avg(resp_bytes), sum((flags & ?2) != 0),"
		  " sum((flags & ?3) != 0), 0, NULL, NULL, NULL, NULL"
		  " FROM requests WHERE run_id = ?1 GROUP BY method, route"
		  " ORDER BY count(*) DESC, method, route",
	    -1, &agg, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db,
					"SELECT method, route, duration_ns FROM requests"
					" WHERE run_id = ? AND duration_ns IS NOT NULL"
					" ORDER BY method, route, duration_ns",
					-1, &dur, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(agg, 1, r->run.id);
	sqlite3_bind_int64(agg, 2, TG_REQ_INCOMPLETE);
	sqlite3_bind_int64(agg, 3, TG_REQ_LOST_EVENTS);
	while ((rc = sqlite3_step(agg)) == SQLITE_ROW) {
		struct endpoint *ep;

		if (r->neps == cap) {
			cap = cap ? cap * 2 : 16;
			tmp = realloc(r->eps, cap * sizeof(*tmp));
			if (!tmp) {
				rc = SQLITE_NOMEM;
				break;
			}
			r->eps = tmp;
		}
		ep = &r->eps[r->neps++];
		memset(ep, 0, sizeof(*ep));
		ep->method = col_dup(agg, 0);
		ep->route = col_dup(agg, 1);
		ep->count = sqlite3_column_int64(agg, 2);
		ep->errors = sqlite3_column_int64(agg, 3);
		ep->timed = sqlite3_column_int64(agg, 4);
		ep->mean_resp = sqlite3_column_double(agg, 5);
		ep->rps = r->run.duration_s > 0 ? (double)ep->count / r->run.duration_s : 0.0;
		r->run.requests += ep->count;
		r->run.incomplete += sqlite3_column_int64(agg, 6);
		r->run.lost += sqlite3_column_int64(agg, 7);
		ep->usage_n = sqlite3_column_int64(agg, 8);
		ep->cpu_mean = sqlite3_column_double(agg, 9);
		ep->gc_mean = sqlite3_column_double(agg, 10);
		ep->minflt_mean = sqlite3_column_double(agg, 11);
		ep->heap_mean = sqlite3_column_double(agg, 12);
		r->has_usage = r->has_usage || ep->usage_n > 0;
		if (!ep->method) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		goto fail;
	rc = load_percentiles(dur, r);
	if (rc == SQLITE_OK && r->has_usage)
		rc = load_cpu_p95(db, r);
	if (rc != SQLITE_OK)
		goto fail;
	goto out;
fail:
	if (rc == SQLITE_NOMEM) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
	} else {
		ret = sql_fail(db, path, err, errlen);
	}
out:
	sqlite3_finalize(agg);
	sqlite3_finalize(dur);
	return ret;
}

static int load_slowest(sqlite3 *db, const char *path, int n, struct report *r, char *err,
			size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	if (n <= 0)
		return 0;
	r->slow = calloc((size_t)n, sizeof(*r->slow));
	if (!r->slow) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = sqlite3_prepare_v2(
	    db,
	    "SELECT start_ns, duration_ns, ttfb_ns, status, flags, method, path, route"
	    " FROM requests WHERE run_id = ? AND duration_ns IS NOT NULL"
	    " ORDER BY duration_ns DESC, id LIMIT ?",
	    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(db, path, err, errlen);
	sqlite3_bind_int64(st, 1, r->run.id);
	sqlite3_bind_int(st, 2, n);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && r->nslow < (size_t)n) {
		struct slow *s = &r->slow[r->nslow++];

		s->start = sqlite3_column_int64(st, 0);
		s->duration = sqlite3_column_int64(st, 1);
		s->has_ttfb = sqlite3_column_type(st, 2) != SQLITE_NULL;
		s->ttfb = sqlite3_column_int64(st, 2);
		s->status = sqlite3_column_int(st, 3);
		s->flags = (uint32_t)sqlite3_column_int64(st, 4);
		s->method = col_dup(st, 5);
		s->path = col_dup(st, 6);
		s->route = col_dup(st, 7);
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = sql_fail(db, path, err, errlen);
	sqlite3_finalize(st);
	return ret;
}

/* ---- Formatting helpers. */

static void iso_time(int64_t epoch_ns, char *out, size_t cap)
{
	time_t sec = (time_t)(epoch_ns / 1000000000);
	struct tm tm;
	char base[32];

	if (epoch_ns < 0 || !gmtime_r(&sec, &tm) ||
	    !strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(out, cap, "-");
		return;
	}
	snprintf(out, cap, "%s.%03dZ", base, (int)(epoch_ns % 1000000000 / 1000000));
}

static const char *const flag_names[] = {
    "incomplete",  "lost-events", "upgraded", "http2",	       "truncated",
    "preexisting", "continue",	  "resync",   "route-guessed",
};
#define NFLAGS (sizeof(flag_names) / sizeof(flag_names[0]))

static void flags_text(uint32_t flags, char *out, size_t cap)
{
	size_t off = 0, i;

	out[0] = '\0';
	for (i = 0; i < NFLAGS && off < cap; i++)
		if (flags & (1u << i))
			off += (size_t)snprintf(out + off, cap - off, "%s%s", off ? "," : "",
						flag_names[i]);
	if (!out[0])
		snprintf(out, cap, "-");
}

static double ms(int64_t ns)
{
	return (double)ns / 1e6;
}

/* Latency cells of an endpoint: "12.34", or "-" when no request has a duration. */
static void lat_cells(const struct endpoint *e, char cells[NPCT][24])
{
	int k;

	for (k = 0; k < NPCT; k++)
		if (e->timed)
			snprintf(cells[k], sizeof(cells[k]), "%.2f", ms(e->pct[k]));
		else
			snprintf(cells[k], sizeof(cells[k]), "-");
}

/* Resource cells of an endpoint: CPU mean, CPU p95, GC mean (ms), minor
 * faults, heap growth (KiB); "-" when none of its requests has figures. */
static void usage_cells(const struct endpoint *e, char cells[5][24])
{
	int k;

	if (!e->usage_n) {
		for (k = 0; k < 5; k++)
			snprintf(cells[k], sizeof(cells[k]), "-");
		return;
	}
	snprintf(cells[0], sizeof(cells[0]), "%.2f", e->cpu_mean / 1e6);
	snprintf(cells[1], sizeof(cells[1]), "%.2f", ms(e->cpu_p95));
	snprintf(cells[2], sizeof(cells[2]), "%.2f", e->gc_mean / 1e6);
	snprintf(cells[3], sizeof(cells[3]), "%.1f", e->minflt_mean);
	snprintf(cells[4], sizeof(cells[4]), "%.1f", e->heap_mean / 1024);
}

/* ---- Text. */

static void text_cell(FILE *out, const char *s, int width)
{
	int len = (int)strlen(s);

	if (len > width && width > 3)
		fprintf(out, "%.*s... ", width - 3, s);
	else
		fprintf(out, "%-*s ", width, s);
}

static int text_width(int min, int max, size_t len)
{
	int w = (int)len;

	return w < min ? min : w > max ? max : w;
}

static void print_text(FILE *out, const struct report *r)
{
	const struct run *run = &r->run;
	char t1[40], t2[40], fl[128];
	int mw = 6, rw = 5, pw = 4;
	size_t i;

	iso_time(run->started, t1, sizeof(t1));
	iso_time(run->ended, t2, sizeof(t2));
	fprintf(out, "TimeGlass report, run %lld\n\n", (long long)run->id);
	fprintf(out, "  started    %s\n", t1);
	fprintf(out, "  ended      %s\n", run->has_ended ? t2 : "(still running)");
	fprintf(out, "  duration   %.3f s\n", run->duration_s);
	fprintf(out, "  targets    %s\n", run->targets ? run->targets : "-");
	fprintf(out, "  kernel     %s\n", run->kernel ? run->kernel : "-");
	fprintf(out, "  version    %s\n", run->version ? run->version : "-");
	fprintf(out, "  requests   %lld (incomplete %lld, with lost events %lld)\n",
		(long long)run->requests, (long long)run->incomplete, (long long)run->lost);
	fprintf(out, "  events     %lld\n", (long long)run->events);
	fprintf(out, "  dropped    %lld\n", (long long)run->dropped);
	if (run->dropped > 0)
		fprintf(out,
			"\nWARNING: %lld events were dropped; some requests are missing or "
			"incomplete.\n",
			(long long)run->dropped);

	for (i = 0; i < r->neps; i++) {
		mw = text_width(mw, 16, strlen(r->eps[i].method));
		rw = text_width(rw, 50, strlen(r->eps[i].route ? r->eps[i].route : "-"));
	}
	fprintf(out, "\nEndpoints (latency in ms)\n");
	fprintf(out, "%-*s %-*s %8s %6s %9s %9s %9s %9s %9s %9s %11s\n", mw, "METHOD", rw, "ROUTE",
		"COUNT", "ERRORS", "REQ/S", "P50", "P90", "P95", "P99", "MAX", "MEAN_RESP_B");
	for (i = 0; i < r->neps; i++) {
		const struct endpoint *e = &r->eps[i];
		char c[NPCT][24];

		lat_cells(e, c);
		text_cell(out, e->method, mw);
		text_cell(out, e->route ? e->route : "-", rw);
		fprintf(out, "%8lld %6lld %9.1f %9s %9s %9s %9s %9s %11.0f\n", (long long)e->count,
			(long long)e->errors, e->rps, c[0], c[1], c[2], c[3], c[4], e->mean_resp);
	}
	if (!r->neps)
		fprintf(out, "(no requests)\n");
	if (r->has_usage) {
		fprintf(out, "\nResources per request (means; CPU in ms)\n");
		fprintf(out, "%-*s %-*s %8s %9s %9s %9s %9s %11s\n", mw, "METHOD", rw, "ROUTE",
			"WITH_CPU", "CPU", "CPU_P95", "GC_MS", "MINFLT", "HEAP_KB");
		for (i = 0; i < r->neps; i++) {
			const struct endpoint *e = &r->eps[i];
			char c[5][24];

			usage_cells(e, c);
			text_cell(out, e->method, mw);
			text_cell(out, e->route ? e->route : "-", rw);
			fprintf(out, "%8lld %9s %9s %9s %9s %11s\n", (long long)e->usage_n, c[0],
				c[1], c[2], c[3], c[4]);
		}
	}

	if (!r->nslow)
		return;
	mw = 6;
	rw = 5;
	for (i = 0; i < r->nslow; i++) {
		mw = text_width(mw, 16, strlen(r->slow[i].method ? r->slow[i].method : "-"));
		rw = text_width(rw, 40, strlen(r->slow[i].route ? r->slow[i].route : "-"));
		pw = text_width(pw, 50, strlen(r->slow[i].path ? r->slow[i].path : "-"));
	}
	fprintf(out, "\nSlowest requests\n");
	fprintf(out, "%-24s %-*s %-*s %-*s %6s %10s %10s %s\n", "START", mw, "METHOD", pw, "PATH",
		rw, "ROUTE", "STATUS", "MS", "TTFB_MS", "FLAGS");
	for (i = 0; i < r->nslow; i++) {
		const struct slow *s = &r->slow[i];
		char st[8], tt[24];

		iso_time(s->start, t1, sizeof(t1));
		snprintf(st, sizeof(st), s->status ? "%d" : "-", s->status);
		if (s->has_ttfb)
			snprintf(tt, sizeof(tt), "%.2f", ms(s->ttfb));
		else
			snprintf(tt, sizeof(tt), "-");
		flags_text(s->flags, fl, sizeof(fl));
		fprintf(out, "%-24s ", t1);
		text_cell(out, s->method ? s->method : "-", mw);
		text_cell(out, s->path ? s->path : "-", pw);
		text_cell(out, s->route ? s->route : "-", rw);
		fprintf(out, "%6s %10.2f %10s %s\n", st, ms(s->duration), tt, fl);
	}
}

/* ---- Markdown. */

/* A table cell: '|' escaped, newlines flattened. */
static void md_cell(FILE *out, const char *s)
{
	fputs("| ", out);
	if (!s || !*s)
		s = "-";
	for (; *s; s++) {
		if (*s == '|')
			fputs("\\|", out);
		else if (*s == '\n' || *s == '\r')
			fputc(' ', out);
		else
			fputc(*s, out);
	}
	fputc(' ', out);
}

static void print_markdown(FILE *out, const struct report *r)
{
	const struct run *run = &r->run;
	char t1[40], t2[40], fl[128];
	size_t i;

	iso_time(run->started, t1, sizeof(t1));
	iso_time(run->ended, t2, sizeof(t2));
	fprintf(out, "## TimeGlass report, run %lld\n\n", (long long)run->id);
	fprintf(out, "| Run | |\n|---|---|\n");
	fprintf(out, "| started | %s |\n| ended | %s |\n| duration | %.3f s |\n", t1,
		run->has_ended ? t2 : "(still running)", run->duration_s);
	fputs("| targets ", out);
	md_cell(out, run->targets);
	fputs("|\n| kernel ", out);
	md_cell(out, run->kernel);
	fputs("|\n| version ", out);
	md_cell(out, run->version);
	fprintf(out, "|\n| requests | %lld |\n| incomplete requests | %lld |\n",
		(long long)run->requests, (long long)run->incomplete);
	fprintf(out, "| requests with lost events | %lld |\n| events | %lld |\n",
		(long long)run->lost, (long long)run->events);
	fprintf(out, "| dropped events | %lld |\n\n", (long long)run->dropped);
	if (run->dropped > 0)
		fprintf(out,
			"> **Warning:** %lld events were dropped; some requests are missing or "
			"incomplete.\n\n",
			(long long)run->dropped);

	fprintf(out, "### Endpoints\n\n");
	if (!r->neps)
		fprintf(out, "No requests.\n\n");
	else
		fprintf(out, "| Method | Route | Count | Errors | req/s | p50 ms | p90 ms | p95 ms "
			     "| p99 ms | max ms | mean resp B |\n"
			     "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (i = 0; i < r->neps; i++) {
		const struct endpoint *e = &r->eps[i];
		char c[NPCT][24];

		lat_cells(e, c);
		md_cell(out, e->method);
		md_cell(out, e->route);
		fprintf(out, "| %lld | %lld | %.1f | %s | %s | %s | %s | %s | %.0f |\n",
			(long long)e->count, (long long)e->errors, e->rps, c[0], c[1], c[2], c[3],
			c[4], e->mean_resp);
	}
	if (r->neps)
		fputc('\n', out);
	if (r->has_usage) {
		fprintf(out, "### Resources per request\n\n| Method | Route | With CPU | CPU ms | "
			     "CPU p95 ms | GC ms | minor faults | heap KiB |\n"
			     "|---|---|---:|---:|---:|---:|---:|---:|\n");
		for (i = 0; i < r->neps; i++) {
			const struct endpoint *e = &r->eps[i];
			char c[5][24];

			usage_cells(e, c);
			md_cell(out, e->method);
			md_cell(out, e->route);
			fprintf(out, "| %lld | %s | %s | %s | %s | %s |\n", (long long)e->usage_n,
				c[0], c[1], c[2], c[3], c[4]);
		}
		fputc('\n', out);
	}
	if (!r->nslow)
		return;
	fprintf(out, "### Slowest requests\n\n| Start | Method | Path | Route | Status | ms | "
		     "TTFB ms | Flags |\n|---|---|---|---|---:|---:|---:|---|\n");
	for (i = 0; i < r->nslow; i++) {
		const struct slow *s = &r->slow[i];

		iso_time(s->start, t1, sizeof(t1));
		flags_text(s->flags, fl, sizeof(fl));
		fprintf(out, "| %s ", t1);
		md_cell(out, s->method);
		md_cell(out, s->path);
		md_cell(out, s->route);
		if (s->status)
			fprintf(out, "| %d ", s->status);
		else
			fputs("| - ", out);
		fprintf(out, "| %.2f ", ms(s->duration));
		if (s->has_ttfb)
			fprintf(out, "| %.2f ", ms(s->ttfb));
		else
			fputs("| - ", out);
		fprintf(out, "| %s |\n", fl);
	}
	fputc('\n', out);
}

/* ---- JSON. */

static cJSON *str_or_null(const char *s)
{
	return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *json_run(const struct run *run)
{
	cJSON *o = cJSON_CreateObject();
	char t[40];

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "id", (double)run->id);
	iso_time(run->started, t, sizeof(t));
	cJSON_AddStringToObject(o, "started", t);
	iso_time(run->ended, t, sizeof(t));
	cJSON_AddItemToObject(o, "ended", str_or_null(run->has_ended ? t : NULL));
	cJSON_AddNumberToObject(o, "duration_s", run->duration_s);
	cJSON_AddItemToObject(o, "targets", str_or_null(run->targets));
	cJSON_AddItemToObject(o, "kernel", str_or_null(run->kernel));
	cJSON_AddItemToObject(o, "version", str_or_null(run->version));
	cJSON_AddNumberToObject(o, "requests", (double)run->requests);
	cJSON_AddNumberToObject(o, "events", (double)run->events);
	cJSON_AddNumberToObject(o, "dropped_events", (double)run->dropped);
	cJSON_AddNumberToObject(o, "incomplete_requests", (double)run->incomplete);
	cJSON_AddNumberToObject(o, "lost_event_requests", (double)run->lost);
	return o;
}

static cJSON *json_endpoint(const struct endpoint *e)
{
	static const char *const names[NPCT] = {"p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"};
	cJSON *o = cJSON_CreateObject();
	int k;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "method", e->method);
	cJSON_AddItemToObject(o, "route", str_or_null(e->route));
	cJSON_AddNumberToObject(o, "count", (double)e->count);
	cJSON_AddNumberToObject(o, "errors", (double)e->errors);
	cJSON_AddNumberToObject(o, "throughput_rps", e->rps);
	for (k = 0; k < NPCT; k++)
		if (e->timed)
			cJSON_AddNumberToObject(o, names[k], ms(e->pct[k]));
		else
			cJSON_AddNullToObject(o, names[k]); /* no request with a duration */
	cJSON_AddNumberToObject(o, "mean_resp_bytes", e->mean_resp);
	/* resources per request (schema v5): null when no request has figures */
	if (e->usage_n) {
		cJSON_AddNumberToObject(o, "cpu_ms_mean", e->cpu_mean / 1e6);
		cJSON_AddNumberToObject(o, "cpu_ms_p95", ms(e->cpu_p95));
		cJSON_AddNumberToObject(o, "gc_ms_mean", e->gc_mean / 1e6);
		cJSON_AddNumberToObject(o, "minflt_mean", e->minflt_mean);
		cJSON_AddNumberToObject(o, "heap_bytes_mean", e->heap_mean);
	} else {
		cJSON_AddNullToObject(o, "cpu_ms_mean");
		cJSON_AddNullToObject(o, "cpu_ms_p95");
		cJSON_AddNullToObject(o, "gc_ms_mean");
		cJSON_AddNullToObject(o, "minflt_mean");
		cJSON_AddNullToObject(o, "heap_bytes_mean");
	}
	cJSON_AddNumberToObject(o, "usage_requests", (double)e->usage_n);
	return o;
}

static cJSON *json_slow(const struct slow *s)
{
	cJSON *o = cJSON_CreateObject(), *flags;
	char t[40];
	size_t i;

	if (!o)
		return NULL;
	iso_time(s->start, t, sizeof(t));
	cJSON_AddStringToObject(o, "start", t);
	cJSON_AddItemToObject(o, "method", str_or_null(s->method));
	cJSON_AddItemToObject(o, "path", str_or_null(s->path));
	cJSON_AddItemToObject(o, "route", str_or_null(s->route));
	if (s->status)
		cJSON_AddNumberToObject(o, "status", s->status);
	else
		cJSON_AddNullToObject(o, "status");
	cJSON_AddNumberToObject(o, "duration_ms", ms(s->duration));
	if (s->has_ttfb)
		cJSON_AddNumberToObject(o, "ttfb_ms", ms(s->ttfb));
	else
		cJSON_AddNullToObject(o, "ttfb_ms");
	flags = cJSON_AddArrayToObject(o, "flags");
	for (i = 0; flags && i < NFLAGS; i++)
		if (s->flags & (1u << i))
			cJSON_AddItemToArray(flags, cJSON_CreateString(flag_names[i]));
	return o;
}

static int print_json(FILE *out, const struct report *r)
{
	cJSON *root = cJSON_CreateObject(), *eps, *slow;
	char *text = NULL;
	int ret = -ENOMEM;
	size_t i;

	if (!root)
		return -ENOMEM;
	cJSON_AddItemToObject(root, "run", json_run(&r->run));
	eps = cJSON_AddArrayToObject(root, "endpoints");
	slow = cJSON_AddArrayToObject(root, "slowest");
	if (!eps || !slow)
		goto out;
	for (i = 0; i < r->neps; i++) {
		cJSON *e = json_endpoint(&r->eps[i]);
		double cm = 0, mm = 0;

		tg_report_sql__endpoint(r->sql, r->eps[i].method, r->eps[i].route, &cm, &mm);
		cJSON_AddNumberToObject(e, "sql_count_mean", cm);
		cJSON_AddNumberToObject(e, "sql_ms_mean", mm);
		cJSON_AddItemToArray(eps, e);
	}
	tg_report_sql__json(root, r->sql);
	for (i = 0; i < r->nslow; i++)
		cJSON_AddItemToArray(slow, json_slow(&r->slow[i]));
	text = cJSON_Print(root);
	if (!text)
		goto out;
	fprintf(out, "%s\n", text);
	ret = 0;
out:
	free(text);
	cJSON_Delete(root);
	return ret;
}

int tg_report__write(const char *db_path, const struct tg_report_opts *opts, FILE *out, char *err,
		     size_t errlen)
{
	struct tg_report_opts def = {
	    .format = TG_REPORT_TEXT, .run_id = 0, .slowest = DEFAULT_SLOWEST};
	struct report r;
	sqlite3 *db = NULL;
	int ret;

	memset(&r, 0, sizeof(r));
	if (!err)
		errlen = 0;
	if (!db_path || !out) {
		snprintf(err, errlen, "no database or output given");
		return -EINVAL;
	}
	if (!opts)
		opts = &def;
	ret = open_db(db_path, &db, err, errlen);
	if (ret)
		goto out;
	/* One read transaction: every query sees the same snapshot even while
	 * the tracer commits batches. */
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		ret = sql_fail(db, db_path, err, errlen);
		goto out;
	}
	ret = load_run(db, db_path, opts->run_id, &r.run, err, errlen);
	if (!ret)
		ret = load_endpoints(db, db_path, &r, err, errlen);
	if (!ret)
		ret = load_slowest(db, db_path, opts->slowest < 0 ? DEFAULT_SLOWEST : opts->slowest,
				   &r, err, errlen);
	if (!ret && tg_report_sql__load(db, r.run.id, opts->n_plus_one, opts->slow_sql_ms, &r.sql))
		snprintf(err, errlen, "the SQL part of the report could not be read");
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (ret)
		goto out;
	switch (opts->format) {
	case TG_REPORT_JSON:
		ret = print_json(out, &r);
		break;
	case TG_REPORT_MARKDOWN:
		print_markdown(out, &r);
		tg_report_sql__print(out, r.sql, true);
		break;
	default:
		print_text(out, &r);
		tg_report_sql__print(out, r.sql, false);
		break;
	}
	if (!ret && (fflush(out) || ferror(out)))
		ret = -EIO;
	if (ret)
		snprintf(err, errlen, "writing the report failed: %s", strerror(-ret));
out:
	report_free(&r);
	sqlite3_close(db);
	return ret;
}

int tg_report__parse_format(const char *s, enum tg_report_format *out)
{
	if (!s || !out)
		return -EINVAL;
	if (!strcmp(s, "text"))
		*out = TG_REPORT_TEXT;
	else if (!strcmp(s, "json"))
		*out = TG_REPORT_JSON;
	else if (!strcmp(s, "markdown") || !strcmp(s, "md"))
		*out = TG_REPORT_MARKDOWN;
	else
		return -EINVAL;
	return 0;
}
