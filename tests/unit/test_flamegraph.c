// SPDX-License-Identifier: MIT
/*
 * Flame graph trie and writers: merging, folded round trip, speedscope parsed back with cJSON,
 * SVG structure and escaping, empty graphs, deep and wide graphs.
 * With TG_FG_SAMPLE=path set, also writes a sample SVG of a web server's stacks there.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "flamegraph.h"

/* Output of a writer as a NUL-terminated string (caller frees). */
enum fmt { FOLDED, SPEEDSCOPE, SVG };

static char *render(const struct tg_fg *fg, enum fmt f, const struct tg_fg_svg_opts *opts)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int err;

	assert_non_null(m);
	if (f == FOLDED)
		err = tg_fg__write_folded(fg, m);
	else if (f == SPEEDSCOPE)
		err = tg_fg__write_speedscope(fg, m, "test profile");
	else
		err = tg_fg__write_svg(fg, m, opts);
	assert_int_equal(err, 0);
	assert_int_equal(fclose(m), 0);
	return buf;
}

static size_t count_str(const char *s, const char *needle)
{
	size_t n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/*
 * A small structural check of the SVG: every '<' starts a tag, comment, CDATA or declaration;
 * every '&' starts an entity; <g>/<title>/<text> open and close counts match; the script's
 * CDATA section is the only one.
 */
static void check_svg(const char *svg, size_t want_boxes)
{
	const char *end = strstr(svg, "<script");
	const char *p;

	assert_non_null(strstr(svg, "<?xml"));
	assert_non_null(strstr(svg, "</svg>"));
	if (!end)
		end = svg + strlen(svg);
	for (p = svg; p < end; p++) {
		if (*p == '<')
			assert_true(p[1] == '/' || p[1] == '?' || p[1] == '!' ||
				    (p[1] >= 'a' && p[1] <= 'z'));
		if (*p == '&')
			assert_true(!strncmp(p, "&lt;", 4) || !strncmp(p, "&gt;", 4) ||
				    !strncmp(p, "&amp;", 5) || !strncmp(p, "&quot;", 6) ||
				    !strncmp(p, "&apos;", 6));
	}
	assert_int_equal(count_str(svg, "<g"), count_str(svg, "</g>"));
	assert_int_equal(count_str(svg, "<title>"), count_str(svg, "</title>"));
	assert_int_equal(count_str(svg, "<text"), count_str(svg, "</text>"));
	assert_int_equal(count_str(svg, "<g class=\"f\""), want_boxes);
	assert_int_equal(count_str(svg, "<title>"), want_boxes);
	/* one <rect> per box plus the background */
	assert_int_equal(count_str(svg, "<rect"), want_boxes + 1);
	assert_true(count_str(svg, "<![CDATA[") <= 1);
}

static void add3(struct tg_fg *fg, const char *a, const char *b, const char *c, uint64_t n)
{
	const char *fr[] = {a, b, c};
	size_t nf = c ? 3 : b ? 2 : 1;

	assert_int_equal(tg_fg__add(fg, fr, nf, n), 0);
}

static void test_empty(void **state)
{
	struct tg_fg *fg = tg_fg__new();
	struct tg_fg_iter *it;
	char *s;
	cJSON *j, *prof;

	(void)state;
	assert_non_null(fg);
	assert_int_equal(tg_fg__total(fg), 0);
	assert_int_equal(tg_fg__nnodes(fg), 0);
	it = tg_fg_iter__new(fg);
	assert_non_null(it);
	assert_int_equal(tg_fg_iter__next(it, NULL, NULL, NULL), 0);
	assert_int_equal(tg_fg_iter__next(it, NULL, NULL, NULL), 0);
	tg_fg_iter__free(it);

	s = render(fg, FOLDED, NULL);
	assert_string_equal(s, "");
	free(s);

	s = render(fg, SPEEDSCOPE, NULL);
	j = cJSON_Parse(s);
	assert_non_null(j);
	assert_int_equal(
	    cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "shared"), "frames")), 0);
	prof = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "profiles"), 0);
	assert_non_null(prof);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(prof, "samples")), 0);
	assert_int_equal(cJSON_GetObjectItem(prof, "endValue")->valuedouble, 0);
	cJSON_Delete(j);
	free(s);

	s = render(fg, SVG, NULL);
	check_svg(s, 0);
	assert_non_null(strstr(s, "no samples"));
	free(s);
	tg_fg__free(fg);
	tg_fg__free(NULL);
	tg_fg_iter__free(NULL);
	assert_int_equal(tg_fg__total(NULL), 0);
}

