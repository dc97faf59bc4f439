/* SPDX-License-Identifier: MIT */
/*
 * The SQL part of the report (report_sql.h). Everything is read with a few
 * aggregate queries into cJSON values at load time; the text and Markdown
 * printers walk the same values the JSON output emits, so the three formats
 * cannot disagree.
 */
#include "report_sql.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FINDINGS_MAX 10

struct ep_sql {
	char *method, *route;
	double count_mean, ms_mean;
};

struct tg_report_sql {
	struct ep_sql *eps;
	size_t neps;
	cJSON *top;	 /* array of statement objects */
	cJSON *findings; /* array of finding objects */
	int n_plus_one;
	double slow_ms;
};

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "";
}

static int prep(sqlite3 *db, const char *sql, int64_t run_id, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(*st, 1, run_id);
	return 0;
}

static int load_endpoints(sqlite3 *db, int64_t run_id, struct tg_report_sql *r)
{
	sqlite3_stmt *st;
	int ret = prep(db,
		       "SELECT method, coalesce(route, ''), avg(coalesce(sql_count, 0)),"
		       " avg(coalesce(sql_ns, 0)) / 1e6 FROM requests WHERE run_id = ?"
		       " GROUP BY method, route",
		       run_id, &st);

	if (ret)
		return ret;
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct ep_sql *n = realloc(r->eps, (r->neps + 1) * sizeof(*n));

		if (!n) {
			ret = -ENOMEM;
			break;
		}
		r->eps = n;
		n += r->neps;
		n->method = strdup(col_text(st, 0));
		n->route = strdup(col_text(st, 1));
		n->count_mean = sqlite3_column_double(st, 2);
		n->ms_mean = sqlite3_column_double(st, 3);
		r->neps++;
		if (!n->method || !n->route) {
			ret = -ENOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	return ret;
}

static double p95_ms(sqlite3 *db, int64_t run_id, int64_t fp, int64_t n)
{
	sqlite3_stmt *st;
	double v = 0;

	if (prep(db,
		 "SELECT duration_ns FROM queries WHERE run_id = ? AND fingerprint = ?"
		 " ORDER BY duration_ns LIMIT 1 OFFSET ?",
		 run_id, &st))
		return 0;
	sqlite3_bind_int64(st, 2, fp);
	sqlite3_bind_int64(st, 3, (int64_t)ceil(0.95 * (double)n) - 1);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_double(st, 0) / 1e6;
	sqlite3_finalize(st);
	return v;
}

static int load_top(sqlite3 *db, int64_t run_id, struct tg_report_sql *r)
{
	sqlite3_stmt *st;
	char fp[24];
	int ret = prep(db,
		       "SELECT fingerprint, min(statement), count(*), sum(duration_ns) / 1e6,"
		       " avg(duration_ns) / 1e6, sum(coalesce(rows, 0)) FROM queries"
		       " WHERE run_id = ? GROUP BY fingerprint ORDER BY sum(duration_ns) DESC"
		       " LIMIT 10",
		       run_id, &st);

	if (ret)
		return ret;
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *o = cJSON_CreateObject();
		int64_t n = sqlite3_column_int64(st, 2);

		if (!o) {
			ret = -ENOMEM;
			break;
		}
		snprintf(fp, sizeof(fp), "%016llx",
			 (unsigned long long)sqlite3_column_int64(st, 0));
		cJSON_AddStringToObject(o, "statement", col_text(st, 1));
		cJSON_AddStringToObject(o, "fingerprint", fp);
		cJSON_AddNumberToObject(o, "count", (double)n);
		cJSON_AddNumberToObject(o, "total_ms", sqlite3_column_double(st, 3));
		cJSON_AddNumberToObject(o, "mean_ms", sqlite3_column_double(st, 4));
		cJSON_AddNumberToObject(o, "p95_ms",
					p95_ms(db, run_id, sqlite3_column_int64(st, 0), n));
		cJSON_AddNumberToObject(o, "rows", (double)sqlite3_column_int64(st, 5));
		cJSON_AddItemToArray(r->top, o);
	}
	sqlite3_finalize(st);
	return ret;
}

/* Run sql (run_id bound first, extra second when >= 0) and add one finding
 * of kind per row: columns are (count or ms value, statement/detail, request
 * id, method, path, extra text). */
