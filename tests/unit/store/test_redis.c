/* SPDX-License-Identifier: MIT */
/*
 * test_redis.c - the Redis store against a real server.
 *
 * Without SLUICE_REDIS_URL only the offline parts run (SHA1, the embedded
 * script, command building, reply parsing) and the rest prints "skipped: no
 * redis".  tests/integ/test_redis_store.sh starts a redis-server and runs
 * this program with SLUICE_REDIS_URL set:
 *   - random traces, decided both by src/core (sluice__decide_cells on
 *     in-process cells) and by the Lua script (explicit times, also
 *     epoch-scale ones and limits at the bounds): every field must agree;
 *   - the asynchronous path with 64 decisions in flight on one connection;
 *   - SCRIPT FLUSH between and during decisions: no failed decision;
 *   - TTLs: with the server's clock every key's PTTL <= its reset_after.
 *
 * Worker mode, for the multi-process tests of the integration script:
 *   test_redis hammer URL SPEC N INFLIGHT KEY [DURATION_MS]
 * makes N decisions (or as many as fit in DURATION_MS) of cost 1 with the
 * server's time on KEY, INFLIGHT in flight on the async path (0: the
 * blocking path, -T: T threads on the blocking path), and prints "allowed=A denied=D errors=E
 * max_us=M tail_ok=T done=N starve_us=S" (tail_ok: successes after the last
 * error; starve_us: the longest time the process could not run); SPEC is
 * "alg:limit:window_ms:burst[,alg:...]" with alg a number (sluice.h).
 * With SLUICE_HAMMER_STOP_FILE set, a DURATION_MS run ends early once that
 * file exists.
 *   test_redis peek URL SPEC KEY    prints each limit's remaining.
 */
#include <event2/event.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/algo.h"
#include "store/memory/memory.h"
#include "store/redis/redis_int.h"
#include "store/redis/redis_lua.h"
#include "test.h"

static const char *url_env;
static uint64_t seed;

static void *open_store(const char *url, int timeout_ms)
{
    sluice__url u;
    sluice_error err = {0};
    if (sluice__url_parse(&u, url, &err) != 0)
        test_fail(__FILE__, __LINE__, "url: %s", err.msg);
    sluice_store_options o = {0};
    o.timeout_ms = timeout_ms;
    void *impl = NULL;
    int rc = sluice__redis_ops.open(&impl, &u, &o, &err);
    sluice__url_free(&u);
    if (rc != 0)
        test_fail(__FILE__, __LINE__, "open: %s", err.msg);
    return impl;
}

/* ---- offline --------------------------------------------------------- */

