/* SPDX-License-Identifier: MIT */
/*
 * GET /api/flamegraph (docs/api.md) and the "samples" count of
 * GET /api/requests/ID.
 *
 * Design: the stacks to draw come either from profile_endpoint (one row per
 * (endpoint, stack) with its count: a primary-key range) or from the samples
 * of one request (the samples_request index, grouped by stack). Stacks are
 * interned as a trie in the database (stacks: id -> parent, frame), so each
 * leaf is walked up to its root with one primary-key lookup per node not seen
 * yet: nodes are cached in a hash map for the call, shared prefixes are read
 * once. The frames feed a tg_fg (flamegraph.h), which merges and orders them
 * and writes either the folded list (JSON) or the interactive SVG.
 */
#include "api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flamegraph.h"
#include "u64map.h"

#define MAX_DEPTH 1024 /* deeper chains (a corrupt trie with a cycle) are cut */

struct node {
	int64_t parent;
	char *name; /* "qualname (file:line)" */
};

struct walker {
	struct api_ctx *c;
	sqlite3_stmt *node_st;
	struct tg_u64map cache; /* stack id -> struct node */
	const char *frames[MAX_DEPTH];
};

static void walker_free(struct walker *w)
{
	size_t pos = 0;
	uint64_t key;
	void *val;

	while (tg_u64map__next(&w->cache, &pos, &key, &val)) {
		free(((struct node *)val)->name);
		free(val);
	}
	tg_u64map__destroy(&w->cache);
	sqlite3_finalize(w->node_st);
}

/* "name (file.py:12)" with the file's base name, as docs/flamegraph.md says. */
static char *frame_name(const char *name, const char *file, int line)
{
	const char *base = file ? strrchr(file, '/') : NULL;
	char *s = NULL;

	base = base ? base + 1 : file;
	if (!name || !*name)
		name = "?";
	if (base && *base) {
		if (asprintf(&s, "%s (%s:%d)", name, base, line) < 0)
			s = NULL;
	} else {
		s = strdup(name);
	}
	return s;
}

/* The node id (parent and name), from the cache or the database. Returns the
 * node, or NULL with c->err set and *status the HTTP status. */
static struct node *node_get(struct walker *w, int64_t id, int *status)
{
	struct node *n = tg_u64map__get(&w->cache, (uint64_t)id);
	int rc;

	if (n)
		return n;
	sqlite3_reset(w->node_st);
	sqlite3_bind_int64(w->node_st, 1, id);
	rc = sqlite3_step(w->node_st);
	if (rc != SQLITE_ROW) {
		*status = rc == SQLITE_DONE
			      ? api_fail(w->c, 500, "stack %" PRId64 " is missing", id)
			      : api_db_fail(w->c, "reading stacks");
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (n) {
		n->parent = sqlite3_column_int64(w->node_st, 0);
		n->name = frame_name((const char *)sqlite3_column_text(w->node_st, 1),
				     (const char *)sqlite3_column_text(w->node_st, 2),
				     sqlite3_column_int(w->node_st, 3));
	}
	if (!n || !n->name || tg_u64map__put(&w->cache, (uint64_t)id, n)) {
		if (n)
			free(n->name);
		free(n);
		*status = api_fail(w->c, 500, "out of memory");
		return NULL;
	}
	return n;
}

/* Add count samples of the stack whose leaf is id. Returns 0 or a status. */
static int add_stack(struct walker *w, struct tg_fg *fg, int64_t id, int64_t count)
{
	size_t depth = 0;
	struct node *n;
	int status = 0;

	while (id > 0 && depth < MAX_DEPTH) {
		n = node_get(w, id, &status);
		if (!n)
			return status;
		w->frames[MAX_DEPTH - 1 - depth++] = n->name;
		id = n->parent;
	}
	if (!depth || count <= 0)
		return 0;
	if (tg_fg__add(fg, w->frames + MAX_DEPTH - depth, depth, (uint64_t)count))
		return api_fail(w->c, 500, "cannot build the flame graph");
	return 0;
}

/* Load the stacks of st (rows: stack id, count) into fg. */
static int load(struct api_ctx *c, sqlite3_stmt *st, struct tg_fg *fg)
{
	struct walker *w = calloc(1, sizeof(*w));
	int rc, ret = 0;

	if (!w)
		return api_fail(c, 500, "out of memory");
	w->c = c;
	if (tg_u64map__init(&w->cache, 256)) {
		free(w);
		return api_fail(c, 500, "out of memory");
	}
	if (sqlite3_prepare_v2(c->db,
			       "SELECT s.parent, f.name, f.file, f.line FROM stacks s"
			       " JOIN frames f ON f.id = s.frame WHERE s.id = ?",
			       -1, &w->node_st, NULL) != SQLITE_OK) {
		ret = api_db_fail(c, "reading stacks");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret = add_stack(w, fg, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1));
		if (ret)
			goto out;
	}
	if (rc != SQLITE_DONE)
		ret = api_db_fail(c, "reading samples");
out:
	walker_free(w);
	free(w);
	return ret;
}