static int add_findings(sqlite3 *db, int64_t run_id, struct tg_report_sql *r, const char *kind,
			const char *sql, double extra)
{
	sqlite3_stmt *st;
	int ret = prep(db, sql, run_id, &st);

	if (ret)
		return ret;
	if (extra >= 0)
		sqlite3_bind_double(st, 2, extra);
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *o = cJSON_CreateObject();

		if (!o)
			return sqlite3_finalize(st), -ENOMEM;
		cJSON_AddStringToObject(o, "kind", kind);
		cJSON_AddNumberToObject(o, "value", sqlite3_column_double(st, 0));
		cJSON_AddStringToObject(o, "statement", col_text(st, 1));
		if (sqlite3_column_type(st, 2) == SQLITE_NULL)
			cJSON_AddNullToObject(o, "request_id");
		else
			cJSON_AddNumberToObject(o, "request_id",
						(double)sqlite3_column_int64(st, 2));
		cJSON_AddStringToObject(o, "method", col_text(st, 3));
		cJSON_AddStringToObject(o, "path", col_text(st, 4));
		cJSON_AddStringToObject(o, "detail", col_text(st, 5));
		cJSON_AddItemToArray(r->findings, o);
	}
	sqlite3_finalize(st);
	return 0;
}

static int load_findings(sqlite3 *db, int64_t run_id, struct tg_report_sql *r)
{
	int ret;

	/* One finding per (endpoint, statement): the most repeats seen in one
	 * request, an example request, and how many requests did it. */
	ret = add_findings(
	    db, run_id, r, "n_plus_one",
	    "SELECT max(c), min(statement), min(request_id), method, route,"
	    " printf('%d requests', count(*)) FROM ("
	    " SELECT count(*) AS c, min(q.statement) AS statement, q.request_id,"
	    " r.method AS method, coalesce(r.route, r.path) AS route, q.fingerprint AS fp"
	    " FROM queries q JOIN requests r ON r.id = q.request_id"
	    " WHERE q.run_id = ? GROUP BY q.request_id, q.fingerprint HAVING c >= ?)"
	    " GROUP BY method, route, fp ORDER BY max(c) DESC, count(*) DESC LIMIT 10",
	    r->n_plus_one);
	if (!ret)
		ret = add_findings(
		    db, run_id, r, "slow_statement",
		    "SELECT q.duration_ns / 1e6, q.statement, q.request_id, r.method, r.path, ''"
		    " FROM queries q LEFT JOIN requests r ON r.id = q.request_id"
		    " WHERE q.run_id = ? AND q.duration_ns >= ? * 1e6"
		    " ORDER BY q.duration_ns DESC LIMIT 10",
		    r->slow_ms);
	if (!ret)
		ret = add_findings(db, run_id, r, "sql_error",
				   "SELECT count(*), min(statement), min(request_id), '', '',"
				   " sqlstate || ' ' || coalesce(error, '') FROM queries"
				   " WHERE run_id = ? AND sqlstate IS NOT NULL"
				   " GROUP BY sqlstate, error ORDER BY count(*) DESC LIMIT 10",
				   -1);
	if (!ret)
		ret = add_findings(db, run_id, r, "sql_heavy_request",
				   "SELECT 100.0 * sql_ns / duration_ns, '', id, method, path,"
				   " printf('%.2f of %.2f ms in %d statements', sql_ns / 1e6,"
				   " duration_ns / 1e6, sql_count) FROM requests WHERE run_id = ?"
				   " AND duration_ns > 0 AND sql_ns * 2 > duration_ns"
				   " ORDER BY duration_ns DESC LIMIT 10",
				   -1);
	return ret;
}

int tg_report_sql__load(sqlite3 *db, int64_t run_id, int n_plus_one, double slow_ms,
			struct tg_report_sql **out)
{
	struct tg_report_sql *r;
	sqlite3_stmt *st;
	int ret;

	*out = NULL;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM queries LIMIT 0", -1, &st, NULL) != SQLITE_OK)
		return 0; /* schema older than v4 */
	sqlite3_finalize(st);
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->n_plus_one = n_plus_one > 0 ? n_plus_one : TG_REPORT_N_PLUS_ONE;
	r->slow_ms = slow_ms > 0 ? slow_ms : TG_REPORT_SLOW_SQL_MS;
	r->top = cJSON_CreateArray();
	r->findings = cJSON_CreateArray();
	ret = !r->top || !r->findings ? -ENOMEM : load_endpoints(db, run_id, r);
	if (!ret)
		ret = load_top(db, run_id, r);
	if (!ret)
		ret = load_findings(db, run_id, r);
	if (ret) {
		tg_report_sql__free(r);
		return ret;
	}
	*out = r;
	return 0;
}

void tg_report_sql__free(struct tg_report_sql *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->neps; i++) {
		free(r->eps[i].method);
		free(r->eps[i].route);
	}
	free(r->eps);
	cJSON_Delete(r->top);
	cJSON_Delete(r->findings);
	free(r);
}

