/* SPDX-License-Identifier: MIT */
/*
 * grpc_conn.c - one HTTP/2 connection of sluiced's gRPC listener: the
 * socket, its nghttp2 server session (nghttp2 parses every frame, checks
 * the client preface, enforces stream states, flow control and the stream
 * limits we advertise), the output path, the bounds that keep a hostile
 * peer from costing more than one bounded connection, and the close.
 *
 * Output: nghttp2_session_mem_send() serializes frames; they are gathered
 * on the stack and written with one send().  Only what the socket refuses
 * is copied to the heap, and while anything is left there the connection
 * neither reads nor asks nghttp2 for more: a peer that stops reading stops
 * being read, holds at most ~48 KiB, and is closed after idle_timeout_s
 * without write progress; so is a peer that holds replies back by never
 * opening its flow-control window.
 *
 * Floods: nghttp2 bounds queued SETTINGS/PING ACKs (max_outbound_ack),
 * SETTINGS entries, CONTINUATION frames and the rate of incoming
 * RST_STREAM (rapid reset, CVE-2023-44487); on top of that every
 * connection has a budget of SLUICED_GRPC_CTRL_PER_S control frames a
 * second (PING, SETTINGS, RST_STREAM, PRIORITY, empty DATA), past which it
 * gets GOAWAY(ENHANCE_YOUR_CALM).  Calls whose decision is still pending
 * after their stream was reset count against SLUICED_GRPC_MAX_CALLS, so
 * resets cannot pile up decisions either.
 *
 * Re-entrancy: nghttp2 callbacks run inside mem_recv/mem_send; the
 * connection is never closed or freed there (depth counts the frames on
 * the stack), and replies submitted from them are written once the outer
 * call returns.
 */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "grpc.h"

#define GATHER_BYTES 32768 /* frames gathered per send() */
#define RECV_BYTES 16384

struct gconn {
    gconn *prev, *next; /* ctx->head */
    sluiced_grpc_ctx *ctx;
    int fd; /* -1 once closed */
    struct event *rev, *wev;
    nghttp2_session *h2; /* NULL once closed */
    gcall calls;         /* circular list of this connection's calls */
    int ncalls;
    int depth; /* our frames on the stack: close and free wait */
    bool closed, reading, writing, goaway, ever_stream;
    uint8_t *obuf; /* bytes the socket refused, in order */
    size_t olen, ooff;
    int64_t active_us;     /* last read or write progress */
    int64_t ctrl_since_us; /* start of the control-frame budget's second */
    int ctrl_count;
};

struct sluiced_grpc_ctx {
    struct event_base *base;
    sluiced_worker *w;
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    gconn head;
    int nopen;
    int idle_timeout_s;
    int request_timeout_ms;
    int64_t now_us;
};

static void conn_run(gconn *c);

/* nghttp2's per-frame and per-stream allocations go through the daemon's
 * per-thread caches (alloc.c), as libevent's and jansson's do. */
static void *h2_malloc(size_t n, void *ud)
{
    (void)ud;
    return sluiced_malloc(n);
}

static void h2_free(void *p, void *ud)
{
    (void)ud;
    sluiced_free(p);
}

static void *h2_calloc(size_t k, size_t n, void *ud)
{
    (void)ud;
    if (n && k > SIZE_MAX / n)
        return NULL;
    void *p = sluiced_malloc(k * n);
    if (p)
        memset(p, 0, k * n);
    return p;
}

static void *h2_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    return sluiced_realloc(p, n);
}

static nghttp2_mem h2_mem = {NULL, h2_malloc, h2_free, h2_calloc, h2_realloc};

/* ---- calls ------------------------------------------------------------------- */

sluiced_worker *sluiced__gcall_worker(const gcall *s)
{
    return s->c->ctx->w;
}

nghttp2_session *sluiced__gconn_session(gconn *c)
{
    return c->h2;
}

int64_t sluiced__gconn_now_us(const gconn *c)
{
    return c->ctx->now_us;
}

gcall *sluiced__gcall_new(gconn *c, int32_t id)
{
    if (c->ncalls >= SLUICED_GRPC_MAX_CALLS)
        return NULL;
    gcall *s = sluiced_malloc(sizeof(*s));
    if (!s)
        abort(); /* the daemon's OOM policy */
    memset(s, 0, sizeof(*s));
    s->c = c;
    s->id = id;
    s->method = GRPC_M_OTHER;
    s->start_us = c->ctx->now_us;
    s->next = &c->calls;
    s->prev = c->calls.prev;
    c->calls.prev->next = s;
    c->calls.prev = s;
    c->ncalls++;
    c->ever_stream = true;
    return s;
}

