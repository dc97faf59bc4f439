/* SPDX-License-Identifier: MIT */
/*
 * The pipeline on synthetic event streams: request records get their
 * connection's pid and peer, routes from TG_EV_ROUTES or heuristics; fd reuse
 * without a close, lost events (sequence gaps), process exit, the tracer's
 * own connections, unknown connections and malformed events.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "evgen.h"
#include "pipeline.h"

#define MAXREQ 32

struct sink {
	struct tg_request reqs[MAXREQ];
	int n;
	int metas;
};

static int64_t on_request(void *ctx, const struct tg_request *r)
{
	struct sink *s = ctx;

	if (s->n < MAXREQ)
		s->reqs[s->n] = *r;
	return ++s->n;
}

static void on_meta(void *ctx, const void *ev, size_t size)
{
	struct sink *s = ctx;

	(void)ev;
	(void)size;
	s->metas++;
}

static struct tg_pipeline *new_pipe(struct sink *s)
{
	struct tg_pipeline_cfg cfg = {.on_request = on_request, .on_meta = on_meta, .ctx = s};
	struct tg_pipeline *p;

	memset(s, 0, sizeof(*s));
	p = tg_pipeline__new(&cfg);
	assert_non_null(p);
	return p;
}

static void feed_conn(struct tg_pipeline *p, uint32_t pid, int fd, uint64_t id, uint16_t rport,
		      uint64_t ts)
{
	struct tg_ev_conn c = evgen_conn(pid, fd, id, rport, ts, TG_ORIGIN_ACCEPT);

	assert_int_equal(tg_pipeline__event(p, &c, sizeof(c)), 0);
}

static void feed_data(struct tg_pipeline *p, uint32_t pid, int fd, uint64_t id, uint32_t seq,
		      uint8_t dir, const char *text, uint64_t ts)
{
	size_t size;
	struct tg_ev_data *d =
	    evgen_data(pid, fd, id, seq, dir, text, strlen(text), 1024, ts, &size);

	assert_int_equal(tg_pipeline__event(p, d, size), 0);
	free(d);
}

static void feed_close(struct tg_pipeline *p, uint32_t pid, int fd, uint64_t id, uint32_t seq,
		       uint64_t ts)
{
	struct tg_ev_close c = evgen_close(pid, fd, id, seq, ts);

	assert_int_equal(tg_pipeline__event(p, &c, sizeof(c)), 0);
}

static const char *req_items = "GET /items/42?token=abc HTTP/1.1\r\nHost: x\r\n\r\n";
static const char *resp_ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

static void test_one_request(void **state)
{
	struct sink s;
	struct tg_pipeline *p = new_pipe(&s);
	struct tg_pipeline_stats st;

	(void)state;
	feed_conn(p, 100, 7, 1, 40000, 1000);
	feed_data(p, 100, 7, 1, 0, TG_DIR_IN, req_items, 2000);
	feed_data(p, 100, 7, 1, 1, TG_DIR_OUT, resp_ok, 5000);
	feed_close(p, 100, 7, 1, 2, 6000);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.reqs[0].pid, 100);
	assert_int_equal(s.reqs[0].conn_id, 1);
	assert_string_equal(s.reqs[0].method, "GET");
	assert_string_equal(s.reqs[0].target, "/items/42?token=");
	assert_string_equal(s.reqs[0].route, "/items/{id}");
	assert_true(s.reqs[0].flags & TG_REQ_ROUTE_GUESSED);
	assert_string_equal(s.reqs[0].peer, "127.0.0.1:40000");
	assert_int_equal(s.reqs[0].status, 200);
	assert_int_equal(s.reqs[0].start_ns, 2000);
	assert_int_equal(s.reqs[0].end_ns, 5000);
	assert_int_equal(s.reqs[0].req_bytes, strlen(req_items));
	assert_int_equal(s.reqs[0].resp_bytes, strlen(resp_ok));
	tg_pipeline__stats(p, &st);
	assert_int_equal(st.requests, 1);
	assert_int_equal(st.gaps, 0);
	assert_int_equal(st.open_conns, 0);
	tg_pipeline__free(p);
}

static void test_routes_event(void **state)
{
	struct sink s;
	struct tg_pipeline *p = new_pipe(&s);
	size_t size;
	struct tg_ev_text *t = evgen_text(TG_EV_ROUTES, 100, "GET /items/{item_id}\n", &size);

	(void)state;
	assert_int_equal(tg_pipeline__event(p, t, size), 0);
	free(t);
	assert_non_null(tg_pipeline__routes(p, 100));
	assert_null(tg_pipeline__routes(p, 101));
	feed_conn(p, 100, 7, 1, 40000, 1000);
	feed_data(p, 100, 7, 1, 0, TG_DIR_IN, req_items, 2000);
	feed_data(p, 100, 7, 1, 1, TG_DIR_OUT, resp_ok, 5000);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.reqs[0].route, "/items/{item_id}");
	assert_false(s.reqs[0].flags & TG_REQ_ROUTE_GUESSED);
	tg_pipeline__finish(p, 9000);
	tg_pipeline__free(p);
}

/* Requests that repeat a method and path get the same route as the first
 * (remembered), a path of another method or pid its own, and a change of a
 * pid's routes applies to the next request at once. */
