/* SPDX-License-Identifier: MIT */
/*
 * bench_redis.c - latency of the Redis store's asynchronous path under a
 * given load, through the public API (sluice_decide_async on a libevent
 * loop, as sluiced's workers use it).  scripts/bench_redis.sh runs it.
 *
 *   bench_redis URL RATE DURATION_MS [INFLIGHT]
 *
 * RATE 0: closed loop, INFLIGHT (default 64) decisions always in flight:
 * the peak; latency from each send.  RATE > 0: open loop, RATE decisions per
 * second whatever the answers (at most 4096 in flight), so latency is
 * measured at that load, not at the peak.  Decision i is due at
 * start + i / RATE; a timer ticking every BENCH_TICK_US (default 100 us, on
 * a precise timerfd clock) sends those that are due, so a tick carries a few
 * decisions, not a burst of a whole millisecond's worth.  Open-loop latency
 * runs from each decision's scheduled time, not from when it was sent: a
 * late tick or a full window counts against the client instead of being
 * left out (no coordinated omission).  One token_bucket rule (100/s, burst
 * 100) over 100000 keys.  Last line:
 * "decisions_per_sec=N p50_us=X p99_us=X errors=N".
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice.h"

#define KEYS 100000
#define MAX_INFLIGHT 4096

/* BENCH_LONG_TTL=1: a fixed window of 1 h instead, so keys live an hour and
 * Redis does not expire ~one key per decision (its active expiry cycle then
 * shows up in the tail latency) */
static const char yaml_fw[] = "timeout_ms: 1000\n"
                              "rules:\n"
                              "  - name: tb\n"
                              "    limits: [ { algorithm: fixed_window, limit: 1000000000, "
                              "window: 1h } ]\n";

static const char yaml[] = "timeout_ms: 1000\n"
                           "on_store_error: allow\n"
                           "rules:\n"
                           "  - name: tb\n"
                           "    limits: [ { algorithm: token_bucket, limit: 100, window: 1s, "
                           "burst: 100 } ]\n";

typedef struct bench {
    struct event_base *base;
    sluice_async *a;
    sluice_config *cfg;
    int64_t rate, inflight_max, end_us, start_us;
    int64_t inflight, sent, done, errors;
    int64_t *lat_us;
    size_t nlat, cap;
    uint64_t rng;
    struct event *tick;
} bench;

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef struct req {
    bench *b;
    int64_t t0;
} req;

static void send_one(bench *b, int64_t t0);

static void on_done(int status, const sluice_decision *d, void *arg)
{
    req *q = arg;
    bench *b = q->b;
    int64_t us = mono_us() - q->t0;
    free(q);
    b->inflight--;
    b->done++;
    if (status != 0 || !d || d->store_error)
        b->errors++;
    if (b->nlat < b->cap)
        b->lat_us[b->nlat++] = us;
    if (b->rate == 0 && mono_us() < b->end_us)
        send_one(b, mono_us());
    else if (mono_us() >= b->end_us && b->inflight == 0)
        event_base_loopbreak(b->base);
}

