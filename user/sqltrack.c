/* SPDX-License-Identifier: MIT */
/*
 * SQL per request (sqltrack.h). Each pgwire record becomes a heap struct
 * tg_query handed to an attrib instance keyed by (pid, task key, start
 * time); the request's claim counts and sums them before the request row is
 * stored, and resolving hands them to on_query with the request's id.
 *
 * Normalising and fingerprinting cost tens of microseconds (libpg_query), so
 * both are cached by the raw text (FNV-1a hash, text compared on hit); the
 * cache is simply emptied when it reaches CACHE_MAX entries. Time moves on
 * with the segments: attrib is ticked once a second of event time.
 */
#include "sqltrack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrib.h"
#include "hash.h"
#include "cstr.h"
#include "sqlnorm.h"
#include "u64map.h"

#define CACHE_MAX 4096
#define CLAIM_MAX 4096
#define TICK_NS 1000000000ULL
#define DEFAULT_HORIZON_NS 30000000000ULL
#define KEYS_MAX 65536

/* The last request seen with a task key. A real task key belongs to one
 * task, i.e. one request at a time; a key that two overlapping requests
 * carry is a context shared by many tasks (uvloop writes from its loop,
 * outside any task: docs/postgres.md), useless for attribution. */
struct key_use {
	uint64_t start, end;
	bool shared;
};

struct cache_ent {
	char *raw;
	char *norm;
	uint64_t fp;
};

struct tg_sqlconn {
	struct tg_sqltrack *t;
	struct tg_pg_conn *pg;
	uint64_t conn_id;
	uint32_t pid;
};

struct tg_sqltrack {
	struct tg_sqltrack_cfg cfg;
	struct tg_attrib *a;
	struct tg_u64map cache; /* hash(raw text) -> struct cache_ent */
	size_t ncache;
	struct tg_u64map keys; /* hash(pid, task key) -> struct key_use */
	size_t nkeys;
	uint64_t last_tick;
	void *claimed[CLAIM_MAX]; /* struct tg_query *, between request and stored */
	size_t nclaimed;
	size_t opened; /* PostgreSQL connections seen: none, nothing to do per request */
	char norm[TG_PG_TEXT_MAX];
	char text[TG_PG_TEXT_MAX]; /* the statement being made, before its record is */
};

static void resolve(void *ctx, void *item, int64_t request_id)
{
	struct tg_sqltrack *t = ctx;
	struct tg_query *q = item;

	q->request_id = request_id;
	if (t->cfg.on_query)
		t->cfg.on_query(t->cfg.ctx, q);
	free(q);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = tg_fnv1a(TG_FNV1A_SEED, s, strlen(s));

	return h == 0 || h == UINT64_MAX ? 1 : h;
}

static uint64_t key_hash(uint32_t pid, uint64_t key)
{
	uint64_t k = key * 0x9e3779b97f4a7c15ULL ^ pid;

	return k == 0 || k == UINT64_MAX ? 1 : k;
}

static void keys_clear(struct tg_sqltrack *t)
{
	size_t pos = 0;
	uint64_t key;
	void *val;

	while (tg_u64map__next(&t->keys, &pos, &key, &val))
		free(val);
	tg_u64map__destroy(&t->keys);
	tg_u64map__init(&t->keys, 1024);
	t->nkeys = 0;
}

static bool key_shared(const struct tg_sqltrack *t, uint32_t pid, uint64_t key)
{
	const struct key_use *u = tg_u64map__get(&t->keys, key_hash(pid, key));

	return u && u->shared;
}

/* Note the request's use of its key; true when the key is shared. */
static bool key_use(struct tg_sqltrack *t, const struct tg_request *req)
{
	uint64_t h = key_hash(req->pid, req->task_key);
	struct key_use *u = tg_u64map__get(&t->keys, h);

	if (u) {
		if (!u->shared && req->start_ns < u->end && u->start < req->end_ns)
			u->shared = true;
		u->start = req->start_ns;
		u->end = req->end_ns;
		return u->shared;
	}
	if (t->nkeys >= KEYS_MAX)
		keys_clear(t);
	u = calloc(1, sizeof(*u));
	if (!u)
		return false;
	u->start = req->start_ns;
	u->end = req->end_ns;
	if (tg_u64map__put(&t->keys, h, u))
		free(u);
	else
		t->nkeys++;
	return false;
}

