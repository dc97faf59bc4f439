/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the PostgreSQL protocol reassembler (user/pgwire.c):
 * synthetic message streams built with small helpers, cut into segments with
 * a given capture size, and two recordings of real asyncpg / psycopg2
 * traffic (tests/data/pg_*.bin, made by tests/data/pg_capture.py: records of
 * [dir u8: 1 = client->server][len u32 le][bytes]).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgwire.h"
#include "timeglass/events.h"

#ifndef TG_TEST_DATA
#define TG_TEST_DATA "tests/data"
#endif

#define MAXREC 64

struct fx {
	struct tg_pg_conn *c;
	struct tg_pg_stmt rec[MAXREC];
	int n;
	size_t head, tail; /* capture sizes */
	uint64_t ts;
};

struct bb {
	uint8_t b[70000];
	size_t n;
};

static void on_emit(void *ctx, const struct tg_pg_stmt *s)
{
	struct fx *f = ctx;

	assert_true(f->n < MAXREC);
	assert_non_null(memchr(s->text, '\0', sizeof(s->text)));
	f->rec[f->n++] = *s;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->c = tg_pg__new(NULL, on_emit, f);
	assert_non_null(f->c);
	f->head = 1 << 20;
	f->tail = 16;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	tg_pg__free(f->c);
	free(f);
	return 0;
}

/* ---- message builders ---- */

static void put(struct bb *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->b));
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void put_u32(struct bb *b, uint32_t v)
{
	uint8_t x[4] = {v >> 24, v >> 16, v >> 8, v};

	put(b, x, 4);
}

static void put_u16(struct bb *b, uint16_t v)
{
	uint8_t x[2] = {v >> 8, v};

	put(b, x, 2);
}

static void put_str(struct bb *b, const char *s)
{
	put(b, s, strlen(s) + 1);
}

static size_t begin(struct bb *b, char type)
{
	size_t at;

	put(b, &type, 1);
	at = b->n;
	put_u32(b, 0);
	return at;
}

static void end(struct bb *b, size_t at)
{
	uint32_t len = b->n - at;

	b->b[at] = len >> 24;
	b->b[at + 1] = len >> 16;
	b->b[at + 2] = len >> 8;
	b->b[at + 3] = len;
}

static void startup(struct bb *b, const char *user, const char *db)
{
	size_t at = b->n;

	put_u32(b, 0);
	put_u32(b, 196608);
	put_str(b, "user");
	put_str(b, user);
	if (db) {
		put_str(b, "database");
		put_str(b, db);
	}
	put(b, "", 1);
	end(b, at);
}

static void special(struct bb *b, uint32_t code, uint32_t len)
{
	put_u32(b, len);
	put_u32(b, code);
	if (len == 16) {
		put_u32(b, 4242);
		put_u32(b, 99);
	}
}

static void msg_str(struct bb *b, char type, const char *s)
{
	size_t at = begin(b, type);

	if (s)
		put_str(b, s);
	end(b, at);
}

static void Q(struct bb *b, const char *sql)
{
	msg_str(b, 'Q', sql);
}

static void P(struct bb *b, const char *name, const char *sql)
{
	size_t at = begin(b, 'P');

	put_str(b, name);
	put_str(b, sql);
	put_u16(b, 0);
	end(b, at);
}

static void B(struct bb *b, const char *portal, const char *stmt)
{
	size_t at = begin(b, 'B');

	put_str(b, portal);
	put_str(b, stmt);
	put_u16(b, 0);
	put_u16(b, 1);
	put_u32(b, 1);
	put(b, "7", 1);
	put_u16(b, 0);
	end(b, at);
}

static void Ex(struct bb *b, const char *portal, uint32_t max)
{
	size_t at = begin(b, 'E');

	put_str(b, portal);
	put_u32(b, max);
	end(b, at);
}

static void named(struct bb *b, char type, char kind, const char *name)
{
	size_t at = begin(b, type);

	put(b, &kind, 1);
	put_str(b, name);
	end(b, at);
}

static void empty(struct bb *b, char type)
{
	msg_str(b, type, NULL);
}

static void Z(struct bb *b, char txn)
{
	size_t at = begin(b, 'Z');

	put(b, &txn, 1);
	end(b, at);
}

static void C(struct bb *b, const char *tag)
{
	msg_str(b, 'C', tag);
}

