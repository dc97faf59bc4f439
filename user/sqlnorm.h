/* SPDX-License-Identifier: MIT */
/*
 * SQL normalisation and fingerprinting for statement texts captured by
 * pgwire.c. Uses libpg_query (PostgreSQL's own parser); when it cannot parse
 * the text (truncated capture, non-SQL placeholder texts) a small lexer does
 * the same job approximately. Literal values must never be stored unless the
 * user asks for them: store the normalised text.
 *
 * libpg_query keeps a per-thread memory context; call tg_sql__thread_exit()
 * before a thread that used these functions ends if leak checkers matter.
 */
#ifndef TG_SQLNORM_H
#define TG_SQLNORM_H

#include <stddef.h>
#include <stdint.h>

/* Write sql with every literal (strings, numbers, dollar-quoted strings,
 * B''/X''/E'' strings) replaced by a $n parameter into out (size cap, always
 * NUL-terminated when cap > 0). Existing $n parameters are kept; new ones are
 * numbered after the highest existing one:
 * "SELECT * FROM t WHERE a = $1 AND b = 'x'" -> "... a = $1 AND b = $2".
 * Unparsable text goes through the fallback lexer (an unterminated string at
 * the end of a truncated text becomes one parameter: nothing after its quote is
 * kept). Returns 0, -EINVAL (NULL argument or cap == 0) or -ENOSPC (out holds a
 * truncated prefix). */
int tg_sql__normalize(const char *sql, char *out, size_t cap);

/* Store in *fp a stable 64-bit id grouping executions of the same statement:
 * libpg_query's fingerprint (ignores literal values, IN-list lengths,
 * whitespace, comments, case of keywords). When libpg_query cannot parse sql,
 * a 64-bit FNV-1a hash of the fallback lexer's output (literals and
 * parameters as "?", comments dropped, whitespace collapsed, ASCII lowered
 * outside quoted identifiers). The two never coincide for one text but may
 * differ between a complete and a truncated capture of the same statement.
 * Returns 0 or -EINVAL. */
int tg_sql__fingerprint(const char *sql, uint64_t *fp);

/* Release libpg_query's memory of the calling thread. */
void tg_sql__thread_exit(void);

#endif
