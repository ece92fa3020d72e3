/* SPDX-License-Identifier: MIT */
/*
 * url.c - parses store URLs (memory://, redis://, redis+sentinel://,
 * redis+cluster://) into a sluice__url.  Syntax only: which query
 * parameters a scheme accepts is for its store to check.
 *
 * An error message never echoes the authority part of the URL: a password
 * typed in the wrong place (no '@', a stray '/') would otherwise end up in a
 * log.  Messages name the part and the position instead ("host 2: port is
 * not a number in 1..65535").
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "store/store.h"
#include "util/alloc.h"

#define URL_MAX 4096

static int url_error(sluice_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int url_error(sluice_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        int n = snprintf(err->msg, sizeof(err->msg), "store URL: ");
        vsnprintf(err->msg + n, sizeof(err->msg) - (size_t)n, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL in *out for n == 0.
 * Returns 0, SLUICE_ENOMEM, or SLUICE_EURL for a bad escape or %00. */
static int decode(char **out, const char *s, size_t n)
{
    *out = NULL;
    if (n == 0)
        return 0;
    char *d = sluice__malloc(n + 1);
    if (!d)
        return SLUICE_ENOMEM;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[j++] = s[i];
            continue;
        }
        int a = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int b = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (a < 0 || b < 0 || (a == 0 && b == 0)) {
            sluice__free(d);
            return SLUICE_EURL;
        }
        d[j++] = (char)(a * 16 + b);
        i += 2;
    }
    d[j] = '\0';
    *out = d;
    return 0;
}

static const struct {
    const char *name;
    int default_port; /* 0: the scheme takes no host */
} schemes[] = {
    {"memory", 0},
    {"redis", 6379},
    {"redis+sentinel", 26379},
    {"redis+cluster", 6379},
};

static bool all_of(const char *s, size_t n, const char *extra)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && !strchr(extra, c))
            return false;
    }
    return true;
}

/* Parses "digits" in s[0..n) within [lo, hi] into *v; false otherwise. */
static bool parse_uint(const char *s, size_t n, long lo, long hi, long *v)
{
    if (n == 0 || n > 10)
        return false;
    long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        x = x * 10 + (s[i] - '0');
    }
    if (x < lo || x > hi)
        return false;
    *v = x;
    return true;
}

/* One "host[:port]" or "[v6]:port" item, s[0..n), as host number idx (1-based). */
static int parse_host(sluice__url *u, const char *s, size_t n, int idx, int default_port,
                      sluice_error *err)
{
    const char *host = s, *port = NULL;
    size_t hlen, plen = 0;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return url_error(err, SLUICE_EURL, "host %d: '[' without ']'", idx);
        host = s + 1;
        hlen = (size_t)(close - host);
        if (hlen == 0 || !all_of(host, hlen, ":.%") || !memchr(host, ':', hlen))
            return url_error(err, SLUICE_EURL, "host %d: not an IPv6 address", idx);
        const char *after = close + 1;
        size_t rest = n - (size_t)(after - s);
        if (rest > 0 && after[0] != ':')
            return url_error(err, SLUICE_EURL, "host %d: expected ':port' after ']'", idx);
        if (rest > 0) {
            port = after + 1;
            plen = rest - 1;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        hlen = colon ? (size_t)(colon - s) : n;
        if (colon) {
            port = colon + 1;
            plen = n - hlen - 1;
            if (memchr(port, ':', plen))
                return url_error(err, SLUICE_EURL,
                                 "host %d: an IPv6 address must be in brackets: [::1]:6379", idx);
        }
        if (hlen == 0)
            return url_error(err, SLUICE_EURL, "host %d is empty", idx);
        if (!all_of(host, hlen, "-._"))
            return url_error(err, SLUICE_EURL,
                             "host %d: a host name may hold letters, digits, '-', '.', '_'", idx);
    }
    long p = default_port;
    if (port && !parse_uint(port, plen, 1, 65535, &p))
        return url_error(err, SLUICE_EURL, "host %d: port is not a number in 1..65535", idx);
    if (hlen > 255)
        return url_error(err, SLUICE_EURL, "host %d: longer than 255 bytes", idx);
    /* an IPv6 zone is written %25 (RFC 6874): decode it for getaddrinfo() */
    int rc = decode(&u->hosts[u->nhosts], host, hlen);
    if (rc == SLUICE_ENOMEM)
        return url_error(err, rc, "out of memory");
    if (rc)
        return url_error(err, rc, "host %d: bad percent-escape", idx);
    u->ports[u->nhosts] = (int)p;
    u->nhosts++;
    return 0;
}

