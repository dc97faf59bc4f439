/* SPDX-License-Identifier: MIT */
/*
 * Python frame symbolizer (see pysym.h). Design: a small open-addressing
 * hash table of entries keyed by (pid, code address); each entry keeps the
 * tag it was read with, its strings and its line table. A lookup with a
 * different tag re-reads the code object (reuse detection); if the object now
 * there does not match the sample's tag, the sample is stale (-ESTALE). Per
 * process offsets live in a short list (a handful of targets). Strings are
 * read as compact unicode objects: ASCII data after PyASCIIObject, other
 * kinds (1, 2, 4 bytes per code point) after PyCompactUnicodeObject,
 * converted to UTF-8.
 */
#include "pysym.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STR 4096	  /* code points read from a name or file name */
#define MAX_TABLE 65536	  /* bytes of line table read */
#define INITIAL_SLOTS 256 /* power of two */

struct entry {
	pid_t pid; /* 0: empty slot */
	uint64_t code;
	uint32_t tag;
	bool ok; /* read successfully (else a placeholder keeping the probe chain) */
	int firstlineno;
	char *qualname;
	char *filename;
	uint8_t *table;
	size_t table_len;
	int major, minor;
};

struct proc {
	pid_t pid;
	int err; /* detection result when no offsets (negative) */
	struct tg_py_offsets off;
};

struct tg_pysym {
	struct entry *slots;
	size_t nslots, used;
	struct proc *procs;
	size_t nprocs;
	uint64_t reads, hits;
};

uint32_t tg_pysym__tag(int32_t firstlineno, uint64_t co_name)
{
	return (uint32_t)firstlineno ^ (uint32_t)(co_name >> 4);
}

struct tg_pysym *tg_pysym__new(void)
{
	struct tg_pysym *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->slots = calloc(INITIAL_SLOTS, sizeof(*s->slots));
	if (!s->slots) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	s->nslots = INITIAL_SLOTS;
	return s;
}

static void entry_clear(struct entry *e)
{
	free(e->qualname);
	free(e->filename);
	free(e->table);
	memset(e, 0, sizeof(*e));
}

static size_t slot_of(const struct tg_pysym *s, pid_t pid, uint64_t code)
{
	uint64_t h = (code >> 4) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)pid * 0xff51afd7ed558ccdULL;

	return (size_t)(h >> 20) & (s->nslots - 1);
}

static struct entry *find(struct tg_pysym *s, pid_t pid, uint64_t code, bool *found)
{
	size_t i = slot_of(s, pid, code);

	for (;; i = (i + 1) & (s->nslots - 1)) {
		struct entry *e = &s->slots[i];

		if (!e->pid) {
			*found = false;
			return e;
		}
		if (e->pid == pid && e->code == code) {
			*found = true;
			return e;
		}
	}
}

static int grow(struct tg_pysym *s)
{
	struct entry *old = s->slots;
	size_t n = s->nslots;
	bool found;

	s->slots = calloc(n * 2, sizeof(*s->slots));
	if (!s->slots) {
		s->slots = old;
		return -ENOMEM;
	}
	s->nslots = n * 2;
	for (size_t i = 0; i < n; i++)
		if (old[i].pid)
			*find(s, old[i].pid, old[i].code, &found) = old[i];
	free(old);
	return 0;
}

