/* SPDX-License-Identifier: MIT */
/*
 * Reads a uvicorn request task's peer port from the target (pytask.h).
 * Design: a few small process_vm_readv copies per object, each checked
 * (object types by their tp_name, string keys as compact ASCII, table sizes
 * bounded) so garbage, e.g. a freed coroutine, ends in an error, never a
 * wild loop. CPython 3.11 x86-64 layouts (offsetof() against the 3.11
 * internal headers): managed dict pointers before the object (values at
 * obj - 32, dict at obj - 24), PyHeapTypeObject.ht_cached_keys 872,
 * PyTypeObject.tp_flags 168 (Py_TPFLAGS_MANAGED_DICT 1 << 4), PyDictObject
 * ma_keys 32 / ma_values 40, PyDictKeysObject dk_log2_index_bytes 9, dk_kind
 * 10, dk_nentries 24, dk_indices 32 (entries follow the index table: 24-byte
 * {hash, key, value} for general tables, 16-byte {key, value} for unicode
 * and split ones), PyTupleObject ob_item 24, PyLongObject ob_digit 24.
 */
#include "pytask.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define TP_NAME 24
#define TP_FLAGS 168
#define TPFLAGS_MANAGED_DICT (1UL << 4)
#define HT_CACHED_KEYS 872
#define MANAGED_VALUES (-32)
#define MANAGED_DICT (-24)
#define MA_KEYS 32
#define MA_VALUES 40
#define DK_HDR 32
#define DK_KIND_GENERAL 0
#define DK_KIND_UNICODE 1
#define DK_KIND_SPLIT 2
#define TUPLE_ITEMS 24
#define LONG_DIGIT 24
#define OB_SIZE 16
#define OB_TYPE 8
#define FR_LOCALSPLUS 72
#define MAX_ENTRIES 256 /* dict entries scanned */
#define MAX_NAME 64	/* bytes compared of a name */
#define CACHE_BITS 8
#define CACHE_SLOTS (1U << CACHE_BITS) /* per cache */
#define KEYS_READ 512		       /* bytes of a keys object read at once */

/*
 * Each read is a process_vm_readv (≈ 2-3 µs here: it pins the target's
 * page), and a walk made about thirty, once per CPU sample: the tracer's
 * largest cost of sampling (docs/performance.md). Three facts repeat from
 * walk to walk and are kept per thread (the profile reads from one):
 *  - a type object's tp_name, tp_flags and ht_cached_keys (types outlive
 *    their instances; an entry goes stale only if a class is deleted and
 *    another type takes its address, and every later step still checks
 *    what it reads);
 *  - whether the str object at an address is a given ASCII name (the
 *    scope's keys and the coroutine's qualname are interned strings of
 *    uvicorn's code, alive as long as it);
 *  - where a name sits in a type's shared instance keys.
 * A dict's keys object is also read with its entries in one go when small.
 * Direct-mapped, keyed by (pid, address); tg_pytask__forget drops a
 * process's entries when it exits or execs.
 */
struct type_fact {
	pid_t pid; /* 0: empty */
	uint64_t type;
	uint64_t name_ptr, flags, cached_keys;
	uint8_t have; /* HAVE_* */
	char name[16];
};
#define HAVE_NAME 1
#define HAVE_FLAGS 2
#define HAVE_KEYS 4

struct str_fact {
	pid_t pid; /* 0: empty */
	uint64_t addr;
	int8_t is; /* 1: equals name, 0: does not */
	char name[MAX_NAME + 1];
};

/* Where a name is in a type's shared keys (a split table's keys object):
 * entries are only ever appended to those, so a place found stays right
 * (an absent name is not remembered: it may be appended later). */
struct split_fact {
	pid_t pid; /* 0: empty */
	uint64_t keys;
	int32_t index;
	char name[MAX_NAME + 1];
};

static _Thread_local struct {
	struct type_fact types[CACHE_SLOTS];
	struct str_fact strs[CACHE_SLOTS];
	struct split_fact splits[CACHE_SLOTS];
	uint64_t reads;
} cache;

