/* SPDX-License-Identifier: MIT */
/*
 * Samples -> symbols -> requests -> store (profile.h). Symbols are kept in
 * two tables that live as long as the profile (the writer thread reads the
 * frames they hold): frames interned by (qualname, file, line), so each has
 * one struct tg_pframe whose address the writer caches, and instruction
 * sites (pid, code, tag, lasti) -> frame. A site missing at trace time is
 * read from the process (pysym.h) and announced as a TG_EV_PYSYM event, so
 * the recording holds it before the sample that needed it; a site missing at
 * replay is "[unknown]". Sites that failed to resolve are remembered too
 * (not announced), so a bad address costs one read.
 *
 * Task -> connection (pytask.h): a sample whose root coroutine is a uvicorn
 * request task is read once live for its peer port and held under the key
 * PEER_KEY | port instead of its task key; a finished request claims both its
 * task key and its peer key. The resolution (pid, coroutine) -> port is
 * cached until the end of the request it pointed to (a coroutine address is
 * reused once its task is gone: a later sample reads it again), valid only
 * for samples after the connection's previous request ended (a sample read
 * late may find a newer task at its coroutine's address), and announced as
 * "task PID CORO CTX PORT FROM" so replay uses the same ports. Not done for
 * a process whose requests name every Context they ran in (per-task
 * accounting on: cfg.contexts_known): the sample's Context is claimed by its
 * request, and the reads (≈ 23 µs a new task) are saved.
 */
#include "profile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrib.h"
#include "log.h"
#include "profile_store.h"
#include "pysym.h"
#include "pytask.h"
#include "timeglass/events.h"
#include "u64map.h"

#define TICK_NS 100000000ULL
#define CLAIM_BATCH 256
#define PEER_KEY (1ULL << 63)  /* attribution key of a peer port (never a user address) */
#define NEG_TTL_NS 50000000ULL /* a coroutine that is no request task is read again after this */
#define MAX_TASKS 4096	       /* tasks or connections cached before idle ones are dropped */

struct pframe {
	struct tg_pframe f;
	struct pframe *next; /* same hash */
};

struct site {
	uint32_t pid, tag, lasti;
	uint64_t code;
	const struct tg_pframe *f;
	struct site *next; /* same hash */
};

/* A task (pid, root coroutine, Context) resolved to a peer port (0: no
 * request task). Both addresses are reused after the task is gone. */
struct task {
	uint32_t pid;
	uint16_t port;
	uint64_t coro, ctx;
	uint64_t from;	/* samples before this time get no port (they predate the task) */
	uint64_t until; /* live, port 0: valid for samples up to this time */
	uint64_t gen;	/* live, port set: requests finished on the connection when read */
};

/* A connection (pid, peer port) seen in task reads or finished requests (live). */
struct conn {
	uint32_t pid;
	uint16_t port;
	uint64_t nreq;	   /* requests finished on it */
	uint64_t last_end; /* end of the last one */
};

struct pyproc {
	uint32_t pid;
	int err;
	struct tg_py_offsets off;
};

struct item {
	struct tg_psample s;
	const struct tg_pframe *frames[];
};

struct tg_profile {
	struct tg_profile_cfg cfg;
	struct tg_pysym *sym; /* live only */
	struct tg_pstore *ps;
	struct tg_attrib *attrib;
	struct tg_u64map frames; /* hash(name, file, line) -> struct pframe chain */
	struct tg_u64map sites;	 /* hash(pid, code, tag, lasti) -> struct site chain */
	struct tg_u64map tasks;	 /* hash(pid, coro, ctx) -> struct task */
	struct tg_u64map ports;	 /* hash(pid, port) -> struct conn (live) */
	struct pyproc *procs;	 /* runtimes read for task resolution (live) */
	size_t nprocs;
	const struct tg_pframe *unknown, *freed;
	uint64_t last_tick;
	bool finished;
	struct tg_profile_stats stats;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h;
}

static uint64_t fix_key(uint64_t k)
{
	return k == 0 || k == UINT64_MAX ? 1 : k;
}

