/* SPDX-License-Identifier: MIT */
/*
 * `timeglass report`: a run's summary, per-endpoint latency table and slowest
 * requests, read from the database, as text, JSON (shape in docs/report.md,
 * kept stable) or Markdown.
 */
#ifndef TG_REPORT_H
#define TG_REPORT_H

#include <stdint.h>
#include <stdio.h>

enum tg_report_format { TG_REPORT_TEXT = 0, TG_REPORT_JSON, TG_REPORT_MARKDOWN };

struct tg_report_opts {
	enum tg_report_format format;
	int64_t run_id;	    /* 0: the latest run */
	int slowest;	    /* how many slowest requests to list (default 10); 0: none, < 0: 10 */
	int n_plus_one;	    /* N+1 finding: same fingerprint this often in a request; 0: 5 */
	double slow_sql_ms; /* slow statement finding threshold; 0: 100 ms */
};

/* Write the report of one run of the database at db_path to out. Opens the
 * database read-only (works while a tracer writes to it). opts NULL: text,
 * latest run, 10 slowest. Returns 0, or -errno with a message in err
 * (-ENOENT: no such run / no run at all). */
int tg_report__write(const char *db_path, const struct tg_report_opts *opts, FILE *out, char *err,
		     size_t errlen);

/* Parse "text", "json" or "markdown" (also "md"). Returns 0 or -EINVAL. */
int tg_report__parse_format(const char *s, enum tg_report_format *out);

#endif
