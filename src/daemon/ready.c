/* SPDX-License-Identifier: MIT */
/*
 * ready.c - whether the store answers, for GET /readyz and the gRPC health
 * check: one reading shared by every worker and both protocols, refreshed
 * by at most one ping per 250 ms, so that probes never load the store.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"

#define READY_TTL_US 250000

int sluiced_store_ready(char *msg, size_t size)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static atomic_flag pinging = ATOMIC_FLAG_INIT;
    static int64_t checked_us;
    static int cached_rc;
    static char cached_msg[256];
    int64_t now = sluiced_now_us();
    pthread_mutex_lock(&lock);
    bool stale = checked_us == 0 || now - checked_us > READY_TTL_US;
    pthread_mutex_unlock(&lock);
    if (stale && !atomic_flag_test_and_set(&pinging)) {
        sluice_error err = {0};
        int rc = sluice_store_ping(sluiced_store, &err);
        pthread_mutex_lock(&lock);
        cached_rc = rc;
        snprintf(cached_msg, sizeof(cached_msg), "%s", err.msg[0] ? err.msg : sluice_strerror(rc));
        checked_us = sluiced_now_us();
        pthread_mutex_unlock(&lock);
        atomic_flag_clear(&pinging);
    }
    pthread_mutex_lock(&lock);
    int rc = cached_rc;
    if (msg && size)
        snprintf(msg, size, "%s", cached_msg);
    pthread_mutex_unlock(&lock);
    return rc;
}
