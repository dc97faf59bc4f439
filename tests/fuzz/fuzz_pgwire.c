/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the PostgreSQL protocol reassembler. The input is:
 *   byte 0: capture head size (1..64, or 16384 when bit 7 is set)
 *   byte 1: capture tail size (0..16); bit 6: preexisting; bit 7: small queues
 *   then records: op byte, then for data ops a 16-bit little-endian length
 *   and up to that many content bytes.
 *     op & 3 == 0: IN (backend) segment, 1: OUT (frontend), 2: gap, 3: close+reopen
 *     op & 4: the length is multiplied by 256 (messages bigger than captured)
 * A segment's declared length may exceed the content bytes: its middle is
 * then unknown, as with real captures. After the records: close, then free.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pgwire.h"
#include "timeglass/events.h"

static void check(void *ctx, const struct tg_pg_stmt *s)
{
	(void)ctx;
	if (!memchr(s->text, '\0', sizeof(s->text)) ||
	    !memchr(s->command, '\0', sizeof(s->command)) ||
	    !memchr(s->error, '\0', sizeof(s->error)) ||
	    !memchr(s->sqlstate, '\0', sizeof(s->sqlstate)) ||
	    !memchr(s->db_user, '\0', sizeof(s->db_user)) ||
	    !memchr(s->db_name, '\0', sizeof(s->db_name)) ||
	    !memchr(s->stmt_name, '\0', sizeof(s->stmt_name)))
		__builtin_trap();
	if (s->rows < -1)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_pg_cfg cfg = {0};
	struct tg_pg_conn *c;
	size_t i = 2, head_cap, tail_cap;
	uint64_t ts = 1;

	if (size < 2)
		return 0;
	head_cap = data[0] & 0x80 ? TG_HEAD_MAX : 1 + (data[0] & 0x3f);
	tail_cap = (data[1] & 0x1f) % 17;
	if (data[1] & 0x80) {
		cfg.max_pending = 2;
		cfg.max_prepared = 2;
	}
	c = tg_pg__new(&cfg, check, NULL);
	if (!c)
		return 0;
	if (data[1] & 0x40)
		tg_pg__set_preexisting(c);
	while (i < size) {
		uint8_t op = data[i++];
		struct tg_segment seg = {.ts_ns = ts++, .tid = 1};
		uint64_t len;
		size_t avail;

		if ((op & 3) == 2) {
			tg_pg__gap(c);
			continue;
		}
		if ((op & 3) == 3) {
			tg_pg__close(c, ts);
			tg_pg__free(c);
			c = tg_pg__new(&cfg, check, NULL);
			if (!c)
				return 0;
			continue;
		}
		if (i + 2 > size)
			break;
		len = data[i] | data[i + 1] << 8;
		i += 2;
		if (op & 4)
			len *= 256;
		avail = size - i;
		seg.dir = (op & 3) == 0 ? TG_DIR_IN : TG_DIR_OUT;
		seg.len = len;
		seg.head = data + i;
		seg.head_len = len < head_cap ? len : head_cap;
		if (seg.head_len > avail)
			seg.head_len = avail;
		if (len > seg.head_len && tail_cap) {
			size_t t = len - seg.head_len < tail_cap ? len - seg.head_len : tail_cap;

			if (seg.head_len + t <= avail) {
				seg.tail = data + i + seg.head_len;
				seg.tail_len = t;
			}
		}
		i += seg.head_len + seg.tail_len;
		tg_pg__feed(c, &seg);
	}
	tg_pg__close(c, ts);
	tg_pg__free(c);
	return 0;
}
