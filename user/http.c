/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.x reassembler over captured segments (see http.h, docs/http.md).
 *
 * Two independent framers walk the two directions of one server connection:
 * the request side (bytes the server read) and the response side (bytes it
 * wrote). Each keeps a small state machine: idle -> headers -> body (length,
 * chunked, until close, unknown) -> idle. Positions advance over a segment's
 * total length; only the known bytes (head and tail) are ever looked at, the
 * unknown middle is only counted.
 *
 * Header blocks are collected until the blank line (in place when they sit in
 * one known run, else copied into a per-direction buffer capped at HDR_CAP)
 * and then handed whole to the header parser (httphead.h: a scanner for the
 * common shape, libhttp_parser for everything else), which extracts method,
 * target, version, status, Content-Length and chunked. Bodies are framed
 * here: counted for Content-Length, followed byte by byte through known chunk
 * size lines, and ended by a visible "0\r\n\r\n" at a segment's end when the
 * sizes fell into a gap.
 *
 * Exchanges wait in a small FIFO (pipelining): the request side pushes one
 * when its headers are complete, the response side fills the oldest without a
 * response, and an exchange is emitted once both sides are done (or when it
 * is given up: gap, close, queue overflow, lost framing).
 */
#include "http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "httphead.h"
#include "timeglass/events.h"

#define HDR_CAP 16384 /* most header bytes buffered per message */
#define QMAX 8	      /* most exchanges pending on one connection (pipelining depth) */

static const char h2_preface_line[] = "PRI * HTTP/2.0\r\n";
#define H2_LINE_LEN (sizeof(h2_preface_line) - 1)

enum rq_state { RQ_IDLE, RQ_HDR, RQ_BODY_LEN, RQ_BODY_CHUNKED, RQ_UNKNOWN, RQ_RESYNC };
enum rs_state { RS_IDLE, RS_HDR, RS_BODY_LEN, RS_BODY_CHUNKED, RS_BODY_CLOSE, RS_UNKNOWN, RS_SKIP };
enum ch_state {
	CH_SIZE,    /* hex digits of a chunk size */
	CH_EXT,	    /* chunk extension up to the end of the size line */
	CH_SIZE_LF, /* '\n' ending the size line */
	CH_DATA,    /* size bytes of chunk data (known or not) */
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAIL, /* start of a trailer line after the last chunk */
	CH_TRAIL_LINE,
	CH_TRAIL_LF,
	CH_LOST, /* sizes fell into a gap: wait for a segment ending in 0\r\n\r\n */
	CH_DONE,
};

/* A normalised segment: lengths clamped so nothing reads out of bounds. */
struct sv {
	uint64_t ts;
	uint64_t task_key;
	uint32_t tid;
	uint64_t len;
	const uint8_t *head;
	size_t hl;
	const uint8_t *tail;
	size_t tl;
	uint64_t toff; /* offset of tail[0] in the segment */
};

struct hdr_acc {
	uint8_t *buf; /* header bytes copied when a block spans known runs */
	size_t len, cap;
	uint8_t nl;  /* end-of-headers scanner state */
	uint64_t ts; /* segment of the message's first byte */
	uint32_t tid;
	uint64_t bytes; /* header bytes consumed so far */
};

struct chunker {
	uint8_t st;    /* enum ch_state */
	uint8_t nd;    /* hex digits seen */
	uint64_t size; /* chunk size, then data bytes left */
};

struct exch {
	struct tg_request r;
	bool req_done, resp_done;
	bool head, connect; /* request method HEAD / CONNECT */
};

struct tg_http_conn {
	struct tg_http_cfg cfg;
	tg_http_emit_fn emit;
	void *ctx;
	struct exch q[QMAX];
	unsigned qh, qn;
	bool preexisting, abandoned;

	enum rq_state rq_st;
	struct hdr_acc rq_h;
	struct chunker rq_ch;
	uint64_t rq_rem;
	struct exch *rq_e; /* exchange whose request body is being read */
	uint32_t rq_pend;  /* flags for the next request (TG_REQ_RESYNC) */

	enum rs_state rs_st;
	struct hdr_acc rs_h;
	struct chunker rs_ch;
	uint64_t rs_rem;
	struct exch *rs_e; /* exchange whose response is being framed; NULL: orphan */
	bool rs_skipped;   /* OUT bytes were skipped while a request waited */
};

