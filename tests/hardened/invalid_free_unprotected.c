/* Models hardened_malloc's test/invalid_free_unprotected.c: as invalid_free_protected, but the program's own 16
 * pages are readable and writable (all zero). Expected: the free reports an invalid pointer and aborts. */
#include <sys/mman.h>

#include "probe.h"

int main(void)
{
	call_free(call_malloc(16));
	char *own = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (own == MAP_FAILED)
		return SETUP_FAILED;
	call_free(opaque((uintptr_t)own + 8 * 4096));
	return 0;
}
