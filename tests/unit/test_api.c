/* SPDX-License-Identifier: MIT */
/* Tests of the dashboard server and its JSON API (user/server.c, user/api_*.c,
 * docs/api.md) and of the histograms behind it (user/hist.c): a database made
 * through the real store with known data, the server on an ephemeral loopback
 * port, real HTTP requests over a socket, answers parsed with cJSON. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
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

#include "hist.h"
#include "server.h"
#include "store.h"

#define N_REQ 1000
#define BASE_NS 1700000000000000000LL
#define START_NS(i) (BASE_NS + 5000000000LL + (int64_t)(i)*10000000LL)

static char db_path[96], db_dir[64];
static struct tg_server *srv;
static int port;

/* ---- The known data set. */

static const char *route_of(int i)
{
	static const char *const r[] = {"/items/{item_id}", "/orders", "/health"};

	return r[i % 3];
}

static int status_of(int i)
{
	if (i % 50 == 0)
		return 0; /* no response */
	if (i % 10 == 0)
		return 500;
	if (i % 7 == 0)
		return 404;
	return 200;
}

static int64_t dur_of(int i)
{
	return (int64_t)(i + 1) * 100000; /* 0.1 ms .. 100 ms */
}

/* Usage (schema v5): /orders and /health have CPU figures, /items none.
 * The final CPU time of request i (i = 7 is completed by update_usage). */
static bool has_usage(int i)
{
	return i % 3 != 0;
}

static int64_t cpu_of(int i)
{
	return i == 7 ? 1000000000LL : dur_of(i) / 4;
}

static int64_t gc_of(int i)
{
	return i % 3 == 2 ? 20000 : 0;
}

#define PROC_POINTS 2500 /* more than /api/process returns: downsampled */

static void set_usage(struct tg_request *r, int i)
{
	struct tg_usage *u = &r->usage;

	u->flags = TG_USAGE_VALID;
	u->cpu_ns = (uint64_t)(i == 7 ? 1 : cpu_of(i));
	u->gc_ns = (uint64_t)gc_of(i);
	u->gc_count = gc_of(i) ? 1 : 0;
	u->minflt = 3;
	if (i != 4)
		return;
	/* i = 4 (id 5): 0.5 ms, 0.125 ms CPU, 0.1 ms SQL; a full timeline */
	u->flags |= TG_USAGE_PARTIAL;
	u->cpu_pool_ns = 25000;
	u->runq_ns = 50000;
	u->pool_wait_ns = 30000;
	u->lock_ns = 20000;
	u->net_ns = 40000;
	u->majflt = 1;
	u->heap_bytes = 1 << 20;
	r->sql_count = 1;
	r->sql_ns = 100000;
	u->nspans = 4;
	u->spans[0] = (struct tg_span){
	    .start_us = 0, .dur_us = 100, .cpu_us = 80, .tid = 43, .kind = TG_SPAN_RUN};
	u->spans[1] =
	    (struct tg_span){.start_us = 100, .dur_us = 20, .tid = 43, .kind = TG_SPAN_GC};
	u->spans[2] =
	    (struct tg_span){.start_us = 120, .dur_us = 30, .tid = 44, .kind = TG_SPAN_POOL_WAIT};
	u->spans[3] =
	    (struct tg_span){.start_us = 200, .dur_us = 40, .tid = 43, .kind = TG_SPAN_NET};
}

