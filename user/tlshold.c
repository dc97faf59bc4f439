/* SPDX-License-Identifier: MIT */
#include "tlshold.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct held {
	struct tg_ev_tls *ev;
	size_t size;
};

/* A FIFO: held events are few and short-lived (one per new connection), so
 * a linear scan on release is cheaper than an index. */
struct tg_tlshold {
	struct held v[TG_TLSHOLD_MAX];
	size_t n;
	size_t bytes;
	uint64_t dropped;
};

struct tg_tlshold *tg_tlshold__new(void)
{
	return calloc(1, sizeof(struct tg_tlshold));
}

void tg_tlshold__free(struct tg_tlshold *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		free(h->v[i].ev);
	free(h);
}

static void remove_at(struct tg_tlshold *h, size_t i)
{
	h->bytes -= h->v[i].size;
	free(h->v[i].ev);
	memmove(&h->v[i], &h->v[i + 1], (h->n - i - 1) * sizeof(h->v[0]));
	h->n--;
}

int tg_tlshold__put(struct tg_tlshold *h, const struct tg_ev_tls *ev, size_t size)
{
	struct tg_ev_tls *copy;

	while (h->n && (h->n == TG_TLSHOLD_MAX || h->bytes + size > TG_TLSHOLD_BYTES ||
			h->v[0].ev->hdr.ts_ns + TG_TLSHOLD_NS < ev->hdr.ts_ns)) {
		remove_at(h, 0);
		h->dropped++;
	}
	if (size > TG_TLSHOLD_BYTES || !(copy = malloc(size))) {
		h->dropped++;
		return -ENOMEM;
	}
	memcpy(copy, ev, size);
	h->v[h->n].ev = copy;
	h->v[h->n].size = size;
	h->n++;
	h->bytes += size;
	return 0;
}

void tg_tlshold__release(struct tg_tlshold *h, uint32_t pid, uint64_t ssl, tg_tlshold_fn fn,
			 void *ctx)
{
	size_t i = 0;

	while (i < h->n) {
		struct tg_ev_tls *ev = h->v[i].ev;

		if (ev->hdr.pid != pid || ev->ssl != ssl) {
			i++;
			continue;
		}
		fn(ctx, ev, h->v[i].size);
		remove_at(h, i);
	}
}

size_t tg_tlshold__held(const struct tg_tlshold *h)
{
	return h ? h->n : 0;
}

uint64_t tg_tlshold__dropped(const struct tg_tlshold *h)
{
	return h ? h->dropped : 0;
}
