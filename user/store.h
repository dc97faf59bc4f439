/* SPDX-License-Identifier: MIT */
/*
 * The SQLite store: one database file per trace (WAL), a versioned schema
 * (PRAGMA user_version + migrations, docs/schema.md), and a writer thread so
 * the event consumer never waits on disk. Rows are queued by the add
 * functions and written in batches, one transaction per batch, ROLLBACK on any
 * error (the batch is retried row by row so one bad row loses only itself,
 * and every row lost is counted).
 */
#ifndef TG_STORE_H
#define TG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "request.h"

struct tg_routes;

/* The schema version this build writes (PRAGMA user_version). */
#define TG_SCHEMA_VERSION 6

struct tg_run_info {
	uint64_t started_ns;	   /* Unix epoch ns */
	uint64_t mono_to_epoch_ns; /* add to a CLOCK_MONOTONIC ns to get Unix epoch ns */
	const char *targets;	   /* free text: "--uvicorn", "pid 42", "-- uvicorn app:app" */
	const char *kernel;	   /* uname -r */
	const char *version;	   /* timeglass version */
};

struct tg_store_stats {
	uint64_t requests_written;
	uint64_t rows_failed; /* rows that could not be written (counted, logged) */
	uint64_t batches;
};

struct tg_store;

/* Open (creating if needed) the database at path, migrate it to
 * TG_SCHEMA_VERSION and start the writer thread. A database from a newer
 * TimeGlass is refused. On failure returns NULL, sets errno and writes a
 * message for the user into err (errlen bytes). */
struct tg_store *tg_store__open(const char *path, char *err, size_t errlen);

/* Insert a row into runs and make it the run that later rows belong to.
 * When the file holds earlier runs' requests (up to the reindex limit,
 * tg_store__set_reindex_max), the indexes tg_store__end_run builds are
 * dropped first, so that the new rows do not update them one by one; the
 * end of the run builds them again over every row.
 * Returns 0 or -errno; *run_id gets the new id. Synchronous. */
int tg_store__begin_run(struct tg_store *s, const struct tg_run_info *info, int64_t *run_id);

/* The largest number of earlier requests (by id) for which
 * tg_store__begin_run drops the deferred indexes (default 1,000,000: 3.5-6.5
 * s of index building per million rows in the file at the end of the run
 * here). Above it they are kept, updated row by row, and a warning says so.
 * For tests and tuning. */
void tg_store__set_reindex_max(struct tg_store *s, int64_t rows);

/* Record that pid became a target of the current run (cmdline may be NULL;
 * seen_ns is CLOCK_MONOTONIC ns, converted like a request's times). Queued.
 * Returns 0 or -errno (-EINVAL before tg_store__begin_run). */
int tg_store__add_target(struct tg_store *s, uint32_t pid, const char *cmdline, uint64_t seen_ns);

/* Queue one request (times in CLOCK_MONOTONIC ns; converted with the run's
 * mono_to_epoch_ns). The record is copied. Blocks while the queue is full.
 * Returns 0 or -errno (-EINVAL before tg_store__begin_run). A row the
 * database rejects is logged and counted in rows_failed, not returned. */
int tg_store__add_request(struct tg_store *s, const struct tg_request *r);

/* Like tg_store__add_request, and *id (may be NULL) gets the row's id,
 * assigned now (unique in the file), so that other rows (samples, queries)
 * can refer to the request before it is written. Returns 0 or -errno. */
int tg_store__add_request_id(struct tg_store *s, const struct tg_request *r, int64_t *id);

/* A write done on the writer thread, in order with the rows queued before
 * and after it, inside the batch's transaction: fn(db, arg, run_id,
 * mono_to_epoch_ns) returns an SQLite result code (SQLITE_OK on success; a
 * failure rolls back the batch, which is then retried job by job). It must
 * not BEGIN/COMMIT. fn may be called twice for the same job after such a
 * retry, so it must be idempotent or make its work part of the transaction
 * only. free_fn(arg), when not NULL, is called once the job is done (or
 * could not be queued). Used by modules that own their own tables
 * (samples, queries). Returns 0 or -errno. */
typedef int (*tg_store_call_fn)(sqlite3 *db, void *arg, int64_t run_id, uint64_t mono_to_epoch_ns);
int tg_store__call(struct tg_store *s, tg_store_call_fn fn, void *arg, void (*free_fn)(void *arg));

/* Re-resolve the routes of the current run's requests of pid whose route was
 * guessed (TG_REQ_ROUTE_GUESSED), against routes (a table learnt late, e.g.
 * after the app started). Queued behind the rows already added; routes must
 * stay valid until the next tg_store__flush() returns. Returns 0 or -errno. */
int tg_store__reroute(struct tg_store *s, uint32_t pid, const struct tg_routes *routes);

/* Wait until everything queued so far is written (or counted as failed).
 * Returns 0 or -errno. */
int tg_store__flush(struct tg_store *s);

/* Close the current run: ended time (epoch ns) and the event counters.
 * Flushes first, then builds the indexes the report uses that are not kept
 * up to date while rows stream in (docs/schema.md; seconds for millions of
 * rows). Returns 0 or -errno. */
int tg_store__end_run(struct tg_store *s, uint64_t ended_ns, uint64_t events, uint64_t dropped);

/* Replace the resources of a request already queued (request_id from
 * tg_store__add_request_id) with u (copied): its usage columns and timeline,
 * NULL when u->flags lacks TG_USAGE_VALID, and the endpoint rollup's CPU/GC
 * sums by the difference. Queued after the request, so applied after its
 * INSERT; a request whose row was never written is skipped silently.
 * Returns 0 or -errno (-EINVAL: s or u NULL, request_id <= 0, no run). */
int tg_store__update_usage(struct tg_store *s, int64_t request_id, const struct tg_usage *u);

/* Queue one sample of a target process (process_stats): mono_ns the
 * CLOCK_MONOTONIC time of the reading (stored as epoch ns), rss_bytes its
 * resident set, cpu_ns its user + system CPU time so far, threads its thread
 * count. Returns 0 or -errno (-EINVAL before tg_store__begin_run). */
int tg_store__add_process_stat(struct tg_store *s, uint32_t pid, uint64_t mono_ns,
			       uint64_t rss_bytes, uint64_t cpu_ns, uint32_t threads);

/* requests.timeline (docs/schema.md, "Version 5"): one TG_TIMELINE_REC-byte
 * little-endian record per span: u32 start_us, u32 dur_us, u32 cpu_us,
 * u32 tid, u8 kind, 3 zero bytes. */
#define TG_TIMELINE_REC 20

/* Pack u's spans (at most TG_SPANS_MAX, and what fits in cap) into out.
 * Returns the bytes written (0: no spans, or u/out NULL). */
size_t tg_timeline__pack(const struct tg_usage *u, uint8_t *out, size_t cap);

/* Unpack up to max spans of a timeline blob of len bytes into out (a trailing
 * partial record is ignored). Returns the number of spans. */
size_t tg_timeline__unpack(const void *blob, size_t len, struct tg_span *out, size_t max);

/* Counters so far. */
void tg_store__stats(struct tg_store *s, struct tg_store_stats *out);

/* Flush, stop the writer thread, close the database. Accepts NULL. */
void tg_store__close(struct tg_store *s);

#endif
