/* SPDX-License-Identifier: MIT */
/*
 * server.c - the listening side of sluiced: one listening socket for
 * HTTP/1.1 and, with grpc_listen, one for gRPC (HTTP/2, grpc_conn.c); N
 * worker threads, each with its own libevent loop, its own copy of the
 * sockets and its own sets of connections (http_conn.c, grpc_conn.c; no
 * locks between workers on the request path).  It accepts, applies the
 * connection cap to both kinds together (at the cap a worker stops
 * accepting and new connections wait in the kernel backlog),
 * runs the 100 ms sweep of request and idle timeouts, and drains on
 * SIGTERM: stop accepting, finish in-flight requests, stop.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "grpc.h"
#include "http.h"

#define SWEEP_MS 100
#define ACCEPT_BATCH 16 /* accepts per wakeup, so one worker cannot take them all */

typedef struct wimpl {
    pthread_t thread;
    sluiced_http_ctx *http;
    sluiced_grpc_ctx *grpc; /* NULL without grpc_listen */
    int lfd;              /* this worker's copy of the listening socket */
    struct event *accept; /* readable lfd */
    int glfd;             /* its copy of the gRPC listening socket; -1: none */
    struct event *gaccept;
    struct event *sweep;
    bool listening;
    int64_t drain_deadline_us;
} wimpl;

sluice_store *sluiced_store;

static sluiced_worker *workers;
static int nworkers;
static int listen_fd = -1;
static int grpc_listen_fd = -1;
static sluiced_opts opts;
static int max_conns_per_worker;
static atomic_int stopping;

/* ---- accepting ------------------------------------------------------------ */

static void set_listening(sluiced_worker *w, bool on)
{
    wimpl *wi = w->impl;
    if (wi->listening == on || !wi->accept)
        return;
    if (on) {
        event_add(wi->accept, NULL);
        if (wi->gaccept)
            event_add(wi->gaccept, NULL);
    } else {
        event_del(wi->accept);
        if (wi->gaccept)
            event_del(wi->gaccept);
    }
    wi->listening = on;
}

/* Open connections of both kinds: the cap counts them together. */
static int nconns(const wimpl *wi)
{
    return sluiced_http_ctx_count(wi->http) + sluiced_grpc_ctx_count(wi->grpc);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    sluiced_worker *w = arg;
    wimpl *wi = w->impl;
    bool grpc = lfd == wi->glfd;
    for (int i = 0; i < ACCEPT_BATCH && wi->listening; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The pending connection stays readable: pause accepting
                 * (the sweep resumes it) instead of spinning on it. */
                sluiced_log(SLUICED_LOG_WARN, "accept_failed", "worker=%d reason=\"%s\"", w->id,
                            strerror(errno));
                set_listening(w, false);
            }
            return; /* EAGAIN: another worker took it, or none left */
        }
        int n = nconns(wi);
        bool reject = n >= max_conns_per_worker || w->draining;
        if (reject)
            sluiced_log(SLUICED_LOG_WARN, "connection_rejected",
                        "worker=%d connections=%d limit=%d", w->id, n + 1, max_conns_per_worker);
        if (grpc)
            sluiced_grpc_accept(wi->grpc, fd, reject);
        else
            sluiced_http_accept(wi->http, fd, (struct sockaddr *)&ss, len, reject);
        if (nconns(wi) >= max_conns_per_worker)
            set_listening(w, false);
    }
}

