/* SPDX-License-Identifier: MIT */
/*
 * limits.c - the bounds of one limit (sluice.h, docs/design.md "Bounds")
 * that keep every intermediate of the algorithms at or below 2^53, and the
 * capacity a request's cost is measured against.  Pure; no I/O.
 */
#include "core/algo_impl.h"

static bool is_bucket(int algorithm)
{
    return algorithm == SLUICE_TOKEN_BUCKET || algorithm == SLUICE_LEAKY_BUCKET;
}

int64_t sluice__limit_capacity(const sluice_limit *lim)
{
    /* B for the buckets (burst 0 means the default, L); L for the windows */
    if (is_bucket(lim->algorithm) && lim->burst > 0)
        return lim->burst;
    return lim->limit;
}

static int limit_fail(const char **why, const char *reason)
{
    if (why)
        *why = reason;
    return SLUICE_ECONFIG;
}

int sluice__limit_check(const sluice_limit *lim, const char **why)
{
    if (lim->algorithm < SLUICE_FIXED_WINDOW || lim->algorithm > SLUICE_LEAKY_BUCKET)
        return limit_fail(why, "unknown algorithm");
    if (lim->limit < 1 || lim->limit > SLUICE_LIMIT_MAX)
        return limit_fail(why, "limit must be between 1 and 1000000000");
    if (lim->window_ms < 1 || lim->window_ms > SLUICE_WINDOW_MAX_MS)
        return limit_fail(why, "window must be between 1ms and 366d");
    /* limit x window_ms <= 2^52, written so that the product is never formed */
    if (lim->limit > SLUICE_PRODUCT_MAX / lim->window_ms)
        return limit_fail(why, "limit x window_ms exceeds 2^52");
    if (lim->algorithm == SLUICE_SLIDING_LOG && lim->limit > SLUICE_SLIDING_LOG_MAX)
        return limit_fail(why, "sliding_log limit must be at most 10000");
    if (!is_bucket(lim->algorithm)) {
        if (lim->burst != 0)
            return limit_fail(why, "burst applies only to token_bucket and leaky_bucket");
        return 0;
    }
    if (lim->burst < 0 || lim->burst > SLUICE_LIMIT_MAX)
        return limit_fail(why, "burst must be between 1 and 1000000000");
    /* burst x window_ms <= 2^52 */
    if (sluice__limit_capacity(lim) > SLUICE_PRODUCT_MAX / lim->window_ms)
        return limit_fail(why, "burst x window_ms exceeds 2^52");
    return 0;
}
