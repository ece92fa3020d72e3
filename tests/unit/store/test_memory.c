/* SPDX-License-Identifier: MIT */
/*
 * test_memory.c - the embedded store: decisions equal the pure algorithm on
 * the same cells, idle keys are dropped (after a decision, by the sweep),
 * max_keys evicts the least recently used key, limit sets are all or
 * nothing, a changed rule resets a key, and allocation failures change
 * nothing.  Explicit now_ms everywhere, so every result is exact.
 */
#include "core/algo.h"
#include "store/memory/memory.h"
#include "store/store.h"
#include "test.h"

static sluice__memstore *open_mem(const char *url)
{
    sluice__url u;
    sluice_error err;
    sluice__memstore *m = NULL;
    if (sluice__url_parse(&u, url, &err) != 0)
        test_fail(__FILE__, __LINE__, "url %s: %s", url, err.msg);
    if (sluice__memory_open(&m, &u, &err) != 0)
        test_fail(__FILE__, __LINE__, "open %s: %s", url, err.msg);
    sluice__url_free(&u);
    return m;
}

static int decide(sluice__memstore *m, const char *key, const sluice_limit *lims, int n,
                  int64_t cost, int64_t now, sluice_decision *d)
{
    sluice__op op = {.key = key,
                     .key_len = strlen(key),
                     .limits = lims,
                     .nlimits = n,
                     .cost = cost,
                     .now_ms = now};
    sluice_error err;
    memset(d, 0, sizeof(*d));
    return sluice__memory_decide(m, &op, d, &err);
}

static void same_decision(const sluice_decision *a, const sluice_decision *b, int step)
{
    if (a->allowed != b->allowed || a->limit != b->limit || a->remaining != b->remaining ||
        a->reset_after_ms != b->reset_after_ms || a->retry_after_ms != b->retry_after_ms ||
        a->delay_ms != b->delay_ms || a->now_ms != b->now_ms || a->decided_by != b->decided_by ||
        a->nlimits != b->nlimits)
        test_fail(__FILE__, __LINE__,
                  "step %d: store %d/%lld/%lld/%lld/%lld != direct %d/%lld/%lld/%lld/%lld", step,
                  a->allowed, (long long)a->limit, (long long)a->remaining,
                  (long long)a->reset_after_ms, (long long)a->retry_after_ms, b->allowed,
                  (long long)b->limit, (long long)b->remaining, (long long)b->reset_after_ms,
                  (long long)b->retry_after_ms);
    for (int i = 0; i < a->nlimits; i++) {
        const sluice_limit_decision *x = &a->limits[i], *y = &b->limits[i];
        if (x->allowed != y->allowed || x->limit != y->limit || x->remaining != y->remaining ||
            x->reset_after_ms != y->reset_after_ms || x->retry_after_ms != y->retry_after_ms ||
            x->delay_ms != y->delay_ms || x->window_ms != y->window_ms ||
            x->algorithm != y->algorithm)
            test_fail(__FILE__, __LINE__, "step %d: limit %d differs", step, i);
    }
}

/* The limit sets the random tests draw from: each algorithm, and a mix. */
static const sluice_limit sets[][3] = {
    {{SLUICE_FIXED_WINDOW, 5, 1000, 0}},
    {{SLUICE_SLIDING_WINDOW, 7, 1000, 0}},
    {{SLUICE_TOKEN_BUCKET, 3, 1000, 6}},
    {{SLUICE_LEAKY_BUCKET, 4, 1000, 4}},
    {{SLUICE_SLIDING_LOG, 6, 700, 0}},
    {{SLUICE_TOKEN_BUCKET, 10, 1000, 10},
     {SLUICE_FIXED_WINDOW, 20, 10000, 0},
     {SLUICE_SLIDING_LOG, 15, 3000, 0}},
};
static const int set_n[] = {1, 1, 1, 1, 1, 3};
#define NSETS 6
#define NKEYS 40

/* Random traffic on 40 keys, each with a fixed limit set; the store's answer
 * must equal sluice__decide_cells on cells the test keeps itself. */
