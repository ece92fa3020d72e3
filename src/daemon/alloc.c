/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - a per-thread caching allocator for the daemon's request path.
 * evhttp allocates and frees dozens of small blocks per request (header
 * strings, evbuffers, chains of about 1 KiB); jansson does the same for
 * /v1/check bodies.  Routed here (event_set_mem_functions,
 * json_set_alloc_funcs), blocks up to 4 KiB are kept on a free list of the
 * thread that frees them, in power-of-two classes, so the steady state
 * makes no malloc() calls at all.  Each list is bounded; larger blocks go
 * straight to malloc().  A 16-byte header keeps the class and the
 * alignment of malloc().  It is not part of libsluice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

#define NCLASS 8 /* 32 B .. 4 KiB */
#define MIN_SHIFT 5
#define CACHE_MAX 4096 /* blocks kept per class per thread */
#define BIG ((uint32_t)NCLASS)

typedef struct hdr {
    uint64_t size; /* usable bytes */
    uint32_t cls;  /* size class, or BIG */
    uint32_t pad;
} hdr;

typedef struct cache {
    void *head[NCLASS];
    int n[NCLASS];
} cache;

static _Thread_local cache tc;

static int class_of(size_t n)
{
    if (n <= ((size_t)1 << MIN_SHIFT))
        return 0;
    /* ceil(log2(n)) - MIN_SHIFT, for n > 32 */
    int c = (int)(sizeof(unsigned long) * 8) - __builtin_clzl((unsigned long)(n - 1)) - MIN_SHIFT;
    return c < NCLASS ? c : -1;
}

void *sluiced_malloc(size_t n)
{
    int c = class_of(n);
    if (c >= 0 && tc.head[c]) {
        void *p = tc.head[c];
        memcpy(&tc.head[c], p, sizeof(void *));
        tc.n[c]--;
        return p;
    }
    size_t usable = c >= 0 ? (size_t)1 << (c + MIN_SHIFT) : n;
    if (usable > SIZE_MAX - sizeof(hdr))
        return NULL;
    hdr *h = malloc(sizeof(hdr) + usable);
    if (!h)
        return NULL;
    h->size = usable;
    h->cls = c >= 0 ? (uint32_t)c : BIG;
    return h + 1;
}

void sluiced_free(void *p)
{
    if (!p)
        return;
    hdr *h = (hdr *)p - 1;
    uint32_t c = h->cls;
    if (c < BIG && tc.n[c] < CACHE_MAX) {
        memcpy(p, &tc.head[c], sizeof(void *));
        tc.head[c] = p;
        tc.n[c]++;
        return;
    }
    free(h);
}

void *sluiced_realloc(void *p, size_t n)
{
    if (!p)
        return sluiced_malloc(n);
    if (n == 0) {
        sluiced_free(p);
        return NULL;
    }
    hdr *h = (hdr *)p - 1;
    if (n <= h->size)
        return p;
    void *q = sluiced_malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, h->size);
    sluiced_free(p);
    return q;
}

void sluiced_alloc_thread_flush(void)
{
    for (int c = 0; c < NCLASS; c++) {
        while (tc.head[c]) {
            void *p = tc.head[c];
            memcpy(&tc.head[c], p, sizeof(void *));
            free((hdr *)p - 1);
        }
        tc.n[c] = 0;
    }
}
