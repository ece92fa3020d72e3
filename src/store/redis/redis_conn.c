/* SPDX-License-Identifier: MIT */
/*
 * redis_conn.c - connection handling shared by the redis:// (redis.c,
 * redis_async.c) and redis+cluster:// (cluster.c, cluster_async.c) stores,
 * so that single-node and cluster, blocking and asynchronous, behave alike
 * from one implementation:
 *   - blocking pool slots: taking a free one within a deadline, connecting
 *     with the time left, socket timeouts, reading replies and the replies
 *     to a connection's setup, mapping hiredis errors, and the backoff that
 *     keeps a failed slot down (10 ms doubling to 1 s);
 *   - asynchronous links: a hiredis async context on a libevent loop with a
 *     connect timeout, whose loss (failed connect, timeout, disconnect,
 *     drop) is reported to the owner once through a hook;
 *   - the setup commands (AUTH, SCRIPT LOAD) both kinds send.
 * Each store words its own errors (sluice__redis_errf).  Nothing here
 * prints, and the password never enters a message.
 */
#include <errno.h>
#include <event2/event.h>
#include <string.h>
#include <time.h>

#include "store/redis/redis_int.h"
#include "store/redis/redis_lua.h"

/* ---- time --------------------------------------------------------------- */

struct timeval sluice__redis_tv_ms(int64_t ms)
{
    if (ms < 1)
        ms = 1;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

int64_t sluice__redis_left_ms(int64_t deadline_us)
{
    int64_t us = deadline_us - sluice__redis_mono_us();
    return us <= 0 ? 0 : (us + 999) / 1000;
}

int sluice__redis_backoff(int *backoff_ms)
{
    if (*backoff_ms < SLUICE_REDIS_BACKOFF_MIN_MS)
        *backoff_ms = SLUICE_REDIS_BACKOFF_MIN_MS;
    int now = *backoff_ms;
    *backoff_ms *= 2;
    if (*backoff_ms > SLUICE_REDIS_BACKOFF_MAX_MS)
        *backoff_ms = SLUICE_REDIS_BACKOFF_MAX_MS;
    return now;
}

/* ---- blocking contexts -------------------------------------------------- */

int sluice__redis_io_error(sluice__redis_errf ef, sluice_error *err, const redisContext *c)
{
    bool to = c->err == REDIS_ERR_IO &&
              (errno == EAGAIN || errno == EWOULDBLOCK ||
               strstr(c->errstr, "temporarily unavailable") || strstr(c->errstr, "timed out"));
    if (to)
        return ef(err, SLUICE_ETIMEOUT, "timed out", NULL);
    return ef(err, SLUICE_ESTORE, "connection error", c->errstr);
}

redisReply *sluice__redis_read_reply(sluice__redis_errf ef, redisContext *c, sluice_error *err)
{
    void *reply = NULL;
    if (redisGetReply(c, &reply) != REDIS_OK || !reply) {
        sluice__redis_io_error(ef, err, c);
        return NULL;
    }
    return reply;
}

/*
 * redisGetReply() with the deadline kept: it bounds each read() by the
 * socket timeout, so a reply that arrives in pieces (a slow or starved
 * server, a bad network) could take the timeout once per piece.  Here the
 * timeout is set to the time left before every write() and read().
 */
redisReply *sluice__redis_slot_reply(sluice__redis_slot *s, int64_t deadline_us,
                                     sluice__redis_errf ef, sluice_error *err)
{
    redisContext *c = s->c;
    void *reply = NULL;
    if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
        goto io;
    int done = reply != NULL;
    while (!done) {
        if (sluice__redis_slot_timeout(s, deadline_us, ef, err) != 0)
            return NULL;
        if (redisBufferWrite(c, &done) != REDIS_OK)
            goto io;
    }
    while (!reply) {
        if (sluice__redis_slot_timeout(s, deadline_us, ef, err) != 0)
            return NULL;
        if (redisBufferRead(c) != REDIS_OK || redisGetReplyFromReader(c, &reply) != REDIS_OK)
            goto io;
    }
    return reply;
io:
    sluice__redis_io_error(ef, err, c);
    return NULL;
}

sluice__redis_slot *sluice__redis_slot_take(sluice__redis_slot *pool, unsigned n, atomic_uint *next,
                                            int64_t deadline_us, sluice__redis_errf ef,
                                            sluice_error *err)
{
    unsigned start = atomic_fetch_add(next, 1);
    for (unsigned i = 0; i < n; i++) {
        sluice__redis_slot *s = &pool[(start + i) % n];
        if (pthread_mutex_trylock(&s->mu) == 0)
            return s;
    }
    sluice__redis_slot *s = &pool[start % n];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (deadline_us - sluice__redis_mono_us()) * 1000;
    if (ns < 0)
        ns = 0;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    if (pthread_mutex_timedlock(&s->mu, &ts) != 0) {
        ef(err, SLUICE_ETIMEOUT, "timed out waiting for a connection", NULL);
        return NULL;
    }
    return s;
}

void sluice__redis_slot_check(sluice__redis_slot *s, uint64_t gen)
{
    if (s->c && (s->c->err || s->gen != gen)) {
        redisFree(s->c);
        s->c = NULL;
        s->retry_at_us = 0;
    }
}

void sluice__redis_slot_drop(sluice__redis_slot *s)
{
    if (s->c) {
        redisFree(s->c);
        s->c = NULL;
    }
    s->retry_at_us =
        sluice__redis_mono_us() + (int64_t)sluice__redis_backoff(&s->backoff_ms) * 1000;
}

int sluice__redis_slot_timeout(sluice__redis_slot *s, int64_t deadline_us, sluice__redis_errf ef,
                               sluice_error *err)
{
    int64_t ms = sluice__redis_left_ms(deadline_us);
    if (ms < 1)
        return ef(err, SLUICE_ETIMEOUT, "timed out", NULL);
    if (s->io_timeout_ms == (int)ms)
        return 0;
    if (redisSetTimeout(s->c, sluice__redis_tv_ms(ms)) != REDIS_OK)
        return ef(err, SLUICE_ESTORE, "setting socket timeouts failed", NULL);
    s->io_timeout_ms = (int)ms;
    return 0;
}

int sluice__redis_slot_open(sluice__redis_slot *s, const char *host, int port, uint64_t gen,
                            int64_t deadline_us, sluice__redis_errf ef, bool *unreachable,
                            sluice_error *err)
{
    *unreachable = false;
    s->gen = gen; /* this address has been tried, connected or not */
    int64_t ms = sluice__redis_left_ms(deadline_us);
    if (ms < 1)
        return ef(err, SLUICE_ETIMEOUT, "timed out", NULL);
    redisContext *c = redisConnectWithTimeout(host, port, sluice__redis_tv_ms(ms));
    if (!c)
        return ef(err, SLUICE_ENOMEM, "out of memory", NULL);
    if (c->err) {
        int rc = sluice__redis_io_error(ef, err, c);
        if (rc == SLUICE_ESTORE)
            ef(err, rc, "connect failed", c->errstr);
        redisFree(c);
        *unreachable = true;
        return rc;
    }
    if (sluice__redis_reader_bound(c->reader) != 0) {
        redisFree(c);
        return ef(err, SLUICE_ENOMEM, "out of memory", NULL);
    }
    s->c = c;
    s->io_timeout_ms = 0;
    return sluice__redis_slot_timeout(s, deadline_us, ef, err);
}

/* AUTH [user] password as a RESP command; its length, 0 without a password. */
static long auth_command(char **cmd, const char *user, const char *password)
{
    *cmd = NULL;
    if (!password)
        return 0;
    int len = user ? redisFormatCommand(cmd, "AUTH %s %s", user, password)
                   : redisFormatCommand(cmd, "AUTH %s", password);
    return len < 0 || !*cmd ? SLUICE_ENOMEM : len;
}

/* Frees a command that holds the password, wiping it first. */
static void free_secret(char *cmd, long len)
{
    if (!cmd)
        return;
    memset(cmd, 0, (size_t)len);
    redisFreeCommand(cmd);
}

int sluice__redis_append_auth(redisContext *c, const char *user, const char *password)
{
    char *cmd;
    long len = auth_command(&cmd, user, password);
    if (len <= 0)
        return (int)len;
    redisAppendFormattedCommand(c, cmd, (size_t)len);
    free_secret(cmd, len);
    return 1;
}

void sluice__redis_append_load(redisContext *c)
{
    redisAppendCommand(c, "SCRIPT LOAD %b", sluice__redis_lua, sluice__redis_lua_len);
}

/* s: read with sluice__redis_slot_reply() by deadline_us; NULL: plain reads on c. */
static int read_setup(redisContext *c, sluice__redis_slot *s, int64_t deadline_us, int n,
                      redisReply **last, sluice__redis_errf ef, sluice_error *err)
{
    if (last)
        *last = NULL;
    for (int i = 0; i < n; i++) {
        redisReply *rep = s ? sluice__redis_slot_reply(s, deadline_us, ef, err)
                            : sluice__redis_read_reply(ef, c, err);
        if (!rep)
            return err && err->code ? err->code : SLUICE_ESTORE;
        if (rep->type == REDIS_REPLY_ERROR) {
            /* error replies to AUTH (WRONGPASS ...) never echo the password */
            ef(err, SLUICE_ESTORE, "connection setup refused", rep->str);
            freeReplyObject(rep);
            return SLUICE_ESTORE;
        }
        if (last && i == n - 1)
            *last = rep;
        else
            freeReplyObject(rep);
    }
    return 0;
}

int sluice__redis_read_setup(redisContext *c, int n, redisReply **last, sluice__redis_errf ef,
                             sluice_error *err)
{
    return read_setup(c, NULL, 0, n, last, ef, err);
}

int sluice__redis_slot_setup(sluice__redis_slot *s, int64_t deadline_us, int n, redisReply **last,
                             sluice__redis_errf ef, sluice_error *err)
{
    return read_setup(s->c, s, deadline_us, n, last, ef, err);
}

/* ---- asynchronous links ------------------------------------------------- */

/* Forgets ac (hiredis frees it) and tells the owner, once. */
static void alink_lost(sluice__redis_alink *l, const redisAsyncContext *ac)
{
    if (l->ac != ac)
        return;
    l->ac = NULL;
    l->connected = false;
    evtimer_del(l->connect_timer);
    l->lost(l);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    sluice__redis_alink *l = ac->data;
    if (!l)
        return;
    if (status != REDIS_OK) {
        alink_lost(l, ac); /* hiredis frees ac after this returns */
        return;
    }
    l->connected = true;
    evtimer_del(l->connect_timer);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    sluice__redis_alink *l = ac->data;
    if (l)
        alink_lost(l, ac);
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sluice__redis_alink *l = arg;
    if (l->ac && !l->connected)
        sluice__redis_alink_drop(l);
}

int sluice__redis_alink_init(sluice__redis_alink *l, struct event_base *base,
                             void (*lost)(sluice__redis_alink *l))
{
    l->lost = lost;
    if (!l->connect_timer)
        l->connect_timer = evtimer_new(base, on_connect_timeout, l);
    if (!l->replies)
        l->replies = sluice__redis_rpool_new();
    return l->connect_timer && l->replies ? 0 : SLUICE_ENOMEM;
}

int sluice__redis_alink_open(sluice__redis_alink *l, struct event_base *base, const char *host,
                             int port, int timeout_ms)
{
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (!ac || ac->err || sluice__redis_event_attach(ac, base) != REDIS_OK) {
        if (ac)
            redisAsyncFree(ac);
        l->ac = NULL;
        return -1;
    }
    sluice__redis_rpool_use(l->replies, ac->c.reader);
    ac->data = l;
    l->ac = ac;
    l->connected = false;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    int ms = timeout_ms < 50 ? 50 : timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(l->connect_timer, &tv);
    return 0;
}

void sluice__redis_alink_drop(sluice__redis_alink *l)
{
    redisAsyncContext *ac = l->ac;
    if (!ac)
        return;
    alink_lost(l, ac);
    redisAsyncFree(ac);
}

void sluice__redis_alink_close(sluice__redis_alink *l)
{
    if (l->ac) {
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac); /* remaining callbacks see NULL in ac->data */
    }
    if (l->connect_timer)
        event_free(l->connect_timer);
    l->connect_timer = NULL;
    sluice__redis_rpool_free(l->replies);
    l->replies = NULL;
}

