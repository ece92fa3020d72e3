/* SPDX-License-Identifier: MIT */
/*
 * memory.c - the embedded store (memory://): a table of keys sharded by a
 * keyed hash (SipHash-2-4 under the process key), each shard behind its own
 * lock (a spinlock that yields, see shard_lock), held only around lookup and
 * update.  It never does I/O and never waits for anything but a shard lock.
 *
 * One allocation per key: a node header (the key's hash, limit-set
 * signature, idle time), the cells of the key's limits, and a tail holding a
 * byte mask of sliding-log cells, the key length and the key bytes.  Each
 * shard indexes its nodes in an open-addressing table (linear probing) of
 * 8-byte entries: the node's address and 16 more bits of the key's hash, a
 * tag, so a probe rejects other keys without touching their nodes.  A hit
 * reads one table line and its own node, nothing else; a key that is absent
 * reads no node at all.  Deleted entries leave tombstones (cleared at once
 * when they end a probe run); the table is rebuilt when live entries plus
 * tombstones pass 7/8 of it: doubled, halved, or at the same size, by
 * incremental rehash (a few entries per operation, whole probe runs at a
 * time, so the old table stays searchable and no operation moves a whole
 * table).  The rehash frees the idle nodes it meets.
 *
 * Memory is O(active keys): after a decision a node whose cells are all idle
 * is freed at once, and a sweep cursor walks each shard's table (sequential
 * memory), checking two nodes after an operation that added a key and one
 * every 16th other operation, and freeing those whose idle time has passed;
 * the nodes it will check next are prefetched one operation ahead.
 *
 * Eviction.  With max_keys given in the URL, a shard that is full evicts its
 * least recently used key, exactly: each node then carries an intrusive LRU
 * list (two pointers placed just before the node), moved to the head on
 * every decision.  Without max_keys nothing keeps a recency order, so a hit
 * touches only its table line and its node; the store is then bounded by a
 * safety limit of 10,000,000 keys, and a full shard evicts, of a sample of
 * 16 nodes at the sweep cursor, the one that becomes idle the soonest (the
 * key whose loss changes the fewest decisions).
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "core/algo.h"
#include "store/memory/memory.h"
#include "store/memory/memory_int.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/siphash.h"

/* ---- nodes (the shard and node layouts are in memory_int.h) ------------- */

static uint32_t limit_sig1(const sluice_limit *l);

/* A node for the key, its cells zeroed, made for limits[0..(sig & 7)]. */
static mnode *node_new(const shard *s, uint64_t h, uint32_t sig, unsigned logmask,
                       const sluice_limit *limits, const char *key, size_t key_len)
{
    int n = (int)(sig & 7) + 1;
    size_t pre = node_prefix(s);
    size_t head = sizeof(mnode) + (size_t)n * sizeof(sluice__cell);
    unsigned char *raw = sluice__malloc(pre + head + TAIL_BYTES(n) + key_len);
    if (!raw)
        return NULL;
    if ((uint64_t)(uintptr_t)(raw + pre) > PTR_MASK) { /* cannot be a table entry */
        sluice__free(raw);
        return NULL;
    }
    memset(raw, 0, pre + head);
    mnode *nd = (mnode *)(void *)(raw + pre);
    nd->hash = h;
    nd->sig = sig;
    unsigned char *t = node_tail(nd);
    uint16_t kl = (uint16_t)key_len;
    t[0] = (unsigned char)logmask;
    memcpy(t + 1, &kl, sizeof(kl));
    for (int i = 0; i < n; i++) {
        uint32_t cs = limit_sig1(&limits[i]);
        memcpy(t + TAIL_FIXED + 4 * (size_t)i, &cs, sizeof(cs));
    }
    memcpy(t + TAIL_BYTES(n), key, key_len);
    return nd;
}

/* Only sliding-log cells own memory; release() needs no more of the limit
 * than its algorithm, which the node's log mask records. */
static const sluice_limit log_limit = {.algorithm = SLUICE_SLIDING_LOG};