static void conn_free_maybe(gconn *c)
{
    if (!c->closed || c->ncalls > 0 || c->depth > 0)
        return;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    event_free(c->rev);
    event_free(c->wev);
    sluiced_free(c);
}

void sluiced__gcall_free(gcall *s)
{
    gconn *c = s->c;
    s->prev->next = s->next;
    s->next->prev = s->prev;
    c->ncalls--;
    if (s->timer)
        event_free(s->timer);
    sluiced_cfg_put(s->cfg);
    sluiced_free(s->msg);
    sluiced_free(s->out);
    sluiced_free(s);
    if (c->closed)
        conn_free_maybe(c);
    else if (c->ncalls == SLUICED_GRPC_MAX_CALLS - 1)
        sluiced__gconn_kick(c); /* reading may resume */
}

/* ---- close ------------------------------------------------------------------- */

/* Closes the socket and the session now.  Calls with a decision pending stay
 * (marked closed) until their callback; the rest are freed. */
static void conn_close(gconn *c)
{
    if (c->closed)
        return;
    c->depth++;
    event_del(c->rev);
    event_del(c->wev);
    close(c->fd);
    c->fd = -1;
    c->closed = true;
    c->reading = c->writing = false;
    nghttp2_session_del(c->h2); /* runs no callbacks */
    c->h2 = NULL;
    sluiced_free(c->obuf);
    c->obuf = NULL;
    c->olen = c->ooff = 0;
    for (gcall *s = c->calls.next, *next; s != &c->calls; s = next) {
        next = s->next;
        s->closed = true;
        if (!s->pending)
            sluiced__gcall_free(s);
    }
    c->ctx->nopen--;
    sluiced_grpc_metrics_connections(-1);
    c->depth--;
}

bool sluiced__gconn_ctrl_frame(gconn *c)
{
    int64_t now = c->ctx->now_us;
    if (now - c->ctrl_since_us > 1000000) {
        c->ctrl_since_us = now;
        c->ctrl_count = 0;
    }
    if (++c->ctrl_count <= SLUICED_GRPC_CTRL_PER_S)
        return true;
    if (c->ctrl_count == SLUICED_GRPC_CTRL_PER_S + 1) {
        sluiced_grpc_metrics_abuse();
        sluiced_log(SLUICED_LOG_WARN, "grpc_flood", "reason=\"over %d control frames a second\"",
                    SLUICED_GRPC_CTRL_PER_S);
        nghttp2_session_terminate_session(c->h2, NGHTTP2_ENHANCE_YOUR_CALM);
    }
    return false;
}

/* ---- output ------------------------------------------------------------------ */

/* Sends p[0..n); what the socket refuses is kept in obuf.  1: blocked (the
 * rest kept), 0: all sent, -1: the connection failed. */
static int send_or_keep(gconn *c, const uint8_t *p, size_t n)
{
    size_t done = 0;
    if (c->olen == c->ooff) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        if (w > 0) {
            done = (size_t)w;
            c->active_us = c->ctx->now_us;
        }
        if (done == n)
            return 0;
    }
    size_t rest = n - done;
    uint8_t *b = sluiced_realloc(c->obuf, c->olen + rest);
    if (!b)
        abort();
    memcpy(b + c->olen, p + done, rest);
    c->obuf = b;
    c->olen += rest;
    return 1;
}

/* Writes the backlog, then whatever nghttp2 has queued, until the socket
 * blocks or nothing is left.  0, or -1 when the connection failed. */
static int conn_flush(gconn *c)
{
    if (c->olen > c->ooff) {
        ssize_t w = send(c->fd, c->obuf + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        c->active_us = c->ctx->now_us;
        c->ooff += (size_t)w;
        if (c->ooff < c->olen)
            return 0;
        sluiced_free(c->obuf);
        c->obuf = NULL;
        c->olen = c->ooff = 0;
    }
    uint8_t gather[GATHER_BYTES];
    size_t k = 0;
    for (;;) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(c->h2, &p);
        if (n < 0)
            return -1;
        if (n > 0 && k + (size_t)n <= sizeof(gather)) {
            memcpy(gather + k, p, (size_t)n);
            k += (size_t)n;
            continue;
        }
        if (k > 0) {
            int r = send_or_keep(c, gather, k);
            k = 0;
            if (r < 0)
                return -1;
            if (r > 0) { /* blocked: nghttp2 counts p as sent, so keep it too */
                if (n > 0)
                    send_or_keep(c, p, (size_t)n);
                return 0;
            }
        }
        if (n == 0)
            return 0;
        int r = send_or_keep(c, p, (size_t)n); /* a frame larger than the gather buffer */
        if (r != 0)
            return r < 0 ? -1 : 0;
    }
}

