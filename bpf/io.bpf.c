/* SPDX-License-Identifier: MIT */
/*
 * TimeGlass kernel side: the socket I/O, connection life cycle and on-CPU time
 * of traced processes, as events (include/timeglass/events.h) in one ring
 * buffer.
 *
 * Hooks (all exit-only; kprobes and fentry are not available on the target):
 *  - tp/syscalls/sys_exit_{accept,accept4,connect,close}: followed connections
 *    (map conns, key (tgid, fd)) come and go; TG_EV_CONN / TG_EV_CLOSE.
 *    Accepted ones are followed; connect()ed ones when their remote port is
 *    in pg_ports (PostgreSQL, captured with pg_capture_bytes) or when
 *    follow_clients is set: other client connections carry no payload, only
 *    their timing (the app's waits on other services, docs/attribution.md).
 *  - tp/syscalls/sys_exit_{read,readv,recvfrom,recvmsg,write,writev,sendto,
 *    sendmsg,sendfile}: TG_EV_DATA for fds in conns, with the first
 *    capture_bytes and the last TG_TAIL_MAX bytes of the transferred data.
 *    The syscall's arguments are read at exit from the task's saved user
 *    registers (bpf_task_pt_regs, kernel >= 5.15), so no enter program and no
 *    per-thread map are needed: one tracepoint hit per syscall. Iovec arrays
 *    are walked with bpf_loop (kernel >= 5.17).
 *  - tp_btf/sched_switch: per-thread on-CPU time (task storage), carried by
 *    every event as hdr.oncpu_ns; with tp_btf/sched_wakeup, runnable time
 *    (runq_ns). Neither is loaded with --no-task-cpu (track_oncpu off:
 *    hdr.oncpu_ns is 0), which has no use for them.
 *  - tp_btf/sched_process_{fork,exec,exit}: TG_EV_PROC; forked children of
 *    traced processes become traced (follow_children). An exec forgets what
 *    the maps and the thread's storage cached about the old image.
 *  - perf_event (software cpu-clock, attached per CPU by userspace when
 *    sampling is on): TG_EV_SAMPLE for threads of traced processes, with the
 *    Python stack and asyncio task keys read by python.bpf.h for processes
 *    in py_procs. Untraced threads cost one hash lookup per sample.
 *
 * Cost: an untraced process pays one hash lookup per hooked syscall exit
 * (accept/connect: traced_pids; data and close: conns, whose keys only exist
 * for traced processes, so it is the same filter with one lookup less). A
 * traced data syscall costs a conns lookup, a task-storage update, one or two
 * bpf_probe_read_user copies (more for iovecs) and one ring buffer output.
 * sched_switch costs one or two task-storage lookups per context switch
 * (nothing when no process was ever traced).
 *
 * Ring buffer wake-ups are batched: the consumer is woken only when
 * wakeup_bytes are pending; userspace also consumes on a timer. Every failed
 * output increments dropped[cpu]; every successful one emitted[cpu].
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "timeglass/events.h"
#include "python.bpf.h"
#include "tstate.h"
#include "sock.bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define TG_MAX_CPUS 256 /* size of the emitted/dropped counter arrays (power of two) */
#define TG_MAX_IOV 8	/* iovecs walked per readv/writev/recvmsg/sendmsg */
#define EINPROGRESS 115
#define EBADF 9

/* Tunables, set by userspace before load. */
const volatile __u32 capture_bytes = 1024;   /* head bytes per data event, <= TG_HEAD_MAX */
const volatile __u64 wakeup_bytes = 1 << 21; /* wake the consumer when this much is pending */
const volatile bool follow_clients = false;  /* also send data events of connect()ed sockets */
const volatile __u32 pg_capture_bytes = TG_HEAD_MAX;  /* head bytes on PostgreSQL client conns */
const volatile bool follow_children = true;	      /* trace processes forked by traced ones */
const volatile __u32 py_max_frames = TG_PY_MAX_STEPS; /* frame steps per sample; 0: no stack */
const volatile bool py_task_ctx = true; /* read tstate->context and its ctx_vars per sample */
/* Keep per-thread on-CPU time (hdr.oncpu_ns): off with --no-task-cpu, whose
 * requests get no CPU figures; userspace then also leaves the scheduler
 * programs unloaded (sched_switch and sched_wakeup fire on every context
 * switch of the machine). */
