/* SPDX-License-Identifier: MIT */
/*
 * Checkpoints of a WAL database on a thread of their own.
 *
 * SQLite checkpoints in the committing thread by default (every 1000 WAL
 * pages): the writer then copies pages into the database file and waits for
 * two fdatasync calls. Here a commit that leaves the WAL past a threshold only
 * wakes a checkpointer thread, which runs a PASSIVE checkpoint on its own
 * connection while the writer goes on (SQLite lets a checkpoint and a writer
 * run at once; a checkpoint never copies a frame that is not committed).
 *
 * The WAL restarts from its beginning only when a write transaction starts
 * with every frame checkpointed, which a writer that is never idle rarely
 * sees while the checkpointer runs beside it. So once the WAL reaches a
 * second threshold the committing thread checkpoints itself as SQLite would
 * (little is left to copy by then) and the next transaction restarts it: the
 * WAL stays bounded.
 */
#ifndef TG_WALCKPT_H
#define TG_WALCKPT_H

#include <sqlite3.h>

struct tg_walckpt;

/* Take over the checkpoints of writer (a connection to the WAL database at
 * path): wake the checkpointer when a commit leaves at least pages frames in
 * the WAL, checkpoint in the committing thread from max_pages. Returns NULL
 * (writer keeps SQLite's own checkpoints) when the connection or the thread
 * cannot be had. */
struct tg_walckpt *tg_walckpt__start(sqlite3 *writer, const char *path, int pages, int max_pages);

/* Stop the checkpointer and close its connection; writer goes back to
 * SQLite's automatic checkpoints. Call it when no thread uses writer.
 * Accepts NULL. */
void tg_walckpt__stop(struct tg_walckpt *c);

#endif
