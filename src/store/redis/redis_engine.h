/* SPDX-License-Identifier: MIT */
/*
 * redis_engine.h - what the Redis stores report about the engine (Lua
 * script or native module) each node decides with, for sluiced's log and
 * /metrics.  Process-wide, thread-safe, no credentials ever (host:port only).
 * The engine selection itself is internal to the stores (redis_engine.c).
 */
#ifndef SLUICE_STORE_REDIS_ENGINE_H
#define SLUICE_STORE_REDIS_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

/**
 * Records the engine a connection to host:port now decides with, and why
 * ("detected", "configured", "module_gone"); the log hook runs when that
 * node's engine changed (or the node is new).
 */
void sluice__redis_engine_note(const char *host, int port, bool module, const char *why);

/** Sets the hook told of every change (sluiced logs it); NULL for none.  The
 * hook runs on whichever thread detected the change, under a lock: keep it short. */
void sluice__redis_engine_set_log(void (*fn)(const char *addr, const char *engine,
                                             const char *why));

/** For /metrics: the engine of the latest note (-1 none yet, 0 lua, 1 module)
 * and how many connections were noted with each engine. */
void sluice__redis_engine_totals(int *last, uint64_t *lua_notes, uint64_t *module_notes);

#endif /* SLUICE_STORE_REDIS_ENGINE_H */
