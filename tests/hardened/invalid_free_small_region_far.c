/* Models hardened_malloc's test/invalid_free_small_region_far.c: a 16-byte block, then a free of the address
 * 1 GiB past it (most likely unmapped). Expected: reported, abort (no crash inside the allocator). */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(16);
	if (!block)
		return SETUP_FAILED;
	call_free(opaque((uintptr_t)block + ((uintptr_t)1 << 30)));
	return 0;
}
