/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as an event stream into the pipeline.
 * The input is cut into events by a 2-byte length prefix; each event's header
 * is patched so its size field matches (otherwise nearly everything would be
 * rejected at the first check) and its type is folded onto the known types,
 * so the fuzzer reaches the connection table and the reassembler.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "timeglass/events.h"

static const uint16_t types[] = {TG_EV_CONN,   TG_EV_CLOSE,  TG_EV_DATA,  TG_EV_PROC,
				 TG_EV_TARGET, TG_EV_ROUTES, TG_EV_DROPS, TG_EV_IGNORE_PEER};

static int64_t sink(void *ctx, const struct tg_request *r)
{
	(void)ctx;
	(void)r;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_pipeline_cfg cfg = {.on_request = sink};
	struct tg_pipeline *p = tg_pipeline__new(&cfg);
	uint8_t *ev;

	if (!p)
		return 0;
	ev = malloc(65536);
	while (ev && size >= 2) {
		size_t n = (size_t)(data[0] | data[1] << 8) % 2048;
		struct tg_ev_hdr *h = (struct tg_ev_hdr *)ev;

		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		memset(ev, 0, 2048 + sizeof(*h));
		memcpy(ev, data, n);
		data += n;
		size -= n;
		if (n < sizeof(*h))
			n = sizeof(*h);
		h->type = types[h->type % (sizeof(types) / sizeof(types[0]))];
		h->size = (uint16_t)n;
		/* Keep connection ids and pids in a small space so events meet. */
		h->pid %= 4;
		if (h->type == TG_EV_DATA && n >= sizeof(struct tg_ev_data))
			((struct tg_ev_data *)ev)->conn_id %= 8;
		if (h->type == TG_EV_CLOSE && n >= sizeof(struct tg_ev_close))
			((struct tg_ev_close *)ev)->conn_id %= 8;
		if (h->type == TG_EV_CONN && n >= sizeof(struct tg_ev_conn))
			((struct tg_ev_conn *)ev)->conn_id %= 8;
		tg_pipeline__event(p, ev, n);
	}
	tg_pipeline__finish(p, 0);
	tg_pipeline__free(p);
	free(ev);
	return 0;
}
