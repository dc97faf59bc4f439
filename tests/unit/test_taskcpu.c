/* SPDX-License-Identifier: MIT */
/*
 * Per-request CPU, waits, memory and GC (user/taskcpu.c) on synthetic task
 * event streams: one thread, interleaved tasks, child tasks, Contexts made
 * before the request, thread-pool jobs (complete and PARTIAL then updated),
 * GC, page faults and heap, address reuse, pids without task events, process
 * exit, the horizon, the uvloop shape (response written outside the task,
 * the task found from the connection's read) and garbage events. Then the
 * same through the pipeline, with data events.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include <sys/syscall.h>

#include "evgen.h"
#include "pipeline.h"
#include "taskcpu.h"

#define PID 100
#define LOOP 101
#define W1 102
#define W2 103
#define US 1000ULL
#define MS 1000000ULL
#define CONN_CTX 0x10 /* per-connection Context, made before any request (never linked) */

/* The threads' cumulative counters, as the kernel side would report them. */
struct world {
	struct tg_taskcpu *t;
	uint64_t oncpu[8], minflt[8], majflt[8], heap[8], runq[8];
	int64_t upd_id;
	struct tg_usage upd;
	int nupd;
};

static int ix(uint32_t tid)
{
	return (int)(tid - PID);
}

static void on_update(void *ctx, int64_t id, const struct tg_usage *u)
{
	struct world *w = ctx;

	w->upd_id = id;
	w->upd = *u;
	w->nupd++;
}

static struct world *world_new(void)
{
	struct world *w = calloc(1, sizeof(*w));
	struct tg_taskcpu_cfg cfg = {.on_update = on_update, .ctx = w, .horizon_ns = 1000 * MS};

	assert_non_null(w);
	w->t = tg_taskcpu__new(&cfg);
	assert_non_null(w->t);
	return w;
}

static void world_free(struct world *w)
{
	tg_taskcpu__free(w->t);
	free(w);
}

static struct tg_ev_task task_ev(struct world *w, uint32_t tid, uint32_t kind, uint64_t ctx,
				 uint64_t parent, uint64_t ts)
{
	struct tg_ev_task e;

	memset(&e, 0, sizeof(e));
	e.hdr.type = TG_EV_TASK;
	e.hdr.size = sizeof(e);
	e.hdr.pid = PID;
	e.hdr.tid = tid;
	e.hdr.ts_ns = ts;
	e.hdr.oncpu_ns = w->oncpu[ix(tid)];
	e.ctx = ctx;
	e.parent = parent;
	e.kind = kind;
	e.minflt = w->minflt[ix(tid)];
	e.majflt = w->majflt[ix(tid)];
	e.heap_bytes = w->heap[ix(tid)];
	e.runq_ns = w->runq[ix(tid)];
	return e;
}

static void enter(struct world *w, uint32_t tid, uint64_t ctx, uint64_t ts)
{
	struct tg_ev_task e = task_ev(w, tid, TG_TASK_ENTER, ctx, 0, ts);

	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(e)), 0);
}

static void park(struct world *w, uint32_t tid, uint64_t ts)
{
	struct tg_ev_task e = task_ev(w, tid, TG_TASK_PARK, 0, 0, ts);

	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(e)), 0);
}

static void link_ctx(struct world *w, uint32_t tid, uint64_t ctx, uint64_t parent, uint64_t ts)
{
	struct tg_ev_task e = task_ev(w, tid, TG_TASK_LINK, ctx, parent, ts);

	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(e)), 0);
}

/* A non-task event of tid (a data write, a sample): a thread point. */
static void touch(struct world *w, uint32_t tid, uint64_t ts)
{
	struct tg_ev_hdr h = {.type = TG_EV_DATA, .pid = PID, .tid = tid, .ts_ns = ts};

	h.oncpu_ns = w->oncpu[ix(tid)];
	tg_taskcpu__point(w->t, &h);
}

static void gc(struct world *w, uint32_t tid, uint64_t ctx, uint64_t start, uint64_t end)
{
	struct tg_ev_gc e;

	memset(&e, 0, sizeof(e));
	e.hdr.type = TG_EV_GC;
	e.hdr.size = sizeof(e);
	e.hdr.pid = PID;
	e.hdr.tid = tid;
	e.hdr.ts_ns = end;
	e.hdr.oncpu_ns = w->oncpu[ix(tid)];
	e.start_ns = start;
	e.ctx = ctx;
	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(e)), 0);
}

static void burn(struct world *w, uint32_t tid, uint64_t ns)
{
	w->oncpu[ix(tid)] += ns;
}

/* The request written by resp_tid at end (its on-CPU time now), stored as id. */
static struct tg_request request(struct world *w, uint64_t conn, uint64_t key, uint64_t start,
				 uint64_t end, uint32_t resp_tid, int64_t id)
{
	struct tg_request r;

	memset(&r, 0, sizeof(r));
	r.pid = PID;
	r.tid = LOOP;
	r.conn_id = conn;
	r.task_key = key;
	r.start_ns = start;
	r.end_ns = end;
	r.resp_tid = resp_tid;
	r.resp_oncpu_ns = resp_tid ? w->oncpu[ix(resp_tid)] : 0;
	memset(&r.usage, 0xab, sizeof(r.usage)); /* must be overwritten */
	tg_taskcpu__request(w->t, &r);
	tg_taskcpu__stored(w->t, &r, id);
	return r;
}

static struct tg_taskcpu_stats stats(struct world *w)
{
	struct tg_taskcpu_stats s;

	tg_taskcpu__stats(w->t, &s);
	return s;
}

/* One task on the loop: CPU = its slices up to the write, not the other
 * Context's slice in between, not the tail after the write. */
