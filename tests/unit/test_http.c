/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the HTTP/1.x reassembler (user/http.c). Segments are made
 * from byte strings with a given capture size (head and tail bytes), so the
 * gaps are those the kernel side would leave.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
#include "httphead.h"
#include "timeglass/events.h"

#define MAXREC 32

struct fx {
	struct tg_http_conn *c;
	struct tg_request rec[MAXREC];
	int n;
	size_t head, tail; /* capture sizes */
};

static void on_emit(void *ctx, struct tg_request *r)
{
	struct fx *f = ctx;

	assert_true(f->n < MAXREC);
	f->rec[f->n++] = *r;
}

static struct fx *fx_new(bool keep_values)
{
	struct tg_http_cfg cfg = {.keep_query_values = keep_values};
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->c = tg_http__new(&cfg, on_emit, f);
	assert_non_null(f->c);
	f->head = 1024;
	f->tail = 16;
	return f;
}

static void fx_free(struct fx *f)
{
	tg_http__free(f->c);
	free(f);
}

static int setup(void **state)
{
	*state = fx_new(false);
	return 0;
}

/* Frees the fixture even when an assertion failed (no leak reports then). */
static int teardown(void **state)
{
	fx_free(*state);
	return 0;
}

/* Feed len bytes of data as one read/write, captured like the kernel would. */
static void seg(struct fx *f, int dir, uint64_t ts, const char *data, size_t len)
{
	struct tg_segment s = {
	    .ts_ns = ts,
	    .tid = dir == TG_DIR_IN ? 1000 + (uint32_t)ts : 2000 + (uint32_t)ts,
	    .dir = dir,
	    .len = len,
	    .head = (const uint8_t *)data,
	    .head_len = len < f->head ? len : f->head,
	};

	if (len > s.head_len) {
		s.tail_len = len < f->tail ? len : f->tail;
		s.tail = (const uint8_t *)data + len - s.tail_len;
	}
	tg_http__feed(f->c, &s);
}

static void in(struct fx *f, uint64_t ts, const char *s)
{
	seg(f, TG_DIR_IN, ts, s, strlen(s));
}

static void out(struct fx *f, uint64_t ts, const char *s)
{
	seg(f, TG_DIR_OUT, ts, s, strlen(s));
}

#define GET_A "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
#define RESP_OK "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"

/* ---- edge cases first ---- */

static void test_null_and_empty(void **state)
{
	struct fx *f = *state;
	struct tg_segment s = {.dir = TG_DIR_IN, .len = 0};
	struct tg_segment bad = {.dir = TG_DIR_IN,
				 .len = 4,
				 .head = (const uint8_t *)"GET ",
				 .head_len = 400,
				 .tail = NULL,
				 .tail_len = 9};

	tg_http__free(NULL);
	tg_http__feed(NULL, &s);
	tg_http__feed(f->c, NULL);
	tg_http__gap(NULL);
	tg_http__close(NULL, 1);
	tg_http__set_preexisting(NULL);
	assert_false(tg_http__abandoned(NULL));
	tg_http__feed(f->c, &s);
	tg_http__feed(f->c, &bad); /* head_len > len is clamped */
	in(f, 2, "/ HTTP/1.1\r\n\r\n");
	out(f, 3, RESP_OK);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].method, "GET");
	assert_string_equal(f->rec[0].target, "/");
	tg_http__close(f->c, 9);
	assert_int_equal(f->n, 1);
}

static void test_simple_keepalive(void **state)
{
	struct fx *f = *state;

	in(f, 10, GET_A);
	assert_int_equal(f->n, 0);
	out(f, 20, RESP_OK);
	assert_int_equal(f->n, 1);
	in(f, 30, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
	out(f, 40, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(f->n, 2);
	assert_string_equal(f->rec[0].method, "GET");
	assert_string_equal(f->rec[0].target, "/a");
	assert_int_equal(f->rec[0].status, 200);
	assert_int_equal(f->rec[0].http_minor, 1);
	assert_int_equal(f->rec[0].flags, 0);
	assert_int_equal(f->rec[0].tid, 1010);
	assert_int_equal(f->rec[0].start_ns, 10);
	assert_int_equal(f->rec[0].first_resp_ns, 20);
	assert_int_equal(f->rec[0].end_ns, 20);
	assert_int_equal(f->rec[0].req_bytes, strlen(GET_A));
	assert_int_equal(f->rec[0].resp_bytes, strlen(RESP_OK));
	assert_string_equal(f->rec[1].target, "/b");
	assert_int_equal(f->rec[1].status, 404);
	assert_int_equal(f->rec[1].start_ns, 30);
	assert_int_equal(f->rec[1].end_ns, 40);
	assert_false(tg_http__abandoned(f->c));
	tg_http__close(f->c, 50);
	assert_int_equal(f->n, 2);
}

static void test_headers_split_three_reads(void **state)
{
	struct fx *f = *state;

	in(f, 1, "POST /items HTTP/1.1\r\nHo");
	in(f, 2, "st: x\r\nContent-Length: 3\r\n");
	in(f, 3, "\r\nabc");
	out(f, 4, RESP_OK);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].method, "POST");
	assert_string_equal(f->rec[0].target, "/items");
	assert_int_equal(f->rec[0].start_ns, 1);
	assert_int_equal(f->rec[0].tid, 1001);
	assert_int_equal(f->rec[0].req_bytes,
			 strlen("POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"));
	assert_int_equal(f->rec[0].flags, 0);
}