static void test_add_invalid(void **state)
{
	struct tg_fg *fg = tg_fg__new();
	const char *ok[] = {"a", "b"};
	const char *null_name[] = {"a", NULL};
	const char *empty_name[] = {"a", ""};

	(void)state;
	assert_int_equal(tg_fg__add(NULL, ok, 2, 1), -EINVAL);
	assert_int_equal(tg_fg__add(fg, NULL, 2, 1), -EINVAL);
	assert_int_equal(tg_fg__add(fg, ok, 0, 1), -EINVAL);
	assert_int_equal(tg_fg__add(fg, null_name, 2, 1), -EINVAL);
	assert_int_equal(tg_fg__add(fg, empty_name, 2, 1), -EINVAL);
	assert_int_equal(tg_fg__nnodes(fg), 0);
	assert_int_equal(tg_fg__add(fg, ok, 2, 0), 0); /* no-op */
	assert_int_equal(tg_fg__total(fg), 0);
	assert_int_equal(tg_fg__add(fg, ok, 2, UINT64_MAX - 1), 0);
	assert_int_equal(tg_fg__add(fg, ok, 1, 2), -EOVERFLOW);
	assert_int_equal(tg_fg__add(fg, ok, 1, 1), 0);
	assert_true(tg_fg__total(fg) == UINT64_MAX);

	assert_int_equal(tg_fg__add_folded_line(fg, NULL), -EINVAL);
	assert_int_equal(tg_fg__add_folded_line(NULL, "a 1"), -EINVAL);
	tg_fg__free(fg);
}

static void test_merge_and_totals(void **state)
{
	struct tg_fg *fg = tg_fg__new();
	char *s;

	(void)state;
	add3(fg, "main", "handle", "parse", 3);
	add3(fg, "main", "handle", "render", 2);
	add3(fg, "main", "handle", NULL, 1);
	add3(fg, "main", "handle", "parse", 4);
	add3(fg, "main", "idle", NULL, 5);
	add3(fg, "other", "handle", NULL, 1); /* same name, another parent: another node */
	assert_int_equal(tg_fg__total(fg), 16);
	assert_int_equal(tg_fg__nnames(fg), 6);
	assert_int_equal(tg_fg__nnodes(fg), 7);
	assert_int_equal(tg_fg__max_depth(fg), 3);
	s = render(fg, FOLDED, NULL);
	assert_string_equal(s, "main;handle 1\n"
			       "main;handle;parse 7\n"
			       "main;handle;render 2\n"
			       "main;idle 5\n"
			       "other;handle 1\n");
	free(s);
	tg_fg__free(fg);
}

