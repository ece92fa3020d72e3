/* SPDX-License-Identifier: MIT */
/*
 * cluster_async.c - the asynchronous decision path of the redis+cluster://
 * store, for event loops (sluiced's workers, sluice bench --concurrency).
 *
 * Each loop keeps one hiredis async connection per master it has talked to,
 * on hiredis's libevent adapter, opened on first use; every decision of that
 * loop for that master's slots is pipelined on it.  Routing uses the store's
 * shared slot map (cluster.c), which the refresh thread keeps current and
 * which MOVED patches at once.  Per request:
 *   - one deadline timer for the whole decision, redirects and retries
 *     included: at the deadline the caller gets SLUICE_ETIMEOUT, and the
 *     request object lives on until hiredis hands back its late reply;
 *   - MOVED: the map is updated and the decision re-sent to the new master;
 *     ASK: re-sent once to the target behind ASKING; TRYAGAIN, CLUSTERDOWN,
 *     LOADING: re-sent after a 5 ms timer while the deadline allows;
 *   - NOSCRIPT: SCRIPT LOAD and the same EVALSHA again, in order;
 *   - with ?wait=N, one WAIT N per connection and loop turn follows the
 *     EVALSHAs sent in that turn (WAIT blocks its connection, so one per
 *     decision would serialise the pipeline; one WAIT covers every earlier
 *     write of its connection); an admitting decision's callback runs when
 *     that WAIT answers: with the decision when enough replicas have it,
 *     else (or at the deadline) with SLUICE_ESTORE, as it may be lost in a
 *     failover.
 * A master that cannot be reached is not retried before its backoff (10 ms
 * doubling to 1 s) has passed, and meanwhile decisions routed to it fail at
 * once with SLUICE_ESTORE (the callback runs before decide_async returns):
 * nothing queues behind a dead master, and other masters' decisions are not
 * affected.  A request that times out while no reply at all came back on its
 * connection since it was sent means a frozen server: the connection is
 * dropped.  Everything here runs on the loop's thread; nothing blocks.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>

#include "store/redis/cluster_int.h"
#include "store/redis/redis_lua.h"
#include "util/alloc.h"

typedef struct cloop cloop;

/* This loop's connection to one entry of the store's nodes[]. */
typedef struct cnconn {
    sluice__redis_alink link; /* first: ac->data points here (ac NULL while down) */
    cloop *l;
    int index;    /* into cs->nodes[] */
    uint64_t gen; /* node generation link.ac was opened for */
    int backoff_ms;
    int64_t retry_at_us; /* monotonic: no reconnect before this */
    uint64_t replies;    /* replies received on this connection */
    int inflight;        /* hiredis callbacks pending */
    bool module;         /* decide with SLUICE.DECIDE (engine=module, or auto and detected) */
    /* ?wait=N: requests sent since the last WAIT, each holding a hold */
    struct creq **pend;
    int npend, cappend;
    int pend_n;            /* largest N among them */
    struct event *wait_ev; /* zero-delay timer: sends this turn's WAIT */
} cnconn;

typedef struct creq {
    struct creq *prev, *next; /* in l->reqs while not finished */
    cloop *l;
    struct event *timer; /* the decision's deadline */
    struct event *pause; /* TRYAGAIN pause; created on first use */
    sluice__store_cb cb;
    void *arg;
    int64_t deadline_us;
    bool finished; /* cb has run */
    int holds;     /* hiredis callbacks that point at this request */
    int slot;
    int hops;    /* MOVED/ASK followed */
    int loads;   /* NOSCRIPT reloads */
    int ask;     /* node of the next send behind ASKING, or -1 */
    bool asking; /* the last send went behind ASKING */
    int waiting; /* N of the WAIT covering the last EVALSHA; 0: none */
    bool have;   /* decision in d; waiting for WAIT */
    const redisAsyncContext *wait_ac;
    cnconn *sent_on;
    uint64_t replies_at_send;
    int64_t sent_ns; /* deny cache: before the first send */
    sluice_decision d;
    sluice__redis_opcopy oc; /* for re-sends */
} creq;

struct cloop {
    sluice__cluster *cs;
    struct event_base *base;
    creq *reqs;
    bool closing;
    cnconn nodes[SLUICE_CLUSTER_NODES_MAX];
};

static void attempt(creq *q);

/* ---- request lifecycle ------------------------------------------------ */

