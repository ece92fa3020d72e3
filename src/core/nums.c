/* SPDX-License-Identifier: MIT */
/*
 * nums.c - the packed decimal numbers of SLUICE.DECIDE (nums.h).  Both ends
 * run on every decision, so each is a single pass with no strtoll and no
 * printf.
 */
#include "core/nums.h"

#include <stdbool.h>
#include <string.h>

/* "00" .. "99": two digits per division halves the divisions */
static const char pairs[201] = "0001020304050607080910111213141516171819202122232425262728293031323"
                               "3343536373839404142434445464748495051525354555657585960616263646566"
                               "676869707172737475767778798081828384858687888990919293949596979899";

/* 10^i; digits() compares against it */
static const uint64_t p10[20] = {1ULL,
                                 10ULL,
                                 100ULL,
                                 1000ULL,
                                 10000ULL,
                                 100000ULL,
                                 1000000ULL,
                                 10000000ULL,
                                 100000000ULL,
                                 1000000000ULL,
                                 10000000000ULL,
                                 100000000000ULL,
                                 1000000000000ULL,
                                 10000000000000ULL,
                                 100000000000000ULL,
                                 1000000000000000ULL,
                                 10000000000000000ULL,
                                 100000000000000000ULL,
                                 1000000000000000000ULL,
                                 10000000000000000000ULL};

/* The number of decimal digits of u >= 10: log2 * 1233/4096 estimates
 * log10, and one comparison corrects it. */
static int digits(uint64_t u)
{
    int t = ((64 - __builtin_clzll(u)) * 1233) >> 12;
    return t + 1 - (u < p10[t]);
}

char *sluice__num_put(char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    if (v < 0) {
        *p++ = '-';
        u = 0 - u;
    }
    if (u < 10) {
        *p = (char)('0' + u);
        return p + 1;
    }
    /* written backwards from the end, which digits() knows */
    char *end = p + digits(u), *q = end;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        q -= 2;
        memcpy(q, pairs + 2 * r, 2);
    }
    if (u >= 10) {
        q -= 2;
        memcpy(q, pairs + 2 * u, 2);
    } else {
        *--q = (char)('0' + u);
    }
    return end;
}

char *sluice__nums_put(char *p, const int64_t *v, int n)
{
    for (int i = 0; i < n; i++) {
        if (i > 0)
            *p++ = ' ';
        p = sluice__num_put(p, v[i]);
    }
    return p;
}

int sluice__nums_parse(const char *p, size_t len, int64_t *out, int n)
{
    const char *end = p + len;
    for (int k = 0; k < n; k++) {
        if (k > 0) {
            if (p == end || *p != ' ')
                return -1;
            p++;
        }
        bool neg = p < end && *p == '-';
        p += neg;
        /* at most 18 digits: a 19th is not a space, so it is refused below */
        const char *digits0 = p, *stop = end - p > 18 ? p + 18 : end;
        uint64_t v = 0;
        unsigned d;
        while (p < stop && (d = (unsigned)(unsigned char)*p - '0') <= 9) {
            v = v * 10 + d;
            p++;
        }
        if (p == digits0 || (p < end && *p != ' '))
            return -1;
        out[k] = neg ? -(int64_t)v : (int64_t)v;
    }
    return p == end ? 0 : -1;
}