static void D(struct bb *b, const char *val)
{
	size_t at = begin(b, 'D');

	put_u16(b, 1);
	put_u32(b, strlen(val));
	put(b, val, strlen(val));
	end(b, at);
}

static void T(struct bb *b)
{
	size_t at = begin(b, 'T');

	put_u16(b, 1);
	put_str(b, "x");
	put_u32(b, 0);
	put_u16(b, 0);
	put_u32(b, 23);
	put_u16(b, 4);
	put_u32(b, 0xffffffff);
	put_u16(b, 0);
	end(b, at);
}

static void E(struct bb *b, char type, const char *code, const char *m)
{
	size_t at = begin(b, type);

	put(b, "S", 1);
	put_str(b, "ERREUR");
	put(b, "V", 1);
	put_str(b, "ERROR");
	put(b, "C", 1);
	put_str(b, code);
	put(b, "M", 1);
	put_str(b, m);
	put(b, "", 1);
	end(b, at);
}

static void copydata(struct bb *b, size_t n)
{
	size_t at = begin(b, 'd');

	for (size_t i = 0; i < n; i++)
		put(b, "x", 1);
	end(b, at);
}

static void copyresp(struct bb *b, char type)
{
	size_t at = begin(b, type);

	put(b, "", 1);
	put_u16(b, 0);
	end(b, at);
}

static void handshake_be(struct bb *b)
{
	size_t at = begin(b, 'R');

	put_u32(b, 0);
	end(b, at);
	at = begin(b, 'S');
	put_str(b, "server_version");
	put_str(b, "15.5");
	end(b, at);
	at = begin(b, 'K');
	put_u32(b, 1);
	put_u32(b, 2);
	end(b, at);
	Z(b, 'I');
}

/* ---- feeding ---- */

/* One segment of b with the fixture's capture sizes; clears b. */
static void seg(struct fx *f, int dir, struct bb *b)
{
	struct tg_segment s = {.ts_ns = (f->ts += 1000),
			       .tid = dir == TG_DIR_OUT ? 11 : 12,
			       .dir = dir,
			       .len = b->n,
			       .head = b->b};

	s.head_len = b->n < f->head ? b->n : f->head;
	if (b->n > s.head_len) {
		s.tail_len = b->n - s.head_len < f->tail ? b->n - s.head_len : f->tail;
		s.tail = b->b + b->n - s.tail_len;
	}
	tg_pg__feed(f->c, &s);
	b->n = 0;
}

/* b cut in chunks of `chunk` bytes, one segment each. */
static void seg_split(struct fx *f, int dir, struct bb *b, size_t chunk)
{
	struct bb *p = malloc(sizeof(*p));

	assert_non_null(p);
	for (size_t i = 0; i < b->n; i += chunk) {
		p->n = 0;
		put(p, b->b + i, b->n - i < chunk ? b->n - i : chunk);
		seg(f, dir, p);
	}
	b->n = 0;
	free(p);
}

static struct bb *bnew(void)
{
	struct bb *b = calloc(1, sizeof(*b));

	assert_non_null(b);
	return b;
}

static void connect_ok(struct fx *f, struct bb *b)
{
	startup(b, "app", "shop");
	seg(f, TG_DIR_OUT, b);
	handshake_be(b);
	seg(f, TG_DIR_IN, b);
}

/* ---- tests: edge cases first ---- */

static void test_garbage_resync(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	connect_ok(f, b);
	put(b, "\xff\xfe garbage that is no protocol", 30);
	seg(f, TG_DIR_OUT, b);
	put(b, "\x01\x02\x03 more garbage\x00\x00", 18);
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 0);
	Q(b, "SELECT 1");
	seg(f, TG_DIR_OUT, b);
	put(b, "junk", 4); /* backend junk, then a whole answer ending with Z */
	T(b);
	D(b, "1");
	C(b, "SELECT 1");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].text, "SELECT 1");
	assert_true(f->rec[0].flags & TG_PG_LOST_EVENTS);
	/* framing is back: the next query is clean */
	Q(b, "SELECT 2");
	seg(f, TG_DIR_OUT, b);
	T(b);
	D(b, "2");
	C(b, "SELECT 1");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->rec[1].flags, 0);
	assert_int_equal(f->rec[1].rows, 1);
	free(b);
}