static void test_one_request_one_thread(void **state)
{
	struct world *w = world_new();
	struct tg_request r;

	(void)state;
	enter(w, LOOP, CONN_CTX, 0);
	burn(w, LOOP, 50 * US);
	link_ctx(w, LOOP, 0x1000, CONN_CTX, 1 * MS); /* request read at 0.5 ms */
	enter(w, LOOP, 0x1000, 2 * MS);
	burn(w, LOOP, 300 * US);
	enter(w, LOOP, 0x2000, 3 * MS); /* another Context (never linked) */
	burn(w, LOOP, 70 * US);
	enter(w, LOOP, 0x1000, 4 * MS);
	burn(w, LOOP, 200 * US);
	r = request(w, 1, 0x1000, MS / 2, 4 * MS + 400 * US, LOOP, 1);
	assert_int_equal(r.usage.flags, TG_USAGE_VALID);
	assert_int_equal(r.usage.cpu_ns, 500 * US);
	assert_int_equal(r.usage.cpu_pool_ns, 0);
	assert_int_equal(r.usage.pool_wait_ns, 0);
	assert_int_equal(r.usage.nspans, 2);
	assert_int_equal(r.usage.spans[0].kind, TG_SPAN_RUN);
	assert_int_equal(r.usage.spans[0].start_us, 1500);
	assert_int_equal(r.usage.spans[0].dur_us, 1000);
	assert_int_equal(r.usage.spans[0].cpu_us, 300);
	assert_int_equal(r.usage.spans[0].tid, LOOP);
	assert_int_equal(r.usage.spans[1].start_us, 3500);
	assert_int_equal(r.usage.spans[1].dur_us, 400);
	assert_int_equal(r.usage.spans[1].cpu_us, 200);
	/* The task's tail after the write is not the request's; no update
	 * (no counters moved in the writing piece). */
	burn(w, LOOP, 900 * US);
	enter(w, LOOP, 0x2000, 5 * MS);
	assert_int_equal(w->nupd, 0);
	assert_int_equal(stats(w).requests, 1);
	assert_int_equal(stats(w).partial, 0);
	assert_int_equal(stats(w).accounts, 0);
	/* A later piece of the finished task is dropped, not re-created. */
	enter(w, LOOP, 0x1000, 6 * MS);
	burn(w, LOOP, 10 * US);
	enter(w, LOOP, 0x2000, 7 * MS);
	assert_int_equal(stats(w).late_dropped, 1);
	assert_int_equal(stats(w).accounts, 0);
	world_free(w);
}

/* Task events of the loop were lost (ring buffer full) while task a ran:
 * the next event arrives flagged; a's request says its figures are not to be
 * trusted, b's (whose pieces were all seen) does not. */
static void test_lost_events_flagged(void **state)
{
	struct world *w = world_new();
	uint64_t a = 0xa00, b = 0xb00;
	struct tg_ev_task e;
	struct tg_request r;

	(void)state;
	link_ctx(w, LOOP, a, CONN_CTX, 1 * MS);
	link_ctx(w, LOOP, b, CONN_CTX + 1, 1 * MS + 10 * US);
	enter(w, LOOP, b, 2 * MS);
	burn(w, LOOP, 40 * US);
	enter(w, LOOP, a, 3 * MS);
	burn(w, LOOP, 100 * US);
	/* an ENTER(b), a's park... were dropped; this one says so */
	e = task_ev(w, LOOP, TG_TASK_ENTER | TG_TASK_LOST, 0x9999, 0, 5 * MS);
	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(e)), 0);
	assert_int_equal(stats(w).lost_marks, 1);
	r = request(w, 1, a, MS, 6 * MS, LOOP, 1);
	assert_int_equal(r.usage.flags, TG_USAGE_VALID | TG_USAGE_LOST);
	assert_int_equal(r.usage.cpu_ns, 100 * US);
	r = request(w, 2, b, MS, 6 * MS, LOOP, 2);
	assert_int_equal(r.usage.flags, TG_USAGE_VALID);
	assert_int_equal(r.usage.cpu_ns, 40 * US);
	/* unknown flag bits are garbage */
	e = task_ev(w, LOOP, TG_TASK_ENTER | 0x200, 0x9999, 0, 7 * MS);
	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(e)), -EBADMSG);
	world_free(w);
}

/* Three tasks interleaved on one loop thread: each gets its own slices. */
static void test_interleaved_tasks(void **state)
{
	struct world *w = world_new();
	uint64_t a = 0xa00, b = 0xb00, c = 0xc00, ts = 0;
	uint64_t want[3] = {0};
	struct tg_request r;

	(void)state;
	link_ctx(w, LOOP, a, CONN_CTX, 1 * MS);
	link_ctx(w, LOOP, b, CONN_CTX + 1, 1 * MS + 10 * US);
	link_ctx(w, LOOP, c, CONN_CTX + 2, 1 * MS + 20 * US);
	ts = 2 * MS;
	for (int round = 0; round < 5; round++) {
		uint64_t ctxs[3] = {a, b, c};

		for (int i = 0; i < 3; i++) {
			uint64_t n = (uint64_t)(i + 1) * 10 * US + (uint64_t)round * US;

			enter(w, LOOP, ctxs[i], ts);
			burn(w, LOOP, n);
			want[i] += n;
			ts += 300 * US;
		}
	}
	enter(w, LOOP, 0x9999, ts); /* all pieces closed */
	r = request(w, 1, a, MS, ts + 10 * US, LOOP, 1);
	assert_int_equal(r.usage.cpu_ns, want[0]);
	r = request(w, 2, b, MS, ts + 20 * US, LOOP, 2);
	assert_int_equal(r.usage.cpu_ns, want[1]);
	r = request(w, 3, c, MS, ts + 30 * US, LOOP, 3);
	assert_int_equal(r.usage.cpu_ns, want[2]);
	assert_int_equal(r.usage.nspans, 5);
	assert_int_equal(w->nupd, 0);
	world_free(w);
}

/* A child task (LINK child <- parent) burns; the parent writes. A Context
 * made before the request (the connection's) is not the request's. */
static void test_child_task_and_older_context(void **state)
{
	struct world *w = world_new();
	struct tg_request r;

	(void)state;
	link_ctx(w, LOOP, 0x500, 0x1, 100 * US); /* the connection's Context, before */
	link_ctx(w, LOOP, 0x1000, 0x500, 1 * MS);
	enter(w, LOOP, 0x1000, 2 * MS);
	burn(w, LOOP, 100 * US);
	link_ctx(w, LOOP, 0x1100, 0x1000, 2 * MS + 50 * US);
	enter(w, LOOP, 0x1100, 3 * MS);
	burn(w, LOOP, 700 * US);
	enter(w, LOOP, 0x500, 4 * MS); /* the connection's own work */
	burn(w, LOOP, 333 * US);
	enter(w, LOOP, 0x1000, 5 * MS);
	burn(w, LOOP, 20 * US);
	r = request(w, 1, 0x1000, 500 * US, 5 * MS + 100 * US, LOOP, 1);
	assert_int_equal(r.usage.cpu_ns, 820 * US);
	/* Kept until the writing piece ends (its page faults are not known yet);
	 * then the older Context lives on and the request's two are forgotten. */
	assert_int_equal(stats(w).accounts, 3);
	enter(w, LOOP, 0x500, 6 * MS);
	assert_int_equal(stats(w).accounts, 1);
	world_free(w);
}