static void test_matches_direct(void)
{
    uint64_t seed = test_seed(), st = seed;
    sluice__memstore *m = open_mem("memory://?shards=4");
    sluice__cell mirror[NKEYS][3];
    memset(mirror, 0, sizeof(mirror));
    int64_t now = 1000000;
    for (int step = 0; step < 50000; step++) {
        int k = (int)test_range(&st, 0, NKEYS - 1);
        int set = k % NSETS;
        int64_t cost = test_range(&st, 0, 3);
        if (test_range(&st, 0, 50) == 0)
            cost = test_range(&st, 0, 30);
        now += test_range(&st, 0, 3) == 0 ? test_range(&st, 0, 400) : 0;
        char key[32];
        snprintf(key, sizeof(key), "rule:k%d", k);
        sluice_decision a, b;
        ASSERT_EQ(decide(m, key, sets[set], set_n[set], cost, now, &a), 0);
        memset(&b, 0, sizeof(b));
        ASSERT_EQ(sluice__decide_cells(sets[set], set_n[set], mirror[k], now, cost, &b), 0);
        same_decision(&a, &b, step);
        /* the store holds exactly the keys whose cells are not idle */
        if (step % 997 == 0) {
            size_t busy = 0;
            for (int j = 0; j < NKEYS; j++) {
                int s = j % NSETS;
                for (int i = 0; i < set_n[s]; i++) {
                    if (!sluice__algo_idle(&sets[s][i], &mirror[j][i], now)) {
                        busy++;
                        break;
                    }
                }
            }
            ASSERT(sluice__memory_keys(m) >= busy);
        }
    }
    for (int j = 0; j < NKEYS; j++)
        for (int i = 0; i < set_n[j % NSETS]; i++)
            sluice__algo_release(&sets[j % NSETS][i], &mirror[j][i]);
    sluice__memory_close(m);
}

static void test_idle_dropped(void)
{
    sluice__memstore *m = open_mem("memory://");
    const sluice_limit tb = {SLUICE_TOKEN_BUCKET, 10, 1000, 10};
    const sluice_limit fw = {SLUICE_FIXED_WINDOW, 10, 1000, 0};
    const sluice_limit sl = {SLUICE_SLIDING_LOG, 10, 1000, 0};
    sluice_decision d;
    char key[32];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "r:%d", i);
        const sluice_limit *l = i % 3 == 0 ? &tb : i % 3 == 1 ? &fw : &sl;
        ASSERT_EQ(decide(m, key, l, 1, 2, 5000, &d), 0);
        ASSERT(d.allowed);
    }
    ASSERT_EQ(sluice__memory_keys(m), 300);
    /* a peek on an absent key creates nothing */
    ASSERT_EQ(decide(m, "r:absent", &tb, 1, 0, 5000, &d), 0);
    ASSERT(d.allowed);
    ASSERT_EQ(d.remaining, 10);
    ASSERT_EQ(sluice__memory_keys(m), 300);
    /* before the reset time nothing goes */
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "r:%d", i);
        const sluice_limit *l = i % 3 == 0 ? &tb : i % 3 == 1 ? &fw : &sl;
        ASSERT_EQ(decide(m, key, l, 1, 0, 5199, &d), 0);
        ASSERT(d.remaining < 10);
    }
    ASSERT_EQ(sluice__memory_keys(m), 300);
    /* the token bucket is full again 200 ms later, the windows at 6000 */
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "r:%d", i);
        const sluice_limit *l = i % 3 == 0 ? &tb : i % 3 == 1 ? &fw : &sl;
        ASSERT_EQ(decide(m, key, l, 1, 0, 6000, &d), 0);
        ASSERT_EQ(d.remaining, 10);
        ASSERT_EQ(d.reset_after_ms, 0);
    }
    ASSERT_EQ(sluice__memory_keys(m), 0);
    /* a denied request on a new key leaves nothing either */
    ASSERT_EQ(decide(m, "r:big", &tb, 1, 11, 7000, &d), 0);
    ASSERT(!d.allowed);
    ASSERT_EQ(d.retry_after_ms, -1);
    ASSERT_EQ(sluice__memory_keys(m), 0);
    sluice__memory_close(m);
}

/*
 * The sweep frees idle keys no one asks about again, none too early, and
 * with bounded work per operation: an operation that adds no key checks one
 * node every SWEEP_EVERY (16) operations, so every node is checked within
 * 16 * (keys + buckets / 32) of them; one that adds a key checks two nodes.
 */
