/* SPDX-License-Identifier: MIT */
/*
 * test_redis_wire.c - the Redis client's own handling of the wire, offline
 * (no server): the EVALSHA and EVAL commands written by redis_reply.c are
 * byte for byte what hiredis's redisFormatCommandArgv makes of the same
 * arguments, for random ops (any key bytes, extreme numbers, 1 to 8
 * limits); and replies built by the pooled reader functions
 * (redis_rpool.c) equal hiredis's own, fed whole or byte by byte, with
 * half-read replies returned to the pool when the reader is freed; and
 * both kinds of reader refuse a reply of more than 2^20 elements (nested
 * arrays counted together) before allocating it.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis/redis_int.h"
#include "store/redis/redis_lua.h"
#include "test.h"

static uint64_t seed;

/* The reference: the same arguments through hiredis's own formatter. */
static long reference_evalsha(const char *sha, const sluice__op *op, char **cmd)
{
    enum { ARGS = 3 + SLUICE_MAX_LIMITS + 2 + 4 * SLUICE_MAX_LIMITS + 1 };
    static char keys[SLUICE_MAX_LIMITS][SLUICE_STORE_KEY_MAX + 32];
    static char nums[ARGS][24];
    const char *argv[ARGS];
    size_t lens[ARGS];
    int argc = 0, k = 0;
    int64_t v[ARGS];
    int nv = 0;
    argv[argc] = "EVALSHA", lens[argc++] = 7;
    argv[argc] = sha, lens[argc++] = 40;
    v[nv++] = op->nlimits;
    v[nv++] = op->now_ms == SLUICE_NOW ? -1 : op->now_ms;
    v[nv++] = op->cost;
    for (int i = 0; i < op->nlimits; i++) {
        v[nv++] = op->limits[i].algorithm;
        v[nv++] = op->limits[i].limit;
        v[nv++] = op->limits[i].window_ms;
        v[nv++] = op->limits[i].burst;
    }
    v[nv++] = op->now_ms == SLUICE_NOW ? 0 : SLUICE_REDIS_REPLAY_SLACK_MS;
    for (int i = 0; i < nv; i++)
        snprintf(nums[i], sizeof(nums[i]), "%" PRId64, v[i]);
    argv[argc] = nums[k], lens[argc++] = strlen(nums[k]), k++; /* numkeys */
    for (int i = 0; i < op->nlimits; i++) {
        memcpy(keys[i], "sluice:{", 8);
        memcpy(keys[i] + 8, op->key, op->key_len);
        int l = snprintf(keys[i] + 8 + op->key_len, 32, "}:%d", i);
        argv[argc] = keys[i], lens[argc++] = 8 + op->key_len + (size_t)l;
    }
    while (k < nv)
        argv[argc] = nums[k], lens[argc++] = strlen(nums[k]), k++;
    return redisFormatCommandArgv(cmd, argc, argv, lens);
}

static uint64_t xs(uint64_t *r)
{
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    return *r;
}

