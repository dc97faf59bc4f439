// SPDX-License-Identifier: MIT
/*
 * Flame graph trie and its writers.
 *
 * Names are interned in a string table (open addressing, FNV-1a). Trie nodes live in one
 * array (node 0 is the virtual root); a second hash table maps (parent, name id) to the child,
 * so adding a stack costs one probe per frame and needs no per-node child arrays. The writers
 * build the sorted child lists once (a CSR array: nodes sorted by parent, then by the rank of
 * their name in byte order) and walk the trie with an explicit stack, so a stack of any depth
 * needs no recursion. The SVG layout is computed during that walk (x = samples to the left).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "flamegraph.h"
#include "hash.h"

#define NO_NAME UINT32_MAX

struct fg_node {
	uint64_t self;	/* samples whose stack ends here */
	uint64_t total; /* self + children's totals */
	uint32_t parent;
	uint32_t name;
	uint32_t depth; /* root 0, first frame 1 */
};

struct tg_fg {
	char **names;
	size_t nnames, names_cap;
	uint32_t *name_tab; /* name id + 1, 0 = empty */
	size_t name_tab_cap;

	struct fg_node *nodes;
	size_t nnodes, nodes_cap;
	uint32_t *node_tab; /* node index, 0 = empty (the root is nobody's child) */
	size_t node_tab_cap;
	size_t max_depth;
};

