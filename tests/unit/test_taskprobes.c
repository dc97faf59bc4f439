/* SPDX-License-Identifier: MIT */
/*
 * The per-task accounting probes end to end (needs root; skipped otherwise):
 * runs /usr/bin/python3 on a script that alternates two contextvars Contexts
 * (a burns 20 ms of CPU per turn, b 5 ms), creates a Context inside a, runs
 * a collection inside a, allocates 64 MiB inside a, and hands a 10 ms job to
 * a worker thread that runs it in Context d and then blocks. The script
 * prints the addresses of its Contexts (id() is the address in CPython), so
 * the test checks the kernel side's facts exactly: ENTER events name the
 * right Contexts and the on-CPU time between them is the burn; LINK names
 * the new Context and its parent; GC names the Context it ran in; PARK comes
 * from the worker with its Context after its job's CPU; the allocation shows
 * in heap_bytes and minor faults.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "timeglass/events.h"
#include "tracer.h"

#define PY "/usr/bin/python3"
#define TURNS 10

static const char script[] =
    "import contextvars, gc, queue, sys, threading, time\n"
    "def spin(sec):\n"
    "    end = time.thread_time() + sec\n"
    "    while time.thread_time() < end:\n"
    "        pass\n"
    "a = contextvars.copy_context()\n"
    "b = contextvars.copy_context()\n"
    "d = contextvars.copy_context()\n"
    "q = queue.Queue()\n"
    "def worker():\n"
    "    job = q.get()\n"
    "    d.run(job)\n"
    "    q.get()\n"
    "t = threading.Thread(target=worker, daemon=True)\n"
    "t.start()\n"
    "print(hex(id(a)), hex(id(b)), hex(id(d)), threading.get_native_id(), flush=True)\n"
    "sys.stdin.readline()\n"
    "time.sleep(0.3)\n"
    "for i in range(10):\n"
    "    a.run(spin, 0.020)\n"
    "    b.run(spin, 0.005)\n"
    "c = a.run(contextvars.copy_context)\n"
    "print(hex(id(c)), flush=True)\n"
    "a.run(gc.collect)\n"
    "keep = a.run(lambda: b'x' * (64 << 20))\n"
    "b.run(spin, 0.001)\n"
    "q.put(lambda: spin(0.010))\n"
    "time.sleep(0.3)\n"
    "print('done', flush=True)\n"
    "time.sleep(0.3)\n";

struct seen {
	pid_t pid;
	uint64_t a, b, c, d;
	uint32_t main_tid;
	/* the current slice on the main thread */
	uint64_t cur, cur_oncpu, cur_heap, cur_minflt;
	int enter_a, enter_b, a_ok, b_ok, link_ok, gc_ok, park_ok, heap_ok, bad_ctx;
	uint64_t d_start_oncpu;
	uint32_t d_tid;
	uint64_t links[64];
	int nlinks;
};

static int on_event(void *ctx, const void *ev, size_t size)
{
	struct seen *s = ctx;
	const struct tg_ev_hdr *h = ev;

	if (h->pid != (uint32_t)s->pid)
		return 0;
	if (h->type == TG_EV_GC) {
		const struct tg_ev_gc *g = ev;

		assert_int_equal(size, sizeof(*g));
		if (g->ctx == s->a && g->start_ns && g->start_ns < h->ts_ns && g->generation == 2)
			s->gc_ok++;
		return 0;
	}
	if (h->type != TG_EV_TASK)
		return 0;
	const struct tg_ev_task *t = ev;

	assert_int_equal(size, sizeof(*t));
	/* c's address is printed after the fact: remember the Contexts made in a. */
	if (t->kind == TG_TASK_LINK && t->parent == s->a && s->nlinks < 64)
		s->links[s->nlinks++] = t->ctx;
	if (t->kind == TG_TASK_ENTER && h->tid == s->main_tid) {
		uint64_t cpu = h->oncpu_ns - s->cur_oncpu;

		/* The slice that just ended: a burns 20 ms, b 5 ms per turn. */
		if (s->cur == s->a && cpu >= 19000000 && cpu <= 26000000)
			s->a_ok++;
		if (s->cur == s->b && cpu >= 4800000 && cpu <= 8000000)
			s->b_ok++;
		if (s->cur == s->a && t->heap_bytes - s->cur_heap >= (64u << 20) &&
		    t->minflt - s->cur_minflt >= (64u << 20) / 4096 / 2)
			s->heap_ok++;
		s->enter_a += t->ctx == s->a;
		s->enter_b += t->ctx == s->b;
		s->cur = t->ctx;
		s->cur_oncpu = h->oncpu_ns;
		s->cur_heap = t->heap_bytes;
		s->cur_minflt = t->minflt;
	}
	if (t->kind == TG_TASK_ENTER && t->ctx == s->d) {
		s->d_tid = h->tid;
		s->d_start_oncpu = h->oncpu_ns;
	}
	/* The worker blocks in queue.get(): a futex. */
	if (t->kind == TG_TASK_PARK && s->d_tid && h->tid == s->d_tid && t->ctx == s->d &&
	    t->syscall == SYS_futex) {
		uint64_t cpu = h->oncpu_ns - s->d_start_oncpu;

		if (cpu >= 9500000 && cpu <= 14000000)
			s->park_ok++;
	}
	return 0;
}

