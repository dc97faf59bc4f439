/* SPDX-License-Identifier: MIT */
/*
 * CPython detection (see pyruntime.h). Design:
 *  - The ELF file that defines _PyRuntime is the executable (/proc/PID/exe:
 *    Debian links libpython statically) or a mapped libpython3.X.so; files
 *    are opened through /proc/PID/root so a process in another mount
 *    namespace works too. Symbols come from .symtab or .dynsym (libelf).
 *  - The load bias comes from the file's first mapping in /proc/PID/maps and
 *    the PT_LOAD header that covers that mapping's file offset.
 *  - Offsets: a table per minor version. 3.11 is verified on Debian 3.11.2
 *    with offsetof() against libpython3.11-dev's internal headers (the
 *    command is in docs/python.md). The other rows come from public
 *    references (cited per row) and CPython's struct definitions; they are
 *    not verified on this machine. 3.13+ publish _Py_DebugOffsets at the
 *    start of _PyRuntime: read from the target and sanity-checked.
 */
#include "pyruntime.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* PyASCIIObject / PyCompactUnicodeObject: 3.8-3.11 have wstr fields. */
#define STR_311 .str_state = 32, .str_length = 16, .str_ascii = 48, .str_compact = 72
#define STR_312 .str_state = 32, .str_length = 16, .str_ascii = 40, .str_compact = 56

/* <= 3.10 (PyFrameObject chain). Frame, code and thread offsets: Meta's
 * strobelight-libs Py38Offsets.cpp/Py39Offsets.cpp/Py310Offsets.cpp
 * (PyThreadState_frame 24, _thread 176, PyFrameObject f_back 24, f_code 32,
 * f_lasti 104/104/96, code name 112, filename 104, firstlineno 40,
 * TCurrentState 1368/568/568); interpreters.main (40), interp->tstate_head (8)
 * and tstate->next (8) from CPython's pycore_runtime.h/pystate.h of those
 * versions. The thread is matched by pthread_t (== fs base with glibc). */
#define LEGACY(min, gil, lasti, lt)                                                                \
	{                                                                                          \
		.major = 3, .minor = (min),                                                        \
		.source = "strobelight-libs Py3" #min "Offsets.cpp + CPython 3." #min " headers",  \
		.k = {.frame_model = TG_PYFRAME_LEGACY,                                            \
		      .tid_match = TG_PYTID_PTHREAD,                                               \
		      .rt_interp = 40,                                                             \
		      .rt_gil_holder = (gil),                                                      \
		      .is_threads = 8,                                                             \
		      .ts_next = 8,                                                                \
		      .ts_tid = 176,                                                               \
		      .ts_frame = 24,                                                              \
		      .ctx_vars = 24,                                                              \
		      .fr_code = 32,                                                               \
		      .fr_previous = 24,                                                           \
		      .fr_instr = (lasti),                                                         \
		      .fr_window = 112,                                                            \
		      .co_firstlineno = 40,                                                        \
		      .co_name = 112,                                                              \
		      .co_window = 120},                                                           \
		.co_filename = 104, .co_qualname = 112, .co_linetable = (lt), .bytes_sval = 32,    \
		.var_size = 16, STR_311                                                            \
	}

