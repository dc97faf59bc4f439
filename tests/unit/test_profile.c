/* SPDX-License-Identifier: MIT */
/* Unit tests of the profile (user/profile.c: TG_EV_PYSYM symbols, attribution
 * of samples to requests) and its store (user/profile_store.c: stack trie
 * interning, id caches after a rollback, folding back into flame graphs). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "evgen.h"
#include "flamegraph.h"
#include "profile.h"
#include "profile_store.h"
#include "store.h"
#include "timeglass/events.h"

#define PID 4242
#define KEY_A 0x7f0000001000ULL
#define KEY_B 0x7f0000002000ULL

struct fx {
	char dir[64];
	char path[96];
	struct tg_store *store;
	int64_t run_id;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct tg_run_info info = {.started_ns = 1, .targets = "test"};
	char err[256];

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tg_test_profile.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	f->store = tg_store__open(f->path, err, sizeof(err));
	if (!f->store || tg_store__begin_run(f->store, &info, &f->run_id))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char p[128];

	tg_store__close(f->store);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static int64_t q_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void exec_sql(const char *path, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* The folded text of fg. Caller frees. */
static char *folded(struct tg_fg *fg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	assert_non_null(m);
	assert_int_equal(tg_fg__write_folded(fg, m), 0);
	fclose(m);
	return buf;
}

static const struct tg_pframe F_MAIN = {"main", "/app/m.py", 1};
static const struct tg_pframe F_HANDLER = {"handler", "/app/m.py", 10};
static const struct tg_pframe F_ALPHA = {"alpha", "/app/m.py", 20};
static const struct tg_pframe F_BETA = {"beta", "/app/m.py", 30};

static void add(struct tg_pstore *ps, int64_t req, const struct tg_pframe *const *fr, size_t n)
{
	struct tg_psample s = {
	    .ts_ns = 1000, .pid = PID, .tid = PID, .request_id = req, .nframes = n, .frames = fr};

	assert_int_equal(tg_pstore__add(ps, &s), 0);
}

static int64_t add_request(struct fx *f, const char *method, const char *route, uint64_t key,
			   uint64_t start, uint64_t end, struct tg_request *out)
{
	struct tg_request r = {
	    .pid = PID, .start_ns = start, .end_ns = end, .status = 200, .task_key = key};
	int64_t id = 0;

	snprintf(r.method, sizeof(r.method), "%s", method);
	snprintf(r.route, sizeof(r.route), "%s", route);
	snprintf(r.target, sizeof(r.target), "%s", route);
	assert_int_equal(tg_store__add_request_id(f->store, &r, &id), 0);
	assert_true(id > 0);
	if (out)
		*out = r;
	return id;
}

/* Shared prefixes are one trie path; the same stack again adds no row. */
static void test_intern_trie(void **state)
{
	struct fx *f = *state;
	struct tg_pstore *ps = tg_pstore__new(f->store);
	const struct tg_pframe *a[] = {&F_MAIN, &F_HANDLER, &F_ALPHA};
	const struct tg_pframe *b[] = {&F_MAIN, &F_HANDLER, &F_BETA};
	struct tg_pstore_stats st;
	char *names[8];
	int n, i;

	assert_non_null(ps);
	add(ps, 0, a, 3);
	add(ps, 0, a, 3);
	add(ps, 0, b, 3);
	add(ps, 0, NULL, 0); /* no Python stack */
	assert_int_equal(tg_pstore__finish(ps), 0);
	assert_int_equal(tg_store__flush(f->store), 0);
	tg_pstore__stats(ps, &st);
	assert_int_equal(st.samples, 4);
	assert_int_equal(st.frames_inserted, 4);
	assert_int_equal(st.stacks_inserted, 4);
	assert_int_equal(q_int(f->path, "SELECT count(*) FROM frames"), 4);
	assert_int_equal(q_int(f->path, "SELECT count(*) FROM stacks"), 4);
	assert_int_equal(q_int(f->path, "SELECT count(*) FROM stacks WHERE parent = 0"), 1);
	assert_int_equal(q_int(f->path, "SELECT count(DISTINCT stack_id) FROM samples"), 3);
	assert_int_equal(q_int(f->path, "SELECT count(*) FROM samples WHERE stack_id = 0"), 1);
	assert_int_equal(q_int(f->path, "SELECT count(*) FROM samples WHERE request_id IS NULL"),
			 4);
	{
		sqlite3 *db;
		int64_t sid = q_int(f->path, "SELECT stack_id FROM samples WHERE rowid = 3");

		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		n = tg_pstore__stack_names(db, sid, names, 8);
		assert_int_equal(n, 3);
		assert_string_equal(names[0], "main (/app/m.py:1)");
		assert_string_equal(names[2], "beta (/app/m.py:30)");
		for (i = 0; i < n; i++)
			free(names[i]);
		assert_int_equal(tg_pstore__stack_names(db, sid, names, 2), -E2BIG);
		assert_int_equal(tg_pstore__stack_names(db, 999999, names, 8), -ENOENT);
		sqlite3_close(db);
	}
	tg_store__close(f->store);
	f->store = NULL;
	tg_pstore__free(ps);
}

