/* SPDX-License-Identifier: MIT */
/*
 * handlers.c - request dispatch, replies and decisions of sluiced
 * (docs/http-api.md), and the operations endpoints GET /metrics, /healthz,
 * /readyz; endpoints.c has POST /v1/check and /v1/authorize.  The request
 * path reads top to bottom: validate (each `..._or_reply()` helper sends the
 * JSON error itself and returns -1), match, start an asynchronous decision,
 * and answer from its callback.  A handler never blocks its worker: Redis
 * decisions complete on the loop, and leaky-bucket shaping holds the 200 of
 * /v1/authorize on a timer.
 *
 * Every request is answered exactly once through sluiced_reply(), which
 * also keeps the worker's in-flight count that the SIGTERM drain waits on.
 * The request (http.h) is valid only during sluiced_handle(); what an
 * asynchronous decision needs later is copied into the rq (the match) or
 * is the reply slot, which stays valid until answered.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "handlers.h"
#include "policy/policy.h"

/*
 * Sends the reply (body may be NULL) and ends the request's in-flight life.
 * The connection writes it at once if every earlier reply on it is out.
 */
void sluiced_reply(sluiced_worker *w, sluiced_http_reply *rp, int status, const char *ctype,
                   const char *body, size_t len)
{
    sluiced_http_reply_send(rp, status, ctype, body, len);
    atomic_fetch_sub(&w->inflight, 1);
}

void sluiced_reply_json(sluiced_worker *w, sluiced_http_reply *rp, int status, json_t *j,
                        const char *content_type)
{
    char stack[4096];
    if (!j) {
        sluiced_reply(w, rp, status, content_type, NULL, 0);
        return;
    }
    size_t n = json_dumpb(j, stack, sizeof(stack) - 1, JSON_COMPACT);
    if (n < sizeof(stack)) {
        stack[n] = '\n';
        sluiced_reply(w, rp, status, content_type, stack, n + 1);
        return;
    }
    char *big = malloc(n + 1);
    if (!big)
        abort(); /* the daemon's OOM policy */
    json_dumpb(j, big, n, JSON_COMPACT);
    big[n] = '\n';
    sluiced_reply(w, rp, status, content_type, big, n + 1);
    free(big);
}

void sluiced_reply_error(sluiced_worker *w, sluiced_http_reply *rp, int status, const char *code,
                         const char *msg)
{
    json_t *j = json_pack("{s:s, s:s}", "error", code, "message", msg);
    if (status == 408 || status == 413 || status == 431)
        rp->keep_alive = false;
    sluiced_reply_json(w, rp, status, j, NULL);
    json_decref(j);
}

/* ---- decisions ------------------------------------------------------------ */

static json_t *decision_json(const rq *r, const sluice_decision *d)
{
    json_t *limits = json_array();
    for (int i = 0; i < d->nlimits; i++) {
        const sluice_limit_decision *l = &d->limits[i];
        json_array_append_new(
            limits, json_pack("{s:s?, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "algorithm",
                              sluice_algorithm_name(l->algorithm), "allowed", l->allowed, "limit",
                              (json_int_t)l->limit, "remaining", (json_int_t)l->remaining,
                              "reset_after_ms", (json_int_t)l->reset_after_ms, "retry_after_ms",
                              (json_int_t)l->retry_after_ms, "delay_ms", (json_int_t)l->delay_ms,
                              "window_ms", (json_int_t)l->window_ms));
    }
    return json_pack(
        "{s:b, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:s?, s:b, s:b, s:o}", "allowed", d->allowed,
        "limit", (json_int_t)d->limit, "remaining", (json_int_t)d->remaining, "reset_after_ms",
        (json_int_t)d->reset_after_ms, "retry_after_ms", (json_int_t)d->retry_after_ms, "delay_ms",
        (json_int_t)d->delay_ms, "rule", r->m.rule, "key", r->m.key, "tier", r->m.tier,
        "shadow_denied", d->shadow_denied, "store_error", d->store_error, "limits", limits);
}

/* One log line per second at most while the store fails: an outage must not
 * flood the log with a line per request. */
static void log_store_error(int mode, int64_t now_us)
{
    static atomic_llong last_us;
    static atomic_llong suppressed;
    long long last = atomic_load_explicit(&last_us, memory_order_relaxed);
    if (now_us - last < 1000000 ||
        !atomic_compare_exchange_strong(&last_us, &last, (long long)now_us)) {
        atomic_fetch_add_explicit(&suppressed, 1, memory_order_relaxed);
        return;
    }
    static const char *names[] = {"allow", "deny", "local"};
    sluiced_log(SLUICED_LOG_WARN, "store_error", "on_store_error=%s decisions_since_last_line=%lld",
                mode >= 0 && mode < 3 ? names[mode] : "?",
                (long long)atomic_exchange(&suppressed, 0) + 1);
}

