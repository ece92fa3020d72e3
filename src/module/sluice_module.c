/* SPDX-License-Identifier: MIT */
/*
 * sluice_module.c - the native Redis engine: build/lib/sluice_redis.so, a
 * Redis module whose one command SLUICE.DECIDE makes a whole decision
 * (every limit of a rule, all or nothing) inside the server, running the
 * same src/core/ algorithms as memory:// on the same keys and stored values
 * as sluice.lua.  A Lua client and a module client on one Redis therefore
 * agree decision for decision, and an RDB written with the module loads on a
 * server without it (plain strings and lists, no module data type).
 *
 *   SLUICE.DECIDE key1 [key2 ...] "now_ms cost slack_ms alg L W B [alg L W B ...]"
 *
 * now_ms is -1 for the server's clock; the numbers and the reply's, {now_ms,
 * then per limit: allowed, limit, remaining, reset_after_ms, retry_after_ms,
 * delay_ms}, are those of sluice.lua.  Every argument and every reply
 * element costs the server an object, a parse or a formatted write (a third
 * of a microsecond or so each), so the numbers travel as one argument of
 * decimals separated by single spaces, and the reply is one bulk string of
 * the same form: a one-limit decision is 3 arguments instead of 9 and one
 * reply element instead of 7.  The client reads either reply form
 * (redis_reply.c), the script's array or this string, with one decoder.
 * The keys are declared as the legacy key range (first 1, last -2, step 1)
 * so Cluster routes the command, redirects it (MOVED, ASK) and refuses
 * CROSSSLOT like any command.
 *
 * What it must never do: read the clock more than once per command (every
 * limit and every expiry use that one reading); let replicas or the AOF
 * recompute (it replicates the resulting values with absolute expiries,
 * SET ... PXAT and the list operations of sluice.lua, never itself); write
 * anything when any limit denies; crash, leak or write on bad arguments
 * (each answers an error reply); delete a key of a foreign type (WRONGTYPE).
 */
#include <stdbool.h>
#include <string.h>
#include <sys/time.h>

#include "core/algo.h"
#include "core/nums.h"
#include "module/rm_api.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the stored state is little-endian doubles (sluice.lua's struct '<d'); add byte swaps"
#endif

#define STATE_LEN 56 /* 7 doubles: algorithm, L, W, B, s1, s2, s3 */
#define ENTRY_LEN 16 /* a sliding-log entry: 2 doubles, time and cost */
/* TTL slack: the client sends 0, or 60000 for explicit (replay) times */
#define SLACK_MAX SLUICE_WINDOW_MAX_MS
#define ARG_FIRST_KEY 1 /* argv index of key1; the numbers are the last argument */
#define HEAD_INTS 3     /* now_ms cost slack_ms */
#define LIMIT_INTS 4    /* alg L W B */
#define NUMS_MAX (HEAD_INTS + LIMIT_INTS * SLUICE_MAX_LIMITS)

/* ---- arguments ---------------------------------------------------------- */

/* Parses the numbers argument into the decision's inputs; NULL, or the
 * error reply's text. */
static const char *parse_args(RedisModuleString *nums, int n, int64_t *now, int64_t *cost,
                              int64_t *slack, sluice_limit *lims)
{
    int64_t v[NUMS_MAX];
    size_t len;
    const char *p = RM_StringPtrLen(nums, &len);
    if (sluice__nums_parse(p, len, v, HEAD_INTS + LIMIT_INTS * n))
        return "ERR sluice: the last argument must be \"now_ms cost slack_ms\" and "
               "\"algorithm limit window_ms burst\" per key (integers separated by single spaces)";
    *now = v[0];
    *cost = v[1];
    *slack = v[2];
    if (*now < -1)
        return "ERR sluice: now_ms must be -1 (server clock) or a time >= 0";
    if (*cost < 0 || *cost > SLUICE_COST_MAX)
        return "ERR sluice: cost must be between 0 and 1000000000";
    if (*slack < 0 || *slack > SLACK_MAX)
        return "ERR sluice: slack_ms out of range";
    for (int i = 0; i < n; i++) {
        const int64_t *l = v + HEAD_INTS + LIMIT_INTS * i;
        if (l[0] < SLUICE_FIXED_WINDOW || l[0] > SLUICE_LEAKY_BUCKET)
            return "ERR sluice: unknown algorithm";
        lims[i].algorithm = (int)l[0];
        lims[i].limit = l[1];
        lims[i].window_ms = l[2];
        lims[i].burst = l[3];
        if (sluice__limit_check(&lims[i], NULL) != 0)
            return "ERR sluice: limit parameters out of range";
    }
    return NULL;
}