const volatile bool track_oncpu = true;

/* Globals shared with userspace through the skeleton's mmapped .bss. */
__u64 next_conn_id; /* conn ids handed out are next_conn_id + 1 (first is 1) */
__u32 traced_epoch; /* bumped whenever traced_pids changes */
__u64 emitted[TG_MAX_CPUS];
__u64 dropped[TG_MAX_CPUS];
/* Switch-ins of a traced process's thread whose task storage could not be
 * had (allocation failure, or the per-CPU storage lock busy: another BPF
 * program on this CPU preempted in the middle of a lookup): that thread's
 * on-CPU time is not counted until its next event. Diagnostic. */
__u64 oncpu_miss[TG_MAX_CPUS];

struct conn_key {
	__u32 tgid;
	__s32 fd;
};

struct conn_val {
	__u64 conn_id;
	__u64 seq; /* next data event sequence number (64-bit: clang 14 without -mcpu=v3
		    * only has a fetching atomic add for 64-bit words) */
	__u8 role; /* enum tg_role */
	__u8 pg;   /* a client connection to a port in pg_ports: pg_capture_bytes apply */
	__u8 tls;  /* pg, and its SSLRequest was answered 'S': payload is TG_EV_TLS (tls.bpf.h) */
	__u8 pad[5];
	__u64 writer_ctx; /* Context that queued the next write (uvwrite.bpf.h); 0: the writer's */
	__u64 ssl;	  /* tls: the SSL object last tied to it (tls.bpf.h) */
};

/* State of a walk over an iovec array: one bpf_loop step per iovec. It lives
 * in the scratch map value, not on the stack, so the verifier sees unknown
 * values at each step and checks the step body once instead of once per
 * distinct (pos, head) it could track on the stack. */
struct iov_walk {
	__u64 len;	/* bytes transferred: only [0, len) of the buffers is valid */
	__u64 want;	/* head bytes wanted */
	__u64 twant;	/* tail bytes wanted, ending at len */
	__u64 tstart;	/* len - twant */
	__u64 pos;	/* start of the current iovec in the concatenation */
	__u64 head;	/* head bytes copied (contiguous from 0) */
	__u64 got_tail; /* tail bytes copied (contiguous from tstart) */
};

/* Per-CPU scratch for building a data event: header, up to TG_HEAD_MAX head
 * bytes (room for 2x so the verifier accepts iovec copies at variable
 * offsets), then the tail; tail[] gathers the tail before it is placed. */
#define SCRATCH_DATA (2 * TG_HEAD_MAX + TG_TAIL_MAX)
struct scratch {
	__u8 buf[sizeof(struct tg_ev_data) + SCRATCH_DATA];
	__u8 tail[2 * TG_TAIL_MAX];
	struct iovec iovs[TG_MAX_IOV]; /* the syscall's iovec array, read in one go */
	struct iov_walk walk;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} traced_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct conn_val);
} conns SEC(".maps");

/* PostgreSQL server ports (host order): connect()ed sockets to them are
 * followed with pg_capture_bytes, whatever follow_clients says. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u8);
} pg_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tstate);
} tstates SEC(".maps");

/* A plain array indexed by CPU (a per-CPU array value is limited to 32 KiB);
 * userspace sets max_entries to the number of possible CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_CPUS);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

static __always_inline bool pid_traced(__u32 tgid)
{
	return bpf_map_lookup_elem(&traced_pids, &tgid) != NULL;
}

static __always_inline void count(__u64 *arr)
{
	__u32 cpu = bpf_get_smp_processor_id() & (TG_MAX_CPUS - 1);

	__sync_fetch_and_add(&arr[cpu], 1);
}

static __always_inline __u64 rb_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									     : BPF_RB_NO_WAKEUP;
}

/* The current thread's storage, created when missing (for a thread of a
 * traced process: the caller knows it is one). */
static __always_inline struct tstate *cur_tstate(void)
{
	return bpf_task_storage_get(&tstates, bpf_get_current_task_btf(), 0,
				    BPF_LOCAL_STORAGE_GET_F_CREATE);
}

/* The current thread's cumulative on-CPU time at now, from its storage s
 * (NULL: unknown, 0). A thread seen for the first time (running since before
 * attach) starts counting now. */
