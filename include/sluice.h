/* SPDX-License-Identifier: MIT */
/*
 * sluice.h - the one public header of libsluice, a distributed rate limiter.
 *
 * A decision answers: may this request of cost c under the limits of rule R
 * for identifier K proceed now?  State lives in a store (embedded memory, one
 * Redis, Redis behind Sentinel, Redis Cluster) selected by URL; rules come
 * from a YAML config.  The library never prints, never exits and never
 * aborts on OOM: every action returns 0 or a negative SLUICE_E* code and,
 * where it can say more, fills a caller-supplied sluice_error.
 *
 * Long-lived objects are opaque handles with open/free pairs; every free
 * function accepts NULL.  Only value types (decisions, errors, requests) are
 * public structs, and they carry a reserved tail so they can grow.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_VERSION_MAJOR 0
#define SLUICE_VERSION_MINOR 1
#define SLUICE_VERSION_PATCH 0
#define SLUICE_VERSION "0.1.0"

#if defined(SLUICE_BUILDING) && defined(__GNUC__)
#define SLUICE_EXTERN __attribute__((visibility("default")))
#else
#define SLUICE_EXTERN
#endif

/* ---- errors ------------------------------------------------------------ */

/* Error codes.  Never renumbered; new codes are appended. */
enum {
    SLUICE_OK = 0,
    SLUICE_EINVAL = -1,   /* bad argument (NULL handle, cost < 0, ...) */
    SLUICE_ENOMEM = -2,   /* allocation failed; nothing was changed */
    SLUICE_ECONFIG = -3,  /* config error; msg holds "file:line: reason" */
    SLUICE_ENORULE = -4,  /* unknown rule name, or no rule matched the request */
    SLUICE_ESTORE = -5,   /* store unreachable or answered with an error */
    SLUICE_ETIMEOUT = -6, /* store did not answer within timeout_ms */
    SLUICE_EURL = -7,     /* store URL malformed or scheme unknown */
    SLUICE_EKEY = -8,     /* identifier empty or longer than SLUICE_KEY_MAX */
    SLUICE_EIO = -9,      /* file could not be read */
    SLUICE_ECANCELED = -10 /* async operation canceled (handle freed) */
};

/* Details of a failure.  code is one of the SLUICE_E* values. */
typedef struct sluice_error {
    int code;
    char msg[256];
} sluice_error;

/** Returns a static, human-readable name for an error code. */
SLUICE_EXTERN const char *sluice_strerror(int code);

/* ---- bounds ------------------------------------------------------------ */

/*
 * Bounds checked when a config is loaded.  They keep every intermediate of
 * the algorithms below 2^53, so the C code (int64) and the Redis Lua code
 * (doubles, exact to 2^53) compute the same integers.
 */
#define SLUICE_MAX_LIMITS 8                   /* limits in one rule or tier */
#define SLUICE_LIMIT_MAX 1000000000LL         /* largest limit or burst */
#define SLUICE_WINDOW_MAX_MS 31622400000LL    /* 366 days */
#define SLUICE_PRODUCT_MAX (1LL << 52)        /* limit*window_ms, burst*window_ms */
#define SLUICE_SLIDING_LOG_MAX 10000LL        /* sliding_log limit cap: O(L) memory */
#define SLUICE_COST_MAX 1000000000LL          /* largest cost of one request */
#define SLUICE_KEY_MAX 512                    /* bytes in "<rule>:<identifier>" */
/* Largest explicit now_ms (about the year 144,000): with it and the longest
 * window every time the algorithms compute, such as the end of the next
 * window, stays below 2^53.  sluice_decide() refuses later times. */
#define SLUICE_TIME_MAX_MS (1LL << 52)

/* Pass as now_ms to use the store's clock (Redis TIME, or the process clock). */
#define SLUICE_NOW INT64_MIN

/* ---- decisions --------------------------------------------------------- */

typedef enum sluice_algorithm {
    SLUICE_FIXED_WINDOW = 0,
    SLUICE_SLIDING_LOG = 1,
    SLUICE_SLIDING_WINDOW = 2,
    SLUICE_TOKEN_BUCKET = 3,
    SLUICE_LEAKY_BUCKET = 4
} sluice_algorithm;

/** Config name of an algorithm ("fixed_window", ...), or NULL if out of range. */
SLUICE_EXTERN const char *sluice_algorithm_name(int algorithm);

/* The parameters of one limit.  burst is 0 for the window algorithms. */
typedef struct sluice_limit {
    int algorithm;     /* sluice_algorithm */
    int64_t limit;     /* L: requests (cost units) per window */
    int64_t window_ms; /* W */
    int64_t burst;     /* B for the buckets (default L); capacity */
} sluice_limit;

