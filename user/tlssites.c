/* SPDX-License-Identifier: MIT */
#include "tlssites.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pyctx.h"
#include "pyruntime.h"

int tg_tlssites__find(pid_t pid, char *out, size_t outlen)
{
	char path[64], line[1024];
	int ret = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (ret == -ENOENT && fgets(line, sizeof(line), f)) {
		char *file = strchr(line, '/');
		char *nl;

		if (!file || !strstr(file, "/libssl.so"))
			continue;
		nl = strchr(file, '\n');
		if (nl)
			*nl = '\0';
		if ((size_t)snprintf(out, outlen, "/proc/%d/root%s", (int)pid, file) >= outlen)
			ret = -ENAMETOOLONG;
		else
			ret = 0;
	}
	fclose(f);
	return ret;
}

static int read_at(const char *path, uint64_t off, uint8_t *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got;

	if (fd < 0)
		return -errno;
	got = pread(fd, buf, len, (off_t)off);
	close(fd);
	return got == (ssize_t)len ? 0 : -EIO;
}

/* exported is `sub $8,%rsp; call rel32` and the callee starts with a push:
 * the callee's file offset into *off. Returns 0 or -ENOENT. */
static int wrapped_call(const char *path, const char *exported, uint64_t *off)
{
	static const uint8_t prologue[] = {0x48, 0x83, 0xec, 0x08, 0xe8};
	uint64_t vaddr, foff, target;
	uint8_t code[9] = {0}, head[2] = {0};
	int32_t rel;

	if (tg_pyruntime__elf_symbol(path, exported, &vaddr, NULL) ||
	    tg_pyctx__file_offset(path, vaddr, &foff) || read_at(path, foff, code, sizeof(code)) ||
	    memcmp(code, prologue, sizeof(prologue)) != 0)
		return -ENOENT;
	memcpy(&rel, code + 5, sizeof(rel));
	target = vaddr + sizeof(code) + (uint64_t)(int64_t)rel;
	if (tg_pyctx__file_offset(path, target, &foff) || read_at(path, foff, head, sizeof(head)))
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
		return -ENOENT;
	s->internal = !wrapped_call(path, "SSL_write_ex", &s->write_internal) &&
		      !wrapped_call(path, "SSL_read_ex", &s->read_internal) &&
		      s->write_internal != s->read_internal;
	return 0;
}
