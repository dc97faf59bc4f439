/* SPDX-License-Identifier: MIT */
/* One logging path with levels. libbpf's messages are routed here, demoted one level. */
#ifndef TG_LOG_H
#define TG_LOG_H

enum tg_log_level { TG_LOG_ERROR = 0, TG_LOG_WARN, TG_LOG_INFO, TG_LOG_DEBUG };

/* Messages at or below this level are printed to stderr (default TG_LOG_WARN). */
void tg_log__set_level(enum tg_log_level level);
enum tg_log_level tg_log__level(void);

/* Print "timeglass: <level>: message\n" to stderr when level is enabled. */
void tg_log(enum tg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tg_err(...) tg_log(TG_LOG_ERROR, __VA_ARGS__)
#define tg_warn(...) tg_log(TG_LOG_WARN, __VA_ARGS__)
#define tg_info(...) tg_log(TG_LOG_INFO, __VA_ARGS__)
#define tg_debug(...) tg_log(TG_LOG_DEBUG, __VA_ARGS__)

#endif
