/* SPDX-License-Identifier: MIT */
/*
 * store.c - the generic store layer: opens a store by URL scheme through its
 * ops table, builds the store key "<rule>[@<tier>]:<identifier>" of a match, and
 * applies what no store knows about, once for every store: on_store_error
 * (allow, deny, or the in-process fallback store) and shadow rules.  The
 * blocking and the async path share that post-processing
 * (sluice__store_finish).  Never prints; errors go to the caller's
 * sluice_error.
 */
#include <string.h>

#include "core/algo.h"
#include "core/errors.h"
#include "policy/policy.h"
#include "store/memory/memory.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "util/alloc.h"
#include "util/clock.h"

/*
 * Every store is referenced strongly (a weak reference would not pull its
 * object out of the static archive): redis:// and redis+sentinel:// are
 * redis.c, redis+cluster:// is cluster.c.
 */

#define DEFAULT_TIMEOUT_MS 20
#define MAX_TIMEOUT_MS 3600000
#define FAIL_CLOSED_RETRY_MS 1000

struct sluice_store {
    const sluice__store_ops *ops;
    void *impl;
    int on_store_error;      /* sluice_on_store_error */
    sluice__memstore *local; /* fallback for SLUICE_FAIL_LOCAL; NULL otherwise */
};

struct sluice_async {
    sluice_store *s;
    void *conn; /* the ops' per-loop connection; NULL: decisions run inline */
};

static const sluice__store_ops *ops_for(const char *scheme)
{
    if (strcmp(scheme, "memory") == 0)
        return &sluice__memory_ops;
    if (strcmp(scheme, "redis") == 0 || strcmp(scheme, "redis+sentinel") == 0)
        return &sluice__redis_ops;
    if (strcmp(scheme, "redis+cluster") == 0)
        return &sluice__cluster_ops;
    return NULL;
}

/* ---- open, close, ping, keys --------------------------------------------- */

static int open_with(sluice_store **out, const sluice__store_ops *ops, const char *url,
                     const sluice_store_options *opts, sluice_error *err)
{
    if (!out)
        return sluice__errorf(err, SLUICE_EINVAL, "sluice_store_open: out is NULL");
    *out = NULL;
    if (!url)
        return sluice__errorf(err, SLUICE_EINVAL, "sluice_store_open: url is NULL");
    sluice_store_options o;
    if (opts)
        o = *opts;
    else
        memset(&o, 0, sizeof(o));
    if (o.timeout_ms < 0 || o.timeout_ms > MAX_TIMEOUT_MS)
        return sluice__errorf(err, SLUICE_EINVAL, "store timeout_ms must be in 0..%d",
                              MAX_TIMEOUT_MS);
    if (o.timeout_ms == 0)
        o.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (o.on_store_error < SLUICE_FAIL_OPEN || o.on_store_error > SLUICE_FAIL_LOCAL)
        return sluice__errorf(err, SLUICE_EINVAL, "on_store_error must be allow, deny or local");

    sluice__url u;
    int rc = sluice__url_parse(&u, url, err);
    if (rc)
        return rc;
    if (!ops)
        ops = ops_for(u.scheme);
    if (!ops) {
        rc = sluice__errorf(err, SLUICE_EURL, "store URL: %s:// support is not built in", u.scheme);
        goto out_url;
    }
    sluice_store *s = sluice__calloc(1, sizeof(*s));
    if (!s) {
        rc = sluice__errorf(err, SLUICE_ENOMEM, "out of memory");
        goto out_url;
    }
    s->ops = ops;
    s->on_store_error = o.on_store_error;
    rc = ops->open(&s->impl, &u, &o, err);
    if (rc)
        goto out_store;
    if (o.on_store_error == SLUICE_FAIL_LOCAL && ops != &sluice__memory_ops) {
        rc = sluice__memory_open(&s->local, NULL, err);
        if (rc)
            goto out_impl;
    }
    sluice__url_free(&u);
    *out = s;
    return 0;

out_impl:
    ops->close(s->impl);
out_store:
    sluice__free(s);
out_url:
    sluice__url_free(&u);
    return rc;
}

