/* SPDX-License-Identifier: MIT */
/*
 * sentinel.c - finds the master of a redis+sentinel:// store and follows
 * failovers.  One background thread per store:
 *   - asks the listed sentinels in turn, SENTINEL get-master-addr-by-name,
 *     and moves the first that answers to the front of the list;
 *   - stays subscribed to +switch-master on a sentinel and applies a new
 *     address the moment a failover completes;
 *   - re-asks when the store reports a suspicious error (connection refused,
 *     READONLY, a ROLE that is not master: sluice__sentinel_kick) and every
 *     few seconds anyway.
 * The address lives in the store (sluice__redis_set_addr); connections
 * compare its generation and reconnect when it changes.  The thread does all
 * the blocking I/O, so no decision ever waits for a sentinel.  Sentinels are
 * contacted without AUTH (the URL's credentials are the master's).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/redis/redis_int.h"
#include "util/alloc.h"

#define RESOLVE_EVERY_MS 5000
#define RESOLVE_MIN_GAP_MS 100
#define SENTINEL_IO_MS 300

struct sluice__sentinel {
    sluice__redis *r;
    char *master;
    int n;
    char *hosts[SLUICE_URL_MAX_HOSTS];
    int ports[SLUICE_URL_MAX_HOSTS];
    int io_ms;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu; /* guards stop, kick */
    pthread_cond_t cv;
    bool stop, kick;
};

static redisContext *sentinel_connect(sluice__sentinel *s, int i)
{
    redisContext *c =
        redisConnectWithTimeout(s->hosts[i], s->ports[i], sluice__redis_tv_ms(s->io_ms));
    if (c && !c->err && redisSetTimeout(c, sluice__redis_tv_ms(s->io_ms)) == REDIS_OK &&
        sluice__redis_reader_bound(c->reader) == 0)
        return c;
    if (c)
        redisFree(c);
    return NULL;
}

/* ---- replies of a sentinel (pure: the fuzz target drives them) ---------- */

int sluice__sentinel_parse_addr(const redisReply *rep, char *host, size_t size, int *port)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return -1;
    char *end;
    long p = strtol(rep->element[1]->str, &end, 10);
    if (*end || end == rep->element[1]->str || p <= 0 || p >= 65536)
        return -1;
    /* a host with a NUL inside would name another host than the one sent */
    const redisReply *h = rep->element[0];
    if (h->len == 0 || h->len >= size || memchr(h->str, '\0', h->len))
        return -1;
    memcpy(host, h->str, h->len + 1);
    *port = (int)p;
    return 0;
}

int sluice__sentinel_parse_switch(const redisReply *m, const char *master, char *host, size_t size,
                                  int *port)
{
    /* ["message", "+switch-master", "<name> <oldip> <oldport> <newip> <newport>"] */
    if (!m || m->type != REDIS_REPLY_ARRAY || m->elements != 3 ||
        m->element[2]->type != REDIS_REPLY_STRING)
        return -1;
    char name[256], oldip[SLUICE_REDIS_HOST_MAX], newip[SLUICE_REDIS_HOST_MAX];
    int oldport, newport;
    _Static_assert(SLUICE_REDIS_HOST_MAX >= 256, "%255s below needs 256 bytes");
    if (sscanf(m->element[2]->str, "%255s %255s %d %255s %d", name, oldip, &oldport, newip,
               &newport) != 5)
        return -1;
    if (strcmp(name, master) != 0 || newport <= 0 || newport >= 65536 || strlen(newip) >= size)
        return -1;
    memcpy(host, newip, strlen(newip) + 1);
    *port = newport;
    return 0;
}

/* Asks the sentinels for the master; 0 when one answered with an address. */
static int resolve(sluice__sentinel *s)
{
    for (int i = 0; i < s->n; i++) {
        redisContext *c = sentinel_connect(s, i);
        if (!c)
            continue;
        redisReply *rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", s->master);
        char host[SLUICE_REDIS_HOST_MAX];
        int port;
        int ok = sluice__sentinel_parse_addr(rep, host, sizeof(host), &port) == 0;
        if (ok) {
            sluice__redis_set_addr(s->r, host, port);
            if (i > 0) { /* a sentinel that answers goes first next time */
                char *h = s->hosts[i];
                int p = s->ports[i];
                s->hosts[i] = s->hosts[0];
                s->ports[i] = s->ports[0];
                s->hosts[0] = h;
                s->ports[0] = p;
            }
        }
        if (rep)
            freeReplyObject(rep);
        redisFree(c);
        if (ok)
            return 0;
    }
    return -1;
}

