/* SPDX-License-Identifier: MIT */
/*
 * test_store.c - the generic store layer: on_store_error (allow, deny,
 * local) and shadow post-processing, on the blocking path and on the async
 * path, through a fake store whose failures the test switches on and off;
 * sluice_decide and sluice_decide_async with a loaded config; and a real
 * redis:// URL on a closed port, which must fail over per on_store_error.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "store/memory/memory.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "test.h"

/* ---- a fake store --------------------------------------------------------- */

typedef struct fake {
    sluice__memstore *mem; /* answers while status == 0 */
    int status;            /* what decide returns instead, when non-zero */
    int sync_status;       /* what decide_async returns at once, when non-zero */
    int npending;
    sluice__store_cb cb[8];
    void *arg[8];
    sluice_decision d[8];
    int dstatus[8];
} fake;

static fake the_fake;

static int fake_open(void **impl, const sluice__url *url, const sluice_store_options *opts,
                     sluice_error *err)
{
    (void)url;
    (void)opts;
    memset(&the_fake, 0, sizeof(the_fake));
    if (sluice__memory_open(&the_fake.mem, NULL, err) != 0)
        return SLUICE_ENOMEM;
    *impl = &the_fake;
    return 0;
}

static void fake_close(void *impl)
{
    fake *f = impl;
    sluice__memory_close(f->mem);
}

static int fake_decide(void *impl, const sluice__op *op, sluice_decision *out, sluice_error *err)
{
    fake *f = impl;
    if (f->status) {
        snprintf(err->msg, sizeof(err->msg), "fake store down");
        err->code = f->status;
        return f->status;
    }
    return sluice__memory_decide(f->mem, op, out, err);
}

static int fake_ping(void *impl, sluice_error *err)
{
    (void)err;
    return ((fake *)impl)->status;
}

static int fake_attach(void *impl, struct event_base *base, void **conn, sluice_error *err)
{
    (void)base;
    (void)err;
    *conn = impl;
    return 0;
}

/* Pending callbacks are canceled, as a real store does when detached. */
static void fake_detach(void *conn)
{
    fake *f = conn;
    for (int i = 0; i < f->npending; i++)
        f->cb[i](SLUICE_ECANCELED, NULL, f->arg[i]);
    f->npending = 0;
}

/* Decides at once but answers only when the test calls fake_complete(). */
static int fake_decide_async(void *conn, const sluice__op *op, sluice__store_cb cb, void *arg)
{
    fake *f = conn;
    if (f->sync_status)
        return f->sync_status;
    if (f->npending == 8)
        return SLUICE_ENOMEM;
    int i = f->npending++;
    sluice_error err;
    f->dstatus[i] = fake_decide(f, op, &f->d[i], &err);
    f->cb[i] = cb;
    f->arg[i] = arg;
    return 0;
}

static void fake_complete(void)
{
    fake *f = &the_fake;
    for (int i = 0; i < f->npending; i++)
        f->cb[i](f->dstatus[i], f->dstatus[i] ? NULL : &f->d[i], f->arg[i]);
    f->npending = 0;
}

static const sluice__store_ops fake_ops = {
    .scheme = "fake",
    .open = fake_open,
    .close = fake_close,
    .decide = fake_decide,
    .ping = fake_ping,
};

static const sluice__store_ops fake_async_ops = {
    .scheme = "fake",
    .open = fake_open,
    .close = fake_close,
    .decide = fake_decide,
    .ping = fake_ping,
    .attach = fake_attach,
    .detach = fake_detach,
    .decide_async = fake_decide_async,
};

static sluice_store *open_fake(const sluice__store_ops *ops, int on_store_error)
{
    sluice_store *s = NULL;
    sluice_error err;
    sluice_store_options o = {.on_store_error = on_store_error};
    /* the URL is parsed but the fake ignores it */
    if (sluice__store_open_ops(&s, ops, "redis://127.0.0.1:1", &o, &err) != 0)
        test_fail(__FILE__, __LINE__, "open: %s", err.msg);
    return s;
}

static const sluice_limit two[2] = {{SLUICE_FIXED_WINDOW, 5, 60000, 0},
                                    {SLUICE_TOKEN_BUCKET, 3, 60000, 7}};

static sluice__op op_of(const char *key, const sluice_limit *lims, int n, int64_t cost, int64_t now)
{
    return (sluice__op){.key = key,
                        .key_len = strlen(key),
                        .limits = lims,
                        .nlimits = n,
                        .cost = cost,
                        .now_ms = now};
}

