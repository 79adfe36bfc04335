/* Models hardened_malloc's test/invalid_free_small_region.c: a 16-byte block, then a free of the address 16 KiB
 * past it (inside the allocator's small-block area, where no block starts). Expected: reported, abort. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(16);
	if (!block)
		return SETUP_FAILED;
	call_free(opaque((uintptr_t)block + 16 * 1024));
	return 0;
}
