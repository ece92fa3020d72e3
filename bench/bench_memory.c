/* SPDX-License-Identifier: MIT */
/*
 * bench_memory.c - the embedded store's footprint and speed: bytes per
 * active token-bucket key (mallinfo2() before and after inserting N keys,
 * so malloc's own headers and the shard tables count; measured again after
 * the runs, when no table rebuild is half done), and decisions per second
 * on those keys from 1..T threads.
 *
 *   bench_memory [keys=1000000] [threads=2] [seconds=2]
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice.h"
#include "store/memory.h"
#include "store/store.h"

static sluice__memstore *store;
static const sluice_limit tb = {SLUICE_TOKEN_BUCKET, 100, 3600000, 100};
static long nkeys;
static double seconds;
static atomic_bool stop;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends the decimal digits of v (0..255). */
static char *put_octet(char *p, long v)
{
    if (v >= 100)
        *p++ = (char)('0' + v / 100);
    if (v >= 10)
        *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

/* "api:ip:10.A.B.C" for key i, formatted in place rather than read from a
 * table, so the benchmark adds no cache miss of its own to the store's. */
static size_t key_of(long i, char *buf)
{
    char *p = buf;
    memcpy(p, "api:ip:10.", 10);
    p = put_octet(p + 10, (i >> 16) & 255);
    *p++ = '.';
    p = put_octet(p, (i >> 8) & 255);
    *p++ = '.';
    p = put_octet(p, i & 255);
    return (size_t)(p - buf);
}

static void decide(long i, int64_t now)
{
    char key[24];
    sluice__op op = {.key = key,
                     .key_len = key_of(i, key),
                     .limits = &tb,
                     .nlimits = 1,
                     .cost = 1,
                     .now_ms = now};
    sluice_decision d;
    sluice_error err;
    if (sluice__memory_decide(store, &op, &d, &err) != 0) {
        fprintf(stderr, "decide: %s\n", err.msg);
        exit(1);
    }
}

typedef struct {
    unsigned seed;
    long done;
    int explicit_now;
    double cpu_s; /* CPU time the thread got: the machine may be shared */
} worker;

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    worker *w = arg;
    uint64_t x = 0x9e3779b97f4a7c15ULL ^ w->seed;
    double c0 = thread_cpu_s();
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int j = 0; j < 1024; j++) {
            x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
            decide((long)((x * 0x2545f4914f6cdd1dULL) % (uint64_t)nkeys),
                   w->explicit_now ? 1800000000000LL : SLUICE_NOW);
        }
        w->done += 1024;
    }
    w->cpu_s = thread_cpu_s() - c0;
    return NULL;
}

static double cpu_rate; /* decisions per CPU-second of the last run */

static double throughput(int threads, int explicit_now)
{
    pthread_t th[64];
    worker w[64];
    atomic_store(&stop, false);
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        w[i] = (worker){.seed = (unsigned)i * 7919u + 1, .explicit_now = explicit_now};
        pthread_create(&th[i], NULL, run, &w[i]);
    }
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop, true);
    long total = 0;
    double cpu = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += w[i].done;
        cpu += w[i].cpu_s;
    }
    cpu_rate = (double)total / cpu;
    return (double)total / (now_s() - t0);
}

int main(int argc, char **argv)
{
    nkeys = argc > 1 ? atol(argv[1]) : 1000000;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    seconds = argc > 3 ? atof(argv[3]) : 2.0;
    if (nkeys < 1 || threads < 1 || threads > 64 || seconds <= 0) {
        fprintf(stderr, "usage: bench_memory [keys] [threads 1..64] [seconds]\n");
        return 2;
    }
    sluice_error err;
    struct mallinfo2 before = mallinfo2();
    if (sluice__memory_open(&store, NULL, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    double t0 = now_s();
    long key_bytes = 0;
    for (long i = 0; i < nkeys; i++) {
        char key[24];
        key_bytes += (long)key_of(i, key);
        decide(i, 1800000000000LL);
    }
    double t_insert = now_s() - t0;
    struct mallinfo2 after = mallinfo2();
    size_t held = sluice__memory_keys(store);
    /* uordblks: heap chunks; hblkhd: mmap'd ones (large tables) */
    double per_key = ((double)after.uordblks + (double)after.hblkhd - (double)before.uordblks -
                      (double)before.hblkhd) /
                     (double)held;
    double avg_key = (double)key_bytes / (double)nkeys;
    printf("keys held             %zu (token_bucket, one limit)\n", held);
    printf("bytes per key         %.1f (malloc'd, incl. malloc headers and tables)\n", per_key);
    printf("key bytes per key     %.1f\n", avg_key);
    printf("overhead per key      %.1f bytes beyond the key bytes\n", per_key - avg_key);
    printf("node request size     %zu bytes + key (header 16, cell 16, tail 3), plus an\n"
           "                      8-byte table entry at load 0.44..0.875\n",
           (size_t)35);
    printf("insert rate           %.0f keys/s (1 thread)\n", (double)nkeys / t_insert);
    printf("decisions/s           wall (per CPU-second of the workers)\n");
    for (int t = 1; t <= threads; t *= 2) {
        double a = throughput(t, 1), ca = cpu_rate;
        double b = throughput(t, 0), cb = cpu_rate;
        printf("  %2d thread(s)        %.0f (%.0f) explicit now   %.0f (%.0f) SLUICE_NOW\n", t, a,
               ca, b, cb);
        if (t < threads && t * 2 > threads)
            t = threads / 2;
    }
    /* Again after the runs: a table rebuild that was still moving entries
     * when the first figure was taken (both tables live) has finished. */
    struct mallinfo2 settled = mallinfo2();
    held = sluice__memory_keys(store);
    printf("bytes per key, later  %.1f (%zu keys; no rehash in flight)\n",
           ((double)settled.uordblks + (double)settled.hblkhd - (double)before.uordblks -
            (double)before.hblkhd) /
               (double)held,
           held);
    sluice__memory_close(store);
    struct mallinfo2 end = mallinfo2();
    printf("after close           %.0f bytes still allocated vs start (stdio, threads)\n",
           (double)end.uordblks + (double)end.hblkhd - (double)before.uordblks -
               (double)before.hblkhd);
    return 0;
}
