/* SPDX-License-Identifier: MIT */
/*
 * SQL per request: the PostgreSQL side of the pipeline. Owns one pgwire
 * reassembler (pgwire.h) per followed PostgreSQL client connection, turns
 * each executed statement into a struct tg_query (text normalised unless the
 * user keeps literal values, fingerprinted, both cached by raw text), and
 * attributes it to the HTTP request whose asyncio task sent it (attrib.h,
 * keyed by the task key of the write holding the statement's first byte).
 * Statements of no request are kept with request_id 0. A task key that two
 * overlapping requests carry is not a task's (uvloop writes from its loop,
 * outside tasks): from then on it attributes nothing. Pure C, no I/O: the
 * caller stores the finished records (on_query).
 */
#ifndef TG_SQLTRACK_H
#define TG_SQLTRACK_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "pgwire.h"
#include "request.h"

/* One statement, ready to be stored (queries table, docs/schema.md). */
struct tg_query {
	int64_t request_id; /* 0: no request */
	uint64_t conn_id;
	uint32_t pid;
	uint32_t tid;
	uint64_t task_key;
	uint64_t start_ns;     /* CLOCK_MONOTONIC (see docs/postgres.md "Times") */
	uint64_t end_ns;       /* CLOCK_MONOTONIC */
	uint64_t first_row_ns; /* CLOCK_MONOTONIC, 0 if no row */
	int64_t rows;	       /* -1 if unknown */
	uint64_t fingerprint;
	uint32_t flags; /* TG_PG_* */
	char command[TG_PG_COMMAND_LEN];
	char sqlstate[6];
	char error[TG_PG_ERROR_LEN];
	char db_user[TG_PG_NAME_LEN];
	char db_name[TG_PG_NAME_LEN];
	/* Normalised unless keep_values; NUL-terminated, at most TG_PG_TEXT_MAX
	 * bytes with it. Stored right after the record (sized to the text: a
	 * statement waits up to the horizon for its request, and a fixed 8 KiB
	 * copy each would make the held ones weigh ~780 MB at 3,000 a second). */
	const char *statement;
};

/* A statement is finished and attributed. q is only valid during the call. */
typedef void (*tg_sqltrack_query_fn)(void *ctx, const struct tg_query *q);

struct tg_sqltrack_cfg {
	bool keep_values;    /* store statement texts as sent (literal values included) */
	uint64_t horizon_ns; /* how long statements wait for their request; 0: 30 s */
	tg_sqltrack_query_fn on_query;
	void *ctx;
};

struct tg_sqltrack;
struct tg_sqlconn;

/* NULL + errno on failure. cfg is copied. */
struct tg_sqltrack *tg_sqltrack__new(const struct tg_sqltrack_cfg *cfg);

/* Release every held statement (request_id 0) through on_query, then free.
 * libpg_query's per-thread memory stays (it cannot be reused once released):
 * call tg_sql__thread_exit() when the thread ends. Accepts NULL. */
void tg_sqltrack__free(struct tg_sqltrack *t);

/* A PostgreSQL client connection conn_id of pid opened (preexisting: found
 * at attach, no startup expected). Returns its state, or NULL + errno. */
struct tg_sqlconn *tg_sqltrack__open(struct tg_sqltrack *t, uint64_t conn_id, uint32_t pid,
				     bool preexisting);

/* Feed the next segment of conn, in syscall order. */
void tg_sqltrack__feed(struct tg_sqlconn *conn, const struct tg_segment *seg);

/* Feed plaintext of a TLS connection (pgwire.h, tg_pg__feed_tls). */
void tg_sqltrack__feed_tls(struct tg_sqlconn *conn, const struct tg_segment *seg);

/* The connection's socket bytes are encrypted (pgwire.h, tg_pg__encrypted). */
void tg_sqltrack__encrypted(struct tg_sqlconn *conn, uint64_t ts_ns);

/* Events of conn were lost before the next segment. */
void tg_sqltrack__gap(struct tg_sqlconn *conn);

/* conn closed at ts_ns: pending statements are finished (INCOMPLETE) and
 * conn is freed. Accepts NULL. */
void tg_sqltrack__close(struct tg_sqlconn *conn, uint64_t ts_ns);

/* A request finished and is about to be stored: claim the statements its
 * task sent inside [start_ns, end_ns] and set req->sql_count and
 * req->sql_ns (sum of their durations). Call tg_sqltrack__stored next. */
void tg_sqltrack__request(struct tg_sqltrack *t, struct tg_request *req);

/* The request passed to tg_sqltrack__request got id (0: not stored): its
 * claimed statements go to on_query with it, later ones find it too. */
void tg_sqltrack__stored(struct tg_sqltrack *t, const struct tg_request *req, int64_t id);

/* Release all held statements now (request_id 0), e.g. at end of stream. */
void tg_sqltrack__flush(struct tg_sqltrack *t);

/* Statements currently waiting for their request. */
size_t tg_sqltrack__held(const struct tg_sqltrack *t);

#endif
