/* SPDX-License-Identifier: MIT */
/*
 * The dashboard server (server.h, docs/serve.md).
 *
 * Design: CivetWeb with one request handler per API area, registered from a
 * route table in a loop, plus a catch-all for the embedded assets. An API
 * call checks the method and the token (constant-time), opens the database
 * read-only for itself (a few tens of microseconds; no connection shared
 * between CivetWeb's threads), runs the handler (api_*.c), which returns the
 * HTTP status and a cJSON answer, and sends it with Cache-Control: no-store.
 * Assets are stored gzip-compressed (assets.h) and sent as they are when the
 * client accepts gzip, inflated otherwise.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <civetweb.h>
#include <zlib.h>

#include "api.h"
#include "assets.h"
#include "log.h"

struct tg_server {
	struct tg_server_cfg cfg; /* strings below are owned copies */
	char *db_path, *listen, *token;
	struct mg_context *mg;
};

struct route {
	const char *prefix;
	api_handler fn;
};

static const struct route routes[] = {
    {"/api/status", api_status},     {"/api/runs", api_runs},
    {"/api/overview", api_overview}, {"/api/endpoints", api_endpoints},
    {"/api/requests", api_requests}, {"/api/flamegraph", api_flamegraph},
    {"/api/sql", api_sql},	     {"/api/process", api_process},
};

bool tg_server__is_loopback(const char *listen)
{
	char host[64];
	const char *colon, *end;
	size_t n;

	if (!listen)
		return false;
	if (listen[0] == '[') {
		end = strchr(listen, ']');
		if (!end)
			return false;
		n = (size_t)(end - listen - 1);
		if (n >= sizeof(host))
			return false;
		memcpy(host, listen + 1, n);
		host[n] = '\0';
		return !strcmp(host, "::1");
	}
	colon = strrchr(listen, ':');
	if (!colon)
		return false; /* a bare port listens on every interface */
	n = (size_t)(colon - listen);
	if (n >= sizeof(host))
		return false;
	memcpy(host, listen, n);
	host[n] = '\0';
	return !strcmp(host, "localhost") || !strncmp(host, "127.", 4);
}

int tg_server__gen_token(char *buf, size_t len)
{
	unsigned char raw[16];
	ssize_t n;
	size_t i;
	int fd;

	if (!buf || len < 2 * sizeof(raw) + 1)
		return -EINVAL;
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, raw, sizeof(raw));
	close(fd);
	if (n != (ssize_t)sizeof(raw))
		return -EIO;
	for (i = 0; i < sizeof(raw); i++)
		snprintf(buf + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* Constant time in the content of given (its length leaks, not the token's
 * characters). */
static bool token_equal(const char *given, const char *want)
{
	size_t gl = strlen(given), wl = strlen(want), i;
	unsigned char d = gl != wl;

	for (i = 0; i < wl; i++)
		d |= (unsigned char)want[i] ^ (unsigned char)given[gl ? i % gl : 0];
	return d == 0;
}

static bool authorized(struct mg_connection *conn, const struct tg_server *s)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *auth;
	char tok[128];
	int n;

	if (!s->cfg.require_token)
		return true;
	if (!s->token || !*s->token)
		return false;
	auth = mg_get_header(conn, "Authorization");
	if (auth && !strncasecmp(auth, "Bearer ", 7))
		return token_equal(auth + 7, s->token);
	if (ri->query_string) {
		n = mg_get_var(ri->query_string, strlen(ri->query_string), "token", tok,
			       sizeof(tok));
		if (n >= 0)
			return token_equal(tok, s->token);
	}
	return false;
}

static void send_body(struct mg_connection *conn, int status, const char *type, const char *extra,
		      const void *body, size_t len)
{
	mg_printf(conn,
		  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		  "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n%s\r\n",
		  status, mg_get_response_code_text(conn, status), type, len, extra ? extra : "");
	if (strcmp(mg_get_request_info(conn)->request_method, "HEAD") != 0 && len)
		mg_write(conn, body, len);
}

static int send_json(struct mg_connection *conn, int status, cJSON *o, const char *extra)
{
	char hdr[256];
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;

	snprintf(hdr, sizeof(hdr), "Cache-Control: no-store\r\n%s", extra ? extra : "");
	if (!text) {
		static const char oom[] = "{\"error\":\"out of memory\"}";

		send_body(conn, 500, "application/json", hdr, oom, sizeof(oom) - 1);
		return 500;
	}
	send_body(conn, status, "application/json; charset=utf-8", hdr, text, strlen(text));
	free(text);
	return status;
}

static int send_error(struct mg_connection *conn, int status, const char *msg, const char *extra)
{
	cJSON *o = cJSON_CreateObject();
	int ret;

	cJSON_AddStringToObject(o, "error", msg);
	ret = send_json(conn, status, o, extra);
	cJSON_Delete(o);
	return ret;
}

