/* SPDX-License-Identifier: MIT */
/*
 * cluster_int.h - internals of the redis+cluster:// store shared by
 * cluster.c (the store object, blocking path, ops), cluster_topo.c (slot
 * map, node table, redirects, topology refresh thread) and cluster_async.c
 * (the per-event-loop path).  Command building and
 * reply parsing are the Redis store's (redis_reply.c, sluice.lua): a
 * cluster decision is the same EVALSHA, sent to the master of the slot of
 * its hash tag.  Nothing here prints; the password never enters a message.
 */
#ifndef SLUICE_STORE_CLUSTER_INT_H
#define SLUICE_STORE_CLUSTER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "store/redis/crc16.h"
#include "store/redis/redis_int.h"
#include "store/store.h"

#define SLUICE_CLUSTER_NODES_MAX 64    /* node addresses tracked at once (masters + ASK targets) */
#define SLUICE_CLUSTER_POOL 4          /* blocking contexts per master */
#define SLUICE_CLUSTER_KNOWN_MAX 128   /* addresses remembered for topology refresh */
#define SLUICE_CLUSTER_REFRESH_MS 1000 /* periodic CLUSTER SLOTS */
#define SLUICE_CLUSTER_KICK_GAP_MS 50  /* at most one error-driven refresh per this */
#define SLUICE_CLUSTER_REDIRECTS_MAX 5 /* MOVED/ASK hops within one decision */
#define SLUICE_CLUSTER_TRYAGAIN_MS 5   /* pause before retrying TRYAGAIN/CLUSTERDOWN */
#define SLUICE_CLUSTER_NO_NODE 0xffff  /* slot map entry: no master known */

/* One master (or ASK target) address and its blocking pool. */
typedef struct sluice__cnode {
    /* host, port, gen are guarded by the store's topo_mu */
    char host[SLUICE_REDIS_HOST_MAX];
    int port;
    atomic_uint_fast64_t gen; /* bumped whenever the entry is given to another address */
    atomic_uint next;         /* round-robin start in pool[] */
    /* engine=auto: the latest detection on a connection to this address
     * found no module (guarded by topo_mu; see sluice__cluster_engine_note) */
    bool lacks_module;
    atomic_int replicas; /* replicas CLUSTER SLOTS listed for it (for ?wait=N) */
    sluice__redis_slot pool[SLUICE_CLUSTER_POOL];
} sluice__cnode;

typedef struct sluice__cluster {
    char *user, *password; /* NULL when absent; never logged */
    int timeout_ms;
    int wait_replicas; /* ?wait=N: WAIT N after every decision; 0 = off */
    char sha[41];      /* SHA1 of sluice.lua */
    int engine;        /* ?engine=: SLUICE__ENGINE_* (redis_engine.c) */
    /* engine=auto: masters of the slot map whose connections found no
     * module; while it is above 0 every node decides with Lua */
    atomic_int lacking;
    /* ?deny_cache=on (default); NULL when off */
    sluice__deny_cache *dc;

    /* slot -> index into nodes[], or SLUICE_CLUSTER_NO_NODE; read lock-free */
    _Atomic uint16_t slots[SLUICE_CLUSTER_SLOTS];
    atomic_uint_fast64_t map_epoch; /* bumped by every change to slots[] */

    pthread_mutex_t topo_mu; /* guards nnodes, nodes[].host/port, known[] */
    int nnodes;
    sluice__cnode nodes[SLUICE_CLUSTER_NODES_MAX];
    int nknown; /* seeds first, then every node of the last refresh */
    char known_host[SLUICE_CLUSTER_KNOWN_MAX][SLUICE_REDIS_HOST_MAX];
    int known_port[SLUICE_CLUSTER_KNOWN_MAX];
    int nseeds;

    /* topology refresh thread */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t kick_mu;
    pthread_cond_t kick_cv;
    bool kicked, stopping;
    redisContext *rc;              /* the thread's own connection; thread-only */
    int rc_known;                  /* index in known[] rc is connected to */
    atomic_int_fast64_t refreshes; /* successful CLUSTER SLOTS so far */
} sluice__cluster;

