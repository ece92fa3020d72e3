/* SPDX-License-Identifier: MIT */
/*
 * cluster.c - the redis+cluster:// store: the slot map, the topology refresh
 * thread, and the blocking decision path.  The asynchronous path for event
 * loops is cluster_async.c.
 *
 * The slot map, node table and refresh thread are in cluster_topo.c.
 *
 * Routing.  A decision's keys sluice:{<rule>[@<tier>]:<identifier>}:<n> share one
 * hash tag, so one decision is one EVALSHA to the master of one slot
 * (CRC16/XMODEM, crc16.c).  slots[] maps each of the 16384 slots to an entry
 * of nodes[]; readers use it without a lock.  It is rebuilt from CLUSTER
 * SLOTS by a background thread once a second and soon after any error
 * (rate-limited to one refresh per 50 ms), and patched at once on MOVED.
 * ASK is followed once, with ASKING, without touching the map.  TRYAGAIN,
 * CLUSTERDOWN and LOADING are retried after a short pause while the
 * decision's deadline allows.  A decision on a healthy cluster is one round
 * trip; a redirect costs one more.
 *
 * Blocking path.  Each master has a small pool of blocking hiredis contexts,
 * each used under its own mutex, with SO_RCVTIMEO/SO_SNDTIMEO set to the
 * time left; a context that failed stays down for a backoff (10 ms doubling
 * to 1 s) during which decisions routed to it fail at once.  So while a dead
 * master's replica is being promoted, decisions for its slots fail fast with
 * SLUICE_ESTORE (store.c applies on_store_error) and decisions for other
 * slots never wait on it; once the refresh sees the new master they go
 * there, without a restart.
 *
 * Scripts are loaded with SCRIPT LOAD on every new connection, and again on
 * NOSCRIPT (the script cache is per node and lost on failover).  With
 * ?wait=N every decision is followed, in the same pipeline, by WAIT N <time
 * left>, so the answer comes back only once N replicas have the new state
 * (or the deadline passed); see docs/cluster.md for what that buys.
 *
 * This file never decides on its own (no fallback here), never logs and
 * never puts the password in a message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/redis/cluster_int.h"
#include "store/redis/redis_lua.h"
#include "util/alloc.h"

/* ---- small helpers ---------------------------------------------------- */

