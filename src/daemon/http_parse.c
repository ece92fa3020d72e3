/* SPDX-License-Identifier: MIT */
/*
 * http_parse.c - a connection's read buffer fed to libhttp-parser.  The
 * callbacks record the request being parsed as spans into the buffer
 * (request target, up to 100 header fields, body), enforce the size limits
 * (431, 413) and Expect (100-continue or 417); on_message_complete pauses
 * the parser, so each request is handed to the handler between two execute
 * calls, with its strings NUL-terminated in place (over framing the parser
 * has consumed).  Chunked body pieces and folded header values are moved
 * down in place to be contiguous.  Never parses HTTP itself, never touches
 * the socket.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon.h"
#include "http_conn.h"

#define RBUF_MIN 4000 /* within the thread cache's 4 KiB class */
#define RBUF_MAX (SLUICED_HTTP_MAX_HEAD + SLUICED_HTTP_MAX_BODY + 16384)

enum { CB_NONE, CB_FIELD, CB_VALUE };

/* The limits docs/http-api.md states, kept in one place with daemon.h's. */
_Static_assert(SLUICED_HTTP_MAX_HEAD == SLUICED_MAX_HEADERS_SIZE, "header limit");
_Static_assert(SLUICED_HTTP_MAX_BODY == SLUICED_MAX_BODY_SIZE, "body limit");

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
        c->expect_continue =
            (p->flags & F_CHUNKED) || (p->content_length != ULLONG_MAX && p->content_length > 0);
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
        c->req_start_us = c->ctx->now_us;
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
        sluiced__conn_reply_error(c, 400, "bad_request", "malformed request target");
        return;
    }
    rq->reply = sluiced__conn_reply_new(c, rq->http_minor, rq->method == SLUICED_M_HEAD, keep);
    c->ctx->cfg.handle(rq, c->ctx->cfg.arg);
}

static void parse_error(sluiced_conn *c, enum http_errno e)
{
    int st = c->perr ? c->perr : e == HPE_HEADER_OVERFLOW ? 431 : 400;
    c->in_msg = false;
    if (st == 431)
        sluiced__conn_reply_error(c, 431, "headers_too_large",
                                  "request headers exceed 100 fields or 16384 bytes");
    else if (st == 413)
        sluiced__conn_reply_error(c, 413, "body_too_large", "body exceeds 65536 bytes");
    else if (st == 417)
        sluiced__conn_reply_error(c, 417, "expectation_failed",
                                  "only Expect: 100-continue is supported");
    else
        sluiced__conn_reply_error(c, 400, "bad_request", http_errno_description(e));
}

/* A 100 Continue, in turn with the other replies. */
static void send_continue(sluiced_conn *c)
{
    static const char text[] = "HTTP/1.1 100 Continue\r\n\r\n";
    sluiced_http_reply *rp = sluiced__conn_reply_new(c, 1, false, true);
    memcpy(rp->buf + rp->head, text, sizeof(text) - 1);
    rp->len = rp->head + sizeof(text) - 1;
    rp->done = true;
    c->out_pending += sizeof(text) - 1;
    c->want_flush = true;
}

bool sluiced__conn_blocked(const sluiced_conn *c)
{
    return c->nq >= SLUICED_HTTP_MAX_PIPELINE || c->out_pending >= SLUICED_HTTP_MAX_OUTPUT;
}

void sluiced__conn_parse(sluiced_conn *c)
{
    while (!c->closed && !c->stop_parsing && c->rpos < c->rlen && !sluiced__conn_blocked(c)) {
        if (!c->in_msg)
            msg_begin(c);
        size_t n = http_parser_execute(&c->parser, &settings, c->rbuf + c->rpos, c->rlen - c->rpos);
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

/* Compacts, then grows up to RBUF_MAX. */
int sluiced__conn_room(sluiced_conn *c)
{
    if (!c->rbuf) {
        c->rbuf = sluiced_malloc(RBUF_MIN);
        if (!c->rbuf)
            abort();
        c->rcap = RBUF_MIN;
    }
    if (c->rcap - c->rlen >= 512 || (c->rlen < c->rcap && c->rcap == RBUF_MAX))
        return 0;
    /* Chunk framing the parser consumed after the body's pieces is dead:
     * squeeze it out, so a body in small chunks needs no more room than
     * its bytes (the next piece lands right after the body, contiguous). */
    if (c->in_msg && c->headers_done && c->body.len > 0) {
        uint32_t end = c->mbase + c->body.off + c->body.len;
        if (end < c->rpos) {
            memmove(c->rbuf + end, c->rbuf + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos - end;
            c->rpos = end;
        }
    }
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

void sluiced__conn_parser_init(sluiced_conn *c)
{
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
}
