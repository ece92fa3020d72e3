/* SPDX-License-Identifier: MIT */
/*
 * redis_engine.c - which server-side engine a Redis connection decides
 * with: the Lua script (sluice.lua, any Redis 7) or the native module's
 * SLUICE.DECIDE (src/module, sluice_redis.so).  ?engine=auto|lua|module on
 * every Redis URL; shared by redis://, redis+sentinel:// and
 * redis+cluster://, blocking and asynchronous.
 *
 * auto detects per connection: every new connection (so after every
 * reconnect, Sentinel failover or Cluster failover) sends COMMAND INFO
 * sluice.decide with its setup and uses the module only if that node has
 * it and, in a Cluster, no master of the slot map was found without it
 * (cluster_topo.c keeps that count); until the answer is in, and on a node
 * without it, the Lua script decides.  Both engines keep the same keys and
 * bytes and make the same decisions, so mixing them, node by node or
 * decision by decision, is exact.
 * A module that disappears under a live connection (MODULE UNLOAD) answers
 * "unknown command"; auto then re-sends that decision as Lua.
 *
 * The engine each node was last seen with is kept here for /metrics and
 * reported, on every change, to an optional hook (sluiced logs it).  Nothing
 * here prints; host:port is all that is reported, never a credential.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "store/redis/redis_int.h"

int sluice__redis_open_engine(const sluice__url *url, int *engine, sluice__redis_errf ef,
                              sluice_error *err)
{
    char v[16];
    *engine = SLUICE__ENGINE_AUTO;
    if (sluice__url_param(url, "engine", v, sizeof(v)) != 0) {
        char probe[2];
        /* present but empty or too long, versus absent */
        if (url->query && strstr(url->query, "engine=") &&
            sluice__url_param(url, "engine", probe, sizeof(probe)) != 0)
            return ef(err, SLUICE_EURL, "engine must be auto, lua or module", NULL);
        return 0;
    }
    if (strcmp(v, "auto") == 0)
        *engine = SLUICE__ENGINE_AUTO;
    else if (strcmp(v, "lua") == 0)
        *engine = SLUICE__ENGINE_LUA;
    else if (strcmp(v, "module") == 0)
        *engine = SLUICE__ENGINE_MODULE;
    else
        return ef(err, SLUICE_EURL, "engine must be auto, lua or module", NULL);
    return 0;
}

void sluice__redis_append_detect(redisContext *c)
{
    redisAppendCommand(c, "COMMAND INFO sluice.decide");
}

void sluice__redis_async_detect(redisAsyncContext *ac,
                                void (*fn)(redisAsyncContext *, void *, void *), void *privdata)
{
    redisAsyncCommand(ac, fn, privdata, "COMMAND INFO sluice.decide");
}

bool sluice__redis_detect_reply(const redisReply *reply)
{
    /* present: [[name, arity, ...]]; absent: [nil]; an error (e.g. NOPERM for
     * an ACL user without COMMAND INFO) counts as absent: Lua is always right */
    return reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
           reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements > 0;
}

bool sluice__redis_is_nomodule(const redisReply *reply)
{
    static const char pre[] = "ERR unknown command";
    return reply && reply->type == REDIS_REPLY_ERROR && reply->len >= sizeof(pre) - 1 &&
           memcmp(reply->str, pre, sizeof(pre) - 1) == 0 && strcasestr(reply->str, "sluice.decide");
}

long sluice__redis_format_cmd(bool module, const char *sha, const sluice__op *op, char *buf,
                              size_t size)
{
    return module ? sluice__redis_format_module(op, buf, size)
                  : sluice__redis_format_evalsha(sha, op, buf, size);
}

/* ---- what each node was last seen with --------------------------------- */

#define SEEN_MAX 64 /* nodes remembered; beyond that only the totals count */

static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char addr[SLUICE_REDIS_HOST_MAX + 8];
    bool module;
} seen[SEEN_MAX];
static int nseen;
static atomic_int last_engine = -1; /* engine of the latest note: 0 lua, 1 module */
static atomic_uint_fast64_t notes[2];
static void (*log_hook)(const char *addr, const char *engine, const char *why);

void sluice__redis_engine_set_log(void (*fn)(const char *addr, const char *engine, const char *why))
{
    pthread_mutex_lock(&seen_mu);
    log_hook = fn;
    pthread_mutex_unlock(&seen_mu);
}

void sluice__redis_engine_note(const char *host, int port, bool module, const char *why)
{
    char addr[sizeof(seen[0].addr)];
    snprintf(addr, sizeof(addr), "%s:%d", host ? host : "?", port);
    atomic_store(&last_engine, module ? 1 : 0);
    atomic_fetch_add_explicit(&notes[module ? 1 : 0], 1, memory_order_relaxed);
    pthread_mutex_lock(&seen_mu);
    int i;
    for (i = 0; i < nseen && strcmp(seen[i].addr, addr) != 0; i++) {
    }
    bool changed = i == nseen || seen[i].module != module;
    if (i == nseen && nseen < SEEN_MAX) {
        snprintf(seen[i].addr, sizeof(seen[i].addr), "%s", addr);
        nseen++;
    }
    if (i < SEEN_MAX)
        seen[i].module = module;
    /* the hook runs under the lock so that two threads' changes are
     * reported in the order they were recorded */
    if (changed && log_hook)
        log_hook(addr, module ? "module" : "lua", why);
    pthread_mutex_unlock(&seen_mu);
}

void sluice__redis_engine_totals(int *last, uint64_t *lua_notes, uint64_t *module_notes)
{
    *last = atomic_load(&last_engine);
    *lua_notes = atomic_load(&notes[0]);
    *module_notes = atomic_load(&notes[1]);
}