static uint64_t fnv1a(const char *s, size_t len)
{
	return tg_fnv1a(TG_FNV1A_SEED, s, len);
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Copy of s[0..len) with invalid UTF-8 and control characters replaced by '?'. */
static char *sanitize(const char *s, size_t len)
{
	char *d = malloc(len + 1);
	size_t i = 0;

	if (!d)
		return NULL;
	while (i < len) {
		size_t n = utf8_len((const unsigned char *)s + i);

		if (n == 0 || i + n > len ||
		    (n == 1 && ((unsigned char)s[i] < 0x20 || s[i] == 0x7f))) {
			d[i++] = '?';
			continue;
		}
		memcpy(d + i, s + i, n);
		i += n;
	}
	d[len] = '\0';
	return d;
}

struct tg_fg *tg_fg__new(void)
{
	struct tg_fg *fg = calloc(1, sizeof(*fg));

	if (!fg)
		goto err;
	fg->nodes_cap = 64;
	fg->nodes = calloc(fg->nodes_cap, sizeof(*fg->nodes));
	fg->node_tab_cap = 128;
	fg->node_tab = calloc(fg->node_tab_cap, sizeof(*fg->node_tab));
	fg->name_tab_cap = 64;
	fg->name_tab = calloc(fg->name_tab_cap, sizeof(*fg->name_tab));
	if (!fg->nodes || !fg->node_tab || !fg->name_tab)
		goto err;
	fg->nodes[0].parent = 0;
	fg->nodes[0].name = NO_NAME;
	fg->nnodes = 1;
	return fg;
err:
	tg_fg__free(fg);
	errno = ENOMEM;
	return NULL;
}

void tg_fg__free(struct tg_fg *fg)
{
	if (!fg)
		return;
	for (size_t i = 0; i < fg->nnames; i++)
		free(fg->names[i]);
	free(fg->names);
	free(fg->name_tab);
	free(fg->nodes);
	free(fg->node_tab);
	free(fg);
}

static int name_tab_grow(struct tg_fg *fg)
{
	size_t cap = fg->name_tab_cap * 2;
	uint32_t *tab = calloc(cap, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	for (size_t i = 0; i < fg->nnames; i++) {
		size_t j = fnv1a(fg->names[i], strlen(fg->names[i])) & (cap - 1);

		while (tab[j])
			j = (j + 1) & (cap - 1);
		tab[j] = (uint32_t)i + 1;
	}
	free(fg->name_tab);
	fg->name_tab = tab;
	fg->name_tab_cap = cap;
	return 0;
}

/* The id of name s[0..len) (sanitised), interning it if new. Returns 0 or -ENOMEM. */
static int intern(struct tg_fg *fg, const char *s, size_t len, uint32_t *id)
{
	char *clean = sanitize(s, len);
	size_t j;
	int err = -ENOMEM;

	if (!clean)
		return -ENOMEM;
	if ((fg->nnames + 1) * 10 >= fg->name_tab_cap * 7 && name_tab_grow(fg))
		goto out;
	j = fnv1a(clean, len) & (fg->name_tab_cap - 1);
	while (fg->name_tab[j]) {
		const char *n = fg->names[fg->name_tab[j] - 1];

		if (strncmp(n, clean, len) == 0 && n[len] == '\0') {
			*id = fg->name_tab[j] - 1;
			free(clean);
			return 0;
		}
		j = (j + 1) & (fg->name_tab_cap - 1);
	}
	if (fg->nnames >= UINT32_MAX - 1)
		goto out;
	if (fg->nnames == fg->names_cap) {
		size_t cap = fg->names_cap ? fg->names_cap * 2 : 64;
		char **names = realloc(fg->names, cap * sizeof(*names));

		if (!names)
			goto out;
		fg->names = names;
		fg->names_cap = cap;
	}
	fg->names[fg->nnames] = clean;
	fg->name_tab[j] = (uint32_t)fg->nnames + 1;
	*id = (uint32_t)fg->nnames++;
	clean = NULL;
	err = 0;
out:
	free(clean);
	return err;
}

static uint64_t node_key(uint32_t parent, uint32_t name)
{
	return mix64((uint64_t)parent << 32 | name);
}

static int node_tab_grow(struct tg_fg *fg)
{
	size_t cap = fg->node_tab_cap * 2;
	uint32_t *tab = calloc(cap, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	for (size_t i = 1; i < fg->nnodes; i++) {
		size_t j = node_key(fg->nodes[i].parent, fg->nodes[i].name) & (cap - 1);

		while (tab[j])
			j = (j + 1) & (cap - 1);
		tab[j] = (uint32_t)i;
	}
	free(fg->node_tab);
	fg->node_tab = tab;
	fg->node_tab_cap = cap;
	return 0;
}

/* The child of parent named name, created if new. Returns 0 or -ENOMEM. */
static int child(struct tg_fg *fg, uint32_t parent, uint32_t name, uint32_t *out)
{
	size_t j;

	if ((fg->nnodes + 1) * 10 >= fg->node_tab_cap * 7 && node_tab_grow(fg))
		return -ENOMEM;
	j = node_key(parent, name) & (fg->node_tab_cap - 1);
	while (fg->node_tab[j]) {
		const struct fg_node *n = &fg->nodes[fg->node_tab[j]];

		if (n->parent == parent && n->name == name) {
			*out = fg->node_tab[j];
			return 0;
		}
		j = (j + 1) & (fg->node_tab_cap - 1);
	}
	if (fg->nnodes >= UINT32_MAX - 1)
		return -ENOMEM;
	if (fg->nnodes == fg->nodes_cap) {
		size_t cap = fg->nodes_cap * 2;
		struct fg_node *nodes = realloc(fg->nodes, cap * sizeof(*nodes));

		if (!nodes)
			return -ENOMEM;
		fg->nodes = nodes;
		fg->nodes_cap = cap;
	}
	fg->nodes[fg->nnodes] = (struct fg_node){
	    .parent = parent,
	    .name = name,
	    .depth = fg->nodes[parent].depth + 1,
	};
	fg->node_tab[j] = (uint32_t)fg->nnodes;
	*out = (uint32_t)fg->nnodes++;
	return 0;
}

/* Add a stack given as n (pointer, length) pairs produced by get(). */
static int add_frames(struct tg_fg *fg, size_t nframes, uint64_t count,
		      void (*get)(const void *ctx, size_t i, const char **s, size_t *len),
		      const void *ctx)
{
	uint32_t node = 0;
	int err;

	if (count > UINT64_MAX - fg->nodes[0].total)
		return -EOVERFLOW;
	if (count == 0)
		return 0;
	for (size_t i = 0; i < nframes; i++) {
		const char *s;
		size_t len;
		uint32_t id;

		get(ctx, i, &s, &len);
		err = intern(fg, s, len, &id);
		if (err)
			return err;
		err = child(fg, node, id, &node);
		if (err)
			return err;
	}
	fg->nodes[node].self += count;
	if (fg->nodes[node].depth > fg->max_depth)
		fg->max_depth = fg->nodes[node].depth;
	for (;;) {
		fg->nodes[node].total += count;
		if (node == 0)
			break;
		node = fg->nodes[node].parent;
	}
	return 0;
}

static void get_array(const void *ctx, size_t i, const char **s, size_t *len)
{
	const char *const *frames = ctx;

	*s = frames[i];
	*len = strlen(frames[i]);
}

int tg_fg__add(struct tg_fg *fg, const char *const *frames, size_t nframes, uint64_t count)
{
	if (!fg || !frames || nframes == 0 || nframes > UINT32_MAX - 1)
		return -EINVAL;
	for (size_t i = 0; i < nframes; i++)
		if (!frames[i] || !frames[i][0])
			return -EINVAL;
	return add_frames(fg, nframes, count, get_array, frames);
}

struct folded_ctx {
	const char **start;
	size_t *len;
};

static void get_folded(const void *ctx, size_t i, const char **s, size_t *len)
{
	const struct folded_ctx *c = ctx;

	*s = c->start[i];
	*len = c->len[i];
}

int tg_fg__add_folded_line(struct tg_fg *fg, const char *line)
{
	struct folded_ctx c = {0};
	size_t end, sp, n = 0, nframes = 1;
	uint64_t count = 0;
	int err = -EINVAL;

	if (!fg || !line)
		return -EINVAL;
	end = strlen(line);
	if (end && line[end - 1] == '\n')
		end--;
	if (end && line[end - 1] == '\r')
		end--;
	for (sp = end; sp > 0 && line[sp - 1] != ' '; sp--)
		;
	if (sp == 0 || sp == end || sp == 1)
		return -EINVAL;
	for (size_t i = sp; i < end; i++) {
		unsigned d = (unsigned char)line[i] - '0';

		if (d > 9 || count > (UINT64_MAX - d) / 10)
			return -EINVAL;
		count = count * 10 + d;
	}
	sp--; /* the stack is line[0..sp) */
	for (size_t i = 0; i < sp; i++)
		nframes += line[i] == ';';
	c.start = malloc(nframes * sizeof(*c.start));
	c.len = malloc(nframes * sizeof(*c.len));
	if (!c.start || !c.len) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0, b = 0; i <= sp; i++) {
		if (i < sp && line[i] != ';')
			continue;
		if (i == b)
			goto out; /* empty frame */
		c.start[n] = line + b;
		c.len[n++] = i - b;
		b = i + 1;
	}
	err = add_frames(fg, n, count, get_folded, &c);
out:
	free(c.start);
	free(c.len);
	return err;
}

uint64_t tg_fg__total(const struct tg_fg *fg)
{
	return fg ? fg->nodes[0].total : 0;
}

size_t tg_fg__nnames(const struct tg_fg *fg)
{
	return fg ? fg->nnames : 0;
}

size_t tg_fg__nnodes(const struct tg_fg *fg)
{
	return fg ? fg->nnodes - 1 : 0;
}

size_t tg_fg__max_depth(const struct tg_fg *fg)
{
	return fg ? fg->max_depth : 0;
}

/* ---- sorted walk ---- */

struct sort_ent {
	uint64_t key;
	uint32_t idx;
	const char *name;
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct sort_ent *)a)->name, ((const struct sort_ent *)b)->name);
}

