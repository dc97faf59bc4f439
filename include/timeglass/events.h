/* SPDX-License-Identifier: MIT */
/*
 * The event ABI shared by the BPF programs (bpf/) and userspace (user/).
 *
 * Every event starts with struct tg_ev_hdr: a type tag, the event's total
 * size in bytes (header included), the process and thread, a CLOCK_MONOTONIC
 * timestamp taken at the syscall's exit, and the thread's cumulative on-CPU
 * time (kept exact by sched_switch), so userspace gets the CPU a thread used
 * between any two of its events by subtraction.
 *
 * The same bytes travel through the ring buffer, into `--record` files and out
 * of `replay`, so the layout is fixed-width and checked with _Static_assert.
 * Changing a layout means bumping TG_ABI_VERSION (recordings carry it).
 *
 * Included from BPF C (where vmlinux.h provides __u8.. types) and from
 * userspace C11 (where <linux/types.h> does).
 */
#ifndef TIMEGLASS_EVENTS_H
#define TIMEGLASS_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define TG_ABI_VERSION                                                                             \
	4 /* 3 added TG_EV_TASK and TG_EV_GC, 4 TG_EV_TLS: recordings of 2, 3 still read */

/* Largest payload head a data event can carry (the capture size tunable is
 * clamped to this). A power of two so BPF can mask lengths. */
#define TG_HEAD_MAX 16384
/* Bytes captured from the end of each buffer (a chunked body ends in 0\r\n\r\n). */
#define TG_TAIL_MAX 16
#define TG_COMM_LEN 16
#define TG_PATH_LEN 256

enum tg_ev_type {
	TG_EV_CONN = 1,	  /* a connection the tracer follows: accepted, connected or pre-existing */
	TG_EV_CLOSE = 2,  /* close() of a followed connection */
	TG_EV_DATA = 3,	  /* bytes read from / written to a followed connection */
	TG_EV_PROC = 4,	  /* process life cycle: fork, exec, exit of a traced process */
	TG_EV_SAMPLE = 5, /* a CPU-clock sample of a traced thread, with its Python stack */
	TG_EV_TASK = 6, /* a thread entered a contextvars Context, created one, or went to sleep */
	TG_EV_GC = 7,	/* a CPython garbage collection finished (gc__start/gc__done USDT) */
	TG_EV_TLS = 8,	/* plaintext an OpenSSL SSL_read/SSL_write moved (PostgreSQL over TLS) */
	/* Events below are produced by userspace and only appear in recordings. */
	TG_EV_TARGET = 64,	/* a process became a target (pid, cmdline) */
	TG_EV_ROUTES = 65,	/* route templates learnt for a process (openapi paths) */
	TG_EV_DROPS = 66,	/* ring buffer drop counter snapshot */
	TG_EV_IGNORE_PEER = 67, /* connections from this peer port are the tracer's own */
	TG_EV_PYSYM = 68,	/* a resolved Python frame (user/profile.h), for replay */
};

/* Direction of a data event, from the traced process's point of view. */
enum tg_dir {
	TG_DIR_IN = 0,	/* the process read these bytes (request on a server socket) */
	TG_DIR_OUT = 1, /* the process wrote these bytes (response on a server socket) */
};

/* What a followed connection is to the traced process. */
enum tg_role {
	TG_ROLE_SERVER = 1, /* accepted: the process is the HTTP server */
	TG_ROLE_CLIENT = 2, /* connected by the process (databases, upstream HTTP) */
};

/* How a followed connection became known. */
enum tg_conn_origin {
	TG_ORIGIN_ACCEPT = 1,
	TG_ORIGIN_CONNECT = 2,
	TG_ORIGIN_EXISTING = 3, /* found in /proc at attach: open before the tracer */
};

/* The syscall behind a data event (for diagnostics and tests). */
enum tg_sys {
	TG_SYS_READ = 1,
	TG_SYS_READV,
	TG_SYS_RECVFROM,
	TG_SYS_RECVMSG,
	TG_SYS_WRITE,
	TG_SYS_WRITEV,
	TG_SYS_SENDTO,
	TG_SYS_SENDMSG,
	TG_SYS_SENDFILE,
};

