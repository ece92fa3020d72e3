/* SPDX-License-Identifier: MIT */
/*
 * store_internal.h - seams of store.c for tests and for other store code:
 * opening a store on a given ops table (tests inject failing stores) and
 * deciding an already built op with the shared post-processing
 * (on_store_error, then shadow) that both the blocking and the async path use.
 */
#ifndef SLUICE_STORE_INTERNAL_H
#define SLUICE_STORE_INTERNAL_H

#include <stdbool.h>

#include "store/store.h"

/**
 * Like sluice_store_open() but with an explicit ops table instead of the
 * one the URL's scheme names (the URL is still parsed and handed to
 * ops->open).  For tests.
 */
int sluice__store_open_ops(sluice_store **out, const sluice__store_ops *ops, const char *url,
                           const sluice_store_options *opts, sluice_error *err);

/**
 * Post-processes a store's answer: status is what ops->decide returned and d
 * its output.  SLUICE_ESTORE/ETIMEOUT become a decision per the store's
 * on_store_error (allow: every limit allowed with remaining = capacity;
 * deny: every limit denied with retry_after_ms = 1000; local: decided on the
 * in-process fallback store), with store_error set.  Then, when shadow is
 * true, a denial becomes allowed with shadow_denied set (top-level
 * retry_after_ms 0; limits[] keep their own verdicts).  Returns 0 with d
 * filled, or the negative code when no decision can be made.
 */
int sluice__store_finish(sluice_store *s, const sluice__op *op, bool shadow, int status,
                         sluice_decision *d, sluice_error *err);

/** ops->decide on op followed by sluice__store_finish().  Blocking; thread-safe. */
int sluice__store_decide_op(sluice_store *s, const sluice__op *op, bool shadow,
                            sluice_decision *out, sluice_error *err);

/**
 * The asynchronous sluice__store_decide_op(): an op built by the caller (the
 * Envoy RLS decider keys its own ops), decided on a's loop with the same
 * post-processing.  libuv rule as sluice_decide_async(); op, its key and its
 * limits need to live only until this returns.
 */
int sluice__store_decide_op_async(sluice_async *a, const sluice__op *op, bool shadow,
                                  sluice_decide_cb cb, void *arg);

#endif /* SLUICE_STORE_INTERNAL_H */