static const struct tg_py_offsets table[] = {
    LEGACY(8, 1368, 104, 120),
    LEGACY(9, 568, 104, 120),
    LEGACY(10, 568, 96, 120),
    {
	/* Verified here: offsetof() against Debian's libpython3.11-dev 3.11.2
	 * internal headers (docs/python.md). strobelight-libs Py311Offsets.cpp
	 * agrees on frames and code objects. */
	.major = 3,
	.minor = 11,
	.source = "offsetof() on Debian libpython3.11-dev 3.11.2 headers",
	.verified = 1,
	.k = {.frame_model = TG_PYFRAME_CFRAME,
	      .tid_match = TG_PYTID_NATIVE,
	      .rt_interp = 48,
	      .rt_gil_holder = 576,
	      .is_threads = 16,
	      .ts_next = 8,
	      .ts_tid = 160,
	      .ts_frame = 56,
	      .cf_current = 8,
	      .ts_context = 224,
	      .ctx_vars = 24,
	      .fr_code = 32,
	      .fr_previous = 48,
	      .fr_instr = 56,
	      .fr_owner = 69,
	      .fr_window = 72,
	      .co_firstlineno = 72,
	      .co_name = 120,
	      .co_code = 184,
	      .co_window = 128,
	      .gen_iframe = 80},
	.co_filename = 112,
	.co_qualname = 128,
	.co_linetable = 136,
	.bytes_sval = 32,
	.var_size = 16,
	STR_311,
    },
    {
	/* Frames and code: strobelight-libs Py312Offsets.cpp (cframe 56,
	 * current_frame 0, f_code 0, previous 8, prev_instr 56, owner 70,
	 * firstlineno 68, code_adaptive 192, gi_iframe 80). Thread list,
	 * native_thread_id and context from CPython 3.12's pycore_runtime.h,
	 * pycore_interp.h and cpython/pystate.h (_finalizing_id shifts
	 * interpreters.main to 56). Unverified here. The GIL holder is per
	 * interpreter in 3.12: unknown. */
	.major = 3,
	.minor = 12,
	.source = "strobelight-libs Py312Offsets.cpp + CPython 3.12 headers (unverified)",
	.k = {.frame_model = TG_PYFRAME_CFRAME,
	      .tid_match = TG_PYTID_NATIVE,
	      .rt_interp = 56,
	      .is_threads = 72,
	      .ts_next = 8,
	      .ts_tid = 144,
	      .ts_frame = 56,
	      .cf_current = 0,
	      .ts_context = 208,
	      .ctx_vars = 24,
	      .fr_code = 0,
	      .fr_previous = 8,
	      .fr_instr = 56,
	      .fr_owner = 70,
	      .fr_window = 72,
	      .co_firstlineno = 68,
	      .co_name = 120,
	      .co_code = 192,
	      .co_window = 128,
	      .gen_iframe = 80},
	.co_filename = 112,
	.co_qualname = 128,
	.co_linetable = 136,
	.bytes_sval = 32,
	.var_size = 16,
	STR_312,
    },
};

const struct tg_py_offsets *tg_pyruntime__table(int major, int minor)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].major == major && table[i].minor == minor)
			return &table[i];
	errno = ENOTSUP;
	return NULL;
}

int tg_pyruntime__read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {.iov_base = buf, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
	ssize_t n;

	if (!len)
		return 0;
	n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}

/* Open path as an ELF file. Returns the Elf handle (fd in *fd) or NULL. */
static Elf *elf_open(const char *path, int *fd, int *err)
{
	Elf *e;

	if (elf_version(EV_CURRENT) == EV_NONE) {
		*err = -EINVAL;
		return NULL;
	}
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		*err = -errno;
		return NULL;
	}
	e = elf_begin(*fd, ELF_C_READ, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF) {
		elf_end(e);
		close(*fd);
		*err = -EINVAL;
		return NULL;
	}
	return e;
}

/* Find name in e's symbol tables; fills sym. Returns 0 or -ENOENT. */
static int elf_find(Elf *e, const char *name, GElf_Sym *sym)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(e, scn))) {
		Elf_Data *data;
		size_t n;

		if (!gelf_getshdr(scn, &sh) ||
		    (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM))
			continue;
		data = elf_getdata(scn, NULL);
		if (!data || !sh.sh_entsize)
			continue;
		n = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < n; i++) {
			const char *s;

			if (!gelf_getsym(data, (int)i, sym) || sym->st_shndx == SHN_UNDEF)
				continue;
			s = elf_strptr(e, sh.sh_link, sym->st_name);
			if (s && !strcmp(s, name))
				return 0;
		}
	}
	return -ENOENT;
}

int tg_pyruntime__elf_symbol(const char *path, const char *name, uint64_t *value, uint64_t *size)
{
	GElf_Sym sym;
	int fd, ret = 0;
	Elf *e = elf_open(path, &fd, &ret);

	if (!e)
		return ret;
	ret = elf_find(e, name, &sym);
	if (!ret) {
		*value = sym.st_value;
		if (size)
			*size = sym.st_size;
	}
	elf_end(e);
	close(fd);
	return ret;
}

/* Read the 4-byte value of symbol sym from the file data of e (the section
 * that holds it). Returns 0 or -ENOENT. */
