/* SPDX-License-Identifier: MIT */
/*
 * rules.c - validating and converting the `rules:` list of a config: names,
 * match (method, path), identity, shadow/shape flags, and the limits of a
 * rule or of each of its tiers.  Every limit is checked against the bounds
 * of sluice.h here, field by field so the message points at the offending
 * line, and then by the core's sluice__limit_check() as the last word.
 */
#include <ctype.h>
#include <string.h>

#include "core/algo.h"
#include "policy/conf.h"
#include "store/store.h"
#include "util/alloc.h"

static const char *const rule_keys[] = {"name",  "match",  "key",   "shadow",
                                        "shape", "limits", "tiers", NULL};
static const char *const match_keys[] = {"method", "path", NULL};
static const char *const limit_keys[] = {"algorithm", "limit", "window", "burst", NULL};
/* In sluice_algorithm order (test_config checks them against sluice_algorithm_name). */
static const char *const algo_names[] = {"fixed_window", "sliding_log", "sliding_window",
                                         "token_bucket", "leaky_bucket", NULL};

void sluice__conf_rules_free(sluice_config *cfg)
{
    if (!cfg->rules)
        return;
    for (int i = 0; i < cfg->nrules; i++) {
        sluice__rule *r = &cfg->rules[i];
        sluice__free(r->name);
        sluice__free(r->method);
        sluice__free(r->path);
        sluice__ident_free(r->ident, r->nident);
        for (int t = 0; r->tiers && t < r->ntiers; t++)
            sluice__free(r->tiers[t].name);
        sluice__free(r->tiers);
    }
    sluice__free(cfg->rules);
    cfg->rules = NULL;
    cfg->nrules = 0;
}

/* Rule and tier names are part of Redis keys and replay lines: [A-Za-z0-9_.-]. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SLUICE_RULE_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
            return false;
    return true;
}

/* ---- limits ----------------------------------------------------------------- */

static int parse_limit(sluice__cload *c, const sluice__ynode *n, sluice_limit *lim)
{
    int rc = sluice__ckeys(c, n, "a limit", limit_keys);
    if (rc)
        return rc;
    const sluice__ynode *a = sluice__ynode_get(n, "algorithm");
    const sluice__ynode *l = sluice__ynode_get(n, "limit");
    const sluice__ynode *w = sluice__ynode_get(n, "window");
    const sluice__ynode *b = sluice__ynode_get(n, "burst");
    const char *missing = !a ? "algorithm" : !l ? "limit" : !w ? "window" : NULL;
    if (missing)
        return sluice__cerr(c, n, "limit is missing '%s' (a limit needs algorithm, limit and "
                                  "window)", missing);
    int alg;
    rc = sluice__cenum(c, a, "algorithm", algo_names, &alg);
    if (rc)
        return rc;
    memset(lim, 0, sizeof(*lim));
    lim->algorithm = alg;
    rc = sluice__cint(c, l, "limit", 1, SLUICE_LIMIT_MAX, &lim->limit);
    if (rc)
        return rc;
    rc = sluice__cduration(c, w, "window", 1, SLUICE_WINDOW_MAX_MS, &lim->window_ms);
    if (rc)
        return rc;
    bool bucket = alg == SLUICE_TOKEN_BUCKET || alg == SLUICE_LEAKY_BUCKET;
    if (b && !bucket)
        return sluice__cerr(c, b, "'burst' applies only to token_bucket and leaky_bucket, "
                                  "not %s", algo_names[alg]);
    if (bucket) {
        lim->burst = lim->limit;
        rc = b ? sluice__cint(c, b, "burst", 1, SLUICE_LIMIT_MAX, &lim->burst) : 0;
        if (rc)
            return rc;
    }
    if (alg == SLUICE_SLIDING_LOG && lim->limit > SLUICE_SLIDING_LOG_MAX)
        return sluice__cerr(c, l,
                            "sliding_log keeps every request, so its 'limit' is capped at %lld; "
                            "got %lld (use sliding_window for large limits)",
                            (long long)SLUICE_SLIDING_LOG_MAX, (long long)lim->limit);
    if (lim->limit > SLUICE_PRODUCT_MAX / lim->window_ms)
        return sluice__cerr(c, l,
                            "'limit' x 'window' is too large: %lld x %lldms exceeds 2^52 "
                            "(use a smaller limit or a shorter window)",
                            (long long)lim->limit, (long long)lim->window_ms);
    if (lim->burst > SLUICE_PRODUCT_MAX / lim->window_ms)
        return sluice__cerr(c, b ? b : l,
                            "'burst' x 'window' is too large: %lld x %lldms exceeds 2^52 "
                            "(use a smaller burst or a shorter window)",
                            (long long)lim->burst, (long long)lim->window_ms);
    const char *why = NULL;
    if (sluice__limit_check(lim, &why) != 0)
        return sluice__cerr(c, n, "invalid limit: %s", why ? why : "out of bounds");
    return 0;
}

