/* SPDX-License-Identifier: MIT */
/*
 * Internal interface between the server (server.c) and the JSON API handlers
 * (api_*.c; docs/api.md). A handler gets a context with the query string and
 * a read-only database connection, puts its answer in ctx->out (or a message
 * in ctx->err) and returns the HTTP status. Every value from the request is
 * bound as an SQL parameter, never pasted into SQL.
 */
#ifndef TG_API_H
#define TG_API_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "server.h"

struct api_ctx {
	const struct tg_server_cfg *cfg;
	sqlite3 *db;	   /* read-only */
	const char *query; /* raw query string, may be NULL */
	const char *rest;  /* the URI after the handler's prefix ("" or "/12") */
	cJSON *out;	   /* the answer (an object), owned by the caller after return */
	/* Or a non-JSON answer, sent instead of out when the status is 200:
	 * malloc'd (freed by the caller), of Content-Type body_type (static). */
	char *body;
	size_t body_len;
	const char *body_type;
	char err[256]; /* the message of a 4xx/5xx */
};

typedef int (*api_handler)(struct api_ctx *c);

int api_status(struct api_ctx *c);
int api_runs(struct api_ctx *c);
int api_overview(struct api_ctx *c);
int api_endpoints(struct api_ctx *c);
int api_requests(struct api_ctx *c);
int api_flamegraph(struct api_ctx *c); /* api_profile.c */
int api_sql(struct api_ctx *c);	       /* api_sql.c: /api/sql/top, /api/sql/findings */
int api_process(struct api_ctx *c);    /* api_usage.c: /api/process (process_stats) */

/* ---- Sections other handlers add when the tables have data (api_profile.c,
 * api_sql.c). Each returns 0 (added, or nothing to add: an older schema, no
 * rows) or an HTTP status with the message set (a database error: 500). */

/* GET /api/requests/ID: "sql" (statements, start_ms relative to the request's
 * start), "sql_count", "sql_ms" when the request has statements. */
int api_request_sql(struct api_ctx *c, int64_t request_id, cJSON *req);
/* GET /api/requests/ID: "samples": N when the request has stack samples. */
int api_request_samples(struct api_ctx *c, int64_t request_id, cJSON *req);
/* GET /api/requests/ID (api_usage.c): "usage": null when the request has no
 * usage figures, else the object of docs/api.md (CPU, waiting, faults, heap,
 * GC, timeline). */
int api_request_usage(struct api_ctx *c, int64_t request_id, cJSON *req);
/* GET /api/endpoints: "mean_sql_ms" and "sql_count" (means per request) on
 * each endpoint object of arr when any request of the run has sql_count. */
int api_endpoints_sql(struct api_ctx *c, int64_t run_id, cJSON *arr);

/* True when the database has the table name (older schemas lack some). */
bool api_has_table(sqlite3 *db, const char *name);

/* ---- Helpers (api_util.c). */

/* Set c->err and return status. */
int api_fail(struct api_ctx *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The decoded query parameter name into buf. Returns 1 when present, 0 when
 * absent, -1 when too long for buf (a 400 for the caller). */
int api_param(struct api_ctx *c, const char *name, char *buf, size_t len);

/* Parse an integer parameter in [min, max]. Returns 0 (absent: *v untouched),
 * 1 (present and valid) or an HTTP status (400, message set). */
int api_int_param(struct api_ctx *c, const char *name, int64_t min, int64_t max, int64_t *v);

/* Pick the run: ?run=ID (must exist: 404) or the latest (404 when none).
 * Returns 0 or an HTTP status (message set). */
int api_run_id(struct api_ctx *c, int64_t *run_id);

/* The run as the JSON object of /api/runs (NULL on error). */
cJSON *api_run_json(sqlite3 *db, int64_t run_id);

/* Add "name": "decimal ns" (a string: epoch ns do not fit a double). */
void api_add_ns(cJSON *o, const char *name, int64_t ns);

/* Add "name": ns as milliseconds with 3 decimals. */
void api_add_ms(cJSON *o, const char *name, int64_t ns);

/* An SQLite failure: log it, 500. */
int api_db_fail(struct api_ctx *c, const char *what);

#endif
