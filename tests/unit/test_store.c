/* SPDX-License-Identifier: MIT */
/* Unit tests of the SQLite store (user/store.c): schema, migrations, refusals,
 * batching, flush, row-by-row retry, reroute and a concurrent reader. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "hist.h"
#include "log.h"
#include "route.h"
#include "store.h"

#define EPOCH_OFF 1700000000000000000ULL
#define INDEX_COUNT                                                                                \
	"SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN"                      \
	" ('requests_endpoint', 'requests_start', 'requests_duration',"                            \
	" 'requests_endpoint_duration')"

struct fx {
	char dir[64];
	char path[96];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tg_test_store.XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char p[128];

	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static sqlite3 *raw_open(const char *path, int flags)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, flags, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);

	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* The first column of the first row as an integer; -1 for NULL. */
static int64_t query_int(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path, SQLITE_OPEN_READONLY);
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void query_text(const char *path, const char *sql, char *out, size_t cap)
{
	sqlite3 *db = raw_open(path, SQLITE_OPEN_READONLY);
	sqlite3_stmt *st = NULL;
	const char *t;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	t = (const char *)sqlite3_column_text(st, 0);
	snprintf(out, cap, "%s", t ? t : "(null)");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static struct tg_store *open_with_run(const char *path, int64_t *run_id)
{
	struct tg_run_info info = {
	    .started_ns = EPOCH_OFF,
	    .mono_to_epoch_ns = EPOCH_OFF,
	    .targets = "--uvicorn",
	    .kernel = "6.18.0",
	    .version = "0.1.0",
	};
	char err[256] = "";
	struct tg_store *s = tg_store__open(path, err, sizeof(err));
	int64_t id = 0;

	assert_non_null(s);
	assert_int_equal(tg_store__begin_run(s, &info, &id), 0);
	assert_true(id > 0);
	if (run_id)
		*run_id = id;
	return s;
}

static void make_req(struct tg_request *r, uint32_t i)
{
	memset(r, 0, sizeof(*r));
	r->conn_id = 100 + i / 4;
	r->pid = 42;
	r->tid = 43;
	r->start_ns = 1000 + (uint64_t)i * 10;
	r->first_resp_ns = i % 2 ? r->start_ns + 1 : 0;
	r->end_ns = r->start_ns + i;
	r->req_bytes = 80 + i;
	r->resp_bytes = 200 + i;
	r->status = i % 3 ? 200 : 0;
	r->flags = i % 2 ? 0 : TG_REQ_INCOMPLETE;
	snprintf(r->method, sizeof(r->method), "GET");
	snprintf(r->target, sizeof(r->target), "/p/%u?q=x", i);
	snprintf(r->route, sizeof(r->route), "/p/{id}");
	snprintf(r->peer, sizeof(r->peer), "127.0.0.1:%u", 30000 + i % 1000);
}

/* ---- Refusals first. */

static void test_refuses_newer_schema(void **state)
{
	struct fx *f = *state;
	char err[256] = "";

	raw_exec(f->path, "CREATE TABLE x(a); PRAGMA user_version = 99;");
	errno = 0;
	assert_null(tg_store__open(f->path, err, sizeof(err)));
	assert_int_equal(errno, EPROTONOSUPPORT);
	assert_non_null(strstr(err, "newer timeglass"));
	assert_non_null(strstr(err, f->path));
	/* untouched: still version 99, no tables of ours */
	assert_int_equal(query_int(f->path, "PRAGMA user_version"), 99);
	assert_int_equal(
	    query_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'runs'"), 0);
}

static void test_refuses_non_database(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	FILE *fp = fopen(f->path, "w");
	int i;

	assert_non_null(fp);
	for (i = 0; i < 64; i++)
		fputs("this is not a database, just some text\n", fp);
	fclose(fp);
	errno = 0;
	assert_null(tg_store__open(f->path, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "is not a SQLite database"));
}

static void test_refuses_unwritable(void **state)
{
	struct fx *f = *state;
	char err[256] = "", path[160];

	snprintf(path, sizeof(path), "%s/no/such/dir/t.db", f->dir);
	errno = 0;
	assert_null(tg_store__open(path, err, sizeof(err)));
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "cannot open"));
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, strerror(ENOENT)));
	/* NULL err buffer is tolerated */
	assert_null(tg_store__open(path, NULL, 0));
	assert_null(tg_store__open("", err, sizeof(err)));
}

static void test_add_before_run(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	struct tg_store *s = tg_store__open(f->path, err, sizeof(err));
	struct tg_request r;

	assert_non_null(s);
	make_req(&r, 1);
	assert_int_equal(tg_store__add_request(s, &r), -EINVAL);
	assert_int_equal(tg_store__add_target(s, 1, "x", 0), -EINVAL);
	assert_int_equal(tg_store__end_run(s, 1, 0, 0), -EINVAL);
	assert_int_equal(tg_store__flush(s), 0);
	tg_store__close(s);
	tg_store__close(NULL);
}

/* ---- Schema. */

static void test_schema_created(void **state)
{
	struct fx *f = *state;
	char err[256] = "", mode[16];
	struct tg_store *s = tg_store__open(f->path, err, sizeof(err));

	assert_non_null(s);
	assert_int_equal(query_int(f->path, "PRAGMA user_version"), TG_SCHEMA_VERSION);
	assert_int_equal(query_int(f->path,
				   "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
				   " AND name IN ('runs', 'targets', 'requests')"),
			 3);
	/* while rows stream in, only the append-only index is kept */
	assert_int_equal(query_int(f->path, INDEX_COUNT), 1);
	query_text(f->path, "PRAGMA journal_mode", mode, sizeof(mode));
	assert_string_equal(mode, "wal");
	tg_store__close(s);
	/* ending a run builds the report's indexes */
	s = open_with_run(f->path, NULL);
	assert_int_equal(tg_store__end_run(s, EPOCH_OFF, 0, 0), 0);
	assert_int_equal(query_int(f->path, INDEX_COUNT), 4);
	tg_store__close(s);
	/* reopening an up-to-date database keeps it */
	s = tg_store__open(f->path, err, sizeof(err));
	assert_non_null(s);
	tg_store__close(s);
	assert_int_equal(query_int(f->path, "PRAGMA user_version"), TG_SCHEMA_VERSION);
}

#define DEFERRED_COUNT                                                                             \
	"SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN"                      \
	" ('requests_endpoint', 'requests_endpoint_duration', 'requests_duration',"                \
	" 'requests_cpu')"

/* A run of n requests on the file at path, ended. reindex_max < 0: the
 * default limit. deferred_while: how many of the four deferred indexes the
 * file has while the run is written (0: dropped, 4: kept). */
