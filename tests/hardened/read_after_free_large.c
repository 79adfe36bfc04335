/* Models hardened_malloc's test/read_after_free_large.c: a 256 KiB block, its first 16 bytes set to 'a', freed,
 * then read back byte by byte (each printed; exit 1 at the first that is not zero).
 * Expected: the first read faults (the block's pages are gone or inaccessible). */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(256 * 1024);
	if (!block)
		return SETUP_FAILED;
	memset(block, 'a', 16);
	call_free(block);
	volatile char *stale = block;
	for (size_t i = 0; i < 256 * 1024; i++) {
		char c = stale[i];
		printf("%x\n", c);
		if (c)
			return 1;
	}
	return 0;
}
