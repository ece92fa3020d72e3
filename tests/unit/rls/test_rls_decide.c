/* SPDX-License-Identifier: MIT */
/*
 * test_rls_decide.c - whole RateLimitRequests decided on the memory store at
 * a fixed clock, case by case from envoyproxy/ratelimit's README and test
 * configs (tests/rls/upstream): nested descriptors, wildcards, a value-less
 * key, whitelisting, unlimited, replaces, shadow_mode, quota_mode,
 * share_threshold, the limit override, hits_addend 0 and >1, several
 * descriptors with one over, every unit from second to year with
 * limit_remaining and duration_until_reset exact, both descriptors_semantics,
 * on_store_error on an unreachable Redis, the store keys, bad requests.
 */
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "policy/policy.h"
#include "rls/rls_int.h"
#include "test.h"

#define UP SLUICE_SOURCE_DIR "/tests/rls/upstream"
#define T0 1700000040000LL /* a minute boundary */
#define NOW (T0 + 12345)

static sluice_store *store;
static sluice_async *as;
static sluice_config *cfg;

typedef struct got {
    int status, calls;
    sluice__rls_reply r;
} got;

static void on_reply(int status, const sluice__rls_reply *r, void *arg)
{
    got *g = arg;
    g->calls++;
    g->status = status;
    if (r)
        g->r = *r;
}

static sluice__rls *load(const char *path)
{
    sluice__rls *r = NULL;
    sluice_error err = {0};
    const char *p[] = {path};
    if (sluice__rls_load(&r, p, 1, &err) != 0)
        test_fail(__FILE__, __LINE__, "%s", err.msg);
    return r;
}

static void fresh_store(void)
{
    sluice_async_free(as);
    sluice_store_close(store);
    sluice_error err = {0};
    ASSERT_EQ(sluice_store_open(&store, "memory://", NULL, &err), 0);
    ASSERT_EQ(sluice_async_new(&as, store, NULL, &err), 0);
}

/* "k1=v1,k2=v2" into d; the strings stay in a static pool */
static void desc(sluice__rls_descriptor *d, const char *spec)
{
    static char pool[1 << 16];
    static size_t used;
    memset(d, 0, sizeof(*d));
    size_t n = strlen(spec) + 1;
    if (used + n > sizeof(pool))
        used = 0;
    char *s = pool + used;
    memcpy(s, spec, n);
    used += n;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        sluice__rls_entry *e = &d->entries[d->nentries++];
        e->key = tok;
        e->key_len = eq ? (size_t)(eq - tok) : strlen(tok);
        e->value = eq ? eq + 1 : "";
        e->value_len = strlen(e->value);
    }
}

/* Decides domain with the given descriptors (spec strings) at now, request hits. */
static got run(const sluice__rls *rls, const char *domain, int64_t hits, int64_t now, int n,
               const sluice__rls_descriptor *ds)
{
    sluice__rls_request req = {.domain = domain, .domain_len = strlen(domain),
                               .ndescriptors = n, .descriptors = ds, .hits_addend = hits};
    got g = {0};
    int rc = sluice__rls_decide_async_at(as, rls, cfg, &req, now, on_reply, &g);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(g.calls, 1); /* the memory store answers at once */
    ASSERT_EQ(g.status, 0);
    ASSERT_EQ(g.r.nstatuses, n);
    return g;
}

static got run1(const sluice__rls *rls, const char *domain, const char *spec, int64_t hits)
{
    sluice__rls_descriptor d;
    desc(&d, spec);
    return run(rls, domain, hits, NOW, 1, &d);
}

#define ST(g, i) (&(g).r.statuses[i])

static void expect(const got *g, int i, int code, uint32_t rpu, uint32_t remaining)
{
    const sluice__rls_status *s = &g->r.statuses[i];
    if (s->code != code || !s->has_limit || s->requests_per_unit != rpu ||
        s->limit_remaining != remaining)
        test_fail(__FILE__, __LINE__, "status %d: code %d has_limit %d rpu %u remaining %u; want "
                  "code %d rpu %u remaining %u", i, s->code, s->has_limit, s->requests_per_unit,
                  s->limit_remaining, code, rpu, remaining);
}

static void expect_nolimit(const got *g, int i, uint32_t remaining)
{
    const sluice__rls_status *s = &g->r.statuses[i];
    ASSERT_EQ(s->code, SLUICE_RLS_OK);
    ASSERT(!s->has_limit);
    ASSERT_EQ(s->limit_remaining, remaining);
}

