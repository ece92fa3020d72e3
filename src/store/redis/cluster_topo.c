/* SPDX-License-Identifier: MIT */
/*
 * cluster_topo.c - the topology of a redis+cluster:// store: the slot map
 * (16384 entries read lock-free by every decision), the table of node
 * addresses, reading redirects (MOVED, ASK) and other cluster errors, and
 * the refresh thread that rebuilds the map from CLUSTER SLOTS once a second
 * and within 50 ms of a kick.  Decisions never wait on it: it has its own
 * connection, and a refresh that fails leaves the old map in place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/redis/cluster_int.h"
#include "store/redis/redis_engine.h"
#include "util/alloc.h"

/* ---- slots and nodes --------------------------------------------------- */

int sluice__cluster_op_slot(const sluice__op *op)
{
    /* Hash the key exactly as Redis will see it, so an identifier holding
     * braces still routes to the node that owns the key. */
    char k[SLUICE_STORE_KEY_MAX + 16];
    size_t len = op->key_len > SLUICE_STORE_KEY_MAX ? SLUICE_STORE_KEY_MAX : op->key_len;
    memcpy(k, "sluice:{", 8);
    memcpy(k + 8, op->key, len);
    memcpy(k + 8 + len, "}:0", 3);
    return sluice__cluster_keyslot(k, 8 + len + 3);
}

int sluice__cluster_slot_node(sluice__cluster *cs, int slot)
{
    return atomic_load_explicit(&cs->slots[slot], memory_order_acquire);
}

uint64_t sluice__cluster_node_addr(sluice__cluster *cs, int i, char *host, size_t size, int *port)
{
    pthread_mutex_lock(&cs->topo_mu);
    snprintf(host, size, "%s", cs->nodes[i].host);
    *port = cs->nodes[i].port;
    uint64_t gen = atomic_load(&cs->nodes[i].gen);
    pthread_mutex_unlock(&cs->topo_mu);
    return gen;
}

/* Under topo_mu: cs->lacking = the masters of the slot map whose latest
 * detection found no module.  Rare (a new connection, a map change), so a
 * scan of the map is fine. */
static void recount_lacking_locked(sluice__cluster *cs)
{
    uint8_t used[SLUICE_CLUSTER_NODES_MAX] = {0};
    for (int s = 0; s < SLUICE_CLUSTER_SLOTS; s++) {
        int n = atomic_load_explicit(&cs->slots[s], memory_order_relaxed);
        if (n < SLUICE_CLUSTER_NODES_MAX)
            used[n] = 1;
    }
    int lacking = 0;
    for (int i = 0; i < cs->nnodes; i++)
        lacking += used[i] && cs->nodes[i].lacks_module;
    atomic_store(&cs->lacking, lacking);
}

void sluice__cluster_engine_note(sluice__cluster *cs, int i, uint64_t gen, bool module,
                                 const char *why)
{
    char host[SLUICE_REDIS_HOST_MAX];
    int port = 0;
    bool current = false;
    pthread_mutex_lock(&cs->topo_mu);
    if (i >= 0 && i < cs->nnodes && atomic_load(&cs->nodes[i].gen) == gen) {
        current = true;
        snprintf(host, sizeof(host), "%s", cs->nodes[i].host);
        port = cs->nodes[i].port;
        if (cs->nodes[i].lacks_module != !module) {
            cs->nodes[i].lacks_module = !module;
            recount_lacking_locked(cs);
        }
    }
    pthread_mutex_unlock(&cs->topo_mu);
    if (current) /* outside topo_mu: the report takes its own lock and runs a hook */
        sluice__redis_engine_note(host, port, module, why);
}

