/* SPDX-License-Identifier: MIT */
/*
 * rls_decide.c - deciding a whole RateLimitRequest asynchronously on a sluice
 * store: every descriptor matched (rls_match.c), `replaces` applied, one store
 * op per limited descriptor issued at once (a Redis store pipelines them on
 * the loop's connection), the reply built when the last one answers.
 *
 * Counting (docs/envoy-ratelimit.md).  Upstream's fixed window charges every
 * hit, also refused ones (INCRBY, over when the count passes
 * requests_per_unit).  sluice's fixed window never charges a refused request,
 * so a descriptor's counter is stored as a fixed window of the unit's length
 * (epoch-aligned, as upstream) with a capacity no request reaches
 * (SLUICE_RLS_COUNTER_CAP): the store always charges, answers the count, and
 * this file applies requests_per_unit.  One atomic store op per descriptor,
 * so two sluiced on one Redis admit exactly the limit.
 * - descriptors_semantics: envoy (default): every descriptor charged its hits.
 * - exact: the descriptors are first read (cost 0); only when none that
 *   counts would be over are they charged, so a refused request consumes
 *   nothing.  Between the read and the charge another request may take the
 *   last units; the charge's own answer then decides, and that refused
 *   request stays charged on its descriptors (the ops are per key, not one
 *   transaction).  Never more than the limit is admitted.
 * A rate_limit with sluice's `algorithm` is decided by that engine (limit =
 * requests_per_unit over the unit's window); a refused hit is never charged.
 */
#include <stddef.h>
#include <string.h>

#include "core/errors.h"
#include "policy/policy.h"
#include "rls/rls_int.h"
#include "rls/rls_metrics.h"
#include "store/store_internal.h"
#include "util/alloc.h"

typedef struct job job;

typedef struct slot {
    job *j;
    int idx;
    bool active;          /* has a limit that goes to the store */
    bool unlimited;
    int64_t hits;
    bool done_ok;         /* d holds the store's answer */
    sluice_decision d;
    sluice__rls_hit hit;
} slot;

struct job {
    sluice__rls_cb cb;
    void *arg;
    sluice_async *a;
    int semantics;        /* SLUICE_RLS_SEM_* */
    int on_store_error;
    bool global_shadow;
    bool charge;          /* the ops in flight charge (else they read) */
    int64_t now_ms;       /* SLUICE_NOW: the store's clock */
    int pending;
    int err;              /* first failure of an op */
    char *domain;         /* NUL-terminated copy, after s[n] in the allocation */
    int n;
    sluice__rls_reply reply; /* filled for the n statuses only (not zeroed whole) */
    slot s[];
};

/* ---- one descriptor's verdict ------------------------------------------------------ */

static bool is_counter(const sluice__rls_limit *l)
{
    return !l->sluice_algo;
}

/* The store op's limit. */
static void op_limit(const sluice__rls_limit *l, sluice_limit *out)
{
    if (l->sluice_algo) {
        *out = l->algo;
        return;
    }
    out->algorithm = SLUICE_FIXED_WINDOW;
    out->limit = SLUICE_RLS_COUNTER_CAP;
    out->window_ms = l->window_ms;
    out->burst = 0;
}

/* The count after this op (counter limits): the capacity minus what is left. */
static int64_t counted(const sluice_decision *d)
{
    int64_t r = d->nlimits > 0 ? d->limits[0].remaining : 0;
    return SLUICE_RLS_COUNTER_CAP - r;
}

/*
 * Over the limit, and what remains, for slot x whose store answer is in x->d.
 * read: the answer was a read (cost 0) of a request that wants x->hits; over
 * then says whether they would fit, and remaining is what is left now.
 */