/* The endpoint runs in the pool: LINK copy <- task on the loop, ENTER copy
 * on a worker, PARK there, response written by the loop. */
static void test_pool_job(void **state)
{
	struct world *w = world_new();
	struct tg_request r;
	uint32_t waits = 0;

	(void)state;
	link_ctx(w, LOOP, 0x1000, CONN_CTX, 1 * MS);
	enter(w, LOOP, 0x1000, 1 * MS + 10 * US);
	burn(w, LOOP, 40 * US);
	link_ctx(w, LOOP, 0x2000, 0x1000, 1 * MS + 60 * US);
	park(w, LOOP, 1 * MS + 70 * US);
	enter(w, W1, 0x2000, 1 * MS + 360 * US); /* waited 300 us for a worker */
	burn(w, W1, 800 * US);
	w->runq[ix(W1)] += 25 * US;
	park(w, W1, 2 * MS + 200 * US);
	enter(w, LOOP, 0x1000, 2 * MS + 300 * US);
	burn(w, LOOP, 30 * US);
	r = request(w, 1, 0x1000, 500 * US, 2 * MS + 400 * US, LOOP, 1);
	assert_int_equal(r.usage.flags, TG_USAGE_VALID);
	assert_int_equal(r.usage.cpu_ns, 870 * US);
	assert_int_equal(r.usage.cpu_pool_ns, 800 * US);
	assert_int_equal(r.usage.pool_wait_ns, 300 * US);
	assert_int_equal(r.usage.runq_ns, 25 * US);
	for (uint32_t i = 0; i < r.usage.nspans; i++) {
		if (r.usage.spans[i].kind != TG_SPAN_POOL_WAIT)
			continue;
		waits++;
		assert_int_equal(r.usage.spans[i].start_us, 560);
		assert_int_equal(r.usage.spans[i].dur_us, 300);
		assert_int_equal(r.usage.spans[i].tid, W1);
	}
	assert_int_equal(waits, 1);
	for (uint32_t i = 1; i < r.usage.nspans; i++)
		assert_true(r.usage.spans[i].start_us >= r.usage.spans[i - 1].start_us);
	/* the job's Context is the request's other key (its SQL, its samples) */
	assert_int_equal(r.nset_keys, 1);
	assert_int_equal(r.set_keys[0], 0x2000);
	world_free(w);
}

/* Asleep on a futex (the GIL) inside its step: that time, less what it ran
 * and waited for a CPU after waking, is its lock wait. */
static void test_lock_wait(void **state)
{
	struct world *w = world_new();
	struct tg_ev_task e;
	struct tg_request r;

	(void)state;
	link_ctx(w, LOOP, 0x1000, CONN_CTX, 1 * MS);
	enter(w, LOOP, 0x1000, 1 * MS + 10 * US);
	burn(w, LOOP, 100 * US);
	e = task_ev(w, LOOP, TG_TASK_PARK, 0x1000, 0, 1 * MS + 110 * US);
	e.syscall = SYS_futex;
	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(e)), 0);
	burn(w, LOOP, 40 * US);		  /* ran 40 us after it got the lock */
	w->runq[ix(LOOP)] += 60 * US;	  /* and waited 60 us for a CPU */
	park(w, LOOP, 1 * MS + 610 * US); /* an I/O sleep: not a lock */
	burn(w, LOOP, 10 * US);
	enter(w, LOOP, 0x1000, 3 * MS);
	r = request(w, 1, 0x1000, 500 * US, 3 * MS + 10 * US, LOOP, 1);
	assert_int_equal(r.usage.cpu_ns, 150 * US);
	assert_int_equal(r.usage.runq_ns, 60 * US);
	assert_int_equal(r.usage.lock_ns, 400 * US);
	world_free(w);
}

/* The worker's PARK arrives after the response: PARTIAL, then on_update
 * with the full figure once it parks. */
static void test_pool_job_partial_then_update(void **state)
{
	struct world *w = world_new();
	struct tg_request r;

	(void)state;
	link_ctx(w, LOOP, 0x1000, CONN_CTX, 1 * MS);
	enter(w, LOOP, 0x1000, 1 * MS + 10 * US);
	link_ctx(w, LOOP, 0x2000, 0x1000, 1 * MS + 20 * US);
	park(w, LOOP, 1 * MS + 30 * US);
	enter(w, W1, 0x2000, 1 * MS + 120 * US);
	burn(w, W1, 500 * US);
	touch(w, W1, 1 * MS + 700 * US); /* its last point before the response */
	burn(w, W1, 50 * US);
	enter(w, LOOP, 0x1000, 1 * MS + 800 * US);
	burn(w, LOOP, 10 * US);
	r = request(w, 1, 0x1000, 500 * US, 1 * MS + 900 * US, LOOP, 7);
	assert_true(r.usage.flags & TG_USAGE_PARTIAL);
	assert_int_equal(r.usage.cpu_ns, 510 * US);
	assert_int_equal(stats(w).partial, 1);
	assert_int_equal(w->nupd, 0);
	w->minflt[ix(W1)] += 3;
	park(w, W1, 2 * MS);
	/* One update once both the worker's and the writing piece ended. */
	assert_int_equal(w->nupd, 0);
	enter(w, LOOP, 0x3000, 2 * MS + 10 * US);
	assert_int_equal(w->nupd, 1);
	assert_int_equal(w->upd_id, 7);
	assert_int_equal(w->upd.flags, TG_USAGE_VALID);
	assert_int_equal(w->upd.cpu_ns, 560 * US);
	assert_int_equal(w->upd.cpu_pool_ns, 550 * US);
	assert_int_equal(w->upd.pool_wait_ns, 100 * US);
	assert_int_equal(w->upd.minflt, 3);
	assert_int_equal(stats(w).updates, 1);
	world_free(w);
}

/* A worker that never parks: updated after the pending time, still PARTIAL. */
static void test_pending_deadline(void **state)
{
	struct world *w = world_new();
	struct tg_request r;

	(void)state;
	link_ctx(w, LOOP, 0x1000, CONN_CTX, 1 * MS);
	enter(w, LOOP, 0x1000, 1 * MS + 10 * US);
	link_ctx(w, LOOP, 0x2000, 0x1000, 1 * MS + 20 * US);
	enter(w, W1, 0x2000, 1 * MS + 120 * US);
	burn(w, W1, 500 * US);
	touch(w, W1, 1 * MS + 700 * US);
	r = request(w, 1, 0x1000, 500 * US, 1 * MS + 900 * US, LOOP, 3);
	assert_true(r.usage.flags & TG_USAGE_PARTIAL);
	burn(w, W1, 100 * US);
	touch(w, W1, 500 * MS);
	assert_int_equal(w->nupd, 0);
	touch(w, LOOP, 1200 * MS); /* event time passes the 1 s deadline */
	assert_int_equal(w->nupd, 1);
	assert_true(w->upd.flags & TG_USAGE_PARTIAL);
	assert_int_equal(w->upd.cpu_ns, 600 * US);
	world_free(w);
}