/* Sends one decision; its latency counts from t0. */
static void send_one(bench *b, int64_t t0)
{
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    char key[32];
    int n = snprintf(key, sizeof(key), "bench-%d", (int)(b->rng % KEYS));
    sluice_match m;
    sluice_error err;
    if (sluice_config_match_rule(b->cfg, "tb", NULL, key, (size_t)n, &m, &err) != 0) {
        fprintf(stderr, "bench_redis: %s\n", err.msg);
        exit(1);
    }
    req *q = malloc(sizeof(*q));
    if (!q)
        exit(1);
    q->b = b;
    q->t0 = t0;
    b->inflight++;
    b->sent++;
    if (sluice_decide_async(b->a, b->cfg, &m, 1, SLUICE_NOW, on_done, q) != 0) {
        free(q);
        b->inflight--;
        b->errors++;
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bench *b = arg;
    int64_t now = mono_us();
    if (now >= b->end_us) {
        event_del(b->tick);
        if (b->inflight == 0)
            event_base_loopbreak(b->base);
        return;
    }
    /* decisions 0..due-1 are due by now; decision i at start + i / rate */
    int64_t due = (now - b->start_us) * b->rate / 1000000 + 1;
    while (b->sent < due && b->inflight < MAX_INFLIGHT)
        send_one(b, b->start_us + b->sent * 1000000 / b->rate);
}

static int cmp64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, c = *(const int64_t *)y;
    return (a > c) - (a < c);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_redis URL RATE DURATION_MS [INFLIGHT]\n");
        return 2;
    }
    bench b;
    memset(&b, 0, sizeof(b));
    b.rate = strtoll(argv[2], NULL, 10);
    int64_t dur_ms = strtoll(argv[3], NULL, 10);
    b.inflight_max = argc > 4 ? strtoll(argv[4], NULL, 10) : 64;
    long tick_us = getenv("BENCH_TICK_US") ? strtol(getenv("BENCH_TICK_US"), NULL, 10) : 100;
    if (tick_us < 1 || tick_us > 999999)
        tick_us = 100;
    b.rng = 0x9e3779b97f4a7c15ULL;
    b.cap = 20000000;
    b.lat_us = malloc(b.cap * sizeof(int64_t));
    sluice_error err;
    sluice_store *st;
    const char *lt = getenv("BENCH_LONG_TTL");
    bool long_ttl = lt && strcmp(lt, "1") == 0;
    if (!b.lat_us ||
        sluice_config_load_string(&b.cfg, long_ttl ? yaml_fw : yaml,
                                  strlen(long_ttl ? yaml_fw : yaml), "bench", &err) != 0 ||
        sluice_store_open(&st, argv[1], &(sluice_store_options){.timeout_ms = 1000}, &err) != 0) {
        fprintf(stderr, "bench_redis: %s\n", err.msg);
        return 1;
    }
    /* a precise (timerfd) clock, so the open loop can tick below 1 ms (BENCH_TICK_US) */
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    b.base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (sluice_async_new(&b.a, st, b.base, &err) != 0) {
        fprintf(stderr, "bench_redis: %s\n", err.msg);
        return 1;
    }
    /* warm up: connect and load the script */
    b.end_us = mono_us() + 300000;
    b.rate = 0;
    for (int i = 0; i < 8; i++)
        send_one(&b, mono_us());
    event_base_dispatch(b.base);
    b.rate = strtoll(argv[2], NULL, 10);
    b.nlat = 0;
    b.sent = b.done = b.errors = 0;

    b.start_us = mono_us();
    b.end_us = b.start_us + dur_ms * 1000;
    if (b.rate == 0) {
        for (int64_t i = 0; i < b.inflight_max; i++)
            send_one(&b, mono_us());
    } else {
        b.tick = event_new(b.base, -1, EV_PERSIST, on_tick, &b);
        struct timeval tv = {0, tick_us};
        event_add(b.tick, &tv);
    }
    event_base_dispatch(b.base);
    int64_t elapsed = mono_us() - b.start_us;
    qsort(b.lat_us, b.nlat, sizeof(int64_t), cmp64);
    int64_t p50 = b.nlat ? b.lat_us[b.nlat / 2] : 0;
    int64_t p99 = b.nlat ? b.lat_us[(size_t)((double)b.nlat * 0.99)] : 0;
    printf("decisions_per_sec=%" PRId64 " p50_us=%" PRId64 " p99_us=%" PRId64 " errors=%" PRId64
           "\n",
           b.done * 1000000 / (elapsed > 0 ? elapsed : 1), p50, p99, b.errors);
    if (b.tick)
        event_free(b.tick);
    sluice_async_free(b.a);
    event_base_free(b.base);
    sluice_store_close(st);
    sluice_config_free(b.cfg);
    free(b.lat_us);
    return 0;
}