static int cmp_key(const void *a, const void *b)
{
	uint64_t x = ((const struct sort_ent *)a)->key, y = ((const struct sort_ent *)b)->key;

	return x < y ? -1 : x > y;
}

/* Pre-order walk over the nodes with samples, children in name order, x = samples to the left. */
struct walk {
	const struct tg_fg *fg;
	uint32_t *kids;	 /* children of node p: kids[start[p] .. start[p + 1]) */
	uint32_t *start; /* nnodes + 1 */
	uint32_t *path;	 /* path[0] = root .. path[d] */
	uint32_t *pos;	 /* next index into kids for path[k] */
	uint64_t *x;	 /* x of the next child of path[k] */
	size_t d;
	bool done;
};

static void walk_fini(struct walk *w)
{
	free(w->kids);
	free(w->start);
	free(w->path);
	free(w->pos);
	free(w->x);
}

static int walk_init(struct walk *w, const struct tg_fg *fg)
{
	size_t n = fg->nnodes, m = fg->max_depth + 1;
	struct sort_ent *e = malloc((fg->nnames + n) * sizeof(*e));
	uint32_t *rank = malloc((fg->nnames + 1) * sizeof(*rank));
	int err = -ENOMEM;

	*w = (struct walk){.fg = fg};
	w->kids = malloc(n * sizeof(*w->kids));
	w->start = calloc(n + 1, sizeof(*w->start));
	w->path = malloc(m * sizeof(*w->path));
	w->pos = malloc(m * sizeof(*w->pos));
	w->x = malloc(m * sizeof(*w->x));
	if (!e || !rank || !w->kids || !w->start || !w->path || !w->pos || !w->x)
		goto out;
	for (size_t i = 0; i < fg->nnames; i++)
		e[i] = (struct sort_ent){.idx = (uint32_t)i, .name = fg->names[i]};
	qsort(e, fg->nnames, sizeof(*e), cmp_name);
	for (size_t i = 0; i < fg->nnames; i++)
		rank[e[i].idx] = (uint32_t)i;
	for (size_t i = 1; i < n; i++)
		e[i - 1] = (struct sort_ent){
		    .key = (uint64_t)fg->nodes[i].parent << 32 | rank[fg->nodes[i].name],
		    .idx = (uint32_t)i,
		};
	qsort(e, n - 1, sizeof(*e), cmp_key);
	for (size_t i = 0; i + 1 < n; i++) {
		w->kids[i] = e[i].idx;
		w->start[fg->nodes[e[i].idx].parent + 1]++;
	}
	for (size_t i = 1; i <= n; i++)
		w->start[i] += w->start[i - 1];
	w->path[0] = 0;
	w->pos[0] = w->start[0];
	w->x[0] = 0;
	err = 0;
out:
	free(e);
	free(rank);
	if (err)
		walk_fini(w);
	return err;
}

