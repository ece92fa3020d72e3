/* SPDX-License-Identifier: MIT */
/*
 * rls_int.h - the loaded form of envoyproxy/ratelimit descriptor files,
 * shared by the loader (rls_load.c), the matcher (rls_match.c), the decider
 * (rls_decide.c) and the metrics (rls_metrics.c).  Plain immutable data once
 * loaded; internal to src/rls.
 */
#ifndef SLUICE_RLS_INT_H
#define SLUICE_RLS_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rls/rls.h"
#include "store/store.h"

#define SLUICE_RLS_MAX_FILES 1024      /* files one descriptors_config may name */
#define SLUICE_RLS_MAX_REPLACES 64     /* replaces entries of one rate_limit */
#define SLUICE_RLS_STR_MAX 4096        /* bytes of a domain, key, value or name */
#define SLUICE_RLS_MAX_HITS 1000000000LL /* hits of one descriptor (SLUICE_COST_MAX) */

/* envoyproxy/ratelimit's counters: every hit is charged, so the stored fixed
 * window is given a capacity no request can reach and the configured limit is
 * applied by the decider (rls_decide.c). */
#define SLUICE_RLS_COUNTER_CAP SLUICE_LIMIT_MAX

/* A rate_limit block. */
typedef struct sluice__rls_limit {
    uint32_t rpu;          /* requests_per_unit; 0 refuses every hit */
    int unit;              /* SLUICE_RLS_SECOND.. */
    int64_t window_ms;     /* unit's divider: month 30 days, year 365 days */
    bool unlimited;
    char *name;            /* NULL when absent */
    int nreplaces;
    char **replaces;
    bool sluice_algo;      /* sluice extension: `algorithm` given (not fixed_window) */
    sluice_limit algo;     /* with sluice_algo: the sluice limit it decides with */
} sluice__rls_limit;

/*
 * The lookup index of one level (the children of a node or of a domain), so
 * matching is O(log n) per entry however many values a level lists: indices
 * into the level's kids sorted bytewise by (key, value) for the valued ones and
 * by key for the bare ones; the wildcard ones in file order (first match wins).
 */
typedef struct sluice__rls_index {
    int nkv, nbare, nwild;
    int *kv, *bare, *wild;
} sluice__rls_index;

/* One descriptor of the tree: key, optional value (NULL = any value). */
typedef struct sluice__rls_node {
    char *key;
    char *value;           /* NULL: the bare key, matching any value */
    bool wildcard;         /* value holds '*' */
    bool share_threshold;  /* with wildcard: one counter for every matching value */
    bool shadow, quota, detailed_metric, value_to_metric;
    int line;
    bool has_limit;
    sluice__rls_limit limit;
    int nkids;
    struct sluice__rls_node *kids;
    sluice__rls_index idx;  /* of kids */
    /* the only mutable field: the metrics slot of this node's configured label,
     * found once (rls_metrics.c slots live as long as the process) */
    _Atomic(void *) metric_slot;
} sluice__rls_node;

typedef struct sluice__rls_domain {
    char *name;
    char *file;
    int nkids;
    sluice__rls_node *kids;
    sluice__rls_index idx;  /* of kids */
} sluice__rls_domain;

struct sluice__rls {
    int ndomains;
    sluice__rls_domain *domains;
};

/* Divider in seconds of a unit (0 for UNKNOWN or out of range). */
int64_t sluice__rls_unit_seconds(int unit);
/* "SECOND".. for the /json reply; "UNKNOWN" out of range. */
const char *sluice__rls_unit_name(int unit);

/* The outcome of matching one request descriptor. */
typedef struct sluice__rls_hit {
    const sluice__rls_domain *domain;  /* NULL: unknown domain */
    const sluice__rls_limit *limit;    /* NULL: no limit (OK, no current_limit) */
    const sluice__rls_node *node;      /* the node of the limit; NULL for an override */
    bool shadow, quota;
    sluice__rls_limit override;        /* the request's limit, when it overrides */
    size_t key_len;
    char key[SLUICE_STORE_KEY_MAX + 1]; /* store key: see rls_match.c */
    size_t metric_len;
    char metric[256];                  /* "<descriptor path>" label of the metrics */
    bool metric_static;                /* the label depends on the config only (not on
                                        * request values): node->metric_slot may cache it */
} sluice__rls_hit;

/**
 * Matches descriptor d of domain (already looked up; NULL = unknown) the
 * way envoyproxy/ratelimit does and fills h.  0, or SLUICE_EINVAL for a
 * descriptor the store cannot key (no entries, bad override unit).
 */
int sluice__rls_match(const sluice__rls_domain *domain, const char *dname, size_t dlen,
                      const sluice__rls_descriptor *d, sluice__rls_hit *h);

/** sluice__rls_load() of one descriptor file's text, called name in messages. */
int sluice__rls_load_text(sluice__rls **out, const char *text, size_t len, const char *name,
                          sluice_error *err);

/** The loaded domain named (not NUL-terminated), or NULL. */
const sluice__rls_domain *sluice__rls_find_domain(const sluice__rls *r, const char *name,
                                                  size_t len);

/** Bytewise order of (a, alen) and (b, blen): memcmp, then the shorter first. */
static inline int sluice__rls_lexcmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

/** True when s (n bytes) matches the glob pattern p: '*' is any run of bytes. */
bool sluice__rls_glob(const char *p, const char *s, size_t n);

/** sluice__rls_decide_async() at an explicit clock (Unix ms, or SLUICE_NOW): for tests. */
int sluice__rls_decide_async_at(sluice_async *a, const sluice__rls *rls, const sluice_config *cfg,
                                const sluice__rls_request *req, int64_t now_ms, sluice__rls_cb cb,
                                void *arg);

#endif /* SLUICE_RLS_INT_H */
