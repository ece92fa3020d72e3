/* SPDX-License-Identifier: MIT */
/*
 * test_algo.c - hand-computed decision vectors for the five algorithms
 * (window boundaries, costs above 1, peeks, cost above capacity, rates that
 * do not divide, epoch-scale times), multi-limit all-or-nothing, the combine
 * rules, the bounds check and the error names.
 *
 * The vec_step tables are also checked by the independent Python model:
 * `tests/vectors/model.py ctable tests/unit/core/test_algo.c`, so keep their
 * layout: one `static const vec_step NAME[] = {` array per scenario, rows of
 * seven integers, and one `{"title", {SLUICE_ALGO, L, W, B}, NAME, ...}` entry
 * in vecs[].
 */
#include "core/algo.h"
#include "test.h"
#include "util/alloc.h"

typedef struct vec_step {
    int64_t t, cost;                                 /* request */
    int64_t allowed, remaining, reset, retry, delay; /* expected */
} vec_step;

typedef struct vec {
    const char *name;
    sluice_limit lim;
    const vec_step *steps;
    size_t n;
} vec;

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define EPOCH 1764300000000LL

/* clang-format off */
/* fixed_window 3 per 1000 ms: boundaries 999/1000/1001, costs, peeks, cost > L */
static const vec_step fw3[] = {
    /* t, cost, ok, rem, reset, retry, delay */
    {999, 1, 1, 2, 1, 0, 0},
    {999, 2, 1, 0, 1, 0, 0},
    {999, 0, 0, 0, 1, 1, 0},
    {1000, 1, 1, 2, 1000, 0, 0},
    {1001, 3, 0, 2, 999, 999, 0},
    {1001, 4, 0, 2, 999, -1, 0},
    {1001, 0, 1, 2, 999, 0, 0},
    {1999, 2, 1, 0, 1, 0, 0},
    {1999, 1, 0, 0, 1, 1, 0},
    {2000, 0, 1, 3, 0, 0, 0},
    {2001, 1, 1, 2, 999, 0, 0},
};
/* fixed_window 7 per 37 ms */
static const vec_step fw7[] = {
    {0, 7, 1, 0, 37, 0, 0},
    {36, 1, 0, 0, 1, 1, 0},
    {37, 1, 1, 6, 37, 0, 0},
    {73, 6, 1, 0, 1, 0, 0},
    {74, 1, 1, 6, 37, 0, 0},
};
/* fixed_window 5000 per hour at epoch-scale times */
static const vec_step fwhour[] = {
    {1764300000000LL, 4999, 1, 1, 2400000, 0, 0},
    {1764300000001LL, 2, 0, 1, 2399999, 2399999, 0},
    {1764302399999LL, 1, 1, 0, 1, 0, 0},
    {1764302400000LL, 1, 1, 4999, 3600000, 0, 0},
};
/* sliding_log 3 per 1000 ms: same-ms merge, retry walking entries */
static const vec_step sl3[] = {
    {100, 1, 1, 2, 1000, 0, 0},
    {100, 1, 1, 1, 1000, 0, 0},
    {600, 1, 1, 0, 1000, 0, 0},
    {700, 1, 0, 0, 900, 400, 0},
    {700, 2, 0, 0, 900, 400, 0},
    {700, 3, 0, 0, 900, 900, 0},
    {1099, 0, 0, 0, 501, 1, 0},
    {1100, 1, 1, 1, 1000, 0, 0},
    {1100, 4, 0, 1, 1000, -1, 0},
    {2100, 0, 1, 3, 0, 0, 0},
};
/* sliding_log 7 per 37 ms */
static const vec_step sl7[] = {
    {0, 3, 1, 4, 37, 0, 0},
    {10, 4, 1, 0, 37, 0, 0},
    {36, 1, 0, 0, 11, 1, 0},
    {37, 3, 1, 0, 37, 0, 0},
    {46, 1, 0, 0, 28, 1, 0},
    {47, 1, 1, 3, 37, 0, 0},
};
/* sliding_window 3 per 1000 ms */
static const vec_step sw3[] = {
    {0, 1, 1, 2, 2000, 0, 0},
    {500, 2, 1, 0, 1500, 0, 0},
    {999, 1, 0, 0, 1001, 335, 0},
    {1000, 0, 0, 0, 1000, 334, 0},
    {1334, 1, 1, 0, 1666, 0, 0},
    {1667, 1, 1, 0, 1333, 0, 0},
    {1999, 1, 0, 0, 1001, 1, 0},
    {2000, 2, 0, 1, 1000, 500, 0},
    {2000, 4, 0, 1, 1000, -1, 0},
    {5000, 0, 1, 3, 0, 0, 0},
};
/* sliding_window 7 per 37 ms */
static const vec_step sw7[] = {
    {36, 7, 1, 0, 38, 0, 0},
    {37, 1, 0, 0, 37, 6, 0},
    {43, 1, 1, 0, 68, 0, 0},
    {60, 2, 1, 1, 51, 0, 0},
};
/* sliding_window 5000 per hour at epoch-scale times: one request per 720 ms */
static const vec_step swhour[] = {
    {1764300000000LL, 5000, 1, 0, 6000000, 0, 0},
    {1764302400000LL, 1, 0, 0, 3600000, 720, 0},
    {1764302400719LL, 1, 0, 0, 3599281, 1, 0},
    {1764302400720LL, 1, 1, 0, 7199280, 0, 0},
};
/* token_bucket 3 per 1000 ms, burst 5 */
static const vec_step tb3[] = {
    {0, 5, 1, 0, 1667, 0, 0},
    {0, 1, 0, 0, 1667, 334, 0},
    {334, 1, 1, 0, 1666, 0, 0},
    {334, 0, 0, 0, 1666, 333, 0},
    {1000, 6, 0, 2, 1000, -1, 0},
    {1000, 2, 1, 0, 1667, 0, 0},
    {10000, 0, 1, 5, 0, 0, 0},
};
/* token_bucket 7 per 37 ms */
static const vec_step tb7[] = {
    {0, 7, 1, 0, 37, 0, 0},
    {5, 1, 0, 0, 32, 1, 0},
    {6, 1, 1, 0, 37, 0, 0},
    {43, 2, 1, 5, 11, 0, 0},
};
/* token_bucket 5000 per hour, burst 10, at epoch-scale times: T = 720 ms */
static const vec_step tbhour[] = {
    {1764300000000LL, 10, 1, 0, 7200, 0, 0},
    {1764300000001LL, 1, 0, 0, 7199, 719, 0},
    {1764300000720LL, 1, 1, 0, 7200, 0, 0},
};
/* leaky_bucket 3 per 1000 ms, burst 4: delay_ms */
static const vec_step lb3[] = {
    {0, 1, 1, 3, 334, 0, 0},
    {0, 1, 1, 2, 667, 0, 334},
    {100, 2, 1, 0, 1234, 0, 567},
    {100, 1, 0, 0, 1234, 234, 0},
    {100, 0, 0, 0, 1234, 234, 0},
    {334, 0, 1, 1, 1000, 0, 1000},
    {334, 5, 0, 1, 1000, -1, 0},
};
/* leaky_bucket 1 per 250 ms, burst 1 */
static const vec_step lb1[] = {
    {0, 1, 1, 0, 250, 0, 0},
    {249, 1, 0, 0, 1, 1, 0},
    {250, 1, 1, 0, 250, 0, 0},
};

