/* SPDX-License-Identifier: MIT */
/*
 * The kernel side's userspace half: opens, configures, loads and attaches the
 * BPF programs (bpf/io.bpf.c) with libbpf, keeps the set of traced processes
 * in the BPF map, and hands every event from the ring buffer to a callback.
 * This is the only file that talks to libbpf.
 */
#ifndef TG_TRACER_H
#define TG_TRACER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tg_tracer_cfg {
	uint32_t capture_bytes; /* head bytes copied per server read/write (<= TG_HEAD_MAX), default
				   1024 */
	uint32_t ring_bytes;	/* ring buffer size, power of two, default 16 MiB */
	uint32_t wakeup_bytes;	/* wake the consumer when this much is pending, default ring/8 */
	int follow_children;	/* trace processes forked by traced processes (default 1) */
	/* CPU sampling: perf_event software cpu-clock samples per second and CPU
	 * (frequency mode) of traced threads, each a TG_EV_SAMPLE with its Python
	 * stack when the process runs CPython. 0 = off (default); clamped to
	 * 1..TG_TRACER_MAX_SAMPLE_HZ. */
	uint32_t sample_hz;
	/* PostgreSQL server ports: client connections to them (connected after
	 * attach, or found established in /proc by add_pid) are followed with
	 * pg_capture_bytes of each read/write. npg_ports == 0: {5432}. At most
	 * TG_TRACER_MAX_PG_PORTS. */
	uint16_t pg_ports[16];
	size_t npg_ports;
	uint32_t pg_capture_bytes; /* 0: TG_HEAD_MAX (16 KiB; clamped to it) */
	/* Per-task accounting (bpf/task.bpf.h): uprobes on CPython's Context
	 * entry and creation, gc USDT probes, attached to every CPython target
	 * at add_pid (and its forks and execs). Set to turn them off; the
	 * scheduler and heap-growth programs are then not loaded either and
	 * every event's hdr.oncpu_ns is 0 (nothing reads them without the
	 * probes). */
	int no_task_probes;
};

#define TG_TRACER_MAX_PG_PORTS 16
#define TG_TRACER_DEFAULT_PG_PORT 5432

#define TG_TRACER_DEFAULT_SAMPLE_HZ 99
#define TG_TRACER_MAX_SAMPLE_HZ 999

struct tg_tracer_counters {
	uint64_t emitted; /* events written to the ring buffer, all CPUs */
	uint64_t dropped; /* events lost because the ring buffer was full */
	/* switch-ins of a traced thread whose on-CPU bookkeeping failed (BPF task
	 * storage unavailable): its CPU is undercounted until its next event */
	uint64_t oncpu_misses;
};

/* Called for every event, in ring buffer order, with the event's bytes
 * (struct tg_ev_hdr first; size == hdr.size). Return 0 to continue. */
typedef int (*tg_tracer_event_fn)(void *ctx, const void *ev, size_t size);

struct tg_tracer;

/* Check for BPF support, open and load the programs with cfg (NULL: defaults)
 * and attach them. Mounts tracefs when it is missing and we are root. On
 * failure returns NULL, sets errno, and writes what to do into err. */
struct tg_tracer *tg_tracer__open(const struct tg_tracer_cfg *cfg, tg_tracer_event_fn fn, void *ctx,
				  char *err, size_t errlen);

/* Start tracing process pid (all its threads): add it to the traced set,
 * register its CPython runtime for stack sampling when it runs CPython (see
 * pyruntime.h; an unsupported version is logged and sampled without stacks;
 * processes that exec or fork while traced are re-detected), and announce its TCP connections that
 * are already established (found in /proc), which are followed from their next byte: a TG_EV_CONN
 * event with origin TG_ORIGIN_EXISTING is passed to the callback for each. Returns 0 or -errno
 * (-ESRCH: no such process). */
int tg_tracer__add_pid(struct tg_tracer *t, pid_t pid);

/* What per-task accounting has for pid: TG_TASK_PROBES_* bits (0: none,
 * e.g. not CPython, probes off or failed; the log says why). */
#define TG_TASK_PROBES_ENTER 0x1    /* Context entries are seen (uvloop at least) */
#define TG_TASK_PROBES_ASYNCIO 0x2  /* ... including asyncio's Context.run */
#define TG_TASK_PROBES_LINK 0x4	    /* Context creation is seen (child tasks, thread pool) */
#define TG_TASK_PROBES_GC 0x8	    /* gc__start/gc__done */
#define TG_TASK_PROBES_UVWRITE 0x10 /* uvloop's queued PostgreSQL writes keep their task */
int tg_tracer__task_probes(const struct tg_tracer *t, pid_t pid);

/* The descriptor of the BPF map called name (bpf/io.bpf.c), or -errno: for
 * the kernel tests, which read what the programs keep (tests/unit/
 * test_tstate.c). Owned by the tracer. */
int tg_tracer__map_fd(const struct tg_tracer *t, const char *name);

/* Stop tracing pid. Returns 0 or -errno. */
int tg_tracer__remove_pid(struct tg_tracer *t, pid_t pid);

/* Wait up to timeout_ms for events and pass every pending one to the
 * callback (consuming also when no wake-up came, so the ring never fills
 * unnoticed). Returns the number of events handled or -errno. */
int tg_tracer__poll(struct tg_tracer *t, int timeout_ms);

/* Sum of the per-CPU emitted/dropped counters. */
void tg_tracer__counters(struct tg_tracer *t, struct tg_tracer_counters *out);

/* Detach and free everything. Accepts NULL. */
void tg_tracer__close(struct tg_tracer *t);

#endif
