/* SPDX-License-Identifier: MIT */
/*
 * memory_int.h - internals of the embedded store shared by memory.c (the
 * decision path: nodes, the shard tables, sweep, eviction) and
 * memory_open.c (URL parameters, open, close, key count, the invariant
 * check): the node and shard layouts and the small inline helpers both
 * use.  See memory.c for the design.
 */
#ifndef SLUICE_STORE_MEMORY_INT_H
#define SLUICE_STORE_MEMORY_INT_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/algo.h"
#include "core/errors.h"
#include "store/memory/memory.h"
#include "store/store.h"
#include "util/siphash.h"

#define DEFAULT_MAX_KEYS 10000000ULL
#define MAX_MAX_KEYS (1ULL << 40)
#define DEFAULT_SHARDS 64
#define MAX_SHARDS 1024
#define MIN_SLOTS 16
#define REHASH_MOVE 8     /* entries moved per operation (then to the end of the run), */
#define REHASH_VISIT 64   /* or slots visited */
#define SWEEP_INSERT 2    /* nodes the sweep checks after an operation added a key, */
#define SWEEP_EVERY 16    /* one node every 16th of the other operations, */
#define SWEEP_SCAN 32     /* visiting at most this many slots */
#define EVICT_SAMPLE 16   /* nodes compared by an eviction without max_keys... */
#define EVICT_SCAN 64     /* ...visiting at most this many slots per table */
#define IDLE_UNIT_MS 1024 /* idle_at resolution; rounded up, so never early */

typedef struct mnode mnode;
struct mnode {
    uint64_t hash;        /* key_hash() of the key: rehash and removal need no key */
    uint32_t sig;         /* limit-set signature; low 3 bits are nlimits - 1 */
    uint32_t idle_at;     /* ceil(ms / IDLE_UNIT_MS) at which every cell is idle */
    sluice__cell cells[]; /* nlimits cells, then the tail (see node_tail) */
};
/* Tail after cells[nlimits]: uint8 mask of sliding-log cells, uint16 key
 * length, one uint32 signature per cell (limit_sig1() of the limit it was
 * made for: a reload keeps the cells of unchanged limits), key bytes (not
 * NUL-terminated).  Everything in the tail is unaligned. */
#define TAIL_FIXED 3
#define TAIL_BYTES(n) (TAIL_FIXED + 4 * (size_t)(n))

/* A table entry: SLOT_EMPTY, SLOT_TOMB (a deleted entry that probes pass
 * over), or a node address (below 2^48: user-space addresses on Linux
 * x86-64 and arm64; node_new() refuses any other) with the tag in the top
 * 16 bits. */
#define SLOT_EMPTY 0
#define SLOT_TOMB 1
#define PTR_BITS 48
#define PTR_MASK ((UINT64_C(1) << PTR_BITS) - 1)

/* Exact LRU neighbours (max_keys given), stored just before their node, so a
 * store without a bound pays neither the 16 bytes nor the neighbour misses. */
typedef struct lru_links {
    mnode *newer, *older;
} lru_links;

typedef struct shard {
    /* First cache line: what every operation writes, next to the lock, so
     * threads taking turns on a shard move one line between them, not two. */
    atomic_int lock; /* shard_lock() */
    unsigned tick;   /* operations, for the sweep of the others */
    size_t count;
    size_t added;       /* keys ever added: tells the sweep an operation added one */
    size_t cursor;      /* slot of tab[0] the sweep checks next */
    size_t tombs[2];    /* tombstones in each table */
    size_t rehash_pos;  /* slot of tab[0] the rehash visits next */
    size_t rehash_left; /* slots of tab[0] it has still to visit */
    /* Then what changes only when a table is replaced (or, exact LRU only,
     * head and tail). */
    uint64_t *tab[2];   /* tab[1] non-NULL while rehashing tab[0] into it */
    size_t mask[2];     /* slot count - 1 */
    size_t cap;         /* this shard's part of max_keys */
    mnode *head, *tail; /* exact LRU only: newest and oldest */
    bool lru;           /* max_keys was given: keep the exact LRU list */
    /* Copies of tab[0] and mask[0], written under the lock, read without it
     * only to prefetch a key's slot before the lock is taken. */
    _Atomic uintptr_t hint_tab;
    _Atomic size_t hint_mask;
} shard;