static void test_one_byte_segments(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	startup(b, "u1", NULL);
	seg_split(f, TG_DIR_OUT, b, 1);
	handshake_be(b);
	seg_split(f, TG_DIR_IN, b, 1);
	P(b, "s1", "SELECT * FROM t WHERE id = $1");
	B(b, "", "s1");
	Ex(b, "", 0);
	empty(b, 'S');
	seg_split(f, TG_DIR_OUT, b, 1);
	empty(b, '1');
	empty(b, '2');
	D(b, "a");
	D(b, "b");
	C(b, "SELECT 2");
	Z(b, 'I');
	seg_split(f, TG_DIR_IN, b, 1);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].text, "SELECT * FROM t WHERE id = $1");
	assert_string_equal(f->rec[0].db_user, "u1");
	assert_string_equal(f->rec[0].db_name, "u1"); /* database defaults to user */
	assert_string_equal(f->rec[0].stmt_name, "s1");
	assert_int_equal(f->rec[0].rows, 2);
	assert_int_equal(f->rec[0].data_rows, 2);
	assert_int_equal(f->rec[0].flags, 0);
	assert_int_equal(f->rec[0].txn_status, 'I');
	assert_true(f->rec[0].first_row_ns > f->rec[0].start_ns);
	assert_true(f->rec[0].end_ns > f->rec[0].first_row_ns);
	free(b);
}

static void test_truncated_capture(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();
	char sql[3000];

	connect_ok(f, b);
	memset(sql, 'x', sizeof(sql));
	memcpy(sql, "SELECT ", 7);
	sql[sizeof(sql) - 1] = '\0';
	f->head = 64;
	Q(b, sql);
	seg(f, TG_DIR_OUT, b);
	/* a big result: 300 rows, only head and tail captured */
	T(b);
	for (int i = 0; i < 300; i++)
		D(b, "row-value-row-value");
	C(b, "SELECT 300");
	Z(b, 'T');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 1);
	assert_true(f->rec[0].flags & TG_PG_TRUNCATED);
	assert_true(f->rec[0].flags & TG_PG_LOST_EVENTS); /* framing lost in the rows */
	assert_int_equal(strncmp(f->rec[0].text, "SELECT xxx", 10), 0);
	assert_true(strlen(f->rec[0].text) < 64);
	assert_int_equal(f->rec[0].txn_status, 'T');
	assert_true(f->rec[0].first_row_ns != 0);
	/* skipping a big DataRow by counting keeps framing when the gap is inside it */
	f->head = 32;
	Q(b, "SELECT big");
	seg(f, TG_DIR_OUT, b);
	D(b, "tiny");
	{
		char big[5000];

		memset(big, 'v', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		D(b, big);
	}
	seg(f, TG_DIR_IN, b); /* head: first rows; gap inside the big row; tail: its end */
	C(b, "SELECT 2");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->rec[1].flags, 0);
	assert_int_equal(f->rec[1].rows, 2);
	assert_int_equal(f->rec[1].data_rows, 2);
	free(b);
}

static void test_text_longer_than_max(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();
	static char sql[TG_PG_TEXT_MAX + 100];

	connect_ok(f, b);
	memset(sql, 'y', sizeof(sql) - 1);
	sql[sizeof(sql) - 1] = '\0';
	P(b, "", sql);
	B(b, "", "");
	Ex(b, "", 0);
	empty(b, 'S');
	seg(f, TG_DIR_OUT, b);
	empty(b, '1');
	empty(b, '2');
	C(b, "SELECT 0");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 1);
	assert_true(f->rec[0].flags & TG_PG_TRUNCATED);
	assert_int_equal(strlen(f->rec[0].text), TG_PG_TEXT_MAX - 1);
	assert_int_equal(f->rec[0].rows, 0);
	free(b);
}

static void test_unknown_prepared(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	tg_pg__set_preexisting(f->c);
	B(b, "", "__asyncpg_stmt_9__");
	Ex(b, "", 0);
	empty(b, 'S');
	seg(f, TG_DIR_OUT, b);
	empty(b, '2');
	D(b, "1");
	C(b, "SELECT 1");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	Ex(b, "never_bound", 0);
	empty(b, 'S');
	seg(f, TG_DIR_OUT, b);
	C(b, "SELECT 0");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 2);
	assert_string_equal(f->rec[0].text, "unknown prepared statement __asyncpg_stmt_9__");
	assert_true(f->rec[0].flags & TG_PG_UNKNOWN_PREPARED);
	assert_int_equal(f->rec[0].rows, 1);
	assert_string_equal(f->rec[0].stmt_name, "__asyncpg_stmt_9__");
	assert_string_equal(f->rec[1].text, "unknown portal never_bound");
	assert_true(f->rec[1].flags & TG_PG_UNKNOWN_PREPARED);
	free(b);
}

