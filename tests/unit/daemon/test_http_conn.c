/* SPDX-License-Identifier: MIT */
/*
 * test_http_conn.c - sluiced's HTTP front end (http_conn.c, http_req.c,
 * http_reply.c) over a socketpair and a private event loop, without the
 * server: header lookup and target split, bodies (length, chunked, tiny
 * writes), pipelined replies finished out of order going out in request
 * order, the pipeline cap, 431 / 413 / 417 / 408 / 503, 100-continue,
 * HTTP/1.0 and Connection: close, answers after a half-close, and a client
 * that leaves before its reply.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/http.h"
#include "test.h"

/* ---- a harness: one connection, a handler that records or defers ---------- */

#define MAXREQ 64

typedef struct seen {
    char path[64], query[64], body[70000], key[64], host[64];
    size_t body_len;
    int method;
} seen;

static struct {
    struct event_base *base;
    sluiced_http_ctx *ctx;
    int client; /* our end */
    bool defer; /* keep replies for later instead of answering at once */
    int n;      /* requests handled */
    seen req[MAXREQ];
    sluiced_http_reply *held[MAXREQ];
} h;

static void handler(sluiced_http_request *req, void *arg)
{
    (void)arg;
    ASSERT(h.n < MAXREQ);
    seen *s = &h.req[h.n];
    snprintf(s->path, sizeof(s->path), "%s", req->path);
    snprintf(s->query, sizeof(s->query), "%s", req->query ? req->query : "(none)");
    const char *k = sluiced_http_header(req, "x-api-KEY");
    snprintf(s->key, sizeof(s->key), "%s", k ? k : "(none)");
    const char *host = sluiced_http_header(req, "Host");
    snprintf(s->host, sizeof(s->host), "%s", host ? host : "(none)");
    ASSERT(req->body_len <= sizeof(s->body));
    memcpy(s->body, req->body, req->body_len);
    s->body_len = req->body_len;
    s->method = req->method;
    if (h.defer) {
        h.held[h.n++] = req->reply;
        return;
    }
    char body[80];
    int n = snprintf(body, sizeof(body), "r%d", h.n++);
    sluiced_http_reply_header(req->reply, "X-Seq", body);
    sluiced_http_reply_send(req->reply, 200, "text/plain", body, (size_t)n);
}

static void setup(int request_timeout_ms, bool reject)
{
    memset(&h, 0, sizeof(h));
    h.base = event_base_new();
    ASSERT(h.base);
    sluiced_http_cfg cfg = {
        .request_timeout_ms = request_timeout_ms, .idle_timeout_s = 30, .handle = handler};
    h.ctx = sluiced_http_ctx_new(h.base, &cfg);
    ASSERT(h.ctx);
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    h.client = sv[0];
    ASSERT_EQ(sluiced_http_accept(h.ctx, sv[1], NULL, 0, reject), 0);
}

static void teardown(void)
{
    sluiced_http_ctx_free(h.ctx);
    event_base_free(h.base);
    if (h.client >= 0)
        close(h.client);
    sluiced_alloc_thread_flush();
}

static void pump(void)
{
    for (int i = 0; i < 20; i++)
        event_base_loop(h.base, EVLOOP_NONBLOCK);
}

static void say(const char *s)
{
    size_t n = strlen(s);
    ASSERT_EQ(write(h.client, s, n), (ssize_t)n);
    pump();
}

