/* SPDX-License-Identifier: MIT */
/*
 * redis_reply.c - the wire format of one decision: builds the EVALSHA (or
 * EVAL) command for a sluice__op, and turns the script's reply into a
 * sluice_decision.  Pure functions: no I/O, no locks, no clock.  The
 * argument layout is the one documented at the top of sluice.lua.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/algo.h"
#include "core/nums.h"
#include "store/redis/redis_int.h"
#include "store/redis/redis_lua.h"

#define KEY_BUF (SLUICE_STORE_KEY_MAX + 32)

int sluice__redis_error(sluice_error *err, int code, const char *what, const char *detail)
{
    if (err) {
        err->code = code;
        if (detail)
            snprintf(err->msg, sizeof(err->msg), "redis: %s: %.200s", what, detail);
        else
            snprintf(err->msg, sizeof(err->msg), "redis: %s", what);
    }
    return code;
}

/* ---- commands, written directly (no printf, no argv) ------------------- */

/* Worst cases: "*NN\r\n"; a bulk string header "$NNNN\r\n" and its "\r\n";
 * a number as a bulk string (at most 20 digits and a sign).  EVALSHA_MAX(n)
 * bounds an EVALSHA of n limits; EVAL needs the script's length more (its
 * verb is shorter, its bulk header at most 4 bytes longer than the sha's). */
#define ARRAY_HDR_MAX 8
#define BULK_OVERHEAD 9
#define NUM_BULK_MAX (BULK_OVERHEAD + 21)
#define EVALSHA_MAX(n)                                                                             \
    (ARRAY_HDR_MAX + (BULK_OVERHEAD + 7) + (BULK_OVERHEAD + 40) +                                  \
     (size_t)(n) * (BULK_OVERHEAD + KEY_BUF) + (size_t)(3 + 4 * (n)) * NUM_BULK_MAX)
_Static_assert(EVALSHA_MAX(SLUICE_MAX_LIMITS) <= SLUICE_REDIS_CMD_MAX,
               "SLUICE_REDIS_CMD_MAX too small for the largest EVALSHA");
_Static_assert(SLUICE_MAX_LIMITS <= 10, "a key's limit index is written as one digit");

/* Writes the decimal digits of u; returns the end. */
static char *put_u64(char *p, uint64_t u)
{
    return sluice__num_put(p, (int64_t)u); /* lengths and counts: far below 2^63 */
}