/* Rows our id caches point to vanish (as after a rolled back batch): the
 * next job notices and re-interns instead of writing dangling ids. */
static void test_cache_reset_after_rollback(void **state)
{
	struct fx *f = *state;
	struct tg_pstore *ps = tg_pstore__new(f->store);
	const struct tg_pframe *a[] = {&F_MAIN, &F_ALPHA};
	struct tg_pstore_stats st;

	add(ps, 0, a, 2);
	assert_int_equal(tg_store__flush(f->store), 0);
	exec_sql(f->path, "DELETE FROM stacks; DELETE FROM frames; DELETE FROM samples");
	add(ps, 0, a, 2);
	assert_int_equal(tg_pstore__finish(ps), 0);
	assert_int_equal(tg_store__flush(f->store), 0);
	tg_pstore__stats(ps, &st);
	assert_int_equal(st.cache_resets, 1);
	assert_int_equal(q_int(f->path, "SELECT count(*) FROM stacks"), 2);
	assert_int_equal(q_int(f->path, "SELECT count(*) FROM samples s JOIN stacks t"
					" ON t.id = s.stack_id"),
			 1);
	tg_store__close(f->store);
	f->store = NULL;
	tg_pstore__free(ps);
}

static struct tg_ev_sample *sample(uint64_t ts, uint64_t key, const uint64_t *codes, size_t n,
				   size_t *size)
{
	struct tg_ev_sample *e;
	size_t i;

	*size = sizeof(*e) + n * sizeof(e->frames[0]);
	e = calloc(1, *size);
	e->hdr.type = TG_EV_SAMPLE;
	e->hdr.size = (uint16_t)*size;
	e->hdr.pid = PID;
	e->hdr.tid = PID + 1;
	e->hdr.ts_ns = ts;
	e->task_ctx = key;
	e->flags = TG_SAMPLE_GIL;
	e->nframes = (uint16_t)n;
	for (i = 0; i < n; i++) { /* innermost first */
		e->frames[i].code = codes[i];
		e->frames[i].tag = 7;
		e->frames[i].lasti = 3;
	}
	return e;
}

static void feed(struct tg_profile *p, void *ev, size_t size, int want)
{
	assert_int_equal(tg_profile__event(p, ev, size), want);
	free(ev);
}

/* Evaluate the event (which sets size) before passing size. */
#define FEED(expr, want)                                                                           \
	do {                                                                                       \
		void *ev_ = (expr);                                                                \
		feed(p, ev_, size, want);                                                          \
	} while (0)

static void pysym(struct tg_profile *p, const char *text, int want)
{
	size_t size;

	void *ev = evgen_text(TG_EV_PYSYM, PID, text, &size);

	feed(p, ev, size, want);
}

