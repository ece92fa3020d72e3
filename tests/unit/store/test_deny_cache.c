/* SPDX-License-Identifier: MIT */
/*
 * test_deny_cache.c - the deny cache against the algorithms themselves
 * (src/core, which tests/vectors proves equal to sluice.lua): for random
 * keys, limit sets and costs, every answer predicted from a denial within
 * its horizon equals what the algorithm answers at that time with no other
 * traffic, and any other admitted traffic leaves it denied.  Then the clock
 * conversion's edges, and the table: matching, expiry, invalidation by an
 * admitted request, the size bound and LRU eviction.
 *
 * With SLUICE_REDIS_URL (tests/integ/test_deny_cache.sh starts the server)
 * also live, on the server's clock: a hot denied key on every algorithm and
 * a multi-limit rule, where every answer the cache gives must be denied at
 * the server time read just before it, and equal field by field to what
 * Redis answers for that request at the answer's now_ms.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>

#include "test.h"

#include "core/algo.h"
#include "store/redis/deny_cache.h"
#include "store/redis/redis_int.h"

static void assert_same(const sluice_decision *a, const sluice_decision *b)
{
    ASSERT_EQ(a->allowed, b->allowed);
    ASSERT_EQ(a->limit, b->limit);
    ASSERT_EQ(a->remaining, b->remaining);
    ASSERT_EQ(a->reset_after_ms, b->reset_after_ms);
    ASSERT_EQ(a->retry_after_ms, b->retry_after_ms);
    ASSERT_EQ(a->delay_ms, b->delay_ms);
    ASSERT_EQ(a->now_ms, b->now_ms);
    ASSERT_EQ(a->decided_by, b->decided_by);
    ASSERT_EQ(a->nlimits, b->nlimits);
    for (int i = 0; i < a->nlimits; i++) {
        const sluice_limit_decision *x = &a->limits[i], *y = &b->limits[i];
        ASSERT_EQ(x->allowed, y->allowed);
        ASSERT_EQ(x->limit, y->limit);
        ASSERT_EQ(x->remaining, y->remaining);
        ASSERT_EQ(x->reset_after_ms, y->reset_after_ms);
        ASSERT_EQ(x->retry_after_ms, y->retry_after_ms);
        ASSERT_EQ(x->delay_ms, y->delay_ms);
        ASSERT_EQ(x->window_ms, y->window_ms);
        ASSERT_EQ(x->algorithm, y->algorithm);
    }
}

static void random_limit(uint64_t *rs, sluice_limit *l)
{
    static const int64_t windows[] = {1, 7, 50, 100, 1000, 60000};
    l->algorithm = (int)test_range(rs, SLUICE_FIXED_WINDOW, SLUICE_LEAKY_BUCKET);
    l->limit = test_range(rs, 1, 12);
    l->window_ms = windows[test_range(rs, 0, 5)];
    l->burst = 0;
    if ((l->algorithm == SLUICE_TOKEN_BUCKET || l->algorithm == SLUICE_LEAKY_BUCKET) &&
        test_range(rs, 0, 1))
        l->burst = test_range(rs, 1, 15);
}

static void cells_copy(const sluice_limit *lims, int n, sluice__cell *dst, const sluice__cell *src)
{
    for (int i = 0; i < n; i++) {
        memset(&dst[i], 0, sizeof(dst[i]));
        ASSERT(sluice__algo_copy(&lims[i], &dst[i], &src[i]) == 0);
    }
}

static void cells_free(const sluice_limit *lims, int n, sluice__cell *c)
{
    for (int i = 0; i < n; i++)
        sluice__algo_release(&lims[i], &c[i]);
}

static int cached_by_alg[5], cases;

/* One random key: traffic, a denial, and its horizon checked ms by ms. */
static void oracle_case(uint64_t *rs)
{
    sluice_limit lims[3];
    int n = (int)test_range(rs, 1, 3);
    for (int i = 0; i < n; i++)
        random_limit(rs, &lims[i]);
    sluice__cell cells[3], tmp[3];
    memset(cells, 0, sizeof(cells));
    int64_t t = test_range(rs, 0, 10000000);
    int64_t wmax = 0;
    for (int i = 0; i < n; i++)
        wmax = lims[i].window_ms > wmax ? lims[i].window_ms : wmax;
    sluice_decision d0, d;
    int steps = (int)test_range(rs, 0, 40);
    for (int k = 0; k < steps; k++) {
        t += test_range(rs, 0, 1 + wmax / (test_range(rs, 1, 20)));
        ASSERT(sluice__decide_cells(lims, n, cells, t, test_range(rs, 1, 3), &d) == 0);
    }
    static const int64_t costs[] = {0, 1, 1, 1, 2, 3, 5};
    int64_t cost = costs[test_range(rs, 0, 6)];
    t += test_range(rs, 0, 3);
    cells_copy(lims, n, tmp, cells);
    ASSERT(sluice__decide_cells(lims, n, tmp, t, cost, &d0) == 0);
    cells_free(lims, n, tmp);
    int64_t h = sluice__deny_horizon(lims, n, cost, &d0);
    if (d0.allowed) {
        ASSERT_EQ(h, 0);
        goto out;
    }
    cases++;
    /* one limit, cost <= 1, a finite retry: cached for the whole denial */
    if (n == 1 && cost <= 1 && d0.retry_after_ms > 0)
        ASSERT_EQ(h, d0.retry_after_ms < SLUICE_DENY_CACHE_MAX_MS ? d0.retry_after_ms
                                                                  : SLUICE_DENY_CACHE_MAX_MS);
    if (h == 0)
        goto out;
    ASSERT(h > 0 && h <= SLUICE_DENY_CACHE_MAX_MS);
    cached_by_alg[lims[d0.decided_by].algorithm]++;
    for (int64_t dt = 0; dt < h; dt += dt < 300 ? 1 : test_range(rs, 1, h / 50 + 1)) {
        sluice_decision want, got;
        cells_copy(lims, n, tmp, cells);
        ASSERT(sluice__decide_cells(lims, n, tmp, t + dt, cost, &want) == 0);
        cells_free(lims, n, tmp);
        sluice__deny_predict(&d0, dt, &got);
        assert_same(&got, &want);
        /* other traffic admitted in between can only keep it denied */
        cells_copy(lims, n, tmp, cells);
        int64_t u = t + test_range(rs, 0, dt);
        ASSERT(sluice__decide_cells(lims, n, tmp, u, test_range(rs, 1, 4), &want) == 0);
        ASSERT(sluice__decide_cells(lims, n, tmp, t + dt, cost, &want) == 0);
        ASSERT(!want.allowed);
        cells_free(lims, n, tmp);
    }
out:
    cells_free(lims, n, cells);
}

