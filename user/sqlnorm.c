/* SPDX-License-Identifier: MIT */
/*
 * SQL normalisation and fingerprints (sqlnorm.h). libpg_query first; the
 * fallback is a one-pass lexer over the raw text that knows just enough SQL
 * to find literals: '...' strings ('' escapes, E'' backslash escapes, B/X/N/U&
 * prefixes), $tag$...$tag$ strings, numbers not part of identifiers, $n
 * parameters, "quoted identifiers", -- and block comments. Mode NORM rewrites
 * literals to $n; mode FP emits "?" for literals and parameters, drops
 * comments, collapses whitespace and lowers ASCII, to be hashed.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <pg_query.h>

#include "sqlnorm.h"

enum lex_mode { LEX_MAXPARAM, LEX_NORM, LEX_FP };

struct out {
	char *buf;
	size_t cap, len;
	bool full;
	uint64_t hash;
	enum lex_mode mode;
};

static void emit(struct out *o, const char *s, size_t n)
{
	if (o->mode == LEX_FP) {
		for (size_t i = 0; i < n; i++)
			o->hash = (o->hash ^ (uint8_t)s[i]) * 1099511628211ull;
		return;
	}
	if (o->mode != LEX_NORM)
		return;
	if (o->len + n >= o->cap) {
		n = o->cap - 1 - o->len;
		o->full = true;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static bool ident_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || (unsigned char)ch >= 0x80;
}

/* End of a $tag$ delimiter starting at s[i] == '$', or 0 if none. */
static size_t dollar_tag(const char *s, size_t i)
{
	size_t j = i + 1;

	if (isdigit((unsigned char)s[j]))
		return 0;
	while (s[j] && s[j] != '$' && ident_char(s[j]))
		j++;
	return s[j] == '$' ? j + 1 : 0;
}

static void literal(struct out *o, unsigned *next)
{
	char p[16];
	int n;

	if (o->mode == LEX_FP) {
		emit(o, "?", 1);
		return;
	}
	n = snprintf(p, sizeof(p), "$%u", ++*next);
	emit(o, p, (size_t)n);
}

