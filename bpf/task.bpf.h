/* SPDX-License-Identifier: MIT */
/*
 * Per-task accounting: which asyncio task (contextvars Context) each thread
 * of a traced CPython process runs, and the per-thread counters that let
 * userspace (user/taskcpu.c) split a thread's exact on-CPU time, page faults,
 * heap growth and runnable time between tasks. Included by io.bpf.c (it
 * shares the tstates task storage, the ring buffer and the counters).
 *
 * Hooks:
 *  - uprobe on CPython's internal _PyContext_Enter(tstate, ctx)
 *    (tg_ctx_enter_ts) or, when a build inlines it, on the exported
 *    PyContext_Enter(ctx) (tg_ctx_enter): asyncio runs every callback and
 *    every task step through Context.run, uvloop through PyContext_Enter.
 *    Emits TG_EV_TASK ENTER when the thread's Context changes (entering the
 *    one it is already in emits nothing). Attached per process by
 *    user/tracer.c at the address user/pyctx.c finds.
 *  - uprobe inside CPython's internal context_new_from_vars, on a call made
 *    with the new Context in rdi (tg_ctx_new), or where that site cannot be
 *    found a uretprobe on PyContext_CopyCurrent (tg_ctx_copy): a Context was
 *    created (asyncio.Task() copies the current one; so do call_soon without
 *    a context and copy_context(), which anyio uses to hand a job to the
 *    thread pool). Emits TG_EV_TASK LINK (new Context, the thread's current
 *    one).
 *  - USDT python:gc__start / gc__done: TG_EV_GC per collection.
 *  - sched_switch (in io.bpf.c) calls task_park() when a thread that entered
 *    a Context goes to sleep: TG_EV_TASK PARK, so the CPU a thread-pool
 *    worker spent on a job is known when it blocks.
 *  - tp/syscalls/sys_exit_{mmap,brk}, sys_enter_mprotect: heap growth per
 *    thread (counter only): readable or writable anonymous mappings, PROT_NONE
 *    ones when mprotect opens them, brk increases.
 *  - sched_wakeup / sched_switch (in io.bpf.c): runnable time per thread.
 *    (No wake-up hint for the thread-pool hand-off: every Context creation
 *    is probed, LINK gives the job's Context its parent; a hint taken in
 *    sched_waking cost ~0.2 us on every wake-up of the machine for nothing
 *    userspace read.)
 *
 * Cost, measured on this VM (docs/performance.md): a uprobe hit is a trap,
 * ~1.1 us each here; asyncio and uvloop switch Context ~3 times per request
 * on a hello endpoint. The uretprobe costs two traps, once per task created.
 * That is why there is no exit probe: a slice ends at the next enter or
 * park, and userspace charges the loop's bookkeeping in between to the task
 * that ran last (docs/attribution.md).
 */
#ifndef TG_TASK_BPF_H
#define TG_TASK_BPF_H

#include <bpf/usdt.bpf.h>

#define TG_MAP_ANONYMOUS 0x20
#define TG_PROT_READ 0x1
#define TG_PROT_WRITE 0x2
#define TG_VM_READ 0x1 /* vm_area_struct.vm_flags */
#define TG_VM_WRITE 0x2

/* brk() value last seen per process, to turn brk calls into growth. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} proc_brk SEC(".maps");

static __always_inline void task_fill(struct tg_ev_task *ev, struct task_struct *task,
				      struct tstate *s, __u32 kind, __u64 ctx, __u64 parent)
{
	if (s->lost) { /* an earlier event of this thread was dropped */
		kind |= TG_TASK_LOST;
		s->lost = 0;
	}
	ev->ctx = ctx;
	ev->parent = parent;
	ev->minflt = task->min_flt; /* BTF pointer: plain loads */
	ev->majflt = task->maj_flt;
	ev->heap_bytes = s->heap_bytes;
	ev->runq_ns = s->runq_ns;
	ev->kind = kind;
	ev->syscall = 0;
}

