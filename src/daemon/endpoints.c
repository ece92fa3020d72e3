/* SPDX-License-Identifier: MIT */
/*
 * endpoints.c - the two decision endpoints of sluiced: POST /v1/check (a
 * JSON body, every field type-checked, explicit rule+key or request
 * attributes matched against the rules) and /v1/authorize (forward-auth:
 * the original request from X-Original-* / X-Forwarded-* headers or the
 * Envoy path form, the client from the peer or a trusted X-Forwarded-For).
 * Each validates with `..._or_reply()` helpers that answer the JSON error
 * themselves, matches, and starts the decision (handlers.c answers it).
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon.h"
#include "handlers.h"
#include "policy/policy.h"

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
    json_object_foreach((json_t *)ctx, k, v)
    {
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
static void client_ip(const sluice_config *cfg, struct evhttp_request *req, char *out, size_t size)
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
    const char *xff = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Forwarded-For");
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

/* ---- POST /v1/check ----------------------------------------------------------- */

static int get_string_or_reply(rq *r, json_t *body, const char *name, const char **out, size_t *len)
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

void sluiced_handle_check(sluiced_worker *w, struct evhttp_request *req)
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
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!body) {
        char msg[200];
        snprintf(msg, sizeof(msg), "invalid JSON at byte %d: %s", jerr.position, jerr.text);
        sluiced_reply_error(w, req, 400, "malformed_json", msg);
        return;
    }
    rq *r = sluiced_rq_new(w, req, EP_CHECK);
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
        json_object_foreach(hdrs, k, v)
        {
            if (!json_is_string(v)) {
                sluiced_reply_error(w, req, 400, "bad_type", "header values must be strings");
                goto fail;
            }
        }
        if (!path) {
            sluiced_reply_error(
                w, req, 400, "bad_request",
                "give \"rule\" and \"key\", or \"path\" (with method, ip, headers)");
            goto fail;
        }
        if (ip && !valid_ip(ip)) {
            sluiced_reply_error(w, req, 400, "bad_ip", "\"ip\" is not an IPv4 or IPv6 address");
            goto fail;
        }
        sluice_request sr = {.method = method,
                             .path = path,
                             .ip = ip,
                             .header = hdrs ? json_header_fn : NULL,
                             .header_ctx = hdrs,
                             .tier = tier};
        rc = sluice_config_match(cfg, &sr, &r->m, &err);
        if (rc == SLUICE_ENORULE) { /* nothing limits this request */
            json_t *j = json_pack("{s:b, s:n, s:n}", "allowed", 1, "rule", "key");
            sluiced_reply_json(w, req, 200, j, NULL);
            json_decref(j);
            goto done;
        }
    }
    if (rc != 0) {
        json_decref(body);
        sluiced_match_error_reply(r, rc, &err);
        return;
    }
    json_decref(body);
    sluiced_decide(r, cost);
    return;
fail:
done:
    json_decref(body);
    sluiced_rq_free(r);
}

/* ---- /v1/authorize ----------------------------------------------------------------- */

void sluiced_handle_authorize(sluiced_worker *w, struct evhttp_request *req, const char *path)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    rq *r = sluiced_rq_new(w, req, EP_AUTHORIZE);
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
        sluiced_rq_free(r);
        return;
    }
    if (!method) {
        static const struct {
            enum evhttp_cmd_type t;
            const char *s;
        } cmds[] = {{EVHTTP_REQ_GET, "GET"},       {EVHTTP_REQ_POST, "POST"},
                    {EVHTTP_REQ_HEAD, "HEAD"},     {EVHTTP_REQ_PUT, "PUT"},
                    {EVHTTP_REQ_DELETE, "DELETE"}, {EVHTTP_REQ_OPTIONS, "OPTIONS"},
                    {EVHTTP_REQ_PATCH, "PATCH"}};
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
        sluiced_rq_free(r);
        return;
    }
    memcpy(opath, uri, plen);
    opath[plen] = '\0';
    char ip[64];
    client_ip(cfg, req, ip, sizeof(ip));
    sluice_request sr = {.method = method,
                         .path = opath,
                         .ip = ip[0] ? ip : NULL,
                         .header = evhttp_header_fn,
                         .header_ctx = h};
    sluice_error err = {0};
    int rc = sluice_config_match(cfg, &sr, &r->m, &err);
    if (rc == SLUICE_ENORULE) { /* no rule limits this request */
        sluiced_reply(w, req, 200, NULL);
        sluiced_rq_free(r);
        return;
    }
    if (rc != 0) {
        sluiced_match_error_reply(r, rc, &err);
        return;
    }
    const sluice__rule *rule = &cfg->rules[r->m.rule_index];
    r->shape = rule->shape && !query_flag(req, "nodelay");
    sluiced_decide(r, 1);
}