static __always_inline __u64 cur_oncpu(struct tstate *s, __u64 now)
{
	if (!s)
		return 0;
	if (!s->traced) {
		s->traced = 1;
		s->epoch = traced_epoch;
	}
	if (!track_oncpu)
		return 0;
	if (s->last_in_ns && now >= s->last_in_ns)
		return s->oncpu_ns + (now - s->last_in_ns);
	s->last_in_ns = now;
	return s->oncpu_ns;
}

/* The header of an event of the current thread, whose storage s the caller
 * holds (cur_tstate()). */
static __always_inline void fill_hdr_s(struct tg_ev_hdr *h, __u16 type, __u16 size, __u64 pid_tgid,
				       struct tstate *s)
{
	__u64 now = bpf_ktime_get_ns();

	h->type = type;
	h->size = size;
	h->cpu = bpf_get_smp_processor_id();
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->ts_ns = now;
	h->oncpu_ns = cur_oncpu(s, now);
}

static __always_inline void fill_hdr(struct tg_ev_hdr *h, __u16 type, __u16 size, __u64 pid_tgid)
{
	fill_hdr_s(h, type, size, pid_tgid, cur_tstate());
}

/* The current thread's user registers as a BTF pointer: its fields are
 * plain loads (a syscall's arguments), no bpf_probe_read_kernel call each.
 * Every process's syscalls run the exit programs, so reading only what the
 * filter needs first matters (docs/performance.md). */
static __always_inline struct pt_regs *cur_regs(void)
{
	return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

#include "tls.bpf.h"

/* ---- connections ---- */

static __always_inline int on_new_conn(int fd, __u8 role, __u8 origin, bool follow)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct conn_key key = {.tgid = pid_tgid >> 32, .fd = fd};
	struct conn_val val = {};
	struct tg_ev_conn *ev;

	if (!pid_traced(key.tgid))
		return 0;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count(dropped);
		return 0;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	if (tg_fill_conn_addr(ev, bpf_get_current_task_btf(), fd)) {
		bpf_ringbuf_discard(ev, BPF_RB_NO_WAKEUP);
		return 0;
	}
	val.conn_id = __sync_fetch_and_add(&next_conn_id, 1) + 1;
	val.role = role;
	if (role == TG_ROLE_CLIENT) {
		__u16 rport = ev->rport;

		val.pg = bpf_map_lookup_elem(&pg_ports, &rport) != NULL;
		follow = follow || val.pg;
	}
	if (follow)
		bpf_map_update_elem(&conns, &key, &val, BPF_ANY);
	fill_hdr(&ev->hdr, TG_EV_CONN, sizeof(*ev), pid_tgid);
	ev->conn_id = val.conn_id;
	ev->fd = fd;
	ev->role = role;
	ev->origin = origin;
	bpf_ringbuf_submit(ev, rb_flags());
	count(emitted);
	return 0;
}

SEC("tp/syscalls/sys_exit_accept")
int tg_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret < 0)
		return 0;
	return on_new_conn(ctx->ret, TG_ROLE_SERVER, TG_ORIGIN_ACCEPT, true);
}

SEC("tp/syscalls/sys_exit_accept4")
int tg_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret < 0)
		return 0;
	return on_new_conn(ctx->ret, TG_ROLE_SERVER, TG_ORIGIN_ACCEPT, true);
}

SEC("tp/syscalls/sys_exit_connect")
int tg_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret != 0 && ctx->ret != -EINPROGRESS)
		return 0;
	return on_new_conn((int)cur_regs()->di, TG_ROLE_CLIENT, TG_ORIGIN_CONNECT, follow_clients);
}

SEC("tp/syscalls/sys_exit_close")
int tg_exit_close(struct trace_event_raw_sys_exit *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct conn_key key = {.tgid = pid_tgid >> 32};
	struct conn_val *val;
	struct tg_ev_close *ev;

	if (ctx->ret == -EBADF)
		return 0;
	key.fd = (int)cur_regs()->di;
	val = bpf_map_lookup_elem(&conns, &key);
	if (!val)
		return 0;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (ev) {
		fill_hdr(&ev->hdr, TG_EV_CLOSE, sizeof(*ev), pid_tgid);
		ev->conn_id = val->conn_id;
		ev->fd = key.fd;
		ev->seq = val->seq;
		bpf_ringbuf_submit(ev, rb_flags());
		count(emitted);
	} else {
		count(dropped);
	}
	tls_forget(key.tgid, val->ssl, key.fd);
	bpf_map_delete_elem(&conns, &key);
	return 0;
}

