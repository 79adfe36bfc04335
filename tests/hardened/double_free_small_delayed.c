/* Models hardened_malloc's test/double_free_small_delayed.c: two 16-byte blocks; the first is freed, then the
 * second, then the first again (another free in between, so the block is no longer the last one freed).
 * Expected: the third free is reported and aborts. */
#include "probe.h"

int main(void)
{
	char *first = call_malloc(16), *second = call_malloc(16);
	if (!first || !second)
		return SETUP_FAILED;
	call_free(first);
	call_free(second);
	call_free(first);
	return 0;
}