/* How a reply to the decision script is to be handled. */
typedef enum sluice__cluster_reply {
    SLUICE_CREPLY_DONE = 0, /* a decision, or an error that ends it */
    SLUICE_CREPLY_MOVED,    /* slot lives elsewhere for good: update the map, retry */
    SLUICE_CREPLY_ASK,      /* slot migrating: ASKING + retry at the target, once */
    SLUICE_CREPLY_RETRY,    /* TRYAGAIN, CLUSTERDOWN, LOADING: retry shortly */
    SLUICE_CREPLY_NOSCRIPT  /* load the script on that node and retry */
} sluice__cluster_reply;

/* ---- cluster_topo.c ---------------------------------------------------- */

/** The slot of op's Redis keys sluice:{<key>}:<n> (the same for every n). */
int sluice__cluster_op_slot(const sluice__op *op);

/** The node serving slot now, or SLUICE_CLUSTER_NO_NODE. */
int sluice__cluster_slot_node(sluice__cluster *cs, int slot);

/**
 * Index of the node entry for host:port, creating it (or reusing an entry no
 * slot points to) if needed; -1 when the table is full.  Thread-safe.
 */
int sluice__cluster_node_for(sluice__cluster *cs, const char *host, int port);

/** N of the WAIT N to send after a decision on node i: 0 for none. */
int sluice__cluster_wait_n(sluice__cluster *cs, int i);

/** WAIT's timeout for a decision with left_ms to go: half of it, at least 1
 * (0 would block forever). */
long long sluice__cluster_wait_ms(int64_t left_ms);

/** Copies node i's address; returns its generation. */
uint64_t sluice__cluster_node_addr(sluice__cluster *cs, int i, char *host, size_t size, int *port);

/** Points slot at node i (after MOVED) and asks for a refresh. */
void sluice__cluster_set_slot(sluice__cluster *cs, int slot, int i);

/** Asks the refresh thread for a CLUSTER SLOTS soon (rate-limited; never blocks long). */
void sluice__cluster_kick(sluice__cluster *cs);

/**
 * engine=auto: records what a connection to node i (address generation gen)
 * detected ("detected", "module_gone"): reports it with the node's address
 * (sluice__redis_engine_note) and recounts cs->lacking over the nodes the
 * slot map uses.  A note for an older address of the entry is ignored.
 */
void sluice__cluster_engine_note(sluice__cluster *cs, int i, uint64_t gen, bool module,
                                 const char *why);

/**
 * Whether a connection whose own detection says conn_module decides with
 * SLUICE.DECIDE: engine=module always; engine=auto only while every master
 * in use has the module (SPEC: "the module where every node in use has it
 * loaded, else Lua"); one lock-free load on the hot path.
 */
static inline bool sluice__cluster_use_module(sluice__cluster *cs, bool conn_module)
{
    return conn_module && (cs->engine == SLUICE__ENGINE_MODULE ||
                           atomic_load_explicit(&cs->lacking, memory_order_relaxed) == 0);
}

/**
 * Classifies an error reply.  For MOVED and ASK fills *slot and the target
 * (host may come back empty: same host as the connection the reply came on).
 */
sluice__cluster_reply sluice__cluster_classify(const redisReply *reply, int *slot, char *host,
                                               size_t size, int *port);

/** Adds host:port to cs->known[0..*n) unless present or full.  Under topo_mu
 * (or before the store is shared). */
/**
 * Installs the slot map of a CLUSTER SLOTS reply (asked: the host it came
 * from, for entries that name none).  0, or -1 if malformed: the old map stays.
 */
int sluice__cluster_apply_slots(sluice__cluster *cs, const redisReply *rep, const char *asked);

void sluice__cluster_known_add(sluice__cluster *cs, int *n, const char *host, int port);

/** One CLUSTER SLOTS from a known node, installed as the map; 0, or -1 when no
 * known node answered.  Called by the refresh thread, and once by open. */
int sluice__cluster_refresh_once(sluice__cluster *cs);

/** The refresh thread (arg: the store) until cs->stopping. */
void *sluice__cluster_refresh_thread(void *arg);

/* ---- cluster_async.c --------------------------------------------------- */

int sluice__cluster_attach(void *impl, struct event_base *base, void **conn, sluice_error *err);
void sluice__cluster_detach(void *conn);
int sluice__cluster_decide_async(void *conn, const sluice__op *op, sluice__store_cb cb, void *arg);

#endif /* SLUICE_STORE_CLUSTER_INT_H */