static void test_folded_line_parse(void **state)
{
	struct tg_fg *fg = tg_fg__new();
	char *s;

	(void)state;
	assert_int_equal(tg_fg__add_folded_line(fg, "a;b"), -EINVAL);
	assert_int_equal(tg_fg__add_folded_line(fg, "a;b "), -EINVAL);
	assert_int_equal(tg_fg__add_folded_line(fg, " 3"), -EINVAL);
	assert_int_equal(tg_fg__add_folded_line(fg, "3"), -EINVAL);
	assert_int_equal(tg_fg__add_folded_line(fg, ""), -EINVAL);
	assert_int_equal(tg_fg__add_folded_line(fg, "a;;b 3"), -EINVAL);
	assert_int_equal(tg_fg__add_folded_line(fg, ";a 3"), -EINVAL);
	assert_int_equal(tg_fg__add_folded_line(fg, "a; 3"), -EINVAL);
	assert_int_equal(tg_fg__add_folded_line(fg, "a;b x3"), -EINVAL);
	assert_int_equal(tg_fg__add_folded_line(fg, "a;b -3"), -EINVAL);
	assert_int_equal(tg_fg__add_folded_line(fg, "a 99999999999999999999999"), -EINVAL);
	assert_int_equal(tg_fg__total(fg), 0);
	assert_int_equal(tg_fg__nnodes(fg), 0);

	assert_int_equal(tg_fg__add_folded_line(fg, "a;b 3\n"), 0);
	assert_int_equal(tg_fg__add_folded_line(fg, "a;b 4\r\n"), 0);
	assert_int_equal(tg_fg__add_folded_line(fg, "x y (f.py:1);z 5"), 0);
	assert_int_equal(tg_fg__add_folded_line(fg, "a 18446744073709551600"), 0);
	assert_true(tg_fg__total(fg) == 18446744073709551600ULL + 12);
	s = render(fg, FOLDED, NULL);
	assert_string_equal(s, "a 18446744073709551600\na;b 7\nx y (f.py:1);z 5\n");
	free(s);
	tg_fg__free(fg);
}

static const char *const web_lines[] = {
    "<module> (/usr/bin/uvicorn:8);main (uvicorn/main.py:404);run (asyncio/runners.py:118) 3",
    "<module> (/usr/bin/uvicorn:8);main (uvicorn/main.py:404);run (asyncio/runners.py:118);"
    "handler (app.py:12) 40",
    "<module> (/usr/bin/uvicorn:8);main (uvicorn/main.py:404);run (asyncio/runners.py:118);"
    "handler (app.py:12);json_dumps (app.py:30) 25",
    "<module> (/usr/bin/uvicorn:8);main (uvicorn/main.py:404);run (asyncio/runners.py:118);"
    "handler (app.py:12);query (db.py:88) 61",
    "<module> (/usr/bin/uvicorn:8);main (uvicorn/main.py:404);run (asyncio/runners.py:118);"
    "select (selectors.py:469) 120",
    "[idle] 7",
};

static void test_folded_round_trip(void **state)
{
	struct tg_fg *fg = tg_fg__new();
	size_t n = sizeof(web_lines) / sizeof(web_lines[0]), len = 0;
	char *want, *s;
	uint64_t total = 0;

	(void)state;
	for (size_t i = 0; i < n; i++)
		len += strlen(web_lines[i]) + 1;
	want = calloc(1, len + 1);
	assert_non_null(want);
	/* insert in reverse order, expect sorted output */
	for (size_t i = n; i-- > 0;)
		assert_int_equal(tg_fg__add_folded_line(fg, web_lines[i]), 0);
	for (size_t i = 0; i < n; i++) {
		strcat(want, web_lines[i]);
		strcat(want, "\n");
		total += strtoull(strrchr(web_lines[i], ' ') + 1, NULL, 10);
	}
	assert_int_equal(tg_fg__total(fg), total);
	s = render(fg, FOLDED, NULL);
	assert_string_equal(s, want);
	free(s);
	tg_fg__free(fg);
	free(want);
}

static void test_folded_semicolon_in_name(void **state)
{
	struct tg_fg *fg = tg_fg__new();
	char *s;

	(void)state;
	add3(fg, "a;b", "c", NULL, 2);
	s = render(fg, FOLDED, NULL);
	assert_string_equal(s, "a:b;c 2\n");
	free(s);
	tg_fg__free(fg);
}

