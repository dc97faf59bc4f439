/* SPDX-License-Identifier: MIT */
/*
 * The SQLite store (store.h, docs/schema.md).
 *
 * Design: one writer connection. The producers (the event consumer) copy
 * rows into a bounded ring of jobs under a mutex and return; a writer thread
 * takes every job queued so far, writes them in one transaction with
 * persistent prepared statements, and only then frees their slots. When a
 * batch fails it is rolled back and replayed job by job, each in its own
 * transaction, so one bad row loses only itself (counted in rows_failed and
 * logged). tg_store__flush() waits on a sequence number: jobs are numbered
 * as they are queued and the writer publishes how many it has finished.
 *
 * The connection is shared by the writer thread and the synchronous calls
 * (begin_run, end_run): db_lock serialises whole transactions, so neither
 * ever sees the other's half-open transaction.
 *
 * The schema is versioned with PRAGMA user_version; migrations[] holds the
 * SQL that takes version i to i + 1. Adding a table or a column is one more
 * entry there and a TG_SCHEMA_VERSION bump.
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cstr.h"
#include "hist.h"
#include "log.h"
#include "route.h"
#include "rowsrc.h"
#include "walckpt.h"

/* 16k jobs of ~2.2 KiB (a tg_request copy, its usage included): ~36 MiB, tens of ms of
 * buffering at full rate. Producers block beyond that. */
#define QUEUE_LEN 16384
/* The writer lets a batch build up to BATCH_MIN jobs, for at most
 * BATCH_LINGER_NS after its first job, unless someone waits for it
 * (tg_store__flush, close): every transaction has a fixed cost (rollup
 * upserts, COMMIT, WAL frames) that one row per wake-up would pay per row,
 * and waking the writer per job costs a futex call on both sides. */
#define BATCH_MIN 1024
#define BATCH_LINGER_NS 10000000L
#define BUSY_TIMEOUT_MS 5000
/* WAL checkpoints on a thread of their own (walckpt.h) from 1000 pages
 * (SQLite's default autocheckpoint); by the writer itself from 4000 (16 MiB),
 * which bounds the WAL when the writer is never idle. */
#define CKPT_PAGES 1000
#define CKPT_MAX_PAGES 4000

/* migrations[i] takes a database from user_version i to i + 1. */
static const char *const migrations[] = {
    /* v0 -> v1 */
    ("CREATE TABLE runs ("
     " id INTEGER PRIMARY KEY,"
     " started INTEGER NOT NULL,"
     " ended INTEGER,"
     " targets TEXT,"
     " kernel TEXT,"
     " version TEXT,"
     " events INTEGER,"
     " dropped_events INTEGER);"
     "CREATE TABLE targets ("
     " run_id INTEGER NOT NULL REFERENCES runs(id),"
     " pid INTEGER NOT NULL,"
     " cmdline TEXT,"
     " seen_ns INTEGER NOT NULL);"
     "CREATE INDEX targets_run ON targets(run_id, pid);"
     "CREATE TABLE requests ("
     " id INTEGER PRIMARY KEY,"
     " run_id INTEGER NOT NULL REFERENCES runs(id),"
     " pid INTEGER NOT NULL,"
     " tid INTEGER NOT NULL,"
     " conn_id INTEGER NOT NULL,"
     " start_ns INTEGER NOT NULL,"
     " duration_ns INTEGER,"
     " ttfb_ns INTEGER,"
     " method TEXT NOT NULL,"
     " path TEXT NOT NULL,"
     " route TEXT,"
     " status INTEGER,"
     " req_bytes INTEGER NOT NULL,"
     " resp_bytes INTEGER NOT NULL,"
     " flags INTEGER NOT NULL,"
     " peer TEXT);"
     "CREATE INDEX requests_start ON requests(run_id, start_ns);"),
    /* v1 -> v2: rollups for the dashboard (docs/schema.md, "Version 2"),
     * backfilled from the rows already there. */
    ("CREATE TABLE rollup_series ("
     " run_id INTEGER NOT NULL,"
     " res_s INTEGER NOT NULL,"
     " bucket_s INTEGER NOT NULL,"
     " count INTEGER NOT NULL,"
     " errors INTEGER NOT NULL,"
     " incomplete INTEGER NOT NULL,"
     " lost INTEGER NOT NULL,"
     " timed INTEGER NOT NULL,"
     " sum_duration_ns INTEGER NOT NULL,"
     " max_duration_ns INTEGER NOT NULL,"
     " hist BLOB,"
     " PRIMARY KEY (run_id, res_s, bucket_s)) WITHOUT ROWID;"
     /* the dashboard's slowest-first list on a live run (api_requests.c) */
     "CREATE INDEX rollup_series_max ON rollup_series(run_id, res_s, max_duration_ns);"
     "CREATE TABLE rollup_endpoint ("
     " run_id INTEGER NOT NULL,"
     " method TEXT NOT NULL,"
     " route TEXT NOT NULL,"
     " count INTEGER NOT NULL,"
     " errors INTEGER NOT NULL,"
     " incomplete INTEGER NOT NULL,"
     " timed INTEGER NOT NULL,"
     " sum_duration_ns INTEGER NOT NULL,"
     " max_duration_ns INTEGER NOT NULL,"
     " sum_resp_bytes INTEGER NOT NULL,"
     " hist BLOB,"
     " PRIMARY KEY (run_id, method, route)) WITHOUT ROWID;"
     "INSERT INTO rollup_series SELECT run_id, 1, start_ns / 1000000000, count(*),"
     " sum(coalesce(status, 0) >= 500), sum((flags & 1) != 0), sum((flags & 2) != 0),"
     " count(duration_ns), coalesce(sum(duration_ns), 0), coalesce(max(duration_ns), 0),"
     " tg_hist_of(duration_ns) FROM requests GROUP BY run_id, start_ns / 1000000000;"
     "INSERT INTO rollup_series SELECT run_id, 60, start_ns / 60000000000 * 60, count(*),"
     " sum(coalesce(status, 0) >= 500), sum((flags & 1) != 0), sum((flags & 2) != 0),"
     " count(duration_ns), coalesce(sum(duration_ns), 0), coalesce(max(duration_ns), 0),"
     " tg_hist_of(duration_ns) FROM requests GROUP BY run_id, start_ns / 60000000000;"
     "INSERT INTO rollup_endpoint SELECT run_id, method, coalesce(route, ''), count(*),"
     " sum(coalesce(status, 0) >= 500), sum((flags & 1) != 0), count(duration_ns),"
     " coalesce(sum(duration_ns), 0), coalesce(max(duration_ns), 0), sum(resp_bytes),"
     " tg_hist_of(duration_ns) FROM requests GROUP BY run_id, method, coalesce(route, '');"),
    /* v2 -> v3: Python stack samples (docs/schema.md, "Version 3"). Stacks are
     * interned as a trie: a stack is its leaf node; parent 0 = a root frame. */
    ("ALTER TABLE runs ADD COLUMN sample_hz INTEGER;"
     "CREATE TABLE frames ("
     " id INTEGER PRIMARY KEY,"
     " name TEXT NOT NULL,"
     " file TEXT NOT NULL,"
     " line INTEGER NOT NULL,"
     " UNIQUE (name, file, line));"
     "CREATE TABLE stacks ("
     " id INTEGER PRIMARY KEY,"
     " parent INTEGER NOT NULL,"
     " frame INTEGER NOT NULL,"
     " UNIQUE (parent, frame));"
     "CREATE TABLE samples ("
     " run_id INTEGER NOT NULL,"
     " ts_ns INTEGER NOT NULL,"
     " pid INTEGER NOT NULL,"
     " tid INTEGER NOT NULL,"
     " request_id INTEGER,"
     " stack_id INTEGER NOT NULL,"
     " flags INTEGER NOT NULL);"
     "CREATE INDEX samples_run ON samples(run_id, ts_ns);"
     "CREATE INDEX samples_request ON samples(request_id) WHERE request_id IS NOT NULL;"
     "CREATE TABLE profile_endpoint ("
     " run_id INTEGER NOT NULL,"
     " method TEXT NOT NULL,"
     " route TEXT NOT NULL,"
     " stack_id INTEGER NOT NULL,"
     " count INTEGER NOT NULL,"
     " PRIMARY KEY (run_id, method, route, stack_id)) WITHOUT ROWID;"),
    /* v3 -> v4: SQL statements (docs/schema.md, "Version 4"). */
    ("CREATE TABLE queries ("
     " id INTEGER PRIMARY KEY,"
     " run_id INTEGER NOT NULL,"
     " request_id INTEGER,"
     " pid INTEGER NOT NULL,"
     " tid INTEGER NOT NULL,"
     " conn_id INTEGER NOT NULL,"
     " start_ns INTEGER NOT NULL,"
     " duration_ns INTEGER,"
     " first_row_ns INTEGER,"
     " statement TEXT NOT NULL,"
     " fingerprint INTEGER NOT NULL,"
     " command TEXT,"
     " rows INTEGER,"
     " error TEXT,"
     " sqlstate TEXT,"
     " db_user TEXT,"
     " db_name TEXT,"
     " flags INTEGER NOT NULL);"
     "CREATE INDEX queries_run ON queries(run_id, start_ns);"
     "CREATE INDEX queries_request ON queries(request_id) WHERE request_id IS NOT NULL;"
     "CREATE INDEX queries_fingerprint ON queries(run_id, fingerprint);"
     "ALTER TABLE requests ADD COLUMN sql_count INTEGER;"
     "ALTER TABLE requests ADD COLUMN sql_ns INTEGER;"),
    /* v4 -> v5: per-request resources and process samples (docs/schema.md,
     * "Version 5"). Rows of older runs have no usage: NULL, and 0 in the
     * rollup sums. */
    ("ALTER TABLE requests ADD COLUMN cpu_ns INTEGER;"
     "ALTER TABLE requests ADD COLUMN cpu_pool_ns INTEGER;"
     "ALTER TABLE requests ADD COLUMN runq_ns INTEGER;"
     "ALTER TABLE requests ADD COLUMN pool_wait_ns INTEGER;"
     "ALTER TABLE requests ADD COLUMN minflt INTEGER;"
     "ALTER TABLE requests ADD COLUMN majflt INTEGER;"
     "ALTER TABLE requests ADD COLUMN heap_bytes INTEGER;"
     "ALTER TABLE requests ADD COLUMN gc_count INTEGER;"
     "ALTER TABLE requests ADD COLUMN gc_ns INTEGER;"
     "ALTER TABLE requests ADD COLUMN usage_flags INTEGER;"
     "ALTER TABLE requests ADD COLUMN timeline BLOB;"
     "ALTER TABLE requests ADD COLUMN lock_ns INTEGER;"
     "ALTER TABLE rollup_endpoint ADD COLUMN usage_count INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE rollup_endpoint ADD COLUMN sum_cpu_ns INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE rollup_endpoint ADD COLUMN sum_gc_ns INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE rollup_endpoint ADD COLUMN sum_gc_count INTEGER NOT NULL DEFAULT 0;"
     "CREATE TABLE process_stats ("
     " run_id INTEGER NOT NULL,"
     " pid INTEGER NOT NULL,"
     " ts INTEGER NOT NULL,"
     " rss_bytes INTEGER,"
     " cpu_ns INTEGER,"
     " threads INTEGER);"
     "CREATE INDEX process_stats_run ON process_stats(run_id, pid, ts);"),
    /* 5 -> 6: network waits (docs/schema.md, "Version 6") */
    "ALTER TABLE requests ADD COLUMN net_ns INTEGER;",
};