/* Writes "$<len>\r\n" (the header of a bulk string). */
static char *put_bulk_hdr(char *p, size_t len)
{
    *p++ = '$';
    p = put_u64(p, len);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Writes "$<len>\r\n<s>\r\n". */
static char *put_bulk(char *p, const char *s, size_t len)
{
    p = put_bulk_hdr(p, len);
    memcpy(p, s, len);
    p += len;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Writes v as a bulk string of its decimal digits. */
static char *put_num(char *p, int64_t v)
{
    char tmp[SLUICE__NUM_MAX];
    return put_bulk(p, tmp, (size_t)(sluice__num_put(tmp, v) - tmp));
}

/* Checks what both command forms need of op. */
static int op_valid(const sluice__op *op)
{
    int n = op->nlimits;
    if (n < 1 || n > SLUICE_MAX_LIMITS || op->key_len > SLUICE_STORE_KEY_MAX || op->cost < 0)
        return SLUICE_EINVAL;
    if (op->now_ms != SLUICE_NOW && (op->now_ms < 0 || op->now_ms > SLUICE_TIME_MAX_MS))
        return SLUICE_EINVAL;
    return 0;
}

/* Writes "<verb> <body> numkeys keys... args..." deciding op (valid, and buf
 * large enough: EVALSHA_MAX(n) plus the body) into buf; returns its length. */
static long write_call(const char *verb, size_t verb_len, const char *body, size_t body_len,
                       const sluice__op *op, char *buf)
{
    int n = op->nlimits;
    char *p = buf;
    /* *<argc>: verb body numkeys, n keys, now cost, 4 per limit, slack */
    *p++ = '*';
    p = put_u64(p, (uint64_t)(3 + n + 2 + 4 * n + 1));
    *p++ = '\r';
    *p++ = '\n';
    p = put_bulk(p, verb, verb_len);
    p = put_bulk(p, body, body_len);
    p = put_num(p, n);
    for (int i = 0; i < n; i++) {
        /* sluice:{<rule>[@<tier>]:<identifier>}:<i> - one hash tag for the whole decision;
         * i < SLUICE_MAX_LIMITS <= 10 is one digit */
        p = put_bulk_hdr(p, 8 + op->key_len + 3);
        memcpy(p, "sluice:{", 8);
        p += 8;
        memcpy(p, op->key, op->key_len);
        p += op->key_len;
        *p++ = '}';
        *p++ = ':';
        *p++ = (char)('0' + i);
        *p++ = '\r';
        *p++ = '\n';
    }
    p = put_num(p, op->now_ms == SLUICE_NOW ? -1 : op->now_ms);
    p = put_num(p, op->cost);
    for (int i = 0; i < n; i++) {
        const sluice_limit *lim = &op->limits[i];
        p = put_num(p, lim->algorithm);
        p = put_num(p, lim->limit);
        p = put_num(p, lim->window_ms);
        p = put_num(p, lim->burst);
    }
    p = put_num(p, op->now_ms == SLUICE_NOW ? 0 : SLUICE_REDIS_REPLAY_SLACK_MS);
    return (long)(p - buf);
}

long sluice__redis_format_evalsha(const char *sha, const sluice__op *op, char *buf, size_t size)
{
    if (op_valid(op) != 0)
        return SLUICE_EINVAL;
    if (size < EVALSHA_MAX(op->nlimits))
        return SLUICE_ENOMEM;
    return write_call("EVALSHA", 7, sha, 40, op, buf);
}

/* SLUICE.DECIDE key1 ... keyN "now cost slack alg L W B ..." (the module's
 * key range 1,-2,1; nums.h's packed form); the same numbers write_call()
 * sends the script. */
long sluice__redis_format_module(const sluice__op *op, char *buf, size_t size)
{
    if (op_valid(op) != 0)
        return SLUICE_EINVAL;
    if (size < EVALSHA_MAX(op->nlimits))
        return SLUICE_ENOMEM;
    int n = op->nlimits;
    char *p = buf;
    *p++ = '*';
    p = put_u64(p, (uint64_t)(2 + n));
    *p++ = '\r';
    *p++ = '\n';
    p = put_bulk(p, "SLUICE.DECIDE", 13);
    for (int i = 0; i < n; i++) {
        p = put_bulk_hdr(p, 8 + op->key_len + 3);
        memcpy(p, "sluice:{", 8);
        p += 8;
        memcpy(p, op->key, op->key_len);
        p += op->key_len;
        *p++ = '}';
        *p++ = ':';
        *p++ = (char)('0' + i);
        *p++ = '\r';
        *p++ = '\n';
    }
    int64_t v[3 + 4 * SLUICE_MAX_LIMITS], *x = v;
    *x++ = op->now_ms == SLUICE_NOW ? -1 : op->now_ms;
    *x++ = op->cost;
    *x++ = op->now_ms == SLUICE_NOW ? 0 : SLUICE_REDIS_REPLAY_SLACK_MS;
    for (int i = 0; i < n; i++) {
        const sluice_limit *lim = &op->limits[i];
        *x++ = lim->algorithm;
        *x++ = lim->limit;
        *x++ = lim->window_ms;
        *x++ = lim->burst;
    }
    char nums[(3 + 4 * SLUICE_MAX_LIMITS) * (SLUICE__NUM_MAX + 1)];
    char *end = sluice__nums_put(nums, v, (int)(x - v));
    p = put_bulk(p, nums, (size_t)(end - nums));
    return (long)(p - buf);
}

long sluice__redis_format_sha(const char *sha, const sluice__op *op, bool eval, char **cmd)
{
    *cmd = NULL;
    if (op_valid(op) != 0)
        return SLUICE_EINVAL;
    /* malloc, not sluice__malloc: the caller frees with redisFreeCommand */
    size_t size = EVALSHA_MAX(op->nlimits) + (eval ? sluice__redis_lua_len : 0) + 1;
    if (!(*cmd = malloc(size)))
        return SLUICE_ENOMEM;
    long len = eval ? write_call("EVAL", 4, sluice__redis_lua, sluice__redis_lua_len, op, *cmd)
                    : write_call("EVALSHA", 7, sha, 40, op, *cmd);
    (*cmd)[len] = '\0';
    return len;
}

long sluice__redis_format(const sluice__redis *r, const sluice__op *op, bool eval, char **cmd)
{
    return sluice__redis_format_sha(r->sha, op, eval, cmd);
}

bool sluice__redis_is_noscript(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR && reply->len >= 8 &&
           memcmp(reply->str, "NOSCRIPT", 8) == 0;
}

bool sluice__redis_is_moved_master(const redisReply *reply)
{
    if (!reply || reply->type != REDIS_REPLY_ERROR)
        return false;
    static const char *const prefixes[] = {"READONLY", "MASTERDOWN", "LOADING", "NOREPLICAS"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t l = strlen(prefixes[i]);
        if (reply->len >= l && memcmp(reply->str, prefixes[i], l) == 0)
            return true;
    }
    return false;
}

bool sluice__redis_role_is_master(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
           rep->element[0]->type == REDIS_REPLY_STRING && rep->element[0]->len == 6 &&
           memcmp(rep->element[0]->str, "master", 6) == 0;
}

static bool in_range(int64_t v, int64_t lo, int64_t hi)
{
    return v >= lo && v <= hi;
}

/* The ranges a sluice script's numbers can take (the bounds of sluice.h): a
 * reply outside them comes from a broken or hostile server, and its numbers
 * must not reach the deny cache's clock arithmetic or the headers. */
static bool reply_in_range(const int64_t *v, int n)
{
    if (!in_range(v[0], 0, SLUICE_TIME_MAX_MS))
        return false;
    for (int i = 0; i < n; i++) {
        const int64_t *x = v + 1 + 6 * i;
        if (!in_range(x[0], 0, 1) || !in_range(x[1], 0, SLUICE_LIMIT_MAX) ||
            !in_range(x[2], 0, SLUICE_LIMIT_MAX) || !in_range(x[3], 0, SLUICE_TIME_MAX_MS) ||
            !in_range(x[4], -1, SLUICE_TIME_MAX_MS) || !in_range(x[5], 0, SLUICE_TIME_MAX_MS))
            return false;
    }
    return true;
}

/*
 * The numbers of a decision's reply, in either of its two forms: the
 * script's array of integers, or the module's one string of them (nums.h).
 * Everything after this is one decoder for both engines.
 */
static bool reply_numbers(const redisReply *reply, int64_t *v, int count)
{
    if (reply->type == REDIS_REPLY_STRING)
        return sluice__nums_parse(reply->str, reply->len, v, count) == 0;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != (size_t)count)
        return false;
    for (int i = 0; i < count; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER)
            return false;
        v[i] = reply->element[i]->integer;
    }
    return true;
}

