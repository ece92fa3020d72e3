/* SPDX-License-Identifier: MIT */
/*
 * siphash.c - SipHash-2-4 written from the paper "SipHash: a fast short-input
 * PRF" (Aumasson, Bernstein, 2012): four 64-bit words of state initialised
 * from the key and four constants, two SipRounds per 8-byte message word,
 * a final word holding the tail bytes and the length mod 256, then 0xff
 * into v2 and four finalisation rounds.  No I/O besides seeding the key.
 */
#include "util/siphash.h"

#include <endian.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v)); /* one unaligned load; compilers fold the copy */
    return le64toh(v);
}

/* One SipRound: the ARX network of the paper's figure. */
#define SIPROUND(v0, v1, v2, v3)                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

uint64_t sluice__siphash(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    /* "somepseudorandomlygeneratedbytes" */
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;

    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    /* Last word: the 0..7 remaining bytes, the length mod 256 in the top byte. */
    uint64_t m = (uint64_t)(len & 0xff) << 56;
    const uint8_t *t = p + full;
    switch (len & 7) { /* unrolled: a loop over the tail cost a quarter of a short key's hash */
    case 7:
        m |= (uint64_t)t[6] << 48; /* fall through */
    case 6:
        m |= (uint64_t)t[5] << 40; /* fall through */
    case 5:
        m |= (uint64_t)t[4] << 32; /* fall through */
    case 4:
        m |= (uint64_t)t[3] << 24; /* fall through */
    case 3:
        m |= (uint64_t)t[2] << 16; /* fall through */
    case 2:
        m |= (uint64_t)t[1] << 8; /* fall through */
    case 1:
        m |= (uint64_t)t[0];
        break;
    default:
        break;
    }
    v3 ^= m;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= m;

    v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint8_t hash_key[16];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
    size_t got = 0;
    while (got < sizeof(hash_key)) {
        ssize_t r = getrandom(hash_key + got, sizeof(hash_key) - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got == sizeof(hash_key))
        return;
    /* No kernel randomness: mix what differs per run through SipHash itself. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t mix[4] = {(uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)(uintptr_t)&ts,
                       (uint64_t)(uintptr_t)&hash_key};
    uint64_t a = sluice__siphash(hash_key, mix, sizeof(mix));
    mix[0] ^= a;
    uint64_t b = sluice__siphash(hash_key, mix, sizeof(mix));
    memcpy(hash_key, &a, 8);
    memcpy(hash_key + 8, &b, 8);
}

const uint8_t *sluice__hash_key(void)
{
    pthread_once(&hash_key_once, hash_key_init);
    return hash_key;
}
