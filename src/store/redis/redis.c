/* SPDX-License-Identifier: MIT */
/*
 * redis.c - the redis:// and redis+sentinel:// store: opening, the blocking
 * decision path, ping, and the ops table.  The asynchronous path for event
 * loops lives in redis_async.c, Sentinel discovery in sentinel.c.
 *
 * The blocking path serves any number of threads with a small pool of
 * hiredis contexts, each used under its own mutex.  A thread takes the first
 * free context (trylock round-robin) and waits, bounded by its deadline, only
 * when all are busy.  Every socket operation is bounded: connect by the time
 * left, reads and writes by SO_RCVTIMEO/SO_SNDTIMEO.  A context that failed
 * is dropped and its slot stays down for a backoff (10 ms doubling to 1 s)
 * during which decisions on it fail at once with SLUICE_ESTORE, so a dead
 * server costs one timeout per slot per backoff, not one per decision.
 * store.c applies on_store_error to those failures; this file never decides
 * on its own, never logs, and never puts the password in a message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/redis/redis_int.h"
#include "store/redis/redis_lua.h"
#include "util/alloc.h"

int64_t sluice__redis_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t sluice__redis_addr(sluice__redis *r, char *host, size_t size, int *port)
{
    pthread_mutex_lock(&r->addr_mu);
    snprintf(host, size, "%s", r->host);
    *port = r->port;
    uint64_t gen = atomic_load(&r->gen);
    pthread_mutex_unlock(&r->addr_mu);
    return gen;
}

void sluice__redis_set_addr(sluice__redis *r, const char *host, int port)
{
    pthread_mutex_lock(&r->addr_mu);
    if (strcmp(r->host, host) != 0 || r->port != port) {
        snprintf(r->host, sizeof(r->host), "%s", host);
        r->port = port;
        atomic_fetch_add(&r->gen, 1);
    }
    pthread_mutex_unlock(&r->addr_mu);
}

void sluice__redis_suspect(sluice__redis *r)
{
    if (r->snt)
        sluice__sentinel_kick(r->snt);
}

/* ---- one blocking context -------------------------------------------- */

#define EF sluice__redis_error

/*
 * Connects slot s within the deadline and queues the connection's setup:
 * AUTH, SELECT, SCRIPT LOAD (and ROLE behind Sentinel).  Their replies are
 * read by setup_read() together with the first command's, so a new
 * connection costs the connect plus one round trip, not two.
 */
static int slot_connect(sluice__redis *r, sluice__redis_slot *s, int64_t deadline_us,
                        sluice_error *err)
{
    char host[SLUICE_REDIS_HOST_MAX];
    int port;
    uint64_t gen = sluice__redis_addr(r, host, sizeof(host), &port);
    s->gen = gen; /* this address has been tried, connected or not */
    if (!host[0])
        return sluice__redis_error(err, SLUICE_ESTORE, "master address unknown (Sentinel)", NULL);
    bool unreachable;
    int rc = sluice__redis_slot_open(s, host, port, gen, deadline_us, EF, &unreachable, err);
    if (unreachable)
        sluice__redis_suspect(r);
    if (rc)
        return rc;

    redisContext *c = s->c;
    int nreplies = sluice__redis_append_auth(c, r->user, r->password);
    if (nreplies < 0)
        return sluice__redis_error(err, SLUICE_ENOMEM, "out of memory", NULL);
    if (r->db) {
        redisAppendCommand(c, "SELECT %d", r->db);
        nreplies++;
    }
    /* the script is loaded whatever the engine: auto falls back to it */
    sluice__redis_append_load(c);
    nreplies++;
    if (r->sentinel) {
        redisAppendCommand(c, "ROLE");
        nreplies++;
    }
    s->setup_pending = nreplies;
    /* engine: auto asks this node (every new connection asks again, so a
     * failover to a node without the module goes back to Lua); until the
     * answer is read the first command goes out as Lua */
    s->module = r->engine == SLUICE__ENGINE_MODULE;
    s->detect_pending = r->engine == SLUICE__ENGINE_AUTO;
    if (s->detect_pending)
        sluice__redis_append_detect(c);
    else
        sluice__redis_engine_note(host, port, s->module, "configured");
    return 0;
}

