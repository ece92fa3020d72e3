/* SPDX-License-Identifier: MIT */
/*
 * gcra.c - token_bucket and leaky_bucket: one GCRA meter, cell
 * (t_ms, excess).  Time is scaled by L so the emission interval T = W/L ms is
 * the integer W: excess = max(0, tat - t_ms) in units of 1/L ms, and the
 * queue is q = excess/W requests.  No rounding ever accumulates, so 3 per
 * second or 5000 per hour do not drift.  Pure functions; no I/O, no
 * allocation.  Mirrored by the Redis Lua code: keep the formulas of
 * docs/design.md "token_bucket and leaky_bucket" one per line.
 */
#include "core/algo_impl.h"

/*
 * x = the excess left at t: dt = max(0, t - t_ms);
 * x = (dt >= ceil(excess/L)) ? 0 : excess - dt*L.
 * Comparing dt with ceil(excess/L) first keeps dt*L below excess <= B*W.
 */
static int64_t gcra_excess_at(const sluice_limit *lim, const sluice__cell *cell, int64_t t)
{
    int64_t L = lim->limit;
    int64_t dt = sluice__max64(0, t - cell->gcra.t_ms);
    if (dt >= sluice__ceil_div(cell->gcra.excess, L))
        return 0;
    return cell->gcra.excess - dt * L;
}

void sluice__gcra_eval(const sluice_limit *lim, const sluice__cell *cell, int64_t t, int64_t c,
                       sluice_limit_decision *d)
{
    int64_t L = lim->limit;
    int64_t W = lim->window_ms;
    int64_t B = sluice__limit_capacity(lim);
    int64_t cq = sluice__judged_cost(c);
    int64_t x = gcra_excess_at(lim, cell, t);

    sluice__limit_decision_begin(lim, d);
    /* allowed iff x <= (B - cq)*W, i.e. q + cq <= B (never when cq > B) */
    d->allowed = cq <= B && x <= (B - cq) * W;
    /* x1 = x + c*W if admitted, else x */
    int64_t x1 = d->allowed ? x + c * W : x;
    /* remaining = (B*W - x1) // W, at least 0 (B may have been lowered) */
    d->remaining = x1 < B * W ? (B * W - x1) / W : 0;
    /* reset_after = ceil(x1/L) */
    d->reset_after_ms = sluice__ceil_div(x1, L);
    if (cq > B) {
        d->retry_after_ms = -1;
    } else if (!d->allowed) {
        /* retry_after = ceil((x - (B-cq)*W)/L) */
        d->retry_after_ms = sluice__ceil_div(x - (B - cq) * W, L);
    } else if (lim->algorithm == SLUICE_LEAKY_BUCKET) {
        /* leaky_bucket, admitted: delay = ceil(x/L), the queue ahead of it */
        d->delay_ms = sluice__ceil_div(x, L);
    }
}

void sluice__gcra_commit(const sluice_limit *lim, sluice__cell *cell, int64_t t, int64_t c)
{
    int64_t x = gcra_excess_at(lim, cell, t);
    /* (t_ms, excess) = (max(t, t_ms), x + c*W) */
    cell->gcra.t_ms = sluice__max64(t, cell->gcra.t_ms);
    cell->gcra.excess = x + c * lim->window_ms;
}

int64_t sluice__gcra_idle_after(const sluice_limit *lim, const sluice__cell *cell, int64_t t)
{
    /* the excess drains at L per ms: ceil(x/L) */
    return sluice__ceil_div(gcra_excess_at(lim, cell, t), lim->limit);
}
