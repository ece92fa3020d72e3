/* SPDX-License-Identifier: MIT */
/*
 * config.c - loading a sluice YAML config: reading the file (bounded size),
 * parsing it into a node tree (yaml_doc.c), validating and converting the
 * top-level settings here and the rules in rules.c.  The first error stops
 * the load and is reported as "<file>:<line>: <reason>"; nothing is printed.
 * A loaded config is immutable; freeing it is the only mutation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/conf.h"
#include "rls/rls_config.h"
#include "util/alloc.h"

static const char *const top_keys[] = {"listen",     "workers",        "store",
                                       "timeout_ms", "on_store_error", "headers",
                                       "trusted_proxies", "identify",  "deny_status",
                                       "tier_header", "shadow",        "rules",
                                       "descriptors_config", "descriptors_semantics",
                                       "grpc_listen", NULL};

/* ---- free ------------------------------------------------------------------ */

void sluice_config_free(sluice_config *cfg)
{
    if (!cfg)
        return;
    sluice__conf_rules_free(cfg);
    sluice__rls_conf_free(cfg);
    sluice__ident_free(cfg->ident, cfg->nident);
    sluice__free(cfg->trusted);
    sluice__free(cfg->file);
    sluice__free(cfg->listen);
    sluice__free(cfg->grpc_listen);
    sluice__free(cfg->store);
    sluice__free(cfg->tier_header);
    sluice__free(cfg);
}

const char *sluice_config_store_url(const sluice_config *cfg)
{
    return cfg && cfg->store ? cfg->store : "memory://";
}

/* ---- defaults -------------------------------------------------------------- */

static int set_str(char **dst, const char *s)
{
    char *d = sluice__strdup(s);
    if (!d)
        return SLUICE_ENOMEM;
    sluice__free(*dst);
    *dst = d;
    return 0;
}

static int defaults(sluice_config *cfg, const char *name)
{
    static const char *const idents[] = {"header:X-API-Key", "header:X-User-Id", "ip"};
    cfg->timeout_ms = 20;
    cfg->on_store_error = SLUICE_FAIL_OPEN;
    cfg->headers = SLUICE_HEADERS_BOTH;
    cfg->deny_status = 429;
    if (set_str(&cfg->file, name) || set_str(&cfg->listen, "127.0.0.1:8080") ||
        set_str(&cfg->store, "memory://") || set_str(&cfg->tier_header, "X-User-Tier"))
        return SLUICE_ENOMEM;
    cfg->trusted = sluice__calloc(2, sizeof(*cfg->trusted));
    cfg->ident = sluice__calloc(3, sizeof(*cfg->ident));
    if (!cfg->trusted || !cfg->ident)
        return SLUICE_ENOMEM;
    cfg->ntrusted = 2;
    sluice__cidr_parse("127.0.0.1/32", &cfg->trusted[0]);
    sluice__cidr_parse("::1/128", &cfg->trusted[1]);
    /* Built through the same parser as the file's list, so they cannot differ. */
    for (int i = 0; i < 3; i++) {
        sluice__ynode n = {.kind = SLUICE_YNODE_SCALAR, .plain = true,
                           .str = (char *)idents[i], .len = strlen(idents[i]), .line = 1};
        sluice__cload c = {.file = name, .err = NULL};
        int rc = sluice__cident(&c, &n, &cfg->ident[i]);
        if (rc)
            return rc;
        cfg->nident = i + 1;
    }
    return 0;
}

/* ---- top-level settings --------------------------------------------------- */

/* "host:port" or "[v6]:port"; no name resolution here.  key is "listen"
 * or "grpc_listen" (the HTTP/1.1 and the gRPC listener take the same form). */
static int parse_listen(sluice__cload *c, const sluice__ynode *n, const char *key, char **dst)
{
    const char *s;
    int rc = sluice__cstr(c, n, key, 300, &s);
    if (rc)
        return rc;
    const char *colon = strrchr(s, ':');
    bool ok = colon && colon != s;
    if (ok && s[0] == '[')
        ok = colon > s + 2 && colon[-1] == ']';
    else if (ok)
        ok = memchr(s, ':', (size_t)(colon - s)) == NULL;
    long port = 0;
    if (ok) {
        char *end;
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        ok = colon[1] != '\0' && *end == '\0' && errno == 0 && port >= 1 && port <= 65535;
    }
    if (!ok)
        return sluice__cerr(c, n,
                            "'%s' must be host:port (e.g. 127.0.0.1:8080 or [::1]:8080) "
                            "with a port in 1..65535",
                            key);
    return set_str(dst, s) ? sluice__cnomem(c) : 0;
}

static int parse_workers(sluice__cload *c, const sluice__ynode *n, sluice_config *cfg)
{
    if (n->kind == SLUICE_YNODE_SCALAR && strcmp(n->str, "auto") == 0) {
        cfg->workers = 0;
        return 0;
    }
    int64_t v;
    if (n->kind == SLUICE_YNODE_SCALAR && n->plain && n->str[0] &&
        strspn(n->str, "-+0123456789") != n->len)
        return sluice__cerr(c, n, "'workers' must be 'auto' or a number of threads, got '%.40s'",
                            n->str);
    int rc = sluice__cint(c, n, "workers", 1, 1024, &v);
    if (rc)
        return rc;
    cfg->workers = (int)v;
    return 0;
}

