/* SPDX-License-Identifier: MIT */
/* Tests of the flame graph and SQL parts of the JSON API (user/api_profile.c,
 * user/api_sql.c, docs/api.md): a database made through the real store (two
 * runs: the first without samples or SQL, the second with both, inserted with
 * SQLite in the schema v3/v4 tables), the server on an ephemeral loopback
 * port, real HTTP requests, answers parsed with cJSON. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "server.h"
#include "store.h"

#define BASE_NS 1700000000000000000LL
#define MS 1000000LL
#define N_RUN2 10

static char db_path[96], db_dir[64];
static struct tg_server *srv;
static int port;
static int64_t run1, run2, req_plain, req_a; /* req_a: the request with SQL and samples */

static void add_run(const char *path, int64_t *run, int n, bool second)
{
	struct tg_run_info info = {.started_ns = BASE_NS,
				   .mono_to_epoch_ns = BASE_NS,
				   .targets = "--uvicorn",
				   .kernel = "6.18",
				   .version = "0.1.0"};
	struct tg_request r;
	struct tg_store *s;
	char err[256];
	int i;

	s = tg_store__open(path, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(tg_store__begin_run(s, &info, run), 0);
	for (i = 0; i < n; i++) {
		memset(&r, 0, sizeof(r));
		r.conn_id = 100 + (uint64_t)i;
		r.pid = 42;
		r.tid = 43;
		r.start_ns = (uint64_t)(1000 * MS + i * 1000 * MS);
		r.end_ns = r.start_ns + 200 * MS;
		r.first_resp_ns = r.end_ns;
		r.status = 200;
		r.req_bytes = 100;
		r.resp_bytes = 100;
		snprintf(r.method, sizeof(r.method), "GET");
		if (!second) {
			snprintf(r.target, sizeof(r.target), "/a");
			snprintf(r.route, sizeof(r.route), "/a");
		} else if (i % 2 == 0) {
			snprintf(r.target, sizeof(r.target), "/users/%d", i);
			snprintf(r.route, sizeof(r.route), "/users/{id}");
		} else {
			snprintf(r.target, sizeof(r.target), "/items");
			snprintf(r.route, sizeof(r.route), "/items");
		}
		assert_int_equal(tg_store__add_request(s, &r), 0);
	}
	assert_int_equal(tg_store__end_run(s, BASE_NS + (uint64_t)(n + 2) * 1000 * MS, 1, 0), 0);
	tg_store__close(s);
}

static void exec(sqlite3 *db, const char *fmt, ...)
{
	char sql[2048];
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fprintf(stderr, "%s: %s\n", sql, msg);
	assert_null(msg);
}

static int64_t one_int(sqlite3 *db, const char *sql, int64_t arg)
{
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, arg);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void add_query(sqlite3 *db, int64_t req, int64_t start_off_ms, int64_t dur_ms,
		      const char *stmt, int64_t fp, const char *error, const char *sqlstate)
{
	int64_t start = one_int(db, "SELECT start_ns FROM requests WHERE id = ?", req);

	exec(db,
	     "INSERT INTO queries (run_id, request_id, pid, tid, conn_id, start_ns, duration_ns,"
	     " statement, fingerprint, command, rows, error, sqlstate, flags) VALUES"
	     " (%lld, %lld, 42, 43, 7, %lld, %lld, '%s', %lld, 'SELECT', 1, %s%s%s, %s%s%s, 0)",
	     (long long)run2, (long long)req, (long long)(start + start_off_ms * MS),
	     (long long)(dur_ms * MS), stmt, (long long)fp, error ? "'" : "",
	     error ? error : "NULL", error ? "'" : "", sqlstate ? "'" : "",
	     sqlstate ? sqlstate : "NULL", sqlstate ? "'" : "");
}

static void make_db(const char *path)
{
	sqlite3 *db;
	int64_t req_b;
	int i;

	add_run(path, &run1, 5, false);
	add_run(path, &run2, N_RUN2, true);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	req_plain = one_int(db, "SELECT min(id) FROM requests WHERE run_id = ?", run1);
	req_a = one_int(db, "SELECT min(id) FROM requests WHERE run_id = ?", run2);
	req_b = req_a + 1;
	exec(db, "BEGIN");
	exec(db, "UPDATE runs SET sample_hz = 99 WHERE id = %lld", (long long)run2);
	/* request A: an N+1 (6 x the same statement), a slow one, an error */
	for (i = 0; i < 6; i++)
		add_query(db, req_a, 1 + 3 * i, 2, "SELECT * FROM users WHERE id = $1", 0x1111,
			  NULL, NULL);
	add_query(db, req_a, 20, 150, "SELECT pg_sleep($1)", -2, NULL, NULL);
	add_query(db, req_a, 180, 1, "SELECT * FROM nope", 0x2222,
		  "relation \"nope\" does not exist", "42P01");
	exec(db, "UPDATE requests SET sql_count = 8, sql_ns = %lld WHERE id = %lld",
	     (long long)(163 * MS), (long long)req_a);
	/* request B: two of the N+1 statement (below the threshold) */
	add_query(db, req_b, 5, 1, "SELECT * FROM users WHERE id = $1", 0x1111, NULL, NULL);
	add_query(db, req_b, 7, 1, "SELECT * FROM users WHERE id = $1", 0x1111, NULL, NULL);
	exec(db, "UPDATE requests SET sql_count = 2, sql_ns = %lld WHERE id = %lld",
	     (long long)(2 * MS), (long long)req_b);
	/* stacks: run_asgi -> handler -> {fetch_user, render} */
	exec(db, "INSERT INTO frames VALUES (1, 'run_asgi',"
		 " '/usr/lib/python3/dist-packages/uvicorn/protocols/http/httptools_impl.py', 10),"
		 " (2, 'handler', '/app/app.py', 12), (3, 'fetch_user', '/app/db.py', 30),"
		 " (4, 'render', '/app/app.py', 40), (5, 'a;b<c>&', '', 0)");
	exec(db, "INSERT INTO stacks VALUES (1, 0, 1), (2, 1, 2), (3, 2, 3), (4, 2, 4), (5, 2, 5)");
	for (i = 0; i < 8; i++)
		exec(db, "INSERT INTO samples VALUES (%lld, %lld, 42, 43, %lld, %d, 0)",
		     (long long)run2, (long long)(BASE_NS + i), (long long)req_a,
		     i < 5   ? 3
		     : i < 7 ? 4
			     : 2);
	exec(db, "INSERT INTO samples VALUES (%lld, 1, 42, 43, NULL, 3, 0)", (long long)run2);
	exec(db,
	     "INSERT INTO profile_endpoint VALUES (%lld, 'GET', '/users/{id}', 3, 50),"
	     " (%lld, 'GET', '/users/{id}', 4, 20), (%lld, 'GET', '/items', 5, 4)",
	     (long long)run2, (long long)run2, (long long)run2);
	exec(db, "COMMIT");
	sqlite3_close(db);
}

static int group_setup(void **state)
{
	struct tg_server_cfg cfg = {.listen = "127.0.0.1:0", .threads = 2};
	char err[256];

	(void)state;
	snprintf(db_dir, sizeof(db_dir), "/tmp/tg_test_api_profile.XXXXXX");
	if (!mkdtemp(db_dir))
		return -1;
	snprintf(db_path, sizeof(db_path), "%s/t.db", db_dir);
	make_db(db_path);
	cfg.db_path = db_path;
	srv = tg_server__start(&cfg, err, sizeof(err));
	if (!srv) {
		fprintf(stderr, "server: %s\n", err);
		return -1;
	}
	port = tg_server__port(srv);
	return port > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	char p[128];

	(void)state;
	tg_server__stop(srv);
	unlink(db_path);
	snprintf(p, sizeof(p), "%s-wal", db_path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", db_path);
	unlink(p);
	rmdir(db_dir);
	return 0;
}

/* ---- A minimal HTTP client. */

struct resp {
	int status;
	char *head, *body;
};

static struct resp http_get(const char *path)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct resp r = {0};
	char req[2048], *buf = NULL, *sep;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = read(fd, buf + len, cap - len - 1);
		assert_true(n >= 0);
		if (!n)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	sep = strstr(buf, "\r\n\r\n");
	assert_non_null(sep);
	*sep = '\0';
	r.head = strdup(buf);
	r.body = strdup(sep + 4);
	assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &r.status), 1);
	free(buf);
	return r;
}

