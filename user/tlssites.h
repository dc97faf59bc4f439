/* SPDX-License-Identifier: MIT */
/*
 * Where to probe OpenSSL in a process (user/tlsprobe.h says why): its libssl
 * file, and the internal read/write functions found by decoding the calls in
 * SSL_read_ex / SSL_write_ex.
 */
#ifndef TG_TLSSITES_H
#define TG_TLSSITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Where the probes go in one libssl file (offsets in the file). */
struct tg_tls_sites {
	bool internal;		 /* the ssl_{read,write}_internal pair was found */
	uint64_t write_internal; /* internal: ssl_write_internal */
	uint64_t read_internal;	 /* internal: ssl_read_internal */
};

/* Find the libssl pid has mapped (a "libssl.so" path in /proc/PID/maps) and
 * write it as /proc/PID/root/<path> into out. Returns 0, -ENOENT (none
 * mapped) or -errno. */
int tg_tlssites__find(pid_t pid, char *out, size_t outlen);

/* Decode the internal sites of the libssl file path into s (s->internal
 * false when the pattern is not there). Returns 0 or -errno (file or
 * symbols unreadable). */
int tg_tlssites__decode(const char *path, struct tg_tls_sites *s);

#endif