static const vec vecs[] = {
    {"fw 3/1s", {SLUICE_FIXED_WINDOW, 3, 1000, 0}, fw3, N(fw3)},
    {"fw 7/37ms", {SLUICE_FIXED_WINDOW, 7, 37, 0}, fw7, N(fw7)},
    {"fw 5000/h", {SLUICE_FIXED_WINDOW, 5000, 3600000, 0}, fwhour, N(fwhour)},
    {"sl 3/1s", {SLUICE_SLIDING_LOG, 3, 1000, 0}, sl3, N(sl3)},
    {"sl 7/37ms", {SLUICE_SLIDING_LOG, 7, 37, 0}, sl7, N(sl7)},
    {"sw 3/1s", {SLUICE_SLIDING_WINDOW, 3, 1000, 0}, sw3, N(sw3)},
    {"sw 7/37ms", {SLUICE_SLIDING_WINDOW, 7, 37, 0}, sw7, N(sw7)},
    {"sw 5000/h", {SLUICE_SLIDING_WINDOW, 5000, 3600000, 0}, swhour, N(swhour)},
    {"tb 3/1s b5", {SLUICE_TOKEN_BUCKET, 3, 1000, 5}, tb3, N(tb3)},
    {"tb 7/37ms", {SLUICE_TOKEN_BUCKET, 7, 37, 7}, tb7, N(tb7)},
    {"tb 5000/h b10", {SLUICE_TOKEN_BUCKET, 5000, 3600000, 10}, tbhour, N(tbhour)},
    {"lb 3/1s b4", {SLUICE_LEAKY_BUCKET, 3, 1000, 4}, lb3, N(lb3)},
    {"lb 1/250ms b1", {SLUICE_LEAKY_BUCKET, 1, 250, 1}, lb1, N(lb1)},
};
/* clang-format on */

