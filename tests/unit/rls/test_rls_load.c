/* SPDX-License-Identifier: MIT */
/*
 * test_rls_load.c - loading envoyproxy/ratelimit descriptor files: every
 * upstream fixture (tests/rls/upstream, copied unchanged from
 * envoyproxy/ratelimit's README, examples, test/config and integration
 * tests) loads or is refused with upstream's reason; each
 * tests/rls/bad_*.yaml is refused with the line and reason of its
 * "# expect:" header; the loaded tree holds the values of the file; globs,
 * the sluice config keys and their errors.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rls/rls_int.h"
#include "test.h"

#define DIR_ SLUICE_SOURCE_DIR "/tests/rls"
#define UP DIR_ "/upstream"

static int load1(const char *path, sluice__rls **r, sluice_error *err)
{
    const char *p[] = {path};
    return sluice__rls_load(r, p, 1, err);
}

static void test_upstream_good(void)
{
    static const char *const good[] = {
        "authored/units.yaml",           "examples/config.yaml",
        "examples/example.yaml",         "examples/example_core.yaml",
        "readme/example2.yaml",          "readme/example3.yaml",
        "readme/example4_match.yaml",    "readme/example4_no_match.yaml",
        "readme/example5.yaml",          "readme/example6.yaml",
        "readme/example7.yaml",          "test-config/basic_config.yaml",
        "test-config/merge_domain_key1.yaml", "test-config/merge_domain_key2.yaml",
        "test-config/metadata.yaml",     "test-config/shadowmode_config.yaml",
        "test-config/share_threshold.yaml", "test-config/wildcard.yaml",
        "test-config/duplicate_domain.yaml", "test-integration/basic.yaml",
        "test-integration/another.yaml", "test-integration/reload.yaml",
        "test-integration/share_threshold.yaml"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), UP "/%s", good[i]);
        sluice__rls *r = NULL;
        sluice_error err = {0};
        int rc = load1(path, &r, &err);
        if (rc != 0)
            test_fail(__FILE__, __LINE__, "%s: %d %s", good[i], rc, err.msg);
        ASSERT_EQ(r->ndomains, 1);
        sluice__rls_free(r);
    }
    /* the integration directory as one glob: four domains */
    sluice__rls *r = NULL;
    sluice_error err = {0};
    ASSERT_EQ(load1(UP "/test-integration/*.yaml", &r, &err), 0);
    ASSERT_EQ(r->ndomains, 4);
    ASSERT(sluice__rls_find_domain(r, "basic", 5) != NULL);
    ASSERT(sluice__rls_find_domain(r, "share-threshold-test", 20) != NULL);
    ASSERT(sluice__rls_find_domain(r, "nope", 4) == NULL);
    sluice__rls_free(r);
}

