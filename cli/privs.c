/* SPDX-License-Identifier: MIT */
/* sudo-aware ownership and privilege dropping (privs.h). */
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

bool tg_privs__sudo_user(uid_t *uid, gid_t *gid, const char **name)
{
	const char *u = getenv("SUDO_UID"), *g = getenv("SUDO_GID");
	char *end;
	unsigned long lu, lg;

	if (geteuid() != 0 || !u || !g)
		return false;
	lu = strtoul(u, &end, 10);
	if (*end || !*u)
		return false;
	lg = strtoul(g, &end, 10);
	if (*end || !*g || lu == 0)
		return false;
	*uid = (uid_t)lu;
	*gid = (gid_t)lg;
	if (name)
		*name = getenv("SUDO_USER");
	return true;
}

int tg_privs__give_to_user(const char *path)
{
	uid_t uid;
	gid_t gid;

	if (!tg_privs__sudo_user(&uid, &gid, NULL))
		return 0;
	if (chown(path, uid, gid) != 0 && errno != ENOENT)
		return -errno;
	return 0;
}

void tg_privs__give_db_to_user(const char *db_path)
{
	char p[4096];

	tg_privs__give_to_user(db_path);
	snprintf(p, sizeof(p), "%s-wal", db_path);
	tg_privs__give_to_user(p);
	snprintf(p, sizeof(p), "%s-shm", db_path);
	tg_privs__give_to_user(p);
}

int tg_privs__drop_to_user(void)
{
	const char *name = NULL;
	uid_t uid;
	gid_t gid;

	if (!tg_privs__sudo_user(&uid, &gid, &name))
		return 0;
	if (name ? initgroups(name, gid) != 0 : setgroups(0, NULL) != 0)
		return -errno;
	if (setgid(gid) != 0 || setuid(uid) != 0)
		return -errno;
	return 0;
}

int tg_privs__drop_for_server(void)
{
	struct passwd *pw;
	int ret;

	if (geteuid() != 0)
		return 0;
	ret = tg_privs__drop_to_user();
	if (ret)
		return ret;
	if (geteuid() != 0)
		return 0;
	/* root without sudo: nobody */
	pw = getpwnam("nobody");
	if (!pw)
		return -ENOENT;
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
		return -errno;
	if (setuid(0) == 0)
		return -EPERM; /* the drop must be irreversible */
	return 0;
}
