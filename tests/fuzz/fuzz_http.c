/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the HTTP/1.x reassembler. The input is:
 *   byte 0: capture head size (1..64, or 1024 when bit 7 is set)
 *   byte 1: capture tail size (0..16); bit 7: keep_query_values; bit 6: preexisting
 *   then records: op byte, then for data ops a 16-bit little-endian length
 *   and up to that many content bytes.
 *     op & 3 == 0: IN segment, 1: OUT segment, 2: gap, 3: close
 *     op & 4: the length is multiplied by 256 (bodies bigger than captured)
 * A segment's declared length may exceed the content bytes: its middle is
 * then unknown, as with real captures. After the records: close, then free.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http.h"
#include "timeglass/events.h"

static void check(void *ctx, struct tg_request *r)
{
	(void)ctx;
	if (!memchr(r->method, '\0', sizeof(r->method)) ||
	    !memchr(r->target, '\0', sizeof(r->target)))
		__builtin_trap();
	if (r->http_minor > 9 || r->status < 0 || r->status > 999)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_http_cfg cfg = {0};
	struct tg_http_conn *c;
	size_t i = 2, head_cap, tail_cap;
	uint64_t ts = 1;

	if (size < 2)
		return 0;
	head_cap = data[0] & 0x80 ? 1024 : 1 + (data[0] & 0x3f);
	tail_cap = (data[1] & 0x1f) % 17;
	cfg.keep_query_values = data[1] & 0x80;
	c = tg_http__new(&cfg, check, NULL);
	if (!c)
		return 0;
	if (data[1] & 0x40)
		tg_http__set_preexisting(c);
	while (i < size) {
		uint8_t op = data[i++];
		struct tg_segment s = {0};
		uint64_t len;
		size_t avail;

		if ((op & 3) == 2) {
			tg_http__gap(c);
			continue;
		}
		if ((op & 3) == 3) {
			tg_http__close(c, ts++);
			continue;
		}
		if (i + 2 > size)
			break;
		len = (uint64_t)data[i] | (uint64_t)data[i + 1] << 8;
		i += 2;
		if (op & 4)
			len *= 256;
		avail = size - i;
		if (avail > len)
			avail = (size_t)len;
		s.ts_ns = ts++;
		s.tid = op >> 3;
		s.dir = op & 1 ? TG_DIR_OUT : TG_DIR_IN;
		s.len = len;
		s.head = data + i;
		s.head_len = avail < head_cap ? avail : head_cap;
		if (len > s.head_len) {
			size_t rest = avail - s.head_len;

			s.tail_len = rest < tail_cap ? rest : tail_cap;
			s.tail = data + i + avail - s.tail_len;
		}
		tg_http__feed(c, &s);
		i += avail;
	}
	tg_http__close(c, ts);
	tg_http__free(c);
	return 0;
}
