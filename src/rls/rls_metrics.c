/* SPDX-License-Identifier: MIT */
/*
 * rls_metrics.c - the descriptor decision counters behind sluiced's
 * /metrics, in its naming (sluice_rls_*), modelled on envoyproxy/ratelimit's
 * ratelimit_service_rate_limit_{total_hits,over_limit,near_limit,
 * within_limit,shadow_mode}: counts are in hits, not requests, as upstream.
 * near_limit counts hits admitted above 80% of requests_per_unit (upstream's
 * default NEAR_LIMIT_RATIO).  Slots are found by (domain, descriptor) in an
 * open-addressing index read without a lock (a slot is filled before its
 * index entry is published with release order, and never changes after);
 * only a miss takes the mutex to insert.  Counters are relaxed atomics.  A full table counts into one
 * descriptor="_other" slot per process.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rls/rls_metrics.h"
#include "util/alloc.h"
#include "util/siphash.h"

enum { R_TOTAL = 0, R_OVER, R_NEAR, R_WITHIN, R_SHADOW, R_N };
static const char *const res_name[R_N] = {"total_hits", "over_limit", "near_limit",
                                          "within_limit", "shadow_mode"};

typedef struct mslot {
    char *domain;
    char *descriptor;
    uint64_t hash;
    atomic_uint_fast64_t c[R_N];
} mslot;

static mslot slots[SLUICE_RLS_METRIC_SLOTS + 1]; /* the last is "_other" */
static atomic_int nslots;
static atomic_int index_of[2 * SLUICE_RLS_METRIC_SLOTS]; /* open addressing: slot+1, 0 empty */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint_fast64_t unknown_domain, refused;

static const uint8_t mkey[16] = "sluice-rls-metr";

static uint64_t hash2(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char buf[1024];
    if (la + lb + 1 > sizeof(buf))
        return sluice__siphash(mkey, a, la) * 31 + sluice__siphash(mkey, b, lb);
    memcpy(buf, a, la);
    buf[la] = '\0';
    memcpy(buf + la + 1, b, lb);
    return sluice__siphash(mkey, buf, la + lb + 1);
}

/* Probes for (domain, desc); returns the slot, or NULL with *pos the empty entry. */
static mslot *probe(const char *domain, const char *desc, uint64_t h, size_t *pos)
{
    size_t mask = 2 * SLUICE_RLS_METRIC_SLOTS - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        int s = atomic_load_explicit(&index_of[i], memory_order_acquire);
        if (s == 0) {
            *pos = i;
            return NULL;
        }
        mslot *m = &slots[s - 1];
        if (m->hash == h && strcmp(m->domain, domain) == 0 && strcmp(m->descriptor, desc) == 0)
            return m;
    }
}

static mslot *find(const char *domain, const char *desc)
{
    uint64_t h = hash2(domain, desc);
    size_t pos;
    mslot *m = probe(domain, desc, h, &pos);
    if (m)
        return m;
    if (atomic_load_explicit(&nslots, memory_order_relaxed) >= SLUICE_RLS_METRIC_SLOTS)
        return &slots[SLUICE_RLS_METRIC_SLOTS]; /* full: no lock for the overflow */
    pthread_mutex_lock(&lock);
    m = probe(domain, desc, h, &pos); /* another thread may have inserted it */
    if (!m) {
        m = &slots[SLUICE_RLS_METRIC_SLOTS];
        char *d = atomic_load(&nslots) < SLUICE_RLS_METRIC_SLOTS ? sluice__strdup(domain) : NULL;
        char *k = d ? sluice__strdup(desc) : NULL;
        if (d && k) {
            m = &slots[nslots];
            m->domain = d;
            m->descriptor = k;
            m->hash = h;
            int n = atomic_load(&nslots) + 1;
            atomic_store(&nslots, n);
            atomic_store_explicit(&index_of[pos], n, memory_order_release);
        } else {
            sluice__free(d);
            sluice__free(k);
        }
    }
    pthread_mutex_unlock(&lock);
    return m;
}

static void add(mslot *m, int r, uint64_t v)
{
    if (v)
        atomic_fetch_add_explicit(&m->c[r], v, memory_order_relaxed);
}

void *sluice__rls_metrics_slot(const char *domain, const char *descriptor)
{
    return find(domain, descriptor);
}

void sluice__rls_metrics_count(const char *domain, const char *descriptor, int64_t hits,
                               bool over, bool shadow, uint32_t remaining, uint32_t rpu)
{
    sluice__rls_metrics_count_slot(find(domain, descriptor), hits, over, shadow, remaining, rpu);
}

