/* SPDX-License-Identifier: MIT */
/*
 * redis_event.c - attaches a hiredis async context to a libevent loop, in
 * place of hiredis's stock adapter (adapters/libevent.h), to spend fewer
 * system calls per loop turn:
 *   - the read event is persistent: the stock adapter's one-shot read event
 *     costs an epoll_ctl DEL and ADD on every turn;
 *   - commands queued while connected are written once, at the end of the
 *     current loop turn (a deferred "flush" event made active, not a write
 *     event): every command of the turn goes out in one write(2), without
 *     waiting a turn for EPOLLOUT and without the epoll_ctl pair around it.
 *     Only when the socket does not take everything (or while connecting)
 *     is a real write event armed, until hiredis says it is done.
 * Same contract as the stock adapter otherwise: hiredis calls the hooks,
 * and cleanup when it frees the context.
 */
#include <event2/event.h>
#include <stdbool.h>

#include "store/redis/redis_int.h"
#include "util/alloc.h"

typedef struct rev {
    redisAsyncContext *ac;
    struct event *rd, *wr, *flush;
    bool reading, writing, flush_pending;
    bool in_flush; /* inside on_flush's redisAsyncHandleWrite */
    bool dead;     /* cleanup ran inside on_flush: free on the way out */
} rev;

static void free_rev(rev *e)
{
    if (e->rd)
        event_free(e->rd);
    if (e->wr)
        event_free(e->wr);
    if (e->flush)
        event_free(e->flush);
    sluice__free(e);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rev *e = arg;
    redisAsyncHandleRead(e->ac); /* may free e */
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rev *e = arg;
    redisAsyncHandleWrite(e->ac); /* may free e */
}

/* End of the loop turn: write what the turn queued. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rev *e = arg;
    e->flush_pending = false;
    if (e->writing)
        return; /* a write event waits for room; it writes everything then */
    e->in_flush = true;
    redisAsyncHandleWrite(e->ac);
    e->in_flush = false;
    if (e->dead)
        free_rev(e);
}

static void add_read(void *privdata)
{
    rev *e = privdata;
    if (!e->reading && event_add(e->rd, NULL) == 0)
        e->reading = true;
}

static void del_read(void *privdata)
{
    rev *e = privdata;
    if (e->reading) {
        event_del(e->rd);
        e->reading = false;
    }
}

static void add_write(void *privdata)
{
    rev *e = privdata;
    if (e->in_flush || e->writing || !(e->ac->c.flags & REDIS_CONNECTED)) {
        /* connecting, or the socket took only part: wait until writable */
        if (!e->writing && event_add(e->wr, NULL) == 0)
            e->writing = true;
        return;
    }
    if (!e->flush_pending) {
        e->flush_pending = true;
        event_active(e->flush, EV_WRITE, 1);
    }
}

static void del_write(void *privdata)
{
    rev *e = privdata;
    if (e->writing) {
        event_del(e->wr);
        e->writing = false;
    }
}

static void cleanup(void *privdata)
{
    rev *e = privdata;
    if (e->in_flush) {
        event_del(e->rd);
        event_del(e->wr);
        e->dead = true;
        return;
    }
    free_rev(e);
}

int sluice__redis_event_attach(redisAsyncContext *ac, struct event_base *base)
{
    if (ac->ev.data)
        return REDIS_ERR;
    rev *e = sluice__calloc(1, sizeof(*e));
    if (!e)
        return REDIS_ERR;
    e->ac = ac;
    e->rd = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, on_read, e);
    e->wr = event_new(base, ac->c.fd, EV_WRITE | EV_PERSIST, on_write, e);
    e->flush = event_new(base, -1, 0, on_flush, e);
    if (!e->rd || !e->wr || !e->flush) {
        free_rev(e);
        return REDIS_ERR;
    }
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = e;
    return REDIS_OK;
}
