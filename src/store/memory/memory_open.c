/* SPDX-License-Identifier: MIT */
/*
 * memory_open.c - the cold half of the embedded store: memory:// URL
 * parameters (max_keys, shards), open, close, the key count and, for tests,
 * the check of the tables' invariants.  The decision path is memory.c.
 */
#include "store/memory/memory.h"
#include "store/memory/memory_int.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/siphash.h"

/* ---- open, close, keys --------------------------------------------------- */

static int parse_count(const char *s, unsigned long long lo, unsigned long long hi,
                       unsigned long long *v)
{
    unsigned long long x = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > hi)
            return -1;
        x = x * 10 + (unsigned long long)(*s - '0');
    }
    if (x < lo || x > hi)
        return -1;
    *v = x;
    return 0;
}

/* Checks that every query parameter is one memory:// knows. */
static int check_params(const sluice__url *url, sluice_error *err)
{
    const char *q = url->query ? url->query : "";
    while (*q) {
        size_t n = strcspn(q, "&"), k = strcspn(q, "=&");
        if (!((k == 8 && memcmp(q, "max_keys", 8) == 0) || (k == 6 && memcmp(q, "shards", 6) == 0)))
            return sluice__errorf(err, SLUICE_EURL,
                                  "store URL: unknown memory:// parameter '%.*s' "
                                  "(known: max_keys, shards)",
                                  (int)(k > 64 ? 64 : k), q);
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

static int memory_open(sluice__memstore **out, const sluice__url *url,
                       unsigned long long default_cap, sluice_error *err)
{
    *out = NULL;
    unsigned long long max_keys = default_cap, nshards = DEFAULT_SHARDS;
    bool exact_lru = false;
    char buf[32];
    if (url) {
        int rc = check_params(url, err);
        if (rc)
            return rc;
        if (url->query && strstr(url->query, "max_keys") &&
            (sluice__url_param(url, "max_keys", buf, sizeof(buf)) != 0 ||
             parse_count(buf, 1, MAX_MAX_KEYS, &max_keys) != 0))
            return sluice__errorf(err, SLUICE_EURL,
                                  "store URL: max_keys must be a whole number in 1..%llu",
                                  MAX_MAX_KEYS);
        exact_lru = url->query && strstr(url->query, "max_keys") != NULL;
        if (url->query && strstr(url->query, "shards") &&
            (sluice__url_param(url, "shards", buf, sizeof(buf)) != 0 ||
             parse_count(buf, 1, MAX_SHARDS, &nshards) != 0 || (nshards & (nshards - 1))))
            return sluice__errorf(err, SLUICE_EURL,
                                  "store URL: shards must be a power of two in 1..%d", MAX_SHARDS);
    }
    /* Each shard gets at least 1024 keys of max_keys, so that eviction, which
     * is per shard, stays close to a global LRU for small bounds. */
    while (nshards > 1 && max_keys / nshards < 1024)
        nshards /= 2;

    sluice__memstore *m = sluice__calloc(1, sizeof(*m));
    if (!m)
        return sluice__errorf(err, SLUICE_ENOMEM, "memory store: out of memory");
    m->raw = sluice__calloc(1, (size_t)nshards * SHARD_SIZE + 63);
    if (!m->raw) {
        sluice__free(m);
        return sluice__errorf(err, SLUICE_ENOMEM, "memory store: out of memory");
    }
    m->shards = (unsigned char *)(((uintptr_t)m->raw + 63) & ~(uintptr_t)63);
    m->nshards = (int)nshards;
    int bits = 0;
    while ((1ULL << bits) < nshards)
        bits++;
    m->shard_shift = 64 - bits;
    m->max_keys = (size_t)max_keys;
    for (int i = 0; i < m->nshards; i++) {
        shard *s = shard_at(m, i);
        atomic_init(&s->lock, 0);
        atomic_init(&s->hint_tab, 0);
        atomic_init(&s->hint_mask, 0);
        s->cap = (size_t)(max_keys / nshards) + ((unsigned long long)i < max_keys % nshards);
        s->lru = exact_lru;
    }
    (void)sluice__hash_key(); /* draw the key now, not in the first decision */
    *out = m;
    return 0;
}

int sluice__memory_open(sluice__memstore **out, const sluice__url *url, sluice_error *err)
{
    return memory_open(out, url, DEFAULT_MAX_KEYS, err);
}

int sluice__memory_open_capped(sluice__memstore **out, const sluice__url *url,
                               unsigned long long cap, sluice_error *err)
{
    if (cap < 1 || cap > MAX_MAX_KEYS) {
        *out = NULL;
        return sluice__errorf(err, SLUICE_EINVAL, "memory store: bound out of 1..%llu",
                              MAX_MAX_KEYS);
    }
    return memory_open(out, url, cap, err);
}

void sluice__memory_close(sluice__memstore *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->nshards; i++) {
        shard *s = shard_at(m, i);
        for (int t = 0; t < 2; t++) {
            for (size_t b = 0; s->tab[t] && b <= s->mask[t]; b++) {
                if (slot_live(s->tab[t][b]))
                    sluice__mem_node_free(s, slot_node(s->tab[t][b]));
            }
        }
        sluice__free(s->tab[0]);
        sluice__free(s->tab[1]);
    }
    sluice__free(m->raw);
    sluice__free(m);
}

size_t sluice__memory_keys(sluice__memstore *m)
{
    size_t n = 0;
    if (!m)
        return 0;
    for (int i = 0; i < m->nshards; i++) {
        shard *s = shard_at(m, i);
        shard_lock(s);
        n += s->count;
        shard_unlock(s);
    }
    return n;
}

/* Checks one table of a locked shard: its entries are found by a search for
 * their own key, there, and it holds the tombstones it counts and an empty
 * slot; adds its live entries to *live. */
static int table_check(shard *s, int t, size_t *live)
{
    size_t tombs = 0, empty = 0;
    for (size_t i = 0; i <= s->mask[t]; i++) {
        uint64_t e = s->tab[t][i];
        empty += e == SLOT_EMPTY;
        tombs += e == SLOT_TOMB;
        if (!slot_live(e))
            continue;
        mnode *nd = slot_node(e);
        where w;
        if (slot_tag(nd->hash) != e >> PTR_BITS ||
            sluice__mem_find(s, nd->hash, node_key(nd), node_keylen(nd), &w) != nd || w.t != t ||
            w.pos != i)
            return -1;
        ++*live;
    }
    return tombs == s->tombs[t] && empty > 0 ? 0 : -1;
}

int sluice__memory_check(sluice__memstore *m)
{
    int rc = 0;
    for (int i = 0; m && i < m->nshards && rc == 0; i++) {
        shard *s = shard_at(m, i);
        shard_lock(s);
        size_t live = 0;
        for (int t = 0; t < 2 && rc == 0; t++)
            if (s->tab[t])
                rc = table_check(s, t, &live);
        if (rc == 0 && live != s->count)
            rc = -1;
        shard_unlock(s);
    }
    return rc;
}
