/* SPDX-License-Identifier: MIT */
/*
 * http_conn.c - one HTTP/1.1 connection of sluiced: its life, the queue of
 * replies that go out in request order, socket I/O, the timeouts (408,
 * idle), the connection cap's 503 and the close (a lingering one after a
 * closing reply, so the client reads the reply before any reset).  The
 * read buffer and the parser callbacks are in http_parse.c.
 *
 * The read path: one recv into the buffer, then http_parser_execute over
 * the new bytes (http_parse.c), each complete request handed to the
 * handler in turn.
 *
 * Pipelining: every request gets a reply slot at the tail of the queue when
 * it is handed over; replies may be finished in any order (a Redis round
 * trip, a shaping timer), but only a finished prefix of the queue is
 * written, with one writev.  Parsing and reading pause while
 * SLUICED_HTTP_MAX_PIPELINE replies are pending or SLUICED_HTTP_MAX_OUTPUT
 * bytes wait to be written.  After EOF every request already received is
 * answered, then the socket is closed.
 *
 * Lifetime: the socket closes on error, timeout or after the last reply; the
 * struct lives on until every reply slot handed to a handler has come back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemon.h"
#include "http_conn.h"

static void conn_run(sluiced_conn *c);

/* ---- life and death -------------------------------------------------------- */

static void drop_reply(sluiced_http_reply *rp)
{
    sluiced_http_reply_release(rp);
    sluiced_free(rp);
}

static void unlink_reply(sluiced_conn *c, sluiced_http_reply *rp)
{
    sluiced_http_reply **pp = &c->qhead, *prev = NULL;
    while (*pp && *pp != rp) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = rp->next;
    if (c->qtail == rp)
        c->qtail = prev;
    c->nq--;
}

static void conn_free_maybe(sluiced_conn *c)
{
    if (!c->closed || c->nq > 0 || c->depth > 0)
        return;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    event_free(c->rev);
    event_free(c->wev);
    sluiced_free(c);
}

static void free_buffers(sluiced_conn *c)
{
    sluiced_free(c->rbuf);
    c->rbuf = NULL;
    c->rcap = c->rlen = c->rpos = c->mbase = 0;
    sluiced_free(c->rq);
    c->rq = NULL;
}

/* Closes the socket now.  Finished replies are dropped; pending ones are
 * dropped as their handlers finish them. */
static void conn_close(sluiced_conn *c)
{
    if (c->closed)
        return;
    event_del(c->rev);
    event_del(c->wev);
    close(c->fd);
    c->fd = -1;
    c->closed = true;
    c->reading = c->writing = false;
    free_buffers(c);
    for (sluiced_http_reply *rp = c->qhead, *next; rp; rp = next) {
        next = rp->next;
        if (rp->done) {
            unlink_reply(c, rp);
            drop_reply(rp);
        }
    }
    c->out_pending = 0;
    sluiced_http_ctx *ctx = c->ctx;
    ctx->nopen--;
    sluiced_metrics_connections(-1);
    if (ctx->cfg.closed)
        ctx->cfg.closed(ctx, ctx->cfg.arg);
}

/* After the last reply: half-close, then discard what the client still sends
 * until it closes too or SLUICED_HTTP_LINGER_MS pass, so that unread input
 * never turns into a reset that destroys the reply on its way. */
static void conn_linger(sluiced_conn *c)
{
    if (c->eof || shutdown(c->fd, SHUT_WR) != 0) {
        conn_close(c);
        return;
    }
    c->lingering = true;
    c->linger_until_us = c->ctx->now_us + (int64_t)SLUICED_HTTP_LINGER_MS * 1000;
    if (!c->reading && event_add(c->rev, NULL) == 0)
        c->reading = true;
}

/* ---- replies ------------------------------------------------------------- */

sluiced_http_reply *sluiced__conn_reply_new(sluiced_conn *c, int minor, bool head_only,
                                            bool keep_alive)
{
    sluiced_http_reply *rp = sluiced_malloc(sizeof(*rp));
    if (!rp)
        abort(); /* the daemon's OOM policy */
    sluiced_http_reply_init(rp, minor, head_only, keep_alive);
    rp->conn = c;
    if (c->qtail)
        c->qtail->next = rp;
    else
        c->qhead = rp;
    c->qtail = rp;
    c->nq++;
    if (!keep_alive)
        c->stop_parsing = true; /* nothing after a closing reply */
    return rp;
}

