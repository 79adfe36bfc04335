/* Models hardened_malloc's test/double_free_large_delayed.c: two 256 KiB blocks; the first is freed, then the
 * second, then the first again. Expected: the third free is reported and aborts. */
#include "probe.h"

int main(void)
{
	char *first = call_malloc(256 * 1024), *second = call_malloc(256 * 1024);
	if (!first || !second)
		return SETUP_FAILED;
	call_free(first);
	call_free(second);
	call_free(first);
	return 0;
}
