/* SPDX-License-Identifier: MIT */
/* Secret scrubbing of recorded bytes: values blanked, lengths and framing kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "scrub.h"

static void test_headers_blanked(void **state)
{
	char buf[] = "GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET123\r\n"
		     "cookie: sid=SECRET456; b=2\r\nX-Other: keep\r\n\r\n";
	size_t len = strlen(buf);

	(void)state;
	assert_true(tg_scrub__http((uint8_t *)buf, len, false) > 0);
	assert_int_equal(strlen(buf), len);
	assert_null(strstr(buf, "SECRET123"));
	assert_null(strstr(buf, "SECRET456"));
	assert_non_null(strstr(buf, "Authorization: ****** *********\r\n"));
	assert_non_null(strstr(buf, "X-Other: keep\r\n"));
	assert_non_null(strstr(buf, "Host: x\r\n"));
}

static void test_set_cookie_in_response(void **state)
{
	char buf[] = "HTTP/1.1 200 OK\r\nSet-Cookie: token=abc\r\ncontent-length: 0\r\n\r\n";

	(void)state;
	tg_scrub__http((uint8_t *)buf, strlen(buf), false);
	assert_null(strstr(buf, "abc"));
	assert_non_null(strstr(buf, "content-length: 0\r\n"));
}

static void test_query_values(void **state)
{
	char buf[] = "GET /search?q=secret&page=2&flag HTTP/1.1\r\n\r\n";
	char keep[] = "GET /search?q=secret&page=2 HTTP/1.1\r\n\r\n";

	(void)state;
	tg_scrub__http((uint8_t *)buf, strlen(buf), false);
	assert_string_equal(buf, "GET /search?q=******&page=*&flag HTTP/1.1\r\n\r\n");
	assert_int_equal(tg_scrub__http((uint8_t *)keep, strlen(keep), true), 0);
	assert_string_equal(keep, "GET /search?q=secret&page=2 HTTP/1.1\r\n\r\n");
}

static void test_truncated_and_garbage(void **state)
{
	char buf[] = "Cookie: abc";
	uint8_t junk[64];
	size_t i;

	(void)state;
	tg_scrub__http((uint8_t *)buf, strlen(buf), false);
	assert_string_equal(buf, "Cookie: ***");
	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37);
	tg_scrub__http(junk, sizeof(junk), false);
	assert_int_equal(tg_scrub__http(junk, 0, false), 0);
}

static void test_pg_password(void **state)
{
	/* Query, then PasswordMessage "hunter2", then a Sync */
	uint8_t buf[] = {'Q', 0, 0,  0,	  13,  'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0, 'p', 0,
			 0,   0, 12, 'h', 'u', 'n', 't', 'e', 'r', '2', 0,   'S', 0,   0, 0,   4};
	uint8_t cut[] = {'p', 0, 0, 0, 40, 's', 'e', 'c'}; /* truncated capture */
	uint8_t startup[] = {0, 0, 0, 8, 4, 210, 22, 47};  /* SSLRequest: no typed message */
	uint8_t http[] = "HTTP/1.1 200 OK\r\n\r\n";

	(void)state;
	assert_int_equal(tg_scrub__pg(buf, sizeof(buf)), 8);
	assert_memory_equal(buf + 19, "********", 8);
	assert_memory_equal(buf + 5, "SELECT 1", 8);
	assert_int_equal(buf[27], 'S');
	uint8_t plain[] = "plain text body of an HTTP response";

	assert_int_equal(tg_scrub__pg(cut, sizeof(cut)), 0); /* not whole: left alone */
	assert_int_equal(tg_scrub__pg(plain, sizeof(plain) - 1), 0);
	assert_string_equal((char *)plain, "plain text body of an HTTP response");
	assert_int_equal(tg_scrub__pg(startup, sizeof(startup)), 0);
	assert_int_equal(tg_scrub__pg(http, sizeof(http) - 1), 0);
	assert_int_equal(tg_scrub__pg(buf, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_headers_blanked), cmocka_unit_test(test_set_cookie_in_response),
	    cmocka_unit_test(test_query_values),    cmocka_unit_test(test_truncated_and_garbage),
	    cmocka_unit_test(test_pg_password),
	};

	return cmocka_run_group_tests_name("scrub", tests, NULL, NULL);
}