/* Frees what the cells own (sliding logs) and the node. */
static void node_free(const shard *s, mnode *nd)
{
    unsigned mask = node_logmask(nd);
    for (int i = 0; i < node_nlimits(nd); i++) {
        if (mask & (1u << i))
            sluice__algo_release(&log_limit, &nd->cells[i]);
    }
    sluice__free((unsigned char *)nd - node_prefix(s));
}

static uint32_t idle_encode(int64_t at_ms)
{
    if (at_ms <= 0)
        return 0;
    int64_t q = at_ms / IDLE_UNIT_MS + (at_ms % IDLE_UNIT_MS != 0);
    return q >= (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)q;
}

/* ---- exact LRU (max_keys given) ------------------------------------------ */

static void lru_unlink(shard *s, mnode *nd)
{
    lru_links *l = node_links(nd);
    if (l->newer)
        node_links(l->newer)->older = l->older;
    else
        s->head = l->older;
    if (l->older)
        node_links(l->older)->newer = l->newer;
    else
        s->tail = l->newer;
    l->newer = l->older = NULL;
}

static void lru_push_head(shard *s, mnode *nd)
{
    lru_links *l = node_links(nd);
    l->newer = NULL;
    l->older = s->head;
    if (s->head)
        node_links(s->head)->newer = nd;
    else
        s->tail = nd;
    s->head = nd;
}

/* ---- the hash table of a shard ------------------------------------------- */

/* The node with this key, or NULL; *w is set when found.  While a rehash
 * runs, a key is in exactly one of the two tables. */
static mnode *table_find(shard *s, uint64_t h, const char *key, size_t len, where *w)
{
    uint64_t tag = slot_tag(h);
    for (int t = 0; t < 2; t++) {
        const uint64_t *tab = s->tab[t];
        if (!tab)
            continue;
        size_t mask = s->mask[t];
        for (size_t i = h & mask;; i = (i + 1) & mask) {
            uint64_t e = tab[i];
            if (e == SLOT_EMPTY)
                break;
            if (e >> PTR_BITS != tag || !slot_live(e))
                continue;
            mnode *nd = slot_node(e);
            if (nd->hash == h && node_keylen(nd) == len && memcmp(node_key(nd), key, len) == 0) {
                w->t = t;
                w->pos = i;
                return nd;
            }
        }
    }
    return NULL;
}

/* Puts nd (not in the table) into the table new keys go to. */
static void table_insert(shard *s, mnode *nd)
{
    int t = s->tab[1] ? 1 : 0;
    uint64_t *tab = s->tab[t];
    size_t mask = s->mask[t], i = nd->hash & mask;
    while (slot_live(tab[i]))
        i = (i + 1) & mask;
    if (tab[i] == SLOT_TOMB)
        s->tombs[t]--;
    tab[i] = slot_make(nd, nd->hash);
}

/* Empties slot pos of table t: a tombstone, unless no probe run goes on
 * past it; then it and the tombstones just before it become empty. */
static void slot_clear(shard *s, int t, size_t pos)
{
    uint64_t *tab = s->tab[t];
    size_t mask = s->mask[t];
    if (tab[(pos + 1) & mask] != SLOT_EMPTY) {
        tab[pos] = SLOT_TOMB;
        s->tombs[t]++;
        return;
    }
    tab[pos] = SLOT_EMPTY;
    for (size_t i = (pos - 1) & mask; tab[i] == SLOT_TOMB; i = (i - 1) & mask) {
        tab[i] = SLOT_EMPTY;
        s->tombs[t]--;
    }
}

/* Unlinks the node at w from table and LRU and frees it. */
static void node_remove_at(shard *s, where w)
{
    mnode *nd = slot_node(s->tab[w.t][w.pos]);
    slot_clear(s, w.t, w.pos);
    if (s->lru)
        lru_unlink(s, nd);
    s->count--;
    node_free(s, nd);
}

