/* SPDX-License-Identifier: MIT */
/*
 * The instructions of one ELF module that call an imported function through
 * the module's PLT.
 *
 * A uprobe on a shared function (CPython's PySet_Add) fires for every caller
 * in the process, and each hit is a trap. A uprobe on each `call rel32` of one
 * module that targets the function's PLT stub fires only for that module's
 * calls. At the call instruction the arguments are already in their
 * registers, so a program written for the function's entry reads the same
 * values; and a relative call is an instruction the kernel emulates (no
 * single step: ≈ 0.8 µs a hit here against ≈ 11 µs, docs/performance.md).
 */
#ifndef TG_PLTCALLS_H
#define TG_PLTCALLS_H

#include <stddef.h>
#include <stdint.h>

/* File offsets of the `call rel32` and `jmp rel32` (tail call) instructions
 * in the executable sections of ELF file path, other than its PLT, whose
 * target is the PLT stub (.plt or .plt.sec) of the imported function symbol.
 * Up to max offsets go to offsets, in file order; *count gets how many.
 * Calls through the GOT (`call *sym@GOTPCREL(%rip)`, -fno-plt) are not
 * looked for: the kernel single-steps those.
 * Returns 0 (at least one call), -ENOENT (symbol not imported through a PLT
 * stub, or never called), -E2BIG (more than max calls), -EINVAL (arguments,
 * not an x86-64 ELF file) or -errno (file unreadable). */
int tg_pltcalls__find(const char *path, const char *symbol, uint64_t *offsets, size_t max,
		      size_t *count);

/* Keep, of the count file offsets of calls in ELF file path (from
 * tg_pltcalls__find), those followed within window bytes by an instruction
 * that loads the address of the NUL-terminated string text from the file's
 * read-only data (`lea text(%rip), %reg`): how a call is told by the
 * function it was compiled in when there are no symbols (Cython passes its
 * function's qualified name to the traceback of the call's error path).
 * Returns 0 with offsets/count reduced to those kept, -ENOENT (none kept or
 * no such string: offsets and count untouched), -EINVAL (arguments, more
 * than 64 offsets, not an x86-64 ELF file) or -errno. */
int tg_pltcalls__keep_near(const char *path, const char *text, uint64_t window, uint64_t *offsets,
			   size_t *count);

#endif
