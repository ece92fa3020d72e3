/* SPDX-License-Identifier: MIT */
/*
 * test_grpc.c - sluiced's gRPC front end (grpc_conn.c, grpc_call.c,
 * grpc_rls.c, grpc_health.c) without a server: one worker's context on a
 * libevent base with the memory store, a connection over a socketpair, and
 * an nghttp2 client session on the other end (a real HTTP/2 peer; the
 * replies are decoded with the same generated protobuf-c code).  Covers a
 * decided call and its fields, Health, Trailers-Only errors, and a client
 * that vanishes mid-stream: the context frees everything (the ASan unit
 * run reports any leak or use after free).
 */
#include <event2/event.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/grpc.h"
#include "envoy/service/ratelimit/v3/rls.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "policy/policy.h"
#include "test.h"

/* server.c's, which this test does not link. */
sluice_store *sluiced_store;

sluiced_cfg *sluiced_worker_cfg(sluiced_worker *w)
{
    return w->cfg;
}

#define RLS "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
#define HEALTH "/grpc.health.v1.Health/Check"

/* ---- an HTTP/2 client on nghttp2 -------------------------------------------------- */

typedef struct reply {
    int grpc_status; /* -1 until seen */
    char http_status[8];
    uint8_t data[4096];
    size_t ndata;
    bool closed;
} reply;

typedef struct client {
    int fd;
    nghttp2_session *h2;
    reply r[8];
} client;

static reply *rep_of(client *c, int32_t id)
{
    int k = (id - 1) / 2;
    return k >= 0 && k < 8 ? &c->r[k] : NULL;
}

static int c_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
                    size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)h2;
    (void)flags;
    reply *r = rep_of(ud, f->hd.stream_id);
    if (!r)
        return 0;
    if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
        r->grpc_status = atoi((const char *)value);
    if (namelen == 7 && memcmp(name, ":status", 7) == 0 && valuelen < sizeof(r->http_status))
        memcpy(r->http_status, value, valuelen);
    return 0;
}

static int c_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                  void *ud)
{
    (void)h2;
    (void)flags;
    reply *r = rep_of(ud, id);
    if (r && r->ndata + len <= sizeof(r->data)) {
        memcpy(r->data + r->ndata, data, len);
        r->ndata += len;
    }
    return 0;
}

static int c_close(nghttp2_session *h2, int32_t id, uint32_t code, void *ud)
{
    (void)h2;
    (void)code;
    reply *r = rep_of(ud, id);
    if (r)
        r->closed = true;
    return 0;
}

static void client_init(client *c, int fd)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < 8; i++)
        c->r[i].grpc_status = -1;
    c->fd = fd;
    nghttp2_session_callbacks *cb;
    ASSERT_EQ(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_close);
    ASSERT_EQ(nghttp2_session_client_new(&c->h2, cb, c), 0);
    nghttp2_session_callbacks_del(cb);
    ASSERT_EQ(nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

typedef struct body {
    const uint8_t *p;
    size_t len, off;
} body;

static ssize_t c_read(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                      nghttp2_data_source *src, void *ud)
{
    (void)h2;
    (void)id;
    (void)ud;
    body *b = src->ptr;
    size_t n = b->len - b->off < length ? b->len - b->off : length;
    memcpy(buf, b->p + b->off, n);
    b->off += n;
    if (b->off == b->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE             \
    }

static int32_t client_call(client *c, const char *path, const char *ctype, body *b)
{
    nghttp2_nv h[] = {NV(":method", "POST"), NV(":scheme", "http"),     NV(":authority", "t"),
                      NV(":path", path),     NV("content-type", ctype), NV("te", "trailers")};
    nghttp2_data_provider dp = {.source.ptr = b, .read_callback = c_read};
    int32_t id = nghttp2_submit_request(c->h2, NULL, h, 6, b ? &dp : NULL, NULL);
    ASSERT(id > 0);
    return id;
}

/* Moves bytes both ways and runs the server's loop until done(c) or 2000 rounds. */
static void pump(client *c, struct event_base *base, bool (*done)(client *, int32_t), int32_t id)
{
    for (int i = 0; i < 2000 && !(done && done(c, id)); i++) {
        const uint8_t *p;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(c->h2, &p)) > 0)
            ASSERT_EQ(write(c->fd, p, (size_t)n), n);
        event_base_loop(base, EVLOOP_NONBLOCK);
        uint8_t buf[16384];
        ssize_t k = read(c->fd, buf, sizeof(buf));
        if (k > 0)
            ASSERT_EQ(nghttp2_session_mem_recv(c->h2, buf, (size_t)k), k);
        if (!done && i > 20)
            return;
    }
}

static bool stream_done(client *c, int32_t id)
{
    return rep_of(c, id)->closed;
}

