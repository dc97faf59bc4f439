/* SPDX-License-Identifier: MIT */
/* TLS plaintext held until its SSL object is tied to a connection: release
 * in order and per (pid, ssl) only; the count, byte and age bounds drop the
 * oldest and count them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tlshold.h"

struct got {
	int n;
	uint32_t len[16];
	char first[16];
};

static void collect(void *ctx, const struct tg_ev_tls *ev, size_t size)
{
	struct got *g = ctx;

	assert_true(size >= sizeof(*ev) + ev->head_len);
	assert_true(g->n < 16);
	g->len[g->n] = ev->len;
	g->first[g->n] = ev->head_len ? (char)ev->data[0] : 0;
	g->n++;
}

/* An event of (pid, ssl) at ts with head bytes of c (len = head). */
static struct tg_ev_tls *ev(uint32_t pid, uint64_t ssl, uint64_t ts, char c, uint16_t head,
			    size_t *size)
{
	struct tg_ev_tls *e;

	*size = (sizeof(*e) + head + 7) & ~(size_t)7;
	e = calloc(1, *size);
	assert_non_null(e);
	e->hdr.type = TG_EV_TLS;
	e->hdr.size = (uint16_t)*size;
	e->hdr.pid = pid;
	e->hdr.ts_ns = ts;
	e->ssl = ssl;
	e->len = head;
	e->head_len = head;
	memset(e->data, c, head);
	return e;
}

static void put(struct tg_tlshold *h, uint32_t pid, uint64_t ssl, uint64_t ts, char c,
		uint16_t head)
{
	size_t size;
	struct tg_ev_tls *e = ev(pid, ssl, ts, c, head, &size);

	assert_int_equal(tg_tlshold__put(h, e, size), 0);
	free(e); /* the hold keeps a copy */
}

static void test_release_in_order_per_object(void **state)
{
	struct tg_tlshold *h = tg_tlshold__new();
	struct got g = {0};

	(void)state;
	assert_non_null(h);
	put(h, 10, 0xA, 100, 'a', 5);
	put(h, 10, 0xB, 110, 'b', 7);
	put(h, 11, 0xA, 120, 'x', 3); /* same address, another process */
	put(h, 10, 0xA, 130, 'c', 9);
	assert_int_equal(tg_tlshold__held(h), 4);
	tg_tlshold__release(h, 10, 0xA, collect, &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.first[0], 'a');
	assert_int_equal(g.len[0], 5);
	assert_int_equal(g.first[1], 'c');
	assert_int_equal(g.len[1], 9);
	assert_int_equal(tg_tlshold__held(h), 2);
	tg_tlshold__release(h, 10, 0xA, collect, &g); /* nothing left for it */
	assert_int_equal(g.n, 2);
	tg_tlshold__release(h, 11, 0xA, collect, &g);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.first[2], 'x');
	assert_int_equal(tg_tlshold__dropped(h), 0);
	tg_tlshold__free(h); /* frees the one still held */
	tg_tlshold__free(NULL);
}

static void test_bounds_drop_oldest(void **state)
{
	struct tg_tlshold *h = tg_tlshold__new();
	struct got g = {0};

	(void)state;
	/* the count bound */
	for (int i = 0; i < TG_TLSHOLD_MAX + 3; i++)
		put(h, 1, 0x100 + (uint64_t)i, 1000 + (uint64_t)i, 'n', 1);
	assert_int_equal(tg_tlshold__held(h), TG_TLSHOLD_MAX);
	assert_int_equal(tg_tlshold__dropped(h), 3);
	tg_tlshold__release(h, 1, 0x100, collect, &g); /* the oldest went first */
	assert_int_equal(g.n, 0);
	tg_tlshold__release(h, 1, 0x103, collect, &g);
	assert_int_equal(g.n, 1);
	/* the age bound: everything older than TG_TLSHOLD_NS behind the newest */
	put(h, 1, 0x999, 3000 + TG_TLSHOLD_NS, 'z', 1);
	assert_int_equal(tg_tlshold__held(h), 1);
	assert_int_equal(tg_tlshold__dropped(h), 3 + TG_TLSHOLD_MAX - 1);
	tg_tlshold__free(h);
}

static void test_byte_bound(void **state)
{
	struct tg_tlshold *h = tg_tlshold__new();
	int n = 0;

	(void)state;
	/* 16 KiB heads: the byte bound (4 MiB) comes before the count bound */
	for (int i = 0; i < 300; i++, n++)
		put(h, 1, (uint64_t)i + 1, 10, 'q', 16384);
	assert_true(tg_tlshold__held(h) < 300);
	assert_true(tg_tlshold__held(h) * (sizeof(struct tg_ev_tls) + 16384) <= TG_TLSHOLD_BYTES);
	assert_int_equal(tg_tlshold__held(h) + tg_tlshold__dropped(h), (size_t)n);
	tg_tlshold__free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_release_in_order_per_object),
	    cmocka_unit_test(test_bounds_drop_oldest),
	    cmocka_unit_test(test_byte_bound),
	};

	return cmocka_run_group_tests_name("tlshold", tests, NULL, NULL);
}
