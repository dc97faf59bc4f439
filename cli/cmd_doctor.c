/* SPDX-License-Identifier: MIT */
/* `timeglass doctor`: the environment checks as a table; exit 1 when one fails. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "doctor.h"

int cmd_doctor(int argc, char **argv)
{
	struct tg_check checks[TG_MAX_CHECKS];
	size_t n, i;
	int failed = 0;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: timeglass doctor\n\n"
		       "Checks what `timeglass trace` needs: kernel version (5.17+), BTF, root or\n"
		       "CAP_BPF/CAP_PERFMON/CAP_SYS_PTRACE, tracefs, kernel lockdown; lists the "
		       "running\n"
		       "uvicorn processes and their Python. Exit status 1 when a check fails.\n");
		return TG_EXIT_OK;
	}
	if (argc > 1) {
		fprintf(stderr, "timeglass doctor: unexpected argument '%s'\n", argv[1]);
		return TG_EXIT_USAGE;
	}
	n = tg_doctor__run(checks, 0);
	tg_doctor__print(checks, n);
	for (i = 0; i < n; i++)
		failed |= checks[i].status == TG_CHECK_FAIL;
	return failed ? TG_EXIT_FAIL : TG_EXIT_OK;
}