/* The next node with samples (its depth is w->d), or 0 at the end. Sets *x. */
static uint32_t walk_next(struct walk *w, uint64_t *x)
{
	while (!w->done) {
		uint32_t p = w->path[w->d], c;

		if (w->pos[w->d] >= w->start[p + 1]) {
			if (w->d == 0)
				w->done = true;
			else
				w->d--;
			continue;
		}
		c = w->kids[w->pos[w->d]++];
		if (w->fg->nodes[c].total == 0)
			continue;
		*x = w->x[w->d];
		w->x[w->d] += w->fg->nodes[c].total;
		w->d++;
		w->path[w->d] = c;
		w->pos[w->d] = w->start[c];
		w->x[w->d] = *x;
		return c;
	}
	return 0;
}

/* Do not descend into the node walk_next just returned. */
static void walk_skip(struct walk *w)
{
	w->pos[w->d] = w->start[w->path[w->d] + 1];
}

struct tg_fg_iter {
	struct walk w;
	const char **frames;
};

struct tg_fg_iter *tg_fg_iter__new(const struct tg_fg *fg)
{
	struct tg_fg_iter *it;
	int err;

	if (!fg) {
		errno = EINVAL;
		return NULL;
	}
	it = calloc(1, sizeof(*it));
	if (!it)
		goto nomem;
	it->frames = malloc((fg->max_depth + 1) * sizeof(*it->frames));
	if (!it->frames)
		goto nomem;
	err = walk_init(&it->w, fg);
	if (err)
		goto nomem;
	return it;
nomem:
	if (it)
		free(it->frames);
	free(it);
	errno = ENOMEM;
	return NULL;
}

int tg_fg_iter__next(struct tg_fg_iter *it, const char *const **frames, size_t *nframes,
		     uint64_t *count)
{
	const struct tg_fg *fg = it->w.fg;
	uint32_t n;
	uint64_t x;

	while ((n = walk_next(&it->w, &x))) {
		it->frames[it->w.d - 1] = fg->names[fg->nodes[n].name];
		if (!fg->nodes[n].self)
			continue;
		if (frames)
			*frames = it->frames;
		if (nframes)
			*nframes = it->w.d;
		if (count)
			*count = fg->nodes[n].self;
		return 1;
	}
	return 0;
}

void tg_fg_iter__free(struct tg_fg_iter *it)
{
	if (!it)
		return;
	walk_fini(&it->w);
	free(it->frames);
	free(it);
}

static int finish(FILE *out)
{
	if (fflush(out) || ferror(out))
		return -EIO;
	return 0;
}

int tg_fg__write_folded(const struct tg_fg *fg, FILE *out)
{
	struct tg_fg_iter *it;
	const char *const *fr;
	size_t n;
	uint64_t count;

	if (!fg || !out)
		return -EINVAL;
	it = tg_fg_iter__new(fg);
	if (!it)
		return -ENOMEM;
	while (tg_fg_iter__next(it, &fr, &n, &count) == 1) {
		for (size_t i = 0; i < n; i++) {
			if (i)
				fputc(';', out);
			for (const char *s = fr[i]; *s; s++)
				fputc(*s == ';' ? ':' : *s, out);
		}
		fprintf(out, " %llu\n", (unsigned long long)count);
	}
	tg_fg_iter__free(it);
	return finish(out);
}

/* ---- speedscope ---- */

/* Split "qualname (file:line)" into its parts; returns false if s has another shape. */
static bool split_frame(const char *s, size_t *name_len, const char **file, size_t *file_len,
			long *line)
{
	size_t len = strlen(s), colon;
	const char *open;

	if (len < 6 || s[len - 1] != ')')
		return false;
	open = NULL;
	for (const char *p = s; (p = strstr(p, " (")); p++)
		open = p;
	if (!open || open == s)
		return false;
	colon = len - 1;
	while (colon > 0 && s[colon - 1] >= '0' && s[colon - 1] <= '9')
		colon--;
	if (colon == len - 1 || colon - 1 <= (size_t)(open - s) + 2 || s[colon - 1] != ':' ||
	    len - 1 - colon > 9)
		return false;
	*name_len = (size_t)(open - s);
	*file = open + 2;
	*file_len = colon - 1 - (size_t)(open + 2 - s);
	*line = strtol(s + colon, NULL, 10);
	return true;
}

static cJSON *add_str_n(cJSON *obj, const char *key, const char *s, size_t n)
{
	char *tmp = strndup(s, n);
	cJSON *r;

	if (!tmp)
		return NULL;
	r = cJSON_AddStringToObject(obj, key, tmp);
	free(tmp);
	return r;
}

