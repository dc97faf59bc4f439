/* SPDX-License-Identifier: MIT */
/* `timeglass`: dispatch to the subcommand named by argv[1]. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "tg_version.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
    {"trace", cmd_trace, "attach to uvicorn servers and record every HTTP request"},
    {"report", cmd_report, "print a run's per-endpoint latency report (text, json, markdown)"},
    {"replay", cmd_replay, "rebuild a database from a recording made with trace --record"},
    {"serve", cmd_serve, "serve the dashboard for a database (docs/serve.md)"},
    {"flamegraph", cmd_flamegraph, "draw the Python CPU samples of an endpoint or request"},
    {"doctor", cmd_doctor, "check the kernel, BTF, privileges and tracefs; say what to fix"},
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: timeglass COMMAND [OPTIONS]\n\n"
		     "A kernel-assisted profiler for Python web services.\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n`timeglass COMMAND --help` describes each command.\n");
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return TG_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return TG_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("timeglass %s\n", TG_VERSION);
		return TG_EXIT_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "timeglass: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return TG_EXIT_USAGE;
}