static void test_sweep(void)
{
    sluice__memstore *m = open_mem("memory://?shards=1");
    const sluice_limit fw = {SLUICE_FIXED_WINDOW, 10, 1000, 0};
    const sluice_limit hour = {SLUICE_FIXED_WINDOW, 1000000, 3600000, 0};
    sluice_decision d;
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "old:%d", i);
        ASSERT_EQ(decide(m, key, &fw, 1, 1, 0, &d), 0);
    }
    ASSERT_EQ(sluice__memory_keys(m), 100);
    /* in their window: 2000 operations on another key free nothing */
    for (int i = 0; i < 2000; i++)
        ASSERT_EQ(decide(m, "busy", &hour, 1, 1, 999, &d), 0);
    ASSERT_EQ(sluice__memory_keys(m), 101);
    /* later: 160 operations run 10 sweeps of a few nodes each, not a pass */
    for (int i = 0; i < 160; i++)
        ASSERT_EQ(decide(m, "busy", &hour, 1, 1, 3000, &d), 0);
    ASSERT(sluice__memory_keys(m) > 50);
    /* 101 keys in 128 slots: 16 * (101 + 4) operations free the 100 */
    for (int i = 0; i < 16 * (101 + 4); i++)
        ASSERT_EQ(decide(m, "busy", &hour, 1, 1, 3000, &d), 0);
    ASSERT_EQ(sluice__memory_keys(m), 1);
    /* the freed keys start fresh */
    ASSERT_EQ(decide(m, "old:7", &fw, 1, 0, 3000, &d), 0);
    ASSERT_EQ(d.remaining, 10);

    /* operations that add keys sweep faster: 50 idle keys are gone after 60
     * new keys (2 nodes checked each, or a rehash, which checks them all) */
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "old2:%d", i);
        ASSERT_EQ(decide(m, key, &fw, 1, 1, 4000, &d), 0);
    }
    ASSERT_EQ(sluice__memory_keys(m), 51);
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof(key), "new:%d", i);
        ASSERT_EQ(decide(m, key, &hour, 1, 1, 6000, &d), 0);
    }
    ASSERT_EQ(sluice__memory_keys(m), 61);
    sluice__memory_close(m);
}

/* The sweep gets past busy nodes to the idle ones among them, also when
 * the operations are peeks on absent keys. */
static void test_sweep_past_busy(void)
{
    sluice__memstore *m = open_mem("memory://?shards=1");
    const sluice_limit fw = {SLUICE_FIXED_WINDOW, 10, 1000, 0};
    const sluice_limit day = {SLUICE_FIXED_WINDOW, 10, 86400000, 0};
    sluice_decision d;
    ASSERT_EQ(decide(m, "busy:a", &day, 1, 1, 0, &d), 0);
    ASSERT_EQ(decide(m, "busy:b", &day, 1, 1, 0, &d), 0);
    char key[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "k:%d", i);
        ASSERT_EQ(decide(m, key, &fw, 1, 1, 0, &d), 0);
    }
    ASSERT_EQ(sluice__memory_keys(m), 22);
    /* 22 keys in 32 buckets: within 16 * (22 + 1) operations */
    for (int i = 0; i < 16 * (22 + 1); i++)
        ASSERT_EQ(decide(m, "nobody", &fw, 1, 0, 5000, &d), 0);
    ASSERT_EQ(sluice__memory_keys(m), 2);
    ASSERT_EQ(decide(m, "busy:a", &day, 1, 0, 5000, &d), 0);
    ASSERT_EQ(d.remaining, 9);
    sluice__memory_close(m);
}