static void write_run(const char *path, uint32_t n, int64_t reindex_max, int deferred_while)
{
	struct tg_run_info info = {.started_ns = EPOCH_OFF, .mono_to_epoch_ns = EPOCH_OFF};
	char err[256] = "";
	struct tg_store *s = tg_store__open(path, err, sizeof(err));
	struct tg_request r;

	assert_non_null(s);
	if (reindex_max >= 0)
		tg_store__set_reindex_max(s, reindex_max);
	assert_int_equal(tg_store__begin_run(s, &info, NULL), 0);
	assert_int_equal(query_int(path, DEFERRED_COUNT), deferred_while);
	for (uint32_t i = 0; i < n; i++) {
		make_req(&r, i);
		if (i % 2) { /* some with usage: requests_cpu has rows */
			r.usage.flags = TG_USAGE_VALID;
			r.usage.cpu_ns = 1000 + i;
		}
		assert_int_equal(tg_store__add_request(s, &r), 0);
	}
	assert_int_equal(tg_store__end_run(s, EPOCH_OFF + 1, 0, 0), 0);
	assert_int_equal(query_int(path, DEFERRED_COUNT), 4);
	tg_store__close(s);
}

/* A second run into a file that holds an ended run does not update the
 * deferred indexes row by row: they are dropped at its start and built again
 * over every row at its end, unless the file holds more requests than the
 * reindex limit; when they are missing already (a tracer killed before its
 * run ended), the run's end builds them whatever the limit. */
