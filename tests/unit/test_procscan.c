// SPDX-License-Identifier: MIT
/*
 * procscan on fake /proc trees built in a temp dir, on this process's own
 * sockets in the real /proc, and fetch_openapi against a tiny HTTP server
 * running in a thread of the test.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "procscan.h"

/* ---- fake /proc trees ---- */

static char root[64];

static void put_file(const char *rel, const char *data, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void put_link(const char *rel, const char *target)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(symlink(target, path), 0);
}

/* A process: cmdline given as "arg\0arg\0" (len bytes), status with PPid. */
static void mkproc(int pid, int ppid, const char *cmdline, size_t len)
{
	char rel[128], status[128];
	int n;

	snprintf(rel, sizeof(rel), "%s/%d", root, pid);
	assert_int_equal(mkdir(rel, 0755), 0);
	snprintf(rel, sizeof(rel), "%s/%d/fd", root, pid);
	assert_int_equal(mkdir(rel, 0755), 0);
	snprintf(rel, sizeof(rel), "%s/%d/net", root, pid);
	assert_int_equal(mkdir(rel, 0755), 0);
	snprintf(rel, sizeof(rel), "%d/cmdline", pid);
	put_file(rel, cmdline, len);
	n = snprintf(status, sizeof(status),
		     "Name:\tx\nState:\tS (sleeping)\nTgid:\t%d\nPid:\t%d\nPPid:\t%d\n", pid, pid,
		     ppid);
	snprintf(rel, sizeof(rel), "%d/status", pid);
	put_file(rel, status, (size_t)n);
}

