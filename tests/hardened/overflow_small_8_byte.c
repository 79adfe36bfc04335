/* Models hardened_malloc's test/overflow_small_8_byte.c: an 8-byte block; the 8th byte past its usable size is
 * flipped (one bit toggled, so the write changes the byte whatever it held), then the block is freed.
 * Expected: the free reports the overflow and aborts. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(8);
	if (!block)
		return SETUP_FAILED;
	size_t usable = call_usable(block);
	block[usable + 7] ^= 1;
	call_free(block);
	return 0;
}
