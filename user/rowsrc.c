/* SPDX-License-Identifier: MIT */
/* A virtual table whose rows come from a C callback (rowsrc.h). */
#include "rowsrc.h"

#include <stdlib.h>
#include <string.h>

struct rowsrc_aux {
	struct tg_rowsrc *src;
	char schema[]; /* the CREATE TABLE given at registration */
};

struct rowsrc_vtab {
	sqlite3_vtab base;
	struct tg_rowsrc *src;
};

struct rowsrc_cursor {
	sqlite3_vtab_cursor base;
	struct tg_rowsrc *src;
	size_t row;
};

static int rs_connect(sqlite3 *db, void *paux, int argc, const char *const *argv,
		      sqlite3_vtab **out, char **err)
{
	struct rowsrc_aux *aux = paux;
	struct rowsrc_vtab *vt;
	int rc;

	(void)argc;
	(void)argv;
	(void)err;
	rc = sqlite3_declare_vtab(db, aux->schema);
	if (rc != SQLITE_OK)
		return rc;
	/* Only statements prepared by the program itself may read it. */
	sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
	vt = sqlite3_malloc(sizeof(*vt));
	if (!vt)
		return SQLITE_NOMEM;
	memset(vt, 0, sizeof(*vt));
	vt->src = aux->src;
	*out = &vt->base;
	return SQLITE_OK;
}

static int rs_disconnect(sqlite3_vtab *vt)
{
	sqlite3_free(vt);
	return SQLITE_OK;
}

/* A full scan is the only plan. */
static int rs_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
	struct rowsrc_vtab *v = (struct rowsrc_vtab *)vt;

	info->estimatedCost = (double)v->src->n + 1;
	info->estimatedRows = (sqlite3_int64)v->src->n + 1;
	return SQLITE_OK;
}

static int rs_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
	struct rowsrc_cursor *c = sqlite3_malloc(sizeof(*c));

	if (!c)
		return SQLITE_NOMEM;
	memset(c, 0, sizeof(*c));
	c->src = ((struct rowsrc_vtab *)vt)->src;
	*out = &c->base;
	return SQLITE_OK;
}

static int rs_close(sqlite3_vtab_cursor *cur)
{
	sqlite3_free(cur);
	return SQLITE_OK;
}

static int rs_filter(sqlite3_vtab_cursor *cur, int idx, const char *idxstr, int argc,
		     sqlite3_value **argv)
{
	(void)idx;
	(void)idxstr;
	(void)argc;
	(void)argv;
	((struct rowsrc_cursor *)cur)->row = 0;
	return SQLITE_OK;
}

static int rs_next(sqlite3_vtab_cursor *cur)
{
	((struct rowsrc_cursor *)cur)->row++;
	return SQLITE_OK;
}

static int rs_eof(sqlite3_vtab_cursor *cur)
{
	struct rowsrc_cursor *c = (struct rowsrc_cursor *)cur;

	return c->row >= c->src->n;
}

static int rs_column(sqlite3_vtab_cursor *cur, sqlite3_context *out, int col)
{
	struct rowsrc_cursor *c = (struct rowsrc_cursor *)cur;

	c->src->column(c->src->ctx, c->row, col, out);
	return SQLITE_OK;
}

static int rs_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
	*rowid = (sqlite3_int64)((struct rowsrc_cursor *)cur)->row;
	return SQLITE_OK;
}

static const sqlite3_module rowsrc_module = {
    .iVersion = 0,
    .xCreate = NULL, /* eponymous only: used by its name, never CREATEd */
    .xConnect = rs_connect,
    .xBestIndex = rs_best_index,
    .xDisconnect = rs_disconnect,
    .xDestroy = rs_disconnect,
    .xOpen = rs_open,
    .xClose = rs_close,
    .xFilter = rs_filter,
    .xNext = rs_next,
    .xEof = rs_eof,
    .xColumn = rs_column,
    .xRowid = rs_rowid,
};

int tg_rowsrc__register(sqlite3 *db, const char *name, const char *schema, struct tg_rowsrc *src)
{
	size_t len;
	struct rowsrc_aux *aux;

	if (!db || !name || !schema || !src || !src->column)
		return SQLITE_MISUSE;
	len = strlen(schema) + 1;
	aux = malloc(sizeof(*aux) + len);
	if (!aux)
		return SQLITE_NOMEM;
	aux->src = src;
	memcpy(aux->schema, schema, len);
	/* the module owns aux from here, even on failure (free is its destructor) */
	return sqlite3_create_module_v2(db, name, &rowsrc_module, aux, free);
}