static cJSON *speedscope_json(const struct tg_fg *fg, const char *name)
{
	cJSON *root = cJSON_CreateObject(), *frames, *prof, *samples, *weights, *shared, *profs;
	struct tg_fg_iter *it = NULL;
	const char *const *fr;
	size_t n;
	uint64_t count;

	if (!root)
		return NULL;
	if (!cJSON_AddStringToObject(root, "$schema",
				     "https://www.speedscope.app/file-format-schema.json"))
		goto err;
	shared = cJSON_AddObjectToObject(root, "shared");
	frames = shared ? cJSON_AddArrayToObject(shared, "frames") : NULL;
	if (!frames)
		goto err;
	for (size_t i = 0; i < fg->nnames; i++) {
		cJSON *f = cJSON_CreateObject();
		const char *file;
		size_t nl, fl;
		long line;

		if (!f)
			goto err;
		cJSON_AddItemToArray(frames, f);
		if (split_frame(fg->names[i], &nl, &file, &fl, &line)) {
			if (!add_str_n(f, "name", fg->names[i], nl) ||
			    !add_str_n(f, "file", file, fl) ||
			    !cJSON_AddNumberToObject(f, "line", (double)line))
				goto err;
		} else if (!cJSON_AddStringToObject(f, "name", fg->names[i])) {
			goto err;
		}
	}
	profs = cJSON_AddArrayToObject(root, "profiles");
	prof = cJSON_CreateObject();
	if (!profs || !prof)
		goto err_prof;
	cJSON_AddItemToArray(profs, prof);
	if (!cJSON_AddStringToObject(prof, "type", "sampled") ||
	    !cJSON_AddStringToObject(prof, "name", name) ||
	    !cJSON_AddStringToObject(prof, "unit", "none") ||
	    !cJSON_AddNumberToObject(prof, "startValue", 0) ||
	    !cJSON_AddNumberToObject(prof, "endValue", (double)fg->nodes[0].total))
		goto err;
	samples = cJSON_AddArrayToObject(prof, "samples");
	weights = cJSON_AddArrayToObject(prof, "weights");
	it = tg_fg_iter__new(fg);
	if (!samples || !weights || !it)
		goto err;
	while (tg_fg_iter__next(it, &fr, &n, &count) == 1) {
		cJSON *s = cJSON_CreateArray(), *wt = cJSON_CreateNumber((double)count);

		if (s)
			cJSON_AddItemToArray(samples, s);
		if (wt)
			cJSON_AddItemToArray(weights, wt);
		if (!s || !wt)
			goto err;
		for (size_t i = 0; i < n; i++) {
			uint32_t id = fg->nodes[it->w.path[i + 1]].name;
			cJSON *v = cJSON_CreateNumber(id);

			if (!v)
				goto err;
			cJSON_AddItemToArray(s, v);
		}
	}
	tg_fg_iter__free(it);
	it = NULL; /* the error path frees it too */
	if (!cJSON_AddStringToObject(root, "name", name) ||
	    !cJSON_AddStringToObject(root, "exporter", "timeglass"))
		goto err;
	return root;
err_prof:
	cJSON_Delete(prof);
err:
	tg_fg_iter__free(it);
	cJSON_Delete(root);
	return NULL;
}

int tg_fg__write_speedscope(const struct tg_fg *fg, FILE *out, const char *name)
{
	cJSON *root;
	char *text;
	int err = 0;

	if (!fg || !out)
		return -EINVAL;
	root = speedscope_json(fg, name ? name : "timeglass");
	if (!root)
		return -ENOMEM;
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!text)
		return -ENOMEM;
	if (fputs(text, out) == EOF || fputc('\n', out) == EOF)
		err = -EIO;
	free(text);
	return err ? err : finish(out);
}

/* ---- SVG ---- */

#define SVG_PAD 10.0	   /* left and right margin, px */
#define SVG_TOP 56.0	   /* space for the title, subtitle and buttons */
#define SVG_BOTTOM 34.0	   /* space for the details line */
#define SVG_FONT 12.0	   /* label font size, px */
#define SVG_CHAR_W 6.8	   /* estimated average label character width, px */
#define SVG_MIN_PERMILLE 1 /* boxes under 0.1 % of the total are left out */

