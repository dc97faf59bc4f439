/* SPDX-License-Identifier: MIT */
/*
 * Recordings (record.h): a fixed header, then events back to back, each
 * padded to 8 bytes. Writing goes through stdio's buffer (the consumer
 * thread calls tg_record__write per event); reading validates every size
 * field before trusting it, so a truncated or corrupt file stops cleanly with
 * -EBADMSG after the last good event.
 */
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "timeglass/events.h"

#define TG_REC_MAGIC "TGREC\0\0\0"
#define TG_REC_MAX_EVENT ((size_t)64 * 1024) /* > the largest hdr.size (16 bits) padded */

struct tg_rec_header {
	char magic[8];
	uint32_t abi_version;
	uint32_t header_size;
	uint64_t mono_to_epoch_ns;
	uint64_t reserved;
};
_Static_assert(sizeof(struct tg_rec_header) == 32, "recording header");

struct tg_recorder {
	FILE *f;
};

/* Stdio buffer of a replay: events are read in two small freads each, and
 * glibc's default (st_blksize, 4 KiB) made that a read call per ~2 events. */
#define REPLAY_IOBUF (1 << 20)

struct tg_replay {
	FILE *f;
	uint64_t mono_to_epoch_ns;
	uint8_t *buf;
	char *iobuf; /* REPLAY_IOBUF bytes, f's buffer */
};

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

struct tg_recorder *tg_record__create(const char *path, uint64_t mono_to_epoch_ns)
{
	struct tg_rec_header h = {.abi_version = TG_ABI_VERSION,
				  .header_size = sizeof(h),
				  .mono_to_epoch_ns = mono_to_epoch_ns};
	struct tg_recorder *r;
	int fd, err;

	memcpy(h.magic, TG_REC_MAGIC, sizeof(h.magic));
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto err_free;
	r->f = fdopen(fd, "wb");
	if (!r->f) {
		err = errno;
		close(fd);
		errno = err;
		goto err_free;
	}
	setvbuf(r->f, NULL, _IOFBF, 1 << 20);
	if (fwrite(&h, sizeof(h), 1, r->f) != 1) {
		err = errno ? errno : EIO;
		fclose(r->f);
		errno = err;
		goto err_free;
	}
	return r;
err_free:
	err = errno;
	free(r);
	errno = err;
	return NULL;
}

int tg_record__write(struct tg_recorder *r, const void *ev, size_t size)
{
	static const uint8_t zeros[8];
	size_t padded = pad8(size);

	if (!r || size < sizeof(struct tg_ev_hdr) || size > TG_REC_MAX_EVENT)
		return -EINVAL;
	if (fwrite(ev, 1, size, r->f) != size)
		return -(errno ? errno : EIO);
	if (padded != size && fwrite(zeros, 1, padded - size, r->f) != padded - size)
		return -(errno ? errno : EIO);
	return 0;
}

int tg_record__close(struct tg_recorder *r)
{
	int err = 0;

	if (!r)
		return 0;
	if (fflush(r->f) != 0)
		err = -errno;
	if (fclose(r->f) != 0 && !err)
		err = -errno;
	free(r);
	return err;
}

struct tg_replay *tg_replay__open(const char *path)
{
	struct tg_rec_header h;
	struct tg_replay *r;
	int err;

	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->buf = malloc(TG_REC_MAX_EVENT);
	if (!r->buf) {
		err = ENOMEM;
		goto err_free;
	}
	r->f = fopen(path, "rb");
	if (!r->f) {
		err = errno;
		goto err_free;
	}
	r->iobuf = malloc(REPLAY_IOBUF); /* without it, the default buffer */
	if (r->iobuf)
		setvbuf(r->f, r->iobuf, _IOFBF, REPLAY_IOBUF);
	if (fread(&h, sizeof(h), 1, r->f) != 1 || memcmp(h.magic, TG_REC_MAGIC, 8) != 0 ||
	    h.abi_version < 2 || h.abi_version > TG_ABI_VERSION || h.header_size < sizeof(h)) {
		err = EBADMSG;
		goto err_close;
	}
	if (h.header_size > sizeof(h) && fseek(r->f, h.header_size, SEEK_SET) != 0) {
		err = EBADMSG;
		goto err_close;
	}
	r->mono_to_epoch_ns = h.mono_to_epoch_ns;
	return r;
err_close:
	fclose(r->f);
err_free:
	free(r->iobuf);
	free(r->buf);
	free(r);
	errno = err;
	return NULL;
}

uint64_t tg_replay__mono_to_epoch(const struct tg_replay *r)
{
	return r->mono_to_epoch_ns;
}

int tg_replay__next(struct tg_replay *r, const void **ev, size_t *size)
{
	struct tg_ev_hdr *h = (struct tg_ev_hdr *)r->buf;
	size_t got, padded;

	got = fread(h, 1, sizeof(*h), r->f);
	if (got == 0 && feof(r->f))
		return 0;
	if (got != sizeof(*h))
		return -EBADMSG;
	/* hdr.size is 16 bits, so it always fits the TG_REC_MAX_EVENT buffer. */
	if (h->size < sizeof(*h))
		return -EBADMSG;
	padded = pad8(h->size);
	if (fread(r->buf + sizeof(*h), 1, padded - sizeof(*h), r->f) != padded - sizeof(*h))
		return -EBADMSG;
	*ev = r->buf;
	*size = h->size;
	return 1;
}

void tg_replay__close(struct tg_replay *r)
{
	if (!r)
		return;
	if (r->f)
		fclose(r->f);
	free(r->iobuf); /* after fclose, which flushes into it */
	free(r->buf);
	free(r);
}