static void cache_clear(struct tg_sqltrack *t)
{
	size_t pos = 0;
	uint64_t key;
	void *val;

	while (tg_u64map__next(&t->cache, &pos, &key, &val)) {
		struct cache_ent *e = val;

		free(e->raw);
		free(e->norm);
		free(e);
	}
	tg_u64map__destroy(&t->cache);
	tg_u64map__init(&t->cache, 1024);
	t->ncache = 0;
}

struct tg_sqltrack *tg_sqltrack__new(const struct tg_sqltrack_cfg *cfg)
{
	struct tg_sqltrack *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cfg = *cfg;
	if (!t->cfg.horizon_ns)
		t->cfg.horizon_ns = DEFAULT_HORIZON_NS;
	if (tg_u64map__init(&t->cache, 1024) || tg_u64map__init(&t->keys, 1024)) {
		tg_u64map__destroy(&t->cache);
		free(t);
		errno = ENOMEM;
		return NULL;
	}
	t->a = tg_attrib__new(t->cfg.horizon_ns, resolve, t);
	if (!t->a) {
		tg_u64map__destroy(&t->cache);
		tg_u64map__destroy(&t->keys);
		free(t);
		errno = ENOMEM;
		return NULL;
	}
	return t;
}

void tg_sqltrack__free(struct tg_sqltrack *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nclaimed; i++)
		resolve(t, t->claimed[i], 0);
	tg_attrib__free(t->a);
	cache_clear(t);
	tg_u64map__destroy(&t->cache);
	keys_clear(t);
	tg_u64map__destroy(&t->keys);
	free(t);
}

/* Normalised text (into out) and fingerprint of raw, from the cache. */
static void normalize(struct tg_sqltrack *t, const char *raw, char *out, size_t cap, uint64_t *fp)
{
	uint64_t h = fnv1a(raw);
	struct cache_ent *e = tg_u64map__get(&t->cache, h);

	if (e && strcmp(e->raw, raw) == 0)
		goto hit;
	if (tg_sql__normalize(raw, t->norm, sizeof(t->norm)) == -EINVAL)
		strcpy(t->norm, "?");
	*fp = 0;
	tg_sql__fingerprint(raw, fp);
	if (e)
		return; /* hash collision: keep the first, compute this one each time */
	if (t->ncache >= CACHE_MAX)
		cache_clear(t);
	e = calloc(1, sizeof(*e));
	if (e) {
		e->raw = strdup(raw);
		e->norm = strdup(t->norm);
		e->fp = *fp;
	}
	if (!e || !e->raw || !e->norm || tg_u64map__put(&t->cache, h, e)) {
		if (e) {
			free(e->raw);
			free(e->norm);
			free(e);
		}
		snprintf(out, cap, "%s", t->norm);
		return;
	}
	t->ncache++;
hit:
	snprintf(out, cap, "%s", e->norm);
	*fp = e->fp;
}

static void on_stmt(void *ctx, const struct tg_pg_stmt *s)
{
	struct tg_sqlconn *c = ctx;
	struct tg_sqltrack *t = c->t;
	uint64_t fingerprint;
	struct tg_query *q;
	size_t len;

	normalize(t, s->text, t->text, sizeof(t->text), &fingerprint);
	if (t->cfg.keep_values)
		snprintf(t->text, sizeof(t->text), "%s", s->text);
	len = tg_strnlen(t->text, sizeof(t->text) - 1);
	q = malloc(sizeof(*q) + len + 1);
	if (!q)
		return;
	memcpy(q + 1, t->text, len);
	((char *)(q + 1))[len] = '\0';
	q->statement = (const char *)(q + 1);
	q->fingerprint = fingerprint;
	q->request_id = 0;
	q->conn_id = c->conn_id;
	q->pid = c->pid;
	q->tid = s->tid;
	q->task_key = s->task_key;
	q->start_ns = s->start_ns;
	q->end_ns = s->end_ns >= s->start_ns ? s->end_ns : s->start_ns;
	q->first_row_ns = s->first_row_ns;
	q->rows = s->rows;
	q->flags = s->flags;
	memcpy(q->command, s->command, sizeof(q->command));
	memcpy(q->sqlstate, s->sqlstate, sizeof(q->sqlstate));
	memcpy(q->error, s->error, sizeof(q->error));
	memcpy(q->db_user, s->db_user, sizeof(q->db_user));
	memcpy(q->db_name, s->db_name, sizeof(q->db_name));
	/* a shared key attributes nothing: resolve at once (request 0) */
	tg_attrib__item(t->a, q->pid, key_shared(t, q->pid, q->task_key) ? 0 : q->task_key,
			q->start_ns, q);
}

