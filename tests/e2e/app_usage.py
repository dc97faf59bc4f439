# SPDX-License-Identifier: MIT
"""Test app of the per-request usage e2e test (test_usage.py, issue #4).

Every endpoint takes a request id in the PATH (query values are redacted in
the database, paths are not) and measures ground truth about itself:

    x-cpu-ns    CPU the handler's own code used: time.thread_time_ns() deltas
                around the parts that do not await (for the thread-pool
                endpoint, measured inside the worker function). Exact: no
                other task can run on the thread inside such a part.
    x-wall-ns   wall time of the handler
    x-gc        GC collections that ran in this request's contextvars Context
                during the handler (gc.callbacks + a ContextVar, below)
    x-gc-ns     (alloc) wall time of its explicit gc.collect()
    x-minflt    minor page faults of the thread during the handler's
                non-awaiting parts (getrusage(RUSAGE_THREAD))

Endpoints (US = CPU to burn, in microseconds; the burn loop is pure Python and
stops when thread_time says US have been spent):

    GET /hello/{rid}                 framework cost only
    GET /cpu/{rid}/{us}              async def, burns US on the loop
    GET /sleep/{rid}/{ms}            async def, awaits asyncio.sleep(ms)
    GET /pool/{rid}/{us}             def (thread pool), burns US in the worker
    GET /mw/cpu/{rid}/{us}           async def in a sub-app behind a Starlette
                                     BaseHTTPMiddleware (the endpoint runs in a
                                     child task of the request's task)
    GET /stream/{rid}/{us}/{chunks}  StreamingResponse; its async generator
                                     (a child task in starlette 0.26) burns
                                     US/chunks before each chunk. Headers go out
                                     first, so the truth is the body's last line:
                                     "truth cpu_ns=N gc=N minflt=N"
    GET /alloc/{rid}/{mb}            allocates ~MB MiB (a list of distinct
                                     ints: not GC-tracked, so the allocation
                                     itself triggers no automatic collection),
                                     calls gc.collect(), drops the list
    GET /net/{rid}/{ms}              async def, calls another service (the test's
                                     upstream at TG_UPSTREAM_PORT, which answers
                                     after ms) over a fresh asyncio connection;
                                     x-net-ns: from its request written to the
                                     first byte of the answer read
    GET /truth/gc                    process-wide GC counts since start: total,
                                     explicit (inside /alloc's gc.collect()) and
                                     by generation
    GET /health                      readiness probe

Run: /usr/bin/python3 -m uvicorn app_usage:app --app-dir tests/e2e
"""

import asyncio
import contextvars
import gc
import os
import resource
import time

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.middleware.base import BaseHTTPMiddleware

app = FastAPI()

# ---- ground truth helpers -------------------------------------------------------------------

_rid = contextvars.ContextVar("tg_usage_rid", default=None)
_gc_by_rid = {}  # rid -> collections that ran in a Context where _rid == rid
_gc_total = {"total": 0, "explicit": 0, "gen0": 0, "gen1": 0, "gen2": 0, "outside": 0}
_in_explicit = False


def _gc_callback(phase, info):
    if phase != "start":
        return
    _gc_total["total"] += 1
    _gc_total["gen%d" % info["generation"]] += 1
    if _in_explicit:
        _gc_total["explicit"] += 1
    rid = _rid.get()
    if rid is None:
        _gc_total["outside"] += 1
    else:
        _gc_by_rid[rid] = _gc_by_rid.get(rid, 0) + 1


gc.callbacks.append(_gc_callback)


def _minflt():
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def _spin(n):
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1000003
    return acc


def burn(us):
    """Burn `us` microseconds of this thread's CPU in pure Python; returns the
    CPU actually used (ns), measured with thread_time_ns."""
    t0 = time.thread_time_ns()
    end = t0 + us * 1000
    t = t0
    while t < end:
        _spin(200)  # ~10-20 us per call on this VM
        t = time.thread_time_ns()
    return t - t0


