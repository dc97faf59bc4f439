/* SPDX-License-Identifier: MIT */
/*
 * Plaintext TLS events (TG_EV_TLS) whose SSL object the kernel side could not
 * yet tie to a connection (conn_id 0: a memory-BIO SSL object's first write,
 * bpf/tls.bpf.h), held until an event of the same (pid, ssl) names the
 * connection, then handed back in their order. Bounded: at most
 * TG_TLSHOLD_MAX events and TG_TLSHOLD_BYTES bytes, none older than
 * TG_TLSHOLD_NS behind the newest; what falls out is counted as dropped.
 */
#ifndef TG_TLSHOLD_H
#define TG_TLSHOLD_H

#include <stddef.h>
#include <stdint.h>

#include "timeglass/events.h"

#define TG_TLSHOLD_MAX 256
#define TG_TLSHOLD_BYTES (4u << 20)
#define TG_TLSHOLD_NS 2000000000ull

struct tg_tlshold;

typedef void (*tg_tlshold_fn)(void *ctx, const struct tg_ev_tls *ev, size_t size);

/* NULL + errno on failure. */
struct tg_tlshold *tg_tlshold__new(void);

/* Accepts NULL. Held events are dropped (not counted). */
void tg_tlshold__free(struct tg_tlshold *h);

/* Hold a copy of ev (size bytes, already validated by the caller). Expires
 * what is too old or over the bounds first. Returns 0 or -ENOMEM (then ev is
 * counted as dropped). */
int tg_tlshold__put(struct tg_tlshold *h, const struct tg_ev_tls *ev, size_t size);

/* Pass every held event of (pid, ssl) to fn, oldest first, and forget them. */
void tg_tlshold__release(struct tg_tlshold *h, uint32_t pid, uint64_t ssl, tg_tlshold_fn fn,
			 void *ctx);

/* Events held now, and dropped so far (expired, over the bounds, no memory). */
size_t tg_tlshold__held(const struct tg_tlshold *h);
uint64_t tg_tlshold__dropped(const struct tg_tlshold *h);

#endif
