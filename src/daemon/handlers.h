/* SPDX-License-Identifier: MIT */
/*
 * handlers.h - what handlers.c (replies, decisions, operations endpoints,
 * dispatch) and endpoints.c (/v1/check, /v1/authorize) share: the
 * in-flight request and its reply helpers.  Every request is answered
 * exactly once through sluiced_reply().
 */
#ifndef SLUICE_DAEMON_HANDLERS_H
#define SLUICE_DAEMON_HANDLERS_H

#include <jansson.h>

#include "daemon.h"
#include "http.h"

enum { EP_CHECK, EP_AUTHORIZE };

/* One request waiting for its decision (or for its shaping delay). */
typedef struct rq {
    sluiced_worker *w;
    sluiced_http_reply *rp; /* the reply slot, until answered */
    sluiced_cfg *cfg;       /* a reference held until the reply */
    int endpoint;
    int64_t t0_us;
    bool shape; /* /v1/authorize: hold a leaky-bucket 200 for delay_ms */
    struct event *timer;
    sluice_match m;
    sluice_decision d; /* kept for a delayed reply */
} rq;

/** Sends the reply (body may be NULL) and ends the request's in-flight life. */
void sluiced_reply(sluiced_worker *w, sluiced_http_reply *rp, int status, const char *ctype,
                   const char *body, size_t len);

/** Sends j (may be NULL) as the body, with content_type (NULL: application/json). */
void sluiced_reply_json(sluiced_worker *w, sluiced_http_reply *rp, int status, json_t *j,
                        const char *content_type);

/** A new in-flight request holding a reference to the worker's current config. */
rq *sluiced_rq_new(sluiced_worker *w, sluiced_http_reply *rp, int endpoint);

/** Frees r and drops its config reference (the reply is sent separately). */
void sluiced_rq_free(rq *r);

/** Starts r's decision at cost; the reply is sent from the callback.  Takes r. */
void sluiced_decide(rq *r, int64_t cost);

/** Answers a failed match (404 unknown_rule, 400 bad_key, 400) and frees r. */
void sluiced_match_error_reply(rq *r, int rc, const sluice_error *err);

/** POST /v1/check. */
void sluiced_handle_check(sluiced_worker *w, sluiced_http_request *req);

/** Any method /v1/authorize[/<path>]. */
void sluiced_handle_authorize(sluiced_worker *w, sluiced_http_request *req);

/** POST /json: envoyproxy/ratelimit's JSON ShouldRateLimit (rls_http.c). */
void sluiced_handle_rls_json(sluiced_worker *w, sluiced_http_request *req);

#endif /* SLUICE_DAEMON_HANDLERS_H */
