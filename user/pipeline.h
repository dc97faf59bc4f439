/* SPDX-License-Identifier: MIT */
/*
 * The pipeline: decodes events (from the ring buffer or a recording), keeps
 * the table of followed connections keyed by conn_id, feeds each server
 * connection's segments to its HTTP reassembler, and turns finished
 * exchanges into request records (peer, route, flags) for a sink. Pure C: no
 * libbpf, no root, so tests feed it synthetic streams.
 */
#ifndef TG_PIPELINE_H
#define TG_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request.h"
#include "taskcpu.h"

struct tg_query;

#define TG_PIPELINE_MAX_PG_PORTS 16

struct tg_pipeline_cfg {
	bool keep_query_values;
	/* A finished request; returns its id in the database (0: not stored). */
	int64_t (*on_request)(void *ctx, const struct tg_request *req);
	/* Process and userspace meta events (TG_EV_PROC, TG_EV_TARGET,
	 * TG_EV_DROPS), after the pipeline handled them. Optional. */
	void (*on_meta)(void *ctx, const void *ev, size_t size);
	/* PostgreSQL: client connections to these server ports are reassembled
	 * (sqltrack.h); npg_ports == 0: {5432}. Each statement, attributed to
	 * its request (request_id 0: none), goes to on_query (optional). Its
	 * text keeps literal values only with keep_sql_values. */
	uint16_t pg_ports[TG_PIPELINE_MAX_PG_PORTS];
	size_t npg_ports;
	bool keep_sql_values;
	void (*on_query)(void *ctx, const struct tg_query *q);
	/* New usage figures (taskcpu.h) for a request already stored with id
	 * request_id: its work finished after it was stored. Optional. */
	void (*on_usage)(void *ctx, int64_t request_id, const struct tg_usage *u);
	void *ctx;
};

struct tg_pipeline_stats {
	uint64_t events;    /* all events decoded */
	uint64_t malformed; /* events rejected: bad size or type */
	uint64_t data_events;
	uint64_t requests;
	uint64_t gaps;	       /* per-connection sequence gaps (lost events) */
	uint64_t unknown_conn; /* data for a connection never announced */
	uint64_t open_conns;
	uint64_t pg_conns;    /* PostgreSQL client connections seen */
	uint64_t tls_events;  /* TLS plaintext events (PostgreSQL over TLS) */
	uint64_t tls_dropped; /* ... never tied to a connection: lost */
	uint64_t net_waits;   /* answered writes on other client connections (network waits) */
};

struct tg_pipeline;

/* NULL + errno on failure. cfg is copied. */
struct tg_pipeline *tg_pipeline__new(const struct tg_pipeline_cfg *cfg);
/* Accepts NULL. Does not emit pending exchanges (call finish first). */
void tg_pipeline__free(struct tg_pipeline *p);

/* Handle one event of size bytes. Never trusts the bytes: a bad event is
 * counted in malformed and returns -EBADMSG; everything else returns 0. */
int tg_pipeline__event(struct tg_pipeline *p, const void *ev, size_t size);

/* Use routes (openapi templates, "METHOD TEMPLATE\n" lines) for pid's
 * requests from now on. Returns 0 or -errno. */
int tg_pipeline__set_routes(struct tg_pipeline *p, uint32_t pid, const char *routes_text);

/* The routes known for pid, or NULL. Owned by the pipeline. */
const struct tg_routes *tg_pipeline__routes(const struct tg_pipeline *p, uint32_t pid);

/* Connections whose peer port is port are the tracer's own: ignore them. */
void tg_pipeline__ignore_peer_port(struct tg_pipeline *p, uint16_t port);

/* End of stream at ts_ns: every open connection's pending exchange is emitted
 * (TG_REQ_INCOMPLETE). */
void tg_pipeline__finish(struct tg_pipeline *p, uint64_t ts_ns);

void tg_pipeline__stats(const struct tg_pipeline *p, struct tg_pipeline_stats *out);

/* Counters of the per-request CPU/memory accounting (taskcpu.h). */
void tg_pipeline__task_stats(const struct tg_pipeline *p, struct tg_taskcpu_stats *out);

#endif
