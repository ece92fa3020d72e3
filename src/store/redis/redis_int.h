/* SPDX-License-Identifier: MIT */
/*
 * redis_int.h - internals shared by the files of the redis:// and
 * redis+sentinel:// store: the store object (redis.c: blocking pool),
 * the asynchronous per-loop connection (redis_async.c), Sentinel discovery
 * (sentinel.c), command building and reply parsing (redis_reply.c), the
 * script's SHA1 (redis_sha1.c), and the connection handling that the Redis
 * and the Cluster stores share, blocking and asynchronous (redis_conn.c).
 * Nothing here prints; the password is never copied into an error message.
 */
#ifndef SLUICE_STORE_REDIS_INT_H
#define SLUICE_STORE_REDIS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "store/redis/deny_cache.h"
#include "store/redis/redis_engine.h"
#include "store/store.h"

#define SLUICE_REDIS_POOL 8 /* blocking contexts per store */
#define SLUICE_REDIS_BACKOFF_MIN_MS 10
#define SLUICE_REDIS_BACKOFF_MAX_MS 1000
#define SLUICE_REDIS_HOST_MAX 256
#define SLUICE_REDIS_ASYNC_MAX_INFLIGHT 65536 /* per loop connection */
#define SLUICE_REDIS_ASYNC_CONNS 2            /* connections per event loop (redis_async.c) */
/* TTL slack for explicit (replay) times: the key's TTL runs on the server's
 * real clock while its state lives on the caller's virtual clock, so such
 * keys live this much longer than their reset_after. */
#define SLUICE_REDIS_REPLAY_SLACK_MS 60000

typedef struct sluice__sentinel sluice__sentinel;
struct event;
struct event_base;

/* One blocking context of the pool; used under its own mutex. */
typedef struct sluice__redis_slot {
    pthread_mutex_t mu;
    redisContext *c;     /* NULL when down */
    uint64_t gen;        /* address generation c was connected to */
    int64_t retry_at_us; /* monotonic: no reconnect before this */
    int backoff_ms;      /* next backoff; 0 after a success */
    int io_timeout_ms;   /* what SO_RCVTIMEO/SO_SNDTIMEO are set to */
    int setup_pending;   /* replies to the connection setup not read yet (redis.c) */
    bool detect_pending; /* COMMAND INFO sluice.decide queued after the setup (redis.c) */
    bool module;         /* decide with SLUICE.DECIDE (else EVALSHA); redis_engine.c */
} sluice__redis_slot;

/* The store: immutable after open except the address and the pool. */
typedef struct sluice__redis {
    bool sentinel;         /* redis+sentinel:// */
    char *user, *password; /* NULL when absent; never logged */
    int db;
    int timeout_ms;
    char sha[41]; /* SHA1 of the script, lowercase hex */
    int engine;   /* ?engine=: SLUICE__ENGINE_* */
    /* ?deny_cache=on (default); NULL when off */
    sluice__deny_cache *dc;

    pthread_mutex_t addr_mu; /* guards host, port, gen */
    char host[SLUICE_REDIS_HOST_MAX];
    int port;
    atomic_uint_fast64_t gen; /* bumped when the master address changes */

    sluice__sentinel *snt; /* NULL for redis:// */
    atomic_uint next_slot;
    sluice__redis_slot slots[SLUICE_REDIS_POOL];
} sluice__redis;

/**
 * How a store words its errors: sets err (may be NULL) to code and
 * "<scheme>: <what>[: <detail>]", returns code.  sluice__redis_error for
 * redis://, the Cluster store's own for redis+cluster://.
 */
typedef int (*sluice__redis_errf)(sluice_error *err, int code, const char *what,
                                  const char *detail);

/* ?engine= of every Redis URL (redis_engine.c). */
#define SLUICE__ENGINE_AUTO 0   /* the module where the node has it, else Lua */
#define SLUICE__ENGINE_LUA 1    /* always EVALSHA of sluice.lua */
#define SLUICE__ENGINE_MODULE 2 /* always SLUICE.DECIDE; missing = store error */
#define SLUICE__NOMODULE_MSG                                                                       \
    "engine=module: the server has no SLUICE.DECIDE (load sluice_redis.so there, or use "          \
    "engine=auto or engine=lua)"

/* ---- redis.c --------------------------------------------------------- */

/** Monotonic microseconds. */
int64_t sluice__redis_mono_us(void);