static void test_request_line_split_mid_token(void **state)
{
	struct fx *f = *state;

	in(f, 1, "GE");
	in(f, 2, "T /sp");
	in(f, 3, "lit?q=1 HT");
	in(f, 4, "TP/1.0\r\n\r\n");
	out(f, 5, "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx");
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].method, "GET");
	assert_string_equal(f->rec[0].target, "/split?q=");
	assert_int_equal(f->rec[0].http_minor, 0);
	assert_int_equal(f->rec[0].start_ns, 1);
	assert_int_equal(f->rec[0].req_bytes, strlen("GET /split?q=1 HTTP/1.0\r\n\r\n"));
}

static void test_pipelined(void **state)
{
	struct fx *f = *state;
	const char *req = "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\nHost: y\r\n\r\n"
			  "HEAD /3 HTTP/1.1\r\n\r\n";
	const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
			   "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
			   "2\r\nab\r\n0\r\n\r\n"
			   "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";

	in(f, 5, req);
	assert_int_equal(f->n, 0);
	out(f, 7, resp);
	assert_int_equal(f->n, 3);
	assert_string_equal(f->rec[0].target, "/1");
	assert_string_equal(f->rec[1].target, "/2");
	assert_string_equal(f->rec[2].target, "/3");
	assert_string_equal(f->rec[2].method, "HEAD");
	assert_int_equal(f->rec[0].status, 200);
	assert_int_equal(f->rec[1].status, 201);
	assert_int_equal(f->rec[2].status, 200);
	assert_int_equal(f->rec[0].req_bytes, 19);
	assert_int_equal(f->rec[1].req_bytes, 28);
	assert_int_equal(f->rec[2].req_bytes, 20);
	assert_int_equal(f->rec[0].req_bytes + f->rec[1].req_bytes + f->rec[2].req_bytes,
			 strlen(req));
	assert_int_equal(f->rec[0].resp_bytes, 41);
	assert_int_equal(f->rec[0].resp_bytes + f->rec[1].resp_bytes + f->rec[2].resp_bytes,
			 strlen(resp));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(f->rec[i].start_ns, 5);
		assert_int_equal(f->rec[i].first_resp_ns, 7);
		assert_int_equal(f->rec[i].end_ns, 7);
		assert_int_equal(f->rec[i].flags, 0);
	}
}

static void test_post_content_length_split(void **state)
{
	struct fx *f = *state;

	in(f, 1, "POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123");
	in(f, 2, "456");
	in(f, 3, "789GET /next HTTP/1.1\r\n\r\n");
	out(f, 4, RESP_OK);
	out(f, 5, RESP_OK);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->rec[0].req_bytes,
			 strlen("POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n") + 10);
	assert_string_equal(f->rec[1].target, "/next");
	assert_int_equal(f->rec[1].start_ns, 3);
	assert_int_equal(f->rec[1].req_bytes, strlen("GET /next HTTP/1.1\r\n\r\n"));
	assert_int_equal(f->rec[1].flags, 0);
}

static void test_post_chunked(void **state)
{
	struct fx *f = *state;
	const char *h = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";

	in(f, 1, h);
	in(f, 2, "4\r\nwiki\r\n");
	in(f, 3, "5;ext=1\r\npedia\r\n");
	in(f, 4, "0\r\nX-Trailer: 1\r\n\r\n");
	in(f, 5, "GET /after HTTP/1.1\r\n\r\n");
	out(f, 6, RESP_OK);
	out(f, 7, RESP_OK);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->rec[0].req_bytes,
			 strlen(h) +
			     strlen("4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n"));
	assert_string_equal(f->rec[1].target, "/after");
	assert_int_equal(f->rec[1].flags, 0);
}

static void test_request_body_larger_than_capture(void **state)
{
	struct fx *f = *state;
	const char *h = "PUT /big HTTP/1.1\r\nContent-Length: 5000\r\n\r\n";
	size_t hl = strlen(h);
	char *buf = malloc(hl + 5000 + 64);

	assert_non_null(buf);
	memcpy(buf, h, hl);
	memset(buf + hl, 'z', 5000);
	seg(f, TG_DIR_IN, 1, buf, hl + 3000);
	seg(f, TG_DIR_IN, 2, buf + hl + 3000, 2000);
	in(f, 3, "GET /next HTTP/1.1\r\n\r\n");
	out(f, 4, RESP_OK);
	out(f, 5, RESP_OK);
	assert_int_equal(f->n, 2);
	assert_string_equal(f->rec[0].method, "PUT");
	assert_int_equal(f->rec[0].req_bytes, hl + 5000);
	assert_int_equal(f->rec[0].flags, 0);
	assert_string_equal(f->rec[1].target, "/next");
	assert_int_equal(f->rec[1].flags, 0);
	free(buf);
}

