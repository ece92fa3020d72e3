/* SPDX-License-Identifier: MIT */
/*
 * match.c - from a request (method, path, client address, headers, tier) to
 * a rule, a tier and an identifier, reading an immutable loaded config.  No
 * allocation and no I/O: safe to call from any number of threads at once.
 *
 * The first rule whose method (if it names one) and path match decides;
 * paths are compared in their canonical form (path.c).
 * The identifier comes from the first identity source present and non-empty
 * (the rule's `key`, else the config's `identify`).  A missing or unknown
 * tier falls back to the rule's "free" tier, else its first one.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/errors.h"
#include "policy/policy.h"

/* ---- paths ------------------------------------------------------------------ */

static bool path_matches(const sluice__rule *r, const char *path, size_t plen)
{
    if (!r->path)
        return true;
    if (!path)
        return false;
    size_t rl = strlen(r->path);
    if (r->prefix) {
        if (plen >= rl && memcmp(path, r->path, rl) == 0)
            return true;
        /* a prefix "/api/" (from "/api/" + star) also matches "/api/", whose
         * canonical form is "/api" */
        return rl > 1 && r->path[rl - 1] == '/' && plen == rl - 1 &&
               memcmp(path, r->path, plen) == 0;
    }
    return plen == rl && memcmp(path, r->path, rl) == 0;
}

static bool method_matches(const sluice__rule *r, const char *method)
{
    return !r->method || (method && strcasecmp(r->method, method) == 0);
}

/* ---- tiers ------------------------------------------------------------------ */

static int tier_index(const sluice__rule *r, const char *tier)
{
    if (r->ntiers == 0)
        return -1;
    for (int i = 0; tier && i < r->ntiers; i++)
        if (strcmp(r->tiers[i].name, tier) == 0)
            return i;
    return r->default_tier;
}

static void fill_rule(const sluice__rule *r, int ri, const char *tier, sluice_match *m)
{
    m->rule = r->name;
    m->rule_index = ri;
    m->tier_index = tier_index(r, tier);
    m->tier = m->tier_index >= 0 ? r->tiers[m->tier_index].name : NULL;
}

/* ---- identity --------------------------------------------------------------- */

/*
 * The canonical text of an address, so "::FFFF:10.0.0.1", "::ffff:10.0.0.1"
 * and "10.0.0.1" are one client.  Text that is not an address is kept as is.
 */
static const char *canonical_ip(const char *ip, char *buf, size_t size)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, ip, a) == 1)
        return inet_ntop(AF_INET, a, buf, (socklen_t)size) ? buf : ip;
    if (inet_pton(AF_INET6, ip, a) != 1)
        return ip;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0)
        return inet_ntop(AF_INET, a + 12, buf, (socklen_t)size) ? buf : ip;
    return inet_ntop(AF_INET6, a, buf, (socklen_t)size) ? buf : ip;
}

/* Writes "<prefix><value>" into m->key; SLUICE_EKEY when it does not fit. */
static int put_key(sluice_match *m, const char *prefix, const char *name, const char *value,
                   size_t vl)
{
    size_t pl = strlen(prefix), nl = name ? strlen(name) + 1 : 0;
    if (pl + nl + vl > SLUICE_KEY_MAX)
        return SLUICE_EKEY;
    char *p = m->key;
    memcpy(p, prefix, pl);
    p += pl;
    for (size_t i = 0; name && i + 1 < nl; i++)
        *p++ = (char)tolower((unsigned char)name[i]);
    if (name)
        *p++ = ':';
    memcpy(p, value, vl);
    p[vl] = '\0';
    m->key_len = pl + nl + vl;
    return 0;
}

