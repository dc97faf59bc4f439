/* SPDX-License-Identifier: MIT */
/*
 * Probe sites for per-task accounting (pyctx.h). The tail-jump decoding is
 * deliberately narrow: it accepts a `jmp rel32` (0xe9) among the first 32
 * bytes of the wrapper only when everything around it checks out, and says
 * how it found each site so `timeglass doctor` and the logs can tell.
 */
#include "pyctx.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>

#include "pyruntime.h"

#define WRAP_SCAN 32 /* bytes of a wrapper searched for its tail jump */
#define NEAR 65536   /* _PyContext_Enter and _PyContext_Exit are neighbours in context.c */

struct seg {
	uint64_t vaddr, memsz, offset;
	bool exec;
};

#define MAX_SEGS 16

static int load_segs(const char *path, struct seg *segs, size_t *nsegs)
{
	Elf *e = NULL;
	size_t n, k = 0;
	int fd, ret = 0;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	e = elf_begin(fd, ELF_C_READ, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF || elf_getphdrnum(e, &n)) {
		ret = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < n && k < MAX_SEGS; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		segs[k].vaddr = ph.p_vaddr;
		segs[k].memsz = ph.p_filesz;
		segs[k].offset = ph.p_offset;
		segs[k].exec = (ph.p_flags & PF_X) != 0;
		k++;
	}
	*nsegs = k;
out:
	elf_end(e);
	close(fd);
	return ret;
}

static const struct seg *seg_of(const struct seg *segs, size_t n, uint64_t vaddr)
{
	for (size_t i = 0; i < n; i++)
		if (vaddr >= segs[i].vaddr && vaddr < segs[i].vaddr + segs[i].memsz)
			return &segs[i];
	return NULL;
}

int tg_pyctx__file_offset(const char *path, uint64_t vaddr, uint64_t *off)
{
	struct seg segs[MAX_SEGS];
	const struct seg *s;
	size_t n = 0;
	int ret = load_segs(path, segs, &n);

	if (ret)
		return ret;
	s = seg_of(segs, n, vaddr);
	if (!s)
		return -ENOENT;
	*off = vaddr - s->vaddr + s->offset;
	return 0;
}

int tg_pyctx__read_at(const char *path, uint64_t off, uint8_t *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got;

	if (fd < 0)
		return -errno;
	got = pread(fd, buf, len, (off_t)off);
	close(fd);
	return got == (ssize_t)len ? 0 : -EIO;
}

/* A function start we accept: push reg, push r8-r15, endbr64, or sub rsp. */
static bool looks_like_entry(const uint8_t *b)
{
	if (b[0] >= 0x50 && b[0] <= 0x57)
		return true;
	if (b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57)
		return true;
	if (b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && b[3] == 0xfa)
		return true;
	return b[0] == 0x48 && b[1] == 0x83 && b[2] == 0xec;
}

/* The target of the first plausible tail jump of the wrapper at vaddr, or 0. */
static uint64_t tail_jump(const char *path, const struct seg *segs, size_t n, uint64_t vaddr)
{
	const struct seg *s = seg_of(segs, n, vaddr);
	uint8_t code[WRAP_SCAN + 4] = {0}, head[4] = {0};

	if (!s || !s->exec ||
	    tg_pyctx__read_at(path, vaddr - s->vaddr + s->offset, code, sizeof(code)))
		return 0;
	for (size_t i = 0; i < WRAP_SCAN; i++) {
		int32_t rel;
		uint64_t target;
		const struct seg *ts;

		if (code[i] != 0xe9)
			continue;
		memcpy(&rel, code + i + 1, sizeof(rel));
		target = vaddr + i + 5 + (uint64_t)(int64_t)rel;
		ts = seg_of(segs, n, target);
		if (!ts || !ts->exec ||
		    tg_pyctx__read_at(path, target - ts->vaddr + ts->offset, head, sizeof(head)))
			continue;
		if (looks_like_entry(head))
			return target;
	}
	return 0;
}

/* In the function at vaddr, a `call rel32` within 8 bytes after a
 * `mov %rax,%rdi` (48 89 c7) among its first 64 bytes; 0 when none. */
