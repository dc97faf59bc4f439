/* SPDX-License-Identifier: MIT */
/*
 * Scrubbing secrets out of captured bytes before they are written to a
 * recording: the values of Authorization, Proxy-Authorization, Cookie and
 * Set-Cookie headers, and (unless kept) query-string values in a request
 * line, and PostgreSQL password messages, are overwritten with '*' in place. Lengths never change,
 * so framing and byte counts replay exactly. Best effort on what is visible in one buffer: a header
 * name split across two reads is not recognised.
 */
#ifndef TG_SCRUB_H
#define TG_SCRUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Scrub buf[0..len) in place. Returns the number of bytes overwritten. */
size_t tg_scrub__http(uint8_t *buf, size_t len, bool keep_query_values);

/* Scrub the bodies of PostgreSQL PasswordMessage / SASL responses ('p', whole
 * in the buffer, at most 64 KiB) among the frontend messages that
 * buf[0..len) starts with (what an app wrote to a
 * database connection, or handed to OpenSSL for one): the walk stops at the
 * first byte that cannot start a typed message. Returns the number of bytes
 * overwritten. */
size_t tg_scrub__pg(uint8_t *buf, size_t len);

#endif