/* Emit a TG_EV_TASK for the current (running) thread. */
static __always_inline void task_emit(struct tstate *s, __u32 kind, __u64 ctx, __u64 parent)
{
	struct tg_ev_task *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

	if (!ev) {
		count(dropped);
		s->lost = 1;
		return;
	}
	fill_hdr_s(&ev->hdr, TG_EV_TASK, sizeof(*ev), bpf_get_current_pid_tgid(), s);
	task_fill(ev, bpf_get_current_task_btf(), s, kind, ctx, parent);
	bpf_ringbuf_submit(ev, rb_flags());
	count(emitted);
}

/* prev goes to sleep (called from sched_switch, prev is still current, its
 * on-CPU time already accumulated into s): TG_EV_TASK PARK. */
static __always_inline void task_park(struct task_struct *prev, struct tstate *s, __u64 now)
{
	struct tg_ev_task *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

	s->parked = 1;
	if (!ev) {
		count(dropped);
		s->lost = 1;
		return;
	}
	ev->hdr.type = TG_EV_TASK;
	ev->hdr.size = sizeof(*ev);
	ev->hdr.cpu = bpf_get_smp_processor_id();
	ev->hdr.pid = prev->tgid;
	ev->hdr.tid = prev->pid;
	ev->hdr.ts_ns = now;
	ev->hdr.oncpu_ns = s->oncpu_ns;
	task_fill(ev, prev, s, TG_TASK_PARK, s->cur_ctx, 0);
	ev->syscall = (__s32)((struct pt_regs *)bpf_task_pt_regs(prev))->orig_ax;
	bpf_ringbuf_submit(ev, rb_flags());
	count(emitted);
}

/* The current thread's storage, when its process is traced. Whether it is
 * comes from the storage when its traced flag was computed at the current
 * traced_epoch (sched_switch does at switch-in, and so does this), from
 * traced_pids otherwise: one lookup instead of two on most hits. */