/* The hand-written EVALSHA is byte for byte hiredis's, for random ops. */
static void test_format_evalsha_matches_hiredis(void)
{
    uint64_t rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
    char sha[41];
    sluice__sha1_hex(sluice__redis_lua, sluice__redis_lua_len, sha);
    static const int64_t edge[] = {0,
                                   1,
                                   9,
                                   10,
                                   99,
                                   100,
                                   -1,
                                   -10,
                                   INT64_MAX,
                                   INT64_MIN + 1,
                                   1000000000000000000LL,
                                   1700000000123LL};
    static char buf[SLUICE_REDIS_CMD_MAX];
    for (int t = 0; t < 3000; t++) {
        sluice_limit lims[SLUICE_MAX_LIMITS];
        char key[SLUICE_STORE_KEY_MAX];
        int n = 1 + (int)(xs(&rng) % SLUICE_MAX_LIMITS);
        size_t key_len = t % 7 == 0 ? SLUICE_STORE_KEY_MAX : (size_t)(xs(&rng) % 40);
        for (size_t i = 0; i < key_len; i++)
            key[i] = (char)(xs(&rng) & 0xff); /* any byte: braces, CR LF, NUL */
        for (int i = 0; i < n; i++) {
            int64_t *f[4] = {NULL, &lims[i].limit, &lims[i].window_ms, &lims[i].burst};
            lims[i].algorithm = (int)(xs(&rng) % 5);
            for (int j = 1; j < 4; j++)
                *f[j] = xs(&rng) % 2 ? edge[xs(&rng) % 12] : (int64_t)xs(&rng);
        }
        sluice__op op = {key,
                         key_len,
                         lims,
                         n,
                         (int64_t)(xs(&rng) % 1000),
                         t % 3 ? SLUICE_NOW : (int64_t)(xs(&rng) % (SLUICE_TIME_MAX_MS + 1))};
        if (t % 13 == 0 && op.now_ms != SLUICE_NOW)
            op.now_ms = SLUICE_TIME_MAX_MS; /* the latest time accepted */
        if (t % 11 == 0)
            op.cost = INT64_MAX;
        char *ref = NULL;
        long rlen = reference_evalsha(sha, &op, &ref);
        ASSERT(rlen > 0);
        long len = sluice__redis_format_evalsha(sha, &op, buf, sizeof(buf));
        ASSERT_EQ(len, rlen);
        ASSERT(memcmp(buf, ref, (size_t)len) == 0);
        char *dup = NULL;
        ASSERT_EQ(sluice__redis_format_sha(sha, &op, false, &dup), rlen);
        ASSERT(memcmp(dup, ref, (size_t)len) == 0);
        redisFreeCommand(dup);
        redisFreeCommand(ref);
    }
    sluice_limit lim = {SLUICE_TOKEN_BUCKET, 10, 1000, 20};
    sluice__op op = {"k", 1, &lim, 1, 1, SLUICE_NOW};
    ASSERT_EQ(sluice__redis_format_evalsha(sha, &op, buf, 64), SLUICE_ENOMEM);
    op.nlimits = 0;
    ASSERT_EQ(sluice__redis_format_evalsha(sha, &op, buf, sizeof(buf)), SLUICE_EINVAL);
    op.nlimits = 1;
    op.now_ms = -5;
    ASSERT_EQ(sluice__redis_format_evalsha(sha, &op, buf, sizeof(buf)), SLUICE_EINVAL);
    op.now_ms = SLUICE_TIME_MAX_MS + 1;
    ASSERT_EQ(sluice__redis_format_evalsha(sha, &op, buf, sizeof(buf)), SLUICE_EINVAL);
}

/* Two replies built by different readers hold the same values. */
static bool same_reply(const redisReply *a, const redisReply *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case REDIS_REPLY_INTEGER:
        return a->integer == b->integer;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        return a->len == b->len && memcmp(a->str, b->str, a->len) == 0 && a->str[a->len] == 0;
    case REDIS_REPLY_ARRAY:
        if (a->elements != b->elements)
            return false;
        for (size_t i = 0; i < a->elements; i++) {
            if (!same_reply(a->element[i], b->element[i]))
                return false;
        }
        return true;
    default:
        return true; /* NIL */
    }
}

/* Replies from the pooled reader equal hiredis's own, fed byte by byte or
 * whole, and a reader freed halfway through a reply returns its objects. */