/* The folded list: [["root;child;leaf", count], ...] (';' in a name: ':'). */
static int folded_json(struct api_ctx *c, const struct tg_fg *fg, cJSON *arr)
{
	struct tg_fg_iter *it = tg_fg_iter__new(fg);
	const char *const *frames;
	size_t n, i, len;
	uint64_t count;
	char *line, *p;
	cJSON *pair;

	if (!it)
		return api_fail(c, 500, "out of memory");
	while (tg_fg_iter__next(it, &frames, &n, &count) == 1) {
		for (len = 0, i = 0; i < n; i++)
			len += strlen(frames[i]) + 1;
		line = malloc(len + 1);
		if (!line) {
			tg_fg_iter__free(it);
			return api_fail(c, 500, "out of memory");
		}
		for (p = line, i = 0; i < n; i++) {
			if (i)
				*p++ = ';';
			for (const char *q = frames[i]; *q; q++)
				*p++ = *q == ';' ? ':' : *q;
		}
		*p = '\0';
		pair = cJSON_CreateArray();
		cJSON_AddItemToArray(pair, cJSON_CreateString(line));
		cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)count));
		cJSON_AddItemToArray(arr, pair);
		free(line);
	}
	tg_fg_iter__free(it);
	return 0;
}

static int write_svg(struct api_ctx *c, const struct tg_fg *fg, const char *title,
		     int64_t sample_hz)
{
	char sub[128] = "";
	struct tg_fg_svg_opts o = {.title = title};
	FILE *f;

	if (sample_hz > 0) {
		snprintf(sub, sizeof(sub), "%" PRId64 " Hz sampling: each sample = %.3g ms of CPU",
			 sample_hz, 1000.0 / (double)sample_hz);
		o.subtitle = sub;
	}
	f = open_memstream(&c->body, &c->body_len);
	if (!f)
		return api_fail(c, 500, "out of memory");
	if (tg_fg__write_svg(fg, f, &o)) {
		fclose(f);
		free(c->body);
		c->body = NULL;
		return api_fail(c, 500, "cannot write the flame graph");
	}
	if (fclose(f)) {
		free(c->body);
		c->body = NULL;
		return api_fail(c, 500, "out of memory");
	}
	c->body_type = "image/svg+xml; charset=utf-8";
	return 0;
}

struct fg_query {
	bool by_request, svg;
	int64_t run_id, request_id;
	char method[64], route[1024];
};

static int parse(struct api_ctx *c, struct fg_query *q)
{
	char fmt[8];
	int rm, rr, r;

	r = api_int_param(c, "request", 1, INT64_MAX, &q->request_id);
	if (r > 1)
		return r;
	q->by_request = r == 1;
	r = api_param(c, "format", fmt, sizeof(fmt));
	if (r < 0 || (r == 1 && strcmp(fmt, "json") != 0 && strcmp(fmt, "svg") != 0))
		return api_fail(c, 400, "bad format: expected json or svg");
	q->svg = r == 1 && !strcmp(fmt, "svg");
	rm = api_param(c, "method", q->method, sizeof(q->method));
	rr = api_param(c, "route", q->route, sizeof(q->route));
	if (rm < 0 || rr < 0)
		return api_fail(c, 400, "bad method or route: too long");
	if (q->by_request) {
		if (rm || rr)
			return api_fail(c, 400, "give either request or method and route");
		return 0;
	}
	if (rm != 1 || !q->method[0] || rr != 1)
		return api_fail(c, 400, "method and route are required (route= for no route)");
	return api_run_id(c, &q->run_id);
}

