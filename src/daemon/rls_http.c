/* SPDX-License-Identifier: MIT */
/*
 * rls_http.c - POST /json, envoyproxy/ratelimit's HTTP form of
 * ShouldRateLimit: the body is a RateLimitRequest in proto3 JSON
 * (src/rls/rls_json.c), decided asynchronously on the worker's store by the
 * current config's descriptors, answered with the RateLimitResponse as JSON:
 * 200 when overallCode is OK, 429 when OVER_LIMIT, 400 for a body upstream
 * would refuse (malformed JSON, wrong types, empty domain or descriptors),
 * 413 above 64 KiB.  The configured rate-limit headers go both into the body
 * (responseHeadersToAdd) and onto the HTTP reply.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "handlers.h"
#include "http.h"
#include "policy/policy.h"
#include "rls/rls.h"
#include "rls/rls_json.h"

typedef struct jrq {
    sluiced_worker *w;
    sluiced_http_reply *rp;
    sluiced_cfg *cfg;
    int64_t t0_us;
} jrq;

static void jrq_free(jrq *r)
{
    sluiced_cfg_put(r->cfg);
    sluiced_free(r);
}

typedef struct hdrs {
    json_t *arr;
    sluiced_http_reply *rp;
} hdrs;

static int add_header(void *arg, const char *name, const char *value)
{
    hdrs *h = arg;
    json_array_append_new(h->arr, json_pack("{s:s, s:s}", "key", name, "value", value));
    sluiced_http_reply_header(h->rp, name, value);
    return 0;
}

static void on_reply(int status, const sluice__rls_reply *reply, void *arg)
{
    jrq *r = arg;
    if (status < 0) {
        sluiced_reply_error(r->w, r->rp, status == SLUICE_EINVAL ? 400 : 500,
                            status == SLUICE_EINVAL ? "bad_request" : "decision_failed",
                            sluice_strerror(status));
        jrq_free(r);
        return;
    }
    /* latency and store failures in the shared series (no rule slot: -1) */
    sluiced_metrics_decision(-1, SLUICED_RES_ALLOWED, reply->store_error,
                             r->cfg->cfg->on_store_error, sluiced_now_us() - r->t0_us);
    hdrs h = {json_array(), r->rp};
    if (!h.arr)
        abort();
    sluice__rls_headers(r->cfg->cfg, reply, add_header, &h);
    json_t *j = sluice__rls_json_reply(reply, h.arr);
    json_decref(h.arr);
    if (!j)
        abort(); /* the daemon's OOM policy */
    sluiced_reply_json(r->w, r->rp, reply->overall_code == SLUICE_RLS_OVER_LIMIT ? 429 : 200, j,
                       NULL);
    json_decref(j);
    jrq_free(r);
}

void sluiced_handle_rls_json(sluiced_worker *w, sluiced_http_request *req)
{
    sluiced_http_reply *rp = req->reply;
    sluice__rls_json_req jr;
    const char *code = "bad_request";
    char why[160];
    if (sluice__rls_json_parse(req->body, req->body_len, &jr, &code, why, sizeof(why)) != 0) {
        sluice__rls_json_req_free(&jr);
        sluiced_reply_error(w, rp, strcmp(code, "body_too_large") == 0 ? 413 : 400, code, why);
        return;
    }
    jrq *r = sluiced_malloc(sizeof(*r));
    if (!r)
        abort();
    r->w = w;
    r->rp = rp;
    r->t0_us = sluiced_now_us();
    r->cfg = sluiced_worker_cfg(w);
    atomic_fetch_add(&r->cfg->refs, 1);
    const sluice_config *cfg = r->cfg->cfg;
    int rc = sluice__rls_decide_async(w->async, sluice__config_rls(cfg), cfg, &jr.req, on_reply,
                                      r);
    sluice__rls_json_req_free(&jr);
    if (rc < 0) {
        sluiced_reply_error(w, rp, rc == SLUICE_EINVAL ? 400 : rc == SLUICE_ENOMEM ? 503 : 500,
                            rc == SLUICE_EINVAL ? "bad_request" : "decision_failed",
                            rc == SLUICE_EINVAL ? "a descriptor is invalid (empty entry key, "
                                                  "unknown limit unit, or too long)"
                                                : sluice_strerror(rc));
        jrq_free(r);
    }
}
