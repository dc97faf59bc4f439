/* SPDX-License-Identifier: MIT */
/*
 * The pipeline (pipeline.h): event decoding and the connection table.
 *
 * Connections are keyed by conn_id, which the kernel side never reuses, so a
 * reused fd cannot inherit a stale exchange. A second index (pid:fd ->
 * conn_id) catches the case where a close was never seen (lost, or the fd
 * was closed by exit/dup2): a new connection on the same pid:fd finishes
 * the old one first. Per-connection sequence numbers reveal lost events,
 * which are passed to the reassembler as gaps. Every event is validated
 * (type, sizes, lengths) before use; bad ones are counted, never trusted.
 */
#include "pipeline.h"
#include "tlshold.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hash.h"
#include "http.h"
#include "log.h"
#include "procscan.h"
#include "profile.h"
#include "route.h"
#include "sqltrack.h"
#include "taskcpu.h"
#include "timeglass/events.h"
#include "u64map.h"

#define MAX_IGNORED_PORTS 64

struct conn {
	uint64_t conn_id;
	uint32_t pid;
	int32_t fd;
	uint32_t next_seq;
	bool seq_known; /* false until the first data event (pre-existing conns) */
	bool ignored;	/* the tracer's own connection */
	uint8_t role;
	uint16_t rport;
	char peer[TG_PEER_LEN];
	struct tg_http_conn *http; /* server connections only */
	struct tg_sqlconn *sql;	   /* PostgreSQL client connections only */
	struct tg_pipeline *p;
	/* Other client connections (TG_DATA_TIMING): a write not answered yet. */
	bool net_waiting;
	uint32_t net_tid;
	uint64_t net_start, net_key;
};

struct pid_routes {
	uint32_t pid;
	struct tg_routes *routes;
};

/* The route a (pid, method, path) got, for the next request with the same
 * ones: matching walks every template of the app (a few hundred ns per
 * request), and most requests repeat paths. Valid while routes_gen is the
 * pipeline's (set_routes bumps it). Longer paths are not remembered. */
#define ROUTE_MEMO_N 64 /* power of two */
#define ROUTE_MEMO_PATH 128
struct route_memo {
	uint64_t gen; /* 0: empty */
	uint32_t pid;
	bool guessed;
	char method[TG_METHOD_LEN];
	char path[ROUTE_MEMO_PATH];
	char route[TG_ROUTE_LEN];
};

struct tg_pipeline {
	struct tg_pipeline_cfg cfg;
	struct tg_pipeline_stats stats;
	struct tg_u64map conns; /* conn_id -> struct conn */
	struct tg_u64map by_fd; /* pid << 32 | fd -> struct conn */
	struct pid_routes *routes;
	size_t nroutes;
	uint16_t ignored_ports[MAX_IGNORED_PORTS];
	size_t nignored;
	struct tg_sqltrack *sql;
	struct tg_taskcpu *tc;
	struct tg_tlshold *tls; /* TLS plaintext of SSL objects not yet tied to a connection */
	const struct tg_ev_data *feeding;    /* the data event being fed to a reassembler */
	const struct tg_ev_tls *feeding_tls; /* the TLS event releasing held ones */
	size_t tls_held_at_end;		     /* never tied to a connection: lost */
	uint64_t routes_gen;		     /* bumped when a pid's routes change */
	struct route_memo memo[ROUTE_MEMO_N];
};

static uint64_t fd_key(uint32_t pid, int32_t fd)
{
	/* +1 keeps the key non-zero for pid 0 / fd 0 in synthetic streams. */
	return ((uint64_t)pid << 32 | (uint32_t)fd) + 1;
}

static void on_query(void *ctx, const struct tg_query *q)
{
	struct tg_pipeline *p = ctx;

	if (p->cfg.on_query)
		p->cfg.on_query(p->cfg.ctx, q);
}

static struct tg_sqltrack *new_sql(struct tg_pipeline *p)
{
	struct tg_sqltrack_cfg scfg = {
	    .keep_values = p->cfg.keep_sql_values, .on_query = on_query, .ctx = p};

	p->sql = tg_sqltrack__new(&scfg);
	return p->sql;
}

