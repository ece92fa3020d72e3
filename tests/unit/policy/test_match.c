/* SPDX-License-Identifier: MIT */
/*
 * test_match.c - rule matching: first match wins, method and path (exact,
 * prefix, query string ignored), identity sources in order with fallbacks,
 * header names case-insensitive, tier fallback, explicit rule lookup, key
 * bounds, the limits a match selects, and trusted-proxy CIDR checks.
 */
#include <strings.h>

#include "policy/policy.h"
#include "sluice.h"
#include "test.h"

static const char *const conf_text =
    "tier_header: X-Tier\n"
    "trusted_proxies: [10.0.0.0/8, 192.168.1.7, 172.16.0.0/12, \"fd00::/8\", \"::1\"]\n"
    "rules:\n"
    "  - name: login\n"
    "    match: { method: POST, path: /api/auth/login }\n"
    "    key: ip\n"
    "    limits: [ { algorithm: fixed_window, limit: 5, window: 1m } ]\n"
    "  - name: login-any\n"
    "    match: { path: /api/auth/login }\n"
    "    limits: [ { algorithm: fixed_window, limit: 6, window: 1m } ]\n"
    "  - name: api\n"
    "    match: { path: /api/* }\n"
    "    key: [header:X-Tenant, user, ip]\n"
    "    tiers:\n"
    "      gold: [ { algorithm: token_bucket, limit: 100, window: 1s } ]\n"
    "      free: [ { algorithm: token_bucket, limit: 10, window: 1s },\n"
    "              { algorithm: fixed_window, limit: 1000, window: 1d } ]\n"
    "  - name: nofree\n"
    "    match: { method: GET, path: /nofree }\n"
    "    tiers:\n"
    "      gold: [ { algorithm: sliding_window, limit: 100, window: 1m } ]\n"
    "      silver: [ { algorithm: sliding_window, limit: 50, window: 1m } ]\n"
    "  - name: all\n"
    "    match: { path: /* }\n"
    "    limits: [ { algorithm: sliding_log, limit: 7, window: 1s } ]\n";

static sluice_config *cfg;

