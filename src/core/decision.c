/* SPDX-License-Identifier: MIT */
/*
 * decision.c - a whole limit set decided all-or-nothing, and the rules that
 * turn the limits' own decisions into the top-level fields (SPEC section 2,
 * docs/design.md "Multi-limit and combining").  Pure: the caller (a store)
 * holds whatever lock protects the cells.
 */
#include <string.h>

#include "core/algo_impl.h"

/* True when limit a's denial outranks b's: larger retry_after, -1 largest. */
static bool retry_outranks(int64_t a, int64_t b)
{
    if (b == -1)
        return false;
    return a == -1 || a > b;
}

/* The limit that decides: the ranking denial, or the least remaining. */
static int decision_pick(const sluice_decision *d, bool allowed)
{
    int k = -1;
    for (int i = 0; i < d->nlimits; i++) {
        const sluice_limit_decision *x = &d->limits[i];
        if (!allowed && x->allowed)
            continue;
        if (k < 0)
            k = i;
        else if (!allowed && retry_outranks(x->retry_after_ms, d->limits[k].retry_after_ms))
            k = i;
        else if (allowed && x->remaining < d->limits[k].remaining)
            k = i;
    }
    return k;
}

void sluice__decision_combine(sluice_decision *d)
{
    bool allowed = true;
    for (int i = 0; i < d->nlimits; i++)
        allowed = allowed && d->limits[i].allowed;
    d->allowed = allowed;
    d->limit = d->remaining = d->reset_after_ms = d->retry_after_ms = d->delay_ms = 0;
    d->decided_by = 0;
    int k = decision_pick(d, allowed);
    if (k < 0)
        return; /* no limits: allowed, all zero */
    const sluice_limit_decision *x = &d->limits[k];
    d->decided_by = k;
    d->limit = x->limit;
    d->reset_after_ms = x->reset_after_ms;
    d->retry_after_ms = x->retry_after_ms;
    /* remaining = least remaining; delay = largest delay if allowed, else 0 */
    d->remaining = x->remaining;
    for (int i = 0; i < d->nlimits; i++) {
        d->remaining = sluice__min64(d->remaining, d->limits[i].remaining);
        if (allowed)
            d->delay_ms = sluice__max64(d->delay_ms, d->limits[i].delay_ms);
    }
}

/*
 * A denied request consumes nothing: the limits that would have allowed it
 * report their unchanged state (a peek's remaining and reset_after), no
 * delay, and still allowed = true (their own verdict).
 */
static void decision_unconsumed(const sluice_limit *limits, int n, const sluice__cell *cells,
                                int64_t now, sluice_decision *d)
{
    for (int i = 0; i < n; i++) {
        if (!d->limits[i].allowed)
            continue;
        sluice__algo_eval(&limits[i], &cells[i], now, 0, &d->limits[i]);
        d->limits[i].allowed = true;
        d->limits[i].delay_ms = 0;
    }
}

int sluice__decide_cells(const sluice_limit *limits, int n, sluice__cell *cells, int64_t now,
                         int64_t cost, sluice_decision *d)
{
    if (n < 1 || n > SLUICE_MAX_LIMITS || cost < 0 || cost > SLUICE_COST_MAX || now < 0)
        return SLUICE_EINVAL;
    memset(d, 0, sizeof(*d));
    d->now_ms = now;
    d->nlimits = n;
    bool allowed = true;
    for (int i = 0; i < n; i++) {
        sluice__algo_eval(&limits[i], &cells[i], now, cost, &d->limits[i]);
        allowed = allowed && d->limits[i].allowed;
    }
    if (!allowed) {
        decision_unconsumed(limits, n, cells, now, d);
    } else if (cost > 0) {
        /* reserve every cell first, so that commit cannot fail half-way */
        for (int i = 0; i < n; i++) {
            if (sluice__algo_reserve(&limits[i], &cells[i], now, cost) != 0)
                return SLUICE_ENOMEM;
        }
        for (int i = 0; i < n; i++)
            sluice__algo_commit(&limits[i], &cells[i], now, cost);
    }
    sluice__decision_combine(d);
    return 0;
}