static void check_step(const vec *v, size_t i, const sluice_decision *d)
{
    const vec_step *s = &v->steps[i];
    const sluice_limit_decision *x = &d->limits[0];
    if (d->allowed != (s->allowed != 0) || d->remaining != s->remaining ||
        d->reset_after_ms != s->reset || d->retry_after_ms != s->retry || d->delay_ms != s->delay) {
        test_fail(
            __FILE__, __LINE__,
            "%s step %zu (t=%" PRId64 " cost=%" PRId64 "): got %d %" PRId64 " %" PRId64 " %" PRId64
            " %" PRId64 ", want %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64,
            v->name, i, s->t, s->cost, d->allowed, d->remaining, d->reset_after_ms,
            d->retry_after_ms, d->delay_ms, s->allowed, s->remaining, s->reset, s->retry, s->delay);
    }
    /* one limit: the top level is that limit's own decision */
    ASSERT_EQ(x->allowed, d->allowed);
    ASSERT_EQ(x->remaining, d->remaining);
    ASSERT_EQ(x->retry_after_ms, d->retry_after_ms);
    ASSERT_EQ(d->limit, sluice__limit_capacity(&v->lim));
    ASSERT_EQ(x->window_ms, v->lim.window_ms);
    ASSERT_EQ(x->algorithm, v->lim.algorithm);
    ASSERT_EQ(d->now_ms, s->t);
    ASSERT_EQ(d->nlimits, 1);
}

static void test_vectors(void)
{
    for (size_t k = 0; k < N(vecs); k++) {
        const vec *v = &vecs[k];
        ASSERT_EQ(sluice__limit_check(&v->lim, NULL), 0);
        sluice__cell cell = {0};
        for (size_t i = 0; i < v->n; i++) {
            sluice_decision d;
            ASSERT_EQ(sluice__decide_cells(&v->lim, 1, &cell, v->steps[i].t, v->steps[i].cost, &d),
                      0);
            check_step(v, i, &d);
        }
        sluice__algo_release(&v->lim, &cell);
    }
}

/* ---- multi-limit ------------------------------------------------------------ */

/* token_bucket 2/s burst 4, fixed_window 6/min, sliding_log 5/10s */
static const sluice_limit api[3] = {
    {SLUICE_TOKEN_BUCKET, 2, 1000, 4},
    {SLUICE_FIXED_WINDOW, 6, 60000, 0},
    {SLUICE_SLIDING_LOG, 5, 10000, 0},
};

