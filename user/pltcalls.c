/* SPDX-License-Identifier: MIT */
/*
 * Calls of an imported function through a module's PLT (pltcalls.h).
 *
 * The function's GOT slots come from the dynamic relocations naming it
 * (R_X86_64_JUMP_SLOT in .rela.plt, R_X86_64_GLOB_DAT in .rela.dyn for a
 * .plt.got stub); its stubs are the `jmp *slot(%rip)` (ff 25 disp32) in the
 * PLT sections, starting at the endbr64 and bnd prefix in front of the jump
 * when there are. Then every executable byte that reads as `e8`/`e9 rel32`
 * aimed at a stub is a call. Reading bytes, not decoding instructions: a
 * stray match would need the four bytes after an e8/e9 inside some other
 * instruction to equal that position's exact displacement to the stub.
 */
#include "pltcalls.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#define MAX_SLOTS 4
#define MAX_STUBS 8

struct targets {
	uint64_t slot[MAX_SLOTS];
	size_t nslots;
	uint64_t stub[MAX_STUBS];
	size_t nstubs;
};

static bool is_plt(const char *name)
{
	return name &&
	       (!strcmp(name, ".plt") || !strcmp(name, ".plt.sec") || !strcmp(name, ".plt.got"));
}

/* The GOT slots the relocations of section scn give symbol. */
static void add_slots(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, const char *symbol,
		      struct targets *t)
{
	Elf_Scn *symscn = elf_getscn(e, sh->sh_link);
	Elf_Data *rel = elf_getdata(scn, NULL), *syms;
	GElf_Shdr symsh;

	if (!rel || !symscn || !gelf_getshdr(symscn, &symsh) || !(syms = elf_getdata(symscn, NULL)))
		return;
	for (size_t i = 0; sh->sh_entsize && i < sh->sh_size / sh->sh_entsize; i++) {
		GElf_Rela r;
		GElf_Sym s;
		const char *name;
		uint64_t type;

		if (!gelf_getrela(rel, (int)i, &r))
			break;
		type = GELF_R_TYPE(r.r_info);
		if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
			continue;
		if (!gelf_getsym(syms, (int)GELF_R_SYM(r.r_info), &s) ||
		    !(name = elf_strptr(e, symsh.sh_link, s.st_name)) || strcmp(name, symbol) != 0)
			continue;
		if (t->nslots < MAX_SLOTS)
			t->slot[t->nslots++] = r.r_offset;
	}
}

static bool is_slot(const struct targets *t, uint64_t addr)
{
	for (size_t i = 0; i < t->nslots; i++)
		if (t->slot[i] == addr)
			return true;
	return false;
}

/* The stubs of PLT section (sh, d) that jump through one of t's slots. */
static void add_stubs(const GElf_Shdr *sh, const Elf_Data *d, struct targets *t)
{
	const uint8_t *b = d->d_buf;

	for (size_t i = 0; i + 6 <= d->d_size; i++) {
		int32_t disp;
		size_t entry = i;

		if (b[i] != 0xff || b[i + 1] != 0x25)
			continue;
		memcpy(&disp, b + i + 2, sizeof(disp));
		if (!is_slot(t, sh->sh_addr + i + 6 + (uint64_t)(int64_t)disp))
			continue;
		if (entry >= 1 && b[entry - 1] == 0xf2) /* bnd jmp */
			entry--;
		if (entry >= 4 && !memcmp(b + entry - 4, "\xf3\x0f\x1e\xfa", 4)) /* endbr64 */
			entry -= 4;
		if (t->nstubs < MAX_STUBS)
			t->stub[t->nstubs++] = sh->sh_addr + entry;
	}
}

static bool is_stub(const struct targets *t, uint64_t addr)
{
	for (size_t i = 0; i < t->nstubs; i++)
		if (t->stub[i] == addr)
			return true;
	return false;
}

/* Walk the sections: is_plt sections first feed the stubs (pass 0), then
 * the other executable ones are scanned for calls (pass 1). */
static int scan(Elf *e, const char *symbol, uint64_t *offsets, size_t max, size_t *count)
{
	struct targets t = {0};
	size_t shstrndx, n = 0;
	bool too_many = false;

	if (elf_getshdrstrndx(e, &shstrndx))
		return -EINVAL;
	for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e, scn));) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_RELA && sh.sh_link)
			add_slots(e, scn, &sh, symbol, &t);
	}
	for (int pass = 0; pass < 2; pass++) {
		for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e, scn));) {
			GElf_Shdr sh;
			Elf_Data *d;
			const uint8_t *b;

			if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
			    !(sh.sh_flags & SHF_EXECINSTR) ||
			    is_plt(elf_strptr(e, shstrndx, sh.sh_name)) != (pass == 0) ||
			    !(d = elf_getdata(scn, NULL)) || !d->d_buf)
				continue;
			if (pass == 0) {
				add_stubs(&sh, d, &t);
				continue;
			}
			b = d->d_buf;
			for (size_t i = 0; i + 5 <= d->d_size; i++) {
				int32_t rel;

				if (b[i] != 0xe8 && b[i] != 0xe9)
					continue;
				memcpy(&rel, b + i + 1, sizeof(rel));
				if (!is_stub(&t, sh.sh_addr + i + 5 + (uint64_t)(int64_t)rel))
					continue;
				if (n < max)
					offsets[n++] = sh.sh_offset + i;
				else
					too_many = true;
			}
		}
	}
	*count = n;
	if (too_many)
		return -E2BIG;
	return n ? 0 : -ENOENT;
}