/* ---- blocking path ------------------------------------------------------- */

static void test_fail_open(void)
{
    sluice_store *s = open_fake(&fake_ops, SLUICE_FAIL_OPEN);
    sluice__op op = op_of("r:k", two, 2, 1, 5000);
    sluice_decision d;
    sluice_error err;
    for (int st = 0; st < 2; st++) {
        the_fake.status = st ? SLUICE_ETIMEOUT : SLUICE_ESTORE;
        memset(&d, 0xff, sizeof(d));
        ASSERT_EQ(sluice__store_decide_op(s, &op, false, &d, &err), 0);
        ASSERT(d.allowed && d.store_error && !d.shadow_denied);
        ASSERT_EQ(d.nlimits, 2);
        ASSERT_EQ(d.limits[0].limit, 5);
        ASSERT_EQ(d.limits[0].remaining, 5);
        ASSERT_EQ(d.limits[1].limit, 7); /* the burst is a bucket's capacity */
        ASSERT_EQ(d.limits[1].remaining, 7);
        ASSERT_EQ(d.limits[1].window_ms, 60000);
        ASSERT_EQ(d.limits[1].algorithm, SLUICE_TOKEN_BUCKET);
        ASSERT_EQ(d.decided_by, 0); /* least remaining */
        ASSERT_EQ(d.remaining, 5);
        ASSERT_EQ(d.retry_after_ms, 0);
        ASSERT_EQ(d.now_ms, 5000);
        ASSERT_CONTAINS(err.msg, "fake store down"); /* the cause is kept */
    }
    ASSERT_EQ(sluice_store_ping(s, &err), SLUICE_ETIMEOUT);
    /* other errors are not store failures: no decision */
    the_fake.status = SLUICE_EINVAL;
    ASSERT_EQ(sluice__store_decide_op(s, &op, false, &d, &err), SLUICE_EINVAL);
    the_fake.status = SLUICE_ENOMEM;
    ASSERT_EQ(sluice__store_decide_op(s, &op, true, &d, &err), SLUICE_ENOMEM);
    /* the store is back: real decisions, no store_error */
    the_fake.status = 0;
    ASSERT_EQ(sluice__store_decide_op(s, &op, false, &d, &err), 0);
    ASSERT(d.allowed && !d.store_error);
    ASSERT_EQ(d.limits[0].remaining, 4);
    ASSERT_EQ(sluice_store_ping(s, &err), 0);
    ASSERT_EQ(sluice_store_keys(s), 0); /* no keys(), no local fallback */
    sluice_store_close(s);
}

static void test_fail_closed(void)
{
    sluice_store *s = open_fake(&fake_ops, SLUICE_FAIL_CLOSED);
    sluice__op op = op_of("r:k", two, 2, 1, SLUICE_NOW);
    sluice_decision d;
    sluice_error err;
    the_fake.status = SLUICE_ESTORE;
    ASSERT_EQ(sluice__store_decide_op(s, &op, false, &d, &err), 0);
    ASSERT(!d.allowed && d.store_error && !d.shadow_denied);
    ASSERT_EQ(d.retry_after_ms, 1000);
    ASSERT_EQ(d.remaining, 0);
    ASSERT(!d.limits[0].allowed && !d.limits[1].allowed);
    ASSERT_EQ(d.limits[1].retry_after_ms, 1000);
    ASSERT(d.now_ms > 1600000000000LL); /* SLUICE_NOW: the process clock */
    /* shadow comes after on_store_error: never deny */
    ASSERT_EQ(sluice__store_decide_op(s, &op, true, &d, &err), 0);
    ASSERT(d.allowed && d.store_error && d.shadow_denied);
    ASSERT_EQ(d.retry_after_ms, 0);
    ASSERT(!d.limits[0].allowed);
    sluice_store_close(s);
}

