/* SPDX-License-Identifier: MIT */
/*
 * rls_load.c - loading envoyproxy/ratelimit descriptor files as they are:
 * the glob patterns of descriptors_config, each file one YAML document with a
 * `domain` and a tree of `descriptors` (key, value, rate_limit {unit,
 * requests_per_unit, name, replaces, unlimited}, shadow_mode, quota_mode,
 * detailed_metric, value_to_metric, share_threshold, metadata), validated as
 * upstream's src/config/config_impl.go does.  sluice's `algorithm` and
 * `burst` may extend a rate_limit.  The first error stops the load and is
 * reported as "<file>:<line>: <reason>".
 */
#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/algo.h"
#include "core/errors.h"
#include "policy/conf.h"
#include "rls/rls_int.h"
#include "util/alloc.h"

static const char *const file_keys[] = {"domain", "descriptors", NULL};
static const char *const desc_keys[] = {"key", "value", "descriptors", "rate_limit",
                                        "shadow_mode", "quota_mode", "detailed_metric",
                                        "value_to_metric", "share_threshold", "metadata", NULL};
static const char *const limit_keys[] = {"unit", "requests_per_unit", "unlimited", "name",
                                         "replaces", "algorithm", "burst", NULL};
static const char *const replaces_keys[] = {"name", NULL};

/* ---- units -------------------------------------------------------------------- */

static const char *const unit_names[] = {"UNKNOWN", "SECOND", "MINUTE", "HOUR", "DAY",
                                         "MONTH",   "YEAR",   "WEEK",   NULL};

int64_t sluice__rls_unit_seconds(int unit)
{
    switch (unit) {
    case SLUICE_RLS_SECOND: return 1;
    case SLUICE_RLS_MINUTE: return 60;
    case SLUICE_RLS_HOUR: return 3600;
    case SLUICE_RLS_DAY: return 86400;
    case SLUICE_RLS_WEEK: return 604800;
    case SLUICE_RLS_MONTH: return 2592000;  /* 30 days, as upstream's UnitToDivider */
    case SLUICE_RLS_YEAR: return 31536000;  /* 365 days */
    default: return 0;
    }
}

const char *sluice__rls_unit_name(int unit)
{
    return unit > 0 && unit <= SLUICE_RLS_WEEK ? unit_names[unit] : "UNKNOWN";
}

/* ---- freeing ------------------------------------------------------------------- */

static void limit_free(sluice__rls_limit *l)
{
    sluice__free(l->name);
    for (int i = 0; i < l->nreplaces; i++)
        sluice__free(l->replaces[i]);
    sluice__free(l->replaces);
}

static void index_free(sluice__rls_index *x)
{
    sluice__free(x->kv);
    sluice__free(x->bare);
    sluice__free(x->wild);
}

static void nodes_free(sluice__rls_node *kids, int n)
{
    for (int i = 0; i < n; i++) {
        sluice__rls_node *x = &kids[i];
        sluice__free(x->key);
        sluice__free(x->value);
        limit_free(&x->limit);
        nodes_free(x->kids, x->nkids);
        index_free(&x->idx);
    }
    sluice__free(kids);
}

void sluice__rls_free(sluice__rls *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->ndomains; i++) {
        sluice__free(r->domains[i].name);
        sluice__free(r->domains[i].file);
        nodes_free(r->domains[i].kids, r->domains[i].nkids);
        index_free(&r->domains[i].idx);
    }
    sluice__free(r->domains);
    sluice__free(r);
}

/* ---- node reading ---------------------------------------------------------------- */

