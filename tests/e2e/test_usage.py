# SPDX-License-Identifier: MIT
"""Per-request CPU, waiting time, memory and GC under concurrency (issue #4).

app_usage.py (real uvicorn + FastAPI, `--loop asyncio` and uvloop) measures
ground truth about itself: the CPU its handler code used (thread_time_ns around
every part that does not await; inside the worker for the thread-pool
endpoint), the GC collections that ran in the request's Context, the thread's
minor faults. LOAD_THREADS client threads with keep-alive http.client
connections send a shuffled mix of 452 requests, so many requests are in
flight on one loop at once: CPU burners on the loop (2-8 ms), sleepers, `def`
burners in the thread pool, burners behind a BaseHTTPMiddleware (child task),
StreamingResponses whose generator (a child task) burns between chunks, 20 MiB
allocators that call gc.collect(), /hello, and zero-CPU variants of each
burner shape. `timeglass trace --pid` records all of it.

Framework cost. The tracer charges a request its handler's CPU plus what the
framework spends in the request's task(s) (routing, validation, response,
middleware, anyio task groups). That cost is measured, not guessed:
  - F_untraced[shape]: CPU of the whole untraced process per zero-CPU request
    of the shape (/proc/PID/task/*/schedstat; 2000 /hello, 500 of each other
    shape, 8 connections, before the tracer attaches): everything the process
    does per request, uvicorn's parsing outside the request's task included.
    Measured here: hello 130-200 us, cpu 150-175, pool 250-300, middleware
    430-550, stream 250-310 us.
  - F_shape: median cpu_ns the tracer stored for the zero-CPU requests of the
    same shape in the same run (/hello for hello; the /cpu zero requests for
    the sleepers and allocators).
Checks:
  - F_shape <= 2 * F_untraced[shape] (the tracer may not charge a zero-CPU
    request much more than the whole process spends on one, plus the probes'
    own cost), so the tolerances below cannot grow by over-charging.
  - per request: truth <= cpu_ns <= truth + 2 * F_shape + gc_ns + JITTER_NS,
    for all but 5 % of each shape's requests (at least 3; printed; see outliers()).
    2 * F_shape: a request's framework work varies around its median (cold
    caches, interrupts, a page fault, pymalloc refills; worst excesses seen in
    5 asyncio runs: 1.41 ms over truth with F = 0.65 ms (middleware), 0.97 ms
    for one /hello with F = 0.20 ms, which was 60 us over this bound);
    gc_ns: an automatic collection that the request's own allocation triggered
    is legitimately its CPU; JITTER_NS = 0.5 ms: timer interrupts and loopback
    softirqs (sending a response on 127.0.0.1 runs the receiving side's TCP
    work and the client's wake-up in the sender's context, and the kernel
    charges it to the sending thread) on a 2-core VM shared with 24 client
    threads. The lower bound is exact: the handler's measured parts ran in the
    request's Context, on one thread, without switching.
  - per shape with CPU (loop, pool, middleware, stream, alloc): the mean
    error, mean(cpu_ns) - F_shape against mean(truth), within 10 %, over the
    requests inside the per-request bounds (the <= 5 % outside them, above,
    are left out: one misattributed thread-pool job is a tenth of a shape's
    total; the mean with them is printed). The raw ratio (printed with -s)
    includes the framework: BaseHTTPMiddleware alone costs ~0.55 ms per
    request, 11 % of a 5 ms handler.
  - sleepers (20-50 ms in asyncio.sleep, >= 80 % of them overlapping a CPU
    burner): cpu_ns < 1 ms each but for 5 % (printed), median < 0.5 ms.
  - allocators: gc_count >= the collections seen in their Context (>= 1, the
    explicit gc.collect()), gc_ns > 0 and >= half the wall time of the
    explicit collection; minflt >= 80 % of the thread's own count
    (getrusage); heap_bytes >= 10 MiB. Neighbours: a CPython collection is
    triggered by whatever code allocates the threshold-th container object,
    so an automatic gen0 collection may fall legitimately into any request;
    what is robust is (a) per request gc_count >= the collections the app saw
    in that request's Context, (b) the neighbours together are charged no
    more collections than the app saw besides the explicit ones, (c) no
    neighbour has the minor faults of an allocator (< 1/4 of the smallest
    allocator's own count) or its heap growth (< 4 MiB; the thread pool is
    warmed up before the trace, so no request starts a worker thread and maps
    its stack and malloc arena).
  - totals: sum of truths <= sum of cpu_ns <= the process's CPU during the
    trace; runq_ns and minflt summed <= the process's run delay and faults.
  - thread-pool requests: truth - 50 us <= cpu_pool_ns <= truth + median
    cpu_pool_ns of the zero-CPU pool requests + JITTER_NS (50 us: the
    worker's thread_time and the tracer's on-CPU time are different clocks);
    cpu_pool_ns == 0 elsewhere.
  - network waits: a request that calls another service (an upstream in the
    test process answering after 20-40 ms) has net_ns >= that delay and <=
    what its handler measured from its write to the answer's first byte (+
    JITTER_NS), and <= its duration; every other request has net_ns == 0.
    Both but for 5 % (printed).
  - usage_flags valid (0x1) on every request on the stdlib loop, on >= 99 %
    on uvloop (the rest stored without figures, never with wrong ones);
    runq_ns, pool_wait_ns >= 0.

Run: sudo /usr/bin/python3 -m pytest tests/e2e/test_usage.py -v
     (TIMEGLASS=/path/to/timeglass to use another build; TG_USAGE_RECORD=DIR keeps each
     loop's event stream as DIR/LOOP.tgrec, to replay a failing run).
Ground truth only, untraced: sudo /usr/bin/python3 tests/e2e/test_usage.py [asyncio|uvloop]
"""

