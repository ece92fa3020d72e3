/* SPDX-License-Identifier: MIT */
/*
 * redis_async.c - the asynchronous decision path of the Redis store, for
 * event loops (sluiced's workers).  SLUICE_REDIS_ASYNC_CONNS (2) hiredis
 * async connections per loop (see the end of this file for why two),
 * attached with hiredis's libevent adapter; the decisions in flight on that
 * loop are pipelined on them (hiredis coalesces the commands of one loop
 * turn into one write per connection, and answers FIFO).
 *
 * hiredis 0.14 has no timeouts and frees its context itself after any
 * disconnect, so this file keeps:
 *   - a libevent timer per request: at the deadline the caller gets
 *     SLUICE_ETIMEOUT; the request object lives on until hiredis hands back
 *     its (late or NULL) reply, then is freed;
 *   - a connect timer, and a reconnect timer with exponential backoff
 *     (10 ms doubling to 1 s); while the connection is down a decision fails
 *     at once with SLUICE_ESTORE (the callback runs before decide_async
 *     returns), so nothing queues behind a dead server;
 *   - stall detection: a request that times out while no reply at all came
 *     back since it was sent means the server is frozen; the connection is
 *     dropped and rebuilt with backoff;
 *   - NOSCRIPT handling: SCRIPT LOAD then the same EVALSHA again, in order on
 *     the same connection, within the request's deadline.
 * Everything here runs on the loop's thread; nothing blocks.  A decision's
 * callback may start new decisions, but must not detach the connection
 * (sluice_async_free) from inside itself: detach from the loop, outside
 * callbacks.
 */
#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>

#include "store/redis/redis_int.h"
#include "store/redis/redis_lua.h"
#include "util/alloc.h"

typedef struct aconn aconn;

typedef struct areq {
    struct areq *prev, *next; /* in conn->reqs while not finished */
    aconn *conn;
    struct event *timer; /* the deadline, in this allocation's tail */
    sluice__store_cb cb;
    void *arg;
    bool finished; /* cb has run */
    bool inflight; /* hiredis holds a callback for it */
    bool retried;  /* NOSCRIPT retry done, or re-sent as Lua (module gone) */
    uint64_t replies_at_send;
    int64_t sent_ns;                          /* deny cache: before the first send */
    sluice__redis_opcopy oc;                  /* for the NOSCRIPT retry */
    _Alignas(max_align_t) unsigned char ev[]; /* event_get_struct_event_size() bytes */
} areq;

struct aconn {
    sluice__redis_alink link; /* first: ac->data points here (ac NULL while down) */
    sluice__redis *r;
    struct event_base *base;
    uint64_t gen; /* address generation of link.ac */
    struct event *retry_timer;
    /* timeout_ms as a libevent common timeout: every request has the same
     * one, so their timers sit in a FIFO queue instead of the heap */
    const struct timeval *deadline_tv;
    int backoff_ms;
    bool loading;     /* a SCRIPT LOAD after NOSCRIPT is in flight */
    bool module;      /* decide with SLUICE.DECIDE (engine=module, or auto and detected) */
    uint64_t replies; /* replies received on this connection */
    int inflight;     /* requests hiredis holds */
    areq *reqs;       /* unfinished requests */
    areq *spare;      /* freed requests kept for reuse (no malloc per decision) */
    int nspare;
    bool closing;
};

#define SPARE_MAX 256 /* requests kept in aconn.spare at most */

static void conn_connect(aconn *c);

/* ---- request lifecycle ------------------------------------------------ */

static void req_free(areq *q)
{
    aconn *c = q->conn;
    if (c->nspare < SPARE_MAX) {
        q->next = c->spare;
        c->spare = q;
        c->nspare++;
        return;
    }
    sluice__free(q);
}

/* Runs the caller's callback once; frees q if hiredis no longer holds it. */
static void req_finish(areq *q, int status, const sluice_decision *d)
{
    if (q->finished)
        return;
    q->finished = true;
    evtimer_del(q->timer);
    aconn *c = q->conn;
    if (q->prev)
        q->prev->next = q->next;
    else
        c->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
    q->cb(status, d, q->arg);
    if (!q->inflight)
        req_free(q);
}

