/* SPDX-License-Identifier: MIT */
/* user/pyctx.c and user/tlssites.c on tests/unit/pyctx_cet_fixture.c, a
 * library shaped like stripped CET builds of CPython and OpenSSL: the sites
 * are found through the wrappers as on Debian's builds, and the probes land
 * past the endbr64, on an instruction the kernel emulates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pyctx.h"
#include "pyruntime.h"
#include "tlssites.h"

/* The file offset of symbol name in the fixture. */
static uint64_t offset_of(const char *name)
{
	uint64_t vaddr = 0, off = 0;

	assert_int_equal(tg_pyruntime__elf_symbol(TG_CET_FIXTURE, name, &vaddr, NULL), 0);
	assert_int_equal(tg_pyctx__file_offset(TG_CET_FIXTURE, vaddr, &off), 0);
	return off;
}

static void test_cet_build(void **state)
{
	struct tg_pyctx_sites s;

	(void)state;
	assert_int_equal(tg_pyctx__find(TG_CET_FIXTURE, &s), 0);
	assert_string_equal(s.how, "tail jump of PyContext_Enter");
	assert_true(s.enter_has_ts);
	assert_true(s.asyncio_covered);
	/* Context entry: the internal function's push, past its endbr64. */
	assert_int_equal(s.enter_off, offset_of("tg_fx_enter") + 4);
	assert_true(tg_pyctx__emulated(TG_CET_FIXTURE, s.enter_off));
	assert_false(tg_pyctx__emulated(TG_CET_FIXTURE, offset_of("tg_fx_enter")));
	/* Creation: the call after `mov %rax,%rdi` in context_new_from_vars
	 * (endbr64 4, push 1, mov 3, call 5, mov 3: at 16). */
	assert_int_equal(s.new_call_off, offset_of("tg_fx_new_from_vars") + 16);
	assert_true(tg_pyctx__emulated(TG_CET_FIXTURE, s.new_call_off));
	/* The uretprobe fallback's place: PyContext_CopyCurrent's push. */
	assert_int_equal(s.copy_off, offset_of("PyContext_CopyCurrent") + 4);
	assert_true(tg_pyctx__emulated(TG_CET_FIXTURE, s.copy_off));
}

/* OpenSSL's internal read/write, past their endbr64: the push. */
static void test_cet_libssl(void **state)
{
	struct tg_tls_sites s;

	(void)state;
	assert_int_equal(tg_tlssites__decode(TG_CET_FIXTURE, &s), 0);
	assert_true(s.internal);
	assert_int_equal(s.read_internal, offset_of("tg_fx_read_internal") + 4);
	assert_int_equal(s.write_internal, offset_of("tg_fx_write_internal") + 4);
	assert_true(tg_pyctx__emulated(TG_CET_FIXTURE, s.read_internal));
	assert_true(tg_pyctx__emulated(TG_CET_FIXTURE, s.write_internal));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cet_build),
	    cmocka_unit_test(test_cet_libssl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
