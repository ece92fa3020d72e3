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
 *
 * Once evhttp has set a connection up, sluiced also takes its socket I/O
 * over (see "The fast I/O path" below): evhttp keeps parsing and
 * sequencing requests, sluiced makes one recv and one writev per request,
 * as nginx does, instead of libevent's ioctl + readv + writev + epoll_ctl.
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
    sluiced_worker *w;
    struct bufferevent *bev;         /* one reference is ours */
    struct evbuffer_cb_entry *ent;   /* our callback on the input buffer */
    struct evbuffer_cb_entry *oent;  /* ... and on the output buffer (adopted) */
    struct evhttp_connection *evcon; /* known once a request arrived */
    struct event *adopt;             /* one-shot: take the socket over */
    struct event *rev, *wev, *fev;   /* adopted: readable, writable, flush */
    int fd;                          /* -1 until known */
    int64_t req_start_us;            /* first byte of an incomplete request; 0 = none */
    short eof_what;                  /* adopted: EOF/error seen, not yet told to evhttp */
    bool in_map;                     /* found by its bufferevent */
    bool adopted;                    /* sluiced does the socket I/O (and owns fd) */
    bool rpaused;                    /* reading paused: evhttp holds INPUT_CAP */
    bool busy;                       /* a request is being answered by sluiced */
    bool rejected;                   /* over the connection cap: answered 503 */
    bool killed;                     /* 408/503 written and socket shut down */
} conn;

typedef struct mslot {
    struct bufferevent *k;
    conn *v;
} mslot;

typedef struct wimpl {
    pthread_t thread;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct event *sweep;
    conn head; /* circular list of tracked connections */
    int nconns;
    bool listening;
    int64_t drain_deadline_us;
    mslot *map; /* bufferevent -> conn: open addressing, linear probing */
    size_t mask, used;
    struct event *closer; /* closes closefds at the end of the loop turn */
    int *closefds, nclose, capclose;
} wimpl;

sluice_store *sluiced_store;

static sluiced_worker *workers;
static int nworkers;
static int listen_fd = -1;
static sluiced_opts opts;
static int max_conns_per_worker;
static atomic_int stopping;

int64_t sluiced_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- connections ---------------------------------------------------------- */

/* Pointer hash: a connection's bufferevent -> its conn (this worker only). */
static size_t map_slot(const void *p, size_t mask)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 17;
    x *= 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 24) & mask;
}

static conn *map_get(const wimpl *wi, const struct bufferevent *b)
{
    if (!wi->map)
        return NULL;
    for (size_t i = map_slot(b, wi->mask); wi->map[i].k; i = (i + 1) & wi->mask)
        if (wi->map[i].k == b)
            return wi->map[i].v;
    return NULL;
}

static bool map_put(wimpl *wi, struct bufferevent *b, conn *c)
{
    if (!wi->map || (wi->used + 1) * 4 > (wi->mask + 1) * 3)
        return false; /* full: the connection works without the fast I/O path */
    size_t i = map_slot(b, wi->mask);
    while (wi->map[i].k)
        i = (i + 1) & wi->mask;
    wi->map[i].k = b;
    wi->map[i].v = c;
    wi->used++;
    return true;
}

static void map_del(wimpl *wi, const struct bufferevent *b)
{
    if (!wi->map)
        return;
    size_t i = map_slot(b, wi->mask);
    while (wi->map[i].k && wi->map[i].k != b)
        i = (i + 1) & wi->mask;
    if (!wi->map[i].k)
        return;
    /* Backward-shift deletion keeps every probe chain unbroken. */
    for (size_t j = i;;) {
        j = (j + 1) & wi->mask;
        if (!wi->map[j].k)
            break;
        size_t h = map_slot(wi->map[j].k, wi->mask);
        bool between = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!between) {
            wi->map[i] = wi->map[j];
            i = j;
        }
    }
    wi->map[i].k = NULL;
    wi->map[i].v = NULL;
    wi->used--;
}

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

/* Sockets of released connections are closed once evhttp, which shuts them
 * down after its close callback, is done with them (end of the loop turn). */
static void on_closer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wimpl *wi = arg;
    for (int i = 0; i < wi->nclose; i++)
        close(wi->closefds[i]);
    wi->nclose = 0;
}

static void close_later(wimpl *wi, int fd)
{
    if (wi->nclose == wi->capclose) {
        int cap = wi->capclose ? wi->capclose * 2 : 64;
        int *p = realloc(wi->closefds, (size_t)cap * sizeof(*p));
        if (!p)
            abort(); /* the daemon's OOM policy */
        wi->closefds = p;
        wi->capclose = cap;
    }
    wi->closefds[wi->nclose++] = fd;
    event_active(wi->closer, EV_TIMEOUT, 1);
}

