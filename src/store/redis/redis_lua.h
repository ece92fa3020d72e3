/* SPDX-License-Identifier: MIT */
/*
 * redis_lua.h - the text of the Redis decision script (src/store/redis/sluice.lua),
 * embedded at build time by scripts/gen_redis_lua.sh.  Read-only data.
 */
#ifndef SLUICE_STORE_REDIS_LUA_H
#define SLUICE_STORE_REDIS_LUA_H

#include <stddef.h>

/* The script, NUL-terminated; sluice__redis_lua_len bytes without the NUL. */
extern const char sluice__redis_lua[];
extern const size_t sluice__redis_lua_len;

#endif /* SLUICE_STORE_REDIS_LUA_H */
