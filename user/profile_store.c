/* SPDX-License-Identifier: MIT */
/*
 * Samples in SQLite (profile_store.h). Writer: every sample is one
 * tg_store__call job run on the store's writer thread. Stacks are a trie
 * (stacks(id, parent, frame), parent 0 = root); the writer caches frame ids by
 * the address of the caller's interned struct tg_pframe and stack ids by
 * (parent, frame), so a sample whose stack was seen before costs one INSERT.
 * A batch the store rolls back also removes rows our caches point to: each
 * job first compares the highest ids in frames/stacks with the highest ids
 * cached (a rowid max is one b-tree seek) and drops the caches when the
 * table went backwards. Reader: trie chains are followed with a cache of
 * names, so a graph of many stacks reads each node once.
 */
#include "profile_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flamegraph.h"
#include "log.h"
#include "store.h"
#include "u64map.h"

#define MAX_DEPTH 512

enum stmt_idx {
	ST_MAX_FRAME,
	ST_MAX_STACK,
	ST_INS_FRAME,
	ST_SEL_FRAME,
	ST_INS_STACK,
	ST_SEL_STACK,
	ST_INS_SAMPLE,
	ST_ENDPOINT,
	ST_HZ,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_MAX_FRAME] = "SELECT coalesce(max(id), 0) FROM frames",
    [ST_MAX_STACK] = "SELECT coalesce(max(id), 0) FROM stacks",
    [ST_INS_FRAME] = "INSERT OR IGNORE INTO frames(name, file, line) VALUES (?, ?, ?)",
    [ST_SEL_FRAME] = "SELECT id FROM frames WHERE name = ? AND file = ? AND line = ?",
    [ST_INS_STACK] = "INSERT OR IGNORE INTO stacks(parent, frame) VALUES (?, ?)",
    [ST_SEL_STACK] = "SELECT id FROM stacks WHERE parent = ? AND frame = ?",
    [ST_INS_SAMPLE] = "INSERT INTO samples(run_id, ts_ns, pid, tid, request_id, stack_id, flags)"
		      " VALUES (?, ?, ?, ?, ?, ?, ?)",
    [ST_ENDPOINT] = "INSERT INTO profile_endpoint(run_id, method, route, stack_id, count)"
		    " SELECT ?1, method, coalesce(route, ''), ?2, 1 FROM requests WHERE id = ?3"
		    " ON CONFLICT DO UPDATE SET count = count + 1",
    [ST_HZ] = "UPDATE runs SET sample_hz = ?2 WHERE id = ?1",
};

struct tg_pstore {
	struct tg_store *store;
	sqlite3 *db; /* the writer's connection, learnt on the first job */
	sqlite3_stmt *st[ST_COUNT];
	struct tg_u64map frames; /* struct tg_pframe address -> frame id */
	struct tg_u64map stacks; /* parent << 32 | frame -> stack id */
	int64_t max_frame, max_stack;
	struct tg_pstore_stats stats;
};

struct job {
	struct tg_pstore *ps;
	struct tg_psample s;
	uint32_t hz;
	int kind; /* 0 sample, 1 hz, 2 finish */
	const struct tg_pframe *frames[];
};

struct tg_pstore *tg_pstore__new(struct tg_store *store)
{
	struct tg_pstore *ps = calloc(1, sizeof(*ps));

	if (!ps)
		goto err;
	ps->store = store;
	if (tg_u64map__init(&ps->frames, 1024) || tg_u64map__init(&ps->stacks, 4096))
		goto err;
	return ps;
err:
	tg_pstore__free(ps);
	errno = ENOMEM;
	return NULL;
}

static void finalize_all(struct tg_pstore *ps)
{
	size_t i;

	for (i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(ps->st[i]);
		ps->st[i] = NULL;
	}
}

void tg_pstore__free(struct tg_pstore *ps)
{
	if (!ps)
		return;
	finalize_all(ps);
	tg_u64map__destroy(&ps->frames);
	tg_u64map__destroy(&ps->stacks);
	free(ps);
}