static int elf_read_u32(Elf *e, const GElf_Sym *sym, uint32_t *out)
{
	Elf_Scn *scn = elf_getscn(e, sym->st_shndx);
	GElf_Shdr sh;
	Elf_Data *data;
	uint64_t off;

	if (!scn || !gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS)
		return -ENOENT;
	data = elf_getdata(scn, NULL);
	if (!data || sym->st_value < sh.sh_addr)
		return -ENOENT;
	off = sym->st_value - sh.sh_addr;
	if (off + 4 > data->d_size)
		return -ENOENT;
	memcpy(out, (const char *)data->d_buf + off, 4);
	return 0;
}

/* "python3.11", "libpython3.11.so.1.0", "libpython3.12d.so" -> 3, 11. */
static int version_from_name(const char *path, int *major, int *minor)
{
	const char *base = strrchr(path, '/');
	const char *p;

	base = base ? base + 1 : path;
	p = strstr(base, "python");
	if (!p)
		return -ENOENT;
	p += 6;
	if (!isdigit((unsigned char)p[0]) || p[1] != '.' || !isdigit((unsigned char)p[2]))
		return -ENOENT;
	*major = p[0] - '0';
	*minor = (int)strtol(p + 2, NULL, 10);
	return 0;
}

int tg_pyruntime__elf_version(const char *path, int *major, int *minor)
{
	GElf_Sym sym;
	uint32_t hex;
	int fd, ret = 0;
	Elf *e = elf_open(path, &fd, &ret);

	if (e) {
		/* Py_Version (3.11+) is PY_VERSION_HEX: 0xMMmmppRS. */
		if (!elf_find(e, "Py_Version", &sym) && sym.st_size == 4 &&
		    !elf_read_u32(e, &sym, &hex) && (hex >> 24) == 3) {
			*major = 3;
			*minor = (hex >> 16) & 0xff;
			ret = 0;
		} else {
			ret = -ENOENT;
		}
		elf_end(e);
		close(fd);
		if (!ret)
			return 0;
	}
	return version_from_name(path, major, minor);
}

/* The load bias of the ELF file (opened at fpath) given one of its mappings:
 * start address and file offset. */
static int bias_of(const char *fpath, uint64_t start, uint64_t off, uint64_t *bias)
{
	size_t n = 0;
	int fd, ret = 0;
	Elf *e = elf_open(fpath, &fd, &ret);

	if (!e)
		return ret;
	ret = -ENOENT;
	if (elf_getphdrnum(e, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			GElf_Phdr ph;
			uint64_t align_off, align_vaddr;

			if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD)
				continue;
			align_off = ph.p_offset & ~0xfffULL;
			align_vaddr = ph.p_vaddr & ~0xfffULL;
			if (align_off == off) {
				*bias = start - align_vaddr;
				ret = 0;
				break;
			}
		}
	}
	elf_end(e);
	close(fd);
	return ret;
}

/* Calls fn for each file mapping of pid (path, start, file offset) until fn
 * returns non-zero; returns that value, 0 at the end, or -errno. */
typedef int (*map_fn)(void *ctx, const char *path, uint64_t start, uint64_t off);

static int each_mapping(pid_t pid, map_fn fn, void *ctx)
{
	char mpath[64], line[PATH_MAX + 128];
	FILE *f;
	int ret = 0;

	snprintf(mpath, sizeof(mpath), "/proc/%d/maps", (int)pid);
	f = fopen(mpath, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (!ret && fgets(line, sizeof(line), f)) {
		unsigned long long start, end, off;
		int pos = 0;
		char *p;

		if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %n", &start, &end, &off, &pos) < 3 ||
		    !pos)
			continue;
		p = line + pos;
		p[strcspn(p, "\n")] = '\0';
		if (p[0] != '/')
			continue;
		ret = fn(ctx, p, start, off);
	}
	fclose(f);
	return ret;
}

struct file_find {
	const char *needle;
	char *out;
	size_t outlen;
};

static int file_cb(void *ctx, const char *path, uint64_t start, uint64_t off)
{
	struct file_find *f = ctx;

	(void)start;
	(void)off;
	if (!strstr(path, f->needle))
		return 0;
	if (f->out && (size_t)snprintf(f->out, f->outlen, "%s", path) >= f->outlen)
		return -ENAMETOOLONG;
	return 1;
}

int tg_pyruntime__mapped_file(pid_t pid, const char *needle, char *out, size_t outlen)
{
	struct file_find f = {.needle = needle, .out = out, .outlen = outlen};
	int ret = each_mapping(pid, file_cb, &f);

	return ret == 1 ? 0 : ret < 0 ? ret : -ENOENT;
}