/* upstream's refused fixtures, with the reason upstream gives */
static void test_upstream_bad(void)
{
    static const struct { const char *files[2]; int line; const char *why; } bad[] = {
        {{"test-config/bad_limit_unit.yaml"}, 6, "invalid rate limit unit 'foo'"},
        {{"test-config/bad_yaml.yaml"}, 2, "YAML syntax error"},
        {{"test-config/duplicate_key.yaml"}, 6, "duplicate descriptor composite key 'key1_value1'"},
        {{"test-config/empty_domain.yaml"}, 1, "config file cannot have empty domain"},
        {{"test-config/empty_key.yaml"}, 3, "descriptor has empty key"},
        {{"test-config/misspelled_key.yaml"}, 5, "unknown key 'ratelimit'"},
        {{"test-config/misspelled_key2.yaml"}, 7, "unknown key 'requestsperunit'"},
        {{"test-config/non_map_list.yaml"}, 3, "a descriptor must be a mapping"},
        {{"test-config/non_string_key.yaml"}, 1, "key is not of type string: 0.25"},
        {{"test-config/replaces_empty.yaml"}, 10, "should not have an empty replaces entry"},
        {{"test-config/replaces_self.yaml"}, 10, "replaces should not contain name of same descriptor"},
        {{"test-config/unlimited_with_unit.yaml"}, 6, "should not specify rate limit unit when unlimited"},
        {{"test-config/basic_config.yaml", "test-config/duplicate_domain.yaml"}, 1,
         "duplicate domain 'test-domain'"},
        {{"test-config/merge_domain_key1.yaml", "test-config/merge_domain_key2.yaml"}, 2,
         "duplicate domain 'test-domain'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char p0[512], p1[512];
        const char *pats[2] = {p0, p1};
        int n = bad[i].files[1] ? 2 : 1;
        snprintf(p0, sizeof(p0), UP "/%s", bad[i].files[0]);
        if (n == 2)
            snprintf(p1, sizeof(p1), UP "/%s", bad[i].files[1]);
        sluice__rls *r = (sluice__rls *)p0;
        sluice_error err = {0};
        int rc = sluice__rls_load(&r, pats, n, &err);
        const char *last = n == 2 ? p1 : p0;
        char want[600];
        snprintf(want, sizeof(want), "%s:%d: ", last, bad[i].line);
        if (rc != SLUICE_ECONFIG || r != NULL || strncmp(err.msg, want, strlen(want)) != 0 ||
            !strstr(err.msg, bad[i].why))
            test_fail(__FILE__, __LINE__, "%s: rc %d\n  got:  %s\n  want: %s...%s",
                      bad[i].files[0], rc, err.msg, want, bad[i].why);
    }
}

static void read_expect(const char *path, int *line, char *text, size_t size)
{
    FILE *f = fopen(path, "r");
    ASSERT(f != NULL);
    char buf[512];
    ASSERT(fgets(buf, sizeof(buf), f) != NULL);
    fclose(f);
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
    int off = 0;
    if (sscanf(buf, "# expect: %d: %n", line, &off) != 1 || off == 0)
        test_fail(__FILE__, __LINE__, "%s: no '# expect: <line>: <reason>' header", path);
    snprintf(text, size, "%s", buf + off);
}

static void test_bad_files(void)
{
    DIR *d = opendir(DIR_);
    ASSERT(d != NULL);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "bad_", 4) != 0 || n < 5 || strcmp(e->d_name + n - 5, ".yaml"))
            continue;
        char path[1024], text[400], want[1100];
        snprintf(path, sizeof(path), "%s/%s", DIR_, e->d_name);
        int line;
        read_expect(path, &line, text, sizeof(text));
        sluice__rls *r = NULL;
        sluice_error err = {0};
        int rc = load1(path, &r, &err);
        snprintf(want, sizeof(want), "%s:%d: ", path, line);
        if (rc != SLUICE_ECONFIG || r || strncmp(err.msg, want, strlen(want)) != 0 ||
            !strstr(err.msg, text))
            test_fail(__FILE__, __LINE__, "%s: rc %d\n  got:  %s\n  want: %s...%s", e->d_name,
                      rc, err.msg, want, text);
        count++;
    }
    closedir(d);
    printf("  %d bad descriptor files refused with the expected line and reason\n", count);
    ASSERT(count >= 12);
}

static const sluice__rls_node *kid(const sluice__rls_node *kids, int n, const char *key,
                                   const char *value)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kids[i].key, key) == 0 &&
            (value ? kids[i].value && strcmp(kids[i].value, value) == 0 : !kids[i].value))
            return &kids[i];
    return NULL;
}