static struct tg_server *server_of(struct mg_connection *conn)
{
	return mg_get_request_info(conn)->user_data;
}

/* Non-JSON answers (the flame graph SVG) run only their own inline script. */
#define SVG_HEADERS                                                                                \
	"Cache-Control: no-store\r\nContent-Security-Policy: default-src 'none'; "                 \
	"script-src 'unsafe-inline'; style-src 'unsafe-inline'\r\n"

static int api_handler_cb(struct mg_connection *conn, void *cbdata)
{
	const struct route *r = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct tg_server *s = server_of(conn);
	struct api_ctx c = {.cfg = &s->cfg, .query = ri->query_string};
	int status, rc;

	if (strcmp(ri->request_method, "GET") != 0)
		return send_error(conn, 405, "only GET is supported", "Allow: GET\r\n");
	if (!authorized(conn, s))
		return send_error(conn, 401, "a token is required: Authorization: Bearer TOKEN",
				  "WWW-Authenticate: Bearer\r\n");
	if (!r)
		return send_error(conn, 404, "no such API", NULL);
	c.rest = ri->local_uri + strlen(r->prefix);
	rc = sqlite3_open_v2(s->db_path, &c.db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		snprintf(c.err, sizeof(c.err), "cannot open %s: %s", s->db_path,
			 c.db ? sqlite3_errmsg(c.db) : sqlite3_errstr(rc));
		status = 500;
	} else {
		sqlite3_busy_timeout(c.db, 5000);
		status = r->fn(&c);
	}
	if (status == 200 && c.body)
		send_body(conn, status, c.body_type, SVG_HEADERS, c.body, c.body_len);
	else if (status == 200 && c.out)
		send_json(conn, status, c.out, NULL);
	else
		send_error(conn, status == 200 ? 500 : status, c.err[0] ? c.err : "error", NULL);
	cJSON_Delete(c.out);
	free(c.body);
	sqlite3_close(c.db);
	return status;
}

static bool accepts_gzip(struct mg_connection *conn)
{
	const char *ae = mg_get_header(conn, "Accept-Encoding");
	const char *p = ae ? strstr(ae, "gzip") : NULL;
	const char *q;

	if (!p)
		return false;
	p += 4;
	while (*p == ' ')
		p++;
	if (*p != ';')
		return true;
	/* "gzip;q=0" (or 0.0...) refuses it */
	q = strstr(p, "q=");
	return !q || strtod(q + 2, NULL) > 0;
}

static int inflate_asset(const struct tg_asset *a, unsigned char *out)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return -ENOMEM;
	z.next_in = (unsigned char *)a->gz;
	z.avail_in = (uInt)a->gz_len;
	z.next_out = out;
	z.avail_out = (uInt)a->len;
	rc = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	return rc == Z_STREAM_END && z.total_out == a->len ? 0 : -EIO;
}

static int asset_handler_cb(struct mg_connection *conn, void *cbdata)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *path = ri->local_uri;
	const struct tg_asset *a = NULL;
	static const char hdr_plain[] = "Cache-Control: no-cache\r\nVary: Accept-Encoding\r\n";
	static const char hdr_gz[] =
	    "Cache-Control: no-cache\r\nVary: Accept-Encoding\r\nContent-Encoding: gzip\r\n";
	unsigned char *buf;
	size_t i;

	(void)cbdata;
	if (strcmp(ri->request_method, "GET") != 0 && strcmp(ri->request_method, "HEAD") != 0)
		return send_error(conn, 405, "only GET is supported", "Allow: GET, HEAD\r\n");
	while (*path == '/')
		path++;
	if (!*path)
		path = "index.html";
	for (i = 0; i < tg_assets_count; i++)
		if (!strcmp(tg_assets[i].path, path))
			a = &tg_assets[i];
	if (!a) {
		send_body(conn, 404, "text/plain; charset=utf-8", NULL, "not found\n", 10);
		return 404;
	}
	if (accepts_gzip(conn)) {
		send_body(conn, 200, a->type, hdr_gz, a->gz, a->gz_len);
		return 200;
	}
	buf = malloc(a->len ? a->len : 1);
	if (!buf || inflate_asset(a, buf)) {
		free(buf);
		send_body(conn, 500, "text/plain; charset=utf-8", NULL, "asset error\n", 12);
		return 500;
	}
	send_body(conn, 200, a->type, hdr_plain, buf, a->len);
	free(buf);
	return 200;
}

static int log_cb(const struct mg_connection *conn, const char *msg)
{
	(void)conn;
	tg_warn("serve: %s", msg);
	return 1;
}

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void)
{
	mg_init_library(0);
}

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

/* "localhost:P" -> "127.0.0.1:P" (CivetWeb wants a numeric address). */
static char *listen_addr(const char *listen)
{
	char *out;

	if (!strncmp(listen, "localhost:", 10)) {
		if (asprintf(&out, "127.0.0.1:%s", listen + 10) < 0)
			return NULL;
		return out;
	}
	return strdup(listen);
}