static cJSON *get_json(int status, const char *fmt, ...)
{
	char path[1024];
	struct resp r;
	va_list ap;
	cJSON *j;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	r = http_get(path);
	if (r.status != status)
		fprintf(stderr, "GET %s -> %d %s\n", path, r.status, r.body);
	assert_int_equal(r.status, status);
	assert_non_null(strstr(r.head, "Content-Type: application/json"));
	j = cJSON_Parse(r.body);
	assert_non_null(j);
	if (status != 200)
		assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "error")));
	free(r.head);
	free(r.body);
	return j;
}

static double num(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItem(o, name);

	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItem(o, name);

	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

/* The count of the folded stack s in a /api/flamegraph answer, -1 if absent. */
static double folded_count(const cJSON *j, const char *s)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "folded"))
	{
		assert_int_equal(cJSON_GetArraySize(e), 2);
		if (!strcmp(cJSON_GetArrayItem(e, 0)->valuestring, s))
			return cJSON_GetArrayItem(e, 1)->valuedouble;
	}
	return -1;
}

#define ROOT "run_asgi (httptools_impl.py:10);handler (app.py:12)"

/* ---- Flame graphs. */

static void test_flamegraph_bad_params(void **state)
{
	static const char *const bad[] = {
	    "/api/flamegraph",
	    "/api/flamegraph?method=GET",
	    "/api/flamegraph?route=/a",
	    "/api/flamegraph?method=&route=/a",
	    "/api/flamegraph?request=abc",
	    "/api/flamegraph?request=0",
	    "/api/flamegraph?request=-1",
	    "/api/flamegraph?request=1&method=GET&route=/a",
	    "/api/flamegraph?method=GET&route=/a&format=png",
	    "/api/flamegraph?method=GET&route=/a&run=abc",
	};
	size_t i;
	cJSON *j;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cJSON_Delete(get_json(400, "%s", bad[i]));
	cJSON_Delete(get_json(404, "/api/flamegraph?request=99999999"));
	cJSON_Delete(get_json(404, "/api/flamegraph?method=GET&route=/a&run=999"));
	cJSON_Delete(get_json(404, "/api/flamegraph/x?method=GET&route=/a"));
	/* an endpoint without samples: an empty graph, not an error */
	j = get_json(200, "/api/flamegraph?run=%lld&method=GET&route=/a", (long long)run1);
	assert_int_equal((int)num(j, "total"), 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "sample_hz")));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "folded")), 0);
	cJSON_Delete(j);
}

