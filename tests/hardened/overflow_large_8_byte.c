/* Models hardened_malloc's test/overflow_large_8_byte.c: a 256 KiB block, a zero byte written 8 bytes past its
 * usable size (the 8th byte after it). Expected: the write itself faults. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(256 * 1024);
	if (!block)
		return SETUP_FAILED;
	size_t usable = call_usable(block);
	block[usable + 7] = 0;
	call_free(block);
	return 0;
}
