/* SPDX-License-Identifier: MIT */
/* test.c - the runner behind test.h. */
#include "test.h"

#include <stdarg.h>
#include <time.h>

static int passed;
static const char *current = "?";

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s at %s:%d: ", current, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%d passed, 1 failed\n", passed);
    exit(1);
}

void test_run(const char *name, void (*fn)(void))
{
    current = name;
    fn();
    passed++;
    printf("ok %s\n", name);
    fflush(stdout);
}

int test_done(void)
{
    printf("%d passed, 0 failed\n", passed);
    return 0;
}

uint64_t test_seed(void)
{
    const char *env = getenv("SLUICE_SEED");
    uint64_t seed;
    if (env && *env) {
        seed = strtoull(env, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec;
    }
    if (!seed)
        seed = 1;
    printf("seed: SLUICE_SEED=%" PRIu64 "\n", seed);
    return seed;
}

uint64_t test_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int64_t test_range(uint64_t *s, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1;
    return lo + (int64_t)(span ? test_rand(s) % span : test_rand(s));
}
