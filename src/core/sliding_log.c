/* SPDX-License-Identifier: MIT */
/*
 * sliding_log.c - the exact sliding log: a ring of (time, cost) entries,
 * oldest first, with the running sum of their costs.  Admitted requests of
 * the same millisecond share one entry, and every entry holds cost >= 1, so
 * the ring never needs more than L slots (L <= SLUICE_SLIDING_LOG_MAX).
 *
 * eval() only reads; expired entries (time <= t - W) are skipped there and
 * dropped by commit().  The ring grows only in reserve(), through the
 * allocator hook, so commit() cannot fail.  No I/O.  Mirrored by the Redis
 * Lua code: keep the formulas of docs/design.md "sliding_log" one per line.
 */
#include <string.h>

#include "core/algo_impl.h"
#include "util/alloc.h"

typedef struct sl_entry {
    int64_t t_ms; /* time of the admitted requests (unique in the ring) */
    int64_t cost; /* their total cost, >= 1 */
} sl_entry;

struct sluice__log {
    uint32_t cap;  /* slots in e[] */
    uint32_t head; /* slot of the oldest entry */
    uint32_t len;  /* entries held, oldest first (some may have expired) */
    int64_t sum;   /* total cost of the len entries */
    sl_entry e[];  /* ring: entry k lives in e[(head + k) % cap] */
};

/* Entry k, 0 = oldest. */
static const sl_entry *sl_at(const sluice__log *log, uint32_t k)
{
    return &log->e[(log->head + k) % log->cap];
}

/* The live part of a log at t: entries k0..len-1 with time > t - W, cost S. */
typedef struct sl_view {
    uint32_t k0;   /* index of the oldest live entry */
    uint32_t live; /* number of live entries */
    int64_t S;     /* their total cost */
} sl_view;

/* Drop entries with time <= t - W; S = sum of the remaining costs. */
static sl_view sl_live(const sluice__log *log, int64_t W, int64_t t)
{
    sl_view v = {0, 0, 0};
    if (!log)
        return v;
    v.S = log->sum;
    while (v.k0 < log->len && sl_at(log, v.k0)->t_ms <= t - W) {
        v.S -= sl_at(log, v.k0)->cost;
        v.k0++;
    }
    v.live = log->len - v.k0;
    return v;
}

/*
 * Denied: walk from the oldest live entry accumulating r; at the first
 * entry k with S - r_k + cq <= L: retry_after = time_k + W - t.
 */
static int64_t sl_retry_after(const sluice__log *log, sl_view v, int64_t L, int64_t W, int64_t t,
                              int64_t cq)
{
    int64_t r = 0;
    for (uint32_t k = v.k0; k < log->len; k++) {
        r += sl_at(log, k)->cost;
        if (v.S - r + cq <= L)
            return sl_at(log, k)->t_ms + W - t;
    }
    return -1; /* unreachable: cq <= L and r reaches S */
}

void sluice__sl_eval(const sluice_limit *lim, const sluice__cell *cell, int64_t t, int64_t c,
                     sluice_limit_decision *d)
{
    int64_t L = lim->limit;
    int64_t W = lim->window_ms;
    int64_t cq = sluice__judged_cost(c);
    const sluice__log *log = cell->sl.log;
    sl_view v = sl_live(log, W, t);

    sluice__limit_decision_begin(lim, d);
    /* allowed iff S + cq <= L (never when cq > L) */
    d->allowed = cq <= L && v.S + cq <= L;
    /* S1 = S + c if admitted, else S */
    int64_t S1 = d->allowed ? v.S + c : v.S;
    /* remaining = L - S1, at least 0 (L may have been lowered) */
    d->remaining = sluice__max64(0, L - S1);
    /* newest = the newest live entry's time, or t if this request is logged */
    bool logged = d->allowed && c > 0;
    int64_t newest = v.live > 0 ? sl_at(log, log->len - 1)->t_ms : t;
    if (logged)
        newest = sluice__max64(newest, t);
    /* reset_after = newest + W - t; 0 when the log is empty */
    if (logged || v.live > 0)
        d->reset_after_ms = newest + W - t;
    if (cq > L)
        d->retry_after_ms = -1;
    else if (!d->allowed)
        d->retry_after_ms = sl_retry_after(log, v, L, W, t, cq);
}

/* Slots commit() needs at t: the live entries, plus one unless it merges. */
static uint32_t sl_needed(const sluice__log *log, sl_view v, int64_t t)
{
    if (v.live > 0 && sl_at(log, log->len - 1)->t_ms >= t)
        return v.live;
    return v.live + 1;
}

/*
 * Moves the live entries into a new ring of cap slots: doubles the old
 * capacity (at least 4, at least need), capped at max(need, L).
 */
