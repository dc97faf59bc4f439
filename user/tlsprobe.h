/* SPDX-License-Identifier: MIT */
/*
 * The OpenSSL probes of one process (bpf/tls.bpf.h): where its libssl is,
 * where to probe it, and the links.
 *
 * A uprobe costs a trap whose probed instruction the kernel either emulates
 * (push, call, jmp: ~1 us here) or single-steps out of line (~12 us).
 * OpenSSL 3's exported SSL_read/SSL_read_ex/SSL_write/SSL_write_ex start
 * with `sub $N,%rsp` (single-stepped) and all four call the internal
 * ssl_read_internal / ssl_write_internal(s, buf, num, size_t *bytes), which
 * start with pushes. SSL_read_ex and SSL_write_ex are `sub $8,%rsp; call
 * internal`: the call is decoded to find the internals, which are probed
 * instead (entry and return): one cheap site for both variants of each.
 * When the pattern is not there (another build), the four exported
 * functions are probed, slower. SSL_do_handshake and SSL_free are probed
 * where they are.
 */
#ifndef TG_TLSPROBE_H
#define TG_TLSPROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tlssites.h"

struct bpf_link;
struct bpf_program;

#define TG_TLS_MAX_LINKS 12

/* The BPF programs (bpf/tls_probes.bpf.h). */
struct tg_tls_progs {
	struct bpf_program *write, *write_ex, *read, *read_ex, *handshake, *ret, *on_free;
};

struct tg_tlsprobe {
	pid_t pid;
	bool internal; /* probed at the internal functions */
	struct bpf_link *links[TG_TLS_MAX_LINKS];
	size_t nlinks;
};

/* Attach the probes to pid's libssl into p. Returns the number of read/write
 * sites probed (entry and return both); 0 when none could be, or SSL_free
 * could not (bindings would go stale): the reason is logged. */
int tg_tlsprobe__attach(struct tg_tlsprobe *p, pid_t pid, const struct tg_tls_progs *progs);

/* Destroy p's links. */
void tg_tlsprobe__detach(struct tg_tlsprobe *p);

#endif