/* Each cell's view (a peek) must be the same before and after. */
static void peek_all(const sluice_limit *lims, int n, sluice__cell *cells, int64_t t,
                     sluice_limit_decision *out)
{
    for (int i = 0; i < n; i++)
        sluice__algo_eval(&lims[i], &cells[i], t, 0, &out[i]);
}

static void test_multi_all_or_nothing(void)
{
    sluice__cell cells[3] = {{{0}}};
    sluice_decision d;
    /* cost 4 at t=0: all allow; bucket empty, window 2 left, log 1 left */
    ASSERT_EQ(sluice__decide_cells(api, 3, cells, 0, 4, &d), 0);
    ASSERT(d.allowed);
    ASSERT_EQ(d.decided_by, 0); /* bucket remaining 0 is the least */
    ASSERT_EQ(d.remaining, 0);
    ASSERT_EQ(d.limits[1].remaining, 2);
    ASSERT_EQ(d.limits[2].remaining, 1);
    /* t=1000: the bucket has 2 again, the log 1, the window 2: cost 2 is
     * denied by the log alone and must consume nothing anywhere */
    sluice_limit_decision before[3], after[3];
    peek_all(api, 3, cells, 1000, before);
    sluice__cell fw_before = cells[1];
    ASSERT_EQ(sluice__decide_cells(api, 3, cells, 1000, 2, &d), 0);
    ASSERT(!d.allowed);
    ASSERT_EQ(d.decided_by, 2);
    ASSERT_EQ(d.retry_after_ms, 9000); /* until the t=0 entry leaves (0 + 10000 - 1000) */
    ASSERT(d.limits[0].allowed);
    ASSERT(d.limits[1].allowed);
    /* allowed limits of a denied request show their unchanged state */
    ASSERT_EQ(d.limits[0].remaining, 2);
    ASSERT_EQ(d.limits[1].remaining, 2);
    ASSERT_EQ(d.remaining, 1); /* the least: tight for unit requests */
    ASSERT_EQ(d.delay_ms, 0);
    peek_all(api, 3, cells, 1000, after);
    ASSERT_EQ(memcmp(&fw_before, &cells[1], sizeof(fw_before)), 0);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(before[i].remaining, after[i].remaining);
        ASSERT_EQ(before[i].reset_after_ms, after[i].reset_after_ms);
    }
    /* exactly remaining = 1 unit request passes, the next is denied */
    ASSERT_EQ(sluice__decide_cells(api, 3, cells, 1000, 1, &d), 0);
    ASSERT(d.allowed);
    ASSERT_EQ(sluice__decide_cells(api, 3, cells, 1000, 1, &d), 0);
    ASSERT(!d.allowed);
    /* cost above the log's capacity: -1 outranks every other retry */
    ASSERT_EQ(sluice__decide_cells(api, 3, cells, 1000, 6, &d), 0);
    ASSERT(!d.allowed);
    ASSERT_EQ(d.retry_after_ms, -1);
    ASSERT_EQ(d.decided_by, 0); /* 6 > B = 4 and 6 > L = 5: first of the two -1 */
    ASSERT_EQ(d.limits[1].retry_after_ms, 59000);
    ASSERT_EQ(d.limits[2].retry_after_ms, -1);
    for (int i = 0; i < 3; i++)
        sluice__algo_release(&api[i], &cells[i]);
}

