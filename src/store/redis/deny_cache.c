/* SPDX-License-Identifier: MIT */
/*
 * deny_cache.c - the exact local deny cache of the Redis clients (contract
 * and clock reasoning in deny_cache.h).  This file holds the per-algorithm
 * horizon of a denial, the prediction of the fields within it, the clock
 * conversion, and the bounded table.  No I/O; one lock per stripe of sets.
 *
 * Per algorithm, for a request of judged cost cq = max(cost, 1) denied at
 * server time t0 with fields (remaining r, reset_after s, retry_after y),
 * and no other traffic after t0 (formulas of src/core and sluice.lua):
 *
 * - Every algorithm denies exactly while remaining < cq (fixed_window:
 *   L - n < cq; buckets: floor((B*W - x)/W) < cq; sliding_window: the
 *   weighted condition fails iff floor(((L-n)*W - p*(W-e))/W) < cq, or
 *   n + cq > L; sliding_log: L - S < cq), and without traffic remaining
 *   never decreases.  So while denied, r <= cq - 1, and r = cq - 1 stays
 *   r for the whole denial.  For cq = 1 that is always the case (r = 0).
 * - retry_after is "the earliest time the condition holds" minus t: y - dt,
 *   the denial lasting exactly y ms.  reset_after of a denying limit is an
 *   end of window or of the queue, s - dt, never reaching 0 before the
 *   denial ends (s >= y): fixed_window (i+1)*W - t; buckets ceil(x(t)/L)
 *   with x(t) = x - dt*L > 0; sliding_window (j+2)*W - t, also across
 *   the window boundary (n then weighs as the previous count), or
 *   (j+1)*W - t when only p weighs (its denial ends in window j);
 *   sliding_log newest + W - t (the newest entry outlives the denial).
 * - A denying limit with r < cq - 1: fixed_window keeps n for its window
 *   (r constant until y); the buckets' remaining rises when x falls past a
 *   multiple of W, and the reply pins x to (L*(s-1), L*s] and
 *   (B*W - W*(r+1), B*W - W*r], so r is certain for ceil(K/L) ms with
 *   K = W*(r+1) - B*W + x_lo (x_lo the least x that fits); sliding_window
 *   (p unknown) and sliding_log (entry times unknown) are not cached.
 * - A limit that admits within a denied multi-limit decision reports its
 *   unchanged state as a peek: remaining = capacity means untouched
 *   (constant forever, reset_after 0); fixed_window keeps r until its
 *   window ends (s ms); the buckets keep r for ceil(K/L) ms as above and
 *   reset_after is max(0, s - dt) exactly; sliding_window and sliding_log
 *   are not cached.
 * - retry_after -1 (cost above capacity): never cached (the denial is
 *   permanent but the other fields follow the key's draining).
 * The horizon of a decision is the least over its limits.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/algo.h"
#include "store/redis/deny_cache.h"
#include "util/alloc.h"
#include "util/siphash.h"

#define NSTRIPES 64
#define H_INF INT64_MAX

/* One cached denial; limits[], decisions[] and the key follow in data[]. */
typedef struct dc_entry {
    uint64_t hash;
    uint64_t used; /* LRU stamp */
    int64_t cost;
    int64_t ts_ms;       /* server time of the denial */
    int64_t h_ms;        /* horizon */
    int64_t recv_ns;     /* local time the reply was read */
    int64_t deadline_ns; /* last local instant the denial is certain */
    bool explicit_time;  /* op->now_ms was given: no clock conversion */
    int nlimits;
    size_t key_len;
    _Alignas(8) unsigned char data[];
} dc_entry;

struct sluice__deny_cache {
    unsigned mask; /* nsets - 1 */
    atomic_uint_fast64_t tick;
    atomic_uint_fast64_t hits;
    atomic_uint_fast64_t entries;
    pthread_mutex_t locks[NSTRIPES];
    dc_entry **ways; /* nsets * SLUICE_DENY_CACHE_WAYS */
};