static int parse_userinfo(sluice__url *u, const char *s, size_t n, sluice_error *err)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : n;
    int rc = decode(&u->user, s, ulen);
    if (rc == SLUICE_ENOMEM)
        return url_error(err, rc, "out of memory");
    if (rc)
        return url_error(err, rc, "bad percent-escape in the user name");
    if (!colon)
        return 0;
    rc = decode(&u->password, colon + 1, n - ulen - 1);
    if (rc == SLUICE_ENOMEM)
        return url_error(err, rc, "out of memory");
    if (rc)
        return url_error(err, rc, "bad percent-escape in the password");
    return 0;
}

static int parse_query(const char *q, sluice_error *err)
{
    int idx = 0;
    while (*q) {
        size_t n = strcspn(q, "&");
        size_t klen = strcspn(q, "=&");
        idx++;
        if (klen == 0 || !all_of(q, klen, "_.-"))
            return url_error(err, SLUICE_EURL,
                             "query parameter %d: expected name=value, the name made of "
                             "letters, digits, '_', '.', '-'",
                             idx);
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

static int check_path(sluice__url *u, const char *scheme, sluice_error *err)
{
    const char *p = u->path;
    size_t n = strlen(p);
    long v;
    if (strcmp(scheme, "memory") == 0) {
        if (n > 0)
            return url_error(err, SLUICE_EURL, "memory:// takes no path, only ?max_keys=N");
    } else if (strcmp(scheme, "redis") == 0) {
        if (n > 0 && !parse_uint(p, n, 0, INT_MAX, &v))
            return url_error(err, SLUICE_EURL, "the path of redis:// is a database number");
    } else if (strcmp(scheme, "redis+sentinel") == 0) {
        if (n == 0)
            return url_error(err, SLUICE_EURL,
                             "redis+sentinel:// needs the master name: "
                             "redis+sentinel://host:26379/mymaster");
        if (n > 255 || !all_of(p, n, "_.-:"))
            return url_error(err, SLUICE_EURL,
                             "the master name may hold letters, digits, '_', '.', '-', ':'");
    } else if (n > 0 && strcmp(p, "0") != 0) {
        return url_error(err, SLUICE_EURL, "redis+cluster:// has only database 0");
    }
    return 0;
}

static int parse(sluice__url *u, const char *url, sluice_error *err)
{
    if (!url)
        return url_error(err, SLUICE_EURL, "missing");
    size_t len = strnlen(url, URL_MAX + 1);
    if (len > URL_MAX)
        return url_error(err, SLUICE_EURL, "longer than %d bytes", URL_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f)
            return url_error(err, SLUICE_EURL,
                             "byte %zu is a space, a control or a non-ASCII character", i + 1);
        if (c == '#')
            return url_error(err, SLUICE_EURL, "'#' is not allowed (write it as %%23)");
    }
    const char *sep = strstr(url, "://");
    if (!sep)
        return url_error(err, SLUICE_EURL,
                         "expected scheme://..., e.g. memory:// or redis://127.0.0.1:6379");
    size_t slen = (size_t)(sep - url);
    int si = -1;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (strlen(schemes[i].name) == slen && strncasecmp(url, schemes[i].name, slen) == 0)
            si = (int)i;
    }
    if (si < 0) {
        if (slen > 0 && slen <= 32 && all_of(url, slen, "+.-"))
            return url_error(err, SLUICE_EURL,
                             "unknown scheme '%.*s' (expected memory, redis, "
                             "redis+sentinel or redis+cluster)",
                             (int)slen, url);
        return url_error(err, SLUICE_EURL,
                         "unknown scheme (expected memory, redis, redis+sentinel or "
                         "redis+cluster)");
    }
    const char *scheme = schemes[si].name;
    u->scheme = sluice__strdup(scheme);
    if (!u->scheme)
        return url_error(err, SLUICE_ENOMEM, "out of memory");

    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?");
    const char *rest = auth + alen;
    size_t plen = 0;
    const char *path = "";
    if (*rest == '/') {
        path = rest + 1;
        plen = strcspn(path, "?");
        rest = path + plen;
    }
    if (*rest == '?') {
        u->query = sluice__strdup(rest + 1);
        if (!u->query)
            return url_error(err, SLUICE_ENOMEM, "out of memory");
        int rc = parse_query(u->query, err);
        if (rc)
            return rc;
    }
    u->path = sluice__strndup(path, plen);
    if (!u->path)
        return url_error(err, SLUICE_ENOMEM, "out of memory");

    /* userinfo ends at the last '@' of the authority */
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++) {
        if (*p == '@')
            at = p;
    }
    const char *hosts = auth;
    if (at) {
        if (schemes[si].default_port == 0)
            return url_error(err, SLUICE_EURL, "memory:// takes no user or password");
        int rc = parse_userinfo(u, auth, (size_t)(at - auth), err);
        if (rc)
            return rc;
        hosts = at + 1;
    }
    size_t hlen = (size_t)(auth + alen - hosts);
    if (schemes[si].default_port == 0) {
        if (hlen > 0)
            return url_error(err, SLUICE_EURL, "memory:// takes no host");
    } else {
        if (hlen == 0)
            return url_error(err, SLUICE_EURL, "%s:// needs a host: %s://host:%d", scheme, scheme,
                             schemes[si].default_port);
        int idx = 0;
        const char *h = hosts;
        for (;;) {
            size_t n = (size_t)(auth + alen - h);
            const char *comma = memchr(h, ',', n);
            if (comma)
                n = (size_t)(comma - h);
            if (++idx > SLUICE_URL_MAX_HOSTS)
                return url_error(err, SLUICE_EURL, "more than %d hosts", SLUICE_URL_MAX_HOSTS);
            int rc = parse_host(u, h, n, idx, schemes[si].default_port, err);
            if (rc)
                return rc;
            if (!comma)
                break;
            h = comma + 1;
        }
        if (strcmp(scheme, "redis") == 0 && u->nhosts > 1)
            return url_error(err, SLUICE_EURL,
                             "redis:// takes one host; for several use redis+sentinel:// "
                             "or redis+cluster://");
    }
    return check_path(u, scheme, err);
}

