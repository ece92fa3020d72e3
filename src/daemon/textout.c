/* SPDX-License-Identifier: MIT */
/* src/daemon/textout.c - the growing text buffer of the /metrics renderers. */
#include "textout.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void sluiced_putf(sluiced_out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *p = realloc(o->p, cap);
        if (!p)
            abort(); /* the daemon's OOM policy */
        o->p = p;
        o->cap = cap;
    }
}
