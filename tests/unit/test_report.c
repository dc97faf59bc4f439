/* SPDX-License-Identifier: MIT */
/* Unit tests of `timeglass report` (user/report.c) on databases written with
 * the store: exact nearest-rank percentiles, errors, throughput, slowest
 * ordering, the three formats, run selection and error cases. */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "report.h"
#include "store.h"

#define EPOCH 1700000000000000000ULL /* 2023-11-14T22:13:20Z */
#define MS 1000000ULL

struct fx {
	char dir[64];
	char path[96];
	struct tg_store *s; /* left open during the reports: a live tracer */
};

static void add(struct tg_store *s, const char *method, const char *path, const char *route,
		uint64_t start_ms, uint64_t dur_ms, int status, uint64_t resp, uint32_t flags)
{
	struct tg_request r;

	memset(&r, 0, sizeof(r));
	r.pid = 42;
	r.tid = 42;
	r.conn_id = 1;
	r.start_ns = start_ms * MS;
	r.end_ns = dur_ms == UINT64_MAX ? 0 : r.start_ns + dur_ms * MS;
	r.first_resp_ns = status ? r.start_ns + MS / 2 : 0;
	r.status = status;
	r.resp_bytes = resp;
	r.flags = flags;
	snprintf(r.method, sizeof(r.method), "%s", method);
	snprintf(r.target, sizeof(r.target), "%s", path);
	snprintf(r.route, sizeof(r.route), "%s", route);
	assert_int_equal(tg_store__add_request(s, &r), 0);
}

/*
 * Run 1 (10 s, 5 dropped events):
 *   GET /a: 100 requests of 1..100 ms, one 502, one 404, resp 1000 B.
 *   POST /b|x: 10, 20, 30, 40, 50, 60, 150 ms; two 5xx; resp 100 B.
 *   GET (no route): one request with no end (no duration), incomplete.
 * Run 2 (still running): one GET /c.
 */
static int setup(void **state)
{
	struct tg_run_info info = {.started_ns = EPOCH,
				   .mono_to_epoch_ns = EPOCH,
				   .targets = "--uvicorn",
				   .kernel = "6.18.0",
				   .version = "0.1.0"};
	static const uint64_t bdur[] = {30, 10, 150, 20, 60, 40, 50};
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];
	char path[64];
	int64_t run;
	uint64_t i;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tg_test_report.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	f->s = tg_store__open(f->path, err, sizeof(err));
	if (!f->s || tg_store__begin_run(f->s, &info, &run))
		return -1;
	/* durations added in a shuffled order: the report must sort */
	for (i = 0; i < 100; i++) {
		uint64_t d = (i * 37) % 100 + 1;

		snprintf(path, sizeof(path), "/a?i=%llu", (unsigned long long)d);
		add(f->s, "GET", path, "/a", 1000 + i, d,
		    d == 7   ? 502
		    : d == 8 ? 404
			     : 200,
		    1000, 0);
	}
	for (i = 0; i < 7; i++)
		add(f->s, "POST", "/b|x", "/b|x", 2000 + i, bdur[i], i < 2 ? 500 + (int)i * 3 : 201,
		    100, 0);
	add(f->s, "GET", "/z", "", 3000, UINT64_MAX, 0, 0, TG_REQ_INCOMPLETE | TG_REQ_LOST_EVENTS);
	if (tg_store__end_run(f->s, EPOCH + 10000 * MS, 123456, 5))
		return -1;
	info.started_ns = EPOCH + 20000 * MS;
	if (tg_store__begin_run(f->s, &info, &run))
		return -1;
	add(f->s, "GET", "/c", "/c", 20001, 3, 200, 10, 0);
	if (tg_store__flush(f->s))
		return -1;
	*state = f;
	return 0;
}

