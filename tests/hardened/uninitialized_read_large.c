/* Models hardened_malloc's test/uninitialized_read_large.c: the bytes of a fresh 256 KiB block read before any
 * write. Expected: all zero (exit 0; exit 1 at a byte that is not). */
#include "probe.h"

int main(void)
{
	volatile char *block = call_malloc(256 * 1024);
	if (!block)
		return SETUP_FAILED;
	for (size_t i = 0; i < 256 * 1024; i++)
		if (block[i])
			return 1;
	call_free((void *)block);
	return 0;
}
