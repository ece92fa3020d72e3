/* SPDX-License-Identifier: MIT */
/*
 * fixed_window.c - fixed window counter: cell (win, n), the cost admitted in
 * window win = floor(t/W).  Pure functions of (limit, cell, now, cost); no
 * I/O, no allocation.  Mirrored by the Redis Lua code: keep the formulas of
 * docs/design.md "fixed_window" one per line.
 */
#include "core/algo_impl.h"

/* n0 = (win == i) ? n : 0 -- the cost admitted so far in window i. */
static int64_t fw_count(const sluice__cell *cell, int64_t i)
{
    return cell->fw.win == i ? cell->fw.n : 0;
}

void sluice__fw_eval(const sluice_limit *lim, const sluice__cell *cell, int64_t t, int64_t c,
                     sluice_limit_decision *d)
{
    int64_t L = lim->limit;
    int64_t W = lim->window_ms;
    int64_t cq = sluice__judged_cost(c);
    /* i = t // W */
    int64_t i = t / W;
    /* n0 = (win == i) ? n : 0 */
    int64_t n0 = fw_count(cell, i);
    /* end = (i+1)*W - t: time left in window i */
    int64_t end = (i + 1) * W - t;

    sluice__limit_decision_begin(lim, d);
    /* allowed iff n0 + cq <= L (never when cq > L) */
    d->allowed = cq <= L && n0 + cq <= L;
    /* n1 = n0 + c if admitted, else n0 */
    int64_t n1 = d->allowed ? n0 + c : n0;
    /* remaining = L - n1 (at least 0: L may have been lowered by a reload) */
    d->remaining = sluice__max64(0, L - n1);
    /* reset_after = n1 > 0 ? end : 0 */
    d->reset_after_ms = n1 > 0 ? end : 0;
    /* retry_after = -1 if cq > L; end of window i if denied; 0 if allowed */
    if (cq > L)
        d->retry_after_ms = -1;
    else if (!d->allowed)
        d->retry_after_ms = end;
}

void sluice__fw_commit(const sluice_limit *lim, sluice__cell *cell, int64_t t, int64_t c)
{
    /* i = t // W */
    int64_t i = t / lim->window_ms;
    /* (win, n) = (i, n0 + c) */
    int64_t n1 = fw_count(cell, i) + c;
    cell->fw.win = i;
    cell->fw.n = n1;
}

int64_t sluice__fw_idle_after(const sluice_limit *lim, const sluice__cell *cell, int64_t t)
{
    int64_t W = lim->window_ms;
    /* i = t // W */
    int64_t i = t / W;
    /* idle once window i ends, or now if n0 == 0 */
    return fw_count(cell, i) > 0 ? (i + 1) * W - t : 0;
}
