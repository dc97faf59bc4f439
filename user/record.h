/* SPDX-License-Identifier: MIT */
/*
 * Recordings: the raw event stream written to a file by `trace --record`
 * and read back by `replay`, unit tests and the pipeline benchmark.
 *
 * Format (docs/recording.md): a 32-byte header ("TGREC\0\0\0", ABI version,
 * header size, CLOCK_MONOTONIC→epoch offset), then the events back to back,
 * each exactly as the ring buffer delivered it (its size in its header),
 * padded to 8 bytes.
 */
#ifndef TG_RECORD_H
#define TG_RECORD_H

#include <stddef.h>
#include <stdint.h>

struct tg_recorder;
struct tg_replay;

/* Create (truncate) path, mode 0600, and write the header. NULL + errno on failure. */
struct tg_recorder *tg_record__create(const char *path, uint64_t mono_to_epoch_ns);
/* Append one event (size bytes). Returns 0 or -errno. */
int tg_record__write(struct tg_recorder *r, const void *ev, size_t size);
/* Flush and close. Returns 0 or -errno (a failed flush). Accepts NULL. */
int tg_record__close(struct tg_recorder *r);

/* Open a recording; checks the header. NULL + errno (EBADMSG: not a
 * recording or another ABI version). */
struct tg_replay *tg_replay__open(const char *path);
/* The CLOCK_MONOTONIC→epoch offset stored in the header. */
uint64_t tg_replay__mono_to_epoch(const struct tg_replay *r);
/* Next event: *ev points into a buffer valid until the next call. Returns 1,
 * 0 at the end, or -EBADMSG when the file is truncated or corrupt at that
 * point (what was read before stays valid). */
int tg_replay__next(struct tg_replay *r, const void **ev, size_t *size);
/* Accepts NULL. */
void tg_replay__close(struct tg_replay *r);

#endif