static void test_iterator(void **state)
{
	struct tg_fg *fg = tg_fg__new();
	struct tg_fg_iter *it;
	const char *const *fr;
	size_t n;
	uint64_t c;

	(void)state;
	add3(fg, "b", "y", NULL, 1);
	add3(fg, "a", "z", "q", 2);
	add3(fg, "a", NULL, NULL, 3);
	assert_null(tg_fg_iter__new(NULL));
	it = tg_fg_iter__new(fg);
	assert_non_null(it);
	assert_int_equal(tg_fg_iter__next(it, &fr, &n, &c), 1);
	assert_int_equal(n, 1);
	assert_string_equal(fr[0], "a");
	assert_int_equal(c, 3);
	assert_int_equal(tg_fg_iter__next(it, &fr, &n, &c), 1);
	assert_int_equal(n, 3);
	assert_string_equal(fr[0], "a");
	assert_string_equal(fr[1], "z");
	assert_string_equal(fr[2], "q");
	assert_int_equal(c, 2);
	assert_int_equal(tg_fg_iter__next(it, &fr, &n, &c), 1);
	assert_int_equal(n, 2);
	assert_string_equal(fr[0], "b");
	assert_string_equal(fr[1], "y");
	assert_int_equal(tg_fg_iter__next(it, &fr, &n, &c), 0);
	tg_fg_iter__free(it);
	tg_fg__free(fg);
}

static const char *str_item(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_speedscope(void **state)
{
	struct tg_fg *fg = tg_fg__new();
	size_t n = sizeof(web_lines) / sizeof(web_lines[0]);
	cJSON *j, *frames, *prof, *samples, *weights, *f;
	char *s, *folded, *rebuilt;
	double wsum = 0;

	(void)state;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(tg_fg__add_folded_line(fg, web_lines[i]), 0);
	s = render(fg, SPEEDSCOPE, NULL);
	j = cJSON_Parse(s);
	assert_non_null(j);
	assert_string_equal(str_item(j, "$schema"),
			    "https://www.speedscope.app/file-format-schema.json");
	assert_string_equal(str_item(j, "exporter"), "timeglass");
	assert_string_equal(str_item(j, "name"), "test profile");
	frames = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "shared"), "frames");
	assert_int_equal(cJSON_GetArraySize(frames), tg_fg__nnames(fg));
	prof = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "profiles"), 0);
	assert_string_equal(str_item(prof, "type"), "sampled");
	assert_string_equal(str_item(prof, "unit"), "none");
	assert_string_equal(str_item(prof, "name"), "test profile");
	assert_int_equal(cJSON_GetObjectItem(prof, "startValue")->valuedouble, 0);
	assert_int_equal(cJSON_GetObjectItem(prof, "endValue")->valuedouble, tg_fg__total(fg));
	samples = cJSON_GetObjectItem(prof, "samples");
	weights = cJSON_GetObjectItem(prof, "weights");
	assert_int_equal(cJSON_GetArraySize(samples), n);
	assert_int_equal(cJSON_GetArraySize(weights), n);

	/* frames split as "qualname (file:line)" */
	f = NULL;
	cJSON_ArrayForEach(f, frames)
	{
		const char *name = str_item(f, "name");

		assert_non_null(name);
		if (!strcmp(name, "query")) {
			assert_string_equal(str_item(f, "file"), "db.py");
			assert_int_equal(cJSON_GetObjectItem(f, "line")->valuedouble, 88);
		} else if (!strcmp(name, "<module>")) {
			assert_string_equal(str_item(f, "file"), "/usr/bin/uvicorn");
			assert_int_equal(cJSON_GetObjectItem(f, "line")->valuedouble, 8);
		} else if (!strcmp(name, "[idle]")) {
			assert_null(cJSON_GetObjectItem(f, "file"));
			assert_null(cJSON_GetObjectItem(f, "line"));
		}
	}

	/* rebuild folded lines from samples + weights and compare with the folded writer */
	folded = render(fg, FOLDED, NULL);
	rebuilt = calloc(1, strlen(folded) + 1);
	assert_non_null(rebuilt);
	for (int i = 0; i < cJSON_GetArraySize(samples); i++) {
		cJSON *smp = cJSON_GetArrayItem(samples, i), *idx;
		char num[32];
		int k = 0;

		cJSON_ArrayForEach(idx, smp)
		{
			cJSON *fr = cJSON_GetArrayItem(frames, idx->valueint);
			const char *file = str_item(fr, "file");

			assert_non_null(fr);
			if (k++)
				strcat(rebuilt, ";");
			strcat(rebuilt, str_item(fr, "name"));
			if (file) {
				snprintf(num, sizeof(num), ":%d)",
					 cJSON_GetObjectItem(fr, "line")->valueint);
				strcat(rebuilt, " (");
				strcat(rebuilt, file);
				strcat(rebuilt, num);
			}
		}
		wsum += cJSON_GetArrayItem(weights, i)->valuedouble;
		snprintf(num, sizeof(num), " %.0f\n", cJSON_GetArrayItem(weights, i)->valuedouble);
		strcat(rebuilt, num);
	}
	assert_string_equal(rebuilt, folded);
	assert_true(wsum == (double)tg_fg__total(fg));
	free(rebuilt);
	free(folded);
	cJSON_Delete(j);
	free(s);
	tg_fg__free(fg);
}