static void node_remove(shard *s, mnode *nd)
{
    for (int t = 0; t < 2; t++) {
        if (!s->tab[t])
            continue;
        size_t mask = s->mask[t];
        for (size_t i = nd->hash & mask; s->tab[t][i] != SLOT_EMPTY; i = (i + 1) & mask) {
            if (slot_live(s->tab[t][i]) && slot_node(s->tab[t][i]) == nd) {
                node_remove_at(s, (where){t, i});
                return;
            }
        }
    }
}

/* Publishes tab[0] for the prefetch in mem_decide(). */
static void table_hint(shard *s)
{
    atomic_store_explicit(&s->hint_tab, (uintptr_t)s->tab[0], memory_order_relaxed);
    atomic_store_explicit(&s->hint_mask, s->mask[0], memory_order_relaxed);
}

/* Starts moving into a table of nslots (a power of two); false on ENOMEM,
 * which only means the table stays as it is for now. */
static bool rehash_start(shard *s, size_t nslots)
{
    uint64_t *t = sluice__calloc(nslots, sizeof(*t));
    if (!t)
        return false;
    if (!s->tab[0]) {
        s->tab[0] = t;
        s->mask[0] = nslots - 1;
        s->tombs[0] = 0;
        s->cursor = 0;
        table_hint(s);
        return true;
    }
    s->tab[1] = t;
    s->mask[1] = nslots - 1;
    s->tombs[1] = 0;
    /* Start at an empty slot: no probe run crosses it, and the rehash
     * stops only at empty slots, so the slots it has emptied hold whole
     * runs and a search of tab[0] still finds every key left there. */
    size_t p = 0;
    while (p <= s->mask[0] && s->tab[0][p] != SLOT_EMPTY)
        p++; /* the load bound keeps an eighth of the slots empty */
    if (p > s->mask[0]) {
        sluice__free(t);
        s->tab[1] = NULL;
        return false;
    }
    s->rehash_pos = p;
    s->rehash_left = s->mask[0] + 1;
    return true;
}

/* Moves REHASH_MOVE entries or visits REHASH_VISIT slots of tab[0], then
 * goes on to the end of the probe run, freeing the idle nodes it meets (so
 * the rehash also sweeps); finishes the rehash at the end. */
static void rehash_step(shard *s, int64_t now)
{
    if (!s->tab[1])
        return;
    uint64_t *t0 = s->tab[0];
    size_t mask = s->mask[0];
    int moved = 0, seen = 0;
    while (s->rehash_left > 0) {
        size_t i = s->rehash_pos;
        uint64_t e = t0[i];
        if (e == SLOT_EMPTY && (moved >= REHASH_MOVE || seen >= REHASH_VISIT))
            break;
        s->rehash_pos = (i + 1) & mask;
        s->rehash_left--;
        seen++;
        if (e == SLOT_EMPTY)
            continue;
        t0[i] = SLOT_EMPTY;
        if (e == SLOT_TOMB) {
            s->tombs[0]--;
            continue;
        }
        mnode *nd = slot_node(e);
        if (node_idle(nd, now)) {
            if (s->lru)
                lru_unlink(s, nd);
            s->count--;
            node_free(s, nd);
        } else {
            table_insert(s, nd);
        }
        moved++;
    }
    if (s->rehash_left > 0) {
        /* prefetch the next nodes to move, as sweep() does */
        for (size_t b = s->rehash_pos, v = 0; v < 2 * REHASH_MOVE; b = (b + 1) & mask, v++)
            if (slot_live(t0[b]))
                __builtin_prefetch(slot_node(t0[b]));
        return;
    }
    sluice__free(s->tab[0]);
    s->tab[0] = s->tab[1];
    s->mask[0] = s->mask[1];
    s->tombs[0] = s->tombs[1];
    s->tab[1] = NULL;
    s->mask[1] = 0;
    s->tombs[1] = 0;
    s->cursor = 0; /* the rehash checked every old node: a new pass starts */
    table_hint(s);
}

/* True when the table new keys go to keeps an empty slot after one more
 * entry (every search ends at one); it holds at most count entries. */