/* Writes, then decides what to wait for; closes when the session is done. */
static void conn_run(gconn *c)
{
    if (c->closed)
        return;
    if (conn_flush(c) != 0) {
        conn_close(c);
        return;
    }
    bool blocked = c->olen > c->ooff;
    if (!blocked && !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
        conn_close(c); /* GOAWAY exchanged and no stream left, or a fatal error sent */
        return;
    }
    bool want_read =
        nghttp2_session_want_read(c->h2) && !blocked && c->ncalls < SLUICED_GRPC_MAX_CALLS;
    if (want_read && !c->reading && event_add(c->rev, NULL) == 0)
        c->reading = true;
    if (!want_read && c->reading) {
        event_del(c->rev);
        c->reading = false;
    }
    if (blocked && !c->writing && event_add(c->wev, NULL) == 0)
        c->writing = true;
    if (!blocked && c->writing) {
        event_del(c->wev);
        c->writing = false;
    }
}

void sluiced__gconn_kick(gconn *c)
{
    if (c->closed)
        return;
    if (c->depth > 0)
        return; /* inside our own frame: it runs the connection when it returns */
    c->depth++;
    conn_run(c);
    c->depth--;
    conn_free_maybe(c);
}

/* ---- input ------------------------------------------------------------------- */

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gconn *c = arg;
    uint8_t buf[RECV_BYTES];
    c->depth++;
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n > 0) {
        c->active_us = c->ctx->now_us;
        ssize_t r = nghttp2_session_mem_recv(c->h2, buf, (size_t)n);
        if (r < 0) {
            /* Not even a GOAWAY can follow (bad preface, a flood nghttp2 caught,
             * out of memory): the connection ends here. */
            if (r == NGHTTP2_ERR_FLOODED || r == NGHTTP2_ERR_BAD_CLIENT_MAGIC)
                sluiced_grpc_metrics_abuse();
            conn_close(c);
            goto out;
        }
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_close(c); /* the peer is gone: pending decisions find their calls closed */
        goto out;
    }
    conn_run(c);
out:
    c->depth--;
    conn_free_maybe(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gconn *c = arg;
    c->writing = false;
    c->depth++;
    conn_run(c);
    c->depth--;
    conn_free_maybe(c);
}

/* ---- the worker's connections -------------------------------------------------- */

sluiced_grpc_ctx *sluiced_grpc_ctx_new(struct event_base *base, sluiced_worker *w,
                                       int idle_timeout_s, int request_timeout_ms)
{
    sluiced_grpc_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    ctx->base = base;
    ctx->w = w;
    ctx->idle_timeout_s = idle_timeout_s;
    ctx->request_timeout_ms = request_timeout_ms;
    ctx->head.next = ctx->head.prev = &ctx->head;
    ctx->now_us = sluiced_now_us();
    if (nghttp2_session_callbacks_new(&ctx->cb) != 0 || nghttp2_option_new(&ctx->opt) != 0) {
        sluiced_grpc_ctx_free(ctx);
        return NULL;
    }
    sluiced__gcall_callbacks(ctx->cb);
    /* Closed streams need not be kept for the priority tree. */
    nghttp2_option_set_no_closed_streams(ctx->opt, 1);
    /* A peer that floods PING/SETTINGS without reading the ACKs. */
    nghttp2_option_set_max_outbound_ack(ctx->opt, 256);
    nghttp2_option_set_max_settings(ctx->opt, 32);
    /* Rapid reset: nghttp2's token bucket of incoming RST_STREAM (burst, per
     * second).  Its default refill, 33 a second, would also end the
     * connection of an Envoy that cancels calls at its 20 ms timeout while
     * the store is slow; a reset here costs no more than a call, and calls
     * left pending by resets are capped (SLUICED_GRPC_MAX_CALLS), so the
     * refill matches the control-frame budget instead. */
    nghttp2_option_set_stream_reset_rate_limit(ctx->opt, SLUICED_GRPC_CTRL_PER_S,
                                               SLUICED_GRPC_CTRL_PER_S);
    nghttp2_option_set_max_continuations(ctx->opt, 8);
    return ctx;
}