static uint64_t new_ctx_call(const char *path, const struct seg *segs, size_t n, uint64_t vaddr)
{
	const struct seg *s = seg_of(segs, n, vaddr);
	uint8_t code[64 + 16] = {0};

	if (!s || !s->exec ||
	    tg_pyctx__read_at(path, vaddr - s->vaddr + s->offset, code, sizeof(code)))
		return 0;
	for (size_t i = 0; i + 3 <= 64; i++) {
		if (code[i] != 0x48 || code[i + 1] != 0x89 || code[i + 2] != 0xc7)
			continue;
		for (size_t j = i + 3; j < i + 3 + 8; j++)
			if (code[j] == 0xe8)
				return vaddr + j;
		return 0;
	}
	return 0;
}

uint64_t tg_pyctx__past_endbr(const char *path, uint64_t off)
{
	static const uint8_t endbr64[4] = {0xf3, 0x0f, 0x1e, 0xfa};
	uint8_t b[4] = {0};

	if (tg_pyctx__read_at(path, off, b, sizeof(b)) || memcmp(b, endbr64, sizeof(b)) != 0)
		return off;
	return off + sizeof(endbr64);
}

bool tg_pyctx__emulated(const char *path, uint64_t off)
{
	uint8_t b[3] = {0};

	if (tg_pyctx__read_at(path, off, b, sizeof(b)))
		return false;
	if ((b[0] >= 0x50 && b[0] <= 0x57) || (b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57))
		return true; /* push %reg */
	if (b[0] == 0xe8 || b[0] == 0xe9 || b[0] == 0xeb || (b[0] >= 0x70 && b[0] <= 0x7f))
		return true; /* call, jmp, jcc rel8 */
	if (b[0] == 0x0f && b[1] >= 0x80 && b[1] <= 0x8f)
		return true; /* jcc rel32 */
	return b[0] == 0x90 || (b[0] == 0x0f && b[1] == 0x1f) ||
	       (b[0] == 0x66 && (b[1] == 0x90 || (b[1] == 0x0f && b[2] == 0x1f))); /* nops */
}

int tg_pyctx__find(const char *path, struct tg_pyctx_sites *out)
{
	uint64_t new_fn, call;
	struct seg segs[MAX_SEGS];
	uint64_t enter, exit_fn, copy, internal, target_exit, dist;
	size_t n = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = load_segs(path, segs, &n);
	if (ret)
		return ret;
	ret = tg_pyruntime__elf_symbol(path, "PyContext_CopyCurrent", &copy, NULL);
	if (!ret)
		ret = tg_pyruntime__elf_symbol(path, "PyContext_Enter", &enter, NULL);
	if (ret)
		return ret;
	ret = tg_pyctx__file_offset(path, copy, &out->copy_off);
	if (ret)
		return ret;
	out->copy_off = tg_pyctx__past_endbr(path, out->copy_off);
	new_fn = tail_jump(path, segs, n, copy);
	call = new_fn ? new_ctx_call(path, segs, n, new_fn) : 0;
	if (call && tg_pyctx__file_offset(path, call, &out->new_call_off))
		out->new_call_off = 0;
	if (!tg_pyruntime__elf_symbol(path, "_PyContext_Enter", &internal, NULL)) {
		out->how = "symbol _PyContext_Enter";
	} else {
		internal = tail_jump(path, segs, n, enter);
		target_exit = 0;
		if (internal && !tg_pyruntime__elf_symbol(path, "PyContext_Exit", &exit_fn, NULL))
			target_exit = tail_jump(path, segs, n, exit_fn);
		dist = internal > target_exit ? internal - target_exit : target_exit - internal;
		if (!internal || !target_exit || internal == target_exit || dist > NEAR)
			internal = 0;
		out->how = "tail jump of PyContext_Enter";
	}
	if (internal) {
		out->enter_has_ts = true;
		out->asyncio_covered = true;
		ret = tg_pyctx__file_offset(path, internal, &out->enter_off);
	} else {
		out->how = "exported PyContext_Enter (asyncio's Context.run not covered)";
		ret = tg_pyctx__file_offset(path, enter, &out->enter_off);
	}
	if (!ret)
		out->enter_off = tg_pyctx__past_endbr(path, out->enter_off);
	return ret;
}
