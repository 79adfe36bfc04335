/* Models hardened_malloc's invalid_malloc_usable_size_small.c: a 16-byte block, then malloc_usable_size of the
 * address 16 KiB past it. Expected: reported as an invalid pointer, abort. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(16);
	if (!block)
		return SETUP_FAILED;
	call_usable(opaque((uintptr_t)block + 16 * 1024));
	return 0;
}
