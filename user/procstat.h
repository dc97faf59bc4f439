/* SPDX-License-Identifier: MIT */
/*
 * A process's resource figures from /proc: resident set size, CPU time used
 * (user + system) and thread count. `timeglass trace` samples every live
 * target with it once a second into process_stats (docs/schema.md,
 * "Version 5").
 */
#ifndef TG_PROCSTAT_H
#define TG_PROCSTAT_H

#include <stdint.h>

struct tg_procstat {
	uint64_t rss_bytes; /* resident pages (/proc/PID/statm) x page size */
	uint64_t cpu_ns;    /* utime + stime (/proc/PID/stat), clock ticks converted to ns */
	uint32_t threads;   /* num_threads (/proc/PID/stat) */
};

/* Read pid's figures into *out. Returns 0, or -errno (-ENOENT: no such
 * process, e.g. it exited; -EINVAL: a file could not be parsed). */
int tg_procstat__read(uint32_t pid, struct tg_procstat *out);

/* Parse the texts of /proc/PID/stat and /proc/PID/statm with the given page
 * size (bytes) and clock ticks per second. The command name in stat may hold
 * spaces and parentheses. Returns 0 or -EINVAL. */
int tg_procstat__parse(const char *stat, const char *statm, long page_size, long ticks_per_s,
		       struct tg_procstat *out);

#endif
