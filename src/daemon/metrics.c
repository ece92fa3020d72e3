/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - the counters behind GET /metrics, rendered in Prometheus text
 * format 0.0.4.  Counters are relaxed atomics updated on the request path
 * without locks; a rule's counters live in a slot found by rule name, so
 * they survive config reloads.  Rendering reads a consistent-enough
 * snapshot (each value is read once; histogram buckets are made cumulative
 * from the same reads, so +Inf always equals _count).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "grpc.h"
#include "rls/rls_metrics.h"
#include "store/redis/deny_cache.h"
#include "store/redis/redis_engine.h"
#include "textout.h"

/* Upper bounds of the latency histogram, in microseconds. */
static const int64_t lat_bounds_us[] = {50,   100,   250,   500,   1000,   2500,
                                        5000, 10000, 25000, 50000, 100000, 250000};
#define NBOUNDS ((int)(sizeof(lat_bounds_us) / sizeof(lat_bounds_us[0])))

typedef struct slot {
    char name[72];
    atomic_uint_fast64_t count[SLUICED_RES_N];
} slot;

static slot slots[SLUICED_METRIC_SLOTS];
static atomic_int nslots;
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;

static atomic_uint_fast64_t lat_bucket[NBOUNDS + 1]; /* last: above every bound */
static atomic_uint_fast64_t lat_sum_us;
static atomic_uint_fast64_t store_errors;
static atomic_uint_fast64_t fallbacks[3]; /* by on_store_error */
static atomic_uint_fast64_t reloads[2];   /* failed, ok */
static atomic_int connections;

/* Responses by status: the codes sluiced sends, the rest counted as "other". */
static const int codes[] = {200, 400, 401, 403, 404, 405, 408, 413, 429, 431, 500, 503};
#define NCODES ((int)(sizeof(codes) / sizeof(codes[0])))
static atomic_uint_fast64_t responses[NCODES + 1];

int sluiced_metrics_slot(const char *rule)
{
    pthread_mutex_lock(&slot_lock);
    int n = atomic_load(&nslots);
    for (int i = 0; i < n; i++) {
        if (strcmp(slots[i].name, rule) == 0) {
            pthread_mutex_unlock(&slot_lock);
            return i;
        }
    }
    int r = -1;
    if (n < SLUICED_METRIC_SLOTS) {
        snprintf(slots[n].name, sizeof(slots[n].name), "%s", rule);
        atomic_store(&nslots, n + 1);
        r = n;
    }
    pthread_mutex_unlock(&slot_lock);
    return r;
}

void sluiced_metrics_decision(int s, int result, bool store_error, int on_store_error,
                              int64_t latency_us)
{
    if (s >= 0 && s < SLUICED_METRIC_SLOTS && result >= 0 && result < SLUICED_RES_N)
        atomic_fetch_add_explicit(&slots[s].count[result], 1, memory_order_relaxed);
    if (store_error) {
        atomic_fetch_add_explicit(&store_errors, 1, memory_order_relaxed);
        if (on_store_error >= 0 && on_store_error < 3)
            atomic_fetch_add_explicit(&fallbacks[on_store_error], 1, memory_order_relaxed);
    }
    if (latency_us < 0)
        latency_us = 0;
    int b = 0;
    while (b < NBOUNDS && latency_us > lat_bounds_us[b])
        b++;
    atomic_fetch_add_explicit(&lat_bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&lat_sum_us, (uint64_t)latency_us, memory_order_relaxed);
}

void sluiced_metrics_response(int status)
{
    int i = 0;
    while (i < NCODES && codes[i] != status)
        i++;
    atomic_fetch_add_explicit(&responses[i], 1, memory_order_relaxed);
}

void sluiced_metrics_reload(bool ok)
{
    atomic_fetch_add_explicit(&reloads[ok ? 1 : 0], 1, memory_order_relaxed);
}

void sluiced_metrics_connections(int delta)
{
    atomic_fetch_add_explicit(&connections, delta, memory_order_relaxed);
}