/* ---- data ---- */

/* Bound v by max in a way the verifier sees, whatever clang made of v (it
 * drops masks and compares it can prove redundant, then passes the helpers a
 * register copy the verifier has no bound for). */
#define BOUND(v, max) asm volatile("if %0 <= %1 goto +1; %0 = %1" : "+r"(v) : "i"(max))

static __always_inline __u32 clamp_head(__u32 v)
{
	BOUND(v, TG_HEAD_MAX);
	return v;
}

static __always_inline __u32 clamp_tail(__u32 v)
{
	BOUND(v, TG_TAIL_MAX);
	return v;
}

static long iov_step(__u64 i, void *data)
{
	struct scratch *sc = *(struct scratch **)data;
	struct iov_walk *w = &sc->walk;
	struct tg_ev_data *ev = (struct tg_ev_data *)sc->buf;
	__u64 pos = w->pos, end;
	struct iovec v;

	if (pos >= w->len)
		return 1;
	v = sc->iovs[i & (TG_MAX_IOV - 1)];
	end = pos + v.iov_len;
	if (end > w->len || end < pos)
		end = w->len;
	if (pos < w->want && pos == w->head) {
		__u64 hend = end < w->want ? end : w->want;

		bpf_probe_read_user(ev->data + (pos & (TG_HEAD_MAX - 1)), clamp_head(hend - pos),
				    v.iov_base);
		w->head = hend;
	}
	if (w->twant && end > w->tstart) {
		__u64 s = pos > w->tstart ? pos : w->tstart;

		bpf_probe_read_user(sc->tail + ((s - w->tstart) & (TG_TAIL_MAX - 1)),
				    clamp_tail(end - s), (const __u8 *)v.iov_base + (s - pos));
		w->got_tail = end - w->tstart;
	}
	w->pos = end;
	return 0;
}

/* The asyncio task key of the current thread (its PyThreadState's current
 * contextvars Context), or 0 when the process is not a known CPython or the
 * thread has no thread state. s: the thread's storage (NULL: none, no cache).
 * The thread state's address and the offsets are cached there: two user reads
 * (the thread-id check, the Context) when the cache holds; a py_procs lookup
 * and the cached thread-state lookup (python.bpf.h) when it does not. */
static __always_inline __u64 py_task_key(struct tstate *s, __u32 tgid, __u32 tid)
{
	const struct tg_py_proc *cfg;
	__u64 ts;

	if (s && s->py_ts && s->py_epoch == traced_epoch &&
	    py_read_u64(s->py_ts + s->py_tid_off) == s->py_ident)
		return py_read_u64(s->py_ts + s->py_ctx_off);
	cfg = bpf_map_lookup_elem(&py_procs, &tgid);
	if (!cfg || !cfg->ts_context)
		return 0;
	ts = py_find_tstate(cfg, tid);
	if (!ts)
		return 0;
	if (s) {
		s->py_ts = ts;
		s->py_ident = py_thread_ident(cfg, tid);
		s->py_tid_off = cfg->ts_tid;
		s->py_ctx_off = cfg->ts_context;
		s->py_epoch = traced_epoch;
	}
	return py_read_u64(ts + cfg->ts_context);
}

/* Is fd of the current process a followed connection? For the exit
 * programs that read user memory before on_data's own lookup. */
static __always_inline bool followed(int fd)
{
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};

	return bpf_map_lookup_elem(&conns, &key) != NULL;
}

/* Build and send a data event for the ret bytes transferred on fd. Payload:
 * buf (a plain buffer), or iov/iovcnt (an iovec array) when iov is set, or
 * none when both are NULL. */

