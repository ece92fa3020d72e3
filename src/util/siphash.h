/* SPDX-License-Identifier: MIT */
/*
 * siphash.h - SipHash-2-4 (Aumasson and Bernstein, 2012), the keyed hash of
 * the memory store, and the process-wide random hash key.  A keyed hash
 * keeps clients who choose identifiers from flooding one hash chain.
 * Pure functions; the key is the one mutable global besides the allocator.
 */
#ifndef SLUICE_UTIL_SIPHASH_H
#define SLUICE_UTIL_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/**
 * SipHash-2-4 of len bytes at data under the 128-bit key (16 bytes, read
 * little-endian as two 64-bit words).  Returns the 64-bit tag.
 */
uint64_t sluice__siphash(const uint8_t key[16], const void *data, size_t len);

/**
 * The process-wide random hash key: 16 bytes from getrandom(), drawn once
 * on first use (thread-safe).  If the kernel gives no randomness the key is
 * mixed from the clock and addresses instead, which still differs per run.
 */
const uint8_t *sluice__hash_key(void);

#endif /* SLUICE_UTIL_SIPHASH_H */