static bool table_room(const shard *s)
{
    int t = s->tab[1] ? 1 : 0;
    return s->count + s->tombs[t] + 2 <= s->mask[t] + 1;
}

/*
 * Rebuilds the table when live entries plus tombstones pass 7/8 of it, or
 * live ones fall below 1/8: into the least power of two (>= MIN_SLOTS) that
 * keeps the live load under 1/2; never while a rehash runs.  So a growing
 * table's load is 0.44..0.875, 9..18.3 bytes per key (a load bound of 4/5 would
 * cost up to 20 bytes just after a doubling, more than the 64-byte budget
 * of a key's node and table entry allows for keys of ~18 bytes).
 */
static void table_resize_check(shard *s)
{
    if (s->tab[1] || !s->tab[0])
        return;
    size_t n = s->mask[0] + 1;
    bool full = s->count + s->tombs[0] > n - n / 8;
    if (!full && (n <= MIN_SLOTS || s->count >= n / 8))
        return;
    size_t want = MIN_SLOTS;
    while (want / 2 <= s->count && want <= SIZE_MAX / 4 / sizeof(uint64_t))
        want *= 2;
    if (want != n || full)
        rehash_start(s, want);
}

/*
 * Checks the live entries at the cursor, at least `nodes` of them unless
 * SWEEP_SCAN slots hold none, and frees the idle ones.  The cursor walks
 * tab[0] round and round.  An operation that added a key checks
 * SWEEP_INSERT nodes, so the sweep outpaces the growth it has to undo, and
 * every SWEEP_EVERY-th other operation one node, so idle keys are freed
 * even when no key is added, without a cache miss on most hits: a node is
 * checked within SWEEP_EVERY * (count + slots / SWEEP_SCAN) operations on
 * its shard.  Paused while a rehash runs (which checks every node it moves).
 * Ends by prefetching the nodes it will check next, so those cache misses
 * overlap with other work before this shard's next operation.
 */
static void sweep(shard *s, int64_t now, int nodes)
{
    if (!s->tab[0] || s->tab[1] || nodes <= 0)
        return;
    uint64_t *tab = s->tab[0];
    size_t mask = s->mask[0];
    int checked = 0;
    for (int v = 0; v < SWEEP_SCAN && checked < nodes; v++) {
        size_t i = s->cursor;
        s->cursor = (i + 1) & mask;
        if (!slot_live(tab[i]))
            continue;
        checked++;
        if (node_idle(slot_node(tab[i]), now))
            node_remove_at(s, (where){0, i});
    }
    /* the next nodes, as many as one sweep checks */
    size_t b = s->cursor;
    for (int v = 0, next = 0; v < SWEEP_SCAN && next < SWEEP_INSERT; v++) {
        if (slot_live(tab[b])) {
            __builtin_prefetch(slot_node(tab[b]));
            next++;
        }
        b = (b + 1) & mask;
    }
}

/*
 * Makes room in a full shard without max_keys: of up to EVICT_SAMPLE nodes
 * in the slots from the cursor on (tab[0], then tab[1] while rehashing;
 * the whole table only if EVICT_SCAN slots held none), frees the one whose
 * idle time comes first.  The cursor moves past the sample, so successive
 * evictions look at different nodes.
 */
static void evict_sampled(shard *s)
{
    where best = {-1, 0};
    uint32_t best_idle = 0;
    int seen = 0;
    for (int t = 0; t < 2 && seen < EVICT_SAMPLE; t++) {
        if (!s->tab[t])
            continue;
        size_t mask = s->mask[t], b = s->cursor & mask;
        for (size_t v = 0; v <= mask && seen < EVICT_SAMPLE && (v < EVICT_SCAN || best.t < 0);
             v++) {
            uint64_t e = s->tab[t][b];
            if (slot_live(e)) {
                if (best.t < 0 || slot_node(e)->idle_at < best_idle) {
                    best = (where){t, b};
                    best_idle = slot_node(e)->idle_at;
                }
                seen++;
            }
            b = (b + 1) & mask;
        }
        if (t == 0)
            s->cursor = b;
    }
    if (best.t >= 0)
        node_remove_at(s, best);
}