static void test_evict_lru(void)
{
    sluice__memstore *m = open_mem("memory://?max_keys=3");
    const sluice_limit fw = {SLUICE_FIXED_WINDOW, 10, 60000, 0};
    sluice_decision d;
    ASSERT_EQ(decide(m, "a", &fw, 1, 1, 0, &d), 0);
    ASSERT_EQ(decide(m, "b", &fw, 1, 2, 1, &d), 0);
    ASSERT_EQ(decide(m, "c", &fw, 1, 3, 2, &d), 0);
    ASSERT_EQ(decide(m, "a", &fw, 1, 1, 3, &d), 0); /* a is now the newest */
    ASSERT_EQ(d.remaining, 8);
    ASSERT_EQ(decide(m, "d", &fw, 1, 4, 4, &d), 0); /* evicts b, the oldest */
    ASSERT_EQ(sluice__memory_keys(m), 3);
    ASSERT_EQ(decide(m, "c", &fw, 1, 0, 5, &d), 0);
    ASSERT_EQ(d.remaining, 7);
    ASSERT_EQ(decide(m, "d", &fw, 1, 0, 5, &d), 0);
    ASSERT_EQ(d.remaining, 6);
    ASSERT_EQ(decide(m, "a", &fw, 1, 0, 5, &d), 0);
    ASSERT_EQ(d.remaining, 8);
    ASSERT_EQ(decide(m, "b", &fw, 1, 0, 5, &d), 0);
    ASSERT_EQ(d.remaining, 10); /* forgotten */
    ASSERT_EQ(sluice__memory_keys(m), 3);
    /* many more keys: the bound holds and the newest survive */
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "n:%d", i);
        ASSERT_EQ(decide(m, key, &fw, 1, 1, 10 + i, &d), 0);
        ASSERT(sluice__memory_keys(m) <= 3);
    }
    for (int i = 997; i < 1000; i++) {
        snprintf(key, sizeof(key), "n:%d", i);
        ASSERT_EQ(decide(m, key, &fw, 1, 0, 2000, &d), 0);
        ASSERT_EQ(d.remaining, 9);
    }
    sluice__memory_close(m);

    /* a large bound split over shards is still a bound */
    m = open_mem("memory://?max_keys=5000");
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "x:%d", i);
        ASSERT_EQ(decide(m, key, &fw, 1, 1, 100, &d), 0);
    }
    ASSERT(sluice__memory_keys(m) <= 5000);
    ASSERT(sluice__memory_keys(m) >= 4900);
    sluice__memory_close(m);
}

/*
 * Without max_keys there is no recency order: the store is bounded (1e7
 * keys; lowered here through sluice__memory_open_capped) and a full shard
 * evicts, of a sample of 16 keys, the one that becomes idle the soonest.
 * Half the keys here are idle at 2 s, half in a day; making room for 500
 * more must take the short-lived ones, whose loss changes the least.
 */
static void test_evict_sampled(void)
{
    sluice__memstore *m = NULL;
    sluice_error err;
    ASSERT_EQ(sluice__memory_open_capped(&m, NULL, 0, &err), SLUICE_EINVAL);
    ASSERT_EQ(sluice__memory_open_capped(&m, NULL, 2000, &err), 0);
    const sluice_limit brief = {SLUICE_FIXED_WINDOW, 10, 2000, 0};
    const sluice_limit day = {SLUICE_FIXED_WINDOW, 10, 86400000, 0};
    sluice_decision d;
    char key[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "%s:%d", i % 2 ? "day" : "brief", i / 2);
        ASSERT_EQ(decide(m, key, i % 2 ? &day : &brief, 1, 1, 0, &d), 0);
    }
    ASSERT_EQ(sluice__memory_keys(m), 2000);
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "late:%d", i);
        ASSERT_EQ(decide(m, key, &day, 1, 1, 100, &d), 0);
        ASSERT(sluice__memory_keys(m) <= 2000);
    }
    int day_kept = 0, brief_kept = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "day:%d", i);
        ASSERT_EQ(decide(m, key, &day, 1, 0, 200, &d), 0);
        day_kept += d.remaining == 9;
        snprintf(key, sizeof(key), "brief:%d", i);
        ASSERT_EQ(decide(m, key, &brief, 1, 0, 200, &d), 0);
        brief_kept += d.remaining == 9;
    }
    /* a sample of 16 holds no short-lived key with odds (3/4)^16 = 1% */
    ASSERT(day_kept >= 980);
    ASSERT(brief_kept <= 520);
    ASSERT_EQ(sluice__memory_keys(m), 2000); /* peeks add nothing */
    sluice__memory_close(m);
}

static void test_multi_limit(void)
{
    sluice__memstore *m = open_mem("memory://");
    const sluice_limit two[2] = {{SLUICE_FIXED_WINDOW, 5, 10000, 0},
                                 {SLUICE_TOKEN_BUCKET, 3, 10000, 3}};
    sluice_decision d;
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(decide(m, "multi", two, 2, 1, 100, &d), 0);
        ASSERT(d.allowed);
    }
    ASSERT_EQ(decide(m, "multi", two, 2, 1, 100, &d), 0);
    ASSERT(!d.allowed);
    ASSERT_EQ(d.decided_by, 1);
    ASSERT(d.limits[0].allowed); /* the window would have allowed it... */
    /* ...but consumed nothing: 2 left in the window */
    ASSERT_EQ(decide(m, "multi", two, 2, 0, 100, &d), 0);
    ASSERT_EQ(d.limits[0].remaining, 2);
    ASSERT_EQ(d.limits[1].remaining, 0);
    sluice__memory_close(m);
}