static void test_multi_leaky_delay(void)
{
    /* leaky 4/s burst 3 + sliding_window 10/5s: delay is the leaky one's */
    const sluice_limit shaped[2] = {{SLUICE_LEAKY_BUCKET, 4, 1000, 3},
                                    {SLUICE_SLIDING_WINDOW, 10, 5000, 0}};
    sluice__cell cells[2] = {{{0}}};
    sluice_decision d;
    ASSERT_EQ(sluice__decide_cells(shaped, 2, cells, 0, 1, &d), 0);
    ASSERT_EQ(d.delay_ms, 0);
    ASSERT_EQ(sluice__decide_cells(shaped, 2, cells, 0, 1, &d), 0);
    ASSERT_EQ(d.delay_ms, 250);
    ASSERT_EQ(sluice__decide_cells(shaped, 2, cells, 100, 1, &d), 0);
    ASSERT_EQ(d.delay_ms, 400); /* 500 ms of queue drained for 100 ms */
    ASSERT_EQ(d.limits[1].delay_ms, 0);
    ASSERT_EQ(d.remaining, 0);
    ASSERT_EQ(d.decided_by, 0);
    /* full: denied, no delay */
    ASSERT_EQ(sluice__decide_cells(shaped, 2, cells, 100, 1, &d), 0);
    ASSERT(!d.allowed);
    ASSERT_EQ(d.delay_ms, 0);
    ASSERT_EQ(d.retry_after_ms, 150);
}

/* ---- combine ---------------------------------------------------------------- */

static void set_limit(sluice_decision *d, int i, bool ok, int64_t rem, int64_t retry, int64_t delay)
{
    memset(&d->limits[i], 0, sizeof(d->limits[i]));
    d->limits[i].allowed = ok;
    d->limits[i].limit = 100 + i;
    d->limits[i].remaining = rem;
    d->limits[i].reset_after_ms = 1000 + i;
    d->limits[i].retry_after_ms = retry;
    d->limits[i].delay_ms = delay;
}

static void test_combine(void)
{
    sluice_decision d;
    memset(&d, 0, sizeof(d));
    d.nlimits = 4;
    /* denied: the largest retry among the denying limits */
    set_limit(&d, 0, false, 3, 5, 0);
    set_limit(&d, 1, true, 1, 0, 70);
    set_limit(&d, 2, false, 0, 10, 0);
    set_limit(&d, 3, false, 2, 10, 0);
    sluice__decision_combine(&d);
    ASSERT(!d.allowed);
    ASSERT_EQ(d.decided_by, 2); /* first on ties */
    ASSERT_EQ(d.limit, 102);
    ASSERT_EQ(d.retry_after_ms, 10);
    ASSERT_EQ(d.reset_after_ms, 1002);
    ASSERT_EQ(d.remaining, 0);
    ASSERT_EQ(d.delay_ms, 0); /* a denied request does not wait */
    /* -1 is the largest */
    set_limit(&d, 3, false, 2, -1, 0);
    sluice__decision_combine(&d);
    ASSERT_EQ(d.decided_by, 3);
    ASSERT_EQ(d.retry_after_ms, -1);
    set_limit(&d, 0, false, 3, -1, 0);
    sluice__decision_combine(&d);
    ASSERT_EQ(d.decided_by, 0);
    /* denied by a limit with more left than an allowing one: remaining is the least */
    set_limit(&d, 0, false, 7, 5, 0);
    set_limit(&d, 1, true, 2, 0, 0);
    set_limit(&d, 2, true, 9, 0, 0);
    set_limit(&d, 3, true, 4, 0, 0);
    sluice__decision_combine(&d);
    ASSERT(!d.allowed);
    ASSERT_EQ(d.decided_by, 0);
    ASSERT_EQ(d.remaining, 2);
    /* allowed: the least remaining (first on ties), the largest delay */
    set_limit(&d, 0, true, 7, 0, 5);
    set_limit(&d, 1, true, 2, 0, 0);
    set_limit(&d, 2, true, 9, 0, 30);
    set_limit(&d, 3, true, 2, 0, 0);
    sluice__decision_combine(&d);
    ASSERT(d.allowed);
    ASSERT_EQ(d.decided_by, 1);
    ASSERT_EQ(d.remaining, 2);
    ASSERT_EQ(d.limit, 101);
    ASSERT_EQ(d.reset_after_ms, 1001);
    ASSERT_EQ(d.retry_after_ms, 0);
    ASSERT_EQ(d.delay_ms, 30);
    /* no limits: allowed, all zero */
    d.nlimits = 0;
    sluice__decision_combine(&d);
    ASSERT(d.allowed);
    ASSERT_EQ(d.limit, 0);
}