/* A connection closed: accept again below the cap. */
static void on_conn_closed(sluiced_http_ctx *ctx, void *arg)
{
    (void)ctx;
    sluiced_worker *w = arg;
    if (!w->draining && nconns(w->impl) < max_conns_per_worker)
        set_listening(w, true);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sluiced_worker *w = arg;
    wimpl *wi = w->impl;
    int64_t now = sluiced_now_us();
    sluiced_http_sweep(wi->http, now);
    /* again, after a failed accept or gRPC connections closed */
    if (!w->draining && nconns(wi) < max_conns_per_worker)
        set_listening(w, true);
    if (atomic_load(&stopping) && !w->draining) {
        w->draining = true;
        set_listening(w, false);
        wi->drain_deadline_us = now + (int64_t)SLUICED_DRAIN_TIMEOUT_MS * 1000;
    }
    /* After the drain flag: the sweep that starts a drain already sends
     * GOAWAY, before the loop may stop below. */
    sluiced_grpc_sweep(wi->grpc, now, w->draining);
    if (w->draining && (atomic_load(&w->inflight) == 0 || now > wi->drain_deadline_us))
        event_base_loopbreak(w->base);
}

/* ---- workers ------------------------------------------------------------ */

sluiced_cfg *sluiced_worker_cfg(sluiced_worker *w)
{
    uint64_t gen = sluiced_cfg_generation();
    if (!w->cfg || w->cfg->generation != gen) {
        sluiced_cfg *c = sluiced_cfg_get();
        if (c) {
            sluiced_cfg_put(w->cfg);
            w->cfg = c;
        }
    }
    return w->cfg;
}

static void *worker_main(void *arg)
{
    sluiced_worker *w = arg;
    event_base_dispatch(w->base);
    sluiced_alloc_thread_flush();
    return NULL;
}

static int worker_init(sluiced_worker *w, int id)
{
    sluice_error err = {0};
    wimpl *wi = calloc(1, sizeof(*wi));
    if (!wi)
        return -1;
    w->impl = wi;
    w->id = id;
    wi->lfd = -1;
    wi->glfd = -1;
    /* The changelist folds an add and a delete of the same event within one
     * loop iteration into at most one epoll_ctl.  Its one hazard, a dup()ed
     * fd closed while its twin stays in the same epoll set, cannot happen
     * here: each worker's dup of the listening socket lives in its own base. */
    struct event_config *ec = event_config_new();
    if (!ec)
        return -1;
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    /* Only this worker's thread ever touches its base: no locks. */
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!w->base)
        return -1;
    if (sluice_async_new(&w->async, sluiced_store, w->base, &err) != 0) {
        sluiced_log(SLUICED_LOG_ERROR, "worker_start_failed", "worker=%d reason=\"%s\"", id,
                    err.msg);
        return -1;
    }
    sluiced_http_cfg hc = {.request_timeout_ms = opts.request_timeout_ms,
                           .idle_timeout_s = opts.idle_timeout_s,
                           .handle = sluiced_handle,
                           .arg = w,
                           .closed = on_conn_closed};
    wi->http = sluiced_http_ctx_new(w->base, &hc);
    if (!wi->http)
        return -1;
    wi->lfd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 0);
    if (wi->lfd < 0)
        return -1;
    wi->accept = event_new(w->base, wi->lfd, EV_READ | EV_PERSIST, on_accept, w);
    if (!wi->accept)
        return -1;
    if (grpc_listen_fd >= 0) {
        wi->grpc = sluiced_grpc_ctx_new(w->base, w, opts.idle_timeout_s, opts.request_timeout_ms);
        wi->glfd = fcntl(grpc_listen_fd, F_DUPFD_CLOEXEC, 0);
        if (!wi->grpc || wi->glfd < 0)
            return -1;
        wi->gaccept = event_new(w->base, wi->glfd, EV_READ | EV_PERSIST, on_accept, w);
        if (!wi->gaccept)
            return -1;
    }
    set_listening(w, true);
    wi->sweep = event_new(w->base, -1, EV_PERSIST, on_sweep, w);
    struct timeval tv = {0, SWEEP_MS * 1000};
    if (!wi->sweep || event_add(wi->sweep, &tv) != 0)
        return -1;
    return 0;
}

