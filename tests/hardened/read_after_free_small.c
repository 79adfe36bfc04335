/* Models hardened_malloc's test/read_after_free_small.c: a 16-byte block filled with 'a', freed, then its 16
 * bytes read back and printed in hex, one a line; exits 1 at the first byte that is not zero.
 * Expected (hardened_malloc zeroes a block when it is freed): exit 0 and sixteen lines of "0". */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(16);
	if (!block)
		return SETUP_FAILED;
	memset(block, 'a', 16);
	call_free(block);
	volatile char *stale = block;
	for (int i = 0; i < 16; i++) {
		char c = stale[i];
		printf("%x\n", c);
		if (c)
			return 1;
	}
	return 0;
}
