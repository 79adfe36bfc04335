/* Models hardened_malloc's test/double_free_large.c: a 256 KiB block (a mapping of its own in most allocators)
 * freed twice in a row. Expected: the second free is reported and aborts. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(256 * 1024);
	if (!block)
		return SETUP_FAILED;
	call_free(block);
	call_free(block);
	return 0;
}
