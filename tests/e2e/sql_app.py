# SPDX-License-Identifier: MIT
"""FastAPI app of the SQL end-to-end tests (tests/e2e/test_sql.py).

PostgreSQL at TG_PG_PORT (127.0.0.1, user postgres, trust). Every endpoint
runs a known sequence of statements; `tag` is a request-specific literal the
test finds again in the stored texts (--capture-sql-values) to check that each
statement was attributed to the request that ran it.
"""

import asyncio
import os

import asyncpg
import psycopg2
from fastapi import FastAPI, HTTPException

PORT = int(os.environ["TG_PG_PORT"])
app = FastAPI()
pool = None
tls_pool = None  # over TLS, connected at startup: before any tracer attaches


@app.on_event("startup")
async def startup():
    global pool, tls_pool
    pool = await asyncpg.create_pool(host="127.0.0.1", port=PORT, user="postgres",
                                     database="postgres", min_size=4, max_size=4, ssl=False)
    tls_pool = await asyncpg.create_pool(host="127.0.0.1", port=PORT, user="postgres",
                                         database="postgres", min_size=2, max_size=2,
                                         ssl="require")


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/seq/{tag}")
async def seq(tag: int):
    """Three statements: a SELECT with the tag as a literal (simple query), an
    INSERT and a SELECT of one row (extended protocol, prepared)."""
    async with pool.acquire() as con:
        await con.execute(f"SELECT {tag} AS tag, pg_sleep(0.01)")
        await con.execute("INSERT INTO hits (tag) VALUES ($1)", tag)
        row = await con.fetchrow("SELECT count(*) AS n FROM hits WHERE tag = $1", tag)
    await asyncio.sleep(0)
    return {"tag": tag, "n": row["n"]}


@app.get("/dup/{tag}")
async def dup(tag: int):
    """A unique violation (SQLSTATE 23505) after a good statement."""
    async with pool.acquire() as con:
        await con.execute(f"SELECT {tag} AS dup")
        try:
            await con.execute("INSERT INTO uniq (id) VALUES (1)")
        except asyncpg.UniqueViolationError:
            raise HTTPException(status_code=409, detail="duplicate")
    return {"tag": tag}


@app.get("/nplus1/{n}")
async def nplus1(n: int):
    async with pool.acquire() as con:
        for i in range(n):
            await con.fetchval("SELECT $1::int + 1", i)
    return {"n": n}


def _psycopg2_rows(sql, args, sslmode):
    """One statement on a psycopg2 connection of its own, then COMMIT."""
    con = psycopg2.connect(host="127.0.0.1", port=PORT, user="postgres", dbname="postgres",
                           sslmode=sslmode)
    try:
        with con.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall()
        con.commit()
    finally:
        con.close()
    return {"rows": len(rows)}


@app.get("/sync/{tag}")
def sync(tag: int):
    """psycopg2 (libpq: sendto/recvfrom) in a thread-pool worker."""
    return _psycopg2_rows("SELECT %s AS sync_tag, generate_series(1, 3)", (tag,), "disable")


@app.get("/pg3/{tag}")
async def pg3(tag: int):
    """psycopg 3, async (libpq in non-blocking mode, driven by the event loop)."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(
            host="127.0.0.1", port=PORT, user="postgres", dbname="postgres",
            sslmode="disable", autocommit=True) as con:
        cur = await con.execute(f"SELECT {tag} AS pg3_tag, generate_series(1, 2)")
        rows = await cur.fetchall()
    return {"rows": len(rows)}


_sa_engine = None


@app.get("/sa/{tag}")
async def sa(tag: int):
    """SQLAlchemy 1.4's asyncio engine on asyncpg."""
    global _sa_engine
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    if _sa_engine is None:
        _sa_engine = create_async_engine(
            f"postgresql+asyncpg://postgres@127.0.0.1:{PORT}/postgres",
            connect_args={"ssl": False}, pool_size=2)
    async with _sa_engine.connect() as con:
        res = await con.execute(text(f"SELECT {tag} AS sa_tag"))
        n = len(res.fetchall())
    return {"rows": n}


@app.get("/sa-sync/{tag}")
def sa_sync(tag: int):
    """SQLAlchemy 1.4's sync engine on psycopg2, in the thread pool."""
    from sqlalchemy import create_engine, text

    eng = create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{PORT}/postgres",
                        connect_args={"sslmode": "disable"}, poolclass=None)
    with eng.connect() as con:
        n = len(con.execute(text(f"SELECT {tag} AS sa_sync_tag")).fetchall())
    eng.dispose()
    return {"rows": n}


async def _own_connection(tag, ssl):
    """asyncpg on a connection of its own: a simple query with the tag and a
    prepared statement."""
    con = await asyncpg.connect(host="127.0.0.1", port=PORT, user="postgres",
                                database="postgres", ssl=ssl)
    try:
        await con.execute(f"SELECT {tag} AS tls_async_tag, pg_sleep(0.005)")
        row = await con.fetchrow("SELECT $1::int * 2 AS twice", tag)
    finally:
        await con.close()
    return {"twice": row["twice"]}


@app.get("/tls-async/{tag}")
async def tls_async(tag: int):
    """Over TLS (Python's ssl module: a memory BIO)."""
    return await _own_connection(tag, "require")


@app.get("/plain-async/{tag}")
async def plain_async(tag: int):
    return await _own_connection(tag, False)


def _own_sync(tag, sslmode):
    """psycopg2 on a connection of its own, in the thread pool."""
    return _psycopg2_rows("SELECT %s AS tls_sync_tag, generate_series(1, 2)", (tag,), sslmode)


@app.get("/tls-sync/{tag}")
def tls_sync(tag: int):
    """Over TLS (libpq: SSL_write/SSL_read on the socket)."""
    return _own_sync(tag, "require")


@app.get("/plain-sync/{tag}")
def plain_sync(tag: int):
    return _own_sync(tag, "disable")


@app.get("/tls-pool/{tag}")
async def tls_pool_query(tag: int):
    """A pooled TLS connection opened before the tracer attached."""
    async with tls_pool.acquire() as con:
        await con.execute(f"SELECT {tag} AS tls_pool_tag")
    return {"tag": tag}
