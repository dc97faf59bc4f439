/* SPDX-License-Identifier: MIT */
/*
 * What the BPF programs keep per thread (the task storage tstates, read and
 * written here through a pidfd, with bpf/tstate.h's layout) and per process,
 * checked on the real programs (needs root; skipped otherwise). The test
 * process traces itself or a child:
 *  - heap_bytes counts readable/writable anonymous mappings, not PROT_NONE
 *    reservations, and counts PROT_NONE memory that mprotect opens, once;
 *  - exec forgets the thread's Context, Python and TLS caches and the
 *    process's last brk (a new image's brk is elsewhere: it was counted as
 *    growth);
 *  - exec closes the followed sockets made with O_CLOEXEC (the tracer hands
 *    a TG_EV_CLOSE for each and forgets them), not the others.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "timeglass/events.h"
#include "tracer.h"
#include "tstate.h"

#define MIB (1ULL << 20)

static int on_event(void *ctx, const void *ev, size_t size)
{
	(void)ctx;
	(void)ev;
	(void)size;
	return 0;
}

static int need_root(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	return 0;
}

/* Per-task accounting on (the heap programs are loaded only then); this
 * process runs no CPython, so no Context probes are placed in it. */
static struct tg_tracer *open_tracer(void)
{
	struct tg_tracer_cfg cfg = {0};
	char err[512];
	struct tg_tracer *tr = tg_tracer__open(&cfg, on_event, NULL, err, sizeof(err));

	if (!tr)
		fail_msg("tracer: %s", err);
	return tr;
}

static int pidfd(pid_t pid, unsigned int flags)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, flags);

	assert_true(fd >= 0);
	return fd;
}

static void get_state(struct tg_tracer *tr, int pfd, struct tstate *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(bpf_map_lookup_elem(tg_tracer__map_fd(tr, "tstates"), &pfd, s), 0);
}

static void put_state(struct tg_tracer *tr, int pfd, const struct tstate *s)
{
	assert_int_equal(bpf_map_update_elem(tg_tracer__map_fd(tr, "tstates"), &pfd, s, BPF_ANY),
			 0);
}

/* Wait (up to 2 s) until the forked child pid runs /bin/sleep: its exec is done. */
static void wait_exec_sleep(pid_t pid)
{
	char path[64], comm[32] = "";

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	for (int i = 0; i < 200 && strcmp(comm, "sleep\n"); i++) {
		FILE *f;

		usleep(10000);
		f = fopen(path, "r");
		assert_non_null(f);
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
	}
	assert_string_equal(comm, "sleep\n");
}

static __u64 heap_now(struct tg_tracer *tr, int self)
{
	struct tstate s;

	get_state(tr, self, &s);
	return s.heap_bytes;
}