void tg_pstore__stats(const struct tg_pstore *ps, struct tg_pstore_stats *out)
{
	*out = ps->stats;
}

static sqlite3_stmt *stmt(struct tg_pstore *ps, sqlite3 *db, enum stmt_idx i)
{
	if (ps->db != db) {
		finalize_all(ps);
		ps->db = db;
	}
	if (!ps->st[i] &&
	    sqlite3_prepare_v3(db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &ps->st[i], NULL))
		return NULL;
	sqlite3_reset(ps->st[i]);
	sqlite3_clear_bindings(ps->st[i]);
	return ps->st[i];
}

/* Run a one-column SELECT; *val gets the first row's value (0 when none). */
static int step_value(sqlite3_stmt *st, int64_t *val)
{
	int rc = sqlite3_step(st);

	*val = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void reset_caches(struct tg_pstore *ps)
{
	tg_u64map__destroy(&ps->frames);
	tg_u64map__destroy(&ps->stacks);
	tg_u64map__init(&ps->frames, 1024);
	tg_u64map__init(&ps->stacks, 4096);
	ps->max_frame = ps->max_stack = 0;
	ps->stats.cache_resets++;
}

/* Drop the caches when a rollback removed ids they hold. */
static int check_caches(struct tg_pstore *ps, sqlite3 *db)
{
	sqlite3_stmt *a = stmt(ps, db, ST_MAX_FRAME), *b = stmt(ps, db, ST_MAX_STACK);
	int64_t mf, ms;
	int rc;

	if (!a || !b)
		return SQLITE_ERROR;
	rc = step_value(a, &mf);
	if (rc == SQLITE_OK)
		rc = step_value(b, &ms);
	if (rc == SQLITE_OK && (mf < ps->max_frame || ms < ps->max_stack))
		reset_caches(ps);
	return rc;
}

static int frame_id(struct tg_pstore *ps, sqlite3 *db, const struct tg_pframe *f, int64_t *id)
{
	sqlite3_stmt *ins, *sel;
	void *v = tg_u64map__get(&ps->frames, (uint64_t)(uintptr_t)f);
	int rc;

	if (v) {
		*id = (int64_t)(intptr_t)v;
		return SQLITE_OK;
	}
	ins = stmt(ps, db, ST_INS_FRAME);
	sel = stmt(ps, db, ST_SEL_FRAME);
	if (!ins || !sel)
		return SQLITE_ERROR;
	sqlite3_bind_text(ins, 1, f->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 2, f->file, -1, SQLITE_STATIC);
	sqlite3_bind_int(ins, 3, f->line);
	rc = step_done(ins);
	if (rc != SQLITE_OK)
		return rc;
	if (sqlite3_changes(db) > 0)
		ps->stats.frames_inserted++;
	sqlite3_bind_text(sel, 1, f->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(sel, 2, f->file, -1, SQLITE_STATIC);
	sqlite3_bind_int(sel, 3, f->line);
	rc = step_value(sel, id);
	if (rc != SQLITE_OK || *id <= 0)
		return rc != SQLITE_OK ? rc : SQLITE_ERROR;
	if (*id > ps->max_frame)
		ps->max_frame = *id;
	tg_u64map__put(&ps->frames, (uint64_t)(uintptr_t)f, (void *)(intptr_t)*id);
	return SQLITE_OK;
}

static int stack_id(struct tg_pstore *ps, sqlite3 *db, int64_t parent, int64_t frame, int64_t *id)
{
	uint64_t key = (uint64_t)parent << 32 | (uint64_t)frame;
	sqlite3_stmt *ins, *sel;
	void *v = tg_u64map__get(&ps->stacks, key);
	int rc;

	if (v) {
		*id = (int64_t)(intptr_t)v;
		return SQLITE_OK;
	}
	ins = stmt(ps, db, ST_INS_STACK);
	sel = stmt(ps, db, ST_SEL_STACK);
	if (!ins || !sel)
		return SQLITE_ERROR;
	sqlite3_bind_int64(ins, 1, parent);
	sqlite3_bind_int64(ins, 2, frame);
	rc = step_done(ins);
	if (rc != SQLITE_OK)
		return rc;
	if (sqlite3_changes(db) > 0)
		ps->stats.stacks_inserted++;
	sqlite3_bind_int64(sel, 1, parent);
	sqlite3_bind_int64(sel, 2, frame);
	rc = step_value(sel, id);
	if (rc != SQLITE_OK || *id <= 0)
		return rc != SQLITE_OK ? rc : SQLITE_ERROR;
	if (*id > ps->max_stack)
		ps->max_stack = *id;
	if (*id < (1LL << 31) && frame < (1LL << 32))
		tg_u64map__put(&ps->stacks, key, (void *)(intptr_t)*id);
	return SQLITE_OK;
}

static int write_sample(struct job *j, sqlite3 *db, int64_t run_id, uint64_t m2e)
{
	struct tg_pstore *ps = j->ps;
	int64_t parent = 0, fid = 0, sid = 0;
	sqlite3_stmt *st;
	size_t i;
	int rc = check_caches(ps, db);

	for (i = 0; rc == SQLITE_OK && i < j->s.nframes; i++) {
		rc = frame_id(ps, db, j->frames[i], &fid);
		if (rc == SQLITE_OK)
			rc = stack_id(ps, db, parent, fid, &sid);
		parent = sid;
	}
	if (rc != SQLITE_OK)
		return rc;
	st = stmt(ps, db, ST_INS_SAMPLE);
	if (!st)
		return SQLITE_ERROR;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, (int64_t)(j->s.ts_ns + m2e));
	sqlite3_bind_int64(st, 3, j->s.pid);
	sqlite3_bind_int64(st, 4, j->s.tid);
	if (j->s.request_id > 0)
		sqlite3_bind_int64(st, 5, j->s.request_id);
	sqlite3_bind_int64(st, 6, parent);
	sqlite3_bind_int64(st, 7, j->s.flags);
	rc = step_done(st);
	if (rc != SQLITE_OK || j->s.request_id <= 0)
		return rc;
	st = stmt(ps, db, ST_ENDPOINT);
	if (!st)
		return SQLITE_ERROR;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, parent);
	sqlite3_bind_int64(st, 3, j->s.request_id);
	return step_done(st);
}