/* README example 2: nested descriptors, and a bare key counting per value */
static void test_nested(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/readme/example2.yaml");
    for (int i = 1; i <= 5; i++) {
        got g = run1(r, "messaging", "message_type=marketing,to_number=2061234567", 1);
        expect(&g, 0, SLUICE_RLS_OK, 5, 5 - i);
        ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OK);
        ASSERT_EQ(ST(g, 0)->unit, SLUICE_RLS_DAY);
        ASSERT_EQ(ST(g, 0)->duration_until_reset_ms, 6347655);
    }
    got g = run1(r, "messaging", "message_type=marketing,to_number=2061234567", 1);
    expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 5, 0);
    ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OVER_LIMIT);
    /* another number has its own counter; the top-level to_number limit is separate */
    g = run1(r, "messaging", "message_type=marketing,to_number=2060000000", 1);
    expect(&g, 0, SLUICE_RLS_OK, 5, 4);
    g = run1(r, "messaging", "to_number=2061234567", 1);
    expect(&g, 0, SLUICE_RLS_OK, 100, 99);
    /* a first level without a limit of its own: no limit for a 1-entry descriptor */
    g = run1(r, "messaging", "message_type=marketing", 1);
    expect_nolimit(&g, 0, 0);
    sluice__rls_free(r);
}

/* README example 3: a black-listed value (0 per unit) beside a per-value default */
static void test_blacklist(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/readme/example3.yaml");
    got g = run1(r, "edge_proxy_per_ip", "remote_address=50.0.0.5", 1);
    expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 0, 0);
    for (int i = 1; i <= 10; i++) {
        g = run1(r, "edge_proxy_per_ip", "remote_address=10.0.0.1", 1);
        expect(&g, 0, SLUICE_RLS_OK, 10, 10 - i);
        ASSERT_EQ(ST(g, 0)->duration_until_reset_ms, 655);
    }
    g = run1(r, "edge_proxy_per_ip", "remote_address=10.0.0.1", 1);
    expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 10, 0);
    /* the next second is a new window */
    sluice__rls_descriptor d;
    desc(&d, "remote_address=10.0.0.1");
    g = run(r, "edge_proxy_per_ip", 1, NOW + 655, 1, &d);
    expect(&g, 0, SLUICE_RLS_OK, 10, 9);
    ASSERT_EQ(ST(g, 0)->duration_until_reset_ms, 1000);
    sluice__rls_free(r);
}

/* README example 4: the depth must match */
static void test_depth(void)
{
    fresh_store();
    sluice__rls *m = load(UP "/readme/example4_match.yaml");
    sluice__rls *n = load(UP "/readme/example4_no_match.yaml");
    got g = run1(m, "example4", "key=value,subkey=subvalue", 1);
    expect(&g, 0, SLUICE_RLS_OK, 300, 299);
    g = run1(n, "example4", "key=value,subkey=subvalue", 1);
    expect_nolimit(&g, 0, 0);
    g = run1(n, "example4", "key=value", 1);
    expect(&g, 0, SLUICE_RLS_OK, 300, 299);
    sluice__rls_free(m);
    sluice__rls_free(n);
}

/* README example 5: unlimited */
static void test_unlimited(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/readme/example5.yaml");
    for (int i = 0; i < 3; i++) {
        got g = run1(r, "internal", "ldap=x", 1000);
        expect_nolimit(&g, 0, UINT32_MAX);
        ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OK);
    }
    ASSERT_EQ(sluice_store_keys(store), 0); /* nothing goes to the store */
    got g = run1(r, "internal", "azure=x", 1);
    expect(&g, 0, SLUICE_RLS_OK, 100, 99);
    sluice__rls_free(r);
}

/* README example 6: shadow_mode is counted but never refuses */
static void test_shadow(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/readme/example6.yaml");
    for (int i = 1; i <= 12; i++) {
        got g = run1(r, "example6", "service=s,user=user-a", 1);
        ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OK);
        expect(&g, 0, SLUICE_RLS_OK, 10, i <= 10 ? 10 - i : 0);
    }
    for (int i = 1; i <= 21; i++) {
        got g = run1(r, "example6", "service=s,user=user-b", 1);
        ASSERT_EQ(g.r.overall_code, i <= 20 ? SLUICE_RLS_OK : SLUICE_RLS_OVER_LIMIT);
    }
    sluice__rls_free(r);
    /* test-config/shadowmode_config.yaml: shadow on the default key, not on its value */
    r = load(UP "/test-config/shadowmode_config.yaml");
    got g = run1(r, "test-domain", "key2=any", 25);
    expect(&g, 0, SLUICE_RLS_OK, 20, 0);
    ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OK);
    g = run1(r, "test-domain", "key2=value2", 31);
    expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 30, 0);
    g = run1(r, "test-domain", "key1=value1,subkey1=subvalue1", 11);
    expect(&g, 0, SLUICE_RLS_OK, 10, 0);
    g = run1(r, "test-domain", "key1=value1,subkey1=other", 6);
    expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 5, 0);
    sluice__rls_free(r);
    /* test-config/metadata.yaml decides as basic_config (metadata is not a limit) */
    r = load(UP "/test-config/metadata.yaml");
    g = run1(r, "test-domain", "key2=m", 1);
    expect(&g, 0, SLUICE_RLS_OK, 20, 19);
    sluice__rls_free(r);
}