/* ---- segment bytes ---- */

static size_t known_run(const struct sv *s, uint64_t pos, const uint8_t **p)
{
	if (pos < s->hl) {
		*p = s->head + pos;
		return s->hl - pos;
	}
	if (s->tl && pos >= s->toff && pos < s->len) {
		*p = s->tail + (pos - s->toff);
		return (size_t)(s->len - pos);
	}
	return 0;
}

static int byte_at(const struct sv *s, uint64_t off)
{
	const uint8_t *p;

	return known_run(s, off, &p) ? p[0] : -1;
}

static bool seg_ends_with(const struct sv *s, const char *suf, size_t n)
{
	size_t i;

	if (s->len < n)
		return false;
	for (i = 0; i < n; i++)
		if (byte_at(s, s->len - n + i) != (uint8_t)suf[i])
			return false;
	return true;
}

/* ---- line recognisers ---- */

struct reqline {
	const uint8_t *method, *target;
	size_t method_len, target_len;
	uint8_t minor;
	bool in_target; /* the bytes ended inside the target */
};

static bool is_method_char(uint8_t ch)
{
	return (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '_';
}

/* Recognise "METHOD SP target SP HTTP/1.d" (or the HTTP/2 preface line) at
 * p[0..n). Returns 1 for a complete line (through the version digit), 0 for
 * a valid prefix cut by the end of the bytes, -1 for anything else. */
static int parse_reqline(const uint8_t *p, size_t n, struct reqline *rl)
{
	static const char ver[] = "HTTP/1.";
	size_t i = 0, k;

	memset(rl, 0, sizeof(*rl));
	if (n == 0)
		return 0;
	k = n < H2_LINE_LEN ? n : H2_LINE_LEN;
	if (memcmp(p, h2_preface_line, k) == 0) {
		rl->method = p;
		rl->method_len = n < 3 ? n : 3;
		return n >= 14 ? 1 : 0;
	}
	while (i < n && i <= 20 && is_method_char(p[i]))
		i++;
	if (i == n)
		return i <= 20 ? 0 : -1;
	if (i == 0 || i > 20 || p[i] != ' ')
		return -1;
	rl->method = p;
	rl->method_len = i++;
	rl->target = p + i;
	while (i < n && p[i] > 0x20 && p[i] != 0x7f)
		i++;
	rl->target_len = (size_t)(p + i - rl->target);
	if (i == n) {
		rl->in_target = true;
		return 0;
	}
	if (rl->target_len == 0 || p[i] != ' ')
		return -1;
	i++;
	for (k = 0; k < 7; k++, i++) {
		if (i == n)
			return 0;
		if (p[i] != (uint8_t)ver[k])
			return -1;
	}
	if (i == n)
		return 0;
	if (p[i] < '0' || p[i] > '9')
		return -1;
	rl->minor = (uint8_t)(p[i] - '0');
	return 1;
}

static bool status_prefix(const uint8_t *p, size_t n)
{
	return memcmp(p, "HTTP/1.", n < 7 ? n : 7) == 0;
}

static bool is_digit(uint8_t ch)
{
	return ch >= '0' && ch <= '9';
}

/* "HTTP/1.d ddd" -> ddd, or 0. */
static int status_code(const uint8_t *p, size_t n)
{
	if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || !is_digit(p[7]) || p[8] != ' ' ||
	    !is_digit(p[9]) || !is_digit(p[10]) || !is_digit(p[11]))
		return 0;
	return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

/* ---- header blocks ---- */

/* Scan for the blank line ending a header block (CRLF or bare LF line ends).
 * *st carries the state across calls. Returns the offset just past it, or 0. */
static size_t scan_hdr_end(uint8_t *st, const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t ch;

		if (*st == 0) {
			/* mid-line: only the next '\n' matters */
			const uint8_t *nl = memchr(p + i, '\n', n - i);

			if (!nl)
				return 0;
			i = (size_t)(nl - p) + 1;
			*st = 1;
			continue;
		}
		ch = p[i++];
		if (ch == '\n') {
			*st = 0;
			return i;
		}
		*st = ch == '\r' && *st == 1 ? 2 : 0;
	}
	return 0;
}