void sluiced__conn_reply_error(sluiced_conn *c, int status, const char *code, const char *msg)
{
    int minor = c->parser.http_major == 1 ? c->parser.http_minor : 1;
    sluiced_http_reply *rp = sluiced__conn_reply_new(c, minor, false, false);
    char body[256];
    size_t n = sluiced_http_error_body(body, sizeof(body), code, msg);
    sluiced_http_reply_send(rp, status, NULL, body, n);
}

void sluiced__conn_reply_ready(sluiced_http_reply *rp)
{
    sluiced_conn *c = rp->conn;
    if (!rp->keep_alive)
        c->stop_parsing = true; /* the handler chose to close */
    if (c->closed || c->final_sent) {
        unlink_reply(c, rp);
        drop_reply(rp);
        conn_free_maybe(c);
        return;
    }
    c->out_pending += rp->len - rp->head;
    if (c->depth > 0) {
        c->want_flush = true; /* written once the caller is done parsing */
        return;
    }
    c->depth++;
    conn_run(c);
    c->depth--;
    conn_free_maybe(c);
}

/* Writes the finished prefix of the queue with one writev.  Returns the
 * number of replies fully written; closes the connection on error. */
static int conn_flush(sluiced_conn *c)
{
    struct iovec iov[SLUICED_HTTP_MAX_PIPELINE + 2];
    int k = 0;
    c->want_flush = false;
    for (sluiced_http_reply *rp = c->qhead; rp && rp->done; rp = rp->next) {
        if (k == (int)(sizeof(iov) / sizeof(iov[0])))
            break;
        iov[k].iov_base = rp->buf + rp->head + rp->sent;
        iov[k].iov_len = rp->len - rp->head - rp->sent;
        k++;
        if (!rp->keep_alive)
            break; /* nothing goes out after a closing reply */
    }
    if (k == 0)
        return 0;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)k};
    ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (!c->writing && event_add(c->wev, NULL) == 0)
                c->writing = true;
            return 0;
        }
        conn_close(c);
        return 0;
    }
    c->active_us = c->ctx->now_us;
    c->out_pending -= (size_t)n;
    int freed = 0;
    size_t left = (size_t)n;
    while (c->qhead && c->qhead->done) {
        sluiced_http_reply *rp = c->qhead;
        size_t rest = rp->len - rp->head - rp->sent;
        if (left < rest) {
            rp->sent += left;
            break;
        }
        left -= rest;
        if (!rp->keep_alive)
            c->final_sent = true;
        unlink_reply(c, rp);
        drop_reply(rp);
        freed++;
        if (c->final_sent)
            break;
    }
    if (c->final_sent) {
        /* Replies still pending behind the closing one are dropped. */
        for (sluiced_http_reply *rp = c->qhead, *next; rp; rp = next) {
            next = rp->next;
            if (rp->done) {
                c->out_pending -= rp->len - rp->head - rp->sent;
                unlink_reply(c, rp);
                drop_reply(rp);
            }
        }
    }
    bool more = !c->final_sent && c->qhead && c->qhead->done;
    if (more && !c->writing && event_add(c->wev, NULL) == 0)
        c->writing = true;
    if (!more && c->writing) {
        event_del(c->wev);
        c->writing = false;
    }
    return freed;
}

/* ---- the state machine ------------------------------------------------------ */

/* Parses, writes, and sets what to wait for next.  The caller holds depth. */
static void conn_run(sluiced_conn *c)
{
    for (;;) {
        sluiced__conn_parse(c);
        if (c->closed)
            return;
        int freed = conn_flush(c);
        if (c->closed)
            return;
        /* Written replies may have made room for more pipelined requests. */
        if (!freed || c->stop_parsing || c->rpos >= c->rlen || sluiced__conn_blocked(c))
            break;
    }
    if (c->eof && !c->stop_parsing && !sluiced__conn_blocked(c)) {
        c->stop_parsing = true; /* answer what was received, then close */
        c->in_msg = false;      /* an incomplete last request is dropped */
    }
    if (c->final_sent || (c->stop_parsing && c->nq == 0)) {
        if (!c->lingering)
            conn_linger(c);
        return;
    }
    if (c->in_msg && c->nq == 0 && c->req_start_us == 0)
        c->req_start_us = c->ctx->now_us;
    bool want_read = !c->eof && !sluiced__conn_blocked(c) && !c->stop_parsing;
    if (want_read && !c->reading && event_add(c->rev, NULL) == 0)
        c->reading = true;
    if (!want_read && c->reading) {
        event_del(c->rev);
        c->reading = false;
    }
    if (!c->in_msg && c->rlen == 0 && c->nq == 0)
        free_buffers(c); /* idle keep-alive: hold no buffers */
}