/* README example 7 and examples/example.yaml: replaces */
static void test_replaces(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/readme/example7.yaml");
    sluice__rls_descriptor d[2];
    desc(&d[0], "key_1=value_1,user=bkthomps");
    desc(&d[1], "key_2=value_2,user=bkthomps");
    for (int i = 1; i <= 10; i++) {
        got g = run(r, "example7", 1, NOW, 2, d);
        expect_nolimit(&g, 0, 0); /* specific_limit replaced: not counted */
        expect(&g, 1, SLUICE_RLS_OK, 10, 10 - i);
    }
    got g = run(r, "example7", 1, NOW, 2, d);
    ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OVER_LIMIT);
    /* alone, specific_limit applies and was never charged */
    g = run(r, "example7", 1, NOW, 1, d);
    expect(&g, 0, SLUICE_RLS_OK, 5, 4);
    ASSERT_STREQ(ST(g, 0)->limit_name, "specific_limit");
    sluice__rls_free(r);

    fresh_store();
    r = load(UP "/examples/example.yaml");
    /* foo/bar=banned (0 per minute, banned_limit) replaced by destination_cluster=override */
    desc(&d[0], "foo=x,bar=banned");
    desc(&d[1], "source_cluster=proxy,destination_cluster=override");
    g = run(r, "rl", 1, NOW, 2, d);
    ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OK);
    expect_nolimit(&g, 0, 0);
    expect(&g, 1, SLUICE_RLS_OK, 2, 1);
    g = run(r, "rl", 1, NOW, 1, d);
    expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 0, 0);
    sluice__rls_free(r);
}

/* test-config/basic_config.yaml: specific over default, whitelisting, key-only levels */
static void test_basic(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/test-config/basic_config.yaml");
    got g = run1(r, "test-domain", "key1=value1,subkey1=something", 1);
    expect(&g, 0, SLUICE_RLS_OK, 5, 4);
    g = run1(r, "test-domain", "key1=value1,subkey1=subvalue1", 1);
    expect(&g, 0, SLUICE_RLS_OK, 10, 9);
    g = run1(r, "test-domain", "key1=value1", 1);
    expect_nolimit(&g, 0, 0);
    g = run1(r, "test-domain", "key1=other,subkey1=subvalue1", 1);
    expect_nolimit(&g, 0, 0);
    g = run1(r, "test-domain", "key2=something", 1);
    expect(&g, 0, SLUICE_RLS_OK, 20, 19);
    ASSERT_EQ(ST(g, 0)->unit, SLUICE_RLS_MINUTE);
    g = run1(r, "test-domain", "key2=value2", 1);
    expect(&g, 0, SLUICE_RLS_OK, 30, 29);
    g = run1(r, "test-domain", "key2=value3", 1);
    expect_nolimit(&g, 0, 0);
    g = run1(r, "test-domain", "key4=x", 1);
    expect(&g, 0, SLUICE_RLS_OK, 1, 0);
    ASSERT_STREQ(ST(g, 0)->limit_name, "key4_rate_limit");
    g = run1(r, "test-domain", "key5=value5,subkey5=subvalue5", 1);
    expect(&g, 0, SLUICE_RLS_OK, 25, 24);
    g = run1(r, "test-domain", "key5=value5", 1);
    expect(&g, 0, SLUICE_RLS_OK, 15, 14);
    g = run1(r, "test-domain", "key6=x", 1);
    expect_nolimit(&g, 0, UINT32_MAX);
    /* an empty value matches the bare key */
    g = run1(r, "test-domain", "key3=", 1);
    expect(&g, 0, SLUICE_RLS_OK, 1, 0);
    /* unknown domain: every descriptor OK without a limit */
    g = run1(r, "no-such-domain", "key2=x", 1);
    expect_nolimit(&g, 0, 0);
    ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OK);
    sluice__rls_free(r);
}

