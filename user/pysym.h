/* SPDX-License-Identifier: MIT */
/*
 * Userspace symbolizer of the Python frames in TG_EV_SAMPLE events: for
 * (pid, code object address, tag) reads the code object from the target
 * (process_vm_readv): co_qualname, co_filename, co_firstlineno and
 * co_linetable, and maps an instruction index to a line number with the
 * 3.11/3.12 location table (PEP 626/657 format; see docs/python.md for
 * other versions). Results are cached per (pid, code address) with the
 * frame's tag, so a code object freed and another allocated at the same
 * address is re-read. The process's CPython version and offsets are
 * detected on first use (pyruntime.h). Needs the right to read the
 * target's memory (same user with ptrace access, or CAP_SYS_PTRACE).
 */
#ifndef TG_PYSYM_H
#define TG_PYSYM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pyruntime.h"

struct tg_pysym;

/* One symbolised frame. The strings belong to the symbolizer and stay valid
 * until tg_pysym__forget(pid) or tg_pysym__free. */
struct tg_pysym_frame {
	const char *qualname; /* co_qualname (co_name before 3.11) */
	const char *filename; /* co_filename */
	int firstlineno;      /* co_firstlineno */
	int line;	      /* line of the instruction; firstlineno when the table has none */
};

/* A new, empty symbolizer, or NULL (errno set). */
struct tg_pysym *tg_pysym__new(void);

/* Use offsets off for pid instead of detecting its runtime (tests, or a
 * caller that already ran tg_pyruntime__detect). Returns 0 or -ENOMEM. */
int tg_pysym__set_offsets(struct tg_pysym *s, pid_t pid, const struct tg_py_offsets *off);

/* Symbolise the frame (code, lasti, tag) of process pid. Returns 0; -ESTALE
 * when the code object read now does not match tag (it was freed: the
 * sample is older than the object now at that address); -ENOTSUP (pid is
 * not a supported CPython); -EFAULT/-ESRCH/-EPERM (memory not readable);
 * -EINVAL (garbage where a code object should be). */
int tg_pysym__resolve(struct tg_pysym *s, pid_t pid, uint64_t code, uint32_t lasti, uint32_t tag,
		      struct tg_pysym_frame *out);

/* Drop everything cached for pid (call on its exit or exec). */
void tg_pysym__forget(struct tg_pysym *s, pid_t pid);

/* Cache statistics: code objects read from the target, and cache hits. */
void tg_pysym__stats(const struct tg_pysym *s, uint64_t *reads, uint64_t *hits);

/* The tag BPF computes for a code object (events.h tg_py_frame.tag). */
uint32_t tg_pysym__tag(int32_t firstlineno, uint64_t co_name);

/* The line of instruction index lasti (in 2-byte code units) in a 3.11/3.12
 * location table (co_linetable bytes, len), starting from firstlineno.
 * Returns the line, -1 when the instruction has no line (the table says
 * "no location"), or -2 when lasti is past the table. */
int tg_pysym__line311(const uint8_t *table, size_t len, int firstlineno, uint32_t lasti);

/* Free everything. Accepts NULL. */
void tg_pysym__free(struct tg_pysym *s);

#endif