static void test_response_content_length_two_writes(void **state)
{
	struct fx *f = *state;

	in(f, 1, GET_A);
	out(f, 5, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234");
	assert_int_equal(f->n, 0);
	out(f, 9, "56789");
	assert_int_equal(f->n, 1);
	assert_int_equal(f->rec[0].first_resp_ns, 5);
	assert_int_equal(f->rec[0].end_ns, 9);
	assert_int_equal(f->rec[0].resp_bytes,
			 strlen("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n") + 10);
}

static void test_chunked_response_visible(void **state)
{
	struct fx *f = *state;
	const char *h = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

	in(f, 1, GET_A);
	out(f, 2, h);
	out(f, 3, "5\r\nhello\r\n");
	out(f, 4, "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n");
	assert_int_equal(f->n, 0);
	out(f, 6, "0\r\n\r\n");
	assert_int_equal(f->n, 1);
	assert_int_equal(f->rec[0].first_resp_ns, 2);
	assert_int_equal(f->rec[0].end_ns, 6);
	assert_int_equal(f->rec[0].resp_bytes, strlen(h) + 10 + 32 + 5);
	assert_int_equal(f->rec[0].flags, 0);
}

static void test_chunked_response_sizes_in_gap(void **state)
{
	struct fx *f = *state;
	char body[4096];
	size_t n = 0;

	f->head = 64;
	/* several chunks in one write: the later size lines are not captured */
	for (int i = 0; i < 20; i++)
		n += (size_t)sprintf(body + n, "64\r\n%0100d\r\n", i);
	in(f, 1, GET_A);
	out(f, 2, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	seg(f, TG_DIR_OUT, 3, body, n); /* no terminator yet */
	assert_int_equal(f->n, 0);
	n += (size_t)sprintf(body + n, "0\r\n\r\n");
	seg(f, TG_DIR_OUT, 4, body, n); /* the terminator is in the captured tail */
	assert_int_equal(f->n, 1);
	assert_int_equal(f->rec[0].end_ns, 4);
	assert_int_equal(f->rec[0].status, 200);
	assert_int_equal(f->rec[0].flags, 0);
	assert_int_equal(f->rec[0].resp_bytes,
			 strlen("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") + 2 * n -
			     5);
}

static void test_http10_until_close(void **state)
{
	struct fx *f = *state;

	in(f, 1, "GET /old HTTP/1.0\r\n\r\n");
	out(f, 2, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nsome");
	out(f, 3, "more");
	assert_int_equal(f->n, 0);
	tg_http__close(f->c, 9);
	assert_int_equal(f->n, 1);
	assert_int_equal(f->rec[0].status, 200);
	assert_int_equal(f->rec[0].http_minor, 0);
	assert_int_equal(f->rec[0].end_ns, 3);
	assert_int_equal(f->rec[0].flags, 0);
	assert_int_equal(f->rec[0].resp_bytes,
			 strlen("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nsomemore"));
}

static void test_head_no_body(void **state)
{
	struct fx *f = *state;

	in(f, 1, "HEAD /h HTTP/1.1\r\n\r\n");
	out(f, 2, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
	assert_int_equal(f->n, 1);
	assert_int_equal(f->rec[0].end_ns, 2);
	in(f, 3, GET_A);
	out(f, 4, RESP_OK);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->rec[1].status, 200);
	assert_int_equal(f->rec[1].flags, 0);
}

static void test_204_304(void **state)
{
	struct fx *f = *state;

	in(f, 1, "DELETE /d HTTP/1.1\r\n\r\n");
	out(f, 2, "HTTP/1.1 204 No Content\r\n\r\n");
	assert_int_equal(f->n, 1);
	in(f, 3, "GET /cached HTTP/1.1\r\nIf-None-Match: x\r\n\r\n");
	out(f, 4, "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n");
	assert_int_equal(f->n, 2);
	in(f, 5, GET_A);
	out(f, 6, RESP_OK);
	assert_int_equal(f->n, 3);
	assert_int_equal(f->rec[0].status, 204);
	assert_int_equal(f->rec[1].status, 304);
	assert_int_equal(f->rec[1].end_ns, 4);
	assert_int_equal(f->rec[2].status, 200);
	assert_int_equal(f->rec[2].flags, 0);
}

static void test_100_continue(void **state)
{
	struct fx *f = *state;
	const char *h = "POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
	const char *cont = "HTTP/1.1 100 Continue\r\n\r\n";

	in(f, 1, h);
	out(f, 2, cont);
	assert_int_equal(f->n, 0);
	in(f, 3, "data");
	out(f, 4, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(f->n, 1);
	assert_int_equal(f->rec[0].status, 201);
	assert_int_equal(f->rec[0].flags, TG_REQ_CONTINUE);
	assert_int_equal(f->rec[0].first_resp_ns, 2);
	assert_int_equal(f->rec[0].end_ns, 4);
	assert_int_equal(f->rec[0].req_bytes, strlen(h) + 4);
	assert_int_equal(f->rec[0].resp_bytes,
			 strlen(cont) +
			     strlen("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"));
}

static void test_101_upgrade(void **state)
{
	struct fx *f = *state;

	in(f, 1, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
	out(f, 2,
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\n\r\n");
	assert_int_equal(f->n, 1);
	assert_true(tg_http__abandoned(f->c));
	assert_int_equal(f->rec[0].status, 101);
	assert_int_equal(f->rec[0].flags, TG_REQ_UPGRADED);
	assert_int_equal(f->rec[0].end_ns, 2);
	in(f, 3, "\x81\x85garbage");
	in(f, 4, GET_A);
	out(f, 5, RESP_OK);
	tg_http__gap(f->c);
	tg_http__close(f->c, 6);
	assert_int_equal(f->n, 1);
}

static void test_http2_preface(void **state)
{
	struct fx *f = *state;
	static const char pre[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04\0\0\0\0\0";

	seg(f, TG_DIR_IN, 7, pre, sizeof(pre) - 1);
	assert_int_equal(f->n, 1);
	assert_true(tg_http__abandoned(f->c));
	assert_string_equal(f->rec[0].method, "PRI");
	assert_int_equal(f->rec[0].flags, TG_REQ_HTTP2);
	assert_int_equal(f->rec[0].http_minor, 0);
	assert_int_equal(f->rec[0].start_ns, 7);
	assert_int_equal(f->rec[0].req_bytes, sizeof(pre) - 1);
	out(f, 8, "\0\0\0\x04\0\0\0\0\0");
	tg_http__close(f->c, 9);
	assert_int_equal(f->n, 1);
}

static void test_garbage_then_request(void **state)
{
	struct fx *f = *state;

	in(f, 1, "\x16\x03\x01\x02\x00 garbage");
	in(f, 2, "more garbage GET / HTTP/1.1\r\n\r\n");
	out(f, 3, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"); /* orphan: skipped */
	assert_int_equal(f->n, 0);
	in(f, 4, GET_A);
	out(f, 5, RESP_OK);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].target, "/a");
	assert_int_equal(f->rec[0].flags, TG_REQ_RESYNC);
	assert_int_equal(f->rec[0].status, 200);
	assert_int_equal(f->rec[0].start_ns, 4);
}

static void test_gap_mid_response(void **state)
{
	struct fx *f = *state;

	in(f, 1, GET_A);
	out(f, 2, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst part");
	tg_http__gap(f->c);
	assert_int_equal(f->n, 1);
	assert_int_equal(f->rec[0].flags, TG_REQ_LOST_EVENTS);
	assert_int_equal(f->rec[0].status, 200);
	assert_int_equal(f->rec[0].end_ns, 2);
	out(f, 3, "rest of the body that we cannot frame");
	in(f, 4, "GET /after HTTP/1.1\r\n\r\n");
	out(f, 5, RESP_OK);
	assert_int_equal(f->n, 2);
	assert_string_equal(f->rec[1].target, "/after");
	assert_int_equal(f->rec[1].status, 200);
	assert_int_equal(f->rec[1].flags, TG_REQ_RESYNC);
	assert_int_equal(f->rec[1].resp_bytes, strlen(RESP_OK));
}

static void test_close_mid_response(void **state)
{
	struct fx *f = *state;

	in(f, 1, GET_A);
	in(f, 2, "GET /never HTTP/1.1\r\n\r\n");
	out(f, 3, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
	in(f, 4, "GET /half HTTP/1.1\r\nHos");
	tg_http__close(f->c, 5);
	assert_int_equal(f->n, 3);
	assert_int_equal(f->rec[0].flags, TG_REQ_INCOMPLETE);
	assert_int_equal(f->rec[0].status, 200);
	assert_int_equal(f->rec[0].end_ns, 3);
	assert_string_equal(f->rec[1].target, "/never");
	assert_int_equal(f->rec[1].flags, TG_REQ_INCOMPLETE);
	assert_int_equal(f->rec[1].status, 0);
	assert_int_equal(f->rec[1].first_resp_ns, 0);
	assert_string_equal(f->rec[2].target, "/half");
	assert_int_equal(f->rec[2].flags, TG_REQ_INCOMPLETE | TG_REQ_TRUNCATED);
}

static void test_preexisting_mid_response(void **state)
{
	struct fx *f = *state;

	tg_http__set_preexisting(f->c);
	out(f, 1, "tail of a body from before");
	out(f, 2, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"); /* orphan */
	out(f, 3, "cde");
	assert_int_equal(f->n, 0);
	in(f, 4, GET_A);
	out(f, 5, RESP_OK);
	assert_int_equal(f->n, 1);
	assert_int_equal(f->rec[0].flags, TG_REQ_PREEXISTING);
	assert_int_equal(f->rec[0].resp_bytes, strlen(RESP_OK));
	assert_int_equal(f->rec[0].first_resp_ns, 5);
}

static void test_preexisting_mid_request(void **state)
{
	struct fx *f = *state;

	tg_http__set_preexisting(f->c);
	in(f, 1, "dy of a request from before");
	out(f, 2, RESP_OK);
	in(f, 3, GET_A);
	out(f, 4, RESP_OK);
	assert_int_equal(f->n, 1);
	assert_int_equal(f->rec[0].flags, TG_REQ_PREEXISTING | TG_REQ_RESYNC);
	assert_int_equal(f->rec[0].start_ns, 3);
}

static void test_headers_too_long(void **state)
{
	struct fx *f = *state;
	char part[4096];
	size_t total = 0;

	f->head = 16384;
	in(f, 1, "GET /long?token=secret HTTP/1.1\r\n");
	total += strlen("GET /long?token=secret HTTP/1.1\r\n");
	memset(part, 'a', sizeof(part));
	memcpy(part, "X-Pad: ", 7);
	part[sizeof(part) - 2] = '\r';
	part[sizeof(part) - 1] = '\n';
	for (int i = 0; i < 5; i++) { /* 20 KiB of headers, all captured */
		seg(f, TG_DIR_IN, 2 + i, part, sizeof(part));
		total += sizeof(part);
	}
	in(f, 10, "\r\n");
	total += 2;
	out(f, 11, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].method, "GET");
	assert_string_equal(f->rec[0].target, "/long?token=");
	assert_int_equal(f->rec[0].flags, TG_REQ_TRUNCATED);
	assert_int_equal(f->rec[0].status, 431);
	assert_int_equal(f->rec[0].req_bytes, total);
	assert_int_equal(f->rec[0].start_ns, 1);
	in(f, 12, GET_A);
	out(f, 13, RESP_OK);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->rec[1].flags, 0);
}

static void test_headers_cut_by_capture(void **state)
{
	struct fx *f = *state;
	char req[3000];
	int n;

	f->head = 256;
	memset(req, 0, sizeof(req));
	n = sprintf(req, "GET /cookie HTTP/1.1\r\nCookie: ");
	memset(req + n, 'c', 2500);
	strcpy(req + n + 2500, "\r\n\r\n");
	in(f, 1, req);
	out(f, 2, RESP_OK);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].target, "/cookie");
	assert_int_equal(f->rec[0].flags, TG_REQ_TRUNCATED);
	assert_int_equal(f->rec[0].req_bytes, strlen(req));
	assert_int_equal(f->rec[0].http_minor, 1);
	assert_int_equal(f->rec[0].status, 200);
}

static void test_target_cut_by_capture(void **state)
{
	struct fx *f = *state;
	char req[300];

	f->head = 32;
	memset(req, 0, sizeof(req));
	strcpy(req, "GET /very/long/path/");
	memset(req + strlen(req), 'p', 200);
	strcat(req, "?k=v HTTP/1.1\r\n\r\n");
	in(f, 1, req);
	out(f, 2, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz");
	out(f, 3, "zz");
	tg_http__close(f->c, 4);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].target, "/very/long/path/pppppppppppp");
	assert_int_equal(f->rec[0].flags, TG_REQ_TRUNCATED);
	assert_int_equal(f->rec[0].req_bytes, strlen(req));
	assert_int_equal(f->rec[0].status, 200);
	assert_int_equal(f->rec[0].end_ns, 3);
}

static void test_response_headers_cut_by_capture(void **state)
{
	struct fx *f = *state;
	char resp[2000];
	int n;

	f->head = 64;
	n = sprintf(resp, "HTTP/1.1 503 Service Unavailable\r\nX-Big: ");
	memset(resp + n, 'b', 1000);
	strcpy(resp + n + 1000, "\r\nContent-Length: 0\r\n\r\n");
	in(f, 1, GET_A);
	out(f, 2, resp);
	assert_int_equal(f->n, 0); /* length unknown: ends at the next request or close */
	in(f, 3, "GET /b HTTP/1.1\r\n\r\n");
	assert_int_equal(f->n, 1);
	assert_int_equal(f->rec[0].status, 503);
	assert_int_equal(f->rec[0].flags, TG_REQ_TRUNCATED);
	assert_int_equal(f->rec[0].resp_bytes, strlen(resp));
	assert_int_equal(f->rec[0].end_ns, 2);
	out(f, 4, RESP_OK);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->rec[1].flags, 0);
}

static void test_query_redaction(void **state)
{
	char out_buf[64];
	size_t n;

	n = tg_http__redact_target("/a?x=1&y=2", 10, false, out_buf, sizeof(out_buf));
	assert_string_equal(out_buf, "/a?x=&y=");
	assert_int_equal(n, 8);
	tg_http__redact_target("/a?x=1&flag&y=secret#frag", 25, false, out_buf, sizeof(out_buf));
	assert_string_equal(out_buf, "/a?x=&flag&y=");
	tg_http__redact_target("/a?x=1&y=2#frag", 15, true, out_buf, sizeof(out_buf));
	assert_string_equal(out_buf, "/a?x=1&y=2");
	tg_http__redact_target("/p#x?y=1", 8, false, out_buf, sizeof(out_buf));
	assert_string_equal(out_buf, "/p");
	tg_http__redact_target("/a?k=v=w&=z", 11, false, out_buf, sizeof(out_buf));
	assert_string_equal(out_buf, "/a?k=&=");
	n = tg_http__redact_target("/abcdef", 7, false, out_buf, 4);
	assert_int_equal(n, 3);
	assert_string_equal(out_buf, "/ab");
	assert_int_equal(tg_http__redact_target("/x", 2, false, out_buf, 0), 0);
	assert_int_equal(tg_http__redact_target(NULL, 5, false, out_buf, 8), 0);
	assert_string_equal(out_buf, "");
	/* through the reassembler: values dropped, header values never kept */
	struct fx *f = *state;

	in(f, 1,
	   "GET /s?api_key=SECRET&page=2#top HTTP/1.1\r\nAuthorization: Bearer XYZ\r\n"
	   "Cookie: sid=COOKIE\r\n\r\n");
	out(f, 2, RESP_OK);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].target, "/s?api_key=&page=");
	assert_null(memmem(&f->rec[0], sizeof(f->rec[0]), "XYZ", 3));
	assert_null(memmem(&f->rec[0], sizeof(f->rec[0]), "COOKIE", 6));
	assert_null(memmem(&f->rec[0], sizeof(f->rec[0]), "SECRET", 6));
}

static int setup_keep(void **state)
{
	*state = fx_new(true);
	return 0;
}

static void test_query_keep_values(void **state)
{
	struct fx *f = *state;

	in(f, 1, "GET /s?api_key=SECRET&page=2#top HTTP/1.1\r\n\r\n");
	out(f, 2, RESP_OK);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].target, "/s?api_key=SECRET&page=2");
}

