/* SPDX-License-Identifier: MIT */
/*
 * test_prop.c - property tests of the algorithms over random traces (seed
 * printed; SLUICE_SEED=N replays one).  For every algorithm and random
 * parameters, small windows to an hour, times near 0 and near 1.8e12:
 *   (a) remaining is tight: on a copy, exactly `remaining` more unit
 *       requests pass at the same instant and the next is denied;
 *   (b) retry_after is tight: the same request passes at t+retry_after and
 *       not at t+retry_after-1; -1 exactly when the cost exceeds capacity;
 *   (c) no over-admission, against an independent reference per algorithm
 *       computed from the full admitted history (with __int128 where the
 *       absolute products need it), and the decision equals the reference's;
 *   (d) no drift over simulated days at 3/s and 5000/h;
 *   (e) once idle_after has passed the cell is idle and decides exactly like
 *       a zeroed cell; idle_after equals the decision's reset_after.
 */
#include "core/algo.h"
#include "test.h"

typedef __int128 i128;

/* ---- the admitted history and the references --------------------------------- */

typedef struct hist {
    int64_t *t, *c; /* admitted requests, time order */
    size_t n, cap;
    i128 tat; /* GCRA reference: absolute TAT in units of 1/L ms */
} hist;

static void hist_add(hist *h, int64_t t, int64_t c)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 256;
        h->t = realloc(h->t, h->cap * sizeof(*h->t));
        h->c = realloc(h->c, h->cap * sizeof(*h->c));
        ASSERT(h->t && h->c);
    }
    h->t[h->n] = t;
    h->c[h->n] = c;
    h->n++;
}

static void hist_free(hist *h)
{
    free(h->t);
    free(h->c);
    memset(h, 0, sizeof(*h));
}

/* Admitted cost with lo < time <= hi. */
static int64_t hist_sum(const hist *h, int64_t lo, int64_t hi)
{
    int64_t s = 0;
    for (size_t k = h->n; k-- > 0 && h->t[k] > lo;)
        if (h->t[k] <= hi)
            s += h->c[k];
    return s;
}

static bool is_bucket(const sluice_limit *lim)
{
    return lim->algorithm == SLUICE_TOKEN_BUCKET || lim->algorithm == SLUICE_LEAKY_BUCKET;
}

/* GCRA reference: the queue excess at t, max(0, tat - t*L), in 1/L ms. */
static i128 ref_excess(const sluice_limit *lim, const hist *h, int64_t t)
{
    i128 x = h->tat - (i128)t * lim->limit;
    return x > 0 ? x : 0;
}

/* The reference's view of a request: allowed, and remaining after it. */
typedef struct ref_view {
    bool allowed;
    int64_t remaining;
} ref_view;

static ref_view ref_eval(const sluice_limit *lim, const hist *h, int64_t t, int64_t c)
{
    int64_t L = lim->limit, W = lim->window_ms, B = sluice__limit_capacity(lim);
    int64_t cq = c > 0 ? c : 1;
    ref_view v = {false, 0};
    if (lim->algorithm == SLUICE_FIXED_WINDOW || lim->algorithm == SLUICE_SLIDING_LOG) {
        int64_t lo = lim->algorithm == SLUICE_SLIDING_LOG ? t - W : (t / W) * W - 1;
        int64_t s = hist_sum(h, lo, t);
        v.allowed = s + cq <= L;
        v.remaining = L - s - (v.allowed ? c : 0);
    } else if (lim->algorithm == SLUICE_SLIDING_WINDOW) {
        int64_t j = t / W, e = t - j * W;
        i128 p = hist_sum(h, (j - 1) * W - 1, j * W - 1);
        i128 n = hist_sum(h, j * W - 1, t);
        v.allowed = p * (W - e) + (n + cq) * W <= (i128)L * W;
        i128 n1 = n + (v.allowed ? c : 0);
        i128 r = ((i128)L * W - p * (W - e)) / W - n1;
        v.remaining = r > 0 ? (int64_t)r : 0;
    } else {
        i128 x = ref_excess(lim, h, t);
        v.allowed = cq <= B && x + (i128)cq * W <= (i128)B * W;
        i128 x1 = x + (v.allowed ? (i128)c * W : 0);
        v.remaining = (int64_t)(((i128)B * W - x1) / W);
    }
    return v;
}

