/* SPDX-License-Identifier: MIT */
/*
 * The OpenSSL probes of one process (bpf/tls.bpf.h): where its libssl is and
 * the uprobe/uretprobe links on SSL_write, SSL_write_ex, SSL_read,
 * SSL_read_ex and SSL_do_handshake, and the uprobe on SSL_free.
 */
#ifndef TG_TLSPROBE_H
#define TG_TLSPROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct bpf_link;
struct bpf_program;

#define TG_TLS_FUNCS 5
#define TG_TLS_FREE_LINK ((size_t)2 * TG_TLS_FUNCS) /* index of the SSL_free link */

struct tg_tlsprobe {
	pid_t pid;
	struct bpf_link *links[TG_TLS_FREE_LINK + 1]; /* entry, return per function; SSL_free */
};

/* The OpenSSL functions probed, in the order of the enter programs. */
extern const char *const tg_tls_funcs[TG_TLS_FUNCS];

/* Find the libssl pid has mapped (a "libssl.so" path in /proc/PID/maps) and
 * write it as /proc/PID/root/<path> into out. Returns 0, -ENOENT (none
 * mapped) or -errno. */
int tg_tlsprobe__find(pid_t pid, char *out, size_t outlen);

/* Attach enter[i] as a uprobe and ret as a uretprobe on tg_tls_funcs[i] of
 * pid's libssl, and on_free as a uprobe on SSL_free, into p. Returns the
 * number of functions probed (entry and return both), 0 when nothing could
 * be attached or SSL_free could not (bindings would go stale; the reason is
 * logged). */
int tg_tlsprobe__attach(struct tg_tlsprobe *p, pid_t pid,
			struct bpf_program *const enter[TG_TLS_FUNCS], struct bpf_program *ret,
			struct bpf_program *on_free);

/* Destroy p's links. */
void tg_tlsprobe__detach(struct tg_tlsprobe *p);

#endif
