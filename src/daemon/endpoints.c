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
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon.h"
#include "handlers.h"
#include "policy/policy.h"

/* ---- request helpers ------------------------------------------------------ */

static const char *http_header_fn(void *ctx, const char *name)
{
    return sluiced_http_header(ctx, name);
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

/* Copies s into out (size > 0), truncated to fit. */
static void copy_str(char *out, size_t size, const char *s, size_t n)
{
    if (n >= size)
        n = size - 1;
    memcpy(out, s, n);
    out[n] = '\0';
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
static void client_ip(const sluice_config *cfg, const sluiced_http_request *req, char *out,
                      size_t size)
{
    const char *addr = req->peer;
    out[0] = '\0';
    if (!addr[0])
        return;
    if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.'))
        addr += 7;
    copy_str(out, size, addr, strlen(addr));
    const char *xff = sluiced_http_header(req, "X-Forwarded-For");
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
        copy_str(out, size, hop, (size_t)(b - a));
        if (!sluice__config_trusted(cfg, hop))
            return;
        end = start > xff ? start - 1 : xff;
    }
}

/* Identifiers: 1..SLUICE_KEY_MAX bytes, no control bytes (JSON already made them UTF-8). */
static int key_ok_or_reply(sluiced_worker *w, sluiced_http_reply *rp, const char *key, size_t len)
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
    sluiced_reply_error(w, rp, 400, "bad_key", why);
    return -1;
}

static bool query_flag(const sluiced_http_request *req, const char *name)
{
    const char *q = req->query;
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
        sluiced_reply_error(r->w, r->rp, 400, "bad_type", msg);
        return -1;
    }
    *out = json_string_value(v);
    if (len)
        *len = json_string_length(v);
    return 0;
}

void sluiced_handle_check(sluiced_worker *w, sluiced_http_request *req)
{
    sluiced_http_reply *rp = req->reply;
    size_t n = req->body_len;
    if (n > SLUICED_MAX_BODY_SIZE) {
        sluiced_reply_error(w, rp, 413, "body_too_large", "body exceeds 65536 bytes");
        return;
    }
    if (n == 0) {
        sluiced_reply_error(w, rp, 400, "malformed_json", "empty body");
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb(req->body, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!body) {
        char msg[200];
        snprintf(msg, sizeof(msg), "invalid JSON at byte %d: %s", jerr.position, jerr.text);
        sluiced_reply_error(w, rp, 400, "malformed_json", msg);
        return;
    }
    rq *r = sluiced_rq_new(w, rp, EP_CHECK);
    const sluice_config *cfg = r->cfg->cfg;
    if (!json_is_object(body)) {
        sluiced_reply_error(w, rp, 400, "bad_type", "body must be a JSON object");
        goto fail;
    }
    int64_t cost = 1;
    json_t *jc = json_object_get(body, "cost");
    if (jc && (!json_is_integer(jc) || json_integer_value(jc) < 0 ||
               json_integer_value(jc) > SLUICE_COST_MAX)) {
        sluiced_reply_error(w, rp, 400, "bad_cost",
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
            sluiced_reply_error(w, rp, 400, "bad_request", "\"rule\" needs \"key\"");
            goto fail;
        }
        if (key_ok_or_reply(w, rp, key, key_len))
            goto fail;
        rc = sluice_config_match_rule(cfg, rule, tier, key, key_len, &r->m, &err);
    } else { /* matched: method/path/ip/headers against the rules */
        json_t *hdrs = json_object_get(body, "headers");
        if (hdrs && !json_is_object(hdrs)) {
            sluiced_reply_error(w, rp, 400, "bad_type", "\"headers\" must be an object");
            goto fail;
        }
        const char *k;
        json_t *v;
        json_object_foreach(hdrs, k, v)
        {
            if (!json_is_string(v)) {
                sluiced_reply_error(w, rp, 400, "bad_type", "header values must be strings");
                goto fail;
            }
        }
        if (!path) {
            sluiced_reply_error(
                w, rp, 400, "bad_request",
                "give \"rule\" and \"key\", or \"path\" (with method, ip, headers)");
            goto fail;
        }
        if (ip && !valid_ip(ip)) {
            sluiced_reply_error(w, rp, 400, "bad_ip", "\"ip\" is not an IPv4 or IPv6 address");
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
            sluiced_reply_json(w, rp, 200, j, NULL);
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

void sluiced_handle_authorize(sluiced_worker *w, sluiced_http_request *req)
{
    sluiced_http_reply *rp = req->reply;
    const char *path = req->path;
    rq *r = sluiced_rq_new(w, rp, EP_AUTHORIZE);
    const sluice_config *cfg = r->cfg->cfg;

    /* The original request: nginx X-Original-*, Traefik X-Forwarded-*, or
     * Envoy's path_prefix form /v1/authorize/<original path>. */
    const char *method = sluiced_http_header(req, "X-Original-Method");
    if (!method)
        method = sluiced_http_header(req, "X-Forwarded-Method");
    const char *uri = sluiced_http_header(req, "X-Original-URI");
    if (!uri)
        uri = sluiced_http_header(req, "X-Forwarded-Uri");
    const char *suffix = path + strlen("/v1/authorize");
    if (!uri && *suffix == '/') {
        uri = suffix;
        if (!method)
            method = req->method == SLUICED_M_POST ? "POST" : NULL;
    }
    if (!uri) {
        sluiced_reply_error(w, rp, 400, "missing_original_uri",
                            "send X-Original-URI (nginx) or X-Forwarded-Uri (Traefik)");
        sluiced_rq_free(r);
        return;
    }
    if (!method)
        method = req->method_name;
    /* The rules match the path only: cut the query string. */
    char opath[2048];
    size_t plen = strcspn(uri, "?#");
    if (plen >= sizeof(opath)) {
        sluiced_reply_error(w, rp, 431, "headers_too_large", "original URI is too long");
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
                         .header = http_header_fn,
                         .header_ctx = req};
    sluice_error err = {0};
    int rc = sluice_config_match(cfg, &sr, &r->m, &err);
    if (rc == SLUICE_ENORULE) { /* no rule limits this request */
        sluiced_reply(w, rp, 200, NULL, NULL, 0);
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
