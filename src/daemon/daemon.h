/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - the internal seams of sluiced: the shared config reference
 * (reload.c), the worker threads and their HTTP servers (server.c, http*.c), the
 * endpoint handlers (handlers.c), the rate-limit header builders
 * (headers.c), the Prometheus counters (metrics.c) and the one-line logger
 * (log.c).  Nothing here is part of libsluice; the daemon may abort on OOM.
 */
#ifndef SLUICE_DAEMON_H
#define SLUICE_DAEMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

struct event_base;
struct sluiced_http_reply;
struct sluiced_http_request;

/* ---- limits of the HTTP server ------------------------------------------ */

#define SLUICED_MAX_HEADERS_SIZE 16384   /* bytes of request line + headers */
#define SLUICED_MAX_BODY_SIZE 65536      /* bytes of a /v1/check body */
#define SLUICED_REQUEST_TIMEOUT_MS 10000 /* a request must arrive whole within this: 408 */
#define SLUICED_IDLE_TIMEOUT_S 30        /* idle keep-alive / stalled I/O: closed */
#define SLUICED_MAX_CONNECTIONS 10000    /* open client connections, all workers */
#define SLUICED_DRAIN_TIMEOUT_MS 10000   /* SIGTERM: longest wait for in-flight requests */
#define SLUICED_MAX_WORKERS 256

/* ---- alloc.c: per-thread caching allocator (libevent, jansson, HTTP) ------- */

/** malloc/realloc/free with per-thread free lists for blocks up to 4 KiB. */
void *sluiced_malloc(size_t n);
void *sluiced_realloc(void *p, size_t n);
void sluiced_free(void *p);

/** Returns the calling thread's cached blocks to malloc (at thread exit). */
void sluiced_alloc_thread_flush(void);

/* ---- log.c ----------------------------------------------------------------- */

enum { SLUICED_LOG_DEBUG = 0, SLUICED_LOG_INFO = 1, SLUICED_LOG_WARN = 2, SLUICED_LOG_ERROR = 3 };

/**
 * Writes one line to stderr: `ts=<RFC 3339> level=<l> event=<event> <fields>`.
 * fields is a printf format producing further `key=value` pairs (may be NULL).
 * Values that may hold spaces must be passed through sluiced_log_quote().
 * Thread-safe (one write(2) per line).  Never pass credentials.
 */
