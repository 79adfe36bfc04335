/* Models hardened_malloc's unaligned_free_large.c: free of a 256 KiB block's address plus one.
 * Expected: reported, abort. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(256 * 1024);
	if (!block)
		return SETUP_FAILED;
	call_free(opaque((uintptr_t)block + 1));
	return 0;
}