/* The address of the string text (a whole NUL-terminated string) in the
 * non-executable PROGBITS sections of e, or 0. */
static uint64_t string_addr(Elf *e, const char *text)
{
	size_t len = strlen(text) + 1;

	for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e, scn));) {
		GElf_Shdr sh;
		Elf_Data *d;
		const uint8_t *b;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
		    (sh.sh_flags & SHF_EXECINSTR) || !(sh.sh_flags & SHF_ALLOC) ||
		    !(d = elf_getdata(scn, NULL)) || !d->d_buf)
			continue;
		b = d->d_buf;
		for (size_t i = 0; i + len <= d->d_size; i++)
			if ((i == 0 || b[i - 1] == 0) && !memcmp(b + i, text, len))
				return sh.sh_addr + i;
	}
	return 0;
}

/* Does code (at address addr, size bytes) hold a `lea disp32(%rip), %reg`
 * (REX.W 8d, ModRM mod 00 r/m 101) whose operand is target? */
static bool loads_address(const uint8_t *code, size_t size, uint64_t addr, uint64_t target)
{
	for (size_t i = 0; i + 7 <= size; i++) {
		int32_t disp;

		if ((code[i] != 0x48 && code[i] != 0x4c) || code[i + 1] != 0x8d ||
		    (code[i + 2] & 0xc7) != 0x05)
			continue;
		memcpy(&disp, code + i + 3, sizeof(disp));
		if (addr + i + 7 + (uint64_t)(int64_t)disp == target)
			return true;
	}
	return false;
}

static int keep_near(Elf *e, const char *text, uint64_t window, uint64_t *offsets, size_t *count)
{
	uint64_t target = string_addr(e, text);
	size_t kept = 0;
	bool keep[64] = {false};

	if (!target || *count > sizeof(keep) / sizeof(keep[0]))
		return target ? -EINVAL : -ENOENT;
	for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e, scn));) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
		    !(sh.sh_flags & SHF_EXECINSTR) || !(d = elf_getdata(scn, NULL)) || !d->d_buf)
			continue;
		for (size_t i = 0; i < *count; i++) {
			uint64_t at = offsets[i];
			size_t from, len;

			if (at < sh.sh_offset || at >= sh.sh_offset + d->d_size)
				continue;
			from = (size_t)(at - sh.sh_offset);
			len = d->d_size - from < window ? d->d_size - from : (size_t)window;
			keep[i] = loads_address((const uint8_t *)d->d_buf + from, len,
						sh.sh_addr + from, target);
		}
	}
	for (size_t i = 0; i < *count; i++)
		kept += keep[i];
	if (!kept)
		return -ENOENT;
	kept = 0;
	for (size_t i = 0; i < *count; i++)
		if (keep[i])
			offsets[kept++] = offsets[i];
	*count = kept;
	return 0;
}

/* Open path as an x86-64 ELF file: 0 with *fd and *e set, or -errno. */
static int open_elf(const char *path, int *fd, Elf **e)
{
	GElf_Ehdr eh;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return -errno;
	*e = elf_begin(*fd, ELF_C_READ, NULL);
	if (!*e || elf_kind(*e) != ELF_K_ELF || !gelf_getehdr(*e, &eh) ||
	    eh.e_machine != EM_X86_64) {
		elf_end(*e);
		close(*fd);
		return -EINVAL;
	}
	return 0;
}

int tg_pltcalls__keep_near(const char *path, const char *text, uint64_t window, uint64_t *offsets,
			   size_t *count)
{
	Elf *e = NULL;
	int fd = -1, ret;

	if (!path || !text || !text[0] || !offsets || !count)
		return -EINVAL;
	ret = open_elf(path, &fd, &e);
	if (ret)
		return ret;
	ret = keep_near(e, text, window, offsets, count);
	elf_end(e);
	close(fd);
	return ret;
}

int tg_pltcalls__find(const char *path, const char *symbol, uint64_t *offsets, size_t max,
		      size_t *count)
{
	Elf *e = NULL;
	int fd = -1, ret;

	if (!path || !symbol || !offsets || !count)
		return -EINVAL;
	*count = 0;
	ret = open_elf(path, &fd, &e);
	if (ret)
		return ret;
	ret = scan(e, symbol, offsets, max, count);
	elf_end(e);
	close(fd);
	return ret;
}
