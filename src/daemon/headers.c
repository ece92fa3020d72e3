/* SPDX-License-Identifier: MIT */
/*
 * headers.c - rate-limit response headers built from a decision, never from
 * constants: the legacy X-RateLimit-Limit/-Remaining/-Reset and Retry-After,
 * and the IETF httpapi-ratelimit-headers fields RateLimit-Policy (one item
 * per limit) and RateLimit (the limit that decided).
 *
 * Choices (docs/http-api.md): X-RateLimit-Reset is Unix epoch seconds,
 * rounded up; Retry-After and t= are seconds rounded up; a multi-limit rule
 * names its items "<rule>-<n>" with n the 0-based limit index (as in the
 * Redis keys); a window below one second is reported as w=1; Retry-After is
 * omitted when the request can never pass (retry_after_ms = -1) and for
 * shadow rules (which never deny).
 */
#include <event2/http.h>
#include <inttypes.h>
#include <stdio.h>

#include "daemon.h"
#include "policy/policy.h"

static int64_t ceil_s(int64_t ms)
{
    if (ms <= 0)
        return 0;
    return ms / 1000 + (ms % 1000 != 0);
}

/* Item name of limit i: the rule's name, or "<rule>-<i>" for multi-limit rules. */
static int item_name(char *buf, size_t size, const char *rule, const sluice_decision *d, int i)
{
    if (d->nlimits <= 1)
        return snprintf(buf, size, "%s", rule);
    return snprintf(buf, size, "%s-%d", rule, i);
}

int sluiced_header_policy(char *buf, size_t size, const char *rule, const sluice_decision *d)
{
    size_t o = 0;
    for (int i = 0; i < d->nlimits; i++) {
        char name[96];
        item_name(name, sizeof(name), rule, d, i);
        const sluice_limit_decision *l = &d->limits[i];
        int64_t w = ceil_s(l->window_ms);
        if (w < 1)
            w = 1;
        int n = snprintf(buf + o, size - o, "%s\"%s\";q=%" PRId64 ";w=%" PRId64, i ? ", " : "",
                         name, l->limit, w);
        if (n < 0 || (size_t)n >= size - o)
            return -1;
        o += (size_t)n;
    }
    return (int)o;
}

int sluiced_header_ratelimit(char *buf, size_t size, const char *rule, const sluice_decision *d)
{
    char name[96];
    int i = d->decided_by;
    if (i < 0 || i >= d->nlimits)
        i = 0;
    item_name(name, sizeof(name), rule, d, i);
    int n = snprintf(buf, size, "\"%s\";r=%" PRId64 ";t=%" PRId64, name,
                     d->remaining < 0 ? 0 : d->remaining, ceil_s(d->reset_after_ms));
    return (n < 0 || (size_t)n >= size) ? -1 : n;
}

void sluiced_headers_add(struct evkeyvalq *out, int mode, const char *rule,
                         const sluice_decision *d)
{
    char v[1024];
    if (d->nlimits <= 0)
        return;
    if (mode & SLUICE_HEADERS_LEGACY) {
        snprintf(v, sizeof(v), "%" PRId64, d->limit);
        evhttp_add_header(out, "X-RateLimit-Limit", v);
        snprintf(v, sizeof(v), "%" PRId64, d->remaining < 0 ? 0 : d->remaining);
        evhttp_add_header(out, "X-RateLimit-Remaining", v);
        int64_t reset_ms = d->now_ms + (d->reset_after_ms > 0 ? d->reset_after_ms : 0);
        snprintf(v, sizeof(v), "%" PRId64, ceil_s(reset_ms));
        evhttp_add_header(out, "X-RateLimit-Reset", v);
    }
    if (!d->allowed && d->retry_after_ms >= 0 && mode != SLUICE_HEADERS_NONE) {
        snprintf(v, sizeof(v), "%" PRId64, ceil_s(d->retry_after_ms));
        evhttp_add_header(out, "Retry-After", v);
    }
    if (mode & SLUICE_HEADERS_IETF) {
        if (sluiced_header_policy(v, sizeof(v), rule, d) > 0)
            evhttp_add_header(out, "RateLimit-Policy", v);
        if (sluiced_header_ratelimit(v, sizeof(v), rule, d) > 0)
            evhttp_add_header(out, "RateLimit", v);
    }
}