int sluice_store_open(sluice_store **out, const char *url, const sluice_store_options *opts,
                      sluice_error *err)
{
    return open_with(out, NULL, url, opts, err);
}

int sluice__store_open_ops(sluice_store **out, const sluice__store_ops *ops, const char *url,
                           const sluice_store_options *opts, sluice_error *err)
{
    if (!ops)
        return sluice__errorf(err, SLUICE_EINVAL, "no ops table");
    return open_with(out, ops, url, opts, err);
}

void sluice_store_close(sluice_store *s)
{
    if (!s)
        return;
    s->ops->close(s->impl);
    sluice__memory_close(s->local);
    sluice__free(s);
}

int sluice_store_ping(sluice_store *s, sluice_error *err)
{
    if (!s)
        return sluice__errorf(err, SLUICE_EINVAL, "sluice_store_ping: store is NULL");
    return s->ops->ping(s->impl, err);
}

size_t sluice_store_keys(sluice_store *s)
{
    if (!s)
        return 0;
    if (s->ops->keys)
        return s->ops->keys(s->impl);
    return sluice__memory_keys(s->local);
}

/* ---- post-processing shared by both paths -------------------------------- */

/* The decision on_store_error allow/deny makes without any state. */
static void fill_fallback(const sluice__op *op, bool allowed, sluice_decision *d)
{
    memset(d, 0, sizeof(*d));
    d->nlimits = op->nlimits;
    for (int i = 0; i < op->nlimits; i++) {
        const sluice_limit *lim = &op->limits[i];
        sluice_limit_decision *ld = &d->limits[i];
        int64_t cap = sluice__limit_capacity(lim);
        ld->allowed = allowed;
        ld->limit = cap;
        ld->remaining = allowed ? cap : 0;
        ld->retry_after_ms = allowed ? 0 : FAIL_CLOSED_RETRY_MS;
        ld->window_ms = lim->window_ms;
        ld->algorithm = lim->algorithm;
    }
    sluice__decision_combine(d);
    d->now_ms = op->now_ms == SLUICE_NOW ? sluice__clock_now_ms() : op->now_ms;
}

int sluice__store_finish(sluice_store *s, const sluice__op *op, bool shadow, int status,
                         sluice_decision *d, sluice_error *err)
{
    if (status == SLUICE_ESTORE || status == SLUICE_ETIMEOUT) {
        if (s->on_store_error == SLUICE_FAIL_LOCAL && s->local) {
            int rc = sluice__memory_decide(s->local, op, d, NULL);
            if (rc)
                return sluice__errorf(err, rc, "store failed and the local fallback: %s",
                                      rc == SLUICE_ENOMEM ? "out of memory" : "bad request");
        } else {
            fill_fallback(op, s->on_store_error != SLUICE_FAIL_CLOSED, d);
        }
        d->store_error = true;
    } else if (status != 0) {
        return status;
    }
    if (shadow && !d->allowed) {
        d->allowed = true;
        d->shadow_denied = true;
        d->retry_after_ms = 0;
    }
    return 0;
}

int sluice__store_decide_op(sluice_store *s, const sluice__op *op, bool shadow,
                            sluice_decision *out, sluice_error *err)
{
    if (!s || !op || !out)
        return sluice__errorf(err, SLUICE_EINVAL, "sluice_decide: NULL argument");
    int rc = s->ops->decide(s->impl, op, out, err);
    return sluice__store_finish(s, op, shadow, rc, out, err);
}

/* ---- building the op of a match ------------------------------------------ */

