/* SPDX-License-Identifier: MIT */
/*
 * http_reply.c - the reply writer of sluiced's HTTP front end.  A reply is
 * built in one buffer, in place: the handler's header fields first (after
 * room kept for the status line), then, once the status is known, the
 * status line written into that room right before them, the framing
 * fields and the body.  The connection sends it with one writev together
 * with any other replies ready in request order.  No printf: numbers are
 * formatted by hand, the Date value once per second per thread.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "daemon.h"
#include "http.h"

/* Room for the longest status line ("HTTP/1.1 431 Request Header Fields Too Large\r\n"). */
#define STATUS_ROOM 64

int64_t sluiced_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *sluiced_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

void sluiced_http_reply_init(sluiced_http_reply *rp, int http_minor, bool head_only,
                             bool keep_alive)
{
    rp->next = NULL;
    rp->conn = NULL;
    rp->buf = rp->inl;
    rp->cap = sizeof(rp->inl);
    rp->head = STATUS_ROOM;
    rp->len = STATUS_ROOM;
    rp->sent = 0;
    rp->http_minor = http_minor;
    rp->head_only = head_only;
    rp->keep_alive = keep_alive;
    rp->done = false;
    rp->has_ctype = false;
}

void sluiced_http_reply_release(sluiced_http_reply *rp)
{
    if (rp->buf != rp->inl)
        free(rp->buf);
    rp->buf = rp->inl;
    rp->cap = sizeof(rp->inl);
}

static void room(sluiced_http_reply *rp, size_t n)
{
    if (rp->cap - rp->len >= n)
        return;
    if (n > SIZE_MAX / 2 - rp->len)
        abort(); /* cannot happen: bodies are bounded far below */
    size_t cap = rp->cap * 2;
    if (cap < rp->len + n)
        cap = rp->len + n + 256;
    char *p;
    if (rp->buf == rp->inl) {
        p = malloc(cap);
        if (p)
            memcpy(p, rp->inl, rp->len);
    } else {
        p = realloc(rp->buf, cap);
    }
    if (!p)
        abort(); /* the daemon's OOM policy */
    rp->buf = p;
    rp->cap = cap;
}

static void put(sluiced_http_reply *rp, const char *s, size_t n)
{
    room(rp, n);
    memcpy(rp->buf + rp->len, s, n);
    rp->len += n;
}

static void put_str(sluiced_http_reply *rp, const char *s)
{
    put(rp, s, strlen(s));
}

static void put_u64(sluiced_http_reply *rp, uint64_t v)
{
    char t[24], *q = t + sizeof(t);
    do {
        *--q = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(rp, q, (size_t)(t + sizeof(t) - q));
}

void sluiced_http_reply_header(sluiced_http_reply *rp, const char *name, const char *value)
{
    sluiced_http_reply_header_n(rp, name, strlen(name), value, strlen(value));
}

void sluiced_http_reply_header_n(sluiced_http_reply *rp, const char *name, size_t n,
                                 const char *value, size_t v)
{
    room(rp, n + v + 4);
    char *p = rp->buf + rp->len;
    memcpy(p, name, n);
    p[n] = ':';
    p[n + 1] = ' ';
    memcpy(p + n + 2, value, v);
    p[n + 2 + v] = '\r';
    p[n + 3 + v] = '\n';
    rp->len += n + v + 4;
    if (n == 12 && strncasecmp(name, "Content-Type", 12) == 0)
        rp->has_ctype = true;
}

/* The Date value of this second; formatted once per second per thread. */
static const char *http_date(void)
{
    static _Thread_local time_t sec = -1;
    static _Thread_local char text[40];
    time_t now = time(NULL);
    if (now != sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        sec = now;
    }
    return text;
}

void sluiced_http_reply_build(sluiced_http_reply *rp, int status, const char *content_type,
                              const char *body, size_t len)
{
    if (!rp->has_ctype)
        sluiced_http_reply_header(rp, "Content-Type",
                                  content_type ? content_type : "application/json");
    if (rp->http_minor >= 1) {
        put(rp, "Date: ", 6);
        put_str(rp, http_date());
        put(rp, "\r\n", 2);
    }
    put(rp, "Content-Length: ", 16);
    put_u64(rp, len);
    put(rp, "\r\n", 2);
    if (!rp->keep_alive)
        put(rp, "Connection: close\r\n", 19);
    else if (rp->http_minor == 0)
        put(rp, "Connection: keep-alive\r\n", 24);
    put(rp, "\r\n", 2);
    if (len && !rp->head_only)
        put(rp, body, len);

    /* The status line goes right before the header fields. */
    char line[STATUS_ROOM];
    const char *reason = sluiced_http_reason(status);
    size_t rl = strlen(reason);
    if (status < 100 || status > 999 || rl > STATUS_ROOM - 16)
        abort(); /* a programming error: sluiced's statuses are constants */
    memcpy(line, rp->http_minor >= 1 ? "HTTP/1.1 " : "HTTP/1.0 ", 9);
    line[9] = (char)('0' + status / 100);
    line[10] = (char)('0' + status / 10 % 10);
    line[11] = (char)('0' + status % 10);
    line[12] = ' ';
    memcpy(line + 13, reason, rl);
    line[13 + rl] = '\r';
    line[14 + rl] = '\n';
    size_t n = 15 + rl;
    rp->head = STATUS_ROOM - n;
    memcpy(rp->buf + rp->head, line, n);
    rp->done = true;
}

void sluiced_http_reply_send(sluiced_http_reply *rp, int status, const char *content_type,
                             const char *body, size_t len)
{
    sluiced_http_reply_build(rp, status, content_type, body, len);
    sluiced_metrics_response(status);
    sluiced__conn_reply_ready(rp);
}

size_t sluiced_http_error_body(char *buf, size_t size, const char *code, const char *msg)
{
    static const char a[] = "{\"error\":\"", b[] = "\",\"message\":\"", c[] = "\"}\n";
    size_t cl = strlen(code), ml = strlen(msg);
    size_t n = sizeof(a) - 1 + cl + sizeof(b) - 1 + ml + sizeof(c) - 1;
    if (n >= size)
        return 0;
    char *p = buf;
    memcpy(p, a, sizeof(a) - 1);
    p += sizeof(a) - 1;
    memcpy(p, code, cl);
    p += cl;
    memcpy(p, b, sizeof(b) - 1);
    p += sizeof(b) - 1;
    memcpy(p, msg, ml);
    p += ml;
    memcpy(p, c, sizeof(c) - 1);
    p += sizeof(c) - 1;
    *p = '\0';
    return n;
}