void sluiced_rq_free(rq *r)
{
    if (r->timer)
        event_free(r->timer);
    sluiced_cfg_put(r->cfg);
    sluiced_free(r);
}

static void send_authorize(rq *r, const sluice_decision *d)
{
    const sluice_config *cfg = r->cfg->cfg;
    sluiced_headers_add(r->rp, cfg->headers, r->m.rule, d);
    if (d->allowed) {
        sluiced_reply(r->w, r->rp, 200, NULL, NULL, 0);
        return;
    }
    char item[96];
    if (d->nlimits > 1)
        snprintf(item, sizeof(item), "%s-%d", r->m.rule, d->decided_by);
    else
        snprintf(item, sizeof(item), "%s", r->m.rule);
    json_t *j = json_pack("{s:s, s:s, s:i, s:[s], s:I}", "type",
                          "https://iana.org/assignments/http-problem-types#quota-exceeded", "title",
                          "Request cannot be satisfied as assigned quota has been exceeded",
                          "status", cfg->deny_status, "violated-policies", item, "retry_after_ms",
                          (json_int_t)d->retry_after_ms);
    sluiced_reply_json(r->w, r->rp, cfg->deny_status, j, "application/problem+json");
    json_decref(j);
}

static void on_shaped(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rq *r = arg;
    send_authorize(r, &r->d);
    sluiced_rq_free(r);
}

static void on_decision(int status, const sluice_decision *d, void *arg)
{
    rq *r = arg;
    sluiced_worker *w = r->w;
    if (status < 0) {
        sluiced_reply_error(w, r->rp, 500, "decision_failed", sluice_strerror(status));
        sluiced_rq_free(r);
        return;
    }
    int res = d->shadow_denied ? SLUICED_RES_SHADOW
              : d->allowed     ? SLUICED_RES_ALLOWED
                               : SLUICED_RES_DENIED;
    int slot = r->m.rule_index >= 0 && r->m.rule_index < r->cfg->cfg->nrules
                   ? r->cfg->slot[r->m.rule_index]
                   : -1;
    int64_t now_us = sluiced_now_us();
    sluiced_metrics_decision(slot, res, d->store_error, r->cfg->cfg->on_store_error,
                             now_us - r->t0_us);
    if (d->store_error)
        log_store_error(r->cfg->cfg->on_store_error, now_us);

    if (r->endpoint == EP_CHECK) {
        json_t *j = decision_json(r, d);
        sluiced_headers_add(r->rp, r->cfg->cfg->headers, r->m.rule, d);
        sluiced_reply_json(w, r->rp, d->allowed ? 200 : 429, j, NULL);
        json_decref(j);
        sluiced_rq_free(r);
        return;
    }
    int dec = d->decided_by >= 0 && d->decided_by < d->nlimits ? d->decided_by : 0;
    if (r->shape && d->allowed && d->delay_ms > 0 && d->nlimits > 0 &&
        d->limits[dec].algorithm == SLUICE_LEAKY_BUCKET) {
        r->d = *d;
        r->timer = evtimer_new(w->base, on_shaped, r);
        struct timeval tv = {(time_t)(d->delay_ms / 1000),
                             (suseconds_t)(d->delay_ms % 1000) * 1000};
        if (r->timer && evtimer_add(r->timer, &tv) == 0)
            return;
    }
    send_authorize(r, d);
    sluiced_rq_free(r);
}

/* Starts the decision; the reply is sent from on_decision. */
void sluiced_decide(rq *r, int64_t cost)
{
    int rc = sluice_decide_async(r->w->async, r->cfg->cfg, &r->m, cost, SLUICE_NOW, on_decision, r);
    if (rc < 0) {
        sluiced_reply_error(r->w, r->rp, rc == SLUICE_ENOMEM ? 503 : 500, "decision_failed",
                            sluice_strerror(rc));
        sluiced_rq_free(r);
    }
}

