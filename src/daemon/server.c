/* SPDX-License-Identifier: MIT */
/*
 * server.c - the HTTP/1.1 server of sluiced: one listening socket, N worker
 * threads, each with its own libevent loop and evhttp instance (no locks
 * between workers on the request path).  libevent's evhttp does all HTTP
 * parsing; this file adds what evhttp 2.1 lacks:
 *
 *  - a connection cap: connections above it are answered 503 and closed;
 *  - a request deadline: a request that has not arrived whole within
 *    request_timeout_ms of its first byte (slowloris) is answered 408 and
 *    the connection closed, while other connections keep being served;
 *  - a drain on SIGTERM: stop accepting, finish in-flight requests.
 *
 * To see connections from accept to close, the bufferevent of every
 * connection is created here (evhttp_set_bevcb) and held with one extra
 * reference; the connection's close callback (set on its first request), or
 * a sweep that notices evhttp has released the bufferevent, drops it.  An
 * input-buffer callback notes when the bytes of a request start to arrive.
 * The 408/503 replies are written straight to the socket, which is then
 * shut down so evhttp sees EOF and frees the connection as usual.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

#define SWEEP_MS 100

typedef struct conn {
    struct conn *prev, *next;
    struct bufferevent *bev;         /* one reference is ours */
    struct evbuffer_cb_entry *ent;   /* our callback on the input buffer */
    struct evhttp_connection *evcon; /* known once a request arrived */
    int fd;                          /* -1 until the first bytes */
    int64_t req_start_us;            /* first byte of an incomplete request; 0 = none */
    bool busy;                       /* a request is being answered by sluiced */
    bool rejected;                   /* over the connection cap: answered 503 */
    bool killed;                     /* 408/503 written and socket shut down */
} conn;

typedef struct wimpl {
    pthread_t thread;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct event *sweep;
    conn head; /* circular list of tracked connections */
    int nconns;
    bool listening;
    int64_t drain_deadline_us;
} wimpl;

sluice_store *sluiced_store;

static sluiced_worker *workers;
static int nworkers;
static int listen_fd = -1;
static sluiced_opts opts;
static int max_conns_per_worker;
static atomic_int stopping;
static _Atomic(conn *) *fdmap; /* fd -> connection; each entry used by its owner worker */
static int fdmap_size;

int64_t sluiced_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- connections ---------------------------------------------------------- */

static void set_listening(sluiced_worker *w, bool on)
{
    wimpl *wi = w->impl;
    if (wi->listening == on || !wi->bound)
        return;
    struct evconnlistener *l = evhttp_bound_socket_get_listener(wi->bound);
    if (on)
        evconnlistener_enable(l);
    else
        evconnlistener_disable(l);
    wi->listening = on;
}

static void conn_release(sluiced_worker *w, conn *c)
{
    wimpl *wi = w->impl;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    if (c->fd >= 0 && c->fd < fdmap_size && atomic_load(&fdmap[c->fd]) == c)
        atomic_store(&fdmap[c->fd], NULL);
    if (c->ent)
        evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->ent);
    bufferevent_decref(c->bev);
    free(c);
    wi->nconns--;
    sluiced_metrics_connections(-1);
    if (!w->draining && wi->nconns < max_conns_per_worker)
        set_listening(w, true);
}

/* Writes a whole small reply straight to the socket and shuts it down. */
static void conn_kill(conn *c, int status, const char *reason, const char *code, const char *msg)
{
    if (c->killed || c->fd < 0)
        return;
    c->killed = true;
    char body[256], resp[512];
    int bl = snprintf(body, sizeof(body), "{\"error\": \"%s\", \"message\": \"%s\"}\n", code, msg);
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     status, reason, bl, body);
    if (n > 0 && (size_t)n < sizeof(resp)) {
        ssize_t wr = send(c->fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)wr;
    }
    sluiced_metrics_response(status);
    shutdown(c->fd, SHUT_RDWR);
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    conn *c = arg;
    if (info->n_added == 0)
        return;
    if (c->fd < 0) {
        c->fd = bufferevent_getfd(c->bev);
        if (c->fd >= 0 && c->fd < fdmap_size)
            atomic_store(&fdmap[c->fd], c);
        /* Replies are whole; never hold one back for Nagle. */
        int one = 1;
        if (c->fd >= 0)
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (c->rejected) {
        conn_kill(c, 503, "Service Unavailable", "too_many_connections",
                  "connection limit reached");
        return;
    }
    if (!c->busy && c->req_start_us == 0)
        c->req_start_us = sluiced_now_us();
}

static struct bufferevent *on_new_connection(struct event_base *base, void *arg)
{
    sluiced_worker *w = arg;
    wimpl *wi = w->impl;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL;
    conn *c = calloc(1, sizeof(*c));
    if (!c)
        return bev;
    bufferevent_incref(bev);
    c->bev = bev;
    c->fd = -1;
    c->ent = evbuffer_add_cb(bufferevent_get_input(bev), on_input, c);
    c->next = wi->head.next;
    c->prev = &wi->head;
    wi->head.next->prev = c;
    wi->head.next = c;
    wi->nconns++;
    sluiced_metrics_connections(1);
    if (wi->nconns > max_conns_per_worker || w->draining) {
        c->rejected = true;
        sluiced_log(SLUICED_LOG_WARN, "connection_rejected", "worker=%d connections=%d limit=%d",
                    w->id, wi->nconns, max_conns_per_worker);
    }
    if (wi->nconns >= max_conns_per_worker)
        set_listening(w, false);
    return bev;
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    conn *c = arg;
    c->evcon = NULL;
    /* The worker is found through the base the connection runs on. */
    for (int i = 0; i < nworkers; i++) {
        if (workers[i].base == evhttp_connection_get_base(evcon)) {
            conn_release(&workers[i], c);
            return;
        }
    }
}

