/* SPDX-License-Identifier: MIT */
/* Environment checks (doctor.h). Each check is a small function filling one row. */
#include "doctor.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "procscan.h"
#include "pyctx.h"
#include "tlssites.h"

#define CAP_SYS_PTRACE_BIT 19
#define CAP_SYS_ADMIN_BIT 21
#define CAP_PERFMON_BIT 38
#define CAP_BPF_BIT 39

static void set(struct tg_check *c, const char *name, enum tg_check_status st, const char *fix,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void set(struct tg_check *c, const char *name, enum tg_check_status st, const char *fix,
		const char *fmt, ...)
{
	va_list ap;

	c->name = name;
	c->status = st;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	snprintf(c->fix, sizeof(c->fix), "%s", fix ? fix : "");
}

static void check_kernel(struct tg_check *c)
{
	struct utsname u;
	int major = 0, minor = 0;

	uname(&u);
	sscanf(u.release, "%d.%d", &major, &minor);
	if (major > 5 || (major == 5 && minor >= 17))
		set(c, "kernel", TG_CHECK_OK, NULL, "Linux %s", u.release);
	else
		set(c, "kernel", TG_CHECK_FAIL,
		    "upgrade to Linux 5.15 or newer (bpf_task_pt_regs, task storage, BPF ring "
		    "buffer)",
		    "Linux %s is older than 5.17", u.release);
}

static void check_btf(struct tg_check *c)
{
	if (access("/sys/kernel/btf/vmlinux", R_OK) == 0)
		set(c, "BTF", TG_CHECK_OK, NULL, "/sys/kernel/btf/vmlinux present");
	else
		set(c, "BTF", TG_CHECK_FAIL,
		    "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions ship one)",
		    "/sys/kernel/btf/vmlinux: %s", strerror(errno));
}

static unsigned long long cap_eff(void)
{
	char line[256];
	unsigned long long caps = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	fclose(f);
	return caps;
}

static void check_privileges(struct tg_check *c, int tracing)
{
	unsigned long long caps = cap_eff();
	int bpf = (caps >> CAP_BPF_BIT & 1) || (caps >> CAP_SYS_ADMIN_BIT & 1);
	int perfmon = (caps >> CAP_PERFMON_BIT & 1) || (caps >> CAP_SYS_ADMIN_BIT & 1);
	int ptrace = caps >> CAP_SYS_PTRACE_BIT & 1;

	if (bpf && perfmon && ptrace)
		set(c, "privileges", TG_CHECK_OK, NULL, "%s (CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE)",
		    geteuid() == 0 ? "root" : "capabilities");
	else
		set(c, "privileges", tracing ? TG_CHECK_FAIL : TG_CHECK_WARN,
		    "run as root: sudo timeglass trace ... (or grant CAP_BPF, CAP_PERFMON, "
		    "CAP_SYS_PTRACE and CAP_SYS_ADMIN)",
		    "missing%s%s%s", bpf ? "" : " CAP_BPF", perfmon ? "" : " CAP_PERFMON",
		    ptrace ? "" : " CAP_SYS_PTRACE");
}

static int tracefs_mounted(void)
{
	return access("/sys/kernel/tracing/events/syscalls", F_OK) == 0;
}

int tg_doctor__ensure_tracefs(void)
{
	if (tracefs_mounted())
		return 0;
	if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) != 0 && errno != EBUSY)
		return -errno;
	return tracefs_mounted() ? 0 : -ENOENT;
}

static void check_tracefs(struct tg_check *c)
{
	if (tracefs_mounted())
		set(c, "tracefs", TG_CHECK_OK, NULL, "mounted at /sys/kernel/tracing");
	else if (geteuid() == 0)
		set(c, "tracefs", TG_CHECK_WARN, "none: timeglass trace mounts it itself",
		    "not mounted (needed to attach syscall tracepoints)");
	else
		set(c, "tracefs", TG_CHECK_FAIL, "sudo mount -t tracefs nodev /sys/kernel/tracing",
		    "not mounted (needed to attach syscall tracepoints)");
}

static void check_lockdown(struct tg_check *c)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/security/lockdown", "r");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
	if (strstr(buf, "[confidentiality]"))
		set(c, "lockdown", TG_CHECK_FAIL,
		    "boot without lockdown=confidentiality (it forbids reading process memory from "
		    "BPF)",
		    "%s", buf);
	else
		set(c, "lockdown", TG_CHECK_OK, NULL, "%s", buf[0] ? buf : "not enabled");
}

static void check_targets(struct tg_check *c)
{
	pid_t pids[64];
	char ver[16], list[200] = "";
	int n = tg_procscan__find_uvicorn(NULL, pids, 64), i;
	size_t off = 0;

	if (n < 0) {
		set(c, "uvicorn", TG_CHECK_WARN, NULL, "cannot scan /proc: %s", strerror(-n));
		return;
	}
	for (i = 0; i < n && i < 64; i++) {
		int r = tg_procscan__python_version(NULL, pids[i], ver, sizeof(ver));

		if (off < sizeof(list) - 32)
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%d (%s%s)",
						i ? ", " : "", pids[i], r == 1 ? "Python " : "",
						r == 1 ? ver : "not CPython");
	}
	if (n == 0)
		set(c, "uvicorn", TG_CHECK_WARN,
		    "start your app, or use trace -- uvicorn app:app / trace --pid PID",
		    "no uvicorn process running now");
	else
		set(c, "uvicorn", TG_CHECK_OK, NULL, "%d running: %s", n, list);
}

