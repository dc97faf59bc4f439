/* SPDX-License-Identifier: MIT */
/*
 * String helpers that do not go through the dynamic linker's `strnlen`:
 * libpg_query.so exports PostgreSQL's own byte-at-a-time strnlen, which
 * interposes glibc's vectorised one for the whole process (it was 15 % of the
 * protocol parser's time). memchr is glibc's.
 */
#ifndef TG_CSTR_H
#define TG_CSTR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The length of the string at s, at most max (strnlen's contract). */
static inline size_t tg_strnlen(const char *s, size_t max)
{
	const char *z;

	if (max > PTRDIFF_MAX) /* no object is larger (and GCC checks the bound) */
		max = PTRDIFF_MAX;
	z = memchr(s, 0, max);

	return z ? (size_t)(z - s) : max;
}

#endif
