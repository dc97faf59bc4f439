/* SPDX-License-Identifier: MIT */
/* The subcommands of `timeglass`, one file each, dispatched from main.c's table. */
#ifndef TG_CLI_H
#define TG_CLI_H

/* Each returns the process exit code: 0 success, 1 failure, 2 usage error. */
int cmd_trace(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_flamegraph(int argc, char **argv);

#define TG_EXIT_OK 0
#define TG_EXIT_FAIL 1
#define TG_EXIT_USAGE 2

#endif
