/* Models hardened_malloc's test/write_after_free_large_reuse.c: a 256 KiB block freed, another 256 KiB block taken
 * (and kept), then one byte written 64 KiB + 1 into the freed one. Expected: the write faults (the new block must
 * not be the old one's memory). */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(256 * 1024);
	if (!block)
		return SETUP_FAILED;
	call_free(block);
	char *volatile kept = call_malloc(256 * 1024);
	(void)kept;
	((volatile char *)block)[64 * 1024 + 1] = 'a';
	return 0;
}