#define MKPROC(pid, ppid, lit) mkproc(pid, ppid, lit, sizeof(lit) - 1)

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup_tree(void **state)
{
	(void)state;
	strcpy(root, "/tmp/tg_procscan_XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int teardown_tree(void **state)
{
	(void)state;
	return nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#define SPAWN_CHILD                                                                                \
	"/usr/bin/python3\0-B\0-c\0from multiprocessing.spawn import spawn_main; "                 \
	"spawn_main(tracker_fd=5, pipe_handle=7)\0--multiprocessing-fork\0"
#define RESOURCE_TRACKER                                                                           \
	"/usr/bin/python3\0-B\0-c\0from multiprocessing.resource_tracker import main;main(4)\0"

static void test_is_uvicorn(void **state)
{
	(void)state;
	/* the forms seen on this machine (ps of `python3 -m uvicorn --workers 2`) */
	MKPROC(100, 1, "/usr/bin/python3\0-m\0uvicorn\0app:app\0--workers\0002\0--port\00018011\0");
	MKPROC(101, 100, RESOURCE_TRACKER);
	MKPROC(102, 100, SPAWN_CHILD);
	MKPROC(103, 1, SPAWN_CHILD);   /* a spawn child of something else */
	MKPROC(104, 104, SPAWN_CHILD); /* its own parent: no endless loop */
	MKPROC(105, 102, SPAWN_CHILD); /* grandchild of uvicorn (e.g. --reload + workers) */
	MKPROC(110, 1, "/usr/bin/python3.11\0-B\0-X\0dev\0-m\0uvicorn\0app:app\0");
	MKPROC(111, 1, "python3\0-muvicorn\0app:app\0");
	MKPROC(112, 1, "/usr/local/bin/uvicorn\0app:app\0");
	MKPROC(113, 1, "/usr/bin/python3\0/usr/bin/uvicorn\0app:app\0");
	MKPROC(114, 1, "gunicorn\0-k\0uvicorn.workers.UvicornWorker\0app:app\0");
	MKPROC(
	    115, 1,
	    "/usr/bin/python3\0/usr/bin/gunicorn\0--worker-class=uvicorn.workers.UvicornWorker\0");
	MKPROC(
	    116, 1,
	    "/usr/bin/python3\0-m\0gunicorn\0--worker-class\0uvicorn.workers.UvicornH11Worker\0");
	MKPROC(117, 1, "gunicorn\0-kuvicorn.workers.UvicornWorker\0app:app\0");
	/* not uvicorn */
	MKPROC(120, 1, "gunicorn\0app:app\0");
	MKPROC(121, 1, "gunicorn\0-k\0sync\0app:app\0");
	MKPROC(122, 1, "/usr/bin/python3\0-c\0import uvicorn\0-m\0uvicorn\0");
	MKPROC(123, 1, "/usr/bin/python3\0app.py\0-m\0uvicorn\0");
	MKPROC(124, 1, "/usr/bin/python3\0-m\0http.server\0");
	MKPROC(125, 1, "/bin/bash\0uvicorn\0");
	MKPROC(126, 1, "/usr/bin/uvicornx\0");
	MKPROC(127, 2, "");				 /* kernel thread */
	MKPROC(128, 1, "/usr/bin/python3\0-m\0uvicorn"); /* no final NUL */

	assert_true(tg_procscan__is_uvicorn(root, 100));
	assert_false(tg_procscan__is_uvicorn(root, 101));
	assert_true(tg_procscan__is_uvicorn(root, 102));
	assert_false(tg_procscan__is_uvicorn(root, 103));
	assert_false(tg_procscan__is_uvicorn(root, 104));
	assert_true(tg_procscan__is_uvicorn(root, 105));
	for (int pid = 110; pid <= 117; pid++)
		if (!tg_procscan__is_uvicorn(root, pid))
			fail_msg("pid %d should be uvicorn", pid);
	for (int pid = 120; pid <= 127; pid++)
		if (tg_procscan__is_uvicorn(root, pid))
			fail_msg("pid %d should not be uvicorn", pid);
	assert_true(tg_procscan__is_uvicorn(root, 128));
	assert_false(tg_procscan__is_uvicorn(root, 999));
	assert_false(tg_procscan__is_uvicorn(root, 0));
	assert_false(tg_procscan__is_uvicorn("/nonexistent", 100));

	/* find: every match, count beyond cap, non-numeric entries ignored */
	char self[128];
	snprintf(self, sizeof(self), "%s/self", root);
	assert_int_equal(mkdir(self, 0755), 0);
	put_file("version", "x", 1);
	pid_t pids[32], two[2] = {-1, -1};
	int n = tg_procscan__find_uvicorn(root, pids, 32);
	assert_int_equal(n, 3 + 8 + 1); /* 100, 102, 105, 110..117, 128 */
	bool seen[1000] = {false};
	for (int i = 0; i < n; i++) {
		assert_true(pids[i] > 0 && pids[i] < 1000);
		seen[pids[i]] = true;
	}
	assert_true(seen[100] && seen[102] && seen[105] && seen[110] && seen[117] && seen[128]);
	assert_false(seen[101] || seen[103] || seen[104] || seen[120] || seen[127]);
	assert_int_equal(tg_procscan__find_uvicorn(root, two, 2), n);
	assert_true(two[0] > 0 && two[1] > 0);
	assert_int_equal(tg_procscan__find_uvicorn(root, NULL, 0), n);
	assert_int_equal(tg_procscan__find_uvicorn("/nonexistent", pids, 32), -ENOENT);
}

static void test_find_skips_self(void **state)
{
	pid_t pids[4];
	(void)state;

	MKPROC(200, 1, "uvicorn\0app:app\0");
	mkproc((int)getpid(), 1, "uvicorn\0app:app\0", 16);
	assert_int_equal(tg_procscan__find_uvicorn(root, pids, 4), 1);
	assert_int_equal(pids[0], 200);
	assert_true(tg_procscan__is_uvicorn(root, getpid()));
}

static void test_cmdline(void **state)
{
	char out[64], tiny[8], big[4096];
	(void)state;

	MKPROC(300, 1, "/usr/bin/python3\0-m\0uvicorn\0app:app\0");
	MKPROC(301, 2, "");
	assert_int_equal(tg_procscan__cmdline(root, 300, out, sizeof(out)), 0);
	assert_string_equal(out, "/usr/bin/python3 -m uvicorn app:app");
	assert_int_equal(tg_procscan__cmdline(root, 300, tiny, sizeof(tiny)), 0);
	assert_string_equal(tiny, "/usr/bi");
	assert_int_equal(tg_procscan__cmdline(root, 301, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(tg_procscan__cmdline(root, 302, out, sizeof(out)), -ESRCH);
	assert_string_equal(out, "");
	assert_int_equal(tg_procscan__cmdline(root, 300, NULL, 0), -EINVAL);
	/* the real /proc */
	assert_int_equal(tg_procscan__cmdline(NULL, getpid(), big, sizeof(big)), 0);
	assert_non_null(strstr(big, "test_procscan"));
}

static void test_python_version(void **state)
{
	static const char maps[] =
	    "55d0c0000000-55d0c0001000 r--p 00000000 08:01 1234 /usr/bin/uwsgi\n"
	    "7f0000000000-7f0000100000 r-xp 00000000 08:01 5678 "
	    "/usr/lib/x86_64-linux-gnu/libpython3.12.so.1.0\n";
	static const char maps_no[] = "7f0000000000-7f0000100000 r-xp 00000000 08:01 5678 "
				      "/usr/lib/x86_64-linux-gnu/libc.so.6\n";
	char ver[16];
	(void)state;

	MKPROC(400, 1, "python3\0");
	put_link("400/exe", "/usr/bin/python3.11");
	MKPROC(401, 1, "uwsgi\0");
	put_link("401/exe", "/usr/bin/uwsgi");
	put_file("401/maps", maps, sizeof(maps) - 1);
	MKPROC(402, 1, "bash\0");
	put_link("402/exe", "/usr/bin/bash");
	put_file("402/maps", maps_no, sizeof(maps_no) - 1);
	MKPROC(403, 1, "python3\0"); /* no exe link, no maps (e.g. a kernel thread) */
	MKPROC(404, 1, "python\0");
	put_link("404/exe", "/opt/py/bin/python3.13t");

	memset(ver, 0, sizeof(ver));
	assert_int_equal(tg_procscan__python_version(root, 400, ver, sizeof(ver)), 1);
	assert_string_equal(ver, "3.11");
	assert_int_equal(tg_procscan__python_version(root, 401, ver, sizeof(ver)), 1);
	assert_string_equal(ver, "3.12");
	assert_int_equal(tg_procscan__python_version(root, 402, ver, sizeof(ver)), 0);
	assert_int_equal(tg_procscan__python_version(root, 403, ver, sizeof(ver)), 0);
	assert_int_equal(tg_procscan__python_version(root, 404, ver, sizeof(ver)), 1);
	assert_string_equal(ver, "3.13");
	assert_int_equal(tg_procscan__python_version(root, 405, ver, sizeof(ver)), -ESRCH);
	/* the test binary itself is not Python */
	assert_int_equal(tg_procscan__python_version(NULL, getpid(), ver, sizeof(ver)), 0);
}

#define TCP_HEADER                                                                                 \
	"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "      \
	"timeout inode\n"
#define TCP6_HEADER                                                                                \
	"  sl  local_address                         remote_address                        st "    \
	"tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

static const struct tg_sock *by_fd(const struct tg_sock *v, size_t n, int fd)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].fd == fd)
			return &v[i];
	return NULL;
}

static void test_sockets_fake(void **state)
{
	static const char tcp[] = TCP_HEADER
	    "   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0   "
	    "     0 1670 1 000000009e36ee06 100 0 0 10 0\n"
	    "   1: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0   "
	    "     0 100 1 00000000974df527 100 0 0 10 0\n"
	    "   2: 0100007F:1F40 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0   "
	    "     0 101 1 0000000000000000 20 4 30 10 -1\n"
	    "   3: 0100007F:1F40 0100007F:D432 06 00000000:00000000 03:00000E8E 00000000     0   "
	    "     0 0 3 0000000000000000\n"
	    "garbage line\n";
	static const char tcp6[] = TCP6_HEADER
	    "   0: 00000000000000000000000001000000:1F41 00000000000000000000000000000000:0000 "
	    "0A 00000000:00000000 00:00000000 00000000     0        0 200 1 0000000000000000 100 "
	    "0 0 10 0\n"
	    "   1: 0000000000000000FFFF00000100007F:1F41 0000000000000000FFFF00000200007F:C000 "
	    "01 00000000:00000000 00:00000000 00000000     0        0 201 1 0000000000000000 20 "
	    "4 30 10 -1\n";
	struct tg_sock *v = NULL;
	const struct tg_sock *s;
	size_t n = 99;
	char peer[64];
	static const uint8_t lo6[16] = {[15] = 1};
	(void)state;

	MKPROC(500, 1, "uvicorn\0");
	put_file("500/net/tcp", tcp, sizeof(tcp) - 1);
	put_file("500/net/tcp6", tcp6, sizeof(tcp6) - 1);
	put_link("500/fd/0", "/dev/null");
	put_link("500/fd/3", "socket:[100]");
	put_link("500/fd/4", "socket:[101]");
	put_link("500/fd/5", "socket:[200]");
	put_link("500/fd/6", "socket:[201]");
	put_link("500/fd/7", "pipe:[5]");
	put_link("500/fd/8", "socket:[999]"); /* a unix socket: in no TCP table */
	put_link("500/fd/9", "socket:[100]"); /* dup of fd 3 */
	put_link("500/fd/10", "anon_inode:[eventfd]");

	assert_int_equal(tg_procscan__sockets(root, 500, &v, &n), 0);
	assert_int_equal(n, 5);

	s = by_fd(v, n, 3);
	assert_non_null(s);
	assert_int_equal(s->inode, 100);
	assert_int_equal(s->state, TG_TCP_LISTEN);
	assert_int_equal(s->family, AF_INET);
	assert_int_equal(s->lport, 8000);
	assert_int_equal(s->rport, 0);
	tg_procscan__format_peer(s->family, s->laddr, s->lport, peer, sizeof(peer));
	assert_string_equal(peer, "127.0.0.1:8000");

	s = by_fd(v, n, 9);
	assert_non_null(s);
	assert_int_equal(s->inode, 100);
	assert_int_equal(s->state, TG_TCP_LISTEN);

	s = by_fd(v, n, 4);
	assert_non_null(s);
	assert_int_equal(s->state, TG_TCP_ESTABLISHED);
	assert_int_equal(s->rport, 0xD431);
	tg_procscan__format_peer(s->family, s->raddr, s->rport, peer, sizeof(peer));
	assert_string_equal(peer, "127.0.0.1:54321");

	s = by_fd(v, n, 5);
	assert_non_null(s);
	assert_int_equal(s->family, AF_INET6);
	assert_int_equal(s->state, TG_TCP_LISTEN);
	assert_memory_equal(s->laddr, lo6, 16);
	tg_procscan__format_peer(s->family, s->laddr, s->lport, peer, sizeof(peer));
	assert_string_equal(peer, "[::1]:8001");

	s = by_fd(v, n, 6);
	assert_non_null(s);
	assert_int_equal(s->family, AF_INET6);
	assert_int_equal(s->state, TG_TCP_ESTABLISHED);
	tg_procscan__format_peer(s->family, s->raddr, s->rport, peer, sizeof(peer));
	assert_string_equal(peer, "[::ffff:127.0.0.2]:49152");

	assert_null(by_fd(v, n, 8));
	free(v);

	/* no tcp6 table (IPv6 disabled), a process without sockets, a missing process */
	MKPROC(501, 1, "uvicorn\0");
	put_file("501/net/tcp", tcp, sizeof(tcp) - 1);
	put_link("501/fd/3", "socket:[101]");
	assert_int_equal(tg_procscan__sockets(root, 501, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].fd, 3);
	free(v);
	MKPROC(502, 1, "uvicorn\0");
	assert_int_equal(tg_procscan__sockets(root, 502, &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	assert_int_equal(tg_procscan__sockets(root, 503, &v, &n), -ESRCH);
	assert_null(v);
	assert_int_equal(n, 0);
	assert_int_equal(tg_procscan__sockets(root, 500, NULL, &n), -EINVAL);
}

/* ---- real sockets of this process in the real /proc ---- */

static int listen_on(int family, uint16_t *port)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		sl = sizeof(*a);
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 8) ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		close(fd);
		return -1;
	}
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static void test_sockets_real(void **state)
{
	uint16_t p4, p6;
	int l4 = listen_on(AF_INET, &p4), l6 = listen_on(AF_INET6, &p6), c, a;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct tg_sock *v;
	const struct tg_sock *s;
	size_t n;
	char peer[64], want[64];
	(void)state;

	assert_true(l4 >= 0);
	sin.sin_port = htons(p4);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
	a = accept(l4, NULL, NULL);
	assert_true(a >= 0);

	assert_int_equal(tg_procscan__sockets(NULL, getpid(), &v, &n), 0);
	s = by_fd(v, n, l4);
	assert_non_null(s);
	assert_int_equal(s->state, TG_TCP_LISTEN);
	assert_int_equal(s->lport, p4);
	s = by_fd(v, n, a);
	assert_non_null(s);
	assert_int_equal(s->state, TG_TCP_ESTABLISHED);
	assert_int_equal(s->lport, p4);
	s = by_fd(v, n, c);
	assert_non_null(s);
	assert_int_equal(s->rport, p4);
	tg_procscan__format_peer(s->family, s->raddr, s->rport, peer, sizeof(peer));
	snprintf(want, sizeof(want), "127.0.0.1:%u", p4);
	assert_string_equal(peer, want);
	if (l6 >= 0) {
		s = by_fd(v, n, l6);
		assert_non_null(s);
		assert_int_equal(s->family, AF_INET6);
		assert_int_equal(s->state, TG_TCP_LISTEN);
		tg_procscan__format_peer(s->family, s->laddr, s->lport, peer, sizeof(peer));
		snprintf(want, sizeof(want), "[::1]:%u", p6);
		assert_string_equal(peer, want);
		close(l6);
	}
	free(v);
	close(a);
	close(c);
	close(l4);
}

static void test_format_peer(void **state)
{
	uint8_t a[16] = {0};
	char out[64], tiny[6];
	(void)state;

	tg_procscan__format_peer(AF_INET, a, 0, out, sizeof(out));
	assert_string_equal(out, "0.0.0.0:0");
	a[0] = 10, a[1] = 1, a[2] = 2, a[3] = 3;
	tg_procscan__format_peer(AF_INET, a, 65535, out, sizeof(out));
	assert_string_equal(out, "10.1.2.3:65535");
	tg_procscan__format_peer(AF_INET, a, 80, tiny, sizeof(tiny));
	assert_string_equal(tiny, "10.1.");
	memset(a, 0, sizeof(a));
	tg_procscan__format_peer(AF_INET6, a, 443, out, sizeof(out));
	assert_string_equal(out, "[::]:443");
	a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8, a[15] = 0x42;
	tg_procscan__format_peer(AF_INET6, a, 8080, out, sizeof(out));
	assert_string_equal(out, "[2001:db8::42]:8080");
	tg_procscan__format_peer(AF_UNIX, a, 1, out, sizeof(out));
	assert_string_equal(out, "?:1");
	tg_procscan__format_peer(AF_INET, a, 1, NULL, 0); /* must not crash */
}

/* ---- fetch_openapi against an in-test server ---- */

struct server {
	int lfd;
	uint16_t port;
	const char *answer; /* sent in two halves; NULL: never answer */
	bool keep_open;	    /* after answering, wait for the client to close */
	char request[512];
	uint16_t peer_port;
	pthread_t th;
};

static void *serve(void *arg)
{
	struct server *s = arg;
	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer);
	size_t got = 0;
	char sink[64];
	int fd = accept(s->lfd, (struct sockaddr *)&peer, &pl);

	if (fd < 0)
		return NULL;
	s->peer_port = ntohs(peer.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&peer)->sin6_port
							: ((struct sockaddr_in *)&peer)->sin_port);
	while (got + 1 < sizeof(s->request) && !strstr(s->request, "\r\n\r\n")) {
		ssize_t r = recv(fd, s->request + got, sizeof(s->request) - 1 - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
		s->request[got] = '\0';
	}
	if (s->answer) {
		size_t len = strlen(s->answer), half = len / 2;
		send(fd, s->answer, half, MSG_NOSIGNAL);
		usleep(20000);
		send(fd, s->answer + half, len - half, MSG_NOSIGNAL);
	}
	if (!s->answer || s->keep_open)
		while (recv(fd, sink, sizeof(sink), 0) > 0)
			;
	close(fd);
	return NULL;
}

static bool server_start(struct server *s, int family, const char *answer, bool keep_open)
{
	memset(s, 0, sizeof(*s));
	s->lfd = listen_on(family, &s->port);
	if (s->lfd < 0)
		return false;
	s->answer = answer;
	s->keep_open = keep_open;
	assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
	return true;
}

static void server_stop(struct server *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
}

static const char body200[] =
    "{\"openapi\":\"3.0.2\",\"paths\":{\"/items/{item_id}\":{\"get\":{}}}}";

static int fetch(int family, const char *answer, bool keep_open, int timeout_ms, char **body,
		 size_t *len, struct server *srv)
{
	uint16_t lport = 0;
	int err;

	assert_true(server_start(srv, family, answer, keep_open));
	err = tg_procscan__fetch_openapi(family, srv->port, timeout_ms, body, len, &lport);
	server_stop(srv);
	assert_string_equal(srv->request, "GET /openapi.json HTTP/1.0\r\nHost: 127.0.0.1\r\n"
					  "User-Agent: timeglass\r\n\r\n");
	assert_int_equal(lport, srv->peer_port);
	return err;
}

static void test_fetch_200(void **state)
{
	char answer[512], *body = NULL;
	size_t len = 0;
	struct server srv;
	(void)state;

	/* Content-Length, server closes (what uvicorn does) */
	snprintf(answer, sizeof(answer),
		 "HTTP/1.1 200 OK\r\ndate: x\r\nserver: uvicorn\r\ncontent-length: %zu\r\n"
		 "content-type: application/json\r\n\r\n%s",
		 strlen(body200), body200);
	assert_int_equal(fetch(AF_INET, answer, false, 2000, &body, &len, &srv), 0);
	assert_int_equal(len, strlen(body200));
	assert_string_equal(body, body200);
	free(body);

	/* Content-Length, server keeps the connection open: no wait for the timeout */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(fetch(AF_INET, answer, true, 5000, &body, &len, &srv), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 3);
	assert_string_equal(body, body200);
	free(body);

	/* no Content-Length: the body ends at close */
	snprintf(answer, sizeof(answer), "HTTP/1.0 200 OK\r\n\r\n%s", body200);
	assert_int_equal(fetch(AF_INET, answer, false, 2000, &body, &len, &srv), 0);
	assert_string_equal(body, body200);
	free(body);

	/* empty body */
	assert_int_equal(fetch(AF_INET, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, 2000,
			       &body, &len, &srv),
			 0);
	assert_int_equal(len, 0);
	assert_string_equal(body, "");
	free(body);

	/* IPv6 loopback, when there is one */
	uint16_t p;
	int l6 = listen_on(AF_INET6, &p);
	if (l6 >= 0) {
		close(l6);
		snprintf(answer, sizeof(answer), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
			 strlen(body200), body200);
		assert_int_equal(fetch(AF_INET6, answer, false, 2000, &body, &len, &srv), 0);
		assert_string_equal(body, body200);
		free(body);
	}
}

static void test_fetch_errors(void **state)
{
	char *body = (char *)1;
	size_t len = 7;
	struct server srv;
	uint16_t port, lport;
	int fd;
	(void)state;

	assert_int_equal(fetch(AF_INET,
			       "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nNot Found",
			       false, 2000, &body, &len, &srv),
			 -ENOENT);
	assert_null(body);
	assert_int_equal(len, 0);
	assert_int_equal(fetch(AF_INET, "SSH-2.0-OpenSSH_9.2\r\n", false, 2000, &body, &len, &srv),
			 -EPROTO);
	assert_int_equal(fetch(AF_INET, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\":1}",
			       false, 2000, &body, &len, &srv),
			 -EPROTO);
	assert_null(body);
	assert_int_equal(
	    fetch(AF_INET, "HTTP/1.1 200 OK\r\nContent-Le", false, 2000, &body, &len, &srv),
	    -EPROTO);
	assert_int_equal(fetch(AF_INET, "", false, 2000, &body, &len, &srv), -EPROTO);

	/* silent server: timeout */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_true(server_start(&srv, AF_INET, NULL, false));
	assert_int_equal(tg_procscan__fetch_openapi(AF_INET, srv.port, 200, &body, &len, NULL),
			 -ETIMEDOUT);
	server_stop(&srv);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1500);
	assert_null(body);

	/* closed port */
	fd = listen_on(AF_INET, &port);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(tg_procscan__fetch_openapi(AF_INET, port, 1000, &body, &len, &lport),
			 -ECONNREFUSED);
	assert_null(body);

	assert_int_equal(tg_procscan__fetch_openapi(AF_UNIX, port, 1000, &body, &len, NULL),
			 -EINVAL);
	assert_int_equal(tg_procscan__fetch_openapi(AF_INET, port, 1000, NULL, &len, NULL),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_is_uvicorn, setup_tree, teardown_tree),
	    cmocka_unit_test_setup_teardown(test_find_skips_self, setup_tree, teardown_tree),
	    cmocka_unit_test_setup_teardown(test_cmdline, setup_tree, teardown_tree),
	    cmocka_unit_test_setup_teardown(test_python_version, setup_tree, teardown_tree),
	    cmocka_unit_test_setup_teardown(test_sockets_fake, setup_tree, teardown_tree),
	    cmocka_unit_test(test_sockets_real),
	    cmocka_unit_test(test_format_peer),
	    cmocka_unit_test(test_fetch_200),
	    cmocka_unit_test(test_fetch_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