/* Lex sql; LEX_MAXPARAM returns the highest $n seen. */
static unsigned lex(const char *s, struct out *o, unsigned next)
{
	size_t i = 0;
	unsigned maxp = 0;
	bool space = false;

	while (s[i]) {
		char ch = s[i];
		size_t j;

		if (isspace((unsigned char)ch)) {
			for (j = i; s[j] && isspace((unsigned char)s[j]); j++)
				;
			if (o->mode == LEX_FP)
				space = true;
			else
				emit(o, s + i, j - i);
			i = j;
			continue;
		}
		if ((ch == '-' && s[i + 1] == '-') || (ch == '/' && s[i + 1] == '*')) {
			const char *e = ch == '-' ? strchr(s + i, '\n') : strstr(s + i + 2, "*/");

			j = !e ? strlen(s) : ch == '-' ? (size_t)(e - s) : (size_t)(e - s) + 2;
			if (o->mode == LEX_FP)
				space = true; /* a comment separates tokens */
			else
				emit(o, s + i, j - i);
			i = j;
			continue;
		}
		if (space && o->mode == LEX_FP)
			emit(o, " ", 1);
		space = false;
		if (ch == '\'') {
			bool bs = i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e');

			for (j = i + 1; s[j]; j++) {
				if (bs && s[j] == '\\' && s[j + 1]) {
					j++;
				} else if (s[j] == '\'') {
					if (s[j + 1] != '\'')
						break;
					j++;
				}
			}
			literal(o, &next);
			i = s[j] ? j + 1 : j;
		} else if (ch == '"') {
			for (j = i + 1; s[j] && !(s[j] == '"' && s[j + 1] != '"');
			     j += s[j] == '"' ? 2 : 1)
				;
			j = s[j] ? j + 1 : j;
			emit(o, s + i, j - i);
			i = j;
		} else if (ch == '$' && isdigit((unsigned char)s[i + 1])) {
			unsigned v = 0;

			for (j = i + 1; isdigit((unsigned char)s[j]); j++)
				v = v < 100000 ? v * 10 + (unsigned)(s[j] - '0') : v;
			if (v > maxp)
				maxp = v;
			if (o->mode == LEX_FP)
				emit(o, "?", 1);
			else
				emit(o, s + i, j - i);
			i = j;
		} else if (ch == '$' && (j = dollar_tag(s, i))) {
			size_t tl = j - i;
			const char *e = NULL;

			for (size_t k = j; s[k]; k++) {
				if (s[k] == '$' && !strncmp(s + k, s + i, tl)) {
					e = s + k;
					break;
				}
			}
			literal(o, &next);
			i = e ? (size_t)(e - s) + tl : strlen(s);
		} else if (isdigit((unsigned char)ch) ||
			   (ch == '.' && isdigit((unsigned char)s[i + 1]))) {
			if (i > 0 && ident_char(s[i - 1])) {
				for (j = i; ident_char(s[j]); j++)
					;
				emit(o, s + i, j - i);
				i = j;
				continue;
			}
			for (j = i;
			     isalnum((unsigned char)s[j]) || s[j] == '.' || s[j] == '_' ||
			     ((s[j] == '+' || s[j] == '-') && (s[j - 1] == 'e' || s[j - 1] == 'E'));
			     j++)
				;
			literal(o, &next);
			i = j;
		} else if (ident_char(ch)) {
			bool prefix =
			    (s[i + 1] == '\'' && strchr("EeBbXxNn", ch)) ||
			    ((ch == 'U' || ch == 'u') && s[i + 1] == '&' && s[i + 2] == '\'');

			if (prefix) { /* string prefix: lexed with its quote next */
				i += ch == 'U' || ch == 'u' ? 2 : 1;
				continue;
			}
			for (j = i; ident_char(s[j]); j++)
				;
			if (o->mode == LEX_FP) {
				for (size_t k = i; k < j; k++) {
					char l = (char)tolower((unsigned char)s[k]);

					emit(o, &l, 1);
				}
			} else {
				emit(o, s + i, j - i);
			}
			i = j;
		} else {
			emit(o, s + i, 1);
			i++;
		}
	}
	return maxp;
}

int tg_sql__normalize(const char *sql, char *out, size_t cap)
{
	PgQueryNormalizeResult r;
	struct out o = {.buf = out, .cap = cap, .mode = LEX_MAXPARAM};
	unsigned maxp;

	if (!sql || !out || !cap)
		return -EINVAL;
	out[0] = '\0';
	r = pg_query_normalize(sql);
	if (!r.error && r.normalized_query) {
		size_t n = strlen(r.normalized_query);
		int ret = 0;

		if (n >= cap) {
			n = cap - 1;
			ret = -ENOSPC;
		}
		memcpy(out, r.normalized_query, n);
		out[n] = '\0';
		pg_query_free_normalize_result(r);
		return ret;
	}
	pg_query_free_normalize_result(r);
	maxp = lex(sql, &o, 0);
	o.mode = LEX_NORM;
	lex(sql, &o, maxp);
	return o.full ? -ENOSPC : 0;
}

int tg_sql__fingerprint(const char *sql, uint64_t *fp)
{
	PgQueryFingerprintResult r;
	struct out o = {.mode = LEX_FP, .hash = 14695981039346656037ull};

	if (!sql || !fp)
		return -EINVAL;
	r = pg_query_fingerprint(sql);
	if (!r.error) {
		*fp = r.fingerprint;
		pg_query_free_fingerprint_result(r);
		return 0;
	}
	pg_query_free_fingerprint_result(r);
	lex(sql, &o, 0);
	*fp = o.hash;
	return 0;
}

void tg_sql__thread_exit(void)
{
	pg_query_exit();
}