static void test_later_run_rebuilds_indexes(void **state)
{
	struct fx *f = *state;
	char err[256] = "", check[16];
	struct tg_store *s = tg_store__open(f->path, err, sizeof(err));
	sqlite3 *db;

	assert_non_null(s);
	tg_store__close(s);
	assert_int_equal(query_int(f->path, DEFERRED_COUNT), 0);
	write_run(f->path, 50, -1, 0);	/* first run: nothing to drop */
	write_run(f->path, 30, -1, 0);	/* 50 earlier requests: dropped */
	write_run(f->path, 20, 79, 4);	/* 80 earlier requests > 79: kept */
	write_run(f->path, 10, 100, 0); /* 100 <= 100: dropped */
	/* a run that never ended left them dropped */
	db = raw_open(f->path, SQLITE_OPEN_READWRITE);
	assert_int_equal(
	    sqlite3_exec(db,
			 "DROP INDEX requests_duration; DROP INDEX requests_endpoint;"
			 " DROP INDEX requests_endpoint_duration; DROP INDEX requests_cpu;",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	write_run(f->path, 5, 0, 0); /* over the limit, but missing: built at the end */
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests"), 115);
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests WHERE cpu_ns > 0"), 57);
	/* the rebuilt indexes agree with the table */
	query_text(f->path, "PRAGMA integrity_check", check, sizeof(check));
	assert_string_equal(check, "ok");
}

static void test_migrates_empty_file(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	FILE *fp = fopen(f->path, "w");
	struct tg_store *s;

	assert_non_null(fp);
	fclose(fp);
	s = tg_store__open(f->path, err, sizeof(err));
	assert_non_null(s);
	tg_store__close(s);
	assert_int_equal(query_int(f->path, "PRAGMA user_version"), TG_SCHEMA_VERSION);
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests"), 0);
}

/* ---- Writing. */

static void test_batching_round_trip(void **state)
{
	struct fx *f = *state;
	const uint32_t n = 40000; /* more than the queue holds: producers block */
	struct tg_store_stats st;
	struct tg_request r;
	struct tg_store *s;
	char text[64];
	int64_t run;
	uint32_t i;

	s = open_with_run(f->path, &run);
	assert_int_equal(tg_store__add_target(s, 42, "uvicorn app:app", 500), 0);
	for (i = 0; i < n; i++) {
		make_req(&r, i);
		assert_int_equal(tg_store__add_request(s, &r), 0);
	}
	assert_int_equal(tg_store__flush(s), 0);
	tg_store__stats(s, &st);
	assert_int_equal(st.requests_written, n);
	assert_int_equal(st.rows_failed, 0);
	assert_true(st.batches >= 1);
	assert_true(st.batches < n / 4); /* many rows per transaction */

	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests"), n);
	assert_int_equal(query_int(f->path, "SELECT count(DISTINCT path) FROM requests"), n);
	/* i = 7: odd, a response, status 200 */
	assert_int_equal(
	    query_int(f->path, "SELECT start_ns FROM requests WHERE path = '/p/7?q=x'"),
	    (int64_t)(EPOCH_OFF + 1070));
	assert_int_equal(
	    query_int(f->path, "SELECT duration_ns FROM requests WHERE path = '/p/7?q=x'"), 7);
	assert_int_equal(query_int(f->path, "SELECT ttfb_ns FROM requests WHERE path = '/p/7?q=x'"),
			 1);
	assert_int_equal(query_int(f->path, "SELECT status FROM requests WHERE path = '/p/7?q=x'"),
			 200);
	assert_int_equal(query_int(f->path, "SELECT flags FROM requests WHERE path = '/p/7?q=x'"),
			 0);
	/* i = 6: no response seen -> ttfb NULL; status 0 -> NULL */
	assert_int_equal(query_int(f->path, "SELECT ttfb_ns FROM requests WHERE path = '/p/6?q=x'"),
			 -1);
	assert_int_equal(query_int(f->path, "SELECT status FROM requests WHERE path = '/p/6?q=x'"),
			 -1);
	assert_int_equal(query_int(f->path, "SELECT flags FROM requests WHERE path = '/p/6?q=x'"),
			 TG_REQ_INCOMPLETE);
	assert_int_equal(
	    query_int(f->path, "SELECT resp_bytes FROM requests WHERE path = '/p/6?q=x'"), 206);
	assert_int_equal(query_int(f->path, "SELECT conn_id FROM requests WHERE path = '/p/6?q=x'"),
			 101);
	query_text(f->path, "SELECT peer FROM requests WHERE path = '/p/6?q=x'", text,
		   sizeof(text));
	assert_string_equal(text, "127.0.0.1:30006");
	query_text(f->path, "SELECT route FROM requests WHERE path = '/p/6?q=x'", text,
		   sizeof(text));
	assert_string_equal(text, "/p/{id}");
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests WHERE run_id != (SELECT "
					    "max(id) FROM runs)"),
			 0);
	/* target row, time converted to epoch */
	assert_int_equal(query_int(f->path, "SELECT seen_ns FROM targets WHERE pid = 42"),
			 (int64_t)(EPOCH_OFF + 500));
	query_text(f->path, "SELECT cmdline FROM targets WHERE pid = 42", text, sizeof(text));
	assert_string_equal(text, "uvicorn app:app");
	tg_store__close(s);
}

static void test_edge_values(void **state)
{
	struct fx *f = *state;
	struct tg_request r;
	struct tg_store *s = open_with_run(f->path, NULL);

	/* unterminated strings, no end time, top-bit conn id, empty route and peer */
	make_req(&r, 3);
	memset(r.method, 'M', sizeof(r.method));
	memset(r.target, 'x', sizeof(r.target));
	r.route[0] = '\0';
	r.peer[0] = '\0';
	r.end_ns = 0;
	r.conn_id = (1ULL << 63) | 5;
	assert_int_equal(tg_store__add_request(s, &r), 0);
	assert_int_equal(tg_store__add_target(s, 7, NULL, 0), 0);
	assert_int_equal(tg_store__flush(s), 0);
	assert_int_equal(query_int(f->path, "SELECT length(method) FROM requests"),
			 TG_METHOD_LEN - 1);
	assert_int_equal(query_int(f->path, "SELECT length(path) FROM requests"),
			 TG_TARGET_LEN - 1);
	assert_int_equal(query_int(f->path, "SELECT route IS NULL AND peer IS NULL FROM requests"),
			 1);
	assert_int_equal(query_int(f->path, "SELECT duration_ns FROM requests"), -1);
	assert_int_equal(query_int(f->path, "SELECT conn_id FROM requests"),
			 (int64_t)((1ULL << 63) | 5));
	assert_int_equal(query_int(f->path, "SELECT cmdline IS NULL FROM targets WHERE pid = 7"),
			 1);
	tg_store__close(s);
}

static void test_flush_and_close_write_everything(void **state)
{
	struct fx *f = *state;
	struct tg_request r;
	struct tg_store *s = open_with_run(f->path, NULL);
	uint32_t i;

	assert_int_equal(tg_store__flush(s), 0); /* nothing queued: returns at once */
	for (i = 0; i < 1000; i++) {
		make_req(&r, i);
		assert_int_equal(tg_store__add_request(s, &r), 0);
	}
	assert_int_equal(tg_store__flush(s), 0);
	/* visible to another connection right after flush, store still open */
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests"), 1000);
	for (i = 0; i < 500; i++) {
		make_req(&r, i);
		assert_int_equal(tg_store__add_request(s, &r), 0);
	}
	tg_store__close(s); /* close drains the queue */
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests"), 1500);
}

static void test_runs_begin_end(void **state)
{
	struct fx *f = *state;
	struct tg_run_info info = {.started_ns = 5, .mono_to_epoch_ns = 1000000};
	struct tg_request r;
	int64_t run1, run2;
	struct tg_store *s = open_with_run(f->path, &run1);

	make_req(&r, 1);
	assert_int_equal(tg_store__add_request(s, &r), 0);
	assert_int_equal(tg_store__end_run(s, EPOCH_OFF + 9, 1234, 56), 0);
	assert_int_equal(tg_store__begin_run(s, &info, &run2), 0);
	assert_true(run2 > run1);
	assert_int_equal(tg_store__add_request(s, &r), 0);
	assert_int_equal(tg_store__flush(s), 0);
	assert_int_equal(query_int(f->path, "SELECT ended FROM runs ORDER BY id LIMIT 1"),
			 (int64_t)(EPOCH_OFF + 9));
	assert_int_equal(query_int(f->path, "SELECT events FROM runs ORDER BY id LIMIT 1"), 1234);
	assert_int_equal(query_int(f->path, "SELECT dropped_events FROM runs ORDER BY id LIMIT 1"),
			 56);
	assert_int_equal(query_int(f->path, "SELECT ended FROM runs ORDER BY id DESC LIMIT 1"), -1);
	assert_int_equal(query_int(f->path, "SELECT targets IS NULL FROM runs ORDER BY id DESC"),
			 1);
	/* each row belongs to the run current when it was added, with that run's offset */
	assert_int_equal(query_int(f->path, "SELECT count(DISTINCT run_id) FROM requests"), 2);
	assert_int_equal(query_int(f->path, "SELECT start_ns FROM requests ORDER BY id DESC"),
			 1000000 + 1010);
	tg_store__close(s);
}

static void test_bad_row_loses_only_itself(void **state)
{
	struct fx *f = *state;
	struct tg_store_stats st;
	struct tg_request r;
	struct tg_store *s;
	enum tg_log_level lvl = tg_log__level();
	uint32_t i;

	s = open_with_run(f->path, NULL);
	/* a trigger that rejects one path, added by another connection */
	raw_exec(f->path,
		 "CREATE TRIGGER reject BEFORE INSERT ON requests"
		 " WHEN NEW.path = '/p/50?q=x' BEGIN SELECT RAISE(ABORT, 'rejected'); END;");
	tg_log__set_level(TG_LOG_ERROR);
	for (i = 0; i < 200; i++) {
		make_req(&r, i);
		assert_int_equal(tg_store__add_request(s, &r), 0);
	}
	assert_int_equal(tg_store__flush(s), 0);
	tg_log__set_level(lvl);
	tg_store__stats(s, &st);
	assert_int_equal(st.rows_failed, 1);
	assert_int_equal(st.requests_written, 199);
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests"), 199);
	assert_int_equal(
	    query_int(f->path, "SELECT count(*) FROM requests WHERE path = '/p/50?q=x'"), 0);
	assert_int_equal(
	    query_int(f->path, "SELECT count(*) FROM requests WHERE path = '/p/51?q=x'"), 1);
	/* the store keeps working after the failure */
	make_req(&r, 1000);
	assert_int_equal(tg_store__add_request(s, &r), 0);
	assert_int_equal(tg_store__flush(s), 0);
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests"), 200);
	tg_store__close(s);
}

static void add_routed(struct tg_store *s, uint32_t pid, const char *path, const char *route,
		       uint32_t flags)
{
	struct tg_request r;

	make_req(&r, 1);
	r.pid = pid;
	r.flags = flags;
	snprintf(r.target, sizeof(r.target), "%s", path);
	snprintf(r.route, sizeof(r.route), "%s", route);
	assert_int_equal(tg_store__add_request(s, &r), 0);
}

static void test_reroute_guessed_only(void **state)
{
	struct fx *f = *state;
	struct tg_routes *routes = tg_routes__new();
	struct tg_store *s = open_with_run(f->path, NULL);
	char text[64];

	assert_non_null(routes);
	assert_int_equal(tg_routes__add(routes, "GET", "/items/{item_id}"), 0);
	add_routed(s, 1, "/items/42?x=1", "/items/{id}", TG_REQ_ROUTE_GUESSED | TG_REQ_INCOMPLETE);
	add_routed(s, 1, "/items/7", "/custom", 0);			   /* not guessed */
	add_routed(s, 2, "/items/9", "/items/{id}", TG_REQ_ROUTE_GUESSED); /* other pid */
	add_routed(s, 1, "/other/1", "/other/{id}", TG_REQ_ROUTE_GUESSED); /* no match */
	/* queued right behind the rows: no flush needed in between */
	assert_int_equal(tg_store__reroute(s, 1, routes), 0);
	assert_int_equal(tg_store__flush(s), 0);

	query_text(f->path, "SELECT route FROM requests WHERE path = '/items/42?x=1'", text,
		   sizeof(text));
	assert_string_equal(text, "/items/{item_id}");
	assert_int_equal(
	    query_int(f->path, "SELECT flags FROM requests WHERE path = '/items/42?x=1'"),
	    TG_REQ_INCOMPLETE);
	query_text(f->path, "SELECT route FROM requests WHERE path = '/items/7'", text,
		   sizeof(text));
	assert_string_equal(text, "/custom");
	query_text(f->path, "SELECT route FROM requests WHERE path = '/items/9'", text,
		   sizeof(text));
	assert_string_equal(text, "/items/{id}");
	assert_int_equal(query_int(f->path, "SELECT flags FROM requests WHERE path = '/items/9'"),
			 TG_REQ_ROUTE_GUESSED);
	query_text(f->path, "SELECT route FROM requests WHERE path = '/other/1'", text,
		   sizeof(text));
	assert_string_equal(text, "/other/{id}");
	assert_int_equal(query_int(f->path, "SELECT flags FROM requests WHERE path = '/other/1'"),
			 TG_REQ_ROUTE_GUESSED);
	assert_int_equal(tg_store__reroute(s, 1, NULL), -EINVAL);
	tg_store__close(s);
	tg_routes__free(routes);
}

struct producer {
	struct tg_store *s;
	uint32_t n;
	int ret;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	struct tg_request r;
	uint32_t i;

	for (i = 0; i < p->n && !p->ret; i++) {
		make_req(&r, i);
		p->ret = tg_store__add_request(p->s, &r);
	}
	return NULL;
}

static void test_concurrent_reader(void **state)
{
	struct fx *f = *state;
	struct producer p = {.n = 60000};
	int64_t last = 0, count;
	pthread_t th;
	int reads = 0;

	p.s = open_with_run(f->path, NULL);
	assert_int_equal(pthread_create(&th, NULL, produce, &p), 0);
	do {
		sqlite3 *db = raw_open(f->path, SQLITE_OPEN_READONLY);
		sqlite3_stmt *st = NULL;

		assert_int_equal(
		    sqlite3_prepare_v2(db, "SELECT count(*) FROM requests", -1, &st, NULL),
		    SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		count = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		sqlite3_close(db);
		assert_true(count >= last); /* whole batches appear, never vanish */
		last = count;
		reads++;
	} while (count < p.n);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(p.ret, 0);
	assert_true(reads >= 2);
	tg_store__close(p.s);
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests"), p.n);
}

/* The WAL is checkpointed by the store's checkpointer thread (walckpt.h)
 * while the store is open and busy: the database file grows before close,
 * and the WAL stays bounded. */
static void test_wal_checkpointed_while_open(void **state)
{
	struct fx *f = *state;
	struct stat db_st, wal_st;
	struct producer p = {.n = 60000};
	char wal[128];
	int tries;

	p.s = open_with_run(f->path, NULL);
	produce(&p);
	assert_int_equal(p.ret, 0);
	assert_int_equal(tg_store__flush(p.s), 0);
	/* > 1000 pages were committed: the checkpointer copies them in */
	for (tries = 0; tries < 500; tries++) {
		assert_int_equal(stat(f->path, &db_st), 0);
		if (db_st.st_size > 2 * 1024 * 1024)
			break;
		usleep(10000);
	}
	assert_true(db_st.st_size > 2 * 1024 * 1024);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &wal_st), 0);
	assert_true(wal_st.st_size < 40 * 1024 * 1024);
	tg_store__close(p.s);
	assert_int_equal(stat(wal, &wal_st), -1); /* the last close checkpointed and removed it */
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests"), p.n);
	assert_int_equal(query_int(f->path, "SELECT sum(count) FROM rollup_series WHERE res_s = 1"),
			 p.n);
}

