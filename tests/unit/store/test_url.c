/* SPDX-License-Identifier: MIT */
/*
 * test_url.c - every store URL form parses into the right parts; every bad
 * URL fails with SLUICE_EURL and a message that never holds the password;
 * redaction for logs hides exactly the password the parser finds.
 */
#include "store/store.h"
#include "test.h"

static sluice__url u;
static sluice_error err;

static void parse_ok(const char *url)
{
    memset(&err, 0, sizeof(err));
    int rc = sluice__url_parse(&u, url, &err);
    if (rc != 0)
        test_fail(__FILE__, __LINE__, "parse(%s) = %d: %s", url, rc, err.msg);
}

static void test_memory(void)
{
    parse_ok("memory://");
    ASSERT_STREQ(u.scheme, "memory");
    ASSERT_EQ(u.nhosts, 0);
    ASSERT_STREQ(u.path, "");
    ASSERT(u.query == NULL);
    ASSERT(u.user == NULL && u.password == NULL);
    sluice__url_free(&u);

    parse_ok("memory://?max_keys=100&shards=4");
    ASSERT_STREQ(u.query, "max_keys=100&shards=4");
    char buf[16];
    ASSERT_EQ(sluice__url_param(&u, "max_keys", buf, sizeof(buf)), 0);
    ASSERT_STREQ(buf, "100");
    ASSERT_EQ(sluice__url_param(&u, "shards", buf, sizeof(buf)), 0);
    ASSERT_STREQ(buf, "4");
    ASSERT_EQ(sluice__url_param(&u, "max", buf, sizeof(buf)), -1);
    ASSERT_EQ(sluice__url_param(&u, "max_keys", buf, 3), -1); /* too long */
    sluice__url_free(&u);

    parse_ok("MEMORY://");
    ASSERT_STREQ(u.scheme, "memory");
    sluice__url_free(&u);
}

static void test_redis(void)
{
    parse_ok("redis://127.0.0.1:6380");
    ASSERT_STREQ(u.scheme, "redis");
    ASSERT_EQ(u.nhosts, 1);
    ASSERT_STREQ(u.hosts[0], "127.0.0.1");
    ASSERT_EQ(u.ports[0], 6380);
    ASSERT_STREQ(u.path, "");
    sluice__url_free(&u);

    parse_ok("redis://localhost");
    ASSERT_STREQ(u.hosts[0], "localhost");
    ASSERT_EQ(u.ports[0], 6379);
    sluice__url_free(&u);

    parse_ok("redis://alice:s3cret@redis.example-1.net:7000/5");
    ASSERT_STREQ(u.user, "alice");
    ASSERT_STREQ(u.password, "s3cret");
    ASSERT_STREQ(u.hosts[0], "redis.example-1.net");
    ASSERT_EQ(u.ports[0], 7000);
    ASSERT_STREQ(u.path, "5");
    sluice__url_free(&u);

    parse_ok("redis://:onlypass@h:1");
    ASSERT(u.user == NULL);
    ASSERT_STREQ(u.password, "onlypass");
    sluice__url_free(&u);

    parse_ok("redis://bob@h");
    ASSERT_STREQ(u.user, "bob");
    ASSERT(u.password == NULL);
    sluice__url_free(&u);

    /* percent-decoding; the last '@' ends the user info */
    parse_ok("redis://us%65r:p%40ss%3Aw%2Fd@h:2/0");
    ASSERT_STREQ(u.user, "user");
    ASSERT_STREQ(u.password, "p@ss:w/d");
    ASSERT_STREQ(u.path, "0");
    sluice__url_free(&u);
    parse_ok("redis://u:p@ss@h");
    ASSERT_STREQ(u.password, "p@ss");
    ASSERT_STREQ(u.hosts[0], "h");
    sluice__url_free(&u);

    parse_ok("redis://[::1]:6390");
    ASSERT_STREQ(u.hosts[0], "::1");
    ASSERT_EQ(u.ports[0], 6390);
    sluice__url_free(&u);
    parse_ok("redis://[fe80::1%25eth0]");
    ASSERT_STREQ(u.hosts[0], "fe80::1%eth0");
    ASSERT_EQ(u.ports[0], 6379);
    sluice__url_free(&u);

    parse_ok("redis://h:1/3?timeout=5&x");
    ASSERT_STREQ(u.path, "3");
    char buf[8];
    ASSERT_EQ(sluice__url_param(&u, "x", buf, sizeof(buf)), 0);
    ASSERT_STREQ(buf, "");
    ASSERT_EQ(sluice__url_param(&u, "timeout", buf, sizeof(buf)), 0);
    ASSERT_STREQ(buf, "5");
    sluice__url_free(&u);

    parse_ok("redis://h:65535/");
    ASSERT_EQ(u.ports[0], 65535);
    ASSERT_STREQ(u.path, "");
    sluice__url_free(&u);
}

