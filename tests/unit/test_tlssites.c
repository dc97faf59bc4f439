/* SPDX-License-Identifier: MIT */
/* Where OpenSSL is probed: the internal read/write functions decoded from
 * the system's libssl (Debian's libssl3, which Python and libpq use), checked
 * against the bytes of the file; a file without the pattern falls back; this
 * process's own libssl is found in its maps once loaded. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tlssites.h"

#define LIBSSL "/usr/lib/x86_64-linux-gnu/libssl.so.3"

static void byte_at(const char *path, uint64_t off, uint8_t *b, size_t n)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static bool is_push(const uint8_t *b)
{
	return (b[0] >= 0x50 && b[0] <= 0x57) || (b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57);
}

static void test_internal_sites_of_system_libssl(void **state)
{
	struct tg_tls_sites s;
	uint8_t b[2];

	(void)state;
	if (access(LIBSSL, R_OK))
		skip();
	assert_int_equal(tg_tlssites__decode(LIBSSL, &s), 0);
	assert_true(s.internal);
	assert_true(s.write_internal != s.read_internal);
	byte_at(LIBSSL, s.write_internal, b, 2);
	assert_true(is_push(b));
	byte_at(LIBSSL, s.read_internal, b, 2);
	assert_true(is_push(b));
}

static void test_not_libssl(void **state)
{
	struct tg_tls_sites s;

	(void)state;
	/* a file without OpenSSL's symbols: an error, nothing decoded */
	assert_int_equal(tg_tlssites__decode("/bin/true", &s), -ENOENT);
	assert_false(s.internal);
	assert_true(tg_tlssites__decode("/nonexistent/libssl.so.3", &s) < 0);
}

static void test_find_in_own_maps(void **state)
{
	char path[1200];
	void *h;

	(void)state;
	if (access(LIBSSL, R_OK))
		skip();
	h = dlopen(LIBSSL, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(h);
	assert_int_equal(tg_tlssites__find(getpid(), path, sizeof(path)), 0);
	assert_non_null(strstr(path, "/libssl.so"));
	assert_int_equal(strncmp(path, "/proc/", 6), 0);
	assert_int_equal(tg_tlssites__find(getpid(), path, 10), -ENAMETOOLONG);
	dlclose(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_internal_sites_of_system_libssl),
	    cmocka_unit_test(test_not_libssl),
	    cmocka_unit_test(test_find_in_own_maps),
	};

	return cmocka_run_group_tests_name("tlssites", tests, NULL, NULL);
}