static void test_reply_pool_matches_hiredis(void)
{
    static char big[4096];
    int off = snprintf(big, sizeof(big), "*100\r\n");
    for (int i = 0; i < 100; i++)
        off += snprintf(big + off, sizeof(big) - (size_t)off, ":%d\r\n", i * 7 - 300);
    const char *wire[] = {
        "*7\r\n:1700000000123\r\n:1\r\n:100\r\n:99\r\n:10\r\n:0\r\n:0\r\n",
        "-NOSCRIPT No matching script. Please use EVAL.\r\n",
        "+OK\r\n",
        "$5\r\nab\r\nc\r\n",
        "$-1\r\n",
        "*0\r\n",
        "*-1\r\n",
        "*3\r\n$6\r\nmaster\r\n:3129\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9001\r\n$1\r\n0\r\n",
        "*2\r\n*2\r\n:1\r\n$-1\r\n*0\r\n",
        big,
    };
    sluice__redis_rpool *pool = sluice__redis_rpool_new();
    ASSERT(pool != NULL);
    for (int round = 0; round < 3; round++) { /* later rounds reuse pooled objects */
        for (size_t w = 0; w < sizeof(wire) / sizeof(wire[0]); w++) {
            redisReader *ref = redisReaderCreate(), *rd = redisReaderCreate();
            sluice__redis_rpool_use(pool, rd);
            size_t len = strlen(wire[w]);
            ASSERT_EQ(redisReaderFeed(ref, wire[w], len), REDIS_OK);
            void *want = NULL, *got = NULL;
            ASSERT_EQ(redisReaderGetReply(ref, &want), REDIS_OK);
            for (size_t i = 0; i < len; i++) { /* one byte at a time: partial replies */
                ASSERT_EQ(redisReaderFeed(rd, wire[w] + i, round == 1 ? len - i : 1), REDIS_OK);
                ASSERT_EQ(redisReaderGetReply(rd, &got), REDIS_OK);
                if (got || round == 1)
                    break;
            }
            ASSERT(want != NULL && got != NULL);
            ASSERT(same_reply(want, got));
            rd->fn->freeObject(got);
            freeReplyObject(want);
            /* half a reply left in the reader: freed with it, through the pool */
            ASSERT_EQ(redisReaderFeed(rd, wire[w], len / 2), REDIS_OK);
            ASSERT_EQ(redisReaderGetReply(rd, &got), REDIS_OK);
            ASSERT(got == NULL); /* no half ends with its final CR LF */
            redisReaderFree(rd);
            redisReaderFree(ref);
        }
    }
    sluice__redis_rpool_free(pool);
}

/* 1: a reply; 0: needs more; -1: refused.  The reader is bounded first. */
static int read_one(sluice__redis_rpool *pool, const char *bytes)
{
    size_t len = strlen(bytes);
    redisReader *r = redisReaderCreate();
    ASSERT(r);
    if (pool)
        sluice__redis_rpool_use(pool, r);
    else
        ASSERT_EQ(sluice__redis_reader_bound(r), 0);
    ASSERT_EQ(redisReaderFeed(r, bytes, len), REDIS_OK);
    void *reply = NULL;
    int rc = redisReaderGetReply(r, &reply) != REDIS_OK ? -1 : reply ? 1 : 0;
    if (reply)
        r->fn->freeObject(reply);
    redisReaderFree(r);
    return rc;
}

static void test_reply_elements_bound(void)
{
    sluice__redis_rpool *pool = sluice__redis_rpool_new();
    ASSERT(pool);
    for (int k = 0; k < 2; k++) {
        sluice__redis_rpool *p = k ? pool : NULL;
        ASSERT_EQ(read_one(p, "*2\r\n:1\r\n*1\r\n:2\r\n"), 1);
        /* the bound itself is fine (a partial reply: the elements never come) */
        ASSERT_EQ(read_one(p, "*1048576\r\n"), 0);
        /* one more is refused before its 8 MB of pointers are allocated */
        ASSERT_EQ(read_one(p, "*1048577\r\n"), -1);
        ASSERT_EQ(read_one(p, "*2147483647\r\n"), -1);
        /* nested arrays count together: 2^20 + 2 elements in all */
        ASSERT_EQ(read_one(p, "*2\r\n*1048576\r\n"), -1);
        ASSERT_EQ(read_one(p, "*2\r\n*524288\r\n"), 0);
    }
    sluice__redis_rpool_free(pool);
}

int main(void)
{
    seed = test_seed();
    RUN(test_format_evalsha_matches_hiredis);
    RUN(test_reply_pool_matches_hiredis);
    RUN(test_reply_elements_bound);
    return test_done();
}
