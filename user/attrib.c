/* SPDX-License-Identifier: MIT */
/*
 * Task-key attribution (attrib.h). Held items live in per-key lists found
 * through a hash map of (pid, key), created only when an item has to wait,
 * kept in time order (newest first: items arrive nearly in order, so an
 * insert walks a step or two), doubly linked, so that a claim stops at the
 * first item older than its request and the horizon takes items off the
 * tail without walking the rest. A key's list
 * can be long: Context addresses are reused, and the items of Contexts no
 * request claims (a pool's reset statement in a shielded child task, with
 * the task probes off) wait for the horizon under the same key as the
 * requests that later get that address; a claim that walked them all took
 * half the tracer's CPU on a database endpoint.
 * Finished requests go into a fixed ring of the last RECENT_N, searched when
 * an item arrives late: most requests have no item at all (a sample every
 * 10 ms, no SQL), so remembering them must cost no allocation. A key is
 * reused only after its Context object was freed, and the time window keeps
 * a reused key from matching the wrong request.
 */
#include "attrib.h"

#include <errno.h>
#include <stdlib.h>

#include "u64map.h"

struct held {
	struct held *next, *prev; /* older, newer */
	uint64_t ts_ns;
	void *item;
};

struct bucket {
	uint32_t pid;
	uint64_t key;
	struct held *items;	 /* by ts_ns, newest first */
	struct held *oldest;	 /* the list's tail: the horizon cuts there */
	struct bucket *next_all; /* all buckets, for tick */
	struct bucket **prev_all;
};

/* Finished requests remembered for late items: at thousands of requests per
 * second this covers tens of ms, far more than the ring buffer's reordering. */
#define RECENT_N 256

struct recent {
	uint64_t key, start_ns, end_ns;
	int64_t id;
	uint32_t pid;
};

struct tg_attrib {
	struct recent recent[RECENT_N];
	size_t recent_next;
	uint64_t horizon_ns;
	tg_attrib_resolve_fn resolve;
	void *ctx;
	struct tg_u64map map; /* hash(pid, key) -> bucket */
	struct bucket *all;
	size_t held;
};

static uint64_t map_key(uint32_t pid, uint64_t key)
{
	uint64_t k = key * 0x9e3779b97f4a7c15ULL ^ pid;

	return k == 0 || k == UINT64_MAX ? 1 : k;
}

struct tg_attrib *tg_attrib__new(uint64_t horizon_ns, tg_attrib_resolve_fn resolve, void *ctx)
{
	struct tg_attrib *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	if (tg_u64map__init(&a->map, 1024)) {
		free(a);
		errno = ENOMEM;
		return NULL;
	}
	a->horizon_ns = horizon_ns;
	a->resolve = resolve;
	a->ctx = ctx;
	return a;
}

/* The bucket of (pid, key), created when asked. The map is keyed by a hash of
 * both; on the (astronomically rare) collision of two different pairs the
 * lookup fails, and the caller releases the item unattributed rather than
 * risk a wrong request. */
static struct bucket *find(struct tg_attrib *a, uint32_t pid, uint64_t key, int create)
{
	uint64_t mk = map_key(pid, key);
	struct bucket *b = tg_u64map__get(&a->map, mk);

	if (b)
		return b->pid == pid && b->key == key ? b : NULL;
	if (!create)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->pid = pid;
	b->key = key;
	if (tg_u64map__put(&a->map, mk, b)) {
		free(b);
		return NULL;
	}
	b->next_all = a->all;
	b->prev_all = &a->all;
	if (a->all)
		a->all->prev_all = &b->next_all;
	a->all = b;
	return b;
}

/* Take h out of b's list and free it; its item is the caller's. */
static void unlink_held(struct tg_attrib *a, struct bucket *b, struct held *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		b->items = h->next;
	if (h->next)
		h->next->prev = h->prev;
	else
		b->oldest = h->prev;
	free(h);
	a->held--;
}

static void drop_bucket(struct tg_attrib *a, struct bucket *b)
{
	tg_u64map__del(&a->map, map_key(b->pid, b->key));
	*b->prev_all = b->next_all;
	if (b->next_all)
		b->next_all->prev_all = b->prev_all;
	free(b);
}

void tg_attrib__item(struct tg_attrib *a, uint32_t pid, uint64_t key, uint64_t ts_ns, void *item)
{
	struct bucket *b;
	struct held *h, *newer = NULL, *older;

	if (!key) {
		a->resolve(a->ctx, item, 0);
		return;
	}
	/* A late item: its request already finished (newest first). */
	for (size_t i = 0; i < RECENT_N; i++) {
		const struct recent *r = &a->recent[(a->recent_next - 1 - i) % RECENT_N];

		if (r->id && r->key == key && r->pid == pid && ts_ns >= r->start_ns &&
		    ts_ns <= r->end_ns) {
			a->resolve(a->ctx, item, r->id);
			return;
		}
	}
	b = find(a, pid, key, 1);
	h = b ? malloc(sizeof(*h)) : NULL;
	if (!h) {
		a->resolve(a->ctx, item, 0);
		return;
	}
	h->ts_ns = ts_ns;
	h->item = item;
	for (older = b->items; older && older->ts_ns > ts_ns; older = older->next)
		newer = older;
	h->prev = newer;
	h->next = older;
	if (newer)
		newer->next = h;
	else
		b->items = h;
	if (older)
		older->prev = h;
	else
		b->oldest = h;
	a->held++;
}

size_t tg_attrib__claim(struct tg_attrib *a, uint32_t pid, uint64_t key, uint64_t start_ns,
			uint64_t end_ns, void **out, size_t cap)
{
	struct bucket *b;
	struct held *h, *next;
	size_t n = 0;

	if (!key || !a->held)
		return 0;
	b = find(a, pid, key, 0);
	if (!b)
		return 0;
	for (h = b->items; h && h->ts_ns >= start_ns && n < cap; h = next) {
		next = h->next;
		if (h->ts_ns <= end_ns) {
			out[n++] = h->item;
			unlink_held(a, b, h);
		}
	}
	if (!b->items) /* the tick walks every bucket: keep only those holding items */
		drop_bucket(a, b);
	return n;
}

void tg_attrib__request_stored(struct tg_attrib *a, uint32_t pid, uint64_t key, uint64_t start_ns,
			       uint64_t end_ns, int64_t id)
{
	struct recent *r;

	if (!key || !id)
		return;
	r = &a->recent[a->recent_next++ % RECENT_N];
	r->pid = pid;
	r->key = key;
	r->start_ns = start_ns;
	r->end_ns = end_ns;
	r->id = id;
}

void tg_attrib__tick(struct tg_attrib *a, uint64_t now_ns)
{
	struct bucket *b, *next;
	struct held *h;
	uint64_t limit = now_ns > a->horizon_ns ? now_ns - a->horizon_ns : 0;

	for (b = a->all; b; b = next) {
		next = b->next_all;
		while ((h = b->oldest) && h->ts_ns < limit) { /* pop the tail */
			void *item = h->item;

			b->oldest = h->prev;
			if (b->oldest)
				b->oldest->next = NULL;
			else
				b->items = NULL;
			free(h);
			a->held--;
			a->resolve(a->ctx, item, 0);
		}
		if (!b->items)
			drop_bucket(a, b);
	}
}

size_t tg_attrib__held(const struct tg_attrib *a)
{
	return a->held;
}

void tg_attrib__free(struct tg_attrib *a)
{
	if (!a)
		return;
	tg_attrib__tick(a, UINT64_MAX);
	while (a->all)
		drop_bucket(a, a->all);
	tg_u64map__destroy(&a->map);
	free(a);
}
