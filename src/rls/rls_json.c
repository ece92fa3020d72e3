/* SPDX-License-Identifier: MIT */
/*
 * rls_json.c - the JSON form of Envoy RLS requests and replies, as
 * envoyproxy/ratelimit's POST /json reads them with protojson.Unmarshal and
 * writes them with protojson.Marshal.  Every field is type-checked; an
 * unknown field is an error (as protojson); counts are bounded by rls.h's
 * SLUICE_RLS_MAX_* before anything is allocated.  64-bit integers may be
 * JSON numbers or decimal strings (the proto3 JSON mapping writes strings).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rls/rls_int.h"
#include "rls/rls_json.h"
#include "util/alloc.h"

static int fail(const char **code, const char *c, char *why, size_t n, const char *fmt,
                const char *arg)
{
    *code = c;
    snprintf(why, n, fmt, arg);
    return -1;
}

/* The member of o named lower (lowerCamel) or orig (the proto name); NULL if absent.
 * Both present is an error, as protojson. */
static json_t *member(json_t *o, const char *lower, const char *orig, bool *dup)
{
    json_t *a = json_object_get(o, lower);
    json_t *b = orig && strcmp(orig, lower) ? json_object_get(o, orig) : NULL;
    if (a && b)
        *dup = true;
    return a ? a : b;
}

/* Only the named fields (pairs of lowerCamel/original names, NULL-ended). */
static const char *unknown_field(json_t *o, const char *const *names)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool ok = false;
        for (int i = 0; names[i] && !ok; i++)
            ok = strcmp(k, names[i]) == 0;
        if (!ok)
            return k;
    }
    return NULL;
}

/* An unsigned integer as a JSON number or a decimal string, at most max. */
static int uint_value(json_t *v, uint64_t max, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < 0 || (uint64_t)x > max)
            return -1;
        *out = (uint64_t)x;
        return 0;
    }
    if (json_is_real(v)) { /* 5.0 is 5 in protojson; 5.5 is not an integer */
        double d = json_real_value(v);
        if (d < 0 || d > (double)max || d != (double)(uint64_t)d)
            return -1;
        *out = (uint64_t)d;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!s[0] || strspn(s, "0123456789") != strlen(s) || strlen(s) > 20)
            return -1;
        errno = 0;
        unsigned long long x = strtoull(s, NULL, 10);
        if (errno || x > max)
            return -1;
        *out = x;
        return 0;
    }
    return -1;
}

static int parse_unit(json_t *v, int *unit)
{
    if (json_is_string(v)) {
        for (int u = 1; u <= SLUICE_RLS_WEEK; u++)
            if (strcmp(json_string_value(v), sluice__rls_unit_name(u)) == 0) {
                *unit = u;
                return 0;
            }
        return -1;
    }
    uint64_t x;
    if (uint_value(v, SLUICE_RLS_WEEK, &x) != 0 || x == 0)
        return -1;
    *unit = (int)x;
    return 0;
}