static uint64_t str_hash(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

/* The one struct tg_pframe of (name, file, line), or NULL (ENOMEM). */
static const struct tg_pframe *intern(struct tg_profile *p, const char *name, const char *file,
				      int line)
{
	uint64_t k = fix_key(
	    mix(str_hash(str_hash(0xcbf29ce484222325ULL, name), file), (uint64_t)(uint32_t)line));
	struct pframe *head = tg_u64map__get(&p->frames, k), *f;

	for (f = head; f; f = f->next)
		if (f->f.line == line && !strcmp(f->f.name, name) && !strcmp(f->f.file, file))
			return &f->f;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->f.name = strdup(name);
	f->f.file = strdup(file);
	f->f.line = line;
	f->next = head;
	if (!f->f.name || !f->f.file || tg_u64map__put(&p->frames, k, f)) {
		free((char *)f->f.name);
		free((char *)f->f.file);
		free(f);
		return NULL;
	}
	return &f->f;
}

static uint64_t site_key(uint32_t pid, uint64_t code, uint32_t tag, uint32_t lasti)
{
	return fix_key(mix(mix(mix(code, pid), tag), lasti));
}

static struct site *site_get(struct tg_profile *p, uint32_t pid, uint64_t code, uint32_t tag,
			     uint32_t lasti)
{
	struct site *s = tg_u64map__get(&p->sites, site_key(pid, code, tag, lasti));

	for (; s; s = s->next)
		if (s->pid == pid && s->code == code && s->tag == tag && s->lasti == lasti)
			return s;
	return NULL;
}

static int site_put(struct tg_profile *p, uint32_t pid, uint64_t code, uint32_t tag, uint32_t lasti,
		    const struct tg_pframe *f)
{
	uint64_t k = site_key(pid, code, tag, lasti);
	struct site *s = site_get(p, pid, code, tag, lasti);

	if (s) {
		s->f = f;
		return 0;
	}
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	*s = (struct site){.pid = pid, .tag = tag, .lasti = lasti, .code = code, .f = f};
	s->next = tg_u64map__get(&p->sites, k);
	if (tg_u64map__put(&p->sites, k, s)) {
		free(s);
		return -ENOMEM;
	}
	return 0;
}

/* Copy s into buf with tabs and line breaks made '?' (they separate fields). */
static const char *clean(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < len; i++)
		buf[i] = s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

/* The frame of one sampled site. */
static const struct tg_pframe *symbolise(struct tg_profile *p, uint32_t pid,
					 const struct tg_py_frame *fr)
{
	struct site *s = site_get(p, pid, fr->code, fr->tag, fr->lasti);
	const struct tg_pframe *f;
	struct tg_pysym_frame out;
	char name[512], file[1024], *text = NULL;
	int ret;

	if (s)
		return s->f;
	if (!p->sym) {
		p->stats.unknown++;
		return p->unknown;
	}
	ret = tg_pysym__resolve(p->sym, (pid_t)pid, fr->code, fr->lasti, fr->tag, &out);
	if (ret) {
		f = ret == -ESTALE ? p->freed : p->unknown;
		p->stats.unknown++;
		/* A stale site stays stale; other failures (unreadable memory) too. */
		site_put(p, pid, fr->code, fr->tag, fr->lasti, f);
		return f;
	}
	clean(out.qualname ? out.qualname : "?", name, sizeof(name));
	clean(out.filename ? out.filename : "?", file, sizeof(file));
	f = intern(p, name, file, out.line);
	if (!f || site_put(p, pid, fr->code, fr->tag, fr->lasti, f))
		return p->unknown;
	p->stats.symbolised++;
	if (p->cfg.emit &&
	    asprintf(&text, "%" PRIu32 " 0x%" PRIx64 " %" PRIu32 " %" PRIu32 "\t%s\t%s\t%d", pid,
		     (uint64_t)fr->code, fr->tag, fr->lasti, name, file, out.line) >= 0) {
		p->cfg.emit(p->cfg.ctx, pid, text);
		free(text);
	}
	return f;
}

static uint64_t task_key(uint32_t pid, uint64_t coro, uint64_t ctx)
{
	return fix_key(mix(mix(coro, ctx), pid));
}

static uint64_t port_key(uint32_t pid, uint16_t port)
{
	return fix_key(mix(PEER_KEY | port, pid));
}

/* The connection (pid, port), created when asked; NULL on a hash collision. */
static struct conn *conn_get(struct tg_profile *p, uint32_t pid, uint16_t port, bool create)
{
	uint64_t k = port_key(pid, port);
	struct conn *c = tg_u64map__get(&p->ports, k);

	if (c || !create)
		return c && c->pid == pid && c->port == port ? c : NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	*c = (struct conn){.pid = pid, .port = port};
	if (tg_u64map__put(&p->ports, k, c)) {
		free(c);
		return NULL;
	}
	return c;
}

/* The task entry of (pid, coro, ctx); created (never valid) when asked. */
static struct task *task_get(struct tg_profile *p, uint32_t pid, uint64_t coro, uint64_t ctx,
			     bool create)
{
	uint64_t k = task_key(pid, coro, ctx);
	struct task *t = tg_u64map__get(&p->tasks, k);

	if (t && (t->pid != pid || t->coro != coro || t->ctx != ctx)) {
		if (!create)
			return NULL;
		/* Hash collision: the slot is taken over. */
		*t = (struct task){.pid = pid, .coro = coro, .ctx = ctx};
		return t;
	}
	if (t || !create)
		return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	*t = (struct task){.pid = pid, .coro = coro, .ctx = ctx};
	if (tg_u64map__put(&p->tasks, k, t)) {
		free(t);
		return NULL;
	}
	return t;
}

/* Drop the tasks and connections of pid (pid 0: all), or with now_ns the
 * tasks and connections idle for the horizon. */
static void tasks_purge(struct tg_profile *p, uint32_t pid, uint64_t now_ns)
{
	size_t pos = 0;
	uint64_t k;
	void *v;

	while (tg_u64map__next(&p->tasks, &pos, &k, &v)) {
		struct task *t = v;

		if (now_ns ? t->until + p->cfg.horizon_ns < now_ns : !pid || t->pid == pid) {
			tg_u64map__del(&p->tasks, k);
			free(t);
		}
	}
	pos = 0;
	while (tg_u64map__next(&p->ports, &pos, &k, &v)) {
		struct conn *c = v;

		if (now_ns ? c->last_end + p->cfg.horizon_ns < now_ns : !pid || c->pid == pid) {
			tg_u64map__del(&p->ports, k);
			free(c);
		}
	}
}

/* Offsets of pid's runtime for task reads, or NULL. */
static const struct tg_py_offsets *task_offsets(struct tg_profile *p, uint32_t pid)
{
	struct tg_pyruntime rt;
	struct pyproc *pp;
	int ret;

	for (size_t i = 0; i < p->nprocs; i++)
		if (p->procs[i].pid == pid)
			return p->procs[i].err ? NULL : &p->procs[i].off;
	ret = tg_pyruntime__detect((pid_t)pid, &rt);
	if (ret == -ESRCH || ret == -EPERM || ret == -EACCES)
		return NULL; /* not cached: may work later */
	pp = realloc(p->procs, (p->nprocs + 1) * sizeof(*pp));
	if (!pp)
		return NULL;
	p->procs = pp;
	pp[p->nprocs] = (struct pyproc){.pid = pid, .err = ret, .off = rt.off};
	p->nprocs++;
	return ret ? NULL : &pp[p->nprocs - 1].off;
}

static void task_forget_proc(struct tg_profile *p, uint32_t pid)
{
	for (size_t i = 0; i < p->nprocs; i++) {
		if (p->procs[i].pid == pid) {
			p->procs[i] = p->procs[--p->nprocs];
			break;
		}
	}
	tasks_purge(p, pid, 0);
}

/* Read coroutine t->coro of a sample at ts again and announce a change. */
static void task_read(struct tg_profile *p, struct task *t, uint64_t ts)
{
	const struct tg_py_offsets *off = task_offsets(p, t->pid);
	uint16_t port = 0, old = t->port;
	uint64_t old_from = t->from;
	struct conn *c;
	char text[160];

	if (!off || tg_pytask__peer_port((pid_t)t->pid, off, t->coro, &port))
		port = 0;
	c = port ? conn_get(p, t->pid, port, true) : NULL;
	t->port = c ? port : 0;
	t->from = ts > NEG_TTL_NS ? ts - NEG_TTL_NS : 0;
	t->until = ts + NEG_TTL_NS;
	if (c) {
		/* The task serves the connection's current request: it started
		 * after the previous one ended. */
		t->from = c->last_end + 1;
		t->until = ts;
		t->gen = c->nreq;
		p->stats.tasks++;
	}
	if ((t->port != old || t->from != old_from) && p->cfg.emit) {
		snprintf(text, sizeof(text),
			 "task %" PRIu32 " 0x%" PRIx64 " 0x%" PRIx64 " %u %" PRIu64, t->pid,
			 t->coro, t->ctx, (unsigned)t->port, t->from);
		p->cfg.emit(p->cfg.ctx, t->pid, text);
	}
}

/* Live: whether t's resolution holds for a sample at ts. */
static bool task_valid(struct tg_profile *p, const struct task *t, uint64_t ts)
{
	const struct conn *c;

	if (!t->until)
		return false; /* never read */
	if (!t->port)
		return ts <= t->until && ts + NEG_TTL_NS >= t->from;
	c = conn_get(p, t->pid, t->port, false);
	if (!c || ts < t->from)
		return false;
	/* Its request is running, or ended after ts (a late sample). */
	return c->nreq == t->gen || (c->nreq == t->gen + 1 && ts <= c->last_end);
}

/* The peer port of the request task of a sample at ts (0: none known). */
static uint16_t task_port(struct tg_profile *p, uint32_t pid, uint64_t coro, uint64_t ctx,
			  uint64_t ts)
{
	struct task *t;

	if (p->sym && p->cfg.contexts_known && p->cfg.contexts_known(p->cfg.contexts_ctx, pid)) {
		p->stats.by_context++;
		return 0; /* the Context key claims it (tg_profile__request) */
	}
	t = task_get(p, pid, coro, ctx, p->sym != NULL);
	if (!t)
		return 0;
	if (p->sym && !task_valid(p, t, ts))
		task_read(p, t, ts);
	return ts >= t->from ? t->port : 0;
}

/* The port of a peer "1.2.3.4:5678" / "[::1]:5678", or 0. */
static uint16_t peer_port(const char *peer)
{
	const char *c = strrchr(peer, ':');
	char *end;
	unsigned long v;

	if (!c || !c[1])
		return 0;
	v = strtoul(c + 1, &end, 10);
	return *end || v > UINT16_MAX ? 0 : (uint16_t)v;
}

static void resolve(void *ctx, void *arg, int64_t request_id)
{
	struct tg_profile *p = ctx;
	struct item *it = arg;

	if (p->finished) { /* freed without finish: the store may be gone */
		free(it);
		return;
	}
	it->s.request_id = request_id;
	if (request_id > 0)
		p->stats.attributed++;
	it->s.frames = it->frames;
	if (tg_pstore__add(p->ps, &it->s))
		tg_warn("could not queue a sample for the database");
	free(it);
}

struct tg_profile *tg_profile__new(const struct tg_profile_cfg *cfg)
{
	struct tg_profile *p = calloc(1, sizeof(*p));
	char text[32];

	if (!p)
		goto err;
	p->cfg = *cfg;
	if (!p->cfg.horizon_ns)
		p->cfg.horizon_ns = 30000000000ULL;
	if (tg_u64map__init(&p->frames, 1024) || tg_u64map__init(&p->sites, 4096) ||
	    tg_u64map__init(&p->tasks, 256) || tg_u64map__init(&p->ports, 256))
		goto err;
	p->unknown = intern(p, "[unknown]", "?", 0);
	p->freed = intern(p, "[freed code object]", "?", 0);
	if (!p->unknown || !p->freed)
		goto err;
	p->ps = tg_pstore__new(cfg->store);
	if (!p->ps)
		goto err;
	p->attrib = tg_attrib__new(p->cfg.horizon_ns, resolve, p);
	if (!p->attrib)
		goto err;
	if (cfg->live && !(p->sym = tg_pysym__new()))
		goto err;
	if (cfg->sample_hz) {
		tg_pstore__set_hz(p->ps, cfg->sample_hz);
		snprintf(text, sizeof(text), "hz %" PRIu32, cfg->sample_hz);
		if (cfg->emit)
			cfg->emit(cfg->ctx, 0, text);
	}
	return p;
err:
	tg_profile__free(p);
	errno = ENOMEM;
	return NULL;
}

static int on_sample(struct tg_profile *p, const struct tg_ev_sample *e, size_t size)
{
	size_t n = e->nframes, i;
	uint64_t key = e->task_ctx;
	struct item *it;
	uint16_t port;

	if (size < sizeof(*e) + n * sizeof(e->frames[0]))
		return -EBADMSG;
	p->stats.samples++;
	it = malloc(sizeof(*it) + n * sizeof(const struct tg_pframe *));
	if (!it)
		return 0;
	it->s = (struct tg_psample){.ts_ns = e->hdr.ts_ns,
				    .pid = e->hdr.pid,
				    .tid = e->hdr.tid,
				    .flags = e->flags,
				    .nframes = n};
	/* Root first: frames[] in the event are innermost first. */
	for (i = 0; i < n; i++)
		it->frames[i] = symbolise(p, e->hdr.pid, &e->frames[n - 1 - i]);
	if (e->hdr.ts_ns > p->last_tick + TICK_NS) {
		tg_attrib__tick(p->attrib, e->hdr.ts_ns);
		p->last_tick = e->hdr.ts_ns;
		if (p->tasks.live > MAX_TASKS || p->ports.live > MAX_TASKS)
			tasks_purge(p, 0, e->hdr.ts_ns);
	}
	port = e->task_coro ? task_port(p, e->hdr.pid, e->task_coro, e->task_ctx, e->hdr.ts_ns) : 0;
	if (port)
		key = PEER_KEY | port;
	tg_attrib__item(p->attrib, e->hdr.pid, key, e->hdr.ts_ns, it);
	return 0;
}

/* "PID CORO CTX PORT FROM" (after "task "): replay's task -> port. */
static int on_task(struct tg_profile *p, const char *text)
{
	unsigned long long pid, coro, ctx, port, from;
	struct task *t;
	int n = -1;

	if (sscanf(text, "%llu %llx %llx %llu %llu%n", &pid, &coro, &ctx, &port, &from, &n) != 5 ||
	    n < 0 || text[n] || !pid || pid > UINT32_MAX || !coro || port > UINT16_MAX)
		return -EBADMSG;
	if (p->sym)
		return 0; /* live: own reads */
	t = task_get(p, (uint32_t)pid, coro, ctx, true);
	if (t) {
		t->port = (uint16_t)port;
		t->from = from;
	}
	return 0;
}

/* "PID CODE TAG LASTI\tQUALNAME\tFILE\tLINE", "task ..." or "hz N". */
static int on_pysym(struct tg_profile *p, const struct tg_ev_text *e, size_t size)
{
	size_t tlen = size - sizeof(*e);
	unsigned long long pid, code, tag, lasti;
	const struct tg_pframe *f;
	char *text, *name, *file, *line, *end;
	long ln;
	int ret = -EBADMSG;

	if (!tlen || !memchr(e->text, '\0', tlen))
		return -EBADMSG;
	text = strdup(e->text);
	if (!text)
		return 0;
	if (!strncmp(text, "hz ", 3)) {
		ln = strtol(text + 3, &end, 10);
		if (ln > 0 && ln < 100000 && !*end) {
			tg_pstore__set_hz(p->ps, (uint32_t)ln);
			ret = 0;
		}
		goto out;
	}
	if (!strncmp(text, "task ", 5)) {
		ret = on_task(p, text + 5);
		goto out;
	}
	name = strchr(text, '\t');
	file = name ? strchr(name + 1, '\t') : NULL;
	line = file ? strchr(file + 1, '\t') : NULL;
	if (!line)
		goto out;
	*name++ = *file++ = *line++ = '\0';
	errno = 0;
	pid = strtoull(text, &end, 10);
	code = strtoull(end, &end, 0);
	tag = strtoull(end, &end, 10);
	lasti = strtoull(end, &end, 10);
	ln = strtol(line, &line, 10);
	if (errno || *end || *line || pid > UINT32_MAX || tag > UINT32_MAX || lasti > UINT32_MAX)
		goto out;
	f = intern(p, name, file, (int)ln);
	ret = 0;
	if (f && !site_put(p, (uint32_t)pid, code, (uint32_t)tag, (uint32_t)lasti, f))
		p->stats.symbolised++;
out:
	free(text);
	return ret;
}

int tg_profile__event(struct tg_profile *p, const void *ev, size_t size)
{
	const struct tg_ev_hdr *h = ev;
	int ret = 0;

	if (size < sizeof(*h) || h->size != size)
		return -EBADMSG;
	if (h->type == TG_EV_SAMPLE)
		ret = size < sizeof(struct tg_ev_sample) ? -EBADMSG : on_sample(p, ev, size);
	else if (h->type == TG_EV_PYSYM)
		ret = size <= sizeof(struct tg_ev_text) ? -EBADMSG : on_pysym(p, ev, size);
	else if (h->type == TG_EV_PROC && size >= sizeof(struct tg_ev_proc) && p->sym) {
		const struct tg_ev_proc *e = ev;

		if (e->kind == TG_PROC_EXIT || e->kind == TG_PROC_EXEC) {
			tg_pysym__forget(p->sym, (pid_t)h->pid);
			tg_pytask__forget((pid_t)h->pid);
			task_forget_proc(p, h->pid);
		}
	}
	if (ret)
		p->stats.malformed++;
	return ret;
}

/* Resolve the samples of key inside req's window to id; remember: keep
 * (key, window) among the recent requests for samples delivered late (done
 * for the response's Context only: the ring of recent requests is small). */
static void claim_in(struct tg_profile *p, const struct tg_request *req, uint64_t key,
		     uint64_t from, uint64_t to, int64_t id, bool remember)
{
	void *out[CLAIM_BATCH];
	size_t n, i;

	do {
		n = tg_attrib__claim(p->attrib, req->pid, key, from, to, out, CLAIM_BATCH);
		for (i = 0; i < n; i++)
			resolve(p, out[i], id);
	} while (n == CLAIM_BATCH);
	if (remember && id > 0)
		tg_attrib__request_stored(p->attrib, req->pid, key, req->start_ns, req->end_ns, id);
}

static void claim(struct tg_profile *p, const struct tg_request *req, uint64_t key, int64_t id,
		  bool remember)
{
	claim_in(p, req, key, req->start_ns, req->end_ns, id, remember);
}

void tg_profile__request(struct tg_profile *p, const struct tg_request *req, int64_t id)
{
	uint16_t port;
	struct conn *c;

	if (!p || p->finished)
		return;
	if (req->task_key)
		claim(p, req, req->task_key, id, true);
	for (uint32_t k = 0; k < req->nset_keys; k++) {
		uint64_t from, to; /* only while the address was that Context */

		if (tg_request__set_window(req, k, &from, &to))
			claim_in(p, req, req->set_keys[k], from, to, id, false);
	}
	port = peer_port(req->peer);
	if (!port)
		return;
	claim(p, req, PEER_KEY | port, id, true);
	if (!p->sym)
		return;
	/* The tasks read to serve this connection end with its request: their
	 * addresses may serve another one after (task_valid). */
	c = conn_get(p, req->pid, port, true);
	if (c) {
		c->nreq++;
		c->last_end = req->end_ns;
	}
}

void tg_profile__finish(struct tg_profile *p)
{
	if (!p || p->finished)
		return;
	tg_attrib__free(p->attrib);
	p->attrib = NULL;
	tg_pstore__finish(p->ps);
	p->finished = true;
}

void tg_profile__stats(const struct tg_profile *p, struct tg_profile_stats *out)
{
	*out = p->stats;
}

static void free_chains(struct tg_u64map *m, bool frames)
{
	size_t pos = 0;
	uint64_t k;
	void *v;

	while (tg_u64map__next(m, &pos, &k, &v)) {
		if (frames) {
			struct pframe *f = v, *next;

			for (; f; f = next) {
				next = f->next;
				free((char *)f->f.name);
				free((char *)f->f.file);
				free(f);
			}
		} else {
			struct site *s = v, *next;

			for (; s; s = next) {
				next = s->next;
				free(s);
			}
		}
	}
	tg_u64map__destroy(m);
}

void tg_profile__free(struct tg_profile *p)
{
	if (!p)
		return;
	if (p->attrib) {
		/* Not finished: drop held samples without writing them. */
		p->finished = true;
		tg_attrib__free(p->attrib);
	}
	tg_pysym__free(p->sym);
	tg_pstore__free(p->ps);
	tasks_purge(p, 0, 0);
	tg_u64map__destroy(&p->tasks);
	tg_u64map__destroy(&p->ports);
	free(p->procs);
	free_chains(&p->sites, false);
	free_chains(&p->frames, true);
	free(p);
}
