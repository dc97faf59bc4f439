/* SPDX-License-Identifier: MIT */
/*
 * Python stack samples in the database (schema v3, docs/schema.md): the
 * writer side (samples rows, frames/stacks interned as a trie with an
 * in-memory cache of ids, profile_endpoint counts) through tg_store__call, and
 * the reader side that turns a run's samples of one endpoint or one request
 * back into a flame graph (struct tg_fg).
 */
#ifndef TG_PROFILE_STORE_H
#define TG_PROFILE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

struct tg_store;
struct tg_fg;

/* A symbolised frame. The writer keys its cache on the address of this
 * struct, so one (name, file, line) should have one struct, and the struct
 * must stay valid and unchanged until the store is closed. */
struct tg_pframe {
	const char *name; /* qualname */
	const char *file;
	int line;
};

/* One sample as the writer takes it. */
struct tg_psample {
	uint64_t ts_ns; /* CLOCK_MONOTONIC */
	uint32_t pid, tid;
	int64_t request_id; /* 0: no request */
	uint32_t flags;	    /* TG_SAMPLE_* */
	size_t nframes;
	const struct tg_pframe *const *frames; /* root (outermost) first */
};

struct tg_pstore;

/* A writer for store (which must outlive it; close the store before freeing
 * this). NULL + errno on failure. */
struct tg_pstore *tg_pstore__new(struct tg_store *store);
/* Accepts NULL. Call after tg_store__close (the writer thread uses it). */
void tg_pstore__free(struct tg_pstore *ps);

/* Queue one sample (copied): a samples row with its interned stack
 * (stack_id 0 when nframes is 0) and, when request_id is set, +1 in
 * profile_endpoint for that request's (method, route) (the request must be
 * queued before). Returns 0 or -errno. */
int tg_pstore__add(struct tg_pstore *ps, const struct tg_psample *smp);

/* Queue the release of the writer's prepared statements: call once no more
 * samples will be added, before tg_store__end_run/tg_store__close (SQLite
 * refuses to close with statements open). Returns 0 or -errno. */
int tg_pstore__finish(struct tg_pstore *ps);

/* Queue "runs.sample_hz = hz" for the current run. Returns 0 or -errno. */
int tg_pstore__set_hz(struct tg_pstore *ps, uint32_t hz);

/* Samples/interning counters (writer thread's view; read after a flush). */
struct tg_pstore_stats {
	uint64_t samples;
	uint64_t frames_inserted;
	uint64_t stacks_inserted;
	uint64_t cache_resets; /* a rolled back batch forced the id caches to be rebuilt */
};
void tg_pstore__stats(const struct tg_pstore *ps, struct tg_pstore_stats *out);

/* Reader. Frame names are "qualname (file:line)"; a sample without a Python
 * stack shows as one frame "[no Python stack]". */

/* Add to fg the samples of run_id's endpoint (method NULL: every method of
 * route) from profile_endpoint. Returns 0, -ENOENT (no such endpoint in the
 * run's requests), -EIO (SQLite error) or -ENOMEM. *total gets the samples
 * added (may be NULL). */
int tg_pstore__load_endpoint(sqlite3 *db, int64_t run_id, const char *method, const char *route,
			     struct tg_fg *fg, uint64_t *total);

/* Add to fg the samples of request request_id (any run). Returns 0, -ENOENT
 * (no such request), -EIO or -ENOMEM. */
int tg_pstore__load_request(sqlite3 *db, int64_t request_id, struct tg_fg *fg, uint64_t *total);

/* Add to fg every sample of run_id (requests or not). Returns 0, -EIO or
 * -ENOMEM. */
int tg_pstore__load_run(sqlite3 *db, int64_t run_id, struct tg_fg *fg, uint64_t *total);

/* The frames of stack_id, root first, as "qualname (file:line)" strings in
 * out[0..] (each malloc'd; the caller frees them). Returns the count, or
 * -ENOENT (a broken chain), -E2BIG (more than cap), -EIO, -ENOMEM. */
int tg_pstore__stack_names(sqlite3 *db, int64_t stack_id, char **out, size_t cap);

#endif