/* ---- connection ------------------------------------------------------- */

static void schedule_reconnect(aconn *c)
{
    if (c->closing)
        return;
    int ms = sluice__redis_backoff(&c->backoff_ms);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->retry_timer, &tv);
}

/* The link went down: plan the next attempt. */
static void conn_lost(sluice__redis_alink *l)
{
    aconn *c = (aconn *)l;
    c->loading = false;
    sluice__redis_suspect(c->r);
    schedule_reconnect(c);
}

static void conn_drop(aconn *c)
{
    sluice__redis_alink_drop(&c->link);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_connect(arg);
}

/* Reply to AUTH, SELECT, ROLE: any refusal drops the connection. */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    aconn *c = ac->data;
    redisReply *rep = reply;
    if (!c || !rep)
        return;
    c->replies++;
    bool bad = rep->type == REDIS_REPLY_ERROR;
    if (privdata && !bad) { /* ROLE */
        bad = !sluice__redis_role_is_master(rep);
    }
    if (bad && c->link.ac == ac)
        conn_drop(c);
}

static void on_load_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    aconn *c = ac->data;
    if (!c)
        return;
    if (reply)
        c->replies++;
    if (c->link.ac == ac)
        c->loading = false;
}

/* Reply to COMMAND INFO sluice.decide (engine=auto): this connection uses
 * the module from now on if the node has it. */
static void on_detect_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    aconn *c = ac->data;
    if (!c || !reply)
        return;
    c->replies++;
    if (c->link.ac != ac)
        return;
    c->module = sluice__redis_detect_reply(reply);
    char host[SLUICE_REDIS_HOST_MAX];
    int port;
    sluice__redis_addr(c->r, host, sizeof(host), &port);
    sluice__redis_engine_note(host, port, c->module, "detected");
}

static void conn_connect(aconn *c)
{
    if (c->link.ac || c->closing)
        return;
    char host[SLUICE_REDIS_HOST_MAX];
    int port;
    uint64_t gen = sluice__redis_addr(c->r, host, sizeof(host), &port);
    c->gen = gen; /* this address has been tried, connected or not */
    sluice__redis *r = c->r;
    if (!host[0] || sluice__redis_alink_open(&c->link, c->base, host, port, r->timeout_ms) != 0) {
        schedule_reconnect(c);
        return;
    }
    /* queued before the connection completes; hiredis sends them first */
    redisAsyncContext *ac = c->link.ac;
    sluice__redis_async_auth(ac, on_setup_reply, NULL, r->user, r->password);
    if (r->db)
        redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", r->db);
    if (r->sentinel)
        redisAsyncCommand(ac, on_setup_reply, c, "ROLE");
    c->loading = true;
    sluice__redis_async_load(ac, on_load_reply, NULL);
    /* engine=auto: Lua until this node says it has the module */
    c->module = r->engine == SLUICE__ENGINE_MODULE;
    if (r->engine == SLUICE__ENGINE_AUTO)
        sluice__redis_async_detect(ac, on_detect_reply, NULL);
    else
        sluice__redis_engine_note(host, port, c->module, "configured");
}

