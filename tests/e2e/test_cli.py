# SPDX-License-Identifier: MIT
"""The CLI's promises around the trace: clear errors for bad preconditions,
`doctor`, privileges when run through sudo, and `report`/`replay` on bad input.
"""

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import TG, App, Tracer, db_rows, get_close_simple, run_timeglass

NOBODY = 65534


def as_nobody(args, timeout=30):
    """Run timeglass as an unprivileged user (setpriv drops every capability)."""
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
           "--inh-caps=-all", TG] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/tmp")


def test_trace_without_privileges_says_what_to_do(tmp_path):
    r = as_nobody(["trace", "--pid", "1", "--db", "/tmp/tg-nobody.db", "--duration", "1"])
    assert r.returncode == 1, r
    assert "privileges" in r.stderr and "sudo timeglass trace" in r.stderr, r.stderr


def test_trace_no_such_process(tmp_path):
    r = run_timeglass("trace", "--pid", "999999999", "--db", str(tmp_path / "x.db"))
    assert r.returncode != 0
    assert "bad --pid" in r.stderr or "no such process" in r.stderr, r.stderr
    r = run_timeglass("trace", "--pid", "4194000", "--db", str(tmp_path / "x.db"))
    assert r.returncode == 1 and "no such process: 4194000" in r.stderr, r.stderr


def test_trace_db_not_writable(tmp_path):
    r = run_timeglass("trace", "--pid", str(os.getpid()), "--db", "/proc/timeglass.db",
                      "--duration", "1")
    assert r.returncode == 1
    assert "/proc/timeglass.db" in r.stderr, r.stderr


def test_usage_errors():
    r = run_timeglass("trace", "--duration", "soon")
    assert r.returncode == 2 and "--duration" in r.stderr
    r = run_timeglass("nonsense")
    assert r.returncode == 2 and "unknown command" in r.stderr
    r = run_timeglass("report", "--format", "xml")
    assert r.returncode == 2 and "unknown format" in r.stderr
    for cmd in ("trace", "report", "replay", "doctor"):
        r = run_timeglass(cmd, "--help")
        assert r.returncode == 0 and "usage: timeglass " + cmd in r.stdout, (cmd, r)


def test_doctor_table():
    r = run_timeglass("doctor")
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["CHECK", "STATUS"], r.stdout
    names = {line.split()[0] for line in lines[1:] if line and not line.startswith(" ")}
    assert {"kernel", "BTF", "privileges", "tracefs", "lockdown", "uvicorn", "openssl"} <= names, names
    assert [line for line in lines if line.startswith("openssl")][0].split()[1] == "ok", r.stdout
    # Debian's CPython: every Context probe on an instruction the kernel emulates (cheap traps)
    task = [line for line in lines if line.startswith("task probes")][0]
    assert task.split()[2] == "ok" and "emulated" in task, r.stdout
    assert r.returncode == 0, r.stdout  # as root on this machine, nothing fails
    r = as_nobody(["doctor"])
    assert "privileges" in r.stdout and "warn" in r.stdout, r.stdout


def test_report_errors(tmp_path):
    r = run_timeglass("report", "--db", str(tmp_path / "missing.db"))
    assert r.returncode == 1 and "missing.db" in r.stderr, r.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    r = run_timeglass("report", "--db", str(junk))
    assert r.returncode == 1 and r.stderr.strip(), r.stderr
    r = run_timeglass("replay", str(junk), "--db", str(tmp_path / "out.db"))
    assert r.returncode == 1 and "not a timeglass recording" in r.stderr, r.stderr


