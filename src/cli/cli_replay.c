/* SPDX-License-Identifier: MIT */
/*
 * cli_replay.c - `sluice replay`: decides a trace read on stdin, one line
 * `TIME_MS RULE[@TIER] KEY [COST]` at a time, with now_ms = TIME_MS (the
 * virtual clock replaces the store's clock, also in Redis).  Prints
 * `allowed limit remaining reset_after_ms retry_after_ms delay_ms` tab-separated
 * or one JSON object a line.  A bad line stops the replay with
 * "line N: reason" on stderr and exit 2; output of the lines before it has
 * already been written.
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"

/* Longest accepted input line, newline included: a key is at most 512 bytes. */
#define REPLAY_LINE_MAX 2048
#define REPLAY_FIELDS_MAX 4

static const char replay_usage[] =
    "usage: sluice replay --config FILE [--store URL] [--json]\n"
    "  reads lines 'TIME_MS RULE[@TIER] KEY [COST]' on stdin ('#' starts a comment)\n"
    "  TIME_MS: integer ms on a virtual clock that never goes backwards\n"
    "  prints 'allowed limit remaining reset_after_ms retry_after_ms delay_ms'\n"
    "  (tab-separated, allowed as 1/0) or one JSON object a line with --json\n"
    "exit: 0 done, 2 bad flags, config or input line (reported as 'line N: reason')\n";

typedef struct replay_state {
    const sluice_config *cfg;
    sluice_store *store;
    bool json;
    int64_t last_ms; /* -1 before the first line */
    FILE *out, *err; /* decisions; "line N: reason" */
} replay_state;

/* Splits s in place on spaces and tabs; returns the field count or -1 if too many. */
static int split_fields(char *s, char **f)
{
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            return n;
        if (n == REPLAY_FIELDS_MAX)
            return -1;
        f[n++] = s;
        while (*s && *s != ' ' && *s != '\t')
            s++;
        if (*s)
            *s++ = '\0';
    }
}

/* Decides one line; returns 0, or -1 after printing "line N: reason". */
static int replay_line(replay_state *st, char *line, long lineno)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    char *f[REPLAY_FIELDS_MAX];
    int n = split_fields(line, f);
    if (n == 0)
        return 0;
    if (n < 0) {
        fprintf(st->err, "line %ld: too many fields (want TIME_MS RULE[@TIER] KEY [COST])\n",
                lineno);
        return -1;
    }
    if (n < 3) {
        fprintf(st->err, "line %ld: too few fields (want TIME_MS RULE[@TIER] KEY [COST])\n",
                lineno);
        return -1;
    }
    int64_t t;
    if (cli_parse_i64(f[0], 0, INT64_MAX, &t) != 0 || f[0][0] == '+' || f[0][0] == '-') {
        fprintf(st->err, "line %ld: TIME_MS '%s' is not a non-negative integer\n", lineno, f[0]);
        return -1;
    }
    if (t > SLUICE_TIME_MAX_MS) {
        fprintf(st->err, "line %ld: TIME_MS %lld is after %lld, the largest time sluice supports\n",
                lineno, (long long)t, (long long)SLUICE_TIME_MAX_MS);
        return -1;
    }
    if (t < st->last_ms) {
        fprintf(st->err, "line %ld: time %lld goes backwards (previous %lld)\n", lineno,
                (long long)t, (long long)st->last_ms);
        return -1;
    }
    int64_t cost = 1;
    if (n == 4 && cli_parse_i64(f[3], 0, SLUICE_COST_MAX, &cost) != 0) {
        fprintf(st->err, "line %ld: COST '%s' is not an integer in 0..%lld\n", lineno, f[3],
                (long long)SLUICE_COST_MAX);
        return -1;
    }
    char *rule = f[1];
    char *tier = strchr(rule, '@');
    if (tier) {
        *tier++ = '\0';
        if (!*tier || !*rule) {
            fprintf(st->err, "line %ld: bad RULE@TIER\n", lineno);
            return -1;
        }
    }

    sluice_error err = {0};
    sluice_match m;
    memset(&m, 0, sizeof(m));
    int rc = sluice_config_match_rule(st->cfg, rule, tier, f[2], strlen(f[2]), &m, &err);
    if (rc != 0) {
        fprintf(st->err, "line %ld: %s\n", lineno, err.msg[0] ? err.msg : sluice_strerror(rc));
        return -1;
    }
    sluice_decision d;
    memset(&d, 0, sizeof(d));
    memset(&err, 0, sizeof(err));
    rc = sluice_decide(st->store, st->cfg, &m, cost, t, &d, &err);
    if (rc != 0) {
        fprintf(st->err, "line %ld: %s\n", lineno, err.msg[0] ? err.msg : sluice_strerror(rc));
        return -1;
    }
    st->last_ms = t;
    if (st->json) {
        if (cli_print_json(st->out, &d, m.rule, m.tier, m.key) != 0) {
            fprintf(st->err, "line %ld: out of memory\n", lineno);
            return -1;
        }
    } else {
        fprintf(st->out, "%d\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\n",
                d.allowed ? 1 : 0, d.limit, d.remaining, d.reset_after_ms, d.retry_after_ms,
                d.delay_ms);
    }
    return 0;
}