/* End p, write what it queued, and read its counters into st. */
static void finish_and_count(struct tg_profile *p, struct fx *f, struct tg_profile_stats *st)
{
	tg_profile__finish(p);
	assert_int_equal(tg_store__flush(f->store), 0);
	tg_profile__stats(p, st);
}

/* Replay path: symbols from TG_EV_PYSYM, samples held until their request
 * (same task key, inside its window) claims them; per-endpoint and
 * per-request graphs read back right. */
static void test_attribute_and_fold(void **state)
{
	struct fx *f = *state;
	struct tg_profile_cfg cfg = {.store = f->store};
	const uint64_t alpha[] = {0xa0, 0xc0}, beta[] = {0xb0, 0xc0}, gone[] = {0xdead};
	struct tg_profile *p = tg_profile__new(&cfg);
	struct tg_profile_stats st;
	struct tg_request ra, rb;
	int64_t ida, idb;
	struct tg_fg *fg;
	uint64_t total;
	sqlite3 *db;
	size_t size;
	char *txt;

	assert_non_null(p);
	/* Malformed symbol events first. */
	pysym(p, "4242 0xa0 7", -EBADMSG);
	pysym(p, "4242 0xa0 7 3\talpha\t/app/m.py\tx", -EBADMSG);
	pysym(p, "hz 0", -EBADMSG);
	pysym(p, "hz 999", 0);
	pysym(p, "4242 0xa0 7 3\talpha\t/app/m.py\t20", 0);
	pysym(p, "4242 0xb0 7 3\tbeta\t/app/m.py\t30", 0);
	pysym(p, "4242 0xc0 7 3\tA.handler\t/app/m.py\t10", 0);
	{ /* a sample whose size does not match its frame count */
		struct tg_ev_sample *e = sample(1, KEY_A, alpha, 2, &size);

		e->nframes = 9;
		feed(p, e, size, -EBADMSG);
	}
	/* Request A: 3 alpha + 1 beta inside its window, one alpha after it
	 * (another request's time), one on the loop's own key 0. */
	FEED(sample(100, KEY_A, alpha, 2, &size), 0);
	FEED(sample(110, KEY_A, alpha, 2, &size), 0);
	FEED(sample(120, KEY_A, beta, 2, &size), 0);
	FEED(sample(130, KEY_A, alpha, 2, &size), 0);
	FEED(sample(130, 0, beta, 2, &size), 0);
	FEED(sample(140, KEY_B, gone, 1, &size), 0); /* no symbol: [unknown] */
	ida = add_request(f, "GET", "/a", KEY_A, 90, 135, &ra);
	tg_profile__request(p, &ra, ida);
	FEED(sample(132, KEY_A, alpha, 2, &size), 0); /* late, inside: direct */
	FEED(sample(500, KEY_A, alpha, 2, &size), 0); /* after: held */
	idb = add_request(f, "POST", "/b", KEY_B, 139, 150, &rb);
	tg_profile__request(p, &rb, idb);
	finish_and_count(p, f, &st);
	assert_int_equal(st.malformed, 4);
	assert_int_equal(st.samples, 8);
	assert_int_equal(st.attributed, 6);
	assert_int_equal(st.unknown, 1);

	assert_int_equal(q_int(f->path, "SELECT sample_hz FROM runs"), 999);
	assert_int_equal(q_int(f->path, "SELECT count(*) FROM samples WHERE request_id IS NULL"),
			 2);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);

	fg = tg_fg__new();
	assert_int_equal(tg_pstore__load_endpoint(db, f->run_id, "GET", "/a", fg, &total), 0);
	assert_int_equal(total, 5);
	txt = folded(fg);
	assert_string_equal(txt, "A.handler (/app/m.py:10);alpha (/app/m.py:20) 4\n"
				 "A.handler (/app/m.py:10);beta (/app/m.py:30) 1\n");
	free(txt);
	tg_fg__free(fg);

	fg = tg_fg__new(); /* any method of /a; a method it does not have */
	assert_int_equal(tg_pstore__load_endpoint(db, f->run_id, NULL, "/a", fg, &total), 0);
	assert_int_equal(total, 5);
	assert_int_equal(tg_pstore__load_endpoint(db, f->run_id, "POST", "/a", fg, &total),
			 -ENOENT);
	assert_int_equal(tg_pstore__load_endpoint(db, f->run_id, NULL, "/nope", fg, &total),
			 -ENOENT);
	tg_fg__free(fg);

	fg = tg_fg__new();
	assert_int_equal(tg_pstore__load_request(db, idb, fg, &total), 0);
	assert_int_equal(total, 1);
	txt = folded(fg);
	assert_string_equal(txt, "[unknown] (?:0) 1\n");
	free(txt);
	assert_int_equal(tg_pstore__load_request(db, 99999, fg, &total), -ENOENT);
	tg_fg__free(fg);

	fg = tg_fg__new();
	assert_int_equal(tg_pstore__load_run(db, f->run_id, fg, &total), 0);
	assert_int_equal(total, 8);
	tg_fg__free(fg);
	sqlite3_close(db);

	tg_store__close(f->store);
	f->store = NULL;
	tg_profile__free(p);
}

