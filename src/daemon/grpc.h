/* SPDX-License-Identifier: MIT */
/*
 * grpc.h - sluiced's gRPC front end: Envoy RLS v3 (ShouldRateLimit) and
 * grpc.health.v1 (Check) over HTTP/2 cleartext with prior knowledge, on
 * libnghttp2 (all HTTP/2 framing, HPACK, flow control, stream states) and
 * protobuf-c (all protobuf encoding, code generated from proto/ at build
 * time).  It runs on the worker's own libevent loop next to HTTP/1.1.
 *
 *   grpc_conn.c     a connection: socket I/O, the nghttp2 session, the
 *                   bounded output buffer, floods, timeouts, drain, close
 *   grpc_call.c     a stream: request headers, the length-prefixed
 *                   message, dispatch, deadline, reply and trailers
 *   grpc_rls.c      ShouldRateLimit -> sluice__rls_decide_async -> reply
 *   grpc_health.c   Health/Check from the store's readiness (/readyz's)
 *   grpc_metrics.c  per-method RPC counts and latency for /metrics
 *
 * Lifetime: a call (one stream) lives until its stream is closed AND no
 * decision of it is pending; a connection lives until its socket is closed
 * AND none of its calls is left.  A decision that completes after its
 * stream was reset or its connection died finds the call marked closed and
 * only frees it: nothing freed is ever touched.
 */
#ifndef SLUICE_DAEMON_GRPC_H
#define SLUICE_DAEMON_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "daemon.h"

struct event;
struct event_base;
typedef struct nghttp2_session nghttp2_session;

/* ---- limits ---------------------------------------------------------------- */

/* Bytes of one request message; larger: RESOURCE_EXHAUSTED at its prefix. */
#define SLUICED_GRPC_MAX_MESSAGE 65536
/* SETTINGS_MAX_CONCURRENT_STREAMS we advertise (nghttp2 refuses the excess). */
#define SLUICED_GRPC_MAX_STREAMS 100
/* Calls of one connection alive at once, counting reset ones whose decision
 * is still pending: reading pauses at this many. */
#define SLUICED_GRPC_MAX_CALLS 200
/* SETTINGS_MAX_HEADER_LIST_SIZE; a larger request header list: HTTP 431. */
#define SLUICED_GRPC_MAX_HEADER_LIST 16384
/* A connection without a stream this long: GOAWAY, close. */
#define SLUICED_GRPC_IDLE_TIMEOUT_S 300
/* PING, SETTINGS, RST_STREAM, PRIORITY and empty DATA frames a connection may
 * send a second before GOAWAY(ENHANCE_YOUR_CALM). */
#define SLUICED_GRPC_CTRL_PER_S 1000

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum {
    GRPC_OK = 0,
    GRPC_CANCELLED = 1,
    GRPC_UNKNOWN = 2,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
    GRPC_NSTATUS = 17
};

/* Methods served; GRPC_M_OTHER for any other :path. */
enum { GRPC_M_RLS = 0, GRPC_M_HEALTH = 1, GRPC_M_OTHER = 2, GRPC_NMETHODS };

typedef struct sluiced_grpc_ctx sluiced_grpc_ctx;
typedef struct gconn gconn;
typedef struct gcall gcall;

/* One stream: a unary call. */
struct gcall {
    gcall *prev, *next;  /* the connection's calls */
    gconn *c;            /* valid for the call's whole life */
    int32_t id;          /* stream id */
    int method;          /* GRPC_M_* */
    int64_t start_us;    /* request headers complete */
    int64_t deadline_us; /* from grpc-timeout; 0: none */
    struct event *timer; /* the deadline, armed only while a decision is pending */
    sluiced_cfg *cfg;    /* a reference held from dispatch to free */

    /* Request headers: what was seen, and the answer they already decide. */
    uint32_t header_bytes; /* name + value + 32 per field (RFC 9113's count) */
    bool post, grpc_ctype, bad_timeout, bad_encoding, headers_done;
    int http_error; /* 405/415/431 to answer at the end of headers; 0 none */

    /* The request message: 5-byte prefix, then len bytes into msg. */
    uint8_t prefix[5];
    uint32_t nprefix; /* prefix bytes received */
    uint32_t msg_len; /* from the prefix */
    uint8_t *msg;     /* msg_len bytes once the prefix is known */
    uint32_t nmsg;    /* bytes of msg received */
    bool extra;       /* bytes after the first message */

    /* The reply: a length-prefixed message sent as DATA, then trailers. */
    uint8_t *out;
    size_t out_len, out_off;
    int status; /* grpc-status of the reply, once answered */

