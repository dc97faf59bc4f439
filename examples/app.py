# SPDX-License-Identifier: MIT
"""TimeGlass demo application: a small, realistic FastAPI service.

Uses only Debian's python3-fastapi (0.92) / starlette; no PyPI packages.
Run it with Debian's interpreter:

    /usr/bin/python3 -m uvicorn app:app --app-dir examples --port 8000

The end-to-end tests (tests/e2e/) and the benchmarks (bench/) use this app and
rely on the exact behaviour documented on each endpoint.
"""

import asyncio
import json
import time

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

app = FastAPI(title="TimeGlass demo", version="0.1.0")

ITEMS = {
    1: {"id": 1, "name": "hammer", "price": 12.5},
    2: {"id": 2, "name": "screwdriver", "price": 4.25},
    3: {"id": 3, "name": "wrench", "price": 9.0},
    42: {"id": 42, "name": "towel", "price": 3.5},
}


@app.get("/")
async def root():
    """Hello, as JSON."""
    return {"message": "hello from the TimeGlass demo"}


@app.get("/hello")
async def hello():
    """The cheapest endpoint (the benchmarks hammer it)."""
    return {"message": "hello"}


@app.get("/health", operation_id="health_get")
@app.head("/health", operation_id="health_head")
async def health():
    """Liveness probe; answers HEAD too (headers only, same Content-Length)."""
    return PlainTextResponse("ok\n")


@app.get("/items/{item_id}")
async def get_item(item_id: int):
    """An item by id; 404 for unknown ids."""
    item = ITEMS.get(item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="item not found")
    return item


@app.get("/users/{user_id}/orders")
async def user_orders(user_id: int, limit: int = 3):
    """A user's orders (synthetic)."""
    limit = max(0, min(limit, 100))
    return {
        "user_id": user_id,
        "orders": [{"order_id": user_id * 1000 + i, "total": 10.0 + i} for i in range(limit)],
    }


@app.post("/items", status_code=201)
async def create_item(request: Request):
    """Echo a JSON body with its size; 400 when the body is not JSON."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        raise HTTPException(status_code=400, detail="body is not JSON")
    return {"received": body, "size": len(raw)}


@app.post("/upload")
async def upload(request: Request):
    """Accept a raw body of any size; return its length."""
    body = await request.body()
    return {"length": len(body)}


@app.get("/slow")
async def slow(ms: int = 100):
    """Sleep ms milliseconds without blocking the loop (asyncio.sleep).

    Loops on a deadline: uvloop's timers use a cached loop time and may fire
    early in real time; the tests rely on at least ms elapsing."""
    deadline = time.monotonic() + max(0, ms) / 1000.0
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(left)
    return {"slept_ms": ms}


def _burn(n: int) -> int:
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1000003
    return acc


@app.get("/cpu")
async def cpu(n: int = 100000):
    """Burn CPU in the handler itself (pure Python loop on the event loop)."""
    return {"n": n, "result": _burn(max(0, n))}


@app.get("/sync-cpu")
def sync_cpu(n: int = 100000):
    """A `def` endpoint: FastAPI runs it in the thread pool."""
    return {"n": n, "result": _burn(max(0, n))}


@app.get("/error")
async def error():
    """Raise: starlette answers 500 (and uvicorn then closes the connection)."""
    raise RuntimeError("boom: the demo's deliberate error")


@app.get("/stream")
async def stream(chunks: int = 5, size: int = 100):
    """A chunked StreamingResponse of `chunks` chunks of `size` bytes."""
    chunks = max(0, min(chunks, 10000))
    size = max(1, min(size, 1 << 20))

    async def gen():
        for i in range(chunks):
            yield bytes([ord("a") + i % 26]) * size
            await asyncio.sleep(0)

    return StreamingResponse(gen(), media_type="application/octet-stream")


@app.get("/search")
async def search(q: str = "", page: int = 1):
    """A query string endpoint (the tracer must store the names, not the values)."""
    hits = [name for name in (i["name"] for i in ITEMS.values()) if q and q.lower() in name]
    return {"page": page, "count": len(hits), "hits": hits}


@app.get("/big")
async def big(size: int = 1024):
    """A Content-Length response of exactly `size` body bytes."""
    size = max(0, min(size, 64 << 20))
    return Response(content=b"x" * size, media_type="application/octet-stream")