/* Fills op (its key in keybuf) and *shadow from a match; 0 or a negative code. */
static int prepare(const sluice_config *cfg, const sluice_match *m, int64_t cost, int64_t now_ms,
                   char *keybuf, sluice__op *op, bool *shadow, sluice_error *err)
{
    if (!cfg || !m)
        return sluice__errorf(err, SLUICE_EINVAL, "sluice_decide: NULL argument");
    if (cost < 0 || cost > SLUICE_COST_MAX)
        return sluice__errorf(err, SLUICE_EINVAL, "cost %lld is outside 0..%lld", (long long)cost,
                              (long long)SLUICE_COST_MAX);
    if (now_ms != SLUICE_NOW && (now_ms < 0 || now_ms > SLUICE_TIME_MAX_MS))
        return sluice__errorf(err, SLUICE_EINVAL, "now_ms %lld is outside 0..%lld",
                              (long long)now_ms, (long long)SLUICE_TIME_MAX_MS);
    if (!m->rule || m->rule_index < 0 || m->rule_index >= cfg->nrules)
        return sluice__errorf(err, SLUICE_ENORULE, "the match names no rule of this config");
    size_t rlen = strlen(m->rule);
    if (rlen == 0 || rlen > SLUICE_RULE_NAME_MAX)
        return sluice__errorf(err, SLUICE_ENORULE, "rule name of %zu bytes (1..%d)", rlen,
                              SLUICE_RULE_NAME_MAX);
    if (m->key_len == 0 || m->key_len > SLUICE_KEY_MAX)
        return sluice__errorf(err, SLUICE_EKEY, "identifier of %zu bytes (1..%d)", m->key_len,
                              SLUICE_KEY_MAX);
    const sluice__limit_set *set = sluice__config_limits(cfg, m);
    if (!set || set->n < 1 || set->n > SLUICE_MAX_LIMITS)
        return sluice__errorf(err, SLUICE_ENORULE, "rule '%s' has no limits for this match",
                              m->rule);
    /* Each tier keeps its own state.  With one key for all tiers, a client
     * that alternates its tier header would have its counters read under
     * another tier's limits (a full bucket of the larger tier, a window
     * start of another length): free 2/h and basic 3/h alternated gave
     * 2, 3, 2, 3, ... an hour.  With a key per tier it gets at most the sum
     * of its tiers' limits.  Rule and tier names cannot contain '@' or ':'
     * (rules.c), so no two (rule, tier) pairs share a prefix. */
    const char *tier = sluice__config_tier_name(cfg, m);
    size_t tlen = tier ? strlen(tier) : 0;
    if (tlen > SLUICE_TIER_NAME_MAX)
        return sluice__errorf(err, SLUICE_ENORULE, "tier name of %zu bytes (1..%d)", tlen,
                              SLUICE_TIER_NAME_MAX);
    memcpy(keybuf, m->rule, rlen);
    size_t at = rlen;
    if (tier) {
        keybuf[at++] = '@';
        memcpy(keybuf + at, tier, tlen);
        at += tlen;
    }
    keybuf[at++] = ':';
    memcpy(keybuf + at, m->key, m->key_len);
    at += m->key_len;
    keybuf[at] = '\0';
    op->key = keybuf;
    op->key_len = at;
    op->limits = set->limits;
    op->nlimits = set->n;
    op->cost = cost;
    op->now_ms = now_ms;
    *shadow = cfg->shadow || cfg->rules[m->rule_index].shadow;
    return 0;
}

int sluice_decide(sluice_store *s, const sluice_config *cfg, const sluice_match *m, int64_t cost,
                  int64_t now_ms, sluice_decision *out, sluice_error *err)
{
    char key[SLUICE_STORE_KEY_MAX + 1];
    sluice__op op;
    bool shadow;
    if (!s || !out)
        return sluice__errorf(err, SLUICE_EINVAL, "sluice_decide: NULL argument");
    int rc = prepare(cfg, m, cost, now_ms, key, &op, &shadow, err);
    if (rc)
        return rc;
    return sluice__store_decide_op(s, &op, shadow, out, err);
}