static int parse_limits(sluice__cload *c, const char *key, const sluice__ynode *n,
                        sluice__limit_set *set)
{
    if (n->kind != SLUICE_YNODE_SEQ)
        return sluice__cerr(c, n, "'%s' must be a list of limits, got %s", key,
                            sluice__ynode_kind_name(n));
    if (n->n == 0)
        return sluice__cerr(c, n, "'%s' is empty: give at least one limit", key);
    if (n->n > SLUICE_MAX_LIMITS)
        return sluice__cerr(c, n->kids[SLUICE_MAX_LIMITS], "'%s' has %zu limits; at most %d",
                            key, n->n, SLUICE_MAX_LIMITS);
    for (size_t i = 0; i < n->n; i++) {
        int rc = parse_limit(c, n->kids[i], &set->limits[i]);
        if (rc)
            return rc;
    }
    set->n = (int)n->n;
    return 0;
}

static int parse_tiers(sluice__cload *c, const sluice__ynode *n, sluice__rule *r)
{
    if (n->kind != SLUICE_YNODE_MAP)
        return sluice__cerr(c, n, "'tiers' must be a mapping of tier name to limits, got %s",
                            sluice__ynode_kind_name(n));
    if (n->n == 0)
        return sluice__cerr(c, n, "'tiers' is empty: give at least one tier");
    if (n->n > SLUICE_MAX_TIERS)
        return sluice__cerr(c, n, "'tiers' has more than %d tiers", SLUICE_MAX_TIERS);
    r->tiers = sluice__calloc(n->n, sizeof(*r->tiers));
    if (!r->tiers)
        return sluice__cnomem(c);
    r->ntiers = (int)n->n;
    for (size_t i = 0; i < n->n; i++) {
        const sluice__ynode *k = n->kids[2 * i];
        if (k->kind != SLUICE_YNODE_SCALAR)
            return sluice__cerr(c, k, "tier names must be strings, got %s",
                                sluice__ynode_kind_name(k));
        if (!name_ok(k->str))
            return sluice__cerr(c, k, "tier name '%.64s' must be 1..%d characters of "
                                      "A-Z a-z 0-9 _ . -", k->str, SLUICE_RULE_NAME_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(n->kids[2 * j]->str, k->str) == 0)
                return sluice__cerr(c, k, "duplicate tier '%s' (first at line %d)", k->str,
                                    n->kids[2 * j]->line);
        r->tiers[i].name = sluice__strdup(k->str);
        if (!r->tiers[i].name)
            return sluice__cnomem(c);
        int rc = parse_limits(c, k->str, n->kids[2 * i + 1], &r->tiers[i].set);
        if (rc)
            return rc;
        if (strcmp(k->str, "free") == 0)
            r->default_tier = (int)i;
    }
    return 0;
}

/* ---- match ------------------------------------------------------------------ */

static int parse_match(sluice__cload *c, const sluice__ynode *n, sluice__rule *r)
{
    int rc = sluice__ckeys(c, n, "'match'", match_keys);
    if (rc)
        return rc;
    const sluice__ynode *m = sluice__ynode_get(n, "method");
    const sluice__ynode *p = sluice__ynode_get(n, "path");
    const char *s;
    if (m) {
        rc = sluice__cstr(c, m, "method", 32, &s);
        if (rc)
            return rc;
        for (const char *q = s; *q; q++)
            if (!isalpha((unsigned char)*q) && !strchr("-_", *q) && strcmp(s, "*") != 0)
                return sluice__cerr(c, m, "'method' must be an HTTP method such as GET or POST, "
                                          "got '%.32s'", s);
        if (strcmp(s, "*") != 0) {
            r->method = sluice__strdup(s);
            if (!r->method)
                return sluice__cnomem(c);
            for (char *q = r->method; *q; q++)
                *q = (char)toupper((unsigned char)*q);
        }
    }
    if (p) {
        rc = sluice__cstr(c, p, "path", SLUICE_PATH_MAX, &s);
        if (rc)
            return rc;
        if (s[0] != '/')
            return sluice__cerr(c, p, "'path' must start with '/', got '%.64s'", s);
        const char *star = strchr(s, '*');
        if (star && star[1] != '\0')
            return sluice__cerr(c, p, "'path' may hold '*' only at its end (a prefix such as "
                                      "/api/*), got '%.64s'", s);
        if (strchr(s, '?'))
            return sluice__cerr(c, p, "'path' must not hold a query string ('?')");
        r->prefix = star != NULL;
        /* Stored in the canonical form requests are matched in (path.c); a
         * prefix keeps its trailing slash: "/api/" + star is "/api" and below. */
        size_t body = star ? (size_t)(star - s) : strlen(s);
        char canon[SLUICE_PATH_MAX + 3];
        size_t cl = sluice__path_canon(s, body, canon);
        if (star && body > 1 && s[body - 1] == '/' && cl > 1) {
            canon[cl++] = '/';
            canon[cl] = '\0';
        }
        /* A path of slash-star matches every path, like no path at all. */
        if (!(star && cl == 1)) {
            r->path = sluice__strndup(canon, cl);
            if (!r->path)
                return sluice__cnomem(c);
        } else {
            r->prefix = false;
        }
    }
    return 0;
}

