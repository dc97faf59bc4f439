/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL protocol v3 reassembly of one client connection (pgwire.h).
 *
 * Design: each direction has a framer that turns segments (head bytes, an
 * unknown middle, tail bytes) into messages. Headers must lie in known bytes;
 * bodies are collected up to a per-type cap (statement texts, names, tags,
 * errors) and otherwise only counted, so a DataRow or CopyData of any size
 * costs nothing and may fall into a gap. When a header falls into unknown
 * bytes or looks invalid, the framer is lost: the frontend retries at the next
 * segment start (the app writes whole messages), the backend looks for a
 * ReadyForQuery ('Z' 0 0 0 5 [IET]) anywhere in known bytes, or retries at a
 * segment start when nothing was pending.
 *
 * Frontend messages push operations onto a queue in the order the server
 * answers them: EXEC (Execute), SIMPLE (Query), PREPARE (a batch with Parse
 * but no Execute: reported only if it fails), SYNC, STARTUP. Backend messages
 * complete the first operation not yet done; ReadyForQuery pops and emits
 * everything up to the first SYNC/SIMPLE/STARTUP. Statement texts are
 * refcounted strings shared by the prepared-statement map, the portal map and
 * queued operations.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstr.h"
#include "log.h"
#include "pgwire.h"
#include "timeglass/events.h"

#define BUF_MAX (TG_PG_TEXT_MAX + 2 * TG_PG_NAME_LEN + 64)
#define NM_BUCKETS 64
#define MAX_MSG (1u << 30)
#define PROTO_V3 196608u
#define CODE_CANCEL 80877102u
#define CODE_SSL 80877103u
#define CODE_GSS 80877104u

struct pg_text {
	uint32_t refs;
	uint32_t flags; /* TG_PG_TRUNCATED, TG_PG_UNKNOWN_PREPARED */
	size_t len;
	char s[];
};

struct nm_entry {
	struct nm_entry *next;
	struct pg_text *text;
	char name[TG_PG_NAME_LEN];
	char stmt[TG_PG_NAME_LEN]; /* portals: the statement they were bound to */
};

struct namemap {
	struct nm_entry *b[NM_BUCKETS];
	uint32_t n, cap;
};

enum op_kind { OP_EXEC, OP_SIMPLE, OP_SYNC, OP_PREPARE, OP_STARTUP };

struct pg_op {
	uint8_t kind;
	bool done;
	struct pg_text *text;
	uint64_t start_ns, first_row_ns, end_ns, data_rows, bytes_in, copy_bytes;
	int64_t rows;
	uint32_t tid, flags, ncomplete;
	uint64_t task_key;
	char command[TG_PG_COMMAND_LEN];
	char sqlstate[6];
	char stmt_name[TG_PG_NAME_LEN];
	char error[TG_PG_ERROR_LEN]; /* last: push_op clears only its first byte */
};

enum fstate { FS_STARTUP, FS_HDR, FS_BODY, FS_LOST };

struct framer {
	enum fstate st;
	bool backend;
	bool try_start; /* lost: retry framing at the next segment start */
	uint8_t hdr[8];
	unsigned hdr_len;
	uint8_t type;  /* 0 for startup-type messages */
	uint32_t code; /* startup-type messages */
	uint32_t body_len, body_done;
	size_t cap, got;
	bool gapped;
	uint64_t ts;
	uint32_t tid;
	uint64_t task_key;
	uint8_t *buf; /* BUF_MAX bytes at the end of the connection */
};

struct tg_pg_conn {
	struct tg_pg_cfg cfg;
	tg_pg_emit_fn emit;
	void *ctx;
	struct framer fe, be;
	struct pg_op *ops;
	uint32_t head, n, cap;
	struct namemap stmts, portals;
	bool abandoned, expect_enc, have_batch, batch_parse, batch_exec;
	bool tls;	 /* SSLRequest answered 'S': only tg_pg__feed_tls feeds it */
	bool tls_plain;	 /* ... and some plaintext came */
	uint64_t tls_ts; /* the 'S' */
	uint32_t tls_tid;
	uint64_t tls_task_key;
	struct pg_text *batch_text;
	uint64_t batch_ts, seg_ts;
	uint32_t batch_tid, seg_tid;
	uint64_t batch_task_key, seg_task_key;
	char db_user[TG_PG_NAME_LEN], db_name[TG_PG_NAME_LEN];
	/* Scratch space, never zeroed (~25 KB: a connection per request
	 * would spend more on clearing it than on parsing): */
	struct tg_pg_stmt rec; /* filled field by field by emit_op */
	uint8_t fe_buf[BUF_MAX], be_buf[BUF_MAX];
};

/* ---- refcounted texts ---- */

static struct pg_text *text_new(const char *s, size_t len, uint32_t flags)
{
	struct pg_text *t;

	if (len >= TG_PG_TEXT_MAX) {
		len = TG_PG_TEXT_MAX - 1;
		flags |= TG_PG_TRUNCATED;
	}
	t = malloc(sizeof(*t) + len + 1);
	if (!t)
		return NULL;
	t->refs = 1;
	t->flags = flags;
	t->len = len;
	memcpy(t->s, s, len);
	t->s[len] = '\0';
	return t;
}

