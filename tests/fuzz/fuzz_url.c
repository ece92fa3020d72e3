/* SPDX-License-Identifier: MIT */
/*
 * fuzz_url.c - the store URL parser (src/store/url.c) and the redaction
 * that every log line of a store URL goes through (sluiced_redact_url).
 * Beyond "no crash, no leak, no UB" it checks two properties:
 *   - redaction hides the password the parser found: the redacted URL
 *     parses to the same hosts, path and query, with "***" where the
 *     password (or a lone user name, which AUTH may take as one) was;
 *   - a smaller buffer gives a prefix of the same text, so a truncated
 *     log line never shows more than the full one.
 * A URL the parser refuses is logged as its scheme only.
 * Any violation aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "store/store.h"

#define FUZZ_URL_MAX 5000

static void fail(const char *what, const char *url, const char *red)
{
    fprintf(stderr, "fuzz_url: %s\n  url:      %s\n  redacted: %s\n", what, url, red);
    abort();
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_redaction(const sluice__url *u, const char *url)
{
    static char red[2 * FUZZ_URL_MAX];
    sluiced_redact_url(red, sizeof(red), url);
    bool secret = u->password || u->user;
    if (!secret) {
        if (strcmp(red, url) != 0)
            fail("a URL without credentials changed", url, red);
    } else {
        sluice__url v;
        sluice_error err = {0};
        if (strlen(red) > 4096) /* "***" for a shorter password, at the length limit */
            goto sizes;
        if (sluice__url_parse(&v, red, &err) != 0)
            fail("the redacted URL does not parse", url, red);
        if (u->password && !same(v.password, "***"))
            fail("the password is not replaced by ***", url, red);
        if (!u->password && !(same(v.user, "***") || same(v.password, "***")))
            fail("a lone user name (a password for AUTH) is not replaced by ***", url, red);
        if (v.nhosts != u->nhosts || !same(v.path, u->path) || !same(v.query, u->query))
            fail("redaction changed the hosts, path or query", url, red);
        for (int i = 0; i < v.nhosts; i++)
            if (!same(v.hosts[i], u->hosts[i]) || v.ports[i] != u->ports[i])
                fail("redaction changed a host", url, red);
        sluice__url_free(&v);
    }
sizes:;
    static const size_t sizes[] = {1, 2, 9, 12, 40, 128, 511, 512};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char small[512];
        sluiced_redact_url(small, sizes[i], url);
        size_t n = strlen(small);
        if (n >= sizes[i] || strncmp(small, red, n) != 0)
            fail("a smaller buffer is not a prefix of the full redaction", url, small);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_URL_MAX)
        return 0;
    char *url = malloc(size + 1);
    if (!url)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';

    sluice__url u;
    sluice_error err = {0};
    if (sluice__url_parse(&u, url, &err) == 0) {
        static const char *const params[] = {"timeout_ms", "db",       "deny_cache", "engine",
                                             "wait",       "max_keys", "shards",     "password"};
        char buf[64];
        bool on;
        for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
            sluice__url_param(&u, params[i], buf, sizeof(buf));
            sluice__url_param(&u, params[i], buf, 2);
            sluice__url_onoff(&u, params[i], true, &on);
        }
        check_redaction(&u, url);
        sluice__url_free(&u);
    } else {
        /* a URL the parser refuses: at most its scheme and "://" and three stars */
        char red[64];
        size_t n = sluiced_redact_url(red, sizeof(red), url) ? strlen(red) : 0;
        if (n > 32 + 6 || (strchr(red, '@')))
            fail("an invalid URL is logged beyond its scheme", url, red);
        if (!memchr(err.msg, '\0', sizeof(err.msg)))
            fail("error message not terminated", url, "");
    }
    free(url);
    return 0;
}