/* ---- decisions -------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

static int req_send(aconn *c, areq *q, bool load_first)
{
    char cmd[SLUICE_REDIS_CMD_MAX];
    long len = sluice__redis_format_cmd(c->module, c->r->sha, &q->oc.op, cmd, sizeof(cmd));
    if (len < 0)
        return (int)len;
    if (load_first) {
        c->loading = true;
        sluice__redis_async_load(c->link.ac, on_load_reply, NULL);
    }
    int rc = redisAsyncFormattedCommand(c->link.ac, on_reply, q, cmd, (size_t)len);
    if (rc != REDIS_OK)
        return SLUICE_ESTORE;
    q->inflight = true;
    c->inflight++;
    q->replies_at_send = c->replies;
    return 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    areq *q = privdata;
    aconn *c = q->conn;
    redisReply *rep = reply;
    q->inflight = false;
    c->inflight--;
    if (rep)
        c->replies++;
    if (q->finished) {
        req_free(q);
        return;
    }
    sluice_error err; /* written only on failure; only its code is read */
    err.code = 0;
    if (!rep) {
        req_finish(q, SLUICE_ESTORE, NULL);
        return;
    }
    if (sluice__redis_is_nomodule(rep)) {
        /* the module is not (or no longer) on this node: auto goes on with
         * Lua on this connection; engine=module is a store error */
        if (c->r->engine == SLUICE__ENGINE_AUTO && !q->retried && c->link.ac == ac) {
            q->retried = true;
            if (c->module) {
                c->module = false;
                char host[SLUICE_REDIS_HOST_MAX];
                int port;
                sluice__redis_addr(c->r, host, sizeof(host), &port);
                sluice__redis_engine_note(host, port, false, "module_gone");
            }
            if (req_send(c, q, false) == 0)
                return;
        }
        req_finish(q, SLUICE_ESTORE, NULL);
        return;
    }
    if (sluice__redis_is_noscript(rep) && !q->retried && c->link.ac == ac) {
        q->retried = true;
        if (req_send(c, q, true) == 0)
            return;
        req_finish(q, SLUICE_ESTORE, NULL);
        return;
    }
    if (sluice__redis_is_moved_master(rep)) {
        req_finish(q, SLUICE_ESTORE, NULL);
        if (c->link.ac == ac)
            conn_drop(c);
        return;
    }
    sluice_decision d;
    int rc = sluice__redis_parse(rep, &q->oc.op, &d, &err);
    if (rc == 0) {
        c->backoff_ms = 0;
        sluice__deny_cache_record(c->r->dc, &q->oc.op, q->sent_ns, sluice__deny_cache_clock_ns(),
                                  &d);
        req_finish(q, 0, &d);
    } else {
        req_finish(q, rc, NULL);
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    areq *q = arg;
    aconn *c = q->conn;
    bool stalled = q->inflight && c->replies == q->replies_at_send;
    req_finish(q, SLUICE_ETIMEOUT, NULL); /* may free q */
    if (stalled && c->link.ac)
        conn_drop(c); /* nothing came back at all: the server is frozen */
}

/* Sends op on c (the deny cache already asked); the callback as for
 * sluice__redis_decide_async. */
static int conn_decide(aconn *c, const sluice__op *op, int64_t sent_ns, sluice__store_cb cb,
                       void *arg)
{
    if (c->gen != atomic_load(&c->r->gen)) {
        /* Sentinel moved the master: go there now, whatever the backoff */
        conn_drop(c);
        evtimer_del(c->retry_timer);
        c->backoff_ms = 0;
        conn_connect(c);
    }
    if (!c->link.ac || c->inflight >= SLUICE_REDIS_ASYNC_MAX_INFLIGHT) {
        cb(SLUICE_ESTORE, NULL, arg);
        return 0;
    }
    /* one allocation: the request and its timer (libevent's size, ABI-safe),
     * reused from the spares when there is one */
    areq *q = c->spare;
    if (q) {
        c->spare = q->next;
        c->nspare--;
    } else if (!(q = sluice__malloc(sizeof(*q) + event_get_struct_event_size()))) {
        return SLUICE_ENOMEM;
    }
    memset(q, 0, offsetof(areq, oc)); /* oc is written whole by the copy */
    q->timer = (struct event *)q->ev;
    evtimer_assign(q->timer, c->base, on_deadline, q);
    q->conn = c;
    q->cb = cb;
    q->arg = arg;
    q->sent_ns = sent_ns;
    sluice__redis_op_copy(&q->oc, op);
    int rc = req_send(c, q, false);
    if (rc) {
        req_free(q);
        return rc;
    }
    q->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = q;
    c->reqs = q;
    evtimer_add(q->timer, c->deadline_tv);
    return 0;
}

static void conn_detach(aconn *c);