/* ---- arguments, allocation failure, bounds ------------------------------------ */

static void test_decide_einval(void)
{
    sluice__cell cells[SLUICE_MAX_LIMITS + 1] = {{{0}}};
    sluice_limit lims[SLUICE_MAX_LIMITS + 1];
    for (int i = 0; i <= SLUICE_MAX_LIMITS; i++)
        lims[i] = (sluice_limit){SLUICE_FIXED_WINDOW, 1, 1000, 0};
    sluice_decision d;
    ASSERT_EQ(sluice__decide_cells(lims, 0, cells, 0, 1, &d), SLUICE_EINVAL);
    ASSERT_EQ(sluice__decide_cells(lims, SLUICE_MAX_LIMITS + 1, cells, 0, 1, &d), SLUICE_EINVAL);
    ASSERT_EQ(sluice__decide_cells(lims, 1, cells, 0, -1, &d), SLUICE_EINVAL);
    ASSERT_EQ(sluice__decide_cells(lims, 1, cells, 0, SLUICE_COST_MAX + 1, &d), SLUICE_EINVAL);
    ASSERT_EQ(sluice__decide_cells(lims, 1, cells, -1, 1, &d), SLUICE_EINVAL);
    ASSERT_EQ(sluice__decide_cells(lims, SLUICE_MAX_LIMITS, cells, 0, 1, &d), 0);
    ASSERT(d.allowed);
    /* the largest cost: denied, never, without overflow */
    ASSERT_EQ(sluice__decide_cells(lims, 1, cells, 0, SLUICE_COST_MAX, &d), 0);
    ASSERT_EQ(d.retry_after_ms, -1);
}

static int fail_after; /* allocations left before failing; < 0: never fail */

static void *failing_malloc(size_t n)
{
    if (fail_after == 0)
        return NULL;
    if (fail_after > 0)
        fail_after--;
    return malloc(n);
}

static void test_enomem_changes_nothing(void)
{
    const sluice_limit lims[2] = {{SLUICE_FIXED_WINDOW, 10, 1000, 0},
                                  {SLUICE_SLIDING_LOG, 10, 1000, 0}};
    sluice__cell cells[2] = {{{0}}};
    sluice_decision d;
    sluice_set_allocator(failing_malloc, NULL, NULL);
    fail_after = 0;
    ASSERT_EQ(sluice__decide_cells(lims, 2, cells, 5, 1, &d), SLUICE_ENOMEM);
    ASSERT_EQ(cells[0].fw.n, 0);
    ASSERT(cells[1].sl.log == NULL);
    fail_after = -1;
    /* fill the first ring (4 slots), then fail the growth */
    for (int t = 0; t < 4; t++)
        ASSERT_EQ(sluice__decide_cells(lims, 2, cells, t, 1, &d), 0);
    fail_after = 0;
    ASSERT_EQ(sluice__decide_cells(lims, 2, cells, 10, 1, &d), SLUICE_ENOMEM);
    ASSERT_EQ(cells[0].fw.n, 4);
    /* a same-ms request merges: it needs no slot and succeeds */
    ASSERT_EQ(sluice__decide_cells(lims, 2, cells, 3, 1, &d), 0);
    ASSERT(d.allowed);
    ASSERT_EQ(d.remaining, 5);
    /* a peek never allocates */
    ASSERT_EQ(sluice__decide_cells(lims, 2, cells, 10, 0, &d), 0);
    ASSERT(d.allowed);
    /* a copy that cannot allocate leaves dst zeroed */
    sluice__cell copy;
    ASSERT_EQ(sluice__algo_copy(&lims[1], &copy, &cells[1]), SLUICE_ENOMEM);
    ASSERT(copy.sl.log == NULL);
    fail_after = -1;
    sluice_set_allocator(NULL, NULL, NULL);
    ASSERT_EQ(sluice__decide_cells(lims, 2, cells, 10, 1, &d), 0);
    ASSERT_EQ(d.remaining, 4);
    ASSERT_EQ(sluice__algo_copy(&lims[1], &copy, &cells[1]), 0);
    sluice__algo_release(&lims[1], &cells[1]);
    ASSERT(cells[1].sl.log == NULL);
    ASSERT(sluice__algo_idle(&lims[1], &cells[1], 10));
    sluice__algo_eval(&lims[1], &copy, 10, 0, &d.limits[0]);
    ASSERT_EQ(d.limits[0].remaining, 4);
    sluice__algo_release(&lims[1], &copy);
    sluice__algo_release(&lims[0], &cells[0]);
    ASSERT_EQ(cells[0].fw.n, 0);
}