int sluice__redis_parse(const redisReply *reply, const sluice__op *op, sluice_decision *out,
                        sluice_error *err)
{
    if (!reply)
        return sluice__redis_error(err, SLUICE_ESTORE, "no reply", NULL);
    if (reply->type == REDIS_REPLY_ERROR)
        return sluice__redis_error(err, SLUICE_ESTORE, "server error", reply->str);
    int n = op->nlimits;
    int64_t v[1 + 6 * SLUICE_MAX_LIMITS];
    if (n < 1 || n > SLUICE_MAX_LIMITS || !reply_numbers(reply, v, 1 + 6 * n))
        return sluice__redis_error(err, SLUICE_ESTORE, "unexpected reply to the script", NULL);
    if (!reply_in_range(v, n))
        return sluice__redis_error(err, SLUICE_ESTORE, "the script's reply is out of range", NULL);
    memset(out, 0, sizeof(*out));
    out->now_ms = v[0];
    out->nlimits = n;
    for (int i = 0; i < n; i++) {
        const int64_t *e = v + 1 + 6 * i;
        sluice_limit_decision *d = &out->limits[i];
        d->allowed = e[0] != 0;
        d->limit = e[1];
        d->remaining = e[2];
        d->reset_after_ms = e[3];
        d->retry_after_ms = e[4];
        d->delay_ms = e[5];
        d->window_ms = op->limits[i].window_ms;
        d->algorithm = op->limits[i].algorithm;
    }
    sluice__decision_combine(out);
    return 0;
}
