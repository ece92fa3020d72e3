/* SPDX-License-Identifier: MIT */
/*
 * test_cluster_route.c - the routing pieces of redis+cluster:// that need no
 * server: the slot of a decision's keys, and how error replies are read
 * (MOVED and ASK targets, empty hosts, retryable errors, NOSCRIPT), and
 * the slot map of a CLUSTER SLOTS reply, read from hiredis's reader.
 */
#include <stdlib.h>

#include "store/redis/cluster_int.h"
#include "test.h"

static sluice__cluster_reply classify(const char *msg, int *slot, char *host, int *port)
{
    redisReply r = {0};
    r.type = REDIS_REPLY_ERROR;
    r.str = (char *)msg;
    r.len = strlen(msg);
    return sluice__cluster_classify(&r, slot, host, SLUICE_REDIS_HOST_MAX, port);
}

static void test_redirects(void)
{
    int slot = -1, port = -1;
    char host[SLUICE_REDIS_HOST_MAX];
    ASSERT_EQ(classify("MOVED 12182 127.0.0.1:7002", &slot, host, &port), SLUICE_CREPLY_MOVED);
    ASSERT_EQ(slot, 12182);
    ASSERT_STREQ(host, "127.0.0.1");
    ASSERT_EQ(port, 7002);
    ASSERT_EQ(classify("ASK 3999 :6380", &slot, host, &port), SLUICE_CREPLY_ASK);
    ASSERT_EQ(slot, 3999);
    ASSERT_STREQ(host, ""); /* same host as the connection */
    ASSERT_EQ(port, 6380);
    ASSERT_EQ(classify("MOVED 1 ::1:6379", &slot, host, &port), SLUICE_CREPLY_MOVED);
    ASSERT_STREQ(host, "::1");
    ASSERT_EQ(port, 6379);
    /* malformed redirects end the decision instead of sending it anywhere */
    ASSERT_EQ(classify("MOVED 16384 h:1", &slot, host, &port), SLUICE_CREPLY_DONE);
    ASSERT_EQ(classify("MOVED x h:1", &slot, host, &port), SLUICE_CREPLY_DONE);
    ASSERT_EQ(classify("MOVED 5 h", &slot, host, &port), SLUICE_CREPLY_DONE);
    ASSERT_EQ(classify("ASK 5 h:0", &slot, host, &port), SLUICE_CREPLY_DONE);
    ASSERT_EQ(classify("ASK 5 h:70000", &slot, host, &port), SLUICE_CREPLY_DONE);
}

static void test_other_errors(void)
{
    int slot, port;
    char host[SLUICE_REDIS_HOST_MAX];
    ASSERT_EQ(
        classify("TRYAGAIN Multiple keys request during rehashing of slot", &slot, host, &port),
        SLUICE_CREPLY_RETRY);
    ASSERT_EQ(classify("CLUSTERDOWN The cluster is down", &slot, host, &port), SLUICE_CREPLY_RETRY);
    ASSERT_EQ(classify("LOADING Redis is loading the dataset in memory", &slot, host, &port),
              SLUICE_CREPLY_RETRY);
    ASSERT_EQ(classify("NOSCRIPT No matching script. Please use EVAL.", &slot, host, &port),
              SLUICE_CREPLY_NOSCRIPT);
    ASSERT_EQ(classify("ERR something else", &slot, host, &port), SLUICE_CREPLY_DONE);
    ASSERT_EQ(classify("CROSSSLOT Keys in request don't hash to the same slot", &slot, host, &port),
              SLUICE_CREPLY_DONE);
    redisReply ok = {0};
    ok.type = REDIS_REPLY_ARRAY;
    ASSERT_EQ(sluice__cluster_classify(&ok, &slot, host, sizeof(host), &port), SLUICE_CREPLY_DONE);
    ASSERT_EQ(sluice__cluster_classify(NULL, &slot, host, sizeof(host), &port), SLUICE_CREPLY_DONE);
}

static int op_slot(const char *key)
{
    sluice__op op = {0};
    op.key = key;
    op.key_len = strlen(key);
    return sluice__cluster_op_slot(&op);
}

static void test_op_slot(void)
{
    /* the hash tag of sluice:{<key>}:<n> is the key itself */
    ASSERT_EQ(op_slot("user1000"), 3443);
    ASSERT_EQ(op_slot("login:ip:10.0.0.1"), sluice__cluster_keyslot("login:ip:10.0.0.1", 17));
    /* an identifier with '}' cuts the tag where Redis cuts it */
    ASSERT_EQ(op_slot("r:a}b"), sluice__cluster_keyslot("r:a", 3));
    ASSERT_EQ(op_slot("r:{x}"), sluice__cluster_keyslot("r:{x", 4));
}

static void test_wait_ms(void)
{
    ASSERT_EQ(sluice__cluster_wait_ms(0), 1); /* WAIT 0 would block forever */
    ASSERT_EQ(sluice__cluster_wait_ms(1), 1);
    ASSERT_EQ(sluice__cluster_wait_ms(20), 10);
}

static redisReply *read_reply(const char *bytes)
{
    redisReader *r = redisReaderCreate();
    ASSERT(r);
    ASSERT_EQ(redisReaderFeed(r, bytes, strlen(bytes)), REDIS_OK);
    void *reply = NULL;
    ASSERT_EQ(redisReaderGetReply(r, &reply), REDIS_OK);
    ASSERT(reply);
    redisReaderFree(r);
    return reply;
}