/* For memory_open.c: close() and the invariant check. */
void sluice__mem_node_free(const shard *s, mnode *nd)
{
    node_free(s, nd);
}

mnode *sluice__mem_find(shard *s, uint64_t h, const char *key, size_t len, where *w)
{
    return table_find(s, h, key, len, w);
}

/* ---- decisions ----------------------------------------------------------- */

/* 64-bit finaliser of splitmix64: every input bit moves about half the output. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Signature of one limit: what tells, after a reload, the cells of a limit
 * that did not change (kept, as on Redis, where each key holds its limit's
 * parameters) from those of one that did (started afresh).  Not keyed: each
 * field goes through its own odd multiplier, a bijection, so changing one
 * field always changes the word that is mixed; two different limits share a
 * signature with odds of 2^-32, and then the kept cell is read under the new
 * parameters, which every algorithm clamps (docs/design.md). */
static uint32_t limit_sig1(const sluice_limit *l)
{
    uint64_t w = (uint64_t)l->algorithm * 0x9e3779b97f4a7c15ULL ^
                 (uint64_t)l->limit * 0xc2b2ae3d27d4eb4fULL ^
                 (uint64_t)l->window_ms * 0x165667b19e3779f9ULL ^
                 (uint64_t)l->burst * 0xd6e8feb86659fd93ULL;
    return (uint32_t)(mix64(w) >> 32);
}

/* Signature of a limit set: the limits' signatures and positions, with
 * nlimits - 1 in the low 3 bits; logmask gets bit i for a sliding-log limit
 * i (which cells own memory is recorded exactly, not trusted to a hash). */
static uint32_t limits_sig(const sluice_limit *limits, int n, unsigned *logmask)
{
    uint64_t h = (uint64_t)n;
    *logmask = 0;
    for (int i = 0; i < n; i++) {
        h = mix64(h ^ ((uint64_t)limit_sig1(&limits[i]) << 32 | (uint64_t)i));
        if (limits[i].algorithm == SLUICE_SLIDING_LOG)
            *logmask |= 1u << i;
    }
    return ((uint32_t)(h >> 32) & ~7u) | (uint32_t)(n - 1);
}

/* Largest idle_after among the cells: 0 when the whole node is idle. */
static int64_t cells_idle_after(const sluice_limit *limits, int n, const sluice__cell *cells,
                                int64_t now)
{
    int64_t most = 0;
    for (int i = 0; i < n; i++) {
        int64_t a = sluice__algo_idle_after(&limits[i], &cells[i], now);
        if (a > most)
            most = a;
    }
    return most;
}

static void cells_release(unsigned logmask, int n, sluice__cell *cells)
{
    for (int i = 0; i < n; i++) {
        if (logmask & (1u << i))
            sluice__algo_release(&log_limit, &cells[i]);
    }
}

/* A peek at an absent key: decided on zeroed cells, nothing is created. */
static int peek_absent(const sluice__op *op, unsigned logmask, int64_t now, sluice_decision *out)
{
    sluice__cell tmp[SLUICE_MAX_LIMITS];
    memset(tmp, 0, sizeof(tmp));
    int rc = sluice__decide_cells(op->limits, op->nlimits, tmp, now, 0, out);
    cells_release(logmask, op->nlimits, tmp);
    return rc;
}

/* After a decision on a linked node: free it when idle, else refresh it. */
static void node_settle(shard *s, mnode *nd, where w, const sluice__op *op, int64_t now)
{
    int64_t after = cells_idle_after(op->limits, op->nlimits, nd->cells, now);
    if (after == 0) {
        node_remove_at(s, w);
        return;
    }
    nd->idle_at = idle_encode(after > INT64_MAX - now ? INT64_MAX : now + after);
    if (s->lru && s->head != nd) {
        lru_unlink(s, nd);
        lru_push_head(s, nd);
    }
}

