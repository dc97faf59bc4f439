/* SPDX-License-Identifier: MIT */
/*
 * BPF helpers that read a CPython interpreter's state from the current
 * thread's user memory, with the offsets of struct tg_py_proc
 * (include/timeglass/pyproc.h; filled by user/pyruntime.c per process):
 *
 *  - py_find_tstate(): the current thread's PyThreadState. Cached per tid in
 *    the LRU hash py_tstates and validated on every use by re-reading the
 *    tstate's thread id (a freed tstate whose memory is reused by another
 *    thread fails the check). On a miss: walk interp->threads.head ->next,
 *    at most TG_PY_MAX_THREADS threads, with bpf_loop. Cost: one user read on
 *    a hit; 2 + one per thread on a miss.
 *  - py_walk(): the frame chain from the tstate's current frame, at most
 *    TG_PY_MAX_FRAMES recorded frames (bpf_loop, one step per frame), each
 *    as (code address, instruction index, tag). Per frame: one read of the
 *    frame header window and one of the code object window. The outermost
 *    frame owned by a generator (owner == 1) gives the asyncio task's root
 *    coroutine (frame - gen_iframe); 3.12+ shim frames (owner == 3) are
 *    skipped.
 *
 * All reads are bpf_probe_read_user into a per-CPU scratch map value, and
 * fields are picked at offsets masked into the window so the verifier sees
 * bounded accesses whatever the version's offsets are.
 */
#ifndef TG_PYTHON_BPF_H
#define TG_PYTHON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "timeglass/events.h"
#include "timeglass/pyproc.h"

#define TG_PY_MAX_THREADS 64			/* PyThreadStates walked to find the current one */
#define TG_PY_MAX_STEPS (TG_PY_MAX_FRAMES + 32) /* frame steps, skipped shims included */
#define TG_PY_EV_MAX (sizeof(struct tg_ev_sample) + TG_PY_MAX_FRAMES * sizeof(struct tg_py_frame))

/* Bound v by max in a way the verifier sees (see BOUND in io.bpf.c). */
#define PY_BOUND(v, max) asm volatile("if %0 <= %1 goto +1; %0 = %1" : "+r"(v) : "i"(max))

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid */
	__type(value, struct tg_py_proc);
} py_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);   /* tid */
	__type(value, __u64); /* PyThreadState address */
} py_tstates SEC(".maps");

/* Per-CPU state of one sample: the event being built (header, then frames),
 * the read windows and the walk's cursor. */
struct py_scratch {
	__u8 ev[TG_PY_EV_MAX];
	__u8 fwin[TG_PY_WINDOW];
	__u8 cwin[TG_PY_WINDOW];
	struct tg_py_proc cfg;
	__u64 frame; /* next frame to visit */
	__u64 coro;  /* outermost generator-owned frame's generator so far */
	__u32 n;     /* frames recorded */
	__u32 flags; /* TG_SAMPLE_* found by the walk */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_scratch);
} py_scratch_map SEC(".maps");

static __always_inline __u64 py_read_u64(__u64 addr)
{
	__u64 v = 0;

	bpf_probe_read_user(&v, sizeof(v), (const void *)addr);
	return v;
}

/* The value that identifies the current thread in a PyThreadState. */
static __always_inline __u64 py_thread_ident(const struct tg_py_proc *c, __u32 tid)
{
	if (c->tid_match == TG_PYTID_PTHREAD) {
		struct task_struct *task = bpf_get_current_task_btf();

		return task->thread.fsbase;
	}
	return tid;
}

struct py_ts_walk {
	__u64 ts;
	__u64 want;
	__u64 found;
	__u32 off_tid;
	__u32 off_next;
};

static long py_ts_step(__u64 i, void *data)
{
	struct py_ts_walk *w = data;

	(void)i;
	if (!w->ts)
		return 1;
	if (py_read_u64(w->ts + w->off_tid) == w->want) {
		w->found = w->ts;
		return 1;
	}
	w->ts = py_read_u64(w->ts + w->off_next);
	return 0;
}

/* The PyThreadState of the current thread (tid) in the process configured by
 * c, or 0 when it has none (not a Python thread, interpreter not started or
 * finalised, or more than TG_PY_MAX_THREADS threads before it). */