static bool verdict(const job *j, const slot *x, bool read, uint32_t *remaining)
{
    const sluice__rls_limit *l = x->hit.limit;
    const sluice_decision *d = &x->d;
    int64_t rpu = l->rpu;
    if (d->store_error && j->on_store_error != SLUICE_FAIL_LOCAL) {
        *remaining = d->allowed ? l->rpu : 0;
        return !d->allowed;
    }
    if (is_counter(l)) {
        int64_t after = counted(d);
        bool over = read ? after + x->hits > rpu : (after > rpu || (x->hits > 0 && !d->allowed));
        *remaining = (over && !read) || after >= rpu ? 0 : (uint32_t)(rpu - after);
        return over;
    }
    int64_t left = d->nlimits > 0 ? d->limits[0].remaining : 0;
    bool over = read ? (x->hits > 0 && left < x->hits) : (x->hits > 0 && !d->allowed);
    *remaining = (over && !read) || left < 0 ? 0 : (left > UINT32_MAX ? UINT32_MAX : (uint32_t)left);
    return over;
}

static int64_t until_reset(const slot *x)
{
    const sluice__rls_limit *l = x->hit.limit;
    if (!is_counter(l))
        return x->d.reset_after_ms > 0 ? x->d.reset_after_ms : 0;
    int64_t w = l->window_ms;
    int64_t now = x->d.now_ms;
    int64_t m = now % w;
    if (m < 0)
        m += w;
    return w - m;
}

/* The decision the headers are built from: the descriptor's own view. */
static void header_view(const slot *x, const sluice__rls_status *st, sluice_decision *d)
{
    int64_t now = x->d.now_ms;
    bool store_error = x->d.store_error;
    memset(d, 0, sizeof(*d));
    d->allowed = st->code == SLUICE_RLS_OK;
    d->store_error = store_error;
    d->limit = st->requests_per_unit;
    d->remaining = st->limit_remaining;
    d->reset_after_ms = st->duration_until_reset_ms;
    /* a counter frees up at the window's end; a sluice engine knows its own retry */
    d->retry_after_ms = d->allowed                    ? 0
                        : x->hit.limit->sluice_algo && !store_error ? x->d.retry_after_ms
                                                                    : st->duration_until_reset_ms;
    d->now_ms = now;
    d->nlimits = 1;
    d->limits[0].allowed = d->allowed;
    d->limits[0].limit = d->limit;
    d->limits[0].remaining = d->remaining;
    d->limits[0].reset_after_ms = d->reset_after_ms;
    d->limits[0].retry_after_ms = d->retry_after_ms;
    d->limits[0].window_ms = x->hit.limit->window_ms;
    d->limits[0].algorithm = x->hit.limit->sluice_algo ? x->hit.limit->algo.algorithm
                                                      : SLUICE_FIXED_WINDOW;
}

/* ---- the reply ---------------------------------------------------------------------- */

/* Overall OVER_LIMIT: any over non-quota descriptor, or every quota one over. */
static int overall(const job *j, const bool *over)
{
    int nquota = 0, quota_over = 0;
    for (int i = 0; i < j->n; i++) {
        const slot *x = &j->s[i];
        if (!x->active)
            continue;
        if (x->hit.quota) {
            nquota++;
            quota_over += over[i];
        } else if (over[i]) {
            return SLUICE_RLS_OVER_LIMIT;
        }
    }
    return nquota > 0 && quota_over == nquota ? SLUICE_RLS_OVER_LIMIT : SLUICE_RLS_OK;
}

/* Counts slot x in the metrics; a configured label's slot is cached in its node. */
static void count(const job *j, const slot *x, bool over, bool shadow, uint32_t rem)
{
    const sluice__rls_limit *l = x->hit.limit;
    if (!x->hit.node || !x->hit.metric_static) {
        sluice__rls_metrics_count(j->domain, x->hit.metric, x->hits, over, shadow, rem, l->rpu);
        return;
    }
    sluice__rls_node *node = (sluice__rls_node *)x->hit.node; /* metric_slot is a cache */
    void *m = atomic_load_explicit(&node->metric_slot, memory_order_acquire);
    if (!m) {
        m = sluice__rls_metrics_slot(j->domain, x->hit.metric);
        atomic_store_explicit(&node->metric_slot, m, memory_order_release);
    }
    sluice__rls_metrics_count_slot(m, x->hits, over, shadow, rem, l->rpu);
}

