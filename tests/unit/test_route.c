// SPDX-License-Identifier: MIT
/* Route templates: matching, OpenAPI parsing, text round trip, heuristics. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

#ifndef TG_TEST_DATA
#define TG_TEST_DATA "tests/data"
#endif

static char buf[256];

static const char *match(const struct tg_routes *t, const char *method, const char *path)
{
	if (!tg_route__match(t, method, path, buf, sizeof(buf)))
		return NULL;
	return buf;
}

static const char *heur(const char *path)
{
	tg_route__heuristic(path, buf, sizeof(buf));
	return buf;
}

static void test_add_rejects_bad_templates(void **state)
{
	struct tg_routes *t = tg_routes__new();
	(void)state;

	assert_non_null(t);
	assert_int_equal(tg_routes__add(t, "GET", ""), -EINVAL);
	assert_int_equal(tg_routes__add(t, "GET", "items"), -EINVAL);
	assert_int_equal(tg_routes__add(t, "GET", "/a\nb"), -EINVAL);
	assert_int_equal(tg_routes__add(t, "VERYLONGMETHODNAME", "/a"), -EINVAL);
	assert_int_equal(tg_routes__add(NULL, "GET", "/a"), -EINVAL);
	assert_int_equal(tg_routes__count(t), 0);
	/* duplicates are kept once */
	assert_int_equal(tg_routes__add(t, "get", "/a"), 0);
	assert_int_equal(tg_routes__add(t, "GET", "/a"), 0);
	assert_int_equal(tg_routes__count(t), 1);
	assert_int_equal(tg_routes__count(NULL), 0);
	tg_routes__free(t);
	tg_routes__free(NULL);
}

static void test_no_table(void **state)
{
	(void)state;
	assert_null(match(NULL, "GET", "/items/1"));
	struct tg_routes *t = tg_routes__new();
	assert_null(match(t, "GET", "/items/1"));
	tg_route__resolve(NULL, "GET", "/items/42?x=1", buf, sizeof(buf));
	assert_string_equal(buf, "/items/{id}");
	tg_route__resolve(t, "GET", "/items/42", buf, sizeof(buf));
	assert_string_equal(buf, "/items/{id}");
	tg_routes__free(t);
}

static void test_literal_beats_param(void **state)
{
	struct tg_routes *t = tg_routes__new();
	(void)state;

	/* declared param-first: specificity, not order, decides */
	assert_int_equal(tg_routes__add(t, "GET", "/items/{item_id}"), 0);
	assert_int_equal(tg_routes__add(t, "GET", "/items/special"), 0);
	assert_int_equal(tg_routes__add(t, "GET", "/users/{user_id}/orders/{order_id}"), 0);
	assert_int_equal(tg_routes__add(t, "GET", "/users/me/orders/{order_id}"), 0);
	assert_int_equal(tg_routes__add(t, "GET", "/users/{user_id}/orders/latest"), 0);
	assert_int_equal(tg_routes__add(t, "GET", "/"), 0);

	assert_string_equal(match(t, "GET", "/items/special"), "/items/special");
	assert_string_equal(match(t, "GET", "/items/17"), "/items/{item_id}");
	assert_string_equal(match(t, "GET", "/users/me/orders/5"), "/users/me/orders/{order_id}");
	/* earlier segments weigh more: literal "me" beats literal "latest" later */
	assert_string_equal(match(t, "GET", "/users/me/orders/latest"),
			    "/users/me/orders/{order_id}");
	assert_string_equal(match(t, "GET", "/users/9/orders/latest"),
			    "/users/{user_id}/orders/latest");
	assert_string_equal(match(t, "GET", "/"), "/");
	/* a parameter never matches an empty segment */
	assert_null(match(t, "GET", "/items/"));
	assert_null(match(t, "GET", "/items"));
	assert_null(match(t, "GET", "/items/1/2"));
	assert_null(match(t, "GET", ""));
	assert_null(match(t, "GET", "items/1"));
	assert_null(match(t, "GET", NULL));
	tg_routes__free(t);
}

