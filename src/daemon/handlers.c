/* SPDX-License-Identifier: MIT */
/*
 * handlers.c - the endpoints of sluiced (docs/http-api.md): POST /v1/check,
 * any method /v1/authorize, GET /metrics, /healthz, /readyz.  The request
 * path reads top to bottom: validate (each `..._or_reply()` helper sends the
 * JSON error itself and returns -1), match, start an asynchronous decision,
 * and answer from its callback.  A handler never blocks its worker: Redis
 * decisions complete on the loop, and leaky-bucket shaping holds the 200 of
 * /v1/authorize on a timer.
 *
 * Every request is answered exactly once through reply(), which also keeps
 * the worker's in-flight count that the SIGTERM drain waits on.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "policy/policy.h"

#define MAX_HEADER_COUNT 100

enum { EP_CHECK, EP_AUTHORIZE };

/* One request waiting for its decision (or for its shaping delay). */
typedef struct rq {
    sluiced_worker *w;
    struct evhttp_request *req;
    sluiced_cfg *cfg;   /* a reference held until the reply */
    int endpoint;
    int64_t t0_us;
    bool shape;         /* /v1/authorize: hold a leaky-bucket 200 for delay_ms */
    struct event *timer;
    sluice_match m;
    sluice_decision d;  /* kept for a delayed reply */
} rq;

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* Sends the reply (body may be NULL) and ends the request's in-flight life. */
static void reply(sluiced_worker *w, struct evhttp_request *req, int status,
                  struct evbuffer *body)
{
    sluiced_conn_busy(w, req, false);
    evhttp_send_reply(req, status, reason_of(status), body);
    sluiced_metrics_response(status);
    atomic_fetch_sub(&w->inflight, 1);
}

static void reply_json(sluiced_worker *w, struct evhttp_request *req, int status, json_t *j,
                       const char *content_type)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf)
        abort(); /* the daemon's OOM policy */
    if (j) {
        char stack[4096];
        size_t n = json_dumpb(j, stack, sizeof(stack) - 1, JSON_COMPACT);
        if (n < sizeof(stack)) {
            stack[n] = '\n';
            evbuffer_add(buf, stack, n + 1);
        } else {
            char *big = malloc(n + 1);
            if (!big)
                abort();
            json_dumpb(j, big, n, JSON_COMPACT);
            big[n] = '\n';
            evbuffer_add(buf, big, n + 1);
            free(big);
        }
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      content_type ? content_type : "application/json");
    reply(w, req, status, buf);
    evbuffer_free(buf);
}

void sluiced_reply_error(sluiced_worker *w, struct evhttp_request *req, int status,
                         const char *code, const char *msg)
{
    json_t *j = json_pack("{s:s, s:s}", "error", code, "message", msg);
    if (status == 408 || status == 413 || status == 431)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    reply_json(w, req, status, j, NULL);
    json_decref(j);
}

/* ---- request helpers ------------------------------------------------------ */

static const char *evhttp_header_fn(void *ctx, const char *name)
{
    return evhttp_find_header(ctx, name);
}

/* Header lookup in a JSON object of strings, case-insensitive. */
static const char *json_header_fn(void *ctx, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ctx, k, v) {
        if (strcasecmp(k, name) == 0)
            return json_string_value(v);
    }
    return NULL;
}

static bool valid_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/*
 * The client address: the peer, or, when the peer is a trusted proxy, the
 * rightmost X-Forwarded-For entry that is not itself a trusted proxy (an
 * entry that is not an address stops the walk: the hop before it is used).
 */