int sluice__url_parse(sluice__url *u, const char *url, sluice_error *err)
{
    memset(u, 0, sizeof(*u));
    int rc = parse(u, url, err);
    if (rc)
        sluice__url_free(u);
    return rc;
}

static void free_secret(char *s)
{
    if (s) {
        /* volatile so the compiler keeps the wipe of a dying buffer */
        volatile char *v = s;
        while (*v)
            *v++ = 0;
        sluice__free(s);
    }
}

void sluice__url_free(sluice__url *u)
{
    if (!u)
        return;
    sluice__free(u->scheme);
    sluice__free(u->user);
    free_secret(u->password);
    for (int i = 0; i < u->nhosts && i < SLUICE_URL_MAX_HOSTS; i++)
        sluice__free(u->hosts[i]);
    sluice__free(u->path);
    free_secret(u->query); /* may hold a password parameter */
    memset(u, 0, sizeof(*u));
}

/* ---- redaction --------------------------------------------------------- */

/* A bounded output: what does not fit is dropped, so a short buffer holds a
 * prefix of the whole result, never bytes the whole result would not show. */
typedef struct out {
    char *buf;
    size_t size, len;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->size > 0 && o->len < o->size - 1) {
        size_t room = o->size - 1 - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
        o->buf[o->len + (n < room ? n : room)] = '\0';
    }
    o->len += n;
}

