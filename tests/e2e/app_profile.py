# SPDX-License-Identifier: MIT
"""Test app of the flame graph e2e test (test_flamegraph.py).

GET /a spends ~70 % of its CPU in alpha() and ~30 % in beta(); GET /b only
in gamma(). Pure-Python loops (same body, so time follows the iteration
count), with an await between chunks so concurrent requests interleave on
the event loop and samples must be told apart by task, not by time.
"""

import asyncio

from fastapi import FastAPI

app = FastAPI()

CHUNKS = 12
UNIT = 3000  # iterations per 10 % of a chunk


def alpha(n):
    s = 0
    for i in range(n):  # hot loop of alpha
        s += i * i % 7
    return s


def beta(n):
    s = 0
    for i in range(n):  # hot loop of beta
        s += i * i % 7
    return s


def gamma(n):
    s = 0
    for i in range(n):  # hot loop of gamma
        s += i * i % 7
    return s


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/a")
async def endpoint_a():
    total = 0
    for _ in range(CHUNKS):
        total += alpha(7 * UNIT)
        total += beta(3 * UNIT)
        await asyncio.sleep(0)
    return {"total": total}


@app.get("/b")
async def endpoint_b():
    total = 0
    for _ in range(CHUNKS):
        total += gamma(10 * UNIT)
        await asyncio.sleep(0)
    return {"total": total}
