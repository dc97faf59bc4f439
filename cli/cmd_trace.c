/* SPDX-License-Identifier: MIT */
/*
 * `timeglass trace`: attach to uvicorn servers (found by name, by pid, or
 * started as `-- COMMAND`), record their HTTP requests into the database
 * until --duration, Ctrl-C or SIGTERM, then flush and optionally report.
 *
 * One thread does it all: the ring buffer is polled every 100 ms and, once a
 * second, the target list is refreshed (new uvicorn processes, listening
 * sockets whose routes are not known yet, a started command that exited),
 * the drop counters are recorded, every live target's RSS and CPU time are
 * sampled (process_stats) and the status line is printed. The store
 * writes from its own thread, so this loop never waits on disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "doctor.h"
#include "log.h"
#include "pipeline.h"
#include "privs.h"
#include "procscan.h"
#include "procstat.h"
#include "report.h"
#include "route.h"
#include "server.h"
#include "session.h"
#include "store.h"
#include "timeglass/events.h"
#include "tracer.h"

#define MAX_TARGETS 256
#define MAX_PORT_ROUTES 32
#define NS_PER_SEC 1000000000ULL

struct target {
	pid_t pid;
	bool alive;
	bool routes_done; /* routes known (or given up) */
	int route_tries;
};

struct port_routes {
	uint16_t port;
	char *text; /* NULL: fetch failed (not FastAPI, or no openapi) */
};

struct trace {
	struct tg_session s;
	struct tg_tracer *tracer;
	struct target targets[MAX_TARGETS];
	size_t ntargets;
	struct port_routes ports[MAX_PORT_ROUTES];
	size_t nports;
	bool uvicorn_mode;
	pid_t child; /* -- COMMAND */
	int child_status;
	bool child_exited;
	bool quiet;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: timeglass trace [--uvicorn] [--pid PID]... [--duration SECONDS] [--db FILE]\n"
	    "                       [--report] [--format text|json|markdown] [--record FILE]\n"
	    "                       [--capture-query-values] [--capture-bytes N] [-q] [-v]\n"
	    "                       [--sample-hz N] [-- COMMAND ARGS...]\n\n"
	    "Attach eBPF programs to uvicorn servers and record every HTTP request (method,\n"
	    "path, route, status, bytes, latency to the last byte) into an SQLite database.\n\n"
	    "targets (default: --uvicorn):\n"
	    "  --uvicorn            every process running uvicorn, now and started later\n"
	    "  --pid PID            this process (repeatable); its children are followed\n"
	    "  -- COMMAND ARGS...   start COMMAND traced from its first instruction (as the\n"
	    "                       invoking user when run through sudo); stop when it exits\n"
	    "options:\n"
	    "  --duration SECONDS   stop by itself after SECONDS (default: until Ctrl-C/SIGTERM)\n"
	    "  --db FILE            database file (default ./timeglass.db; owned by the sudo "
	    "user)\n"
	    "  --report             print the report when tracing ends (--format selects it)\n"
	    "  --record FILE        also write the raw event stream to FILE (for `replay`)\n"
	    "  --capture-query-values  store query-string values (default: names only)\n"
	    "  --capture-bytes N    bytes of each server read/write copied (default 1024)\n"
	    "  --ring-kib N         ring buffer size in KiB, a power of two (default 16384);\n"
	    "                       a full ring drops events, counted and flagged on requests\n"
	    "  --pg-port PORT       PostgreSQL server port whose client connections are\n"
	    "                       followed (repeatable; default 5432)\n"
	    "  --capture-sql-values store SQL texts with literal values (default: $n)\n"
	    "  --sample-hz N        Python CPU samples per second and CPU for flame graphs\n"
	    "                       (default 99, at most 999; 0: off)\n"
	    "  --no-task-cpu        no per-request CPU/GC accounting (its CPython probes cost\n"
	    "                       ~1-2 us per task switch; docs/attribution.md)\n"
	    "  --no-serve           do not serve the live dashboard (default: on)\n"
	    "  --listen ADDR:PORT   where the dashboard listens (default 127.0.0.1:7070;\n"
	    "                       another address needs a token, generated if not given)\n"
	    "  --token TOKEN        the dashboard's API token\n"
	    "  -q, --quiet          no status line;  -v, --verbose  more logging\n"
	    "  --debug              everything, including libbpf and the BPF verifier log\n");
}

