/* Models hardened_malloc's test/uninitialized_read_small.c: the 8 bytes of a fresh malloc(8) read before any
 * write. Expected: all zero (exit 0; exit 1 at a byte that is not). */
#include "probe.h"

int main(void)
{
	volatile char *block = call_malloc(8);
	if (!block)
		return SETUP_FAILED;
	for (int i = 0; i < 8; i++)
		if (block[i])
			return 1;
	call_free((void *)block);
	return 0;
}