static void test_fail_local(void)
{
    sluice_store *s = open_fake(&fake_ops, SLUICE_FAIL_LOCAL);
    const sluice_limit fw = {SLUICE_FIXED_WINDOW, 3, 60000, 0};
    sluice__op op = op_of("r:k", &fw, 1, 1, 1000);
    sluice_decision d;
    sluice_error err;
    the_fake.status = SLUICE_ESTORE;
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(sluice__store_decide_op(s, &op, false, &d, &err), 0);
        ASSERT(d.allowed && d.store_error);
        ASSERT_EQ(d.remaining, 2 - i);
    }
    ASSERT_EQ(sluice__store_decide_op(s, &op, false, &d, &err), 0);
    ASSERT(!d.allowed && d.store_error);
    ASSERT_EQ(d.retry_after_ms, 59000);
    ASSERT_EQ(sluice_store_keys(s), 1); /* the local fallback's keys */
    /* shadow over a local denial */
    ASSERT_EQ(sluice__store_decide_op(s, &op, true, &d, &err), 0);
    ASSERT(d.allowed && d.shadow_denied && d.store_error);
    /* the store is back: its own (fresh) state decides */
    the_fake.status = 0;
    ASSERT_EQ(sluice__store_decide_op(s, &op, false, &d, &err), 0);
    ASSERT(d.allowed && !d.store_error);
    ASSERT_EQ(d.remaining, 2);
    sluice_store_close(s);
}

static void test_shadow(void)
{
    sluice_store *s = open_fake(&fake_ops, SLUICE_FAIL_OPEN);
    const sluice_limit fw = {SLUICE_FIXED_WINDOW, 1, 60000, 0};
    sluice__op op = op_of("r:k", &fw, 1, 1, 1000);
    sluice_decision d;
    sluice_error err;
    ASSERT_EQ(sluice__store_decide_op(s, &op, true, &d, &err), 0);
    ASSERT(d.allowed && !d.shadow_denied);
    ASSERT_EQ(sluice__store_decide_op(s, &op, true, &d, &err), 0);
    ASSERT(d.allowed && d.shadow_denied && !d.store_error);
    ASSERT_EQ(d.retry_after_ms, 0);
    ASSERT(!d.limits[0].allowed); /* the limit's own verdict stays */
    ASSERT_EQ(d.limits[0].retry_after_ms, 59000);
    ASSERT_EQ(sluice__store_decide_op(s, &op, false, &d, &err), 0);
    ASSERT(!d.allowed && !d.shadow_denied);
    ASSERT_EQ(d.retry_after_ms, 59000);
    sluice_store_close(s);
}

/* ---- with a config --------------------------------------------------------- */

static const char yaml[] = "store: memory://\n"
                           "rules:\n"
                           "  - name: api\n"
                           "    match: { path: /api }\n"
                           "    limits:\n"
                           "      - { algorithm: fixed_window, limit: 2, window: 1m }\n"
                           "  - name: dry\n"
                           "    match: { path: /dry }\n"
                           "    shadow: true\n"
                           "    limits:\n"
                           "      - { algorithm: token_bucket, limit: 1, window: 1m }\n";

static sluice_config *load(const char *text)
{
    sluice_config *cfg = NULL;
    sluice_error err;
    if (sluice_config_load_string(&cfg, text, strlen(text), "test.yaml", &err) != 0)
        test_fail(__FILE__, __LINE__, "config: %s", err.msg);
    return cfg;
}

static void match(const sluice_config *cfg, const char *rule, const char *key, sluice_match *m)
{
    sluice_error err;
    if (sluice_config_match_rule(cfg, rule, NULL, key, strlen(key), m, &err) != 0)
        test_fail(__FILE__, __LINE__, "match: %s", err.msg);
}

