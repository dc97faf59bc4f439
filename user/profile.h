/* SPDX-License-Identifier: MIT */
/*
 * Python CPU profiles per request: takes TG_EV_SAMPLE events, symbolises
 * their frames (from the live process with pysym.h at trace time, from
 * TG_EV_PYSYM events in a recording at replay time), attributes each sample
 * to its request by asyncio task key (attrib.h) and writes it to the database
 * (profile_store.h). docs/flamegraph.md.
 */
#ifndef TG_PROFILE_H
#define TG_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "timeglass/events.h"

#include "request.h"

struct tg_store;

/*
 * A userspace event (struct tg_ev_text) that only appears in recordings: a
 * frame symbolised at trace time, text "PID CODE TAG LASTI\tQUALNAME\tFILE\tLINE"
 * (CODE in hex with 0x, the others decimal), written before the first sample
 * that needs it; "task PID CORO CTX PORT FROM": from here on, samples of pid
 * at or after time FROM (ns) whose root coroutine is at CORO and task Context
 * at CTX (hex, 0x) belong to the connection with peer port PORT (0: to no
 * connection; earlier samples to none; pytask.h); or "hz N": the run sampled
 * at N Hz. Its type, TG_EV_PYSYM, is in include/timeglass/events.h.
 */

/* Write a TG_EV_PYSYM event with text for pid to the recording (live mode). */
typedef void (*tg_profile_emit_fn)(void *ctx, uint32_t pid, const char *text);

struct tg_profile_cfg {
	struct tg_store *store;	 /* required; must stay open until tg_profile__finish */
	bool live;		 /* symbolise by reading the traced processes' memory */
	uint32_t sample_hz;	 /* the rate sampled at (0: unknown/off): runs.sample_hz */
	tg_profile_emit_fn emit; /* optional: called for each frame symbolised live */
	void *ctx;
	uint64_t horizon_ns; /* attribution horizon (attrib.h); 0: 30 s */
	/* Optional, live: whether pid's requests will name every Context they
	 * ran in (per-task accounting is on for it: tg_request.set_keys). Its
	 * samples are then attributed by their Context alone, and their task
	 * is not read for its connection's peer port (13 reads of the target
	 * per new task: ≈ 23 µs a sample, measured as the saving at 999 Hz,
	 * docs/performance.md). NULL: every pid is read. */
	bool (*contexts_known)(void *ctx, uint32_t pid);
	void *contexts_ctx;
};

struct tg_profile_stats {
	uint64_t samples;    /* TG_EV_SAMPLE events taken */
	uint64_t attributed; /* samples resolved to a request */
	uint64_t tasks;	     /* request tasks resolved to a connection (live reads) */
	uint64_t by_context; /* samples left to their Context (cfg.contexts_known): no read */
	uint64_t symbolised; /* frames symbolised (live reads or TG_EV_PYSYM) */
	uint64_t unknown;    /* frames that could not be symbolised */
	uint64_t malformed;  /* events rejected */
};

struct tg_profile;

/* NULL + errno on failure. With sample_hz, queues runs.sample_hz and (live)
 * emits "hz N". */
struct tg_profile *tg_profile__new(const struct tg_profile_cfg *cfg);

/* Take an event: TG_EV_SAMPLE, TG_EV_PYSYM, TG_EV_PROC (exec/exit forget
 * the process's code objects); other types are ignored. Returns 0, or
 * -EBADMSG for a malformed sample/pysym event. */
int tg_profile__event(struct tg_profile *p, const void *ev, size_t size);

/* A request was stored with id (0: not stored): its held samples (same pid
 * and task key, inside [start_ns, end_ns]) get its id, and late ones will. */
void tg_profile__request(struct tg_profile *p, const struct tg_request *req, int64_t id);

/* End of stream: release every held sample (no request) and queue the
 * writer's cleanup. Call before tg_store__end_run; then only
 * tg_profile__free after tg_store__close. */
void tg_profile__finish(struct tg_profile *p);

void tg_profile__stats(const struct tg_profile *p, struct tg_profile_stats *out);

/* Accepts NULL. Call after the store is closed. */
void tg_profile__free(struct tg_profile *p);

#endif