/* upstream's integration-test files: one per minute, a blocked key, per-day keys */
static void test_integration_files(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/test-integration/*.yaml");
    got g = run1(r, "basic", "one_per_minute=x", 1);
    expect(&g, 0, SLUICE_RLS_OK, 1, 0);
    ASSERT_EQ(ST(g, 0)->duration_until_reset_ms, 47655);
    g = run1(r, "basic", "one_per_minute=x", 1);
    expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 1, 0);
    g = run1(r, "reload", "block=x", 1);
    expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 0, 0);
    g = run1(r, "reload", "key1=x", 50);
    expect(&g, 0, SLUICE_RLS_OK, 50, 0);
    g = run1(r, "another", "key4=x", 1);
    expect(&g, 0, SLUICE_RLS_OK, 20, 19);
    ASSERT_EQ(ST(g, 0)->unit, SLUICE_RLS_DAY);
    sluice__rls_free(r);
    /* examples/config.yaml and example_core.yaml (example.yaml without quota_mode) */
    r = load(UP "/examples/config.yaml");
    g = run1(r, "mongo_cps", "database=users", 500);
    expect(&g, 0, SLUICE_RLS_OK, 500, 0);
    g = run1(r, "mongo_cps", "database=other", 1);
    expect_nolimit(&g, 0, 0);
    sluice__rls_free(r);
    r = load(UP "/examples/example_core.yaml");
    sluice__rls_descriptor d[2];
    desc(&d[0], "service=service_1");
    desc(&d[1], "service=service_2");
    g = run(r, "rl", 1, NOW, 2, d);
    g = run(r, "rl", 1, NOW, 2, d); /* no quota_mode here: service_1 alone refuses */
    ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OVER_LIMIT);
    g = run1(r, "rl", "foo=x,baz=shady", 4); /* shadow: counted, OK */
    expect(&g, 0, SLUICE_RLS_OK, 3, 0);
    g = run1(r, "rl", "foo=x,baz=y", 2); /* the bare baz: 1 per second */
    expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 1, 0);
    g = run1(r, "rl", "foo=x", 2);
    expect(&g, 0, SLUICE_RLS_OK, 2, 0);
    sluice__rls_free(r);
}

/* test-config/wildcard.yaml */
static void test_wildcard(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/test-config/wildcard.yaml");
    got g = run1(r, "test-domain", "wild=foo1", 1);
    expect(&g, 0, SLUICE_RLS_OK, 20, 19);
    g = run1(r, "test-domain", "wild=foo2", 1); /* per value, not shared */
    expect(&g, 0, SLUICE_RLS_OK, 20, 19);
    g = run1(r, "test-domain", "wild=fo", 1);
    expect_nolimit(&g, 0, 0);
    g = run1(r, "test-domain", "noWild=foo1", 1);
    expect_nolimit(&g, 0, 0);
    g = run1(r, "test-domain", "midWild=barxyzb", 1);
    expect(&g, 0, SLUICE_RLS_OK, 20, 19);
    g = run1(r, "test-domain", "midWild=barxyzc", 1);
    expect_nolimit(&g, 0, 0);
    g = run1(r, "test-domain", "multiWild=foo-bar-baz", 1);
    expect(&g, 0, SLUICE_RLS_OK, 10, 9);
    g = run1(r, "test-domain", "nestedWild=val1,wild=goo2", 1);
    expect(&g, 0, SLUICE_RLS_OK, 20, 19);
    sluice__rls_free(r);
}

/* share_threshold: one counter for every value a wildcard matches */
static void test_share_threshold(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/test-integration/share_threshold.yaml");
    for (int i = 1; i <= 10; i++) {
        char spec[64];
        snprintf(spec, sizeof(spec), "files=files/%d", i);
        got g = run1(r, "share-threshold-test", spec, 1);
        expect(&g, 0, SLUICE_RLS_OK, 10, 10 - i);
        snprintf(spec, sizeof(spec), "files_no_share=files_no_share/%d", i);
        g = run1(r, "share-threshold-test", spec, 1);
        expect(&g, 0, SLUICE_RLS_OK, 10, 9);
    }
    got g = run1(r, "share-threshold-test", "files=files/other", 1);
    expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 10, 0);
    ASSERT_EQ(ST(g, 0)->unit, SLUICE_RLS_HOUR);
    ASSERT_EQ(ST(g, 0)->duration_until_reset_ms, 2747655);
    sluice__rls_free(r);
}

/* quota_mode: OVER_LIMIT overall only when every quota descriptor is over */
static void test_quota(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/examples/example.yaml");
    sluice__rls_descriptor d[2];
    desc(&d[0], "service=service_1");
    desc(&d[1], "service=service_2");
    got g = run(r, "rl", 1, NOW, 2, d);
    ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OK);
    g = run(r, "rl", 1, NOW, 2, d);
    ASSERT_EQ(ST(g, 0)->code, SLUICE_RLS_OVER_LIMIT);
    ASSERT_EQ(ST(g, 1)->code, SLUICE_RLS_OK);
    ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OK);
    g = run(r, "rl", 1, NOW, 2, d);
    ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OVER_LIMIT);
    sluice__rls_free(r);
}

