/* SPDX-License-Identifier: MIT */
/*
 * cli_bench.c - `sluice bench`: decisions per second and latency
 * percentiles of one rule against a store, on this machine.
 *
 * Each thread runs a loop of decisions at SLUICE_NOW over identifiers
 * "bench-<n>" (n picked at random per thread from a fixed seed, or always 0
 * with --hot), formatted per decision rather than read from a table, so that
 * a million keys cost the benchmark no cache misses of its own.  Latency is
 * recorded per decision into a per-thread log-linear histogram (64 linear
 * sub-buckets per power of two, under 1.6% relative error; no allocation per
 * decision) and the histograms are merged at the end.  With --concurrency > 1
 * and a Redis store, each thread keeps that many decisions in flight with
 * sluice_decide_async() on its own libevent loop; for memory:// (which
 * decides inline) concurrency means threads.
 *
 * Output: a progress line on stderr when it is a terminal, a summary table,
 * and a last line `decisions_per_sec=N p50_us=X p99_us=X p999_us=X allowed=N
 * denied=N errors=N` where the latencies are microseconds with two decimals
 * (a 120 ns decision prints as 0.12).  errors counts decisions the store
 * failed (decided by on_store_error) or that could not be made.
 */
#include <event2/event.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define BENCH_KEYS_MAX 10000000LL
#define BENCH_THREADS_MAX 256
#define BENCH_CONC_MAX 4096

/* Log-linear histogram of nanoseconds: 64 exact values, then 64 per power of two. */
#define HIST_SUB_BITS 6
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB * 40)

typedef struct bench_hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t max_ns;
    uint64_t sum_ns; /* for the mean */
} bench_hist;

static int hist_index(uint64_t ns)
{
    if (ns < HIST_SUB)
        return (int)ns;
    int msb = 63 - __builtin_clzll(ns);
    int shift = msb - HIST_SUB_BITS;
    int idx = (shift + 1) * HIST_SUB + (int)((ns >> shift) - HIST_SUB);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The middle of bucket idx, in ns. */
static double hist_value(int idx)
{
    if (idx < HIST_SUB)
        return (double)idx;
    int shift = idx / HIST_SUB - 1;
    uint64_t lo = ((uint64_t)(idx % HIST_SUB) + HIST_SUB) << shift;
    uint64_t width = (uint64_t)1 << shift;
    return (double)lo + (double)(width - 1) / 2.0;
}

static void hist_add(bench_hist *h, uint64_t ns)
{
    h->count[hist_index(ns)]++;
    h->sum_ns += ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

/* Latency at quantile q (0..1) in ns; 0 for an empty histogram. */
static double hist_quantile(const bench_hist *h, double q)
{
    uint64_t total = 0;
    for (int i = 0; i < HIST_BUCKETS; i++)
        total += h->count[i];
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)total);
    if ((double)rank < q * (double)total)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            double v = hist_value(i);
            return v > (double)h->max_ns ? (double)h->max_ns : v;
        }
    }
    return (double)h->max_ns;
}

typedef struct bench_opts {
    const char *config, *rule, *store;
    int64_t keys, requests, concurrency, threads;
    bool hot, async;
} bench_opts;

typedef struct bench_shared {
    const bench_opts *o;
    sluice_config *cfg;
    sluice_store *st;
    sluice_match proto; /* the rule's match; each decision copies in its key */
    /* start gate: threads warm up (connect), count themselves ready, wait for go */
    _Atomic int ready;
    _Atomic bool go;
} bench_shared;

typedef struct bench_thread {
    bench_shared *sh;
    pthread_t tid;
    int64_t todo;
    _Atomic int64_t done; /* published every 256 decisions for the progress line */
    uint64_t rng;
    uint64_t allowed, denied, errors;
    int first_error; /* first failed call's SLUICE_E*, or 1 for a store_error decision */
    bench_hist *hist;
    /* async mode */
    sluice_async *as;
    struct event_base *base;
    int64_t issued, inflight, completed;
    bool pumping;
    int probe_state; /* warm-up probe: 0 pending, 1 answered, 2 store failed */
    int fail_status;
    struct bench_slot *slots; /* concurrency entries */
} bench_thread;