static void test_oracle(void)
{
    uint64_t rs = test_seed();
    for (int i = 0; i < 4000; i++)
        oracle_case(&rs);
    /* the random cases did reach every algorithm's cached path */
    ASSERT(cases > 1000);
    for (int a = 0; a < 5; a++)
        ASSERT(cached_by_alg[a] > 20);
}

/* Fields the reply does not pin down are not cached. */
static void test_uncacheable(void)
{
    sluice_limit l = {SLUICE_SLIDING_LOG, 10, 1000, 0};
    sluice__cell c;
    memset(&c, 0, sizeof(c));
    sluice_decision d;
    /* 8 admitted at 0..7: cost 5 is denied with remaining 2 != cost-1 */
    for (int i = 0; i < 8; i++)
        ASSERT(sluice__decide_cells(&l, 1, &c, i, 1, &d) == 0 && d.allowed);
    ASSERT(sluice__decide_cells(&l, 1, &c, 10, 5, &d) == 0 && !d.allowed);
    ASSERT_EQ(d.remaining, 2);
    ASSERT_EQ(sluice__deny_horizon(&l, 1, 5, &d), 0);
    /* cost 3 leaves remaining 2 = cost-1: cached until the first entry leaves */
    ASSERT(sluice__decide_cells(&l, 1, &c, 10, 3, &d) == 0 && !d.allowed);
    ASSERT_EQ(sluice__deny_horizon(&l, 1, 3, &d), 990);
    /* cost above the capacity: retry_after -1, never cached */
    ASSERT(sluice__decide_cells(&l, 1, &c, 10, 11, &d) == 0 && !d.allowed);
    ASSERT_EQ(d.retry_after_ms, -1);
    ASSERT_EQ(sluice__deny_horizon(&l, 1, 11, &d), 0);
    sluice__algo_release(&l, &c);
    /* an allowed decision is not a denial */
    sluice_limit f = {SLUICE_FIXED_WINDOW, 3, 1000, 0};
    memset(&c, 0, sizeof(c));
    ASSERT(sluice__decide_cells(&f, 1, &c, 0, 1, &d) == 0 && d.allowed);
    ASSERT_EQ(sluice__deny_horizon(&f, 1, 1, &d), 0);
    /* a reply that does not fit the limit (another limit's numbers) */
    for (int i = 0; i < 3; i++)
        sluice__decide_cells(&f, 1, &c, 1, 1, &d);
    ASSERT(!d.allowed);
    ASSERT(sluice__deny_horizon(&f, 1, 1, &d) > 0);
    sluice_limit f2 = {SLUICE_FIXED_WINDOW, 4, 1000, 0};
    ASSERT_EQ(sluice__deny_horizon(&f2, 1, 1, &d), 0);
    d.limits[0].remaining = -1;
    ASSERT_EQ(sluice__deny_horizon(&f, 1, 1, &d), 0);
}