/* Everything the server wrote so far; *eof set when it closed its side. */
static char *hear(bool *eof)
{
    static char buf[1 << 20];
    size_t len = 0;
    *eof = false;
    pump();
    for (;;) {
        ssize_t n = read(h.client, buf + len, sizeof(buf) - 1 - len);
        if (n > 0) {
            len += (size_t)n;
            pump();
            continue;
        }
        if (n == 0)
            *eof = true;
        break;
    }
    buf[len] = '\0';
    return buf;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_request_view(void)
{
    setup(10000, false);
    say("GET /v1/authorize/x?nodelay=1&a=b#frag HTTP/1.1\r\nHost: h1\r\nX-Api-Key: k1\r\n"
        "X-Folded: a\r\n\r\n");
    ASSERT_EQ(h.n, 1);
    ASSERT_STREQ(h.req[0].path, "/v1/authorize/x");
    ASSERT_STREQ(h.req[0].query, "nodelay=1&a=b");
    ASSERT_STREQ(h.req[0].key, "k1"); /* looked up as "x-api-KEY" */
    ASSERT_STREQ(h.req[0].host, "h1");
    ASSERT_EQ(h.req[0].method, SLUICED_M_GET);
    /* absolute form and no query */
    say("POST http://example.com/v1/check HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    ASSERT_EQ(h.n, 2);
    ASSERT_STREQ(h.req[1].path, "/v1/check");
    ASSERT_STREQ(h.req[1].query, "(none)");
    ASSERT_STREQ(h.req[1].key, "(none)");
    ASSERT_EQ(h.req[1].body_len, 5);
    ASSERT(memcmp(h.req[1].body, "hello", 5) == 0);
    bool eof;
    char *out = hear(&eof);
    ASSERT(!eof);
    ASSERT_EQ(count(out, "HTTP/1.1 200 OK\r\n"), 2);
    ASSERT_CONTAINS(out, "X-Seq: r0\r\nContent-Type: text/plain\r\nDate: ");
    ASSERT_CONTAINS(out, "Content-Length: 2\r\n\r\nr0HTTP/1.1 200 OK");
    teardown();
}

static void test_chunked_and_tiny_writes(void)
{
    setup(10000, false);
    /* a chunked body arrives de-chunked; trailers are ignored */
    say("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        "A\r\n0123456789\r\n1;ext=1\r\nZ\r\n0\r\nTrailer: t\r\n\r\n");
    ASSERT_EQ(h.n, 1);
    ASSERT_EQ(h.req[0].body_len, 14);
    ASSERT(memcmp(h.req[0].body, "abc0123456789Z", 14) == 0);
    /* one byte per write, header value and body across many reads */
    const char *req = "POST /tiny?q HTTP/1.1\r\nX-API-Key: split-value\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n3\r\nyou\r\n0\r\n\r\n";
    for (const char *p = req; *p; p++) {
        char one[2] = {*p, 0};
        say(one);
    }
    ASSERT_EQ(h.n, 2);
    ASSERT_STREQ(h.req[1].path, "/tiny");
    ASSERT_STREQ(h.req[1].query, "q");
    ASSERT_STREQ(h.req[1].key, "split-value");
    ASSERT_EQ(h.req[1].body_len, 5);
    ASSERT(memcmp(h.req[1].body, "hiyou", 5) == 0);
    bool eof;
    ASSERT_EQ(count(hear(&eof), "HTTP/1.1 200 OK"), 2);
    teardown();

    /* 60000 one-byte chunks: 360 KB on the wire, more than the read buffer
     * may hold; the consumed framing is squeezed out as it goes */
    setup(10000, false);
    say("POST /many HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    static char wire[6000];
    for (int i = 0; i < 1000; i++)
        memcpy(wire + 6 * i, i % 2 ? "1\r\nb\r\n" : "1\r\na\r\n", 6);
    for (int k = 0; k < 60; k++) {
        ASSERT_EQ(write(h.client, wire, sizeof(wire)), (ssize_t)sizeof(wire));
        pump();
    }
    say("0\r\n\r\n");
    ASSERT_EQ(h.n, 1);
    ASSERT_EQ(h.req[0].body_len, 60000);
    ASSERT(memcmp(h.req[0].body, "abab", 4) == 0 && h.req[0].body[59999] == 'b');
    ASSERT_EQ(count(hear(&eof), "HTTP/1.1 200 OK"), 1);
    teardown();
}

static void test_pipelined_out_of_order(void)
{
    setup(10000, false);
    h.defer = true;
    say("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n");
    ASSERT_EQ(h.n, 3); /* all three are being decided at once */
    sluiced_http_reply_send(h.held[2], 200, NULL, "c", 1);
    sluiced_http_reply_send(h.held[1], 429, NULL, "b", 1);
    bool eof;
    char *out = hear(&eof);
    ASSERT_STREQ(out, ""); /* nothing may overtake the first reply */
    sluiced_http_reply_send(h.held[0], 200, NULL, "a", 1);
    out = hear(&eof);
    ASSERT_EQ(count(out, "HTTP/1.1 "), 3);
    const char *a = strstr(out, "\r\n\r\na"), *b = strstr(out, "\r\n\r\nb");
    const char *c = strstr(out, "\r\n\r\nc");
    ASSERT(a && b && c && a < b && b < c);
    ASSERT_CONTAINS(out, "HTTP/1.1 429 Too Many Requests\r\n");
    ASSERT(!eof);
    teardown();
}

static void test_pipeline_cap(void)
{
    setup(10000, false);
    h.defer = true;
    char big[64 * 24];
    size_t len = 0;
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(big + len, sizeof(big) - len, "GET /p%d HTTP/1.1\r\n\r\n", i);
    ASSERT_EQ(write(h.client, big, len), (ssize_t)len);
    pump();
    ASSERT_EQ(h.n, SLUICED_HTTP_MAX_PIPELINE); /* the rest waits unparsed */
    for (int i = 0; i < SLUICED_HTTP_MAX_PIPELINE; i++)
        sluiced_http_reply_send(h.held[i], 200, NULL, NULL, 0);
    pump();
    ASSERT_EQ(h.n, 40);
    for (int i = SLUICED_HTTP_MAX_PIPELINE; i < 40; i++)
        sluiced_http_reply_send(h.held[i], 200, NULL, NULL, 0);
    bool eof;
    ASSERT_EQ(count(hear(&eof), "HTTP/1.1 200 OK"), 40);
    ASSERT_STREQ(h.req[39].path, "/p39");
    teardown();
}

/* Sends req, expects one reply with status (text) and the connection closed. */
static void expect_close(const char *req, const char *status, const char *code)
{
    setup(10000, false);
    say(req);
    bool eof;
    char *out = hear(&eof);
    ASSERT(strncmp(out, status, strlen(status)) == 0);
    ASSERT_CONTAINS(out, code);
    ASSERT_CONTAINS(out, "Connection: close\r\n");
    ASSERT_EQ(h.n, 0);
    shutdown(h.client, SHUT_WR); /* ends the lingering close */
    pump();
    ASSERT_EQ(sluiced_http_ctx_count(h.ctx), 0);
    teardown();
}

static void test_limits(void)
{
    static char req[80000];
    size_t len = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < SLUICED_HTTP_MAX_FIELDS + 1; i++)
        len += (size_t)snprintf(req + len, sizeof(req) - len, "X-H%d: v\r\n", i);
    snprintf(req + len, sizeof(req) - len, "\r\n");
    expect_close(req, "HTTP/1.1 431 ", "\"error\":\"headers_too_large\"");

    len = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Big: ");
    memset(req + len, 'v', 17000);
    snprintf(req + len + 17000, sizeof(req) - len - 17000, "\r\n\r\n");
    expect_close(req, "HTTP/1.1 431 ", "\"error\":\"headers_too_large\"");

    expect_close("POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", "HTTP/1.1 413 ",
                 "\"error\":\"body_too_large\"");
    expect_close("POST / HTTP/1.1\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx", "HTTP/1.1 417 ",
                 "\"error\":\"expectation_failed\"");
    expect_close("XYZZY / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ", "\"error\":\"bad_request\"");

    /* a chunked body grows past the limit: 413 once it does */
    setup(10000, false);
    say("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[8200];
    len = (size_t)snprintf(chunk, sizeof(chunk), "2000\r\n");
    memset(chunk + len, 'b', 8192);
    memcpy(chunk + len + 8192, "\r\n", 2);
    for (int i = 0; i < 9; i++)
        ASSERT_EQ(write(h.client, chunk, len + 8194), (ssize_t)(len + 8194));
    bool eof;
    char *out = hear(&eof);
    ASSERT(strncmp(out, "HTTP/1.1 413 ", 13) == 0);
    ASSERT_EQ(h.n, 0);
    teardown();

    /* exactly at the limit is fine */
    setup(10000, false);
    snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n",
             SLUICED_HTTP_MAX_BODY);
    say(req);
    memset(req, 'x', SLUICED_HTTP_MAX_BODY);
    ASSERT_EQ(write(h.client, req, SLUICED_HTTP_MAX_BODY), SLUICED_HTTP_MAX_BODY);
    ASSERT_CONTAINS(hear(&eof), "HTTP/1.1 200 OK");
    ASSERT_EQ(h.req[0].body_len, SLUICED_HTTP_MAX_BODY);
    teardown();
}

static void test_expect_continue(void)
{
    setup(10000, false);
    say("POST /e HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
    bool eof;
    ASSERT_STREQ(hear(&eof), "HTTP/1.1 100 Continue\r\n\r\n");
    say("abc");
    char *out = hear(&eof);
    ASSERT(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    ASSERT_EQ(h.req[0].body_len, 3);
    teardown();
    /* the body already sent along: no 100 */
    setup(10000, false);
    say("POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc");
    out = hear(&eof);
    ASSERT(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    teardown();
}

static void test_close_semantics(void)
{
    bool eof;
    setup(10000, false);
    say("GET /old HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n");
    char *out = hear(&eof);
    ASSERT(strncmp(out, "HTTP/1.0 200 OK\r\n", 17) == 0);
    ASSERT_EQ(count(out, "HTTP/1.0"), 1);
    ASSERT_CONTAINS(out, "Connection: close\r\n");
    ASSERT(eof); /* half-closed after the reply */
    ASSERT_EQ(h.n, 1);
    teardown();

    setup(10000, false);
    say("GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    out = hear(&eof);
    ASSERT_CONTAINS(out, "Connection: keep-alive\r\n");
    ASSERT(!eof);
    say("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\nGET /c "
        "HTTP/1.1\r\n\r\n");
    out = hear(&eof);
    ASSERT_EQ(count(out, "HTTP/1.1 200"), 2);
    ASSERT(eof);
    ASSERT_EQ(h.n, 3);
    teardown();

    /* half-close: every request already sent is answered, then EOF */
    setup(10000, false);
    h.defer = true;
    ASSERT_EQ(write(h.client, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTT", 48), 48);
    shutdown(h.client, SHUT_WR);
    pump();
    ASSERT_EQ(h.n, 2); /* the incomplete third one is dropped */
    sluiced_http_reply_send(h.held[1], 200, NULL, "2", 1);
    sluiced_http_reply_send(h.held[0], 200, NULL, "1", 1);
    out = hear(&eof);
    ASSERT_EQ(count(out, "HTTP/1.1 200"), 2);
    ASSERT(eof);
    ASSERT_EQ(sluiced_http_ctx_count(h.ctx), 0);
    teardown();
}

static void test_client_gone_before_reply(void)
{
    setup(10000, false);
    h.defer = true;
    say("GET /held HTTP/1.1\r\n\r\n");
    ASSERT_EQ(h.n, 1);
    close(h.client);
    h.client = -1;
    pump();
    /* the reply finds its client gone; the connection is released (ASan: no leak, no UAF) */
    sluiced_http_reply_send(h.held[0], 200, NULL, "late", 4);
    pump();
    ASSERT_EQ(sluiced_http_ctx_count(h.ctx), 0);
    teardown();
}

static void test_timeouts_and_reject(void)
{
    bool eof;
    setup(50, false);
    say("POST /slow HTTP/1.1\r\nContent-Length: 10\r\n\r\nab");
    sluiced_http_sweep(h.ctx, sluiced_now_us()); /* not yet */
    ASSERT_STREQ(hear(&eof), "");
    sluiced_http_sweep(h.ctx, sluiced_now_us() + 100000);
    char *out = hear(&eof);
    ASSERT(strncmp(out, "HTTP/1.1 408 Request Timeout\r\n", 30) == 0);
    ASSERT_CONTAINS(out, "\"error\":\"request_timeout\"");
    ASSERT(eof);
    ASSERT_EQ(h.n, 0);
    teardown();

    /* while a reply is pending the client is not slow: no 408 */
    setup(50, false);
    h.defer = true;
    say("GET /a HTTP/1.1\r\n\r\nGET /b HT");
    sluiced_http_sweep(h.ctx, sluiced_now_us() + 100000);
    ASSERT_STREQ(hear(&eof), "");
    sluiced_http_reply_send(h.held[0], 200, NULL, NULL, 0);
    ASSERT_CONTAINS(hear(&eof), "HTTP/1.1 200");
    teardown();

    setup(10000, true);
    out = hear(&eof);
    ASSERT(strncmp(out, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
    ASSERT_CONTAINS(out, "\"error\":\"too_many_connections\"");
    ASSERT(eof);
    teardown();
}

static void test_reply_builder(void)
{
    char buf[64];
    static const char want[] = "{\"error\":\"c\",\"message\":\"m\"}\n";
    ASSERT_EQ(sluiced_http_error_body(buf, sizeof(buf), "c", "m"), strlen(want));
    ASSERT_STREQ(buf, want);
    ASSERT_EQ(sluiced_http_error_body(buf, 10, "c", "m"), 0);
    /* a HEAD reply says the length but carries no body; a big body moves to the heap */
    sluiced_http_reply rp;
    sluiced_http_reply_init(&rp, 1, true, true);
    sluiced_http_reply_build(&rp, 200, NULL, "abc", 3);
    ASSERT_CONTAINS(rp.buf + rp.head, "Content-Length: 3\r\n\r\n");
    ASSERT(rp.buf[rp.len - 1] == '\n');
    sluiced_http_reply_release(&rp);
    static char body[5000];
    memset(body, 'z', sizeof(body));
    sluiced_http_reply_init(&rp, 0, false, false);
    sluiced_http_reply_header(&rp, "Content-Type", "x/y");
    sluiced_http_reply_build(&rp, 404, "ignored/z", body, sizeof(body));
    ASSERT(strncmp(rp.buf + rp.head, "HTTP/1.0 404 Not Found\r\nContent-Type: x/y\r\n", 43) == 0);
    ASSERT_EQ(count(rp.buf + rp.head, "Content-Type"), 1);
    ASSERT(rp.buf != rp.inl);
    ASSERT(rp.buf[rp.len - 1] == 'z');
    sluiced_http_reply_release(&rp);
}

int main(void)
{
    RUN(test_request_view);
    RUN(test_chunked_and_tiny_writes);
    RUN(test_pipelined_out_of_order);
    RUN(test_pipeline_cap);
    RUN(test_limits);
    RUN(test_expect_continue);
    RUN(test_close_semantics);
    RUN(test_client_gone_before_reply);
    RUN(test_timeouts_and_reject);
    RUN(test_reply_builder);
    return test_done();
}
