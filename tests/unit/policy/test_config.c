/* SPDX-License-Identifier: MIT */
/*
 * test_config.c - the config loader: the example config and the good configs
 * load with the right values and defaults; every tests/configs/bad_*.yaml is
 * refused with the line and reason its "# expect: <line>: <text>" comment
 * names; durations; NULL-safety; allocation failures give SLUICE_ENOMEM and
 * leak nothing.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/policy.h"
#include "sluice.h"
#include "test.h"

#define CONFIGS SLUICE_SOURCE_DIR "/tests/configs"
#define EXAMPLE SLUICE_SOURCE_DIR "/examples/sluice.yaml"

static sluice_config *load_ok(const char *path)
{
    sluice_config *cfg = NULL;
    sluice_error err = {0};
    int rc = sluice_config_load_file(&cfg, path, &err);
    if (rc != 0)
        test_fail(__FILE__, __LINE__, "%s: rc %d: %s", path, rc, err.msg);
    ASSERT(cfg != NULL);
    return cfg;
}

static int load_str(const char *yaml, sluice_config **cfg, sluice_error *err)
{
    return sluice_config_load_string(cfg, yaml, strlen(yaml), "t.yaml", err);
}

static void test_example(void)
{
    sluice_config *cfg = load_ok(EXAMPLE);
    ASSERT_STREQ(cfg->listen, "127.0.0.1:8080");
    ASSERT_EQ(cfg->workers, 0);
    ASSERT_STREQ(sluice_config_store_url(cfg), "memory://");
    ASSERT_EQ(cfg->timeout_ms, 20);
    ASSERT_EQ(cfg->on_store_error, SLUICE_FAIL_OPEN);
    ASSERT_EQ(cfg->headers, SLUICE_HEADERS_BOTH);
    ASSERT_EQ(cfg->ntrusted, 1);
    ASSERT_EQ(cfg->trusted[0].family, AF_INET);
    ASSERT_EQ(cfg->trusted[0].bits, 32);
    ASSERT_EQ(cfg->nident, 3);
    ASSERT_EQ(cfg->ident[0].kind, SLUICE_ID_API_KEY);
    ASSERT_STREQ(cfg->ident[0].header, "X-API-Key");
    ASSERT_EQ(cfg->ident[1].kind, SLUICE_ID_USER);
    ASSERT_EQ(cfg->ident[2].kind, SLUICE_ID_IP);
    ASSERT_EQ(cfg->deny_status, 429);
    ASSERT_STREQ(cfg->tier_header, "X-User-Tier");
    ASSERT(!cfg->shadow);
    ASSERT_EQ(cfg->nrules, 4);

    const sluice__rule *r = &cfg->rules[0];
    ASSERT_STREQ(r->name, "login");
    ASSERT_EQ(r->line, 14);
    ASSERT_STREQ(r->method, "POST");
    ASSERT_STREQ(r->path, "/api/auth/login");
    ASSERT(!r->prefix);
    ASSERT_EQ(r->nident, 1);
    ASSERT_EQ(r->ident[0].kind, SLUICE_ID_IP);
    ASSERT(!r->shadow);
    ASSERT(r->shape);
    ASSERT_EQ(r->ntiers, 0);
    ASSERT_EQ(r->set.n, 1);
    ASSERT_EQ(r->set.limits[0].algorithm, SLUICE_FIXED_WINDOW);
    ASSERT_EQ(r->set.limits[0].limit, 5);
    ASSERT_EQ(r->set.limits[0].window_ms, 60000);
    ASSERT_EQ(r->set.limits[0].burst, 0);

    r = &cfg->rules[1];
    ASSERT_STREQ(r->name, "search");
    ASSERT_STREQ(r->method, "GET");
    ASSERT_EQ(r->nident, 0);
    ASSERT_EQ(r->set.limits[0].algorithm, SLUICE_SLIDING_WINDOW);
    ASSERT_EQ(r->set.limits[0].limit, 100);

    r = &cfg->rules[2];
    ASSERT_STREQ(r->name, "upload");
    ASSERT(r->shadow);
    ASSERT_EQ(r->set.limits[0].algorithm, SLUICE_TOKEN_BUCKET);
    ASSERT_EQ(r->set.limits[0].limit, 10);
    ASSERT_EQ(r->set.limits[0].window_ms, 3600000);
    ASSERT_EQ(r->set.limits[0].burst, 10);

    r = &cfg->rules[3];
    ASSERT_STREQ(r->name, "default");
    ASSERT(r->method == NULL);
    ASSERT(r->path == NULL); /* a slash-star path matches everything */
    ASSERT_EQ(r->ntiers, 4);
    ASSERT_STREQ(r->tiers[0].name, "free");
    ASSERT_STREQ(r->tiers[3].name, "enterprise");
    ASSERT_EQ(r->tiers[3].set.limits[0].limit, 100000);
    ASSERT_EQ(r->tiers[2].set.limits[0].window_ms, 3600000);
    ASSERT_EQ(r->default_tier, 0);
    sluice_config_free(cfg);
}