struct bias_find {
	pid_t pid;
	const char *path;
	uint64_t *bias;
	int err;
};

static int bias_cb(void *ctx, const char *path, uint64_t start, uint64_t off)
{
	struct bias_find *b = ctx;
	char fpath[PATH_MAX + 32];

	if (strcmp(path, b->path) != 0)
		return 0;
	snprintf(fpath, sizeof(fpath), "/proc/%d/root%s", (int)b->pid, path);
	b->err = bias_of(fpath, start, off, b->bias);
	return b->err == -ENOENT ? 0 : 1;
}

int tg_pyruntime__load_bias(pid_t pid, const char *path, uint64_t *bias)
{
	struct bias_find b = {.pid = pid, .path = path, .bias = bias, .err = -ENOENT};
	int ret = each_mapping(pid, bias_cb, &b);

	if (ret < 0)
		return ret;
	return b.err;
}

/* Candidate files: the executable, then a mapped libpython. */
struct lib_find {
	char path[512];
};

static int lib_cb(void *ctx, const char *path, uint64_t start, uint64_t off)
{
	struct lib_find *l = ctx;
	const char *base = strrchr(path, '/');

	(void)start;
	(void)off;
	base = base ? base + 1 : path;
	if (strncmp(base, "libpython3", 10) != 0 || !strstr(base, ".so"))
		return 0;
	snprintf(l->path, sizeof(l->path), "%s", path);
	return 1;
}

/* _Py_DebugOffsets of 3.13 (CPython Include/internal/pycore_runtime.h), as
 * u64 indexes: cookie[8], version, free_threaded, then per struct its size
 * and fields. */
enum {
	DO_VERSION = 1,
	DO_FREE_THREADED = 2,
	DO_RT_SIZE = 3,
	DO_RT_INTERP_HEAD = 5,
	DO_IS_SIZE = 6,
	DO_IS_THREADS_HEAD = 9,
	DO_TS_SIZE = 19,
	DO_TS_NEXT = 21,
	DO_TS_CURRENT_FRAME = 23,
	DO_TS_NATIVE_TID = 25,
	DO_FR_SIZE = 28,
	DO_FR_PREVIOUS = 29,
	DO_FR_EXECUTABLE = 30,
	DO_FR_INSTR_PTR = 31,
	DO_FR_OWNER = 33,
	DO_CO_SIZE = 34,
	DO_CO_FILENAME = 35,
	DO_CO_NAME = 36,
	DO_CO_QUALNAME = 37,
	DO_CO_LINETABLE = 38,
	DO_CO_FIRSTLINENO = 39,
	DO_CO_ADAPTIVE = 43,
	DO_N = 44,
};