static void test_ssl_encrypted(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	special(b, 80877103, 8);
	seg(f, TG_DIR_OUT, b);
	put(b, "S", 1);
	seg(f, TG_DIR_IN, b);
	assert_false(tg_pg__abandoned(f->c));
	assert_int_equal(f->n, 0);
	Q(b, "SELECT 1"); /* would be TLS bytes on the socket: ignored */
	seg(f, TG_DIR_OUT, b);
	/* no plaintext ever came (OpenSSL not probed): one record at close */
	tg_pg__close(f->c, 99999);
	assert_int_equal(f->n, 1);
	assert_true(f->rec[0].flags & TG_PG_ENCRYPTED);
	assert_string_equal(f->rec[0].text, "encrypted connection (SSL)");
	assert_int_equal(f->rec[0].start_ns, 2000); /* the 'S' */
	free(b);
}

/* b as a plaintext segment of a TLS connection (tg_pg__feed_tls). */
static void seg_tls(struct fx *f, int dir, struct bb *b)
{
	struct tg_segment s = {.ts_ns = (f->ts += 1000),
			       .tid = dir == TG_DIR_OUT ? 11 : 12,
			       .task_key = dir == TG_DIR_OUT ? 77 : 0,
			       .dir = dir,
			       .len = b->n,
			       .head = b->b,
			       .head_len = b->n};

	tg_pg__feed_tls(f->c, &s);
	b->n = 0;
}

static void test_ssl_plaintext(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	Q(b, "SELECT 0"); /* plaintext before any 'S': not a TLS connection, ignored */
	seg_tls(f, TG_DIR_OUT, b);
	special(b, 80877103, 8);
	seg(f, TG_DIR_OUT, b);
	put(b, "S", 1);
	seg(f, TG_DIR_IN, b);
	put(b, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11); /* ClientHello: ignored */
	seg(f, TG_DIR_OUT, b);
	startup(b, "tls_user", "tls_db");
	seg_tls(f, TG_DIR_OUT, b);
	handshake_be(b);
	seg_tls(f, TG_DIR_IN, b);
	put(b, "\x17\x03\x03\x00\x20 encrypted application data", 32);
	seg(f, TG_DIR_OUT, b); /* the ciphertext of the query: ignored */
	Q(b, "SELECT 42");
	seg_tls(f, TG_DIR_OUT, b);
	T(b);
	D(b, "42");
	C(b, "SELECT 1");
	Z(b, 'I');
	seg_tls(f, TG_DIR_IN, b);
	tg_pg__close(f->c, 99999);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].text, "SELECT 42");
	assert_int_equal(f->rec[0].rows, 1);
	assert_string_equal(f->rec[0].db_user, "tls_user");
	assert_string_equal(f->rec[0].db_name, "tls_db");
	assert_int_equal(f->rec[0].task_key, 77);
	assert_false(f->rec[0].flags & (TG_PG_ENCRYPTED | TG_PG_LOST_EVENTS));
	free(b);
}

static void test_ssl_refused_then_plain(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	special(b, 80877104, 8); /* GSSENCRequest refused */
	seg(f, TG_DIR_OUT, b);
	put(b, "N", 1);
	seg(f, TG_DIR_IN, b);
	special(b, 80877103, 8); /* SSLRequest refused */
	seg(f, TG_DIR_OUT, b);
	put(b, "N", 1);
	seg(f, TG_DIR_IN, b);
	connect_ok(f, b);
	Q(b, "SELECT 1");
	seg(f, TG_DIR_OUT, b);
	C(b, "SELECT 1");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_false(tg_pg__abandoned(f->c));
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].db_name, "shop");
	assert_string_equal(f->rec[0].db_user, "app");
	free(b);
}

static void test_cancel_request(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	special(b, 80877102, 16);
	seg(f, TG_DIR_OUT, b);
	assert_int_equal(f->n, 1);
	assert_true(f->rec[0].flags & TG_PG_CANCEL_REQUEST);
	assert_string_equal(f->rec[0].command, "CANCEL");
	assert_string_equal(f->rec[0].text, "cancel request for backend 4242");
	assert_true(tg_pg__abandoned(f->c));
	free(b);
}