static void test_full(void)
{
    sluice_config *cfg = load_ok(CONFIGS "/good_full.yaml");
    ASSERT_STREQ(cfg->listen, "[::1]:9090");
    ASSERT_STREQ(cfg->grpc_listen, "127.0.0.1:9091");
    ASSERT_EQ(cfg->workers, 4);
    ASSERT_STREQ(sluice_config_store_url(cfg), "redis://127.0.0.1:6390/2");
    ASSERT_EQ(cfg->timeout_ms, 50);
    ASSERT_EQ(cfg->on_store_error, SLUICE_FAIL_LOCAL);
    ASSERT_EQ(cfg->headers, SLUICE_HEADERS_IETF);
    ASSERT_EQ(cfg->ntrusted, 4);
    ASSERT_EQ(cfg->trusted[1].bits, 32);  /* bare address */
    ASSERT_EQ(cfg->trusted[2].family, AF_INET6);
    ASSERT_EQ(cfg->trusted[2].bits, 8);
    ASSERT_EQ(cfg->trusted[3].bits, 128); /* bare v6 address */
    ASSERT_EQ(cfg->nident, 4);
    ASSERT_EQ(cfg->ident[0].kind, SLUICE_ID_API_KEY);
    ASSERT_STREQ(cfg->ident[0].header, "X-API-Key");
    ASSERT_EQ(cfg->ident[1].kind, SLUICE_ID_USER);
    ASSERT_STREQ(cfg->ident[1].header, "X-User-Id");
    ASSERT_EQ(cfg->ident[2].kind, SLUICE_ID_HEADER);
    ASSERT_STREQ(cfg->ident[2].header, "X-Client-Id");
    ASSERT_EQ(cfg->ident[3].kind, SLUICE_ID_IP);
    ASSERT_EQ(cfg->deny_status, 403);
    ASSERT_STREQ(cfg->tier_header, "X-Plan");
    ASSERT_EQ(cfg->nrules, 3);

    const sluice__rule *r = &cfg->rules[0];
    ASSERT_STREQ(r->name, "api.v2-write_1");
    ASSERT_STREQ(r->method, "POST"); /* uppercased */
    ASSERT_STREQ(r->path, "/api/v2/");
    ASSERT(r->prefix);
    ASSERT(!r->shape);
    ASSERT_EQ(r->nident, 2);
    ASSERT_EQ(r->ident[0].kind, SLUICE_ID_HEADER);
    ASSERT_EQ(r->set.n, 5);
    ASSERT_EQ(r->set.limits[0].algorithm, SLUICE_LEAKY_BUCKET);
    ASSERT_EQ(r->set.limits[0].burst, 20);
    ASSERT_EQ(r->set.limits[1].window_ms, 3600000);
    ASSERT_EQ(r->set.limits[2].algorithm, SLUICE_SLIDING_LOG);
    ASSERT_EQ(r->set.limits[2].window_ms, 86400000);
    ASSERT_EQ(r->set.limits[3].window_ms, 1500);
    ASSERT_EQ(r->set.limits[4].burst, 5000); /* default burst = limit */
    ASSERT_EQ(r->set.limits[4].window_ms, 90 * 60000);
    const char *algos[] = {"leaky_bucket", "fixed_window", "sliding_log", "sliding_window",
                           "token_bucket"};
    for (int i = 0; i < 5; i++)
        ASSERT_STREQ(sluice_algorithm_name(r->set.limits[i].algorithm), algos[i]);

    r = &cfg->rules[1];
    ASSERT_STREQ(r->path, "/status");
    ASSERT(!r->prefix);
    ASSERT(r->shadow);
    ASSERT_EQ(r->set.limits[0].window_ms, 30000);

    r = &cfg->rules[2];
    ASSERT(r->method == NULL && r->path == NULL);
    ASSERT_EQ(r->ntiers, 2);
    ASSERT_EQ(r->default_tier, 0); /* no "free": the first tier */
    sluice_config_free(cfg);
}

