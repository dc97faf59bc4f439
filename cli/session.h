/* SPDX-License-Identifier: MIT */
/*
 * A tracing session: the wiring shared by `trace` and `replay` from events to
 * the database. Every event goes to the recording (when recording), then to
 * the pipeline; finished requests go to the store; target and drop events
 * update the run. Userspace facts (targets, routes, the tracer's own
 * connections) are turned into events too, so a recording replays the same.
 */
#ifndef TG_SESSION_H
#define TG_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tg_store;
struct tg_pipeline;
struct tg_recorder;
struct tg_profile;

struct tg_session {
	struct tg_store *store;
	struct tg_pipeline *pipe;
	struct tg_recorder *rec;
	struct tg_profile *prof; /* Python samples -> requests -> store (profile.h) */
	int64_t run_id;
	uint64_t mono_to_epoch_ns;
	uint64_t kernel_events; /* events of kernel origin seen */
	uint64_t dropped;	/* from the latest TG_EV_DROPS */
	uint64_t emitted;	/* from the latest TG_EV_DROPS */
	uint64_t record_errors;
	_Alignas(8) uint8_t scrub_buf[65536]; /* a data event, scrubbed before recording */
	bool keep_query_values;
	uint32_t *routed_pids; /* pids whose routes arrived: reroute their guesses at the end */
	size_t nrouted;
};

struct tg_session_cfg {
	const char *db_path;
	const char *record_path; /* NULL: no recording */
	bool keep_query_values;
	bool keep_sql_values;	  /* store SQL texts with their literal values */
	const uint16_t *pg_ports; /* PostgreSQL server ports (NULL/0: 5432), see pipeline.h */
	size_t npg_ports;
	const char *targets; /* for the runs table */
	uint32_t sample_hz;  /* the tracer's sampling rate, for runs.sample_hz (0: off/unknown) */
	bool live_symbols;   /* symbolise samples from the live processes (trace, not replay) */
	/* Optional, live: whether pid's requests name every Context they ran in
	 * (per-task accounting on), see tg_profile_cfg.contexts_known. */
	bool (*contexts_known)(void *ctx, uint32_t pid);
	void *contexts_ctx;
	uint64_t mono_to_epoch_ns;
	uint64_t started_ns; /* epoch ns */
};

/* CLOCK_MONOTONIC now, and the offset that turns it into Unix epoch ns. */
uint64_t tg_session__mono_now(void);
uint64_t tg_session__mono_to_epoch(void);

/* Open the database (and recording), start a run. Returns 0, or -errno with a
 * message for the user in err. */
int tg_session__open(struct tg_session *s, const struct tg_session_cfg *cfg, char *err,
		     size_t errlen);

/* Handle one event (record it, then feed it). Returns 0 or -errno. */
int tg_session__event(struct tg_session *s, const void *ev, size_t size);

/* Make a userspace text event (TG_EV_TARGET, TG_EV_ROUTES, TG_EV_IGNORE_PEER)
 * for pid and handle it. Returns 0 or -errno. */
int tg_session__text_event(struct tg_session *s, uint16_t type, uint32_t pid, const char *text);

/* Make a TG_EV_DROPS event from the kernel counters and handle it. */
int tg_session__drops_event(struct tg_session *s, uint64_t emitted, uint64_t dropped);

/* Finish: pending exchanges, late routes, run end (events, drops), close the
 * store and recording. Returns 0 or -errno. Safe after a failed open. */
int tg_session__close(struct tg_session *s);

#endif