static void test_timing_fields(void **state)
{
	struct fx *f = *state;

	in(f, 100, "POST /t HTTP/1.1\r\nContent-Length: 6\r\n\r\nab");
	in(f, 150, "cdef");
	out(f, 300, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n");
	out(f, 400, "abc");
	out(f, 500, "def");
	assert_int_equal(f->n, 1);
	assert_int_equal(f->rec[0].start_ns, 100);
	assert_int_equal(f->rec[0].tid, 1100);
	assert_int_equal(f->rec[0].first_resp_ns, 300);
	assert_int_equal(f->rec[0].end_ns, 500);
	assert_int_equal(f->rec[0].req_bytes,
			 strlen("POST /t HTTP/1.1\r\nContent-Length: 6\r\n\r\n") + 6);
	assert_int_equal(f->rec[0].resp_bytes,
			 strlen("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n") + 6);
}

static void test_response_split_status_line(void **state)
{
	struct fx *f = *state;

	in(f, 1, GET_A);
	out(f, 2, "HTTP/1.1 2");
	out(f, 3, "00 OK\r\nContent-Length: 2\r\n\r\nhi");
	assert_int_equal(f->n, 1);
	assert_int_equal(f->rec[0].status, 200);
	assert_int_equal(f->rec[0].first_resp_ns, 2);
	assert_int_equal(f->rec[0].end_ns, 3);
}

static void test_queue_overflow(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < 12; i++)
		in(f, (uint64_t)i + 1, GET_A);
	assert_int_equal(f->n, 4); /* the oldest are given up */
	assert_int_equal(f->rec[0].flags, TG_REQ_INCOMPLETE);
	tg_http__close(f->c, 20);
	assert_int_equal(f->n, 12);
	assert_int_equal(f->rec[11].flags, TG_REQ_INCOMPLETE);
}