static __always_inline int on_data(int fd, long ret, __u8 sys, __u8 dir, const void *buf,
				   const struct iovec *iov, __u64 iovcnt)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct conn_key key = {.tgid = pid_tgid >> 32, .fd = fd};
	struct conn_val *val;
	struct tg_ev_data *ev;
	struct scratch *sc;
	struct tstate *s;
	__u32 zero_cpu, seq, len, cap, head = 0, tail = 0, size;
	__u8 flags = 0;

	if (ret <= 0)
		return 0;
	val = bpf_map_lookup_elem(&conns, &key);
	if (!val)
		return 0;
	seq = __sync_fetch_and_add(&val->seq, 1);
	zero_cpu = bpf_get_smp_processor_id();
	sc = bpf_map_lookup_elem(&scratch_map, &zero_cpu);
	if (!sc) {
		count(dropped);
		return 0;
	}
	ev = (struct tg_ev_data *)sc->buf;
	len = ret > 0xffffffffL ? 0xffffffffU : (__u32)ret;
	cap = clamp_head(val->pg ? pg_capture_bytes : capture_bytes);

	s = cur_tstate(); /* for the header, the TLS rules and the task key */
	if (val->role == TG_ROLE_CLIENT && !val->pg) {
		flags |= TG_DATA_TIMING; /* another service: when and how much only */
	} else if (val->tls) {
		/* Ciphertext: no payload; the socket I/O places SSL objects. */
		if (s)
			tls_socket_event(s, fd, dir);
		flags |= TG_DATA_CIPHER;
	} else if (buf) {
		head = clamp_head(len < cap ? len : cap);
		bpf_probe_read_user(ev->data, head, buf);
		if (len > head) {
			tail = len - head;
			tail = tail < TG_TAIL_MAX ? tail : TG_TAIL_MAX;
			tail = clamp_tail(tail);
			bpf_probe_read_user(ev->data + head, tail, (const __u8 *)buf + len - tail);
		}
	} else if (iov) {
		struct iov_walk *w = &sc->walk;
		struct scratch *scp = sc;
		__u32 n = iovcnt < TG_MAX_IOV ? (__u32)iovcnt : TG_MAX_IOV;

		BOUND(n, TG_MAX_IOV);
		/* One read of the array instead of one per step (the kernel
		 * has read it too: it is all there). */
		if (bpf_probe_read_user(sc->iovs, n * sizeof(struct iovec), iov))
			n = 0;
		w->len = len;
		w->want = len < cap ? len : cap;
		w->twant = len - w->want < TG_TAIL_MAX ? len - w->want : TG_TAIL_MAX;
		w->tstart = len - w->twant;
		w->pos = w->head = w->got_tail = 0;
		if (iovcnt > TG_MAX_IOV)
			flags |= TG_DATA_IOV_TRUNC;
		bpf_loop(n, iov_step, &scp, 0);
		if (w->pos < len)
			flags |= TG_DATA_IOV_TRUNC;
		head = clamp_head(w->head);
		/* The head must be contiguous from 0; the tail must end at len. */
		if (w->twant && w->got_tail == w->twant && head == w->want) {
			tail = clamp_tail(w->twant);
			bpf_probe_read_kernel(ev->data + head, tail, sc->tail);
		}
	}
	if (len > head + tail && !(flags & (TG_DATA_TIMING | TG_DATA_CIPHER)))
		flags |= TG_DATA_HEAD_TRUNC; /* payload wanted, some of it not captured */
	/* TLS from now on: a PostgreSQL server's 'S' to the SSLRequest (the
	 * connection's second event), or, on a connection open before the
	 * tracer, a first event that is a TLS record (content type 20-23,
	 * version 3.x: no protocol message starts with those bytes). */
	if (val->pg && !val->tls && head >= 1 &&
	    ((dir == TG_DIR_IN && len == 1 && seq <= 2 && ev->data[0] == 'S') ||
	     (seq == 0 && head >= 3 && ev->data[0] >= 20 && ev->data[0] <= 23 &&
	      ev->data[1] == 3))) {
		__u8 one = 1;

		if (ev->data[0] != 'S') { /* this event is ciphertext already */
			head = tail = 0;
			flags = (flags & ~TG_DATA_HEAD_TRUNC) | TG_DATA_CIPHER;
		}
		val->tls = 1;
		bpf_map_update_elem(&tls_procs, &key.tgid, &one, BPF_ANY);
	}

	size = (sizeof(*ev) + head + tail + 7) & ~7U;
	BOUND(size, sizeof(*ev) + TG_HEAD_MAX + TG_TAIL_MAX);
	fill_hdr_s(&ev->hdr, TG_EV_DATA, size, pid_tgid, s);
	ev->conn_id = val->conn_id;
	ev->seq = seq;
	ev->fd = fd;
	ev->len = len;
	ev->head_len = head;
	ev->tail_len = tail;
	ev->dir = dir;
	ev->sys = sys;
	ev->flags = flags;
	ev->pad = 0;
	ev->pad2 = 0;
	ev->task_key = 0;
	if (dir == TG_DIR_OUT && !val->tls) { /* ciphertext: userspace takes no key from it */
		/* A write queued by a task and made later by the loop (uvloop)
		 * belongs to the task that queued it. */
		ev->task_key = val->writer_ctx;
		val->writer_ctx = 0;
		if (!ev->task_key)
			ev->task_key = py_task_key(s, key.tgid, (__u32)pid_tgid);
	}
	if (bpf_ringbuf_output(&events, ev, size, rb_flags()))
		count(dropped);
	else
		count(emitted);
	return 0;
}