static void rm_db(const char *path)
{
	char p[128];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	tg_store__close(f->s);
	rm_db(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Runs the report into a malloc'd string (caller frees); *ret gets its result. */
static char *run_report(const char *path, enum tg_report_format fmt, int64_t run_id, int slowest,
			int *ret, char *err, size_t errlen)
{
	struct tg_report_opts o = {.format = fmt, .run_id = run_id, .slowest = slowest};
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	*ret = tg_report__write(path, &o, out, err, errlen);
	fclose(out);
	return buf;
}

static cJSON *json_report(const char *path, int64_t run_id, int slowest)
{
	char err[256] = "";
	int ret;
	char *text = run_report(path, TG_REPORT_JSON, run_id, slowest, &ret, err, sizeof(err));
	cJSON *root;

	assert_int_equal(ret, 0);
	root = cJSON_Parse(text);
	free(text);
	assert_non_null(root);
	return root;
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

static bool is_null(const cJSON *o, const char *key)
{
	return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* ---- Errors first. */

static void test_parse_format(void **state)
{
	enum tg_report_format f = TG_REPORT_TEXT;

	(void)state;
	assert_int_equal(tg_report__parse_format("json", &f), 0);
	assert_int_equal(f, TG_REPORT_JSON);
	assert_int_equal(tg_report__parse_format("md", &f), 0);
	assert_int_equal(f, TG_REPORT_MARKDOWN);
	assert_int_equal(tg_report__parse_format("markdown", &f), 0);
	assert_int_equal(f, TG_REPORT_MARKDOWN);
	assert_int_equal(tg_report__parse_format("text", &f), 0);
	assert_int_equal(f, TG_REPORT_TEXT);
	assert_int_equal(tg_report__parse_format("JSON", &f), -EINVAL);
	assert_int_equal(tg_report__parse_format("", &f), -EINVAL);
	assert_int_equal(tg_report__parse_format(NULL, &f), -EINVAL);
}

static void test_missing_file(void **state)
{
	char err[256] = "";
	int ret;
	char *out;

	(void)state;
	out = run_report("/tmp/no/such/tg.db", TG_REPORT_TEXT, 0, 10, &ret, err, sizeof(err));
	assert_int_equal(ret, -ENOENT);
	assert_non_null(strstr(err, "/tmp/no/such/tg.db"));
	assert_string_equal(out, ""); /* nothing printed on error */
	free(out);
}

static void test_no_run(void **state)
{
	char dir[] = "/tmp/tg_test_report_empty.XXXXXX", path[64], err[256] = "";
	struct tg_store *s;
	char *out;
	int ret;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/e.db", dir);
	s = tg_store__open(path, err, sizeof(err));
	assert_non_null(s);
	tg_store__close(s);
	out = run_report(path, TG_REPORT_TEXT, 0, 10, &ret, err, sizeof(err));
	assert_int_equal(ret, -ENOENT);
	assert_non_null(strstr(err, "no run"));
	free(out);

	/* a SQLite database that timeglass did not make */
	rm_db(path);
	{
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		fputs("not a database at all, not even close; padding padding padding padding "
		      "padding padding padding padding padding\n",
		      fp);
		fclose(fp);
	}
	out = run_report(path, TG_REPORT_JSON, 0, 10, &ret, err, sizeof(err));
	assert_int_equal(ret, -EINVAL);
	assert_non_null(strstr(err, "not a SQLite database"));
	free(out);
	rm_db(path);
	rmdir(dir);
}

static void test_unknown_run(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	int ret;
	char *out = run_report(f->path, TG_REPORT_TEXT, 99, 10, &ret, err, sizeof(err));

	assert_int_equal(ret, -ENOENT);
	assert_non_null(strstr(err, "no run 99"));
	free(out);
}

/* ---- Content. */

static void test_json_run1(void **state)
{
	struct fx *f = *state;
	cJSON *root = json_report(f->path, 1, 3);
	const cJSON *run = cJSON_GetObjectItemCaseSensitive(root, "run");
	const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "endpoints");
	const cJSON *slow = cJSON_GetObjectItemCaseSensitive(root, "slowest");
	const cJSON *a, *b, *z, *s0, *fl;

	assert_non_null(run);
	assert_int_equal(num(run, "id"), 1);
	assert_string_equal(str(run, "started"), "2023-11-14T22:13:20.000Z");
	assert_string_equal(str(run, "ended"), "2023-11-14T22:13:30.000Z");
	assert_float_equal(num(run, "duration_s"), 10.0, 1e-9);
	assert_string_equal(str(run, "targets"), "--uvicorn");
	assert_string_equal(str(run, "kernel"), "6.18.0");
	assert_string_equal(str(run, "version"), "0.1.0");
	assert_int_equal(num(run, "requests"), 108);
	assert_int_equal(num(run, "events"), 123456);
	assert_int_equal(num(run, "dropped_events"), 5);
	assert_int_equal(num(run, "incomplete_requests"), 1);
	assert_int_equal(num(run, "lost_event_requests"), 1);

	/* sorted by count desc */
	assert_int_equal(cJSON_GetArraySize(eps), 3);
	a = cJSON_GetArrayItem(eps, 0);
	b = cJSON_GetArrayItem(eps, 1);
	z = cJSON_GetArrayItem(eps, 2);
	assert_string_equal(str(a, "method"), "GET");
	assert_string_equal(str(a, "route"), "/a");
	assert_int_equal(num(a, "count"), 100);
	assert_int_equal(num(a, "errors"), 1); /* the 502, not the 404 */
	assert_float_equal(num(a, "throughput_rps"), 10.0, 1e-9);
	assert_float_equal(num(a, "p50_ms"), 50.0, 1e-9);
	assert_float_equal(num(a, "p90_ms"), 90.0, 1e-9);
	assert_float_equal(num(a, "p95_ms"), 95.0, 1e-9);
	assert_float_equal(num(a, "p99_ms"), 99.0, 1e-9);
	assert_float_equal(num(a, "max_ms"), 100.0, 1e-9);
	assert_float_equal(num(a, "mean_resp_bytes"), 1000.0, 1e-9);

	/* n = 7: ranks ceil(3.5) = 4, ceil(6.3) = 7, 7, 7, 7 */
	assert_string_equal(str(b, "method"), "POST");
	assert_string_equal(str(b, "route"), "/b|x");
	assert_int_equal(num(b, "count"), 7);
	assert_int_equal(num(b, "errors"), 2);
	assert_float_equal(num(b, "throughput_rps"), 0.7, 1e-9);
	assert_float_equal(num(b, "p50_ms"), 40.0, 1e-9);
	assert_float_equal(num(b, "p90_ms"), 150.0, 1e-9);
	assert_float_equal(num(b, "p99_ms"), 150.0, 1e-9);
	assert_float_equal(num(b, "max_ms"), 150.0, 1e-9);
	assert_float_equal(num(b, "mean_resp_bytes"), 100.0, 1e-9);

	/* no route, no duration: percentiles null */
	assert_true(is_null(z, "route"));
	assert_int_equal(num(z, "count"), 1);
	assert_true(is_null(z, "p50_ms"));
	assert_true(is_null(z, "max_ms"));

	/* slowest: 150 (POST), 100, 99 (GET) */
	assert_int_equal(cJSON_GetArraySize(slow), 3);
	s0 = cJSON_GetArrayItem(slow, 0);
	assert_float_equal(num(s0, "duration_ms"), 150.0, 1e-9);
	assert_string_equal(str(s0, "method"), "POST");
	assert_string_equal(str(s0, "path"), "/b|x");
	assert_int_equal(num(s0, "status"), 201);
	assert_float_equal(num(s0, "ttfb_ms"), 0.5, 1e-9);
	assert_string_equal(str(s0, "start"), "2023-11-14T22:13:22.002Z");
	fl = cJSON_GetObjectItemCaseSensitive(s0, "flags");
	assert_true(cJSON_IsArray(fl));
	assert_int_equal(cJSON_GetArraySize(fl), 0);
	assert_float_equal(num(cJSON_GetArrayItem(slow, 1), "duration_ms"), 100.0, 1e-9);
	assert_string_equal(str(cJSON_GetArrayItem(slow, 1), "path"), "/a?i=100");
	assert_float_equal(num(cJSON_GetArrayItem(slow, 2), "duration_ms"), 99.0, 1e-9);
	cJSON_Delete(root);
}

static void test_run_selection(void **state)
{
	struct fx *f = *state;
	cJSON *root = json_report(f->path, 0, 0); /* latest: run 2, still running */
	const cJSON *run = cJSON_GetObjectItemCaseSensitive(root, "run");
	const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "endpoints");

	assert_int_equal(num(run, "id"), 2);
	assert_true(is_null(run, "ended"));
	assert_true(num(run, "duration_s") > 0);
	assert_int_equal(num(run, "requests"), 1);
	assert_int_equal(num(run, "dropped_events"), 0);
	assert_int_equal(cJSON_GetArraySize(eps), 1);
	assert_string_equal(str(cJSON_GetArrayItem(eps, 0), "route"), "/c");
	assert_float_equal(num(cJSON_GetArrayItem(eps, 0), "max_ms"), 3.0, 1e-9);
	/* slowest 0: none listed, the array is still there */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "slowest")), 0);
	cJSON_Delete(root);

	/* default of 10 with NULL opts */
	{
		char *buf = NULL, err[256] = "";
		size_t len = 0;
		FILE *out = open_memstream(&buf, &len);

		assert_non_null(out);
		assert_int_equal(tg_report__write(f->path, NULL, out, err, sizeof(err)), 0);
		fclose(out);
		assert_non_null(strstr(buf, "TimeGlass report, run 2"));
		assert_non_null(strstr(buf, "(still running)"));
		assert_null(strstr(buf, "WARNING"));
		free(buf);
	}
	root = json_report(f->path, 1, -1); /* < 0: the default 10 */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "slowest")), 10);
	cJSON_Delete(root);
}