static __always_inline __u64 py_find_tstate(const struct tg_py_proc *c, __u32 tid)
{
	__u64 want = py_thread_ident(c, tid);
	struct py_ts_walk w = {.want = want, .off_tid = c->ts_tid, .off_next = c->ts_next};
	__u64 *cached = bpf_map_lookup_elem(&py_tstates, &tid);
	__u64 interp;

	if (cached && *cached && py_read_u64(*cached + c->ts_tid) == want)
		return *cached;
	interp = py_read_u64(c->runtime + c->rt_interp);
	if (!interp)
		return 0;
	w.ts = py_read_u64(interp + c->is_threads);
	bpf_loop(TG_PY_MAX_THREADS, py_ts_step, &w, 0);
	if (w.found)
		bpf_map_update_elem(&py_tstates, &tid, &w.found, BPF_ANY);
	return w.found;
}

static __always_inline __u64 py_win64(const __u8 *win, __u32 off)
{
	return *(const __u64 *)(win + (off & (TG_PY_WINDOW - 8)));
}

static __always_inline __u32 py_win32(const __u8 *win, __u32 off)
{
	return *(const __u32 *)(win + (off & (TG_PY_WINDOW - 4)));
}

static long py_frame_step(__u64 i, void *data)
{
	struct py_scratch *sc = *(struct py_scratch **)data;
	const struct tg_py_proc *c = &sc->cfg;
	struct tg_py_frame *out;
	__u64 f = sc->frame, code, instr, first;
	__u32 fw = c->fr_window, cw = c->co_window, n = sc->n, lasti, tag;
	__u8 owner = 0;

	(void)i;
	if (!f)
		return 1;
	PY_BOUND(fw, TG_PY_WINDOW);
	PY_BOUND(cw, TG_PY_WINDOW);
	if (bpf_probe_read_user(sc->fwin, fw, (const void *)f)) {
		sc->flags |= TG_SAMPLE_READ_ERR;
		return 1;
	}
	code = py_win64(sc->fwin, c->fr_code);
	sc->frame = py_win64(sc->fwin, c->fr_previous);
	if (c->fr_owner)
		owner = sc->fwin[c->fr_owner & (TG_PY_WINDOW - 1)];
	if (owner == 1 && c->gen_iframe)
		sc->coro = f - c->gen_iframe;
	if ((owner == 3 && c->version >= 0x30c) || !code)
		return 0; /* a C-stack shim frame (3.12+), or no code */
	if (n >= TG_PY_MAX_FRAMES) {
		sc->flags |= TG_SAMPLE_TRUNC;
		return 1;
	}
	if (c->frame_model == TG_PYFRAME_LEGACY) {
		lasti = py_win32(sc->fwin, c->fr_instr);
	} else {
		instr = py_win64(sc->fwin, c->fr_instr);
		first = code + c->co_code;
		lasti = instr >= first && instr - first < (1ULL << 32) ? (instr - first) / 2 : ~0U;
	}
	tag = 0;
	if (!bpf_probe_read_user(sc->cwin, cw, (const void *)code))
		tag = py_win32(sc->cwin, c->co_firstlineno) ^
		      (__u32)(py_win64(sc->cwin, c->co_name) >> 4);
	else
		sc->flags |= TG_SAMPLE_READ_ERR;
	out = (struct tg_py_frame *)(sc->ev + sizeof(struct tg_ev_sample) +
				     (n & (TG_PY_MAX_FRAMES - 1)) * sizeof(*out));
	out->code = code;
	out->lasti = lasti;
	out->tag = tag;
	sc->n = n + 1;
	return 0;
}

/* Walk the frames of tstate into sc (sc->cfg set): fills sc->n, the frames
 * after the event header, sc->coro and sc->flags. */
static __always_inline void py_walk(struct py_scratch *sc, __u64 tstate, __u32 max_frames)
{
	const struct tg_py_proc *c = &sc->cfg;
	struct py_scratch *scp = sc;
	__u64 f = py_read_u64(tstate + c->ts_frame);

	if (f && c->frame_model == TG_PYFRAME_CFRAME)
		f = py_read_u64(f + c->cf_current);
	sc->frame = f;
	sc->coro = 0;
	sc->n = 0;
	if (!max_frames)
		return;
	bpf_loop(max_frames < TG_PY_MAX_STEPS ? max_frames : TG_PY_MAX_STEPS, py_frame_step, &scp,
		 0);
	if (sc->frame && !(sc->flags & TG_SAMPLE_READ_ERR))
		sc->flags |= TG_SAMPLE_TRUNC;
}

#endif