static void test_ties_first_added(void **state)
{
	struct tg_routes *t = tg_routes__new();
	(void)state;

	assert_int_equal(tg_routes__add(t, "GET", "/a/{x}"), 0);
	assert_int_equal(tg_routes__add(t, "GET", "/a/{y}"), 0);
	assert_string_equal(match(t, "GET", "/a/1"), "/a/{x}");
	tg_routes__free(t);
}

static void test_path_param(void **state)
{
	struct tg_routes *t = tg_routes__new();
	(void)state;

	assert_int_equal(tg_routes__add(t, "GET", "/files/{file_path:path}"), 0);
	assert_int_equal(tg_routes__add(t, "GET", "/files/{name}/meta"), 0);
	assert_int_equal(tg_routes__add(t, "GET", "/raw/{p:path}/blob"), 0);
	/* openapi form of a path param: an ordinary one-segment param */
	assert_int_equal(tg_routes__add(t, "GET", "/docs/{doc_path}"), 0);

	assert_string_equal(match(t, "GET", "/files/a"), "/files/{file_path:path}");
	assert_string_equal(match(t, "GET", "/files/a/b/c.txt"), "/files/{file_path:path}");
	assert_string_equal(match(t, "GET", "/files/"), "/files/{file_path:path}");
	assert_string_equal(match(t, "GET", "/files/x/meta"), "/files/{name}/meta");
	assert_null(match(t, "GET", "/files"));
	assert_string_equal(match(t, "GET", "/raw/a/b/blob"), "/raw/{p:path}/blob");
	assert_string_equal(match(t, "GET", "/raw/a/blob"), "/raw/{p:path}/blob");
	assert_null(match(t, "GET", "/raw/blob"));
	assert_null(match(t, "GET", "/raw/a/b"));
	assert_string_equal(match(t, "GET", "/docs/x"), "/docs/{doc_path}");
	assert_null(match(t, "GET", "/docs/x/y"));
	tg_routes__free(t);
}

static void test_mixed_segment(void **state)
{
	struct tg_routes *t = tg_routes__new();
	(void)state;

	assert_int_equal(tg_routes__add(t, "GET", "/img/{name}.png"), 0);
	assert_int_equal(tg_routes__add(t, "GET", "/img/{any}"), 0);
	assert_int_equal(tg_routes__add(t, "GET", "/img/logo.png"), 0);
	assert_string_equal(match(t, "GET", "/img/cat.png"), "/img/{name}.png");
	assert_string_equal(match(t, "GET", "/img/logo.png"), "/img/logo.png");
	assert_string_equal(match(t, "GET", "/img/.png"), "/img/{any}");
	assert_string_equal(match(t, "GET", "/img/cat.gif"), "/img/{any}");
	tg_routes__free(t);
}

static void test_method_fallback(void **state)
{
	struct tg_routes *t = tg_routes__new();
	(void)state;

	assert_int_equal(tg_routes__add(t, "GET", "/items/special"), 0);
	assert_int_equal(tg_routes__add(t, "POST", "/items/{id}"), 0);
	assert_int_equal(tg_routes__add(t, "*", "/any/{x}"), 0);
	assert_int_equal(tg_routes__add(t, NULL, "/all"), 0);

	/* POST has a template for this path: it wins over a more specific GET one */
	assert_string_equal(match(t, "POST", "/items/special"), "/items/{id}");
	assert_string_equal(match(t, "GET", "/items/special"), "/items/special");
	assert_string_equal(match(t, "get", "/items/special"), "/items/special");
	/* DELETE has none: the most specific template of any method (a 405) */
	assert_string_equal(match(t, "DELETE", "/items/special"), "/items/special");
	assert_string_equal(match(t, "GET", "/items/3"), "/items/{id}");
	assert_string_equal(match(t, NULL, "/items/3"), "/items/{id}");
	assert_string_equal(match(t, "PATCH", "/any/1"), "/any/{x}");
	assert_string_equal(match(t, "HEAD", "/all"), "/all");
	tg_routes__free(t);
}

