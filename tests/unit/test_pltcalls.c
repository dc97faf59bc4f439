/* SPDX-License-Identifier: MIT */
/* Unit tests of user/pltcalls.c: a fixture library built with the tests
 * (four calls of puts through its PLT, one followed by a string's load), Debian's uvloop module
 * (the calls of PySet_Add the tracer probes) and files it must refuse. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pltcalls.h"

#define UVLOOP "/usr/lib/python3/dist-packages/uvloop/loop.cpython-311-x86_64-linux-gnu.so"

/* The five bytes at off in path. */
static void bytes_at(const char *path, uint64_t off, uint8_t out[5])
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, out, 5, (off_t)off), 5);
	close(fd);
}

/* Every site is a call or jump rel32, and all of them aim at one place
 * (the stub): the displacement from each file offset lands on the same
 * file offset (text and PLT keep their distance in the file). */
static void assert_one_target(const char *path, const uint64_t *off, size_t n)
{
	int64_t target = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t b[5];
		int32_t rel;

		bytes_at(path, off[i], b);
		assert_true(b[0] == 0xe8 || b[0] == 0xe9);
		memcpy(&rel, b + 1, sizeof(rel));
		if (i == 0)
			target = (int64_t)off[i] + 5 + rel;
		else
			assert_int_equal((int64_t)off[i] + 5 + rel, target);
		if (i)
			assert_true(off[i] > off[i - 1]); /* file order, no duplicate */
	}
}

static void test_fixture(void **state)
{
	uint64_t off[8];
	size_t n = 99;

	(void)state;
	assert_int_equal(tg_pltcalls__find(TG_PLT_FIXTURE, "puts", off, 8, &n), 0);
	assert_int_equal(n, 4);
	assert_one_target(TG_PLT_FIXTURE, off, n);
	/* Imported but never called, and not imported at all. */
	assert_int_equal(tg_pltcalls__find(TG_PLT_FIXTURE, "putchar", off, 8, &n), -ENOENT);
	assert_int_equal(n, 0);
	assert_int_equal(tg_pltcalls__find(TG_PLT_FIXTURE, "tg_no_such_symbol", off, 8, &n),
			 -ENOENT);
}

static void test_too_many(void **state)
{
	uint64_t off[2] = {0, 0};
	size_t n = 0;

	(void)state;
	assert_int_equal(tg_pltcalls__find(TG_PLT_FIXTURE, "puts", off, 2, &n), -E2BIG);
	assert_int_equal(n, 2);
	assert_one_target(TG_PLT_FIXTURE, off, n);
}

static void test_keep_near(void **state)
{
	uint64_t off[8], all[8];
	size_t n = 0, m;
	uint8_t b[5];

	(void)state;
	assert_int_equal(tg_pltcalls__find(TG_PLT_FIXTURE, "puts", all, 8, &n), 0);
	assert_int_equal(n, 4);
	memcpy(off, all, sizeof(off));
	m = n;
	assert_int_equal(tg_pltcalls__keep_near(TG_PLT_FIXTURE, "tg.fixture.named", 16, off, &m),
			 0);
	assert_int_equal(m, 1);
	/* The kept call is the one a `lea ...(%rip), %rdi` follows. */
	bytes_at(TG_PLT_FIXTURE, off[0] + 5, b);
	assert_int_equal(b[0], 0x48);
	assert_int_equal(b[1], 0x8d);
	assert_int_equal(b[2], 0x3d);
	/* Nothing near: offsets untouched. */
	memcpy(off, all, sizeof(off));
	m = n;
	assert_int_equal(tg_pltcalls__keep_near(TG_PLT_FIXTURE, "tg.fixture.named", 5, off, &m),
			 -ENOENT);
	assert_int_equal(m, n);
	assert_memory_equal(off, all, sizeof(off));
	assert_int_equal(tg_pltcalls__keep_near(TG_PLT_FIXTURE, "tg.no.such.string", 4096, off, &m),
			 -ENOENT);
	assert_int_equal(m, n);
	/* Only whole strings: a piece of one is not it. */
	assert_int_equal(tg_pltcalls__keep_near(TG_PLT_FIXTURE, "fixture.named", 4096, off, &m),
			 -ENOENT);
	assert_int_equal(tg_pltcalls__keep_near(TG_PLT_FIXTURE, "", 4096, off, &m), -EINVAL);
}

static void test_uvloop(void **state)
{
	uint64_t off[32];
	size_t n = 0;

	(void)state;
	if (access(UVLOOP, R_OK))
		skip();
	/* Cython's set.add() on typed sets: _queue_write, TimerHandle, ... */
	assert_int_equal(tg_pltcalls__find(UVLOOP, "PySet_Add", off, 32, &n), 0);
	assert_true(n >= 2 && n <= 32);
	assert_one_target(UVLOOP, off, n);
	/* Of them, the one(s) in Loop._queue_write (inlined in UVStream's
	 * write path), as the tracer picks them. */
	assert_int_equal(
	    tg_pltcalls__keep_near(UVLOOP, "uvloop.loop.Loop._queue_write", 1024, off, &n), 0);
	assert_true(n >= 1 && n <= 2);
}

static void test_refused(void **state)
{
	uint64_t off[4];
	size_t n = 7;

	(void)state;
	assert_int_equal(
	    tg_pltcalls__find(TG_TEST_DATA "/../unit/test_pltcalls.c", "puts", off, 4, &n),
	    -EINVAL);
	assert_int_equal(n, 0);
	assert_int_equal(tg_pltcalls__find("/nonexistent/lib.so", "puts", off, 4, &n), -ENOENT);
	assert_int_equal(tg_pltcalls__find(NULL, "puts", off, 4, &n), -EINVAL);
	assert_int_equal(tg_pltcalls__find(TG_PLT_FIXTURE, NULL, off, 4, &n), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fixture),   cmocka_unit_test(test_too_many),
	    cmocka_unit_test(test_keep_near), cmocka_unit_test(test_uvloop),
	    cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