static void test_sha1(void)
{
    char hex[41];
    sluice__sha1_hex("abc", 3, hex);
    ASSERT_STREQ(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    sluice__sha1_hex("", 0, hex);
    ASSERT_STREQ(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    const char *s56 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sluice__sha1_hex(s56, strlen(s56), hex);
    ASSERT_STREQ(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

static void test_embedded_script_matches_file(void)
{
    FILE *f = fopen(SLUICE_SOURCE_DIR "/src/store/redis/sluice.lua", "rb");
    ASSERT(f != NULL);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    ASSERT_EQ(n, sluice__redis_lua_len);
    ASSERT(memcmp(buf, sluice__redis_lua, n) == 0);
}

/* The decision of the 13-number reply below (two limits, the second denies). */
static void assert_reply_13(const sluice_decision *d)
{
    ASSERT_EQ(d->now_ms, 42);
    ASSERT(!d->allowed);
    ASSERT_EQ(d->decided_by, 1);
    ASSERT_EQ(d->retry_after_ms, 59958);
    ASSERT_EQ(d->limits[0].remaining, 17);
    ASSERT_EQ(d->limits[1].window_ms, 60000);
}

static void test_format_and_parse(void)
{
    sluice__redis r;
    memset(&r, 0, sizeof(r));
    memset(r.sha, 'a', 40);
    sluice_limit lims[2] = {{SLUICE_TOKEN_BUCKET, 10, 1000, 20},
                            {SLUICE_FIXED_WINDOW, 5, 60000, 0}};
    sluice__op op = {"rule:ip:1.2.3.4", 15, lims, 2, 3, 1700000000123LL};
    char *cmd;
    long len = sluice__redis_format(&r, &op, false, &cmd);
    ASSERT(len > 0);
    ASSERT_CONTAINS(cmd, "EVALSHA");
    ASSERT_CONTAINS(cmd, "sluice:{rule:ip:1.2.3.4}:0");
    ASSERT_CONTAINS(cmd, "sluice:{rule:ip:1.2.3.4}:1");
    ASSERT_CONTAINS(cmd, "1700000000123");
    redisFreeCommand(cmd);
    op.now_ms = SLUICE_NOW;
    len = sluice__redis_format(&r, &op, true, &cmd);
    ASSERT(len > (long)sluice__redis_lua_len);
    ASSERT_CONTAINS(cmd, "$2\r\n-1\r\n");
    redisFreeCommand(cmd);
    op.cost = -1;
    ASSERT_EQ(sluice__redis_format(&r, &op, false, &cmd), SLUICE_EINVAL);

    /* the module's form: the keys, then the same numbers as one argument,
     * the same bytes as redisFormatCommand of those arguments */
    op.cost = 3;
    op.now_ms = 1700000000123LL;
    char mbuf[SLUICE_REDIS_CMD_MAX];
    long mlen = sluice__redis_format_module(&op, mbuf, sizeof(mbuf));
    char *want;
    long wlen = redisFormatCommand(&want, "SLUICE.DECIDE %s %s %s", "sluice:{rule:ip:1.2.3.4}:0",
                                   "sluice:{rule:ip:1.2.3.4}:1",
                                   "1700000000123 3 60000 3 10 1000 20 0 5 60000 0");
    ASSERT_EQ(mlen, wlen);
    ASSERT(memcmp(mbuf, want, (size_t)wlen) == 0);
    redisFreeCommand(want);
    op.now_ms = SLUICE_NOW;
    mlen = sluice__redis_format_module(&op, mbuf, sizeof(mbuf));
    ASSERT(mlen > 0);
    ASSERT(memmem(mbuf, (size_t)mlen, "$31\r\n-1 3 0 3 10 1000 20 0 5 60000 0\r\n", 37) != NULL);
    ASSERT_EQ(sluice__redis_format_module(&op, mbuf, 16), SLUICE_ENOMEM);
    /* which replies mean what for the engines */
    redisReply er = {0};
    er.type = REDIS_REPLY_ERROR;
    er.str = (char *)"ERR unknown command 'SLUICE.DECIDE', with args beginning with: '-1 1 0' ";
    er.len = strlen(er.str);
    ASSERT(sluice__redis_is_nomodule(&er));
    er.str = (char *)"ERR unknown command 'FOO'";
    er.len = strlen(er.str);
    ASSERT(!sluice__redis_is_nomodule(&er));
    ASSERT(!sluice__redis_detect_reply(&er));
    op.now_ms = 1700000000123LL;

    /* a reply: now, then 6 integers per limit */
    redisReply el[13], *pel[13];
    int64_t vals[13] = {42, 1, 20, 17, 300, 0, 0, 0, 5, 0, 59958, 59958, 0};
    for (int i = 0; i < 13; i++) {
        memset(&el[i], 0, sizeof(el[i]));
        el[i].type = REDIS_REPLY_INTEGER;
        el[i].integer = vals[i];
        pel[i] = &el[i];
    }
    redisReply top = {0};
    top.type = REDIS_REPLY_ARRAY;
    top.elements = 13;
    top.element = pel;
    op.cost = 1;
    sluice_decision d;
    sluice_error err = {0};
    ASSERT_EQ(sluice__redis_parse(&top, &op, &d, &err), 0);
    assert_reply_13(&d);
    /* numbers no sluice script returns are refused: a server time past
     * SLUICE_TIME_MAX_MS overflowed the deny cache's clock (fuzz_redis_reply) */
    static const struct {
        int i;
        int64_t v;
    } bad[] = {{0, INT64_MAX}, {0, -1},        {1, 2},
               {2, -1},        {3, -5},        {4, INT64_MAX},
               {5, -2},        {6, INT64_MIN}, {11, SLUICE_TIME_MAX_MS + 1}};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        el[bad[k].i].integer = bad[k].v;
        ASSERT_EQ(sluice__redis_parse(&top, &op, &d, &err), SLUICE_ESTORE);
        ASSERT_CONTAINS(err.msg, "out of range");
        el[bad[k].i].integer = vals[bad[k].i];
    }
    ASSERT_EQ(sluice__redis_parse(&top, &op, &d, &err), 0);
    top.elements = 12;
    ASSERT_EQ(sluice__redis_parse(&top, &op, &d, &err), SLUICE_ESTORE);
    top.elements = 13;
    el[3].type = REDIS_REPLY_STRING;
    ASSERT_EQ(sluice__redis_parse(&top, &op, &d, &err), SLUICE_ESTORE);
    el[3].type = REDIS_REPLY_INTEGER;

    /* the module's reply: the same 13 numbers as one string, one decoder */
    redisReply str = {0};
    str.type = REDIS_REPLY_STRING;
    static const struct {
        const char *s;
        int rc;
    } strs[] = {
        {"42 1 20 17 300 0 0 0 5 0 59958 59958 0", 0},
        {"42 1 20 17 300 0 0 0 5 0 59958 59958", SLUICE_ESTORE},            /* one short */
        {"42 1 20 17 300 0 0 0 5 0 59958 59958 0 0", SLUICE_ESTORE},        /* one more */
        {"42 1 20 17 300 0 0 0 5 0 59958 59958 0 ", SLUICE_ESTORE},         /* trailing space */
        {"42 1 20 17 300 0 0 0 5 0 59958  59958 0", SLUICE_ESTORE},         /* two spaces */
        {"42 1 20 17 300 0 0 0 5 0 59958 59958 +0", SLUICE_ESTORE},         /* a sign */
        {"42 1 20 17 300 0 0 0 5 0 59958 5e4 0", SLUICE_ESTORE},            /* not decimal */
        {"42 2 20 17 300 0 0 0 5 0 59958 59958 0", SLUICE_ESTORE},          /* allowed 2 */
        {"1234567890123456789 1 20 17 300 0 0 0 5 0 1 1 0", SLUICE_ESTORE}, /* 19 digits */
        {"", SLUICE_ESTORE},
    };
    for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++) {
        str.str = (char *)strs[k].s;
        str.len = strlen(str.str);
        memset(&d, 0xab, sizeof(d));
        ASSERT_EQ(sluice__redis_parse(&str, &op, &d, &err), strs[k].rc);
        if (strs[k].rc == 0)
            assert_reply_13(&d);
    }
    redisReply e = {0};
    e.type = REDIS_REPLY_ERROR;
    e.str = (char *)"NOSCRIPT No matching script. Please use EVAL.";
    e.len = strlen(e.str);
    ASSERT(sluice__redis_is_noscript(&e));
    ASSERT_EQ(sluice__redis_parse(&e, &op, &d, &err), SLUICE_ESTORE);
    e.str = (char *)"READONLY You can't write against a read only replica.";
    e.len = strlen(e.str);
    ASSERT(sluice__redis_is_moved_master(&e));
}

static void test_closed_port_fails_fast(void)
{
    /* nothing listens on port 1: refused at once, then backoff */
    void *impl = open_store("redis://127.0.0.1:1", 50);
    sluice_limit lim = {SLUICE_FIXED_WINDOW, 5, 1000, 0};
    sluice__op op = {"r:k", 3, &lim, 1, 1, SLUICE_NOW};
    sluice_decision d;
    sluice_error err = {0};
    for (int i = 0; i < 20; i++) {
        int64_t t0 = sluice__redis_mono_us();
        int rc = sluice__redis_ops.decide(impl, &op, &d, &err);
        ASSERT(rc == SLUICE_ESTORE || rc == SLUICE_ETIMEOUT);
        ASSERT(sluice__redis_mono_us() - t0 < 200000);
    }
    ASSERT(strstr(err.msg, "redis") != NULL);
    sluice__redis_ops.close(impl);
}

static void test_password_not_in_errors(void)
{
    void *impl = open_store("redis://bob:s3cretpw@127.0.0.1:1/2", 30);
    sluice_error err = {0};
    ASSERT(sluice__redis_ops.ping(impl, &err) < 0);
    ASSERT(strstr(err.msg, "s3cretpw") == NULL);
    sluice__redis_ops.close(impl);
}

/* ---- against a server -------------------------------------------------- */

static void assert_same(const sluice_decision *a, const sluice_decision *b, int step)
{
    if (a->allowed != b->allowed || a->limit != b->limit || a->remaining != b->remaining ||
        a->reset_after_ms != b->reset_after_ms || a->retry_after_ms != b->retry_after_ms ||
        a->delay_ms != b->delay_ms || a->now_ms != b->now_ms || a->nlimits != b->nlimits ||
        a->decided_by != b->decided_by)
        test_fail(__FILE__, __LINE__,
                  "step %d top: core %d/%" PRId64 "/%" PRId64 "/%" PRId64 "/%" PRId64 "/%" PRId64
                  " redis %d/%" PRId64 "/%" PRId64 "/%" PRId64 "/%" PRId64 "/%" PRId64
                  " (seed %" PRIu64 ")",
                  step, a->allowed, a->limit, a->remaining, a->reset_after_ms, a->retry_after_ms,
                  a->delay_ms, b->allowed, b->limit, b->remaining, b->reset_after_ms,
                  b->retry_after_ms, b->delay_ms, seed);
    for (int i = 0; i < a->nlimits; i++) {
        const sluice_limit_decision *x = &a->limits[i], *y = &b->limits[i];
        if (x->allowed != y->allowed || x->limit != y->limit || x->remaining != y->remaining ||
            x->reset_after_ms != y->reset_after_ms || x->retry_after_ms != y->retry_after_ms ||
            x->delay_ms != y->delay_ms || x->window_ms != y->window_ms ||
            x->algorithm != y->algorithm)
            test_fail(__FILE__, __LINE__,
                      "step %d limit %d (alg %d): core %d/%" PRId64 "/%" PRId64 "/%" PRId64
                      "/%" PRId64 " redis %d/%" PRId64 "/%" PRId64 "/%" PRId64 "/%" PRId64
                      " (seed %" PRIu64 ")",
                      step, i, x->algorithm, x->allowed, x->remaining, x->reset_after_ms,
                      x->retry_after_ms, x->delay_ms, y->allowed, y->remaining, y->reset_after_ms,
                      y->retry_after_ms, y->delay_ms, seed);
    }
}

static void random_limit(uint64_t *st, sluice_limit *l, bool at_bounds)
{
    l->algorithm = (int)test_range(st, 0, 4);
    if (at_bounds) {
        l->limit = test_range(st, 0, 1) ? SLUICE_LIMIT_MAX : test_range(st, 1, 1000000);
        l->window_ms = SLUICE_PRODUCT_MAX / l->limit;
        if (l->window_ms > SLUICE_WINDOW_MAX_MS)
            l->window_ms = SLUICE_WINDOW_MAX_MS;
        if (l->algorithm == SLUICE_SLIDING_LOG)
            l->limit = SLUICE_SLIDING_LOG_MAX;
    } else {
        l->limit = test_range(st, 1, 12);
        static const int64_t windows[] = {1, 3, 10, 100, 1000, 7000, 60000, 3600000};
        l->window_ms = windows[test_range(st, 0, 7)];
    }
    l->burst = 0;
    if (l->algorithm == SLUICE_TOKEN_BUCKET || l->algorithm == SLUICE_LEAKY_BUCKET)
        l->burst = test_range(st, 0, 1) ? l->limit : test_range(st, 1, 3 * (l->limit % 1000) + 1);
    if (l->burst * l->window_ms > SLUICE_PRODUCT_MAX)
        l->burst = SLUICE_PRODUCT_MAX / l->window_ms;
}

static void run_trace(void *impl, uint64_t *st, int trace, int64_t t0, bool at_bounds)
{
    int n = (int)test_range(st, 1, 3);
    sluice_limit lims[SLUICE_MAX_LIMITS];
    for (int i = 0; i < n; i++)
        random_limit(st, &lims[i], at_bounds);
    sluice__cell cells[SLUICE_MAX_LIMITS];
    memset(cells, 0, sizeof(cells));
    char key[64];
    snprintf(key, sizeof(key), "diff:%" PRIu64 ":%d", seed, trace);
    int64_t t = t0;
    int64_t wmax = 1;
    for (int i = 0; i < n; i++)
        wmax = lims[i].window_ms > wmax ? lims[i].window_ms : wmax;
    for (int step = 0; step < 60; step++) {
        int r = (int)test_range(st, 0, 9);
        if (r < 4)
            t += 0;
        else if (r < 8)
            t += test_range(st, 0, wmax < 4 ? 4 : wmax / 4);
        else
            t += test_range(st, 0, 2 * wmax);
        int64_t cost = test_range(st, 0, 9) == 0 ? 0 : test_range(st, 1, 3);
        if (test_range(st, 0, 30) == 0)
            cost = 1000000; /* above every capacity here: retry_after -1 */
        sluice_decision a, b;
        ASSERT_EQ(sluice__decide_cells(lims, n, cells, t, cost, &a), 0);
        sluice__op op = {key, strlen(key), lims, n, cost, t};
        sluice_error err = {0};
        int rc = sluice__redis_ops.decide(impl, &op, &b, &err);
        if (rc != 0)
            test_fail(__FILE__, __LINE__, "decide: %d %s", rc, err.msg);
        assert_same(&a, &b, step);
    }
    for (int i = 0; i < n; i++)
        sluice__algo_release(&lims[i], &cells[i]);
}

static void test_differential_small_times(void)
{
    void *impl = open_store(url_env, 2000);
    uint64_t st = seed;
    for (int i = 0; i < 150; i++)
        run_trace(impl, &st, i, test_range(&st, 0, 5000), false);
    sluice__redis_ops.close(impl);
}

static void test_differential_epoch_times(void)
{
    void *impl = open_store(url_env, 2000);
    uint64_t st = seed ^ 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 150; i++)
        run_trace(impl, &st, 1000 + i, 1700000000000LL + test_range(&st, 0, 1LL << 36), false);
    sluice__redis_ops.close(impl);
}

static void test_differential_at_bounds(void)
{
    void *impl = open_store(url_env, 2000);
    uint64_t st = seed ^ 0x5bd1e995ULL;
    for (int i = 0; i < 60; i++)
        run_trace(impl, &st, 2000 + i, 1700000000000LL + test_range(&st, 0, 1LL << 40), true);
    sluice__redis_ops.close(impl);
}

/* A reload in the middle of a trace: the limit set changes (a limit's
 * parameters, the number of limits) and the memory store, which keeps a cell
 * per unchanged limit, agrees with the Lua, where each key holds its own
 * limit's parameters, decision for decision. */
static void test_differential_reload(void)
{
    void *impl = open_store(url_env, 2000);
    sluice__url u;
    sluice_error err = {0};
    sluice__memstore *m = NULL;
    ASSERT_EQ(sluice__url_parse(&u, "memory://", &err), 0);
    ASSERT_EQ(sluice__memory_open(&m, &u, &err), 0);
    sluice__url_free(&u);
    uint64_t st = seed ^ 0x2545f4914f6cdd1dULL;
    for (int trace = 0; trace < 60; trace++) {
        char key[64];
        snprintf(key, sizeof(key), "reload:%" PRIu64 ":%d", seed, trace);
        sluice_limit lims[SLUICE_MAX_LIMITS];
        int n = (int)test_range(&st, 1, 3);
        for (int i = 0; i < SLUICE_MAX_LIMITS; i++)
            random_limit(&st, &lims[i], false);
        int64_t t = test_range(&st, 0, 5000);
        for (int step = 0; step < 40; step++) {
            if (step % 8 == 7) { /* a reload: one limit changes, or the count */
                if (test_range(&st, 0, 1))
                    random_limit(&st, &lims[test_range(&st, 0, n - 1)], false);
                else {
                    /* a limit dropped and later restored resumes its Redis key
                     * (still there until its TTL) but starts afresh in memory
                     * (docs/design.md): restored limits here are new ones */
                    int was = n;
                    n = (int)test_range(&st, 1, 4);
                    for (int i = n; i < was; i++) {
                        sluice_limit old = lims[i];
                        do
                            random_limit(&st, &lims[i], false);
                        while (old.algorithm == lims[i].algorithm && old.limit == lims[i].limit &&
                               old.window_ms == lims[i].window_ms && old.burst == lims[i].burst);
                    }
                }
            }
            t += test_range(&st, 0, 3) == 0 ? test_range(&st, 0, 3000) : 0;
            int64_t cost = test_range(&st, 0, 2);
            sluice__op op = {key, strlen(key), lims, n, cost, t};
            sluice_decision a, b;
            ASSERT_EQ(sluice__memory_decide(m, &op, &a, &err), 0);
            int rc = sluice__redis_ops.decide(impl, &op, &b, &err);
            if (rc != 0)
                test_fail(__FILE__, __LINE__, "decide: %d %s", rc, err.msg);
            assert_same(&a, &b, trace * 100 + step);
        }
    }
    sluice__memory_close(m);
    sluice__redis_ops.close(impl);
}

static redisContext *raw(void)
{
    sluice__url u;
    sluice_error err = {0};
    ASSERT_EQ(sluice__url_parse(&u, url_env, &err), 0);
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(u.hosts[0], u.ports[0] > 0 ? u.ports[0] : 6379, tv);
    ASSERT(c && !c->err);
    if (u.password) {
        redisReply *r = u.user ? redisCommand(c, "AUTH %s %s", u.user, u.password)
                               : redisCommand(c, "AUTH %s", u.password);
        freeReplyObject(r);
    }
    if (u.path && *u.path) {
        redisReply *r = redisCommand(c, "SELECT %s", u.path);
        freeReplyObject(r);
    }
    sluice__url_free(&u);
    return c;
}

static void test_sha_matches_server(void)
{
    redisContext *c = raw();
    redisReply *r = redisCommand(c, "SCRIPT LOAD %b", sluice__redis_lua, sluice__redis_lua_len);
    ASSERT(r && r->type == REDIS_REPLY_STRING);
    char hex[41];
    sluice__sha1_hex(sluice__redis_lua, sluice__redis_lua_len, hex);
    ASSERT_STREQ(r->str, hex);
    freeReplyObject(r);
    redisFree(c);
}

static void test_ttl_and_noscript(void)
{
    void *impl = open_store(url_env, 2000);
    redisContext *c = raw();
    sluice_limit lims[5] = {{SLUICE_FIXED_WINDOW, 3, 5000, 0},
                            {SLUICE_SLIDING_LOG, 3, 4000, 0},
                            {SLUICE_SLIDING_WINDOW, 3, 3000, 0},
                            {SLUICE_TOKEN_BUCKET, 3, 2000, 3},
                            {SLUICE_LEAKY_BUCKET, 3, 1000, 3}};
    char key[64];
    snprintf(key, sizeof(key), "ttl:%" PRIu64, seed);
    for (int round = 0; round < 3; round++) {
        redisReply *f = redisCommand(c, "SCRIPT FLUSH");
        freeReplyObject(f);
        sluice__op op = {key, strlen(key), lims, 5, 1, SLUICE_NOW};
        sluice_decision d;
        sluice_error err = {0};
        ASSERT_EQ(sluice__redis_ops.decide(impl, &op, &d, &err), 0);
        ASSERT(d.allowed);
        for (int i = 0; i < 5; i++) {
            redisReply *r = redisCommand(c, "PTTL sluice:{%s}:%d", key, i);
            ASSERT(r && r->type == REDIS_REPLY_INTEGER);
            ASSERT(r->integer > 0);
            ASSERT(r->integer <= d.limits[i].reset_after_ms);
            freeReplyObject(r);
        }
    }
    redisFree(c);
    sluice__redis_ops.close(impl);
}

/* ---- async ------------------------------------------------------------- */

typedef struct hammer {
    struct event_base *base;
    void *conn;
    sluice_limit lims[SLUICE_MAX_LIMITS];
    int n;
    const char *key;
    int64_t total, started, done;
    int64_t allowed, denied, errors, flush_every;
    int64_t max_us;
    int64_t tail_ok;   /* successes since the last error */
    int64_t end_us;    /* time-bounded run: stop starting at this time; 0: by count */
    int64_t t_start;   /* for debug output */
    int64_t pace_us;   /* pause of each chain between decisions (0: none) */
    struct event *lag; /* measures how late the loop runs a 5 ms timer */
    int64_t lag_due_us;
    redisContext *flusher;
} hammer;

typedef struct hreq {
    hammer *h;
    int64_t t0;
} hreq;

static void hammer_next(hammer *h);

/* SLUICE_HAMMER_STOP_FILE: a time-bounded run also ends once this file
 * exists (looked for every 20 ms), so that a test ends the traffic after an
 * event it waits for (a failover) instead of guessing how long it takes. */
static bool stop_file_seen(void)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int64_t next_us;
    static bool seen;
    const char *path = getenv("SLUICE_HAMMER_STOP_FILE");
    if (!path)
        return false;
    pthread_mutex_lock(&mu);
    int64_t now = sluice__redis_mono_us();
    if (!seen && now >= next_us) {
        seen = access(path, F_OK) == 0;
        next_us = now + 20000;
    }
    bool r = seen;
    pthread_mutex_unlock(&mu);
    return r;
}

