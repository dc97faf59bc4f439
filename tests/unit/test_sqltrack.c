/* SPDX-License-Identifier: MIT */
/*
 * SQL per request through the pipeline: PostgreSQL client connections
 * reassembled, statements normalised and attributed to the request whose
 * task (key) sent them; requests get sql_count/sql_ns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "evgen.h"
#include "pgwire.h"
#include "pipeline.h"
#include "sqlnorm.h"
#include "sqltrack.h"

#define PID 100
#define KEY 0xabc000ULL
#define OTHER_KEY 0xdef000ULL

struct sink {
	struct tg_request reqs[8];
	size_t nreqs;
	struct tg_query queries[8];
	char texts[8][TG_PG_TEXT_MAX]; /* their statements (q->statement lives with q) */
	size_t nqueries;
};

static struct sink sink;

static int64_t on_request(void *ctx, const struct tg_request *req)
{
	struct sink *s = ctx;

	s->reqs[s->nreqs] = *req;
	return (int64_t)++s->nreqs * 10;
}

static void on_query(void *ctx, const struct tg_query *q)
{
	struct sink *s = ctx;

	if (s->nqueries < 8) {
		snprintf(s->texts[s->nqueries], sizeof(s->texts[0]), "%s", q->statement);
		s->queries[s->nqueries] = *q;
		s->queries[s->nqueries].statement = s->texts[s->nqueries];
		s->nqueries++;
	}
}

static struct tg_pipeline *new_pipe(bool keep_values, uint16_t port)
{
	struct tg_pipeline_cfg cfg = {.on_request = on_request,
				      .on_query = on_query,
				      .keep_sql_values = keep_values,
				      .ctx = &sink};

	memset(&sink, 0, sizeof(sink));
	if (port) {
		cfg.pg_ports[0] = port;
		cfg.npg_ports = 1;
	}
	return tg_pipeline__new(&cfg);
}

/* Append a typed message (type, body) to buf at *n. */
static void msg(uint8_t *buf, size_t *n, char type, const void *body, uint32_t len)
{
	uint32_t be = htonl(len + 4);

	buf[(*n)++] = (uint8_t)type;
	memcpy(buf + *n, &be, 4);
	*n += 4;
	memcpy(buf + *n, body, len);
	*n += len;
}

static void feed_data(struct tg_pipeline *p, uint64_t conn, uint32_t seq, uint8_t dir,
		      const void *bytes, size_t len, uint64_t ts, uint64_t key)
{
	size_t size;
	struct tg_ev_data *e =
	    evgen_data(PID, (int32_t)conn, conn, seq, dir, bytes, len, TG_HEAD_MAX, ts, &size);

	e->task_key = dir == TG_DIR_OUT ? key : 0;
	assert_int_equal(tg_pipeline__event(p, e, size), 0);
	free(e);
}

static void open_conn(struct tg_pipeline *p, uint64_t conn, uint8_t role, uint16_t rport,
		      uint64_t ts)
{
	struct tg_ev_conn c = evgen_conn(PID, (int32_t)conn, conn, rport, ts, TG_ORIGIN_CONNECT);

	c.role = role;
	assert_int_equal(tg_pipeline__event(p, &c, sizeof(c)), 0);
}

/* A simple query on conn at t0 (write) answered at t1 (read) with one row,
 * or with an ErrorResponse of sqlstate when it is not NULL. */
static void query(struct tg_pipeline *p, uint64_t conn, uint32_t *seq, const char *sql, uint64_t t0,
		  uint64_t t1, uint64_t key, const char *sqlstate)
{
	uint8_t buf[512];
	size_t n = 0;

	msg(buf, &n, 'Q', sql, (uint32_t)strlen(sql) + 1);
	feed_data(p, conn, (*seq)++, TG_DIR_OUT, buf, n, t0, key);
	n = 0;
	if (sqlstate) {
		char body[128];
		size_t b = 0;

		b += (size_t)sprintf(body + b, "SERROR") + 1;
		b += (size_t)sprintf(body + b, "C%s", sqlstate) + 1;
		b += (size_t)sprintf(body + b, "Mduplicate key") + 1;
		body[b++] = '\0';
		msg(buf, &n, 'E', body, (uint32_t)b);
	} else {
		static const uint8_t row[] = {0, 1, 0, 0, 0, 1, '7'};

		msg(buf, &n, 'D', row, sizeof(row));
		msg(buf, &n, 'C', "SELECT 1", 9);
	}
	msg(buf, &n, 'Z', "I", 1);
	feed_data(p, conn, (*seq)++, TG_DIR_IN, buf, n, t1, 0);
}

static void startup(struct tg_pipeline *p, uint64_t conn, uint32_t *seq, uint64_t ts)
{
	static const char params[] = "user\0app\0database\0shop\0";
	uint8_t buf[64];
	uint32_t len = htonl(8 + sizeof(params)), ver = htonl(196608);
	size_t n = 0;

	memcpy(buf, &len, 4);
	memcpy(buf + 4, &ver, 4);
	memcpy(buf + 8, params, sizeof(params));
	feed_data(p, conn, (*seq)++, TG_DIR_OUT, buf, 8 + sizeof(params), ts, 0);
	n = 0;
	msg(buf, &n, 'R', "\0\0\0\0", 4);
	msg(buf, &n, 'Z', "I", 1);
	feed_data(p, conn, (*seq)++, TG_DIR_IN, buf, n, ts + 10, 0);
}