static void test_query_and_trailing_slash(void **state)
{
	struct tg_routes *t = tg_routes__new();
	(void)state;

	assert_int_equal(tg_routes__add(t, "GET", "/a"), 0);
	assert_int_equal(tg_routes__add(t, "GET", "/b/"), 0);
	assert_string_equal(match(t, "GET", "/a?x=1&y=/2"), "/a");
	assert_string_equal(match(t, "GET", "/a#frag"), "/a");
	assert_string_equal(match(t, "GET", "/a?"), "/a");
	assert_null(match(t, "GET", "/a/"));
	assert_null(match(t, "GET", "/b"));
	assert_string_equal(match(t, "GET", "/b/?q"), "/b/");
	tg_routes__free(t);
}

static void test_out_truncated(void **state)
{
	struct tg_routes *t = tg_routes__new();
	char small[6];
	(void)state;

	assert_int_equal(tg_routes__add(t, "GET", "/items/{item_id}"), 0);
	assert_true(tg_route__match(t, "GET", "/items/1", small, sizeof(small)));
	assert_string_equal(small, "/item");
	assert_true(tg_route__match(t, "GET", "/items/1", NULL, 0));
	tg_route__resolve(t, "GET", "/zzzzzzzzzzzz", small, sizeof(small));
	assert_string_equal(small, "/zzzz");
	tg_routes__free(t);
}

static void test_hundred_templates(void **state)
{
	struct tg_routes *t = tg_routes__new();
	char tmpl[64], path[64];
	(void)state;

	for (int i = 0; i < 25; i++) {
		snprintf(tmpl, sizeof(tmpl), "/svc%d/items", i);
		assert_int_equal(tg_routes__add(t, "GET", tmpl), 0);
		snprintf(tmpl, sizeof(tmpl), "/svc%d/items/{id}", i);
		assert_int_equal(tg_routes__add(t, "GET", tmpl), 0);
		snprintf(tmpl, sizeof(tmpl), "/svc%d/items/{id}/tags/{tag}", i);
		assert_int_equal(tg_routes__add(t, "PUT", tmpl), 0);
		snprintf(tmpl, sizeof(tmpl), "/svc%d/{p:path}", i);
		assert_int_equal(tg_routes__add(t, "GET", tmpl), 0);
	}
	assert_int_equal(tg_routes__count(t), 100);
	for (int i = 0; i < 25; i++) {
		snprintf(path, sizeof(path), "/svc%d/items/%d", i, i * 7);
		snprintf(tmpl, sizeof(tmpl), "/svc%d/items/{id}", i);
		assert_string_equal(match(t, "GET", path), tmpl);
		snprintf(path, sizeof(path), "/svc%d/items/1/tags/x?y", i);
		snprintf(tmpl, sizeof(tmpl), "/svc%d/items/{id}/tags/{tag}", i);
		assert_string_equal(match(t, "PUT", path), tmpl);
		snprintf(path, sizeof(path), "/svc%d/static/app.js", i);
		snprintf(tmpl, sizeof(tmpl), "/svc%d/{p:path}", i);
		assert_string_equal(match(t, "GET", path), tmpl);
	}
	assert_null(match(t, "GET", "/svc25/items"));
	tg_routes__free(t);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return s;
}