static int parse_descriptor(json_t *o, sluice__rls_descriptor *d, const char **code, char *why,
                            size_t n)
{
    static const char *const fields[] = {"entries", "limit", "hitsAddend", "hits_addend", NULL};
    static const char *const efields[] = {"key", "value", NULL};
    static const char *const lfields[] = {"requestsPerUnit", "requests_per_unit", "unit", NULL};
    bool dup = false;
    const char *bad;
    memset(d, 0, sizeof(*d));
    if (!json_is_object(o))
        return fail(code, "bad_type", why, n, "%s", "each descriptor must be an object");
    if ((bad = unknown_field(o, fields)))
        return fail(code, "bad_request", why, n, "unknown descriptor field \"%.60s\"", bad);
    json_t *entries = json_object_get(o, "entries");
    if (!json_is_array(entries) || json_array_size(entries) == 0)
        return fail(code, "bad_request", why, n, "%s",
                    "each descriptor needs a non-empty \"entries\" array");
    if (json_array_size(entries) > SLUICE_RLS_MAX_ENTRIES)
        return fail(code, "bad_request", why, n, "a descriptor has more than %s entries", "32");
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        if (!json_is_object(e))
            return fail(code, "bad_type", why, n, "%s", "each entry must be an object");
        if ((bad = unknown_field(e, efields)))
            return fail(code, "bad_request", why, n, "unknown entry field \"%.60s\"", bad);
        json_t *k = json_object_get(e, "key"), *v = json_object_get(e, "value");
        if (k && !json_is_string(k))
            return fail(code, "bad_type", why, n, "%s", "an entry's \"key\" must be a string");
        if (!k || json_string_length(k) == 0)
            return fail(code, "bad_request", why, n, "%s", "each entry needs a non-empty "
                                                           "string \"key\"");
        if (v && !json_is_string(v))
            return fail(code, "bad_type", why, n, "%s", "an entry's \"value\" must be a string");
        if (json_string_length(k) > SLUICE_RLS_STR_MAX ||
            (v && json_string_length(v) > SLUICE_RLS_STR_MAX))
            return fail(code, "bad_request", why, n, "%s", "an entry key or value is longer "
                                                           "than 4096 bytes");
        if (memchr(json_string_value(k), '\0', json_string_length(k)))
            return fail(code, "bad_request", why, n, "%s", "an entry key holds a NUL byte");
        sluice__rls_entry *en = &d->entries[d->nentries++];
        en->key = json_string_value(k);
        en->key_len = json_string_length(k);
        en->value = v ? json_string_value(v) : "";
        en->value_len = v ? json_string_length(v) : 0;
    }
    json_t *h = member(o, "hitsAddend", "hits_addend", &dup);
    if (h && !json_is_null(h)) {
        uint64_t x;
        if (uint_value(h, SLUICE_RLS_MAX_HITS, &x) != 0)
            return fail(code, "bad_request", why, n, "%s", "a descriptor's \"hitsAddend\" must "
                                                           "be an integer in 0..1000000000");
        d->has_hits_addend = true;
        d->hits_addend = (int64_t)x;
    }
    json_t *l = json_object_get(o, "limit");
    if (l && !json_is_null(l)) {
        if (!json_is_object(l))
            return fail(code, "bad_type", why, n, "%s", "\"limit\" must be an object");
        if ((bad = unknown_field(l, lfields)))
            return fail(code, "bad_request", why, n, "unknown limit field \"%.60s\"", bad);
        json_t *rpu = member(l, "requestsPerUnit", "requests_per_unit", &dup);
        uint64_t x = 0;
        if (rpu && uint_value(rpu, UINT32_MAX, &x) != 0)
            return fail(code, "bad_request", why, n, "%s", "\"requestsPerUnit\" must be an "
                                                           "integer in 0..4294967295");
        int unit = 0;
        json_t *u = json_object_get(l, "unit");
        if (!u || parse_unit(u, &unit) != 0)
            return fail(code, "bad_request", why, n, "%s", "\"limit\" needs a \"unit\": SECOND, "
                                                           "MINUTE, HOUR, DAY, WEEK, MONTH or YEAR");
        d->has_limit = true;
        d->limit_requests_per_unit = (uint32_t)x;
        d->limit_unit = unit;
    }
    if (dup)
        return fail(code, "bad_request", why, n, "%s", "a field is given under both of its names");
    return 0;
}