static struct tg_ev_sample *task_sample(uint64_t ts, uint64_t coro, uint64_t ctx, size_t *size)
{
	const uint64_t codes[] = {0xa0};
	struct tg_ev_sample *e = sample(ts, ctx, codes, 1, size);

	e->task_coro = coro;
	return e;
}

static int64_t count_for(struct fx *f, int64_t id)
{
	char sql[96];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM samples WHERE request_id = %lld",
		 (long long)id);
	return q_int(f->path, sql);
}

/* Replay of "task" lines (uvloop): samples go to the request on the peer
 * port their task was read to serve, whatever the response's task key;
 * samples before FROM, and after a line with port 0, go by task key. */
static void test_task_lines_attribute_by_peer(void **state)
{
	struct fx *f = *state;
	struct tg_profile_cfg cfg = {.store = f->store};
	struct tg_profile *p = tg_profile__new(&cfg);
	const uint64_t loop = 0x7f00000f0000ULL, coro = 0x7f0000100000ULL;
	struct tg_profile_stats st;
	struct tg_request ra, rb, rc;
	int64_t ida, idb, idc;
	size_t size;

	assert_non_null(p);
	pysym(p, "task 4242 0x10 0x20", -EBADMSG);
	pysym(p, "task 4242 0x10 0x20 70000 0", -EBADMSG);
	pysym(p, "task 0 0x10 0x20 80 0", -EBADMSG);
	pysym(p, "task 4242 0x10 0x20 80 0 junk", -EBADMSG);
	pysym(p, "task 4242 0x7f0000100000 0xc1 5001 100", 0);
	pysym(p, "task 4242 0x7f0000200000 0xc2 5002 0", 0);
	FEED(task_sample(90, coro, 0xc1, &size), 0);		   /* before FROM: by key 0xc1 */
	FEED(task_sample(150, coro, 0xc1, &size), 0);		   /* port 5001 */
	FEED(task_sample(160, 0x7f0000200000ULL, 0xc2, &size), 0); /* port 5002 */
	FEED(task_sample(170, coro, 0xc9, &size), 0);		   /* another task (ctx): by key */
	ida = add_request(f, "GET", "/a", loop, 80, 200, &ra);
	snprintf(ra.peer, sizeof(ra.peer), "127.0.0.1:5001");
	tg_profile__request(p, &ra, ida);
	idb = add_request(f, "GET", "/b", loop, 100, 200, &rb);
	snprintf(rb.peer, sizeof(rb.peer), "[::1]:5002");
	tg_profile__request(p, &rb, idb);
	/* The coroutine now serves nothing (port 0): by key, which a request
	 * with that key claims. */
	pysym(p, "task 4242 0x7f0000100000 0xc1 0 0", 0);
	FEED(task_sample(300, coro, 0xc1, &size), 0);
	idc = add_request(f, "GET", "/c", 0xc1, 250, 350, &rc);
	snprintf(rc.peer, sizeof(rc.peer), "127.0.0.1:5001");
	tg_profile__request(p, &rc, idc);
	finish_and_count(p, f, &st);
	assert_int_equal(st.malformed, 4);
	assert_int_equal(st.samples, 5);
	assert_int_equal(st.attributed, 3);
	assert_int_equal(count_for(f, ida), 1);
	assert_int_equal(count_for(f, idb), 1);
	assert_int_equal(count_for(f, idc), 1);
	assert_int_equal(q_int(f->path, "SELECT count(*) FROM samples WHERE request_id IS NULL"),
			 2);
	tg_store__close(f->store);
	f->store = NULL;
	tg_profile__free(p);
}

