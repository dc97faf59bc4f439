/* SPDX-License-Identifier: MIT */
/* Unit tests of SQL normalisation and fingerprints (user/sqlnorm.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sqlnorm.h"

static void norm_is(const char *in, const char *want)
{
	char out[512];

	assert_int_equal(tg_sql__normalize(in, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_bad_args(void **state)
{
	char out[8];
	uint64_t fp;

	(void)state;
	assert_int_equal(tg_sql__normalize(NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(tg_sql__normalize("SELECT 1", out, 0), -EINVAL);
	assert_int_equal(tg_sql__fingerprint(NULL, &fp), -EINVAL);
	assert_int_equal(tg_sql__fingerprint("SELECT 1", NULL), -EINVAL);
}

static void test_small_buffer(void **state)
{
	char out[8];

	(void)state;
	assert_int_equal(tg_sql__normalize("SELECT * FROM t WHERE a = 1", out, sizeof(out)),
			 -ENOSPC);
	assert_string_equal(out, "SELECT ");
	/* fallback path truncates too */
	assert_int_equal(tg_sql__normalize("SELECT 'abc", out, sizeof(out)), -ENOSPC);
	assert_int_equal(strlen(out), 7);
}

static void test_truncated_fallback(void **state)
{
	(void)state;
	/* unparsable: the lexer replaces literals and never keeps a string's tail */
	norm_is("SELECT * FROM t WHERE name = 'secret-val", "SELECT * FROM t WHERE name = $1");
	norm_is("SELECT * FROM t WHERE a = $1 AND b = 42 AND c = 'x''y' AND (",
		"SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $3 AND (");
	norm_is("UPDATE t SET v = E'a\\'b' , w = x'ff', z = 1.5e-3 WHERE t1.c2 = $$dollar$$ AND",
		"UPDATE t SET v = $1 , w = $2, z = $3 WHERE t1.c2 = $4 AND");
	norm_is("SELECT \"col 1\", 'x' FROM", "SELECT \"col 1\", $1 FROM");
	norm_is("unknown prepared statement __asyncpg_stmt_9__",
		"unknown prepared statement __asyncpg_stmt_9__");
	norm_is("SELECT $tag$ it's $$ inside $tag$, 2 FROM", "SELECT $1, $2 FROM");
}

static void test_libpg_query(void **state)
{
	(void)state;
	norm_is("SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = $1");
	norm_is("SELECT * FROM t WHERE a = $1 AND b = 'x'",
		"SELECT * FROM t WHERE a = $1 AND b = $2");
	norm_is("INSERT INTO t VALUES (1, 'a'), (2, 'b')",
		"INSERT INTO t VALUES ($1, $2), ($3, $4)");
	norm_is("BEGIN", "BEGIN");
}

static void test_fingerprints(void **state)
{
	uint64_t a, b, c, d, e;

	(void)state;
	assert_int_equal(tg_sql__fingerprint("SELECT * FROM t WHERE id = 1", &a), 0);
	assert_int_equal(tg_sql__fingerprint("select *  from t where id = 999", &b), 0);
	assert_int_equal(tg_sql__fingerprint("SELECT * FROM u WHERE id = 1", &c), 0);
	assert_int_equal(a, b);
	assert_true(a != c);
	assert_true(a != 0);
	/* fallback: literals, params, case and spaces ignored */
	assert_int_equal(tg_sql__fingerprint("SELECT * FROM t WHERE x = 'abc", &d), 0);
	assert_int_equal(tg_sql__fingerprint("select *   FROM t -- c\n WHERE x = 'zz", &e), 0);
	assert_int_equal(d, e);
	assert_int_equal(tg_sql__fingerprint("SELECT * FROM t2 WHERE x = 'abc", &e), 0);
	assert_true(d != e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_args),	       cmocka_unit_test(test_small_buffer),
	    cmocka_unit_test(test_truncated_fallback), cmocka_unit_test(test_libpg_query),
	    cmocka_unit_test(test_fingerprints),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);

	tg_sql__thread_exit();
	return r;
}