/* ---- Rollups (schema version 2). */

/* Sum of a histogram column over rows of sql, decoded. */
static void query_hist(const char *path, const char *sql, struct tg_hist *h)
{
	sqlite3 *db = raw_open(path, SQLITE_OPEN_READONLY);
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		assert_int_equal(tg_hist__merge_blob(h, sqlite3_column_blob(st, 0),
						     (size_t)sqlite3_column_bytes(st, 0)),
				 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_rollups_match_rows(void **state)
{
	struct fx *f = *state;
	struct tg_hist *h = calloc(1, sizeof(*h));
	struct tg_store *s = open_with_run(f->path, NULL);
	struct tg_request r;
	uint32_t i;

	assert_non_null(h);
	for (i = 0; i < 3000; i++) {
		make_req(&r, i);
		r.start_ns = (uint64_t)i * 50000000ULL; /* 150 s: several minutes */
		r.end_ns = i % 7 ? r.start_ns + 1000 + (uint64_t)i * 1000 : 0;
		r.status = i % 11 ? 200 : 503;
		if (i % 2)
			snprintf(r.route, sizeof(r.route), "/q/{id}");
		if (i % 5 == 0)
			r.route[0] = '\0';
		assert_int_equal(tg_store__add_request(s, &r), 0);
		if (i % 700 == 0)
			assert_int_equal(tg_store__flush(s), 0); /* several batches */
	}
	assert_int_equal(tg_store__flush(s), 0);
	/* per endpoint: every figure equals the one computed from the rows */
	assert_int_equal(
	    query_int(f->path,
		      "SELECT count(*) FROM rollup_endpoint e WHERE count != (SELECT count(*) FROM"
		      " requests r WHERE r.method = e.method AND coalesce(r.route, '') = e.route)"
		      " OR errors != (SELECT sum(coalesce(status, 0) >= 500) FROM requests r"
		      " WHERE r.method = e.method AND coalesce(r.route, '') = e.route)"
		      " OR timed != (SELECT count(duration_ns) FROM requests r"
		      " WHERE r.method = e.method AND coalesce(r.route, '') = e.route)"
		      " OR max_duration_ns != (SELECT max(duration_ns) FROM requests r"
		      " WHERE r.method = e.method AND coalesce(r.route, '') = e.route)"
		      " OR sum_resp_bytes != (SELECT sum(resp_bytes) FROM requests r"
		      " WHERE r.method = e.method AND coalesce(r.route, '') = e.route)"),
	    0);
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM rollup_endpoint"), 3);
	assert_int_equal(
	    query_int(f->path, "SELECT count(*) FROM rollup_endpoint WHERE route = ''"), 1);
	/* per second and per minute: the same totals, the right number of buckets */
	assert_int_equal(query_int(f->path, "SELECT sum(count) FROM rollup_series WHERE res_s = 1"),
			 3000);
	assert_int_equal(
	    query_int(f->path, "SELECT sum(count) FROM rollup_series WHERE res_s = 60"), 3000);
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM rollup_series WHERE res_s = 1"),
			 150);
	assert_int_equal(
	    query_int(f->path, "SELECT sum(errors) FROM rollup_series WHERE res_s = 60"),
	    query_int(f->path, "SELECT count(*) FROM requests WHERE status >= 500"));
	assert_int_equal(query_int(f->path, "SELECT sum(sum_duration_ns) FROM rollup_series"
					    " WHERE res_s = 1"),
			 query_int(f->path, "SELECT sum(duration_ns) FROM requests"));
	assert_int_equal(
	    query_int(f->path,
		      "SELECT count(*) FROM rollup_series WHERE res_s = 60 AND bucket_s % 60"),
	    0);
	/* histograms hold every timed request; the median within 1.6 % */
	query_hist(f->path, "SELECT hist FROM rollup_series WHERE res_s = 1", h);
	assert_int_equal(h->total, query_int(f->path, "SELECT count(duration_ns) FROM requests"));
	assert_true(
	    fabs((double)tg_hist__quantile(h, 0.5) -
		 (double)query_int(f->path, "SELECT duration_ns FROM requests WHERE duration_ns IS"
					    " NOT NULL ORDER BY duration_ns LIMIT 1 OFFSET 1285")) <
	    0.016 * 1.5e6);
	tg_store__close(s);
	free(h);
}

static void test_reroute_rebuilds_rollup(void **state)
{
	struct fx *f = *state;
	struct tg_routes *routes = tg_routes__new();
	struct tg_store *s = open_with_run(f->path, NULL);

	assert_non_null(routes);
	assert_int_equal(tg_routes__add(routes, "GET", "/items/{item_id}"), 0);
	add_routed(s, 1, "/items/42", "/items/{id}", TG_REQ_ROUTE_GUESSED);
	add_routed(s, 1, "/items/43", "/items/{id}", TG_REQ_ROUTE_GUESSED);
	add_routed(s, 2, "/items/9", "/items/{id}", TG_REQ_ROUTE_GUESSED); /* other pid */
	assert_int_equal(tg_store__reroute(s, 1, routes), 0);
	add_routed(s, 1, "/items/44", "/items/{item_id}", 0); /* after, same batch or not */
	assert_int_equal(tg_store__flush(s), 0);
	assert_int_equal(query_int(f->path, "SELECT count FROM rollup_endpoint"
					    " WHERE route = '/items/{item_id}'"),
			 3);
	assert_int_equal(
	    query_int(f->path, "SELECT count FROM rollup_endpoint WHERE route = '/items/{id}'"), 1);
	assert_int_equal(query_int(f->path, "SELECT sum(count) FROM rollup_endpoint"), 4);
	tg_store__close(s);
	tg_routes__free(routes);
}

static void test_migrates_v1_with_backfill(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	struct tg_store *s;

	/* a version-1 file with rows, as an older timeglass left it */
	raw_exec(
	    f->path,
	    "CREATE TABLE runs (id INTEGER PRIMARY KEY, started INTEGER NOT NULL, ended"
	    " INTEGER, targets TEXT, kernel TEXT, version TEXT, events INTEGER,"
	    " dropped_events INTEGER);"
	    "CREATE TABLE targets (run_id INTEGER NOT NULL, pid INTEGER NOT NULL, cmdline TEXT,"
	    " seen_ns INTEGER NOT NULL);"
	    "CREATE TABLE requests (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, pid"
	    " INTEGER NOT NULL, tid INTEGER NOT NULL, conn_id INTEGER NOT NULL, start_ns"
	    " INTEGER NOT NULL, duration_ns INTEGER, ttfb_ns INTEGER, method TEXT NOT NULL,"
	    " path TEXT NOT NULL, route TEXT, status INTEGER, req_bytes INTEGER NOT NULL,"
	    " resp_bytes INTEGER NOT NULL, flags INTEGER NOT NULL, peer TEXT);"
	    "INSERT INTO runs VALUES (1, 0, 10, 't', 'k', 'v', 0, 0);"
	    "INSERT INTO requests VALUES (1, 1, 1, 1, 1, 1000000000, 5000, NULL, 'GET', '/a',"
	    " '/a', 200, 1, 10, 0, NULL);"
	    "INSERT INTO requests VALUES (2, 1, 1, 1, 1, 1500000000, NULL, NULL, 'GET', '/a',"
	    " '/a', 500, 1, 20, 1, NULL);"
	    "INSERT INTO requests VALUES (3, 1, 1, 1, 1, 61000000000, 7000, NULL, 'POST', '/b',"
	    " NULL, NULL, 1, 30, 2, NULL);"
	    "PRAGMA user_version = 1;");
	s = tg_store__open(f->path, err, sizeof(err));
	assert_non_null(s);
	tg_store__close(s);
	assert_int_equal(query_int(f->path, "PRAGMA user_version"), TG_SCHEMA_VERSION);
	assert_int_equal(query_int(f->path, "SELECT count FROM rollup_endpoint WHERE route = '/a'"),
			 2);
	assert_int_equal(
	    query_int(f->path, "SELECT errors FROM rollup_endpoint WHERE route = '/a'"), 1);
	assert_int_equal(
	    query_int(f->path, "SELECT count(*) FROM rollup_endpoint WHERE route = ''"), 1);
	assert_int_equal(
	    query_int(f->path, "SELECT count FROM rollup_series WHERE res_s = 1 AND bucket_s = 1"),
	    2);
	assert_int_equal(
	    query_int(f->path,
		      "SELECT count FROM rollup_series WHERE res_s = 60 AND bucket_s = 60"),
	    1);
	assert_int_equal(query_int(f->path, "SELECT sum(lost) FROM rollup_series WHERE res_s = 1"),
			 1);
	assert_int_equal(query_int(f->path, "SELECT max_duration_ns FROM rollup_endpoint"
					    " WHERE route = '/a'"),
			 5000);
}

/* ---- Version 5: per-request resources, process samples. */

static void set_usage(struct tg_request *r, uint64_t cpu_ns, uint32_t nspans)
{
	struct tg_usage *u = &r->usage;
	uint32_t i;

	memset(u, 0, sizeof(*u));
	u->flags = TG_USAGE_VALID;
	u->cpu_ns = cpu_ns;
	u->cpu_pool_ns = cpu_ns / 4;
	u->runq_ns = 300;
	u->pool_wait_ns = 400;
	u->net_ns = 600;
	u->minflt = 5;
	u->majflt = 1;
	u->heap_bytes = 65536;
	u->gc_ns = 7000;
	u->gc_count = 2;
	u->nspans = nspans;
	for (i = 0; i < nspans && i < TG_SPANS_MAX; i++) {
		u->spans[i].start_us = 0x01020304u + i;
		u->spans[i].dur_us = 10 + i;
		u->spans[i].cpu_us = 8 + i;
		u->spans[i].tid = 4242 + i;
		u->spans[i].kind = i % 2 ? TG_SPAN_GC : TG_SPAN_RUN;
	}
}

static void test_usage_columns(void **state)
{
	struct fx *f = *state;
	struct tg_store_stats st;
	struct tg_request r;
	struct tg_store *s = open_with_run(f->path, NULL);
	char hex[512];

	make_req(&r, 1);
	set_usage(&r, 1000000, 2);
	snprintf(r.target, sizeof(r.target), "/valid");
	assert_int_equal(tg_store__add_request(s, &r), 0);
	make_req(&r, 3); /* right after a row with usage: its columns must be NULL again */
	snprintf(r.target, sizeof(r.target), "/none");
	assert_int_equal(tg_store__add_request(s, &r), 0);
	make_req(&r, 5);
	set_usage(&r, 3000000, 0); /* valid, no spans: NULL timeline */
	snprintf(r.target, sizeof(r.target), "/nospans");
	assert_int_equal(tg_store__add_request(s, &r), 0);
	make_req(&r, 7);
	set_usage(&r, 1, 40); /* more than TG_SPANS_MAX: capped */
	r.usage.flags = 0;    /* ...but not valid: nothing stored */
	snprintf(r.target, sizeof(r.target), "/invalid");
	assert_int_equal(tg_store__add_request(s, &r), 0);
	assert_int_equal(tg_store__flush(s), 0);
	tg_store__stats(s, &st);
	assert_int_equal(st.rows_failed, 0);

	assert_int_equal(query_int(f->path, "SELECT cpu_ns FROM requests WHERE path = '/valid'"),
			 1000000);
	assert_int_equal(
	    query_int(f->path, "SELECT cpu_pool_ns FROM requests WHERE path = '/valid'"), 250000);
	assert_int_equal(query_int(f->path,
				   "SELECT runq_ns + pool_wait_ns * 1000 + minflt * 1000000"
				   " + majflt * 100000000 FROM requests"
				   " WHERE path = '/valid'"),
			 300 + 400000 + 5000000 + 100000000);
	assert_int_equal(
	    query_int(f->path, "SELECT heap_bytes FROM requests WHERE path = '/valid'"), 65536);
	assert_int_equal(query_int(f->path, "SELECT net_ns FROM requests WHERE path = '/valid'"),
			 600);
	assert_int_equal(
	    query_int(f->path, "SELECT gc_ns * 10 + gc_count FROM requests WHERE path = '/valid'"),
	    70002);
	assert_int_equal(
	    query_int(f->path, "SELECT usage_flags FROM requests WHERE path = '/valid'"),
	    TG_USAGE_VALID);
	/* two 20-byte little-endian records */
	query_text(f->path, "SELECT hex(timeline) FROM requests WHERE path = '/valid'", hex,
		   sizeof(hex));
	assert_string_equal(hex, "04030201"
				 "0A000000"
				 "08000000"
				 "92100000"
				 "01000000"
				 "05030201"
				 "0B000000"
				 "09000000"
				 "93100000"
				 "02000000");
	assert_int_equal(query_int(f->path,
				   "SELECT count(*) FROM requests WHERE path = '/none'"
				   " AND coalesce(cpu_ns, cpu_pool_ns, runq_ns, pool_wait_ns,"
				   " minflt, majflt, heap_bytes, gc_count, gc_ns, usage_flags,"
				   " timeline, net_ns) IS NULL"),
			 1);
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests WHERE path = '/invalid'"
					    " AND coalesce(cpu_ns, usage_flags, timeline) IS NULL"),
			 1);
	assert_int_equal(query_int(f->path, "SELECT cpu_ns FROM requests WHERE path = '/nospans'"),
			 3000000);
	assert_int_equal(
	    query_int(f->path, "SELECT timeline IS NULL FROM requests WHERE path = '/nospans'"), 1);
	/* the endpoint rollup: two requests with usage out of four */
	assert_int_equal(query_int(f->path, "SELECT count FROM rollup_endpoint"), 4);
	assert_int_equal(query_int(f->path, "SELECT usage_count FROM rollup_endpoint"), 2);
	assert_int_equal(query_int(f->path, "SELECT sum_cpu_ns FROM rollup_endpoint"), 4000000);
	assert_int_equal(query_int(f->path, "SELECT sum_gc_ns FROM rollup_endpoint"), 14000);
	assert_int_equal(query_int(f->path, "SELECT sum_gc_count FROM rollup_endpoint"), 4);
	tg_store__close(s);
}