static bool hammer_more(const hammer *h)
{
    if (h->end_us)
        return sluice__redis_mono_us() < h->end_us && !stop_file_seen();
    return h->started < h->total;
}

static void hammer_record(hammer *h, int status, const sluice_decision *d, int64_t t0)
{
    int64_t us = sluice__redis_mono_us() - t0;
    if (us > h->max_us)
        h->max_us = us;
    if (us > 90000 && getenv("SLUICE_HAMMER_DEBUG"))
        fprintf(stderr, "slow: %" PRId64 " us status %d at +%" PRId64 " ms\n", us, status,
                (t0 - h->t_start) / 1000);
    h->done++;
    if (status != 0 || (d && d->store_error)) {
        h->errors++;
        h->tail_ok = 0;
        return;
    }
    h->tail_ok++;
    if (d->allowed)
        h->allowed++;
    else
        h->denied++;
}

static void hammer_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hammer_next(arg);
}

static void hammer_cb(int status, const sluice_decision *d, void *arg)
{
    hreq *q = arg;
    hammer *h = q->h;
    hammer_record(h, status, d, q->t0);
    free(q);
    if (!hammer_more(h)) {
        if (h->done == h->started)
            event_base_loopbreak(h->base);
        return;
    }
    /* never recurse: a failing store answers inline; pace failures at 5 ms
     * and successes at pace_us (SLUICE_HAMMER_RATE) */
    int64_t us = status ? 5000 : h->pace_us;
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    event_base_once(h->base, -1, EV_TIMEOUT, hammer_later, h, &tv);
}