static __always_inline int on_buf(struct trace_event_raw_sys_exit *ctx, __u8 sys, __u8 dir)
{
	struct pt_regs *regs;

	if (ctx->ret <= 0)
		return 0;
	regs = cur_regs();
	return on_data((int)regs->di, ctx->ret, sys, dir, (const void *)regs->si, NULL, 0);
}

static __always_inline int on_iov(struct trace_event_raw_sys_exit *ctx, __u8 sys, __u8 dir)
{
	struct pt_regs *regs;

	if (ctx->ret <= 0)
		return 0;
	regs = cur_regs();
	return on_data((int)regs->di, ctx->ret, sys, dir, NULL, (const struct iovec *)regs->si,
		       regs->dx);
}

static __always_inline int on_msg(struct trace_event_raw_sys_exit *ctx, __u8 sys, __u8 dir)
{
	struct user_msghdr msg = {};
	struct pt_regs *regs;

	if (ctx->ret <= 0)
		return 0;
	regs = cur_regs();
	if (!followed((int)regs->di) ||
	    bpf_probe_read_user(&msg, sizeof(msg), (const void *)regs->si))
		return 0;
	return on_data((int)regs->di, ctx->ret, sys, dir, NULL, msg.msg_iov, msg.msg_iovlen);
}

SEC("tp/syscalls/sys_exit_read")
int tg_exit_read(struct trace_event_raw_sys_exit *ctx)
{
	return on_buf(ctx, TG_SYS_READ, TG_DIR_IN);
}

SEC("tp/syscalls/sys_exit_recvfrom")
int tg_exit_recvfrom(struct trace_event_raw_sys_exit *ctx)
{
	return on_buf(ctx, TG_SYS_RECVFROM, TG_DIR_IN);
}

SEC("tp/syscalls/sys_exit_write")
int tg_exit_write(struct trace_event_raw_sys_exit *ctx)
{
	return on_buf(ctx, TG_SYS_WRITE, TG_DIR_OUT);
}

SEC("tp/syscalls/sys_exit_sendto")
int tg_exit_sendto(struct trace_event_raw_sys_exit *ctx)
{
	return on_buf(ctx, TG_SYS_SENDTO, TG_DIR_OUT);
}

SEC("tp/syscalls/sys_exit_readv")
int tg_exit_readv(struct trace_event_raw_sys_exit *ctx)
{
	return on_iov(ctx, TG_SYS_READV, TG_DIR_IN);
}

SEC("tp/syscalls/sys_exit_writev")
int tg_exit_writev(struct trace_event_raw_sys_exit *ctx)
{
	return on_iov(ctx, TG_SYS_WRITEV, TG_DIR_OUT);
}

SEC("tp/syscalls/sys_exit_recvmsg")
int tg_exit_recvmsg(struct trace_event_raw_sys_exit *ctx)
{
	return on_msg(ctx, TG_SYS_RECVMSG, TG_DIR_IN);
}

SEC("tp/syscalls/sys_exit_sendmsg")
int tg_exit_sendmsg(struct trace_event_raw_sys_exit *ctx)
{
	return on_msg(ctx, TG_SYS_SENDMSG, TG_DIR_OUT);
}

SEC("tp/syscalls/sys_exit_sendfile64")
int tg_exit_sendfile(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret <= 0)
		return 0;
	return on_data((int)cur_regs()->di, ctx->ret, TG_SYS_SENDFILE, TG_DIR_OUT, NULL, NULL, 0);
}

