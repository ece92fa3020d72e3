/* SPDX-License-Identifier: MIT */
/*
 * redis_reply.c - the wire format of one decision: builds the EVALSHA (or
 * EVAL) command for a sluice__op, and turns the script's reply into a
 * sluice_decision.  Pure functions: no I/O, no locks, no clock.  The
 * argument layout is the one documented at the top of sluice.lua.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/algo.h"
#include "store/redis_int.h"
#include "store/redis_lua.h"

#define NUM_MAX 24
#define KEY_BUF (SLUICE_STORE_KEY_MAX + 32)
/* EVALSHA sha numkeys, keys, now cost, 4 per limit, slack */
#define ARGS_MAX (3 + SLUICE_MAX_LIMITS + 2 + 4 * SLUICE_MAX_LIMITS + 1)

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

long sluice__redis_format_sha(const char *sha, const sluice__op *op, bool eval, char **cmd)
{
    *cmd = NULL;
    int n = op->nlimits;
    if (n < 1 || n > SLUICE_MAX_LIMITS || op->key_len > SLUICE_STORE_KEY_MAX || op->cost < 0)
        return SLUICE_EINVAL;
    if (op->now_ms != SLUICE_NOW && op->now_ms < 0)
        return SLUICE_EINVAL;

    char keys[SLUICE_MAX_LIMITS][KEY_BUF];
    char nums[ARGS_MAX][NUM_MAX];
    const char *argv[ARGS_MAX];
    size_t argvlen[ARGS_MAX];
    int argc = 0, k = 0;

#define PUSH_STR(s, l) (argv[argc] = (s), argvlen[argc] = (l), argc++)
#define PUSH_NUM(v)                                                                                \
    do {                                                                                           \
        int len_ = snprintf(nums[k], NUM_MAX, "%" PRId64, (int64_t)(v));                           \
        PUSH_STR(nums[k], (size_t)len_);                                                           \
        k++;                                                                                       \
    } while (0)

    if (eval) {
        PUSH_STR("EVAL", 4);
        PUSH_STR(sluice__redis_lua, sluice__redis_lua_len);
    } else {
        PUSH_STR("EVALSHA", 7);
        PUSH_STR(sha, 40);
    }
    PUSH_NUM(n);
    for (int i = 0; i < n; i++) {
        /* sluice:{<rule>:<identifier>}:<i> - one hash tag for the whole decision */
        memcpy(keys[i], "sluice:{", 8);
        memcpy(keys[i] + 8, op->key, op->key_len);
        int l = snprintf(keys[i] + 8 + op->key_len, KEY_BUF - 8 - op->key_len, "}:%d", i);
        PUSH_STR(keys[i], 8 + op->key_len + (size_t)l);
    }
    PUSH_NUM(op->now_ms == SLUICE_NOW ? -1 : op->now_ms);
    PUSH_NUM(op->cost);
    for (int i = 0; i < n; i++) {
        const sluice_limit *lim = &op->limits[i];
        PUSH_NUM(lim->algorithm);
        PUSH_NUM(lim->limit);
        PUSH_NUM(lim->window_ms);
        PUSH_NUM(lim->burst);
    }
    PUSH_NUM(op->now_ms == SLUICE_NOW ? 0 : SLUICE_REDIS_REPLAY_SLACK_MS);
#undef PUSH_NUM
#undef PUSH_STR

    long len = redisFormatCommandArgv(cmd, argc, argv, argvlen);
    if (len < 0 || !*cmd)
        return SLUICE_ENOMEM;
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
