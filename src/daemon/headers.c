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
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "daemon.h"
#include "http.h"
#include "policy/policy.h"

static int64_t ceil_s(int64_t ms)
{
    if (ms <= 0)
        return 0;
    return ms / 1000 + (ms % 1000 != 0);
}

/*
 * A bounded string builder: these headers are built on every decision, and
 * snprintf's format parsing was a visible share of the request's CPU time.
 * ok turns false (and stays) when something does not fit with its NUL.
 */
typedef struct sbuf {
    char *p;
    size_t left;
    bool ok;
} sbuf;

static void sb_mem(sbuf *b, const char *s, size_t n)
{
    if (!b->ok || n >= b->left) {
        b->ok = false;
        return;
    }
    memcpy(b->p, s, n);
    b->p += n;
    b->left -= n;
    *b->p = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_mem(b, s, strlen(s));
}

static void sb_i64(sbuf *b, int64_t v)
{
    char t[24];
    char *q = t + sizeof(t);
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--q = '-';
    sb_mem(b, q, (size_t)(t + sizeof(t) - q));
}

/* Item name of limit i, quoted: the rule's name, or "<rule>-<i>" for multi-limit rules. */
static void sb_item(sbuf *b, const char *rule, const sluice_decision *d, int i)
{
    sb_mem(b, "\"", 1);
    sb_str(b, rule);
    if (d->nlimits > 1) {
        sb_mem(b, "-", 1);
        sb_i64(b, i);
    }
    sb_mem(b, "\"", 1);
}

static int sb_done(const sbuf *b, const char *start)
{
    return b->ok ? (int)(b->p - start) : -1;
}

int sluiced_header_policy(char *buf, size_t size, const char *rule, const sluice_decision *d)
{
    sbuf b = {buf, size, size > 0};
    if (b.ok)
        buf[0] = '\0';
    for (int i = 0; i < d->nlimits; i++) {
        const sluice_limit_decision *l = &d->limits[i];
        int64_t w = ceil_s(l->window_ms);
        if (w < 1)
            w = 1;
        if (i)
            sb_mem(&b, ", ", 2);
        sb_item(&b, rule, d, i);
        sb_mem(&b, ";q=", 3);
        sb_i64(&b, l->limit);
        sb_mem(&b, ";w=", 3);
        sb_i64(&b, w);
    }
    return sb_done(&b, buf);
}

int sluiced_header_ratelimit(char *buf, size_t size, const char *rule, const sluice_decision *d)
{
    int i = d->decided_by;
    if (i < 0 || i >= d->nlimits)
        i = 0;
    sbuf b = {buf, size, size > 0};
    if (b.ok)
        buf[0] = '\0';
    sb_item(&b, rule, d, i);
    sb_mem(&b, ";r=", 3);
    sb_i64(&b, d->remaining < 0 ? 0 : d->remaining);
    sb_mem(&b, ";t=", 3);
    sb_i64(&b, ceil_s(d->reset_after_ms));
    return sb_done(&b, buf);
}

/* Adds "name: <decimal x>". */
static void add_i64(sluiced_http_reply *out, const char *name, size_t nlen, int64_t x)
{
    char v[24];
    sbuf b = {v, sizeof(v), true};
    sb_i64(&b, x);
    sluiced_http_reply_header_n(out, name, nlen, v, (size_t)(b.p - v));
}

#define LIT(s) s, sizeof(s) - 1

void sluiced_headers_add(sluiced_http_reply *out, int mode, const char *rule,
                         const sluice_decision *d)
{
    char v[1024];
    if (d->nlimits <= 0)
        return;
    if (mode & SLUICE_HEADERS_LEGACY) {
        add_i64(out, LIT("X-RateLimit-Limit"), d->limit);
        add_i64(out, LIT("X-RateLimit-Remaining"), d->remaining < 0 ? 0 : d->remaining);
        int64_t reset_ms = d->now_ms + (d->reset_after_ms > 0 ? d->reset_after_ms : 0);
        add_i64(out, LIT("X-RateLimit-Reset"), ceil_s(reset_ms));
    }
    if (!d->allowed && d->retry_after_ms >= 0 && mode != SLUICE_HEADERS_NONE)
        add_i64(out, LIT("Retry-After"), ceil_s(d->retry_after_ms));
    if (mode & SLUICE_HEADERS_IETF) {
        int n = sluiced_header_policy(v, sizeof(v), rule, d);
        if (n > 0)
            sluiced_http_reply_header_n(out, LIT("RateLimit-Policy"), v, (size_t)n);
        n = sluiced_header_ratelimit(v, sizeof(v), rule, d);
        if (n > 0)
            sluiced_http_reply_header_n(out, LIT("RateLimit"), v, (size_t)n);
    }
}