static void client_ip(const sluice_config *cfg, struct evhttp_request *req, char *out,
                      size_t size)
{
    char *addr = NULL;
    ev_uint16_t port = 0;
    out[0] = '\0';
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon)
        evhttp_connection_get_peer(evcon, &addr, &port);
    if (!addr)
        return;
    if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.'))
        addr += 7;
    snprintf(out, size, "%s", addr);
    const char *xff = evhttp_find_header(evhttp_request_get_input_headers(req),
                                         "X-Forwarded-For");
    if (!xff || !sluice__config_trusted(cfg, out))
        return;
    const char *end = xff + strlen(xff);
    while (end > xff) {
        const char *start = end;
        while (start > xff && start[-1] != ',')
            start--;
        const char *a = start, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        char hop[64];
        if ((size_t)(b - a) >= sizeof(hop))
            return;
        memcpy(hop, a, (size_t)(b - a));
        hop[b - a] = '\0';
        if (!valid_ip(hop))
            return;
        snprintf(out, size, "%s", hop);
        if (!sluice__config_trusted(cfg, hop))
            return;
        end = start > xff ? start - 1 : xff;
    }
}

/* Answers 431 for too many or too large headers (evhttp's hard cap is 4x larger). */
static int headers_ok_or_reply(sluiced_worker *w, struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    size_t total = strlen(evhttp_request_get_uri(req));
    int n = 0;
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        n++;
        total += strlen(kv->key) + strlen(kv->value) + 4;
    }
    if (n <= MAX_HEADER_COUNT && total <= SLUICED_MAX_HEADERS_SIZE)
        return 0;
    sluiced_reply_error(w, req, 431, "headers_too_large",
                        "request headers exceed 100 fields or 16384 bytes");
    return -1;
}

/* Identifiers: 1..SLUICE_KEY_MAX bytes, no control bytes (JSON already made them UTF-8). */
static int key_ok_or_reply(sluiced_worker *w, struct evhttp_request *req, const char *key,
                           size_t len)
{
    const char *why = NULL;
    if (len == 0)
        why = "key is empty";
    else if (len > SLUICE_KEY_MAX)
        why = "key is longer than 512 bytes";
    for (size_t i = 0; !why && i < len; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (ch < 0x20 || ch == 0x7f)
            why = "key contains a control byte";
    }
    if (!why)
        return 0;
    sluiced_reply_error(w, req, 400, "bad_key", why);
    return -1;
}

static bool query_flag(struct evhttp_request *req, const char *name)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    size_t nl = strlen(name);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len >= nl && strncmp(q, name, nl) == 0) {
            const char *v = q + nl;
            if (len == nl)
                return true;
            if (*v == '=')
                return !(len == nl + 2 && (v[1] == '0'));
        }
        q = amp ? amp + 1 : NULL;
    }
    return false;
}

/* ---- decisions ------------------------------------------------------------ */

static json_t *decision_json(const rq *r, const sluice_decision *d)
{
    json_t *limits = json_array();
    for (int i = 0; i < d->nlimits; i++) {
        const sluice_limit_decision *l = &d->limits[i];
        json_array_append_new(
            limits, json_pack("{s:s?, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "algorithm",
                              sluice_algorithm_name(l->algorithm), "allowed", l->allowed,
                              "limit", (json_int_t)l->limit, "remaining",
                              (json_int_t)l->remaining, "reset_after_ms",
                              (json_int_t)l->reset_after_ms, "retry_after_ms",
                              (json_int_t)l->retry_after_ms, "delay_ms",
                              (json_int_t)l->delay_ms, "window_ms", (json_int_t)l->window_ms));
    }
    return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:s?, s:b, s:b, s:o}", "allowed",
                     d->allowed, "limit", (json_int_t)d->limit, "remaining",
                     (json_int_t)d->remaining, "reset_after_ms", (json_int_t)d->reset_after_ms,
                     "retry_after_ms", (json_int_t)d->retry_after_ms, "delay_ms",
                     (json_int_t)d->delay_ms, "rule", r->m.rule, "key", r->m.key, "tier",
                     r->m.tier, "shadow_denied", d->shadow_denied, "store_error",
                     d->store_error, "limits", limits);
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