/* GC during a request's task counts for it; GC in another task does not. */
static void test_gc(void **state)
{
	struct world *w = world_new();
	struct tg_request r;
	int gcs = 0;

	(void)state;
	link_ctx(w, LOOP, 0xa00, CONN_CTX, 1 * MS);
	link_ctx(w, LOOP, 0xb00, CONN_CTX + 1, 1 * MS + 5 * US);
	enter(w, LOOP, 0xa00, 2 * MS);
	burn(w, LOOP, 400 * US);
	gc(w, LOOP, 0xa00, 2 * MS + 100 * US, 2 * MS + 350 * US);
	enter(w, LOOP, 0xb00, 3 * MS);
	burn(w, LOOP, 100 * US);
	gc(w, LOOP, 0, 3 * MS + 10 * US, 3 * MS + 90 * US); /* ctx 0: the thread's current */
	enter(w, LOOP, 0xa00, 4 * MS);
	r = request(w, 1, 0xa00, 500 * US, 4 * MS, LOOP, 1);
	assert_int_equal(r.usage.gc_count, 1);
	assert_int_equal(r.usage.gc_ns, 250 * US);
	for (uint32_t i = 0; i < r.usage.nspans; i++) {
		if (r.usage.spans[i].kind == TG_SPAN_GC) {
			gcs++;
			assert_int_equal(r.usage.spans[i].start_us, 1600);
			assert_int_equal(r.usage.spans[i].dur_us, 250);
		}
	}
	assert_int_equal(gcs, 1);
	enter(w, LOOP, 0xb00, 5 * MS);
	r = request(w, 2, 0xb00, 500 * US, 5 * MS, LOOP, 2);
	assert_int_equal(r.usage.gc_count, 1);
	assert_int_equal(r.usage.gc_ns, 80 * US);
	assert_int_equal(stats(w).gc_events, 2);
	world_free(w);
}

/* Page faults, heap growth and run-queue deltas of the request's pieces;
 * the writing piece's are known when it ends: they come as an update. */
static void test_faults_and_heap(void **state)
{
	struct world *w = world_new();
	struct tg_request r;

	(void)state;
	w->minflt[ix(LOOP)] = 1000;
	w->heap[ix(LOOP)] = 1 << 20;
	link_ctx(w, LOOP, 0x1000, CONN_CTX, 1 * MS);
	enter(w, LOOP, 0x1000, 2 * MS);
	w->minflt[ix(LOOP)] += 12;
	w->majflt[ix(LOOP)] += 1;
	w->heap[ix(LOOP)] += 65536;
	enter(w, LOOP, 0x2000, 3 * MS);
	w->minflt[ix(LOOP)] += 100; /* someone else's */
	enter(w, LOOP, 0x1000, 4 * MS);
	burn(w, LOOP, 10 * US);
	w->minflt[ix(LOOP)] += 4;
	r = request(w, 1, 0x1000, 500 * US, 4 * MS + 50 * US, LOOP, 9);
	assert_int_equal(r.usage.minflt, 12);
	assert_int_equal(r.usage.majflt, 1);
	assert_int_equal(r.usage.heap_bytes, 65536);
	assert_int_equal(w->nupd, 0);
	burn(w, LOOP, 90 * US);
	enter(w, LOOP, 0x2000, 5 * MS);
	assert_int_equal(w->nupd, 1);
	assert_int_equal(w->upd_id, 9);
	assert_int_equal(w->upd.minflt, 16);
	assert_int_equal(w->upd.cpu_ns, 10 * US); /* still only up to the write */
	assert_int_equal(w->upd.flags, TG_USAGE_VALID);
	world_free(w);
}

/* A Context address reused after its request finished: a fresh account. */
static void test_address_reuse(void **state)
{
	struct world *w = world_new();
	struct tg_request r;

	(void)state;
	link_ctx(w, LOOP, 0x1000, CONN_CTX, 1 * MS);
	enter(w, LOOP, 0x1000, 2 * MS);
	burn(w, LOOP, 100 * US);
	enter(w, LOOP, 0x2000, 3 * MS);
	r = request(w, 1, 0x1000, 500 * US, 3 * MS, LOOP, 1);
	assert_int_equal(r.usage.cpu_ns, 100 * US);
	link_ctx(w, LOOP, 0x1000, CONN_CTX, 11 * MS);
	enter(w, LOOP, 0x1000, 12 * MS);
	burn(w, LOOP, 40 * US);
	enter(w, LOOP, 0x2000, 13 * MS);
	r = request(w, 2, 0x1000, 10 * MS, 13 * MS, LOOP, 2);
	assert_int_equal(r.usage.cpu_ns, 40 * US);
	assert_int_equal(r.usage.nspans, 1);
	assert_int_equal(r.usage.spans[0].start_us, 2000);
	/* Reused while still followed (request never stored): reset too. */
	link_ctx(w, LOOP, 0x3000, CONN_CTX, 20 * MS);
	enter(w, LOOP, 0x3000, 21 * MS);
	burn(w, LOOP, 70 * US);
	enter(w, LOOP, 0x2000, 22 * MS);
	link_ctx(w, LOOP, 0x3000, CONN_CTX, 30 * MS);
	enter(w, LOOP, 0x3000, 31 * MS);
	burn(w, LOOP, 5 * US);
	enter(w, LOOP, 0x2000, 32 * MS);
	r = request(w, 3, 0x3000, 29 * MS, 32 * MS, LOOP, 3);
	assert_int_equal(r.usage.cpu_ns, 5 * US);
	world_free(w);
}

