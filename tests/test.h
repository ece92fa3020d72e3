/* SPDX-License-Identifier: MIT */
/*
 * test.h - the one assertion header of the unit tests.  Asserts print both
 * sides; a failing assert ends the test process with status 1 (CTest runs
 * each test file as its own process).  Random tests take their seed from
 * test_seed(), which prints it and honours SLUICE_SEED to replay a failure.
 */
#ifndef SLUICE_TEST_H
#define SLUICE_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void test_fail(const char *file, int line, const char *fmt, ...);
/* Runs fn, counting it; prints "ok <name>". */
void test_run(const char *name, void (*fn)(void));
/* Prints "N passed, 0 failed" and returns the exit status for main(). */
int test_done(void);
/* Seed from SLUICE_SEED or the clock; printed so a failure can be replayed. */
uint64_t test_seed(void);
/* xorshift64* step; state must be non-zero. */
uint64_t test_rand(uint64_t *state);
/* Uniform in [lo, hi]. */
int64_t test_range(uint64_t *state, int64_t lo, int64_t hi);

#define RUN(fn) test_run(#fn, fn)

#define ASSERT(c)                                                                  \
    do {                                                                           \
        if (!(c))                                                                  \
            test_fail(__FILE__, __LINE__, "assertion failed: %s", #c);             \
    } while (0)

#define ASSERT_EQ(a, b)                                                            \
    do {                                                                           \
        int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                              \
        if (a_ != b_)                                                              \
            test_fail(__FILE__, __LINE__, "%s == %s: %" PRId64 " != %" PRId64, #a, \
                      #b, a_, b_);                                                 \
    } while (0)

#define ASSERT_STREQ(a, b)                                                         \
    do {                                                                           \
        const char *a_ = (a), *b_ = (b);                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                     \
            test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,    \
                      a_ ? a_ : "(null)", b_ ? b_ : "(null)");                     \
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                               \
    do {                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                    \
        if (!h_ || !strstr(h_, n_))                                                \
            test_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"",        \
                      h_ ? h_ : "(null)", n_);                                     \
    } while (0)

#endif /* SLUICE_TEST_H */