/* Multiplicative hashing, top bits: the builtin types' addresses differ
 * only in a few middle bits. */
static size_t slot(pid_t pid, uint64_t addr)
{
	uint64_t h = (addr ^ ((uint64_t)(uint32_t)pid << 40)) * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> (64 - CACHE_BITS));
}

void tg_pytask__forget(pid_t pid)
{
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		if (cache.types[i].pid == pid)
			cache.types[i].pid = 0;
		if (cache.strs[i].pid == pid)
			cache.strs[i].pid = 0;
		if (cache.splits[i].pid == pid)
			cache.splits[i].pid = 0;
	}
}

uint64_t tg_pytask__reads(void)
{
	return cache.reads;
}

static int rd(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	if (addr < 4096)
		return -EINVAL;
	cache.reads++;
	return tg_pyruntime__read(pid, addr, buf, len);
}

/* The cache entry of type in pid (reset when it held another). */
static struct type_fact *type_fact(pid_t pid, uint64_t type)
{
	struct type_fact *f = &cache.types[slot(pid, type)];

	if (f->pid != pid || f->type != type) {
		memset(f, 0, sizeof(*f));
		f->pid = pid;
		f->type = type;
	}
	return f;
}

static int rd_ptr(pid_t pid, uint64_t addr, uint64_t *val)
{
	return rd(pid, addr, val, sizeof(*val));
}

static bool is_311(const struct tg_py_offsets *off)
{
	return off->major == 3 && off->minor == 11;
}

static int str_is_read(pid_t pid, const struct tg_py_offsets *off, uint64_t addr, const char *s);

/* 1 when the str object at addr is the compact ASCII string s, 0 when not
 * (remembered: see cache). */
static int str_is(pid_t pid, const struct tg_py_offsets *off, uint64_t addr, const char *s)
{
	struct str_fact *f = &cache.strs[slot(pid, addr)];
	int ret;

	if (f->pid == pid && f->addr == addr && !strcmp(f->name, s))
		return f->is;
	ret = str_is_read(pid, off, addr, s);
	if (ret >= 0 && strlen(s) <= MAX_NAME) {
		f->pid = pid;
		f->addr = addr;
		f->is = (int8_t)ret;
		strcpy(f->name, s);
	}
	return ret;
}

static int str_is_read(pid_t pid, const struct tg_py_offsets *off, uint64_t addr, const char *s)
{
	uint8_t buf[128 + MAX_NAME];
	size_t n = strlen(s);
	uint64_t len;
	uint32_t state;
	int ret;

	if (n > MAX_NAME || off->str_ascii + n + 1 > sizeof(buf))
		return -EINVAL;
	ret = rd(pid, addr, buf, off->str_ascii + n + 1);
	if (ret)
		return ret == -EFAULT ? 0 : ret; /* a shorter object at the end of a mapping */
	memcpy(&len, buf + off->str_length, sizeof(len));
	memcpy(&state, buf + off->str_state, sizeof(state));
	/* state: interned:2 kind:3 compact:1 ascii:1 */
	if (!(state & 1U << 5) || !(state & 1U << 6) || len != n)
		return 0;
	return !memcmp(buf + off->str_ascii, s, n + 1);
}

/* The word at offset at of f's type object into *val: from the cache
 * (field, flag bit have) or read once. Returns 0 or a read's error. */
static int type_word(pid_t pid, struct type_fact *f, uint8_t have, uint64_t at, uint64_t *field,
		     uint64_t *val)
{
	if (!(f->have & have)) {
		int ret = rd_ptr(pid, f->type + at, field);

		if (ret)
			return ret;
		f->have |= have;
	}
	*val = *field;
	return 0;
}

/* 0 when the object at obj has type name tp (e.g. "tuple", at most 15
 * characters), -EINVAL when not. */
