// SPDX-License-Identifier: MIT
/*
 * /proc scanning: find uvicorn processes, their Python version and their TCP
 * sockets; fetch /openapi.json from a local port.
 *
 * Everything is read relative to a proc root ("/proc" by default) so tests
 * build fake trees. Sockets: each /proc/PID/fd/N that links to "socket:[INO]"
 * is looked up (sorted, bsearch) in /proc/PID/net/tcp and tcp6 — the target's
 * own network namespace, which may differ from ours. The kernel prints each
 * address word as a host-order u32 of network-order bytes, so parsing the hex
 * into a u32 and copying its bytes back yields the address in network order.
 *
 * uvicorn --workers N children are started by multiprocessing's spawn method,
 * so their command line is `python -c "from multiprocessing.spawn import
 * spawn_main; ..." --multiprocessing-fork`; they count as uvicorn when their
 * parent (PPid) does. multiprocessing's resource_tracker child has the same
 * parent but is not a worker.
 */
#include "procscan.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CMDLINE_MAX 32768
#define MAX_ARGS 256
#define OPENAPI_MAX (4u << 20)
#define SPAWN_DEPTH 3

static const char *root_of(const char *proc_root)
{
	return proc_root && *proc_root ? proc_root : "/proc";
}

/* 0 when <root>/<pid> exists, -ESRCH when not, -errno */
static int pid_exists(const char *root, pid_t pid)
{
	char path[4096];
	struct stat st;

	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "%s/%d", root, (int)pid);
	if (stat(path, &st) == 0)
		return 0;
	return errno == ENOENT || errno == ENOTDIR ? -ESRCH : -errno;
}

/* Read <root>/<pid>/<name> into buf (cap - 1 bytes at most, NUL added).
 * Returns the length or -errno (-ESRCH when the process is gone). */
static ssize_t read_proc(const char *root, pid_t pid, const char *name, char *buf, size_t cap)
{
	char path[4096];
	size_t len = 0;
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%d/%s", root, (int)pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		/* saved: pid_exists() may clobber errno; never return 0 (>= 0 is a length) */
		int open_err = errno > 0 ? errno : EIO;

		err = open_err == ENOENT ? pid_exists(root, pid) : 0;
		return err ? err : -(ssize_t)open_err;
	}
	while (len + 1 < cap) {
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			break;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	return err ? err : (ssize_t)len;
}

struct argv {
	char buf[CMDLINE_MAX];
	const char *v[MAX_ARGS];
	int n;
};

static int read_argv(const char *root, pid_t pid, struct argv *a)
{
	ssize_t len = read_proc(root, pid, "cmdline", a->buf, sizeof(a->buf));
	size_t i = 0;

	a->n = 0;
	if (len < 0)
		return (int)len;
	while (i < (size_t)len && a->n < MAX_ARGS) {
		a->v[a->n++] = a->buf + i;
		i += strlen(a->buf + i) + 1;
	}
	return 0;
}

static const char *base(const char *s)
{
	const char *slash = strrchr(s, '/');
	return slash ? slash + 1 : s;
}

static bool is_python(const char *arg)
{
	return !strncmp(base(arg), "python", 6);
}

/* `-m NAME` / `-mNAME` among the interpreter's options */
static bool runs_module(const struct argv *a, const char *name)
{
	for (int i = 1; i < a->n; i++) {
		if (!strcmp(a->v[i], "-m"))
			return i + 1 < a->n && !strcmp(a->v[i + 1], name);
		if (!strncmp(a->v[i], "-m", 2))
			return !strcmp(a->v[i] + 2, name);
		if (!strcmp(a->v[i], "-X") || !strcmp(a->v[i], "-W"))
			i++; /* options with an argument */
		else if (a->v[i][0] != '-' || !strcmp(a->v[i], "-c"))
			return false; /* a script or -c: no -m follows */
	}
	return false;
}