static void test_defaults(void)
{
    sluice_config *cfg = load_ok(CONFIGS "/good_minimal.yaml");
    ASSERT_STREQ(cfg->listen, "127.0.0.1:8080");
    ASSERT(cfg->grpc_listen == NULL); /* no gRPC listener unless asked */
    ASSERT_EQ(cfg->workers, 0);
    ASSERT_STREQ(sluice_config_store_url(cfg), "memory://");
    ASSERT_EQ(cfg->timeout_ms, 20);
    ASSERT_EQ(cfg->on_store_error, SLUICE_FAIL_OPEN);
    ASSERT_EQ(cfg->headers, SLUICE_HEADERS_BOTH);
    ASSERT_EQ(cfg->ntrusted, 2);
    ASSERT_EQ(cfg->trusted[0].family, AF_INET);
    ASSERT_EQ(cfg->trusted[1].family, AF_INET6);
    ASSERT_EQ(cfg->trusted[1].bits, 128);
    ASSERT_EQ(cfg->nident, 3);
    ASSERT_EQ(cfg->ident[0].kind, SLUICE_ID_API_KEY);
    ASSERT_EQ(cfg->ident[1].kind, SLUICE_ID_USER);
    ASSERT_EQ(cfg->ident[2].kind, SLUICE_ID_IP);
    ASSERT_EQ(cfg->deny_status, 429);
    ASSERT_STREQ(cfg->tier_header, "X-User-Tier");
    ASSERT(!cfg->shadow);
    ASSERT_EQ(cfg->nrules, 1);
    ASSERT(cfg->rules[0].method == NULL && cfg->rules[0].path == NULL);
    ASSERT(cfg->rules[0].shape);
    ASSERT_EQ(cfg->rules[0].set.limits[0].burst, 10);
    sluice_config_free(cfg);

    sluice_config_free(load_ok(CONFIGS "/good_bounds.yaml"));
}

static void test_top_level_shadow(void)
{
    sluice_config *cfg = NULL;
    sluice_error err;
    ASSERT_EQ(load_str("shadow: true\nrules:\n  - name: a\n    shadow: false\n"
                       "    limits: [{algorithm: fixed_window, limit: 1, window: 1s}]\n",
                       &cfg, &err),
              0);
    ASSERT(cfg->shadow);
    ASSERT(cfg->rules[0].shadow); /* the top level applies to every rule */
    sluice_config_free(cfg);
}

/* Reads "# expect: <line>: <text>" from the first line of a bad config. */
static void read_expect(const char *path, int *line, char *text, size_t size)
{
    char buf[512];
    FILE *f = fopen(path, "r");
    ASSERT(f != NULL);
    ASSERT(fgets(buf, sizeof(buf), f) != NULL);
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    int off = 0;
    if (sscanf(buf, "# expect: %d: %n", line, &off) != 1 || off == 0)
        test_fail(__FILE__, __LINE__, "%s: first line is not '# expect: <line>: <text>'", path);
    snprintf(text, size, "%s", buf + off);
}

