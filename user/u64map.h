/* SPDX-License-Identifier: MIT */
/*
 * A small open-addressing hash map from uint64_t keys to pointers, for the
 * pipeline's connection tables (conn_id -> connection, pid:fd -> conn_id).
 * Linear probing, tombstones, grows at 70 % load. Key 0 is not allowed.
 */
#ifndef TG_U64MAP_H
#define TG_U64MAP_H

#include <stddef.h>
#include <stdint.h>

struct tg_u64map {
	uint64_t *keys; /* 0 = empty, UINT64_MAX = tombstone */
	void **vals;
	size_t cap;  /* power of two */
	size_t used; /* live + tombstones */
	size_t live;
};

/* Initialise an empty map. Returns 0 or -ENOMEM. */
int tg_u64map__init(struct tg_u64map *m, size_t initial_cap);
/* Free the arrays (not the values). Accepts a zeroed map. */
void tg_u64map__destroy(struct tg_u64map *m);
/* The value of key, or NULL. */
void *tg_u64map__get(const struct tg_u64map *m, uint64_t key);
/* Insert or replace. Returns 0, -EINVAL (key 0 or UINT64_MAX) or -ENOMEM. */
int tg_u64map__put(struct tg_u64map *m, uint64_t key, void *val);
/* Remove key; returns its value or NULL. */
void *tg_u64map__del(struct tg_u64map *m, uint64_t key);
/* Iterate: start with *pos = 0; returns 1 with *key and *val set, or 0 at the end.
 * The map must not change during an iteration, except tg_u64map__del of the
 * key just returned. */
int tg_u64map__next(const struct tg_u64map *m, size_t *pos, uint64_t *key, void **val);

#endif
