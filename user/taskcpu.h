/* SPDX-License-Identifier: MIT */
/*
 * Per-request CPU, waits, memory and GC from the task events (TG_EV_TASK,
 * TG_EV_GC; include/timeglass/events.h).
 *
 * Per thread, follows which contextvars Context it runs in: an ENTER closes
 * the thread's current run piece and charges its cost (on-CPU time, page
 * faults, heap growth, run-queue wait: deltas of the thread's cumulative
 * counters) to the Context the piece ran in; a PARK closes the piece but the
 * thread stays in that Context (the next event of the thread starts a new
 * piece in it). Only ENTER is probed, so a piece also covers the loop's
 * bookkeeping until the next ENTER: that is the resolution. Every other event
 * of a thread is a "thread point" (its header tells the thread's on-CPU time
 * at its timestamp).
 *
 * LINK events give each Context its parent and creation time; a request's
 * Contexts are its roots and all their descendants. The roots are found two
 * ways (both used, the union taken):
 *  - from the request's task_key K (the Context of the response write): K and
 *    its ancestors created inside [start_ns, end_ns] (the stdlib asyncio loop
 *    writes inside the task);
 *  - from the connection: the Contexts created on a thread, after a read of a
 *    server connection, while the thread still ran in the Context it read in
 *    (the protocol's data_received creates the request's task there). This is
 *    what works on uvloop, which writes from the loop outside any task, so
 *    that K is the loop's own Context (measured: docs/attribution.md).
 * A Context created before the request (uvicorn's per-connection or the
 * server's Context) is never part of it.
 *
 * Cost is counted up to the response's last byte: the writing thread's open
 * piece up to resp_oncpu_ns; work after it (a task's tail) is not the
 * request's and is dropped. Work of the request still running on another
 * thread when the request is stored (a pool worker that has not parked yet)
 * makes the figures TG_USAGE_PARTIAL; they are recomputed and handed to
 * on_update when that thread's piece ends or after 1 s. The page faults,
 * heap and run-queue time of the writing piece are only known when that
 * piece ends: they come through on_update too (when non-zero).
 *
 * Pure C, no I/O; memory bounded by live Contexts (accounts forgotten when
 * their request is stored, after a horizon without events, and on process
 * exit). Not thread-safe: one consumer thread.
 */
#ifndef TG_TASKCPU_H
#define TG_TASKCPU_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "request.h"
#include "timeglass/events.h"

/* New figures for a request already stored with id request_id. */
typedef void (*tg_taskcpu_update_fn)(void *ctx, int64_t request_id, const struct tg_usage *u);

struct tg_taskcpu_cfg {
	uint64_t horizon_ns;		/* accounts untouched this long are forgotten; 0: 30 s */
	uint64_t pending_ns;		/* how long a PARTIAL request waits for its work; 0: 1 s */
	tg_taskcpu_update_fn on_update; /* optional */
	void *ctx;
};

struct tg_taskcpu_stats {
	uint64_t task_events;  /* TG_EV_TASK accepted */
	uint64_t gc_events;    /* TG_EV_GC accepted */
	uint64_t malformed;    /* task/GC events rejected */
	uint64_t slices;       /* run pieces closed */
	uint64_t accounts;     /* Contexts currently followed */
	uint64_t requests;     /* requests of tracked processes seen */
	uint64_t unattributed; /* of which no Context was found for: stored without figures */
	uint64_t partial;      /* of which stored TG_USAGE_PARTIAL */
	uint64_t updates;      /* on_update calls */
	uint64_t late_dropped; /* pieces of Contexts whose request was already stored */
	uint64_t unknown_ctx;  /* pieces of Contexts never seen created (loop's own, pre-attach) */
	uint64_t expired;      /* accounts forgotten at the horizon */
	uint64_t lost_marks;   /* task events flagged TG_TASK_LOST (events lost before them) */
};

struct tg_taskcpu;

/* cfg is copied (NULL: defaults). NULL + errno on failure. */
struct tg_taskcpu *tg_taskcpu__new(const struct tg_taskcpu_cfg *cfg);
/* Frees everything; pending requests are dropped without update. Accepts NULL. */
void tg_taskcpu__free(struct tg_taskcpu *t);

/* A TG_EV_TASK or TG_EV_GC event of size bytes (header already checked by
 * the caller: size == hdr.size). Validates the rest. Returns 0 or -EBADMSG. */
int tg_taskcpu__event(struct tg_taskcpu *t, const void *ev, size_t size);

/* Any other kernel event of a thread (data, conn, close, sample, proc): its
 * on-CPU time at its timestamp. Cheap when the pid has no task events. */
void tg_taskcpu__point(struct tg_taskcpu *t, const struct tg_ev_hdr *h);

/* The thread of h just read from server connection conn_id (call after
 * tg_taskcpu__point for that event); starts_request: the bytes begin a new
 * request (its request line), whose serving task is created next. */
void tg_taskcpu__server_read(struct tg_taskcpu *t, const struct tg_ev_hdr *h, uint64_t conn_id,
			     bool starts_request);

/* The Context ctx of pid (thread tid) wrote to a client connection at
 * start_ns and the answer's first bytes were read at end_ns: a network wait
 * of its request (usage.net_ns, a TG_SPAN_NET span). Ignored when the
 * Context is not followed (the loop's own, or its request already done). */
void tg_taskcpu__net_wait(struct tg_taskcpu *t, uint32_t pid, uint32_t tid, uint64_t ctx,
			  uint64_t start_ns, uint64_t end_ns);

/* Server connection accepted by thread h->tid (TG_EV_CONN, origin accept):
 * Contexts it creates next belong to the connection, not to the request the
 * thread last read bytes of. */
void tg_taskcpu__server_accept(struct tg_taskcpu *t, const struct tg_ev_hdr *h);

/* Fill req->usage (pid, conn_id, task_key, start_ns, end_ns, resp_tid,
 * resp_oncpu_ns are read). Zeroed with flags 0 when the pid has no task
 * events. Call tg_taskcpu__stored next with the request's id. */
void tg_taskcpu__request(struct tg_taskcpu *t, struct tg_request *req);

/* The request last passed to tg_taskcpu__request got id (0: not stored:
 * no update will follow). */
void tg_taskcpu__stored(struct tg_taskcpu *t, const struct tg_request *req, int64_t id);

/* Process pid exited at ts_ns: pending requests of it are completed
 * (on_update) and everything of it is freed. */
void tg_taskcpu__proc_exit(struct tg_taskcpu *t, uint32_t pid, uint64_t ts_ns);

/* End of stream: complete every pending request now (on_update). */
void tg_taskcpu__flush(struct tg_taskcpu *t);

void tg_taskcpu__stats(const struct tg_taskcpu *t, struct tg_taskcpu_stats *out);

#endif
