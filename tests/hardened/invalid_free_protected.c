/* Models hardened_malloc's test/invalid_free_protected.c: after one malloc/free (the allocator is set up), the
 * program maps 16 pages of its own with no access and frees the address 8 pages into them.
 * Expected: the free reports an invalid pointer and aborts (it must not touch the inaccessible page). */
#include <sys/mman.h>

#include "probe.h"

int main(void)
{
	call_free(call_malloc(16));
	char *own = mmap(NULL, 16 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (own == MAP_FAILED)
		return SETUP_FAILED;
	call_free(opaque((uintptr_t)own + 8 * 4096));
	return 0;
}