static void test_routes_remembered_until_changed(void **state)
{
	static const char *const reqs[] = {
	    "GET /items/42 HTTP/1.1\r\n\r\n",	 "GET /items/42 HTTP/1.1\r\n\r\n",
	    "DELETE /items/42 HTTP/1.1\r\n\r\n", "GET /items/42?x=1 HTTP/1.1\r\n\r\n",
	    "GET /users/7 HTTP/1.1\r\n\r\n",	 "GET /users/7 HTTP/1.1\r\n\r\n",
	};
	/* (a template of another method still names the path: route.h) */
	static const char *const want[] = {"/items/{item_id}", "/items/{item_id}",
					   "/items/{item_id}", "/items/{item_id}",
					   "/users/{id}",      "/users/{id}"};
	struct sink s;
	struct tg_pipeline *p = new_pipe(&s);
	uint32_t seq = 0;
	uint64_t ts = 2000;

	(void)state;
	assert_int_equal(tg_pipeline__set_routes(p, 100, "GET /items/{item_id}\n"), 0);
	feed_conn(p, 100, 7, 1, 40000, 1000);
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		feed_data(p, 100, 7, 1, seq++, TG_DIR_IN, reqs[i], ts += 1000);
		feed_data(p, 100, 7, 1, seq++, TG_DIR_OUT, resp_ok, ts += 1000);
		assert_int_equal(s.n, (int)i + 1);
		assert_string_equal(s.reqs[i].route, want[i]);
		assert_int_equal(!!(s.reqs[i].flags & TG_REQ_ROUTE_GUESSED),
				 !!strcmp(want[i], "/items/{item_id}"));
	}
	/* the app's routes change: the remembered guess goes */
	assert_int_equal(tg_pipeline__set_routes(p, 100, "GET /users/{user_id}\n"), 0);
	feed_data(p, 100, 7, 1, seq++, TG_DIR_IN, reqs[4], ts += 1000);
	feed_data(p, 100, 7, 1, seq++, TG_DIR_OUT, resp_ok, ts += 1000);
	assert_string_equal(s.reqs[s.n - 1].route, "/users/{user_id}");
	assert_false(s.reqs[s.n - 1].flags & TG_REQ_ROUTE_GUESSED);
	feed_data(p, 100, 7, 1, seq++, TG_DIR_IN, reqs[0], ts += 1000);
	feed_data(p, 100, 7, 1, seq++, TG_DIR_OUT, resp_ok, ts += 1000);
	assert_string_equal(s.reqs[s.n - 1].route, "/items/{id}"); /* no template for it now */
	assert_true(s.reqs[s.n - 1].flags & TG_REQ_ROUTE_GUESSED);
	tg_pipeline__finish(p, ts + 1000);
	tg_pipeline__free(p);
}

/* The same pid:fd announced again without a close in between: the old
 * connection's pending exchange is finished (incomplete), the new one is
 * fresh and does not inherit its state. */
static void test_fd_reuse_without_close(void **state)
{
	struct sink s;
	struct tg_pipeline *p = new_pipe(&s);

	(void)state;
	feed_conn(p, 100, 7, 1, 40000, 1000);
	feed_data(p, 100, 7, 1, 0, TG_DIR_IN, "GET /a HTTP/1.1\r\n\r\n", 2000);
	feed_conn(p, 100, 7, 2, 40001, 3000);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.reqs[0].target, "/a");
	assert_true(s.reqs[0].flags & TG_REQ_INCOMPLETE);
	feed_data(p, 100, 7, 2, 0, TG_DIR_OUT, resp_ok, 3500); /* a response with no request */
	feed_data(p, 100, 7, 2, 1, TG_DIR_IN, "GET /b HTTP/1.1\r\n\r\n", 4000);
	feed_data(p, 100, 7, 2, 2, TG_DIR_OUT, resp_ok, 5000);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.reqs[1].target, "/b");
	assert_int_equal(s.reqs[1].conn_id, 2);
	assert_string_equal(s.reqs[1].peer, "127.0.0.1:40001");
	assert_int_equal(s.reqs[1].status, 200);
	assert_false(s.reqs[1].flags & TG_REQ_INCOMPLETE);
	tg_pipeline__free(p);
}

