/* SPDX-License-Identifier: MIT */
/*
 * Privileges when run through sudo: files the tracer creates (database,
 * recording) are given to the invoking user, and a command started with
 * `trace -- COMMAND` runs as that user, not as root.
 */
#ifndef TG_PRIVS_H
#define TG_PRIVS_H

#include <stdbool.h>
#include <sys/types.h>

/* The invoking user from SUDO_UID/SUDO_GID/SUDO_USER when running as root
 * through sudo. Returns true and fills uid/gid when there is one. */
bool tg_privs__sudo_user(uid_t *uid, gid_t *gid, const char **name);

/* chown path to the sudo user, if any (missing files are ignored).
 * Returns 0 or -errno. */
int tg_privs__give_to_user(const char *path);

/* chown the database file and its -wal and -shm companions. */
void tg_privs__give_db_to_user(const char *db_path);

/* In a child about to exec: become the sudo user (groups, gid, uid), if any.
 * Returns 0 or -errno. */
int tg_privs__drop_to_user(void);

/* For the dashboard server: when root, become the sudo user, or `nobody`
 * when there is none; irreversibly (setuid back to 0 must fail). Nothing to
 * do when not root. Returns 0 or -errno (the caller must not serve then). */
int tg_privs__drop_for_server(void);

#endif
