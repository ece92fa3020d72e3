/* SPDX-License-Identifier: MIT */
/*
 * http.h - sluiced's HTTP/1.1 front end: libhttp-parser does all parsing
 * (request line, headers, chunked bodies, keep-alive, upgrade detection);
 * these modules hold the connection state machine, its buffers and the
 * reply writer, on the worker's own libevent loop.
 *
 *   http_req.c    the parsed request: header lookup, URL split, method
 *   http_reply.c  a reply built in one buffer: status line, headers, body
 *   http_conn.c   a connection: read buffer, parser callbacks, pipelined
 *                 replies in request order, limits, timeouts, close
 *   server.c      listening socket, workers, accept, sweep, drain
 *
 * Nothing here blocks; everything of a connection runs on one thread.
 */
#ifndef SLUICE_DAEMON_HTTP_H
#define SLUICE_DAEMON_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;

/* ---- limits ---------------------------------------------------------------- */

#define SLUICED_HTTP_MAX_FIELDS 100    /* header fields of a request: 431 above */
#define SLUICED_HTTP_MAX_HEAD 16384    /* request line + headers, bytes: 431 above */
#define SLUICED_HTTP_MAX_BODY 65536    /* body bytes (after de-chunking): 413 above */
#define SLUICED_HTTP_MAX_PIPELINE 32   /* requests of one connection awaiting replies */
#define SLUICED_HTTP_MAX_OUTPUT 262144 /* unsent reply bytes before reading pauses */
#define SLUICED_HTTP_LINGER_MS 2000    /* after a closing reply: discard input this long */

/* Method bits (requests with other methods are SLUICED_M_OTHER). */
enum {
    SLUICED_M_GET = 1 << 0,
    SLUICED_M_POST = 1 << 1,
    SLUICED_M_HEAD = 1 << 2,
    SLUICED_M_PUT = 1 << 3,
    SLUICED_M_DELETE = 1 << 4,
    SLUICED_M_OPTIONS = 1 << 5,
    SLUICED_M_PATCH = 1 << 6,
    SLUICED_M_OTHER = 1 << 7,
};

/* ---- http_req.c: the request ----------------------------------------------- */

/* A byte range of the message, relative to the request's base. */
typedef struct sluiced_http_span {
    uint32_t off, len;
} sluiced_http_span;

typedef struct sluiced_http_reply sluiced_http_reply;

/*
 * A complete request as the handler sees it.  Every pointer points into the
 * connection's read buffer and is valid only during the handler call; the
 * handler copies what it needs beyond that.  Strings are NUL-terminated in
 * place (the byte after each token is framing the parser has consumed).
 */
typedef struct sluiced_http_request {
    int method;              /* one SLUICED_M_* bit */
    const char *method_name; /* "GET", ... (static) */
    int http_minor;          /* 0 or 1 (HTTP/1.x) */
    const char *path;        /* never NULL: "/" when the target has none */
    const char *query;       /* after '?', or NULL */
    const char *body;        /* de-chunked; body_len bytes, not NUL-terminated */
    size_t body_len;
    const char *peer; /* client address text ("" if unknown) */
    char *base;       /* start of the message in the read buffer */
    int nfields;      /* header fields */
    sluiced_http_span name[SLUICED_HTTP_MAX_FIELDS];
    sluiced_http_span value[SLUICED_HTTP_MAX_FIELDS];
    sluiced_http_reply *reply; /* answer through this, exactly once */
} sluiced_http_request;

/**
 * Returns the value of the first header field called name (ASCII
 * case-insensitive), NUL-terminated, or NULL when absent.  Valid during the
 * handler call.
 */
const char *sluiced_http_header(const sluiced_http_request *req, const char *name);

/** Maps an http_parser method to its SLUICED_M_* bit. */
int sluiced_http_method_bit(int http_parser_method);

/**
 * Splits the request target at base+url into path and query (with
 * http_parser_parse_url) and NUL-terminates both in place.  The byte after
 * the target must be writable framing.  Returns 0, or -1 if it is no URL.
 */
int sluiced_http_split_target(sluiced_http_request *req, sluiced_http_span url);

/* ---- http_reply.c: the reply ----------------------------------------------- */

/*
 * One reply slot in its connection's queue.  Created by the connection for
 * each request, filled by the handler (any time later: after a store round
 * trip or a shaping timer), written in request order.
 */
