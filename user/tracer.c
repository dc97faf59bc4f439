/* SPDX-License-Identifier: MIT */
/*
 * Loader of bpf/io.bpf.c (through its bpftool skeleton) and consumer of its
 * ring buffer. Design:
 *  - open() checks privileges and BTF first, so the user gets a sentence that
 *    says what to do rather than a libbpf errno; mounts tracefs when missing
 *    (libbpf resolves tp/ programs through it); routes libbpf's messages into
 *    tg_log one level lower.
 *  - The traced set lives in the BPF map traced_pids; every change bumps
 *    traced_epoch in the mmapped .bss so sched_switch re-evaluates threads.
 *  - add_pid() announces sockets established before attach (found through
 *    tg_procscan__sockets) as TG_ORIGIN_EXISTING connections with conn ids
 *    that have TG_CONN_ID_USER_BIT set, and inserts them into conns with
 *    BPF_NOEXIST so a connection BPF already saw accepted keeps its id.
 *  - The ring buffer callback cleans the conns of a process whose
 *    TG_PROC_EXIT it sees, then hands every event to the user's callback.
 *  - CPython processes get a py_procs entry (pyruntime.h) at add_pid, and
 *    again when the ring buffer shows them exec (new image) or fork (the
 *    child); it goes at exit and remove_pid.
 *  - Sampling (cfg.sample_hz): one perf_event per CPU (software cpu-clock,
 *    frequency mode) with tg_sample attached; tg_sample is not even loaded
 *    when sampling is off.
 */
#include "tracer.h"
#include "tlsprobe.h"

#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/perf_event.h>
#include <sys/syscall.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "procscan.h"
#include "pltcalls.h"
#include "pyctx.h"
#include "pyruntime.h"
#include "timeglass/events.h"

#include "io.skel.h"

#define TG_DEFAULT_CAPTURE 1024
#define TG_DEFAULT_RING (16u << 20)

/* Mirror of struct conn_key / conn_val in bpf/io.bpf.c. */
struct tg_conn_key {
	uint32_t tgid;
	int32_t fd;
};

struct tg_conn_val {
	uint64_t conn_id;
	uint64_t seq;
	uint8_t role;
	uint8_t pg;
	uint8_t tls;
	uint8_t pad[5];
	uint64_t writer_ctx;
	uint64_t ssl;
};

struct tg_tracer {
	struct tg_io_bpf *skel;
	struct ring_buffer *rb;
	tg_tracer_event_fn fn;
	void *ctx;
	uint64_t user_conn_ids; /* last conn id handed out for /proc connections */
	bool follow_clients; /* client connections: PostgreSQL with payload, others timing only */
	uint16_t pg_ports[TG_TRACER_MAX_PG_PORTS];
	size_t npg_ports;
	int handled;			/* events handed to fn during the current poll */
	struct bpf_link **sample_links; /* one per CPU (NULL where a CPU is offline) */
	int nsample_links;
	bool no_task_probes;
	struct task_probes *probes; /* per-task accounting links, one entry per CPython pid */
	size_t nprobes, cprobes;
	struct tg_tlsprobe *tls; /* OpenSSL links, one entry per pid with a TLS PostgreSQL conn */
	size_t ntls, ctls;
};

#define SET_ADD_SITES 32 /* calls of PySet_Add probed in one uvloop module, at most */

/* The per-task accounting probes of one process (bpf/task.bpf.h). */
struct task_probes {
	pid_t pid;
	int bits; /* TG_TASK_PROBES_* */
	struct bpf_link *enter, *copy, *gc_start, *gc_done;
	/* uvloop's queued writes (bpf/uvwrite.bpf.h): one link per call of
	 * PySet_Add in uvloop's module, or one on PySet_Add itself */
	struct bpf_link *set_add[SET_ADD_SITES];
	size_t nset_add;
	bool set_add_tried; /* attached, or found not needed, once */
	char file[600];	    /* the runtime's ELF file, as /proc/PID/root/... */
};

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	enum tg_log_level tl;
	char *msg = NULL;
	size_t n;

	switch (level) {
	case LIBBPF_WARN:
		tl = TG_LOG_INFO;
		break;
	case LIBBPF_INFO:
		tl = TG_LOG_DEBUG;
		break;
	default:
		if (tg_log__level() < TG_LOG_DEBUG)
			return 0;
		tl = TG_LOG_DEBUG;
		break;
	}
	if (tl > tg_log__level())
		return 0;
	/* Verifier logs come as one long message: no fixed-size buffer. */
	if (vasprintf(&msg, fmt, ap) < 0)
		return 0;
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	tg_log(tl, "%s", msg);
	free(msg);
	return 0;
}

