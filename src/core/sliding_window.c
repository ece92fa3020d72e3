/* SPDX-License-Identifier: MIT */
/*
 * sliding_window.c - the weighted two-window counter: cell (win, prev, cur),
 * the cost admitted in windows win-1 and win.  A request at t in window j
 * with offset e is allowed iff p*(W-e) + (n+c)*W <= L*W, all integers.
 * Pure functions; no I/O, no allocation.  Mirrored by the Redis Lua code:
 * keep the formulas of docs/design.md "sliding_window" one per line.
 */
#include "core/algo_impl.h"

/* The two counts that weigh in window j. */
typedef struct sw_counts {
    int64_t p; /* cost admitted in window j-1 */
    int64_t n; /* cost admitted in window j */
} sw_counts;

/*
 * (p, n) = win == j ? (prev, cur) : win == j-1 ? (cur, 0) : (0, 0).
 * Counts above L (a limit lowered by a reload) count as L, which keeps
 * p*(W-e) <= L*W <= 2^52.
 */
static sw_counts sw_load(const sluice_limit *lim, const sluice__cell *cell, int64_t j)
{
    sw_counts k = {0, 0};
    if (cell->sw.win == j) {
        k.p = cell->sw.prev;
        k.n = cell->sw.cur;
    } else if (cell->sw.win == j - 1) {
        k.p = cell->sw.cur;
    }
    k.p = sluice__min64(k.p, lim->limit);
    k.n = sluice__min64(k.n, lim->limit);
    return k;
}

/* Milliseconds until the condition holds for cq, given it fails now. */
static int64_t sw_retry_after(int64_t L, int64_t W, int64_t j, int64_t e, int64_t t, sw_counts k,
                              int64_t cq)
{
    if (k.n + cq <= L) {
        /* only the previous window weighs too much: wait inside window j
         * (or until j+1 when the quotient is 0):
         * retry_after = W - ((L-n-cq)*W) // p - e */
        return W - ((L - k.n - cq) * W) / k.p - e;
    }
    /* wait for window j+1, where n becomes the previous count:
     * retry_after = (j+1)*W + W - ((L-cq)*W) // n - t */
    return (j + 1) * W + W - ((L - cq) * W) / k.n - t;
}

void sluice__sw_eval(const sluice_limit *lim, const sluice__cell *cell, int64_t t, int64_t c,
                     sluice_limit_decision *d)
{
    int64_t L = lim->limit;
    int64_t W = lim->window_ms;
    int64_t cq = sluice__judged_cost(c);
    /* j = t // W */
    int64_t j = t / W;
    /* e = t - j*W */
    int64_t e = t - j * W;
    sw_counts k = sw_load(lim, cell, j);

    sluice__limit_decision_begin(lim, d);
    /* allowed iff n + cq <= L and p*(W-e) <= (L - n - cq)*W */
    d->allowed = cq <= L && k.n + cq <= L && k.p * (W - e) <= (L - k.n - cq) * W;
    /* n1 = n + c if admitted, else n */
    int64_t n1 = d->allowed ? k.n + c : k.n;
    /* remaining = max(0, (L*W - p*(W-e)) // W - n1) */
    d->remaining = sluice__max64(0, (L * W - k.p * (W - e)) / W - n1);
    /* reset_after = n1 > 0 ? (j+2)*W - t : p > 0 ? (j+1)*W - t : 0 */
    if (n1 > 0)
        d->reset_after_ms = (j + 2) * W - t;
    else if (k.p > 0)
        d->reset_after_ms = (j + 1) * W - t;
    if (cq > L)
        d->retry_after_ms = -1;
    else if (!d->allowed)
        d->retry_after_ms = sw_retry_after(L, W, j, e, t, k, cq);
}

void sluice__sw_commit(const sluice_limit *lim, sluice__cell *cell, int64_t t, int64_t c)
{
    /* j = t // W */
    int64_t j = t / lim->window_ms;
    sw_counts k = sw_load(lim, cell, j);
    /* (win, prev, cur) = (j, p, n + c); both <= L <= 1e9 fit 32 bits */
    cell->sw.win = j;
    cell->sw.prev = (uint32_t)k.p;
    cell->sw.cur = (uint32_t)(k.n + c);
}

int64_t sluice__sw_idle_after(const sluice_limit *lim, const sluice__cell *cell, int64_t t)
{
    int64_t W = lim->window_ms;
    /* j = t // W */
    int64_t j = t / W;
    sw_counts k = sw_load(lim, cell, j);
    /* n weighs until the end of window j+1, p until the end of window j */
    if (k.n > 0)
        return (j + 2) * W - t;
    if (k.p > 0)
        return (j + 1) * W - t;
    return 0;
}