static void test_auth_failure(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	startup(b, "bad", "db");
	seg(f, TG_DIR_OUT, b);
	E(b, 'E', "28P01", "password authentication failed for user \"bad\"");
	seg(f, TG_DIR_IN, b);
	tg_pg__close(f->c, 5000);
	assert_int_equal(f->n, 1);
	assert_true(f->rec[0].flags & TG_PG_STARTUP);
	assert_string_equal(f->rec[0].sqlstate, "28P01");
	free(b);
}

static void test_simple_queries(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	connect_ok(f, b);
	Q(b, "BEGIN");
	seg(f, TG_DIR_OUT, b);
	C(b, "BEGIN");
	Z(b, 'T');
	seg(f, TG_DIR_IN, b);
	Q(b, "INSERT INTO t VALUES (1)");
	seg(f, TG_DIR_OUT, b);
	E(b, 'N', "01000", "a notice"); /* NoticeResponse: ignored */
	C(b, "INSERT 0 1");
	Z(b, 'T');
	seg(f, TG_DIR_IN, b);
	Q(b, "");
	seg(f, TG_DIR_OUT, b);
	empty(b, 'I');
	Z(b, 'T');
	seg(f, TG_DIR_IN, b);
	Q(b, "COMMIT");
	seg(f, TG_DIR_OUT, b);
	C(b, "COMMIT");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 4);
	assert_string_equal(f->rec[0].command, "BEGIN");
	assert_int_equal(f->rec[0].rows, -1);
	assert_int_equal(f->rec[0].txn_status, 'T');
	assert_string_equal(f->rec[1].command, "INSERT");
	assert_int_equal(f->rec[1].rows, 1);
	assert_int_equal(f->rec[1].flags, 0);
	assert_string_equal(f->rec[2].text, "");
	assert_string_equal(f->rec[2].command, "");
	assert_string_equal(f->rec[3].command, "COMMIT");
	assert_int_equal(f->rec[3].txn_status, 'I');
	assert_int_equal(f->rec[3].tid, 11);
	free(b);
}

static void test_multi_statement_query(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	connect_ok(f, b);
	Q(b, "UPDATE a SET x = 1; SELECT * FROM a; DELETE FROM b");
	seg(f, TG_DIR_OUT, b);
	C(b, "UPDATE 3");
	T(b);
	D(b, "1");
	D(b, "2");
	C(b, "SELECT 2");
	seg(f, TG_DIR_IN, b);
	E(b, 'E', "23503", "violates foreign key");
	Z(b, 'E');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 1);
	assert_true(f->rec[0].flags & TG_PG_MULTI);
	assert_true(f->rec[0].flags & TG_PG_ERROR);
	assert_int_equal(f->rec[0].rows, 5); /* sum of the completed statements */
	assert_string_equal(f->rec[0].command, "SELECT");
	assert_string_equal(f->rec[0].sqlstate, "23503");
	assert_string_equal(f->rec[0].error, "ERROR: violates foreign key");
	assert_int_equal(f->rec[0].txn_status, 'E');
	assert_int_equal(f->rec[0].end_ns, f->ts);
	free(b);
}

/* asyncpg: Parse+Describe+Flush/Sync, then Bind+Execute+Sync, later only Bind+Execute+Sync. */
static void test_asyncpg_pipeline(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	connect_ok(f, b);
	P(b, "__asyncpg_stmt_1__", "SELECT name FROM users WHERE id = $1");
	named(b, 'D', 'S', "__asyncpg_stmt_1__");
	empty(b, 'S');
	seg(f, TG_DIR_OUT, b);
	empty(b, '1');
	put(b, "t\0\0\0\x0a\0\x01\0\0\0\x17", 11);
	T(b);
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 0); /* a prepare alone is not a statement */
	for (int i = 0; i < 2; i++) {
		B(b, "", "__asyncpg_stmt_1__");
		Ex(b, "", 0);
		empty(b, 'S');
		seg(f, TG_DIR_OUT, b);
		empty(b, '2');
		D(b, "alice");
		C(b, "SELECT 1");
		Z(b, 'I');
		seg(f, TG_DIR_IN, b);
	}
	/* Close the statement: its name is forgotten */
	named(b, 'C', 'S', "__asyncpg_stmt_1__");
	empty(b, 'S');
	seg(f, TG_DIR_OUT, b);
	empty(b, '3');
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	B(b, "", "__asyncpg_stmt_1__");
	Ex(b, "", 0);
	empty(b, 'S');
	seg(f, TG_DIR_OUT, b);
	E(b, 'E', "26000", "prepared statement does not exist");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 3);
	for (int i = 0; i < 2; i++) {
		assert_string_equal(f->rec[i].text, "SELECT name FROM users WHERE id = $1");
		assert_string_equal(f->rec[i].stmt_name, "__asyncpg_stmt_1__");
		assert_int_equal(f->rec[i].rows, 1);
		assert_int_equal(f->rec[i].flags, 0);
	}
	assert_true(f->rec[1].start_ns > f->rec[0].end_ns);
	assert_true(f->rec[2].flags & TG_PG_UNKNOWN_PREPARED);
	assert_true(f->rec[2].flags & TG_PG_ERROR);
	free(b);
}