def test_command_runs_as_sudo_user_and_db_is_theirs(tmp_path):
    """Through sudo, `trace -- COMMAND` runs COMMAND as the invoking user and the
    database belongs to that user."""
    # pytest's tmp_path lives under a 0700 directory: use one nobody can reach.
    work = pathlib.Path(tempfile.mkdtemp(prefix="tg-sudo-", dir="/tmp"))
    os.chmod(work, 0o777)
    db = work / "sudo.db"
    out = work / "id.txt"
    env = dict(os.environ, SUDO_UID=str(NOBODY), SUDO_GID=str(NOBODY), SUDO_USER="nobody")
    r = subprocess.run([TG, "trace", "--db", str(db), "-q", "--", "/bin/sh", "-c",
                        f"id -u > {out}"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert out.read_text().strip() == str(NOBODY)
    assert os.stat(db).st_uid == NOBODY
    assert db_rows(str(db), "SELECT count(*) AS n FROM runs")[0]["n"] == 1
    shutil.rmtree(work)


def test_report_formats_on_a_real_trace(tmp_path):
    app = App()
    db = str(tmp_path / "r.db")
    try:
        t = Tracer(["--pid", str(app.pid), "--db", db, "-q"])
        for i in range(5):
            get_close_simple(app.port, f"/items/{i}")
        get_close_simple(app.port, "/error")
        assert t.stop() == 0
    finally:
        app.stop()
    j = json.loads(run_timeglass("report", "--db", db, "--format", "json").stdout)
    eps = {(e["method"], e["route"]): e for e in j["endpoints"]}
    assert eps[("GET", "/items/{item_id}")]["count"] == 5
    assert eps[("GET", "/error")]["errors"] == 1
    md = run_timeglass("report", "--db", db, "--format", "markdown").stdout
    assert "| GET" in md and "/items/{item_id}" in md
    text = run_timeglass("report", "--db", db).stdout
    assert "/items/{item_id}" in text and "dropped" in text


def test_trace_serves_live_dashboard_unprivileged(tmp_path):
    """trace serves the dashboard live on loopback, from a process that is not root."""
    import urllib.request

    from conftest import free_port

    work = pathlib.Path(tempfile.mkdtemp(prefix="tg-live-", dir="/tmp"))
    os.chmod(work, 0o755)
    port = free_port()
    app = App()
    t = None
    try:
        t = Tracer(["--pid", str(app.pid), "--db", str(work / "live.db"), "--listen",
                    f"127.0.0.1:{port}"])
        for i in range(3):
            get_close_simple(app.port, f"/items/{i}")
        deadline = time.monotonic() + 10
        while True:
            try:
                status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status"))
                reqs = json.load(urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/requests?route=/items/%7Bitem_id%7D"))
                if len(reqs["requests"]) == 3:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the live dashboard did not show the requests"
            time.sleep(0.3)
        assert status["live"] is True
        assert f"dashboard at http://127.0.0.1:{port}/" in t.text()
        # The process listening on the port is not root.
        out = subprocess.run(["ss", "-Htlnp", f"sport = :{port}"], capture_output=True,
                             text=True).stdout
        pid = int(out.split("pid=")[1].split(",")[0])
        assert os.stat(f"/proc/{pid}").st_uid != 0, out
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/").read()
        assert b"TimeGlass" in page
        assert t.stop() == 0
        # the dashboard stops with the tracer
        time.sleep(0.5)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
    finally:
        if t:
            t.stop()
        app.stop()
        shutil.rmtree(work)


def test_full_ring_buffer_loses_nothing_silently(tmp_path):
    """A ring buffer too small for the traffic drops events: the tracer keeps
    going, counts the drops, flags the requests that lost events, reports it,
    and the database stays intact."""
    import sqlite3

    from httpraw import RawConn

    db = str(tmp_path / "ring.db")
    app = App()
    try:
        # 4 KiB ring, 16 KiB heads: every read of an upload body is larger than
        # the whole ring and is dropped; small requests still fit.
        # (--no-task-cpu: the per-task events would fill a 4 KiB ring on
        # their own; this test is about HTTP data loss)
        t = Tracer(["--pid", str(app.pid), "--db", db, "-q", "--no-serve", "--ring-kib", "4",
                    "--capture-bytes", "16384", "--sample-hz", "0", "--no-task-cpu"])
        sent_small = 0
        for i in range(20):
            c = RawConn(app.port)
            try:
                _, r = c.request("POST", "/upload", [("Content-Type", "application/octet-stream")],
                                 b"x" * 200_000)
                assert r.status == 200
                _, r = c.request("GET", f"/items/{i % 5}")
                sent_small += 1
            finally:
                c.close()
        assert t.stop() == 0, t.text()
    finally:
        app.stop()
    run = db_rows(db, "SELECT events, dropped_events FROM runs")[0]
    assert run["dropped_events"] > 0, run
    lost = db_rows(db, "SELECT count(*) AS n FROM requests WHERE flags & 2")[0]["n"]
    assert lost > 0
    # the small requests after a loss resynchronise and are stored
    small = db_rows(db, "SELECT count(*) AS n FROM requests WHERE route = '/items/{item_id}'")
    assert small[0]["n"] >= sent_small * 0.5, small
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    text = run_timeglass("report", "--db", db).stdout
    assert "dropped" in text and str(run["dropped_events"]) in text, text
