/* SPDX-License-Identifier: MIT */
/*
 * deny_cache.h - the exact local deny cache of the Redis clients (SPEC
 * section 3, docs/redis.md "The deny cache"): once Redis has denied a
 * request, the same request (same key, same limits, same cost) is answered
 * in the process, without a round trip, for as long as that denial is
 * certain, with every field equal to what Redis would have answered had no
 * other traffic touched the key.
 *
 * Why it is exact.  Other traffic on a key only admits requests, and an
 * admitted request only fills a limit further: it can delay a key's
 * recovery, never hasten it.  So a denial observed at server time t0 holds
 * at least until t0 + h, where h (sluice__deny_horizon) is how long the
 * fields of the reply are known to follow from t0 by the passage of time
 * alone: remaining constant, reset_after and retry_after shrinking by the
 * elapsed milliseconds (derivation per algorithm in deny_cache.c).
 *
 * The server's clock is only known within a round trip: a reply carrying
 * server time ts left a command sent at local time a and came back at local
 * time b.  A local answer at time l is Redis's answer at server time
 * ts + (l - b), the earliest the server's clock can read then (so now_ms
 * never runs ahead of Redis and retry_after is never understated), and it
 * is given only while the latest the server's clock can read,
 * ts + 1 + (l - a), is still inside the denial, both with a rate margin of
 * 1/SLUICE_DENY_CACHE_DRIFT between the two clocks.  Requests with an
 * explicit time (sluice replay) use that time as the server's.
 *
 * Bounded: SLUICE_DENY_CACHE_SETS x SLUICE_DENY_CACHE_WAYS entries, a set
 * chosen by SipHash of the key under the process's random key; an entry is
 * trusted at most SLUICE_DENY_CACHE_MAX_MS.  Thread-safe (striped locks):
 * the blocking pool serves any number of threads and every sluiced worker
 * loop shares the store's cache.
 */
#ifndef SLUICE_STORE_REDIS_DENY_CACHE_H
#define SLUICE_STORE_REDIS_DENY_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

#define SLUICE_DENY_CACHE_SETS 1024      /* default number of sets (power of two) */
#define SLUICE_DENY_CACHE_WAYS 4         /* entries per set */
#define SLUICE_DENY_CACHE_MAX_MS 3600000 /* an entry is trusted at most one hour */
#define SLUICE_DENY_CACHE_DRIFT 1000     /* the two clocks' rates differ by < 1/1000 */

typedef struct sluice__deny_cache sluice__deny_cache;

/**
 * A new, empty cache of nsets x SLUICE_DENY_CACHE_WAYS entries (nsets a
 * power of two, 0 for SLUICE_DENY_CACHE_SETS).  NULL when out of memory or
 * nsets is not a power of two.
 */
sluice__deny_cache *sluice__deny_cache_new(unsigned nsets);

/** Frees dc and its entries.  Accepts NULL. */
void sluice__deny_cache_free(sluice__deny_cache *dc);

/** The local clock of the cache: monotonic nanoseconds. */
int64_t sluice__deny_cache_clock_ns(void);

/**
 * Answers op locally when a cached denial covers it at local time now_ns:
 * true with out filled (exactly as sluice__redis_parse would fill it from
 * Redis's reply), false when op must go to Redis.  dc may be NULL (false).
 */
bool sluice__deny_cache_lookup(sluice__deny_cache *dc, const sluice__op *op, int64_t now_ns,
                               sluice_decision *out);

/**
 * Learns from Redis's answer d to op: a denial that can be cached is
 * stored; an admitted request of cost > 0 drops every entry of its key
 * (this client's own traffic then counts, so sluice replay prints the same
 * rows with the cache on and off).  sent_ns: a local time no later than the
 * command was sent; recv_ns: no earlier than the reply was read.  dc may be
 * NULL.
 */
void sluice__deny_cache_record(sluice__deny_cache *dc, const sluice__op *op, int64_t sent_ns,
                               int64_t recv_ns, const sluice_decision *d);

/** Entries held now, and decisions answered locally so far. */
uint64_t sluice__deny_cache_entries(sluice__deny_cache *dc);
uint64_t sluice__deny_cache_hits(sluice__deny_cache *dc);

/** The same summed over every cache of the process (sluiced's /metrics). */
void sluice__deny_cache_totals(uint64_t *hits, uint64_t *entries);

/* ---- the pure parts, exposed for tests -------------------------------- */

/**
 * How many milliseconds after its server time d (Redis's denial of a
 * request of cost over limits[0..n)) is certain and predictable: 0 when it
 * must not be cached (allowed, a limit with retry_after -1, or a field that
 * the reply does not pin down), else at most SLUICE_DENY_CACHE_MAX_MS.
 */
int64_t sluice__deny_horizon(const sluice_limit *limits, int n, int64_t cost,
                             const sluice_decision *d);

/**
 * Redis's answer dt ms (0 <= dt < horizon) after the denial d0 with no
 * other traffic: remaining unchanged, reset_after and retry_after dt less
 * (reset_after of an admitting limit not below 0), the top-level fields
 * recombined, now_ms = d0->now_ms + dt.
 */
void sluice__deny_predict(const sluice_decision *d0, int64_t dt, sluice_decision *out);

/**
 * The last local instant (ns) at which the server's clock certainly reads
 * less than ts + h_ms, for a command sent at local sent_ns whose reply
 * carried ts.  INT64_MIN when there is none (h_ms < 2).
 */
int64_t sluice__deny_deadline_ns(int64_t sent_ns, int64_t h_ms);

/**
 * The earliest reading (ms) of the server's clock at local now_ns, given a
 * reply carrying ts_ms read at local recv_ns.  -1 when now_ns < recv_ns
 * (no lower bound beyond ts is known yet).
 */
int64_t sluice__deny_server_ms(int64_t ts_ms, int64_t recv_ns, int64_t now_ns);

#endif /* SLUICE_STORE_REDIS_DENY_CACHE_H */