/* The embedded script: zoom, reset, search. Written for this file; keep it free of "]]>". */
static const char svg_script[] =
    "(function () {\n"
    "'use strict';\n"
    "var svg = document.documentElement;\n"
    "var TOTAL = +svg.getAttribute('data-total'), PAD = +svg.getAttribute('data-pad');\n"
    "var AW = +svg.getAttribute('data-aw'), CW = +svg.getAttribute('data-cw');\n"
    "var frames = document.getElementById('frames');\n"
    "var details = document.getElementById('details'), matched = "
    "document.getElementById('matched');\n"
    "var resetBtn = document.getElementById('reset'), searchBtn = "
    "document.getElementById('search');\n"
    "var boxes = [], query = null, gs = frames.getElementsByTagName('g');\n"
    "for (var i = 0; i < gs.length; i++) {\n"
    "\tvar g = gs[i], t = g.getElementsByTagName('title')[0].textContent;\n"
    "\tvar b = { g: g, rect: g.getElementsByTagName('rect')[0], text: "
    "g.getElementsByTagName('text')[0],\n"
    "\t\ts: +g.getAttribute('data-s'), n: +g.getAttribute('data-n'), d: "
    "+g.getAttribute('data-d'),\n"
    "\t\tname: t.substring(0, t.lastIndexOf(' \\u2014 ')), title: t };\n"
    "\tb.fill = b.rect.getAttribute('fill');\n"
    "\tg.tgBox = b;\n"
    "\tboxes.push(b);\n"
    "}\n"
    "function label(name, w) {\n"
    "\tvar chars = Array.from(name), fit = Math.floor((w - 6) / CW);\n"
    "\tif (fit < 3) return '';\n"
    "\tif (chars.length <= fit) return name;\n"
    "\treturn chars.slice(0, fit - 2).join('').replace(/ +$/, '') + '..';\n"
    "}\n"
    "function place(b, x, w) {\n"
    "\tb.rect.setAttribute('x', x.toFixed(2));\n"
    "\tb.rect.setAttribute('width', (w > 1.5 ? w - 0.5 : w).toFixed(2));\n"
    "\tb.text.setAttribute('x', (x + 3).toFixed(2));\n"
    "\tb.text.textContent = label(b.name, w);\n"
    "}\n"
    "function zoom(z) {\n"
    "\tvar cs = z ? z.s : 0, cn = z ? z.n : TOTAL, cd = z ? z.d : 1;\n"
    "\tfor (var i = 0; i < boxes.length; i++) {\n"
    "\t\tvar b = boxes[i], anc = b.d < cd, show;\n"
    "\t\tif (anc) {\n"
    "\t\t\tshow = b.s <= cs && b.s + b.n >= cs + cn;\n"
    "\t\t\tif (show) place(b, PAD, AW);\n"
    "\t\t} else {\n"
    "\t\t\tshow = b.s >= cs && b.s + b.n <= cs + cn;\n"
    "\t\t\tif (show) place(b, PAD + (b.s - cs) / cn * AW, b.n / cn * AW);\n"
    "\t\t}\n"
    "\t\tb.g.setAttribute('display', show ? 'inline' : 'none');\n"
    "\t\tif (anc && show) b.g.classList.add('anc'); else b.g.classList.remove('anc');\n"
    "\t}\n"
    "\tresetBtn.setAttribute('display', z ? 'inline' : 'none');\n"
    "}\n"
    "function search(re) {\n"
    "\tvar iv = [], sum = 0, end = -1;\n"
    "\tquery = re;\n"
    "\tfor (var i = 0; i < boxes.length; i++) {\n"
    "\t\tvar b = boxes[i], hit = re !== null && re.test(b.name);\n"
    "\t\tb.rect.setAttribute('fill', hit ? 'rgb(220,60,230)' : b.fill);\n"
    "\t\tif (hit) iv.push([b.s, b.s + b.n]);\n"
    "\t}\n"
    "\tsearchBtn.textContent = re ? 'Reset search' : 'Search';\n"
    "\tif (!re) { matched.textContent = ''; return; }\n"
    "\tiv.sort(function (p, q) { return p[0] - q[0] || q[1] - p[1]; });\n"
    "\tfor (var j = 0; j < iv.length; j++)\n"
    "\t\tif (iv[j][0] >= end) { sum += iv[j][1] - iv[j][0]; end = iv[j][1]; }\n"
    "\tmatched.textContent = 'Matched: ' + (100 * sum / TOTAL).toFixed(1) + ' % of samples';\n"
    "}\n"
    "function promptSearch() {\n"
    "\tvar s = window.prompt('Search frames (regular expression)', query ? query.source : '');\n"
    "\tif (s === null) return;\n"
    "\tif (s === '') { search(null); return; }\n"
    "\ttry { search(new RegExp(s)); } catch (e) { window.alert('Bad regular expression: ' + "
    "e.message); }\n"
    "}\n"
    "function boxOf(e) {\n"
    "\tvar g = e.target && e.target.closest ? e.target.closest('g.f') : null;\n"
    "\treturn g ? g.tgBox : null;\n"
    "}\n"
    "frames.addEventListener('click', function (e) { var b = boxOf(e); if (b) zoom(b); });\n"
    "frames.addEventListener('mouseover', function (e) {\n"
    "\tvar b = boxOf(e); details.textContent = b ? b.title : '';\n"
    "});\n"
    "frames.addEventListener('mouseout', function () { details.textContent = ''; });\n"
    "document.getElementById('background').addEventListener('click', function () { zoom(null); "
    "});\n"
    "resetBtn.addEventListener('click', function () { zoom(null); });\n"
    "searchBtn.addEventListener('click', function () { if (query) search(null); else "
    "promptSearch(); });\n"
    "window.addEventListener('keydown', function (e) {\n"
    "\tif ((e.ctrlKey || e.metaKey) && (e.key === 'f' || e.key === 'F')) {\n"
    "\t\te.preventDefault();\n"
    "\t\tpromptSearch();\n"
    "\t} else if (e.key === 'Escape') {\n"
    "\t\tsearch(null);\n"
    "\t\tzoom(null);\n"
    "\t}\n"
    "});\n"
    "})();\n";