static void make_db(const char *path, bool live)
{
	struct tg_run_info info = {.started_ns = BASE_NS,
				   .mono_to_epoch_ns = BASE_NS,
				   .targets = "--uvicorn",
				   .kernel = "6.18",
				   .version = "0.1.0"};
	struct tg_request r;
	struct tg_store *s;
	char err[256];
	int64_t run, id;
	int i;

	s = tg_store__open(path, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(tg_store__begin_run(s, &info, &run), 0);
	for (i = 0; i < N_REQ; i++) {
		memset(&r, 0, sizeof(r));
		r.conn_id = 100 + (uint64_t)i / 4;
		r.pid = 42;
		r.tid = 43;
		r.start_ns = (uint64_t)(START_NS(i) - BASE_NS);
		r.status = status_of(i);
		if (r.status) {
			r.end_ns = r.start_ns + (uint64_t)dur_of(i);
			r.first_resp_ns = r.start_ns + (uint64_t)dur_of(i) / 2;
		} else {
			r.flags |= TG_REQ_INCOMPLETE;
		}
		if (i % 100 == 1)
			r.flags |= TG_REQ_LOST_EVENTS;
		r.req_bytes = 100;
		r.resp_bytes = 1000 + (uint64_t)i;
		snprintf(r.method, sizeof(r.method), "%s", i % 3 == 1 ? "POST" : "GET");
		if (i == 5)
			snprintf(r.target, sizeof(r.target), "/items/5?q=100%%_x");
		else if (i % 3 == 0)
			snprintf(r.target, sizeof(r.target), "/items/%d?x=", i);
		else
			snprintf(r.target, sizeof(r.target), "%s",
				 i % 3 == 1 ? "/orders" : "/Health");
		snprintf(r.route, sizeof(r.route), "%s", route_of(i));
		snprintf(r.peer, sizeof(r.peer), "127.0.0.1:%d", 5000 + i);
		if (has_usage(i))
			set_usage(&r, i);
		assert_int_equal(tg_store__add_request_id(s, &r, &id), 0);
		if (i == 7) { /* its thread-pool work finished after the response */
			r.usage.cpu_ns = (uint64_t)cpu_of(i);
			assert_int_equal(tg_store__update_usage(s, id, &r.usage), 0);
		}
	}
	for (i = 0; i < PROC_POINTS; i++)
		assert_int_equal(tg_store__add_process_stat(s, 42, 1000000000ULL * (uint64_t)i,
							    1000000 + (uint64_t)i,
							    1000000ULL * (uint64_t)i, 4),
				 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(tg_store__add_process_stat(s, 77, 500000000ULL * (uint64_t)i, 2048,
							    1234567ULL * (uint64_t)i, 1),
				 0);
	if (live)
		assert_int_equal(tg_store__flush(s), 0);
	else
		assert_int_equal(tg_store__end_run(s, (uint64_t)START_NS(N_REQ), 12345, 7), 0);
	tg_store__close(s);
}

static int group_setup(void **state)
{
	struct tg_server_cfg cfg = {.listen = "127.0.0.1:0", .threads = 2};
	char err[256];

	(void)state;
	snprintf(db_dir, sizeof(db_dir), "/tmp/tg_test_api.XXXXXX");
	if (!mkdtemp(db_dir))
		return -1;
	snprintf(db_path, sizeof(db_path), "%s/t.db", db_dir);
	make_db(db_path, false);
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
	char *head; /* status line and headers */
	char *body;
	size_t body_len;
};

static void resp_free(struct resp *r)
{
	free(r->head);
	free(r->body);
}

static struct resp http_get_port(int p, const char *path, const char *headers)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
	struct resp r = {0};
	char req[2048], *buf = NULL, *sep;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s\r\n", path,
		 headers ? headers : "");
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
	r.body_len = len - (size_t)(sep + 4 - buf);
	r.body = malloc(r.body_len + 1);
	memcpy(r.body, sep + 4, r.body_len);
	r.body[r.body_len] = '\0';
	assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &r.status), 1);
	free(buf);
	return r;
}

static struct resp http_get(const char *path, const char *headers)
{
	return http_get_port(port, path, headers);
}

/* GET path, expect status, return the parsed JSON (caller deletes). */
static cJSON *get_json(const char *path, int status)
{
	struct resp r = http_get(path, NULL);
	cJSON *j;

	if (r.status != status)
		fprintf(stderr, "GET %s -> %d %s\n", path, r.status, r.body);
	assert_int_equal(r.status, status);
	assert_non_null(strstr(r.head, "Content-Type: application/json"));
	assert_non_null(strstr(r.head, "Cache-Control: no-store"));
	j = cJSON_Parse(r.body);
	assert_non_null(j);
	if (status != 200)
		assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "error")));
	resp_free(&r);
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

/* The exact q-quantile (rank ceil(q * n)) of the durations (ms) of the rows
 * i with pred(i). */
static double exact_quantile(bool (*pred)(int), double q)
{
	double v[N_REQ];
	size_t n = 0, rank, a, b;
	double t;
	int i;

	for (i = 0; i < N_REQ; i++)
		if (status_of(i) && (!pred || pred(i)))
			v[n++] = (double)dur_of(i) / 1e6;
	for (a = 0; a < n; a++) /* small: insertion sort */
		for (b = a; b > 0 && v[b - 1] > v[b]; b--) {
			t = v[b];
			v[b] = v[b - 1];
			v[b - 1] = t;
		}
	rank = (size_t)ceil(q * (double)n);
	return v[rank ? rank - 1 : 0];
}

static void assert_close(double got, double want, double rel)
{
	if (fabs(got - want) > rel * want + 0.0011)
		fail_msg("%f is not within %.1f%% of %f", got, rel * 100, want);
}

/* ---- Histograms. */

static void test_hist_buckets(void **state)
{
	uint64_t v;
	unsigned b, prev = 0;

	(void)state;
	assert_int_equal(tg_hist__bucket(0), 0);
	assert_int_equal(tg_hist__bucket(63), 63);
	assert_int_equal(tg_hist__value(63), 63);
	assert_int_equal(tg_hist__bucket(UINT64_MAX), TG_HIST_BUCKETS - 1);
	for (v = 1; v < (1ULL << 40); v = v * 1.01 + 1) {
		b = tg_hist__bucket(v);
		assert_true(b >= prev); /* monotonic */
		prev = b;
		assert_true(fabs((double)tg_hist__value(b) - (double)v) <= (double)v / 64 + 0.5);
	}
}

