/* SPDX-License-Identifier: MIT */
/*
 * Per-process CPython configuration shared by userspace (user/pyruntime.c
 * fills it) and the BPF sampler (bpf/python.bpf.h reads it): the address of
 * _PyRuntime in the target and the struct offsets the kernel side needs to
 * find the current thread's PyThreadState and walk its frames. Stored in the
 * BPF hash map py_procs, keyed by tgid. Offsets are bytes; 0 in an optional
 * field means "unknown for this version" (see each field).
 */
#ifndef TIMEGLASS_PYPROC_H
#define TIMEGLASS_PYPROC_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* How frames are chained (enum tg_py_frame_model). */
#define TG_PYFRAME_LEGACY                                                                          \
	1 /* <= 3.10: tstate->frame is a PyFrameObject (f_back, f_code, f_lasti) */
#define TG_PYFRAME_CFRAME 2 /* 3.11, 3.12: tstate->cframe->current_frame, _PyInterpreterFrame */
#define TG_PYFRAME_DIRECT 3 /* >= 3.13: tstate->current_frame, _PyInterpreterFrame */

/* How a PyThreadState is matched to the current kernel thread. */
#define TG_PYTID_NATIVE 1  /* tstate->native_thread_id == tid (3.11+) */
#define TG_PYTID_PTHREAD 2 /* tstate->thread_id == pthread_self() == fs base (glibc x86-64) */

/* Largest offset window read from a frame or a code object in one copy. */
#define TG_PY_WINDOW 128

struct tg_py_proc {
	__u64 runtime;	      /* address of _PyRuntime in the target */
	__u16 version;	      /* major << 8 | minor */
	__u8 frame_model;     /* TG_PYFRAME_* */
	__u8 tid_match;	      /* TG_PYTID_* */
	__u16 rt_interp;      /* _PyRuntime -> main (or head) interpreter pointer */
	__u16 rt_gil_holder;  /* _PyRuntime -> tstate holding the GIL; 0: unknown */
	__u16 is_threads;     /* PyInterpreterState -> first PyThreadState */
	__u16 ts_next;	      /* PyThreadState -> next */
	__u16 ts_tid;	      /* PyThreadState -> native_thread_id or thread_id (tid_match) */
	__u16 ts_frame;	      /* PyThreadState -> cframe / frame / current_frame */
	__u16 cf_current;     /* _PyCFrame -> current_frame (TG_PYFRAME_CFRAME only) */
	__u16 ts_context;     /* PyThreadState -> context (PyContext *); 0: unknown */
	__u16 ctx_vars;	      /* PyContext -> ctx_vars (the HAMT); 0: unknown */
	__u16 fr_code;	      /* frame -> code object */
	__u16 fr_previous;    /* frame -> previous / f_back */
	__u16 fr_instr;	      /* frame -> prev_instr / instr_ptr (pointer), or f_lasti (int) */
	__u16 fr_owner;	      /* frame -> owner (u8); 0: none (legacy) */
	__u16 fr_window;      /* bytes read per frame (<= TG_PY_WINDOW, covers the fields) */
	__u16 co_firstlineno; /* code -> co_firstlineno (int) */
	__u16 co_name;	      /* code -> co_name (the tag mixes its low bits in) */
	__u16 co_code;	      /* code -> first instruction (co_code_adaptive); 0: legacy */
	__u16 co_window;      /* bytes read per code object (<= TG_PY_WINDOW) */
	__u16 gen_iframe;     /* PyGenObject -> embedded frame (coroutine = frame - this) */
	__u16 pad[3];
};

_Static_assert(sizeof(struct tg_py_proc) == 56, "tg_py_proc ABI");

#endif /* TIMEGLASS_PYPROC_H */