static void test_bad_configs(void)
{
    DIR *d = opendir(CONFIGS);
    ASSERT(d != NULL);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "bad_", 4) != 0 || n < 5 || strcmp(e->d_name + n - 5, ".yaml"))
            continue;
        char path[1024], text[400], want[1100];
        snprintf(path, sizeof(path), "%s/%s", CONFIGS, e->d_name);
        int line;
        read_expect(path, &line, text, sizeof(text));
        sluice_config *cfg = (sluice_config *)&count; /* must be reset to NULL */
        sluice_error err = {0};
        int rc = sluice_config_load_file(&cfg, path, &err);
        if (rc != SLUICE_ECONFIG)
            test_fail(__FILE__, __LINE__, "%s: rc %d (%s), want SLUICE_ECONFIG", e->d_name, rc,
                      err.msg);
        ASSERT(cfg == NULL);
        ASSERT_EQ(err.code, SLUICE_ECONFIG);
        snprintf(want, sizeof(want), "%s:%d: ", path, line);
        if (strncmp(err.msg, want, strlen(want)) != 0 || !strstr(err.msg, text))
            test_fail(__FILE__, __LINE__, "%s:\n  got:  %s\n  want: %s...%s", e->d_name,
                      err.msg, want, text);
        count++;
    }
    closedir(d);
    printf("  %d bad configs refused with the expected line and reason\n", count);
    ASSERT(count >= 40);
}

static void test_messages(void)
{
    sluice_config *cfg = NULL;
    sluice_error err;
    /* Syntax errors carry libyaml's line and problem. */
    ASSERT_EQ(load_str("rules:\n  - name: a\n   bad: [\n", &cfg, &err), SLUICE_ECONFIG);
    ASSERT_CONTAINS(err.msg, "t.yaml:");
    ASSERT_CONTAINS(err.msg, "YAML syntax error");
    /* A tab where indentation is expected. */
    ASSERT_EQ(load_str("rules:\n\t- name: a\n", &cfg, &err), SLUICE_ECONFIG);
    ASSERT_CONTAINS(err.msg, "t.yaml:2: YAML syntax error");
    /* The store URL (it may hold a password) is never echoed. */
    ASSERT_EQ(load_str("store: rediss://u:secret@h:1\nrules: []\n", &cfg, &err), SLUICE_ECONFIG);
    ASSERT(strstr(err.msg, "secret") == NULL);
    /* Invalid UTF-8 is a reader error with a line. */
    ASSERT_EQ(load_str("rules:\n  - name: \xff\xfe\n", &cfg, &err), SLUICE_ECONFIG);
    ASSERT_CONTAINS(err.msg, "t.yaml:2:");
    /* A NULL name still gives a usable message; an empty text is an empty config. */
    ASSERT_EQ(sluice_config_load_string(&cfg, "", 0, NULL, &err), SLUICE_ECONFIG);
    ASSERT_CONTAINS(err.msg, ":1: empty config");
    ASSERT(cfg == NULL);
    /* Errors with err == NULL still return the code. */
    ASSERT_EQ(load_str("rules: []\n", &cfg, NULL), SLUICE_ECONFIG);
    /* A very long file name is shortened so the reason still fits. */
    char name[400];
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    ASSERT_EQ(sluice_config_load_string(&cfg, "rules: []\n", 10, name, &err), SLUICE_ECONFIG);
    ASSERT_CONTAINS(err.msg, "'rules' is empty");
    ASSERT(strncmp(err.msg, "...", 3) == 0);
}