static void test_hist_quantile_and_blob(void **state)
{
	struct tg_hist *h = calloc(1, sizeof(*h)), *g = calloc(1, sizeof(*g));
	uint8_t blob[TG_HIST_BUCKETS * TG_HIST_PAIR_SIZE];
	size_t n;
	int i;

	(void)state;
	assert_int_equal(tg_hist__quantile(h, 0.5), 0); /* empty */
	for (i = 1; i <= 100; i++)
		tg_hist__add(h, (uint64_t)i * 1000000);
	assert_close((double)tg_hist__quantile(h, 0.5), 50e6, 0.016);
	assert_close((double)tg_hist__quantile(h, 0.99), 99e6, 0.016);
	assert_close((double)tg_hist__quantile(h, 1.0), 100e6, 0.016);
	n = tg_hist__encode(h, blob, sizeof(blob));
	assert_int_equal(n % TG_HIST_PAIR_SIZE, 0);
	assert_int_equal(tg_hist__merge_blob(g, blob, n), 0);
	assert_int_equal(tg_hist__merge_blob(g, blob, n), 0);
	assert_int_equal(g->total, 200);
	assert_int_equal(tg_hist__quantile(g, 0.5), tg_hist__quantile(h, 0.5));
	assert_int_equal(tg_hist__merge_blob(g, blob, 5), -EINVAL); /* not whole pairs */
	blob[0] = 0xff, blob[1] = 0xff;				    /* bucket out of range */
	assert_int_equal(tg_hist__merge_blob(g, blob, 6), -EINVAL);
	assert_int_equal(tg_hist__merge_blob(g, NULL, 0), 0);
	free(h);
	free(g);
}

/* ---- Server basics and security. */

static void test_loopback_and_token_rules(void **state)
{
	struct tg_server_cfg cfg = {.db_path = db_path, .listen = "0.0.0.0:0"};
	char tok[40], tok2[40], err[256] = "";

	(void)state;
	assert_true(tg_server__is_loopback("127.0.0.1:7070"));
	assert_true(tg_server__is_loopback("127.1.2.3:1"));
	assert_true(tg_server__is_loopback("localhost:7070"));
	assert_true(tg_server__is_loopback("[::1]:7070"));
	assert_false(tg_server__is_loopback("0.0.0.0:7070"));
	assert_false(tg_server__is_loopback("7070"));
	assert_false(tg_server__is_loopback("[::]:7070"));
	assert_false(tg_server__is_loopback("10.0.0.1:7070"));
	assert_false(tg_server__is_loopback(NULL));
	/* a non-loopback address without a token is refused */
	errno = 0;
	assert_null(tg_server__start(&cfg, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "token"));
	assert_int_equal(tg_server__gen_token(tok, 8), -EINVAL);
	assert_int_equal(tg_server__gen_token(tok, sizeof(tok)), 0);
	assert_int_equal(tg_server__gen_token(tok2, sizeof(tok2)), 0);
	assert_int_equal(strlen(tok), 32);
	assert_string_not_equal(tok, tok2);
}

static void test_token_required(void **state)
{
	struct tg_server_cfg cfg = {.db_path = db_path,
				    .listen = "127.0.0.1:0",
				    .token = "s3cret-token",
				    .require_token = true};
	struct tg_server *s;
	struct resp r;
	char err[256];
	int p;

	(void)state;
	s = tg_server__start(&cfg, err, sizeof(err));
	assert_non_null(s);
	p = tg_server__port(s);
	r = http_get_port(p, "/api/status", NULL);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "\"error\""));
	resp_free(&r);
	r = http_get_port(p, "/api/status", "Authorization: Bearer s3cret-tokeX\r\n");
	assert_int_equal(r.status, 401);
	resp_free(&r);
	r = http_get_port(p, "/api/status", "Authorization: Bearer s3cret\r\n");
	assert_int_equal(r.status, 401); /* a prefix is not the token */
	resp_free(&r);
	r = http_get_port(p, "/api/status?token=wrong", NULL);
	assert_int_equal(r.status, 401);
	resp_free(&r);
	r = http_get_port(p, "/api/status", "Authorization: Bearer s3cret-token\r\n");
	assert_int_equal(r.status, 200);
	resp_free(&r);
	r = http_get_port(p, "/api/runs?token=s3cret-token", NULL);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	/* assets need no token: the page carries it to the API */
	r = http_get_port(p, "/", NULL);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	tg_server__stop(s);
}

static void test_assets(void **state)
{
	struct resp r;

	(void)state;
	r = http_get("/", "Accept-Encoding: gzip, deflate\r\n");
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.head, "Content-Encoding: gzip"));
	assert_non_null(strstr(r.head, "Content-Type: text/html"));
	assert_true(r.body_len > 2 && (uint8_t)r.body[0] == 0x1f && (uint8_t)r.body[1] == 0x8b);
	resp_free(&r);
	r = http_get("/", NULL);
	assert_int_equal(r.status, 200);
	assert_null(strstr(r.head, "Content-Encoding"));
	assert_non_null(strcasestr(r.body, "<html"));
	resp_free(&r);
	r = http_get("/index.html", "Accept-Encoding: gzip;q=0\r\n");
	assert_int_equal(r.status, 200);
	assert_null(strstr(r.head, "Content-Encoding"));
	resp_free(&r);
	r = http_get("/app.js", NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.head, "Content-Type: text/javascript"));
	resp_free(&r);
	r = http_get("/nope.js", NULL);
	assert_int_equal(r.status, 404);
	resp_free(&r);
	r = http_get("/../../etc/passwd", NULL);
	assert_int_equal(r.status, 404);
	resp_free(&r);
}

/* ---- The API. */