static int type_is(pid_t pid, uint64_t obj, const char *tp)
{
	struct type_fact *f;
	uint64_t type;
	char buf[16] = "";
	size_t n = strlen(tp);
	int ret;

	if (n + 1 > sizeof(buf))
		return -EINVAL;
	ret = rd_ptr(pid, obj + OB_TYPE, &type);
	if (ret)
		return ret;
	f = type_fact(pid, type);
	if (!(f->have & HAVE_NAME)) {
		/* tp_name is a C string in the target: read what is there of the
		 * first 16 bytes (a shorter name may end the mapping) */
		ret = rd_ptr(pid, type + TP_NAME, &f->name_ptr);
		if (!ret)
			ret = rd(pid, f->name_ptr, buf, n + 1);
		if (ret)
			return ret;
		/* another name is not remembered: only n + 1 bytes were read */
		if (memcmp(buf, tp, n + 1) != 0)
			return -EINVAL;
		memcpy(f->name, buf, n + 1);
		f->have |= HAVE_NAME;
	}
	return strcmp(f->name, tp) ? -EINVAL : 0;
}

/* Look key up in the keys object at keys: values at values (split table) or
 * in the entries (combined). */
static int keys_get(pid_t pid, const struct tg_py_offsets *off, uint64_t keys, uint64_t values,
		    const char *key, uint64_t *val)
{
	uint8_t first[KEYS_READ];
	uint64_t ents[MAX_ENTRIES * 3], nent, at;
	struct split_fact *sf = NULL;
	size_t stride, i, len;
	int64_t n;
	int ret;

	if (values && strlen(key) <= MAX_NAME) {
		/* a type's shared keys: where the name is does not change */
		sf = &cache.splits[slot(pid, keys)];
		if (sf->pid == pid && sf->keys == keys && !strcmp(sf->name, key)) {
			ret = rd_ptr(pid, values + (uint64_t)sf->index * 8, val);
			return ret ? ret : *val ? 0 : -ENOENT;
		}
	}
	/* The header, the index table and the entries in one read when they
	 * fit (small dicts); the header alone when that read fails (a keys
	 * object at the end of a mapping). */
	ret = rd(pid, keys, first, sizeof(first));
	len = sizeof(first);
	if (ret == -EFAULT) {
		ret = rd(pid, keys, first, DK_HDR);
		len = DK_HDR;
	}
	if (ret)
		return ret;
	memcpy(&n, first + 24, sizeof(n));
	if (first[9] > 40 || n < 0 || n > MAX_ENTRIES || first[10] > DK_KIND_SPLIT)
		return -EINVAL;
	stride = first[10] == DK_KIND_GENERAL ? 3 : 2;
	nent = (uint64_t)n;
	if (!nent)
		return -ENOENT;
	at = DK_HDR + (1ULL << first[9]);
	if (at + nent * stride * sizeof(uint64_t) <= len)
		memcpy(ents, first + at, nent * stride * sizeof(uint64_t));
	else if ((ret = rd(pid, keys + at, ents, nent * stride * sizeof(uint64_t))))
		return ret;
	for (i = 0; i < nent; i++) {
		uint64_t k = ents[i * stride + stride - 2];

		if (!k)
			continue; /* deleted */
		ret = str_is(pid, off, k, key);
		if (ret < 0)
			return ret;
		if (!ret)
			continue;
		if (sf) {
			*sf = (struct split_fact){.pid = pid, .keys = keys, .index = (int32_t)i};
			strcpy(sf->name, key);
		}
		ret = 0;
		if (values)
			ret = rd_ptr(pid, values + i * 8, val);
		else
			*val = ents[i * stride + stride - 1];
		if (ret)
			return ret;
		return *val ? 0 : -ENOENT;
	}
	return -ENOENT;
}

int tg_pytask__dict_get(pid_t pid, const struct tg_py_offsets *off, uint64_t dict, const char *key,
			uint64_t *val)
{
	uint64_t kv[2];
	int ret;

	if (!is_311(off))
		return -ENOTSUP;
	ret = type_is(pid, dict, "dict");
	if (!ret)
		ret = rd(pid, dict + MA_KEYS, kv, sizeof(kv));
	if (ret)
		return ret;
	return keys_get(pid, off, kv[0], kv[1], key, val);
}

