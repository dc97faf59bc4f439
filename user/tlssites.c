/* SPDX-License-Identifier: MIT */
#include "tlssites.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>

#include "pyctx.h"
#include "pyruntime.h"

int tg_tlssites__find(pid_t pid, char *out, size_t outlen)
{
	char file[PATH_MAX];
	int ret = tg_pyruntime__mapped_file(pid, "/libssl.so", file, sizeof(file));

	if (ret)
		return ret;
	if ((size_t)snprintf(out, outlen, "/proc/%d/root%s", (int)pid, file) >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

/* exported is `sub $8,%rsp; call rel32` and the callee starts with a push
 * (each maybe after an endbr64, in a CET build): the file offset of the
 * callee's push into *off. Returns 0 or -ENOENT. */
static int wrapped_call(const char *path, const char *exported, uint64_t *off)
{
	static const uint8_t prologue[] = {0x48, 0x83, 0xec, 0x08, 0xe8};
	uint64_t vaddr, foff, target, skip;
	uint8_t code[9] = {0}, head[2] = {0};
	int32_t rel;

	if (tg_pyruntime__elf_symbol(path, exported, &vaddr, NULL) ||
	    tg_pyctx__file_offset(path, vaddr, &foff))
		return -ENOENT;
	skip = tg_pyctx__past_endbr(path, foff) - foff;
	vaddr += skip;
	if (tg_pyctx__read_at(path, foff + skip, code, sizeof(code)) ||
	    memcmp(code, prologue, sizeof(prologue)) != 0)
		return -ENOENT;
	memcpy(&rel, code + 5, sizeof(rel));
	target = vaddr + sizeof(code) + (uint64_t)(int64_t)rel;
	if (tg_pyctx__file_offset(path, target, &foff))
		return -ENOENT;
	foff = tg_pyctx__past_endbr(path, foff);
	if (tg_pyctx__read_at(path, foff, head, sizeof(head)))
		return -ENOENT;
	/* push %reg (emulated by the kernel's uprobes: a cheap trap) */
	if (!((head[0] >= 0x50 && head[0] <= 0x57) ||
	      (head[0] == 0x41 && head[1] >= 0x50 && head[1] <= 0x57)))
		return -ENOENT;
	*off = foff;
	return 0;
}

int tg_tlssites__decode(const char *path, struct tg_tls_sites *s)
{
	uint64_t v;

	memset(s, 0, sizeof(*s));
	if (tg_pyruntime__elf_symbol(path, "SSL_read_ex", &v, NULL))
		return -ENOENT; /* not OpenSSL 3's libssl (or unreadable) */
	s->internal = !wrapped_call(path, "SSL_write_ex", &s->write_internal) &&
		      !wrapped_call(path, "SSL_read_ex", &s->read_internal) &&
		      s->write_internal != s->read_internal;
	return 0;
}