/* ---- the server side ------------------------------------------------------------- */

typedef struct fixture {
    struct event_base *base;
    sluiced_worker w;
    sluiced_grpc_ctx *ctx;
    char dir[64];
} fixture;

static void setup(fixture *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-grpc-unit-XXXXXX");
    ASSERT(mkdtemp(f->dir) != NULL);
    char path[128], yaml[512];
    snprintf(path, sizeof(path), "%s/d.yaml", f->dir);
    FILE *fp = fopen(path, "w");
    ASSERT(fp != NULL);
    fputs("domain: u\ndescriptors:\n  - key: user\n"
          "    rate_limit: { unit: hour, requests_per_unit: 2 }\n",
          fp);
    fclose(fp);
    snprintf(yaml, sizeof(yaml),
             "descriptors_config: [%s]\nrules:\n  - name: r\n"
             "    limits: [ { algorithm: fixed_window, limit: 5, window: 1m } ]\n",
             path);
    sluice_error err = {0};
    sluice_config *cfg = NULL;
    ASSERT_EQ(sluice_config_load_string(&cfg, yaml, strlen(yaml), "t.yaml", &err), 0);
    ASSERT_EQ(sluice_store_open(&sluiced_store, "memory://", NULL, &err), 0);
    ASSERT_EQ(sluiced_cfg_install(cfg), 0);
    f->base = event_base_new();
    ASSERT(f->base != NULL);
    f->w.base = f->base;
    atomic_init(&f->w.inflight, 0);
    ASSERT_EQ(sluice_async_new(&f->w.async, sluiced_store, f->base, &err), 0);
    f->w.cfg = sluiced_cfg_get();
    f->ctx = sluiced_grpc_ctx_new(f->base, &f->w, 30, 1000);
    ASSERT(f->ctx != NULL);
}

static int connect_pair(fixture *f)
{
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ASSERT_EQ(sluiced_grpc_accept(f->ctx, sv[0], false), 0);
    ASSERT_EQ(sluiced_grpc_ctx_count(f->ctx), 1);
    return sv[1];
}

static void teardown(fixture *f)
{
    sluice_async_free(f->w.async);
    sluiced_grpc_ctx_free(f->ctx);
    sluiced_cfg_put(f->w.cfg);
    sluiced_cfg_shutdown();
    event_base_free(f->base);
    sluice_store_close(sluiced_store);
    sluiced_store = NULL;
    char path[128];
    snprintf(path, sizeof(path), "%s/d.yaml", f->dir);
    unlink(path);
    rmdir(f->dir);
}

