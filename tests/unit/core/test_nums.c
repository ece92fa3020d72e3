/* SPDX-License-Identifier: MIT */
/*
 * test_nums.c - the packed decimal numbers of SLUICE.DECIDE (core/nums.h):
 * the writer against printf for edge values and a million pseudo-random
 * ones of every length, the reader as its exact inverse, and every form the
 * reader must refuse (the module answers those with an error reply).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/nums.h"
#include "test.h"

static void check_put(int64_t v)
{
    char got[SLUICE__NUM_MAX + 1], want[32];
    *sluice__num_put(got, v) = '\0';
    snprintf(want, sizeof(want), "%" PRId64, v);
    ASSERT_STREQ(got, want);
    /* the reader takes back every value of at most 18 digits */
    size_t digits = strlen(want) - (v < 0);
    int64_t back = 0;
    if (digits <= 18) {
        ASSERT_EQ(sluice__nums_parse(got, strlen(got), &back, 1), 0);
        ASSERT_EQ(back, v);
    } else {
        ASSERT_EQ(sluice__nums_parse(got, strlen(got), &back, 1), -1);
    }
}

static void test_put(void)
{
    static const int64_t edges[] = {0,
                                    1,
                                    9,
                                    10,
                                    99,
                                    100,
                                    101,
                                    999,
                                    1000,
                                    -1,
                                    -9,
                                    -10,
                                    -100,
                                    1700000000123LL,
                                    999999999999999999LL,
                                    1000000000000000000LL,
                                    -999999999999999999LL,
                                    INT64_MAX,
                                    INT64_MIN,
                                    INT64_MIN + 1};
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        check_put(edges[i]);
    /* every power of ten and its neighbours: where digits() can be off by one */
    for (int64_t p = 1; p <= INT64_MAX / 10; p *= 10) {
        check_put(p - 1);
        check_put(p);
        check_put(p + 1);
        check_put(-p);
    }
    uint64_t x = 0x9e3779b97f4a7c15ULL; /* xorshift64: every length of number */
    for (int i = 0; i < 1000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        check_put((int64_t)(x >> (x % 64)) * ((x & 1) ? -1 : 1));
    }
}

static void test_parse(void)
{
    int64_t v[4];
    ASSERT_EQ(sluice__nums_parse("-1 1 0", 6, v, 3), 0);
    ASSERT_EQ(v[0], -1);
    ASSERT_EQ(v[1], 1);
    ASSERT_EQ(v[2], 0);
    ASSERT_EQ(sluice__nums_parse("123456789012345678", 18, v, 1), 0);
    ASSERT_EQ(v[0], 123456789012345678LL);
    /* the length bounds the read: bytes after len are not looked at */
    ASSERT_EQ(sluice__nums_parse("12 34", 2, v, 1), 0);
    ASSERT_EQ(v[0], 12);
    static const struct {
        const char *s;
        int n;
    } bad[] = {
        {"", 1},
        {" ", 1},
        {"1 ", 1},
        {" 1", 1},
        {"1  2", 2},
        {"1 2", 1},
        {"1", 2},
        {"-", 1},
        {"1-", 1},
        {"+1", 1},
        {"--1", 1},
        {"1e3", 1},
        {"1.5", 1},
        {"0x10", 1},
        {"1\t2", 2},
        {"1234567890123456789", 1},
        {"-1234567890123456789", 1},
        {"1 2 3 ", 3},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (sluice__nums_parse(bad[i].s, strlen(bad[i].s), v, bad[i].n) != -1)
            test_fail(__FILE__, __LINE__, "accepted \"%s\" as %d numbers", bad[i].s, bad[i].n);
    }
    /* a NUL inside the string is not a separator */
    ASSERT_EQ(sluice__nums_parse("1\0002", 3, v, 2), -1);
}

/* nums_put writes what nums_parse reads back, at the sizes the module uses */
static void test_put_list(void)
{
    int64_t v[3 + 4 * 8], back[3 + 4 * 8];
    uint64_t x = 12345;
    for (int n = 1; n <= (int)(sizeof(v) / sizeof(v[0])); n++) {
        for (int i = 0; i < n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            v[i] = (int64_t)(x >> 11) % 1000000000000000LL; /* at most 15 digits, both signs */
        }
        char buf[(3 + 4 * 8) * (SLUICE__NUM_MAX + 1)];
        char *end = sluice__nums_put(buf, v, n);
        ASSERT_EQ(sluice__nums_parse(buf, (size_t)(end - buf), back, n), 0);
        for (int i = 0; i < n; i++)
            ASSERT_EQ(back[i], v[i]);
        /* one number fewer or more than written is refused */
        ASSERT_EQ(sluice__nums_parse(buf, (size_t)(end - buf), back, n + 1), -1);
        if (n > 1)
            ASSERT_EQ(sluice__nums_parse(buf, (size_t)(end - buf), back, n - 1), -1);
    }
    char one[SLUICE__NUM_MAX + 1];
    const int64_t m1 = -1;
    *sluice__nums_put(one, &m1, 1) = '\0';
    ASSERT_STREQ(one, "-1");
}

int main(void)
{
    RUN(test_put);
    RUN(test_parse);
    RUN(test_put_list);
    return test_done();
}