void sluiced_grpc_ctx_free(sluiced_grpc_ctx *ctx)
{
    if (!ctx)
        return;
    while (ctx->head.next != &ctx->head) {
        gconn *c = ctx->head.next;
        conn_close(c);
        /* Nothing runs after the loop: calls still pending never complete.
         * depth keeps c alive while its last call is freed. */
        c->depth++;
        for (gcall *s = c->calls.next, *next; s != &c->calls; s = next) {
            next = s->next;
            s->pending = false;
            sluiced__gcall_free(s);
        }
        c->depth = 0;
        conn_free_maybe(c);
    }
    if (ctx->cb)
        nghttp2_session_callbacks_del(ctx->cb);
    if (ctx->opt)
        nghttp2_option_del(ctx->opt);
    free(ctx);
}

int sluiced_grpc_ctx_count(const sluiced_grpc_ctx *ctx)
{
    return ctx ? ctx->nopen : 0;
}

int sluiced_grpc_accept(sluiced_grpc_ctx *ctx, int fd, bool reject)
{
    gconn *c = sluiced_malloc(sizeof(*c));
    if (!c) {
        close(fd);
        return -1;
    }
    memset(c, 0, sizeof(*c));
    c->ctx = ctx;
    c->fd = fd;
    c->calls.next = c->calls.prev = &c->calls;
    c->rev = event_new(ctx->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->wev = event_new(ctx->base, fd, EV_WRITE, on_writable, c);
    if (!c->rev || !c->wev ||
        nghttp2_session_server_new3(&c->h2, ctx->cb, c, ctx->opt, &h2_mem) != 0) {
        if (c->rev)
            event_free(c->rev);
        if (c->wev)
            event_free(c->wev);
        sluiced_free(c);
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ctx->now_us = sluiced_now_us();
    c->active_us = c->ctrl_since_us = ctx->now_us;
    c->next = ctx->head.next;
    c->prev = &ctx->head;
    ctx->head.next->prev = c;
    ctx->head.next = c;
    ctx->nopen++;
    sluiced_grpc_metrics_connections(1);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, SLUICED_GRPC_MAX_STREAMS},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, SLUICED_GRPC_MAX_HEADER_LIST},
    };
    if (reject) /* at the connection cap: refuse everything, politely */
        nghttp2_session_terminate_session(c->h2, NGHTTP2_REFUSED_STREAM);
    else
        nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    sluiced__gconn_kick(c);
    return 0;
}

/* Calls whose request has not arrived whole in request_timeout_ms.  True
 * when a call is answered but its reply is still held (by the peer's flow
 * control window, since nothing is left unsent in obuf). */
static bool sweep_calls(gconn *c, int64_t now_us)
{
    int64_t req_us = (int64_t)c->ctx->request_timeout_ms * 1000;
    bool held = false;
    for (gcall *s = c->calls.next, *next; s != &c->calls && !c->closed; s = next) {
        next = s->next;
        if (!s->closed && !s->dispatched && !s->answered && now_us - s->start_us > req_us)
            sluiced__gcall_reply(s, GRPC_DEADLINE_EXCEEDED, "the request did not arrive in time");
        held = held || (s->answered && !s->closed);
    }
    return held;
}

void sluiced_grpc_sweep(sluiced_grpc_ctx *ctx, int64_t now_us, bool draining)
{
    if (!ctx)
        return;
    int64_t idle_us = (int64_t)ctx->idle_timeout_s * 1000000;
    ctx->now_us = now_us;
    for (gconn *c = ctx->head.next, *next; c != &ctx->head; c = next) {
        next = c->next;
        if (c->closed)
            continue;
        c->depth++;
        int64_t quiet = now_us - c->active_us;
        if (c->olen > c->ooff && quiet > idle_us) {
            conn_close(c); /* a peer that stopped reading */
        } else if (c->ncalls == 0 && !c->goaway &&
                   quiet > (c->ever_stream ? (int64_t)SLUICED_GRPC_IDLE_TIMEOUT_S * 1000000
                                           : (int64_t)ctx->request_timeout_ms * 1000)) {
            c->goaway = true; /* idle, or never sent a request */
            nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
            conn_run(c);
        } else if (sweep_calls(c, now_us) && quiet > idle_us) {
            /* replies held by a peer that opens no window: the same stall as
             * a peer that stops reading */
            conn_close(c);
        } else {
            if (draining && !c->goaway && !c->closed) {
                /* Streams already opened finish; no new one is accepted. */
                c->goaway = true;
                nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                                      nghttp2_session_get_last_proc_stream_id(c->h2),
                                      NGHTTP2_NO_ERROR, NULL, 0);
            }
            conn_run(c);
        }
        c->depth--;
        conn_free_maybe(c);
    }
}
