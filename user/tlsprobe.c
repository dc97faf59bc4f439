/* SPDX-License-Identifier: MIT */
#include "tlsprobe.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

const char *const tg_tls_funcs[TG_TLS_FUNCS] = {"SSL_write", "SSL_write_ex", "SSL_read",
						"SSL_read_ex", "SSL_do_handshake"};

int tg_tlsprobe__find(pid_t pid, char *out, size_t outlen)
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

int tg_tlsprobe__attach(struct tg_tlsprobe *p, pid_t pid,
			struct bpf_program *const enter[TG_TLS_FUNCS], struct bpf_program *ret,
			struct bpf_program *on_free)
{
	struct bpf_uprobe_opts fo = {.sz = sizeof(fo), .func_name = "SSL_free"};
	char file[1200];
	int err = tg_tlsprobe__find(pid, file, sizeof(file)), n = 0;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	if (err) {
		tg_warn("pid %d: no libssl mapped (%s): its TLS PostgreSQL connections stay opaque",
			(int)pid, strerror(-err));
		return 0;
	}
	p->links[TG_TLS_FREE_LINK] = bpf_program__attach_uprobe_opts(on_free, pid, file, 0, &fo);
	if (libbpf_get_error(p->links[TG_TLS_FREE_LINK])) {
		p->links[TG_TLS_FREE_LINK] = NULL;
		tg_warn("pid %d: cannot probe SSL_free in %s: its TLS PostgreSQL connections stay "
			"opaque",
			(int)pid, file);
		return 0;
	}
	for (int i = 0; i < TG_TLS_FUNCS; i++) {
		struct bpf_uprobe_opts in = {.sz = sizeof(in), .func_name = tg_tls_funcs[i]};
		struct bpf_uprobe_opts out = {
		    .sz = sizeof(out), .func_name = tg_tls_funcs[i], .retprobe = true};
		struct bpf_link *a = bpf_program__attach_uprobe_opts(enter[i], pid, file, 0, &in);
		struct bpf_link *b = NULL;

		if (libbpf_get_error(a)) {
			tg_debug("pid %d: %s: cannot probe %s", (int)pid, file, tg_tls_funcs[i]);
			continue;
		}
		b = bpf_program__attach_uprobe_opts(ret, pid, file, 0, &out);
		if (libbpf_get_error(b)) {
			bpf_link__destroy(a);
			tg_debug("pid %d: %s: cannot probe %s's return", (int)pid, file,
				 tg_tls_funcs[i]);
			continue;
		}
		p->links[(size_t)2 * i] = a;
		p->links[(size_t)2 * i + 1] = b;
		n++;
	}
	if (!n) {
		bpf_link__destroy(p->links[TG_TLS_FREE_LINK]);
		p->links[TG_TLS_FREE_LINK] = NULL;
		tg_warn("pid %d: cannot probe OpenSSL in %s: its TLS PostgreSQL connections stay "
			"opaque",
			(int)pid, file);
	} else {
		tg_debug("pid %d: OpenSSL probed in %s (%d of %d functions)", (int)pid, file, n,
			 TG_TLS_FUNCS);
	}
	return n;
}

void tg_tlsprobe__detach(struct tg_tlsprobe *p)
{
	for (size_t i = 0; i <= TG_TLS_FREE_LINK; i++) {
		bpf_link__destroy(p->links[i]);
		p->links[i] = NULL;
	}
}
