/* SPDX-License-Identifier: MIT */
/*
 * rls_match.c - finding the limit of one request descriptor as
 * envoyproxy/ratelimit does (src/config/config_impl.go GetLimit), and naming
 * its store key and its metrics label.
 *
 * Matching, per entry in order, among the children of the level reached so
 * far (binary search in the level's index, rls_int.h): an exact key and value; else the wildcard values of that key in file
 * order ('*' is any run of bytes, several allowed); else the bare key (no
 * value: any value).  A limit applies only when it sits at the level of the
 * descriptor's last entry; a level without children ends the walk.  A
 * descriptor's `limit` override replaces the configured limit (never shadow)
 * once the domain is known.
 *
 * Store keys (docs/envoy-ratelimit.md): "rls/<unit>/<len>:<domain>" then
 * "/<len>:<key><len>:<value>" per entry, lengths in decimal, so no two
 * descriptors share a key by accident of their bytes; a share_threshold
 * wildcard puts its pattern in place of the value (one counter for all).
 * Rule keys are "<rule>:<identifier>" with a rule name of [A-Za-z0-9_.-]
 * only, so a '/' before the first ':' can never be a rule's key.  A key
 * longer than SLUICE_STORE_KEY_MAX becomes "rls/<unit>/h:<128-bit SipHash
 * in hex>" (fixed SipHash keys: every sluiced on one Redis agrees).
 */
#include <stdio.h>
#include <string.h>

#include "rls/rls_int.h"
#include "util/alloc.h"
#include "util/siphash.h"

bool sluice__rls_glob(const char *p, const char *s, size_t n)
{
    /* iterative glob with one backtrack point: linear in practice, never recursive */
    size_t pi = 0, si = 0, star = (size_t)-1, mark = 0;
    size_t pn = strlen(p);
    while (si < n) {
        if (pi < pn && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < pn && p[pi] == s[si]) {
            pi++;
            si++;
        } else if (star != (size_t)-1) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < pn && p[pi] == '*')
        pi++;
    return pi == pn;
}

static bool eq(const char *a, const char *b, size_t blen)
{
    return strlen(a) == blen && (blen == 0 || memcmp(a, b, blen) == 0);
}

/* Binary search of v (kids indices sorted by key, then value when with_value). */
static const sluice__rls_node *search(const sluice__rls_node *kids, const int *v, int n,
                                      const sluice__rls_entry *e, bool with_value)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const sluice__rls_node *x = &kids[v[mid]];
        int c = sluice__rls_lexcmp(x->key, strlen(x->key), e->key, e->key_len);
        if (c == 0 && with_value)
            c = sluice__rls_lexcmp(x->value, strlen(x->value), e->value ? e->value : "",
                                   e->value_len);
        if (c == 0)
            return x;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static const sluice__rls_node *find(const sluice__rls_node *kids, const sluice__rls_index *ix,
                                    const sluice__rls_entry *e)
{
    const sluice__rls_node *x = search(kids, ix->kv, ix->nkv, e, true);
    if (x)
        return x;
    for (int i = 0; i < ix->nwild; i++) {
        x = &kids[ix->wild[i]];
        if (eq(x->key, e->key, e->key_len) && sluice__rls_glob(x->value, e->value, e->value_len))
            return x;
    }
    return search(kids, ix->bare, ix->nbare, e, false);
}

/* A bounded appender; ok turns false when something does not fit. */
typedef struct kbuf {
    char *p;
    size_t len, cap;
    bool ok;
} kbuf;

