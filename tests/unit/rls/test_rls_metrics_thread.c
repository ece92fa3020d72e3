/* SPDX-License-Identifier: MIT */
/*
 * test_rls_metrics_thread.c - the Envoy RLS descriptor counters: exact totals
 * in hits per result, label escaping in the exposition, the bounded table
 * overflowing into descriptor="_other", and four threads inserting and
 * counting the same and different labels at once with no count lost (run
 * under TSan too: the index is read without a lock).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rls/rls_metrics.h"
#include "test.h"

static uint64_t sample(const char *text, const char *series)
{
    const char *p = strstr(text, series);
    if (!p)
        return (uint64_t)-1;
    return strtoull(p + strlen(series), NULL, 10);
}

static void test_counts(void)
{
    sluice__rls_metrics_reset();
    /* rpu 10: 3 hits within (remaining 7), 6 within reaching 9 (near: above 8), over 2 */
    sluice__rls_metrics_count("d", "k_v.sub", 3, false, false, 7, 10);
    sluice__rls_metrics_count("d", "k_v.sub", 6, false, false, 1, 10);
    sluice__rls_metrics_count("d", "k_v.sub", 2, true, false, 0, 10);
    sluice__rls_metrics_count("d", "k_v.sub", 1, true, true, 0, 10);
    sluice__rls_metrics_count("we\"ird", "a\\b\nc", 1, false, false, 0, 1);
    sluice__rls_metrics_unknown_domain("x");
    sluice__rls_metrics_refused("d");
    size_t len = 0;
    char *t = sluice__rls_metrics_render(&len);
    ASSERT(t != NULL);
    ASSERT_EQ(len, strlen(t));
    ASSERT_EQ(sample(t, "sluice_rls_hits_total{domain=\"d\",descriptor=\"k_v.sub\",result=\"total_hits\"} "), 12);
    ASSERT_EQ(sample(t, "sluice_rls_hits_total{domain=\"d\",descriptor=\"k_v.sub\",result=\"within_limit\"} "), 9);
    ASSERT_EQ(sample(t, "sluice_rls_hits_total{domain=\"d\",descriptor=\"k_v.sub\",result=\"near_limit\"} "), 1);
    ASSERT_EQ(sample(t, "sluice_rls_hits_total{domain=\"d\",descriptor=\"k_v.sub\",result=\"over_limit\"} "), 3);
    ASSERT_EQ(sample(t, "sluice_rls_hits_total{domain=\"d\",descriptor=\"k_v.sub\",result=\"shadow_mode\"} "), 1);
    ASSERT_EQ(sample(t, "sluice_rls_hits_total{domain=\"we\\\"ird\",descriptor=\"a\\\\b\\nc\",result=\"total_hits\"} "), 1);
    ASSERT_EQ(sample(t, "\nsluice_rls_domain_not_found_total "), 1);
    ASSERT_EQ(sample(t, "\nsluice_rls_refused_uncharged_total "), 1);
    ASSERT(t[len - 1] == '\n');
    free(t);
}

typedef struct targ {
    int id;
} targ;

static void *worker(void *arg)
{
    targ *a = arg;
    char label[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(label, sizeof(label), "shared%d", i % 50);
        sluice__rls_metrics_count("t", label, 1, false, false, 5, 10);
        snprintf(label, sizeof(label), "own%d_%d", a->id, i % 50);
        sluice__rls_metrics_count("t", label, 2, true, false, 0, 10);
    }
    return NULL;
}

static void test_threads(void)
{
    sluice__rls_metrics_reset();
    pthread_t th[4];
    targ args[4];
    for (int i = 0; i < 4; i++) {
        args[i].id = i;
        ASSERT_EQ(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    size_t len;
    char *t = sluice__rls_metrics_render(&len);
    uint64_t shared = 0, own = 0;
    char series[160];
    for (int k = 0; k < 50; k++) {
        snprintf(series, sizeof(series),
                 "sluice_rls_hits_total{domain=\"t\",descriptor=\"shared%d\",result=\"total_hits\"} ", k);
        shared += sample(t, series);
        for (int i = 0; i < 4; i++) {
            snprintf(series, sizeof(series),
                     "sluice_rls_hits_total{domain=\"t\",descriptor=\"own%d_%d\",result=\"over_limit\"} ",
                     i, k);
            own += sample(t, series);
        }
    }
    ASSERT_EQ(shared, 4 * 20000);
    ASSERT_EQ(own, 4 * 20000 * 2);
    free(t);
}

/* runs last: fills the table */
static void test_overflow(void)
{
    char label[32];
    for (int i = 0; i < SLUICE_RLS_METRIC_SLOTS + 10; i++) {
        snprintf(label, sizeof(label), "many%d", i);
        sluice__rls_metrics_count("o", label, 1, false, false, 0, 1);
    }
    size_t len;
    char *t = sluice__rls_metrics_render(&len);
    uint64_t other = sample(t, "sluice_rls_hits_total{domain=\"_other\",descriptor=\"_other\",result=\"total_hits\"} ");
    ASSERT(other != (uint64_t)-1);
    ASSERT(other >= 10);
    /* every count lands somewhere: named slots + _other = all hits of domain o */
    uint64_t named = 0;
    for (char *line = t, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, "sluice_rls_hits_total{domain=\"o\",", 33) == 0 &&
            strstr(line, "result=\"total_hits\"} "))
            named += strtoull(strstr(line, "} ") + 2, NULL, 10);
    }
    ASSERT_EQ(named + other, SLUICE_RLS_METRIC_SLOTS + 10);
    free(t);
}

int main(void)
{
    RUN(test_counts);
    RUN(test_threads);
    RUN(test_overflow);
    return test_done();
}
