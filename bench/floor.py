#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""What any eBPF syscall tracer costs the demo's /hello (or /db/items/1) here,
next to TimeGlass (needs root, wrk, bpftrace, a built timeglass).

bench/overhead.py compares TimeGlass against nothing. This puts it next to the
issue's reference point, "a bpftrace script with five syscall tracepoints
filtered by pid", in the same invocation, on the same app process, so the
ratios can be compared with each other (ratios from two invocations cannot:
they swing by ±5 % on these machines).

Arms, run in a rotating order for --rounds rounds of `wrk -t1 -c32 -dSECONDS`:

    untraced      nothing attached
    bpftrace-5tp  bpftrace counting the exits of read, write, writev, recvfrom
                  and sendto of the app's pid (a map update per hit, no data)
    bpftrace-sql  with --db-endpoint: the same, plus a counting uprobe on each
                  call site in uvloop's module where TimeGlass puts its write
                  probe (the one hook that ties a queued write to its task on
                  uvloop, bpf/uvwrite.bpf.h); the sites are the ones
                  `timeglass trace --debug` reports for this app process
    burn          no tracer: a process that spins for --burn-duty of every 1 ms
                  (0.05; with the loop's own overhead it takes ≈ 7 % of a CPU,
                  printed as its "tracer" CPU), not pinned; is the app slowed
                  by a neighbour's CPU alone?
    tg-capture    timeglass trace --no-task-cpu --sample-hz 0: HTTP capture,
                  storage, no per-request CPU probes, no sampling
    tg-no-task    timeglass trace --no-task-cpu (sampling at the default 99 Hz)
    tg-999        timeglass trace --no-task-cpu --sample-hz 999 (the most it takes)
    tg-default    timeglass trace with every default on

burn and tg-999 are run only when asked for (--arm). For each arm: the median requests/s and CPU per request (app + the tracing
process, utime+stime from /proc/PID/stat), and the ratios of those medians to
the untraced arm's.

