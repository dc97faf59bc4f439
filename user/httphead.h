/* SPDX-License-Identifier: MIT */
/*
 * One complete HTTP/1.x header block (start line through the blank line):
 * the fields the reassembler frames with (http.c).
 *
 * libhttp_parser is the reference. It walks every byte through its state
 * machine (~20 instructions a byte, most of the reassembler's CPU), so the
 * common shape is read first by a narrow scanner: CRLF line ends, a few
 * methods, an origin-form target of URI characters, token header names and
 * printable values, Content-Length as plain digits, no Transfer-Encoding.
 * Whatever it does not accept goes to libhttp_parser, and whatever it
 * accepts gives the same fields libhttp_parser gives (tests/unit/test_http.c
 * compares the two on generated blocks).
 */
#ifndef TG_HTTPHEAD_H
#define TG_HTTPHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tg_http_head {
	unsigned method; /* enum http_method (requests) */
	unsigned status; /* status code (responses) */
	unsigned minor;	 /* HTTP/1.minor */
	bool chunked;	 /* Transfer-Encoding ends in chunked (libhttp_parser's F_CHUNKED) */
	bool has_length; /* a Content-Length was given (F_CONTENTLENGTH) */
	uint64_t length; /* its value */
	const char *url; /* request target, pointing into the block (requests) */
	size_t url_len;
};

/* Parse the block p[0..n) as a request (response false) or a response.
 * True when it is a valid HTTP/1.x head; then *h is filled in. */
bool tg_httphead__parse(const uint8_t *p, size_t n, bool response, struct tg_http_head *h);

/* The two halves, for tests: the scanner alone (false: declined, which does
 * not mean invalid) and libhttp_parser alone (false: invalid). */
bool tg_httphead__parse_fast(const uint8_t *p, size_t n, bool response, struct tg_http_head *h);
bool tg_httphead__parse_full(const uint8_t *p, size_t n, bool response, struct tg_http_head *h);

#endif