static void rq_free(rq *r)
{
    if (r->timer)
        event_free(r->timer);
    sluiced_cfg_put(r->cfg);
    sluiced_free(r);
}

static void send_authorize(rq *r, const sluice_decision *d)
{
    const sluice_config *cfg = r->cfg->cfg;
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    sluiced_headers_add(out, cfg->headers, r->m.rule, d);
    if (d->allowed) {
        reply(r->w, r->req, 200, NULL);
        return;
    }
    char item[96];
    if (d->nlimits > 1)
        snprintf(item, sizeof(item), "%s-%d", r->m.rule, d->decided_by);
    else
        snprintf(item, sizeof(item), "%s", r->m.rule);
    json_t *j = json_pack("{s:s, s:s, s:i, s:[s], s:I}", "type",
                          "https://iana.org/assignments/http-problem-types#quota-exceeded",
                          "title", "Request cannot be satisfied as assigned quota has been exceeded",
                          "status", cfg->deny_status, "violated-policies", item,
                          "retry_after_ms", (json_int_t)d->retry_after_ms);
    reply_json(r->w, r->req, cfg->deny_status, j, "application/problem+json");
    json_decref(j);
}

static void on_shaped(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rq *r = arg;
    send_authorize(r, &r->d);
    rq_free(r);
}

static void on_decision(int status, const sluice_decision *d, void *arg)
{
    rq *r = arg;
    sluiced_worker *w = r->w;
    if (status < 0) {
        sluiced_reply_error(w, r->req, 500, "decision_failed", sluice_strerror(status));
        rq_free(r);
        return;
    }
    int res = d->shadow_denied ? SLUICED_RES_SHADOW
                               : d->allowed ? SLUICED_RES_ALLOWED : SLUICED_RES_DENIED;
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
        sluiced_headers_add(evhttp_request_get_output_headers(r->req), r->cfg->cfg->headers,
                            r->m.rule, d);
        reply_json(w, r->req, d->allowed ? 200 : 429, j, NULL);
        json_decref(j);
        rq_free(r);
        return;
    }
    int dec = d->decided_by >= 0 && d->decided_by < d->nlimits ? d->decided_by : 0;
    if (r->shape && d->allowed && d->delay_ms > 0 && d->nlimits > 0 &&
        d->limits[dec].algorithm == SLUICE_LEAKY_BUCKET) {
        r->d = *d;
        r->timer = evtimer_new(w->base, on_shaped, r);
        struct timeval tv = {(time_t)(d->delay_ms / 1000), (suseconds_t)(d->delay_ms % 1000) * 1000};
        if (r->timer && evtimer_add(r->timer, &tv) == 0)
            return;
    }
    send_authorize(r, d);
    rq_free(r);
}

/* Starts the decision; the reply is sent from on_decision. */
static void decide(rq *r, int64_t cost)
{
    int rc = sluice_decide_async(r->w->async, r->cfg->cfg, &r->m, cost, SLUICE_NOW,
                                 on_decision, r);
    if (rc < 0) {
        sluiced_reply_error(r->w, r->req, rc == SLUICE_ENOMEM ? 503 : 500, "decision_failed",
                            sluice_strerror(rc));
        rq_free(r);
    }
}

static rq *rq_new(sluiced_worker *w, struct evhttp_request *req, int endpoint)
{
    rq *r = sluiced_malloc(sizeof(*r));
    if (!r)
        abort();
    memset(r, 0, sizeof(*r));
    r->w = w;
    r->req = req;
    r->endpoint = endpoint;
    r->t0_us = sluiced_now_us();
    r->cfg = sluiced_worker_cfg(w);
    atomic_fetch_add(&r->cfg->refs, 1);
    return r;
}