static struct pg_text *text_ref(struct pg_text *t)
{
	if (t)
		t->refs++;
	return t;
}

static void text_unref(struct pg_text *t)
{
	if (t && --t->refs == 0)
		free(t);
}

static struct pg_text *text_unknown(const char *what, const char *name)
{
	char s[160];
	int n = snprintf(s, sizeof(s), "unknown %s %s", what, name[0] ? name : "(unnamed)");

	return text_new(s, n > 0 ? (size_t)n : 0, TG_PG_UNKNOWN_PREPARED);
}

/* ---- name maps ---- */

static unsigned nm_hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h % NM_BUCKETS;
}

static struct nm_entry *nm_get(struct namemap *m, const char *name)
{
	struct nm_entry *e;

	for (e = m->b[nm_hash(name)]; e; e = e->next)
		if (!strcmp(e->name, name))
			return e;
	return NULL;
}

static void nm_del(struct namemap *m, const char *name)
{
	struct nm_entry **pp, *e;

	for (pp = &m->b[nm_hash(name)]; (e = *pp); pp = &e->next) {
		if (!strcmp(e->name, name)) {
			*pp = e->next;
			text_unref(e->text);
			free(e);
			m->n--;
			return;
		}
	}
}

static void nm_evict_one(struct namemap *m, unsigned start)
{
	for (unsigned i = 0; i < NM_BUCKETS; i++) {
		struct nm_entry *e = m->b[(start + i) % NM_BUCKETS];

		if (e) {
			nm_del(m, e->name);
			return;
		}
	}
}

/* Copy the string src into dst of cap bytes, truncated, NUL-terminated
 * (snprintf's "%s" without its cost: a Bind runs this for every statement). */
static void copy_cstr(char *dst, size_t cap, const char *src)
{
	size_t i = 0;

	/* Byte by byte: these strings are short or empty, where two library
	 * calls cost more than the loop. */
	while (i + 1 < cap && src[i]) {
		dst[i] = src[i];
		i++;
	}
	dst[i] = '\0';
}

/* Append the string src to dst (of cap bytes, NUL-terminated), truncated. */
static void append_cstr(char *dst, size_t cap, const char *src)
{
	size_t len = tg_strnlen(dst, cap - 1);

	copy_cstr(dst + len, cap - len, src);
}

/* Takes a new reference on text. */
static void nm_put(struct namemap *m, const char *name, struct pg_text *text, const char *stmt)
{
	struct nm_entry *e = nm_get(m, name);
	unsigned h;

	if (!e) {
		if (m->n >= m->cap)
			nm_evict_one(m, nm_hash(name) + 1);
		e = calloc(1, sizeof(*e));
		if (!e)
			return;
		copy_cstr(e->name, sizeof(e->name), name);
		h = nm_hash(e->name);
		e->next = m->b[h];
		m->b[h] = e;
		m->n++;
	}
	if (e->text != text) {
		text_unref(e->text);
		e->text = text_ref(text);
	}
	copy_cstr(e->stmt, sizeof(e->stmt), stmt ? stmt : "");
}

static void nm_clear(struct namemap *m)
{
	for (unsigned i = 0; i < NM_BUCKETS && m->n; i++) {
		while (m->b[i]) {
			struct nm_entry *e = m->b[i];

			m->b[i] = e->next;
			text_unref(e->text);
			free(e);
			m->n--;
		}
	}
}

/* ---- operation queue ---- */

static void copy_str(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= cap)
		len = cap - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static void emit_op(struct tg_pg_conn *c, struct pg_op *op, char txn)
{
	struct tg_pg_stmt *r = &c->rec;
	bool failed = op->flags & TG_PG_ERROR;
	size_t len = 0;

	if ((op->kind == OP_PREPARE || op->kind == OP_STARTUP) && !failed)
		return;
	if (op->kind == OP_SYNC)
		return;
	/* Field by field, the error string up to its NUL: the record is
	 * ~8.6 KB and clearing it cost more than parsing the statement. */
	r->start_ns = op->start_ns;
	r->first_row_ns = op->first_row_ns;
	r->end_ns = op->end_ns;
	r->tid = op->tid;
	r->task_key = op->task_key;
	r->flags = op->flags;
	r->rows = op->rows;
	r->data_rows = op->data_rows;
	r->bytes_in = op->bytes_in;
	r->copy_bytes = op->copy_bytes;
	r->txn_status = txn;
	memcpy(r->command, op->command, sizeof(r->command));
	memcpy(r->sqlstate, op->sqlstate, sizeof(r->sqlstate));
	memcpy(r->stmt_name, op->stmt_name, sizeof(r->stmt_name));
	memcpy(r->db_user, c->db_user, sizeof(r->db_user));
	memcpy(r->db_name, c->db_name, sizeof(r->db_name));
	copy_cstr(r->error, sizeof(r->error), op->error);
	if (op->text) {
		len = op->text->len;
		memcpy(r->text, op->text->s, len);
		r->flags |= op->text->flags;
	}
	r->text[len] = '\0';
	if (op->kind == OP_PREPARE)
		r->flags |= TG_PG_PREPARE_ONLY;
	if (op->kind == OP_STARTUP)
		r->flags |= TG_PG_STARTUP;
	c->emit(c->ctx, r);
}