static void conn_release(sluiced_worker *w, conn *c)
{
    wimpl *wi = w->impl;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    map_del(wi, c->bev);
    if (c->ent)
        evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->ent);
    if (c->oent)
        evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->oent);
    if (c->adopt)
        event_free(c->adopt);
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->fev)
        event_free(c->fev);
    if (c->adopted)
        close_later(wi, c->fd);
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

/*
 * The fast I/O path.  evhttp 2.1 drives a socket bufferevent: per request it
 * asks the kernel how much to read (ioctl FIONREAD) and, by disabling and
 * re-enabling reading around every reply, costs one epoll_ctl; nginx makes
 * neither call.  So, once evhttp has set a connection up, sluiced takes the
 * socket back from the bufferevent (which keeps only its timers: evhttp's
 * idle and write timeouts still apply) and does the I/O itself: one
 * persistent read event, one recv into the input buffer, one writev of each
 * reply.  evhttp still parses and sequences everything; it is fed with
 * bufferevent_trigger (data), bufferevent_trigger_event (EOF, errors) and
 * learns a reply is out when its write callback runs after the writev.
 */
#define READ_CHUNK 16384
#define INPUT_CAP (256 * 1024) /* read no further while evhttp holds this much */

/* Tells evhttp of the EOF or error seen on the socket once it is reading and
 * has nothing left to parse (pipelined requests come first), or at once
 * after a 408/503 kill. */
static void conn_maybe_eof(conn *c)
{
    struct bufferevent *bev = c->bev;
    if (!c->eof_what || !(bufferevent_get_enabled(bev) & EV_READ))
        return;
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0 && !c->killed)
        return;
    short what = (short)(c->eof_what | BEV_EVENT_READING);
    c->eof_what = 0;
    bufferevent_incref(bev);
    bufferevent_disable(bev, EV_READ);
    bufferevent_trigger_event(bev, what, 0); /* may release c */
    bufferevent_decref(bev);
}

/* Writes what evhttp queued; when all of it is out, runs evhttp's write
 * callback (the reply is done).  May release c. */
static void conn_flush(sluiced_worker *w, conn *c)
{
    struct bufferevent *bev = c->bev;
    struct evbuffer *out = bufferevent_get_output(bev);
    if (evbuffer_get_length(out) > 0) {
        evbuffer_unfreeze(out, 1);
        int n = evbuffer_write(out, c->fd);
        int err = errno;
        evbuffer_freeze(out, 1);
        if (n < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
            event_del(c->rev);
            event_del(c->wev);
            c->eof_what = 0;
            bufferevent_incref(bev);
            bufferevent_disable(bev, EV_READ | EV_WRITE);
            bufferevent_trigger_event(bev, BEV_EVENT_ERROR | BEV_EVENT_WRITING, 0);
            bufferevent_decref(bev);
            return;
        }
        if (evbuffer_get_length(out) > 0) {
            event_add(c->wev, NULL); /* the rest when the socket drains */
            return;
        }
    }
    if (!(bufferevent_get_enabled(bev) & EV_WRITE))
        return;
    bufferevent_incref(bev);
    bufferevent_trigger(bev, EV_WRITE, 0); /* evhttp: reply sent; may release c */
    conn *again = map_get(w->impl, bev);
    if (again)
        conn_maybe_eof(again);
    bufferevent_decref(bev);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    conn_flush(c->w, c);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    conn_flush(c->w, c);
}

/* evhttp queued output (a reply of its own, such as a 400): write it at the
 * end of this loop turn, once evhttp has finished queueing. */
static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    conn *c = arg;
    if (info->n_added && c->adopted)
        event_active(c->fev, EV_TIMEOUT, 1);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    conn *c = arg;
    struct bufferevent *bev = c->bev;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (evbuffer_get_length(in) >= INPUT_CAP) {
        event_del(c->rev); /* on_input resumes once evhttp consumed some */
        c->rpaused = true;
        return;
    }
    struct evbuffer_iovec v;
    ssize_t n = -1;
    int err = ENOMEM;
    evbuffer_unfreeze(in, 0);
    if (evbuffer_reserve_space(in, READ_CHUNK, &v, 1) >= 1) {
        n = recv(fd, v.iov_base, v.iov_len < READ_CHUNK ? v.iov_len : READ_CHUNK, 0);
        err = errno;
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(in, &v, 1);
        }
    }
    evbuffer_freeze(in, 0);
    if (n > 0) {
        if (bufferevent_get_enabled(bev) & EV_READ) {
            bufferevent_incref(bev);
            bufferevent_trigger(bev, EV_READ, 0); /* evhttp parses; may release c */
            bufferevent_decref(bev);
        }
        return;
    }
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))
        return;
    event_del(c->rev);
    c->eof_what = n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR;
    conn_maybe_eof(c);
}

