/* SPDX-License-Identifier: MIT */
/*
 * gen_stream: write a synthetic recording for the pipeline benchmark — N HTTP
 * exchanges over C keep-alive connections, the bytes and event shapes that a
 * uvloop uvicorn produces (one read in, one writev out per exchange; a mix of
 * routes, statuses and a request body now and then), so `timeglass replay
 * --stats` can be timed on millions of events without root or a live server.
 *
 *   gen_stream OUT.tgrec [EXCHANGES=1000000] [CONNECTIONS=64]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "timeglass/events.h"

#define CAPTURE 1024

static int emit_data(struct tg_recorder *r, uint32_t pid, uint64_t conn_id, uint32_t seq,
		     uint8_t dir, const char *buf, size_t len, uint64_t ts)
{
	static uint8_t ev[sizeof(struct tg_ev_data) + CAPTURE + TG_TAIL_MAX + 8];
	struct tg_ev_data *e = (struct tg_ev_data *)ev;
	size_t head = len < CAPTURE ? len : CAPTURE;
	size_t tail = len > head ? (len - head < TG_TAIL_MAX ? len - head : TG_TAIL_MAX) : 0;
	size_t size = (sizeof(*e) + head + tail + 7) & ~(size_t)7;

	memset(e, 0, sizeof(*e));
	e->hdr.type = TG_EV_DATA;
	e->hdr.size = (uint16_t)size;
	e->hdr.pid = pid;
	e->hdr.tid = pid;
	e->hdr.ts_ns = ts;
	e->hdr.oncpu_ns = ts / 2;
	e->conn_id = conn_id;
	e->seq = seq;
	e->fd = (int32_t)(conn_id + 10);
	e->len = (uint32_t)len;
	e->head_len = (uint16_t)head;
	e->tail_len = (uint8_t)tail;
	e->dir = dir;
	e->sys = dir == TG_DIR_IN ? TG_SYS_READ : TG_SYS_WRITEV;
	memcpy(e->data, buf, head);
	if (tail)
		memcpy(e->data + head, buf + len - tail, tail);
	return tg_record__write(r, ev, size);
}

int main(int argc, char **argv)
{
	static const char *const routes[] = {"/hello", "/items/%lu", "/users/%lu/orders",
					     "/search?q=x%lu&page=2", "/missing/%lu"};
	unsigned long n = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
	unsigned long nconn = argc > 3 ? strtoul(argv[3], NULL, 10) : 64, i;
	struct tg_recorder *r;
	uint32_t *seq;
	uint64_t ts = 1000000000ULL;
	char req[512], resp[512], path[128];

	if (argc < 2 || nconn == 0) {
		fprintf(stderr, "usage: gen_stream OUT.tgrec [EXCHANGES] [CONNECTIONS]\n");
		return 2;
	}
	r = tg_record__create(argv[1], 1700000000000000000ULL);
	seq = calloc(nconn, sizeof(*seq));
	if (!r || !seq) {
		perror("gen_stream");
		return 1;
	}
	for (i = 0; i < nconn; i++) {
		struct tg_ev_conn c = {.hdr = {.type = TG_EV_CONN,
					       .size = sizeof(c),
					       .pid = 4242,
					       .tid = 4242,
					       .ts_ns = ts}};

		c.conn_id = i + 1;
		c.fd = (int32_t)(i + 11);
		c.role = TG_ROLE_SERVER;
		c.origin = TG_ORIGIN_ACCEPT;
		c.family = 2;
		c.lport = 8000;
		c.rport = (uint16_t)(40000 + i);
		c.raddr[0] = 127;
		c.raddr[3] = 1;
		tg_record__write(r, &c, sizeof(c));
	}
	for (i = 0; i < n; i++) {
		unsigned long conn = i % nconn, kind = (i * 7) % 5;
		int status = kind == 4 ? 404 : 200;
		size_t rl, sl;

		snprintf(path, sizeof(path), routes[kind], i % 1000);
		rl = (size_t)snprintf(req, sizeof(req),
				      "GET %s HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: "
				      "bench\r\nAccept: */*\r\n\r\n",
				      path);
		sl = (size_t)snprintf(
		    resp, sizeof(resp),
		    "HTTP/1.1 %d %s\r\ndate: Wed, 25 Nov 2026 18:00:00 GMT\r\nserver: "
		    "uvicorn\r\ncontent-length: 10\r\ncontent-type: "
		    "application/json\r\n\r\n{\"ok\":123}",
		    status, status == 200 ? "OK" : "Not Found");
		ts += 20000;
		emit_data(r, 4242, conn + 1, seq[conn]++, TG_DIR_IN, req, rl, ts);
		ts += 30000;
		emit_data(r, 4242, conn + 1, seq[conn]++, TG_DIR_OUT, resp, sl, ts);
	}
	free(seq);
	if (tg_record__close(r)) {
		perror("gen_stream: write");
		return 1;
	}
	printf("wrote %lu exchanges (%lu events) on %lu connections to %s\n", n, 2 * n + nconn,
	       nconn, argv[1]);
	return 0;
}
