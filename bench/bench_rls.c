/* SPDX-License-Identifier: MIT */
/*
 * bench_rls.c - the cost of an Envoy RLS decision on the memory store next to
 * a rule decision in the same run: decisions per second on one thread of
 * sluice_decide_async() (a fixed_window rule) and of
 * sluice__rls_decide_async() with one and with five descriptors (README
 * example 2's nested descriptor), over N distinct keys.
 *
 *   bench_rls [keys=10000] [seconds=1] [path=all|0|1|2]   (from the source tree, or with
 *   SLUICE_SRC set; path 0 the rule, 1 one descriptor, 2 five descriptors)
 *
 * A negative seconds -N runs exactly N decisions per path instead, for
 * instruction counts that do not depend on the machine's load:
 *   valgrind --tool=callgrind bench_rls 10000 -20000, then the inclusive
 *   counts of sluice_decide_async and finish (one per RLS request).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rls/rls_int.h"
#include "sluice.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long done;
static void on_rule(int status, const sluice_decision *d, void *arg)
{
    (void)d;
    (void)arg;
    done += status == 0;
}
static void on_rls(int status, const sluice__rls_reply *r, void *arg)
{
    (void)r;
    (void)arg;
    done += status == 0;
}

int main(int argc, char **argv)
{
    long keys = argc > 1 ? atol(argv[1]) : 10000;
    double secs = argc > 2 ? atof(argv[2]) : 1.0;
    int only = argc > 3 && strcmp(argv[3], "all") != 0 ? atoi(argv[3]) : -1;
    const char *src = getenv("SLUICE_SRC") ? getenv("SLUICE_SRC") : ".";
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "descriptors_config: [%s/tests/rls/upstream/readme/example2.yaml]\n"
             "rules:\n  - name: r\n    limits: [{algorithm: fixed_window, limit: 1000000, "
             "window: 1d}]\n", src);
    sluice_config *cfg = NULL;
    sluice_store *st = NULL;
    sluice_async *a = NULL;
    sluice_error err = {0};
    if (sluice_config_load_string(&cfg, yaml, strlen(yaml), "bench", &err) ||
        sluice_store_open(&st, "memory://", NULL, &err) || sluice_async_new(&a, st, NULL, &err)) {
        fprintf(stderr, "bench_rls: %s\n", err.msg);
        return 1;
    }
    const sluice__rls *rls = sluice__config_rls(cfg);
    char num[32];
    sluice__rls_descriptor d[5];
    memset(d, 0, sizeof(d));
    for (int i = 0; i < 5; i++) {
        d[i].nentries = 2;
        d[i].entries[0] = (sluice__rls_entry){"message_type", 12, "marketing", 9};
        d[i].entries[1] = (sluice__rls_entry){"to_number", 9, num, 0};
    }
    sluice__rls_request req = {.domain = "messaging", .domain_len = 9, .descriptors = d};
    printf("%-28s %14s %10s\n", "path", "decisions/s", "ns each");
    for (int mode = 0; mode < 3; mode++) {
        if (only >= 0 && mode != only)
            continue;
        done = 0;
        long n = 0;
        double t0 = now_s(), t1 = t0;
        while (secs > 0 ? t1 - t0 < secs : n < (long)-secs) {
            for (int k = 0; k < 1000; k++, n++) {
                int len = snprintf(num, sizeof(num), "%ld", n % keys);
                if (mode == 0) {
                    sluice_match m;
                    sluice_config_match_rule(cfg, "r", NULL, num, (size_t)len, &m, NULL);
                    sluice_decide_async(a, cfg, &m, 1, SLUICE_NOW, on_rule, NULL);
                } else {
                    for (int i = 0; i < 5; i++)
                        d[i].entries[1].value_len = (size_t)len;
                    req.ndescriptors = mode == 1 ? 1 : 5;
                    sluice__rls_decide_async(a, rls, cfg, &req, on_rls, NULL);
                }
            }
            t1 = now_s();
        }
        static const char *names[] = {"rule (sluice_decide_async)", "rls, 1 descriptor",
                                      "rls, 5 descriptors"};
        printf("%-28s %14.0f %10.0f\n", names[mode], (double)done / (t1 - t0),
               (t1 - t0) * 1e9 / (double)done);
    }
    sluice_async_free(a);
    sluice_store_close(st);
    sluice_config_free(cfg);
    return 0;
}