static void pop_head(struct tg_pg_conn *c, char txn, bool emit)
{
	struct pg_op *op = &c->ops[c->head];

	if (emit)
		emit_op(c, op, txn);
	text_unref(op->text);
	c->head++;
	c->n--;
	if (!c->n)
		c->head = 0;
}

static struct pg_op *push_op(struct tg_pg_conn *c, uint8_t kind)
{
	struct pg_op *op;

	if (c->head + c->n == c->cap) {
		if (c->head > 0) {
			memmove(c->ops, c->ops + c->head, c->n * sizeof(*op));
			c->head = 0;
		} else if (c->cap < c->cfg.max_pending) {
			uint32_t ncap = c->cap ? c->cap * 2 : 8;
			struct pg_op *o;

			if (ncap > c->cfg.max_pending)
				ncap = c->cfg.max_pending;
			o = realloc(c->ops, ncap * sizeof(*o));
			if (!o)
				return NULL;
			c->ops = o;
			c->cap = ncap;
		} else {
			/* Too many statements awaiting responses: give up the oldest. */
			struct pg_op *old = &c->ops[c->head];

			if (!old->done) {
				old->flags |= TG_PG_INCOMPLETE;
				old->end_ns = c->seg_ts;
			}
			pop_head(c, 0, true);
			if (c->head > 0) {
				memmove(c->ops, c->ops + c->head, c->n * sizeof(*op));
				c->head = 0;
			}
		}
	}
	op = &c->ops[c->head + c->n++];
	/* All but error's tail (256 bytes, read only up to its NUL). */
	memset(op, 0, offsetof(struct pg_op, error));
	op->error[0] = '\0';
	op->kind = kind;
	op->rows = -1;
	return op;
}

/* First operation not completed yet, or NULL. */
static struct pg_op *cur_op(struct tg_pg_conn *c)
{
	for (uint32_t i = 0; i < c->n; i++) {
		struct pg_op *op = &c->ops[c->head + i];

		if (!op->done)
			return op;
	}
	return NULL;
}

static void mark_pending_lost(struct tg_pg_conn *c)
{
	for (uint32_t i = 0; i < c->n; i++)
		c->ops[c->head + i].flags |= TG_PG_LOST_EVENTS;
}

/* ---- backend messages ---- */

/* "INSERT 0 1" -> command "INSERT", rows 1; "CREATE TABLE" -> rows -1. */
static void parse_tag(const uint8_t *b, size_t n, char *cmd, int64_t *rows)
{
	size_t len = tg_strnlen((const char *)b, n), end = len, i;
	int64_t v = 0;

	*rows = -1;
	i = len;
	while (i > 0 && b[i - 1] >= '0' && b[i - 1] <= '9')
		i--;
	if (i < len && i > 0 && b[i - 1] == ' ' && len - i <= 18) {
		for (size_t k = i; k < len; k++)
			v = v * 10 + (b[k] - '0');
		*rows = v;
		end = i - 1;
		/* "INSERT 0 1": drop the oid too */
		while (end > 0 && b[end - 1] >= '0' && b[end - 1] <= '9')
			end--;
		while (end > 0 && b[end - 1] == ' ')
			end--;
		if (end == 0)
			end = i - 1;
	}
	copy_str(cmd, TG_PG_COMMAND_LEN, (const char *)b, end);
}

static void parse_error(struct pg_op *op, const uint8_t *b, size_t n)
{
	const char *sev = NULL, *msg = NULL;
	size_t i = 0;

	while (i < n && b[i]) {
		uint8_t f = b[i++];
		const char *v = (const char *)b + i;
		size_t l = tg_strnlen(v, n - i);

		if (i + l >= n)
			break; /* unterminated: truncated capture */
		if (f == 'C')
			copy_str(op->sqlstate, sizeof(op->sqlstate), v, l);
		else if (f == 'V' || (f == 'S' && !sev))
			sev = v;
		else if (f == 'M')
			msg = v;
		i += l + 1;
	}
	copy_cstr(op->error, sizeof(op->error), sev ? sev : "ERROR"); /* "%s: %s" */
	append_cstr(op->error, sizeof(op->error), ": ");
	append_cstr(op->error, sizeof(op->error), msg ? msg : "");
	op->flags |= TG_PG_ERROR;
	if (!strcmp(op->sqlstate, "57014"))
		op->flags |= TG_PG_CANCELLED;
}