static void test_signature_change(void)
{
    sluice__memstore *m = open_mem("memory://");
    const sluice_limit five = {SLUICE_FIXED_WINDOW, 5, 10000, 0};
    const sluice_limit six = {SLUICE_FIXED_WINDOW, 6, 10000, 0};
    const sluice_limit log = {SLUICE_SLIDING_LOG, 5, 10000, 0};
    const sluice_limit pair[2] = {{SLUICE_SLIDING_LOG, 5, 10000, 0},
                                  {SLUICE_TOKEN_BUCKET, 5, 10000, 5}};
    sluice_decision d;
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(decide(m, "k", &five, 1, 1, 100, &d), 0);
    ASSERT_EQ(decide(m, "k", &five, 1, 1, 100, &d), 0);
    ASSERT(!d.allowed);
    ASSERT_EQ(decide(m, "k", &six, 1, 1, 100, &d), 0); /* new params: fresh */
    ASSERT(d.allowed);
    ASSERT_EQ(d.remaining, 5);
    ASSERT_EQ(decide(m, "k", &log, 1, 2, 100, &d), 0); /* new algorithm: fresh */
    ASSERT_EQ(d.remaining, 3);
    /* two limits: a new node, but limit 0 has log's parameters: its cell is
     * kept (2 + 1 used), as the Redis key holding those parameters would be */
    ASSERT_EQ(decide(m, "k", pair, 2, 1, 100, &d), 0);
    ASSERT_EQ(d.limits[0].remaining, 2);
    ASSERT_EQ(d.limits[1].remaining, 4);
    ASSERT_EQ(decide(m, "k", &five, 1, 1, 100, &d), 0); /* back to one */
    ASSERT_EQ(d.remaining, 4);
    ASSERT_EQ(sluice__memory_keys(m), 1);
    sluice__memory_close(m);
}

/* A reload keeps the state of every limit whose algorithm, limit, window and
 * burst are unchanged (SPEC section 4), limit by limit: changing a rule's
 * per-second limit must not hand out a fresh hourly quota. */
static void test_reload_keeps_unchanged_limits(void)
{
    sluice__memstore *m = open_mem("memory://");
    const sluice_limit before[3] = {{SLUICE_TOKEN_BUCKET, 5, 1000, 5},
                                    {SLUICE_FIXED_WINDOW, 10, 3600000, 0},
                                    {SLUICE_SLIDING_LOG, 8, 60000, 0}};
    sluice_limit after[3];
    memcpy(after, before, sizeof(after));
    after[0].limit = 50; /* the per-second limit changes */
    after[0].burst = 50;
    sluice_decision d;
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(decide(m, "r", before, 3, 1, 100, &d), 0);
    ASSERT(d.allowed);
    ASSERT_EQ(decide(m, "r", after, 3, 1, 200, &d), 0);
    ASSERT(d.allowed);
    ASSERT_EQ(d.limits[0].remaining, 49); /* changed: fresh */
    ASSERT_EQ(d.limits[1].remaining, 5);  /* unchanged: 10 - 5 */
    ASSERT_EQ(d.limits[2].remaining, 3);  /* unchanged, a sliding log: 8 - 5 */
    /* a third limit dropped by a reload: the two kept cells survive the
     * smaller node (and the log moves with its cell) */
    ASSERT_EQ(decide(m, "r", after, 2, 1, 300, &d), 0);
    ASSERT_EQ(d.limits[0].remaining, 49); /* refilled by the 100 ms */
    ASSERT_EQ(d.limits[1].remaining, 4);
    /* and grown back: the log limit starts afresh */
    ASSERT_EQ(decide(m, "r", after, 3, 1, 400, &d), 0);
    ASSERT_EQ(d.limits[1].remaining, 3);
    ASSERT_EQ(d.limits[2].remaining, 7);
    /* the hourly window still denies at 10 in all, whatever the first limit */
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(decide(m, "r", before, 3, 1, 500 + i, &d), 0);
        ASSERT(d.allowed);
    }
    ASSERT_EQ(decide(m, "r", before, 3, 1, 600, &d), 0);
    ASSERT(!d.allowed);
    ASSERT_EQ(d.decided_by, 1);
    ASSERT_EQ(sluice__memory_keys(m), 1);
    sluice__memory_close(m);
}