static void test_decide_config(void)
{
    sluice_config *cfg = load(yaml);
    sluice_store *s = NULL;
    sluice_error err;
    ASSERT_EQ(sluice_store_open(&s, sluice_config_store_url(cfg), NULL, &err), 0);
    sluice_match m, dry;
    match(cfg, "api", "ip:10.0.0.1", &m);
    match(cfg, "dry", "ip:10.0.0.1", &dry);
    sluice_decision d;
    ASSERT_EQ(sluice_decide(s, cfg, &m, 1, 1000, &d, &err), 0);
    ASSERT(d.allowed);
    ASSERT_EQ(d.remaining, 1);
    ASSERT_EQ(sluice_decide(s, cfg, &m, 1, 1000, &d, &err), 0);
    ASSERT_EQ(sluice_decide(s, cfg, &m, 1, 1000, &d, &err), 0);
    ASSERT(!d.allowed && !d.shadow_denied);
    ASSERT_EQ(d.retry_after_ms, 59000);
    /* the key is "<rule>:<identifier>": another rule, same identifier, own state */
    ASSERT_EQ(sluice_decide(s, cfg, &dry, 1, 1000, &d, &err), 0);
    ASSERT(d.allowed && !d.shadow_denied);
    ASSERT_EQ(sluice_decide(s, cfg, &dry, 1, 1000, &d, &err), 0);
    ASSERT(d.allowed && d.shadow_denied);
    ASSERT_EQ(sluice_store_keys(s), 2);

    /* bad arguments */
    ASSERT_EQ(sluice_decide(s, cfg, &m, -1, 1000, &d, &err), SLUICE_EINVAL);
    ASSERT_EQ(sluice_decide(s, cfg, &m, SLUICE_COST_MAX + 1, 1000, &d, &err), SLUICE_EINVAL);
    ASSERT_EQ(sluice_decide(NULL, cfg, &m, 1, 1000, &d, &err), SLUICE_EINVAL);
    ASSERT_EQ(sluice_decide(s, NULL, &m, 1, 1000, &d, &err), SLUICE_EINVAL);
    ASSERT_EQ(sluice_decide(s, cfg, NULL, 1, 1000, &d, &err), SLUICE_EINVAL);
    ASSERT_EQ(sluice_decide(s, cfg, &m, 1, 1000, NULL, &err), SLUICE_EINVAL);
    sluice_match bad = m;
    bad.key_len = 0;
    ASSERT_EQ(sluice_decide(s, cfg, &bad, 1, 1000, &d, &err), SLUICE_EKEY);
    bad = m;
    bad.rule_index = 99;
    ASSERT_EQ(sluice_decide(s, cfg, &bad, 1, 1000, &d, &err), SLUICE_ENORULE);

    /* top-level shadow: every rule */
    char all[sizeof(yaml) + 32];
    snprintf(all, sizeof(all), "shadow: true\n%s", yaml);
    sluice_config *cfg2 = load(all);
    match(cfg2, "api", "ip:10.0.0.1", &m); /* api's state in s: already denied */
    ASSERT_EQ(sluice_decide(s, cfg2, &m, 1, 1000, &d, &err), 0);
    ASSERT(d.allowed && d.shadow_denied);
    sluice_config_free(cfg2);
    sluice_store_close(s);
    sluice_config_free(cfg);
}

/* ---- async path ------------------------------------------------------------ */

typedef struct {
    int calls;
    int status;
    sluice_decision d;
} result;

static void on_done(int status, const sluice_decision *d, void *arg)
{
    result *r = arg;
    r->calls++;
    r->status = status;
    if (d)
        r->d = *d;
    else
        memset(&r->d, 0, sizeof(r->d));
}

static void test_async_inline(void)
{
    sluice_config *cfg = load(yaml);
    sluice_store *s = NULL;
    sluice_error err;
    ASSERT_EQ(sluice_store_open(&s, "memory://", NULL, &err), 0);
    sluice_async *a = NULL;
    ASSERT_EQ(sluice_async_new(&a, s, NULL, &err), 0); /* memory: no loop needed */
    sluice_match m;
    match(cfg, "dry", "user:7", &m);
    result r = {0};
    ASSERT_EQ(sluice_decide_async(a, cfg, &m, 1, 1000, on_done, &r), 0);
    ASSERT_EQ(r.calls, 1); /* before returning */
    ASSERT(r.d.allowed && !r.d.shadow_denied);
    ASSERT_EQ(sluice_decide_async(a, cfg, &m, 1, 1000, on_done, &r), 0);
    ASSERT_EQ(r.calls, 2);
    ASSERT(r.d.allowed && r.d.shadow_denied);
    /* a negative return: the callback never runs */
    ASSERT_EQ(sluice_decide_async(a, cfg, &m, -1, 1000, on_done, &r), SLUICE_EINVAL);
    ASSERT_EQ(sluice_decide_async(a, cfg, &m, 1, -1, on_done, &r), SLUICE_EINVAL);
    ASSERT_EQ(sluice_decide_async(a, cfg, &m, 1, 1000, NULL, &r), SLUICE_EINVAL);
    ASSERT_EQ(r.calls, 2);
    sluice_async_free(a);
    ASSERT_EQ(sluice_async_new(NULL, s, NULL, &err), SLUICE_EINVAL);
    sluice_store_close(s);
    sluice_config_free(cfg);
}

