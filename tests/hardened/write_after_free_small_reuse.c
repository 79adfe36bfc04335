/* Models hardened_malloc's test/write_after_free_small_reuse.c: as write_after_free_small, but another 128-byte
 * block is taken (and kept) right after the free, before the stale write at byte 65; then 100000 malloc(128)/free
 * pairs. Expected: reported, abort. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(128);
	if (!block)
		return SETUP_FAILED;
	call_free(block);
	char *volatile kept = call_malloc(128);
	(void)kept;
	((volatile char *)block)[65] = 'a';
	for (int i = 0; i < 100000; i++)
		call_free(call_malloc(128));
	return 0;
}
