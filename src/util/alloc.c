/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - the replaceable allocator.  The three pointers are the only
 * mutable globals of the library besides the hash seed; they are set once,
 * before any other call (documented as not thread-safe).
 */
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

#include "sluice.h"

static void *(*malloc_fn)(size_t) = malloc;
static void *(*realloc_fn)(void *, size_t) = realloc;
static void (*free_fn)(void *) = free;

void sluice_set_allocator(void *(*m)(size_t), void *(*r)(void *, size_t), void (*f)(void *))
{
    malloc_fn = m ? m : malloc;
    realloc_fn = r ? r : realloc;
    free_fn = f ? f : free;
}

void *sluice__malloc(size_t n)
{
    return malloc_fn(n ? n : 1);
}

void *sluice__calloc(size_t n, size_t size)
{
    if (size && n > (size_t)-1 / size)
        return NULL;
    void *p = sluice__malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *sluice__realloc(void *p, size_t n)
{
    return realloc_fn(p, n ? n : 1);
}

void sluice__free(void *p)
{
    if (p)
        free_fn(p);
}

char *sluice__strndup(const char *s, size_t n)
{
    char *d = sluice__malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sluice__strdup(const char *s)
{
    return sluice__strndup(s, strlen(s));
}