void sluice__rls_metrics_count_slot(void *slot, int64_t hits, bool over, bool shadow,
                                    uint32_t remaining, uint32_t rpu)
{
    mslot *m = slot;
    uint64_t h = hits > 0 ? (uint64_t)hits : 0;
    add(m, R_TOTAL, h);
    if (over) {
        add(m, R_OVER, h);
        if (shadow)
            add(m, R_SHADOW, h);
        return;
    }
    add(m, R_WITHIN, h);
    uint64_t near = (uint64_t)rpu * 8 / 10;
    uint64_t after = (uint64_t)rpu - remaining;
    if (after > near)
        add(m, R_NEAR, after - near < h ? after - near : h);
}

void sluice__rls_metrics_unknown_domain(const char *domain)
{
    (void)domain;
    atomic_fetch_add_explicit(&unknown_domain, 1, memory_order_relaxed);
}

void sluice__rls_metrics_refused(const char *domain)
{
    (void)domain;
    atomic_fetch_add_explicit(&refused, 1, memory_order_relaxed);
}

void sluice__rls_metrics_reset(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i <= SLUICE_RLS_METRIC_SLOTS; i++)
        for (int r = 0; r < R_N; r++)
            atomic_store(&slots[i].c[r], 0);
    pthread_mutex_unlock(&lock);
    atomic_store(&unknown_domain, 0);
    atomic_store(&refused, 0);
}

/* ---- rendering ------------------------------------------------------------------- */

typedef struct obuf {
    char *p;
    size_t len, cap;
    bool ok;
} obuf;

static void put_mem(obuf *o, const char *s, size_t n)
{
    if (!o->ok)
        return;
    if (n > o->cap - o->len) {
        size_t cap = o->cap * 2 + n;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->ok = false;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_s(obuf *o, const char *s)
{
    put_mem(o, s, strlen(s));
}

/* A label value: backslash, double quote and newline escaped (format 0.0.4). */
static void put_label(obuf *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            put_mem(o, "\\", 1), put_mem(o, s, 1);
        else if (*s == '\n')
            put_mem(o, "\\n", 2);
        else
            put_mem(o, s, 1);
    }
}

static void put_u64(obuf *o, uint64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof(t), "%llu", (unsigned long long)v);
    put_mem(o, t, (size_t)n);
}

char *sluice__rls_metrics_render(size_t *len)
{
    obuf o = {malloc(4096), 0, 4096, true};
    if (!o.p)
        return NULL;
    put_s(&o, "# HELP sluice_rls_hits_total Envoy RLS descriptor hits by domain, descriptor "
              "and result (total_hits, within_limit, near_limit, over_limit, shadow_mode).\n"
              "# TYPE sluice_rls_hits_total counter\n");
    pthread_mutex_lock(&lock);
    int n = nslots;
    pthread_mutex_unlock(&lock);
    for (int i = 0; i <= n; i++) {
        mslot *m = i < n ? &slots[i] : &slots[SLUICE_RLS_METRIC_SLOTS];
        uint64_t v[R_N];
        for (int r = 0; r < R_N; r++)
            v[r] = atomic_load(&m->c[r]);
        if (i == n && v[R_TOTAL] == 0)
            break;
        for (int r = 0; r < R_N; r++) {
            put_s(&o, "sluice_rls_hits_total{domain=\"");
            put_label(&o, i < n ? m->domain : "_other");
            put_s(&o, "\",descriptor=\"");
            put_label(&o, i < n ? m->descriptor : "_other");
            put_s(&o, "\",result=\"");
            put_s(&o, res_name[r]);
            put_s(&o, "\"} ");
            put_u64(&o, v[r]);
            put_s(&o, "\n");
        }
    }
    put_s(&o, "# HELP sluice_rls_domain_not_found_total Envoy RLS requests for a domain no "
              "descriptor file names.\n# TYPE sluice_rls_domain_not_found_total counter\n"
              "sluice_rls_domain_not_found_total ");
    put_u64(&o, atomic_load(&unknown_domain));
    put_s(&o, "\n# HELP sluice_rls_refused_uncharged_total Envoy RLS requests refused by "
              "descriptors_semantics exact without charging.\n"
              "# TYPE sluice_rls_refused_uncharged_total counter\n"
              "sluice_rls_refused_uncharged_total ");
    put_u64(&o, atomic_load(&refused));
    put_s(&o, "\n");
    put_mem(&o, "", 1);
    if (!o.ok) {
        free(o.p);
        return NULL;
    }
    *len = o.len - 1;
    return o.p;
}