/* No task events for a pid: usage zeroed, flags 0 (NULLs in the store). */
static void test_pid_without_task_events(void **state)
{
	struct world *w = world_new();
	struct tg_request r;

	(void)state;
	touch(w, LOOP, 1 * MS);
	r = request(w, 1, 0x1000, 500 * US, 3 * MS, LOOP, 1);
	assert_int_equal(r.usage.flags, 0);
	assert_int_equal(r.usage.cpu_ns, 0);
	assert_int_equal(r.usage.nspans, 0);
	/* GC events alone do not make a pid tracked. */
	gc(w, LOOP, 0x1000, 1 * MS, 2 * MS);
	r = request(w, 1, 0x1000, 500 * US, 3 * MS, LOOP, 1);
	assert_int_equal(r.usage.flags, 0);
	assert_int_equal(stats(w).requests, 0);
	world_free(w);
}

/* Process exit: pending requests updated, everything of the pid freed. */
static void test_process_exit(void **state)
{
	struct world *w = world_new();
	struct tg_request r;

	(void)state;
	link_ctx(w, LOOP, 0x1000, CONN_CTX, 1 * MS);
	enter(w, LOOP, 0x1000, 1 * MS + 10 * US);
	link_ctx(w, LOOP, 0x2000, 0x1000, 1 * MS + 20 * US);
	link_ctx(w, LOOP, 0x7000, CONN_CTX, 1 * MS + 30 * US); /* someone else's */
	enter(w, W1, 0x2000, 1 * MS + 120 * US);
	burn(w, W1, 500 * US);
	touch(w, W1, 1 * MS + 700 * US);
	r = request(w, 1, 0x1000, 500 * US, 1 * MS + 900 * US, LOOP, 4);
	assert_true(r.usage.flags & TG_USAGE_PARTIAL);
	assert_true(stats(w).accounts > 0);
	tg_taskcpu__proc_exit(w->t, PID, 2 * MS);
	assert_int_equal(w->nupd, 0); /* nothing new to say: same figures */
	assert_int_equal(stats(w).accounts, 0);
	/* The pid is no longer tracked. */
	r = request(w, 1, 0x1000, 500 * US, 3 * MS, LOOP, 5);
	assert_int_equal(r.usage.flags, 0);
	world_free(w);
}

/* Accounts untouched for the horizon are forgotten. */
static void test_horizon(void **state)
{
	struct world *w = world_new();

	(void)state;
	link_ctx(w, LOOP, 0x1000, CONN_CTX, 1 * MS);
	link_ctx(w, LOOP, 0x2000, CONN_CTX, 1 * MS);
	assert_int_equal(stats(w).accounts, 2);
	touch(w, LOOP, 3000 * MS);
	assert_int_equal(stats(w).accounts, 0);
	assert_int_equal(stats(w).expired, 2);
	world_free(w);
}

/* uvloop: the response is written outside the task (task_key = the loop's
 * own Context, never linked); the task is found from the connection's read:
 * made right after it, outside any request's task. */
static void test_task_from_connection(void **state)
{
	struct world *w = world_new();
	struct tg_ev_hdr h = {.type = TG_EV_DATA, .pid = PID, .tid = LOOP};
	struct tg_request r1, r2;
	const uint64_t ambient = 0xfff0, server = 0xeee0;

	(void)state;
	/* conn 1's request read, its task 0xa00 and a done-callback Context made */
	enter(w, LOOP, ambient, 1 * MS);
	enter(w, LOOP, server, 1 * MS + 1 * US);
	h.ts_ns = 1 * MS + 2 * US;
	tg_taskcpu__point(w->t, &h);
	tg_taskcpu__server_read(w->t, &h, 1, true);
	link_ctx(w, LOOP, 0xa00, server, 1 * MS + 3 * US);
	link_ctx(w, LOOP, 0xa10, server, 1 * MS + 4 * US);
	enter(w, LOOP, ambient, 1 * MS + 5 * US);
	link_ctx(w, LOOP, 0x7777, ambient, 1 * MS + 6 * US); /* not in the read window */
	/* conn 2's request */
	enter(w, LOOP, server, 1 * MS + 10 * US);
	h.ts_ns = 1 * MS + 11 * US;
	tg_taskcpu__server_read(w->t, &h, 2, true);
	link_ctx(w, LOOP, 0xb00, server, 1 * MS + 12 * US);
	/* the tasks run */
	enter(w, LOOP, 0xa00, 2 * MS);
	burn(w, LOOP, 300 * US);
	enter(w, LOOP, 0xb00, 3 * MS);
	burn(w, LOOP, 111 * US);
	enter(w, LOOP, ambient, 4 * MS); /* uvloop writes after the step */
	burn(w, LOOP, 20 * US);
	r1 = request(w, 1, ambient, 1 * MS, 4 * MS + 100 * US, LOOP, 1);
	assert_int_equal(r1.usage.flags, TG_USAGE_VALID);
	assert_int_equal(r1.usage.cpu_ns, 300 * US);
	r2 = request(w, 2, ambient, 1 * MS + 9 * US, 4 * MS + 200 * US, LOOP, 2);
	assert_int_equal(r2.usage.cpu_ns, 111 * US);
	assert_true(stats(w).unknown_ctx > 0);
	world_free(w);
}

/* A request uvicorn queues behind its connection's unfinished previous
 * response gets its task from that response's last send, after other
 * connections' requests were read and given theirs: each task goes to its
 * own connection; a body chunk (not a request start) leaves nothing behind. */