static void hammer_next(hammer *h)
{
    if (!hammer_more(h)) {
        if (h->done == h->started && h->base)
            event_base_loopbreak(h->base); /* the last paced chain ends here */
        return;
    }
    h->started++;
    if (h->flusher && h->flush_every && h->started % h->flush_every == 0) {
        redisReply *r = redisCommand(h->flusher, "SCRIPT FLUSH");
        freeReplyObject(r);
    }
    hreq *q = malloc(sizeof(*q));
    ASSERT(q != NULL);
    q->h = h;
    q->t0 = sluice__redis_mono_us();
    sluice__op op = {h->key, strlen(h->key), h->lims, h->n, 1, SLUICE_NOW};
    int rc = sluice__redis_ops.decide_async(h->conn, &op, hammer_cb, q);
    ASSERT_EQ(rc, 0);
}

/* Blocking path: nthreads threads share one store (its connection pool). */
typedef struct sync_arg {
    hammer *h;
    void *impl;
    pthread_mutex_t *mu;
} sync_arg;

static void *sync_thread(void *p)
{
    sync_arg *a = p;
    hammer *h = a->h;
    for (;;) {
        pthread_mutex_lock(a->mu);
        bool more = hammer_more(h);
        if (more)
            h->started++;
        pthread_mutex_unlock(a->mu);
        if (!more)
            break;
        sluice__op op = {h->key, strlen(h->key), h->lims, h->n, 1, SLUICE_NOW};
        sluice_decision d;
        sluice_error err = {0};
        int64_t t0 = sluice__redis_mono_us();
        int rc = sluice__redis_ops.decide(a->impl, &op, &d, &err);
        pthread_mutex_lock(a->mu);
        hammer_record(h, rc, rc ? NULL : &d, t0);
        pthread_mutex_unlock(a->mu);
        int64_t us = rc ? 1000 : h->pace_us;
        if (us > 0) {
            struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void hammer_run_sync(hammer *h, void *impl, int nthreads)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    sync_arg a = {h, impl, &mu};
    pthread_t th[64];
    if (nthreads > 64)
        nthreads = 64;
    for (int i = 0; i < nthreads; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, sync_thread, &a), 0);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
}

static atomic_int_fast64_t starve_us;

/* How late the loop itself runs a timer: while it is late, no deadline fires. */
static void lag_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hammer *h = arg;
    int64_t now = sluice__redis_mono_us();
    if (now - h->lag_due_us > atomic_load(&starve_us))
        atomic_store(&starve_us, now - h->lag_due_us);
    h->lag_due_us = now + 5000;
    if (!hammer_more(h))
        event_del(h->lag);
}

