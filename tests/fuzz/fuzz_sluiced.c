/* SPDX-License-Identifier: MIT */
/*
 * fuzz_sluiced.c - the sluiced worker of the HTTP and JSON fuzz targets
 * (fuzz_sluiced.h).  Everything of the server except the listening socket
 * and the threads: the worker struct is filled as server.c fills it, the
 * connection is accepted with sluiced_http_accept() like an accept4()ed one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/http.h"
#include "fuzz_sluiced.h"
#include "policy/policy.h"

#define RLS SLUICE_SOURCE_DIR "/tests/rls"

/* Every kind of rule: methods, prefixes, tiers, shadow, several limits,
 * identity from headers or the address, and descriptor files for /json. */
static const char config[] =
    "timeout_ms: 50\n"
    "headers: both\n"
    "trusted_proxies: [127.0.0.1/32, \"::1\"]\n"
    "identify: [header:X-API-Key, header:X-User-Id, ip]\n"
    "tier_header: X-User-Tier\n"
    "descriptors_config:\n"
    "  - " RLS "/good_sluice_algorithm.yaml\n"
    "  - " RLS "/upstream/readme/example2.yaml\n"
    "  - " RLS "/upstream/readme/example7.yaml\n"
    "  - " RLS "/upstream/examples/example_core.yaml\n"
    "rules:\n"
    "  - name: login\n"
    "    match: { method: POST, path: /api/auth/login }\n"
    "    key: ip\n"
    "    limits: [ { algorithm: fixed_window, limit: 2, window: 1m } ]\n"
    "  - name: search\n"
    "    match: { method: GET, path: /api/search }\n"
    "    limits:\n"
    "      - { algorithm: sliding_window, limit: 3, window: 1m }\n"
    "      - { algorithm: sliding_log, limit: 5, window: 1h }\n"
    "  - name: upload\n"
    "    match: { path: /api/upload* }\n"
    "    shadow: true\n"
    "    limits: [ { algorithm: token_bucket, limit: 1, window: 1h, burst: 2 } ]\n"
    "  - name: queue\n"
    "    match: { path: /api/queue }\n"
    "    limits: [ { algorithm: leaky_bucket, limit: 1000, window: 1s, burst: 3 } ]\n"
    "  - name: default\n"
    "    match: { path: /* }\n"
    "    tiers:\n"
    "      free: [ { algorithm: sliding_window, limit: 3, window: 1h } ]\n"
    "      premium: [ { algorithm: token_bucket, limit: 5, window: 1h },\n"
    "                 { algorithm: fixed_window, limit: 100, window: 1d } ]\n";

static sluiced_worker w;
static sluiced_http_ctx *ctx;
static int64_t fake_now_us; /* the sweep clock, moved forward by FZ_TIMEOUT/FZ_IDLE */

static void init(void)
{
    sluice_error err = {0};
    sluiced_log_set_level(SLUICED_LOG_ERROR + 1); /* quiet: request_timeout etc. */
    if (sluice_store_open(&sluiced_store, "memory://?max_keys=100000", NULL, &err) != 0) {
        fprintf(stderr, "fuzz_sluiced: store: %s\n", err.msg);
        abort();
    }
    sluice_config *cfg = NULL;
    if (sluice_config_load_string(&cfg, config, sizeof(config) - 1, "fuzz.yaml", &err) != 0 ||
        sluiced_cfg_install(cfg) != 0) {
        fprintf(stderr, "fuzz_sluiced: config: %s\n", err.msg);
        abort();
    }
    w.base = event_base_new();
    if (!w.base || sluice_async_new(&w.async, sluiced_store, w.base, &err) != 0)
        abort();
    sluiced_http_cfg hc = {.request_timeout_ms = SLUICED_REQUEST_TIMEOUT_MS,
                           .idle_timeout_s = SLUICED_IDLE_TIMEOUT_S,
                           .handle = sluiced_handle,
                           .arg = &w};
    ctx = sluiced_http_ctx_new(w.base, &hc);
    if (!ctx)
        abort();
    fake_now_us = sluiced_now_us();
}

static void pump(void)
{
    for (int i = 0; i < 4; i++)
        event_base_loop(w.base, EVLOOP_NONBLOCK);
}

/* Reads what the server wrote; true once it closed its side. */
static bool drain(int fd)
{
    static char sink[65536];
    for (;;) {
        ssize_t n = read(fd, sink, sizeof(sink));
        if (n > 0)
            continue;
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
}

static void accept_peer(int fd, int peer)
{
    struct sockaddr_in in4 = {.sin_family = AF_INET, .sin_port = htons(40000)};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(40000)};
    const struct sockaddr *sa = NULL;
    socklen_t len = 0;
    if (peer == FZ_PEER_TRUSTED || peer == FZ_PEER_OTHER) {
        inet_pton(AF_INET, peer == FZ_PEER_TRUSTED ? "127.0.0.1" : "10.9.8.7", &in4.sin_addr);
        sa = (const struct sockaddr *)&in4;
        len = sizeof(in4);
    } else if (peer == FZ_PEER_V6) {
        inet_pton(AF_INET6, "::ffff:192.0.2.1", &in6.sin6_addr);
        sa = (const struct sockaddr *)&in6;
        len = sizeof(in6);
    }
    if (sluiced_http_accept(ctx, fd, sa, len, false) != 0)
        abort();
}

void fz_session(const uint8_t *data, size_t size, const uint32_t *cuts, int ncuts, int peer,
                int flags)
{
    if (!ctx)
        init();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    int client = sv[0];
    accept_peer(sv[1], peer);
    pump();

    bool server_closed = false;
    size_t off = 0;
    for (int k = 0; off < size && !server_closed; k++) {
        size_t want = ncuts > 0 && cuts[k % ncuts] > 0 ? cuts[k % ncuts] : size;
        if (want > size - off)
            want = size - off;
        ssize_t n = write(client, data + off, want);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break; /* the server closed: the rest goes nowhere */
        pump();
        if (!(flags & FZ_EARLY_CLOSE))
            server_closed = drain(client);
    }
    if (flags & (FZ_TIMEOUT | FZ_IDLE)) {
        fake_now_us += (int64_t)(flags & FZ_IDLE ? SLUICED_IDLE_TIMEOUT_S + 1 : 11) * 1000000;
        sluiced_http_sweep(ctx, fake_now_us);
        pump();
    }
    if (flags & FZ_EARLY_CLOSE) {
        close(client);
        client = -1;
    } else {
        shutdown(client, SHUT_WR);
    }
    /* The server answers what it received, then closes; a lingering close
     * ends at the client's EOF (or close). */
    /* A leaky-bucket 200 of /v1/authorize waits its delay on a timer (at
     * most a few ms with the config above): after a fast spin, wait a
     * little between turns, one second in all. */
    for (int i = 0; i < 1200 && (sluiced_http_ctx_count(ctx) > 0 || atomic_load(&w.inflight));
         i++) {
        if (i >= 200)
            usleep(1000);
        pump();
        if (client >= 0 && drain(client)) {
            close(client);
            client = -1;
        }
    }
    if (client >= 0)
        close(client);
    for (int i = 0; i < 10 && sluiced_http_ctx_count(ctx) > 0; i++)
        pump();
    if (sluiced_http_ctx_count(ctx) != 0) {
        fprintf(stderr, "fuzz_sluiced: the connection never closed\n");
        abort();
    }
    if (atomic_load(&w.inflight) != 0) {
        fprintf(stderr, "fuzz_sluiced: %d requests never answered\n", atomic_load(&w.inflight));
        abort();
    }
}