static void test_tree_values(void)
{
    sluice__rls *r = NULL;
    sluice_error err = {0};
    ASSERT_EQ(load1(UP "/examples/example.yaml", &r, &err), 0);
    const sluice__rls_domain *dom = sluice__rls_find_domain(r, "rl", 2);
    ASSERT(dom != NULL);
    const sluice__rls_node *cat = kid(dom->kids, dom->nkids, "category", "account");
    ASSERT(cat && cat->has_limit);
    ASSERT_EQ(cat->limit.rpu, 4);
    ASSERT_EQ(cat->limit.unit, SLUICE_RLS_MINUTE);
    ASSERT_EQ(cat->limit.window_ms, 60000);
    ASSERT_EQ(cat->limit.nreplaces, 2);
    ASSERT_STREQ(cat->limit.replaces[0], "bkthomps");
    ASSERT_STREQ(cat->limit.replaces[1], "fake_name");
    const sluice__rls_node *foo = kid(dom->kids, dom->nkids, "foo", NULL);
    ASSERT(foo && foo->nkids == 7);
    const sluice__rls_node *banned = kid(foo->kids, foo->nkids, "bar", "banned");
    ASSERT(banned && banned->has_limit && banned->limit.rpu == 0);
    ASSERT_STREQ(banned->limit.name, "banned_limit");
    const sluice__rls_node *shady = kid(foo->kids, foo->nkids, "baz", "shady");
    ASSERT(shady && shady->shadow);
    const sluice__rls_node *bay = kid(foo->kids, foo->nkids, "bay", NULL);
    ASSERT(bay && bay->limit.unlimited);
    const sluice__rls_node *svc = kid(dom->kids, dom->nkids, "service", "service_1");
    ASSERT(svc && svc->quota);
    ASSERT(kid(dom->kids, dom->nkids, "unspec", NULL)->detailed_metric);
    sluice__rls_free(r);

    ASSERT_EQ(load1(UP "/authored/units.yaml", &r, &err), 0);
    dom = &r->domains[0];
    ASSERT_EQ(kid(dom->kids, dom->nkids, "per_week", NULL)->limit.window_ms, 604800000LL);
    ASSERT_EQ(kid(dom->kids, dom->nkids, "per_month", NULL)->limit.window_ms, 2592000000LL);
    ASSERT_EQ(kid(dom->kids, dom->nkids, "per_year", NULL)->limit.window_ms, 31536000000LL);
    ASSERT_EQ(kid(dom->kids, dom->nkids, "per_hour", NULL)->limit.unit, SLUICE_RLS_HOUR);
    ASSERT_EQ(kid(dom->kids, dom->nkids, "per_second", NULL)->limit.unit, SLUICE_RLS_SECOND);
    sluice__rls_free(r);

    ASSERT_EQ(load1(UP "/readme/example3.yaml", &r, &err), 0);
    dom = &r->domains[0];
    ASSERT_STREQ(kid(dom->kids, dom->nkids, "remote_address", "50.0.0.5")->value, "50.0.0.5");
    sluice__rls_free(r);

    ASSERT_EQ(load1(DIR_ "/good_sluice_algorithm.yaml", &r, &err), 0);
    dom = &r->domains[0];
    const sluice__rls_node *b = kid(dom->kids, dom->nkids, "bucket", NULL);
    ASSERT(b->limit.sluice_algo);
    ASSERT_EQ(b->limit.algo.algorithm, SLUICE_TOKEN_BUCKET);
    ASSERT_EQ(b->limit.algo.limit, 5);
    ASSERT_EQ(b->limit.algo.burst, 10);
    ASSERT_EQ(b->limit.algo.window_ms, 1000);
    sluice__rls_free(r);
}