int tg_pytask__getattr(pid_t pid, const struct tg_py_offsets *off, uint64_t obj, const char *name,
		       uint64_t *val)
{
	uint64_t pre[2], type, flags, keys;
	struct type_fact *f;
	int ret;

	if (!is_311(off))
		return -ENOTSUP;
	ret = rd_ptr(pid, obj + OB_TYPE, &type);
	if (ret)
		return ret;
	f = type_fact(pid, type);
	ret = type_word(pid, f, HAVE_FLAGS, TP_FLAGS, &f->flags, &flags);
	if (ret)
		return ret;
	if (!(flags & TPFLAGS_MANAGED_DICT))
		return -ENOENT;
	ret = rd(pid, obj + MANAGED_VALUES, pre, sizeof(pre)); /* values, dict */
	if (ret)
		return ret;
	if (pre[0]) {
		ret = type_word(pid, f, HAVE_KEYS, HT_CACHED_KEYS, &f->cached_keys, &keys);
		return ret ? ret : keys_get(pid, off, keys, pre[0], name, val);
	}
	if (pre[1])
		return tg_pytask__dict_get(pid, off, pre[1], name, val);
	return -ENOENT;
}

int tg_pytask__tuple_item(pid_t pid, uint64_t tuple, uint64_t i, uint64_t *val)
{
	int64_t n;
	int ret;

	ret = type_is(pid, tuple, "tuple");
	if (!ret)
		ret = rd(pid, tuple + OB_SIZE, &n, sizeof(n));
	if (ret)
		return ret;
	if (n < 0 || i >= (uint64_t)n)
		return -ENOENT;
	return rd_ptr(pid, tuple + TUPLE_ITEMS + i * 8, val);
}

int tg_pytask__small_int(pid_t pid, uint64_t addr, uint64_t *val)
{
	uint8_t buf[12];
	int64_t n;
	uint32_t d;
	int ret;

	ret = type_is(pid, addr, "int");
	if (!ret)
		ret = rd(pid, addr + OB_SIZE, buf, sizeof(buf));
	if (ret)
		return ret;
	memcpy(&n, buf, sizeof(n));
	memcpy(&d, buf + 8, sizeof(d));
	if (n == 0) {
		*val = 0;
		return 0;
	}
	if (n != 1 || d >> 30)
		return -ERANGE;
	*val = d;
	return 0;
}

int tg_pytask__peer_port(pid_t pid, const struct tg_py_offsets *off, uint64_t coro, uint16_t *port)
{
	uint64_t fr[FR_LOCALSPLUS / 8 + 1], code, qual, self, scope, client, pv;
	uint64_t frame = coro + off->k.gen_iframe;
	int ret;

	if (!is_311(off) || !off->k.gen_iframe)
		return -ENOTSUP;
	ret = rd(pid, frame, fr, sizeof(fr));
	if (ret)
		return ret;
	code = fr[off->k.fr_code / 8];
	self = fr[FR_LOCALSPLUS / 8];
	ret = rd_ptr(pid, code + off->co_qualname, &qual);
	if (ret)
		return ret;
	ret = str_is(pid, off, qual, TG_PYTASK_UVICORN_ROOT);
	if (ret <= 0)
		return ret ? ret : -ENOENT;
	ret = tg_pytask__getattr(pid, off, self, "scope", &scope);
	if (!ret)
		ret = tg_pytask__dict_get(pid, off, scope, "client", &client);
	if (!ret)
		ret = tg_pytask__tuple_item(pid, client, 1, &pv);
	if (!ret)
		ret = tg_pytask__small_int(pid, pv, &pv);
	if (ret)
		return ret;
	if (!pv || pv > UINT16_MAX)
		return -ENOENT;
	*port = (uint16_t)pv;
	return 0;
}
