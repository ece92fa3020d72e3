/* SPDX-License-Identifier: MIT */
/*
 * test_cli_util.c - unit tests of the CLI's internals that the integration
 * test cannot see exactly: strict integer parsing, the decision JSON, and
 * the latency histogram of `sluice bench` (bucket bounds, relative error,
 * quantiles).  The CLI sources are compiled into this test directly (the
 * CLI is a program, not part of libsluice).
 */
#include "test.h"

#include "cli/cli_bench.c"
#include "cli/cli_common.c"

static void test_parse_i64(void)
{
    int64_t v = 7;
    ASSERT_EQ(cli_parse_i64("0", 0, 10, &v), 0);
    ASSERT_EQ(v, 0);
    ASSERT_EQ(cli_parse_i64("10", 0, 10, &v), 0);
    ASSERT_EQ(v, 10);
    ASSERT_EQ(cli_parse_i64("-3", -5, 5, &v), 0);
    ASSERT_EQ(v, -3);
    ASSERT_EQ(cli_parse_i64("9223372036854775807", 0, INT64_MAX, &v), 0);
    ASSERT_EQ(v, INT64_MAX);
    v = 7;
    ASSERT_EQ(cli_parse_i64("11", 0, 10, &v), -1);
    ASSERT_EQ(cli_parse_i64("-1", 0, 10, &v), -1);
    ASSERT_EQ(cli_parse_i64("", 0, 10, &v), -1);
    ASSERT_EQ(cli_parse_i64(NULL, 0, 10, &v), -1);
    ASSERT_EQ(cli_parse_i64(" 1", 0, 10, &v), -1);
    ASSERT_EQ(cli_parse_i64("1 ", 0, 10, &v), -1);
    ASSERT_EQ(cli_parse_i64("1x", 0, 10, &v), -1);
    ASSERT_EQ(cli_parse_i64("0x1", 0, 10, &v), -1);
    ASSERT_EQ(cli_parse_i64("1e3", 0, 10000, &v), -1);
    ASSERT_EQ(cli_parse_i64("-", -5, 5, &v), -1);
    ASSERT_EQ(cli_parse_i64("9223372036854775808", 0, INT64_MAX, &v), -1);
    ASSERT_EQ(cli_parse_i64("-9223372036854775809", INT64_MIN, 0, &v), -1);
    ASSERT_EQ(v, 7); /* untouched on failure */
}

static void test_decision_json(void)
{
    sluice_decision d;
    memset(&d, 0, sizeof(d));
    d.allowed = false;
    d.limit = 5;
    d.remaining = 0;
    d.reset_after_ms = 1500;
    d.retry_after_ms = -1;
    d.nlimits = 2;
    d.limits[0] = (sluice_limit_decision){.allowed = true,
                                          .limit = 10,
                                          .remaining = 3,
                                          .window_ms = 1000,
                                          .algorithm = SLUICE_TOKEN_BUCKET};
    d.limits[1] = (sluice_limit_decision){.allowed = false,
                                          .limit = 5,
                                          .retry_after_ms = -1,
                                          .reset_after_ms = 1500,
                                          .window_ms = 60000,
                                          .algorithm = SLUICE_FIXED_WINDOW};
    json_t *o = cli_decision_json(&d, "login", "premium", "ip:1.2.3.4");
    ASSERT(o != NULL);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ASSERT_CONTAINS(s, "\"allowed\":false,\"limit\":5,\"remaining\":0,\"reset_after_ms\":1500,"
                       "\"retry_after_ms\":-1,\"delay_ms\":0");
    ASSERT_CONTAINS(s, "\"rule\":\"login\",\"key\":\"ip:1.2.3.4\",\"tier\":\"premium\"");
    ASSERT_CONTAINS(s, "{\"algorithm\":\"token_bucket\",\"allowed\":true,\"limit\":10,"
                       "\"window_ms\":1000,\"remaining\":3");
    ASSERT_CONTAINS(s, "\"algorithm\":\"fixed_window\",\"allowed\":false");
    ASSERT_EQ(json_array_size(json_object_get(o, "limits")), 2);
    free(s);
    json_decref(o);

    /* no tier: no "tier" field */
    o = cli_decision_json(&d, "login", NULL, "k");
    ASSERT(o != NULL);
    ASSERT(json_object_get(o, "tier") == NULL);
    json_decref(o);
}

static void test_hist_buckets(void)
{
    /* exact below 64 ns */
    for (uint64_t v = 0; v < HIST_SUB; v++) {
        ASSERT_EQ(hist_index(v), v);
        ASSERT(hist_value(hist_index(v)) == (double)v);
    }
    /* monotonic, and every value within 1/64 of its bucket's middle */
    int prev = -1;
    for (uint64_t v = 1; v < ((uint64_t)1 << 40); v = v + v / 7 + 1) {
        int i = hist_index(v);
        ASSERT(i >= prev);
        prev = i;
        double mid = hist_value(i);
        double rel = (mid > (double)v ? mid - (double)v : (double)v - mid) / (double)v;
        if (rel > 1.0 / HIST_SUB)
            test_fail(__FILE__, __LINE__, "value %llu bucket %d middle %.1f error %.4f",
                      (unsigned long long)v, i, mid, rel);
    }
    /* bucket edges: 64..127 are 1 ns wide, 128..255 are 2 ns wide */
    ASSERT_EQ(hist_index(64), 64);
    ASSERT_EQ(hist_index(127), 127);
    ASSERT_EQ(hist_index(128), 128);
    ASSERT_EQ(hist_index(129), 128);
    ASSERT_EQ(hist_index(130), 129);
    /* huge values land in the last bucket, never outside */
    ASSERT_EQ(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
}

static void test_hist_quantiles(void)
{
    static bench_hist h;
    memset(&h, 0, sizeof(h));
    ASSERT(hist_quantile(&h, 0.5) == 0);
    /* 1000 samples: 1..1000 ns */
    for (uint64_t v = 1; v <= 1000; v++)
        hist_add(&h, v);
    ASSERT_EQ(h.max_ns, 1000);
    ASSERT_EQ(h.sum_ns, 500500);
    double p50 = hist_quantile(&h, 0.50), p99 = hist_quantile(&h, 0.99);
    double p999 = hist_quantile(&h, 0.999), p100 = hist_quantile(&h, 1.0);
    if (p50 < 500 * (1 - 1.0 / 64) || p50 > 500 * (1 + 1.0 / 64))
        test_fail(__FILE__, __LINE__, "p50 %.1f", p50);
    if (p99 < 990 * (1 - 1.0 / 64) || p99 > 990 * (1 + 1.0 / 64))
        test_fail(__FILE__, __LINE__, "p99 %.1f", p99);
    if (p999 < 999 * (1 - 1.0 / 64) || p999 > 1000)
        test_fail(__FILE__, __LINE__, "p99.9 %.1f", p999);
    ASSERT(p100 <= 1000); /* capped at the maximum seen */
    ASSERT(p50 <= p99 && p99 <= p999 && p999 <= p100);

    /* a 120 ns decision reads as 0.12 us */
    memset(&h, 0, sizeof(h));
    for (int i = 0; i < 100; i++)
        hist_add(&h, 120);
    char buf[32];
    snprintf(buf, sizeof(buf), "%.2f", hist_quantile(&h, 0.5) / 1000);
    ASSERT_STREQ(buf, "0.12");
}

int main(void)
{
    RUN(test_parse_i64);
    RUN(test_decision_json);
    RUN(test_hist_buckets);
    RUN(test_hist_quantiles);
    return test_done();
}