/* Reads one line of at most max bytes into buf (max + 1 bytes), its '\n'
 * dropped and NUL bytes kept, so that they can be refused (fgets() gives
 * no length: a line with a NUL in it was silently cut there).  Returns its
 * length, -1 at the end of the input, -2 when the line is longer. */
static long read_line(FILE *in, char *buf, size_t max)
{
    size_t n = 0;
    int ch;
    while ((ch = getc(in)) != EOF && ch != '\n') {
        if (n == max)
            return -2;
        buf[n++] = (char)ch;
    }
    if (ch == EOF && n == 0)
        return -1;
    buf[n] = '\0';
    return (long)n;
}

static int replay_run(replay_state *st, FILE *in)
{
    char buf[REPLAY_LINE_MAX];
    long lineno = 0, got;
    while ((got = read_line(in, buf, REPLAY_LINE_MAX - 2)) != -1) {
        lineno++;
        if (got == -2) {
            fprintf(st->err, "line %ld: longer than %d bytes\n", lineno, REPLAY_LINE_MAX - 2);
            return CLI_EXIT_USAGE;
        }
        size_t len = (size_t)got;
        if (len > 0 && buf[len - 1] == '\r')
            buf[--len] = '\0';
        if (memchr(buf, '\0', len) != NULL) {
            fprintf(st->err, "line %ld: contains a NUL byte\n", lineno);
            return CLI_EXIT_USAGE;
        }
        if (replay_line(st, buf, lineno) != 0)
            return CLI_EXIT_USAGE;
    }
    if (ferror(in)) {
        fprintf(st->err, "line %ld: read error\n", lineno + 1);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

int cli_replay_stream(const sluice_config *cfg, sluice_store *store, bool json, FILE *in, FILE *out,
                      FILE *err)
{
    replay_state st = {
        .cfg = cfg, .store = store, .json = json, .last_ms = -1, .out = out, .err = err};
    return replay_run(&st, in);
}

int cli_replay(int argc, char **argv)
{
    enum { O_CONFIG = 256, O_STORE, O_JSON, O_HELP };
    static const struct option opts[] = {{"config", required_argument, NULL, O_CONFIG},
                                         {"store", required_argument, NULL, O_STORE},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"help", no_argument, NULL, O_HELP},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *url = NULL;
    bool json = false;
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "", opts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case O_CONFIG:
            config = optarg;
            break;
        case O_STORE:
            url = optarg;
            break;
        case O_JSON:
            json = true;
            break;
        case O_HELP:
            fputs(replay_usage, stdout);
            return CLI_EXIT_OK;
        default:
            cli_errorf("replay", "unknown or incomplete option '%s'", argv[optind - 1]);
            fputs(replay_usage, stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc || !config) {
        cli_errorf("replay", optind < argc ? "unexpected argument" : "--config FILE is required");
        fputs(replay_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    sluice_config *cfg = NULL;
    sluice_store *store = NULL;
    if (cli_open("replay", config, url, &cfg, &store) != 0)
        return CLI_EXIT_USAGE;
    int status = cli_replay_stream(cfg, store, json, stdin, stdout, stderr);
    if (fflush(stdout) != 0 && status == CLI_EXIT_OK) {
        cli_errorf("replay", "write error on standard output");
        status = CLI_EXIT_USAGE;
    }
    sluice_store_close(store);
    sluice_config_free(cfg);
    return status;
}