static void test_svg_structure(void **state)
{
	struct tg_fg *fg = tg_fg__new();
	size_t n = sizeof(web_lines) / sizeof(web_lines[0]);
	struct tg_fg_svg_opts o = {.title = "CPU: GET /items", .subtitle = "99 Hz sampling"};
	char *s;

	(void)state;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(tg_fg__add_folded_line(fg, web_lines[i]), 0);
	s = render(fg, SVG, &o);
	check_svg(s, tg_fg__nnodes(fg));
	assert_non_null(strstr(s, ">CPU: GET /items</text>"));
	assert_non_null(strstr(s, "256 samples \u00b7 99 Hz sampling</text>"));
	assert_non_null(strstr(s, "<title>&lt;module&gt; (/usr/bin/uvicorn:8) \u2014 249 samples "
				  "(97.27 %)</title>"));
	assert_non_null(strstr(s, "<title>query (db.py:88) \u2014 61 samples (23.83 %)</title>"));
	assert_non_null(strstr(s, "<title>[idle] \u2014 7 samples (2.73 %)</title>"));
	assert_non_null(strstr(s, ">Search</text>"));
	assert_non_null(strstr(s, ">Reset zoom</text>"));
	assert_non_null(strstr(s, "<script type=\"text/ecmascript\"><![CDATA["));
	/* the script section holds no CDATA terminator but its own */
	assert_int_equal(count_str(s, "]]>"), 1);
	/* same function, same colour; root bottom-up: the first box (depth 1) is lowest */
	{
		const char *r = strstr(s, "<rect x=\"10.00\" y=\"");
		assert_non_null(r);
		assert_int_equal(atof(r + strlen("<rect x=\"10.00\" y=\"")), 56 + 16 * 4);
	}
	free(s);
	o.icicle = true;
	s = render(fg, SVG, &o);
	check_svg(s, tg_fg__nnodes(fg));
	assert_non_null(strstr(s, "<rect x=\"10.00\" y=\"56.0\""));
	free(s);
	tg_fg__free(fg);
}

static void test_svg_hides_narrow_and_truncates(void **state)
{
	struct tg_fg *fg = tg_fg__new();
	struct tg_fg_svg_opts o = {.width = 300};
	char *s;

	(void)state;
	add3(fg, "a_rather_long_function_name_that_cannot_fit (somewhere/deep/module.py:1234)",
	     NULL, NULL, 100000);
	add3(fg, "tiny", NULL, NULL, 50); /* 0.05 %: hidden */
	add3(fg, "short", NULL, NULL, 20000);
	s = render(fg, SVG, &o);
	check_svg(s, 2);
	assert_null(strstr(s, "tiny"));
	assert_non_null(strstr(s, ">short</text>"));
	assert_non_null(strstr(s, ">a_rather_long_function_name_th"));
	assert_non_null(strstr(s, "..</text>"));
	assert_null(strstr(s, "(somewhere/deep/module.py:1234)</text>"));
	free(s);
	tg_fg__free(fg);
}

