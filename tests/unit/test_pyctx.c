/* SPDX-License-Identifier: MIT */
/* Unit tests of user/pyctx.c on the real Debian /usr/bin/python3.11 and on
 * files that are not CPython. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "pyctx.h"
#include "pyruntime.h"

#define PY "/usr/bin/python3.11"

static uint8_t byte_at(const char *path, uint64_t off)
{
	uint8_t b = 0;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	close(fd);
	return b;
}

static void test_debian_python(void **state)
{
	struct tg_pyctx_sites s;
	uint64_t sym, off;
	uint8_t b;

	(void)state;
	if (access(PY, R_OK))
		skip();
	assert_int_equal(tg_pyctx__find(PY, &s), 0);
	/* Stripped Debian build: the internal function, found through the wrapper. */
	assert_true(s.enter_has_ts);
	assert_true(s.asyncio_covered);
	assert_non_null(s.how);
	/* The Context-entry probe is not the exported wrapper itself... */
	assert_int_equal(tg_pyruntime__elf_symbol(PY, "PyContext_Enter", &sym, NULL), 0);
	assert_int_equal(tg_pyctx__file_offset(PY, sym, &off), 0);
	assert_int_not_equal(s.enter_off, off);
	/* ...and starts like a function (push), an instruction uprobes emulate. */
	b = byte_at(PY, s.enter_off);
	assert_true((b >= 0x50 && b <= 0x57) || b == 0x41); /* never an endbr64 (0xf3) */
	/* The creation probe: PyContext_CopyCurrent, and the call site with rdi = new ctx. */
	assert_int_equal(tg_pyruntime__elf_symbol(PY, "PyContext_CopyCurrent", &sym, NULL), 0);
	assert_int_equal(tg_pyctx__file_offset(PY, sym, &off), 0);
	assert_int_equal(s.copy_off, off);
	assert_int_not_equal(s.new_call_off, 0);
	assert_int_equal(byte_at(PY, s.new_call_off), 0xe8);
	assert_true(tg_pyctx__emulated(PY, s.enter_off));
	assert_true(tg_pyctx__emulated(PY, s.new_call_off));
	assert_true(tg_pyctx__emulated(PY, s.copy_off));
}

static void test_not_python(void **state)
{
	struct tg_pyctx_sites s;

	(void)state;
	assert_int_equal(tg_pyctx__find("/bin/true", &s), -ENOENT);
	assert_int_equal(tg_pyctx__find("/nonexistent/python", &s), -ENOENT);
	assert_int_equal(tg_pyctx__find("/etc/hostname", &s), -EINVAL);
}

static void test_file_offset(void **state)
{
	uint64_t off;

	(void)state;
	if (access(PY, R_OK))
		skip();
	/* Non-PIE: link-time address 0x400000 is file offset 0 (first PT_LOAD). */
	assert_int_equal(tg_pyctx__file_offset(PY, 0x400000, &off), 0);
	assert_int_equal(off, 0);
	assert_int_equal(tg_pyctx__file_offset(PY, 0x10, &off), -ENOENT);
}

/* A new temporary file (path: a mkstemp template) holding len bytes of code. */
static void write_temp(char *path, const uint8_t *code, size_t len)
{
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, code, len), (ssize_t)len);
	close(fd);
}

/* endbr64 (CET builds' function entries) is skipped, nothing else is:
 * a file with an endbr64 + push at 0, a push at 8, and a cut endbr64 at its
 * end. */
static void test_past_endbr(void **state)
{
	static const uint8_t code[] = {0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x90, 0x90, 0x90,
				       0x55, 0x48, 0x89, 0xe5, 0xf3, 0x0f, 0x1e};
	char path[] = "/tmp/tg-test-endbr-XXXXXX";

	(void)state;
	write_temp(path, code, sizeof(code));
	assert_int_equal(tg_pyctx__past_endbr(path, 0), 4);
	assert_int_equal(tg_pyctx__past_endbr(path, 4), 4);
	assert_int_equal(tg_pyctx__past_endbr(path, 8), 8);
	assert_int_equal(tg_pyctx__past_endbr(path, 12), 12); /* cut short: left alone */
	assert_int_equal(tg_pyctx__past_endbr("/nonexistent/python", 0), 0);
	unlink(path);
}

/* Which first instructions a uprobe costs one trap on. */
static void test_emulated(void **state)
{
	static const uint8_t code[] = {
	    0x55,				      /* 0: push %rbp */
	    0x41, 0x57,				      /* 1: push %r15 */
	    0xe8, 0,	0,    0,    0,		      /* 3: call */
	    0x0f, 0x84, 0,    0,    0,	  0,	      /* 8: je rel32 */
	    0x0f, 0x1f, 0x44, 0,    0,		      /* 14: nop5 */
	    0x48, 0x83, 0xec, 0x18,		      /* 19: sub $0x18,%rsp */
	    0x48, 0x89, 0xfe,			      /* 23: mov %rdi,%rsi */
	    0xf3, 0x0f, 0x1e, 0xfa, 0x90, 0x90, 0x90, /* 26: endbr64, then nops */
	};
	char path[] = "/tmp/tg-test-emul-XXXXXX";

	(void)state;
	write_temp(path, code, sizeof(code));
	assert_true(tg_pyctx__emulated(path, 0));
	assert_true(tg_pyctx__emulated(path, 1));
	assert_true(tg_pyctx__emulated(path, 3));
	assert_true(tg_pyctx__emulated(path, 8));
	assert_true(tg_pyctx__emulated(path, 14));
	assert_false(tg_pyctx__emulated(path, 19));
	assert_false(tg_pyctx__emulated(path, 23));
	assert_false(tg_pyctx__emulated(path, 26));
	assert_true(
	    tg_pyctx__emulated(path, tg_pyctx__past_endbr(path, 26))); /* the nop after it */
	assert_false(tg_pyctx__emulated(path, sizeof(code)));	       /* past the end */
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_debian_python), cmocka_unit_test(test_not_python),
	    cmocka_unit_test(test_file_offset),	  cmocka_unit_test(test_past_endbr),
	    cmocka_unit_test(test_emulated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