/** Copies the current master address; returns its generation. */
uint64_t sluice__redis_addr(sluice__redis *r, char *host, size_t size, int *port);

/** Sets the master address (from Sentinel); bumps the generation if it changed. */
void sluice__redis_set_addr(sluice__redis *r, const char *host, int port);

/**
 * Reads SENTINEL get-master-addr-by-name's reply ["host", "port"] into host
 * (size bytes) and *port.  0, or -1 for any other reply.
 */
int sluice__sentinel_parse_addr(const redisReply *rep, char *host, size_t size, int *port);

/**
 * Reads a +switch-master pub/sub message; 0 with the new address when it is
 * about master, else -1.
 */
int sluice__sentinel_parse_switch(const redisReply *m, const char *master, char *host, size_t size,
                                  int *port);

/** True for a ROLE reply of a master (["master", ...]). */
bool sluice__redis_role_is_master(const redisReply *rep);

/** Called on errors that may mean the master moved: asks Sentinel to re-resolve. */
void sluice__redis_suspect(sluice__redis *r);

/* ---- redis_reply.c --------------------------------------------------- */

/* Bytes of the longest EVALSHA command (SLUICE_MAX_LIMITS limits, longest key). */
#define SLUICE_REDIS_CMD_MAX 8192

/**
 * Writes the RESP command EVALSHA <sha> ... deciding op into buf[0..size),
 * without allocating; the hot path of every decision.  Returns its length,
 * SLUICE_EINVAL for an invalid op, or SLUICE_ENOMEM when size is too small
 * (never with SLUICE_REDIS_CMD_MAX bytes).  The same bytes as
 * redisFormatCommandArgv() of the arguments documented in sluice.lua.
 */
long sluice__redis_format_evalsha(const char *sha, const sluice__op *op, char *buf, size_t size);

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

/**
 * Writes the RESP command SLUICE.DECIDE "now cost slack" key1 "alg L W B" ...
 * deciding op (the module's form of the script's inputs) into buf[0..size),
 * without allocating.  Returns its length, SLUICE_EINVAL for an invalid op,
 * or SLUICE_ENOMEM when size is too small (never with SLUICE_REDIS_CMD_MAX).
 */
long sluice__redis_format_module(const sluice__op *op, char *buf, size_t size);

/* ---- redis_engine.c -------------------------------------------------- */

/** Reads ?engine=auto|lua|module (default auto) into *engine; 0 or SLUICE_EURL. */
int sluice__redis_open_engine(const sluice__url *url, int *engine, sluice__redis_errf ef,
                              sluice_error *err);

/** Queues COMMAND INFO sluice.decide on c (one reply, never an error that matters). */
void sluice__redis_append_detect(redisContext *c);

/** Queues COMMAND INFO sluice.decide on ac; fn gets the reply. */
void sluice__redis_async_detect(redisAsyncContext *ac,
                                void (*fn)(redisAsyncContext *, void *, void *), void *privdata);

/** True when a reply to COMMAND INFO sluice.decide says the module is loaded. */
bool sluice__redis_detect_reply(const redisReply *reply);

/** True for the "ERR unknown command 'sluice.decide'" reply of a server without the module. */
bool sluice__redis_is_nomodule(const redisReply *reply);

/** SLUICE.DECIDE when module, else EVALSHA sha; as the two formatters. */
long sluice__redis_format_cmd(bool module, const char *sha, const sluice__op *op, char *buf,
                              size_t size);

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

/* ---- redis_conn.c: blocking contexts (pool slots) --------------------- */

/** ms as a timeval, at least 1 ms. */
struct timeval sluice__redis_tv_ms(int64_t ms);

/** Whole milliseconds left until deadline_us (rounded up), 0 when past. */
int64_t sluice__redis_left_ms(int64_t deadline_us);

/**
 * The error of a failed context c: SLUICE_ETIMEOUT "timed out" when a socket
 * timeout expired, else SLUICE_ESTORE "connection error" with c's text.
 */
int sluice__redis_io_error(sluice__redis_errf ef, sluice_error *err, const redisContext *c);

/** Reads one reply from c; NULL with err set (sluice__redis_io_error) on failure. */
redisReply *sluice__redis_read_reply(sluice__redis_errf ef, redisContext *c, sluice_error *err);

/**
 * The backoff after a failure: returns the delay to wait now, in ms, and
 * doubles *backoff_ms for the next one (SLUICE_REDIS_BACKOFF_MIN_MS to _MAX_MS).
 */