/* A reply of nothing but malformed entries used to install an empty map
 * (every slot without a master until the next refresh); the old map stays. */
static void test_apply_slots(void)
{
    sluice__cluster *cs = calloc(1, sizeof(*cs));
    ASSERT(cs);
    pthread_mutex_init(&cs->topo_mu, NULL);
    for (int i = 0; i < SLUICE_CLUSTER_NODES_MAX; i++)
        for (int j = 0; j < SLUICE_CLUSTER_POOL; j++)
            pthread_mutex_init(&cs->nodes[i].pool[j].mu, NULL);
    for (int s = 0; s < SLUICE_CLUSTER_SLOTS; s++)
        cs->slots[s] = SLUICE_CLUSTER_NO_NODE;
    redisReply *ok = read_reply("*2\r\n*3\r\n:0\r\n:8191\r\n*2\r\n$1\r\na\r\n:7000\r\n"
                                "*3\r\n:8192\r\n:16383\r\n*2\r\n$0\r\n\r\n:7001\r\n");
    ASSERT_EQ(sluice__cluster_apply_slots(cs, ok, "seed"), 0);
    int a = sluice__cluster_slot_node(cs, 0), b = sluice__cluster_slot_node(cs, 16383);
    ASSERT(a != SLUICE_CLUSTER_NO_NODE && b != SLUICE_CLUSTER_NO_NODE && a != b);
    ASSERT_STREQ(cs->nodes[b].host, "seed"); /* an empty host is the one asked */
    static const char *const bad[] = {
        "*1\r\n:5\r\n",
        "*1\r\n*3\r\n:9\r\n:3\r\n*2\r\n$1\r\na\r\n:7000\r\n", /* lo > hi */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:7000\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\na\r\n:0\r\n", /* port 0 */
        "*0\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *r = read_reply(bad[i]);
        ASSERT_EQ(sluice__cluster_apply_slots(cs, r, "seed"), -1);
        freeReplyObject(r);
        ASSERT_EQ(sluice__cluster_slot_node(cs, 0), a);
        ASSERT_EQ(sluice__cluster_slot_node(cs, 16383), b);
    }
    freeReplyObject(ok);
    free(cs);
}

/* engine=auto: the module only while no master of the slot map lacks it;
 * a master that leaves the map no longer counts, a new address is unknown */
static void test_engine_every_node(void)
{
    sluice__cluster *cs = calloc(1, sizeof(*cs));
    ASSERT(cs);
    pthread_mutex_init(&cs->topo_mu, NULL);
    for (int s = 0; s < SLUICE_CLUSTER_SLOTS; s++)
        cs->slots[s] = SLUICE_CLUSTER_NO_NODE;
    cs->engine = SLUICE__ENGINE_AUTO;
    redisReply *two = read_reply("*2\r\n*3\r\n:0\r\n:8191\r\n*2\r\n$1\r\na\r\n:7000\r\n"
                                 "*3\r\n:8192\r\n:16383\r\n*2\r\n$1\r\nb\r\n:7001\r\n");
    ASSERT_EQ(sluice__cluster_apply_slots(cs, two, "seed"), 0);
    int a = sluice__cluster_slot_node(cs, 0), b = sluice__cluster_slot_node(cs, 16383);
    uint64_t ga = atomic_load(&cs->nodes[a].gen), gb = atomic_load(&cs->nodes[b].gen);
    ASSERT(sluice__cluster_use_module(cs, true));
    ASSERT(!sluice__cluster_use_module(cs, false)); /* a connection not (yet) detected */
    sluice__cluster_engine_note(cs, a, ga, true, "detected");
    sluice__cluster_engine_note(cs, b, gb, false, "detected");
    ASSERT_EQ(atomic_load(&cs->lacking), 1);
    ASSERT(!sluice__cluster_use_module(cs, true)); /* b lacks it: Lua on a too */
    sluice__cluster_engine_note(cs, b, gb + 1, true,
                                "detected"); /* another address's note: ignored */
    ASSERT(!sluice__cluster_use_module(cs, true));
    sluice__cluster_engine_note(cs, b, gb, true, "detected"); /* re-detected after a reconnect */
    ASSERT(sluice__cluster_use_module(cs, true));
    sluice__cluster_engine_note(cs, b, gb, false, "detected");
    ASSERT(!sluice__cluster_use_module(cs, true));
    /* b leaves the map (a takes every slot): only nodes in use count */
    redisReply *one = read_reply("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$1\r\na\r\n:7000\r\n");
    ASSERT_EQ(sluice__cluster_apply_slots(cs, one, "seed"), 0);
    ASSERT_EQ(atomic_load(&cs->lacking), 0);
    ASSERT(sluice__cluster_use_module(cs, true));
    /* engine=module never falls back */
    cs->engine = SLUICE__ENGINE_MODULE;
    ASSERT_EQ(sluice__cluster_apply_slots(cs, two, "seed"), 0);
    ASSERT_EQ(atomic_load(&cs->lacking), 1);
    ASSERT(sluice__cluster_use_module(cs, true));
    freeReplyObject(one);
    freeReplyObject(two);
    free(cs);
}

int main(void)
{
    RUN(test_redirects);
    RUN(test_other_errors);
    RUN(test_op_slot);
    RUN(test_wait_ms);
    RUN(test_apply_slots);
    RUN(test_engine_every_node);
    return test_done();
}