/* psycopg 3 pipeline: several Execute before one Sync, an error in the middle. */
static void test_pipeline_error_skips(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	connect_ok(f, b);
	P(b, "", "INSERT INTO a VALUES ($1)");
	B(b, "", "");
	Ex(b, "", 0);
	P(b, "", "INSERT INTO b VALUES ($1)");
	B(b, "", "");
	Ex(b, "", 0);
	P(b, "", "INSERT INTO c VALUES ($1)");
	B(b, "", "");
	Ex(b, "", 0);
	empty(b, 'S');
	seg(f, TG_DIR_OUT, b);
	empty(b, '1');
	empty(b, '2');
	C(b, "INSERT 0 1");
	seg(f, TG_DIR_IN, b);
	empty(b, '1');
	empty(b, '2');
	E(b, 'E', "23505", "duplicate key");
	Z(b, 'E');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 3);
	assert_string_equal(f->rec[0].text, "INSERT INTO a VALUES ($1)");
	assert_int_equal(f->rec[0].flags, 0);
	assert_int_equal(f->rec[0].end_ns, f->ts - 1000); /* its own CommandComplete */
	assert_string_equal(f->rec[1].text, "INSERT INTO b VALUES ($1)");
	assert_true(f->rec[1].flags & TG_PG_ERROR);
	assert_string_equal(f->rec[1].sqlstate, "23505");
	assert_string_equal(f->rec[2].text, "INSERT INTO c VALUES ($1)");
	assert_true(f->rec[2].flags & TG_PG_SKIPPED);
	assert_int_equal(f->rec[2].txn_status, 'E');
	free(b);
}

static void test_parse_error_prepare_only(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	connect_ok(f, b);
	P(b, "s9", "SELEC 1");
	named(b, 'D', 'S', "s9");
	empty(b, 'H');
	seg(f, TG_DIR_OUT, b);
	E(b, 'E', "42601", "syntax error");
	seg(f, TG_DIR_IN, b);
	empty(b, 'S');
	seg(f, TG_DIR_OUT, b);
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].text, "SELEC 1");
	assert_true(f->rec[0].flags & TG_PG_PREPARE_ONLY);
	assert_string_equal(f->rec[0].sqlstate, "42601");
	free(b);
}

static void test_portal_suspended_and_cancel(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	connect_ok(f, b);
	P(b, "", "SELECT * FROM big");
	B(b, "cur", "");
	Ex(b, "cur", 2);
	empty(b, 'S');
	seg(f, TG_DIR_OUT, b);
	empty(b, '1');
	empty(b, '2');
	D(b, "1");
	D(b, "2");
	empty(b, 's');
	Z(b, 'T');
	seg(f, TG_DIR_IN, b);
	Q(b, "SELECT pg_sleep(10)");
	seg(f, TG_DIR_OUT, b);
	E(b, 'E', "57014", "canceling statement due to user request");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 2);
	assert_true(f->rec[0].flags & TG_PG_SUSPENDED);
	assert_int_equal(f->rec[0].rows, 2);
	assert_true(f->rec[1].flags & TG_PG_CANCELLED);
	free(b);
}