/* ---- asynchronous decisions ---------------------------------------------- */

/* What a pending async decision needs after sluice_decide_async returned:
 * a copy of the op (the local fallback decides it again) and the caller's
 * callback. */
typedef struct actx {
    sluice_store *s;
    sluice_decide_cb cb;
    void *arg;
    bool shadow;
    sluice__op op;
    sluice_limit limits[SLUICE_MAX_LIMITS];
    char key[]; /* op.key_len bytes + NUL */
} actx;

static void async_done(int status, const sluice_decision *d, void *arg)
{
    actx *c = arg;
    sluice_decision out;
    if (status == 0 && !d)
        status = SLUICE_ESTORE;
    if (status == 0)
        out = *d;
    int rc = sluice__store_finish(c->s, &c->op, c->shadow, status, &out, NULL);
    c->cb(rc, rc ? NULL : &out, c->arg);
    sluice__free(c);
}

int sluice_async_new(sluice_async **out, sluice_store *s, struct event_base *base,
                     sluice_error *err)
{
    if (!out || !s)
        return sluice__errorf(err, SLUICE_EINVAL, "sluice_async_new: NULL argument");
    *out = NULL;
    sluice_async *a = sluice__calloc(1, sizeof(*a));
    if (!a)
        return sluice__errorf(err, SLUICE_ENOMEM, "out of memory");
    a->s = s;
    if (s->ops->attach) {
        if (!base) {
            sluice__free(a);
            return sluice__errorf(err, SLUICE_EINVAL, "sluice_async_new: event base is NULL");
        }
        int rc = s->ops->attach(s->impl, base, &a->conn, err);
        if (rc) {
            sluice__free(a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

void sluice_async_free(sluice_async *a)
{
    if (!a)
        return;
    if (a->conn && a->s->ops->detach)
        a->s->ops->detach(a->conn);
    sluice__free(a);
}

int sluice_decide_async(sluice_async *a, const sluice_config *cfg, const sluice_match *m,
                        int64_t cost, int64_t now_ms, sluice_decide_cb cb, void *arg)
{
    char key[SLUICE_STORE_KEY_MAX + 1];
    sluice__op op;
    bool shadow;
    if (!a || !cb)
        return SLUICE_EINVAL;
    int rc = prepare(cfg, m, cost, now_ms, key, &op, &shadow, NULL);
    if (rc)
        return rc;
    return sluice__store_decide_op_async(a, &op, shadow, cb, arg);
}

int sluice__store_decide_op_async(sluice_async *a, const sluice__op *opp, bool shadow,
                                  sluice_decide_cb cb, void *arg)
{
    int rc;
    if (!a || !opp || !cb)
        return SLUICE_EINVAL;
    sluice__op op = *opp;
    sluice_store *s = a->s;
    if (!a->conn || !s->ops->decide_async) {
        sluice_decision d;
        rc = sluice__store_decide_op(s, &op, shadow, &d, NULL);
        if (rc)
            return rc;
        cb(0, &d, arg);
        return 0;
    }
    actx *c = sluice__malloc(sizeof(*c) + op.key_len + 1);
    if (!c)
        return SLUICE_ENOMEM;
    c->s = s;
    c->cb = cb;
    c->arg = arg;
    c->shadow = shadow;
    c->op = op;
    memcpy(c->limits, op.limits, (size_t)op.nlimits * sizeof(sluice_limit));
    memcpy(c->key, op.key, op.key_len + 1);
    c->op.limits = c->limits;
    c->op.key = c->key;
    rc = s->ops->decide_async(a->conn, &c->op, async_done, c);
    if (rc == SLUICE_ESTORE || rc == SLUICE_ETIMEOUT) {
        /* the store refused at once: on_store_error decides, cb runs now */
        async_done(rc, NULL, c);
        return 0;
    }
    if (rc < 0)
        sluice__free(c);
    return rc < 0 ? rc : 0;
}