static void test_timeline_pack_unpack(void **state)
{
	struct tg_request r;
	struct tg_span out[TG_SPANS_MAX + 1];
	uint8_t buf[TG_SPANS_MAX * TG_TIMELINE_REC + 7];

	(void)state;
	make_req(&r, 0);
	set_usage(&r, 1, 40);
	assert_int_equal(tg_timeline__pack(&r.usage, buf, sizeof(buf)),
			 TG_SPANS_MAX * TG_TIMELINE_REC);
	assert_int_equal(tg_timeline__pack(&r.usage, buf, 2 * TG_TIMELINE_REC + 3),
			 2 * TG_TIMELINE_REC);
	assert_int_equal(tg_timeline__pack(NULL, buf, sizeof(buf)), 0);
	/* a trailing partial record is ignored */
	assert_int_equal(tg_timeline__unpack(buf, 2 * TG_TIMELINE_REC + 3, out, TG_SPANS_MAX + 1),
			 2);
	assert_int_equal(out[1].start_us, 0x01020305u);
	assert_int_equal(out[1].dur_us, 11);
	assert_int_equal(out[1].cpu_us, 9);
	assert_int_equal(out[1].tid, 4243);
	assert_int_equal(out[1].kind, TG_SPAN_GC);
	assert_int_equal(tg_timeline__unpack(buf, 2 * TG_TIMELINE_REC, out, 1), 1);
}