struct sluiced_http_reply {
    struct sluiced_http_reply *next; /* the connection's queue */
    struct sluiced_conn *conn;
    char *buf;       /* status line space, headers, then body */
    size_t head;     /* first byte to send (the status line starts here) */
    size_t len;      /* bytes used in buf */
    size_t cap;      /* size of buf */
    size_t sent;     /* bytes of [head, len) already written */
    int http_minor;  /* version of the request */
    bool head_only;  /* HEAD: no body on the wire */
    bool keep_alive; /* the connection stays open after this reply */
    bool done;       /* built; ready to go out in turn */
    bool has_ctype;  /* a Content-Type was added */
    char inl[1024];  /* buf starts here; replies larger move to the heap */
};

/** Prepares an empty reply for a request of HTTP/1.<minor>. */
void sluiced_http_reply_init(sluiced_http_reply *rp, int http_minor, bool head_only,
                             bool keep_alive);

/** Releases the heap part of rp's buffer, if any. */
void sluiced_http_reply_release(sluiced_http_reply *rp);

/**
 * Appends the header field "name: value".  Before the reply is finished
 * only.  Names and values must not contain CR or LF (sluiced's own are
 * constants and numbers).
 */
void sluiced_http_reply_header(sluiced_http_reply *rp, const char *name, const char *value);

/** sluiced_http_reply_header() with the lengths known (no NULs needed). */
void sluiced_http_reply_header_n(sluiced_http_reply *rp, const char *name, size_t n,
                                 const char *value, size_t v);

/**
 * Finishes rp with status, Content-Type (unless a header added one; NULL:
 * application/json), Date (HTTP/1.1), Content-Length, Connection and the
 * body, and hands it to its connection, which sends it in request order.
 * Counts the response in the metrics.  rp must not be used afterwards.
 */
void sluiced_http_reply_send(sluiced_http_reply *rp, int status, const char *content_type,
                             const char *body, size_t len);

/** Builds a finished reply in rp without sending it (the connection and tests use this). */
void sluiced_http_reply_build(sluiced_http_reply *rp, int status, const char *content_type,
                              const char *body, size_t len);

/** Builds the JSON error body {"error": code, "message": msg} (plain ASCII text only). */
size_t sluiced_http_error_body(char *buf, size_t size, const char *code, const char *msg);

/** The reason phrase of a status code. */
const char *sluiced_http_reason(int status);

/** Monotonic clock in microseconds. */
int64_t sluiced_now_us(void);

/* ---- http_conn.c: connections ------------------------------------------- */

typedef struct sluiced_conn sluiced_conn;
typedef struct sluiced_http_ctx sluiced_http_ctx;

/* What a worker's connections share. */
typedef struct sluiced_http_cfg {
    int request_timeout_ms; /* a request must arrive whole within this of its first byte */
    int idle_timeout_s;     /* idle keep-alive, or stalled writes: closed */
    /* Called once per complete request; answer through req->reply. */
    void (*handle)(sluiced_http_request *req, void *arg);
    void *arg;
    /* Called after a connection's socket is closed (may be NULL). */
    void (*closed)(sluiced_http_ctx *ctx, void *arg);
} sluiced_http_cfg;

/** A worker's set of connections on base.  NULL on OOM. */
sluiced_http_ctx *sluiced_http_ctx_new(struct event_base *base, const sluiced_http_cfg *cfg);

/**
 * Closes every connection and frees ctx.  Replies still pending are dropped
 * as they complete, so call this only once no handler will reply (the loop
 * has stopped and the store's callbacks have run).  Accepts NULL.
 */
void sluiced_http_ctx_free(sluiced_http_ctx *ctx);

/** Open connections (sockets not yet closed). */
int sluiced_http_ctx_count(const sluiced_http_ctx *ctx);

/**
 * Takes the accepted, non-blocking socket fd over as a connection.  With
 * reject set, answers 503 too_many_connections and closes it instead.
 * Returns 0, or -1 on OOM (fd is closed).
 */
int sluiced_http_accept(sluiced_http_ctx *ctx, int fd, const struct sockaddr *peer,
                        socklen_t peer_len, bool reject);

/**
 * Applies the timeouts at now_us (sluiced_now_us()): 408 for a request not
 * complete within request_timeout_ms of its first byte, close for idle or
 * stalled connections and for lingering closes past their time.  Call
 * about every 100 ms.  now_us also becomes the clock the connections stamp
 * their events with until the next sweep, so no request reads the clock
 * for its timeouts; they are exact to one sweep interval.
 */
void sluiced_http_sweep(sluiced_http_ctx *ctx, int64_t now_us);

/* Internal (http_reply.c -> http_conn.c): rp is finished; send it in turn. */
void sluiced__conn_reply_ready(sluiced_http_reply *rp);

#endif /* SLUICE_DAEMON_HTTP_H */
