/* SPDX-License-Identifier: MIT */
/* Unit tests of user/procstat.c: parsing /proc/PID/stat and statm, and
 * reading the test process itself. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "procstat.h"

/* A real line of /proc/PID/stat (kernel 6.x), with a command name holding
 * spaces and parentheses: utime 250, stime 50, num_threads 7, nice -5. */
#define STAT_LINE                                                                                  \
	"4242 (uvicorn (w) 1) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 25 -5 7 0 "         \
	"123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 16781312 134234626 0 0 0 17 1 "  \
	"0 0 0 0 0\n"

static void test_parse(void **state)
{
	struct tg_procstat ps;

	(void)state;
	memset(&ps, 0xff, sizeof(ps));
	assert_int_equal(
	    tg_procstat__parse(STAT_LINE, "50000 2048 300 10 0 4000 0\n", 4096, 100, &ps), 0);
	assert_int_equal(ps.rss_bytes, 2048ULL * 4096);
	assert_int_equal(ps.cpu_ns, 3000000000ULL); /* 300 ticks at 100 Hz */
	assert_int_equal(ps.threads, 7);
	/* ticks that are not whole seconds */
	assert_int_equal(tg_procstat__parse(STAT_LINE, "1 1", 4096, 128, &ps), 0);
	assert_int_equal(ps.cpu_ns, 300ULL * 1000000000ULL / 128);
}

static void test_parse_rejects(void **state)
{
	struct tg_procstat ps;

	(void)state;
	assert_int_equal(tg_procstat__parse("4242 (x S 1 2", "1 1", 4096, 100, &ps), -EINVAL);
	assert_int_equal(tg_procstat__parse("4242 (x) S 1 2 3", "1 1", 4096, 100, &ps), -EINVAL);
	assert_int_equal(tg_procstat__parse(STAT_LINE, "garbage", 4096, 100, &ps), -EINVAL);
	assert_int_equal(tg_procstat__parse(STAT_LINE, "1 1", 0, 100, &ps), -EINVAL);
	assert_int_equal(tg_procstat__parse(NULL, "1 1", 4096, 100, &ps), -EINVAL);
}

static volatile int stop_spin;

static void *idle_thread(void *arg)
{
	(void)arg;
	while (!stop_spin)
		usleep(1000);
	return NULL;
}

static void test_read_self(void **state)
{
	struct tg_procstat a, b;
	pthread_t th;
	struct timespec t0, t1;
	volatile uint64_t x = 0;
	char *mem;
	size_t i, sz = 64 << 20;

	(void)state;
	assert_int_equal(tg_procstat__read((uint32_t)getpid(), &a), 0);
	assert_true(a.rss_bytes > 0);
	assert_true(a.threads >= 1);
	/* one more thread, 64 MiB touched, ~200 ms of CPU burnt */
	stop_spin = 0;
	assert_int_equal(pthread_create(&th, NULL, idle_thread, NULL), 0);
	mem = malloc(sz);
	assert_non_null(mem);
	for (i = 0; i < sz; i += 4096)
		mem[i] = (char)i;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (i = 0; i < 100000; i++)
			x += i;
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 200000000L);
	assert_true(x > 0); /* the burn ran (and x is used) */
	assert_int_equal(tg_procstat__read((uint32_t)getpid(), &b), 0);
	assert_int_equal(b.threads, a.threads + 1);
	assert_true(b.rss_bytes >= a.rss_bytes + (48u << 20));
	assert_true(b.cpu_ns >= a.cpu_ns + 100000000ULL); /* ticks: allow coarse accounting */
	stop_spin = 1;
	pthread_join(th, NULL);
	free(mem);
}

static void test_read_missing(void **state)
{
	struct tg_procstat ps;

	(void)state;
	/* pid_max is at most 4194304: this pid cannot exist */
	assert_int_equal(tg_procstat__read(4194304 + 17, &ps), -ENOENT);
	assert_int_equal(tg_procstat__read(0, &ps), -EINVAL);
	assert_int_equal(tg_procstat__read((uint32_t)getpid(), NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_parse_rejects),
	    cmocka_unit_test(test_read_self),
	    cmocka_unit_test(test_read_missing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