static void test_status_runs(void **state)
{
	cJSON *j, *run;

	(void)state;
	j = get_json("/api/status", 200);
	assert_string_equal(str(j, "version"), "0.1.0");
	assert_string_equal(str(j, "db"), db_path);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "live")));
	assert_int_equal(num(j, "schema_version"), TG_SCHEMA_VERSION);
	cJSON_Delete(j);

	j = get_json("/api/runs", 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "runs")), 1);
	run = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "runs"), 0);
	assert_int_equal(num(run, "id"), 1);
	assert_string_equal(str(run, "started_ns"), "1700000000000000000");
	assert_string_equal(str(run, "ended_ns"), "1700000015000000000");
	assert_string_equal(str(run, "targets"), "--uvicorn");
	assert_int_equal(num(run, "events"), 12345);
	assert_int_equal(num(run, "dropped_events"), 7);
	assert_int_equal(num(run, "requests"), N_REQ);
	cJSON_Delete(j);
}

static bool is_orders(int i)
{
	return i % 3 == 1;
}

static void test_overview(void **state)
{
	cJSON *j, *t, *series, *p;
	int i, errors = 0, incomplete = 0, lost = 0, sum = 0, sum_err = 0;

	(void)state;
	for (i = 0; i < N_REQ; i++) {
		errors += status_of(i) >= 500;
		incomplete += !status_of(i);
		lost += i % 100 == 1;
	}
	j = get_json("/api/overview", 200);
	assert_int_equal(num(cJSON_GetObjectItem(j, "run"), "id"), 1);
	t = cJSON_GetObjectItem(j, "totals");
	assert_int_equal(num(t, "requests"), N_REQ);
	assert_int_equal(num(t, "errors"), errors);
	assert_int_equal(num(t, "incomplete"), incomplete);
	assert_int_equal(num(t, "lost"), lost);
	assert_close(num(t, "error_rate"), (double)errors / N_REQ, 1e-9);
	assert_close(num(t, "rps"), N_REQ / 15.0, 1e-6); /* run of 15 s */
	assert_close(num(t, "p50_ms"), exact_quantile(NULL, 0.5), 0.016);
	assert_close(num(t, "p95_ms"), exact_quantile(NULL, 0.95), 0.016);
	assert_close(num(t, "p99_ms"), exact_quantile(NULL, 0.99), 0.016);
	assert_int_equal(num(j, "bucket_s"), 1);
	series = cJSON_GetObjectItem(j, "series");
	assert_int_equal(cJSON_GetArraySize(series), 16); /* seconds 0..15 of the run */
	cJSON_ArrayForEach(p, series)
	{
		sum += (int)num(p, "requests");
		sum_err += (int)num(p, "errors");
	}
	assert_int_equal(sum, N_REQ);
	assert_int_equal(sum_err, errors);
	p = cJSON_GetArrayItem(series, 0);
	assert_string_equal(str(p, "t_ns"), "1700000000000000000");
	assert_int_equal(num(p, "requests"), 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(p, "p50_ms")));
	p = cJSON_GetArrayItem(series, 5); /* requests 0..99 */
	assert_int_equal(num(p, "requests"), 100);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "busiest")), 3);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "slowest")), 3);
	p = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "busiest"), 0);
	assert_int_equal(num(p, "count"), 334); /* /items: 0, 3, ... 999 */
	cJSON_Delete(j);
	j = get_json("/api/overview?run=2", 404);
	cJSON_Delete(j);
	j = get_json("/api/overview?run=abc", 400);
	cJSON_Delete(j);
}

static void test_endpoints(void **state)
{
	cJSON *j, *arr, *e;
	int64_t sum_resp = 0, n = 0, max = 0;
	int i, errors = 0;

	(void)state;
	j = get_json("/api/endpoints", 200);
	arr = cJSON_GetObjectItem(j, "endpoints");
	assert_int_equal(cJSON_GetArraySize(arr), 3);
	e = cJSON_GetArrayItem(arr, 0); /* default: count desc */
	assert_string_equal(str(e, "route"), "/items/{item_id}");
	assert_int_equal(num(e, "count"), 334);
	cJSON_Delete(j);

	j = get_json("/api/endpoints?sort=p95&order=asc", 200);
	arr = cJSON_GetObjectItem(j, "endpoints");
	e = cJSON_GetArrayItem(arr, 2); /* the slowest last: /orders has i = 997 */
	for (i = 0; i < N_REQ; i++) {
		if (!is_orders(i))
			continue;
		errors += status_of(i) >= 500;
		sum_resp += 1000 + i;
		n++;
		if (status_of(i))
			max = dur_of(i);
	}
	assert_string_equal(str(e, "method"), "POST");
	assert_string_equal(str(e, "route"), "/orders");
	assert_int_equal(num(e, "count"), n);
	assert_int_equal(num(e, "errors"), errors);
	assert_close(num(e, "p50_ms"), exact_quantile(is_orders, 0.5), 0.016);
	assert_close(num(e, "p95_ms"), exact_quantile(is_orders, 0.95), 0.016);
	assert_close(num(e, "p99_ms"), exact_quantile(is_orders, 0.99), 0.016);
	assert_close(num(e, "max_ms"), (double)max / 1e6, 1e-9);
	assert_int_equal(num(e, "mean_resp_bytes"), (sum_resp + n / 2) / n);
	cJSON_Delete(j);

	j = get_json("/api/endpoints?sort=;drop", 400);
	cJSON_Delete(j);
	j = get_json("/api/endpoints?order=sideways", 400);
	cJSON_Delete(j);
}