static void hdr_begin(struct hdr_acc *h, const struct sv *s)
{
	h->len = 0;
	h->nl = 0;
	h->ts = s->ts;
	h->tid = s->tid;
	h->bytes = 0;
}

static int hdr_append(struct hdr_acc *h, const uint8_t *p, size_t n)
{
	if (h->len + n > h->cap) {
		size_t cap = h->cap ? h->cap : 1024;
		uint8_t *nb;

		while (cap < h->len + n)
			cap *= 2;
		if (cap > HDR_CAP)
			cap = HDR_CAP;
		nb = realloc(h->buf, cap);
		if (!nb)
			return -ENOMEM;
		h->buf = nb;
		h->cap = cap;
	}
	if (n)
		memcpy(h->buf + h->len, p, n);
	h->len += n;
	return 0;
}

/* Collect header bytes from *pos. Returns 1 with the whole block in
 * *blk and *bn, 0 when the segment ended first (more to come), -1 when the block
 * cannot be completed (a gap, the cap, no memory): h->buf then holds what
 * was seen. */
static int hdr_step(struct hdr_acc *h, const struct sv *s, uint64_t *pos, const uint8_t **blk,
		    size_t *bn)
{
	const uint8_t *p;
	size_t n = known_run(s, *pos, &p), k, take, room;

	if (n == 0)
		return -1;
	k = scan_hdr_end(&h->nl, p, n);
	take = k ? k : n;
	*pos += take;
	h->bytes += take;
	if (k && h->len == 0 && k <= HDR_CAP) {
		*blk = p;
		*bn = k;
		return 1;
	}
	room = HDR_CAP - h->len;
	if (take > room) {
		(void)hdr_append(h, p, room);
		return -1;
	}
	if (hdr_append(h, p, take) < 0)
		return -1;
	if (!k)
		return 0;
	*blk = h->buf;
	*bn = h->len;
	return 1;
}

/* ---- chunked bodies ---- */

static void chunk_reset(struct chunker *ch)
{
	ch->st = CH_SIZE;
	ch->nd = 0;
	ch->size = 0;
}