/* YAML null: `key:` with nothing, `~`, `null`. */
static bool is_null(const sluice__ynode *n)
{
    if (n->kind != SLUICE_YNODE_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcasecmp(n->str, "null") == 0;
}

/* A scalar read as a string, as upstream's yaml.Unmarshal into a string field does
 * (`value: 50.0.0.5` or `value: 123` are strings); null gives "". */
static int scalar_str(sluice__cload *c, const sluice__ynode *n, const char *key, char **out)
{
    if (n->kind != SLUICE_YNODE_SCALAR)
        return sluice__cerr(c, n, "'%s' must be a string, got %s", key,
                            sluice__ynode_kind_name(n));
    if (n->len > SLUICE_RLS_STR_MAX)
        return sluice__cerr(c, n, "'%s' is longer than %d bytes", key, SLUICE_RLS_STR_MAX);
    *out = sluice__strdup(is_null(n) ? "" : n->str);
    return *out ? 0 : sluice__cnomem(c);
}

/* Keys must be strings drawn from allowed; a plain number as a key is upstream's
 * "key is not of type string" (test-config/non_string_key.yaml). */
static int check_keys(sluice__cload *c, const sluice__ynode *n, const char *what,
                      const char *const *allowed)
{
    for (size_t i = 0; n->kind == SLUICE_YNODE_MAP && i < n->n; i++) {
        const sluice__ynode *k = n->kids[2 * i];
        if (k->kind == SLUICE_YNODE_SCALAR && k->plain && k->len &&
            strspn(k->str, "+-.0123456789eE") == k->len && isdigit((unsigned char)k->str[k->len - 1]))
            return sluice__cerr(c, k, "config error, key is not of type string: %.40s", k->str);
    }
    return sluice__ckeys(c, n, what, allowed);
}

static int parse_unit(sluice__cload *c, const sluice__ynode *n, int *unit)
{
    char up[16];
    if (n->kind != SLUICE_YNODE_SCALAR)
        return sluice__cerr(c, n, "'unit' must be a string, got %s", sluice__ynode_kind_name(n));
    size_t i;
    for (i = 0; i < n->len && i + 1 < sizeof(up); i++)
        up[i] = (char)toupper((unsigned char)n->str[i]);
    up[i] = '\0';
    for (int u = 1; n->len < sizeof(up) && unit_names[u]; u++) {
        if (strcmp(up, unit_names[u]) == 0) {
            *unit = u;
            return 0;
        }
    }
    *unit = SLUICE_RLS_UNIT_UNKNOWN;
    return 0;
}

static int parse_replaces(sluice__cload *c, const sluice__ynode *n, sluice__rls_limit *l)
{
    if (is_null(n))
        return 0;
    if (n->kind != SLUICE_YNODE_SEQ)
        return sluice__cerr(c, n, "'replaces' must be a list of {name: ...}, got %s",
                            sluice__ynode_kind_name(n));
    if (n->n > SLUICE_RLS_MAX_REPLACES)
        return sluice__cerr(c, n, "'replaces' has more than %d entries", SLUICE_RLS_MAX_REPLACES);
    l->replaces = n->n ? sluice__calloc(n->n, sizeof(char *)) : NULL;
    if (n->n && !l->replaces)
        return sluice__cnomem(c);
    for (size_t i = 0; i < n->n; i++) {
        const sluice__ynode *e = n->kids[i];
        if (e->kind != SLUICE_YNODE_MAP)
            return sluice__cerr(c, e, "a 'replaces' entry must be a mapping {name: ...}, got %s",
                                sluice__ynode_kind_name(e));
        int rc = check_keys(c, e, "a replaces entry", replaces_keys);
        if (rc)
            return rc;
        const sluice__ynode *nm = sluice__ynode_get(e, "name");
        char *s = NULL;
        if (nm && (rc = scalar_str(c, nm, "name", &s)) != 0)
            return rc;
        l->replaces[l->nreplaces++] = s;
        if (!s || !s[0])
            return sluice__cerr(c, nm ? nm : e, "should not have an empty replaces entry");
        if (l->name && strcmp(s, l->name) == 0)
            return sluice__cerr(c, nm, "replaces should not contain name of same descriptor");
    }
    return 0;
}

/* sluice's extension: `algorithm` (and `burst`) decide the limit with a sluice
 * engine over the unit's window instead of upstream's fixed-window counter. */
static int parse_algorithm(sluice__cload *c, const sluice__ynode *rl, const sluice__ynode *a,
                           sluice__rls_limit *l)
{
    static const char *const algos[] = {"fixed_window", "sliding_log", "sliding_window",
                                        "token_bucket", "leaky_bucket", NULL};
    int idx;
    int rc = sluice__cenum(c, a, "algorithm", algos, &idx);
    if (rc)
        return rc;
    l->sluice_algo = true;
    l->algo.algorithm = idx;
    l->algo.limit = l->rpu;
    l->algo.window_ms = l->window_ms;
    l->algo.burst = 0;
    const sluice__ynode *b = sluice__ynode_get(rl, "burst");
    if (b) {
        rc = sluice__cint(c, b, "burst", 1, SLUICE_LIMIT_MAX, &l->algo.burst);
        if (rc)
            return rc;
    } else if (idx == SLUICE_TOKEN_BUCKET || idx == SLUICE_LEAKY_BUCKET) {
        l->algo.burst = l->rpu;
    }
    const char *why = NULL;
    if (sluice__limit_check(&l->algo, &why) != 0)
        return sluice__cerr(c, a, "rate_limit with algorithm %s: %s (requests_per_unit %u, "
                            "unit window %llds)", algos[idx], why, l->rpu,
                            (long long)(l->window_ms / 1000));
    return 0;
}

static int parse_limit(sluice__cload *c, const sluice__ynode *n, sluice__rls_limit *l)
{
    if (n->kind != SLUICE_YNODE_MAP)
        return sluice__cerr(c, n, "'rate_limit' must be a mapping, got %s",
                            sluice__ynode_kind_name(n));
    int rc = check_keys(c, n, "a rate_limit", limit_keys);
    if (rc)
        return rc;
    const sluice__ynode *v;
    if ((v = sluice__ynode_get(n, "name")) && !is_null(v)) {
        if ((rc = scalar_str(c, v, "name", &l->name)) != 0)
            return rc;
        if (!l->name[0]) {
            sluice__free(l->name);
            l->name = NULL;
        }
    }
    if ((v = sluice__ynode_get(n, "unlimited")) && (rc = sluice__cbool(c, v, "unlimited",
                                                                       &l->unlimited)) != 0)
        return rc;
    int64_t rpu = 0;
    if ((v = sluice__ynode_get(n, "requests_per_unit")) &&
        (rc = sluice__cint(c, v, "requests_per_unit", 0, UINT32_MAX, &rpu)) != 0)
        return rc;
    l->rpu = (uint32_t)rpu;
    int unit = SLUICE_RLS_UNIT_UNKNOWN;
    const sluice__ynode *u = sluice__ynode_get(n, "unit");
    if (u && (rc = parse_unit(c, u, &unit)) != 0)
        return rc;
    if (l->unlimited && unit != SLUICE_RLS_UNIT_UNKNOWN)
        return sluice__cerr(c, u, "should not specify rate limit unit when unlimited");
    if (!l->unlimited && unit == SLUICE_RLS_UNIT_UNKNOWN)
        return sluice__cerr(c, u ? u : n, "invalid rate limit unit '%.40s' (second, minute, "
                            "hour, day, week, month or year)", u && u->str ? u->str : "");
    l->unit = unit;
    l->window_ms = sluice__rls_unit_seconds(unit) * 1000;
    if ((v = sluice__ynode_get(n, "replaces")) && (rc = parse_replaces(c, v, l)) != 0)
        return rc;
    const sluice__ynode *a = sluice__ynode_get(n, "algorithm");
    if (a && l->unlimited)
        return sluice__cerr(c, a, "an unlimited rate_limit takes no algorithm");
    if (!a && sluice__ynode_get(n, "burst"))
        return sluice__cerr(c, sluice__ynode_get(n, "burst"),
                            "'burst' needs an 'algorithm' (token_bucket or leaky_bucket)");
    return a ? parse_algorithm(c, n, a, l) : 0;
}

static int parse_list(sluice__cload *c, const sluice__ynode *n, sluice__rls_node **out, int *nout,
                      sluice__rls_index *idx);

/* qsort_r order of kids indices: (key, value, line); bare keys sort by key, line. */
static int cmp_kids(const void *pa, const void *pb, void *arg)
{
    const sluice__rls_node *kids = arg;
    const sluice__rls_node *a = &kids[*(const int *)pa], *b = &kids[*(const int *)pb];
    int c = strcmp(a->key, b->key);
    if (c == 0 && a->value && b->value)
        c = strcmp(a->value, b->value);
    return c ? c : (a->line > b->line) - (a->line < b->line);
}

/*
 * Builds the level's index; a duplicate composite key (same key and value, or
 * the same bare key twice) is upstream's error, reported at the later one of
 * the first duplicate in file order.
 */
static int build_index(sluice__cload *c, const sluice__ynode *n, sluice__rls_node *kids, int nk,
                       sluice__rls_index *x)
{
    x->kv = sluice__calloc((size_t)nk, sizeof(int));
    x->bare = sluice__calloc((size_t)nk, sizeof(int));
    x->wild = sluice__calloc((size_t)nk, sizeof(int));
    if (!x->kv || !x->bare || !x->wild)
        return sluice__cnomem(c);
    for (int i = 0; i < nk; i++) {
        if (kids[i].value)
            x->kv[x->nkv++] = i;
        else
            x->bare[x->nbare++] = i;
        if (kids[i].wildcard)
            x->wild[x->nwild++] = i;
    }
    qsort_r(x->kv, (size_t)x->nkv, sizeof(int), cmp_kids, kids);
    qsort_r(x->bare, (size_t)x->nbare, sizeof(int), cmp_kids, kids);
    int dup = -1, first = -1;
    for (int pass = 0; pass < 2; pass++) {
        int *v = pass ? x->bare : x->kv, m = pass ? x->nbare : x->nkv;
        for (int i = 1; i < m; i++) {
            const sluice__rls_node *a = &kids[v[i - 1]], *b = &kids[v[i]];
            bool same = strcmp(a->key, b->key) == 0 &&
                        (pass || strcmp(a->value, b->value) == 0);
            if (same && (dup < 0 || b->line < kids[dup].line)) {
                dup = v[i];
                first = v[i - 1];
            }
        }
    }
    if (dup < 0)
        return 0;
    const sluice__rls_node *d = &kids[dup];
    return sluice__cerr(c, n->kids[dup], "duplicate descriptor composite key '%s%s%s' (first "
                        "at line %d)", d->key, d->value ? "_" : "", d->value ? d->value : "",
                        kids[first].line);
}

static int parse_node(sluice__cload *c, const sluice__ynode *n, sluice__rls_node *x)
{
    x->line = n->line;
    if (n->kind != SLUICE_YNODE_MAP)
        return sluice__cerr(c, n, "a descriptor must be a mapping with a 'key', got %s",
                            sluice__ynode_kind_name(n));
    int rc = check_keys(c, n, "a descriptor", desc_keys);
    if (rc)
        return rc;
    const sluice__ynode *v = sluice__ynode_get(n, "key");
    if (v && (rc = scalar_str(c, v, "key", &x->key)) != 0)
        return rc;
    if (!x->key || !x->key[0])
        return sluice__cerr(c, v ? v : n, "descriptor has empty key");
    if ((v = sluice__ynode_get(n, "value")) != NULL) {
        if ((rc = scalar_str(c, v, "value", &x->value)) != 0)
            return rc;
        if (!x->value[0]) { /* an empty value is the bare key, as upstream */
            sluice__free(x->value);
            x->value = NULL;
        }
    }
    x->wildcard = x->value && strchr(x->value, '*');
    static const struct { const char *k; size_t off; } flags[] = {
        {"shadow_mode", offsetof(sluice__rls_node, shadow)},
        {"quota_mode", offsetof(sluice__rls_node, quota)},
        {"detailed_metric", offsetof(sluice__rls_node, detailed_metric)},
        {"value_to_metric", offsetof(sluice__rls_node, value_to_metric)},
        {"share_threshold", offsetof(sluice__rls_node, share_threshold)},
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if ((v = sluice__ynode_get(n, flags[i].k)) &&
            (rc = sluice__cbool(c, v, flags[i].k, (bool *)((char *)x + flags[i].off))) != 0)
            return rc;
    x->share_threshold = x->share_threshold && x->wildcard;
    if ((v = sluice__ynode_get(n, "rate_limit")) && !is_null(v)) {
        x->has_limit = true;
        if ((rc = parse_limit(c, v, &x->limit)) != 0)
            return rc;
    }
    /* metadata: any mapping; it is upstream's dynamic metadata, not used here */
    if ((v = sluice__ynode_get(n, "descriptors")) && (rc = parse_list(c, v, &x->kids,
                                                                      &x->nkids, &x->idx)) != 0)
        return rc;
    return 0;
}

static int parse_list(sluice__cload *c, const sluice__ynode *n, sluice__rls_node **out, int *nout,
                      sluice__rls_index *idx)
{
    *out = NULL;
    *nout = 0;
    if (is_null(n))
        return 0;
    if (n->kind != SLUICE_YNODE_SEQ)
        return sluice__cerr(c, n, "'descriptors' must be a list, got %s",
                            sluice__ynode_kind_name(n));
    if (n->n == 0)
        return 0;
    sluice__rls_node *kids = sluice__calloc(n->n, sizeof(*kids));
    if (!kids)
        return sluice__cnomem(c);
    *out = kids;
    for (size_t i = 0; i < n->n; i++) {
        *nout = (int)i + 1;
        int rc = parse_node(c, n->kids[i], &kids[i]);
        if (rc)
            return rc;
    }
    return build_index(c, n, kids, *nout, idx);
}

/* ---- files ---------------------------------------------------------------------- */

/* Reads a whole file of at most SLUICE_CONFIG_FILE_MAX bytes; the buffer grows
 * from 16 KiB, so small files (the usual) cost a small allocation. */
static int read_file(const char *path, char **buf, size_t *len, sluice_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        char eb[128];
        return sluice__conf_fail(err, SLUICE_EIO, path, 0, "cannot open: %s",
                                 strerror_r(errno, eb, sizeof(eb)));
    }
    size_t cap = 16384, n = 0;
    char *b = sluice__malloc(cap);
    int rc = b ? 0 : sluice__conf_fail(err, SLUICE_ENOMEM, path, 0, "out of memory");
    while (rc == 0) {
        if (n == cap) {
            if (cap > SLUICE_CONFIG_FILE_MAX) {
                rc = sluice__conf_fail(err, SLUICE_ECONFIG, path, 1, "file is larger than %u "
                                       "bytes", SLUICE_CONFIG_FILE_MAX);
                break;
            }
            /* at most one byte past the bound: enough to know it is too big */
            size_t ncap = cap * 2 > SLUICE_CONFIG_FILE_MAX + 1 ? SLUICE_CONFIG_FILE_MAX + 1
                                                               : cap * 2;
            char *nb = sluice__realloc(b, ncap);
            if (!nb) {
                rc = sluice__conf_fail(err, SLUICE_ENOMEM, path, 0, "out of memory");
                break;
            }
            b = nb;
            cap = ncap;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                rc = sluice__conf_fail(err, SLUICE_EIO, path, 0, "read error");
            break;
        }
    }
    fclose(f);
    if (rc == 0 && n > SLUICE_CONFIG_FILE_MAX)
        rc = sluice__conf_fail(err, SLUICE_ECONFIG, path, 1, "file is larger than %u bytes",
                               SLUICE_CONFIG_FILE_MAX);
    if (rc) {
        sluice__free(b);
        return rc;
    }
    *buf = b;
    *len = n;
    return 0;
}

/* Adds the descriptor file text[0..len), called path in messages, to r. */
static int load_text(sluice__rls *r, const char *path, const char *text, size_t len,
                     sluice_error *err)
{
    sluice__ynode *root = NULL;
    int rc = sluice__yaml_parse(text, len, path, &root, err);
    if (rc)
        return rc;
    sluice__cload c = {.file = path, .err = err};
    sluice__rls_domain dom = {0};
    if (!root)
        rc = sluice__conf_fail(err, SLUICE_ECONFIG, path, 1, "config file cannot have empty "
                               "domain");
    else if (root->kind != SLUICE_YNODE_MAP)
        rc = sluice__cerr(&c, root, "a descriptor file must be a mapping with 'domain' and "
                          "'descriptors', got %s", sluice__ynode_kind_name(root));
    else
        rc = check_keys(&c, root, "a descriptor file", file_keys);
    const sluice__ynode *d = rc ? NULL : sluice__ynode_get(root, "domain");
    if (rc == 0 && d)
        rc = scalar_str(&c, d, "domain", &dom.name);
    if (rc == 0 && (!dom.name || !dom.name[0]))
        rc = sluice__cerr(&c, d ? d : root, "config file cannot have empty domain");
    for (int i = 0; rc == 0 && i < r->ndomains; i++)
        if (strcmp(r->domains[i].name, dom.name) == 0)
            rc = sluice__cerr(&c, d, "duplicate domain '%s' in config file (also in %s)",
                              dom.name, r->domains[i].file);
    const sluice__ynode *ds = rc ? NULL : sluice__ynode_get(root, "descriptors");
    if (rc == 0 && ds)
        rc = parse_list(&c, ds, &dom.kids, &dom.nkids, &dom.idx);
    if (rc == 0 && !(dom.file = sluice__strdup(path)))
        rc = sluice__cnomem(&c);
    sluice__ynode_free(root);
    sluice__rls_domain *nd = rc ? NULL : sluice__realloc(r->domains, (size_t)(r->ndomains + 1) *
                                                                      sizeof(*nd));
    if (rc == 0 && !nd)
        rc = sluice__cnomem(&c);
    if (rc) {
        sluice__free(dom.name);
        sluice__free(dom.file);
        nodes_free(dom.kids, dom.nkids);
        index_free(&dom.idx);
        return rc;
    }
    r->domains = nd;
    r->domains[r->ndomains++] = dom;
    return 0;
}

static int load_one(sluice__rls *r, const char *path, sluice_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, err);
    if (rc)
        return rc;
    rc = load_text(r, path, text, len, err);
    sluice__free(text);
    return rc;
}