/* Under topo_mu.  pinned (may be NULL) marks entries that must not be reused. */
static int node_for_locked(sluice__cluster *cs, const char *host, int port, const uint8_t *pinned)
{
    for (int i = 0; i < cs->nnodes; i++) {
        if (cs->nodes[i].port == port && strcmp(cs->nodes[i].host, host) == 0)
            return i;
    }
    int i = -1;
    if (cs->nnodes < SLUICE_CLUSTER_NODES_MAX) {
        i = cs->nnodes++;
    } else {
        /* full: take an entry no slot points to (a node that left the cluster) */
        uint8_t used[SLUICE_CLUSTER_NODES_MAX] = {0};
        for (int s = 0; s < SLUICE_CLUSTER_SLOTS; s++) {
            int n = atomic_load_explicit(&cs->slots[s], memory_order_relaxed);
            if (n < SLUICE_CLUSTER_NODES_MAX)
                used[n] = 1;
        }
        for (int j = 0; j < SLUICE_CLUSTER_NODES_MAX && i < 0; j++) {
            if (!used[j] && !(pinned && pinned[j]))
                i = j;
        }
        if (i < 0)
            return -1;
    }
    snprintf(cs->nodes[i].host, sizeof(cs->nodes[i].host), "%s", host);
    cs->nodes[i].port = port;
    cs->nodes[i].lacks_module = false;      /* a new address: unknown until detected */
    atomic_fetch_add(&cs->nodes[i].gen, 1); /* pooled contexts of the old address reconnect */
    return i;
}

int sluice__cluster_node_for(sluice__cluster *cs, const char *host, int port)
{
    if (strlen(host) >= SLUICE_REDIS_HOST_MAX || port <= 0 || port > 65535)
        return -1;
    pthread_mutex_lock(&cs->topo_mu);
    int i = node_for_locked(cs, host, port, NULL);
    pthread_mutex_unlock(&cs->topo_mu);
    return i;
}

int sluice__cluster_wait_n(sluice__cluster *cs, int i)
{
    /* WAIT on a master without replicas would only burn the deadline */
    int r = atomic_load(&cs->nodes[i].replicas);
    return cs->wait_replicas < r ? cs->wait_replicas : r;
}

long long sluice__cluster_wait_ms(int64_t left_ms)
{
    return left_ms / 2 < 1 ? 1 : (long long)(left_ms / 2);
}

void sluice__cluster_kick(sluice__cluster *cs)
{
    pthread_mutex_lock(&cs->kick_mu);
    if (!cs->kicked) {
        cs->kicked = true;
        pthread_cond_signal(&cs->kick_cv);
    }
    pthread_mutex_unlock(&cs->kick_mu);
}

void sluice__cluster_set_slot(sluice__cluster *cs, int slot, int i)
{
    if (slot < 0 || slot >= SLUICE_CLUSTER_SLOTS || i < 0)
        return;
    uint16_t old = atomic_exchange(&cs->slots[slot], (uint16_t)i);
    if (old != (uint16_t)i)
        atomic_fetch_add(&cs->map_epoch, 1);
    sluice__cluster_kick(cs);
}

static bool has_prefix(const redisReply *r, const char *p)
{
    size_t l = strlen(p);
    return r->len >= l && memcmp(r->str, p, l) == 0;
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK 3999 :6381" (empty host: the same host) */
static bool parse_redirect(const char *s, int *slot, char *host, size_t size, int *port)
{
    const char *sp = strchr(s, ' ');
    if (!sp)
        return false;
    char *end;
    long v = strtol(sp + 1, &end, 10);
    if (end == sp + 1 || *end != ' ' || v < 0 || v >= SLUICE_CLUSTER_SLOTS)
        return false;
    const char *ep = end + 1;
    const char *colon = strrchr(ep, ':');
    if (!colon)
        return false;
    size_t hl = (size_t)(colon - ep);
    if (hl >= size)
        return false;
    char *pend;
    long p = strtol(colon + 1, &pend, 10);
    if (pend == colon + 1 || p <= 0 || p > 65535)
        return false;
    memcpy(host, ep, hl);
    host[hl] = '\0';
    *slot = (int)v;
    *port = (int)p;
    return true;
}

sluice__cluster_reply sluice__cluster_classify(const redisReply *reply, int *slot, char *host,
                                               size_t size, int *port)
{
    if (!reply || reply->type != REDIS_REPLY_ERROR || !reply->str)
        return SLUICE_CREPLY_DONE;
    if (has_prefix(reply, "MOVED ") && parse_redirect(reply->str, slot, host, size, port))
        return SLUICE_CREPLY_MOVED;
    if (has_prefix(reply, "ASK ") && parse_redirect(reply->str, slot, host, size, port))
        return SLUICE_CREPLY_ASK;
    if (sluice__redis_is_noscript(reply))
        return SLUICE_CREPLY_NOSCRIPT;
    static const char *const retry[] = {"TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN",
                                        "READONLY"};
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++) {
        if (has_prefix(reply, retry[i]))
            return SLUICE_CREPLY_RETRY;
    }
    return SLUICE_CREPLY_DONE;
}