static void test_text(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	int ret;
	char *out = run_report(f->path, TG_REPORT_TEXT, 1, 2, &ret, err, sizeof(err));
	char *line;

	assert_int_equal(ret, 0);
	assert_non_null(strstr(out, "TimeGlass report, run 1"));
	assert_non_null(strstr(out, "2023-11-14T22:13:20.000Z"));
	assert_non_null(strstr(out, "WARNING: 5 events were dropped"));
	assert_non_null(strstr(out, "dropped    5"));
	assert_non_null(strstr(out, "incomplete 1"));
	line = strstr(out, "\nGET    /a ");
	assert_non_null(line);
	assert_non_null(strstr(line, "     100      1      10.0     50.00     90.00     95.00"));
	assert_non_null(strstr(out, "\nPOST   /b|x "));
	assert_non_null(strstr(out, "Slowest requests"));
	assert_non_null(strstr(out, "150.00"));
	free(out);

	out = run_report(f->path, TG_REPORT_TEXT, 1, 200, &ret, err, sizeof(err));
	assert_int_equal(ret, 0);
	/* the request with no duration is not ranked among the slowest */
	assert_null(strstr(out, "incomplete,lost-events"));
	free(out);
}

static void test_markdown(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	int ret;
	char *out = run_report(f->path, TG_REPORT_MARKDOWN, 1, 3, &ret, err, sizeof(err));

	assert_int_equal(ret, 0);
	assert_non_null(strstr(out, "## TimeGlass report, run 1"));
	assert_non_null(strstr(out, "| dropped events | 5 |"));
	assert_non_null(strstr(out, "> **Warning:** 5 events were dropped"));
	assert_non_null(
	    strstr(out, "| GET | /a | 100 | 1 | 10.0 | 50.00 | 90.00 | 95.00 | 99.00 | 100.00 | "
			"1000 |"));
	/* '|' escaped inside cells */
	assert_non_null(
	    strstr(out, "| POST | /b\\|x | 7 | 2 | 0.7 | 40.00 | 150.00 | 150.00 | 150.00 | "));
	assert_non_null(strstr(out, "| GET | - | 1 | 0 | 0.1 | - | - | - | - | - | 0 |"));
	assert_non_null(strstr(out, "| 2023-11-14T22:13:22.002Z | POST | /b\\|x | /b\\|x | 201 | "
				    "150.00 | 0.50 | - |"));
	free(out);
}

