/* SPDX-License-Identifier: MIT */
/* GET /api/status and GET /api/runs (docs/api.md). */
#include "api.h"

#include "store.h"
#include "tg_version.h"

int api_status(struct api_ctx *c)
{
	sqlite3_stmt *st = NULL;
	int version = 0;

	if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	c->out = cJSON_CreateObject();
	if (!c->out)
		return api_fail(c, 500, "out of memory");
	cJSON_AddStringToObject(c->out, "version", TG_VERSION);
	cJSON_AddStringToObject(c->out, "db", c->cfg->db_path);
	cJSON_AddBoolToObject(c->out, "live", c->cfg->live);
	cJSON_AddNumberToObject(c->out, "schema_version", version);
	return 200;
}

int api_runs(struct api_ctx *c)
{
	sqlite3_stmt *st = NULL;
	cJSON *runs, *run;
	int rc;

	if (sqlite3_prepare_v2(c->db, "SELECT id FROM runs ORDER BY id DESC", -1, &st, NULL) !=
	    SQLITE_OK)
		return api_db_fail(c, "listing runs");
	c->out = cJSON_CreateObject();
	runs = cJSON_AddArrayToObject(c->out, "runs");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		run = api_run_json(c->db, sqlite3_column_int64(st, 0));
		if (!run)
			break;
		cJSON_AddItemToArray(runs, run);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return api_db_fail(c, "listing runs");
	return 200;
}