/* argv[0] or argv[1] (the script run by an interpreter) is NAME, or python -m NAME */
static bool runs(const struct argv *a, const char *name)
{
	if (a->n >= 1 && !strcmp(base(a->v[0]), name))
		return true;
	if (a->n >= 2 && is_python(a->v[0]) && !strcmp(base(a->v[1]), name))
		return true;
	return a->n >= 1 && is_python(a->v[0]) && runs_module(a, name);
}

static bool uvicorn_worker_class(const struct argv *a)
{
	for (int i = 1; i < a->n; i++) {
		const char *v = ""; /* the worker class, "" when a->v[i] does not give one */

		if ((!strcmp(a->v[i], "-k") || !strcmp(a->v[i], "--worker-class")) && i + 1 < a->n)
			v = a->v[i + 1];
		else if (!strncmp(a->v[i], "-k", 2) && a->v[i][2] != '\0')
			v = a->v[i] + 2;
		else if (!strncmp(a->v[i], "--worker-class=", 15))
			v = a->v[i] + 15;
		if (!strncmp(v, "uvicorn", 7))
			return true;
	}
	return false;
}

static bool is_spawn_child(const struct argv *a)
{
	bool code = false, fork_flag = false;

	if (a->n < 1 || !is_python(a->v[0]))
		return false;
	for (int i = 1; i < a->n; i++) {
		if (!strcmp(a->v[i], "-c") && i + 1 < a->n &&
		    strstr(a->v[i + 1], "from multiprocessing.spawn import spawn_main"))
			code = true;
		if (!strcmp(a->v[i], "--multiprocessing-fork"))
			fork_flag = true;
	}
	return code && fork_flag;
}

static pid_t parent_of(const char *root, pid_t pid)
{
	char buf[4096], *p;
	long ppid;

	if (read_proc(root, pid, "status", buf, sizeof(buf)) < 0)
		return -1;
	p = strstr(buf, "\nPPid:");
	if (!p)
		return -1;
	ppid = strtol(p + 6, NULL, 10);
	return ppid > 0 ? (pid_t)ppid : -1;
}

static bool is_uvicorn_depth(const char *root, pid_t pid, int depth)
{
	struct argv *a = malloc(sizeof(*a));
	bool yes = false;
	pid_t ppid;

	if (!a || read_argv(root, pid, a) || a->n == 0)
		goto out;
	if (runs(a, "uvicorn")) {
		yes = true;
	} else if (runs(a, "gunicorn")) {
		yes = uvicorn_worker_class(a);
	} else if (depth > 0 && is_spawn_child(a)) {
		ppid = parent_of(root, pid);
		yes = ppid > 0 && ppid != pid && is_uvicorn_depth(root, ppid, depth - 1);
	}
out:
	free(a);
	return yes;
}

bool tg_procscan__is_uvicorn(const char *proc_root, pid_t pid)
{
	return is_uvicorn_depth(root_of(proc_root), pid, SPAWN_DEPTH);
}

int tg_procscan__find_uvicorn(const char *proc_root, pid_t *pids, size_t cap)
{
	const char *root = root_of(proc_root);
	pid_t self = getpid();
	struct dirent *de;
	DIR *d = opendir(root);
	int found = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (!isdigit((unsigned char)de->d_name[0]) || *end || pid <= 0 || pid == self)
			continue;
		/* kernel threads have an empty cmdline and never match */
		if (!tg_procscan__is_uvicorn(root, (pid_t)pid))
			continue;
		if (pids && (size_t)found < cap)
			pids[found] = (pid_t)pid;
		found++;
	}
	closedir(d);
	return found;
}