static void test_patterns(void)
{
    sluice__rls *r = NULL;
    sluice_error err = {0};
    ASSERT_EQ(sluice__rls_load(&r, NULL, 0, &err), 0);
    ASSERT_EQ(r->ndomains, 0);
    sluice__rls_free(r);
    /* a glob matching nothing is an empty set; a plain missing path is an error */
    ASSERT_EQ(load1(DIR_ "/nothing-here-*.yaml", &r, &err), 0);
    ASSERT_EQ(r->ndomains, 0);
    sluice__rls_free(r);
    ASSERT_EQ(load1(DIR_ "/missing.yaml", &r, &err), SLUICE_EIO);
    ASSERT(r == NULL);
    ASSERT_CONTAINS(err.msg, "missing.yaml: cannot open");
    /* a file over 4 MiB is refused, whatever it holds */
    char big[] = "/tmp/sluice-rls-big-XXXXXX";
    int fd = mkstemp(big);
    ASSERT(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("domain: big\ndescriptors:\n", f);
    for (int i = 0; i < (4 << 20) / 16 + 10; i++)
        fputs("# padding......\n", f);
    fclose(f);
    ASSERT_EQ(load1(big, &r, &err), SLUICE_ECONFIG);
    ASSERT_CONTAINS(err.msg, ":1: file is larger than 4194304 bytes");
    unlink(big);
}

static void test_glob(void)
{
    ASSERT(sluice__rls_glob("foo*", "foo", 3));
    ASSERT(sluice__rls_glob("foo*", "foobar", 6));
    ASSERT(!sluice__rls_glob("foo*", "fo", 2));
    ASSERT(sluice__rls_glob("bar*b", "barab", 5));
    ASSERT(sluice__rls_glob("bar*b", "barb", 4));
    ASSERT(!sluice__rls_glob("bar*b", "barba", 5));
    ASSERT(sluice__rls_glob("foo*bar*baz", "foo1bar2baz", 11));
    ASSERT(sluice__rls_glob("foo*bar*baz", "foobarbaz", 9));
    ASSERT(!sluice__rls_glob("foo*bar*baz", "foobazbar", 9));
    ASSERT(sluice__rls_glob("*", "", 0));
    ASSERT(sluice__rls_glob("a**b", "ab", 2));
    ASSERT(!sluice__rls_glob("abc", "ab", 2));
}

/* descriptors_config and descriptors_semantics in a sluice config */
static void test_config_keys(void)
{
    const char *y = "descriptors_config: [" UP "/readme/example2.yaml, " UP
                    "/readme/example5.yaml]\n"
                    "descriptors_semantics: exact\n"
                    "rules:\n  - name: a\n    limits: [{algorithm: fixed_window, limit: 1, "
                    "window: 1s}]\n";
    sluice_config *cfg = NULL;
    sluice_error err = {0};
    ASSERT_EQ(sluice_config_load_string(&cfg, y, strlen(y), "t.yaml", &err), 0);
    const sluice__rls *r = sluice__config_rls(cfg);
    ASSERT_EQ(r->ndomains, 2);
    ASSERT(sluice__rls_find_domain(r, "messaging", 9) != NULL);
    ASSERT(sluice__rls_find_domain(r, "internal", 8) != NULL);
    sluice_config_free(cfg);

    /* a relative pattern is taken from the config file's directory */
    const char *y2 = "descriptors_config: upstream/readme/example3.yaml\n"
                     "rules:\n  - name: a\n    limits: [{algorithm: fixed_window, limit: 1, "
                     "window: 1s}]\n";
    ASSERT_EQ(sluice_config_load_string(&cfg, y2, strlen(y2), DIR_ "/x.yaml", &err), 0);
    ASSERT(sluice__rls_find_domain(sluice__config_rls(cfg), "edge_proxy_per_ip", 17) != NULL);
    sluice_config_free(cfg);

    /* no descriptors_config: an empty set */
    const char *y3 = "rules:\n  - name: a\n    limits: [{algorithm: fixed_window, limit: 1, "
                     "window: 1s}]\n";
    ASSERT_EQ(sluice_config_load_string(&cfg, y3, strlen(y3), "t.yaml", &err), 0);
    ASSERT_EQ(sluice__config_rls(cfg)->ndomains, 0);
    sluice_config_free(cfg);

    /* a bad descriptor file fails the config with the descriptor file's line */
    const char *y4 = "descriptors_config: [" UP "/test-config/replaces_self.yaml]\n"
                     "rules:\n  - name: a\n    limits: [{algorithm: fixed_window, limit: 1, "
                     "window: 1s}]\n";
    cfg = (sluice_config *)&err;
    ASSERT_EQ(sluice_config_load_string(&cfg, y4, strlen(y4), "t.yaml", &err), SLUICE_ECONFIG);
    ASSERT(cfg == NULL);
    ASSERT_CONTAINS(err.msg, "replaces_self.yaml:10: replaces should not contain");

    const char *y5 = "descriptors_semantics: strict\n"
                     "rules:\n  - name: a\n    limits: [{algorithm: fixed_window, limit: 1, "
                     "window: 1s}]\n";
    ASSERT_EQ(sluice_config_load_string(&cfg, y5, strlen(y5), "t.yaml", &err), SLUICE_ECONFIG);
    ASSERT_CONTAINS(err.msg, "t.yaml:1: 'descriptors_semantics' must be one of envoy, exact");
    const char *y6 = "descriptors_config: {a: b}\n"
                     "rules:\n  - name: a\n    limits: [{algorithm: fixed_window, limit: 1, "
                     "window: 1s}]\n";
    ASSERT_EQ(sluice_config_load_string(&cfg, y6, strlen(y6), "t.yaml", &err), SLUICE_ECONFIG);
    ASSERT_CONTAINS(err.msg, "t.yaml:1: 'descriptors_config' must be a list");
}

int main(void)
{
    RUN(test_upstream_good);
    RUN(test_upstream_bad);
    RUN(test_bad_files);
    RUN(test_tree_values);
    RUN(test_patterns);
    RUN(test_glob);
    RUN(test_config_keys);
    return test_done();
}