static void test_openapi_demo(void **state)
{
	struct tg_routes *t = tg_routes__new();
	size_t len;
	char *json = read_file(TG_TEST_DATA "/openapi_demo.json", &len);
	(void)state;

	/* /, /items/{item_id} x3, /items/special, /items (post), two /users, /files, /health */
	assert_int_equal(tg_routes__add_openapi(t, json, len), 10);
	assert_int_equal(tg_routes__count(t), 10);
	/* adding it again adds nothing */
	assert_int_equal(tg_routes__add_openapi(t, json, len), 0);
	assert_string_equal(match(t, "GET", "/items/5"), "/items/{item_id}");
	assert_string_equal(match(t, "DELETE", "/items/5"), "/items/{item_id}");
	assert_string_equal(match(t, "GET", "/items/special"), "/items/special");
	assert_string_equal(match(t, "POST", "/items"), "/items");
	assert_string_equal(match(t, "GET", "/users/me/orders/x1"), "/users/me/orders/{order_id}");
	assert_string_equal(match(t, "GET", "/users/3/orders/x1"),
			    "/users/{user_id}/orders/{order_id}");
	assert_string_equal(match(t, "GET", "/health?verbose=1"), "/health");
	/* openapi loses ":path": a one-segment file matches, a deeper one does not */
	assert_string_equal(match(t, "GET", "/files/a.txt"), "/files/{file_path}");
	assert_null(match(t, "GET", "/files/a/b.txt"));
	assert_null(match(t, "GET", "/openapi.json"));
	free(json);
	tg_routes__free(t);
}

static void test_openapi_malformed(void **state)
{
	struct tg_routes *t = tg_routes__new();
	static const char *const bad[] = {
	    "",
	    "{",
	    "[]",
	    "null",
	    "{\"openapi\":\"3.0.2\"}",
	    "{\"paths\":[]}",
	    "{\"paths\":{\"/a\":",
	};
	const char *ok =
	    "{\"paths\":{\"/a\":{\"get\":{},\"POST\":{},\"parameters\":[]},"
	    "\"/b\":{\"patch\":{},\"head\":{}},\"/c\":{},\"bad\":{\"get\":{}},\"/d\":3}}";
	char *text;
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tg_routes__add_openapi(t, bad[i], strlen(bad[i])), -EINVAL);
	assert_int_equal(tg_routes__add_openapi(t, NULL, 0), -EINVAL);
	/* length is honoured: the valid document cut short is malformed */
	assert_int_equal(tg_routes__add_openapi(t, ok, 20), -EINVAL);
	assert_int_equal(tg_routes__count(t), 0);
	/* keys are case-sensitive in OpenAPI; templates not starting with '/' are skipped */
	assert_int_equal(tg_routes__add_openapi(t, ok, strlen(ok)), 3);
	text = tg_routes__to_text(t);
	assert_non_null(text);
	assert_string_equal(text, "GET /a\nHEAD /b\nPATCH /b\n");
	free(text);
	tg_routes__free(t);
}

static void test_text_round_trip(void **state)
{
	struct tg_routes *a = tg_routes__new(), *b = tg_routes__new();
	char *ta, *tb;
	(void)state;

	ta = tg_routes__to_text(a);
	assert_string_equal(ta, "");
	free(ta);
	assert_int_equal(tg_routes__add(a, "GET", "/items/{item_id}"), 0);
	assert_int_equal(tg_routes__add(a, "post", "/files/{p:path}"), 0);
	assert_int_equal(tg_routes__add(a, NULL, "/all"), 0);
	ta = tg_routes__to_text(a);
	assert_string_equal(ta, "GET /items/{item_id}\nPOST /files/{p:path}\n* /all\n");
	assert_int_equal(tg_routes__add_text(b, ta), 0);
	tb = tg_routes__to_text(b);
	assert_string_equal(ta, tb);
	assert_string_equal(match(b, "POST", "/files/x/y"), "/files/{p:path}");
	assert_string_equal(match(b, "DELETE", "/all"), "/all");
	free(tb);
	free(ta);

	/* CRLF, blank lines and no final newline are accepted */
	assert_int_equal(tg_routes__add_text(b, "\nGET /x\r\n\nPUT /y"), 0);
	assert_int_equal(tg_routes__count(b), 5);
	assert_int_equal(tg_routes__add_text(b, "GET"), -EINVAL);
	assert_int_equal(tg_routes__add_text(b, "GET \n"), -EINVAL);
	assert_int_equal(tg_routes__add_text(b, " /x\n"), -EINVAL);
	assert_int_equal(tg_routes__add_text(b, "GET nope\n"), -EINVAL);
	assert_int_equal(tg_routes__add_text(NULL, "GET /x\n"), -EINVAL);
	assert_int_equal(tg_routes__add_text(b, ""), 0);
	tg_routes__free(a);
	tg_routes__free(b);
}

