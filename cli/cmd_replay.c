/* SPDX-License-Identifier: MIT */
/*
 * `timeglass replay FILE --db DB`: rebuild a database from a recording. The
 * events go through the same session (pipeline + store) as a live trace, so
 * a recording is also a bug report and a benchmark input. A truncated or
 * corrupt recording keeps everything before the bad point and says where.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "pipeline.h"
#include "record.h"
#include "session.h"
#include "store.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: timeglass replay FILE [--db DB] [--capture-query-values] "
		"[--capture-sql-values]\n"
		"                        [--pg-port PORT]... [--stats]\n\n"
		"Rebuild requests from FILE (made by `timeglass trace --record FILE`) into DB\n"
		"(default ./timeglass.db) as a new run. --pg-port: the PostgreSQL ports the trace\n"
		"used (default 5432). --stats prints events/s.\n");
}

int cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"capture-query-values", no_argument, NULL, 'q'},
	    {"stats", no_argument, NULL, 's'},
	    {"pg-port", required_argument, NULL, 'P'},
	    {"capture-sql-values", no_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct tg_session_cfg cfg = {.db_path = "timeglass.db"};
	struct tg_pipeline_stats ps;
	struct tg_store_stats ss;
	struct tg_session s;
	struct tg_replay *r;
	struct timespec t0, t1, tf;
	const char *file;
	char err[512] = "", targets[600];
	const void *ev;
	size_t size;
	uint64_t n = 0;
	uint16_t pg[16];
	size_t npg = 0;
	int c, ret, stats = 0, status = TG_EXIT_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			cfg.db_path = optarg;
			break;
		case 'q':
			cfg.keep_query_values = true;
			break;
		case 's':
			stats = 1;
			break;
		case 'S':
			cfg.keep_sql_values = true;
			break;
		case 'P': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v <= 0 || v > 65535 || npg == sizeof(pg) / sizeof(pg[0])) {
				fprintf(stderr, "timeglass replay: bad --pg-port '%s'\n", optarg);
				return TG_EXIT_USAGE;
			}
			pg[npg++] = (uint16_t)v;
			cfg.pg_ports = pg;
			cfg.npg_ports = npg;
			break;
		}
		case 'h':
			usage(stdout);
			return TG_EXIT_OK;
		default:
			usage(stderr);
			return TG_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return TG_EXIT_USAGE;
	}
	file = argv[optind];
	r = tg_replay__open(file);
	if (!r) {
		fprintf(stderr, "timeglass replay: %s: %s\n", file,
			errno == EBADMSG ? "not a timeglass recording (or from another version)"
					 : strerror(errno));
		return TG_EXIT_FAIL;
	}
	snprintf(targets, sizeof(targets), "replay of %s", file);
	cfg.targets = targets;
	cfg.mono_to_epoch_ns = tg_replay__mono_to_epoch(r);
	clock_gettime(CLOCK_REALTIME, &t0);
	cfg.started_ns = (uint64_t)t0.tv_sec * 1000000000ULL + (uint64_t)t0.tv_nsec;
	if (tg_session__open(&s, &cfg, err, sizeof(err))) {
		fprintf(stderr, "timeglass replay: %s\n", err);
		tg_session__close(&s);
		tg_replay__close(r);
		return TG_EXIT_FAIL;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((ret = tg_replay__next(r, &ev, &size)) == 1) {
		tg_session__event(&s, ev, size);
		n++;
	}
	if (ret < 0) {
		fprintf(
		    stderr,
		    "timeglass replay: %s: truncated or corrupt after event %llu; kept what came "
		    "before\n",
		    file, (unsigned long long)n);
		status = TG_EXIT_FAIL;
	}
	tg_pipeline__stats(s.pipe, &ps);
	/* Streaming ends when every row is committed; closing the run then builds
	 * the indexes kept out of the hot path (docs/schema.md), timed apart. */
	tg_pipeline__finish(s.pipe, tg_session__mono_now());
	tg_store__flush(s.store);
	clock_gettime(CLOCK_MONOTONIC, &tf);
	tg_store__stats(s.store, &ss);
	if (tg_session__close(&s)) {
		fprintf(stderr, "timeglass replay: could not finish the database\n");
		status = TG_EXIT_FAIL;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	tg_replay__close(r);
	if (stats) {
		double secs =
		    (double)(tf.tv_sec - t0.tv_sec) + (double)(tf.tv_nsec - t0.tv_nsec) / 1e9;
		double fin =
		    (double)(t1.tv_sec - tf.tv_sec) + (double)(t1.tv_nsec - tf.tv_nsec) / 1e9;

		printf("events %llu requests %llu malformed %llu gaps %llu seconds %.3f events/s "
		       "%.0f end_run_seconds %.3f batches %llu\n",
		       (unsigned long long)n, (unsigned long long)ps.requests,
		       (unsigned long long)ps.malformed, (unsigned long long)ps.gaps, secs,
		       secs > 0 ? (double)n / secs : 0.0, fin, (unsigned long long)ss.batches);
	}
	return status;
}
