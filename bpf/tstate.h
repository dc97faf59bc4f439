/* SPDX-License-Identifier: MIT */
/*
 * The per-thread state of the BPF programs (task storage map tstates,
 * io.bpf.c): on-CPU time, the per-task accounting counters (task.bpf.h), the
 * TLS call in progress (tls.bpf.h) and py_task_key's cache. A header of its
 * own so the kernel tests (tests/unit/test_tstate.c) can read a thread's
 * storage (the map answers a pidfd) with the same layout. Needs the __u64 &
 * co. types: vmlinux.h in BPF, <linux/types.h> in userspace.
 */
#ifndef TG_TSTATE_H
#define TG_TSTATE_H

struct tstate {
	__u64 oncpu_ns;	  /* on-CPU time accumulated up to the last switch-out */
	__u64 last_in_ns; /* when the thread was switched in; 0 when unknown/out */
	__u32 epoch;	  /* traced_epoch when traced was computed */
	__u8 traced;
	__u8 pad[3];
	/* Per-task accounting (task.bpf.h). */
	__u64 cur_ctx;	  /* the contextvars Context last entered on this thread; 0: none seen */
	__u64 heap_bytes; /* anonymous mmap + brk growth by this thread, cumulative */
	__u64 runq_ns;	  /* runnable but not running, cumulative */
	__u64 runnable_since; /* when it last became runnable (woken, preempted); 0: not */
	__u64 gc_start_ns;    /* gc__start of the collection in progress; 0: none */
	__u64 gc_ctx;	      /* the Context current at that gc__start */
	__u32 gc_gen;
	__u32 pad2;
	__u8 parked; /* slept since the last ENTER: the next ENTER is emitted even for
			cur_ctx (its address may now be another Context's) */
	__u8 tls_op; /* TLS (tls.bpf.h): the SSL call in progress, TG_TLS_*; */
	__u8 lost;   /* a task/GC event of this thread was dropped: flag the next one */
	__u8 pad3;
	__s32 tls_fd;	  /* a TLS connection's socket syscall made inside it; -1: none */
	__u64 tls_ssl;	  /* its SSL object; 0: no SSL call in progress */
	__u64 tls_buf;	  /* its buffer */
	__u64 tls_aux;	  /* its size_t *written / *readbytes (the _ex calls) */
	__u64 tls_in_ns;  /* last socket read on a TLS connection: when */
	__u32 tls_in_fd1; /* ... and its fd + 1 (0: none since the last SSL read) */
	__u32 py_epoch;	  /* py_task_key's cache: traced_epoch when filled */
	__u64 py_ts;	  /* ... the thread's PyThreadState (0: none cached) */
	__u64 py_ident;	  /* ... its thread id field's value for this thread */
	__u16 py_tid_off; /* ... offsets of that field and of the Context */
	__u16 py_ctx_off;
	__u32 pad5;
};

#endif /* TG_TSTATE_H */