/* Reads the answer to COMMAND INFO sluice.decide queued by slot_connect(). */
static int detect_read(sluice__redis *r, sluice__redis_slot *s, int64_t deadline_us,
                       sluice_error *err)
{
    s->detect_pending = false;
    redisReply *rep = sluice__redis_slot_reply(s, deadline_us, EF, err);
    if (!rep)
        return err && err->code ? err->code : SLUICE_ESTORE;
    s->module = sluice__redis_detect_reply(rep);
    freeReplyObject(rep);
    char host[SLUICE_REDIS_HOST_MAX];
    int port;
    sluice__redis_addr(r, host, sizeof(host), &port);
    sluice__redis_engine_note(host, port, s->module, "detected");
    return 0;
}

/* Reads the replies to the setup queued by slot_connect(), if any; behind
 * Sentinel, the last one (ROLE) must say master. */
static int setup_read(sluice__redis *r, sluice__redis_slot *s, int64_t deadline_us,
                      sluice_error *err)
{
    int nreplies = s->setup_pending;
    s->setup_pending = 0;
    redisReply *role = NULL;
    int rc = sluice__redis_slot_setup(s, deadline_us, nreplies, r->sentinel ? &role : NULL, EF, err);
    if (rc == 0 && s->detect_pending)
        rc = detect_read(r, s, deadline_us, err);
    if (rc) {
        if (role)
            freeReplyObject(role);
        return rc;
    }
    if (!role)
        return 0;
    bool master = sluice__redis_role_is_master(role);
    freeReplyObject(role);
    if (master)
        return 0;
    sluice__redis_error(err, SLUICE_ESTORE, "Sentinel's master is not a master", NULL);
    sluice__redis_suspect(r);
    return SLUICE_ESTORE;
}

/* Sends a formatted command on s and reads its reply (after any setup
 * replies still owed); NULL with err set on failure. */
static redisReply *slot_call(sluice__redis *r, sluice__redis_slot *s, const char *cmd, long len,
                             int64_t deadline_us, sluice_error *err)
{
    if (sluice__redis_slot_timeout(s, deadline_us, EF, err) != 0)
        return NULL;
    redisAppendFormattedCommand(s->c, cmd, (size_t)len);
    if (setup_read(r, s, deadline_us, err) != 0)
        return NULL;
    return sluice__redis_slot_reply(s, deadline_us, EF, err);
}

/*
 * Runs op on a connected slot: SLUICE.DECIDE or EVALSHA (s->module), on
 * NOSCRIPT one SCRIPT LOAD + EVALSHA, and with engine=auto a module gone
 * from the server ("unknown command") once more as Lua.
 */
static int slot_decide(sluice__redis *r, sluice__redis_slot *s, const sluice__op *op,
                       int64_t deadline_us, sluice_decision *out, sluice_error *err)
{
    char cmd[SLUICE_REDIS_CMD_MAX];
    bool module = s->module;
    long len = sluice__redis_format_cmd(module, r->sha, op, cmd, sizeof(cmd));
    if (len < 0)
        return sluice__redis_error(err, (int)len, "cannot build the command", NULL);
    redisReply *rep = slot_call(r, s, cmd, len, deadline_us, err);
    if (!rep)
        return err && err->code ? err->code : SLUICE_ESTORE;
    if (module && sluice__redis_is_nomodule(rep)) {
        freeReplyObject(rep);
        if (r->engine != SLUICE__ENGINE_AUTO) {
            /* 1: an answer, not a broken connection; on_store_error decides */
            sluice__redis_error(err, SLUICE_ESTORE, SLUICE__NOMODULE_MSG, NULL);
            return 1;
        }
        s->module = false;
        char host[SLUICE_REDIS_HOST_MAX];
        int port;
        sluice__redis_addr(r, host, sizeof(host), &port);
        sluice__redis_engine_note(host, port, false, "module_gone");
        len = sluice__redis_format_evalsha(r->sha, op, cmd, sizeof(cmd));
        rep = slot_call(r, s, cmd, len, deadline_us, err);
        if (!rep)
            return err && err->code ? err->code : SLUICE_ESTORE;
    }
    int rc;
    if (sluice__redis_is_noscript(rep)) {
        /* SCRIPT FLUSH, a restart or a failover: load and retry, one round trip */
        freeReplyObject(rep);
        rep = NULL;
        rc = sluice__redis_slot_timeout(s, deadline_us, EF, err);
        if (rc == 0) {
            sluice__redis_append_load(s->c);
            redisAppendFormattedCommand(s->c, cmd, (size_t)len);
            redisReply *load = sluice__redis_slot_reply(s, deadline_us, EF, err);
            if (load) {
                freeReplyObject(load);
                rep = sluice__redis_slot_reply(s, deadline_us, EF, err);
            }
        }
    }
    if (!rep)
        return err && err->code ? err->code : SLUICE_ESTORE;
    if (sluice__redis_is_moved_master(rep)) {
        sluice__redis_error(err, SLUICE_ESTORE, "server is not a writable master", rep->str);
        freeReplyObject(rep);
        sluice__redis_suspect(r);
        return SLUICE_ESTORE;
    }
    rc = sluice__redis_parse(rep, op, out, err);
    freeReplyObject(rep);
    /* an error reply leaves the connection usable: report it, keep the context */
    return rc == 0 ? 0 : 1;
}