static void test_escaping(void **state)
{
	struct tg_fg *fg = tg_fg__new();
	const char *a[] = {"<module> (a&b.py:3)", "say \"hi\" \\ 'x' (q.py:1)"};
	const char *b[] = {"caf\xc3\xa9_\xe2\x82\xac (\xc3\xbc.py:2)", "bad\xff\xfe\x01z"};
	struct tg_fg_svg_opts o = {.title = "<b>&\"", .subtitle = "\xe2\x80\x94 ok \xc0"};
	cJSON *j, *frames;
	char *s;
	int seen = 0;

	(void)state;
	assert_int_equal(tg_fg__add(fg, a, 2, 1), 0);
	assert_int_equal(tg_fg__add(fg, b, 2, 1), 0);

	s = render(fg, FOLDED, NULL);
	assert_non_null(strstr(s, "caf\xc3\xa9_\xe2\x82\xac (\xc3\xbc.py:2);bad???z 1\n"));
	free(s);

	s = render(fg, SVG, &o);
	check_svg(s, 4);
	assert_non_null(strstr(s, "&lt;module&gt; (a&amp;b.py:3)"));
	assert_non_null(strstr(s, "say &quot;hi&quot; \\ &apos;x&apos; (q.py:1)"));
	assert_non_null(strstr(s, "caf\xc3\xa9_\xe2\x82\xac (\xc3\xbc.py:2)"));
	assert_non_null(strstr(s, "bad???z"));
	assert_non_null(strstr(s, ">&lt;b&gt;&amp;&quot;</text>"));
	assert_non_null(strstr(s, "\xe2\x80\x94 ok ?</text>"));
	assert_null(strstr(s, "\xff"));
	free(s);

	s = render(fg, SPEEDSCOPE, NULL);
	j = cJSON_Parse(s);
	assert_non_null(j);
	frames = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "shared"), "frames");
	for (int i = 0; i < cJSON_GetArraySize(frames); i++) {
		cJSON *f = cJSON_GetArrayItem(frames, i);
		const char *name = str_item(f, "name");

		if (!strcmp(name, "<module>")) {
			assert_string_equal(str_item(f, "file"), "a&b.py");
			seen++;
		} else if (!strcmp(name, "say \"hi\" \\ 'x'")) {
			assert_string_equal(str_item(f, "file"), "q.py");
			seen++;
		} else if (!strcmp(name, "caf\xc3\xa9_\xe2\x82\xac")) {
			assert_string_equal(str_item(f, "file"), "\xc3\xbc.py");
			seen++;
		} else if (!strcmp(name, "bad???z")) {
			seen++;
		}
	}
	assert_int_equal(seen, 4);
	cJSON_Delete(j);
	free(s);
	tg_fg__free(fg);
}

static void test_deep_stack(void **state)
{
	enum { DEPTH = 300 };
	struct tg_fg *fg = tg_fg__new();
	const char *fr[DEPTH];
	char names[DEPTH][24];
	struct tg_fg_iter *it;
	const char *const *got;
	size_t n;
	uint64_t c;
	char *s;
	cJSON *j, *smp;

	(void)state;
	for (int i = 0; i < DEPTH; i++) {
		snprintf(names[i], sizeof(names[i]), "f%03d (m.py:%d)", i, i + 1);
		fr[i] = names[i];
	}
	assert_int_equal(tg_fg__add(fg, fr, DEPTH, 5), 0);
	assert_int_equal(tg_fg__add(fg, fr, 128, 3), 0);
	assert_int_equal(tg_fg__max_depth(fg), DEPTH);
	assert_int_equal(tg_fg__nnodes(fg), DEPTH);
	it = tg_fg_iter__new(fg);
	assert_int_equal(tg_fg_iter__next(it, &got, &n, &c), 1);
	assert_int_equal(n, 128);
	assert_int_equal(c, 3);
	assert_int_equal(tg_fg_iter__next(it, &got, &n, &c), 1);
	assert_int_equal(n, DEPTH);
	assert_string_equal(got[DEPTH - 1], names[DEPTH - 1]);
	assert_int_equal(tg_fg_iter__next(it, &got, &n, &c), 0);
	tg_fg_iter__free(it);

	s = render(fg, SVG, NULL);
	check_svg(s, DEPTH);
	free(s);
	s = render(fg, SPEEDSCOPE, NULL);
	j = cJSON_Parse(s);
	smp = cJSON_GetArrayItem(
	    cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "profiles"), 0),
				"samples"),
	    1);
	assert_int_equal(cJSON_GetArraySize(smp), DEPTH);
	cJSON_Delete(j);
	free(s);
	tg_fg__free(fg);
}