/* every unit, with its remaining and reset, in the files' spellings (Hour, SECOND) */
static void test_units(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/authored/units.yaml");
    static const struct { const char *spec; int unit; uint32_t rpu; int64_t reset; } u[] = {
        {"per_second=a", SLUICE_RLS_SECOND, 2, 655},
        {"per_hour=a", SLUICE_RLS_HOUR, 3, 2747655},
        {"per_week=a", SLUICE_RLS_WEEK, 3, 92747655},
        {"per_month=a", SLUICE_RLS_MONTH, 3, 351947655},
        {"per_year=a", SLUICE_RLS_YEAR, 3, 2943947655LL},
    };
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
        for (uint32_t k = 1; k <= u[i].rpu + 1; k++) {
            got g = run1(r, "units", u[i].spec, 1);
            ASSERT_EQ(ST(g, 0)->unit, u[i].unit);
            ASSERT_EQ(ST(g, 0)->duration_until_reset_ms, u[i].reset);
            if (k <= u[i].rpu)
                expect(&g, 0, SLUICE_RLS_OK, u[i].rpu, u[i].rpu - k);
            else
                expect(&g, 0, SLUICE_RLS_OVER_LIMIT, u[i].rpu, 0);
        }
    }
    /* a minute (override, below) and a day (example 2) are covered elsewhere */
    sluice__rls_free(r);
}

/* hits_addend: request-level (0 means 1), per-descriptor (0 = check only), > 1 */
static void test_hits(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/test-config/basic_config.yaml");
    got g = run1(r, "test-domain", "key2=h", 0); /* 0 means 1 */
    expect(&g, 0, SLUICE_RLS_OK, 20, 19);
    g = run1(r, "test-domain", "key2=h", 5);
    expect(&g, 0, SLUICE_RLS_OK, 20, 14);
    sluice__rls_descriptor d;
    desc(&d, "key2=h");
    d.has_hits_addend = true;
    d.hits_addend = 0; /* check only */
    g = run(r, "test-domain", 7, NOW, 1, &d);
    expect(&g, 0, SLUICE_RLS_OK, 20, 14);
    d.hits_addend = 14; /* exactly what is left */
    g = run(r, "test-domain", 1, NOW, 1, &d);
    expect(&g, 0, SLUICE_RLS_OK, 20, 0);
    d.hits_addend = 0; /* at the limit, a check is still OK */
    g = run(r, "test-domain", 1, NOW, 1, &d);
    expect(&g, 0, SLUICE_RLS_OK, 20, 0);
    g = run1(r, "test-domain", "key2=h", 1);
    expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 20, 0);
    /* envoy semantics: the refused hit was charged, so a check is now over */
    g = run(r, "test-domain", 1, NOW, 1, &d);
    expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 20, 0);
    sluice__rls_free(r);
}

/* several descriptors, one over: OVER overall, the others charged (envoy) or not (exact) */
static void test_semantics(void)
{
    for (int sem = 0; sem < 2; sem++) {
        fresh_store();
        cfg->rls_semantics = sem ? SLUICE_RLS_SEM_EXACT : SLUICE_RLS_SEM_ENVOY;
        sluice__rls *r = load(UP "/test-config/basic_config.yaml");
        sluice__rls_descriptor d[3];
        desc(&d[0], "key2=a");  /* 20/min */
        desc(&d[1], "key3=a");  /* 1/hour */
        desc(&d[2], "key6=a");  /* unlimited */
        got g = run(r, "test-domain", 1, NOW, 3, d);
        ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OK);
        expect(&g, 0, SLUICE_RLS_OK, 20, 19);
        expect(&g, 1, SLUICE_RLS_OK, 1, 0);
        expect_nolimit(&g, 2, UINT32_MAX);
        g = run(r, "test-domain", 1, NOW, 3, d);
        ASSERT_EQ(g.r.overall_code, SLUICE_RLS_OVER_LIMIT);
        expect(&g, 1, SLUICE_RLS_OVER_LIMIT, 1, 0);
        /* envoy charged key2 although the request was refused; exact did not */
        expect(&g, 0, SLUICE_RLS_OK, 20, sem ? 19 : 18);
        g = run(r, "test-domain", 1, NOW, 1, d);
        expect(&g, 0, SLUICE_RLS_OK, 20, sem ? 18 : 17);
        /* a request above the limit: envoy charges it (and stays over), exact does not */
        g = run(r, "test-domain", 25, NOW, 1, d);
        /* exact reports what is still there: the refused request consumed nothing */
        expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 20, sem ? 18 : 0);
        g = run(r, "test-domain", 1, NOW, 1, d);
        if (sem)
            expect(&g, 0, SLUICE_RLS_OK, 20, 17);
        else
            expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 20, 0);
        sluice__rls_free(r);
    }
    cfg->rls_semantics = SLUICE_RLS_SEM_ENVOY;
}

