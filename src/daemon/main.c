/* SPDX-License-Identifier: MIT */
/*
 * main.c - sluiced: flags, config, store, workers and signals.
 *
 *   sluiced --config FILE [--listen ADDR] [--grpc-listen ADDR] [--store URL]
 *           [--workers N] [--max-connections N] [--request-timeout-ms N]
 *           [--log-level L]
 *
 * Flags override the config's listen/grpc_listen/store/workers.  The main thread only
 * waits for signals (on its own libevent loop): SIGHUP reloads the config
 * (a bad one is refused and logged, the old one stays), SIGTERM and SIGINT
 * drain and exit 0.  The store is opened once and outlives every reload.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "policy/policy.h"
#include "store/redis/redis_engine.h"

static const char *config_path;

static void usage(FILE *f)
{
    fprintf(f, "usage: sluiced --config FILE [--listen HOST:PORT] [--grpc-listen HOST:PORT]\n"
               "               [--store URL] [--workers N]\n"
               "               [--max-connections N] [--request-timeout-ms N]\n"
               "               [--log-level debug|info|warn|error]\n"
               "       sluiced --version\n");
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || end == s || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct event_base *base = arg;
    if (sig == SIGHUP) {
        sluiced_log(SLUICED_LOG_INFO, "sighup", "action=reload");
        sluiced_cfg_reload(config_path);
        return;
    }
    sluiced_log(SLUICED_LOG_INFO, "shutdown", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
    event_base_loopbreak(base);
}

/* The Redis engine a node decides with (Lua or the module), whenever it
 * changes: at the first connection, after a failover, or when the module
 * is unloaded.  addr is host:port only, never a credential. */