/* One in-flight async decision: its start time. */
typedef struct bench_slot {
    bench_thread *t;
    uint64_t start_ns;
} bench_slot;

/* CPU time of the whole process (all threads), in ns. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: the benchmark's key picker (libc random generators are banned and shared). */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void pick_key(bench_thread *t, sluice_match *m)
{
    const bench_shared *sh = t->sh;
    uint64_t k = sh->o->hot ? 0 : next_rand(&t->rng) % (uint64_t)sh->o->keys;
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + k % 10);
        k /= 10;
    } while (k);
    memcpy(m->key, "bench-", 6);
    for (size_t i = 0; i < n; i++)
        m->key[6 + i] = digits[n - 1 - i];
    m->key[6 + n] = '\0';
    m->key_len = 6 + n;
}

static void count(bench_thread *t, int rc, const sluice_decision *d)
{
    if (rc != 0 || !d || d->store_error) {
        if (t->errors == 0)
            t->first_error = rc != 0 ? rc : 1;
        t->errors++;
    } else if (d->allowed)
        t->allowed++;
    else
        t->denied++;
}

/* Counts the thread ready and waits until the main thread opens the gate. */
static void gate(bench_thread *t)
{
    atomic_fetch_add(&t->sh->ready, 1);
    while (!atomic_load(&t->sh->go)) {
        struct timespec ts = {0, 100 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void *run_sync(void *arg)
{
    bench_thread *t = arg;
    const bench_shared *sh = t->sh;
    sluice_match m = sh->proto;
    sluice_decision d;
    sluice_error err;
    /* Warm up: a peek (cost 0) opens the store's connection, if it has one. */
    (void)sluice_decide(sh->st, sh->cfg, &m, 0, SLUICE_NOW, &d, &err);
    gate(t);
    /* One clock read per decision: a decision's latency runs from the
     * previous read to the next, so it includes the loop's few ns of
     * bookkeeping (an upper bound) and not a second clock read. */
    uint64_t t0 = now_ns();
    for (int64_t i = 0; i < t->todo; i++) {
        pick_key(t, &m);
        int rc = sluice_decide(sh->st, sh->cfg, &m, 1, SLUICE_NOW, &d, &err);
        uint64_t t1 = now_ns();
        hist_add(t->hist, t1 - t0);
        t0 = t1;
        count(t, rc, &d);
        if ((i & 255) == 255)
            atomic_store_explicit(&t->done, i + 1, memory_order_relaxed);
    }
    atomic_store_explicit(&t->done, t->todo, memory_order_relaxed);
    return NULL;
}

static void pump(bench_thread *t);

static void on_decided(int status, const sluice_decision *d, void *arg)
{
    bench_slot *s = arg;
    bench_thread *t = s->t;
    hist_add(t->hist, now_ns() - s->start_ns);
    count(t, status, d);
    s->t = NULL;
    t->inflight--;
    t->completed++;
    if ((t->completed & 255) == 0)
        atomic_store_explicit(&t->done, t->completed, memory_order_relaxed);
    if (t->completed == t->todo)
        event_base_loopbreak(t->base);
    else if (!t->pumping)
        pump(t);
}

/*
 * Starts decisions until `concurrency` are in flight.  A store may call back
 * inline (before sluice_decide_async returns); the pumping flag keeps that
 * from recursing: the callback only counts, and this loop goes on.
 */
static void pump(bench_thread *t)
{
    const bench_shared *sh = t->sh;
    int64_t conc = sh->o->concurrency;
    sluice_match m = sh->proto;
    int64_t slot = 0;
    t->pumping = true;
    while (t->inflight < conc && t->issued < t->todo) {
        while (t->slots[slot].t)
            slot = (slot + 1) % conc;
        bench_slot *s = &t->slots[slot];
        pick_key(t, &m);
        s->t = t;
        s->start_ns = now_ns();
        t->issued++;
        t->inflight++;
        int rc = sluice_decide_async(t->as, sh->cfg, &m, 1, SLUICE_NOW, on_decided, s);
        if (rc < 0) {
            /* libuv rule: the callback will never run for this one. */
            hist_add(t->hist, now_ns() - s->start_ns);
            count(t, rc, NULL);
            s->t = NULL;
            t->inflight--;
            t->completed++;
        }
    }
    t->pumping = false;
}

static void on_probe(int status, const sluice_decision *d, void *arg)
{
    bench_thread *t = arg;
    t->probe_state = (status == 0 && d && !d->store_error) ? 1 : 2;
}

/*
 * Waits (up to 2 s) until the loop's store connection answers: until then a
 * Redis store fails decisions at once, which would measure nothing.  Probes
 * are peeks (cost 0), so they consume nothing.
 */
static void warm_up(bench_thread *t)
{
    sluice_match m = t->sh->proto;
    for (int attempt = 0; attempt < 200; attempt++) {
        /* The state lives in t, so a probe still pending after a loop error is harmless. */
        t->probe_state = 0;
        if (sluice_decide_async(t->as, t->sh->cfg, &m, 0, SLUICE_NOW, on_probe, t) < 0)
            return;
        while (t->probe_state == 0) {
            if (event_base_loop(t->base, EVLOOP_ONCE) != 0)
                return;
        }
        if (t->probe_state == 1)
            return;
        struct timeval tv = {0, 10 * 1000};
        event_base_loopexit(t->base, &tv);
        event_base_dispatch(t->base);
    }
}

static void *run_async(void *arg)
{
    bench_thread *t = arg;
    sluice_error err = {0};
    t->slots = calloc((size_t)t->sh->o->concurrency, sizeof(*t->slots));
    t->base = event_base_new();
    if (!t->slots || !t->base) {
        t->fail_status = SLUICE_ENOMEM;
        goto out;
    }
    int rc = sluice_async_new(&t->as, t->sh->st, t->base, &err);
    if (rc != 0) {
        t->fail_status = rc;
        goto out;
    }
    warm_up(t);
    gate(t);
    pump(t);
    while (t->completed < t->todo) {
        /* 1: no events pending although decisions are in flight: give up. */
        if (event_base_dispatch(t->base) != 0 && t->inflight > 0)
            break;
        if (t->completed < t->todo && t->inflight == 0)
            pump(t);
    }
    sluice_async_free(t->as);
out:
    if (t->fail_status != 0)
        gate(t);
    /* Decisions that never completed count as errors. */
    t->errors += (uint64_t)(t->todo - t->completed);
    atomic_store_explicit(&t->done, t->todo, memory_order_relaxed);
    if (t->base)
        event_base_free(t->base);
    free(t->slots);
    return NULL;
}

static const char bench_usage[] =
    "usage: sluice bench --config FILE --rule R [--store URL] [--keys N] [--requests N]\n"
    "                    [--concurrency N] [--threads N] [--hot]\n"
    "  --keys N          distinct identifiers, 1..10000000 (default 10000)\n"
    "  --requests N      decisions in total (default 1000000)\n"
    "  --threads N       threads deciding in parallel, 1..256 (default 1)\n"
    "  --concurrency N   decisions in flight at once (Redis: per thread, async;\n"
    "                    memory://: number of threads when --threads is not given)\n"
    "  --hot             every decision on one key\n"
    "last line: decisions_per_sec=N p50_us=X p99_us=X p999_us=X allowed=N denied=N errors=N\n"
    "(latencies in microseconds with two decimals)\n";

static int bench_parse(int argc, char **argv, bench_opts *o)
{
    enum { O_CONFIG = 256, O_RULE, O_STORE, O_KEYS, O_REQUESTS, O_CONC, O_THREADS, O_HOT, O_HELP };
    static const struct option opts[] = {{"config", required_argument, NULL, O_CONFIG},
                                         {"rule", required_argument, NULL, O_RULE},
                                         {"store", required_argument, NULL, O_STORE},
                                         {"keys", required_argument, NULL, O_KEYS},
                                         {"requests", required_argument, NULL, O_REQUESTS},
                                         {"concurrency", required_argument, NULL, O_CONC},
                                         {"threads", required_argument, NULL, O_THREADS},
                                         {"hot", no_argument, NULL, O_HOT},
                                         {"help", no_argument, NULL, O_HELP},
                                         {NULL, 0, NULL, 0}};
    o->keys = 10000;
    o->requests = 1000000;
    o->concurrency = 1;
    o->threads = 0;
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "", opts, NULL);
        if (c == -1)
            break;
        int bad = 0;
        switch (c) {
        case O_CONFIG:
            o->config = optarg;
            break;
        case O_RULE:
            o->rule = optarg;
            break;
        case O_STORE:
            o->store = optarg;
            break;
        case O_HOT:
            o->hot = true;
            break;
        case O_HELP:
            return 1;
        case O_KEYS:
            bad = cli_parse_i64(optarg, 1, BENCH_KEYS_MAX, &o->keys);
            break;
        case O_REQUESTS:
            bad = cli_parse_i64(optarg, 1, INT64_MAX / 2, &o->requests);
            break;
        case O_CONC:
            bad = cli_parse_i64(optarg, 1, BENCH_CONC_MAX, &o->concurrency);
            break;
        case O_THREADS:
            bad = cli_parse_i64(optarg, 1, BENCH_THREADS_MAX, &o->threads);
            break;
        default:
            cli_errorf("bench", "unknown or incomplete option '%s'", argv[optind - 1]);
            return -1;
        }
        if (bad) {
            cli_errorf("bench", "%s: '%s' is not a number in range", argv[optind - 2], optarg);
            return -1;
        }
    }
    if (optind < argc) {
        cli_errorf("bench", "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (!o->config || !o->rule) {
        cli_errorf("bench", "--config FILE and --rule R are required");
        return -1;
    }
    return 0;
}

static void progress(bench_thread *th, int64_t nthreads, int64_t total, uint64_t t0)
{
    int64_t done = 0;
    for (int64_t i = 0; i < nthreads; i++)
        done += atomic_load_explicit(&th[i].done, memory_order_relaxed);
    double secs = (double)(now_ns() - t0) / 1e9;
    fprintf(stderr, "\r  %lld/%lld decisions  %.0f/s   ", (long long)done, (long long)total,
            secs > 0 ? (double)done / secs : 0.0);
}

static void summary(const bench_opts *o, const char *url, bench_thread *th, int64_t nthreads,
                    double secs, double cpu_secs, bench_hist *all)
{
    uint64_t allowed = 0, denied = 0, errors = 0;
    int first_error = 0;
    for (int64_t i = 0; i < nthreads; i++) {
        if (!first_error)
            first_error = th[i].first_error;
        all->sum_ns += th[i].hist->sum_ns;
        allowed += th[i].allowed;
        denied += th[i].denied;
        errors += th[i].errors;
        for (int b = 0; b < HIST_BUCKETS; b++)
            all->count[b] += th[i].hist->count[b];
        if (th[i].hist->max_ns > all->max_ns)
            all->max_ns = th[i].hist->max_ns;
    }
    double rate = secs > 0 ? (double)o->requests / secs : 0;
    double p50 = hist_quantile(all, 0.50) / 1000, p90 = hist_quantile(all, 0.90) / 1000;
    double p99 = hist_quantile(all, 0.99) / 1000, p999 = hist_quantile(all, 0.999) / 1000;
    printf("sluice bench  rule=%s  store=%s  keys=%lld%s  threads=%lld  concurrency=%lld%s\n",
           o->rule, url, (long long)(o->hot ? 1 : o->keys), o->hot ? " (hot)" : "",
           (long long)nthreads, (long long)o->concurrency, o->async ? " (async)" : "");
    printf("  %-16s %lld\n", "decisions", (long long)o->requests);
    printf("  %-16s %.3f\n", "elapsed_s", secs);
    printf("  %-16s %.0f\n", "decisions/s", rate);
    /* On a shared machine wall-clock rate understates; CPU time does not. */
    printf("  %-16s %.3f  (%.0f decisions per CPU-second, this process)\n", "cpu_s", cpu_secs,
           cpu_secs > 0 ? (double)o->requests / cpu_secs : 0.0);
    uint64_t n = allowed + denied + errors;
    printf("  %-16s mean %.2f  p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n", "latency_us",
           n ? (double)all->sum_ns / (double)n / 1000 : 0.0, p50, p90, p99, p999,
           (double)all->max_ns / 1000);
    printf("  %-16s %llu\n", "allowed", (unsigned long long)allowed);
    printf("  %-16s %llu\n", "denied", (unsigned long long)denied);
    printf("  %-16s %llu", "errors", (unsigned long long)errors);
    if (first_error == 1)
        printf("  (first: store failed, on_store_error decided)");
    else if (first_error < 0)
        printf("  (first: %s)", sluice_strerror(first_error));
    printf("\n");
    printf("decisions_per_sec=%.0f p50_us=%.2f p99_us=%.2f p999_us=%.2f allowed=%llu denied=%llu "
           "errors=%llu\n",
           rate, p50, p99, p999, (unsigned long long)allowed, (unsigned long long)denied,
           (unsigned long long)errors);
}

int cli_bench(int argc, char **argv)
{
    bench_opts o = {0};
    int ex = cli_parsed(bench_parse(argc, argv, &o), bench_usage);
    if (ex >= 0)
        return ex;
    bench_shared sh = {.o = &o};
    atomic_init(&sh.ready, 0);
    atomic_init(&sh.go, false);
    if (cli_open("bench", o.config, o.store, &sh.cfg, &sh.st) != 0)
        return CLI_EXIT_USAGE;
    const char *url = o.store ? o.store : sluice_config_store_url(sh.cfg);
    if (!url)
        url = "memory://";
    /* Stores with an event-loop client pipeline decisions; memory decides inline. */
    o.async = strncmp(url, "redis", 5) == 0 && o.concurrency > 1;
    if (o.threads == 0)
        o.threads = o.async ? 1 : o.concurrency;

    int status = CLI_EXIT_USAGE;
    bench_thread *th = NULL;
    bench_hist *hists = NULL;
    sluice_error err = {0};
    if (sluice_config_match_rule(sh.cfg, o.rule, NULL, "bench-0", 7, &sh.proto, &err) != 0) {
        cli_errorf("bench", "%s", err.msg[0] ? err.msg : "unknown rule");
        goto out;
    }
    if (o.hot)
        o.keys = 1;
    th = calloc((size_t)o.threads, sizeof(*th));
    hists = calloc((size_t)o.threads + 1, sizeof(*hists));
    if (!th || !hists) {
        cli_errorf("bench", "out of memory");
        goto out;
    }
    bool tty = isatty(STDERR_FILENO);
    int64_t started = 0;
    for (int64_t i = 0; i < o.threads; i++) {
        th[i].sh = &sh;
        th[i].todo = o.requests / o.threads + (i < o.requests % o.threads ? 1 : 0);
        th[i].rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
        th[i].hist = &hists[i + 1];
        atomic_init(&th[i].done, 0);
        if (pthread_create(&th[i].tid, NULL, o.async ? run_async : run_sync, &th[i]) != 0) {
            cli_errorf("bench", "cannot start thread %lld", (long long)i);
            break;
        }
        started++;
    }
    while (atomic_load(&sh.ready) < started) {
        struct timespec ts = {0, 100 * 1000};
        nanosleep(&ts, NULL);
    }
    uint64_t t0 = now_ns(), c0 = cpu_ns();
    atomic_store(&sh.go, true);
    if (started == o.threads && tty) {
        for (;;) {
            int64_t done = 0;
            for (int64_t i = 0; i < o.threads; i++)
                done += atomic_load_explicit(&th[i].done, memory_order_relaxed);
            if (done >= o.requests)
                break;
            progress(th, o.threads, o.requests, t0);
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    for (int64_t i = 0; i < started; i++)
        pthread_join(th[i].tid, NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    double cpu_secs = (double)(cpu_ns() - c0) / 1e9;
    if (tty)
        fputs("\r\033[K", stderr);
    if (started != o.threads)
        goto out;
    for (int64_t i = 0; i < o.threads; i++) {
        if (th[i].fail_status != 0) {
            cli_errorf("bench", "thread %lld: %s", (long long)i,
                       sluice_strerror(th[i].fail_status));
            goto out;
        }
    }
    summary(&o, url, th, o.threads, secs, cpu_secs, &hists[0]);
    status = CLI_EXIT_OK;
out:
    free(hists);
    free(th);
    sluice_store_close(sh.st);
    sluice_config_free(sh.cfg);
    return status;
}