int sluice__redis_backoff(int *backoff_ms);

/** Locks a free slot of pool[0..n) (round-robin from *next), waiting for one
 * until the deadline; NULL with err set (SLUICE_ETIMEOUT) when none came free. */
sluice__redis_slot *sluice__redis_slot_take(sluice__redis_slot *pool, unsigned n, atomic_uint *next,
                                            int64_t deadline_us, sluice__redis_errf ef,
                                            sluice_error *err);

/** Frees s's context if it failed or was opened for an address generation
 * other than gen; s may then reconnect at once. */
void sluice__redis_slot_check(sluice__redis_slot *s, uint64_t gen);

/** Frees s's context (if any) and keeps s down for the next backoff. */
void sluice__redis_slot_drop(sluice__redis_slot *s);

/**
 * Sets s's socket timeouts to the time left until the deadline (no system
 * call when unchanged).  0, or SLUICE_ETIMEOUT when no time is left, or
 * SLUICE_ESTORE.
 */
int sluice__redis_slot_timeout(sluice__redis_slot *s, int64_t deadline_us, sluice__redis_errf ef,
                               sluice_error *err);

/**
 * Sends what is queued on s and reads one reply, all by deadline_us (the
 * socket timeout re-armed to the time left before every read and write).
 * NULL with err set: SLUICE_ETIMEOUT, or SLUICE_ESTORE; the context then
 * holds a partial exchange and must be dropped.
 */
redisReply *sluice__redis_slot_reply(sluice__redis_slot *s, int64_t deadline_us,
                                     sluice__redis_errf ef, sluice_error *err);

/**
 * Connects s (whose context is NULL) to host:port, address generation gen,
 * within the deadline, and sets its socket timeouts.  0; or SLUICE_ETIMEOUT,
 * SLUICE_ESTORE ("connect failed"), SLUICE_ENOMEM with err set.  *unreachable
 * is set when the connect itself failed (the address may be stale).
 */
int sluice__redis_slot_open(sluice__redis_slot *s, const char *host, int port, uint64_t gen,
                            int64_t deadline_us, sluice__redis_errf ef, bool *unreachable,
                            sluice_error *err);

/**
 * Queues AUTH [user] password on c when password is not NULL.  Returns the
 * number of replies it owes (0 or 1), or SLUICE_ENOMEM.
 */
int sluice__redis_append_auth(redisContext *c, const char *user, const char *password);

/** Queues SCRIPT LOAD of sluice.lua on c (one reply). */
void sluice__redis_append_load(redisContext *c);

/**
 * Reads the n replies to a new connection's setup commands.  An error reply
 * (refused AUTH or SELECT...) gives SLUICE_ESTORE "connection setup
 * refused"; an I/O failure its code.  last: when not NULL, the n-th reply
 * is handed back there (the caller frees it) instead of being freed.
 */
int sluice__redis_read_setup(redisContext *c, int n, redisReply **last, sluice__redis_errf ef,
                             sluice_error *err);

/** sluice__redis_read_setup() on slot s, every reply by deadline_us
 * (sluice__redis_slot_reply). */
int sluice__redis_slot_setup(sluice__redis_slot *s, int64_t deadline_us, int n, redisReply **last,
                             sluice__redis_errf ef, sluice_error *err);

/* ---- redis_conn.c: asynchronous links ---------------------------------- */

/* ---- redis_rpool.c: reply objects of async links ---------------------- */

typedef struct sluice__redis_rpool sluice__redis_rpool;

/** A new, empty pool of reply objects; NULL when out of memory. */
sluice__redis_rpool *sluice__redis_rpool_new(void);

/** Frees p and the objects it keeps.  Accepts NULL.  Only once no reader
 * built with it holds a reply (after redisAsyncFree of its contexts). */
void sluice__redis_rpool_free(sluice__redis_rpool *p);

/** Makes reader build its replies (ordinary redisReply objects) from p. */
void sluice__redis_rpool_use(sluice__redis_rpool *p, redisReader *reader);

/* Elements of one reply, its nested arrays included: a decision's reply has
 * 1 + 6*8, CLUSTER SLOTS of a 1000-node cluster some 10^4.  A reply above
 * it fails as a protocol error instead of being allocated. */
#define SLUICE_REDIS_REPLY_ELEMENTS_MAX (1 << 20)

