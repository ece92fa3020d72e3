/* SPDX-License-Identifier: MIT */
/*
 * fuzz_redis_reply.c - the bytes of a hostile or broken Redis server: fed
 * to hiredis's reader set up exactly as sluice's connections set theirs up
 * (the blocking contexts' default reply objects, and the async links'
 * pooled ones, redis_rpool.c), in two pieces split where the input says,
 * and every reply handed to the code that interprets replies:
 *   - the decision script's reply (sluice__redis_parse) for every number of
 *     limits, what the deny cache stores of a parsed reply and answers
 *     from it, and the NOSCRIPT / READONLY / ROLE checks;
 *   - Redis Cluster's redirects and errors (sluice__cluster_classify) and
 *     the slot map of a CLUSTER SLOTS reply (sluice__cluster_apply_slots);
 *   - Sentinel's master address and +switch-master messages.
 * Run with -malloc_limit_mb=64: one reply may hold 2^20 elements (8 MB of
 * pointers), anything near the limit is a reply that should have been
 * refused.
 * Input: byte 0 picks the split point (as a fraction of the rest), the rest
 * is the server's byte stream.
 */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/algo.h"
#include "store/redis/cluster_int.h"
#include "store/redis/redis_int.h"

static sluice__cluster *cs;
static sluice__deny_cache *dc; /* fresh for each input */
static bool cs_dirty = true;   /* a slot map was installed since the last reset */

/* A cluster store with no connections: only its slot map and node table. */
static void cluster_reset(void)
{
    if (!cs_dirty)
        return;
    cs_dirty = false;
    if (!cs) {
        cs = calloc(1, sizeof(*cs));
        if (!cs)
            abort();
    } else {
        pthread_mutex_destroy(&cs->topo_mu);
        memset(cs, 0, sizeof(*cs));
    }
    pthread_mutex_init(&cs->topo_mu, NULL);
    for (int i = 0; i < SLUICE_CLUSTER_NODES_MAX; i++)
        for (int j = 0; j < SLUICE_CLUSTER_POOL; j++)
            pthread_mutex_init(&cs->nodes[i].pool[j].mu, NULL);
    for (int s = 0; s < SLUICE_CLUSTER_SLOTS; s++)
        cs->slots[s] = SLUICE_CLUSTER_NO_NODE;
    snprintf(cs->known_host[0], SLUICE_REDIS_HOST_MAX, "seed");
    cs->known_port[0] = 7000;
    cs->nseeds = cs->nknown = 1;
}

static void interpret(const redisReply *rep)
{
    /* the decision script, for every number of limits */
    for (int n = 1; n <= SLUICE_MAX_LIMITS; n++) {
        sluice_limit limits[SLUICE_MAX_LIMITS];
        sluice__op op;
        memset(&op, 0, sizeof(op));
        op.key = "k";
        op.key_len = 1;
        op.nlimits = n;
        op.cost = 1;
        op.now_ms = SLUICE_NOW;
        for (int i = 0; i < n; i++)
            limits[i] =
                (sluice_limit){.algorithm = i % 5, .limit = 10, .window_ms = 1000, .burst = 10};
        op.limits = limits;
        sluice_decision d;
        sluice_error err = {0};
        if (sluice__redis_parse(rep, &op, &d, &err) != 0)
            continue;
        /* what the deny cache makes of the server's fields: stored, then
         * answered locally at once and later */
        sluice__deny_horizon(op.limits, n, op.cost, &d);
        int64_t t0 = 1000000000;
        sluice__deny_cache_record(dc, &op, t0, t0 + 500000, &d);
        sluice_decision local;
        for (int64_t later = 0; later <= 2000000000; later += 1000000000)
            sluice__deny_cache_lookup(dc, &op, t0 + 500000 + later, &local);
    }
    sluice__redis_is_noscript(rep);
    sluice__redis_is_moved_master(rep);
    sluice__redis_role_is_master(rep);

    /* cluster: redirects into buffers of every size that matters */
    static const size_t sizes[] = {1, 2, 16, SLUICE_REDIS_HOST_MAX};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char host[SLUICE_REDIS_HOST_MAX];
        int slot = -1, port = -1;
        sluice__cluster_reply k = sluice__cluster_classify(rep, &slot, host, sizes[i], &port);
        if ((k == SLUICE_CREPLY_MOVED || k == SLUICE_CREPLY_ASK) &&
            (slot < 0 || slot >= SLUICE_CLUSTER_SLOTS || port <= 0 || port > 65535 ||
             strlen(host) >= sizes[i]))
            abort();
    }
    /* CLUSTER SLOTS: an array whose first entry is an array (installing a
     * map walks all 16384 slots twice: other shapes go faster elsewhere) */
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY &&
        sluice__cluster_apply_slots(cs, rep, "asked") == 0) {
        cs_dirty = true;
        for (int s = 0; s < SLUICE_CLUSTER_SLOTS; s++) {
            int n = sluice__cluster_slot_node(cs, s);
            if (n != SLUICE_CLUSTER_NO_NODE && (n < 0 || n >= cs->nnodes))
                abort();
        }
    }

    /* sentinel */
    char host[SLUICE_REDIS_HOST_MAX];
    int port;
    if (sluice__sentinel_parse_addr(rep, host, sizeof(host), &port) == 0 &&
        (port <= 0 || port > 65535 || strlen(host) >= sizeof(host)))
        abort();
    sluice__sentinel_parse_switch(rep, "mymaster", host, sizeof(host), &port);
}

/* Feeds data to r in two pieces and interprets every reply it yields. */
static void run(redisReader *r, const char *data, size_t size, size_t split)
{
    const char *piece[2] = {data, data + split};
    size_t len[2] = {split, size - split};
    for (int p = 0; p < 2; p++) {
        if (redisReaderFeed(r, piece[p], len[p]) != REDIS_OK)
            return;
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(r, &reply) != REDIS_OK)
                return; /* a protocol error: the connection is dropped */
            if (!reply)
                break; /* needs more bytes */
            interpret(reply);
            r->fn->freeObject(reply);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = (size - 1) * data[0] / 255;
    const char *bytes = (const char *)data + 1;
    size--;
    cluster_reset();
    sluice__deny_cache_free(dc);
    if (!(dc = sluice__deny_cache_new(16)))
        abort();

    /* the blocking contexts: hiredis's own reply objects */
    redisReader *r = redisReaderCreate();
    if (!r)
        return 0;
    if (sluice__redis_reader_bound(r) == 0)
        run(r, bytes, size, split);
    redisReaderFree(r);

    /* the async links: pooled reply objects */
    sluice__redis_rpool *pool = sluice__redis_rpool_new();
    r = redisReaderCreate();
    if (pool && r) {
        sluice__redis_rpool_use(pool, r);
        run(r, bytes, size, split);
    }
    redisReaderFree(r);
    sluice__redis_rpool_free(pool);
    return 0;
}
