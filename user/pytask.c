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

static int rd(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	if (addr < 4096)
		return -EINVAL;
	return tg_pyruntime__read(pid, addr, buf, len);
}

static int rd_ptr(pid_t pid, uint64_t addr, uint64_t *val)
{
	return rd(pid, addr, val, sizeof(*val));
}

static bool is_311(const struct tg_py_offsets *off)
{
	return off->major == 3 && off->minor == 11;
}

/* 1 when the str object at addr is the compact ASCII string s, 0 when not. */
static int str_is(pid_t pid, const struct tg_py_offsets *off, uint64_t addr, const char *s)
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

/* 0 when the object at obj has type name tp (e.g. "tuple"), -EINVAL when not. */
static int type_is(pid_t pid, uint64_t obj, const char *tp)
{
	uint64_t type, name;
	char buf[16];
	size_t n = strlen(tp);
	int ret;

	ret = rd_ptr(pid, obj + OB_TYPE, &type);
	if (!ret)
		ret = rd_ptr(pid, type + TP_NAME, &name);
	if (!ret)
		ret = n + 1 > sizeof(buf) ? -EINVAL : rd(pid, name, buf, n + 1);
	if (ret)
		return ret;
	return memcmp(buf, tp, n + 1) ? -EINVAL : 0;
}

/* Look key up in the keys object at keys: values at values (split table) or
 * in the entries (combined). */
static int keys_get(pid_t pid, const struct tg_py_offsets *off, uint64_t keys, uint64_t values,
		    const char *key, uint64_t *val)
{
	uint8_t hdr[DK_HDR];
	uint64_t ents[MAX_ENTRIES * 3], nent, base;
	size_t stride, i;
	int64_t n;
	int ret;

	ret = rd(pid, keys, hdr, sizeof(hdr));
	if (ret)
		return ret;
	memcpy(&n, hdr + 24, sizeof(n));
	if (hdr[9] > 40 || n < 0 || n > MAX_ENTRIES || hdr[10] > DK_KIND_SPLIT)
		return -EINVAL;
	stride = hdr[10] == DK_KIND_GENERAL ? 3 : 2;
	nent = (uint64_t)n;
	if (!nent)
		return -ENOENT;
	base = keys + DK_HDR + (1ULL << hdr[9]);
	ret = rd(pid, base, ents, nent * stride * sizeof(uint64_t));
	if (ret)
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
	int ret;

	if (!is_311(off))
		return -ENOTSUP;
	ret = rd_ptr(pid, obj + OB_TYPE, &type);
	if (!ret)
		ret = rd_ptr(pid, type + TP_FLAGS, &flags);
	if (ret)
		return ret;
	if (!(flags & TPFLAGS_MANAGED_DICT))
		return -ENOENT;
	ret = rd(pid, obj + MANAGED_VALUES, pre, sizeof(pre)); /* values, dict */
	if (ret)
		return ret;
	if (pre[0]) {
		ret = rd_ptr(pid, type + HT_CACHED_KEYS, &keys);
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
