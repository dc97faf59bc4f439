/* SPDX-License-Identifier: MIT */
/*
 * What /proc tells about target processes: which processes run uvicorn, their
 * command lines and Python version, and their TCP sockets (fd -> inode ->
 * /proc/net/tcp{,6} entry), so listening ports and connections opened before
 * the tracer attached are known. All functions take an optional proc root
 * (NULL = "/proc") so tests can point them at a fake tree.
 */
#ifndef TG_PROCSCAN_H
#define TG_PROCSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TG_TCP_ESTABLISHED 1
#define TG_TCP_LISTEN 10

struct tg_sock {
	int fd;
	uint64_t inode;
	int state;  /* TG_TCP_* (kernel TCP state number) */
	int family; /* AF_INET or AF_INET6 */
	uint8_t laddr[16];
	uint16_t lport;
	uint8_t raddr[16];
	uint16_t rport;
};

/* True when the command line of pid runs uvicorn: `python -m uvicorn`, the
 * `uvicorn` script, gunicorn with a uvicorn worker class, or a uvicorn worker
 * spawned by `--workers` (multiprocessing's spawn child whose parent is one). */
bool tg_procscan__is_uvicorn(const char *proc_root, pid_t pid);

/* Fill pids (cap entries) with every process running uvicorn, excluding the
 * calling process. Returns how many were found (may exceed cap) or -errno. */
int tg_procscan__find_uvicorn(const char *proc_root, pid_t *pids, size_t cap);

/* The command line of pid with arguments joined by spaces, in out (cap).
 * Returns 0 or -errno (-ESRCH: no such process). */
int tg_procscan__cmdline(const char *proc_root, pid_t pid, char *out, size_t cap);

/* Whether pid is a CPython interpreter, and its version "3.11" in ver (from
 * the executable or libpython mapping). Returns 1 (CPython), 0 (not), -errno. */
int tg_procscan__python_version(const char *proc_root, pid_t pid, char *ver, size_t cap);

/* The TCP sockets (IPv4 and IPv6) held by pid's fds. *out is malloc'd (caller
 * frees), *n entries. Returns 0 or -errno. */
int tg_procscan__sockets(const char *proc_root, pid_t pid, struct tg_sock **out, size_t *n);

/* Format addr:port as "1.2.3.4:80" or "[::1]:80" into out. */
void tg_procscan__format_peer(int family, const uint8_t addr[16], uint16_t port, char *out,
			      size_t cap);

/* GET /openapi.json from 127.0.0.1 (or ::1 for family AF_INET6) at port,
 * within timeout_ms. On success *body is malloc'd (caller frees), *len set,
 * and *local_port is the port the request came from (the tracer's own
 * connection, to be ignored by the pipeline). Returns 0, -ENOENT for a non-200
 * answer, or -errno. */
int tg_procscan__fetch_openapi(int family, uint16_t port, int timeout_ms, char **body, size_t *len,
			       uint16_t *local_port);

#endif