static void test_io(void)
{
    sluice_config *cfg = NULL;
    sluice_error err;
    ASSERT_EQ(sluice_config_load_file(&cfg, CONFIGS "/no-such-file.yaml", &err), SLUICE_EIO);
    ASSERT_EQ(err.code, SLUICE_EIO);
    ASSERT_CONTAINS(err.msg, "no-such-file.yaml: cannot open");
    ASSERT_EQ(sluice_config_load_file(&cfg, CONFIGS, &err) < 0, 1); /* a directory */
    ASSERT_EQ(sluice_config_load_file(NULL, EXAMPLE, &err), SLUICE_EINVAL);
    ASSERT_EQ(sluice_config_load_file(&cfg, NULL, &err), SLUICE_EINVAL);

    /* Bounded size: 5 MiB of comments is refused before parsing. */
    char path[] = "/tmp/sluice-test-config-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    FILE *f = fdopen(fd, "w");
    ASSERT(f != NULL);
    char line[1024];
    memset(line, '#', sizeof(line) - 1);
    line[sizeof(line) - 2] = '\n';
    line[sizeof(line) - 1] = '\0';
    for (int i = 0; i < 5 * 1024; i++)
        fputs(line, f);
    fclose(f);
    ASSERT_EQ(sluice_config_load_file(&cfg, path, &err), SLUICE_ECONFIG);
    ASSERT_CONTAINS(err.msg, "larger than");
    remove(path);
}

static void test_durations(void)
{
    int64_t ms = -7;
    ASSERT_EQ(sluice__parse_duration("10ms", &ms), 0);
    ASSERT_EQ(ms, 10);
    ASSERT_EQ(sluice__parse_duration("5s", &ms), 0);
    ASSERT_EQ(ms, 5000);
    ASSERT_EQ(sluice__parse_duration("1m", &ms), 0);
    ASSERT_EQ(ms, 60000);
    ASSERT_EQ(sluice__parse_duration("2h", &ms), 0);
    ASSERT_EQ(ms, 7200000);
    ASSERT_EQ(sluice__parse_duration("1d", &ms), 0);
    ASSERT_EQ(ms, 86400000);
    ASSERT_EQ(sluice__parse_duration("0s", &ms), 0);
    ASSERT_EQ(ms, 0);
    ASSERT_EQ(sluice__parse_duration("366d", &ms), 0);
    ASSERT_EQ(ms, SLUICE_WINDOW_MAX_MS);
    ms = 42;
    const char *bad[] = {"", "60", "s", "-1s", "1.5s", "1 s", "1S", "5w", "1sec", "1m1s",
                         " 1s", "1s ", "99999999999999999999ms", "9999999999999999d", NULL};
    for (int i = 0; bad[i]; i++) {
        if (sluice__parse_duration(bad[i], &ms) != -1)
            test_fail(__FILE__, __LINE__, "'%s' parsed", bad[i]);
    }
    ASSERT_EQ(sluice__parse_duration(NULL, &ms), -1);
    ASSERT_EQ(ms, 42);
}

static void test_null_safety(void)
{
    sluice_config_free(NULL);
    ASSERT_STREQ(sluice_config_store_url(NULL), "memory://");
    sluice_config *cfg = NULL;
    ASSERT_EQ(sluice_config_load_string(NULL, "a: 1", 4, "x", NULL), SLUICE_EINVAL);
    ASSERT_EQ(sluice_config_load_string(&cfg, NULL, 4, "x", NULL), SLUICE_EINVAL);
}

/*
 * Random edits of the example config (bytes that matter to YAML) must load
 * or fail with SLUICE_ECONFIG and a "fuzz.yaml:<line>: " message whose line
 * lies inside the text; under ASan this is also a memory-safety check.
 */