/* ---- topology refresh -------------------------------------------------- */

void sluice__cluster_known_add(sluice__cluster *cs, int *n, const char *host, int port)
{
    for (int i = 0; i < *n; i++) {
        if (cs->known_port[i] == port && strcmp(cs->known_host[i], host) == 0)
            return;
    }
    if (*n >= SLUICE_CLUSTER_KNOWN_MAX || strlen(host) >= SLUICE_REDIS_HOST_MAX)
        return;
    snprintf(cs->known_host[*n], SLUICE_REDIS_HOST_MAX, "%s", host);
    cs->known_port[*n] = port;
    (*n)++;
}

/* Host of a CLUSTER SLOTS node entry; NULL, "" and "?" mean the host asked. */
static const char *entry_host(const redisReply *e, const char *asked)
{
    const redisReply *h = e->element[0];
    if (h->type != REDIS_REPLY_STRING || h->len == 0 || strcmp(h->str, "?") == 0)
        return asked;
    return h->str;
}

static bool node_entry_ok(const redisReply *e)
{
    return e->type == REDIS_REPLY_ARRAY && e->elements >= 2 &&
           e->element[1]->type == REDIS_REPLY_INTEGER && e->element[1]->integer > 0 &&
           e->element[1]->integer <= 65535 &&
           (e->element[0]->type == REDIS_REPLY_STRING || e->element[0]->type == REDIS_REPLY_NIL);
}

/* Frees the pooled contexts of entries no slot points to (nodes that left). */
static void close_unused(sluice__cluster *cs, const uint8_t *used)
{
    for (int i = 0; i < SLUICE_CLUSTER_NODES_MAX; i++) {
        if (used[i])
            continue;
        for (int j = 0; j < SLUICE_CLUSTER_POOL; j++) {
            sluice__redis_slot *s = &cs->nodes[i].pool[j];
            if (pthread_mutex_trylock(&s->mu) != 0)
                continue;
            if (s->c) {
                redisFree(s->c);
                s->c = NULL;
            }
            pthread_mutex_unlock(&s->mu);
        }
    }
}

int sluice__cluster_apply_slots(sluice__cluster *cs, const redisReply *rep, const char *asked)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0)
        return -1;
    uint16_t *map = sluice__malloc(sizeof(*map) * SLUICE_CLUSTER_SLOTS);
    if (!map)
        return -1;
    for (int s = 0; s < SLUICE_CLUSTER_SLOTS; s++)
        map[s] = SLUICE_CLUSTER_NO_NODE;
    uint8_t pinned[SLUICE_CLUSTER_NODES_MAX] = {0};
    pthread_mutex_lock(&cs->topo_mu);
    int nknown = cs->nseeds;
    int entries = 0; /* well-formed slot ranges */
    for (size_t k = 0; k < rep->elements; k++) {
        const redisReply *r = rep->element[k];
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
            r->element[0]->type != REDIS_REPLY_INTEGER ||
            r->element[1]->type != REDIS_REPLY_INTEGER || !node_entry_ok(r->element[2]))
            continue;
        long long lo = r->element[0]->integer, hi = r->element[1]->integer;
        if (lo < 0 || hi >= SLUICE_CLUSTER_SLOTS || lo > hi)
            continue;
        const char *host = entry_host(r->element[2], asked);
        int port = (int)r->element[2]->element[1]->integer;
        if (strlen(host) >= SLUICE_REDIS_HOST_MAX)
            continue;
        entries++;
        int i = node_for_locked(cs, host, port, pinned);
        if (i < 0)
            continue;
        pinned[i] = 1;
        for (long long s = lo; s <= hi; s++)
            map[s] = (uint16_t)i;
        sluice__cluster_known_add(cs, &nknown, host, port);
        int replicas = 0;
        for (size_t j = 3; j < r->elements; j++) {
            if (!node_entry_ok(r->element[j]))
                continue;
            replicas++;
            sluice__cluster_known_add(cs, &nknown, entry_host(r->element[j], asked),
                                      (int)r->element[j]->element[1]->integer);
        }
        atomic_store(&cs->nodes[i].replicas, replicas);
    }
    if (entries == 0) {
        /* nothing but malformed entries: no slot map at all is worse than
         * the old one (every decision would fail until the next refresh) */
        pthread_mutex_unlock(&cs->topo_mu);
        sluice__free(map);
        return -1;
    }
    cs->nknown = nknown;
    bool changed = false;
    for (int s = 0; s < SLUICE_CLUSTER_SLOTS; s++) {
        if (atomic_load_explicit(&cs->slots[s], memory_order_relaxed) != map[s]) {
            atomic_store_explicit(&cs->slots[s], map[s], memory_order_release);
            changed = true;
        }
    }
    if (changed)
        recount_lacking_locked(cs); /* a master left or came: "every node in use" changed */
    pthread_mutex_unlock(&cs->topo_mu);
    sluice__free(map);
    if (changed)
        atomic_fetch_add(&cs->map_epoch, 1);
    close_unused(cs, pinned);
    atomic_fetch_add(&cs->refreshes, 1);
    return 0;
}