static void test_task_from_reads_in_order(void **state)
{
	struct world *w = world_new();
	struct tg_ev_hdr h = {.type = TG_EV_DATA, .pid = PID, .tid = LOOP};
	struct tg_request r0, r1, r2, r3;
	const uint64_t ambient = 0xfff0, server = 0xeee0;

	(void)state;
	/* conn 1's first request: read, its task 0x900 */
	enter(w, LOOP, server, 1 * MS);
	h.ts_ns = 1 * MS + 1 * US;
	tg_taskcpu__point(w->t, &h);
	tg_taskcpu__server_read(w->t, &h, 1, true);
	link_ctx(w, LOOP, 0x900, server, 1 * MS + 2 * US);
	enter(w, LOOP, 0x900, 2 * MS);
	burn(w, LOOP, 100 * US);
	enter(w, LOOP, ambient, 3 * MS);
	r0 = request(w, 1, ambient, 1 * MS, 3 * MS + 10 * US, LOOP, 1);
	assert_int_equal(r0.usage.cpu_ns, 100 * US);
	/* conn 1's next request arrives before uvicorn saw the previous end;
	 * conn 2's request and a body chunk of conn 3 right after */
	h.ts_ns = 4 * MS;
	tg_taskcpu__server_read(w->t, &h, 1, true);
	h.ts_ns = 4 * MS + 1 * US;
	tg_taskcpu__server_read(w->t, &h, 2, true);
	enter(w, LOOP, server, 4 * MS + 2 * US);
	link_ctx(w, LOOP, 0xb00, server, 4 * MS + 3 * US); /* conn 2's task */
	link_ctx(w, LOOP, 0xb10, server, 4 * MS + 4 * US); /* its done callback */
	h.ts_ns = 4 * MS + 5 * US;
	tg_taskcpu__server_read(w->t, &h, 3, false);
	/* the previous request's task ends its response: conn 1's task */
	enter(w, LOOP, 0x900, 5 * MS);
	link_ctx(w, LOOP, 0xa00, 0x900, 5 * MS + 1 * US);
	enter(w, LOOP, 0xa00, 6 * MS);
	burn(w, LOOP, 400 * US);
	enter(w, LOOP, 0xb00, 7 * MS);
	burn(w, LOOP, 222 * US);
	enter(w, LOOP, ambient, 8 * MS);
	r1 = request(w, 1, ambient, 4 * MS, 8 * MS + 100 * US, LOOP, 2);
	r2 = request(w, 2, ambient, 4 * MS + 1 * US, 8 * MS + 200 * US, LOOP, 3);
	assert_int_equal(r1.usage.cpu_ns, 400 * US);
	assert_int_equal(r2.usage.cpu_ns, 222 * US);
	/* conn 3 never started a request here: nothing bound to it, and its
	 * request (whose task is unknown) is not given figures it does not have */
	r3 = request(w, 3, ambient, 4 * MS + 2 * US, 8 * MS + 300 * US, LOOP, 4);
	assert_int_equal(r3.usage.cpu_ns, 0);
	assert_int_equal(r3.usage.flags & TG_USAGE_VALID, 0);
	world_free(w);
}

static void test_spans_truncated(void **state)
{
	struct world *w = world_new();
	struct tg_request r;
	uint64_t ts = 2 * MS;

	(void)state;
	link_ctx(w, LOOP, 0x1000, CONN_CTX, 1 * MS);
	for (int i = 0; i < 12; i++) {
		link_ctx(w, LOOP, 0x1100 + (uint64_t)i * 16, 0x1000, ts);
		enter(w, LOOP, 0x1100 + (uint64_t)i * 16, ts);
		for (int j = 0; j < 4; j++) {
			burn(w, LOOP, 10 * US);
			enter(w, LOOP, 0x2000, ts + 20 * US);
			ts += 1 * MS;
			enter(w, LOOP, 0x1100 + (uint64_t)i * 16, ts);
		}
		enter(w, LOOP, 0x2000, ts + 1 * US);
		ts += 1 * MS;
	}
	r = request(w, 1, 0x1000, 1 * MS, ts, LOOP, 1);
	assert_int_equal(r.usage.cpu_ns, 12 * 4 * 10 * US);
	assert_int_equal(r.usage.nspans, TG_SPANS_MAX);
	assert_true(r.usage.flags & TG_USAGE_SPANS_TRUNC);
	world_free(w);
}

/* Garbage: short, wrong kind, LINK without a Context, wrong type. */
static void test_garbage(void **state)
{
	struct world *w = world_new();
	struct tg_ev_task e = task_ev(w, LOOP, TG_TASK_ENTER, 0x1000, 0, 1 * MS);
	uint8_t junk[200];

	(void)state;
	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(e) - 1), -EBADMSG);
	assert_int_equal(tg_taskcpu__event(w->t, &e, 10), -EBADMSG);
	e.kind = 9;
	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(e)), -EBADMSG);
	e.kind = 0;
	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(e)), -EBADMSG);
	e.kind = TG_TASK_LINK;
	e.ctx = 0;
	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(e)), -EBADMSG);
	e.hdr.type = TG_EV_GC;
	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(struct tg_ev_gc) - 8), -EBADMSG);
	e.hdr.type = TG_EV_DATA;
	assert_int_equal(tg_taskcpu__event(w->t, &e, sizeof(e)), -EBADMSG);
	assert_int_equal(stats(w).malformed, 7);
	/* Random bytes with a task header: accepted or rejected, never a crash. */
	srand(42);
	for (int i = 0; i < 2000; i++) {
		struct tg_ev_hdr *h = (struct tg_ev_hdr *)junk;

		for (size_t j = 0; j < sizeof(junk); j++)
			junk[j] = (uint8_t)rand();
		h->type = i % 2 ? TG_EV_TASK : TG_EV_GC;
		h->pid = PID + (uint32_t)(i % 3);
		h->tid = LOOP + (uint32_t)(rand() % 4);
		((struct tg_ev_task *)junk)->kind = (uint32_t)(rand() % 5);
		tg_taskcpu__event(w->t, junk, (size_t)(rand() % (int)sizeof(junk)));
		tg_taskcpu__point(w->t, h);
	}
	world_free(w);
}

/* ---- through the pipeline ---- */

struct psink {
	struct tg_request req;
	int nreq;
	int nusage;
	int64_t usage_id;
	struct tg_usage usage;
};

static int64_t p_on_request(void *ctx, const struct tg_request *r)
{
	struct psink *s = ctx;

	s->req = *r;
	return ++s->nreq + 100;
}

static void p_on_usage(void *ctx, int64_t id, const struct tg_usage *u)
{
	struct psink *s = ctx;

	s->nusage++;
	s->usage_id = id;
	s->usage = *u;
}

static void p_task(struct tg_pipeline *p, uint32_t tid, uint32_t kind, uint64_t ctx,
		   uint64_t parent, uint64_t ts, uint64_t oncpu)
{
	struct tg_ev_task e;

	memset(&e, 0, sizeof(e));
	e.hdr.type = TG_EV_TASK;
	e.hdr.size = sizeof(e);
	e.hdr.pid = PID;
	e.hdr.tid = tid;
	e.hdr.ts_ns = ts;
	e.hdr.oncpu_ns = oncpu;
	e.kind = kind;
	e.ctx = ctx;
	e.parent = parent;
	assert_int_equal(tg_pipeline__event(p, &e, sizeof(e)), 0);
}

static void p_data(struct tg_pipeline *p, uint32_t tid, uint32_t seq, uint8_t dir, const char *text,
		   uint64_t ts, uint64_t oncpu, uint64_t key)
{
	size_t size;
	struct tg_ev_data *d = evgen_data(PID, 7, 1, seq, dir, text, strlen(text), 1024, ts, &size);

	d->hdr.tid = tid;
	d->hdr.oncpu_ns = oncpu;
	d->task_key = key;
	assert_int_equal(tg_pipeline__event(p, d, size), 0);
	free(d);
}

