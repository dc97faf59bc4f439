-- What one requests row costs SQLite itself on this machine, with no
-- TimeGlass code: 1,000,000 rows shaped like a /hello request (the 18
-- columns TimeGlass writes, the append-only requests_start index), in one
-- transaction, from a generated series. docs/performance.md quotes it as the
-- floor under the tracer's per-request CPU.
--
--   rm -f /tmp/floor.db*; sqlite3 /tmp/floor.db < bench/sqlite_row_floor.sql
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE requests (
  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, pid INTEGER NOT NULL, tid INTEGER NOT NULL,
  conn_id INTEGER NOT NULL, start_ns INTEGER NOT NULL, duration_ns INTEGER, ttfb_ns INTEGER,
  method TEXT NOT NULL, path TEXT NOT NULL, route TEXT, status INTEGER, req_bytes INTEGER NOT NULL,
  resp_bytes INTEGER NOT NULL, flags INTEGER NOT NULL, peer TEXT, sql_count INTEGER, sql_ns INTEGER);
CREATE INDEX requests_start ON requests(run_id, start_ns);
.timer on
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000)
INSERT INTO requests (run_id, pid, tid, conn_id, start_ns, duration_ns, ttfb_ns, method, path, route,
                      status, req_bytes, resp_bytes, flags, peer, sql_count, sql_ns, id)
SELECT 1, 4242, 4242, x % 32, 1764000000000000000 + x * 80000, 60000 + x % 977, 50000, 'GET',
       '/hello', '/hello', 200, 78, 151, 0, '127.0.0.1:' || (40000 + x % 32), 0, 0, x FROM c;
