/* SPDX-License-Identifier: MIT */
/*
 * FNV-1a, the string hash of the userspace tables (flame graph names, the SQL
 * tracker's texts, the pipeline's route memo): short keys, no allocation.
 */
#ifndef TG_HASH_H
#define TG_HASH_H

#include <stddef.h>
#include <stdint.h>

#define TG_FNV1A_SEED 1469598103934665603ULL /* the offset basis */

/* h, continued over the n bytes at p (start from TG_FNV1A_SEED; chain calls
 * to hash several fields). */
static inline uint64_t tg_fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

#endif