static uint64_t now_ns(void)
{
	return tg_session__mono_now();
}

static struct target *find_target(struct trace *tr, pid_t pid)
{
	size_t i;

	for (i = 0; i < tr->ntargets; i++)
		if (tr->targets[i].pid == pid)
			return &tr->targets[i];
	return NULL;
}

/* Note pid as a target: the run's targets table and the recording learn it. */
static struct target *note_target(struct trace *tr, pid_t pid)
{
	struct target *t = find_target(tr, pid);
	char cmdline[512] = "", ver[16];

	if (t) {
		t->alive = true;
		return t;
	}
	if (tr->ntargets == MAX_TARGETS) {
		tg_warn("more than %d targets: pid %d is traced but not listed", MAX_TARGETS, pid);
		return NULL;
	}
	t = &tr->targets[tr->ntargets++];
	memset(t, 0, sizeof(*t));
	t->pid = pid;
	t->alive = true;
	tg_procscan__cmdline(NULL, pid, cmdline, sizeof(cmdline));
	tg_session__text_event(&tr->s, TG_EV_TARGET, (uint32_t)pid, cmdline[0] ? cmdline : "?");
	if (tg_procscan__python_version(NULL, pid, ver, sizeof(ver)) == 1)
		tg_info("tracing pid %d (Python %s): %s", pid, ver, cmdline);
	else if (!tr->quiet)
		fprintf(
		    stderr,
		    "timeglass: pid %d is not CPython (%s): its HTTP is captured; Python-specific "
		    "parts are skipped\n",
		    pid, cmdline);
	return t;
}

static int add_target(struct trace *tr, pid_t pid)
{
	int ret = tg_tracer__add_pid(tr->tracer, pid);

	if (ret)
		return ret;
	note_target(tr, pid);
	return 0;
}

static struct port_routes *port_cache(struct trace *tr, uint16_t port)
{
	size_t i;

	for (i = 0; i < tr->nports; i++)
		if (tr->ports[i].port == port)
			return &tr->ports[i];
	return NULL;
}

/* Learn pid's routes from the /openapi.json of its listening port. */
static void learn_routes(struct trace *tr, struct target *t)
{
	struct tg_sock *socks = NULL;
	struct port_routes *pr = NULL;
	size_t n = 0, i;
	int family = AF_INET;
	uint16_t port = 0;

	if (t->routes_done || !t->alive)
		return;
	if (tg_procscan__sockets(NULL, t->pid, &socks, &n))
		return;
	for (i = 0; i < n; i++) {
		if (socks[i].state == TG_TCP_LISTEN) {
			port = socks[i].lport;
			family = socks[i].family;
			break;
		}
	}
	free(socks);
	if (!port) {
		/* Not listening (yet): try again next second, for up to a minute. */
		if (++t->route_tries > 60)
			t->routes_done = true;
		return;
	}
	pr = port_cache(tr, port);
	if (!pr && tr->nports < MAX_PORT_ROUTES) {
		struct tg_routes *routes = tg_routes__new();
		char *body = NULL;
		size_t len = 0;
		uint16_t local = 0;
		int ret;

		ret = tg_procscan__fetch_openapi(family, port, 2000, &body, &len, &local);
		if (local) {
			char buf[16];

			snprintf(buf, sizeof(buf), "%u", local);
			tg_session__text_event(&tr->s, TG_EV_IGNORE_PEER, (uint32_t)t->pid, buf);
		}
		if (ret != 0 && ret != -ENOENT && ++t->route_tries <= 30) {
			/* Listening but not answering yet (app starting): retry next second. */
			tg_debug("port %u: /openapi.json not available yet (%s)", port,
				 strerror(-ret));
			free(body);
			tg_routes__free(routes);
			return;
		}
		pr = &tr->ports[tr->nports++];
		pr->port = port;
		pr->text = NULL;
		if (ret == 0 && routes && tg_routes__add_openapi(routes, body, len) > 0)
			pr->text = tg_routes__to_text(routes);
		if (!pr->text)
			tg_info("port %u: no OpenAPI routes (%s); routes are inferred from paths",
				port, ret ? strerror(-ret) : "not an OpenAPI document");
		else
			tg_info("port %u: %zu routes from /openapi.json", port,
				tg_routes__count(routes));
		free(body);
		tg_routes__free(routes);
	}
	if (pr && pr->text)
		tg_session__text_event(&tr->s, TG_EV_ROUTES, (uint32_t)t->pid, pr->text);
	t->routes_done = true;
}