/* Maps a match error to its reply; no-rule is handled by the caller. */
static void match_error_reply(rq *r, int rc, const sluice_error *err)
{
    if (rc == SLUICE_ENORULE)
        sluiced_reply_error(r->w, r->req, 404, "unknown_rule", err->msg[0] ? err->msg : "unknown rule");
    else if (rc == SLUICE_EKEY)
        sluiced_reply_error(r->w, r->req, 400, "bad_key", err->msg[0] ? err->msg : "no usable identifier");
    else
        sluiced_reply_error(r->w, r->req, 400, "bad_request", err->msg[0] ? err->msg : sluice_strerror(rc));
    rq_free(r);
}

/* ---- POST /v1/check ----------------------------------------------------------- */

static int get_string_or_reply(rq *r, json_t *body, const char *name, const char **out,
                               size_t *len)
{
    json_t *v = json_object_get(body, name);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "\"%s\" must be a string", name);
        sluiced_reply_error(r->w, r->req, 400, "bad_type", msg);
        return -1;
    }
    *out = json_string_value(v);
    if (len)
        *len = json_string_length(v);
    return 0;
}

static void handle_check(sluiced_worker *w, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n > SLUICED_MAX_BODY_SIZE) {
        sluiced_reply_error(w, req, 413, "body_too_large", "body exceeds 65536 bytes");
        return;
    }
    if (n == 0) {
        sluiced_reply_error(w, req, 400, "malformed_json", "empty body");
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb((const char *)evbuffer_pullup(in, -1), n,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                              &jerr);
    if (!body) {
        char msg[200];
        snprintf(msg, sizeof(msg), "invalid JSON at byte %d: %s", jerr.position, jerr.text);
        sluiced_reply_error(w, req, 400, "malformed_json", msg);
        return;
    }
    rq *r = rq_new(w, req, EP_CHECK);
    const sluice_config *cfg = r->cfg->cfg;
    if (!json_is_object(body)) {
        sluiced_reply_error(w, req, 400, "bad_type", "body must be a JSON object");
        goto fail;
    }
    int64_t cost = 1;
    json_t *jc = json_object_get(body, "cost");
    if (jc && (!json_is_integer(jc) || json_integer_value(jc) < 0 ||
               json_integer_value(jc) > SLUICE_COST_MAX)) {
        sluiced_reply_error(w, req, 400, "bad_cost",
                            "\"cost\" must be an integer from 0 to 1000000000");
        goto fail;
    }
    if (jc)
        cost = json_integer_value(jc);

    const char *rule, *key, *tier, *method, *path, *ip;
    size_t key_len = 0;
    if (get_string_or_reply(r, body, "rule", &rule, NULL) ||
        get_string_or_reply(r, body, "key", &key, &key_len) ||
        get_string_or_reply(r, body, "tier", &tier, NULL) ||
        get_string_or_reply(r, body, "method", &method, NULL) ||
        get_string_or_reply(r, body, "path", &path, NULL) ||
        get_string_or_reply(r, body, "ip", &ip, NULL))
        goto fail;
    sluice_error err = {0};
    int rc;
    if (rule) { /* explicit: rule + key */
        if (!key) {
            sluiced_reply_error(w, req, 400, "bad_request", "\"rule\" needs \"key\"");
            goto fail;
        }
        if (key_ok_or_reply(w, req, key, key_len))
            goto fail;
        rc = sluice_config_match_rule(cfg, rule, tier, key, key_len, &r->m, &err);
    } else { /* matched: method/path/ip/headers against the rules */
        json_t *hdrs = json_object_get(body, "headers");
        if (hdrs && !json_is_object(hdrs)) {
            sluiced_reply_error(w, req, 400, "bad_type", "\"headers\" must be an object");
            goto fail;
        }
        const char *k;
        json_t *v;
        json_object_foreach(hdrs, k, v) {
            if (!json_is_string(v)) {
                sluiced_reply_error(w, req, 400, "bad_type", "header values must be strings");
                goto fail;
            }
        }
        if (!path) {
            sluiced_reply_error(w, req, 400, "bad_request",
                                "give \"rule\" and \"key\", or \"path\" (with method, ip, headers)");
            goto fail;
        }
        if (ip && !valid_ip(ip)) {
            sluiced_reply_error(w, req, 400, "bad_ip", "\"ip\" is not an IPv4 or IPv6 address");
            goto fail;
        }
        sluice_request sr = {.method = method, .path = path, .ip = ip,
                             .header = hdrs ? json_header_fn : NULL, .header_ctx = hdrs,
                             .tier = tier};
        rc = sluice_config_match(cfg, &sr, &r->m, &err);
        if (rc == SLUICE_ENORULE) { /* nothing limits this request */
            json_t *j = json_pack("{s:b, s:n, s:n}", "allowed", 1, "rule", "key");
            reply_json(w, req, 200, j, NULL);
            json_decref(j);
            goto done;
        }
    }
    if (rc != 0) {
        json_decref(body);
        match_error_reply(r, rc, &err);
        return;
    }
    json_decref(body);
    decide(r, cost);
    return;
fail:
done:
    json_decref(body);
    rq_free(r);
}

