/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.x reassembly of one server connection from captured segments.
 *
 * The kernel side does not copy whole buffers: each read/write arrives as a
 * segment with its total length, its first head_len bytes and its last
 * tail_len bytes; the bytes in between are unknown. The reassembler frames
 * requests and responses over that model: headers must lie in known bytes,
 * bodies are counted (Content-Length) or followed by chunk size lines when
 * visible, and a chunked body whose sizes fall into a gap is ended by the
 * `0\r\n\r\n` visible in a segment's tail. When framing is lost (garbage,
 * truncated headers, dropped events) it resynchronises at the next segment
 * that starts like a request and marks what was affected.
 *
 * Header parsing uses libhttp_parser; the framing around it is ours.
 * Nothing here allocates per byte, and nothing here knows about BPF.
 */
#ifndef TG_HTTP_H
#define TG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request.h"

/* One captured read or write of a connection. */
struct tg_segment {
	uint64_t ts_ns;	   /* CLOCK_MONOTONIC at the syscall's exit */
	uint64_t task_key; /* asyncio task of the writing thread (TG_DIR_OUT), 0 if unknown */
	uint32_t tid;
	int dir;	     /* TG_DIR_IN (bytes the server read) or TG_DIR_OUT (bytes it wrote) */
	uint64_t len;	     /* bytes transferred */
	const uint8_t *head; /* the first head_len bytes (head_len <= len) */
	size_t head_len;
	const uint8_t *tail; /* the last tail_len bytes; tail_len == 0 when head_len == len */
	size_t tail_len;
};

struct tg_http_cfg {
	bool keep_query_values; /* store query values (default: names only) */
};

/* Called once per finished (or abandoned) exchange. The record is only valid
 * during the call. conn-level fields (conn_id, pid, peer, route) are left zero
 * for the caller to fill. */
typedef void (*tg_http_emit_fn)(void *ctx, struct tg_request *req);

struct tg_http_conn;

/* Create the state of one connection. Returns NULL and sets errno on failure.
 * cfg is copied. emit/ctx are kept and called from feed/gap/close. */
struct tg_http_conn *tg_http__new(const struct tg_http_cfg *cfg, tg_http_emit_fn emit, void *ctx);

/* Free the state; pending exchanges are dropped silently (call close first to
 * emit them). Accepts NULL. */
void tg_http__free(struct tg_http_conn *c);

/* Feed the next segment of the connection, in the order the process made the
 * syscalls. May call emit zero or more times. */
void tg_http__feed(struct tg_http_conn *c, const struct tg_segment *seg);

/* Events of this connection were lost before the next segment: the exchange
 * in progress is marked TG_REQ_LOST_EVENTS and framing resynchronises. */
void tg_http__gap(struct tg_http_conn *c);

/* The connection closed at ts_ns: a response delimited by close ends here;
 * any other exchange in progress is emitted with TG_REQ_INCOMPLETE. */
void tg_http__close(struct tg_http_conn *c, uint64_t ts_ns);

/* Mark the connection as opened before the tracer attached: its first bytes
 * may start in the middle of an exchange, so framing starts by
 * resynchronising and requests get TG_REQ_PREEXISTING. */
void tg_http__set_preexisting(struct tg_http_conn *c);

/* True once the connection was upgraded (WebSocket) or spoke HTTP/2: the
 * caller can stop following it. */
bool tg_http__abandoned(const struct tg_http_conn *c);

/* Copy a request target into out (size cap, always NUL-terminated), removing
 * query values unless keep_values: "/a?x=1&y=2" -> "/a?x=&y=". Fragments are
 * dropped. Returns the length written. */
size_t tg_http__redact_target(const char *target, size_t target_len, bool keep_values, char *out,
			      size_t cap);

#endif
