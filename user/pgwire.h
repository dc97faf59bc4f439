/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL frontend/backend protocol v3 reassembly of one client connection
 * (the traced app is the client) from captured segments (struct tg_segment,
 * see http.h): TG_DIR_OUT segments are the frontend messages the app wrote,
 * TG_DIR_IN segments the backend messages it read.
 *
 * One record (struct tg_pg_stmt) is emitted per executed statement: per
 * simple Query ('Q', all its statements together) and per extended-protocol
 * Execute. Statement texts of named prepared statements are remembered per
 * connection, so later Bind/Execute of `__asyncpg_stmt_N__` show their SQL.
 * The emitted text is the raw SQL as captured (literals included): the caller
 * must pass it through tg_sql__normalize() (sqlnorm.h) before storing it unless
 * the user asked to keep literal values. See docs/postgres.md.
 */
#ifndef TG_PGWIRE_H
#define TG_PGWIRE_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"

#define TG_PG_TEXT_MAX 8192 /* statement text, NUL included */
#define TG_PG_COMMAND_LEN 16
#define TG_PG_ERROR_LEN 256
#define TG_PG_NAME_LEN 64

/* Statement flags (tg_pg_stmt.flags). */
#define TG_PG_TRUNCATED 0x001	     /* text not wholly captured (gap, or longer than TEXT_MAX) */
#define TG_PG_UNKNOWN_PREPARED 0x002 /* Execute of a statement/portal prepared before attach */
#define TG_PG_LOST_EVENTS 0x004	     /* framing lost or events dropped while it was pending */
#define TG_PG_COPY 0x008	     /* COPY IN/OUT: copy_bytes counts the CopyData bytes */
#define TG_PG_CANCELLED 0x010	     /* failed with SQLSTATE 57014 (query_canceled) */
#define TG_PG_ERROR 0x020	     /* ErrorResponse: sqlstate and error are set */
#define TG_PG_SKIPPED 0x040	     /* not executed: an earlier message of its pipeline failed */
#define TG_PG_INCOMPLETE 0x080	     /* no completion seen (connection closed, queue overflow) */
#define TG_PG_SUSPENDED 0x100	     /* Execute with a row limit ended by PortalSuspended */
#define TG_PG_MULTI 0x200	     /* simple Query holding several statements */
#define TG_PG_ENCRYPTED 0x400	     /* SSL/GSS encryption accepted, no plaintext seen */
#define TG_PG_CANCEL_REQUEST 0x800   /* this connection carried a CancelRequest */
#define TG_PG_STARTUP 0x1000	     /* error during connection startup (e.g. auth failure) */
#define TG_PG_PREPARE_ONLY 0x2000    /* Parse (no Execute in its batch) that failed */

/* One executed statement. Plain data; only valid during the emit call. */
struct tg_pg_stmt {
	uint64_t start_ns; /* exit of the write holding the first byte of its batch (see docs) */
	uint64_t first_row_ns; /* exit of the read holding its first DataRow; 0 if none */
	uint64_t end_ns;       /* exit of the read holding its completion (see docs) */
	uint32_t tid;	       /* thread that wrote its first byte */
	uint64_t task_key;     /* that write's task key (tg_segment.task_key; 0 unknown) */
	uint32_t flags;	       /* TG_PG_* */
	int64_t rows;	       /* from the CommandComplete tag ("SELECT 5" -> 5); -1 if none */
	uint64_t data_rows;    /* DataRow messages received */
	uint64_t bytes_in;     /* backend bytes received for it (rows, tags, errors) */
	uint64_t copy_bytes;   /* CopyData payload bytes, either direction */
	char command[TG_PG_COMMAND_LEN]; /* tag's command word(s): "SELECT", "CREATE TABLE" */
	char sqlstate[6];		 /* "42P01", "" when no error */
	char error[TG_PG_ERROR_LEN];	 /* "ERROR: relation \"x\" does not exist" */
	char txn_status;	      /* 'I', 'T', 'E' from the ReadyForQuery after it; 0 unknown */
	char db_user[TG_PG_NAME_LEN]; /* from the StartupMessage, "" if not seen */
	char db_name[TG_PG_NAME_LEN]; /* idem; defaults to db_user as the server does */
	char stmt_name[TG_PG_NAME_LEN]; /* prepared statement name, "" unnamed/simple */
	char text[TG_PG_TEXT_MAX];	/* raw SQL text, NUL-terminated */
};

struct tg_pg_cfg {
	uint32_t max_pending;  /* max queued statements awaiting responses; 0: 1024 */
	uint32_t max_prepared; /* max remembered prepared statements; 0: 4096 */
};

typedef void (*tg_pg_emit_fn)(void *ctx, const struct tg_pg_stmt *stmt);

struct tg_pg_conn;

/* Create the state of one client connection (expects a StartupMessage first,
 * but recognises typed messages if it doesn't come). Returns NULL and sets
 * errno on failure. cfg may be NULL (defaults) and is copied. */
struct tg_pg_conn *tg_pg__new(const struct tg_pg_cfg *cfg, tg_pg_emit_fn emit, void *ctx);

/* Free the state; pending statements are dropped silently (call close first).
 * Accepts NULL. */
void tg_pg__free(struct tg_pg_conn *c);

/* Feed the next segment (either direction), in syscall order. May call emit. */
void tg_pg__feed(struct tg_pg_conn *c, const struct tg_segment *seg);

/* Feed plaintext of the connection once it switched to TLS (its SSLRequest
 * answered 'S'): what the app wrote to / read from OpenSSL, in call order.
 * From the 'S' on, tg_pg__feed ignores the connection's (encrypted) socket
 * segments. When no plaintext ever comes (OpenSSL not probed), close emits
 * one TG_PG_ENCRYPTED record instead, as before. Ignored before the 'S'. */
void tg_pg__feed_tls(struct tg_pg_conn *c, const struct tg_segment *seg);

/* The connection's socket bytes are TLS records although no SSLRequest was
 * seen (it was open before the tracer attached): switch to TLS as the 'S'
 * does, with framing to be found in the plaintext. No-op when already TLS. */
void tg_pg__encrypted(struct tg_pg_conn *c, uint64_t ts_ns);

/* Events of this connection were lost before the next segment: pending
 * statements get TG_PG_LOST_EVENTS and both directions resynchronise. */
void tg_pg__gap(struct tg_pg_conn *c);

/* The connection closed at ts_ns: pending statements are emitted, those not
 * completed with TG_PG_INCOMPLETE and end_ns = ts_ns. */
void tg_pg__close(struct tg_pg_conn *c, uint64_t ts_ns);

/* The connection was opened before the tracer attached: no startup is
 * expected and both directions start by resynchronising. */
void tg_pg__set_preexisting(struct tg_pg_conn *c);

/* True once the connection switched to GSS encryption (or was a
 * CancelRequest): the caller can stop following it. */
bool tg_pg__abandoned(const struct tg_pg_conn *c);

#endif