static void be_error(struct tg_pg_conn *c, const uint8_t *b, size_t n)
{
	struct pg_op *op = cur_op(c);
	uint32_t i;

	if (!op && c->batch_parse && !c->batch_exec) {
		/* Parse + Describe + Flush (asyncpg's prepare) failed before any Sync */
		op = push_op(c, OP_PREPARE);
		if (!op)
			return;
		op->start_ns = c->batch_ts;
		op->tid = c->batch_tid;
		op->task_key = c->batch_task_key;
		op->text = text_ref(c->batch_text);
		c->batch_parse = false;
	}
	if (!op || op->kind == OP_SYNC) {
		tg_debug("pgwire: ErrorResponse with no pending statement");
		return;
	}
	parse_error(op, b, n);
	if (op->kind == OP_SIMPLE)
		return; /* ends at ReadyForQuery */
	op->done = true;
	op->end_ns = c->be.ts;
	/* The server skips the rest of the extended batch until Sync. */
	for (i = (uint32_t)(op - &c->ops[c->head]) + 1; i < c->n; i++) {
		struct pg_op *o = &c->ops[c->head + i];

		if (o->kind != OP_EXEC && o->kind != OP_PREPARE)
			break;
		if (!o->done) {
			o->done = true;
			o->flags |= TG_PG_SKIPPED;
			o->end_ns = c->be.ts;
		}
	}
}

static void be_ready(struct tg_pg_conn *c, char txn)
{
	uint32_t i, last = c->n;

	for (i = 0; i < c->n; i++) {
		uint8_t k = c->ops[c->head + i].kind;

		if (k == OP_SYNC || k == OP_SIMPLE || k == OP_STARTUP) {
			last = i + 1;
			break;
		}
	}
	if (last == c->n && i == c->n && c->n)
		mark_pending_lost(c); /* no Sync pending: the frontend lost some */
	for (i = 0; i < last; i++) {
		struct pg_op *op = &c->ops[c->head];
		bool last_exec = i + 2 == last && c->ops[c->head + 1].kind == OP_SYNC;

		if (!op->done) {
			op->done = true;
			op->end_ns = c->be.ts;
			if (op->kind == OP_EXEC && !(op->flags & TG_PG_LOST_EVENTS))
				op->flags |= TG_PG_INCOMPLETE;
		} else if (op->kind == OP_EXEC && last_exec &&
			   !(op->flags & (TG_PG_SKIPPED | TG_PG_SUSPENDED))) {
			op->end_ns = c->be.ts; /* the batch's last Execute ends at ReadyForQuery */
		}
		if (op->kind == OP_SIMPLE && op->ncomplete > 1)
			op->flags |= TG_PG_MULTI;
		pop_head(c, txn, true);
	}
}

/* Header of a backend message seen: accounting that needs no body. */
static size_t be_header(struct tg_pg_conn *c, uint8_t type, uint32_t body)
{
	struct pg_op *op = cur_op(c);

	if (op && op->kind != OP_SYNC && type != 'Z')
		op->bytes_in += 5 + (uint64_t)body;
	switch (type) {
	case 'D':
		if (op) {
			op->data_rows++;
			if (!op->first_row_ns)
				op->first_row_ns = c->be.ts;
		}
		return 0;
	case 'd':
		if (op)
			op->copy_bytes += body;
		return 0;
	case 'G':
	case 'H':
	case 'W':
		if (op)
			op->flags |= TG_PG_COPY;
		return 0;
	case 'C':
	case 'Z':
		return 64;
	case 'E':
		return 2048;
	default:
		return 0;
	}
}

static void be_message(struct tg_pg_conn *c, uint8_t type, const uint8_t *b, size_t n)
{
	struct pg_op *op;

	switch (type) {
	case 'C':
		op = cur_op(c);
		if (!op || op->kind == OP_SYNC)
			break;
		if (op->kind == OP_SIMPLE) {
			int64_t rows;

			parse_tag(b, n, op->command, &rows);
			op->ncomplete++;
			if (rows >= 0)
				op->rows = (op->rows < 0 ? 0 : op->rows) + rows;
		} else if (op->kind == OP_EXEC) {
			parse_tag(b, n, op->command, &op->rows);
			op->done = true;
			op->end_ns = c->be.ts;
		}
		break;
	case 'I':
	case 's':
		op = cur_op(c);
		if (!op || op->kind == OP_SYNC)
			break;
		if (op->kind == OP_SIMPLE) {
			op->ncomplete++;
		} else if (op->kind == OP_EXEC) {
			op->done = true;
			op->end_ns = c->be.ts;
			if (type == 's') {
				op->flags |= TG_PG_SUSPENDED;
				op->rows = (int64_t)op->data_rows;
			}
		}
		break;
	case 'E':
		be_error(c, b, n);
		break;
	case 'Z':
		be_ready(c, n >= 1 ? (char)b[0] : 0);
		break;
	default:
		break;
	}
}

/* ---- frontend messages ---- */

static void emit_conn_record(struct tg_pg_conn *c, uint32_t flags, const char *cmd,
			     const char *text)
{
	struct pg_op *op = push_op(c, OP_EXEC);

	if (!op)
		return;
	op->flags = flags;
	op->start_ns = op->end_ns = c->seg_ts;
	op->tid = c->seg_tid;
	op->task_key = c->seg_task_key;
	op->done = true;
	snprintf(op->command, sizeof(op->command), "%s", cmd);
	op->text = text_new(text, strlen(text), 0);
	/* emit now: nothing will answer it */
	while (c->n)
		pop_head(c, 0, true);
}