#include "task.bpf.h"
#include "uvwrite.bpf.h"
#include "tls_probes.bpf.h"

/* ---- on-CPU time ---- */

SEC("tp_btf/sched_switch")
int BPF_PROG(tg_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 epoch = traced_epoch;
	__u64 now;
	struct tstate *s;

	if (!epoch)
		return 0; /* nothing was ever traced */
	now = bpf_ktime_get_ns();
	s = bpf_task_storage_get(&tstates, prev, 0, 0);
	if (s && s->traced && s->last_in_ns) {
		if (now > s->last_in_ns)
			s->oncpu_ns += now - s->last_in_ns;
		s->last_in_ns = 0;
		if (preempt || prev->__state == 0) {
			s->runnable_since = now; /* preempted or yielding: still runnable */
		} else {
			/* Asleep: not runnable (a wake-up seen while it was still on
			 * the CPU must not count its sleep as waiting for a CPU). */
			s->runnable_since = 0;
			if (s->cur_ctx)
				task_park(prev, s, now); /* went to sleep inside a task */
		}
	}
	s = bpf_task_storage_get(&tstates, next, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s) {
		if (pid_traced(next->tgid))
			count(oncpu_miss);
		return 0;
	}
	if (s->epoch != epoch) {
		s->traced = pid_traced(next->tgid);
		s->epoch = epoch;
	}
	if (s->traced) {
		s->last_in_ns = now;
		if (s->runnable_since && now > s->runnable_since)
			s->runq_ns += now - s->runnable_since;
		s->runnable_since = 0;
	}
	return 0;
}

/* A traced thread was woken: it waits for a CPU from now (runq_ns).
 * sched_wakeup fires where the thread is enqueued, which the scheduler orders
 * after the thread is off its CPU (try_to_wake_up waits for p->on_cpu to
 * clear, or leaves the activation to that CPU's wake list), so the reset at
 * its switch-out above never erases the mark of the wake-up that ends its
 * sleep; a wake-up while it is still running (not dequeued yet) marks it and
 * the switch-out decides. The wake list's latency (sched_waking to here,
 * microseconds) is not counted. A thread made by fork (sched_wakeup_new) has
 * no storage before its first switch-in, and its first wait for a CPU comes
 * before its first event, so userspace could not give it to anything: not
 * hooked. */
SEC("tp_btf/sched_wakeup")
int BPF_PROG(tg_sched_wakeup, struct task_struct *p)
{
	struct tstate *s;

	if (!traced_epoch)
		return 0;
	s = bpf_task_storage_get(&tstates, p, 0, 0);
	if (s && s->traced && !s->runnable_since)
		s->runnable_since = bpf_ktime_get_ns();
	return 0;
}

/* ---- process life cycle ---- */

