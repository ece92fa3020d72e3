/* SPDX-License-Identifier: MIT */
/* src/rls/rls.h - Envoy RLS v3 requests decided on a sluice store. */
/*
 * Binding interface between src/rls (descriptor configs, matching, deciding)
 * and sluiced's transports (gRPC in src/daemon/grpc*.c, POST /json).  See
 * /work/wt/RLS_CONTRACT.md: fields and functions may be added, never renamed
 * or removed.
 */
#ifndef SLUICE_RLS_H
#define SLUICE_RLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

typedef struct sluice__rls sluice__rls;   /* loaded descriptor configs; immutable, thread-shared */

/* Loads every file matching the glob patterns (envoyproxy/ratelimit YAML, read as-is).
 * Errors: SLUICE_ECONFIG with err->msg "<file>:<line>: <reason>". n == 0 gives an empty set. */
int sluice__rls_load(sluice__rls **out, const char *const *patterns, int n, sluice_error *err);
void sluice__rls_free(sluice__rls *r);

enum { SLUICE_RLS_UNKNOWN = 0, SLUICE_RLS_OK = 1, SLUICE_RLS_OVER_LIMIT = 2 };  /* proto Code */
enum { SLUICE_RLS_UNIT_UNKNOWN = 0, SLUICE_RLS_SECOND = 1, SLUICE_RLS_MINUTE = 2,
       SLUICE_RLS_HOUR = 3, SLUICE_RLS_DAY = 4, SLUICE_RLS_MONTH = 5, SLUICE_RLS_YEAR = 6,
       SLUICE_RLS_WEEK = 7 };  /* proto RateLimitResponse.RateLimit.Unit numbers */

#define SLUICE_RLS_MAX_DESCRIPTORS 64
#define SLUICE_RLS_MAX_ENTRIES 32

typedef struct sluice__rls_entry {
    const char *key; size_t key_len;       /* not NUL-terminated necessarily */
    const char *value; size_t value_len;
} sluice__rls_entry;

typedef struct sluice__rls_descriptor {
    int nentries;
    sluice__rls_entry entries[SLUICE_RLS_MAX_ENTRIES];
    bool has_hits_addend;  int64_t hits_addend;   /* descriptor's own hits_addend (0 = check only) */
    bool has_limit;        uint32_t limit_requests_per_unit; int limit_unit;  /* override */
} sluice__rls_descriptor;

typedef struct sluice__rls_request {
    const char *domain; size_t domain_len;
    int ndescriptors;
    const sluice__rls_descriptor *descriptors;
    int64_t hits_addend;   /* request-level; 0 means 1 (as in Envoy) */
} sluice__rls_request;

typedef struct sluice__rls_status {
    int code;                          /* SLUICE_RLS_OK / OVER_LIMIT */
    bool has_limit;                    /* false for a descriptor with no (or unlimited) limit */
    uint32_t requests_per_unit; int unit; const char *limit_name;  /* current_limit */
    uint32_t limit_remaining;
    int64_t duration_until_reset_ms;   /* proto Duration */
    sluice_decision d;                 /* the underlying decision (for headers) */
} sluice__rls_status;

typedef struct sluice__rls_reply {
    int overall_code;
    int nstatuses;                     /* == request ndescriptors */
    sluice__rls_status statuses[SLUICE_RLS_MAX_DESCRIPTORS];
    bool store_error;                  /* on_store_error decided */
} sluice__rls_reply;

/* status 0 with reply, or negative SLUICE_E* with reply NULL (e.g. SLUICE_EINVAL: too many
 * descriptors/entries; unknown domain is NOT an error: every descriptor is OK/unlimited, as upstream).
 * reply valid only during the callback. */
typedef void (*sluice__rls_cb)(int status, const sluice__rls_reply *reply, void *arg);

/* libuv rule: negative return = cb never runs; 0 = cb runs exactly once (maybe before return).
 * req and its strings need to live only until this returns. cfg supplies on_store_error,
 * descriptors_semantics and timeouts; rls comes from cfg's descriptors_config. */
int sluice__rls_decide_async(sluice_async *a, const sluice__rls *rls, const sluice_config *cfg,
                             const sluice__rls_request *req, sluice__rls_cb cb, void *arg);

/* ---- additions (allowed by the contract) --------------------------------- */

/* descriptors_semantics: envoy charges every hit, also refused ones (upstream's
 * counters); exact charges a request only when no descriptor refuses it. */
enum { SLUICE_RLS_SEM_ENVOY = 0, SLUICE_RLS_SEM_EXACT = 1 };

/* The descriptor set loaded with cfg from its descriptors_config; never NULL for a
 * loaded config (an empty set when descriptors_config is absent). */
const sluice__rls *sluice__config_rls(const sluice_config *cfg);

/* One response header: name and value NUL-terminated, valid only during the call.
 * Return 0 to continue, nonzero to stop (sluice__rls_headers then returns that value). */
typedef int (*sluice__rls_header_fn)(void *arg, const char *name, const char *value);

/* Calls fn once per rate-limit header of the reply, per cfg's headers mode (the same
 * fields and formatting as sluiced's HTTP replies): for Envoy's response_headers_to_add.
 * The descriptor that decides is the first OVER_LIMIT one, else the limited one with the
 * least remaining; no header when no descriptor has a limit.  Returns 0 or fn's value. */
int sluice__rls_headers(const sluice_config *cfg, const sluice__rls_reply *r,
                        sluice__rls_header_fn fn, void *arg);

/* True when path holds a YAML mapping with `domain` or `descriptors` and no `rules`:
 * an envoyproxy/ratelimit descriptor file rather than a sluice config (sluice lint). */
bool sluice__rls_looks_like_descriptors(const char *path);

#endif /* SLUICE_RLS_H */