/* A sequence gap (events dropped by a full ring buffer) marks the exchange in
 * progress; the next request parses normally. */
static void test_lost_events(void **state)
{
	struct sink s;
	struct tg_pipeline *p = new_pipe(&s);
	struct tg_pipeline_stats st;

	(void)state;
	feed_conn(p, 100, 7, 1, 40000, 1000);
	feed_data(p, 100, 7, 1, 0, TG_DIR_IN, "GET /a HTTP/1.1\r\n\r\n", 2000);
	/* seq 1 (the response) was lost */
	feed_data(p, 100, 7, 1, 2, TG_DIR_IN, "GET /b HTTP/1.1\r\n\r\n", 4000);
	feed_data(p, 100, 7, 1, 3, TG_DIR_OUT, resp_ok, 5000);
	feed_close(p, 100, 7, 1, 4, 6000);
	tg_pipeline__stats(p, &st);
	assert_int_equal(st.gaps, 1);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.reqs[0].target, "/a");
	assert_true(s.reqs[0].flags & TG_REQ_LOST_EVENTS);
	assert_string_equal(s.reqs[1].target, "/b");
	assert_int_equal(s.reqs[1].status, 200);
	assert_false(s.reqs[1].flags & TG_REQ_LOST_EVENTS);
	tg_pipeline__free(p);
}

/* A whole exchange lost between two others (a full ring buffer): nothing was
 * in progress to flag, so the next request carries the loss. */
static void test_whole_exchange_lost(void **state)
{
	struct sink s;
	struct tg_pipeline *p = new_pipe(&s);

	(void)state;
	feed_conn(p, 100, 7, 1, 40000, 1000);
	feed_data(p, 100, 7, 1, 0, TG_DIR_IN, "GET /a HTTP/1.1\r\n\r\n", 2000);
	feed_data(p, 100, 7, 1, 1, TG_DIR_OUT, resp_ok, 3000);
	/* seq 2 and 3 (GET /lost and its response) were dropped */
	feed_data(p, 100, 7, 1, 4, TG_DIR_IN, "GET /b HTTP/1.1\r\n\r\n", 6000);
	feed_data(p, 100, 7, 1, 5, TG_DIR_OUT, resp_ok, 7000);
	assert_int_equal(s.n, 2);
	assert_false(s.reqs[0].flags & TG_REQ_LOST_EVENTS);
	assert_string_equal(s.reqs[1].target, "/b");
	assert_int_equal(s.reqs[1].status, 200);
	assert_true(s.reqs[1].flags & TG_REQ_LOST_EVENTS);
	tg_pipeline__free(p);
}

static void test_lost_before_close(void **state)
{
	struct sink s;
	struct tg_pipeline *p = new_pipe(&s);
	struct tg_pipeline_stats st;

	(void)state;
	feed_conn(p, 100, 7, 1, 40000, 1000);
	feed_data(p, 100, 7, 1, 0, TG_DIR_IN, "GET /a HTTP/1.1\r\n\r\n", 2000);
	feed_close(p, 100, 7, 1, 3, 6000);
	tg_pipeline__stats(p, &st);
	assert_int_equal(st.gaps, 1);
	assert_int_equal(s.n, 1);
	assert_true(s.reqs[0].flags & TG_REQ_LOST_EVENTS);
	tg_pipeline__free(p);
}

static void test_ignored_peer(void **state)
{
	struct sink s;
	struct tg_pipeline *p = new_pipe(&s);
	size_t size;
	struct tg_ev_text *t = evgen_text(TG_EV_IGNORE_PEER, 100, "40000", &size);

	(void)state;
	assert_int_equal(tg_pipeline__event(p, t, size), 0);
	free(t);
	feed_conn(p, 100, 7, 1, 40000, 1000);
	feed_data(p, 100, 7, 1, 0, TG_DIR_IN, "GET /openapi.json HTTP/1.0\r\n\r\n", 2000);
	feed_data(p, 100, 7, 1, 1, TG_DIR_OUT, resp_ok, 3000);
	feed_close(p, 100, 7, 1, 2, 4000);
	assert_int_equal(s.n, 0);
	feed_conn(p, 100, 8, 2, 40001, 5000);
	feed_data(p, 100, 8, 2, 0, TG_DIR_IN, "GET /x HTTP/1.1\r\n\r\n", 6000);
	feed_data(p, 100, 8, 2, 1, TG_DIR_OUT, resp_ok, 7000);
	assert_int_equal(s.n, 1);
	tg_pipeline__free(p);
}

