/* SPDX-License-Identifier: MIT */
/*
 * algo.h - the five rate-limit algorithms as pure functions of
 * (limit parameters, state cell, now, cost).  No I/O, no clock, no locks, no
 * allocation except the sliding log's ring (grown only in reserve()).  The
 * Redis Lua code mirrors these functions line for line; any change here must
 * be made there too, and the shared vector table (tests/vectors) proves it.
 *
 * Time is integer milliseconds.  Every intermediate stays below 2^53 given
 * the bounds of sluice.h (limit*window_ms <= 2^52), so int64 here and Lua
 * doubles there compute the same integers.
 *
 * A zeroed cell is the untouched state for every algorithm.
 */
#ifndef SLUICE_CORE_ALGO_H
#define SLUICE_CORE_ALGO_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice.h"

/* Sliding-log ring of (time, cost) entries; owned by its cell. */
typedef struct sluice__log sluice__log;

/*
 * The state of one limit for one key.  16 bytes, so a memory-store node with
 * one token bucket stays within 64 bytes beyond its key.
 */
typedef union sluice__cell {
    struct {
        int64_t win; /* window index floor(t/W) the count belongs to */
        int64_t n;   /* cost admitted in window win */
    } fw;            /* fixed_window */
    struct {
        int64_t win;   /* index i of the current window */
        uint32_t prev; /* cost admitted in window i-1 (<= L <= 1e9) */
        uint32_t cur;  /* cost admitted in window i */
    } sw;              /* sliding_window */
    struct {
        int64_t t_ms;   /* time of the last update */
        int64_t excess; /* max(0, tat - t_ms) in units of 1/L ms: the queue q = excess/W */
    } gcra;             /* token_bucket, leaky_bucket */
    struct {
        sluice__log *log; /* NULL when empty */
        int64_t unused;
    } sl; /* sliding_log */
} sluice__cell;

/**
 * Evaluates a request of cost (0 = peek, judged as cost 1) at now against a
 * cell without changing it.  Fills every field of d: allowed, limit,
 * remaining (after this request, were it admitted), reset_after_ms (likewise),
 * retry_after_ms, delay_ms, window_ms, algorithm.
 */
void sluice__algo_eval(const sluice_limit *lim, const sluice__cell *cell, int64_t now, int64_t cost,
                       sluice_limit_decision *d);

/**
 * Makes sure commit() of this request cannot fail (grows the sliding-log
 * ring).  Returns 0 or SLUICE_ENOMEM; the cell's meaning is unchanged.
 */
int sluice__algo_reserve(const sluice_limit *lim, sluice__cell *cell, int64_t now, int64_t cost);

/** Consumes an admitted request of cost at now.  Call only after eval allowed it. */
void sluice__algo_commit(const sluice_limit *lim, sluice__cell *cell, int64_t now, int64_t cost);

/** True when the cell at now is indistinguishable from a zeroed one. */
bool sluice__algo_idle(const sluice_limit *lim, const sluice__cell *cell, int64_t now);

/** Milliseconds from now until the cell is idle (0 if it is). */
int64_t sluice__algo_idle_after(const sluice_limit *lim, const sluice__cell *cell, int64_t now);

/**
 * Copies a cell (deep: the sliding log's ring too) into dst, which must not
 * own anything.  Returns 0 or SLUICE_ENOMEM with dst zeroed.
 */
int sluice__algo_copy(const sluice_limit *lim, sluice__cell *dst, const sluice__cell *src);

/**
 * Frees what a cell owns and zeroes it.  Needs the limit: only a sliding-log
 * cell owns memory, and in the other cells the same bytes are integers.
 */
void sluice__algo_release(const sluice_limit *lim, sluice__cell *cell);

/**
 * Decides a whole limit set all-or-nothing: every limit is evaluated; only
 * if all allow is every cell committed.  Fills d (limits[], nlimits, the
 * top-level fields via sluice__decision_combine, now_ms).  When the request
 * is denied, the entries of the limits that would have allowed it describe
 * their unchanged state (remaining and reset_after as for a peek, delay 0).
 * Returns 0; SLUICE_ENOMEM with no cell changed; SLUICE_EINVAL (d untouched)
 * when n is not 1..SLUICE_MAX_LIMITS, cost is not 0..SLUICE_COST_MAX or now
 * is negative.
 */
int sluice__decide_cells(const sluice_limit *limits, int n, sluice__cell *cells, int64_t now,
                         int64_t cost, sluice_decision *d);

/**
 * Sets d's top-level fields from d->limits[0..nlimits): denied if any limit
 * denies, from the denying limit with the largest retry_after (-1 largest);
 * allowed from the limit with the least remaining (first on ties).
 * remaining is always the least remaining among the limits (so it stays
 * tight when a denying limit has more left than an allowing one); delay_ms
 * is the largest delay when allowed and 0 when denied.  decided_by is set.
 */
void sluice__decision_combine(sluice_decision *d);

/**
 * For a sliding log stored outside the process (the Redis module): appends
 * the entry (t, c) as the newest, without pruning, growing the ring.
 * Returns 0 or SLUICE_ENOMEM (the cell then holds the entries before it).
 */
int sluice__sl_append(const sluice_limit *lim, sluice__cell *cell, int64_t t, int64_t c);

/** Entries held by a sliding-log cell (some may have left the window). */
uint32_t sluice__sl_len(const sluice__cell *cell);

/** Total cost of the entries held by a sliding-log cell. */
int64_t sluice__sl_sum(const sluice__cell *cell);

/** Entry k (0 = oldest, k < sluice__sl_len()) of a sliding-log cell. */
void sluice__sl_entry(const sluice__cell *cell, uint32_t k, int64_t *t, int64_t *c);

/** Checks one limit against the bounds of sluice.h; 0 or SLUICE_ECONFIG with a reason. */
int sluice__limit_check(const sluice_limit *lim, const char **why);

/** Capacity of a limit: L for windows, B for buckets. */
int64_t sluice__limit_capacity(const sluice_limit *lim);

#endif /* SLUICE_CORE_ALGO_H */