/* ---- stored values (the layout of sluice.lua) --------------------------- */

static bool is_bucket(const sluice_limit *lim)
{
    return lim->algorithm == SLUICE_TOKEN_BUCKET || lim->algorithm == SLUICE_LEAKY_BUCKET;
}

/* The four identity doubles: sluice.lua stores a bucket's burst 0 as L. */
static void state_header(const sluice_limit *lim, double h[4])
{
    h[0] = lim->algorithm;
    h[1] = (double)lim->limit;
    h[2] = (double)lim->window_ms;
    h[3] = (double)(is_bucket(lim) ? sluice__limit_capacity(lim) : lim->burst);
}

/* True when a stored value was written for exactly this limit (else the
 * key counts as untouched, as in sluice.lua). */
static bool state_matches(const sluice_limit *lim, const double *v)
{
    double h[4];
    state_header(lim, h);
    return v[0] == h[0] && v[1] == h[1] && v[2] == h[2] && v[3] == h[3];
}

/* A stored number as an int64 in [lo, hi]; false for anything else. */
static bool to_i64(double x, int64_t lo, int64_t hi, int64_t *out)
{
    if (!(x >= (double)lo && x <= (double)hi) || x != (double)(int64_t)x)
        return false;
    *out = (int64_t)x;
    return true;
}

#define I53 9007199254740992LL /* 2^53: every stored number is below it */

/* The cell of a window or bucket from its 56 bytes; zeroed when they do not
 * hold a state of this limit. */
static void cell_load(const sluice_limit *lim, const char *bytes, size_t len, sluice__cell *cell)
{
    double v[7];
    memset(cell, 0, sizeof(*cell));
    if (len != STATE_LEN)
        return;
    memcpy(v, bytes, sizeof(v));
    if (!state_matches(lim, v))
        return;
    int64_t a, b, c;
    if (!to_i64(v[4], -I53, I53, &a) || !to_i64(v[5], -I53, I53, &b) ||
        !to_i64(v[6], -I53, I53, &c))
        return;
    switch (lim->algorithm) {
    case SLUICE_FIXED_WINDOW:
        cell->fw.win = a;
        cell->fw.n = b;
        break;
    case SLUICE_SLIDING_WINDOW:
        if (b < 0 || b > UINT32_MAX || c < 0 || c > UINT32_MAX)
            return;
        cell->sw.win = a;
        cell->sw.prev = (uint32_t)b;
        cell->sw.cur = (uint32_t)c;
        break;
    default: /* buckets */
        cell->gcra.t_ms = a;
        cell->gcra.excess = b;
        break;
    }
}

/* The 56 bytes of a committed window or bucket cell. */
static void cell_store(const sluice_limit *lim, const sluice__cell *cell, char out[STATE_LEN])
{
    double v[7];
    state_header(lim, v);
    switch (lim->algorithm) {
    case SLUICE_FIXED_WINDOW:
        v[4] = (double)cell->fw.win;
        v[5] = (double)cell->fw.n;
        v[6] = 0;
        break;
    case SLUICE_SLIDING_WINDOW:
        v[4] = (double)cell->sw.win;
        v[5] = cell->sw.prev;
        v[6] = cell->sw.cur;
        break;
    default:
        v[4] = (double)cell->gcra.t_ms;
        v[5] = (double)cell->gcra.excess;
        v[6] = 0;
        break;
    }
    memcpy(out, v, STATE_LEN);
}

/* One key of the decision. */
typedef struct slot {
    RedisModuleKey *key;
    RedisModuleString *name;
    int type;          /* RM_KEYTYPE_* when opened */
    uint32_t log_len;  /* sliding log: entries loaded (0: write it afresh) */
    uint32_t log_drop; /* sliding log: leading entries out of the window at now */
} slot;

/* A list element as a double pair; false when it is not 16 bytes. */
static bool entry_load(RedisModuleString *s, int64_t *t, int64_t *c)
{
    size_t len;
    const char *p = RM_StringPtrLen(s, &len);
    double v[2];
    if (len != ENTRY_LEN)
        return false;
    memcpy(v, p, sizeof(v));
    return to_i64(v[0], 0, I53, t) && to_i64(v[1], 1, I53, c);
}