/* Indexes built when a run ends, not maintained while it is written. Rows
 * arrive in start order, so requests_start only ever appends; these two take
 * inserts at random places, and keeping them up to date cost 2-5 us of writer
 * CPU per row each (docs/schema.md, "Indexes"), more than the rest of the
 * insert. Readers of a live run get the same answers, from scans. */
static const struct {
	const char *name, *on;
} deferred[] = {
    {"requests_endpoint", "requests(run_id, method, route, start_ns)"},
    {"requests_endpoint_duration", "requests(run_id, method, route, duration_ns)"},
    {"requests_duration", "requests(run_id, duration_ns)"},
    {"requests_cpu", "requests(run_id, cpu_ns) WHERE cpu_ns IS NOT NULL"},
};

/* A run written into a file that holds ended runs finds the deferred
 * indexes built, and would update three of them (four with per-request CPU
 * on) at random places for every row: 5 -> 16 us of tracer CPU per /hello
 * request with --no-task-cpu (docs/performance.md, "A file that already
 * holds runs"). begin_run drops them instead and end_run builds them again
 * over every row of the file (3.5-6.5 us a row here), when the file's
 * earlier requests are at most reindex_max (default below). A larger file
 * keeps them, and the log says what that costs and how to avoid it. */
#define REINDEX_MAX_ROWS 1000000

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == TG_SCHEMA_VERSION,
	       "one migration per schema version");

enum job_kind { JOB_REQUEST = 1, JOB_TARGET, JOB_REROUTE, JOB_CALL, JOB_USAGE, JOB_PROCSTAT };

struct job {
	enum job_kind kind;
	int64_t run_id;
	uint64_t mono_to_epoch_ns;
	int64_t req_id;	 /* JOB_REQUEST: the id given by tg_store__add_request_id; JOB_USAGE */
	uint16_t len[4]; /* JOB_REQUEST: lengths of req.method, target, route, peer */
	union {
		struct tg_request req;
		struct {
			tg_store_call_fn fn;
			void *arg;
			void (*free_fn)(void *arg);
		} call;
		struct {
			uint32_t pid;
			uint64_t seen_ns;
			char *cmdline; /* owned, may be NULL */
		} target;
		struct {
			uint32_t pid;
			const struct tg_routes *routes;
		} reroute;
		struct tg_usage usage; /* JOB_USAGE */
		struct {
			uint32_t pid, threads;
			uint64_t mono_ns, rss_bytes, cpu_ns;
		} proc;
	};
};

/* The columns a request row is written with, in the order of
 * request_column()'s cases: the row source's (BULK_TABLE) and the INSERT's.
 * The usage ones (USAGE_COL..) last: a request without usage is written
 * without them (NULL). */
#define REQUEST_BASE_COLS                                                                          \
	"run_id, pid, tid, conn_id, start_ns, duration_ns, ttfb_ns, method, path, route, status,"  \
	" req_bytes, resp_bytes, flags, peer, sql_count, sql_ns, id"
#define REQUEST_COLS                                                                               \
	REQUEST_BASE_COLS ", cpu_ns, cpu_pool_ns, runq_ns, pool_wait_ns, minflt, majflt,"          \
			  " heap_bytes, gc_count, gc_ns, usage_flags, timeline, lock_ns, net_ns"
/* The requests being written, as a table (rowsrc.h): one INSERT ... SELECT
 * writes a run of queued requests in one statement. */
#define BULK_TABLE "tg_queued_requests"

enum stmt_id {
	ST_INS_REQUEST,	     /* every request of the row source, with usage */
	ST_INS_REQUEST_BASE, /* ... without (none of them has usage) */
	ST_INS_TARGET,
	ST_SEL_GUESSED,
	ST_UPD_ROUTE,
	ST_UPS_SERIES,
	ST_UPS_ENDPOINT,
	ST_DEL_ENDPOINTS,
	ST_REBUILD_ENDPOINTS,
	ST_SEL_USAGE,
	ST_UPD_USAGE,
	ST_INS_PROCSTAT,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_INS_REQUEST] =
	("INSERT INTO requests (" REQUEST_COLS ") SELECT " REQUEST_COLS " FROM " BULK_TABLE),
    [ST_INS_REQUEST_BASE] = ("INSERT INTO requests (" REQUEST_BASE_COLS
			     ") SELECT " REQUEST_BASE_COLS " FROM " BULK_TABLE),
    [ST_INS_TARGET] = "INSERT INTO targets (run_id, pid, cmdline, seen_ns) VALUES (?,?,?,?)",
    [ST_SEL_GUESSED] = ("SELECT id, method, path FROM requests"
			" WHERE run_id = ? AND pid = ? AND (flags & ?) != 0"),
    [ST_UPD_ROUTE] = "UPDATE requests SET route = ?, flags = flags & ~? WHERE id = ?",
    [ST_UPS_SERIES] = ("INSERT INTO rollup_series (run_id, res_s, bucket_s, count, errors,"
		       " incomplete, lost, timed, sum_duration_ns, max_duration_ns, hist)"
		       " VALUES (?,?,?,?,?,?,?,?,?,?,?)"
		       " ON CONFLICT (run_id, res_s, bucket_s) DO UPDATE SET"
		       " count = count + excluded.count, errors = errors + excluded.errors,"
		       " incomplete = incomplete + excluded.incomplete,"
		       " lost = lost + excluded.lost, timed = timed + excluded.timed,"
		       " sum_duration_ns = sum_duration_ns + excluded.sum_duration_ns,"
		       " max_duration_ns = max(max_duration_ns, excluded.max_duration_ns),"
		       " hist = tg_hist_merge(hist, excluded.hist)"),
    [ST_UPS_ENDPOINT] = ("INSERT INTO rollup_endpoint (run_id, method, route, count, errors,"
			 " incomplete, timed, sum_duration_ns, max_duration_ns, sum_resp_bytes,"
			 " hist, usage_count, sum_cpu_ns, sum_gc_ns, sum_gc_count)"
			 " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
			 " ON CONFLICT (run_id, method, route) DO UPDATE SET"
			 " count = count + excluded.count, errors = errors + excluded.errors,"
			 " incomplete = incomplete + excluded.incomplete,"
			 " timed = timed + excluded.timed,"
			 " sum_duration_ns = sum_duration_ns + excluded.sum_duration_ns,"
			 " max_duration_ns = max(max_duration_ns, excluded.max_duration_ns),"
			 " sum_resp_bytes = sum_resp_bytes + excluded.sum_resp_bytes,"
			 " hist = tg_hist_merge(hist, excluded.hist),"
			 " usage_count = usage_count + excluded.usage_count,"
			 " sum_cpu_ns = sum_cpu_ns + excluded.sum_cpu_ns,"
			 " sum_gc_ns = sum_gc_ns + excluded.sum_gc_ns,"
			 " sum_gc_count = sum_gc_count + excluded.sum_gc_count"),
    [ST_DEL_ENDPOINTS] = "DELETE FROM rollup_endpoint WHERE run_id = ?",
    [ST_REBUILD_ENDPOINTS] = ("INSERT INTO rollup_endpoint (run_id, method, route, count,"
			      " errors, incomplete, timed, sum_duration_ns, max_duration_ns,"
			      " sum_resp_bytes, hist, usage_count, sum_cpu_ns, sum_gc_ns,"
			      " sum_gc_count) SELECT run_id, method,"
			      " coalesce(route, ''), count(*), sum(coalesce(status, 0) >= 500),"
			      " sum((flags & 1) != 0), count(duration_ns),"
			      " coalesce(sum(duration_ns), 0), coalesce(max(duration_ns), 0),"
			      " sum(resp_bytes), tg_hist_of(duration_ns), count(usage_flags),"
			      " coalesce(sum(cpu_ns), 0), coalesce(sum(gc_ns), 0),"
			      " coalesce(sum(gc_count), 0) FROM requests"
			      " WHERE run_id = ? GROUP BY method, coalesce(route, '')"),
    [ST_SEL_USAGE] = ("SELECT run_id, method, coalesce(route, ''), usage_flags IS NOT NULL,"
		      " coalesce(cpu_ns, 0), coalesce(gc_ns, 0), coalesce(gc_count, 0)"
		      " FROM requests WHERE id = ?"),
    [ST_UPD_USAGE] = ("UPDATE requests SET cpu_ns = ?1, cpu_pool_ns = ?2, runq_ns = ?3,"
		      " pool_wait_ns = ?4, minflt = ?5, majflt = ?6, heap_bytes = ?7,"
		      " gc_count = ?8, gc_ns = ?9, usage_flags = ?10, timeline = ?11,"
		      " lock_ns = ?12, net_ns = ?13 WHERE id = ?14"),
    [ST_INS_PROCSTAT] = ("INSERT INTO process_stats (run_id, pid, ts, rss_bytes, cpu_ns, threads)"
			 " VALUES (?,?,?,?,?,?)"),
};

