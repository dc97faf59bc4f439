#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""What the per-task accounting probes cost the traced process (needs root).

Runs a small CPython workload untraced and under `timeglass trace -- ...`,
alternating, and prints the median cost of each operation and the traced
minus untraced difference, i.e. what one probe hit costs here:

  enter  ctx.run(f) alternating between two Contexts: every call enters a
         Context the thread is not in, so every call is a uprobe hit on
         _PyContext_Enter and one TG_EV_TASK ENTER event
  copy   contextvars.copy_context(): the Context creation probe (the call in context_new_from_vars)
         and one TG_EV_TASK LINK event (asyncio.Task() and every call_soon
         without a context copy the current Context this way)
  gc     gc.collect(0): the gc__start/gc__done USDT probes and a TG_EV_GC
  plain  a loop that hits no probe (the noise floor of the comparison)

The figures are the probes' cost inside the target (trap, BPF program, ring
buffer reservation); the tracer's own userspace work happens in its own
process. Quote the medians of one invocation; the VM is noisy.

    sudo /usr/bin/python3 bench/task_probes.py [--pairs 3] [--n 200000]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEGLASS = os.environ.get("TG_BIN", os.path.join(HERE, "..", "build", "timeglass"))

WORKLOAD = r"""
import contextvars, gc, sys, time
n = int(sys.argv[1])
def f():
    pass
a = contextvars.copy_context()
b = contextvars.copy_context()
def bench(fn):
    t = time.perf_counter_ns(); fn(); return (time.perf_counter_ns() - t) / n
def plain():
    for _ in range(n): f()
def enter():
    for _ in range(n // 2): a.run(f); b.run(f)
def copy():
    for _ in range(n): contextvars.copy_context()
def collect():
    for _ in range(n // 100): gc.collect(0)
time.sleep(0.5)  # let the tracer attach its per-process probes
res = {"plain": bench(plain), "enter": bench(enter), "copy": bench(copy),
       "gc": bench(collect) * 100}
print(" ".join("%s=%.1f" % kv for kv in res.items()), flush=True)
"""


def run(script, n, traced, db):
    cmd = ["/usr/bin/python3", script, str(n)]
    if traced:
        cmd = [TIMEGLASS, "trace", "--quiet", "--no-serve", "--sample-hz", "0",
               "--db", db, "--"] + cmd
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if "plain=" in l][-1]
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--n", type=int, default=200000)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("task_probes.py: run as root (the tracer needs it)")
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "work.py")
        with open(script, "w") as f:
            f.write(WORKLOAD)
        res = {False: [], True: []}
        for i in range(args.pairs):
            for traced in ((False, True) if i % 2 == 0 else (True, False)):
                r = run(script, args.n, traced, os.path.join(tmp, "t%d.db" % i))
                res[traced].append(r)
                print("%-9s %s" % ("traced" if traced else "untraced",
                                   "  ".join("%s %.0f ns" % kv for kv in r.items())), flush=True)
    print("\nmedian ns per operation (%d pairs, n=%d):" % (args.pairs, args.n))
    print("%-6s %10s %10s %10s" % ("op", "untraced", "traced", "probe"))
    for op in ("plain", "enter", "copy", "gc"):
        u = statistics.median(r[op] for r in res[False])
        t = statistics.median(r[op] for r in res[True])
        print("%-6s %10.0f %10.0f %10.0f" % (op, u, t, t - u))


if __name__ == "__main__":
    main()