/* Records an admitted request in the history and the GCRA reference. */
static void ref_admit(const sluice_limit *lim, hist *h, int64_t t, int64_t c)
{
    i128 now = (i128)t * lim->limit;
    h->tat = (h->tat > now ? h->tat : now) + (i128)c * lim->window_ms;
    hist_add(h, t, c);
}

/* (c) The definition's bound holds for the admission just recorded at t. */
static void ref_check_bound(const sluice_limit *lim, const hist *h, int64_t t)
{
    int64_t L = lim->limit, W = lim->window_ms, B = sluice__limit_capacity(lim);
    if (lim->algorithm == SLUICE_FIXED_WINDOW) {
        ASSERT(hist_sum(h, (t / W) * W - 1, t) <= L);
    } else if (lim->algorithm == SLUICE_SLIDING_LOG) {
        ASSERT(hist_sum(h, t - W, t) <= L);
    } else if (lim->algorithm == SLUICE_SLIDING_WINDOW) {
        int64_t j = t / W, e = t - j * W;
        i128 p = hist_sum(h, (j - 1) * W - 1, j * W - 1);
        i128 n = hist_sum(h, j * W - 1, t);
        ASSERT(p * (W - e) + n * W <= (i128)L * W);
    } else {
        /* admitted over any [a, t] <= B + floor((t-a)*L/W) */
        int64_t s = 0;
        for (size_t k = h->n; k-- > 0;) {
            s += h->c[k];
            i128 bound = B + ((i128)(t - h->t[k]) * L) / W;
            if (s > bound)
                test_fail(__FILE__, __LINE__,
                          "bucket admitted %" PRId64 " in [%" PRId64 ", %" PRId64 "]", s, h->t[k],
                          t);
        }
    }
}

/* ---- helpers over cells -------------------------------------------------------- */

static void eval1(const sluice_limit *lim, const sluice__cell *cell, int64_t t, int64_t c,
                  sluice_limit_decision *d)
{
    sluice__algo_eval(lim, cell, t, c, d);
}

/* (a) On a copy: exactly `rem` more unit requests pass at t, then one is denied. */
static void check_remaining_tight(const sluice_limit *lim, const sluice__cell *cell, int64_t t,
                                  int64_t rem)
{
    sluice__cell copy;
    sluice_decision d;
    ASSERT_EQ(sluice__algo_copy(lim, &copy, cell), 0);
    if (rem <= 24) {
        for (int64_t k = 0; k < rem; k++) {
            ASSERT_EQ(sluice__decide_cells(lim, 1, &copy, t, 1, &d), 0);
            ASSERT(d.allowed);
            ASSERT_EQ(d.remaining, rem - k - 1);
        }
    } else {
        /* costs add up at one instant: one request of cost rem is the same */
        ASSERT_EQ(sluice__decide_cells(lim, 1, &copy, t, rem, &d), 0);
        ASSERT(d.allowed);
        ASSERT_EQ(d.remaining, 0);
    }
    ASSERT_EQ(sluice__decide_cells(lim, 1, &copy, t, 1, &d), 0);
    ASSERT(!d.allowed);
    sluice__algo_release(lim, &copy);
}

/* (b) The same request passes at t+retry and not one millisecond earlier. */
static void check_retry_tight(const sluice_limit *lim, const sluice__cell *cell, int64_t t,
                              int64_t c, int64_t retry)
{
    sluice_limit_decision x;
    eval1(lim, cell, t + retry, c, &x);
    ASSERT(x.allowed);
    eval1(lim, cell, t + retry - 1, c, &x);
    ASSERT(!x.allowed);
}

