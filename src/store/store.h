/* SPDX-License-Identifier: MIT */
/*
 * store.h - the store interface: a table of functions per URL scheme
 * (memory, redis, redis+sentinel, redis+cluster).  A store keeps the state
 * cells of keys and applies one decision (a whole limit set, all or nothing)
 * atomically.  It knows nothing of rules, tiers, shadow mode or
 * on_store_error: store.c handles those once for every store.
 */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

#define SLUICE_RULE_NAME_MAX 64
#define SLUICE_TIER_NAME_MAX SLUICE_RULE_NAME_MAX
/* "<rule>:<identifier>", or "<rule>@<tier>:<identifier>" for a tiered rule */
#define SLUICE_STORE_KEY_MAX (SLUICE_RULE_NAME_MAX + 1 + SLUICE_TIER_NAME_MAX + 1 + SLUICE_KEY_MAX)

/* One decision for a store to make. */
typedef struct sluice__op {
    const char *key;  /* "<rule>[@<tier>]:<identifier>"; Redis keys are sluice:{<key>}:<n> */
    size_t key_len;
    const sluice_limit *limits;
    int nlimits;
    int64_t cost;     /* 0 = peek */
    int64_t now_ms;   /* Unix ms, or SLUICE_NOW for the store's clock */
} sluice__op;

/* A parsed store URL.  Strings are owned by the struct (sluice__url_free). */
#define SLUICE_URL_MAX_HOSTS 16
typedef struct sluice__url {
    char *scheme;     /* "memory", "redis", "redis+sentinel", "redis+cluster" */
    char *user;       /* NULL when absent */
    char *password;   /* NULL when absent; never logged */
    int nhosts;
    char *hosts[SLUICE_URL_MAX_HOSTS];
    int ports[SLUICE_URL_MAX_HOSTS];
    char *path;       /* after the first '/', without it: db number or master name; may be "" */
    char *query;      /* after '?', without it; NULL when absent */
} sluice__url;

int sluice__url_parse(sluice__url *u, const char *url, sluice_error *err);
void sluice__url_free(sluice__url *u);
/*
 * Writes url into buf[0..size) for a log line, with the password (or a lone
 * user name) the parser would find replaced by "***"; a URL the parser
 * refuses keeps only its scheme.  Always NUL-terminated when size > 0; a
 * short buffer gets a prefix of the whole text.  Returns the whole length.
 */
size_t sluice__url_redact(char *buf, size_t size, const char *url);
/* Value of name=value in u->query, copied into buf; 0, or -1 when absent/too long. */
int sluice__url_param(const sluice__url *u, const char *name, char *buf, size_t size);
/* name=on|off in u->query into *on (dflt when absent); 0, or -1 for another value. */
int sluice__url_onoff(const sluice__url *u, const char *name, bool dflt, bool *on);

typedef void (*sluice__store_cb)(int status, const sluice_decision *d, void *arg);

typedef struct sluice__store_ops {
    const char *scheme;
    int (*open)(void **impl, const sluice__url *url, const sluice_store_options *opts,
                sluice_error *err);
    void (*close)(void *impl);
    /* Blocking decision.  0 with out filled; SLUICE_ESTORE/ETIMEOUT when the
     * store failed (store.c then applies on_store_error). */
    int (*decide)(void *impl, const sluice__op *op, sluice_decision *out, sluice_error *err);
    int (*ping)(void *impl, sluice_error *err);
    size_t (*keys)(void *impl); /* may be NULL: 0 */
    /* Asynchronous path; all three NULL means store.c runs decide() inline. */
    int (*attach)(void *impl, struct event_base *base, void **conn, sluice_error *err);
    void (*detach)(void *conn);
    /* libuv rule: negative return = cb never runs; else cb runs exactly once.
     * op and its strings need to live only until this returns. */
    int (*decide_async)(void *conn, const sluice__op *op, sluice__store_cb cb, void *arg);
} sluice__store_ops;

extern const sluice__store_ops sluice__memory_ops;
extern const sluice__store_ops sluice__redis_ops;    /* redis:// and redis+sentinel:// */
extern const sluice__store_ops sluice__cluster_ops;  /* redis+cluster:// */

#endif /* SLUICE_STORE_H */