int tg_procscan__cmdline(const char *proc_root, pid_t pid, char *out, size_t cap)
{
	char *buf;
	ssize_t len;

	if (!out || !cap)
		return -EINVAL;
	out[0] = '\0';
	/* zeroed: clang-analyzer cannot tell that read_proc() errors are < 0 */
	buf = calloc(1, CMDLINE_MAX);
	if (!buf)
		return -ENOMEM;
	len = read_proc(root_of(proc_root), pid, "cmdline", buf, CMDLINE_MAX);
	if (len >= 0) {
		while (len > 0 && buf[len - 1] == '\0')
			len--;
		for (ssize_t i = 0; i < len; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[len] = '\0';
		snprintf(out, cap, "%s", buf);
	}
	free(buf);
	return len < 0 ? (int)len : 0;
}

/* "python3.11..." or "libpython3.11..." at s: copy "3.11" into ver. */
static bool version_at(const char *s, char *ver, size_t cap)
{
	size_t n = 0;

	if (!isdigit((unsigned char)s[0]))
		return false;
	while (isdigit((unsigned char)s[n]))
		n++;
	if (s[n] != '.' || !isdigit((unsigned char)s[n + 1]))
		return false;
	n++;
	while (isdigit((unsigned char)s[n]))
		n++;
	if (ver && cap)
		snprintf(ver, cap, "%.*s", (int)n, s);
	return true;
}

int tg_procscan__python_version(const char *proc_root, pid_t pid, char *ver, size_t cap)
{
	const char *root = root_of(proc_root);
	char path[4096], exe[4096];
	ssize_t len;
	FILE *f;
	int err = pid_exists(root, pid), ret = 0;

	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/%d/exe", root, (int)pid);
	len = readlink(path, exe, sizeof(exe) - 1);
	if (len > 0) {
		exe[len] = '\0';
		if (!strncmp(base(exe), "python", 6) && version_at(base(exe) + 6, ver, cap))
			return 1;
	}
	snprintf(path, sizeof(path), "%s/%d/maps", root, (int)pid);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(exe, sizeof(exe), f)) {
		char *lib = strstr(exe, "/libpython");
		if (lib && version_at(lib + 10, ver, cap)) {
			ret = 1;
			break;
		}
	}
	fclose(f);
	return ret;
}

struct fdino {
	uint64_t inode;
	int fd;
};

static int cmp_fdino(const void *a, const void *b)
{
	const struct fdino *x = a, *y = b;

	if (x->inode != y->inode)
		return x->inode < y->inode ? -1 : 1;
	return x->fd - y->fd;
}

static int parse_addr(const char *hex, int family, uint8_t out[16])
{
	size_t words = family == AF_INET ? 1 : 4;

	memset(out, 0, 16);
	if (strlen(hex) != words * 8)
		return -EINVAL;
	for (size_t i = 0; i < words; i++) {
		char w[9];
		uint32_t v;

		memcpy(w, hex + i * 8, 8);
		w[8] = '\0';
		v = (uint32_t)strtoul(w, NULL, 16);
		memcpy(out + i * 4, &v, 4);
	}
	return 0;
}

struct sockvec {
	struct tg_sock *v;
	size_t n, cap;
};

static int push(struct sockvec *sv, const struct tg_sock *s)
{
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 8;
		struct tg_sock *v = realloc(sv->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		sv->v = v;
		sv->cap = cap;
	}
	sv->v[sv->n++] = *s;
	return 0;
}

/* First entry of the sorted fds with this inode, or NULL. */
static const struct fdino *lower_bound(const struct fdino *fds, size_t n, uint64_t ino)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (fds[mid].inode < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && fds[lo].inode == ino ? &fds[lo] : NULL;
}