/* One limit's own decision (SPEC section 1). */
typedef struct sluice_limit_decision {
    bool allowed;
    int64_t limit;          /* L, or B for the buckets */
    int64_t remaining;      /* unit requests still allowed at this instant */
    int64_t reset_after_ms; /* until the key is back to untouched */
    int64_t retry_after_ms; /* 0 allowed; -1 never (cost above capacity) */
    int64_t delay_ms;       /* leaky_bucket: queueing delay; 0 elsewhere */
    int64_t window_ms;      /* the limit's window, for RateLimit-Policy */
    int algorithm;          /* sluice_algorithm */
} sluice_limit_decision;

/*
 * A whole decision.  The top-level fields come from the limit that decided:
 * when denied, the denying limit with the largest retry_after (-1 counts as
 * largest); when allowed, the limit with the least remaining.
 */
typedef struct sluice_decision {
    bool allowed;
    bool shadow_denied;     /* a shadow rule would have denied; allowed is true */
    bool store_error;       /* the store failed; on_store_error decided */
    int64_t limit;
    int64_t remaining;
    int64_t reset_after_ms;
    int64_t retry_after_ms;
    int64_t delay_ms;       /* the largest delay among the limits */
    int64_t now_ms;         /* the clock reading the decision used (Unix ms) */
    int decided_by;         /* index into limits[] of the deciding limit */
    int nlimits;
    sluice_limit_decision limits[SLUICE_MAX_LIMITS];
    void *reserved[4];
} sluice_decision;

/* ---- configuration ----------------------------------------------------- */

typedef struct sluice_config sluice_config;

typedef enum sluice_on_store_error {
    SLUICE_FAIL_OPEN = 0,  /* allow */
    SLUICE_FAIL_CLOSED = 1, /* deny */
    SLUICE_FAIL_LOCAL = 2  /* decide on an in-process store until the store is back */
} sluice_on_store_error;

/**
 * Loads and validates a YAML config from a file.  On success *out is a new
 * config owned by the caller (free with sluice_config_free()).  On failure
 * returns SLUICE_ECONFIG (or SLUICE_EIO, SLUICE_ENOMEM) and err->msg holds
 * "<file>:<line>: <reason>".  Unknown keys are errors.  Thread-safe: a loaded
 * config is immutable and may be shared by any number of threads.
 */
SLUICE_EXTERN int sluice_config_load_file(sluice_config **out, const char *path,
                                          sluice_error *err);

/** Like sluice_config_load_file() for YAML text; name is used in messages. */
SLUICE_EXTERN int sluice_config_load_string(sluice_config **out, const char *yaml,
                                            size_t len, const char *name,
                                            sluice_error *err);

/** Frees a config.  Accepts NULL. */
SLUICE_EXTERN void sluice_config_free(sluice_config *cfg);

/** The config's store URL ("memory://" by default).  Owned by the config. */
SLUICE_EXTERN const char *sluice_config_store_url(const sluice_config *cfg);

/* ---- requests and matching --------------------------------------------- */

/* Looks up a request header by case-insensitive name; NULL when absent. */
typedef const char *(*sluice_header_fn)(void *ctx, const char *name);

/* A request to be matched against the rules. */
typedef struct sluice_request {
    const char *method;   /* "GET", ...; NULL matches only rules without method */
    const char *path;     /* "/api/search" (query string is ignored) */
    const char *ip;       /* the client address already resolved by the caller */
    sluice_header_fn header; /* may be NULL: no headers */
    void *header_ctx;
    const char *tier;     /* NULL: read tier_header through header() */
    void *reserved[4];
} sluice_request;

/* The outcome of matching: which rule, which tier, which identifier. */
typedef struct sluice_match {
    const char *rule;     /* rule name, owned by the config */
    const char *tier;     /* tier name or NULL for a rule without tiers; owned by the config */
    int rule_index;
    int tier_index;       /* -1 without tiers */
    size_t key_len;
    char key[SLUICE_KEY_MAX + 1]; /* identifier, e.g. "ip:10.0.0.1"; NUL-terminated */
} sluice_match;

/**
 * Finds the first rule that matches req and builds its identifier.
 * Returns 0, SLUICE_ENORULE when no rule matches, or SLUICE_EKEY when no
 * identity source is present or the identifier is too long.
 */
SLUICE_EXTERN int sluice_config_match(const sluice_config *cfg, const sluice_request *req,
                                      sluice_match *m, sluice_error *err);