/* Rollup accumulators of the batch being written (docs/schema.md, "Version
 * 2"): one per (run, resolution, bucket) and one per (run, endpoint) touched, flushed as
 * one upsert each just before the batch commits. Kept between batches (only
 * the first n_* are in use) so their histograms are not reallocated. */
struct roll_common {
	int64_t run_id;
	int64_t count, errors, incomplete, lost, timed, sum_dur, max_dur, sum_resp;
	int64_t usage_count, sum_cpu, sum_gc, sum_gc_count; /* written for endpoints only */
	struct tg_hist *hist;
};

struct roll_series {
	struct roll_common c;
	int64_t res_s, bucket_s;
};

struct roll_endpoint {
	struct roll_common c;
	uint32_t hash;
	char method[TG_METHOD_LEN];
	char route[TG_ROUTE_LEN];
};

struct rollups {
	struct roll_series *series;
	size_t n_series, cap_series;
	struct roll_endpoint *eps;
	size_t n_eps, cap_eps;
};

struct tg_store {
	sqlite3 *db;
	sqlite3_stmt *stmt[ST_COUNT];
	pthread_mutex_t db_lock; /* held around every transaction */

	pthread_mutex_t lock;	  /* everything below */
	pthread_cond_t not_empty; /* signalled when a batch is worth writing */
	pthread_cond_t not_full;
	pthread_cond_t done; /* done_seq advanced */
	struct job *jobs;
	size_t head, count;
	uint64_t queued_seq, done_seq;
	bool stop, thread_started;
	bool writer_waiting; /* the writer sleeps on not_empty, not yet signalled */
	unsigned flushers;   /* threads waiting in tg_store__flush */
	pthread_t thread;
	int64_t run_id;		 /* 0: no run yet */
	int64_t next_request_id; /* the next id add_request_id hands out */
	int64_t reindex_max;	 /* see REINDEX_MAX_ROWS */
	bool reindex;		 /* this run dropped them: end_run's build is a rebuild */
	uint64_t mono_to_epoch_ns;
	struct tg_store_stats stats;
	struct tg_walckpt *ckpt; /* NULL: SQLite's own checkpoints */
	struct rollups roll;	 /* writer thread only (under db_lock) */
	/* writer thread only: the requests ST_INS_REQUEST reads (ring slots
	 * bulk_first.., bulk.n of them), and the timeline blob being written */
	struct tg_rowsrc bulk;
	size_t bulk_first;
	uint8_t timeline[TG_SPANS_MAX * TG_TIMELINE_REC];
};

static int exec_sql(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		tg_err("store: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
	}
	return rc;
}

static int read_user_version(sqlite3 *db, int *version)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*version = sqlite3_column_int(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

/* Maps an SQLite error seen at open to a user-facing message and an errno. */
static int open_error(sqlite3 *db, int rc, const char *path, const char *what, char *err,
		      size_t errlen)
{
	int e;

	if (rc == SQLITE_NOTADB) {
		snprintf(err, errlen, "%s is not a SQLite database", path);
		return -EINVAL;
	}
	if (rc == SQLITE_READONLY || rc == SQLITE_CANTOPEN || rc == SQLITE_PERM) {
		e = db ? sqlite3_system_errno(db) : 0;
		if (!e)
			e = rc == SQLITE_CANTOPEN ? ENOENT : EACCES;
		snprintf(err, errlen, "cannot open %s for writing: %s", path, strerror(e));
		return -e;
	}
	snprintf(err, errlen, "%s: %s: %s", path, what,
		 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	return -EIO;
}

static int newer_error(const char *path, int version, char *err, size_t errlen)
{
	snprintf(err, errlen,
		 "%s was made by a newer timeglass (schema version %d, this one knows up to %d); "
		 "use a newer timeglass",
		 path, version, TG_SCHEMA_VERSION);
	return -EPROTONOSUPPORT;
}

/* Refuse a file that is not a database or comes from a newer TimeGlass,
 * before changing anything in it. */
static int check_version(struct tg_store *s, const char *path, char *err, size_t errlen)
{
	int version = 0, rc;

	rc = read_user_version(s->db, &version);
	if (rc != SQLITE_OK)
		return open_error(s->db, rc, path, "reading the schema version", err, errlen);
	if (version > TG_SCHEMA_VERSION)
		return newer_error(path, version, err, errlen);
	return 0;
}

/* Bring the database to TG_SCHEMA_VERSION inside one IMMEDIATE transaction
 * (re-reading the version in it), so two processes opening the same new file
 * cannot both migrate it. */
static int migrate(struct tg_store *s, const char *path, char *err, size_t errlen)
{
	char sql[64];
	int version = 0, rc, ret = 0;

	rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return open_error(s->db, rc, path, "starting the schema migration", err, errlen);
	rc = read_user_version(s->db, &version);
	if (rc == SQLITE_OK && version > TG_SCHEMA_VERSION) {
		ret = newer_error(path, version, err, errlen);
		goto out;
	}
	for (; rc == SQLITE_OK && version < TG_SCHEMA_VERSION; version++) {
		rc = sqlite3_exec(s->db, migrations[version], NULL, NULL, NULL);
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version + 1);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		ret = open_error(s->db, rc, path, "migrating the schema", err, errlen);
out:
	if (ret)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

static int configure(struct tg_store *s, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	const char *mode = NULL;
	int rc;

	/* WAL, set once here (it is persistent in the file): readers (`timeglass
	 * report`, the dashboard) read while the tracer writes, without blocking
	 * it and without being blocked. */
	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		mode = (const char *)sqlite3_column_text(st, 0);
		rc = mode && !strcmp(mode, "wal") ? SQLITE_OK : SQLITE_ERROR;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return open_error(s->db, rc, path, "switching to WAL mode", err, errlen);
	/* In WAL mode NORMAL is durable against application crashes, and a power
	 * loss can only lose the last transactions: right for trace data. */
	rc = sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	/* A page cache big enough for the indexes' hot pages: the duration index
	 * takes inserts all over, and a cache miss is a pread per row. */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "PRAGMA cache_size = -65536", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return open_error(s->db, rc, path, "configuring the connection", err, errlen);
	return 0;
}

static int check_writable(const char *path, char *err, size_t errlen)
{
	char *dir, *slash;
	int e = 0;

	if (access(path, F_OK) == 0) {
		if (access(path, R_OK | W_OK) != 0)
			e = errno;
	} else if (errno == ENOENT) {
		dir = strdup(path);
		if (!dir)
			return -ENOMEM;
		slash = strrchr(dir, '/');
		if (slash == dir)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		if (access(slash ? dir : ".", W_OK | X_OK) != 0)
			e = errno;
		free(dir);
	} else {
		e = errno;
	}
	if (e) {
		snprintf(err, errlen, "cannot open %s for writing: %s", path, strerror(e));
		return -e;
	}
	return 0;
}

static void *writer_main(void *arg);

/* A condition variable whose timed waits use CLOCK_MONOTONIC. */
static int init_cond_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t attr;
	int rc = pthread_condattr_init(&attr);

	if (rc)
		return rc;
	rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!rc)
		rc = pthread_cond_init(c, &attr);
	pthread_condattr_destroy(&attr);
	return rc;
}

static void request_column(void *ctx, size_t row, int col, sqlite3_context *out);

struct tg_store *tg_store__open(const char *path, char *err, size_t errlen)
{
	struct tg_store *s;
	int ret, rc, i;

	if (!err)
		errlen = 0;
	if (!path || !*path) {
		snprintf(err, errlen, "no database path given");
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->jobs = calloc(QUEUE_LEN, sizeof(*s->jobs)))) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto fail;
	}
	s->reindex_max = REINDEX_MAX_ROWS;
	pthread_mutex_init(&s->db_lock, NULL);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->not_full, NULL);
	pthread_cond_init(&s->done, NULL);
	if (init_cond_monotonic(&s->not_empty)) {
		snprintf(err, errlen, "cannot initialise the writer's queue");
		ret = -ENOMEM;
		goto fail;
	}

	ret = check_writable(path, err, errlen);
	if (ret)
		goto fail;
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		ret = open_error(s->db, rc, path, "opening", err, errlen);
		goto fail;
	}
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	rc = tg_hist__register_sql(s->db);
	s->bulk.ctx = s;
	s->bulk.column = request_column;
	if (rc == SQLITE_OK)
		rc = tg_rowsrc__register(s->db, BULK_TABLE, "CREATE TABLE x(" REQUEST_COLS ")",
					 &s->bulk);
	if (rc != SQLITE_OK) {
		ret = open_error(s->db, rc, path, "registering functions", err, errlen);
		goto fail;
	}
	ret = check_version(s, path, err, errlen);
	if (ret)
		goto fail;
	ret = configure(s, path, err, errlen);
	if (ret)
		goto fail;
	ret = migrate(s, path, err, errlen);
	if (ret)
		goto fail;
	for (i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&s->stmt[i], NULL);
		if (rc != SQLITE_OK) {
			ret = open_error(s->db, rc, path, "preparing statements", err, errlen);
			goto fail;
		}
	}
	s->ckpt = tg_walckpt__start(s->db, path, CKPT_PAGES, CKPT_MAX_PAGES);
	rc = pthread_create(&s->thread, NULL, writer_main, s);
	if (rc) {
		snprintf(err, errlen, "cannot start the writer thread: %s", strerror(rc));
		ret = -rc;
		goto fail;
	}
	s->thread_started = true;
	return s;