static void test_copy_in_out(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	connect_ok(f, b);
	Q(b, "COPY t FROM STDIN");
	seg(f, TG_DIR_OUT, b);
	copyresp(b, 'G');
	seg(f, TG_DIR_IN, b);
	copydata(b, 100);
	copydata(b, 50);
	empty(b, 'c');
	seg(f, TG_DIR_OUT, b);
	C(b, "COPY 2");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	Q(b, "COPY t TO STDOUT");
	seg(f, TG_DIR_OUT, b);
	copyresp(b, 'H');
	copydata(b, 30);
	copydata(b, 30);
	copydata(b, 30);
	empty(b, 'c');
	C(b, "COPY 3");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	Q(b, "COPY t FROM STDIN");
	seg(f, TG_DIR_OUT, b);
	copyresp(b, 'G');
	seg(f, TG_DIR_IN, b);
	msg_str(b, 'f', "client gave up");
	seg(f, TG_DIR_OUT, b);
	E(b, 'E', "57014", "COPY from stdin failed: client gave up");
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 3);
	assert_true(f->rec[0].flags & TG_PG_COPY);
	assert_int_equal(f->rec[0].copy_bytes, 150);
	assert_int_equal(f->rec[0].rows, 2);
	assert_true(f->rec[1].flags & TG_PG_COPY);
	assert_int_equal(f->rec[1].copy_bytes, 90);
	assert_int_equal(f->rec[1].rows, 3);
	assert_int_equal(f->rec[1].data_rows, 0);
	assert_true(f->rec[2].flags & TG_PG_ERROR);
	free(b);
}

static void test_gap_and_close(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();

	connect_ok(f, b);
	Q(b, "SELECT 1");
	seg(f, TG_DIR_OUT, b);
	tg_pg__gap(f->c);
	C(b, "SELECT 1"); /* lost framing: waits for Z */
	Z(b, 'I');
	seg(f, TG_DIR_IN, b);
	assert_int_equal(f->n, 1);
	assert_true(f->rec[0].flags & TG_PG_LOST_EVENTS);
	Q(b, "SELECT pg_sleep(1)");
	seg(f, TG_DIR_OUT, b);
	tg_pg__close(f->c, 77777);
	assert_int_equal(f->n, 2);
	assert_true(f->rec[1].flags & TG_PG_INCOMPLETE);
	assert_int_equal(f->rec[1].end_ns, 77777);
	free(b);
}

static void test_queue_overflow(void **state)
{
	struct fx *f = *state;
	struct bb *b = bnew();
	struct tg_pg_cfg cfg = {.max_pending = 4, .max_prepared = 2};

	tg_pg__free(f->c);
	f->c = tg_pg__new(&cfg, on_emit, f);
	assert_non_null(f->c);
	connect_ok(f, b);
	P(b, "a", "SELECT 'a'");
	P(b, "b", "SELECT 'b'");
	P(b, "c", "SELECT 'c'"); /* evicts one of a, b */
	for (int i = 0; i < 6; i++) {
		B(b, "", "c");
		Ex(b, "", 0);
	}
	empty(b, 'S');
	seg(f, TG_DIR_OUT, b);
	assert_true(f->n >= 3); /* oldest given up as INCOMPLETE */
	assert_true(f->rec[0].flags & TG_PG_INCOMPLETE);
	assert_string_equal(f->rec[0].text, "SELECT 'c'");
	tg_pg__close(f->c, 1);
	assert_int_equal(f->n, 6);
	free(b);
}

/* ---- recorded streams ---- */

static void replay(struct fx *f, const char *name, size_t cap)
{
	char path[512];
	FILE *fp;
	uint8_t *buf = malloc(1 << 20);
	size_t n, i = 0;

	assert_non_null(buf);
	snprintf(path, sizeof(path), "%s/%s", TG_TEST_DATA, name);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	n = fread(buf, 1, 1 << 20, fp);
	fclose(fp);
	f->head = cap;
	while (i + 5 <= n) {
		struct bb *b = bnew();
		uint32_t len =
		    buf[i + 1] | buf[i + 2] << 8 | buf[i + 3] << 16 | (uint32_t)buf[i + 4] << 24;

		assert_true(i + 5 + len <= n);
		put(b, buf + i + 5, len);
		seg(f, buf[i] ? TG_DIR_OUT : TG_DIR_IN, b);
		free(b);
		i += 5 + len;
	}
	tg_pg__close(f->c, f->ts + 1000);
	free(buf);
}