/* Many keys in one shard: the table grows and shrinks incrementally while
 * every key keeps its state. */
static void test_rehash(void)
{
    sluice__memstore *m = open_mem("memory://?shards=1");
    const sluice_limit fw = {SLUICE_FIXED_WINDOW, 100, 10000, 0};
    sluice_decision d;
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "g:%d", i);
        ASSERT_EQ(decide(m, key, &fw, 1, 1 + i % 7, 10, &d), 0);
    }
    ASSERT_EQ(sluice__memory_keys(m), 20000);
    for (int i = 0; i < 20000; i += 3) {
        snprintf(key, sizeof(key), "g:%d", i);
        ASSERT_EQ(decide(m, key, &fw, 1, 0, 20, &d), 0);
        ASSERT_EQ(d.remaining, 100 - (1 + i % 7));
    }
    for (int i = 0; i < 20000; i++) { /* all idle: each peek frees its key */
        snprintf(key, sizeof(key), "g:%d", i);
        ASSERT_EQ(decide(m, key, &fw, 1, 0, 10000, &d), 0);
        ASSERT_EQ(d.remaining, 100);
    }
    ASSERT_EQ(sluice__memory_keys(m), 0);
    ASSERT_EQ(decide(m, "again", &fw, 1, 1, 10000, &d), 0);
    ASSERT_EQ(sluice__memory_keys(m), 1);
    sluice__memory_close(m);

    /* keys asked for while the table grows and shrinks under them (the
     * rehash half done) keep their state, and none is held twice */
    m = open_mem("memory://?shards=1");
    uint64_t st = test_seed();
    for (int i = 0; i < 30000; i++) {
        snprintf(key, sizeof(key), "h:%d", i);
        ASSERT_EQ(decide(m, key, &fw, 1, 1 + i % 7, 10, &d), 0);
        if (i < 4000)
            ASSERT_EQ(sluice__memory_check(m), 0);
        for (int j = 0; j < 3; j++) {
            int k = (int)test_range(&st, 0, i);
            snprintf(key, sizeof(key), "h:%d", k);
            ASSERT_EQ(decide(m, key, &fw, 1, 0, 10, &d), 0);
            ASSERT_EQ(d.remaining, 100 - (1 + k % 7));
        }
    }
    ASSERT_EQ(sluice__memory_keys(m), 30000);
    for (int i = 0; i < 30000; i++) { /* freed one by one: the table shrinks */
        snprintf(key, sizeof(key), "h:%d", i);
        ASSERT_EQ(decide(m, key, &fw, 1, 0, 10000, &d), 0);
        ASSERT_EQ(d.remaining, 100);
        int k = (int)test_range(&st, i + 1, 30000);
        snprintf(key, sizeof(key), "h:%d", k);
        ASSERT_EQ(decide(m, key, &fw, 1, 0, 9999, &d), 0);
        ASSERT_EQ(d.remaining, k < 30000 ? 100 - (1 + k % 7) : 100);
        if (i >= 26000)
            ASSERT_EQ(sluice__memory_check(m), 0);
    }
    ASSERT_EQ(sluice__memory_keys(m), 0);
    sluice__memory_close(m);
}

/*
 * Churn in one shard: a stream of short-lived keys, each freed by the sweep
 * (leaving tombstones that force rebuilds of the table at the same size,
 * with deletions landing while a rebuild is half done), around long-lived
 * keys that must keep their state all along, and the store stays O(active
 * keys).
 */