static int hexval(uint8_t ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static void chunk_size_done(struct chunker *ch)
{
	ch->st = ch->size ? CH_DATA : CH_TRAIL;
}

static void chunk_byte(struct chunker *ch, uint8_t b)
{
	int v;

	switch (ch->st) {
	case CH_SIZE:
		v = hexval(b);
		if (v >= 0) {
			if (ch->nd >= 15) {
				ch->st = CH_LOST;
				break;
			}
			ch->size = ch->size << 4 | (uint64_t)v;
			ch->nd++;
		} else if (ch->nd && b == '\r') {
			ch->st = CH_SIZE_LF;
		} else if (ch->nd && b == '\n') {
			chunk_size_done(ch);
		} else if (ch->nd && (b == ';' || b == ' ' || b == '\t')) {
			ch->st = CH_EXT;
		} else {
			ch->st = CH_LOST; /* no hex digit before the end of the size, or junk */
		}
		break;
	case CH_EXT:
		if (b == '\n')
			chunk_size_done(ch);
		break;
	case CH_SIZE_LF:
		if (b == '\n')
			chunk_size_done(ch);
		else
			ch->st = CH_LOST;
		break;
	case CH_DATA_CR:
		if (b == '\r')
			ch->st = CH_DATA_LF;
		else if (b == '\n')
			chunk_reset(ch);
		else
			ch->st = CH_LOST;
		break;
	case CH_DATA_LF:
		if (b == '\n')
			chunk_reset(ch);
		else
			ch->st = CH_LOST;
		break;
	case CH_TRAIL:
		if (b == '\r')
			ch->st = CH_TRAIL_LF;
		else if (b == '\n')
			ch->st = CH_DONE;
		else
			ch->st = CH_TRAIL_LINE;
		break;
	case CH_TRAIL_LINE:
		if (b == '\n')
			ch->st = CH_TRAIL;
		break;
	case CH_TRAIL_LF:
		ch->st = b == '\n' ? CH_DONE : CH_LOST;
		break;
	default:
		break;
	}
}

/* Advance a chunked body over the segment from *pos. True when it ended. */
static bool chunk_step(struct chunker *ch, const struct sv *s, uint64_t *pos)
{
	while (*pos < s->len) {
		const uint8_t *p;
		size_t n, i;

		if (ch->st == CH_DATA) {
			uint64_t take = s->len - *pos < ch->size ? s->len - *pos : ch->size;

			*pos += take;
			ch->size -= take;
			if (!ch->size)
				ch->st = CH_DATA_CR;
			continue;
		}
		if (ch->st == CH_LOST) {
			*pos = s->len;
			if (seg_ends_with(s, "0\r\n\r\n", 5)) {
				ch->st = CH_DONE;
				return true;
			}
			return false;
		}
		n = known_run(s, *pos, &p);
		if (n == 0) {
			ch->st = CH_LOST;
			continue;
		}
		for (i = 0; i < n && ch->st != CH_DATA && ch->st != CH_LOST && ch->st != CH_DONE;
		     i++)
			chunk_byte(ch, p[i]);
		*pos += i;
		if (ch->st == CH_DONE)
			return true;
	}
	return false;
}

/* ---- the exchange queue ---- */

static struct exch *q_at(struct tg_http_conn *c, unsigned i)
{
	return &c->q[(c->qh + i) % QMAX];
}

static void q_pop_emit(struct tg_http_conn *c)
{
	struct exch *e = q_at(c, 0);

	if (c->emit)
		c->emit(c->ctx, &e->r);
	if (c->rs_e == e) {
		c->rs_e = NULL;
		if (c->rs_st != RS_IDLE)
			c->rs_st = RS_SKIP;
	}
	if (c->rq_e == e) {
		c->rq_e = NULL;
		if (c->rq_st != RQ_IDLE && c->rq_st != RQ_HDR)
			c->rq_st = RQ_RESYNC;
	}
	c->qh = (c->qh + 1) % QMAX;
	c->qn--;
}

static void flush(struct tg_http_conn *c)
{
	while (c->qn && q_at(c, 0)->req_done && q_at(c, 0)->resp_done)
		q_pop_emit(c);
}

/* Emit every pending exchange, adding flags to all and incomplete to those
 * not finished both ways. */
static void drain(struct tg_http_conn *c, uint32_t flags, uint32_t incomplete)
{
	while (c->qn) {
		struct exch *e = q_at(c, 0);

		e->r.flags |= flags;
		if (!e->req_done || !e->resp_done)
			e->r.flags |= incomplete;
		q_pop_emit(c);
	}
}

static struct exch *rs_next_target(struct tg_http_conn *c)
{
	unsigned i;

	for (i = 0; i < c->qn; i++)
		if (!q_at(c, i)->resp_done)
			return q_at(c, i);
	return NULL;
}

static unsigned rs_pending(struct tg_http_conn *c)
{
	unsigned i, n = 0;

	for (i = 0; i < c->qn; i++)
		n += !q_at(c, i)->resp_done;
	return n;
}

/* Push a new exchange for the request whose head is in rq_h. */
static struct exch *q_push(struct tg_http_conn *c)
{
	struct exch *e;

	if (c->qn == QMAX) {
		q_at(c, 0)->r.flags |= TG_REQ_INCOMPLETE;
		q_pop_emit(c);
	}
	e = q_at(c, c->qn++);
	memset(e, 0, sizeof(*e));
	e->r.start_ns = c->rq_h.ts;
	e->r.tid = c->rq_h.tid;
	e->r.req_bytes = c->rq_h.bytes;
	e->r.flags = c->rq_pend | (c->preexisting ? TG_REQ_PREEXISTING : 0);
	c->rq_pend = 0;
	return e;
}

static void copy_method(struct exch *e, const char *m, size_t n)
{
	if (n >= TG_METHOD_LEN)
		n = TG_METHOD_LEN - 1;
	memcpy(e->r.method, m, n);
	e->r.method[n] = '\0';
}

static void fill_target(struct tg_http_conn *c, struct exch *e, const char *t, size_t n)
{
	tg_http__redact_target(t, n, c->cfg.keep_query_values, e->r.target, sizeof(e->r.target));
}

/* ---- response side ---- */

/* The response being framed ended (flags added to its exchange). */
static void rs_finish(struct tg_http_conn *c, uint32_t flags)
{
	struct exch *e = c->rs_e;

	c->rs_st = RS_IDLE;
	c->rs_e = NULL;
	if (!e)
		return;
	e->resp_done = true;
	e->r.flags |= flags;
	/* A request whose end we could not frame ended before its response. */
	if (c->rq_e == e &&
	    (c->rq_st == RQ_UNKNOWN || (c->rq_st == RQ_BODY_CHUNKED && c->rq_ch.st == CH_LOST))) {
		e->req_done = true;
		c->rq_e = NULL;
		c->rq_st = RQ_IDLE;
	}
	flush(c);
}

/* A new request arrived: a response we could no longer frame ends now. */
static void rs_settle(struct tg_http_conn *c)
{
	switch (c->rs_st) {
	case RS_UNKNOWN:
		rs_finish(c, 0);
		break;
	case RS_BODY_CLOSE:
		rs_finish(c, TG_REQ_INCOMPLETE);
		break;
	case RS_BODY_CHUNKED:
		if (c->rs_ch.st == CH_LOST)
			rs_finish(c, TG_REQ_INCOMPLETE);
		break;
	case RS_SKIP:
		if (c->rs_skipped) {
			c->rs_e = rs_next_target(c);
			rs_finish(c, TG_REQ_INCOMPLETE);
			c->rs_st = RS_SKIP;
			c->rs_skipped = false;
		}
		break;
	default:
		break;
	}
}

static void abandon(struct tg_http_conn *c)
{
	c->rs_e = NULL;
	c->rq_e = NULL;
	drain(c, 0, TG_REQ_INCOMPLETE);
	c->abandoned = true;
}

static void add_resp(struct tg_http_conn *c, const struct sv *s, uint64_t n)
{
	if (c->rs_e && n) {
		c->rs_e->r.resp_bytes += n;
		c->rs_e->r.end_ns = s->ts;
	}
}

static void rs_headers_done(struct tg_http_conn *c, const struct sv *s, const uint8_t *blk,
			    size_t bn, bool truncated)
{
	struct exch *e = c->rs_e;
	struct tg_http_head m;
	int st;

	if (e) {
		e->r.resp_bytes += c->rs_h.bytes;
		e->r.end_ns = s->ts;
	}
	if (truncated || !tg_httphead__parse(blk, bn, true, &m)) {
		st = status_code(blk, bn);
		if (e) {
			if (st >= 200)
				e->r.status = st;
			e->r.flags |= TG_REQ_TRUNCATED;
		}
		c->rs_st = RS_UNKNOWN;
		return;
	}
	st = (int)m.status;
	if (st >= 100 && st < 200 && st != 101) {
		/* An interim response: the final one follows for the same request. */
		if (e && st == 100)
			e->r.flags |= TG_REQ_CONTINUE;
		c->rs_st = RS_IDLE;
		c->rs_e = NULL;
		return;
	}
	if (e)
		e->r.status = st;
	if (st == 101 || (e && e->connect && st >= 200 && st < 300)) {
		if (e) {
			e->r.flags |= TG_REQ_UPGRADED;
			e->resp_done = e->req_done = true;
		}
		abandon(c);
		return;
	}
	if ((e && e->head) || st == 204 || st == 304 || (st >= 100 && st < 200)) {
		rs_finish(c, 0);
	} else if (m.chunked) {
		chunk_reset(&c->rs_ch);
		c->rs_st = RS_BODY_CHUNKED;
	} else if (m.has_length) {
		c->rs_rem = m.length;
		c->rs_st = RS_BODY_LEN;
		if (!m.length)
			rs_finish(c, 0);
	} else {
		c->rs_st = RS_BODY_CLOSE;
	}
}

static void feed_out(struct tg_http_conn *c, const struct sv *s)
{
	uint64_t pos = 0;
	bool status_line = s->hl && status_code(s->head, s->hl) > 0;

	if (c->rs_st == RS_SKIP) {
		if (!status_line) {
			if (rs_next_target(c))
				c->rs_skipped = true;
			return;
		}
		c->rs_st = RS_IDLE;
		c->rs_skipped = false;
	} else if (status_line &&
		   (c->rs_st == RS_UNKNOWN ||
		    (c->rs_st == RS_BODY_CHUNKED && c->rs_ch.st == CH_LOST)) &&
		   (!c->rs_e || rs_pending(c) >= 2)) {
		/* Another request waits and this write starts its response. */
		rs_finish(c, c->rs_st == RS_UNKNOWN ? 0 : TG_REQ_INCOMPLETE);
	}
	while (pos < s->len && !c->abandoned) {
		const uint8_t *p, *blk;
		size_t n, bn;
		uint64_t p0, take;
		int r;

		switch (c->rs_st) {
		case RS_SKIP:
			if (rs_next_target(c))
				c->rs_skipped = true;
			return;
		case RS_IDLE:
			n = known_run(s, pos, &p);
			if (n == 0 || !status_prefix(p, n)) {
				c->rs_st = RS_SKIP;
				break;
			}
			c->rs_e = rs_next_target(c);
			if (c->rs_e && !c->rs_e->r.first_resp_ns) {
				c->rs_e->r.first_resp_ns = s->ts;
				c->rs_e->r.task_key = s->task_key;
			}
			hdr_begin(&c->rs_h, s);
			c->rs_st = RS_HDR;
			break;
		case RS_HDR:
			r = hdr_step(&c->rs_h, s, &pos, &blk, &bn);
			if (r > 0)
				rs_headers_done(c, s, blk, bn, false);
			else if (r < 0)
				rs_headers_done(c, s, c->rs_h.buf, c->rs_h.len, true);
			break;
		case RS_BODY_LEN:
			take = s->len - pos < c->rs_rem ? s->len - pos : c->rs_rem;
			add_resp(c, s, take);
			pos += take;
			c->rs_rem -= take;
			if (!c->rs_rem)
				rs_finish(c, 0);
			break;
		case RS_BODY_CHUNKED:
			p0 = pos;
			r = chunk_step(&c->rs_ch, s, &pos);
			add_resp(c, s, pos - p0);
			if (r)
				rs_finish(c, 0);
			break;
		case RS_BODY_CLOSE:
		case RS_UNKNOWN:
			add_resp(c, s, s->len - pos);
			pos = s->len;
			break;
		}
	}
}

/* ---- request side ---- */

static void rq_garbage(struct tg_http_conn *c)
{
	c->rq_st = RQ_RESYNC;
	c->rq_pend |= TG_REQ_RESYNC;
	c->rq_e = NULL;
}

static void add_req(struct tg_http_conn *c, uint64_t n)
{
	if (c->rq_e)
		c->rq_e->r.req_bytes += n;
}

static void rq_body_done(struct tg_http_conn *c)
{
	if (c->rq_e)
		c->rq_e->req_done = true;
	c->rq_e = NULL;
	c->rq_st = RQ_IDLE;
	flush(c);
}

/* Record a request from its request line alone (headers not all seen). */
static struct exch *rq_push_truncated(struct tg_http_conn *c, const uint8_t *p, size_t n)
{
	struct reqline rl;
	int r = parse_reqline(p, n, &rl);
	struct exch *e;

	if (r < 0 || (r == 0 && !(rl.in_target && rl.target_len)))
		return NULL;
	e = q_push(c);
	copy_method(e, (const char *)rl.method, rl.method_len);
	fill_target(c, e, (const char *)rl.target, rl.target_len);
	e->r.http_minor = r > 0 ? rl.minor : 1;
	e->r.flags |= TG_REQ_TRUNCATED;
	return e;
}

/* Headers of a request that will never complete (gap, close). */
static void rq_partial(struct tg_http_conn *c, uint32_t flags)
{
	struct exch *e;

	if (c->rq_st != RQ_HDR)
		return;
	c->rq_st = RQ_IDLE;
	e = rq_push_truncated(c, c->rq_h.buf, c->rq_h.len);
	if (!e)
		return;
	e->r.flags |= flags;
	e->req_done = true;
}

static void rq_http2(struct tg_http_conn *c, const struct sv *s, uint64_t *pos)
{
	struct tg_request r;

	abandon(c);
	memset(&r, 0, sizeof(r));
	r.start_ns = c->rq_h.ts;
	r.tid = c->rq_h.tid;
	r.req_bytes = c->rq_h.bytes + (s->len - *pos);
	r.flags = TG_REQ_HTTP2 | c->rq_pend | (c->preexisting ? TG_REQ_PREEXISTING : 0);
	memcpy(r.method, "PRI", 4);
	memcpy(r.target, "*", 2);
	*pos = s->len;
	if (c->emit)
		c->emit(c->ctx, &r);
}

static void rq_headers_done(struct tg_http_conn *c, const struct sv *s, uint64_t *pos,
			    const uint8_t *blk, size_t bn, bool truncated)
{
	struct exch *e;
	struct tg_http_head m;

	if (!truncated && bn >= H2_LINE_LEN && memcmp(blk, h2_preface_line, H2_LINE_LEN) == 0) {
		rq_http2(c, s, pos);
		return;
	}
	rs_settle(c);
	if (truncated || !tg_httphead__parse(blk, bn, false, &m)) {
		e = rq_push_truncated(c, blk, bn);
		if (!e) {
			rq_garbage(c);
			return;
		}
		c->rq_e = e;
		c->rq_st = RQ_UNKNOWN;
		return;
	}
	e = q_push(c);
	copy_method(e, http_method_str((enum http_method)m.method),
		    strlen(http_method_str((enum http_method)m.method)));
	fill_target(c, e, m.url, m.url_len);
	e->r.http_minor = (uint8_t)m.minor;
	e->head = m.method == HTTP_HEAD;
	e->connect = m.method == HTTP_CONNECT;
	if (m.chunked) {
		chunk_reset(&c->rq_ch);
		c->rq_e = e;
		c->rq_st = RQ_BODY_CHUNKED;
	} else if (m.has_length && m.length) {
		c->rq_rem = m.length;
		c->rq_e = e;
		c->rq_st = RQ_BODY_LEN;
	} else {
		e->req_done = true;
		c->rq_st = RQ_IDLE;
	}
}

static void feed_in(struct tg_http_conn *c, const struct sv *s)
{
	struct reqline rl;
	bool line = s->hl && parse_reqline(s->head, s->hl, &rl) > 0;
	uint64_t pos = 0;

	if (c->rq_st == RQ_RESYNC) {
		if (!line) {
			if (s->len)
				c->rq_pend |= TG_REQ_RESYNC;
			return;
		}
		c->rq_st = RQ_IDLE;
	} else if (line && (c->rq_st == RQ_UNKNOWN ||
			    (c->rq_st == RQ_BODY_CHUNKED && c->rq_ch.st == CH_LOST))) {
		rq_body_done(c); /* a body we could not frame ended before this request */
	}
	while (pos < s->len && !c->abandoned) {
		const uint8_t *p, *blk;
		size_t n, bn;
		uint64_t p0, take;
		int r;

		switch (c->rq_st) {
		case RQ_RESYNC:
			return;
		case RQ_IDLE:
			n = known_run(s, pos, &p);
			if (n && (p[0] == '\r' || p[0] == '\n')) {
				pos++; /* stray CRLF between requests */
				break;
			}
			if (n == 0 || parse_reqline(p, n, &rl) < 0) {
				rq_garbage(c);
				return;
			}
			hdr_begin(&c->rq_h, s);
			c->rq_st = RQ_HDR;
			break;
		case RQ_HDR:
			r = hdr_step(&c->rq_h, s, &pos, &blk, &bn);
			if (r > 0)
				rq_headers_done(c, s, &pos, blk, bn, false);
			else if (r < 0)
				rq_headers_done(c, s, &pos, c->rq_h.buf, c->rq_h.len, true);
			break;
		case RQ_BODY_LEN:
			take = s->len - pos < c->rq_rem ? s->len - pos : c->rq_rem;
			add_req(c, take);
			pos += take;
			c->rq_rem -= take;
			if (!c->rq_rem)
				rq_body_done(c);
			break;
		case RQ_BODY_CHUNKED:
			p0 = pos;
			r = chunk_step(&c->rq_ch, s, &pos);
			add_req(c, pos - p0);
			if (r)
				rq_body_done(c);
			break;
		case RQ_UNKNOWN:
			add_req(c, s->len - pos);
			pos = s->len;
			break;
		}
	}
}

/* ---- public ---- */

static void reset(struct tg_http_conn *c)
{
	c->qh = c->qn = 0;
	c->abandoned = false;
	c->preexisting = false;
	c->rq_st = RQ_IDLE;
	c->rq_e = NULL;
	c->rq_pend = 0;
	c->rs_st = RS_IDLE;
	c->rs_e = NULL;
	c->rs_skipped = false;
}

struct tg_http_conn *tg_http__new(const struct tg_http_cfg *cfg, tg_http_emit_fn emit, void *ctx)
{
	struct tg_http_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (cfg)
		c->cfg = *cfg;
	c->emit = emit;
	c->ctx = ctx;
	reset(c);
	return c;
}

void tg_http__free(struct tg_http_conn *c)
{
	if (!c)
		return;
	free(c->rq_h.buf);
	free(c->rs_h.buf);
	free(c);
}

void tg_http__feed(struct tg_http_conn *c, const struct tg_segment *seg)
{
	struct sv s;

	if (!c || !seg || c->abandoned)
		return;
	s.ts = seg->ts_ns;
	s.task_key = seg->task_key;
	s.tid = seg->tid;
	s.len = seg->len;
	s.head = seg->head;
	s.hl = seg->head ? seg->head_len : 0;
	if (s.hl > s.len)
		s.hl = (size_t)s.len;
	s.tail = seg->tail;
	s.tl = seg->tail ? seg->tail_len : 0;
	if (s.tl > s.len)
		s.tl = (size_t)s.len;
	if (s.hl == s.len)
		s.tl = 0;
	s.toff = s.len - s.tl;
	if (seg->dir == TG_DIR_IN)
		feed_in(c, &s);
	else if (seg->dir == TG_DIR_OUT)
		feed_out(c, &s);
}

void tg_http__gap(struct tg_http_conn *c)
{
	bool in_progress;

	if (!c || c->abandoned)
		return;
	/* Nothing under way means whole exchanges may have vanished with the lost
	 * events: the next request carries the flag, so the loss is visible. */
	in_progress = c->qn || c->rq_e || c->rs_e || c->rq_st != RQ_IDLE;
	if (!in_progress)
		c->rq_pend |= TG_REQ_LOST_EVENTS;
	rq_partial(c, TG_REQ_LOST_EVENTS);
	c->rq_e = NULL;
	c->rs_e = NULL;
	drain(c, TG_REQ_LOST_EVENTS, 0);
	c->rq_st = RQ_RESYNC;
	c->rq_pend |= TG_REQ_RESYNC;
	c->rs_st = RS_SKIP;
	c->rs_skipped = false;
}

void tg_http__close(struct tg_http_conn *c, uint64_t ts_ns)
{
	(void)ts_ns; /* end_ns is the last response byte's write, not the close */
	if (!c)
		return;
	if (!c->abandoned) {
		if (c->rs_st == RS_BODY_CLOSE || c->rs_st == RS_UNKNOWN)
			rs_finish(c, 0);
		if (c->rq_e && (c->rq_st == RQ_UNKNOWN ||
				(c->rq_st == RQ_BODY_CHUNKED && c->rq_ch.st == CH_LOST)))
			c->rq_e->req_done = true;
		rq_partial(c, TG_REQ_INCOMPLETE);
		c->rq_e = NULL;
		c->rs_e = NULL;
		drain(c, 0, TG_REQ_INCOMPLETE);
	}
	reset(c);
}

void tg_http__set_preexisting(struct tg_http_conn *c)
{
	if (!c)
		return;
	c->preexisting = true;
	c->rq_st = RQ_RESYNC;
	c->rs_st = RS_SKIP;
}

bool tg_http__abandoned(const struct tg_http_conn *c)
{
	return c && c->abandoned;
}

size_t tg_http__redact_target(const char *target, size_t target_len, bool keep_values, char *out,
			      size_t cap)
{
	bool in_query = false, in_value = false;
	size_t i, o = 0;

	if (!out || cap == 0)
		return 0;
	if (!target)
		target_len = 0;
	for (i = 0; i < target_len && o + 1 < cap; i++) {
		char ch = target[i];

		if (ch == '#' || ch == '\0')
			break;
		if (!in_query) {
			in_query = ch == '?';
		} else if (!keep_values) {
			if (ch == '&') {
				in_value = false;
			} else if (in_value) {
				continue;
			} else if (ch == '=') {
				in_value = true;
			}
		}
		out[o++] = ch;
	}
	out[o] = '\0';
	return o;
}
