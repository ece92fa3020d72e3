/* SPDX-License-Identifier: MIT */
/*
 * grpc_call.c - one gRPC call on one HTTP/2 stream, from nghttp2's
 * callbacks: the request headers (:method, :path, content-type,
 * grpc-timeout, grpc-encoding), the one length-prefixed message of a unary
 * call (PROTOCOL-HTTP2.md: 1-byte flag, 4-byte big-endian length, bounded
 * by SLUICED_GRPC_MAX_MESSAGE), dispatch to the method at END_STREAM, the
 * deadline, and the reply: HEADERS, one DATA with the message, trailers
 * with grpc-status; or Trailers-Only for an error.
 *
 * Errors are answered as early as they are known (a bad header at the end
 * of the headers, an oversized or compressed message at its prefix, a
 * second message when it starts), and what the peer still sends on that
 * stream is dropped: our END_STREAM is followed by RST_STREAM(NO_ERROR)
 * when the peer had not finished sending.
 *
 *   wrong :method            HTTP 405 (grpc-status UNIMPLEMENTED)
 *   content-type not gRPC    HTTP 415 (INVALID_ARGUMENT)
 *   header list over 16 KiB  HTTP 431 (RESOURCE_EXHAUSTED)
 *   unknown :path            UNIMPLEMENTED
 *   grpc-encoding not identity, compressed flag   UNIMPLEMENTED
 *   malformed grpc-timeout   INVALID_ARGUMENT
 *   message over the limit   RESOURCE_EXHAUSTED
 *   no message, two messages UNIMPLEMENTED (unary cardinality)
 *   truncated message        INVALID_ARGUMENT
 *   deadline passed          DEADLINE_EXCEEDED
 */
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"

#define PATH_RLS "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
#define PATH_HEALTH "/grpc.health.v1.Health/Check"

static bool is(const uint8_t *p, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    return n == k && memcmp(p, lit, k) == 0;
}

static nghttp2_nv nv(const char *name, const char *value)
{
    nghttp2_nv v = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                    NGHTTP2_NV_FLAG_NONE};
    return v;
}

/* A field of string literals: nghttp2 need not copy them. */
#define NV_STATIC(n, v)                                                                            \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,                              \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                           \
    }

static void *pb_alloc(void *ud, size_t n)
{
    (void)ud;
    return sluiced_malloc(n);
}

static void pb_free(void *ud, void *p)
{
    (void)ud;
    sluiced_free(p);
}

ProtobufCAllocator sluiced__pb_alloc = {pb_alloc, pb_free, NULL};

/* ---- the reply --------------------------------------------------------------- */

/* grpc-message is percent-encoded: bytes outside 0x20..0x7E and '%'. */
static void pct_encode(char *out, size_t size, const char *in)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && k + 4 < size; p++) {
        if (*p >= 0x20 && *p <= 0x7E && *p != '%') {
            out[k++] = (char)*p;
        } else {
            out[k++] = '%';
            out[k++] = hex[*p >> 4];
            out[k++] = hex[*p & 15];
        }
    }
    out[k] = '\0';
}