static void test_clock(void)
{
    /* horizon 1 ms: the server may already read ts + 1 when the reply comes */
    ASSERT_EQ(sluice__deny_deadline_ns(5000, 1), INT64_MIN);
    ASSERT_EQ(sluice__deny_deadline_ns(5000, 0), INT64_MIN);
    /* h = 2: (2 - 1) ms * 1000/1001 after the send */
    ASSERT_EQ(sluice__deny_deadline_ns(5000, 2), 5000 + 999000);
    /* 1001 ms: 1000 ms of server time, less the drift margin */
    ASSERT_EQ(sluice__deny_deadline_ns(0, 1001), 999000999);
    /* capped at the longest trust */
    ASSERT_EQ(sluice__deny_deadline_ns(0, INT64_MAX),
              sluice__deny_deadline_ns(0, SLUICE_DENY_CACHE_MAX_MS));
    /* the server's earliest reading: ts until 1 ms (+ drift) after the reply */
    ASSERT_EQ(sluice__deny_server_ms(100, 1000, 999), -1);
    ASSERT_EQ(sluice__deny_server_ms(100, 1000, 1000), 100);
    ASSERT_EQ(sluice__deny_server_ms(100, 1000, 1000 + 1000000), 100);
    ASSERT_EQ(sluice__deny_server_ms(100, 1000, 1000 + 1001001), 100);
    ASSERT_EQ(sluice__deny_server_ms(100, 1000, 1000 + 1001002), 101);
    ASSERT_EQ(sluice__deny_server_ms(100, 0, 1000000000), 100 + 999);
    /* it never reaches the deadline's server time: lower < upper bound */
    for (int64_t h = 2; h < 5000; h += 7) {
        int64_t a = 123456789, b = a + 300000; /* a 0.3 ms round trip */
        int64_t dl = sluice__deny_deadline_ns(a, h);
        ASSERT(sluice__deny_server_ms(1000, b, dl) < 1000 + h);
    }
}

/* A denial of cost 1 on a 3 per second fixed window, as Redis answers it. */
static sluice_limit fw3 = {SLUICE_FIXED_WINDOW, 3, 1000, 0};

static sluice__op make_op(const char *key, const sluice_limit *lims, int n, int64_t cost,
                          int64_t now)
{
    sluice__op op = {key, strlen(key), lims, n, cost, now};
    return op;
}

static sluice_decision fw_denial(int64_t now)
{
    sluice__cell c;
    memset(&c, 0, sizeof(c));
    sluice_decision d;
    for (int i = 0; i < 4; i++)
        sluice__decide_cells(&fw3, 1, &c, now, 1, &d);
    ASSERT(!d.allowed);
    return d;
}

