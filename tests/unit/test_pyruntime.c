/* SPDX-License-Identifier: MIT */
/*
 * Tests of CPython detection without root: the ELF symbol and version of
 * Debian's /usr/bin/python3.11, the maps/bias of a running child
 * /usr/bin/python3.11 (our own child: readable without privileges), its
 * _PyRuntime contents (interpreters.main points into the heap and the main
 * tstate's native_thread_id is the child's pid), and the refusals.
 * Skipped when /usr/bin/python3.11 is missing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pyruntime.h"

#define PY "/usr/bin/python3.11"

static void test_table(void **state)
{
	const struct tg_py_offsets *o;

	(void)state;
	assert_null(tg_pyruntime__table(3, 7));
	assert_null(tg_pyruntime__table(3, 13)); /* from the target, not the table */
	assert_null(tg_pyruntime__table(2, 7));
	for (int m = 8; m <= 12; m++) {
		o = tg_pyruntime__table(3, m);
		assert_non_null(o);
		assert_int_equal(o->minor, m);
		/* Every field the BPF windows read must be inside them. */
		assert_true(o->k.fr_window <= TG_PY_WINDOW && o->k.co_window <= TG_PY_WINDOW);
		assert_true(o->k.fr_code + 8u <= o->k.fr_window);
		assert_true(o->k.fr_previous + 8u <= o->k.fr_window);
		assert_true(o->k.fr_instr + 4u <= o->k.fr_window);
		assert_true(o->k.fr_owner < o->k.fr_window);
		assert_true(o->k.co_name + 8u <= o->k.co_window);
		assert_true(o->k.co_firstlineno + 4u <= o->k.co_window);
	}
	o = tg_pyruntime__table(3, 11);
	assert_true(o->verified);
	assert_int_equal(o->k.rt_gil_holder, 576);
	assert_int_equal(o->k.ts_tid, 160);
	assert_int_equal(o->k.co_code, 184);
}

static void test_elf(void **state)
{
	uint64_t v = 0, sz = 0;
	int major = 0, minor = 0;

	(void)state;
	if (access(PY, R_OK))
		skip();
	assert_int_equal(tg_pyruntime__elf_symbol(PY, "_PyRuntime", &v, &sz), 0);
	assert_true(v != 0);
	assert_true(sz > 600); /* gilstate alone is at +576 */
	assert_int_equal(tg_pyruntime__elf_symbol(PY, "no_such_symbol_xyz", &v, NULL), -ENOENT);
	assert_int_equal(tg_pyruntime__elf_symbol("/nonexistent", "_PyRuntime", &v, NULL), -ENOENT);
	assert_int_equal(tg_pyruntime__elf_symbol("/etc/hostname", "_PyRuntime", &v, NULL),
			 -EINVAL);
	assert_int_equal(tg_pyruntime__elf_version(PY, &major, &minor), 0);
	assert_int_equal(major, 3);
	assert_int_equal(minor, 11);
	/* The file-name fallback. */
	assert_int_equal(
	    tg_pyruntime__elf_version("/nonexistent/libpython3.9.so.1.0", &major, &minor), 0);
	assert_int_equal(minor, 9);
	assert_int_equal(tg_pyruntime__elf_version("/bin/sh", &major, &minor), -ENOENT);
}

static pid_t spawn_python(void)
{
	int p[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		dup2(p[1], 1);
		execl(PY, PY, "-c", "import sys,time; print('r', flush=True); time.sleep(60)",
		      (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1); /* the interpreter is initialised */
	close(p[0]);
	return pid;
}

static void test_detect_child(void **state)
{
	struct tg_pyruntime rt;
	struct tg_py_proc cfg;
	uint64_t sym = 0, bias = 1, interp = 0, ts = 0, tid = 0;
	pid_t pid;

	(void)state;
	if (access(PY, X_OK))
		skip();
	pid = spawn_python();
	assert_int_equal(tg_pyruntime__detect(pid, &rt), 0);
	assert_int_equal(rt.major, 3);
	assert_int_equal(rt.minor, 11);
	assert_string_equal(rt.path, PY);
	assert_int_equal(tg_pyruntime__elf_symbol(PY, "_PyRuntime", &sym, NULL), 0);
	assert_int_equal(tg_pyruntime__load_bias(pid, PY, &bias), 0);
	assert_int_equal(rt.runtime, sym + bias);
	assert_int_equal(tg_pyruntime__load_bias(pid, "/not/mapped", &bias), -ENOENT);
	/* Walk _PyRuntime -> main interpreter -> first tstate -> native tid. */
	assert_int_equal(tg_pyruntime__read(pid, rt.runtime + rt.off.k.rt_interp, &interp, 8), 0);
	assert_true(interp != 0);
	assert_int_equal(tg_pyruntime__read(pid, interp + rt.off.k.is_threads, &ts, 8), 0);
	assert_true(ts != 0);
	assert_int_equal(tg_pyruntime__read(pid, ts + rt.off.k.ts_tid, &tid, 8), 0);
	assert_int_equal(tid, (uint64_t)pid);
	tg_pyruntime__bpf_config(&rt, &cfg);
	assert_int_equal(cfg.version, 0x30b);
	assert_int_equal(cfg.runtime, rt.runtime);
	assert_int_equal(cfg.frame_model, TG_PYFRAME_CFRAME);
	assert_int_equal(tg_pyruntime__read(pid, 8, &tid, 8), -EFAULT);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_int_equal(tg_pyruntime__detect(pid, &rt), -ESRCH);
}

static void test_not_python(void **state)
{
	struct tg_pyruntime rt;

	(void)state;
	/* This test binary is not CPython. */
	assert_int_equal(tg_pyruntime__detect(getpid(), &rt), -ENOENT);
	assert_int_equal(tg_pyruntime__detect(0, &rt), -EINVAL);
	assert_int_equal(tg_pyruntime__detect(getpid(), NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_elf),
	    cmocka_unit_test(test_detect_child),
	    cmocka_unit_test(test_not_python),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
