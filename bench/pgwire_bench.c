/* SPDX-License-Identifier: MIT */
/*
 * pgwire_bench: throughput of the PostgreSQL protocol parser (user/pgwire.c)
 * on one core, in MB/s of protocol bytes (both directions) — the issue's
 * goal is >= 500 MB/s.
 *
 * Streams, each fed as whole segments (every byte captured, the worst case
 * for the parser: nothing is skipped unseen) over and over for about a
 * second per stream, on one connection state per pass:
 *  - asyncpg, psycopg2: tests/data/pg_asyncpg.bin and pg_psycopg2.bin, real
 *    client sessions (startup, simple and extended protocol, errors), as
 *    recorded (small: per-connection setup weighs in);
 *  - oltp: asyncpg's shape of a one-row lookup, repeated: the app writes
 *    Bind/Execute/Sync of a named statement, reads BindComplete, one DataRow,
 *    CommandComplete and ReadyForQuery (~150 bytes per statement);
 *  - rows100: the same with 100 DataRows of ~60 bytes per statement;
 *  - simple: a simple Query of a 300-byte statement and its one-row answer.
 * Statements per second and nanoseconds per statement are printed too.
 *
 *   pgwire_bench [DATA_DIR] [SECONDS_PER_STREAM=1] [STREAM]
 * (STREAM: run only the stream of that name, e.g. oltp, for profiling; a
 * negative SECONDS_PER_STREAM runs exactly that many passes instead, for
 * instruction counts under callgrind)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgwire.h"
#include "timeglass/events.h"

struct seg {
	int dir;
	size_t len;
	uint8_t *bytes;
};

struct stream {
	const char *name;
	struct seg *v;
	size_t n, cap;
	uint64_t bytes;
};

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			die("realloc");
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void put32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	put(b, x, 4);
}

static void put16(struct buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	put(b, x, 2);
}

/* A typed message: type, length, body. */
static void msg(struct buf *b, char type, const void *body, size_t n)
{
	put(b, &type, 1);
	put32(b, (uint32_t)(n + 4));
	put(b, body, n);
}

static void add_seg(struct stream *s, int dir, const uint8_t *p, size_t n)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v)
			die("realloc");
	}
	s->v[s->n].dir = dir;
	s->v[s->n].len = n;
	s->v[s->n].bytes = malloc(n ? n : 1);
	if (!s->v[s->n].bytes)
		die("malloc");
	memcpy(s->v[s->n].bytes, p, n);
	s->n++;
	s->bytes += n;
}

/* Records [dir u8: 1 = client->server][len u32 le][bytes] (tests/data). */
static int load_recording(struct stream *s, const char *dir, const char *name)
{
	char path[512];
	uint8_t hdr[5];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return -1;
	while (fread(hdr, 1, 5, f) == 5) {
		uint32_t len = hdr[1] | hdr[2] << 8 | hdr[3] << 16 | (uint32_t)hdr[4] << 24;
		uint8_t *p = malloc(len ? len : 1);

		if (!p || fread(p, 1, len, f) != len) {
			free(p);
			break;
		}
		add_seg(s, hdr[0] ? TG_DIR_OUT : TG_DIR_IN, p, len);
		free(p);
	}
	fclose(f);
	return 0;
}

/* The startup exchange of a session: StartupMessage, AuthenticationOk, a
 * ParameterStatus, BackendKeyData, ReadyForQuery. */
static void startup(struct stream *s)
{
	static const char params[] = "user\0app\0database\0shop\0";
	struct buf b = {0};

	put32(&b, (uint32_t)(8 + sizeof(params)));
	put32(&b, 196608);
	put(&b, params, sizeof(params));
	add_seg(s, TG_DIR_OUT, b.p, b.n);
	b.n = 0;
	msg(&b, 'R', "\0\0\0\0", 4);
	msg(&b, 'S', "server_version\00015.5", 20);
	msg(&b, 'K', "\0\0\0\1\0\0\0\2", 8);
	msg(&b, 'Z', "I", 1);
	add_seg(s, TG_DIR_IN, b.p, b.n);
	free(b.p);
}

/* n executions of asyncpg's named statement, each answered with rows DataRows. */
static void extended(struct stream *s, int n, int rows)
{
	static const char sql[] = "SELECT id, name, price FROM items WHERE id = $1";
	static const char name[] = "__asyncpg_stmt_1__";
	struct buf b = {0}, body = {0};

	/* Parse + Describe + Sync once; ParseComplete, ParameterDescription, RowDescription, Z. */
	put(&body, name, sizeof(name));
	put(&body, sql, sizeof(sql));
	put16(&body, 0);
	msg(&b, 'P', body.p, body.n);
	body.n = 0;
	put(&body, "S", 1);
	put(&body, name, sizeof(name));
	msg(&b, 'D', body.p, body.n);
	msg(&b, 'S', NULL, 0);
	add_seg(s, TG_DIR_OUT, b.p, b.n);
	b.n = 0;
	msg(&b, '1', NULL, 0);
	msg(&b, 't', "\0\1\0\0\0\x17", 6);
	msg(&b, 'T', "\0\0", 2);
	msg(&b, 'Z', "I", 1);
	add_seg(s, TG_DIR_IN, b.p, b.n);
	for (int i = 0; i < n; i++) {
		b.n = 0;
		body.n = 0;
		put(&body, "", 1); /* unnamed portal */
		put(&body, name, sizeof(name));
		put16(&body, 1); /* one format code: binary */
		put16(&body, 1);
		put16(&body, 1); /* one parameter */
		put32(&body, 4);
		put32(&body, (uint32_t)i);
		put16(&body, 1);
		put16(&body, 1);
		msg(&b, 'B', body.p, body.n);
		msg(&b, 'E', "\0\0\0\0\0", 5);
		msg(&b, 'S', NULL, 0);
		add_seg(s, TG_DIR_OUT, b.p, b.n);
		b.n = 0;
		msg(&b, '2', NULL, 0);
		for (int r = 0; r < rows; r++) {
			body.n = 0;
			put16(&body, 3);
			put32(&body, 4);
			put32(&body, (uint32_t)r);
			put32(&body, 24);
			put(&body, "a product name of twenty", 24);
			put32(&body, 10);
			put(&body, "0000012345", 10);
			msg(&b, 'D', body.p, body.n);
		}
		char tag[32];
		int tl = snprintf(tag, sizeof(tag), "SELECT %d", rows);
		msg(&b, 'C', tag, (size_t)tl + 1);
		msg(&b, 'Z', "I", 1);
		add_seg(s, TG_DIR_IN, b.p, b.n);
	}
	free(b.p);
	free(body.p);
}