/* Flags of a data event. */
#define TG_DATA_HEAD_TRUNC 0x1 /* len > head_len: the middle of the buffer was not captured */
#define TG_DATA_IOV_TRUNC                                                                          \
	0x2 /* more iovecs than the program walks: head/tail may be incomplete                     \
	     */
/* The connection is TLS-encrypted (a PostgreSQL SSLRequest answered 'S'): no
 * payload is captured, the plaintext comes as TG_EV_TLS events. */
#define TG_DATA_CIPHER 0x4
/* A client connection to another service (not PostgreSQL): no payload by
 * design, the event says when and how much (network waits). */
#define TG_DATA_TIMING 0x8

enum tg_proc_kind {
	TG_PROC_FORK = 1, /* a traced process forked a new process (child_pid) */
	TG_PROC_EXEC = 2, /* a traced process exec'd (filename) */
	TG_PROC_EXIT = 3, /* a traced process (thread group leader) exited */
};

struct tg_ev_hdr {
	__u16 type; /* enum tg_ev_type */
	__u16 size; /* total size of the event in bytes, this header included */
	__u32 cpu;
	__u32 pid; /* thread group id */
	__u32 tid;
	__u64 ts_ns;	/* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 oncpu_ns; /* cumulative on-CPU time of thread tid since the tracer saw it */
};

struct tg_ev_conn {
	struct tg_ev_hdr hdr;
	__u64 conn_id; /* unique per connection for the whole run; never reused */
	__s32 fd;
	__u8 role;    /* enum tg_role */
	__u8 origin;  /* enum tg_conn_origin */
	__u16 family; /* AF_INET or AF_INET6; 0 when unknown */
	__u16 lport;  /* host byte order */
	__u16 rport;  /* host byte order */
	__u32 pad;
	__u8 laddr[16]; /* IPv4 in the first 4 bytes, network order */
	__u8 raddr[16];
};

struct tg_ev_close {
	struct tg_ev_hdr hdr;
	__u64 conn_id;
	__s32 fd;
	__u32 seq; /* this connection's next event sequence number */
};

struct tg_ev_data {
	struct tg_ev_hdr hdr;
	__u64 conn_id;
	__u32 seq; /* per connection, +1 per data event: a gap means events were lost */
	__s32 fd;
	__u32 len;	/* bytes the syscall transferred (its return value) */
	__u16 head_len; /* bytes of data[] holding the buffer's first bytes */
	__u8 tail_len;	/* bytes of data[] after the head holding the buffer's last bytes */
	__u8 dir;	/* enum tg_dir */
	__u8 sys;	/* enum tg_sys */
	__u8 flags;	/* TG_DATA_* */
	__u16 pad;
	__u32 pad2;
	/* TG_DIR_OUT on a CPython thread: the thread state's current contextvars
	 * Context (the running asyncio task's own, asyncio runs each step inside
	 * it); the same key samples carry as task_ctx. 0: unknown / not Python. */
	__u64 task_key;
	/* head_len bytes, then tail_len bytes. tail_len is 0 when len <= head_len.
	 * The tail holds bytes [len - tail_len, len) of the buffer. */
	__u8 data[];
};

struct tg_ev_proc {
	struct tg_ev_hdr hdr;
	__u8 kind; /* enum tg_proc_kind */
	__u8 pad[3];
	__u32 child_pid; /* TG_PROC_FORK: the new process */
	__s32 exit_code; /* TG_PROC_EXIT: the exit status as wait() reports it */
	__u32 pad2;
	char comm[TG_COMM_LEN];
	char filename[TG_PATH_LEN]; /* TG_PROC_EXEC: what was exec'd */
};

/* Userspace-made events: header then a NUL-terminated text of hdr.size -
 * sizeof(hdr) bytes (the size is rounded up to 8). TG_EV_TARGET: the command
 * line, spaces between arguments. TG_EV_ROUTES: "METHOD TEMPLATE\n" lines.
 * TG_EV_IGNORE_PEER: the decimal peer port. */
struct tg_ev_text {
	struct tg_ev_hdr hdr;
	char text[];
};

/* TG_EV_DROPS: totals since attach, as read from the BPF counters. */
struct tg_ev_drops {
	struct tg_ev_hdr hdr;
	__u64 emitted;
	__u64 dropped;
};