/* (e) Past idle_after the cell is idle and decides like a zeroed cell. */
static void check_idle(const sluice_limit *lim, const sluice__cell *cell, int64_t t, uint64_t *rng)
{
    int64_t ia = sluice__algo_idle_after(lim, cell, t);
    ASSERT(ia >= 0);
    if (ia > 0)
        ASSERT(!sluice__algo_idle(lim, cell, t + ia - 1));
    int64_t t2 = t + ia + test_range(rng, 0, 3);
    ASSERT(sluice__algo_idle(lim, cell, t2));
    ASSERT_EQ(sluice__algo_idle_after(lim, cell, t2), 0);
    const sluice__cell zero = {{0}};
    int64_t cap = sluice__limit_capacity(lim);
    const int64_t costs[] = {0, 1, cap, cap + 1, test_range(rng, 1, cap)};
    for (size_t i = 0; i < sizeof(costs) / sizeof(costs[0]); i++) {
        sluice_limit_decision a, b;
        eval1(lim, cell, t2, costs[i], &a);
        eval1(lim, &zero, t2, costs[i], &b);
        ASSERT_EQ(memcmp(&a, &b, sizeof(a)), 0);
    }
}

/* ---- random traces ------------------------------------------------------------- */

static const int64_t windows[] = {1, 2, 3, 7, 37, 100, 1000, 60000, 3600000};

static sluice_limit random_limit(uint64_t *rng, int alg)
{
    sluice_limit lim = {alg, 0, 0, 0};
    lim.window_ms =
        test_range(rng, 0, 3) == 0 ? test_range(rng, 1, 5000) : windows[test_range(rng, 0, 8)];
    switch (test_range(rng, 0, 3)) {
    case 0:
        lim.limit = test_range(rng, 1, 3);
        break;
    case 1:
        lim.limit = test_range(rng, 1, 12);
        break;
    case 2:
        lim.limit = test_range(rng, 1, 60);
        break;
    default:
        lim.limit = test_range(rng, 1, alg == SLUICE_SLIDING_LOG ? 300 : 5000);
        break;
    }
    if (alg == SLUICE_TOKEN_BUCKET || alg == SLUICE_LEAKY_BUCKET)
        lim.burst = test_range(rng, 0, 2) == 0 ? lim.limit : test_range(rng, 1, 2 * lim.limit + 3);
    ASSERT_EQ(sluice__limit_check(&lim, NULL), 0);
    return lim;
}

/* Time between requests: the same ms, about one emission interval, or longer. */
static int64_t random_gap(uint64_t *rng, const sluice_limit *lim)
{
    int64_t W = lim->window_ms, T = W / lim->limit + 1;
    switch (test_range(rng, 0, 9)) {
    case 0:
    case 1:
    case 2:
        return 0;
    case 3:
    case 4:
    case 5:
        return test_range(rng, 0, T);
    case 6:
    case 7:
        return test_range(rng, 0, 3 * T);
    case 8:
        return test_range(rng, 0, W);
    default:
        return test_range(rng, 0, 3 * W);
    }
}

static int64_t random_cost(uint64_t *rng, int64_t cap)
{
    int k = (int)test_range(rng, 0, 19);
    if (k < 2)
        return 0;
    if (k < 14)
        return 1;
    if (k < 19)
        return test_range(rng, 1, cap);
    return cap + test_range(rng, 1, 3);
}