static void xml_escape(FILE *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n && s[i]; i++) {
		switch (s[i]) {
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '&':
			fputs("&amp;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&apos;", out);
			break;
		default:
			fputc(s[i], out);
		}
	}
}

/* Escape a caller's string (which may be any bytes) as sanitised UTF-8. */
static int xml_escape_raw(FILE *out, const char *s)
{
	char *clean = sanitize(s, strlen(s));

	if (!clean)
		return -ENOMEM;
	xml_escape(out, clean, strlen(clean));
	free(clean);
	return 0;
}

/* The label of a box w px wide: the name, or its first code points and "..", or nothing. */
static void svg_label(FILE *out, const char *name, double w)
{
	double fitd = (w - 6) / SVG_CHAR_W;
	size_t fit = fitd > 0 ? (size_t)fitd : 0, chars = 0, cut = 0, i;

	if (fit < 3)
		return;
	for (i = 0; name[i]; i++) {
		if (((unsigned char)name[i] & 0xc0) == 0x80)
			continue;
		if (chars == fit - 2)
			cut = i;
		chars++;
	}
	if (chars <= fit) {
		xml_escape(out, name, i);
		return;
	}
	while (cut > 0 && name[cut - 1] == ' ')
		cut--;
	xml_escape(out, name, cut);
	fputs("..", out);
}

/* A warm colour from the function part of the name, so one function has one colour. */
static void svg_colour(const char *name, char *buf, size_t size)
{
	const char *file;
	size_t nl, fl;
	long line;
	uint64_t h;
	double v1, v2, v3;

	if (!split_frame(name, &nl, &file, &fl, &line))
		nl = strlen(name);
	h = mix64(fnv1a(name, nl));
	v1 = (double)(h & 0xffff) / 0xffff;
	v2 = (double)(h >> 16 & 0xffff) / 0xffff;
	v3 = (double)(h >> 32 & 0xffff) / 0xffff;
	/* Components stay within 0..255, so "rgb(255,255,255)" (17 bytes) always fits. */
	snprintf(buf, size, "rgb(%u,%u,%u)", (unsigned char)(215 + (int)(40 * v1)),
		 (unsigned char)(90 + (int)(130 * v2)), (unsigned char)(30 + (int)(50 * v3)));
}

static bool svg_visible(uint64_t n, uint64_t total, double aw)
{
	return (double)n * 1000 >= (double)total * SVG_MIN_PERMILLE &&
	       (double)n / (double)total * aw >= 1.0;
}

static int svg_boxes(const struct tg_fg *fg, FILE *out, double aw, double fh, bool icicle,
		     size_t maxd)
{
	uint64_t total = fg->nodes[0].total, x;
	struct walk w;
	uint32_t n;
	int err = walk_init(&w, fg);

	if (err)
		return err;
	fputs("<g id=\"frames\">\n", out);
	while ((n = walk_next(&w, &x))) {
		const struct fg_node *node = &fg->nodes[n];
		const char *name = fg->names[node->name];
		double bx = SVG_PAD + (double)x / (double)total * aw;
		double bw = (double)node->total / (double)total * aw, by;
		char colour[32];

		if (!svg_visible(node->total, total, aw)) {
			walk_skip(&w);
			continue;
		}
		by = icicle ? SVG_TOP + (double)(node->depth - 1) * fh
			    : SVG_TOP + (double)(maxd - node->depth) * fh;
		svg_colour(name, colour, sizeof(colour));
		fprintf(out, "<g class=\"f\" data-s=\"%llu\" data-n=\"%llu\" data-d=\"%u\"><title>",
			(unsigned long long)x, (unsigned long long)node->total, node->depth);
		xml_escape(out, name, strlen(name));
		fprintf(out, " \u2014 %llu samples (%.2f %%)</title>",
			(unsigned long long)node->total,
			100.0 * (double)node->total / (double)total);
		fprintf(out,
			"<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\" "
			"rx=\"2\" ry=\"2\"/><text x=\"%.2f\" y=\"%.1f\">",
			bx, by, bw > 1.5 ? bw - 0.5 : bw, fh - 1, colour, bx + 3,
			by + fh / 2 + SVG_FONT * 0.35);
		svg_label(out, name, bw);
		fputs("</text></g>\n", out);
	}
	fputs("</g>\n", out);
	walk_fini(&w);
	return 0;
}