/* The request's run (404 when there is no such request). */
static int request_run(struct api_ctx *c, struct fg_query *q)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(c->db, "SELECT run_id FROM requests WHERE id = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return api_db_fail(c, "reading the request");
	sqlite3_bind_int64(st, 1, q->request_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		q->run_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return api_fail(c, 404, "no request %" PRId64, q->request_id);
	return api_db_fail(c, "reading the request");
}

static int64_t run_sample_hz(sqlite3 *db, int64_t run_id)
{
	sqlite3_stmt *st = NULL;
	int64_t hz = 0;

	if (sqlite3_prepare_v2(db, "SELECT sample_hz FROM runs WHERE id = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return 0; /* a schema before v3 */
	sqlite3_bind_int64(st, 1, run_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		hz = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return hz;
}

int api_flamegraph(struct api_ctx *c)
{
	struct fg_query *q = calloc(1, sizeof(*q));
	struct tg_fg *fg = NULL;
	sqlite3_stmt *st = NULL;
	char title[1200];
	int64_t hz;
	int ret;

	if (!q)
		return api_fail(c, 500, "out of memory");
	if (c->rest[0]) {
		ret = api_fail(c, 404, "no such API");
		goto out;
	}
	ret = parse(c, q);
	if (!ret && q->by_request)
		ret = request_run(c, q);
	if (ret)
		goto out;
	fg = tg_fg__new();
	if (!fg) {
		ret = api_fail(c, 500, "out of memory");
		goto out;
	}
	if (q->by_request)
		snprintf(title, sizeof(title), "Request %" PRId64, q->request_id);
	else
		snprintf(title, sizeof(title), "%s %s", q->method,
			 q->route[0] ? q->route : "(no route)");
	if (api_has_table(c->db, "samples")) {
		if (sqlite3_prepare_v2(c->db,
				       q->by_request
					   ? "SELECT stack_id, count(*) FROM samples"
					     " WHERE request_id = ?1 GROUP BY stack_id"
					   : "SELECT stack_id, count FROM profile_endpoint"
					     " WHERE run_id = ?2 AND method = ?3 AND route = ?4",
				       -1, &st, NULL) != SQLITE_OK) {
			ret = api_db_fail(c, "reading samples");
			goto out;
		}
		if (q->by_request) {
			sqlite3_bind_int64(st, 1, q->request_id);
		} else {
			sqlite3_bind_int64(st, 2, q->run_id);
			sqlite3_bind_text(st, 3, q->method, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, q->route, -1, SQLITE_STATIC);
		}
		ret = load(c, st, fg);
		if (ret)
			goto out;
	}
	hz = run_sample_hz(c->db, q->run_id);
	if (q->svg) {
		ret = write_svg(c, fg, title, hz);
	} else {
		c->out = cJSON_CreateObject();
		cJSON_AddNumberToObject(c->out, "total", (double)tg_fg__total(fg));
		if (hz > 0)
			cJSON_AddNumberToObject(c->out, "sample_hz", (double)hz);
		else
			cJSON_AddNullToObject(c->out, "sample_hz");
		ret = folded_json(c, fg, cJSON_AddArrayToObject(c->out, "folded"));
	}
	if (!ret)
		ret = 200;
out:
	sqlite3_finalize(st);
	tg_fg__free(fg);
	free(q);
	return ret;
}

int api_request_samples(struct api_ctx *c, int64_t request_id, cJSON *req)
{
	sqlite3_stmt *st = NULL;
	int64_t n = 0;
	int rc;

	if (!api_has_table(c->db, "samples"))
		return 0;
	if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM samples WHERE request_id = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return api_db_fail(c, "counting samples");
	sqlite3_bind_int64(st, 1, request_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return api_db_fail(c, "counting samples");
	if (n > 0)
		cJSON_AddNumberToObject(req, "samples", (double)n);
	return 0;
}