static void test_gap_during_request_headers(void **state)
{
	struct fx *f = *state;

	in(f, 1, "GET /partial?a=1 HTTP/1.1\r\nHost");
	tg_http__gap(f->c);
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rec[0].target, "/partial?a=");
	assert_int_equal(f->rec[0].flags, TG_REQ_LOST_EVENTS | TG_REQ_TRUNCATED);
	in(f, 2, ": x\r\n\r\n"); /* rest of the lost request: skipped */
	in(f, 3, GET_A);
	out(f, 4, RESP_OK);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->rec[1].flags, TG_REQ_RESYNC);
}

/* ---- The header scanner against libhttp_parser (user/httphead.c). */

static uint32_t rnd_state = 12345;

static uint32_t rnd(uint32_t n)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return (rnd_state >> 8) % n;
}

#define PICK(a) ((a)[rnd(sizeof(a) / sizeof((a)[0]))])

static size_t put(char *b, size_t at, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (at + n > cap)
		n = cap - at;
	memcpy(b + at, s, n);
	return at + n;
}

/* A header block made of plausible and broken pieces, then perhaps a few
 * bytes replaced. Returns its length. */
static size_t gen_block(char *b, size_t cap, bool response)
{
	static const char *const methods[] = {"GET",  "POST",	  "PUT",     "DELETE",
					      "HEAD", "PATCH",	  "OPTIONS", "CONNECT",
					      "get",  "PROPFIND", "GETX",    "TRACE"};
	static const char *const targets[] = {"/",
					      "/a/b?x=1&y=%20",
					      "/items/42",
					      "/a#frag",
					      "*",
					      "http://h/x",
					      "/a b",
					      "/\x80",
					      "/a\"b",
					      "/{x}",
					      "/[v]",
					      "/~u_.-",
					      "/a|b",
					      "/a^b",
					      "/a`b",
					      "/a\\b",
					      "/a<b>",
					      "//x",
					      "/a?b=c;d=e!$'()*+,:@"};
	static const char *const versions[] = {"HTTP/1.1", "HTTP/1.0", "HTTP/1.2",  "HTTP/2.0",
					       "HTTP/1.",  "http/1.1", "HTTP/1.10", "HTTP/1.1 "};
	static const char *const status_lines[] = {"HTTP/1.1 200 OK",
						   "HTTP/1.0 404 Not Found",
						   "HTTP/1.1 204 No Content",
						   "HTTP/1.1 101 Switching Protocols",
						   "HTTP/1.1 100 Continue",
						   "HTTP/1.1 200 ",
						   "HTTP/1.1 200",
						   "HTTP/1.1 099 X",
						   "HTTP/1.1 1000 X",
						   "HTTP/1.1 20 X",
						   "HTTP/1.1 500 A\tB",
						   "HTTP/1.1 200 \x80",
						   "HTTP/1.1 200 a\x7f",
						   "HTTP/2 200 OK",
						   "HTTP/1.1  200 OK",
						   "HTTP/1.2 302 Found"};
	static const char *const headers[] = {
	    "Host: x",
	    "Accept: */*",
	    "Connection: keep-alive",
	    "Content-Length: 10",
	    "Content-Length: 10",
	    "content-length: 0",
	    "Content-Length:  42",
	    "Content-Length:\t7",
	    "Content-Length: 1 ",
	    "Content-Length: 007",
	    "Content-Length: -1",
	    "Content-Length: 123456789012345",
	    "Content-Length: 1234567890123456",
	    "Content-Length: 99999999999999999999",
	    "Content-Length:",
	    "Content-Length: 1,2",
	    "CONTENT-LENGTH: 5",
	    "Content-Lengthx: 5",
	    "Transfer-Encoding: chunked",
	    "transfer-encoding: gzip, chunked",
	    "Transfer-Encoding: gzip",
	    "Connection: keep-alive",
	    "Connection: close",
	    "Connection: Upgrade",
	    "Connection: keep-alive, Upgrade",
	    "Upgrade: websocket",
	    "Proxy-Connection: keep-alive",
	    "Keep-Alive: timeout=5",
	    "X-Empty:",
	    "X-Tab:\tv",
	    "Bad Name: x",
	    "NoColon",
	    " folded",
	    "\tfolded",
	    "X-Ctl: a\x01b",
	    "X-Del: \x7f",
	    "X-High: \xc3\xa9",
	    "x_under: y",
	    "X-Trailing: v  ",
	    "Content-Length : 5",
	    ": novalue",
	    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) \"quoted\" <angle> {brace}",
	    "Accept: */*",
	    "X-Long: abcdefgh\x01ijklmnop",
	    "X-Long: abcdefghijklmnop\x7fq",
	    "X-Long: abcdefghijkl\x80mnop",
	    "X-Long: abcdefgh\tijklmnopqrstuvw",
	    "X-Long: abcdefghijklmnopqrstuvw\x1f",
	};
	static const char interesting[] = {' ', '\t', '\r', '\n', ':', '\0', 0x7f, (char)0x80,
					   'a', '0',  '/',  '?',  '#', '%',  '-',  'H'};
	size_t n = 0, i, nh = rnd(7);
	const char *eol = rnd(20) ? "\r\n" : "\n";

	if (response) {
		n = put(b, n, cap, PICK(status_lines));
	} else {
		n = put(b, n, cap, PICK(methods));
		n = put(b, n, cap, rnd(30) ? " " : "  ");
		n = put(b, n, cap, PICK(targets));
		n = put(b, n, cap, " ");
		n = put(b, n, cap, PICK(versions));
	}
	n = put(b, n, cap, eol);
	for (i = 0; i < nh; i++) {
		/* half of them from the first few, which the scanner takes */
		n = put(b, n, cap, rnd(2) ? headers[rnd(8)] : PICK(headers));
		n = put(b, n, cap, rnd(25) ? "\r\n" : "\n");
	}
	n = put(b, n, cap, rnd(25) ? "\r\n" : "\n");
	if (rnd(3) == 0)
		for (i = rnd(3) + 1; i > 0 && n; i--)
			b[rnd((uint32_t)n)] = PICK(interesting);
	return n;
}

