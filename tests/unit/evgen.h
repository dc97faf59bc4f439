/* SPDX-License-Identifier: MIT */
/*
 * Synthetic event streams for unit tests: build the exact bytes the kernel
 * side emits (include/timeglass/events.h) without BPF.
 */
#ifndef TG_TEST_EVGEN_H
#define TG_TEST_EVGEN_H

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "timeglass/events.h"

/* A TG_EV_CONN for an accepted IPv4 connection from 127.0.0.1:rport. */
static inline struct tg_ev_conn evgen_conn(uint32_t pid, int32_t fd, uint64_t conn_id,
					   uint16_t rport, uint64_t ts, uint8_t origin)
{
	struct tg_ev_conn e;

	memset(&e, 0, sizeof(e));
	e.hdr.type = TG_EV_CONN;
	e.hdr.size = sizeof(e);
	e.hdr.pid = pid;
	e.hdr.tid = pid;
	e.hdr.ts_ns = ts;
	e.conn_id = conn_id;
	e.fd = fd;
	e.role = TG_ROLE_SERVER;
	e.origin = origin;
	e.family = AF_INET;
	e.lport = 8000;
	e.rport = rport;
	e.raddr[0] = 127;
	e.raddr[3] = 1;
	e.laddr[0] = 127;
	e.laddr[3] = 1;
	return e;
}

/* A TG_EV_DATA carrying text (len bytes transferred), capturing at most cap
 * head bytes and TG_TAIL_MAX tail bytes like the kernel side. Caller frees. */
static inline struct tg_ev_data *evgen_data(uint32_t pid, int32_t fd, uint64_t conn_id,
					    uint32_t seq, uint8_t dir, const char *text, size_t len,
					    size_t cap, uint64_t ts, size_t *size)
{
	size_t head = len < cap ? len : cap;
	size_t tail = len > head ? (len - head < TG_TAIL_MAX ? len - head : TG_TAIL_MAX) : 0;
	size_t sz = (sizeof(struct tg_ev_data) + head + tail + 7) & ~(size_t)7;
	struct tg_ev_data *e = calloc(1, sz);

	e->hdr.type = TG_EV_DATA;
	e->hdr.size = (uint16_t)sz;
	e->hdr.pid = pid;
	e->hdr.tid = pid + 1;
	e->hdr.ts_ns = ts;
	e->conn_id = conn_id;
	e->seq = seq;
	e->fd = fd;
	e->len = (uint32_t)len;
	e->head_len = (uint16_t)head;
	e->tail_len = (uint8_t)tail;
	e->dir = dir;
	e->sys = dir == TG_DIR_IN ? TG_SYS_READ : TG_SYS_WRITEV;
	memcpy(e->data, text, head);
	if (tail)
		memcpy(e->data + head, text + len - tail, tail);
	*size = sz;
	return e;
}

static inline struct tg_ev_close evgen_close(uint32_t pid, int32_t fd, uint64_t conn_id,
					     uint32_t seq, uint64_t ts)
{
	struct tg_ev_close e;

	memset(&e, 0, sizeof(e));
	e.hdr.type = TG_EV_CLOSE;
	e.hdr.size = sizeof(e);
	e.hdr.pid = pid;
	e.hdr.tid = pid;
	e.hdr.ts_ns = ts;
	e.conn_id = conn_id;
	e.fd = fd;
	e.seq = seq;
	return e;
}

/* A userspace text event (TG_EV_ROUTES, TG_EV_TARGET, TG_EV_IGNORE_PEER). Caller frees. */
static inline struct tg_ev_text *evgen_text(uint16_t type, uint32_t pid, const char *text,
					    size_t *size)
{
	size_t n = strlen(text) + 1, sz = (sizeof(struct tg_ev_text) + n + 7) & ~(size_t)7;
	struct tg_ev_text *e = calloc(1, sz);

	e->hdr.type = type;
	e->hdr.size = (uint16_t)sz;
	e->hdr.pid = pid;
	memcpy(e->text, text, n);
	*size = sz;
	return e;
}

#endif
