/* SPDX-License-Identifier: MIT */
/*
 * test_crc16.c - CRC16/XMODEM check value and the cluster hash-tag rule,
 * against slots verified with CLUSTER KEYSLOT on redis-server 7.0.
 */
#include "store/redis/crc16.h"
#include "test.h"

static void test_check_value(void)
{
    ASSERT_EQ(sluice__crc16("123456789", 9), 0x31C3);
    ASSERT_EQ(sluice__crc16("", 0), 0);
    ASSERT_EQ(sluice__cluster_keyslot("123456789", 9), 12739);
}

static int slot(const char *k)
{
    return sluice__cluster_keyslot(k, strlen(k));
}

static void test_hash_tags(void)
{
    ASSERT_EQ(slot("{user1000}.following"), 3443);
    ASSERT_EQ(slot("{user1000}.followers"), 3443);
    ASSERT_EQ(slot("user1000"), 3443);
    ASSERT_EQ(slot("foo{}{bar}"), 8363);    /* empty first tag: whole key */
    ASSERT_EQ(slot("foo{{bar}}zap"), 4015); /* hashes "{bar" */
    ASSERT_EQ(slot("{bar"), 4015);
    ASSERT_EQ(slot("foo"), 12182);
    ASSERT_EQ(slot("{foo"), sluice__crc16("{foo", 4) & 16383); /* no '}': whole key */
    ASSERT_EQ(slot("foo}{"), sluice__crc16("foo}{", 5) & 16383);
}

static void test_sluice_keys(void)
{
    /* every key of one decision lands in the slot of "<rule>:<identifier>" */
    int s = slot("login:ip:10.0.0.1");
    ASSERT_EQ(slot("sluice:{login:ip:10.0.0.1}:0"), s);
    ASSERT_EQ(slot("sluice:{login:ip:10.0.0.1}:7"), s);
    /* an identifier holding '}' cuts the tag short, for every index alike */
    ASSERT_EQ(slot("sluice:{r:a}b}:0"), slot("r:a"));
    ASSERT_EQ(slot("sluice:{r:a}b}:3"), slot("r:a"));
    for (int i = 0; i < 16384; i++) {
        char k[32];
        int n = snprintf(k, sizeof(k), "k%d", i);
        int v = sluice__cluster_keyslot(k, (size_t)n);
        ASSERT(v >= 0 && v < 16384);
    }
}

int main(void)
{
    RUN(test_check_value);
    RUN(test_hash_tags);
    RUN(test_sluice_keys);
    return test_done();
}
