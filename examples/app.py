# SPDX-License-Identifier: MIT
"""TimeGlass demo application: a small, realistic FastAPI service.

Uses only Debian's python3-fastapi (0.92) / starlette; no PyPI packages.
Run it with Debian's interpreter:

    /usr/bin/python3 -m uvicorn app:app --app-dir examples --port 8000

With DATABASE_URL set (postgresql://USER@HOST:PORT/DB; scripts/demo.sh starts a
throw-away PostgreSQL and sets it) the /db/* endpoints query it with asyncpg
(python3-asyncpg) and psycopg2 (python3-psycopg2). Without it they answer 503
and everything else works as before (no PostgreSQL driver is even imported).

The end-to-end tests (tests/e2e/) and the benchmarks (bench/) use this app and
rely on the exact behaviour documented on each endpoint.
"""

import asyncio
import json
import os
import threading
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


# ---- PostgreSQL (only with DATABASE_URL; see scripts/demo.sh for the schema) ----------------
#
# Schema: items(id serial, name text, price numeric), orders(id serial, item_id int, qty int).
# DATABASE_SSL=require makes the asyncpg pool use TLS (bench/overhead.py --db-tls); TimeGlass
# reads TLS connections on the plaintext side (docs/postgres.md).

DATABASE_URL = os.environ.get("DATABASE_URL")
DATABASE_SSL = os.environ.get("DATABASE_SSL") or False
_pool = None  # asyncpg pool, created at startup
_sync_pool = None  # psycopg2 ThreadedConnectionPool, created on first use
_sync_lock = threading.Lock()


@app.on_event("startup")
async def _db_startup():
    global _pool
    if DATABASE_URL:
        import asyncpg

        _pool = await asyncpg.create_pool(DATABASE_URL, min_size=2, max_size=8, ssl=DATABASE_SSL)


@app.on_event("shutdown")
async def _db_shutdown():
    if _pool is not None:
        await _pool.close()
    if _sync_pool is not None:
        _sync_pool.closeall()


def _need_db():
    if _pool is None:
        raise HTTPException(status_code=503, detail="no database (DATABASE_URL is not set)")
    return _pool


def _item(row):
    return {"id": row["id"], "name": row["name"], "price": float(row["price"])}


@app.get("/db/items/{item_id}")
async def db_item(item_id: int):
    """One asyncpg query; 404 for unknown ids; 503 without DATABASE_URL."""
    row = await _need_db().fetchrow("SELECT id, name, price FROM items WHERE id = $1", item_id)
    if row is None:
        raise HTTPException(status_code=404, detail="item not found")
    return _item(row)


@app.get("/db/items")
async def db_items(limit: int = 20):
    """The item list: a count and a page (two queries on one connection)."""
    async with _need_db().acquire() as con:
        total = await con.fetchval("SELECT count(*) FROM items")
        rows = await con.fetch(
            "SELECT id, name, price FROM items ORDER BY id LIMIT $1", max(0, min(limit, 100))
        )
    return {"total": total, "items": [_item(r) for r in rows]}


@app.get("/db/orders/n-plus-one")
async def db_orders_n_plus_one():
    """The N+1 anti-pattern on purpose: 6 orders, then one query per order for its item."""
    async with _need_db().acquire() as con:
        orders = await con.fetch("SELECT id, item_id, qty FROM orders ORDER BY id LIMIT 6")
        out = []
        for o in orders:
            item = await con.fetchrow("SELECT name, price FROM items WHERE id = $1", o["item_id"])
            out.append({"order_id": o["id"], "qty": o["qty"], "item": item and item["name"]})
    return {"orders": out}


@app.post("/db/orders", status_code=201)
async def db_create_order(request: Request):
    """Insert an order: JSON {"item_id": N, "qty": N} (defaults 1, 1); 400 when not JSON."""
    pool = _need_db()
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
        item_id, qty = int(body.get("item_id", 1)), int(body.get("qty", 1))
    except (ValueError, TypeError, AttributeError):
        raise HTTPException(status_code=400, detail="body must be JSON {item_id, qty}")
    oid = await pool.fetchval(
        "INSERT INTO orders (item_id, qty) VALUES ($1, $2) RETURNING id", item_id, qty
    )
    return {"order_id": oid, "item_id": item_id, "qty": qty}


@app.get("/db/sync-items")
def db_sync_items(limit: int = 5):
    """A `def` endpoint (thread pool) using psycopg2 from a small pool (simple-query protocol)."""
    global _sync_pool
    _need_db()
    if _sync_pool is None:
        with _sync_lock:
            if _sync_pool is None:
                import psycopg2.pool

                _sync_pool = psycopg2.pool.ThreadedConnectionPool(
                    1, 4, DATABASE_URL, sslmode="disable"
                )
    con = _sync_pool.getconn()
    try:
        with con.cursor() as cur:
            cur.execute(
                "SELECT id, name, price FROM items ORDER BY id LIMIT %s", (max(0, min(limit, 100)),)
            )
            rows = cur.fetchall()
        con.rollback()  # end the implicit transaction: the connection goes back idle
    finally:
        _sync_pool.putconn(con)
    return {"items": [{"id": r[0], "name": r[1], "price": float(r[2])} for r in rows]}


@app.get("/db/error")
async def db_error():
    """A statement PostgreSQL rejects (division by zero): asyncpg raises, the app answers 500."""
    return {"value": await _need_db().fetchval("SELECT 1 / (count(*) - count(*)) FROM items")}