fail:
	tg_store__close(s);
	errno = -ret;
	return NULL;
}

static void bind_text_or_null(sqlite3_stmt *st, int idx, const char *text)
{
	if (text && *text)
		sqlite3_bind_text(st, idx, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, idx);
}

static int step_reset(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

#define USAGE_PARAMS 13	  /* cpu_ns .. timeline, lock_ns, net_ns */
#define USAGE_COL 18	  /* the first of them in REQUEST_COLS (0-based) */
#define USAGE_TIMELINE 10 /* the one that is a blob */

static void bind_usage(struct tg_store *s, sqlite3_stmt *st, int first, const struct tg_usage *u);

static void result_int_or_null(sqlite3_context *out, bool has, int64_t v)
{
	if (has)
		sqlite3_result_int64(out, v);
	else
		sqlite3_result_null(out);
}

static void result_text_or_null(sqlite3_context *out, const char *text, uint16_t len)
{
	if (len)
		sqlite3_result_text(out, text, len, SQLITE_STATIC);
	else
		sqlite3_result_null(out);
}

/* Usage figure k (0 = cpu_ns .. 12 = net_ns, ST_UPD_USAGE's order; not the
 * timeline, 10) of u. */
static int64_t usage_value(const struct tg_usage *u, int k)
{
	switch (k) {
	case 0:
		return (int64_t)u->cpu_ns;
	case 1:
		return (int64_t)u->cpu_pool_ns;
	case 2:
		return (int64_t)u->runq_ns;
	case 3:
		return (int64_t)u->pool_wait_ns;
	case 4:
		return (int64_t)u->minflt;
	case 5:
		return (int64_t)u->majflt;
	case 6:
		return (int64_t)u->heap_bytes;
	case 7:
		return u->gc_count;
	case 8:
		return (int64_t)u->gc_ns;
	case 9:
		return u->flags;
	case 11:
		return (int64_t)u->lock_ns;
	default:
		return (int64_t)u->net_ns;
	}
}

/* Column USAGE_COL + k (REQUEST_COLS): usage figure k of r (the timeline
 * for k = 10), NULL when r has no usage. */
static void usage_column(struct tg_store *s, const struct tg_request *r, int k,
			 sqlite3_context *out)
{
	const struct tg_usage *u = &r->usage;
	size_t n = 0;

	if (!(u->flags & TG_USAGE_VALID) || k < 0 || k >= USAGE_PARAMS) {
		sqlite3_result_null(out);
		return;
	}
	if (k != USAGE_TIMELINE) {
		sqlite3_result_int64(out, usage_value(u, k));
		return;
	}
	n = tg_timeline__pack(u, s->timeline, sizeof(s->timeline));
	if (n)
		sqlite3_result_blob(out, s->timeline, (int)n, SQLITE_TRANSIENT);
	else
		sqlite3_result_null(out);
}

/*
 * Column col (REQUEST_COLS) of the request in ring slot s->bulk_first + row:
 * the row source of ST_INS_REQUEST. Text points into the job (SQLITE_STATIC:
 * the slot is the writer's until the batch is released).
 */
static void request_column(void *ctx, size_t row, int col, sqlite3_context *out)
{
	struct tg_store *s = ctx;
	const struct job *j = &s->jobs[(s->bulk_first + row) % QUEUE_LEN];
	const struct tg_request *r = &j->req;

	switch (col) {
	case 0:
		sqlite3_result_int64(out, j->run_id);
		break;
	case 1:
		sqlite3_result_int64(out, r->pid);
		break;
	case 2:
		sqlite3_result_int64(out, r->tid);
		break;
	case 3: /* the same 64 bits, signed: ids with TG_CONN_ID_USER_BIT are negative */
		sqlite3_result_int64(out, (int64_t)r->conn_id);
		break;
	case 4:
		sqlite3_result_int64(out, (int64_t)(r->start_ns + j->mono_to_epoch_ns));
		break;
	case 5:
		result_int_or_null(out, r->end_ns && r->end_ns >= r->start_ns,
				   (int64_t)(r->end_ns - r->start_ns));
		break;
	case 6:
		result_int_or_null(out, r->first_resp_ns && r->first_resp_ns >= r->start_ns,
				   (int64_t)(r->first_resp_ns - r->start_ns));
		break;
	case 7:
		sqlite3_result_text(out, r->method, j->len[0], SQLITE_STATIC);
		break;
	case 8:
		sqlite3_result_text(out, r->target, j->len[1], SQLITE_STATIC);
		break;
	case 9:
		result_text_or_null(out, r->route, j->len[2]);
		break;
	case 10:
		result_int_or_null(out, r->status, r->status);
		break;
	case 11:
		sqlite3_result_int64(out, (int64_t)r->req_bytes);
		break;
	case 12:
		sqlite3_result_int64(out, (int64_t)r->resp_bytes);
		break;
	case 13:
		sqlite3_result_int64(out, r->flags);
		break;
	case 14:
		result_text_or_null(out, r->peer, j->len[3]);
		break;
	case 15:
		result_int_or_null(out, r->sql_count, r->sql_count);
		break;
	case 16:
		result_int_or_null(out, r->sql_count, (int64_t)r->sql_ns);
		break;
	case 17:
		sqlite3_result_int64(out, j->req_id);
		break;
	default:
		usage_column(s, r, col - USAGE_COL, out);
		break;
	}
}

static bool has_usage(const struct job *j)
{
	return j->req.usage.flags & TG_USAGE_VALID;
}

/* Write the n requests queued in ring slots first.. (all JOB_REQUEST, all
 * with usage or all without) with one statement execution. */
static int write_requests(struct tg_store *s, size_t first, size_t n)
{
	bool usage = has_usage(&s->jobs[first % QUEUE_LEN]);

	s->bulk_first = first;
	s->bulk.n = n;
	return step_reset(s->stmt[usage ? ST_INS_REQUEST : ST_INS_REQUEST_BASE]);
}

/* How many jobs from ring slot first on (at most n) are requests like the
 * first (with usage or without). */
static size_t request_run(struct tg_store *s, size_t first, size_t n)
{
	const struct job *j = &s->jobs[first % QUEUE_LEN], *k;
	size_t i;

	if (j->kind != JOB_REQUEST)
		return 0;
	for (i = 1; i < n; i++) {
		k = &s->jobs[(first + i) % QUEUE_LEN];
		if (k->kind != JOB_REQUEST || has_usage(k) != has_usage(j))
			break;
	}
	return i;
}

/* Bind the USAGE_PARAMS usage parameters first.. of st (in the order of ST_UPD_USAGE's
 * columns): their values, or NULL when u is not valid. */
static void bind_usage(struct tg_store *s, sqlite3_stmt *st, int first, const struct tg_usage *u)
{
	size_t n;
	int i;

	if (!(u->flags & TG_USAGE_VALID)) {
		for (i = first; i < first + USAGE_PARAMS; i++)
			sqlite3_bind_null(st, i);
		return;
	}
	for (i = 0; i < USAGE_PARAMS; i++) {
		if (i != USAGE_TIMELINE) {
			sqlite3_bind_int64(st, first + i, usage_value(u, i));
			continue;
		}
		n = tg_timeline__pack(u, s->timeline, sizeof(s->timeline));
		if (n)
			sqlite3_bind_blob(st, first + i, s->timeline, (int)n, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, first + i);
	}
}

static int write_target(struct tg_store *s, const struct job *j)
{
	sqlite3_stmt *st = s->stmt[ST_INS_TARGET];

	sqlite3_bind_int64(st, 1, j->run_id);
	sqlite3_bind_int64(st, 2, j->target.pid);
	bind_text_or_null(st, 3, j->target.cmdline);
	sqlite3_bind_int64(st, 4, (int64_t)(j->target.seen_ns + j->mono_to_epoch_ns));
	return step_done(st);
}

/* ---- Rollups (docs/schema.md, "Version 2"). */

static int roll_init(struct roll_common *c, int64_t run_id)
{
	struct tg_hist *h = c->hist;

	if (!h && !(h = malloc(sizeof(*h))))
		return SQLITE_NOMEM;
	memset(c, 0, sizeof(*c));
	c->run_id = run_id;
	c->hist = h;
	tg_hist__clear(h);
	return SQLITE_OK;
}

/* Count r in c: dur its duration (< 0: none), bucket dur's histogram bucket. */
static void roll_count(struct roll_common *c, const struct tg_request *r, int64_t dur,
		       unsigned bucket)
{
	if (r->usage.flags & TG_USAGE_VALID) {
		c->usage_count++;
		c->sum_cpu += (int64_t)r->usage.cpu_ns;
		c->sum_gc += (int64_t)r->usage.gc_ns;
		c->sum_gc_count += r->usage.gc_count;
	}
	c->count++;
	c->errors += r->status >= 500;
	c->incomplete += (r->flags & TG_REQ_INCOMPLETE) != 0;
	c->lost += (r->flags & TG_REQ_LOST_EVENTS) != 0;
	c->sum_resp += (int64_t)r->resp_bytes;
	if (dur < 0)
		return;
	c->timed++;
	c->sum_dur += dur;
	if (dur > c->max_dur)
		c->max_dur = dur;
	tg_hist__add_bucket(c->hist, bucket);
}

static uint32_t ep_hash(const char *method, const char *route)
{
	uint32_t h = 2166136261u;

	for (; *method; method++)
		h = (h ^ (uint8_t)*method) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (; *route; route++)
		h = (h ^ (uint8_t)*route) * 16777619u;
	return h;
}

/* Grow an array of accumulators by one zeroed element. */
static void *roll_grow(void *arr, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	char *p;

	if (n < *cap)
		return arr;
	ncap = *cap ? *cap * 2 : 16;
	p = realloc(arr, ncap * size);
	if (!p)
		return NULL;
	memset(p + *cap * size, 0, (ncap - *cap) * size);
	*cap = ncap;
	return p;
}

/* The accumulator of (run, res_s, bucket_s), added if new. */
static struct roll_series *roll_series_for(struct rollups *ro, int64_t run_id, int64_t res_s,
					   int64_t bucket_s)
{
	struct roll_series *se;
	size_t i;
	void *p;

	/* rows come in start order: the bucket is nearly always one of the last */
	for (i = ro->n_series; i-- > 0;) {
		se = &ro->series[i];
		if (se->bucket_s == bucket_s && se->res_s == res_s && se->c.run_id == run_id)
			return se;
	}
	p = roll_grow(ro->series, &ro->cap_series, ro->n_series, sizeof(*ro->series));
	if (!p)
		return NULL;
	ro->series = p;
	se = &ro->series[ro->n_series];
	if (roll_init(&se->c, run_id))
		return NULL;
	se->res_s = res_s;
	se->bucket_s = bucket_s;
	ro->n_series++;
	return se;
}

/* The accumulator of (run, method, route), added if new. */
static struct roll_endpoint *roll_endpoint_for(struct rollups *ro, int64_t run_id,
					       const char *method, const char *route)
{
	uint32_t h = ep_hash(method, route);
	struct roll_endpoint *ep;
	size_t i;
	void *p;

	for (i = 0; i < ro->n_eps; i++) {
		ep = &ro->eps[i];
		if (ep->hash == h && ep->c.run_id == run_id && !strcmp(ep->method, method) &&
		    !strcmp(ep->route, route))
			return ep;
	}
	p = roll_grow(ro->eps, &ro->cap_eps, ro->n_eps, sizeof(*ro->eps));
	if (!p)
		return NULL;
	ro->eps = p;
	ep = &ro->eps[ro->n_eps];
	if (roll_init(&ep->c, run_id))
		return NULL;
	ep->hash = h;
	snprintf(ep->method, sizeof(ep->method), "%s", method);
	snprintf(ep->route, sizeof(ep->route), "%s", route);
	ro->n_eps++;
	return ep;
}

/* Account one written request (same conversions as request_column). */
static int roll_add(struct tg_store *s, const struct job *j)
{
	const struct tg_request *r = &j->req;
	struct rollups *ro = &s->roll;
	int64_t sec = (int64_t)((r->start_ns + j->mono_to_epoch_ns) / 1000000000ULL);
	int64_t dur =
	    r->end_ns && r->end_ns >= r->start_ns ? (int64_t)(r->end_ns - r->start_ns) : -1;
	unsigned bucket = dur < 0 ? 0 : tg_hist__bucket((uint64_t)dur);
	struct roll_series *se, *se60;
	struct roll_endpoint *ep;
	size_t i60;

	se60 = roll_series_for(ro, j->run_id, 60, sec / 60 * 60);
	if (!se60)
		return SQLITE_NOMEM;
	i60 = (size_t)(se60 - ro->series);
	se = roll_series_for(ro, j->run_id, 1, sec);
	if (!se)
		return SQLITE_NOMEM;
	se60 = &ro->series[i60]; /* the array may have moved */
	ep = roll_endpoint_for(ro, j->run_id, r->method, r->route);
	if (!ep)
		return SQLITE_NOMEM;
	roll_count(&se->c, r, dur, bucket);
	roll_count(&se60->c, r, dur, bucket);
	roll_count(&ep->c, r, dur, bucket);
	return SQLITE_OK;
}

static void roll_reset(struct tg_store *s)
{
	s->roll.n_series = 0;
	s->roll.n_eps = 0;
}

/* One upsert per accumulator in use, then forget them. */
static int roll_flush(struct tg_store *s)
{
	static uint8_t blob[TG_HIST_BUCKETS * TG_HIST_PAIR_SIZE]; /* writer thread only */
	struct rollups *ro = &s->roll;
	sqlite3_stmt *st;
	size_t i, n;
	int rc = SQLITE_OK;

	st = s->stmt[ST_UPS_SERIES];
	for (i = 0; i < ro->n_series && rc == SQLITE_OK; i++) {
		const struct roll_series *se = &ro->series[i];

		n = tg_hist__encode(se->c.hist, blob, sizeof(blob));
		sqlite3_bind_int64(st, 1, se->c.run_id);
		sqlite3_bind_int64(st, 2, se->res_s);
		sqlite3_bind_int64(st, 3, se->bucket_s);
		sqlite3_bind_int64(st, 4, se->c.count);
		sqlite3_bind_int64(st, 5, se->c.errors);
		sqlite3_bind_int64(st, 6, se->c.incomplete);
		sqlite3_bind_int64(st, 7, se->c.lost);
		sqlite3_bind_int64(st, 8, se->c.timed);
		sqlite3_bind_int64(st, 9, se->c.sum_dur);
		sqlite3_bind_int64(st, 10, se->c.max_dur);
		sqlite3_bind_blob(st, 11, blob, (int)n, SQLITE_STATIC);
		rc = step_reset(st);
	}
	st = s->stmt[ST_UPS_ENDPOINT];
	for (i = 0; i < ro->n_eps && rc == SQLITE_OK; i++) {
		const struct roll_endpoint *ep = &ro->eps[i];

		n = tg_hist__encode(ep->c.hist, blob, sizeof(blob));
		sqlite3_bind_int64(st, 1, ep->c.run_id);
		sqlite3_bind_text(st, 2, ep->method, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, ep->route, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, ep->c.count);
		sqlite3_bind_int64(st, 5, ep->c.errors);
		sqlite3_bind_int64(st, 6, ep->c.incomplete);
		sqlite3_bind_int64(st, 7, ep->c.timed);
		sqlite3_bind_int64(st, 8, ep->c.sum_dur);
		sqlite3_bind_int64(st, 9, ep->c.max_dur);
		sqlite3_bind_int64(st, 10, ep->c.sum_resp);
		sqlite3_bind_blob(st, 11, blob, (int)n, SQLITE_STATIC);
		sqlite3_bind_int64(st, 12, ep->c.usage_count);
		sqlite3_bind_int64(st, 13, ep->c.sum_cpu);
		sqlite3_bind_int64(st, 14, ep->c.sum_gc);
		sqlite3_bind_int64(st, 15, ep->c.sum_gc_count);
		rc = step_reset(st);
	}
	roll_reset(s);
	return rc;
}

static void roll_free(struct rollups *ro)
{
	size_t i;

	for (i = 0; i < ro->cap_series; i++)
		free(ro->series[i].c.hist);
	for (i = 0; i < ro->cap_eps; i++)
		free(ro->eps[i].c.hist);
	free(ro->series);
	free(ro->eps);
}

/* Rebuild a run's endpoint rollup from its rows (after routes changed). */
static int roll_rebuild_endpoints(struct tg_store *s, int64_t run_id)
{
	int rc;

	sqlite3_bind_int64(s->stmt[ST_DEL_ENDPOINTS], 1, run_id);
	rc = step_done(s->stmt[ST_DEL_ENDPOINTS]);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(s->stmt[ST_REBUILD_ENDPOINTS], 1, run_id);
		rc = step_done(s->stmt[ST_REBUILD_ENDPOINTS]);
	}
	return rc;
}

