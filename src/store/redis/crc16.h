/* SPDX-License-Identifier: MIT */
/*
 * crc16.h - Redis Cluster key hashing: CRC16/XMODEM and the hash-tag rule
 * (protocols.md 6.3).  Pure functions: no I/O, no state.
 */
#ifndef SLUICE_STORE_CRC16_H
#define SLUICE_STORE_CRC16_H

#include <stddef.h>
#include <stdint.h>

#define SLUICE_CLUSTER_SLOTS 16384

/** CRC16/XMODEM (poly 0x1021, init 0, no reflection) of data[0..len). */
uint16_t sluice__crc16(const void *data, size_t len);

/**
 * The cluster hash slot (0..16383) of a key: if the key holds a '{', a '}'
 * after it, and at least one byte between the first '{' and the first '}'
 * after it, only those bytes are hashed; otherwise the whole key is.
 */
int sluice__cluster_keyslot(const char *key, size_t len);

#endif /* SLUICE_STORE_CRC16_H */