static void test_largest_bounds(void)
{
    /* limit 1e9 with the longest window that keeps L*W <= 2^52 */
    int64_t W = SLUICE_PRODUCT_MAX / SLUICE_LIMIT_MAX;
    int64_t t = 4000000000000LL;
    for (int a = SLUICE_FIXED_WINDOW; a <= SLUICE_LEAKY_BUCKET; a++) {
        if (a == SLUICE_SLIDING_LOG)
            continue;
        sluice_limit lim = {a, SLUICE_LIMIT_MAX, W,
                            a >= SLUICE_TOKEN_BUCKET ? SLUICE_LIMIT_MAX : 0};
        ASSERT_EQ(sluice__limit_check(&lim, NULL), 0);
        sluice__cell cell = {{0}};
        sluice_decision d;
        ASSERT_EQ(sluice__decide_cells(&lim, 1, &cell, t, SLUICE_LIMIT_MAX, &d), 0);
        ASSERT(d.allowed);
        ASSERT_EQ(d.remaining, 0);
        ASSERT_EQ(sluice__decide_cells(&lim, 1, &cell, t + 1, SLUICE_LIMIT_MAX, &d), 0);
        ASSERT(!d.allowed);
        ASSERT(d.retry_after_ms > 0 && d.retry_after_ms <= 2 * W);
        ASSERT(sluice__algo_idle_after(&lim, &cell, t) <= 2 * W);
        ASSERT(sluice__algo_idle(&lim, &cell, t + 3 * W));
    }
}

static void expect_bad(sluice_limit lim, const char *needle)
{
    const char *why = NULL;
    ASSERT_EQ(sluice__limit_check(&lim, &why), SLUICE_ECONFIG);
    ASSERT_CONTAINS(why, needle);
}