/*
 * Loads a sliding log stored as sluice.lua keeps it: a list whose element 0
 * is the header and whose others are (time, cost), oldest first.  A list of
 * another limit, or malformed, counts as untouched (and is rewritten, as
 * sluice.lua does).  Returns 0 or SLUICE_ENOMEM.
 */
static int log_load(RedisModuleCtx *ctx, const sluice_limit *lim, slot *s, int64_t now,
                    sluice__cell *cell)
{
    (void)ctx;
    if (s->type != RM_KEYTYPE_LIST)
        return 0;
    long n = (long)RM_ValueLength(s->key);
    RedisModuleString *h = n > 1 ? RM_ListGet(s->key, 0) : NULL;
    if (!h)
        return 0;
    size_t hlen;
    const char *hp = RM_StringPtrLen(h, &hlen);
    double v[7];
    bool ok = hlen == STATE_LEN;
    if (ok) {
        memcpy(v, hp, sizeof(v));
        ok = v[0] == SLUICE_SLIDING_LOG && state_matches(lim, v);
    }
    RM_FreeString(NULL, h);
    for (long k = 1; ok && k < n; k++) {
        RedisModuleString *e = RM_ListGet(s->key, k);
        int64_t t, c;
        ok = e && entry_load(e, &t, &c);
        if (e)
            RM_FreeString(NULL, e);
        if (ok && sluice__sl_append(lim, cell, t, c) != 0) {
            sluice__algo_release(lim, cell);
            return SLUICE_ENOMEM;
        }
    }
    if (!ok) {
        sluice__algo_release(lim, cell);
        return 0;
    }
    s->log_len = sluice__sl_len(cell);
    /* the entries commit() will drop: time <= now - W, oldest first */
    while (s->log_drop < s->log_len) {
        int64_t t, c;
        sluice__sl_entry(cell, s->log_drop, &t, &c);
        if (t > now - lim->window_ms)
            break;
        s->log_drop++;
    }
    return 0;
}

/* ---- writing and replicating ------------------------------------------- */

/*
 * Every write below is queued for replicas and the AOF first, as its effect
 * with an absolute expiry; the server wraps two or more in MULTI/EXEC.  A
 * failing Replicate (SET renamed away) returns -1 before the local write, so
 * master and replicas never diverge silently.
 */
/* "PXAT", made once: as an 's' argument Replicate only takes a reference,
 * where 'c' would build a new object on every decision */
static RedisModuleString *str_pxat;

static int write_string(RedisModuleCtx *ctx, slot *s, const char *bytes, int64_t expire_abs)
{
    /* the expiry as 'b' digits: a short string is one allocation on the
     * server, where 'l' makes two (an object and an sds) */
    char at[SLUICE__NUM_MAX];
    size_t at_len = (size_t)(sluice__num_put(at, expire_abs) - at);
    if (RM_Replicate(ctx, "SET", "sbsb", s->name, bytes, (size_t)STATE_LEN, str_pxat, at, at_len) !=
        RM_OK)
        return -1;
    if (s->type == RM_KEYTYPE_LIST)
        RM_DeleteKey(s->key); /* a sliding log of an older config: SET replaces it */
    size_t len = 0;
    char *p = RM_StringDMA(s->key, &len, RM_WRITE);
    if (s->type != RM_KEYTYPE_STRING || len != STATE_LEN) {
        if (RM_StringTruncate(s->key, STATE_LEN) != RM_OK)
            return -1;
        p = RM_StringDMA(s->key, &len, RM_WRITE);
    }
    if (!p || len != STATE_LEN)
        return -1;
    memcpy(p, bytes, STATE_LEN);
    /* after the value: DMA and Truncate keep a TTL, and the new one wins */
    RM_SetAbsExpire(s->key, expire_abs);
    return 0;
}

/* Pushes bytes at the tail of s's list. */
static int list_push(RedisModuleCtx *ctx, slot *s, const char *bytes, size_t len)
{
    RedisModuleString *e = RM_CreateString(ctx, bytes, len);
    int rc = RM_ListPush(s->key, RM_LIST_TAIL, e);
    RM_FreeString(ctx, e);
    return rc == RM_OK ? 0 : -1;
}