static void test_flags_spelled_out(void **state)
{
	struct fx *f = *state;
	struct tg_run_info info = {.started_ns = EPOCH, .mono_to_epoch_ns = EPOCH};
	cJSON *root;
	const cJSON *fl;
	char err[256] = "";
	char *out;
	int ret;

	assert_int_equal(tg_store__begin_run(f->s, &info, NULL), 0);
	add(f->s, "GET", "/f", "/f", 1, 5, 0, 0,
	    TG_REQ_INCOMPLETE | TG_REQ_RESYNC | TG_REQ_ROUTE_GUESSED);
	assert_int_equal(tg_store__flush(f->s), 0);
	root = json_report(f->path, 0, 10);
	fl = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "slowest"), 0), "flags");
	assert_int_equal(cJSON_GetArraySize(fl), 3);
	assert_string_equal(cJSON_GetArrayItem(fl, 0)->valuestring, "incomplete");
	assert_string_equal(cJSON_GetArrayItem(fl, 1)->valuestring, "resync");
	assert_string_equal(cJSON_GetArrayItem(fl, 2)->valuestring, "route-guessed");
	assert_true(is_null(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "slowest"), 0), "status"));
	cJSON_Delete(root);
	out = run_report(f->path, TG_REPORT_TEXT, 0, 10, &ret, err, sizeof(err));
	assert_int_equal(ret, 0);
	assert_non_null(strstr(out, "incomplete,resync,route-guessed"));
	free(out);
}

/* Run 3 of the fixture's file: GET /u, 20 requests with usage (CPU 1..20 ms,
 * 0.5 ms GC, 10 minor faults, 2 KiB heap); GET /n, 3 requests without. */