/* Handles one pub/sub message of the +switch-master channel. */
static void on_message(sluice__sentinel *s, redisReply *m)
{
    char host[SLUICE_REDIS_HOST_MAX];
    int port;
    if (sluice__sentinel_parse_switch(m, s->master, host, sizeof(host), &port) == 0)
        sluice__redis_set_addr(s->r, host, port);
}

/* Waits up to ms for stop or kick; returns true when stopping. */
static bool wait_flags(sluice__sentinel *s, int ms, bool *kick)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->mu);
    if (!s->stop && !s->kick && ms > 0)
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    bool stop = s->stop;
    *kick = s->kick;
    s->kick = false;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void *sentinel_main(void *arg)
{
    sluice__sentinel *s = arg;
    redisContext *sub = NULL;
    int64_t last_resolve_us = sluice__redis_mono_us();
    for (;;) {
        bool kick = false;
        if (!sub) {
            sub = sentinel_connect(s, 0);
            if (sub) {
                redisReply *rep = redisCommand(sub, "SUBSCRIBE +switch-master");
                if (!rep) {
                    redisFree(sub);
                    sub = NULL;
                } else {
                    freeReplyObject(rep);
                }
            }
        }
        if (sub) {
            struct pollfd pfd = {.fd = sub->fd, .events = POLLIN};
            int pr = poll(&pfd, 1, 50);
            if (pr > 0) {
                void *m = NULL;
                if (redisBufferRead(sub) != REDIS_OK) {
                    redisFree(sub);
                    sub = NULL;
                    kick = true;
                } else {
                    while (redisGetReplyFromReader(sub, &m) == REDIS_OK && m) {
                        on_message(s, m);
                        freeReplyObject(m);
                        m = NULL;
                    }
                }
            }
            bool k2;
            if (wait_flags(s, 0, &k2))
                break;
            kick = kick || k2;
        } else {
            bool k2;
            if (wait_flags(s, 200, &k2))
                break;
            kick = true;
        }
        int64_t now = sluice__redis_mono_us();
        int64_t since_ms = (now - last_resolve_us) / 1000;
        if ((kick && since_ms >= RESOLVE_MIN_GAP_MS) || since_ms >= RESOLVE_EVERY_MS) {
            resolve(s);
            last_resolve_us = sluice__redis_mono_us();
        } else if (kick) {
            /* too soon: remember it for the next turn */
            pthread_mutex_lock(&s->mu);
            s->kick = true;
            pthread_mutex_unlock(&s->mu);
        }
    }
    if (sub)
        redisFree(sub);
    return NULL;
}

void sluice__sentinel_kick(sluice__sentinel *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->kick = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sluice__sentinel_stop(sluice__sentinel *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    for (int i = 0; i < s->n; i++)
        sluice__free(s->hosts[i]);
    sluice__free(s->master);
    sluice__free(s);
}

int sluice__sentinel_start(sluice__sentinel **out, sluice__redis *r, const sluice__url *url,
                           sluice_error *err)
{
    *out = NULL;
    sluice__sentinel *s = sluice__calloc(1, sizeof(*s));
    if (!s)
        return sluice__redis_error(err, SLUICE_ENOMEM, "out of memory", NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->r = r;
    s->io_ms = r->timeout_ms > SENTINEL_IO_MS ? r->timeout_ms : SENTINEL_IO_MS;
    s->master = sluice__strdup(url->path);
    if (!s->master)
        goto out_nomem;
    for (int i = 0; i < url->nhosts && i < SLUICE_URL_MAX_HOSTS; i++) {
        s->hosts[i] = sluice__strdup(url->hosts[i]);
        if (!s->hosts[i])
            goto out_nomem;
        s->ports[i] = url->ports[i] > 0 ? url->ports[i] : 26379;
        s->n = i + 1;
    }
    /* A first answer now, so the first decision need not wait; failure is not fatal. */
    resolve(s);
    if (pthread_create(&s->thread, NULL, sentinel_main, s) != 0) {
        sluice__sentinel_stop(s);
        return sluice__redis_error(err, SLUICE_ESTORE, "cannot start the Sentinel thread", NULL);
    }
    s->started = true;
    *out = s;
    return 0;
out_nomem:
    sluice__sentinel_stop(s);
    return sluice__redis_error(err, SLUICE_ENOMEM, "out of memory", NULL);
}