static void test_many_stacks(void **state)
{
	enum { N = 100000 };
	struct tg_fg *fg = tg_fg__new();
	char a[32], b[32], c[32], *s;
	size_t lines = 0, boxes = 0;

	(void)state;
	for (int i = 0; i < N; i++) {
		const char *fr[] = {a, b, c};

		snprintf(a, sizeof(a), "mod%d", i % 10);
		snprintf(b, sizeof(b), "fn%d", i % 1000);
		snprintf(c, sizeof(c), "leaf%d", i);
		assert_int_equal(tg_fg__add(fg, fr, 3, 1 + i % 3), 0);
	}
	assert_int_equal(tg_fg__nnodes(fg), 10 + 1000 + N);
	assert_int_equal(tg_fg__total(fg), (uint64_t)N / 3 * 6 + 1);
	s = render(fg, FOLDED, NULL);
	for (char *p = s; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, N);
	assert_non_null(strstr(s, "mod0;fn0;leaf0 1\nmod0;fn0;leaf1000 2\n"));
	free(s);
	/* leaves (<= 3 samples) are hidden; a fn shows if >= 0.1 % of the samples and >= 1 px */
	for (int f = 0; f < 1000; f++) {
		uint64_t t = 0;

		for (int i = f; i < N; i += 1000)
			t += 1 + i % 3;
		boxes += t * 1000 >= tg_fg__total(fg) && t * 1180.0 / tg_fg__total(fg) >= 1.0;
	}
	assert_true(boxes > 0 && boxes < 1000);
	s = render(fg, SVG, NULL);
	check_svg(s, 10 + boxes);
	free(s);
	tg_fg__free(fg);
}