bool tg_report_sql__endpoint(const struct tg_report_sql *r, const char *method, const char *route,
			     double *count_mean, double *ms_mean)
{
	for (size_t i = 0; r && i < r->neps; i++) {
		if (strcmp(r->eps[i].method, method ? method : "") != 0 ||
		    strcmp(r->eps[i].route, route ? route : "") != 0)
			continue;
		*count_mean = r->eps[i].count_mean;
		*ms_mean = r->eps[i].ms_mean;
		return true;
	}
	return false;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The statement on one line, at most 80 characters, '|' escaped for Markdown. */
static void stmt_out(FILE *out, const char *s, bool markdown)
{
	int n = 0;

	for (; *s && n < 80; s++, n++) {
		if (*s == '\n' || *s == '\r' || *s == '\t')
			fputc(' ', out);
		else if (markdown && *s == '|')
			fputs("\\|", out);
		else
			fputc(*s, out);
	}
	if (*s)
		fputs("...", out);
}

static void print_finding(FILE *out, const struct tg_report_sql *r, const cJSON *f, bool md)
{
	const char *kind = str(f, "kind");

	fputs(md ? "- " : "  ", out);
	if (!strcmp(kind, "n_plus_one"))
		fprintf(out,
			"N+1: %s %s ran the same statement up to %.0f times per request (>= %d) in "
			"%s, e.g. request %.0f: ",
			str(f, "method"), str(f, "path"), num(f, "value"), r->n_plus_one,
			str(f, "detail"), num(f, "request_id"));
	else if (!strcmp(kind, "slow_statement"))
		fprintf(out, "slow statement: %.2f ms (>= %.0f ms) in %s %s: ", num(f, "value"),
			r->slow_ms, str(f, "method")[0] ? str(f, "method") : "(no request)",
			str(f, "path"));
	else if (!strcmp(kind, "sql_error"))
		fprintf(out, "SQL error %s (%.0f times): ", str(f, "detail"), num(f, "value"));
	else
		fprintf(out, "%s %s spent %.0f %% of its time in SQL (%s)", str(f, "method"),
			str(f, "path"), num(f, "value"), str(f, "detail"));
	if (md && str(f, "statement")[0])
		fputc('`', out);
	stmt_out(out, str(f, "statement"), false);
	if (md && str(f, "statement")[0])
		fputc('`', out);
	fputc('\n', out);
}

void tg_report_sql__print(FILE *out, const struct tg_report_sql *r, bool md)
{
	const cJSON *o;

	if (!r || cJSON_GetArraySize(r->top) == 0)
		return;
	fputs(md ? "\n## SQL statements (top by total time)\n\n"
		 : "\nSQL statements (top by total time)\n",
	      out);
	if (md)
		fputs("| statement | fingerprint | count | mean ms | p95 ms | rows |\n"
		      "|---|---|---:|---:|---:|---:|\n",
		      out);
	else
		fprintf(out, "  %7s %9s %9s %9s  %-16s %s\n", "count", "mean_ms", "p95_ms", "rows",
			"fingerprint", "statement");
	cJSON_ArrayForEach(o, r->top)
	{
		if (md) {
			fputs("| ", out);
			stmt_out(out, str(o, "statement"), true);
			fprintf(out, " | %s | %.0f | %.2f | %.2f | %.0f |\n", str(o, "fingerprint"),
				num(o, "count"), num(o, "mean_ms"), num(o, "p95_ms"),
				num(o, "rows"));
		} else {
			fprintf(out, "  %7.0f %9.2f %9.2f %9.0f  %-16s ", num(o, "count"),
				num(o, "mean_ms"), num(o, "p95_ms"), num(o, "rows"),
				str(o, "fingerprint"));
			stmt_out(out, str(o, "statement"), false);
			fputc('\n', out);
		}
	}
	fputs(
	    md ? "\n## SQL per endpoint (means per request)\n\n| endpoint | statements | SQL ms |\n"
		 "|---|---:|---:|\n"
	       : "\nSQL per endpoint (means per request)\n",
	    out);
	for (size_t i = 0; i < r->neps; i++)
		if (r->eps[i].count_mean > 0)
			fprintf(out,
				md ? "| %s %s | %.2f | %.2f |\n" : "  %-6s %-40s %8.2f %10.2f ms\n",
				r->eps[i].method, r->eps[i].route, r->eps[i].count_mean,
				r->eps[i].ms_mean);
	fputs(md ? "\n## SQL findings\n\n" : "\nSQL findings\n", out);
	if (cJSON_GetArraySize(r->findings) == 0)
		fputs(md ? "None.\n" : "  none\n", out);
	cJSON_ArrayForEach(o, r->findings)
	{
		print_finding(out, r, o, md);
	}
}

void tg_report_sql__json(cJSON *root, const struct tg_report_sql *r)
{
	cJSON_AddItemToObject(root, "top_statements",
			      r ? cJSON_Duplicate(r->top, 1) : cJSON_CreateArray());
	cJSON_AddItemToObject(root, "sql_findings",
			      r ? cJSON_Duplicate(r->findings, 1) : cJSON_CreateArray());
}