static void test_head_scanner_agrees_with_http_parser(void **state)
{
	char buf[1024];
	unsigned i, fast = 0;

	(void)state;
	for (i = 0; i < 200000; i++) {
		bool response = i & 1;
		size_t n = gen_block(buf, sizeof(buf), response);
		struct tg_http_head a, b;

		if (!tg_httphead__parse_fast((const uint8_t *)buf, n, response, &a))
			continue;
		fast++;
		if (!tg_httphead__parse_full((const uint8_t *)buf, n, response, &b))
			fail_msg("scanner accepted what libhttp_parser refuses: %.*s", (int)n, buf);
		assert_int_equal(a.minor, b.minor);
		assert_int_equal(a.chunked, b.chunked);
		assert_int_equal(a.has_length, b.has_length);
		if (a.has_length)
			assert_int_equal(a.length, b.length);
		if (response) {
			assert_int_equal(a.status, b.status);
		} else {
			assert_int_equal(a.method, b.method);
			assert_ptr_equal(a.url, b.url);
			assert_int_equal(a.url_len, b.url_len);
		}
	}
	print_message("scanner took %u of %u blocks\n", fast, i);
	assert_true(fast > 10000); /* the scanner did take part */
}

static void test_head_scanner_common_shapes(void **state)
{
	static const char req[] = "GET /items/42?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
				  "User-Agent: curl/8.0\r\nAccept: */*\r\n\r\n";
	static const char post[] = "POST /a HTTP/1.0\r\nContent-Length: 12\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\ndate: Wed, 25 Nov 2026 18:00:00 GMT\r\n"
				   "server: uvicorn\r\ncontent-length: 10\r\n"
				   "content-type: application/json\r\n\r\n";
	static const char chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
	struct tg_http_head h;

	(void)state;
	assert_true(tg_httphead__parse_fast((const uint8_t *)req, sizeof(req) - 1, false, &h));
	assert_int_equal(h.url_len, strlen("/items/42?q=1"));
	assert_false(h.has_length);
	assert_true(tg_httphead__parse_fast((const uint8_t *)post, sizeof(post) - 1, false, &h));
	assert_int_equal(h.minor, 0);
	assert_int_equal(h.length, 12);
	assert_true(tg_httphead__parse_fast((const uint8_t *)resp, sizeof(resp) - 1, true, &h));
	assert_int_equal(h.status, 200);
	assert_int_equal(h.length, 10);
	/* chunked framing is libhttp_parser's */
	assert_false(
	    tg_httphead__parse_fast((const uint8_t *)chunked, sizeof(chunked) - 1, true, &h));
	assert_true(tg_httphead__parse((const uint8_t *)chunked, sizeof(chunked) - 1, true, &h));
	assert_true(h.chunked);
}