static int cerr(sluice_error *err, int code, const char *what, const char *detail)
{
    if (err) {
        err->code = code;
        if (detail)
            snprintf(err->msg, sizeof(err->msg), "redis+cluster: %s: %.180s", what, detail);
        else
            snprintf(err->msg, sizeof(err->msg), "redis+cluster: %s", what);
    }
    return code;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- blocking path: one node's pool ------------------------------------ */

/* Locks one of node i's slots within the deadline, its context dropped if
 * stale; NULL with err set. */
static sluice__redis_slot *node_slot(sluice__cluster *cs, int i, int64_t deadline_us,
                                     sluice_error *err)
{
    sluice__cnode *n = &cs->nodes[i];
    sluice__redis_slot *s =
        sluice__redis_slot_take(n->pool, SLUICE_CLUSTER_POOL, &n->next, deadline_us, cerr, err);
    if (s)
        sluice__redis_slot_check(s, atomic_load(&n->gen));
    return s;
}

/* Connects s to node i within the deadline: AUTH and SCRIPT LOAD, pipelined. */
static int slot_connect(sluice__cluster *cs, int i, sluice__redis_slot *s, int64_t deadline_us,
                        sluice_error *err)
{
    char host[SLUICE_REDIS_HOST_MAX];
    int port;
    uint64_t gen = sluice__cluster_node_addr(cs, i, host, sizeof(host), &port);
    bool unreachable;
    int rc = sluice__redis_slot_open(s, host, port, gen, deadline_us, cerr, &unreachable, err);
    if (rc)
        return rc;
    int nreplies = sluice__redis_append_auth(s->c, cs->user, cs->password);
    if (nreplies < 0)
        return cerr(err, SLUICE_ENOMEM, "out of memory", NULL);
    sluice__redis_append_load(s->c);
    /* engine=auto asks each node, on each new connection (so again after a
     * failover); the script is loaded anyway, for the fallback */
    s->module = cs->engine == SLUICE__ENGINE_MODULE;
    if (cs->engine == SLUICE__ENGINE_AUTO)
        sluice__redis_append_detect(s->c);
    rc = sluice__redis_slot_setup(s, deadline_us, nreplies + 1, NULL, cerr, err);
    if (rc)
        return rc;
    if (cs->engine != SLUICE__ENGINE_AUTO) {
        sluice__redis_engine_note(host, port, s->module, "configured");
        return 0;
    }
    redisReply *rep = sluice__redis_slot_reply(s, deadline_us, cerr, err);
    if (!rep)
        return err && err->code ? err->code : SLUICE_ESTORE;
    s->module = sluice__redis_detect_reply(rep);
    freeReplyObject(rep);
    sluice__cluster_engine_note(cs, i, gen, s->module, "detected");
    return 0;
}

/* What one attempt on one node came to. */
typedef struct attempt {
    sluice__cluster_reply kind;
    int slot, port;
    char host[SLUICE_REDIS_HOST_MAX];
} attempt;

/*
 * Sends [SCRIPT LOAD] [ASKING] EVALSHA [WAIT wait_n] and reads every reply.
 * Returns 0 with the script's reply in *out (owned by the caller), or an I/O
 * error.  *acked is WAIT's answer (replicas that have the write), -1 when it
 * did not come in time: *dirty is then set and the caller drops the
 * connection, which still owes that reply.
 */
static int send_and_read(sluice__redis_slot *s, const char *cmd, long len, bool load, bool asking,
                         int wait_n, int64_t deadline_us, redisReply **out, bool *dirty,
                         long long *acked, sluice_error *err)
{
    *out = NULL;
    *dirty = false;
    *acked = -1;
    int rc = sluice__redis_slot_timeout(s, deadline_us, cerr, err);
    if (rc)
        return rc;
    int n = 0, at = 0;
    if (load) {
        sluice__redis_append_load(s->c);
        n++;
    }
    if (asking) {
        redisAppendCommand(s->c, "ASKING");
        n++;
    }
    at = n;
    redisAppendFormattedCommand(s->c, cmd, (size_t)len);
    n++;
    if (wait_n > 0) {
        redisAppendCommand(s->c, "WAIT %d %lld", wait_n,
                           sluice__cluster_wait_ms(sluice__redis_left_ms(deadline_us)));
        n++;
    }
    for (int k = 0; k < n; k++) {
        if (k > at && (rc = sluice__redis_slot_timeout(s, deadline_us, cerr, err)) != 0) {
            *dirty = true;
            return 0;
        }
        redisReply *rep = sluice__redis_slot_reply(s, deadline_us, cerr, err);
        if (!rep && k > at) {
            *dirty = true; /* only WAIT is missing */
            return 0;
        }
        if (!rep)
            return err->code;
        if (k == at) {
            *out = rep;
            continue;
        }
        if (wait_n > 0 && k == n - 1 && rep->type == REDIS_REPLY_INTEGER)
            *acked = rep->integer;
        freeReplyObject(rep);
    }
    return 0;
}

/*
 * One attempt of op on node i.  Returns 0 with a->kind DONE and out filled,
 * 0 with another kind (redirect, retry), or a negative code with err set.
 */
static int node_attempt(sluice__cluster *cs, int i, const sluice__op *op, bool asking,
                        int64_t deadline_us, sluice_decision *out, attempt *a, sluice_error *err)
{
    a->kind = SLUICE_CREPLY_DONE;
    sluice__redis_slot *s = node_slot(cs, i, deadline_us, err);
    if (!s)
        return SLUICE_ETIMEOUT;
    int rc = 0;
    if (!s->c) {
        if (sluice__redis_mono_us() < s->retry_at_us) {
            rc = cerr(err, SLUICE_ESTORE, "node unreachable, reconnecting", NULL);
            goto out_unlock;
        }
        rc = slot_connect(cs, i, s, deadline_us, err);
        if (rc) {
            sluice__redis_slot_drop(s);
            goto out_unlock;
        }
    }
    char cmd[SLUICE_REDIS_CMD_MAX];
    bool module = sluice__cluster_use_module(cs, s->module);
    long len = sluice__redis_format_cmd(module, cs->sha, op, cmd, sizeof(cmd));
    if (len < 0) {
        rc = cerr(err, (int)len, "cannot build the command", NULL);
        goto out_unlock;
    }
    redisReply *rep;
    bool dirty;
    long long acked;
    int wait_n = sluice__cluster_wait_n(cs, i);
    rc = send_and_read(s, cmd, len, false, asking, wait_n, deadline_us, &rep, &dirty, &acked, err);
    if (rc == 0 && !dirty && module && sluice__redis_is_nomodule(rep) &&
        cs->engine == SLUICE__ENGINE_AUTO) {
        /* the module left this node (MODULE UNLOAD): Lua from now on here */
        freeReplyObject(rep);
        s->module = false;
        sluice__cluster_engine_note(cs, i, s->gen, false, "module_gone");
        len = sluice__redis_format_evalsha(cs->sha, op, cmd, sizeof(cmd));
        rc = send_and_read(s, cmd, len, false, asking, wait_n, deadline_us, &rep, &dirty, &acked,
                           err);
    }
    if (rc == 0 && !dirty && sluice__redis_is_noscript(rep)) {
        /* SCRIPT FLUSH, restart or failover: load and retry in one round trip */
        freeReplyObject(rep);
        rc = send_and_read(s, cmd, len, true, asking, wait_n, deadline_us, &rep, &dirty, &acked,
                           err);
    }
    if (rc) {
        sluice__redis_slot_drop(s);
        goto out_unlock;
    }
    s->backoff_ms = 0;
    if (dirty) {
        redisFree(s->c); /* it still owes the WAIT reply; reconnect on next use */
        s->c = NULL;
        s->retry_at_us = 0;
        err->code = 0;
    }
    a->kind = sluice__cluster_classify(rep, &a->slot, a->host, sizeof(a->host), &a->port);
    if (a->kind == SLUICE_CREPLY_DONE && sluice__redis_is_nomodule(rep)) {
        rc = cerr(err, SLUICE_ESTORE, SLUICE__NOMODULE_MSG, NULL); /* engine=module */
    } else if (a->kind == SLUICE_CREPLY_DONE) {
        rc = sluice__redis_parse(rep, op, out, err);
        /* ?wait=N: a write that N replicas do not have may be lost in a
         * failover; report it as a store failure (on_store_error decides, and
         * the count stays on the master: it errs toward denying) */
        if (rc == 0 && wait_n > 0 && op->cost > 0 && out->allowed && acked < wait_n)
            rc = cerr(err, SLUICE_ESTORE, "decision not replicated in time (WAIT)", NULL);
    } else if ((a->kind == SLUICE_CREPLY_MOVED || a->kind == SLUICE_CREPLY_ASK) && !a->host[0]) {
        char h[SLUICE_REDIS_HOST_MAX];
        int p;
        sluice__cluster_node_addr(cs, i, h, sizeof(h), &p);
        snprintf(a->host, sizeof(a->host), "%s", h);
    } else if (a->kind != SLUICE_CREPLY_MOVED && a->kind != SLUICE_CREPLY_ASK) {
        cerr(err, SLUICE_ESTORE, "cluster busy", rep->str);
    }
    freeReplyObject(rep);
out_unlock:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* The whole blocking decision: route, follow redirects, retry within the deadline. */
static int run(sluice__cluster *cs, const sluice__op *op, sluice_decision *out, sluice_error *err)
{
    int64_t deadline_us = sluice__redis_mono_us() + (int64_t)cs->timeout_ms * 1000;
    int slot = sluice__cluster_op_slot(op);
    int ask = -1, hops = 0;
    for (;;) {
        int i = ask >= 0 ? ask : sluice__cluster_slot_node(cs, slot);
        if (i == SLUICE_CLUSTER_NO_NODE) {
            sluice__cluster_kick(cs);
            return cerr(err, SLUICE_ESTORE, "no master known for the slot", NULL);
        }
        attempt a;
        int rc = node_attempt(cs, i, op, ask >= 0, deadline_us, out, &a, err);
        ask = -1;
        if (rc) {
            if (rc == SLUICE_ESTORE || rc == SLUICE_ETIMEOUT)
                sluice__cluster_kick(cs);
            return rc;
        }
        if (a.kind == SLUICE_CREPLY_DONE)
            return 0;
        if (a.kind == SLUICE_CREPLY_MOVED || a.kind == SLUICE_CREPLY_ASK) {
            if (++hops > SLUICE_CLUSTER_REDIRECTS_MAX)
                return cerr(err, SLUICE_ESTORE, "too many redirects", NULL);
            int j = sluice__cluster_node_for(cs, a.host, a.port);
            if (j < 0)
                return cerr(err, SLUICE_ESTORE, "too many cluster nodes", NULL);
            if (a.kind == SLUICE_CREPLY_MOVED)
                sluice__cluster_set_slot(cs, a.slot, j);
            else
                ask = j;
            continue;
        }
        /* TRYAGAIN, CLUSTERDOWN, LOADING: pause, refresh, retry.  During a
         * migration ASK and TRYAGAIN alternate; only the deadline bounds that. */
        hops = 0;
        sluice__cluster_kick(cs);
        int64_t left = sluice__redis_left_ms(deadline_us);
        if (left <= SLUICE_CLUSTER_TRYAGAIN_MS)
            return err->code ? err->code : cerr(err, SLUICE_ESTORE, "cluster busy", NULL);
        sleep_ms(SLUICE_CLUSTER_TRYAGAIN_MS);
    }
}

static int ping_node(sluice__cluster *cs, int i, int64_t deadline_us, sluice_error *err)
{
    sluice__redis_slot *s = node_slot(cs, i, deadline_us, err);
    if (!s)
        return SLUICE_ETIMEOUT;
    int rc = 0;
    if (!s->c)
        rc = slot_connect(cs, i, s, deadline_us, err);
    if (rc == 0)
        rc = sluice__redis_slot_timeout(s, deadline_us, cerr, err);
    if (rc == 0) {
        redisReply *rep = redisCommand(s->c, "PING");
        if (!rep)
            rc = sluice__redis_io_error(cerr, err, s->c);
        else if (rep->type == REDIS_REPLY_ERROR)
            rc = cerr(err, SLUICE_ESTORE, "PING refused", rep->str);
        if (rep)
            freeReplyObject(rep);
    }
    if (rc && rc != SLUICE_ENOMEM)
        sluice__redis_slot_drop(s);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- ops ------------------------------------------------------------- */

static void cluster_close(void *impl)
{
    sluice__cluster *cs = impl;
    if (!cs)
        return;
    if (cs->thread_started) {
        pthread_mutex_lock(&cs->kick_mu);
        cs->stopping = true;
        pthread_cond_signal(&cs->kick_cv);
        pthread_mutex_unlock(&cs->kick_mu);
        pthread_join(cs->thread, NULL);
    }
    if (cs->rc)
        redisFree(cs->rc);
    for (int i = 0; i < SLUICE_CLUSTER_NODES_MAX; i++) {
        for (int j = 0; j < SLUICE_CLUSTER_POOL; j++) {
            if (cs->nodes[i].pool[j].c)
                redisFree(cs->nodes[i].pool[j].c);
            pthread_mutex_destroy(&cs->nodes[i].pool[j].mu);
        }
    }
    pthread_mutex_destroy(&cs->topo_mu);
    pthread_mutex_destroy(&cs->kick_mu);
    sluice__deny_cache_free(cs->dc);
    pthread_cond_destroy(&cs->kick_cv);
    sluice__free(cs->user);
    if (cs->password) {
        memset(cs->password, 0, strlen(cs->password));
        sluice__free(cs->password);
    }
    sluice__free(cs);
}

static int cluster_open(void **impl, const sluice__url *url, const sluice_store_options *opts,
                        sluice_error *err)
{
    *impl = NULL;
    if (strcmp(url->scheme, "redis+cluster") != 0)
        return cerr(err, SLUICE_EURL, "unsupported scheme", NULL);
    if (url->nhosts < 1)
        return cerr(err, SLUICE_EURL, "redis+cluster:// needs at least one host:port", NULL);
    for (int i = 0; i < url->nhosts; i++) {
        if (!url->hosts[i] || strlen(url->hosts[i]) >= SLUICE_REDIS_HOST_MAX)
            return cerr(err, SLUICE_EURL, "host name too long", NULL);
    }
    int wait = 0;
    char buf[16];
    if (sluice__url_param(url, "wait", buf, sizeof(buf)) == 0) {
        char *end;
        long v = strtol(buf, &end, 10);
        if (end == buf || *end || v < 0 || v > 16)
            return cerr(err, SLUICE_EURL, "wait must be a number of replicas in 0..16", NULL);
        wait = (int)v;
    }

    sluice__cluster *cs = sluice__calloc(1, sizeof(*cs));
    if (!cs)
        return cerr(err, SLUICE_ENOMEM, "out of memory", NULL);
    pthread_mutex_init(&cs->topo_mu, NULL);
    pthread_mutex_init(&cs->kick_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cs->kick_cv, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < SLUICE_CLUSTER_NODES_MAX; i++) {
        for (int j = 0; j < SLUICE_CLUSTER_POOL; j++)
            pthread_mutex_init(&cs->nodes[i].pool[j].mu, NULL);
    }
    for (int s = 0; s < SLUICE_CLUSTER_SLOTS; s++)
        atomic_init(&cs->slots[s], SLUICE_CLUSTER_NO_NODE);
    cs->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 20;
    cs->wait_replicas = wait;
    sluice__sha1_hex(sluice__redis_lua, sluice__redis_lua_len, cs->sha);
    int rc = sluice__redis_open_engine(url, &cs->engine, cerr, err);
    if (rc == 0)
        rc = sluice__redis_open_deny_cache(url, &cs->dc, cerr, err);
    if (rc) {
        cluster_close(cs);
        return rc;
    }
    if ((url->user && !(cs->user = sluice__strdup(url->user))) ||
        (url->password && !(cs->password = sluice__strdup(url->password)))) {
        cluster_close(cs);
        return cerr(err, SLUICE_ENOMEM, "out of memory", NULL);
    }
    int n = 0;
    for (int i = 0; i < url->nhosts; i++)
        sluice__cluster_known_add(cs, &n, url->hosts[i], url->ports[i] > 0 ? url->ports[i] : 6379);
    cs->nknown = cs->nseeds = n;
    cs->rc_known = -1;
    /* One synchronous attempt so the first decision finds a map; an
     * unreachable cluster still opens and the thread keeps trying. */
    sluice__cluster_refresh_once(cs);
    if (pthread_create(&cs->thread, NULL, sluice__cluster_refresh_thread, cs) != 0) {
        cluster_close(cs);
        return cerr(err, SLUICE_ESTORE, "cannot start the topology thread", NULL);
    }
    cs->thread_started = true;
    *impl = cs;
    return 0;
}

static int cluster_decide(void *impl, const sluice__op *op, sluice_decision *out, sluice_error *err)
{
    sluice_error tmp;
    if (!err)
        err = &tmp;
    err->code = 0;
    if (!impl || !op || !out || op->nlimits < 1 || op->nlimits > SLUICE_MAX_LIMITS ||
        op->key_len > SLUICE_STORE_KEY_MAX)
        return cerr(err, SLUICE_EINVAL, "bad arguments", NULL);
    sluice__cluster *cs = impl;
    int64_t sent_ns = sluice__deny_cache_clock_ns();
    if (sluice__deny_cache_lookup(cs->dc, op, sent_ns, out))
        return 0; /* a denial still certain: no round trip */
    int rc = run(cs, op, out, err);
    if (rc == 0)
        sluice__deny_cache_record(cs->dc, op, sent_ns, sluice__deny_cache_clock_ns(), out);
    return rc;
}

/* Ready when every slot has a master and every master answers PING. */
static int cluster_ping(void *impl, sluice_error *err)
{
    sluice_error tmp;
    if (!err)
        err = &tmp;
    err->code = 0;
    sluice__cluster *cs = impl;
    if (!cs)
        return cerr(err, SLUICE_EINVAL, "bad arguments", NULL);
    int64_t deadline_us = sluice__redis_mono_us() + (int64_t)cs->timeout_ms * 1000;
    uint8_t seen[SLUICE_CLUSTER_NODES_MAX] = {0};
    for (int s = 0; s < SLUICE_CLUSTER_SLOTS; s++) {
        int i = sluice__cluster_slot_node(cs, s);
        if (i == SLUICE_CLUSTER_NO_NODE) {
            sluice__cluster_kick(cs);
            return cerr(err, SLUICE_ESTORE, "not every slot has a known master", NULL);
        }
        if (seen[i])
            continue;
        seen[i] = 1;
        int rc = ping_node(cs, i, deadline_us, err);
        if (rc) {
            sluice__cluster_kick(cs);
            return rc;
        }
    }
    return 0;
}

const sluice__store_ops sluice__cluster_ops = {
    .scheme = "redis+cluster",
    .open = cluster_open,
    .close = cluster_close,
    .decide = cluster_decide,
    .ping = cluster_ping,
    .keys = NULL,
    .attach = sluice__cluster_attach,
    .detach = sluice__cluster_detach,
    .decide_async = sluice__cluster_decide_async,
};
