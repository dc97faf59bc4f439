/* SPDX-License-Identifier: MIT */
/*
 * Scrubbing secrets out of captured bytes before they are written to a
 * recording: the values of Authorization, Proxy-Authorization, Cookie and
 * Set-Cookie headers, and (unless kept) query-string values in a request
 * line, are overwritten with '*' in place. Lengths never change, so framing
 * and byte counts replay exactly. Best effort on what is visible in one
 * buffer: a header name split across two reads is not recognised.
 */
#ifndef TG_SCRUB_H
#define TG_SCRUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Scrub buf[0..len) in place. Returns the number of bytes overwritten. */
size_t tg_scrub__http(uint8_t *buf, size_t len, bool keep_query_values);

#endif
