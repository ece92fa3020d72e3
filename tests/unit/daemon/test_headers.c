/* SPDX-License-Identifier: MIT */
/*
 * test_headers.c - sluiced's rate-limit header builders (legacy and IETF)
 * from decisions, and the log helpers that must never print a password.
 */
#include <stdio.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/http.h"
#include "policy/policy.h"
#include "test.h"

static sluice_decision one_limit(bool allowed, int64_t remaining, int64_t reset_ms,
                                 int64_t retry_ms)
{
    sluice_decision d = {0};
    d.allowed = allowed;
    d.limit = 5;
    d.remaining = remaining;
    d.reset_after_ms = reset_ms;
    d.retry_after_ms = retry_ms;
    d.now_ms = 1700000000123;
    d.nlimits = 1;
    d.limits[0] = (sluice_limit_decision){allowed,  5, remaining, reset_ms,
                                          retry_ms, 0, 60000,     SLUICE_FIXED_WINDOW};
    return d;
}

static void test_policy_and_ratelimit_items(void)
{
    char buf[256];
    sluice_decision d = one_limit(true, 4, 1500, 0);
    ASSERT(sluiced_header_policy(buf, sizeof(buf), "login", &d) > 0);
    ASSERT_STREQ(buf, "\"login\";q=5;w=60");
    ASSERT(sluiced_header_ratelimit(buf, sizeof(buf), "login", &d) > 0);
    ASSERT_STREQ(buf, "\"login\";r=4;t=2"); /* 1500 ms rounds up to 2 s */

    /* multi-limit: items named <rule>-<n>; a sub-second window is w=1 */
    d.nlimits = 2;
    d.limits[1] =
        (sluice_limit_decision){false, 3, 0, 3412000, 3411001, 0, 500, SLUICE_TOKEN_BUCKET};
    d.decided_by = 1;
    d.remaining = 0;
    d.reset_after_ms = 3412000;
    ASSERT(sluiced_header_policy(buf, sizeof(buf), "multi", &d) > 0);
    ASSERT_STREQ(buf, "\"multi-0\";q=5;w=60, \"multi-1\";q=3;w=1");
    ASSERT(sluiced_header_ratelimit(buf, sizeof(buf), "multi", &d) > 0);
    ASSERT_STREQ(buf, "\"multi-1\";r=0;t=3412");
    /* too small a buffer is an error, not a truncated header */
    ASSERT_EQ(sluiced_header_policy(buf, 10, "multi", &d), -1);
}

/* The value of header field k among those added to h so far, or NULL. */
static const char *get(sluiced_http_reply *h, const char *k)
{
    static char text[2048], val[512];
    snprintf(text, sizeof(text), "\n%.*s", (int)(h->len - h->head), h->buf + h->head);
    char pat[128];
    snprintf(pat, sizeof(pat), "\n%s: ", k);
    const char *p = strstr(text, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    size_t n = strcspn(p, "\r");
    snprintf(val, sizeof(val), "%.*s", (int)n, p);
    return val;
}

static void clear(sluiced_http_reply *h)
{
    sluiced_http_reply_release(h);
    sluiced_http_reply_init(h, 1, false, true);
}

static void test_header_modes(void)
{
    sluiced_http_reply h;
    sluiced_http_reply_init(&h, 1, false, true);
    sluice_decision d = one_limit(false, 0, 59001, 59001);
    sluiced_headers_add(&h, SLUICE_HEADERS_BOTH, "login", &d);
    ASSERT_STREQ(get(&h, "X-RateLimit-Limit"), "5");
    ASSERT_STREQ(get(&h, "X-RateLimit-Remaining"), "0");
    /* epoch seconds, rounded up: (1700000000123 + 59001) ms -> 1700000060 s */
    ASSERT_STREQ(get(&h, "X-RateLimit-Reset"), "1700000060");
    ASSERT_STREQ(get(&h, "Retry-After"), "60");
    ASSERT_STREQ(get(&h, "RateLimit"), "\"login\";r=0;t=60");
    clear(&h);

    sluiced_headers_add(&h, SLUICE_HEADERS_LEGACY, "login", &d);
    ASSERT(get(&h, "X-RateLimit-Limit") && get(&h, "Retry-After"));
    ASSERT(!get(&h, "RateLimit") && !get(&h, "RateLimit-Policy"));
    clear(&h);

    sluiced_headers_add(&h, SLUICE_HEADERS_IETF, "login", &d);
    ASSERT(!get(&h, "X-RateLimit-Limit") && get(&h, "RateLimit"));
    clear(&h);

    sluiced_headers_add(&h, SLUICE_HEADERS_NONE, "login", &d);
    ASSERT_EQ(h.len, h.head);

    /* never passes (cost above capacity): no Retry-After; allowed: none either */
    d = one_limit(false, 5, 0, -1);
    sluiced_headers_add(&h, SLUICE_HEADERS_BOTH, "login", &d);
    ASSERT(!get(&h, "Retry-After"));
    clear(&h);
    d = one_limit(true, 4, 1000, 0);
    sluiced_headers_add(&h, SLUICE_HEADERS_BOTH, "login", &d);
    ASSERT(!get(&h, "Retry-After"));
    clear(&h);
}

static void test_redact_and_quote(void)
{
    char buf[256];
    ASSERT_STREQ(sluiced_redact_url(buf, sizeof(buf), "redis://u:s3cret@h:6379/0"),
                 "redis://u:***@h:6379/0");
    ASSERT_STREQ(sluiced_redact_url(buf, sizeof(buf), "redis://s3cret@h:6379"),
                 "redis://***@h:6379");
    ASSERT_STREQ(sluiced_redact_url(buf, sizeof(buf), "redis://h:6379/0"), "redis://h:6379/0");
    ASSERT_STREQ(sluiced_redact_url(buf, sizeof(buf), "memory://"), "memory://");
    ASSERT_STREQ(sluiced_log_quote(buf, sizeof(buf), "a \"b\"\n\\"), "\"a \\\"b\\\"\\x0a\\\\\"");
    char small[8];
    sluiced_log_quote(small, sizeof(small), "abcdefghijkl");
    ASSERT_EQ(small[0], '"');
    ASSERT_EQ(small[strlen(small) - 1], '"');
}

static void test_alloc_classes(void)
{
    /* every size from 0 to 5000 gets a usable, writable block; realloc keeps bytes */
    for (size_t n = 0; n <= 5000; n += 7) {
        unsigned char *p = sluiced_malloc(n + 1);
        ASSERT(p != NULL);
        memset(p, 0xab, n + 1);
        p = sluiced_realloc(p, n + 100);
        ASSERT(p != NULL);
        ASSERT_EQ(p[n], 0xab);
        sluiced_free(p);
    }
    sluiced_free(NULL);
    ASSERT(sluiced_realloc(sluiced_malloc(10), 0) == NULL);
    sluiced_alloc_thread_flush();
}

int main(void)
{
    RUN(test_policy_and_ratelimit_items);
    RUN(test_header_modes);
    RUN(test_redact_and_quote);
    RUN(test_alloc_classes);
    return test_done();
}