static void hammer_run(hammer *h, void *impl, int inflight, int timeout_s)
{
    if (inflight <= 0) {
        hammer_run_sync(h, impl, inflight == 0 ? 1 : -inflight);
        return;
    }
    h->base = event_base_new();
    sluice_error err = {0};
    ASSERT_EQ(sluice__redis_ops.attach(impl, h->base, &h->conn, &err), 0);
    h->lag = event_new(h->base, -1, EV_PERSIST, lag_tick, h);
    struct timeval five = {0, 5000};
    h->lag_due_us = sluice__redis_mono_us() + 5000;
    event_add(h->lag, &five);
    for (int i = 0; i < inflight; i++)
        hammer_next(h);
    struct timeval tv = {timeout_s, 0};
    event_base_loopexit(h->base, &tv);
    event_base_dispatch(h->base);
    sluice__redis_ops.detach(h->conn);
    event_free(h->lag);
    event_base_free(h->base);
}

static void test_async_exact_and_flush(void)
{
    void *impl = open_store(url_env, 1000);
    char key[64];
    snprintf(key, sizeof(key), "async:%" PRIu64, seed);
    hammer h;
    memset(&h, 0, sizeof(h));
    h.lims[0] = (sluice_limit){SLUICE_TOKEN_BUCKET, 500, SLUICE_WINDOW_MAX_MS, 500};
    h.lims[1] = (sluice_limit){SLUICE_SLIDING_LOG, 700, SLUICE_WINDOW_MAX_MS, 0};
    h.n = 2;
    h.key = key;
    h.total = 3000;
    h.flush_every = 400;
    h.flusher = raw();
    hammer_run(&h, impl, 64, 20);
    redisFree(h.flusher);
    ASSERT_EQ(h.done, h.total);
    ASSERT_EQ(h.errors, 0);
    ASSERT_EQ(h.allowed, 500);
    ASSERT_EQ(h.denied, 2500);
    /* the denied requests consumed nothing of the sliding log */
    sluice__op op = {key, strlen(key), h.lims, 2, 0, SLUICE_NOW};
    sluice_decision d;
    sluice_error err = {0};
    ASSERT_EQ(sluice__redis_ops.decide(impl, &op, &d, &err), 0);
    ASSERT_EQ(d.limits[0].remaining, 0);
    ASSERT_EQ(d.limits[1].remaining, 200);
    sluice__redis_ops.close(impl);
}