static void finish(job *j)
{
    sluice__rls_cb cb = j->cb;
    void *arg = j->arg;
    if (j->err) {
        int e = j->err;
        sluice__free(j);
        cb(e, NULL, arg);
        return;
    }
    sluice__rls_reply *r = &j->reply;
    r->nstatuses = j->n;
    r->store_error = false;
    bool over[SLUICE_RLS_MAX_DESCRIPTORS];
    for (int i = 0; i < j->n; i++) {
        slot *x = &j->s[i];
        sluice__rls_status *st = &r->statuses[i];
        memset(st, 0, offsetof(sluice__rls_status, d));
        memset(&st->d, 0, offsetof(sluice_decision, limits));
        st->code = SLUICE_RLS_OK;
        over[i] = false;
        if (x->unlimited)
            st->limit_remaining = UINT32_MAX;
        if (!x->active)
            continue;
        const sluice__rls_limit *l = x->hit.limit;
        uint32_t rem;
        over[i] = verdict(j, x, !j->charge, &rem);
        bool shadow = x->hit.shadow || j->global_shadow;
        st->code = over[i] && !shadow ? SLUICE_RLS_OVER_LIMIT : SLUICE_RLS_OK;
        st->has_limit = true;
        st->requests_per_unit = l->rpu;
        st->unit = l->unit;
        st->limit_name = l->name;
        st->limit_remaining = rem;
        st->duration_until_reset_ms = until_reset(x);
        header_view(x, st, &st->d);
        r->store_error = r->store_error || x->d.store_error;
        count(j, x, over[i], shadow, rem); /* also a refused exact request's reads */
        if (shadow)
            over[i] = false;
    }
    r->overall_code = overall(j, over);
    cb(0, r, arg);
    sluice__free(j);
}

/* ---- issuing ops ------------------------------------------------------------------------ */

static void issue_all(job *j);

/* exact mode after the reads: charge only if no counted descriptor would be over. */
static void after_read(job *j)
{
    bool over[SLUICE_RLS_MAX_DESCRIPTORS];
    for (int i = 0; i < j->n; i++) {
        uint32_t rem;
        const slot *x = &j->s[i];
        over[i] = x->active && verdict(j, x, true, &rem) && !(x->hit.shadow || j->global_shadow);
    }
    if (overall(j, over) == SLUICE_RLS_OVER_LIMIT) {
        /* refused: nothing consumed; the reply reports the reads */
        sluice__rls_metrics_refused(j->domain);
        finish(j);
        return;
    }
    j->charge = true;
    issue_all(j);
}

/* One answer (or the issuing hold) less; the last one moves the job on. */
static void release(job *j)
{
    if (--j->pending > 0)
        return;
    if (!j->charge && !j->err)
        after_read(j);
    else
        finish(j);
}

static void op_done(int status, const sluice_decision *d, void *arg)
{
    slot *x = arg;
    job *j = x->j;
    if (status == 0 && d) {
        x->d = *d;
        x->done_ok = true;
    } else if (!j->err) {
        j->err = status ? status : SLUICE_ESTORE;
    }
    release(j);
}

static void issue_all(job *j)
{
    j->pending = 1; /* held while issuing: an answer may come before the next op starts */
    for (int i = 0; i < j->n && !j->err; i++) {
        slot *x = &j->s[i];
        if (!x->active)
            continue;
        sluice_limit lim;
        op_limit(x->hit.limit, &lim);
        sluice__op op = {.key = x->hit.key, .key_len = x->hit.key_len, .limits = &lim,
                         .nlimits = 1, .cost = j->charge ? x->hits : 0, .now_ms = j->now_ms};
        x->done_ok = false;
        j->pending++;
        int rc = sluice__store_decide_op_async(j->a, &op, false, op_done, x);
        if (rc < 0) {
            j->pending--;
            j->err = rc;
        }
    }
    release(j); /* the hold */
}