/**
 * Makes the reader of a blocking context (hiredis's reply objects) refuse
 * replies of more than SLUICE_REDIS_REPLY_ELEMENTS_MAX elements, as the
 * pooled readers do.  Call on every redisContext sluice connects.  0, or
 * SLUICE_ENOMEM.
 */
int sluice__redis_reader_bound(redisReader *reader);

/* ---- redis_event.c: hiredis on a libevent loop ------------------------- */

/**
 * Attaches ac to base (instead of hiredis's adapters/libevent.h): a
 * persistent read event, and the commands of one loop turn written at the
 * end of that turn in one write.  REDIS_OK, or REDIS_ERR (already attached,
 * out of memory).  hiredis frees it with the context.
 */
int sluice__redis_event_attach(redisAsyncContext *ac, struct event_base *base);

typedef struct sluice__redis_alink sluice__redis_alink;

/**
 * One hiredis async connection on a libevent loop and its connect timeout.
 * Owners embed it as their FIRST member: ac->data points at it, so the
 * owner's hiredis callbacks find the owner (or NULL after close) in
 * ac->data.
 */
struct sluice__redis_alink {
    redisAsyncContext *ac; /* NULL while down */
    bool connected;
    struct event *connect_timer;
    sluice__redis_rpool *replies; /* the reply objects of every ac of this link */
    /* Called once whenever ac goes away (connect failed or timed out,
     * disconnect, drop), after ac and connected are cleared; pending
     * hiredis callbacks then run with NULL replies. */
    void (*lost)(sluice__redis_alink *l);
};

/** Prepares l (zeroed, or prepared before: then a no-op) for base: its
 * connect timer and reply pool.  0, or SLUICE_ENOMEM. */
int sluice__redis_alink_init(sluice__redis_alink *l, struct event_base *base,
                             void (*lost)(sluice__redis_alink *l));

/**
 * Starts connecting l (down, initialised) to host:port: commands queued on
 * l->ac from now on are sent once connected.  A connect that has not
 * completed after max(timeout_ms, 50) ms is dropped.  0, or -1 when no
 * context could be made (l stays down; lost is not called).
 */
int sluice__redis_alink_open(sluice__redis_alink *l, struct event_base *base, const char *host,
                             int port, int timeout_ms);

/** Drops l's connection now (lost runs, then hiredis's pending callbacks
 * with NULL replies).  Nothing when down. */
void sluice__redis_alink_drop(sluice__redis_alink *l);

/** Frees l's connection without calling lost (pending callbacks see NULL
 * in ac->data), its timer and reply pool; for detach, outside hiredis callbacks. */
void sluice__redis_alink_close(sluice__redis_alink *l);

/** Queues AUTH [user] password on ac when password is not NULL; fn gets the reply. */
void sluice__redis_async_auth(redisAsyncContext *ac,
                              void (*fn)(redisAsyncContext *, void *, void *), void *privdata,
                              const char *user, const char *password);

/** Queues SCRIPT LOAD of sluice.lua on ac; fn gets the reply. */
void sluice__redis_async_load(redisAsyncContext *ac,
                              void (*fn)(redisAsyncContext *, void *, void *), void *privdata);

/* ---- redis_conn.c: requests -------------------------------------------- */

/** A request's own copy of its op (the caller's need not outlive the call). */
typedef struct sluice__redis_opcopy {
    sluice__op op; /* points into limits[] and key[] */
    sluice_limit limits[SLUICE_MAX_LIMITS];
    char key[SLUICE_STORE_KEY_MAX + 1];
} sluice__redis_opcopy;

/** Copies op (valid: 1..SLUICE_MAX_LIMITS limits, key within bounds) into dst. */
void sluice__redis_op_copy(sluice__redis_opcopy *dst, const sluice__op *op);

/**
 * Reads ?deny_cache=on|off (default on) and makes the store's deny cache:
 * *dc is NULL when off.  0; SLUICE_EURL for another value, SLUICE_ENOMEM;
 * err worded by ef.
 */
int sluice__redis_open_deny_cache(const sluice__url *url, sluice__deny_cache **dc,
                                  sluice__redis_errf ef, sluice_error *err);

/* ---- redis_async.c --------------------------------------------------- */

int sluice__redis_attach(void *impl, struct event_base *base, void **conn, sluice_error *err);
void sluice__redis_detach(void *conn);
int sluice__redis_decide_async(void *conn, const sluice__op *op, sluice__store_cb cb, void *arg);

#endif /* SLUICE_STORE_REDIS_INT_H */
