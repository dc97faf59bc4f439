#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Load generator for the TimeGlass demo app (stdlib only: asyncio streams).

N concurrent workers, each on its own keep-alive HTTP/1.1 connection, send a
weighted mix of the demo app's endpoints for a given duration, then print the
requests sent per endpoint and the status counts. A connection the server
closes (uvicorn closes after a 500) is reopened transparently. --db adds the
app's PostgreSQL endpoints (/db/*, only when it runs with DATABASE_URL).

    /usr/bin/python3 examples/load.py --port 8000 --concurrency 8 --duration 15
    /usr/bin/python3 examples/load.py --port 8000 --db
"""

import argparse
import asyncio
import collections
import random
import sys
import time

# (name, weight, method, target, body). The name is the endpoint as reported.
MIX = [
    ("GET /", 5, "GET", "/", b""),
    ("GET /hello", 30, "GET", "/hello", b""),
    ("HEAD /health", 2, "HEAD", "/health", b""),
    ("GET /items/{item_id}", 15, "GET", "/items/{id}", b""),
    ("GET /users/{user_id}/orders", 8, "GET", "/users/{id}/orders?limit=5", b""),
    ("POST /items", 6, "POST", "/items", b'{"name": "widget", "price": 1.5}'),
    ("POST /upload", 3, "POST", "/upload", None),  # None: a random-size body
    ("GET /slow", 6, "GET", "/slow?ms={ms}", b""),
    ("GET /cpu", 4, "GET", "/cpu?n=20000", b""),
    ("GET /sync-cpu", 3, "GET", "/sync-cpu?n=20000", b""),
    ("GET /error", 1, "GET", "/error", b""),
    ("GET /stream", 3, "GET", "/stream?chunks=8&size=512", b""),
    ("GET /search", 8, "GET", "/search?q={q}&page={page}", b""),
    ("GET /big", 2, "GET", "/big?size=65536", b""),
]

# The /db/* endpoints (--db): the app needs DATABASE_URL, else they answer 503.
DB_MIX = [
    ("GET /db/items/{item_id}", 12, "GET", "/db/items/{dbid}", b""),
    ("GET /db/items", 5, "GET", "/db/items?limit=10", b""),
    ("GET /db/orders/n-plus-one", 5, "GET", "/db/orders/n-plus-one", b""),
    ("POST /db/orders", 3, "POST", "/db/orders", b'{"item_id": 2, "qty": 3}'),
    ("GET /db/sync-items", 3, "GET", "/db/sync-items?limit=5", b""),
    ("GET /db/error", 1, "GET", "/db/error", b""),
]


class Stats:
    def __init__(self):
        self.sent = collections.Counter()
        self.status = collections.Counter()
        self.errors = collections.Counter()
        self.latency = collections.defaultdict(list)


def fill(target, rng):
    return target.format(
        id=rng.choice([1, 2, 3, 42, 7, 1000]),
        dbid=rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 999]),
        ms=rng.choice([10, 20, 50]),
        q=rng.choice(["ham", "wrench", "x"]),
        page=rng.randint(1, 5),
    )


async def read_response(reader, method):
    """Read one response; return (status, keep_alive)."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("server closed the connection")
    status = int(line.split()[1])
    headers = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if method != "HEAD" and status not in (204, 304) and status >= 200:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif "content-length" in headers:
            await reader.readexactly(int(headers["content-length"]))
    return status, headers.get("connection", "").lower() != "close"


async def worker(host, port, deadline, mix, weights, stats, seed):
    rng = random.Random(seed)
    reader = writer = None
    while time.monotonic() < deadline:
        name, _, method, target, body = rng.choices(mix, weights=weights)[0]
        if body is None:
            body = b"u" * rng.choice([0, 1024, 16384, 262144])
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            head = f"{method} {fill(target, rng)} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            if method == "POST":
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"\r\n" + body)
            t0 = time.monotonic()
            stats.sent[name] += 1
            status, keep = await read_response(reader, method)
            stats.latency[name].append(time.monotonic() - t0)
            stats.status[status] += 1
            if not keep or status >= 500:  # uvicorn closes the connection after a 500
                writer.close()
                writer = None
        except (OSError, ConnectionError, ValueError, IndexError, asyncio.IncompleteReadError) as e:
            stats.errors[type(e).__name__] += 1
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


def pct(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100.0 * len(values)))] * 1000.0


async def main_async(args):
    mix = MIX + DB_MIX if args.db else MIX
    names = [m[0] for m in mix]
    weights = [m[1] for m in mix]
    if args.only:
        weights = [w if n in args.only else 0 for n, w in zip(names, weights)]
        if not any(weights):
            sys.exit(f"load.py: --only matches no endpoint; choose from: {', '.join(names)}")
    stats = Stats()
    deadline = time.monotonic() + args.duration
    t0 = time.monotonic()
    await asyncio.gather(
        *(
            worker(args.host, args.port, deadline, mix, weights, stats, args.seed + i)
            for i in range(args.concurrency)
        )
    )
    return stats, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("-c", "--concurrency", type=int, default=8, help="connections (default 8)")
    ap.add_argument("-d", "--duration", type=float, default=15.0, help="seconds (default 15)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--db", action="store_true", help="add the /db/* endpoints (app with DATABASE_URL)")
    ap.add_argument("--only", action="append", help='only this endpoint, e.g. "GET /hello" (repeatable)')
    args = ap.parse_args()

    stats, elapsed = asyncio.run(main_async(args))
    total = sum(stats.sent.values())
    print(f"load.py: {total} requests in {elapsed:.1f} s ({total / elapsed:.0f} req/s), "
          f"{args.concurrency} keep-alive connections")
    print(f"{'endpoint':<30} {'sent':>8} {'p50 ms':>9} {'p99 ms':>9}")
    for name in sorted(stats.sent, key=lambda n: -stats.sent[n]):
        lat = stats.latency[name]
        print(f"{name:<30} {stats.sent[name]:>8} {pct(lat, 50):>9.2f} {pct(lat, 99):>9.2f}")
    print("status: " + ", ".join(f"{s}: {n}" for s, n in sorted(stats.status.items())))
    if stats.errors:
        print("client errors: " + ", ".join(f"{e}: {n}" for e, n in stats.errors.items()))
    return 0 if total > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
