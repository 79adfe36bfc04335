/* Models hardened_malloc's test/write_after_free_small.c: a 128-byte block freed, one byte written 65 bytes into
 * it, then 100000 malloc(128)/free pairs (the freed block must come back into use, or leave any quarantine).
 * Expected: the write after free is found (reported, abort) during the pairs. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(128);
	if (!block)
		return SETUP_FAILED;
	call_free(block);
	((volatile char *)block)[65] = 'a';
	for (int i = 0; i < 100000; i++)
		call_free(call_malloc(128));
	return 0;
}