static void on_linger_read(sluiced_conn *c)
{
    char sink[4096];
    ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        conn_close(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sluiced_conn *c = arg;
    c->depth++;
    if (c->lingering) {
        on_linger_read(c);
        goto out;
    }
    if (sluiced__conn_room(c) != 0) {
        c->reading = false;
        event_del(c->rev);
        conn_run(c);
        goto out;
    }
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    if (n > 0) {
        c->rlen += (uint32_t)n;
        c->active_us = c->ctx->now_us;
    } else if (n == 0) {
        c->eof = true;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        goto out;
    } else {
        conn_close(c);
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
    sluiced_conn *c = arg;
    c->writing = false;
    c->depth++;
    conn_run(c);
    c->depth--;
    conn_free_maybe(c);
}

/* ---- the worker's connections ----------------------------------------------- */

sluiced_http_ctx *sluiced_http_ctx_new(struct event_base *base, const sluiced_http_cfg *cfg)
{
    sluiced_http_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    ctx->base = base;
    ctx->cfg = *cfg;
    ctx->head.next = ctx->head.prev = &ctx->head;
    ctx->now_us = sluiced_now_us();
    return ctx;
}

void sluiced_http_ctx_free(sluiced_http_ctx *ctx)
{
    if (!ctx)
        return;
    ctx->cfg.closed = NULL;
    while (ctx->head.next != &ctx->head) {
        sluiced_conn *c = ctx->head.next;
        conn_close(c);
        for (sluiced_http_reply *rp = c->qhead, *next; rp; rp = next) {
            next = rp->next; /* never finished: nothing runs after the loop */
            drop_reply(rp);
        }
        c->qhead = c->qtail = NULL;
        c->nq = 0;
        c->depth = 0;
        conn_free_maybe(c);
    }
    free(ctx);
}

int sluiced_http_ctx_count(const sluiced_http_ctx *ctx)
{
    return ctx->nopen;
}

static void peer_format(sluiced_conn *c, const struct sockaddr *sa, socklen_t len)
{
    c->peer[0] = '\0';
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->peer, sizeof(c->peer));
    else if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->peer,
                  sizeof(c->peer));
}

int sluiced_http_accept(sluiced_http_ctx *ctx, int fd, const struct sockaddr *peer,
                        socklen_t peer_len, bool reject)
{
    sluiced_conn *c = sluiced_malloc(sizeof(*c));
    if (!c) {
        close(fd);
        return -1;
    }
    memset(c, 0, sizeof(*c));
    c->ctx = ctx;
    c->fd = fd;
    c->rev = event_new(ctx->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->wev = event_new(ctx->base, fd, EV_WRITE, on_writable, c);
    if (!c->rev || !c->wev) {
        if (c->rev)
            event_free(c->rev);
        if (c->wev)
            event_free(c->wev);
        sluiced_free(c);
        close(fd);
        return -1;
    }
    sluiced__conn_parser_init(c);
    peer_format(c, peer, peer_len);
    /* Replies are whole; never hold one back for Nagle. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->active_us = c->ctx->now_us;
    c->next = ctx->head.next;
    c->prev = &ctx->head;
    ctx->head.next->prev = c;
    ctx->head.next = c;
    ctx->nopen++;
    sluiced_metrics_connections(1);
    c->depth++;
    if (reject)
        sluiced__conn_reply_error(c, 503, "too_many_connections", "connection limit reached");
    conn_run(c);
    c->depth--;
    conn_free_maybe(c);
    return 0;
}

void sluiced_http_sweep(sluiced_http_ctx *ctx, int64_t now_us)
{
    int64_t req_us = (int64_t)ctx->cfg.request_timeout_ms * 1000;
    int64_t idle_us = (int64_t)ctx->cfg.idle_timeout_s * 1000000;
    ctx->now_us = now_us;
    for (sluiced_conn *c = ctx->head.next, *next; c != &ctx->head; c = next) {
        next = c->next;
        if (c->closed)
            continue;
        c->depth++;
        if (c->lingering) {
            if (now_us > c->linger_until_us)
                conn_close(c);
        } else if (c->in_msg && c->nq == 0 && c->req_start_us &&
                   now_us - c->req_start_us > req_us) {
            c->in_msg = false;
            sluiced__conn_reply_error(c, 408, "request_timeout",
                                      "the request did not arrive in time");
            sluiced_log(SLUICED_LOG_INFO, "request_timeout", "peer=%s", c->peer);
            conn_run(c);
        } else if (now_us - c->active_us > idle_us && (c->nq == 0 || c->out_pending > 0)) {
            conn_close(c); /* idle keep-alive, or a client that stopped reading */
        }
        c->depth--;
        conn_free_maybe(c);
    }
}