/* ---- /v1/authorize ----------------------------------------------------------------- */

static void handle_authorize(sluiced_worker *w, struct evhttp_request *req, const char *path)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    rq *r = rq_new(w, req, EP_AUTHORIZE);
    const sluice_config *cfg = r->cfg->cfg;

    /* The original request: nginx X-Original-*, Traefik X-Forwarded-*, or
     * Envoy's path_prefix form /v1/authorize/<original path>. */
    const char *method = evhttp_find_header(h, "X-Original-Method");
    if (!method)
        method = evhttp_find_header(h, "X-Forwarded-Method");
    const char *uri = evhttp_find_header(h, "X-Original-URI");
    if (!uri)
        uri = evhttp_find_header(h, "X-Forwarded-Uri");
    const char *suffix = path + strlen("/v1/authorize");
    if (!uri && *suffix == '/') {
        uri = suffix;
        if (!method)
            method = evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" : NULL;
    }
    if (!uri) {
        sluiced_reply_error(w, req, 400, "missing_original_uri",
                            "send X-Original-URI (nginx) or X-Forwarded-Uri (Traefik)");
        rq_free(r);
        return;
    }
    if (!method) {
        static const struct { enum evhttp_cmd_type t; const char *s; } cmds[] = {
            {EVHTTP_REQ_GET, "GET"}, {EVHTTP_REQ_POST, "POST"}, {EVHTTP_REQ_HEAD, "HEAD"},
            {EVHTTP_REQ_PUT, "PUT"}, {EVHTTP_REQ_DELETE, "DELETE"},
            {EVHTTP_REQ_OPTIONS, "OPTIONS"}, {EVHTTP_REQ_PATCH, "PATCH"}};
        enum evhttp_cmd_type t = evhttp_request_get_command(req);
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
            if (cmds[i].t == t)
                method = cmds[i].s;
    }
    /* The rules match the path only: cut the query string. */
    char opath[2048];
    size_t plen = strcspn(uri, "?#");
    if (plen >= sizeof(opath)) {
        sluiced_reply_error(w, req, 431, "headers_too_large", "original URI is too long");
        rq_free(r);
        return;
    }
    memcpy(opath, uri, plen);
    opath[plen] = '\0';
    char ip[64];
    client_ip(cfg, req, ip, sizeof(ip));
    sluice_request sr = {.method = method, .path = opath, .ip = ip[0] ? ip : NULL,
                         .header = evhttp_header_fn, .header_ctx = h};
    sluice_error err = {0};
    int rc = sluice_config_match(cfg, &sr, &r->m, &err);
    if (rc == SLUICE_ENORULE) { /* no rule limits this request */
        reply(w, req, 200, NULL);
        rq_free(r);
        return;
    }
    if (rc != 0) {
        match_error_reply(r, rc, &err);
        return;
    }
    const sluice__rule *rule = &cfg->rules[r->m.rule_index];
    r->shape = rule->shape && !query_flag(req, "nodelay");
    decide(r, 1);
}

