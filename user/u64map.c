/* SPDX-License-Identifier: MIT */
/* Open-addressing uint64 -> pointer map (u64map.h). */
#include "u64map.h"

#include <errno.h>
#include <stdlib.h>

#define TOMB UINT64_MAX

static size_t slot_of(uint64_t key, size_t cap)
{
	/* splitmix64 finaliser: conn ids are sequential, spread them. */
	key ^= key >> 30;
	key *= 0xbf58476d1ce4e5b9ULL;
	key ^= key >> 27;
	key *= 0x94d049bb133111ebULL;
	key ^= key >> 31;
	return (size_t)key & (cap - 1);
}

int tg_u64map__init(struct tg_u64map *m, size_t initial_cap)
{
	size_t cap = 16;

	while (cap < initial_cap)
		cap <<= 1;
	m->keys = calloc(cap, sizeof(*m->keys));
	m->vals = calloc(cap, sizeof(*m->vals));
	if (!m->keys || !m->vals) {
		free(m->keys);
		free(m->vals);
		m->keys = NULL;
		m->vals = NULL;
		return -ENOMEM;
	}
	m->cap = cap;
	m->used = 0;
	m->live = 0;
	return 0;
}

void tg_u64map__destroy(struct tg_u64map *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
	m->cap = m->used = m->live = 0;
}

void *tg_u64map__get(const struct tg_u64map *m, uint64_t key)
{
	size_t i;

	if (!m->cap || key == 0 || key == TOMB)
		return NULL;
	for (i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key)
			return m->vals[i];
		if (m->keys[i] == 0)
			return NULL;
	}
}

static int grow(struct tg_u64map *m)
{
	struct tg_u64map n;
	size_t i;
	size_t cap = m->live * 2 > m->cap / 2 ? m->cap * 2 : m->cap;

	if (tg_u64map__init(&n, cap))
		return -ENOMEM;
	for (i = 0; i < m->cap; i++) {
		if (m->keys[i] && m->keys[i] != TOMB) {
			size_t j = slot_of(m->keys[i], n.cap);

			while (n.keys[j])
				j = (j + 1) & (n.cap - 1);
			n.keys[j] = m->keys[i];
			n.vals[j] = m->vals[i];
			n.used++;
			n.live++;
		}
	}
	free(m->keys);
	free(m->vals);
	m->keys = n.keys;
	m->vals = n.vals;
	m->cap = n.cap;
	m->used = n.used;
	m->live = n.live;
	return 0;
}

int tg_u64map__put(struct tg_u64map *m, uint64_t key, void *val)
{
	size_t i, tomb = SIZE_MAX;

	if (key == 0 || key == TOMB)
		return -EINVAL;
	if ((m->used + 1) * 10 >= m->cap * 7 && grow(m))
		return -ENOMEM;
	for (i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			m->vals[i] = val;
			return 0;
		}
		if (m->keys[i] == TOMB && tomb == SIZE_MAX)
			tomb = i;
		if (m->keys[i] == 0)
			break;
	}
	if (tomb != SIZE_MAX) {
		i = tomb;
	} else {
		m->used++;
	}
	m->keys[i] = key;
	m->vals[i] = val;
	m->live++;
	return 0;
}

void *tg_u64map__del(struct tg_u64map *m, uint64_t key)
{
	size_t i;
	void *v;

	if (!m->cap || key == 0 || key == TOMB)
		return NULL;
	for (i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			v = m->vals[i];
			m->keys[i] = TOMB;
			m->vals[i] = NULL;
			m->live--;
			return v;
		}
		if (m->keys[i] == 0)
			return NULL;
	}
}

int tg_u64map__next(const struct tg_u64map *m, size_t *pos, uint64_t *key, void **val)
{
	for (; *pos < m->cap; (*pos)++) {
		if (m->keys[*pos] && m->keys[*pos] != TOMB) {
			*key = m->keys[*pos];
			*val = m->vals[*pos];
			(*pos)++;
			return 1;
		}
	}
	return 0;
}
