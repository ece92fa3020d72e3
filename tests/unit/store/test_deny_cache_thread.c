/* SPDX-License-Identifier: MIT */
/*
 * test_deny_cache_thread.c - one deny cache shared by 8 threads (as by the
 * blocking pool's callers and sluiced's worker loops): concurrent lookups,
 * recordings of denials, and admissions that drop a key's entries, on few
 * sets so that the threads collide.  Every hit must be a denial with the
 * recorded numbers; the entry count must stay within the bound and equal
 * the entries found at the end.  Labelled tsan: the TSan build checks the
 * locking.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "test.h"

#include "core/algo.h"
#include "store/redis/deny_cache.h"

#define NTHREADS 8
#define NKEYS 64

static sluice__deny_cache *dc;
static sluice_limit fw = {SLUICE_FIXED_WINDOW, 2, 1000, 0};
static sluice_decision denial, admitted;
static atomic_int bad;

static void *worker(void *arg)
{
    uint64_t rs = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;
    char key[16];
    for (int i = 0; i < 50000; i++) {
        snprintf(key, sizeof(key), "r:%d", (int)test_range(&rs, 0, NKEYS - 1));
        sluice__op op = {key, strlen(key), &fw, 1, 1, 500 + test_range(&rs, 0, 400)};
        sluice_decision out;
        switch (test_range(&rs, 0, 3)) {
        case 0:
            sluice__deny_cache_record(dc, &op, 0, 0, &denial);
            break;
        case 1:
            sluice__deny_cache_record(dc, &op, 0, 0, &admitted);
            break;
        default:
            if (sluice__deny_cache_lookup(dc, &op, 0, &out) &&
                (out.allowed || out.remaining != 0 || out.now_ms != op.now_ms ||
                 out.retry_after_ms != 1000 - op.now_ms))
                atomic_fetch_add(&bad, 1);
        }
    }
    return NULL;
}

static void test_threads(void)
{
    dc = sluice__deny_cache_new(4); /* 16 entries for 64 keys */
    ASSERT(dc);
    sluice__cell c;
    memset(&c, 0, sizeof(c));
    for (int i = 0; i < 3; i++)
        sluice__decide_cells(&fw, 1, &c, 400, 1, &denial);
    ASSERT(!denial.allowed);
    memset(&c, 0, sizeof(c));
    sluice__decide_cells(&fw, 1, &c, 400, 1, &admitted);
    ASSERT(admitted.allowed);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        ASSERT(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1)) == 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(atomic_load(&bad), 0);
    ASSERT(sluice__deny_cache_hits(dc) > 1000);
    uint64_t n = sluice__deny_cache_entries(dc);
    ASSERT(n <= 16);
    /* every entry counted is found (explicit time 500, inside every denial) */
    uint64_t found = 0;
    char key[16];
    for (int k = 0; k < NKEYS; k++) {
        snprintf(key, sizeof(key), "r:%d", k);
        sluice__op op = {key, strlen(key), &fw, 1, 1, 500};
        sluice_decision out;
        found += sluice__deny_cache_lookup(dc, &op, 0, &out);
    }
    ASSERT_EQ(found, n);
    sluice__deny_cache_free(dc);
}

int main(void)
{
    RUN(test_threads);
    return test_done();
}
