/* SPDX-License-Identifier: MIT */
/*
 * struct tg_request: one reconstructed HTTP exchange, as the HTTP reassembler
 * (http.c) produces it and the store (store.c) writes it. Plain data, no
 * pointers, so it can be copied into the store's queue.
 */
#ifndef TG_REQUEST_H
#define TG_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#define TG_METHOD_LEN 16
#define TG_TARGET_LEN 1024 /* path + redacted query string, NUL included */
#define TG_ROUTE_LEN 256
#define TG_PEER_LEN 64

/* Request flags (requests.flags in the database; docs/schema.md). */
#define TG_REQ_INCOMPLETE 0x01	   /* the exchange did not finish (no/partial response, close) */
#define TG_REQ_LOST_EVENTS 0x02	   /* events of this connection were dropped during it */
#define TG_REQ_UPGRADED 0x04	   /* 101 Switching Protocols: connection left alone after it */
#define TG_REQ_HTTP2 0x08	   /* an HTTP/2 preface: recorded once, connection left alone */
#define TG_REQ_TRUNCATED 0x10	   /* headers not wholly captured: some fields may be missing */
#define TG_REQ_PREEXISTING 0x20	   /* on a connection opened before the tracer attached */
#define TG_REQ_CONTINUE 0x40	   /* the server sent 100 Continue before the final response */
#define TG_REQ_RESYNC 0x80	   /* garbage or a gap before this request was skipped */
#define TG_REQ_ROUTE_GUESSED 0x100 /* route from heuristics, not from the app's route table */

/* ---- Resources a request used (user/taskcpu.h, docs/attribution.md) ---- */

/* Usage flags (requests.usage_flags in the database):
 * VALID: per-task tracking ran for this process, the figures mean it;
 * PARTIAL: some of its work was still running when it was stored, counted up
 * to that work's last event; SPANS_TRUNC: more spans than TG_SPANS_MAX, the
 * last one absorbs the rest; LOST: task events were lost (ring buffer full),
 * the figures are low. */
#define TG_USAGE_VALID 0x01
#define TG_USAGE_PARTIAL 0x02
#define TG_USAGE_SPANS_TRUNC 0x04
#define TG_USAGE_LOST 0x08

#define TG_SPANS_MAX 32
#define TG_SET_KEYS 16

/* A span of the request's timeline. */
enum tg_span_kind {
	TG_SPAN_RUN = 1,       /* a thread ran the request's work (a task step, a pool job) */
	TG_SPAN_GC = 2,	       /* a garbage collection paused that work */
	TG_SPAN_POOL_WAIT = 3, /* work handed to the thread pool waited for a worker */
	TG_SPAN_NET = 4,       /* its work waited for another service's answer */
};

struct tg_span {
	uint32_t start_us; /* from the request's start_ns */
	uint32_t dur_us;   /* wall time */
	uint32_t cpu_us;   /* on-CPU time inside it (TG_SPAN_RUN; else 0) */
	uint32_t tid;	   /* the thread */
	uint8_t kind;	   /* enum tg_span_kind */
	uint8_t pad[3];
};

struct tg_usage {
	uint64_t cpu_ns;       /* on-CPU time of the request's work on every thread */
	uint64_t cpu_pool_ns;  /* the part of cpu_ns on other threads than the event loop's */
	uint64_t runq_ns;      /* its work was runnable but waited for a CPU (contention) */
	uint64_t pool_wait_ns; /* its work waited for a thread-pool worker */
	uint64_t lock_ns;      /* its work slept on a lock (a futex: the GIL most often) */
	uint64_t net_ns;       /* its work waited for other services (client connections but
				* PostgreSQL's: from a write to the first read of the answer) */
	uint64_t minflt;       /* minor page faults while its work ran */
	uint64_t majflt;       /* major page faults while its work ran */
	uint64_t heap_bytes;   /* address space its work added (anonymous mmap, brk growth) */
	uint64_t gc_ns;	       /* garbage collections that ran during its work */
	uint32_t gc_count;
	uint32_t flags; /* TG_USAGE_* */
	uint32_t nspans;
	uint32_t pad;
	struct tg_span spans[TG_SPANS_MAX]; /* ordered by start */
};

struct tg_request {
	uint64_t conn_id;
	uint32_t pid;
	uint32_t tid;		/* thread that read the request's first bytes */
	uint64_t start_ns;	/* CLOCK_MONOTONIC: exit of the read with the first request byte */
	uint64_t first_resp_ns; /* CLOCK_MONOTONIC: exit of the first response write; 0 if none */
	uint64_t end_ns;	/* CLOCK_MONOTONIC: exit of the write with the last response byte */
	uint64_t req_bytes;	/* request line + headers + body, as transferred */
	uint64_t resp_bytes;	/* status line + headers + body (1xx interim responses included) */
	uint32_t flags;		/* TG_REQ_* */
	int32_t status;		/* final status code; 0 when no response was seen */
	uint8_t http_minor;	/* 0 or 1 (HTTP/1.x); 0 for HTTP/2 preface */
	uint32_t sql_count;	/* SQL statements run for this request (0: none seen) */
	uint64_t sql_ns;	/* their total duration */
	uint64_t task_key;	/* the asyncio task that wrote the response (0: unknown) */
	/* The Contexts of the request's other work (child tasks, thread-pool
	 * jobs; on uvloop its task itself), from user/taskcpu.c: samples and SQL
	 * statements made in them are the request's too. */
	uint64_t set_keys[TG_SET_KEYS];
	/* When each of them was that Context: from its creation (0: unknown)
	 * until its address was reused by a new Context (UINT64_MAX: not), so
	 * work keyed by the address outside that span is another's. */
	uint64_t set_since[TG_SET_KEYS], set_until[TG_SET_KEYS];
	uint32_t nset_keys;
	uint32_t resp_tid;	/* thread that wrote the last response byte (0: unknown) */
	uint64_t resp_oncpu_ns; /* its cumulative on-CPU time at that write (hdr.oncpu_ns) */
	struct tg_usage usage;	/* filled by user/taskcpu.c before the request is stored */
	char method[TG_METHOD_LEN];
	char target[TG_TARGET_LEN]; /* path and query, query values redacted unless asked */
	char route[TG_ROUTE_LEN];   /* route template, filled in by the pipeline */
	char peer[TG_PEER_LEN];	    /* "1.2.3.4:5678" or "[::1]:5678", filled in by the pipeline */
};

/* The part of req's window in which its set key k was that Context
 * (set_since/set_until) into *from, *to. Returns false when empty. */
static inline bool tg_request__set_window(const struct tg_request *req, uint32_t k, uint64_t *from,
					  uint64_t *to)
{
	*from = req->start_ns > req->set_since[k] ? req->start_ns : req->set_since[k];
	*to = req->end_ns < req->set_until[k] ? req->end_ns : req->set_until[k];
	return *from <= *to;
}

#endif