/* Decides for a key that has no node: creates one unless the result is idle. */
static int decide_new(shard *s, uint64_t h, const sluice__op *op, uint32_t sig, unsigned logmask,
                      int64_t now, sluice_decision *out)
{
    if (op->cost == 0)
        return peek_absent(op, logmask, now, out);
    if (!s->tab[0] && !rehash_start(s, MIN_SLOTS))
        return SLUICE_ENOMEM;
    if (!table_room(s))
        return SLUICE_ENOMEM; /* a failed allocation kept the table from growing */
    mnode *nd = node_new(s, h, sig, logmask, op->limits, op->key, op->key_len);
    if (!nd)
        return SLUICE_ENOMEM;
    int rc = sluice__decide_cells(op->limits, op->nlimits, nd->cells, now, op->cost, out);
    int64_t after = rc ? 0 : cells_idle_after(op->limits, op->nlimits, nd->cells, now);
    if (after == 0) {
        node_free(s, nd); /* denied, or a cost that leaves no trace */
        return rc;
    }
    nd->idle_at = idle_encode(after > INT64_MAX - now ? INT64_MAX : now + after);
    if (s->count >= s->cap) {
        if (s->lru && s->tail)
            node_remove(s, s->tail);
        else if (!s->lru)
            evict_sampled(s);
    }
    table_insert(s, nd);
    if (s->lru)
        lru_push_head(s, nd);
    s->count++;
    s->added++;
    table_resize_check(s);
    return 0;
}

/* The rule behind a key changed (a reload): the cell of limit i is kept when
 * the node had a cell i made for the same parameters, else it starts from
 * scratch, as each Redis key of the Lua engine does.  So a reload keeps the
 * state of every unchanged limit: changing a rule's per-second limit does
 * not hand its clients a fresh daily quota.  Returns the (possibly
 * reallocated) node at w, or NULL on ENOMEM (nothing changed). */
static mnode *node_reset(shard *s, mnode *old, where w, const sluice__op *op, uint32_t sig,
                         unsigned logmask)
{
    int nold = node_nlimits(old), nnew = op->nlimits;
    unsigned oldmask = node_logmask(old);
    bool keep[SLUICE_MAX_LIMITS] = {false};
    for (int i = 0; i < nold && i < nnew; i++)
        keep[i] = node_cell_sig(old, i) == limit_sig1(&op->limits[i]) &&
                  ((oldmask >> i) & 1u) == ((logmask >> i) & 1u);
    mnode *nd = old;
    if (nold != nnew) {
        nd = node_new(s, old->hash, sig, logmask, op->limits, node_key(old), node_keylen(old));
        if (!nd)
            return NULL;
    }
    for (int i = 0; i < nold; i++) {
        if (i < nnew && keep[i]) {
            if (nd != old)
                nd->cells[i] = old->cells[i]; /* moves a sliding log's list */
            continue;
        }
        if (oldmask & (1u << i))
            sluice__algo_release(&log_limit, &old->cells[i]);
        memset(&old->cells[i], 0, sizeof(sluice__cell));
    }
    if (nd == old) {
        old->sig = sig;
        unsigned char *t = node_tail(old);
        t[0] = (unsigned char)logmask;
        for (int i = 0; i < nnew; i++) {
            uint32_t cs = limit_sig1(&op->limits[i]);
            memcpy(t + TAIL_FIXED + 4 * (size_t)i, &cs, sizeof(cs));
        }
        return old;
    }
    s->tab[w.t][w.pos] = slot_make(nd, nd->hash);
    if (s->lru) { /* take old's place in the LRU list */
        lru_links *l = node_links(nd), *o = node_links(old);
        l->newer = o->newer;
        l->older = o->older;
        if (l->newer)
            node_links(l->newer)->older = nd;
        else
            s->head = nd;
        if (l->older)
            node_links(l->older)->newer = nd;
        else
            s->tail = nd;
    }
    /* old's kept cells now belong to nd: free old's memory, not theirs */
    sluice__free((unsigned char *)old - node_prefix(s));
    return nd;
}