/* Add the entries of <root>/<pid>/net/<name> whose inode one of fds holds. */
static int scan_table(const char *root, pid_t pid, const char *name, int family,
		      const struct fdino *fds, size_t nfds, struct sockvec *sv)
{
	char path[4096], line[512];
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/%d/net/%s", root, (int)pid, name);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno; /* no IPv6, or no such table */
	while (!err && fgets(line, sizeof(line), f)) {
		char la[33], ra[33];
		unsigned int lp, rp, st;
		unsigned long long ino;
		struct tg_sock s = {0};
		const struct fdino *hit;

		if (sscanf(line,
			   " %*u: %32[0-9A-Fa-f]:%x %32[0-9A-Fa-f]:%x %x %*s %*s %*s %*u %*u %llu",
			   la, &lp, ra, &rp, &st, &ino) != 6 ||
		    ino == 0)
			continue;
		hit = lower_bound(fds, nfds, ino);
		if (!hit)
			continue;
		if (parse_addr(la, family, s.laddr) || parse_addr(ra, family, s.raddr))
			continue;
		s.inode = ino;
		s.state = (int)st;
		s.family = family;
		s.lport = (uint16_t)lp;
		s.rport = (uint16_t)rp;
		for (; !err && hit < fds + nfds && hit->inode == ino; hit++) {
			s.fd = hit->fd;
			err = push(sv, &s);
		}
	}
	fclose(f);
	return err;
}

int tg_procscan__sockets(const char *proc_root, pid_t pid, struct tg_sock **out, size_t *n)
{
	const char *root = root_of(proc_root);
	struct fdino *fds = NULL;
	struct sockvec sv = {0};
	size_t nfds = 0, capfds = 0;
	char path[4096], link[64];
	struct dirent *de;
	DIR *d = NULL;
	int err;

	if (!out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	err = pid_exists(root, pid);
	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/%d/fd", root, (int)pid);
	d = opendir(path);
	if (!d) {
		err = errno == ENOENT ? -ESRCH : -errno;
		goto out;
	}
	while ((de = readdir(d))) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		unsigned long long ino;
		ssize_t len;

		if (!isdigit((unsigned char)de->d_name[0]) || *end)
			continue;
		len = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (len <= 0)
			continue; /* closed meanwhile */
		link[len] = '\0';
		if (sscanf(link, "socket:[%llu]", &ino) != 1)
			continue;
		if (nfds == capfds) {
			size_t cap = capfds ? capfds * 2 : 16;
			struct fdino *v = realloc(fds, cap * sizeof(*v));
			if (!v) {
				err = -ENOMEM;
				goto out;
			}
			fds = v;
			capfds = cap;
		}
		fds[nfds].inode = ino;
		fds[nfds].fd = (int)fd;
		nfds++;
	}
	if (nfds) {
		qsort(fds, nfds, sizeof(*fds), cmp_fdino);
		err = scan_table(root, pid, "tcp", AF_INET, fds, nfds, &sv);
		if (!err)
			err = scan_table(root, pid, "tcp6", AF_INET6, fds, nfds, &sv);
	}
out:
	if (d)
		closedir(d);
	free(fds);
	if (err) {
		free(sv.v);
		return err;
	}
	*out = sv.v;
	*n = sv.n;
	return 0;
}

void tg_procscan__format_peer(int family, const uint8_t addr[16], uint16_t port, char *out,
			      size_t cap)
{
	char a[INET6_ADDRSTRLEN];

	if (!out || !cap)
		return;
	if (!addr || (family != AF_INET && family != AF_INET6) ||
	    !inet_ntop(family, addr, a, sizeof(a))) {
		snprintf(out, cap, "?:%u", port);
		return;
	}
	if (family == AF_INET6)
		snprintf(out, cap, "[%s]:%u", a, port);
	else
		snprintf(out, cap, "%s:%u", a, port);
}

/* ---- GET /openapi.json ---- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline. 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		struct pollfd p = {.fd = fd, .events = events};
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* Body offset when buf holds a complete 200 answer (*blen: body length),
 * -EAGAIN when more is needed, else -errno. */