static atomic_uint_fast64_t g_hits, g_entries;

static sluice_limit *e_limits(dc_entry *e)
{
    return (sluice_limit *)(void *)e->data;
}

static sluice_limit_decision *e_dec(dc_entry *e)
{
    return (sluice_limit_decision *)(void *)(e->data + (size_t)e->nlimits * sizeof(sluice_limit));
}

static char *e_key(dc_entry *e)
{
    return (char *)(e->data +
                    (size_t)e->nlimits * (sizeof(sluice_limit) + sizeof(sluice_limit_decision)));
}

/* ---- the pure parts --------------------------------------------------- */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static bool is_bucket(int alg)
{
    return alg == SLUICE_TOKEN_BUCKET || alg == SLUICE_LEAKY_BUCKET;
}

/* How long a bucket's remaining r is certain (see the file comment). */
static int64_t bucket_rem_horizon(const sluice_limit *lim, const sluice_limit_decision *x)
{
    int64_t L = lim->limit, W = lim->window_ms, B = sluice__limit_capacity(lim);
    int64_t r = x->remaining, s = x->reset_after_ms;
    int64_t x_lo = max64(0, max64(L * (s - 1) + 1, B * W - W * (r + 1) + 1));
    int64_t k = W * (r + 1) - B * W + x_lo;
    return k > 0 ? (k + L - 1) / L : 0;
}

/* One limit's horizon; 0 = not cacheable. */
static int64_t limit_horizon(const sluice_limit *lim, int64_t cq, const sluice_limit_decision *x)
{
    int64_t cap = sluice__limit_capacity(lim);
    int alg = lim->algorithm;
    /* a reply that does not fit the limit is not trusted */
    if (x->limit != cap || x->remaining < 0 || x->remaining > cap || x->reset_after_ms < 0 ||
        x->delay_ms != 0 || x->window_ms != lim->window_ms || x->algorithm != alg)
        return 0;
    if (is_bucket(alg) &&
        x->reset_after_ms > (cap * lim->window_ms) / lim->limit + 1) /* x <= B*W */
        return 0;
    if (!x->allowed) {
        if (x->retry_after_ms < 1 || x->reset_after_ms < x->retry_after_ms || x->remaining > cq - 1)
            return 0;
        if (x->remaining == cq - 1 || alg == SLUICE_FIXED_WINDOW)
            return x->retry_after_ms;
        if (is_bucket(alg))
            return min64(x->retry_after_ms, bucket_rem_horizon(lim, x));
        return 0;
    }
    if (x->retry_after_ms != 0)
        return 0;
    if (x->remaining == cap)
        return x->reset_after_ms == 0 ? H_INF : 0;
    if (alg == SLUICE_FIXED_WINDOW)
        return x->reset_after_ms;
    if (is_bucket(alg))
        return bucket_rem_horizon(lim, x);
    return 0;
}

int64_t sluice__deny_horizon(const sluice_limit *limits, int n, int64_t cost,
                             const sluice_decision *d)
{
    if (!d || d->allowed || n < 1 || n > SLUICE_MAX_LIMITS || d->nlimits != n || d->now_ms < 0 ||
        d->now_ms > SLUICE_TIME_MAX_MS || cost < 0 || cost > SLUICE_COST_MAX)
        return 0;
    int64_t cq = cost > 0 ? cost : 1;
    int64_t h = SLUICE_DENY_CACHE_MAX_MS;
    bool denied = false;
    for (int i = 0; i < n; i++) {
        h = min64(h, limit_horizon(&limits[i], cq, &d->limits[i]));
        denied = denied || !d->limits[i].allowed;
    }
    return denied ? max64(h, 0) : 0;
}