    bool dispatched;  /* the method handler ran */
    bool pending;     /* a decision's callback is outstanding (counted in w->inflight) */
    bool answered;    /* the reply is submitted: later results are dropped */
    bool closed;      /* the stream is gone (closed, reset, or the connection died) */
    bool reset_after; /* an early error reply: RST_STREAM(NO_ERROR) once it is sent */
};

/* ---- grpc_conn.c ------------------------------------------------------------- */

/** A worker's gRPC connections on base; w supplies the store, config and drain. */
sluiced_grpc_ctx *sluiced_grpc_ctx_new(struct event_base *base, sluiced_worker *w,
                                       int idle_timeout_s, int request_timeout_ms);

/** Closes every connection (pending calls are dropped first by sluice_async_free). */
void sluiced_grpc_ctx_free(sluiced_grpc_ctx *ctx);

/** Open gRPC connections of this worker. */
int sluiced_grpc_ctx_count(const sluiced_grpc_ctx *ctx);

/** Takes an accepted socket; reject: answer GOAWAY(REFUSED) and close. -1: not taken (closed). */
int sluiced_grpc_accept(sluiced_grpc_ctx *ctx, int fd, bool reject);

/** The 100 ms sweep: timeouts, stalled writers, and GOAWAY to every connection when draining. */
void sluiced_grpc_sweep(sluiced_grpc_ctx *ctx, int64_t now_us, bool draining);

/** The worker a call runs on. */
sluiced_worker *sluiced__gcall_worker(const gcall *s);

/** Writes what the session has to send, now unless a callback of the connection is running. */
void sluiced__gconn_kick(gconn *c);

/** The connection's nghttp2 session (NULL once closed). */
nghttp2_session *sluiced__gconn_session(gconn *c);

/** The connection's coarse clock (set by the sweep and by I/O). */
int64_t sluiced__gconn_now_us(const gconn *c);

/** A new call for stream id, linked to c (NULL when c has SLUICED_GRPC_MAX_CALLS). */
gcall *sluiced__gcall_new(gconn *c, int32_t id);

/** Unlinks and frees a call whose stream is closed and whose decision is done. */
void sluiced__gcall_free(gcall *s);

/** Counts a control frame (PING, SETTINGS, RST_STREAM, empty DATA); false: flood, GOAWAY sent. */
bool sluiced__gconn_ctrl_frame(gconn *c);

/* ---- grpc_call.c ------------------------------------------------------------- */

struct nghttp2_session_callbacks;

/** Installs the stream callbacks (headers, data, frames, close) of grpc_call.c. */
void sluiced__gcall_callbacks(struct nghttp2_session_callbacks *cb);

/**
 * Submits the reply of s: status GRPC_OK sends s->out (a length-prefixed
 * message) then trailers; any other status a Trailers-Only reply with msg.
 * Does nothing when s is closed or already answered.  Counts the RPC.
 */
void sluiced__gcall_reply(gcall *s, int status, const char *msg);

/** Marks the end of a pending decision: drops the in-flight count, frees s if closed. */
void sluiced__gcall_done(gcall *s);

/** Arms s's deadline timer if it has a deadline and its decision is pending. */
void sluiced__gcall_arm_deadline(gcall *s);

/** Allocates s->out for a message of len bytes with its 5-byte prefix written. */
uint8_t *sluiced__gcall_out(gcall *s, size_t len);

/** Shrinks s->out's message to len (at most what _out allocated), rewriting the prefix. */
void sluiced__gcall_set_len(gcall *s, size_t len);

/** protobuf-c's allocations (unpack) through the daemon's per-thread caches. */
extern struct ProtobufCAllocator sluiced__pb_alloc;

/* ---- grpc_rls.c, grpc_health.c: the methods ------------------------------------ */

/** ShouldRateLimit: decodes s->msg, decides, replies (now or from the decision's callback). */
void sluiced__grpc_rls(gcall *s);

/** Health/Check: SERVING while the store answers and the worker is not draining. */
void sluiced__grpc_health(gcall *s);

/* ---- grpc_metrics.c ------------------------------------------------------------ */

/** Counts one RPC of method (GRPC_M_*) answered with status, latency in microseconds. */
void sluiced_grpc_metrics_rpc(int method, int status, int64_t latency_us);

/** Adds delta to the open gRPC connections gauge. */
void sluiced_grpc_metrics_connections(int delta);

/** Counts a connection ended for abuse (flood, rapid reset, protocol error). */
void sluiced_grpc_metrics_abuse(void);

/** Prometheus text of the gRPC series: a new string (free()); aborts on OOM. */
char *sluiced_grpc_metrics_render(size_t *len);

#endif /* SLUICE_DAEMON_GRPC_H */
