/* SPDX-License-Identifier: MIT */
/*
 * Per-request CPU, waits, memory and GC (taskcpu.h).
 *
 * State: one account per (pid, Context) created by a LINK (Contexts never
 * seen created have none: their pieces are only counted in stats), one
 * thread record per (pid, tid) seen in a task event, a list of accounts per
 * server connection (the Contexts made in that connection's read callback).
 * Accounts form a tree (parent, children) for the request's set, and an
 * all-list for the horizon sweep. Nothing is allocated per event: an account
 * is made per LINK, its spans live inline (merged when a thread's pieces are
 * less than 200 us apart; the last one absorbs the rest when full).
 *
 * A request's accounts are forgotten once its figures are final; their
 * addresses go into a small direct-mapped table of finished Contexts so that
 * a late piece of one (a task's tail after its response) is dropped and
 * counted instead of re-creating it. A LINK at that address (reuse after
 * free) takes it out again.
 */
#include "taskcpu.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "u64map.h"

#define RDQ_N 16 /* request starts read and not yet given a task, per thread */
#define ORPH_N 8

#define ACCT_SPANS 8
#define MERGE_GAP_NS 200000ULL
#define FINISHED_N 4096
#define TICK_NS 100000000ULL /* pending deadlines checked every 100 ms of event time */
#define DEFAULT_HORIZON_NS 30000000000ULL
#define DEFAULT_PENDING_NS 1000000000ULL

struct aspan {
	uint64_t start, end, cpu;
	uint32_t tid;
	uint8_t kind;
};

struct connlist;

struct acct {
	uint32_t pid;
	uint64_t ctx;
	uint64_t link_ns;
	uint32_t link_tid;
	uint32_t enter_tid; /* thread of the first ENTER (0: not entered yet) */
	uint64_t enter_ns;
	uint64_t touched_ns;
	uint64_t cpu_ns, runq_ns, minflt, majflt, heap, gc_ns, lock_ns, net_ns;
	uint32_t gc_count;
	uint32_t ctid[2]; /* cpu of the first two threads it ran on; the rest in cpu_ns only */
	uint64_t ccpu[2];
	uint32_t nspans;
	bool spans_trunc;
	struct aspan spans[ACCT_SPANS];
	uint64_t mark;
	uint32_t pins; /* pending requests whose set holds it */
	bool lost;     /* events of a thread were lost while it ran there (TG_TASK_LOST) */
	bool retired;  /* its address was re-linked: out of the map, kept for those requests */
	uint64_t retired_ns; /* ... at this time */
	bool done;	     /* its request's response is complete (it may wait for figures) */
	struct acct *up, *kids, *sib, **psib; /* tree */
	struct connlist *cl;		      /* bound connection (NULL: none) */
	struct acct *cnext, **cprev;
	struct acct *anext, **aprev; /* all accounts */
};

struct connlist {
	uint64_t conn_id;
	struct acct *head;
};

struct thr {
	uint32_t pid, tid;
	uint64_t ctx; /* Context it runs in (0: none known) */
	bool open;    /* a piece is running (false: parked) */
	bool cut;     /* the open piece's CPU counts only up to cut_oncpu (response written) */
	bool watched; /* a pending request waits for its piece to end */
	uint64_t ts0, oncpu0, minflt0, majflt0, heap0, runq0;
	uint64_t last_ts, last_oncpu;
	uint64_t cut_oncpu;
	bool lock_park;	  /* it went to sleep on a futex (a lock, usually the GIL)... */
	uint64_t park_ts; /* ...then */
	/* Reads that started a request on a server connection, oldest first,
	 * waiting for the Context of the task that serves it (see on_link). */
	uint64_t rdq[RDQ_N];
	uint32_t rdq_n;
	uint64_t rd_last;   /* connection the last such Context was bound to */
	uint64_t rd_parent; /* ... made in this Context (its siblings go with it) */
};

struct proc {
	uint32_t pid;
	bool tracked; /* a TG_EV_TASK was seen: the figures mean something */
	struct thr **thr;
	size_t nthr, cap;
};

struct pend {
	struct pend *next;
	uint32_t pid, resp_tid, tid;
	int64_t id;
	uint64_t conn_id, key, start_ns, end_ns, resp_oncpu, deadline;
	struct tg_usage stored;
	struct acct **set; /* its accounts, pinned (collected once: addresses get reused) */
	size_t nset;
};

struct fin {
	uint32_t pid;
	uint64_t ctx;
	uint64_t conn_id; /* the connection of the request it was part of */
};

struct tg_taskcpu {
	struct tg_taskcpu_cfg cfg;
	struct tg_taskcpu_stats stats;
	struct tg_u64map accts; /* hash(pid, ctx) -> acct */
	struct tg_u64map thrs;	/* pid:tid -> thr */
	struct tg_u64map conns; /* conn_id -> connlist */
	struct acct *all;
	struct proc **procs;
	size_t nprocs;
	struct proc *last_proc;
	struct pend *pends;
	struct pend *last; /* made by tg_taskcpu__request, waiting for its id */
	uint64_t epoch;
	struct acct **set;
	size_t nset, capset;
	struct aspan *tmp;
	size_t ntmp, captmp;
	struct acct *orph[ORPH_N]; /* see collect */
	size_t norph;
	uint64_t next_tick, next_sweep;
	struct fin fin[FINISHED_N];
};

static uint64_t map_key(uint32_t pid, uint64_t ctx)
{
	uint64_t k = ctx * 0x9e3779b97f4a7c15ULL ^ pid;

	return k == 0 || k == UINT64_MAX ? 1 : k;
}