static ssize_t read_out(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)ud;
    gcall *s = src->ptr;
    size_t n = s->out_len - s->out_off;
    if (n > length)
        n = length;
    memcpy(buf, s->out + s->out_off, n);
    s->out_off += n;
    if (s->out_off == s->out_len) {
        /* The trailers end the stream, so this DATA frame must not. */
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv t = NV_STATIC("grpc-status", "0");
        if (nghttp2_submit_trailer(h2, id, &t, 1) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

uint8_t *sluiced__gcall_out(gcall *s, size_t len)
{
    sluiced_free(s->out);
    s->out = sluiced_malloc(len + 5);
    if (!s->out)
        abort();
    s->out[0] = 0; /* not compressed */
    s->out[1] = (uint8_t)(len >> 24);
    s->out[2] = (uint8_t)(len >> 16);
    s->out[3] = (uint8_t)(len >> 8);
    s->out[4] = (uint8_t)len;
    s->out_len = len + 5;
    s->out_off = 0;
    return s->out + 5;
}

void sluiced__gcall_set_len(gcall *s, size_t len)
{
    s->out[1] = (uint8_t)(len >> 24);
    s->out[2] = (uint8_t)(len >> 16);
    s->out[3] = (uint8_t)(len >> 8);
    s->out[4] = (uint8_t)len;
    s->out_len = len + 5;
}

/* An error answered before the peer finished sending gets RST_STREAM
 * (NO_ERROR) after its trailers (PROTOCOL-HTTP2.md), so the stream and its
 * call are released now rather than when, or if, the peer ends its side.
 * It is submitted once the HEADERS frame is out (on_frame_send): submitted
 * with it, nghttp2 would send the reset first and drop the reply. */
static void end_early(nghttp2_session *h2, int32_t id)
{
    gcall *s = nghttp2_session_get_stream_user_data(h2, id);
    if (s)
        s->reset_after = true;
}

/* An HTTP-level refusal (405, 415, 431) that gRPC clients also read as a status. */
static void reply_http(gcall *s, int http_status, int grpc_status, const char *msg)
{
    if (s->closed || s->answered)
        return;
    s->answered = true;
    sluiced_grpc_metrics_rpc(s->method, grpc_status, sluiced_now_us() - s->start_us);
    char st[8], gs[8], m[200];
    snprintf(st, sizeof(st), "%d", http_status);
    snprintf(gs, sizeof(gs), "%d", grpc_status);
    pct_encode(m, sizeof(m), msg);
    nghttp2_nv h[] = {nv(":status", st), nv("content-type", "application/grpc"),
                      nv("grpc-status", gs), nv("grpc-message", m)};
    nghttp2_session *h2 = sluiced__gconn_session(s->c);
    if (nghttp2_submit_response(h2, s->id, h, 4, NULL) != 0)
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    else
        end_early(h2, s->id);
    sluiced__gconn_kick(s->c);
}

void sluiced__gcall_reply(gcall *s, int status, const char *msg)
{
    if (s->closed || s->answered)
        return;
    s->answered = true;
    s->status = status;
    sluiced_grpc_metrics_rpc(s->method, status, sluiced_now_us() - s->start_us);
    nghttp2_session *h2 = sluiced__gconn_session(s->c);
    int rv;
    if (status == GRPC_OK && s->out) {
        nghttp2_nv h[] = {NV_STATIC(":status", "200"),
                          NV_STATIC("content-type", "application/grpc")};
        nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_out};
        rv = nghttp2_submit_response(h2, s->id, h, 2, &dp);
    } else {
        /* Trailers-Only: one HEADERS frame that ends the stream. */
        char gs[8], m[512]; /* a message of up to 170 bytes, percent-encoded */
        snprintf(gs, sizeof(gs), "%d", status);
        pct_encode(m, sizeof(m), msg ? msg : "");
        nghttp2_nv h[] = {nv(":status", "200"), nv("content-type", "application/grpc"),
                          nv("grpc-status", gs), nv("grpc-message", m),
                          nv("grpc-accept-encoding", "identity")};
        size_t n = msg && msg[0] ? 4 : 3;
        if (status == GRPC_UNIMPLEMENTED && s->bad_encoding)
            h[n++] = h[4]; /* what we do accept */
        rv = nghttp2_submit_response(h2, s->id, h, n, NULL);
        if (rv == 0)
            end_early(h2, s->id);
    }
    if (rv != 0)
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    sluiced__gconn_kick(s->c);
}

/* ---- deadlines and the end of a decision ---------------------------------------- */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gcall *s = arg;
    /* The decision's result, when it comes, is dropped. */
    sluiced__gcall_reply(s, GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
}

void sluiced__gcall_arm_deadline(gcall *s)
{
    if (!s->pending || s->deadline_us <= 0 || s->answered)
        return;
    int64_t left = s->deadline_us - sluiced_now_us();
    if (left < 0)
        left = 0;
    if (!s->timer)
        s->timer = evtimer_new(sluiced__gcall_worker(s)->base, on_deadline, s);
    if (!s->timer)
        abort();
    struct timeval tv = {(time_t)(left / 1000000), (suseconds_t)(left % 1000000)};
    evtimer_add(s->timer, &tv);
}

void sluiced__gcall_done(gcall *s)
{
    s->pending = false;
    atomic_fetch_sub(&sluiced__gcall_worker(s)->inflight, 1);
    if (s->timer)
        evtimer_del(s->timer);
    if (s->closed)
        sluiced__gcall_free(s);
}

/* ---- request headers ------------------------------------------------------------- */

/* grpc-timeout: 1 to 8 digits and a unit (H, M, S, m, u, n).  Microseconds, or -1. */
static int64_t parse_timeout(const uint8_t *v, size_t n)
{
    if (n < 2 || n > 9)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    switch (v[n - 1]) { /* at most 99999999 h = 3.6e17 us: no overflow */
    case 'H':
        return x * 3600 * 1000000;
    case 'M':
        return x * 60 * 1000000;
    case 'S':
        return x * 1000000;
    case 'm':
        return x * 1000;
    case 'u':
        return x;
    case 'n':
        return (x + 999) / 1000;
    default:
        return -1;
    }
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
    gconn *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    gcall *s = sluiced__gcall_new(c, f->hd.stream_id);
    if (!s) /* too many calls alive on this connection (reading pauses too) */
        return nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                         NGHTTP2_REFUSED_STREAM) == 0
                   ? 0
                   : NGHTTP2_ERR_CALLBACK_FAILURE;
    s->start_us = sluiced_now_us();
    nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, s);
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    gcall *s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!s || s->headers_done || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers of the request carry nothing we use */
    s->header_bytes += (uint32_t)(namelen + valuelen + 32);
    if (s->header_bytes > SLUICED_GRPC_MAX_HEADER_LIST) {
        s->http_error = 431;
        return 0;
    }
    if (is(name, namelen, ":method")) {
        s->post = is(value, valuelen, "POST");
    } else if (is(name, namelen, ":path")) {
        s->method = is(value, valuelen, PATH_RLS)      ? GRPC_M_RLS
                    : is(value, valuelen, PATH_HEALTH) ? GRPC_M_HEALTH
                                                       : GRPC_M_OTHER;
    } else if (is(name, namelen, "content-type")) {
        /* application/grpc, application/grpc+proto, application/grpc;... */
        s->grpc_ctype = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                        (valuelen == 16 || value[16] == '+' || value[16] == ';');
        if (valuelen > 16 && value[16] == '+' && !is(value, valuelen, "application/grpc+proto"))
            s->grpc_ctype = false; /* +json and others: not served */
    } else if (is(name, namelen, "grpc-timeout")) {
        int64_t us = parse_timeout(value, valuelen);
        if (us < 0)
            s->bad_timeout = true;
        else
            s->deadline_us = s->start_us + us; /* 0: already expired */
    } else if (is(name, namelen, "grpc-encoding")) {
        s->bad_encoding = !is(value, valuelen, "identity");
    }
    return 0;
}