/* A header whose name only starts with "transfer-encoding", next to a
 * Content-Length: libhttp_parser 2.9 takes the first as Transfer-Encoding
 * and refuses the pair, so the scanner leaves such blocks to it and the two
 * agree (the fuzz target's crash of 2026-11-26, reduced). */
static void test_head_scanner_transfer_encoding_prefix(void **state)
{
	static const char resp[] = "HTTP/1.0 120 \r\ntransfer-encodingT12: 0\r\n"
				   "content-length: 5\r\n\r\n";
	static const char other[] = "HTTP/1.0 200 \r\ntransfer-encodin: 0\r\n"
				    "content-length: 5\r\n\r\n";
	struct tg_http_head h;

	(void)state;
	assert_false(tg_httphead__parse_fast((const uint8_t *)resp, sizeof(resp) - 1, true, &h));
	assert_false(tg_httphead__parse_full((const uint8_t *)resp, sizeof(resp) - 1, true, &h));
	/* a shorter name is any other header: both take it */
	assert_true(tg_httphead__parse_fast((const uint8_t *)other, sizeof(other) - 1, true, &h));
	assert_int_equal(h.length, 5);
	assert_true(tg_httphead__parse_full((const uint8_t *)other, sizeof(other) - 1, true, &h));
	assert_int_equal(h.length, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_null_and_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_simple_keepalive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_headers_split_three_reads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_line_split_mid_token, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_post_content_length_split, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_post_chunked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_body_larger_than_capture, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_response_content_length_two_writes, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_chunked_response_visible, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chunked_response_sizes_in_gap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_http10_until_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_head_no_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_204_304, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_100_continue, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_101_upgrade, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_http2_preface, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage_then_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gap_mid_response, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_mid_response, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_preexisting_mid_response, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_preexisting_mid_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_headers_too_long, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_headers_cut_by_capture, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_target_cut_by_capture, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_response_headers_cut_by_capture, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_query_redaction, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_query_keep_values, setup_keep, teardown),
	    cmocka_unit_test_setup_teardown(test_timing_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_response_split_status_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_overflow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gap_during_request_headers, setup, teardown),
	    cmocka_unit_test(test_head_scanner_agrees_with_http_parser),
	    cmocka_unit_test(test_head_scanner_common_shapes),
	    cmocka_unit_test(test_head_scanner_transfer_encoding_prefix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
