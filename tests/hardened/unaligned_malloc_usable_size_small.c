/* Models hardened_malloc's unaligned_malloc_usable_size_small.c: malloc_usable_size of a 16-byte block's address
 * plus one. Expected: reported, abort. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(16);
	if (!block)
		return SETUP_FAILED;
	call_usable(opaque((uintptr_t)block + 1));
	return 0;
}