static int sl_grow(const sluice_limit *lim, sluice__cell *cell, sl_view v, uint32_t need)
{
    sluice__log *old = cell->sl.log;
    int64_t cap = old ? 2 * (int64_t)old->cap : 4;
    cap = sluice__min64(sluice__max64(cap, need), sluice__max64(need, lim->limit));
    sluice__log *log = sluice__malloc(sizeof(*log) + (size_t)cap * sizeof(log->e[0]));
    if (!log)
        return SLUICE_ENOMEM;
    log->cap = (uint32_t)cap;
    log->head = 0;
    log->len = v.live;
    log->sum = v.S;
    for (uint32_t k = 0; k < v.live; k++)
        log->e[k] = *sl_at(old, v.k0 + k);
    sluice__free(old);
    cell->sl.log = log;
    return 0;
}

int sluice__sl_reserve(const sluice_limit *lim, sluice__cell *cell, int64_t t, int64_t c)
{
    if (c <= 0)
        return 0;
    sl_view v = sl_live(cell->sl.log, lim->window_ms, t);
    uint32_t need = sl_needed(cell->sl.log, v, t);
    if (cell->sl.log && need <= cell->sl.log->cap)
        return 0;
    return sl_grow(lim, cell, v, need);
}

/* Drops the entries that have left the window (time <= t - W). */
static void sl_prune(sluice__log *log, int64_t W, int64_t t)
{
    while (log->len > 0 && sl_at(log, 0)->t_ms <= t - W) {
        log->sum -= sl_at(log, 0)->cost;
        log->head = (log->head + 1) % log->cap;
        log->len--;
    }
}

void sluice__sl_commit(const sluice_limit *lim, sluice__cell *cell, int64_t t, int64_t c)
{
    sluice__log *log = cell->sl.log;
    if (c <= 0 || !log)
        return; /* a peek logs nothing; reserve() guarantees the ring */
    sl_prune(log, lim->window_ms, t);
    sl_entry *newest = log->len ? &log->e[(log->head + log->len - 1) % log->cap] : NULL;
    if (newest && newest->t_ms >= t) {
        /* same millisecond (or a clock that stepped back): merge */
        newest->cost += c;
    } else {
        if (log->len == log->cap)
            return; /* unreachable after reserve() */
        sl_entry *slot = &log->e[(log->head + log->len) % log->cap];
        slot->t_ms = t;
        slot->cost = c;
        log->len++;
    }
    log->sum += c;
}

int64_t sluice__sl_idle_after(const sluice_limit *lim, const sluice__cell *cell, int64_t t)
{
    const sluice__log *log = cell->sl.log;
    sl_view v = sl_live(log, lim->window_ms, t);
    /* idle once the newest entry leaves: newest + W - t */
    return v.live > 0 ? sl_at(log, log->len - 1)->t_ms + lim->window_ms - t : 0;
}

int sluice__sl_copy(sluice__cell *dst, const sluice__cell *src)
{
    const sluice__log *from = src->sl.log;
    memset(dst, 0, sizeof(*dst));
    if (!from)
        return 0;
    sluice__log *log = sluice__malloc(sizeof(*log) + (size_t)from->cap * sizeof(log->e[0]));
    if (!log)
        return SLUICE_ENOMEM;
    log->cap = from->cap;
    log->head = 0;
    log->len = from->len;
    log->sum = from->sum;
    for (uint32_t k = 0; k < from->len; k++)
        log->e[k] = *sl_at(from, k);
    dst->sl.log = log;
    return 0;
}

void sluice__sl_release(sluice__cell *cell)
{
    sluice__free(cell->sl.log);
    memset(cell, 0, sizeof(*cell));
}

/*
 * Loading and reading a log kept outside the process (the Redis module keeps
 * it as a list, the layout of sluice.lua): entries are appended as they
 * are, oldest first, without pruning, so that eval() and commit() then see
 * exactly what the Lua engine sees.
 */
int sluice__sl_append(const sluice_limit *lim, sluice__cell *cell, int64_t t, int64_t c)
{
    sluice__log *log = cell->sl.log;
    if (!log || log->len == log->cap) {
        /* grow to hold every stored entry: the stored list may exceed L
         * when the limit was lowered, so L is no cap here */
        uint32_t have = log ? log->len : 0;
        uint32_t cap = log ? 2 * log->cap : 4;
        (void)lim;
        sluice__log *n = sluice__malloc(sizeof(*n) + (size_t)cap * sizeof(n->e[0]));
        if (!n)
            return SLUICE_ENOMEM;
        n->cap = cap;
        n->head = 0;
        n->len = have;
        n->sum = log ? log->sum : 0;
        for (uint32_t k = 0; k < have; k++)
            n->e[k] = *sl_at(log, k);
        sluice__free(log);
        cell->sl.log = log = n;
    }
    sl_entry *slot = &log->e[(log->head + log->len) % log->cap];
    slot->t_ms = t;
    slot->cost = c;
    log->len++;
    log->sum += c;
    return 0;
}

uint32_t sluice__sl_len(const sluice__cell *cell)
{
    return cell->sl.log ? cell->sl.log->len : 0;
}

int64_t sluice__sl_sum(const sluice__cell *cell)
{
    return cell->sl.log ? cell->sl.log->sum : 0;
}

void sluice__sl_entry(const sluice__cell *cell, uint32_t k, int64_t *t, int64_t *c)
{
    const sl_entry *e = sl_at(cell->sl.log, k);
    *t = e->t_ms;
    *c = e->cost;
}