/* Whether the effective capability set holds cap (from /proc/self/status). */
static bool has_cap(int cap)
{
	char line[256];
	unsigned long long eff = 0;
	bool found = false;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			found = true;
			break;
		}
	}
	fclose(f);
	return found && (eff >> cap) & 1;
}

static int ensure_tracefs(char *err, size_t errlen)
{
	if (access("/sys/kernel/tracing/events", F_OK) == 0 ||
	    access("/sys/kernel/debug/tracing/events", F_OK) == 0)
		return 0;
	if (geteuid() != 0) {
		snprintf(err, errlen,
			 "tracefs is not mounted: run as root, or mount it with "
			 "`sudo mount -t tracefs nodev /sys/kernel/tracing`");
		return -EPERM;
	}
	if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) && errno != EBUSY) {
		int e = errno;

		snprintf(err, errlen, "cannot mount tracefs on /sys/kernel/tracing: %s",
			 strerror(e));
		return -e;
	}
	tg_info("mounted tracefs on /sys/kernel/tracing");
	return 0;
}

static int check_support(char *err, size_t errlen)
{
	if (geteuid() != 0 && !(has_cap(CAP_BPF) && has_cap(CAP_PERFMON))) {
		snprintf(err, errlen,
			 "tracing needs root (or CAP_BPF and CAP_PERFMON): run as root "
			 "(sudo timeglass ...)");
		return -EPERM;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		snprintf(err, errlen,
			 "kernel has no BTF (/sys/kernel/btf/vmlinux missing): a kernel built with "
			 "CONFIG_DEBUG_INFO_BTF=y is needed");
		return -ENOTSUP;
	}
	return ensure_tracefs(err, errlen);
}

/* Delete every conns entry of tgid. */
static void forget_conns(struct tg_tracer *t, uint32_t tgid)
{
	int fd = bpf_map__fd(t->skel->maps.conns);
	struct tg_conn_key key, next;
	struct tg_conn_key *prev = NULL;

	/* Deleting the current key breaks the walk; delete the previous one
	 * only after its successor is known. */
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (prev && prev->tgid == tgid)
			bpf_map_delete_elem(fd, prev);
		key = next;
		prev = &key;
	}
	if (prev && prev->tgid == tgid)
		bpf_map_delete_elem(fd, prev);
}

/* fd of pid is open and a socket. */
static bool fd_is_socket(uint32_t pid, int32_t fd)
{
	char path[64], link[16];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%u/fd/%d", pid, fd);
	n = readlink(path, link, sizeof(link));
	return n >= 7 && !memcmp(link, "socket:", 7);
}

/* pid exec'd (at ts_ns): its sockets made with O_CLOEXEC (Python's default)
 * closed without a close() the kernel side could see. Forget the followed
 * ones whose fd is no longer a socket and hand a TG_EV_CLOSE for each to
 * the callback first, so what was pending on them is finished and a later
 * file on the same fd number is not read as their data. */
static void forget_exec_closed(struct tg_tracer *t, uint32_t tgid, uint64_t ts_ns)
{
	int fd = bpf_map__fd(t->skel->maps.conns);
	struct tg_conn_key key, next, gone[64];
	struct tg_conn_key *prev = NULL;
	size_t n = 0;

	/* Collect first (deleting while walking restarts the walk). */
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (next.tgid == tgid && n < sizeof(gone) / sizeof(gone[0]) &&
		    !fd_is_socket(tgid, next.fd))
			gone[n++] = next;
		key = next;
		prev = &key;
	}
	for (size_t i = 0; i < n; i++) {
		struct tg_conn_val v;
		struct tg_ev_close ev;

		if (bpf_map_lookup_elem(fd, &gone[i], &v) || bpf_map_delete_elem(fd, &gone[i]))
			continue;
		memset(&ev, 0, sizeof(ev));
		ev.hdr.type = TG_EV_CLOSE;
		ev.hdr.size = sizeof(ev);
		ev.hdr.pid = tgid;
		ev.hdr.tid = tgid;
		ev.hdr.ts_ns = ts_ns;
		ev.conn_id = v.conn_id;
		ev.fd = gone[i].fd;
		ev.seq = (uint32_t)v.seq;
		t->handled++;
		t->fn(t->ctx, &ev, sizeof(ev));
	}
}

/* Detach every probe p holds. */
static void task_probes_destroy(struct task_probes *p)
{
	bpf_link__destroy(p->enter);
	bpf_link__destroy(p->copy);
	bpf_link__destroy(p->gc_start);
	bpf_link__destroy(p->gc_done);
	for (size_t j = 0; j < p->nset_add; j++)
		bpf_link__destroy(p->set_add[j]);
}