import http.client
import http.server
import os
import queue
import random
import re
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402

from conftest import E2E_DIR, PY, Tracer, db_rows, free_port, stop_proc, wait_ready  # noqa: E402

LOAD_THREADS = 24
# zero-CPU requests per shape sent untraced to measure the framework's cost
ZERO_UNTRACED = {"hello": 2000, "cpu0": 500, "pool0": 500, "mw0": 500, "stream0": 500}
JITTER_NS = 500_000
MIB = 1 << 20

# shape -> (count, amount range); amounts: us of CPU, ms of sleep, MiB allocated
MIX = {
    "cpu": (80, (2000, 8000)),
    "sleep": (60, (20, 50)),
    "pool": (60, (2000, 8000)),
    "mw": (60, (2000, 8000)),
    "stream": (40, (2000, 8000)),
    "alloc": (12, (20, 20)),
    "net": (30, (20, 40)),
    "hello": (80, (0, 0)),
    "cpu0": (15, (0, 0)),
    "pool0": (15, (0, 0)),
    "mw0": (15, (0, 0)),
    "stream0": (15, (0, 0)),
}
STREAM_CHUNKS = 4
BURNERS = ("cpu", "pool", "mw", "stream", "alloc")


def target(shape, rid, amount):
    base = shape.rstrip("0")
    if base == "hello":
        return f"/hello/{rid}"
    if base == "mw":
        return f"/mw/cpu/{rid}/{amount}"
    if base == "stream":
        return f"/stream/{rid}/{amount}/{STREAM_CHUNKS}"
    return f"/{base}/{rid}/{amount}"


def jobs(seed):
    rnd = random.Random(seed)
    out = []
    for shape, (n, (lo, hi)) in MIX.items():
        for _ in range(n):
            rid = f"r{len(out)}"
            amount = rnd.randint(lo, hi)
            out.append({"shape": shape, "rid": rid, "amount": amount,
                        "path": target(shape, rid, amount)})
    rnd.shuffle(out)
    return out


def drive(port, work, threads=LOAD_THREADS):
    """Send every job once from `threads` keep-alive connections; fills in
    status, headers, truth (CPU ns), client latency. Returns wall seconds."""
    q = queue.Queue()
    for j in work:
        q.put(j)
    errors = []

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while True:
                try:
                    j = q.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter_ns()
                c.request("GET", j["path"])
                r = c.getresponse()
                body = r.read()
                j["client_ns"] = time.perf_counter_ns() - t0
                j["status"] = r.status
                j["headers"] = {k.lower(): v for k, v in r.getheaders()}
                j["body"] = body
                parse_truth(j)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            c.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:5]
    return time.monotonic() - t0