/* Runs right after evhttp set the connection up: takes the socket over. */
static void on_adopt(evutil_socket_t unused, short what, void *arg)
{
    (void)unused;
    (void)what;
    conn *c = arg;
    event_free(c->adopt);
    c->adopt = NULL;
    struct bufferevent *bev = c->bev;
    bufferevent_data_cb rcb = NULL, wcb = NULL;
    bufferevent_event_cb ecb = NULL;
    bufferevent_getcb(bev, &rcb, &wcb, &ecb, NULL);
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || (!rcb && !wcb && !ecb) || !c->in_map)
        return; /* stays on libevent's own I/O */
    struct event_base *base = bufferevent_get_base(bev);
    c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->wev = event_new(base, fd, EV_WRITE, on_writable, c);
    c->fev = event_new(base, -1, 0, on_flush, c);
    c->oent = evbuffer_add_cb(bufferevent_get_output(bev), on_output, c);
    if (!c->rev || !c->wev || !c->fev || !c->oent)
        abort(); /* the daemon's OOM policy */
    short enabled = bufferevent_get_enabled(bev);
    bufferevent_setfd(bev, -1);
    bufferevent_enable(bev, enabled); /* re-arms evhttp's timeouts, as timers only */
    c->fd = fd;
    c->adopted = true;
    /* Replies are whole; never hold one back for Nagle. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    event_add(c->rev, NULL);
    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
        event_active(c->fev, EV_TIMEOUT, 1);
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    conn *c = arg;
    if (c->rpaused && info->n_deleted && evbuffer_get_length(buf) < INPUT_CAP / 2) {
        c->rpaused = false;
        event_add(c->rev, NULL);
    }
    if (info->n_added == 0)
        return;
    if (c->fd < 0) {
        c->fd = bufferevent_getfd(c->bev);
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
    c->w = w;
    c->bev = bev;
    c->fd = -1;
    c->ent = evbuffer_add_cb(bufferevent_get_input(bev), on_input, c);
    c->in_map = map_put(wi, bev, c);
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
    } else {
        /* evhttp gives the bufferevent its socket after this returns. */
        c->adopt = event_new(base, -1, 0, on_adopt, c);
        if (c->adopt)
            event_active(c->adopt, EV_TIMEOUT, 1);
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
    conn_release(c->w, c);
}

static conn *conn_of(sluiced_worker *w, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon)
        return NULL;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    conn *c = bev ? map_get(w->impl, bev) : NULL;
    if (!c)
        return NULL;
    if (!c->evcon) {
        c->evcon = evcon;
        evhttp_connection_set_closecb(evcon, on_close, c);
    }
    return c;
}

void sluiced_conn_busy(sluiced_worker *w, struct evhttp_request *req, bool busy)
{
    conn *c = conn_of(w, req);
    if (!c)
        return;
    c->busy = busy;
    c->req_start_us = 0;
    if (!busy && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        c->req_start_us = sluiced_now_us(); /* a pipelined request is waiting */
}

void sluiced_conn_flush(sluiced_worker *w, struct bufferevent *bev)
{
    conn *c = map_get(w->impl, bev);
    if (c && c->adopted) {
        conn_flush(w, c);
        return;
    }
    /* Not taken over (over the connection cap, or before adoption): write
     * now anyway and run the write callback as libevent would after a
     * complete write.  The output buffer is frozen at the front for all but
     * the bufferevent, hence the unfreeze/freeze. */
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || evbuffer_get_length(out) == 0)
        return;
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write(out, fd);
    evbuffer_freeze(out, 1);
    if (n > 0 && evbuffer_get_length(out) == 0)
        bufferevent_trigger(bev, EV_WRITE, 0);
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
    size_t slots = 64;
    while (slots < 2 * (size_t)max_conns_per_worker + 64)
        slots *= 2;
    wi->map = calloc(slots, sizeof(*wi->map));
    if (!wi->map)
        return -1;
    wi->mask = slots - 1;
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
    wi->closer = event_new(w->base, -1, 0, on_closer, wi);
    if (!wi->closer)
        return -1;
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
    if (wi->closer) {
        on_closer(-1, 0, wi);
        event_free(wi->closer);
    }
    free(wi->closefds);
    free(wi->map);
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
    sluiced_log(SLUICED_LOG_INFO, "drained", "abandoned_requests=%d", left);
}
