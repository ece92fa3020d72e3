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
    char tmp[20], *d = tmp + sizeof(tmp);
    do {
        *--d = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = (size_t)(tmp + sizeof(tmp) - d);
    memcpy(p, d, len);
    return p + len;
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
    char tmp[21], *d = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--d = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--d = '-';
    size_t len = (size_t)(tmp + sizeof(tmp) - d);
    *p++ = '$';
    if (len >= 10)
        *p++ = (char)('0' + len / 10);
    *p++ = (char)('0' + len % 10);
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, d, len);
    p += len;
    *p++ = '\r';
    *p++ = '\n';
    return p;
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

/* Writes the decimal digits of v (with its sign); returns the end. */
static char *put_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return put_u64(p, 0 - (uint64_t)v);
    }
    return put_u64(p, (uint64_t)v);
}

/* Writes "$<len>\r\n<a> <b> ...\r\n": n numbers as one bulk string, the way
 * SLUICE.DECIDE takes its groups of numbers (fewer arguments to parse on the
 * server). */
static char *put_nums(char *p, const int64_t *v, int n)
{
    char tmp[4 * 21], *q = tmp;
    for (int i = 0; i < n; i++) {
        if (i)
            *q++ = ' ';
        q = put_i64(q, v[i]);
    }
    return put_bulk(p, tmp, (size_t)(q - tmp));
}

/* SLUICE.DECIDE "now cost slack", then per limit: key "alg L W B" (the
 * module's key range 2,-2,2); the same numbers write_call() sends the script. */
long sluice__redis_format_module(const sluice__op *op, char *buf, size_t size)
{
    if (op_valid(op) != 0)
        return SLUICE_EINVAL;
    if (size < EVALSHA_MAX(op->nlimits))
        return SLUICE_ENOMEM;
    int n = op->nlimits;
    char *p = buf;
    *p++ = '*';
    p = put_u64(p, (uint64_t)(2 + 2 * n));
    *p++ = '\r';
    *p++ = '\n';
    p = put_bulk(p, "SLUICE.DECIDE", 13);
    int64_t head[3] = {op->now_ms == SLUICE_NOW ? -1 : op->now_ms, op->cost,
                       op->now_ms == SLUICE_NOW ? 0 : SLUICE_REDIS_REPLAY_SLACK_MS};
    p = put_nums(p, head, 3);
    for (int i = 0; i < n; i++) {
        const sluice_limit *lim = &op->limits[i];
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
        int64_t v[4] = {lim->algorithm, lim->limit, lim->window_ms, lim->burst};
        p = put_nums(p, v, 4);
    }
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

static bool in_range(long long v, long long lo, long long hi)
{
    return v >= lo && v <= hi;
}

/* The ranges a sluice script's numbers can take (the bounds of sluice.h): a
 * reply outside them comes from a broken or hostile server, and its numbers
 * must not reach the deny cache's clock arithmetic or the headers. */
static bool reply_in_range(redisReply *const *e, int n)
{
    if (!in_range(e[0]->integer, 0, SLUICE_TIME_MAX_MS))
        return false;
    for (int i = 0; i < n; i++) {
        redisReply *const *x = e + 1 + 6 * i;
        if (!in_range(x[0]->integer, 0, 1) || !in_range(x[1]->integer, 0, SLUICE_LIMIT_MAX) ||
            !in_range(x[2]->integer, 0, SLUICE_LIMIT_MAX) ||
            !in_range(x[3]->integer, 0, SLUICE_TIME_MAX_MS) ||
            !in_range(x[4]->integer, -1, SLUICE_TIME_MAX_MS) ||
            !in_range(x[5]->integer, 0, SLUICE_TIME_MAX_MS))
            return false;
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
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != (size_t)(1 + 6 * n))
        return sluice__redis_error(err, SLUICE_ESTORE, "unexpected reply to the script", NULL);
    for (size_t i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER)
            return sluice__redis_error(err, SLUICE_ESTORE, "unexpected reply to the script", NULL);
    }
    if (!reply_in_range(reply->element, n))
        return sluice__redis_error(err, SLUICE_ESTORE, "the script's reply is out of range", NULL);
    memset(out, 0, sizeof(*out));
    out->now_ms = reply->element[0]->integer;
    out->nlimits = n;
    for (int i = 0; i < n; i++) {
        redisReply **e = reply->element + 1 + 6 * i;
        sluice_limit_decision *d = &out->limits[i];
        d->allowed = e[0]->integer != 0;
        d->limit = e[1]->integer;
        d->remaining = e[2]->integer;
        d->reset_after_ms = e[3]->integer;
        d->retry_after_ms = e[4]->integer;
        d->delay_ms = e[5]->integer;
        d->window_ms = op->limits[i].window_ms;
        d->algorithm = op->limits[i].algorithm;
    }
    sluice__decision_combine(out);
    return 0;
}