static void test_recorded_asyncpg(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *text, *cmd;
		int64_t rows;
		uint32_t flags;
	} want[] = {
	    {"DROP TABLE IF EXISTS tg_items; CREATE TABLE tg_items (id int, name text)",
	     "CREATE TABLE", -1, TG_PG_MULTI},
	    {"INSERT INTO tg_items VALUES ($1, $2)", "INSERT", 1, 0},
	    {"INSERT INTO tg_items VALUES ($1, $2)", "INSERT", 1, 0},
	    {"INSERT INTO tg_items VALUES ($1, $2)", "INSERT", 1, 0},
	    {"SELECT id, name FROM tg_items WHERE id >= $1 ORDER BY id", "SELECT", 3, 0},
	    {"SELECT id, name FROM tg_items WHERE id >= $1 ORDER BY id", "SELECT", 3, 0},
	    {"SELECT count(*) FROM tg_items", "", 1, TG_PG_SUSPENDED},
	    {"SELECT * FROM tg_missing WHERE id = $1", "", -1, TG_PG_ERROR | TG_PG_PREPARE_ONLY},
	    {"BEGIN;", "BEGIN", -1, 0},
	    {"UPDATE tg_items SET name = $1 WHERE id = $2", "UPDATE", 1, 0},
	    {"COMMIT;", "COMMIT", -1, 0},
	    {"COPY \"tg_items\" FROM STDIN (FORMAT binary)", "COPY", 2, TG_PG_COPY},
	};

	replay(f, "pg_asyncpg.bin", 1 << 20);
	assert_int_equal(f->n, sizeof(want) / sizeof(want[0]));
	for (int i = 0; i < f->n; i++) {
		assert_string_equal(f->rec[i].text, want[i].text);
		assert_string_equal(f->rec[i].command, want[i].cmd);
		assert_int_equal(f->rec[i].rows, want[i].rows);
		assert_int_equal(f->rec[i].flags, want[i].flags);
		assert_string_equal(f->rec[i].db_user, "postgres");
	}
	assert_string_equal(f->rec[7].sqlstate, "42P01");
	assert_int_equal(f->rec[9].txn_status, 'T');
	assert_true(f->rec[11].copy_bytes > 0);
}

static void test_recorded_psycopg2(void **state)
{
	struct fx *f = *state;
	static const char *want[][2] = {
	    {"BEGIN", "BEGIN"},
	    {"CREATE TEMP TABLE tg_t (id int, v text)", "CREATE TABLE"},
	    {"INSERT INTO tg_t VALUES (1, 'a'), (2, 'b')", "INSERT"},
	    {"SELECT id, v FROM tg_t WHERE id > 0", "SELECT"},
	    {"COMMIT", "COMMIT"},
	    {"BEGIN", "BEGIN"},
	    {"SELECT 1/0", ""},
	    {"ROLLBACK", "ROLLBACK"},
	    {"BEGIN", "BEGIN"},
	    {"SELECT 1; SELECT 2", "SELECT"},
	    {"COMMIT", "COMMIT"},
	};

	replay(f, "pg_psycopg2.bin", 1 << 20);
	assert_int_equal(f->n, 11);
	for (int i = 0; i < f->n; i++) {
		assert_string_equal(f->rec[i].text, want[i][0]);
		assert_string_equal(f->rec[i].command, want[i][1]);
	}
	assert_int_equal(f->rec[2].rows, 2);
	assert_int_equal(f->rec[3].rows, 2);
	assert_int_equal(f->rec[3].data_rows, 2);
	assert_string_equal(f->rec[6].sqlstate, "22012");
	assert_int_equal(f->rec[6].txn_status, 'E');
	assert_int_equal(f->rec[9].rows, 2);
	assert_true(f->rec[9].flags & TG_PG_MULTI);
}

static void test_recorded_small_capture(void **state)
{
	struct fx *f = *state;

	/* 40-byte captures: texts truncated, some statements lost, never a crash */
	replay(f, "pg_asyncpg.bin", 40);
	assert_true(f->n >= 5);
	for (int i = 0; i < f->n; i++)
		assert_true(strlen(f->rec[i].text) <= 40 + 16); /* head + tail */
	assert_true(f->rec[0].flags & TG_PG_TRUNCATED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_garbage_resync, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_byte_segments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated_capture, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_text_longer_than_max, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_prepared, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ssl_encrypted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ssl_plaintext, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ssl_refused_then_plain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_simple_queries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_multi_statement_query, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_asyncpg_pipeline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pipeline_error_skips, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parse_error_prepare_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_portal_suspended_and_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_copy_in_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gap_and_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_overflow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recorded_asyncpg, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recorded_psycopg2, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recorded_small_capture, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
