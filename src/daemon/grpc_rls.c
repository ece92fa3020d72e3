/* SPDX-License-Identifier: MIT */
/*
 * grpc_rls.c - envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit:
 * the RateLimitRequest decoded by protobuf-c, handed to
 * sluice__rls_decide_async (src/rls: matching, counting, on_store_error),
 * and the RateLimitResponse encoded from its reply: overall_code, one
 * DescriptorStatus per descriptor in request order (current_limit,
 * limit_remaining, duration_until_reset) and the configured rate-limit
 * headers as response_headers_to_add.  The decision never blocks the loop:
 * on Redis the reply is sent from the callback.
 *
 * A request upstream refuses (empty domain, no descriptors, a descriptor
 * without entries) is INVALID_ARGUMENT, as is anything the decider refuses
 * (SLUICE_EINVAL: too many descriptors or entries, an unknown override
 * unit, an oversized key or hits_addend).  A store failure is not an error
 * here: the decider applies on_store_error (allow answers OK, as Envoy's
 * failure_mode_deny: false expects).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/service/ratelimit/v3/rls.pb-c.h"
#include "grpc.h"
#include "policy/policy.h"
#include "rls/rls.h"

typedef Envoy__Service__Ratelimit__V3__RateLimitRequest pb_request;
typedef Envoy__Service__Ratelimit__V3__RateLimitResponse pb_response;
typedef Envoy__Service__Ratelimit__V3__RateLimitResponse__DescriptorStatus pb_status;
typedef Envoy__Service__Ratelimit__V3__RateLimitResponse__RateLimit pb_limit;
typedef Envoy__Extensions__Common__Ratelimit__V3__RateLimitDescriptor pb_descriptor;
typedef Envoy__Config__Core__V3__HeaderValue pb_header;
typedef Google__Protobuf__Duration pb_duration;

#define MAX_HEADERS 8     /* rate-limit headers of one reply (4 legacy + 2 IETF today) */
#define HEADER_BYTES 2048 /* their names and values */

/* response_headers_to_add, copied out of sluice__rls_headers' callback. */
typedef struct hdrs {
    pb_header hv[MAX_HEADERS];
    pb_header *ptr[MAX_HEADERS];
    int n;
    char mem[HEADER_BYTES];
    size_t used;
} hdrs;

static char *keep(hdrs *h, const char *s)
{
    size_t n = strlen(s) + 1;
    if (h->used + n > sizeof(h->mem))
        return NULL;
    char *p = memcpy(h->mem + h->used, s, n);
    h->used += n;
    return p;
}

static int add_header(void *arg, const char *name, const char *value)
{
    hdrs *h = arg;
    if (h->n == MAX_HEADERS)
        return 0;
    char *k = keep(h, name), *v = keep(h, value);
    if (!k || !v)
        return 0;
    pb_header init = ENVOY__CONFIG__CORE__V3__HEADER_VALUE__INIT;
    h->hv[h->n] = init;
    h->hv[h->n].key = k;
    h->hv[h->n].value = v;
    h->ptr[h->n] = &h->hv[h->n];
    h->n++;
    return 0;
}

/* Bytes the packed reply can take at most: per status a tag and length
 * (3) + code (2) + current_limit (3 + 6 + 2 + name with its tag and length)
 * + remaining (6) + duration (3 + 11 + 6); per header its key and value with
 * tags and lengths; the overall code. */
static size_t bound(const sluice__rls_reply *r, const hdrs *h)
{
    size_t n = 8 + h->used + (size_t)h->n * 16;
    for (int i = 0; i < r->nstatuses; i++)
        n += 48 + (r->statuses[i].limit_name ? strlen(r->statuses[i].limit_name) + 6 : 0);
    return n;
}

static void on_decided(int status, const sluice__rls_reply *r, void *arg)
{
    gcall *s = arg;
    if (s->closed || s->answered)
        goto out; /* reset, timed out, or its connection died: nothing to answer */
    if (status < 0) {
        sluiced__gcall_reply(s, status == SLUICE_ECANCELED ? GRPC_UNAVAILABLE : GRPC_INTERNAL,
                             sluice_strerror(status));
        goto out;
    }
    const sluice_config *cfg = s->cfg->cfg;
    sluiced_metrics_decision(-1, SLUICED_RES_ALLOWED, r->store_error, cfg->on_store_error,
                             sluiced_now_us() - s->start_us);
    pb_status st[SLUICE_RLS_MAX_DESCRIPTORS];
    pb_status *stp[SLUICE_RLS_MAX_DESCRIPTORS];
    pb_limit lim[SLUICE_RLS_MAX_DESCRIPTORS];
    pb_duration dur[SLUICE_RLS_MAX_DESCRIPTORS];
    for (int i = 0; i < r->nstatuses; i++) {
        const sluice__rls_status *x = &r->statuses[i];
        pb_status si = ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__DESCRIPTOR_STATUS__INIT;
        st[i] = si;
        st[i].code = (Envoy__Service__Ratelimit__V3__RateLimitResponse__Code)x->code;
        st[i].limit_remaining = x->limit_remaining;
        if (x->has_limit) {
            pb_limit li = ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__RATE_LIMIT__INIT;
            lim[i] = li;
            lim[i].requests_per_unit = x->requests_per_unit;
            lim[i].unit =
                (Envoy__Service__Ratelimit__V3__RateLimitResponse__RateLimit__Unit)x->unit;
            if (x->limit_name)
                lim[i].name = (char *)x->limit_name;
            st[i].current_limit = &lim[i];
            pb_duration di = GOOGLE__PROTOBUF__DURATION__INIT;
            dur[i] = di;
            dur[i].seconds = x->duration_until_reset_ms / 1000;
            dur[i].nanos = (int32_t)(x->duration_until_reset_ms % 1000) * 1000000;
            st[i].duration_until_reset = &dur[i];
        }
        stp[i] = &st[i];
    }
    hdrs h;
    h.n = 0;
    h.used = 0;
    sluice__rls_headers(cfg, r, add_header, &h);
    pb_response resp = ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__INIT;
    /* Envoy asserts the code is never UNKNOWN. */
    resp.overall_code = r->overall_code == SLUICE_RLS_OVER_LIMIT
                            ? ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__CODE__OVER_LIMIT
                            : ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__CODE__OK;
    resp.n_statuses = (size_t)r->nstatuses;
    resp.statuses = stp;
    resp.n_response_headers_to_add = (size_t)h.n;
    resp.response_headers_to_add = h.ptr;
    /* One pass: pack into a buffer of a size no reply can exceed, then set
     * the length prefix (get_packed_size would walk the message twice). */
    size_t len = envoy__service__ratelimit__v3__rate_limit_response__pack(
        &resp, sluiced__gcall_out(s, bound(r, &h)));
    sluiced__gcall_set_len(s, len);
    sluiced__gcall_reply(s, GRPC_OK, NULL);
out:
    sluiced__gcall_done(s);
}

