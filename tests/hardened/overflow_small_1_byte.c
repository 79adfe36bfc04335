/* Models hardened_malloc's test/overflow_small_1_byte.c: an 8-byte block, one byte (of value 1) written just past
 * what malloc_usable_size says it holds, then freed. Expected: the free reports the overflow and aborts. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(8);
	if (!block)
		return SETUP_FAILED;
	size_t usable = call_usable(block);
	block[usable] = 1;
	call_free(block);
	return 0;
}
