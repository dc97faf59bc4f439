/* SPDX-License-Identifier: MIT */
/* Task-key attribution: held items claimed by their request's window, late
 * items, concurrent requests with different keys, key reuse, the horizon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "attrib.h"

#define N 64

struct sink {
	int64_t ids[N]; /* per item index: resolved id, -1 = not resolved */
};

static void resolve(void *ctx, void *item, int64_t id)
{
	struct sink *s = ctx;
	int i = (int)(intptr_t)item;

	assert_int_equal(s->ids[i], -1); /* resolved once */
	s->ids[i] = id;
}

static struct tg_attrib *setup_sink(struct sink *s)
{
	struct tg_attrib *a = tg_attrib__new(1000, resolve, s);

	for (int i = 0; i < N; i++)
		s->ids[i] = -1;
	assert_non_null(a);
	return a;
}

#define ITEM(i) ((void *)(intptr_t)(i))

static void test_claim_in_window(void **state)
{
	struct sink s;
	struct tg_attrib *a = setup_sink(&s);
	void *out[8];
	size_t n;

	(void)state;
	tg_attrib__item(a, 1, 0xA, 100, ITEM(1));
	tg_attrib__item(a, 1, 0xA, 150, ITEM(2));
	tg_attrib__item(a, 1, 0xA, 500, ITEM(3)); /* after the request ended */
	tg_attrib__item(a, 2, 0xA, 120, ITEM(4)); /* same key, other process */
	tg_attrib__item(a, 1, 0, 120, ITEM(5));	  /* no key: resolved at once */
	assert_int_equal(s.ids[5], 0);
	assert_int_equal(tg_attrib__held(a), 4);
	n = tg_attrib__claim(a, 1, 0xA, 90, 200, out, 8);
	assert_int_equal(n, 2);
	assert_int_equal(tg_attrib__held(a), 2);
	tg_attrib__request_stored(a, 1, 0xA, 90, 200, 77);
	/* a late item inside the window goes straight to the request */
	tg_attrib__item(a, 1, 0xA, 180, ITEM(6));
	assert_int_equal(s.ids[6], 77);
	assert_int_equal(s.ids[1], -1); /* claimed ones are the caller's to resolve */
	tg_attrib__free(a);
	assert_int_equal(s.ids[3], 0);
	assert_int_equal(s.ids[4], 0);
}

static void test_concurrent_keys(void **state)
{
	struct sink s;
	struct tg_attrib *a = setup_sink(&s);
	void *out[N];
	size_t n;
	int i;

	(void)state;
	/* 10 requests in flight on one loop, items interleaved. */
	for (i = 0; i < 50; i++)
		tg_attrib__item(a, 1, 0x1000 + (uint64_t)(i % 10), 100 + (uint64_t)i, ITEM(i));
	for (i = 0; i < 10; i++) {
		n = tg_attrib__claim(a, 1, 0x1000 + (uint64_t)i, 50, 400, out, N);
		assert_int_equal(n, 5);
		for (size_t k = 0; k < n; k++)
			assert_int_equal((int)(intptr_t)out[k] % 10, i);
	}
	assert_int_equal(tg_attrib__held(a), 0);
	tg_attrib__free(a);
}

static void test_key_reuse_and_horizon(void **state)
{
	struct sink s;
	struct tg_attrib *a = setup_sink(&s);
	void *out[4];

	(void)state;
	tg_attrib__request_stored(a, 1, 0xB, 100, 200, 5);
	/* the same key later (a new task reusing the freed Context's address):
	 * outside the old window, so it is held, not given to request 5 */
	tg_attrib__item(a, 1, 0xB, 900, ITEM(1));
	assert_int_equal(s.ids[1], -1);
	assert_int_equal(tg_attrib__claim(a, 1, 0xB, 850, 950, out, 4), 1);
	/* unclaimed items are released after the horizon (1000 ns here) */
	tg_attrib__item(a, 1, 0xC, 1000, ITEM(2));
	tg_attrib__tick(a, 1500);
	assert_int_equal(s.ids[2], -1);
	tg_attrib__tick(a, 2001);
	assert_int_equal(s.ids[2], 0);
	assert_int_equal(tg_attrib__held(a), 0);
	tg_attrib__free(a);
	tg_attrib__free(NULL);
}

/* Items of one key arriving out of time order (CPUs interleave in the ring
 * buffer): a claim takes exactly those of its window, whatever the order;
 * the horizon releases exactly the older ones. */
static void test_out_of_order_items(void **state)
{
	static const uint64_t ts[] = {500, 300, 800, 100, 450, 700, 300, 50, 900, 420};
	struct sink s;
	struct tg_attrib *a = setup_sink(&s);
	void *out[N];
	bool got[N] = {false};
	size_t n;

	(void)state;
	for (int i = 0; i < 10; i++)
		tg_attrib__item(a, 1, 0xB, ts[i], ITEM(i));
	n = tg_attrib__claim(a, 1, 0xB, 300, 500, out, N);
	assert_int_equal(n, 5); /* 500, 300, 450, 300, 420 */
	for (size_t k = 0; k < n; k++)
		got[(intptr_t)out[k]] = true;
	for (int i = 0; i < 10; i++)
		assert_int_equal(got[i], ts[i] >= 300 && ts[i] <= 500);
	assert_int_equal(tg_attrib__held(a), 5);
	tg_attrib__tick(a, 1000 + 600); /* horizon 1000: older than 600 go */
	assert_int_equal(s.ids[3], 0);	/* 100 */
	assert_int_equal(s.ids[7], 0);	/* 50 */
	assert_int_equal(s.ids[2], -1); /* 800 stays */
	assert_int_equal(s.ids[5], -1); /* 700 */
	assert_int_equal(s.ids[8], -1); /* 900 */
	assert_int_equal(tg_attrib__held(a), 3);
	n = tg_attrib__claim(a, 1, 0xB, 650, 850, out, N);
	assert_int_equal(n, 2);
	tg_attrib__free(a);
	assert_int_equal(s.ids[8], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_claim_in_window),
	    cmocka_unit_test(test_out_of_order_items),
	    cmocka_unit_test(test_concurrent_keys),
	    cmocka_unit_test(test_key_reuse_and_horizon),
	};

	return cmocka_run_group_tests_name("attrib", tests, NULL, NULL);
}
