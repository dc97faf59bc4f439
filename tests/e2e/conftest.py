# SPDX-License-Identifier: MIT
"""Shared fixtures and helpers of the end-to-end tests.

The tests run real uvicorn servers (Debian's /usr/bin/python3) on free ports,
trace them with the real `timeglass` binary (root needed: BPF), send a known
set of requests and check what the tracer stored in SQLite.

Environment: TIMEGLASS=path/to/timeglass (default: build/timeglass of this
repository). Run: sudo /usr/bin/python3 -m pytest tests/e2e -v
"""

import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
E2E_DIR = os.path.join(REPO, "tests", "e2e")
TG = os.environ.get("TIMEGLASS", os.path.join(REPO, "build", "timeglass"))
PY = "/usr/bin/python3"
ATTACHED = "timeglass: attached"


@pytest.fixture(autouse=True, scope="session")
def _require_root_and_binary():
    if os.geteuid() != 0:
        pytest.skip("e2e tests need root (BPF programs); run them with sudo (CI runs as root)")
    if not os.access(TG, os.X_OK):
        pytest.fail(f"{TG} is missing: build it first (make), or set TIMEGLASS=")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_proc(p, sig=signal.SIGTERM, timeout=15):
    """Signal a Popen and wait; SIGKILL after timeout. Returns the exit code."""
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    return p.returncode


def uvicorn_cmd(port, loop="uvloop", http="httptools", workers=None):
    cmd = [PY, "-m", "uvicorn", "app_e2e:app", "--app-dir", E2E_DIR, "--host", "127.0.0.1",
           "--port", str(port), "--loop", loop, "--http", http, "--log-level", "warning"]
    if workers:
        cmd += ["--workers", str(workers)]
    return cmd


def wait_ready(port, timeout=20, proc=None):
    """Poll GET /health (Connection: close) until it answers 200. Returns the
    number of requests that got an answer (they are real requests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before answering")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"HTTP/1.1 200"):
                    return 1
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered on port {port} within {timeout} s")


class App:
    """A uvicorn server running app_e2e on a free port."""

    def __init__(self, loop="uvloop", http="httptools", workers=None):
        self.port = free_port()
        self.proc = subprocess.Popen(uvicorn_cmd(self.port, loop, http, workers),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.stderr = []
        threading.Thread(target=_drain, args=(self.proc.stderr, self.stderr), daemon=True).start()
        try:
            wait_ready(self.port, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError("uvicorn did not start:\n" + "".join(self.stderr))

    @property
    def pid(self):
        return self.proc.pid

    def worker_pids(self):
        """Children of the uvicorn master (--workers N)."""
        pids = set()
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            with open(f"/proc/{self.pid}/task/{tid}/children") as f:
                pids.update(int(x) for x in f.read().split())
        return pids

    def stop(self):
        stop_proc(self.proc)


def _drain(stream, sink):
    for line in iter(stream.readline, b""):
        sink.append(line.decode("utf-8", "replace"))


class Tracer:
    """`timeglass trace ARGS...`, with its stderr collected."""

    def __init__(self, args, attach_timeout=45):
        self.cmd = [TG, "trace"] + list(args)
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stderr = []
        self.stdout = []
        threading.Thread(target=_drain, args=(self.proc.stderr, self.stderr), daemon=True).start()
        threading.Thread(target=_drain, args=(self.proc.stdout, self.stdout), daemon=True).start()
        deadline = time.monotonic() + attach_timeout
        while not any(ATTACHED in line for line in self.stderr):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                rc = self.stop()
                raise AssertionError(
                    f"no '{ATTACHED}' line from {' '.join(self.cmd)} "
                    f"(exit code {rc}); stderr:\n{self.text()}")
            time.sleep(0.05)

    def text(self):
        time.sleep(0.1)  # let the drain threads catch up
        return "".join(self.stderr)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return None
        return self.proc.returncode


def db_rows(db, sql, args=()):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def run_timeglass(*args, timeout=60):
    return subprocess.run([TG] + list(args), capture_output=True, text=True, timeout=timeout)


def get_close_simple(port, target):
    """GET target on a new connection with Connection: close; returns the raw
    response bytes."""
    import socket as _socket

    with _socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