static void fe_startup(struct tg_pg_conn *c, uint32_t code, const uint8_t *b, size_t n)
{
	struct pg_op *op;
	size_t i = 0;
	char text[64];

	if (code == CODE_SSL || code == CODE_GSS) {
		c->expect_enc = true;
		c->fe.st = FS_STARTUP;
		return;
	}
	if (code == CODE_CANCEL) {
		uint32_t pid = n >= 4 ? (uint32_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3] : 0;

		snprintf(text, sizeof(text), "cancel request for backend %u", pid);
		emit_conn_record(c, TG_PG_CANCEL_REQUEST, "CANCEL", text);
		c->abandoned = true;
		return;
	}
	while (i < n && b[i]) {
		const char *k = (const char *)b + i, *v;
		size_t kl = tg_strnlen(k, n - i), vl;

		if (i + kl + 1 >= n)
			break;
		v = k + kl + 1;
		vl = tg_strnlen(v, n - (i + kl + 1));
		if (i + kl + 1 + vl >= n)
			break;
		if (!strcmp(k, "user"))
			copy_str(c->db_user, sizeof(c->db_user), v, vl);
		else if (!strcmp(k, "database"))
			copy_str(c->db_name, sizeof(c->db_name), v, vl);
		i += kl + 1 + vl + 1;
	}
	if (!c->db_name[0])
		memcpy(c->db_name, c->db_user, sizeof(c->db_name));
	op = push_op(c, OP_STARTUP);
	if (op) {
		op->start_ns = c->fe.ts;
		op->tid = c->fe.tid;
		op->task_key = c->fe.task_key;
		op->text = text_new("startup", 7, 0);
	}
}

/* Read a NUL-terminated string at *pos; false if unterminated. */
static bool take_cstr(const uint8_t *b, size_t n, size_t *pos, const char **s, size_t *len)
{
	size_t l;

	if (*pos >= n)
		return false;
	*s = (const char *)b + *pos;
	l = tg_strnlen(*s, n - *pos);
	*len = l;
	if (*pos + l >= n)
		return false;
	*pos += l + 1;
	return true;
}

static void fe_batch_reset(struct tg_pg_conn *c)
{
	c->have_batch = false;
	c->batch_parse = false;
	c->batch_exec = false;
	text_unref(c->batch_text);
	c->batch_text = NULL;
}

static void note_push(struct tg_pg_conn *c)
{
	/* Backend lost and nothing was pending: its next read starts a message. */
	if (c->be.st == FS_LOST && c->n == 1)
		c->be.try_start = true;
}

static void fe_message(struct tg_pg_conn *c, uint8_t type, const uint8_t *b, size_t n, bool whole)
{
	char name[TG_PG_NAME_LEN], stmt[TG_PG_NAME_LEN];
	const char *s, *q;
	size_t pos = 0, l, ql;
	struct pg_text *t;
	struct nm_entry *e;
	struct pg_op *op;

	switch (type) {
	case 'Q':
		fe_batch_reset(c);
		ql = tg_strnlen((const char *)b, n);
		op = push_op(c, OP_SIMPLE);
		if (!op)
			return;
		op->start_ns = c->fe.ts;
		op->tid = c->fe.tid;
		op->task_key = c->fe.task_key;
		op->text = text_new((const char *)b, ql, !whole || ql == n ? TG_PG_TRUNCATED : 0);
		note_push(c);
		break;
	case 'P':
		if (!take_cstr(b, n, &pos, &s, &l))
			return;
		copy_str(name, sizeof(name), s, l);
		if (pos > n)
			return;
		q = (const char *)b + pos;
		ql = tg_strnlen(q, n - pos);
		t = text_new(q, ql, !whole || pos + ql >= n ? TG_PG_TRUNCATED : 0);
		if (!t)
			return;
		nm_put(&c->stmts, name, t, NULL);
		text_unref(c->batch_text);
		c->batch_text = t;
		c->batch_parse = true;
		break;
	case 'B':
		if (!take_cstr(b, n, &pos, &s, &l))
			return;
		copy_str(name, sizeof(name), s, l);
		if (!take_cstr(b, n, &pos, &s, &l))
			return;
		copy_str(stmt, sizeof(stmt), s, l);
		e = nm_get(&c->stmts, stmt);
		t = e ? text_ref(e->text) : text_unknown("prepared statement", stmt);
		if (t)
			nm_put(&c->portals, name, t, stmt);
		text_unref(t);
		break;
	case 'E':
		if (!take_cstr(b, n, &pos, &s, &l))
			return;
		copy_str(name, sizeof(name), s, l);
		e = nm_get(&c->portals, name);
		op = push_op(c, OP_EXEC);
		if (!op)
			return;
		op->start_ns = c->batch_ts;
		op->tid = c->batch_tid;
		op->task_key = c->batch_task_key;
		op->text = e ? text_ref(e->text) : text_unknown("portal", name);
		if (e)
			memcpy(op->stmt_name, e->stmt, sizeof(op->stmt_name));
		c->have_batch = false;
		c->batch_exec = true;
		note_push(c);
		break;
	case 'S':
		if (c->batch_parse && !c->batch_exec) {
			op = push_op(c, OP_PREPARE);
			if (op) {
				op->start_ns = c->batch_ts;
				op->tid = c->batch_tid;
				op->task_key = c->batch_task_key;
				op->text = text_ref(c->batch_text);
			}
		}
		op = push_op(c, OP_SYNC);
		fe_batch_reset(c);
		if (op)
			note_push(c);
		break;
	case 'C':
		if (n < 1)
			return;
		pos = 1;
		if (!take_cstr(b, n, &pos, &s, &l))
			return;
		copy_str(name, sizeof(name), s, l);
		if (b[0] == 'S')
			nm_del(&c->stmts, name);
		else if (b[0] == 'P')
			nm_del(&c->portals, name);
		break;
	default:
		break;
	}
}