rq *sluiced_rq_new(sluiced_worker *w, sluiced_http_reply *rp, int endpoint)
{
    rq *r = sluiced_malloc(sizeof(*r));
    if (!r)
        abort();
    memset(r, 0, sizeof(*r));
    r->w = w;
    r->rp = rp;
    r->endpoint = endpoint;
    r->t0_us = sluiced_now_us();
    r->cfg = sluiced_worker_cfg(w);
    atomic_fetch_add(&r->cfg->refs, 1);
    return r;
}

/* Maps a match error to its reply; no-rule is handled by the caller. */
void sluiced_match_error_reply(rq *r, int rc, const sluice_error *err)
{
    if (rc == SLUICE_ENORULE)
        sluiced_reply_error(r->w, r->rp, 404, "unknown_rule",
                            err->msg[0] ? err->msg : "unknown rule");
    else if (rc == SLUICE_EKEY)
        sluiced_reply_error(r->w, r->rp, 400, "bad_key",
                            err->msg[0] ? err->msg : "no usable identifier");
    else
        sluiced_reply_error(r->w, r->rp, 400, "bad_request",
                            err->msg[0] ? err->msg : sluice_strerror(rc));
    sluiced_rq_free(r);
}

/* ---- operations endpoints -------------------------------------------------------- */

static void handle_metrics(sluiced_worker *w, sluiced_http_reply *rp)
{
    size_t len = 0;
    char *text = sluiced_metrics_render(sluice_store_keys(sluiced_store), &len);
    sluiced_reply(w, rp, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static void handle_readyz(sluiced_worker *w, sluiced_http_reply *rp)
{
    char last_msg[256];
    int last_rc = sluiced_store_ready(last_msg, sizeof(last_msg));
    json_t *j;
    int status = 200;
    if (w->draining) {
        status = 503;
        j = json_pack("{s:s, s:s}", "status", "draining", "message", "shutting down");
    } else if (last_rc != 0) {
        status = 503;
        j = json_pack("{s:s, s:s, s:s}", "status", "unavailable", "error", "store_unavailable",
                      "message", last_msg);
    } else {
        j = json_pack("{s:s}", "status", "ready");
    }
    sluiced_reply_json(w, rp, status, j, NULL);
    json_decref(j);
}

static int method_ok_or_reply(sluiced_worker *w, sluiced_http_request *req, int mask,
                              const char *allow)
{
    if (req->method & mask)
        return 0;
    sluiced_http_reply_header(req->reply, "Allow", allow);
    sluiced_reply_error(w, req->reply, 405, "method_not_allowed", "method not allowed here");
    return -1;
}

#define ANY_METHOD                                                                                 \
    (SLUICED_M_GET | SLUICED_M_POST | SLUICED_M_HEAD | SLUICED_M_PUT | SLUICED_M_DELETE |          \
     SLUICED_M_OPTIONS | SLUICED_M_PATCH)

void sluiced_handle(sluiced_http_request *req, void *arg)
{
    sluiced_worker *w = arg;
    sluiced_http_reply *rp = req->reply;
    atomic_fetch_add(&w->inflight, 1);
    const char *path = req->path;
    if (strcmp(path, "/v1/authorize") == 0 || strncmp(path, "/v1/authorize/", 14) == 0) {
        if (method_ok_or_reply(w, req, ANY_METHOD,
                               "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH") == 0)
            sluiced_handle_authorize(w, req);
    } else if (strcmp(path, "/v1/check") == 0) {
        if (method_ok_or_reply(w, req, SLUICED_M_POST, "POST") == 0)
            sluiced_handle_check(w, req);
    } else if (strcmp(path, "/json") == 0) {
        if (method_ok_or_reply(w, req, SLUICED_M_POST, "POST") == 0)
            sluiced_handle_rls_json(w, req);
    } else if (strcmp(path, "/metrics") == 0) {
        if (method_ok_or_reply(w, req, SLUICED_M_GET | SLUICED_M_HEAD, "GET, HEAD") == 0)
            handle_metrics(w, rp);
    } else if (strcmp(path, "/healthz") == 0) {
        if (method_ok_or_reply(w, req, SLUICED_M_GET | SLUICED_M_HEAD, "GET, HEAD") == 0) {
            static const char ok[] = "{\"status\":\"ok\"}\n";
            sluiced_reply(w, rp, 200, NULL, ok, sizeof(ok) - 1);
        }
    } else if (strcmp(path, "/readyz") == 0) {
        if (method_ok_or_reply(w, req, SLUICED_M_GET | SLUICED_M_HEAD, "GET, HEAD") == 0)
            handle_readyz(w, rp);
    } else {
        sluiced_reply_error(w, rp, 404, "not_found", "no such endpoint");
    }
}
