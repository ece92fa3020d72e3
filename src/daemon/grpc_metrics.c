/* SPDX-License-Identifier: MIT */
/*
 * grpc_metrics.c - the gRPC series of GET /metrics: calls by method and
 * grpc-status, call latency (headers received to reply submitted) by
 * method, open connections, and connections ended for abuse.  Relaxed
 * atomics on the request path, as metrics.c; the method label is bounded
 * (ShouldRateLimit, Check, other), so is the code (17 gRPC statuses).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "grpc.h"
#include "textout.h"

static const int64_t bounds_us[] = {50,   100,   250,   500,   1000,   2500,
                                    5000, 10000, 25000, 50000, 100000, 250000};
#define NB ((int)(sizeof(bounds_us) / sizeof(bounds_us[0])))

static atomic_uint_fast64_t calls[GRPC_NMETHODS][GRPC_NSTATUS];
static atomic_uint_fast64_t lat[GRPC_NMETHODS][NB + 1];
static atomic_uint_fast64_t lat_sum_us[GRPC_NMETHODS];
static atomic_int conns;
static atomic_uint_fast64_t aborted;

static const char *const method_name[GRPC_NMETHODS] = {"ShouldRateLimit", "Check", "other"};
static const char *const status_name[GRPC_NSTATUS] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

void sluiced_grpc_metrics_rpc(int method, int status, int64_t latency_us)
{
    if (method < 0 || method >= GRPC_NMETHODS || status < 0 || status >= GRPC_NSTATUS)
        return;
    atomic_fetch_add_explicit(&calls[method][status], 1, memory_order_relaxed);
    if (latency_us < 0)
        latency_us = 0;
    int b = 0;
    while (b < NB && latency_us > bounds_us[b])
        b++;
    atomic_fetch_add_explicit(&lat[method][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&lat_sum_us[method], (uint64_t)latency_us, memory_order_relaxed);
}

void sluiced_grpc_metrics_connections(int delta)
{
    atomic_fetch_add_explicit(&conns, delta, memory_order_relaxed);
}

void sluiced_grpc_metrics_abuse(void)
{
    atomic_fetch_add_explicit(&aborted, 1, memory_order_relaxed);
}

char *sluiced_grpc_metrics_render(size_t *len)
{
    sluiced_out o = {malloc(8192), 0, 8192};
    if (!o.p)
        abort();
    sluiced_putf(&o, "# HELP sluice_grpc_requests_total gRPC calls by method and grpc-status.\n"
                     "# TYPE sluice_grpc_requests_total counter\n");
    for (int m = 0; m < GRPC_NMETHODS; m++)
        for (int s = 0; s < GRPC_NSTATUS; s++) {
            uint64_t v = atomic_load(&calls[m][s]);
            /* OK always for the served methods; other codes once seen */
            if (v || (s == GRPC_OK && m != GRPC_M_OTHER))
                sluiced_putf(&o, "sluice_grpc_requests_total{method=\"%s\",code=\"%s\"} %llu\n",
                             method_name[m], status_name[s], (unsigned long long)v);
        }
    sluiced_putf(&o,
                 "# HELP sluice_grpc_request_duration_seconds gRPC call latency, request headers "
                 "received to reply submitted.\n"
                 "# TYPE sluice_grpc_request_duration_seconds histogram\n");
    for (int m = 0; m < GRPC_NMETHODS; m++) {
        uint64_t total = 0;
        for (int b = 0; b <= NB; b++) {
            total += atomic_load(&lat[m][b]);
            if (b < NB)
                sluiced_putf(&o,
                             "sluice_grpc_request_duration_seconds_bucket{method=\"%s\",le=\"%g\"} "
                             "%llu\n",
                             method_name[m], (double)bounds_us[b] / 1e6, (unsigned long long)total);
        }
        sluiced_putf(&o,
                     "sluice_grpc_request_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n"
                     "sluice_grpc_request_duration_seconds_sum{method=\"%s\"} %.6f\n"
                     "sluice_grpc_request_duration_seconds_count{method=\"%s\"} %llu\n",
                     method_name[m], (unsigned long long)total, method_name[m],
                     (double)atomic_load(&lat_sum_us[m]) / 1e6, method_name[m],
                     (unsigned long long)total);
    }
    sluiced_putf(&o,
                 "# HELP sluice_grpc_connections Open gRPC (HTTP/2) client connections.\n"
                 "# TYPE sluice_grpc_connections gauge\n"
                 "sluice_grpc_connections %d\n"
                 "# HELP sluice_grpc_connections_aborted_total gRPC connections ended for a flood, "
                 "rapid reset or a bad preface.\n"
                 "# TYPE sluice_grpc_connections_aborted_total counter\n"
                 "sluice_grpc_connections_aborted_total %llu\n",
                 atomic_load(&conns), (unsigned long long)atomic_load(&aborted));
    *len = o.len;
    return o.p;
}