int sluice__rls_load_text(sluice__rls **out, const char *text, size_t len, const char *name,
                          sluice_error *err)
{
    if (!out || !text || !name)
        return sluice__errorf(err, SLUICE_EINVAL, "sluice__rls_load_text: bad argument");
    *out = NULL;
    if (len > SLUICE_CONFIG_FILE_MAX)
        return sluice__conf_fail(err, SLUICE_ECONFIG, name, 1, "file is larger than %u bytes",
                                 SLUICE_CONFIG_FILE_MAX);
    sluice__rls *r = sluice__calloc(1, sizeof(*r));
    if (!r)
        return sluice__errorf(err, SLUICE_ENOMEM, "out of memory");
    int rc = load_text(r, name, text, len, err);
    if (rc) {
        sluice__rls_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int sluice__rls_load(sluice__rls **out, const char *const *patterns, int n, sluice_error *err)
{
    if (!out || n < 0 || (n > 0 && !patterns))
        return sluice__errorf(err, SLUICE_EINVAL, "sluice__rls_load: bad argument");
    *out = NULL;
    sluice__rls *r = sluice__calloc(1, sizeof(*r));
    if (!r)
        return sluice__errorf(err, SLUICE_ENOMEM, "out of memory");
    int rc = 0, files = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        glob_t g;
        int grc = glob(patterns[i], GLOB_ERR, NULL, &g);
        if (grc == GLOB_NOMATCH && !strpbrk(patterns[i], "*?[")) {
            /* a plain path that is not there is a mistake, not an empty set */
            rc = sluice__conf_fail(err, SLUICE_EIO, patterns[i], 0,
                                   "cannot open: No such file or directory");
        } else if (grc == GLOB_NOSPACE) {
            rc = sluice__errorf(err, SLUICE_ENOMEM, "out of memory");
        } else if (grc == GLOB_ABORTED) {
            rc = sluice__conf_fail(err, SLUICE_EIO, patterns[i], 0, "cannot read the directory");
        }
        for (size_t j = 0; grc == 0 && rc == 0 && j < g.gl_pathc; j++) {
            if (++files > SLUICE_RLS_MAX_FILES)
                rc = sluice__conf_fail(err, SLUICE_ECONFIG, patterns[i], 0, "more than %d "
                                       "descriptor files", SLUICE_RLS_MAX_FILES);
            else
                rc = load_one(r, g.gl_pathv[j], err);
        }
        if (grc == 0)
            globfree(&g);
    }
    if (rc) {
        sluice__rls_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

const sluice__rls_domain *sluice__rls_find_domain(const sluice__rls *r, const char *name,
                                                  size_t len)
{
    for (int i = 0; r && i < r->ndomains; i++)
        if (strlen(r->domains[i].name) == len && memcmp(r->domains[i].name, name, len) == 0)
            return &r->domains[i];
    return NULL;
}

bool sluice__rls_looks_like_descriptors(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (read_file(path, &text, &len, NULL) != 0)
        return false;
    sluice__ynode *root = NULL;
    int rc = sluice__yaml_parse(text, len, path, &root, NULL);
    sluice__free(text);
    bool yes = rc == 0 && root && root->kind == SLUICE_YNODE_MAP &&
               (sluice__ynode_get(root, "domain") || sluice__ynode_get(root, "descriptors")) &&
               !sluice__ynode_get(root, "rules");
    sluice__ynode_free(root);
    return yes;
}