static int conn_attach(sluice__redis *impl, struct event_base *base, aconn **conn,
                       sluice_error *err)
{
    *conn = NULL;
    aconn *c = sluice__calloc(1, sizeof(*c));
    if (!c)
        return sluice__redis_error(err, SLUICE_ENOMEM, "out of memory", NULL);
    c->r = impl;
    c->base = base;
    c->retry_timer = evtimer_new(base, on_retry_timer, c);
    struct timeval tv = {c->r->timeout_ms / 1000, (c->r->timeout_ms % 1000) * 1000};
    c->deadline_tv = event_base_init_common_timeout(base, &tv);
    if (sluice__redis_alink_init(&c->link, base, conn_lost) != 0 || !c->retry_timer ||
        !c->deadline_tv) {
        conn_detach(c);
        return sluice__redis_error(err, SLUICE_ENOMEM, "out of memory", NULL);
    }
    conn_connect(c);
    *conn = c;
    return 0;
}

static void conn_detach(aconn *c)
{
    if (!c)
        return;
    c->closing = true;
    while (c->reqs)
        req_finish(c->reqs, SLUICE_ECANCELED, NULL);
    /* remaining callbacks see finished requests and free them */
    sluice__redis_alink_close(&c->link);
    if (c->retry_timer)
        event_free(c->retry_timer);
    while (c->spare) {
        areq *q = c->spare;
        c->spare = q->next;
        sluice__free(q);
    }
    sluice__free(c);
}

/* ---- the loop's connections ------------------------------------------- */

/*
 * A loop decides over SLUICE_REDIS_ASYNC_CONNS connections.  With one, the
 * loop and Redis take turns: the loop writes a batch, sleeps while Redis
 * works through it, then answers it while Redis sleeps, so each batch pays
 * both sides' work plus two wake-ups.  With two, one connection's batch can
 * be at Redis while the loop answers the other's: `sluice bench
 * --concurrency 64` on engine=module, one connection against two in four
 * paired rounds, 128k-168k against 160k-205k decisions/s (+2% to +48%).
 * A decision goes to the connected connection with the fewer requests in
 * flight, so the one whose replies are being answered takes the new ones
 * while the other is at Redis.
 */
typedef struct apool {
    aconn *c[SLUICE_REDIS_ASYNC_CONNS];
} apool;

int sluice__redis_attach(void *impl, struct event_base *base, void **conn, sluice_error *err)
{
    *conn = NULL;
    apool *p = sluice__calloc(1, sizeof(*p));
    if (!p)
        return sluice__redis_error(err, SLUICE_ENOMEM, "out of memory", NULL);
    for (int i = 0; i < SLUICE_REDIS_ASYNC_CONNS; i++) {
        int rc = conn_attach(impl, base, &p->c[i], err);
        if (rc) {
            sluice__redis_detach(p);
            return rc;
        }
    }
    *conn = p;
    return 0;
}

void sluice__redis_detach(void *conn)
{
    apool *p = conn;
    if (!p)
        return;
    for (int i = 0; i < SLUICE_REDIS_ASYNC_CONNS; i++)
        conn_detach(p->c[i]);
    sluice__free(p);
}

int sluice__redis_decide_async(void *conn, const sluice__op *op, sluice__store_cb cb, void *arg)
{
    apool *p = conn;
    if (!p || !op || !cb || op->nlimits < 1 || op->nlimits > SLUICE_MAX_LIMITS ||
        op->key_len > SLUICE_STORE_KEY_MAX)
        return SLUICE_EINVAL;
    aconn *c0 = p->c[0];
    int64_t sent_ns = sluice__deny_cache_clock_ns();
    sluice_decision cached;
    if (sluice__deny_cache_lookup(c0->r->dc, op, sent_ns, &cached)) {
        cb(0, &cached, arg); /* a denial still certain: no round trip */
        return 0;
    }
    /* the connected one with the fewest in flight; the first when none is
     * (it fails the decision at once, and reconnects).  One whose address
     * Sentinel changed reconnects in conn_decide when it is picked. */
    aconn *best = NULL;
    for (int i = 0; i < SLUICE_REDIS_ASYNC_CONNS; i++) {
        aconn *c = p->c[i];
        if (c->link.ac && (!best || c->inflight < best->inflight))
            best = c;
    }
    return conn_decide(best ? best : c0, op, sent_ns, cb, arg);
}
