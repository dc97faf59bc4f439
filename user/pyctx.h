/* SPDX-License-Identifier: MIT */
/*
 * Where to probe a CPython binary for per-task accounting (bpf/task.bpf.h):
 * the function every contextvars Context entry goes through, and
 * PyContext_CopyCurrent (every Context creation). Works on the ELF file
 * alone (libelf), no process needed.
 *
 * Context entry: asyncio's Context.run (context_run, static) and uvloop's
 * calls of the exported PyContext_Enter both go through the internal
 * _PyContext_Enter(tstate, ctx). When the file has a .symtab, its symbol is
 * used. Debian's python3.11 is stripped, but there PyContext_Enter is a thin
 * wrapper that ends in a tail jump to _PyContext_Enter (and PyContext_Exit in
 * one to _PyContext_Exit): the jump is decoded and checked (target inside an
 * executable segment, starting with a push or endbr64, and the Exit wrapper
 * jumping to a different function close by). Otherwise the exported
 * PyContext_Enter itself is probed, which sees uvloop's entries but not
 * asyncio's Context.run (asyncio_covered false).
 *
 * Context creation: PyContext_CopyCurrent, with a uretprobe (its return
 * value). Cheaper when it can be found: PyContext_CopyCurrent tail-jumps to
 * the internal context_new_from_vars, which ends with `mov %rax,%rdi` then,
 * within a few bytes, `call` (the GC tracking of the new object): a uprobe on
 * that call reads the new Context from rdi, and a call is an instruction the
 * kernel emulates (no single-step).
 */
#ifndef TG_PYCTX_H
#define TG_PYCTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tg_pyctx_sites {
	uint64_t enter_off;   /* file offset of the Context-entry probe */
	bool enter_has_ts;    /* it is _PyContext_Enter(tstate, ctx); else PyContext_Enter(ctx) */
	bool asyncio_covered; /* asyncio's Context.run goes through it too */
	uint64_t copy_off;    /* file offset of PyContext_CopyCurrent (for a uretprobe) */
	/* When found: file offset of a call instruction inside the function that
	 * makes every new Context (context_new_from_vars), made with the new
	 * Context in rdi. A uprobe there is one emulated trap where the
	 * uretprobe is two; 0 when not found (use copy_off). */
	uint64_t new_call_off;
	const char *how; /* "symbol _PyContext_Enter", "tail jump of PyContext_Enter", ... */
};

/* Find the probe sites in the ELF file path (a python executable or a
 * libpython shared object). Returns 0, -ENOENT when the file exports no
 * PyContext_Enter / PyContext_CopyCurrent, or -errno / -EINVAL (not ELF). */
int tg_pyctx__find(const char *path, struct tg_pyctx_sites *out);

/* The file offset of link-time virtual address vaddr in ELF file path (the
 * PT_LOAD segment holding it). Returns 0, -ENOENT (in no segment), -errno. */
int tg_pyctx__file_offset(const char *path, uint64_t vaddr, uint64_t *off);

/* Read len bytes at file offset off of path into buf. Returns 0, -EIO (short)
 * or -errno. */
int tg_pyctx__read_at(const char *path, uint64_t off, uint8_t *buf, size_t len);

/* Where to put a uprobe meant for the instruction at file offset off of
 * path: past an endbr64 there (off + 4), else off. The kernel single-steps
 * endbr64 (≈ 11 µs a hit on this VM, ≈ 0.85 µs for the push that follows it
 * in a CET build's prologue: docs/performance.md); skipping it changes no
 * register, not even rsp, so entry and return probes see what they would
 * have at off. */
uint64_t tg_pyctx__past_endbr(const char *path, uint64_t off);

/* Whether the instruction at file offset off of path is one x86-64 uprobes
 * emulate (push of a register, call/jmp rel, a conditional jump, a nop), so
 * that a probe there costs one trap, not a trap and a single step. Decoded
 * from its first bytes only: false for anything else, or when unreadable. */
bool tg_pyctx__emulated(const char *path, uint64_t off);

#endif