static void test_churn_keeps_state(void)
{
    sluice__memstore *m = open_mem("memory://?shards=1");
    const sluice_limit hour = {SLUICE_FIXED_WINDOW, 1000, 3600000, 0};
    const sluice_limit brief = {SLUICE_FIXED_WINDOW, 10, 8, 0};
    sluice_decision d;
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "long:%d", i);
        ASSERT_EQ(decide(m, key, &hour, 1, 1 + i % 5, 0, &d), 0);
    }
    uint64_t st = test_seed();
    int64_t now = 0;
    size_t most = 0;
    for (int i = 0; i < 200000; i++) {
        now += i % 4 == 0;
        snprintf(key, sizeof(key), "short:%d", i);
        ASSERT_EQ(decide(m, key, &brief, 1, 1, now, &d), 0);
        ASSERT(d.allowed);
        if (i % 7 == 0) { /* a long-lived key keeps its count */
            int k = (int)test_range(&st, 0, 2999);
            snprintf(key, sizeof(key), "long:%d", k);
            ASSERT_EQ(decide(m, key, &hour, 1, 0, now, &d), 0);
            ASSERT_EQ(d.remaining, 1000 - (1 + k % 5));
        }
        size_t n = sluice__memory_keys(m);
        most = n > most ? n : most;
        if (i % 512 == 0)
            ASSERT_EQ(sluice__memory_check(m), 0);
    }
    /* A short key counts as busy for up to 1.024 s (the idle time's unit),
     * 4000 keys made here, and the sweep checks 2 nodes per added key, so a
     * pass over the 3000 long keys and N short ones takes (3000 + N) / 2
     * added keys: N stays near 5000, not near the 200000 keys made. */
    ASSERT(most < 3 * 3000);
    for (int k = 0; k < 3000; k++) {
        snprintf(key, sizeof(key), "long:%d", k);
        ASSERT_EQ(decide(m, key, &hour, 1, 2, now, &d), 0);
        ASSERT_EQ(d.remaining, 1000 - (1 + k % 5) - 2);
    }
    /* later (idle times are kept in 1.024 s units, rounded up), every
     * short-lived key goes within one pass of the sweep,
     * 16 * (keys + slots / 32) operations (slots < 4 * keys), here peeks */
    size_t left = sluice__memory_keys(m), ops = 16 * (left + 4 * left / 32);
    for (size_t op = 0; op < ops && left > 3000; op++) {
        snprintf(key, sizeof(key), "long:%d", (int)(op % 3000));
        ASSERT_EQ(decide(m, key, &hour, 1, 0, now + 2000, &d), 0);
        left = sluice__memory_keys(m);
    }
    ASSERT_EQ(left, 3000);
    sluice__memory_close(m);
}

/* ---- allocation failures ------------------------------------------------- */

static int fail_on;      /* when non-zero, fail allocations */
static uint64_t fail_st; /* random state deciding which */
static long fails;

static void *fail_malloc(size_t n)
{
    if (fail_on && test_range(&fail_st, 0, 2) == 0) {
        fails++;
        return NULL;
    }
    return malloc(n);
}

static void *fail_realloc(void *p, size_t n)
{
    if (fail_on && test_range(&fail_st, 0, 2) == 0) {
        fails++;
        return NULL;
    }
    return realloc(p, n);
}

static void test_enomem(void)
{
    fail_st = test_seed() | 1;
    sluice_set_allocator(fail_malloc, fail_realloc, free);
    uint64_t st = fail_st;

    /* open fails cleanly until it succeeds */
    sluice__memstore *m = NULL;
    sluice_error err;
    fail_on = 1;
    int tries = 0;
    while (sluice__memory_open(&m, NULL, &err) != 0) {
        ASSERT_EQ(err.code, SLUICE_ENOMEM);
        ASSERT(m == NULL);
        ASSERT(++tries < 1000);
    }
    fail_on = 0;

    sluice__cell mirror[NKEYS][3];
    memset(mirror, 0, sizeof(mirror));
    int64_t now = 1000;
    long nomem = 0;
    for (int step = 0; step < 20000; step++) {
        int k = (int)test_range(&st, 0, NKEYS - 1);
        int set = k % NSETS;
        int64_t cost = test_range(&st, 0, 2);
        now += test_range(&st, 0, 1) ? test_range(&st, 0, 100) : 0;
        char key[32];
        snprintf(key, sizeof(key), "rule:k%d", k);
        sluice_decision a, b;
        fail_on = 1;
        int rc = decide(m, key, sets[set], set_n[set], cost, now, &a);
        fail_on = 0;
        if (rc == SLUICE_ENOMEM) {
            nomem++;
            continue; /* nothing may have changed: the mirror stays too */
        }
        ASSERT_EQ(rc, 0);
        memset(&b, 0, sizeof(b));
        ASSERT_EQ(sluice__decide_cells(sets[set], set_n[set], mirror[k], now, cost, &b), 0);
        same_decision(&a, &b, step);
    }
    ASSERT(nomem > 0);
    ASSERT(fails > 0);
    for (int j = 0; j < NKEYS; j++)
        for (int i = 0; i < set_n[j % NSETS]; i++)
            sluice__algo_release(&sets[j % NSETS][i], &mirror[j][i]);
    sluice__memory_close(m);
    sluice_set_allocator(NULL, NULL, NULL);
}