static void test_flamegraph_endpoint(void **state)
{
	cJSON *j;

	(void)state;
	/* the latest run by default */
	j = get_json(200, "/api/flamegraph?method=GET&route=/users/%%7Bid%%7D");
	assert_int_equal((int)num(j, "total"), 70);
	assert_int_equal((int)num(j, "sample_hz"), 99);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "folded")), 2);
	assert_int_equal((int)folded_count(j, ROOT ";fetch_user (db.py:30)"), 50);
	assert_int_equal((int)folded_count(j, ROOT ";render (app.py:40)"), 20);
	cJSON_Delete(j);
	/* a name with ';' (written ':') and no file */
	j = get_json(200, "/api/flamegraph?run=%lld&method=GET&route=/items", (long long)run2);
	assert_int_equal((int)num(j, "total"), 4);
	assert_int_equal((int)folded_count(j, ROOT ";a:b<c>&"), 4);
	cJSON_Delete(j);
	/* same endpoint, wrong method: empty */
	j = get_json(200, "/api/flamegraph?method=POST&route=/items");
	assert_int_equal((int)num(j, "total"), 0);
	cJSON_Delete(j);
}

static void test_flamegraph_request(void **state)
{
	cJSON *j;

	(void)state;
	j = get_json(200, "/api/flamegraph?request=%lld", (long long)req_a);
	assert_int_equal((int)num(j, "total"), 8);
	assert_int_equal((int)num(j, "sample_hz"), 99);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "folded")), 3);
	assert_int_equal((int)folded_count(j, ROOT), 1);
	assert_int_equal((int)folded_count(j, ROOT ";fetch_user (db.py:30)"), 5);
	assert_int_equal((int)folded_count(j, ROOT ";render (app.py:40)"), 2);
	cJSON_Delete(j);
	/* a request without samples */
	j = get_json(200, "/api/flamegraph?request=%lld", (long long)req_plain);
	assert_int_equal((int)num(j, "total"), 0);
	cJSON_Delete(j);
}