int tg_pysym__set_offsets(struct tg_pysym *s, pid_t pid, const struct tg_py_offsets *off)
{
	struct proc *p;

	for (size_t i = 0; i < s->nprocs; i++) {
		if (s->procs[i].pid == pid) {
			s->procs[i].off = *off;
			s->procs[i].err = 0;
			return 0;
		}
	}
	p = realloc(s->procs, (s->nprocs + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	s->procs = p;
	p[s->nprocs].pid = pid;
	p[s->nprocs].err = 0;
	p[s->nprocs].off = *off;
	s->nprocs++;
	return 0;
}

static const struct tg_py_offsets *offsets_of(struct tg_pysym *s, pid_t pid, int *err)
{
	struct tg_pyruntime rt;
	struct proc *p;
	int ret;

	for (size_t i = 0; i < s->nprocs; i++) {
		if (s->procs[i].pid == pid) {
			*err = s->procs[i].err;
			return *err ? NULL : &s->procs[i].off;
		}
	}
	ret = tg_pyruntime__detect(pid, &rt);
	if (ret == -ESRCH || ret == -EPERM || ret == -EACCES) {
		*err = ret; /* not cached: may work later */
		return NULL;
	}
	if (tg_pysym__set_offsets(s, pid, &rt.off)) {
		*err = -ENOMEM;
		return NULL;
	}
	p = &s->procs[s->nprocs - 1];
	p->err = ret ? (ret == -ENOENT ? -ENOTSUP : ret) : 0;
	*err = p->err;
	return *err ? NULL : &p->off;
}

/* Append code point cp as UTF-8. */
static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Read the str object at addr as a malloc'd UTF-8 string. */
static int read_str(pid_t pid, const struct tg_py_offsets *o, uint64_t addr, char **out)
{
	uint8_t head[80];
	uint64_t len;
	uint32_t state, kind;
	uint8_t *raw = NULL;
	char *s = NULL;
	size_t n = 0;
	int ret;

	if (!addr)
		return -EINVAL;
	ret = tg_pyruntime__read(pid, addr, head, o->str_state + 4u);
	if (ret)
		return ret;
	memcpy(&len, head + o->str_length, 8);
	memcpy(&state, head + o->str_state, 4);
	kind = state >> 2 & 7;
	/* state: interned:2, kind:3, compact:1, ascii:1 */
	if (!(state >> 5 & 1) || (kind != 1 && kind != 2 && kind != 4))
		return -EINVAL; /* not a compact string: never the case for code names */
	if (len > MAX_STR)
		len = MAX_STR;
	raw = malloc(len * kind + 1);
	s = malloc(len * 4 + 1);
	if (!raw || !s) {
		ret = -ENOMEM;
		goto out;
	}
	ret = tg_pyruntime__read(pid, addr + ((state >> 6 & 1) ? o->str_ascii : o->str_compact),
				 raw, len * kind);
	if (ret)
		goto out;
	for (uint64_t i = 0; i < len; i++) {
		uint32_t cp;

		if (kind == 1) {
			cp = raw[i];
		} else if (kind == 2) {
			uint16_t v;

			memcpy(&v, raw + 2 * i, 2);
			cp = v;
		} else {
			memcpy(&cp, raw + 4 * i, 4);
			if (cp > 0x10ffff)
				cp = 0xfffd;
		}
		n += put_utf8(s + n, cp);
	}
	s[n] = '\0';
	*out = s;
	s = NULL;
out:
	free(raw);
	free(s);
	return ret;
}

static uint64_t rd64(const uint8_t *b, size_t off)
{
	uint64_t v;

	memcpy(&v, b + off, 8);
	return v;
}

/* Read the code object at e->code into e (pid, code set). */
static int read_code(pid_t pid, const struct tg_py_offsets *o, struct entry *e)
{
	uint8_t co[256];
	size_t need = o->co_linetable + 8u;
	uint64_t tbl, tlen;
	int32_t first;
	int ret;

	if (need < o->co_filename + 8u)
		need = o->co_filename + 8u;
	if (need < o->k.co_name + 8u)
		need = o->k.co_name + 8u;
	if (need > sizeof(co))
		return -EINVAL;
	ret = tg_pyruntime__read(pid, e->code, co, need);
	if (ret)
		return ret;
	memcpy(&first, co + o->k.co_firstlineno, 4);
	e->firstlineno = first;
	e->tag = tg_pysym__tag(first, rd64(co, o->k.co_name));
	e->major = o->major;
	e->minor = o->minor;
	ret = read_str(pid, o, rd64(co, o->co_qualname), &e->qualname);
	if (!ret)
		ret = read_str(pid, o, rd64(co, o->co_filename), &e->filename);
	if (ret)
		return ret;
	tbl = rd64(co, o->co_linetable);
	if (!tbl || tg_pyruntime__read(pid, tbl + o->var_size, &tlen, 8))
		return 0; /* no table: lines fall back to firstlineno */
	if (tlen > MAX_TABLE)
		tlen = MAX_TABLE;
	e->table = malloc(tlen ? tlen : 1);
	if (!e->table)
		return -ENOMEM;
	ret = tg_pyruntime__read(pid, tbl + o->bytes_sval, e->table, tlen);
	if (ret) {
		free(e->table);
		e->table = NULL;
		return 0;
	}
	e->table_len = tlen;
	return 0;
}

/* Varints of the 3.11 location table: 6 bits per byte, bit 6 = more. */
static uint32_t varint(const uint8_t *t, size_t len, size_t *i)
{
	uint32_t v = 0;
	unsigned shift = 0;

	while (*i < len) {
		uint8_t b = t[(*i)++];

		v |= (uint32_t)(b & 63) << shift;
		shift += 6;
		if (!(b & 64) || shift > 30)
			break;
	}
	return v;
}

static int32_t svarint(const uint8_t *t, size_t len, size_t *i)
{
	uint32_t v = varint(t, len, i);

	return (v & 1) ? -(int32_t)(v >> 1) : (int32_t)(v >> 1);
}

int tg_pysym__line311(const uint8_t *t, size_t len, int firstlineno, uint32_t lasti)
{
	size_t i = 0;
	uint32_t addr = 0;
	int line = firstlineno;

	while (i < len) {
		uint8_t b = t[i++];
		int code = b >> 3 & 15, delta = 0;
		uint32_t n = (b & 7) + 1u;

		if (!(b & 0x80))
			return -2; /* not at an entry start: corrupt table */
		switch (code) {
		case 15: /* no location */
			break;
		case 14: /* long form: line delta, end line delta, column, end column */
			delta = svarint(t, len, &i);
			varint(t, len, &i);
			varint(t, len, &i);
			varint(t, len, &i);
			break;
		case 13: /* no column: line delta */
			delta = svarint(t, len, &i);
			break;
		case 10:
		case 11:
		case 12: /* one line: delta code - 10, then column and end column bytes */
			delta = code - 10;
			i += 2;
			break;
		default: /* short form: same line, one byte of columns */
			i += 1;
			break;
		}
		line += delta;
		if (lasti < addr + n)
			return code == 15 ? -1 : line;
		addr += n;
	}
	return -2;
}

int tg_pysym__resolve(struct tg_pysym *s, pid_t pid, uint64_t code, uint32_t lasti, uint32_t tag,
		      struct tg_pysym_frame *out)
{
	const struct tg_py_offsets *o;
	struct entry *e;
	bool found;
	int ret, line;

	if (!s || !out || !code)
		return -EINVAL;
	o = offsets_of(s, pid, &ret);
	if (!o)
		return ret;
	e = find(s, pid, code, &found);
	if (found && e->ok && e->tag == tag) {
		s->hits++;
	} else {
		if (found) {
			entry_clear(e); /* reused address: read again */
					/* Keep the probe chain intact: refill the same slot. */
		} else if ((s->used + 1) * 4 > s->nslots * 3) {
			ret = grow(s);
			if (ret)
				return ret;
			e = find(s, pid, code, &found);
		}
		e->pid = pid;
		e->code = code;
		s->reads++;
		ret = read_code(pid, o, e);
		if (ret) {
			/* Keep a placeholder with an impossible tag so the chain stays. */
			entry_clear(e);
			e->pid = pid;
			e->code = code;
			if (!found)
				s->used++;
			return ret;
		}
		e->ok = true;
		if (!found)
			s->used++;
		if (e->tag != tag)
			return -ESTALE;
	}
	out->qualname = e->qualname;
	out->filename = e->filename;
	out->firstlineno = e->firstlineno;
	line = -1;
	if (e->table && e->major == 3 && (e->minor == 11 || e->minor == 12) && lasti != ~0U)
		line = tg_pysym__line311(e->table, e->table_len, e->firstlineno, lasti);
	out->line = line >= 0 ? line : e->firstlineno;
	return 0;
}

void tg_pysym__forget(struct tg_pysym *s, pid_t pid)
{
	struct entry *old;
	size_t n;
	bool found;

	if (!s)
		return;
	for (size_t i = 0; i < s->nprocs; i++) {
		if (s->procs[i].pid == pid) {
			s->procs[i] = s->procs[--s->nprocs];
			break;
		}
	}
	/* Rebuild the table without pid's entries (keeps probe chains valid). */
	old = s->slots;
	n = s->nslots;
	s->slots = calloc(n, sizeof(*s->slots));
	if (!s->slots) {
		s->slots = old; /* keep the stale entries: the tags still protect */
		return;
	}
	s->used = 0;
	for (size_t i = 0; i < n; i++) {
		if (!old[i].pid)
			continue;
		if (old[i].pid == pid) {
			entry_clear(&old[i]);
			continue;
		}
		*find(s, old[i].pid, old[i].code, &found) = old[i];
		s->used++;
	}
	free(old);
}

void tg_pysym__stats(const struct tg_pysym *s, uint64_t *reads, uint64_t *hits)
{
	*reads = s ? s->reads : 0;
	*hits = s ? s->hits : 0;
}

void tg_pysym__free(struct tg_pysym *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nslots; i++)
		if (s->slots[i].pid)
			entry_clear(&s->slots[i]);
	free(s->slots);
	free(s->procs);
	free(s);
}
