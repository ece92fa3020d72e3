/* SPDX-License-Identifier: MIT */
/*
 * nums.h - the packed decimal form in which SLUICE.DECIDE (src/module) takes
 * its numbers and gives its reply: integers separated by single spaces, as
 * one Redis string.  One writer and one strict reader, used by the module
 * and by the Redis store's client (redis_reply.c) alike, so both sides agree
 * on the form by construction.  Pure; no locale, no allocation.
 */
#ifndef SLUICE_CORE_NUMS_H
#define SLUICE_CORE_NUMS_H

#include <stddef.h>
#include <stdint.h>

/* Room for one number: a sign and 19 digits. */
#define SLUICE__NUM_MAX 20

/** Writes the decimal digits of v (a '-' first when negative, no other
 * sign) at p, which has SLUICE__NUM_MAX bytes of room; returns the end. */
char *sluice__num_put(char *p, int64_t v);

/** Writes the n numbers of v separated by single spaces (the form
 * sluice__nums_parse reads) at p, which has n * (SLUICE__NUM_MAX + 1) bytes
 * of room; returns the end. */
char *sluice__nums_put(char *p, const int64_t *v, int n);

/**
 * Reads exactly n integers from the len bytes at p: each an optional '-' and
 * 1 to 18 decimal digits (so no overflow is possible), separated by single
 * spaces, nothing before the first or after the last.  0, or -1 for anything
 * else (the values in out are then unspecified).
 */
int sluice__nums_parse(const char *p, size_t len, int64_t *out, int n);

#endif /* SLUICE_CORE_NUMS_H */
