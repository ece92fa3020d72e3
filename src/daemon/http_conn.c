/* SPDX-License-Identifier: MIT */
/*
 * http_conn.c - one HTTP/1.1 connection of sluiced: its read buffer, the
 * libhttp-parser callbacks that record a request as spans into that buffer,
 * the queue of replies that go out in request order, the limits (431, 413,
 * 408, 503) and the close (a lingering one after a closing reply, so the
 * client reads the reply before any reset).  Never parses HTTP itself.
 *
 * The read path: one recv into the buffer, then http_parser_execute over
 * the new bytes.  on_message_complete pauses the parser, so each request is
 * handled between two execute calls: the handler sees NUL-terminated
 * strings in the buffer (written over framing the parser has consumed) and
 * copies what it keeps.  Body pieces of chunked requests, and folded header
 * values, are moved down in place to be contiguous.
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
#include <errno.h>
#include <event2/event.h>
#include <http_parser.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemon.h"
#include "http.h"

#define RBUF_MIN 4000 /* within the thread cache's 4 KiB class */
#define RBUF_MAX (SLUICED_HTTP_MAX_HEAD + SLUICED_HTTP_MAX_BODY + 16384)

enum { CB_NONE, CB_FIELD, CB_VALUE };

struct sluiced_conn {
    sluiced_conn *prev, *next; /* ctx->head: every connection not yet freed */
    sluiced_http_ctx *ctx;
    int fd; /* -1 once closed */
    struct event *rev, *wev;
    http_parser parser;

    char *rbuf;    /* read buffer (NULL while idle) */
    uint32_t rcap; /* its size */
    uint32_t rlen; /* bytes received into it */
    uint32_t rpos; /* bytes of it given to the parser */
    uint32_t mbase; /* where the message being parsed starts */

    /* The message being parsed; spans are relative to mbase. */
    sluiced_http_request *rq; /* allocated while a message is parsed */
    sluiced_http_span url, body;
    uint32_t head_bytes; /* request target + fields + 4 per field */
    int last_cb;
    int perr; /* status the callbacks refused the request with; 0: none */
    bool in_msg, headers_done, keep_alive, expect_continue;

    /* Replies in request order; nq of them, out_pending bytes finished and unsent. */
    sluiced_http_reply *qhead, *qtail;
    int nq;
    size_t out_pending;

    int depth; /* callbacks of this connection on the stack: free later */
    bool closed, stop_parsing, eof, lingering, reading, writing, want_flush;
    bool final_sent; /* a closing reply is out: later ones are dropped */
    int64_t req_start_us; /* first byte of an incomplete request we wait for; 0: none */
    int64_t active_us;    /* last read or write progress */
    int64_t linger_until_us;
    char peer[48];
};

struct sluiced_http_ctx {
    struct event_base *base;
    sluiced_http_cfg cfg;
    sluiced_conn head; /* circular list */
    int nopen;
};

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
    c->linger_until_us = sluiced_now_us() + (int64_t)SLUICED_HTTP_LINGER_MS * 1000;
    if (!c->reading && event_add(c->rev, NULL) == 0)
        c->reading = true;
}

/* ---- replies ------------------------------------------------------------- */

static sluiced_http_reply *reply_new(sluiced_conn *c, int minor, bool head_only, bool keep_alive)
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

