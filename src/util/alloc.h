/* SPDX-License-Identifier: MIT */
/*
 * alloc.h - the allocator hook every libsluice allocation goes through, so a
 * caller can replace it (sluice_set_allocator) and tests can inject failures.
 * Never aborts: callers check for NULL and return SLUICE_ENOMEM.
 */
#ifndef SLUICE_UTIL_ALLOC_H
#define SLUICE_UTIL_ALLOC_H

#include <stddef.h>

void *sluice__malloc(size_t n);
void *sluice__calloc(size_t n, size_t size);
void *sluice__realloc(void *p, size_t n);
void sluice__free(void *p);
char *sluice__strdup(const char *s);
char *sluice__strndup(const char *s, size_t n);

#endif /* SLUICE_UTIL_ALLOC_H */