--db-endpoint starts a throw-away PostgreSQL cluster (bench/overhead.py's),
gives the app its DATABASE_URL (an asyncpg pool on uvloop), loads the demo's
/db/items/1 (one asyncpg query per request) and adds bpftrace-sql to the arms.

    sudo /usr/bin/python3 bench/floor.py [--rounds 5] [--seconds 8] [--path /hello]
    sudo /usr/bin/python3 bench/floor.py --db-endpoint
"""

import argparse
import os
import shutil
import signal
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overhead  # noqa: E402  (the app, wrk and tracer helpers)

FIVE_TP = ("read", "write", "writev", "recvfrom", "sendto")
ARMS = ["bpftrace-5tp", "bpftrace-sql", "burn", "tg-capture", "tg-no-task", "tg-999",
        "tg-default"]
BURNER = """
import sys, time
duty = float(sys.argv[1])
while True:
    t0 = time.monotonic()
    while time.monotonic() - t0 < duty * 1e-3:
        pass
    time.sleep((1 - duty) * 1e-3)
"""


class Burner:
    """A process burning duty of one CPU in 1 ms periods (the burn arm)."""

    def __init__(self, duty):
        self.proc = subprocess.Popen([sys.executable, "-c", BURNER, str(duty)])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
SITE_RE = re.compile(r"uvloop write probe at (\S+)\+0x([0-9a-f]+)")


def file_offset_to_vaddr(path, off):
    """The virtual address (as bpftrace's uprobe:FILE:ADDR wants it) of file
    offset off in the ELF file path, from its PT_LOAD program headers."""
    with open(path, "rb") as f:
        elf = f.read(64)
        phoff, = struct.unpack_from("<Q", elf, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", ph,
                                                                       i * phentsize)
        if p_type == 1 and p_offset <= off < p_offset + p_filesz:
            return p_vaddr + (off - p_offset)
    sys.exit(f"floor.py: offset 0x{off:x} is in no loaded segment of {path}")


def uvloop_sites(args, app_pid, tmpdir):
    """The (file, virtual address) pairs where timeglass probes uvloop's
    queued writes in app_pid, from a short `trace --debug`."""
    cmd = [args.timeglass, "trace", "--pid", str(app_pid), "--debug", "--duration", "2",
           "--db", os.path.join(tmpdir, "sites.db")] + pg_args(args)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stderr
    sites = [(m.group(1), int(m.group(2), 16)) for m in SITE_RE.finditer(out)]
    if not sites:
        sys.exit("floor.py: timeglass reported no uvloop write probe sites (it probes them in "
                 "uvloop's module; a build it cannot read gets PySet_Add itself, which this arm "
                 "does not imitate):\n" + out[-2000:])
    return [(path, file_offset_to_vaddr(path, off)) for path, off in sites]


def pg_args(args):
    return ["--pg-port", str(args.pg.port)] if args.pg else []


class Bpftrace:
    """bpftrace counting the app's exits of FIVE_TP, started and waited for
    until it has attached."""

    def __init__(self, pid, sites=()):
        probes = ",".join([f"tracepoint:syscalls:sys_exit_{s}" for s in FIVE_TP]
                          + [f"uprobe:{path}:0x{addr:x}" for path, addr in sites])
        prog = f"{probes} /pid == {pid}/ {{ @[probe] = count(); }}"
        # --unsafe: bpftrace 0.17 accepts an address inside a function only so.
        self.proc = subprocess.Popen(["bpftrace", "--unsafe", "-e", prog], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("Attaching"):
            sys.exit(f"floor.py: bpftrace did not attach: {line!r}")
        time.sleep(0.5)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out = self.proc.communicate(timeout=30)[0]
        return {line.split("[", 1)[1].rsplit("]", 1)[0]: int(line.rsplit(":", 1)[1])
                for line in out.splitlines() if line.startswith("@[")}


def arm_starter(name, args, app_pid, tmpdir, n):
    """A started tracer for arm `name` (None for untraced); its .proc is the
    process whose CPU counts as the tracer's."""
    if name == "untraced":
        return None
    if name == "bpftrace-5tp":
        return Bpftrace(app_pid)
    if name == "bpftrace-sql":
        return Bpftrace(app_pid, args.sites)
    if name == "burn":
        return Burner(args.burn_duty)
    extra = {"tg-capture": ["--no-task-cpu", "--sample-hz", "0"],
             "tg-no-task": ["--no-task-cpu"],
             "tg-999": ["--no-task-cpu", "--sample-hz", "999"],
             "tg-default": []}[name] + pg_args(args)
    tracer = overhead.Tracer(args.timeglass, app_pid, os.path.join(tmpdir, f"{name}{n}.db"), extra)
    time.sleep(0.5)  # the initial /proc scan and /openapi.json fetch
    return tracer


def one_run(name, args, app_pid, port, tmpdir, n):
    tracer = arm_starter(name, args, app_pid, tmpdir, n)
    try:
        a0 = overhead.cpu_seconds(app_pid)
        t0 = overhead.cpu_seconds(tracer.proc.pid) if tracer else 0.0
        requests, rps, _ = overhead.wrk(args, port, args.seconds, args.path)
        a1 = overhead.cpu_seconds(app_pid)
        t1 = overhead.cpu_seconds(tracer.proc.pid) if tracer else 0.0
    finally:
        hits = tracer.stop() if tracer else None
    cpu_us = ((a1 - a0) + (t1 - t0)) / requests * 1e6
    print(f"  {name:13s} {rps:9.0f} req/s  CPU/req {cpu_us:6.1f} us "
          f"(app {(a1 - a0) / requests * 1e6:.1f}, tracer {(t1 - t0) / requests * 1e6:.1f})",
          flush=True)
    if isinstance(hits, dict):  # bpftrace: what each probe counted, per request
        print("    hits/request: " + ", ".join(f"{p.rsplit(':', 1)[-1]} {n / requests:.2f}"
                                              for p, n in sorted(hits.items())), flush=True)
    return rps, cpu_us


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--path", default=None, help="default /hello (/db/items/1 with --db-endpoint)")
    ap.add_argument("--burn-duty", type=float, default=0.05,
                    help="the burn arm's share of one CPU (default 0.05)")
    ap.add_argument("--db-endpoint", action="store_true",
                    help="a throw-away PostgreSQL for the app; loads /db/items/1")
    ap.add_argument("--arm", action="append", default=None, choices=ARMS,
                    help="arms to run besides untraced (default: all)")
    ap.add_argument("--timeglass", default=os.path.join(overhead.REPO, "build", "timeglass"))
    args = ap.parse_args()
    args.threads, args.connections = 1, 32
    if os.geteuid() != 0:
        sys.exit("floor.py: run as root (bpftrace and timeglass attach BPF programs)")
    if args.rounds < 1 or args.seconds < 1:
        sys.exit("floor.py: --rounds and --seconds must be at least 1")
    arms = ["untraced"] + (args.arm or [a for a in ARMS if a not in ("burn", "tg-999") and
                                        (a != "bpftrace-sql" or args.db_endpoint)])
    if "bpftrace-sql" in arms and not args.db_endpoint:
        sys.exit("floor.py: the bpftrace-sql arm needs --db-endpoint")
    args.path = args.path or (overhead.DB_PATH if args.db_endpoint else "/hello")
    if any(a.startswith("bpftrace") for a in arms) and not shutil.which("bpftrace"):
        sys.exit("floor.py: the bpftrace arms need bpftrace (apt-get install bpftrace); "
                 "or choose the arms with --arm")
    if not 0 < args.burn_duty < 1:
        sys.exit("floor.py: --burn-duty must be between 0 and 1")
    if not os.access(args.timeglass, os.X_OK):
        sys.exit(f"floor.py: {args.timeglass} is not built (make)")
    args.pg = overhead.PgCluster() if args.db_endpoint else None
    env = dict(os.environ, DATABASE_URL=args.pg.url) if args.pg else None
    port = overhead.free_port()
    results = {a: [] for a in arms}
    app = None
    try:
        app = subprocess.Popen([overhead.PY, "-m", "uvicorn", "app:app", "--app-dir",
                                os.path.join(overhead.REPO, "examples"), "--host", "127.0.0.1",
                                "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                                "--log-level", "warning", "--no-access-log"],
                               stdout=subprocess.DEVNULL, env=env)
        overhead.wait_ready(port)
        overhead.wrk(args, port, 2, args.path)  # warm-up
        with tempfile.TemporaryDirectory(prefix="tg-floor-") as tmpdir:
            if "bpftrace-sql" in arms:
                args.sites = uvloop_sites(args, app.pid, tmpdir)
                print("uvloop write probe sites: " + ", ".join(
                    f"{os.path.basename(p)}:0x{a:x}" for p, a in args.sites), flush=True)
            for r in range(args.rounds):
                order = arms[r % len(arms):] + arms[:r % len(arms)]
                print(f"round {r + 1}/{args.rounds}", flush=True)
                for name in order:
                    results[name].append(one_run(name, args, app.pid, port, tmpdir, r))
    finally:
        if app:
            app.send_signal(signal.SIGTERM)
            app.wait(15)
        if args.pg:
            args.pg.stop()
    base_rps = statistics.median(x[0] for x in results["untraced"])
    base_cpu = statistics.median(x[1] for x in results["untraced"])
    print(f"\nmedians of {args.rounds} rounds, {args.path}, wrk -t1 -c32 -d{args.seconds}s")
    print(f"{'arm':13s} {'req/s':>9s} {'CPU/req us':>11s} {'throughput':>11s} {'CPU/req':>8s}")
    for name in arms:
        rps = statistics.median(x[0] for x in results[name])
        cpu = statistics.median(x[1] for x in results[name])
        print(f"{name:13s} {rps:9.0f} {cpu:11.1f} {rps / base_rps:11.3f} {cpu / base_cpu:8.3f}")


if __name__ == "__main__":
    main()