struct route_update {
	int64_t id;
	char route[TG_ROUTE_LEN];
};

/* Collect the matches first, then update: no UPDATE while the SELECT over
 * the same rows is still stepping. */
static int write_reroute(struct tg_store *s, const struct job *j)
{
	sqlite3_stmt *sel = s->stmt[ST_SEL_GUESSED], *upd = s->stmt[ST_UPD_ROUTE];
	struct route_update *ups = NULL, *tmp;
	size_t n = 0, cap = 0, i;
	int rc;

	/* rows of this batch before the reroute are in the table already: put
	 * their rollups in first, the rebuild below replaces the endpoint ones */
	rc = roll_flush(s);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(sel, 1, j->run_id);
	sqlite3_bind_int64(sel, 2, j->reroute.pid);
	sqlite3_bind_int64(sel, 3, TG_REQ_ROUTE_GUESSED);
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		const char *method = (const char *)sqlite3_column_text(sel, 1);
		const char *path = (const char *)sqlite3_column_text(sel, 2);

		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			tmp = realloc(ups, cap * sizeof(*ups));
			if (!tmp) {
				rc = SQLITE_NOMEM;
				break;
			}
			ups = tmp;
		}
		if (tg_route__match(j->reroute.routes, method ? method : "", path ? path : "",
				    ups[n].route, sizeof(ups[n].route))) {
			ups[n].id = sqlite3_column_int64(sel, 0);
			n++;
		}
	}
	sqlite3_reset(sel);
	sqlite3_clear_bindings(sel);
	if (rc != SQLITE_DONE)
		goto out;
	rc = SQLITE_OK;
	for (i = 0; i < n && rc == SQLITE_OK; i++) {
		sqlite3_bind_text(upd, 1, ups[i].route, -1, SQLITE_STATIC);
		sqlite3_bind_int64(upd, 2, TG_REQ_ROUTE_GUESSED);
		sqlite3_bind_int64(upd, 3, ups[i].id);
		rc = step_done(upd);
	}
	if (rc == SQLITE_OK && n)
		rc = roll_rebuild_endpoints(s, j->run_id);