void sluice__deny_predict(const sluice_decision *d0, int64_t dt, sluice_decision *out)
{
    memset(out, 0, sizeof(*out));
    out->nlimits = d0->nlimits;
    out->now_ms = d0->now_ms + dt;
    for (int i = 0; i < d0->nlimits; i++) {
        sluice_limit_decision *x = &out->limits[i];
        *x = d0->limits[i];
        if (x->allowed) {
            x->reset_after_ms = max64(0, x->reset_after_ms - dt);
        } else {
            x->reset_after_ms -= dt;
            x->retry_after_ms -= dt;
        }
    }
    sluice__decision_combine(out);
}

int64_t sluice__deny_deadline_ns(int64_t sent_ns, int64_t h_ms)
{
    /* server(l) < ts + 1 + (l - a)(1 + 1/D) <= ts + h
     * iff l - a <= (h - 1) ms * D / (D + 1) */
    if (h_ms < 2)
        return INT64_MIN;
    h_ms = min64(h_ms, SLUICE_DENY_CACHE_MAX_MS);
    int64_t span = (h_ms - 1) * 1000000 * SLUICE_DENY_CACHE_DRIFT / (SLUICE_DENY_CACHE_DRIFT + 1);
    return sent_ns + span;
}

int64_t sluice__deny_server_ms(int64_t ts_ms, int64_t recv_ns, int64_t now_ns)
{
    /* server(l) >= ts + (l - b)(1 - 1/D), floored to whole ms */
    if (now_ns < recv_ns)
        return -1;
    int64_t el = now_ns - recv_ns;
    el = min64(el, (int64_t)SLUICE_DENY_CACHE_MAX_MS * 2000000); /* no overflow below */
    return ts_ms +
           el * (SLUICE_DENY_CACHE_DRIFT - 1) / ((int64_t)SLUICE_DENY_CACHE_DRIFT * 1000000);
}

/* ---- the table -------------------------------------------------------- */

sluice__deny_cache *sluice__deny_cache_new(unsigned nsets)
{
    if (nsets == 0)
        nsets = SLUICE_DENY_CACHE_SETS;
    if ((nsets & (nsets - 1)) != 0 || nsets > (1u << 20))
        return NULL;
    sluice__deny_cache *dc = sluice__calloc(1, sizeof(*dc));
    if (!dc)
        return NULL;
    dc->ways = sluice__calloc((size_t)nsets * SLUICE_DENY_CACHE_WAYS, sizeof(dc_entry *));
    if (!dc->ways) {
        sluice__free(dc);
        return NULL;
    }
    dc->mask = nsets - 1;
    for (int i = 0; i < NSTRIPES; i++)
        pthread_mutex_init(&dc->locks[i], NULL);
    return dc;
}

void sluice__deny_cache_free(sluice__deny_cache *dc)
{
    if (!dc)
        return;
    size_t n = ((size_t)dc->mask + 1) * SLUICE_DENY_CACHE_WAYS;
    for (size_t i = 0; i < n; i++)
        sluice__free(dc->ways[i]);
    atomic_fetch_sub(&g_entries, atomic_load(&dc->entries));
    for (int i = 0; i < NSTRIPES; i++)
        pthread_mutex_destroy(&dc->locks[i]);
    sluice__free(dc->ways);
    sluice__free(dc);
}

int64_t sluice__deny_cache_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t sluice__deny_cache_entries(sluice__deny_cache *dc)
{
    return dc ? atomic_load(&dc->entries) : 0;
}

uint64_t sluice__deny_cache_hits(sluice__deny_cache *dc)
{
    return dc ? atomic_load(&dc->hits) : 0;
}

void sluice__deny_cache_totals(uint64_t *hits, uint64_t *entries)
{
    *hits = atomic_load(&g_hits);
    *entries = atomic_load(&g_entries);
}

static bool limits_equal(const sluice_limit *a, const sluice_limit *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (a[i].algorithm != b[i].algorithm || a[i].limit != b[i].limit ||
            a[i].window_ms != b[i].window_ms || a[i].burst != b[i].burst)
            return false;
    }
    return true;
}