static void task_probes_detach(struct tg_tracer *t, pid_t pid)
{
	for (size_t i = 0; i < t->nprobes; i++) {
		struct task_probes *p = &t->probes[i];

		if (p->pid != pid)
			continue;
		task_probes_destroy(p);
		*p = t->probes[--t->nprobes];
		return;
	}
}

static struct bpf_link *attach_or_warn(struct bpf_link *l, pid_t pid, const char *what)
{
	long err = libbpf_get_error(l);
	char msg[128];

	if (!err)
		return l;
	libbpf_strerror((int)err, msg, sizeof(msg));
	tg_warn("pid %d: cannot attach the %s probe: %s", (int)pid, what, msg);
	return NULL;
}

/* Keep p in t->probes; when out of memory, detach its probes instead (they
 * could never be detached later) and return false. */
static bool task_probes_add(struct tg_tracer *t, struct task_probes *p)
{
	if (t->nprobes == t->cprobes) {
		size_t c = t->cprobes ? t->cprobes * 2 : 8;
		struct task_probes *n = realloc(t->probes, c * sizeof(*n));

		if (!n) {
			tg_warn("pid %d: out of memory: no per-task probes", (int)p->pid);
			task_probes_destroy(p);
			return false;
		}
		t->probes = n;
		t->cprobes = c;
	}
	t->probes[t->nprobes++] = *p;
	return true;
}

/* Attach the per-task accounting probes to CPython process pid, whose
 * runtime lives in the ELF file path (as the process names it). Failures
 * are logged; the rest of tracing goes on without them. With --no-task-cpu
 * only the runtime's file is kept, for the uvloop write probe (SQL
 * attribution, uvwrite_attach), which does not depend on them. */
static void task_probes_attach(struct tg_tracer *t, pid_t pid, const char *path)
{
	struct tg_pyctx_sites sites;
	struct task_probes p = {.pid = pid};
	char file[600];
	int ret;

	task_probes_detach(t, pid);
	/* The file as the target sees it (it may live in another mount namespace). */
	snprintf(file, sizeof(file), "/proc/%d/root%s", (int)pid, path);
	if (t->no_task_probes) {
		snprintf(p.file, sizeof(p.file), "%s", file);
		task_probes_add(t, &p);
		return;
	}
	ret = tg_pyctx__find(file, &sites);
	if (ret) {
		tg_warn("pid %d: no place to probe Context switches in %s (%s): no CPU per request",
			(int)pid, path, strerror(-ret));
		snprintf(p.file, sizeof(p.file), "%s", file);
		task_probes_add(t, &p); /* the uvloop write probe may still go */
		return;
	}
	p.enter = attach_or_warn(bpf_program__attach_uprobe(sites.enter_has_ts
								? t->skel->progs.tg_ctx_enter_ts
								: t->skel->progs.tg_ctx_enter,
							    false, pid, file, sites.enter_off),
				 pid, "Context entry");
	if (sites.new_call_off)
		p.copy = attach_or_warn(bpf_program__attach_uprobe(t->skel->progs.tg_ctx_new, false,
								   pid, file, sites.new_call_off),
					pid, "Context creation");
	if (!p.copy)
		p.copy = attach_or_warn(bpf_program__attach_uprobe(t->skel->progs.tg_ctx_copy, true,
								   pid, file, sites.copy_off),
					pid, "Context creation (return)");
	p.gc_start = attach_or_warn(bpf_program__attach_usdt(t->skel->progs.tg_gc_start, pid, file,
							     "python", "gc__start", NULL),
				    pid, "gc__start");
	p.gc_done = attach_or_warn(bpf_program__attach_usdt(t->skel->progs.tg_gc_done, pid, file,
							    "python", "gc__done", NULL),
				   pid, "gc__done");
	if (!p.enter || !p.copy) {
		bpf_link__destroy(p.enter);
		bpf_link__destroy(p.copy);
		p.enter = p.copy = NULL;
	} else {
		p.bits = TG_TASK_PROBES_ENTER | TG_TASK_PROBES_LINK |
			 (sites.asyncio_covered ? TG_TASK_PROBES_ASYNCIO : 0);
	}
	if (p.gc_start && p.gc_done)
		p.bits |= TG_TASK_PROBES_GC;
	snprintf(p.file, sizeof(p.file), "%s", file);
	if (!sites.asyncio_covered && p.enter)
		tg_warn("pid %d: %s: CPU per request works on uvloop only", (int)pid, sites.how);
	tg_debug("pid %d: task probes 0x%x (Context entry: %s; creation: %s)", (int)pid, p.bits,
		 sites.how, sites.new_call_off ? "call in context_new_from_vars" : "uretprobe");
	task_probes_add(t, &p);
}