/* One step of a trace: decide, then check (a), (b), (c), (e). */
static void trace_step(const sluice_limit *lim, sluice__cell *cell, hist *h, int64_t t, int64_t c,
                       uint64_t *rng)
{
    int64_t cap = sluice__limit_capacity(lim);
    int64_t cq = c > 0 ? c : 1;
    ref_view want = ref_eval(lim, h, t, c);
    sluice_decision d;
    ASSERT_EQ(sluice__decide_cells(lim, 1, cell, t, c, &d), 0);
    if (d.allowed != want.allowed || d.remaining != want.remaining)
        test_fail(__FILE__, __LINE__,
                  "%s L=%" PRId64 " W=%" PRId64 " B=%" PRId64 " t=%" PRId64 " c=%" PRId64
                  ": allowed %d remaining %" PRId64 ", reference %d %" PRId64,
                  sluice_algorithm_name(lim->algorithm), lim->limit, lim->window_ms, lim->burst, t,
                  c, d.allowed, d.remaining, want.allowed, want.remaining);
    ASSERT_EQ(d.limit, cap);
    if (d.allowed && c > 0) {
        ref_admit(lim, h, t, c);
        ref_check_bound(lim, h, t);
    }
    /* retry_after: 0 allowed, -1 exactly when cq > capacity, else tight */
    if (d.allowed) {
        ASSERT_EQ(d.retry_after_ms, 0);
    } else if (cq > cap) {
        ASSERT_EQ(d.retry_after_ms, -1);
    } else {
        ASSERT(d.retry_after_ms > 0);
        check_retry_tight(lim, cell, t, c, d.retry_after_ms);
    }
    if (is_bucket(lim) && d.allowed) {
        /* delay = ceil(queue ahead / L) measured before the request */
        i128 x0 = ref_excess(lim, h, t) - (c > 0 ? (i128)c * lim->window_ms : 0);
        int64_t delay = (int64_t)((x0 + lim->limit - 1) / lim->limit);
        ASSERT_EQ(d.delay_ms, lim->algorithm == SLUICE_LEAKY_BUCKET ? delay : 0);
    } else {
        ASSERT_EQ(d.delay_ms, 0);
    }
    /* reset_after is the time until the cell is untouched again */
    ASSERT_EQ(d.reset_after_ms, sluice__algo_idle_after(lim, cell, t));
    check_remaining_tight(lim, cell, t, d.remaining);
    if (test_range(rng, 0, 15) == 0)
        check_idle(lim, cell, t, rng);
}

static void run_trace(uint64_t *rng, int alg, int steps)
{
    sluice_limit lim = random_limit(rng, alg);
    int64_t t = test_range(rng, 0, 1) ? test_range(rng, 0, 5000)
                                      : 1800000000000LL + test_range(rng, 0, 100000000000LL);
    sluice__cell cell = {{0}};
    hist h = {0};
    int64_t cap = sluice__limit_capacity(&lim);
    for (int i = 0; i < steps; i++) {
        t += random_gap(rng, &lim);
        trace_step(&lim, &cell, &h, t, random_cost(rng, cap), rng);
    }
    sluice__algo_release(&lim, &cell);
    hist_free(&h);
}

static uint64_t seed;

static void test_random_traces(void)
{
    uint64_t rng = seed;
    for (int round = 0; round < 300; round++)
        for (int alg = SLUICE_FIXED_WINDOW; alg <= SLUICE_LEAKY_BUCKET; alg++)
            run_trace(&rng, alg, 400);
}

/* Multi-limit: top-level retry_after is tight for the whole set too. */
static void test_random_multi(void)
{
    uint64_t rng = seed ^ 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 100; round++) {
        int n = (int)test_range(&rng, 2, 4);
        sluice_limit lims[4];
        sluice__cell cells[4] = {{{0}}};
        for (int i = 0; i < n; i++)
            lims[i] = random_limit(&rng, (int)test_range(&rng, 0, 4));
        int64_t t = 1800000000000LL + test_range(&rng, 0, 1000000);
        for (int s = 0; s < 300; s++) {
            t += random_gap(&rng, &lims[test_range(&rng, 0, n - 1)]);
            int64_t c = random_cost(&rng, 4);
            sluice_decision d;
            ASSERT_EQ(sluice__decide_cells(lims, n, cells, t, c, &d), 0);
            if (d.allowed || d.retry_after_ms < 0)
                continue;
            sluice_limit_decision x;
            bool all = true, before = true;
            for (int i = 0; i < n; i++) {
                eval1(&lims[i], &cells[i], t + d.retry_after_ms, c, &x);
                all = all && x.allowed;
                eval1(&lims[i], &cells[i], t + d.retry_after_ms - 1, c, &x);
                before = before && x.allowed;
            }
            ASSERT(all);
            ASSERT(!before);
        }
        for (int i = 0; i < n; i++)
            sluice__algo_release(&lims[i], &cells[i]);
    }
}