/* Requests re-routed at the end of a run (store.h tg_store__reroute) moved
 * endpoints: recount the run's profile_endpoint from its samples. */
static int rebuild_endpoints(sqlite3 *db, int64_t run_id)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "DELETE FROM profile_endpoint WHERE run_id = %" PRId64 ";"
		 "INSERT INTO profile_endpoint SELECT s.run_id, r.method, coalesce(r.route, ''),"
		 " s.stack_id, count(*) FROM samples s JOIN requests r ON r.id = s.request_id"
		 " WHERE s.run_id = %" PRId64 " AND s.request_id IS NOT NULL GROUP BY 1, 2, 3, 4",
		 run_id, run_id);
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int job_fn(sqlite3 *db, void *arg, int64_t run_id, uint64_t m2e)
{
	struct job *j = arg;
	sqlite3_stmt *st;

	switch (j->kind) {
	case 0:
		j->ps->stats.samples++;
		return write_sample(j, db, run_id, m2e);
	case 1:
		st = stmt(j->ps, db, ST_HZ);
		if (!st)
			return SQLITE_ERROR;
		sqlite3_bind_int64(st, 1, run_id);
		sqlite3_bind_int64(st, 2, j->hz);
		return step_done(st);
	default:
		finalize_all(j->ps);
		return rebuild_endpoints(db, run_id);
	}
}

