// SPDX-License-Identifier: MIT
/*
 * Route templates and path matching (see docs/routes.md).
 *
 * Each template is split once, at add time, into segments (literal, `{param}`,
 * `prefix{param}suffix`, `{param:path}`) kept in one allocation with a copy of
 * the text. A match splits the raw path once into (offset, length) pairs and
 * walks the table; a template is rejected on its segment count before any
 * byte is compared. Among the templates that match, the most specific wins:
 * segment kinds are compared left to right (literal > mixed > param > path),
 * and ties go to the template added first. Templates of the request's method
 * (or of every method) are preferred; otherwise any method's template that
 * matches the path is used (the app answers 405 on that route).
 */
#include "route.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#define MAX_SEGS 128

enum seg_kind {
	SEG_PATH = 0,  /* {p:path}: one or more path segments, '/' included */
	SEG_PARAM = 1, /* {p}: one non-empty segment */
	SEG_MIXED = 2, /* pre{p}post: a segment with a literal prefix and suffix */
	SEG_LIT = 3,   /* literal text */
};

struct seg {
	uint16_t off;	  /* into tmpl_text() */
	uint16_t len;	  /* literal length, or prefix length (MIXED) */
	uint16_t suf_off; /* MIXED: suffix offset and length */
	uint16_t suf_len;
	uint8_t kind;
};

struct tmpl {
	char method[12]; /* uppercase, "*" = every method */
	char *text;	 /* the allocation: segs, then the template text (tmpl_text) */
	struct seg *segs;
	uint16_t nseg;
	int16_t path_idx; /* index of the {p:path} segment, -1 if none */
};

struct tg_routes {
	struct tmpl *v;
	size_t n, cap;
};

struct tg_routes *tg_routes__new(void)
{
	return calloc(1, sizeof(struct tg_routes));
}

void tg_routes__free(struct tg_routes *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].text); /* segs share the allocation */
	free(t->v);
	free(t);
}

size_t tg_routes__count(const struct tg_routes *t)
{
	return t ? t->n : 0;
}

/* Classify segment text[off, off+len) into s. */
static void classify(const char *text, size_t off, size_t len, struct seg *s, bool allow_path)
{
	const char *p = text + off;
	const char *open = memchr(p, '{', len);
	const char *close = NULL;

	s->off = (uint16_t)off;
	s->len = (uint16_t)len;
	s->suf_off = s->suf_len = 0;
	s->kind = SEG_LIT;
	if (!open)
		return;
	for (const char *q = p + len; q > open; q--) {
		if (q[-1] == '}') {
			close = q - 1;
			break;
		}
	}
	if (!close || close == open + 1)
		return; /* unbalanced or "{}": literal */
	if (open == p && close == p + len - 1) {
		size_t inner = len - 2;
		if (allow_path && inner > 5 && !memcmp(close - 5, ":path", 5))
			s->kind = SEG_PATH;
		else
			s->kind = SEG_PARAM;
		return;
	}
	s->kind = SEG_MIXED;
	s->len = (uint16_t)(open - p);
	s->suf_off = (uint16_t)(off + (size_t)(close + 1 - p));
	s->suf_len = (uint16_t)(p + len - close - 1);
}

static const char *tmpl_text(const struct tmpl *m)
{
	return m->text + m->nseg * sizeof(struct seg);
}

