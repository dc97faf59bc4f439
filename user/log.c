/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static enum tg_log_level current_level = TG_LOG_WARN;

void tg_log__set_level(enum tg_log_level level)
{
	current_level = level;
}

enum tg_log_level tg_log__level(void)
{
	return current_level;
}

void tg_log(enum tg_log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	va_list ap;

	if (level > current_level)
		return;
	fprintf(stderr, "timeglass: %s: ", names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