/* A length-prefixed RateLimitRequest for domain u, descriptor user=<v>. */
static size_t rls_request(uint8_t *out, size_t size, const char *v)
{
    Envoy__Extensions__Common__Ratelimit__V3__RateLimitDescriptor__Entry e =
        ENVOY__EXTENSIONS__COMMON__RATELIMIT__V3__RATE_LIMIT_DESCRIPTOR__ENTRY__INIT;
    e.key = (char *)"user";
    e.value = (char *)v;
    Envoy__Extensions__Common__Ratelimit__V3__RateLimitDescriptor__Entry *ep = &e;
    Envoy__Extensions__Common__Ratelimit__V3__RateLimitDescriptor d =
        ENVOY__EXTENSIONS__COMMON__RATELIMIT__V3__RATE_LIMIT_DESCRIPTOR__INIT;
    d.n_entries = 1;
    d.entries = &ep;
    Envoy__Extensions__Common__Ratelimit__V3__RateLimitDescriptor *dp = &d;
    Envoy__Service__Ratelimit__V3__RateLimitRequest r =
        ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_REQUEST__INIT;
    r.domain = (char *)"u";
    r.n_descriptors = 1;
    r.descriptors = &dp;
    size_t n = envoy__service__ratelimit__v3__rate_limit_request__get_packed_size(&r);
    ASSERT(n + 5 <= size);
    out[0] = 0;
    out[1] = out[2] = 0;
    out[3] = (uint8_t)(n >> 8);
    out[4] = (uint8_t)n;
    envoy__service__ratelimit__v3__rate_limit_request__pack(&r, out + 5);
    return n + 5;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_should_rate_limit(void)
{
    fixture f;
    setup(&f);
    client c;
    client_init(&c, connect_pair(&f));
    for (int i = 0; i < 3; i++) {
        uint8_t msg[256];
        body b = {msg, rls_request(msg, sizeof(msg), "alice"), 0};
        int32_t id = client_call(&c, RLS, "application/grpc", &b);
        pump(&c, f.base, stream_done, id);
        reply *r = rep_of(&c, id);
        ASSERT_STREQ(r->http_status, "200");
        ASSERT_EQ(r->grpc_status, 0);
        ASSERT(r->ndata > 5);
        ASSERT_EQ(r->data[0], 0);
        Envoy__Service__Ratelimit__V3__RateLimitResponse *m =
            envoy__service__ratelimit__v3__rate_limit_response__unpack(NULL, r->ndata - 5,
                                                                       r->data + 5);
        ASSERT(m != NULL);
        ASSERT_EQ(m->overall_code, i < 2 ? 1 : 2); /* 2 an hour: OK, OK, OVER_LIMIT */
        ASSERT_EQ(m->n_statuses, 1);
        ASSERT_EQ(m->statuses[0]->current_limit->requests_per_unit, 2);
        ASSERT_EQ(m->statuses[0]->current_limit->unit, 3); /* HOUR */
        ASSERT_EQ(m->statuses[0]->limit_remaining, i < 2 ? 1 - i : 0);
        ASSERT(m->statuses[0]->duration_until_reset != NULL);
        ASSERT(m->statuses[0]->duration_until_reset->seconds <= 3600);
        ASSERT(m->n_response_headers_to_add >= 3);
        envoy__service__ratelimit__v3__rate_limit_response__free_unpacked(m, NULL);
    }
    ASSERT_EQ(atomic_load(&f.w.inflight), 0);
    nghttp2_session_del(c.h2);
    close(c.fd);
    teardown(&f);
}

static void test_health_and_errors(void)
{
    fixture f;
    setup(&f);
    client c;
    client_init(&c, connect_pair(&f));
    uint8_t empty[5] = {0, 0, 0, 0, 0};
    body b = {empty, 5, 0};
    int32_t id = client_call(&c, HEALTH, "application/grpc", &b);
    pump(&c, f.base, stream_done, id);
    ASSERT_EQ(rep_of(&c, id)->grpc_status, 0);
    ASSERT_EQ(rep_of(&c, id)->ndata, 7); /* prefix + status: SERVING */
    ASSERT_EQ(rep_of(&c, id)->data[5], 0x08);
    ASSERT_EQ(rep_of(&c, id)->data[6], 1);

    body b2 = {empty, 5, 0};
    id = client_call(&c, "/no.Such/Method", "application/grpc", &b2);
    pump(&c, f.base, stream_done, id);
    ASSERT_EQ(rep_of(&c, id)->grpc_status, 12);

    uint8_t junk[] = {0, 0, 0, 0, 3, 0x0a, 0xff, 0x01};
    body b3 = {junk, sizeof(junk), 0};
    id = client_call(&c, RLS, "application/grpc", &b3);
    pump(&c, f.base, stream_done, id);
    ASSERT_EQ(rep_of(&c, id)->grpc_status, 3);

    body b4 = {empty, 5, 0};
    id = client_call(&c, RLS, "text/plain", &b4);
    pump(&c, f.base, stream_done, id);
    ASSERT_STREQ(rep_of(&c, id)->http_status, "415");
    nghttp2_session_del(c.h2);
    close(c.fd);
    teardown(&f);
}

/* The client goes away with a call half sent and another never read: the
 * server closes, and freeing the context leaks nothing. */
static void test_client_vanishes(void)
{
    fixture f;
    setup(&f);
    client c;
    client_init(&c, connect_pair(&f));
    uint8_t msg[256];
    size_t n = rls_request(msg, sizeof(msg), "bob");
    body whole = {msg, n, 0};
    client_call(&c, RLS, "application/grpc", &whole);
    body half = {msg, n / 2, 0}; /* EOF after half: a truncated message */
    client_call(&c, RLS, "application/grpc", &half);
    const uint8_t *p;
    ssize_t k;
    while ((k = nghttp2_session_mem_send(c.h2, &p)) > 0)
        ASSERT_EQ(write(c.fd, p, (size_t)k), k);
    nghttp2_session_del(c.h2);
    close(c.fd); /* without reading a byte */
    for (int i = 0; i < 50 && sluiced_grpc_ctx_count(f.ctx) > 0; i++)
        event_base_loop(f.base, EVLOOP_NONBLOCK);
    ASSERT_EQ(sluiced_grpc_ctx_count(f.ctx), 0);
    /* and one left open at teardown: ctx_free closes it */
    client c2;
    client_init(&c2, connect_pair(&f));
    body again = {msg, n, 0};
    client_call(&c2, RLS, "application/grpc", &again);
    pump(&c2, f.base, NULL, 0);
    nghttp2_session_del(c2.h2);
    teardown(&f);
    close(c2.fd);
}

int main(void)
{
    RUN(test_should_rate_limit);
    RUN(test_health_and_errors);
    RUN(test_client_vanishes);
    return test_done();
}