static int parse_store(sluice__cload *c, const sluice__ynode *n, sluice_config *cfg)
{
    static const char *const schemes[] = {"memory://", "redis://", "redis+sentinel://",
                                          "redis+cluster://", NULL};
    const char *s;
    int rc = sluice__cstr(c, n, "store", SLUICE_STORE_URL_MAX, &s);
    if (rc)
        return rc;
    int i;
    for (i = 0; schemes[i]; i++)
        if (strncmp(s, schemes[i], strlen(schemes[i])) == 0)
            break;
    /* The URL may hold a password: never echo it. */
    if (!schemes[i])
        return sluice__cerr(c, n,
                            "'store' must be a URL starting with memory://, redis://, "
                            "redis+sentinel:// or redis+cluster://");
    return set_str(&cfg->store, s) ? sluice__cnomem(c) : 0;
}

static int parse_trusted(sluice__cload *c, const sluice__ynode *n, sluice_config *cfg)
{
    if (n->kind != SLUICE_YNODE_SEQ)
        return sluice__cerr(c, n, "'trusted_proxies' must be a list of CIDR ranges, got %s",
                            sluice__ynode_kind_name(n));
    if (n->n > SLUICE_MAX_TRUSTED)
        return sluice__cerr(c, n, "'trusted_proxies' has more than %d entries",
                            SLUICE_MAX_TRUSTED);
    sluice__cidr *t = n->n ? sluice__calloc(n->n, sizeof(*t)) : NULL;
    if (n->n && !t)
        return sluice__cnomem(c);
    for (size_t i = 0; i < n->n; i++) {
        const char *s;
        int rc = sluice__cstr(c, n->kids[i], "trusted_proxies", 64, &s);
        if (rc == 0 && sluice__cidr_parse(s, &t[i]) != 0)
            rc = sluice__cerr(c, n->kids[i],
                              "'%s' is not an IPv4 or IPv6 address or CIDR range "
                              "(e.g. 10.0.0.0/8, ::1/128)",
                              s);
        if (rc) {
            sluice__free(t);
            return rc;
        }
    }
    sluice__free(cfg->trusted);
    cfg->trusted = t;
    cfg->ntrusted = (int)n->n;
    return 0;
}

static int parse_identify(sluice__cload *c, const sluice__ynode *n, sluice_config *cfg)
{
    sluice__ident *ids;
    int nids;
    int rc = sluice__cident_list(c, n, "identify", &ids, &nids);
    if (rc)
        return rc;
    sluice__ident_free(cfg->ident, cfg->nident);
    cfg->ident = ids;
    cfg->nident = nids;
    return 0;
}

static int parse_setting(sluice__cload *c, const char *key, const sluice__ynode *v,
                         sluice_config *cfg)
{
    static const char *const on_err[] = {"allow", "deny", "local", NULL};
    static const char *const hdrs[] = {"none", "legacy", "ietf", "both", NULL};
    int64_t i64;
    int idx, rc;
    const char *s;

    if (strcmp(key, "listen") == 0)
        return parse_listen(c, v, key, &cfg->listen);
    if (strcmp(key, "grpc_listen") == 0)
        return parse_listen(c, v, key, &cfg->grpc_listen);
    if (strcmp(key, "workers") == 0)
        return parse_workers(c, v, cfg);
    if (strcmp(key, "store") == 0)
        return parse_store(c, v, cfg);
    if (strcmp(key, "trusted_proxies") == 0)
        return parse_trusted(c, v, cfg);
    if (strcmp(key, "identify") == 0)
        return parse_identify(c, v, cfg);
    if (strcmp(key, "shadow") == 0)
        return sluice__cbool(c, v, "shadow", &cfg->shadow);
    if (strcmp(key, "timeout_ms") == 0) {
        rc = sluice__cint(c, v, key, 1, 60000, &i64);
        cfg->timeout_ms = (int)i64;
        return rc;
    }
    if (strcmp(key, "deny_status") == 0) {
        rc = sluice__cint(c, v, key, 400, 599, &i64);
        if (rc == SLUICE_ECONFIG && v->kind == SLUICE_YNODE_SCALAR && v->plain &&
            strspn(v->str, "0123456789") == v->len && v->len > 0)
            return sluice__cerr(c, v, "'deny_status' must be an HTTP error status in 400..599, "
                                      "got %.20s", v->str);
        cfg->deny_status = (int)i64;
        return rc;
    }
    if (strcmp(key, "on_store_error") == 0) {
        rc = sluice__cenum(c, v, key, on_err, &idx);
        cfg->on_store_error = idx == 0 ? SLUICE_FAIL_OPEN
                              : idx == 1 ? SLUICE_FAIL_CLOSED : SLUICE_FAIL_LOCAL;
        return rc;
    }
    if (strcmp(key, "headers") == 0) {
        rc = sluice__cenum(c, v, key, hdrs, &idx);
        cfg->headers = idx == 0 ? SLUICE_HEADERS_NONE
                       : idx == 1 ? SLUICE_HEADERS_LEGACY
                       : idx == 2 ? SLUICE_HEADERS_IETF : SLUICE_HEADERS_BOTH;
        return rc;
    }
    if (strcmp(key, "tier_header") == 0) {
        rc = sluice__cstr(c, v, key, SLUICE_HEADER_NAME_MAX, &s);
        if (rc)
            return rc;
        if (!sluice__header_name_ok(s))
            return sluice__cerr(c, v, "'tier_header' is not a valid header name: '%.40s'", s);
        return set_str(&cfg->tier_header, s) ? sluice__cnomem(c) : 0;
    }
    if (strncmp(key, "descriptors_", 12) == 0)
        return sluice__rls_conf_setting(c, key, v, cfg);
    return 0; /* "rules": handled after every setting is known */
}

