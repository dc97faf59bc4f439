/* SPDX-License-Identifier: MIT */
/*
 * Attribution of work items (Python stack samples, SQL statements) to the
 * HTTP request they were done for, by asyncio task key.
 *
 * The kernel side tags samples and writes with the current thread's task key
 * (its PyThreadState's contextvars Context: asyncio runs every step of a task
 * inside the task's own Context). A request learns its key only when its
 * response is written (inside its task), i.e. after most of its items were
 * seen, and it is emitted at its last byte. So items are held, keyed by
 * (pid, task key), until a request with that key claims those inside its
 * [start, end] window; the last 256 finished requests are remembered (no
 * allocation per request) so that items delivered late (the ring buffer
 * interleaves CPUs) still find theirs.
 * Items nobody claims within the horizon are released with request id 0.
 *
 * Pure C, no I/O; the caller owns the items (opaque pointers).
 */
#ifndef TG_ATTRIB_H
#define TG_ATTRIB_H

#include <stddef.h>
#include <stdint.h>

/* An item's fate: its request's id, or 0 when it belongs to no request. */
typedef void (*tg_attrib_resolve_fn)(void *ctx, void *item, int64_t request_id);

struct tg_attrib;

/* horizon_ns: how long items wait for a request (e.g. 30 s). NULL + errno on failure. */
struct tg_attrib *tg_attrib__new(uint64_t horizon_ns, tg_attrib_resolve_fn resolve, void *ctx);

/* Release every held item with id 0, then free. Accepts NULL. */
void tg_attrib__free(struct tg_attrib *a);

/* An item of pid with task key at ts_ns. Resolved at once when key is 0
 * (id 0) or a remembered request of that key covers ts_ns; held otherwise.
 * On allocation failure the item is resolved with 0 (never lost). */
void tg_attrib__item(struct tg_attrib *a, uint32_t pid, uint64_t key, uint64_t ts_ns, void *item);

/* A request of pid with task key finished: move the held items of that key
 * inside [start_ns, end_ns] to out (up to cap; returns how many; the caller
 * resolves them itself once it knows the id, e.g. to count statements before
 * storing the request). Call tg_attrib__request_stored next. */
size_t tg_attrib__claim(struct tg_attrib *a, uint32_t pid, uint64_t key, uint64_t start_ns,
			uint64_t end_ns, void **out, size_t cap);

/* The request claimed above got id: remember it for late items (a ring of
 * the last 256; no allocation). */
void tg_attrib__request_stored(struct tg_attrib *a, uint32_t pid, uint64_t key, uint64_t start_ns,
			       uint64_t end_ns, int64_t id);

/* Time passed (now_ns, same clock): release held items older than the
 * horizon with id 0. */
void tg_attrib__tick(struct tg_attrib *a, uint64_t now_ns);

/* Items currently held. */
size_t tg_attrib__held(const struct tg_attrib *a);

#endif