static int tmpl_init(struct tmpl *m, const char *method, const char *text)
{
	size_t tlen = strlen(text), nseg = 1, off;
	char *buf;

	if (tlen == 0 || text[0] != '/' || tlen >= UINT16_MAX || strchr(text, '\n'))
		return -EINVAL;
	for (size_t i = 1; i < tlen; i++)
		nseg += text[i] == '/';
	if (nseg > MAX_SEGS)
		return -EINVAL;
	if (!method || !*method || !strcmp(method, "*")) {
		m->method[0] = '*';
		m->method[1] = '\0';
	} else {
		size_t ml = strlen(method);
		if (ml >= sizeof(m->method))
			return -EINVAL;
		for (size_t i = 0; i <= ml; i++)
			m->method[i] = (char)toupper((unsigned char)method[i]);
	}
	/* segs first (aligned), then the text */
	buf = malloc(nseg * sizeof(struct seg) + tlen + 1);
	if (!buf)
		return -ENOMEM;
	m->segs = (struct seg *)buf;
	m->text = buf;
	memcpy(buf + nseg * sizeof(struct seg), text, tlen + 1);
	text = buf + nseg * sizeof(struct seg);
	m->nseg = (uint16_t)nseg;
	m->path_idx = -1;
	off = 1;
	for (size_t i = 0; i < nseg; i++) {
		const char *slash = strchr(text + off, '/');
		size_t end = slash ? (size_t)(slash - text) : tlen;
		struct seg *s = &m->segs[i];

		classify(text, off, end - off, s, m->path_idx < 0);
		if (s->kind == SEG_PATH)
			m->path_idx = (int16_t)i;
		off = end + 1;
	}
	return 0;
}

/* 1 when added, 0 when already present, -errno */
static int add_one(struct tg_routes *t, const char *method, const char *tmpl)
{
	struct tmpl m;
	int err;

	if (!t || !tmpl)
		return -EINVAL;
	err = tmpl_init(&m, method, tmpl);
	if (err)
		return err;
	for (size_t i = 0; i < t->n; i++) {
		if (!strcmp(t->v[i].method, m.method) && !strcmp(tmpl_text(&t->v[i]), tmpl)) {
			free(m.text);
			return 0;
		}
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct tmpl *v = realloc(t->v, cap * sizeof(*v));
		if (!v) {
			free(m.text);
			return -ENOMEM;
		}
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = m;
	return 1;
}

int tg_routes__add(struct tg_routes *t, const char *method, const char *tmpl)
{
	int err = add_one(t, method, tmpl);
	return err < 0 ? err : 0;
}

int tg_routes__add_openapi(struct tg_routes *t, const char *json, size_t len)
{
	static const char *const methods[] = {"get",	 "put",	 "post",  "delete",
					      "options", "head", "patch", "trace"};
	cJSON *doc = NULL, *paths, *path;
	int added = 0, err = 0;

	if (!t || !json)
		return -EINVAL;
	doc = cJSON_ParseWithLength(json, len);
	paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
	if (!cJSON_IsObject(doc) || !cJSON_IsObject(paths)) {
		err = -EINVAL;
		goto out;
	}
	cJSON_ArrayForEach(path, paths)
	{
		if (!cJSON_IsObject(path) || !path->string)
			continue;
		for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
			int r;

			if (!cJSON_GetObjectItemCaseSensitive(path, methods[i]))
				continue;
			r = add_one(t, methods[i], path->string);
			if (r == -ENOMEM) {
				err = r;
				goto out;
			}
			added += r > 0;
		}
	}
out:
	cJSON_Delete(doc);
	return err ? err : added;
}

char *tg_routes__to_text(const struct tg_routes *t)
{
	size_t need = 1, off = 0;
	char *s;

	for (size_t i = 0; t && i < t->n; i++)
		need += strlen(t->v[i].method) + strlen(tmpl_text(&t->v[i])) + 2;
	s = malloc(need);
	if (!s)
		return NULL;
	for (size_t i = 0; t && i < t->n; i++)
		off += (size_t)sprintf(s + off, "%s %s\n", t->v[i].method, tmpl_text(&t->v[i]));
	s[off] = '\0';
	return s;
}

