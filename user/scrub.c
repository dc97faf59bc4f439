/* SPDX-License-Identifier: MIT */
/* In-place secret scrubbing of captured HTTP bytes (scrub.h). */
#include "scrub.h"

#include <string.h>
#include <strings.h>

static const char *const secret_headers[] = {
    "authorization:", "proxy-authorization:", "cookie:", "set-cookie:"};

/* Overwrite from p to the end of the line (CR or LF) with '*'. */
static size_t blank_to_eol(uint8_t *p, const uint8_t *end)
{
	size_t n = 0;

	while (p < end && *p != '\r' && *p != '\n') {
		if (*p != ' ' && *p != '\t') {
			*p = '*';
			n++;
		}
		p++;
	}
	return n;
}

/* A request line "METHOD SP target SP": blank query values in target. */
static size_t scrub_query(uint8_t *buf, size_t len)
{
	uint8_t *sp = memchr(buf, ' ', len < 32 ? len : 32), *end = buf + len, *p;
	size_t n = 0;
	bool in_value = false;

	if (!sp)
		return 0;
	p = sp + 1;
	while (p < end && *p != ' ' && *p != '?' && *p != '\r' && *p != '\n')
		p++;
	if (p >= end || *p != '?')
		return 0;
	for (p++; p < end && *p != ' ' && *p != '\r' && *p != '\n' && *p != '#'; p++) {
		if (*p == '&') {
			in_value = false;
		} else if (*p == '=' && !in_value) {
			in_value = true;
		} else if (in_value) {
			*p = '*';
			n++;
		}
	}
	return n;
}

size_t tg_scrub__http(uint8_t *buf, size_t len, bool keep_query_values)
{
	uint8_t *line = buf, *end = buf + len;
	size_t n = 0, i;

	if (!keep_query_values)
		n += scrub_query(buf, len);
	while (line < end) {
		uint8_t *nl = memchr(line, '\n', (size_t)(end - line));
		size_t linelen = (size_t)((nl ? nl : end) - line);

		for (i = 0; i < sizeof(secret_headers) / sizeof(secret_headers[0]); i++) {
			size_t hl = strlen(secret_headers[i]);

			if (linelen >= hl &&
			    strncasecmp((const char *)line, secret_headers[i], hl) == 0)
				n += blank_to_eol(line + hl, end);
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return n;
}

size_t tg_scrub__pg(uint8_t *buf, size_t len)
{
	size_t pos = 0, n = 0;

	while (pos + 5 <= len) {
		uint8_t type = buf[pos];
		uint32_t mlen = (uint32_t)buf[pos + 1] << 24 | (uint32_t)buf[pos + 2] << 16 |
				(uint32_t)buf[pos + 3] << 8 | buf[pos + 4];
		size_t body = mlen >= 4 ? mlen - 4 : 0, avail = len - pos - 5;

		if (type < 'A' || type > 'z' || mlen < 4)
			break;
		/* Only a whole, plausibly sized message: bytes of other protocols
		 * that happen to start with 'p' ("plain...") read as a huge length. */
		if (type == 'p' && body <= avail && mlen <= 65536) {
			memset(buf + pos + 5, '*', body);
			n += body;
		}
		if (body >= avail)
			break;
		pos += 5 + body;
	}
	return n;
}