/* Walk every page of path (which has no cursor), checking order and that no
 * id repeats; returns the number of rows. */
static int walk_pages(const char *path, bool by_duration, bool asc)
{
	static bool seen[N_REQ + 1];
	char url[512], next[64] = "";
	double prev_v = asc ? -1 : 1e30;
	int64_t prev_id = asc ? 0 : INT64_MAX;
	int rows = 0, pages = 0;
	cJSON *j, *arr, *r, *nx;

	memset(seen, 0, sizeof(seen));
	for (;;) {
		snprintf(url, sizeof(url), "%s%s%s", path, next[0] ? "&after=" : "", next);
		j = get_json(url, 200);
		arr = cJSON_GetObjectItem(j, "requests");
		cJSON_ArrayForEach(r, arr)
		{
			int64_t id = (int64_t)num(r, "id");
			double v = by_duration ? num(r, "duration_ms")
					       : (double)strtoll(str(r, "start_ns"), NULL, 10);

			assert_true(id >= 1 && id <= N_REQ);
			assert_false(seen[id]);
			seen[id] = true;
			if (asc)
				assert_true(v > prev_v || (v == prev_v && id > prev_id));
			else
				assert_true(v < prev_v || (v == prev_v && id < prev_id));
			prev_v = v;
			prev_id = id;
			rows++;
		}
		nx = cJSON_GetObjectItem(j, "next");
		pages++;
		if (cJSON_IsNull(nx)) {
			cJSON_Delete(j);
			break;
		}
		snprintf(next, sizeof(next), "%s", nx->valuestring);
		cJSON_Delete(j);
		assert_true(pages < 1000);
	}
	return rows;
}

static void test_requests_pagination(void **state)
{
	int timed = 0, i;

	(void)state;
	for (i = 0; i < N_REQ; i++)
		timed += status_of(i) != 0;
	assert_int_equal(walk_pages("/api/requests?limit=37", false, false), N_REQ);
	assert_int_equal(walk_pages("/api/requests?sort=start&order=asc&limit=100", false, true),
			 N_REQ);
	assert_int_equal(walk_pages("/api/requests?sort=duration&limit=41", true, false), timed);
	assert_int_equal(walk_pages("/api/requests?sort=duration&order=asc&limit=500", true, true),
			 timed);
	assert_int_equal(
	    walk_pages("/api/requests?method=POST&route=/orders&limit=7", false, false),
	    334 - 1); /* i % 3 == 1: 333 rows */
}

static int count_rows(const char *query)
{
	char url[512];
	cJSON *j;
	int n;

	snprintf(url, sizeof(url), "/api/requests?limit=500&%s", query);
	j = get_json(url, 200);
	n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "requests"));
	cJSON_Delete(j);
	return n;
}

static void test_requests_filters(void **state)
{
	int i, s5 = 0, s4 = 0, none = 0, slow = 0, window = 0;

	(void)state;
	for (i = 0; i < N_REQ; i++) {
		s5 += status_of(i) >= 500;
		s4 += status_of(i) >= 400 && status_of(i) < 500;
		none += !status_of(i);
		slow += status_of(i) && dur_of(i) >= 90000000;
		window += START_NS(i) >= START_NS(10) && START_NS(i) < START_NS(20);
	}
	assert_int_equal(count_rows("status=5xx"), s5);
	assert_int_equal(count_rows("status=4xx"), s4);
	assert_int_equal(count_rows("status=err"), none);
	assert_int_equal(count_rows("min_ms=90"), slow);
	assert_int_equal(count_rows("min_ms=89.9"), slow + 1);
	assert_int_equal(count_rows("from_ns=1700000005100000000&to_ns=1700000005200000000"),
			 window);
	assert_int_equal(count_rows("method=GET&route=%2Fhealth"), 333);
	/* q: substring, case-sensitive, wildcards literal */
	assert_int_equal(count_rows("q=%2FHealth"), 332 /* i = 5 has another path */);
	assert_int_equal(count_rows("q=%2Fhealth"), 0);
	assert_int_equal(count_rows("q=100%25_"), 1);
	assert_int_equal(count_rows("q=%25"), 1);
	assert_int_equal(count_rows("q=_"), 1);
	assert_int_equal(count_rows("q=items%2F99%3F"), 1);
	/* injection attempts are plain values: no rows, no errors */
	assert_int_equal(count_rows("q=%27%20OR%201%3D1%20--"), 0);
	assert_int_equal(count_rows("route=x%27%20OR%20%271%27%3D%271"), 0);
	assert_int_equal(count_rows("method=GET%27%3B%20DROP%20TABLE%20requests%3B--"), 0);
	assert_int_equal(count_rows("run=1"), 500);
}

