#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Average cost per run of each of the tracer's BPF programs under load
(needs root, wrk, bpftool, a built timeglass).

Starts the demo app (one uvicorn worker), then for each round and each
tracer binary given (--timeglass, repeatable: e.g. a copy of the previous
build and the current one, so an A/B comparison runs on the same app, in
alternation), starts `timeglass trace --pid APP`, runs wrk on every --path
for --seconds each and reads `bpftool prog show --json` before and after:
run_time_ns / run_cnt deltas of the programs the tracer holds (found by the
pid that owns them), i.e. the average ns per run of each program during the
load. Prints, per binary and program, the median over rounds of that average,
the runs per request (median runs per round / median requests wrk completed
per round) and their product, the program's BPF time per request; the sum of
those is the last line. The trap of each uprobe hit (about 1 us here) is not
in run_time_ns and comes on top. --db-endpoint gives the app a throw-away
PostgreSQL (as bench/overhead.py does) and loads its /db/items/1.

kernel.bpf_stats_enabled is turned on for the measurement and set back to
its previous value at the end. The machine is shared and noisy: quote medians,
compare binaries within one invocation only.

    sudo /usr/bin/python3 bench/prog_cost.py --timeglass /tmp/old/timeglass \\
        --timeglass build/timeglass --rounds 5
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time

from overhead import DB_PATH, PgCluster, Tracer, free_port, wait_ready  # same directory

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PY = "/usr/bin/python3"


def prog_ids(pid):
    """Ids of the BPF programs process pid holds a descriptor of (its fdinfo;
    Debian's bpftool shows no owner pids)."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            pass
    return ids


def progs_of(pid):
    """name -> (run_time_ns, run_cnt) of the BPF programs process pid holds."""
    ids = prog_ids(pid)
    out = subprocess.run(["bpftool", "prog", "show", "--json"], check=True,
                         capture_output=True, text=True).stdout
    res = {}
    for p in json.loads(out):
        if p.get("id") not in ids:
            continue
        name = p.get("name", "?")
        t, c = res.get(name, (0, 0))
        res[name] = (t + p.get("run_time_ns", 0), c + p.get("run_cnt", 0))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--timeglass", action="append", help="tracer binary (repeatable)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=8, help="wrk duration per path")
    ap.add_argument("--path", action="append", help="default: /hello and /sync-cpu?n=2000")
    ap.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--trace-arg", action="append", default=[])
    ap.add_argument("--db-endpoint", action="store_true",
                    help=f"a throw-away PostgreSQL for the app (asyncpg pool) and {DB_PATH} "
                         "among the paths (alone when no --path is given)")
    args = ap.parse_args()
    binaries = args.timeglass or [os.path.join(REPO, "build", "timeglass")]
    paths = args.path or ([] if args.db_endpoint else ["/hello", "/sync-cpu?n=2000"])
    if args.db_endpoint and DB_PATH not in paths:
        paths.append(DB_PATH)
    pg = PgCluster() if args.db_endpoint else None
    env = dict(os.environ, DATABASE_URL=pg.url) if pg else None
    trace_extra = ["--no-serve"] + (["--pg-port", str(pg.port)] if pg else []) + args.trace_arg
    with open("/proc/sys/kernel/bpf_stats_enabled") as f:
        stats_before = f.read().strip()
    port = free_port()
    app = subprocess.Popen([PY, "-m", "uvicorn", "app:app", "--app-dir",
                            os.path.join(REPO, "examples"), "--host", "127.0.0.1", "--port",
                            str(port), "--loop", args.loop, "--log-level", "warning",
                            "--no-access-log"], stdout=subprocess.DEVNULL, env=env)
    per = {b: {} for b in binaries}  # binary -> prog -> [(ns per run, runs)]
    requests = {b: [] for b in binaries}  # binary -> [requests per round]
    try:
        wait_ready(port)
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("1")
        print(f"app pid {app.pid}, loop {args.loop}, paths {paths}, {args.seconds}s each, "
              f"{args.rounds} rounds")
        with tempfile.TemporaryDirectory(prefix="tg-progcost-") as tmp:
            for r in range(args.rounds):
                order = binaries if r % 2 == 0 else binaries[::-1]
                for b in order:
                    tr = Tracer(b, app.pid, os.path.join(tmp, f"r{r}.db"), trace_extra)
                    time.sleep(0.5)
                    before = progs_of(tr.proc.pid)
                    done = 0
                    for path in paths:
                        out = subprocess.run(["wrk", "-t1", f"-c{args.connections}",
                                              f"-d{args.seconds}s",
                                              f"http://127.0.0.1:{port}{path}"],
                                             check=True, capture_output=True, text=True).stdout
                        m = re.search(r"(\d+) requests in", out)
                        done += int(m.group(1)) if m else 0
                    requests[b].append(done)
                    after = progs_of(tr.proc.pid)
                    tr.stop()
                    for name, (t1, c1) in after.items():
                        t0, c0 = before.get(name, (0, 0))
                        if c1 > c0:
                            per[b].setdefault(name, []).append(((t1 - t0) / (c1 - c0), c1 - c0))
                    os.unlink(os.path.join(tmp, f"r{r}.db"))
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(stats_before)
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(20)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        if pg:
            pg.stop()
    names = sorted({n for b in binaries for n in per[b]})
    print(f"{'program':24}" + "".join(f"{os.path.basename(os.path.dirname(b)) + '/' + os.path.basename(b):>34}"
                                     for b in binaries))
    print(f"{'':24}" + "".join(f"{'ns/run  runs/request  ns/request':>34}" for _ in binaries))
    total = {b: 0.0 for b in binaries}
    for n in names:
        row = f"{n:24}"
        for b in binaries:
            v = per[b].get(n)
            if not v:
                row += f"{'-':>34}"
                continue
            ns = statistics.median(x for x, _ in v)
            reqs = statistics.median(requests[b]) or 1
            runs = statistics.median(c for _, c in v) / reqs
            total[b] += ns * runs
            row += f"{ns:>12.0f} {runs:>10.2f} {ns * runs:>10.0f} "
        print(row)
    print(f"{'all, per request':24}" + "".join(f"{total[b]:>33.0f} " for b in binaries))
    print("requests per round (median): "
          + ", ".join(f"{statistics.median(requests[b]):.0f}" for b in binaries))


if __name__ == "__main__":
    main()
