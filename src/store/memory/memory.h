/* SPDX-License-Identifier: MIT */
/*
 * memory.h - direct entry points of the embedded store, for store.c's local
 * fallback (on_store_error: local) and for tests.  The same functions sit
 * behind sluice__memory_ops.
 */
#ifndef SLUICE_STORE_MEMORY_H
#define SLUICE_STORE_MEMORY_H

#include <stddef.h>

#include "store/store.h"

typedef struct sluice__memstore sluice__memstore;

/**
 * Opens an empty memory store.  url may be NULL (defaults) or a parsed
 * memory:// URL whose query may set max_keys=N (1..2^40) and shards=N (a
 * power of two up to 1024, default 64; fewer when the bound is small, so
 * each shard holds at least 1024 keys).  With max_keys a full shard evicts
 * its least recently used key (exact LRU).  Without it the store is bounded
 * at 1e7 keys, and a full shard evicts, of a sample of 16 keys, the one that
 * becomes idle the soonest.  Returns 0 with *out set, SLUICE_EURL for a bad
 * parameter, or SLUICE_ENOMEM.
 */
int sluice__memory_open(sluice__memstore **out, const sluice__url *url, sluice_error *err);

/**
 * As sluice__memory_open, with cap (1..2^40) in place of the 1e7 bound that
 * applies when the URL sets no max_keys; for tests of that sampled eviction.
 * SLUICE_EINVAL for a cap out of range.
 */
int sluice__memory_open_capped(sluice__memstore **out, const sluice__url *url,
                               unsigned long long cap, sluice_error *err);

/** Frees the store and every key.  Accepts NULL.  No decision may be running. */
void sluice__memory_close(sluice__memstore *m);

/** Keys held now (nodes whose state is not yet back to untouched).  Thread-safe. */
size_t sluice__memory_keys(sluice__memstore *m);

/**
 * For tests: checks the tables' invariants (every key is found by a search
 * for it, counts agree, a search always ends).  0 when they hold, else -1.
 * Takes each shard's lock in turn; O(keys).
 */
int sluice__memory_check(sluice__memstore *m);

/**
 * Decides op on the store: 0 with out filled, SLUICE_EINVAL/EKEY for a bad
 * op, or SLUICE_ENOMEM with no state changed.  Thread-safe.
 */
int sluice__memory_decide(sluice__memstore *m, const sluice__op *op, sluice_decision *out,
                          sluice_error *err);

#endif /* SLUICE_STORE_MEMORY_H */