/* Copies the decoded descriptors into the decider's form; strings stay in m. */
static int convert(const pb_request *m, sluice__rls_descriptor *d, const char **why)
{
    for (size_t i = 0; i < m->n_descriptors; i++) {
        const pb_descriptor *pd = m->descriptors[i];
        sluice__rls_descriptor *x = &d[i];
        memset(x, 0, offsetof(sluice__rls_descriptor, entries));
        if (pd->n_entries == 0) {
            *why = "a descriptor has no entries";
            return -1;
        }
        if (pd->n_entries > SLUICE_RLS_MAX_ENTRIES) {
            *why = "a descriptor has more than 32 entries";
            return -1;
        }
        x->nentries = (int)pd->n_entries;
        for (size_t k = 0; k < pd->n_entries; k++) {
            x->entries[k].key = pd->entries[k]->key;
            x->entries[k].key_len = strlen(pd->entries[k]->key);
            x->entries[k].value = pd->entries[k]->value;
            x->entries[k].value_len = strlen(pd->entries[k]->value);
        }
        x->has_hits_addend = pd->hits_addend != NULL;
        x->has_limit = false;
        x->limit_requests_per_unit = 0;
        x->limit_unit = 0;
        x->hits_addend = 0;
        if (pd->hits_addend) /* above 10^9 the decider refuses it (SLUICE_EINVAL) */
            x->hits_addend =
                pd->hits_addend->value > INT64_MAX ? INT64_MAX : (int64_t)pd->hits_addend->value;
        if (pd->limit) {
            x->has_limit = true;
            x->limit_requests_per_unit = pd->limit->requests_per_unit;
            x->limit_unit = (int)pd->limit->unit; /* RateLimitUnit numbers = SLUICE_RLS_* */
        }
    }
    return 0;
}

void sluiced__grpc_rls(gcall *s)
{
    pb_request *m = envoy__service__ratelimit__v3__rate_limit_request__unpack(&sluiced__pb_alloc,
                                                                              s->nmsg, s->msg);
    if (!m) {
        sluiced__gcall_reply(s, GRPC_INVALID_ARGUMENT, "malformed RateLimitRequest");
        return;
    }
    const char *why = NULL;
    if (!m->domain[0])
        why = "domain is empty";
    else if (m->n_descriptors == 0)
        why = "no descriptors";
    else if (m->n_descriptors > SLUICE_RLS_MAX_DESCRIPTORS)
        why = "more than 64 descriptors";
    sluice__rls_descriptor *d = NULL;
    if (!why) {
        d = sluiced_malloc(m->n_descriptors * sizeof(*d));
        if (!d)
            abort(); /* the daemon's OOM policy */
        convert(m, d, &why);
    }
    if (why) {
        sluiced_free(d);
        envoy__service__ratelimit__v3__rate_limit_request__free_unpacked(m, &sluiced__pb_alloc);
        sluiced__gcall_reply(s, GRPC_INVALID_ARGUMENT, why);
        return;
    }
    sluiced_worker *w = sluiced__gcall_worker(s);
    s->cfg = sluiced_worker_cfg(w);
    atomic_fetch_add(&s->cfg->refs, 1);
    const sluice_config *cfg = s->cfg->cfg;
    sluice__rls_request req = {.domain = m->domain,
                               .domain_len = strlen(m->domain),
                               .ndescriptors = (int)m->n_descriptors,
                               .descriptors = d,
                               .hits_addend = m->hits_addend};
    s->pending = true;
    atomic_fetch_add(&w->inflight, 1);
    /* On the memory store on_decided runs before this returns; s stays valid
     * (it is freed only once closed, which no callback here can make it). */
    int rc = sluice__rls_decide_async(w->async, sluice__config_rls(cfg), cfg, &req, on_decided, s);
    sluiced_free(d);
    envoy__service__ratelimit__v3__rate_limit_request__free_unpacked(m, &sluiced__pb_alloc);
    if (rc < 0) {
        sluiced__gcall_reply(s,
                             rc == SLUICE_EINVAL   ? GRPC_INVALID_ARGUMENT
                             : rc == SLUICE_ENOMEM ? GRPC_RESOURCE_EXHAUSTED
                                                   : GRPC_INTERNAL,
                             rc == SLUICE_EINVAL ? "a descriptor is invalid (empty entry key, "
                                                   "unknown limit unit, hits_addend over 10^9, "
                                                   "or a key or value over 4096 bytes)"
                                                 : sluice_strerror(rc));
        sluiced__gcall_done(s);
        return;
    }
    sluiced__gcall_arm_deadline(s);
}