/* Time allowed to one topology query: generous, it blocks no decision. */
static int64_t refresh_timeout_ms(const sluice__cluster *cs)
{
    int64_t ms = (int64_t)cs->timeout_ms * 5;
    return ms < 100 ? 100 : ms > 1000 ? 1000 : ms;
}

static redisContext *refresh_connect(sluice__cluster *cs, const char *host, int port)
{
    int64_t ms = refresh_timeout_ms(cs);
    redisContext *c = redisConnectWithTimeout(host, port, sluice__redis_tv_ms(ms));
    if (!c || c->err || redisSetTimeout(c, sluice__redis_tv_ms(ms)) != REDIS_OK ||
        sluice__redis_reader_bound(c->reader) != 0) {
        if (c)
            redisFree(c);
        return NULL;
    }
    int n = sluice__redis_append_auth(c, cs->user, cs->password);
    if (n < 0 || sluice__redis_read_setup(c, n, NULL, sluice__redis_error, NULL) != 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* One CLUSTER SLOTS on the thread's connection, or on the next known node
 * that answers.  0 when a map was installed. */
int sluice__cluster_refresh_once(sluice__cluster *cs)
{
    char host[SLUICE_REDIS_HOST_MAX];
    for (int attempt = 0; attempt <= SLUICE_CLUSTER_KNOWN_MAX; attempt++) {
        pthread_mutex_lock(&cs->topo_mu);
        int n = cs->nknown;
        if (!cs->rc)
            cs->rc_known = n > 0 ? (cs->rc_known + 1) % n : 0;
        int k = cs->rc_known < n ? cs->rc_known : 0;
        snprintf(host, sizeof(host), "%s", n ? cs->known_host[k] : "");
        int port = n ? cs->known_port[k] : 0;
        pthread_mutex_unlock(&cs->topo_mu);
        if (!n || attempt >= n + 1)
            return -1;
        if (!cs->rc && !(cs->rc = refresh_connect(cs, host, port)))
            continue;
        redisReply *r = redisCommand(cs->rc, "CLUSTER SLOTS");
        int rc = r ? sluice__cluster_apply_slots(cs, r, host) : -1;
        if (r)
            freeReplyObject(r);
        if (rc == 0)
            return 0;
        redisFree(cs->rc);
        cs->rc = NULL;
    }
    return -1;
}

void *sluice__cluster_refresh_thread(void *arg)
{
    sluice__cluster *cs = arg;
    int64_t next_ok_us = 0; /* no error-driven refresh before this */
    pthread_mutex_lock(&cs->kick_mu);
    while (!cs->stopping) {
        int64_t now = sluice__redis_mono_us();
        int64_t wake = now + (int64_t)SLUICE_CLUSTER_REFRESH_MS * 1000;
        if (cs->kicked)
            wake = next_ok_us;
        if (wake > now) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t ns = ts.tv_nsec + (wake - now) * 1000;
            ts.tv_sec += (time_t)(ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            int w = pthread_cond_timedwait(&cs->kick_cv, &cs->kick_mu, &ts);
            if (w == 0 && !cs->stopping)
                continue; /* kicked: recompute the wake time (rate limit) */
        }
        if (cs->stopping)
            break;
        cs->kicked = false;
        pthread_mutex_unlock(&cs->kick_mu);
        sluice__cluster_refresh_once(cs);
        next_ok_us = sluice__redis_mono_us() + (int64_t)SLUICE_CLUSTER_KICK_GAP_MS * 1000;
        pthread_mutex_lock(&cs->kick_mu);
    }
    pthread_mutex_unlock(&cs->kick_mu);
    return NULL;
}
