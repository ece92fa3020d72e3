/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the process clock of the memory store: Unix milliseconds from
 * CLOCK_REALTIME, clamped so that it never goes backwards (an NTP step back
 * would otherwise hand out time already spent and re-admit requests).
 */
#ifndef SLUICE_UTIL_CLOCK_H
#define SLUICE_UTIL_CLOCK_H

#include <stdint.h>

/**
 * Current Unix time in milliseconds, never less than any value it returned
 * before in this process.  Thread-safe and lock-free.
 */
int64_t sluice__clock_now_ms(void);

#endif /* SLUICE_UTIL_CLOCK_H */