int tg_pstore__add(struct tg_pstore *ps, const struct tg_psample *smp)
{
	struct job *j;

	if (smp->nframes > MAX_DEPTH)
		return -E2BIG;
	j = malloc(sizeof(*j) + smp->nframes * sizeof(const struct tg_pframe *));
	if (!j)
		return -ENOMEM;
	j->ps = ps;
	j->s = *smp;
	j->kind = 0;
	j->hz = 0;
	if (smp->nframes)
		memcpy(j->frames, smp->frames, smp->nframes * sizeof(const struct tg_pframe *));
	j->s.frames = NULL;
	return tg_store__call(ps->store, job_fn, j, free);
}

static int simple_job(struct tg_pstore *ps, int kind, uint32_t hz)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->ps = ps;
	j->kind = kind;
	j->hz = hz;
	return tg_store__call(ps->store, job_fn, j, free);
}

int tg_pstore__set_hz(struct tg_pstore *ps, uint32_t hz)
{
	return simple_job(ps, 1, hz);
}

int tg_pstore__finish(struct tg_pstore *ps)
{
	return simple_job(ps, 2, 0);
}

/* ---- reader ---- */

#define NO_STACK "[no Python stack]"

struct reader {
	sqlite3 *db;
	sqlite3_stmt *node;	/* stack id -> parent, name, file, line */
	struct tg_u64map names; /* stack id -> struct rnode */
};

struct rnode {
	int64_t parent;
	char *name;
};

static char *frame_name(const char *name, const char *file, int line)
{
	char *s = NULL;

	if (asprintf(&s, "%s (%s:%d)", name ? name : "?", file ? file : "?", line) < 0)
		return NULL;
	return s;
}

static int reader_node(struct reader *r, int64_t id, struct rnode **out)
{
	struct rnode *n = tg_u64map__get(&r->names, (uint64_t)id);
	int rc;

	if (n) {
		*out = n;
		return 0;
	}
	sqlite3_reset(r->node);
	sqlite3_bind_int64(r->node, 1, id);
	rc = sqlite3_step(r->node);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? -ENOENT : -EIO;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->parent = sqlite3_column_int64(r->node, 0);
	n->name = frame_name((const char *)sqlite3_column_text(r->node, 1),
			     (const char *)sqlite3_column_text(r->node, 2),
			     sqlite3_column_int(r->node, 3));
	if (!n->name || tg_u64map__put(&r->names, (uint64_t)id, n)) {
		free(n->name);
		free(n);
		return -ENOMEM;
	}
	*out = n;
	return 0;
}

static int reader_open(struct reader *r, sqlite3 *db)
{
	memset(r, 0, sizeof(*r));
	r->db = db;
	if (tg_u64map__init(&r->names, 256))
		return -ENOMEM;
	if (sqlite3_prepare_v2(db,
			       "SELECT s.parent, f.name, f.file, f.line FROM stacks s"
			       " JOIN frames f ON f.id = s.frame WHERE s.id = ?",
			       -1, &r->node, NULL))
		return -EIO;
	return 0;
}

static void reader_close(struct reader *r)
{
	size_t pos = 0;
	uint64_t k;
	void *v;

	while (tg_u64map__next(&r->names, &pos, &k, &v)) {
		struct rnode *n = v;

		free(n->name);
		free(n);
	}
	tg_u64map__destroy(&r->names);
	sqlite3_finalize(r->node);
}

/* Frames of stack id, root first, into out[] (borrowed from the reader). */
static int reader_chain(struct reader *r, int64_t id, const char **out, size_t cap)
{
	size_t n = 0, i;
	struct rnode *node;
	int ret;

	if (id == 0) {
		out[0] = NO_STACK;
		return 1;
	}
	while (id != 0) {
		if (n == cap)
			return -E2BIG;
		ret = reader_node(r, id, &node);
		if (ret)
			return ret;
		out[n++] = node->name;
		id = node->parent;
	}
	for (i = 0; i < n / 2; i++) {
		const char *t = out[i];

		out[i] = out[n - 1 - i];
		out[n - 1 - i] = t;
	}
	return (int)n;
}