static void test_process_exit_closes(void **state)
{
	struct sink s;
	struct tg_pipeline *p = new_pipe(&s);
	struct tg_pipeline_stats st;
	struct tg_ev_proc e;

	(void)state;
	feed_conn(p, 100, 7, 1, 40000, 1000);
	feed_conn(p, 200, 7, 2, 40001, 1000);
	feed_data(p, 100, 7, 1, 0, TG_DIR_IN, "GET /a HTTP/1.1\r\n\r\n", 2000);
	memset(&e, 0, sizeof(e));
	e.hdr.type = TG_EV_PROC;
	e.hdr.size = sizeof(e);
	e.hdr.pid = 100;
	e.hdr.ts_ns = 3000;
	e.kind = TG_PROC_EXIT;
	assert_int_equal(tg_pipeline__event(p, &e, sizeof(e)), 0);
	assert_int_equal(s.n, 1);
	assert_true(s.reqs[0].flags & TG_REQ_INCOMPLETE);
	assert_int_equal(s.metas, 1);
	tg_pipeline__stats(p, &st);
	assert_int_equal(st.open_conns, 1);
	tg_pipeline__free(p);
}

static void test_unknown_and_malformed(void **state)
{
	struct sink s;
	struct tg_pipeline *p = new_pipe(&s);
	struct tg_pipeline_stats st;
	struct tg_ev_data *d;
	size_t size;
	uint8_t junk[64];

	(void)state;
	feed_data(p, 100, 7, 99, 0, TG_DIR_IN, "GET / HTTP/1.1\r\n\r\n", 1000);
	d = evgen_data(100, 7, 99, 0, TG_DIR_IN, "GET / HTTP/1.1\r\n\r\n", 18, 1024, 1, &size);
	d->head_len = 60000; /* claims more bytes than the event holds */
	assert_int_equal(tg_pipeline__event(p, d, size), -EBADMSG);
	d->head_len = 18;
	d->dir = 9;
	assert_int_equal(tg_pipeline__event(p, d, size), -EBADMSG);
	d->dir = TG_DIR_IN;
	assert_int_equal(tg_pipeline__event(p, d, size - 8), -EBADMSG); /* size != hdr.size */
	free(d);
	memset(junk, 0xff, sizeof(junk));
	assert_int_equal(tg_pipeline__event(p, junk, sizeof(junk)), -EBADMSG);
	assert_int_equal(tg_pipeline__event(p, junk, 4), -EBADMSG);
	tg_pipeline__stats(p, &st);
	assert_int_equal(st.unknown_conn, 1);
	assert_int_equal(st.malformed, 5);
	assert_int_equal(s.n, 0);
	tg_pipeline__free(p);
}

static void test_finish_emits_pending(void **state)
{
	struct sink s;
	struct tg_pipeline *p = new_pipe(&s);

	(void)state;
	feed_conn(p, 100, 7, 1, 40000, 1000);
	feed_data(p, 100, 7, 1, 0, TG_DIR_IN,
		  "POST /upload HTTP/1.1\r\ncontent-length: 10\r\n\r\n01234", 2000);
	tg_pipeline__finish(p, 3000);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.reqs[0].method, "POST");
	assert_true(s.reqs[0].flags & TG_REQ_INCOMPLETE);
	tg_pipeline__free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_request),
	    cmocka_unit_test(test_routes_event),
	    cmocka_unit_test(test_routes_remembered_until_changed),
	    cmocka_unit_test(test_fd_reuse_without_close),
	    cmocka_unit_test(test_lost_events),
	    cmocka_unit_test(test_whole_exchange_lost),
	    cmocka_unit_test(test_lost_before_close),
	    cmocka_unit_test(test_ignored_peer),
	    cmocka_unit_test(test_process_exit_closes),
	    cmocka_unit_test(test_unknown_and_malformed),
	    cmocka_unit_test(test_finish_emits_pending),
	};

	return cmocka_run_group_tests_name("pipeline", tests, NULL, NULL);
}