struct tg_sqlconn *tg_sqltrack__open(struct tg_sqltrack *t, uint64_t conn_id, uint32_t pid,
				     bool preexisting)
{
	struct tg_sqlconn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	t->opened++;
	c->t = t;
	c->conn_id = conn_id;
	c->pid = pid;
	c->pg = tg_pg__new(NULL, on_stmt, c);
	if (!c->pg) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	if (preexisting)
		tg_pg__set_preexisting(c->pg);
	return c;
}

void tg_sqltrack__feed(struct tg_sqlconn *c, const struct tg_segment *seg)
{
	struct tg_sqltrack *t = c->t;

	if (tg_pg__abandoned(c->pg))
		return;
	tg_pg__feed(c->pg, seg);
	if (seg->ts_ns > t->last_tick + TICK_NS) {
		t->last_tick = seg->ts_ns;
		tg_attrib__tick(t->a, seg->ts_ns);
	}
}

void tg_sqltrack__feed_tls(struct tg_sqlconn *c, const struct tg_segment *seg)
{
	tg_pg__feed_tls(c->pg, seg);
}

void tg_sqltrack__encrypted(struct tg_sqlconn *c, uint64_t ts_ns)
{
	tg_pg__encrypted(c->pg, ts_ns);
}

void tg_sqltrack__gap(struct tg_sqlconn *c)
{
	tg_pg__gap(c->pg);
}

void tg_sqltrack__close(struct tg_sqlconn *c, uint64_t ts_ns)
{
	if (!c)
		return;
	tg_pg__close(c->pg, ts_ns);
	tg_pg__free(c->pg);
	free(c);
}

void tg_sqltrack__request(struct tg_sqltrack *t, struct tg_request *req)
{
	for (size_t i = 0; i < t->nclaimed; i++) /* stored was not called: no request */
		resolve(t, t->claimed[i], 0);
	t->nclaimed = 0;
	if (!t->opened)
		return;
	if (req->task_key && !key_use(t, req))
		t->nclaimed = tg_attrib__claim(t->a, req->pid, req->task_key, req->start_ns,
					       req->end_ns, t->claimed, CLAIM_MAX);
	/* Statements made in the request's other Contexts (a thread-pool job
	 * running psycopg2, a child task). */
	for (uint32_t k = 0; k < req->nset_keys && t->nclaimed < CLAIM_MAX; k++) {
		uint64_t from, to; /* only while the address was that Context */

		if (tg_request__set_window(req, k, &from, &to))
			t->nclaimed +=
			    tg_attrib__claim(t->a, req->pid, req->set_keys[k], from, to,
					     t->claimed + t->nclaimed, CLAIM_MAX - t->nclaimed);
	}
	for (size_t i = 0; i < t->nclaimed; i++) {
		const struct tg_query *q = t->claimed[i];

		req->sql_count++;
		req->sql_ns += q->end_ns - q->start_ns;
	}
}

void tg_sqltrack__stored(struct tg_sqltrack *t, const struct tg_request *req, int64_t id)
{
	for (size_t i = 0; i < t->nclaimed; i++)
		resolve(t, t->claimed[i], id);
	t->nclaimed = 0;
	if (req->task_key && id)
		tg_attrib__request_stored(t->a, req->pid, req->task_key, req->start_ns, req->end_ns,
					  id);
}

void tg_sqltrack__flush(struct tg_sqltrack *t)
{
	struct tg_attrib *a = tg_attrib__new(t->cfg.horizon_ns, resolve, t);

	if (!a)
		return;
	tg_attrib__free(t->a);
	t->a = a;
}

size_t tg_sqltrack__held(const struct tg_sqltrack *t)
{
	return tg_attrib__held(t->a);
}
