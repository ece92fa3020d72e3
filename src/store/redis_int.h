/* SPDX-License-Identifier: MIT */
/*
 * redis_int.h - internals shared by the files of the redis:// and
 * redis+sentinel:// store: the store object (redis.c: blocking pool),
 * the asynchronous per-loop connection (redis_async.c), Sentinel discovery
 * (sentinel.c), command building and reply parsing (redis_reply.c) and the
 * script's SHA1 (redis_sha1.c).  Nothing here prints; the password is never
 * copied into an error message.
 */
#ifndef SLUICE_STORE_REDIS_INT_H
#define SLUICE_STORE_REDIS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "store/store.h"

#define SLUICE_REDIS_POOL 8 /* blocking contexts per store */
#define SLUICE_REDIS_BACKOFF_MIN_MS 10
#define SLUICE_REDIS_BACKOFF_MAX_MS 1000
#define SLUICE_REDIS_HOST_MAX 256
#define SLUICE_REDIS_ASYNC_MAX_INFLIGHT 65536 /* per loop connection */
/* TTL slack for explicit (replay) times: the key's TTL runs on the server's
 * real clock while its state lives on the caller's virtual clock, so such
 * keys live this much longer than their reset_after. */
#define SLUICE_REDIS_REPLAY_SLACK_MS 60000

typedef struct sluice__sentinel sluice__sentinel;

/* One blocking context of the pool; used under its own mutex. */
typedef struct sluice__redis_slot {
    pthread_mutex_t mu;
    redisContext *c;     /* NULL when down */
    uint64_t gen;        /* address generation c was connected to */
    int64_t retry_at_us; /* monotonic: no reconnect before this */
    int backoff_ms;      /* next backoff; 0 after a success */
    int io_timeout_ms;   /* what SO_RCVTIMEO/SO_SNDTIMEO are set to */
    int setup_pending;   /* replies to the connection setup not read yet (redis.c) */
} sluice__redis_slot;

/* The store: immutable after open except the address and the pool. */
typedef struct sluice__redis {
    bool sentinel;         /* redis+sentinel:// */
    char *user, *password; /* NULL when absent; never logged */
    int db;
    int timeout_ms;
    char sha[41]; /* SHA1 of the script, lowercase hex */

    pthread_mutex_t addr_mu; /* guards host, port, gen */
    char host[SLUICE_REDIS_HOST_MAX];
    int port;
    atomic_uint_fast64_t gen; /* bumped when the master address changes */

    sluice__sentinel *snt; /* NULL for redis:// */
    atomic_uint next_slot;
    sluice__redis_slot slots[SLUICE_REDIS_POOL];
} sluice__redis;

/* ---- redis.c --------------------------------------------------------- */

/** Monotonic microseconds. */
int64_t sluice__redis_mono_us(void);

/** Copies the current master address; returns its generation. */
uint64_t sluice__redis_addr(sluice__redis *r, char *host, size_t size, int *port);

/** Sets the master address (from Sentinel); bumps the generation if it changed. */
void sluice__redis_set_addr(sluice__redis *r, const char *host, int port);

/** Called on errors that may mean the master moved: asks Sentinel to re-resolve. */
void sluice__redis_suspect(sluice__redis *r);

/* ---- redis_reply.c --------------------------------------------------- */

/**
 * Builds the RESP command deciding op: EVALSHA with r->sha, or EVAL with the
 * whole script when eval is true.  *cmd is a new buffer (free with
 * redisFreeCommand), its length is returned; negative SLUICE_E* on failure.
 */
long sluice__redis_format(const sluice__redis *r, const sluice__op *op, bool eval, char **cmd);

/**
 * Like sluice__redis_format() with the script's SHA1 (40 lowercase hex
 * digits) given directly; for stores that are not a sluice__redis
 * (redis+cluster://, cluster.c).
 */
long sluice__redis_format_sha(const char *sha, const sluice__op *op, bool eval, char **cmd);

/**
 * Fills out from the script's reply.  Returns 0, or SLUICE_ESTORE with err
 * set for an error reply or a reply of unexpected shape.
 */
int sluice__redis_parse(const redisReply *reply, const sluice__op *op, sluice_decision *out,
                        sluice_error *err);

/** True for a NOSCRIPT error reply. */
bool sluice__redis_is_noscript(const redisReply *reply);

/** True for error replies meaning "not the master any more" (READONLY, MASTERDOWN, LOADING). */
bool sluice__redis_is_moved_master(const redisReply *reply);

/** Formats err as SLUICE_ESTORE "redis: <what>: <detail>" (detail may be NULL). */
int sluice__redis_error(sluice_error *err, int code, const char *what, const char *detail);

/* ---- redis_sha1.c ---------------------------------------------------- */

/** Writes the lowercase hex SHA1 of data[0..len) and a NUL into hex[41]. */
void sluice__sha1_hex(const void *data, size_t len, char hex[41]);

/* ---- sentinel.c ------------------------------------------------------ */

/**
 * Starts Sentinel discovery of master for store r: resolves once now
 * (bounded by r->timeout_ms per sentinel; a failure is not an error, the
 * background thread keeps trying), then follows +switch-master and re-asks
 * on sluice__sentinel_kick() and every few seconds.  Returns 0,
 * SLUICE_ENOMEM or SLUICE_ESTORE (thread could not start).
 */
int sluice__sentinel_start(sluice__sentinel **out, sluice__redis *r, const sluice__url *url,
                           sluice_error *err);

/** Asks the thread to re-resolve now (after an error on the master). */
void sluice__sentinel_kick(sluice__sentinel *s);

/** Stops the thread and frees.  Accepts NULL. */
void sluice__sentinel_stop(sluice__sentinel *s);

/* ---- redis_async.c --------------------------------------------------- */

int sluice__redis_attach(void *impl, struct event_base *base, void **conn, sluice_error *err);
void sluice__redis_detach(void *conn);
int sluice__redis_decide_async(void *conn, const sluice__op *op, sluice__store_cb cb, void *arg);

#endif /* SLUICE_STORE_REDIS_INT_H */
