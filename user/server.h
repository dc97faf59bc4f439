/* SPDX-License-Identifier: MIT */
/*
 * The dashboard server (`timeglass serve`, docs/serve.md): CivetWeb serving
 * the web/ assets embedded at build time and the JSON API of docs/api.md over
 * one TimeGlass database, opened read-only. Binds 127.0.0.1 by default; any
 * other address requires a token on every /api/ call.
 */
#ifndef TG_SERVER_H
#define TG_SERVER_H

#include <stdbool.h>
#include <stddef.h>

struct tg_server_cfg {
	const char *db_path; /* the database; opened read-only per API call */
	const char *listen;  /* "ADDR:PORT" (IPv4), "[ADDR]:PORT" (IPv6); port 0 = any free */
	const char *token;   /* the API token; NULL or "" = none */
	bool require_token;  /* check the token even on a loopback address */
	bool live;	     /* /api/status "live": a tracer writes this database */
	int threads;	     /* worker threads; 0 = 16 */
};

struct tg_server;

/* True when listen ("ADDR:PORT") names a loopback address (127.0.0.0/8,
 * localhost, [::1]). */
bool tg_server__is_loopback(const char *listen);

/* Fill buf with a fresh token: 32 hex digits from /dev/urandom (len >= 33).
 * Returns 0 or -errno. */
int tg_server__gen_token(char *buf, size_t len);

/* Apply the token policy to cfg: a token given is always checked; a
 * non-loopback listen address always needs one, generated into buf (len >= 33)
 * when none was given. Returns 0, or -errno when no token could be made. */
int tg_server__apply_token_policy(struct tg_server_cfg *cfg, char *buf, size_t len);

/* Start serving cfg (copied). A non-loopback listen address without a token
 * is refused (-EINVAL). The database is not opened here: a missing file is
 * reported by the API (500) so a server can start before the tracer creates
 * it. Returns NULL with errno set and a message in err on failure. */
struct tg_server *tg_server__start(const struct tg_server_cfg *cfg, char *err, size_t errlen);

/* The TCP port actually listened on (useful with port 0), or -1. */
int tg_server__port(const struct tg_server *s);

/* Stop the server (waits for requests in progress). Accepts NULL. */
void tg_server__stop(struct tg_server *s);

/* Start, then serve until SIGINT or SIGTERM, then stop. For `serve` and for
 * a forked, privilege-dropped child of `trace` (cfg->live = true). Returns 0
 * or -errno (a message is logged). */
int tg_server__run_forever(const struct tg_server_cfg *cfg);

#endif