static int identify(const sluice_config *cfg, const sluice__rule *r, const sluice_request *req,
                    sluice_match *m, sluice_error *err)
{
    const sluice__ident *ids = r->nident ? r->ident : cfg->ident;
    int n = r->nident ? r->nident : cfg->nident;
    char ipbuf[INET6_ADDRSTRLEN];
    for (int i = 0; i < n; i++) {
        const char *v = NULL;
        int rc;
        if (ids[i].kind == SLUICE_ID_IP) {
            if (!req->ip || !*req->ip)
                continue;
            const char *ipc = canonical_ip(req->ip, ipbuf, sizeof(ipbuf));
            rc = put_key(m, "ip:", NULL, ipc, strlen(ipc));
        } else {
            v = req->header ? req->header(req->header_ctx, ids[i].header) : NULL;
            if (!v)
                continue;
            /* Spaces and tabs around a field value are not part of it (RFC
             * 9110 5.5): "k1 " must not be another client than "k1". */
            size_t vl = strlen(v);
            while (vl && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (vl == 0)
                continue;
            if (ids[i].kind == SLUICE_ID_API_KEY)
                rc = put_key(m, "api_key:", NULL, v, vl);
            else if (ids[i].kind == SLUICE_ID_USER)
                rc = put_key(m, "user:", NULL, v, vl);
            else
                rc = put_key(m, "header:", ids[i].header, v, vl);
        }
        if (rc)
            return sluice__errorf(err, SLUICE_EKEY,
                                  "identifier for rule '%s' is longer than %d bytes", r->name,
                                  SLUICE_KEY_MAX);
        return 0;
    }
    return sluice__errorf(err, SLUICE_EKEY,
                          "no identity for rule '%s': none of its key sources is present", r->name);
}

/* ---- entry points ----------------------------------------------------------- */

int sluice_config_match(const sluice_config *cfg, const sluice_request *req, sluice_match *m,
                        sluice_error *err)
{
    if (!cfg || !req || !m)
        return sluice__errorf(err, SLUICE_EINVAL, "invalid argument");
    /* Rules see the canonical path (path.c): every spelling of a path that
     * the server routes to one handler meets the same rule. */
    char canon[SLUICE_REQUEST_PATH_MAX + 2];
    const char *path = NULL;
    size_t plen = 0;
    if (req->path) {
        size_t raw = strcspn(req->path, "?#");
        if (raw > SLUICE_REQUEST_PATH_MAX)
            return sluice__errorf(err, SLUICE_EINVAL, "path of %zu bytes (at most %d)", raw,
                                  SLUICE_REQUEST_PATH_MAX);
        plen = sluice__path_canon(req->path, raw, canon);
        path = canon;
    }
    for (int i = 0; i < cfg->nrules; i++) {
        const sluice__rule *r = &cfg->rules[i];
        if (!method_matches(r, req->method) || !path_matches(r, path, plen))
            continue;
        const char *tier = req->tier;
        if (!tier && r->ntiers && req->header && cfg->tier_header)
            tier = req->header(req->header_ctx, cfg->tier_header);
        fill_rule(r, i, tier, m);
        return identify(cfg, r, req, m, err);
    }
    return sluice__errorf(err, SLUICE_ENORULE, "no rule matches %.16s %.200s",
                          req->method ? req->method : "-", path ? path : "-");
}

int sluice_config_match_rule(const sluice_config *cfg, const char *rule, const char *tier,
                             const char *key, size_t key_len, sluice_match *m, sluice_error *err)
{
    if (!cfg || !rule || !m)
        return sluice__errorf(err, SLUICE_EINVAL, "invalid argument");
    int ri;
    for (ri = 0; ri < cfg->nrules; ri++)
        if (strcmp(cfg->rules[ri].name, rule) == 0)
            break;
    if (ri == cfg->nrules)
        return sluice__errorf(err, SLUICE_ENORULE, "unknown rule '%.64s'", rule);
    if (!key || key_len == 0)
        return sluice__errorf(err, SLUICE_EKEY, "empty key");
    if (key_len > SLUICE_KEY_MAX)
        return sluice__errorf(err, SLUICE_EKEY, "key is longer than %d bytes", SLUICE_KEY_MAX);
    if (memchr(key, '\0', key_len))
        return sluice__errorf(err, SLUICE_EKEY, "key holds a NUL byte");
    fill_rule(&cfg->rules[ri], ri, tier, m);
    memcpy(m->key, key, key_len);
    m->key[key_len] = '\0';
    m->key_len = key_len;
    return 0;
}

const sluice__limit_set *sluice__config_limits(const sluice_config *cfg, const sluice_match *m)
{
    if (!cfg || !m || m->rule_index < 0 || m->rule_index >= cfg->nrules)
        return NULL;
    const sluice__rule *r = &cfg->rules[m->rule_index];
    if (r->ntiers == 0)
        return &r->set;
    if (m->tier_index < 0 || m->tier_index >= r->ntiers)
        return &r->tiers[r->default_tier].set;
    return &r->tiers[m->tier_index].set;
}

const char *sluice__config_tier_name(const sluice_config *cfg, const sluice_match *m)
{
    if (!cfg || !m || m->rule_index < 0 || m->rule_index >= cfg->nrules)
        return NULL;
    const sluice__rule *r = &cfg->rules[m->rule_index];
    if (r->ntiers == 0)
        return NULL;
    if (m->tier_index < 0 || m->tier_index >= r->ntiers)
        return r->tiers[r->default_tier].name;
    return r->tiers[m->tier_index].name;
}

static bool in_cidr(const sluice__cidr *c, const unsigned char *a)
{
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == c->addr[full];
}

bool sluice__config_trusted(const sluice_config *cfg, const char *addr)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    unsigned char a6[16], a4[4];
    bool v4 = false, v6 = false;
    if (!cfg || !addr)
        return false;
    if (inet_pton(AF_INET, addr, a4) == 1) {
        v4 = true;
    } else if (inet_pton(AF_INET6, addr, a6) == 1) {
        v6 = true;
        /* An IPv4 peer seen through a dual-stack socket is checked as IPv4. */
        if (memcmp(a6, mapped, 12) == 0) {
            memcpy(a4, a6 + 12, 4);
            v4 = true;
        }
    }
    for (int i = 0; i < cfg->ntrusted; i++) {
        const sluice__cidr *c = &cfg->trusted[i];
        if ((c->family == AF_INET && v4 && in_cidr(c, a4)) ||
            (c->family == AF_INET6 && v6 && in_cidr(c, a6)))
            return true;
    }
    return false;
}