static __always_inline struct tstate *task_state(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 epoch = traced_epoch;
	struct tstate *s = bpf_task_storage_get(&tstates, task, 0, 0);

	if (s && s->epoch == epoch)
		return s->traced ? s : NULL;
	if (!pid_traced(task->tgid))
		return NULL;
	if (!s)
		s = bpf_task_storage_get(&tstates, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (s) {
		s->traced = 1;
		s->epoch = epoch;
	}
	return s;
}

static __always_inline int ctx_enter(__u64 ctx)
{
	struct tstate *s = task_state();

	if (!s || !ctx || (s->cur_ctx == ctx && !s->parked))
		return 0;
	s->cur_ctx = ctx;
	s->parked = 0;
	task_emit(s, TG_TASK_ENTER, ctx, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(tg_ctx_enter_ts, void *tstate, void *pyctx)
{
	(void)tstate;
	return ctx_enter((__u64)pyctx);
}

SEC("uprobe")
int BPF_KPROBE(tg_ctx_enter, void *pyctx)
{
	return ctx_enter((__u64)pyctx);
}

static __always_inline int ctx_created(__u64 ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct tstate *s;
	__u64 parent;

	if (!ctx)
		return 0;
	s = task_state();
	if (!s)
		return 0;
	parent = py_task_key(s, pid_tgid >> 32, (__u32)pid_tgid);
	if (parent) {
		/* The thread runs in parent now (read, not inferred): userspace
		 * takes the LINK as a switch to it too, so must the dedup. */
		s->cur_ctx = parent;
		s->parked = 0;
	} else {
		parent = s->cur_ctx;
	}
	task_emit(s, TG_TASK_LINK, ctx, parent);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(tg_ctx_copy, void *ret)
{
	return ctx_created((__u64)ret);
}

/* On the call made with the new Context in rdi inside the internal
 * context_new_from_vars (user/pyctx.h): one emulated trap instead of the
 * uretprobe's two. */
SEC("uprobe")
int BPF_KPROBE(tg_ctx_new, void *newctx)
{
	return ctx_created((__u64)newctx);
}

SEC("usdt")
int BPF_USDT(tg_gc_start, int generation)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct tstate *s = task_state();

	if (!s)
		return 0;
	s->gc_start_ns = bpf_ktime_get_ns();
	s->gc_gen = (__u32)generation;
	s->gc_ctx = py_task_key(s, pid_tgid >> 32, (__u32)pid_tgid);
	if (!s->gc_ctx)
		s->gc_ctx = s->cur_ctx;
	return 0;
}

SEC("usdt")
int BPF_USDT(tg_gc_done, long collected)
{
	struct tstate *s = task_state();
	struct tg_ev_gc *ev;

	if (!s)
		return 0;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count(dropped);
		s->gc_start_ns = 0;
		s->lost = 1;
		return 0;
	}
	fill_hdr_s(&ev->hdr, TG_EV_GC, sizeof(*ev), bpf_get_current_pid_tgid(), s);
	ev->start_ns = s->gc_start_ns;
	ev->ctx = s->gc_start_ns ? s->gc_ctx : 0; /* start not seen: unknown */
	ev->collected = collected;
	ev->generation = s->gc_gen;
	ev->pad = 0;
	s->gc_start_ns = 0;
	bpf_ringbuf_submit(ev, rb_flags());
	count(emitted);
	return 0;
}

/* Heap growth counts address space a thread made usable: anonymous mappings
 * that can be read or written when they are made, and anonymous PROT_NONE
 * memory when mprotect opens it. Reservations made PROT_NONE (glibc's 64 MiB
 * per-thread malloc heaps, which it opens piecewise as they grow; guard
 * pages) are not growth until then. */
SEC("tp/syscalls/sys_exit_mmap")
int tg_exit_mmap(struct trace_event_raw_sys_exit *ctx)
{
	long ret = ctx->ret;
	struct pt_regs *regs;
	struct tstate *s;

	if (ret < 0 && ret > -4096)
		return 0;
	s = task_state();
	if (!s)
		return 0;
	regs = cur_regs();
	if ((regs->r10 & TG_MAP_ANONYMOUS) && (regs->dx & (TG_PROT_READ | TG_PROT_WRITE)))
		s->heap_bytes += regs->si;
	return 0;
}

struct prot_open {
	__u64 start, len; /* the mprotect range */
	__u64 bytes;	  /* out: the part of it that is anonymous PROT_NONE now */
};

static long prot_none_part(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct prot_open *o = data;
	__u64 end = vma->vm_end;

	(void)task;
	if (vma->vm_file || (vma->vm_flags & (TG_VM_READ | TG_VM_WRITE)))
		return 0;
	if (end - o->start > o->len)
		end = o->start + o->len;
	o->bytes = end - o->start;
	return 0;
}

/* mprotect opening PROT_NONE anonymous memory: at entry, while the mapping
 * still has its old protection (bpf_find_vma, the mapping that holds the
 * start address; a range over several mappings counts the first one's part;
 * not counted when another thread holds the process's mmap lock for writing,
 * nor, at entry, known to fail: a rare ENOMEM). */
SEC("tp/syscalls/sys_enter_mprotect")
int tg_enter_mprotect(struct trace_event_raw_sys_enter *ctx)
{
	struct prot_open o = {.start = ctx->args[0], .len = (ctx->args[1] + 4095) & ~4095ULL};
	struct tstate *s;

	if (!(ctx->args[2] & (TG_PROT_READ | TG_PROT_WRITE)) || !o.len)
		return 0;
	s = task_state();
	if (!s)
		return 0;
	if (!bpf_find_vma(bpf_get_current_task_btf(), o.start, prot_none_part, &o, 0))
		s->heap_bytes += o.bytes;
	return 0;
}

SEC("tp/syscalls/sys_exit_brk")
int tg_exit_brk(struct trace_event_raw_sys_exit *ctx)
{
	__u64 brk = (__u64)ctx->ret, *last;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct tstate *s = task_state();

	if (!s)
		return 0;
	last = bpf_map_lookup_elem(&proc_brk, &tgid);
	if (last) {
		if (brk > *last)
			s->heap_bytes += brk - *last;
		*last = brk;
	} else {
		bpf_map_update_elem(&proc_brk, &tgid, &brk, BPF_ANY);
	}
	return 0;
}

#endif /* TG_TASK_BPF_H */
