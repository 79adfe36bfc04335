/* osmem: the classic API (os_malloc, os_calloc, os_realloc, os_free).
 *
 * Arguments are checked here (zero sizes, overflow, bad pointers) and the core runs under one lock.
 * Nothing here calls the kernel; errno is ENOMEM whenever NULL stands for a failure. */
#include <errno.h>
#include <pthread.h>

#include "internal.h"
#include "osmem.h"

static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;

void osm_lock(void)
{
	pthread_mutex_lock(&heap_lock);
	osm_init(8);
}

void osm_unlock(void)
{
	pthread_mutex_unlock(&heap_lock);
}

static void *fail_enomem(void)
{
	errno = ENOMEM;
	return NULL;
}

void *os_malloc(size_t size)
{
	if (!size)
		return NULL;
	if (size > MAX_REQUEST)
		return fail_enomem();
	osm_lock();
	struct block_meta *b = osm_malloc(size, MMAP_THRESHOLD);
	osm_unlock();
	return b ? payload(b) : fail_enomem();
}

void os_free(void *ptr)
{
	if (!ptr)
		return;
	osm_lock();
	osm_free(osm_user_block(ptr, "os_free", false));
	osm_unlock();
}

void *os_calloc(size_t nmemb, size_t size)
{
	if (!nmemb || !size)
		return NULL;
	if (nmemb > MAX_REQUEST / size)
		return fail_enomem();
	osm_lock();
	struct block_meta *b = osm_malloc(nmemb * size, osm_heap.calloc_threshold);
	if (b && b->status != STATUS_MAPPED)
		memset(payload(b), 0, b->size); /* a reused block is dirty; fresh mappings are already zero */
	osm_unlock();
	return b ? payload(b) : fail_enomem();
}

void *os_realloc(void *ptr, size_t size)
{
	if (!ptr)                                            /* 1 */
		return os_malloc(size);
	osm_lock();
	struct block_meta *b = osm_user_block(ptr, "os_realloc", true);
	if (b->status == STATUS_FREE) {                      /* 3, also when size is 0: nothing to free */
		osm_unlock();
		return NULL;
	}
	if (!size) {                                         /* 2 */
		osm_free(b);
		osm_unlock();
		return NULL;
	}
	if (size > MAX_REQUEST) {
		osm_unlock();
		return fail_enomem();
	}
	struct block_meta *nb = osm_realloc(b, size);
	osm_unlock();
	return nb ? payload(nb) : fail_enomem();
}
