/* SPDX-License-Identifier: MIT */
/* HTTP/1.x header blocks: a narrow scanner first, libhttp_parser for the rest (httphead.h). */
#include "httphead.h"

#include <string.h>
#include <strings.h>

#include <http_parser.h>

/* ---- the scanner ---- */

/* Character classes, one table lookup per byte. */
#define LO(c) ((c) < 64 ? 1ULL << ((c)&63) : 0)
#define HI(c) ((c) >= 64 && (c) < 128 ? 1ULL << (((c)-64) & 63) : 0)
#define DIGITS_LO (0x3FFULL << '0')
#define ALPHA_HI ((0x3FFFFFFULL << ('A' - 64)) | (0x3FFFFFFULL << ('a' - 64)))
/* origin-form target: unreserved, sub-delims, ':', '@', '/', '?', '%' (no '#') */
#define URL_LO                                                                                     \
	(DIGITS_LO | LO('-') | LO('.') | LO(':') | LO('/') | LO('?') | LO('!') | LO('$') |         \
	 LO('&') | LO('\'') | LO('(') | LO(')') | LO('*') | LO('+') | LO(',') | LO(';') |          \
	 LO('=') | LO('%'))
#define URL_HI (ALPHA_HI | HI('_') | HI('~') | HI('@') | HI('[') | HI(']'))
/* header names: letters, digits, '-' */
#define NAME_LO (DIGITS_LO | LO('-'))
#define NAME_HI ALPHA_HI
/* (shift counts masked: clang checks the branch not taken as well) */
#define IN(set, c)                                                                                 \
	((c) < 64 ? (set##_LO >> ((c)&63)) & 1 : (c) < 128 ? (set##_HI >> (((c)-64) & 63)) & 1 : 0)
#define C_URL 1
#define C_NAME 2
#define C_TEXT                                                                                     \
	4 /* printable ASCII or a tab: what a header value or reason phrase may hold here          \
	   */
#define CLS(c)                                                                                     \
	(uint8_t)((IN(URL, c) ? C_URL : 0) | (IN(NAME, c) ? C_NAME : 0) |                          \
		  (((c) >= 0x20 && (c) < 0x7f) || (c) == '\t' ? C_TEXT : 0))
#define CLS4(c) CLS(c), CLS((c) + 1), CLS((c) + 2), CLS((c) + 3)
#define CLS16(c) CLS4(c), CLS4((c) + 4), CLS4((c) + 8), CLS4((c) + 12)
#define CLS64(c) CLS16(c), CLS16((c) + 16), CLS16((c) + 32), CLS16((c) + 48)

static const uint8_t cls[256] = {CLS64(0), CLS64(64), CLS64(128), CLS64(192)};

/* All of p[0..n) printable (C_TEXT): eight bytes at a time, a byte at a
 * time only where a word has a byte below 0x20 or above 0x7e (a tab, or
 * a bad one). */
static bool all_text(const uint8_t *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	size_t i = 0, k;
	uint64_t x;

	for (; i + 8 <= n; i += 8) {
		memcpy(&x, p + i, 8);
		if (!(((x - ones * 0x20) & ~x) & highs) && !(((x + ones) | x) & highs))
			continue;
		for (k = i; k < i + 8; k++)
			if (!(cls[p[k]] & C_TEXT))
				return false;
	}
	for (; i < n; i++)
		if (!(cls[p[i]] & C_TEXT))
			return false;
	return true;
}

static const struct {
	const char *name;
	size_t len;
	unsigned method;
} fast_methods[] = {
    {"GET", 3, HTTP_GET},	{"POST", 4, HTTP_POST}, {"PUT", 3, HTTP_PUT},
    {"DELETE", 6, HTTP_DELETE}, {"HEAD", 4, HTTP_HEAD}, {"OPTIONS", 7, HTTP_OPTIONS},
    {"PATCH", 5, HTTP_PATCH},
};

/* "HTTP/1.d" with d 0 or 1 at p[0..8). */
static bool fast_version(const uint8_t *p, unsigned *minor)
{
	if (memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
		return false;
	*minor = (unsigned)(p[7] - '0');
	return true;
}

/* "METHOD SP /target SP HTTP/1.d" filling p[0..n) exactly. */
static bool fast_request_line(const uint8_t *p, size_t n, struct tg_http_head *h)
{
	size_t i, m, u;

	for (m = 0; m < sizeof(fast_methods) / sizeof(fast_methods[0]); m++)
		if (n > fast_methods[m].len && p[fast_methods[m].len] == ' ' &&
		    memcmp(p, fast_methods[m].name, fast_methods[m].len) == 0)
			break;
	if (m == sizeof(fast_methods) / sizeof(fast_methods[0]))
		return false;
	i = fast_methods[m].len + 1;
	if (i >= n || p[i] != '/')
		return false;
	for (u = i; u < n && (cls[p[u]] & C_URL); u++)
		;
	if (n - u != 9 || p[u] != ' ' || !fast_version(p + u + 1, &h->minor))
		return false;
	h->method = fast_methods[m].method;
	h->url = (const char *)p + i;
	h->url_len = u - i;
	return true;
}

/* "HTTP/1.d SP ddd SP reason" filling p[0..n) exactly. */
static bool fast_status_line(const uint8_t *p, size_t n, struct tg_http_head *h)
{
	if (n < 13 || !fast_version(p, &h->minor) || p[8] != ' ' || p[9] < '1' || p[9] > '9' ||
	    p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' || p[12] != ' ' ||
	    !all_text(p + 13, n - 13))
		return false;
	h->status = (unsigned)((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
	return true;
}

/* Content-Length's value: optional blanks, then 1-15 digits, nothing else. */
static bool fast_length(const uint8_t *p, size_t n, struct tg_http_head *h)
{
	size_t i = 0, d;
	uint64_t v = 0;

	if (h->has_length) /* libhttp_parser refuses a second one */
		return false;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	for (d = 0; i < n && d < 16; i++, d++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (d == 0 || d > 15)
		return false;
	h->has_length = true;
	h->length = v;
	return true;
}

/* One "name: value" line, p[0..n) without its CRLF. */
static bool fast_header(const uint8_t *p, size_t n, struct tg_http_head *h)
{
	size_t k;

	for (k = 0; k < n && (cls[p[k]] & C_NAME); k++)
		;
	if (k == 0 || k == n || p[k] != ':' || !all_text(p + k + 1, n - k - 1))
		return false;
	/* Transfer-Encoding (chunked framing and its checks) is libhttp_parser's;
	 * so is any longer name that starts with it: libhttp_parser 2.9 marks
	 * the message as using Transfer-Encoding as soon as the name's first 17
	 * bytes match, and then refuses a Content-Length next to it (found by
	 * tests/fuzz/fuzz_httphead.c). */
	if (k >= 17 && strncasecmp((const char *)p, "transfer-encoding", 17) == 0)
		return false;
	if (k == 14 && strncasecmp((const char *)p, "content-length", 14) == 0)
		return fast_length(p + k + 1, n - k - 1, h);
	return true;
}

bool tg_httphead__parse_fast(const uint8_t *p, size_t n, bool response, struct tg_http_head *h)
{
	const uint8_t *nl;
	size_t ls = 0, le;

	memset(h, 0, sizeof(*h));
	for (;;) {
		nl = memchr(p + ls, '\n', n - ls);
		if (!nl)
			return false;
		le = (size_t)(nl - p);
		if (le == ls || p[le - 1] != '\r')
			return false;
		if (ls == 0) {
			if (!(response ? fast_status_line(p, le - 1, h)
				       : fast_request_line(p, le - 1, h)))
				return false;
		} else if (le - 1 == ls) { /* the blank line: it must end the block */
			return le + 1 == n;
		} else if (!fast_header(p + ls, le - 1 - ls, h)) {
			return false;
		}
		ls = le + 1;
		if (ls >= n)
			return false;
	}
}

/* ---- libhttp_parser ---- */

struct hp_msg {
	bool done;
	struct tg_http_head *h;
	unsigned short major;
};

static int hp_on_url(http_parser *hp, const char *at, size_t n)
{
	struct hp_msg *m = hp->data;

	if (!m->h->url)
		m->h->url = at;
	m->h->url_len = (size_t)(at + n - m->h->url);
	return 0;
}

static int hp_on_headers_complete(http_parser *hp)
{
	struct hp_msg *m = hp->data;

	m->done = true;
	m->major = hp->http_major;
	m->h->method = hp->method;
	m->h->status = hp->status_code;
	m->h->minor = hp->http_minor;
	m->h->chunked = (hp->flags & F_CHUNKED) != 0;
	m->h->has_length = (hp->flags & F_CONTENTLENGTH) != 0;
	m->h->length = hp->content_length;
	return 2; /* the reassembler frames the body itself: stop here */
}

static const http_parser_settings hp_settings = {
    .on_url = hp_on_url,
    .on_headers_complete = hp_on_headers_complete,
};

bool tg_httphead__parse_full(const uint8_t *p, size_t n, bool response, struct tg_http_head *h)
{
	struct hp_msg m = {.h = h};
	http_parser hp;

	memset(h, 0, sizeof(*h));
	http_parser_init(&hp, response ? HTTP_RESPONSE : HTTP_REQUEST);
	hp.allow_chunked_length = 1; /* Transfer-Encoding wins over Content-Length */
	hp.data = &m;
	http_parser_execute(&hp, &hp_settings, (const char *)p, n);
	return m.done && m.major == 1;
}

bool tg_httphead__parse(const uint8_t *p, size_t n, bool response, struct tg_http_head *h)
{
	return tg_httphead__parse_fast(p, n, response, h) ||
	       tg_httphead__parse_full(p, n, response, h);
}