/* Envoy's per-descriptor limit override replaces the configured limit */
static void test_override(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/test-config/basic_config.yaml");
    sluice__rls_descriptor d;
    desc(&d, "key3=a"); /* configured 1/hour */
    d.has_limit = true;
    d.limit_requests_per_unit = 3;
    d.limit_unit = SLUICE_RLS_MINUTE;
    for (uint32_t i = 1; i <= 4; i++) {
        got g = run(r, "test-domain", 1, NOW, 1, &d);
        if (i <= 3)
            expect(&g, 0, SLUICE_RLS_OK, 3, 3 - i);
        else
            expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 3, 0);
        ASSERT_EQ(ST(g, 0)->unit, SLUICE_RLS_MINUTE);
        ASSERT_EQ(ST(g, 0)->duration_until_reset_ms, 47655);
    }
    /* an override on a descriptor the config does not know works too */
    desc(&d, "unknown_key=a");
    d.has_limit = true;
    d.limit_requests_per_unit = 1;
    d.limit_unit = SLUICE_RLS_SECOND;
    got g = run(r, "test-domain", 1, NOW, 1, &d);
    expect(&g, 0, SLUICE_RLS_OK, 1, 0);
    /* an override with an unknown unit is a bad request */
    d.limit_unit = 9;
    sluice__rls_request req = {.domain = "test-domain", .domain_len = 11, .ndescriptors = 1,
                               .descriptors = &d};
    got g2 = {0};
    ASSERT_EQ(sluice__rls_decide_async(as, r, cfg, &req, on_reply, &g2), SLUICE_EINVAL);
    ASSERT_EQ(g2.calls, 0);
    sluice__rls_free(r);
}

/* sluice's algorithm extension: a sliding window of the unit never charges refusals */
static void test_sluice_algorithm(void)
{
    fresh_store();
    sluice__rls *r = load(SLUICE_SOURCE_DIR "/tests/rls/good_sluice_algorithm.yaml");
    for (int i = 1; i <= 11; i++) {
        got g = run1(r, "ext", "sliding=a", 1);
        if (i <= 10)
            expect(&g, 0, SLUICE_RLS_OK, 10, 10 - i);
        else
            expect(&g, 0, SLUICE_RLS_OVER_LIMIT, 10, 0);
    }
    for (int i = 1; i <= 11; i++) { /* token bucket: burst 10, 5 per second */
        got g = run1(r, "ext", "bucket=a", 1);
        ASSERT_EQ(ST(g, 0)->code, i <= 10 ? SLUICE_RLS_OK : SLUICE_RLS_OVER_LIMIT);
        if (i == 11) { /* the engine's own retry: one token in 200 ms, not the window */
            ASSERT(!ST(g, 0)->d.allowed);
            ASSERT_EQ(ST(g, 0)->d.retry_after_ms, 200);
            ASSERT_STREQ(ST(g, 0)->limit_name, "bucket_limit");
        }
    }
    sluice__rls_free(r);
}

