/* Models hardened_malloc's test/write_after_free_large.c: a 256 KiB block freed, then one byte written 64 KiB + 1
 * into it. Expected: the write faults. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(256 * 1024);
	if (!block)
		return SETUP_FAILED;
	call_free(block);
	((volatile char *)block)[64 * 1024 + 1] = 'a';
	return 0;
}