static void add_usage_run(struct fx *f)
{
	struct tg_run_info info = {.started_ns = EPOCH + 30000 * MS, .mono_to_epoch_ns = EPOCH};
	struct tg_request r;
	int64_t run;
	uint64_t i;

	assert_int_equal(tg_store__begin_run(f->s, &info, &run), 0);
	for (i = 0; i < 23; i++) {
		memset(&r, 0, sizeof(r));
		r.pid = 42;
		r.start_ns = (30001 + i) * MS;
		r.end_ns = r.start_ns + 30 * MS;
		r.status = 200;
		snprintf(r.method, sizeof(r.method), "GET");
		snprintf(r.target, sizeof(r.target), i < 20 ? "/u" : "/n");
		snprintf(r.route, sizeof(r.route), i < 20 ? "/u" : "/n");
		if (i < 20) {
			r.usage.flags = TG_USAGE_VALID;
			r.usage.cpu_ns = ((i * 7) % 20 + 1) * MS; /* shuffled */
			r.usage.gc_ns = MS / 2;
			r.usage.gc_count = 1;
			r.usage.minflt = 10;
			r.usage.heap_bytes = 2048;
		}
		assert_int_equal(tg_store__add_request(f->s, &r), 0);
	}
	assert_int_equal(tg_store__flush(f->s), 0);
}

static void test_usage(void **state)
{
	struct fx *f = *state;
	const cJSON *eps, *u, *n;
	char err[256] = "";
	cJSON *root;
	char *out;
	int ret;

	/* run 1 has no usage: null fields, no section */
	root = json_report(f->path, 1, 0);
	eps = cJSON_GetObjectItemCaseSensitive(root, "endpoints");
	assert_true(is_null(cJSON_GetArrayItem(eps, 0), "cpu_ms_mean"));
	assert_true(is_null(cJSON_GetArrayItem(eps, 0), "cpu_ms_p95"));
	cJSON_Delete(root);
	out = run_report(f->path, TG_REPORT_TEXT, 1, 0, &ret, err, sizeof(err));
	assert_int_equal(ret, 0);
	assert_null(strstr(out, "Resources per request"));
	free(out);

	add_usage_run(f);
	root = json_report(f->path, 3, 0);
	eps = cJSON_GetObjectItemCaseSensitive(root, "endpoints");
	u = cJSON_GetArrayItem(eps, 0);
	n = cJSON_GetArrayItem(eps, 1);
	assert_string_equal(str(u, "route"), "/u");
	assert_int_equal(num(u, "usage_requests"), 20);
	assert_float_equal(num(u, "cpu_ms_mean"), 10.5, 1e-9);
	assert_float_equal(num(u, "cpu_ms_p95"), 19.0, 1e-9); /* rank ceil(0.95 * 20) = 19 */
	assert_float_equal(num(u, "gc_ms_mean"), 0.5, 1e-9);
	assert_float_equal(num(u, "minflt_mean"), 10.0, 1e-9);
	assert_float_equal(num(u, "heap_bytes_mean"), 2048.0, 1e-9);
	assert_string_equal(str(n, "route"), "/n");
	assert_int_equal(num(n, "usage_requests"), 0);
	assert_true(is_null(n, "cpu_ms_mean"));
	assert_true(is_null(n, "gc_ms_mean"));
	assert_true(is_null(n, "heap_bytes_mean"));
	cJSON_Delete(root);

	out = run_report(f->path, TG_REPORT_TEXT, 3, 0, &ret, err, sizeof(err));
	assert_int_equal(ret, 0);
	assert_non_null(strstr(out, "Resources per request"));
	assert_non_null(strstr(out, "\nGET    /u          20     10.50     19.00      0.50"
				    "      10.0         2.0\n"));
	assert_non_null(strstr(out, "\nGET    /n           0         -         -         -"));
	free(out);
	out = run_report(f->path, TG_REPORT_MARKDOWN, 3, 0, &ret, err, sizeof(err));
	assert_int_equal(ret, 0);
	assert_non_null(strstr(out, "### Resources per request"));
	assert_non_null(strstr(out, "| GET | /u | 20 | 10.50 | 19.00 | 0.50 | 10.0 | 2.0 |"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_format),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_no_run),
	    cmocka_unit_test_setup_teardown(test_unknown_run, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_json_run1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_selection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_text, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_markdown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flags_spelled_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