static void test_sentinel_cluster(void)
{
    parse_ok("redis+sentinel://10.0.0.1,10.0.0.2:26380,[::1]/mymaster");
    ASSERT_STREQ(u.scheme, "redis+sentinel");
    ASSERT_EQ(u.nhosts, 3);
    ASSERT_STREQ(u.hosts[0], "10.0.0.1");
    ASSERT_EQ(u.ports[0], 26379);
    ASSERT_STREQ(u.hosts[1], "10.0.0.2");
    ASSERT_EQ(u.ports[1], 26380);
    ASSERT_STREQ(u.hosts[2], "::1");
    ASSERT_EQ(u.ports[2], 26379);
    ASSERT_STREQ(u.path, "mymaster");
    sluice__url_free(&u);

    parse_ok("redis+sentinel://:pw@s1:5000/master-1.a?sentinel_password=x%26y");
    ASSERT_STREQ(u.password, "pw");
    ASSERT_STREQ(u.path, "master-1.a");
    char buf[8];
    ASSERT_EQ(sluice__url_param(&u, "sentinel_password", buf, sizeof(buf)), 0);
    ASSERT_STREQ(buf, "x&y");
    sluice__url_free(&u);

    parse_ok("redis+cluster://a:7000,b:7001,c");
    ASSERT_STREQ(u.scheme, "redis+cluster");
    ASSERT_EQ(u.nhosts, 3);
    ASSERT_EQ(u.ports[0], 7000);
    ASSERT_EQ(u.ports[1], 7001);
    ASSERT_STREQ(u.hosts[2], "c");
    ASSERT_EQ(u.ports[2], 6379);
    sluice__url_free(&u);

    /* 16 hosts is the bound */
    char url[512] = "redis+cluster://";
    for (int i = 0; i < SLUICE_URL_MAX_HOSTS; i++)
        snprintf(url + strlen(url), sizeof(url) - strlen(url), "%sh%d:%d", i ? "," : "", i,
                 7000 + i);
    parse_ok(url);
    ASSERT_EQ(u.nhosts, SLUICE_URL_MAX_HOSTS);
    ASSERT_EQ(u.ports[15], 7015);
    sluice__url_free(&u);
    strcat(url, ",h16");
    sluice__url free_me;
    ASSERT_EQ(sluice__url_parse(&free_me, url, &err), SLUICE_EURL);
    ASSERT_CONTAINS(err.msg, "more than 16 hosts");
}

/* Each bad URL fails with EURL and the given text; "hunter2" never shows. */
static void bad(const char *url, const char *why)
{
    sluice__url v;
    memset(&err, 0, sizeof(err));
    int rc = sluice__url_parse(&v, url, &err);
    if (rc != SLUICE_EURL)
        test_fail(__FILE__, __LINE__, "parse(%s) = %d, want EURL", url, rc);
    ASSERT_EQ(err.code, SLUICE_EURL);
    ASSERT_CONTAINS(err.msg, why);
    ASSERT_CONTAINS(err.msg, "store URL");
    if (strstr(err.msg, "hunter2"))
        test_fail(__FILE__, __LINE__, "password in message: %s", err.msg);
    ASSERT(v.scheme == NULL && v.password == NULL && v.nhosts == 0); /* freed, zeroed */
    sluice__url_free(&v);
}

