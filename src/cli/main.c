/* SPDX-License-Identifier: MIT */
/*
 * main.c - entry point of `sluice`: dispatches to the subcommands check,
 * lint, replay and bench (SPEC section 6), and answers --help and
 * --version.  Each subcommand parses its own flags.
 */
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: sluice <command> [options]\n"
    "\n"
    "commands:\n"
    "  check   --config FILE (--rule R --key K | --method M --path P --ip A)\n"
    "          [--cost N] [--store URL] [--json] [--tier T] [--header 'Name: value' ...]\n"
    "          one decision; exit 0 allowed, 1 denied, 2 no decision\n"
    "  lint    FILE...\n"
    "          validate configs; exit 0 ok, 1 errors (file:line: reason)\n"
    "  replay  --config FILE [--store URL] [--json]\n"
    "          decide lines 'TIME_MS RULE[@TIER] KEY [COST]' read on stdin\n"
    "  bench   --config FILE --rule R [--store URL] [--keys N] [--requests N]\n"
    "          [--concurrency N] [--threads N] [--hot]\n"
    "          decisions per second and latency percentiles\n"
    "\n"
    "  sluice <command> --help   options of one command\n"
    "  sluice --version          print the version\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("sluice %s\n", SLUICE_VERSION);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "check") == 0)
        return cli_check(argc - 1, argv + 1);
    if (strcmp(cmd, "lint") == 0)
        return cli_lint(argc - 1, argv + 1);
    if (strcmp(cmd, "replay") == 0)
        return cli_replay(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return cli_bench(argc - 1, argv + 1);
    fprintf(stderr, "sluice: unknown command '%s'\n\n%s", cmd, usage);
    return CLI_EXIT_USAGE;
}