/* ---- rules ------------------------------------------------------------------ */

static int parse_rule(sluice__cload *c, const sluice__ynode *n, sluice_config *cfg, int idx)
{
    sluice__rule *r = &cfg->rules[idx];
    r->line = n->line;
    r->shape = true;
    int rc = sluice__ckeys(c, n, "a rule", rule_keys);
    if (rc)
        return rc;
    const sluice__ynode *name = sluice__ynode_get(n, "name");
    if (!name)
        return sluice__cerr(c, n, "rule %d has no 'name'", idx + 1);
    const char *s;
    rc = sluice__cstr(c, name, "name", 1024, &s);
    if (rc)
        return rc;
    if (!name_ok(s))
        return sluice__cerr(c, name, "rule name '%.64s%s' must be 1..%d characters of "
                                     "A-Z a-z 0-9 _ . -", s, strlen(s) > 64 ? "..." : "",
                            SLUICE_RULE_NAME_MAX);
    for (int j = 0; j < idx; j++)
        if (strcmp(cfg->rules[j].name, s) == 0)
            return sluice__cerr(c, name, "duplicate rule name '%s' (first at line %d)", s,
                                cfg->rules[j].line);
    r->name = sluice__strdup(s);
    if (!r->name)
        return sluice__cnomem(c);

    const sluice__ynode *v = sluice__ynode_get(n, "match");
    rc = v ? parse_match(c, v, r) : 0;
    v = sluice__ynode_get(n, "key");
    if (rc == 0 && v)
        rc = sluice__cident_list(c, v, "key", &r->ident, &r->nident);
    v = sluice__ynode_get(n, "shadow");
    if (rc == 0 && v)
        rc = sluice__cbool(c, v, "shadow", &r->shadow);
    v = sluice__ynode_get(n, "shape");
    if (rc == 0 && v)
        rc = sluice__cbool(c, v, "shape", &r->shape);
    if (rc)
        return rc;
    r->shadow = r->shadow || cfg->shadow;

    const sluice__ynode *lim = sluice__ynode_get(n, "limits");
    const sluice__ynode *tiers = sluice__ynode_get(n, "tiers");
    if (lim && tiers)
        return sluice__cerr(c, tiers, "rule '%s' has both 'limits' and 'tiers'; give one",
                            r->name);
    if (!lim && !tiers)
        return sluice__cerr(c, n, "rule '%s' needs 'limits' or 'tiers'", r->name);
    if (lim)
        return parse_limits(c, "limits", lim, &r->set);
    return parse_tiers(c, tiers, r);
}

int sluice__conf_rules(sluice__cload *c, const sluice__ynode *key, const sluice__ynode *n,
                       sluice_config *cfg)
{
    if (n->kind != SLUICE_YNODE_SEQ)
        return sluice__cerr(c, n->kind == SLUICE_YNODE_SCALAR && !n->len ? key : n,
                            "'rules' must be a list of rules, got %s",
                            n->kind == SLUICE_YNODE_SCALAR && !n->len
                                ? "nothing"
                                : sluice__ynode_kind_name(n));
    if (n->n == 0)
        return sluice__cerr(c, key, "'rules' is empty: a config needs at least one rule");
    if (n->n > SLUICE_MAX_RULES)
        return sluice__cerr(c, n->kids[SLUICE_MAX_RULES], "more than %d rules",
                            SLUICE_MAX_RULES);
    cfg->rules = sluice__calloc(n->n, sizeof(*cfg->rules));
    if (!cfg->rules)
        return sluice__cnomem(c);
    cfg->nrules = (int)n->n;
    for (size_t i = 0; i < n->n; i++) {
        int rc = parse_rule(c, n->kids[i], cfg, (int)i);
        if (rc)
            return rc;
    }
    return 0;
}