static int mem_decide(void *impl, const sluice__op *op, sluice_decision *out, sluice_error *err)
{
    sluice__memstore *m = impl;
    if (!m || !op || !out || !op->key || !op->limits || op->nlimits < 1 ||
        op->nlimits > SLUICE_MAX_LIMITS)
        return sluice__errorf(err, SLUICE_EINVAL, "memory store: bad decision arguments");
    if (op->key_len == 0 || op->key_len > SLUICE_STORE_KEY_MAX)
        return sluice__errorf(err, SLUICE_EKEY, "memory store: key of %zu bytes (1..%d)",
                              op->key_len, SLUICE_STORE_KEY_MAX);
    if (op->cost < 0 || op->cost > SLUICE_COST_MAX)
        return sluice__errorf(err, SLUICE_EINVAL, "memory store: cost out of 0..%lld",
                              (long long)SLUICE_COST_MAX);
    uint64_t h = key_hash(op->key, op->key_len);
    shard *s = shard_at(m, m->shard_shift >= 64 ? 0 : (int)(h >> m->shard_shift));
    /* Start loading the key's slot now, so the miss overlaps with the
     * clock, the signature and the lock.  The hint may be stale (a table
     * being replaced): a prefetch of any address is harmless. */
    uintptr_t hint = atomic_load_explicit(&s->hint_tab, memory_order_relaxed);
    size_t hint_mask = atomic_load_explicit(&s->hint_mask, memory_order_relaxed);
    if (hint)
        __builtin_prefetch((const void *)(hint + (h & hint_mask) * sizeof(uint64_t)));
    int64_t now = op->now_ms == SLUICE_NOW ? sluice__clock_now_ms() : op->now_ms;
    if (now < 0 || now > SLUICE_TIME_MAX_MS) /* the ops of src/rls come here directly */
        return sluice__errorf(err, SLUICE_EINVAL, "memory store: now_ms is outside 0..2^52");
    unsigned logmask;
    uint32_t sig = limits_sig(op->limits, op->nlimits, &logmask);

    shard_lock(s);
    rehash_step(s, now);
    size_t added = s->added;
    int rc;
    where w;
    mnode *nd = table_find(s, h, op->key, op->key_len, &w);
    if (!nd) {
        rc = decide_new(s, h, op, sig, logmask, now, out);
    } else {
        if (nd->sig != sig || node_logmask(nd) != logmask)
            nd = node_reset(s, nd, w, op, sig, logmask);
        rc = nd ? sluice__decide_cells(op->limits, op->nlimits, nd->cells, now, op->cost, out)
                : SLUICE_ENOMEM;
        if (rc == 0)
            node_settle(s, nd, w, op, now);
    }
    sweep(s, now, s->added != added ? SWEEP_INSERT : ++s->tick % SWEEP_EVERY == 0);
    table_resize_check(s);
    shard_unlock(s);
    if (rc == SLUICE_ENOMEM)
        return sluice__errorf(err, rc, "memory store: out of memory");
    return rc;
}

int sluice__memory_decide(sluice__memstore *m, const sluice__op *op, sluice_decision *out,
                          sluice_error *err)
{
    return mem_decide(m, op, out, err);
}

/* ---- the ops table ------------------------------------------------------- */

static int ops_open(void **impl, const sluice__url *url, const sluice_store_options *opts,
                    sluice_error *err)
{
    (void)opts;
    sluice__memstore *m;
    int rc = sluice__memory_open(&m, url, err);
    *impl = m;
    return rc;
}

static void ops_close(void *impl)
{
    sluice__memory_close(impl);
}

static int ops_ping(void *impl, sluice_error *err)
{
    (void)impl;
    (void)err;
    return 0;
}

static size_t ops_keys(void *impl)
{
    return sluice__memory_keys(impl);
}

const sluice__store_ops sluice__memory_ops = {
    .scheme = "memory",
    .open = ops_open,
    .close = ops_close,
    .decide = mem_decide,
    .ping = ops_ping,
    .keys = ops_keys,
};
