/* SPDX-License-Identifier: MIT */
/* Recordings: round trip, header checks, truncation and corruption. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "evgen.h"
#include "record.h"

static char path[64];

static int setup(void **state)
{
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/tg_test_recXXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void write_stream(size_t nevents)
{
	struct tg_recorder *r = tg_record__create(path, 123456789ULL);
	size_t i, size;

	assert_non_null(r);
	for (i = 0; i < nevents; i++) {
		struct tg_ev_data *d = evgen_data(10, 5, 1, (uint32_t)i, TG_DIR_IN,
						  "GET / HTTP/1.1\r\n\r\n", 18, 7, i, &size);

		assert_int_equal(tg_record__write(r, d, size), 0);
		free(d);
	}
	assert_int_equal(tg_record__close(r), 0);
}

static void test_round_trip(void **state)
{
	struct tg_replay *p;
	const void *ev;
	size_t size, n = 0;
	int ret;

	(void)state;
	write_stream(100);
	p = tg_replay__open(path);
	assert_non_null(p);
	assert_int_equal(tg_replay__mono_to_epoch(p), 123456789ULL);
	while ((ret = tg_replay__next(p, &ev, &size)) == 1) {
		const struct tg_ev_data *d = ev;

		assert_int_equal(d->hdr.type, TG_EV_DATA);
		assert_int_equal(d->seq, n);
		assert_int_equal(d->head_len, 7);
		assert_int_equal(d->tail_len, 11);
		assert_memory_equal(d->data, "GET / H", 7);
		assert_int_equal(size, d->hdr.size);
		n++;
	}
	assert_int_equal(ret, 0);
	assert_int_equal(n, 100);
	tg_replay__close(p);
}

static void test_truncated_keeps_prefix(void **state)
{
	struct tg_replay *p;
	const void *ev;
	size_t size, n = 0;
	long full;
	FILE *f;
	int ret;

	(void)state;
	write_stream(10);
	f = fopen(path, "r+");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	full = ftell(f);
	fclose(f);
	assert_int_equal(truncate(path, full - 5), 0);
	p = tg_replay__open(path);
	assert_non_null(p);
	while ((ret = tg_replay__next(p, &ev, &size)) == 1)
		n++;
	assert_int_equal(ret, -EBADMSG);
	assert_int_equal(n, 9);
	tg_replay__close(p);
}

static void test_corrupt_size(void **state)
{
	struct tg_replay *p;
	const void *ev;
	size_t size;
	uint16_t bad = 3; /* smaller than a header */
	FILE *f;

	(void)state;
	write_stream(3);
	f = fopen(path, "r+");
	assert_non_null(f);
	/* The second event's size field: header (32) + first event (padded) + 2. */
	fseek(f, 32, SEEK_SET);
	{
		struct tg_ev_hdr h;

		assert_int_equal(fread(&h, sizeof(h), 1, f), 1);
		fseek(f, 32 + ((h.size + 7) & ~7) + 2, SEEK_SET);
	}
	fwrite(&bad, sizeof(bad), 1, f);
	fclose(f);
	p = tg_replay__open(path);
	assert_non_null(p);
	assert_int_equal(tg_replay__next(p, &ev, &size), 1);
	assert_int_equal(tg_replay__next(p, &ev, &size), -EBADMSG);
	tg_replay__close(p);
}

static void test_not_a_recording(void **state)
{
	FILE *f = fopen(path, "w");

	(void)state;
	assert_non_null(f);
	fputs("SQLite format 3\0 this is not a recording at all......", f);
	fclose(f);
	errno = 0;
	assert_null(tg_replay__open(path));
	assert_int_equal(errno, EBADMSG);
	errno = 0;
	assert_null(tg_replay__open("/nonexistent/dir/file"));
	assert_int_equal(errno, ENOENT);
}

static void test_write_rejects_bad_sizes(void **state)
{
	struct tg_recorder *r = tg_record__create(path, 0);
	char small[8] = {0};

	(void)state;
	assert_non_null(r);
	assert_int_equal(tg_record__write(r, small, sizeof(small)), -EINVAL);
	assert_int_equal(tg_record__close(r), 0);
	assert_int_equal(tg_record__close(NULL), 0);
	tg_replay__close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated_keeps_prefix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_a_recording, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_rejects_bad_sizes, setup, teardown),
	};

	return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