out:
	free(ups);
	return rc;
}

/*
 * Usage completed after the request was queued: rewrite its columns and move
 * the endpoint rollup by the difference (through the batch's accumulator, so
 * it lands in the same upsert as the row's own count when both are in one
 * batch). A request that is not in the table (its row failed) is skipped.
 */
static int write_usage(struct tg_store *s, const struct job *j)
{
	sqlite3_stmt *sel = s->stmt[ST_SEL_USAGE], *upd = s->stmt[ST_UPD_USAGE];
	const struct tg_usage *u = &j->usage;
	bool valid = u->flags & TG_USAGE_VALID, had;
	struct roll_endpoint *ep;
	int64_t run_id, cpu, gc, gcn;
	int rc;

	sqlite3_bind_int64(sel, 1, j->req_id);
	rc = sqlite3_step(sel);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(sel);
		return rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	run_id = sqlite3_column_int64(sel, 0);
	had = sqlite3_column_int(sel, 3);
	cpu = sqlite3_column_int64(sel, 4);
	gc = sqlite3_column_int64(sel, 5);
	gcn = sqlite3_column_int64(sel, 6);
	ep = roll_endpoint_for(&s->roll, run_id, (const char *)sqlite3_column_text(sel, 1),
			       (const char *)sqlite3_column_text(sel, 2));
	sqlite3_reset(sel);
	if (!ep)
		return SQLITE_NOMEM;
	ep->c.usage_count += (int64_t)valid - (int64_t)had;
	ep->c.sum_cpu += (valid ? (int64_t)u->cpu_ns : 0) - cpu;
	ep->c.sum_gc += (valid ? (int64_t)u->gc_ns : 0) - gc;
	ep->c.sum_gc_count += (valid ? (int64_t)u->gc_count : 0) - gcn;

	bind_usage(s, upd, 1, u);
	sqlite3_bind_int64(upd, 1 + USAGE_PARAMS, j->req_id);
	return step_done(upd);
}

static int write_procstat(struct tg_store *s, const struct job *j)
{
	sqlite3_stmt *st = s->stmt[ST_INS_PROCSTAT];

	sqlite3_bind_int64(st, 1, j->run_id);
	sqlite3_bind_int64(st, 2, j->proc.pid);
	sqlite3_bind_int64(st, 3, (int64_t)(j->proc.mono_ns + j->mono_to_epoch_ns));
	sqlite3_bind_int64(st, 4, (int64_t)j->proc.rss_bytes);
	sqlite3_bind_int64(st, 5, (int64_t)j->proc.cpu_ns);
	sqlite3_bind_int64(st, 6, j->proc.threads);
	return step_done(st);
}

/* Write the job in ring slot idx (a request alone: see write_batch). */
static int write_job(struct tg_store *s, size_t idx)
{
	const struct job *j = &s->jobs[idx % QUEUE_LEN];
	int rc;

	switch (j->kind) {
	case JOB_REQUEST:
		rc = write_requests(s, idx, 1);
		return rc == SQLITE_OK ? roll_add(s, j) : rc;
	case JOB_TARGET:
		return write_target(s, j);
	case JOB_REROUTE:
		return write_reroute(s, j);
	case JOB_CALL:
		return j->call.fn(s->db, j->call.arg, j->run_id, j->mono_to_epoch_ns);
	case JOB_USAGE:
		return write_usage(s, j);
	case JOB_PROCSTAT:
		return write_procstat(s, j);
	}
	return SQLITE_MISUSE;
}

/* Write jobs [first, first + n) of the ring in order, each run of
 * consecutive requests (request_run) with one statement. Stops at the first
 * failure.
 * Returns an SQLite result code; *written counts the requests written. */
static int write_jobs(struct tg_store *s, size_t first, size_t n, uint64_t *written)
{
	size_t i = 0, k;
	int rc = SQLITE_OK;

	while (i < n && rc == SQLITE_OK) {
		k = i + request_run(s, first + i, n - i);
		if (k == i) {
			rc = write_job(s, first + i++);
			continue;
		}
		rc = write_requests(s, first + i, k - i);
		*written += rc == SQLITE_OK ? k - i : 0;
		for (; i < k && rc == SQLITE_OK; i++)
			rc = roll_add(s, &s->jobs[(first + i) % QUEUE_LEN]);
	}
	return rc;
}

static void log_failed(struct tg_store *s, const struct job *j, int rc)
{
	const char *msg = sqlite3_errmsg(s->db);

	if (j->kind == JOB_REQUEST)
		tg_err("store: request %s %s (pid %u, conn %llu) not written: %s", j->req.method,
		       j->req.target, j->req.pid, (unsigned long long)j->req.conn_id,
		       rc == SQLITE_NOMEM ? "out of memory" : msg);
	else if (j->kind == JOB_TARGET)
		tg_err("store: target pid %u not written: %s", j->target.pid, msg);
	else if (j->kind == JOB_REROUTE)
		tg_err("store: routes of pid %u not updated: %s", j->reroute.pid, msg);
	else if (j->kind == JOB_USAGE)
		tg_err("store: resources of request %lld not updated: %s", (long long)j->req_id,
		       msg);
	else if (j->kind == JOB_PROCSTAT)
		tg_err("store: process sample of pid %u not written: %s", j->proc.pid, msg);
	else
		tg_err("store: a write was lost: %s", msg);
}