int tg_routes__add_text(struct tg_routes *t, const char *text)
{
	char method[16], tmpl[4096];

	if (!t || !text)
		return -EINVAL;
	while (*text) {
		const char *nl = strchr(text, '\n');
		size_t len = nl ? (size_t)(nl - text) : strlen(text);
		const char *sp = memchr(text, ' ', len);
		int err;

		if (len && text[len - 1] == '\r')
			len--;
		if (len) {
			size_t ml = sp ? (size_t)(sp - text) : 0, tl = sp ? len - ml - 1 : 0;
			if (!sp || ml == 0 || ml >= sizeof(method) || tl == 0 || tl >= sizeof(tmpl))
				return -EINVAL;
			memcpy(method, text, ml);
			method[ml] = '\0';
			memcpy(tmpl, sp + 1, tl);
			tmpl[tl] = '\0';
			err = add_one(t, method, tmpl);
			if (err < 0)
				return err == -ENOMEM ? err : -EINVAL;
		}
		text += nl ? (size_t)(nl - text) + 1 : strlen(text);
	}
	return 0;
}

/* ---- matching ---- */

struct psegs {
	const char *path;
	uint16_t off[MAX_SEGS];
	uint16_t len[MAX_SEGS];
	size_t n;
};

/* Split path (up to '?' or '#') into segments after the leading '/'.
 * "/" -> [""], "/a/" -> ["a", ""]. Returns false when it cannot match. */
static bool split_path(const char *path, struct psegs *ps)
{
	size_t i = 1, start = 1;

	if (!path || path[0] != '/')
		return false;
	ps->path = path;
	ps->n = 0;
	for (;; i++) {
		char c = path[i];
		if (c == '/' || c == '\0' || c == '?' || c == '#') {
			if (ps->n == MAX_SEGS || i > UINT16_MAX)
				return false;
			ps->off[ps->n] = (uint16_t)start;
			ps->len[ps->n] = (uint16_t)(i - start);
			ps->n++;
			if (c != '/')
				return true;
			start = i + 1;
		}
	}
}

static bool seg_match(const struct tmpl *m, const struct seg *s, const char *p, size_t len)
{
	switch (s->kind) {
	case SEG_LIT:
		return len == s->len && !memcmp(tmpl_text(m) + s->off, p, len);
	case SEG_PARAM:
		return len > 0;
	case SEG_MIXED:
		return len > (size_t)s->len + s->suf_len &&
		       !memcmp(tmpl_text(m) + s->off, p, s->len) &&
		       !memcmp(tmpl_text(m) + s->suf_off, p + len - s->suf_len, s->suf_len);
	default:
		return true;
	}
}

static bool tmpl_match(const struct tmpl *m, const struct psegs *ps)
{
	size_t tn = m->nseg, pn = ps->n;

	if (m->path_idx < 0) {
		if (tn != pn)
			return false;
		for (size_t i = 0; i < tn; i++)
			if (!seg_match(m, &m->segs[i], ps->path + ps->off[i], ps->len[i]))
				return false;
		return true;
	}
	/* head before {p:path}, tail after it; {p:path} takes the rest (>= 1 segment) */
	if (pn < tn)
		return false;
	for (size_t i = 0; i < (size_t)m->path_idx && i < pn; i++)
		if (!seg_match(m, &m->segs[i], ps->path + ps->off[i], ps->len[i]))
			return false;
	for (size_t i = (size_t)m->path_idx + 1; i < tn; i++) {
		size_t j = pn - (tn - i);
		if (!seg_match(m, &m->segs[i], ps->path + ps->off[j], ps->len[j]))
			return false;
	}
	return true;
}

/* >0 when a is more specific than b */
static int specificity_cmp(const struct tmpl *a, const struct tmpl *b)
{
	size_t n = a->nseg < b->nseg ? a->nseg : b->nseg;

	for (size_t i = 0; i < n; i++)
		if (a->segs[i].kind != b->segs[i].kind)
			return (int)a->segs[i].kind - (int)b->segs[i].kind;
	return 0;
}

