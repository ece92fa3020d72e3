/* SPDX-License-Identifier: MIT */
/*
 * cli_check.c - `sluice check`: one decision, either for an explicit rule
 * and identifier (--rule --key) or for a request matched against the rules
 * (--method --path --ip [--header ...] [--tier]).  Prints the decision as
 * text or JSON; exit 0 allowed, 1 denied, 2 when no decision could be made.
 * A store failure is not exit 2: sluice_decide() applies on_store_error.
 */
#include <getopt.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

#define CHECK_MAX_HEADERS 64

static const char check_usage[] =
    "usage: sluice check --config FILE (--rule R --key K | --method M --path P --ip A)\n"
    "                    [--cost N] [--store URL] [--json] [--tier T]\n"
    "                    [--header 'Name: value' ...]\n"
    "  --rule R --key K    decide for rule R and identifier K (e.g. ip:10.0.0.1)\n"
    "  --method/--path/--ip/--header  match a request against the rules\n"
    "  --tier T            the tier (default: from the tier header, else free)\n"
    "  --cost N            cost of the request, 0..1000000000 (0 = peek); default 1\n"
    "  --store URL         override the config's store\n"
    "  --json              print one JSON object\n"
    "exit: 0 allowed, 1 denied, 2 no decision (bad flags, config, rule or key)\n";

/* Request headers given with --header, looked up case-insensitively. */
typedef struct check_headers {
    int n;
    const char *name[CHECK_MAX_HEADERS];
    size_t name_len[CHECK_MAX_HEADERS];
    const char *value[CHECK_MAX_HEADERS];
} check_headers;

static const char *header_lookup(void *ctx, const char *name)
{
    const check_headers *h = ctx;
    size_t len = strlen(name);
    for (int i = 0; i < h->n; i++) {
        if (h->name_len[i] == len && strncasecmp(h->name[i], name, len) == 0)
            return h->value[i];
    }
    return NULL;
}

/* "Name: value" -> name/value in place (the argument is modified). */
static int header_add(check_headers *h, char *arg)
{
    if (h->n >= CHECK_MAX_HEADERS)
        return -1;
    char *colon = strchr(arg, ':');
    if (!colon || colon == arg)
        return -1;
    char *end = colon;
    while (end > arg && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end == arg)
        return -1;
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    h->name[h->n] = arg;
    h->name_len[h->n] = (size_t)(end - arg);
    h->value[h->n] = v;
    h->n++;
    return 0;
}

typedef struct check_args {
    const char *config, *rule, *key, *method, *path, *ip, *store, *tier;
    int64_t cost;
    bool json;
    check_headers headers;
} check_args;

/* Returns -1 after printing an error, 1 for --help, 0 to go on. */
static int check_parse(int argc, char **argv, check_args *a)
{
    enum {
        O_CONFIG = 256,
        O_RULE,
        O_KEY,
        O_METHOD,
        O_PATH,
        O_IP,
        O_COST,
        O_STORE,
        O_JSON,
        O_TIER,
        O_HEADER,
        O_HELP
    };
    static const struct option opts[] = {{"config", required_argument, NULL, O_CONFIG},
                                         {"rule", required_argument, NULL, O_RULE},
                                         {"key", required_argument, NULL, O_KEY},
                                         {"method", required_argument, NULL, O_METHOD},
                                         {"path", required_argument, NULL, O_PATH},
                                         {"ip", required_argument, NULL, O_IP},
                                         {"cost", required_argument, NULL, O_COST},
                                         {"store", required_argument, NULL, O_STORE},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"tier", required_argument, NULL, O_TIER},
                                         {"header", required_argument, NULL, O_HEADER},
                                         {"help", no_argument, NULL, O_HELP},
                                         {NULL, 0, NULL, 0}};
    a->cost = 1;
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "", opts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case O_CONFIG:
            a->config = optarg;
            break;
        case O_RULE:
            a->rule = optarg;
            break;
        case O_KEY:
            a->key = optarg;
            break;
        case O_METHOD:
            a->method = optarg;
            break;
        case O_PATH:
            a->path = optarg;
            break;
        case O_IP:
            a->ip = optarg;
            break;
        case O_STORE:
            a->store = optarg;
            break;
        case O_TIER:
            a->tier = optarg;
            break;
        case O_JSON:
            a->json = true;
            break;
        case O_HELP:
            return 1;
        case O_COST:
            if (cli_parse_i64(optarg, 0, SLUICE_COST_MAX, &a->cost) != 0) {
                cli_errorf("check", "--cost: '%s' is not an integer in 0..%lld", optarg,
                           (long long)SLUICE_COST_MAX);
                return -1;
            }
            break;
        case O_HEADER:
            if (header_add(&a->headers, optarg) != 0) {
                cli_errorf("check", "--header: expected 'Name: value' (at most %d)",
                           CHECK_MAX_HEADERS);
                return -1;
            }
            break;
        default:
            cli_errorf("check", "unknown or incomplete option '%s'", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        cli_errorf("check", "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (!a->config) {
        cli_errorf("check", "--config FILE is required");
        return -1;
    }
    bool explicit = a->rule || a->key;
    bool request = a->method || a->path || a->ip || a->headers.n > 0;
    if (explicit && request) {
        cli_errorf("check", "use either --rule/--key or --method/--path/--ip/--header");
        return -1;
    }
    if (explicit && (!a->rule || !a->key)) {
        cli_errorf("check", "--rule and --key go together");
        return -1;
    }
    if (!explicit && !request) {
        cli_errorf("check", "need --rule R --key K, or --method M --path P --ip A");
        return -1;
    }
    return 0;
}

int cli_check(int argc, char **argv)
{
    check_args a = {0};
    int ex = cli_parsed(check_parse(argc, argv, &a), check_usage);
    if (ex >= 0)
        return ex;

    sluice_config *cfg = NULL;
    sluice_store *store = NULL;
    if (cli_open("check", a.config, a.store, &cfg, &store) != 0)
        return CLI_EXIT_USAGE;

    int status = CLI_EXIT_USAGE;
    sluice_error err = {0};
    sluice_match m;
    memset(&m, 0, sizeof(m));
    int rc;
    if (a.rule) {
        rc = sluice_config_match_rule(cfg, a.rule, a.tier, a.key, strlen(a.key), &m, &err);
    } else {
        sluice_request req = {0};
        req.method = a.method;
        req.path = a.path;
        req.ip = a.ip;
        req.header = a.headers.n > 0 ? header_lookup : NULL;
        req.header_ctx = &a.headers;
        req.tier = a.tier;
        rc = sluice_config_match(cfg, &req, &m, &err);
    }
    if (rc != 0) {
        cli_errorf("check", "%s", err.msg[0] ? err.msg : sluice_strerror(rc));
        goto out;
    }

    sluice_decision d;
    memset(&d, 0, sizeof(d));
    memset(&err, 0, sizeof(err));
    rc = sluice_decide(store, cfg, &m, a.cost, SLUICE_NOW, &d, &err);
    if (rc != 0) {
        cli_errorf("check", "%s", err.msg[0] ? err.msg : sluice_strerror(rc));
        goto out;
    }
    if (a.json) {
        if (cli_print_json(stdout, &d, m.rule, m.tier, m.key) != 0) {
            cli_errorf("check", "out of memory");
            goto out;
        }
    } else {
        cli_print_text(stdout, &d, m.rule, m.tier, m.key);
    }
    status = d.allowed ? CLI_EXIT_OK : CLI_EXIT_DENIED;
out:
    sluice_store_close(store);
    sluice_config_free(cfg);
    return status;
}