static bool is_pg_port(const struct tg_tracer *t, uint16_t port)
{
	for (size_t i = 0; i < t->npg_ports; i++)
		if (t->pg_ports[i] == port)
			return true;
	return false;
}

/* Probe the calls of PySet_Add in pid's uvloop module (its path in the
 * target's maps, mapped): only uvloop's set.add() calls trap, not every
 * PySet_Add of the interpreter (set displays and comprehensions in the app's
 * code: a trap per element). Returns the number of links made, 0 when the
 * calls are not found or a probe fails (none kept then). */
static size_t uvwrite_attach_calls(struct tg_tracer *t, struct task_probes *p, const char *mapped)
{
	uint64_t off[SET_ADD_SITES];
	char file[600];
	size_t n = 0;
	int ret;

	snprintf(file, sizeof(file), "/proc/%d/root%s", (int)p->pid, mapped);
	ret = tg_pltcalls__find(file, "PySet_Add", off, SET_ADD_SITES, &n);
	if (ret) {
		tg_debug("pid %d: calls of PySet_Add in %s: %s", (int)p->pid, mapped,
			 strerror(-ret));
		return 0;
	}
	/* Only the write path's call when it can be told (Loop._queue_write's
	 * name on its error path): TimerHandle's _timers.add() runs for every
	 * call_later (a sleep, a timeout, uvicorn's keep-alive timer), a trap
	 * each. Otherwise every call: the other keys fail the stream check. */
	if (tg_pltcalls__keep_near(file, "uvloop.loop.Loop._queue_write", 1024, off, &n))
		tg_debug("pid %d: Loop._queue_write not told apart in %s: all %zu calls",
			 (int)p->pid, mapped, n);
	for (size_t i = 0; i < n; i++) {
		struct bpf_link *l = bpf_program__attach_uprobe(t->skel->progs.tg_set_add, false,
								p->pid, file, off[i]);

		if (libbpf_get_error(l)) {
			tg_debug("pid %d: probe at %s+0x%llx: %s", (int)p->pid, mapped,
				 (unsigned long long)off[i], strerror((int)-libbpf_get_error(l)));
			for (size_t j = 0; j < p->nset_add; j++)
				bpf_link__destroy(p->set_add[j]);
			p->nset_add = 0;
			return 0;
		}
		p->set_add[p->nset_add++] = l;
		tg_debug("pid %d: uvloop write probe at %s+0x%llx", (int)p->pid, mapped,
			 (unsigned long long)off[i]);
	}
	return n;
}

/* pid opened (or had) a client connection (PostgreSQL, or another service
 * whose waits its requests are charged with): on uvloop, attach the probe
 * that gives its queued writes their task (bpf/uvwrite.bpf.h). Done here,
 * not with the other task probes, because it fires on every write of a
 * uvloop process (about 2 traps per HTTP request): processes that never
 * call out do not pay for it. Once per process. */
static void uvwrite_attach(struct tg_tracer *t, pid_t pid)
{
	struct bpf_uprobe_opts uo = {.sz = sizeof(uo), .func_name = "PySet_Add"};
	char mapped[512];

	for (size_t i = 0; i < t->nprobes; i++) {
		struct task_probes *p = &t->probes[i];
		struct bpf_link *l;

		if (p->pid != pid || p->set_add_tried || !p->file[0])
			continue;
		p->set_add_tried = true;
		if (tg_pyruntime__mapped_file(pid, "/uvloop/loop.", mapped, sizeof(mapped)))
			return; /* not running uvloop */
		if (uvwrite_attach_calls(t, p, mapped)) {
			p->bits |= TG_TASK_PROBES_UVWRITE;
			tg_debug("pid %d: uvloop: queued writes keep their task (%zu calls of "
				 "PySet_Add probed)",
				 (int)pid, p->nset_add);
			return;
		}
		/* Fallback: the function itself (every caller traps). */
		l = attach_or_warn(bpf_program__attach_uprobe_opts(t->skel->progs.tg_set_add, pid,
								   p->file, 0, &uo),
				   pid, "uvloop write");
		if (l) {
			p->set_add[p->nset_add++] = l;
			p->bits |= TG_TASK_PROBES_UVWRITE;
			tg_debug("pid %d: uvloop: queued writes keep their task (PySet_Add)",
				 (int)pid);
		}
		return;
	}
}

/* pid has a PostgreSQL connection that turned TLS: probe its OpenSSL
 * (bpf/tls.bpf.h), once. Not before, since the probes fire on every SSL call
 * of the process (HTTPS it serves or calls included). */