int sluice__rls_json_parse(const char *body, size_t len, sluice__rls_json_req *out,
                           const char **code, char *why, size_t whysize)
{
    static const char *const fields[] = {"domain", "descriptors", "hitsAddend", "hits_addend",
                                         NULL};
    memset(out, 0, sizeof(*out));
    if (len > SLUICE_RLS_JSON_MAX)
        return fail(code, "body_too_large", why, whysize, "%s", "body exceeds 65536 bytes");
    if (len == 0)
        return fail(code, "malformed_json", why, whysize, "%s", "empty body");
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        return fail(code, "malformed_json", why, whysize, "%s", jerr.text);
    out->root = root;
    if (!json_is_object(root))
        return fail(code, "bad_type", why, whysize, "%s", "body must be a JSON object");
    const char *bad = unknown_field(root, fields);
    if (bad)
        return fail(code, "bad_request", why, whysize, "unknown field \"%.60s\"", bad);
    json_t *dom = json_object_get(root, "domain");
    if (dom && !json_is_string(dom))
        return fail(code, "bad_type", why, whysize, "%s", "\"domain\" must be a string");
    if (!dom || json_string_length(dom) == 0)
        return fail(code, "bad_request", why, whysize, "%s", "rate limit domain must not be "
                                                             "empty");
    if (json_string_length(dom) > SLUICE_RLS_STR_MAX ||
        memchr(json_string_value(dom), '\0', json_string_length(dom)))
        return fail(code, "bad_request", why, whysize, "%s", "\"domain\" is longer than 4096 "
                                                             "bytes or holds a NUL byte");
    json_t *ds = json_object_get(root, "descriptors");
    if (ds && !json_is_array(ds))
        return fail(code, "bad_type", why, whysize, "%s", "\"descriptors\" must be an array");
    if (!ds || json_array_size(ds) == 0)
        return fail(code, "bad_request", why, whysize, "%s", "rate limit descriptor list must "
                                                             "not be empty");
    if (json_array_size(ds) > SLUICE_RLS_MAX_DESCRIPTORS)
        return fail(code, "bad_request", why, whysize, "more than %s descriptors", "64");
    bool dup = false;
    json_t *h = member(root, "hitsAddend", "hits_addend", &dup);
    uint64_t hits = 0;
    if (dup || (h && !json_is_null(h) && uint_value(h, SLUICE_RLS_MAX_HITS, &hits) != 0))
        return fail(code, "bad_request", why, whysize, "%s", "\"hitsAddend\" must be an "
                                                             "integer in 0..1000000000");
    out->descriptors = sluice__calloc(json_array_size(ds), sizeof(*out->descriptors));
    if (!out->descriptors)
        return fail(code, "out_of_memory", why, whysize, "%s", "out of memory");
    size_t i;
    json_t *d;
    json_array_foreach(ds, i, d)
    {
        if (parse_descriptor(d, &out->descriptors[i], code, why, whysize) != 0)
            return -1;
    }
    out->req.domain = json_string_value(dom);
    out->req.domain_len = json_string_length(dom);
    out->req.descriptors = out->descriptors;
    out->req.ndescriptors = (int)json_array_size(ds);
    out->req.hits_addend = (int64_t)hits;
    return 0;
}

void sluice__rls_json_req_free(sluice__rls_json_req *r)
{
    if (!r)
        return;
    json_decref(r->root);
    sluice__free(r->descriptors);
    memset(r, 0, sizeof(*r));
}

static const char *code_name(int c)
{
    return c == SLUICE_RLS_OK ? "OK" : c == SLUICE_RLS_OVER_LIMIT ? "OVER_LIMIT" : "UNKNOWN";
}

/* protojson's Duration: "1s", "0.500s", "59.001s" (3 fractional digits as needed) */
static void duration(char *buf, size_t n, int64_t ms)
{
    if (ms % 1000 == 0)
        snprintf(buf, n, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, n, "%lld.%03llds", (long long)(ms / 1000), (long long)(ms % 1000));
}

json_t *sluice__rls_json_reply(const sluice__rls_reply *r, json_t *headers)
{
    json_t *o = json_object();
    json_t *sts = json_array();
    if (!o || !sts) {
        json_decref(o);
        json_decref(sts);
        return NULL;
    }
    json_object_set_new(o, "overallCode", json_string(code_name(r->overall_code)));
    for (int i = 0; i < r->nstatuses; i++) {
        const sluice__rls_status *s = &r->statuses[i];
        json_t *st = json_object();
        json_object_set_new(st, "code", json_string(code_name(s->code)));
        if (s->has_limit) {
            json_t *cl = json_object();
            if (s->limit_name)
                json_object_set_new(cl, "name", json_string(s->limit_name));
            if (s->requests_per_unit)
                json_object_set_new(cl, "requestsPerUnit", json_integer(s->requests_per_unit));
            json_object_set_new(cl, "unit", json_string(sluice__rls_unit_name(s->unit)));
            json_object_set_new(st, "currentLimit", cl);
        }
        if (s->limit_remaining)
            json_object_set_new(st, "limitRemaining", json_integer(s->limit_remaining));
        if (s->has_limit && s->duration_until_reset_ms > 0) {
            char b[48];
            duration(b, sizeof(b), s->duration_until_reset_ms);
            json_object_set_new(st, "durationUntilReset", json_string(b));
        }
        json_array_append_new(sts, st);
    }
    json_object_set_new(o, "statuses", sts);
    if (headers && json_array_size(headers))
        json_object_set(o, "responseHeadersToAdd", headers);
    return o;
}