_Static_assert(sizeof(struct tg_ev_hdr) == 32, "tg_ev_hdr ABI");
_Static_assert(sizeof(struct tg_ev_conn) == 88, "tg_ev_conn ABI");
_Static_assert(sizeof(struct tg_ev_close) == 48, "tg_ev_close ABI");
_Static_assert(sizeof(struct tg_ev_data) == 72, "tg_ev_data ABI");
_Static_assert(sizeof(struct tg_ev_proc) == 32 + 16 + TG_COMM_LEN + TG_PATH_LEN, "tg_ev_proc ABI");
_Static_assert(sizeof(struct tg_ev_drops) == 48, "tg_ev_drops ABI");

/* ---- TG_EV_SAMPLE: perf_event cpu-clock samples of traced threads ---- */

#define TG_PY_MAX_FRAMES 128 /* frames walked per sample */

/* Flags of a sample. */
#define TG_SAMPLE_GIL 0x1 /* this thread held the GIL (_PyRuntime GIL holder == its tstate) */
#define TG_SAMPLE_GIL_UNKNOWN 0x2 /* the GIL holder cannot be read for this version */
#define TG_SAMPLE_TRUNC 0x4 /* the stack had more than TG_PY_MAX_FRAMES frames: outermost lost */
#define TG_SAMPLE_NOT_PYTHON 0x8 /* not a CPython process (no py_procs entry) */
#define TG_SAMPLE_NO_TSTATE 0x10 /* no PyThreadState for this thread (not a Python thread) */
#define TG_SAMPLE_READ_ERR 0x20	 /* a user memory read failed mid-walk (stack may be partial) */
#define TG_SAMPLE_KERNEL 0x40	 /* the sample interrupted kernel mode (e.g. in a syscall) */

/* One Python frame, innermost first. */
struct tg_py_frame {
	__u64 code; /* address of the PyCodeObject in the target */
	__u32
	    lasti; /* instruction index in code units: 3.11/3.12 (prev_instr - first) / 2,
		    * 3.13+ (instr_ptr - first) / 2, <= 3.10 f_lasti as stored; ~0 = before start */
	__u32 tag; /* co_firstlineno ^ (co_name address >> 4): detects a reused code address */
};

struct tg_ev_sample {
	struct tg_ev_hdr hdr;
	__u64 tstate;	 /* PyThreadState address; 0 when none */
	__u64 task_coro; /* outermost coroutine on the stack (asyncio task's root coroutine); 0:
			    none */
	__u64 task_ctx;	 /* tstate->context: the PyContext the thread runs in; 0: none/unknown */
	__u64 ctx_vars;	 /* that context's ctx_vars HAMT (shared by copies until a var is set) */
	__u16 flags;	 /* TG_SAMPLE_* */
	__u16 nframes;	 /* entries in frames[] */
	__u16 version;	 /* CPython major << 8 | minor; 0 when not Python */
	__u16 pad;
	struct tg_py_frame frames[]; /* hdr.size = sizeof(struct tg_ev_sample) + 16 * nframes */
};

_Static_assert(sizeof(struct tg_py_frame) == 16, "tg_py_frame ABI");
_Static_assert(sizeof(struct tg_ev_sample) == 72, "tg_ev_sample ABI");

/* ---- TG_EV_TASK: where each thread's CPU goes, per asyncio task ----
 *
 * asyncio (and uvloop) run every callback and every task step inside a
 * contextvars Context, entered through CPython's internal _PyContext_Enter;
 * each task has its own Context, created by PyContext_CopyCurrent when the
 * task is made (a child task's Context is created while its parent runs).
 * Uprobes there (bpf/task.bpf.h) tell userspace, per thread, which Context
 * the thread runs in from when, so the thread's exact on-CPU time
 * (hdr.oncpu_ns) can be split between tasks at their switches. Every event
 * carries the thread's cumulative counters at hdr.ts_ns, so userspace gets
 * what happened between any two events of a thread by subtraction. */