static void tls_attach(struct tg_tracer *t, pid_t pid)
{
	const struct tg_tls_progs progs = {.write = t->skel->progs.tg_ssl_write,
					   .write_ex = t->skel->progs.tg_ssl_write_ex,
					   .read = t->skel->progs.tg_ssl_read,
					   .read_ex = t->skel->progs.tg_ssl_read_ex,
					   .handshake = t->skel->progs.tg_ssl_handshake,
					   .ret = t->skel->progs.tg_ssl_ret,
					   .on_free = t->skel->progs.tg_ssl_free};

	for (size_t i = 0; i < t->ntls; i++)
		if (t->tls[i].pid == pid)
			return;
	if (t->ntls == t->ctls) {
		size_t c = t->ctls ? t->ctls * 2 : 8;
		struct tg_tlsprobe *n = realloc(t->tls, c * sizeof(*n));

		if (!n)
			return;
		t->tls = n;
		t->ctls = c;
	}
	/* An entry even when nothing attached: tried once. */
	tg_tlsprobe__attach(&t->tls[t->ntls++], pid, &progs);
}

static void tls_detach(struct tg_tracer *t, pid_t pid)
{
	for (size_t i = 0; i < t->ntls; i++) {
		if (t->tls[i].pid != pid)
			continue;
		tg_tlsprobe__detach(&t->tls[i]);
		t->tls[i] = t->tls[--t->ntls];
		return;
	}
}

int tg_tracer__map_fd(const struct tg_tracer *t, const char *name)
{
	return t && name ? bpf_object__find_map_fd_by_name(t->skel->obj, name) : -EINVAL;
}

int tg_tracer__task_probes(const struct tg_tracer *t, pid_t pid)
{
	for (size_t i = 0; t && i < t->nprobes; i++)
		if (t->probes[i].pid == pid)
			return t->probes[i].bits;
	return 0;
}

/* Register pid's CPython runtime in py_procs (or remove a stale entry when
 * pid does not run a supported CPython). Returns 0 or -errno of detect. */
static int python_register(struct tg_tracer *t, pid_t pid)
{
	int fd = bpf_map__fd(t->skel->maps.py_procs);
	uint32_t key = (uint32_t)pid;
	struct tg_pyruntime rt;
	struct tg_py_proc cfg;
	int ret = tg_pyruntime__detect(pid, &rt);

	if (ret) {
		bpf_map_delete_elem(fd, &key);
		task_probes_detach(t, pid);
		if (ret == -ENOTSUP)
			tg_warn("pid %d runs CPython %d.%d, whose internals TimeGlass cannot read: "
				"its samples carry no Python stacks",
				(int)pid, rt.major, rt.minor);
		else if (ret != -ENOENT)
			tg_debug("pid %d: no CPython runtime (%s)", (int)pid, strerror(-ret));
		return ret;
	}
	tg_pyruntime__bpf_config(&rt, &cfg);
	if (bpf_map_update_elem(fd, &key, &cfg, BPF_ANY))
		return -errno;
	tg_debug("pid %d: CPython %d.%d, _PyRuntime at 0x%llx (%s; offsets: %s)", (int)pid,
		 rt.major, rt.minor, (unsigned long long)rt.runtime, rt.path, rt.off.source);
	task_probes_attach(t, pid, rt.path);
	return 0;
}

static int on_sample(void *ctx, void *data, size_t size)
{
	struct tg_tracer *t = ctx;
	const struct tg_ev_hdr *h = data;

	if (size < sizeof(*h))
		return 0;
	if (h->type == TG_EV_PROC && size >= sizeof(struct tg_ev_proc)) {
		const struct tg_ev_proc *p = data;
		uint32_t key = h->pid;

		if (p->kind == TG_PROC_EXIT) {
			forget_conns(t, h->pid);
			task_probes_detach(t, (pid_t)h->pid);
			tls_detach(t, (pid_t)h->pid);
			bpf_map_delete_elem(bpf_map__fd(t->skel->maps.py_procs), &key);
		} else if (p->kind == TG_PROC_EXEC) {
			forget_exec_closed(t, h->pid, h->ts_ns);
			tls_detach(t, (pid_t)h->pid); /* the new image maps its own libssl */
			python_register(t, (pid_t)h->pid);
		} else if (p->kind == TG_PROC_FORK) {
			python_register(t, (pid_t)p->child_pid);
		}
	} else if (h->type == TG_EV_CONN && size >= sizeof(struct tg_ev_conn)) {
		const struct tg_ev_conn *c = data;

		if (c->role == TG_ROLE_CLIENT)
			uvwrite_attach(t, (pid_t)h->pid);
	} else if (h->type == TG_EV_DATA && size >= sizeof(struct tg_ev_data)) {
		const struct tg_ev_data *d = data;

		if (d->flags & TG_DATA_CIPHER)
			tls_attach(t, (pid_t)h->pid);
	}
	t->handled++;
	return t->fn(t->ctx, data, size);
}