static int on_event(void *ctx, const void *ev, size_t size)
{
	struct trace *tr = ctx;
	const struct tg_ev_hdr *h = ev;

	tg_session__event(&tr->s, ev, size);
	if (h->type == TG_EV_PROC && size >= sizeof(struct tg_ev_proc)) {
		const struct tg_ev_proc *p = ev;
		struct target *t;

		if (p->kind == TG_PROC_FORK) {
			note_target(tr, (pid_t)p->child_pid);
		} else if (p->kind == TG_PROC_EXEC) {
			t = find_target(tr, (pid_t)h->pid);
			if (t) /* a new program: its routes may differ */
				t->routes_done = false, t->route_tries = 0;
		} else if (p->kind == TG_PROC_EXIT) {
			t = find_target(tr, (pid_t)h->pid);
			if (t)
				t->alive = false;
		}
	}
	return 0;
}

static void scan_uvicorn(struct trace *tr)
{
	pid_t pids[MAX_TARGETS];
	int n = tg_procscan__find_uvicorn(NULL, pids, MAX_TARGETS), i;

	for (i = 0; i < n && i < MAX_TARGETS; i++) {
		struct target *t = find_target(tr, pids[i]);

		if (t && t->alive)
			continue;
		if (add_target(tr, pids[i]) == 0 && !tr->quiet)
			fprintf(stderr, "timeglass: tracing uvicorn pid %d\n", pids[i]);
	}
}

/* One process_stats row per live target (RSS, CPU, threads), once a second.
 * A target that has just exited is skipped: its exit event marks it dead. */
static void sample_targets(struct trace *tr, uint64_t now)
{
	struct tg_procstat ps;
	size_t i;

	for (i = 0; i < tr->ntargets; i++) {
		const struct target *t = &tr->targets[i];

		if (!t->alive || tg_procstat__read((uint32_t)t->pid, &ps))
			continue;
		tg_store__add_process_stat(tr->s.store, (uint32_t)t->pid, now, ps.rss_bytes,
					   ps.cpu_ns, ps.threads);
	}
}

static size_t alive_targets(const struct trace *tr)
{
	size_t i, n = 0;

	for (i = 0; i < tr->ntargets; i++)
		n += tr->targets[i].alive;
	return n;
}

static void status_line(struct trace *tr, uint64_t started, uint64_t *last_reqs, uint64_t *last_ns,
			bool tty)
{
	struct tg_tracer_counters c;
	struct tg_pipeline_stats ps;
	uint64_t now = now_ns();
	double secs = (double)(now - started) / 1e9;
	double since = (double)(now - (*last_ns ? *last_ns : started)) / 1e9;

	tg_tracer__counters(tr->tracer, &c);
	tg_pipeline__stats(tr->s.pipe, &ps);
	fprintf(
	    stderr,
	    "%s[timeglass] %6.1fs  targets %zu  requests %llu (%llu/s)  events %llu  drops %llu%s",
	    tty ? "\r" : "", secs, alive_targets(tr), (unsigned long long)ps.requests,
	    (unsigned long long)(since > 0 ? (double)(ps.requests - *last_reqs) / since : 0),
	    (unsigned long long)c.emitted, (unsigned long long)c.dropped, tty ? "   " : "\n");
	*last_reqs = ps.requests;
	*last_ns = now;
}

/* Fork the live dashboard: the child waits on a pipe until the database
 * exists, drops root (to the sudo user, or nobody), and serves it read-only
 * until SIGTERM. Returns the child's pid (-1 on failure); *go_fd gets the
 * pipe's write end: write one byte to start it, close it to cancel. */
static pid_t start_server(const struct tg_server_cfg *cfg, int *go_fd)
{
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		char go;
		int ret;

		close(fds[1]);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		signal(SIGINT, SIG_IGN); /* Ctrl-C stops the tracer, which stops us */
		signal(SIGTERM, SIG_DFL);
		if (read(fds[0], &go, 1) != 1)
			_exit(0);
		ret = tg_privs__drop_for_server();
		if (ret) {
			fprintf(stderr, "timeglass: dashboard: cannot drop root privileges: %s\n",
				strerror(-ret));
			_exit(1);
		}
		if (access(cfg->db_path, R_OK) != 0) {
			fprintf(stderr,
				"timeglass: dashboard: %s is not readable without root (%s); trace "
				"through sudo from your user, put --db in a readable directory, or "
				"use --no-serve and `timeglass serve` later\n",
				cfg->db_path, strerror(errno));
			_exit(1);
		}
		_exit(tg_server__run_forever(cfg) ? 1 : 0);
	}
	close(fds[0]);
	*go_fd = fds[1];
	return pid;
}

