/* SPDX-License-Identifier: MIT */
/*
 * cli.h - shared pieces of the `sluice` command-line tool: the subcommand
 * entry points, strict number parsing, config/store opening and decision
 * output (text and JSON via jansson).  The CLI uses only the public API of
 * include/sluice.h; it prints, and it decides its exit status, which the
 * library never does.
 *
 * Exit status convention of every subcommand (SPEC section 6):
 *   0  success / allowed
 *   1  denied (check) or invalid config (lint)
 *   2  no decision could be made: usage error, bad config, bad input line
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "sluice.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_DENIED = 1, CLI_EXIT_USAGE = 2 };

/* Subcommands: argv[0] is the subcommand name.  Each returns an exit status. */
int cli_check(int argc, char **argv);
int cli_lint(int argc, char **argv);
int cli_replay(int argc, char **argv);
/* replay's loop: the lines of in decided on store with cfg, decisions to
 * out and "line N: reason" to err (the fuzz target's seam).  An exit code. */
int cli_replay_stream(const sluice_config *cfg, sluice_store *store, bool json, FILE *in, FILE *out,
                      FILE *err);
int cli_bench(int argc, char **argv);

/**
 * The exit of a subcommand whose option parser returned p: 0 means go on
 * (returns -1); 1 means --help (prints usage on stdout, returns 0); any
 * other value is a usage error (usage on stderr, returns 2).
 */
int cli_parsed(int p, const char *usage);

/**
 * Parses a whole decimal integer (optional sign, no trailing junk, no
 * leading space) within [lo, hi].  Returns 0 and sets *out, or -1.
 */
int cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);

/**
 * Loads the config at path and opens the store named by url (or the
 * config's store when url is NULL), with the config's timeout_ms and
 * on_store_error.  On failure prints "sluice <cmd>: <reason>" on stderr,
 * frees what it made and returns -1.
 */
int cli_open(const char *cmd, const char *path, const char *url, sluice_config **cfg,
             sluice_store **store);

/**
 * A JSON object for a decision: the SPEC section 1 fields, shadow_denied,
 * store_error, rule, key (and tier when not NULL), and limits[].  Returns a
 * new reference, or NULL on allocation failure.
 */
json_t *cli_decision_json(const sluice_decision *d, const char *rule, const char *tier,
                          const char *key);

/** Prints the decision as one compact JSON line on f; -1 on failure. */
int cli_print_json(FILE *f, const sluice_decision *d, const char *rule, const char *tier,
                   const char *key);

/** Prints the decision as human-readable text on f. */
void cli_print_text(FILE *f, const sluice_decision *d, const char *rule, const char *tier,
                    const char *key);

/** Prints "sluice <cmd>: <fmt...>" and a newline on stderr. */
void cli_errorf(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* SLUICE_CLI_H */