static void test_mutations(void)
{
    static const char alphabet[] = ":-[]{}#&*!|>'\"\n \t,?0123456789axz/%@`~";
    FILE *f = fopen(EXAMPLE, "r");
    ASSERT(f != NULL);
    static char orig[8192], text[8192 + 64];
    size_t len = fread(orig, 1, sizeof(orig) - 1, f);
    fclose(f);
    ASSERT(len > 100);
    uint64_t rng = test_seed();
    int ok = 0, refused = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(text, orig, len);
        size_t n = len;
        int edits = (int)test_range(&rng, 1, 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)test_range(&rng, 0, (int64_t)n - 1);
            char ch = alphabet[test_range(&rng, 0, (int64_t)sizeof(alphabet) - 2)];
            int op = (int)test_range(&rng, 0, 2);
            if (op == 0) {
                text[at] = ch;
            } else if (op == 1 && n + 1 < sizeof(text)) {
                memmove(text + at + 1, text + at, n - at);
                text[at] = ch;
                n++;
            } else if (n > 1) {
                memmove(text + at, text + at + 1, n - at - 1);
                n--;
            }
        }
        int lines = 1;
        for (size_t i = 0; i < n; i++)
            lines += text[i] == '\n';
        sluice_config *cfg = NULL;
        sluice_error err = {0};
        int rc = sluice_config_load_string(&cfg, text, n, "fuzz.yaml", &err);
        if (rc == 0) {
            ASSERT(cfg != NULL && cfg->nrules > 0);
            sluice_config_free(cfg);
            ok++;
            continue;
        }
        int line = 0, off = 0;
        if (rc != SLUICE_ECONFIG || sscanf(err.msg, "fuzz.yaml:%d: %n", &line, &off) != 1 ||
            off == 0 || line < 1 || line > lines)
            test_fail(__FILE__, __LINE__, "iteration %d: rc %d, message '%s' (%d lines)", iter,
                      rc, err.msg, lines);
        ASSERT(cfg == NULL);
        refused++;
    }
    printf("  3000 mutated configs: %d loaded, %d refused with a line\n", ok, refused);
    ASSERT(ok > 0 && refused > 0);
}

/* ---- allocation failures ---------------------------------------------------- */

static long budget;      /* allocations left before failing; < 0: never fail */
static long outstanding; /* blocks handed out and not yet freed */

static void *fail_malloc(size_t n)
{
    if (budget == 0)
        return NULL;
    if (budget > 0)
        budget--;
    void *p = malloc(n);
    if (p)
        outstanding++;
    return p;
}

static void *fail_realloc(void *p, size_t n)
{
    if (budget == 0)
        return NULL;
    if (budget > 0)
        budget--;
    void *q = realloc(p, n);
    if (q && !p)
        outstanding++;
    return q;
}

static void fail_free(void *p)
{
    if (p)
        outstanding--;
    free(p);
}

static void test_alloc_failures(void)
{
    sluice_set_allocator(fail_malloc, fail_realloc, fail_free);
    const char *files[] = {EXAMPLE, CONFIGS "/good_full.yaml", CONFIGS "/bad_duplicate_rule.yaml"};
    for (int f = 0; f < 3; f++) {
        int want = f == 2 ? SLUICE_ECONFIG : 0;
        long n;
        for (n = 0; n < 100000; n++) {
            budget = n;
            outstanding = 0;
            sluice_config *cfg = NULL;
            sluice_error err = {0};
            int rc = sluice_config_load_file(&cfg, files[f], &err);
            if (rc == want) {
                sluice_config_free(cfg);
                ASSERT_EQ(outstanding, 0);
                break;
            }
            if (rc != SLUICE_ENOMEM)
                test_fail(__FILE__, __LINE__, "%s, budget %ld: rc %d (%s)", files[f], n, rc,
                          err.msg);
            ASSERT_EQ(err.code, SLUICE_ENOMEM);
            ASSERT(cfg == NULL);
            ASSERT_EQ(outstanding, 0);
        }
        ASSERT(n > 10); /* the loop did exercise failure paths */
        printf("  %s: %ld allocation failure points, no leaks\n", strrchr(files[f], '/') + 1, n);
    }
    sluice_set_allocator(NULL, NULL, NULL);
}

int main(void)
{
    RUN(test_example);
    RUN(test_full);
    RUN(test_defaults);
    RUN(test_top_level_shadow);
    RUN(test_bad_configs);
    RUN(test_messages);
    RUN(test_io);
    RUN(test_durations);
    RUN(test_null_safety);
    RUN(test_mutations);
    RUN(test_alloc_failures);
    return test_done();
}