/* Parse, Bind, Execute, Describe, Close, Flush, Sync: extended protocol. */
static bool batch_message(uint8_t type)
{
	switch (type) {
	case 'P':
	case 'B':
	case 'E':
	case 'D':
	case 'C':
	case 'H':
	case 'S':
		return true;
	default:
		return false;
	}
}

static size_t fe_header(struct tg_pg_conn *c, uint8_t type, uint32_t body)
{
	struct pg_op *op;

	if (!c->have_batch && batch_message(type)) {
		c->have_batch = true;
		c->batch_ts = c->fe.ts;
		c->batch_tid = c->fe.tid;
		c->batch_task_key = c->fe.task_key;
	}
	switch (type) {
	case 'Q':
	case 'P':
		return BUF_MAX;
	case 'B':
	case 'E':
	case 'C':
		return 2 * TG_PG_NAME_LEN + 8;
	case 'd':
		op = cur_op(c);
		if (op)
			op->copy_bytes += body;
		return 0;
	default:
		return 0;
	}
}

/* ---- framing ---- */

static bool valid_be(uint8_t t, uint32_t len)
{
	if (len < 4 || len > MAX_MSG)
		return false;
	switch (t) {
	case 'Z':
		return len == 5;
	case '1':
	case '2':
	case '3':
	case 'n':
	case 'I':
	case 's':
	case 'c':
		return len == 4;
	case 'K':
		return len == 12;
	case 'R':
	case 'S':
	case 'C':
		return len >= 5 && len <= 65536;
	case 'E':
	case 'N':
	case 'A':
	case 'D':
	case 'd':
	case 'T':
	case 't':
	case 'V':
	case 'G':
	case 'H':
	case 'W':
	case 'v':
		return true;
	default:
		return false;
	}
}

static bool valid_fe(uint8_t t, uint32_t len)
{
	if (len < 4 || len > MAX_MSG)
		return false;
	switch (t) {
	case 'S':
	case 'H':
	case 'X':
	case 'c':
		return len == 4;
	case 'E':
	case 'D':
	case 'C':
		return len >= 6 && len <= 65536;
	case 'Q':
	case 'P':
	case 'B':
		return len >= 5;
	case 'd':
	case 'f':
	case 'F':
	case 'p':
		return true;
	default:
		return false;
	}
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void lose(struct tg_pg_conn *c, struct framer *f)
{
	if (f->st != FS_LOST)
		tg_debug("pgwire: %s framing lost", f->backend ? "backend" : "frontend");
	f->st = FS_LOST;
	f->hdr_len = 0;
	f->try_start = !f->backend;
	mark_pending_lost(c);
	if (!f->backend)
		fe_batch_reset(c);
}

/* The message whose header is in f is complete: hand its first got bytes
 * (body, in f->buf or in place in the segment) to its parser. */
static void deliver_body(struct tg_pg_conn *c, struct framer *f, const uint8_t *body, size_t got)
{
	bool whole = !f->gapped && got == f->body_len;

	f->st = FS_HDR;
	f->hdr_len = 0;
	if (!f->type)
		fe_startup(c, f->code, body, got);
	else if (f->backend)
		be_message(c, f->type, body, got);
	else
		fe_message(c, f->type, body, got, whole);
}

static void deliver(struct tg_pg_conn *c, struct framer *f)
{
	deliver_body(c, f, f->buf, f->got);
}

/* A complete header is in h (f->hdr, or in place in the segment): start
 * the body. */
static void start_body(struct tg_pg_conn *c, struct framer *f, const uint8_t *h)
{
	uint32_t len;
	size_t cap;

	if (f->st == FS_STARTUP) {
		f->type = 0;
		f->code = be32(h + 4);
		len = be32(h);
		f->body_len = len - 8;
		cap = BUF_MAX;
	} else {
		f->type = h[0];
		len = be32(h + 1);
		if (!(f->backend ? valid_be(f->type, len) : valid_fe(f->type, len))) {
			lose(c, f);
			return;
		}
		f->body_len = len - 4;
		cap = f->backend ? be_header(c, f->type, f->body_len)
				 : fe_header(c, f->type, f->body_len);
	}
	f->cap = cap < BUF_MAX ? cap : BUF_MAX;
	f->body_done = 0;
	f->got = 0;
	f->gapped = false;
	f->st = FS_BODY;
	if (!f->body_len)
		deliver(c, f);
}

static bool startup_like(const uint8_t *h)
{
	uint32_t len = be32(h), code = be32(h + 4);

	if (len < 8 || len > 10000)
		return false;
	return (code >> 16) == 3 || ((code == CODE_SSL || code == CODE_GSS) && len == 8) ||
	       (code == CODE_CANCEL && len == 16);
}

static void feed_bytes(struct tg_pg_conn *c, struct framer *f, const uint8_t *p, size_t n);

static size_t resync_scan(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 6 <= n; i++)
		if (p[i] == 'Z' && !p[i + 1] && !p[i + 2] && !p[i + 3] && p[i + 4] == 5 &&
		    (p[i + 5] == 'I' || p[i + 5] == 'T' || p[i + 5] == 'E'))
			return i;
	return n;
}