static void req_free(creq *q)
{
    if (q->timer)
        event_free(q->timer);
    if (q->pause)
        event_free(q->pause);
    sluice__free(q);
}

/* Runs the callback once; frees q unless hiredis still holds it. */
static void req_finish(creq *q, int status, const sluice_decision *d)
{
    if (q->finished)
        return;
    q->finished = true;
    evtimer_del(q->timer);
    if (q->pause)
        evtimer_del(q->pause);
    cloop *l = q->l;
    if (q->prev)
        q->prev->next = q->next;
    else
        l->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
    q->cb(status, status == 0 ? d : NULL, q->arg);
    if (q->holds == 0)
        req_free(q);
}

/* Accounts for one hiredis callback of q; true when q is finished (and maybe freed). */
static bool req_release(creq *q, cnconn *n, const void *reply)
{
    q->holds--;
    if (n) {
        n->inflight--;
        if (reply)
            n->replies++;
    }
    if (!q->finished)
        return false;
    if (q->holds == 0)
        req_free(q);
    return true;
}

/* The requests one WAIT covers. */
typedef struct wbatch {
    int n;
    creq *reqs[];
} wbatch;

/* Drops the holds of requests whose WAIT will not be sent. */
static void pend_clear(cnconn *n)
{
    for (int i = 0; i < n->npend; i++) {
        creq *q = n->pend[i];
        q->holds--;
        q->waiting = 0;
        if (q->finished && q->holds == 0)
            req_free(q);
    }
    n->npend = 0;
    n->pend_n = 0;
}

/* ---- connections ------------------------------------------------------- */

/* The link went down: no reconnect before the backoff, WAITs not sent. */
static void conn_lost(sluice__redis_alink *link)
{
    cnconn *n = (cnconn *)link;
    pend_clear(n);
    n->retry_at_us =
        sluice__redis_mono_us() + (int64_t)sluice__redis_backoff(&n->backoff_ms) * 1000;
    sluice__cluster_kick(n->l->cs);
}

static void conn_drop(cnconn *n)
{
    sluice__redis_alink_drop(&n->link);
}

/* Replies to AUTH, SCRIPT LOAD, ASKING: counted; a refused AUTH drops the link. */
static void on_aux(redisAsyncContext *ac, void *reply, void *privdata)
{
    cnconn *n = ac->data;
    redisReply *rep = reply;
    if (!n || !rep)
        return;
    n->replies++;
    if (privdata && rep->type == REDIS_REPLY_ERROR && n->link.ac == ac)
        conn_drop(n);
}

/* Reply to COMMAND INFO sluice.decide (engine=auto) on a new connection. */
static void on_detect(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    cnconn *n = ac->data;
    if (!n || !reply)
        return;
    n->replies++;
    if (n->link.ac != ac)
        return;
    n->module = sluice__redis_detect_reply(reply);
    sluice__cluster_engine_note(n->l->cs, n->index, n->gen, n->module, "detected");
}

static int conn_connect(cnconn *n)
{
    sluice__cluster *cs = n->l->cs;
    char host[SLUICE_REDIS_HOST_MAX];
    int port;
    uint64_t gen = sluice__cluster_node_addr(cs, n->index, host, sizeof(host), &port);
    if (sluice__redis_alink_init(&n->link, n->l->base, conn_lost) != 0)
        return SLUICE_ENOMEM;
    if (sluice__redis_alink_open(&n->link, n->l->base, host, port, cs->timeout_ms) != 0) {
        conn_lost(&n->link);
        return SLUICE_ESTORE;
    }
    n->gen = gen;
    /* queued before the connection completes; hiredis sends them first */
    redisAsyncContext *ac = n->link.ac;
    sluice__redis_async_auth(ac, on_aux, n, cs->user, cs->password);
    sluice__redis_async_load(ac, on_aux, NULL);
    /* engine=auto: Lua until this node says it has the module */
    n->module = cs->engine == SLUICE__ENGINE_MODULE;
    if (cs->engine == SLUICE__ENGINE_AUTO)
        sluice__redis_async_detect(ac, on_detect, NULL);
    else
        sluice__redis_engine_note(host, port, n->module, "configured");
    return 0;
}