bool tg_route__match(const struct tg_routes *t, const char *method, const char *path, char *out,
		     size_t cap)
{
	const struct tmpl *best = NULL, *any = NULL;
	struct psegs ps;

	if (!t || !t->n || !split_path(path, &ps))
		return false;
	for (size_t i = 0; i < t->n; i++) {
		const struct tmpl *m = &t->v[i];
		bool same_method;

		if (!tmpl_match(m, &ps))
			continue;
		same_method = m->method[0] == '*' || (method && !strcasecmp(m->method, method));
		if (same_method && (!best || specificity_cmp(m, best) > 0))
			best = m;
		if (!any || specificity_cmp(m, any) > 0)
			any = m;
	}
	if (!best)
		best = any;
	if (!best)
		return false;
	if (out && cap) {
		size_t l = strlen(tmpl_text(best));
		if (l >= cap)
			l = cap - 1;
		memcpy(out, tmpl_text(best), l);
		out[l] = '\0';
	}
	return true;
}

/* ---- heuristics ---- */

static bool all_class(const char *s, size_t n, int (*cls)(int))
{
	for (size_t i = 0; i < n; i++)
		if (!cls((unsigned char)s[i]))
			return false;
	return n > 0;
}

static bool is_uuid(const char *s, size_t n)
{
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

static bool is_date(const char *s, size_t n)
{
	if (n != 10 || s[4] != '-' || s[7] != '-')
		return false;
	return all_class(s, 4, isdigit) && all_class(s + 5, 2, isdigit) &&
	       all_class(s + 8, 2, isdigit);
}

static bool is_hex(const char *s, size_t n)
{
	size_t digits = 0, lower = 0, upper = 0;

	if (n < 8)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isdigit(c))
			digits++;
		else if (c >= 'a' && c <= 'f')
			lower++;
		else if (c >= 'A' && c <= 'F')
			upper++;
		else
			return false;
	}
	if (n >= 16)
		return true;
	/* 8..15: one case only, and both digits and letters ("deadbeef" is a word) */
	return digits && (lower ? !upper : upper);
}

static bool is_token(const char *s, size_t n)
{
	size_t digits = 0, letters = 0;

	if (n < 20)
		return false;
	while (n > 0 && s[n - 1] == '=') /* base64 padding */
		n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isdigit(c))
			digits++;
		else if (isalpha(c))
			letters++;
		else if (c != '_' && c != '-')
			return false;
	}
	return digits && letters;
}

static const char *seg_class(const char *s, size_t n)
{
	if (n == 0)
		return NULL;
	if (all_class(s, n, isdigit))
		return "{id}";
	if (is_uuid(s, n))
		return "{uuid}";
	if (is_date(s, n))
		return "{date}";
	if (is_hex(s, n))
		return "{hex}";
	if (is_token(s, n))
		return "{token}";
	return NULL;
}

static size_t put(char *out, size_t cap, size_t o, const char *s, size_t n)
{
	if (o + 1 < cap) {
		size_t room = cap - 1 - o;
		memcpy(out + o, s, n < room ? n : room);
	}
	return o + n;
}

void tg_route__heuristic(const char *path, char *out, size_t cap)
{
	size_t end = 0, o = 0, i = 0;

	if (!out || !cap)
		return;
	if (!path)
		path = "";
	while (path[end] && path[end] != '?' && path[end] != '#')
		end++;
	if (end == 0) {
		put(out, cap, 0, "/", 1);
		out[cap > 1 ? 1 : 0] = '\0';
		return;
	}
	while (i < end) {
		size_t j = i;
		const char *cls;

		while (j < end && path[j] != '/')
			j++;
		cls = seg_class(path + i, j - i);
		o = cls ? put(out, cap, o, cls, strlen(cls)) : put(out, cap, o, path + i, j - i);
		if (j < end)
			o = put(out, cap, o, "/", 1);
		i = j + 1;
	}
	out[o < cap ? o : cap - 1] = '\0';
}

void tg_route__resolve(const struct tg_routes *t, const char *method, const char *path, char *out,
		       size_t cap)
{
	if (!tg_route__match(t, method, path, out, cap))
		tg_route__heuristic(path, out, cap);
}