static void feed_bytes(struct tg_pg_conn *c, struct framer *f, const uint8_t *p, size_t n)
{
	while (n > 0 && !c->abandoned) {
		size_t take;

		switch (f->st) {
		case FS_LOST:
			if (!f->backend)
				return;
			take = resync_scan(p, n);
			if (take == n)
				return;
			p += take;
			n -= take;
			f->st = FS_HDR;
			f->hdr_len = 0;
			mark_pending_lost(c); /* their responses fell into the lost bytes */
			break;
		case FS_STARTUP:
			if (f->hdr_len == 0) {
				f->ts = c->seg_ts;
				f->tid = c->seg_tid;
				f->task_key = c->seg_task_key;
			}
			take = 8 - f->hdr_len < n ? 8 - f->hdr_len : n;
			memcpy(f->hdr + f->hdr_len, p, take);
			f->hdr_len += take;
			p += take;
			n -= take;
			if (f->hdr_len < 8)
				return;
			if (startup_like(f->hdr)) {
				start_body(c, f, f->hdr);
			} else {
				/* no startup: typed messages from the start */
				uint8_t h[8];

				memcpy(h, f->hdr, 8);
				f->st = FS_HDR;
				f->hdr_len = 0;
				feed_bytes(c, f, h, 8);
			}
			break;
		case FS_HDR:
			if (f->backend && c->expect_enc && f->hdr_len == 0) {
				c->expect_enc = false;
				if (p[0] == 'S') {
					/* TLS: the plaintext (tg_pg__feed_tls) starts
					 * over with the StartupMessage. */
					c->tls = true;
					c->tls_ts = c->seg_ts;
					c->tls_tid = c->seg_tid;
					c->tls_task_key = c->seg_task_key;
					c->fe.st = FS_STARTUP;
					c->fe.hdr_len = 0;
					f->hdr_len = 0;
					return;
				}
				if (p[0] == 'G') {
					c->seg_ts = f->ts;
					emit_conn_record(c, TG_PG_ENCRYPTED, "",
							 "encrypted connection (GSS)");
					c->abandoned = true;
					return;
				}
				if (p[0] == 'N') {
					p++;
					n--;
					break;
				}
			}
			if (f->hdr_len == 0) {
				f->ts = c->seg_ts;
				f->tid = c->seg_tid;
				f->task_key = c->seg_task_key;
			}
			if (!f->hdr_len && n >= 5) {
				/* Read in place: no byte-wise copy then word load
				 * (a store-forwarding stall per message). */
				p += 5;
				n -= 5;
				f->hdr_len = 5;
				start_body(c, f, p - 5);
				break;
			}
			take = 5 - f->hdr_len < n ? 5 - f->hdr_len : n;
			memcpy(f->hdr + f->hdr_len, p, take);
			f->hdr_len += take;
			p += take;
			n -= take;
			if (f->hdr_len == 5)
				start_body(c, f, f->hdr);
			break;
		case FS_BODY:
			take = f->body_len - f->body_done;
			if (take > n)
				take = n;
			if (!f->body_done && take == f->body_len && !f->gapped) {
				/* The whole body is in this segment: parse it in place,
				 * without the copy into f->buf (the common case). */
				f->body_done = (uint32_t)take;
				p += take;
				n -= take;
				deliver_body(c, f, p - take, take < f->cap ? take : f->cap);
				break;
			}
			if (!f->gapped && f->got < f->cap) {
				size_t k = f->cap - f->got < take ? f->cap - f->got : take;

				memcpy(f->buf + f->got, p, k);
				f->got += k;
			}
			f->body_done += take;
			p += take;
			n -= take;
			if (f->body_done == f->body_len)
				deliver(c, f);
			break;
		}
	}
}

static void skip_bytes(struct tg_pg_conn *c, struct framer *f, uint64_t n)
{
	if (f->st == FS_BODY) {
		uint64_t r = f->body_len - f->body_done;

		if (f->got < f->cap && f->got < f->body_len)
			f->gapped = true;
		if (n <= r) {
			f->body_done += n;
			n = 0;
		} else {
			f->body_done = f->body_len;
			n -= r;
		}
		if (f->body_done == f->body_len)
			deliver(c, f);
	}
	if (n > 0 && f->st != FS_LOST)
		lose(c, f);
}

