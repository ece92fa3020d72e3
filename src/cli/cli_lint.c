/* SPDX-License-Identifier: MIT */
/*
 * cli_lint.c - `sluice lint FILE...`: loads each config with the same
 * loader the daemon uses and reports "ok" or the loader's
 * "<file>:<line>: <reason>".  Exit 0 when every file is valid, 1 when one
 * is not, 2 on a usage error.  A file that is an envoyproxy/ratelimit
 * descriptor file (a `domain`, no `rules`) is checked as one, with the loader
 * of descriptors_config.
 */
#include <string.h>

#include "cli.h"
#include "rls/rls.h"

static const char lint_usage[] = "usage: sluice lint FILE...\n"
                                 "  validates each config (or envoyproxy/ratelimit descriptor\n"
                                 "  file); prints 'FILE: ok' on stdout or\n"
                                 "  'FILE:LINE: reason' on stderr; exit 0 all valid, 1 invalid\n";

int cli_lint(int argc, char **argv)
{
    int first = 1;
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(lint_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (argc > 1 && strcmp(argv[1], "--") == 0)
        first = 2;
    if (first >= argc) {
        fputs(lint_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    for (int i = first; i < argc; i++) {
        if (first == 1 && argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_errorf("lint", "unknown option '%s'", argv[i]);
            fputs(lint_usage, stderr);
            return CLI_EXIT_USAGE;
        }
    }
    int status = CLI_EXIT_OK;
    for (int i = first; i < argc; i++) {
        sluice_config *cfg = NULL;
        sluice_error err = {0};
        int rc;
        if (sluice__rls_looks_like_descriptors(argv[i])) {
            sluice__rls *r = NULL;
            const char *pat[] = {argv[i]};
            rc = sluice__rls_load(&r, pat, 1, &err);
            sluice__rls_free(r);
        } else {
            rc = sluice_config_load_file(&cfg, argv[i], &err);
        }
        if (rc == 0) {
            printf("%s: ok\n", argv[i]);
        } else if (err.msg[0]) {
            fprintf(stderr, "%s\n", err.msg);
            status = 1;
        } else {
            fprintf(stderr, "%s: %s\n", argv[i], sluice_strerror(rc));
            status = 1;
        }
        sluice_config_free(cfg);
    }
    return status;
}