static void test_update_usage(void **state)
{
	struct fx *f = *state;
	struct tg_store_stats st;
	struct tg_request r;
	struct tg_usage u;
	struct tg_store *s = open_with_run(f->path, NULL);
	int64_t a, b, c;

	make_req(&r, 1);
	snprintf(r.target, sizeof(r.target), "/a");
	assert_int_equal(tg_store__add_request_id(s, &r, &a), 0);
	/* same batch as the INSERT (most likely): applied after it */
	set_usage(&r, 5000000, 3);
	r.usage.flags |= TG_USAGE_PARTIAL;
	r.usage.net_ns = 700;
	assert_int_equal(tg_store__update_usage(s, a, &r.usage), 0);
	assert_int_equal(tg_store__flush(s), 0);
	assert_int_equal(query_int(f->path, "SELECT cpu_ns FROM requests WHERE path = '/a'"),
			 5000000);
	assert_int_equal(query_int(f->path, "SELECT net_ns FROM requests WHERE path = '/a'"), 700);
	assert_int_equal(query_int(f->path, "SELECT usage_flags FROM requests WHERE path = '/a'"),
			 TG_USAGE_VALID | TG_USAGE_PARTIAL);
	assert_int_equal(
	    query_int(f->path, "SELECT length(timeline) FROM requests WHERE path = '/a'"), 60);

	/* a later batch: a request stored with partial usage, then completed */
	make_req(&r, 3);
	snprintf(r.target, sizeof(r.target), "/b");
	set_usage(&r, 1000000, 1);
	r.usage.flags |= TG_USAGE_PARTIAL;
	assert_int_equal(tg_store__add_request_id(s, &r, &b), 0);
	make_req(&r, 5);
	snprintf(r.target, sizeof(r.target), "/c");
	set_usage(&r, 2000000, 1);
	assert_int_equal(tg_store__add_request_id(s, &r, &c), 0);
	assert_int_equal(tg_store__flush(s), 0);
	assert_int_equal(query_int(f->path, "SELECT sum_cpu_ns FROM rollup_endpoint"), 8000000);
	memset(&u, 0, sizeof(u));
	set_usage(&r, 1500000, 0);
	assert_int_equal(tg_store__update_usage(s, b, &r.usage), 0);
	memset(&u, 0, sizeof(u)); /* not valid: the columns become NULL */
	assert_int_equal(tg_store__update_usage(s, c, &u), 0);
	assert_int_equal(tg_store__update_usage(s, 999999, &r.usage), 0); /* no such row */
	assert_int_equal(tg_store__update_usage(s, 0, &r.usage), -EINVAL);
	assert_int_equal(tg_store__update_usage(s, b, NULL), -EINVAL);
	assert_int_equal(tg_store__flush(s), 0);
	tg_store__stats(s, &st);
	assert_int_equal(st.rows_failed, 0);
	assert_int_equal(st.requests_written, 3);
	assert_int_equal(query_int(f->path, "SELECT cpu_ns FROM requests WHERE path = '/b'"),
			 1500000);
	assert_int_equal(query_int(f->path, "SELECT usage_flags FROM requests WHERE path = '/b'"),
			 TG_USAGE_VALID);
	assert_int_equal(
	    query_int(f->path, "SELECT timeline IS NULL FROM requests WHERE path = '/b'"), 1);
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests WHERE path = '/c'"
					    " AND coalesce(cpu_ns, usage_flags, timeline) IS NULL"),
			 1);
	/* the rollup follows: /a 5 ms + /b 1.5 ms, /c no longer counted */
	assert_int_equal(query_int(f->path, "SELECT count FROM rollup_endpoint"), 3);
	assert_int_equal(query_int(f->path, "SELECT usage_count FROM rollup_endpoint"), 2);
	assert_int_equal(query_int(f->path, "SELECT sum_cpu_ns FROM rollup_endpoint"), 6500000);
	assert_int_equal(query_int(f->path, "SELECT sum_gc_count FROM rollup_endpoint"), 4);
	/* and agrees with a rebuild from the rows */
	assert_int_equal(query_int(f->path, "SELECT sum(cpu_ns) = (SELECT sum_cpu_ns FROM"
					    " rollup_endpoint) FROM requests"),
			 1);
	tg_store__close(s);
}

