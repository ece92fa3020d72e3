/* SPDX-License-Identifier: MIT */
/*
 * test_rls_fuzz.c - bad input never crashes, hangs or leaks: 3000 randomly
 * mutated descriptor files (from upstream's fixtures) each load or are
 * refused with "<file>:<line>: " inside the file; 3000 mutated /json bodies
 * each parse or are refused with a code; loading fails cleanly at every
 * allocation (an injected failing allocator), with nothing left allocated.
 * The seed is printed (SLUICE_SEED replays it); ASan runs this in make test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy/policy.h"
#include "rls/rls_int.h"
#include "rls/rls_json.h"
#include "test.h"

#define UP SLUICE_SOURCE_DIR "/tests/rls/upstream"

static size_t mutate(uint64_t *rng, char *text, size_t n, size_t cap, const char *alphabet)
{
    int edits = (int)test_range(rng, 1, 4);
    size_t na = strlen(alphabet);
    for (int e = 0; e < edits; e++) {
        size_t at = (size_t)test_range(rng, 0, (int64_t)n - 1);
        char ch = alphabet[test_range(rng, 0, (int64_t)na - 1)];
        int op = (int)test_range(rng, 0, 2);
        if (op == 0) {
            text[at] = ch;
        } else if (op == 1 && n + 1 < cap) {
            memmove(text + at + 1, text + at, n - at);
            text[at] = ch;
            n++;
        } else if (n > 1) {
            memmove(text + at, text + at + 1, n - at - 1);
            n--;
        }
    }
    return n;
}

static void test_mutated_files(void)
{
    static const char alphabet[] = ":-[]{}#&*!|>'\"\n \t,?0123456789axz/%@`~_";
    static const char *const srcs[] = {UP "/examples/example.yaml",
                                       UP "/test-config/basic_config.yaml",
                                       UP "/test-config/share_threshold.yaml"};
    char path[] = "/tmp/sluice-rls-fuzz-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    close(fd);
    uint64_t rng = test_seed();
    int ok = 0, refused = 0;
    static char orig[16384], text[16384 + 64];
    for (int iter = 0; iter < 3000; iter++) {
        FILE *f = fopen(srcs[iter % 3], "r");
        ASSERT(f != NULL);
        size_t len = fread(orig, 1, sizeof(orig) - 1, f);
        fclose(f);
        memcpy(text, orig, len);
        size_t n = mutate(&rng, text, len, sizeof(text), alphabet);
        int lines = 1;
        for (size_t i = 0; i < n; i++)
            lines += text[i] == '\n';
        f = fopen(path, "w");
        ASSERT(fwrite(text, 1, n, f) == n);
        fclose(f);
        sluice__rls *r = NULL;
        sluice_error err = {0};
        const char *p[] = {path};
        int rc = sluice__rls_load(&r, p, 1, &err);
        if (rc == 0) {
            ASSERT(r != NULL && r->ndomains == 1);
            sluice__rls_free(r);
            ok++;
            continue;
        }
        char want[64];
        int line = 0, off = 0;
        snprintf(want, sizeof(want), "%s:%%d: %%n", path);
        if (rc != SLUICE_ECONFIG || sscanf(err.msg, want, &line, &off) != 1 || off == 0 ||
            line < 1 || line > lines)
            test_fail(__FILE__, __LINE__, "iteration %d: rc %d, message '%s' (%d lines)", iter,
                      rc, err.msg, lines);
        ASSERT(r == NULL);
        refused++;
    }
    unlink(path);
    printf("  3000 mutated descriptor files: %d loaded, %d refused with a line\n", ok, refused);
    ASSERT(ok > 0 && refused > 0);
}

static void test_mutated_json(void)
{
    static const char alphabet[] = "{}[]:,\"\\0123456789-.eEtrufalsn ux";
    static const char orig[] =
        "{\"domain\":\"test-domain\",\"hitsAddend\":2,\"descriptors\":[{\"entries\":[{\"key\":"
        "\"key1\",\"value\":\"value1\"},{\"key\":\"subkey1\",\"value\":\"x\"}],\"hitsAddend\":"
        "\"3\",\"limit\":{\"requestsPerUnit\":5,\"unit\":\"MINUTE\"}}]}";
    uint64_t rng = test_seed() ^ 0x9e3779b97f4a7c15ULL;
    int ok = 0, refused = 0;
    char text[sizeof(orig) + 64];
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(text, orig, sizeof(orig) - 1);
        size_t n = mutate(&rng, text, sizeof(orig) - 1, sizeof(text), alphabet);
        sluice__rls_json_req r;
        const char *code = NULL;
        char why[160] = "";
        int rc = sluice__rls_json_parse(text, n, &r, &code, why, sizeof(why));
        if (rc == 0) {
            ASSERT(r.req.ndescriptors >= 1 && r.req.domain_len >= 1);
            ok++;
        } else {
            ASSERT_EQ(rc, -1);
            ASSERT(code != NULL && why[0] != '\0');
            refused++;
        }
        sluice__rls_json_req_free(&r);
    }
    printf("  3000 mutated /json bodies: %d parsed, %d refused with a code\n", ok, refused);
    ASSERT(ok > 0 && refused > 0);
}

static long budget = -1, outstanding;

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
    const char *files[] = {UP "/examples/example.yaml", UP "/test-config/share_threshold.yaml",
                           UP "/test-config/replaces_self.yaml"};
    for (int f = 0; f < 3; f++) {
        int want = f == 2 ? SLUICE_ECONFIG : 0;
        long n;
        for (n = 0; n < 100000; n++) {
            budget = n;
            outstanding = 0;
            sluice__rls *r = NULL;
            sluice_error err = {0};
            const char *p[] = {files[f]};
            int rc = sluice__rls_load(&r, p, 1, &err);
            if (rc == want) {
                sluice__rls_free(r);
                ASSERT_EQ(outstanding, 0);
                break;
            }
            if (rc != SLUICE_ENOMEM)
                test_fail(__FILE__, __LINE__, "%s, budget %ld: rc %d (%s)", files[f], n, rc,
                          err.msg);
            ASSERT_EQ(err.code, SLUICE_ENOMEM);
            ASSERT(r == NULL);
            ASSERT_EQ(outstanding, 0);
        }
        ASSERT(n > 10);
        printf("  %s: %ld allocation failure points, no leaks\n", strrchr(files[f], '/') + 1, n);
    }
    budget = -1;
    sluice_set_allocator(NULL, NULL, NULL);
}

static int calls, last_status;
static void on_reply(int status, const sluice__rls_reply *r, void *arg)
{
    (void)arg;
    calls++;
    last_status = status;
    ASSERT((status == 0) == (r != NULL));
}

/* deciding under allocation failure: either refused at once (cb never runs) or
 * answered exactly once, with a reply or SLUICE_ENOMEM */
