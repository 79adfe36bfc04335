/* Models hardened_malloc's test/overflow_large_1_byte.c: a 256 KiB block, a zero byte written just past its
 * usable size. Expected: the write itself faults (a guard page right after the block). */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(256 * 1024);
	if (!block)
		return SETUP_FAILED;
	size_t usable = call_usable(block);
	block[usable] = 0;
	call_free(block);
	return 0;
}