static void check_python(struct tg_check *c)
{
	if (access("/usr/bin/python3", X_OK) == 0)
		set(c, "python", TG_CHECK_OK, NULL,
		    "/usr/bin/python3 present; HTTP capture works for any server, CPython or not");
	else
		set(c, "python", TG_CHECK_WARN, NULL,
		    "/usr/bin/python3 not found; HTTP capture still works for any server");
}

/* An interpreter built with --enable-shared keeps its runtime in
 * libpython3.X.so: the first such library in the usual places whose probe
 * sites are found (path, s). Returns 0 or the first error. */
static int find_in_libpython(char *path, size_t len, struct tg_pyctx_sites *s)
{
	static const char *const pats[] = {
	    "/usr/lib/x86_64-linux-gnu/libpython3.*.so.1*",
	    "/usr/lib/aarch64-linux-gnu/libpython3.*.so.1*", "/usr/lib64/libpython3.*.so.1*",
	    "/usr/lib/libpython3.*.so.1*", "/usr/local/lib/libpython3.*.so.1*"};
	int ret = -ENOENT;

	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
		glob_t g;

		if (glob(pats[i], 0, NULL, &g))
			continue;
		for (size_t k = 0; k < g.gl_pathc; k++) {
			int r = tg_pyctx__find(g.gl_pathv[k], s);

			if (!r) {
				snprintf(path, len, "%s", g.gl_pathv[k]);
				globfree(&g);
				return 0;
			}
			if (ret == -ENOENT)
				ret = r;
		}
		globfree(&g);
	}
	return ret;
}

/* Where per-request CPU accounting would probe /usr/bin/python3 (pyctx.h):
 * the executable, or its shared libpython. */
static void check_task_probes(struct tg_check *c)
{
	struct tg_pyctx_sites s;
	char path[PATH_MAX];
	int ret;

	if (!realpath("/usr/bin/python3", path)) {
		set(c, "task probes", TG_CHECK_WARN, NULL, "no /usr/bin/python3 to look at");
		return;
	}
	ret = tg_pyctx__find(path, &s);
	if (ret && !find_in_libpython(path, sizeof(path), &s))
		ret = 0;
	if (ret)
		set(c, "task probes", TG_CHECK_WARN,
		    "use an interpreter that exports PyContext_Enter", "%s: %s: no CPU per request",
		    path, strerror(-ret));
	else if (!tg_pyctx__emulated(path, s.enter_off) ||
		 !tg_pyctx__emulated(path, s.new_call_off ? s.new_call_off : s.copy_off))
		set(c, "task probes", TG_CHECK_WARN,
		    "expect several us per Context switch, or trace with --no-task-cpu",
		    "%s: a Context probe lands on an instruction the kernel single-steps "
		    "(about 11 us a hit here, against 0.85 us for a push: docs/performance.md)",
		    path);
	else if (!s.asyncio_covered)
		set(c, "task probes", TG_CHECK_WARN, NULL, "%s: %s; CPU per request on uvloop only",
		    path, s.how);
	else
		set(c, "task probes", TG_CHECK_OK, NULL,
		    "%s: Context entry by %s, creation by %s (emulated instructions: one cheap "
		    "trap a hit)",
		    path, s.how, s.new_call_off ? "a call site" : "uretprobe");
}

/* Where PostgreSQL-over-TLS capture would probe the system's OpenSSL
 * (tlssites.h): the usual multiarch and lib64 places. */
static void check_openssl(struct tg_check *c)
{
	static const char *const paths[] = {"/usr/lib/x86_64-linux-gnu/libssl.so.3",
					    "/usr/lib/aarch64-linux-gnu/libssl.so.3",
					    "/usr/lib64/libssl.so.3", "/usr/lib/libssl.so.3"};
	struct tg_tls_sites s;

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		if (access(paths[i], R_OK) || tg_tlssites__decode(paths[i], &s))
			continue;
		if (s.internal)
			set(c, "openssl", TG_CHECK_OK, NULL,
			    "%s: TLS PostgreSQL connections read at its internal read/write "
			    "functions (cheap probes)",
			    paths[i]);
		else
			set(c, "openssl", TG_CHECK_WARN, NULL,
			    "%s: TLS PostgreSQL connections read at its exported functions "
			    "(single-stepped probes, ~12 us per call)",
			    paths[i]);
		return;
	}
	set(c, "openssl", TG_CHECK_WARN, NULL,
	    "no OpenSSL 3 libssl found: TLS PostgreSQL connections of the targets are probed in "
	    "whatever libssl they map, if any");
}

size_t tg_doctor__run(struct tg_check *checks, int tracing)
{
	size_t n = 0;

	check_kernel(&checks[n++]);
	check_btf(&checks[n++]);
	check_privileges(&checks[n++], tracing);
	check_tracefs(&checks[n++]);
	check_lockdown(&checks[n++]);
	if (!tracing) {
		check_python(&checks[n++]);
		check_task_probes(&checks[n++]);
		check_openssl(&checks[n++]);
		check_targets(&checks[n++]);
	}
	return n;
}

void tg_doctor__print(const struct tg_check *checks, size_t n)
{
	static const char *const st[] = {"ok", "warn", "FAIL"};
	size_t i;

	printf("%-12s %-5s %s\n", "CHECK", "STATUS", "DETAIL");
	for (i = 0; i < n; i++) {
		printf("%-12s %-6s %s\n", checks[i].name, st[checks[i].status], checks[i].detail);
		if (checks[i].fix[0])
			printf("%-12s %-6s -> %s\n", "", "", checks[i].fix);
	}
}
