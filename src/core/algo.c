/* SPDX-License-Identifier: MIT */
/*
 * algo.c - dispatch of the algo.h entry points to the five algorithms
 * (fixed_window.c, sliding_log.c, sliding_window.c, gcra.c for both
 * buckets).  Pure: no I/O, no clock, no locks.
 */
#include <string.h>

#include "core/algo_impl.h"

void sluice__limit_decision_begin(const sluice_limit *lim, sluice_limit_decision *d)
{
    memset(d, 0, sizeof(*d));
    d->allowed = false;
    d->limit = sluice__limit_capacity(lim);
    d->window_ms = lim->window_ms;
    d->algorithm = lim->algorithm;
}

void sluice__algo_eval(const sluice_limit *lim, const sluice__cell *cell, int64_t now, int64_t cost,
                       sluice_limit_decision *d)
{
    switch (lim->algorithm) {
    case SLUICE_FIXED_WINDOW:
        sluice__fw_eval(lim, cell, now, cost, d);
        break;
    case SLUICE_SLIDING_LOG:
        sluice__sl_eval(lim, cell, now, cost, d);
        break;
    case SLUICE_SLIDING_WINDOW:
        sluice__sw_eval(lim, cell, now, cost, d);
        break;
    default: /* token_bucket, leaky_bucket */
        sluice__gcra_eval(lim, cell, now, cost, d);
        break;
    }
}

int sluice__algo_reserve(const sluice_limit *lim, sluice__cell *cell, int64_t now, int64_t cost)
{
    if (lim->algorithm == SLUICE_SLIDING_LOG)
        return sluice__sl_reserve(lim, cell, now, cost);
    return 0;
}

void sluice__algo_commit(const sluice_limit *lim, sluice__cell *cell, int64_t now, int64_t cost)
{
    if (cost <= 0)
        return; /* a peek consumes nothing */
    switch (lim->algorithm) {
    case SLUICE_FIXED_WINDOW:
        sluice__fw_commit(lim, cell, now, cost);
        break;
    case SLUICE_SLIDING_LOG:
        sluice__sl_commit(lim, cell, now, cost);
        break;
    case SLUICE_SLIDING_WINDOW:
        sluice__sw_commit(lim, cell, now, cost);
        break;
    default:
        sluice__gcra_commit(lim, cell, now, cost);
        break;
    }
}

int64_t sluice__algo_idle_after(const sluice_limit *lim, const sluice__cell *cell, int64_t now)
{
    switch (lim->algorithm) {
    case SLUICE_FIXED_WINDOW:
        return sluice__fw_idle_after(lim, cell, now);
    case SLUICE_SLIDING_LOG:
        return sluice__sl_idle_after(lim, cell, now);
    case SLUICE_SLIDING_WINDOW:
        return sluice__sw_idle_after(lim, cell, now);
    default:
        return sluice__gcra_idle_after(lim, cell, now);
    }
}

bool sluice__algo_idle(const sluice_limit *lim, const sluice__cell *cell, int64_t now)
{
    return sluice__algo_idle_after(lim, cell, now) == 0;
}

int sluice__algo_copy(const sluice_limit *lim, sluice__cell *dst, const sluice__cell *src)
{
    if (lim->algorithm == SLUICE_SLIDING_LOG)
        return sluice__sl_copy(dst, src);
    *dst = *src;
    return 0;
}

void sluice__algo_release(const sluice_limit *lim, sluice__cell *cell)
{
    /* Only the sliding log owns memory; in the other cells sl.log aliases
     * an integer field. */
    if (lim->algorithm == SLUICE_SLIDING_LOG)
        sluice__sl_release(cell);
    else
        memset(cell, 0, sizeof(*cell));
}
