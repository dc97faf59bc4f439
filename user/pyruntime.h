/* SPDX-License-Identifier: MIT */
/*
 * The CPython reader's process side: finds out whether a process runs
 * CPython, which version (major.minor), where its _PyRuntime lives (ELF
 * symbol of /proc/PID/exe or of a mapped libpython3.X.so, plus the load bias
 * from /proc/PID/maps), and the struct offsets for that version (a built-in
 * table for 3.8-3.12; for 3.13+ the _Py_DebugOffsets CPython publishes at the
 * start of _PyRuntime, read from the target's memory). Produces the
 * per-process struct tg_py_proc the BPF sampler needs and the offsets the
 * symbolizer (pysym.h) needs. No libbpf here: usable without root.
 */
#ifndef TG_PYRUNTIME_H
#define TG_PYRUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "timeglass/pyproc.h"

/* Offsets of one CPython version (bytes; x86-64, default build). */
struct tg_py_offsets {
	int major, minor;
	const char *source; /* where the numbers come from (a sentence) */
	int verified;	    /* 1: checked on this platform with offsetof() against the headers */
	/* The kernel's part (runtime and version are filled per process). */
	struct tg_py_proc k;
	/* Userspace only (the symbolizer). */
	uint16_t co_filename, co_qualname, co_linetable;
	uint16_t bytes_sval;  /* PyBytesObject -> ob_sval */
	uint16_t var_size;    /* PyVarObject -> ob_size */
	uint16_t str_state;   /* PyASCIIObject -> state bit field */
	uint16_t str_length;  /* PyASCIIObject -> length */
	uint16_t str_ascii;   /* sizeof(PyASCIIObject): data of compact ASCII strings */
	uint16_t str_compact; /* sizeof(PyCompactUnicodeObject): data of other compact strings */
};

/* What was found about one process. */
struct tg_pyruntime {
	pid_t pid;
	int major, minor;
	uint64_t runtime; /* address of _PyRuntime in the process */
	char path[512];	  /* the ELF file that defines _PyRuntime (as named in the maps) */
	struct tg_py_offsets off;
};

/* The built-in offsets of CPython major.minor, or NULL (errno ENOTSUP) when
 * the table has none (3.13+ come from the target itself, see detect). */
const struct tg_py_offsets *tg_pyruntime__table(int major, int minor);

/* Look up the symbol name in the ELF file path (.symtab and .dynsym). Sets
 * *value to its st_value (a link-time virtual address) and, when size is not
 * NULL, *size to st_size. Returns 0, -ENOENT (no such symbol), or -errno /
 * -EINVAL (not a readable ELF file). */
int tg_pyruntime__elf_symbol(const char *path, const char *name, uint64_t *value, uint64_t *size);

/* The CPython version of the ELF file path: from its Py_Version symbol
 * (3.11+), else from its file name (python3.X, libpython3.X.so). Returns 0
 * and sets major/minor, or -ENOENT when neither tells. */
int tg_pyruntime__elf_version(const char *path, int *major, int *minor);

/* The first file mapped by pid whose path contains needle, copied into out
 * (NULL: only tell whether there is one). Returns 0, -ENOENT (none),
 * -ESRCH (no such process), -ENAMETOOLONG or -errno. */
int tg_pyruntime__mapped_file(pid_t pid, const char *needle, char *out, size_t outlen);

/* The load bias of ELF file path in process pid: the runtime address of
 * link-time address 0, from the first mapping of the file whose name in
 * /proc/PID/maps equals path and the file's PT_LOAD headers. 0 for a non-PIE
 * executable. Returns 0 or -ENOENT (not mapped), -errno. */
int tg_pyruntime__load_bias(pid_t pid, const char *path, uint64_t *bias);

/* Detect CPython in process pid and fill out. Returns 0; -ENOENT when the
 * process is not CPython (no _PyRuntime in its executable nor in a mapped
 * libpython); -ENOTSUP when the version is unknown (out->major/minor say
 * which), -ESRCH when the process is gone, or another -errno. */
int tg_pyruntime__detect(pid_t pid, struct tg_pyruntime *out);

/* The BPF per-process config (py_procs value) of a detected runtime. */
void tg_pyruntime__bpf_config(const struct tg_pyruntime *rt, struct tg_py_proc *out);

/* Read len bytes at addr of process pid (process_vm_readv). Returns 0, or
 * -EFAULT for a short read, or -errno. */
int tg_pyruntime__read(pid_t pid, uint64_t addr, void *buf, size_t len);

#endif
