/* SPDX-License-Identifier: MIT */
/*
 * crc16.c - CRC16/XMODEM and the Redis Cluster hash slot of a key.  The
 * table is computed at compile time from the polynomial by a constant
 * expression, so there is no initialisation step and no shared mutable
 * state.  Pure functions.
 */
#include <string.h>

#include "store/redis/crc16.h"

/* One table entry: eight shift-and-xor steps of the polynomial 0x1021. */
#define S1(c) ((uint16_t)(((c)&0x8000) ? (((c) << 1) ^ 0x1021) : ((c) << 1)))
#define S2(c) S1(S1(c))
#define S4(c) S2(S2(c))
#define S8(c) S4(S4(c))
#define E(i) S8((uint16_t)((i) << 8))
#define R8(i) E(i), E(i + 1), E(i + 2), E(i + 3), E(i + 4), E(i + 5), E(i + 6), E(i + 7)
#define R64(i)                                                                                     \
    R8(i), R8(i + 8), R8(i + 16), R8(i + 24), R8(i + 32), R8(i + 40), R8(i + 48), R8(i + 56)

static const uint16_t crc_table[256] = {R64(0), R64(64), R64(128), R64(192)};

uint16_t sluice__crc16(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ p[i]) & 0xff]);
    return crc;
}

int sluice__cluster_keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close && close > key + from)
            return sluice__crc16(key + from, (size_t)(close - (key + from))) &
                   (SLUICE_CLUSTER_SLOTS - 1);
    }
    return sluice__crc16(key, len) & (SLUICE_CLUSTER_SLOTS - 1);
}
