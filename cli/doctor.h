/* SPDX-License-Identifier: MIT */
/*
 * The environment checks behind `timeglass doctor` and the preconditions of
 * `timeglass trace`: kernel version, BTF, privileges, tracefs, lockdown,
 * Python targets. Each check says what it found and, when it fails, what to do.
 */
#ifndef TG_DOCTOR_H
#define TG_DOCTOR_H

#include <stddef.h>

enum tg_check_status { TG_CHECK_OK = 0, TG_CHECK_WARN, TG_CHECK_FAIL };

struct tg_check {
	const char *name;
	enum tg_check_status status;
	char detail[256]; /* what was found */
	char fix[256];	  /* what to do, empty when nothing */
};

#define TG_MAX_CHECKS 16

/* Run every check into checks (TG_MAX_CHECKS entries). tracing: also count
 * "not root" as a failure (trace needs it; doctor only reports). Returns the
 * number of checks written. */
size_t tg_doctor__run(struct tg_check *checks, int tracing);

/* Print checks as an aligned table to stdout. */
void tg_doctor__print(const struct tg_check *checks, size_t n);

/* Mount tracefs at /sys/kernel/tracing when it is missing. Returns 0 when it
 * is (now) mounted, -errno otherwise. */
int tg_doctor__ensure_tracefs(void);

#endif