/* Headers as NULL-terminated name/value pairs, looked up case-insensitively. */
static const char *hdr(void *ctx, const char *name)
{
    const char *const *kv = ctx;
    for (; kv && kv[0]; kv += 2)
        if (strcasecmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static int match(const char *method, const char *path, const char *ip, const char *const *h,
                 const char *tier, sluice_match *m)
{
    sluice_request req = {.method = method, .path = path, .ip = ip, .tier = tier};
    if (h) {
        req.header = hdr;
        req.header_ctx = (void *)h;
    }
    sluice_error err = {0};
    memset(m, 0x5a, sizeof(*m));
    int rc = sluice_config_match(cfg, &req, m, &err);
    if (rc)
        ASSERT_EQ(err.code, rc);
    return rc;
}

static const char *rule_of(const char *method, const char *path)
{
    static sluice_match m;
    int rc = match(method, path, "10.0.0.1", NULL, NULL, &m);
    return rc ? "(none)" : m.rule;
}

static void test_first_match_wins(void)
{
    ASSERT_STREQ(rule_of("POST", "/api/auth/login"), "login");
    ASSERT_STREQ(rule_of("GET", "/api/auth/login"), "login-any");
    ASSERT_STREQ(rule_of("GET", "/api/search"), "api");
    ASSERT_STREQ(rule_of("GET", "/nofree"), "nofree");
    ASSERT_STREQ(rule_of("POST", "/nofree"), "all");
    ASSERT_STREQ(rule_of("GET", "/"), "all");
    ASSERT_STREQ(rule_of("GET", "/other/deep/path"), "all");
    sluice_match m;
    ASSERT_EQ(match("POST", "/api/auth/login", "10.0.0.1", NULL, NULL, &m), 0);
    ASSERT_EQ(m.rule_index, 0);
}

static void test_method_and_path(void)
{
    ASSERT_STREQ(rule_of("post", "/api/auth/login"), "login"); /* method case */
    ASSERT_STREQ(rule_of(NULL, "/api/auth/login"), "login-any"); /* no method */
    ASSERT_STREQ(rule_of("POST", "/api/auth/login?next=/x"), "login"); /* query ignored */
    ASSERT_STREQ(rule_of("POST", "/api/auth/login#frag"), "login");
    ASSERT_STREQ(rule_of("POST", "/api/auth/loginx"), "api"); /* exact is exact */
    ASSERT_STREQ(rule_of("GET", "/api/"), "api");             /* prefix includes itself */
    ASSERT_STREQ(rule_of("GET", "/api"), "api");              /* ... without its slash */
    ASSERT_STREQ(rule_of("GET", "/apix"), "all");             /* ... but not another name */
    /* Issue 11: every spelling the server routes to the login handler meets
     * the login rule; before, each of these picked the looser "api" rule
     * (or, with a lowercase "/API", none). */
    static const char *const logins[] = {
        "/api/auth/login/", "//api/auth/login", "/api//auth///login", "/api/./auth/login",
        "/api/x/../auth/login", "/api/auth/%6cogin", "/api/auth/%6Cogin", "/api%2fauth/login",
        "/%61pi/auth/login/?x=1", "/api/auth/login/.", "/../api/auth/login", "/api/auth/x/.."
        "/login"};
    for (size_t i = 0; i < sizeof(logins) / sizeof(logins[0]); i++)
        ASSERT_STREQ(rule_of("POST", logins[i]), "login");
    ASSERT_STREQ(rule_of("POST", "/api/auth/login%00"), "api"); /* never a NUL */
    ASSERT_STREQ(rule_of("POST", "/api/auth/login%2"), "api");  /* a bad escape stays */
    ASSERT_STREQ(rule_of("POST", "/api/auth/%2e%2e/auth/login"), "login");
    /* the canonical path is bounded: a longer one is refused, not cut */
    static char longp[SLUICE_REQUEST_PATH_MAX + 8];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    sluice_match lm;
    ASSERT_EQ(match("GET", longp, "10.0.0.1", NULL, NULL, &lm), SLUICE_EINVAL);
    longp[SLUICE_REQUEST_PATH_MAX] = '?'; /* the query does not count */
    ASSERT_EQ(match("GET", longp, "10.0.0.1", NULL, NULL, &lm), 0);
    ASSERT_STREQ(rule_of("GET", "/API/search"), "all");       /* paths are case-sensitive */
    ASSERT_STREQ(rule_of("GET", "/apix?x=/api/"), "all");  /* the query is not the path */
    ASSERT_STREQ(rule_of("GET", NULL), "all");                /* only path-less rules */
    ASSERT_STREQ(rule_of("GET", "?x"), "all");

    /* Without a catch-all rule, a request may match nothing. */
    sluice_config *c2 = NULL;
    sluice_error err;
    const char *y = "rules:\n  - name: a\n    match: { method: GET, path: /a }\n"
                    "    limits: [ { algorithm: fixed_window, limit: 1, window: 1s } ]\n";
    ASSERT_EQ(sluice_config_load_string(&c2, y, strlen(y), "c2", &err), 0);
    sluice_request req = {.method = "POST", .path = "/a", .ip = "1.2.3.4"};
    sluice_match m;
    ASSERT_EQ(sluice_config_match(c2, &req, &m, &err), SLUICE_ENORULE);
    ASSERT_EQ(err.code, SLUICE_ENORULE);
    ASSERT_CONTAINS(err.msg, "no rule matches POST /a");
    req.method = "GET";
    ASSERT_EQ(sluice_config_match(c2, &req, &m, &err), 0);
    ASSERT_STREQ(m.key, "ip:1.2.3.4");
    ASSERT_EQ(sluice_config_match(c2, &req, &m, NULL), 0);
    req.path = "/b";
    ASSERT_EQ(sluice_config_match(c2, &req, &m, NULL), SLUICE_ENORULE);
    sluice_config_free(c2);
}

static void test_identity_default_order(void)
{
    sluice_match m;
    const char *both[] = {"x-user-id", "u7", "X-API-KEY", "k1", NULL};
    ASSERT_EQ(match("GET", "/x", "10.0.0.1", both, NULL, &m), 0);
    ASSERT_STREQ(m.key, "api_key:k1");
    ASSERT_EQ(m.key_len, strlen("api_key:k1"));

    const char *user[] = {"X-User-Id", "u7", NULL};
    ASSERT_EQ(match("GET", "/x", "10.0.0.1", user, NULL, &m), 0);
    ASSERT_STREQ(m.key, "user:u7");

    const char *empty_key[] = {"X-API-Key", "", "X-User-Id", "u8", NULL};
    ASSERT_EQ(match("GET", "/x", "10.0.0.1", empty_key, NULL, &m), 0);
    ASSERT_STREQ(m.key, "user:u8"); /* empty values do not count */

    /* Spaces and tabs around a value are not part of it: "k1 " is "k1",
     * not a fresh client (issue 11), and a blank value is an empty one. */
    const char *padded[] = {"X-API-Key", " \tk1 \t", NULL};
    ASSERT_EQ(match("GET", "/x", "10.0.0.1", padded, NULL, &m), 0);
    ASSERT_STREQ(m.key, "api_key:k1");
    ASSERT_EQ(m.key_len, strlen("api_key:k1"));
    const char *inner[] = {"X-API-Key", "k 1", NULL};
    ASSERT_EQ(match("GET", "/x", "10.0.0.1", inner, NULL, &m), 0);
    ASSERT_STREQ(m.key, "api_key:k 1"); /* inner spaces are the value's */
    const char *blank[] = {"X-API-Key", " \t ", "X-User-Id", "u9", NULL};
    ASSERT_EQ(match("GET", "/x", "10.0.0.1", blank, NULL, &m), 0);
    ASSERT_STREQ(m.key, "user:u9");

    ASSERT_EQ(match("GET", "/x", "10.0.0.1", NULL, NULL, &m), 0);
    ASSERT_STREQ(m.key, "ip:10.0.0.1");
    ASSERT_EQ(m.key_len, strlen("ip:10.0.0.1"));

    /* Addresses are canonical, so one client has one identifier. */
    ASSERT_EQ(match("GET", "/x", "::FFFF:10.0.0.1", NULL, NULL, &m), 0);
    ASSERT_STREQ(m.key, "ip:10.0.0.1");
    ASSERT_EQ(match("GET", "/x", "2001:DB8:0::1", NULL, NULL, &m), 0);
    ASSERT_STREQ(m.key, "ip:2001:db8::1");
    ASSERT_EQ(match("GET", "/x", "unix-socket", NULL, NULL, &m), 0);
    ASSERT_STREQ(m.key, "ip:unix-socket");

    /* Nothing to identify the client by. */
    ASSERT_EQ(match("GET", "/x", NULL, NULL, NULL, &m), SLUICE_EKEY);
    ASSERT_EQ(match("GET", "/x", "", empty_key + 2 + 2, NULL, &m), SLUICE_EKEY);
}

static void test_identity_rule_key(void)
{
    sluice_match m;
    /* login: key ip, even when an API key is present. */
    const char *h[] = {"X-API-Key", "k1", "X-Tenant", "acme", "X-User-Id", "u1", NULL};
    ASSERT_EQ(match("POST", "/api/auth/login", "10.9.8.7", h, NULL, &m), 0);
    ASSERT_STREQ(m.key, "ip:10.9.8.7");
    ASSERT_EQ(match("POST", "/api/auth/login", NULL, h, NULL, &m), SLUICE_EKEY);

    /* api: key [header:X-Tenant, user, ip]; header names are lowercased. */
    ASSERT_EQ(match("GET", "/api/a", "10.9.8.7", h, NULL, &m), 0);
    ASSERT_STREQ(m.key, "header:x-tenant:acme");
    const char *h2[] = {"x-tenant", "", "x-user-id", "u1", NULL};
    ASSERT_EQ(match("GET", "/api/a", "10.9.8.7", h2, NULL, &m), 0);
    ASSERT_STREQ(m.key, "user:u1");
    ASSERT_EQ(match("GET", "/api/a", "10.9.8.7", h2 + 2 + 2, NULL, &m), 0);
    ASSERT_STREQ(m.key, "ip:10.9.8.7");
}

static void test_identity_too_long(void)
{
    static char big[SLUICE_KEY_MAX + 2];
    sluice_match m;
    /* "api_key:" + value: exactly SLUICE_KEY_MAX fits, one more does not. */
    size_t room = SLUICE_KEY_MAX - strlen("api_key:");
    memset(big, 'v', room);
    big[room] = '\0';
    const char *h[] = {"X-API-Key", big, NULL};
    ASSERT_EQ(match("GET", "/x", "10.0.0.1", h, NULL, &m), 0);
    ASSERT_EQ(m.key_len, SLUICE_KEY_MAX);
    ASSERT_EQ(strlen(m.key), SLUICE_KEY_MAX);
    big[room] = 'v';
    big[room + 1] = '\0';
    ASSERT_EQ(match("GET", "/x", "10.0.0.1", h, NULL, &m), SLUICE_EKEY);
}

static void test_tiers(void)
{
    sluice_match m;
    const char *gold[] = {"x-tier", "gold", NULL};
    ASSERT_EQ(match("GET", "/api/a", "10.0.0.1", gold, NULL, &m), 0);
    ASSERT_STREQ(m.tier, "gold");
    ASSERT_EQ(m.tier_index, 0);

    const char *bogus[] = {"X-Tier", "platinum", NULL};
    ASSERT_EQ(match("GET", "/api/a", "10.0.0.1", bogus, NULL, &m), 0);
    ASSERT_STREQ(m.tier, "free"); /* unknown tier: "free" */
    ASSERT_EQ(m.tier_index, 1);

    ASSERT_EQ(match("GET", "/api/a", "10.0.0.1", NULL, NULL, &m), 0);
    ASSERT_STREQ(m.tier, "free"); /* missing tier: "free" */

    ASSERT_EQ(match("GET", "/api/a", "10.0.0.1", bogus, "gold", &m), 0);
    ASSERT_STREQ(m.tier, "gold"); /* req->tier wins over the header */

    ASSERT_EQ(match("GET", "/nofree", "10.0.0.1", bogus, NULL, &m), 0);
    ASSERT_STREQ(m.tier, "gold"); /* no "free": the first tier */
    const char *silver[] = {"X-Tier", "silver", NULL};
    ASSERT_EQ(match("GET", "/nofree", "10.0.0.1", silver, NULL, &m), 0);
    ASSERT_STREQ(m.tier, "silver");

    ASSERT_EQ(match("GET", "/elsewhere", "10.0.0.1", gold, NULL, &m), 0);
    ASSERT(m.tier == NULL); /* a rule without tiers */
    ASSERT_EQ(m.tier_index, -1);
}

static void test_limits_of_match(void)
{
    sluice_match m;
    ASSERT_EQ(match("GET", "/api/a", "10.0.0.1", NULL, NULL, &m), 0);
    const sluice__limit_set *s = sluice__config_limits(cfg, &m);
    ASSERT(s != NULL);
    ASSERT_EQ(s->n, 2);
    ASSERT_EQ(s->limits[0].limit, 10);
    ASSERT_EQ(s->limits[1].window_ms, 86400000);
    ASSERT_EQ(match("GET", "/api/a", "10.0.0.1", NULL, "gold", &m), 0);
    s = sluice__config_limits(cfg, &m);
    ASSERT_EQ(s->n, 1);
    ASSERT_EQ(s->limits[0].limit, 100);
    ASSERT_EQ(match("GET", "/z", "10.0.0.1", NULL, NULL, &m), 0);
    s = sluice__config_limits(cfg, &m);
    ASSERT_EQ(s->limits[0].algorithm, SLUICE_SLIDING_LOG);
    ASSERT_EQ(s->limits[0].limit, 7);
    m.rule_index = 99;
    ASSERT(sluice__config_limits(cfg, &m) == NULL);
    ASSERT(sluice__config_limits(NULL, &m) == NULL);
}

static void test_explicit_rule(void)
{
    sluice_match m;
    sluice_error err = {0};
    ASSERT_EQ(sluice_config_match_rule(cfg, "login", NULL, "ip:1.2.3.4", 10, &m, &err), 0);
    ASSERT_STREQ(m.rule, "login");
    ASSERT_EQ(m.rule_index, 0);
    ASSERT_STREQ(m.key, "ip:1.2.3.4");
    ASSERT_EQ(m.key_len, 10);
    ASSERT(m.tier == NULL);
    ASSERT_EQ(m.tier_index, -1);

    /* The key is used verbatim, even if it looks like a prefix of another. */
    ASSERT_EQ(sluice_config_match_rule(cfg, "api", "gold", "Some Key:x", 10, &m, &err), 0);
    ASSERT_STREQ(m.key, "Some Key:x");
    ASSERT_STREQ(m.tier, "gold");
    ASSERT_EQ(sluice_config_match_rule(cfg, "api", "nope", "k", 1, &m, &err), 0);
    ASSERT_STREQ(m.tier, "free");
    ASSERT_EQ(sluice_config_match_rule(cfg, "api", NULL, "k", 1, &m, &err), 0);
    ASSERT_STREQ(m.tier, "free");
    ASSERT_EQ(sluice_config_match_rule(cfg, "nofree", NULL, "abc", 2, &m, &err), 0);
    ASSERT_STREQ(m.key, "ab"); /* key_len bytes only */
    ASSERT_STREQ(m.tier, "gold");

    ASSERT_EQ(sluice_config_match_rule(cfg, "nosuch", NULL, "k", 1, &m, &err), SLUICE_ENORULE);
    ASSERT_EQ(err.code, SLUICE_ENORULE);
    ASSERT_CONTAINS(err.msg, "unknown rule 'nosuch'");
    ASSERT_EQ(sluice_config_match_rule(cfg, "LOGIN", NULL, "k", 1, &m, &err), SLUICE_ENORULE);

    ASSERT_EQ(sluice_config_match_rule(cfg, "login", NULL, "", 0, &m, &err), SLUICE_EKEY);
    ASSERT_EQ(err.code, SLUICE_EKEY);
    ASSERT_EQ(sluice_config_match_rule(cfg, "login", NULL, NULL, 0, &m, &err), SLUICE_EKEY);
    ASSERT_EQ(sluice_config_match_rule(cfg, "login", NULL, "a\0b", 3, &m, &err), SLUICE_EKEY);
    static char big[SLUICE_KEY_MAX + 1];
    memset(big, 'k', sizeof(big));
    ASSERT_EQ(sluice_config_match_rule(cfg, "login", NULL, big, SLUICE_KEY_MAX + 1, &m, &err),
              SLUICE_EKEY);
    ASSERT_CONTAINS(err.msg, "longer than 512");
    ASSERT_EQ(sluice_config_match_rule(cfg, "login", NULL, big, SLUICE_KEY_MAX, &m, &err), 0);
    ASSERT_EQ(m.key_len, SLUICE_KEY_MAX);
    ASSERT_EQ(m.key[SLUICE_KEY_MAX], '\0');
}

static void test_bad_arguments(void)
{
    sluice_match m;
    sluice_request req = {.method = "GET", .path = "/"};
    ASSERT_EQ(sluice_config_match(NULL, &req, &m, NULL), SLUICE_EINVAL);
    ASSERT_EQ(sluice_config_match(cfg, NULL, &m, NULL), SLUICE_EINVAL);
    ASSERT_EQ(sluice_config_match(cfg, &req, NULL, NULL), SLUICE_EINVAL);
    ASSERT_EQ(sluice_config_match_rule(NULL, "login", NULL, "k", 1, &m, NULL), SLUICE_EINVAL);
    ASSERT_EQ(sluice_config_match_rule(cfg, NULL, NULL, "k", 1, &m, NULL), SLUICE_EINVAL);
    ASSERT_EQ(sluice_config_match_rule(cfg, "login", NULL, "k", 1, NULL, NULL), SLUICE_EINVAL);
}

static void test_trusted(void)
{
    ASSERT(sluice__config_trusted(cfg, "10.0.0.1"));
    ASSERT(sluice__config_trusted(cfg, "10.255.255.255"));
    ASSERT(!sluice__config_trusted(cfg, "11.0.0.1"));
    ASSERT(!sluice__config_trusted(cfg, "9.255.255.255"));
    ASSERT(sluice__config_trusted(cfg, "192.168.1.7")); /* bare address = /32 */
    ASSERT(!sluice__config_trusted(cfg, "192.168.1.8"));
    ASSERT(sluice__config_trusted(cfg, "172.16.0.1"));  /* /12: not a byte boundary */
    ASSERT(sluice__config_trusted(cfg, "172.31.255.255"));
    ASSERT(!sluice__config_trusted(cfg, "172.32.0.0"));
    ASSERT(!sluice__config_trusted(cfg, "172.15.255.255"));
    ASSERT(sluice__config_trusted(cfg, "fd12:3456::1"));
    ASSERT(sluice__config_trusted(cfg, "FD00::"));
    ASSERT(!sluice__config_trusted(cfg, "fe80::1"));
    ASSERT(!sluice__config_trusted(cfg, "fc00::1"));
    ASSERT(sluice__config_trusted(cfg, "::1"));         /* bare v6 = /128 */
    ASSERT(!sluice__config_trusted(cfg, "::2"));
    ASSERT(sluice__config_trusted(cfg, "::ffff:10.1.2.3")); /* mapped v4 */
    ASSERT(!sluice__config_trusted(cfg, "127.0.0.1"));  /* not in this list */
    ASSERT(!sluice__config_trusted(cfg, "not an address"));
    ASSERT(!sluice__config_trusted(cfg, ""));
    ASSERT(!sluice__config_trusted(cfg, "10.0.0.1/8"));
    ASSERT(!sluice__config_trusted(cfg, NULL));
    ASSERT(!sluice__config_trusted(NULL, "10.0.0.1"));

    /* Defaults: loopback only.  An empty list trusts nobody. */
    sluice_config *c2 = NULL;
    const char *y = "rules: [ { name: a, limits: [ { algorithm: fixed_window, limit: 1, "
                    "window: 1s } ] } ]\n";
    ASSERT_EQ(sluice_config_load_string(&c2, y, strlen(y), "c2", NULL), 0);
    ASSERT(sluice__config_trusted(c2, "127.0.0.1"));
    ASSERT(sluice__config_trusted(c2, "::1"));
    ASSERT(sluice__config_trusted(c2, "::ffff:127.0.0.1"));
    ASSERT(!sluice__config_trusted(c2, "127.0.0.2"));
    ASSERT(!sluice__config_trusted(c2, "10.0.0.1"));
    sluice_config_free(c2);
    const char *y3 = "trusted_proxies: []\nrules: [ { name: a, limits: [ { algorithm: "
                     "fixed_window, limit: 1, window: 1s } ] } ]\n";
    ASSERT_EQ(sluice_config_load_string(&c2, y3, strlen(y3), "c3", NULL), 0);
    ASSERT(!sluice__config_trusted(c2, "127.0.0.1"));
    sluice_config_free(c2);
    /* Everything, both families. */
    const char *y4 = "trusted_proxies: [0.0.0.0/0, \"::/0\"]\nrules: [ { name: a, limits: [ "
                     "{ algorithm: fixed_window, limit: 1, window: 1s } ] } ]\n";
    ASSERT_EQ(sluice_config_load_string(&c2, y4, strlen(y4), "c4", NULL), 0);
    ASSERT(sluice__config_trusted(c2, "203.0.113.9"));
    ASSERT(sluice__config_trusted(c2, "2001:db8::9"));
    sluice_config_free(c2);
}

int main(void)
{
    sluice_error err = {0};
    if (sluice_config_load_string(&cfg, conf_text, strlen(conf_text), "match.yaml", &err)) {
        fprintf(stderr, "config: %s\n", err.msg);
        return 1;
    }
    RUN(test_first_match_wins);
    RUN(test_method_and_path);
    RUN(test_identity_default_order);
    RUN(test_identity_rule_key);
    RUN(test_identity_too_long);
    RUN(test_tiers);
    RUN(test_limits_of_match);
    RUN(test_explicit_rule);
    RUN(test_bad_arguments);
    RUN(test_trusted);
    sluice_config_free(cfg);
    return test_done();
}
