/* SPDX-License-Identifier: MIT */
/*
 * test_path.c - the canonical request path (src/policy/path.c): a table of
 * spellings and their canonical form, the output bound, and random bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "test.h"

static void check(const char *in, const char *want)
{
    char out[256];
    size_t n = sluice__path_canon(in, strlen(in), out);
    ASSERT_STREQ(out, want);
    ASSERT_EQ(n, strlen(want));
}

static void test_table(void)
{
    check("", "/");
    check("/", "/");
    check("//", "/");
    check("/a", "/a");
    check("/a/", "/a");
    check("a/b", "/a/b");
    check("/a//b///c", "/a/b/c");
    check("/a/./b/.", "/a/b");
    check("/a/b/../c", "/a/c");
    check("/a/b/../../..", "/");
    check("/../../a", "/a");
    check("/a/..b/.c/...", "/a/..b/.c/...");
    check("/%41%62c", "/Abc");
    check("/a%2Fb", "/a/b");
    check("/a/%2e%2E/b", "/b");
    check("/a%00b", "/a%00b");
    check("/a%zzb%4", "/a%zzb%4");
    check("/a%", "/a%");
    check("/A/B", "/A/B");
    check("/a%252e", "/a%2e"); /* decoded once, as nginx does */
}

/* Random bytes: never longer than len + 1, always '/'-led and NUL-ended,
 * and canonical forms are fixed points. */
static void test_random(void)
{
    uint64_t st = test_seed();
    static const char alphabet[] = "/./..%2e2fF0a";
    for (int t = 0; t < 20000; t++) {
        char in[64], out[80], again[96];
        size_t len = (size_t)test_range(&st, 0, 60);
        for (size_t i = 0; i < len; i++)
            in[i] = test_range(&st, 0, 9) == 0 ? (char)test_range(&st, 1, 255)
                                               : alphabet[test_range(&st, 0, sizeof(alphabet) - 2)];
        memset(out, 'X', sizeof(out));
        size_t n = sluice__path_canon(in, len, out);
        ASSERT(n <= len + 1);
        ASSERT_EQ(out[0], '/');
        ASSERT_EQ(out[n], '\0');
        ASSERT_EQ(strlen(out), n);
        ASSERT(n == 1 || out[n - 1] != '/');
        ASSERT(strstr(out, "//") == NULL);
        /* a form without '%' is a fixed point (with '%', a second pass may
         * decode what the first produced, as a second nginx would) */
        if (!strchr(out, '%')) {
            size_t m = sluice__path_canon(out, n, again);
            ASSERT_EQ(m, n);
            ASSERT(memcmp(out, again, n) == 0);
        }
    }
}

int main(void)
{
    RUN(test_table);
    RUN(test_random);
    return test_done();
}
