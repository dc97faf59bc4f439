/* SPDX-License-Identifier: MIT */
/*
 * Resource figures of a process from /proc (procstat.h).
 *
 * Design: two small reads per call (stat, statm), no state. In stat the
 * command name sits in parentheses and may itself hold spaces and ')', so
 * fields are counted from the last ')': after it come state (field 3), ...,
 * utime (14), stime (15), ..., num_threads (20). Ticks are converted with
 * sysconf(_SC_CLK_TCK), resident pages with the page size.
 */
#include "procstat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STAT_FIELD_UTIME 14
#define STAT_FIELD_STIME 15
#define STAT_FIELD_THREADS 20

/* Read a small /proc file into buf (NUL-terminated). Returns 0 or -errno. */
static int read_small(const char *path, char *buf, size_t cap)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), e;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, cap - 1);
	e = errno;
	close(fd);
	if (n < 0)
		return e == ESRCH ? -ENOENT : -e;
	buf[n] = '\0';
	return 0;
}

int tg_procstat__parse(const char *stat, const char *statm, long page_size, long ticks_per_s,
		       struct tg_procstat *out)
{
	unsigned long long size, resident, v, utime = 0, stime = 0, threads = 0;
	const char *p;
	char *end;
	int field;

	if (!stat || !statm || !out || page_size <= 0 || ticks_per_s <= 0)
		return -EINVAL;
	if (sscanf(statm, "%llu %llu", &size, &resident) != 2)
		return -EINVAL;
	p = strrchr(stat, ')');
	if (!p)
		return -EINVAL;
	p++;
	/* p is at " S ...": field 3 is the state, a letter; numbers follow */
	for (field = 3; field <= STAT_FIELD_THREADS; field++) {
		while (*p == ' ')
			p++;
		if (!*p)
			return -EINVAL;
		if (field == 3) {
			while (*p && *p != ' ')
				p++;
			continue;
		}
		v = strtoull(p, &end, 10); /* negative fields (nice) parse too, unused */
		if (end == p)
			return -EINVAL;
		p = end;
		if (field == STAT_FIELD_UTIME)
			utime = v;
		else if (field == STAT_FIELD_STIME)
			stime = v;
		else if (field == STAT_FIELD_THREADS)
			threads = v;
	}
	out->rss_bytes = (uint64_t)resident * (uint64_t)page_size;
	/* ticks -> ns, without overflow for any realistic tick count */
	out->cpu_ns = (uint64_t)(utime + stime) / (uint64_t)ticks_per_s * 1000000000ULL +
		      (uint64_t)(utime + stime) % (uint64_t)ticks_per_s * 1000000000ULL /
			  (uint64_t)ticks_per_s;
	out->threads = (uint32_t)threads;
	return 0;
}

int tg_procstat__read(uint32_t pid, struct tg_procstat *out)
{
	char path[64], stat[1024], statm[256];
	int ret;

	if (!out || !pid)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	ret = read_small(path, stat, sizeof(stat));
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/proc/%u/statm", pid);
	ret = read_small(path, statm, sizeof(statm));
	if (ret)
		return ret;
	return tg_procstat__parse(stat, statm, sysconf(_SC_PAGESIZE), sysconf(_SC_CLK_TCK), out);
}