static void test_flamegraph_svg(void **state)
{
	char path[128];
	struct resp r;

	(void)state;
	snprintf(path, sizeof(path), "/api/flamegraph?request=%lld&format=svg", (long long)req_a);
	r = http_get(path);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.head, "Content-Type: image/svg+xml"));
	assert_non_null(strstr(r.head, "Content-Security-Policy: default-src 'none'"));
	assert_non_null(strstr(r.body, "<svg"));
	assert_non_null(strstr(r.body, "fetch_user (db.py:30)"));
	assert_non_null(strstr(r.body, "Request "));
	assert_non_null(strstr(r.body, "99 Hz"));
	free(r.head);
	free(r.body);
	/* escaped, never raw markup from frame names */
	r = http_get("/api/flamegraph?method=GET&route=/items&format=svg");
	assert_int_equal(r.status, 200);
	assert_null(strstr(r.body, "b<c>"));
	assert_non_null(strstr(r.body, "&lt;c&gt;"));
	free(r.head);
	free(r.body);
	/* format=json is the default */
	cJSON_Delete(get_json(200, "/api/flamegraph?request=%lld&format=json", (long long)req_a));
}

/* ---- SQL. */

static cJSON *find_stmt(cJSON *list, const char *fp)
{
	cJSON *e;

	cJSON_ArrayForEach(e, list) if (!strcmp(str(e, "fingerprint"), fp)) return e;
	return NULL;
}

