# SPDX-License-Identifier: MIT
"""Python flame graphs per endpoint and per request (docs/flamegraph.md).

app_profile.py: GET /a spends ~70 % of its CPU in alpha() and ~30 % in beta(),
GET /b only in gamma(); 8 client threads alternate A and B for ~6 s (the
handlers await between chunks, so requests interleave on the loop) while
`timeglass trace --sample-hz 999` records. The per-endpoint graphs must split
A's samples 70/30 (±10 points), never mix A's and B's functions, and name the
functions, files and hot-loop lines right; a per-request graph of one A
request holds alpha; a replay of the recording gives the same graphs.

The server runs the stdlib asyncio loop; test_uvloop_attribution runs the same
load on uvloop, where response writes are flushed outside the request's task
(so the response's task key says nothing) and samples are attributed through
the task's own objects instead: run_asgi's scope["client"] port names the
connection (user/pytask.c, docs/flamegraph.md).
"""

import collections
import http.client
import inspect
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import E2E_DIR, PY, Tracer, db_rows, free_port, run_timeglass, stop_proc, wait_ready

sys.path.insert(0, E2E_DIR)
import app_profile  # noqa: E402  (for inspect: the hot loops' lines)

APP_FILE = os.path.join(E2E_DIR, "app_profile.py")
LOAD_S = 6