/* ---- decisions -------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);
static void on_wait(redisAsyncContext *ac, void *reply, void *privdata);

/* End of a loop turn: one WAIT for every EVALSHA sent on n since the last one. */
static void on_wait_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cnconn *n = arg;
    if (n->npend == 0)
        return;
    wbatch *b = n->link.ac ? sluice__malloc(sizeof(*b) + sizeof(creq *) * (size_t)n->npend) : NULL;
    if (!b) {
        pend_clear(n); /* their decisions complete without WAIT */
        return;
    }
    int64_t left_us = INT64_MAX, now = sluice__redis_mono_us();
    b->n = n->npend;
    for (int i = 0; i < n->npend; i++) {
        b->reqs[i] = n->pend[i];
        if (n->pend[i]->deadline_us - now < left_us)
            left_us = n->pend[i]->deadline_us - now;
    }
    if (redisAsyncCommand(n->link.ac, on_wait, b, "WAIT %d %lld", n->pend_n,
                          sluice__cluster_wait_ms(left_us / 1000)) != REDIS_OK) {
        sluice__free(b);
        pend_clear(n);
        return;
    }
    n->inflight++;
    n->npend = 0; /* the holds move to the batch */
    n->pend_n = 0;
}

/* Puts q under the WAIT of this turn on n; false when it cannot (no WAIT then). */
static bool pend_add(cnconn *n, creq *q, int wait_n)
{
    if (!n->wait_ev && !(n->wait_ev = evtimer_new(n->l->base, on_wait_turn, n)))
        return false;
    if (n->npend == n->cappend) {
        int cap = n->cappend ? n->cappend * 2 : 64;
        creq **p = sluice__realloc(n->pend, sizeof(*p) * (size_t)cap);
        if (!p)
            return false;
        n->pend = p;
        n->cappend = cap;
    }
    n->pend[n->npend++] = q;
    q->holds++;
    if (wait_n > n->pend_n)
        n->pend_n = wait_n;
    if (!evtimer_pending(n->wait_ev, NULL)) {
        struct timeval zero = {0, 0};
        evtimer_add(n->wait_ev, &zero);
    }
    return true;
}

/* Pipelines [SCRIPT LOAD] [ASKING] EVALSHA [WAIT] for q on n. */
static int req_send(cnconn *n, creq *q, bool load)
{
    sluice__cluster *cs = n->l->cs;
    char cmd[SLUICE_REDIS_CMD_MAX];
    long len = sluice__redis_format_cmd(sluice__cluster_use_module(cs, n->module), cs->sha,
                                        &q->oc.op, cmd, sizeof(cmd));
    if (len < 0)
        return (int)len;
    redisAsyncContext *ac = n->link.ac;
    if (load)
        sluice__redis_async_load(ac, on_aux, NULL);
    if (q->asking)
        redisAsyncCommand(ac, on_aux, NULL, "ASKING");
    int rc = redisAsyncFormattedCommand(ac, on_reply, q, cmd, (size_t)len);
    if (rc != REDIS_OK)
        return SLUICE_ESTORE;
    q->holds++;
    n->inflight++;
    q->waiting = sluice__cluster_wait_n(cs, n->index);
    if (q->waiting > 0 && !pend_add(n, q, q->waiting))
        q->waiting = 0;
    q->sent_on = n;
    q->replies_at_send = n->replies;
    return 0;
}

/* Sends q to the master of its slot (or its ASK target); finishes it on failure. */
static void attempt(creq *q)
{
    cloop *l = q->l;
    sluice__cluster *cs = l->cs;
    int i = q->ask >= 0 ? q->ask : sluice__cluster_slot_node(cs, q->slot);
    q->asking = q->ask >= 0;
    q->ask = -1;
    if (i == SLUICE_CLUSTER_NO_NODE || i < 0 || i >= SLUICE_CLUSTER_NODES_MAX) {
        sluice__cluster_kick(cs);
        req_finish(q, SLUICE_ESTORE, NULL);
        return;
    }
    cnconn *n = &l->nodes[i];
    if (n->link.ac && n->gen != atomic_load(&cs->nodes[i].gen)) {
        conn_drop(n); /* the entry now names another address */
        n->retry_at_us = 0;
        n->backoff_ms = 0;
    }
    if (!n->link.ac) {
        if (sluice__redis_mono_us() < n->retry_at_us || conn_connect(n) != 0) {
            sluice__cluster_kick(cs);
            req_finish(q, SLUICE_ESTORE, NULL);
            return;
        }
    }
    if (n->inflight >= SLUICE_REDIS_ASYNC_MAX_INFLIGHT) {
        req_finish(q, SLUICE_ESTORE, NULL);
        return;
    }
    int rc = req_send(n, q, false);
    if (rc)
        req_finish(q, rc == SLUICE_EINVAL ? SLUICE_EINVAL : SLUICE_ESTORE, NULL);
}