static long parse_answer(const char *buf, size_t len, bool eof, size_t *blen)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	const char *cl;
	size_t hlen;
	int status = 0;

	if (!end)
		return eof ? -EPROTO : -EAGAIN;
	hlen = (size_t)(end - buf) + 4;
	if (sscanf(buf, "HTTP/1.%*1[01] %3d", &status) != 1)
		return -EPROTO;
	if (status != 200)
		return -ENOENT;
	/* Content-Length, when present, says when the body is complete */
	for (cl = buf; (cl = memmem(cl, hlen - (size_t)(cl - buf), "\r\n", 2)); cl += 2) {
		if (!strncasecmp(cl + 2, "content-length:", 15)) {
			unsigned long long want = strtoull(cl + 17, NULL, 10);
			if (len - hlen >= want) {
				*blen = (size_t)want;
				return (long)hlen;
			}
			return eof ? -EPROTO : -EAGAIN;
		}
		if (!strncasecmp(cl + 2, "transfer-encoding:", 18))
			return -EPROTO; /* not sent to HTTP/1.0 requests */
	}
	*blen = len - hlen;
	return eof ? (long)hlen : -EAGAIN;
}

int tg_procscan__fetch_openapi(int family, uint16_t port, int timeout_ms, char **body, size_t *len,
			       uint16_t *local_port)
{
	static const char req[] = "GET /openapi.json HTTP/1.0\r\nHost: 127.0.0.1\r\n"
				  "User-Agent: timeglass\r\n\r\n";
	long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	size_t got = 0, cap = 0, sent = 0;
	char *buf = NULL;
	long off = -EAGAIN;
	int fd, err = 0;

	if (!body || !len || (family != AF_INET && family != AF_INET6))
		return -EINVAL;
	*body = NULL;
	*len = 0;
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = in6addr_loopback;
		sl = sizeof(*sin6);
	}
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		int soerr = 0;
		socklen_t el = sizeof(soerr);

		if (errno != EINPROGRESS) {
			err = -errno;
			goto out;
		}
		err = wait_fd(fd, POLLOUT, deadline);
		if (err)
			goto out;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) < 0 || soerr) {
			err = soerr ? -soerr : -errno;
			goto out;
		}
	}
	if (local_port) {
		union {
			struct sockaddr sa;
			struct sockaddr_in in;
			struct sockaddr_in6 in6;
			struct sockaddr_storage ss;
		} me = {0};
		socklen_t ml = sizeof(me);

		if (getsockname(fd, &me.sa, &ml) < 0) {
			err = -errno;
			goto out;
		}
		*local_port =
		    ntohs(me.sa.sa_family == AF_INET6 ? me.in6.sin6_port : me.in.sin_port);
	}
	while (sent < sizeof(req) - 1) {
		ssize_t w = send(fd, req + sent, sizeof(req) - 1 - sent, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			err = wait_fd(fd, POLLOUT, deadline);
			if (err)
				goto out;
			continue;
		}
		if (w < 0) {
			err = -errno;
			goto out;
		}
		sent += (size_t)w;
	}
	for (;;) {
		ssize_t r;

		if (got + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 65536;
			char *nb;

			if (cap >= OPENAPI_MAX + 1) {
				err = -EFBIG;
				goto out;
			}
			if (ncap > OPENAPI_MAX + 1)
				ncap = OPENAPI_MAX + 1;
			nb = realloc(buf, ncap);
			if (!nb) {
				err = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		r = recv(fd, buf + got, cap - 1 - got, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			err = wait_fd(fd, POLLIN, deadline);
			if (err)
				goto out;
			continue;
		}
		if (r < 0) {
			err = -errno;
			goto out;
		}
		got += (size_t)r;
		buf[got] = '\0';
		off = parse_answer(buf, got, r == 0, len);
		if (off != -EAGAIN)
			break;
	}
	if (off < 0) {
		err = (int)off;
		goto out;
	}
	memmove(buf, buf + off, *len);
	buf[*len] = '\0';
	*body = buf;
	buf = NULL;
out:
	if (err)
		*len = 0;
	free(buf);
	close(fd);
	return err;
}