/* Rule names are [A-Za-z0-9_.-] (policy validates), so they need no escaping. */
char *sluiced_metrics_render(size_t keys, size_t *len)
{
    sluiced_out o = {malloc(8192), 0, 8192};
    if (!o.p)
        abort();
    static const char *res_name[SLUICED_RES_N] = {"allowed", "denied", "shadow_denied"};

    sluiced_putf(&o,
                 "# HELP sluice_build_info Version of sluiced.\n"
                 "# TYPE sluice_build_info gauge\n"
                 "sluice_build_info{version=\"%s\"} 1\n",
                 SLUICE_VERSION);
    sluiced_putf(&o, "# HELP sluice_decisions_total Decisions by rule and result.\n"
                     "# TYPE sluice_decisions_total counter\n");
    int n = atomic_load(&nslots);
    for (int i = 0; i < n; i++)
        for (int r = 0; r < SLUICED_RES_N; r++)
            sluiced_putf(&o, "sluice_decisions_total{rule=\"%s\",result=\"%s\"} %llu\n",
                         slots[i].name, res_name[r],
                         (unsigned long long)atomic_load(&slots[i].count[r]));

    uint64_t b[NBOUNDS + 1], total = 0;
    for (int i = 0; i <= NBOUNDS; i++)
        b[i] = atomic_load(&lat_bucket[i]);
    uint64_t sum = atomic_load(&lat_sum_us);
    sluiced_putf(&o, "# HELP sluice_decision_duration_seconds Decision latency, request parsed to "
                     "decision made.\n"
                     "# TYPE sluice_decision_duration_seconds histogram\n");
    for (int i = 0; i < NBOUNDS; i++) {
        total += b[i];
        sluiced_putf(&o, "sluice_decision_duration_seconds_bucket{le=\"%g\"} %llu\n",
                     (double)lat_bounds_us[i] / 1e6, (unsigned long long)total);
    }
    total += b[NBOUNDS];
    sluiced_putf(&o, "sluice_decision_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                 (unsigned long long)total);
    sluiced_putf(&o, "sluice_decision_duration_seconds_sum %.6f\n", (double)sum / 1e6);
    sluiced_putf(&o, "sluice_decision_duration_seconds_count %llu\n", (unsigned long long)total);

    sluiced_putf(&o,
                 "# HELP sluice_store_errors_total Decisions the store failed to make.\n"
                 "# TYPE sluice_store_errors_total counter\n"
                 "sluice_store_errors_total %llu\n",
                 (unsigned long long)atomic_load(&store_errors));
    static const char *mode[3] = {"allow", "deny", "local"};
    sluiced_putf(&o, "# HELP sluice_store_fallbacks_total Decisions made by on_store_error.\n"
                     "# TYPE sluice_store_fallbacks_total counter\n");
    for (int i = 0; i < 3; i++)
        sluiced_putf(&o, "sluice_store_fallbacks_total{mode=\"%s\"} %llu\n", mode[i],
                     (unsigned long long)atomic_load(&fallbacks[i]));
    sluiced_putf(&o,
                 "# HELP sluice_keys_held Keys held by the in-process store (or local fallback).\n"
                 "# TYPE sluice_keys_held gauge\n"
                 "sluice_keys_held %zu\n",
                 keys);
    uint64_t dc_hits, dc_entries;
    sluice__deny_cache_totals(&dc_hits, &dc_entries);
    sluiced_putf(&o,
                 "# HELP sluice_deny_cache_hits_total Denials answered by the Redis deny cache, "
                 "without a round trip.\n"
                 "# TYPE sluice_deny_cache_hits_total counter\n"
                 "sluice_deny_cache_hits_total %llu\n"
                 "# HELP sluice_deny_cache_entries Denials held by the Redis deny cache.\n"
                 "# TYPE sluice_deny_cache_entries gauge\n"
                 "sluice_deny_cache_entries %llu\n",
                 (unsigned long long)dc_hits, (unsigned long long)dc_entries);
    int eng;
    uint64_t eng_lua, eng_mod;
    sluice__redis_engine_totals(&eng, &eng_lua, &eng_mod);
    if (eng >= 0)
        sluiced_putf(
            &o,
            "# HELP sluice_store_engine The Redis engine of the latest connection set up "
            "(engine=auto detects per connection).\n"
            "# TYPE sluice_store_engine gauge\n"
            "sluice_store_engine{engine=\"lua\"} %d\n"
            "sluice_store_engine{engine=\"module\"} %d\n"
            "# HELP sluice_store_engine_connections_total Redis connections set up, by the "
            "engine they decide with.\n"
            "# TYPE sluice_store_engine_connections_total counter\n"
            "sluice_store_engine_connections_total{engine=\"lua\"} %llu\n"
            "sluice_store_engine_connections_total{engine=\"module\"} %llu\n",
            eng == 0, eng == 1, (unsigned long long)eng_lua, (unsigned long long)eng_mod);
    sluiced_putf(&o, "# HELP sluice_http_responses_total HTTP responses by status code.\n"
                     "# TYPE sluice_http_responses_total counter\n");
    for (int i = 0; i <= NCODES; i++) {
        uint64_t v = atomic_load(&responses[i]);
        if (i < NCODES)
            sluiced_putf(&o, "sluice_http_responses_total{code=\"%d\"} %llu\n", codes[i],
                         (unsigned long long)v);
        else
            sluiced_putf(&o, "sluice_http_responses_total{code=\"other\"} %llu\n",
                         (unsigned long long)v);
    }
    sluiced_putf(&o,
                 "# HELP sluice_http_connections Open client connections.\n"
                 "# TYPE sluice_http_connections gauge\n"
                 "sluice_http_connections %d\n",
                 atomic_load(&connections));
    sluiced_putf(&o,
                 "# HELP sluice_config_reloads_total Config reloads by result.\n"
                 "# TYPE sluice_config_reloads_total counter\n"
                 "sluice_config_reloads_total{result=\"ok\"} %llu\n"
                 "sluice_config_reloads_total{result=\"refused\"} %llu\n",
                 (unsigned long long)atomic_load(&reloads[1]),
                 (unsigned long long)atomic_load(&reloads[0]));
    size_t rlen = 0;
    char *rls = sluice__rls_metrics_render(&rlen); /* Envoy RLS descriptor counters */
    if (!rls)
        abort();
    sluiced_putf(&o, "%s", rls);
    free(rls);
    char *grpc = sluiced_grpc_metrics_render(&rlen); /* the gRPC listener's calls */
    sluiced_putf(&o, "%s", grpc);
    free(grpc);
    *len = o.len;
    return o.p;
}
