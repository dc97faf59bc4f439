/* SPDX-License-Identifier: MIT */
/*
 * `timeglass flamegraph`: a run's Python CPU samples of one endpoint, one
 * request or the whole run as a flame graph (SVG, folded text or speedscope),
 * read from the database (profile_store.h) and drawn by flamegraph.h.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cli.h"
#include "flamegraph.h"
#include "profile_store.h"

enum fg_format { FMT_SVG, FMT_FOLDED, FMT_SPEEDSCOPE };

static void usage(FILE *out)
{
	fprintf(out,
		"usage: timeglass flamegraph [--db FILE] [--run ID]\n"
		"                            [--route ROUTE [--method METHOD] | --request ID]\n"
		"                            [--format svg|folded|speedscope] [-o FILE]\n\n"
		"Draw the Python CPU samples of an endpoint, a request or (by default) the whole\n"
		"run as a flame graph. Needs a trace with sampling on (trace --sample-hz, default\n"
		"99). Each sample stands for about 1/N s of CPU: the graph is an estimate.\n\n"
		"options:\n"
		"  --db FILE        database (default ./timeglass.db)\n"
		"  --run ID         run (default: the latest)\n"
		"  --route ROUTE    one endpoint: its route template, e.g. /items/{id}\n"
		"  --method METHOD  with --route: only this method (default: all)\n"
		"  --request ID     one request (its id in the database / dashboard)\n"
		"  --format FMT     svg (default, interactive), folded, speedscope (JSON)\n"
		"  -o FILE          write to FILE (default: standard output)\n");
}

static int parse_id(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v <= 0)
		return -EINVAL;
	*out = v;
	return 0;
}

static int64_t query_int(sqlite3 *db, const char *sql, int64_t arg, int64_t dflt)
{
	sqlite3_stmt *st;
	int64_t v = dflt;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL))
		return dflt;
	sqlite3_bind_int64(st, 1, arg);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* "METHOD ROUTE-or-target" of a request, into buf. */
