-- What one queries row costs SQLite itself on this machine, with no
-- TimeGlass code: 1,000,000 rows shaped like the statements of the demo's
-- /db/items/1 (two a request: the asyncpg query and the pool's reset on
-- release; the 17 columns TimeGlass writes; the table's three indexes), in
-- one transaction, from a generated series. docs/performance.md quotes it
-- as part of the floor under the database endpoint's goal.
--
--   rm -f /tmp/qfloor.db*; sqlite3 /tmp/qfloor.db < bench/sqlite_query_row_floor.sql
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE queries (
  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, request_id INTEGER, pid INTEGER NOT NULL,
  tid INTEGER NOT NULL, conn_id INTEGER NOT NULL, start_ns INTEGER NOT NULL, duration_ns INTEGER,
  first_row_ns INTEGER, statement TEXT NOT NULL, fingerprint INTEGER NOT NULL, command TEXT,
  rows INTEGER, error TEXT, sqlstate TEXT, db_user TEXT, db_name TEXT, flags INTEGER NOT NULL);
CREATE INDEX queries_run ON queries(run_id, start_ns);
CREATE INDEX queries_request ON queries(request_id) WHERE request_id IS NOT NULL;
CREATE INDEX queries_fingerprint ON queries(run_id, fingerprint);
.timer on
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000)
INSERT INTO queries (id, run_id, request_id, pid, tid, conn_id, start_ns, duration_ns, first_row_ns,
                     statement, fingerprint, command, rows, error, sqlstate, db_user, db_name, flags)
SELECT x, 1, x / 2, 4242, 4242, 100 + x % 10, 1764000000000000000 + x * 150000, 90000 + x % 977,
       CASE x % 2 WHEN 0 THEN 80000 END,
       CASE x % 2 WHEN 0 THEN 'SELECT id, name, price FROM items WHERE id = $1'
                  ELSE 'SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL' END,
       CASE x % 2 WHEN 0 THEN -3012749316123456789 ELSE 5123456789012345678 END,
       CASE x % 2 WHEN 0 THEN 'SELECT' ELSE 'RESET' END, CASE x % 2 WHEN 0 THEN 1 END,
       NULL, NULL, 'postgres', 'demo', 0 FROM c;
