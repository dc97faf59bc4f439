#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Record real PostgreSQL client traffic for tests/unit/test_pgwire.c.

Runs a TCP proxy 127.0.0.1:PROXY -> 127.0.0.1:PGPORT that logs every recv()
chunk of the client connection to OUT as records [dir u8][len u32 le][bytes],
dir 1 = client->server (TG_DIR_OUT: what the app wrote), 0 = server->client
(TG_DIR_IN). Records are in the order the proxy received them.
Usage: pg_capture.py asyncpg|psycopg2 OUT [PGPORT]
"""
import asyncio, socket, struct, sys, threading

PGPORT = int(sys.argv[3]) if len(sys.argv) > 3 else 55432
lock = threading.Lock()
records = []


def pump(src, dst, d):
    while True:
        b = src.recv(65536)
        if not b:
            break
        with lock:
            records.append((d, b))
            dst.sendall(b)
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def proxy(ls):
    while True:
        cs, _ = ls.accept()
        ss = socket.create_connection(("127.0.0.1", PGPORT))
        threading.Thread(target=pump, args=(cs, ss, 1), daemon=True).start()
        threading.Thread(target=pump, args=(ss, cs, 0), daemon=True).start()


async def run_asyncpg(port):
    import asyncpg
    c = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
    await c.execute("DROP TABLE IF EXISTS tg_items; CREATE TABLE tg_items (id int, name text)")
    await c.execute("INSERT INTO tg_items VALUES ($1, $2)", 1, "one")
    await c.executemany("INSERT INTO tg_items VALUES ($1, $2)", [(2, "two"), (3, "three")])
    for _ in range(2):
        rows = await c.fetch("SELECT id, name FROM tg_items WHERE id >= $1 ORDER BY id", 1)
        assert len(rows) == 3
    await c.fetchval("SELECT count(*) FROM tg_items")
    try:
        await c.fetch("SELECT * FROM tg_missing WHERE id = $1", 1)
    except asyncpg.UndefinedTableError:
        pass
    async with c.transaction():
        await c.execute("UPDATE tg_items SET name = $1 WHERE id = $2", "uno", 1)
    await c.copy_records_to_table("tg_items", records=[(4, "four"), (5, "five")])
    await c.close()


def run_psycopg2(port):
    import psycopg2
    c = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    cur = c.cursor()
    cur.execute("CREATE TEMP TABLE tg_t (id int, v text)")
    cur.execute("INSERT INTO tg_t VALUES (%s, %s), (%s, %s)", (1, "a", 2, "b"))
    cur.execute("SELECT id, v FROM tg_t WHERE id > %s", (0,))
    assert len(cur.fetchall()) == 2
    c.commit()
    try:
        cur.execute("SELECT 1/0")
    except psycopg2.Error:
        c.rollback()
    cur.execute("SELECT 1; SELECT 2")
    c.commit()
    c.close()


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    port = ls.getsockname()[1]
    threading.Thread(target=proxy, args=(ls,), daemon=True).start()
    if sys.argv[1] == "asyncpg":
        asyncio.run(run_asyncpg(port))
    else:
        run_psycopg2(port)
    import time
    time.sleep(0.3)
    with lock, open(sys.argv[2], "wb") as f:
        for d, b in records:
            f.write(struct.pack("<BI", d, len(b)) + b)


main()