/* True when e answers exactly op: same key, limits, cost and kind of time. */
static bool entry_matches(dc_entry *e, uint64_t hash, const sluice__op *op)
{
    return e->hash == hash && e->key_len == op->key_len && e->cost == op->cost &&
           e->nlimits == op->nlimits && e->explicit_time == (op->now_ms != SLUICE_NOW) &&
           memcmp(e_key(e), op->key, op->key_len) == 0 &&
           limits_equal(e_limits(e), op->limits, op->nlimits);
}

static bool entry_same_key(dc_entry *e, uint64_t hash, const sluice__op *op)
{
    return e->hash == hash && e->key_len == op->key_len &&
           memcmp(e_key(e), op->key, op->key_len) == 0;
}

static dc_entry **set_of(sluice__deny_cache *dc, uint64_t hash, pthread_mutex_t **lock)
{
    size_t set = (size_t)(hash & dc->mask);
    *lock = &dc->locks[set % NSTRIPES];
    return dc->ways + set * SLUICE_DENY_CACHE_WAYS;
}

/* Takes e out of its way (under the lock); the caller frees it. */
static dc_entry *way_take(sluice__deny_cache *dc, dc_entry **way)
{
    dc_entry *e = *way;
    if (e) {
        *way = NULL;
        atomic_fetch_sub(&dc->entries, 1);
        atomic_fetch_sub(&g_entries, 1);
    }
    return e;
}

static uint64_t key_hash(const sluice__op *op)
{
    return sluice__siphash(sluice__hash_key(), op->key, op->key_len);
}

bool sluice__deny_cache_lookup(sluice__deny_cache *dc, const sluice__op *op, int64_t now_ns,
                               sluice_decision *out)
{
    if (!dc || !op || !op->key || op->key_len > SLUICE_STORE_KEY_MAX || op->nlimits < 1 ||
        op->nlimits > SLUICE_MAX_LIMITS)
        return false;
    /* an empty cache answers nothing: no hash, no lock (a miss only asks Redis) */
    if (atomic_load_explicit(&dc->entries, memory_order_relaxed) == 0)
        return false;
    uint64_t hash = key_hash(op);
    pthread_mutex_t *lock;
    dc_entry **set = set_of(dc, hash, &lock);
    dc_entry *stale = NULL;
    bool hit = false;
    pthread_mutex_lock(lock);
    for (int w = 0; w < SLUICE_DENY_CACHE_WAYS; w++) {
        dc_entry *e = set[w];
        if (!e || !entry_matches(e, hash, op))
            continue;
        int64_t t;
        if (e->explicit_time) {
            t = op->now_ms; /* the caller's clock is the server's */
            if (t < e->ts_ms)
                break; /* before the denial: ask Redis, keep the entry */
        } else {
            if (now_ns > e->deadline_ns) {
                stale = way_take(dc, &set[w]);
                break;
            }
            t = sluice__deny_server_ms(e->ts_ms, e->recv_ns, now_ns);
            if (t < e->ts_ms)
                break; /* read before the reply arrived (another thread) */
        }
        int64_t dt = t - e->ts_ms;
        if (dt >= e->h_ms) {
            stale = way_take(dc, &set[w]);
            break;
        }
        sluice_decision d0;
        d0.nlimits = e->nlimits;
        d0.now_ms = e->ts_ms;
        memcpy(d0.limits, e_dec(e), (size_t)e->nlimits * sizeof(sluice_limit_decision));
        sluice__deny_predict(&d0, dt, out);
        e->used = atomic_fetch_add_explicit(&dc->tick, 1, memory_order_relaxed);
        hit = true;
        break;
    }
    pthread_mutex_unlock(lock);
    sluice__free(stale);
    if (hit) {
        atomic_fetch_add_explicit(&dc->hits, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_hits, 1, memory_order_relaxed);
    }
    return hit;
}