static void test_limit_check(void)
{
    const int64_t H = 3600000;
    expect_bad((sluice_limit){-1, 1, H, 0}, "algorithm");
    expect_bad((sluice_limit){5, 1, H, 0}, "algorithm");
    expect_bad((sluice_limit){SLUICE_FIXED_WINDOW, 0, H, 0}, "limit");
    expect_bad((sluice_limit){SLUICE_FIXED_WINDOW, SLUICE_LIMIT_MAX + 1, 1, 0}, "limit");
    expect_bad((sluice_limit){SLUICE_SLIDING_WINDOW, 1, 0, 0}, "window");
    expect_bad((sluice_limit){SLUICE_SLIDING_WINDOW, 1, SLUICE_WINDOW_MAX_MS + 1, 0}, "window");
    expect_bad((sluice_limit){SLUICE_SLIDING_WINDOW, SLUICE_LIMIT_MAX, 4503600, 0}, "2^52");
    expect_bad((sluice_limit){SLUICE_SLIDING_LOG, SLUICE_SLIDING_LOG_MAX + 1, H, 0}, "10000");
    expect_bad((sluice_limit){SLUICE_FIXED_WINDOW, 5, H, 5}, "burst");
    expect_bad((sluice_limit){SLUICE_TOKEN_BUCKET, 5, H, -1}, "burst");
    expect_bad((sluice_limit){SLUICE_LEAKY_BUCKET, 5, H, SLUICE_LIMIT_MAX + 1}, "burst");
    expect_bad((sluice_limit){SLUICE_TOKEN_BUCKET, 5, 10000000, SLUICE_LIMIT_MAX},
               "burst x window");
    ASSERT_EQ(sluice__limit_check(&(sluice_limit){SLUICE_SLIDING_LOG, 10000, H, 0}, NULL), 0);
    ASSERT_EQ(
        sluice__limit_check(&(sluice_limit){SLUICE_FIXED_WINDOW, 1, SLUICE_WINDOW_MAX_MS, 0}, NULL),
        0);
    ASSERT_EQ(sluice__limit_check(
                  &(sluice_limit){SLUICE_SLIDING_WINDOW, SLUICE_LIMIT_MAX, 4503599, 0}, NULL),
              0);
    /* burst 0 on a bucket means the default, L */
    sluice_limit b0 = {SLUICE_TOKEN_BUCKET, 7, 1000, 0};
    ASSERT_EQ(sluice__limit_check(&b0, NULL), 0);
    ASSERT_EQ(sluice__limit_capacity(&b0), 7);
    ASSERT_EQ(sluice__limit_capacity(&(sluice_limit){SLUICE_LEAKY_BUCKET, 7, 1000, 3}), 3);
    ASSERT_EQ(sluice__limit_capacity(&(sluice_limit){SLUICE_SLIDING_LOG, 7, 1000, 0}), 7);
}

static void test_names(void)
{
    const int codes[] = {SLUICE_OK,      SLUICE_EINVAL, SLUICE_ENOMEM,   SLUICE_ECONFIG,
                         SLUICE_ENORULE, SLUICE_ESTORE, SLUICE_ETIMEOUT, SLUICE_EURL,
                         SLUICE_EKEY,    SLUICE_EIO,    SLUICE_ECANCELED};
    const char *unknown = sluice_strerror(12345);
    ASSERT_STREQ(unknown, "unknown error");
    for (size_t i = 0; i < N(codes); i++) {
        ASSERT(sluice_strerror(codes[i]) != unknown);
        for (size_t j = 0; j < i; j++)
            ASSERT(strcmp(sluice_strerror(codes[i]), sluice_strerror(codes[j])) != 0);
    }
    ASSERT_STREQ(sluice_algorithm_name(SLUICE_FIXED_WINDOW), "fixed_window");
    ASSERT_STREQ(sluice_algorithm_name(SLUICE_SLIDING_LOG), "sliding_log");
    ASSERT_STREQ(sluice_algorithm_name(SLUICE_SLIDING_WINDOW), "sliding_window");
    ASSERT_STREQ(sluice_algorithm_name(SLUICE_TOKEN_BUCKET), "token_bucket");
    ASSERT_STREQ(sluice_algorithm_name(SLUICE_LEAKY_BUCKET), "leaky_bucket");
    ASSERT(sluice_algorithm_name(-1) == NULL);
    ASSERT(sluice_algorithm_name(5) == NULL);
}

int main(void)
{
    RUN(test_vectors);
    RUN(test_multi_all_or_nothing);
    RUN(test_multi_leaky_delay);
    RUN(test_combine);
    RUN(test_decide_einval);
    RUN(test_enomem_changes_nothing);
    RUN(test_largest_bounds);
    RUN(test_limit_check);
    RUN(test_names);
    return test_done();
}