static int build(sluice__cload *c, const sluice__ynode *root, sluice_config *cfg)
{
    if (!root)
        return sluice__conf_fail(c->err, SLUICE_ECONFIG, c->file, 1,
                                 "empty config: it needs at least a 'rules' list");
    if (root->kind != SLUICE_YNODE_MAP)
        return sluice__cerr(c, root, "a config must be a mapping of settings, got %s",
                            sluice__ynode_kind_name(root));
    int rc = sluice__ckeys(c, root, "the config", top_keys);
    for (size_t i = 0; rc == 0 && i < root->n; i++)
        rc = parse_setting(c, root->kids[2 * i]->str, root->kids[2 * i + 1], cfg);
    if (rc == 0)
        rc = sluice__rls_conf_finish(c, cfg);
    if (rc)
        return rc;
    for (size_t i = 0; i < root->n; i++)
        if (strcmp(root->kids[2 * i]->str, "rules") == 0)
            return sluice__conf_rules(c, root->kids[2 * i], root->kids[2 * i + 1], cfg);
    return sluice__conf_fail(c->err, SLUICE_ECONFIG, c->file, root->line,
                             "no 'rules': a config needs at least one rule");
}

/* ---- entry points ----------------------------------------------------------- */

int sluice_config_load_string(sluice_config **out, const char *yaml, size_t len, const char *name,
                              sluice_error *err)
{
    if (!name)
        name = "<string>";
    if (!out || (!yaml && len))
        return sluice__conf_fail(err, SLUICE_EINVAL, name, 0, "invalid argument");
    *out = NULL;
    if (len > SLUICE_CONFIG_FILE_MAX)
        return sluice__conf_fail(err, SLUICE_ECONFIG, name, 1,
                                 "config is larger than %u bytes", SLUICE_CONFIG_FILE_MAX);
    sluice__cload c = {.file = name, .err = err};
    sluice__ynode *root = NULL;
    int rc = sluice__yaml_parse(yaml ? yaml : "", len, name, &root, err);
    if (rc)
        return rc;
    sluice_config *cfg = sluice__calloc(1, sizeof(*cfg));
    if (!cfg) {
        sluice__ynode_free(root);
        return sluice__cnomem(&c);
    }
    rc = defaults(cfg, name);
    if (rc)
        rc = sluice__cnomem(&c);
    else
        rc = build(&c, root, cfg);
    sluice__ynode_free(root);
    if (rc) {
        sluice_config_free(cfg);
        return rc;
    }
    *out = cfg;
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
    return 0;
}

int sluice_config_load_file(sluice_config **out, const char *path, sluice_error *err)
{
    if (!out || !path)
        return sluice__conf_fail(err, SLUICE_EINVAL, path, 0, "invalid argument");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        char eb[128];
        /* GNU strerror_r (the build defines _GNU_SOURCE): thread-safe. */
        return sluice__conf_fail(err, SLUICE_EIO, path, 0, "cannot open: %s",
                                 strerror_r(errno, eb, sizeof(eb)));
    }
    size_t cap = 64 * 1024, len = 0;
    char *buf = sluice__malloc(cap);
    int rc = buf ? 0 : SLUICE_ENOMEM;
    while (rc == 0) {
        if (len > SLUICE_CONFIG_FILE_MAX) {
            rc = sluice__conf_fail(err, SLUICE_ECONFIG, path, 1,
                                   "config file is larger than %u bytes", SLUICE_CONFIG_FILE_MAX);
            break;
        }
        if (len == cap) {
            /* Read at most one byte past the bound: enough to know it is too big. */
            size_t ncap = cap * 2 > SLUICE_CONFIG_FILE_MAX + 1 ? SLUICE_CONFIG_FILE_MAX + 1
                                                               : cap * 2;
            char *nb = sluice__realloc(buf, ncap);
            if (!nb) {
                rc = SLUICE_ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = sluice__conf_fail(err, SLUICE_EIO, path, 0, "read error");
            break;
        }
    }
    fclose(f);
    if (rc == SLUICE_ENOMEM)
        rc = sluice__conf_fail(err, SLUICE_ENOMEM, path, 0, "out of memory");
    if (rc == 0)
        rc = sluice_config_load_string(out, buf, len, path, err);
    sluice__free(buf);
    return rc;
}