static void bump_epoch(struct tg_tracer *t)
{
	__atomic_fetch_add(&t->skel->bss->traced_epoch, 1, __ATOMIC_SEQ_CST);
}

static int set_tunables(struct tg_tracer *t, const struct tg_tracer_cfg *cfg, char *err,
			size_t errlen)
{
	uint32_t capture = cfg && cfg->capture_bytes ? cfg->capture_bytes : TG_DEFAULT_CAPTURE;
	uint32_t ring = cfg && cfg->ring_bytes ? cfg->ring_bytes : TG_DEFAULT_RING;
	uint32_t wakeup = cfg && cfg->wakeup_bytes ? cfg->wakeup_bytes : ring / 8;
	int ncpus = libbpf_num_possible_cpus();
	int ret;

	if (ring < 4096 || (ring & (ring - 1))) {
		snprintf(err, errlen, "ring buffer size %u is not a power of two >= 4096", ring);
		return -EINVAL;
	}
	if (capture > TG_HEAD_MAX)
		capture = TG_HEAD_MAX;
	t->skel->rodata->capture_bytes = capture;
	t->skel->rodata->wakeup_bytes = wakeup;
	t->skel->rodata->follow_clients = t->follow_clients;
	t->skel->rodata->pg_capture_bytes =
	    cfg && cfg->pg_capture_bytes && cfg->pg_capture_bytes < TG_HEAD_MAX
		? cfg->pg_capture_bytes
		: TG_HEAD_MAX;
	t->npg_ports = 0;
	for (size_t i = 0; cfg && i < cfg->npg_ports && i < TG_TRACER_MAX_PG_PORTS; i++)
		t->pg_ports[t->npg_ports++] = cfg->pg_ports[i];
	if (!t->npg_ports)
		t->pg_ports[t->npg_ports++] = TG_TRACER_DEFAULT_PG_PORT;
	t->skel->rodata->follow_children = cfg ? cfg->follow_children != 0 : true;
	if (!cfg || !cfg->sample_hz)
		bpf_program__set_autoload(t->skel->progs.tg_sample, false);
	if (t->no_task_probes) {
		/* No CPU per request: nothing reads hdr.oncpu_ns, runq_ns or
		 * heap_bytes (TASK events carry them), and these programs run
		 * on every context switch, mmap, brk and mprotect of the
		 * machine; sys_enter_mprotect is the only enter tracepoint,
		 * whose callback every syscall then pays. */
		t->skel->rodata->track_oncpu = false;
		bpf_program__set_autoload(t->skel->progs.tg_sched_switch, false);
		bpf_program__set_autoload(t->skel->progs.tg_sched_wakeup, false);
		bpf_program__set_autoload(t->skel->progs.tg_exit_mmap, false);
		bpf_program__set_autoload(t->skel->progs.tg_exit_brk, false);
		bpf_program__set_autoload(t->skel->progs.tg_enter_mprotect, false);
	}
	if (ncpus <= 0) {
		snprintf(err, errlen, "cannot count possible CPUs: %s", strerror(-ncpus));
		return ncpus ? ncpus : -EINVAL;
	}
	if ((size_t)ncpus > sizeof(t->skel->bss->emitted) / sizeof(t->skel->bss->emitted[0])) {
		snprintf(err, errlen, "%d possible CPUs: more than the BPF counters hold", ncpus);
		return -E2BIG;
	}
	ret = bpf_map__set_max_entries(t->skel->maps.events, ring);
	if (!ret)
		ret = bpf_map__set_max_entries(t->skel->maps.scratch_map, (uint32_t)ncpus);
	if (ret)
		snprintf(err, errlen, "cannot size BPF maps: %s", strerror(-ret));
	return ret;
}