int tg_fg__write_svg(const struct tg_fg *fg, FILE *out, const struct tg_fg_svg_opts *opts)
{
	static const struct tg_fg_svg_opts defaults = {0};
	uint64_t total;
	double width, fh, aw, height;
	size_t maxd = 0;
	int err;

	if (!fg || !out)
		return -EINVAL;
	if (!opts)
		opts = &defaults;
	total = fg->nodes[0].total;
	width = opts->width ? opts->width : 1200;
	fh = opts->frame_height ? opts->frame_height : 16;
	if (width < 100)
		width = 100;
	aw = width - 2 * SVG_PAD;
	for (size_t i = 1; total && i < fg->nnodes; i++)
		if (fg->nodes[i].depth > maxd && svg_visible(fg->nodes[i].total, total, aw))
			maxd = fg->nodes[i].depth;
	height = SVG_TOP + (double)(maxd ? maxd : 3) * fh + SVG_BOTTOM;

	fprintf(out,
		"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" "
		"height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" data-total=\"%llu\" data-pad=\"%.0f\" "
		"data-aw=\"%.0f\" data-cw=\"%.2f\">\n",
		width, height, width, height, (unsigned long long)total, SVG_PAD, aw, SVG_CHAR_W);
	fprintf(
	    out,
	    "<style>\n"
	    "text { font-family: Verdana, 'DejaVu Sans', sans-serif; font-size: %.0fpx; "
	    "fill: #222; }\n"
	    "#frames text { pointer-events: none; }\n"
	    "#title { font-size: 17px; font-weight: bold; text-anchor: middle; }\n"
	    "#subtitle { fill: #555; text-anchor: middle; }\n"
	    ".btn { fill: #1f5fa8; cursor: pointer; }\n"
	    ".btn:hover { text-decoration: underline; }\n"
	    ".f { cursor: pointer; }\n"
	    ".f:hover rect { stroke: #333; stroke-width: 0.7; }\n"
	    ".anc rect { opacity: 0.55; }\n"
	    "</style>\n"
	    "<defs><linearGradient id=\"bg\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">"
	    "<stop offset=\"0\" stop-color=\"#fbfbfb\"/><stop offset=\"1\" stop-color=\"#f3ecdc\"/>"
	    "</linearGradient></defs>\n"
	    "<rect id=\"background\" x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" "
	    "fill=\"url(#bg)\"/>\n",
	    SVG_FONT, width, height);
	fprintf(out, "<text id=\"title\" x=\"%.0f\" y=\"24\">", width / 2);
	err = xml_escape_raw(out, opts->title ? opts->title : "Flame Graph");
	if (err)
		return err;
	fprintf(out, "</text>\n<text id=\"subtitle\" x=\"%.0f\" y=\"42\">%llu sample%s", width / 2,
		(unsigned long long)total, total == 1 ? "" : "s");
	if (opts->subtitle && opts->subtitle[0]) {
		fputs(" \u00b7 ", out);
		err = xml_escape_raw(out, opts->subtitle);
		if (err)
			return err;
	}
	fputs("</text>\n", out);

	if (!total) {
		fprintf(out,
			"<text id=\"empty\" x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">no "
			"samples</text>\n</svg>\n",
			width / 2, SVG_TOP + 1.5 * fh);
		return finish(out);
	}
	fprintf(out,
		"<text id=\"reset\" class=\"btn\" x=\"%.0f\" y=\"24\" display=\"none\">Reset "
		"zoom</text>\n"
		"<text id=\"search\" class=\"btn\" x=\"%.0f\" y=\"24\" "
		"text-anchor=\"end\">Search</text>\n",
		SVG_PAD, width - SVG_PAD);
	err = svg_boxes(fg, out, aw, fh, opts->icicle, maxd);
	if (err)
		return err;
	fprintf(out,
		"<text id=\"details\" x=\"%.0f\" y=\"%.0f\"> </text>\n"
		"<text id=\"matched\" x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\"> </text>\n",
		SVG_PAD, height - 12, width - SVG_PAD, height - 12);
	fprintf(out, "<script type=\"text/ecmascript\"><![CDATA[\n%s]]></script>\n</svg>\n",
		svg_script);
	return finish(out);
}