/* A sample graph of a FastAPI server, for looking at: TG_FG_SAMPLE=/tmp/fg.svg. */
static void test_write_sample(void **state)
{
	static const char *const lines[] = {
	    "uvicorn (/usr/bin/uvicorn:8);run (uvicorn/server.py:61);run_until_complete "
	    "(asyncio/base_events.py:640);_run_once (asyncio/base_events.py:1922);select "
	    "(selectors.py:469) 410",
	    "uvicorn (/usr/bin/uvicorn:8);run (uvicorn/server.py:61);run_until_complete "
	    "(asyncio/base_events.py:640);_run_once (asyncio/base_events.py:1922);_run "
	    "(asyncio/events.py:80);run_asgi (uvicorn/protocols/http/httptools_impl.py:419);"
	    "__call__ (fastapi/applications.py:276);__call__ (starlette/routing.py:718);handle "
	    "(starlette/routing.py:276);app (fastapi/routing.py:237);list_items (app.py:42);"
	    "fetch_items (db.py:88);execute (asyncpg/connection.py:317) 230",
	    "uvicorn (/usr/bin/uvicorn:8);run (uvicorn/server.py:61);run_until_complete "
	    "(asyncio/base_events.py:640);_run_once (asyncio/base_events.py:1922);_run "
	    "(asyncio/events.py:80);run_asgi (uvicorn/protocols/http/httptools_impl.py:419);"
	    "__call__ (fastapi/applications.py:276);__call__ (starlette/routing.py:718);handle "
	    "(starlette/routing.py:276);app (fastapi/routing.py:237);list_items (app.py:42);"
	    "serialize (app.py:61);jsonable_encoder (fastapi/encoders.py:120) 310",
	    "uvicorn (/usr/bin/uvicorn:8);run (uvicorn/server.py:61);run_until_complete "
	    "(asyncio/base_events.py:640);_run_once (asyncio/base_events.py:1922);_run "
	    "(asyncio/events.py:80);run_asgi (uvicorn/protocols/http/httptools_impl.py:419);"
	    "__call__ (fastapi/applications.py:276);__call__ (starlette/routing.py:718);handle "
	    "(starlette/routing.py:276);app (fastapi/routing.py:237);list_items (app.py:42);"
	    "serialize (app.py:61);jsonable_encoder (fastapi/encoders.py:120);"
	    "jsonable_encoder (fastapi/encoders.py:151) 190",
	    "uvicorn (/usr/bin/uvicorn:8);run (uvicorn/server.py:61);run_until_complete "
	    "(asyncio/base_events.py:640);_run_once (asyncio/base_events.py:1922);_run "
	    "(asyncio/events.py:80);run_asgi (uvicorn/protocols/http/httptools_impl.py:419);"
	    "__call__ (fastapi/applications.py:276);__call__ (starlette/routing.py:718);handle "
	    "(starlette/routing.py:276);app (fastapi/routing.py:237);get_user (app.py:77);"
	    "hash_password (auth.py:12);pbkdf2_hmac (hashlib.py:1) 520",
	    "uvicorn (/usr/bin/uvicorn:8);run (uvicorn/server.py:61);run_until_complete "
	    "(asyncio/base_events.py:640);_run_once (asyncio/base_events.py:1922);_run "
	    "(asyncio/events.py:80);run_asgi (uvicorn/protocols/http/httptools_impl.py:419);"
	    "__call__ (fastapi/applications.py:276);__call__ (starlette/routing.py:718);handle "
	    "(starlette/routing.py:276);app (fastapi/routing.py:237);serialize_response "
	    "(fastapi/routing.py:139);validate (pydantic/fields.py:857) 140",
	    "uvicorn (/usr/bin/uvicorn:8);run (uvicorn/server.py:61);run_until_complete "
	    "(asyncio/base_events.py:640);_run_once (asyncio/base_events.py:1922);_run "
	    "(asyncio/events.py:80);data_received (uvicorn/protocols/http/httptools_impl.py:"
	    "171);feed_data (httptools/parser.py:1) 95",
	    "uvicorn (/usr/bin/uvicorn:8);run (uvicorn/server.py:61);run_until_complete "
	    "(asyncio/base_events.py:640);_run_once (asyncio/base_events.py:1922);_run "
	    "(asyncio/events.py:80);send (uvicorn/protocols/http/httptools_impl.py:520);"
	    "write (asyncio/selector_events.py:908) 60",
	    "uvicorn (/usr/bin/uvicorn:8);gc_collect (<gc>:0) 25",
	    "[idle] 30",
	};
	const char *path = getenv("TG_FG_SAMPLE");
	struct tg_fg *fg;
	struct tg_fg_svg_opts o = {
	    .title = "CPU flame graph \u2014 uvicorn app:app (pid 4242)",
	    .subtitle = "99 Hz sampling \u2014 each sample \u2248 10 ms of CPU (an estimate)",
	};
	FILE *f;

	(void)state;
	if (!path)
		skip();
	fg = tg_fg__new();
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		assert_int_equal(tg_fg__add_folded_line(fg, lines[i]), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(tg_fg__write_svg(fg, f, &o), 0);
	assert_int_equal(fclose(f), 0);
	tg_fg__free(fg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_add_invalid),
	    cmocka_unit_test(test_merge_and_totals),
	    cmocka_unit_test(test_folded_line_parse),
	    cmocka_unit_test(test_folded_round_trip),
	    cmocka_unit_test(test_folded_semicolon_in_name),
	    cmocka_unit_test(test_iterator),
	    cmocka_unit_test(test_speedscope),
	    cmocka_unit_test(test_svg_structure),
	    cmocka_unit_test(test_svg_hides_narrow_and_truncates),
	    cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_deep_stack),
	    cmocka_unit_test(test_many_stacks),
	    cmocka_unit_test(test_write_sample),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