static void on_pause(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    attempt(arg);
}

/* Follows a MOVED or ASK reply received on n. */
static void redirect(creq *q, cnconn *n, sluice__cluster_reply kind, int slot, char *host, int port)
{
    sluice__cluster *cs = q->l->cs;
    if (++q->hops > SLUICE_CLUSTER_REDIRECTS_MAX) {
        req_finish(q, SLUICE_ESTORE, NULL);
        return;
    }
    if (!host[0]) {
        int p;
        sluice__cluster_node_addr(cs, n->index, host, SLUICE_REDIS_HOST_MAX, &p);
    }
    int j = sluice__cluster_node_for(cs, host, port);
    if (j < 0) {
        req_finish(q, SLUICE_ESTORE, NULL);
        return;
    }
    if (kind == SLUICE_CREPLY_MOVED)
        sluice__cluster_set_slot(cs, slot, j);
    else
        q->ask = j;
    attempt(q);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    creq *q = privdata;
    cnconn *n = ac->data;
    redisReply *rep = reply;
    if (req_release(q, n, reply))
        return;
    if (!rep || !n) {
        sluice__cluster_kick(q->l->cs);
        req_finish(q, SLUICE_ESTORE, NULL);
        return;
    }
    int slot = 0, port = 0;
    char host[SLUICE_REDIS_HOST_MAX];
    if (sluice__redis_is_nomodule(rep)) {
        /* the module is not (or no longer) on this node: auto goes on with
         * Lua on this connection; engine=module is a store error */
        if (q->l->cs->engine == SLUICE__ENGINE_AUTO && q->loads++ < 2 && n->link.ac == ac) {
            if (n->module) {
                n->module = false;
                sluice__cluster_engine_note(q->l->cs, n->index, n->gen, false, "module_gone");
            }
            if (req_send(n, q, false) == 0)
                return;
        }
        req_finish(q, SLUICE_ESTORE, NULL);
        return;
    }
    sluice__cluster_reply kind = sluice__cluster_classify(rep, &slot, host, sizeof(host), &port);
    switch (kind) {
    case SLUICE_CREPLY_DONE: {
        sluice_error err = {0};
        int rc = sluice__redis_parse(rep, &q->oc.op, &q->d, &err);
        if (rc == 0)
            sluice__deny_cache_record(q->l->cs->dc, &q->oc.op, q->sent_ns,
                                      sluice__deny_cache_clock_ns(), &q->d);
        if (rc) {
            req_finish(q, rc, NULL);
        } else if (q->waiting > 0 && q->oc.op.cost > 0 && q->d.allowed) {
            q->have = true;
            q->wait_ac = ac; /* its WAIT is the next WAIT reply on this connection */
        } else {
            n->backoff_ms = 0;
            req_finish(q, 0, &q->d);
        }
        return;
    }
    case SLUICE_CREPLY_NOSCRIPT:
        if (q->loads++ < 2 && n->link.ac == ac && req_send(n, q, true) == 0)
            return;
        req_finish(q, SLUICE_ESTORE, NULL);
        return;
    case SLUICE_CREPLY_MOVED:
    case SLUICE_CREPLY_ASK:
        redirect(q, n, kind, slot, host, port);
        return;
    case SLUICE_CREPLY_RETRY:
        q->hops = 0; /* ASK and TRYAGAIN alternate in a migration; the deadline bounds it */
        break;
    }
    sluice__cluster_kick(q->l->cs);
    int64_t left_us = q->deadline_us - sluice__redis_mono_us();
    if (left_us <= (int64_t)SLUICE_CLUSTER_TRYAGAIN_MS * 1000 ||
        (!q->pause && !(q->pause = evtimer_new(q->l->base, on_pause, q)))) {
        req_finish(q, SLUICE_ESTORE, NULL);
        return;
    }
    struct timeval tv = {0, SLUICE_CLUSTER_TRYAGAIN_MS * 1000};
    evtimer_add(q->pause, &tv);
}