static uint64_t thr_key(uint32_t pid, uint32_t tid)
{
	return ((uint64_t)pid << 32 | tid) + 1;
}

static uint64_t sub(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

struct tg_taskcpu *tg_taskcpu__new(const struct tg_taskcpu_cfg *cfg)
{
	struct tg_taskcpu *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	if (cfg)
		t->cfg = *cfg;
	if (!t->cfg.horizon_ns)
		t->cfg.horizon_ns = DEFAULT_HORIZON_NS;
	if (!t->cfg.pending_ns)
		t->cfg.pending_ns = DEFAULT_PENDING_NS;
	if (tg_u64map__init(&t->accts, 1024) || tg_u64map__init(&t->thrs, 64) ||
	    tg_u64map__init(&t->conns, 256)) {
		tg_u64map__destroy(&t->accts);
		tg_u64map__destroy(&t->thrs);
		tg_u64map__destroy(&t->conns);
		free(t);
		errno = ENOMEM;
		return NULL;
	}
	return t;
}

/* ---- finished Contexts ---- */

static struct fin *fin_slot(struct tg_taskcpu *t, uint32_t pid, uint64_t ctx)
{
	return &t->fin[(map_key(pid, ctx) >> 20) % FINISHED_N];
}

static bool fin_has(struct tg_taskcpu *t, uint32_t pid, uint64_t ctx)
{
	struct fin *f = fin_slot(t, pid, ctx);

	return f->ctx == ctx && f->pid == pid;
}

/* ---- processes and threads ---- */

static struct proc *proc_get(struct tg_taskcpu *t, uint32_t pid, bool create)
{
	struct proc *p, **n;

	if (t->last_proc && t->last_proc->pid == pid)
		return t->last_proc;
	for (size_t i = 0; i < t->nprocs; i++) {
		if (t->procs[i]->pid == pid) {
			t->last_proc = t->procs[i];
			return t->procs[i];
		}
	}
	if (!create)
		return NULL;
	p = calloc(1, sizeof(*p));
	n = p ? realloc(t->procs, (t->nprocs + 1) * sizeof(struct proc *)) : NULL;
	if (!n) {
		free(p);
		return NULL;
	}
	t->procs = n;
	p->pid = pid;
	t->procs[t->nprocs++] = p;
	t->last_proc = p;
	return p;
}

static struct thr *thr_get(struct tg_taskcpu *t, struct proc *p, uint32_t tid, bool create)
{
	struct thr *th = tg_u64map__get(&t->thrs, thr_key(p->pid, tid)), **n;

	if (th || !create)
		return th;
	if (p->nthr == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;

		n = realloc(p->thr, cap * sizeof(struct thr *));
		if (!n)
			return NULL;
		p->thr = n;
		p->cap = cap;
	}
	th = calloc(1, sizeof(*th));
	if (!th)
		return NULL;
	th->pid = p->pid;
	th->tid = tid;
	if (tg_u64map__put(&t->thrs, thr_key(p->pid, tid), th)) {
		free(th);
		return NULL;
	}
	p->thr[p->nthr++] = th;
	return th;
}

/* ---- accounts ---- */

static struct acct *acct_get(struct tg_taskcpu *t, uint32_t pid, uint64_t ctx)
{
	struct acct *a;

	if (!ctx)
		return NULL;
	a = tg_u64map__get(&t->accts, map_key(pid, ctx));
	return a && a->pid == pid && a->ctx == ctx ? a : NULL;
}

static void unbind_conn(struct tg_taskcpu *t, struct acct *a)
{
	struct connlist *cl = a->cl;

	if (!cl)
		return;
	*a->cprev = a->cnext;
	if (a->cnext)
		a->cnext->cprev = a->cprev;
	a->cl = NULL;
	if (!cl->head) {
		tg_u64map__del(&t->conns, cl->conn_id);
		free(cl);
	}
}

static void bind_conn(struct tg_taskcpu *t, struct acct *a, uint64_t conn_id)
{
	struct connlist *cl = tg_u64map__get(&t->conns, conn_id);

	if (!cl) {
		cl = calloc(1, sizeof(*cl));
		if (!cl)
			return;
		cl->conn_id = conn_id;
		if (tg_u64map__put(&t->conns, conn_id, cl)) {
			free(cl);
			return;
		}
	}
	a->cl = cl;
	a->cnext = cl->head;
	a->cprev = &cl->head;
	if (cl->head)
		cl->head->cprev = &a->cnext;
	cl->head = a;
}

/* Take a out of the tree: its parent's children list, and orphan its own. */
static void detach(struct acct *a)
{
	struct acct *k, *next;

	if (a->psib) {
		*a->psib = a->sib;
		if (a->sib)
			a->sib->psib = a->psib;
	}
	a->up = NULL;
	a->sib = NULL;
	a->psib = NULL;
	for (k = a->kids; k; k = next) {
		next = k->sib;
		k->up = NULL;
		k->sib = NULL;
		k->psib = NULL;
	}
	a->kids = NULL;
}

static void acct_free(struct tg_taskcpu *t, struct acct *a)
{
	detach(a);
	unbind_conn(t, a);
	*a->aprev = a->anext;
	if (a->anext)
		a->anext->aprev = a->aprev;
	if (!a->retired)
		tg_u64map__del(&t->accts, map_key(a->pid, a->ctx));
	t->stats.accounts--;
	free(a);
}

/* A LINK at now: a fresh account for (pid, ctx), the old one at that address reset. */
static struct acct *acct_new(struct tg_taskcpu *t, uint32_t pid, uint64_t ctx, uint64_t now)
{
	uint64_t mk = map_key(pid, ctx);
	struct acct *a = tg_u64map__get(&t->accts, mk);
	struct fin *f = fin_slot(t, pid, ctx);

	if (f->ctx == ctx && f->pid == pid)
		f->ctx = 0;
	if (a) {
		if (a->pid != pid || a->ctx != ctx)
			return NULL; /* hash collision: leave the other one alone */
		if (a->pins || ((a->up || a->cl) && !a->done)) {
			/* A pending request, or one still running (a thread-pool
			 * job's Context freed and its address reused by the next
			 * job of the same request), still needs its figures: out of
			 * the map, kept in its tree until that request is done. */
			tg_u64map__del(&t->accts, mk);
			a->retired = true;
			a->retired_ns = now;
		} else {
			acct_free(t, a);
		}
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->pid = pid;
	a->ctx = ctx;
	if (tg_u64map__put(&t->accts, mk, a)) {
		free(a);
		return NULL;
	}
	a->anext = t->all;
	a->aprev = &t->all;
	if (t->all)
		t->all->aprev = &a->anext;
	t->all = a;
	t->stats.accounts++;
	return a;
}

static void add_span(struct acct *a, uint8_t kind, uint32_t tid, uint64_t start, uint64_t end,
		     uint64_t cpu)
{
	struct aspan *s;

	if (end < start)
		end = start;
	if (a->nspans) {
		s = &a->spans[a->nspans - 1];
		if (kind == TG_SPAN_RUN && s->kind == kind && s->tid == tid && start >= s->end &&
		    start - s->end < MERGE_GAP_NS) {
			s->end = end;
			s->cpu += cpu;
			return;
		}
	}
	if (a->nspans == ACCT_SPANS) {
		s = &a->spans[ACCT_SPANS - 1];
		if (end > s->end)
			s->end = end;
		s->cpu += cpu;
		a->spans_trunc = true;
		return;
	}
	s = &a->spans[a->nspans++];
	s->start = start;
	s->end = end;
	s->cpu = cpu;
	s->tid = tid;
	s->kind = kind;
}

/* ---- pieces ---- */

static void point(struct thr *th, uint64_t ts, uint64_t oncpu)
{
	if (ts >= th->last_ts) {
		th->last_ts = ts;
		if (oncpu > th->last_oncpu)
			th->last_oncpu = oncpu;
	}
	if (th->ctx && !th->open) {
		th->open = true;
		th->ts0 = ts;
	}
}

static void check_pending(struct tg_taskcpu *t, uint32_t pid);

/* The thread's open piece ends at task event e: charge it to its Context. */
static void close_piece(struct tg_taskcpu *t, struct thr *th, const struct tg_ev_task *e)
{
	uint64_t oncpu = e->hdr.oncpu_ns, cpu, start = th->ts0;
	bool lock = th->lock_park;
	struct acct *a;

	th->lock_park = false;
	if (!th->ctx)
		return;
	if (th->cut && th->cut_oncpu < oncpu)
		oncpu = th->cut_oncpu;
	cpu = sub(oncpu, th->oncpu0);
	th->cut = false;
	t->stats.slices++;
	a = acct_get(t, th->pid, th->ctx);
	if (!a) {
		if (fin_has(t, th->pid, th->ctx))
			t->stats.late_dropped++;
		else
			t->stats.unknown_ctx++;
		return;
	}
	a->cpu_ns += cpu;
	for (int i = 0; i < 2; i++) {
		if (!a->ctid[i] || a->ctid[i] == th->tid) {
			a->ctid[i] = th->tid;
			a->ccpu[i] += cpu;
			break;
		}
	}
	a->minflt += sub(e->minflt, th->minflt0);
	a->majflt += sub(e->majflt, th->majflt0);
	a->heap += sub(e->heap_bytes, th->heap0);
	a->runq_ns += sub(e->runq_ns, th->runq0);
	/* Slept on a lock since its PARK: the time it neither ran nor waited
	 * for a CPU was the wait for the lock. */
	if (lock) {
		uint64_t span = sub(e->hdr.ts_ns, th->park_ts);

		a->lock_ns += sub(span, cpu + sub(e->runq_ns, th->runq0));
	}
	a->touched_ns = e->hdr.ts_ns;
	/* Not open: it slept (a PARK) and woke with no event since; it ran
	 * (cpu) in the same Context, at the end of the interval. */
	if (!th->open && e->hdr.ts_ns - start > cpu)
		start = e->hdr.ts_ns - cpu;
	if (cpu || e->hdr.ts_ns > start)
		add_span(a, TG_SPAN_RUN, th->tid, start, e->hdr.ts_ns, cpu);
}

static void start_counters(struct thr *th, const struct tg_ev_task *e)
{
	th->oncpu0 = e->hdr.oncpu_ns;
	th->minflt0 = e->minflt;
	th->majflt0 = e->majflt;
	th->heap0 = e->heap_bytes;
	th->runq0 = e->runq_ns;
}

/* The connection a's request tree is bound to, 0 when none. */
static uint64_t root_conn(const struct acct *a)
{
	for (int depth = 0; a && depth < 16; depth++, a = a->up)
		if (a->cl)
			return a->cl->conn_id;
	return 0;
}

/* a belongs to a request's tree: bound to a connection itself or below one
 * that is (a task or a child task; not a connection's or the server's own
 * Context). */
static bool in_tree(const struct acct *a)
{
	return root_conn(a) != 0;
}

/* Thread th runs in ctx from event e on (an ENTER, or the parent of a LINK,
 * read from the thread state). */
static void switch_to(struct tg_taskcpu *t, struct thr *th, const struct tg_ev_task *e,
		      uint64_t ctx)
{
	struct acct *a;
	bool watched = th->watched;

	close_piece(t, th, e);
	th->ctx = ctx;
	th->open = ctx != 0;
	th->ts0 = e->hdr.ts_ns;
	start_counters(th, e);
	a = acct_get(t, th->pid, ctx);
	/* Another callback or step: the one that made the last bound Context
	 * (data_received) is over. */
	th->rd_last = 0;
	if (a) {
		if (!a->enter_tid) {
			a->enter_tid = th->tid;
			a->enter_ns = e->hdr.ts_ns;
		}
		a->touched_ns = e->hdr.ts_ns;
	}
	if (watched) {
		th->watched = false;
		check_pending(t, th->pid);
	}
}

static void on_enter(struct tg_taskcpu *t, struct thr *th, const struct tg_ev_task *e)
{
	switch_to(t, th, e, e->ctx);
}

static bool idle_wait(int32_t nr)
{
	switch (nr) {
#ifdef SYS_epoll_wait
	case SYS_epoll_wait:
#endif
#ifdef SYS_epoll_pwait2
	case SYS_epoll_pwait2:
#endif
	case SYS_epoll_pwait:
		return true;
	default:
		return false;
	}
}

static void on_park(struct tg_taskcpu *t, struct thr *th, const struct tg_ev_task *e)
{
	bool watched = th->watched;

	close_piece(t, th, e);
	th->open = false;
	th->ts0 = e->hdr.ts_ns;
	th->lock_park = e->syscall == SYS_futex;
	th->park_ts = e->hdr.ts_ns;
	start_counters(th, e);
	/* Asleep on a lock (futex: the GIL, most often, held by a worker) right
	 * after a read: data_received has not run yet, the read window stays.
	 * Any other sleep (epoll_wait: the loop is idle) ends it. */
	if (e->syscall != SYS_futex) {
		th->rdq_n = 0;
		th->rd_last = 0;
	}
	/* Waiting for events: the event loop is idle, the Context it last
	 * entered is over. What it does when it wakes, before it enters one
	 * again (polling, reading sockets), is the loop's own work. */
	if (idle_wait(e->syscall))
		th->ctx = 0;
	if (watched) {
		th->watched = false;
		check_pending(t, th->pid);
	}
}

/* Forget th's unserved request-start read of conn (the newest). */
static void rdq_remove(struct thr *th, uint64_t conn)
{
	for (uint32_t i = th->rdq_n; i-- > 0;)
		if (th->rdq[i] == conn) {
			memmove(th->rdq + i, th->rdq + i + 1,
				(th->rdq_n - i - 1) * sizeof(th->rdq[0]));
			th->rdq_n--;
			return;
		}
}

static void on_link(struct tg_taskcpu *t, struct thr *th, const struct tg_ev_task *e)
{
	struct acct *a, *p;

	/* The creating thread runs in parent (read from its thread state): the
	 * Context it was last seen entering may have been left since (there is
	 * no exit probe), e.g. the loop's own code between two task steps. */
	if (e->parent && e->parent != e->ctx && (e->parent != th->ctx || !th->open))
		switch_to(t, th, e, e->parent);
	a = acct_new(t, th->pid, e->ctx, e->hdr.ts_ns);
	if (!a)
		return;
	a->link_ns = e->hdr.ts_ns;
	a->link_tid = th->tid;
	a->touched_ns = e->hdr.ts_ns;
	p = e->parent != e->ctx ? acct_get(t, th->pid, e->parent) : NULL;
	/* Made by a request whose response is already complete: not its work
	 * but the task of the next request on the same connection (uvicorn
	 * starts a request the client sent before it saw the previous response
	 * end from that response's last send). */
	if ((p && p->done) || (!p && e->parent && fin_has(t, th->pid, e->parent))) {
		uint64_t conn = p ? root_conn(p) : fin_slot(t, th->pid, e->parent)->conn_id;

		if (conn) {
			bind_conn(t, a, conn);
			rdq_remove(th, conn);
		}
		return;
	}
	if (p) {
		a->up = p;
		a->sib = p->kids;
		a->psib = &p->kids;
		if (p->kids)
			p->kids->psib = &a->sib;
		p->kids = a;
	}
	/* Made outside any request's task after a read that started a request
	 * (data_received creating the task that serves it): the root of the
	 * newest such request not served yet (an older one still waiting is a
	 * request uvicorn queued behind its connection's previous response: its
	 * task comes from that response's end, above); the Contexts made right
	 * after it in the same callback (the task's done callback) go with it.
	 * Only used where the response's Context does not lead to the request
	 * (uvloop writes responses outside the task; see collect). */
	if (!in_tree(p)) {
		if ((!th->rd_last || th->rd_parent != e->parent) && th->rdq_n) {
			th->rd_last = th->rdq[--th->rdq_n];
			th->rd_parent = e->parent;
		}
		if (th->rd_last && th->rd_parent == e->parent)
			bind_conn(t, a, th->rd_last);
	}
}

static void on_gc(struct tg_taskcpu *t, struct thr *th, const struct tg_ev_gc *e)
{
	struct acct *a = acct_get(t, th->pid, e->ctx ? e->ctx : th->ctx);
	uint64_t start = e->start_ns && e->start_ns <= e->hdr.ts_ns ? e->start_ns : e->hdr.ts_ns;

	if (!a)
		return;
	a->gc_ns += e->hdr.ts_ns - start;
	a->gc_count++;
	a->touched_ns = e->hdr.ts_ns;
	add_span(a, TG_SPAN_GC, th->tid, start, e->hdr.ts_ns, 0);
}

/* ---- the request's set and its figures ---- */

static int set_push(struct tg_taskcpu *t, struct acct *a)
{
	if (a->mark == t->epoch)
		return 0;
	if (t->nset == t->capset) {
		size_t cap = t->capset ? t->capset * 2 : 64;
		struct acct **n = realloc(t->set, cap * sizeof(struct acct *));

		if (!n)
			return -ENOMEM;
		t->set = n;
		t->capset = cap;
	}
	a->mark = t->epoch;
	t->set[t->nset++] = a;
	return 0;
}

static bool in_window(const struct acct *a, const struct pend *q)
{
	return a->link_ns >= q->start_ns && a->link_ns <= q->end_ns;
}

/* Collect the request's accounts into t->set (marked with a new epoch). */
static void collect(struct tg_taskcpu *t, const struct pend *q)
{
	struct acct *a = acct_get(t, q->pid, q->key), *next;
	struct connlist *cl;
	bool use_conn;

	t->epoch++;
	t->nset = 0;
	if (a && in_window(a, q)) {
		while (a->up && in_window(a->up, q))
			a = a->up;
		set_push(t, a);
	}
	/* The connection's bound roots only when the response's Context does
	 * not lead to the request (uvloop writes outside the task): where it
	 * does (the stdlib loop), binding's guesses are not needed. */
	use_conn = !t->nset;
	cl = q->conn_id ? tg_u64map__get(&t->conns, q->conn_id) : NULL;
	for (a = cl ? cl->head : NULL; a; a = next) {
		next = a->cnext;
		/* Bound before this request started: an earlier request's, and
		 * the connection's requests come one after the other. Unbound
		 * here, so the list stays as short as the requests in flight. */
		if (a->link_ns < q->start_ns) {
			unbind_conn(t, a); /* frees cl with its last entry: next is NULL then */
			continue;
		}
		if (!use_conn)
			continue;
		if (a->pid == q->pid && in_window(a, q))
			set_push(t, a);
	}
	t->norph = 0;
	for (size_t i = 0; i < t->nset; i++)
		for (struct acct *k = t->set[i]->kids; k; k = k->sib) {
			/* Made by the request's task but never run by the time its
			 * response is done: not its work. uvicorn creates the task
			 * of the next request this way when the client sent it
			 * before the previous response ended (pipelining). */
			if (!k->enter_tid) {
				if (t->norph < ORPH_N)
					t->orph[t->norph++] = k;
				continue;
			}
			if (set_push(t, k))
				return;
		}
}

/* The orphans found by the last collect (their parent's request is done)
 * are the task of the next request on the same connection (see collect). */
static void adopt_orphans(struct tg_taskcpu *t, uint32_t pid, uint32_t tid, uint64_t conn)
{
	struct proc *p = proc_get(t, pid, false);
	struct thr *th = p ? thr_get(t, p, tid, false) : NULL;

	for (size_t i = 0; th && i < t->norph; i++) {
		if (t->orph[i]->cl || !conn)
			continue;
		bind_conn(t, t->orph[i], conn);
		rdq_remove(th, conn);
	}
	t->norph = 0;
}

static void tmp_push(struct tg_taskcpu *t, uint8_t kind, uint32_t tid, uint64_t start, uint64_t end,
		     uint64_t cpu)
{
	struct aspan *s;

	if (t->ntmp == t->captmp) {
		size_t cap = t->captmp ? t->captmp * 2 : 64;
		struct aspan *n = realloc(t->tmp, cap * sizeof(*n));

		if (!n)
			return;
		t->tmp = n;
		t->captmp = cap;
	}
	s = &t->tmp[t->ntmp++];
	s->kind = kind;
	s->tid = tid;
	s->start = start;
	s->end = end;
	s->cpu = cpu;
}

static int span_cmp(const void *a, const void *b)
{
	const struct aspan *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static uint32_t us32(uint64_t ns)
{
	ns /= 1000;
	return ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static void build_spans(struct tg_taskcpu *t, const struct pend *q, struct tg_usage *u, bool trunc)
{
	size_t n = 0;

	qsort(t->tmp, t->ntmp, sizeof(*t->tmp), span_cmp);
	for (size_t i = 0; i < t->ntmp; i++) {
		const struct aspan *s = &t->tmp[i];
		uint64_t a = s->start < q->start_ns ? q->start_ns : s->start;
		uint64_t b = s->end > q->end_ns ? q->end_ns : s->end;
		struct tg_span *o;

		if (s->end < q->start_ns || s->start > q->end_ns)
			continue;
		if (n == TG_SPANS_MAX) {
			o = &u->spans[TG_SPANS_MAX - 1];
			if (b >
			    q->start_ns + (uint64_t)o->start_us * 1000 + (uint64_t)o->dur_us * 1000)
				o->dur_us = us32(b - q->start_ns) - o->start_us;
			o->cpu_us += us32(s->cpu);
			trunc = true;
			continue;
		}
		o = &u->spans[n++];
		o->start_us = us32(a - q->start_ns);
		o->dur_us = us32(b - a);
		o->cpu_us = us32(s->cpu);
		o->tid = s->tid;
		o->kind = s->kind;
	}
	u->nspans = (uint32_t)n;
	if (trunc)
		u->flags |= TG_USAGE_SPANS_TRUNC;
}

/* The figures of q's set (collect first). Returns true when complete: no
 * piece of the set is still open on a thread (the writing thread's piece,
 * whose CPU stops at the response, is waited for only for its counters). */
static bool compute(struct tg_taskcpu *t, const struct pend *q, struct tg_usage *u, bool watch)
{
	struct proc *p = proc_get(t, q->pid, false);
	uint32_t loop_tid = q->resp_tid ? q->resp_tid : q->tid;
	bool complete = true, trunc = false;

	memset(u, 0, sizeof(*u));
	/* No Context found for it (its task's creation was not seen, or could
	 * not be told apart): no figures rather than zeros. */
	if (!t->nset) {
		t->stats.unattributed++;
		return true;
	}
	u->flags = TG_USAGE_VALID;
	t->ntmp = 0;
	for (size_t i = 0; i < t->nset; i++) {
		const struct acct *a = t->set[i];
		uint64_t known = 0;

		u->cpu_ns += a->cpu_ns;
		for (int j = 0; j < 2; j++) {
			known += a->ccpu[j];
			if (a->ctid[j] && a->ctid[j] != loop_tid)
				u->cpu_pool_ns += a->ccpu[j];
		}
		u->cpu_pool_ns += sub(a->cpu_ns, known);
		u->runq_ns += a->runq_ns;
		u->minflt += a->minflt;
		u->majflt += a->majflt;
		u->heap_bytes += a->heap;
		u->gc_ns += a->gc_ns;
		u->gc_count += a->gc_count;
		u->lock_ns += a->lock_ns;
		u->net_ns += a->net_ns;
		trunc |= a->spans_trunc;
		if (a->lost)
			u->flags |= TG_USAGE_LOST;
		for (uint32_t j = 0; j < a->nspans; j++)
			tmp_push(t, a->spans[j].kind, a->spans[j].tid, a->spans[j].start,
				 a->spans[j].end, a->spans[j].cpu);
		/* Handed from the loop to another thread: waited for a worker. */
		if (a->enter_tid && a->link_tid == loop_tid && a->enter_tid != loop_tid &&
		    a->enter_ns >= a->link_ns) {
			u->pool_wait_ns += a->enter_ns - a->link_ns;
			tmp_push(t, TG_SPAN_POOL_WAIT, a->enter_tid, a->link_ns, a->enter_ns, 0);
		}
	}
	for (size_t i = 0; p && i < p->nthr; i++) {
		struct thr *th = p->thr[i];
		struct acct *a;
		uint64_t cpu, end;

		if (!th->ctx || !th->open)
			continue;
		a = acct_get(t, th->pid, th->ctx);
		if (!a || a->mark != t->epoch)
			continue;
		if (watch && th->tid == q->resp_tid && q->resp_oncpu && !th->cut) {
			th->cut = true;
			th->cut_oncpu = q->resp_oncpu;
		}
		if (th->cut) {
			cpu = sub(th->cut_oncpu, th->oncpu0);
			end = q->end_ns;
		} else {
			cpu = sub(th->last_oncpu, th->oncpu0);
			end = th->last_ts;
			u->flags |= TG_USAGE_PARTIAL;
		}
		u->cpu_ns += cpu;
		if (th->tid != loop_tid)
			u->cpu_pool_ns += cpu;
		tmp_push(t, TG_SPAN_RUN, th->tid, th->ts0, end > th->ts0 ? end : th->ts0, cpu);
		complete = false;
		if (watch)
			th->watched = true;
	}
	build_spans(t, q, u, trunc);
	return complete;
}

/* Forget the set's accounts: the request's figures are final. */
static void forget_set(struct tg_taskcpu *t, uint64_t conn_id)
{
	for (size_t i = 0; i < t->nset; i++) {
		struct acct *a = t->set[i];

		if (a->pins)
			continue; /* another pending request's too: freed with it */
		if (!a->retired) {
			struct fin *f = fin_slot(t, a->pid, a->ctx);

			f->pid = a->pid;
			f->ctx = a->ctx;
			f->conn_id = conn_id;
		}
		acct_free(t, a);
	}
	t->nset = 0;
}

/* Pin the set just collected to q (it waits for figures). */
static int pin_set(struct tg_taskcpu *t, struct pend *q)
{
	q->set = malloc((t->nset ? t->nset : 1) * sizeof(struct acct *));
	if (!q->set)
		return -ENOMEM;
	q->nset = t->nset;
	for (size_t i = 0; i < t->nset; i++) {
		q->set[i] = t->set[i];
		q->set[i]->pins++;
	}
	return 0;
}

/* Make q's pinned set the current one (t->set, marked), unpinned. */
static void load_set(struct tg_taskcpu *t, struct pend *q)
{
	t->epoch++;
	t->nset = 0;
	for (size_t i = 0; i < q->nset; i++) {
		q->set[i]->pins--;
		set_push(t, q->set[i]);
	}
	free(q->set);
	q->set = NULL;
	q->nset = 0;
}

/* Forget q's accounts and free it. */
static void pend_free(struct tg_taskcpu *t, struct pend *q)
{
	if (!q)
		return;
	load_set(t, q);
	forget_set(t, q->conn_id);
	free(q);
}

static bool same_figures(const struct tg_usage *a, const struct tg_usage *b)
{
	return a->cpu_ns == b->cpu_ns && a->cpu_pool_ns == b->cpu_pool_ns &&
	       a->runq_ns == b->runq_ns && a->pool_wait_ns == b->pool_wait_ns &&
	       a->minflt == b->minflt && a->majflt == b->majflt && a->heap_bytes == b->heap_bytes &&
	       a->gc_ns == b->gc_ns && a->gc_count == b->gc_count && a->lock_ns == b->lock_ns &&
	       a->net_ns == b->net_ns && a->flags == b->flags;
}

/* Recompute q; when complete (or forced), hand new figures to on_update,
 * forget its accounts and return true. */
static bool settle(struct tg_taskcpu *t, struct pend *q, bool force)
{
	struct tg_usage u;
	bool complete;

	load_set(t, q);
	complete = compute(t, q, &u, false);
	/* Not complete: keep waiting, unless forced or it cannot be kept (then
	 * settle with what there is). */
	if (!complete && !force && !pin_set(t, q))
		return false;
	if (!same_figures(&u, &q->stored) && t->cfg.on_update) {
		t->cfg.on_update(t->cfg.ctx, q->id, &u);
		t->stats.updates++;
	}
	forget_set(t, q->conn_id);
	return true;
}

static void settle_where(struct tg_taskcpu *t, uint32_t pid, uint64_t now, bool all)
{
	struct pend **pq, *q;

	for (pq = &t->pends; (q = *pq);) {
		bool force = all || q->deadline <= now;

		if ((pid && q->pid != pid) || !settle(t, q, force)) {
			pq = &q->next;
			continue;
		}
		*pq = q->next;
		free(q->set);
		free(q);
	}
}

static void check_pending(struct tg_taskcpu *t, uint32_t pid)
{
	settle_where(t, pid, 0, false);
}

void tg_taskcpu__request(struct tg_taskcpu *t, struct tg_request *req)
{
	struct proc *p = proc_get(t, req->pid, false);
	struct pend q = {0};

	memset(&req->usage, 0, sizeof(req->usage));
	req->nset_keys = 0;
	pend_free(t, t->last);
	t->last = NULL;
	if (!p || !p->tracked)
		return;
	q.pid = req->pid;
	q.tid = req->tid;
	q.resp_tid = req->resp_tid;
	q.resp_oncpu = req->resp_oncpu_ns;
	q.conn_id = req->conn_id;
	q.key = req->task_key;
	q.start_ns = req->start_ns;
	q.end_ns = req->end_ns ? req->end_ns : req->start_ns;
	q.deadline = q.end_ns + t->cfg.pending_ns;
	t->stats.requests++;
	collect(t, &q);
	for (size_t i = 0; i < t->nset; i++) {
		t->set[i]->done = true;
		if (t->set[i]->ctx != req->task_key && req->nset_keys < TG_SET_KEYS) {
			const struct acct *a = t->set[i];

			req->set_keys[req->nset_keys] = a->ctx;
			req->set_since[req->nset_keys] = a->link_ns;
			req->set_until[req->nset_keys] = a->retired ? a->retired_ns : UINT64_MAX;
			req->nset_keys++;
		}
	}
	if (compute(t, &q, &req->usage, true)) {
		forget_set(t, q.conn_id);
		adopt_orphans(t, q.pid, q.tid, q.conn_id);
		return;
	}
	adopt_orphans(t, q.pid, q.tid, q.conn_id);
	if (req->usage.flags & TG_USAGE_PARTIAL)
		t->stats.partial++;
	q.stored = req->usage;
	t->last = malloc(sizeof(*t->last));
	if (!t->last || pin_set(t, &q)) {
		free(t->last);
		t->last = NULL;
		forget_set(t, q.conn_id);
		return;
	}
	*t->last = q;
}

void tg_taskcpu__stored(struct tg_taskcpu *t, const struct tg_request *req, int64_t id)
{
	struct pend *q = t->last;

	t->last = NULL;
	if (!q)
		return;
	if (!id || q->pid != req->pid || q->start_ns != req->start_ns) {
		/* Not stored: nothing to update, its accounts are done with. */
		pend_free(t, q);
		return;
	}
	q->id = id;
	q->next = t->pends;
	t->pends = q;
}

/* ---- events ---- */

static void tick(struct tg_taskcpu *t, uint64_t now)
{
	struct acct *a, *next;
	uint64_t limit;

	t->next_tick = now + TICK_NS;
	if (t->pends)
		settle_where(t, 0, now, false);
	if (now < t->next_sweep)
		return;
	t->next_sweep = now + t->cfg.horizon_ns / 8;
	limit = sub(now, t->cfg.horizon_ns);
	for (a = t->all; a; a = next) {
		next = a->anext;
		if (a->touched_ns < limit && !a->pins) {
			acct_free(t, a);
			t->stats.expired++;
		}
	}
}

static void maybe_tick(struct tg_taskcpu *t, uint64_t ts)
{
	if (ts >= t->next_tick)
		tick(t, ts);
}

void tg_taskcpu__point(struct tg_taskcpu *t, const struct tg_ev_hdr *h)
{
	struct proc *p;
	struct thr *th;

	if (!t->nprocs)
		return;
	p = proc_get(t, h->pid, false);
	if (!p)
		return;
	th = thr_get(t, p, h->tid, false);
	if (th)
		point(th, h->ts_ns, h->oncpu_ns);
	maybe_tick(t, h->ts_ns);
}

void tg_taskcpu__server_read(struct tg_taskcpu *t, const struct tg_ev_hdr *h, uint64_t conn_id,
			     bool starts_request)
{
	struct proc *p = t->nprocs ? proc_get(t, h->pid, false) : NULL;
	struct thr *th = p ? thr_get(t, p, h->tid, true) : NULL;

	if (!th)
		return;
	th->rd_last = 0;
	if (!starts_request)
		return;
	if (th->rdq_n == RDQ_N) /* never served: the oldest is stale */
		memmove(th->rdq, th->rdq + 1, --th->rdq_n * sizeof(th->rdq[0]));
	th->rdq[th->rdq_n++] = conn_id;
}

void tg_taskcpu__net_wait(struct tg_taskcpu *t, uint32_t pid, uint32_t tid, uint64_t ctx,
			  uint64_t start_ns, uint64_t end_ns)
{
	struct acct *a = t->nprocs ? acct_get(t, pid, ctx) : NULL;

	if (!a || end_ns < start_ns)
		return;
	a->net_ns += end_ns - start_ns;
	add_span(a, TG_SPAN_NET, tid, start_ns, end_ns, 0);
}

void tg_taskcpu__server_accept(struct tg_taskcpu *t, const struct tg_ev_hdr *h)
{
	struct proc *p = t->nprocs ? proc_get(t, h->pid, false) : NULL;
	struct thr *th = p ? thr_get(t, p, h->tid, false) : NULL;

	if (th)
		th->rd_last = 0;
}

int tg_taskcpu__event(struct tg_taskcpu *t, const void *ev, size_t size)
{
	const struct tg_ev_hdr *h = ev;
	const struct tg_ev_task *e = ev;
	struct proc *p;
	struct thr *th;

	if (size < sizeof(*h))
		goto bad;
	if (h->type == TG_EV_TASK) {
		if (size < sizeof(*e) || TG_TASK_KIND(e->kind) < TG_TASK_ENTER ||
		    TG_TASK_KIND(e->kind) > TG_TASK_PARK || (e->kind & ~(0xffu | TG_TASK_LOST)) ||
		    (TG_TASK_KIND(e->kind) == TG_TASK_LINK && !e->ctx))
			goto bad;
	} else if (h->type != TG_EV_GC || size < sizeof(struct tg_ev_gc)) {
		goto bad;
	}
	p = proc_get(t, h->pid, true);
	th = p ? thr_get(t, p, h->tid, true) : NULL;
	if (!th)
		return 0; /* out of memory: the event is lost, not malformed */
	if (h->type == TG_EV_GC) {
		t->stats.gc_events++;
		point(th, h->ts_ns, h->oncpu_ns);
		on_gc(t, th, ev);
		maybe_tick(t, h->ts_ns);
		return 0;
	}
	t->stats.task_events++;
	p->tracked = true;
	if (e->kind & TG_TASK_LOST) {
		/* Events of this thread were lost since its last one: the piece
		 * ending here (and what it was part of) is not to be trusted. */
		struct acct *a = th->ctx ? acct_get(t, th->pid, th->ctx) : NULL;

		t->stats.lost_marks++;
		if (a)
			a->lost = true;
	}
	point(th, h->ts_ns, h->oncpu_ns);
	if (TG_TASK_KIND(e->kind) == TG_TASK_ENTER)
		on_enter(t, th, e);
	else if (TG_TASK_KIND(e->kind) == TG_TASK_PARK)
		on_park(t, th, e);
	else
		on_link(t, th, e);
	maybe_tick(t, h->ts_ns);
	return 0;
bad:
	t->stats.malformed++;
	return -EBADMSG;
}

void tg_taskcpu__proc_exit(struct tg_taskcpu *t, uint32_t pid, uint64_t ts_ns)
{
	struct proc *p = proc_get(t, pid, false);
	struct acct *a, *next;
	size_t i;

	(void)ts_ns;
	if (!p)
		return;
	settle_where(t, pid, 0, true);
	if (t->last && t->last->pid == pid) {
		pend_free(t, t->last);
		t->last = NULL;
	}
	for (a = t->all; a; a = next) {
		next = a->anext;
		if (a->pid == pid)
			acct_free(t, a);
	}
	for (i = 0; i < p->nthr; i++) {
		tg_u64map__del(&t->thrs, thr_key(pid, p->thr[i]->tid));
		free(p->thr[i]);
	}
	free(p->thr);
	for (i = 0; i < t->nprocs; i++)
		if (t->procs[i] == p)
			t->procs[i] = t->procs[--t->nprocs];
	if (t->last_proc == p)
		t->last_proc = NULL;
	free(p);
}

void tg_taskcpu__flush(struct tg_taskcpu *t)
{
	settle_where(t, 0, 0, true);
}

void tg_taskcpu__stats(const struct tg_taskcpu *t, struct tg_taskcpu_stats *out)
{
	*out = t->stats;
}

void tg_taskcpu__free(struct tg_taskcpu *t)
{
	if (!t)
		return;
	while (t->pends) {
		struct pend *q = t->pends;

		t->pends = q->next;
		free(q->set);
		free(q);
	}
	if (t->last)
		free(t->last->set);
	free(t->last);
	t->last = NULL;
	while (t->nprocs)
		tg_taskcpu__proc_exit(t, t->procs[0]->pid, 0);
	for (struct acct *a = t->all, *next; a; a = next) {
		next = a->anext;
		acct_free(t, a);
	}
	free(t->procs);
	free(t->set);
	free(t->tmp);
	tg_u64map__destroy(&t->accts);
	tg_u64map__destroy(&t->thrs);
	tg_u64map__destroy(&t->conns);
	free(t);
}