void sluiced_log(int level, const char *event, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

/** Sets the least level written (default INFO). */
void sluiced_log_set_level(int level);

/**
 * Quotes s into buf as a logfmt value: wrapped in double quotes, with `"`,
 * `\` and control bytes escaped, truncated to fit.  Returns buf.
 */
const char *sluiced_log_quote(char *buf, size_t size, const char *s);

/** Copies a store URL into buf with any password replaced by "***". */
const char *sluiced_redact_url(char *buf, size_t size, const char *url);

/* ---- reload.c: the shared, atomically swapped config ----------------------- */

/*
 * A loaded config with a reference count.  Workers hold one reference to
 * the current config and each in-flight request holds one more, so a reload
 * frees the old config only once its last request is answered.  slot[i] is
 * the metrics slot of rule i (counters survive reloads by rule name).
 */
typedef struct sluiced_cfg {
    sluice_config *cfg;
    atomic_int refs;
    uint64_t generation;
    int *slot;
} sluiced_cfg;

/** Installs cfg (taking ownership) as the current config.  0 or -1 (OOM). */
int sluiced_cfg_install(sluice_config *cfg);

/** Returns the current config with one more reference; release with _put. */
sluiced_cfg *sluiced_cfg_get(void);

/** Drops a reference; the last one frees the config. Accepts NULL. */
void sluiced_cfg_put(sluiced_cfg *c);

/** Generation of the current config; cheap (one atomic load). */
uint64_t sluiced_cfg_generation(void);

/**
 * Loads path and installs it if valid.  On error logs and returns -1 and the
 * running config stays.  listen/store/workers changes need a restart; they
 * are logged and ignored.
 */
int sluiced_cfg_reload(const char *path);

/** Drops the current config (at exit). */
void sluiced_cfg_shutdown(void);

/* ---- metrics.c ----------------------------------------------------------- */

enum { SLUICED_RES_ALLOWED = 0, SLUICED_RES_DENIED = 1, SLUICED_RES_SHADOW = 2, SLUICED_RES_N };

#define SLUICED_METRIC_SLOTS 1024 /* distinct rule names over the process life */

/** Returns the slot for a rule name, creating it; -1 when the table is full. */
int sluiced_metrics_slot(const char *rule);

/** Counts one decision of a rule slot; latency in microseconds. */
void sluiced_metrics_decision(int slot, int result, bool store_error, int on_store_error,
                              int64_t latency_us);

/** Counts an HTTP response by status code. */
void sluiced_metrics_response(int status);

/** Counts a config reload attempt. */
void sluiced_metrics_reload(bool ok);

/** Adds delta to the open-connections gauge. */
void sluiced_metrics_connections(int delta);

/**
 * Renders every metric in Prometheus text format 0.0.4 into a new
 * NUL-terminated string (free with free()).  keys is the keys-held gauge.
 */
char *sluiced_metrics_render(size_t keys, size_t *len);

/* ---- headers.c ----------------------------------------------------------- */

/**
 * Adds the rate-limit headers of decision d for rule (per mode, a
 * SLUICE_HEADERS_* value) to the reply rp: legacy X-RateLimit-* and
 * Retry-After, and the IETF RateLimit-Policy and RateLimit fields.
 */
void sluiced_headers_add(struct sluiced_http_reply *rp, int mode, const char *rule,
                         const sluice_decision *d);

/** Formats the IETF RateLimit-Policy value into buf. Returns length or -1. */
int sluiced_header_policy(char *buf, size_t size, const char *rule, const sluice_decision *d);

/** Formats the IETF RateLimit value into buf. Returns length or -1. */
int sluiced_header_ratelimit(char *buf, size_t size, const char *rule, const sluice_decision *d);

/* ---- server.c: worker threads, connections ---------------------------------- */

typedef struct sluiced_worker sluiced_worker;

/* What a worker offers the handlers. */
struct sluiced_worker {
    int id;
    struct event_base *base;
    sluice_async *async; /* decisions on this worker's loop */
    sluiced_cfg *cfg;    /* this worker's reference to the current config */
    atomic_int inflight; /* requests received and not yet answered */
    bool draining;
    void *impl; /* server.c private */
};

/* Process-wide settings of the server, fixed at start. */
typedef struct sluiced_opts {
    const char *config_path;
    const char *listen; /* "host:port" */
    const char *grpc_listen; /* "host:port" of the gRPC listener; NULL: none */
    const char *store_url;
    int workers;
    int max_connections;
    int request_timeout_ms;
    int idle_timeout_s;
} sluiced_opts;

/** The store shared by every worker. */
extern sluice_store *sluiced_store;

/**
 * Binds the listening socket, starts n workers and returns 0, or -1 with the
 * reason logged.
 */
int sluiced_server_start(const sluiced_opts *opts);

/** Stops accepting, waits for in-flight requests (bounded), stops workers. */
void sluiced_server_drain_and_stop(void);

/** Returns the worker's current config, refreshing it after a reload. */
sluiced_cfg *sluiced_worker_cfg(sluiced_worker *w);

/* ---- handlers.c -------------------------------------------------------------- */

/** Handles one complete request (http_conn.c calls it); arg is the sluiced_worker. */
void sluiced_handle(struct sluiced_http_request *req, void *arg);

/** Sends a JSON error reply {"error": code, "message": msg} with status. */
void sluiced_reply_error(sluiced_worker *w, struct sluiced_http_reply *rp, int status,
                         const char *code, const char *msg);

/* ---- ready.c -------------------------------------------------------------------- */

/**
 * Whether the store answers (GET /readyz, grpc.health.v1 Check): 0, or the
 * failed ping's SLUICE_E* with its message in msg.  One ping per 250 ms for
 * the whole process (probes must not load the store); one caller pings
 * (blocking its worker for at most timeout_ms), the others answer from the
 * last reading meanwhile.  Thread-safe.
 */
int sluiced_store_ready(char *msg, size_t size);

/** Monotonic clock in microseconds (http_reply.c). */
int64_t sluiced_now_us(void);

#endif /* SLUICE_DAEMON_H */