struct tg_server *tg_server__start(const struct tg_server_cfg *cfg, char *err, size_t errlen)
{
	struct mg_callbacks cb = {.log_message = log_cb};
	struct mg_init_data init = {0};
	struct mg_error_data ed = {0};
	struct tg_server *s = NULL;
	char threads[16], mgerr[256] = "";
	const char *opts[16];
	unsigned code = 0;
	int ret = -EINVAL;
	size_t i, k = 0;

	if (!err)
		errlen = 0;
	if (!cfg || !cfg->db_path || !cfg->listen) {
		snprintf(err, errlen, "no database or listen address");
		goto fail;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->cfg = *cfg;
	s->db_path = strdup(cfg->db_path);
	s->listen = listen_addr(cfg->listen);
	s->token = dup_or_null(cfg->token);
	if (!s->db_path || !s->listen || (cfg->token && *cfg->token && !s->token)) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->cfg.db_path = s->db_path;
	s->cfg.listen = s->listen;
	s->cfg.token = s->token;
	if (!tg_server__is_loopback(s->listen))
		s->cfg.require_token = true;
	if (s->cfg.require_token && !s->token) {
		snprintf(err, errlen, "listening on %s needs a token (--token)", s->listen);
		goto fail;
	}
	pthread_once(&lib_once, lib_init);
	/* A browser opens up to 6 connections and CivetWeb keeps a thread on each
	 * kept-alive one until it idles out: with fewer threads than that, the page's
	 * module fetches waited ~500 ms in the queue (bench/page_load.mjs). */
	snprintf(threads, sizeof(threads), "%d", cfg->threads > 0 ? cfg->threads : 16);
	opts[k++] = "listening_ports";
	opts[k++] = s->listen;
	opts[k++] = "num_threads";
	opts[k++] = threads;
	opts[k++] = "enable_directory_listing";
	opts[k++] = "no";
	opts[k++] = "request_timeout_ms";
	opts[k++] = "30000";
	opts[k++] = "enable_keep_alive";
	opts[k++] = "yes";
	opts[k] = NULL;
	init.callbacks = &cb;
	init.user_data = s;
	init.configuration_options = opts;
	ed.code = &code;
	ed.text = mgerr;
	ed.text_buffer_size = sizeof(mgerr);
	s->mg = mg_start2(&init, &ed);
	if (!s->mg) {
		snprintf(err, errlen, "cannot listen on %s: %s", s->listen,
			 mgerr[0] ? mgerr : "CivetWeb failed to start");
		ret = -EADDRNOTAVAIL;
		goto fail;
	}
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		mg_set_request_handler(s->mg, routes[i].prefix, api_handler_cb, (void *)&routes[i]);
	/* "/api/" (not "/api"): CivetWeb matches prefixes, and "/api" would also catch "/api.js".
	 */
	mg_set_request_handler(s->mg, "/api/", api_handler_cb, NULL);
	mg_set_request_handler(s->mg, "/", asset_handler_cb, NULL);
	return s;

fail:
	tg_server__stop(s);
	errno = -ret;
	return NULL;
}

int tg_server__port(const struct tg_server *s)
{
	struct mg_server_port ports[4];
	int n;

	if (!s || !s->mg)
		return -1;
	n = mg_get_server_ports(s->mg, 4, ports);
	return n > 0 ? ports[0].port : -1;
}

void tg_server__stop(struct tg_server *s)
{
	if (!s)
		return;
	if (s->mg)
		mg_stop(s->mg);
	free(s->db_path);
	free(s->listen);
	free(s->token);
	free(s);
}

int tg_server__apply_token_policy(struct tg_server_cfg *cfg, char *buf, size_t len)
{
	int ret;

	cfg->require_token = cfg->token && *cfg->token;
	if (tg_server__is_loopback(cfg->listen))
		return 0;
	cfg->require_token = true;
	if (cfg->token && *cfg->token)
		return 0;
	ret = tg_server__gen_token(buf, len);
	if (ret)
		return ret;
	cfg->token = buf;
	return 0;
}

int tg_server__run_forever(const struct tg_server_cfg *cfg)
{
	struct tg_server *s;
	sigset_t set, old;
	char err[512] = "";
	int sig = 0, ret = 0;

	/* CivetWeb's threads inherit the mask: only this thread takes them. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	s = tg_server__start(cfg, err, sizeof(err));
	if (!s) {
		ret = -errno;
		tg_err("serve: %s", err);
		goto out;
	}
	tg_info("serve: dashboard on http://%s/", s->listen);
	while (sigwait(&set, &sig) != 0 || (sig != SIGINT && sig != SIGTERM))
		;
	tg_server__stop(s);
out:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}