struct known {
	bool answer;
	int calls;
	uint32_t pid;
};

static bool contexts_known(void *ctx, uint32_t pid)
{
	struct known *k = ctx;

	k->calls++;
	k->pid = pid;
	return k->answer;
}

/* Live, a process whose requests name their Contexts (per-task accounting
 * on) has its samples attributed by Context without the task read; one
 * that does not is read (here the test process, which runs no CPython: the
 * read fails and the sample stays with its Context key too). */
static void check_contexts_known(struct fx *f, bool answer)
{
	struct known k = {.answer = answer};
	struct tg_profile_cfg cfg = {
	    .store = f->store, .live = true, .contexts_known = contexts_known, .contexts_ctx = &k};
	struct tg_profile *p = tg_profile__new(&cfg);
	const uint32_t me = (uint32_t)getpid();
	struct tg_profile_stats st;
	struct tg_ev_sample *e;
	struct tg_request ra;
	int64_t ida;
	size_t size;

	assert_non_null(p);
	for (uint64_t ts = 100; ts < 130; ts += 10) {
		e = task_sample(ts, 0x7f0000100000ULL, KEY_A, &size);
		e->hdr.pid = me;
		FEED(e, 0);
	}
	e = task_sample(125, 0, KEY_A, &size); /* no task: not asked */
	e->hdr.pid = me;
	FEED(e, 0);
	ida = add_request(f, "GET", "/a", KEY_A, 90, 200, &ra);
	ra.pid = me;
	tg_profile__request(p, &ra, ida);
	finish_and_count(p, f, &st);
	assert_int_equal(st.samples, 4);
	assert_int_equal(st.attributed, 4);
	assert_int_equal(count_for(f, ida), 4);
	assert_int_equal(st.tasks, 0);
	assert_int_equal(k.calls, 3);
	assert_int_equal(k.pid, me);
	assert_int_equal(st.by_context, answer ? 3 : 0);
	tg_profile__free(p);
}

static void test_contexts_known_skips_task_reads(void **state)
{
	struct fx *f = *state;

	check_contexts_known(f, true);
	check_contexts_known(f, false);
	tg_store__close(f->store);
	f->store = NULL;
}

/* Freed without finish (an error path): held samples are dropped, no leak. */
static void test_free_unfinished(void **state)
{
	struct fx *f = *state;
	struct tg_profile_cfg cfg = {.store = f->store};
	const uint64_t c[] = {0x10};
	struct tg_profile *p = tg_profile__new(&cfg);
	size_t size;

	FEED(sample(100, KEY_A, c, 1, &size), 0);
	tg_profile__finish(p); /* the writer's statements must be released before close */
	tg_store__close(f->store);
	f->store = NULL;
	tg_profile__free(p);
	tg_profile__free(NULL);
	tg_pstore__free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_intern_trie, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cache_reset_after_rollback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_attribute_and_fold, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_task_lines_attribute_by_peer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_contexts_known_skips_task_reads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_unfinished, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