static void test_sql_top(void **state)
{
	cJSON *j, *list, *e, *eps;

	(void)state;
	cJSON_Delete(get_json(400, "/api/sql/top?limit=0"));
	cJSON_Delete(get_json(400, "/api/sql/top?limit=abc"));
	cJSON_Delete(get_json(400, "/api/sql/top?limit=201"));
	cJSON_Delete(get_json(400, "/api/sql/top?run=x"));
	cJSON_Delete(get_json(404, "/api/sql/top?run=999"));
	cJSON_Delete(get_json(404, "/api/sql"));
	cJSON_Delete(get_json(404, "/api/sql/nope"));
	cJSON_Delete(get_json(404, "/api/sqlx"));
	/* a run without SQL */
	j = get_json(200, "/api/sql/top?run=%lld", (long long)run1);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "statements")), 0);
	cJSON_Delete(j);

	j = get_json(200, "/api/sql/top");
	list = cJSON_GetObjectItem(j, "statements");
	assert_int_equal(cJSON_GetArraySize(list), 3);
	e = cJSON_GetArrayItem(list, 0); /* by total time */
	assert_string_equal(str(e, "statement"), "SELECT pg_sleep($1)");
	assert_string_equal(str(e, "fingerprint"), "fffffffffffffffe");
	assert_int_equal((int)num(e, "count"), 1);
	assert_float_equal(num(e, "total_ms"), 150, 1e-9);
	assert_float_equal(num(e, "p95_ms"), 150, 1e-9);

	e = cJSON_GetArrayItem(list, 1);
	assert_string_equal(str(e, "fingerprint"), "0000000000001111");
	assert_string_equal(str(e, "statement"), "SELECT * FROM users WHERE id = $1");
	assert_int_equal((int)num(e, "count"), 8);
	assert_float_equal(num(e, "total_ms"), 14, 1e-9);
	assert_float_equal(num(e, "mean_ms"), 1.75, 1e-9);
	assert_float_equal(num(e, "p95_ms"), 2, 1e-9);
	assert_int_equal((int)num(e, "rows"), 8);
	assert_int_equal((int)num(e, "errors"), 0);
	eps = cJSON_GetObjectItem(e, "endpoints");
	assert_int_equal(cJSON_GetArraySize(eps), 2);
	assert_string_equal(str(cJSON_GetArrayItem(eps, 0), "route"), "/users/{id}");
	assert_int_equal((int)num(cJSON_GetArrayItem(eps, 0), "count"), 6);
	assert_string_equal(str(cJSON_GetArrayItem(eps, 1), "route"), "/items");
	assert_string_equal(str(cJSON_GetArrayItem(eps, 1), "method"), "GET");

	e = find_stmt(list, "0000000000002222");
	assert_non_null(e);
	assert_int_equal((int)num(e, "errors"), 1);
	cJSON_Delete(j);

	j = get_json(200, "/api/sql/top?limit=1&run=%lld", (long long)run2);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "statements")), 1);
	cJSON_Delete(j);
}

static void test_sql_findings(void **state)
{
	cJSON *j, *l, *e;

	(void)state;
	cJSON_Delete(get_json(400, "/api/sql/findings?slow_ms=-1"));
	cJSON_Delete(get_json(400, "/api/sql/findings?slow_ms=1.5"));
	cJSON_Delete(get_json(400, "/api/sql/findings?run=0"));
	j = get_json(200, "/api/sql/findings?run=%lld", (long long)run1);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "n_plus_1")), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "slow")), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "errors")), 0);
	cJSON_Delete(j);

	j = get_json(200, "/api/sql/findings");
	l = cJSON_GetObjectItem(j, "n_plus_1"); /* request B's 2 executions are not one */
	assert_int_equal(cJSON_GetArraySize(l), 1);
	e = cJSON_GetArrayItem(l, 0);
	assert_int_equal((int64_t)num(e, "request_id"), req_a);
	assert_int_equal((int)num(e, "count"), 6);
	assert_float_equal(num(e, "total_ms"), 12, 1e-9);
	assert_string_equal(str(e, "fingerprint"), "0000000000001111");
	assert_string_equal(str(e, "statement"), "SELECT * FROM users WHERE id = $1");
	assert_string_equal(str(e, "route"), "/users/{id}");
	assert_string_equal(str(e, "path"), "/users/0");

	assert_int_equal((int)num(j, "slow_ms"), 100);
	l = cJSON_GetObjectItem(j, "slow");
	assert_int_equal(cJSON_GetArraySize(l), 1);
	assert_float_equal(num(cJSON_GetArrayItem(l, 0), "duration_ms"), 150, 1e-9);
	assert_string_equal(str(cJSON_GetArrayItem(l, 0), "statement"), "SELECT pg_sleep($1)");

	l = cJSON_GetObjectItem(j, "errors");
	assert_int_equal(cJSON_GetArraySize(l), 1);
	e = cJSON_GetArrayItem(l, 0);
	assert_string_equal(str(e, "sqlstate"), "42P01");
	assert_string_equal(str(e, "error"), "relation \"nope\" does not exist");
	assert_int_equal((int)num(e, "count"), 1);
	cJSON_Delete(j);

	/* slow_ms=2: 150 ms and the six 2 ms ones, slowest first */
	j = get_json(200, "/api/sql/findings?slow_ms=2");
	l = cJSON_GetObjectItem(j, "slow");
	assert_int_equal(cJSON_GetArraySize(l), 7);
	assert_float_equal(num(cJSON_GetArrayItem(l, 0), "duration_ms"), 150, 1e-9);
	assert_float_equal(num(cJSON_GetArrayItem(l, 6), "duration_ms"), 2, 1e-9);
	cJSON_Delete(j);
}

