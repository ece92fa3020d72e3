/* SPDX-License-Identifier: MIT */
/*
 * test_rls_headers.c - sluice__rls_headers(): the rate-limit headers of an
 * Envoy RLS reply (for response_headers_to_add) from real decisions on the
 * memory store: the descriptor that decides (first over, else least
 * remaining), every `headers:` mode, the item name, no headers without a
 * limit, and a callback that stops early.
 */
#include <string.h>

#include "policy/policy.h"
#include "rls/rls_int.h"
#include "test.h"

#define UP SLUICE_SOURCE_DIR "/tests/rls/upstream"
#define NOW (1700000040000LL + 12345)

typedef struct hs {
    int n;
    char name[8][64];
    char value[8][256];
    int stop_at;
} hs;

static int collect(void *arg, const char *name, const char *value)
{
    hs *h = arg;
    if (h->n == h->stop_at)
        return 7;
    snprintf(h->name[h->n], sizeof(h->name[0]), "%s", name);
    snprintf(h->value[h->n], sizeof(h->value[0]), "%s", value);
    h->n++;
    return 0;
}

static const char *get(const hs *h, const char *name)
{
    for (int i = 0; i < h->n; i++)
        if (strcmp(h->name[i], name) == 0)
            return h->value[i];
    return NULL;
}

static sluice__rls_reply last;
static void on_reply(int status, const sluice__rls_reply *r, void *arg)
{
    (void)arg;
    if (status == 0)
        last = *r;
}

static void test_headers(void)
{
    const char *y = "rules:\n  - name: a\n    limits: [{algorithm: fixed_window, limit: 1, "
                    "window: 1s}]\n";
    sluice_config *cfg = NULL;
    sluice_error err = {0};
    ASSERT_EQ(sluice_config_load_string(&cfg, y, strlen(y), "t.yaml", &err), 0);
    sluice__rls *r = NULL;
    const char *p[] = {UP "/test-config/basic_config.yaml"};
    ASSERT_EQ(sluice__rls_load(&r, p, 1, &err), 0);
    sluice_store *st = NULL;
    sluice_async *a = NULL;
    ASSERT_EQ(sluice_store_open(&st, "memory://", NULL, &err), 0);
    ASSERT_EQ(sluice_async_new(&a, st, NULL, &err), 0);

    sluice__rls_descriptor d[3];
    memset(d, 0, sizeof(d));
    d[0].nentries = d[1].nentries = d[2].nentries = 1;
    d[0].entries[0] = (sluice__rls_entry){"key2", 4, "a", 1};  /* 20/min */
    d[1].entries[0] = (sluice__rls_entry){"key4", 4, "a", 1};  /* 1/day, key4_rate_limit */
    d[2].entries[0] = (sluice__rls_entry){"key6", 4, "a", 1};  /* unlimited */
    sluice__rls_request req = {.domain = "test-domain", .domain_len = 11, .ndescriptors = 3,
                               .descriptors = d};
    ASSERT_EQ(sluice__rls_decide_async_at(a, r, cfg, &req, NOW, on_reply, NULL), 0);
    hs h = {.stop_at = -1};
    ASSERT_EQ(sluice__rls_headers(cfg, &last, collect, &h), 0);
    /* allowed: key4 has the least remaining (0) */
    ASSERT_STREQ(get(&h, "X-RateLimit-Limit"), "1");
    ASSERT_STREQ(get(&h, "X-RateLimit-Remaining"), "0");
    ASSERT_STREQ(get(&h, "X-RateLimit-Reset"), "1700006400"); /* the day's end, epoch s */
    ASSERT(get(&h, "Retry-After") == NULL);
    ASSERT_STREQ(get(&h, "RateLimit-Policy"), "\"key4_rate_limit\";q=1;w=86400");
    ASSERT_STREQ(get(&h, "RateLimit"), "\"key4_rate_limit\";r=0;t=6348");
    /* over: key4 decides, with Retry-After */
    ASSERT_EQ(sluice__rls_decide_async_at(a, r, cfg, &req, NOW, on_reply, NULL), 0);
    ASSERT_EQ(last.overall_code, SLUICE_RLS_OVER_LIMIT);
    memset(&h, 0, sizeof(h));
    h.stop_at = -1;
    cfg->headers = SLUICE_HEADERS_LEGACY;
    ASSERT_EQ(sluice__rls_headers(cfg, &last, collect, &h), 0);
    ASSERT_EQ(h.n, 4);
    ASSERT_STREQ(get(&h, "Retry-After"), "6348");
    /* only key2: allowed, unnamed limit: "descriptor-0" */
    req.ndescriptors = 1;
    ASSERT_EQ(sluice__rls_decide_async_at(a, r, cfg, &req, NOW, on_reply, NULL), 0);
    memset(&h, 0, sizeof(h));
    h.stop_at = -1;
    cfg->headers = SLUICE_HEADERS_IETF;
    ASSERT_EQ(sluice__rls_headers(cfg, &last, collect, &h), 0);
    ASSERT_EQ(h.n, 2);
    ASSERT_STREQ(get(&h, "RateLimit-Policy"), "\"descriptor-0\";q=20;w=60");
    ASSERT_STREQ(get(&h, "RateLimit"), "\"descriptor-0\";r=17;t=48");
    /* none; and a callback that stops */
    cfg->headers = SLUICE_HEADERS_NONE;
    memset(&h, 0, sizeof(h));
    ASSERT_EQ(sluice__rls_headers(cfg, &last, collect, &h), 0);
    ASSERT_EQ(h.n, 0);
    cfg->headers = SLUICE_HEADERS_BOTH;
    memset(&h, 0, sizeof(h));
    h.stop_at = 1;
    ASSERT_EQ(sluice__rls_headers(cfg, &last, collect, &h), 7);
    ASSERT_EQ(h.n, 1);
    /* no limited descriptor: no header */
    req.descriptors = &d[2];
    ASSERT_EQ(sluice__rls_decide_async_at(a, r, cfg, &req, NOW, on_reply, NULL), 0);
    memset(&h, 0, sizeof(h));
    h.stop_at = -1;
    ASSERT_EQ(sluice__rls_headers(cfg, &last, collect, &h), 0);
    ASSERT_EQ(h.n, 0);

    sluice_async_free(a);
    sluice_store_close(st);
    sluice__rls_free(r);
    sluice_config_free(cfg);
}

int main(void)
{
    RUN(test_headers);
    return test_done();
}