static pid_t start_command(char **argv, int *go_fd)
{
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		char go;

		close(fds[1]);
		/* Wait until the tracer has added this pid, so the first instruction is traced. */
		if (read(fds[0], &go, 1) != 1)
			_exit(127);
		if (tg_privs__drop_to_user()) {
			fprintf(stderr, "timeglass: cannot drop privileges: %s\n", strerror(errno));
			_exit(127);
		}
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execvp(argv[0], argv);
		fprintf(stderr, "timeglass: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[0]);
	*go_fd = fds[1];
	return pid;
}

/* Whether pid's per-task accounting sees every Context switch (on either
 * loop) and creation: its requests then name the Contexts they ran in, and
 * samples need no task read (tg_profile_cfg.contexts_known). A runtime
 * whose stdlib-loop entries cannot be probed keeps the read. ctx: the
 * struct trace. */
static bool contexts_known(void *ctx, uint32_t pid)
{
	const int all = TG_TASK_PROBES_ENTER | TG_TASK_PROBES_LINK | TG_TASK_PROBES_ASYNCIO;
	const struct trace *tr = ctx;
	int bits = tr->tracer ? tg_tracer__task_probes(tr->tracer, (pid_t)pid) : 0;

	return (bits & all) == all;
}

static void reap_child(struct trace *tr)
{
	int st;

	if (tr->child > 0 && !tr->child_exited && waitpid(tr->child, &st, WNOHANG) == tr->child) {
		tr->child_exited = true;
		tr->child_status = st;
	}
}

static void stop_child(struct trace *tr)
{
	int i;

	if (tr->child <= 0 || tr->child_exited)
		return;
	kill(tr->child, SIGTERM);
	for (i = 0; i < 100 && !tr->child_exited; i++) {
		tg_tracer__poll(tr->tracer, 50);
		reap_child(tr);
	}
	if (!tr->child_exited) {
		kill(tr->child, SIGKILL);
		waitpid(tr->child, &tr->child_status, 0);
		tr->child_exited = true;
	}
}

static int check_preconditions(void)
{
	struct tg_check checks[TG_MAX_CHECKS];
	size_t n, i;
	int failed = 0;

	if (geteuid() == 0 && tg_doctor__ensure_tracefs() != 0)
		tg_warn("could not mount tracefs at /sys/kernel/tracing");
	n = tg_doctor__run(checks, 1);
	for (i = 0; i < n; i++) {
		if (checks[i].status != TG_CHECK_FAIL)
			continue;
		fprintf(stderr, "timeglass trace: %s: %s\n", checks[i].name, checks[i].detail);
		if (checks[i].fix[0])
			fprintf(stderr, "  -> %s\n", checks[i].fix);
		failed = 1;
	}
	return failed ? -EPERM : 0;
}

int cmd_trace(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"uvicorn", no_argument, NULL, 'u'},
	    {"pid", required_argument, NULL, 'p'},
	    {"duration", required_argument, NULL, 'D'},
	    {"db", required_argument, NULL, 'd'},
	    {"report", no_argument, NULL, 'r'},
	    {"format", required_argument, NULL, 'f'},
	    {"record", required_argument, NULL, 'R'},
	    {"capture-query-values", no_argument, NULL, 'Q'},
	    {"capture-bytes", required_argument, NULL, 'c'},
	    {"ring-kib", required_argument, NULL, 'K'},
	    {"pg-port", required_argument, NULL, 300},
	    {"capture-sql-values", no_argument, NULL, 301},
	    {"sample-hz", required_argument, NULL, 302},
	    {"no-task-cpu", no_argument, NULL, 303},
	    {"quiet", no_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"debug", no_argument, NULL, 'g'},
	    {"no-serve", no_argument, NULL, 'N'},
	    {"listen", required_argument, NULL, 'L'},
	    {"token", required_argument, NULL, 'T'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static struct trace tr;
	struct tg_tracer_cfg tcfg = {
	    .capture_bytes = 1024, .follow_children = 1, .sample_hz = TG_TRACER_DEFAULT_SAMPLE_HZ};
	struct tg_session_cfg scfg = {.db_path = "timeglass.db"};
	struct tg_report_opts ropts = {.format = TG_REPORT_TEXT, .slowest = 10};
	struct tg_tracer_counters counters;
	struct sigaction sa = {.sa_handler = on_signal};
	pid_t pids[64];
	size_t npids = 0, i;
	double duration = 0;
	bool report = false;
	char err[512] = "", targets[600] = "", *end;
	uint64_t started, deadline = 0, next_tick, last_reqs = 0, last_dropped = 0,
			  last_status_ns = 0;
	int c, ret, go_fd = -1, status = TG_EXIT_OK;
	bool tty = isatty(STDERR_FILENO), serve = true;
	struct tg_server_cfg scfg_srv = {.listen = "127.0.0.1:7070", .live = true};
	char token[40];
	pid_t server_pid = -1;
	int server_go = -1;
	struct timespec rt;

	memset(&tr, 0, sizeof(tr));
	optind = 1;
	while ((c = getopt_long(argc, argv, "+hqv", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			tr.uvicorn_mode = true;
			break;
		case 'p': {
			long v = strtol(optarg, &end, 10);

			if (*end || v <= 0 || npids == 64) {
				fprintf(stderr, "timeglass trace: bad --pid '%s'\n", optarg);
				return TG_EXIT_USAGE;
			}
			pids[npids++] = (pid_t)v;
			break;
		}
		case 'D':
			duration = strtod(optarg, &end);
			if (*end || duration <= 0) {
				fprintf(stderr, "timeglass trace: --duration needs seconds > 0\n");
				return TG_EXIT_USAGE;
			}
			break;
		case 'd':
			scfg.db_path = optarg;
			break;
		case 'r':
			report = true;
			break;
		case 'f':
			if (tg_report__parse_format(optarg, &ropts.format)) {
				fprintf(stderr, "timeglass trace: unknown format '%s'\n", optarg);
				return TG_EXIT_USAGE;
			}
			break;
		case 'R':
			scfg.record_path = optarg;
			break;
		case 'Q':
			scfg.keep_query_values = true;
			break;
		case 300: {
			long v = strtol(optarg, &end, 10);

			if (*end || v <= 0 || v > 65535 ||
			    tcfg.npg_ports >= TG_TRACER_MAX_PG_PORTS) {
				fprintf(stderr,
					"timeglass trace: bad --pg-port '%s' (1..65535, at "
					"most %d)\n",
					optarg, TG_TRACER_MAX_PG_PORTS);
				return TG_EXIT_USAGE;
			}
			tcfg.pg_ports[tcfg.npg_ports++] = (uint16_t)v;
			scfg.pg_ports = tcfg.pg_ports;
			scfg.npg_ports = tcfg.npg_ports;
			break;
		}
		case 301:
			scfg.keep_sql_values = true;
			break;
		case 302: {
			long v = strtol(optarg, &end, 10);

			if (!*optarg || *end || v < 0 || v > TG_TRACER_MAX_SAMPLE_HZ) {
				fprintf(stderr,
					"timeglass trace: --sample-hz must be 0..%d (0: off)\n",
					TG_TRACER_MAX_SAMPLE_HZ);
				return TG_EXIT_USAGE;
			}
			tcfg.sample_hz = (uint32_t)v;
			break;
		}
		case 303:
			tcfg.no_task_probes = 1;
			break;
		case 'c': {
			long v = strtol(optarg, &end, 10);

			if (*end || v < 64 || v > TG_HEAD_MAX) {
				fprintf(stderr, "timeglass trace: --capture-bytes must be 64..%d\n",
					TG_HEAD_MAX);
				return TG_EXIT_USAGE;
			}
			tcfg.capture_bytes = (uint32_t)v;
			break;
		}
		case 'K': {
			long v = strtol(optarg, &end, 10);

			/* the kernel wants a power of two, at least a page */
			if (*end || v < 4 || v > 1048576 || (v & (v - 1))) {
				fprintf(stderr,
					"timeglass trace: --ring-kib must be a power of two, "
					"4..1048576\n");
				return TG_EXIT_USAGE;
			}
			tcfg.ring_bytes = (uint32_t)v * 1024;
			break;
		}
		case 'q':
			tr.quiet = true;
			break;
		case 'v':
			tg_log__set_level(tg_log__level() == TG_LOG_WARN ? TG_LOG_INFO
									 : TG_LOG_DEBUG);
			break;
		case 'g':
			tg_log__set_level(TG_LOG_DEBUG);
			break;
		case 'N':
			serve = false;
			break;
		case 'L':
			if (!strchr(optarg, ':')) {
				fprintf(stderr, "timeglass trace: --listen needs ADDR:PORT\n");
				return TG_EXIT_USAGE;
			}
			scfg_srv.listen = optarg;
			break;
		case 'T':
			if (!*optarg) {
				fprintf(stderr, "timeglass trace: --token needs a value\n");
				return TG_EXIT_USAGE;
			}
			scfg_srv.token = optarg;
			break;
		case 'h':
			usage(stdout);
			return TG_EXIT_OK;
		default:
			usage(stderr);
			return TG_EXIT_USAGE;
		}
	}
	if (optind < argc && npids) {
		fprintf(stderr, "timeglass trace: use either --pid or -- COMMAND, not both\n");
		return TG_EXIT_USAGE;
	}
	if (optind == argc && !npids)
		tr.uvicorn_mode = true;
	for (i = 0; i < npids; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d", pids[i]);
		if (access(path, F_OK) != 0) {
			fprintf(stderr, "timeglass trace: no such process: %d\n", pids[i]);
			return TG_EXIT_FAIL;
		}
	}
	if (check_preconditions())
		return TG_EXIT_FAIL;

	/* The run's description of its targets. */
	if (optind < argc) {
		size_t off = (size_t)snprintf(targets, sizeof(targets), "--");
		for (int a = optind; a < argc && off < sizeof(targets) - 1; a++)
			off +=
			    (size_t)snprintf(targets + off, sizeof(targets) - off, " %s", argv[a]);
	} else {
		size_t off = 0;
		if (tr.uvicorn_mode)
			off += (size_t)snprintf(targets, sizeof(targets), "--uvicorn");
		for (i = 0; i < npids && off < sizeof(targets) - 1; i++)
			off += (size_t)snprintf(targets + off, sizeof(targets) - off, "%s--pid %d",
						off ? " " : "", pids[i]);
	}
	scfg.targets = targets;
	scfg.sample_hz = tcfg.sample_hz;
	scfg.live_symbols = true;
	scfg.contexts_known = contexts_known;
	scfg.contexts_ctx = &tr;
	if (serve) {
		scfg_srv.db_path = scfg.db_path;
		if (tg_server__apply_token_policy(&scfg_srv, token, sizeof(token))) {
			fprintf(stderr, "timeglass trace: cannot generate a token\n");
			return TG_EXIT_FAIL;
		}
		/* Forked before the store's writer thread exists: the child is single-threaded. */
		server_pid = start_server(&scfg_srv, &server_go);
		if (server_pid < 0)
			tg_warn("cannot start the dashboard: %s", strerror(errno));
	}
	scfg.mono_to_epoch_ns = tg_session__mono_to_epoch();
	clock_gettime(CLOCK_REALTIME, &rt);
	scfg.started_ns = (uint64_t)rt.tv_sec * NS_PER_SEC + (uint64_t)rt.tv_nsec;
	if (tg_session__open(&tr.s, &scfg, err, sizeof(err))) {
		fprintf(stderr, "timeglass trace: %s\n", err);
		tg_session__close(&tr.s);
		return TG_EXIT_FAIL;
	}
	tg_privs__give_db_to_user(scfg.db_path);
	if (scfg.record_path)
		tg_privs__give_to_user(scfg.record_path);
	if (server_go >= 0) {
		if (write(server_go, "g", 1) == 1 && !tr.quiet)
			fprintf(stderr,
				"timeglass: dashboard at http://%s/%s%s (live; --no-serve turns it "
				"off)\n",
				scfg_srv.listen, scfg_srv.token ? "?token=" : "",
				scfg_srv.token ? scfg_srv.token : "");
		close(server_go);
		server_go = -1;
	}

	tr.tracer = tg_tracer__open(&tcfg, on_event, &tr, err, sizeof(err));
	if (!tr.tracer) {
		fprintf(stderr, "timeglass trace: %s\n", err);
		tg_session__close(&tr.s);
		return TG_EXIT_FAIL;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (i = 0; i < npids; i++) {
		ret = add_target(&tr, pids[i]);
		if (ret) {
			fprintf(stderr, "timeglass trace: cannot trace pid %d: %s\n", pids[i],
				strerror(-ret));
			status = TG_EXIT_FAIL;
			goto out;
		}
	}
	if (optind < argc) {
		tr.child = start_command(argv + optind, &go_fd);
		if (tr.child < 0) {
			fprintf(stderr, "timeglass trace: cannot start %s: %s\n", argv[optind],
				strerror(errno));
			status = TG_EXIT_FAIL;
			goto out;
		}
		ret = add_target(&tr, tr.child);
		if (ret || write(go_fd, "g", 1) != 1) {
			fprintf(stderr, "timeglass trace: cannot trace the command: %s\n",
				strerror(ret ? -ret : errno));
			close(go_fd);
			kill(tr.child, SIGKILL);
			waitpid(tr.child, NULL, 0);
			tr.child_exited = true;
			status = TG_EXIT_FAIL;
			goto out;
		}
		close(go_fd);
	}
	if (tr.uvicorn_mode)
		scan_uvicorn(&tr);
	for (i = 0; i < tr.ntargets; i++)
		learn_routes(&tr, &tr.targets[i]);
	fprintf(stderr, "timeglass: attached (%zu target%s%s), database %s\n", tr.ntargets,
		tr.ntargets == 1 ? "" : "s",
		tr.uvicorn_mode && !tr.ntargets ? ", waiting for uvicorn" : "", scfg.db_path);

	started = now_ns();
	if (duration > 0)
		deadline = started + (uint64_t)(duration * 1e9);
	next_tick = started + NS_PER_SEC;
	while (!stop_requested) {
		uint64_t now;

		ret = tg_tracer__poll(tr.tracer, 100);
		if (ret < 0 && ret != -EINTR) {
			fprintf(stderr, "timeglass trace: reading events failed: %s\n",
				strerror(-ret));
			status = TG_EXIT_FAIL;
			break;
		}
		now = now_ns();
		if (deadline && now >= deadline)
			break;
		reap_child(&tr);
		if (tr.child > 0 && tr.child_exited)
			break;
		if (now < next_tick)
			continue;
		next_tick = now + NS_PER_SEC;
		if (tr.uvicorn_mode)
			scan_uvicorn(&tr);
		for (i = 0; i < tr.ntargets; i++)
			learn_routes(&tr, &tr.targets[i]);
		sample_targets(&tr, now);
		tg_tracer__counters(tr.tracer, &counters);
		if (counters.dropped != last_dropped) {
			tg_session__drops_event(&tr.s, counters.emitted, counters.dropped);
			last_dropped = counters.dropped;
		}
		if (!tr.quiet && (tty || (now - started) / NS_PER_SEC % 10 == 0))
			status_line(&tr, started, &last_reqs, &last_status_ns, tty);
	}
	if (tty && !tr.quiet)
		fputc('\n', stderr);
	stop_child(&tr);
out:
	/* Drain what is left in the ring buffer, then record the final counters. */
	while (tr.tracer && tg_tracer__poll(tr.tracer, 0) > 0)
		;
	tg_tracer__counters(tr.tracer, &counters);
	tg_session__drops_event(&tr.s, counters.emitted, counters.dropped);
	tg_tracer__close(tr.tracer);
	if (tg_session__close(&tr.s)) {
		fprintf(stderr, "timeglass trace: could not finish writing %s\n", scfg.db_path);
		status = TG_EXIT_FAIL;
	}
	tg_privs__give_db_to_user(scfg.db_path);
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	for (i = 0; i < tr.nports; i++)
		free(tr.ports[i].text);
	if (!tr.quiet)
		fprintf(stderr, "timeglass: done: %llu events, %llu dropped%s; database %s\n",
			(unsigned long long)counters.emitted, (unsigned long long)counters.dropped,
			counters.dropped
			    ? " (see the report: requests that lost events are flagged)"
			    : "",
			scfg.db_path);
	if (counters.oncpu_misses)
		tg_warn("%llu thread switch-ins missed their on-CPU bookkeeping (BPF task storage "
			"busy): some per-request CPU figures are low",
			(unsigned long long)counters.oncpu_misses);
	if (report && status == TG_EXIT_OK) {
		if (tg_report__write(scfg.db_path, &ropts, stdout, err, sizeof(err))) {
			fprintf(stderr, "timeglass trace: report: %s\n", err);
			status = TG_EXIT_FAIL;
		}
	}
	return status;
}
