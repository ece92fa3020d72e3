/* SPDX-License-Identifier: MIT */
/*
 * http_conn.h - what http_conn.c (a connection's life, its reply queue,
 * socket I/O, timeouts) and http_parse.c (its read buffer fed to
 * http_parser) share: the connection struct.  Private to those two files.
 */
#ifndef SLUICE_DAEMON_HTTP_CONN_H
#define SLUICE_DAEMON_HTTP_CONN_H

#include <http_parser.h>

#include "http.h"

struct event;

struct sluiced_conn {
    sluiced_conn *prev, *next; /* ctx->head: every connection not yet freed */
    sluiced_http_ctx *ctx;
    int fd; /* -1 once closed */
    struct event *rev, *wev;
    http_parser parser;

    char *rbuf;     /* read buffer (NULL while idle) */
    uint32_t rcap;  /* its size */
    uint32_t rlen;  /* bytes received into it */
    uint32_t rpos;  /* bytes of it given to the parser */
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
    bool final_sent;      /* a closing reply is out: later ones are dropped */
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
    int64_t now_us; /* coarse clock for timeouts: set by each sweep (~100 ms) */
};

/** Queues a new reply slot at the tail (a closing one stops parsing). */
sluiced_http_reply *sluiced__conn_reply_new(sluiced_conn *c, int minor, bool head_only,
                                            bool keep_alive);

/** Queues a JSON error reply that closes the connection. */
void sluiced__conn_reply_error(sluiced_conn *c, int status, const char *code, const char *msg);

/** True while too many replies are pending or too many bytes unsent to parse more. */
bool sluiced__conn_blocked(const sluiced_conn *c);

/** Parses what the buffer holds, handing each complete request to the handler. */
void sluiced__conn_parse(sluiced_conn *c);

/** Makes room in the read buffer for a recv; -1 when a request cannot fit (answered). */
int sluiced__conn_room(sluiced_conn *c);

/** Sets up the parser of a new connection. */
void sluiced__conn_parser_init(sluiced_conn *c);

#endif /* SLUICE_DAEMON_HTTP_CONN_H */
