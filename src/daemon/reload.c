/* SPDX-License-Identifier: MIT */
/*
 * reload.c - the current config of sluiced, swapped atomically on SIGHUP.
 * A reload loads and validates the whole file first; only a valid config
 * replaces the old one, so a bad file changes nothing.  The swap happens
 * under a mutex taken only on reload and when a worker sees a new
 * generation; the per-request path is one atomic load plus a reference
 * count.  The store is not part of the config: it stays open across
 * reloads, so counters survive.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "policy/policy.h"

static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;
static sluiced_cfg *cfg_current;
static atomic_uint_fast64_t cfg_gen;

static void cfg_free(sluiced_cfg *c)
{
    sluice_config_free(c->cfg);
    free(c->slot);
    free(c);
}

int sluiced_cfg_install(sluice_config *cfg)
{
    sluiced_cfg *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    c->cfg = cfg;
    atomic_init(&c->refs, 1);
    c->slot = calloc((size_t)(cfg->nrules > 0 ? cfg->nrules : 1), sizeof(*c->slot));
    if (!c->slot) {
        free(c);
        return -1;
    }
    for (int i = 0; i < cfg->nrules; i++)
        c->slot[i] = sluiced_metrics_slot(cfg->rules[i].name);

    pthread_mutex_lock(&cfg_lock);
    sluiced_cfg *old = cfg_current;
    c->generation = atomic_load(&cfg_gen) + 1;
    cfg_current = c;
    atomic_store(&cfg_gen, c->generation);
    pthread_mutex_unlock(&cfg_lock);
    sluiced_cfg_put(old);
    return 0;
}

sluiced_cfg *sluiced_cfg_get(void)
{
    pthread_mutex_lock(&cfg_lock);
    sluiced_cfg *c = cfg_current;
    if (c)
        atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&cfg_lock);
    return c;
}

void sluiced_cfg_put(sluiced_cfg *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1)
        cfg_free(c);
}

uint64_t sluiced_cfg_generation(void)
{
    return atomic_load_explicit(&cfg_gen, memory_order_acquire);
}

static bool str_differs(const char *a, const char *b)
{
    if (!a || !b)
        return a != b;
    return strcmp(a, b) != 0;
}

int sluiced_cfg_reload(const char *path)
{
    char q[600];
    sluice_config *cfg = NULL;
    sluice_error err = {0};
    int rc = sluice_config_load_file(&cfg, path, &err);
    if (rc != 0) {
        sluiced_metrics_reload(false);
        sluiced_log(SLUICED_LOG_ERROR, "config_reload_refused", "file=%s reason=%s",
                    sluiced_log_quote(q, 300, path), sluiced_log_quote(q + 300, 300, err.msg));
        return -1;
    }
    sluiced_cfg *old = sluiced_cfg_get();
    if (old) {
        if (str_differs(old->cfg->listen, cfg->listen) ||
            str_differs(old->cfg->grpc_listen, cfg->grpc_listen) ||
            str_differs(old->cfg->store, cfg->store) || old->cfg->workers != cfg->workers ||
            old->cfg->timeout_ms != cfg->timeout_ms ||
            old->cfg->on_store_error != cfg->on_store_error)
            sluiced_log(SLUICED_LOG_WARN, "config_reload_partial",
                        "reason=\"listen, grpc_listen, workers, store, timeout_ms and "
                        "on_store_error "
                        "take effect on restart\"");
        sluiced_cfg_put(old);
    }
    int nrules = cfg->nrules;
    if (sluiced_cfg_install(cfg) != 0) {
        sluice_config_free(cfg);
        sluiced_metrics_reload(false);
        sluiced_log(SLUICED_LOG_ERROR, "config_reload_refused", "reason=out_of_memory");
        return -1;
    }
    sluiced_metrics_reload(true);
    sluiced_log(SLUICED_LOG_INFO, "config_reloaded", "file=%s rules=%d generation=%llu",
                sluiced_log_quote(q, 300, path), nrules,
                (unsigned long long)sluiced_cfg_generation());
    return 0;
}

void sluiced_cfg_shutdown(void)
{
    pthread_mutex_lock(&cfg_lock);
    sluiced_cfg *c = cfg_current;
    cfg_current = NULL;
    pthread_mutex_unlock(&cfg_lock);
    sluiced_cfg_put(c);
}