/* Queues a JSON error reply that closes the connection. */
static void reply_error(sluiced_conn *c, int status, const char *code, const char *msg)
{
    int minor = c->parser.http_major == 1 ? c->parser.http_minor : 1;
    sluiced_http_reply *rp = reply_new(c, minor, false, false);
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
    c->active_us = sluiced_now_us();
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

/* ---- parser callbacks ---------------------------------------------------- */

static sluiced_conn *conn_of(http_parser *p)
{
    return p->data;
}

/* Appends a piece the parser reported to a span, moving it down next to the
 * span's earlier pieces when something (chunk framing, a fold) lies between. */
static void span_add(sluiced_conn *c, sluiced_http_span *s, const char *at, size_t len)
{
    char *base = c->rbuf + c->mbase;
    if (s->len == 0)
        s->off = (uint32_t)(at - base);
    else if (base + s->off + s->len != at)
        memmove(base + s->off + s->len, at, len);
    s->len += (uint32_t)len;
}

static int head_grow(sluiced_conn *c, size_t len)
{
    c->head_bytes += (uint32_t)len;
    if (c->head_bytes <= SLUICED_HTTP_MAX_HEAD)
        return 0;
    c->perr = 431;
    return 1;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    sluiced_conn *c = conn_of(p);
    span_add(c, &c->url, at, len);
    return head_grow(c, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    sluiced_conn *c = conn_of(p);
    if (c->headers_done)
        return 0; /* trailers of a chunked body: ignored */
    sluiced_http_request *rq = c->rq;
    if (c->last_cb != CB_FIELD) {
        if (rq->nfields == SLUICED_HTTP_MAX_FIELDS) {
            c->perr = 431;
            return 1;
        }
        rq->name[rq->nfields] = (sluiced_http_span){0, 0};
        rq->value[rq->nfields] = (sluiced_http_span){0, 0};
        rq->nfields++;
        c->last_cb = CB_FIELD;
        if (head_grow(c, 4))
            return 1;
    }
    span_add(c, &rq->name[rq->nfields - 1], at, len);
    return head_grow(c, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    sluiced_conn *c = conn_of(p);
    if (c->headers_done)
        return 0;
    sluiced_http_request *rq = c->rq;
    c->last_cb = CB_VALUE;
    span_add(c, &rq->value[rq->nfields - 1], at, len);
    return head_grow(c, len);
}

static bool span_is(const sluiced_conn *c, sluiced_http_span s, const char *text)
{
    size_t n = strlen(text);
    return s.len == n && strncasecmp(c->rbuf + c->mbase + s.off, text, n) == 0;
}

static int on_headers_complete(http_parser *p)
{
    sluiced_conn *c = conn_of(p);
    sluiced_http_request *rq = c->rq;
    c->headers_done = true;
    c->keep_alive = http_should_keep_alive(p) != 0;
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
        p->content_length > SLUICED_HTTP_MAX_BODY) {
        c->perr = 413;
        return -1;
    }
    for (int i = 0; i < rq->nfields; i++) {
        if (!span_is(c, rq->name[i], "Expect") || p->http_major != 1 || p->http_minor < 1)
            continue;
        if (!span_is(c, rq->value[i], "100-continue")) {
            c->perr = 417;
            return -1;
        }
        c->expect_continue = (p->flags & F_CHUNKED) ||
                             (p->content_length != ULLONG_MAX && p->content_length > 0);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    sluiced_conn *c = conn_of(p);
    if (c->body.len + len > SLUICED_HTTP_MAX_BODY) {
        c->perr = 413;
        return 1;
    }
    span_add(c, &c->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_parser_pause(p, 1); /* handled between two execute calls */
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- requests -------------------------------------------------------------- */

static void msg_begin(sluiced_conn *c)
{
    if (!c->rq) {
        c->rq = sluiced_malloc(sizeof(*c->rq));
        if (!c->rq)
            abort();
    }
    c->rq->nfields = 0;
    c->in_msg = true;
    c->mbase = c->rpos;
    c->url = c->body = (sluiced_http_span){0, 0};
    c->head_bytes = 0;
    c->last_cb = CB_NONE;
    c->perr = 0;
    c->headers_done = c->keep_alive = c->expect_continue = false;
    if (c->nq == 0 && c->req_start_us == 0)
        c->req_start_us = sluiced_now_us();
}

/* A whole request: terminate its strings in place and hand it over. */
static void msg_complete(sluiced_conn *c)
{
    http_parser *p = &c->parser;
    sluiced_http_request *rq = c->rq;
    char *base = c->rbuf + c->mbase;
    c->in_msg = false;
    c->req_start_us = 0;
    rq->base = base;
    for (int i = 0; i < rq->nfields; i++) {
        base[rq->name[i].off + rq->name[i].len] = '\0';
        if (rq->value[i].len)
            base[rq->value[i].off + rq->value[i].len] = '\0';
    }
    rq->method = sluiced_http_method_bit(p->method);
    rq->method_name = http_method_str(p->method);
    rq->http_minor = p->http_major == 1 ? p->http_minor : 1;
    rq->body = base + c->body.off;
    rq->body_len = c->body.len;
    rq->peer = c->peer;
    bool keep = c->keep_alive && !p->upgrade && p->http_major == 1;
    if (sluiced_http_split_target(rq, c->url) != 0) {
        reply_error(c, 400, "bad_request", "malformed request target");
        return;
    }
    rq->reply = reply_new(c, rq->http_minor, rq->method == SLUICED_M_HEAD, keep);
    c->ctx->cfg.handle(rq, c->ctx->cfg.arg);
}

static void parse_error(sluiced_conn *c, enum http_errno e)
{
    int st = c->perr ? c->perr : e == HPE_HEADER_OVERFLOW ? 431 : 400;
    c->in_msg = false;
    if (st == 431)
        reply_error(c, 431, "headers_too_large",
                    "request headers exceed 100 fields or 16384 bytes");
    else if (st == 413)
        reply_error(c, 413, "body_too_large", "body exceeds 65536 bytes");
    else if (st == 417)
        reply_error(c, 417, "expectation_failed", "only Expect: 100-continue is supported");
    else
        reply_error(c, 400, "bad_request", http_errno_description(e));
}

/* A 100 Continue, in turn with the other replies. */
static void send_continue(sluiced_conn *c)
{
    static const char text[] = "HTTP/1.1 100 Continue\r\n\r\n";
    sluiced_http_reply *rp = reply_new(c, 1, false, true);
    memcpy(rp->buf + rp->head, text, sizeof(text) - 1);
    rp->len = rp->head + sizeof(text) - 1;
    rp->done = true;
    c->out_pending += sizeof(text) - 1;
    c->want_flush = true;
}

static bool blocked(const sluiced_conn *c)
{
    return c->nq >= SLUICED_HTTP_MAX_PIPELINE || c->out_pending >= SLUICED_HTTP_MAX_OUTPUT;
}

/* Parses what the buffer holds, handing over each complete request. */
static void conn_parse(sluiced_conn *c)
{
    while (!c->closed && !c->stop_parsing && c->rpos < c->rlen && !blocked(c)) {
        if (!c->in_msg)
            msg_begin(c);
        size_t n = http_parser_execute(&c->parser, &settings, c->rbuf + c->rpos,
                                       c->rlen - c->rpos);
        c->rpos += (uint32_t)n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            msg_complete(c);
            continue;
        }
        if (e != HPE_OK) {
            parse_error(c, e);
            return;
        }
    }
    if (c->in_msg && c->headers_done && c->expect_continue && c->body.len == 0 &&
        c->rpos == c->rlen && !c->stop_parsing) {
        c->expect_continue = false;
        send_continue(c);
    }
    if (!c->in_msg && c->rpos == c->rlen)
        c->rpos = c->rlen = 0; /* all consumed: start over at the front */
}

/* Makes room for a recv: compacts, grows up to RBUF_MAX.  -1 when a request
 * does not fit (answered 431 or 413). */
static int conn_room(sluiced_conn *c)
{
    if (!c->rbuf) {
        c->rbuf = sluiced_malloc(RBUF_MIN);
        if (!c->rbuf)
            abort();
        c->rcap = RBUF_MIN;
    }
    if (c->rcap - c->rlen >= 512 || (c->rlen < c->rcap && c->rcap == RBUF_MAX))
        return 0;
    uint32_t keep = c->in_msg ? c->mbase : c->rpos;
    if (keep > 0) {
        memmove(c->rbuf, c->rbuf + keep, c->rlen - keep);
        c->rlen -= keep;
        c->rpos -= keep;
        if (c->in_msg)
            c->mbase = 0;
    }
    if (c->rcap - c->rlen >= 512 || c->rcap == RBUF_MAX) {
        if (c->rlen < c->rcap)
            return 0;
        c->perr = c->headers_done ? 413 : 431; /* the request cannot fit */
        parse_error(c, HPE_OK);
        return -1;
    }
    uint32_t cap = c->rcap * 2 > RBUF_MAX ? RBUF_MAX : c->rcap * 2;
    char *p = sluiced_realloc(c->rbuf, cap);
    if (!p)
        abort();
    c->rbuf = p;
    c->rcap = cap;
    return 0;
}

/* ---- the state machine ------------------------------------------------------ */

/* Parses, writes, and sets what to wait for next.  The caller holds depth. */
static void conn_run(sluiced_conn *c)
{
    for (;;) {
        conn_parse(c);
        if (c->closed)
            return;
        int freed = conn_flush(c);
        if (c->closed)
            return;
        /* Written replies may have made room for more pipelined requests. */
        if (!freed || c->stop_parsing || c->rpos >= c->rlen || blocked(c))
            break;
    }
    if (c->eof && !c->stop_parsing && !blocked(c)) {
        c->stop_parsing = true; /* answer what was received, then close */
        c->in_msg = false;      /* an incomplete last request is dropped */
    }
    if (c->final_sent || (c->stop_parsing && c->nq == 0)) {
        if (!c->lingering)
            conn_linger(c);
        return;
    }
    if (c->in_msg && c->nq == 0 && c->req_start_us == 0)
        c->req_start_us = sluiced_now_us();
    bool want_read = !c->eof && !blocked(c) && !c->stop_parsing;
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
    if (conn_room(c) != 0) {
        c->reading = false;
        event_del(c->rev);
        conn_run(c);
        goto out;
    }
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    if (n > 0) {
        c->rlen += (uint32_t)n;
        c->active_us = sluiced_now_us();
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
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->peer,
                  sizeof(c->peer));
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
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    peer_format(c, peer, peer_len);
    /* Replies are whole; never hold one back for Nagle. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->active_us = sluiced_now_us();
    c->next = ctx->head.next;
    c->prev = &ctx->head;
    ctx->head.next->prev = c;
    ctx->head.next = c;
    ctx->nopen++;
    sluiced_metrics_connections(1);
    c->depth++;
    if (reject)
        reply_error(c, 503, "too_many_connections", "connection limit reached");
    conn_run(c);
    c->depth--;
    conn_free_maybe(c);
    return 0;
}

void sluiced_http_sweep(sluiced_http_ctx *ctx, int64_t now_us)
{
    int64_t req_us = (int64_t)ctx->cfg.request_timeout_ms * 1000;
    int64_t idle_us = (int64_t)ctx->cfg.idle_timeout_s * 1000000;
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
            reply_error(c, 408, "request_timeout", "the request did not arrive in time");
            sluiced_log(SLUICED_LOG_INFO, "request_timeout", "peer=%s", c->peer);
            conn_run(c);
        } else if (now_us - c->active_us > idle_us && (c->nq == 0 || c->out_pending > 0)) {
            conn_close(c); /* idle keep-alive, or a client that stopped reading */
        }
        c->depth--;
        conn_free_maybe(c);
    }
}
