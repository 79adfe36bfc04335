/* probe.h: what the probes of tests/hardened/ share (tests/test_hardened.py runs them; see its header).
 *
 * Each probe is a program of a few lines that commits one misuse of the malloc family, modelled on one program of
 * GrapheneOS hardened_malloc's test suite (named atop each file; written anew here, none of its code is copied).
 * The probes link nothing of osmem's: they run on plain glibc, or with libosmem-malloc.so preloaded.
 *
 * The misuse must reach the allocator as written: the probes are built with -O0 -fno-builtin, and every call goes
 * through a volatile function pointer, so that the compiler can neither drop a malloc/free pair, nor fold a read
 * of freed memory, nor warn about (and refuse, under -Werror) a free of a pointer it can see is not a block. */
#ifndef PROBE_H
#define PROBE_H

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *(*volatile call_malloc)(size_t) = malloc;
static void (*volatile call_free)(void *) = free;
static void *(*volatile call_realloc)(void *, size_t) = realloc;
static size_t (*volatile call_usable)(void *) = malloc_usable_size;

/* A pointer the compiler knows nothing about (an address made up from an integer, an offset into a block). */
static inline void *opaque(uintptr_t v)
{
	volatile uintptr_t w = v;
	return (void *)w;
}

/* The probe could not set up its misuse (an allocation failed): not the outcome any expectation names. */
#define SETUP_FAILED 3

#endif