static void test_async_store(void)
{
    sluice_config *cfg = load(yaml);
    sluice_store *s = open_fake(&fake_async_ops, SLUICE_FAIL_CLOSED);
    sluice_error err;
    sluice_async *a = NULL;
    ASSERT_EQ(sluice_async_new(&a, s, NULL, &err), SLUICE_EINVAL); /* needs a loop */
    ASSERT_EQ(sluice_async_new(&a, s, (struct event_base *)&err, &err), 0);
    sluice_match m, dry;
    match(cfg, "api", "ip:1", &m);
    match(cfg, "dry", "ip:1", &dry);
    result r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
    ASSERT_EQ(sluice_decide_async(a, cfg, &m, 1, 1000, on_done, &r1), 0);
    the_fake.status = SLUICE_ESTORE; /* the next one fails in the store */
    ASSERT_EQ(sluice_decide_async(a, cfg, &m, 1, 1000, on_done, &r2), 0);
    ASSERT_EQ(sluice_decide_async(a, cfg, &dry, 1, 1000, on_done, &r3), 0);
    ASSERT_EQ(r1.calls + r2.calls + r3.calls, 0); /* pending */
    fake_complete();
    ASSERT_EQ(r1.calls, 1);
    ASSERT(r1.status == 0 && r1.d.allowed && !r1.d.store_error);
    ASSERT_EQ(r1.d.remaining, 1);
    ASSERT(r2.status == 0 && !r2.d.allowed && r2.d.store_error); /* deny */
    ASSERT_EQ(r2.d.retry_after_ms, 1000);
    ASSERT(r3.status == 0 && r3.d.allowed && r3.d.store_error && r3.d.shadow_denied);

    /* the store refuses at once: on_store_error decides before returning */
    the_fake.sync_status = SLUICE_ETIMEOUT;
    ASSERT_EQ(sluice_decide_async(a, cfg, &m, 1, 1000, on_done, &r4), 0);
    ASSERT_EQ(r4.calls, 1);
    ASSERT(!r4.d.allowed && r4.d.store_error);
    /* any other refusal: negative, and the callback never runs */
    the_fake.sync_status = SLUICE_ENOMEM;
    ASSERT_EQ(sluice_decide_async(a, cfg, &m, 1, 1000, on_done, &r4), SLUICE_ENOMEM);
    ASSERT_EQ(r4.calls, 1);

    /* freeing the handle cancels what is pending */
    the_fake.sync_status = 0;
    the_fake.status = 0;
    result r5 = {0};
    ASSERT_EQ(sluice_decide_async(a, cfg, &m, 1, 1000, on_done, &r5), 0);
    sluice_async_free(a);
    ASSERT_EQ(r5.calls, 1);
    ASSERT_EQ(r5.status, SLUICE_ECANCELED);
    sluice_store_close(s);
    sluice_config_free(cfg);
}

/* ---- a real Redis URL on a closed port ------------------------------------ */

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    ASSERT(fd >= 0);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd); /* nothing listens there now */
    return ntohs(sa.sin_port);
}

static void redis_down(const char *scheme, int port)
{
    sluice_config *cfg = load(yaml);
    sluice_match m;
    match(cfg, "api", "ip:9", &m);
    char url[64];
    snprintf(url, sizeof(url), "%s://u:hunter2@127.0.0.1:%d", scheme, port);
    const int modes[] = {SLUICE_FAIL_OPEN, SLUICE_FAIL_CLOSED, SLUICE_FAIL_LOCAL};
    for (int i = 0; i < 3; i++) {
        sluice_store *s = NULL;
        sluice_error err;
        sluice_store_options o = {.timeout_ms = 50, .on_store_error = modes[i]};
        int rc = sluice_store_open(&s, url, &o, &err);
        if (rc != 0)
            test_fail(__FILE__, __LINE__, "%s: %s", url, err.msg); /* still opens */
        ASSERT(sluice_store_ping(s, &err) < 0);
        if (strstr(err.msg, "hunter2"))
            test_fail(__FILE__, __LINE__, "password in message: %s", err.msg);
        sluice_decision d;
        for (int j = 0; j < 3; j++) {
            ASSERT_EQ(sluice_decide(s, cfg, &m, 1, 1000, &d, &err), 0);
            ASSERT(d.store_error);
            ASSERT_EQ(d.allowed,
                      modes[i] == SLUICE_FAIL_OPEN || (modes[i] == SLUICE_FAIL_LOCAL && j < 2));
            if (strstr(err.msg, "hunter2"))
                test_fail(__FILE__, __LINE__, "password in message: %s", err.msg);
        }
        ASSERT_EQ(sluice_store_keys(s), modes[i] == SLUICE_FAIL_LOCAL ? 1 : 0);
        sluice_store_close(s);
    }
    sluice_config_free(cfg);
}

static void test_redis_down(void)
{
    redis_down("redis", closed_port());
}

static void test_cluster_down(void)
{
    redis_down("redis+cluster", closed_port());
}

/* The async path over a real loop: the store's failure reaches the callback
 * as an on_store_error decision. */