static void test_requests_one(void **state)
{
	cJSON *j, *r, *names;

	(void)state;
	j = get_json("/api/requests/1", 200); /* i = 0: no status, incomplete */
	r = cJSON_GetObjectItem(j, "request");
	assert_int_equal(num(r, "id"), 1);
	assert_string_equal(str(r, "start_ns"), "1700000005000000000");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "status")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "duration_ms")));
	names = cJSON_GetObjectItem(r, "flag_names");
	assert_int_equal(cJSON_GetArraySize(names), 1);
	assert_string_equal(cJSON_GetArrayItem(names, 0)->valuestring, "incomplete");
	assert_string_equal(str(r, "conn_id"), "100");
	assert_int_equal(num(r, "run_id"), 1);
	assert_int_equal(num(r, "tid"), 43);
	cJSON_Delete(j);
	j = get_json("/api/requests/3", 200); /* i = 2: /health, 0.3 ms */
	r = cJSON_GetObjectItem(j, "request");
	assert_close(num(r, "duration_ms"), 0.3, 1e-9);
	assert_close(num(r, "ttfb_ms"), 0.15, 1e-9);
	assert_string_equal(str(r, "route"), "/health");
	assert_string_equal(str(r, "peer"), "127.0.0.1:5002");
	assert_int_equal(num(r, "status"), 200);
	assert_int_equal(num(r, "resp_bytes"), 1002);
	cJSON_Delete(j);
	j = get_json("/api/requests/999999", 404);
	cJSON_Delete(j);
	j = get_json("/api/requests/abc", 400);
	cJSON_Delete(j);
	j = get_json("/api/requests/-1", 400);
	cJSON_Delete(j);
}

/* A live run: no endpoint/duration indexes yet; slowest-first takes the
 * pruned path (rollup maxima per second) or its fallback. Same answers. */
static void test_live_run(void **state)
{
	struct tg_server_cfg cfg = {.listen = "127.0.0.1:0", .live = true};
	char path[128], p2[140], err[256];
	struct tg_server *s;
	int saved = port, timed = 0, i;
	cJSON *j, *r;

	(void)state;
	for (i = 0; i < N_REQ; i++)
		timed += status_of(i) != 0;
	snprintf(path, sizeof(path), "%s/live.db", db_dir);
	make_db(path, true);
	cfg.db_path = path;
	s = tg_server__start(&cfg, err, sizeof(err));
	assert_non_null(s);
	port = tg_server__port(s);
	j = get_json("/api/status", 200);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "live")));
	cJSON_Delete(j);
	j = get_json("/api/runs", 200);
	r = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "runs"), 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "ended_ns")));
	cJSON_Delete(j);
	j = get_json("/api/requests?sort=duration&limit=3", 200);
	r = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "requests"), 0);
	assert_int_equal(num(r, "id"), 1000);		     /* i = 999: the slowest */
	assert_string_equal(str(j, "next"), "99800000:998"); /* i = 997 third */
	cJSON_Delete(j);
	assert_int_equal(walk_pages("/api/requests?sort=duration&limit=41", true, false), timed);
	assert_int_equal(walk_pages("/api/requests?sort=duration&limit=500", true, false), timed);
	assert_int_equal(walk_pages("/api/requests?sort=duration&method=POST&route=/orders&limit=9",
				    true, false),
			 333 - 6); /* i % 3 == 1, less those without a status (i % 50 == 0) */
	assert_int_equal(walk_pages("/api/requests?sort=duration&order=asc&limit=77", true, true),
			 timed);
	assert_int_equal(walk_pages("/api/requests?status=5xx&limit=5", false, false), 80);
	port = saved;
	tg_server__stop(s);
	unlink(path);
	snprintf(p2, sizeof(p2), "%s-wal", path);
	unlink(p2);
	snprintf(p2, sizeof(p2), "%s-shm", path);
	unlink(p2);
}

static void test_bad_params(void **state)
{
	static const char *const bad[] = {
	    "/api/requests?limit=abc",	"/api/requests?limit=0",     "/api/requests?limit=501",
	    "/api/requests?limit=",	"/api/requests?status=7xx",  "/api/requests?status=200",
	    "/api/requests?sort=;drop", "/api/requests?order=up",    "/api/requests?after=xyz",
	    "/api/requests?after=12:",	"/api/requests?after=12:-3", "/api/requests?min_ms=-1",
	    "/api/requests?min_ms=nan", "/api/requests?from_ns=1e9", "/api/requests?run=0",
	    "/api/requests?run=1%3B",
	};
	cJSON *j;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = get_json(bad[i], 400);
		cJSON_Delete(j);
	}
	j = get_json("/api/requests?run=99", 404);
	cJSON_Delete(j);
	j = get_json("/api/nothing", 404);
	cJSON_Delete(j);
	j = get_json("/api/requestsX", 404);
	cJSON_Delete(j);
}

/* ---- Per-request resources (schema v5). */