static void test_decide_alloc_failures(void)
{
    const char *y = "rules:\n  - name: a\n    limits: [{algorithm: fixed_window, limit: 1, "
                    "window: 1s}]\n";
    sluice_config *cfg = NULL;
    sluice_error err = {0};
    ASSERT_EQ(sluice_config_load_string(&cfg, y, strlen(y), "t.yaml", &err), 0);
    sluice__rls *r = NULL;
    const char *p[] = {UP "/test-config/basic_config.yaml"};
    ASSERT_EQ(sluice__rls_load(&r, p, 1, &err), 0);
    sluice__rls_descriptor d[2] = {{.nentries = 1}, {.nentries = 1}};
    d[0].entries[0] = (sluice__rls_entry){"key2", 4, "a", 1};
    d[1].entries[0] = (sluice__rls_entry){"key3", 4, "b", 1};
    sluice__rls_request req = {.domain = "test-domain", .domain_len = 11, .ndescriptors = 2,
                               .descriptors = d};
    int refused = 0, failed = 0, answered = 0;
    for (int sem = 0; sem < 2; sem++) {
        cfg->rls_semantics = sem;
        for (long n = 0; n < 40; n++) {
            sluice_store *st = NULL;
            sluice_async *a = NULL;
            ASSERT_EQ(sluice_store_open(&st, "memory://", NULL, &err), 0);
            ASSERT_EQ(sluice_async_new(&a, st, NULL, &err), 0);
            sluice_set_allocator(fail_malloc, fail_realloc, fail_free);
            budget = n;
            calls = 0;
            int rc = sluice__rls_decide_async(a, r, cfg, &req, on_reply, NULL);
            budget = -1;
            sluice_set_allocator(NULL, NULL, NULL);
            if (rc < 0) {
                ASSERT_EQ(rc, SLUICE_ENOMEM);
                ASSERT_EQ(calls, 0);
                refused++;
            } else {
                ASSERT_EQ(calls, 1);
                if (last_status == 0)
                    answered++;
                else
                    failed++;
                ASSERT(last_status == 0 || last_status == SLUICE_ENOMEM);
            }
            sluice_async_free(a);
            sluice_store_close(st);
        }
    }
    printf("  decide under failing allocations: %d refused, %d ENOMEM in the callback, %d "
           "answered\n", refused, failed, answered);
    ASSERT(refused > 0 && answered > 0);
    sluice__rls_free(r);
    sluice_config_free(cfg);
}

int main(void)
{
    RUN(test_mutated_files);
    RUN(test_mutated_json);
    RUN(test_alloc_failures);
    RUN(test_decide_alloc_failures);
    return test_done();
}