static void test_table(void)
{
    sluice__deny_cache *dc = sluice__deny_cache_new(0);
    ASSERT(dc);
    sluice_decision d = fw_denial(10200), out;
    sluice__op op = make_op("r:a", &fw3, 1, 1, 10200);
    ASSERT(!sluice__deny_cache_lookup(dc, &op, 0, &out));
    sluice__deny_cache_record(dc, &op, 0, 0, &d);
    ASSERT_EQ(sluice__deny_cache_entries(dc), 1);
    /* explicit times: hits from the denial's time until the window ends */
    op.now_ms = 10200;
    ASSERT(sluice__deny_cache_lookup(dc, &op, 0, &out));
    ASSERT_EQ(out.retry_after_ms, 800);
    op.now_ms = 10999;
    ASSERT(sluice__deny_cache_lookup(dc, &op, 0, &out));
    ASSERT_EQ(out.retry_after_ms, 1);
    ASSERT_EQ(out.now_ms, 10999);
    ASSERT(!out.allowed);
    op.now_ms = 10199; /* before the denial: Redis decides */
    ASSERT(!sluice__deny_cache_lookup(dc, &op, 0, &out));
    /* other cost, other limits, other key, server clock: not this entry */
    sluice__op o2 = make_op("r:a", &fw3, 1, 2, 10500);
    ASSERT(!sluice__deny_cache_lookup(dc, &o2, 0, &out));
    sluice_limit other = {SLUICE_FIXED_WINDOW, 3, 2000, 0};
    o2 = make_op("r:a", &other, 1, 1, 10500);
    ASSERT(!sluice__deny_cache_lookup(dc, &o2, 0, &out));
    o2 = make_op("r:b", &fw3, 1, 1, 10500);
    ASSERT(!sluice__deny_cache_lookup(dc, &o2, 0, &out));
    o2 = make_op("r:a", &fw3, 1, 1, SLUICE_NOW);
    ASSERT(!sluice__deny_cache_lookup(dc, &o2, 0, &out));
    /* the window's end: expired and dropped */
    op.now_ms = 11000;
    ASSERT(!sluice__deny_cache_lookup(dc, &op, 0, &out));
    ASSERT_EQ(sluice__deny_cache_entries(dc), 0);
    ASSERT_EQ(sluice__deny_cache_hits(dc), 2);

    /* an admitted request of this client on the key drops its entries */
    op.now_ms = 10200;
    sluice__deny_cache_record(dc, &op, 0, 0, &d);
    o2 = make_op("r:a", &fw3, 1, 2, 10200);
    sluice__deny_cache_record(dc, &o2, 0, 0, &d); /* cost 2, same numbers */
    ASSERT_EQ(sluice__deny_cache_entries(dc), 2);
    sluice_decision ok = d;
    ok.allowed = true;
    sluice__op peek = make_op("r:a", &fw3, 1, 0, 10300);
    sluice__deny_cache_record(dc, &peek, 0, 0, &ok); /* a peek consumes nothing */
    ASSERT_EQ(sluice__deny_cache_entries(dc), 2);
    sluice_limit tb = {SLUICE_TOKEN_BUCKET, 5, 1000, 0};
    sluice__op adm = make_op("r:a", &tb, 1, 1, 10300);
    sluice__deny_cache_record(dc, &adm, 0, 0, &ok);
    ASSERT_EQ(sluice__deny_cache_entries(dc), 0);

    /* the server's clock: a reply at local 1 s..1.0003 s carrying ts = 10200 */
    sluice__op so = make_op("r:s", &fw3, 1, 1, SLUICE_NOW);
    int64_t a = 1000000000, b = a + 300000;
    sluice__deny_cache_record(dc, &so, a, b, &d);
    ASSERT(sluice__deny_cache_lookup(dc, &so, b, &out));
    ASSERT_EQ(out.now_ms, 10200);
    ASSERT_EQ(out.retry_after_ms, 800);
    ASSERT(sluice__deny_cache_lookup(dc, &so, b + 500000000, &out));
    ASSERT_EQ(out.now_ms, 10200 + 499); /* 500 ms less the drift margin */
    int64_t dl = sluice__deny_deadline_ns(a, 800);
    ASSERT(sluice__deny_cache_lookup(dc, &so, dl, &out));
    ASSERT(out.retry_after_ms >= 1);
    ASSERT(!sluice__deny_cache_lookup(dc, &so, dl + 1, &out));
    ASSERT_EQ(sluice__deny_cache_entries(dc), 0);
    ASSERT(!sluice__deny_cache_lookup(dc, &so, b - 1, &out)); /* nothing cached */
    sluice__deny_cache_record(dc, &so, a, b, &d);
    ASSERT(!sluice__deny_cache_lookup(dc, &so, b - 1, &out)); /* before the reply */
    sluice__deny_cache_free(dc);
    uint64_t hits, entries;
    sluice__deny_cache_totals(&hits, &entries);
    ASSERT_EQ(entries, 0);
    ASSERT(hits >= 5);
}