class Meter:
    """CPU (thread_time) and minor faults of the parts of a handler that do not
    await: call part() around each such part."""

    def __init__(self, rid):
        self.rid = rid
        _rid.set(rid)
        self.cpu = 0
        self.minflt = 0
        self.wall0 = time.perf_counter_ns()

    def start(self):
        self._c, self._f = time.thread_time_ns(), _minflt()

    def stop(self):
        self.cpu += time.thread_time_ns() - self._c
        self.minflt += _minflt() - self._f

    def headers(self, **extra):
        h = {"x-cpu-ns": str(self.cpu), "x-wall-ns": str(time.perf_counter_ns() - self.wall0),
             "x-gc": str(_gc_by_rid.pop(self.rid, 0)), "x-minflt": str(self.minflt)}
        h.update({k.replace("_", "-"): str(v) for k, v in extra.items()})
        return h


# ---- endpoints --------------------------------------------------------------------------------


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/hello/{rid}")
async def hello(rid: str):
    return {"hello": rid}


@app.get("/cpu/{rid}/{us}")
async def cpu(rid: str, us: int):
    m = Meter(rid)
    m.start()
    burn(us)
    m.stop()
    return JSONResponse({"rid": rid}, headers=m.headers())


@app.get("/sleep/{rid}/{ms}")
async def sleep(rid: str, ms: int):
    m = Meter(rid)
    m.start()
    deadline = time.monotonic() + ms / 1000.0
    m.stop()
    while True:
        m.start()
        left = deadline - time.monotonic()
        m.stop()
        if left <= 0:
            break
        await asyncio.sleep(left)
    return JSONResponse({"rid": rid}, headers=m.headers())


@app.get("/pool/{rid}/{us}")
def pool(rid: str, us: int):
    # Runs in an anyio worker thread, in a copy_context() of the request's Context.
    m = Meter(rid)
    m.start()
    burn(us)
    m.stop()
    return JSONResponse({"rid": rid}, headers=m.headers())


@app.get("/stream/{rid}/{us}/{chunks}")
async def stream(rid: str, us: int, chunks: int):
    chunks = max(1, chunks)

    async def gen():
        m = Meter(rid)  # the generator runs in starlette's stream_response child task
        for i in range(chunks):
            m.start()
            burn(us // chunks)
            m.stop()
            yield b"x" * 64 + b"\n"
        h = m.headers()
        yield f"truth cpu_ns={h['x-cpu-ns']} gc={h['x-gc']} minflt={h['x-minflt']}\n".encode()

    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/alloc/{rid}/{mb}")
async def alloc(rid: str, mb: int):
    global _in_explicit
    m = Meter(rid)
    m.start()
    # A CPython int in 1e9..: 32 bytes from pymalloc + 8 bytes of list slot.
    n = mb * (1 << 20) // 40
    data = list(range(10**9, 10**9 + n))
    t0 = time.perf_counter_ns()
    _in_explicit = True
    try:
        gc.collect()
    finally:
        _in_explicit = False
    gc_ns = time.perf_counter_ns() - t0
    size = len(data)
    del data
    m.stop()
    return JSONResponse({"rid": rid, "n": size}, headers=m.headers(x_gc_ns=gc_ns))


@app.get("/net/{rid}/{ms}")
async def net(rid: str, ms: int):
    reader, writer = await asyncio.open_connection("127.0.0.1",
                                                   int(os.environ["TG_UPSTREAM_PORT"]))
    try:
        writer.write(f"GET /wait/{ms} HTTP/1.0\r\nHost: upstream\r\n\r\n".encode())
        t0 = time.perf_counter_ns()
        await writer.drain()
        first = await reader.read(1)
        waited = time.perf_counter_ns() - t0
        rest = await reader.read()
    finally:
        writer.close()
    assert first == b"H" and rest.startswith(b"TTP/1.0 200"), first + rest[:40]
    return JSONResponse({"rid": rid}, headers={"x-net-ns": str(waited)})


@app.get("/truth/gc")
async def truth_gc():
    return dict(_gc_total)


# ---- a sub-app behind BaseHTTPMiddleware (only /mw/... goes through it) -----------------------

mw_app = FastAPI()


async def _passthrough(request, call_next):
    response = await call_next(request)  # the app runs in a child task (anyio task group)
    response.headers["x-mw"] = "1"
    return response


mw_app.add_middleware(BaseHTTPMiddleware, dispatch=_passthrough)


@mw_app.get("/cpu/{rid}/{us}")
async def mw_cpu(rid: str, us: int):
    m = Meter(rid)
    m.start()
    burn(us)
    m.stop()
    return JSONResponse({"rid": rid}, headers=m.headers())


app.mount("/mw", mw_app)