def start_app(loop):
    port = free_port()
    p = subprocess.Popen([PY, "-m", "uvicorn", "app_profile:app", "--app-dir", E2E_DIR,
                          "--host", "127.0.0.1", "--port", str(port), "--loop", loop,
                          "--log-level", "warning"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc=p)
    return p, port


def load(port, seconds=LOAD_S, threads=8):
    stop = time.monotonic() + seconds
    done = collections.Counter()

    def worker(i):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        k = i
        while time.monotonic() < stop:
            path = "/a" if k % 2 == 0 else "/b"
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            assert r.status == 200
            done[path] += 1
            k += 1
        c.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done


def folded(db, *args):
    r = run_timeglass("flamegraph", "--db", db, "--format", "folded", *args)
    assert r.returncode == 0, r.stderr
    out = []
    for line in r.stdout.splitlines():
        stack, _, n = line.rpartition(" ")
        out.append((stack.split(";"), int(n)))
    return r.stdout, out


def qual(frame):
    return frame.rsplit(" (", 1)[0]


def share(stacks, name):
    total = sum(n for _, n in stacks)
    return sum(n for fr, n in stacks if any(qual(f) == name for f in fr)) / total


def loop_lines(fn):
    """Lines of fn's `for` loop and its body (where its samples should fall)."""
    src, first = inspect.getsourcelines(fn)
    for i, line in enumerate(src):
        if line.lstrip().startswith("for "):
            return {first + i, first + i + 1}
    raise AssertionError("no loop in " + fn.__name__)


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    d = tmp_path_factory.mktemp("fg")
    db, rec = str(d / "t.db"), str(d / "t.rec")
    app, port = start_app("asyncio")
    try:
        tracer = Tracer(["--pid", str(app.pid), "--db", db, "--record", rec, "--sample-hz", "999",
                         "--no-serve", "-q"])
        try:
            done = load(port)
        finally:
            assert tracer.stop() == 0, tracer.text()
    finally:
        stop_proc(app)
    return db, rec, done, d


def test_endpoint_shares_names_and_lines(traced):
    db, _, done, _ = traced
    assert done["/a"] > 20 and done["/b"] > 20
    assert db_rows(db, "SELECT sample_hz FROM runs")[0]["sample_hz"] == 999
    _, a = folded(db, "--route", "/a", "--method", "GET")
    _, b = folded(db, "--route", "/b")
    total_a = sum(n for _, n in a)
    # ~30 ms CPU per A request at 999 Hz: tens of samples per request.
    assert total_a > done["/a"] * 5, (total_a, done)
    alpha, beta = share(a, "alpha"), share(a, "beta")
    assert abs(alpha - 0.70) <= 0.10, (alpha, beta)
    assert abs(beta - 0.30) <= 0.10, (alpha, beta)
    assert share(a, "gamma") == 0
    assert share(b, "alpha") == 0 and share(b, "beta") == 0
    assert share(b, "gamma") > 0.8
    # Frames: "qualname (file:line)", leaf lines inside the hot loops.
    for fn, stacks in ((app_profile.alpha, a), (app_profile.beta, a), (app_profile.gamma, b)):
        lines = collections.Counter()
        for fr, n in stacks:
            leaf = fr[-1]
            if qual(leaf) == fn.__name__:
                assert leaf.startswith(f"{fn.__name__} ({APP_FILE}:"), leaf
                lines[int(leaf.rsplit(":", 1)[1].rstrip(")"))] += n
        inside = sum(n for ln, n in lines.items() if ln in loop_lines(fn))
        assert inside >= 0.95 * sum(lines.values()), (fn.__name__, lines, loop_lines(fn))
    # The handler is the caller of alpha.
    assert any(qual(fr[-2]) == "endpoint_a" for fr, _ in a if qual(fr[-1]) == "alpha")


def test_request_graph(traced):
    db = traced[0]
    rows = db_rows(db, "SELECT s.request_id AS id, count(*) AS n FROM samples s"
                       " JOIN requests r ON r.id = s.request_id WHERE r.route = '/a'"
                       " GROUP BY 1 ORDER BY 2 DESC LIMIT 1")
    assert rows and rows[0]["n"] > 5
    _, req = folded(db, "--request", str(rows[0]["id"]))
    assert sum(n for _, n in req) == rows[0]["n"]
    assert share(req, "alpha") > 0.4 and share(req, "gamma") == 0
    svg = run_timeglass("flamegraph", "--db", db, "--request", str(rows[0]["id"]))
    assert svg.returncode == 0 and "<svg" in svg.stdout
    assert "999 Hz" in svg.stdout and "an estimate" in svg.stdout
    assert f"Request {rows[0]['id']} (GET /a)" in svg.stdout


def test_errors(traced):
    db = traced[0]
    r = run_timeglass("flamegraph", "--db", db, "--route", "/nope")
    assert r.returncode == 1 and "no requests for /nope" in r.stderr
    r = run_timeglass("flamegraph", "--db", db, "--request", "99999999")
    assert r.returncode == 1 and "no request 99999999" in r.stderr
    r = run_timeglass("flamegraph", "--db", db, "--route", "/a", "--request", "1")
    assert r.returncode == 2
    r = run_timeglass("flamegraph", "--db", db, "--format", "png")
    assert r.returncode == 2


def test_replay_same_graphs(traced):
    db, rec, _, d = traced
    db2 = str(d / "replay.db")
    r = run_timeglass("replay", rec, "--db", db2, timeout=120)
    assert r.returncode == 0, r.stderr
    for route in ("/a", "/b"):
        assert folded(db, "--route", route)[0] == folded(db2, "--route", route)[0]
    assert db_rows(db2, "SELECT sample_hz FROM runs")[0]["sample_hz"] == 999


def test_uvloop_attribution(tmp_path):
    db, rec, db2 = str(tmp_path / "u.db"), str(tmp_path / "u.rec"), str(tmp_path / "r.db")
    app, port = start_app("uvloop")
    try:
        tracer = Tracer(["--pid", str(app.pid), "--db", db, "--record", rec, "--sample-hz", "999",
                         "--no-serve", "-q"])
        try:
            done = load(port, seconds=4)
        finally:
            assert tracer.stop() == 0, tracer.text()
    finally:
        stop_proc(app)
    assert done["/a"] > 10 and done["/b"] > 10
    _, a = folded(db, "--route", "/a")
    _, b = folded(db, "--route", "/b")
    assert sum(n for _, n in a) > done["/a"] * 5, (sum(n for _, n in a), done)
    alpha, beta = share(a, "alpha"), share(a, "beta")
    assert abs(alpha - 0.70) <= 0.10, (alpha, beta)
    assert abs(beta - 0.30) <= 0.10, (alpha, beta)
    assert share(a, "gamma") == 0
    assert share(b, "alpha") == 0 and share(b, "beta") == 0
    assert share(b, "gamma") > 0.8
    # Replay attributes through the recorded "task" resolutions the same way.
    r = run_timeglass("replay", rec, "--db", db2, timeout=120)
    assert r.returncode == 0, r.stderr
    for route in ("/a", "/b"):
        assert folded(db, "--route", route)[0] == folded(db2, "--route", route)[0]
