/* SPDX-License-Identifier: MIT */
/*
 * The SQL part of the report (report.c): per-endpoint mean statement count
 * and SQL time, the top statements by total time, and findings (N+1, slow
 * statements, errors, requests spending most of their time in SQL), read
 * from the queries table (schema v4). docs/report.md.
 */
#ifndef TG_REPORT_SQL_H
#define TG_REPORT_SQL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#define TG_REPORT_N_PLUS_ONE 5 /* default: same fingerprint >= 5 times in one request */
#define TG_REPORT_SLOW_SQL_MS 100.0
#define TG_REPORT_TOP_SQL 10

struct tg_report_sql;

/* Load the SQL figures of run_id from db (inside the caller's read
 * transaction). n_plus_one <= 0 and slow_ms <= 0 take the defaults. *out is
 * set to NULL when the database has no queries table (older schema).
 * Returns 0 or -errno. */
int tg_report_sql__load(sqlite3 *db, int64_t run_id, int n_plus_one, double slow_ms,
			struct tg_report_sql **out);

/* Accepts NULL. */
void tg_report_sql__free(struct tg_report_sql *r);

/* Per-endpoint means over all its requests (requests without SQL count 0).
 * Returns false when r is NULL or the endpoint is unknown. */
bool tg_report_sql__endpoint(const struct tg_report_sql *r, const char *method, const char *route,
			     double *count_mean, double *ms_mean);

/* The sections "SQL statements" and "SQL findings" as text or Markdown.
 * Prints nothing when r is NULL or the run has no statements. */
void tg_report_sql__print(FILE *out, const struct tg_report_sql *r, bool markdown);

/* {"top_statements": [...], "findings": [...]} added to root. */
void tg_report_sql__json(cJSON *root, const struct tg_report_sql *r);

#endif