static void test_null_and_bad_args(void)
{
    sluice__memory_close(NULL);
    sluice_store_close(NULL);
    sluice_async_free(NULL);
    sluice__url_free(NULL);
    ASSERT_EQ(sluice__memory_keys(NULL), 0);
    ASSERT_EQ(sluice_store_keys(NULL), 0);

    sluice__memstore *m = open_mem("memory://");
    const sluice_limit fw = {SLUICE_FIXED_WINDOW, 10, 1000, 0};
    sluice_decision d;
    ASSERT_EQ(decide(m, "", &fw, 1, 1, 0, &d), SLUICE_EKEY);
    char big[SLUICE_STORE_KEY_MAX + 2];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ASSERT_EQ(decide(m, big, &fw, 1, 1, 0, &d), SLUICE_EKEY);
    big[SLUICE_STORE_KEY_MAX] = '\0';
    ASSERT_EQ(decide(m, big, &fw, 1, 1, 0, &d), 0);
    ASSERT_EQ(decide(m, "k", &fw, 1, -1, 0, &d), SLUICE_EINVAL);
    ASSERT_EQ(decide(m, "k", &fw, 1, SLUICE_COST_MAX + 1, 0, &d), SLUICE_EINVAL);
    ASSERT_EQ(decide(m, "k", &fw, 0, 1, 0, &d), SLUICE_EINVAL);
    ASSERT_EQ(decide(m, "k", &fw, 1, 1, -5, &d), SLUICE_EINVAL);
    ASSERT_EQ(sluice__memory_keys(m), 1);
    sluice__memory_close(m);

    sluice__url u;
    sluice_error err;
    const char *bad[] = {"memory://?max_keys=0", "memory://?max_keys=x",
                         "memory://?shards=3",   "memory://?shards=2048",
                         "memory://?foo=1",      "memory://?max_keys=99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_EQ(sluice__url_parse(&u, bad[i], &err), 0);
        m = (sluice__memstore *)&u; /* must be reset to NULL */
        ASSERT_EQ(sluice__memory_open(&m, &u, &err), SLUICE_EURL);
        ASSERT(m == NULL);
        ASSERT_CONTAINS(err.msg, "store URL");
        sluice__url_free(&u);
    }
}

/* Through the public API: open by URL, decide by op, ping, keys. */
static void test_ops_table(void)
{
    sluice_store *s = NULL;
    sluice_error err;
    ASSERT_EQ(sluice_store_open(&s, "memory://?max_keys=10", NULL, &err), 0);
    ASSERT_EQ(sluice_store_ping(s, &err), 0);
    ASSERT_EQ(sluice_store_keys(s), 0);
    sluice_store_close(s);
    ASSERT_EQ(sluice_store_open(&s, "memory://?max_keys=", NULL, &err), SLUICE_EURL);
    ASSERT(s == NULL);
    ASSERT_EQ(sluice_store_open(&s, "nope://", NULL, &err), SLUICE_EURL);
    ASSERT_EQ(sluice_store_open(&s, NULL, NULL, &err), SLUICE_EINVAL);
    ASSERT_EQ(sluice_store_open(NULL, "memory://", NULL, &err), SLUICE_EINVAL);
    sluice_store_options o = {.timeout_ms = -1};
    ASSERT_EQ(sluice_store_open(&s, "memory://", &o, &err), SLUICE_EINVAL);
    o.timeout_ms = 0;
    o.on_store_error = 7;
    ASSERT_EQ(sluice_store_open(&s, "memory://", &o, &err), SLUICE_EINVAL);
}

int main(void)
{
    RUN(test_matches_direct);
    RUN(test_idle_dropped);
    RUN(test_sweep);
    RUN(test_sweep_past_busy);
    RUN(test_evict_lru);
    RUN(test_evict_sampled);
    RUN(test_multi_limit);
    RUN(test_signature_change);
    RUN(test_reload_keeps_unchanged_limits);
    RUN(test_rehash);
    RUN(test_churn_keeps_state);
    RUN(test_enomem);
    RUN(test_null_and_bad_args);
    RUN(test_ops_table);
    return test_done();
}
