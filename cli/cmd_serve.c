/* SPDX-License-Identifier: MIT */
/*
 * `timeglass serve`: the dashboard for a database (docs/serve.md). Drops root
 * first, migrates an older schema once (the only write), then serves the
 * file read-only until SIGINT/SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cli.h"
#include "log.h"
#include "privs.h"
#include "server.h"
#include "store.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: timeglass serve [--db FILE] [--listen ADDR:PORT] [--token TOKEN]\n\n"
		     "Serve the dashboard for the database FILE (default ./timeglass.db) on\n"
		     "http://ADDR:PORT/ (default 127.0.0.1:7070). Any address other than a\n"
		     "loopback one needs a token, asked for on every API call (Authorization:\n"
		     "Bearer TOKEN or ?token=TOKEN); one is generated and printed when not given.\n"
		     "Run as root, it drops to the sudo user (or nobody) before opening FILE.\n");
}

/* The schema version of path, opened read-only; -1 when unreadable. */
static int schema_version(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* A file from an older TimeGlass lacks the rollup tables: migrate it once. */
static int prepare_db(const char *path)
{
	struct tg_store *s;
	char err[512];
	int v;

	if (access(path, R_OK) != 0) {
		fprintf(stderr, "timeglass serve: cannot read %s: %s\n", path, strerror(errno));
		return -1;
	}
	v = schema_version(path);
	if (v < 0) {
		fprintf(stderr, "timeglass serve: %s is not a TimeGlass database\n", path);
		return -1;
	}
	if (v > TG_SCHEMA_VERSION) {
		fprintf(stderr,
			"timeglass serve: %s was made by a newer timeglass (schema version %d, "
			"this one knows up to %d)\n",
			path, v, TG_SCHEMA_VERSION);
		return -1;
	}
	if (v == TG_SCHEMA_VERSION)
		return 0;
	fprintf(stderr, "timeglass serve: upgrading %s to schema version %d (once)\n", path,
		TG_SCHEMA_VERSION);
	s = tg_store__open(path, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "timeglass serve: %s\n", err);
		return -1;
	}
	tg_store__close(s);
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"listen", required_argument, NULL, 'l'},
	    {"token", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct tg_server_cfg cfg = {.db_path = "timeglass.db", .listen = "127.0.0.1:7070"};
	char token[40];
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			cfg.db_path = optarg;
			break;
		case 'l':
			cfg.listen = optarg;
			break;
		case 't':
			if (!*optarg) {
				fprintf(stderr, "timeglass serve: --token needs a value\n");
				return TG_EXIT_USAGE;
			}
			cfg.token = optarg;
			break;
		case 'h':
			usage(stdout);
			return TG_EXIT_OK;
		default:
			usage(stderr);
			return TG_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "timeglass serve: unexpected argument '%s'\n", argv[optind]);
		return TG_EXIT_USAGE;
	}
	if (!strchr(cfg.listen, ':')) {
		fprintf(stderr,
			"timeglass serve: --listen needs ADDR:PORT (e.g. 127.0.0.1:7070)\n");
		return TG_EXIT_USAGE;
	}
	ret = tg_privs__drop_for_server();
	if (ret) {
		fprintf(stderr, "timeglass serve: cannot drop root privileges: %s\n",
			strerror(-ret));
		return TG_EXIT_FAIL;
	}
	if (prepare_db(cfg.db_path))
		return TG_EXIT_FAIL;
	if (tg_server__apply_token_policy(&cfg, token, sizeof(token))) {
		fprintf(stderr, "timeglass serve: cannot generate a token\n");
		return TG_EXIT_FAIL;
	}
	if (cfg.token == token)
		printf("token: %s\n", token);
	printf("timeglass: dashboard for %s on http://%s/%s%s\n", cfg.db_path, cfg.listen,
	       cfg.token ? "?token=" : "", cfg.token ? cfg.token : "");
	fflush(stdout);
	ret = tg_server__run_forever(&cfg);
	return ret ? TG_EXIT_FAIL : TG_EXIT_OK;
}