enum tg_task_kind {
	TG_TASK_ENTER = 1, /* thread tid now runs in Context ctx (a task step or a callback);
			      not repeated for the Context it already runs in, unless it slept */
	TG_TASK_LINK = 2,  /* Context ctx was created while the thread ran in Context parent
			      (read from the thread state: the thread runs in parent now) */
	TG_TASK_PARK = 3,  /* thread tid went to sleep (blocked, not preempted); ctx: the
			      Context last entered on it (0: none seen) */
};

/* Or'ed into tg_ev_task.kind: task or GC events of this thread were lost (ring
 * buffer full) since its previous task event: the figures of the piece that
 * ends here are not to be trusted. */
#define TG_TASK_LOST 0x100
#define TG_TASK_KIND(k) ((k)&0xff)

struct tg_ev_task {
	struct tg_ev_hdr hdr;
	__u64 ctx;	  /* see enum tg_task_kind */
	__u64 parent;	  /* TG_TASK_LINK: the Context current at creation. Otherwise 0 (the
			     field stays for the event layout; TG_TASK_ENTER's wake-up hint was
			     removed, docs/attribution.md). */
	__u64 minflt;	  /* thread tid's minor page faults (task->min_flt), cumulative */
	__u64 majflt;	  /* thread tid's major page faults (task->maj_flt), cumulative */
	__u64 heap_bytes; /* bytes thread tid added to the address space (anonymous mmap and brk
			     growth), cumulative since the tracer first saw it */
	__u64 runq_ns;	  /* time thread tid was runnable but not running, cumulative since the
			     tracer first saw it */
	__u32 kind;	  /* enum tg_task_kind, | TG_TASK_LOST */
	__s32 syscall;	  /* TG_TASK_PARK: the syscall it sleeps in (the architecture's number,
			     e.g. futex: a lock such as the GIL; epoll_wait: an idle event loop);
			     -1: not in a syscall. 0 for other kinds. */
};

/* TG_EV_GC: hdr.ts_ns is the end of the collection (gc__done), hdr.tid the
 * thread that ran it. */
struct tg_ev_gc {
	struct tg_ev_hdr hdr;
	__u64 start_ns;	 /* gc__start (CLOCK_MONOTONIC); 0 when the start was not seen */
	__u64 ctx;	 /* the thread's current Context at gc__start (0: unknown) */
	__s64 collected; /* objects collected (gc__done's argument) */
	__u32 generation;
	__u32 pad;
};

_Static_assert(sizeof(struct tg_ev_task) == 88, "tg_ev_task ABI");
_Static_assert(sizeof(struct tg_ev_gc) == 64, "tg_ev_gc ABI");

/* ---- TG_EV_TLS: plaintext through OpenSSL (bpf/tls.bpf.h) ---- */

/* An SSL_write/SSL_write_ex (TG_DIR_OUT) or SSL_read/SSL_read_ex (TG_DIR_IN)
 * that moved len plaintext bytes, emitted at the call's return, with the
 * first head_len of them. conn_id is the followed PostgreSQL connection the
 * SSL object is bound to; 0 when the kernel side does not know it yet (a
 * memory-BIO SSL object, as Python's asyncio uses, is bound by the socket
 * write or read next to its first calls): userspace then holds the event
 * until an event of the same ssl names its connection. Only connections that
 * answered an SSLRequest with 'S' (TG_DATA_CIPHER) are bound. */
struct tg_ev_tls {
	struct tg_ev_hdr hdr;
	__u64 ssl;	/* the SSL object (its address in the process) */
	__u64 conn_id;	/* 0: not bound yet */
	__u64 task_key; /* as tg_ev_data.task_key, for TG_DIR_OUT */
	__u32 len;	/* plaintext bytes the call moved */
	__u16 head_len; /* bytes of data[] */
	__u8 dir;	/* enum tg_dir */
	__u8 flags;	/* TG_DATA_HEAD_TRUNC */
	__u8 data[];
};

_Static_assert(sizeof(struct tg_ev_tls) == 64, "tg_ev_tls ABI");

/* Userspace conn ids for connections found in /proc have this bit set, so they
 * never collide with the ids BPF hands out from its counter. */
#define TG_CONN_ID_USER_BIT (1ULL << 63)

#endif /* TIMEGLASS_EVENTS_H */