static int list_set(RedisModuleCtx *ctx, slot *s, long index, const char *bytes, size_t len)
{
    RedisModuleString *e = RM_CreateString(ctx, bytes, len);
    int rc = RM_ListSet(s->key, index, e);
    RM_FreeString(ctx, e);
    return rc == RM_OK ? 0 : -1;
}

/*
 * Writes a committed sliding log with the operations of sluice.lua: afresh
 * (DEL, RPUSH header entry), or LTRIM of the entries that left the window,
 * LSET of the header, then LSET of a merged newest entry or RPUSH of a new
 * one; PEXPIREAT last.
 */
static int write_log(RedisModuleCtx *ctx, const sluice_limit *lim, slot *s,
                     const sluice__cell *cell, int64_t expire_abs)
{
    double hv[7], ev[2];
    char hdr[STATE_LEN], ent[ENTRY_LEN];
    state_header(lim, hv);
    hv[4] = (double)sluice__sl_sum(cell);
    hv[5] = hv[6] = 0;
    memcpy(hdr, hv, sizeof(hdr));
    uint32_t len = sluice__sl_len(cell);
    int64_t t, c;
    sluice__sl_entry(cell, len - 1, &t, &c);
    ev[0] = (double)t;
    ev[1] = (double)c;
    memcpy(ent, ev, sizeof(ent));
    int bad = 0;
    if (s->log_len == 0) {
        if (s->type != RM_KEYTYPE_EMPTY) {
            bad |= RM_Replicate(ctx, "DEL", "s", s->name);
            RM_DeleteKey(s->key);
        }
        bad |= RM_Replicate(ctx, "RPUSH", "sbb", s->name, hdr, sizeof(hdr), ent, sizeof(ent));
        bad |= list_push(ctx, s, hdr, sizeof(hdr)) | list_push(ctx, s, ent, sizeof(ent));
    } else {
        if (s->log_drop > 0) {
            /* LTRIM drop -1 drops the header and drop-1 entries; the LSET of
             * the header below overwrites the dropped entry left in front */
            bad |= RM_Replicate(ctx, "LTRIM", "sll", s->name, (long long)s->log_drop, -1LL);
            for (uint32_t k = 0; k < s->log_drop; k++) {
                RedisModuleString *e = RM_ListPop(s->key, RM_LIST_HEAD);
                if (e)
                    RM_FreeString(ctx, e);
            }
        }
        bad |= RM_Replicate(ctx, "LSET", "slb", s->name, 0LL, hdr, sizeof(hdr));
        bad |= list_set(ctx, s, 0, hdr, sizeof(hdr));
        bool merged = len == s->log_len - s->log_drop;
        if (merged) {
            bad |= RM_Replicate(ctx, "LSET", "slb", s->name, -1LL, ent, sizeof(ent));
            bad |= list_set(ctx, s, -1, ent, sizeof(ent));
        } else {
            bad |= RM_Replicate(ctx, "RPUSH", "sb", s->name, ent, sizeof(ent));
            bad |= list_push(ctx, s, ent, sizeof(ent));
        }
    }
    bad |= RM_Replicate(ctx, "PEXPIREAT", "sl", s->name, (long long)expire_abs);
    RM_SetAbsExpire(s->key, expire_abs);
    return bad ? -1 : 0;
}

/* ---- the command ------------------------------------------------------- */