static void test_heuristics(void **state)
{
	static const char *const cases[][2] = {
	    {"", "/"},
	    {NULL, "/"},
	    {"?a=1", "/"},
	    {"/", "/"},
	    {"/health", "/health"},
	    {"/a/", "/a/"},
	    {"//", "//"},
	    {"*", "*"},
	    {"/items/42", "/items/{id}"},
	    {"/items/42?x=1/2", "/items/{id}"},
	    {"/users/7/orders/0012", "/users/{id}/orders/{id}"},
	    {"/u/123e4567-e89b-12d3-a456-426614174000", "/u/{uuid}"},
	    {"/u/123E4567-E89B-12D3-A456-426614174000/x", "/u/{uuid}/x"},
	    {"/u/123e4567-e89b-12d3-a456-42661417400", "/u/{token}"},
	    {"/day/2024-01-02", "/day/{date}"},
	    {"/day/2024-1-02", "/day/2024-1-02"},
	    {"/c/5f3a9b2c", "/c/{hex}"},
	    {"/c/5F3A9B2C", "/c/{hex}"},
	    {"/c/5f3A9b2c", "/c/5f3A9b2c"},
	    {"/c/deadbeef", "/c/deadbeef"},
	    {"/c/5f3a9b2", "/c/5f3a9b2"},
	    {"/c/abcdefabcdefabcd", "/c/{hex}"},
	    {"/c/ABCDEFabcdef1234", "/c/{hex}"},
	    {"/commit/9fceb02d0ae598e95dc970b74767f19372d61af8", "/commit/{hex}"},
	    {"/t/eyJhbGciOiJIUzI1NiJ9abc", "/t/{token}"},
	    {"/t/aGVsbG8gd29ybGQgMTIzNA==", "/t/{token}"},
	    {"/t/AbC_dEf-gHi_jKl-1234", "/t/{token}"},
	    {"/t/a-very-long-slug-without-digits", "/t/a-very-long-slug-without-digits"},
	    {"/t/12345678901234567890-", "/t/12345678901234567890-"},
	    {"/t/short123", "/t/short123"},
	    {"/v1/users", "/v1/users"},
	    {"/files/report%202024.pdf", "/files/report%202024.pdf"},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tg_route__heuristic(cases[i][0], buf, sizeof(buf));
		if (strcmp(buf, cases[i][1]))
			fail_msg("heuristic(%s) = %s, want %s", cases[i][0] ? cases[i][0] : "NULL",
				 buf, cases[i][1]);
	}
}

static void test_heuristic_truncation(void **state)
{
	char out[8];
	(void)state;

	tg_route__heuristic("/items/42", out, sizeof(out));
	assert_string_equal(out, "/items/");
	tg_route__heuristic("/abc", out, 1);
	assert_string_equal(out, "");
	tg_route__heuristic("", out, 1);
	assert_string_equal(out, "");
	tg_route__heuristic("/12", out, 4);
	assert_string_equal(out, "/{i");
	tg_route__heuristic("/x", NULL, 0); /* must not crash */
	assert_string_equal(heur("/x/1"), "/x/{id}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_rejects_bad_templates),
	    cmocka_unit_test(test_no_table),
	    cmocka_unit_test(test_literal_beats_param),
	    cmocka_unit_test(test_ties_first_added),
	    cmocka_unit_test(test_path_param),
	    cmocka_unit_test(test_mixed_segment),
	    cmocka_unit_test(test_method_fallback),
	    cmocka_unit_test(test_query_and_trailing_slash),
	    cmocka_unit_test(test_out_truncated),
	    cmocka_unit_test(test_hundred_templates),
	    cmocka_unit_test(test_openapi_demo),
	    cmocka_unit_test(test_openapi_malformed),
	    cmocka_unit_test(test_text_round_trip),
	    cmocka_unit_test(test_heuristics),
	    cmocka_unit_test(test_heuristic_truncation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