static void test_bad(void)
{
    bad("", "expected scheme://");
    bad("127.0.0.1:6379", "expected scheme://");
    bad("http://x", "unknown scheme 'http'");
    bad("u:hunter2@redis://x", "unknown scheme (expected");
    bad("rediss://h", "unknown scheme 'rediss'");
    bad("redis://", "needs a host");
    bad("redis://u:hunter2@", "needs a host");
    bad("redis://u:hunter2@:6379", "host 1 is empty");
    bad("redis://u:hunter2@h:0", "port is not a number");
    bad("redis://u:hunter2@h:65536", "port is not a number");
    bad("redis://u:hunter2@h:", "port is not a number");
    bad("redis://u:hunter2@h:12ab", "port is not a number");
    bad("redis://u:hunter2/h:6379", "port is not a number"); /* password typed as a port */
}

static void test_bad_more(void)
{
    bad("redis://u:hun%2ter2@h", "bad percent-escape in the password");
    bad("redis://u:hunter2%@h", "bad percent-escape in the password");
    bad("redis://u:hunter2%00@h", "bad percent-escape in the password");
    bad("redis://u%zz:hunter2@h", "bad percent-escape in the user name");
    bad("redis://u:hunter2@h1,h2", "redis:// takes one host");
    bad("redis://u:hunter2@h/abc", "database number");
    bad("redis://u:hunter2@h/-1", "database number");
    bad("redis://u:hunter2@::1:6379", "must be in brackets");
    bad("redis://u:hunter2@[::1", "without ']'");
    bad("redis://u:hunter2@[::1]x", "expected ':port'");
    bad("redis://u:hunter2@[zz]:1", "not an IPv6 address");
    bad("redis://u:hunter2@ho$t", "host name may hold");
    bad("redis://u:hunter2@[fe80::1%2]", "host 1: bad percent-escape");
    bad("redis://u:hunter2@h,", "host 2 is empty");
    bad("redis://u:hunter2@h #x", "space");
    bad("redis://u:hunter2@h#x", "'#' is not allowed");
    bad("redis://u:hunter2@h\x01", "control");
    bad("redis://u:hunter2@h?=v", "query parameter 1");
    bad("redis://u:hunter2@h?a=1&&b=2", "query parameter 2");
    bad("redis+sentinel://u:hunter2@s1,s2", "needs the master name");
    bad("redis+sentinel://s1/mas/ter", "master name may hold");
    bad("redis+cluster://u:hunter2@a,b/2", "only database 0");
    bad("memory://host", "takes no host");
    bad("memory://u:hunter2@", "takes no user or password");
    bad("memory:///x", "takes no path");
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "redis://", 8);
    big[sizeof(big) - 1] = '\0';
    bad(big, "longer than 4096 bytes");
    sluice__url v;
    ASSERT_EQ(sluice__url_parse(&v, NULL, &err), SLUICE_EURL);
    sluice__url_free(NULL);
    ASSERT_EQ(sluice__url_param(NULL, "a", big, 4), -1);
}

/* Every allocation of a parse fails in turn: ENOMEM, nothing leaked (ASan
 * checks), and the struct left empty. */
static long alloc_budget;

static void *budget_malloc(size_t n)
{
    return alloc_budget-- > 0 ? malloc(n) : NULL;
}