/* store keys: disjoint from rule keys, one per entries+unit, share_threshold's pattern */
static void test_keys(void)
{
    sluice__rls *r = load(UP "/test-config/share_threshold.yaml");
    const sluice__rls_domain *dom = sluice__rls_find_domain(r, "test-domain", 11);
    sluice__rls_descriptor d;
    sluice__rls_hit h;
    desc(&d, "files=files/a.txt");
    ASSERT_EQ(sluice__rls_match(dom, "test-domain", 11, &d, &h), 0);
    ASSERT_STREQ(h.key, "rls/2/11:test-domain/5:files7:files/*");
    ASSERT_STREQ(h.metric, "files_files/*");
    desc(&d, "file=test1");
    ASSERT_EQ(sluice__rls_match(dom, "test-domain", 11, &d, &h), 0);
    ASSERT_STREQ(h.key, "rls/2/11:test-domain/4:file5:test1");
    ASSERT_EQ(h.limit->rpu, 50); /* explicit value before the wildcard */
    desc(&d, "route=api/v1,method=GET");
    ASSERT_EQ(sluice__rls_match(dom, "test-domain", 11, &d, &h), 0);
    ASSERT_STREQ(h.key, "rls/2/11:test-domain/5:route5:api/*/6:method3:GET");
    ASSERT_STREQ(h.metric, "route_api/*.method");
    ASSERT(strchr(h.key, ':') > strchr(h.key, '/')); /* never "<rule>:<identifier>" */
    /* a key too long for the store is hashed, still disjoint */
    static char big[4000];
    memset(big, 'x', sizeof(big) - 1);
    sluice__rls_descriptor d2 = {.nentries = 1};
    d2.entries[0] = (sluice__rls_entry){"file", 4, big, sizeof(big) - 1};
    ASSERT_EQ(sluice__rls_match(dom, "test-domain", 11, &d2, &h), 0);
    ASSERT(h.limit == NULL); /* file=test* does not match x... and there is no bare key */
    sluice__rls_free(r);
    r = load(UP "/test-config/basic_config.yaml");
    dom = &r->domains[0];
    d2.entries[0] = (sluice__rls_entry){"key2", 4, big, sizeof(big) - 1};
    ASSERT_EQ(sluice__rls_match(dom, "test-domain", 11, &d2, &h), 0);
    ASSERT_EQ(strncmp(h.key, "rls/2/h:", 8), 0);
    ASSERT_EQ(h.key_len, 8 + 32);
    desc(&d, "key7=v");
    ASSERT_EQ(sluice__rls_match(dom, "test-domain", 11, &d, &h), 0);
    ASSERT_STREQ(h.metric, "key7_v"); /* detailed_metric */
    desc(&d, "key2=v");
    ASSERT_EQ(sluice__rls_match(dom, "test-domain", 11, &d, &h), 0);
    ASSERT_STREQ(h.metric, "key2"); /* bounded: the configured path */
    sluice__rls_free(r);
}

/* a level listing 10000 values (per-tenant limits): each found by its own value */
static void test_large_level(void)
{
    char path[] = "/tmp/sluice-rls-large-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "domain: big\ndescriptors:\n  - key: tenant\n    rate_limit: {unit: hour, "
               "requests_per_unit: 1}\n");
    for (int i = 0; i < 10000; i++)
        fprintf(f, "  - key: tenant\n    value: t%d\n    rate_limit: {unit: minute, "
                   "requests_per_unit: %d}\n", i, i + 2);
    fprintf(f, "  - key: tenant\n    value: w*\n    rate_limit: {unit: day, requests_per_unit: 9}\n");
    fclose(f);
    fresh_store();
    sluice__rls *r = load(path);
    for (int i = 0; i < 10000; i += 997) {
        char spec[32];
        snprintf(spec, sizeof(spec), "tenant=t%d", i);
        got g = run1(r, "big", spec, 1);
        expect(&g, 0, SLUICE_RLS_OK, (uint32_t)i + 2, (uint32_t)i + 1);
    }
    got g = run1(r, "big", "tenant=w1", 1);
    expect(&g, 0, SLUICE_RLS_OK, 9, 8);
    g = run1(r, "big", "tenant=t10000", 1);
    expect(&g, 0, SLUICE_RLS_OK, 1, 0);
    sluice__rls_free(r);
    /* a duplicate among them: refused at the later one */
    f = fopen(path, "a");
    fprintf(f, "  - key: tenant\n    value: t777\n");
    fclose(f);
    sluice_error err = {0};
    const char *p[] = {path};
    ASSERT_EQ(sluice__rls_load(&r, p, 1, &err), SLUICE_ECONFIG);
    ASSERT_CONTAINS(err.msg, ":30008: duplicate descriptor composite key 'tenant_t777' (first at "
                             "line 2336)");
    unlink(path);
}