static void on_wait(redisAsyncContext *ac, void *reply, void *privdata)
{
    wbatch *b = privdata;
    cnconn *n = ac->data;
    if (n) {
        n->inflight--;
        if (reply)
            n->replies++;
    }
    for (int i = 0; i < b->n; i++) {
        creq *q = b->reqs[i];
        q->holds--;
        if (q->finished) {
            if (q->holds == 0)
                req_free(q);
        } else if (q->have && q->wait_ac == ac) {
            /* this WAIT followed its EVALSHA on the connection that answered it */
            const redisReply *r = reply;
            if (r && r->type == REDIS_REPLY_INTEGER && r->integer >= q->waiting) {
                if (n)
                    n->backoff_ms = 0;
                req_finish(q, 0, &q->d);
            } else {
                req_finish(q, SLUICE_ESTORE, NULL); /* not replicated in time */
            }
        }
    }
    sluice__free(b);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    creq *q = arg;
    cnconn *n = q->sent_on;
    if (n && n->link.ac && n->link.connected && q->holds > 0) {
        /* When the loop ran late, the reply may sit unread in the socket while
         * its timer fires first: read before calling it a timeout.  The extra
         * hold keeps q alive through the callbacks this may run. */
        q->holds++;
        redisAsyncHandleRead(n->link.ac);
        q->holds--;
        if (q->finished) {
            if (q->holds == 0)
                req_free(q);
            return;
        }
    }
    bool stalled = n && n->link.ac && q->holds > 0 && n->replies == q->replies_at_send;
    req_finish(q, SLUICE_ETIMEOUT, NULL); /* may free q; with q->have: not replicated in time */
    if (stalled && n->link.ac)
        conn_drop(n); /* nothing came back at all: the server is frozen */
}

int sluice__cluster_decide_async(void *conn, const sluice__op *op, sluice__store_cb cb, void *arg)
{
    cloop *l = conn;
    if (!l || !op || !cb || op->nlimits < 1 || op->nlimits > SLUICE_MAX_LIMITS ||
        op->key_len > SLUICE_STORE_KEY_MAX || l->closing)
        return SLUICE_EINVAL;
    int64_t sent_ns = sluice__deny_cache_clock_ns();
    sluice_decision cached;
    if (sluice__deny_cache_lookup(l->cs->dc, op, sent_ns, &cached)) {
        cb(0, &cached, arg); /* a denial still certain: no round trip */
        return 0;
    }
    creq *q = sluice__calloc(1, sizeof(*q));
    if (!q)
        return SLUICE_ENOMEM;
    q->timer = evtimer_new(l->base, on_deadline, q);
    if (!q->timer) {
        sluice__free(q);
        return SLUICE_ENOMEM;
    }
    q->l = l;
    q->cb = cb;
    q->arg = arg;
    q->ask = -1;
    q->sent_ns = sent_ns;
    sluice__redis_op_copy(&q->oc, op);
    q->slot = sluice__cluster_op_slot(&q->oc.op);
    int ms = l->cs->timeout_ms;
    q->deadline_us = sluice__redis_mono_us() + (int64_t)ms * 1000;
    q->next = l->reqs;
    if (l->reqs)
        l->reqs->prev = q;
    l->reqs = q;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(q->timer, &tv);
    attempt(q); /* may run cb and free q before returning */
    return 0;
}

int sluice__cluster_attach(void *impl, struct event_base *base, void **conn, sluice_error *err)
{
    *conn = NULL;
    if (!impl || !base)
        return sluice__redis_error(err, SLUICE_EINVAL, "bad arguments", NULL);
    cloop *l = sluice__calloc(1, sizeof(*l));
    if (!l)
        return sluice__redis_error(err, SLUICE_ENOMEM, "out of memory", NULL);
    l->cs = impl;
    l->base = base;
    for (int i = 0; i < SLUICE_CLUSTER_NODES_MAX; i++) {
        l->nodes[i].l = l;
        l->nodes[i].index = i;
    }
    *conn = l;
    return 0;
}

void sluice__cluster_detach(void *conn)
{
    cloop *l = conn;
    if (!l)
        return;
    l->closing = true;
    while (l->reqs)
        req_finish(l->reqs, SLUICE_ECANCELED, NULL);
    for (int i = 0; i < SLUICE_CLUSTER_NODES_MAX; i++) {
        cnconn *n = &l->nodes[i];
        /* remaining callbacks see finished requests and free them */
        sluice__redis_alink_close(&n->link);
        pend_clear(n);
        if (n->wait_ev)
            event_free(n->wait_ev);
        sluice__free(n->pend);
    }
    sluice__free(l);
}
