/* SPDX-License-Identifier: MIT */
/*
 * clock.c - the process clock: realtime in ms, clamped with one atomic so
 * that concurrent readers never see it go backwards.  No locks.
 */
#include "util/clock.h"

#include <stdatomic.h>
#include <time.h>

static _Atomic int64_t last_ms;

int64_t sluice__clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t seen = atomic_load_explicit(&last_ms, memory_order_relaxed);
    while (now > seen) {
        if (atomic_compare_exchange_weak_explicit(&last_ms, &seen, now, memory_order_relaxed,
                                                  memory_order_relaxed))
            return now;
    }
    return seen > now ? seen : now;
}
