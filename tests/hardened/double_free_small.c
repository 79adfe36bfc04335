/* Models hardened_malloc's test/double_free_small.c: a 16-byte block freed twice in a row.
 * Expected: the second free is reported and aborts. */
#include "probe.h"

int main(void)
{
	char *block = call_malloc(16);
	if (!block)
		return SETUP_FAILED;
	call_free(block);
	call_free(block);
	return 0;
}