size_t sluice__url_redact(char *buf, size_t size, const char *url)
{
    out o = {buf, size, 0};
    if (size > 0)
        buf[0] = '\0';
    if (!url)
        return 0;
    sluice__url u;
    bool ok = sluice__url_parse(&u, url, NULL) == 0;
    bool creds = ok && (u.user || u.password);
    sluice__url_free(&u);
    const char *sep = strstr(url, "://");
    if (!ok) {
        /* Where a URL the parser refuses keeps its credentials is anyone's
         * guess (a '/' or '@' inside the password, a missing '@'): keep only
         * the scheme, the parser's message tells what is wrong where. */
        size_t slen = sep ? (size_t)(sep - url) : strlen(url);
        bool scheme = slen <= 32 && all_of(url, slen, "+.-");
        if (scheme)
            put(&o, url, slen);
        if (sep || !scheme)
            put(&o, sep && scheme ? "://***" : "***", sep && scheme ? 6 : 3);
        return o.len;
    }
    if (!creds) {
        put(&o, url, strlen(url));
        return o.len;
    }
    /* The parser's own split: the authority ends at the first '/' or '?',
     * the userinfo at the authority's last '@'; "user:password" keeps the
     * user, a lone "name" (AUTH takes it as the password) goes entirely. */
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?");
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    put(&o, url, (size_t)((colon ? colon + 1 : auth) - url));
    put(&o, "***", 3);
    put(&o, at, strlen(at));
    return o.len;
}

int sluice__url_param(const sluice__url *u, const char *name, char *buf, size_t size)
{
    if (!u || !u->query || !name || !buf || size == 0)
        return -1;
    size_t nlen = strlen(name);
    const char *q = u->query;
    while (*q) {
        size_t n = strcspn(q, "&");
        size_t klen = strcspn(q, "=&");
        if (klen == nlen && memcmp(q, name, nlen) == 0) {
            /* percent-decode the value straight into buf: no allocation */
            size_t j = 0;
            for (size_t i = klen < n ? klen + 1 : n; i < n; i++) {
                int c = (unsigned char)q[i];
                if (c == '%') {
                    int a = i + 2 < n ? hexval((unsigned char)q[i + 1]) : -1;
                    int b = i + 2 < n ? hexval((unsigned char)q[i + 2]) : -1;
                    if (a < 0 || b < 0 || (a == 0 && b == 0))
                        return -1;
                    c = a * 16 + b;
                    i += 2;
                }
                if (j + 1 >= size)
                    return -1;
                buf[j++] = (char)c;
            }
            buf[j] = '\0';
            return 0;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return -1;
}

/* True when u's query names the parameter name (with or without a value). */
static bool url_has_param(const sluice__url *u, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *q = u && u->query ? u->query : ""; *q;) {
        size_t n = strcspn(q, "&");
        if (strcspn(q, "=&") == nlen && memcmp(q, name, nlen) == 0)
            return true;
        q += n;
        if (*q == '&')
            q++;
    }
    return false;
}

int sluice__url_onoff(const sluice__url *u, const char *name, bool dflt, bool *on)
{
    char v[8];
    *on = dflt;
    if (sluice__url_param(u, name, v, sizeof(v)) != 0)
        return url_has_param(u, name) ? -1 : 0;
    if (strcmp(v, "on") == 0)
        *on = true;
    else if (strcmp(v, "off") == 0)
        *on = false;
    else
        return -1;
    return 0;
}