static __always_inline struct tg_ev_proc *proc_event(__u8 kind)
{
	struct tg_ev_proc *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

	if (!ev) {
		count(dropped);
		return NULL;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	fill_hdr(&ev->hdr, TG_EV_PROC, sizeof(*ev), bpf_get_current_pid_tgid());
	ev->kind = kind;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	return ev;
}

static __always_inline void proc_submit(struct tg_ev_proc *ev)
{
	bpf_ringbuf_submit(ev, rb_flags());
	count(emitted);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(tg_sched_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid;
	__u8 one = 1;
	struct tg_ev_proc *ev;

	if (!follow_children || child->pid != ctgid || !pid_traced(ptgid))
		return 0;
	bpf_map_update_elem(&traced_pids, &ctgid, &one, BPF_ANY);
	__sync_fetch_and_add(&traced_epoch, 1);
	ev = proc_event(TG_PROC_FORK);
	if (!ev)
		return 0;
	ev->hdr.pid = ptgid;
	ev->child_pid = ctgid;
	proc_submit(ev);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(tg_sched_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = p->tgid, tid = p->pid;
	struct tg_ev_proc *ev;
	struct tstate *s;

	if (!pid_traced(tgid))
		return 0;
	/* A new program: what the thread's storage (which survives exec with the
	 * task) and the per-process maps hold about the old one's memory goes.
	 * The cumulative counters stay: userspace takes differences. py_procs
	 * is written again by userspace for the new image, after this event. */
	s = bpf_task_storage_get(&tstates, p, 0, 0);
	if (s) {
		s->cur_ctx = 0;
		s->parked = 0;
		s->gc_start_ns = 0;
		s->gc_ctx = 0;
		s->tls_op = 0;
		s->tls_fd = -1;
		s->tls_ssl = 0;
		s->tls_in_fd1 = 0;
		s->py_ts = 0;
		s->py_epoch = 0;
	}
	bpf_map_delete_elem(&proc_brk, &tgid);
	bpf_map_delete_elem(&py_procs, &tgid);
	bpf_map_delete_elem(&py_tstates, &tid);
	bpf_map_delete_elem(&tls_procs, &tgid);
	ev = proc_event(TG_PROC_EXEC);
	if (!ev)
		return 0;
	bpf_probe_read_kernel_str(ev->filename, sizeof(ev->filename), bprm->filename);
	proc_submit(ev);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(tg_sched_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid;
	struct tg_ev_proc *ev;

	if (p->pid != tgid || !pid_traced(tgid))
		return 0;
	bpf_map_delete_elem(&traced_pids, &tgid);
	bpf_map_delete_elem(&proc_brk, &tgid); /* per-process state: a reused pid starts clean */
	bpf_map_delete_elem(&tls_procs, &tgid);
	__sync_fetch_and_add(&traced_epoch, 1);
	ev = proc_event(TG_PROC_EXIT);
	if (!ev)
		return 0;
	ev->exit_code = p->exit_code;
	proc_submit(ev);
	return 0;
}

/* ---- sampling ---- */

SEC("perf_event")
int tg_sample(struct bpf_perf_event_data *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid, zero = 0, size;
	const struct tg_py_proc *cfg;
	struct tg_ev_sample *ev;
	struct py_scratch *sc;
	__u64 ts = 0, cs;

	if (!tgid || !pid_traced(tgid))
		return 0;
	sc = bpf_map_lookup_elem(&py_scratch_map, &zero);
	if (!sc) {
		count(dropped);
		return 0;
	}
	ev = (struct tg_ev_sample *)sc->ev;
	ev->tstate = ev->task_coro = ev->task_ctx = ev->ctx_vars = 0;
	ev->version = 0;
	ev->pad = 0;
	/* The context only allows 8-byte loads of pt_regs words: cs is a u16. */
	cs = *(volatile __u64 *)((void *)ctx +
				 __builtin_offsetof(struct bpf_perf_event_data, regs.cs));
	sc->flags = (cs & 3) ? 0 : TG_SAMPLE_KERNEL;
	sc->n = 0;
	cfg = bpf_map_lookup_elem(&py_procs, &tgid);
	if (!cfg) {
		sc->flags |= TG_SAMPLE_NOT_PYTHON;
		goto emit;
	}
	sc->cfg = *cfg;
	ev->version = sc->cfg.version;
	ts = py_find_tstate(&sc->cfg, tid);
	if (!ts) {
		sc->flags |= TG_SAMPLE_NO_TSTATE;
		goto emit;
	}
	ev->tstate = ts;
	if (!sc->cfg.rt_gil_holder)
		sc->flags |= TG_SAMPLE_GIL_UNKNOWN;
	else if (py_read_u64(sc->cfg.runtime + sc->cfg.rt_gil_holder) == ts)
		sc->flags |= TG_SAMPLE_GIL;
	if (py_task_ctx && sc->cfg.ts_context) {
		ev->task_ctx = py_read_u64(ts + sc->cfg.ts_context);
		if (ev->task_ctx && sc->cfg.ctx_vars)
			ev->ctx_vars = py_read_u64(ev->task_ctx + sc->cfg.ctx_vars);
	}
	py_walk(sc, ts, py_max_frames);
	ev->task_coro = sc->coro;
emit:
	ev->flags = sc->flags;
	ev->nframes = sc->n;
	size = sizeof(*ev) + (sc->n & (TG_PY_MAX_FRAMES * 2 - 1)) * sizeof(struct tg_py_frame);
	PY_BOUND(size, TG_PY_EV_MAX);
	fill_hdr(&ev->hdr, TG_EV_SAMPLE, size, pid_tgid);
	if (bpf_ringbuf_output(&events, sc->ev, size, rb_flags()))
		count(dropped);
	else
		count(emitted);
	return 0;
}