/* The request headers are complete: refuse what they already rule out. */
static void headers_complete(gcall *s)
{
    s->headers_done = true;
    if (s->http_error == 431)
        reply_http(s, 431, GRPC_RESOURCE_EXHAUSTED, "request header list too large");
    else if (!s->post)
        reply_http(s, 405, GRPC_UNIMPLEMENTED, "gRPC needs POST");
    else if (!s->grpc_ctype)
        reply_http(s, 415, GRPC_INVALID_ARGUMENT, "content-type must be application/grpc");
    else if (s->method == GRPC_M_OTHER)
        sluiced__gcall_reply(s, GRPC_UNIMPLEMENTED, "unknown service or method");
    else if (s->bad_timeout)
        sluiced__gcall_reply(s, GRPC_INVALID_ARGUMENT, "malformed grpc-timeout");
    else if (s->bad_encoding)
        sluiced__gcall_reply(s, GRPC_UNIMPLEMENTED, "grpc-encoding not supported: identity only");
}

/* ---- the request message ----------------------------------------------------------- */

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    gcall *s = nghttp2_session_get_stream_user_data(h2, id);
    if (!s || s->answered || s->dispatched || !s->headers_done)
        return 0;
    while (len > 0) {
        if (s->nprefix < 5) {
            size_t k = 5 - s->nprefix < len ? 5 - s->nprefix : len;
            memcpy(s->prefix + s->nprefix, data, k);
            s->nprefix += (uint32_t)k;
            data += k;
            len -= k;
            if (s->nprefix < 5)
                return 0;
            s->msg_len = (uint32_t)s->prefix[1] << 24 | (uint32_t)s->prefix[2] << 16 |
                         (uint32_t)s->prefix[3] << 8 | s->prefix[4];
            if (s->prefix[0] == 1) {
                sluiced__gcall_reply(s, GRPC_UNIMPLEMENTED,
                                     "compressed messages are not supported");
                return 0;
            }
            if (s->prefix[0] != 0) {
                sluiced__gcall_reply(s, GRPC_INVALID_ARGUMENT, "bad message flag");
                return 0;
            }
            if (s->msg_len > SLUICED_GRPC_MAX_MESSAGE) {
                char m[96];
                snprintf(m, sizeof(m), "message of %u bytes is over the limit of %d", s->msg_len,
                         SLUICED_GRPC_MAX_MESSAGE);
                sluiced__gcall_reply(s, GRPC_RESOURCE_EXHAUSTED, m);
                return 0;
            }
            s->msg = sluiced_malloc(s->msg_len ? s->msg_len : 1);
            if (!s->msg)
                abort();
            continue;
        }
        if (s->nmsg < s->msg_len) {
            size_t k = s->msg_len - s->nmsg < len ? s->msg_len - s->nmsg : len;
            memcpy(s->msg + s->nmsg, data, k);
            s->nmsg += (uint32_t)k;
            data += k;
            len -= k;
            continue;
        }
        sluiced__gcall_reply(s, GRPC_UNIMPLEMENTED, "a unary call takes exactly one message");
        return 0;
    }
    return 0;
}