static void test_bound(void)
{
    ASSERT(sluice__deny_cache_new(3) == NULL);          /* not a power of two */
    sluice__deny_cache *dc = sluice__deny_cache_new(1); /* one set of 4 ways */
    ASSERT(dc);
    sluice_decision d = fw_denial(0), out;
    char keys[6][8];
    sluice__op ops[6];
    for (int i = 0; i < 6; i++) {
        snprintf(keys[i], sizeof(keys[i]), "r:%d", i);
        ops[i] = make_op(keys[i], &fw3, 1, 1, 0);
    }
    for (int i = 0; i < 4; i++)
        sluice__deny_cache_record(dc, &ops[i], 0, 0, &d);
    ASSERT_EQ(sluice__deny_cache_entries(dc), 4);
    /* 0 used most recently, so 1 is the least recently used */
    ASSERT(sluice__deny_cache_lookup(dc, &ops[0], 0, &out));
    sluice__deny_cache_record(dc, &ops[4], 0, 0, &d);
    ASSERT_EQ(sluice__deny_cache_entries(dc), 4);
    ASSERT(!sluice__deny_cache_lookup(dc, &ops[1], 0, &out));
    ASSERT(sluice__deny_cache_lookup(dc, &ops[0], 0, &out));
    ASSERT(sluice__deny_cache_lookup(dc, &ops[4], 0, &out));
    /* re-recording the same request replaces its entry */
    sluice__deny_cache_record(dc, &ops[4], 0, 0, &d);
    ASSERT_EQ(sluice__deny_cache_entries(dc), 4);
    ASSERT(sluice__deny_cache_lookup(dc, &ops[2], 0, &out));
    /* a large table holds many keys, each on its own */
    sluice__deny_cache_free(dc);
    dc = sluice__deny_cache_new(0);
    char key[32];
    int held = 0;
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "r:%d", i);
        sluice__op op = make_op(key, &fw3, 1, 1, 0);
        sluice__deny_cache_record(dc, &op, 0, 0, &d);
    }
    ASSERT(sluice__deny_cache_entries(dc) <= SLUICE_DENY_CACHE_SETS * SLUICE_DENY_CACHE_WAYS);
    ASSERT(sluice__deny_cache_entries(dc) > SLUICE_DENY_CACHE_SETS * SLUICE_DENY_CACHE_WAYS / 2);
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "r:%d", i);
        sluice__op op = make_op(key, &fw3, 1, 1, 0);
        held += sluice__deny_cache_lookup(dc, &op, 0, &out);
    }
    ASSERT_EQ(held, (int)sluice__deny_cache_entries(dc));
    sluice__deny_cache_free(dc);
    sluice__deny_cache_free(NULL);
    ASSERT(!sluice__deny_cache_lookup(NULL, &ops[0], 0, &out));
}

/* ?deny_cache=on|off as the Redis stores read it (sluice__url_onoff). */
static void test_url_onoff(void)
{
    static const struct {
        const char *url;
        int rc;
        bool on;
    } urls[] = {
        {"redis://h:1", 0, true},
        {"redis://h:1?deny_cache=on", 0, true},
        {"redis://h:1?deny_cache=off", 0, false},
        {"redis://h:1?timeout_ms=5&deny_cache=off&x=1", 0, false},
        {"redis://h:1?deny_cachex=off", 0, true},
        {"redis://h:1?deny_cache=maybe", -1, true},
        {"redis://h:1?deny_cache=", -1, true},
        {"redis://h:1?deny_cache", -1, true},
        {"redis://h:1?deny_cache=offoffoffoff", -1, true},
        {"redis://h:1?deny_cache=%6Ff%66", 0, false},
    };
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        sluice__url u;
        sluice_error err = {0};
        ASSERT(sluice__url_parse(&u, urls[i].url, &err) == 0);
        bool on = !urls[i].on;
        ASSERT_EQ(sluice__url_onoff(&u, "deny_cache", true, &on), urls[i].rc);
        if (urls[i].rc == 0)
            ASSERT_EQ(on, urls[i].on);
        sluice__url_free(&u);
    }
}

/* ---- live, against redis-server ---------------------------------------- */

static void *live_open(const char *base, const char *params)
{
    char url[512];
    snprintf(url, sizeof(url), "%s?%s", base, params);
    sluice__url u;
    sluice_error err = {0};
    if (sluice__url_parse(&u, url, &err) != 0)
        test_fail(__FILE__, __LINE__, "url: %s", err.msg);
    void *impl = NULL;
    int rc = sluice__redis_ops.open(&impl, &u, NULL, &err);
    sluice__url_free(&u);
    if (rc != 0)
        test_fail(__FILE__, __LINE__, "open: %s", err.msg);
    return impl;
}