/* An HTTP exchange on server conn: request read at t0, response written at
 * t1 by task key. */
static void http(struct tg_pipeline *p, uint64_t conn, uint32_t *seq, uint64_t t0, uint64_t t1,
		 uint64_t key)
{
	static const char req[] = "GET /items/7 HTTP/1.1\r\nHost: a\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

	feed_data(p, conn, (*seq)++, TG_DIR_IN, req, sizeof(req) - 1, t0, 0);
	feed_data(p, conn, (*seq)++, TG_DIR_OUT, resp, sizeof(resp) - 1, t1, key);
}

static void test_unrelated_port_ignored(void **state)
{
	struct tg_pipeline *p = new_pipe(false, 6543);
	uint32_t pseq = 0;

	(void)state;
	open_conn(p, 2, TG_ROLE_CLIENT, 5432, 1);
	startup(p, 2, &pseq, 5);
	query(p, 2, &pseq, "SELECT 1", 20, 30, KEY, NULL);
	tg_pipeline__finish(p, 1000);
	assert_int_equal(sink.nqueries, 0);
	tg_pipeline__free(p);
}

static void test_other_task_not_claimed(void **state)
{
	struct tg_pipeline *p = new_pipe(false, 0);
	uint32_t pseq = 0, hseq = 0;

	(void)state;
	open_conn(p, 1, TG_ROLE_SERVER, 40000, 1);
	open_conn(p, 2, TG_ROLE_CLIENT, 5432, 1);
	startup(p, 2, &pseq, 5);
	query(p, 2, &pseq, "SELECT 1", 200, 300, OTHER_KEY, NULL);
	query(p, 2, &pseq, "SELECT 2", 50, 60, KEY, NULL); /* same key, before the request */
	http(p, 1, &hseq, 100, 500, KEY);
	assert_int_equal(sink.nreqs, 1);
	assert_int_equal(sink.reqs[0].sql_count, 0);
	assert_int_equal(sink.reqs[0].sql_ns, 0);
	assert_int_equal(sink.nqueries, 0); /* still held */
	tg_pipeline__finish(p, 1000);
	assert_int_equal(sink.nqueries, 2);
	assert_int_equal(sink.queries[0].request_id, 0);
	assert_int_equal(sink.queries[1].request_id, 0);
	tg_pipeline__free(p);
}

static void test_attributed_and_normalised(void **state)
{
	struct tg_pipeline *p = new_pipe(false, 0);
	uint32_t pseq = 0, hseq = 0;
	const struct tg_query *q;

	(void)state;
	open_conn(p, 1, TG_ROLE_SERVER, 40000, 1);
	open_conn(p, 2, TG_ROLE_CLIENT, 5432, 1);
	startup(p, 2, &pseq, 5);
	query(p, 2, &pseq, "SELECT name FROM items WHERE id = 42", 200, 300, KEY, NULL);
	query(p, 2, &pseq, "INSERT INTO t VALUES (1)", 310, 350, KEY, "23505");
	http(p, 1, &hseq, 100, 500, KEY);
	assert_int_equal(sink.nreqs, 1);
	assert_int_equal(sink.reqs[0].sql_count, 2);
	assert_int_equal(sink.reqs[0].sql_ns, 100 + 40);
	assert_int_equal(sink.nqueries, 2);
	/* claimed statements come out in no particular order */
	q = &sink.queries[sink.queries[0].statement[0] == 'S' ? 0 : 1];
	assert_int_equal(q->request_id, 10);
	assert_string_equal(q->statement, "SELECT name FROM items WHERE id = $1");
	assert_int_equal(q->rows, 1);
	assert_int_equal(q->start_ns, 200);
	assert_int_equal(q->end_ns, 300);
	assert_int_equal(q->first_row_ns, 300);
	assert_string_equal(q->command, "SELECT");
	assert_string_equal(q->db_user, "app");
	assert_string_equal(q->db_name, "shop");
	assert_int_equal(q->conn_id, 2);
	assert_int_not_equal(q->fingerprint, 0);
	q = &sink.queries[sink.queries[0].statement[0] == 'S' ? 1 : 0];
	assert_int_equal(q->request_id, 10);
	assert_string_equal(q->statement, "INSERT INTO t VALUES ($1)");
	assert_string_equal(q->sqlstate, "23505");
	assert_true(q->flags & TG_PG_ERROR);
	assert_non_null(strstr(q->error, "duplicate key"));
	tg_pipeline__finish(p, 1000);
	assert_int_equal(sink.nqueries, 2);
	tg_pipeline__free(p);
}