/* END_STREAM from the peer: the request is whole; run the method. */
static void request_complete(gcall *s)
{
    if (s->answered || s->dispatched || !s->headers_done)
        return;
    if (s->nprefix == 0) {
        sluiced__gcall_reply(s, GRPC_UNIMPLEMENTED, "a unary call takes exactly one message");
        return;
    }
    if (s->nprefix < 5 || s->nmsg < s->msg_len) {
        sluiced__gcall_reply(s, GRPC_INVALID_ARGUMENT, "truncated message");
        return;
    }
    s->dispatched = true;
    if (s->deadline_us > 0 && sluiced_now_us() >= s->deadline_us) {
        sluiced__gcall_reply(s, GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
        return;
    }
    if (s->method == GRPC_M_RLS)
        sluiced__grpc_rls(s);
    else
        sluiced__grpc_health(s);
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
    gconn *c = ud;
    gcall *s = NULL;
    switch (f->hd.type) {
    case NGHTTP2_PING:
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            sluiced__gconn_ctrl_frame(c);
        return 0;
    case NGHTTP2_RST_STREAM:
    case NGHTTP2_PRIORITY:
        sluiced__gconn_ctrl_frame(c);
        return 0;
    case NGHTTP2_HEADERS:
        s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
        if (s && f->headers.cat == NGHTTP2_HCAT_REQUEST)
            headers_complete(s);
        break;
    case NGHTTP2_DATA:
        s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
        if (f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
            sluiced__gconn_ctrl_frame(c); /* empty DATA carries nothing but cost */
        break;
    default:
        return 0;
    }
    if (s && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        request_complete(s);
    return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
    (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    gcall *s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (s && s->reset_after && !nghttp2_session_get_stream_remote_close(h2, f->hd.stream_id))
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t error_code, void *ud)
{
    (void)error_code;
    (void)ud;
    gcall *s = nghttp2_session_get_stream_user_data(h2, id);
    if (!s)
        return 0;
    s->closed = true;
    if (!s->pending)
        sluiced__gcall_free(s); /* else the decision's callback frees it */
    return 0;
}

void sluiced__gcall_callbacks(nghttp2_session_callbacks *cb)
{
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
}
