/* Models hardened_malloc's test/realloc_init.c: realloc(NULL, 12) is the main thread's first allocation; a second
 * thread grows that block to 1024 bytes with realloc and frees it (a block handed to another thread, whose first
 * call of the malloc family is a realloc). Expected: exit 0. */
#include <pthread.h>

#include "probe.h"

static void *grow_and_free(void *block)
{
	block = call_realloc(block, 1024);
	if (!block)
		exit(SETUP_FAILED);
	call_free(block);
	return NULL;
}

int main(void)
{
	void *block = call_realloc(NULL, 12);
	if (!block)
		return SETUP_FAILED;
	pthread_t t;
	if (pthread_create(&t, NULL, grow_and_free, block) || pthread_join(t, NULL))
		return SETUP_FAILED;
	return 0;
}