static void test_enomem(void)
{
    const char *url = "redis+sentinel://u:p%40ss@[::1]:1,h2:2,h3/master?a=1&b=2";
    sluice_set_allocator(budget_malloc, NULL, NULL);
    int rc = -1;
    long n;
    for (n = 0; n < 100; n++) {
        alloc_budget = n;
        sluice__url v;
        rc = sluice__url_parse(&v, url, &err);
        if (rc == 0) {
            sluice__url_free(&v);
            break;
        }
        ASSERT_EQ(rc, SLUICE_ENOMEM);
        ASSERT_EQ(err.code, SLUICE_ENOMEM);
        ASSERT(v.scheme == NULL && v.nhosts == 0 && v.password == NULL);
    }
    sluice_set_allocator(NULL, NULL, NULL);
    ASSERT_EQ(rc, 0);
    ASSERT(n >= 8); /* scheme, query, path, user, password, 3 hosts */

    /* and opening stores */
    const char *urls[] = {"memory://?max_keys=100", "redis://127.0.0.1:1",
                          "redis+cluster://127.0.0.1:1"};
    sluice_store_options local = {.on_store_error = SLUICE_FAIL_LOCAL};
    for (int i = 0; i < 3; i++) {
        sluice_set_allocator(budget_malloc, NULL, NULL);
        for (n = 0; n < 10000; n++) {
            alloc_budget = n;
            sluice_store *s = NULL;
            rc = sluice_store_open(&s, urls[i], &local, &err);
            if (rc == 0) {
                sluice_store_close(s);
                break;
            }
            ASSERT(s == NULL);
            if (rc != SLUICE_ENOMEM)
                test_fail(__FILE__, __LINE__, "%s with %ld allocations: %d %s", urls[i], n, rc,
                          err.msg);
        }
        sluice_set_allocator(NULL, NULL, NULL);
        ASSERT_EQ(rc, 0);
    }
}

/* sluice__url_redact: the password the parser finds, and nothing of it in a
 * short buffer or for a URL the parser refuses (bugs the fuzzer found). */
static void test_redact(void)
{
    char buf[256];
    sluice__url_redact(buf, sizeof(buf), "redis://u:s3cret@h:6379/0");
    ASSERT_STREQ(buf, "redis://u:***@h:6379/0");
    sluice__url_redact(buf, sizeof(buf), "redis://:s3cret@h");
    ASSERT_STREQ(buf, "redis://:***@h");
    sluice__url_redact(buf, sizeof(buf), "redis://s3cret@h:6379");
    ASSERT_STREQ(buf, "redis://***@h:6379");
    /* '@' inside the password: the userinfo ends at the last '@' */
    sluice__url_redact(buf, sizeof(buf), "redis://u:p@ss@h:6379");
    ASSERT_STREQ(buf, "redis://u:***@h:6379");
    sluice__url_redact(buf, sizeof(buf), "redis+sentinel://u:a@b@s1,s2:26380/m");
    ASSERT_STREQ(buf, "redis+sentinel://u:***@s1,s2:26380/m");
    /* '@' only in the query: no credentials */
    sluice__url_redact(buf, sizeof(buf), "redis://h/0?x=a@b");
    ASSERT_STREQ(buf, "redis://h/0?x=a@b");
    sluice__url_redact(buf, sizeof(buf), "memory://");
    ASSERT_STREQ(buf, "memory://");
    /* a '/' inside the password makes the URL invalid: only the scheme shows */
    sluice__url_redact(buf, sizeof(buf), "redis://u:pa/ss@h:6379");
    ASSERT_STREQ(buf, "redis://***");
    sluice__url_redact(buf, sizeof(buf), "redis://u:pw");
    ASSERT_STREQ(buf, "redis://***");
    sluice__url_redact(buf, sizeof(buf), "u:pw@h");
    ASSERT_STREQ(buf, "***");
    /* a short buffer holds a prefix of the redacted text, not of the URL */
    char small[12];
    ASSERT_EQ(sluice__url_redact(small, sizeof(small), "redis://s3cret@h:6379"), 18);
    ASSERT_STREQ(small, "redis://***");
    sluice__url_redact(small, 1, "redis://s3cret@h");
    ASSERT_STREQ(small, "");
    sluice__url_redact(buf, sizeof(buf), NULL);
    ASSERT_STREQ(buf, "");
}

int main(void)
{
    RUN(test_redact);
    RUN(test_memory);
    RUN(test_redis);
    RUN(test_sentinel_cluster);
    RUN(test_bad);
    RUN(test_bad_more);
    RUN(test_enomem);
    return test_done();
}