def parse_truth(j):
    h = j["headers"]
    if j["shape"].startswith("stream"):
        m = re.search(rb"truth cpu_ns=(\d+) gc=(\d+) minflt=(\d+)\n$", j["body"])
        assert m, j["body"][-200:]
        j["truth"], j["truth_gc"], j["truth_minflt"] = (int(x) for x in m.groups())
    elif "x-cpu-ns" in h:
        j["truth"], j["truth_gc"] = int(h["x-cpu-ns"]), int(h["x-gc"])
        j["truth_minflt"] = int(h["x-minflt"])
        if "x-gc-ns" in h:
            j["truth_gc_ns"] = int(h["x-gc-ns"])
    else:  # /hello, /net: no CPU to speak of
        j["truth"], j["truth_gc"], j["truth_minflt"] = 0, 0, 0
        j["truth_net"] = int(h.get("x-net-ns", 0))


def process_cpu_ns(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def process_snapshot(pid):
    """Whole-process counters: on-CPU ns and run-queue wait ns summed over the
    live threads (schedstat), minor faults (all threads, /proc/PID/stat)."""
    cpu = delay = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                a, b, _ = f.read().split()
            cpu, delay = cpu + int(a), delay + int(b)
        except (FileNotFoundError, ProcessLookupError):
            pass
    with open(f"/proc/{pid}/stat") as f:
        minflt = int(f.read().rsplit(")", 1)[1].split()[7])
    return {"cpu": cpu, "runq": delay, "minflt": minflt}


def untraced_costs(port, pid):
    """CPU of the whole untraced process per zero-CPU request of each shape
    (ns): {"hello": .., "cpu0": .., ...}. Everything the process does for one
    request, uvicorn's parsing outside the request's task included."""
    out = {}
    for shape, n in ZERO_UNTRACED.items():
        work = [{"shape": shape, "rid": f"u{i}", "amount": 0,
                 "path": target(shape, f"u{i}", 0)} for i in range(n)]
        drive(port, work[:n // 10], threads=8)  # warm-up
        c0 = process_cpu_ns(pid)
        drive(port, work, threads=8)
        out[shape] = (process_cpu_ns(pid) - c0) / n
    return out


def warm_pool(port):
    """Start the thread-pool workers before tracing: a worker's first job maps
    its stack (8 MiB) and glibc's per-thread malloc arena (64 MiB reserved),
    real address-space growth that would be charged to whichever request
    started the worker. anyio keeps idle workers for 10 s, longer than the
    attach takes."""
    work = [{"shape": "pool", "rid": f"w{i}", "amount": 3000, "path": f"/pool/w{i}/3000"}
            for i in range(LOAD_THREADS)]
    drive(port, work, threads=LOAD_THREADS)


class _Upstream(http.server.BaseHTTPRequestHandler):
    """Another service: GET /wait/MS answers after MS milliseconds."""

    def do_GET(self):
        time.sleep(int(self.path.rsplit("/", 1)[1]) / 1000.0)
        body = b"waited\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_upstream():
    """The service /net calls, in this (untraced) process; returns the server."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def start_app(loop, upstream_port):
    port = free_port()
    env = dict(os.environ, TG_UPSTREAM_PORT=str(upstream_port))
    p = subprocess.Popen([PY, "-m", "uvicorn", "app_usage:app", "--app-dir", E2E_DIR,
                          "--host", "127.0.0.1", "--port", str(port), "--loop", loop,
                          "--http", "httptools", "--log-level", "warning", "--no-access-log"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc=p)
    except Exception:
        stop_proc(p)
        raise
    return p, port


def get_json(port, path):
    import json

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return json.loads(r.read())
    finally:
        c.close()


# ---- the traced run, once per loop --------------------------------------------------------------


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def run(request, tmp_path_factory):
    loop = request.param
    db = str(tmp_path_factory.mktemp("usage-" + loop) / "tg.db")
    upstream = start_upstream()
    app, port = start_app(loop, upstream.server_address[1])
    try:
        f_untraced = untraced_costs(port, app.pid)
        warm_pool(port)
        gc0 = get_json(port, "/truth/gc")
        t_attach = time.monotonic()
        snap0 = process_snapshot(app.pid)
        args = ["--pid", str(app.pid), "--db", db, "--no-serve", "-q"]
        if os.environ.get("TG_USAGE_RECORD"):  # keep the event stream to replay a failure
            args += ["--record", os.path.join(os.environ["TG_USAGE_RECORD"], loop + ".tgrec")]
        tracer = Tracer(args)
        t_attach = time.monotonic() - t_attach
        try:
            time.sleep(0.5)  # initial /proc scan, /openapi.json
            # The first client connection attaches uvloop's write probe
            # (bpf/uvwrite.bpf.h), a poll later: not inside the measured load.
            drive(port, [{"shape": "net", "rid": "warm", "amount": 1, "path": "/net/warm/1"}], 1)
            time.sleep(0.3)
            work = jobs(seed=sum(map(ord, loop)))
            wall = drive(port, work)
            time.sleep(0.5)
        finally:
            rc = tracer.stop()
            misses = [l for l in tracer.text().splitlines() if "on-CPU bookkeeping" in l]
            if misses:
                print(f"\n[{loop}] {misses[0]}")
        snap1 = process_snapshot(app.pid)
        assert rc == 0, tracer.text()
        gc1 = get_json(port, "/truth/gc")
    finally:
        stop_proc(app)
        upstream.shutdown()
    gc_truth = {k: gc1[k] - gc0[k] for k in gc1}
    cols = {r["name"] for r in db_rows(db, "PRAGMA table_info(requests)")}
    rows = {r["path"]: r for r in db_rows(db, "SELECT * FROM requests")}
    by_path = {j["path"]: j for j in work}
    missing = [p for p in by_path if p not in rows]
    res = {"loop": loop, "db": db, "t_attach": t_attach,
           "proc": {k: snap1[k] - snap0[k] for k in snap0}, "work": work, "rows": rows, "cols": cols, "wall": wall,
           "f_untraced": f_untraced, "gc_truth": gc_truth, "missing": missing}
    print_summary(res)
    return res


def need_usage(run):
    need = {"cpu_ns", "cpu_pool_ns", "runq_ns", "pool_wait_ns", "minflt", "majflt",
            "heap_bytes", "gc_count", "gc_ns", "usage_flags"}
    lacking = need - run["cols"]
    if lacking:
        pytest.fail(f"requests has no {sorted(lacking)}: this timeglass does not record usage "
                    f"(schema < 5)")
    assert not run["missing"], f"{len(run['missing'])} requests not stored: {run['missing'][:5]}"


def pairs(run, *shapes):
    """(job, row) for the jobs of these shapes whose row has figures (see
    test_every_request_answered_and_stored for how many may lack them)."""
    return [(j, run["rows"][j["path"]]) for j in run["work"] if j["shape"] in shapes
            and (run["rows"][j["path"]]["usage_flags"] or 0) & 0x1]


def framework(run, shape):
    """F_shape: median cpu_ns of the zero-CPU requests of this shape."""
    zero = {"cpu": "cpu0", "pool": "pool0", "mw": "mw0", "stream": "stream0",
            "hello": "hello", "sleep": "cpu0", "alloc": "cpu0"}[shape]
    return statistics.median(r["cpu_ns"] for _, r in pairs(run, zero))


def ps_all(res, shape):
    return [(j, res["rows"][j["path"]]) for j in res["work"]
            if j["shape"] == shape and j["path"] in res["rows"]
            and res["rows"][j["path"]]["cpu_ns"] is not None]


def print_summary(res):
    """Per shape: mean truth vs mean TimeGlass CPU, worst request (visible with -s)."""
    print(f"\n[{res['loop']}] attach {res['t_attach']:.1f} s; "
          f"{len(res['work'])} requests in {res['wall']:.1f} s; "
          f"untraced process CPU per zero request: "
          f"{ {k: round(v / 1e3) for k, v in res['f_untraced'].items()} } us; "
          f"GC during load {res['gc_truth']}; not stored: {len(res['missing'])}")
    if "cpu_ns" not in res["cols"]:
        print("  (no cpu_ns column)")
        return
    for shape in MIX:
        ps = [(j, res["rows"][j["path"]]) for j in res["work"]
              if j["shape"] == shape and j["path"] in res["rows"]]
        ps = [(j, r) for j, r in ps if r["cpu_ns"] is not None]
        if not ps:
            print(f"  {shape:8s} no rows with cpu_ns")
            continue
        t = statistics.mean(j["truth"] for j, _ in ps)
        c = statistics.mean(r["cpu_ns"] for _, r in ps)
        d = [r["cpu_ns"] - j["truth"] for j, r in ps]
        worst = max(ps, key=lambda p: abs(p[1]["cpu_ns"] - p[0]["truth"]))
        zero = {"sleep": "cpu0", "alloc": "cpu0", "net": "cpu0"}.get(shape, shape if shape.endswith("0")
                                                      or shape == "hello" else shape + "0")
        fz = statistics.median(r["cpu_ns"] for j, r in ps_all(res, zero))
        zeros = sum(1 for _, r in ps if r["cpu_ns"] == 0)
        extra = ""
        if shape.startswith("pool"):
            extra = " pool mean %.0f us" % (statistics.mean((r["cpu_pool_ns"] or 0)
                                                            for _, r in ps) / 1e3)
        if shape == "net" and "net_ns" in res["cols"]:
            extra = " net_ns - handler's wait: median %.0f us" % (statistics.median(
                (r["net_ns"] or 0) - j["truth_net"] for j, r in ps) / 1e3)
        print(f"  {shape:8s} n={len(ps):3d} truth {t / 1e3:8.0f} us  tg {c / 1e3:8.0f} us "
              f"({(c / t - 1) * 100 if t > 1e5 else 0:+6.1f} %, "
              f"-F {((c - fz) / t - 1) * 100 if t > 1e5 else 0:+5.1f} %)"
              f" zero {zeros:2d} over: median {statistics.median(d) / 1e3:6.0f}"
              f" min {min(d) / 1e3:6.0f} max {max(d) / 1e3:6.0f} us  worst {worst[0]['path']} "
              f"truth {worst[0]['truth'] / 1e3:.0f} tg {worst[1]['cpu_ns'] / 1e3:.0f} us"
              f" gc {worst[1]['gc_count']}/{worst[1]['gc_ns']}{extra}")
    tot = {k: sum(r[k] or 0 for r in res["rows"].values()) for k in ("cpu_ns", "runq_ns", "minflt")}
    print(f"  all stored requests: cpu {tot['cpu_ns'] / 1e6:.0f} ms of the process's "
          f"{res['proc']['cpu'] / 1e6:.0f} ms; runq {tot['runq_ns'] / 1e6:.1f} ms of "
          f"{res['proc']['runq'] / 1e6:.1f} ms; minflt {tot['minflt']} of {res['proc']['minflt']}; "
          f"sum of truths {sum(j['truth'] for j in res['work']) / 1e6:.0f} ms")
    for shape in ("alloc", "cpu"):
        for j, r in pairs(res, shape)[:3]:
            print(f"  {shape} {j['path']}: minflt {r['minflt']} (truth {j['truth_minflt']}) "
                  f"heap {r['heap_bytes']} gc {r['gc_count']} (truth {j['truth_gc']}) "
                  f"gc_ns {r['gc_ns']} (explicit wall {j.get('truth_gc_ns')}) "
                  f"runq {r['runq_ns']} flags {r['usage_flags']}")


# ---- checks ------------------------------------------------------------------------------------


def test_every_request_answered_and_stored(run):
    assert all(j["status"] == 200 for j in run["work"])
    assert run["wall"] < 60, run["wall"]
    assert not run["missing"], run["missing"][:5]
    need_usage(run)
    flags = [run["rows"][j["path"]]["usage_flags"] for j in run["work"] if j["shape"] in MIX]
    valid = sum(1 for f in flags if f is not None and f & 0x1)
    # On the stdlib loop the response's Context is the request's task: every
    # request has figures. uvloop writes responses outside the task, so the
    # tracer ties a task to its connection by the reads around its creation
    # (docs/attribution.md); a request it cannot tie is stored without
    # figures rather than with wrong ones. At most 1 % may be.
    missing = len(flags) - valid
    allowed = 0 if run["loop"] == "asyncio" else len(flags) // 100
    assert missing <= allowed, f"{missing} of {len(flags)} requests without valid usage"
    for _, r in pairs(run, *MIX):
        assert r["runq_ns"] >= 0 and r["pool_wait_ns"] >= 0 and r["majflt"] >= 0, r


@pytest.mark.parametrize("shape", ["hello", "cpu", "pool", "mw", "stream"])
def test_framework_cost_is_sane(run, shape):
    """F_shape (what the tracer charges a zero-CPU request, median) is at most
    2 x what the whole untraced process spends per such request: the
    tolerances built on F_shape cannot grow by over-charging. 2 x, not less:
    the traced process also runs the probes (a trap of ~1.6-2 us per Context
    switch or creation, tens of them per middleware request), and F_untraced
    is measured in another phase of a run on a shared 2-core VM."""
    need_usage(run)
    f = framework(run, shape)
    f_u = run["f_untraced"]["hello" if shape == "hello" else shape + "0"]
    assert 0 < f <= 2 * f_u, (f, f_u)


# Requests per shape allowed outside the per-request bounds, printed when
# they happen: 5 % of the shape's requests, at least 3. The Context model's
# known errors (docs/attribution.md: a Context address reused while a thread
# that ran the old one has not yet shown its next event; a thread-pool job
# handed over while its worker was still busy; loop work after a wake-up
# charged to the Context entered last) hit about one request in 100-200 here,
# more when the shared VM is loaded. The mean-error checks take every request.
def outliers(n):
    return max(3, n * 5 // 100)


def upper_bound(j, r, f):
    """The most a request may be charged: its truth, twice the framework's
    per-request cost, its GC pauses (the tracer's probes run in them) and the
    clocks' jitter."""
    return j["truth"] + 2 * f + r["gc_ns"] + JITTER_NS


def in_bounds(j, r, f):
    return j["truth"] <= r["cpu_ns"] <= upper_bound(j, r, f)


@pytest.mark.parametrize("shape", ["cpu", "sleep", "pool", "mw", "stream", "alloc", "hello",
                                   "cpu0", "pool0", "mw0", "stream0"])
def test_cpu_per_request_bounds(run, shape):
    need_usage(run)
    f = framework(run, shape.rstrip("0") if shape != "hello" else "hello")
    bad = []
    for j, r in pairs(run, shape):
        if not in_bounds(j, r, f):
            bad.append((j["path"], j["truth"], r["cpu_ns"], upper_bound(j, r, f),
                        f"flags {r['usage_flags']:#x} pool {r['cpu_pool_ns']} runq {r['runq_ns']}"
                        f" lock {r['lock_ns']} pool_wait {r['pool_wait_ns']}"))
    n = len(pairs(run, shape))
    if bad:
        print(f"\n[{run['loop']}] {shape}: outside the bounds: {bad}")
    assert len(bad) <= outliers(n), f"{len(bad)}/{n} outside [truth, truth + 2*{f:.0f} + gc_ns + " \
                    f"{JITTER_NS}] (path, truth, cpu_ns, upper): {bad[:8]}"


@pytest.mark.parametrize("shape", BURNERS)
def test_cpu_mean_error_per_shape(run, shape):
    """The request's real CPU is its handler's (truth) plus the framework's
    (F_shape, measured on the zero-CPU requests of the shape and bounded by the
    untraced process cost above): mean(cpu_ns) - F_shape within 10 % of
    mean(truth). (Without the correction, BaseHTTPMiddleware's ~0.6 ms per
    request alone is 12 % of a 5 ms handler.) The requests outside the
    per-request bounds, at most outliers(n) of them (the Context model's known
    misattributions, counted by test_cpu_per_request_bounds), are left out:
    one of them can carry another request's whole thread-pool job (~7 ms), a
    tenth of the shape's total. The mean with them is printed."""
    need_usage(run)
    f = framework(run, shape)
    every = pairs(run, shape)
    off = sorted((p for p in every if not in_bounds(*p, f)),
                 key=lambda p: -abs(p[1]["cpu_ns"] - p[0]["truth"]))[:outliers(len(every))]
    ps = [p for p in every if p not in off]
    t = statistics.mean(j["truth"] for j, _ in ps)
    c = statistics.mean(r["cpu_ns"] for _, r in ps)
    if off:
        ta = statistics.mean(j["truth"] for j, _ in every)
        ca = statistics.mean(r["cpu_ns"] for _, r in every)
        print(f"\n[{run['loop']}] {shape}: mean error {((ca - f) / ta - 1) * 100:+.1f} % with the "
              f"{len(off)} out of bounds, {((c - f) / t - 1) * 100:+.1f} % without: "
              f"{[(j['path'], r['cpu_ns']) for j, r in off]}")
    assert abs(c - f - t) <= 0.10 * t, \
        f"mean cpu_ns {c:.0f} - F {f:.0f} vs truth {t:.0f} ({((c - f) / t - 1) * 100:+.1f} %; " \
        f"raw {(c / t - 1) * 100:+.1f} %)"


def test_sleepers_charged_little_next_to_burners(run):
    need_usage(run)
    heavy = [r for _, r in pairs(run, "cpu", "pool", "mw", "stream")]
    overlapped = 0
    over = [(j["path"], r["cpu_ns"]) for j, r in pairs(run, "sleep") if r["cpu_ns"] >= 1_000_000]
    if over:
        print(f"\n[{run['loop']}] sleepers charged 1 ms or more: {over}")
    n = len(pairs(run, "sleep"))
    assert len(over) <= outliers(n), over
    assert statistics.median(r["cpu_ns"] for _, r in pairs(run, "sleep")) < 500_000
    for j, r in pairs(run, "sleep"):
        assert r["duration_ns"] >= j["amount"] * 1_000_000 * 0.95, (j["path"], r["duration_ns"])
        s, e = r["start_ns"], r["start_ns"] + r["duration_ns"]
        overlapped += any(h["start_ns"] < e and h["start_ns"] + h["duration_ns"] > s
                          for h in heavy)
    # the checks above mean something only if burners ran meanwhile
    assert overlapped >= 0.8 * len(pairs(run, "sleep")), overlapped


def test_alloc_gc_and_memory(run):
    """Every allocator shows its GC, faults and heap growth; one of them may
    be a request the Context model got wrong (see outliers())."""
    need_usage(run)
    allocs = pairs(run, "alloc")
    bad = []
    for j, r in allocs:
        assert j["truth_gc"] >= 1, j
        assert j["truth_minflt"] >= 10 * MIB // 4096, j  # the app really touched >= 10 MiB
        if not (r["gc_count"] >= j["truth_gc"]
                and r["gc_ns"] > 0 and r["gc_ns"] >= 0.5 * j["truth_gc_ns"]
                and r["minflt"] >= 0.8 * j["truth_minflt"]
                and r["heap_bytes"] >= 10 * MIB):
            bad.append((j["path"], r["gc_count"], j["truth_gc"], r["gc_ns"], j["truth_gc_ns"],
                        r["minflt"], j["truth_minflt"], r["heap_bytes"]))
    if bad:
        print(f"\n[{run['loop']}] allocators off: {bad}")
    assert len(bad) <= 1 and len(allocs) >= 10, bad


def test_gc_and_memory_not_on_neighbours(run):
    """Neighbours are not charged an allocator's GC, faults or heap growth;
    a request the Context model got wrong (about 1 in 100-200) may be, so a
    few are allowed (printed)."""
    need_usage(run)
    others = [(j, r) for j, r in pairs(run, *MIX) if j["shape"] != "alloc"]
    # collections that ran in this request's Context must be charged to it
    bad = [(j["path"], r["gc_count"], j["truth_gc"]) for j, r in others
           if r["gc_count"] < j["truth_gc"]]
    automatic = run["gc_truth"]["total"] - run["gc_truth"]["explicit"]
    charged = sum(r["gc_count"] for _, r in others)
    min_flt = min(j["truth_minflt"] for j, _ in pairs(run, "alloc"))
    heavy = [(j["path"], r["minflt"], r["heap_bytes"]) for j, r in others
             if r["minflt"] >= min_flt / 4 or r["heap_bytes"] >= 4 * MIB]
    if bad or heavy:
        print(f"\n[{run['loop']}] neighbours off: gc {bad} memory {heavy} (min_flt {min_flt})")
    allowed = outliers(len(others)) // 4  # 5 of ~400
    assert len(bad) <= allowed, bad
    assert len(heavy) <= allowed, (heavy, min_flt)
    assert charged <= automatic + len(heavy), (charged, run["gc_truth"])


def test_totals_within_the_process(run):
    """Nothing invented: what the requests are charged together is part of what
    the process's threads did while the tracer ran (schedstat and
    /proc/PID/stat deltas around the traced window, taken by the test)."""
    need_usage(run)
    rows = [r for r in run["rows"].values() if r["cpu_ns"] is not None]
    cpu = sum(r["cpu_ns"] for r in rows)
    truth = sum(j["truth"] for j, _ in pairs(run, *MIX))
    assert truth <= cpu <= run["proc"]["cpu"], (truth, cpu, run["proc"])
    assert sum(r["runq_ns"] for r in rows) <= run["proc"]["runq"], run["proc"]
    assert sum(r["minflt"] for r in rows) <= run["proc"]["minflt"], run["proc"]


POOL_CLOCK_NS = 50_000


def test_pool_cpu(run):
    need_usage(run)
    f_pool = statistics.median(r["cpu_pool_ns"] for _, r in pairs(run, "pool0"))
    bad = []
    for j, r in pairs(run, "pool"):
        # The worker's thread_time (the scheduler's task clock) and the
        # tracer's on-CPU time (ktime at context switches) are two clocks:
        # on a job they differ by a few microseconds either way (seen: up to
        # 16 us under), hence POOL_CLOCK_NS below the truth.
        if not j["truth"] - POOL_CLOCK_NS <= r["cpu_pool_ns"] <= j["truth"] + f_pool + JITTER_NS:
            bad.append((j["path"], j["truth"], r["cpu_pool_ns"]))
        assert r["cpu_pool_ns"] <= r["cpu_ns"], (j["path"], r)
    n = len(pairs(run, "pool"))
    assert len(bad) <= outliers(n), \
        f"{len(bad)} pool requests off (path, truth, cpu_pool_ns; f_pool {f_pool}): {bad[:8]}"
    loop_only = pairs(run, "cpu", "mw", "sleep", "hello")
    on_pool = [(j["path"], r["cpu_pool_ns"]) for j, r in loop_only if r["cpu_pool_ns"] != 0]
    if on_pool:
        print(f"\n[{run['loop']}] loop-only requests charged pool CPU: {on_pool}")
    assert len(on_pool) <= outliers(len(loop_only)) // 4, on_pool


def test_network_waits(run):
    """A request that calls another service is charged the wait for the
    answer; nobody else is."""
    need_usage(run)
    assert "net_ns" in run["cols"], "requests has no net_ns (schema < 6)"
    bad = []
    calls = pairs(run, "net")
    for j, r in calls:
        lo, hi = j["amount"] * 1_000_000, min(j["truth_net"] + JITTER_NS, r["duration_ns"])
        if not lo <= (r["net_ns"] or 0) <= hi:
            bad.append((j["path"], lo, r["net_ns"], hi))
    if bad:
        print(f"\n[{run['loop']}] network waits off: {bad}")
    assert len(calls) >= 0.9 * MIX["net"][0], len(calls)
    assert len(bad) <= outliers(len(calls)), f"(path, upstream delay, net_ns, upper): {bad[:8]}"
    rest = pairs(run, *(s for s in MIX if s != "net"))
    charged = [(j["path"], r["net_ns"]) for j, r in rest if r["net_ns"]]
    if charged:
        print(f"\n[{run['loop']}] charged network waits they did not make: {charged}")
    assert len(charged) <= outliers(len(calls)), charged[:8]


# ---- untraced ground-truth run (development aid) ------------------------------------------------

def main(loop):
    upstream = start_upstream()
    app, port = start_app(loop, upstream.server_address[1])
    try:
        f = untraced_costs(port, app.pid)
        work = jobs(seed=1)
        c0 = process_cpu_ns(app.pid)
        wall = drive(port, work)
        cpu = process_cpu_ns(app.pid) - c0
        gc_truth = get_json(port, "/truth/gc")
    finally:
        stop_proc(app)
        upstream.shutdown()
    print(f"[{loop}] untraced: process CPU per zero request "
          f"{ {k: round(v / 1e3) for k, v in f.items()} } us; {len(work)} requests "
          f"in {wall:.1f} s, process CPU {cpu / 1e9:.2f} s; gc {gc_truth}")
    for shape in MIX:
        ps = [j for j in work if j["shape"] == shape]
        t = [j["truth"] for j in ps]
        lat = [j["client_ns"] for j in ps]
        print(f"  {shape:8s} n={len(ps):3d} truth mean {statistics.mean(t) / 1e3:8.0f} us "
              f"min {min(t) / 1e3:6.0f} max {max(t) / 1e3:6.0f}  client latency median "
              f"{statistics.median(lat) / 1e6:6.1f} ms  gc {sum(j['truth_gc'] for j in ps)} "
              f"minflt mean {statistics.mean(j['truth_minflt'] for j in ps):.0f}")
    total_truth = sum(j["truth"] for j in work)
    print(f"  sum of truths {total_truth / 1e9:.2f} s of {cpu / 1e9:.2f} s process CPU; "
          f"framework per request ~{(cpu - total_truth) / len(work) / 1e3:.0f} us")


if __name__ == "__main__":
    for lp in sys.argv[1:] or ["asyncio", "uvloop"]:
        main(lp)