static void worker_free(sluiced_worker *w)
{
    wimpl *wi = w->impl;
    if (!wi)
        return;
    w->draining = true; /* no listener re-enable while connections close */
    if (wi->sweep)
        event_free(wi->sweep);
    if (wi->accept)
        event_free(wi->accept);
    if (wi->lfd >= 0)
        close(wi->lfd);
    if (wi->gaccept)
        event_free(wi->gaccept);
    if (wi->glfd >= 0)
        close(wi->glfd);
    /* Pending decisions complete (cancelled) into their connections first. */
    sluice_async_free(w->async);
    sluiced_http_ctx_free(wi->http);
    sluiced_grpc_ctx_free(wi->grpc);
    sluiced_cfg_put(w->cfg);
    if (w->base)
        event_base_free(w->base);
    free(wi);
    w->impl = NULL;
}

/* ---- listening socket ----------------------------------------------------- */

static int open_listener(const char *listen_addr)
{
    char host[256];
    const char *colon = strrchr(listen_addr, ':');
    if (!colon || colon == listen_addr || (size_t)(colon - listen_addr) >= sizeof(host)) {
        sluiced_log(SLUICED_LOG_ERROR, "listen_failed", "reason=\"expected host:port\"");
        return -1;
    }
    memcpy(host, listen_addr, (size_t)(colon - listen_addr));
    host[colon - listen_addr] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:8080 */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        sluiced_log(SLUICED_LOG_ERROR, "listen_failed", "reason=\"%s\"", gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        sluiced_log(SLUICED_LOG_ERROR, "listen_failed", "listen=%s reason=\"%s\"", listen_addr,
                    strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    return fd;
}

int sluiced_server_start(const sluiced_opts *o)
{
    opts = *o;
    if (opts.workers < 1)
        opts.workers = 1;
    if (opts.max_connections < opts.workers)
        opts.max_connections = opts.workers;
    max_conns_per_worker = opts.max_connections / opts.workers;

    /* Room for every connection plus the store's sockets. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t want = (rlim_t)opts.max_connections + 1024;
        if (rl.rlim_cur < want) {
            rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
    }

    evthread_use_pthreads();
    listen_fd = open_listener(opts.listen);
    if (listen_fd < 0)
        return -1;
    if (opts.grpc_listen) {
        grpc_listen_fd = open_listener(opts.grpc_listen);
        if (grpc_listen_fd < 0)
            return -1;
    }
    workers = calloc((size_t)opts.workers, sizeof(*workers));
    if (!workers)
        return -1;
    nworkers = opts.workers;
    for (int i = 0; i < nworkers; i++) {
        atomic_init(&workers[i].inflight, 0);
        workers[i].cfg = sluiced_cfg_get();
        if (worker_init(&workers[i], i) != 0) {
            sluiced_log(SLUICED_LOG_ERROR, "worker_start_failed", "worker=%d", i);
            return -1;
        }
    }
    for (int i = 0; i < nworkers; i++) {
        wimpl *wi = workers[i].impl;
        if (pthread_create(&wi->thread, NULL, worker_main, &workers[i]) != 0)
            return -1;
    }
    sluiced_log(SLUICED_LOG_INFO, "listening",
                "listen=%s grpc_listen=%s workers=%d max_connections=%d", opts.listen,
                opts.grpc_listen ? opts.grpc_listen : "off", nworkers, opts.max_connections);
    return 0;
}

void sluiced_server_drain_and_stop(void)
{
    atomic_store(&stopping, 1);
    for (int i = 0; i < nworkers; i++) {
        wimpl *wi = workers[i].impl;
        if (wi && wi->thread)
            pthread_join(wi->thread, NULL);
    }
    int left = 0;
    for (int i = 0; i < nworkers; i++)
        left += atomic_load(&workers[i].inflight);
    for (int i = 0; i < nworkers; i++)
        worker_free(&workers[i]);
    free(workers);
    workers = NULL;
    nworkers = 0;
    if (listen_fd >= 0)
        close(listen_fd);
    listen_fd = -1;
    if (grpc_listen_fd >= 0)
        close(grpc_listen_fd);
    grpc_listen_fd = -1;
    sluiced_log(SLUICED_LOG_INFO, "drained", "abandoned_requests=%d", left);
}