static void test_request_sections(void **state)
{
	cJSON *j, *r, *sql, *q;

	(void)state;
	/* no SQL, no samples: no sections */
	j = get_json(200, "/api/requests/%lld", (long long)req_plain);
	r = cJSON_GetObjectItem(j, "request");
	assert_null(cJSON_GetObjectItem(r, "sql"));
	assert_null(cJSON_GetObjectItem(r, "sql_count"));
	assert_null(cJSON_GetObjectItem(r, "samples"));
	cJSON_Delete(j);

	j = get_json(200, "/api/requests/%lld", (long long)req_a);
	r = cJSON_GetObjectItem(j, "request");
	assert_int_equal((int)num(r, "sql_count"), 8);
	assert_float_equal(num(r, "sql_ms"), 163, 1e-9);
	assert_int_equal((int)num(r, "samples"), 8);
	sql = cJSON_GetObjectItem(r, "sql");
	assert_int_equal(cJSON_GetArraySize(sql), 8);
	q = cJSON_GetArrayItem(sql, 0);
	assert_float_equal(num(q, "start_ms"), 1, 1e-9);
	assert_float_equal(num(q, "duration_ms"), 2, 1e-9);
	assert_string_equal(str(q, "statement"), "SELECT * FROM users WHERE id = $1");
	assert_int_equal((int)num(q, "rows"), 1);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(q, "error")));
	q = cJSON_GetArrayItem(sql, 7); /* in start order: the error last */
	assert_float_equal(num(q, "start_ms"), 180, 1e-9);
	assert_string_equal(str(q, "sqlstate"), "42P01");
	assert_string_equal(str(q, "error"), "relation \"nope\" does not exist");
	cJSON_Delete(j);
}

static cJSON *find_ep(cJSON *arr, const char *route)
{
	cJSON *e;

	cJSON_ArrayForEach(e, arr) if (!strcmp(str(e, "route"), route)) return e;
	return NULL;
}

static void test_endpoints_sql(void **state)
{
	cJSON *j, *e;

	(void)state;
	j = get_json(200, "/api/endpoints?run=%lld", (long long)run1);
	e = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "endpoints"), 0);
	assert_non_null(e);
	assert_null(cJSON_GetObjectItem(e, "mean_sql_ms"));
	assert_null(cJSON_GetObjectItem(e, "sql_count"));
	cJSON_Delete(j);

	j = get_json(200, "/api/endpoints");
	e = find_ep(cJSON_GetObjectItem(j, "endpoints"), "/users/{id}");
	assert_non_null(e);
	assert_int_equal((int)num(e, "count"), N_RUN2 / 2);
	assert_float_equal(num(e, "sql_count"), 1.6, 1e-9);
	assert_float_equal(num(e, "mean_sql_ms"), 32.6, 1e-9);
	e = find_ep(cJSON_GetObjectItem(j, "endpoints"), "/items");
	assert_non_null(e);
	assert_float_equal(num(e, "sql_count"), 0.4, 1e-9);
	assert_float_equal(num(e, "mean_sql_ms"), 0.4, 1e-9);
	cJSON_Delete(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_flamegraph_bad_params),
	    cmocka_unit_test(test_flamegraph_endpoint),
	    cmocka_unit_test(test_flamegraph_request),
	    cmocka_unit_test(test_flamegraph_svg),
	    cmocka_unit_test(test_sql_top),
	    cmocka_unit_test(test_sql_findings),
	    cmocka_unit_test(test_request_sections),
	    cmocka_unit_test(test_endpoints_sql),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