/* The server's TIME in ms, as sluice.lua reads it. */
static int64_t server_ms(redisContext *c)
{
    redisReply *r = redisCommand(c, "TIME");
    ASSERT(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    int64_t ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

static void live_spec(void *on, void *off, redisContext *rc, const char *key,
                      const sluice_limit *lims, int n)
{
    sluice__redis *r = on;
    sluice__op op = make_op(key, lims, n, 1, SLUICE_NOW);
    sluice_error err;
    int hits = 0, calls = 0, late = 0, expired = 0;
    int64_t stop = sluice__deny_cache_clock_ns() + 700000000; /* 0.7 s of traffic */
    while (sluice__deny_cache_clock_ns() < stop) {
        sluice_decision d, want;
        uint64_t h0 = sluice__deny_cache_hits(r->dc);
        int64_t t1 = server_ms(rc);
        ASSERT(sluice__redis_ops.decide(on, &op, &d, &err) == 0);
        int64_t t2 = server_ms(rc);
        calls++;
        if (sluice__deny_cache_hits(r->dc) == h0)
            continue;
        hits++;
        ASSERT(!d.allowed);
        ASSERT(d.retry_after_ms > 0);
        /* denied at the server time before it; now_ms never ahead of Redis */
        ASSERT(t1 < d.now_ms + d.retry_after_ms);
        ASSERT(d.now_ms <= t2);
        late += t2 >= d.now_ms + d.retry_after_ms;
        /* Redis's own answer at that time: the same in every field (a
         * denial consumes nothing, so asking does not change the key).
         * The keys expire on the server's real clock, at now_ms plus their
         * reset_after: a check that ran later (a descheduled test) would
         * find a key gone and is not counted. */
        sluice__op at = op;
        at.now_ms = d.now_ms;
        ASSERT(sluice__redis_ops.decide(off, &at, &want, &err) == 0);
        int64_t gone = INT64_MAX;
        for (int i = 0; i < d.nlimits; i++) {
            if (d.limits[i].reset_after_ms > 0 && d.now_ms + d.limits[i].reset_after_ms < gone)
                gone = d.now_ms + d.limits[i].reset_after_ms;
        }
        if (server_ms(rc) >= gone) {
            expired++;
            continue;
        }
        assert_same(&d, &want);
    }
    printf("  %s: %d decisions, %d answered by the cache (%d within a round trip of the end, "
           "%d not compared: a key expired before the check)\n",
           key, calls, hits, late, expired);
    ASSERT(hits > calls / 4);
    ASSERT(expired < hits / 2);
}

static void test_live(void)
{
    const char *base = getenv("SLUICE_REDIS_URL");
    if (!base) {
        printf("skipped: no redis\n");
        return;
    }
    void *on = live_open(base, "deny_cache=on&timeout_ms=2000");
    void *off = live_open(base, "deny_cache=off&timeout_ms=2000");
    ASSERT(((sluice__redis *)on)->dc != NULL);
    ASSERT(((sluice__redis *)off)->dc == NULL);
    sluice__url u;
    sluice_error err = {0};
    ASSERT(sluice__url_parse(&u, base, &err) == 0);
    redisContext *rc = redisConnect(u.hosts[0], u.ports[0]);
    sluice__url_free(&u);
    ASSERT(rc && !rc->err);
    sluice_limit one[5] = {
        {SLUICE_FIXED_WINDOW, 3, 100, 0},   {SLUICE_SLIDING_LOG, 3, 100, 0},
        {SLUICE_SLIDING_WINDOW, 3, 100, 0}, {SLUICE_TOKEN_BUCKET, 3, 100, 4},
        {SLUICE_LEAKY_BUCKET, 2, 60, 0},
    };
    char key[48];
    uint64_t run = (uint64_t)sluice__deny_cache_clock_ns();
    for (int a = 0; a < 5; a++) {
        snprintf(key, sizeof(key), "dc:%d:%" PRIu64, a, run);
        live_spec(on, off, rc, key, &one[a], 1);
    }
    sluice_limit multi[2] = {{SLUICE_TOKEN_BUCKET, 5, 100, 3}, {SLUICE_FIXED_WINDOW, 40, 300, 0}};
    snprintf(key, sizeof(key), "dc:m:%" PRIu64, run);
    live_spec(on, off, rc, key, multi, 2);
    redisFree(rc);
    sluice__redis_ops.close(on);
    sluice__redis_ops.close(off);
}

int main(void)
{
    RUN(test_oracle);
    RUN(test_uncacheable);
    RUN(test_clock);
    RUN(test_table);
    RUN(test_bound);
    RUN(test_url_onoff);
    RUN(test_live);
    return test_done();
}