static void async_down(const char *scheme, int mode)
{
    sluice_config *cfg = load(yaml);
    sluice_match m;
    match(cfg, "dry", "ip:3", &m); /* shadow: even deny is allowed */
    sluice_match api;
    match(cfg, "api", "ip:3", &api);
    char url[64];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d", scheme, closed_port());
    sluice_store *s = NULL;
    sluice_error err;
    sluice_store_options o = {.timeout_ms = 50, .on_store_error = mode};
    ASSERT_EQ(sluice_store_open(&s, url, &o, &err), 0);
    struct event_base *base = event_base_new();
    ASSERT(base != NULL);
    sluice_async *a = NULL;
    if (sluice_async_new(&a, s, base, &err) != 0)
        test_fail(__FILE__, __LINE__, "async_new %s: %s", url, err.msg);
    result r1 = {0}, r2 = {0};
    ASSERT_EQ(sluice_decide_async(a, cfg, &api, 1, 1000, on_done, &r1), 0);
    ASSERT_EQ(sluice_decide_async(a, cfg, &m, 1, 1000, on_done, &r2), 0);
    for (int i = 0; i < 300 && r1.calls + r2.calls < 2; i++) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    ASSERT_EQ(r1.calls, 1);
    ASSERT_EQ(r2.calls, 1);
    ASSERT_EQ(r1.status, 0);
    ASSERT(r1.d.store_error);
    ASSERT_EQ(r1.d.allowed, mode != SLUICE_FAIL_CLOSED);
    ASSERT(r2.d.store_error && r2.d.allowed);
    ASSERT_EQ(r2.d.shadow_denied, mode == SLUICE_FAIL_CLOSED);
    sluice_async_free(a);
    event_base_free(base);
    sluice_store_close(s);
    sluice_config_free(cfg);
}

static void test_async_redis_down(void)
{
    const int modes[] = {SLUICE_FAIL_OPEN, SLUICE_FAIL_CLOSED, SLUICE_FAIL_LOCAL};
    for (int i = 0; i < 3; i++) {
        async_down("redis", modes[i]);
        async_down("redis+cluster", modes[i]);
    }
}

/* Explicit times up to SLUICE_TIME_MAX_MS decide, with the longest windows
 * (no overflow: the ASan+UBSan build checks); later ones are refused.
 * replay passed any int64 time: 2^63-1 on a 366-day sliding window
 * overflowed the end of the next window (found by fuzz_replay). */
static void test_time_bound(void)
{
    sluice_config *cfg = load("rules:\n"
                              "  - name: far\n"
                              "    limits:\n"
                              "      - { algorithm: sliding_window, limit: 142418, window: 366d }\n"
                              "      - { algorithm: fixed_window, limit: 3, window: 366d }\n"
                              "      - { algorithm: sliding_log, limit: 10000, window: 366d }\n"
                              "      - { algorithm: token_bucket, limit: 1000000000, "
                              "window: 4503599ms }\n"
                              "      - { algorithm: leaky_bucket, limit: 5, window: 366d }\n");
    sluice_store *s = NULL;
    sluice_error err;
    ASSERT_EQ(sluice_store_open(&s, "memory://", NULL, &err), 0);
    sluice_match m;
    match(cfg, "far", "k", &m);
    sluice_decision d;
    ASSERT_EQ(sluice_decide(s, cfg, &m, 1, SLUICE_TIME_MAX_MS - 1, &d, &err), 0);
    ASSERT_EQ(sluice_decide(s, cfg, &m, 1, SLUICE_TIME_MAX_MS, &d, &err), 0);
    ASSERT(d.allowed);
    ASSERT_EQ(sluice_decide(s, cfg, &m, 1, SLUICE_TIME_MAX_MS + 1, &d, &err), SLUICE_EINVAL);
    ASSERT_EQ(sluice_decide(s, cfg, &m, 1, INT64_MAX, &d, &err), SLUICE_EINVAL);
    ASSERT_EQ(sluice_decide(s, cfg, &m, 1, -1, &d, &err), SLUICE_EINVAL);
    sluice_store_close(s);
    sluice_config_free(cfg);
}

int main(void)
{
    RUN(test_fail_open);
    RUN(test_fail_closed);
    RUN(test_fail_local);
    RUN(test_shadow);
    RUN(test_decide_config);
    RUN(test_time_bound);
    RUN(test_async_inline);
    RUN(test_async_store);
    RUN(test_redis_down);
    RUN(test_cluster_down);
    RUN(test_async_redis_down);
    return test_done();
}