static void request_label(sqlite3 *db, int64_t id, char *buf, size_t len)
{
	sqlite3_stmt *st;

	snprintf(buf, len, "?");
	if (sqlite3_prepare_v2(db,
			       "SELECT method, coalesce(route, path) FROM requests"
			       " WHERE id = ?",
			       -1, &st, NULL))
		return;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(buf, len, "%s %s", (const char *)sqlite3_column_text(st, 0),
			 (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
}

static int write_out(const struct tg_fg *fg, enum fg_format fmt, const char *path,
		     const char *title, const char *subtitle)
{
	struct tg_fg_svg_opts o = {.title = title, .subtitle = subtitle};
	FILE *out = path ? fopen(path, "w") : stdout;
	int ret;

	if (!out) {
		fprintf(stderr, "timeglass flamegraph: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (fmt == FMT_FOLDED)
		ret = tg_fg__write_folded(fg, out);
	else if (fmt == FMT_SPEEDSCOPE)
		ret = tg_fg__write_speedscope(fg, out, title);
	else
		ret = tg_fg__write_svg(fg, out, &o);
	if (path) {
		if (fclose(out) && !ret)
			ret = -EIO;
	} else if (fflush(out) && !ret) {
		ret = -EIO;
	}
	if (ret)
		fprintf(stderr, "timeglass flamegraph: cannot write the graph: %s\n",
			strerror(-ret));
	return ret;
}

int cmd_flamegraph(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"run", required_argument, NULL, 'r'},
	    {"route", required_argument, NULL, 'R'},
	    {"method", required_argument, NULL, 'm'},
	    {"request", required_argument, NULL, 'q'},
	    {"format", required_argument, NULL, 'f'},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *db_path = "timeglass.db", *route = NULL, *method = NULL, *out_path = NULL;
	char title[512], subtitle[160], label[300];
	enum fg_format fmt = FMT_SVG;
	int64_t run = 0, request = 0, hz;
	struct tg_fg *fg = NULL;
	sqlite3 *db = NULL;
	uint64_t total = 0;
	int c, ret, rc = TG_EXIT_FAIL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			db_path = optarg;
			break;
		case 'r':
			if (parse_id(optarg, &run)) {
				fprintf(stderr, "timeglass flamegraph: bad --run '%s'\n", optarg);
				return TG_EXIT_USAGE;
			}
			break;
		case 'R':
			route = optarg;
			break;
		case 'm':
			method = optarg;
			break;
		case 'q':
			if (parse_id(optarg, &request)) {
				fprintf(stderr, "timeglass flamegraph: bad --request '%s'\n",
					optarg);
				return TG_EXIT_USAGE;
			}
			break;
		case 'f':
			if (!strcmp(optarg, "svg"))
				fmt = FMT_SVG;
			else if (!strcmp(optarg, "folded"))
				fmt = FMT_FOLDED;
			else if (!strcmp(optarg, "speedscope"))
				fmt = FMT_SPEEDSCOPE;
			else {
				fprintf(stderr, "timeglass flamegraph: unknown format '%s'\n",
					optarg);
				return TG_EXIT_USAGE;
			}
			break;
		case 'o':
			out_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return TG_EXIT_OK;
		default:
			usage(stderr);
			return TG_EXIT_USAGE;
		}
	}
	if (optind < argc || (route && request) || (method && !route)) {
		fprintf(stderr, "timeglass flamegraph: %s\n",
			optind < argc	     ? "unexpected argument"
			: (route && request) ? "--route and --request exclude each other"
					     : "--method needs --route");
		usage(stderr);
		return TG_EXIT_USAGE;
	}
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		fprintf(stderr, "timeglass flamegraph: %s: cannot open: %s\n", db_path,
			db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(db, 5000);
	if (query_int(db, "PRAGMA user_version", 0, 0) < 3) {
		fprintf(stderr,
			"timeglass flamegraph: %s: no samples tables (not a TimeGlass database, "
			"or too old)\n",
			db_path);
		goto out;
	}
	if (!run && !request)
		run = query_int(db, "SELECT max(id) FROM runs WHERE ?1 = ?1", 0, 0);
	if (request) {
		run = query_int(db, "SELECT run_id FROM requests WHERE id = ?", request, 0);
		if (!run) {
			fprintf(stderr, "timeglass flamegraph: no request %" PRId64 " in %s\n",
				request, db_path);
			goto out;
		}
	}
	if (!run || !query_int(db, "SELECT count(*) FROM runs WHERE id = ?", run, 0)) {
		fprintf(stderr, "timeglass flamegraph: %s: no run%s\n", db_path,
			run ? " with that id" : "s");
		goto out;
	}
	fg = tg_fg__new();
	if (!fg)
		goto out;
	if (request) {
		ret = tg_pstore__load_request(db, request, fg, &total);
		request_label(db, request, label, sizeof(label));
		snprintf(title, sizeof(title), "Request %" PRId64 " (%s), run %" PRId64, request,
			 label, run);
	} else if (route) {
		ret = tg_pstore__load_endpoint(db, run, method, route, fg, &total);
		snprintf(title, sizeof(title), "%s %s, run %" PRId64, method ? method : "*", route,
			 run);
	} else {
		ret = tg_pstore__load_run(db, run, fg, &total);
		snprintf(title, sizeof(title), "All samples of run %" PRId64, run);
	}
	if (ret == -ENOENT) {
		if (request)
			fprintf(stderr, "timeglass flamegraph: no request %" PRId64 " in %s\n",
				request, db_path);
		else
			fprintf(stderr,
				"timeglass flamegraph: no requests for %s%s%s in run %" PRId64
				" of %s (see `timeglass report`)\n",
				method ? method : "", method ? " " : "", route, run, db_path);
		goto out;
	}
	if (ret) {
		fprintf(stderr, "timeglass flamegraph: %s: cannot read the samples: %s\n", db_path,
			ret == -EIO ? sqlite3_errmsg(db) : strerror(-ret));
		goto out;
	}
	hz = query_int(db, "SELECT sample_hz FROM runs WHERE id = ?", run, 0);
	if (hz > 0)
		snprintf(subtitle, sizeof(subtitle),
			 "CPU samples at %" PRId64 " Hz — each ≈ 1/%" PRId64 " s, an estimate", hz,
			 hz);
	else
		snprintf(subtitle, sizeof(subtitle),
			 "CPU samples (rate unknown) — each an estimate");
	if (!total)
		fprintf(stderr,
			"timeglass flamegraph: no samples%s (was the trace run with --sample-hz 0, "
			"or too short?)\n",
			hz > 0 ? "" : " and no sampling rate recorded");
	if (write_out(fg, fmt, out_path, title, subtitle))
		goto out;
	rc = TG_EXIT_OK;
out:
	tg_fg__free(fg);
	sqlite3_close(db);
	return rc;
}
