/* SPDX-License-Identifier: MIT */
/*
 * Log-linear histograms (hist.h). Bucket arithmetic is integer-only: the
 * exponent is the index of the top bit, the sub-bucket the next 5 bits. The
 * SQL functions let the store maintain its rollups with one upsert per row
 * (tg_hist_merge in ON CONFLICT) and rebuild them from raw rows (tg_hist_of).
 */
#include "hist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

unsigned tg_hist__bucket(uint64_t v)
{
	unsigned e;

	if (v < 64)
		return (unsigned)v;
	e = 63 - (unsigned)__builtin_clzll(v);
	if (e >= TG_HIST_MAX_EXP)
		return TG_HIST_BUCKETS - 1;
	return 64 + (e - 6) * 32 + (unsigned)((v >> (e - TG_HIST_SUB_BITS)) & 31);
}

uint64_t tg_hist__value(unsigned b)
{
	unsigned e, sub;
	uint64_t lo, width;

	if (b < 64)
		return b;
	if (b >= TG_HIST_BUCKETS)
		b = TG_HIST_BUCKETS - 1;
	e = (b - 64) / 32 + 6;
	sub = (b - 64) % 32;
	width = 1ULL << (e - TG_HIST_SUB_BITS);
	lo = (32ULL + sub) * width;
	return lo + width / 2;
}

void tg_hist__add(struct tg_hist *h, uint64_t v)
{
	tg_hist__add_bucket(h, tg_hist__bucket(v));
}

void tg_hist__clear(struct tg_hist *h)
{
	memset(h, 0, sizeof(*h));
}

uint64_t tg_hist__quantile(const struct tg_hist *h, double q)
{
	uint64_t rank, seen = 0;
	unsigned b;

	if (!h->total)
		return 0;
	if (q > 1)
		q = 1;
	rank = (uint64_t)(q * (double)h->total);
	if ((double)rank < q * (double)h->total)
		rank++;
	if (rank < 1)
		rank = 1;
	for (b = 0; b < TG_HIST_BUCKETS; b++) {
		seen += h->count[b];
		if (seen >= rank)
			return tg_hist__value(b);
	}
	return tg_hist__value(TG_HIST_BUCKETS - 1);
}

size_t tg_hist__encode(const struct tg_hist *h, uint8_t *out, size_t cap)
{
	size_t n = 0;
	unsigned b;

	for (b = 0; b < TG_HIST_BUCKETS && n + TG_HIST_PAIR_SIZE <= cap; b++) {
		uint32_t c = h->count[b];

		if (!c)
			continue;
		out[n++] = (uint8_t)b;
		out[n++] = (uint8_t)(b >> 8);
		out[n++] = (uint8_t)c;
		out[n++] = (uint8_t)(c >> 8);
		out[n++] = (uint8_t)(c >> 16);
		out[n++] = (uint8_t)(c >> 24);
	}
	return n;
}

int tg_hist__merge_blob(struct tg_hist *h, const void *blob, size_t len)
{
	const uint8_t *p = blob;
	size_t i;

	if (len % TG_HIST_PAIR_SIZE)
		return -EINVAL;
	for (i = 0; i < len; i += TG_HIST_PAIR_SIZE) {
		unsigned b = p[i] | (unsigned)p[i + 1] << 8;
		uint32_t c = p[i + 2] | (uint32_t)p[i + 3] << 8 | (uint32_t)p[i + 4] << 16 |
			     (uint32_t)p[i + 5] << 24;

		if (b >= TG_HIST_BUCKETS)
			return -EINVAL;
		h->count[b] += c;
		h->total += c;
	}
	return 0;
}

static void result_hist(sqlite3_context *ctx, const struct tg_hist *h)
{
	uint8_t *buf = sqlite3_malloc(TG_HIST_BUCKETS * TG_HIST_PAIR_SIZE);
	size_t n;

	if (!buf) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	n = tg_hist__encode(h, buf, (size_t)TG_HIST_BUCKETS * TG_HIST_PAIR_SIZE);
	sqlite3_result_blob(ctx, buf, (int)n, sqlite3_free);
}

static void sql_merge(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct tg_hist *h = calloc(1, sizeof(*h));
	int i;

	if (!h) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	for (i = 0; i < argc; i++) {
		if (sqlite3_value_type(argv[i]) == SQLITE_NULL)
			continue;
		if (tg_hist__merge_blob(h, sqlite3_value_blob(argv[i]),
					(size_t)sqlite3_value_bytes(argv[i]))) {
			sqlite3_result_error(ctx, "tg_hist_merge: malformed histogram", -1);
			free(h);
			return;
		}
	}
	result_hist(ctx, h);
	free(h);
}

/* The aggregate's context holds a pointer to a heap histogram (the context
 * itself is sized small; a struct tg_hist is ~4.5 KiB). */
static void sql_of_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	/* The aggregate context holds one pointer to the histogram. */
	struct tg_hist **hp = sqlite3_aggregate_context(ctx, sizeof(struct tg_hist *));

	(void)argc;
	if (!hp) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	if (!*hp && !(*hp = calloc(1, sizeof(**hp)))) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	if (sqlite3_value_type(argv[0]) != SQLITE_NULL)
		tg_hist__add(*hp, (uint64_t)sqlite3_value_int64(argv[0]));
}

static void sql_of_final(sqlite3_context *ctx)
{
	struct tg_hist **hp = sqlite3_aggregate_context(ctx, 0);
	static const struct tg_hist empty;

	result_hist(ctx, hp && *hp ? *hp : &empty);
	if (hp)
		free(*hp);
}

int tg_hist__register_sql(struct sqlite3 *db)
{
	int rc;

	rc = sqlite3_create_function(db, "tg_hist_merge", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
				     NULL, sql_merge, NULL, NULL);
	if (rc == SQLITE_OK)
		rc =
		    sqlite3_create_function(db, "tg_hist_of", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
					    NULL, NULL, sql_of_step, sql_of_final);
	return rc;
}