static void kb_mem(kbuf *b, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (!b->ok || n > b->cap - b->len) {
        b->ok = false;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* "<lead><n><trail>" (lead 0: none); decimal by hand: this runs per entry per decision */
static void kb_num(kbuf *b, size_t n, char lead, char trail)
{
    char t[32];
    char *q = t + sizeof(t);
    *--q = trail;
    do {
        *--q = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    if (lead)
        *--q = lead;
    kb_mem(b, q, (size_t)(t + sizeof(t) - q));
}

static void kb_len(kbuf *b, size_t n, char lead)
{
    kb_num(b, n, lead, ':');
}

static const uint8_t hash_k1[16] = "sluice-rls-key-1";
static const uint8_t hash_k2[16] = "sluice-rls-key-2";

/* Writes the full key into b (which may be too small: b->ok then turns false). */
static void put_key(kbuf *b, int unit, const char *dname, size_t dlen,
                    const sluice__rls_descriptor *d, const sluice__rls_node *const *path)
{
    kb_mem(b, "rls/", 4);
    kb_num(b, (size_t)unit, 0, '/');
    kb_len(b, dlen, 0);
    kb_mem(b, dname, dlen);
    for (int i = 0; i < d->nentries; i++) {
        const sluice__rls_entry *e = &d->entries[i];
        kb_len(b, e->key_len, '/');
        kb_mem(b, e->key, e->key_len);
        const sluice__rls_node *x = path ? path[i] : NULL;
        if (x && x->share_threshold) {
            kb_len(b, strlen(x->value), 0);
            kb_mem(b, x->value, strlen(x->value));
        } else {
            kb_len(b, e->value_len, 0);
            kb_mem(b, e->value, e->value_len);
        }
    }
}

static int build_key(sluice__rls_hit *h, int unit, const char *dname, size_t dlen,
                     const sluice__rls_descriptor *d, const sluice__rls_node *const *path)
{
    kbuf b = {h->key, 0, SLUICE_STORE_KEY_MAX, true};
    put_key(&b, unit, dname, dlen, d, path);
    if (!b.ok) {
        /* every part is bounded by SLUICE_RLS_STR_MAX (checked by the caller) */
        size_t cap = (size_t)(d->nentries * 2 + 1) * (SLUICE_RLS_STR_MAX + 24) + 32;
        char *big = sluice__malloc(cap);
        if (!big)
            return SLUICE_ENOMEM;
        kbuf f = {big, 0, cap, true};
        put_key(&f, unit, dname, dlen, d, path);
        uint64_t a = sluice__siphash(hash_k1, big, f.len);
        uint64_t c = sluice__siphash(hash_k2, big, f.len);
        sluice__free(big);
        int w = snprintf(h->key, sizeof(h->key), "rls/%d/h:%016llx%016llx", unit,
                         (unsigned long long)a, (unsigned long long)c);
        b.len = (size_t)w;
    }
    h->key_len = b.len;
    h->key[h->key_len] = '\0';
    return 0;
}

/* The metrics label: the configured path ("key1_value1.subkey1"), the request's
 * own values where value_to_metric says so, every value with detailed_metric. */
static void build_metric(sluice__rls_hit *h, const sluice__rls_descriptor *d,
                         const sluice__rls_node *const *path, int depth)
{
    kbuf b = {h->metric, 0, sizeof(h->metric) - 1, true};
    bool detailed = depth > 0 && path && path[depth - 1]->detailed_metric;
    h->metric_static = path && !detailed;
    for (int i = 0; i < depth; i++) {
        const sluice__rls_entry *e = &d->entries[i];
        const sluice__rls_node *x = path ? path[i] : NULL;
        if (i)
            kb_mem(&b, ".", 1);
        kb_mem(&b, e->key, e->key_len);
        if (x && (detailed || (x->value_to_metric && !x->share_threshold))) {
            h->metric_static = false;
            kb_mem(&b, "_", 1);
            kb_mem(&b, e->value, e->value_len);
        } else if (x && x->value) {
            kb_mem(&b, "_", 1);
            kb_mem(&b, x->value, strlen(x->value));
        }
    }
    if (!b.ok) /* truncated: still one bounded label */
        b.len = sizeof(h->metric) - 1;
    h->metric[b.len] = '\0';
    h->metric_len = b.len;
}

int sluice__rls_match(const sluice__rls_domain *domain, const char *dname, size_t dlen,
                      const sluice__rls_descriptor *d, sluice__rls_hit *h)
{
    h->domain = domain;
    h->limit = NULL;
    h->node = NULL;
    h->shadow = h->quota = false;
    h->key_len = h->metric_len = 0;
    h->key[0] = h->metric[0] = '\0';
    if (!d || d->nentries < 1 || d->nentries > SLUICE_RLS_MAX_ENTRIES ||
        dlen > SLUICE_RLS_STR_MAX)
        return SLUICE_EINVAL;
    for (int i = 0; i < d->nentries; i++)
        if (!d->entries[i].key || d->entries[i].key_len == 0 ||
            d->entries[i].key_len > SLUICE_RLS_STR_MAX ||
            d->entries[i].value_len > SLUICE_RLS_STR_MAX ||
            (!d->entries[i].value && d->entries[i].value_len))
            return SLUICE_EINVAL;
    if (!domain)
        return 0;
    if (d->has_limit) {
        int64_t s = sluice__rls_unit_seconds(d->limit_unit);
        if (s == 0)
            return SLUICE_EINVAL;
        memset(&h->override, 0, sizeof(h->override));
        h->override.rpu = d->limit_requests_per_unit;
        h->override.unit = d->limit_unit;
        h->override.window_ms = s * 1000;
        h->limit = &h->override;
        build_metric(h, d, NULL, d->nentries);
        return build_key(h, d->limit_unit, dname, dlen, d, NULL);
    }
    const sluice__rls_node *path[SLUICE_RLS_MAX_ENTRIES];
    const sluice__rls_node *kids = domain->kids;
    const sluice__rls_index *ix = &domain->idx;
    int depth = 0;
    for (int i = 0; i < d->nentries; i++) {
        const sluice__rls_node *x = find(kids, ix, &d->entries[i]);
        if (!x)
            break;
        path[depth++] = x;
        if (x->has_limit && i == d->nentries - 1) {
            h->limit = &x->limit;
            h->node = x;
        }
        if (x->nkids == 0)
            break;
        kids = x->kids;
        ix = &x->idx;
    }
    if (!h->limit)
        return 0;
    h->shadow = h->node->shadow;
    h->quota = h->node->quota;
    build_metric(h, d, path, depth);
    return build_key(h, h->limit->unit, dname, dlen, d, path);
}