static void poll_for(struct tg_tracer *tr, int ms)
{
	struct timespec end, now;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_nsec += (long)(ms % 1000) * 1000000L;
	end.tv_sec += ms / 1000 + end.tv_nsec / 1000000000L;
	end.tv_nsec %= 1000000000L;
	do {
		assert_true(tg_tracer__poll(tr, 50) >= 0);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec < end.tv_sec ||
		 (now.tv_sec == end.tv_sec && now.tv_nsec < end.tv_nsec));
}

static void test_task_probes(void **state)
{
	char path[] = "/tmp/tg_taskprobes_XXXXXX.py", err[512], line[256];
	struct tg_tracer_cfg cfg = {0};
	struct seen s = {0};
	struct tg_tracer *tr;
	int fd, in[2], out[2], bits;
	FILE *from;
	pid_t pid;

	(void)state;
	if (geteuid() != 0 || access(PY, X_OK))
		skip();
	fd = mkstemps(path, 3);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, script, sizeof(script) - 1), (ssize_t)sizeof(script) - 1);
	close(fd);
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl(PY, PY, path, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	from = fdopen(out[0], "r");
	assert_non_null(from);
	assert_non_null(fgets(line, sizeof(line), from));
	assert_int_equal(sscanf(line, "%" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNu32, &s.a, &s.b,
				&s.d, &s.main_tid),
			 4);
	s.pid = pid;
	tr = tg_tracer__open(&cfg, on_event, &s, err, sizeof(err));
	if (!tr)
		fail_msg("tracer: %s", err);
	assert_int_equal(tg_tracer__add_pid(tr, pid), 0);
	bits = tg_tracer__task_probes(tr, pid);
	assert_int_equal(bits, TG_TASK_PROBES_ENTER | TG_TASK_PROBES_ASYNCIO | TG_TASK_PROBES_LINK |
				   TG_TASK_PROBES_GC);
	assert_int_equal(write(in[1], "go\n", 3), 3);
	poll_for(tr, 600);
	while (fgets(line, sizeof(line), from)) {
		if (!strncmp(line, "0x", 2))
			assert_int_equal(sscanf(line, "%" SCNx64, &s.c), 1);
		poll_for(tr, 50);
		if (!strncmp(line, "done", 4))
			break;
	}
	poll_for(tr, 300);
	tg_tracer__close(tr);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fclose(from);
	close(in[1]);
	unlink(path);

	print_message("enter a %d b %d, a slices ok %d, b ok %d, link %d gc %d park %d heap %d\n",
		      s.enter_a, s.enter_b, s.a_ok, s.b_ok, s.link_ok, s.gc_ok, s.park_ok,
		      s.heap_ok);
	assert_true(s.c != 0);
	for (int i = 0; i < s.nlinks; i++)
		s.link_ok += s.links[i] == s.c;
	assert_true(s.enter_a >= TURNS && s.enter_b >= TURNS);
	/* Most turns' CPU is the burn; a turn or two may be stretched by the VM. */
	assert_true(s.a_ok >= TURNS - 2);
	assert_true(s.b_ok >= TURNS - 2);
	assert_true(s.link_ok >= 1);
	assert_true(s.gc_ok >= 1);
	assert_int_equal(s.park_ok, 1);
	assert_true(s.heap_ok >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_task_probes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