/* Write jobs [first, first + n) of the ring (they are ours until released).
 * Returns the number of requests written and adds to *failed. */
static uint64_t write_batch(struct tg_store *s, size_t first, size_t n, uint64_t *failed)
{
	uint64_t written = 0;
	size_t i;
	int rc;

	pthread_mutex_lock(&s->db_lock);
	rc = exec_sql(s->db, "BEGIN");
	if (rc == SQLITE_OK)
		rc = write_jobs(s, first, n, &written);
	if (rc == SQLITE_OK)
		rc = roll_flush(s);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		goto out;

	/* Something failed: undo, then replay one job per transaction. */
	tg_warn("store: batch of %zu rows failed (%s); retrying row by row", n,
		sqlite3_errmsg(s->db));
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	roll_reset(s);
	written = 0;
	for (i = 0; i < n; i++) {
		const struct job *j = &s->jobs[(first + i) % QUEUE_LEN];

		rc = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = write_job(s, first + i);
		if (rc == SQLITE_OK)
			rc = roll_flush(s);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
		if (rc == SQLITE_OK) {
			written += j->kind == JOB_REQUEST;
			continue;
		}
		log_failed(s, j, rc);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		roll_reset(s);
		(*failed)++;
	}
out:
	pthread_mutex_unlock(&s->db_lock);
	return written;
}

static void release_jobs(struct tg_store *s, size_t first, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct job *j = &s->jobs[(first + i) % QUEUE_LEN];

		if (j->kind == JOB_TARGET) {
			free(j->target.cmdline);
			j->target.cmdline = NULL;
		} else if (j->kind == JOB_CALL) {
			if (j->call.free_fn)
				j->call.free_fn(j->call.arg);
			j->call.arg = NULL;
		}
	}
}

/* Wait (s->lock held) until there is a batch to write: BATCH_MIN jobs, or
 * BATCH_LINGER_NS after the first one, or at once when a flush or close
 * waits. Returns false when the store stops with nothing left to write. */
static bool wait_for_batch(struct tg_store *s)
{
	struct timespec until;

	while (!s->count && !s->stop) {
		s->writer_waiting = true;
		pthread_cond_wait(&s->not_empty, &s->lock);
	}
	if (!s->count)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += BATCH_LINGER_NS;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (s->count < BATCH_MIN && !s->stop && !s->flushers) {
		s->writer_waiting = true;
		if (pthread_cond_timedwait(&s->not_empty, &s->lock, &until))
			break;
	}
	s->writer_waiting = false;
	return true;
}