static void test_through_pipeline(void **state)
{
	struct psink s = {0};
	struct tg_pipeline_cfg cfg = {
	    .on_request = p_on_request, .on_usage = p_on_usage, .ctx = &s};
	struct tg_pipeline *p = tg_pipeline__new(&cfg);
	struct tg_ev_conn c = evgen_conn(PID, 7, 1, 40000, 0, TG_ORIGIN_ACCEPT);
	struct tg_pipeline_stats ps;
	struct tg_taskcpu_stats ts;
	struct tg_ev_task bad;

	(void)state;
	assert_non_null(p);
	assert_int_equal(tg_pipeline__event(p, &c, sizeof(c)), 0);
	/* stdlib asyncio shape: the handle's Context reads, the task is made in
	 * it, runs a pool job, and writes the response itself. */
	p_task(p, LOOP, TG_TASK_ENTER, 0x500, 0, 1 * MS, 0);
	p_data(p, LOOP, 0, TG_DIR_IN, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 1 * MS + 10 * US,
	       20 * US, 0);
	p_task(p, LOOP, TG_TASK_LINK, 0x1000, 0x500, 1 * MS + 20 * US, 25 * US);
	p_task(p, LOOP, TG_TASK_ENTER, 0x1000, 0, 1 * MS + 30 * US, 30 * US);
	p_task(p, LOOP, TG_TASK_LINK, 0x2000, 0x1000, 1 * MS + 40 * US, 70 * US);
	p_task(p, LOOP, TG_TASK_PARK, 0, 0, 1 * MS + 50 * US, 80 * US);
	p_task(p, W1, TG_TASK_ENTER, 0x2000, 0, 1 * MS + 150 * US, 5 * MS);
	p_task(p, W1, TG_TASK_PARK, 0, 0, 2 * MS, 5 * MS + 600 * US);
	p_task(p, LOOP, TG_TASK_ENTER, 0x1000, 0, 2 * MS + 100 * US, 90 * US);
	p_data(p, LOOP, 1, TG_DIR_OUT, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
	       2 * MS + 200 * US, 150 * US, 0x1000);
	assert_int_equal(s.nreq, 1);
	assert_int_equal(s.req.resp_tid, LOOP);
	assert_int_equal(s.req.resp_oncpu_ns, 150 * US);
	assert_int_equal(s.req.usage.flags, TG_USAGE_VALID);
	/* task: 50 us before the job, 10 us from the loop's wake-up to its
	 * ENTER (charged to the Context it was in: the resolution), 60 us up to
	 * the write; job: 600 us */
	assert_int_equal(s.req.usage.cpu_ns, 720 * US);
	assert_int_equal(s.req.usage.cpu_pool_ns, 600 * US);
	assert_int_equal(s.req.usage.pool_wait_ns, 110 * US);
	p_task(p, LOOP, TG_TASK_ENTER, 0x500, 0, 2 * MS + 300 * US, 200 * US);
	assert_int_equal(s.nusage, 0); /* no counters moved: nothing to update */
	/* Garbage task events count as malformed; old (ABI 2) streams untouched. */
	memset(&bad, 0, sizeof(bad));
	bad.hdr.type = TG_EV_TASK;
	bad.hdr.size = 40;
	assert_int_equal(tg_pipeline__event(p, &bad, 40), -EBADMSG);
	tg_pipeline__stats(p, &ps);
	assert_int_equal(ps.malformed, 1);
	tg_pipeline__task_stats(p, &ts);
	assert_int_equal(ts.requests, 1);
	assert_int_equal(ts.task_events, 9);
	tg_pipeline__finish(p, 3 * MS);
	tg_pipeline__free(p);
}

/* A worker still running when the response is written: on_usage later. */
static void test_pipeline_update(void **state)
{
	struct psink s = {0};
	struct tg_pipeline_cfg cfg = {
	    .on_request = p_on_request, .on_usage = p_on_usage, .ctx = &s};
	struct tg_pipeline *p = tg_pipeline__new(&cfg);
	struct tg_ev_conn c = evgen_conn(PID, 7, 1, 40000, 0, TG_ORIGIN_ACCEPT);

	(void)state;
	assert_non_null(p);
	assert_int_equal(tg_pipeline__event(p, &c, sizeof(c)), 0);
	p_task(p, LOOP, TG_TASK_ENTER, 0x500, 0, 1 * MS, 0);
	p_data(p, LOOP, 0, TG_DIR_IN, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 1 * MS + 10 * US,
	       20 * US, 0);
	p_task(p, LOOP, TG_TASK_LINK, 0x1000, 0x500, 1 * MS + 20 * US, 25 * US);
	p_task(p, LOOP, TG_TASK_ENTER, 0x1000, 0, 1 * MS + 30 * US, 30 * US);
	p_task(p, LOOP, TG_TASK_LINK, 0x2000, 0x1000, 1 * MS + 40 * US, 70 * US);
	p_task(p, W1, TG_TASK_ENTER, 0x2000, 0, 1 * MS + 150 * US, 5 * MS);
	p_data(p, LOOP, 1, TG_DIR_OUT, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
	       2 * MS + 200 * US, 150 * US, 0x1000);
	assert_int_equal(s.nreq, 1);
	assert_true(s.req.usage.flags & TG_USAGE_PARTIAL);
	p_task(p, W1, TG_TASK_PARK, 0, 0, 2 * MS + 300 * US, 5 * MS + 600 * US);
	p_task(p, LOOP, TG_TASK_ENTER, 0x500, 0, 2 * MS + 400 * US, 200 * US);
	assert_int_equal(s.nusage, 1);
	assert_int_equal(s.usage_id, 101);
	assert_int_equal(s.usage.flags, TG_USAGE_VALID);
	assert_int_equal(s.usage.cpu_ns, 720 * US);
	tg_pipeline__finish(p, 3 * MS);
	tg_pipeline__free(p);
}

/* A timing-only client event (another service) of conn 2, fd 9. */
static void p_net(struct tg_pipeline *p, uint32_t seq, uint8_t dir, uint32_t len, uint64_t ts,
		  uint64_t key)
{
	size_t size;
	struct tg_ev_data *d = evgen_data(PID, 9, 2, seq, dir, "", 0, 0, ts, &size);

	d->hdr.tid = LOOP;
	d->len = len;
	d->flags = TG_DATA_TIMING;
	d->task_key = key;
	assert_int_equal(tg_pipeline__event(p, d, size), 0);
	free(d);
}

