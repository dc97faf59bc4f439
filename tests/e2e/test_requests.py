# SPDX-License-Identifier: MIT
"""End to end: every request a client sends to a traced uvicorn is stored once,
with the right method, path, route, status, bytes and flags.

One traced session per server flavour (uvloop + httptools: read/writev;
asyncio + h11: recv/send), shared by the checks of this module. The client
side computes every expected value itself (httpraw.py counts the bytes on the
wire), so a mismatch is the tracer's, not the app's.
"""

import collections
import json
import os
import time
import types

import pytest

from conftest import App, Tracer, db_rows, run_timeglass
from httpraw import CountingHTTPConnection, RawConn

SECRETS = [b"SECRET123", b"SECRET456", b"SECRETQ789"]
PREEXISTING = 0x20
ROUTE_GUESSED = 0x100
VARIANTS = [("uvloop", "httptools"), ("asyncio", "h11")]
KEY = ("method", "path", "status", "req_bytes", "resp_bytes")


def scenario(port, pre):
    """Send the known requests; return what the database must hold."""
    exp = []

    def add(method, path, route, status, sent, resp, flags=(0,), slow_ms=None):
        assert resp.status == status, f"the app answered {resp.status} to {method} {path}"
        exp.append(dict(method=method, path=path, route=route, status=status, req_bytes=sent,
                        resp_bytes=resp.nbytes, flags=set(flags), elapsed=resp.elapsed,
                        slow_ms=slow_ms))

    # A keep-alive connection opened before the tracer attached.
    for target, route in [("/items/42", "/items/{item_id}"), ("/hello", "/hello")]:
        s, r = pre.exchange("GET", target)
        add("GET", target, route, 200, s, r, flags=(0, PREEXISTING))
    pre.close()

    # Keep-alive (http.client): many requests on one connection.
    ka = CountingHTTPConnection("127.0.0.1", port, timeout=30)
    json_body = json.dumps({"name": "widget", "price": 1.5, "tags": ["a"] * 20}).encode()
    for method, target, path, route, status, body, headers in [
        ("GET", "/", "/", "/", 200, None, None),
        ("GET", "/hello", "/hello", "/hello", 200, None, None),
        ("GET", "/items/1", "/items/1", "/items/{item_id}", 200, None, None),
        ("GET", "/items/999", "/items/999", "/items/{item_id}", 404, None, None),
        ("GET", "/users/7/orders", "/users/7/orders", "/users/{user_id}/orders", 200, None, None),
        ("GET", "/search?q=SECRETQ789&page=2", "/search?q=&page=", "/search", 200, None, None),
        ("HEAD", "/health", "/health", "/health", 200, None, None),
        ("GET", "/stream?chunks=5&size=1000", "/stream?chunks=&size=", "/stream", 200, None, None),
        ("GET", "/big?size=100000", "/big?size=", "/big", 200, None, None),
        ("POST", "/items", "/items", "/items", 201, json_body, {"Content-Type": "application/json"}),
        ("GET", "/sync-cpu?n=20000", "/sync-cpu?n=", "/sync-cpu", 200, None, None),
        ("GET", "/cpu?n=20000", "/cpu?n=", "/cpu", 200, None, None),
        ("GET", "/items/3", "/items/3", "/items/{item_id}", 200, None,
         {"Authorization": "Bearer SECRET123", "Cookie": "sid=SECRET456"}),
    ]:
        s, r = ka.exchange(method, target, body=body, headers=headers)
        add(method, path, route, status, s, r)
    s, r = ka.exchange("GET", "/slow?ms=50")
    add("GET", "/slow?ms=", "/slow", 200, s, r, slow_ms=50)
    ka.close()

    # Uploads of 0 B, 1 KiB, 100 KiB, 1 MiB on one raw keep-alive connection.
    up = RawConn(port)
    for size in (0, 1024, 100 * 1024, 1024 * 1024):
        s, r = up.request("POST", "/upload", [("Content-Type", "application/octet-stream")],
                          b"u" * size)
        assert json.loads(r.body) == {"length": size}
        add("POST", "/upload", "/upload", 200, s, r)
    up.close()

    # Not keep-alive: a new connection per request, Connection: close.
    for target, route, status, flags in [
        ("/hello", "/hello", 200, (0,)),
        ("/nope", None, 404, (0, ROUTE_GUESSED)),  # no such route: any route, maybe guessed
        ("/error", "/error", 500, (0,)),
        ("/items/2", "/items/{item_id}", 200, (0,)),
    ]:
        c = RawConn(port)
        s, r = c.request("GET", target, [("Connection", "close")])
        add("GET", target, route, status, s, r, flags=flags)
        c.close()

    # Pipelined: three requests in one send, then three responses.
    pl = RawConn(port)
    reqs = [("/hello", "/hello", "/hello"), ("/items/2", "/items/2", "/items/{item_id}"),
            ("/search?q=wrench&page=1", "/search?q=&page=", "/search")]
    raw = [RawConn.build("GET", t) for t, _, _ in reqs]
    pl.send(b"".join(raw))
    for data, (_, path, route) in zip(raw, reqs):
        add("GET", path, route, 200, len(data), pl.read_response())
    pl.close()
    return exp