static int64_t clock_ms(void)
{
    /* gettimeofday is the clock TIME reads, so the Lua engine's
     * TIME-based now and this one agree */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* The reply: one bulk string "now_ms" then "allowed limit remaining
 * reset_after_ms retry_after_ms delay_ms" per limit (see the top). */
static void reply_decision(RedisModuleCtx *ctx, const sluice_decision *d, int n)
{
    int64_t v[1 + 6 * SLUICE_MAX_LIMITS], *x = v;
    *x++ = d->now_ms;
    for (int i = 0; i < n; i++) {
        const sluice_limit_decision *l = &d->limits[i];
        *x++ = l->allowed ? 1 : 0;
        *x++ = l->limit;
        *x++ = l->remaining;
        *x++ = l->reset_after_ms;
        *x++ = l->retry_after_ms;
        *x++ = l->delay_ms;
    }
    char buf[(1 + 6 * SLUICE_MAX_LIMITS) * (SLUICE__NUM_MAX + 1)];
    char *end = sluice__nums_put(buf, v, (int)(x - v));
    RM_ReplyWithStringBuffer(ctx, buf, (size_t)(end - buf));
}

/* Opens and loads every key; NULL, or the error reply's text. */
static const char *load_all(RedisModuleCtx *ctx, RedisModuleString **argv, int n,
                            const sluice_limit *lims, int64_t now, slot *slots, sluice__cell *cells)
{
    for (int i = 0; i < n; i++) {
        slot *s = &slots[i];
        s->name = argv[ARG_FIRST_KEY + i];
        s->key = RM_OpenKey(ctx, s->name, RM_READ | RM_WRITE);
        s->type = RM_KeyType(s->key);
        if (s->type != RM_KEYTYPE_EMPTY && s->type != RM_KEYTYPE_STRING &&
            s->type != RM_KEYTYPE_LIST)
            return RM_ERRORMSG_WRONGTYPE;
        if (lims[i].algorithm == SLUICE_SLIDING_LOG) {
            if (log_load(ctx, &lims[i], s, now, &cells[i]) != 0)
                return "ERR sluice: out of memory";
        } else if (s->type == RM_KEYTYPE_STRING) {
            size_t len = 0;
            /* READ: a 56-byte value is a raw string, read in place, no copy */
            const char *p = RM_StringDMA(s->key, &len, RM_READ);
            if (p)
                cell_load(&lims[i], p, len, &cells[i]);
        }
    }
    return NULL;
}

static int cmd_decide(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
    if (argc < ARG_FIRST_KEY + 2)
        return RM_WrongArity(ctx);
    int n = argc - ARG_FIRST_KEY - 1;
    if (n > SLUICE_MAX_LIMITS)
        return RM_ReplyWithError(ctx, "ERR sluice: at most 8 limits per decision");
    sluice_limit lims[SLUICE_MAX_LIMITS];
    int64_t now, cost, slack;
    const char *why = parse_args(argv[argc - 1], n, &now, &cost, &slack, lims);
    if (why)
        return RM_ReplyWithError(ctx, why);

    int64_t clock = clock_ms(); /* the one clock reading of this command */
    if (now < 0)
        now = clock;
    slot slots[SLUICE_MAX_LIMITS];
    sluice__cell cells[SLUICE_MAX_LIMITS];
    memset(slots, 0, sizeof(slots[0]) * (size_t)n);
    memset(cells, 0, sizeof(cells[0]) * (size_t)n);
    sluice_decision d;
    why = load_all(ctx, argv, n, lims, now, slots, cells);
    if (!why && sluice__decide_cells(lims, n, cells, now, cost, &d) != 0)
        why = "ERR sluice: out of memory";
    if (!why && d.allowed && cost > 0) {
        for (int i = 0; i < n && !why; i++) {
            /* the TTL runs on the server's clock even for explicit times */
            int64_t expire_abs = clock + d.limits[i].reset_after_ms + slack;
            int rc;
            if (lims[i].algorithm == SLUICE_SLIDING_LOG) {
                rc = write_log(ctx, &lims[i], &slots[i], &cells[i], expire_abs);
            } else {
                char bytes[STATE_LEN];
                cell_store(&lims[i], &cells[i], bytes);
                rc = write_string(ctx, &slots[i], bytes, expire_abs);
            }
            if (rc)
                why = "ERR sluice: write or replication failed";
        }
    }
    if (why)
        RM_ReplyWithError(ctx, why);
    else
        reply_decision(ctx, &d, n);
    for (int i = 0; i < n; i++) {
        if (slots[i].key)
            RM_CloseKey(slots[i].key);
        sluice__algo_release(&lims[i], &cells[i]);
    }
    return RM_OK;
}

/* The one exported symbol (the build hides every other). */
__attribute__((visibility("default"))) int RedisModule_OnLoad(RedisModuleCtx *ctx,
                                                              RedisModuleString **argv, int argc);

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
    (void)argv;
    (void)argc;
    if (rm_init(ctx, "sluice", 1) != RM_OK)
        return RM_ERR;
    if (!str_pxat && !(str_pxat = RM_CreateString(NULL, "PXAT", 4)))
        return RM_ERR;
    /* keys: argv[1] ... argv[argc-2] (legacy range, which cluster routing
     * reads); deny-oom: refused at OOM instead of growing past it */
    if (RM_CreateCommand(ctx, "sluice.decide", cmd_decide, "write deny-oom fast", ARG_FIRST_KEY, -2,
                         1) != RM_OK)
        return RM_ERR;
    return RM_OK;
}
