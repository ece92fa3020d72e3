/* SPDX-License-Identifier: MIT */
/*
 * rls_headers.c - the rate-limit headers of an Envoy RLS reply, for gRPC's
 * response_headers_to_add and /json: the same fields and formatting as
 * sluiced's HTTP replies (headers.c), per the config's `headers:`, built
 * from the descriptor that decides: the first one over the limit, else the
 * limited one with the least remaining (upstream's choice for its
 * RateLimit-* headers).  The item name is the limit's `name` when it is a
 * plain token, else "descriptor-<index>".
 */
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "policy/policy.h"
#include "rls/rls.h"

static int pick(const sluice__rls_reply *r)
{
    int k = -1;
    for (int i = 0; i < r->nstatuses; i++) {
        const sluice__rls_status *s = &r->statuses[i];
        if (!s->has_limit)
            continue;
        if (s->code == SLUICE_RLS_OVER_LIMIT)
            return i;
        if (k < 0 || s->limit_remaining < r->statuses[k].limit_remaining)
            k = i;
    }
    return k;
}

static bool token(const char *s)
{
    if (!s || !s[0] || strlen(s) > 64)
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") ==
           strlen(s);
}

/* Decimal of v >= 0 into buf (24 bytes); snprintf's format parsing was a
 * visible share of a gRPC reply's instructions, as in headers.c. */
static const char *dec(char *buf, int64_t v)
{
    char *p = buf + 23;
    *p = '\0';
    uint64_t u = v < 0 ? 0 : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return p;
}

static int64_t ceil_s(int64_t ms)
{
    return ms <= 0 ? 0 : ms / 1000 + (ms % 1000 != 0);
}

int sluice__rls_headers(const sluice_config *cfg, const sluice__rls_reply *r,
                        sluice__rls_header_fn fn, void *arg)
{
    if (!cfg || !r || !fn)
        return 0;
    int k = pick(r);
    if (k < 0 || cfg->headers == SLUICE_HEADERS_NONE)
        return 0;
    const sluice__rls_status *s = &r->statuses[k];
    const sluice_decision *d = &s->d;
    char name[80], v[1024];
    if (token(s->limit_name))
        snprintf(name, sizeof(name), "%s", s->limit_name);
    else
        snprintf(name, sizeof(name), "descriptor-%d", k);
    int rc;
    if (cfg->headers & SLUICE_HEADERS_LEGACY) {
        if ((rc = fn(arg, "X-RateLimit-Limit", dec(v, d->limit))) != 0)
            return rc;
        if ((rc = fn(arg, "X-RateLimit-Remaining", dec(v, d->remaining))) != 0)
            return rc;
        if ((rc = fn(arg, "X-RateLimit-Reset", dec(v, ceil_s(d->now_ms + d->reset_after_ms)))) != 0)
            return rc;
    }
    if (!d->allowed && d->retry_after_ms >= 0) {
        if ((rc = fn(arg, "Retry-After", dec(v, ceil_s(d->retry_after_ms)))) != 0)
            return rc;
    }
    if (cfg->headers & SLUICE_HEADERS_IETF) {
        if (sluiced_header_policy(v, sizeof(v), name, d) > 0 &&
            (rc = fn(arg, "RateLimit-Policy", v)) != 0)
            return rc;
        if (sluiced_header_ratelimit(v, sizeof(v), name, d) > 0 &&
            (rc = fn(arg, "RateLimit", v)) != 0)
            return rc;
    }
    return 0;
}