static int debug_offsets(struct tg_pyruntime *rt)
{
	uint64_t d[DO_N];
	struct tg_py_offsets *o = &rt->off;
	int ret = tg_pyruntime__read(rt->pid, rt->runtime, d, sizeof(d));

	if (ret)
		return ret;
	if (memcmp(d, "xdebugpy", 8) != 0 || (d[DO_VERSION] >> 24) != 3 ||
	    (int)((d[DO_VERSION] >> 16) & 0xff) != rt->minor || d[DO_FREE_THREADED])
		return -ENOTSUP;
	/* Sanity: every offset inside its struct, windows within reach. */
	if (d[DO_RT_INTERP_HEAD] >= d[DO_RT_SIZE] || d[DO_IS_THREADS_HEAD] >= d[DO_IS_SIZE] ||
	    d[DO_TS_NEXT] >= d[DO_TS_SIZE] || d[DO_TS_NATIVE_TID] >= d[DO_TS_SIZE] ||
	    d[DO_TS_CURRENT_FRAME] >= d[DO_TS_SIZE] || d[DO_FR_SIZE] > TG_PY_WINDOW ||
	    d[DO_FR_OWNER] >= d[DO_FR_SIZE] || d[DO_CO_NAME] + 8 > TG_PY_WINDOW ||
	    d[DO_CO_FIRSTLINENO] + 4 > TG_PY_WINDOW || d[DO_CO_ADAPTIVE] > 0xffff ||
	    d[DO_CO_QUALNAME] > 0xffff || d[DO_CO_LINETABLE] > 0xffff || d[DO_CO_FILENAME] > 0xffff)
		return -ENOTSUP;
	memset(o, 0, sizeof(*o));
	o->major = 3;
	o->minor = rt->minor;
	o->source = "_Py_DebugOffsets read from the target (3.13 layout; unverified here)";
	o->k.frame_model = TG_PYFRAME_DIRECT;
	o->k.tid_match = TG_PYTID_NATIVE;
	o->k.rt_interp = (uint16_t)d[DO_RT_INTERP_HEAD];
	o->k.is_threads = (uint16_t)d[DO_IS_THREADS_HEAD];
	o->k.ts_next = (uint16_t)d[DO_TS_NEXT];
	o->k.ts_tid = (uint16_t)d[DO_TS_NATIVE_TID];
	o->k.ts_frame = (uint16_t)d[DO_TS_CURRENT_FRAME];
	o->k.ctx_vars = 24;
	o->k.fr_code = (uint16_t)d[DO_FR_EXECUTABLE];
	o->k.fr_previous = (uint16_t)d[DO_FR_PREVIOUS];
	o->k.fr_instr = (uint16_t)d[DO_FR_INSTR_PTR];
	o->k.fr_owner = (uint16_t)d[DO_FR_OWNER];
	o->k.fr_window = (uint16_t)d[DO_FR_SIZE] < 80 ? 80 : (uint16_t)d[DO_FR_SIZE];
	o->k.co_firstlineno = (uint16_t)d[DO_CO_FIRSTLINENO];
	o->k.co_name = (uint16_t)d[DO_CO_NAME];
	o->k.co_code = (uint16_t)d[DO_CO_ADAPTIVE];
	o->k.co_window = TG_PY_WINDOW;
	o->k.gen_iframe = 0; /* not published: no coroutine key */
	o->co_filename = (uint16_t)d[DO_CO_FILENAME];
	o->co_qualname = (uint16_t)d[DO_CO_QUALNAME];
	o->co_linetable = (uint16_t)d[DO_CO_LINETABLE];
	o->bytes_sval = 32;
	o->var_size = 16;
	o->str_state = 32;
	o->str_length = 16;
	o->str_ascii = 40;
	o->str_compact = 56;
	return 0;
}

/* Try the ELF file named path (in the maps) as the runtime's home. */
static int try_file(struct tg_pyruntime *out, const char *path)
{
	char fpath[PATH_MAX + 32];
	uint64_t value = 0, bias = 0;
	const struct tg_py_offsets *o;
	int ret;

	snprintf(fpath, sizeof(fpath), "/proc/%d/root%s", (int)out->pid, path);
	ret = tg_pyruntime__elf_symbol(fpath, "_PyRuntime", &value, NULL);
	if (ret)
		return ret == -ENOENT || ret == -EINVAL ? -ENOENT : ret;
	ret = tg_pyruntime__elf_version(fpath, &out->major, &out->minor);
	if (ret)
		ret = version_from_name(path, &out->major, &out->minor);
	if (ret)
		return -ENOTSUP;
	ret = tg_pyruntime__load_bias(out->pid, path, &bias);
	if (ret)
		return ret;
	snprintf(out->path, sizeof(out->path), "%s", path);
	out->runtime = value + bias;
	o = tg_pyruntime__table(out->major, out->minor);
	if (o) {
		out->off = *o;
		return 0;
	}
	if (out->major == 3 && out->minor >= 13)
		return debug_offsets(out);
	return -ENOTSUP;
}

int tg_pyruntime__detect(pid_t pid, struct tg_pyruntime *out)
{
	char link[64], exe[512];
	struct lib_find lib = {{0}};
	ssize_t n;
	int ret;

	if (!out || pid <= 0)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->pid = pid;
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, exe, sizeof(exe) - 1);
	if (n < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	exe[n] = '\0';
	ret = try_file(out, exe);
	if (ret != -ENOENT)
		return ret;
	ret = each_mapping(pid, lib_cb, &lib);
	if (ret < 0)
		return ret;
	if (!lib.path[0])
		return -ENOENT;
	return try_file(out, lib.path);
}

void tg_pyruntime__bpf_config(const struct tg_pyruntime *rt, struct tg_py_proc *out)
{
	*out = rt->off.k;
	out->runtime = rt->runtime;
	out->version = (uint16_t)(rt->major << 8 | rt->minor);
}
