/* SPDX-License-Identifier: MIT */
/*
 * What the BPF programs keep per thread (the task storage tstates, read and
 * written here through a pidfd, with bpf/tstate.h's layout) and per process,
 * checked on the real programs (needs root; skipped otherwise). The test
 * process traces itself or a child:
 *  - the wake hint is the waker's Context even when the wakee's CPU is idle
 *    (wake list: sched_wakeup runs there, not in the waker);
 *  - heap_bytes counts readable/writable anonymous mappings, not PROT_NONE
 *    reservations, and counts PROT_NONE memory that mprotect opens, once;
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
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tracer.h"
#include "tstate.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

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

static struct tg_tracer *open_tracer(void)
{
	struct tg_tracer_cfg cfg = {.no_task_probes = 1};
	char err[512];
	struct tg_tracer *tr = tg_tracer__open(&cfg, on_event, NULL, err, sizeof(err));

	if (!tr)
		fail_msg("tracer: %s", err);
	return tr;
}

static int pidfd(pid_t tid, unsigned int flags)
{
	int fd = (int)syscall(SYS_pidfd_open, tid, flags);

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

/* Run the calling thread on cpu only (-1: on every CPU). */
static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (cpu < 0 || i == cpu)
			CPU_SET(i, &set);
	assert_int_equal(sched_setaffinity(0, sizeof(set), &set), 0);
}

struct sleeper {
	int pipe[2];
	pid_t tid;
	int ready, woke;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *w = arg;
	char c;

	pin(1);
	w->tid = (pid_t)syscall(SYS_gettid);
	__atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
	/* CPU 1 has nothing else of ours: it idles while this sleeps. */
	if (read(w->pipe[0], &c, 1) != 1)
		return arg;
	__atomic_store_n(&w->woke, 1, __ATOMIC_RELEASE);
	/* Alive (its storage with it) until the test has read it. */
	return read(w->pipe[0], &c, 1) == 1 ? NULL : arg;
}

static void test_wake_hint_is_the_wakers_context(void **state)
{
	const __u64 ctx = 0x7f0000c0ffe0;
	struct tg_tracer *tr;
	struct sleeper w = {0};
	struct tstate s;
	pthread_t th;
	void *ret;
	int self, wfd, n = 0;

	(void)state;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		skip();
	tr = open_tracer();
	assert_int_equal(tg_tracer__add_pid(tr, getpid()), 0);
	pin(0);
	assert_int_equal(pipe(w.pipe), 0);
	assert_int_equal(pthread_create(&th, NULL, sleeper_main, &w), 0);
	while (!__atomic_load_n(&w.ready, __ATOMIC_ACQUIRE))
		usleep(1000);
	usleep(50000); /* asleep in read() by now */
	wfd = pidfd(w.tid, PIDFD_THREAD);
	get_state(tr, wfd, &s);
	assert_int_equal(s.traced, 1);
	assert_int_equal(s.wake_ctx, 0);
	/* This thread (the process's first: its pidfd is the process's) runs
	 * in a Context, as the event loop would. */
	self = pidfd(getpid(), 0);
	get_state(tr, self, &s);
	s.cur_ctx = ctx;
	s.traced = 1;
	put_state(tr, self, &s);
	assert_int_equal(write(w.pipe[1], "x", 1), 1);
	while (!__atomic_load_n(&w.woke, __ATOMIC_ACQUIRE))
		usleep(1000);
	get_state(tr, wfd, &s);
	n = s.wake_ctx == ctx;
	print_message("wake_ctx 0x%llx\n", (unsigned long long)s.wake_ctx);
	assert_int_equal(write(w.pipe[1], "x", 1), 1);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_null(ret);
	get_state(tr, self, &s);
	s.cur_ctx = 0;
	put_state(tr, self, &s);
	close(wfd);
	close(self);
	close(w.pipe[0]);
	close(w.pipe[1]);
	pin(-1);
	tg_tracer__close(tr);
	assert_int_equal(n, 1);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_wake_hint_is_the_wakers_context, need_root),
	    cmocka_unit_test_setup(test_heap_counts_accessible_anonymous_memory, need_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
