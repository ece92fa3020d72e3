/* SPDX-License-Identifier: MIT */
/*
 * rm_api.h - sluice's own declarations of the few Redis module API functions
 * the module uses (no Redis header is packaged in Debian, and sluice vendors
 * no other project's code).  Written from the documented signatures (see
 * docs/redis.md and the Redis module API reference): the server hands
 * RedisModule_OnLoad a context whose first pointer-sized field is GetApi,
 * and every function is looked up by its name "RedisModule_<Name>".
 *
 * The pointers are static: this header is included by exactly one
 * translation unit (sluice_module.c), so the server's dynamic linker never
 * sees them and they cannot clash with another module's.
 */
#ifndef SLUICE_MODULE_RM_API_H
#define SLUICE_MODULE_RM_API_H

#include <stddef.h>
#include <stdint.h>

/* Opaque server objects: never dereferenced here. */
typedef struct RedisModuleCtx RedisModuleCtx;
typedef struct RedisModuleKey RedisModuleKey;
typedef struct RedisModuleString RedisModuleString;
typedef long long rm_mstime;
typedef int (*rm_cmd_func)(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* Constants of the module ABI (unchanged from Redis 6.2 to 8.0 and Valkey). */
#define RM_OK 0
#define RM_ERR 1
#define RM_APIVER_1 1
#define RM_READ (1 << 0)
#define RM_WRITE (1 << 1)
#define RM_KEYTYPE_EMPTY 0
#define RM_KEYTYPE_STRING 1
#define RM_KEYTYPE_LIST 2
#define RM_LIST_HEAD 0
#define RM_LIST_TAIL 1
#define RM_ERRORMSG_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"

/* Every function the module calls, as (name, return type, parameters). */
#define RM_API_LIST(X)                                                                             \
    X(SetModuleAttribs, void, (RedisModuleCtx * ctx, const char *name, int ver, int apiver))       \
    X(IsModuleNameBusy, int, (const char *name))                                                   \
    X(CreateCommand, int,                                                                          \
      (RedisModuleCtx * ctx, const char *name, rm_cmd_func fn, const char *flags, int firstkey,    \
       int lastkey, int keystep))                                                                  \
    X(OpenKey, RedisModuleKey *, (RedisModuleCtx * ctx, RedisModuleString * name, int mode))       \
    X(CloseKey, void, (RedisModuleKey * key))                                                      \
    X(KeyType, int, (RedisModuleKey * key))                                                        \
    X(ValueLength, size_t, (RedisModuleKey * key))                                                 \
    X(StringDMA, char *, (RedisModuleKey * key, size_t * len, int mode))                           \
    X(StringTruncate, int, (RedisModuleKey * key, size_t newlen))                                  \
    X(DeleteKey, int, (RedisModuleKey * key))                                                      \
    X(SetAbsExpire, int, (RedisModuleKey * key, rm_mstime expire))                                 \
    X(StringPtrLen, const char *, (const RedisModuleString *str, size_t *len))                     \
    X(CreateString, RedisModuleString *, (RedisModuleCtx * ctx, const char *ptr, size_t len))      \
    X(FreeString, void, (RedisModuleCtx * ctx, RedisModuleString * str))                           \
    X(ListPush, int, (RedisModuleKey * key, int where, RedisModuleString *ele))                    \
    X(ListPop, RedisModuleString *, (RedisModuleKey * key, int where))                             \
    X(ListGet, RedisModuleString *, (RedisModuleKey * key, long index))                            \
    X(ListSet, int, (RedisModuleKey * key, long index, RedisModuleString *value))                  \
    X(ReplyWithStringBuffer, int, (RedisModuleCtx * ctx, const char *buf, size_t len))             \
    X(ReplyWithError, int, (RedisModuleCtx * ctx, const char *err))                                \
    X(WrongArity, int, (RedisModuleCtx * ctx))                                                     \
    X(Replicate, int, (RedisModuleCtx * ctx, const char *cmd, const char *fmt, ...))

#define RM_DECLARE(name, ret, params) static ret(*RM_##name) params;
RM_API_LIST(RM_DECLARE)
#undef RM_DECLARE

/*
 * Fills every pointer through the context's GetApi, then registers the
 * module.  Returns RM_OK, or RM_ERR when a function is missing (a server
 * older than 7.0: ListGet/ListSet came with 7.0) or the name is taken.
 */
static int rm_init(RedisModuleCtx *ctx, const char *name, int ver)
{
    int (*get_api)(const char *, void *) = (int (*)(const char *, void *))((void **)ctx)[0];
#define RM_LOOKUP(fn, ret, params)                                                                 \
    if (get_api("RedisModule_" #fn, (void *)&RM_##fn) != RM_OK || !RM_##fn)                        \
        return RM_ERR;
    RM_API_LIST(RM_LOOKUP)
#undef RM_LOOKUP
    if (RM_IsModuleNameBusy(name))
        return RM_ERR;
    RM_SetModuleAttribs(ctx, name, ver, RM_APIVER_1);
    return RM_OK;
}

#endif /* SLUICE_MODULE_RM_API_H */