static void *writer_main(void *arg)
{
	struct tg_store *s = arg;
	uint64_t written, failed;
	size_t first, n;

	pthread_mutex_lock(&s->lock);
	while (wait_for_batch(s)) {
		first = s->head;
		n = s->count;
		pthread_mutex_unlock(&s->lock);

		failed = 0;
		written = write_batch(s, first, n, &failed);
		release_jobs(s, first, n);

		pthread_mutex_lock(&s->lock);
		s->head = (s->head + n) % QUEUE_LEN;
		s->count -= n;
		s->done_seq += n;
		s->stats.requests_written += written;
		s->stats.rows_failed += failed;
		s->stats.batches++;
		pthread_cond_broadcast(&s->not_full);
		pthread_cond_broadcast(&s->done);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Takes a free slot (blocking while the ring is full) with s->lock held;
 * fills in the run. Returns NULL when there is no run or the store stops. */
static struct job *reserve(struct tg_store *s, enum job_kind kind, int *ret)
{
	struct job *j;

	while (s->count == QUEUE_LEN && !s->stop)
		pthread_cond_wait(&s->not_full, &s->lock);
	if (s->stop) {
		*ret = -ESHUTDOWN;
		return NULL;
	}
	if (!s->run_id) {
		*ret = -EINVAL;
		return NULL;
	}
	j = &s->jobs[(s->head + s->count) % QUEUE_LEN];
	j->kind = kind;
	j->run_id = s->run_id;
	j->mono_to_epoch_ns = s->mono_to_epoch_ns;
	*ret = 0;
	return j;
}

/* Publish the reserved job; wake the writer for the first job (to start
 * its linger clock) and once a batch is full, not for every job. */
static void commit_job(struct tg_store *s)
{
	s->count++;
	s->queued_seq++;
	if (s->writer_waiting && (s->count == 1 || s->count >= BATCH_MIN)) {
		s->writer_waiting = false;
		pthread_cond_signal(&s->not_empty);
	}
}

enum deferred_op { DEFERRED_COUNT, DEFERRED_DROP, DEFERRED_CREATE };

/* Count (in sqlite_master), drop or create (if missing) each of the
 * deferred indexes. db_lock held. Returns how many exist (COUNT) or 0, or
 * -1 when a statement fails (sqlite3_errmsg says why). */
static int each_deferred(struct tg_store *s, enum deferred_op op)
{
	int n = 0;

	for (size_t i = 0; i < sizeof(deferred) / sizeof(deferred[0]); i++) {
		sqlite3_stmt *st = NULL;
		char q[256];
		int rc;

		if (op == DEFERRED_COUNT)
			snprintf(q, sizeof(q),
				 "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = '%s'",
				 deferred[i].name);
		else if (op == DEFERRED_DROP)
			snprintf(q, sizeof(q), "DROP INDEX IF EXISTS %s", deferred[i].name);
		else
			snprintf(q, sizeof(q), "CREATE INDEX IF NOT EXISTS %s ON %s",
				 deferred[i].name, deferred[i].on);
		rc = sqlite3_prepare_v2(s->db, q, -1, &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return -1;
		n += rc == SQLITE_ROW;
	}
	return n;
}

/* Before a run is written into a file whose requests go up to id last:
 * drop the deferred indexes when they are cheap enough to build again at
 * the end (deferred), else keep them and say what that costs.
 * db_lock held. Returns whether end_run's build is a rebuild over the
 * earlier runs' rows: they were dropped now, or are missing already (a
 * tracer killed before its run ended). */
static bool drop_deferred(struct tg_store *s, int64_t last)
{
	int present = each_deferred(s, DEFERRED_COUNT);

	if (!present)
		return true; /* missing already: end_run builds them, over every row */
	if (last > s->reindex_max) {
		tg_warn(
		    "store: this file already holds requests up to id %lld; the new ones update "
		    "its indexes as they are written (about 3x the tracer's CPU per request). A "
		    "new --db file per run costs less",
		    (long long)last);
		return false;
	}
	if (present < 0 || each_deferred(s, DEFERRED_DROP) < 0) {
		tg_warn("store: cannot drop the request indexes while the run is written: %s",
			sqlite3_errmsg(s->db));
		return false;
	}
	return true;
}

void tg_store__set_reindex_max(struct tg_store *s, int64_t rows)
{
	if (s)
		s->reindex_max = rows;
}

int tg_store__begin_run(struct tg_store *s, const struct tg_run_info *info, int64_t *run_id)
{
	sqlite3_stmt *st = NULL;
	int64_t id = 0, next_id = 1;
	int rc, ret = 0;

	if (!s || !info)
		return -EINVAL;
	/* Rows of the previous run keep their run id (it is in each job). */
	pthread_mutex_lock(&s->db_lock);
	rc = sqlite3_prepare_v2(s->db,
				"INSERT INTO runs (started, targets, kernel, version, events,"
				" dropped_events) VALUES (?, ?, ?, ?, 0, 0)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (int64_t)info->started_ns);
		bind_text_or_null(st, 2, info->targets);
		bind_text_or_null(st, 3, info->kernel);
		bind_text_or_null(st, 4, info->version);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		id = sqlite3_last_insert_rowid(s->db);
	}
	if (rc != SQLITE_OK) {
		tg_err("store: cannot record the run: %s", sqlite3_errmsg(s->db));
		ret = -EIO;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* Request ids are handed out by add_request_id, so that samples and
	 * statements can refer to a request before its row is written. */
	if (!ret &&
	    sqlite3_prepare_v2(s->db, "SELECT coalesce(max(id), 0) + 1 FROM requests", -1, &st,
			       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		next_id = sqlite3_column_int64(st, 0);
	else if (!ret)
		ret = -EIO;
	sqlite3_finalize(st);
	if (!ret && next_id > 1)
		s->reindex = drop_deferred(s, next_id - 1);
	pthread_mutex_unlock(&s->db_lock);
	if (ret)
		return ret;

	pthread_mutex_lock(&s->lock);
	if (next_id > s->next_request_id)
		s->next_request_id = next_id;
	s->run_id = id;
	s->mono_to_epoch_ns = info->mono_to_epoch_ns;
	pthread_mutex_unlock(&s->lock);
	if (run_id)
		*run_id = id;
	return 0;
}

int tg_store__add_target(struct tg_store *s, uint32_t pid, const char *cmdline, uint64_t seen_ns)
{
	struct job *j;
	char *copy = NULL;
	int ret;

	if (!s)
		return -EINVAL;
	if (cmdline && !(copy = strdup(cmdline)))
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	j = reserve(s, JOB_TARGET, &ret);
	if (j) {
		j->target.pid = pid;
		j->target.seen_ns = seen_ns;
		j->target.cmdline = copy;
		copy = NULL;
		commit_job(s);
	}
	pthread_mutex_unlock(&s->lock);
	free(copy);
	return ret;
}

/* dst = src up to its NUL (at most cap - 1 bytes), NUL-terminated; *len
 * gets the length. */
static void copy_str(char *dst, const char *src, size_t cap, uint16_t *len)
{
	size_t n = tg_strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
	*len = (uint16_t)n;
}

/* The usage figures and the nspans spans in use (not the whole span array). */
static void copy_usage(struct tg_usage *dst, const struct tg_usage *src)
{
	size_t n = src->nspans < TG_SPANS_MAX ? src->nspans : TG_SPANS_MAX;

	memcpy(dst, src, offsetof(struct tg_usage, spans) + n * sizeof(src->spans[0]));
}

/*
 * Copy into job j what the writer reads of a request (request_column,
 * roll_add, log_failed): the fields before set_keys, the usage with its
 * spans in use, the strings up to their NUL (their lengths into j->len). set_keys/since/until, the
 * unused spans and the strings' tails keep what the slot held before; no one
 * reads them. A whole struct is ~2.3 KiB, of which a hello request uses a
 * few hundred bytes: copying it all made the ring (16k slots, 38 MiB)
 * stream through memory instead of staying in the cache.
 */
static void copy_request(struct job *j, const struct tg_request *src)
{
	struct tg_request *dst = &j->req;

	memcpy(dst, src, offsetof(struct tg_request, set_keys));
	dst->nset_keys = 0;
	dst->resp_tid = src->resp_tid;
	dst->resp_oncpu_ns = src->resp_oncpu_ns;
	copy_usage(&dst->usage, &src->usage);
	copy_str(dst->method, src->method, sizeof(dst->method), &j->len[0]);
	copy_str(dst->target, src->target, sizeof(dst->target), &j->len[1]);
	copy_str(dst->route, src->route, sizeof(dst->route), &j->len[2]);
	copy_str(dst->peer, src->peer, sizeof(dst->peer), &j->len[3]);
}

int tg_store__add_request(struct tg_store *s, const struct tg_request *r)
{
	return tg_store__add_request_id(s, r, NULL);
}

int tg_store__add_request_id(struct tg_store *s, const struct tg_request *r, int64_t *id)
{
	struct job *j;
	int ret;

	if (!s || !r)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	j = reserve(s, JOB_REQUEST, &ret);
	if (j) {
		j->req_id = s->next_request_id++;
		if (id)
			*id = j->req_id;
		copy_request(j, r);
		commit_job(s);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int tg_store__update_usage(struct tg_store *s, int64_t request_id, const struct tg_usage *u)
{
	struct job *j;
	int ret;

	if (!s || !u || request_id <= 0)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	j = reserve(s, JOB_USAGE, &ret);
	if (j) {
		j->req_id = request_id;
		copy_usage(&j->usage, u);
		commit_job(s);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int tg_store__add_process_stat(struct tg_store *s, uint32_t pid, uint64_t mono_ns,
			       uint64_t rss_bytes, uint64_t cpu_ns, uint32_t threads)
{
	struct job *j;
	int ret;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	j = reserve(s, JOB_PROCSTAT, &ret);
	if (j) {
		j->proc.pid = pid;
		j->proc.threads = threads;
		j->proc.mono_ns = mono_ns;
		j->proc.rss_bytes = rss_bytes;
		j->proc.cpu_ns = cpu_ns;
		commit_job(s);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

size_t tg_timeline__pack(const struct tg_usage *u, uint8_t *out, size_t cap)
{
	size_t n, i;

	if (!u || !out)
		return 0;
	n = u->nspans < TG_SPANS_MAX ? u->nspans : TG_SPANS_MAX;
	if (n > cap / TG_TIMELINE_REC)
		n = cap / TG_TIMELINE_REC;
	for (i = 0; i < n; i++) {
		const struct tg_span *sp = &u->spans[i];
		uint8_t *p = out + i * TG_TIMELINE_REC;

		put_le32(p, sp->start_us);
		put_le32(p + 4, sp->dur_us);
		put_le32(p + 8, sp->cpu_us);
		put_le32(p + 12, sp->tid);
		p[16] = sp->kind;
		p[17] = p[18] = p[19] = 0;
	}
	return n * TG_TIMELINE_REC;
}

size_t tg_timeline__unpack(const void *blob, size_t len, struct tg_span *out, size_t max)
{
	const uint8_t *b = blob;
	size_t n = len / TG_TIMELINE_REC, i;

	if (!blob || !out)
		return 0;
	if (n > max)
		n = max;
	for (i = 0; i < n; i++) {
		const uint8_t *p = b + i * TG_TIMELINE_REC;

		memset(&out[i], 0, sizeof(out[i]));
		out[i].start_us = get_le32(p);
		out[i].dur_us = get_le32(p + 4);
		out[i].cpu_us = get_le32(p + 8);
		out[i].tid = get_le32(p + 12);
		out[i].kind = p[16];
	}
	return n;
}

int tg_store__call(struct tg_store *s, tg_store_call_fn fn, void *arg, void (*free_fn)(void *arg))
{
	struct job *j;
	int ret;

	if (!s || !fn) {
		if (free_fn)
			free_fn(arg);
		return -EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	j = reserve(s, JOB_CALL, &ret);
	if (j) {
		j->call.fn = fn;
		j->call.arg = arg;
		j->call.free_fn = free_fn;
		commit_job(s);
	}
	pthread_mutex_unlock(&s->lock);
	if (!j && free_fn)
		free_fn(arg);
	return ret;
}

int tg_store__reroute(struct tg_store *s, uint32_t pid, const struct tg_routes *routes)
{
	struct job *j;
	int ret;

	if (!s || !routes)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	j = reserve(s, JOB_REROUTE, &ret);
	if (j) {
		j->reroute.pid = pid;
		j->reroute.routes = routes;
		commit_job(s);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int tg_store__flush(struct tg_store *s)
{
	uint64_t target;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	target = s->queued_seq;
	s->flushers++; /* the writer stops lingering */
	pthread_cond_signal(&s->not_empty);
	while (s->done_seq < target && s->thread_started)
		pthread_cond_wait(&s->done, &s->lock);
	s->flushers--;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int tg_store__end_run(struct tg_store *s, uint64_t ended_ns, uint64_t events, uint64_t dropped)
{
	sqlite3_stmt *st = NULL;
	int64_t id;
	int rc, ret;

	if (!s)
		return -EINVAL;
	ret = tg_store__flush(s);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	id = s->run_id;
	pthread_mutex_unlock(&s->lock);
	if (!id)
		return -EINVAL;

	pthread_mutex_lock(&s->db_lock);
	rc = sqlite3_prepare_v2(
	    s->db, "UPDATE runs SET ended = ?, events = ?, dropped_events = ? WHERE id = ?", -1,
	    &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (int64_t)ended_ns);
		sqlite3_bind_int64(st, 2, (int64_t)events);
		sqlite3_bind_int64(st, 3, (int64_t)dropped);
		sqlite3_bind_int64(st, 4, id);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	if (rc == SQLITE_OK) {
		struct timespec t0, t1;
		double secs;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		rc = each_deferred(s, DEFERRED_CREATE) < 0 ? SQLITE_ERROR : SQLITE_OK;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (s->reindex && secs >= 1.0)
			tg_info("store: indexed the file's requests in %.1f s", secs);
		s->reindex = false;
	}
	if (rc != SQLITE_OK) {
		tg_err("store: cannot close run %lld: %s", (long long)id, sqlite3_errmsg(s->db));
		ret = -EIO;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_lock);
	return ret;
}

void tg_store__stats(struct tg_store *s, struct tg_store_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	pthread_mutex_unlock(&s->lock);
}

void tg_store__close(struct tg_store *s)
{
	int i;

	if (!s)
		return;
	if (s->thread_started) {
		pthread_mutex_lock(&s->lock);
		s->stop = true; /* the writer drains the queue before it exits */
		pthread_cond_broadcast(&s->not_empty);
		pthread_cond_broadcast(&s->not_full);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
	}
	tg_walckpt__stop(s->ckpt); /* before the last connection closes */
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	/* ... and those other writers' calls kept prepared (query_store.c). */
	if (s->db) {
		sqlite3_stmt *st;

		while ((st = sqlite3_next_stmt(s->db, NULL)))
			sqlite3_finalize(st);
	}
	/* Closing the last connection checkpoints the WAL into the main file. */
	sqlite3_close(s->db);
	if (s->jobs) {
		pthread_mutex_destroy(&s->db_lock);
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->not_empty);
		pthread_cond_destroy(&s->not_full);
		pthread_cond_destroy(&s->done);
	}
	roll_free(&s->roll);
	free(s->jobs);
	free(s);
}
