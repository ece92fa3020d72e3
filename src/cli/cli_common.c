/* SPDX-License-Identifier: MIT */
/*
 * cli_common.c - helpers shared by the subcommands of `sluice`: strict number
 * parsing (never atoi), opening a config and its store, and printing a
 * decision as text or as one JSON object.  No decision logic lives here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "policy/policy.h"

void cli_errorf(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "sluice %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s || !(*s == '-' || *s == '+' || (*s >= '0' && *s <= '9')))
        return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    if (v < lo || v > hi)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int cli_open(const char *cmd, const char *path, const char *url, sluice_config **cfg,
             sluice_store **store)
{
    sluice_error err = {0};
    *cfg = NULL;
    *store = NULL;
    int rc = sluice_config_load_file(cfg, path, &err);
    if (rc != 0) {
        cli_errorf(cmd, "%s", err.msg[0] ? err.msg : sluice_strerror(rc));
        return -1;
    }
    /*
     * The store options come from the loaded config.  The public API has no
     * accessor for them yet, so the CLI (an in-tree program) reads the
     * immutable config struct of src/policy/policy.h directly.
     */
    sluice_store_options opts = {0};
    opts.timeout_ms = (*cfg)->timeout_ms;
    opts.on_store_error = (*cfg)->on_store_error;
    if (!url)
        url = sluice_config_store_url(*cfg);
    if (!url)
        url = "memory://";
    memset(&err, 0, sizeof(err));
    rc = sluice_store_open(store, url, &opts, &err);
    if (rc != 0) {
        /* only the scheme: the rest of a URL may hold a password */
        const char *sep = strstr(url, "://");
        cli_errorf(cmd, "store %.*s://: %s", sep ? (int)(sep - url) : 0, url,
                   err.msg[0] ? err.msg : sluice_strerror(rc));
        sluice_config_free(*cfg);
        *cfg = NULL;
        *store = NULL;
        return -1;
    }
    return 0;
}

static json_t *limit_json(const sluice_limit_decision *l)
{
    const char *alg = sluice_algorithm_name(l->algorithm);
    return json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "algorithm", alg ? alg : "?",
                     "allowed", (int)l->allowed, "limit", (json_int_t)l->limit, "window_ms",
                     (json_int_t)l->window_ms, "remaining", (json_int_t)l->remaining,
                     "reset_after_ms", (json_int_t)l->reset_after_ms, "retry_after_ms",
                     (json_int_t)l->retry_after_ms, "delay_ms", (json_int_t)l->delay_ms);
}

json_t *cli_decision_json(const sluice_decision *d, const char *rule, const char *tier,
                          const char *key)
{
    json_t *o = json_pack(
        "{s:b, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:s, s:s}", "allowed", (int)d->allowed, "limit",
        (json_int_t)d->limit, "remaining", (json_int_t)d->remaining, "reset_after_ms",
        (json_int_t)d->reset_after_ms, "retry_after_ms", (json_int_t)d->retry_after_ms, "delay_ms",
        (json_int_t)d->delay_ms, "shadow_denied", (int)d->shadow_denied, "store_error",
        (int)d->store_error, "rule", rule ? rule : "", "key", key ? key : "");
    if (!o)
        return NULL;
    if (tier && json_object_set_new(o, "tier", json_string(tier)) != 0)
        goto out_free;
    json_t *arr = json_array();
    if (!arr || json_object_set_new(o, "limits", arr) != 0)
        goto out_free;
    for (int i = 0; i < d->nlimits && i < SLUICE_MAX_LIMITS; i++) {
        if (json_array_append_new(arr, limit_json(&d->limits[i])) != 0)
            goto out_free;
    }
    return o;
out_free:
    json_decref(o);
    return NULL;
}

int cli_print_json(FILE *f, const sluice_decision *d, const char *rule, const char *tier,
                   const char *key)
{
    json_t *o = cli_decision_json(d, rule, tier, key);
    if (!o)
        return -1;
    int rc = json_dumpf(o, f, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (rc != 0)
        return -1;
    fputc('\n', f);
    return 0;
}

void cli_print_text(FILE *f, const sluice_decision *d, const char *rule, const char *tier,
                    const char *key)
{
    fprintf(f, "%s", d->allowed ? "allowed" : "denied");
    if (d->shadow_denied)
        fprintf(f, " (shadow: would be denied)");
    if (d->store_error)
        fprintf(f, " (store error: decided by on_store_error)");
    fprintf(f, "\n  rule %s", rule ? rule : "");
    if (tier)
        fprintf(f, "  tier %s", tier);
    fprintf(f, "  key %s\n", key ? key : "");
    fprintf(f,
            "  limit %" PRId64 "  remaining %" PRId64 "  reset_after_ms %" PRId64
            "  retry_after_ms %" PRId64 "  delay_ms %" PRId64 "\n",
            d->limit, d->remaining, d->reset_after_ms, d->retry_after_ms, d->delay_ms);
    for (int i = 0; i < d->nlimits && i < SLUICE_MAX_LIMITS; i++) {
        const sluice_limit_decision *l = &d->limits[i];
        const char *alg = sluice_algorithm_name(l->algorithm);
        fprintf(f,
                "  [%d] %s limit %" PRId64 " window_ms %" PRId64 ": %s  remaining %" PRId64
                "  reset_after_ms %" PRId64 "  retry_after_ms %" PRId64 "  delay_ms %" PRId64
                "%s\n",
                i, alg ? alg : "?", l->limit, l->window_ms, l->allowed ? "allowed" : "denied",
                l->remaining, l->reset_after_ms, l->retry_after_ms, l->delay_ms,
                i == d->decided_by ? "  (decided)" : "");
    }
}

int cli_parsed(int p, const char *usage)
{
    if (p == 0)
        return -1;
    fputs(usage, p == 1 ? stdout : stderr);
    return p == 1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}
