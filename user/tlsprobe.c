/* SPDX-License-Identifier: MIT */
#include "tlsprobe.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* Attach prog at (name or offset) of file; a uretprobe when ret. Adds the
 * link to p; returns 0 or -errno. */
static int attach(struct tg_tlsprobe *p, struct bpf_program *prog, const char *file,
		  const char *name, uint64_t off, bool ret)
{
	struct bpf_uprobe_opts o = {.sz = sizeof(o), .func_name = name, .retprobe = ret};
	struct bpf_link *l;

	if (p->nlinks == TG_TLS_MAX_LINKS)
		return -ENOSPC;
	l = bpf_program__attach_uprobe_opts(prog, p->pid, file, name ? 0 : (size_t)off, &o);
	if (libbpf_get_error(l)) {
		tg_debug("pid %d: %s: cannot probe %s%s", (int)p->pid, file,
			 name ? name : "an offset", ret ? "'s return" : "");
		return -EINVAL;
	}
	p->links[p->nlinks++] = l;
	return 0;
}

/* Entry and return of one read/write site; 1 when both attached. */
static int attach_pair(struct tg_tlsprobe *p, struct bpf_program *enter, struct bpf_program *ret,
		       const char *file, const char *name, uint64_t off)
{
	if (attach(p, enter, file, name, off, false))
		return 0;
	if (attach(p, ret, file, name, off, true)) {
		bpf_link__destroy(p->links[--p->nlinks]);
		return 0;
	}
	return 1;
}

int tg_tlsprobe__attach(struct tg_tlsprobe *p, pid_t pid, const struct tg_tls_progs *progs)
{
	struct tg_tls_sites sites;
	char file[1200];
	int err = tg_tlssites__find(pid, file, sizeof(file)), n = 0;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	if (!err)
		err = tg_tlssites__decode(file, &sites);
	if (err) {
		tg_warn("pid %d: no usable libssl mapped (%s): its TLS PostgreSQL connections stay "
			"opaque",
			(int)pid, strerror(-err));
		return 0;
	}
	if (attach(p, progs->on_free, file, "SSL_free", 0, false)) {
		tg_warn("pid %d: cannot probe SSL_free in %s: its TLS PostgreSQL connections stay "
			"opaque",
			(int)pid, file);
		return 0;
	}
	p->internal = sites.internal;
	if (sites.internal) {
		/* The internals take (s, buf, num, size_t *) like the _ex calls. */
		n += attach_pair(p, progs->write_ex, progs->ret, file, NULL, sites.write_internal);
		n += attach_pair(p, progs->read_ex, progs->ret, file, NULL, sites.read_internal);
	} else {
		n += attach_pair(p, progs->write, progs->ret, file, "SSL_write", 0);
		n += attach_pair(p, progs->write_ex, progs->ret, file, "SSL_write_ex", 0);
		n += attach_pair(p, progs->read, progs->ret, file, "SSL_read", 0);
		n += attach_pair(p, progs->read_ex, progs->ret, file, "SSL_read_ex", 0);
	}
	attach_pair(p, progs->handshake, progs->ret, file, "SSL_do_handshake", 0);
	if (!n) {
		tg_tlsprobe__detach(p);
		tg_warn("pid %d: cannot probe OpenSSL in %s: its TLS PostgreSQL connections stay "
			"opaque",
			(int)pid, file);
	} else {
		tg_debug("pid %d: OpenSSL probed in %s (%s, %d read/write sites)", (int)pid, file,
			 sites.internal ? "internal functions" : "exported functions", n);
	}
	return n;
}

void tg_tlsprobe__detach(struct tg_tlsprobe *p)
{
	for (size_t i = 0; i < p->nlinks; i++)
		bpf_link__destroy(p->links[i]);
	p->nlinks = 0;
}