static bool plausible_start(struct framer *f, const uint8_t *p, size_t n)
{
	if (n < 5)
		return false;
	return f->backend ? valid_be(p[0], be32(p + 1)) : valid_fe(p[0], be32(p + 1));
}

/* ---- public API ---- */

struct tg_pg_conn *tg_pg__new(const struct tg_pg_cfg *cfg, tg_pg_emit_fn emit, void *ctx)
{
	struct tg_pg_conn *c;

	if (!emit) {
		errno = EINVAL;
		return NULL;
	}
	c = malloc(sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	memset(c, 0, offsetof(struct tg_pg_conn, rec));
	c->fe.buf = c->fe_buf;
	c->be.buf = c->be_buf;
	if (cfg)
		c->cfg = *cfg;
	if (!c->cfg.max_pending)
		c->cfg.max_pending = 1024;
	if (!c->cfg.max_prepared)
		c->cfg.max_prepared = 4096;
	c->stmts.cap = c->cfg.max_prepared;
	c->portals.cap = 256;
	c->emit = emit;
	c->ctx = ctx;
	c->fe.st = FS_STARTUP;
	c->be.st = FS_HDR;
	c->be.backend = true;
	return c;
}

void tg_pg__free(struct tg_pg_conn *c)
{
	if (!c)
		return;
	while (c->n)
		pop_head(c, 0, false);
	free(c->ops);
	nm_clear(&c->stmts);
	nm_clear(&c->portals);
	text_unref(c->batch_text);
	free(c);
}

static void feed_segment(struct tg_pg_conn *c, const struct tg_segment *seg);

void tg_pg__feed(struct tg_pg_conn *c, const struct tg_segment *seg)
{
	if (c && seg && !c->abandoned && !c->tls) /* TLS: only its plaintext (feed_tls) */
		feed_segment(c, seg);
}

static void feed_segment(struct tg_pg_conn *c, const struct tg_segment *seg)
{
	struct framer *f;
	size_t head_len, tail_len;
	const uint8_t *tail;
	uint64_t missing;

	f = seg->dir == TG_DIR_OUT ? &c->fe : &c->be;
	c->seg_ts = seg->ts_ns;
	c->seg_tid = seg->tid;
	c->seg_task_key = seg->task_key;
	head_len = seg->head ? seg->head_len : 0;
	if (head_len > seg->len)
		head_len = seg->len;
	tail = seg->tail;
	tail_len = tail ? seg->tail_len : 0;
	if (head_len + tail_len > seg->len) {
		/* overlapping tail: keep only its bytes past the head */
		size_t over = head_len + tail_len - seg->len;

		tail += over;
		tail_len -= over;
	}
	missing = seg->len - head_len - tail_len;
	if (f->st == FS_LOST && f->try_start && plausible_start(f, seg->head, head_len)) {
		f->st = FS_HDR;
		f->hdr_len = 0;
	}
	f->try_start = !f->backend;
	feed_bytes(c, f, seg->head, head_len);
	if (missing)
		skip_bytes(c, f, missing);
	if (tail_len)
		feed_bytes(c, f, tail, tail_len);
}

void tg_pg__feed_tls(struct tg_pg_conn *c, const struct tg_segment *seg)
{
	if (!c || !seg || !c->tls || c->abandoned)
		return;
	c->tls_plain = true;
	feed_segment(c, seg);
}

void tg_pg__gap(struct tg_pg_conn *c)
{
	if (!c || c->abandoned)
		return;
	mark_pending_lost(c);
	c->fe.st = FS_LOST;
	c->fe.try_start = true;
	c->be.st = FS_LOST;
	c->be.try_start = !cur_op(c);
	fe_batch_reset(c);
}

void tg_pg__close(struct tg_pg_conn *c, uint64_t ts_ns)
{
	if (!c)
		return;
	if (c->tls && !c->tls_plain) {
		c->seg_ts = c->tls_ts;
		c->seg_tid = c->tls_tid;
		c->seg_task_key = c->tls_task_key;
		emit_conn_record(c, TG_PG_ENCRYPTED, "", "encrypted connection (SSL)");
	}
	while (c->n) {
		struct pg_op *op = &c->ops[c->head];

		if (!op->done) {
			op->flags |= TG_PG_INCOMPLETE;
			op->end_ns = ts_ns;
		}
		pop_head(c, 0, true);
	}
}

void tg_pg__set_preexisting(struct tg_pg_conn *c)
{
	if (!c)
		return;
	c->fe.st = FS_LOST;
	c->fe.try_start = true;
	c->be.st = FS_LOST;
	c->be.try_start = true;
}

void tg_pg__encrypted(struct tg_pg_conn *c, uint64_t ts_ns)
{
	if (!c || c->tls || c->abandoned)
		return;
	/* A connection seen first in mid-stream (open before the tracer)
	 * whose bytes are TLS records: its plaintext starts anywhere. */
	c->tls = true;
	c->tls_ts = ts_ns;
	tg_pg__set_preexisting(c);
}

bool tg_pg__abandoned(const struct tg_pg_conn *c)
{
	return c && c->abandoned;
}