/* n simple Queries of a ~300-byte statement, one row each. */
static void simple(struct stream *s, int n)
{
	struct buf b = {0}, body = {0};
	char sql[400];

	for (int i = 0; i < n; i++) {
		int len = snprintf(
		    sql, sizeof(sql),
		    "SELECT o.id, o.item_id, o.qty, i.name, i.price FROM orders o JOIN "
		    "items i ON i.id = o.item_id WHERE o.customer_id = %d AND o.created_at "
		    ">= now() - interval '30 days' AND o.status IN ('paid', 'shipped', "
		    "'delivered') ORDER BY o.created_at DESC, o.id DESC LIMIT 20 OFFSET 0 "
		    "/* request %d */",
		    i, i);
		b.n = 0;
		msg(&b, 'Q', sql, (size_t)len + 1);
		add_seg(s, TG_DIR_OUT, b.p, b.n);
		b.n = 0;
		msg(&b, 'T', "\0\0", 2);
		body.n = 0;
		put16(&body, 1);
		put32(&body, 5);
		put(&body, "12345", 5);
		msg(&b, 'D', body.p, body.n);
		msg(&b, 'C', "SELECT 1", 9);
		msg(&b, 'Z', "I", 1);
		add_seg(s, TG_DIR_IN, b.p, b.n);
	}
	free(b.p);
	free(body.p);
}

static uint64_t emitted;

static void on_stmt(void *ctx, const struct tg_pg_stmt *st)
{
	(void)ctx;
	emitted += st->text[0] != 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One pass: a fresh connection fed the whole stream, then closed. */
static void pass(const struct stream *s, uint64_t *ts)
{
	struct tg_pg_conn *c = tg_pg__new(NULL, on_stmt, NULL);

	if (!c)
		die("tg_pg__new");
	for (size_t i = 0; i < s->n; i++) {
		struct tg_segment seg = {.ts_ns = (*ts += 1000),
					 .task_key = 1,
					 .tid = 1,
					 .dir = s->v[i].dir,
					 .len = s->v[i].len,
					 .head = s->v[i].bytes,
					 .head_len = s->v[i].len};
		tg_pg__feed(c, &seg);
	}
	tg_pg__close(c, *ts += 1000);
	tg_pg__free(c);
}

static const char *only; /* run only this stream (argv[3]); NULL: all */

static void run(const struct stream *s, double seconds)
{
	uint64_t ts = 0, bytes = 0, passes = 0;
	double t0, t;

	if (only && strcmp(only, s->name))
		return;
	emitted = 0;
	pass(s, &ts); /* warm-up */
	emitted = 0;
	t0 = now_s();
	do {
		pass(s, &ts);
		bytes += s->bytes;
		passes++;
		t = now_s() - t0;
	} while (seconds < 0 ? passes < (uint64_t)-seconds : t < seconds);
	printf("%-10s %8zu B/pass %7.0f MB/s %9.0f statements/s %7.0f ns/statement\n", s->name,
	       (size_t)s->bytes, (double)bytes / t / 1e6, (double)emitted / t,
	       emitted ? t * 1e9 / (double)emitted : 0.0);
}

static void free_stream(struct stream *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].bytes);
	free(s->v);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/data";
	double seconds = argc > 2 ? atof(argv[2]) : 1.0;

	only = argc > 3 ? argv[3] : NULL;
	struct stream rec = {.name = "asyncpg"}, rec2 = {.name = "psycopg2"},
		      oltp = {.name = "oltp"}, rows = {.name = "rows100"},
		      simp = {.name = "simple"};

	if (load_recording(&rec, dir, "pg_asyncpg.bin") ||
	    load_recording(&rec2, dir, "pg_psycopg2.bin")) {
		fprintf(stderr,
			"pgwire_bench: cannot read the recordings in %s (give tests/data)\n", dir);
		return 1;
	}
	startup(&oltp);
	extended(&oltp, 2000, 1);
	startup(&rows);
	extended(&rows, 200, 100);
	startup(&simp);
	simple(&simp, 2000);
	printf("pgwire parser, one core, whole segments, %.1f s per stream\n", seconds);
	run(&rec, seconds);
	run(&rec2, seconds);
	run(&oltp, seconds);
	run(&rows, seconds);
	run(&simp, seconds);
	free_stream(&rec);
	free_stream(&rec2);
	free_stream(&oltp);
	free_stream(&rows);
	free_stream(&simp);
	return 0;
}