/* ---- worker modes --------------------------------------------------------- */

static int parse_spec(const char *spec, sluice_limit *lims)
{
    int n = 0;
    const char *p = spec;
    while (*p && n < SLUICE_MAX_LIMITS) {
        long long a, l, w, b;
        int used = 0;
        if (sscanf(p, "%lld:%lld:%lld:%lld%n", &a, &l, &w, &b, &used) != 4)
            return -1;
        lims[n++] = (sluice_limit){(int)a, l, w, b};
        p += used;
        if (*p == ',')
            p++;
    }
    return n;
}

/* Watchdog: the worst oversleep of a 5 ms sleep while the hammer runs, i.e.
 * how long this process could not run at all (a busy machine).  Latency
 * checks allow for it, since no deadline can fire while the process sleeps. */
static atomic_bool starve_stop;

static void *starve_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&starve_stop)) {
        int64_t t0 = sluice__redis_mono_us();
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        int64_t late = sluice__redis_mono_us() - t0 - 5000;
        if (late > atomic_load(&starve_us))
            atomic_store(&starve_us, late);
    }
    return NULL;
}

static int worker(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "peek") == 0) {
        void *impl = open_store(argv[2], 2000);
        sluice_limit lims[SLUICE_MAX_LIMITS];
        int n = parse_spec(argv[3], lims);
        sluice__op op = {argv[4], strlen(argv[4]), lims, n, 0, SLUICE_NOW};
        sluice_decision d;
        sluice_error err = {0};
        int rc = sluice__redis_ops.decide(impl, &op, &d, &err);
        if (rc) {
            fprintf(stderr, "peek: %s\n", err.msg);
            return 1;
        }
        for (int i = 0; i < n; i++)
            printf("%s%" PRId64, i ? " " : "", d.limits[i].remaining);
        printf("\n");
        sluice__redis_ops.close(impl);
        return 0;
    }
    if (argc >= 7 && strcmp(argv[1], "hammer") == 0) {
        int timeout_ms = getenv("SLUICE_TIMEOUT_MS") ? atoi(getenv("SLUICE_TIMEOUT_MS")) : 1000;
        void *impl = open_store(argv[2], timeout_ms);
        hammer h;
        memset(&h, 0, sizeof(h));
        h.n = parse_spec(argv[3], h.lims);
        h.total = atoll(argv[4]);
        h.key = argv[6];
        h.t_start = sluice__redis_mono_us();
        int inflight = atoi(argv[5]);
        const char *rate = getenv("SLUICE_HAMMER_RATE"); /* decisions/s, roughly */
        if (rate && atoll(rate) > 0)
            h.pace_us = (inflight > 0 ? inflight : (inflight == 0 ? 1 : -inflight)) * 1000000LL /
                        atoll(rate);
        if (argc >= 8) /* DURATION_MS: run for that long, N ignored */
            h.end_us = sluice__redis_mono_us() + atoll(argv[7]) * 1000;
        if (h.n < 1 || (h.total < 1 && !h.end_us))
            return 2;
        pthread_t wd;
        bool wd_ok = pthread_create(&wd, NULL, starve_main, NULL) == 0;
        hammer_run(&h, impl, inflight, 120);
        atomic_store(&starve_stop, true);
        if (wd_ok)
            pthread_join(wd, NULL);
        printf("allowed=%" PRId64 " denied=%" PRId64 " errors=%" PRId64 " max_us=%" PRId64
               " tail_ok=%" PRId64 " done=%" PRId64 " starve_us=%" PRId64 "\n",
               h.allowed, h.denied, h.errors, h.max_us, h.tail_ok, h.done,
               (int64_t)atomic_load(&starve_us));
        sluice__redis_ops.close(impl);
        return h.done == h.started ? 0 : 1;
    }
    fprintf(stderr, "usage: test_redis [hammer URL SPEC N INFLIGHT KEY | peek URL SPEC KEY]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return worker(argc, argv);
    seed = test_seed();
    RUN(test_sha1);
    RUN(test_embedded_script_matches_file);
    RUN(test_format_and_parse);
    RUN(test_closed_port_fails_fast);
    RUN(test_password_not_in_errors);
    url_env = getenv("SLUICE_REDIS_URL");
    if (!url_env || !*url_env) {
        printf("skipped: no redis (set SLUICE_REDIS_URL for the server tests)\n");
        return test_done();
    }
    RUN(test_sha_matches_server);
    RUN(test_differential_small_times);
    RUN(test_differential_epoch_times);
    RUN(test_differential_at_bounds);
    RUN(test_differential_reload);
    RUN(test_ttl_and_noscript);
    RUN(test_async_exact_and_flush);
    return test_done();
}
