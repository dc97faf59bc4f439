/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the header scanner against libhttp_parser
 * (user/httphead.c). Byte 0 bit 0 picks a response; the rest is the block.
 * Whatever the scanner accepts, libhttp_parser must accept with the same
 * fields.
 */
#include <stddef.h>
#include <stdint.h>

#include "httphead.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_http_head a, b;
	bool response;

	if (size < 1)
		return 0;
	response = data[0] & 1;
	if (!tg_httphead__parse_fast(data + 1, size - 1, response, &a))
		return 0;
	if (!tg_httphead__parse_full(data + 1, size - 1, response, &b))
		__builtin_trap();
	if (a.minor != b.minor || a.chunked != b.chunked || a.has_length != b.has_length ||
	    (a.has_length && a.length != b.length))
		__builtin_trap();
	if (response ? a.status != b.status
		     : a.method != b.method || a.url != b.url || a.url_len != b.url_len)
		__builtin_trap();
	return 0;
}