@pytest.fixture(scope="module", params=VARIANTS, ids=["-".join(v) for v in VARIANTS])
def traced(request, tmp_path_factory):
    loop, http = request.param
    tmp = tmp_path_factory.mktemp(f"trace-{loop}")
    db, rec = str(tmp / "trace.db"), str(tmp / "trace.tgrec")
    app = App(loop, http)
    tracer = None
    try:
        pre = CountingHTTPConnection("127.0.0.1", app.port, timeout=30)
        pre.exchange("GET", "/hello")  # before the tracer: must NOT be stored
        tracer = Tracer(["--pid", str(app.pid), "--db", db, "--record", rec])
        expected = scenario(app.port, pre)
        time.sleep(0.5)
        rc = tracer.stop()
        yield types.SimpleNamespace(app=app, db=db, rec=rec, tmp=tmp, expected=expected, rc=rc,
                                    stderr=tracer.text(), pid=app.pid)
    finally:
        if tracer is not None:
            tracer.stop()
        app.stop()


def requests_of(t):
    return db_rows(t.db, "SELECT * FROM requests WHERE pid = ? ORDER BY start_ns", (t.pid,))


def key(d):
    return tuple(d[k] for k in KEY)


def match(t):
    """Pair each expected request with its row (by method, path, status, bytes)."""
    pool = collections.defaultdict(list)
    for row in requests_of(t):
        pool[key(row)].append(row)
    pairs = []
    for e in t.expected:
        if pool[key(e)]:
            pairs.append((e, pool[key(e)].pop(0)))
    return pairs


def test_tracer_exits_cleanly(traced):
    assert traced.rc == 0, f"timeglass trace exited with {traced.rc}; stderr:\n{traced.stderr}"


def test_run_row(traced):
    runs = db_rows(traced.db, "SELECT * FROM runs")
    assert len(runs) == 1, runs
    run = runs[0]
    assert run["ended"] is not None and run["ended"] >= run["started"], run
    assert run["dropped_events"] == 0, run
    assert run["events"] > 0, run


def test_every_request_stored_exactly_once(traced):
    rows = requests_of(traced)
    want = collections.Counter(key(e) for e in traced.expected)
    got = collections.Counter(key(r) for r in rows)
    missing = want - got
    extra = got - want
    msg = [f"{len(traced.expected)} requests sent, {len(rows)} rows for pid {traced.pid}",
           f"key = {KEY}"]
    msg += [f"MISSING x{n}: {k}" for k, n in missing.items()]
    msg += [f"UNEXPECTED x{n}: {k}" for k, n in extra.items()]
    if extra:
        msg += ["unexpected rows:"] + [str(r) for r in rows if key(r) in extra]
    if missing:  # help tell a bytes mismatch from a missing request
        msg += ["rows of the same method and path:"]
        for k in missing:
            msg += [f"  {key(r)} flags={r['flags']:#x}" for r in rows if key(r)[:2] == k[:2]]
    assert not missing and not extra, "\n".join(msg)