static void test_keep_values_and_same_fingerprint(void **state)
{
	struct tg_pipeline *p = new_pipe(true, 0);
	uint32_t pseq = 0;

	(void)state;
	open_conn(p, 2, TG_ROLE_CLIENT, 5432, 1);
	startup(p, 2, &pseq, 5);
	query(p, 2, &pseq, "SELECT * FROM t WHERE id = 1", 20, 30, 0, NULL);
	query(p, 2, &pseq, "SELECT * FROM t WHERE id = 2", 40, 50, 0, NULL);
	query(p, 2, &pseq, "SELECT * FROM t WHERE id = 1", 60, 70, 0, NULL);
	/* key 0: resolved at once, no request */
	assert_int_equal(sink.nqueries, 3);
	assert_string_equal(sink.queries[0].statement, "SELECT * FROM t WHERE id = 1");
	assert_string_equal(sink.queries[1].statement, "SELECT * FROM t WHERE id = 2");
	assert_int_equal(sink.queries[0].fingerprint, sink.queries[1].fingerprint);
	assert_int_equal(sink.queries[0].fingerprint, sink.queries[2].fingerprint);
	assert_int_equal(sink.queries[2].request_id, 0);
	tg_pipeline__finish(p, 1000);
	tg_pipeline__free(p);
}

static void test_late_statement_finds_request(void **state)
{
	struct tg_pipeline *p = new_pipe(false, 0);
	uint32_t pseq = 0, hseq = 0;

	(void)state;
	open_conn(p, 1, TG_ROLE_SERVER, 40000, 1);
	open_conn(p, 2, TG_ROLE_CLIENT, 5432, 1);
	startup(p, 2, &pseq, 5);
	http(p, 1, &hseq, 100, 500, KEY);
	/* delivered after the request (ring buffer order across CPUs) */
	query(p, 2, &pseq, "SELECT 1", 200, 300, KEY, NULL);
	assert_int_equal(sink.nqueries, 1);
	assert_int_equal(sink.queries[0].request_id, 10);
	tg_pipeline__finish(p, 1000);
	tg_pipeline__free(p);
}

static void test_close_pending_incomplete(void **state)
{
	struct tg_pipeline *p = new_pipe(false, 0);
	uint32_t pseq = 0;
	uint8_t buf[64];
	size_t n = 0;
	struct tg_ev_close c;

	(void)state;
	open_conn(p, 2, TG_ROLE_CLIENT, 5432, 1);
	startup(p, 2, &pseq, 5);
	msg(buf, &n, 'Q', "SELECT pg_sleep(9)", 19);
	feed_data(p, 2, pseq++, TG_DIR_OUT, buf, n, 20, KEY);
	c = evgen_close(PID, 2, 2, pseq, 90);
	assert_int_equal(tg_pipeline__event(p, &c, sizeof(c)), 0);
	tg_pipeline__finish(p, 1000);
	assert_int_equal(sink.nqueries, 1);
	assert_true(sink.queries[0].flags & TG_PG_INCOMPLETE);
	assert_int_equal(sink.queries[0].end_ns, 90);
	tg_pipeline__free(p);
}

static void test_shared_key_attributes_nothing(void **state)
{
	struct tg_pipeline *p = new_pipe(false, 0);
	uint32_t pseq = 0, s1 = 0, s2 = 0;
	uint8_t a[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
	uint8_t ok[] = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

	(void)state;
	open_conn(p, 1, TG_ROLE_SERVER, 40000, 1);
	open_conn(p, 3, TG_ROLE_SERVER, 40001, 1);
	open_conn(p, 2, TG_ROLE_CLIENT, 5432, 1);
	startup(p, 2, &pseq, 5);
	/* two overlapping requests answered with the same key (uvloop) */
	feed_data(p, 1, s1++, TG_DIR_IN, a, sizeof(a) - 1, 100, 0);
	feed_data(p, 3, s2++, TG_DIR_IN, a, sizeof(a) - 1, 110, 0);
	feed_data(p, 1, s1++, TG_DIR_OUT, ok, sizeof(ok) - 1, 200, KEY);
	feed_data(p, 3, s2++, TG_DIR_OUT, ok, sizeof(ok) - 1, 210, KEY);
	query(p, 2, &pseq, "SELECT 1", 300, 310, KEY, NULL);
	assert_int_equal(sink.nqueries, 1); /* resolved at once */
	assert_int_equal(sink.queries[0].request_id, 0);
	http(p, 1, &s1, 290, 400, KEY);
	assert_int_equal(sink.nreqs, 3);
	assert_int_equal(sink.reqs[2].sql_count, 0);
	tg_pipeline__finish(p, 1000);
	tg_pipeline__free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unrelated_port_ignored),
	    cmocka_unit_test(test_other_task_not_claimed),
	    cmocka_unit_test(test_attributed_and_normalised),
	    cmocka_unit_test(test_keep_values_and_same_fingerprint),
	    cmocka_unit_test(test_late_statement_finds_request),
	    cmocka_unit_test(test_close_pending_incomplete),
	    cmocka_unit_test(test_shared_key_attributes_nothing),
	};

	int ret = cmocka_run_group_tests(tests, NULL, NULL);

	tg_sql__thread_exit();
	return ret;
}