void sluice__redis_async_auth(redisAsyncContext *ac,
                              void (*fn)(redisAsyncContext *, void *, void *), void *privdata,
                              const char *user, const char *password)
{
    char *cmd;
    long len = auth_command(&cmd, user, password);
    if (len <= 0)
        return;
    redisAsyncFormattedCommand(ac, fn, privdata, cmd, (size_t)len);
    free_secret(cmd, len);
}

void sluice__redis_async_load(redisAsyncContext *ac,
                              void (*fn)(redisAsyncContext *, void *, void *), void *privdata)
{
    redisAsyncCommand(ac, fn, privdata, "SCRIPT LOAD %b", sluice__redis_lua, sluice__redis_lua_len);
}

/* ---- requests ----------------------------------------------------------- */

void sluice__redis_op_copy(sluice__redis_opcopy *dst, const sluice__op *op)
{
    memcpy(dst->limits, op->limits, sizeof(sluice_limit) * (size_t)op->nlimits);
    memcpy(dst->key, op->key, op->key_len);
    dst->key[op->key_len] = '\0';
    dst->op = *op;
    dst->op.key = dst->key;
    dst->op.limits = dst->limits;
}

int sluice__redis_open_deny_cache(const sluice__url *url, sluice__deny_cache **dc,
                                  sluice__redis_errf ef, sluice_error *err)
{
    bool on;
    *dc = NULL;
    if (sluice__url_onoff(url, "deny_cache", true, &on) != 0)
        return ef(err, SLUICE_EURL, "deny_cache must be on or off", NULL);
    if (on && !(*dc = sluice__deny_cache_new(0)))
        return ef(err, SLUICE_ENOMEM, "out of memory", NULL);
    return 0;
}
