/* SPDX-License-Identifier: MIT */
/*
 * Tests of the Python symbolizer without root: the 3.11 location-table
 * decoder against CPython's own co_positions() for real functions
 * (tests/data/pylines.txt, made by tests/data/pylines_gen.py), and the
 * code-object reader and its cache on fake 3.11 code objects built in this
 * process's memory (process_vm_readv on ourselves needs no privilege).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pyruntime.h"
#include "pysym.h"

#ifndef TG_TEST_DATA
#define TG_TEST_DATA "tests/data"
#endif

static size_t unhex(const char *hex, uint8_t *out, size_t max)
{
	size_t n = 0;

	while (hex[0] && hex[1] && n < max) {
		unsigned v;

		sscanf(hex, "%2x", &v);
		out[n++] = (uint8_t)v;
		hex += 2;
	}
	return n;
}

static void test_line_edge_cases(void **state)
{
	/* One short-form entry (same line) of 2 code units, then "no location". */
	const uint8_t t[] = {0x81, 0x00, 0xf8};

	(void)state;
	assert_int_equal(tg_pysym__line311(NULL, 0, 10, 0), -2);
	assert_int_equal(tg_pysym__line311(t, sizeof(t), 10, 0), 10);
	assert_int_equal(tg_pysym__line311(t, sizeof(t), 10, 1), 10);
	assert_int_equal(tg_pysym__line311(t, sizeof(t), 10, 2), -1);
	assert_int_equal(tg_pysym__line311(t, sizeof(t), 10, 3), -2);
	/* Garbage (no entry-start bit) is refused, not decoded. */
	assert_int_equal(tg_pysym__line311((const uint8_t *)"\x01\x02", 2, 10, 0), -2);
}

static void test_lines_match_cpython(void **state)
{
	FILE *f = fopen(TG_TEST_DATA "/pylines.txt", "r");
	char name[256], hex[8192], lines[16384];
	int first, nfuncs = 0, nchecked = 0;

	(void)state;
	assert_non_null(f);
	while (fscanf(f, "%255s %d %8191s %16383s", name, &first, hex, lines) == 4) {
		uint8_t table[4096];
		size_t len = unhex(hex, table, sizeof(table));
		char *p = lines;
		uint32_t i = 0;

		nfuncs++;
		while (*p) {
			int want = (int)strtol(p, &p, 10);
			int got = tg_pysym__line311(table, len, first, i);

			if (got != want)
				fail_msg("%s: code unit %u: line %d, CPython says %d", name, i, got,
					 want);
			nchecked++;
			i++;
			if (*p == ',')
				p++;
		}
		/* Past the end of the table. */
		assert_int_equal(tg_pysym__line311(table, len, first, i + 5), -2);
	}
	fclose(f);
	assert_true(nfuncs >= 7);
	assert_true(nchecked > 100);
}

/* Fake 3.11 objects in our own memory. */
struct fake_str {
	uint8_t head[72];
	char data[64];
};

static void make_str(struct fake_str *s, const void *data, size_t len, unsigned kind, int ascii)
{
	uint64_t n = len;
	uint32_t state = (kind << 2) | (1u << 5) | ((unsigned)ascii << 6);

	memset(s, 0, sizeof(*s));
	memcpy(s->head + 16, &n, 8);
	memcpy(s->head + 32, &state, 4);
	memcpy(ascii ? (uint8_t *)s->head + 48 : (uint8_t *)s->head + 72, data, len * kind);
}

struct fake_code {
	uint8_t co[192];
};

struct fake_bytes {
	uint8_t head[32];
	uint8_t data[32];
};

static void make_code(struct fake_code *c, int first, const void *qual, const void *file,
		      const void *name, const void *table)
{
	uint64_t q = (uintptr_t)qual, f = (uintptr_t)file, n = (uintptr_t)name,
		 t = (uintptr_t)table;
	int32_t fl = first;

	memset(c, 0, sizeof(*c));
	memcpy(c->co + 72, &fl, 4);
	memcpy(c->co + 112, &f, 8);
	memcpy(c->co + 120, &n, 8);
	memcpy(c->co + 128, &q, 8);
	memcpy(c->co + 136, &t, 8);
}