/* Add every (stack_id, count) row of st to fg. */
static int load_rows(sqlite3 *db, sqlite3_stmt *st, struct tg_fg *fg, uint64_t *total)
{
	const char *names[MAX_DEPTH];
	struct reader r;
	uint64_t sum = 0;
	int ret, rc, n;

	ret = reader_open(&r, db);
	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t cnt = sqlite3_column_int64(st, 1);

		n = reader_chain(&r, sqlite3_column_int64(st, 0), names, MAX_DEPTH);
		if (n < 0) {
			ret = n;
			break;
		}
		if (cnt <= 0)
			continue;
		ret = tg_fg__add(fg, names, (size_t)n, (uint64_t)cnt);
		sum += (uint64_t)cnt;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = -EIO;
	reader_close(&r);
	if (total)
		*total = sum;
	return ret;
}

static int exists(sqlite3 *db, const char *sql, int64_t a, const char *b, const char *c)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL))
		return -EIO;
	sqlite3_bind_int64(st, 1, a);
	if (b)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	if (c)
		sqlite3_bind_text(st, 3, c, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

int tg_pstore__load_endpoint(sqlite3 *db, int64_t run_id, const char *method, const char *route,
			     struct tg_fg *fg, uint64_t *total)
{
	sqlite3_stmt *st;
	int ret;

	if (total)
		*total = 0;
	ret = exists(db,
		     "SELECT 1 FROM requests WHERE run_id = ?1 AND coalesce(route, '') = ?2"
		     " AND (?3 IS NULL OR method = ?3) LIMIT 1",
		     run_id, route, method);
	if (ret)
		return ret;
	if (sqlite3_prepare_v2(db,
			       "SELECT stack_id, sum(count) FROM profile_endpoint WHERE run_id = ?1"
			       " AND route = ?2 AND (?3 IS NULL OR method = ?3) GROUP BY stack_id",
			       -1, &st, NULL))
		return -EIO;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_text(st, 2, route, -1, SQLITE_STATIC);
	if (method)
		sqlite3_bind_text(st, 3, method, -1, SQLITE_STATIC);
	ret = load_rows(db, st, fg, total);
	sqlite3_finalize(st);
	return ret;
}

int tg_pstore__load_request(sqlite3 *db, int64_t request_id, struct tg_fg *fg, uint64_t *total)
{
	sqlite3_stmt *st;
	int ret;

	if (total)
		*total = 0;
	ret = exists(db, "SELECT 1 FROM requests WHERE id = ?1", request_id, NULL, NULL);
	if (ret)
		return ret;
	if (sqlite3_prepare_v2(db,
			       "SELECT stack_id, count(*) FROM samples WHERE request_id = ?"
			       " GROUP BY stack_id",
			       -1, &st, NULL))
		return -EIO;
	sqlite3_bind_int64(st, 1, request_id);
	ret = load_rows(db, st, fg, total);
	sqlite3_finalize(st);
	return ret;
}

int tg_pstore__load_run(sqlite3 *db, int64_t run_id, struct tg_fg *fg, uint64_t *total)
{
	sqlite3_stmt *st;
	int ret;

	if (total)
		*total = 0;
	if (sqlite3_prepare_v2(db,
			       "SELECT stack_id, count(*) FROM samples WHERE run_id = ?"
			       " GROUP BY stack_id",
			       -1, &st, NULL))
		return -EIO;
	sqlite3_bind_int64(st, 1, run_id);
	ret = load_rows(db, st, fg, total);
	sqlite3_finalize(st);
	return ret;
}

int tg_pstore__stack_names(sqlite3 *db, int64_t stack_id, char **out, size_t cap)
{
	const char *names[MAX_DEPTH];
	struct reader r;
	int n, i;

	n = reader_open(&r, db);
	if (!n)
		n = reader_chain(&r, stack_id, names, cap < MAX_DEPTH ? cap : MAX_DEPTH);
	for (i = 0; i < n; i++) {
		out[i] = strdup(names[i]);
		if (!out[i]) {
			while (i-- > 0)
				free(out[i]);
			n = -ENOMEM;
			break;
		}
	}
	reader_close(&r);
	return n;
}
