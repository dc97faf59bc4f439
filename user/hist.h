/* SPDX-License-Identifier: MIT */
/*
 * Log-linear latency histograms (HDR-style): values below 64 ns have a bucket
 * each; above, every power of two is split into 32 equal sub-buckets, so a
 * bucket's midpoint is within 1/64 (1.6 %) of any value in it. Values from
 * 2^41 ns (~36 min) up share the last bucket. Histograms are stored in the
 * database (rollup tables, docs/schema.md) as a sparse blob: sorted
 * (uint16 bucket, uint32 count) pairs, little-endian, 6 bytes each.
 */
#ifndef TG_HIST_H
#define TG_HIST_H

#include <stddef.h>
#include <stdint.h>

#define TG_HIST_SUB_BITS 5
#define TG_HIST_MAX_EXP 41
#define TG_HIST_BUCKETS (64 + (TG_HIST_MAX_EXP - 6) * 32)
#define TG_HIST_PAIR_SIZE 6

struct tg_hist {
	uint64_t total;
	uint32_t count[TG_HIST_BUCKETS];
};

/* The bucket of value v (ns). */
unsigned tg_hist__bucket(uint64_t v);

/* The value that represents bucket b: its midpoint (exact below 64). */
uint64_t tg_hist__value(unsigned b);

/* Add one value. */
void tg_hist__add(struct tg_hist *h, uint64_t v);

/* Add one value whose bucket (tg_hist__bucket) is b < TG_HIST_BUCKETS: for a
 * value added to several histograms. */
static inline void tg_hist__add_bucket(struct tg_hist *h, unsigned b)
{
	h->count[b]++;
	h->total++;
}

/* Zero h. */
void tg_hist__clear(struct tg_hist *h);

/* The value at quantile q (0 < q <= 1): the representative value of the
 * bucket holding the ceil(q * total)-th smallest value. 0 when empty. */
uint64_t tg_hist__quantile(const struct tg_hist *h, double q);

/* Encode h as a sparse blob into out (capacity cap bytes; at most
 * TG_HIST_BUCKETS * TG_HIST_PAIR_SIZE are needed). Returns the length. */
size_t tg_hist__encode(const struct tg_hist *h, uint8_t *out, size_t cap);

/* Add the sparse blob (len bytes; NULL/0 is empty) into h. Returns 0, or
 * -EINVAL when the blob is malformed (h then holds the pairs before the
 * bad one). */
int tg_hist__merge_blob(struct tg_hist *h, const void *blob, size_t len);

struct sqlite3;

/* Register on db the SQL functions the store's rollups use:
 * tg_hist_merge(a, b) -> blob (the sum of two sparse blobs, either may be
 * NULL) and the aggregate tg_hist_of(duration_ns) -> blob (NULLs skipped).
 * Returns an SQLite result code. */
int tg_hist__register_sql(struct sqlite3 *db);

#endif
