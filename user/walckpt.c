/* SPDX-License-Identifier: MIT */
/* Background WAL checkpoints (walckpt.h). */
#include "walckpt.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define CKPT_BUSY_TIMEOUT_MS 5000
#define SQLITE_AUTOCHECKPOINT_PAGES 1000 /* SQLite's default */

struct tg_walckpt {
	sqlite3 *writer; /* the connection whose commits we follow */
	sqlite3 *db;	 /* ours */
	int pages, max_pages;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool pending, stop;
};

/* Runs in the committing thread after each commit (sqlite3_wal_hook). The
 * commit has happened whatever this returns. */
static int on_commit(void *arg, sqlite3 *db, const char *schema, int frames)
{
	struct tg_walckpt *c = arg;

	if (frames >= c->max_pages) {
		sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		return SQLITE_OK;
	}
	if (frames >= c->pages) {
		pthread_mutex_lock(&c->lock);
		c->pending = true;
		pthread_cond_signal(&c->wake);
		pthread_mutex_unlock(&c->lock);
	}
	return SQLITE_OK;
}

static void *checkpointer_main(void *arg)
{
	struct tg_walckpt *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->pending && !c->stop)
			pthread_cond_wait(&c->wake, &c->lock);
		if (c->stop)
			break;
		c->pending = false;
		pthread_mutex_unlock(&c->lock);
		/* PASSIVE: copies what no reader still needs and never waits for
		 * the writer; what it leaves is taken by the next one. */
		sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Our connection, having read the file once: a connection learns that the
 * file is in WAL mode (and opens the WAL) when it first reads it, and until
 * then a checkpoint does nothing. */
static sqlite3 *open_reader(const char *path)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) ==
	    SQLITE_OK) {
		sqlite3_busy_timeout(db, CKPT_BUSY_TIMEOUT_MS);
		if (sqlite3_exec(db, "PRAGMA schema_version", NULL, NULL, NULL) == SQLITE_OK)
			return db;
	}
	sqlite3_close(db);
	return NULL;
}

struct tg_walckpt *tg_walckpt__start(sqlite3 *writer, const char *path, int pages, int max_pages)
{
	struct tg_walckpt *c;

	if (!writer || !path || pages <= 0 || max_pages < pages)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->writer = writer;
	c->pages = pages;
	c->max_pages = max_pages;
	c->db = open_reader(path);
	if (!c->db) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	if (pthread_create(&c->thread, NULL, checkpointer_main, c)) {
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->wake);
		sqlite3_close(c->db);
		free(c);
		return NULL;
	}
	sqlite3_wal_hook(writer, on_commit, c); /* replaces SQLite's autocheckpoint */
	return c;
}

void tg_walckpt__stop(struct tg_walckpt *c)
{
	if (!c)
		return;
	sqlite3_wal_autocheckpoint(c->writer, SQLITE_AUTOCHECKPOINT_PAGES);
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->wake);
	sqlite3_close(c->db);
	free(c);
}