static void test_usage_endpoints(void **state)
{
	double sum_cpu[3] = {0}, sum_gc[3] = {0}, n[3] = {0};
	cJSON *j, *arr, *e;
	const char *route;
	int i, k;

	(void)state;
	for (i = 0; i < N_REQ; i++) {
		if (!has_usage(i))
			continue;
		sum_cpu[i % 3] += (double)cpu_of(i);
		sum_gc[i % 3] += (double)gc_of(i);
		n[i % 3]++;
	}
	j = get_json("/api/endpoints", 200);
	arr = cJSON_GetObjectItem(j, "endpoints");
	assert_int_equal(cJSON_GetArraySize(arr), 3);
	cJSON_ArrayForEach(e, arr)
	{
		route = str(e, "route");
		k = !strcmp(route, "/orders") ? 1 : !strcmp(route, "/health") ? 2 : 0;
		if (!k) { /* no request of /items has usage */
			assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "cpu_mean_ms")));
			assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "gc_mean_ms")));
			continue;
		}
		/* the rollup keeps integer ns: the mean is truncated to a ns */
		assert_close(num(e, "cpu_mean_ms"), sum_cpu[k] / n[k] / 1e6, 1e-6);
		assert_close(num(e, "gc_mean_ms"), sum_gc[k] / n[k] / 1e6, 1e-6);
	}
	cJSON_Delete(j);
	/* sort=cpu: /orders (holding the 1 s request) first; /items (none) last */
	j = get_json("/api/endpoints?sort=cpu", 200);
	arr = cJSON_GetObjectItem(j, "endpoints");
	assert_string_equal(str(cJSON_GetArrayItem(arr, 0), "route"), "/orders");
	assert_string_equal(str(cJSON_GetArrayItem(arr, 2), "route"), "/items/{item_id}");
	cJSON_Delete(j);
	j = get_json("/api/endpoints?sort=cpu&order=asc", 200);
	arr = cJSON_GetObjectItem(j, "endpoints");
	assert_string_equal(str(cJSON_GetArrayItem(arr, 0), "route"), "/items/{item_id}");
	cJSON_Delete(j);
	j = get_json("/api/endpoints?sort=gc", 400);
	cJSON_Delete(j);
}

static void test_usage_request_list(void **state)
{
	static bool seen[N_REQ + 1];
	char url[256], next[64] = "";
	double prev = 1e30;
	int rows = 0, want = 0, i;
	cJSON *j, *arr, *r, *nx;

	(void)state;
	for (i = 0; i < N_REQ; i++)
		want += has_usage(i);
	/* list rows carry cpu_ms, null without usage */
	j = get_json("/api/requests?sort=start&order=asc&limit=8", 200);
	arr = cJSON_GetObjectItem(j, "requests");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "cpu_ms")));
	assert_close(num(cJSON_GetArrayItem(arr, 1), "cpu_ms"), (double)cpu_of(1) / 1e6, 1e-9);
	assert_close(num(cJSON_GetArrayItem(arr, 7), "cpu_ms"), 1000.0, 1e-9);
	cJSON_Delete(j);
	/* sort=cpu: most CPU first, only requests with figures, keyset pages */
	memset(seen, 0, sizeof(seen));
	for (;;) {
		snprintf(url, sizeof(url), "/api/requests?sort=cpu&limit=97%s%s",
			 next[0] ? "&after=" : "", next);
		j = get_json(url, 200);
		arr = cJSON_GetObjectItem(j, "requests");
		cJSON_ArrayForEach(r, arr)
		{
			int id = (int)num(r, "id");
			double v = num(r, "cpu_ms");

			if (!rows)
				assert_int_equal(id, 8); /* i = 7, updated to 1 s */
			assert_true(id >= 1 && id <= N_REQ);
			assert_false(seen[id]);
			seen[id] = true;
			assert_true(v <= prev);
			prev = v;
			rows++;
		}
		nx = cJSON_GetObjectItem(j, "next");
		if (cJSON_IsNull(nx)) {
			cJSON_Delete(j);
			break;
		}
		snprintf(next, sizeof(next), "%s", nx->valuestring);
		cJSON_Delete(j);
		assert_true(rows < 2 * N_REQ);
	}
	assert_int_equal(rows, want);
	j = get_json("/api/requests?sort=cpu&order=asc&limit=1", 200);
	r = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "requests"), 0);
	assert_int_equal(num(r, "id"), 2); /* i = 1: the least CPU */
	cJSON_Delete(j);
	j = get_json("/api/requests?sort=mem", 400);
	cJSON_Delete(j);
}