/* Runs of requests are written with one statement each (a row source read
 * by INSERT ... SELECT): requests with and without usage, around targets and
 * usage updates in the same batch, keep their ids, values and order. */
static void test_request_runs_around_other_jobs(void **state)
{
	struct fx *f = *state;
	struct tg_store_stats st;
	struct tg_request r;
	struct tg_store *s = open_with_run(f->path, NULL);
	int64_t ids[13], second = 0;
	uint32_t i, n = 0;

	for (i = 0; i < 13; i++) {
		make_req(&r, i);
		if (i % 3 == 1)
			set_usage(&r, 1000 * (i + 1), i % 4);
		assert_int_equal(tg_store__add_request_id(s, &r, &ids[n++]), 0);
		if (i == 4)
			assert_int_equal(tg_store__add_target(s, 7, "python3 app.py", 5), 0);
		if (i == 9) { /* the second request gets final usage */
			second = ids[1];
			set_usage(&r, 77777, 2);
			assert_int_equal(tg_store__update_usage(s, second, &r.usage), 0);
		}
	}
	assert_int_equal(tg_store__flush(s), 0);
	tg_store__stats(s, &st);
	assert_int_equal(st.requests_written, 13);
	assert_int_equal(st.rows_failed, 0);
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM targets WHERE pid = 7"), 1);
	/* ids as handed out, consecutive, and each row is the request given it */
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests"), 13);
	for (i = 0; i < 13; i++) {
		char sql[160], path[32];

		snprintf(sql, sizeof(sql), "SELECT path FROM requests WHERE id = %lld",
			 (long long)ids[i]);
		query_text(f->path, sql, path, sizeof(path));
		snprintf(sql, sizeof(sql), "/p/%u?q=x", i);
		assert_string_equal(path, sql);
	}
	assert_int_equal(query_int(f->path, "SELECT count(cpu_ns) FROM requests"), 4);
	assert_int_equal(query_int(f->path, "SELECT count(timeline) FROM requests"), 3);
	assert_int_equal(query_int(f->path, "SELECT sum(cpu_ns) FROM requests"),
			 77777 + 5000 + 8000 + 11000);
	assert_int_equal(query_int(f->path, "SELECT max(start_ns) FROM requests"),
			 (int64_t)(EPOCH_OFF + 1000 + 12 * 10));
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM requests WHERE route = '/p/{id}'"
					    " AND peer LIKE '127.0.0.1:%' AND method = 'GET'"),
			 13);
	assert_int_equal(query_int(f->path, "SELECT sum_cpu_ns FROM rollup_endpoint"),
			 77777 + 5000 + 8000 + 11000);
	assert_int_equal(query_int(f->path, "SELECT count FROM rollup_endpoint"), 13);
	tg_store__close(s);
}

