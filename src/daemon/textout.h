/* SPDX-License-Identifier: MIT */
/* src/daemon/textout.h - a growing text buffer for /metrics pages. */
#ifndef SLUICED_TEXTOUT_H
#define SLUICED_TEXTOUT_H

#include <stddef.h>

/* p is malloc'd (NULL when the first allocation failed); len bytes used. */
typedef struct sluiced_out {
    char *p;
    size_t len, cap;
} sluiced_out;

/* Appends printf-formatted text, growing the buffer; the daemon aborts on
 * OOM rather than serve a page with lines missing. */
void sluiced_putf(sluiced_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