static conn *conn_of(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon)
        return NULL;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    int fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0 || fd >= fdmap_size)
        return NULL;
    conn *c = atomic_load(&fdmap[fd]);
    if (!c || c->bev != bev)
        return NULL;
    if (!c->evcon) {
        c->evcon = evcon;
        evhttp_connection_set_closecb(evcon, on_close, c);
    }
    return c;
}

void sluiced_conn_busy(sluiced_worker *w, struct evhttp_request *req, bool busy)
{
    (void)w;
    conn *c = conn_of(req);
    if (!c)
        return;
    c->busy = busy;
    c->req_start_us = 0;
    if (!busy && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        c->req_start_us = sluiced_now_us(); /* a pipelined request is waiting */
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sluiced_worker *w = arg;
    wimpl *wi = w->impl;
    int64_t now = sluiced_now_us();
    int64_t limit = (int64_t)opts.request_timeout_ms * 1000;

    for (conn *c = wi->head.next, *next; c != &wi->head; c = next) {
        next = c->next;
        bufferevent_data_cb rcb = NULL, wcb = NULL;
        bufferevent_event_cb ecb = NULL;
        void *cbarg = NULL;
        bufferevent_getcb(c->bev, &rcb, &wcb, &ecb, &cbarg);
        /* evhttp freed it (only our reference is left).  A connection with
         * a close callback is released by that callback, never here, so the
         * callback can never see a freed conn. */
        if (!c->evcon && !rcb && !wcb && !ecb) {
            conn_release(w, c);
            continue;
        }
        if (c->busy || c->killed || !c->req_start_us || now - c->req_start_us <= limit)
            continue;
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
            continue; /* still writing a reply; evhttp's write timeout applies */
        conn_kill(c, 408, "Request Timeout", "request_timeout",
                  "the request did not arrive in time");
        sluiced_log(SLUICED_LOG_INFO, "request_timeout", "worker=%d", w->id);
    }

    if (atomic_load(&stopping) && !w->draining) {
        w->draining = true;
        set_listening(w, false);
        wi->drain_deadline_us = now + (int64_t)SLUICED_DRAIN_TIMEOUT_MS * 1000;
    }
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
    wi->head.next = wi->head.prev = &wi->head;
    /* The changelist folds evhttp's per-request disable/enable of the same
     * event within one loop iteration into at most one epoll_ctl (about 15%
     * less CPU per request).  Its one hazard, a dup()ed fd closed while its
     * twin stays in the same epoll set, cannot happen here: each worker's
     * dup of the listening socket lives in its own base.  (TSan reports the
     * deferred EPOLL_CTL_DEL of a closed, since reused, fd number as a race;
     * the kernel answers it ENOENT and libevent ignores that.) */
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
    wi->http = evhttp_new(w->base);
    if (!wi->http)
        return -1;
    /* Hard caps enforced by evhttp itself (it answers 413 and closes); the
     * handlers apply smaller limits with JSON errors below them. */
    evhttp_set_max_headers_size(wi->http, 4 * SLUICED_MAX_HEADERS_SIZE);
    evhttp_set_max_body_size(wi->http, 16 * SLUICED_MAX_BODY_SIZE);
    evhttp_set_timeout(wi->http, opts.idle_timeout_s);
    evhttp_set_allowed_methods(wi->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(wi->http, "application/json");
    evhttp_set_gencb(wi->http, sluiced_handle, w);
    evhttp_set_bevcb(wi->http, on_new_connection, w);
    int fd = dup(listen_fd);
    if (fd < 0)
        return -1;
    evutil_make_socket_nonblocking(fd);
    wi->bound = evhttp_accept_socket_with_handle(wi->http, fd);
    if (!wi->bound) {
        close(fd);
        return -1;
    }
    wi->listening = true;
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
    w->draining = true; /* no listener re-enable while evhttp frees itself */
    if (wi->sweep)
        event_free(wi->sweep);
    if (wi->http)
        evhttp_free(wi->http); /* closes connections: close callbacks release them */
    while (wi->head.next != &wi->head)
        conn_release(w, wi->head.next);
    sluice_async_free(w->async);
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
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
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
    fdmap_size = rl.rlim_cur > (1 << 22) ? (1 << 22) : (int)rl.rlim_cur;
    fdmap = calloc((size_t)fdmap_size, sizeof(*fdmap));
    if (!fdmap)
        return -1;

    evthread_use_pthreads();
    listen_fd = open_listener(opts.listen);
    if (listen_fd < 0)
        return -1;
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
    sluiced_log(SLUICED_LOG_INFO, "listening", "listen=%s workers=%d max_connections=%d",
                opts.listen, nworkers, opts.max_connections);
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
    free(fdmap);
    fdmap = NULL;
    sluiced_log(SLUICED_LOG_INFO, "drained", "abandoned_requests=%d", left);
}