/* The request's task calls another service: from its write to the first
 * read of the answer it waits on the network (net_ns, a NET span). A second
 * write before the answer (pipelined) does not restart the wait; the read
 * after the answer's first does not end another; the loop's own Context's
 * exchange is nobody's; lost events end a wait unanswered. */
static void test_network_wait(void **state)
{
	struct psink s = {0};
	struct tg_pipeline_cfg cfg = {
	    .on_request = p_on_request, .on_usage = p_on_usage, .ctx = &s};
	struct tg_pipeline *p = tg_pipeline__new(&cfg);
	struct tg_ev_conn c = evgen_conn(PID, 7, 1, 40000, 0, TG_ORIGIN_ACCEPT);
	struct tg_ev_conn up = evgen_conn(PID, 9, 2, 8080, 0, TG_ORIGIN_CONNECT);
	struct tg_pipeline_stats ps;
	bool net_span = false;

	(void)state;
	assert_non_null(p);
	up.role = TG_ROLE_CLIENT;
	assert_int_equal(tg_pipeline__event(p, &c, sizeof(c)), 0);
	assert_int_equal(tg_pipeline__event(p, &up, sizeof(up)), 0);
	p_task(p, LOOP, TG_TASK_ENTER, 0x500, 0, 1 * MS, 0);
	p_data(p, LOOP, 0, TG_DIR_IN, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 1 * MS + 10 * US,
	       20 * US, 0);
	p_task(p, LOOP, TG_TASK_LINK, 0x1000, 0x500, 1 * MS + 20 * US, 25 * US);
	p_task(p, LOOP, TG_TASK_ENTER, 0x1000, 0, 1 * MS + 30 * US, 30 * US);
	p_net(p, 0, TG_DIR_OUT, 120, 1 * MS + 100 * US, 0x1000);
	p_net(p, 1, TG_DIR_OUT, 80, 1 * MS + 150 * US, 0x1000);
	p_task(p, LOOP, TG_TASK_PARK, 0, 0, 1 * MS + 160 * US, 60 * US);
	p_net(p, 2, TG_DIR_IN, 4000, 3 * MS + 100 * US, 0);
	p_net(p, 3, TG_DIR_IN, 4000, 3 * MS + 200 * US, 0);
	/* the loop's own exchange: no request's */
	p_net(p, 4, TG_DIR_OUT, 10, 3 * MS + 300 * US, 0x500);
	p_net(p, 5, TG_DIR_IN, 10, 3 * MS + 900 * US, 0);
	/* a write whose answer is lost with other events: no wait */
	p_net(p, 6, TG_DIR_OUT, 10, 4 * MS, 0x1000);
	p_net(p, 9, TG_DIR_IN, 10, 9 * MS, 0);
	p_task(p, LOOP, TG_TASK_ENTER, 0x1000, 0, 9 * MS + 100 * US, 70 * US);
	p_data(p, LOOP, 1, TG_DIR_OUT, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
	       9 * MS + 200 * US, 150 * US, 0x1000);
	assert_int_equal(s.nreq, 1);
	assert_int_equal(s.req.usage.flags, TG_USAGE_VALID);
	assert_int_equal(s.req.usage.net_ns, 2 * MS);
	for (uint32_t i = 0; i < s.req.usage.nspans; i++) {
		const struct tg_span *sp = &s.req.usage.spans[i];

		if (sp->kind == TG_SPAN_NET) {
			assert_false(net_span);
			net_span = true;
			assert_int_equal(sp->start_us, 90); /* from the request's start */
			assert_int_equal(sp->dur_us, 2000);
			assert_int_equal(sp->tid, LOOP);
			assert_int_equal(sp->cpu_us, 0);
		}
	}
	assert_true(net_span);
	tg_pipeline__stats(p, &ps);
	assert_int_equal(ps.net_waits, 2); /* the request's and the loop's */
	tg_pipeline__finish(p, 10 * MS);
	tg_pipeline__free(p);
}

/* An exec: the new image's Contexts are not the old one's. What the old
 * one's were doing is forgotten (and a pending request completed). */
static void test_exec_forgets_contexts(void **state)
{
	struct psink s = {0};
	struct tg_pipeline_cfg cfg = {
	    .on_request = p_on_request, .on_usage = p_on_usage, .ctx = &s};
	struct tg_pipeline *p = tg_pipeline__new(&cfg);
	struct tg_taskcpu_stats ts;
	struct tg_ev_proc e;

	(void)state;
	assert_non_null(p);
	p_task(p, LOOP, TG_TASK_LINK, 0x1000, 0x500, 1 * MS, 0);
	p_task(p, LOOP, TG_TASK_ENTER, 0x1000, 0, 1 * MS + 10 * US, 10 * US);
	tg_pipeline__task_stats(p, &ts);
	assert_true(ts.accounts > 0);
	memset(&e, 0, sizeof(e));
	e.hdr.type = TG_EV_PROC;
	e.hdr.size = sizeof(e);
	e.hdr.pid = PID;
	e.hdr.tid = LOOP;
	e.hdr.ts_ns = 2 * MS;
	e.kind = TG_PROC_EXEC;
	assert_int_equal(tg_pipeline__event(p, &e, sizeof(e)), 0);
	tg_pipeline__task_stats(p, &ts);
	assert_int_equal(ts.accounts, 0);
	tg_pipeline__finish(p, 3 * MS);
	tg_pipeline__free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_request_one_thread),
	    cmocka_unit_test(test_interleaved_tasks),
	    cmocka_unit_test(test_lost_events_flagged),
	    cmocka_unit_test(test_child_task_and_older_context),
	    cmocka_unit_test(test_pool_job),
	    cmocka_unit_test(test_lock_wait),
	    cmocka_unit_test(test_pool_job_partial_then_update),
	    cmocka_unit_test(test_pending_deadline),
	    cmocka_unit_test(test_gc),
	    cmocka_unit_test(test_faults_and_heap),
	    cmocka_unit_test(test_address_reuse),
	    cmocka_unit_test(test_pid_without_task_events),
	    cmocka_unit_test(test_process_exit),
	    cmocka_unit_test(test_horizon),
	    cmocka_unit_test(test_task_from_connection),
	    cmocka_unit_test(test_task_from_reads_in_order),
	    cmocka_unit_test(test_spans_truncated),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_through_pipeline),
	    cmocka_unit_test(test_pipeline_update),
	    cmocka_unit_test(test_network_wait),
	    cmocka_unit_test(test_exec_forgets_contexts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
