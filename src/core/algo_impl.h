/* SPDX-License-Identifier: MIT */
/*
 * algo_impl.h - what the per-algorithm files of src/core share: small
 * integer helpers and the eval/commit/idle_after entry points that algo.c
 * dispatches to.  Internal to src/core; nothing here does I/O or allocates
 * except the sliding log (sliding_log.c).
 *
 * Every helper takes non-negative operands bounded by sluice.h, so no
 * intermediate exceeds 2^53 (see docs/design.md "The algorithms").
 */
#ifndef SLUICE_CORE_ALGO_IMPL_H
#define SLUICE_CORE_ALGO_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/algo.h"

/* ceil(a/b) for a >= 0, b > 0. */
static inline int64_t sluice__ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* cq = max(c, 1): a peek (c = 0) is judged as a unit request. */
static inline int64_t sluice__judged_cost(int64_t c)
{
    return c > 0 ? c : 1;
}

static inline int64_t sluice__max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static inline int64_t sluice__min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/*
 * Starts a limit decision: denied, every number 0, the limit's own
 * identity fields (limit = capacity, window_ms, algorithm) set.
 */
void sluice__limit_decision_begin(const sluice_limit *lim, sluice_limit_decision *d);

/* fixed_window.c */
void sluice__fw_eval(const sluice_limit *lim, const sluice__cell *cell, int64_t t, int64_t c,
                     sluice_limit_decision *d);
void sluice__fw_commit(const sluice_limit *lim, sluice__cell *cell, int64_t t, int64_t c);
int64_t sluice__fw_idle_after(const sluice_limit *lim, const sluice__cell *cell, int64_t t);

/* sliding_window.c */
void sluice__sw_eval(const sluice_limit *lim, const sluice__cell *cell, int64_t t, int64_t c,
                     sluice_limit_decision *d);
void sluice__sw_commit(const sluice_limit *lim, sluice__cell *cell, int64_t t, int64_t c);
int64_t sluice__sw_idle_after(const sluice_limit *lim, const sluice__cell *cell, int64_t t);

/* gcra.c: token_bucket and leaky_bucket */
void sluice__gcra_eval(const sluice_limit *lim, const sluice__cell *cell, int64_t t, int64_t c,
                       sluice_limit_decision *d);
void sluice__gcra_commit(const sluice_limit *lim, sluice__cell *cell, int64_t t, int64_t c);
int64_t sluice__gcra_idle_after(const sluice_limit *lim, const sluice__cell *cell, int64_t t);

/* sliding_log.c */
void sluice__sl_eval(const sluice_limit *lim, const sluice__cell *cell, int64_t t, int64_t c,
                     sluice_limit_decision *d);
int sluice__sl_reserve(const sluice_limit *lim, sluice__cell *cell, int64_t t, int64_t c);
void sluice__sl_commit(const sluice_limit *lim, sluice__cell *cell, int64_t t, int64_t c);
int64_t sluice__sl_idle_after(const sluice_limit *lim, const sluice__cell *cell, int64_t t);
int sluice__sl_copy(sluice__cell *dst, const sluice__cell *src);
void sluice__sl_release(sluice__cell *cell);

#endif /* SLUICE_CORE_ALGO_IMPL_H */