static void on_usage(void *ctx, int64_t request_id, const struct tg_usage *u)
{
	struct tg_pipeline *p = ctx;

	if (p->cfg.on_usage)
		p->cfg.on_usage(p->cfg.ctx, request_id, u);
}

static bool is_pg_port(const struct tg_pipeline *p, uint16_t port)
{
	for (size_t i = 0; i < p->cfg.npg_ports && i < TG_PIPELINE_MAX_PG_PORTS; i++)
		if (p->cfg.pg_ports[i] == port)
			return true;
	return false;
}

struct tg_pipeline *tg_pipeline__new(const struct tg_pipeline_cfg *cfg)
{
	struct tg_pipeline *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->cfg = *cfg;
	p->routes_gen = 1; /* 0 marks an empty memo slot */
	if (!p->cfg.npg_ports) {
		p->cfg.pg_ports[0] = 5432;
		p->cfg.npg_ports = 1;
	}
	struct tg_taskcpu_cfg tcfg = {.on_update = on_usage, .ctx = p};

	p->tc = tg_taskcpu__new(&tcfg);
	p->tls = tg_tlshold__new();
	if (!p->tc || !p->tls || tg_u64map__init(&p->conns, 1024) ||
	    tg_u64map__init(&p->by_fd, 1024) || !new_sql(p)) {
		tg_taskcpu__free(p->tc);
		tg_tlshold__free(p->tls);
		tg_sqltrack__free(p->sql);
		tg_u64map__destroy(&p->conns);
		tg_u64map__destroy(&p->by_fd);
		free(p);
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

static void conn_free(struct conn *c)
{
	if (!c)
		return;
	tg_http__free(c->http);
	tg_sqltrack__close(c->sql, 0);
	free(c);
}

void tg_pipeline__free(struct tg_pipeline *p)
{
	size_t pos = 0, i;
	uint64_t key;
	void *val;

	if (!p)
		return;
	while (tg_u64map__next(&p->conns, &pos, &key, &val))
		conn_free(val);
	tg_u64map__destroy(&p->conns);
	tg_u64map__destroy(&p->by_fd);
	tg_sqltrack__free(p->sql);
	tg_taskcpu__free(p->tc);
	tg_tlshold__free(p->tls);
	for (i = 0; i < p->nroutes; i++)
		tg_routes__free(p->routes[i].routes);
	free(p->routes);
	free(p);
}

const struct tg_routes *tg_pipeline__routes(const struct tg_pipeline *p, uint32_t pid)
{
	size_t i;

	for (i = 0; i < p->nroutes; i++)
		if (p->routes[i].pid == pid)
			return p->routes[i].routes;
	return NULL;
}

int tg_pipeline__set_routes(struct tg_pipeline *p, uint32_t pid, const char *routes_text)
{
	struct tg_routes *t = tg_routes__new();
	struct pid_routes *n;
	size_t i;
	int err;

	if (!t)
		return -ENOMEM;
	err = tg_routes__add_text(t, routes_text);
	if (err) {
		tg_routes__free(t);
		return err;
	}
	p->routes_gen++; /* every remembered route may change */
	for (i = 0; i < p->nroutes; i++) {
		if (p->routes[i].pid == pid) {
			tg_routes__free(p->routes[i].routes);
			p->routes[i].routes = t;
			return 0;
		}
	}
	n = realloc(p->routes, (p->nroutes + 1) * sizeof(*n));
	if (!n) {
		tg_routes__free(t);
		return -ENOMEM;
	}
	p->routes = n;
	p->routes[p->nroutes].pid = pid;
	p->routes[p->nroutes].routes = t;
	p->nroutes++;
	return 0;
}

void tg_pipeline__ignore_peer_port(struct tg_pipeline *p, uint16_t port)
{
	size_t i;

	for (i = 0; i < p->nignored; i++)
		if (p->ignored_ports[i] == port)
			return;
	if (p->nignored < MAX_IGNORED_PORTS)
		p->ignored_ports[p->nignored++] = port;
	else
		p->ignored_ports[port % MAX_IGNORED_PORTS] = port;
}

static bool port_ignored(const struct tg_pipeline *p, uint16_t port)
{
	size_t i;

	for (i = 0; i < p->nignored; i++)
		if (p->ignored_ports[i] == port)
			return true;
	return false;
}

/* req's route from pid's routes (else the heuristics: TG_REQ_ROUTE_GUESSED),
 * for its method and path (the target without its query), through the memo. */
static void set_route(struct tg_pipeline *p, struct tg_request *req, const char *path, size_t n)
{
	uint64_t h = tg_fnv1a(TG_FNV1A_SEED ^ req->pid, path, n);
	struct route_memo *m;
	bool guessed;

	h = tg_fnv1a(h, req->method, strlen(req->method));
	m = &p->memo[h & (ROUTE_MEMO_N - 1)];
	if (m->gen == p->routes_gen && m->pid == req->pid && !strcmp(m->method, req->method) &&
	    !strcmp(m->path, path)) {
		memcpy(req->route, m->route, sizeof(req->route));
		req->flags |= m->guessed ? TG_REQ_ROUTE_GUESSED : 0;
		return;
	}
	guessed = !tg_route__match(tg_pipeline__routes(p, req->pid), req->method, path, req->route,
				   sizeof(req->route));
	if (guessed) {
		tg_route__heuristic(path, req->route, sizeof(req->route));
		req->flags |= TG_REQ_ROUTE_GUESSED;
	}
	if (n >= sizeof(m->path) || strlen(req->method) >= sizeof(m->method))
		return;
	m->gen = p->routes_gen;
	m->pid = req->pid;
	m->guessed = guessed;
	memcpy(m->method, req->method, strlen(req->method) + 1);
	memcpy(m->path, path, n + 1);
	memcpy(m->route, req->route, sizeof(m->route));
}

/* The reassembler finished an exchange of connection c (ctx). */
static void on_exchange(void *ctx, struct tg_request *req)
{
	struct conn *c = ctx;
	struct tg_pipeline *p = c->p;
	char path[TG_TARGET_LEN];
	int64_t id;
	size_t n;

	if (c->ignored)
		return;
	req->conn_id = c->conn_id;
	req->pid = c->pid;
	memcpy(req->peer, c->peer, sizeof(req->peer));
	n = strcspn(req->target, "?");
	memcpy(path, req->target, n);
	path[n] = '\0';
	if (!(req->flags & TG_REQ_HTTP2))
		set_route(p, req, path, n);
	/* The write that completed the exchange: its thread's on-CPU time then
	 * bounds the request's CPU (0 when it ended otherwise: close, finish). */
	if (p->feeding && p->feeding->dir == TG_DIR_OUT && p->feeding->hdr.ts_ns == req->end_ns) {
		req->resp_tid = p->feeding->hdr.tid;
		req->resp_oncpu_ns = p->feeding->hdr.oncpu_ns;
	}
	p->stats.requests++;
	tg_taskcpu__request(p->tc, req); /* first: it gives req->set_keys */
	tg_sqltrack__request(p->sql, req);
	id = p->cfg.on_request ? p->cfg.on_request(p->cfg.ctx, req) : 0;
	tg_sqltrack__stored(p->sql, req, id);
	tg_taskcpu__stored(p->tc, req, id);
}

static void conn_close(struct tg_pipeline *p, struct conn *c, uint64_t ts_ns)
{
	if (c->http)
		tg_http__close(c->http, ts_ns);
	tg_sqltrack__close(c->sql, ts_ns);
	c->sql = NULL;
	tg_u64map__del(&p->conns, c->conn_id);
	if (tg_u64map__get(&p->by_fd, fd_key(c->pid, c->fd)) == c)
		tg_u64map__del(&p->by_fd, fd_key(c->pid, c->fd));
	conn_free(c);
	p->stats.open_conns--;
}

static int on_conn(struct tg_pipeline *p, const struct tg_ev_conn *e)
{
	struct tg_http_cfg hcfg = {.keep_query_values = p->cfg.keep_query_values};
	struct conn *c, *old;

	if (e->conn_id == 0 || (e->family != AF_INET && e->family != AF_INET6 && e->family != 0))
		return -EBADMSG;
	old = tg_u64map__get(&p->conns, e->conn_id);
	if (old)
		conn_close(p, old, e->hdr.ts_ns);
	/* A close we never saw: the fd was reused. Finish the old connection. */
	old = tg_u64map__get(&p->by_fd, fd_key(e->hdr.pid, e->fd));
	if (old)
		conn_close(p, old, e->hdr.ts_ns);

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->p = p;
	c->conn_id = e->conn_id;
	c->pid = e->hdr.pid;
	c->fd = e->fd;
	c->role = e->role;
	c->rport = e->rport;
	c->seq_known = e->hdr.type == TG_EV_CONN && e->origin != TG_ORIGIN_EXISTING;
	c->next_seq = 0;
	c->ignored = port_ignored(p, e->rport);
	if (e->family)
		tg_procscan__format_peer(e->family, e->raddr, e->rport, c->peer, sizeof(c->peer));
	if (e->role == TG_ROLE_SERVER) {
		c->http = tg_http__new(&hcfg, on_exchange, c);
		if (!c->http) {
			free(c);
			return -ENOMEM;
		}
		if (e->origin == TG_ORIGIN_EXISTING)
			tg_http__set_preexisting(c->http);
		else
			tg_taskcpu__server_accept(p->tc, &e->hdr);
	} else if (e->role == TG_ROLE_CLIENT && is_pg_port(p, e->rport)) {
		c->sql =
		    tg_sqltrack__open(p->sql, c->conn_id, c->pid, e->origin == TG_ORIGIN_EXISTING);
		if (!c->sql) {
			free(c);
			return -ENOMEM;
		}
		p->stats.pg_conns++;
	}
	if (tg_u64map__put(&p->conns, c->conn_id, c) ||
	    tg_u64map__put(&p->by_fd, fd_key(c->pid, c->fd), c)) {
		tg_u64map__del(&p->conns, c->conn_id);
		conn_free(c);
		return -ENOMEM;
	}
	p->stats.open_conns++;
	return 0;
}

static void check_seq(struct tg_pipeline *p, struct conn *c, uint32_t seq)
{
	if (c->seq_known && seq != c->next_seq) {
		p->stats.gaps++;
		if (c->http)
			tg_http__gap(c->http);
		if (c->sql)
			tg_sqltrack__gap(c->sql);
		c->net_waiting = false; /* its answer may be among the lost */
	}
	c->seq_known = true;
	c->next_seq = seq + 1;
}

/* A data event of a client connection to another service: a write starts
 * a wait (the first of several before an answer: pipelined or split), the
 * next read ends it, charged to the writing Context (taskcpu.h). */
static void net_segment(struct tg_pipeline *p, struct conn *c, const struct tg_ev_data *e)
{
	if (e->dir == TG_DIR_OUT) {
		if (!c->net_waiting) {
			c->net_waiting = true;
			c->net_start = e->hdr.ts_ns;
			c->net_key = e->task_key;
			c->net_tid = e->hdr.tid;
		}
		return;
	}
	if (c->net_waiting) {
		c->net_waiting = false;
		tg_taskcpu__net_wait(p->tc, c->pid, c->net_tid, c->net_key, c->net_start,
				     e->hdr.ts_ns);
		p->stats.net_waits++;
	}
}

/* The bytes begin an HTTP/1 request line ("METHOD /..." or "METHOD *"):
 * cheap, and enough to tell a request's first read from a body chunk. */
static bool starts_request(const uint8_t *d, size_t n)
{
	size_t i = 0;

	while (i < n && i < 16 && d[i] >= 'A' && d[i] <= 'Z')
		i++;
	return i > 0 && i + 1 < n && d[i] == ' ' && (d[i + 1] == '/' || d[i + 1] == '*');
}

static int on_data(struct tg_pipeline *p, const struct tg_ev_data *e, size_t size)
{
	struct tg_segment seg;
	struct conn *c;

	if (size < sizeof(*e) + (size_t)e->head_len + e->tail_len || e->head_len > e->len ||
	    e->tail_len > TG_TAIL_MAX || (e->tail_len && e->head_len + e->tail_len > e->len) ||
	    (e->dir != TG_DIR_IN && e->dir != TG_DIR_OUT))
		return -EBADMSG;
	p->stats.data_events++;
	c = tg_u64map__get(&p->conns, e->conn_id);
	if (!c) {
		p->stats.unknown_conn++;
		return 0;
	}
	check_seq(p, c, e->seq);
	if (c->role == TG_ROLE_CLIENT && !c->sql) {
		if (!c->ignored)
			net_segment(p, c, e);
		return 0;
	}
	if (!c->sql && (!c->http || tg_http__abandoned(c->http)))
		return 0;
	seg.ts_ns = e->hdr.ts_ns;
	seg.task_key = e->task_key;
	seg.tid = e->hdr.tid;
	seg.dir = e->dir;
	seg.len = e->len;
	seg.head = e->data;
	seg.head_len = e->head_len;
	seg.tail = e->data + e->head_len;
	seg.tail_len = e->tail_len;
	if (c->sql) {
		if (e->flags & TG_DATA_CIPHER)
			tg_sqltrack__encrypted(c->sql, seg.ts_ns); /* its plaintext: TG_EV_TLS */
		else
			tg_sqltrack__feed(c->sql, &seg);
		return 0;
	}
	if (e->dir == TG_DIR_IN)
		tg_taskcpu__server_read(p->tc, &e->hdr, c->conn_id,
					starts_request(e->data, e->head_len));
	p->feeding = e;
	tg_http__feed(c->http, &seg);
	p->feeding = NULL;
	return 0;
}

/* Plaintext of the TLS PostgreSQL connection conn_id: to its parser. */
static void feed_tls(struct tg_pipeline *p, const struct tg_ev_tls *e, uint64_t conn_id)
{
	struct conn *c = tg_u64map__get(&p->conns, conn_id);
	struct tg_segment seg = {.ts_ns = e->hdr.ts_ns,
				 .task_key = e->task_key,
				 .tid = e->hdr.tid,
				 .dir = e->dir,
				 .len = e->len,
				 .head = e->data,
				 .head_len = e->head_len};

	if (!c || !c->sql) {
		p->stats.unknown_conn++;
		return;
	}
	tg_sqltrack__feed_tls(c->sql, &seg);
}

/* Held events of an SSL object go to the connection of the event that
 * named it (p->feeding_tls). */
static void feed_held_tls(void *ctx, const struct tg_ev_tls *e, size_t size)
{
	struct tg_pipeline *p = ctx;

	(void)size;
	feed_tls(p, e, p->feeding_tls->conn_id);
}

static int on_tls(struct tg_pipeline *p, const struct tg_ev_tls *e, size_t size)
{
	if (size < sizeof(*e) + (size_t)e->head_len || e->head_len > e->len ||
	    (e->dir != TG_DIR_IN && e->dir != TG_DIR_OUT))
		return -EBADMSG;
	p->stats.tls_events++;
	if (!e->conn_id) {
		tg_tlshold__put(p->tls, e, size);
		return 0;
	}
	if (tg_tlshold__held(p->tls)) {
		p->feeding_tls = e;
		tg_tlshold__release(p->tls, e->hdr.pid, e->ssl, feed_held_tls, p);
		p->feeding_tls = NULL;
	}
	feed_tls(p, e, e->conn_id);
	return 0;
}

static int on_close(struct tg_pipeline *p, const struct tg_ev_close *e)
{
	struct conn *c = tg_u64map__get(&p->conns, e->conn_id);

	if (!c)
		return 0;
	/* close.seq is the next data seq: a mismatch means data was lost. */
	if (c->seq_known && e->seq != c->next_seq) {
		p->stats.gaps++;
		if (c->http)
			tg_http__gap(c->http);
		if (c->sql)
			tg_sqltrack__gap(c->sql);
	}
	conn_close(p, c, e->hdr.ts_ns);
	return 0;
}

/* A traced process exited: its connections are gone with it. */
static void close_pid(struct tg_pipeline *p, uint32_t pid, uint64_t ts_ns)
{
	size_t pos = 0;
	uint64_t key;
	void *val;

	while (tg_u64map__next(&p->conns, &pos, &key, &val)) {
		struct conn *c = val;

		if (c->pid == pid)
			conn_close(p, c, ts_ns);
	}
}

static int text_event(const struct tg_ev_text *e, size_t size, const char **text)
{
	size_t n = size - sizeof(*e);

	if (n == 0 || memchr(e->text, '\0', n) == NULL)
		return -EBADMSG;
	*text = e->text;
	return 0;
}

int tg_pipeline__event(struct tg_pipeline *p, const void *ev, size_t size)
{
	const struct tg_ev_hdr *h = ev;
	const char *text;
	int err = 0;

	p->stats.events++;
	if (size < sizeof(*h) || h->size != size) {
		err = -EBADMSG;
		goto out;
	}
	switch (h->type) {
	case TG_EV_CONN:
		err = size < sizeof(struct tg_ev_conn) ? -EBADMSG : on_conn(p, ev);
		break;
	case TG_EV_CLOSE:
		err = size < sizeof(struct tg_ev_close) ? -EBADMSG : on_close(p, ev);
		break;
	case TG_EV_DATA:
		err = size < sizeof(struct tg_ev_data) ? -EBADMSG : on_data(p, ev, size);
		break;
	case TG_EV_PROC: {
		const struct tg_ev_proc *e = ev;

		if (size < sizeof(*e)) {
			err = -EBADMSG;
			break;
		}
		if (e->kind == TG_PROC_EXIT) {
			close_pid(p, h->pid, h->ts_ns);
			tg_taskcpu__proc_exit(p->tc, h->pid, h->ts_ns);
		} else if (e->kind == TG_PROC_EXEC) {
			/* A new image: the old one's Contexts are gone (its closed
			 * connections came as TG_EV_CLOSE from the tracer). */
			tg_taskcpu__proc_exit(p->tc, h->pid, h->ts_ns);
		}
		break;
	}
	case TG_EV_TARGET:
		err = text_event(ev, size, &text);
		break;
	case TG_EV_ROUTES:
		err = text_event(ev, size, &text);
		if (!err && tg_pipeline__set_routes(p, h->pid, text))
			err = -EBADMSG;
		break;
	case TG_EV_IGNORE_PEER: {
		long port;

		err = text_event(ev, size, &text);
		if (err)
			break;
		port = strtol(text, NULL, 10);
		if (port <= 0 || port > 65535) {
			err = -EBADMSG;
			break;
		}
		tg_pipeline__ignore_peer_port(p, (uint16_t)port);
		break;
	}
	case TG_EV_DROPS:
		err = size < sizeof(struct tg_ev_drops) ? -EBADMSG : 0;
		break;
	case TG_EV_SAMPLE: /* taken by the session's profile (profile.h) */
		err = size < sizeof(struct tg_ev_sample) ? -EBADMSG : 0;
		break;
	case TG_EV_PYSYM:
		err = text_event(ev, size, &text);
		break;
	case TG_EV_TLS:
		err = size < sizeof(struct tg_ev_tls) ? -EBADMSG : on_tls(p, ev, size);
		break;
	case TG_EV_TASK:
	case TG_EV_GC:
		err = tg_taskcpu__event(p->tc, ev, size);
		break;
	default:
		err = -EBADMSG;
	}
	/* Every other kernel event tells its thread's on-CPU time (taskcpu.h). */
	if (!err && h->type >= TG_EV_CONN && h->type <= TG_EV_SAMPLE)
		tg_taskcpu__point(p->tc, h);
	if (!err && p->cfg.on_meta &&
	    (h->type == TG_EV_PROC || h->type == TG_EV_TARGET || h->type == TG_EV_DROPS))
		p->cfg.on_meta(p->cfg.ctx, ev, size);
out:
	if (err == -EBADMSG)
		p->stats.malformed++;
	return err == -EBADMSG ? err : 0;
}

void tg_pipeline__finish(struct tg_pipeline *p, uint64_t ts_ns)
{
	p->tls_held_at_end = tg_tlshold__held(p->tls);
	size_t pos = 0;
	uint64_t key;
	void *val;

	while (tg_u64map__next(&p->conns, &pos, &key, &val))
		conn_close(p, val, ts_ns);
	tg_sqltrack__flush(p->sql);
	tg_taskcpu__flush(p->tc);
}

void tg_pipeline__stats(const struct tg_pipeline *p, struct tg_pipeline_stats *out)
{
	*out = p->stats;
	out->tls_dropped = tg_tlshold__dropped(p->tls) + p->tls_held_at_end;
}

void tg_pipeline__task_stats(const struct tg_pipeline *p, struct tg_taskcpu_stats *out)
{
	tg_taskcpu__stats(p->tc, out);
}