def test_routes_and_flags(traced):
    bad = []
    for e, row in match(traced):
        if e["route"] is not None and row["route"] != e["route"]:
            bad.append(f"{e['method']} {e['path']}: route {row['route']!r}, want {e['route']!r}")
        if row["flags"] not in e["flags"]:
            bad.append(f"{e['method']} {e['path']}: flags {row['flags']:#x}, want one of "
                       f"{sorted(hex(f) for f in e['flags'])}")
    assert not bad, "\n".join(bad)


def test_times_consistent(traced):
    now = time.time_ns()
    bad = []
    for e, row in match(traced):
        what = f"{e['method']} {e['path']}: {row}"
        if not 0 < row["ttfb_ns"] <= row["duration_ns"]:
            bad.append("ttfb not in (0, duration]: " + what)
        if row["duration_ns"] > e["elapsed"] * 1e9:
            bad.append(f"duration longer than the client saw ({e['elapsed'] * 1e3:.3f} ms): "
                       + what)
        if not now - 3600e9 < row["start_ns"] <= now:
            bad.append("start_ns is not a recent epoch time: " + what)
    assert not bad, "\n".join(bad)


def test_slow_request_duration(traced):
    slow = [(e, r) for e, r in match(traced) if e["slow_ms"]]
    assert slow, "GET /slow?ms=50 not stored"
    for e, row in slow:
        assert row["duration_ns"] >= e["slow_ms"] * 1e6, row
        assert row["duration_ns"] < e["elapsed"] * 1e9, (row, e["elapsed"])


def test_query_values_not_stored(traced):
    rows = db_rows(traced.db, "SELECT path FROM requests WHERE path LIKE '/search%'")
    assert rows, "no /search request stored"
    assert all(r["path"] == "/search?q=&page=" for r in rows), rows


def test_secrets_not_in_database(traced):
    found = []
    for suffix in ("", "-wal", "-journal"):
        path = traced.db + suffix
        if os.path.exists(path):
            data = open(path, "rb").read()
            found += [f"{s.decode()} in {path}" for s in SECRETS if s in data]
    assert not found, found
    # The recording keeps raw bytes for replay, but header secrets and query
    # values are scrubbed (same length) before they are written.
    assert os.path.exists(traced.rec)
    data = open(traced.rec, "rb").read()
    leaked = [s.decode() for s in SECRETS if s in data]
    assert not leaked, f"the --record file holds {leaked}"


def test_tracer_own_openapi_request_not_stored(traced):
    rows = db_rows(traced.db, "SELECT * FROM requests WHERE path LIKE '/openapi.json%'")
    assert rows == []


def test_report_json(traced):
    p = run_timeglass("report", "--db", traced.db, "--format", "json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["run"]["requests"] == len(db_rows(traced.db, "SELECT id FROM requests"))
    assert rep["run"]["dropped_events"] == 0
    got = {(ep["method"], ep["route"]): ep for ep in rep["endpoints"]}
    want = collections.Counter((e["method"], e["route"]) for e in traced.expected if e["route"])
    bad = [f"{k}: {got.get(k, {}).get('count')} in the report, {n} sent"
           for k, n in want.items() if got.get(k, {}).get("count") != n]
    assert not bad, "\n".join(bad) + f"\nendpoints: {rep['endpoints']}"
    assert got[("GET", "/error")]["errors"] == 1
    slow = got[("GET", "/slow")]
    assert 50 <= slow["p50_ms"] <= slow["max_ms"], slow


def test_replay_gives_the_same_requests(traced):
    assert os.path.exists(traced.rec) and os.path.getsize(traced.rec) > 0, "no --record file"
    db2 = str(traced.tmp / "replay.db")
    p = run_timeglass("replay", traced.rec, "--db", db2)
    assert p.returncode == 0, p.stdout + p.stderr
    cols = "pid, tid, conn_id, method, path, route, status, req_bytes, resp_bytes, flags, " \
           "duration_ns, ttfb_ns"
    q = f"SELECT {cols} FROM requests ORDER BY start_ns, conn_id"
    live, replayed = db_rows(traced.db, q), db_rows(db2, q)
    assert len(live) == len(replayed)
    diff = [(a, b) for a, b in zip(live, replayed) if a != b]
    assert not diff, "\n".join(f"live {a}\nreplay {b}" for a, b in diff[:10])