static void test_usage_request_detail(void **state)
{
	cJSON *j, *r, *u, *tl, *sp;

	(void)state;
	j = get_json("/api/requests/1", 200); /* i = 0: /items, no usage */
	r = cJSON_GetObjectItem(j, "request");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "usage")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "cpu_ms")));
	cJSON_Delete(j);

	j = get_json("/api/requests/5", 200); /* i = 4: everything set */
	r = cJSON_GetObjectItem(j, "request");
	u = cJSON_GetObjectItem(r, "usage");
	assert_true(cJSON_IsObject(u));
	assert_close(num(u, "cpu_ms"), 0.125, 1e-9);
	assert_close(num(u, "cpu_pool_ms"), 0.025, 1e-9);
	assert_close(num(u, "offcpu_ms"), 0.375, 1e-9); /* 0.5 - 0.125 */
	assert_close(num(u, "sql_ms"), 0.1, 1e-9);
	assert_close(num(u, "runq_ms"), 0.05, 1e-9);
	assert_close(num(u, "pool_wait_ms"), 0.03, 1e-9);
	assert_close(num(u, "lock_wait_ms"), 0.02, 1e-9);
	assert_close(num(u, "net_wait_ms"), 0.04, 1e-9);
	/* 0.375 - 0.1 - 0.04 - 0.05 - 0.03 - 0.02 */
	assert_close(num(u, "other_wait_ms"), 0.135, 1e-9);
	assert_int_equal(num(u, "minflt"), 3);
	assert_int_equal(num(u, "majflt"), 1);
	assert_int_equal(num(u, "heap_bytes"), 1 << 20);
	assert_int_equal(num(u, "gc_count"), 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(u, "partial")));
	tl = cJSON_GetObjectItem(u, "timeline");
	assert_int_equal(cJSON_GetArraySize(tl), 4);
	sp = cJSON_GetArrayItem(tl, 0);
	assert_string_equal(str(sp, "kind"), "run");
	assert_close(num(sp, "start_ms"), 0, 1e-9);
	assert_close(num(sp, "dur_ms"), 0.1, 1e-9);
	assert_close(num(sp, "cpu_ms"), 0.08, 1e-9);
	assert_int_equal(num(sp, "tid"), 43);
	assert_string_equal(str(cJSON_GetArrayItem(tl, 1), "kind"), "gc");
	sp = cJSON_GetArrayItem(tl, 2);
	assert_string_equal(str(sp, "kind"), "pool_wait");
	assert_close(num(sp, "start_ms"), 0.12, 1e-9);
	assert_int_equal(num(sp, "tid"), 44);
	sp = cJSON_GetArrayItem(tl, 3);
	assert_string_equal(str(sp, "kind"), "net_wait");
	assert_close(num(sp, "dur_ms"), 0.04, 1e-9);
	cJSON_Delete(j);

	j = get_json("/api/requests/8", 200); /* i = 7: completed later, 1 s of CPU */
	u = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "request"), "usage");
	assert_close(num(u, "cpu_ms"), 1000.0, 1e-9);
	/* more CPU than wall time (the thread pool): no negative waiting */
	assert_close(num(u, "offcpu_ms"), 0, 1e-9);
	assert_close(num(u, "other_wait_ms"), 0, 1e-9);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(u, "partial")));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(u, "timeline")), 0);
	cJSON_Delete(j);

	j = get_json("/api/requests/51", 200); /* i = 50: /health, no response, no duration */
	u = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "request"), "usage");
	assert_close(num(u, "gc_ms"), 0.02, 1e-9);
	assert_int_equal(num(u, "gc_count"), 1);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(u, "offcpu_ms")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(u, "other_wait_ms")));
	cJSON_Delete(j);
}

static void test_process_series(void **state)
{
	cJSON *j, *series, *s0, *pts, *p;
	int k, prev = -1;

	(void)state;
	j = get_json("/api/process", 200);
	series = cJSON_GetObjectItem(j, "series");
	assert_int_equal(cJSON_GetArraySize(series), 2);
	s0 = cJSON_GetArrayItem(series, 0);
	assert_int_equal(num(s0, "pid"), 42);
	pts = cJSON_GetObjectItem(s0, "points");
	assert_int_equal(cJSON_GetArraySize(pts), 2000); /* 2500 downsampled */
	p = cJSON_GetArrayItem(pts, 0);
	assert_string_equal(cJSON_GetArrayItem(p, 0)->valuestring, "1700000000000000000");
	assert_int_equal(cJSON_GetArrayItem(p, 1)->valuedouble, 1000000);
	p = cJSON_GetArrayItem(pts, 1999); /* the last sample is kept */
	assert_int_equal(cJSON_GetArrayItem(p, 1)->valuedouble, 1000000 + PROC_POINTS - 1);
	assert_close(cJSON_GetArrayItem(p, 2)->valuedouble, (PROC_POINTS - 1) * 1.0, 1e-9);
	/* evenly spaced and in time order */
	cJSON_ArrayForEach(p, pts)
	{
		k = (int)cJSON_GetArrayItem(p, 1)->valuedouble - 1000000;
		assert_true(k > prev && k - prev <= 2);
		prev = k;
	}
	s0 = cJSON_GetArrayItem(series, 1);
	assert_int_equal(num(s0, "pid"), 77);
	pts = cJSON_GetObjectItem(s0, "points");
	assert_int_equal(cJSON_GetArraySize(pts), 3);
	p = cJSON_GetArrayItem(pts, 2);
	assert_string_equal(cJSON_GetArrayItem(p, 0)->valuestring, "1700000001000000000");
	assert_close(cJSON_GetArrayItem(p, 2)->valuedouble, 2.469, 1e-9); /* 2469134 ns */
	cJSON_Delete(j);
	j = get_json("/api/process?run=1", 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "series")), 2);
	cJSON_Delete(j);
	j = get_json("/api/process?run=9", 404);
	cJSON_Delete(j);
	j = get_json("/api/process?run=x", 400);
	cJSON_Delete(j);
	j = get_json("/api/process/1", 404);
	cJSON_Delete(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hist_buckets),
	    cmocka_unit_test(test_hist_quantile_and_blob),
	    cmocka_unit_test(test_loopback_and_token_rules),
	    cmocka_unit_test(test_token_required),
	    cmocka_unit_test(test_assets),
	    cmocka_unit_test(test_status_runs),
	    cmocka_unit_test(test_overview),
	    cmocka_unit_test(test_endpoints),
	    cmocka_unit_test(test_requests_pagination),
	    cmocka_unit_test(test_requests_filters),
	    cmocka_unit_test(test_requests_one),
	    cmocka_unit_test(test_bad_params),
	    cmocka_unit_test(test_live_run),
	    cmocka_unit_test(test_usage_endpoints),
	    cmocka_unit_test(test_usage_request_list),
	    cmocka_unit_test(test_usage_request_detail),
	    cmocka_unit_test(test_process_series),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