/**
 * Fills m for an explicit rule name, identifier and tier (tier may be NULL:
 * the default tier).  Returns SLUICE_ENORULE for an unknown rule and
 * SLUICE_EKEY for an empty or oversized key.
 */
SLUICE_EXTERN int sluice_config_match_rule(const sluice_config *cfg, const char *rule,
                                           const char *tier, const char *key, size_t key_len,
                                           sluice_match *m, sluice_error *err);

/* ---- stores ------------------------------------------------------------ */

typedef struct sluice_store sluice_store;

/* Options of a store; zero-initialise, then set what you need. */
typedef struct sluice_store_options {
    int timeout_ms;         /* deadline of each store operation; 0 = 20 */
    int on_store_error;     /* sluice_on_store_error */
    void *reserved[4];
} sluice_store_options;

/**
 * Opens a store from a URL: "memory://[?max_keys=N]", "redis://[user:pass@]host:port[/db]",
 * "redis+sentinel://host:port[,host:port...]/master", "redis+cluster://host:port[,...]".
 * opts may be NULL for defaults.  On success *out is a new handle owned by the
 * caller; free with sluice_store_close().  A Redis store that cannot be reached
 * yet still opens (it reconnects in the background) unless the URL is invalid.
 * Thread-safe: one store may serve decisions from any number of threads.
 */
SLUICE_EXTERN int sluice_store_open(sluice_store **out, const char *url,
                                    const sluice_store_options *opts, sluice_error *err);

/** Closes a store and frees it.  Accepts NULL.  No decision may be in flight. */
SLUICE_EXTERN void sluice_store_close(sluice_store *s);

/** 0 when the store answers now, a negative SLUICE_E* otherwise (for /readyz). */
SLUICE_EXTERN int sluice_store_ping(sluice_store *s, sluice_error *err);

/** Number of keys the in-process store (or the local fallback) holds. */
SLUICE_EXTERN size_t sluice_store_keys(sluice_store *s);

/**
 * Decides one request: the limits of the matched rule and tier, for the
 * matched identifier, at cost (0 = peek), at now_ms (Unix milliseconds) or
 * SLUICE_NOW for the store's clock.  Blocking; thread-safe.
 *
 * Returns 0 with *out filled, also when the request is denied (a denial is a
 * result, not an error), and also when the store failed and on_store_error
 * decided (out->store_error is then true).  Returns a negative code only
 * when no decision can be made (bad arguments, ENOMEM).
 */
SLUICE_EXTERN int sluice_decide(sluice_store *s, const sluice_config *cfg,
                                const sluice_match *m, int64_t cost, int64_t now_ms,
                                sluice_decision *out, sluice_error *err);

/* ---- asynchronous decisions (for event loops) --------------------------- */

struct event_base; /* libevent */
typedef struct sluice_async sluice_async;

/*
 * Completion callback.  status is 0 with d filled (allowed, denied, or
 * decided by on_store_error), or a negative SLUICE_E* with d NULL.  d is
 * valid only during the callback.
 */
typedef void (*sluice_decide_cb)(int status, const sluice_decision *d, void *arg);

/**
 * Attaches the store to a libevent loop: returns a per-loop handle whose
 * decisions run on that loop (Redis commands pipelined on the loop's
 * connection).  Use each handle from its loop's thread only.  Free with
 * sluice_async_free() before the loop and the store go away.
 */
SLUICE_EXTERN int sluice_async_new(sluice_async **out, sluice_store *s, struct event_base *base,
                                   sluice_error *err);

/** Frees an async handle; callbacks still pending run with SLUICE_ECANCELED. */
SLUICE_EXTERN void sluice_async_free(sluice_async *a);

/**
 * Starts a decision.  Follows libuv's rule: a negative return means cb will
 * never run; 0 means cb runs exactly once, possibly before this returns (the
 * memory store decides at once).  The config and match need to live only
 * until this returns.
 */
SLUICE_EXTERN int sluice_decide_async(sluice_async *a, const sluice_config *cfg,
                                      const sluice_match *m, int64_t cost, int64_t now_ms,
                                      sluice_decide_cb cb, void *arg);

/* ---- allocator ----------------------------------------------------------- */

/**
 * Replaces the allocator used by libsluice.  Call before any other function;
 * not thread-safe.  Any argument NULL restores the libc function.
 */
SLUICE_EXTERN void sluice_set_allocator(void *(*malloc_fn)(size_t),
                                        void *(*realloc_fn)(void *, size_t),
                                        void (*free_fn)(void *));

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_H */