static void log_engine(const char *addr, const char *engine, const char *why)
{
    char q[300];
    sluiced_log(SLUICED_LOG_INFO, "store_engine", "node=%s engine=%s reason=%s",
                sluiced_log_quote(q, sizeof(q), addr), engine, why);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"listen", required_argument, NULL, 'l'},
                                             {"grpc-listen", required_argument, NULL, 'g'},
                                             {"store", required_argument, NULL, 's'},
                                             {"workers", required_argument, NULL, 'w'},
                                             {"max-connections", required_argument, NULL, 'm'},
                                             {"request-timeout-ms", required_argument, NULL, 't'},
                                             {"log-level", required_argument, NULL, 'L'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    const char *listen_flag = NULL, *grpc_flag = NULL, *store_flag = NULL;
    int workers = -1, max_conns = SLUICED_MAX_CONNECTIONS;
    int req_timeout = SLUICED_REQUEST_TIMEOUT_MS;
    int ch;
    /* Before any libevent or jansson call: their per-request allocations go
     * through the daemon's per-thread caches (alloc.c). */
    event_set_mem_functions(sluiced_malloc, sluiced_realloc, sluiced_free);
    json_set_alloc_funcs(sluiced_malloc, sluiced_free);
    while ((ch = getopt_long(argc, argv, "c:l:s:w:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            listen_flag = optarg;
            break;
        case 'g':
            grpc_flag = optarg;
            break;
        case 's':
            store_flag = optarg;
            break;
        case 'w':
            if (strcmp(optarg, "auto") == 0)
                workers = 0;
            else if (parse_int(optarg, 1, SLUICED_MAX_WORKERS, &workers)) {
                fprintf(stderr, "sluiced: --workers must be auto or 1..%d\n", SLUICED_MAX_WORKERS);
                return 2;
            }
            break;
        case 'm':
            if (parse_int(optarg, 1, 1000000, &max_conns)) {
                fprintf(stderr, "sluiced: --max-connections must be 1..1000000\n");
                return 2;
            }
            break;
        case 't':
            if (parse_int(optarg, 100, 3600000, &req_timeout)) {
                fprintf(stderr, "sluiced: --request-timeout-ms must be 100..3600000\n");
                return 2;
            }
            break;
        case 'L': {
            static const char *lv[] = {"debug", "info", "warn", "error"};
            int found = -1;
            for (int i = 0; i < 4; i++)
                if (strcmp(optarg, lv[i]) == 0)
                    found = i;
            if (found < 0) {
                fprintf(stderr, "sluiced: --log-level must be debug, info, warn or error\n");
                return 2;
            }
            sluiced_log_set_level(found);
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("sluiced %s\n", SLUICE_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!config_path || optind != argc) {
        usage(stderr);
        return 2;
    }

    sluice_config *cfg = NULL;
    sluice_error err = {0};
    if (sluice_config_load_file(&cfg, config_path, &err) != 0) {
        char q[300];
        sluiced_log(SLUICED_LOG_ERROR, "config_invalid", "reason=%s",
                    sluiced_log_quote(q, sizeof(q), err.msg));
        fprintf(stderr, "sluiced: %s\n", err.msg);
        return 2;
    }
    const char *store_url = store_flag ? store_flag : sluice_config_store_url(cfg);
    char listen_buf[300];
    snprintf(listen_buf, sizeof(listen_buf), "%s",
             listen_flag   ? listen_flag
             : cfg->listen ? cfg->listen
                           : "127.0.0.1:8080");
    char grpc_buf[300];
    const char *grpc_listen = grpc_flag ? grpc_flag : cfg->grpc_listen;
    if (grpc_listen)
        snprintf(grpc_buf, sizeof(grpc_buf), "%s", grpc_listen);
    if (workers < 0)
        workers = cfg->workers;
    if (workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n < 1 ? 1 : n > SLUICED_MAX_WORKERS ? SLUICED_MAX_WORKERS : (int)n;
    }

    sluice__redis_engine_set_log(log_engine);
    sluice_store_options so = {0};
    so.timeout_ms = cfg->timeout_ms;
    so.on_store_error = cfg->on_store_error;
    char redacted[512];
    sluiced_redact_url(redacted, sizeof(redacted), store_url);
    if (sluice_store_open(&sluiced_store, store_url, &so, &err) != 0) {
        char q[300];
        sluiced_log(SLUICED_LOG_ERROR, "store_open_failed", "store=%s reason=%s", redacted,
                    sluiced_log_quote(q, sizeof(q), err.msg));
        fprintf(stderr, "sluiced: store %s: %s\n", redacted, err.msg);
        sluice_config_free(cfg);
        return 2;
    }
    int nrules = cfg->nrules;
    if (sluiced_cfg_install(cfg) != 0) {
        fprintf(stderr, "sluiced: out of memory\n");
        return 1;
    }
    sluiced_log(SLUICED_LOG_INFO, "config_loaded", "file=%s rules=%d store=%s", config_path, nrules,
                redacted);

    /* evhttp allocates many 1 KiB evbuffer chains per request; with glibc's
     * fastbins on, each such allocation runs malloc_consolidate().  tcache
     * still serves the small sizes. */
    mallopt(M_MXFAST, 0);
    signal(SIGPIPE, SIG_IGN);
    /* Block the signals in every thread but this one's loop, which handles
     * them with libevent's signal events; workers inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    sluiced_opts o = {.config_path = config_path,
                      .listen = listen_buf,
                      .grpc_listen = grpc_listen ? grpc_buf : NULL,
                      .store_url = store_url,
                      .workers = workers,
                      .max_connections = max_conns,
                      .request_timeout_ms = req_timeout,
                      .idle_timeout_s = SLUICED_IDLE_TIMEOUT_S};
    if (sluiced_server_start(&o) != 0) {
        fprintf(stderr, "sluiced: cannot start (see log)\n");
        return 1;
    }

    struct event_base *base = event_base_new();
    if (!base)
        return 1;
    struct event *ev_hup = evsignal_new(base, SIGHUP, on_signal, base);
    struct event *ev_term = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *ev_int = evsignal_new(base, SIGINT, on_signal, base);
    evsignal_add(ev_hup, NULL);
    evsignal_add(ev_term, NULL);
    evsignal_add(ev_int, NULL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    sluiced_log(SLUICED_LOG_INFO, "started", "pid=%d version=%s", (int)getpid(), SLUICE_VERSION);

    event_base_dispatch(base);

    sluiced_server_drain_and_stop();
    event_free(ev_hup);
    event_free(ev_term);
    event_free(ev_int);
    event_base_free(base);
    sluiced_cfg_shutdown();
    sluice_store_close(sluiced_store);
    sluiced_log(SLUICED_LOG_INFO, "stopped", "status=0");
    sluiced_alloc_thread_flush();
    return 0;
}