/* A shard padded to whole cache lines so neighbouring locks do not share one. */
#define SHARD_SIZE ((sizeof(shard) + 63) & ~(size_t)63)

struct sluice__memstore {
    void *raw; /* allocation holding the aligned shard array */
    unsigned char *shards;
    int nshards;
    int shard_shift; /* 64 - log2(nshards); the top hash bits pick the shard */
    size_t max_keys;
};

static inline shard *shard_at(const sluice__memstore *m, int i)
{
    return (shard *)(m->shards + (size_t)i * SHARD_SIZE);
}

/* ---- the shard lock ------------------------------------------------------ */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/*
 * A test-and-test-and-set spinlock: a lock is held for well under a
 * microsecond and mostly uncontended (one atomic exchange to take it, a
 * plain release store to drop it, where a mutex pays an atomic operation
 * for each); a waiter spins on a read, and after 100 pauses yields the CPU
 * each round, so a holder that was preempted gets to run.
 */
static inline void shard_lock(shard *s)
{
    while (atomic_exchange_explicit(&s->lock, 1, memory_order_acquire)) {
        for (unsigned spins = 0; atomic_load_explicit(&s->lock, memory_order_relaxed); spins++) {
            if (spins < 100)
                cpu_relax();
            else
                sched_yield();
        }
    }
}

static inline void shard_unlock(shard *s)
{
    atomic_store_explicit(&s->lock, 0, memory_order_release);
}

/* ---- nodes --------------------------------------------------------------- */

static inline int node_nlimits(const mnode *nd)
{
    return (int)(nd->sig & 7) + 1;
}

static inline unsigned char *node_tail(mnode *nd)
{
    return (unsigned char *)&nd->cells[node_nlimits(nd)];
}

static inline unsigned node_logmask(mnode *nd)
{
    return node_tail(nd)[0];
}

static inline size_t node_keylen(mnode *nd)
{
    uint16_t n;
    memcpy(&n, node_tail(nd) + 1, sizeof(n));
    return n;
}

static inline const char *node_key(mnode *nd)
{
    return (const char *)node_tail(nd) + TAIL_BYTES(node_nlimits(nd));
}

static inline uint32_t node_cell_sig(mnode *nd, int i)
{
    uint32_t v;
    memcpy(&v, node_tail(nd) + TAIL_FIXED + 4 * (size_t)i, sizeof(v));
    return v;
}

static inline lru_links *node_links(mnode *nd)
{
    return (lru_links *)(void *)nd - 1;
}

/* Bytes allocated before the node: its LRU links when the shard keeps them. */
static inline size_t node_prefix(const shard *s)
{
    return s->lru ? sizeof(lru_links) : 0;
}

/* True when every cell of nd is idle at now (never true too early). */
static inline bool node_idle(const mnode *nd, int64_t now)
{
    if (now < 0 || nd->idle_at == UINT32_MAX)
        return false;
    return now >= (int64_t)nd->idle_at * IDLE_UNIT_MS;
}

/* ---- the hash table of a shard ------------------------------------------- */

static inline uint64_t key_hash(const char *key, size_t len)
{
    return sluice__siphash(sluice__hash_key(), key, len);
}

/* Tag bits 32..47 of the hash: the shard takes the top bits, the slot the
 * low ones. */
static inline uint64_t slot_tag(uint64_t h)
{
    return (h >> 32) & 0xffff;
}

static inline uint64_t slot_make(const mnode *nd, uint64_t h)
{
    return slot_tag(h) << PTR_BITS | (uint64_t)(uintptr_t)nd;
}

static inline mnode *slot_node(uint64_t e)
{
    return (mnode *)(uintptr_t)(e & PTR_MASK);
}

static inline bool slot_live(uint64_t e)
{
    return e > SLOT_TOMB;
}

/* Where an entry is: table and slot. */
typedef struct where {
    int t;
    size_t pos;
} where;

/** Frees what the cells of nd own (sliding logs) and the node (memory.c). */
void sluice__mem_node_free(const shard *s, mnode *nd);

/** The node with this key in s (locked), or NULL; *w set when found (memory.c). */
mnode *sluice__mem_find(shard *s, uint64_t h, const char *key, size_t len, where *w);

#endif /* SLUICE_STORE_MEMORY_INT_H */