/* ---- (d) no drift ---------------------------------------------------------------- */

#define DAY_MS 86400000LL

/*
 * Offers requests at times floor(k*W/(f*L)) (f times the rate) for days ms,
 * from a start aligned to W; returns the count admitted.
 */
static int64_t steady(const sluice_limit *lim, int64_t f, int64_t days)
{
    sluice__cell cell = {{0}};
    int64_t t0 = (1764300000000LL / lim->window_ms) * lim->window_ms;
    int64_t span = days * DAY_MS;
    int64_t admitted = 0;
    for (int64_t k = 0;; k++) {
        int64_t dt = (k * lim->window_ms) / (f * lim->limit);
        if (dt >= span)
            break;
        sluice_decision d;
        ASSERT_EQ(sluice__decide_cells(lim, 1, &cell, t0 + dt, 1, &d), 0);
        admitted += d.allowed;
    }
    sluice__algo_release(lim, &cell);
    return admitted;
}

static void expect_near(int64_t got, int64_t want, const char *what)
{
    if (got < want - 1 || got > want + 1)
        test_fail(__FILE__, __LINE__, "%s: admitted %" PRId64 ", rate x span %" PRId64, what, got,
                  want);
}

static void test_no_drift(void)
{
    const struct {
        int64_t L, W, days;
    } rates[] = {{3, 1000, 2}, {5000, 3600000, 3}};
    for (size_t i = 0; i < 2; i++) {
        int64_t L = rates[i].L, W = rates[i].W, span = rates[i].days * DAY_MS;
        int64_t want = span * L / W; /* rate x span */
        sluice_limit fw = {SLUICE_FIXED_WINDOW, L, W, 0};
        sluice_limit sl = {SLUICE_SLIDING_LOG, L, W, 0};
        sluice_limit tb = {SLUICE_TOKEN_BUCKET, L, W, L};
        sluice_limit tb2 = {SLUICE_TOKEN_BUCKET, L, W, 2};
        sluice_limit lb = {SLUICE_LEAKY_BUCKET, L, W, L};
        /* traffic at exactly the rate: everything passes */
        expect_near(steady(&fw, 1, rates[i].days), want, "fixed_window at rate");
        expect_near(steady(&sl, 1, rates[i].days), want, "sliding_log at rate");
        expect_near(steady(&tb, 1, rates[i].days), want, "token_bucket at rate");
        expect_near(steady(&tb2, 1, rates[i].days), want, "token_bucket b2 at rate");
        expect_near(steady(&lb, 1, rates[i].days), want, "leaky_bucket at rate");
        /* four times the rate: the limit, and (buckets) the initial burst */
        expect_near(steady(&fw, 4, rates[i].days), want, "fixed_window at 4x");
        expect_near(steady(&tb, 4, rates[i].days), want + L, "token_bucket at 4x");
        expect_near(steady(&tb2, 4, rates[i].days), want + 2, "token_bucket b2 at 4x");
        /*
         * sliding_window is the seed's approximation: at the last ms of a
         * window the previous count still weighs p/W, so a saturated key
         * settles at L-1 per window (when p <= W).  Integer state means it
         * settles exactly there: no drift below it, never above the rate.
         */
        sluice_limit sw = {SLUICE_SLIDING_WINDOW, L, W, 0};
        int64_t windows_n = span / W;
        int64_t got = steady(&sw, 4, rates[i].days);
        ASSERT(got <= want + 1);
        expect_near(got, want - (windows_n - 1), "sliding_window at 4x (L-1 per window)");
    }
}

int main(void)
{
    seed = test_seed();
    RUN(test_random_traces);
    RUN(test_random_multi);
    RUN(test_no_drift);
    return test_done();
}