/* ---- entry point ---------------------------------------------------------------------------- */

/* Upstream's replaces: a limit named by any matched limit's `replaces` is dropped. */
static void apply_replaces(job *j)
{
    for (int i = 0; i < j->n; i++) {
        const sluice__rls_limit *l = j->s[i].hit.limit;
        if (!j->s[i].active || !l->name)
            continue;
        for (int k = 0; k < j->n && j->s[i].active; k++) {
            const sluice__rls_limit *o = j->s[k].hit.limit;
            if (!o || o->unlimited)
                continue;
            for (int m = 0; m < o->nreplaces; m++)
                if (strcmp(o->replaces[m], l->name) == 0)
                    j->s[i].active = false;
        }
    }
}

int sluice__rls_decide_async(sluice_async *a, const sluice__rls *rls, const sluice_config *cfg,
                             const sluice__rls_request *req, sluice__rls_cb cb, void *arg)
{
    return sluice__rls_decide_async_at(a, rls, cfg, req, SLUICE_NOW, cb, arg);
}

int sluice__rls_decide_async_at(sluice_async *a, const sluice__rls *rls, const sluice_config *cfg,
                                const sluice__rls_request *req, int64_t now_ms, sluice__rls_cb cb,
                                void *arg)
{
    if (!a || !cfg || !req || !cb || !req->domain || req->domain_len == 0 ||
        req->domain_len > SLUICE_RLS_STR_MAX || req->ndescriptors < 1 ||
        req->ndescriptors > SLUICE_RLS_MAX_DESCRIPTORS || !req->descriptors ||
        req->hits_addend < 0 || req->hits_addend > SLUICE_RLS_MAX_HITS ||
        memchr(req->domain, '\0', req->domain_len))
        return SLUICE_EINVAL;
    int n = req->ndescriptors;
    job *j = sluice__malloc(sizeof(*j) + (size_t)n * sizeof(slot) + req->domain_len + 1);
    if (!j)
        return SLUICE_ENOMEM;
    memset(j, 0, offsetof(job, reply));
    j->cb = cb;
    j->arg = arg;
    j->a = a;
    j->n = n;
    j->semantics = cfg->rls_semantics;
    j->on_store_error = cfg->on_store_error;
    j->global_shadow = cfg->shadow;
    j->now_ms = now_ms;
    j->domain = (char *)&j->s[n];
    memcpy(j->domain, req->domain, req->domain_len);
    j->domain[req->domain_len] = '\0';
    const sluice__rls_domain *dom = sluice__rls_find_domain(rls, req->domain, req->domain_len);
    if (!dom)
        sluice__rls_metrics_unknown_domain(j->domain);
    int64_t req_hits = req->hits_addend > 0 ? req->hits_addend : 1;
    for (int i = 0; i < n; i++) {
        slot *x = &j->s[i];
        const sluice__rls_descriptor *d = &req->descriptors[i];
        x->j = j;
        x->idx = i;
        x->active = x->unlimited = x->done_ok = false;
        int rc = sluice__rls_match(dom, req->domain, req->domain_len, d, &x->hit);
        if (rc == 0 && d->has_hits_addend &&
            (d->hits_addend < 0 || d->hits_addend > SLUICE_RLS_MAX_HITS))
            rc = SLUICE_EINVAL;
        if (rc) {
            sluice__free(j);
            return rc;
        }
        x->hits = d->has_hits_addend ? d->hits_addend : req_hits;
        if (x->hit.limit && x->hit.limit->unlimited)
            x->unlimited = true;
        else if (x->hit.limit)
            x->active = true;
    }
    apply_replaces(j);
    /* envoy: charge at once; exact: read first (a request charging nothing has
     * nothing to undo, so it is charged at once too) */
    bool any_hits = false;
    for (int i = 0; i < n; i++)
        any_hits = any_hits || (j->s[i].active && j->s[i].hits > 0);
    j->charge = j->semantics != SLUICE_RLS_SEM_EXACT || !any_hits;
    issue_all(j);
    return 0;
}