/* Runs op with the blocking pool; out is NULL for a ping. */
static int run(sluice__redis *r, const sluice__op *op, sluice_decision *out, sluice_error *err)
{
    int64_t deadline_us = sluice__redis_mono_us() + (int64_t)r->timeout_ms * 1000;
    sluice__redis_slot *s =
        sluice__redis_slot_take(r->slots, SLUICE_REDIS_POOL, &r->next_slot, deadline_us, EF, err);
    if (!s)
        return SLUICE_ETIMEOUT;
    int rc;
    sluice__redis_slot_check(s, atomic_load(&r->gen));
    if (!s->c) {
        if (sluice__redis_mono_us() < s->retry_at_us && s->gen == atomic_load(&r->gen)) {
            rc = sluice__redis_error(err, SLUICE_ESTORE, "server unreachable, reconnecting", NULL);
            goto out_unlock;
        }
        rc = slot_connect(r, s, deadline_us, err);
        if (rc) {
            sluice__redis_slot_drop(s);
            goto out_unlock;
        }
    }
    if (out) {
        rc = slot_decide(r, s, op, deadline_us, out, err);
    } else {
        rc = sluice__redis_slot_timeout(s, deadline_us, EF, err);
        if (rc == 0) {
            redisAppendCommand(s->c, "PING");
            rc = setup_read(r, s, deadline_us, err);
        }
        redisReply *rep = rc ? NULL : sluice__redis_slot_reply(s, deadline_us, EF, err);
        if (!rep && !rc)
            rc = err->code ? err->code : SLUICE_ESTORE;
        else if (rep && rep->type == REDIS_REPLY_ERROR)
            rc = sluice__redis_error(err, SLUICE_ESTORE, "PING refused", rep->str);
        if (rep)
            freeReplyObject(rep);
    }
    if (rc == 1) {
        rc = SLUICE_ESTORE;
    } else if (rc) {
        sluice__redis_slot_drop(s);
    } else {
        s->backoff_ms = 0;
    }
out_unlock:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- ops ------------------------------------------------------------- */

static void redis_close(void *impl)
{
    sluice__redis *r = impl;
    if (!r)
        return;
    sluice__sentinel_stop(r->snt);
    for (int i = 0; i < SLUICE_REDIS_POOL; i++) {
        if (r->slots[i].c)
            redisFree(r->slots[i].c);
        pthread_mutex_destroy(&r->slots[i].mu);
    }
    pthread_mutex_destroy(&r->addr_mu);
    sluice__deny_cache_free(r->dc);
    sluice__free(r->user);
    if (r->password) {
        memset(r->password, 0, strlen(r->password));
        sluice__free(r->password);
    }
    sluice__free(r);
}

static int parse_db(const char *path, int *db)
{
    *db = 0;
    if (!path || !*path)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(path, &end, 10);
    if (errno || *end || v < 0 || v > 65535)
        return -1;
    *db = (int)v;
    return 0;
}

static int redis_open(void **impl, const sluice__url *url, const sluice_store_options *opts,
                      sluice_error *err)
{
    *impl = NULL;
    bool sentinel = strcmp(url->scheme, "redis+sentinel") == 0;
    if (!sentinel && strcmp(url->scheme, "redis") != 0)
        return sluice__redis_error(err, SLUICE_EURL, "unsupported scheme", NULL);
    if (url->nhosts < 1 || (!sentinel && url->nhosts != 1))
        return sluice__redis_error(err, SLUICE_EURL,
                                   sentinel ? "redis+sentinel:// needs at least one host:port"
                                            : "redis:// takes exactly one host:port",
                                   NULL);
    if (sentinel && (!url->path || !*url->path))
        return sluice__redis_error(err, SLUICE_EURL,
                                   "redis+sentinel:// needs the master name as its path", NULL);
    for (int i = 0; i < url->nhosts; i++) {
        if (!url->hosts[i] || strlen(url->hosts[i]) >= SLUICE_REDIS_HOST_MAX)
            return sluice__redis_error(err, SLUICE_EURL, "host name too long", NULL);
    }

    sluice__redis *r = sluice__calloc(1, sizeof(*r));
    if (!r)
        return sluice__redis_error(err, SLUICE_ENOMEM, "out of memory", NULL);
    pthread_mutex_init(&r->addr_mu, NULL);
    for (int i = 0; i < SLUICE_REDIS_POOL; i++)
        pthread_mutex_init(&r->slots[i].mu, NULL);
    r->sentinel = sentinel;
    r->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 20;
    char to[16];
    if (sluice__url_param(url, "timeout_ms", to, sizeof(to)) == 0) {
        /* ?timeout_ms=N in the URL overrides the config's timeout_ms */
        char *end;
        long v = strtol(to, &end, 10);
        if (*end || v < 1 || v > 60000) {
            redis_close(r);
            return sluice__redis_error(err, SLUICE_EURL, "timeout_ms must be in 1..60000", NULL);
        }
        r->timeout_ms = (int)v;
    }
    sluice__sha1_hex(sluice__redis_lua, sluice__redis_lua_len, r->sha);
    int rc = sluice__redis_open_engine(url, &r->engine, EF, err);
    if (rc == 0)
        rc = sluice__redis_open_deny_cache(url, &r->dc, EF, err);
    if (rc) {
        redis_close(r);
        return rc;
    }
    if ((url->user && !(r->user = sluice__strdup(url->user))) ||
        (url->password && !(r->password = sluice__strdup(url->password)))) {
        redis_close(r);
        return sluice__redis_error(err, SLUICE_ENOMEM, "out of memory", NULL);
    }
    if (!sentinel) {
        if (parse_db(url->path, &r->db) != 0) {
            redis_close(r);
            return sluice__redis_error(err, SLUICE_EURL, "db must be a number in 0..65535", NULL);
        }
        sluice__redis_set_addr(r, url->hosts[0], url->ports[0] > 0 ? url->ports[0] : 6379);
    } else {
        char db[16];
        if (sluice__url_param(url, "db", db, sizeof(db)) == 0 && parse_db(db, &r->db) != 0) {
            redis_close(r);
            return sluice__redis_error(err, SLUICE_EURL, "db must be a number in 0..65535", NULL);
        }
        rc = sluice__sentinel_start(&r->snt, r, url, err);
        if (rc) {
            redis_close(r);
            return rc;
        }
    }
    *impl = r;
    return 0;
}

static int redis_decide(void *impl, const sluice__op *op, sluice_decision *out, sluice_error *err)
{
    sluice_error tmp;
    if (!err)
        err = &tmp;
    err->code = 0;
    if (!impl || !op || !out || op->nlimits < 1 || op->nlimits > SLUICE_MAX_LIMITS)
        return sluice__redis_error(err, SLUICE_EINVAL, "bad arguments", NULL);
    sluice__redis *r = impl;
    int64_t sent_ns = sluice__deny_cache_clock_ns();
    if (sluice__deny_cache_lookup(r->dc, op, sent_ns, out))
        return 0; /* a denial still certain: no round trip */
    int rc = run(r, op, out, err);
    if (rc == 0)
        sluice__deny_cache_record(r->dc, op, sent_ns, sluice__deny_cache_clock_ns(), out);
    return rc;
}

static int redis_ping(void *impl, sluice_error *err)
{
    sluice_error tmp;
    if (!err)
        err = &tmp;
    err->code = 0;
    if (!impl)
        return sluice__redis_error(err, SLUICE_EINVAL, "bad arguments", NULL);
    return run(impl, NULL, NULL, err);
}

const sluice__store_ops sluice__redis_ops = {
    .scheme = "redis",
    .open = redis_open,
    .close = redis_close,
    .decide = redis_decide,
    .ping = redis_ping,
    .keys = NULL,
    .attach = sluice__redis_attach,
    .detach = sluice__redis_detach,
    .decide_async = sluice__redis_decide_async,
};