static void test_resolve_and_reuse(void **state)
{
	static struct fake_str qual, file, name, qual2, nonascii;
	static struct fake_code code;
	static struct fake_bytes tbl;
	/* "héllo" as kind 1 (latin-1), "Ωmega" as kind 2. */
	const uint8_t latin[] = {'h', 0xe9, 'l', 'l', 'o'};
	const uint16_t ucs2[] = {0x3a9, 'm', 'e', 'g', 'a'};
	const struct tg_py_offsets *o = tg_pyruntime__table(3, 11);
	struct tg_pysym *s = tg_pysym__new();
	struct tg_pysym_frame fr;
	uint64_t reads, hits, len = 4;
	uint32_t tag;
	pid_t me = getpid();

	(void)state;
	assert_non_null(o);
	assert_non_null(s);
	make_str(&qual, "Outer.run", 9, 1, 1);
	make_str(&file, latin, 5, 1, 0);
	make_str(&name, "run", 3, 1, 1);
	/* Table: 2 units on line first+1 (one-line form, delta 1), then 2 on +2. */
	memset(&tbl, 0, sizeof(tbl));
	memcpy(tbl.head + 16, &len, 8);
	memcpy(tbl.data, "\xd9\x00\x01\xd9\x00\x01", 6);
	len = 6;
	memcpy(tbl.head + 16, &len, 8);
	make_code(&code, 40, &qual, &file, &name, &tbl);
	tag = tg_pysym__tag(40, (uintptr_t)&name);
	assert_int_equal(tg_pysym__set_offsets(s, me, o), 0);

	/* Null code and wrong tag first. */
	assert_int_equal(tg_pysym__resolve(s, me, 0, 0, tag, &fr), -EINVAL);
	assert_int_equal(tg_pysym__resolve(s, me, (uintptr_t)&code, 0, tag ^ 1, &fr), -ESTALE);

	assert_int_equal(tg_pysym__resolve(s, me, (uintptr_t)&code, 3, tag, &fr), 0);
	assert_string_equal(fr.qualname, "Outer.run");
	assert_string_equal(fr.filename, "h\xc3\xa9llo");
	assert_int_equal(fr.firstlineno, 40);
	assert_int_equal(fr.line, 42);
	assert_int_equal(tg_pysym__resolve(s, me, (uintptr_t)&code, 0, tag, &fr), 0);
	assert_int_equal(fr.line, 41);
	/* Before the first instruction: firstlineno. */
	assert_int_equal(tg_pysym__resolve(s, me, (uintptr_t)&code, ~0U, tag, &fr), 0);
	assert_int_equal(fr.line, 40);
	tg_pysym__stats(s, &reads, &hits);
	assert_int_equal(reads, 1); /* the stale attempt read and cached the object */
	assert_int_equal(hits, 3);

	/* The code object is "freed" and another one takes its address. */
	make_str(&qual2, ucs2, 5, 2, 0);
	make_code(&code, 7, &qual2, &file, &name, NULL);
	/* A sample of the new object carries its tag: the cache re-reads. */
	assert_int_equal(
	    tg_pysym__resolve(s, me, (uintptr_t)&code, 0, tg_pysym__tag(7, (uintptr_t)&name), &fr),
	    0);
	assert_string_equal(fr.qualname, "\xce\xa9mega");
	assert_int_equal(fr.line, 7); /* no table: firstlineno */
	/* A late sample of the old object can no longer be symbolised. */
	assert_int_equal(tg_pysym__resolve(s, me, (uintptr_t)&code, 0, tag, &fr), -ESTALE);

	/* A name that is not a compact string is refused. */
	memset(&nonascii, 0, sizeof(nonascii));
	make_code(&code, 8, &nonascii, &file, &name, NULL);
	tag = tg_pysym__tag(8, (uintptr_t)&name);
	assert_int_equal(tg_pysym__resolve(s, me, (uintptr_t)&code, 0, tag, &fr), -EINVAL);

	/* Unreadable address. */
	assert_int_equal(tg_pysym__resolve(s, me, 8, 0, 0, &fr), -EFAULT);

	tg_pysym__forget(s, me);
	make_code(&code, 40, &qual, &file, &name, &tbl);
	tag = tg_pysym__tag(40, (uintptr_t)&name);
	/* Forgotten: offsets are detected again (this test is not CPython). */
	assert_int_equal(tg_pysym__resolve(s, me, (uintptr_t)&code, 0, tag, &fr), -ENOTSUP);
	tg_pysym__free(s);
	tg_pysym__free(NULL);
}

static void test_many_entries_grow(void **state)
{
	static struct fake_str qual, file, name;
	static struct fake_code codes[700];
	const struct tg_py_offsets *o = tg_pyruntime__table(3, 11);
	struct tg_pysym *s = tg_pysym__new();
	struct tg_pysym_frame fr;
	uint64_t reads, hits;

	(void)state;
	make_str(&qual, "f", 1, 1, 1);
	make_str(&file, "x.py", 4, 1, 1);
	make_str(&name, "f", 1, 1, 1);
	assert_int_equal(tg_pysym__set_offsets(s, getpid(), o), 0);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 700; i++) {
			if (!round)
				make_code(&codes[i], i + 1, &qual, &file, &name, NULL);
			assert_int_equal(tg_pysym__resolve(s, getpid(), (uintptr_t)&codes[i], 0,
							   tg_pysym__tag(i + 1, (uintptr_t)&name),
							   &fr),
					 0);
			assert_int_equal(fr.firstlineno, i + 1);
		}
	}
	tg_pysym__stats(s, &reads, &hits);
	assert_int_equal(reads, 700);
	assert_int_equal(hits, 700);
	tg_pysym__free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_line_edge_cases),
	    cmocka_unit_test(test_lines_match_cpython),
	    cmocka_unit_test(test_resolve_and_reuse),
	    cmocka_unit_test(test_many_entries_grow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