static void test_bad_requests(void)
{
    fresh_store();
    sluice__rls *r = load(UP "/test-config/basic_config.yaml");
    sluice__rls_descriptor d[SLUICE_RLS_MAX_DESCRIPTORS + 1];
    for (int i = 0; i <= SLUICE_RLS_MAX_DESCRIPTORS; i++)
        desc(&d[i], "key2=a");
    got g = {0};
    sluice__rls_request req = {.domain = "test-domain", .domain_len = 11, .ndescriptors = 0,
                               .descriptors = d};
    ASSERT_EQ(sluice__rls_decide_async(as, r, cfg, &req, on_reply, &g), SLUICE_EINVAL);
    req.ndescriptors = SLUICE_RLS_MAX_DESCRIPTORS + 1;
    ASSERT_EQ(sluice__rls_decide_async(as, r, cfg, &req, on_reply, &g), SLUICE_EINVAL);
    req.ndescriptors = 1;
    req.domain_len = 0;
    ASSERT_EQ(sluice__rls_decide_async(as, r, cfg, &req, on_reply, &g), SLUICE_EINVAL);
    req.domain_len = 11;
    d[0].nentries = 0;
    ASSERT_EQ(sluice__rls_decide_async(as, r, cfg, &req, on_reply, &g), SLUICE_EINVAL);
    desc(&d[0], "=a");
    ASSERT_EQ(sluice__rls_decide_async(as, r, cfg, &req, on_reply, &g), SLUICE_EINVAL);
    desc(&d[0], "key2=a");
    d[0].has_hits_addend = true;
    d[0].hits_addend = SLUICE_RLS_MAX_HITS + 1;
    ASSERT_EQ(sluice__rls_decide_async(as, r, cfg, &req, on_reply, &g), SLUICE_EINVAL);
    ASSERT_EQ(g.calls, 0);
    /* the full 64 descriptors decide */
    for (int i = 0; i < SLUICE_RLS_MAX_DESCRIPTORS; i++)
        desc(&d[i], "key2=many");
    got g2 = run(r, "test-domain", 1, NOW, SLUICE_RLS_MAX_DESCRIPTORS, d);
    expect(&g2, 19, SLUICE_RLS_OK, 20, 0);
    expect(&g2, 20, SLUICE_RLS_OVER_LIMIT, 20, 0);
    sluice__rls_free(r);
}

/* on_store_error on an unreachable Redis, through the async path on a libevent loop */
static void test_store_error(void)
{
    static const struct { const char *mode; int code; } m[] = {
        {"allow", SLUICE_RLS_OK}, {"deny", SLUICE_RLS_OVER_LIMIT}, {"local", SLUICE_RLS_OK}};
    sluice__rls *r = load(UP "/test-config/basic_config.yaml");
    for (size_t i = 0; i < 3; i++) {
        struct event_base *base = event_base_new();
        sluice_store_options o = {.timeout_ms = 50,
                                  .on_store_error = i == 0   ? SLUICE_FAIL_OPEN
                                                    : i == 1 ? SLUICE_FAIL_CLOSED
                                                             : SLUICE_FAIL_LOCAL};
        sluice_store *s = NULL;
        sluice_async *a = NULL;
        sluice_error err = {0};
        ASSERT_EQ(sluice_store_open(&s, "redis://127.0.0.1:1", &o, &err), 0);
        ASSERT_EQ(sluice_async_new(&a, s, base, &err), 0);
        cfg->on_store_error = o.on_store_error;
        sluice__rls_descriptor d;
        desc(&d, "key2=a");
        sluice__rls_request req = {.domain = "test-domain", .domain_len = 11,
                                   .ndescriptors = 1, .descriptors = &d};
        got g = {0};
        ASSERT_EQ(sluice__rls_decide_async(a, r, cfg, &req, on_reply, &g), 0);
        for (int k = 0; k < 200 && g.calls == 0; k++)
            event_base_loop(base, EVLOOP_ONCE);
        ASSERT_EQ(g.calls, 1);
        ASSERT_EQ(g.status, 0);
        ASSERT(g.r.store_error);
        if (g.r.statuses[0].code != m[i].code)
            test_fail(__FILE__, __LINE__, "%s: code %d", m[i].mode, g.r.statuses[0].code);
        /* allow: the whole limit (nothing known); deny: 0; local: counted in-process */
        ASSERT_EQ(g.r.statuses[0].limit_remaining, i == 0 ? 20 : i == 1 ? 0 : 19);
        sluice_async_free(a);
        sluice_store_close(s);
        event_base_free(base);
    }
    cfg->on_store_error = SLUICE_FAIL_OPEN;
    sluice__rls_free(r);
}

int main(void)
{
    const char *y = "rules:\n  - name: a\n    limits: [{algorithm: fixed_window, limit: 1, "
                    "window: 1s}]\n";
    sluice_error err = {0};
    if (sluice_config_load_string(&cfg, y, strlen(y), "t.yaml", &err) != 0)
        return 1;
    RUN(test_nested);
    RUN(test_blacklist);
    RUN(test_depth);
    RUN(test_unlimited);
    RUN(test_shadow);
    RUN(test_replaces);
    RUN(test_basic);
    RUN(test_integration_files);
    RUN(test_wildcard);
    RUN(test_share_threshold);
    RUN(test_quota);
    RUN(test_units);
    RUN(test_hits);
    RUN(test_semantics);
    RUN(test_override);
    RUN(test_sluice_algorithm);
    RUN(test_keys);
    RUN(test_large_level);
    RUN(test_bad_requests);
    RUN(test_store_error);
    sluice_async_free(as);
    sluice_store_close(store);
    sluice_config_free(cfg);
    return test_done();
}