/* Drops every entry of op's key: this client admitted a request on it. */
static void forget_key(sluice__deny_cache *dc, const sluice__op *op)
{
    /* nothing cached (the common case: no key is being denied): skip the
     * hash and the lock.  An entry recorded concurrently is as if recorded
     * just after this forget, which the lock would not prevent either. */
    if (atomic_load_explicit(&dc->entries, memory_order_relaxed) == 0)
        return;
    uint64_t hash = key_hash(op);
    pthread_mutex_t *lock;
    dc_entry **set = set_of(dc, hash, &lock);
    dc_entry *gone[SLUICE_DENY_CACHE_WAYS] = {0};
    pthread_mutex_lock(lock);
    for (int w = 0; w < SLUICE_DENY_CACHE_WAYS; w++) {
        if (set[w] && entry_same_key(set[w], hash, op))
            gone[w] = way_take(dc, &set[w]);
    }
    pthread_mutex_unlock(lock);
    for (int w = 0; w < SLUICE_DENY_CACHE_WAYS; w++)
        sluice__free(gone[w]);
}

static dc_entry *entry_new(const sluice__op *op, const sluice_decision *d, uint64_t hash)
{
    size_t n = (size_t)op->nlimits;
    dc_entry *e = sluice__malloc(
        sizeof(*e) + n * (sizeof(sluice_limit) + sizeof(sluice_limit_decision)) + op->key_len);
    if (!e)
        return NULL;
    e->hash = hash;
    e->cost = op->cost;
    e->nlimits = op->nlimits;
    e->key_len = op->key_len;
    e->explicit_time = op->now_ms != SLUICE_NOW;
    e->ts_ms = d->now_ms;
    memcpy(e_limits(e), op->limits, n * sizeof(sluice_limit));
    memcpy(e_dec(e), d->limits, n * sizeof(sluice_limit_decision));
    memcpy(e_key(e), op->key, op->key_len);
    return e;
}

void sluice__deny_cache_record(sluice__deny_cache *dc, const sluice__op *op, int64_t sent_ns,
                               int64_t recv_ns, const sluice_decision *d)
{
    if (!dc || !op || !d || !op->key || op->key_len > SLUICE_STORE_KEY_MAX)
        return;
    if (d->allowed) {
        if (op->cost > 0)
            forget_key(dc, op);
        return;
    }
    int64_t h = sluice__deny_horizon(op->limits, op->nlimits, op->cost, d);
    if (h <= 0)
        return;
    int64_t deadline = INT64_MAX;
    if (op->now_ms == SLUICE_NOW) {
        deadline = sluice__deny_deadline_ns(sent_ns, h);
        if (deadline <= recv_ns)
            return; /* over before it could be used */
    }
    uint64_t hash = key_hash(op);
    dc_entry *e = entry_new(op, d, hash);
    if (!e)
        return; /* out of memory: simply not cached */
    e->h_ms = h;
    e->recv_ns = recv_ns;
    e->deadline_ns = deadline;
    e->used = atomic_fetch_add_explicit(&dc->tick, 1, memory_order_relaxed);

    pthread_mutex_t *lock;
    dc_entry **set = set_of(dc, hash, &lock);
    dc_entry *old = NULL;
    pthread_mutex_lock(lock);
    /* the same request's entry, else an empty way, else the least recently used */
    int victim = -1;
    for (int w = 0; w < SLUICE_DENY_CACHE_WAYS && victim < 0; w++) {
        if (set[w] && entry_matches(set[w], hash, op))
            victim = w;
    }
    for (int w = 0; w < SLUICE_DENY_CACHE_WAYS && victim < 0; w++) {
        if (!set[w])
            victim = w;
    }
    if (victim < 0) {
        victim = 0;
        for (int w = 1; w < SLUICE_DENY_CACHE_WAYS; w++) {
            if (set[w]->used < set[victim]->used)
                victim = w;
        }
    }
    old = way_take(dc, &set[victim]);
    set[victim] = e;
    atomic_fetch_add(&dc->entries, 1);
    atomic_fetch_add(&g_entries, 1);
    pthread_mutex_unlock(lock);
    sluice__free(old);
}
