/* SPDX-License-Identifier: MIT */
/*
 * test_memory_thread.c - the memory store under concurrent callers: threads
 * hammering a few shared keys admit exactly the limit in total, for every
 * algorithm, with an explicit time, with the store's clock, and with both
 * mixed; and churn over many keys (creation, idle frees, sweep, eviction,
 * rehash) keeps the bound and never corrupts, with max_keys (exact LRU) and
 * without (sampled eviction at the safety bound).  Also run under TSan.
 */
#include <pthread.h>

#include "store/memory/memory.h"
#include "store/store.h"
#include "test.h"
#include "util/clock.h"

#define NTHREADS 6
#define NKEYS 3
#define LIMIT 500
#define YEAR_MS 31622400000LL /* 366 days: nothing refills or rolls over during the test */

static sluice__memstore *store;
static sluice_limit lim;
static int64_t base_now;
static int time_mode; /* 0 explicit, 1 SLUICE_NOW, 2 both */

typedef struct {
    int id;
    long admitted[NKEYS];
} worker;

static void *hammer(void *arg)
{
    worker *w = arg;
    uint64_t st = 0x9e3779b97f4a7c15ULL * (uint64_t)(w->id + 1);
    for (int i = 0; i < 3 * LIMIT; i++) {
        int k = (int)test_range(&st, 0, NKEYS - 1);
        char key[16];
        snprintf(key, sizeof(key), "shared:%d", k);
        int64_t now = time_mode == 0   ? base_now
                      : time_mode == 1 ? SLUICE_NOW
                      : (i & 1)        ? SLUICE_NOW
                                       : base_now;
        sluice__op op = {.key = key,
                         .key_len = strlen(key),
                         .limits = &lim,
                         .nlimits = 1,
                         .cost = 1,
                         .now_ms = now};
        sluice_decision d;
        sluice_error err;
        if (sluice__memory_decide(store, &op, &d, &err) != 0)
            abort();
        if (d.allowed)
            w->admitted[k]++;
    }
    return NULL;
}

static void run_shared(int algorithm, int mode)
{
    sluice__url u;
    sluice_error err;
    ASSERT_EQ(sluice__url_parse(&u, "memory://?shards=2", &err), 0);
    ASSERT_EQ(sluice__memory_open(&store, &u, &err), 0);
    sluice__url_free(&u);
    lim = (sluice_limit){algorithm, LIMIT, YEAR_MS, 0};
    if (algorithm == SLUICE_TOKEN_BUCKET || algorithm == SLUICE_LEAKY_BUCKET)
        lim.burst = LIMIT;
    base_now = sluice__clock_now_ms();
    time_mode = mode;
    pthread_t th[NTHREADS];
    worker w[NTHREADS];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < NTHREADS; i++) {
        w[i].id = i;
        ASSERT_EQ(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int k = 0; k < NKEYS; k++) {
        long total = 0;
        for (int i = 0; i < NTHREADS; i++)
            total += w[i].admitted[k];
        /* each key saw about 3*LIMIT*NTHREADS/NKEYS = 3000 attempts */
        if (total != LIMIT)
            test_fail(__FILE__, __LINE__, "%s mode %d key %d: admitted %ld, limit %d",
                      sluice_algorithm_name(algorithm), mode, k, total, LIMIT);
    }
    ASSERT_EQ(sluice__memory_keys(store), NKEYS);
    sluice__memory_close(store);
}

static void test_shared_explicit(void)
{
    for (int a = SLUICE_FIXED_WINDOW; a <= SLUICE_LEAKY_BUCKET; a++)
        run_shared(a, 0);
}

static void test_shared_store_clock(void)
{
    for (int a = SLUICE_FIXED_WINDOW; a <= SLUICE_LEAKY_BUCKET; a++)
        run_shared(a, 1);
}

static void test_shared_mixed(void)
{
    for (int a = SLUICE_FIXED_WINDOW; a <= SLUICE_LEAKY_BUCKET; a++)
        run_shared(a, 2);
}

/* ---- churn ---------------------------------------------------------------- */

#define CHURN_MAX_KEYS 1000 /* below the ~2000 keys the churn keeps busy: it evicts */
static _Atomic int64_t churn_clock = 1000000;

static void *churn(void *arg)
{
    worker *w = arg;
    uint64_t st = 0x2545f4914f6cdd1dULL * (uint64_t)(w->id + 7);
    static const sluice_limit sets[4][2] = {
        {{SLUICE_FIXED_WINDOW, 3, 50, 0}},
        {{SLUICE_TOKEN_BUCKET, 2, 40, 2}},
        {{SLUICE_SLIDING_LOG, 4, 60, 0}},
        {{SLUICE_SLIDING_WINDOW, 5, 30, 0}, {SLUICE_LEAKY_BUCKET, 3, 90, 3}},
    };
    for (int i = 0; i < 40000; i++) {
        int k = (int)test_range(&st, 0, 9999);
        char key[24];
        snprintf(key, sizeof(key), "churn:%d", k);
        int set = k % 4;
        int64_t now = churn_clock;
        if (test_range(&st, 0, 7) == 0)
            now = churn_clock += test_range(&st, 0, 5);
        sluice__op op = {.key = key,
                         .key_len = strlen(key),
                         .limits = sets[set],
                         .nlimits = set == 3 ? 2 : 1,
                         .cost = test_range(&st, 0, 2),
                         .now_ms = now};
        sluice_decision d;
        sluice_error err;
        if (sluice__memory_decide(store, &op, &d, &err) != 0)
            abort();
        if (d.allowed)
            w->admitted[0]++;
        if ((i & 1023) == 0 && sluice__memory_keys(store) > CHURN_MAX_KEYS)
            w->admitted[1]++; /* bound broken: reported by the main thread */
    }
    return NULL;
}

/* sampled: without max_keys, the safety bound (lowered to CHURN_MAX_KEYS
 * here) with its sampled eviction and no LRU list */
static void run_churn(bool sampled)
{
    sluice__url u;
    sluice_error err;
    char url[64];
    snprintf(url, sizeof(url), "memory://?max_keys=%d&shards=4", CHURN_MAX_KEYS);
    ASSERT_EQ(sluice__url_parse(&u, sampled ? "memory://?shards=4" : url, &err), 0);
    if (sampled)
        ASSERT_EQ(sluice__memory_open_capped(&store, &u, CHURN_MAX_KEYS, &err), 0);
    else
        ASSERT_EQ(sluice__memory_open(&store, &u, &err), 0);
    sluice__url_free(&u);
    pthread_t th[NTHREADS];
    worker w[NTHREADS];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < NTHREADS; i++) {
        w[i].id = i;
        ASSERT_EQ(pthread_create(&th[i], NULL, churn, &w[i]), 0);
    }
    long admitted = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        admitted += w[i].admitted[0];
        ASSERT_EQ(w[i].admitted[1], 0);
    }
    ASSERT(admitted > 0);
    ASSERT(sluice__memory_keys(store) <= CHURN_MAX_KEYS);
    sluice__memory_close(store);
}

static void test_churn(void)
{
    run_churn(false);
}

static void test_churn_sampled(void)
{
    run_churn(true);
}

int main(void)
{
    RUN(test_shared_explicit);
    RUN(test_shared_store_clock);
    RUN(test_shared_mixed);
    RUN(test_churn);
    RUN(test_churn_sampled);
    return test_done();
}