static void test_heap_counts_accessible_anonymous_memory(void **state)
{
	struct tg_tracer *tr = open_tracer();
	__u64 h0, h1, h2, h3, h4, h5;
	int self;
	char *resv, *rw;

	(void)state;
	assert_int_equal(tg_tracer__add_pid(tr, getpid()), 0);
	usleep(20000); /* switched out and in since: the thread has its storage */
	self = pidfd(getpid(), 0);
	h0 = heap_now(tr, self);
	/* A reservation, as glibc makes for a thread's malloc heap. */
	resv = mmap(NULL, 64 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(resv != MAP_FAILED);
	h1 = heap_now(tr, self);
	/* ... opened piecewise as the heap grows. */
	assert_int_equal(mprotect(resv, MIB, PROT_READ | PROT_WRITE), 0);
	h2 = heap_now(tr, self);
	assert_int_equal(mprotect(resv, MIB, PROT_READ), 0); /* open already */
	h3 = heap_now(tr, self);
	rw = mmap(NULL, 2 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(rw != MAP_FAILED);
	h4 = heap_now(tr, self);
	/* Another piece, at the reservation's end (the mapping's part is counted
	 * up to the mapping's end). */
	assert_int_equal(mprotect(resv + 63 * MIB, MIB, PROT_READ | PROT_WRITE), 0);
	h5 = heap_now(tr, self);
	print_message("reserve +%llu, open 1 MiB +%llu, again +%llu, map 2 MiB +%llu, open 1 MiB "
		      "+%llu\n",
		      (unsigned long long)(h1 - h0), (unsigned long long)(h2 - h1),
		      (unsigned long long)(h3 - h2), (unsigned long long)(h4 - h3),
		      (unsigned long long)(h5 - h4));
	munmap(resv, 64 * MIB);
	munmap(rw, 2 * MIB);
	close(self);
	tg_tracer__close(tr);
	assert_int_equal(h1 - h0, 0);
	assert_int_equal(h2 - h1, MIB);
	assert_int_equal(h3 - h2, 0);
	assert_int_equal(h4 - h3, 2 * MIB);
	assert_int_equal(h5 - h4, MIB);
}

static void test_exec_forgets_the_old_image(void **state)
{
	struct tg_tracer *tr = open_tracer();
	int go[2], cfd, brk_fd = tg_tracer__map_fd(tr, "proc_brk");
	__u64 low_brk = 4096, v;
	__u32 key;
	struct tstate s;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		char c;

		close(go[1]);
		if (read(go[0], &c, 1) == 1)
			execl("/bin/sleep", "sleep", "5", (char *)NULL);
		_exit(127);
	}
	close(go[0]);
	assert_int_equal(tg_tracer__add_pid(tr, pid), 0);
	cfd = pidfd(pid, 0);
	/* What the old image left: a Context, cached Python thread state and
	 * offsets, a GC and an SSL call in progress, its brk (far below where
	 * the new image's will be). */
	memset(&s, 0, sizeof(s));
	s.traced = 1;
	s.cur_ctx = 0x7f0000001000;
	s.parked = 1;
	s.gc_start_ns = 1;
	s.gc_ctx = 0x7f0000001000;
	s.tls_ssl = 0x7f0000003000;
	s.tls_in_fd1 = 8;
	s.py_ts = 0x7f0000004000;
	s.py_ident = (__u64)pid;
	s.py_tid_off = 8;
	s.py_ctx_off = 16;
	s.py_epoch = 1;
	s.oncpu_ns = 123456;
	put_state(tr, cfd, &s);
	key = (__u32)pid;
	assert_int_equal(bpf_map_update_elem(brk_fd, &key, &low_brk, BPF_ANY), 0);
	assert_int_equal(write(go[1], "x", 1), 1);
	wait_exec_sleep(pid);
	usleep(100000); /* the loader's brk calls */
	tg_tracer__poll(tr, 0);
	get_state(tr, cfd, &s);
	v = 0;
	bpf_map_lookup_elem(brk_fd, &key, &v);
	print_message("after exec: cur_ctx 0x%llx py_ts 0x%llx heap %llu brk 0x%llx\n",
		      (unsigned long long)s.cur_ctx, (unsigned long long)s.py_ts,
		      (unsigned long long)s.heap_bytes, (unsigned long long)v);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(cfd);
	close(go[1]);
	tg_tracer__close(tr);
	assert_int_equal(s.cur_ctx, 0);
	assert_int_equal(s.parked, 0);
	assert_int_equal(s.gc_start_ns, 0);
	assert_int_equal(s.tls_ssl, 0);
	assert_int_equal(s.tls_in_fd1, 0);
	assert_int_equal(s.py_ts, 0);
	assert_true(s.oncpu_ns >= 123456); /* counters go on */
	/* The new image's brk() calls start from its own break. */
	assert_true(s.heap_bytes < 64 * MIB);
	assert_true(v > low_brk);
}

/* The TG_EV_CLOSE events handed to the callback. */
struct closes {
	int n;
	int32_t fd[8];
};

static int on_close_event(void *ctx, const void *ev, size_t size)
{
	const struct tg_ev_hdr *h = ev;
	struct closes *c = ctx;

	if (h->type == TG_EV_CLOSE && size >= sizeof(struct tg_ev_close) && c->n < 8)
		c->fd[c->n++] = ((const struct tg_ev_close *)ev)->fd;
	return 0;
}

/* A socket of this process connected to 127.0.0.1:port; cloexec or not. */
static int connect_to(uint16_t port, bool cloexec)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int s = socket(AF_INET, SOCK_STREAM | (cloexec ? SOCK_CLOEXEC : 0), 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)))
		_exit(126);
	return s;
}

static void test_exec_closes_cloexec_sockets(void **state)
{
	struct tg_tracer_cfg cfg = {.no_task_probes = 1};
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	struct closes seen = {0};
	struct tg_tracer *tr;
	int lfd, ready[2], go[2], fds[2] = {-1, -1}, conns_fd, a1, a2;
	struct {
		uint32_t tgid;
		int32_t fd;
	} key;
	uint8_t val[64];
	char err[512];
	pid_t pid;

	(void)state;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		char c;

		close(go[1]);
		close(ready[0]);
		fds[0] = connect_to(ntohs(a.sin_port), true);
		fds[1] = connect_to(ntohs(a.sin_port), false);
		if (write(ready[1], fds, sizeof(fds)) != sizeof(fds))
			_exit(125);
		if (read(go[0], &c, 1) == 1)
			execl("/bin/sleep", "sleep", "5", (char *)NULL);
		_exit(127);
	}
	close(go[0]);
	close(ready[1]);
	assert_int_equal(read(ready[0], fds, sizeof(fds)), sizeof(fds));
	a1 = accept(lfd, NULL, NULL);
	a2 = accept(lfd, NULL, NULL);
	tr = tg_tracer__open(&cfg, on_close_event, &seen, err, sizeof(err));
	if (!tr)
		fail_msg("tracer: %s", err);
	conns_fd = tg_tracer__map_fd(tr, "conns");
	/* Found established at attach: both followed (client connections). */
	assert_int_equal(tg_tracer__add_pid(tr, pid), 0);
	key.tgid = (uint32_t)pid;
	for (int i = 0; i < 2; i++) {
		key.fd = fds[i];
		assert_int_equal(bpf_map_lookup_elem(conns_fd, &key, val), 0);
	}
	assert_int_equal(write(go[1], "x", 1), 1);
	wait_exec_sleep(pid);
	for (int i = 0; i < 20 && !seen.n; i++)
		tg_tracer__poll(tr, 50);
	key.fd = fds[0];
	assert_int_not_equal(bpf_map_lookup_elem(conns_fd, &key, val), 0);
	key.fd = fds[1];
	assert_int_equal(bpf_map_lookup_elem(conns_fd, &key, val), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	tg_tracer__close(tr);
	close(a1);
	close(a2);
	close(lfd);
	close(go[1]);
	close(ready[0]);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.fd[0], fds[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_heap_counts_accessible_anonymous_memory, need_root),
	    cmocka_unit_test_setup(test_exec_forgets_the_old_image, need_root),
	    cmocka_unit_test_setup(test_exec_closes_cloexec_sockets, need_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