static void test_process_stats(void **state)
{
	struct fx *f = *state;
	struct tg_store *s;
	char err[256] = "";

	s = tg_store__open(f->path, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(tg_store__add_process_stat(s, 42, 1, 2, 3, 4), -EINVAL); /* no run */
	tg_store__close(s);
	s = open_with_run(f->path, NULL);
	assert_int_equal(tg_store__add_process_stat(s, 42, 1000, 10 << 20, 5000000, 3), 0);
	assert_int_equal(tg_store__add_process_stat(s, 42, 2000, 11 << 20, 6000000, 4), 0);
	assert_int_equal(tg_store__add_process_stat(s, 43, 1500, 1 << 20, 0, 1), 0);
	assert_int_equal(tg_store__add_process_stat(NULL, 43, 1500, 1 << 20, 0, 1), -EINVAL);
	assert_int_equal(tg_store__flush(s), 0);
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM process_stats"), 3);
	assert_int_equal(query_int(f->path, "SELECT ts FROM process_stats WHERE pid = 42"
					    " ORDER BY ts DESC LIMIT 1"),
			 (int64_t)(EPOCH_OFF + 2000));
	assert_int_equal(query_int(f->path, "SELECT rss_bytes FROM process_stats WHERE pid = 42"
					    " ORDER BY ts DESC LIMIT 1"),
			 11 << 20);
	assert_int_equal(query_int(f->path, "SELECT cpu_ns * 10 + threads FROM process_stats"
					    " WHERE pid = 42 ORDER BY ts LIMIT 1"),
			 50000003);
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM process_stats"
					    " WHERE run_id = (SELECT max(id) FROM runs)"),
			 3);
	assert_int_equal(
	    query_int(f->path,
		      "SELECT count(*) FROM sqlite_master WHERE name = 'process_stats_run'"),
	    1);
	tg_store__close(s);
}

static void test_migrates_v4_keeps_data(void **state)
{
	struct fx *f = *state;
	struct tg_request r;
	struct tg_store *s;
	char text[64];

	/* a version-4 file as the previous timeglass left it (the tables v5 touches) */
	raw_exec(
	    f->path,
	    "CREATE TABLE runs (id INTEGER PRIMARY KEY, started INTEGER NOT NULL, ended"
	    " INTEGER, targets TEXT, kernel TEXT, version TEXT, events INTEGER,"
	    " dropped_events INTEGER, sample_hz INTEGER);"
	    "CREATE TABLE targets (run_id INTEGER NOT NULL, pid INTEGER NOT NULL, cmdline TEXT,"
	    " seen_ns INTEGER NOT NULL);"
	    "CREATE TABLE requests (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, pid"
	    " INTEGER NOT NULL, tid INTEGER NOT NULL, conn_id INTEGER NOT NULL, start_ns"
	    " INTEGER NOT NULL, duration_ns INTEGER, ttfb_ns INTEGER, method TEXT NOT NULL,"
	    " path TEXT NOT NULL, route TEXT, status INTEGER, req_bytes INTEGER NOT NULL,"
	    " resp_bytes INTEGER NOT NULL, flags INTEGER NOT NULL, peer TEXT,"
	    " sql_count INTEGER, sql_ns INTEGER);"
	    "CREATE INDEX requests_start ON requests(run_id, start_ns);"
	    "CREATE TABLE rollup_series (run_id INTEGER NOT NULL, res_s INTEGER NOT NULL,"
	    " bucket_s INTEGER NOT NULL, count INTEGER NOT NULL, errors INTEGER NOT NULL,"
	    " incomplete INTEGER NOT NULL, lost INTEGER NOT NULL, timed INTEGER NOT NULL,"
	    " sum_duration_ns INTEGER NOT NULL, max_duration_ns INTEGER NOT NULL, hist BLOB,"
	    " PRIMARY KEY (run_id, res_s, bucket_s)) WITHOUT ROWID;"
	    "CREATE TABLE rollup_endpoint (run_id INTEGER NOT NULL, method TEXT NOT NULL,"
	    " route TEXT NOT NULL, count INTEGER NOT NULL, errors INTEGER NOT NULL,"
	    " incomplete INTEGER NOT NULL, timed INTEGER NOT NULL,"
	    " sum_duration_ns INTEGER NOT NULL, max_duration_ns INTEGER NOT NULL,"
	    " sum_resp_bytes INTEGER NOT NULL, hist BLOB,"
	    " PRIMARY KEY (run_id, method, route)) WITHOUT ROWID;"
	    "CREATE TABLE queries (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, request_id"
	    " INTEGER, statement TEXT NOT NULL);"
	    "INSERT INTO runs VALUES (1, 0, 10, 't', 'k', 'v', 0, 0, 99);"
	    "INSERT INTO requests VALUES (1, 1, 1, 1, 1, 1000000000, 5000, NULL, 'GET', '/a',"
	    " '/a', 200, 1, 10, 0, NULL, 3, 4000);"
	    "INSERT INTO rollup_endpoint VALUES (1, 'GET', '/a', 1, 0, 0, 1, 5000, 5000, 10, x'');"
	    "INSERT INTO queries VALUES (1, 1, 1, 'SELECT 1');"
	    "PRAGMA user_version = 4;");
	s = tg_store__open(f->path, NULL, 0);
	assert_non_null(s);
	tg_store__close(s);
	assert_int_equal(query_int(f->path, "PRAGMA user_version"), TG_SCHEMA_VERSION);
	assert_int_equal(query_int(f->path, "SELECT sql_count * 10000 + sql_ns FROM requests"),
			 34000);
	assert_int_equal(query_int(f->path, "SELECT cpu_ns FROM requests WHERE id = 1"), -1);
	assert_int_equal(query_int(f->path, "SELECT usage_flags FROM requests WHERE id = 1"), -1);
	assert_int_equal(query_int(f->path, "SELECT count * 1000 + usage_count FROM"
					    " rollup_endpoint"),
			 1000);
	assert_int_equal(query_int(f->path, "SELECT sum_cpu_ns FROM rollup_endpoint"), 0);
	assert_int_equal(query_int(f->path, "SELECT sample_hz FROM runs"), 99);
	query_text(f->path, "SELECT statement FROM queries", text, sizeof(text));
	assert_string_equal(text, "SELECT 1");
	assert_int_equal(query_int(f->path, "SELECT count(*) FROM process_stats"), 0);

	/* a new run on it writes usage, and a new request of the old endpoint adds to its row */
	s = open_with_run(f->path, NULL);
	make_req(&r, 2);
	set_usage(&r, 2000000, 1);
	assert_int_equal(tg_store__add_request(s, &r), 0);
	assert_int_equal(tg_store__flush(s), 0);
	tg_store__close(s);
	assert_int_equal(query_int(f->path, "SELECT cpu_ns FROM requests WHERE run_id = 2"),
			 2000000);
	assert_int_equal(query_int(f->path, "SELECT sum_cpu_ns FROM rollup_endpoint"
					    " WHERE run_id = 2"),
			 2000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_refuses_newer_schema, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuses_non_database, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuses_unwritable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_before_run, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schema_created, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_later_run_rebuilds_indexes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrates_empty_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batching_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_edge_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_and_close_write_everything, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_runs_begin_end, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_row_loses_only_itself, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reroute_guessed_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_reader, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wal_checkpointed_while_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rollups_match_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reroute_rebuilds_rollup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrates_v1_with_backfill, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_usage_columns, setup, teardown),
	    cmocka_unit_test(test_timeline_pack_unpack),
	    cmocka_unit_test_setup_teardown(test_update_usage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_runs_around_other_jobs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_process_stats, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrates_v4_keeps_data, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
