/* Models hardened_malloc's test/invalid_malloc_usable_size_small_quarantine.c: a 16-byte block freed, then
 * malloc_usable_size of it (still held by the allocator, not handed out again). Expected: reported, abort. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(16);
	if (!block)
		return SETUP_FAILED;
	call_free(block);
	call_usable(block);
	return 0;
}
