/* osmem: a memory allocator you can read and run.
 * The classic API (SPEC.md Part 1). Link with `pkg-config --cflags --libs osmem`. */
#ifndef OSMEM_H
#define OSMEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OSMEM_API __attribute__((visibility("default")))

/* os_malloc(0) returns NULL. Sizes too large to serve return NULL with errno = ENOMEM. */
OSMEM_API void *os_malloc(size_t size);
/* os_free(NULL) does nothing; a double or invalid free is reported with the pointer and aborts. */
OSMEM_API void os_free(void *ptr);
/* Zeroed memory; NULL with errno = ENOMEM when nmemb * size overflows. */
OSMEM_API void *os_calloc(size_t nmemb, size_t size);
/* The nine cases of SPEC.md, in order; realloc of a block already free returns NULL and changes nothing. */
OSMEM_API void *os_realloc(void *ptr, size_t size);

/* Walks the heap, the free index and the mappings and verifies every invariant.
 * Returns 0 when all hold; otherwise writes what broke to standard error and returns -1. */
OSMEM_API int os_heap_check(void);

#ifdef __cplusplus
}
#endif

#endif
