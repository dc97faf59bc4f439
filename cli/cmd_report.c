/* SPDX-License-Identifier: MIT */
/* `timeglass report`: print a run's report from a database. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "report.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: timeglass report [--db FILE] [--format text|json|markdown] [--run ID]\n"
		"                        [--slowest N] [--n-plus-one N] [--slow-sql-ms MS]\n\n"
		"Print the report of a run (default: the latest) of the database FILE\n"
		"(default ./timeglass.db): run summary with dropped events, per-endpoint count,\n"
		"errors, throughput and p50/p90/p95/p99/max latency, and the slowest requests.\n"
		"The JSON shape is documented in docs/report.md.\n");
}

int cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"format", required_argument, NULL, 'f'},
	    {"run", required_argument, NULL, 'r'},
	    {"slowest", required_argument, NULL, 's'},
	    {"n-plus-one", required_argument, NULL, 'n'},
	    {"slow-sql-ms", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct tg_report_opts ro = {.format = TG_REPORT_TEXT, .run_id = 0, .slowest = 10};
	const char *db = "timeglass.db";
	char err[512] = "";
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 'f':
			if (tg_report__parse_format(optarg, &ro.format)) {
				fprintf(stderr,
					"timeglass report: unknown format '%s' (text, json, "
					"markdown)\n",
					optarg);
				return TG_EXIT_USAGE;
			}
			break;
		case 'r':
			ro.run_id = strtoll(optarg, &end, 10);
			if (*end || ro.run_id <= 0) {
				fprintf(stderr,
					"timeglass report: --run needs a positive run id\n");
				return TG_EXIT_USAGE;
			}
			break;
		case 's':
			ro.slowest = (int)strtol(optarg, &end, 10);
			if (*end || ro.slowest < 0) {
				fprintf(stderr, "timeglass report: --slowest needs a count\n");
				return TG_EXIT_USAGE;
			}
			break;
		case 'n':
			ro.n_plus_one = (int)strtol(optarg, &end, 10);
			if (*end || ro.n_plus_one < 2) {
				fprintf(stderr,
					"timeglass report: --n-plus-one needs a count >= 2\n");
				return TG_EXIT_USAGE;
			}
			break;
		case 'S':
			ro.slow_sql_ms = strtod(optarg, &end);
			if (*end || ro.slow_sql_ms <= 0) {
				fprintf(stderr,
					"timeglass report: --slow-sql-ms needs a positive time\n");
				return TG_EXIT_USAGE;
			}
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
		fprintf(stderr, "timeglass report: unexpected argument '%s'\n", argv[optind]);
		return TG_EXIT_USAGE;
	}
	if (tg_report__write(db, &ro, stdout, err, sizeof(err)) != 0) {
		fprintf(stderr, "timeglass report: %s\n", err);
		return TG_EXIT_FAIL;
	}
	return TG_EXIT_OK;
}
