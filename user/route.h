/* SPDX-License-Identifier: MIT */
/*
 * Route templates: turning raw paths into the endpoint they hit.
 *
 * A table holds the templates a FastAPI app publishes at /openapi.json
 * ("/items/{item_id}"). tg_route__match() finds the template a path matches
 * (literal segments beat parameters; `{p:path}` swallows the rest). When none
 * matches, or no table is known, tg_route__heuristic() replaces segments that
 * look like identifiers (numbers, UUIDs, hex ids, long tokens) with `{id}`,
 * `{uuid}`, `{hex}`, `{token}`, so there is never one route per raw URL.
 */
#ifndef TG_ROUTE_H
#define TG_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

struct tg_routes;

/* An empty table. NULL + errno on failure. */
struct tg_routes *tg_routes__new(void);
/* Free; accepts NULL. */
void tg_routes__free(struct tg_routes *t);
/* Add a template for a method ("GET") or for every method (method NULL or "*").
 * Returns 0 or -errno. */
int tg_routes__add(struct tg_routes *t, const char *method, const char *tmpl);
/* Number of templates held. */
size_t tg_routes__count(const struct tg_routes *t);
/* Parse an OpenAPI document (JSON text, len bytes) and add every path of its
 * "paths" object with each of its operations. Returns the number of templates
 * added, or -EINVAL when the text is not an OpenAPI document. */
int tg_routes__add_openapi(struct tg_routes *t, const char *json, size_t len);
/* Serialise as "METHOD TEMPLATE\n" lines (recordings' TG_EV_ROUTES); the
 * caller frees the string. NULL + errno on failure. */
char *tg_routes__to_text(const struct tg_routes *t);
/* Add the lines produced by tg_routes__to_text. Returns 0 or -EINVAL. */
int tg_routes__add_text(struct tg_routes *t, const char *text);

/* Write into out (size cap) the template matching method + path (path without
 * query string; a '?' ends it). Returns true when a template matched. t may
 * be NULL (no table). */
bool tg_route__match(const struct tg_routes *t, const char *method, const char *path, char *out,
		     size_t cap);

/* Heuristic template of a path (query string removed). Always succeeds;
 * out is NUL-terminated and truncated to cap. */
void tg_route__heuristic(const char *path, char *out, size_t cap);

/* tg_route__match, falling back to tg_route__heuristic. */
void tg_route__resolve(const struct tg_routes *t, const char *method, const char *path, char *out,
		       size_t cap);

#endif
