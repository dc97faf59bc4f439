# SPDX-License-Identifier: MIT
"""End to end: the ways to pick targets. `--uvicorn` finds every worker of a
`uvicorn --workers 2`; `-- COMMAND` starts the server traced from its first
instruction and stops it on SIGTERM."""

import collections
import concurrent.futures
import json
import os
import time

from conftest import App, Tracer, db_rows, uvicorn_cmd, free_port, wait_ready
from httpraw import RawConn


def get_close(port, target):
    """GET with Connection: close on a new connection; returns the Resp."""
    c = RawConn(port)
    try:
        return c.request("GET", target, [("Connection", "close")])[1]
    finally:
        c.close()


def test_uvicorn_discovery_with_two_workers(tmp_path):
    db = str(tmp_path / "workers.db")
    app = App(workers=2)
    tracer = None
    try:
        deadline = time.monotonic() + 20
        while len(app.worker_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = app.worker_pids()
        assert len(workers) >= 2, f"uvicorn --workers 2 has children {workers}"
        tracer = Tracer(["--uvicorn", "--db", db])
        # New connections until both workers have answered (the kernel picks).
        served = collections.Counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for _ in range(10):
                for r in pool.map(lambda _: get_close(app.port, "/whoami"), range(40)):
                    assert r.status == 200
                    served[json.loads(r.body)["pid"]] += 1
                if len(served) >= 2:
                    break
        assert len(served) >= 2, f"only worker {list(served)} answered; cannot test"
        time.sleep(0.5)
        rc = tracer.stop()
        assert rc == 0, tracer.text()
        rows = db_rows(db, "SELECT pid, path, status, flags FROM requests WHERE path = '/whoami'")
        got = collections.Counter(r["pid"] for r in rows)
        assert got == served, f"stored per pid {dict(got)}, served per pid {dict(served)}"
        assert all(r["status"] == 200 and r["flags"] == 0 for r in rows), rows
        assert app.pid not in got
        assert db_rows(db, "SELECT * FROM requests WHERE path LIKE '/openapi.json%'") == []
    finally:
        if tracer is not None:
            tracer.stop()
        app.stop()


def test_trace_command(tmp_path):
    db = str(tmp_path / "cmd.db")
    port = free_port()
    tracer = Tracer(["--db", str(db), "--"] + uvicorn_cmd(port))
    try:
        polls = wait_ready(port, timeout=30, proc=tracer.proc)  # real, traced requests
        children = set()
        with open(f"/proc/{tracer.proc.pid}/task/{tracer.proc.pid}/children") as f:
            children.update(int(x) for x in f.read().split())
        sent = collections.Counter({"/health": polls})
        time.sleep(1.5)  # the tracer fetches /openapi.json once the app listens (polls 1/s)
        for target in ["/hello", "/items/1", "/items/5", "/hello", "/whoami"]:
            r = get_close(port, target)
            sent[target] += 1
            if target == "/whoami":
                server_pid = json.loads(r.body)["pid"]
        time.sleep(0.5)
        t0 = time.monotonic()
        rc = tracer.stop()
        assert rc == 0, f"exit code {rc}; stderr:\n{tracer.text()}"
        assert time.monotonic() - t0 < 15
        assert server_pid in children, (server_pid, children)
        assert not os.path.exists(f"/proc/{server_pid}"), "the traced command still runs"
        rows = db_rows(db, "SELECT pid, path, route, status, flags FROM requests")
        got = collections.Counter(r["path"] for r in rows)
        assert got == sent, f"stored {dict(got)}, sent {dict(sent)}"
        assert {r["pid"] for r in rows} == {server_pid}
        # The readiness polls may come before the routes are known (guessed: 0x100).
        bad = [r for r in rows if r["flags"] not in ((0, 0x100) if r["path"] == "/health" else (0,))]
        assert not bad, f"flags not 0 (0x100 = route guessed: /openapi.json not learnt): {bad}"
        routes = {r["path"]: r["route"] for r in rows if r["path"] != "/health"}
        assert routes == {"/hello": "/hello", "/items/1": "/items/{item_id}",
                          "/items/5": "/items/{item_id}", "/whoami": "/whoami"}, routes
    finally:
        tracer.stop()


def gunicorn_workers(master):
    with open(f"/proc/{master}/task/{master}/children") as f:
        return {int(x) for x in f.read().split()}


def test_gunicorn_started_later_and_restarted_worker(tmp_path):
    """--uvicorn waits for servers that start after it (gunicorn with uvicorn
    workers here), and picks up a worker that gunicorn restarts."""
    import signal
    import subprocess

    from conftest import E2E_DIR, stop_proc

    db = str(tmp_path / "gunicorn.db")
    tracer = Tracer(["--uvicorn", "--db", db])
    port = free_port()
    gun = subprocess.Popen(["/usr/bin/python3", "/usr/bin/gunicorn", "-k",
                            "uvicorn.workers.UvicornWorker", "-w", "2", "--bind",
                            f"127.0.0.1:{port}", "--chdir", E2E_DIR, "app_e2e:app"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc=gun)
        deadline = time.monotonic() + 20
        while len(gunicorn_workers(gun.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.5)  # the tracer rescans /proc every second
        served = collections.Counter()
        for _ in range(60):
            r = get_close(port, "/whoami")
            served[json.loads(r.body)["pid"]] += 1
        # Kill one worker: gunicorn starts a new one, which must be traced too.
        victim = next(iter(gunicorn_workers(gun.pid)))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = gunicorn_workers(gun.pid)
            if victim not in now and len(now) == 2:
                break
            time.sleep(0.2)
        new = gunicorn_workers(gun.pid) - {victim}
        wait_ready(port, proc=gun)
        time.sleep(2.5)
        for i in range(400):  # until the new worker has answered some
            r = get_close(port, "/whoami")
            served[json.loads(r.body)["pid"]] += 1
            if i >= 60 and any(served[p] >= 5 for p in new):
                break
        time.sleep(0.5)
        assert tracer.stop() == 0, tracer.text()
        rows = db_rows(db, "SELECT pid, status FROM requests WHERE path = '/whoami'")
        got = collections.Counter(r["pid"] for r in rows)
        assert got == served, f"stored per pid {dict(got)}, served per pid {dict(served)}"
        assert any(p in got for p in new), f"restarted worker {new} not traced: {dict(got)}"
    finally:
        tracer.stop()
        stop_proc(gun)