/* Attach tg_sample to a cpu-clock perf event on every CPU. */
static int attach_sampling(struct tg_tracer *t, uint32_t hz, char *err, size_t errlen)
{
	struct perf_event_attr attr = {0};
	int ncpus = libbpf_num_possible_cpus(), attached = 0, last = 0;

	if (hz > TG_TRACER_MAX_SAMPLE_HZ)
		hz = TG_TRACER_MAX_SAMPLE_HZ;
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_CPU_CLOCK;
	attr.freq = 1;
	attr.sample_freq = hz;
	t->sample_links = calloc((size_t)(ncpus > 0 ? ncpus : 1), sizeof(struct bpf_link *));
	if (!t->sample_links) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->nsample_links = ncpus;
	for (int cpu = 0; cpu < ncpus; cpu++) {
		int fd =
		    (int)syscall(SYS_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		struct bpf_link *l;

		if (fd < 0) {
			last = -errno; /* ENODEV: offline CPU */
			continue;
		}
		l = bpf_program__attach_perf_event(t->skel->progs.tg_sample, fd);
		if (!l) {
			last = -errno;
			close(fd);
			continue;
		}
		t->sample_links[cpu] = l;
		attached++;
	}
	if (!attached) {
		snprintf(err, errlen, "cannot open cpu-clock perf events for sampling: %s",
			 strerror(-last));
		return last ? last : -ENODEV;
	}
	tg_debug("sampling at %u Hz on %d CPUs", hz, attached);
	return 0;
}

struct tg_tracer *tg_tracer__open(const struct tg_tracer_cfg *cfg, tg_tracer_event_fn fn, void *ctx,
				  char *err, size_t errlen)
{
	struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
	struct tg_tracer *t = NULL;
	char msg[256];
	int ret;

	if (!fn) {
		snprintf(err, errlen, "no event callback");
		ret = -EINVAL;
		goto fail;
	}
	ret = check_support(err, errlen);
	if (ret)
		goto fail;
	libbpf_set_print(libbpf_print);
	setrlimit(RLIMIT_MEMLOCK, &rl); /* unnecessary on >= 5.11 (memcg accounting), harmless */
	t = calloc(1, sizeof(*t));
	if (!t) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	t->fn = fn;
	t->ctx = ctx;
	t->no_task_probes = cfg && cfg->no_task_probes;
	t->follow_clients = true; /* network waits (TG_DATA_TIMING) */
	t->skel = tg_io_bpf__open();
	if (!t->skel) {
		ret = -errno;
		libbpf_strerror(ret, msg, sizeof(msg));
		snprintf(err, errlen, "cannot open the BPF programs: %s", msg);
		goto fail;
	}
	ret = set_tunables(t, cfg, err, errlen);
	if (ret)
		goto fail;
	ret = tg_io_bpf__load(t->skel);
	if (ret) {
		libbpf_strerror(ret, msg, sizeof(msg));
		snprintf(err, errlen,
			 "cannot load the BPF programs: %s (run with --debug for the "
			 "verifier log)",
			 msg);
		goto fail;
	}
	for (size_t i = 0; i < t->npg_ports; i++) {
		uint8_t one = 1;

		if (bpf_map_update_elem(bpf_map__fd(t->skel->maps.pg_ports), &t->pg_ports[i], &one,
					BPF_ANY)) {
			ret = -errno;
			snprintf(err, errlen, "cannot set the PostgreSQL ports: %s",
				 strerror(errno));
			goto fail;
		}
	}
	ret = tg_io_bpf__attach(t->skel);
	if (ret) {
		libbpf_strerror(ret, msg, sizeof(msg));
		snprintf(err, errlen, "cannot attach the BPF programs: %s", msg);
		goto fail;
	}
	if (cfg && cfg->sample_hz) {
		ret = attach_sampling(t, cfg->sample_hz, err, errlen);
		if (ret)
			goto fail;
	}
	t->rb = ring_buffer__new(bpf_map__fd(t->skel->maps.events), on_sample, t, NULL);
	if (!t->rb) {
		ret = -errno;
		libbpf_strerror(ret, msg, sizeof(msg));
		snprintf(err, errlen, "cannot open the ring buffer: %s", msg);
		goto fail;
	}
	return t;
fail:
	tg_tracer__close(t);
	errno = ret < 0 ? -ret : EINVAL;
	return NULL;
}

static bool is_listen_port(const struct tg_sock *socks, size_t n, uint16_t port)
{
	for (size_t i = 0; i < n; i++)
		if (socks[i].state == TG_TCP_LISTEN && socks[i].lport == port)
			return true;
	return false;
}

/* Announce one established socket of pid and follow it. Returns the
 * callback's result (0 to continue). */
static int announce_existing(struct tg_tracer *t, pid_t pid, const struct tg_sock *s, bool server)
{
	struct tg_conn_key key = {.tgid = (uint32_t)pid, .fd = s->fd};
	struct tg_conn_val val = {0};
	struct tg_ev_conn ev;
	struct timespec ts;

	val.conn_id = TG_CONN_ID_USER_BIT | ++t->user_conn_ids;
	val.role = server ? TG_ROLE_SERVER : TG_ROLE_CLIENT;
	val.pg = !server && is_pg_port(t, s->rport);
	if (server || val.pg || t->follow_clients) {
		if (bpf_map_update_elem(bpf_map__fd(t->skel->maps.conns), &key, &val, BPF_NOEXIST))
			return 0; /* already followed (accepted after attach), or map full */
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	memset(&ev, 0, sizeof(ev));
	ev.hdr.type = TG_EV_CONN;
	ev.hdr.size = sizeof(ev);
	ev.hdr.cpu = (uint32_t)sched_getcpu();
	ev.hdr.pid = (uint32_t)pid;
	ev.hdr.tid = (uint32_t)pid;
	ev.hdr.ts_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	ev.conn_id = val.conn_id;
	ev.fd = s->fd;
	ev.role = val.role;
	ev.origin = TG_ORIGIN_EXISTING;
	if (!server)
		uvwrite_attach(t, pid);
	ev.family = (uint16_t)s->family;
	ev.lport = s->lport;
	ev.rport = s->rport;
	memcpy(ev.laddr, s->laddr, sizeof(ev.laddr));
	memcpy(ev.raddr, s->raddr, sizeof(ev.raddr));
	return t->fn(t->ctx, &ev, sizeof(ev));
}

int tg_tracer__add_pid(struct tg_tracer *t, pid_t pid)
{
	char path[64];
	uint32_t key = (uint32_t)pid;
	uint8_t one = 1;
	struct tg_sock *socks = NULL;
	size_t n = 0;
	int ret;

	if (!t || pid <= 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (access(path, F_OK))
		return -ESRCH;
	if (bpf_map_update_elem(bpf_map__fd(t->skel->maps.traced_pids), &key, &one, BPF_ANY))
		return -errno;
	bump_epoch(t);
	python_register(t, pid);
	ret = tg_procscan__sockets(NULL, pid, &socks, &n);
	if (ret) {
		tg_warn("pid %d: cannot list its sockets (%s): connections open before now are "
			"not followed",
			(int)pid, strerror(-ret));
		return 0;
	}
	for (size_t i = 0; i < n && !ret; i++) {
		if (socks[i].state != TG_TCP_ESTABLISHED)
			continue;
		ret =
		    announce_existing(t, pid, &socks[i], is_listen_port(socks, n, socks[i].lport));
	}
	free(socks);
	return ret > 0 ? -ECANCELED : ret;
}

int tg_tracer__remove_pid(struct tg_tracer *t, pid_t pid)
{
	uint32_t key = (uint32_t)pid;
	int ret = 0;

	if (!t || pid <= 0)
		return -EINVAL;
	if (bpf_map_delete_elem(bpf_map__fd(t->skel->maps.traced_pids), &key))
		ret = -errno;
	bpf_map_delete_elem(bpf_map__fd(t->skel->maps.py_procs), &key);
	task_probes_detach(t, pid);
	tls_detach(t, pid);
	bump_epoch(t);
	forget_conns(t, key);
	return ret;
}

int tg_tracer__poll(struct tg_tracer *t, int timeout_ms)
{
	int ret;

	if (!t)
		return -EINVAL;
	t->handled = 0;
	ret = ring_buffer__poll(t->rb, timeout_ms);
	if (ret >= 0 || ret == -EINTR)
		ret = ring_buffer__consume(t->rb);
	if (ret < 0 && ret != -EINTR)
		return ret;
	return t->handled;
}

void tg_tracer__counters(struct tg_tracer *t, struct tg_tracer_counters *out)
{
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!t)
		return;
	n = sizeof(t->skel->bss->emitted) / sizeof(t->skel->bss->emitted[0]);
	for (size_t i = 0; i < n; i++) {
		out->emitted += __atomic_load_n(&t->skel->bss->emitted[i], __ATOMIC_RELAXED);
		out->dropped += __atomic_load_n(&t->skel->bss->dropped[i], __ATOMIC_RELAXED);
		out->oncpu_misses +=
		    __atomic_load_n(&t->skel->bss->oncpu_miss[i], __ATOMIC_RELAXED);
	}
}

void tg_tracer__close(struct tg_tracer *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->nsample_links; i++)
		bpf_link__destroy(t->sample_links[i]);
	free(t->sample_links);
	while (t->nprobes)
		task_probes_detach(t, t->probes[0].pid);
	free(t->probes);
	while (t->ntls)
		tls_detach(t, t->tls[0].pid);
	free(t->tls);
	ring_buffer__free(t->rb);
	tg_io_bpf__destroy(t->skel);
	free(t);
}