/* ---- operations endpoints -------------------------------------------------------- */

static void handle_metrics(sluiced_worker *w, struct evhttp_request *req)
{
    size_t len = 0;
    char *text = sluiced_metrics_render(sluice_store_keys(sluiced_store), &len);
    struct evbuffer *buf = evbuffer_new();
    if (!buf)
        abort();
    evbuffer_add(buf, text, len);
    free(text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    reply(w, req, 200, buf);
    evbuffer_free(buf);
}

static void handle_readyz(sluiced_worker *w, struct evhttp_request *req)
{
    /* One ping per 250 ms for the whole process: probes must not load the
     * store, and every worker answers from the same reading. */
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static atomic_flag pinging = ATOMIC_FLAG_INIT;
    static int64_t checked_us;
    static int cached_rc;
    static char cached_msg[256];
    int64_t now = sluiced_now_us();
    pthread_mutex_lock(&lock);
    bool stale = checked_us == 0 || now - checked_us > 250000;
    pthread_mutex_unlock(&lock);
    /* One worker pings (blocking it for at most timeout_ms); the others
     * answer from the last reading meanwhile. */
    if (stale && !atomic_flag_test_and_set(&pinging)) {
        sluice_error err = {0};
        int rc = sluice_store_ping(sluiced_store, &err);
        pthread_mutex_lock(&lock);
        cached_rc = rc;
        snprintf(cached_msg, sizeof(cached_msg), "%s", err.msg[0] ? err.msg : sluice_strerror(rc));
        checked_us = sluiced_now_us();
        pthread_mutex_unlock(&lock);
        atomic_flag_clear(&pinging);
    }
    int last_rc;
    char last_msg[256];
    pthread_mutex_lock(&lock);
    last_rc = cached_rc;
    memcpy(last_msg, cached_msg, sizeof(last_msg));
    pthread_mutex_unlock(&lock);
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
    reply_json(w, req, status, j, NULL);
    json_decref(j);
}

static bool method_in(struct evhttp_request *req, int mask)
{
    return (evhttp_request_get_command(req) & mask) != 0;
}

static int method_ok_or_reply(sluiced_worker *w, struct evhttp_request *req, int mask,
                              const char *allow)
{
    if (method_in(req, mask))
        return 0;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    sluiced_reply_error(w, req, 405, "method_not_allowed", "method not allowed here");
    return -1;
}

void sluiced_handle(struct evhttp_request *req, void *arg)
{
    sluiced_worker *w = arg;
    atomic_fetch_add(&w->inflight, 1);
    sluiced_conn_busy(w, req, true);
    if (headers_ok_or_reply(w, req))
        return;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path)
        path = "/";
    if (strcmp(path, "/v1/authorize") == 0 || strncmp(path, "/v1/authorize/", 14) == 0) {
        handle_authorize(w, req, path);
    } else if (strcmp(path, "/v1/check") == 0) {
        if (method_ok_or_reply(w, req, EVHTTP_REQ_POST, "POST") == 0)
            handle_check(w, req);
    } else if (strcmp(path, "/metrics") == 0) {
        if (method_ok_or_reply(w, req, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD") == 0)
            handle_metrics(w, req);
    } else if (strcmp(path, "/healthz") == 0) {
        if (method_ok_or_reply(w, req, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD") == 0) {
            json_t *j = json_pack("{s:s}", "status", "ok");
            reply_json(w, req, 200, j, NULL);
            json_decref(j);
        }
    } else if (strcmp(path, "/readyz") == 0) {
        if (method_ok_or_reply(w, req, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD") == 0)
            handle_readyz(w, req);
    } else {
        sluiced_reply_error(w, req, 404, "not_found", "no such endpoint");
    }
}
