#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""What any eBPF syscall tracer costs the demo's /hello here, next to TimeGlass
(needs root, wrk, bpftrace, a built timeglass).

bench/overhead.py compares TimeGlass against nothing. This puts it next to the
issue's reference point, "a bpftrace script with five syscall tracepoints
filtered by pid", in the same invocation, on the same app process, so the
ratios can be compared with each other (ratios from two invocations cannot:
they swing by ±5 % on these machines).

Arms, run in a rotating order for --rounds rounds of `wrk -t1 -c32 -dSECONDS`:

    untraced      nothing attached
    bpftrace-5tp  bpftrace counting the exits of read, write, writev, recvfrom
                  and sendto of the app's pid (a map update per hit, no data)
    tg-capture    timeglass trace --no-task-cpu --sample-hz 0: HTTP capture,
                  storage, no per-request CPU probes, no sampling
    tg-no-task    timeglass trace --no-task-cpu (sampling at the default 99 Hz)
    tg-default    timeglass trace with every default on

For each arm: the median requests/s and CPU per request (app + the tracing
process, utime+stime from /proc/PID/stat), and the ratios of those medians to
the untraced arm's.

    sudo /usr/bin/python3 bench/floor.py [--rounds 5] [--seconds 8] [--path /hello]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overhead  # noqa: E402  (the app, wrk and tracer helpers)

FIVE_TP = ("read", "write", "writev", "recvfrom", "sendto")
ARMS = ["bpftrace-5tp", "tg-capture", "tg-no-task", "tg-default"]


class Bpftrace:
    """bpftrace counting the app's exits of FIVE_TP, started and waited for
    until it has attached."""

    def __init__(self, pid):
        probes = ",".join(f"tracepoint:syscalls:sys_exit_{s}" for s in FIVE_TP)
        prog = f"{probes} /pid == {pid}/ {{ @[probe] = count(); }}"
        self.proc = subprocess.Popen(["bpftrace", "-e", prog], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("Attaching"):
            sys.exit(f"floor.py: bpftrace did not attach: {line!r}")
        time.sleep(0.5)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out = self.proc.communicate(timeout=30)[0]
        return sum(int(line.rsplit(":", 1)[1]) for line in out.splitlines() if line.startswith("@["))


def arm_starter(name, args, app_pid, tmpdir, n):
    """A started tracer for arm `name` (None for untraced); its .proc is the
    process whose CPU counts as the tracer's."""
    if name == "untraced":
        return None
    if name == "bpftrace-5tp":
        return Bpftrace(app_pid)
    extra = {"tg-capture": ["--no-task-cpu", "--sample-hz", "0"],
             "tg-no-task": ["--no-task-cpu"],
             "tg-default": []}[name]
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
        if tracer:
            tracer.stop()
    cpu_us = ((a1 - a0) + (t1 - t0)) / requests * 1e6
    print(f"  {name:13s} {rps:9.0f} req/s  CPU/req {cpu_us:6.1f} us "
          f"(app {(a1 - a0) / requests * 1e6:.1f}, tracer {(t1 - t0) / requests * 1e6:.1f})",
          flush=True)
    return rps, cpu_us


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--path", default="/hello")
    ap.add_argument("--arm", action="append", default=None, choices=ARMS,
                    help="arms to run besides untraced (default: all)")
    ap.add_argument("--timeglass", default=os.path.join(overhead.REPO, "build", "timeglass"))
    args = ap.parse_args()
    args.threads, args.connections = 1, 32
    if os.geteuid() != 0:
        sys.exit("floor.py: run as root (bpftrace and timeglass attach BPF programs)")
    if args.rounds < 1 or args.seconds < 1:
        sys.exit("floor.py: --rounds and --seconds must be at least 1")
    arms = ["untraced"] + (args.arm or ARMS)
    if "bpftrace-5tp" in arms and not shutil.which("bpftrace"):
        sys.exit("floor.py: the bpftrace-5tp arm needs bpftrace (apt-get install bpftrace); "
                 "or choose the arms with --arm")
    if not os.access(args.timeglass, os.X_OK):
        sys.exit(f"floor.py: {args.timeglass} is not built (make)")
    port = overhead.free_port()
    app = subprocess.Popen([overhead.PY, "-m", "uvicorn", "app:app", "--app-dir",
                            os.path.join(overhead.REPO, "examples"), "--host", "127.0.0.1",
                            "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                            "--log-level", "warning", "--no-access-log"],
                           stdout=subprocess.DEVNULL)
    results = {a: [] for a in arms}
    try:
        overhead.wait_ready(port)
        overhead.wrk(args, port, 2, args.path)  # warm-up
        with tempfile.TemporaryDirectory(prefix="tg-floor-") as tmpdir:
            for r in range(args.rounds):
                order = arms[r % len(arms):] + arms[:r % len(arms)]
                print(f"round {r + 1}/{args.rounds}", flush=True)
                for name in order:
                    results[name].append(one_run(name, args, app.pid, port, tmpdir, r))
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(15)
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
